#!/usr/bin/env bash
# vv-verify.sh: vsn verify with the real vvmd and vvmover on emulated tapes:
#  - two VVs of class A (one copy on LTO9, one on LTO8) archived and evicted; a verify of the
#    LTO9 tape reads both copies back, finds them good, records when and how (--json), and
#    writes nothing into the cache; verifies back to back each count their own reads;
#  - a byte of the second VV's data flipped in the LTO9 tape image: the next verify catches it
#    (exit 1, the copy named BAD), marks the copy bad (show), and the copy is made again from the
#    LTO8 copy onto an LTO9 tape, where vvtape finds the VV's bytes; the VV stages back whole;
#  - the verify record survives a vvmd restart; bad input (an unknown VSN) is refused.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
vvm_conf drives="LTO9 LTO8"
start_vvmd
start_mover m1
for t in L90001 L90002; do ctl vsn add "$t" --media LTO9 >/dev/null; done
ctl vsn add L80001 --media LTO8 >/dev/null

vvs=()
for i in 1 2; do
  vv=$(ctl create --class A --size 1M)
  head -c $((1 * M)) /dev/urandom >"$cache/$vv"
  cp "$cache/$vv" "$tmpdir/$vv.orig"
  ctl finish "$vv" --wait --timeout 60 >/dev/null || die "$vv was not archived"
  [[ $(ctl show "$vv" --json | jq -r '.copies[] | select(.copy == 1) | .vsn') == L90001 ]] ||
    die "$vv's copy 1 is not on L90001: $(ctl show "$vv" --json)"
  ctl evict "$vv" >/dev/null
  vvs+=("$vv")
done
first=${vvs[0]} second=${vvs[1]}

# --- bad input ---
rc=0
ctl vsn verify NOPE 2>"$tmpdir/err" || rc=$?
((rc == 1)) && grep -q "no VSN NOPE" "$tmpdir/err" || die "verify of NOPE: exit $rc, $(cat "$tmpdir/err")"
echo "ok: verify of an unknown VSN refused"

# --- a clean tape verifies good, and nothing lands in the cache ---
ctl vsn verify L90001 --wait --timeout 60 >"$tmpdir/out" || die "verify of L90001: $(cat "$tmpdir/out")"
grep -q "^VSN L90001: 2 copies read back: 2 good, 0 bad$" "$tmpdir/out" ||
  die "verify said: $(cat "$tmpdir/out")"
for vv in "${vvs[@]}"; do
  [[ ! -e $cache/$vv && $(ctl show "$vv" --json | jq -r .cache) == evicted ]] ||
    die "verify put $vv in the cache"
done
grep -q "verify: VV $first's copy 1 on L90001 file 1 is good" "$vvmd_log" ||
  die "vvmd did not log the good copy"
echo "ok: a verify of L90001 read both copies back, good, and wrote nothing into the cache"

# A verify within the same second as the last leaves marks equal to the old ones (times are whole
# seconds): --wait must still count them as this verify's reads.
for round in 1 2 3; do
  ctl vsn verify L90001 --wait --timeout 60 >"$tmpdir/out" || die "verify again: $(cat "$tmpdir/out")"
  grep -q "^VSN L90001: 2 copies read back: 2 good, 0 bad$" "$tmpdir/out" ||
    die "verify round $round said: $(cat "$tmpdir/out")"
done
echo "ok: back-to-back verifies each count both reads"

# --- a flipped byte is caught, the copy marked bad and made again ---
python3 - "$library/L90001.tap" "$tmpdir/$second.orig" <<'PY'
import sys
image, data = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read()
needle = data[700000:700032]
at = image.find(needle)
assert at >= 0 and image.find(needle, at + 1) < 0, "the bytes are not in the image once"
with open(sys.argv[1], 'r+b') as f:
    f.seek(at + 7)
    f.write(bytes([image[at + 7] ^ 0x40]))
PY
rc=0
ctl vsn verify L90001 --wait --timeout 60 --json >"$tmpdir/json" || rc=$?
((rc == 1)) || die "verify of a damaged tape exited $rc: $(cat "$tmpdir/json")"
jq -e --arg a "$first" --arg b "$second" \
  '(map(select(.vv == $a and .good and .how == "verify" and .file == 1)) | length == 1) and
   (map(select(.vv == $b and (.good | not) and (.why | test("checksum")))) | length == 1)' \
  "$tmpdir/json" >/dev/null || die "verify --json: $(cat "$tmpdir/json")"
grep -q "verify: VV $second's copy 1 on L90001 file 2 failed its checks" "$vvmd_log" ||
  die "vvmd did not log the bad copy"
ctl show "$second" | grep -q "^copy 1: .*LTO9: L90001 file 2: bad since .*(vvmd: " ||
  die "show does not mark the copy bad: $(ctl show "$second")"
echo "ok: the verify caught the flipped byte and marked the copy bad"

for ((i = 0; i < 600; i++)); do
  [[ $(ctl show "$second" --json | jq -r .state) == archived ]] && break
  sleep 0.1
done
json=$(ctl show "$second" --json)
[[ $(jq -r .state <<<"$json") == archived ]] || die "$second was not archived again: $json"
new_vsn=$(jq -r '.copies[] | select(.copy == 1 and .state == "good") | .vsn' <<<"$json")
new_file=$(jq -r '.copies[] | select(.copy == 1 and .state == "good") | .file' <<<"$json")
[[ $new_vsn == L9* && "$new_vsn $new_file" != "L90001 2" ]] || die "copy 1 not made anew: $json"
"$vvtape" cat "$library/$new_vsn.tap" "$new_file" >"$tmpdir/new-copy"
cmp -s "$tmpdir/new-copy" "$tmpdir/$second.orig" || die "the new copy holds other bytes"
grep -q "stage VV $second from L80001 file 2 " "$vvmd_log" ||
  die "the copy was not made from the LTO8 copy: $(grep "VV $second" "$vvmd_log")"
ctl evict "$second" >/dev/null
ctl stage "$second" --wait --timeout 60 >/dev/null || die "stage of $second failed"
cmp -s "$cache/$second" "$tmpdir/$second.orig" || die "$second came back different"
echo "ok: copy 1 made again on $new_vsn file $new_file from the LTO8 copy; the VV stages whole"

# --- the records survive a restart ---
stop_vvmd
start_vvmd
ctl vsn verify L90001 --list --json >"$tmpdir/list"
jq -e --arg a "$first" --arg b "$second" \
  '(map(select(.vv == $a and .file == 1 and .good and .how == "verify")) | length == 1) and
   (map(select(.vv == $b and .file == 2 and (.good | not) and (.why | test("checksum")))) | length == 1)' \
  "$tmpdir/list" >/dev/null || die "after a restart, verify --list: $(cat "$tmpdir/list")"
ctl vsn verify L80001 --wait --timeout 60 >"$tmpdir/out" || die "verify of L80001: $(cat "$tmpdir/out")"
grep -q "^VSN L80001: 2 copies read back: 2 good, 0 bad$" "$tmpdir/out" ||
  die "verify of L80001 said: $(cat "$tmpdir/out")"
ctl db check >/dev/null || die "db check: $(ctl db check)"
echo "ok: the verify records are kept across a restart, a verify after it works, db check clean"
