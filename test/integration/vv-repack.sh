#!/usr/bin/env bash
# vv-repack.sh: repack and reclaim with the real vvmd and vvmover on emulated tapes:
#  - bad input to vsn repack and vsn reclaim (an unknown VSN, a tape no other tape can take the
#    copies of, a second repack of one tape, a reclaim of a tape not emptied) is refused with a
#    clear message and changes nothing;
#  - a half-dead tape (8 VVs archived on it, 4 removed) is repacked onto another tape while
#    vvmd is killed (SIGKILL) in the middle of a move, and the mover killed in the middle of
#    another; both restarted, the repack goes on and ends, and the tape is set reclaim;
#  - the VV in the cache is written from there, the evicted ones copied tape to tape (the one
#    mover has both drives);
#  - vsn ls and status show the repack while it runs; every VV is then on the new tape, is read
#    back from there (evicted, staged, compared with its bytes), both tapes pass vvtape verify,
#    and vvtape ls finds each VV's new copy at the file vvmd recorded;
#  - vsn reclaim writes the emptied tape again from file 1 (a fresh VOL label, its dead files
#    forgotten, hot), and db check stays clean.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
# Two LTO9 drives that copy 2 MiB/s: a 2 MiB VV takes a second to write, time to kill vvmd or
# the mover in the middle of a move.
vvm_conf drives="LTO9 LTO9" class.A.media=LTO9 rate=2M
start_vvmd
start_mover m1
ctl vsn add L90001 --media LTO9 --class A >/dev/null

vsn_field() { ctl vsn ls --json | jq -r --arg t "$1" ".[] | select(.name == \$t) | .$2"; }
# refused EXIT WORDS -- ARGS...: vvctl ARGS fails with exit EXIT and says WORDS on stderr.
refused() {
  local want=$1 words=$2 rc=0
  shift 3
  ctl "$@" >"$tmpdir/out" 2>"$tmpdir/err" || rc=$?
  ((rc == want)) || die "vvctl $* exited $rc, wanted $want: $(cat "$tmpdir/out" "$tmpdir/err")"
  grep -q -- "$words" "$tmpdir/err" || die "vvctl $* did not say '$words': $(cat "$tmpdir/err")"
}

# --- eight VVs on L90001, four of them removed ---
archived_vvs 8
for vv in "${vvs[@]}"; do
  [[ $(ctl show "$vv" --json | jq -r '.copies[0].vsn') == L90001 ]] || die "$vv is not on L90001"
done
live=()
for i in "${!vvs[@]}"; do
  if ((i % 2)); then
    ctl rm "${vvs[i]}" --force >/dev/null
  else
    live+=("${vvs[i]}")
  fi
done
# All but the first of the live ones are read back from tape for the repack.
for vv in "${live[@]:1}"; do ctl evict "$vv" >/dev/null; done
[[ $(vsn_field L90001 live_files) == 4 && $(vsn_field L90001 dead_files) == 4 ]] ||
  die "L90001 is not half dead: $(ctl vsn ls)"
echo "ok: L90001 holds 8 files, 4 of them dead"

# --- bad input: refused, nothing changed ---
before=$(ctl vsn ls --json)
refused 1 "no VSN NOPE" -- vsn repack NOPE
refused 1 "cannot repack VSN L90001: no other LTO9 tape can take its 4 live file(s) of class A" \
  -- vsn repack L90001
refused 1 "no VSN NOPE" -- vsn reclaim NOPE
refused 1 "VSN L90001 is hot: only a tape in state reclaim is reclaimed" -- vsn reclaim L90001
refused 2 "name a VSN" -- vsn repack
[[ $(ctl vsn ls --json) == "$before" ]] || die "refused commands changed a VSN"
[[ $(ctl status --json | jq '.repacks | length') == 0 ]] || die "a refused repack is listed"
echo "ok: bad input to vsn repack and vsn reclaim refused, nothing changed"

# --- the repack, interrupted twice ---
ctl vsn add L90002 --media LTO9 >/dev/null
out=$(ctl vsn repack L90001)
grep -q "^VSN L90001: repack started: 4 live file(s) (8M) to move to other LTO9 tapes" <<<"$out" ||
  die "vsn repack did not say what it moves: $out"
refused 1 "VSN L90001 is being repacked already" -- vsn repack L90001
out=$(ctl vsn ls)
grep -q "^L90001: repack running since .* by $(id -un): [0-9] of 4 file(s) moved" <<<"$out" ||
  die "vsn ls does not show the repack: $out"
out=$(ctl status)
grep -q "^L90001: repack running since" <<<"$out" || die "status does not show it: $out"
[[ $(ctl status --json | jq -r '.repacks[0].vsn') == L90001 ]] || die "status --json: no repack"

# wait_move LOG N: until LOG shows N moves to L90002 started.
wait_move() {
  for ((i = 0; i < 300; i++)); do
    (($(grep -c "repack: copy 1 of VV .* from L90001 file [0-9]* to L90002" "$1" || true) >= $2)) &&
      return 0
    sleep 0.1
  done
  die "no move to L90002 started: $(grep -i repack "$1")"
}
wait_move "$vvmd_log" 1
kill_vvmd
start_vvmd
grep -q "recovery: the repack of L90001 (since .*) goes on" "$vvmd_log" ||
  die "vvmd did not take the repack up again"
echo "ok: vvmd killed in the middle of a move; restarted, it goes on with the repack"
wait_move "$vvmd_log" 1
sleep 0.3
kill_daemon "$mover_pid"
sleep 1
start_mover m1
echo "ok: the mover killed in the middle of a move, and started again"

for ((i = 0; i < 1200; i++)); do
  [[ $(vsn_field L90001 state) == reclaim ]] && break
  sleep 0.1
done
[[ $(vsn_field L90001 state) == reclaim ]] || die "the repack did not end: $(ctl vsn ls)"
grep -q "repack of L90001 done: 4 file(s) moved; it is reclaim now" "$vvmd_log" ||
  die "vvmd did not log the end of the repack"
[[ $(vsn_field L90001 live_files) == 0 && $(vsn_field L90001 dead_files) == 8 ]] ||
  die "L90001 after the repack: $(ctl vsn ls)"
[[ $(vsn_field L90002 live_files) == 4 ]] || die "L90002 after the repack: $(ctl vsn ls)"
[[ $(ctl vsn ls --json | jq -r '.[] | select(.name == "L90001") | .repack.state') == done &&
  $(ctl vsn ls --json | jq -r '.[] | select(.name == "L90001") | .repack.files_moved') == 4 ]] ||
  die "vsn ls --json does not say the repack is done: $(ctl vsn ls --json)"
out=$(ctl vsn ls)
grep -q "^L90001: reclaim since .* by $(id -un): repacked: 4 file(s) moved off it" <<<"$out" ||
  die "vsn ls does not say why L90001 is reclaim: $out"
echo "ok: the repack ended, L90001 is reclaim, its 4 live files are on L90002"
grep -hq "repack: VV ${live[0]}: copy 1 moved from L90001 file 1 to L90002 file [0-9]* (2097152 bytes, through the cache)" "$tmpdir"/vvmd*.log ||
  die "${live[0]}, in the cache, was not written from there: $(grep -h "${live[0]}" "$tmpdir"/vvmd*.log)"
for vv in "${live[@]:1}"; do
  grep -hq "repack: VV $vv: copy 1 moved from L90001 file [0-9]* to L90002 file [0-9]* (2097152 bytes, tape to tape)" "$tmpdir"/vvmd*.log ||
    die "$vv was not copied tape to tape: $(grep -h "$vv" "$tmpdir"/vvmd*.log)"
done
grep -hq "tape to tape in drives d[01] and d[01] of mover m1" "$tmpdir"/vvmd*.log ||
  die "vvmd did not log the drives of a tape copy"
echo "ok: the VV in the cache written from there, the evicted ones copied tape to tape"

# --- every VV readable from its new copy; the tapes as vvmd says ---
"$vvtape" verify "$library/L90001.tap" >/dev/null || die "vvtape verify L90001 failed"
"$vvtape" verify "$library/L90002.tap" >/dev/null || die "vvtape verify L90002 failed"
for vv in "${live[@]}"; do
  json=$(ctl show "$vv" --json)
  [[ $(jq -r .state <<<"$json") == archived && $(jq -r '.copies[0].vsn' <<<"$json") == L90002 ]] ||
    die "$vv is not archived on L90002: $json"
  file=$(jq -r '.copies[0].file' <<<"$json")
  serial=$((10#${vv:1}))
  "$vvtape" ls "$library/L90002.tap" --json >"$tmpdir/ls.json"
  jq -e --argjson f "$file" --argjson s "$serial" \
      '[.files[] | select(.file == $f and .hdr.serial == $s and .hdr.size == 2097152)] | length == 1' \
      "$tmpdir/ls.json" >/dev/null || die "$vv is not at L90002 file $file: $("$vvtape" ls "$library/L90002.tap")"
  [[ $(jq -r .cache <<<"$json") == evicted ]] || ctl evict "$vv" >/dev/null
  ctl stage "$vv" --wait --timeout 60 >/dev/null || die "stage of $vv failed"
  cmp -s "$cache/$vv" "$tmpdir/$vv.orig" || die "$vv came back different"
  grep -q "stage VV $vv from L90002 file $file " "$vvmd_log" || die "$vv was not read from L90002"
done
echo "ok: every VV is read back from L90002, the bytes it had; both tapes verify"

# --- reclaim ---
refused 1 "VSN L90002 is hot: only a tape in state reclaim" -- vsn reclaim L90002
out=$(ctl vsn reclaim L90001)
grep -q "^VSN L90001: reclaimed: hot from file 1; 8 dead file(s) (16M) forgotten" <<<"$out" ||
  die "vsn reclaim did not say what it did: $out"
[[ $(vsn_field L90001 state) == hot && $(vsn_field L90001 next_file) == 1 &&
  $(vsn_field L90001 dead_files) == 0 && $(vsn_field L90001 bytes_used) == 0 ]] ||
  die "L90001 after the reclaim: $(ctl vsn ls --json)"
[[ $("$vvtape" ls "$library/L90001.tap" --json | jq '.files | length') == 0 ]] ||
  die "L90001 still holds files: $("$vvtape" ls "$library/L90001.tap")"
out=$("$vvtape" ls "$library/L90001.tap")
grep -q "L90001" <<<"$out" || die "L90001 has no VOL label: $out"
ctl db check >/dev/null || die "db check: $(ctl db check)"
echo "ok: L90001 reclaimed: a fresh label, hot from file 1, its dead files forgotten"
