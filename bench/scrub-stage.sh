#!/usr/bin/env bash
# bench/scrub-stage.sh: a client's stage with a scrub running on the drives it needs, against the
# same stage on an idle system, side by side in one run, with the real vvmd and one vvmover
# driving two emulated LTO9 drives that stream at VVM_BENCH_RATE bytes/s (default 100M):
#
#   tapes   L90001 and L90002 hold FILES VVs of SIZE_MIB random bytes each; L90003 holds the VV
#           that is staged (class A: one LTO9 copy). Both drives hold L90001 and L90002 before
#           each side, so that both sides stage from a tape that must be mounted first.
#   idle    `vvctl stage VV --wait` of the evicted VV with nothing else running.
#   scrub   the same, started once `vvctl vsn verify L90001` and `vvctl vsn verify L90002` (the
#           scrub's reads: one code path, recorded as "verify" rather than "scrub") are reading in
#           both drives: the stage finds no free drive, and vvmd must cancel a verify read (CANCEL
#           to the mover) to give the stage its drive. vvmd's own scrub ([vvmd] scrub-interval)
#           reads one tape at a time and would leave the other drive free: no contention.
#
# The figure is the time from `vvctl stage` to the VV's file in the cache (the mover renames it
# into place once whole and checked; polled every 10 ms): `vvctl stage --wait` itself and the
# plugin's open ask vvmd every 500 ms at most, too coarse for a ratio. Also shown: vvmd's own
# time for each stage (its log, from "stage VV ..., a client waits" to "staged VV"), and for the
# scrub side how many verify reads were cancelled and how long from the cancel to the drive given
# back (its log). Every staged file is compared with its source, and every verify must find its
# copies good. Both sides mount, so both wait vvmd's stage gathering (1 s: requests arriving
# together share a mount). REPEAT rounds, the sides taking turns going first; the medians, the
# ratio scrub/idle and whether the target (at most 1.2x) is met.
#
#   bench/scrub-stage.sh [BUILD_DIR] [SIZE_MIB] [FILES] [REPEAT]
#       default: build/rel (meson setup build/rel . -Dbuildtype=release), else build-rel, else
#       build/run, else the first build folder with vvmd; 256, 3, 5. A verify read of one file
#       should last longer than the stage gathering, so that only a cancel frees a drive in time.
#
# Needs jq. Files go to a folder under ${TMPDIR:-/var/tmp} (tmpfs refused); everything started is
# stopped, and the folder removed, at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
usage() {
  echo "usage: bench/scrub-stage.sh [BUILD_DIR] [SIZE_MIB] [FILES] [REPEAT]" >&2
  exit 2
}
source "$here/bench/build-dir.sh"
find_rel_build bench/scrub-stage.sh "${1:-}"
size_mib=${2:-256}
files=${3:-3}
repeat=${4:-5}
rate=${VVM_BENCH_RATE:-100M}
[[ $size_mib =~ ^[1-9][0-9]*$ && $files =~ ^[1-9][0-9]*$ && $repeat =~ ^[1-9][0-9]*$ ]] || usage
[[ $rate =~ ^[1-9][0-9]*[KMG]?$ ]] ||
  { echo "bench/scrub-stage.sh: VVM_BENCH_RATE='$rate': a size (100M)" >&2; exit 2; }
build=$(cd "$build" && pwd)
vvmd=$build/vvmd/vvmd vvmover=$build/mover/vvmover vvctl=$build/client/vvctl
for f in "$vvmd" "$vvmover" "$vvctl"; do
  [[ -x $f ]] || { echo "bench/scrub-stage.sh: $f not found: build first" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "bench/scrub-stage.sh: needs jq" >&2; exit 2; }

source "$here/bench/run-dir.sh"
bench_dir bench/scrub-stage.sh scrub-stage --disk
bytes=$((size_mib * 1024 * 1024))
drop_note
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

dir=$tmp/vvm
mkdir -p "$dir"
tape_conf "$dir" "$rate" m1:LTO9 m1:LTO9
ctl() { "$vvctl" --conf "$conf" "$@"; }
start vvmd "$vvctl" --conf "$conf" ping --timeout 1 -- "$vvmd" --conf "$conf"
start mover-m1 "$vvctl" --conf "$conf" ping --target mover:m1 --timeout 1 -- \
  "$vvmover" --conf "$conf" --name m1
cache=$dir/state/cache library=$dir/state/library log=$dir/vvmd.log

printf 'bench/scrub-stage.sh: %s files of %s MiB on each verified tape, %s repeats, %s CPUs, %s, %s\n' \
  "$files" "$size_mib" "$repeat" "$(nproc)" "$(uname -r)" "$(date -u +%FT%TZ)"
print_build
printf 'filesystem: %s on %s mounted at %s; files in %s\n' "$fstype" "$fsdev" "$fsmount" "$tmp"
printf 'page cache: %s\n' "$cache_note"
printf 'drives:     two LTO9 (d0, d1) of one mover, streaming at %s bytes/s (VVM_BENCH_RATE)\n' "$rate"

# archive_on VSN N [keep]: N new VVs of random bytes archived on VSN (the only writable tape), which
# is then made read-only so that the next VVs go to the next tape; prints the VVs' names. With
# keep, their bytes are kept in $tmp/src/NAME first.
archive_on() {
  local vsn=$1 n=$2 keep=${3:-} i vv names=()
  ctl vsn add "$vsn" --media LTO9 --class A >/dev/null
  for ((i = 0; i < n; i++)); do
    vv=$(ctl create --class A --size "${size_mib}M")
    head -c "$bytes" /dev/urandom >"$cache/$vv"
    [[ -z $keep ]] || cp "$cache/$vv" "$tmp/src/$vv"
    ctl finish "$vv" >/dev/null
    names+=("$vv")
  done
  for vv in "${names[@]}"; do
    ctl finish "$vv" --wait --timeout 600 >/dev/null || die "$vv not archived on $vsn"
    [[ $(ctl show "$vv" --json | jq -r '.copies[0].vsn') == "$vsn" ]] || die "$vv not on $vsn"
    ctl evict "$vv" >/dev/null
  done
  ctl vsn set "$vsn" read-only --reason "bench/scrub-stage.sh: the next VVs go to the next tape" \
    >/dev/null
  printf '%s\n' "${names[@]}"
}
mkdir -p "$tmp/src"
archive_on L90001 "$files" >/dev/null
archive_on L90002 "$files" >/dev/null
stage_vv=$(archive_on L90003 1 keep)
stage_tape=$library/L90003.tap
printf 'tapes:      L90001 and L90002: %s VVs of %s MiB each (verified); L90003: %s (staged)\n' \
  "$files" "$size_mib" "$stage_vv"

drive_json() { ctl status --json | jq -c '[.drives[] | {name, vsn, copying}]'; }
# idle_drives: waits (30 s at most) until no drive is copying.
idle_drives() {
  local i
  for ((i = 0; i < 300; i++)); do
    [[ $(ctl status --json | jq '[.drives[] | select(.copying != "")] | length') == 0 ]] && return 0
    sleep 0.1
  done
  die "drives still busy after 30 s: $(drive_json)"
}
# verify_both: both tapes read back, every copy good; in the background (pids in $verify_pids)
# or, with --wait-here, to the end.
verify_both() {
  verify_pids=()
  ctl vsn verify L90001 --wait --timeout 600 >"$tmp/verify1.out" 2>&1 &
  verify_pids+=($!)
  ctl vsn verify L90002 --wait --timeout 600 >"$tmp/verify2.out" 2>&1 &
  verify_pids+=($!)
  [[ ${1:-} == --wait-here ]] && verify_end
  return 0
}
verify_end() {
  local p k=1
  for p in "${verify_pids[@]}"; do
    wait "$p" || die "the verify of L9000$k failed: $(cat "$tmp/verify$k.out")"
    grep -q ": $files cop[a-z]* read back: $files good, 0 bad" "$tmp/verify$k.out" ||
      die "the verify of L9000$k read back other than $files good copies: $(cat "$tmp/verify$k.out")"
    k=$((k + 1))
  done
}
# Both drives hold the verified tapes (and not L90003) before each side: both sides mount.
unmount_stage_tape() {
  idle_drives
  if ctl status --json | jq -e '[.drives[] | select(.vsn == "L90003")] | length > 0' >/dev/null; then
    verify_both --wait-here
    idle_drives
  fi
  ctl status --json | jq -e '[.drives[] | select(.vsn == "L90003")] | length == 0' >/dev/null ||
    die "L90003 still in a drive after both verified tapes were mounted: $(drive_json)"
}
# log_secs FROM_LINE START_PATTERN END_PATTERN: seconds between the first line of vvmd's log
# from FROM_LINE on that holds START_PATTERN and the first one after it holding END_PATTERN.
log_secs() {
  tail -n "+$1" "$log" | awk -v a="$2" -v b="$3" '
    function t(s, x) { split(substr(s, 12, 12), x, ":"); return x[1] * 3600 + x[2] * 60 + x[3] }
    !start && index($0, a) { start = t($1); next }
    start && index($0, b) { printf "%.3f\n", t($1) - start; exit }'
}
# stage_once: the timed stage of the evicted stage VV; sets $s (client) and $v (vvmd's log).
stage_once() {
  local i from spid t0 t1
  from=$(($(wc -l <"$log") + 1))
  t0=$(now)
  ctl stage "$stage_vv" --wait --timeout 600 >/dev/null &
  spid=$!
  for ((i = 0; i < 60000; i++)); do
    [[ -e $cache/$stage_vv ]] && break
    sleep 0.01
  done
  t1=$(now)
  wait "$spid" || die "vvctl stage $stage_vv failed"
  cmp -s "$cache/$stage_vv" "$tmp/src/$stage_vv" || die "the staged $stage_vv differs from its source"
  s=$(calc %.3f "$t1 - $t0")
  v=$(log_secs "$from" "stage VV $stage_vv (" "staged VV $stage_vv ")
  [[ -n $v ]] || die "no stage of $stage_vv in vvmd's log"
  log_from=$from
}
evict_stage_vv() {
  ctl evict "$stage_vv" >/dev/null
  [[ $(ctl show "$stage_vv" --json | jq -r .cache) == evicted && ! -e $cache/$stage_vv ]] ||
    die "$stage_vv was not evicted"
}
idle_side() {
  evict_stage_vv
  unmount_stage_tape
  before "$stage_tape"
  stage_once
  idle_s+=("$s") idle_v+=("$v")
  printf '%-6s %-6s %9s %9s\n' "$k" idle "$s" "$v"
}
scrub_side() {
  local i busy
  evict_stage_vv
  idle_drives
  before "$stage_tape"
  verify_both
  # The stage goes in once both drives are reading a verify's file.
  for ((i = 0; i < 300; i++)); do
    busy=$(ctl status --json | jq '[.drives[] | select(.copying | startswith("verify "))] | length')
    ((busy == 2)) && break
    sleep 0.1
  done
  ((busy == 2)) || die "the verifies did not take both drives in 30 s: $(drive_json)"
  stage_once
  verify_end
  cancels=$(tail -n "+$log_from" "$log" | grep -c "cancelled: a client waits for a stage" || true)
  c=$(log_secs "$log_from" "cancelled: a client waits for a stage" "to a stage; read again later")
  scrub_s+=("$s") scrub_v+=("$v") cancel_n+=("$cancels")
  [[ -n $c ]] && cancel_s+=("$c")
  printf '%-6s %-6s %9s %9s   verify reads cancelled: %s, cancel -> drive free: %s s\n' "$k" scrub \
    "$s" "$v" "$cancels" "${c:-none}"
}

printf '\n  idle:  vvctl stage %s --wait (evicted; from L90003, not in a drive), nothing else running\n' \
  "$stage_vv"
printf '  scrub: the same once `vvctl vsn verify L90001` and `... L90002` read in both drives\n'
printf '  seconds: vvctl stage -> the file in the cache (client, 10 ms polls); vvmd: its log\n\n'
printf '%-6s %-6s %9s %9s\n' round side seconds vvmd
idle_s=() idle_v=() scrub_s=() scrub_v=() cancel_n=() cancel_s=()
k=0
verify_both --wait-here # warm-up, not counted: both verified tapes mounted, the page cache warm
for ((k = 1; k <= repeat; k++)); do
  if ((k % 2)); then order=(idle scrub); else order=(scrub idle); fi
  for side in "${order[@]}"; do "${side}_side"; done
done

mi=$(median "${idle_s[@]}") ms=$(median "${scrub_s[@]}")
ratio=$(calc %.2f "$ms / $mi")
printf '\n%-44s %9s %s\n' "" median "(range)"
printf '%-44s %9s (%s)\n' "idle: vvctl stage -> file in the cache" "$mi" "$(range "${idle_s[@]}")"
printf '%-44s %9s (%s)\n' "  of which vvmd (its log)" "$(median "${idle_v[@]}")" "$(range "${idle_v[@]}")"
printf '%-44s %9s (%s)\n' "scrub: vvctl stage -> file in the cache" "$ms" "$(range "${scrub_s[@]}")"
printf '%-44s %9s (%s)\n' "  of which vvmd (its log)" "$(median "${scrub_v[@]}")" "$(range "${scrub_v[@]}")"
if ((${#cancel_s[@]} > 0)); then
  printf '%-44s %9s (%s)\n' "  verify read cancelled -> drive free (log)" "$(median "${cancel_s[@]}")" \
    "$(range "${cancel_s[@]}")"
fi
printf 'verify reads cancelled for the stage, per scrub round: %s\n' "${cancel_n[*]}"
printf 'scrub/idle: %sx (target at most 1.2x: %s); medians of %s rounds; every stage compared with its source, every verify good\n' \
  "$ratio" "$(awk "BEGIN { print ($ratio <= 1.2) ? \"met\" : \"NOT met\" }")" "$repeat"
