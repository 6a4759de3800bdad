#!/usr/bin/env bash
# bench/etcd-latency.sh: the latency of etcd's two routes for a C++ client, side by side in one run
# against one etcd: the JSON gateway over a kept HTTP/1.1 connection (vvm's client, client/cluster/,
# bench_etcd_latency) and the gRPC API over a kept channel (grpc++ with etcd's own .proto files,
# bench_etcd_latency_grpc, built when meson's grpc_bench option finds grpc++), each timing a put, a
# linearizable get, and a put until a watch on another connection sees it; and `etcdctl put` (one
# process each, as a script runs it). The two benches take turns in ROUNDS rounds (default 3, each
# of N/ROUNDS operations a row), so that the machine's other load falls on both alike. Prints one
# table (p50, p99, max in microseconds), then which route is faster and by what ratio.
#
#   bench/etcd-latency.sh [BUILD_DIR] [N]
#       default: build-rel, else build/run, else the first build folder with the benchmark; 300
#
# etcd (Debian's etcd-server) runs on 127.0.0.1 with its data under ${TMPDIR:-/var/tmp}: every put
# is an fdatasync of its WAL there, which is most of a put's time, so tmpfs is refused. Not a
# test: compare the rows of one run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-}
if [[ -z $build ]]; then
  for b in "$here"/build-rel "$here"/build/run "$here"/build*/ "$here"/build/*/; do
    [[ -x $b/bench/bench_etcd_latency ]] && { build=${b%/}; break; }
  done
fi
n=${2:-300}
rounds=${ROUNDS:-3}
bench=${build:+$build/bench/bench_etcd_latency}
[[ -n $bench && -x $bench ]] ||
  { echo "bench/etcd-latency.sh: no bench/bench_etcd_latency in a build folder: build first" >&2; exit 2; }
command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
  { echo "bench/etcd-latency.sh: needs etcd and etcdctl (etcd-server, etcd-client)" >&2; exit 2; }
grpc_bench=$build/bench/bench_etcd_latency_grpc
if [[ ! -x $grpc_bench ]]; then
  grpc_bench=
  cat >&2 <<EOF
bench/etcd-latency.sh: $build has no bench/bench_etcd_latency_grpc: the gRPC side is NOT measured.
  To build it: apt-get install libgrpc++-dev libprotobuf-dev protobuf-compiler
  protobuf-compiler-grpc golang-etcd-server-dev; meson configure $build -Dgrpc_bench=enabled;
  ninja -C $build bench/bench_etcd_latency_grpc (bench/README.md, etcd-latency.sh).
EOF
fi

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/vvm-bench-etcd.XXXXXX")
etcd_pid=
cleanup() {
  if [[ -n $etcd_pid ]]; then kill -TERM "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fs=$(stat -f -c %T "$tmp")
[[ $fs != tmpfs ]] || { echo "bench/etcd-latency.sh: $tmp is on tmpfs: set TMPDIR to a real disk" >&2; exit 2; }

port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
client=127.0.0.1:$(port)
peer=127.0.0.1:$(port)
etcd --name bench --data-dir "$tmp/etcd" --listen-client-urls "http://$client" \
  --advertise-client-urls "http://$client" --listen-peer-urls "http://$peer" \
  --initial-advertise-peer-urls "http://$peer" --initial-cluster "bench=http://$peer" \
  --log-level warn --logger zap >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!
for ((i = 0; i < 100; i++)); do
  ETCDCTL_API=3 etcdctl --endpoints="$client" get /ready >/dev/null 2>&1 && break
  sleep 0.1
done
((i < 100)) || { echo "bench/etcd-latency.sh: etcd did not start: $(tail -5 "$tmp/etcd.log")" >&2; exit 1; }

each=$(((n + rounds - 1) / rounds))
echo "etcd $(etcd --version | head -1 | awk '{print $3}') on $client, data on $fs ($tmp); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); build $build"
echo "commands ($rounds rounds, taking turns): $bench $client $each --raw${grpc_bench:+; $grpc_bench $client $each --raw}"
for ((r = 0; r < rounds; r++)); do
  # Who goes first alternates, so that neither always follows the other's writes.
  if ((r % 2 == 0)) || [[ -z $grpc_bench ]]; then
    "$bench" "$client" "$each" --raw >>"$tmp/samples"
    [[ -z $grpc_bench ]] || "$grpc_bench" "$client" "$each" --raw >>"$tmp/samples"
  else
    "$grpc_bench" "$client" "$each" --raw >>"$tmp/samples"
    "$bench" "$client" "$each" --raw >>"$tmp/samples"
  fi
done

/usr/bin/python3 - "$tmp/samples" "${grpc_bench:+measured}" <<'PY'
import sys

samples = {}
for line in open(sys.argv[1]):
    route, op, us = line.split()
    samples.setdefault((route, op), []).append(float(us))
rows = [("json", "put", "JSON gateway: put (vvm client, kept connection)"),
        ("grpc", "put", "gRPC: put (grpc++, kept channel)"),
        ("json", "get", "JSON gateway: get (linearizable)"),
        ("grpc", "get", "gRPC: get (linearizable)"),
        ("json", "watch", "JSON gateway: put -> watch event"),
        ("grpc", "watch", "gRPC: put -> watch event"),
        ("etcdctl", "put", "etcdctl put (gRPC, a process each)")]


def at(v, q):  # as bench/latency_rows.h
    return v[min(len(v) - 1, int(q * len(v)))]


stats = {}
print(f"{'operation (microseconds)':<48} {'n':>6} {'p50':>8} {'p99':>8} {'max':>8}")
for route, op, label in rows:
    v = sorted(samples.get((route, op), []))
    if v:
        stats[(route, op)] = (at(v, 0.5), at(v, 0.99))
        print(f"{label:<48} {len(v):>6} {at(v, 0.5):>8.0f} {at(v, 0.99):>8.0f} {v[-1]:>8.0f}")
if not sys.argv[2]:
    print("gRPC: not measured (bench_etcd_latency_grpc is not built: see the message above)")
    sys.exit(0)
print()
ratios = []
for op, what in (("put", "put"), ("get", "linearizable get"), ("watch", "put -> watch event")):
    j, g = stats[("json", op)], stats[("grpc", op)]
    ratios.append(j[0] / g[0])
    faster, x = ("gRPC", j[0] / g[0]) if j[0] >= g[0] else ("the JSON gateway", g[0] / j[0])
    print(f"{what}: {faster} is faster, {x:.2f}x at p50 ({g[0]:.0f} us over gRPC, {j[0]:.0f} us"
          f" over the gateway); gateway/gRPC at p99 {j[1] / g[1]:.2f}")
lo, hi = min(ratios), max(ratios)
if lo >= 1:
    print(f"faster: gRPC, {lo:.2f}x to {hi:.2f}x at p50 (the gateway's time over gRPC's)")
elif hi <= 1:
    print(f"faster: the JSON gateway, {1 / hi:.2f}x to {1 / lo:.2f}x at p50 (gRPC's time over the gateway's)")
else:
    print(f"faster: neither throughout: the gateway's time over gRPC's at p50 runs from {lo:.2f} to {hi:.2f}")
PY
