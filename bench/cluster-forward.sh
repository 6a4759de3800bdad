#!/usr/bin/env bash
# bench/cluster-forward.sh: a client through a forwarding node against the same client straight on
# the primary, side by side in one run. Two nbdkits with the vvm plugin (the primary on
# 127.0.0.2, the secondary on 127.0.0.3) serve pack p of one backing file; the forwarding node
# (the vvm plugin with forward=p=PRIMARY,SECONDARY) listens on 127.0.0.4; every hop is TCP.
# Cases: nbdcopy -C 4 writing and reading the whole pack (MiB/s), fio's nbd engine 4 KiB random
# read and write at iodepth 32 (IOPS); each REPEAT times, direct and forwarded taking turns to go
# first; the table shows the best of each, the ratio forwarded/direct and the target (0.85 for
# the copies, 0.7 for random I/O). Then the stall a client sees (its slowest 4 KiB write, one at a
# time, a flush every 64) when the primary is SIGKILLed, and when its path fails and it answers
# NBD_ESHUTDOWN (through the plugin's test fault hook, VVM_TEST_PATH_FAULT), against the slowest
# write of the same client with nothing failing.
#
#   bench/cluster-forward.sh [BUILD_DIR] [SIZE_MIB] [REPEAT]     default: build/rel 512 2
#
# Needs nbdkit, nbdcopy, fio, jq and python3-libnbd. Writes a file of SIZE_MIB under $TMPDIR.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build/rel}
size_mib=${2:-512}
repeat=${3:-2}
plugin=$build/nbdkit-plugin/nbdkit-vvm-plugin.so
[[ -f $plugin ]] || {
  echo "bench/cluster-forward.sh: $plugin not found: build it (a release build: meson setup" \
    "build/rel -Dbuildtype=release && ninja -C build/rel)" >&2
  exit 2
}
export PATH=/usr/bin:$PATH

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vvm-bench.XXXXXX")
declare -A pid
cleanup() {
  for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.2", 0)); print(s.getsockname()[1])')
bytes=$((size_mib * 1024 * 1024))
head -c "$bytes" /dev/urandom >"$tmp/src.img"
# Allocated first: the first writer into a sparse file pays for block allocation.
cp "$tmp/src.img" "$tmp/disk.img"
echo "p disk.img 0 ${size_mib}M shared root root 0666" >"$tmp/packtab"
primary="nbd://127.0.0.2:$port/pack/p"
secondary="nbd://127.0.0.3:$port/pack/p"
node="nbd://127.0.0.4:$port/pack/p"

# start NAME ADDRESS ARGS...: nbdkit on ADDRESS:$port, waited for.
start() {
  local name=$1 addr=$2 i
  shift 2
  rm -f "$tmp/$name.pid"
  VVM_TEST_PATH_FAULT=p:$tmp/fault-$name nbdkit -f -i "$addr" -p "$port" -P "$tmp/$name.pid" \
    "$plugin" "$@" 2>"$tmp/$name.log" &
  pid[$name]=$!
  for ((i = 0; i < 200; i++)); do [[ -s $tmp/$name.pid ]] && return 0; sleep 0.05; done
  echo "bench/cluster-forward.sh: $name did not start: $(cat "$tmp/$name.log")" >&2
  exit 1
}
stop() {
  kill "${pid[$1]}" 2>/dev/null || true
  wait "${pid[$1]}" 2>/dev/null || true
  unset "pid[$1]"
}
start_all() {
  rm -f "$tmp"/fault-*
  start primary 127.0.0.2 packtab="$tmp/packtab" holds="$tmp/holds" path-failure=nak
  start secondary 127.0.0.3 packtab="$tmp/packtab" holds="$tmp/holds" path-failure=nak
  start node 127.0.0.4 forward=p="$primary,$secondary"
}
start_all

calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
copy_in() { # MiB/s of nbdcopy -C 4 from a local file into the export
  local t0 t1
  t0=$(date +%s.%N); nbdcopy --connections=4 "$tmp/src.img" "$1"; t1=$(date +%s.%N)
  calc "$size_mib / ($t1 - $t0)"
}
copy_out() { # MiB/s of nbdcopy -C 4 from the export to null:
  local t0 t1
  t0=$(date +%s.%N); nbdcopy --connections=4 "$1" null:; t1=$(date +%s.%N)
  calc "$size_mib / ($t1 - $t0)"
}
fio_iops() { # IOPS of fio's nbd engine, MODE, 4 KiB, iodepth 32
  fio --name=b --ioengine=nbd --uri="$1" --rw="$2" --bs=4k --iodepth=32 --size=${size_mib}M \
    --time_based --runtime=5 --output-format=json 2>/dev/null |
    sed -n '/^{/,$p' | jq -r ".jobs[0].${2#rand} | .iops | floor"
}
fio_randread() { fio_iops "$1" randread; }
fio_randwrite() { fio_iops "$1" randwrite; }
best() { printf '%s\n' "$@" | sort -g | tail -n1; }

printf 'bench/cluster-forward.sh: %s MiB pack, best of %s, %s CPUs, %s\n' "$size_mib" "$repeat" \
  "$(nproc)" "$(date -u +%FT%TZ)"
printf '%-22s %12s %12s %7s %7s\n' case direct forwarded ratio target
declare -A target=([copy_in]=0.85 [copy_out]=0.85 [fio_randread]=0.7 [fio_randwrite]=0.7)
for case in "copy_in MiB/s" "copy_out MiB/s" "fio_randread IOPS" "fio_randwrite IOPS"; do
  read -r fn unit <<<"$case"
  direct="" forwarded=""
  for ((k = 0; k < repeat; k++)); do
    if ((k % 2 == 0)); then
      direct+="$($fn "$primary") "
      forwarded+="$($fn "$node") "
    else
      forwarded+="$($fn "$node") "
      direct+="$($fn "$primary") "
    fi
  done
  d=$(best $direct) f=$(best $forwarded)
  printf '%-22s %12s %12s %7s %7s\n' "$fn ($unit)" "$d" "$f" "$(calc "$f / $d")" \
    "${target[$fn]}"
done

# stall URI SECONDS: the slowest of 4 KiB writes, one at a time with a flush every 64, for
# SECONDS (at most 200000 writes), in ms; prints also how many writes failed.
stall() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import random, sys, time
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
blocks = h.get_size() // 4096
buf = b"s" * 4096
end = time.monotonic() + float(sys.argv[2])
worst = 0.0
errors = 0
n = 0
while time.monotonic() < end and n < 200000:
    t = time.monotonic()
    try:
        h.pwrite(buf, random.randrange(blocks) * 4096)
        if n % 64 == 63:
            h.flush()
    except nbd.Error:
        errors += 1
    worst = max(worst, time.monotonic() - t)
    n += 1
print(f"{worst * 1000:.1f} {errors} {n}")
EOF
}

# stall_when WHAT: the client's slowest write through the node when WHAT happens to the primary
# one second into a three-second run.
stall_when() {
  local what=$1 out
  stall "$node" 3 >"$tmp/stall.out" &
  local spid=$!
  sleep 1
  case $what in
    nothing) ;;
    kill) kill -KILL "${pid[primary]}" ;;
    nak) touch "$tmp/fault-primary" ;;
  esac
  wait "$spid"
  read -r out errors writes <"$tmp/stall.out"
  printf '%-34s %10s ms %8s %8s\n' "$what" "$out" "$errors" "$writes"
}
printf '\n%-34s %13s %8s %8s\n' "client stall through the node" "slowest write" errors writes
stall_when nothing
stall_when kill
stop node; stop secondary; stop primary
start_all
stall_when nak
printf '(targets: a NAK under 200 ms; a kill under the lease TTL + 1 s: a killed process is seen at once)\n'
