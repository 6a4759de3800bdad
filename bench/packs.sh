#!/usr/bin/env bash
# bench/packs.sh: the pack data path against the servers a site would otherwise run, side by
# side in one run, each serving the same slice of the same backing file over a Unix socket:
#   vvm          nbdkit with the vvm plugin, export pack/p
#   file+offset  nbdkit's file plugin with the offset filter (the reference: ratios are to it)
#   qemu-nbd     --image-opts driver=raw,offset=,size= -e 8 --persistent (multi-conn needs -e > 1)
#   nbd-server   3.24 cannot serve a slice: it serves a file of the pack's size on the same disk
# Cases: nbdcopy -C 4 writing and reading the whole pack (MiB/s), fio's nbd engine 4 KiB random
# read and write at iodepth 32 (IOPS). Each case runs on every server in turn, REPEAT times;
# the table shows the best of each and its ratio to file+offset (above 1.0 is better). This
# machine is noisy: compare ratios, not absolutes.
#
#   bench/packs.sh [BUILD_DIR] [SIZE_MIB] [REPEAT]      default: build/run 1024 2
#
# Needs nbdkit, nbdcopy, fio, qemu-nbd, nbd-server, jq. Writes sparse files under $TMPDIR.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build/run}
size_mib=${2:-1024}
repeat=${3:-2}
plugin=$build/nbdkit-plugin/nbdkit-vvm-plugin.so
[[ -f $plugin ]] || { echo "bench/packs.sh: $plugin not found: build first (./vvm-dev run builds build/run)" >&2; exit 2; }
export PATH=/usr/bin:$PATH

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vvm-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

offset_mib=64
bytes=$((size_mib * 1024 * 1024)) offset=$((offset_mib * 1024 * 1024))
truncate -s $((bytes + 2 * offset)) "$tmp/disk.img"
truncate -s "$bytes" "$tmp/nbds.img"
echo "p disk.img ${offset_mib}M ${size_mib}M shared root root 0666" >"$tmp/packtab"
nbdkit -f -U "$tmp/vvm.sock" "$plugin" packtab="$tmp/packtab" holds="$tmp/holds" &
pids+=($!)
nbdkit -f -U "$tmp/ref.sock" --filter=offset file "$tmp/disk.img" offset=$offset range=$bytes &
pids+=($!)
qemu-nbd -k "$tmp/qemu.sock" -e 8 --persistent --image-opts \
  "driver=raw,offset=$offset,size=$bytes,file.driver=file,file.filename=$tmp/disk.img" &
pids+=($!)
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '%s\n' "[generic]" "port = $port" "listenaddr = 127.0.0.1" "unixsock = $tmp/nbds.sock" \
  "[p]" "exportname = $tmp/nbds.img" >"$tmp/nbd-server.conf"
nbd-server -C "$tmp/nbd-server.conf" -p "$tmp/nbd-server.pid" 2>"$tmp/nbd-server.log"
for s in vvm ref qemu nbds; do
  for ((i = 0; i < 100; i++)); do [[ -S $tmp/$s.sock ]] && break; sleep 0.05; done
  [[ -S $tmp/$s.sock ]] || { echo "bench/packs.sh: $s did not start" >&2; exit 1; }
done
pids+=("$(cat "$tmp/nbd-server.pid")")
servers=(vvm ref qemu nbds)
declare -A label=([vvm]=vvm [ref]=file+offset [qemu]=qemu-nbd [nbds]=nbd-server)
declare -A uri=([vvm]="nbd+unix:///pack/p?socket=$tmp/vvm.sock" [ref]="nbd+unix:///?socket=$tmp/ref.sock"
  [qemu]="nbd+unix:///?socket=$tmp/qemu.sock" [nbds]="nbd+unix:///p?socket=$tmp/nbds.sock")
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$tmp/src.img"
# Allocate every block first: the first writer into a sparse file pays for block allocation
# (3x slower here), which would favour whichever server runs second.
dd if="$tmp/src.img" of="$tmp/disk.img" bs=4M seek=$((offset_mib / 4)) conv=notrunc,fsync status=none
dd if="$tmp/src.img" of="$tmp/nbds.img" bs=4M conv=notrunc,fsync status=none

calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }

# Each measure prints one number for a URI.
copy_in() { # MiB/s of nbdcopy -C 4 from a local file into the export
  local t0 t1
  t0=$(date +%s.%N); nbdcopy --connections=4 "$tmp/src.img" "$1"; t1=$(date +%s.%N)
  calc "$size_mib / ($t1 - $t0)"
}
copy_out() { # MiB/s of nbdcopy -C 4 from the export to /dev/null
  local t0 t1
  t0=$(date +%s.%N); nbdcopy --connections=4 "$1" null:; t1=$(date +%s.%N)
  calc "$size_mib / ($t1 - $t0)"
}
fio_iops() { # IOPS of fio's nbd engine, MODE (randread/randwrite), 4k, queue depth 32
  fio --name=b --ioengine=nbd --uri="$1" --rw="$2" --bs=4k --iodepth=16 --size=${size_mib}M \
    --time_based --runtime=5 --output-format=json 2>/dev/null |
    sed -n '/^{/,$p' | jq -r ".jobs[0].${2#rand} | .iops | floor"
}
fio_randread() { fio_iops "$1" randread; }
fio_randwrite() { fio_iops "$1" randwrite; }
best() { # best UNIT VALUE...: the largest value
  local kind=$1
  shift
  printf '%s\n' "$@" | sort -g | tail -n1
}

printf 'bench/packs.sh: %s MiB at offset %s MiB, best of %s, %s, %s\n' "$size_mib" "$offset_mib" \
  "$repeat" "$(nproc) CPUs" "$(date -u +%FT%TZ)"
printf '%-22s' "case"
for sv in "${servers[@]}"; do printf '%14s %6s' "${label[$sv]}" "x"; done
printf '\n'
for case in "copy_in MiB/s" "copy_out MiB/s" "fio_randread IOPS" "fio_randwrite IOPS"; do
  read -r fn unit <<<"$case"
  declare -A got=()
  for sv in "${servers[@]}"; do got[$sv]=""; done
  for ((k = 0; k < repeat; k++)); do
    # A different server goes first in each round, so none is always warmest.
    for ((j = 0; j < ${#servers[@]}; j++)); do
      sv=${servers[$(((j + k) % ${#servers[@]}))]}
      got[$sv]+="$($fn "${uri[$sv]}") "
    done
  done
  printf '%-22s' "$fn ($unit)"
  ref_best=$(best $unit ${got[ref]})
  for sv in "${servers[@]}"; do
    b=$(best $unit ${got[$sv]})
    printf '%14s %6s' "$b" "$(calc "$b / $ref_best")"
  done
  printf '\n'
done
