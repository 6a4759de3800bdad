#!/usr/bin/env bash
# vvmd-mover-stuck.sh: a mover that vvmd cannot get an answer from holds up neither vvmd's answers
# to its other clients nor the copies that another mover can make.
#
# vvmd sends nothing to a `reply_to`: it is one (movers' copy children send their COPY_REPORTs to
# its first listen address), and its replies go back on each request's own connection (a client
# that never reads them: vvmd-slow-reader.sh). What vvmd itself sends out are its copy requests
# and pings to the movers, each mover's in order on a connection of its own, from a thread of its
# own (sched/mover_link.h). So the far end that can stall vvmd is a mover's address:
#  - one that accepts and never reads (a hung mover: a Unix socket whose listener never answers);
#  - a blackholed one (a TCP address on loopback whose listen queue is full and which never
#    accepts: the kernel drops the connection attempts, so connect() itself hangs).
# For each, vvmd has mover m1 (real, drive d0) and m2 at that address (drive d1), two tapes and 4
# finished VVs, with d0 down so that the copies go to m2. While vvmd waits for m2 (its
# request-timeout, 20 s), vvctl ping, ls, status and create are each answered within 5 s; vvmd
# stops on SIGTERM within 5 s (before, it waited for the call to time out); and once d0 is back
# up, vvmd gives m2 up, says so, and m1 archives all 4. Both daemons ignore SIGPIPE: the soak
# once lost a mover, silently, that wrote its request to a copy child killed at once.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir

# timed CMD...: CMD succeeds within 5 s (a vvctl under ASan on a loaded machine takes 1-2 s; a
# vvmd waiting for m2 would take the request timeout, 20 s).
timed() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null || die "'$*' failed while mover m2 does not answer"
  end=$(date +%s%N)
  (((end - start) / 1000000 < 5000)) || die "'$*' took $(((end - start) / 1000000)) ms while mover m2 does not answer"
  echo "ok: $* answered in $(((end - start) / 1000000)) ms"
}

# hole KIND ADDRESS: a process at ADDRESS that never answers (KIND unix: accepts and never reads;
# tcp: a full listen queue, never accepting); its pid in $hole. It prints "ready" when in place.
start_hole() {
  mkdir -p "$tmpdir/run"
  cat >"$tmpdir/hole.py" <<'PY'
import socket, sys, time
kind, where = sys.argv[1], sys.argv[2]
held = []
if kind == "unix":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(where)
    s.listen(64)
    s.settimeout(0.5)
else:
    host, port = where.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(0)  # a queue of one: filled below, never accepted
    for _ in range(4):  # the kernel drops attempts once the queue is full: these stay pending
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        c.connect_ex((host, int(port)))
        held.append(c)
    time.sleep(0.5)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect((host, int(port)))
        sys.exit("the TCP hole answers: its listen queue is not full")
    except socket.timeout:
        pass
print("ready", flush=True)
end = time.time() + 120
while time.time() < end:
    if kind == "unix":
        try:
            c, _ = s.accept()
            held.append(c)  # kept open, never read
        except socket.timeout:
            pass
    else:
        time.sleep(0.5)
PY
  /usr/bin/python3 "$tmpdir/hole.py" "$1" "$2" >"$tmpdir/hole.out" 2>&1 &
  hole=$!
  cleanup_fn kill_quietly "$hole"
  for ((i = 0; i < 100; i++)); do
    grep -q ready "$tmpdir/hole.out" && return 0
    kill -0 "$hole" 2>/dev/null || die "the $1 hole failed: $(cat "$tmpdir/hole.out")"
    sleep 0.1
  done
  die "the $1 hole is not in place after 10 s"
}

# run KIND M2_LISTEN HOLE_ADDRESS
run() {
  local kind=$1 vv vvs=() start elapsed i
  echo "=== mover m2 at $2: $kind"
  rm -rf "$tmpdir/state"
  vvm_conf drives="LTO9 LTO9" movers="m1 m2" class.A.media=LTO9 drive.d1.mover=m2 \
    mover.m2.listen="$2" vvmd.request-timeout=20s
  start_hole "$kind" "$3"
  start_vvmd
  start_mover m1
  require_sigpipe_ignored "$vvmd_pid" vvmd
  require_sigpipe_ignored "$mover_pid" "mover m1"
  expect 0 "L90001" -- ctl vsn add L90001 --media LTO9 --class A
  expect 0 "L90002" -- ctl vsn add L90002 --media LTO9 --class A
  for ((i = 0; i < 4; i++)); do
    vv=$(ctl create --class A --size 1M)
    head -c $((1 << 20)) /dev/urandom >"$cache/$vv"
    vvs+=("$vv")
  done
  # With d0 down the copies can only go to m2's drive, and vvmd waits for an answer from m2
  # that never comes (for request-timeout, 20 s).
  ctl drive down d0 --reason "send the copies to m2" >/dev/null
  for vv in "${vvs[@]}"; do ctl finish "$vv" >/dev/null; done
  wait_log "$vvmd_log" "archive copy 1 of VV .* in drive d1"
  # SIGTERM while the call to m2 is under way: vvmd stops at once, not when the call times out.
  # Bounded: a vvmd that waits for m2 (or for ever) fails here, not at meson's timeout. Its end
  # shows as a zombie or as no process (bash may have reaped it; wait still has its status).
  start=$(date +%s%N)
  kill -TERM "$vvmd_pid"
  for ((i = 0; i < 100; i++)); do
    [[ $(awk '{ print $3 }' "/proc/$vvmd_pid/stat" 2>/dev/null || echo Z) == Z ]] && break
    sleep 0.1
  done
  if [[ $(awk '{ print $3 }' "/proc/$vvmd_pid/stat" 2>/dev/null || echo Z) != Z ]]; then
    kill_daemon "$vvmd_pid"
    die "vvmd did not stop within 10 s of SIGTERM with a call to m2 under way"
  fi
  status=0
  wait "$vvmd_pid" || status=$?
  ((status == 0)) || die "vvmd exited with status $status on SIGTERM"
  elapsed=$((($(date +%s%N) - start) / 1000000))
  echo "vvmd stopped in $elapsed ms with a call to m2 under way"
  ((elapsed < 5000)) || die "vvmd took $elapsed ms to stop: it waited for m2"
  grep -q "mover m2 did not take copy" "$vvmd_log" &&
    die "the call to m2 timed out before vvmd was stopped: the machine is too slow for this test"
  # Recovery queues the copies again: to m2, while d0 is down.
  start_vvmd
  wait_log "$vvmd_log" "archive copy 1 of VV .* in drive d1"
  for ((i = 0; i < 2; i++)); do
    timed ctl ping --timeout 5
    timed ctl ls
    timed ctl status
    timed ctl create --class A --size 1M
  done
  # d0 back: vvmd gives m2 up once its call times out, and m1 archives all 4.
  ctl drive up d0 >/dev/null
  start=$(date +%s)
  for vv in "${vvs[@]}"; do
    expect 0 "^$vv: archived$" -- ctl finish "$vv" --wait --timeout 120
  done
  elapsed=$(($(date +%s) - start))
  echo "ok: 4 VVs archived by m1 in $elapsed s while m2 never answered"
  grep -m1 "mover m2 did not take copy" "$vvmd_log" ||
    die "vvmd never gave up on m2"
  for vv in "${vvs[@]}"; do
    ctl show "$vv" --json | jq -e '.copies | length == 1' >/dev/null ||
      die "$vv: $(ctl show "$vv" --json)"
  done
  stop_vvmd
  stop_daemon "$mover_pid" m1
  kill_quietly "$hole"
  wait "$hole" 2>/dev/null || true
}

run unix "unix:$tmpdir/run/m2.sock" "$tmpdir/run/m2.sock"
port=$(pick_unused_port)
run tcp "127.0.0.1:$port" "127.0.0.1:$port"
echo "PASS"
