#!/usr/bin/env bash
# run.sh: builds vvmd's database fuzz targets and the mover's tape label target with clang's
# libFuzzer (plus ASan and UBSan) and runs each for a bounded time (VVM_FUZZ_SECONDS, default 30 for
# the database targets; the label decoder is small and gets 20). Any crash fails the test, and the
# input that caused it is kept in the build folder (test/fuzz/crash-*) to reproduce with
#   build/test/test/fuzz/record_fuzz CRASH_FILE
set -euo pipefail
src=${VVM_SOURCE_DIR:?run me from meson test}
out=${VVM_BUILD_DIR:?run me from meson test}/test/fuzz
cxx=$(command -v clang++-14 || command -v clang++) || { echo "no clang++: install clang"; exit 1; }
mkdir -p "$out"
db_sources=("$src/client/common/status.cc" "$src/client/common/log.cc" "$src/client/common/vv.cc")
for f in db/record.cc db/table.cc db/file.cc db/index.cc catalog/records.cc; do
  db_sources+=("$src/vvmd/$f")
done
label_sources=("$src/client/common/status.cc" "$src/mover/tape/label.cc")
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
  -I"$src/client" -I"$src/vvmd" -I"$src/mover" $(pkg-config --cflags fmt absl_btree absl_flat_hash_map))
link=($(pkg-config --libs fmt absl_btree absl_flat_hash_map))
for target in record_fuzz table_open_fuzz label_fuzz; do
  if [[ $target == label_fuzz ]]; then
    sources=("${label_sources[@]}") code="$src/mover" seconds=${VVM_FUZZ_SECONDS:-20}
  else
    sources=("${db_sources[@]}") code="$src/vvmd" seconds=${VVM_FUZZ_SECONDS:-30}
  fi
  if [[ ! -x $out/$target || $src/test/fuzz/$target.cc -nt $out/$target ]] ||
    find "$code" "$src/client/common/status.cc" "$src/client/common/status.h" -newer "$out/$target" |
    grep -q .; then
    echo "building $target"
    "$cxx" "${flags[@]}" -o "$out/$target" "$src/test/fuzz/$target.cc" "${sources[@]}" "${link[@]}"
  fi
  corpus=$(mktemp -d)
  trap 'rm -rf "$corpus"' EXIT
  echo "running $target for ${seconds}s"
  (cd "$out" && "./$target" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
    "$corpus" 2>"$out/$target.log") || { tail -n 40 "$out/$target.log"; exit 1; }
  grep -E 'stat::number_of_executed_units|Done' "$out/$target.log" | tail -n 2
  rm -rf "$corpus"
done
echo "fuzz: no crash"
