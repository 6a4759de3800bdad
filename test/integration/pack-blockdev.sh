#!/usr/bin/env bash
# pack-blockdev.sh: packs on a block device (a loop device over a sparse file): writes, zeroes
# (BLKZEROOUT), discards (BLKDISCARD) and reads land inside each pack, sentinel sectors between
# the packs never change, the minimum block size is the sector size, a fast zero is done only by
# the device's own WRITE ZEROES and refused rather than faked otherwise, and a pack not aligned to
# sectors is refused at start.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
requires losetup --version

make_tmpdir
truncate -s $((32 * M)) "$tmpdir/dev.img"
dev=$(losetup -f --show "$tmpdir/dev.img" 2>"$tmpdir/losetup.err") ||
  { echo "$0: SKIP: no loop device here: $(cat "$tmpdir/losetup.err")"; exit 77; }
cleanup_fn losetup -d "$dev"
[[ -b $dev ]] || die "$dev is not a block device"
sock=$tmpdir/nbd.sock
uri() { echo "nbd+unix:///$1?socket=$sock"; }
quiet() { "$@" >"$tmpdir/out" 2>&1 || { cat "$tmpdir/out" >&2; die "'$*' failed"; }; }

# Sentinels around two packs: 1M-9M and 10M-18M.
for r in "0 1 0x11" "9 1 0x22" "18 14 0x33"; do
  read -r off len pat <<<"$r"
  quiet qemu-io -f raw -c "write -P $pat ${off}M ${len}M" "$dev"
done
check_sentinels() {
  for r in "0 1 0x11" "9 1 0x22" "18 14 0x33"; do
    read -r off len pat <<<"$r"
    qemu-io -f raw -r -c "read -P $pat ${off}M ${len}M" "$dev" >"$tmpdir/s" 2>&1 &&
      ! grep -q 'verification failed' "$tmpdir/s" || die "$1: the sentinel at ${off}M changed"
  done
}
printf '%s\n' "a $dev 1M 8M shared root root 0666" "b $dev 10M 8M exclusive root root 0660" \
  >"$tmpdir/packtab"
start_nbdkit "$sock" "$VVM_PLUGIN" packtab="$tmpdir/packtab" holds="$tmpdir/holds"

info=$(nbdinfo --json "$(uri pack/a)")
[[ $(jq -r '.exports[0].block_size_minimum' <<<"$info") == 512 ]] ||
  die "the minimum block size is not the sector size: $info"
for p in a b; do
  quiet qemu-io -f raw -c "write -P 0x5a 0 8M" -c "write -z 0 1M" -c "write -z 7M 1M" \
    -c "discard 2M 1M" -c "read -P 0 0 1M" -c "read -P 0 7M 1M" -c "read -P 0x5a 1M 1M" \
    -c "read -P 0x5a 3M 4M" -c flush "$(uri pack/$p)"
  grep -q 'verification failed' "$tmpdir/out" && die "pack/$p: $(cat "$tmpdir/out")"
done
check_sentinels "after writes, zeroes and discards"
# Discarded sectors of a loop device read back as zeroes (the loop driver punches the file).
quiet qemu-io -f raw -c "read -P 0 2M 1M" "$(uri pack/a)"
grep -q 'verification failed' "$tmpdir/out" && die "discarded range of pack/a is not zero"

# A fast zero on a block device: refused when the client wants the range kept allocated
# (BLKZEROOUT may write every zero); with a hole allowed, done by the device's WRITE ZEROES if it
# has one (the loop driver does, when its file system can punch holes), refused otherwise.
wz=$(cat "/sys/block/${dev#/dev/}/queue/write_zeroes_max_bytes")
out=$(/usr/bin/python3 - "$(uri pack/a)" "$wz" <<'PY' 2>&1
import errno, nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"\x5c" * 131072, 0)
def fast_zero(offset, flags):
    try:
        h.zero(65536, offset, nbd.CMD_FLAG_FAST_ZERO | flags)
        return "done" if h.pread(65536, offset) == bytes(65536) else "not zero"
    except nbd.Error as e:
        return "refused" if e.errnum in (errno.ENOTSUP, errno.EOPNOTSUPP) else str(e)
kept = fast_zero(0, nbd.CMD_FLAG_NO_HOLE)
hole = fast_zero(65536, 0)
untouched = h.pread(65536, 0) == b"\x5c" * 65536 if kept == "refused" else False
print(kept, hole, untouched, "done" if int(sys.argv[2]) > 0 else "refused")
PY
)
read -r kept hole untouched expected <<<"$out"
[[ $kept == refused && $untouched == True ]] || die "fast zero with NO_HOLE: $out"
[[ $hole == "$expected" ]] || die "fast zero, hole allowed (write_zeroes_max_bytes $wz): $out"
check_sentinels "after the fast zero"

# Not aligned to the device's sectors: refused at start, naming the line.
printf '%s\n' "x $dev 1000 1M shared root root 0666" >"$tmpdir/unaligned"
if "$VVM_BUILD_DIR/client/vvctl" pack check "$tmpdir/unaligned" 2>"$tmpdir/err"; then
  die "an unaligned pack on a block device passed pack check"
fi
grep -q "unaligned:1: pack 'x': offset 1000 and size 1048576 must be multiples of $dev's 512-byte sectors" \
  "$tmpdir/err" || die "unaligned: $(cat "$tmpdir/err")"
echo "pack-blockdev: all checks passed"
