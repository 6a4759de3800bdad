#!/usr/bin/env bash
# vv-class-change.sh: a storage class that changes after its VVs are on tape, with the real vvmd
# and vvmover and two emulated drives of two media types (d0 LTO9, d1 LTO8):
#  - four VVs archived in class A on LTO9 (two evicted);
#  - reloads refused, the running classes kept: a file that does not load (SIGHUP), a media type no
#    drive takes, a media type with no tape;
#  - class A gains LTO8 (vvctl reload): the reply says what was applied and what waits for a
#    restart; class ls counts the VVs lacking their LTO8 copy, and each gets it (the cached ones
#    from the cache, the evicted ones tape to tape: m1 has a drive of each type) until the count
#    is 0; both tapes pass vvtape verify, and vvtape ls finds every VV on the LTO8 tape at the
#    file vvmd recorded;
#  - class A loses LTO9 (SIGHUP): class ls lists the LTO9 copies as extra, and show names each
#    copy by its tape's media (LTO9 extra in copy 1, LTO8 in copy 2), never by the slot's position
#    in vvctl's vvm.conf, before and after the prune; class prune releases them, and vsn ls counts
#    L00001's files dead; every VV is still staged back, the bytes it
#    had, from its LTO8 copy; status shows the class's drive limits; db check stays clean.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
# 2 MiB/s drives: a 2 MiB VV takes a second to copy, time to see the work counted as it goes.
params=(drives="LTO9 LTO8" rate=2M class.A.read-max-drives=1 class.A.write-max-drives=2)
vvm_conf "${params[@]}" class.A.media=LTO9
start_vvmd
start_mover m1
ctl vsn add L00001 --media LTO9 --class A >/dev/null

# refused EXIT WORDS -- ARGS...: vvctl ARGS fails with exit EXIT and says WORDS on stderr.
refused() {
  local want=$1 words=$2 rc=0
  shift 3
  ctl "$@" >"$tmpdir/out" 2>"$tmpdir/err" || rc=$?
  ((rc == want)) || die "vvctl $* exited $rc, wanted $want: $(cat "$tmpdir/out" "$tmpdir/err")"
  grep -q -- "$words" "$tmpdir/err" || die "vvctl $* did not say '$words': $(cat "$tmpdir/err")"
}
# media_field MEDIA FIELD: class ls --json's FIELD for class A's MEDIA line (null when none).
media_field() {
  ctl class ls --json | jq -r --arg m "$1" \
    '.[] | select(.class == "A") | [.media[] | select(.media == $m)][0] | .'"$2"
}

archived_vvs 4
for vv in "${vvs[@]:0:2}"; do ctl evict "$vv" >/dev/null; done
[[ $(media_field LTO9 copies) == 4 && $(media_field LTO9 lacking) == 0 ]] ||
  die "class ls before the change: $(ctl class ls --json)"
echo "ok: 4 VVs archived in class A on LTO9, 2 of them evicted"

# --- reloads refused: the running configuration stays ---
before=$(ctl class ls --json)
# A file that does not load (vvctl itself would not read it: the signal then).
echo "[class" >>"$conf"
kill -HUP "$vvmd_pid"
wait_log "$vvmd_log" "reload \(SIGHUP\): refused, the running configuration stays: $conf:[0-9]+: '\[class'"
vvm_conf "${params[@]}" class.A.media="LTO9 LTO7"
refused 1 "class A: no drive of vvmd's movers takes media LTO7" -- reload
vvm_conf "${params[@]}" class.A.media="LTO9 LTO8"
refused 1 "class A: no tape of media LTO8 may take its copies (add a blank one first" -- reload
refused 2 "a class is required" -- class prune
refused 1 "no storage class 'Z' (classes: A)" -- class prune Z
[[ $(ctl class ls --json) == "$before" ]] || die "a refused reload changed the classes"
grep -q "reload of $conf (.*): refused, the running configuration stays" "$vvmd_log" ||
  die "vvmd did not log the refusal"
echo "ok: a bad file, a media type no drive takes, one with no tape: refused, classes kept"

# --- class A gains LTO8 ---
ctl vsn add M00001 --media LTO8 >/dev/null
vvm_conf "${params[@]}" class.A.media="LTO9 LTO8" vvmd.archive-batch-files=7
out=$(ctl reload)
grep -q "^applied: class A: media LTO9 LTO8 (was LTO9)$" <<<"$out" || die "reload said: $out"
grep -q "^needs a restart: \[vvmd\] archive-batch-size, archive-batch-files" <<<"$out" ||
  die "reload did not say what waits for a restart: $out"
wait_log "$vvmd_log" "reload of $conf \($(id -un)\): applied: class A: media LTO9 LTO8"
lacking=$(media_field LTO8 lacking)
((lacking > 0 && lacking <= 4)) || die "class ls does not count the copies lacking: $(ctl class ls)"
grep -Eq "^A +LTO9 LTO8 +4 " <<<"$(ctl class ls)" || die "class ls: $(ctl class ls)"
for ((i = 0; i < 1200; i++)); do
  [[ $(media_field LTO8 lacking) == 0 ]] && break
  sleep 0.1
done
[[ $(media_field LTO8 lacking) == 0 && $(media_field LTO8 copies) == 4 ]] ||
  die "the LTO8 copies were not all made: $(ctl class ls)"
grep -Eq "class A: copy 2 of VV ${vvs[0]} \(2097152 bytes\) from L00001 file 1 to M00001 file [0-9]+, tape to tape in drives d0 and d1 of mover m1" "$vvmd_log" ||
  die "the evicted ${vvs[0]} was not copied tape to tape: $(grep "VV ${vvs[0]}" "$vvmd_log")"
[[ $(ctl show "${vvs[0]}" --json | jq -r .cache) == evicted ]] ||
  die "${vvs[0]} was copied tape to tape, yet is in the cache"
"$vvtape" verify "$library/L00001.tap" >/dev/null || die "vvtape verify L00001 failed"
"$vvtape" verify "$library/M00001.tap" >/dev/null || die "vvtape verify M00001 failed"
"$vvtape" ls "$library/M00001.tap" --json >"$tmpdir/ls.json"
for vv in "${vvs[@]}"; do
  json=$(ctl show "$vv" --json)
  [[ $(jq -r .state <<<"$json") == archived ]] || die "$vv is not archived: $json"
  file=$(jq -r '[.copies[] | select(.vsn == "M00001")][0].file' <<<"$json")
  [[ $file =~ ^[0-9]+$ ]] || die "$vv has no copy on M00001: $json"
  serial=$((10#${vv:1}))
  jq -e --argjson f "$file" --argjson s "$serial" \
    '[.files[] | select(.file == $f and .hdr.serial == $s and .hdr.size == 2097152)] | length == 1' \
    "$tmpdir/ls.json" >/dev/null || die "$vv is not at M00001 file $file"
done
echo "ok: every VV got its LTO8 copy (class ls down to 0); both tapes verify"

# --- class A loses LTO9 (SIGHUP) ---
vvm_conf "${params[@]}" class.A.media=LTO8
kill -HUP "$vvmd_pid"
wait_log "$vvmd_log" "reload of $conf \(SIGHUP\): applied: class A: media LTO8 \(was LTO9 LTO8\)"
[[ $(media_field LTO9 listed) == false && $(media_field LTO9 copies) == 4 ]] ||
  die "class ls does not list the extra LTO9 copies: $(ctl class ls --json)"
grep -q "^class A: 4 extra copies on LTO9 (8M), kept until 'vvctl class prune A'" \
  <<<"$(ctl class ls)" || die "class ls: $(ctl class ls)"
# shows_media VV VSN MEDIA: show and show --json name VV's copy on VSN as on MEDIA, and show says
# nothing is lacking.
shows_media() {
  local out json
  out=$(ctl show "$1")
  grep -Eq "^copy [0-9]: +$3: $2 file [0-9]+" <<<"$out" || die "show $1 does not put $2 on $3: $out"
  ! grep -q "not yet written" <<<"$out" || die "show $1 says a copy is lacking: $out"
  json=$(ctl show "$1" --json)
  [[ $(jq -r --arg v "$2" '[.copies[] | select(.vsn == $v)][0].media' <<<"$json") == "$3" ]] ||
    die "show --json $1 does not put $2 on $3: $json"
  [[ $(jq -r '.lacking | length' <<<"$json") == 0 ]] || die "show --json $1 lacks: $json"
}
for vv in "${vvs[@]}"; do
  shows_media "$vv" L00001 LTO9
  shows_media "$vv" M00001 LTO8
  grep -Eq "^copy 1: +LTO9: L00001 file [0-9]+ \(extra: not wanted by class A\)$" \
    <<<"$(ctl show "$vv")" || die "show $vv does not call its LTO9 copy extra: $(ctl show "$vv")"
  [[ $(ctl show "$vv" --json | jq -r '[.copies[] | select(.extra)] | map(.vsn) | join(" ")') == L00001 ]] ||
    die "show --json $vv: $(ctl show "$vv" --json)"
done
vsn_dead() { ctl vsn ls --json | jq -r --arg t "$1" ".[] | select(.name == \$t) | .dead_bytes"; }
[[ $(vsn_dead L00001) == 0 ]] || die "L00001 has dead bytes before the prune: $(ctl vsn ls)"
out=$(ctl class prune A)
grep -q "^class A: 4 extra copies released (8M), their tape files dead" <<<"$out" ||
  die "class prune said: $out"
[[ $(vsn_dead L00001) == $((8 * M)) ]] || die "L00001's dead bytes did not rise: $(ctl vsn ls)"
[[ $(media_field LTO9 copies) == null ]] || die "class ls still lists LTO9: $(ctl class ls)"
for vv in "${vvs[@]}"; do
  shows_media "$vv" M00001 LTO8
  ! grep -q L00001 <<<"$(ctl show "$vv")" || die "show $vv still lists L00001: $(ctl show "$vv")"
done
echo "ok: LTO9 dropped by SIGHUP, its copies extra until pruned, show names each by its tape's media"

for vv in "${vvs[@]}"; do
  [[ $(ctl show "$vv" --json | jq -r .cache) == evicted ]] || ctl evict "$vv" >/dev/null
  ctl stage "$vv" --wait --timeout 60 >/dev/null || die "stage of $vv failed"
  cmp -s "$cache/$vv" "$tmpdir/$vv.orig" || die "$vv came back different"
  grep -q "stage VV $vv from M00001 file " "$vvmd_log" || die "$vv was not read from M00001"
done
echo "ok: every VV staged back from its LTO8 copy, the bytes it had"

out=$(ctl status)
grep -Eq "^A +0 of 1 +0 of 2" <<<"$out" || die "status does not show class A's limits: $out"
[[ $(ctl status --json | jq -r '.classes[0] | "\(.class) \(.read_max_drives) \(.write_max_drives)"') == "A 1 2" ]] ||
  die "status --json: $(ctl status --json | jq .classes)"
ctl db check >/dev/null || die "db check: $(ctl db check)"
echo "ok: status shows class A's drive limits; db check is clean"
