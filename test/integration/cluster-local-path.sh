#!/usr/bin/env bash
# cluster-local-path.sh: a node's own clients when its path to a pack's disk fails, with a real
# etcd, three real nodes on 127.0.0.2-4 sharing one disk file, and real clients attached to the
# pack's primary, n2, itself (not through a forwarding node). Pack a: n2 primary, n3 secondary.
#   - n2's backing fails (VVM_TEST_PATH_FAULT) in the middle of fio verify through n2: n2 sends
#     its clients' requests to n3 (it says so once), fio ends with no error, the path is marked
#     down in etcd, and n3 serves them as node n2's connections;
#   - writes n2 acknowledged before the failure and never flushed may be lost: the next flush
#     through n2 fails (EIO) once, saying so, and the one after succeeds;
#   - the path mended, n2 serves its clients from its disk again, and the data is there.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires nbdsh --version
requires fio --version
requires qemu-io --version

start_three_nodes VVM_TEST_PATH_FAULT="a:$tmpdir/fault-n2"
n2=nbd://127.0.0.3:$port/pack/a
io "$n2" -c "write -P 0x5a 0 1M" # flushed by qemu-io as it ends

fio --name=verify --ioengine=nbd --uri="$n2" --size=$((32 * M)) --offset=$((32 * M)) \
  --rw=randwrite --bs=4k --iodepth=16 --rate_iops=4000 --verify=crc32c --do_verify=1 \
  --verify_fatal=1 >"$tmpdir/fio.out" 2>&1 &
fio_pid=$!
cleanup_fn kill_quietly "$fio_pid"
# The path fails once n2 has acknowledged (without a flush) 200 of fio's writes.
writes() { grep -c "vvm: pwrite count=" "${node_log[n2]}" || true; }
before=$(writes)
for ((i = 0; i < 100; i++)); do
  (($(writes) >= before + 200)) && break
  sleep 0.1
done
((i < 100)) || die "n2 did not serve 200 of fio's writes in 10 s: $(cat "$tmpdir/fio.out")"
kill -0 "$fio_pid" 2>/dev/null || die "fio ended before the path failed: $(cat "$tmpdir/fio.out")"
touch "$tmpdir/fault-n2"
wait "$fio_pid" || die "fio through n2 failed when n2's path failed: $(cat "$tmpdir/fio.out")"
grep -q 'err= 0' "$tmpdir/fio.out" || die "fio reported errors: $(cat "$tmpdir/fio.out")"
wait_log "${node_log[n2]}" "pack/a: this node's path to its disk is down \(.*VVM_TEST_PATH_FAULT.*\): its own clients' requests go to the other node \(pack a, forwarded to n3 \(epoch 1\)\)"
wait_log "${node_log[n2]}" "pack/a: the path to disk 'd0' failed \(.*\): marked down in etcd \(/vvm/path/a/n2\)"
wait_log "${node_log[n3]}" "open pack/a \(read-write\) for node n2 \(host 127.0.0.3\)"
[[ $(grep -c "its own clients' requests go to the other node" "${node_log[n2]}") == 1 ]] ||
  die "n2 said more than once that its clients go to n3"
echo "ok: n2's path failed under fio through n2: no client error, its requests went to n3"

# fio's writes that n2 acknowledged before the failure were never flushed there.
out=$(nbdsh -u "$n2" -c "
import nbd
h.pwrite(b'\x6b' * 4096, 8 << 20)
try:
    h.flush()
    print('first flush ok')
except nbd.Error as ex:
    print('first flush', ex.errno)
h.flush()
print('second flush ok')
assert h.pread(4096, 8 << 20) == b'\x6b' * 4096
assert h.pread(4096, 0) == b'\x5a' * 4096
" 2>&1) || die "nbdsh through n2 after the failure: $out"
grep -q 'first flush EIO' <<<"$out" || die "the first flush after the failover did not fail: $out"
grep -q 'second flush ok' <<<"$out" || die "nbdsh: $out"
wait_log "${node_log[n2]}" "pack/a: flush: writes acknowledged from this node's disk before its path failed were never flushed there, and may be lost"
echo "ok: the first flush after the failover failed, saying why; the next succeeded"

rm "$tmpdir/fault-n2"
wait_log "${node_log[n2]}" "pack/a: the path to disk 'd0' works again: marked up in etcd" 20
n3_writes=$(grep -c "vvm: pwrite count=" "${node_log[n3]}")
io "$n2" -c "read -P 0x6b 8M 4K" -c "read -P 0x5a 0 1M" -c "write -P 0x3c 9M 64K" -c "read -P 0x3c 9M 64K"
cmp -n $((64 * 1024)) <(tail -c +$((9 * M + 1)) "$disk") <(head -c $((64 * 1024)) /dev/zero | tr '\0' '\74') ||
  die "the write through n2 after the mend is not on the disk"
[[ $(grep -c "vvm: pwrite count=" "${node_log[n3]}") == "$n3_writes" ]] ||
  die "n2 still sent writes to n3 after its path was mended"
echo "ok: the path mended, n2 serves its clients from its disk again"
