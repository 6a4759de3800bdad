#!/usr/bin/env bash
# control-ping.sh: the real vvmd and vvmover answer `vvctl ping` over Unix sockets and TCP; a
# peer the configuration does not allow (another uid on the Unix socket, through setpriv) is
# refused with a reason; a daemon that is down, a second daemon on a busy socket and bad usage
# all fail with clear messages; SIGTERM stops the daemons cleanly and removes their sockets.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
chmod 755 "$tmpdir" # the socket must be reachable by the unprivileged user below
port=$(pick_unused_port)
mport=$(pick_unused_port)
nobody_uid=$(id -u nobody)
# m1 on TCP with the drive, m2 on a Unix socket with none.
vvm_conf vvmd.listen+="127.0.0.1:$port" vvmd.allow-host=127.0.0.1 movers="m1 m2" \
  mover.m1.listen="127.0.0.1:$mport" drives=LTO9

# Nothing is running yet: a clear failure, exit 1.
expect 1 "cannot connect to unix:$tmpdir/run/vvmd.sock" -- "$vvctl" --conf "$conf" ping --timeout 2

start_vvmd --log-level debug
start_mover m1
start_mover m2
m2_pid=$mover_pid m2_log=$mover_log

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
grep -q "refused uid $nobody_uid" "$vvmd_log" || die "vvmd did not log the refusal"

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
stop_daemon "$m2_pid" "vvmover m2"
[[ ! -e $tmpdir/run/m2.sock ]] || die "vvmover m2 left its socket behind"
grep -q "vvmover m2 stopped" "$m2_log" || die "vvmover m2 did not log its stop"
expect 1 "cannot connect to unix:$tmpdir/run/m2.sock" -- \
  "$vvctl" --conf "$conf" ping --target mover:m2 --timeout 2

stop_vvmd
[[ ! -e $tmpdir/run/vvmd.sock ]] || die "vvmd left its socket behind"
grep -q "vvmd stopped" "$vvmd_log" || die "vvmd did not log its stop"
echo "control-ping: all checks passed"
