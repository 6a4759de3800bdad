#!/usr/bin/env bash
# vv-class-third.sh: a storage class gains a third media type, with the real vvmd and two real
# movers on emulated drives: m1 has d0 LTO9 and d1 LTO8 (the class's first two copies), m2 has d2
# LTO7 and d3 LTO8, the one mover that can copy a VV's LTO8 copy to LTO7 tape to tape (two media
# types, two block sizes, in one copy process).
#  - eight VVs archived in class A on LTO9 and LTO8; six evicted, two in the cache;
#  - d3 down, class A gains LTO7 (vvctl reload): the first evicted VVs are staged for their copy,
#    vvmd logging why not tape to tape (no mover has a drive up for LTO9 or LTO8 and one for LTO7);
#  - d3 up: the other evicted VVs get their LTO7 copy tape to tape on m2 (d3 reads M00001, d2
#    writes N00001), in file order, and stay evicted (nothing through the cache); `vvctl status`
#    shows such a copy; the cached ones are written from the cache;
#  - a client's stage, asked while the copies go on, of the VV last in file order, is served
#    before the background copies that were waiting (vvmd's log: no copy starts between the
#    request and the stage's start, and copies asked for before it start after it);
#  - at the end every VV is archived with three copies, on LTO9, LTO8 and LTO7 (show --json);
#    vvtape verify passes on every tape; and the tapes parsed independently of vvm's tape code
#    (test/harness/tapeimage.py: SIMH records, VOL, HDR, data, EOF, tape mark, XXH3-64) hold
#    every copy `vvctl show --json` names, with the VV's class, serial, size and checksum; each
#    tape-to-tape copy reads back (vvtape cat) as the VV's bytes; db check is clean; and a byte
#    flipped on the LTO7 tape makes that independent check fail, naming the copy.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
# 2 MiB/s drives: a 2 MiB VV takes a second to copy, time for a client to ask in the middle.
# LTO7 writes 128 KiB blocks, LTO8 64 KiB: a tape copy re-blocks what it reads.
params=(movers="m1 m2" vvmd.archive-max-wait=0 media.LTO7.block-size=128K
  drive.d0.mover=m1 drive.d0.media=LTO9 drive.d0.emulated-rate=2M
  drive.d1.mover=m1 drive.d1.media=LTO8 drive.d1.emulated-rate=2M
  drive.d2.mover=m2 drive.d2.media=LTO7 drive.d2.emulated-rate=2M
  drive.d3.mover=m2 drive.d3.media=LTO8 drive.d3.emulated-rate=2M)
vvm_conf "${params[@]}" class.A.media="LTO9 LTO8"
start_vvmd
start_mover m1
start_mover m2
ctl vsn add L00001 --media LTO9 --class A >/dev/null
ctl vsn add M00001 --media LTO8 --class A >/dev/null

# media_field MEDIA FIELD: class ls --json's FIELD for class A's MEDIA line (null when none).
media_field() {
  ctl class ls --json | jq -r --arg m "$1" \
    '.[] | select(.class == "A") | [.media[] | select(.media == $m)][0] | .'"$2"
}
# line_of REGEX: the number of vvmd's first log line matching REGEX (extended), or 0.
line_of() {
  local n
  n=$(grep -En -m1 -- "$1" "$vvmd_log" | cut -d: -f1) || true
  echo "${n:-0}"
}
# when LINE: the time stamp of vvmd's log line LINE.
when() { sed -n "${1}p" "$vvmd_log" | cut -d' ' -f1; }

archived_vvs 8
for i in 0 1 2 3 4 5; do ctl evict "${vvs[i]}" >/dev/null; done
for i in "${!vvs[@]}"; do
  [[ $(ctl show "${vvs[i]}" --json | jq -r '[.copies[] | "\(.vsn) \(.file)"] | join(" ")') == "L00001 $((i + 1)) M00001 $((i + 1))" ]] ||
    die "${vvs[i]} is not at L00001 and M00001 file $((i + 1)): $(ctl show "${vvs[i]}")"
done
echo "ok: 8 VVs archived in class A on L00001 (LTO9) and M00001 (LTO8), 6 of them evicted"

# --- class A gains LTO7 while no mover can copy to it tape to tape ---
ctl drive down d3 --reason "test: m2 has no LTO8 reader yet" >/dev/null
ctl vsn add N00001 --media LTO7 >/dev/null
vvm_conf "${params[@]}" class.A.media="LTO9 LTO8 LTO7"
out=$(ctl reload)
grep -q "^applied: class A: media LTO9 LTO8 LTO7 (was LTO9 LTO8)$" <<<"$out" ||
  die "reload said: $out"
wait_log "$vvmd_log" "class A: VV ${vvs[0]}'s LTO7 copy is made through the cache \(a stage, then an archive write\), not tape to tape: no mover has a drive up for LTO9 \(L00001\) or LTO8 \(M00001\) and one for LTO7"
wait_log "$vvmd_log" "class A: stage VV ${vvs[0]} \(2097152 bytes\) from (L|M)00001 file 1 for the copy it lacks"
ctl drive up d3 >/dev/null
echo "ok: with d3 down, ${vvs[0]} is staged for its LTO7 copy, vvmd saying why not tape to tape"

# --- d3 up: tape to tape on m2; a client's stage goes first ---
t2t="class A: copy 3 of VV A[0-9]+ \(2097152 bytes\) from M00001 file [0-9]+ to N00001 file [0-9]+, tape to tape in drives d3 and d2 of mover m2"
wait_log "$vvmd_log" "$t2t" 60
client=${vvs[5]} # last in file order: its copy would be made last
start=$(date +%s.%N)
ctl stage "$client" --wait --timeout 60 >/dev/null || die "the client's stage of $client failed"
took=$(echo "$(date +%s.%N) - $start" | bc)
cmp -s "$cache/$client" "$tmpdir/$client.orig" || die "$client came back different"
asked=$(line_of "stage VV $client \(2097152 bytes\) from [LM]00001 file 6, a client waits")
began=$(line_of "stage VV $client from [LM]00001 file 6 \(copy [12]\) in drive d[013] \(request")
((asked > 0 && began > asked)) || die "vvmd did not log the client's stage of $client"
# No background copy started while the client waited; those waiting went after it.
between=$(sed -n "$((asked + 1)),$((began - 1))p" "$vvmd_log" | grep -Ec "$t2t|class A: stage VV" || true)
((between == 0)) || die "a background copy started while the client's stage waited: $(sed -n "${asked},${began}p" "$vvmd_log")"
echo "ok: the client's stage of $client asked at $(when "$asked"), started at $(when "$began"), done in $took s; no background copy started meanwhile"

# Meanwhile vvctl status shows a tape copy on its drives (asked without a pause until it has).
seen_status=
for ((i = 0; i < 600; i++)); do
  [[ $(media_field LTO7 lacking) == 0 ]] && break
  if [[ -z $seen_status ]]; then
    ctl status | grep -Eq "class A: tape copy A[0-9]+ from M00001 file [0-9]+ \(d3\) to N00001 file [0-9]+ \(d2\)" &&
      seen_status=1
    continue
  fi
  sleep 0.2
done
[[ $(media_field LTO7 lacking) == 0 && $(media_field LTO7 copies) == 8 ]] ||
  die "the LTO7 copies were not all made: $(ctl class ls)"
[[ -n $seen_status ]] || die "vvctl status never showed a tape copy"
echo "ok: every VV got its LTO7 copy (class ls down to 0)"
# The copies before it in file order, waiting when the client asked, were made after its stage.
after=$(tail -n +"$began" "$vvmd_log" | grep -Ec "$t2t" || true)
((after >= 1)) || die "no tape-to-tape copy waited for the client's stage: $(grep -E "$t2t" "$vvmd_log")"
echo "ok: $after background tape cop(ies) waiting when the client asked started after its stage:"
tail -n +"$began" "$vvmd_log" | grep -E "$t2t" | sed -E "s/ vvmd\[[0-9]+\] info: / /; s/ \(request.*//"

tape_to_tape=() through_cache=()
# Which way each went: the cached ones from the cache, the evicted ones tape to tape unless
# staged while d3 was down; a tape-to-tape one never entered the cache.
for vv in "${vvs[@]}"; do
  json=$(ctl show "$vv" --json)
  [[ $(jq -r .state <<<"$json") == archived ]] || die "$vv is not archived: $json"
  [[ $(jq -r '[.copies[] | "\(.media):\(.vsn)"] | join(" ")' <<<"$json") == "LTO9:L00001 LTO8:M00001 LTO7:N00001" ]] ||
    die "$vv's copies are not on LTO9, LTO8 and LTO7: $json"
  [[ $(jq -r '.lacking | length' <<<"$json") == 0 ]] || die "$vv lacks: $json"
  if grep -Eq "class A: copy 3 of VV $vv .*tape to tape in drives d3 and d2" "$vvmd_log"; then
    file=$(jq -r '.copies[2].file' <<<"$json")
    grep -Eq "VV $vv: copy 3 on N00001 file $file \(2097152 bytes, checksum [0-9a-f]+\), tape to tape from M00001 file [0-9]+" "$vvmd_log" ||
      die "vvmd did not record $vv's tape copy at N00001 file $file"
    [[ $(jq -r .cache <<<"$json") == evicted ]] || die "$vv went tape to tape but is in the cache: $json"
    ! grep -q "stage VV $vv " "$vvmd_log" || die "$vv went tape to tape, and was staged too"
    "$vvtape" cat "$library/N00001.tap" "$file" | cmp -s - "$tmpdir/$vv.orig" ||
      die "$vv's tape-to-tape copy (N00001 file $file) is not its bytes"
    tape_to_tape+=("$vv")
  else
    through_cache+=("$vv")
  fi
done
# An evicted VV went through the cache only when vvmd said so while d3 was down; every other
# evicted one but the client's went tape to tape (how many of the first the window of two let
# through before d3 came up depends on timing, the rule does not).
up=$(line_of "drive d3 brought up by")
for i in 0 1 2 3 4; do
  vv=${vvs[i]}
  said=$(line_of "class A: VV $vv's LTO7 copy is made through the cache")
  if [[ " ${tape_to_tape[*]} " == *" $vv "* ]]; then
    ((said == 0)) || die "$vv went tape to tape, yet vvmd said it went through the cache"
  else
    ((said > 0 && said < up)) || die "$vv did not go tape to tape, though d3 was up: $(grep "VV $vv" "$vvmd_log")"
  fi
done
((${#tape_to_tape[@]} >= 2)) || die "only ${#tape_to_tape[@]} VV(s) copied tape to tape: ${tape_to_tape[*]}"
for vv in "${vvs[0]}" "${vvs[6]}" "${vvs[7]}" "$client"; do
  [[ " ${through_cache[*]} " == *" $vv "* ]] || die "$vv did not go through the cache"
done
# Tape to tape in file order of M00001.
order=$(grep -Eo "class A: copy 3 of VV A[0-9]+ \(2097152 bytes\) from M00001 file [0-9]+ to N00001" "$vvmd_log" |
  grep -Eo "file [0-9]+ to" | grep -Eo "[0-9]+" | tr '\n' ' ')
[[ $order == "$(tr ' ' '\n' <<<"$order" | grep . | sort -n | tr '\n' ' ')" ]] ||
  die "the tape copies did not read M00001 in file order: $order"
echo "ok: ${#tape_to_tape[@]} VV(s) copied tape to tape (M00001 files $order), still evicted; ${#through_cache[@]} from the cache (in it, or staged)"

# --- the tapes: vvtape, then parsed independently ---
for t in L00001 M00001 N00001; do
  "$vvtape" verify "$library/$t.tap" >/dev/null || die "vvtape verify $t failed"
done
# One object after another, as vvctl prints them (jq would round the 64-bit checksums).
for vv in "${vvs[@]}"; do ctl show "$vv" --json; done >"$tmpdir/shows.json"
/usr/bin/python3 "$VVM_SOURCE_DIR/test/harness/tapeimage.py" check "$library" "$tmpdir/shows.json" \
  >"$tmpdir/check.out" || die "the tapes parsed independently disagree with vvmd: $(cat "$tmpdir/check.out")"
[[ $(grep -c '^ok ' "$tmpdir/check.out") == 24 ]] || die "not 24 copies checked: $(cat "$tmpdir/check.out")"
grep -q "^3 tape(s) parsed, 24 copies of 8 VV(s) checked, 0 failure(s)$" "$tmpdir/check.out" ||
  die "tapeimage.py: $(tail -n 1 "$tmpdir/check.out")"
[[ $(/usr/bin/python3 "$VVM_SOURCE_DIR/test/harness/tapeimage.py" ls "$library/N00001.tap" |
  jq -r '"\(.media) \(.files | length) \([.files[].largest_block] | unique | map(tostring) | join(" "))"') == "LTO7 8 131072" ]] ||
  die "N00001 is not an LTO7 tape of 8 files in 128 KiB blocks"
grep "N00001" "$tmpdir/check.out" | head -n 3
echo "ok: vvtape verifies the 3 tapes; parsed independently they hold all 24 copies as vvmd says"

ctl db check >/dev/null || die "db check: $(ctl db check)"
echo "ok: db check is clean"

# The independent check can fail: one byte flipped in N00001 file 1's data (after the VOL label,
# its tape mark and the HDR: record 4 + 80 + 4 bytes each, the mark 4) is a checksum failure.
first=$(jq -r 'select(.copies[2].file == 1) | .name' "$tmpdir/shows.json")
[[ $first =~ ^A[0-9]+$ ]] || die "no VV at N00001 file 1"
/usr/bin/python3 - "$library/N00001.tap" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(184 + 1000)
    b = f.read(1)
    f.seek(184 + 1000)
    f.write(bytes([b[0] ^ 0x01]))
PY
rc=0
/usr/bin/python3 "$VVM_SOURCE_DIR/test/harness/tapeimage.py" check "$library" "$tmpdir/shows.json" \
  >"$tmpdir/check.out" || rc=$?
((rc == 1)) || die "tapeimage.py check exited $rc on a flipped byte: $(tail -n 3 "$tmpdir/check.out")"
grep -q "^FAIL copies checksum: copy's checksum: $first copy 3 on N00001 file 1: data XXH3" "$tmpdir/check.out" ||
  die "tapeimage.py did not name $first's copy: $(grep FAIL "$tmpdir/check.out")"
[[ $(grep -c '^FAIL' "$tmpdir/check.out") == 1 ]] || die "tapeimage.py: $(grep FAIL "$tmpdir/check.out")"
echo "ok: a byte flipped on N00001 file 1 is caught by the independent check ($first's copy)"
