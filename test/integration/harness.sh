#!/usr/bin/env bash
# harness.sh: the integration harness itself (test/harness/cluster.sh). vvm_conf writes the
# defaults it documents, word for word; drives=, movers=, rate= and SECTION.KEY=VALUE (set,
# replaced, appended with +=, left out when empty, in a new named section) land where they say,
# and every result is a configuration `vvctl conf check` accepts; file= leaves $conf alone; a
# parameter it does not know stops the test. start_vvmd keeps each run's log, a vvmd killed with
# kill_daemon is not taken for a crash, and stop_vvmd stops it cleanly. expect, stop_daemon and
# disconnect_client are bounded: a process that ignores SIGTERM and never ends fails the test
# within the bound, with a message naming it and what was waited for, and is gone (SIGKILL).
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir

# accepted SUMMARY: vvctl conf check accepts $conf and sums it up as SUMMARY.
accepted() {
  expect 0 "^$conf: ok: $1\$" -- ctl conf check
}
# section NAME: the lines of [NAME] in $conf, up to the blank line after it.
section() { sed -n "/^\[$1\]\$/,/^\$/p" "$conf" | grep -v '^$'; }
# is_section NAME LINE...: [NAME] in $conf is the header and these LINEs.
is_section() {
  local name=$1
  shift
  [[ $(section "$name") == "$(printf '%s\n' "[$name]" "$@")" ]] ||
    die "[$name] is: $(section "$name")"
}

# --- the defaults, as the comment above vvm_conf gives them ---
vvm_conf
[[ $conf == "$tmpdir/vvm.conf" && $cache == "$tmpdir/state/cache" &&
  $library == "$tmpdir/state/library" ]] || die "conf '$conf', cache '$cache', library '$library'"
want="[global]
state-dir = $tmpdir/state

[vvmd]
listen = unix:$tmpdir/run/vvmd.sock

[media LTO9]
capacity = 1G
block-size = 64K

[class A]
media = LTO9"
[[ $(cat "$conf") == "$want" ]] || die "the default vvm.conf is: $(cat "$conf")"
accepted "1 listen address\(es\), 1 media type\(s\), 1 class\(es\), 0 mover\(s\), 0 drive\(s\)"

# --- drives, movers, rate ---
vvm_conf drives="LTO9 LTO8" rate=2M
accepted "1 listen address\(es\), 2 media type\(s\), 1 class\(es\), 1 mover\(s\), 2 drive\(s\)"
is_section "drive d1" "mover = m1" "media = LTO8" "emulated-rate = 2M"
is_section "class A" "media = LTO9 LTO8"
is_section "mover m1" "listen = unix:$tmpdir/run/m1.sock" "stall-timeout = 20s"
grep -qx "archive-max-wait = 0" "$conf" || die "drives= does not archive at once: $(cat "$conf")"
vvm_conf movers="t1 t2" drives=LTO9
accepted "1 listen address\(es\), 1 media type\(s\), 1 class\(es\), 2 mover\(s\), 1 drive\(s\)"
grep -qx "mover = t1" "$conf" || die "the drive is not on the first mover: $(cat "$conf")"
echo "ok: drives=, movers= and rate="

# --- SECTION.KEY=VALUE: set, replace, append, leave out, new sections ---
vvm_conf drives=LTO9 vvmd.allow-uid=65534 vvmd.archive-max-wait=5m vvmd.listen+=127.0.0.1:7999 \
  media.LTO9.block-size= media.LTO9.capacity=7500K class.B.media=LTO7 drive.d0.emulated-rate=4M \
  cache.dir="$tmpdir/elsewhere" library.path="$tmpdir/lib"
accepted "2 listen address\(es\), 2 media type\(s\), 2 class\(es\), 1 mover\(s\), 1 drive\(s\)"
is_section vvmd "listen = unix:$tmpdir/run/vvmd.sock" "archive-max-wait = 5m" "allow-uid = 65534" \
  "listen = 127.0.0.1:7999"
is_section "media LTO9" "capacity = 7500K"
is_section "media LTO7" "capacity = 1G" "block-size = 64K" # only class B names it
is_section "drive d0" "mover = m1" "media = LTO9" "emulated-rate = 4M"
[[ $cache == "$tmpdir/elsewhere" && $library == "$tmpdir/lib" ]] ||
  die "cache '$cache', library '$library'"
echo "ok: keys set, replaced, appended and left out"

# --- file= writes elsewhere and leaves $conf, $cache and $library alone ---
vvm_conf file="$tmpdir/other.conf" global.state-dir="$tmpdir/other"
[[ $conf == "$tmpdir/vvm.conf" && $cache == "$tmpdir/elsewhere" ]] ||
  die "file= changed \$conf or \$cache"
grep -qx "state-dir = $tmpdir/other" "$tmpdir/other.conf" ||
  die "other.conf: $(cat "$tmpdir/other.conf")"
grep -qx "emulated-rate = 4M" "$conf" || die "file= rewrote \$conf"
echo "ok: file= leaves \$conf alone"

# --- parameters it does not know ---
expect 1 "'nonsense' is not file=, drives=, movers=, rate= or SECTION.KEY=VALUE" -- \
  vvm_conf nonsense
expect 1 "no section 'vvdm' in vvm.conf" -- vvm_conf vvdm.listen=unix:/x
expect 1 "a \[media\] key needs its name, media.NAME.KEY" -- vvm_conf media.capacity=1G

# --- the daemons: every run's log kept; a kill on purpose is no crash ---
vvm_conf
start_vvmd
first=$vvmd_log
kill_daemon "$vvmd_pid"
start_vvmd
[[ $first == "$tmpdir/vvmd.log" && $vvmd_log == "$tmpdir/vvmd-2.log" ]] ||
  die "the logs are $first and $vvmd_log"
grep -q "vvmd ready" "$first" || die "the first run's log is gone: $(cat "$first")"
stop_vvmd
grep -q "vvmd stopped" "$vvmd_log" || die "vvmd did not log its stop"
# --- the bounds: nothing waited for hangs the test ---
# harness_script NAME BODY: a test script of its own (this harness, its own $tmpdir) running
# BODY; it must fail (exit 1) within 15 s; its output in $out, its seconds in $took.
harness_script() {
  local start status=0
  start=$SECONDS
  out=$(timeout -k 1 15 bash -c 'set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
'"$2" 2>&1) || status=$?
  took=$((SECONDS - start))
  ((status == 1)) || die "$1: the script exited $status, wanted 1 (124: the bound did not fire): $out"
}
# gone PIDFILE: the process whose pid PIDFILE holds is no more (or dead, a zombie that its new
# parent has not reaped yet).
gone() {
  local pid
  pid=$(<"$1")
  ! kill -0 "$pid" 2>/dev/null || [[ $(ps -o stat= -p "$pid") == Z* ]] || die "pid $pid (ignoring SIGTERM) still runs: $(ps -o pid,stat,args -p "$pid")"
}
# A command that ignores SIGTERM (and so does the sleep it becomes) and would run for a minute.
stubborn=(bash -c 'trap "" TERM; echo $$ >"$0"; exec sleep 60')

harness_script expect "VVM_EXPECT_TIMEOUT=1 expect 0 ok -- ${stubborn[*]@Q} $tmpdir/expect.pid"
grep -q "FAIL: 'bash -c .*' did not exit within 1 s (expected status 0 and /ok/); killed it (SIGTERM, then SIGKILL)" <<<"$out" ||
  die "expect's bound said: $out"
((took <= 6)) || die "expect's bound of 1 s took $took s"
gone "$tmpdir/expect.pid"
# A shell function too, and what it started.
harness_script expect-function "slow() { ${stubborn[*]@Q} "\$1"; }
VVM_EXPECT_TIMEOUT=1 expect 0 ok -- slow $tmpdir/function.pid"
grep -q "FAIL: 'slow .*' did not exit within 1 s" <<<"$out" || die "expect's bound on a function said: $out"
gone "$tmpdir/function.pid"
echo "ok: expect kills a command that outlives VVM_EXPECT_TIMEOUT (in $took s) and says so"
# Within the bound, expect answers as soon as the command ends, with its status and output.
start=$SECONDS
VVM_EXPECT_TIMEOUT=30 expect 3 "^out err$" -- bash -c 'echo -n "out "; echo err >&2; exit 3'
((SECONDS - start <= 2)) || die "expect waited $((SECONDS - start)) s for a command that ended at once"

harness_script stop_daemon "start_daemon stubborn test -s $tmpdir/daemon.pid -- ${stubborn[*]@Q} $tmpdir/daemon.pid
VVM_STOP_TIMEOUT=1 stop_daemon \"\$daemon_pid\" stubborn"
grep -Eq "FAIL: stubborn \(pid [0-9]+\) still ran 1 s after SIGTERM \(waited for it to exit\); killed it with SIGKILL" <<<"$out" ||
  die "stop_daemon's bound said: $out"
grep -q "ended with status" <<<"$out" && die "the stop at exit took the kill for a crash: $out"
gone "$tmpdir/daemon.pid"
echo "ok: stop_daemon kills a daemon that ignores SIGTERM after VVM_STOP_TIMEOUT (in $took s) and says so"

echo "harness: all checks passed"
