#!/usr/bin/env bash
# vv-export.sh: the vv/NAME exports with the real vvmd, nbdkit and clients. nbdinfo --list shows
# each VV with its size, state and residency beside the packs, and neither registers an open nor
# counts an access; qemu-io writes a pattern and reads it back, qemu-img compare checks it, and
# .accessed moves; a user without permission is refused at connect time, one with it is served;
# one writer host at a time (a TCP client is refused while a Unix-socket client of this host
# writes), and nbdkit killed with SIGKILL while it has the VV open makes vvmd forget the open (the
# other host may then write); once finished the VV is read-only: writes fail, reads work, and
# nbdkit's log tells a writer why and how to read it (as it does for a VV whose mode refuses
# writing); with vvmd down the packs are still listed.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
chmod 755 "$tmpdir" # the unprivileged user below must reach the sockets and vvm.conf
truncate -s $((8 * M)) "$tmpdir/disk.img"
echo "p0 disk.img 0 4M ro root root 0644" >"$tmpdir/packtab"
vvm_conf vvmd.allow-uid=65534 vvmd.allow-host=127.0.0.1 vvmd.request-timeout=10s \
  plugin.packtab="$tmpdir/packtab" plugin.stage-timeout=5s

uri() { echo "nbd+unix:///$1?socket=$tmpdir/${2:-nbd}.sock"; }
accessed() { ctl show "$1" --json | jq -r .accessed; }
opens_logged() { grep -c " open [0-9]* read-" "$vvmd_log" || true; }

start_vvmd
start_plugin "$tmpdir/nbd.sock"
log=$nbdkit_log
chmod 777 "$tmpdir/nbd.sock"

a1=$(ctl create --class A --size 64M)
a2=$("${nobody[@]}" "$vvctl" --conf "$conf" create --class A --size 1M)
created=$(accessed "$a1")
sleep 1.1 # .accessed counts seconds: let one pass, so that a change shows

# --- listing: every VV with its state and size, and nothing opened or counted ---
list=$(nbdinfo --list --json "$(uri "")")
check '[.exports[]["export-name"]] | join(" ")' "pack/p0 pack/p0@ro vv/$a1 vv/$a2" "$list"
check ".exports[] | select(.[\"export-name\"] == \"vv/$a1\") | .description" \
  "virtual volume, 64M, hot, cached" "$list"
check ".exports[] | select(.[\"export-name\"] == \"vv/$a1\") | .\"export-size\"" $((64 * M)) "$list"
check ".exports[] | select(.[\"export-name\"] == \"vv/$a1\") | .\"is_read_only\"" false "$list"
[[ $(accessed "$a1") == "$created" ]] || die "the listing changed .accessed of $a1"
(($(opens_logged) == 0)) || die "the listing registered opens: $(grep ' open ' "$vvmd_log")"
echo "ok: nbdinfo --list shows the VVs and opens nothing"

# --- data: a pattern written, read back and compared; the access recorded ---
io "$(uri "vv/$a1")" -c 'write -P 0xab 0 1M' -c 'write -P 0xcd 63M 1M'
io "$(uri "vv/$a1")" -r -c 'read -P 0xab 0 1M' -c 'read -P 0 1M 62M' -c 'read -P 0xcd 63M 1M'
qemu-img create -q -f raw "$tmpdir/pattern" 64M
qemu-io -f raw -c 'write -P 0xab 0 1M' -c 'write -P 0xcd 63M 1M' "$tmpdir/pattern" >/dev/null
qemu-img compare -f raw -F raw "$tmpdir/pattern" "$(uri "vv/$a1")" >/dev/null ||
  die "qemu-img compare: vv/$a1 differs from the pattern"
cmp "$tmpdir/pattern" "$cache/$a1" || die "the cache file differs from the pattern"
now=$(accessed "$a1")
((now > created)) || die ".accessed of $a1 did not move after a real use ($created, $now)"
wait_log "$vvmd_log" "VV $a1 open [0-9]+ closed by .*\(written;"
echo "ok: qemu-io wrote, read back and compared; .accessed $created -> $now"

# --- permissions: root's 0640 VV refuses nobody at connect time; nobody's own VV serves it ---
out=$("${nobody[@]}" qemu-io -f raw -r -c 'read 0 4k' "$(uri "vv/$a1")" 2>&1) &&
  ! grep -qi fail <<<"$out" && die "nobody read root's VV: $out"
grep -q "may not open VV $a1: its mode is rw-r----- for root:root" "$log" ||
  die "the refusal does not say why: $(tail -n 5 "$log")"
"${nobody[@]}" qemu-io -f raw -c 'write -P 0x11 0 64k' -c 'read -P 0x11 0 64k' \
  "$(uri "vv/$a2")" >/dev/null || die "nobody could not use its own VV"
out=$(nbdinfo "$(uri vv/A0000000099)" 2>&1) && die "an unknown VV was served: $out"
grep -q "no VV A0000000099" "$log" || die "the unknown VV is not named in the log"
echo "ok: permissions"

# --- one writer host; a killed nbdkit's opens are forgotten ---
# Everyone may write a3: a TCP client is its host, and gets the other bits.
a3=$(ctl create --class A --size 16M --perms 666)
start_plugin "$tmpdir/doomed.sock" # killed below
doomed=$nbdkit_pid
port=$(pick_unused_port)
start_plugin "tcp:$port"
tcp_log=$nbdkit_log
tcp_uri="nbd://127.0.0.1:$port/vv/$a3"

connect_client writer "$(uri "vv/$a3" doomed)" # this host, through the Unix socket
wait_log "$vvmd_log" "VV $a3 open [0-9]+ read-write"
io "$(uri "vv/$a3")" -c 'write -P 0xab 0 4k' # a second connection of the writing host
io_fails "$tcp_uri" -c 'write -P 0x22 0 4k'
grep -q "Operation not permitted" <<<"$out" || die "the second host's write: $out"
grep -q "VV $a3 is open for writing from $(hostname): one writer host at a time" "$tcp_log" ||
  die "the refusal does not name the VV and the holder: $(tail -n 5 "$tcp_log")"
grep -q "VV $a3 is open for writing from .*; use it from $(hostname), or once its writers" \
  "$tcp_log" || die "the refusal does not say what to do: $(tail -n 5 "$tcp_log")"
echo "ok: a second writer host is refused, naming the holder"

kill_daemon "$doomed"
wait_log "$vvmd_log" "VV $a3 open [0-9]+ for .* forgotten: its control connection ended"
io "$tcp_uri" -c 'write -P 0x33 8M 4k' -c 'read -P 0x33 8M 4k'
disconnect_client writer
echo "ok: the opens of a killed nbdkit are forgotten"

# --- finished: read-only; reads still work ---
ctl finish "$a1" >/dev/null
list=$(nbdinfo --list --json "$(uri "")")
check ".exports[] | select(.[\"export-name\"] == \"vv/$a1\") | .description" \
  "virtual volume, 64M, finished, cached" "$list"
check ".exports[] | select(.[\"export-name\"] == \"vv/$a1\") | .\"is_read_only\"" true "$list"
before=$(md5sum <"$cache/$a1")
io_fails "$(uri "vv/$a1")" -c 'write -P 0x44 0 4k'
# qemu-io can say only "Permission denied": nbdkit's log names the VV, its state and the way out,
# and the listing above (which looks at every export) did not.
notes() { grep -c "vv/$1: served read-only, and the client went away without a request" "$log" || true; }
wait_log "$log" "vv/$a1: served read-only, .*: VV $a1 is finished, and only a hot VV can be written"
grep -q "vv/$a1: served read-only, .*open it read-only (qemu-io -r" "$log" ||
  die "the log does not say how to read a finished VV: $(tail -n 5 "$log")"
(($(notes "$a1") == 1)) || die "vv/$a1's read-only note is logged $(notes "$a1") times, not once"
out=$(nbdsh -u "$(uri "vv/$a1")" -c 'print(h.is_read_only())' 2>&1)
[[ $out == True ]] || die "vv/$a1 is not read-only once finished: $out"
[[ $(md5sum <"$cache/$a1") == "$before" ]] || die "the finished VV's cache file changed"
# nbdsh asked no more than whether the export is read-only: a second note, at its close.
for ((i = 0; i < 100; i++)); do
  (($(notes "$a1") == 2)) && break
  sleep 0.1
done
(($(notes "$a1") == 2)) || die "vv/$a1: $(notes "$a1") read-only notes after nbdsh, not 2"
closes() { grep -c "VV $a1 open [0-9]* closed by" "$tmpdir/vvmd.log" || true; }
closed=$(closes)
io "$(uri "vv/$a1")" -r -c 'read -P 0xab 0 1M'
io "$tcp_uri" -r -c 'read -P 0x33 8M 4k'
for ((i = 0; i < 100; i++)); do
  (($(closes) > closed)) && break # nbdkit's .close of the reader, which would have said it
  sleep 0.1
done
(($(closes) > closed)) || die "the reader's open of vv/$a1 was not closed"
(($(notes "$a1") == 2)) || die "a reader of vv/$a1 was told how to read it"
echo "ok: a finished VV is read-only, and the log says why to a writer"

# --- a mode that lets a user read but not write: served read-only, and the log says why ---
a4=$(ctl create --class A --size 1M --perms 644)
out=$("${nobody[@]}" qemu-io -f raw -c 'write -P 0x55 0 4k' "$(uri "vv/$a4")" 2>&1) &&
  ! grep -qi fail <<<"$out" && die "nobody wrote root's 0644 VV: $out"
wait_log "$log" "vv/$a4: served read-only, .*: VV $a4 is hot, but its mode rw-r--r-- for root:root lets uid 65534 read it, not write it"
"${nobody[@]}" qemu-io -f raw -r -c 'read -P 0 0 4k' "$(uri "vv/$a4")" >/dev/null ||
  die "nobody could not read root's 0644 VV"
echo "ok: a VV whose mode refuses writing is read-only, and the log says why"

# --- vvmd down: the packs are still listed, and the log says why the VVs are not ---
kill -TERM "$vvmd_pid"
for ((i = 0; i < 50; i++)); do
  ctl ping --timeout 1 >/dev/null 2>&1 || break
  sleep 0.1
done
list=$(nbdinfo --list --json "$(uri "")")
check '[.exports[]["export-name"]] | join(" ")' "pack/p0 pack/p0@ro" "$list"
grep -q "listing the virtual volumes: " "$log" || die "the log does not say why VVs are missing"
echo "ok: with vvmd down the packs are listed"
echo "vv-export: all checks passed"
