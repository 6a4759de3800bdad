#!/usr/bin/env bash
# vvmd-connections.sh: vvmd under 1,000 concurrent control connections.
#  - Started with a soft limit of 256 file descriptors and a hard one of 4096 (systemd gives 1024
#    and 524288), vvmd raises its soft limit to the hard one and logs it. With 1,000 idle
#    connections held open it still answers vvctl ping, ls and status, each within 2 s; its
#    threads stay few (the connections share one event loop, no thread each) and its
#    descriptors follow the connections.
#  - Started with a hard limit of 256, the 1,000 connections exhaust its descriptors: it says so
#    once (not a warning for every failed accept), spends little CPU meanwhile (before, it retried
#    the accept at once, forever: a core spinning and a log line each time), and once the
#    connections close it answers ping again and says that it accepts again.
#  - The same on its TLS listener (one function, out_of_descriptors, takes either endpoint): 1,000
#    TCP connections to a "tls:" endpoint with a hard limit of 256 (the TLS acceptor used to
#    retry at once, as the others did before).
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
vvm_conf
sock=$tmpdir/run/vvmd.sock

# hold N SECONDS [PORT]: a process holding N connections to vvmd's socket (or to 127.0.0.1:PORT)
# for SECONDS (or until killed); it prints "open N" once all are connected. Its pid in $holder.
hold() {
  /usr/bin/python3 -c '
import socket, sys, time
socks = []
for i in range(int(sys.argv[2])):
    if sys.argv[4]:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[4])))
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sys.argv[1])
    socks.append(s)
print("open", len(socks), flush=True)
time.sleep(float(sys.argv[3]))
' "$sock" "$1" "$2" "${3:-}" >"$tmpdir/hold.out" 2>&1 &
  holder=$!
  cleanup_fn kill_quietly "$holder"
  for ((i = 0; i < 300; i++)); do
    grep -q "^open $1" "$tmpdir/hold.out" && return 0
    kill -0 "$holder" 2>/dev/null || die "the holder of $1 connections failed: $(cat "$tmpdir/hold.out")"
    sleep 0.1
  done
  die "the holder did not open $1 connections in 30 s"
}

# timed CMD...: CMD succeeds within 2 s.
timed() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null || die "'$*' failed with 1,000 connections open"
  end=$(date +%s%N)
  (((end - start) / 1000000 < 2000)) || die "'$*' took $(((end - start) / 1000000)) ms"
  echo "ok: $* answered in $(((end - start) / 1000000)) ms"
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# --- a soft limit below 1,000, a hard one above: raised, and every request answered ---
start_daemon vvmd "$vvctl" --conf "$conf" ping --timeout 1 -- \
  prlimit --nofile=256:4096 "$vvmd" --conf "$conf"
pid=$daemon_pid log=$daemon_log
grep -q "up to 4096 file descriptors" "$log" || die "vvmd did not raise its limit: $(head -5 "$log")"
grep -q "Max open files *4096 *4096" "/proc/$pid/limits" || die "vvmd's limit: $(grep files "/proc/$pid/limits")"
idle_threads=$(ls "/proc/$pid/task" | wc -l)
hold 1000 120
timed ctl ping --timeout 2
timed ctl ls
timed ctl status
threads=$(ls "/proc/$pid/task" | wc -l)
fds=$(ls "/proc/$pid/fd" | wc -l)
echo "vvmd with 1,000 connections: $threads threads ($idle_threads idle), $fds descriptors"
((threads <= idle_threads + 2)) || die "vvmd has $threads threads with 1,000 connections, $idle_threads idle"
((fds >= 1000 && fds <= 1100)) || die "vvmd has $fds descriptors with 1,000 connections"
kill_quietly "$holder"
wait "$holder" 2>/dev/null || true
stop_daemon "$pid" vvmd

# out_of_descriptors WHAT [PORT]: vvmd with a hard limit below 1,000 and 1,000 connections held
# to its Unix socket (or to its listener on 127.0.0.1:PORT): out of descriptors, it says so once,
# waits quietly, and once they close answers ping again and says that it accepts again. vvmd is
# started on $conf and stopped again.
out_of_descriptors() {
  local what=$1 port=${2:-} pid log before spent warnings
  start_daemon vvmd "$vvctl" --conf "$conf" ping --timeout 1 -- \
    prlimit --nofile=256:256 "$vvmd" --conf "$conf"
  pid=$daemon_pid log=$daemon_log
  hold 1000 120 ${port:+"$port"}
  wait_log "$log" "out of file descriptors .* connections open, limit 256"
  before=$(cpu_ticks "$pid")
  sleep 3
  spent=$(($(cpu_ticks "$pid") - before))
  warnings=$(grep -c "out of file descriptors\|accept failed" "$log")
  echo "$what out of descriptors for 3 s: $spent ticks of CPU, $warnings warnings"
  ((spent < 50)) || die "vvmd spent $spent ticks (1/100 s) of CPU in 3 s out of descriptors ($what)"
  ((warnings == 1)) ||
    die "vvmd logged $warnings warnings out of descriptors ($what): $(grep -m3 'accept failed' "$log")"
  kill_quietly "$holder"
  wait "$holder" 2>/dev/null || true
  expect 0 'vvmd' -- ctl ping --timeout 5
  wait_log "$log" "accepting connections again"
  stop_daemon "$pid" vvmd
}

# --- a hard limit below 1,000: out of descriptors, waits quietly, then recovers ---
out_of_descriptors "the Unix socket"

# --- the same on a TLS listener ---
tls_port=$(pick_unused_port)
psktool -u alice -p "$tmpdir/vvmd.psk" >/dev/null
vvm_conf vvmd.listen+="tls:127.0.0.1:$tls_port" vvmd.tls-psk-file="$tmpdir/vvmd.psk" \
  identity.alice.user=1001 identity.alice.group=1001 identity.alice.psk-username=alice
out_of_descriptors "the TLS listener" "$tls_port"
echo "PASS"
