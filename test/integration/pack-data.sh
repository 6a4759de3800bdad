#!/usr/bin/env bash
# pack-data.sh: the data path of three packs sharing one sparse backing file, driven by real
# clients: qemu-io patterns, FUA writes, write-zeroes and discard; libnbd fast zero, cache and a
# refused write on @ro; nbdinfo --map extents before and after a trim; qemu-img info, convert and
# compare; nbdcopy with four connections in and out; fio's nbd engine with crc32c verification;
# nbdfuse, mkfs.ext4 and a clean e2fsck, as a user attaching a disk would; nbd-client -l.
# The bytes around every pack (one pack starts and ends inside file-system blocks) must never
# change, whatever the clients do: they are compared with cmp at every step.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
disk=$tmpdir/disk.img
sock=$tmpdir/nbd.sock
uri() { echo "nbd+unix:///$1?socket=$sock"; }
quiet() { "$@" >"$tmpdir/out" 2>&1 || { cat "$tmpdir/out" >&2; die "'$*' failed"; }; }
no_mismatch() { ! grep -q 'Pattern verification failed' "$tmpdir/out" || die "$1: $(cat "$tmpdir/out")"; }

# Layout (bytes): gap | a [1M, 9M) | gap | b [10M+512, 18M-512) | gap | c [20M, 52M) | gap to 64M.
# b is not aligned to the file system's 4K blocks: punching and zeroing at its edges must keep
# the rest of those blocks. The backing is sparse apart from the gaps, so holes are there to find.
a_off=$((1 * M)) a_size=$((8 * M))
b_off=$((10 * M + 512)) b_size=$((8 * M - 1024))
c_off=$((20 * M)) c_size=$((32 * M))
gaps=("0 $a_off" "$((a_off + a_size)) $((b_off - a_off - a_size))"
  "$((b_off + b_size)) $((c_off - b_off - b_size))" "$((c_off + c_size)) $((64 * M - c_off - c_size))")
sentinel=(0x11 0x22 0x33 0x44)
truncate -s $((64 * M)) "$disk"
for i in "${!gaps[@]}"; do
  read -r off len <<<"${gaps[$i]}"
  quiet qemu-io -f raw -c "write -P ${sentinel[$i]} $off $len" "$disk"
  dd if="$disk" of="$tmpdir/gap$i" bs=512 skip=$((off / 512)) count=$((len / 512)) status=none
done
check_gaps() {
  local i off len
  for i in "${!gaps[@]}"; do
    read -r off len <<<"${gaps[$i]}"
    cmp "$tmpdir/gap$i" <(dd if="$disk" bs=512 skip=$((off / 512)) count=$((len / 512)) \
      status=none) >/dev/null || die "$1: the bytes in [$off, $((off + len))) changed"
  done
}
printf '%s\n' \
  "a disk.img $a_off $a_size shared    root root 0666" \
  "b disk.img $b_off $b_size shared    root root 0666" \
  "c disk.img $c_off $c_size exclusive root root 0660" >"$tmpdir/packtab"
start_nbdkit "$sock" "$VVM_PLUGIN" packtab="$tmpdir/packtab" holds="$tmpdir/holds"

# 1. What the exports offer: trim, zero, fast zero, extents, cache, multi-conn, block sizes.
info=$(nbdinfo --json "$(uri pack/a)")
for flag in can_trim can_zero can_fast_zero can_cache can_multi_conn can_fua can_flush; do
  [[ $(jq -r ".exports[0].$flag" <<<"$info") == true ]] || die "pack/a: $flag is not true: $info"
done
jq -e '.exports[0] | .block_size_minimum == 1 and .block_size_preferred == 4096
       and .block_size_maximum == 33554432' <<<"$info" >/dev/null ||
  die "pack/a: block sizes are not 1/4096/32M: $info"
ro_info=$(nbdinfo --json "$(uri pack/a@ro)")
for flag in can_trim can_zero can_fast_zero; do
  [[ $(jq -r ".exports[0].$flag" <<<"$ro_info") == false ]] || die "pack/a@ro: $flag: $ro_info"
done

# 2. qemu-io on every pack: patterns across the whole pack, a FUA write, zeroes (allocated and
# not) and a discard at both edges.
for p in a b c; do
  size=$(nbdinfo --size "$(uri pack/$p)")
  quiet qemu-io -f raw -c "write -P 0x5a 0 $size" -c "write -f -P 0x5b 4M 64k" \
    -c "write -z 0 64k" -c "write -z -u $((size - 65536)) 64k" -c "discard 1M 1M" \
    -c "read -P 0 0 64k" -c "read -P 0 $((size - 65536)) 64k" -c "read -P 0 1M 1M" \
    -c "read -P 0x5a 64k $((M - 65536))" -c "read -P 0x5a 2M 1M" -c "read -P 0x5b 4M 64k" \
    -c flush "$(uri pack/$p)"
  no_mismatch "pack/$p"
done
check_gaps "after qemu-io"
# A write across the end of a pack fails and never reaches the backing.
if qemu-io -f raw -c "write -P 0x66 $((a_size - 4096)) 8192" "$(uri pack/a)" >"$tmpdir/out" 2>&1 &&
  ! grep -q 'error\|failed' "$tmpdir/out"; then
  die "a write across the end of pack/a succeeded: $(cat "$tmpdir/out")"
fi
check_gaps "after a write past the end"

# 3. libnbd: a fast zero (a hole, or kept allocated) is done, not refused, on a file; cache is
# accepted; FUA write then flush; @ro refuses a write with EPERM and leaves the pack alone.
/usr/bin/python3 - "$(uri pack/b)" "$(uri pack/b@ro)" >"$tmpdir/out" 2>&1 <<'PY' ||
import errno, nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.can_fast_zero() and h.can_cache() and h.can_multi_conn()
h.pwrite(b"\x77" * 65536, 3 << 20, nbd.CMD_FLAG_FUA)
h.zero(65536, 3 << 20, nbd.CMD_FLAG_FAST_ZERO)
h.pwrite(b"\x77" * 65536, (3 << 20) + 65536)
h.zero(65536 - 100, (3 << 20) + 65536 + 50, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)
got = h.pread(131072, 3 << 20)
assert got == b"\0" * 65536 + b"\x77" * 50 + b"\0" * 65436 + b"\x77" * 50, "not zeroed as asked"
h.cache(h.get_size(), 0)
h.flush()
ro = nbd.NBD()
ro.connect_uri(sys.argv[2])
assert ro.is_read_only()
try:
    ro.pwrite(b"x", 0)
    sys.exit("a write on pack/b@ro succeeded")
except nbd.Error as e:
    assert e.errnum == errno.EPERM, e
assert ro.pread(1, 0) == b"\0"
print("ok")
PY
  die "libnbd checks: $(cat "$tmpdir/out")"
check_gaps "after fast zeroes"

# 4. Extents, pack-relative. pack/b starts 512 bytes into a 4K block, so a hole punched at pack
# offsets [1M, 2M) is the file's whole blocks inside it: [1M + 3584, 2M - 512) of the pack.
# (is_extent TYPE LO HI: one extent of that type covers [LO, HI).)
is_extent() {
  jq -e --argjson t "$1" --argjson lo "$2" --argjson hi "$3" \
    '[.[] | select(.offset <= $lo and .offset + .length >= $hi and .type == $t)] | length == 1' \
    <<<"$map" >/dev/null
}
edge=$((4096 - 512))
map=$(nbdinfo --map --json "$(uri pack/b)")
is_extent 0 $((2 * M)) $((3 * M)) || die "pack/b: 2M-3M is not data before the trim: $map"
is_extent 3 $((M + edge)) $((2 * M - 512)) || die "pack/b: the discarded 1M-2M is no hole: $map"
quiet qemu-io -f raw -c "discard 0 $b_size" "$(uri pack/b)"
# After discarding all of it, one hole covers everything but the partial blocks at either end.
map=$(nbdinfo --map --json "$(uri pack/b)")
is_extent 3 $edge $((b_size - edge)) || die "pack/b: [$edge, $((b_size - edge))) is no hole: $map"
jq -e --argjson size "$b_size" '.[-1].offset + .[-1].length == $size' <<<"$map" >/dev/null ||
  die "pack/b: the map does not end at the pack's end: $map"
quiet qemu-io -f raw -c "read -P 0 0 $b_size" "$(uri pack/b)"
no_mismatch "pack/b after the discard"
check_gaps "after trims"

# 5. qemu-img: info sees the size; convert an image into a pack and compare it back.
qemu-img info --output=json "$(uri pack/c)" | jq -e ".\"virtual-size\" == $c_size" >/dev/null ||
  die "qemu-img info: wrong size for pack/c"
head -c "$a_size" /dev/urandom >"$tmpdir/img-a"
quiet qemu-img convert -n -f raw -O raw "$tmpdir/img-a" "$(uri pack/a)"
quiet qemu-img compare -f raw -F raw "$tmpdir/img-a" "$(uri pack/a)"
check_gaps "after qemu-img convert"

# 6. nbdcopy with four connections, in and out.
head -c "$b_size" /dev/urandom >"$tmpdir/in-b"
quiet nbdcopy --connections=4 "$tmpdir/in-b" "$(uri pack/b)"
quiet nbdcopy --connections=4 "$(uri pack/b)" "$tmpdir/out-b"
cmp "$tmpdir/in-b" "$tmpdir/out-b" || die "nbdcopy: pack/b does not hold what was copied in"
check_gaps "after nbdcopy"

# 7. fio's nbd engine: random writes, every block verified with crc32c.
quiet fio --name=verify --ioengine=nbd --uri="$(uri pack/a)" --size="$a_size" --rw=randwrite \
  --bs=16k --iodepth=8 --verify=crc32c --do_verify=1 --verify_fatal=1
grep -q 'err= 0' "$tmpdir/out" || die "fio reported errors: $(cat "$tmpdir/out")"
check_gaps "after fio"

# 8. A file system: nbdfuse shows pack/c as a file; mkfs.ext4 on it, then a clean e2fsck.
mkdir "$tmpdir/mnt"
nbdfuse "$tmpdir/mnt/disk" "$(uri pack/c)" >"$tmpdir/nbdfuse.log" 2>&1 &
fuse_pid=$!
cleanup_fn bash -c "fusermount3 -u '$tmpdir/mnt' 2>/dev/null; true"
for ((i = 0; i < 100; i++)); do
  [[ -f $tmpdir/mnt/disk ]] && break
  sleep 0.1
done
[[ -f $tmpdir/mnt/disk ]] || die "nbdfuse did not mount pack/c: $(cat "$tmpdir/nbdfuse.log")"
quiet mkfs.ext4 -F -q "$tmpdir/mnt/disk"
quiet e2fsck -fn "$tmpdir/mnt/disk"
fusermount3 -u "$tmpdir/mnt"
wait "$fuse_pid" || die "nbdfuse exited with status $?"
check_gaps "after mkfs.ext4"
# The ext4 superblock magic, 0xEF53 little-endian at byte 1080, read back through NBD.
quiet nbdcopy "$(uri pack/c)" "$tmpdir/c.img"
magic=$(od -An -tx1 -j1080 -N2 "$tmpdir/c.img" | tr -d ' ')
[[ $magic == 53ef ]] || die "pack/c holds no ext4 superblock (magic '$magic')"

# 9. nbd-client -l lists the packs (over TCP: nbd-client takes a host and a port).
port=$(pick_unused_port)
start_nbdkit - -i 127.0.0.1 -p "$port" "$VVM_PLUGIN" packtab="$tmpdir/packtab" \
  holds="$tmpdir/holds"
listing=$(nbd-client -l 127.0.0.1 "$port")
for p in a b c; do
  grep -q "^pack/$p" <<<"$listing" || die "nbd-client -l does not list pack/$p: $listing"
done

check_gaps "at the end"
echo "pack-data: all checks passed"
