#!/usr/bin/env bash
# vv-catalog.sh: the VV catalogue with the real vvmd and vvctl: create (names, the sparse cache
# file), ls as a table and as JSON, its filters, show, finish (once), rm (refused for another
# user, then done, the file gone), and the catalogue surviving a SIGTERM and a SIGKILL of vvmd,
# serials going on where they were. Also a database vvmd cannot open: exit 1, saying why.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
chmod 755 "$tmpdir" # the socket and vvm.conf must be reachable by the unprivileged user below
catalogue=(vvmd.allow-uid=65534 media.LTO9.capacity=18T media.LTO8.capacity=12T
  class.A.media="LTO9 LTO8" class.B.media=LTO9)
vvm_conf "${catalogue[@]}"

start_vvmd

# --- create: names by class and serial, printed alone ---
a1=$(ctl create --class A --size 10G --id 7)
a2=$(ctl create --class A --size 1M)
b1=$(ctl create --class B --size 512K --id 7)
[[ $a1 == A0000000001 && $a2 == A0000000002 && $b1 == B0000000001 ]] ||
  die "create printed '$a1' '$a2' '$b1'"
# The cache file: the VV's size, sparse (no block written).
[[ $(stat -c %s "$cache/$a1") == 10737418240 ]] || die "$cache/$a1 is $(stat -c %s "$cache/$a1") bytes"
[[ $(stat -c %b "$cache/$a1") == 0 ]] || die "$cache/$a1 is not sparse: $(stat -c %b "$cache/$a1") blocks"
[[ $(stat -c %s "$cache/$b1") == 524288 ]] || die "$cache/$b1 has the wrong size"
expect 1 "no storage class 'Z' \(classes: A, B\)" -- ctl create --class Z --size 1M
expect 1 "more than 0 bytes" -- ctl create --class A --size 0
expect 2 "--size '12Q': unknown suffix" -- ctl create --class A --size 12Q
expect 2 "class.* is required" -- ctl create --size 1M
expect 1 "may not create a VV owned by root" -- "${nobody[@]}" "$vvctl" --conf "$conf" create --class A --size 1M --owner root

# --- ls: an aligned table, in name order ---
table=$(ctl ls)
echo "$table"
[[ $(wc -l <<<"$table") == 4 ]] || die "ls printed $(wc -l <<<"$table") lines: $table"
head -n1 <<<"$table" | grep -Eq '^NAME +CLASS +STATE +CACHE +SIZE +OWNER +ID +CREATED +COPIES$' ||
  die "ls header: $(head -n1 <<<"$table")"
[[ $(sed -n 2p <<<"$table" | awk '{print $1}') == "$a1" && $(sed -n 4p <<<"$table" | awk '{print $1}') == "$b1" ]] ||
  die "ls is not in name order: $table"
grep -Eq "^$a1 +A +hot +cached +10G +root +7 +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} +-$" <<<"$table" ||
  die "ls row of $a1: $table"
# Aligned: each column starts at the same offset on every line.
aligned "$table" STATE SIZE CREATED
echo "ok: ls is aligned"

# --- ls --json, field by field ---
json=$(ctl ls --json)
check 'length' 3 "$json"
check '[.[].name] | join(" ")' "$a1 $a2 $b1" "$json"
check '.[0].class' A "$json"
check '.[0].serial' 1 "$json"
check '.[0].client_id' 7 "$json"
check '.[0].size' 10737418240 "$json"
check '.[0].state' hot "$json"
check '.[0].cache' cached "$json"
check '.[0].owner' root "$json"
check '.[0].group' root "$json"
check '.[0].perms' 0640 "$json"
check '.[0].created > 1700000000' true "$json"
check '.[0].finished' 0 "$json"
check '.[0].checksum' 0 "$json"
check '.[0].copies | length' 0 "$json"
check '.[1].client_id' 0 "$json"
check '.[2].size' 524288 "$json"
echo "ok: ls --json"

# --- filters ---
check '[.[].name] | join(" ")' "$b1" "$(ctl ls --class B --json)"
check '[.[].name] | join(" ")' "$a1 $b1" "$(ctl ls --id 7 --json)"
check '[.[].name] | join(" ")' "$a2" "$(ctl ls --id 0 --json)"
check '[.[].name] | join(" ")' "$a1" "$(ctl ls --id 7 --class A --json)"
check 'length' 0 "$(ctl ls --state finished --json)"
check 'length' 3 "$(ctl ls --state hot --json)"
expect 0 "^NAME +CLASS" -- ctl ls --class C
expect 2 "--state 'cold': expected hot, finished or archived" -- ctl ls --state cold
echo "ok: ls filters"

# --- show ---
expect 0 "^name: +$a1" -- ctl show "$a1"
out=$(ctl show "$a1")
grep -Eq "^size: +10G \(10737418240 bytes\)$" <<<"$out" || die "show: $out"
grep -Eq "^owner: +root:root 0640$" <<<"$out" || die "show: $out"
grep -Eq "^copy 2: +LTO8: not yet written$" <<<"$out" || die "show: $out"
check '.name + " " + .state + " " + (.size | tostring)' "$b1 hot 524288" "$(ctl show "$b1" --json)"
expect 1 "no VV A0000000099" -- ctl show A0000000099
expect 1 "'nonsense' is not a VV name" -- ctl show nonsense
expect 2 "a VV name is required" -- ctl show

# --- finish, twice ---
expect 0 "^$a2: finished at [0-9]{4}-" -- ctl finish "$a2"
check '.state' finished "$(ctl show "$a2" --json)"
check '.finished > 0' true "$(ctl show "$a2" --json)"
expect 1 "VV $a2 is already finished" -- ctl finish "$a2"
check '[.[].name] | join(" ")' "$a2" "$(ctl ls --state finished --json)"

# --- another user: may not finish or rm root's VV, may make and finish its own ---
expect 1 "$nobody_name may not remove VV $a1: it belongs to root" -- \
  "${nobody[@]}" "$vvctl" --conf "$conf" rm "$a1"
expect 1 "may not finish VV $a1: it belongs to root" -- \
  "${nobody[@]}" "$vvctl" --conf "$conf" finish "$a1"
[[ -e $cache/$a1 ]] || die "a refused rm removed $cache/$a1"
a3=$("${nobody[@]}" "$vvctl" --conf "$conf" create --class A --size 1M --perms 600)
[[ $a3 == A0000000003 ]] || die "nobody's create printed '$a3'"
check '.owner + " " + .perms' "$nobody_name 0600" "$(ctl show "$a3" --json)"
expect 0 "^$a3: finished" -- "${nobody[@]}" "$vvctl" --conf "$conf" finish "$a3"

# --- rm: says what it removed; the record and the file are gone ---
expect 0 "^removed $a1: its record \(hot, 10G, owner root\) and its cache file $cache/$a1$" -- ctl rm "$a1"
[[ ! -e $cache/$a1 ]] || die "rm left $cache/$a1"
expect 1 "no VV $a1" -- ctl show "$a1"
expect 1 "no VV $a1" -- ctl rm "$a1"

# --- SIGTERM and a restart: everything is there, serials go on ---
stop_vvmd
grep -q "vvmd stopped" "$vvmd_log" || die "vvmd did not log its stop"
start_vvmd
check '[.[].name] | join(" ")' "$a2 $a3 $b1" "$(ctl ls --json)"
check '.state' finished "$(ctl show "$a2" --json)"
a4=$(ctl create --class A --size 1M)
[[ $a4 == A0000000004 ]] || die "the first create after a restart made '$a4'"
[[ $(ctl create --class B --size 1M) == B0000000002 ]] || die "class B's serial did not go on"

# --- SIGKILL right after a create: the VV is there after a restart ---
a5=$(ctl create --class A --size 2M --id 55)
kill_vvmd
start_vvmd
check '.name + " " + (.client_id | tostring) + " " + .state' "$a5 55 hot" "$(ctl show "$a5" --json)"
[[ $(stat -c %s "$cache/$a5") == 2097152 ]] || die "$cache/$a5 lost its size"
[[ $(ctl create --class A --size 1M) == A0000000006 ]] || die "serials did not go on after SIGKILL"
check 'length' 7 "$(ctl ls --json)"
# ls follows vvmd's pages to the end: pages of 2 give the same list as one page.
[[ $(ctl ls --json --page-size 2) == "$(ctl ls --json)" ]] || die "ls in pages of 2 differs"
[[ $(ctl ls --page-size 1 --class A) == "$(ctl ls --class A)" ]] || die "ls in pages of 1 differs"
stop_vvmd

# --- a database vvmd cannot open: exit 1 with the reason ---
vvm_conf file="$tmpdir/bad.conf" "${catalogue[@]}" vvmd.database-dir="$tmpdir/not-a-folder"
touch "$tmpdir/not-a-folder"
status=0
"$vvmd" --conf "$tmpdir/bad.conf" >"$tmpdir/bad.log" 2>&1 || status=$?
[[ $status == 1 ]] || die "vvmd with a bad database exited $status: $(cat "$tmpdir/bad.log")"
grep -q "database $tmpdir/not-a-folder: " "$tmpdir/bad.log" || die "vvmd did not say why: $(cat "$tmpdir/bad.log")"
echo "ok: vvmd with a database it cannot open: $(tail -n1 "$tmpdir/bad.log")"

# --- help ---
expect 0 "create --class C --size S" -- ctl create --help
expect 0 "ls \[--state S\]" -- ctl help ls
expect 0 "rm NAME \[--force\]" -- ctl rm --help
expect 0 "finish +make a hot virtual volume" -- ctl --help
echo "vv-catalog: all checks passed"
