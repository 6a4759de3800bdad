#!/usr/bin/env bash
# cluster-reconf.sh: live reconfiguration with a real etcd and three real nodes (nbdkit with the
# vvm plugin on 127.0.0.2, .3 and .4, each with its port and state folder, one shared disk):
#   - vvctl pack move, back and forth, while a client writes a pattern through a node with
#     flushes: no acknowledged write is lost or overtaken by an older one (every block checked
#     through another node), the epoch counts the moves, and the pause is printed;
#   - a node that never acknowledges (SIGSTOP): the command times out naming it, nothing
#     changes, and the other nodes resume at once (the client's writes go on);
#   - cluster drain moves a node's packs to their secondaries and marks it (cluster nodes shows
#     it drained, the others not); pack move refuses it until cluster undrain; drain and undrain
#     with --json;
#   - bad input: an unknown pack or node, a node without the disk, etcd down: refused with the
#     name and the reason, and the mapping unchanged.
#   - pack move while a client writes through n3, which forwards the pack: nothing lost.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires qemu-io --version
requires jq --version
writer=$VVM_SOURCE_DIR/test/integration/pattern-writer.py

start_etcd
conf=$tmpdir/admin.conf
printf '[cluster]\netcd = %s\n' "$etcd_endpoint" >"$conf"
truncate -s 64M "$tmpdir/disk.img"

# node NAME ADDRESS: a node's vvm.conf and nbdkit on ADDRESS:PORT; $port_NAME, $pid_NAME, $log_NAME.
node() {
  local name=$1 address=$2 port
  port=$(pick_unused_port)
  mkdir -p "$tmpdir/$name"
  cat >"$tmpdir/$name.conf" <<EOF
[global]
state-dir = $tmpdir/$name
[vvmd]
allow-host = 127.0.0.0/8
[cluster]
etcd = $etcd_endpoint
node = $name
advertise = $address:$port
lease-ttl = 10s
disk = d0:$tmpdir/disk.img
EOF
  start_nbdkit - -i "$address" -p "$port" "$VVM_PLUGIN" conf="$tmpdir/$name.conf"
  printf -v "port_$name" %s "$port"
  printf -v "pid_$name" %s "$nbdkit_pid"
  printf -v "log_$name" %s "$nbdkit_log"
}

cat >"$tmpdir/a.tab" <<'EOF'
a  /x  0    16M  shared  root root 0666
b  /x  16M  16M  shared  root root 0666
EOF
ctl cluster import "$tmpdir/a.tab" --primary n1 --secondary n2 --disk d0 >/dev/null
node n1 127.0.0.2
node n2 127.0.0.3
node n3 127.0.0.4
for ((i = 0; i < 50; i++)); do
  [[ $(ctl cluster nodes --json | jq 'map(select(.live)) | length') == 3 ]] && break
  sleep 0.1
done
((i < 50)) || die "three nodes not registered: $(ctl cluster nodes)"
uri_n1="nbd://127.0.0.2:$port_n1/pack/a"
uri_n2="nbd://127.0.0.3:$port_n2/pack/a"
epoch() { ctl cluster map --json | jq -r ".[] | select(.name == \"$1\") | .epoch"; }
primary() { ctl cluster map --json | jq -r ".[] | select(.name == \"$1\") | .primary.node"; }

# --- moves during writes ---
idle=$(/usr/bin/python3 "$writer" write "$uri_n1" 1 64 | jq -r .p50_ms)
/usr/bin/python3 "$writer" write "$uri_n1" 6 256 >"$tmpdir/w1.json" &
writer_pid=$!
cleanup_fn kill_quietly "$writer_pid"
sleep 1
pauses=()
for target in n2 n1 n2 n1; do
  out=$(ctl pack move a --primary "$target" --json) || die "pack move a to $target: $out"
  [[ $(jq -r '.packs[0].primary.node' <<<"$out") == "$target" ]] || die "moved wrong: $out"
  [[ $(jq -r '.acked | join(",")' <<<"$out") == "n1,n2,n3" ]] || die "not every node acked: $out"
  pauses+=("$(jq -r '"\(.total_us / 1000) (acks after \(.barrier_us / 1000))"' <<<"$out")")
  sleep 0.5
done
wait "$writer_pid" || die "the writer failed during the moves: $(cat "$tmpdir/w1.json")"
[[ $(epoch a) == 5 ]] || die "pack a's epoch is $(epoch a) after 4 moves, wanted 5"
[[ $(primary a) == n1 ]] || die "pack a's primary is $(primary a), wanted n1"
# Every block holds its last acknowledged write, read through another node.
/usr/bin/python3 "$writer" check "$uri_n2" "$tmpdir/w1.json" || die "acknowledged writes lost"
jq -r '"writes: \(.writes), client latency p50 \(.p50_ms | floor * 1000 / 1000) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms"' "$tmpdir/w1.json"
echo "pause: the 4 moves held requests for (ms): ${pauses[*]}; idle write p50 $idle ms"
grep -Eq "reconfiguration /vvm/reconf/.* by vvctl on .*: a held, drained in [0-9]+ us, acknowledged" "$log_n3" ||
  die "n3 did not log its acknowledgement"

# --- a node that never acknowledges ---
/usr/bin/python3 "$writer" write "$uri_n1" 5 64 >"$tmpdir/w2.json" &
writer_pid=$!
cleanup_fn kill_quietly "$writer_pid"
sleep 0.5
kill -STOP "$pid_n3"
start=$(date +%s%N)
expect 1 "vvctl pack move: reconfiguration of pack a: node n3 did not acknowledge within 2000 ms \(2 of 3 did\); nothing changed and every node resumed" -- \
  ctl pack move a --primary n2 --timeout 2
elapsed=$((($(date +%s%N) - start) / 1000000))
((elapsed < 5000)) || die "the timed-out move took $elapsed ms"
[[ $(epoch a) == 5 && $(primary a) == n1 ]] || die "the timed-out move changed the mapping"
[[ $(etcdctl_ get --prefix /vvm/reconf/ --keys-only) == "" ]] || die "the intent is still there"
kill -CONT "$pid_n3"
wait "$writer_pid" || die "the writer failed while n3 was stopped"
max=$(jq -r .max_ms "$tmpdir/w2.json")
# n1 and n2 held the pack at most for the timeout, then resumed.
jq -e '.max_ms < 3000' "$tmpdir/w2.json" >/dev/null || die "the writer stalled $max ms"
/usr/bin/python3 "$writer" check "$uri_n2" "$tmpdir/w2.json" || die "acknowledged writes lost"
echo "ok: timed out after $elapsed ms naming n3; the writer's longest request $max ms"
# n3, continued, takes part again.
out=$(ctl pack move a --primary n2 --json) || die "move after SIGCONT: $out"
[[ $(jq -r '.acked | join(",")' <<<"$out") == "n1,n2,n3" ]] || die "n3 not back: $out"

# --- no request served under an old mapping: n1 (the secondary) replaced by n3 ---
/usr/bin/python3 - "nbd://127.0.0.2:$port_n1/pack/a" "$tmpdir/go" >"$tmpdir/old.out" 2>&1 <<'EOF' &
import os, sys, time
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pread(4096, 0)
print("read before", flush=True)
for _ in range(300):  # 30 s at most
    if os.path.exists(sys.argv[2]):
        break
    time.sleep(0.1)
try:
    h.pread(4096, 0)
    print("read after: served")
except nbd.Error as e:
    print("read after: refused:", e.string)
EOF
old_pid=$!
cleanup_fn kill_quietly "$old_pid"
wait_log "$tmpdir/old.out" "read before"
expect 0 "committed: 3 nodes acknowledged" -- ctl pack set-secondary a n3
touch "$tmpdir/go"
wait "$old_pid" || true
grep -q "read after: refused: .*Cannot send after transport endpoint shutdown" "$tmpdir/old.out" ||
  die "n1 served a connection opened under the old mapping: $(cat "$tmpdir/old.out")"
wait_log "$log_n1" "pack 'a': a reconfiguration moved it off this node's disk since this connection opened \(node n1\)"
out=$(ctl pack set-secondary a n1 --json) || die "pack set-secondary --json: $out"
check '.packs[0].secondary.node' n1 "$out"
check '.acked | join(",")' n1,n2,n3 "$out"
echo "ok: n1's connection from before its removal refused with ESHUTDOWN"

# --- drain ---
out=$(ctl cluster drain n2) || die "cluster drain n2: $out"
grep -q "node n2: drained" <<<"$out" || die "drain said: $out"
[[ $(primary a) == n1 && $(primary b) == n2 ]] || true
[[ $(primary a) == n1 ]] || die "pack a still on n2 after the drain: $(ctl cluster map)"
[[ $(primary b) == n1 ]] || die "pack b still on n2 after the drain: $(ctl cluster map)"
# cluster nodes shows n2 drained (since when), and n1 and n3 not.
nodes=$(ctl cluster nodes)
grep -Eq '^n2 .* since [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}$' <<<"$nodes" ||
  die "cluster nodes does not show n2 drained: $nodes"
grep -Eq '^n1 .* -$' <<<"$nodes" || die "cluster nodes shows n1 drained: $nodes"
aligned "$nodes" DRAINED
check 'map(select(.drained) | .name) | join(",")' n2 "$(ctl cluster nodes --json)"
check '.[] | select(.name == "n2") | .drained_since > 0' true "$(ctl cluster nodes --json)"
expect 1 "pack 'a': node n2 cannot be its primary: it is drained" -- ctl pack move a --primary n2
echo "c /x 40M 1M shared root root 0666" >"$tmpdir/c.tab"
expect 1 "node n2 is drained \(vvctl cluster undrain n2\); nothing imported" -- \
  ctl cluster import "$tmpdir/c.tab" --primary n1 --secondary n2 --disk d0
expect 0 "node n2: undrained" -- ctl cluster undrain n2
check 'map(select(.drained)) | length' 0 "$(ctl cluster nodes --json)"
expect 0 "committed: 3 nodes acknowledged" -- ctl pack move a --primary n2
# Drained again, with --json: the object of pack move, for the one pack moved.
out=$(ctl cluster drain n2 --json) || die "cluster drain n2 --json: $out"
check '[.packs[] | .name + ":" + .primary.node + "," + .secondary.node] | join(" ")' a:n1,n2 "$out"
check '.acked | join(",")' n1,n2,n3 "$out"
check '.drained' n2 "$out"
# cluster undrain --json: the node and since when it was drained.
since=$(ctl cluster nodes --json | jq '.[] | select(.name == "n2") | .drained_since')
out=$(ctl cluster undrain n2 --json) || die "cluster undrain n2 --json: $out"
check '.undrained' n2 "$out"
check '.drained_since' "$since" "$out"
check 'map(select(.drained)) | length' 0 "$(ctl cluster nodes --json)"
expect 0 "committed: 3 nodes acknowledged" -- ctl pack move a --primary n2
# A node that is no pack's primary: drained at once, and --json still prints JSON.
out=$(ctl cluster drain n3 --json) || die "cluster drain n3 --json: $out"
check '.drained' n3 "$out"
check '.packs | length' 0 "$out"
# Undrained by drain --undo --json, the same object; again: refused, not drained.
out=$(ctl cluster drain n3 --undo --json) || die "cluster drain n3 --undo --json: $out"
check '.undrained + " " + (.drained_since > 0 | tostring)' "n3 true" "$out"
expect 1 "vvctl cluster undrain: node n3 is not drained" -- ctl cluster undrain n3 --json
# Ending a drain runs no barrier: a --timeout for it is refused, not ignored.
expect 2 "--timeout bounds a reconfiguration's barrier; ending a drain runs none" -- \
  ctl cluster undrain n3 --timeout 5
expect 2 "--timeout bounds a reconfiguration's barrier" -- ctl cluster drain n3 --undo --timeout 5

# --- bad input, nothing changed ---
before=$(ctl cluster map --json)
expect 1 "pack 'zz' is not mapped in etcd" -- ctl pack move zz --primary n1
expect 1 "pack 'a': node n9 cannot be its primary: it is not a live member of the cluster \(live: n1, n2, n3\)" -- \
  ctl pack move a --primary n9
expect 1 "pack 'a': node n3 cannot be its primary: it has no disk 'd9' \(its disks: d0\)" -- \
  ctl pack move a --primary n3 --disk d9
expect 1 "pack 'a': node n2 is its primary already" -- ctl pack move a --primary n2
expect 1 "node n9 is neither a live member nor named by a mapping" -- ctl cluster drain n9
expect 2 "pack move: --primary 'n 1': bad character" -- ctl pack move a --primary "n 1"
[[ $(ctl cluster map --json) == "$before" ]] || die "a refused command changed the mappings"
kill_daemon "$etcd_pid"
expect 1 "vvctl pack move: etcd 127\.0\.0\.1:[0-9]+: .*(refused|connect)" -- ctl pack move a --primary n1
expect 1 "vvctl pack chmod: etcd 127\.0\.0\.1:[0-9]+: " -- ctl pack chmod a 0600
start_etcd --again
[[ $(ctl cluster map --json) == "$before" ]] || die "the mappings changed while etcd was down"
echo "ok: bad input refused, nothing changed"

# --- moves under a client of a forwarding node ---
# n3 reaches no copy of pack a and forwards it: each move changes its forwarder's servers while
# the client writes with flushes; no acknowledged write is lost or overtaken.
uri_n3="nbd://127.0.0.4:$port_n3/pack/a"
/usr/bin/python3 "$writer" write "$uri_n3" 4 256 >"$tmpdir/w3.json" &
writer_pid=$!
cleanup_fn kill_quietly "$writer_pid"
sleep 1
for target in n1 n2; do
  out=$(ctl pack move a --primary "$target" --json) || die "pack move a to $target, writer on n3: $out"
  [[ $(jq -r '.acked | join(",")' <<<"$out") == "n1,n2,n3" ]] || die "not every node acked: $out"
  sleep 0.5
done
wait "$writer_pid" || die "the writer through n3 failed during the moves: $(cat "$tmpdir/w3.json")"
grep -q "cluster state read at etcd revision [0-9]*: serving 0 packs from this node's disks, forwarding" "$log_n3" ||
  die "n3 does not forward pack a"
/usr/bin/python3 "$writer" check "$uri_n1" "$tmpdir/w3.json" || die "acknowledged writes through n3 lost"
jq -r '"ok: two moves under a client of the forwarding node n3, \(.writes) writes, none lost; slowest request \(.max_ms) ms"' \
  "$tmpdir/w3.json"
