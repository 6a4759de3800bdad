#!/usr/bin/env bash
# vsn.sh: the VSN catalogue with the real vvmd, vvctl and vvtape: vsn add of two media types'
# tapes (each image created, its capacity sidecar written, its VOL label seen by vvtape ls), an
# image labelled beforehand with vvtape registered with its next file, images holding something
# else refused, every refusal with its exit code and message, an unprivileged user refused, vsn ls
# as an aligned table and as JSON (checked with jq), the records surviving a SIGTERM and a SIGKILL
# of vvmd, and an mtx library, where add records the VSN and makes no image.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
chmod 755 "$tmpdir" # the socket and vvm.conf must be reachable by the unprivileged user below
lib=$tmpdir/library
# The same catalogue set-up for the emulated library here and for an mtx one at the end.
catalogue=(vvmd.allow-uid=65534 media.LTO9.capacity=64M media.LTO8.capacity=32M
  class.A.media="LTO9 LTO8" class.B.media=LTO9)
vvm_conf "${catalogue[@]}" library.kind=emulated library.path="$lib"

start_vvmd
[[ -d $lib ]] || die "vvmd did not make the library folder $lib"

# --- add: two media types, the image made and labelled ---
expect 0 "^added VSN L90001: media LTO9, class A, blank, next file 1, capacity 64M; tape image $lib/L90001.tap$" -- \
  ctl vsn add L90001 --media LTO9 --class A
expect 0 "^added VSN L80001: media LTO8, class any, blank, next file 1, capacity 32M" -- \
  ctl vsn add L80001 --media LTO8
expect 0 "^added VSN L90002: media LTO9, class B," -- ctl vsn add L90002 --media LTO9 --class B
[[ $(cat "$lib/L90001.tap.capacity") == 67108864 ]] || die "L90001's sidecar: $(cat "$lib/L90001.tap.capacity")"
[[ $(cat "$lib/L80001.tap.capacity") == 33554432 ]] || die "L80001's sidecar: $(cat "$lib/L80001.tap.capacity")"
# vvtape, the mover's own tool, reads the VOL labels.
expect 0 "^$lib/L90001.tap: VSN L90001, media LTO9, 0 file\(s\)$" -- "$vvtape" ls "$lib/L90001.tap"
expect 0 "^$lib/L80001.tap: VSN L80001, media LTO8, 0 file\(s\)$" -- "$vvtape" ls "$lib/L80001.tap"
check '.vsn + " " + .media + " " + (.files | length | tostring)' "L90002 LTO9 0" \
  "$("$vvtape" ls --json "$lib/L90002.tap")"
# The label's bytes, as DESIGN.md gives them: VOL, the VSN and the media padded, the version.
head -c 84 "$lib/L90001.tap" | tail -c 80 | grep -q '^VOLL90001LTO9    VVM1 ' ||
  die "L90001's VOL label: $(head -c 84 "$lib/L90001.tap" | tail -c 80)"

# --- an image labelled beforehand (as on a real drive) is registered with its next file ---
"$vvtape" label "$lib/L90003.tap" --vsn L90003 --media LTO9 >/dev/null
head -c 100000 /dev/urandom >"$tmpdir/vv-data"
"$vvtape" write "$lib/L90003.tap" --vsn L90003 --file 1 --class A --serial 1 --id 0 "$tmpdir/vv-data" >/dev/null
"$vvtape" write "$lib/L90003.tap" --vsn L90003 --file 2 --class A --serial 2 --id 0 "$tmpdir/vv-data" >/dev/null
expect 0 "^added VSN L90003: media LTO9, class A, hot, next file 3," -- ctl vsn add L90003 --media LTO9 --class A
[[ $(cat "$lib/L90003.tap.capacity") == 67108864 ]] || die "registering L90003 did not write its sidecar"
expect 0 "VSN L90003, media LTO9, 2 file\(s\)" -- "$vvtape" ls "$lib/L90003.tap"

# --- images holding something else are refused, naming the image and what it holds ---
"$vvtape" label "$lib/L90004.tap" --vsn L90009 --media LTO9 >/dev/null
expect 1 "^vvctl vsn add: cannot add VSN L90004: the library already has $lib/L90004.tap, which is labelled VSN L90009, media LTO9 \(not VSN L90004, media LTO9\)$" -- \
  ctl vsn add L90004 --media LTO9
"$vvtape" label "$lib/L90005.tap" --vsn L90005 --media LTO8 >/dev/null
expect 1 "$lib/L90005.tap, which is labelled VSN L90005, media LTO8 \(not VSN L90005, media LTO9\)" -- \
  ctl vsn add L90005 --media LTO9
: >"$lib/L90006.tap"
expect 1 "$lib/L90006.tap, which holds no VOL label .*blank tape" -- ctl vsn add L90006 --media LTO9
[[ ! -s $lib/L90006.tap ]] || die "a refused add wrote into $lib/L90006.tap"

# --- refusals: exit 1 with the reason; usage errors: exit 2 ---
expect 1 "bad VSN 'l90007': field vsn: 'l90007' is lowercase" -- ctl vsn add l90007 --media LTO9
expect 1 "bad VSN 'L900007': field vsn: 'L900007' is longer than 6 characters" -- ctl vsn add L900007 --media LTO9
expect 1 "no media type 'LTO7' \(media types: LTO8, LTO9\)" -- ctl vsn add L70001 --media LTO7
expect 1 "no storage class 'Z' \(classes: A, B\)" -- ctl vsn add L90007 --media LTO9 --class Z
expect 1 "media LTO8 is not a type of class B \(class B keeps its copies on: LTO9\)" -- \
  ctl vsn add L80002 --media LTO8 --class B
expect 1 "VSN L90001 is already in the catalogue \(media LTO9, class A, blank\)" -- \
  ctl vsn add L90001 --media LTO9 --class A
expect 2 "media.* is required" -- ctl vsn add L90007
expect 2 "a VSN is required" -- ctl vsn add --media LTO9
[[ ! -e $lib/L70001.tap && ! -e $lib/L90007.tap && ! -e $lib/L80002.tap ]] ||
  die "a refused add left an image: $(ls "$lib")"

# --- an unprivileged user may list, not add ---
expect 1 "$nobody_name may not add VSN L90008: only root and vvmd's user" -- \
  "${nobody[@]}" "$vvctl" --conf "$conf" vsn add L90008 --media LTO9
[[ ! -e $lib/L90008.tap ]] || die "a refused add made $lib/L90008.tap"
expect 0 "^VSN +MEDIA" -- "${nobody[@]}" "$vvctl" --conf "$conf" vsn ls

# --- vsn ls: an aligned table in name order, then a line for each VSN's class ---
table=$(ctl vsn ls)
echo "$table"
notes=$(grep -E '^[A-Z0-9]+: ' <<<"$table" || true)
table=$(grep -vE '^[A-Z0-9]+: ' <<<"$table")
[[ $(wc -l <<<"$table") == 5 ]] || die "vsn ls printed $(wc -l <<<"$table") rows: $table"
head -n1 <<<"$table" |
  grep -Eq '^VSN +MEDIA +CLASS +STATE +LOCATION +FILES +LIVE +DEAD +USED +CAPACITY +ERRORS$' ||
  die "vsn ls header: $(head -n1 <<<"$table")"
[[ $(tail -n +2 <<<"$table" | awk '{print $1}' | paste -sd' ') == "L80001 L90001 L90002 L90003" ]] ||
  die "vsn ls is not in name order: $table"
grep -Eq '^L80001 +LTO8 +any +blank +slot +0 +0/0 +0/0 +0 +32M +0 bad, 0 failed$' <<<"$table" ||
  die "vsn ls row of L80001: $table"
grep -Eq '^L90001 +LTO9 +A +blank +slot +0 +0/0 +0/0 +0 +64M +0 bad, 0 failed$' <<<"$table" ||
  die "vsn ls row of L90001: $table"
grep -Eq '^L90003 +LTO9 +A +hot +slot +2 +0/0 +0/0 +195\.3K +64M +0 bad, 0 failed$' <<<"$table" ||
  die "vsn ls row of L90003: $table"
grep -q '^L90001: class A since ' <<<"$notes" && ! grep -q '^L80001:' <<<"$notes" ||
  die "vsn ls's class lines: $notes"
aligned "$table" CLASS LOCATION USED ERRORS
echo "ok: vsn ls is aligned"

# --- vsn ls --json: every field ---
json=$(ctl vsn ls --json)
check 'length' 4 "$json"
check '[.[].name] | join(" ")' "L80001 L90001 L90002 L90003" "$json"
check '.[0] | keys | join(" ")' "bad_files bytes_used capacity class class_how class_since dead_bytes dead_files errors errors_in_row last_mount live_bytes live_files location media name next_file state state_by state_reason state_since" "$json"
check '.[0].class' "" "$json"
check '.[1] | [.name, .media, .class, .state, .location] | join(" ")' "L90001 LTO9 A blank slot" "$json"
check '.[1] | [.next_file, .bytes_used, .capacity, .errors, .last_mount] | map(tostring) | join(" ")' \
  "1 0 67108864 0 0" "$json"
check '.[2].class' B "$json"
check '.[3] | [.state, .next_file, .bytes_used] | map(tostring) | join(" ")' "hot 3 200000" "$json"
[[ $(ctl vsn ls --json --page-size 1) == "$json" ]] || die "vsn ls in pages of 1 differs"
echo "ok: vsn ls --json"

# --- the records survive a SIGTERM and a SIGKILL of vvmd ---
stop_vvmd
start_vvmd
[[ $(ctl vsn ls --json) == "$json" ]] || die "after a restart vsn ls --json says: $(ctl vsn ls --json)"
expect 0 "^added VSN L90010: media LTO9, class any" -- ctl vsn add L90010 --media LTO9
kill_vvmd
start_vvmd
check '[.[].name] | join(" ")' "L80001 L90001 L90002 L90003 L90010" "$(ctl vsn ls --json)"
expect 0 "VSN L90010, media LTO9, 0 file" -- "$vvtape" ls "$lib/L90010.tap"
expect 1 "VSN L90010 is already in the catalogue" -- ctl vsn add L90010 --media LTO9
stop_vvmd
echo "ok: the VSN records survive SIGTERM and SIGKILL"

# --- an mtx library: add records the VSN, and no image is made ---
vvm_conf file="$tmpdir/mtx.conf" "${catalogue[@]}" library.kind=mtx library.path=/dev/null \
  global.state-dir="$tmpdir/state-mtx" vvmd.listen="unix:$tmpdir/run-mtx/vvmd.sock"
conf=$tmpdir/mtx.conf
start_vvmd
expect 0 "^added VSN M00001: media LTO8, class A, blank, next file 1, capacity 32M$" -- \
  ctl vsn add M00001 --media LTO8 --class A
[[ ! -e $tmpdir/state-mtx/library && ! -e $lib/M00001.tap ]] || die "an mtx add made an image"
check '[.[].name] | join(" ")' "M00001" "$(ctl vsn ls --json)"
stop_vvmd

# --- help ---
expect 0 "vsn add VSN --media M \[--class C\]" -- ctl vsn add --help
expect 0 "vvtape label /dev/nstN --vsn VSN --media M" -- ctl help vsn add
expect 0 "vsn ls \[--json\]" -- ctl vsn ls --help
expect 0 "vsn add +add a tape volume" -- ctl --help
echo "vsn: all checks passed"
