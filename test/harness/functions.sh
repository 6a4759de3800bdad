# functions.sh: helpers for the shell integration tests (test/integration/*.sh), after nbdkit's
# tests/functions.sh. Source it after `set -euo pipefail`:
#
#   source "$VVM_SOURCE_DIR/test/harness/functions.sh"
#   make_tmpdir
#   start_nbdkit "$tmpdir/nbd.sock" "$VVM_PLUGIN" packtab="$tmpdir/packtab"
#
# Everything started here is stopped when the script exits, whether it passes, fails or is
# interrupted, and the temporary folder is removed. When the script fails, the logs of what it
# started are printed. cluster.sh, sourced at the end, adds a whole vvm system: vvm.conf from a
# few parameters (vvm_conf), vvmd, the movers and nbdkit with the plugin (start_vvmd,
# start_mover, start_plugin); etcd.sh, a real etcd for the cluster's tests (start_etcd).

[[ -n ${_vvm_functions_loaded:-} ]] && return 0
_vvm_functions_loaded=1

: "${VVM_SOURCE_DIR:?run me from meson test}" "${VVM_BUILD_DIR:?run me from meson test}"
VVM_PLUGIN=$VVM_BUILD_DIR/nbdkit-plugin/nbdkit-vvm-plugin.so
# Debian's nbdsh and python3-libnbd need Debian's python, not a python3 earlier on PATH.
export PATH=/usr/bin:$PATH:/usr/sbin:/sbin  # nbd-client lives in /usr/sbin
# How long anything started may take to become ready, in seconds.
: "${VVM_READY_TIMEOUT:=60}"
# A mebibyte, for the sizes and offsets the tests write.
M=$((1024 * 1024))

# --- failure and skipping ---

# die MSG...: fail the test.
die() {
  echo "$0: FAIL: $*" >&2
  exit 1
}

# requires CMD...: skip the test (exit 77) unless CMD runs successfully. Only for tools that are
# genuinely optional: the README's test command installs every tool the tests use.
requires() {
  if ! ("$@") </dev/null >/dev/null 2>&1; then
    echo "$0: SKIP: '$*' failed: the test needs it"
    exit 77
  fi
}

# --- cleanup ---

_vvm_cleanup_count=0
_vvm_logs=() # "NAME=PATH" of every log printed when the test fails

# cleanup_fn CMD...: run CMD when the script exits. Hooks run last registered first, so what was
# started inside the temporary folder is stopped before the folder goes.
cleanup_fn() {
  local hook=_vvm_cleanup_hook$((_vvm_cleanup_count++))
  declare -ag "$hook"
  eval "$hook"'=("$@")'
}

_vvm_run_cleanup() {
  local status=$? i hook entry
  set +e
  _vvm_in_cleanup=1
  trap '' INT TERM HUP
  if ((status != 0 && status != 77)); then
    for entry in "${_vvm_logs[@]}"; do
      [[ -s ${entry#*=} ]] || continue
      echo "--- log of ${entry%%=*} (${entry#*=}), last 100 lines ---" >&2
      tail -n 100 "${entry#*=}" >&2
    done
  fi
  for ((i = _vvm_cleanup_count - 1; i >= 0; i--)); do
    hook=_vvm_cleanup_hook$i
    eval '"${'"$hook"'[@]}"'
  done
  # A hook may ask for the test to fail (a daemon that did not stop cleanly).
  if ((status == 0 && ${_vvm_cleanup_failed:-0})); then status=1; fi
  exit "$status"
}
trap _vvm_run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# _vvm_fail_or_die MSG...: die, or while the hooks at exit run (where dying would skip the rest),
# say MSG and have the test fail once they have run.
_vvm_fail_or_die() {
  ((!${_vvm_in_cleanup:-0})) || {
    echo "$0: FAIL: $*" >&2
    _vvm_cleanup_failed=1
    return 0
  }
  die "$@"
}

# make_tmpdir: create a temporary folder, removed at exit, in $tmpdir.
# require_sigpipe_ignored PID NAME: the daemon PID ignores SIGPIPE (its SigIgn mask in
# /proc/PID/status has bit 13). A daemon that does not dies without a word when it writes to a
# pipe whose reader is gone: a mover writing a request to a copy child that died at once.
require_sigpipe_ignored() {
  local mask
  mask=$(awk '/^SigIgn:/ {print $2}' "/proc/$1/status") || die "$2 (pid $1): no /proc/$1/status"
  (((16#$mask >> 12) & 1)) || die "$2 (pid $1) does not ignore SIGPIPE (SigIgn $mask)"
  echo "ok: $2 ignores SIGPIPE"
}

make_tmpdir() {
  tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/vvm-test.XXXXXX")
  cleanup_fn rm -rf "$tmpdir"
}

_vvm_need_tmpdir() {
  [[ -n ${tmpdir:-} ]] || make_tmpdir
}

# --- processes ---

declare -A _vvm_killed # pid -> 1 for a process the test killed on purpose (kill_daemon)

# _vvm_stop NAME PID LOG: SIGTERM to PID and its children, up to 10 s to exit, then SIGKILL.
# Ending with any status but 0 or SIGTERM's (a sanitizer report, a crash, a hang) fails the test
# and prints the end of LOG; a process the test killed with kill_daemon is only waited for.
_vvm_stop() {
  local name=$1 pid=$2 log=$3 i status=0
  if [[ -n ${_vvm_killed[$pid]:-} ]]; then
    wait "$pid" 2>/dev/null || true
    return 0
  fi
  if kill -0 "$pid" 2>/dev/null; then
    pkill -TERM -P "$pid" 2>/dev/null
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$0: $name (pid $pid) ignored SIGTERM; killing it" >&2
      pkill -KILL -P "$pid" 2>/dev/null
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  wait "$pid" 2>/dev/null || status=$?
  if ((status != 0 && status != 143)); then
    echo "$0: $name (pid $pid) ended with status $status; the end of its log ($log):" >&2
    tail -n 50 "$log" >&2
    _vvm_cleanup_failed=1
  fi
}

# _vvm_tree PID: PID and every process below it, one a line, the deepest first.
_vvm_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do _vvm_tree "$child"; done
  echo "$1"
}

# _vvm_kill_tree PID [SECONDS]: SIGTERM to PID and every process below it, and SIGKILL to those
# still there after SECONDS (2; 0: SIGKILL at once). The tree is listed first: a parent that
# dies of the SIGTERM leaves its children to init, out of its sight.
_vvm_kill_tree() {
  local procs i
  procs=$(_vvm_tree "$1")
  if ((${2:-2} > 0)); then
    kill -TERM $procs 2>/dev/null || true
    for ((i = 0; i < ${2:-2} * 10; i++)); do
      kill -0 $procs 2>/dev/null || break # kill -0 succeeds while any one of them is there
      sleep 0.1
    done
  fi
  procs+=" $(for i in $procs; do pgrep -P "$i" 2>/dev/null || true; done)"
  kill -KILL $procs 2>/dev/null || true
}

# _vvm_run_bounded SECONDS CMD...: run CMD (a program or a shell function, in a subshell with
# errexit off, as $(...) would) with this shell's stdin, stdout and stderr, and return its status.
# If it has not ended after SECONDS: SIGTERM to it and everything it started, SIGKILL to what is
# left 2 s later, $_vvm_timed_out set to 1 (else 0) and status 124. A timer that the command's
# exit stops, so that an answer comes as soon as the command ends.
_vvm_run_bounded() {
  local limit=$1 pid timer status=0
  shift
  _vvm_timed_out=0
  sleep "$limit" </dev/null >/dev/null 2>&1 &
  timer=$!
  (
    trap 'kill "$timer" 2>/dev/null' EXIT
    set +e
    "$@"
  ) <&0 &
  pid=$!
  if wait "$timer"; then # the timer ran out: the command is still there
    _vvm_timed_out=1
    _vvm_kill_tree "$pid"
    wait "$pid" 2>/dev/null || true
    return 124
  fi
  wait "$pid" || status=$?
  return "$status"
}

# _vvm_wait_ready NAME PID CMD...: wait until CMD succeeds, failing if PID exits first or
# VVM_READY_TIMEOUT passes.
_vvm_wait_ready() {
  local name=$1 pid=$2 i
  shift 2
  for ((i = 0; i < VVM_READY_TIMEOUT * 10; i++)); do
    if ("$@") </dev/null >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "$name exited before it was ready (its log follows)"
    sleep 0.1
  done
  die "$name not ready after ${VVM_READY_TIMEOUT}s ('$*' kept failing)"
}

# _vvm_new_log NAME: print a log path for NAME that no earlier process used: $tmpdir/NAME.log,
# else NAME-2.log, NAME-3.log ...
_vvm_new_log() {
  local log=$tmpdir/$1.log n=1
  while [[ -e $log ]]; do
    n=$((n + 1))
    log=$tmpdir/$1-$n.log
  done
  echo "$log"
}

# start_daemon NAME READY_CMD... -- CMD...: start CMD in the background, its output in
# $tmpdir/NAME.log (NAME-2.log ... when NAME was started before), and wait until READY_CMD
# succeeds. It is stopped at exit; $daemon_pid is its pid, $daemon_log its log.
start_daemon() {
  local name=$1 ready=() log
  shift
  while (($# > 0)) && [[ $1 != -- ]]; do
    ready+=("$1")
    shift
  done
  (($# > 1)) || die "start_daemon $name: usage: start_daemon NAME READY_CMD... -- CMD..."
  shift
  _vvm_need_tmpdir
  log=$(_vvm_new_log "$name")
  "$@" </dev/null >"$log" 2>&1 &
  daemon_pid=$!
  daemon_log=$log
  unset "_vvm_killed[$daemon_pid]"
  name=$(basename "$log" .log)
  _vvm_logs+=("$name=$log")
  cleanup_fn _vvm_stop "$name" "$daemon_pid" "$log"
  _vvm_wait_ready "$name" "$daemon_pid" "${ready[@]}"
}

# stop_daemon PID NAME: SIGTERM to PID (a daemon started here) and wait for it, at most
# VVM_STOP_TIMEOUT seconds (30); fails the test, naming NAME, unless it exits with status 0 in
# that time. One still there then is killed with SIGKILL, with what it started, and the test dies
# saying so (rather than hang until meson's timeout ends it without a word).
stop_daemon() {
  local pid=$1 name=$2 limit=${VVM_STOP_TIMEOUT:-30} i status=0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    _vvm_killed[$pid]=1 # killed here: the stop at exit only waits for it
    _vvm_kill_tree "$pid" 0
    wait "$pid" 2>/dev/null || true
    die "$name (pid $pid) still ran ${limit} s after SIGTERM (waited for it to exit); killed it with SIGKILL"
  fi
  wait "$pid" || status=$?
  ((status == 0)) || die "$name exited with status $status on SIGTERM"
}

# kill_daemon PID: SIGKILL to PID (a daemon started here, killed on purpose) and wait for it; the
# stop at exit does not count the kill as a crash.
kill_daemon() {
  _vvm_killed[$1]=1
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

_vvm_nbdkit_count=0

# _vvm_count_sockets PID: how many sockets PID has open.
_vvm_count_sockets() {
  local n=0 fd
  for fd in /proc/"$1"/fd/*; do
    [[ $(readlink "$fd" 2>/dev/null) == socket:* ]] && n=$((n + 1))
  done
  echo "$n"
}

declare -A _vvm_idle_sockets # nbdkit pid -> sockets it holds with no client (its listeners)

# _vvm_stop_nbdkit NAME PID LOG: wait (up to 10 s) until nbdkit holds no more sockets than when it
# was idle, then _vvm_stop it. nbdkit 1.32 neither closes nor frees a connection still open when it
# quits, and under ASan that leak of nbdkit's own would fail the test; a client that has just
# exited may not have been noticed yet.
_vvm_stop_nbdkit() {
  local i idle=${_vvm_idle_sockets[$2]:-}
  for ((i = 0; i < 100 && ${#idle} > 0; i++)); do
    kill -0 "$2" 2>/dev/null || break
    (($(_vvm_count_sockets "$2") <= idle)) && break
    sleep 0.1
  done
  _vvm_stop "$1" "$2" "$3"
}

# start_nbdkit SOCKET ARGS...: start nbdkit (-f -v --exit-with-parent, a pidfile) listening on the
# Unix socket SOCKET, or, when SOCKET is "-", where ARGS say (-p PORT -i ADDR). ARGS are nbdkit
# options, the plugin and its keys. LD_PRELOAD=$VVM_NBDKIT_PRELOAD when set (a sanitized plugin
# needs the ASan runtime that nbdkit does not load); without nbdkit's line for every request when
# VVM_NBDKIT_QUIET_DATAPATH is set (the benchmarks). Returns once nbdkit has written its pidfile,
# which it does when it listens. Sets $nbdkit_pid and $nbdkit_log; it is stopped at exit.
start_nbdkit() {
  local socket=$1 pidfile listen=()
  shift
  _vvm_need_tmpdir
  _vvm_nbdkit_count=$((_vvm_nbdkit_count + 1))
  pidfile=$tmpdir/nbdkit$_vvm_nbdkit_count.pid
  nbdkit_log=$tmpdir/nbdkit$_vvm_nbdkit_count.log
  [[ $socket == - ]] || listen=(-U "$socket")
  env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} \
    nbdkit -f -v ${VVM_NBDKIT_QUIET_DATAPATH:+-D nbdkit.backend.datapath=0} --exit-with-parent \
    -P "$pidfile" "${listen[@]}" "$@" </dev/null >"$nbdkit_log" 2>&1 &
  nbdkit_pid=$!
  unset "_vvm_killed[$nbdkit_pid]"
  _vvm_logs+=("nbdkit$_vvm_nbdkit_count=$nbdkit_log")
  cleanup_fn _vvm_stop_nbdkit "nbdkit$_vvm_nbdkit_count" "$nbdkit_pid" "$nbdkit_log"
  _vvm_wait_ready "nbdkit$_vvm_nbdkit_count" "$nbdkit_pid" test -s "$pidfile"
  _vvm_idle_sockets[$nbdkit_pid]=$(_vvm_count_sockets "$nbdkit_pid")
}

# pick_unused_port: print a TCP port free on every address, chosen at random below the kernel's
# ephemeral range: a port from that range (the kernel's choice for port 0) can be taken a moment
# later as the source port of some outgoing connection, which a node's forwarder binds to its own
# 127.0.0.N, and a daemon started on it then fails with "Address already in use".
pick_unused_port() {
  /usr/bin/python3 -c '
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(200):
    port = random.randrange(10000, low)
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free TCP port below " + str(low))
'
}

# --- clients that stay connected ---

declare -A _vvm_client_fd _vvm_client_pid _vvm_client_reads

# connect_client NAME URI [PREFIX...]: an nbdsh client (run through PREFIX, setpriv say) that
# connects to URI, reads once, and stays connected until disconnect_client NAME; each
# client_read NAME makes it read once more. Disconnected at exit too.
connect_client() {
  local name=$1 uri=$2 fd i
  shift 2
  _vvm_need_tmpdir
  mkfifo "$tmpdir/$name.fifo"
  "$@" nbdsh -u "$uri" -c '
import sys
h.pread(512, 0)
print("read 1", flush=True)
n = 1
for line in sys.stdin:
    n += 1
    h.pread(512, 0)
    print("read", n, flush=True)
' <"$tmpdir/$name.fifo" >"$tmpdir/$name.out" 2>&1 &
  _vvm_client_pid[$name]=$!
  exec {fd}>"$tmpdir/$name.fifo"
  _vvm_client_fd[$name]=$fd
  _vvm_client_reads[$name]=1
  cleanup_fn disconnect_client "$name"
  _vvm_wait_client "$name"
}

_vvm_wait_client() {
  local name=$1 i
  for ((i = 0; i < 100; i++)); do
    grep -qx "read ${_vvm_client_reads[$name]}" "$tmpdir/$name.out" 2>/dev/null && return 0
    kill -0 "${_vvm_client_pid[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  die "client $name: read ${_vvm_client_reads[$name]} failed: $(cat "$tmpdir/$name.out")"
}

# client_read NAME: the connected client reads once more; fails the test if it cannot.
client_read() {
  local name=$1
  _vvm_client_reads[$name]=$((_vvm_client_reads[$name] + 1))
  echo >&"${_vvm_client_fd[$name]}"
  _vvm_wait_client "$name"
}

# disconnect_client NAME: close the client's connection and wait until it has exited, at most
# 10 s: one still there then is killed and the test fails, naming it.
disconnect_client() {
  local name=$1 pid i
  [[ -n ${_vvm_client_fd[$name]:-} ]] || return 0
  pid=${_vvm_client_pid[$name]}
  exec {_vvm_client_fd[$name]}>&-
  unset "_vvm_client_fd[$name]"
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    _vvm_kill_tree "$pid" 0
    wait "$pid" 2>/dev/null || true
    _vvm_fail_or_die "client $name (pid $pid) still ran 10 s after its input closed (waited for it to disconnect); killed it with SIGKILL: $(cat "$tmpdir/$name.out")"
  fi
  wait "$pid" 2>/dev/null || true
}

# expect STATUS PATTERN -- CMD...: CMD exits with STATUS and its output (stdout and stderr)
# matches the extended regular expression PATTERN; else the test dies saying what came instead.
# CMD (a program or a shell function) has VVM_EXPECT_TIMEOUT seconds (180: above the longest
# --timeout a test gives vvctl, below meson's 300) to end: one still running then is killed,
# with what it started, and the test dies naming it.
expect() {
  local want=$1 pattern=$2 status=0 out limit=${VVM_EXPECT_TIMEOUT:-180} file
  shift 3
  _vvm_need_tmpdir
  file=$tmpdir/.expect.$BASHPID.out
  _vvm_run_bounded "$limit" "$@" >"$file" 2>&1 || status=$?
  out=$(<"$file")
  rm -f "$file"
  ((!_vvm_timed_out)) ||
    die "'$*' did not exit within ${limit} s (expected status $want and /$pattern/); killed it (SIGTERM, then SIGKILL). Its output: $out"
  [[ $status == "$want" ]] || die "'$*' exited $status, wanted $want: $out"
  grep -Eq -- "$pattern" <<<"$out" || die "'$*' printed '$out', which lacks /$pattern/"
  echo "ok: $* -> $status: $(head -n1 <<<"$out")"
}

# kill_quietly PID: SIGKILL, whether or not PID is still there (a cleanup_fn for a background
# job of the test's own).
kill_quietly() { kill -KILL "$1" 2>/dev/null || true; }

# check JQ_FILTER EXPECTED JSON: jq -r JQ_FILTER on JSON prints EXPECTED; else the test dies.
check() {
  local got
  got=$(jq -r "$1" <<<"$3") || die "jq '$1' failed on: $3"
  [[ $got == "$2" ]] || die "jq '$1' gave '$got', wanted '$2'"
}

# aligned TABLE COLUMN...: in TABLE (a header line, then rows, as vvctl prints them) each COLUMN
# of the header starts at the same offset on every row; else the test dies.
aligned() {
  local table=$1 header col prefix line word
  shift
  header=$(head -n1 <<<"$table")
  for col in "$@"; do
    prefix=${header%%"$col"*}
    while read -r line; do
      word=$(awk -v n="$(wc -w <<<"$prefix")" '{print $(n + 1)}' <<<"$line")
      [[ ${line:${#prefix}:${#word}} == "$word" ]] || die "column $col is not aligned in: $line"
    done < <(tail -n +2 <<<"$table")
  done
}

# wait_log FILE PATTERN [SECONDS]: FILE gets a line matching the extended regular expression
# PATTERN within SECONDS (10); else the test dies.
wait_log() {
  local i
  for ((i = 0; i < ${3:-10} * 10; i++)); do
    grep -Eq -- "$2" "$1" && return 0
    sleep 0.1
  done
  die "no /$2/ in $1 after ${3:-10} s"
}

# wait_listed URI EXPORT: URI's export list (nbdinfo --list) holds EXPORT within about 5 s (each
# listing given 2 s); else returns 1, for the caller to say what it means.
wait_listed() {
  local end=$((SECONDS + 6))
  while ((SECONDS < end)); do
    timeout -k 1 2 nbdinfo --list --json "$1" 2>/dev/null |
      jq -e --arg name "$2" '.exports[] | select(."export-name" == $name)' >/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# wait_run_ready OUT PID: the run command (./vvm-dev run, PID) printed to OUT that it is ready,
# within 120 s; else the test dies, with OUT.
wait_run_ready() {
  local i
  for ((i = 0; i < 1200; i++)); do
    grep -q 'Ctrl-C stops everything' "$1" && return 0
    kill -0 "$2" 2>/dev/null || die "the run command exited: $(cat "$1")"
    sleep 0.1
  done
  die "the run command is not ready after 120 s"
}

# io URI QEMU_IO_ARGS...: qemu-io succeeds, every command with it (a failed pattern check too).
# It has VVM_IO_TIMEOUT seconds (120): one still running then is killed and the test dies.
io() {
  local uri=$1 out status=0 limit=${VVM_IO_TIMEOUT:-120}
  shift
  out=$(timeout -k 2 "$limit" qemu-io -f raw "$@" "$uri" 2>&1) || status=$?
  ((status != 124)) || die "qemu-io $* $uri did not exit within $limit s; killed it: $out"
  ((status == 0)) && ! grep -qi 'fail' <<<"$out" || die "qemu-io $* $uri: $out"
}

# io_fails URI QEMU_IO_ARGS...: qemu-io fails (to open, or a command); its output in $out. A
# qemu-io still running after VVM_IO_TIMEOUT seconds (120) is killed and the test dies.
io_fails() {
  local uri=$1 status=0 limit=${VVM_IO_TIMEOUT:-120}
  shift
  out=$(timeout -k 2 "$limit" qemu-io -f raw "$@" "$uri" 2>&1) || status=$?
  ((status != 124)) || die "qemu-io $* $uri did not exit within $limit s; killed it: $out"
  ((status != 0)) || grep -qi 'fail' <<<"$out" || die "qemu-io $* $uri succeeded: $out"
}

# The unprivileged user that tests run clients as, and its name. A test that uses it makes
# $tmpdir reachable (chmod 755) and lets uid 65534 in (vvm_conf vvmd.allow-uid=65534).
nobody=(setpriv --reuid 65534 --regid 65534 --clear-groups)
nobody_name=$(id -un 65534)

source "$VVM_SOURCE_DIR/test/harness/cluster.sh"
source "$VVM_SOURCE_DIR/test/harness/etcd.sh"
