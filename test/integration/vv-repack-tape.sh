#!/usr/bin/env bash
# vv-repack-tape.sh: a repack's moves tape to tape (TAPE_COPY: one copy process of the mover
# holding both emulated LTO9 drives), with the real vvmd and vvmover:
#  - the mover is killed (SIGKILL) in the middle of the first tape copy; started again, the move
#    is made again (over the partial file on the new tape) and the repack goes on;
#  - a medium error (EIO) on one record of the old tape fails that tape copy cleanly: the copy
#    stays live on the old tape (show), nothing of it is on the new tape, an error is counted on
#    the old tape; once the record reads again, the move goes through the cache (logged, with
#    why) and ends;
#  - every other evicted VV is moved tape to tape, none through the cache;
#  - at the end both tapes pass vvtape verify, vvtape ls finds each VV at the file vvmd recorded,
#    every VV is staged back from its new copy and compared with its bytes, and db check is clean.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
# 1 MiB/s a drive: a 2 MiB VV takes two seconds to copy, time to kill the mover in the middle.
vvm_conf drives="LTO9 LTO9" class.A.media=LTO9 rate=1M
start_vvmd
start_mover m1
ctl vsn add L90001 --media LTO9 --class A >/dev/null

vsn_field() { ctl vsn ls --json | jq -r --arg t "$1" ".[] | select(.name == \$t) | .$2"; }
# logged WORDS: some vvmd's log has a line with WORDS (a basic regex).
logged() { grep -hq -- "$1" "$tmpdir"/vvmd*.log; }
logged_of() { grep -h -- "$1" "$tmpdir"/vvmd*.log | tail -20; }
# wait_log WORDS: until vvmd's log has a line matching the regex WORDS (60 s at most).
wait_log() {
  for ((i = 0; i < 600; i++)); do
    grep -Eq -- "$1" "$vvmd_log" && return 0
    sleep 0.1
  done
  die "vvmd never logged '$1': $(grep -i repack "$vvmd_log" | tail -20)"
}
# bad_record FILE RECORD on|off: SIMH's bad-record flag on record RECORD (0: the HDR label) of
# tape file FILE of L90001, which the emulated drive answers with EIO, as st does a block it
# cannot read.
bad_record() {
  /usr/bin/python3 - "$library/L90001.tap" "$1" "$2" "$3" <<'PY'
import struct, sys
path, want, which, flag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "on"
data = bytearray(open(path, "rb").read())
pos, file, record = 0, 0, 0
while pos + 4 <= len(data):
    (n,) = struct.unpack_from("<I", data, pos)
    if n == 0xFFFFFFFF:
        break
    if n == 0:
        file, record, pos = file + 1, 0, pos + 4
        continue
    length = n & 0x7FFFFFFF
    end = pos + 4 + length + (length & 1)
    if file == want and record == which:
        value = length | (0x80000000 if flag else 0)
        struct.pack_into("<I", data, pos, value)
        struct.pack_into("<I", data, end, value)
        open(path, "r+b").write(data)
        sys.exit(0)
    record, pos = record + 1, end + 4
sys.exit(f"{path}: no record {which} in file {want}")
PY
}

# --- four VVs on L90001, evicted; file 3's second data block unreadable ---
archived_vvs 4
for vv in "${vvs[@]}"; do ctl evict "$vv" >/dev/null; done
for i in 0 1 2 3; do
  [[ $(ctl show "${vvs[i]}" --json | jq -r '.copies[0].file') == $((i + 1)) ]] ||
    die "${vvs[i]} is not L90001 file $((i + 1)): $(ctl show "${vvs[i]}")"
done
bad_record 3 2 on
ctl vsn add L90002 --media LTO9 >/dev/null
ctl vsn repack L90001 >/dev/null

# --- the mover killed in the middle of the first tape copy ---
wait_log "repack: copy 1 of VV ${vvs[0]} \(2097152 bytes\) from L90001 file 1 to L90002 file 1, tape to tape in drives d[01] and d[01] of mover m1"
sleep 0.5
kill_daemon "$mover_pid"
[[ $(ctl show "${vvs[0]}" --json | jq -r '.copies[0].vsn') == L90001 ]] ||
  die "the first tape copy ended before the mover was killed: make the drives slower"
sleep 1
start_mover m1
wait_log "copy 1 of VV ${vvs[0]} to L90002 \(request [0-9]+\) is lost"
echo "ok: the mover killed in the middle of a tape copy, started again; vvmd saw the copy lost"

# --- EIO reading file 3: that move fails, the old copy stays live ---
wait_log "repack: tape copy of VV ${vvs[2]} from L90001 file 3 \(drive d[01]\) to L90002 failed reading L90001: .*Input/output error"
shown=$(ctl show "${vvs[2]}" --json)
[[ $(jq -r '.copies[0].vsn' <<<"$shown") == L90001 && $(jq -r '.copies[0].file' <<<"$shown") == 3 &&
  $(jq -r .state <<<"$shown") == archived ]] ||
  die "${vvs[2]}'s copy is not live on L90001 file 3 after the failed tape copy: $shown"
serial=$((10#${vvs[2]:1}))
[[ $("$vvtape" ls "$library/L90002.tap" --json | jq --argjson s "$serial" \
  '[.files[] | select(.hdr.serial == $s and .eof != null)] | length') == 0 ]] ||
  die "the failed tape copy left a file on L90002: $("$vvtape" ls "$library/L90002.tap")"
(($(vsn_field L90001 errors) >= 1)) || die "no error counted on L90001: $(ctl vsn ls)"
bad_record 3 2 off
echo "ok: EIO on L90001 file 3 failed its tape copy; the copy stays live there, nothing on L90002"

# --- the end: through the cache for file 3, tape to tape for the others ---
for ((i = 0; i < 1200; i++)); do
  [[ $(vsn_field L90001 state) == reclaim ]] && break
  sleep 0.1
done
[[ $(vsn_field L90001 state) == reclaim ]] || die "the repack did not end: $(ctl vsn ls)"
logged "repack: VV ${vvs[2]} (L90001 file 3) is moved through the cache (a stage, then an archive write), not tape to tape: its tape copy failed reading L90001 file 3" ||
  die "vvmd did not say why ${vvs[2]} goes through the cache: $(logged_of "${vvs[2]}")"
logged "repack: VV ${vvs[2]}: copy 1 moved from L90001 file 3 to L90002 file [0-9]* (2097152 bytes, through the cache)" ||
  die "${vvs[2]} was not moved through the cache: $(logged_of "${vvs[2]}")"
for i in 0 1 3; do
  logged "repack: VV ${vvs[i]}: copy 1 moved from L90001 file $((i + 1)) to L90002 file [0-9]* (2097152 bytes, tape to tape)" ||
    die "${vvs[i]} was not moved tape to tape: $(logged_of "${vvs[i]}")"
  if logged "repack: stage VV ${vvs[i]}"; then die "${vvs[i]} was staged for the repack"; fi
done
echo "ok: the repack ended; file 3 through the cache, the others tape to tape"

"$vvtape" verify "$library/L90001.tap" >/dev/null || die "vvtape verify L90001 failed"
"$vvtape" verify "$library/L90002.tap" >/dev/null || die "vvtape verify L90002 failed"
"$vvtape" ls "$library/L90002.tap" --json >"$tmpdir/ls.json"
[[ $(jq '.files | length' "$tmpdir/ls.json") == 4 ]] ||
  die "L90002 does not hold 4 files: $("$vvtape" ls "$library/L90002.tap")"
for vv in "${vvs[@]}"; do
  json=$(ctl show "$vv" --json)
  [[ $(jq -r .state <<<"$json") == archived && $(jq -r '.copies[0].vsn' <<<"$json") == L90002 ]] ||
    die "$vv is not archived on L90002: $json"
  file=$(jq -r '.copies[0].file' <<<"$json")
  jq -e --argjson f "$file" --argjson s "$((10#${vv:1}))" \
    '[.files[] | select(.file == $f and .hdr.serial == $s and .hdr.size == 2097152)] | length == 1' \
    "$tmpdir/ls.json" >/dev/null || die "$vv is not at L90002 file $file"
  [[ $(jq -r .cache <<<"$json") == evicted ]] || ctl evict "$vv" >/dev/null
  ctl stage "$vv" --wait --timeout 60 >/dev/null || die "stage of $vv failed"
  cmp -s "$cache/$vv" "$tmpdir/$vv.orig" || die "$vv came back different"
  logged "stage VV $vv from L90002 file $file " || die "$vv was not read from L90002"
done
ctl db check >/dev/null || die "db check: $(ctl db check)"
echo "ok: both tapes verify; every VV is read back from its new copy on L90002, its bytes whole"
echo "PASS"
