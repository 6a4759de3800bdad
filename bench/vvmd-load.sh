#!/usr/bin/env bash
# bench/vvmd-load.sh: vvmd under load from many control clients, beside the database engine's own
# limit, in one run. A fresh vvmd (its database on a real filesystem under ${TMPDIR:-/var/tmp})
# takes 1, 8 and 64 clients creating VVs as fast as it answers, while READERS clients ask VV_SHOW
# of one VV once a millisecond; for each count it prints creates/s and the show latency (p50, p99,
# max). Then bench_db measures the engine alone on the same filesystem: durable one-record
# commits with 64 writers. The last line is the ratio of vvmd's creates/s at 64 clients to that
# rate: how much of the engine's group commit the daemon passes on to its clients.
#
#   bench/vvmd-load.sh [BUILD_DIR] [SECONDS_PER_CASE] [READERS]
#       default: build-rel (else build/run, else the first build folder with vvmd), 5, 2
#
# A release build is the one to measure (meson setup build-rel -Dbuildtype=release). Not a test:
# the machine is noisy; compare the ratio, and the show latencies with and without load.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/bench/build-dir.sh"
find_build bench/vvmd-load.sh "${1:-}"
secs=${2:-5}
readers=${3:-2}
[[ $secs =~ ^[1-9][0-9]*$ && $readers =~ ^[0-9]+$ ]] ||
  { echo "usage: bench/vvmd-load.sh [BUILD_DIR] [SECONDS_PER_CASE] [READERS]" >&2; exit 2; }
build=$(cd "$build" && pwd)
vvmd=$build/vvmd/vvmd vvctl=$build/client/vvctl
load=$build/bench/bench_vvmd_load bench_db=$build/bench/bench_db
for f in "$vvmd" "$vvctl" "$load" "$bench_db"; do
  [[ -x $f ]] || { echo "bench/vvmd-load.sh: $f not found: build first (bench_db needs libsqlite3-dev)" >&2; exit 2; }
done

source "$here/bench/run-dir.sh"
bench_dir bench/vvmd-load.sh load --disk

cat >"$tmp/vvm.conf" <<CONF
[global]
state-dir = $tmp/state
[vvmd]
listen = unix:$tmp/vvmd.sock
[media LTO9]
capacity = 18T
[class A]
media = LTO9
CONF
start vvmd "$vvctl" --conf "$tmp/vvm.conf" ping --timeout 1 -- "$vvmd" --conf "$tmp/vvm.conf"

echo "bench/vvmd-load.sh: $build, $secs s a case, $readers show clients, $(nproc) CPUs, $fstype at $tmp"
echo "== vvmd: $load unix:$tmp/vvmd.sock $secs $readers 1 8 64"
out=$("$load" "unix:$tmp/vvmd.sock" "$secs" "$readers" 1 8 64)
echo "$out"
stop_all

echo "== the engine alone: $bench_db 100000 $secs vvm (in $tmp/engine)"
mkdir -p "$tmp/engine"
engine=$(cd "$tmp/engine" && TMPDIR=$tmp/engine "$bench_db" 100000 "$secs" vvm)
echo "$engine"
c64=$(awk '$1 == 64 { print $2 }' <<<"$out")
e64=$(awk '/durable update, 64 writers/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/ && $i + 0 != 64) { print $i; exit } }' <<<"$engine")
if [[ -n $c64 && -n $e64 ]]; then
  awk -v c="$c64" -v e="$e64" 'BEGIN { printf "ratio: vvmd creates/s at 64 clients / engine commits/s with 64 writers = %.1f / %.1f = %.2f (target >= 0.8)\n", c, e, c / e }'
else
  echo "bench/vvmd-load.sh: could not read the figures (creates '$c64', engine '$e64')" >&2
  exit 1
fi
