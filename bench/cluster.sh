#!/usr/bin/env bash
# bench/cluster.sh: the cluster's figures, side by side in one run on one real cluster: one etcd
# and three nodes (the test harness's start_three_nodes: nbdkit with the vvm plugin, each with its
# own vvm.conf [cluster], on 127.0.0.2 (n1, which forwards pack a), .3 (n2, pack a's primary)
# and .4 (n3, its secondary), one shared disk file; every hop is TCP):
#   1. throughput: the same client through n1 (forwarded) and on n2 directly: nbdcopy -C 4
#      writing and reading the whole pack (MiB/s), fio's nbd engine 4 KiB random read and write
#      at iodepth 32 (IOPS); REPEAT times, the sides taking turns to go first; the best of each,
#      the ratio forwarded/direct and its target (0.85 sequential, 0.7 random);
#   2. the pause of a reconfiguration with three nodes: a client (test/integration/
#      pattern-writer.py: one 4 KiB write at a time over 256 blocks, a flush every 16) writes
#      through n1 while `vvctl pack move a` swaps the primary between n2 and n3 MOVES times, one
#      a second: each move's time from intent to commit, and the slowest request the client had
#      in flight during each move (the pause it sees) beside the slowest outside them (a flush
#      behind other disk traffic); target under 100 ms, for the median move and the worst; every
#      block is then checked against its last acknowledged write;
#   3. the stall a client of n1 sees (its slowest 4 KiB write, one at a time, a flush every 64,
#      for 3 s + TTL, the event 1 s in) when nothing fails, when the primary answers the NAK (its
#      path fails: the plugin's test fault hook VVM_TEST_PATH_FAULT; target under 200 ms), when
#      it is SIGKILLed, and when it is SIGSTOPped, where only its lease running out takes it away
#      (target for both: under the lease's TTL + 1 s).
#
#   bench/cluster.sh [BUILD_DIR] [SIZE_MIB] [REPEAT] [MOVES] [TTL]
#                                              default: build/rel 256 2 10 3
#
# Build it as a release build: meson setup build/rel . -Dbuildtype=release && ninja -C build/rel
# nbdkit-plugin/nbdkit-vvm-plugin.so client/vvctl. Needs etcd, nbdkit, nbdcopy, fio, jq and
# python3-libnbd; its files live under ${TMPDIR:-/tmp} and go at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export VVM_SOURCE_DIR=$here
export VVM_BUILD_DIR=${1:-$here/build/rel}
[[ ! -d $VVM_BUILD_DIR ]] || VVM_BUILD_DIR=$(cd "$VVM_BUILD_DIR" && pwd)
size_mib=${2:-256}
repeat=${3:-2}
moves=${4:-10}
ttl=${5:-3}
[[ -f $VVM_BUILD_DIR/nbdkit-plugin/nbdkit-vvm-plugin.so && -x $VVM_BUILD_DIR/client/vvctl ]] || {
  echo "bench/cluster.sh: no plugin or vvctl in $VVM_BUILD_DIR: build them (meson setup build/rel" \
    ". -Dbuildtype=release && ninja -C build/rel nbdkit-plugin/nbdkit-vvm-plugin.so client/vvctl)" >&2
  exit 2
}
# The harness's nbdkits log their debug lines (the bench waits for some) but not one a request.
export VVM_NBDKIT_QUIET_DATAPATH=1
source "$here/test/harness/functions.sh"
make_tmpdir
writer=$here/test/integration/pattern-writer.py

pack_mib=$size_mib
start_three_nodes VVM_TEST_PATH_FAULT="a:$tmpdir/fault"
for ((i = 0; i < 100; i++)); do
  [[ $(ctl cluster nodes --json | jq 'map(select(.live)) | length') == 3 ]] && break
  sleep 0.1
done
direct=nbd://127.0.0.3:$port/pack/a # n2, the primary, from its own disk
forwarded=$n1
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$tmpdir/src.img"
# Uncounted: the first writer into the sparse disk file pays for block allocation.
nbdcopy --connections=4 "$tmpdir/src.img" "$direct"

calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
met() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { print ((op == "<" ? v < t : v >= t) ? "met" : "NOT met") }'; }

# --- 1. throughput ---
copy_in() { # MiB/s of nbdcopy -C 4 from a local file into the export
  local t0 t1
  t0=$(date +%s.%N)
  nbdcopy --connections=4 "$tmpdir/src.img" "$1"
  t1=$(date +%s.%N)
  calc "$size_mib / ($t1 - $t0)"
}
copy_out() { # MiB/s of nbdcopy -C 4 from the export to null:
  local t0 t1
  t0=$(date +%s.%N)
  nbdcopy --connections=4 "$1" null:
  t1=$(date +%s.%N)
  calc "$size_mib / ($t1 - $t0)"
}
fio_iops() { # IOPS of fio's nbd engine, MODE, 4 KiB, iodepth 32, 5 s
  fio --name=b --ioengine=nbd --uri="$1" --rw="$2" --bs=4k --iodepth=32 --size="${size_mib}M" \
    --time_based --runtime=5 --output-format=json 2>/dev/null |
    sed -n '/^{/,$p' | jq -r ".jobs[0].${2#rand} | .iops | floor"
}
fio_randread() { fio_iops "$1" randread; }
fio_randwrite() { fio_iops "$1" randwrite; }
best() { printf '%s\n' "$@" | sort -g | tail -n1; }

printf 'bench/cluster.sh %s: %s MiB pack, best of %s, %s moves, lease TTL %ss, %s CPUs, %s\n' \
  "$VVM_BUILD_DIR" "$size_mib" "$repeat" "$moves" "$ttl" "$(nproc)" "$(date -u +%FT%TZ)"
printf '\n%-30s %12s %12s %7s %7s\n' "1. throughput" "n2 direct" "through n1" ratio target
declare -A target=([copy_in]=0.85 [copy_out]=0.85 [fio_randread]=0.7 [fio_randwrite]=0.7)
declare -A label=([copy_in]="nbdcopy in (MiB/s)" [copy_out]="nbdcopy out (MiB/s)"
  [fio_randread]="fio randread 4k qd32 (IOPS)" [fio_randwrite]="fio randwrite 4k qd32 (IOPS)")
for fn in copy_in copy_out fio_randread fio_randwrite; do
  d="" f=""
  for ((k = 0; k < repeat; k++)); do
    if ((k % 2 == 0)); then
      d+="$($fn "$direct") "
      f+="$($fn "$forwarded") "
    else
      f+="$($fn "$forwarded") "
      d+="$($fn "$direct") "
    fi
  done
  d=$(best $d) f=$(best $f)
  ratio=$(calc "$f / $d")
  printf '%-30s %12s %12s %7s %7s %s\n' "${label[$fn]}" "$d" "$f" "$ratio" "${target[$fn]}" \
    "$(met "$ratio" "${target[$fn]}" ">=")"
done

# --- 2. the pause of a reconfiguration ---
((moves % 2 == 0)) || moves=$((moves + 1)) # pack a ends on n2, for the stalls
# Uncounted: what part 1 left in the page cache goes to disk now, not in the first move's flush
# of the old servers.
sync "$disk"
/usr/bin/python3 "$writer" write "$forwarded" $((moves + 2)) 256 >"$tmpdir/moves.json" &
writer_pid=$!
cleanup_fn kill_quietly "$writer_pid"
sleep 1
totals=() barriers=()
now() { /usr/bin/python3 -c 'import time; print(time.monotonic())'; }
: >"$tmpdir/windows"
for ((m = 0; m < moves; m++)); do
  ((m % 2 == 0)) && to=n3 || to=n2
  before=$(now)
  out=$(ctl pack move a --primary "$to" --json) || die "pack move a --primary $to: $out"
  echo "$before $(now)" >>"$tmpdir/windows"
  totals+=("$(jq -r '.total_us / 1000' <<<"$out")")
  barriers+=("$(jq -r '.barrier_us / 1000' <<<"$out")")
  sleep 1
done
wait "$writer_pid" || die "the writer failed during the moves: $(cat "$tmpdir/moves.json")"
/usr/bin/python3 "$writer" check "$direct" "$tmpdir/moves.json" >/dev/null ||
  die "acknowledged writes lost during the moves"
stats() { sort -n | awk '{v[NR] = $1} END {printf "%.1f / %.1f / %.1f", v[int((NR + 1) / 2)], v[1], v[NR]}'; }
# The pause of each move: the slowest request the client had in flight during the command (the
# writer lists those over 20 ms with their start), and the slowest outside every move.
read -r pauses outside median worst < <(/usr/bin/python3 - "$tmpdir/moves.json" "$tmpdir/windows" <<'EOF'
import json, sys
slow = json.load(open(sys.argv[1]))["slow"]
windows = [tuple(map(float, line.split())) for line in open(sys.argv[2])]
def during(t, d, w):
    return t <= w[1] and t + d / 1000 >= w[0]
per = [max([d for t, d in slow if during(t, d, w)], default=0) for w in windows]
rest = max([d for t, d in slow if not any(during(t, d, w) for w in windows)], default=0)
print(",".join("%.0f" % p if p else "<5" for p in per), "%.1f" % rest if rest else "<5",
      "%.1f" % max(sorted(per)[(len(per) - 1) // 2], 5.0), "%.1f" % max(per + [5.0]))
EOF
)
printf '\n%-44s %s\n' "2. reconfiguration: $moves moves of a, n2<->n3" "median / min / max (ms)"
printf '  %-42s %s\n' "intent to commit (vvctl)" "$(printf '%s\n' "${totals[@]}" | stats)"
printf '  %-42s %s\n' "intent to every node's ack" "$(printf '%s\n' "${barriers[@]}" | stats)"
printf '  %-42s %s\n' "slowest client request during each move" "$pauses"
printf '  %-42s %s\n' "slowest client request outside the moves" "$outside"
printf '  %-42s %s\n' "pause a client saw: median move, worst" \
  "$median ms, $worst ms: target < 100 ms $(met "$median" 100 "<") (median); worst $(met "$worst" 100 "<")"
printf '  %-42s %s\n' "" "($(jq -r .writes "$tmpdir/moves.json") writes, none lost; a request under 5 ms counts 5)"

# --- 3. the stall a client of n1 sees when the primary fails ---
# stall SECONDS: the slowest of n1's client's 4 KiB writes, one at a time with a flush every 64,
# for SECONDS, in ms, how many failed, and how many there were.
stall() {
  /usr/bin/python3 - "$forwarded" "$1" <<'EOF'
import random, sys, time
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
blocks = h.get_size() // 4096
buf = b"s" * 4096
end = time.monotonic() + float(sys.argv[2])
worst = 0.0
errors = n = 0
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
# stall_when CASE TARGET_MS ACTION: ACTION 1 s into the client's run; prints its slowest write.
stall_when() {
  local out errors writes
  stall $((3 + ttl)) >"$tmpdir/stall.out" &
  local spid=$!
  sleep 1
  eval "$3"
  wait "$spid"
  read -r out errors writes <"$tmpdir/stall.out"
  printf '  %-30s %10s ms %7s %8s   %s\n' "$1" "$out" "$errors" "$writes" \
    "${2:+< $2 ms $(met "$out" "${2:-0}" "<")}"
}
printf '\n%-32s %13s %7s %8s   %s\n' "3. stall of n1's client" "slowest write" errors writes target
stall_when "nothing fails" "" ":"
stall_when "primary answers the NAK" 200 "touch $tmpdir/fault"
rm "$tmpdir/fault"
# n1 has closed the idle forwarder of the last client by now: the next one opens on n2 once up.
wait_log "${node_log[n2]}" "pack/a: the path to disk 'd0' works again" 30
stall_when "primary SIGKILLed" $((ttl * 1000 + 1000)) "kill_daemon ${node_pid[n2]}"
# n2 back (once its old key has gone with its lease), then paused.
wait_log "${node_log[n1]}" "node n2 has left the cluster" $((ttl + 10))
start_node 3 n2
wait_log "${node_log[n1]}" "node n2 is in the cluster" 30
cleanup_fn kill -CONT "${node_pid[n2]}"
stall_when "primary SIGSTOPped" $((ttl * 1000 + 1000)) "kill -STOP ${node_pid[n2]}"
