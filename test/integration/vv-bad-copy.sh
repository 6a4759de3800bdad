#!/usr/bin/env bash
# vv-bad-copy.sh: a copy that fails its checks is remembered, by the real vvmd and vvmover on
# emulated tapes:
#  - a VV of class A (one copy on LTO9, one on LTO8) archived, evicted, and a byte of its data
#    flipped in the LTO9 tape image: the first stage reads that copy once, marks it bad (when,
#    why) and stages from the LTO8 copy, the bytes as they were;
#  - `vvctl show` and `show --json` list the copy as bad; the copy is made again from the cache
#    onto an LTO9 tape, and that new tape file parses (vvtape ls) and holds the VV's bytes
#    (vvtape cat);
#  - after a vvmd restart all of it is still there, and the next stage never reads the bad copy;
#  - a second stage request while one runs joins it: vvmd logs "job N is staging it ... already"
#    and reads the VV once.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
# d0 (LTO9) reads at 1 MiB/s: a 3 MiB stage from it lasts 3 s, time for a second request.
vvm_conf drives="LTO9 LTO8" drive.d0.emulated-rate=1M
start_vvmd
start_mover m1
for t in L90001 L90002; do ctl vsn add "$t" --media LTO9 >/dev/null; done
ctl vsn add L80001 --media LTO8 >/dev/null

vv=$(ctl create --class A --size 3M)
head -c $((3 * M)) /dev/urandom >"$cache/$vv"
cp "$cache/$vv" "$tmpdir/original"
ctl finish "$vv" --wait --timeout 60 >/dev/null
json() { ctl show "$vv" --json; }
bad_vsn=$(json | jq -r '.copies[] | select(.copy == 1) | .vsn')
bad_file=$(json | jq -r '.copies[] | select(.copy == 1) | .file')
[[ $bad_vsn == L9* && $(json | jq -r '.copies[] | select(.copy == 2) | .vsn') == L80001 ]] ||
  die "copies not where expected: $(json)"
ctl evict "$vv" >/dev/null

# A byte of the VV's data flipped in copy 1's tape image.
python3 - "$library/$bad_vsn.tap" "$tmpdir/original" <<'PY'
import sys
image, data = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read()
needle = data[2000000:2000032]
at = image.find(needle)
assert at >= 0 and image.find(needle, at + 1) < 0, "the bytes are not in the image once"
with open(sys.argv[1], 'r+b') as f:
    f.seek(at + 5)
    f.write(bytes([image[at + 5] ^ 0xFF]))
PY
stop_vvmd # the drives forget their tapes: copy 1 is the first choice
start_vvmd
first_log=$vvmd_log

# --- the first stage: copy 1 read once, marked bad, copy 2 staged ---
ctl stage "$vv" --wait --timeout 60 >/dev/null || die "stage of $vv with a bad copy 1 failed"
cmp -s "$cache/$vv" "$tmpdir/original" || die "$vv came back different"
reads=$(grep -c "stage VV $vv from $bad_vsn file $bad_file " "$first_log" || true)
((reads == 1)) || die "the bad copy was read $reads times, wanted once: $(grep "stage VV" "$first_log")"
grep -q "VV $vv: copy 1 on $bad_vsn file $bad_file marked bad" "$first_log" ||
  die "vvmd did not mark the copy bad"
grep -q "VV $vv: copy 1 set aside; staging from copy 2 on L80001" "$first_log" ||
  die "vvmd did not go on to copy 2"
echo "ok: the bad copy was read once, marked bad, and copy 2 staged"

# --- show says bad, text and JSON ---
check_bad_shown() {
  json | jq -e --arg t "$bad_vsn" --argjson f "$bad_file" \
    '[.copies[] | select(.state == "bad" and .vsn == $t and .file == $f and .copy == 1
       and .since > 0 and .by == "vvmd" and (.why | length) > 0)] | length == 1' >/dev/null ||
    die "show --json does not list $bad_vsn file $bad_file as bad: $(json)"
  ctl show "$vv" | grep -q "^copy 1: .*LTO9: $bad_vsn file $bad_file: bad since .*(vvmd: " ||
    die "show does not mark the bad copy: $(ctl show "$vv")"
}
check_bad_shown
ctl vsn ls | grep -q "^$bad_vsn .* 1 bad, 0 failed$" || die "vsn ls ERRORS: $(ctl vsn ls)"
[[ $(ctl vsn ls --json | jq --arg t "$bad_vsn" '.[] | select(.name == $t) | .bad_files') == 1 ]] ||
  die "vsn ls --json does not count the bad file on $bad_vsn"
echo "ok: vvctl show and show --json list the copy as bad, vsn ls counts a bad file"

# --- the copy is made again from the cache ---
for ((i = 0; i < 300; i++)); do
  [[ $(json | jq -r .state) == archived ]] && break
  sleep 0.1
done
[[ $(json | jq -r .state) == archived ]] || die "$vv was not archived again: $(json)"
new_vsn=$(json | jq -r '.copies[] | select(.copy == 1 and .state == "good") | .vsn')
new_file=$(json | jq -r '.copies[] | select(.copy == 1 and .state == "good") | .file')
[[ $new_vsn == L9* && "$new_vsn $new_file" != "$bad_vsn $bad_file" ]] ||
  die "copy 1 was not made anew: $(json)"
serial=$((10#${vv:1}))
"$vvtape" ls "$library/$new_vsn.tap" --json |
  jq -e --argjson f "$new_file" --argjson s "$serial" \
    '[.files[] | select(.file == $f and .hdr.serial == $s and .hdr.size == 3145728)] | length == 1' \
    >/dev/null || die "the new copy is not in $new_vsn's image: $("$vvtape" ls "$library/$new_vsn.tap")"
"$vvtape" cat "$library/$new_vsn.tap" "$new_file" >"$tmpdir/new-copy"
cmp -s "$tmpdir/new-copy" "$tmpdir/original" || die "the new copy on $new_vsn holds other bytes"
echo "ok: copy 1 made again on $new_vsn file $new_file, which parses and holds the VV"

# --- a restart keeps it all; the next stage reads only good copies, once ---
stop_vvmd
start_vvmd
check_bad_shown
[[ $(json | jq -r .state) == archived && $(json | jq -r '.copies[] | select(.copy == 1 and .state == "good") | .vsn') == "$new_vsn" ]] ||
  die "after a restart: $(json)"
echo "ok: the bad mark and the new copy survive a vvmd restart"
ctl evict "$vv" >/dev/null
stop_vvmd
start_vvmd
ctl stage "$vv" >/dev/null
for ((i = 0; i < 100; i++)); do
  grep -q "stage VV $vv from .* in drive" "$vvmd_log" && break
  sleep 0.1
done
ctl stage "$vv" >/dev/null # while the first runs: joins it
ctl stage "$vv" --wait --timeout 60 >/dev/null || die "the second stage failed"
cmp -s "$cache/$vv" "$tmpdir/original" || die "$vv came back different the second time"
grep -q "stage VV $vv: job [0-9]* is staging it from $new_vsn file $new_file already; joined" \
  "$vvmd_log" || die "vvmd did not log the second request joining the job"
[[ $(grep -c "stage VV $vv from .* in drive" "$vvmd_log") == 1 ]] ||
  die "more than one read: $(grep "stage VV" "$vvmd_log")"
! grep -q "from $bad_vsn file $bad_file " "$vvmd_log" || die "the bad copy was read again"
echo "ok: the next stage read the new copy once, the second request joined it"
