#!/usr/bin/env bash
# pack-data.sh: the data path of three packs sharing one sparse backing file, driven by real
# clients: qemu-io patterns, write-zeroes and discard; nbdinfo --map extents before and after a
# trim; qemu-img info, convert and compare; nbdcopy with four connections; fio's nbd engine with
# crc32c verification; nbdfuse, mkfs.ext4 and a clean e2fsck, as a user attaching a disk would.
# Sentinel bytes in the gaps around every pack must never change, whatever the clients do.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
disk=$tmpdir/disk.img
sock=$tmpdir/nbd.sock
M=$((1024 * 1024))
uri() { echo "nbd+unix:///$1?socket=$sock"; }
quiet() { "$@" >"$tmpdir/out" 2>&1 || { cat "$tmpdir/out" >&2; die "'$*' failed"; }; }

# Layout (MiB): gap 0-1 | a 1-9 | gap 9-10 | b 10-18 | gap 18-20 | c 20-52 | gap 52-64.
# The backing is sparse except for the sentinels, so holes are there to be found.
truncate -s $((64 * M)) "$disk"
gaps=("0 1" "9 1" "18 2" "52 12")
sentinel=(0x11 0x22 0x33 0x44)
for i in "${!gaps[@]}"; do
  read -r off len <<<"${gaps[$i]}"
  quiet qemu-io -f raw -c "write -P ${sentinel[$i]} ${off}M ${len}M" "$disk"
done
check_gaps() {
  local i off len
  for i in "${!gaps[@]}"; do
    read -r off len <<<"${gaps[$i]}"
    qemu-io -f raw -r -c "read -P ${sentinel[$i]} ${off}M ${len}M" "$disk" >"$tmpdir/gap" 2>&1 ||
      die "$1: the gap at ${off}M changed: $(cat "$tmpdir/gap")"
    grep -q 'Pattern verification failed' "$tmpdir/gap" && die "$1: the gap at ${off}M changed"
  done
  return 0
}
printf '%s\n' \
  "a disk.img 1M  8M  shared    root root 0666" \
  "b disk.img 10M 8M  shared    root root 0666" \
  "c disk.img 20M 32M exclusive root root 0660" >"$tmpdir/packtab"
start_nbdkit "$sock" "$VVM_PLUGIN" packtab="$tmpdir/packtab"

# 1. What the exports offer: trim, zero, fast zero, extents, cache, multi-conn, block sizes.
info=$(nbdinfo --json "$(uri pack/a)")
for flag in can_trim can_zero can_fast_zero can_cache can_multi_conn can_fua can_flush; do
  [[ $(jq -r ".exports[0].$flag" <<<"$info") == true ]] || die "pack/a: $flag is not true: $info"
done
[[ $(jq -r '.exports[0].block_size_preferred' <<<"$info") == 4096 ]] ||
  die "pack/a: preferred block size is not 4096: $info"
ro_info=$(nbdinfo --json "$(uri pack/a@ro)")
for flag in can_trim can_zero; do
  [[ $(jq -r ".exports[0].$flag" <<<"$ro_info") == false ]] || die "pack/a@ro: $flag: $ro_info"
done

# 2. qemu-io on every pack: patterns across the whole pack, zeroes and discard at both edges.
for p in a b c; do
  size=$(nbdinfo --size "$(uri pack/$p)")
  quiet qemu-io -f raw -c "write -P 0x5a 0 $size" -c "write -z 0 64k" \
    -c "write -z $((size - 65536)) 64k" -c "discard 1M 1M" \
    -c "read -P 0 0 64k" -c "read -P 0 $((size - 65536)) 64k" -c "read -P 0 1M 1M" \
    -c "read -P 0x5a 64k $((M - 65536))" -c "read -P 0x5a 2M 1M" -c flush "$(uri pack/$p)"
  grep -q 'Pattern verification failed' "$tmpdir/out" && die "pack/$p: $(cat "$tmpdir/out")"
done
check_gaps "after qemu-io"
# A write across the end of a pack fails and never reaches the backing.
if qemu-io -f raw -c "write -P 0x66 $((8 * M - 4096)) 8192" "$(uri pack/a)" >"$tmpdir/out" 2>&1 &&
  ! grep -q 'error\|failed' "$tmpdir/out"; then
  die "a write across the end of pack/a succeeded: $(cat "$tmpdir/out")"
fi
check_gaps "after a write past the end"

# 3. Extents: a discarded range is a hole, written data is data, both pack-relative.
map=$(nbdinfo --map --json "$(uri pack/a)")
jq -e '[.[] | select(.offset <= 1048576 and .offset + .length >= 2097152 and .type % 2 == 1)]
       | length == 1' <<<"$map" >/dev/null || die "pack/a: 1M-2M is not a hole: $map"
jq -e '.[0].offset == 0 and .[0].type % 2 == 0' <<<"$map" >/dev/null ||
  die "pack/a: offset 0 is not data: $map"
quiet qemu-io -f raw -c "discard 0 $((8 * M))" "$(uri pack/b)"
map=$(nbdinfo --map --json "$(uri pack/b)")
jq -e 'length == 1 and .[0].offset == 0 and .[0].length == 8388608 and .[0].type == 3' \
  <<<"$map" >/dev/null || die "pack/b: not one hole after discarding all of it: $map"
check_gaps "after trims"

# 4. qemu-img: info sees the size; convert an image into a pack and compare it back.
qemu-img info --output=json "$(uri pack/c)" | jq -e '."virtual-size" == 33554432' >/dev/null ||
  die "qemu-img info: wrong size for pack/c"
head -c $((8 * M)) /dev/urandom >"$tmpdir/img8"
quiet qemu-img convert -n -f raw -O raw "$tmpdir/img8" "$(uri pack/a)"
quiet qemu-img compare -f raw -F raw "$tmpdir/img8" "$(uri pack/a)"
check_gaps "after qemu-img convert"

# 5. nbdcopy with four connections, in and out.
head -c $((8 * M)) /dev/urandom >"$tmpdir/in8"
quiet nbdcopy --connections=4 "$tmpdir/in8" "$(uri pack/b)"
quiet nbdcopy --connections=4 "$(uri pack/b)" "$tmpdir/out8"
cmp "$tmpdir/in8" "$tmpdir/out8" || die "nbdcopy: pack/b does not hold what was copied in"
check_gaps "after nbdcopy"

# 6. fio's nbd engine: random writes, every block verified with crc32c.
quiet fio --name=verify --ioengine=nbd --uri="$(uri pack/b)" --size=$((8 * M)) --rw=randwrite \
  --bs=16k --iodepth=8 --verify=crc32c --do_verify=1 --verify_fatal=1
grep -q 'err= 0' "$tmpdir/out" || die "fio reported errors: $(cat "$tmpdir/out")"
check_gaps "after fio"

# 7. A filesystem: nbdfuse shows pack/c as a file; mkfs.ext4 on it, then a clean e2fsck.
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

# 8. nbd-client -l lists the packs (over TCP: nbd-client takes a host and a port).
port=$(pick_unused_port)
start_nbdkit - -i 127.0.0.1 -p "$port" "$VVM_PLUGIN" packtab="$tmpdir/packtab"
listing=$(nbd-client -l 127.0.0.1 "$port")
grep -q '^pack/c' <<<"$listing" || die "nbd-client -l does not list pack/c: $listing"

check_gaps "at the end"
echo "pack-data: all checks passed"
