#!/usr/bin/env bash
# systemd-units.sh: the systemd units that `meson install` lays out (conf/systemd/) are valid as
# installed, sandboxed, and their own ExecStart= command lines start daemons that work:
#   1. `systemd-analyze verify` on every unit, inside the staged tree (--root), with the
#      executables the units name (vvmd.service's ExecReload= kill too) checked there and their
#      Documentation= man pages looked up in the staged man folder: any complaint fails; a unit
#      naming a missing program must fail it.
#      systemd-sysusers and systemd-tmpfiles, on the staged tree, make the vvm user the units
#      run as and give it /run/vvm and /var/lib/vvm.
#      The nbdkit units allow 10,000 VVs open: LimitNOFILE= (three descriptors a VV) and
#      TasksMax= (a thread a VV; systemd's default would stop nbdkit near 4,900), a value that
#      verify parses.
#   2. `systemd-analyze security --offline` rates every service's sandbox at most 3.0 ("OK").
#   3. vvmd and the mover m1 started with the ExecStart= of vvmd.service and vvmover@.service as
#      installed (%i = m1, the staged programs, vvm.conf a test one), not as root (as nobody,
#      standing for the units' User=vvm), with $NOTIFY_SOCKET: each
#      says READY=1 only once its socket takes connections (checked the moment READY=1 arrives),
#      then answers `vvctl ping`; vvmd.service's ExecReload= (systemctl reload), run as installed
#      with $MAINPID vvmd's pid, makes vvmd read vvm.conf again; SIGTERM brings STOPPING=1 and
#      exit 0.
#   4. nbdkit started with vvm-nbdkit.service's ExecStart= under systemd-socket-activate, which
#      passes it the sockets of vvm-nbdkit.socket's ListenStream= lines (the Unix socket moved
#      into the test's folder, the port onto 127.0.0.1): one nbdkit serves packs and VVs on both.
#      A VV's whole life runs through them: written over TCP, read over the Unix socket,
#      finished and archived to tape by the mover's copy child, evicted, staged back by a read.
#   4b. a tenant's nbdkit from vvm-nbdkit-tls@.service's Environment=, EnvironmentFile= and
#      ExecStart= (%i = alice, /etc/vvm/tls the test's), as nobody: over TLS-PSK alice lists,
#      writes and reads her VV, her session taking AES-128-GCM as the unit's GnuTLS configuration
#      makes it; a plaintext client and bob's key are refused.
#   5. The three ran under strace, vvmd's and the mover's metrics endpoints scraped meanwhile:
#      every system call they (and the mover's children, and the HTTP threads) made is one that
#      the units' SystemCallFilter=@system-service allows, so the filter breaks none.
# No systemd runs as PID 1 here (a container), so nothing is `systemctl start`ed: User=, the
# rest of the sandbox and Restart= are checked by systemd-analyze, not exercised.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
requires systemd-analyze --version
requires systemd-socket-activate --version
requires strace -f -o /dev/null true

make_tmpdir
root=$tmpdir/root
meson install -C "$VVM_BUILD_DIR" --no-rebuild --quiet --destdir "$root" >"$tmpdir/install.log" 2>&1 ||
  { cat "$tmpdir/install.log"; die "meson install --destdir failed"; }
option() { meson introspect "$VVM_BUILD_DIR" --buildoptions | jq -r ".[] | select(.name == \"$1\") | .value"; }
prefix=$(option prefix)
unitdir=$(option systemdsystemunitdir)
[[ -n $unitdir ]] || unitdir=$(pkg-config --variable=systemdsystemunitdir systemd)
[[ $unitdir != no ]] || die "the build does not install the units (-Dsystemdsystemunitdir=no)"
units=(vvmd.service vvmover@.service vvm-nbdkit.service vvm-nbdkit.socket vvm-nbdkit-tls@.service)
for u in "${units[@]}"; do
  [[ -f $root$unitdir/$u ]] || die "$unitdir/$u is not installed"
done

# --- 1. systemd-analyze verify, as installed ---
# The units are checked in a copy of the staged tree (hard links) that also holds what the host
# provides and vvm does not install: systemd's own targets (sysinit.target, multi-user.target,
# ...) and nbdkit, at the paths the units name.
vroot=$tmpdir/vroot
cp -al "$root" "$vroot"
mkdir -p "$vroot/usr/lib/systemd/system"
cp /lib/systemd/system/*.target "$vroot/usr/lib/systemd/system/"
nbdkit_path=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$root$unitdir/vvm-nbdkit.service")
[[ $nbdkit_path == /* && -x $nbdkit_path ]] || die "vvm-nbdkit.service runs '$nbdkit_path', not this host's nbdkit"
mkdir -p "$vroot$(dirname "$nbdkit_path")"
ln -f "$nbdkit_path" "$vroot$nbdkit_path" 2>/dev/null || cp "$nbdkit_path" "$vroot$nbdkit_path"
# vvmd.service's ExecReload= runs the host's kill, which vvm does not install either.
reload_path=$(sed -n 's/^ExecReload=\([^ ]*\) .*/\1/p' "$root$unitdir/vvmd.service")
[[ $reload_path == /* && -x $reload_path ]] || die "vvmd.service reloads with '$reload_path', not a program of this host"
mkdir -p "$vroot$(dirname "$reload_path")"
cp "$reload_path" "$vroot$reload_path"
mandir=$root$prefix/$(option mandir)

# verify UNIT_PATH...: systemd-analyze verify in $vroot, the man pages of Documentation= looked up
# in the staged ones and then the host's; prints its complaints, fails on any (it
# exits 0 on an unknown key, with a warning).
verify() {
  local out status=0
  out=$(MANPATH=$mandir: systemd-analyze verify --root="$vroot" "$@" 2>&1) || status=$?
  [[ -n $out ]] && echo "$out"
  ((status == 0)) && [[ -z $out ]]
}
paths=()
for u in "${units[@]}"; do paths+=("$unitdir/$u"); done
verify "${paths[@]}" || die "systemd-analyze verify complains about the installed units"
echo "ok: systemd-analyze verify ${units[*]} (man pages and executables in the staged tree)"

# The check can fail: the same vvmd.service naming a program that is not installed.
mkdir -p "$vroot/etc/systemd/system"
sed 's|^ExecStart=[^ ]*|ExecStart=/usr/sbin/vvmd-not-installed|' "$root$unitdir/vvmd.service" \
  >"$vroot/etc/systemd/system/vvm-broken.service"
if out=$(verify /etc/systemd/system/vvm-broken.service); then
  die "systemd-analyze verify accepted a unit whose program is missing: $out"
fi
grep -q 'vvmd-not-installed is not executable' <<<"$out" || die "verify said: $out"
echo "ok: verify fails a unit whose program is not installed"

# --- 1b. the vvm user and folders: systemd-sysusers and systemd-tmpfiles on the staged tree ---
# The user the units run as is the one sysusers.d/vvm.conf makes, and tmpfiles.d/vvm.conf gives
# it /run/vvm (0755: clients reach the sockets) and /var/lib/vvm (0750).
mkdir -p "$vroot/etc"
out=$(systemd-sysusers --root="$vroot" vvm.conf 2>&1) || die "systemd-sysusers vvm.conf: $out"
vvm_ids=$(awk -F: '$1 == "vvm" { print $3 ":" $4 }' "$vroot/etc/passwd")
[[ -n $vvm_ids ]] || die "systemd-sysusers made no vvm user: $out"
awk -F: '$1 == "vvm" { found = 1 } END { exit !found }' "$vroot/etc/group" || die "no vvm group: $out"
for u in vvmd.service vvmover@.service vvm-nbdkit.service vvm-nbdkit-tls@.service; do
  [[ $(sed -n 's/^User=//p' "$root$unitdir/$u") == vvm && $(sed -n 's/^Group=//p' "$root$unitdir/$u") == vvm ]] ||
    die "$u does not run as User=vvm Group=vvm"
done
out=$(systemd-tmpfiles --root="$vroot" --create vvm.conf 2>&1) || die "systemd-tmpfiles --create vvm.conf: $out"
for want in "/run/vvm 755" "/var/lib/vvm 750"; do
  read -r dir mode <<<"$want"
  got=$(stat -c '%u:%g %a' "$vroot$dir" 2>&1) || die "systemd-tmpfiles made no $dir"
  [[ $got == "$vvm_ids $mode" ]] || die "$dir is $got, wanted $vvm_ids (vvm) $mode"
done
echo "ok: sysusers.d/vvm.conf makes vvm ($vvm_ids), tmpfiles.d/vvm.conf gives it /run/vvm and /var/lib/vvm"

# Every service comes back after a crash: a signal (nbdkit 1.32's abort, SIGABRT; a sanitizer's
# report) is a failure that Restart= acts on and RestartPreventExitStatus= does not exempt.
for u in vvmd.service vvmover@.service vvm-nbdkit.service vvm-nbdkit-tls@.service; do
  restart=$(sed -n 's/^Restart=//p' "$root$unitdir/$u")
  [[ $restart == on-failure || $restart == always ]] || die "$u: Restart=$restart does not restart after a crash"
  prevent=$(sed -n 's/^RestartPreventExitStatus=//p' "$root$unitdir/$u")
  [[ ! $prevent =~ SIG ]] || die "$u: RestartPreventExitStatus=$prevent keeps a crash down"
done
echo "ok: every service has Restart=on-failure or always, and no signal exempt from it"

# nbdkit spends a thread and three descriptors on each VV open (parallel=auto, its default on
# nbdkit 1.32): its units must allow the 10,000 VVs the README promises, and as many threads as
# their descriptor limit allows connections (the plugin stops at 15/16 of it). Without TasksMax=
# systemd's default, 15% of kernel.pid_max (4915 here), stops nbdkit near 4,900 VVs.
for u in vvm-nbdkit.service vvm-nbdkit-tls@.service; do
  nofile=$(sed -n 's/^LimitNOFILE=//p' "$root$unitdir/$u")
  tasks=$(sed -n 's/^TasksMax=//p' "$root$unitdir/$u")
  [[ $nofile =~ ^[0-9]+$ ]] || die "$u: LimitNOFILE='$nofile', not a number of descriptors"
  [[ -n $tasks ]] || die "$u sets no TasksMax=: systemd's default (15% of pid_max) caps nbdkit's threads, a thread a VV"
  [[ $tasks =~ ^[0-9]+$ || $tasks == infinity ]] || die "$u: TasksMax=$tasks, not a number of tasks"
  connections=$((nofile * 15 / 16 / 3))
  ((connections >= 10000)) || die "$u: LimitNOFILE=$nofile lets $connections VVs open, fewer than 10,000"
  [[ $tasks == infinity ]] || ((tasks >= connections + 64)) ||
    die "$u: TasksMax=$tasks threads for the $connections VVs LimitNOFILE=$nofile lets open"
  echo "ok: $u: LimitNOFILE=$nofile ($connections VVs), TasksMax=$tasks"
done

# --- 2. the sandbox, rated by systemd-analyze security ---
for u in vvmd.service vvmover@.service vvm-nbdkit.service vvm-nbdkit-tls@.service; do
  out=$(systemd-analyze security --offline=true --root="$vroot" --threshold=30 \
    "$unitdir/$u" 2>&1) || die "systemd-analyze security rates $u above 3.0: $(tail -n 40 <<<"$out")"
  echo "ok: $(grep -o 'Overall exposure.*' <<<"$out")"
done
# The rating can fail: vvmd.service without its sandbox.
sed -n '/^# Sandbox/q;p' "$root$unitdir/vvmd.service" >"$vroot/etc/systemd/system/vvm-open.service"
echo '[Install]' >>"$vroot/etc/systemd/system/vvm-open.service"
if out=$(systemd-analyze security --offline=true --root="$vroot" --threshold=30 \
  /etc/systemd/system/vvm-open.service 2>&1); then
  die "systemd-analyze security passes vvmd.service without its sandbox: $(tail -n 1 <<<"$out")"
fi
echo "ok: without its sandbox, vvmd.service fails: $(grep -o 'Overall exposure.*' <<<"$out")"

# --- 3. vvmd and a mover, from their units' ExecStart= ---
# exec_start UNIT INSTANCE: UNIT's ExecStart= as words, one a line: %i is INSTANCE, vvm.conf the
# test's ($conf), and every absolute path that `meson install` staged is the staged one.
exec_start() {
  local - line word
  set -f # the words are split, never globbed
  line=$(sed -n 's/^ExecStart=//p' "$root$unitdir/$1")
  [[ -n $line ]] || die "$1 has no ExecStart="
  line=${line//%i/$2}
  [[ $line != *%* ]] || die "$1: ExecStart= has a specifier this test does not know: $line"
  line=${line//\/etc\/vvm\/vvm.conf/$conf}
  for word in $line; do
    if [[ $word == /* && -e $root$word ]]; then word=$root$word; fi
    if [[ $word == *=/* && -e $root/${word#*=/} ]]; then word=${word%%=*}=$root/${word#*=/}; fi
    echo "$word"
  done
}

stop_listener() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# notify_listener NAME PROBE_SOCKET: a datagram socket $tmpdir/NAME.notify-sock that takes what
# the daemon sends through $NOTIFY_SOCKET, one line a message field in $tmpdir/NAME.notify; when
# READY=1 arrives it connects at once to PROBE_SOCKET, the daemon's Unix socket, and adds
# whether that worked. Gone after 120 s without a message, or at exit.
notify_listener() {
  local sock=$tmpdir/$1.notify-sock
  /usr/bin/python3 - "$sock" "$tmpdir/$1.notify" "$2" <<'PY' &
import os, socket, sys
path, out, probe = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)  # the daemons run as another user
s.settimeout(120)
with open(out, "a") as f:
    while True:
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        for line in data.decode().splitlines():
            if line == "READY=1":
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    c.connect(probe)
                    line += " (connect: ok)"
                except OSError as e:
                    line += " (connect: %s)" % e.strerror
                c.close()
            f.write(line + "\n")
            f.flush()
PY
  cleanup_fn stop_listener $!
  for ((i = 0; i < 100; i++)); do
    [[ -S $sock ]] && return 0
    sleep 0.1
  done
  die "the notify listener for $1 did not start"
}

# Each daemon runs under strace, which counts its system calls and those of its children
# (trace FILE CMD...); the daemon is strace's child, and strace exits with its status.
trace=(strace -f -qq -c -o)
# LeakSanitizer cannot work under ptrace: a sanitized build's leak check is left to the other
# tests.
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0
# traced_pid STRACE_PID: the daemon strace runs.
traced_pid() {
  local pid
  pid=$(pgrep -P "$1" | head -n 1)
  [[ -n $pid ]] || die "strace (pid $1) runs no daemon"
  echo "$pid"
}
# check_not_root STRACE_PID NAME: the daemon strace runs has nobody's uid, not root's.
check_not_root() {
  local uid
  uid=$(stat -c %u "/proc/$(traced_pid "$1")")
  [[ $uid == "$(id -u nobody)" ]] || die "$2 runs as uid $uid, not as nobody"
}
# stop_traced STRACE_PID NAME: SIGTERM to the daemon; it and strace must exit 0.
stop_traced() {
  local status=0
  kill -TERM "$(traced_pid "$1")"
  wait "$1" || status=$?
  ((status == 0)) || die "$2 exited with status $status on SIGTERM"
}

port=$(pick_unused_port)
nbd_port=$(pick_unused_port)
truncate -s 64M "$tmpdir/packs.img"
cat >"$tmpdir/packtab" <<EOF
scratch $tmpdir/packs.img 0 32M shared root root 0666
tools   $tmpdir/packs.img 32M 32M ro root root 0644
EOF
# The metrics endpoints are on too: their HTTP threads' system calls must pass the filter as well.
vvmd_metrics=127.0.0.1:$(pick_unused_port)
mover_metrics=127.0.0.1:$(pick_unused_port)
vvm_conf drives=LTO9 vvmd.listen+="127.0.0.1:$port" vvmd.allow-host=127.0.0.1 \
  plugin.packtab="$tmpdir/packtab" vvmd.metrics="$vvmd_metrics" mover.m1.metrics="$mover_metrics" \
  identity.alice.user=1001 identity.alice.group=1001 identity.alice.psk-username=alice
staged_vvctl=$root$prefix/bin/vvctl
# The units run the daemons as the vvm user, not root: here they run as nobody, which owns the
# state and run folders as vvm owns /var/lib/vvm and /run/vvm (and the packs' backing, which a
# real host gives to vvm or to the disk group). vvctl runs as root.
chmod 755 "$tmpdir"
mkdir -p "$tmpdir/state" "$tmpdir/run"
chown nobody:nogroup "$tmpdir/state" "$tmpdir/run" "$tmpdir/packs.img"
as_vvm=(setpriv --reuid=nobody --regid=nogroup --clear-groups)

mapfile -t vvmd_cmd < <(exec_start vvmd.service "")
[[ ${vvmd_cmd[0]} == "$root$prefix/sbin/vvmd" ]] || die "vvmd.service runs ${vvmd_cmd[*]}"
echo "vvmd.service: ${vvmd_cmd[*]}"
notify_listener vvmd "$tmpdir/run/vvmd.sock"
start_daemon vvmd grep -q '^READY=1' "$tmpdir/vvmd.notify" -- \
  "${trace[@]}" "$tmpdir/vvmd.syscalls" "${as_vvm[@]}" env NOTIFY_SOCKET="$tmpdir/vvmd.notify-sock" "${vvmd_cmd[@]}"
vvmd_strace=$daemon_pid
vvmd_log=$daemon_log
check_not_root "$vvmd_strace" vvmd
grep -qx 'READY=1 (connect: ok)' "$tmpdir/vvmd.notify" ||
  die "vvmd said READY=1 before its socket took connections: $(cat "$tmpdir/vvmd.notify")"
grep -q '^STATUS=serving ' "$tmpdir/vvmd.notify" || die "vvmd sent no STATUS=: $(cat "$tmpdir/vvmd.notify")"
expect 0 "^vvmd .* at unix:$tmpdir/run/vvmd.sock: vvm [0-9.]+, up" -- \
  "$staged_vvctl" --conf "$conf" ping --timeout 5
expect 0 "^vvmd .* at 127.0.0.1:$port: " -- "$staged_vvctl" --conf "$conf" ping --target "127.0.0.1:$port"
# systemctl reload: vvmd.service's ExecReload= as installed, $MAINPID vvmd's pid.
reload_cmd=$(sed -n 's/^ExecReload=//p' "$root$unitdir/vvmd.service")
[[ $reload_cmd == *'$MAINPID'* ]] || die "vvmd.service: ExecReload=$reload_cmd does not signal \$MAINPID"
reload_cmd=${reload_cmd//\$MAINPID/$(traced_pid "$vvmd_strace")}
(
  set -f
  $reload_cmd
) || die "vvmd.service's ExecReload= ($reload_cmd) failed"
wait_log "$vvmd_log" "reload of $conf \(SIGHUP\): applied"
echo "ok: vvmd.service's ExecReload= ($reload_cmd) makes vvmd read vvm.conf again"

mapfile -t mover_cmd < <(exec_start vvmover@.service m1)
[[ ${mover_cmd[0]} == "$root$prefix/sbin/vvmover" && " ${mover_cmd[*]} " == *" --name m1 "* ]] ||
  die "vvmover@m1.service runs ${mover_cmd[*]}"
echo "vvmover@m1.service: ${mover_cmd[*]}"
notify_listener m1 "$tmpdir/run/m1.sock"
start_daemon vvmover-m1 grep -q '^READY=1' "$tmpdir/m1.notify" -- \
  "${trace[@]}" "$tmpdir/m1.syscalls" "${as_vvm[@]}" env NOTIFY_SOCKET="$tmpdir/m1.notify-sock" "${mover_cmd[@]}"
mover_strace=$daemon_pid
check_not_root "$mover_strace" "vvmover m1"
grep -qx 'READY=1 (connect: ok)' "$tmpdir/m1.notify" ||
  die "the mover said READY=1 before its socket took connections: $(cat "$tmpdir/m1.notify")"
expect 0 "^vvmover m1 at unix:$tmpdir/run/m1.sock: " -- \
  "$staged_vvctl" --conf "$conf" ping --target mover:m1 --timeout 5

# --- 4. nbdkit on the socket unit's sockets, from vvm-nbdkit.service's ExecStart= ---
listen=()
while read -r addr; do
  case $addr in
    /run/vvm/*) listen+=(-l "$tmpdir/run/${addr#/run/vvm/}") ;;
    [0-9]*) listen+=(-l "127.0.0.1:$nbd_port") ;; # a bare port: every address; here loopback
    *) die "vvm-nbdkit.socket: ListenStream=$addr: the test does not know where to move it" ;;
  esac
done < <(sed -n 's/^ListenStream=//p' "$root$unitdir/vvm-nbdkit.socket")
((${#listen[@]} == 4)) || die "vvm-nbdkit.socket should listen on a Unix socket and a port: ${listen[*]}"
mapfile -t nbdkit_cmd < <(exec_start vvm-nbdkit.service "")
[[ " ${nbdkit_cmd[*]} " == *" conf=$conf "* && ${nbdkit_cmd[*]} == *"$root"*nbdkit-vvm-plugin.so* ]] ||
  die "vvm-nbdkit.service runs ${nbdkit_cmd[*]}"
for forbidden in -p --port -U --unix -i --ipaddr; do
  [[ " ${nbdkit_cmd[*]} " != *" $forbidden "* ]] || die "vvm-nbdkit.service passes $forbidden: nbdkit refuses it with sockets from systemd"
done
echo "vvm-nbdkit.service: ${nbdkit_cmd[*]} (sockets: ${listen[*]})"
vv=$("$staged_vvctl" --conf "$conf" create --class A --size 1M --perms 0666)
# systemd-socket-activate listens, then execs nbdkit (the same pid) at the first connection with
# LISTEN_FDS=2, as systemd does.
start_daemon nbdkit nbdinfo --list "nbd+unix:///?socket=$tmpdir/run/nbd.sock" -- \
  "${trace[@]}" "$tmpdir/nbdkit.syscalls" "${as_vvm[@]}" \
  systemd-socket-activate "${listen[@]}" ${VVM_NBDKIT_PRELOAD:+-E LD_PRELOAD=$VVM_NBDKIT_PRELOAD} \
  -E ASAN_OPTIONS -E UBSAN_OPTIONS "${nbdkit_cmd[@]}"
nbdkit_strace=$daemon_pid
nbdkit_pid=$(traced_pid "$nbdkit_strace")
check_not_root "$nbdkit_strace" nbdkit
[[ $(readlink "/proc/$nbdkit_pid/exe") == "$(readlink -f "$nbdkit_path")" ]] ||
  die "pid $nbdkit_pid is $(readlink "/proc/$nbdkit_pid/exe"), not nbdkit"
for uri in "nbd+unix:///?socket=$tmpdir/run/nbd.sock" "nbd://127.0.0.1:$nbd_port"; do
  list=$(nbdinfo --list --json "$uri") || die "nbdinfo --list $uri failed"
  names=$(jq -r '.exports[]["export-name"]' <<<"$list" | sort | tr '\n' ' ')
  for want in pack/scratch pack/tools "vv/$vv"; do
    [[ " $names" == *" $want "* ]] || die "$uri lists $names, not $want"
  done
  echo "ok: $uri lists $names"
done
qemu-io -f raw -c 'write -P 0x5a 0 64k' "nbd://127.0.0.1:$nbd_port/vv/$vv" >/dev/null ||
  die "qemu-io could not write vv/$vv over TCP"
qemu-io -f raw -r -c 'read -P 0x5a 0 64k' "nbd+unix:///vv/$vv?socket=$tmpdir/run/nbd.sock" |
  grep -q 'read 65536/65536' || die "vv/$vv did not read back over the Unix socket"
echo "ok: vv/$vv written over TCP, read back over the Unix socket, by one nbdkit (pid $nbdkit_pid)"

# --- 4b. a tenant's nbdkit, from vvm-nbdkit-tls@.service (%i = alice) ---
# Its Environment= and EnvironmentFile= as systemd would apply them (the file's over the
# defaults), /etc/vvm/tls the test's folder of PSK files, then ${VAR}s of ExecStart= expanded.
"$VVM_SOURCE_DIR/test/harness/make-tls.sh" "$tmpdir/tls" alice bob
tls_port=$(pick_unused_port)
printf 'VVM_NBD_PORT=%s\nVVM_NBD_ADDRESS=127.0.0.1\n' "$tls_port" >"$tmpdir/tls/alice/nbdkit.env"
chmod 755 "$tmpdir/tls"
chown -R nobody:nogroup "$tmpdir/tls/alice"
tenant=$root$unitdir/vvm-nbdkit-tls@.service
declare -A unit_env
while read -r assignment; do
  assignment=${assignment//%i/alice}
  unit_env[${assignment%%=*}]=${assignment#*=}
done < <(sed -n 's/^Environment=//p' "$tenant" | sed 's|/etc/vvm/tls|'"$tmpdir/tls"'|g')
env_file=$(sed -n 's/^EnvironmentFile=//p' "$tenant")
env_file=${env_file//%i/alice}
[[ $env_file == /etc/vvm/tls/alice/nbdkit.env ]] || die "vvm-nbdkit-tls@.service reads $env_file"
while IFS== read -r key value; do unit_env[$key]=$value; done <"$tmpdir/tls/alice/nbdkit.env"
# GnuTLS's configuration, the file meson installed (in the staged tree).
gnutls_conf=${unit_env[GNUTLS_SYSTEM_PRIORITY_FILE]:-}
[[ $gnutls_conf == /* && -f $root$gnutls_conf ]] ||
  die "vvm-nbdkit-tls@.service: GNUTLS_SYSTEM_PRIORITY_FILE='$gnutls_conf' is not a file it installs"
unit_env[GNUTLS_SYSTEM_PRIORITY_FILE]=$root$gnutls_conf
tenant_cmd=()
while read -r word; do
  word=${word//\/etc\/vvm\/tls/$tmpdir/tls}
  for key in "${!unit_env[@]}"; do word=${word//\$\{$key\}/${unit_env[$key]}}; done
  [[ $word != *'${'* ]] || die "vvm-nbdkit-tls@.service: ExecStart= names an unset variable: $word"
  tenant_cmd+=("$word")
done < <(exec_start vvm-nbdkit-tls@.service alice)
[[ " ${tenant_cmd[*]} " == *" -p $tls_port "* && " ${tenant_cmd[*]} " == *" --tls=require "* &&
  " ${tenant_cmd[*]} " == *" tls-identity=alice "* ]] || die "vvm-nbdkit-tls@alice.service runs ${tenant_cmd[*]}"
echo "vvm-nbdkit-tls@alice.service: ${tenant_cmd[*]}"
tenv=()
for key in "${!unit_env[@]}"; do tenv+=("$key=${unit_env[$key]}"); done
alice_vv=$("$staged_vvctl" --conf "$conf" create --class A --size 1M --owner 1001 --group 1001 --perms 0600)
alice_uri="nbds://alice@127.0.0.1:$tls_port/vv/$alice_vv?tls-psk-file=$tmpdir/tls/alice/alice.psk"
start_daemon nbdkit-alice nbdinfo --list "nbds://alice@127.0.0.1:$tls_port/?tls-psk-file=$tmpdir/tls/alice/alice.psk" -- \
  "${as_vvm[@]}" env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} "${tenv[@]}" "${tenant_cmd[@]}"
tenant_pid=$daemon_pid
nbdinfo --list "nbds://alice@127.0.0.1:$tls_port/?tls-psk-file=$tmpdir/tls/alice/alice.psk" |
  grep -q "vv/$alice_vv" || die "alice's nbdkit does not list her vv/$alice_vv"
qemu-io --object "tls-creds-psk,id=tls0,dir=$tmpdir/tls/alice,username=alice,endpoint=client" \
  --image-opts "driver=nbd,host=127.0.0.1,port=$tls_port,export=vv/$alice_vv,tls-creds=tls0" \
  -c 'write -P 0x3c 0 64k' -c 'read -P 0x3c 0 64k' | grep -q 'read 65536/65536' ||
  die "qemu-io could not write and read vv/$alice_vv over TLS"
# That configuration disables CHACHA20-POLY1305, which PSK sessions take otherwise (bench/tls.sh).
out=$(LIBNBD_DEBUG=1 nbdinfo --size "$alice_uri" 2>&1) || die "nbdinfo $alice_uri failed: $out"
grep -q 'using TLS: cipher AES-128-GCM ' <<<"$out" ||
  die "alice's PSK session does not use AES-128-GCM: $(grep 'using TLS' <<<"$out")"
! nbdinfo --list "nbd://127.0.0.1:$tls_port" >/dev/null 2>&1 || die "alice's nbdkit served a plaintext client"
! nbdinfo --size "nbds://bob@127.0.0.1:$tls_port/vv/$alice_vv?tls-psk-file=$tmpdir/tls/bob/bob.psk" \
  >/dev/null 2>&1 || die "alice's nbdkit served bob"
stop_daemon "$tenant_pid" nbdkit-alice
echo "ok: vvm-nbdkit-tls@alice serves alice over TLS-PSK, and refuses plaintext and bob"

# The rest of its life: archived by the mover, evicted, and staged back by a read.
"$staged_vvctl" --conf "$conf" vsn add L90001 --media LTO9 --class A >/dev/null
expect 0 "L90001" -- "$staged_vvctl" --conf "$conf" finish --wait --timeout 120 "$vv"
expect 0 "evicted" -- "$staged_vvctl" --conf "$conf" evict "$vv"
qemu-io -f raw -r -c 'read -P 0x5a 0 64k' "nbd+unix:///vv/$vv?socket=$tmpdir/run/nbd.sock" |
  grep -q 'read 65536/65536' || die "vv/$vv did not read back once staged from tape"
echo "ok: vv/$vv archived to L90001, evicted, and staged back by a read"
scraped=$(curl -fsS --max-time 10 "http://$vvmd_metrics/metrics") ||
  die "cannot scrape vvmd's metrics at $vvmd_metrics"
grep -qx 'vvm_archived_files_total{class="A",media="LTO9"} 1' <<<"$scraped" ||
  die "vvmd's metrics at $vvmd_metrics do not count the archive: $(grep '^vvm_' <<<"$scraped")"
# The mover counts a copy when it reaps the copy's process, which may be a moment after the copy
# reported to vvmd: scraped for up to 10 s. (Into a variable, not piped into grep -q, whose early
# exit would fail curl under pipefail.)
for ((i = 0; i < 50; i++)); do
  scraped=$(curl -fsS --max-time 10 "http://$mover_metrics/metrics") ||
    die "cannot scrape the mover's metrics at $mover_metrics"
  grep -qx 'vvm_mover_copies_total{drive="d0",op="archive",result="done"} 1' <<<"$scraped" && break
  sleep 0.2
done
((i < 50)) || die "the mover's metrics at $mover_metrics do not count the archive: $(grep '^vvm_mover' <<<"$scraped")"
echo "ok: vvmd's and the mover's metrics scraped (their HTTP threads under strace too)"

# --- SIGTERM: STOPPING=1 and a clean exit ---
# nbdkit 1.32 does not free a connection still open when it quits (a leak ASan reports): first
# wait until it holds no socket but its two listeners, the clients' hang-ups seen.
for ((i = 0; i < 100; i++)); do
  sockets=$(find "/proc/$nbdkit_pid/fd" -lname 'socket:*' 2>/dev/null | wc -l)
  ((sockets <= 2)) && break
  sleep 0.1
done
stop_traced "$nbdkit_strace" nbdkit
stop_traced "$mover_strace" "vvmover m1"
stop_traced "$vvmd_strace" vvmd
for d in m1 vvmd; do
  for ((i = 0; i < 50; i++)); do
    grep -qx STOPPING=1 "$tmpdir/$d.notify" && break
    sleep 0.1
  done
  grep -qx STOPPING=1 "$tmpdir/$d.notify" || die "$d sent no STOPPING=1: $(cat "$tmpdir/$d.notify")"
done
echo "ok: vvmd and the mover said STOPPING=1 and exited 0 on SIGTERM"

# --- 5. every system call made is one that SystemCallFilter=@system-service allows ---
# expand_filter GROUP: the system calls of a systemd-analyze syscall-filter group, its nested
# groups expanded, one a line.
expand_filter() {
  systemd-analyze syscall-filter "$1" | awk 'NR > 1 && /^    [^#]/ { print $1 }' |
    while read -r name; do
      if [[ $name == @* ]]; then expand_filter "$name"; else echo "$name"; fi
    done
}
for u in vvmd.service vvmover@.service vvm-nbdkit.service; do
  [[ $(sed -n 's/^SystemCallFilter=//p' "$root$unitdir/$u") == @system-service ]] ||
    die "$u: SystemCallFilter= is not @system-service, which this check assumes"
done
allowed=$(expand_filter @system-service | sort -u)
(($(wc -l <<<"$allowed") > 100)) || die "systemd-analyze gave only $(wc -l <<<"$allowed") calls for @system-service"
for d in vvmd m1 nbdkit; do
  used=$(awk 'NR > 2 && $NF ~ /^[a-z0-9_]+$/ && $NF != "total" { print $NF }' "$tmpdir/$d.syscalls" | sort -u)
  (($(wc -l <<<"$used") > 20)) || die "strace counted only $(wc -l <<<"$used") calls for $d: $(cat "$tmpdir/$d.syscalls")"
  outside=$(comm -23 <(echo "$used") <(echo "$allowed"))
  [[ -z $outside ]] ||
    die "$d made system calls that SystemCallFilter=@system-service refuses (EPERM): $(tr '\n' ' ' <<<"$outside")"
  echo "ok: $d made $(wc -l <<<"$used") different system calls, all in @system-service"
done
