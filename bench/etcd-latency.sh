#!/usr/bin/env bash
# bench/etcd-latency.sh: the latency of the cluster's etcd client (client/cluster/, the JSON
# gateway over a kept HTTP/1.1 connection) beside etcdctl's, in one run against one etcd: a put,
# a linearizable get, a put until a watch on another connection sees it, and `etcdctl put` (one
# process each, as a script runs it). Prints p50, p99 and max in microseconds.
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
bench=${build:+$build/bench/bench_etcd_latency}
[[ -n $bench && -x $bench ]] ||
  { echo "bench/etcd-latency.sh: no bench/bench_etcd_latency in a build folder: build first" >&2; exit 2; }
command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
  { echo "bench/etcd-latency.sh: needs etcd and etcdctl (etcd-server, etcd-client)" >&2; exit 2; }

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

echo "etcd $(etcd --version | head -1 | awk '{print $3}') on $client, data on $fs ($tmp); $(nproc) CPUs; build $build"
echo "command: $bench $client $n"
"$bench" "$client" "$n"
