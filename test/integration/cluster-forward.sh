#!/usr/bin/env bash
# cluster-forward.sh: the cluster's data path with a real etcd, three real nodes (nbdkit with the
# vvm plugin, each its own vvm.conf [cluster]) on 127.0.0.2, .3 and .4 sharing one disk file, and
# real clients attached to the node that reaches no copy of the pack, n1:
#   - n1 serves pack/a, mapped to n2 (primary) and n3 (secondary), by forwarding it: what it
#     advertises is what the servers offer (flush, FUA, trim, zero, fast zero, extents, cache,
#     block sizes, multi-conn), and every one of those goes through it, checked on the disk;
#   - the primary's path fails (VVM_TEST_PATH_FAULT): n2 answers the NAK and marks its path down
#     in etcd, n1 goes to n3 in the middle of fio verify with no error, `vvctl cluster map` shows
#     the path down (table and --json); the path mended, the probe marks it up, the map shows it
#     up and n1 goes back to n2;
#   - the primary is SIGKILLed in the middle of fio verify through n1: fio ends with no error,
#     and what a flush acknowledged before the kill is there; n2's key goes after the TTL and n1
#     says so; vvctl cluster nodes lists n2 DOWN (table and --json).
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires nbdinfo --version
requires nbdsh --version
requires fio --version
requires jq --version
ttl=3
quiet() { "$@" >"$tmpdir/out" 2>&1 || { cat "$tmpdir/out" >&2; die "'$*' failed"; }; }

start_three_nodes VVM_TEST_PATH_FAULT="a:$tmpdir/fault-n2"
wait_log "${node_log[n1]}" "cluster state read at etcd revision [0-9]+: serving 0 packs from this node's disks, forwarding 1"

# --- 1. what n1 advertises, and every NBD feature through it ---
quiet nbdinfo --json "$n1"
e=$(jq '.exports[0]' "$tmpdir/out")
check '."export-size"' $((64 * M)) "$e"
for k in can_flush can_fua can_trim can_zero can_fast_zero can_multi_conn can_cache; do
  check ".$k" true "$e"
done
check '.is_read_only' false "$e"
check '."block_size_minimum"' 1 "$e"
check '."block_size_preferred"' 4096 "$e"
check '.description' "pack a, forwarded to n2, n3 (epoch 1)" "$e"
check '[.contexts[] | select(. == "base:allocation")] | length' 1 "$e"
quiet nbdinfo --list --json "nbd://127.0.0.2:$port"
check '[.exports[]."export-name"] | sort | join(" ")' "pack/a pack/a@ro" "$(cat "$tmpdir/out")"

head -c $((16 * M)) /dev/urandom >"$tmpdir/in"
quiet nbdcopy --connections=4 "$tmpdir/in" "$n1"
cmp -n $((16 * M)) "$tmpdir/in" "$disk" || die "nbdcopy through n1: the disk differs"
quiet nbdcopy "$n1" "$tmpdir/back"
cmp -n $((16 * M)) "$tmpdir/in" "$tmpdir/back" || die "nbdcopy out of n1: the data differs"

# FUA write, flush, trim, zero (plain, fast, no-hole), cache and block status, through libnbd.
quiet nbdsh -c "
import nbd
M = 1 << 20
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri('$n1')
h.pwrite(b'\xab' * M, 20 * M, nbd.CMD_FLAG_FUA)
h.flush()
h.trim(M, 22 * M)
h.zero(64 * 1024, 20 * M)
h.zero(64 * 1024, 20 * M + 64 * 1024, nbd.CMD_FLAG_NO_HOLE)
try:
    h.zero(64 * 1024, 20 * M + 128 * 1024, nbd.CMD_FLAG_FAST_ZERO)
except nbd.Error as ex:
    assert ex.errno == 'EOPNOTSUPP', ex   # the server's honest answer, passed on
assert h.pread(128 * 1024, 20 * M) == bytes(128 * 1024)
assert h.pread(M - 192 * 1024, 20 * M + 192 * 1024) == b'\xab' * (M - 192 * 1024)
h.cache(M, 0)
seen = []
h.block_status(8 * M, 24 * M, lambda ctx, off, ents, err: seen.extend(ents) or 0)
assert seen and seen[1] & nbd.STATE_HOLE, seen   # the end of the disk was never written
print('features ok', h.get_block_size(nbd.SIZE_MAXIMUM))
"
grep -q 'features ok' "$tmpdir/out" || die "nbdsh: $(cat "$tmpdir/out")"
python3 - "$disk" <<'EOF' || die "the FUA write, zero or trim through n1 is not on the disk"
import sys
M = 1 << 20
d = open(sys.argv[1], "rb")
d.seek(20 * M)
b = d.read(M)
assert b[:128 * 1024] == bytes(128 * 1024)
assert b[192 * 1024:] == b"\xab" * (M - 192 * 1024)
d.seek(22 * M)
assert d.read(M) == bytes(M)
EOF
echo "ok: every NBD feature through the forwarding node n1"

# Each request reaches the primary as the client sent it, not emulated by n1's nbdkit (FUA as a
# write and a flush, zero as writes, fast zero refused, cache as reads, block status as "all
# data"): nbdkit -v logs every request a server gets, with its flags. Offsets unique in this test.
n2_requests() { grep -E "vvm: $1" "${node_log[n2]}" | grep -c . || true; }
flushes=$(n2_requests 'flush$')
quiet nbdsh -c "
import nbd
K, M = 1024, 1 << 20
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri('$n1')
h.pwrite(b'\xcd' * (96 * K), 26 * M + 32 * K, nbd.CMD_FLAG_FUA)
h.trim(48 * K, 27 * M, nbd.CMD_FLAG_FUA)
h.zero(80 * K, 28 * M)
h.zero(80 * K, 28 * M + 80 * K, nbd.CMD_FLAG_NO_HOLE)
h.zero(80 * K, 28 * M + 160 * K, nbd.CMD_FLAG_FAST_ZERO)   # a file punches a hole: fast
h.cache(112 * K, 29 * M)
h.block_status(144 * K, 30 * M, lambda ctx, off, ents, err: 0)
# multi-conn: a write on one connection is read on another, and a flush on that other one
# reaches the server (one forwarder serves every connection of the pack).
h2 = nbd.NBD()
h2.connect_uri('$n1')
h.pwrite(b'\xef' * (16 * K), 31 * M)
assert h2.pread(16 * K, 31 * M) == b'\xef' * (16 * K)
h2.flush()
print('requests sent')
"
grep -q 'requests sent' "$tmpdir/out" || die "nbdsh: $(cat "$tmpdir/out")"
for r in "pwrite count=98304 offset=$((26 * M + 32 * 1024)) fua=1" \
  "trim count=49152 offset=$((27 * M)) fua=1" \
  "zero count=81920 offset=$((28 * M)) may_trim=1 fua=0 fast=0" \
  "zero count=81920 offset=$((28 * M + 80 * 1024)) may_trim=0 fua=0 fast=0" \
  "zero count=81920 offset=$((28 * M + 160 * 1024)) may_trim=1 fua=0 fast=1" \
  "cache count=114688 offset=$((29 * M))" \
  "extents count=[0-9]+ offset=$((30 * M)) " \
  "pwrite count=16384 offset=$((31 * M)) fua=0"; do
  (($(n2_requests "$r") == 1)) || die "the primary n2 did not get '$r' once: $(grep 'vvm: ' "${node_log[n2]}" | tail -12)"
done
(($(n2_requests 'flush$') > flushes)) ||
  die "a flush on a second connection to n1, after a write on the first, did not reach n2"
# Block sizes: n1 advertises the primary's.
quiet nbdinfo --json "nbd://127.0.0.3:$port/pack/a"
want=$(jq -c '.exports[0] | [.block_size_minimum, .block_size_preferred, .block_size_maximum]' "$tmpdir/out")
quiet nbdinfo --json "$n1"
check '.exports[0] | [.block_size_minimum, .block_size_preferred, .block_size_maximum] | @json' "$want" "$(cat "$tmpdir/out")"
echo "ok: FUA, trim, zero (no-hole, fast), cache, block status and multi-conn's flush reach n2 as sent"

# fio_verify: random writes through n1, every block verified with crc32c, in the background
# ($fio_pid). At most 4000 writes a second, so that the 8192 writes take two seconds at least.
fio_verify() {
  fio --name=verify --ioengine=nbd --uri="$n1" --size=$((32 * M)) --offset=$((32 * M)) \
    --rw=randwrite --bs=4k --iodepth=16 --rate_iops=4000 --verify=crc32c --do_verify=1 \
    --verify_fatal=1 >"$tmpdir/fio$1.out" 2>&1 &
  fio_pid=$!
  cleanup_fn kill_quietly "$fio_pid"
}

# --- 2. the primary's path fails in the middle of fio, and is mended ---
# A client stays connected throughout: n1 closes the connections of a forwarder with no client
# after a while, and this part watches one forwarder go to n3 and come back.
connect_client keeper "$n1"
fio_verify 1
sleep 0.5
kill -0 "$fio_pid" 2>/dev/null || die "fio ended before the path failed: $(cat "$tmpdir/fio1.out")"
touch "$tmpdir/fault-n2"
wait "$fio_pid" || die "fio through n1 failed when the primary's path failed: $(cat "$tmpdir/fio1.out")"
grep -q 'err= 0' "$tmpdir/fio1.out" || die "fio reported errors: $(cat "$tmpdir/fio1.out")"
wait_log "${node_log[n1]}" "127.0.0.3:$port/pack/a@local is down: answered NBD_ESHUTDOWN"
wait_log "${node_log[n2]}" "pack/a: the path to disk 'd0' failed \(.*VVM_TEST_PATH_FAULT.*\): marked down in etcd \(/vvm/path/a/n2\)"
map=$(ctl cluster map)
grep -Eq '^a +n2:d0 +n3:d0 .*n2 down, n3 up' <<<"$map" || die "cluster map does not show n2's path down: $map"
check '.[0].paths.n2.up' false "$(ctl cluster map --json)"
check '.[0].paths.n2.reason | test("VVM_TEST_PATH_FAULT")' true "$(ctl cluster map --json)"
check '.[0].paths.n3.up' true "$(ctl cluster map --json)"
echo "ok: path down: n1 went to n3, the map shows it"

rm "$tmpdir/fault-n2"
wait_log "${node_log[n2]}" "pack/a: the path to disk 'd0' works again: marked up in etcd" 20
check '.[0].paths.n2.up' true "$(ctl cluster map --json)"
grep -Eq '^a +n2:d0 +n3:d0 .*n2 up, n3 up' <<<"$(ctl cluster map)" || die "cluster map: $(ctl cluster map)"
wait_log "${node_log[n1]}" "127.0.0.3:$port/pack/a@local is up again"
disconnect_client keeper
echo "ok: path mended: marked up, n1 back on n2"

# --- 3. the primary SIGKILLed in the middle of fio verify through n1 ---
# First a pattern acknowledged by a flush (qemu-io flushes before it ends), which must survive.
io "$n1" -c "write -P 0x6c 0 4M"
fio_verify 2
sleep 0.5
kill -0 "$fio_pid" 2>/dev/null || die "fio ended before the kill: $(cat "$tmpdir/fio2.out")"
kill_daemon "${node_pid[n2]}"
wait "$fio_pid" || die "fio through n1 failed when the primary died: $(cat "$tmpdir/fio2.out")"
grep -q 'err= 0' "$tmpdir/fio2.out" || die "fio reported errors: $(cat "$tmpdir/fio2.out")"
grep -q "127.0.0.3:$port/pack/a@local is down: connection lost" "${node_log[n1]}" ||
  die "n1 does not say that the primary's connection was lost"
io "$n1" -r -c "read -P 0x6c 0 4M"
cmp -n $((4 * M)) "$disk" <(head -c $((4 * M)) /dev/zero | tr '\0' '\154') ||
  die "the flushed pattern is not on the disk after the kill"
wait_log "${node_log[n1]}" "node n2 has left the cluster \(its key /vvm/node/n2 is gone" $((ttl + 5))
# The dead node is not dropped from cluster nodes: pack a's primary is DOWN, the others live.
nodes=$(ctl cluster nodes)
grep -Eq '^n2 +DOWN +- +- +- +- +-$' <<<"$nodes" || die "n2, killed, is not listed DOWN: $nodes"
grep -Eq "^n3 +live +127\.0\.0\.4:$port " <<<"$nodes" || die "n3 is not live: $nodes"
aligned "$nodes" STATE ADDRESS
check 'map("\(.name) \(.live) \(.packs | join(","))") | join(";")' "n1 true ;n2 false a;n3 true a" \
  "$(ctl cluster nodes --json)"
io "$n1" -c "write -P 0x2e 8M 1M" -c "read -P 0x2e 8M 1M"
echo "ok: primary killed under fio: no client error, flushed data there, n3 serves, n2 listed DOWN"
