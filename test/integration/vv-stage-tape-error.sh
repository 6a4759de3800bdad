#!/usr/bin/env bash
# vv-stage-tape-error.sh: a tape that returns EIO on one record. A VV of class A has a copy on an
# LTO9 tape and one on an LTO8 tape; it is evicted, and one data block of its tape file on the
# first copy's image is marked as a medium error (SIMH's bad-record class, which the emulated
# drive answers with EIO, as st does for a block it cannot read). A stage must then:
#  - fail that copy on that record, saying so (the VSN, the file, the block, the medium error);
#  - stage from the other copy, the VV's bytes whole;
#  - count the error against the first copy's VSN, and only there, as a failed read, not a bad
#    tape file (vsn ls's ERRORS column tells them apart), the copy itself left good.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
vvm_conf drives="LTO9 LTO8"
start_vvmd
start_mover m1
ctl vsn add L90001 --media LTO9 >/dev/null
ctl vsn add L80001 --media LTO8 >/dev/null

errors_of() { ctl vsn ls --json | jq -r --arg t "$1" '.[] | select(.name == $t) | .errors'; }

vv=$(ctl create --class A --size 2M)
head -c $((2 * M)) /dev/urandom >"$cache/$vv"
cp "$cache/$vv" "$tmpdir/original"
ctl finish "$vv" --wait --timeout 60 >/dev/null
shown=$(ctl show "$vv" --json)
check '.copies | length' 2 "$shown"
bad_vsn=$(jq -r '.copies[0].vsn' <<<"$shown")
bad_file=$(jq -r '.copies[0].file' <<<"$shown")
good_vsn=$(jq -r '.copies[1].vsn' <<<"$shown")
ctl evict "$vv" >/dev/null
before_bad=$(errors_of "$bad_vsn") before_good=$(errors_of "$good_vsn")

# The third record of tape file $bad_file (HDR label, data block 1, data block 2, ...) marked bad.
/usr/bin/python3 - "$library/$bad_vsn.tap" "$bad_file" <<'PY'
import struct, sys
path, want = sys.argv[1], int(sys.argv[2])
data = bytearray(open(path, "rb").read())
pos, file, record = 0, 0, 0
while pos + 4 <= len(data):
    (n,) = struct.unpack_from("<I", data, pos)
    if n == 0xFFFFFFFF:
        break
    if n == 0:  # a tape mark ends a file
        file, record, pos = file + 1, 0, pos + 4
        continue
    end = pos + 4 + n + (n & 1)
    if file == want and record == 2:
        struct.pack_into("<I", data, pos, n | 0x80000000)
        struct.pack_into("<I", data, end, n | 0x80000000)
        open(path, "r+b").write(data)
        print(f"marked the record at image offset {pos} ({n} bytes) bad")
        sys.exit(0)
    record, pos = record + 1, end + 4
sys.exit(f"{path}: no record 2 in file {want}")
PY

stop_vvmd # the drives forget their tapes: the first copy is the first choice again
start_vvmd
ctl stage "$vv" --wait --timeout 60 >/dev/null || die "the stage of $vv failed with a good second copy"
cmp -s "$cache/$vv" "$tmpdir/original" || die "$vv came back different"
grep -Eq "stage of VV $vv from $bad_vsn file $bad_file .*failed, attempt 1: .*read block [0-9]+: Input/output error \(medium error\)" "$vvmd_log" ||
  die "vvmd did not report the medium error on $bad_vsn file $bad_file: $(grep "VV $vv" "$vvmd_log" | tail -5)"
grep -q "VV $vv: copy 1 set aside; staging from copy 2 on $good_vsn" "$vvmd_log" ||
  die "vvmd did not go on to copy 2 on $good_vsn"
after_bad=$(errors_of "$bad_vsn") after_good=$(errors_of "$good_vsn")
# One error a failed attempt: the copy is read a few times before the next one is tried.
((after_bad > before_bad)) || die "$bad_vsn has $after_bad errors, had $before_bad: wanted more"
((after_good == before_good)) || die "$good_vsn has $after_good errors, had $before_good: wanted none more"
echo "ok: EIO on one record of $bad_vsn file $bad_file: copy 2 on $good_vsn staged, $((after_bad - before_bad)) errors counted on $bad_vsn"
[[ $(ctl vsn ls --json | jq -r --arg t "$bad_vsn" '.[] | select(.name == $t) | .bad_files') == 0 ]] ||
  die "a failed read counted as a bad tape file on $bad_vsn: $(ctl vsn ls --json)"
ctl vsn ls | grep -q "^$bad_vsn .* 0 bad, $after_bad failed$" || die "vsn ls ERRORS: $(ctl vsn ls)"
check '.copies[0].state' good "$(ctl show "$vv" --json)"
echo "ok: vsn ls counts it as a failed read, not a bad file; the copy is not marked bad"
echo "PASS"
