#!/usr/bin/env bash
# bench/abrupt-disconnect.sh: how nbdkit 1.32 survives a client that hangs up with requests in
# flight (test/harness/nbd_abrupt.py), and what each way of keeping the other clients served
# costs, side by side in one run. The servers, each on a Unix socket of its own:
#   default      nbdkit as it starts by itself: 16 worker threads a connection
#   threads4/2   --threads 4, --threads 2: fewer worker threads a connection
#   threads1     --threads 1: each connection's requests handled one after another
#   noparallel   --filter=noparallel: the same through a filter (serialize=requests)
#   plugin       the vvm plugin's own parallel=auto (its default: parallel=no with nbdkit 1.32.4
#                to 1.33.9); every other server gets parallel=yes, so that it is measured alone
#   per-conn     one nbdkit a connection (nbdkit -s behind systemd-socket-activate --accept
#                --inetd, as a socket unit with Accept=yes would run it), 16 threads each
#   restart      the default nbdkit under a supervisor that starts it again at once
# 1. Aborts: RUNS runs of up to 100 abrupt clients each against the vvm plugin and nbdkit's file
#    plugin; a run ends at the first abort. Printed: runs that aborted, tries each took.
# 2. Costs (vvm plugin, a 256 MiB pack in the page cache, and the same behind nbdkit's delay
#    filter at 1 ms a request, standing for a disk or a network filesystem): fio's nbd engine,
#    one connection, 4 KiB random reads at iodepth 16 and 1 MiB sequential reads at iodepth 8,
#    SECONDS each, best of REPEAT (the options take turns, as this machine is shared and noisy);
#    the time to connect, read 4 KiB and disconnect (mean of 40, best run); the server's memory
#    with 8 idle connections (the last run).
# 3. Beside an abrupt client hammering for 20 s, fio --verify (64 KiB random writes, then
#    verified) on another export of the same server: does it finish without error?
#
#   bench/abrupt-disconnect.sh [BUILD_DIR] [RUNS] [SECONDS] [REPEAT]   default: build/run 5 5 3
#   PARTS=23 bench/abrupt-disconnect.sh ...                       only parts 2 and 3
#
# Needs nbdkit, fio, python3-libnbd, systemd-socket-activate. Writes under $TMPDIR.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build/run}
runs=${2:-5}
seconds=${3:-5}
repeat=${4:-3}
parts=${PARTS:-123}
plugin=$build/nbdkit-plugin/nbdkit-vvm-plugin.so
abrupt=$here/test/harness/nbd_abrupt.py
[[ -f $plugin ]] || { echo "bench/abrupt-disconnect.sh: $plugin not found: build first" >&2; exit 2; }
export PATH=/usr/bin:$PATH

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vvm-bench.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

truncate -s 512M "$tmp/disk.img"
dd if=/dev/urandom of="$tmp/disk.img" bs=1M count=512 conv=notrunc status=none
printf '%s\n' "a disk.img 0 256M shared root root 0666" "b disk.img 256M 256M shared root root 0666" \
  >"$tmp/packtab"
vvm=("$plugin" packtab="$tmp/packtab" holds="$tmp/holds")

# server_args NAME: nbdkit's arguments (before the plugin) for a way of running it.
server_args() {
  case $1 in
    default | restart | per-conn | plugin) ;;
    threads4) echo --threads 4 ;;
    threads2) echo --threads 2 ;;
    threads1) echo --threads 1 ;;
    noparallel) echo --filter=noparallel ;;
  esac
}
# plugin_args NAME: keys the vvm plugin gets for a way of running it.
plugin_args() {
  case $1 in
    plugin) echo parallel=auto ;;
    *) echo parallel=yes ;;
  esac
}

# start NAME SOCK [NBDKIT-OPTION...] -- PLUGIN...: start a server the way NAME says, logging to
# SOCK.log; its pid in $spid.
start() {
  local name=$1 sock=$2
  shift 2
  local pre=()
  while [[ $1 != -- ]]; do pre+=("$1"); shift; done
  shift
  rm -f "$sock"
  # shellcheck disable=SC2046
  case $name in
    per-conn)
      systemd-socket-activate -l "$sock" --accept --inetd \
        nbdkit -s "${pre[@]}" "$@" >>"$sock.log" 2>&1 &
      ;;
    restart)
      # Start again at once, as Restart=always with RestartSec=0 would (bounded: 1,000 starts).
      (for ((n = 0; n < 1000; n++)); do
        rm -f "$sock"
        nbdkit -f -U "$sock" "${pre[@]}" "$@" || true
      done) >>"$sock.log" 2>&1 &
      ;;
    # In a subshell whose stderr is dropped: bash's "Aborted" notices are not the figures.
    *) (nbdkit -f -U "$sock" $(server_args "$name") "${pre[@]}" "$@" >>"$sock.log" 2>&1; exit) \
      2>/dev/null & ;;
  esac
  spid=$!
  pids+=("$spid")
  local i
  for ((i = 0; i < 200; i++)); do [[ -S $sock ]] && return 0; sleep 0.05; done
  echo "bench/abrupt-disconnect.sh: $name did not start: $(tail -3 "$sock.log")" >&2
  exit 1
}
stop() {
  pkill -TERM -P "$1" 2>/dev/null || true
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# --- 1. aborts ---
if [[ $parts == *1* ]]; then
  echo "1. Abrupt clients (16 reads of 4 MiB, hang up): runs of $runs with up to 100 tries each"
  printf '%-12s %-7s %-10s %s\n' server plugin aborted "tries to abort, each run"
  for name in default threads4 threads2 threads1 noparallel plugin per-conn; do
    for kind in vvm file; do
      [[ $kind == file && $name == plugin ]] && continue
      aborted=0 list=()
      for ((r = 0; r < runs; r++)); do
        sock=$tmp/$name-$kind.sock
        if [[ $kind == vvm ]]; then
          # shellcheck disable=SC2046
          start "$name" "$sock" -- "${vvm[@]}" $(plugin_args "$name")
          export_args=(--export pack/a)
        else
          start "$name" "$sock" -- file "$tmp/disk.img"
          export_args=()
        fi
        check=(--pid "$spid")
        [[ $name == per-conn ]] && check=() # the server is the listener: a new handshake tells
        out=$("$abrupt" --unix "$sock" "${export_args[@]}" "${check[@]}" --tries 100 --seconds 60 \
          2>/dev/null) || true
        tries=${out#tries=}
        tries=${tries%% *}
        if [[ $out == *server=down* ]]; then
          aborted=$((aborted + 1))
          list+=("$tries")
        else
          list+=("-")
        fi
        stop "$spid"
      done
      extra=
      if [[ $name == per-conn ]]; then
        extra=" (connections that aborted, their own nbdkit only: $(grep -c "Assertion" "$sock.log" || true))"
      fi
      printf '%-12s %-7s %-10s %s%s\n' "$name" "$kind" "$aborted/$runs" "${list[*]}" "$extra"
    done
  done
fi

# --- 2. costs ---
if [[ $parts == *2* ]]; then
  fio_iops() { # URI RW BS DEPTH: IOPS and MiB/s of one fio job
    fio --name=b --ioengine=nbd --uri="$1" --rw="$2" --bs="$3" --iodepth="$4" --size=256M \
      --time_based --runtime="$seconds" --output-format=json 2>/dev/null |
      sed -n '/^{/,$p' | jq -r '.jobs[0].read | "\(.iops | floor) \((.bw_bytes / 1048576) | floor)"'
  }
  connect_ms() { # URI: mean milliseconds to connect, read 4 KiB and disconnect
    /usr/bin/python3 - "$1" <<'PY'
import sys, time, nbd
n = 40
t = time.monotonic()
for _ in range(n):
    h = nbd.NBD()
    h.connect_uri(sys.argv[1])
    h.pread(4096, 0)
    h.shutdown()
    del h
print(f"{(time.monotonic() - t) * 1000 / n:.1f}")
PY
  }
  rss_kib() { # PID: resident KiB of PID and its children
    local p sum=0
    for p in "$1" $(pgrep -P "$1" || true); do
      sum=$((sum + $(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$sum"
  }
  best() { (($1 > $2)) && echo "$1" || echo "$2"; }
  declare -A r4 s1 r4d s1d ms rss
  names=(default threads1 plugin per-conn)
  for ((rep = 0; rep < repeat; rep++)); do
    for name in "${names[@]}"; do
      sock=$tmp/cost-$name.sock
      # shellcheck disable=SC2046
      start "$name" "$sock" -- "${vvm[@]}" $(plugin_args "$name")
      p1=$spid
      # shellcheck disable=SC2046
      start "$name" "$sock.delay" --filter=delay -- "${vvm[@]}" $(plugin_args "$name") \
        rdelay=1ms wdelay=1ms
      p2=$spid
      u="nbd+unix:///pack/a?socket=$sock" ud="nbd+unix:///pack/a?socket=$sock.delay"
      read -r v _ < <(fio_iops "$u" randread 4k 16)
      r4[$name]=$(best "$v" "${r4[$name]:-0}")
      read -r _ v < <(fio_iops "$u" read 1M 8)
      s1[$name]=$(best "$v" "${s1[$name]:-0}")
      read -r v _ < <(fio_iops "$ud" randread 4k 16)
      r4d[$name]=$(best "$v" "${r4d[$name]:-0}")
      read -r _ v < <(fio_iops "$ud" read 1M 8)
      s1d[$name]=$(best "$v" "${s1d[$name]:-0}")
      v=$(connect_ms "$u")
      [[ -z ${ms[$name]:-} ]] || awk -v a="$v" -v b="${ms[$name]}" 'BEGIN { exit !(a > b) }' ||
        ms[$name]=$v
      [[ -n ${ms[$name]:-} ]] || ms[$name]=$v
      # 8 idle connections held open by one python process
      /usr/bin/python3 -c '
import sys, time, nbd
hs = []
for _ in range(8):
    h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.pread(4096, 0); hs.append(h)
print("up", flush=True)
time.sleep(3)' "$u" >"$tmp/idle.out" &
      idle=$!
      for ((i = 0; i < 100; i++)); do [[ -s $tmp/idle.out ]] && break; sleep 0.05; done
      rss[$name]=$(rss_kib "$p1")
      wait "$idle" || true
      : >"$tmp/idle.out"
      stop "$p1"
      stop "$p2"
    done
  done
  echo
  echo "2. Costs, vvm plugin, one connection: fio's nbd engine, $seconds s a case, best of $repeat;"
  echo "   delay: nbdkit's delay filter, 1 ms a request (a disk or a network filesystem)"
  printf '%-12s %16s %16s %18s %18s %10s %12s\n' server "4k rand qd16" "1M seq qd8" \
    "4k rand qd16 delay" "1M seq qd8 delay" "connect ms" "RSS 8 conns"
  for name in "${names[@]}"; do
    printf '%-12s %10s IOPS %11s MiB/s %12s IOPS %13s MiB/s %10s %9s MiB\n' "$name" \
      "${r4[$name]}" "${s1[$name]}" "${r4d[$name]}" "${s1d[$name]}" "${ms[$name]}" \
      "$((${rss[$name]} / 1024))"
  done
fi

# --- 3. fio --verify beside an abrupt client ---
if [[ $parts == *3* ]]; then
  echo
  echo "3. fio --verify on pack/b (64 KiB random writes over 64 MiB, then verified) beside abrupt"
  echo "   clients on pack/a for 20 s, same server"
  printf '%-12s %-10s %-8s %s\n' server fio "aborts" "fio's error, if any"
  for name in default restart threads1 plugin per-conn; do
    sock=$tmp/verify-$name.sock
    # shellcheck disable=SC2046
    start "$name" "$sock" -- "${vvm[@]}" $(plugin_args "$name")
    fio --name=v --ioengine=nbd --uri="nbd+unix:///pack/b?socket=$sock" --rw=randwrite --bs=64k \
      --size=64M --iodepth=8 --verify=crc32c --verify_fatal=1 --verify_state_save=0 --loops=4 \
      >"$tmp/fio.out" 2>&1 &
    fpid=$!
    "$abrupt" --unix "$sock" --export pack/a --tries 100000 --seconds 20 --keep-going \
      >/dev/null 2>&1 || true
      if wait "$fpid"; then fio=ok err=; else fio=FAILED err=$(grep -m1 -iE "error|fail|closed" "$tmp/fio.out" || true); fi
    printf '%-12s %-10s %-8s %s\n' "$name" "$fio" "$(grep -c Assertion "$sock.log" || true)" "$err"
    stop "$spid"
  done
fi
