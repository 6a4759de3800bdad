#!/usr/bin/env bash
# serve-pack.sh: real NBD clients against nbdkit serving packs with the vvm plugin: nbdinfo lists
# them, qemu-img sees their sizes, qemu-io writes and reads a writable pack (and only its slice of
# the backing changes), the @ro view reads but refuses writes, nbdcopy copies a pack out exactly,
# an unknown export is refused by name, and nbd-client -l lists the packs over TCP.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
disk=$tmpdir/disk.img
sock=$tmpdir/nbd.sock

# slice FILE OFFSET LENGTH: the bytes of FILE in [OFFSET, OFFSET + LENGTH) on stdout.
slice() {
  dd if="$1" bs=64K iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none
}
# same_bytes LABEL FILE1 FILE2 OFFSET LENGTH: the two files agree on that range.
same_bytes() {
  cmp <(slice "$2" "$4" "$5") <(slice "$3" "$4" "$5") >/dev/null ||
    die "$1: bytes $4..$(($4 + $5)) differ between $2 and $3"
}
uri() { echo "nbd+unix:///$1?socket=$sock"; }

# A 64M backing full of random bytes, so that a stray write anywhere shows; three packs with
# gaps between them. orig.img keeps the starting bytes.
head -c $((64 * M)) /dev/urandom >"$disk"
cp "$disk" "$tmpdir/orig.img"
cat >"$tmpdir/packtab" <<EOF
# name backing     offset size mode      owner group perms
a      disk.img    0      16M  exclusive root  root  0660
b      disk.img    16M    8M   ro        root  root  0644
c      disk.img    32M    16M  shared    root  root  rw-rw-rw-
EOF

start_nbdkit "$sock" "$VVM_PLUGIN" packtab="$tmpdir/packtab"

# 1. nbdinfo --list: both names of every pack, with a description giving size and mode.
list=$(nbdinfo --list --json "nbd+unix://?socket=$sock")
names=$(jq -r '.exports[]["export-name"]' <<<"$list" | sort | tr '\n' ' ')
[[ $names == "pack/a pack/a@ro pack/b pack/b@ro pack/c pack/c@ro " ]] ||
  die "nbdinfo --list shows '$names'"
desc() { jq -r --arg n "$1" '.exports[] | select(.["export-name"] == $n) | .description' <<<"$list"; }
[[ $(desc pack/a) == *16M*exclusive* ]] || die "pack/a description: $(desc pack/a)"
[[ $(desc pack/c@ro) == *16M*read-only* ]] || die "pack/c@ro description: $(desc pack/c@ro)"
ro() { jq -r --arg n "$1" '.exports[] | select(.["export-name"] == $n) | .is_read_only' <<<"$list"; }
[[ $(ro pack/a) == false && $(ro pack/a@ro) == true && $(ro pack/b) == true ]] ||
  die "read-only flags: pack/a $(ro pack/a), pack/a@ro $(ro pack/a@ro), pack/b $(ro pack/b)"
echo "ok nbdinfo --list: $names"

# 2. qemu-img info sees each pack's size.
for p in a:16 b:8 c:16; do
  size=$(qemu-img info --output=json "$(uri "pack/${p%%:*}")" | jq -r '.["virtual-size"]')
  ((size == ${p#*:} * M)) || die "qemu-img info: pack/${p%%:*} is $size bytes"
done
echo "ok qemu-img info sees 16M, 8M, 16M"

# 3. qemu-io writes and reads back on the writable packs; the backing changes inside their slices
# only.
out=$(qemu-io -f raw -c 'write -P 0xab 0 1M' -c 'read -P 0xab 0 1M' "$(uri pack/a)" 2>&1) ||
  die "qemu-io on pack/a: $out"
[[ $out == *"wrote 1048576/1048576"* && $out == *"read 1048576/1048576"* &&
  $out != *"verification failed"* ]] || die "qemu-io on pack/a: $out"
# The last MiB of pack c, so the write ends exactly at the pack's end.
out=$(qemu-io -f raw -c 'write -P 0x5a 15M 1M' -c 'read -P 0x5a 15M 1M' "$(uri pack/c)" 2>&1) ||
  die "qemu-io on pack/c: $out"
[[ $out == *"read 1048576/1048576"* && $out != *"verification failed"* ]] ||
  die "qemu-io on pack/c: $out"
cmp <(slice "$disk" 0 $M) <(head -c $M /dev/zero | tr '\0' '\253') >/dev/null ||
  die "the backing does not hold pack/a's write at 0"
cmp <(slice "$disk" $((47 * M)) $M) <(head -c $M /dev/zero | tr '\0' 'Z') >/dev/null ||
  die "the backing does not hold pack/c's write at 47M"
same_bytes "around pack/a's write" "$disk" "$tmpdir/orig.img" $M $((46 * M))
same_bytes "after pack/c" "$disk" "$tmpdir/orig.img" $((48 * M)) $((16 * M))
echo "ok qemu-io writes and reads pack/a and pack/c, nothing else changed"

# 4. The @ro view reads what pack/a holds and refuses writes, with or without -r.
out=$(qemu-io -r -f raw -c 'read -P 0xab 0 1M' "$(uri pack/a@ro)" 2>&1) ||
  die "qemu-io -r on pack/a@ro: $out"
[[ $out == *"read 1048576/1048576"* && $out != *"verification failed"* ]] ||
  die "qemu-io -r on pack/a@ro: $out"
if out=$(qemu-io -f raw -c 'write -P 0xcd 0 4k' "$(uri pack/a@ro)" 2>&1); then
  die "a write on pack/a@ro succeeded: $out"
fi
out=$(qemu-io -r -f raw -c 'write -P 0xcd 0 4k' "$(uri pack/a@ro)" 2>&1) || true
[[ $out != *"wrote 4096/4096"* ]] || die "qemu-io -r wrote to pack/a@ro: $out"
if out=$(qemu-io -f raw -c 'write -P 0xcd 0 4k' "$(uri pack/b)" 2>&1); then
  die "a write on the ro pack/b succeeded: $out"
fi
cmp <(slice "$disk" 0 4096) <(head -c 4096 /dev/zero | tr '\0' '\253') >/dev/null ||
  die "a refused write changed the backing"
same_bytes "pack/b" "$disk" "$tmpdir/orig.img" $((16 * M)) $((8 * M))
echo "ok pack/a@ro reads, and writes on pack/a@ro and pack/b are refused"

# 5. nbdcopy copies packs out byte for byte.
nbdcopy "$(uri pack/b@ro)" "$tmpdir/b.out"
cmp "$tmpdir/b.out" <(slice "$disk" $((16 * M)) $((8 * M))) || die "nbdcopy pack/b@ro differs"
nbdcopy "$(uri pack/c)" "$tmpdir/c.out"
cmp "$tmpdir/c.out" <(slice "$disk" $((32 * M)) $((16 * M))) || die "nbdcopy pack/c differs"
echo "ok nbdcopy pack/b@ro and pack/c match their backing slices"

# 6. An unknown export is refused, by name, on both sides.
if out=$(nbdinfo "$(uri pack/nope)" 2>&1); then die "nbdinfo opened pack/nope: $out"; fi
[[ $out == *pack/nope* ]] || die "the client's error does not name pack/nope: $out"
grep -q "unknown export 'pack/nope': no such pack in $tmpdir/packtab" "$nbdkit_log" ||
  die "nbdkit's log does not explain the refusal of pack/nope"
if out=$(nbdinfo "nbd+unix://?socket=$sock" 2>&1); then die "the default export opened: $out"; fi
echo "ok unknown and default exports are refused"

# 7. nbd-client -l over TCP lists the packs (it completes the handshake without a kernel device).
port=$(pick_unused_port)
start_nbdkit - -p "$port" -i 127.0.0.1 "$VVM_PLUGIN" packtab="$tmpdir/packtab"
out=$(nbd-client -l 127.0.0.1 "$port" 2>&1) || die "nbd-client -l: $out"
for name in pack/a pack/a@ro pack/b pack/b@ro pack/c pack/c@ro; do
  grep -q "^$name" <<<"$out" || die "nbd-client -l does not list $name: $out"
done
echo "ok nbd-client -l 127.0.0.1 $port lists the six exports"
