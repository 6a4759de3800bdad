#!/usr/bin/env bash
# control-ping.sh: the real vvmd and vvmover answer `vvctl ping` over Unix sockets and TCP; a
# peer the configuration does not allow (another uid on the Unix socket, through setpriv) is
# refused with a reason; a daemon that is down, a second daemon on a busy socket and bad usage
# all fail with clear messages; SIGTERM stops the daemons cleanly and removes their sockets.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

vvmd=$VVM_BUILD_DIR/vvmd/vvmd
vvmover=$VVM_BUILD_DIR/mover/vvmover
vvctl=$VVM_BUILD_DIR/client/vvctl
make_tmpdir
chmod 755 "$tmpdir" # the socket must be reachable by the unprivileged user below
port=$(pick_unused_port)
mport=$(pick_unused_port)
nobody_uid=$(id -u nobody)

cat >"$tmpdir/vvm.conf" <<CONF
[global]
state-dir = $tmpdir/state
[vvmd]
listen = unix:$tmpdir/run/vvmd.sock
listen = 127.0.0.1:$port
allow-host = 127.0.0.1
[media LTO9]
capacity = 18T
[class A]
media = LTO9
[mover m1]
listen = 127.0.0.1:$mport
[mover m2]
listen = unix:$tmpdir/run/m2.sock
[drive d0]
mover = m1
media = LTO9
CONF
conf=$tmpdir/vvm.conf


# Nothing is running yet: a clear failure, exit 1.
expect 1 "cannot connect to unix:$tmpdir/run/vvmd.sock" -- "$vvctl" --conf "$conf" ping --timeout 2

start_daemon vvmd "$vvctl" --conf "$conf" ping --timeout 1 -- "$vvmd" --conf "$conf" --log-level debug
vvmd_pid=$daemon_pid
start_daemon m1 "$vvctl" --conf "$conf" ping --target mover:m1 --timeout 1 -- \
  "$vvmover" --conf "$conf" --name m1
start_daemon m2 "$vvctl" --conf "$conf" ping --target mover:m2 --timeout 1 -- \
  "$vvmover" --conf "$conf" --name m2
m2_pid=$daemon_pid

expect 0 "^vvmd $(hostname) at unix:$tmpdir/run/vvmd.sock: vvm [0-9.]+, up" -- \
  "$vvctl" --conf "$conf" ping
expect 0 "^vvmd .* at 127.0.0.1:$port: " -- "$vvctl" ping --target "127.0.0.1:$port"
expect 0 "^vvmover m1 at 127.0.0.1:$mport: " -- "$vvctl" --conf "$conf" ping --target mover:m1
expect 0 "^vvmover m2 at unix:" -- "$vvctl" --conf "$conf" ping --target mover:m2
out=$("$vvctl" --conf "$conf" ping --count 3)
[[ $(grep -c '^vvmd ' <<<"$out") == 3 ]] || die "ping --count 3 printed: $out"
VVM_CONF=$conf "$vvctl" ping >/dev/null || die "vvctl did not read \$VVM_CONF"

# Another uid on the Unix socket: refused, with the reason, and logged by vvmd.
expect 1 "vvmd refuses uid $nobody_uid .*allow-uid or allow-group" -- \
  setpriv --reuid=nobody --regid=nogroup --clear-groups "$vvctl" --conf "$conf" ping
grep -q "refused uid $nobody_uid" "$tmpdir/vvmd.log" || die "vvmd did not log the refusal"

# A second vvmd on the same socket stops at once and leaves the first one serving.
expect 1 "another daemon is listening" -- "$vvmd" --conf "$conf"
"$vvctl" --conf "$conf" ping >/dev/null || die "the first vvmd stopped answering"

# Usage errors: exit 2 with the reason.
expect 2 "no \[mover m9\] section" -- "$vvctl" --conf "$conf" ping --target mover:m9
expect 2 "--target 'nonsense'" -- "$vvctl" --conf "$conf" ping --target nonsense
expect 2 "unknown command 'pong'" -- "$vvctl" --conf "$conf" pong
expect 2 "--count 0" -- "$vvctl" --conf "$conf" ping --count 0
expect 2 "--name is required" -- "$vvmover" --conf "$conf"
expect 2 "no \[mover m9\] section \(movers: m1, m2\)" -- "$vvmover" --conf "$conf" --name m9
expect 0 "ping .*ask a daemon" -- "$vvctl" --help
expect 0 "--target vvmd\|mover:NAME\|ENDPOINT" -- "$vvctl" help ping
expect 0 "--conf" -- "$vvmd" --help
expect 0 "^vvmd \(vvm\) [0-9]" -- "$vvmd" --version

# SIGTERM: exit 0, socket removed, "stopped" logged.
kill -TERM "$m2_pid"
wait "$m2_pid" || die "vvmover m2 exited with status $? on SIGTERM"
[[ ! -e $tmpdir/run/m2.sock ]] || die "vvmover m2 left its socket behind"
grep -q "vvmover m2 stopped" "$tmpdir/m2.log" || die "vvmover m2 did not log its stop"
expect 1 "cannot connect to unix:$tmpdir/run/m2.sock" -- \
  "$vvctl" --conf "$conf" ping --target mover:m2 --timeout 2

kill -TERM "$vvmd_pid"
wait "$vvmd_pid" || die "vvmd exited with status $? on SIGTERM"
[[ ! -e $tmpdir/run/vvmd.sock ]] || die "vvmd left its socket behind"
grep -q "vvmd stopped" "$tmpdir/vvmd.log" || die "vvmd did not log its stop"
echo "control-ping: all checks passed"
