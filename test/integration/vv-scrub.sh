#!/usr/bin/env bash
# vv-scrub.sh: the background scrub ([vvmd] scrub-interval) with the real vvmd and vvmover on an
# emulated tape in one drive that reads 1 MiB/s:
#  - four VVs (4, 1, 1 and 1 MiB) archived on L90001 and evicted; vvmd restarted with a scrub
#    interval: the scrub reads the tape's copies back (logged, recorded as "scrub" in the verify
#    table);
#  - a client's stage asked for while the scrub reads the 4 MiB copy does not wait for that read:
#    the read is cancelled at once (CANCEL to the mover, logged by vvmd and the mover), the stage
#    takes the drive, well before the read would have ended, the VV comes back whole, and the
#    scrub reads the cancelled copy again afterwards;
#  - every copy is recorded good by the scrub (vsn verify --list), and the scrub writes nothing
#    into the cache.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
vvm_conf drives="LTO9" rate=1M
start_vvmd
start_mover m1
ctl vsn add L90001 --media LTO9 >/dev/null
vvs=()
for i in 4 1 1 1; do
  vv=$(ctl create --class A --size "${i}M")
  head -c $((i * M)) /dev/urandom >"$cache/$vv"
  cp "$cache/$vv" "$tmpdir/$vv.orig"
  ctl finish "$vv" --wait --timeout 60 >/dev/null || die "$vv was not archived"
  ctl evict "$vv" >/dev/null
  vvs+=("$vv")
done
last=${vvs[3]}

stop_vvmd
vvm_conf drives="LTO9" rate=1M vvmd.scrub-interval=1h
start_vvmd
for ((i = 0; i < 100; i++)); do
  grep -q "scrub VV .*'s copy 1 on L90001 file 1 in drive" "$vvmd_log" && break
  sleep 0.1
done
grep -q "scrub: 4 copies (7340032 bytes) on L90001 to read back, its oldest verify never" \
  "$vvmd_log" || die "the scrub did not take L90001: $(grep -i scrub "$vvmd_log")"
grep -q "scrub VV .*'s copy 1 on L90001 file 1 in drive" "$vvmd_log" ||
  die "the scrub did not start reading: $(grep -i scrub "$vvmd_log")"
echo "ok: the scrub reads L90001 back"

# A client's stage of the tape's last file, while the scrub reads its first (4 MiB: 4 s).
sleep 0.3
started=$(date +%s.%N)
ctl stage "$last" --wait --timeout 60 >/dev/null || die "the stage of $last failed"
took=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
cmp -s "$cache/$last" "$tmpdir/$last.orig" || die "$last came back different"
grep -q "scrub of VV ${vvs[0]}'s copy on L90001 file 1 (drive d0, request [0-9]*) cancelled: a client waits for a stage from L90001, the tape it reads" "$vvmd_log" ||
  die "vvmd did not cancel the scrub's read for the stage: $(grep -E "scrub|stage VV|cancel" "$vvmd_log")"
grep -q "(verify of VSN L90001 file 1 in drive d0) cancelled: a client waits for a stage" "$mover_log" ||
  die "the mover did not cancel the read: $(grep -i "cancel\|verify" "$mover_log")"
# Its own 1 MiB read takes a second; waiting for the scrub's read would take 3.7 more.
awk -v t="$took" 'BEGIN { exit !(t < 3.5) }' || die "the stage took ${took}s: it waited for the scrub's read"
# The stage's read started after at most the one scrub read that was running, and the scrub
# went on after it.
line_of() { grep -n "$1" "$vvmd_log" | head -1 | cut -d: -f1; }
stage_line=$(line_of "stage VV $last from L90001 file 4 ")
[[ -n $stage_line ]] || die "no stage of $last in the log"
before=$(head -n "$stage_line" "$vvmd_log" | grep -c "scrub VV .*'s copy 1 on L90001 file" || true)
((before <= 1)) || die "$before scrub reads started before the stage: $(grep -E "scrub|stage VV" "$vvmd_log")"
for ((i = 0; i < 200; i++)); do
  (($(grep -c "scrub: VV .*'s copy 1 on L90001 file [0-9] is good" "$vvmd_log" || true) >= 3)) && break
  sleep 0.1
done
after=$(tail -n "+$stage_line" "$vvmd_log" | grep -c "scrub VV .*'s copy 1 on L90001 file" || true)
((after >= 2)) || die "the scrub did not go on after the stage: $(grep -E "scrub|stage VV" "$vvmd_log")"
grep -q "scrub: VV ${vvs[0]}'s copy 1 on L90001 file 1 is good" "$vvmd_log" ||
  die "the cancelled read was not made again: $(grep -E "scrub|stage VV" "$vvmd_log")"
echo "ok: the scrub's read cancelled for the stage, made again after it ($before scrub read(s) before it, $after after; ${took}s)"

# --- every copy recorded good by the scrub; nothing else in the cache ---
scrubbed() { ctl vsn verify L90001 --list --json | jq '[.[] | select(.how == "scrub" and .good)] | length'; }
for ((i = 0; i < 200; i++)); do
  (($(scrubbed) == 4)) && break
  sleep 0.1
done
(($(scrubbed) == 4)) || die "verify --list: $(ctl vsn verify L90001 --list)"
for vv in "${vvs[@]:0:3}"; do
  [[ ! -e $cache/$vv ]] || die "the scrub put $vv in the cache"
done
echo "ok: the scrub recorded all 4 copies good and wrote nothing into the cache"
