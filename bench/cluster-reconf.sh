#!/usr/bin/env bash
# bench/cluster-reconf.sh: the pause of a live reconfiguration, side by side with the idle
# request latency, in one run. One etcd (its data under $TMPDIR) and three nodes (nbdkit with the
# vvm plugin, on 127.0.0.2, .3 and .4, one shared disk); a client (python3-libnbd, one 4 KiB
# write at a time over a ring of 256 blocks, a flush every 16) writes pack a through n1 for a
# few seconds with nothing happening, then again while `vvctl pack move a` swaps its primary
# between n1 and n2 MOVES times, one a second. Prints the client's request latency (p50, p99,
# max) in both runs, each move's time from intent to commit as vvctl measured it (and to the
# last acknowledgement), the slowest request in flight during each move (the pause a client
# sees) beside the slowest outside them, whether the worst pause is under the target (100 ms),
# and checks that every block holds its last acknowledged write.
#
#   bench/cluster-reconf.sh [BUILD_DIR] [MOVES]       default: build/rel 10
#
# Needs nbdkit, etcd, jq and python3-libnbd.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build/rel}
moves=${2:-10}
plugin=$build/nbdkit-plugin/nbdkit-vvm-plugin.so
vvctl=$build/client/vvctl
writer=$here/test/integration/pattern-writer.py
[[ -f $plugin && -x $vvctl ]] || {
  echo "bench/cluster-reconf.sh: $plugin or $vvctl not found: build them (a release build:" \
    "meson setup build/rel -Dbuildtype=release && ninja -C build/rel)" >&2
  exit 2
}
export PATH=/usr/bin:$PATH

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/vvm-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() {
  /usr/bin/python3 -c "import socket; s = socket.socket(); s.bind(('$1', 0)); print(s.getsockname()[1])"
}

client_port=$(free_port 127.0.0.1)
peer_port=$(free_port 127.0.0.1)
etcd --name bench --data-dir "$tmp/etcd" --listen-client-urls "http://127.0.0.1:$client_port" \
  --advertise-client-urls "http://127.0.0.1:$client_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "bench=http://127.0.0.1:$peer_port" --log-level error --logger zap \
  >"$tmp/etcd.log" 2>&1 &
pids+=($!)
endpoint=127.0.0.1:$client_port
for ((i = 0; i < 100; i++)); do
  ETCDCTL_API=3 etcdctl --endpoints="$endpoint" get /ready >/dev/null 2>&1 && break
  sleep 0.1
done
printf '[cluster]\netcd = %s\n' "$endpoint" >"$tmp/admin.conf"
ctl() { "$vvctl" --conf "$tmp/admin.conf" "$@"; }

fallocate -l 256M "$tmp/disk.img"
echo "a /x 0 128M shared root root 0666" >"$tmp/a.tab"
ctl cluster import "$tmp/a.tab" --primary n1 --secondary n2 --disk d0 >/dev/null
declare -A port
for n in 1 2 3; do
  address=127.0.0.$((n + 1))
  port[$n]=$(free_port "$address")
  mkdir -p "$tmp/n$n"
  cat >"$tmp/n$n.conf" <<EOF
[global]
state-dir = $tmp/n$n
[vvmd]
allow-host = 127.0.0.1
[cluster]
etcd = $endpoint
node = n$n
advertise = $address:${port[$n]}
lease-ttl = 10s
disk = d0:$tmp/disk.img
EOF
  nbdkit -f -i "$address" -p "${port[$n]}" -P "$tmp/n$n.pid" "$plugin" conf="$tmp/n$n.conf" \
    2>"$tmp/n$n.log" &
  pids+=($!)
done
for ((i = 0; i < 100; i++)); do
  [[ $(ctl cluster nodes --json | jq length) == 3 ]] && break
  sleep 0.1
done
uri="nbd://127.0.0.2:${port[1]}/pack/a"

seconds=$((moves + 2))
/usr/bin/python3 "$writer" write "$uri" "$seconds" 256 >"$tmp/idle.json"
/usr/bin/python3 "$writer" write "$uri" "$seconds" 256 >"$tmp/moves.json" &
writer_pid=$!
sleep 1
totals=() barriers=()
target=n2
now() { /usr/bin/python3 -c 'import time; print(time.monotonic())'; }
: >"$tmp/windows"
for ((m = 0; m < moves; m++)); do
  before=$(now)
  out=$(ctl pack move a --primary "$target" --json)
  echo "$before $(now)" >>"$tmp/windows"
  totals+=("$(jq -r '.total_us / 1000' <<<"$out")")
  barriers+=("$(jq -r '.barrier_us / 1000' <<<"$out")")
  [[ $target == n2 ]] && target=n1 || target=n2
  sleep 1
done
wait "$writer_pid"
/usr/bin/python3 "$writer" check "nbd://127.0.0.3:${port[2]}/pack/a" "$tmp/moves.json" >/dev/null ||
  { echo "bench/cluster-reconf.sh: acknowledged writes lost during the moves" >&2; exit 1; }

stats() { sort -n | awk '{v[NR] = $1} END {printf "%.1f / %.1f / %.1f", v[int((NR + 1) / 2)], v[1], v[NR]}'; }
row() { printf '%-44s %s\n' "$1" "$2"; }
echo "bench/cluster-reconf.sh $build $moves: three nodes, pack a swapped n1<->n2 $moves times"
row "" "p50 / p99 / max (ms)"
row "client write+flush latency, idle" \
  "$(jq -r '"\(.p50_ms * 1000 | round / 1000) / \(.p99_ms * 1000 | round / 1000) / \(.max_ms * 1000 | round / 1000)"' "$tmp/idle.json")"
row "client write+flush latency, during moves" \
  "$(jq -r '"\(.p50_ms * 1000 | round / 1000) / \(.p99_ms * 1000 | round / 1000) / \(.max_ms * 1000 | round / 1000)"' "$tmp/moves.json")"
row "" "median / min / max (ms)"
row "move: intent to commit (vvctl)" "$(printf '%s\n' "${totals[@]}" | stats)"
row "move: intent to every node's ack" "$(printf '%s\n' "${barriers[@]}" | stats)"
# The pause of each move: the slowest request the client had in flight during the command (the
# writer lists those over 20 ms with their start); the slowest request outside every move too.
read -r pauses outside worst < <(/usr/bin/python3 - "$tmp/moves.json" "$tmp/windows" <<'EOF'
import json, sys
slow = json.load(open(sys.argv[1]))["slow"]
windows = [tuple(map(float, line.split())) for line in open(sys.argv[2])]
def during(t, d, w):
    return t <= w[1] and t + d / 1000 >= w[0]
per = [max([d for t, d in slow if during(t, d, w)], default=0) for w in windows]
rest = max([d for t, d in slow if not any(during(t, d, w) for w in windows)], default=0)
print(",".join("%.1f" % p if p else "<5" for p in per), "%.1f" % rest if rest else "<5",
      "%.1f" % max(per + [5.0]))
EOF
)
row "slowest request during each move (ms)" "$pauses"
row "slowest request outside the moves (ms)" "$outside"
verdict=$(awk -v p="$worst" 'BEGIN { print (p < 100 ? "met" : "NOT met") }')
row "pause a client saw (worst move)" "$worst ms: target < 100 ms $verdict"
echo "every block holds its last acknowledged write ($(jq -r .writes "$tmp/moves.json") writes)"
