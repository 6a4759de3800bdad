#!/usr/bin/env bash
# vv-archive.sh: finished VVs archived to tape by the real vvmd and a real vvmover with two
# emulated drives (LTO9 and LTO8): `vvctl finish --wait` returns once both copies exist; the copies
# are where `vvctl show --json` says, checked with `vvtape ls` and `vvtape cat` against the cache
# file; later VVs go to the next files of the tapes already in the drives, with no new mount; the
# batch rule holds a lone VV back until a second one is due with it; and a mover killed in the
# middle of an archive is noticed, and the VV is archived once the mover is back.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir

# write_conf MAX_WAIT BATCH_FILES RATE: vvm.conf with those archive batch settings and drive rate.
write_conf() {
  vvm_conf drives="LTO9 LTO8" vvmd.archive-max-wait="$1" vvmd.archive-batch-files="$2" rate="$3"
}
write_conf 0 100 2G

# new_vv MIB: a new VV of class A filled with MIB MiB of random data through its cache file; its
# name in $vv.
new_vv() {
  vv=$(ctl create --class A --size "$1M")
  head -c "$(($1 << 20))" /dev/urandom >"$cache/$vv"
}
# check_copies VV FILE9 FILE8: VV is archived with copy 1 on L90001 file FILE9 and copy 2 on
# L80001 file FILE8, and both tape files hold the cache file's bytes.
check_copies() {
  local json
  json=$(ctl show "$1" --json)
  jq -e --argjson f9 "$2" --argjson f8 "$3" '.state == "archived" and .checksum != "0000000000000000"
    and .copies[0].vsn == "L90001" and .copies[0].file == $f9
    and .copies[1].vsn == "L80001" and .copies[1].file == $f8' <<<"$json" >/dev/null ||
    die "show $1: $json"
  "$vvtape" cat "$library/L90001.tap" "$2" | cmp -s - "$cache/$1" || die "$1: L90001 file $2 differs"
  "$vvtape" cat "$library/L80001.tap" "$3" | cmp -s - "$cache/$1" || die "$1: L80001 file $3 differs"
  echo "ok: $1 on L90001 file $2 and L80001 file $3, both the same as the cache file"
}
mounts() { grep -c 'mount L' "$1" || true; }

start_vvmd
start_mover m1
expect 0 "L90001" -- ctl vsn add L90001 --media LTO9 --class A
expect 0 "L80001" -- ctl vsn add L80001 --media LTO8 --class A

# --- one VV, finish --wait ---
new_vv 3
expect 0 "^$vv: archived$" -- ctl finish "$vv" --wait --timeout 60
grep -q "^$vv: copy 1 on L90001 file 1$" <<<"$(ctl finish "$vv" --wait)" ||
  die "finish --wait on an archived VV does not list its copies"
check_copies "$vv" 1 1
first=$vv
serial=$((10#${vv#A}))
"$vvtape" ls "$library/L90001.tap" --json |
  jq -e --argjson s "$serial" '.files[0].hdr.serial == $s and .files[0].hdr.class == "A"
    and .files[0].hdr.size == 3145728' >/dev/null || die "vvtape ls: the label is not $vv's"
echo "ok: the tape label names $vv"

# --- two more VVs: the next files of the same tapes, still in their drives ---
new_vv 1
second=$vv
new_vv 2
third=$vv
ctl finish "$second" >/dev/null
expect 0 "^$third: archived$" -- ctl finish "$third" --wait --timeout 60
expect 0 "^$second: archived$" -- ctl finish "$second" --wait --timeout 60
check_copies "$second" 2 2
check_copies "$third" 3 3
[[ $(mounts "$vvmd_log") == 2 ]] ||
  die "3 VVs on 2 tapes took $(mounts "$vvmd_log") mounts, wanted 2"
echo "ok: 3 VVs, 2 mounts"
status=$(ctl status --json)
jq -e '.mounts == 2 and (.queues | length) == 0 and
  ([.drives[] | select(.name == "d0")][0] | .vsn == "L90001" and .media == "LTO9" and .copying == "")
  and ([.drives[] | select(.name == "d1")][0] | .vsn == "L80001" and .mounts == 1)' <<<"$status" \
  >/dev/null || die "status --json: $status"
ctl status | grep -Eq '^d0 +m1 +LTO9 +L90001 +1 +idle$' || die "status: $(ctl status)"
echo "ok: status shows both tapes in their drives and no queue"
ctl vsn ls --json | jq -e '[.[] | select(.name == "L90001")][0] | .next_file == 4 and .state == "hot"' \
  >/dev/null || die "vsn ls after 3 files: $(ctl vsn ls --json)"
echo "ok: L90001's next file is 4"

# --- the batch rule: with a 1 h wait and batches of 2 files, one VV waits for a second ---
stop_vvmd
write_conf 1h 2 2G
start_vvmd
new_vv 1
lone=$vv
ctl finish "$lone" >/dev/null
sleep 3
ctl show "$lone" --json | jq -e '.state == "finished"' >/dev/null ||
  die "a lone VV was archived without waiting for its batch: $(ctl show "$lone" --json)"
echo "ok: a lone VV waits for its batch"
new_vv 1
expect 0 "^$vv: archived$" -- ctl finish "$vv" --wait --timeout 60
expect 0 "^$lone: archived$" -- ctl finish "$lone" --wait --timeout 60
check_copies "$lone" 4 4
check_copies "$vv" 5 5

# --- the mover killed while it writes: the VV is archived anyway ---
stop_vvmd
write_conf 0 100 4M
start_vvmd
stop_daemon "$mover_pid" mover
start_mover m1
new_vv 16 # 4 s a copy at 4 MiB/s
slow=$vv
ctl finish "$slow" >/dev/null
for ((i = 0; i < 100; i++)); do
  grep -q "archive copy .* of VV $slow" "$vvmd_log" && break
  sleep 0.1
done
sleep 1
ctl status --json | jq -e --arg vv "$slow" '[.drives[].copying] | any(startswith("archive " + $vv))' \
  >/dev/null || die "status does not show $slow being archived: $(ctl status)"
echo "ok: status shows the copy running"
kill_daemon "$mover_pid"
echo "ok: mover killed while it writes $slow"
sleep 2
start_mover m1
expect 0 "^$slow: archived$" -- ctl finish "$slow" --wait --timeout 90
grep -Eq "copy . of VV $slow .* is lost: mover m1 (restarted|does not answer)" "$vvmd_log" ||
  die "vvmd did not say the copy was lost"
json=$(ctl show "$slow" --json)
f9=$(jq '.copies[0].file' <<<"$json")
f8=$(jq '.copies[1].file' <<<"$json")
check_copies "$slow" "$f9" "$f8"
echo "ok: the VV whose mover was killed is archived"
