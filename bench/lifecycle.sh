#!/usr/bin/env bash
# bench/lifecycle.sh: the VV lifecycle end to end with the real vvmd, vvmover(s) and nbdkit plugin,
# in one run:
#
#   archive  COUNT VVs of class A (two copies: one on LTO9, one on LTO8) of SIZE_MIB random bytes,
#            written straight into their cache files (not timed), are finished one after the
#            other with `vvctl finish`; the clock runs from the first finish until
#            `vvctl ls --state archived --json` lists all COUNT (polled every 0.1 s). Once with
#            ONE mover (m1: drives d0 LTO9, d1 LTO8), once with TWO (m1 as before, m2: d2 LTO9,
#            d3 LTO8), each on a fresh state folder with two blank tapes of each type, so that the
#            scheduler can keep all four drives writing. Prints VVs/min, MB/s of VV data (each VV
#            is written twice to tape: tape MB/s is double) and the ratio two movers / one.
#   stage    one archived VV of SIZE_MIB is evicted, then read through its vv/NAME export over a
#            Unix socket: the time from libnbd's connect to the first byte of pread (the plugin's
#            open waits while vvmd has the mover stage the VV back from tape) against the raw
#            copy of the same bytes into the same cache folder: `dd bs=256K conv=fsync` of the
#            source file, and `vvtape cat TAPE FILE --sync` (the mover's copy engine on its own,
#            no vvmd, no nbdkit). Also the connect-to-first-byte time of the VV once cached (the
#            cost of a VV open without a stage). REPEAT rounds, the sides taking turns going
#            first; medians and ratios.
#
# The emulated drives stream at VVM_BENCH_RATE bytes/s (vvm.conf [drive] emulated-rate; default
# 100M, a quarter of LTO-9's 400 MB/s so that four drives fit this VM's disk: the archive figures
# then measure how well the scheduler keeps drives busy, which is what a second mover buys;
# "none" to let the drives go as fast as the disk). The stage side always runs with unthrottled
# drives: it measures vvm's own overhead against a raw copy. The page cache is dropped before each
# timed part when that works (root on a real kernel); else inputs are read once first, so both
# sides read from the page cache (the output says which).
#
#   bench/lifecycle.sh [BUILD_DIR] [SIZE_MIB] [COUNT] [REPEAT]
#       default: build-rel (else build/run, else the first build folder with vvmd), 64, 16, 5
#
# Needs nbdkit, jq and Debian's python3-libnbd. Files go to a folder under ${TMPDIR:-/var/tmp}
# (tmpfs refused); everything started is stopped, and the folder removed, at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
usage() {
  echo "usage: bench/lifecycle.sh [BUILD_DIR] [SIZE_MIB] [COUNT] [REPEAT]" >&2
  exit 2
}
source "$here/bench/build-dir.sh"
find_build bench/lifecycle.sh "${1:-}"
size_mib=${2:-64}
count=${3:-16}
repeat=${4:-5}
rate=${VVM_BENCH_RATE:-100M}
[[ $size_mib =~ ^[1-9][0-9]*$ && $count =~ ^[1-9][0-9]*$ && $repeat =~ ^[1-9][0-9]*$ ]] || usage
[[ $rate == none || $rate =~ ^[1-9][0-9]*[KMG]?$ ]] ||
  { echo "bench/lifecycle.sh: VVM_BENCH_RATE='$rate': a size (100M) or none" >&2; exit 2; }
[[ -d $build ]] || { echo "bench/lifecycle.sh: no build folder $build" >&2; exit 2; }
build=$(cd "$build" && pwd)
vvmd=$build/vvmd/vvmd vvmover=$build/mover/vvmover vvctl=$build/client/vvctl
vvtape=$build/mover/vvtape plugin=$build/nbdkit-plugin/nbdkit-vvm-plugin.so
for f in "$vvmd" "$vvmover" "$vvctl" "$vvtape" "$plugin"; do
  [[ -e $f ]] || { echo "bench/lifecycle.sh: $f not found: build first" >&2; exit 2; }
done
# Debian's python3-libnbd needs Debian's python, not one earlier on PATH.
export PATH=/usr/bin:$PATH
for tool in nbdkit jq; do
  command -v "$tool" >/dev/null || { echo "bench/lifecycle.sh: needs $tool" >&2; exit 2; }
done
python3 -c 'import nbd' 2>/dev/null || { echo "bench/lifecycle.sh: needs python3-libnbd" >&2; exit 2; }

source "$here/bench/run-dir.sh"
bench_dir bench/lifecycle.sh lifecycle --disk
bytes=$((size_mib * 1024 * 1024))
drop_note
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

# setup NAME MOVERS RATE: a fresh state folder $dir=$tmp/NAME with vvm.conf ($conf) for MOVERS
# movers of two drives each (LTO9, LTO8) streaming at RATE (none: unthrottled); starts vvmd and
# the movers and adds two blank tapes of each type for class A.
setup() {
  local name=$1 movers=$2 drive_rate=$3 m drives=()
  dir=$tmp/$name
  mkdir -p "$dir"
  for ((m = 1; m <= movers; m++)); do drives+=("m$m:LTO9" "m$m:LTO8"); done
  tape_conf "$dir" "$drive_rate" "${drives[@]}"
  printf '[plugin]\nstage-timeout = 10m\n' >>"$conf"
  start vvmd "$vvctl" --conf "$conf" ping --timeout 1 -- "$vvmd" --conf "$conf"
  for ((m = 1; m <= movers; m++)); do
    start "mover-m$m" "$vvctl" --conf "$conf" ping --target "mover:m$m" --timeout 1 -- \
      "$vvmover" --conf "$conf" --name "m$m"
  done
  for t in L90001 L90002; do ctl vsn add "$t" --media LTO9 --class A >/dev/null; done
  for t in L80001 L80002; do ctl vsn add "$t" --media LTO8 --class A >/dev/null; done
}
ctl() { "$vvctl" --conf "$conf" "$@"; }
archived() { ctl ls --state archived --json | jq length; }

printf 'bench/lifecycle.sh: %s VVs of %s MiB, %s repeats, %s CPUs, %s, %s\n' "$count" "$size_mib" \
  "$repeat" "$(nproc)" "$(uname -r)" "$(date -u +%FT%TZ)"
print_build
printf 'filesystem: %s on %s mounted at %s; files in %s\n' "$fstype" "$fsdev" "$fsmount" "$tmp"
printf 'page cache: %s\n' "$cache_note"
printf 'class A:    two copies (LTO9, LTO8); tapes: 2 x LTO9, 2 x LTO8; block size 256K\n'
printf 'data:       random, written into the cache files directly (cp, not timed)\n'

# One source file per VV, the same bytes for every configuration.
mkdir -p "$tmp/src"
for ((i = 1; i <= count; i++)); do head -c "$bytes" /dev/urandom >"$tmp/src/$i"; done

# --- archive: one mover, then two ---
declare -A secs busy
if [[ $rate == none ]]; then rate_note="unthrottled (disk speed)"; else rate_note="at $rate bytes/s"; fi
printf '\narchive: drives stream %s (VVM_BENCH_RATE); timed from the first `vvctl finish` until\n' "$rate_note"
printf '`vvctl ls --state archived --json` lists all %s\n' "$count"
for movers in 1 2; do
  setup "archive$movers" "$movers" "$rate"
  vvs=()
  for ((i = 1; i <= count; i++)); do
    vv=$(ctl create --class A --size "${size_mib}M")
    cp "$tmp/src/$i" "$dir/state/cache/$vv"
    vvs+=("$vv")
  done
  before "$dir/state/cache/"*
  t0=$(now)
  for vv in "${vvs[@]}"; do ctl finish "$vv" >/dev/null; done
  t_finish=$(now)
  deadline=$((SECONDS + 600))
  while (($(archived) < count)); do
    ((SECONDS < deadline)) || die "$movers mover(s): not all archived after 600 s: $(ctl status)"
    sleep 0.1
  done
  t1=$(now)
  secs[$movers]=$(calc %.3f "$t1 - $t0")
  # Where the copies went: files per tape, and the drive that holds each tape now.
  spread=$(ctl vsn ls --json | jq -r --argjson s "$(ctl status --json)" '
    [.[] | . as $v | ($s.drives[] | select(.vsn == $v.name)) as $d |
      "\($v.name) \($v.next_file - 1) files in \($d.name)/\($d.mover // "?")"] | join(", ")')
  # Every copy on tape must be the source, or the figures mean nothing.
  for ((i = 1; i <= count; i++)); do
    json=$(ctl show "${vvs[i - 1]}" --json)
    for c in 0 1; do
      read -r vsn file < <(jq -r ".copies[$c] | \"\(.vsn) \(.file)\"" <<<"$json")
      "$vvtape" cat "$dir/state/library/$vsn.tap" "$file" | cmp -s - "$tmp/src/$i" ||
        die "${vvs[i - 1]}: copy $((c + 1)) on $vsn file $file differs from its source"
    done
  done
  # A drive's next copy sent before its mover has reaped the previous one is refused as Busy and
  # waits for vvmd's next try: worth counting, it is drive time lost.
  busy[$movers]=$(grep -c 'did not take copy .*: archive: tape .* is in drive .* for job' "$dir/vvmd.log" || true)
  printf '  %d mover(s): %d VVs archived in %s s (the finishes took %s s); tapes: %s;\n' "$movers" \
    "$count" "${secs[$movers]}" "$(calc %.3f "$t_finish - $t0")" "$spread"
  printf '    copies refused as Busy (the drive'"'"'s previous job not yet reaped by its mover): %s\n' \
    "${busy[$movers]}"
  stop_all
  [[ -n ${VVM_BENCH_KEEP:-} ]] || rm -rf "$dir"
done
printf '\n%-9s %6s %9s %9s %13s %15s\n' movers drives seconds VVs/min "MB/s (VVs)" "MB/s (to tape)"
for movers in 1 2; do
  s=${secs[$movers]}
  printf '%-9s %6s %9s %9s %13s %15s\n' "$movers" $((2 * movers)) "$s" "$(calc %.1f "$count * 60 / $s")" \
    "$(calc %.1f "$count * $bytes / 1e6 / $s")" "$(calc %.1f "2 * $count * $bytes / 1e6 / $s")"
done
printf 'two movers / one mover: %sx VVs/min (every copy checked against its source with vvtape cat)\n' \
  "$(calc %.2f "${secs[1]} / ${secs[2]}")"

# --- stage latency: an evicted VV's first byte through NBD, against a raw copy ---
setup stage 1 none
sock=$dir/nbd.sock
start nbdkit test -S "$sock" -- nbdkit -f --exit-with-parent -U "$sock" "$plugin" conf="$conf"
cache=$dir/state/cache
stage_vv=$(ctl create --class A --size "${size_mib}M")
cp "$tmp/src/1" "$cache/$stage_vv"
ctl finish "$stage_vv" --wait --timeout 600 >/dev/null
read -r vsn file < <(ctl show "$stage_vv" --json | jq -r '.copies[0] | "\(.vsn) \(.file)"')
tape=$dir/state/library/$vsn.tap
uri="nbd+unix:///vv/$stage_vv?socket=$sock"
# first_byte: seconds from libnbd's connect to the end of a 1-byte pread at offset 0.
first_byte() {
  python3 - "$uri" <<'PY'
import sys, time, nbd
t0 = time.monotonic()
h = nbd.NBD()
h.connect_uri(sys.argv[1])
b = h.pread(1, 0)
t1 = time.monotonic()
h.shutdown()
print(f"{t1 - t0:.3f}")
PY
}
evict() {
  local i
  # The plugin tells vvmd of the close after the client has gone: retry while vvmd says open.
  for ((i = 0; i < 50; i++)); do
    ctl evict "$stage_vv" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  ctl evict "$stage_vv"
}
stage_side() {
  evict
  [[ $(ctl show "$stage_vv" --json | jq -r .cache) == evicted && ! -e $cache/$stage_vv ]] ||
    die "$stage_vv was not evicted"
  before "$tape"
  s=$(first_byte)
  stage_s+=("$s")
  cmp -s "$cache/$stage_vv" "$tmp/src/1" || die "the staged $stage_vv differs from its source"
  # The same open once the VV is cached: what a VV open costs without a stage.
  c=$(first_byte)
  cached_s+=("$c")
  printf '%-7s %-8s %9s   (then cached: %s)\n' "$k" stage "$s" "$c"
}
dd_side() {
  rm -f "$cache/raw.dd"
  before "$tmp/src/1"
  t0=$(now)
  dd if="$tmp/src/1" of="$cache/raw.dd" bs=256K conv=fsync status=none
  t1=$(now)
  dd_s+=("$(calc %.3f "$t1 - $t0")")
  printf '%-7s %-8s %9s\n' "$k" dd "${dd_s[-1]}"
}
vvtape_side() {
  rm -f "$cache/raw.vvtape"
  before "$tape"
  t0=$(now)
  "$vvtape" cat "$tape" "$file" --sync >"$cache/raw.vvtape"
  t1=$(now)
  vvtape_s+=("$(calc %.3f "$t1 - $t0")")
  cmp -s "$cache/raw.vvtape" "$tmp/src/1" || die "vvtape cat gave other bytes"
  printf '%-7s %-8s %9s\n' "$k" vvtape "${vvtape_s[-1]}"
}
printf '\nstage: %s (%s MiB, copies on %s), drives unthrottled, mover m1 and nbdkit on a Unix socket\n' \
  "$stage_vv" "$size_mib" "$(ctl show "$stage_vv" --json | jq -r '[.copies[] | "\(.vsn) file \(.file)"] | join(", ")')"
printf '  stage:  vvctl evict; python3-libnbd: connect_uri(%s), pread(1, 0)\n' "nbd+unix:///vv/$stage_vv?socket=SOCK"
printf '  dd:     dd if=SOURCE of=CACHE_DIR/raw.dd bs=256K conv=fsync\n'
printf '  vvtape: vvtape cat %s %s --sync > CACHE_DIR/raw.vvtape\n' "$vsn.tap" "$file"
stage_s=() cached_s=() dd_s=() vvtape_s=()
printf '\n%-7s %-8s %9s\n' round side seconds
k=0
stage_side >/dev/null # warm-up: the first stage mounts the tape; not counted
stage_s=() cached_s=()
for ((k = 1; k <= repeat; k++)); do
  if ((k % 2)); then order=(stage dd vvtape); else order=(vvtape dd stage); fi
  for side in "${order[@]}"; do "${side}_side"; done
done
ms=$(median "${stage_s[@]}") md=$(median "${dd_s[@]}") mv=$(median "${vvtape_s[@]}")
printf '\n%-38s %9s %s\n' "" median "(range)"
printf '%-38s %9s (%s)\n' "stage: open of the evicted VV -> byte 1" "$ms" "$(range "${stage_s[@]}")"
# vvmd's own view of each counted stage: from its "stage VV NAME (...), a client waits" line to its
# "staged VV NAME" line (the mover's copy, its report, the rename); the rest of the client's
# wait is the plugin's (it asks vvmd again every so often while it waits) and the NBD connect.
mapfile -t vvmd_s < <(awk -v vv="$stage_vv" '
  function t(s, a) { split(substr(s, 12, 12), a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
  index($0, "stage VV " vv " (") { start = t($1) }
  index($0, "staged VV " vv " ") { printf "%.3f\n", t($1) - start }' "$dir/vvmd.log" | tail -n +2)
((${#vvmd_s[@]} == repeat)) || die "found ${#vvmd_s[@]} stages of $stage_vv in vvmd's log, wanted $repeat"
printf '%-38s %9s (%s)\n' "  of which vvmd's stage (its log)" "$(median "${vvmd_s[@]}")" "$(range "${vvmd_s[@]}")"
printf '%-38s %9s (%s)\n' "open of the cached VV -> byte 1" "$(median "${cached_s[@]}")" "$(range "${cached_s[@]}")"
printf '%-38s %9s (%s)\n' "raw copy: dd conv=fsync" "$md" "$(range "${dd_s[@]}")"
printf '%-38s %9s (%s)\n' "raw copy: vvtape cat --sync" "$mv" "$(range "${vvtape_s[@]}")"
printf 'stage / dd: %sx   stage / vvtape cat: %sx   (medians of %s rounds, seconds)\n' \
  "$(calc %.2f "$ms / $md")" "$(calc %.2f "$ms / $mv")" "$repeat"
