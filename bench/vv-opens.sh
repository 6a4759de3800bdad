#!/usr/bin/env bash
# bench/vv-opens.sh: COUNT VVs open through NBD at once (default 10,000), and what that costs vvmd
# and nbdkit, beside nbdkit's own memory plugin holding as many connections, in one run.
#
# A fresh vvmd and nbdkit with the vvm plugin (on a Unix socket; both with 65536 descriptors, as
# vvmd.service and vvm-nbdkit.service give them, when this process may raise its hard limit;
# else with that limit, and as many nbdkits as it takes: see below) get COUNT VVs of 1 MiB
# created, then COUNT NBD connections, each to a VV of its own, each reading a byte
# (bench_vv_opens: the plugin then registers the open with vvmd, on a control connection of the
# NBD connection's own, and opens the VV's cache file). In ten steps it prints vvmd's and
# nbdkit's descriptors, resident memory and threads, vvmd's count of open VVs, and how long vvmd
# takes to answer a ping, a listing of every VV and a status while they are open; then the same
# once they are closed. The reference is nbdkit's memory plugin with as many connections to one
# export, each connection's requests one at a time (as the vvm plugin's), and no vvmd: what
# nbdkit itself spends on a connection. The last lines give each side's cost per connection and
# vvmd's ping with none and all open.
#
#   bench/vv-opens.sh [BUILD_DIR] [COUNT] [THREADS]
#       default: build-rel (else build/run, else the first build folder with vvmd), 10000, 8
#
# A release build is the one to measure (meson setup build/rel . -Dbuildtype=release). The
# machine's limits (descriptors, threads, pid_max) are printed first: nbdkit 1.32 runs a thread
# for every connection. Not a test: the machine is noisy; test/integration/vv-opens.sh checks
# the bounds at a smaller count.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/bench/build-dir.sh"
find_build bench/vv-opens.sh "${1:-}"
count=${2:-10000}
threads=${3:-8}
[[ $count =~ ^[1-9][0-9]*$ && $threads =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: bench/vv-opens.sh [BUILD_DIR] [COUNT] [THREADS]" >&2; exit 2; }
build=$(cd "$build" && pwd)
vvmd=$build/vvmd/vvmd vvctl=$build/client/vvctl opens=$build/bench/bench_vv_opens
plugin=$build/nbdkit-plugin/nbdkit-vvm-plugin.so
for f in "$vvmd" "$vvctl" "$opens" "$plugin"; do
  [[ -e $f ]] || { echo "bench/vv-opens.sh: $f not found: build first" >&2; exit 2; }
done
nbdkit=$(PATH=/usr/sbin:/usr/bin:$PATH command -v nbdkit) ||
  { echo "bench/vv-opens.sh: needs nbdkit" >&2; exit 2; }
# A sanitized plugin needs the ASan runtime that nbdkit is not built with.
preload=$(ldd "$plugin" | awk '/libasan/ { print $3 }')

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/vvm-bench-opens.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  if [[ -n ${VVM_BENCH_KEEP:-} ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
# As many descriptors as the units give (65536). Above this shell's hard limit only a process
# with CAP_SYS_RESOURCE may go (root on a host, not always in a container): prlimit raises the
# hard limit of each process it starts, up to fs.nr_open, when it may, and the output says so.
# Otherwise every process gets this shell's hard limit, and when one nbdkit cannot hold COUNT
# VVs under it (three descriptors each, and the plugin keeps a sixteenth free) the vvm side runs
# as many nbdkits as it takes, each on its own socket, the connections spread evenly over them
# (as with one nbdkit a client group), and their descriptors, memory and threads are summed.
shell_nofile=$(ulimit -Hn)
nofile=65536
limit_note="as the units give"
if [[ $shell_nofile != unlimited ]] && ((shell_nofile < nofile)); then
  if why=$(prlimit --nofile=$nofile:$nofile true 2>&1); then
    limit_note="raised by prlimit above this shell's hard limit of $shell_nofile, as the units give"
  else
    why=${why##*: }
    limit_note="this shell's hard limit, which prlimit cannot raise to $nofile here: $why, no CAP_SYS_RESOURCE"
    nofile=$shell_nofile
  fi
fi
per_nbdkit=$(((nofile - nofile / 16 - 64) / 3))
nbdkits=$(((count + per_nbdkit - 1) / per_nbdkit))

cat >"$tmp/vvm.conf" <<CONF
[global]
state-dir = $tmp/state
[vvmd]
listen = unix:$tmp/vvmd.sock
[cache]
size = 64G
[media LTO9]
capacity = 18T
[class A]
media = LTO9
CONF

# start NAME READY_CMD... -- CMD...: CMD in the background with $nofile descriptors, its log in
# $tmp/NAME.log, until READY_CMD succeeds (30 s at most); its pid in $pid.
start() {
  local name=$1 ready=() i
  shift
  while [[ $1 != -- ]]; do ready+=("$1"); shift; done
  shift
  prlimit --nofile=$nofile:$nofile "$@" </dev/null >"$tmp/$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for ((i = 0; i < 300; i++)); do
    "${ready[@]}" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/$name.log"; exit 1; }
    sleep 0.1
  done
  echo "bench/vv-opens.sh: $name not ready in 30 s" >&2
  exit 1
}
stop() { kill -TERM "$1" && wait "$1" || true; }
# The pid nbdkit wrote (prlimit execs it, so it is the one started).
nbdkit_up() { [[ -S $1 ]] && nbdinfo --list "nbd+unix:///?socket=$1" >/dev/null 2>&1; }

echo "bench/vv-opens.sh: $build, $count connections, $threads openers, $(nproc) CPUs"
echo "limits: descriptors $nofile for vvmd, nbdkit and the clients ($limit_note);" \
  "kernel.pid_max $(cat /proc/sys/kernel/pid_max), kernel.threads-max $(cat /proc/sys/kernel/threads-max)," \
  "vm.max_map_count $(cat /proc/sys/vm/max_map_count)"

# The reference serves each connection's requests one at a time, as the vvm plugin does on nbdkit
# 1.32 (parallel=auto): nbdkit's own parallel mode takes 17 threads a connection (16 workers).
echo "== reference: nbdkit's memory plugin (noparallel filter), $count connections to one export"
start memory nbdkit_up "$tmp/mem.sock" -- "$nbdkit" -f -U "$tmp/mem.sock" --filter=noparallel \
  memory 1M serialize=requests
mem_pid=$pid
ref=$(prlimit --nofile=$nofile:$nofile "$opens" --export m --socket "$tmp/mem.sock" \
  --count "$count" --threads "$threads" --watch nbdkit="$mem_pid") || echo "bench/vv-opens.sh: the reference did not open all $count"
echo "$ref"
stop "$mem_pid"

if ((nbdkits == 1)); then
  echo "== vvm: vvmd and nbdkit with the vvm plugin, $count VVs each open once"
else
  echo "== vvm: vvmd and $nbdkits nbdkits with the vvm plugin (one holds at most $per_nbdkit VVs" \
    "under $nofile descriptors), $count VVs each open once, spread evenly; nbdkit = their sum"
fi
start vvmd "$vvctl" --conf "$tmp/vvm.conf" ping --timeout 1 -- "$vvmd" --conf "$tmp/vvm.conf"
vvmd_pid=$pid
sockets=() nbdkit_pids=()
for ((k = 1; k <= nbdkits; k++)); do
  start "nbdkit$k" nbdkit_up "$tmp/nbd$k.sock" -- env ${preload:+LD_PRELOAD=$preload} \
    "$nbdkit" -f -U "$tmp/nbd$k.sock" "$plugin" conf="$tmp/vvm.conf"
  sockets+=(--socket "$tmp/nbd$k.sock") nbdkit_pids+=("$pid")
done
status=0
out=$(prlimit --nofile=$nofile:$nofile "$opens" --vvmd "unix:$tmp/vvmd.sock" --create A \
  "${sockets[@]}" --count "$count" --threads "$threads" --hold 5 --watch vvmd="$vvmd_pid" \
  --watch nbdkit="$(IFS=,; echo "${nbdkit_pids[*]}")") || status=$?
echo "$out"
((status == 0)) || {
  echo "bench/vv-opens.sh: not all $count open (exit $status); the daemons' last errors:"
  grep -hiE 'error|too many|cannot|resource' "$tmp/vvmd.log" "$tmp"/nbdkit*.log | tail -n 20
}

# Each side's cost a connection: the top row less the first (before any connection).
per_connection() { # LABEL OUTPUT COLUMN-PREFIX
  awk -v label="$1" -v p="$3" '
    $1 == "open" { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "0" { f0 = $col[p "-fds"]; m0 = $col[p "-MiB"]; t0 = $col[p "-thr"]; next }
    $1 ~ /^[0-9]+$/ { n = $1; f = $col[p "-fds"]; m = $col[p "-MiB"]; t = $col[p "-thr"] }
    END { if (n > 0) printf "%-34s %8d open: %6.2f descriptors, %7.1f KiB, %5.2f threads a connection\n",
            label, n, (f - f0) / n, (m - m0) * 1024 / n, (t - t0) / n }' <<<"$2"
}
echo "== per connection"
per_connection "nbdkit, memory plugin (reference)" "$ref" nbdkit
per_connection "nbdkit, vvm plugin$( ((nbdkits == 1)) || echo " ($nbdkits processes)")" "$out" nbdkit
per_connection "vvmd" "$out" vvmd
# vvmd's ping (p50 over the row's samples, a new control connection each) with none and with all
# of them open.
awk '$1 == "open" { for (i = 1; i <= NF; i++) col[$i] = i; next }
  $1 == "0" { p0 = $col["ping-p50"]; next }
  $1 ~ /^[0-9]+$/ { n = $1; p = $col["ping-p50"] }
  END { if (n > 0) printf "vvmd ping p50: %.2f ms with none open, %.2f ms with %d open\n", p0, p, n }' <<<"$out"
exit "$status"
