#!/usr/bin/env bash
# vv-scrub.sh: the background scrub ([vvmd] scrub-interval) with the real vvmd and vvmover on an
# emulated tape in one drive that reads 1 MiB/s:
#  - four 1 MiB VVs archived on L90001 and evicted; vvmd restarted with a scrub interval: the
#    scrub reads the tape's copies back (logged, recorded as "scrub" in the verify table);
#  - a client's stage asked for while the scrub reads goes before the scrub's next read: it
#    starts once the read running ends, with scrub reads still to do after it, and the VV comes
#    back whole;
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
for i in 1 2 3 4; do
  vv=$(ctl create --class A --size 1M)
  head -c $((1 * M)) /dev/urandom >"$cache/$vv"
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
grep -q "scrub: 4 copies (4194304 bytes) on L90001 to read back, its oldest verify never" \
  "$vvmd_log" || die "the scrub did not take L90001: $(grep -i scrub "$vvmd_log")"
grep -q "scrub VV .*'s copy 1 on L90001 file 1 in drive" "$vvmd_log" ||
  die "the scrub did not start reading: $(grep -i scrub "$vvmd_log")"
echo "ok: the scrub reads L90001 back"

# A client's stage of the tape's last file, while the scrub reads its first.
started=$(date +%s.%N)
ctl stage "$last" --wait --timeout 60 >/dev/null || die "the stage of $last failed"
took=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
cmp -s "$cache/$last" "$tmpdir/$last.orig" || die "$last came back different"
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
echo "ok: the stage went before the scrub's next read ($before scrub read(s) before it, $after after; ${took}s)"

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
