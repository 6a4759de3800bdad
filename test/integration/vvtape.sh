#!/usr/bin/env bash
# vvtape.sh: vvtape on an emulated tape image, end to end. Label a tape, write three files
# (0 bytes, 1 byte, 100 MiB of random data), check `vvtape ls` field by field (table and JSON),
# read each file back with `vvtape cat` and cmp, make `vvtape verify` fail naming the file for a
# flipped label byte (and, given the checksum, for a flipped data byte), refuse a write for the
# wrong VSN or file number, refuse to relabel a tape with files, and fill a small tape: exit 3,
# and every earlier file still reads back.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
vvtape=$VVM_BUILD_DIR/mover/vvtape
tape=$tmpdir/V00001.tap
failures=0

fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}
ok() { echo "ok   $*"; }

# expect STATUS LABEL PATTERN -- COMMAND...: COMMAND exits with STATUS and its stderr matches
# PATTERN (an extended regex; "" for any).
expect() {
  local want=$1 label=$2 pattern=$3 status=0
  shift 4
  "$@" >"$tmpdir/out" 2>"$tmpdir/err" </dev/null || status=$?
  if [[ $status != "$want" ]]; then
    fail "$label: exit status $status, wanted $want"
    sed 's/^/  | /' "$tmpdir/err" "$tmpdir/out"
  elif [[ -n $pattern ]] && ! grep -Eq -- "$pattern" "$tmpdir/err"; then
    fail "$label: stderr lacks /$pattern/"
    sed 's/^/  | /' "$tmpdir/err"
  else
    ok "$label"
  fi
}

# flip FILE OFFSET CHAR: overwrite one byte of FILE.
flip() { printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# offset_of FILE TEXT: the byte offset of the first TEXT in FILE.
offset_of() { LC_ALL=C grep -obaF -- "$2" "$1" | head -n1 | cut -d: -f1; }

# --- help and usage ---
expect 0 "--help" "" -- "$vvtape" --help
grep -q '^  verify ' "$tmpdir/out" || fail "--help lists no verify command"
for c in label ls verify cat write; do
  expect 0 "$c --help" "" -- "$vvtape" "$c" --help
  grep -q "^Usage: vvtape $c" "$tmpdir/out" || fail "$c --help: no usage line"
done
expect 2 "an unknown command is a usage error" "unknown command 'frob'" -- "$vvtape" frob
expect 2 "label without --vsn is a usage error" "--vsn and --media are required" -- \
  "$vvtape" label "$tape" --media LTO9

# --- label, write three files ---
expect 0 "label a new image" "" -- "$vvtape" label "$tape" --vsn V00001 --media LTO9
[[ -s $tape ]] || fail "label made no image"
: >"$tmpdir/f1"
printf 'x' >"$tmpdir/f2"
head -c 100M /dev/urandom >"$tmpdir/f3"
t0=$(date +%s)
for n in 1 2 3; do
  expect 0 "write file $n" "" -- "$vvtape" write "$tape" --vsn V00001 --file "$n" --class A \
    --serial "$((n + 40))" --id "$((n * 11))" --finished "$((1700000000 + n))" "$tmpdir/f$n"
  grep -Eq "^VSN V00001 file $n: [0-9]+ bytes in [0-9]+ data blocks?, checksum [0-9A-F]{16}$" \
    "$tmpdir/out" || { fail "write file $n printed:"; cat "$tmpdir/out"; }
  sums[n]=$(awk '{ print $NF }' "$tmpdir/out")
done
t1=$(date +%s)
grep -q "^VSN V00001 file 3: 104857600 bytes in 400 data blocks," "$tmpdir/out" ||
  fail "100 MiB is not 400 blocks of 256 KiB: $(cat "$tmpdir/out")"

# --- ls, field by field ---
expect 0 "ls" "" -- "$vvtape" ls "$tape"
head -n1 "$tmpdir/out" | grep -qx "$tape: VSN V00001, media LTO9, 3 file(s)" ||
  fail "ls heading: $(head -n1 "$tmpdir/out")"
read -ra header < <(sed -n 2p "$tmpdir/out")
[[ ${header[*]} == "FILE CLASS SERIAL ID SIZE FINISHED WRITTEN EOF STATE" ]] ||
  fail "ls columns: ${header[*]}"
sizes=(- 0 1 104857600)
for n in 1 2 3; do
  read -ra row < <(awk -v n="$n" 'NR > 2 && $1 == n' "$tmpdir/out")
  want=("$n" A "$((n + 40))" "$((n * 11))" "${sizes[n]}"
    "$(date -u -d "@$((1700000000 + n))" +%Y-%m-%dT%H:%M:%SZ)")
  for i in 0 1 2 3 4 5; do
    [[ ${row[i]:-} == "${want[i]}" ]] || fail "ls file $n column ${header[i]}: '${row[i]:-}', wanted '${want[i]}'"
  done
  [[ ${row[7]:-} == ok && ${row[8]:-} == ok ]] || fail "ls file $n EOF/STATE: ${row[*]}"
done
ok "ls table fields"
# Columns line up: every row as wide as the header up to the STATE column.
awk 'NR >= 2 && NF == 9 { p = length($0) - length($NF); if (w == "") w = p; else if (p != w) bad = 1 }
  END { exit bad }' "$tmpdir/out" || fail "ls columns are not aligned"

expect 0 "ls --json" "" -- "$vvtape" ls "$tape" --json
for n in 1 2 3; do
  jq -e --argjson n "$n" --argjson size "${sizes[n]}" --argjson t0 "$t0" --argjson t1 "$t1" '
    .vsn == "V00001" and .media == "LTO9" and (.files | length) == 3 and
    (.files[$n - 1] | .file == $n and .state == "ok" and .problems == [] and .hdr == .eof and
      (.hdr | .class == "A" and .serial == $n + 40 and .id == $n * 11 and .file_number == $n and
        .size == $size and .time_finished == 1700000000 + $n and
        .time_written >= $t0 and .time_written <= $t1))' "$tmpdir/out" >/dev/null ||
    fail "ls --json file $n: $(jq -c ".files[$n - 1]" "$tmpdir/out")"
done
ok "ls --json fields"

# --- cat ---
for n in 1 2 3; do
  "$vvtape" cat "$tape" "$n" >"$tmpdir/cat$n" 2>"$tmpdir/err" || fail "cat $n: $(cat "$tmpdir/err")"
  cmp -s "$tmpdir/cat$n" "$tmpdir/f$n" && ok "cat $n is the file written" || fail "cat $n differs"
done
expect 1 "cat of a file the tape lacks" "VSN V00001 file 4: no such file" -- "$vvtape" cat "$tape" 4
"$vvtape" cat "$tape" 3 --sync >"$tmpdir/sync3" 2>"$tmpdir/err" && cmp -s "$tmpdir/sync3" "$tmpdir/f3" &&
  ok "cat --sync into a file" || fail "cat --sync into a file: $(cat "$tmpdir/err")"
status=0
"$vvtape" cat "$tape" 1 --sync 2>"$tmpdir/err" </dev/null | cat >/dev/null || status=$?
[[ $status == 2 ]] && grep -q -- "--sync: standard output is not a file" "$tmpdir/err" &&
  ok "cat --sync refuses a pipe" || fail "cat --sync into a pipe: exit $status: $(cat "$tmpdir/err")"

# --- verify ---
expect 0 "verify a good tape" "" -- "$vvtape" verify "$tape" --checksum "3=${sums[3]}" \
  --checksum "1=${sums[1]}"
grep -q "^file 3: ok, VV A43, 104857600 bytes, checksum ${sums[3]}$" "$tmpdir/out" ||
  fail "verify output: $(cat "$tmpdir/out")"

# A flipped label byte: file 2's EOF label says serial 52; its HDR says 42.
eof2=$(offset_of "$tape" "EOFA42        ")
[[ -n $eof2 ]] || fail "no EOF label of file 2 in the image"
flip "$tape" $((eof2 + 4)) 5
expect 1 "verify names the file with the flipped label byte" \
  "file 2: EOF label disagrees with the HDR: field vv serial: expected 42, found 52" -- \
  "$vvtape" verify "$tape"
expect 1 "ls flags it" "" -- "$vvtape" ls "$tape"
awk 'NR > 2 && $1 == 2 { exit !($8 == "differs" && $9 == "BAD") }' "$tmpdir/out" ||
  fail "ls row of file 2: $(awk 'NR > 2 && $1 == 2' "$tmpdir/out")"
expect 1 "cat refuses it" "VSN V00001 file 2: EOF label: field vv serial" -- "$vvtape" cat "$tape" 2
flip "$tape" $((eof2 + 4)) 4
expect 0 "verify passes again once the byte is back" "" -- "$vvtape" verify "$tape"

# A flipped data byte: the labels are fine, only the checksum finds it.
hdr3=$(offset_of "$tape" "HDRA43        ")
data=$((hdr3 + 80 + 4 + 4 + 1000)) # past the HDR record's trailer and the data record's header
byte=$(dd if="$tape" bs=1 skip="$data" count=1 status=none | od -An -tx1 | tr -d ' ')
flip "$tape" "$data" "$([[ $byte == 41 ]] && echo B || echo A)"
expect 1 "verify --checksum names the file with the flipped data byte" \
  "file 3: field checksum: expected ${sums[3]}, found [0-9A-F]{16}" -- \
  "$vvtape" verify "$tape" --checksum "3=${sums[3]}"
"$vvtape" cat "$tape" 3 | cmp -s - "$tmpdir/f3" && fail "cat 3 after the flip is unchanged" ||
  ok "cat 3 shows the flipped byte"

# --- refusals ---
before=$(cksum <"$tape")
expect 1 "a write for another VSN is refused" \
  "wrong tape in $tape: expected VSN V00002, found VSN V00001" -- \
  "$vvtape" write "$tape" --vsn V00002 --file 4 --class A --serial 44 --id 1 "$tmpdir/f2"
expect 1 "a write with the wrong file number is refused, naming both" \
  "the last complete file on the tape is 3, but the request expects to write file 5" -- \
  "$vvtape" write "$tape" --vsn V00001 --file 5 --class A --serial 44 --id 1 "$tmpdir/f2"
expect 1 "relabelling a tape with files is refused" "holds 3 file\(s\); --force" -- \
  "$vvtape" label "$tape" --vsn V00009 --media LTO9
[[ $(cksum <"$tape") == "$before" ]] && ok "refusals left the tape alone" ||
  fail "a refused command changed the tape"
expect 0 "relabelling with --force" "" -- "$vvtape" label "$tape" --vsn V00009 --media LTO8 --force
expect 0 "ls after --force" "" -- "$vvtape" ls "$tape"
head -n1 "$tmpdir/out" | grep -qx "$tape: VSN V00009, media LTO8, 0 file(s)" ||
  fail "after --force: $(head -n1 "$tmpdir/out")"

# --- a full tape ---
small=$tmpdir/V00002.tap
expect 0 "label a 1M tape" "" -- "$vvtape" label "$small" --vsn V00002 --media LTO9 --capacity 1M
head -c 600K /dev/urandom >"$tmpdir/g1"
head -c 2M /dev/urandom >"$tmpdir/g2"
head -c 100K /dev/urandom >"$tmpdir/g3"
expect 0 "write 600K" "" -- \
  "$vvtape" write "$small" --vsn V00002 --file 1 --class B --serial 1 --id 1 "$tmpdir/g1"
expect 3 "write 2M to the 1M tape: full (exit 3)" "VSN V00002 is full: file 2" -- \
  "$vvtape" write "$small" --vsn V00002 --file 2 --class B --serial 2 --id 2 "$tmpdir/g2"
expect 0 "verify the full tape" "" -- "$vvtape" verify "$small"
grep -q "^file 2: empty: the end of a tape that ran out of space" "$tmpdir/out" ||
  fail "verify of the full tape: $(cat "$tmpdir/out")"
"$vvtape" cat "$small" 1 | cmp -s - "$tmpdir/g1" && ok "file 1 of the full tape reads back" ||
  fail "file 1 of the full tape differs"
expect 0 "a smaller file still fits as file 2" "" -- \
  "$vvtape" write "$small" --vsn V00002 --file 2 --class B --serial 3 --id 3 "$tmpdir/g3"
"$vvtape" cat "$small" 2 | cmp -s - "$tmpdir/g3" && ok "and reads back" || fail "file 2 differs"

((failures == 0)) || die "$failures check(s) failed"
echo "vvtape.sh: all checks passed"
