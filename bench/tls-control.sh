#!/usr/bin/env bash
# bench/tls-control.sh: what TLS costs vvm's control protocol, side by side in one run. One vvmd
# listens on its Unix socket, a plaintext TCP port and a TLS port (PSK and X.509, alice's
# identity); bench_control_rate measures on each, in turn:
#   req/s   PING requests a second on one connection, one in flight (and their p50, p99 round
#           trip in microseconds)
#   conn/s  a new connection for every PING, as vvctl and libvvclient make one a call: connect,
#           the TLS handshake, one request
# and each ratio to the Unix socket's. The client and vvmd share this machine's CPUs.
#
#   bench/tls-control.sh [BUILD_DIR] [SECONDS_PER_CASE]      default: build-rel, build/run, ...; 3
#
# Needs certtool and psktool (gnutls-bin). Writes under $TMPDIR. A sanitized build measures the
# sanitizers too: a release build is the one to compare.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/bench/build-dir.sh"
find_build bench/tls-control.sh "${1:-}"
secs=${2:-3}
[[ $secs =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/tls-control.sh [BUILD_DIR] [SECONDS_PER_CASE]" >&2; exit 2; }
build=$(cd "$build" && pwd)
vvmd=$build/vvmd/vvmd vvctl=$build/client/vvctl rate=$build/bench/bench_control_rate
for f in "$vvmd" "$vvctl" "$rate"; do
  [[ -x $f ]] || { echo "bench/tls-control.sh: $f not found: build first" >&2; exit 2; }
done

source "$here/bench/run-dir.sh"
bench_dir bench/tls-control.sh tls-control

"$here/test/harness/make-tls.sh" "$tmp/tls" alice >/dev/null
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
tcp=$(free_port) tls=$(free_port)
cat >"$tmp/vvm.conf" <<CONF
[global]
state-dir = $tmp/state
[vvmd]
listen = unix:$tmp/vvmd.sock
listen = 127.0.0.1:$tcp
listen = tls:127.0.0.1:$tls
allow-host = 127.0.0.1
tls-psk-file = $tmp/tls/alice/alice.psk
tls-certificates = $tmp/tls
[media LTO9]
capacity = 18T
[class A]
media = LTO9
[identity alice]
user = 1001
group = 1001
psk-username = alice
client-ca = $tmp/tls/alice/client-ca-cert.pem
CONF
start vvmd "$vvctl" --conf "$tmp/vvm.conf" ping --timeout 1 -- "$vvmd" --conf "$tmp/vvm.conf"

echo "bench/tls-control.sh: $build, $secs s a case, $(nproc) CPUs, GnuTLS $(certtool --version | head -n1 | awk '{print $NF}')"
out=$(
  "$rate" unix "unix:$tmp/vvmd.sock" "$secs"
  "$rate" tcp "127.0.0.1:$tcp" "$secs"
  VVM_TLS_PSK_FILE=$tmp/tls/alice/alice.psk "$rate" tls-psk "tls:127.0.0.1:$tls" "$secs"
  VVM_TLS_CERTIFICATES=$tmp/tls/alice/client "$rate" tls-x509 "tls:127.0.0.1:$tls" "$secs"
)
awk 'BEGIN { printf "%-9s %9s %7s %7s %9s %9s %9s\n", "endpoint", "req/s", "p50us", "p99us", "conn/s", "req/unix", "conn/unix" }
     NR == 1 { r0 = $2; c0 = $5 }
     { printf "%-9s %9d %7d %7d %9d %9.2f %9.2f\n", $1, $2, $3, $4, $5, $2 / r0, $5 / c0 }' <<<"$out"
