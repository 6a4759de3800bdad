#!/usr/bin/env bash
# forward-node.sh: a forwarding node (nbdkit with the vvm plugin and forward=) serving a pack
# that three other nbdkits serve from one shared backing file on 127.0.0.2, .3 and .4, driven by
# real clients attached to the node: nbdinfo, nbdcopy, qemu-io, nbdinfo --map; fio with crc32c
# verification while the primary's path fails (it answers NBD_ESHUTDOWN), and while the primary
# is SIGKILLed. The clients must see no error and every byte must be there.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
quiet() { "$@" >"$tmpdir/out" 2>&1 || { cat "$tmpdir/out" >&2; die "'$*' failed"; }; }
disk=$tmpdir/disk.img
size=$((64 * M))
truncate -s "$size" "$disk"
echo "a disk.img 0 $size shared root root 0666" >"$tmpdir/packtab"

port=$(pick_unused_port)
declare -A server_pid
for n in 2 3 4; do
  VVM_TEST_PATH_FAULT=a:$tmpdir/fault$n start_nbdkit - -i 127.0.0.$n -p "$port" "$VVM_PLUGIN" \
    packtab="$tmpdir/packtab" path-failure=nak
  server_pid[$n]=$nbdkit_pid
done
server() { echo "nbd://127.0.0.$1:$port/pack/a"; }

# Node 1 forwards to .2 (primary) and .3; node 2 to .3 (primary) and .4.
start_nbdkit "$tmpdir/node1.sock" "$VVM_PLUGIN" forward=a="$(server 2),$(server 3)"
node1_log=$nbdkit_log
start_nbdkit "$tmpdir/node2.sock" "$VVM_PLUGIN" forward=a="$(server 3),$(server 4)"
node2_log=$nbdkit_log
node() { echo "nbd+unix:///pack/a?socket=$tmpdir/node$1.sock"; }

# 1. What the node advertises is what the servers offer.
quiet nbdinfo --json "$(node 1)"
python3 - "$tmpdir/out" "$size" <<'EOF' || die "nbdinfo: $(cat "$tmpdir/out")"
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
assert e["export-size"] == int(sys.argv[2]), e["export-size"]
for k in ("can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_multi_conn",
          "can_cache"):
    assert e[k], k
assert not e["is_read_only"]
assert "forwarded to" in e.get("description", ""), e.get("description")
EOF
quiet nbdinfo --list "$(node 1)"
grep -q 'pack/a' "$tmpdir/out" || die "nbdinfo --list does not show pack/a: $(cat "$tmpdir/out")"

# 2. nbdcopy in through the node, out straight from a server and from the backing.
head -c $((16 * M)) /dev/urandom >"$tmpdir/in"
quiet nbdcopy --connections=4 "$tmpdir/in" "$(node 1)"
quiet nbdcopy "$(server 4)" "$tmpdir/out-server"
cmp -n $((16 * M)) "$tmpdir/in" "$tmpdir/out-server" || die "nbdcopy through the node: data differs"
cmp -n $((16 * M)) "$tmpdir/in" "$disk" || die "nbdcopy through the node: the backing differs"

# 3. Patterns, zero, discard, FUA and extents through the node.
quiet qemu-io -f raw -c "write -P 0xab -f 20M 1M" -c "write -z 20M 64k" -c "discard 21M 64k" \
  -c "read -P 0 20M 64k" -c "read -P 0xab $((20 * M + 65536)) 960k" "$(node 1)"
! grep -q 'Pattern verification failed' "$tmpdir/out" || die "qemu-io: $(cat "$tmpdir/out")"
quiet nbdinfo --map "$(node 1)"
# The end of the backing was never written: a hole, as the servers report it.
grep -q "hole" "$tmpdir/out" || die "nbdinfo --map shows no hole: $(cat "$tmpdir/out")"

# fio_verify NODE: random writes through NODE, every block verified with crc32c, in the
# background; $fio_pid. At most 4000 writes a second, so that the 8192 writes take two seconds
# at least, on any machine, and the failure half a second in lands in the middle of them.
fio_verify() {
  fio --name=verify --ioengine=nbd --uri="$(node "$1")" --size=$((32 * M)) --offset=$((32 * M)) \
    --rw=randwrite --bs=4k --iodepth=16 --rate_iops=4000 --verify=crc32c --do_verify=1 \
    --verify_fatal=1 \
    >"$tmpdir/fio$1.out" 2>&1 &
  fio_pid=$!
}
wait_a_little() { sleep 0.5; }

# 4. The primary's path fails in the middle of fio: it answers the NAK, node 1 goes to .3.
fio_verify 1
wait_a_little
kill -0 "$fio_pid" 2>/dev/null || die "fio ended before the path failed: $(cat "$tmpdir/fio1.out")"
touch "$tmpdir/fault2"
wait "$fio_pid" || die "fio through node 1 failed when the primary's path failed: $(cat "$tmpdir/fio1.out")"
grep -q 'err= 0' "$tmpdir/fio1.out" || die "fio reported errors: $(cat "$tmpdir/fio1.out")"
grep -q "127.0.0.2:$port/pack/a is down: answered NBD_ESHUTDOWN" "$node1_log" ||
  die "node 1 does not say that the primary answered the NAK: $(grep -v 'debug:' "$node1_log" | tail -5)"

# 5. Node 2's primary is SIGKILLed in the middle of fio: node 2 goes to .4. Node 2 connects to
# its servers first (at its first client), so that the kill is a lost connection even if fio is
# slow to start.
quiet nbdinfo --size "$(node 2)"
fio_verify 2
wait_a_little
kill -0 "$fio_pid" 2>/dev/null || die "fio ended before the kill: $(cat "$tmpdir/fio2.out")"
kill_daemon "${server_pid[3]}"
wait "$fio_pid" || die "fio through node 2 failed when the primary died: $(cat "$tmpdir/fio2.out")"
grep -q 'err= 0' "$tmpdir/fio2.out" || die "fio reported errors: $(cat "$tmpdir/fio2.out")"
grep -q "127.0.0.3:$port/pack/a is down: connection lost" "$node2_log" ||
  die "node 2 does not say that the primary's connection was lost: $(grep -v 'debug:' "$node2_log" | tail -5)"

# Both nodes still serve, now from their secondaries; the first 16 MiB are still the copy.
quiet nbdcopy "$(node 2)" "$tmpdir/out-node2"
cmp -n $((16 * M)) "$tmpdir/in" "$tmpdir/out-node2" || die "after the failovers the data differs"
echo "ok: forwarding node: NAK and kill of the primary under fio, no client error"
