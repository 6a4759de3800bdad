#!/usr/bin/env bash
# vv-stage.sh: evicted VVs staged back from tape by the real vvmd, vvmover and nbdkit plugin:
#  - 20 VVs archived over 3 tapes (small tapes fill up), evicted, then staged in a shuffled order
#    with one `vvctl stage --wait`: exactly 3 mounts, each tape read in file order, every VV's
#    bytes back as they were;
#  - an evicted VV read through its vv/NAME export with `qemu-img compare`: the open stages it,
#    transparently;
#  - one copy corrupted on tape: the stage reports that copy and uses the other one;
#  - vvmd killed with SIGKILL during a stage: on restart the stage is queued again, the mover's
#    temporary file is gone, and the VV comes back whole.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
keep=$tmpdir/originals
mkdir -p "$keep"

# Tapes of class B hold 7 VVs of 1 MiB (with 64 KiB blocks and the labels) before they fill.
# d1 is slow, so that a stage of 8 MiB takes 4 s: time to kill vvmd in the middle of one.
vvm_conf drives="LTO9 LTO8" plugin.stage-timeout=2m media.LTO9.capacity=7500K \
  class.B.media=LTO9 class.C.media=LTO8 drive.d1.emulated-rate=2M

# new_vv CLASS KIB: a VV of random data written through its cache file, kept in $keep; its name
# in $vv.
new_vv() {
  vv=$(ctl create --class "$1" --size "$2K")
  head -c "$(($2 << 10))" /dev/urandom >"$cache/$vv"
  cp "$cache/$vv" "$keep/$vv"
}
same() { cmp -s "$cache/$1" "$keep/$1" || die "$1 came back different"; }
cache_state() { ctl show "$1" --json | jq -r .cache; }

start_vvmd
start_mover m1
for t in L90001 L90002 L90003 L90004; do ctl vsn add "$t" --media LTO9 >/dev/null; done
ctl vsn add L80001 --media LTO8 >/dev/null
ctl vsn add L80002 --media LTO8 --class C >/dev/null

# --- 20 VVs over 3 tapes, evicted, staged back: 3 mounts, file order ---
names=()
for i in $(seq 20); do
  new_vv B 1024
  names+=("$vv")
  ctl finish "$vv" >/dev/null
done
for v in "${names[@]}"; do ctl finish "$v" --wait --timeout 120 >/dev/null; done
tapes=$(for v in "${names[@]}"; do ctl show "$v" --json | jq -r '.copies[0].vsn'; done | sort -u)
[[ $(wc -l <<<"$tapes") == 3 ]] || die "20 VVs are on these tapes, wanted 3: $tapes"
echo "ok: 20 VVs archived over 3 tapes: $(echo $tapes)"
for v in "${names[@]}"; do ctl evict "$v" >/dev/null; done
for v in "${names[@]}"; do
  [[ $(cache_state "$v") == evicted && ! -e $cache/$v ]] || die "$v was not evicted"
done
echo "ok: 20 VVs evicted"
# A fresh vvmd: the drives start empty, so every tape needs a mount.
stop_vvmd
start_vvmd
mapfile -t shuffled < <(printf '%s\n' "${names[@]}" | shuf)
ctl stage "${shuffled[@]}" --wait --timeout 120 >"$tmpdir/stage.out" ||
  die "stage --wait failed: $(cat "$tmpdir/stage.out")"
[[ $(grep -c ': staged$' "$tmpdir/stage.out") == 20 ]] || die "stage printed: $(cat "$tmpdir/stage.out")"
for v in "${names[@]}"; do
  [[ $(cache_state "$v") == cached ]] || die "$v is $(cache_state "$v") after stage --wait"
  same "$v"
done
echo "ok: 20 VVs staged back, each the same bytes"
mounts=$(grep -c ' mount L9' "$vvmd_log" || true)
((mounts == 3)) || die "20 stages on 3 tapes took $mounts mounts: $(grep ' mount ' "$vvmd_log")"
echo "ok: 3 mounts"
for t in $tapes; do
  files=$(grep -o "stage started: drive d0, VSN $t, file [0-9]*" "$mover_log" | awk '{ print $NF }')
  [[ $files == "$(sort -n <<<"$files")" && -n $files ]] || die "$t was read in this order: $(echo $files)"
done
echo "ok: each tape read in file order"

# --- an evicted VV read through NBD: the open stages it ---
start_plugin "$tmpdir/nbd.sock"
new_vv A 3072
two=$vv
ctl finish "$two" --wait --timeout 60 >/dev/null
ctl evict "$two" >/dev/null
[[ $(cache_state "$two") == evicted ]] || die "$two not evicted"
nbdinfo --list "nbd+unix:///?socket=$tmpdir/nbd.sock" >/dev/null
[[ $(cache_state "$two") == evicted ]] || die "a listing staged $two"
qemu-img compare -f raw -F raw "$keep/$two" "nbd+unix:///vv/$two?socket=$tmpdir/nbd.sock" ||
  die "qemu-img compare of the staged $two failed"
[[ $(cache_state "$two") == cached ]] || die "$two is $(cache_state "$two") after the read"
grep -q "stage VV $two .*a client waits" "$vvmd_log" || die "vvmd did not log the stage"
echo "ok: reading the evicted $two through NBD staged it transparently"

# --- one copy corrupted on tape: the other is used, the bad one reported ---
ctl evict "$two" >/dev/null
copy1=$(ctl show "$two" --json | jq -r '.copies[0].vsn')
# Some bytes from the middle of the VV's data, found in copy 1's tape image and flipped there.
python3 - "$library/$copy1.tap" "$keep/$two" <<'PY'
import sys
image, data = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read()
needle = data[1500000:1500032]
at = image.find(needle)
assert at >= 0 and image.find(needle, at + 1) < 0, "the bytes are not in the image once"
with open(sys.argv[1], 'r+b') as f:
    f.seek(at + 7)
    f.write(bytes([image[at + 7] ^ 0xFF]))
PY
stop_vvmd # the drives forget their tapes: copy 1 is the first choice again
start_vvmd
ctl stage "$two" --wait --timeout 60 >/dev/null || die "stage of $two with a bad copy 1 failed"
same "$two"
grep -q "VV $two: copy 1 on $copy1 file .* failed its checks" "$vvmd_log" ||
  die "vvmd did not report the bad copy on $copy1"
grep -q "VV $two: copy 1 set aside; staging from copy 2 on L80001" "$vvmd_log" ||
  die "vvmd did not go on to copy 2"
ctl vsn ls --json | jq -e --arg t "$copy1" '.[] | select(.name == $t) | .bad_files >= 1' >/dev/null ||
  die "the failure was not counted on $copy1"
echo "ok: a corrupted copy is reported and the other copy staged"

# --- vvmd killed during a stage ---
new_vv C 8192 # one copy, on the slow LTO8 drive
slow=$vv
ctl finish "$slow" --wait --timeout 60 >/dev/null
ctl evict "$slow" >/dev/null
stop_vvmd
start_vvmd
ctl stage "$slow" >/dev/null
for ((i = 0; i < 100; i++)); do
  compgen -G "$cache/.stage.$slow.*" >/dev/null && break
  sleep 0.1
done
compgen -G "$cache/.stage.$slow.*" >/dev/null || die "no stage of $slow under way"
kill_vvmd
echo "ok: vvmd killed while $slow was being staged"
sleep 5 # the orphaned copy ends; its report finds nobody
start_vvmd
grep -q "recovery: 1 stage(s) queued again" "$vvmd_log" || die "vvmd did not requeue the stage"
for ((i = 0; i < 300; i++)); do
  [[ $(cache_state "$slow") == cached ]] && break
  sleep 0.1
done
[[ $(cache_state "$slow") == cached ]] || die "$slow is $(cache_state "$slow") after the restart"
same "$slow"
! compgen -G "$cache/.stage.*" >/dev/null || die "stage leftovers: $(ls -a "$cache")"
echo "ok: the stage cut short by SIGKILL was done again after the restart"
