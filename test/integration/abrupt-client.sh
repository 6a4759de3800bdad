#!/usr/bin/env bash
# abrupt-client.sh: one client must not take the server down. harness/nbd_abrupt.py connects,
# sends 16 reads of 4 MiB and hangs up (a reset) without reading the replies, again and again,
# on pack/a, while fio writes pack/b of the same nbdkit with 64 KiB random writes and verifies
# what it wrote as it goes. With the plugin's default (parallel=auto: each connection's requests
# one at a time on nbdkit 1.32.4 to 1.33.9, which otherwise abort with "raw_send_socket:
# Assertion `sock >= 0' failed"), nbdkit must outlive every abrupt client and fio must finish
# with no error. The same server with parallel=yes shows that the test's client is one that brings
# such an nbdkit down: it must abort within 30 tries there (and must not on an nbdkit with the
# fix).
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
abrupt=(/usr/bin/python3 "$VVM_SOURCE_DIR/test/harness/nbd_abrupt.py")
truncate -s 256M "$tmpdir/disk.img"
printf '%s\n' "a disk.img 0 128M shared root root 0666" \
  "b disk.img 128M 128M shared root root 0666" >"$tmpdir/packtab"

# Whether this nbdkit is one that aborts (1.32.4 to 1.33.9).
version=$(nbdkit --version | awk '{ print $2 }')
IFS=. read -r major minor micro <<<"$version"
aborts=0
if ((major == 1 && ((minor == 32 && micro >= 4) || (minor == 33 && micro < 10)))); then aborts=1; fi
echo "nbdkit $version: the abort on an abrupt hang-up is $( ((aborts)) && echo there || echo fixed)"

# 1. parallel=yes: nbdkit's worker threads, as nbdkit runs a plugin by itself.
start_nbdkit "$tmpdir/par.sock" "$VVM_PLUGIN" packtab="$tmpdir/packtab" holds="$tmpdir/holds" \
  parallel=yes
status=0
out=$("${abrupt[@]}" --unix "$tmpdir/par.sock" --export pack/a --tries 30 --pid "$nbdkit_pid") ||
  status=$?
echo "parallel=yes: $out"
if ((aborts)); then
  ((status == 3)) || die "parallel=yes: nbdkit $version outlived 30 abrupt clients ($out): the test's client no longer triggers the abort"
  _vvm_killed[$nbdkit_pid]=1 # its abort was the point
  grep -q "Assertion .sock >= 0. failed" "$nbdkit_log" || die "nbdkit went down, but not with the assertion: $(tail -3 "$nbdkit_log")"
else
  ((status == 0)) || die "parallel=yes: nbdkit $version, which has the fix, went down: $out"
fi

# 2. The default: fio verifies pack/b while abrupt clients hammer pack/a.
start_nbdkit "$tmpdir/nbd.sock" "$VVM_PLUGIN" packtab="$tmpdir/packtab" holds="$tmpdir/holds"
grep -q "parallel=no: each connection's requests are handled one at a time" "$nbdkit_log" ||
  ((aborts == 0)) || die "the plugin did not choose parallel=no on nbdkit $version"
# fio writes for 15 s, verifying what it wrote as it goes (verify_backlog), so that it runs
# through the whole series of abrupt clients, which ends first.
fio --name=verify --ioengine=nbd --uri="nbd+unix:///pack/b?socket=$tmpdir/nbd.sock" \
  --rw=randwrite --bs=64k --size=32M --iodepth=8 --verify=crc32c --verify_backlog=128 \
  --verify_fatal=1 --verify_state_save=0 --time_based --runtime=15 >"$tmpdir/fio.out" 2>&1 &
fio_pid=$!
cleanup_fn kill_quietly "$fio_pid"
status=0
out=$("${abrupt[@]}" --unix "$tmpdir/nbd.sock" --export pack/a --tries 1000 --seconds 8 \
  --pid "$nbdkit_pid") || status=$?
echo "default: $out"
((status == 0)) || die "an abrupt client took nbdkit down: $out; $(tail -3 "$nbdkit_log")"
kill -0 "$fio_pid" 2>/dev/null || die "fio ended before the abrupt clients did: $(tail -5 "$tmpdir/fio.out")"
wait "$fio_pid" || die "fio --verify beside the abrupt clients failed: $(tail -20 "$tmpdir/fio.out")"
grep -q 'err= 0' "$tmpdir/fio.out" || die "fio reported errors: $(cat "$tmpdir/fio.out")"
kill -0 "$nbdkit_pid" || die "nbdkit is gone"
# A new client is served as before.
nbdsh -u "nbd+unix:///pack/b?socket=$tmpdir/nbd.sock" -c 'assert len(h.pread(65536, 0)) == 65536' ||
  die "a client after the abrupt ones was not served"
echo "fio: $(grep -E '^ *(READ|WRITE):' "$tmpdir/fio.out" | tr -s ' ' | tr '\n' ';')"
echo "PASS"
