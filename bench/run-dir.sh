# bench/run-dir.sh: sourced by the benchmarks that start vvm's processes. It gives them one
# temporary folder, starts processes in the background until they answer, and at exit stops
# everything it started (last first) and removes the folder, printing the logs' tails when the
# bench failed. Also the timing helpers the benches share.
#
#   bench_dir SCRIPT TAG [--disk]   $tmp: a new folder under ${TMPDIR:-/var/tmp}, on $fstype from
#                                   $fsdev mounted at $fsmount; with --disk, one on tmpfs is
#                                   refused (a bench that measures fsync needs a disk)
#   start NAME READY_CMD... -- CMD...
#                                   CMD in the background, logging to ${dir:-$tmp}/NAME.log, until
#                                   READY_CMD succeeds (30 s at most)
#   die MESSAGE                     prints "SCRIPT: MESSAGE" and exits 1
#   drop_note, before FILE...       the page cache dropped before a timed part when that works (root
#                                   on a real kernel), else FILEs read once so that both sides of a
#                                   comparison read from the page cache; $cache_note says which
#   now, median V..., range V...    seconds since the epoch; the median and range of V (%.3f)
#   tape_conf DIR RATE DRIVE...     writes DIR/vvm.conf ($conf) for vvmd and the movers of tape
#                                   benches (see below)
#
# VVM_BENCH_KEEP=1 keeps the folder.

bench_dir() {
  bench_script=$1
  tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/vvm-bench-$2.XXXXXX")
  pids=() names=() logs=()
  trap bench_finish EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  read -r fstype fsdev fsmount < <(findmnt -no FSTYPE,SOURCE,TARGET -T "$tmp")
  if [[ ${3:-} == --disk && ($fstype == tmpfs || $fstype == ramfs) ]]; then
    die "$tmp is on $fstype: set TMPDIR to a folder on a disk"
  fi
  return 0
}

die() {
  echo "$bench_script: $*" >&2
  exit 1
}

# stop_all: SIGTERM to everything started (last first), up to 10 s each, then SIGKILL.
stop_all() {
  local i k pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for ((k = 0; k < 100; k++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=() names=() logs=()
}

bench_finish() {
  local status=$? i
  set +e
  trap '' INT TERM HUP
  if ((status != 0 && status != 129 && status != 130 && status != 143)); then # not on Ctrl-C
    for i in "${!logs[@]}"; do
      echo "--- ${names[i]}: last 30 lines of ${logs[i]} ---" >&2
      tail -n 30 "${logs[i]}" >&2
    done
  fi
  stop_all
  if [[ -n ${VVM_BENCH_KEEP:-} ]]; then
    echo "$bench_script: kept $tmp (VVM_BENCH_KEEP)" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}

start() {
  local name=$1 ready=() i log
  shift
  while [[ $1 != -- ]]; do
    ready+=("$1")
    shift
  done
  shift
  log=${dir:-$tmp}/$name.log
  "$@" </dev/null >"$log" 2>&1 &
  pids+=($!) names+=("$name") logs+=("$log")
  for ((i = 0; i < 300; i++)); do
    "${ready[@]}" </dev/null >/dev/null 2>&1 && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || die "$name exited before it was ready"
    sleep 0.1
  done
  die "$name not ready after 30 s"
}

# drop: empties the page cache (after writing back what is dirty); false if it cannot.
drop() { sync && { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; }
drop_note() {
  if drop; then
    cache_note="dropped before each timed part (echo 3 > /proc/sys/vm/drop_caches)"
    can_drop=1
  else
    cache_note="NOT dropped (not root, or not a real kernel): inputs read once first, all from the page cache"
    can_drop=0
  fi
}
before() {
  if ((can_drop)); then drop; else sync && cat "$@" >/dev/null; fi
}

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }'; }

# tape_conf DIR RATE DRIVE...: writes DIR/vvm.conf, and sets $conf to it, for vvmd and the movers
# that the tape benches start: state under DIR/state, sockets in DIR; a cache of 1T that evicts
# nothing by itself (watermarks 99%/98%); archives written at once (archive-max-wait 0); class A
# keeping a copy on each media type the drives name, in the order first named, each of capacity
# 1T and block size 256K. A DRIVE is MOVER:MEDIA ("m1:LTO9"); the drives are d0, d1, ... in the
# order given, each streaming at RATE bytes/s (emulated-rate) or as fast as the disk (none).
tape_conf() {
  local dir=$1 rate=$2 drive mover media i=0
  shift 2
  local movers=() medias=()
  for drive in "$@"; do
    [[ $drive =~ ^([a-z0-9]+):([A-Z0-9]+)$ ]] || die "tape_conf: drive '$drive': expected MOVER:MEDIA"
    mover=${BASH_REMATCH[1]} media=${BASH_REMATCH[2]}
    [[ " ${movers[*]} " == *" $mover "* ]] || movers+=("$mover")
    [[ " ${medias[*]} " == *" $media "* ]] || medias+=("$media")
  done
  conf=$dir/vvm.conf
  {
    printf '[global]\nstate-dir = %s/state\n' "$dir"
    printf '[vvmd]\nlisten = unix:%s/vvmd.sock\narchive-max-wait = 0\n' "$dir"
    printf '[cache]\nsize = 1T\nhigh-watermark = 99%%\nlow-watermark = 98%%\n'
    for media in "${medias[@]}"; do
      printf '[media %s]\ncapacity = 1T\nblock-size = 256K\n' "$media"
    done
    printf '[class A]\nmedia = %s\n' "${medias[*]}"
    for mover in "${movers[@]}"; do
      printf '[mover %s]\nlisten = unix:%s/%s.sock\nstall-timeout = 60s\n' "$mover" "$dir" "$mover"
    done
    for drive in "$@"; do
      printf '[drive d%d]\nmover = %s\nmedia = %s\n' "$i" "${drive%%:*}" "${drive#*:}"
      [[ $rate == none ]] || printf 'emulated-rate = %s\n' "$rate"
      i=$((i + 1))
    done
  } >"$conf"
}
