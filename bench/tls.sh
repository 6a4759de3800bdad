#!/usr/bin/env bash
# bench/tls.sh: what TLS costs on one export, side by side in one run. The same pack, from the
# same backing file, through four nbdkit listeners of the vvm plugin on 127.0.0.1:
#   plain        no TLS (the reference: ratios are to it)
#   psk          --tls=require --tls-psk, tls-identity=alice, GnuTLS as it comes: PSK sessions
#                take CHACHA20-POLY1305
#   x509         --tls=require --tls-certificates --tls-verify-peer, tls-identity=alice
#                (AES-256-GCM)
#   psk-aes      the psk listener with conf/gnutls-aes.conf as GNUTLS_SYSTEM_PRIORITY_FILE, as
#                ./vvm-dev run (with AES-NI) and vvm-nbdkit-tls@.service start it: AES-128-GCM
# and, as the reference for what TLS costs nbdkit and libnbd themselves, nbdkit's file plugin on
# the same file: plain (file), with the same PSK (file-psk) and with it and conf/gnutls-aes.conf
# (file-psk-aes). What vvm adds to TLS's cost: psk-aes's CPU a GiB above plain's, against
# file-psk-aes's above file's (a line under the table).
# Cases: nbdcopy -C 4 reading the whole pack to null: (sequential, MiB/s), and fio's nbd engine
# doing 4 KiB random reads at iodepth 32 for 8 s (IOPS). fio cannot use PSK (its nbd engine
# refuses a URI that names a key file), so its TLS row is X.509 only, through libnbd's default
# certificate folder ($HOME/.pki/libnbd) as user nobody. The listeners take turns, REPEAT rounds;
# the table shows the best throughput of each and its ratio to its plaintext twin (plain, file).
# Beside it, the CPU nbdcopy's read took, client and nbdkit together, in seconds a GiB (the
# least of the rounds), and nbdkit's alone (what a server whose clients are elsewhere pays): on a
# loaded machine the throughputs swing with the others' load, the CPU a GiB much less; where the
# CPU is what limits (client and server on one host), the plaintext's CPU over TLS's ("cpu
# ratio") is the throughput ratio the CPU allows.
#
# Target: nbdcopy over TLS at 0.7 of plaintext or more, with AES-NI, for the TLS that vvm sets up
# (x509 and psk-aes); the last lines say whether each met it.
#
#   bench/tls.sh [BUILD_DIR] [SIZE_MIB] [REPEAT]      default: build/run 512 3
#   e.g. meson setup build/rel . -Dbuildtype=release && ninja -C build/rel &&
#        bench/tls.sh build/rel 512 3
#
# Needs nbdkit, nbdcopy, fio, certtool, psktool, setpriv (run as root: fio runs as nobody).
# Writes under $TMPDIR. A sanitized build (build/test) needs VVM_NBDKIT_PRELOAD as the tests set
# it (test/meson.build), and measures the sanitizers too: a release build is the one to compare.
# The client and nbdkit share this machine's CPUs: TLS's cost lands on both.
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
aes_conf=$here/conf/gnutls-aes.conf
listeners=(plain psk x509 psk-aes file file-psk file-psk-aes)
declare -A port spid
for l in "${listeners[@]}"; do port[$l]=$(free_port); done

serve() { # serve LISTENER NBDKIT_OPTIONS...
  local l=$1
  shift
  env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} \
    nbdkit -f -i 127.0.0.1 -p "${port[$l]}" "$@" "$plugin" conf="$tmp/vvm.conf" \
    $([[ $l == plain ]] || echo tls-identity=alice) 2>"$tmp/$l.log" &
  pids+=($!)
  spid[$l]=$!
}
serve_file() { # serve_file LISTENER NBDKIT_OPTIONS...
  local l=$1
  shift
  nbdkit -f -i 127.0.0.1 -p "${port[$l]}" -r "$@" file "$tmp/disk.img" 2>"$tmp/$l.log" &
  pids+=($!)
  spid[$l]=$!
}
serve plain
serve psk --tls=require --tls-psk="$tmp/pki/alice/alice.psk"
serve x509 --tls=require --tls-certificates="$tmp/pki/alice/nbdkit" --tls-verify-peer
GNUTLS_SYSTEM_PRIORITY_FILE=$aes_conf serve psk-aes --tls=require --tls-psk="$tmp/pki/alice/alice.psk"
serve_file file
serve_file file-psk --tls=require --tls-psk="$tmp/pki/alice/alice.psk"
GNUTLS_SYSTEM_PRIORITY_FILE=$aes_conf serve_file file-psk-aes --tls=require \
  --tls-psk="$tmp/pki/alice/alice.psk"
declare -A uri=(
  [plain]="nbd://127.0.0.1:${port[plain]}/pack/p@ro"
  [psk]="nbds://alice@127.0.0.1:${port[psk]}/pack/p@ro?tls-psk-file=$tmp/pki/alice/alice.psk"
  [x509]="nbds://127.0.0.1:${port[x509]}/pack/p@ro?tls-certificates=$tmp/pki/alice/client"
  [psk-aes]="nbds://alice@127.0.0.1:${port[psk-aes]}/pack/p@ro?tls-psk-file=$tmp/pki/alice/alice.psk"
  [file]="nbd://127.0.0.1:${port[file]}/"
  [file-psk]="nbds://alice@127.0.0.1:${port[file-psk]}/?tls-psk-file=$tmp/pki/alice/alice.psk"
  [file-psk-aes]="nbds://alice@127.0.0.1:${port[file-psk-aes]}/?tls-psk-file=$tmp/pki/alice/alice.psk")
declare -A twin=([plain]=plain [psk]=plain [x509]=plain [psk-aes]=plain [file]=file [file-psk]=file
  [file-psk-aes]=file)
for l in "${listeners[@]}"; do
  for ((i = 0; i < 100; i++)); do nbdinfo --size "${uri[$l]}" >/dev/null 2>&1 && break; sleep 0.1; done
  nbdinfo --size "${uri[$l]}" >/dev/null || { echo "bench/tls.sh: $l did not start: $(cat "$tmp/$l.log")" >&2; exit 1; }
done
# fio: as nobody, with alice's client folder as libnbd's default.
mkdir -p "$tmp/home/.pki"
cp -r "$tmp/pki/alice/client" "$tmp/home/.pki/libnbd"
chown -R 65534:65534 "$tmp/home"

# cpu_ticks PID: the user and system CPU time PID has taken, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# nbdcopy_run LISTENER: one whole-pack read to null:, "MIB_S CPU_S_PER_GIB NBDKIT_CPU_S_PER_GIB":
# its throughput, the CPU nbdcopy and the listener's nbdkit took together (nbdcopy's: the
# cutime/cstime of this subshell), and nbdkit's alone.
nbdcopy_run() {
  local start end s0 s1 c0 c1 me=$BASHPID # this subshell, nbdcopy's parent
  c0=$(awk '{ print $16 + $17 }' "/proc/$me/stat")
  s0=$(cpu_ticks "${spid[$1]}")
  start=$(date +%s.%N)
  nbdcopy -C 4 --no-extents "${uri[$1]}" null:
  end=$(date +%s.%N)
  s1=$(cpu_ticks "${spid[$1]}")
  c1=$(awk '{ print $16 + $17 }' "/proc/$me/stat")
  awk -v s="$start" -v e="$end" -v m="$size_mib" -v cpu=$((c1 - c0 + s1 - s0)) -v srv=$((s1 - s0)) \
    -v hz="$hz" 'BEGIN { g = m / 1024; printf "%.0f %.2f %.2f\n", m / (e - s), cpu / hz / g, srv / hz / g }'
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
least() { sort -g | head -n1; }

# The listeners take turns, round after round, so that a change in the machine's load lands on
# all of them alike.
declare -A copies cpus srvs fios copy cpu srv fio
fio_listeners=(plain x509 file)
declare -A fio_uri=([plain]="nbd://127.0.0.1:${port[plain]}/pack/p@ro"
  [x509]="nbds://127.0.0.1:${port[x509]}/pack/p@ro" [file]="${uri[file]}")
for ((r = 0; r < repeat; r++)); do
  for l in "${listeners[@]}"; do
    out=$(nbdcopy_run "$l") || { echo "bench/tls.sh: nbdcopy from $l (${uri[$l]}) failed" >&2; exit 1; }
    read -r m c sc <<<"$out"
    copies[$l]+="$m " cpus[$l]+="$c " srvs[$l]+="$sc "
  done
  for l in "${fio_listeners[@]}"; do
    f=$(fio_iops "${fio_uri[$l]}") || exit 1 # its message is out already
    fios[$l]+="$f "
  done
done
for l in "${listeners[@]}"; do
  copy[$l]=$(printf '%s\n' ${copies[$l]} | best)
  cpu[$l]=$(printf '%s\n' ${cpus[$l]} | least)
  srv[$l]=$(printf '%s\n' ${srvs[$l]} | least)
done
for l in "${fio_listeners[@]}"; do fio[$l]=$(printf '%s\n' ${fios[$l]} | best); done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

aesni=$(grep -q -m1 -w aes /proc/cpuinfo && echo yes || echo no)
echo "bench/tls.sh: pack of ${size_mib} MiB, $repeat rounds, $(nproc) CPUs, AES-NI: $aesni, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-12s %13s %6s %10s %9s %11s %17s %6s\n' listener "nbdcopy MiB/s" ratio "cpu s/GiB" \
  "cpu ratio" "nbdkit s/GiB" "fio 4k rand IOPS" ratio
for l in "${listeners[@]}"; do
  t=${twin[$l]}
  printf '%-12s %13s %6s %10s %9s %11s %17s %6s\n' "$l" "${copy[$l]}" "$(ratio "${copy[$l]}" "${copy[$t]}")" \
    "${cpu[$l]}" "$(ratio "${cpu[$t]}" "${cpu[$l]}")" "${srv[$l]}" "${fio[$l]:-n/a}" \
    "$([[ -n ${fio[$l]:-} ]] && ratio "${fio[$l]}" "${fio[$t]}" || echo -)"
done
# The verdict: vvm's TLS as it is set up (X.509; PSK with conf/gnutls-aes.conf), by throughput.
if [[ $aesni == yes ]]; then
  for l in x509 psk-aes; do
    v=$(ratio "${copy[$l]}" "${copy[plain]}")
    awk -v v="$v" 'BEGIN { exit !(v >= 0.7) }' && verdict=met || verdict="NOT met"
    echo "target: nbdcopy over TLS >= 0.70 of plaintext with AES-NI: $l $v, $verdict (cpu ratio $(ratio "${cpu[plain]}" "${cpu[$l]}"))"
  done
else
  echo "target: none on this CPU (no AES-NI: the target is for CPUs with it)"
fi
# What vvm adds: TLS's extra CPU a GiB through the vvm plugin against through the file plugin.
echo "TLS's extra CPU (s/GiB, client and nbdkit): vvm psk-aes $(awk -v a="${cpu[psk-aes]}" -v b="${cpu[plain]}" 'BEGIN { printf "%.2f", a - b }'), file-psk-aes $(awk -v a="${cpu[file-psk-aes]}" -v b="${cpu[file]}" 'BEGIN { printf "%.2f", a - b }') (nbdkit's and libnbd's own)"
if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
  echo "load average $(cut -d' ' -f1 /proc/loadavg) over $(nproc) CPUs: the throughputs and their ratios follow the others' load; the cpu ratios are the steadier figures"
fi
