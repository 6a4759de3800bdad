#!/usr/bin/env bash
# bench/mover.sh: the mover's copy engine against dd, side by side in one run, on one filesystem
# (a folder under ${TMPDIR:-/var/tmp}, never tmpfs), with a random source file of SIZE_MIB:
#   archive  vvtape write SRC onto a fresh labelled .tap image     vs  dd if=SRC of=DST bs=256K
#            (its final tape mark fdatasyncs the image)                 conv=fsync
#   stage    vvtape cat TAPE 1 --sync > OUT (fsyncs OUT)            vs  dd if=DST of=OUT bs=256K
#                                                                       conv=fsync
# Both sides count durable bytes. The page cache is dropped before each side of both directions
# when this runs as root on a real kernel (echo 3 > /proc/sys/vm/drop_caches); otherwise each
# side's input is read once first, so that both read from the cache (the output says which).
# Each repeat runs vvm and dd in turn, vvm first in odd repeats and dd first in even ones. A
# warm-up round (repeat 0: one archive each, printed, not counted) comes first: the first 1 GiB
# written after the source file is created runs at half speed here, whoever writes it. Prints
# every figure, the median MB/s (10^6 bytes) of each side with its range, the ratio vvm/dd of
# the medians per direction and whether the target (at least 0.9x dd) is met. These
# machines are noisy (run with dd on both sides, this script gave archive figures from 280 to
# 900 MB/s): compare ratios over several runs.
#
#   bench/mover.sh [BUILD_DIR] [SIZE_MIB] [REPEAT]     default: build/run (or the first build
#                                                      folder with mover/vvtape) 1024 3
#
# vvtape uses vvmover's own archive() and read_file() (mover/copy/copy.cc): a reader thread and a
# writer overlapped through 8 buffers of 256 KiB, XXH3-64 computed on the stream. vvmover's
# stage() also writes a temporary file and renames it (one rename and one folder fsync more).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [[ $# -ge 1 && -n $1 ]]; then
  build=$1
else
  build=$here/build/run
  if [[ ! -x $build/mover/vvtape ]]; then
    for b in "$here"/build*/ "$here"/build/*/; do
      [[ -x $b/mover/vvtape ]] && { build=${b%/}; break; }
    done
  fi
fi
size_mib=${2:-1024}
repeat=${3:-3}
vvtape=$build/mover/vvtape
[[ -x $vvtape ]] && vvtape=$(cd "$build/mover" && pwd)/vvtape
[[ -x $vvtape ]] || { echo "bench/mover.sh: $vvtape not found: build first (./vvm-dev run builds build/run)" >&2; exit 2; }
[[ $size_mib =~ ^[1-9][0-9]*$ && $repeat =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: bench/mover.sh [BUILD_DIR] [SIZE_MIB] [REPEAT]" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/vvm-bench-mover.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
read -r fstype fsdev fsmount < <(findmnt -no FSTYPE,SOURCE,TARGET -T "$tmp")
if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
  echo "bench/mover.sh: $tmp is on $fstype: set TMPDIR to a folder on a disk" >&2
  exit 2
fi
bytes=$((size_mib * 1024 * 1024))
src=$tmp/src.img tape=$tmp/BENCH.tap dst=$tmp/dst.img

# drop: empties the page cache (after writing back what is dirty); false if it cannot.
drop() { sync && { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; }
if drop; then
  cache="dropped before each side (echo 3 > /proc/sys/vm/drop_caches)"
  can_drop=1
else
  cache="NOT dropped (drop_caches failed: not root, or not a real kernel): each side's input is read once first, both read from the page cache"
  can_drop=0
fi
# before INPUT: what runs just before a timed side.
before() {
  if ((can_drop)); then drop; else sync && cat "$1" >/dev/null; fi
}
# timed VAR COMMAND...: runs COMMAND, sets VAR to its MB/s for `bytes`.
timed() {
  local var=$1 t0 t1
  shift
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  printf -v "$var" '%s' "$(awk "BEGIN { printf \"%.1f\", $bytes / 1e6 / ($t1 - $t0) }")"
}
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f", lo, hi }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }

# The sides. The commands are printed as they run (paths under $tmp).
label_tape() {
  rm -f "$tape" "$tape.capacity"
  "$vvtape" label "$tape" --vsn BENCH --media LTO9 >/dev/null
}
vvm_archive() {
  "$vvtape" write "$tape" --vsn BENCH --file 1 --class A --serial 1 --id 1 "$src" >"$tmp/write.out"
}
dd_archive() { dd if="$src" of="$dst" bs=256K conv=fsync status=none; }
vvm_stage() { "$vvtape" cat "$tape" 1 --sync >"$tmp/out.vvm"; }
dd_stage() { dd if="$dst" of="$tmp/out.dd" bs=256K conv=fsync status=none; }

printf 'bench/mover.sh: %s MiB, %s repeats, %s CPUs, %s, %s\n' "$size_mib" "$repeat" "$(nproc)" \
  "$(uname -r)" "$(date -u +%FT%TZ)"
printf 'vvtape:     %s (%s)\n' "$vvtape" "$("$vvtape" --version)"
printf 'filesystem: %s on %s mounted at %s; files in %s\n' "$fstype" "$fsdev" "$fsmount" "$tmp"
printf 'page cache: %s\n' "$cache"
printf 'commands (tape relabelled and outputs removed before each side, outside the timing):\n'
printf '  archive vvm: %s label %s --vsn BENCH --media LTO9  (not timed)\n' "$vvtape" "$tape"
printf '               %s write %s --vsn BENCH --file 1 --class A --serial 1 --id 1 %s\n' "$vvtape" "$tape" "$src"
printf '  archive dd:  dd if=%s of=%s bs=256K conv=fsync\n' "$src" "$dst"
printf '  stage vvm:   %s cat %s 1 --sync > %s\n' "$vvtape" "$tape" "$tmp/out.vvm"
printf '  stage dd:    dd if=%s of=%s bs=256K conv=fsync\n' "$dst" "$tmp/out.dd"

head -c "$bytes" /dev/urandom >"$src"
sync

arch_vvm=() arch_dd=() stage_vvm=() stage_dd=()
printf '\n%-8s %-7s %-6s %10s\n' repeat dir side MB/s
for ((k = 0; k <= repeat; k++)); do
  if ((k % 2)); then order=(vvm dd); else order=(dd vvm); fi
  for side in "${order[@]}"; do
    if [[ $side == vvm ]]; then
      label_tape
      before "$src"
      timed v vvm_archive
      ((k == 0)) || arch_vvm+=("$v")
    else
      rm -f "$dst"
      before "$src"
      timed v dd_archive
      ((k == 0)) || arch_dd+=("$v")
    fi
    printf '%-8s %-7s %-6s %10s%s\n' "$k" archive "$side" "$v" "$( ((k > 0)) || echo '  (warm-up, not counted)')"
  done
  ((k > 0)) || continue
  for side in "${order[@]}"; do
    rm -f "$tmp/out.$side"
    if [[ $side == vvm ]]; then
      before "$tape"
      timed v vvm_stage
      stage_vvm+=("$v")
    else
      before "$dst"
      timed v dd_stage
      stage_dd+=("$v")
    fi
    printf '%-8s %-7s %-6s %10s\n' "$k" stage "$side" "$v"
  done
done

# The copies must be the source, or the figures mean nothing.
for f in "$dst" "$tmp/out.vvm" "$tmp/out.dd"; do
  cmp -s "$src" "$f" || { echo "bench/mover.sh: $f differs from the source" >&2; exit 1; }
done
echo "(all copies compared equal to the source; vvtape write: $(cat "$tmp/write.out"))"

printf '\n%-9s %9s %-10s %9s %-10s %7s  %s\n' direction "vvm MB/s" "(range)" "dd MB/s" "(range)" vvm/dd \
  "target >= 0.90"
for dir in archive stage; do
  if [[ $dir == archive ]]; then
    vs=("${arch_vvm[@]}") ds=("${arch_dd[@]}")
  else
    vs=("${stage_vvm[@]}") ds=("${stage_dd[@]}")
  fi
  mv=$(median "${vs[@]}") md=$(median "${ds[@]}")
  r=$(ratio "$mv" "$md")
  met=$(awk "BEGIN { print ($r >= 0.9) ? \"met\" : \"NOT met\" }")
  printf '%-9s %9s %-10s %9s %-10s %7s  %s\n' "$dir" "$mv" "($(range "${vs[@]}"))" "$md" \
    "($(range "${ds[@]}"))" "$r" "$met"
done
echo "(medians of $repeat repeats; MB = 10^6 bytes)"
