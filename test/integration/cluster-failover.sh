#!/usr/bin/env bash
# cluster-failover.sh: the cluster when its parts misbehave, with a real etcd, three real nodes on
# 127.0.0.2 (n1, which forwards), .3 (n2, the primary) and .4 (n3, the secondary) sharing one disk
# file, and real clients:
#   - etcd killed entirely: the nodes keep serving and forwarding with the state they have, and a
#     change is refused naming etcd; etcd back: the watches catch up (a mapping made after it is
#     back is served through n1);
#   - the primary SIGSTOPped past its lease in the middle of fio verify through n1: its key goes,
#     n1 goes to the secondary, fio ends with no error; vvctl cluster nodes lists it DOWN; the
#     mapping changes while it is away; SIGCONT: the old primary joins again by itself (a new
#     lease; it is live in vvctl cluster nodes within 5 s), with the mapping read after its new
#     key; a connection opened to it before the stop is refused writes and reads (and it says
#     so); it takes part in a pack move, forwards the pack once the move has taken it off the
#     pack, and a client through it reads every byte written while it was away (fio
#     --verify_only, patterns);
#   - bad input under the prefix (a mapping naming an unknown node, or a disk its node lacks;
#     garbage values for a pack, a node and a path): a clear error naming each key in nbdkit's
#     log, nothing served wrongly, the nodes stay up and serve the rest.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires nbdinfo --version
requires fio --version
requires jq --version
# Long enough for etcd to be down a few seconds without the nodes fencing themselves (they fence
# at the last renewal + TTL - TTL/5, and renew every third of the TTL).
ttl=10

start_three_nodes
n2=nbd://127.0.0.3:$port/pack/a
io "$n1" -c "write -P 0x11 0 1M" -c "read -P 0x11 0 1M"

# --- 1. etcd down: the nodes keep serving; back: they catch up ---
kill_daemon "$etcd_pid"
io "$n1" -c "write -P 0x12 1M 1M" -c "read -P 0x12 1M 1M"
io "nbd://127.0.0.4:$port/pack/a" -r -c "read -P 0x12 1M 1M"
echo "c disk.img 64M 16M shared root root 0666" >"$tmpdir/c.tab"
expect 1 "etcd $etcd_endpoint: cannot connect" -- ctl cluster import "$tmpdir/c.tab" --primary n3 --disk d0
wait_log "${node_log[n1]}" "error: watching the pack mappings: .*\(retrying; serving the mappings read last\)"
start_etcd --again
wait_log "${node_log[n1]}" "watching the pack mappings again" 20
ctl cluster import "$tmpdir/c.tab" --primary n3 --disk d0 >/dev/null
wait_listed "nbd://127.0.0.2:$port" pack/c ||
  die "pack c, mapped after etcd came back, is not served by n1 5 s later"
io "nbd://127.0.0.2:$port/pack/c" -c "write -P 0x13 0 1M" -c "read -P 0x13 0 1M"
cmp -n $M -i $((64 * M)):0 "$disk" <(head -c $M /dev/zero | tr '\0' '\023') ||
  die "pack c's data is not at its offset in the disk"
! grep -q "membership lost" "${node_log[n1]}" "${node_log[n2]}" "${node_log[n3]}" ||
  die "a node fenced itself while etcd was down for less than its lease"
echo "ok: etcd down: nodes kept serving; back: a new mapping served through n1"

# --- 2. the primary SIGSTOPped past its lease in the middle of fio through n1 ---
# A client connected first: n1's forwarder is then connected to n2 before it stops (n1 closes
# a forwarder left with no client, and a new one would find n2 stopped while connecting).
connect_client keeper "$n1"
# A client of n2 connected before it stops: for each line it is sent it writes ("w") or reads
# ("r") a block, and says how that went (without the keeper's pipe, which would keep the keeper
# from seeing its end).
mkfifo "$tmpdir/old.fifo"
nbdsh -u "$n2" -c '
import sys
for line in sys.stdin:
    try:
        if line.startswith("r"):
            h.pread(4096, 5 * 1024 * 1024)
            print("read", flush=True)
        else:
            h.pwrite(b"\x77" * 4096, 5 * 1024 * 1024)
            print("wrote", flush=True)
    except nbd.Error as e:
        print("refused:", e, flush=True)
' <"$tmpdir/old.fifo" >"$tmpdir/old.out" 2>&1 {_vvm_client_fd[keeper]}>&- &
old_pid=$!
cleanup_fn kill_quietly "$old_pid"
exec {old_fd}>"$tmpdir/old.fifo"
old_answers=0
old_client() { # w or r: the old client's answer in $answer
  local i
  old_answers=$((old_answers + 1))
  echo "$1" >&"$old_fd"
  for ((i = 0; i < 50; i++)); do
    (($(grep -c . "$tmpdir/old.out" || true) >= old_answers)) && break
    sleep 0.1
  done
  answer=$(sed -n "${old_answers}p" "$tmpdir/old.out")
}
old_client w
[[ $answer == wrote ]] || die "a client of n2 cannot write before n2 stops: $(cat "$tmpdir/old.out")"
old_client r
[[ $answer == read ]] || die "a client of n2 cannot read before n2 stops: $(cat "$tmpdir/old.out")"
fio_job=(--name=verify --ioengine=nbd --size=$((32 * M)) --offset=$((32 * M)) --rw=randwrite
  --bs=4k --iodepth=16 --verify=crc32c --verify_fatal=1)
fio "${fio_job[@]}" --uri="$n1" --rate_iops=4000 --do_verify=1 >"$tmpdir/fio.out" 2>&1 &
fio_pid=$!
cleanup_fn kill_quietly "$fio_pid"
sleep 0.5
kill -0 "$fio_pid" 2>/dev/null || die "fio ended before the primary stopped: $(cat "$tmpdir/fio.out")"
cleanup_fn kill -CONT "${node_pid[n2]}"
kill -STOP "${node_pid[n2]}"
stopped=$(date +%s.%N)
wait "$fio_pid" || die "fio through n1 failed when the primary stopped: $(cat "$tmpdir/fio.out")"
grep -q 'err= 0' "$tmpdir/fio.out" || die "fio reported errors: $(cat "$tmpdir/fio.out")"
grep -Eq "node n2 has left the cluster \(its key /vvm/node/n2 is gone" "${node_log[n1]}" ||
  die "n1 does not say that n2 left"
grep -Eq "127.0.0.3:$port/pack/a@local is down: marked down: node n2 has left the cluster" "${node_log[n1]}" ||
  die "n1 did not mark n2 down when its key went"
disconnect_client keeper
# Its key gone, n2 is listed DOWN (pack a's primary still), not dropped.
grep -Eq '^n2 +DOWN +- +- +- +- +-$' <<<"$(ctl cluster nodes)" || die "n2 is not DOWN: $(ctl cluster nodes)"
check '.[] | select(.name == "n2") | "\(.live) \(.packs | join(","))"' "false a" "$(ctl cluster nodes --json)"
echo "ok: primary stopped under fio: no client error, n1 went to n3 ($(awk -v a="$stopped" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s)"
# While n2 is away: a change of the mapping (its secondary), and a write through n1.
ctl pack set-secondary a n1 >/dev/null || die "set-secondary with n2 away failed"
changed=$(etcdctl_ get /vvm/pack/a -w json | jq -r '.kvs[0].mod_revision')
io "$n1" -c "write -P 0x16 4M 1M"
kill -CONT "${node_pid[n2]}"
resumed=$(date +%s%N)
for ((i = 0; i < 50; i++)); do
  ctl cluster nodes --json | jq -e '.[] | select(.name == "n2" and .live)' >/dev/null && break
  sleep 0.1
done
((i < 50)) || die "n2 is not a member again 5 s after SIGCONT: $(ctl cluster nodes)"
rejoin_ms=$((($(date +%s%N) - resumed) / 1000000))
wait_log "${node_log[n2]}" "error: cluster membership lost: /vvm/node/n2: "
wait_log "${node_log[n2]}" "rejoining the cluster: etcd dropped lease [0-9a-f]+ of /vvm/node/n2"
wait_log "${node_log[n2]}" "rejoined the cluster as /vvm/node/n2 \(lease [0-9a-f]+\): serving the mapping of etcd revision [0-9]+"
served=$(grep -Eo "rejoined the cluster as .* serving the mapping of etcd revision [0-9]+" "${node_log[n2]}" | grep -Eo '[0-9]+$')
((served >= changed)) || die "n2 serves the mapping of revision $served, older than the change at $changed"
# The connection opened before: refused writes and reads (under the mapping of then, which
# changed while n2 was away), each refusal named; its client is to connect again.
old_client w
[[ $answer == refused:* ]] ||
  die "a connection opened to n2 before it stopped wrote after it rejoined: $(cat "$tmpdir/old.out")"
wait_log "${node_log[n2]}" "write refused: the connection was opened before this node rejoined the cluster"
old_client r
[[ $answer == refused:* ]] ||
  die "a connection opened to n2 before it stopped read after it rejoined: $(cat "$tmpdir/old.out")"
wait_log "${node_log[n2]}" "read refused: the connection was opened before this node rejoined the cluster, under the mapping of then, which may have changed while it was away \(connect again\)"
exec {old_fd}>&-
cmp -n 4096 -i $((5 * M)):0 "$disk" <(head -c 4096 /dev/zero | tr '\0' '\167') ||
  die "the write of n2's client from before the stop is not on the disk"
io "$n2" -r -c "read -P 0x11 0 1M"
io "$n1" -c "write -P 0x14 2M 1M" -c "read -P 0x14 2M 1M"
echo "ok: the old primary, resumed, rejoined by itself (a member again in $rejoin_ms ms), with the mapping of revision $served (changed at $changed); a connection from before is refused writes and reads"
# It takes part in a move again; moved off the pack, it forwards it; its clients read every byte
# written while it was away.
out=$(ctl pack move a --primary n3 --json) || die "pack move after n2 rejoined: $out"
check '.acked | join(",")' n1,n2,n3 "$out"
wait_log "${node_log[n2]}" "cluster state read at etcd revision [0-9]+: serving 0 packs from this node's disks, forwarding [1-9]"
fio "${fio_job[@]}" --uri="$n2" --verify_only >"$tmpdir/fio2.out" 2>&1 ||
  die "fio --verify_only through n2 failed: $(cat "$tmpdir/fio2.out")"
grep -q 'err= 0' "$tmpdir/fio2.out" || die "fio --verify_only reported errors: $(cat "$tmpdir/fio2.out")"
io "$n2" -c "read -P 0x16 4M 1M" -c "read -P 0x14 2M 1M" -c "write -P 0x17 6M 1M"
io "nbd://127.0.0.4:$port/pack/a" -r -c "read -P 0x17 6M 1M"
echo "ok: n2 acknowledged a move, forwards pack a to n3, and reads back what was written while it was away"

# --- 3. bad input under the prefix ---
pack_json() { # NAME NODE DISK OFFSET_MIB
  printf '{"name":"%s","primary":{"node":"%s","disk":"%s"},"offset":%d,"size":1048576,"mode":"shared","owner":0,"group":0,"perms":"0666","epoch":1}' \
    "$1" "$2" "$3" $(($4 * M))
}
etcdctl_ put /vvm/pack/ghost "$(pack_json ghost n9 d0 100)" >/dev/null
etcdctl_ put /vvm/pack/nodisk "$(pack_json nodisk n3 d9 101)" >/dev/null
etcdctl_ put /vvm/pack/junk 'garbage{' >/dev/null
etcdctl_ put /vvm/node/junk '[1,2' >/dev/null
etcdctl_ put /vvm/path/a/n3 '{"pack":"a"}' >/dev/null
l1=${node_log[n1]}
wait_log "$l1" "etcd key /vvm/pack/ghost: node n9 is not registered \(no key /vvm/node/n9\)"
wait_log "$l1" "etcd key /vvm/pack/ghost: no registered node serves pack 'ghost': not served here"
wait_log "$l1" "etcd key /vvm/pack/nodisk: disk 'd9' is not one of node n3's disks"
wait_log "$l1" "etcd key /vvm/pack/junk: not JSON: 'garbage\{' \(not served\)"
wait_log "$l1" "etcd key /vvm/node/junk: .* \(node ignored\)"
wait_log "$l1" "etcd key /vvm/path/a/n3: .* \(path record ignored\)"
wait_log "${node_log[n3]}" "etcd key /vvm/pack/nodisk: disk 'd9' of node n3 is not one of this node's disks"
list=$(nbdinfo --list --json "nbd://127.0.0.2:$port")
names=$(jq -r '[.exports[]."export-name"] | sort | join(" ")' <<<"$list")
[[ $names == "pack/a pack/a@ro pack/c pack/c@ro" ]] || die "with bad input n1 lists '$names'"
io_fails "nbd://127.0.0.2:$port/pack/ghost" -r -c "read 0 4k"
kill -0 "${node_pid[n1]}" && kill -0 "${node_pid[n3]}" || die "a node died of bad input"
io "$n1" -c "write -P 0x15 3M 1M" -c "read -P 0x15 3M 1M"
cmp -n $M -i $((3 * M)):0 "$disk" <(head -c $M /dev/zero | tr '\0' '\025') ||
  die "the write through n1 after the bad input is not on the disk"
# Garbage where a hold and a reconfiguration's intent go: named with the key; the pack whose hold
# key it is is refused rather than served against a holder nobody can name; the rest goes on.
etcdctl_ put /vvm/hold/c 'junk' >/dev/null
etcdctl_ put /vvm/reconf/junk '{"packs":' >/dev/null
io_fails "nbd://127.0.0.2:$port/pack/c" -r -c "read 0 4k"
wait_log "$l1" "pack 'c' is held exclusive by a holder etcd key /vvm/hold/c does not name"
wait_log "$l1" "etcd key /vvm/reconf/junk: .*\(ignored\)"
io "$n1" -c "write -P 0x19 3M 64k" -c "read -P 0x19 3M 64k"
etcdctl_ del /vvm/hold/c >/dev/null
etcdctl_ del /vvm/reconf/junk >/dev/null
io "nbd://127.0.0.2:$port/pack/c" -c "write -P 0x18 0 64k" -c "read -P 0x18 0 64k"
kill -0 "${node_pid[n1]}" && kill -0 "${node_pid[n2]}" && kill -0 "${node_pid[n3]}" ||
  die "a node died of garbage under the prefix"
echo "ok: bad input named with its keys, nothing served wrongly, the nodes serve on"
