#!/usr/bin/env bash
# bench/packs.sh: the pack data path against the reference, side by side in one run: the vvm
# plugin serving a pack, and nbdkit's file plugin with the offset filter serving the same slice of
# the same backing file (what a site would run without vvm). Each case runs on both, alternately,
# REPEAT times; the table shows the best of each and the ratio vvm/reference (for MiB/s and IOPS,
# above 1.0 is better; this machine is noisy, so look at ratios, not absolutes).
#
#   bench/packs.sh [BUILD_DIR] [SIZE_MIB] [REPEAT]      default: build/run 512 3
#
# Needs nbdkit, nbdcopy, fio (nbd engine). Runs as any user; writes a sparse file under $TMPDIR.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build/run}
size_mib=${2:-512}
repeat=${3:-3}
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
truncate -s $(((size_mib + 2 * offset_mib) * 1024 * 1024)) "$tmp/disk.img"
echo "p disk.img ${offset_mib}M ${size_mib}M shared root root 0666" >"$tmp/packtab"
nbdkit -f -U "$tmp/vvm.sock" "$plugin" packtab="$tmp/packtab" holds="$tmp/holds" &
pids+=($!)
nbdkit -f -U "$tmp/ref.sock" --filter=offset file "$tmp/disk.img" \
  offset=$((offset_mib * 1024 * 1024)) range=$((size_mib * 1024 * 1024)) &
pids+=($!)
for s in vvm ref; do
  for ((i = 0; i < 100; i++)); do [[ -S $tmp/$s.sock ]] && break; sleep 0.05; done
done
vvm_uri="nbd+unix:///pack/p?socket=$tmp/vvm.sock"
ref_uri="nbd+unix:///?socket=$tmp/ref.sock"
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$tmp/src.img"

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
fio_iops() { # IOPS of fio's nbd engine, MODE (randread/randwrite), 4k, queue depth 16
  fio --name=b --ioengine=nbd --uri="$1" --rw="$2" --bs=4k --iodepth=16 --size=${size_mib}M \
    --time_based --runtime=5 --output-format=json 2>/dev/null |
    sed -n '/^{/,$p' | jq -r ".jobs[0].${2#rand} | .iops | floor"
}
fio_randread() { fio_iops "$1" randread; }
fio_randwrite() { fio_iops "$1" randwrite; }
trim_all() { # seconds to discard the whole export, then zero it
  local t0 t1
  t0=$(date +%s.%N)
  nbdsh -u "$1" -c 'h.trim(h.get_size(), 0)' -c 'h.zero(h.get_size(), 0)'
  t1=$(date +%s.%N)
  calc "$t1 - $t0"
}

best() { # best KIND VALUE...: the best of the values (max, or min for seconds)
  local kind=$1
  shift
  printf '%s\n' "$@" | sort -g | { if [[ $kind == s ]]; then head -n1; else tail -n1; fi; }
}

printf 'bench/packs.sh: %s MiB pack at offset %s MiB, best of %s, %s\n' "$size_mib" "$offset_mib" "$repeat" "$(date -u +%FT%TZ)"
printf '%-32s %12s %12s %8s\n' "case" "vvm" "file+offset" "ratio"
for case in "copy_in MiB/s" "copy_out MiB/s" "fio_randread IOPS" "fio_randwrite IOPS" "trim_all s"; do
  read -r fn unit <<<"$case"
  v=() r=()
  for ((k = 0; k < repeat; k++)); do
    v+=("$($fn "$vvm_uri")")
    r+=("$($fn "$ref_uri")")
  done
  bv=$(best "$unit" "${v[@]}") br=$(best "$unit" "${r[@]}")
  ratio=$(calc "$bv / $br")
  printf '%-32s %12s %12s %8s\n' "$fn ($unit)" "$bv" "$br" "$ratio"
done
