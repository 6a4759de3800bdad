#!/usr/bin/env bash
# vsn-states.sh: VSN and drive states with the real vvmd and vvmover on emulated tapes:
#  - bad input to vsn set and drive down/up (unknown VSN, state or drive, no reason) is refused
#    with a clear message and changes nothing;
#  - a VSN set full, read-only, disabled, reclaim or bad takes no archive, and one set hot again
#    does; who set it, when and why are shown by vsn ls and --json; a disabled VSN is never
#    mounted (a stage of its only copy is refused, saying so), a read-only one is read;
#  - a VSN added without --class takes the class of its first archive, and vsn ls says since when;
#  - a drive taken down gets nothing (copies go to the other drive, or wait), stays down across
#    a vvmd restart, and comes back with drive up;
#  (failed copies in a row taking a drive down and a VSN read-only: scheduler_test.cc, as the
#  emulated drives cannot be made to fail a read that way from outside);
#  - rm --force of an archived VV counts its tape file dead on its VSN (vsn ls: live and dead
#    files and bytes), and db check stays clean.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
vvm_conf drives="LTO9 LTO9" class.A.media=LTO9
start_vvmd
start_mover m1
for t in L90001 L90002 L90003; do ctl vsn add "$t" --media LTO9 >/dev/null; done
ctl vsn add L90004 --media LTO9 --class A >/dev/null
me=$(id -un)

vsn_json() { ctl vsn ls --json | jq -c --arg t "$1" '.[] | select(.name == $t)'; }
vsn_field() { vsn_json "$1" | jq -r ".$2"; }
# archived_vv: a new 64 KiB VV, finished and archived; its name in $vv, its tape in $on.
archived_vv() {
  vv=$(ctl create --class A --size 64K)
  head -c 65536 /dev/urandom >"$cache/$vv"
  ctl finish "$vv" --wait --timeout 60 >/dev/null || die "$vv was not archived"
  on=$(ctl show "$vv" --json | jq -r '.copies[0].vsn')
}
# refused EXIT WORDS -- ARGS...: vvctl ARGS fails with exit EXIT and says WORDS on stderr.
refused() {
  local want=$1 words=$2 rc=0
  shift 3
  ctl "$@" >"$tmpdir/out" 2>"$tmpdir/err" || rc=$?
  ((rc == want)) || die "vvctl $* exited $rc, wanted $want: $(cat "$tmpdir/out" "$tmpdir/err")"
  grep -q -- "$words" "$tmpdir/err" || die "vvctl $* did not say '$words': $(cat "$tmpdir/err")"
}

# --- bad input: refused, nothing changed ---
before=$(ctl vsn ls --json)
drives_before=$(ctl drive ls --json)
refused 1 "no VSN NOPE" -- vsn set NOPE read-only --reason test
refused 2 "'sideways' is not a state a VSN can be set to (hot, full, read-only" -- \
  vsn set L90001 sideways --reason test
refused 2 "'blank' is not a state" -- vsn set L90001 blank --reason test
refused 2 "say why: --reason TEXT" -- vsn set L90001 read-only
refused 1 "no drive d9 (vvm.conf's drives: d0, d1)" -- drive down d9 --reason test
refused 2 "say why: --reason TEXT" -- drive down d0
[[ $(ctl vsn ls --json) == "$before" && $(ctl drive ls --json) == "$drives_before" ]] ||
  die "refused commands changed something"
echo "ok: bad input to vsn set and drive down refused, nothing changed"

# --- the class of the first archive, and since when ---
archived_vv
first=$vv
[[ $on == L90001 ]] || die "the first archive went to $on, wanted L90001"
[[ $(vsn_field L90001 class) == A && $(vsn_field L90001 class_how) == first &&
  $(vsn_field L90001 class_since) -gt 0 ]] || die "L90001's class: $(vsn_json L90001)"
[[ $(vsn_field L90004 class_how) == added && $(vsn_field L90004 class_since) -gt 0 ]] ||
  die "L90004's class: $(vsn_json L90004)"
ctl vsn ls | grep -q "^L90001: class A since .* (taken at its first archive)" ||
  die "vsn ls does not say where L90001's class came from: $(ctl vsn ls)"
grep -q "VSN L90001 takes class A: its first archive" "$vvmd_log" || die "vvmd did not log it"
echo "ok: L90001 took class A at its first archive, and vsn ls says since when"

# --- each state that takes no archive ---
for state in full read-only disabled reclaim bad; do
  ctl vsn set L90001 "$state" --reason "test $state" >"$tmpdir/set.out"
  grep -q "^VSN L90001: $state since .* by $me: test $state" "$tmpdir/set.out" ||
    die "vsn set said: $(cat "$tmpdir/set.out")"
  [[ $(vsn_field L90001 state) == "$state" && $(vsn_field L90001 state_by) == "$me" &&
    $(vsn_field L90001 state_reason) == "test $state" && $(vsn_field L90001 state_since) -gt 0 ]] ||
    die "vsn ls --json after vsn set $state: $(vsn_json L90001)"
  ctl vsn ls | grep -q "^L90001: $state since .* by $me: test $state" ||
    die "vsn ls does not show who set $state: $(ctl vsn ls)"
  archived_vv
  [[ $on != L90001 ]] || die "an archive went to L90001, which is $state"
done
echo "ok: no archive to a full, read-only, disabled, reclaim or bad VSN; who and why shown"
ctl vsn set L90001 hot --reason "back in use" >/dev/null
archived_vv
[[ $on == L90001 ]] || die "L90001 is hot again but the archive went to $on"
echo "ok: set hot again, L90001 takes archives"

# --- disabled: never mounted; read-only: read ---
ctl evict "$first" >/dev/null
ctl vsn set L90001 disabled --reason "robot arm" >/dev/null
stop_vvmd # the drives forget their tapes
start_vvmd
refused 1 "on disabled VSNs, never mounted: L90001" -- stage "$first"
[[ $(ctl show "$first" --json | jq -r .cache) == evicted ]] || die "$first is not evicted"
! grep -q "mount L90001" "$vvmd_log" || die "L90001 was mounted while disabled"
ctl vsn set L90001 read-only --reason "read it" >/dev/null
ctl stage "$first" --wait --timeout 60 >/dev/null || die "the stage from a read-only VSN failed"
echo "ok: a disabled VSN is never mounted, a read-only one is read"

# --- drives down and up ---
ctl drive down d0 --reason cleaning >"$tmpdir/down.out"
grep -q "^drive d0 (mover m1, LTO9): down since .* by $me: cleaning" "$tmpdir/down.out" ||
  die "drive down said: $(cat "$tmpdir/down.out")"
ctl status | grep -q "^d0 .*DOWN since .* by $me: cleaning" || die "status: $(ctl status)"
[[ $(ctl status --json | jq -r '.drives[] | select(.name == "d0") | .usable') == false ]] ||
  die "status --json says d0 is usable"
archived_vv
grep -q "archive copy 1 of VV $vv .* in drive d1 " "$vvmd_log" || die "$vv was not written on d1"
! grep -q "VV $vv .* in drive d0 " "$vvmd_log" || die "$vv went to the down drive d0"
ctl drive down d1 --reason "both down" >/dev/null
vv=$(ctl create --class A --size 64K)
ctl finish "$vv" >/dev/null
sleep 3
[[ $(ctl show "$vv" --json | jq -r .state) == finished ]] || die "$vv was archived with no drive up"
stop_vvmd
start_vvmd
[[ $(ctl drive ls --json | jq -r '[.[] | .state] | join(" ")') == "down down" ]] ||
  die "the drives did not stay down across a restart: $(ctl drive ls)"
ctl drive up d1 >/dev/null
ctl finish "$vv" --wait --timeout 60 >/dev/null || die "$vv was not archived once d1 came up"
ctl drive up d0 >/dev/null
[[ $(ctl drive ls --json | jq -r '.[] | select(.name == "d1") | .state') == up ]] ||
  die "d1 is not up: $(ctl drive ls)"
echo "ok: nothing goes to a down drive, which stays down across a restart until drive up"

# --- space given back: rm --force counts the tape file dead ---
archived_vv
live_before=$(vsn_field "$on" live_files)
bytes_before=$(vsn_field "$on" live_bytes)
dead_before=$(vsn_field "$on" dead_files)
file=$(ctl show "$vv" --json | jq -r '.copies[0].file')
size_before=$(stat -c %s "$library/$on.tap")
ctl rm "$vv" --force >/dev/null
[[ $(vsn_field "$on" live_files) == $((live_before - 1)) &&
  $(vsn_field "$on" live_bytes) == $((bytes_before - 65536)) &&
  $(vsn_field "$on" dead_files) == $((dead_before + 1)) ]] ||
  die "after rm --force: $(vsn_json "$on")"
[[ $(vsn_field "$on" dead_bytes) -ge 65536 ]] || die "dead bytes: $(vsn_json "$on")"
[[ $(stat -c %s "$library/$on.tap") == "$size_before" ]] || die "the tape image changed"
"$vvtape" ls "$library/$on.tap" --json | jq -e --argjson f "$file" '[.files[] | select(.file == $f)] | length == 1' \
  >/dev/null || die "the removed VV's tape file is gone from $on"
ctl vsn ls | grep -q "^$on .* [0-9]*/[0-9.]*K  *$((dead_before + 1))/[0-9.]*K .* 0 bad, 0 failed$" ||
  die "vsn ls LIVE, DEAD, ERRORS: $(ctl vsn ls)"
ctl db check >"$tmpdir/check.out" || die "db check: $(cat "$tmpdir/check.out")"
stop_vvmd
start_vvmd
[[ $(vsn_field "$on" dead_files) == $((dead_before + 1)) ]] || die "the dead file was forgotten"
ctl db check >/dev/null || die "db check after the restart failed"
echo "ok: rm --force counted $on file $file dead, the tape untouched, db check sound"
