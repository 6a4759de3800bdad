#!/usr/bin/env bash
# run-command.sh: the README's run command starts the whole system: vvmd, the mover m1 with two
# emulated drives, a library of two tapes, nbdkit on TCP and on a Unix socket, and a sample VV.
# nbdinfo --list sees the packs and the VV; qemu-io writes and reads back a pattern on the VV
# through nbd://; `vvctl finish --wait` archives it onto both tapes (checked with show --json and
# vvtape); Ctrl-C (SIGINT to its process group, as a terminal sends it) stops every process it
# started and leaves no socket; a second run reuses the configuration, the tapes and the VV, and
# SIGTERM stops it as cleanly. Its TLS listeners: the CA, certificates and PSK files made once
# under VAR/tls; every TLS command it prints, run as printed (alice's VV listed, written over PSK,
# read over X.509, nbd-client -l; bob refused it; over vvmd's TLS port alice shows it, bob may not
# finish it, alice does, vvcopy); the README's walk as uids 1001 and 1002 with only the files root
# hands them; the second run reuses them. Its TLS mover m2: vvmd reaches it over TLS alone, a VV
# of class T is archived through it onto L70001 (its reports reach vvmd's tls: port), as printed,
# and it refuses alice's key.
set -euo pipefail
set -m # job control: the run command gets its own process group, like a terminal's foreground job
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

src=$VVM_SOURCE_DIR
build=$VVM_BUILD_DIR
make_tmpdir
var=$tmpdir/var
conf=$var/vvm.conf # written by the run command

# Free ports: nbdkit's, and vvmd's (the default 7370 may be taken by another test run).
port=$(pick_unused_port)
vvmd_port=$(pick_unused_port)
uri=nbd://127.0.0.1:$port
# The TLS listeners take five ports in a row (nbdkit's three, vvmd's control, the mover m2's): a
# free one whose next four are free too.
free() { /usr/bin/python3 -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }
for ((i = 0; i < 50; i++)); do
  tls_port=$(pick_unused_port)
  ((tls_port < 65000)) && free $((tls_port + 1)) && free $((tls_port + 2)) &&
    free $((tls_port + 3)) && free $((tls_port + 4)) && break
done
tls_ports=("$tls_port" $((tls_port + 1)) $((tls_port + 2)) $((tls_port + 3)) $((tls_port + 4)))
tls=$var/tls
sock=$var/run/nbd.sock

run_pid=
kill_run() {
  [[ -n $run_pid ]] && kill -KILL -- "-$run_pid" 2>/dev/null || true
  pkill -KILL -f -- "$tmpdir" 2>/dev/null || true
}
cleanup_fn kill_run

# start_run N ARGS...: ./vvm-dev run in the background, output in $tmpdir/run-N.out; returns
# once it says it is ready.
start_run() {
  local out=$tmpdir/run-$1.out
  shift
  "$src/vvm-dev" run --no-install --no-build --build-dir "$build" --var "$var" --port "$port" \
    --tls-port "$tls_port" "$@" </dev/null >"$out" 2>&1 &
  run_pid=$!
  _vvm_logs+=("run=$out" "vvmd=$var/log/vvmd.log" "vvmover-m1=$var/log/vvmover-m1.log"
    "vvmover-m2=$var/log/vvmover-m2.log"
    "nbdkit-unix=$var/log/nbdkit-unix.log" "nbdkit-tcp=$var/log/nbdkit-tcp.log"
    "nbdkit-alice-psk=$var/log/nbdkit-alice-psk.log" "nbdkit-bob-psk=$var/log/nbdkit-bob-psk.log"
    "nbdkit-alice-x509=$var/log/nbdkit-alice-x509.log")
  wait_run_ready "$out" "$run_pid"
  run_out=$out
}

# stop_run ctrl-c|sigterm: SIGINT to the run command's process group, as Ctrl-C on a terminal
# sends it, or SIGTERM to the run command alone, as kill or a service manager sends it; then none
# of the processes it started is left, nor their sockets and ports, and no sanitizer complained
# in their logs.
stop_run() {
  local how=$1 started i p
  started=$(grep -Eo '^  [a-z0-9-]+ +pid [0-9]+$' "$run_out" | awk '{ print $3 }')
  (($(wc -w <<<"$started") == 8)) || die "the run command did not list 8 processes: $started"
  case $how in
    ctrl-c) kill -INT -- "-$run_pid" ;;
    sigterm) kill -TERM "$run_pid" ;;
  esac
  for ((i = 0; i < 300; i++)); do
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$run_pid" 2>/dev/null && die "the run command ignored $how for 30 s"
  wait "$run_pid" || true
  run_pid=
  for p in $started; do
    kill -0 "$p" 2>/dev/null && die "pid $p ($(tr '\0' ' ' </proc/"$p"/cmdline)) outlived the run command"
  done
  if pgrep -f -- "$tmpdir" >/dev/null; then
    die "processes left running after Ctrl-C: $(pgrep -af -- "$tmpdir")"
  fi
  for s in "$var/run/vvmd.sock" "$var/run/mover-m1.sock" "$sock"; do
    [[ ! -e $s ]] || die "$s is left behind"
  done
  for p in "$port" "$vvmd_port" "${tls_ports[@]}"; do
    # SO_REUSEADDR, as every server sets it: a connection in TIME_WAIT is not a listener left.
    /usr/bin/python3 -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' \
      "$p" 2>/dev/null || die "port $p is still bound"
  done
  if grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$var"/log/*.log; then
    die "a sanitizer complained in the logs above"
  fi
  grep -q 'stopped; state kept in' "$run_out" || die "the run command did not say it stopped"
  echo "ok: $how stopped the $(wc -w <<<"$started") processes; no socket or port left"
}

# ---------------------------------------------------------------- first run
start_run 1 --vvmd-port "$vvmd_port"
[[ -s $var/sample-vv ]] || die "the run command did not record its sample VV"
vv=$(<"$var/sample-vv")
[[ $vv =~ ^A[0-9]{10}$ ]] || die "the sample VV's name is '$vv'"

# It prints the URIs and the commands to try.
for want in "$uri/pack/" "nbdinfo --list $uri" "qemu-img info $uri/pack/" \
  "nbd-client -l 127.0.0.1 $port" "$uri/vv/$vv" "nbd+unix:///vv/$vv?socket=$sock" \
  "qemu-img info $uri/vv/$vv" "$vvctl --conf $conf ls" "$vvctl --conf $conf finish --wait $vv" \
  "$vvtape ls $var/library/L90001.tap" "$vvtape ls $var/library/L80001.tap" \
  "created the sample VV $vv" "added tape L90001 (LTO9)" "added tape L80001 (LTO8)" \
  "added tape L70001 (LTO7)"; do
  grep -qF -- "$want" "$run_out" || die "the run command's output lacks '$want'"
done
echo "ok: the run command prints the URIs of the packs and of $vv, and the commands to try"

# Every pack of the sample table and the sample VV are listed, over TCP and the Unix socket.
packs=$(awk '/^[ \t]*(#|$)/ { next } { print $1 }' "$var/packtab")
[[ -n $packs ]] || die "the sample packtab has no packs"
for list_uri in "$uri" "nbd+unix:///?socket=$sock"; do
  list=$(nbdinfo --list --json "$list_uri")
  for e in $(sed 's#^#pack/#' <<<"$packs") "vv/$vv"; do
    jq -e --arg n "$e" '.exports | map(.["export-name"]) | index($n) != null' <<<"$list" >/dev/null ||
      die "$e is not listed at $list_uri: $list"
  done
done
jq -e --arg n "vv/$vv" '.exports[] | select(.["export-name"] == $n)
  | .description == "virtual volume, 64M, hot, cached" and .["export-size"] == 67108864' \
  <<<"$list" >/dev/null || die "vv/$vv is not listed as a hot 64M VV: $list"
first=$(head -n1 <<<"$packs")
want_size=$(jq -r --arg n "pack/$first" '.exports[] | select(.["export-name"] == $n) | .["export-size"]' <<<"$list")
got_size=$(qemu-img info --output=json "$uri/pack/$first" | jq -r '.["virtual-size"]')
[[ $got_size == "$want_size" && $got_size -gt 0 ]] ||
  die "qemu-img info says $got_size bytes, nbdinfo $want_size"
echo "ok: $(wc -w <<<"$packs") packs and vv/$vv listed; qemu-img info sees pack/$first ($got_size bytes)"

# A pattern written and read back through nbd://, and the same bytes through the Unix socket.
io "$uri/vv/$vv" -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 63M 1M'
io "$uri/vv/$vv" -r -c 'read -P 0x5a 0 1M' -c 'read -P 0 1M 62M' -c 'read -P 0xa5 63M 1M'
qemu-img create -q -f raw "$tmpdir/pattern" 64M
io "$tmpdir/pattern" -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 63M 1M'
qemu-img compare -q -f raw -F raw "$tmpdir/pattern" "nbd+unix:///vv/$vv?socket=$sock" ||
  die "vv/$vv through the Unix socket differs from the pattern"
echo "ok: qemu-io wrote and read back a pattern on vv/$vv; the Unix socket serves the same bytes"

# finish --wait archives it onto both tapes; the tape files hold the pattern.
out=$(ctl finish --wait --timeout 60 "$vv" 2>&1) || die "finish --wait $vv: $out"
grep -q "^$vv: archived$" <<<"$out" || die "finish --wait $vv printed: $out"
json=$(ctl show "$vv" --json)
jq -e '.state == "archived" and (.copies | length) == 2
  and ([.copies[].vsn] | sort) == ["L80001", "L90001"]' <<<"$json" >/dev/null ||
  die "show $vv after finish --wait: $json"
serial=$((10#${vv#A}))
for t in L90001 L80001; do
  f=$(jq --arg t "$t" '.copies[] | select(.vsn == $t) | .file' <<<"$json")
  "$vvtape" ls "$var/library/$t.tap" --json | jq -e --argjson f "$f" --argjson s "$serial" \
    '.files[] | select(.file == $f) | .state == "ok" and .hdr.serial == $s
      and .hdr.class == "A" and .hdr.size == 67108864 and .eof.serial == $s' >/dev/null || die "vvtape ls $t: file $f is not $vv's"
  "$vvtape" cat "$var/library/$t.tap" "$f" | cmp -s - "$tmpdir/pattern" ||
    die "$t file $f differs from the pattern"
done
echo "ok: finish --wait archived $vv onto L90001 and L80001; both tape files hold the pattern"

# printed TEXT: the first command of the run command's output that contains TEXT, its
# continuation lines joined, as a user pastes it into a shell.
printed() {
  awk -v t="$1" '
    { l = $0; sub(/^[ \t]+/, "", l) }
    c { cmd = cmd " " l }
    !c { cmd = l }
    { c = sub(/[ \t]*\\$/, "", cmd) }
    !c && index(cmd, t) { print cmd; f = 1; exit }
    END { exit !f }' "$run_out"
}
# run_printed WANT TEXT [FROM TO]: runs the printed command with TEXT as printed (FROM replaced
# by TO), in $tmpdir; it must exit WANT. Its output in $out.
run_printed() {
  local want=$1 cmd status=0
  cmd=$(printed "$2") || die "the run command printed no command with '$2'"
  [[ -z ${3:-} ]] || cmd=${cmd//"$3"/"$4"}
  out=$(cd "$tmpdir" && eval "$cmd" 2>&1) || status=$?
  ((status == want)) || die "'$cmd', as printed, exited $status, wanted $want: $out"
}

# --- TLS: the commands printed for alice's VV over PSK and X.509, run as printed ---
[[ -s $var/alice-vv ]] || die "the run command did not record alice's VV"
avv=$(<"$var/alice-vv")
for f in ca-cert.pem server-cert.pem alice/alice.psk alice/keys.psk alice/client/client-cert.pem \
  alice/nbdkit/ca-cert.pem bob/bob.psk; do
  [[ -s $tls/$f ]] || die "the run command made no $tls/$f"
done
for want in "nbds://alice@127.0.0.1:$tls_port/" "nbds://bob@127.0.0.1:$((tls_port + 1))/" \
  "nbds://127.0.0.1:$((tls_port + 2))/" "created alice's VV $avv"; do
  grep -qF -- "$want" "$run_out" || die "the run command's output lacks '$want'"
done
run_printed 0 "nbdinfo --list 'nbds://alice@127.0.0.1:$tls_port/"
grep -q "vv/$avv" <<<"$out" || die "alice's listing lacks vv/$avv: $out"
psk_object="tls-creds-psk,id=tls0,dir=$tls/alice,username=alice,endpoint=client"
run_printed 0 "qemu-io --object $psk_object"
grep -qi 'fail' <<<"$out" && die "qemu-io over PSK: $out"
run_printed 0 "nbdcopy 'nbds://127.0.0.1:$((tls_port + 2))/vv/$avv?tls-certificates=$tls/alice/client'"
qemu-img create -q -f raw "$tmpdir/a1" 1M
io "$tmpdir/a1" -c 'write -P 0xa1 0 1M'
cmp -n $((1024 * 1024)) "$tmpdir/alice.img" "$tmpdir/a1" ||
  die "alice's VV read over X.509 differs from what she wrote over PSK"
run_printed 0 "qemu-img info --object tls-creds-x509,id=tls0,dir=$tls/alice/client"
grep -q "virtual size: 64 MiB" <<<"$out" || die "qemu-img info over X.509: $out"
run_printed 0 "nbd-client -l 127.0.0.1 $((tls_port + 2)) -cacertfile $tls/alice/client/ca-cert.pem"
grep -q "^vv/$avv" <<<"$out" || die "nbd-client -l over X.509 does not list alice's VV: $out"
run_printed 1 "nbdinfo 'nbds://bob@127.0.0.1:$((tls_port + 1))/vv/$avv"
grep -q "may not open VV $avv" "$var/log/nbdkit-bob-psk.log" || die "bob's refusal is not in his listener's log"
echo "ok: as printed, over TLS alice listed and wrote her VV (PSK), read it (X.509), nbd-client listed it; bob was refused"
# Control over TLS, as printed: alice shows her VV, bob may not finish it, alice does (X.509).
ctl_tls=tls:127.0.0.1:$((tls_port + 3))
run_printed 0 "vvctl --vvmd $ctl_tls --tls-psk-file $tls/alice/alice.psk show $avv"
grep -q "owner: *1001:1001 0600" <<<"$out" || die "alice's show over TLS: $out"
run_printed 1 "vvctl --vvmd $ctl_tls --tls-psk-file $tls/bob/bob.psk finish $avv"
grep -q "1002 may not finish VV $avv" <<<"$out" || die "bob's refused finish said: $out"
run_printed 0 "vvctl --vvmd $ctl_tls --tls-certificates $tls/alice/client finish $avv"
grep -q "^$avv: finished" <<<"$out" || die "alice's finish over X.509 said: $out"
grep -q "finished VV $avv for identity alice (uid 1001, certificate 'CN=alice,O=vvm'" \
  "$var/log/vvmd.log" || die "vvmd's log does not say that alice finished $avv over TLS"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$tmpdir/vvcopy.in"
run_printed 0 "VVM_VVMD=$ctl_tls VVM_TLS_PSK_FILE=$tls/alice/alice.psk" " FILE " " $tmpdir/vvcopy.in "
[[ $out =~ ^A[0-9]{10}$ ]] || die "vvcopy, as printed, said: $out"
# finished, or archived already (archive-max-wait 0)
[[ $(ctl show "$out" --json | jq -r '.owner + " " + .state') =~ ^1001\ (finished|archived)$ ]] ||
  die "vvcopy as printed left $out $(ctl show "$out" --json | jq -c '{owner, state}')"
echo "ok: as printed, over TLS alice showed her VV, bob was refused finishing it, alice finished it; vvcopy made $out hers"
# With AES-NI the PSK listeners run with CHACHA20-POLY1305 disabled: PSK connections take AES-GCM.
if grep -qw aes /proc/cpuinfo; then
  out=$(LIBNBD_DEBUG=1 nbdinfo --size "nbds://alice@127.0.0.1:$tls_port/vv/$avv?tls-psk-file=$tls/alice/alice.psk" 2>&1)
  grep -q "using TLS: cipher AES-[0-9]*-GCM" <<<"$out" ||
    die "alice's PSK connection does not use AES-GCM: $(grep 'using TLS' <<<"$out")"
  echo "ok: PSK connections use AES-GCM ($(grep -o 'cipher [^ ]*' <<<"$out"))"
fi

# --- the README's walk as non-root users: root hands alice and bob their own TLS files, then
# uid 1001 attaches a VV of hers, writes and finishes it, and uid 1002 is refused it ---
wvv=$(ctl create --class A --size 64M --owner 1001 --group 1001 --perms 0600)
chmod 755 "$tmpdir"
install -d -o 1001 -g 1001 -m 700 "$tmpdir/alice" && install -d -o 1002 -g 1002 -m 700 "$tmpdir/bob"
cp -r "$tls/alice/alice.psk" "$tls/alice/keys.psk" "$tls/alice/client" "$tmpdir/alice/"
cp "$tls/bob/bob.psk" "$tmpdir/bob/"
chown -R 1001:1001 "$tmpdir/alice" && chown -R 1002:1002 "$tmpdir/bob"
# as UID DIR CMD: CMD in a shell as UID in DIR, with no vvm.conf and nothing of root's.
as() {
  setpriv --reuid "$1" --regid "$1" --clear-groups env -i PATH=/usr/bin:/bin HOME="$2" \
    B="$build/client" VV="$wvv" ${ASAN_OPTIONS:+ASAN_OPTIONS=$ASAN_OPTIONS} \
    ${UBSAN_OPTIONS:+UBSAN_OPTIONS=$UBSAN_OPTIONS} bash -c "cd '$2' && $3"
}
vvctl_tls="\$B/vvctl --vvmd $ctl_tls"
expect 0 "owner: *1001:1001 0600" -- as 1001 "$tmpdir/alice" "$vvctl_tls --tls-psk-file alice.psk show \$VV"
as 1001 "$tmpdir/alice" "head -c 1M /dev/urandom >disk.img" || die "alice cannot write her folder"
as 1001 "$tmpdir/alice" \
  "nbdcopy disk.img \"nbds://alice@127.0.0.1:$tls_port/vv/\$VV?tls-psk-file=alice.psk\"" ||
  die "uid 1001 could not write her VV over TLS-PSK"
expect 1 "1002 may not finish VV $wvv: it belongs to 1001" -- \
  as 1002 "$tmpdir/bob" "$vvctl_tls --tls-psk-file bob.psk finish \$VV"
expect 1 "" -- as 1002 "$tmpdir/bob" "nbdinfo \"nbds://bob@127.0.0.1:$((tls_port + 1))/vv/\$VV?tls-psk-file=bob.psk\""
grep -q "1002 (gid 1002) on 127.0.0.1 may not open VV $wvv" "$var/log/nbdkit-bob-psk.log" ||
  die "bob's listener does not say why it refused $wvv"
expect 0 "^$wvv: finished at" -- as 1001 "$tmpdir/alice" "$vvctl_tls --tls-psk-file alice.psk finish \$VV"
nbdcopy "nbd+unix:///vv/$wvv?socket=$sock" "$tmpdir/wvv.out"
cmp -n $((1024 * 1024)) "$tmpdir/wvv.out" "$tmpdir/alice/disk.img" ||
  die "$wvv does not hold what uid 1001 wrote"
copied=$(as 1001 "$tmpdir/alice" "VVM_VVMD=$ctl_tls VVM_TLS_PSK_FILE=alice.psk \
  VVM_NBD_URI=nbds://127.0.0.1:$tls_port/ \$B/vvcopy disk.img A") || die "vvcopy as uid 1001: $copied"
[[ $(ctl show "$copied" --json | jq -r '.owner + " " + .state') =~ ^1001\ (finished|archived)$ ]] ||
  die "vvcopy as uid 1001 left $copied $(ctl show "$copied" --json | jq -c '{owner, state}')"
echo "ok: as uid 1001 alice attached $wvv over TLS, wrote and finished it, vvcopy made $copied; uid 1002 was refused it"

# --- the TLS mover m2: vvmd reaches it over TLS alone; a VV of class T is archived through it ---
m2_port=$((tls_port + 4))
m2_log=$var/log/vvmover-m2.log
for want in "vvmover m2 on tls:127.0.0.1:$m2_port, drives d2 (LTO7)" \
  "vvmover m1 on unix:$var/run/mover-m1.sock, drives d0 (LTO9) d1 (LTO8)" \
  "$vvctl --conf $conf --tls-psk-file $tls/vvmd/vvmd.psk ping --target mover:m2" \
  "$vvctl --conf $conf create --class T --size 16M --perms 0666" \
  "$vvctl --conf $conf finish --wait \$VT"; do
  grep -qF -- "$want" "$run_out" || die "the run command's output lacks '$want'"
done
grep -q "mover m2 listening on tls:127.0.0.1:$m2_port" "$m2_log" ||
  die "m2 does not listen on tls:127.0.0.1:$m2_port alone"
# The printed commands, as printed: m2 answers vvmd's key; a VV of class T written over NBD,
# finished, archived by m2 onto L70001.
run_printed 0 "ping --target mover:m2"
grep -q "vvmover m2 at tls:127.0.0.1:$m2_port" <<<"$out" || die "m2's ping said: $out"
VT=
eval "$(printed "create --class T")" || die "the printed create --class T failed"
tvv=$VT
[[ $tvv =~ ^T[0-9]{10}$ ]] || die "create --class T made '$tvv'"
run_printed 0 "qemu-io -f raw -c 'write -P 0x7e 0 1M'"
qemu-img create -q -f raw "$tmpdir/t-pattern" 16M
io "$tmpdir/t-pattern" -c 'write -P 0x7e 0 1M'
run_printed 0 "finish --wait \$VT"
grep -q "^$tvv: archived$" <<<"$out" || die "finish --wait $tvv, as printed, said: $out"
json=$(ctl show "$tvv" --json)
jq -e '.state == "archived" and ([.copies[].vsn]) == ["L70001"]' <<<"$json" >/dev/null ||
  die "show $tvv after finish --wait: $json"
f=$(jq '.copies[0].file' <<<"$json")
"$vvtape" cat "$var/library/L70001.tap" "$f" | cmp -s - "$tmpdir/t-pattern" ||
  die "L70001 file $f is not $tvv's bytes"
run_printed 0 'grep " VSN L70001"'
grep -Eq "job [0-9]+ archive ended: drive d2, VSN L70001, file $f, .*: done" <<<"$out" ||
  die "m2's log does not show it archived $tvv: $out"
# m2 admits vvmd's key alone: alice's is refused, with the reason in its log.
status=0
env -u VVM_CONF "$vvctl" --conf "$conf" --tls-psk-file "$tls/alice/alice.psk" \
  ping --target mover:m2 --timeout 5 >/dev/null 2>&1 || status=$?
((status != 0)) || die "m2 served alice's identity"
grep -q "vvmover m2: refused TLS client 127.0.0.1:[0-9]*: .*PSK username 'alice' is not in $tls/vvmd/vvmd.psk" \
  "$m2_log" || die "m2's log does not say why it refused alice"
run_printed 0 "ping --target mover:m2"
echo "ok: the TLS mover m2 archived $tvv onto L70001 over TLS, refused alice and still serves vvmd"

# The VVs finished above go to tape at once (archive-max-wait 0): stopped only once they are
# there, the first run leaves no copy half-written for the second to take up.
for ((i = 0; i < 600; i++)); do
  (($(ctl ls --json | jq 'map(select(.state == "finished")) | length') == 0)) && break
  sleep 0.1
done
(($(ctl ls --json | jq 'map(select(.state == "finished")) | length') == 0)) ||
  die "VVs still not archived after 60 s: $(ctl ls)"
vvs_before=$(ctl ls --json | jq -c 'map(.name)')
stop_run ctrl-c

# ---------------------------------------------------------------- second run: all reused
start_run 2
for want in "using $conf as it is" "tape L90001 (LTO9) is in the catalogue already" \
  "tape L80001 (LTO8) is in the catalogue already" "the sample VV is $vv" \
  "now archived:" "$uri/vv/$vv"; do
  grep -qF -- "$want" "$run_out" || die "the second run's output lacks '$want'"
done
! grep -Ei "error|fail|created the sample|created alice's|added tape|added \[identity|added the TLS mover" "$run_out" ||
  die "the second run said the above"
[[ $(<"$var/sample-vv") == "$vv" ]] || die "the second run recorded another sample VV"
[[ $(ctl ls --json | jq -c 'map(.name)') == "$vvs_before" ]] ||
  die "VVs after the second run: $(ctl ls)"
ctl vsn ls --json | jq -e 'map(.name) == ["L70001", "L80001", "L90001"]' >/dev/null ||
  die "VSNs after the second run: $(ctl vsn ls)"
list=$(nbdinfo --list --json "$uri")
jq -e --arg n "vv/$vv" '.exports[] | select(.["export-name"] == $n) | .is_read_only' \
  <<<"$list" >/dev/null || die "the archived vv/$vv is not listed read-only: $list"
qemu-img compare -q -f raw -F raw "$tmpdir/pattern" "$uri/vv/$vv" ||
  die "vv/$vv differs from the pattern after a restart"
qemu-io --object "$psk_object" --image-opts \
  "driver=nbd,host=127.0.0.1,port=$tls_port,export=vv/$avv,tls-creds=tls0" -r \
  -c 'read -P 0xa1 0 1M' >/dev/null || die "alice's VV over PSK after the restart"
echo "ok: the second run reused the configuration, both tapes, $vv (archived, same bytes), the TLS files and alice's VV"

stop_run sigterm
