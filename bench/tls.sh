#!/usr/bin/env bash
# bench/tls.sh: what TLS costs on one export, side by side in one run. The same pack, from the
# same backing file, through three nbdkit listeners of the vvm plugin on 127.0.0.1:
#   plain   no TLS (the reference: ratios are to it)
#   psk     --tls=require --tls-psk, tls-identity=alice
#   x509    --tls=require --tls-certificates --tls-verify-peer, tls-identity=alice
#   psk-aes the psk listener with CHACHA20-POLY1305 disabled in GnuTLS for nbdkit
#           (GNUTLS_SYSTEM_PRIORITY_FILE, [overrides] tls-disabled-cipher), so that PSK
#           connections take AES-GCM as X.509 ones do
# and, as the reference for what TLS costs nbdkit and libnbd themselves, nbdkit's file plugin on
# the same file, plain (file) and with the same PSK (file-psk).
# Cases: nbdcopy reading the whole pack to null: (sequential, MiB/s, 4 connections) and fio's nbd
# engine 4 KiB random reads at iodepth 32 (IOPS). fio cannot use PSK (its nbd engine refuses a
# URI that names a key file), so its TLS row is X.509 only, through libnbd's default certificate
# folder ($HOME/.pki/libnbd) as user nobody. Each case runs on every listener in turn, REPEAT
# times; the table shows the best of each and its ratio to its plaintext twin (plain, file). The target is 0.7 or more for
# nbdcopy with AES-NI. The client and nbdkit share this machine's CPUs: TLS's cost lands on both.
#
#   bench/tls.sh [BUILD_DIR] [SIZE_MIB] [REPEAT]      default: build/run 512 3
#
# Needs nbdkit, nbdcopy, fio, certtool, psktool, setpriv. Writes under $TMPDIR. A sanitized build
# (build/test) needs VVM_NBDKIT_PRELOAD as the tests set it (test/meson.build), and measures the
# sanitizers too.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build/run}
size_mib=${2:-512}
repeat=${3:-3}
plugin=$build/nbdkit-plugin/nbdkit-vvm-plugin.so
[[ -f $plugin ]] || { echo "bench/tls.sh: $plugin not found: build first (./vvm-dev run builds build/run)" >&2; exit 2; }
export PATH=/usr/bin:$PATH

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vvm-bench-tls.XXXXXX")
chmod 755 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

"$here/test/harness/make-tls.sh" "$tmp/pki" alice
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$tmp/disk.img" # data, not holes: real reads
echo "p disk.img 0 ${size_mib}M shared root root 0644" >"$tmp/packtab"
cat >"$tmp/vvm.conf" <<EOF
[global]
state-dir = $tmp/state
[vvmd]
allow-host = 127.0.0.1
[plugin]
packtab = $tmp/packtab
[identity alice]
user = 65534
group = 65534
psk-username = alice
client-ca = $tmp/pki/alice/client-ca-cert.pem
EOF
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
declare -A port
for l in plain psk x509 psk-aes file file-psk; do port[$l]=$(free_port); done

serve() { # serve LISTENER NBDKIT_OPTIONS...
  local l=$1
  shift
  env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} \
    nbdkit -f -i 127.0.0.1 -p "${port[$l]}" "$@" "$plugin" conf="$tmp/vvm.conf" \
    $([[ $l == plain ]] || echo tls-identity=alice) 2>"$tmp/$l.log" &
  pids+=($!)
}
serve plain
serve psk --tls=require --tls-psk="$tmp/pki/alice/alice.psk"
serve x509 --tls=require --tls-certificates="$tmp/pki/alice/nbdkit" --tls-verify-peer
GNUTLS_SYSTEM_PRIORITY_FILE=$tmp/pki/gnutls-aes.conf serve psk-aes --tls=require \
  --tls-psk="$tmp/pki/alice/alice.psk"
nbdkit -f -i 127.0.0.1 -p "${port[file]}" -r file "$tmp/disk.img" 2>"$tmp/file.log" &
pids+=($!)
nbdkit -f -i 127.0.0.1 -p "${port[file-psk]}" -r --tls=require --tls-psk="$tmp/pki/alice/alice.psk" \
  file "$tmp/disk.img" 2>"$tmp/file-psk.log" &
pids+=($!)
declare -A uri=(
  [plain]="nbd://127.0.0.1:${port[plain]}/pack/p@ro"
  [psk]="nbds://alice@127.0.0.1:${port[psk]}/pack/p@ro?tls-psk-file=$tmp/pki/alice/alice.psk"
  [x509]="nbds://127.0.0.1:${port[x509]}/pack/p@ro?tls-certificates=$tmp/pki/alice/client"
  [psk-aes]="nbds://alice@127.0.0.1:${port[psk-aes]}/pack/p@ro?tls-psk-file=$tmp/pki/alice/alice.psk"
  [file]="nbd://127.0.0.1:${port[file]}/"
  [file-psk]="nbds://alice@127.0.0.1:${port[file-psk]}/?tls-psk-file=$tmp/pki/alice/alice.psk")
listeners=(plain psk x509 psk-aes file file-psk)
declare -A twin=([plain]=plain [psk]=plain [x509]=plain [psk-aes]=plain [file]=file [file-psk]=file)
for l in "${listeners[@]}"; do
  for ((i = 0; i < 100; i++)); do nbdinfo --size "${uri[$l]}" >/dev/null 2>&1 && break; sleep 0.1; done
  nbdinfo --size "${uri[$l]}" >/dev/null || { echo "bench/tls.sh: $l did not start: $(cat "$tmp/$l.log")" >&2; exit 1; }
done
# fio: as nobody, with alice's client folder as libnbd's default.
mkdir -p "$tmp/home/.pki"
cp -r "$tmp/pki/alice/client" "$tmp/home/.pki/libnbd"
chown -R 65534:65534 "$tmp/home"

# nbdcopy_mibs URI: MiB/s of one whole-pack read to null:.
nbdcopy_mibs() {
  local start end
  start=$(date +%s.%N)
  nbdcopy -C 4 --no-extents "$1" null:
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v m="$size_mib" 'BEGIN { printf "%.0f\n", m / (e - s) }'
}
# fio_iops URI: 4 KiB random-read IOPS at iodepth 32 for 8 s.
fio_iops() {
  HOME=$tmp/home setpriv --reuid 65534 --regid 65534 --clear-groups \
    fio --name=r --ioengine=nbd --uri="$1" --rw=randread --bs=4k --iodepth=32 \
    --size="${size_mib}M" --runtime=8 --time_based --output-format=json \
    --output="$tmp/home/fio.json" >"$tmp/fio.out" 2>&1 || { echo "bench/tls.sh: fio on $1: $(cat "$tmp/fio.out")" >&2; exit 1; }
  /usr/bin/python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["jobs"][0]["read"]["iops"]))' "$tmp/home/fio.json"
}
best() { sort -n | tail -n1; }

declare -A copy fio
for l in "${listeners[@]}"; do
  copy[$l]=$(for ((r = 0; r < repeat; r++)); do nbdcopy_mibs "${uri[$l]}"; done | best)
done
fio_uri_plain="nbd://127.0.0.1:${port[plain]}/pack/p@ro"
fio_uri_x509="nbds://127.0.0.1:${port[x509]}/pack/p@ro"
fio[plain]=$(for ((r = 0; r < repeat; r++)); do fio_iops "$fio_uri_plain"; done | best)
fio[x509]=$(for ((r = 0; r < repeat; r++)); do fio_iops "$fio_uri_x509"; done | best)
fio[file]=$(for ((r = 0; r < repeat; r++)); do fio_iops "${uri[file]}"; done | best)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

aesni=$(grep -q -m1 -w aes /proc/cpuinfo && echo yes || echo no)
echo "bench/tls.sh: pack of ${size_mib} MiB, best of $repeat, $(nproc) CPUs, AES-NI: $aesni"
printf '%-8s %22s %8s %26s %8s\n' listener "nbdcopy read (MiB/s)" ratio "fio 4k randread (IOPS)" ratio
for l in "${listeners[@]}"; do
  t=${twin[$l]}
  printf '%-8s %22s %8s %26s %8s\n' "$l" "${copy[$l]}" "$(ratio "${copy[$l]}" "${copy[$t]}")" \
    "${fio[$l]:-n/a}" "$([[ -n ${fio[$l]:-} ]] && ratio "${fio[$l]}" "${fio[$t]}" || echo -)"
done
