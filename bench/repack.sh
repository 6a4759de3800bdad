#!/usr/bin/env bash
# bench/repack.sh: `vvctl vsn repack` against dd of the same bytes, tape image to tape image, side
# by side in one run, with the real vvmd and one vvmover driving two unthrottled emulated LTO9
# drives:
#
#   repack  COUNT VVs of SIZE_MIB random bytes, archived on one tape and evicted, are moved to
#           the other tape by `vvctl vsn repack SRC --wait`: the one mover holds both drives, so
#           each VV is copied tape to tape (one copy process reads SRC in one drive and writes
#           DST in the other), one move committed at a time; the clock runs from the request to
#           the end of the wait (polled every 0.1 s). The next round reclaims the emptied tape,
#           evicts the VVs again and repacks the other way. vvmd's log says which way each move
#           went (tape to tape, or through the cache: a stage, then an archive write); the
#           counts are printed a round.
#   dd      dd if=SRC.tap of=copy.tap bs=256K conv=fsync: the same tape image's bytes copied once
#           (labels and tape marks included), durable at the end.
#
# Both sides count the VVs' data bytes (COUNT x SIZE_MIB MiB), in MB/s (10^6 bytes). The page
# cache is dropped before each side when that works (root on a real kernel); else the source
# image is read once first, so both read from the page cache (the output says which). The sides
# take turns going first. Prints every figure, the medians, repack/dd and whether the target (at
# least 0.8x dd) is met; every VV is checked against its source at the end.
#
#   bench/repack.sh [BUILD_DIR] [SIZE_MIB] [COUNT] [REPEAT]
#       default: build/rel (meson setup build/rel . -Dbuildtype=release), else build-rel, else
#       build/run, else the first build folder with vvmd; 32, 16, 3
#
# Needs jq. Files go to a folder under ${TMPDIR:-/var/tmp} (tmpfs refused); everything started is
# stopped, and the folder removed, at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
usage() {
  echo "usage: bench/repack.sh [BUILD_DIR] [SIZE_MIB] [COUNT] [REPEAT]" >&2
  exit 2
}
source "$here/bench/build-dir.sh"
find_rel_build bench/repack.sh "${1:-}"
size_mib=${2:-32}
count=${3:-16}
repeat=${4:-3}
[[ $size_mib =~ ^[1-9][0-9]*$ && $count =~ ^[1-9][0-9]*$ && $repeat =~ ^[1-9][0-9]*$ ]] || usage
build=$(cd "$build" && pwd)
vvmd=$build/vvmd/vvmd vvmover=$build/mover/vvmover vvctl=$build/client/vvctl
vvtape=$build/mover/vvtape
for f in "$vvmd" "$vvmover" "$vvctl" "$vvtape"; do
  [[ -x $f ]] || { echo "bench/repack.sh: $f not found: build first" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "bench/repack.sh: needs jq" >&2; exit 2; }

source "$here/bench/run-dir.sh"
bench_dir bench/repack.sh repack --disk
bytes=$((size_mib * 1024 * 1024 * count))
drop_note
mbs() { awk "BEGIN { printf \"%.1f\", $bytes / 1e6 / ($2 - $1) }"; }

dir=$tmp/vvm
mkdir -p "$dir"
tape_conf "$dir" none m1:LTO9 m1:LTO9
ctl() { "$vvctl" --conf "$conf" "$@"; }
start vvmd "$vvctl" --conf "$conf" ping --timeout 1 -- "$vvmd" --conf "$conf"
start mover-m1 "$vvctl" --conf "$conf" ping --target mover:m1 --timeout 1 -- \
  "$vvmover" --conf "$conf" --name m1
ctl vsn add L90001 --media LTO9 --class A >/dev/null
cache=$dir/state/cache library=$dir/state/library

printf 'bench/repack.sh: %s VVs of %s MiB (%s MB), %s repeats, %s CPUs, %s, %s\n' "$count" \
  "$size_mib" "$((bytes / 1000000))" "$repeat" "$(nproc)" "$(uname -r)" "$(date -u +%FT%TZ)"
print_build
printf 'filesystem: %s on %s mounted at %s; files in %s\n' "$fstype" "$fsdev" "$fsmount" "$tmp"
printf 'page cache: %s\n' "$cache_note"
printf 'drives:     two LTO9 (d0, d1) of one mover, unthrottled; block size 256K\n'

# The VVs, archived on L90001 (the only tape yet), then L90002 added for the first repack.
mkdir -p "$tmp/src"
vvs=()
for ((i = 1; i <= count; i++)); do
  vv=$(ctl create --class A --size "${size_mib}M")
  head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$tmp/src/$i"
  cp "$tmp/src/$i" "$cache/$vv"
  ctl finish "$vv" >/dev/null
  vvs+=("$vv")
done
for vv in "${vvs[@]}"; do ctl finish "$vv" --wait --timeout 600 >/dev/null || die "$vv not archived"; done
ctl vsn add L90002 --media LTO9 --class A >/dev/null

repack_mbs=() dd_mbs=()
tape_total=0 cache_total=0
src=L90001 dst=L90002
for ((r = 1; r <= repeat; r++)); do
  for vv in "${vvs[@]}"; do
    [[ $(ctl show "$vv" --json | jq -r .cache) == evicted ]] || ctl evict "$vv" >/dev/null
  done
  order=(repack dd)
  ((r % 2)) || order=(dd repack)
  log_from=$(($(wc -l <"$dir/vvmd.log") + 1))
  for side in "${order[@]}"; do
    before "$library/$src.tap"
    if [[ $side == dd ]]; then
      t0=$(now)
      dd if="$library/$src.tap" of="$tmp/copy.tap" bs=256K conv=fsync status=none
      t1=$(now)
      rm -f "$tmp/copy.tap"
      dd_mbs+=("$(mbs "$t0" "$t1")")
    else
      t0=$(now)
      ctl vsn repack "$src" --wait --timeout 3600 >/dev/null || die "the repack of $src failed"
      t1=$(now)
      repack_mbs+=("$(mbs "$t0" "$t1")")
    fi
  done
  # Which way the moves of this round went, from vvmd's log.
  tape_moves=$(tail -n "+$log_from" "$dir/vvmd.log" |
    grep -c "moved from $src file [0-9]* to $dst file [0-9]* ([0-9]* bytes, tape to tape)" || true)
  cache_moves=$(tail -n "+$log_from" "$dir/vvmd.log" |
    grep -c "moved from $src file [0-9]* to $dst file [0-9]* ([0-9]* bytes, through the cache)" || true)
  tape_total=$((tape_total + tape_moves)) cache_total=$((cache_total + cache_moves))
  printf 'round %d: %s -> %s  repack %s MB/s   dd %s MB/s   (moves: %s tape to tape, %s through the cache)\n' \
    "$r" "$src" "$dst" "${repack_mbs[-1]}" "${dd_mbs[-1]}" "$tape_moves" "$cache_moves"
  ctl vsn reclaim "$src" >/dev/null || die "the reclaim of $src failed"
  tmp_vsn=$src src=$dst dst=$tmp_vsn
done

# Every VV, on the tape the last repack wrote, is its source.
for i in "${!vvs[@]}"; do
  json=$(ctl show "${vvs[i]}" --json)
  "$vvtape" cat "$library/$(jq -r '.copies[0].vsn' <<<"$json").tap" "$(jq -r '.copies[0].file' <<<"$json")" \
    >"$tmp/check"
  cmp -s "$tmp/check" "$tmp/src/$((i + 1))" || die "${vvs[i]} differs from its source after the repacks"
done

rm=$(printf %.1f "$(median "${repack_mbs[@]}")") dm=$(printf %.1f "$(median "${dd_mbs[@]}")")
ratio=$(awk "BEGIN { printf \"%.2f\", $rm / $dm }")
printf '\nrepack: median %s MB/s (%s)\n' "$rm" "$(range "${repack_mbs[@]}")"
printf 'dd:     median %s MB/s (%s)\n' "$dm" "$(range "${dd_mbs[@]}")"
printf 'repack path: %s move(s) tape to tape, %s through the cache (stage, then archive)\n' \
  "$tape_total" "$cache_total"
printf 'repack/dd: %sx (target at least 0.8x: %s); every VV checked against its source\n' "$ratio" \
  "$(awk "BEGIN { print ($ratio >= 0.8) ? \"met\" : \"NOT met\" }")"
