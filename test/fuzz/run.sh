#!/usr/bin/env bash
# run.sh TARGET: builds one libFuzzer target (test/fuzz/TARGET.cc, with clang, ASan and UBSan),
# replays the crashes kept in test/fuzz/regressions/TARGET/, then fuzzes it for a bounded time
# from its seeds. Any crash, leak, timeout or memory blow-up fails the test; the input that caused
# it is kept as build/test/test/fuzz/TARGET-crash-* (or -timeout-, -oom-, -leak-), to reproduce with
#   build/test/test/fuzz/TARGET FILE
# and to add to test/fuzz/regressions/TARGET/ with the fix.
#
# The main build uses gcc, and libFuzzer needs clang, so the targets are built by hand, but
# incrementally: this script writes a ninja file (build/test/test/fuzz/build.ninja) in which every
# source compiles once into an object that all targets share, with its header dependencies, and
# ninja rebuilds only what changed. meson runs one test per target, in parallel: a lock makes
# them take turns at the build.
#
# Seeds: made at test time by fuzz_seeds (test/fuzz/seeds.cc, built by meson) from the real
# encoders (messages, tapes, journals, records, labels), and the example files of conf/.
#
# Environment: VVM_FUZZ_SECONDS (default 30) bounds the run; VVM_FUZZ_BUILD_ONLY=1 only builds.
set -euo pipefail
target=${1:?usage: run.sh TARGET (record_fuzz, proto_fuzz, ...)}
src=${VVM_SOURCE_DIR:?run me from meson test}
build=${VVM_BUILD_DIR:?run me from meson test}
out=$build/test/fuzz
seconds=${VVM_FUZZ_SECONDS:-30}
cxx=$(command -v clang++-14 || command -v clang++) || { echo "no clang++: install clang"; exit 1; }
mkdir -p "$out"

# What each target links, apart from its own source. Objects are shared between targets.
common=(client/common/status.cc client/common/log.cc client/common/vv.cc)
proto=("${common[@]}" client/proto/frame.cc client/proto/messages.cc)
# config.cc checks pack names with packtab.cc's rules ([cluster]'s disks and mappings).
config=("${common[@]}" client/common/config.cc client/common/size.cc client/common/endpoint.cc
  client/pack/packtab.cc)
db=("${common[@]}" vvmd/db/record.cc vvmd/db/table.cc vvmd/db/file.cc vvmd/db/index.cc
  vvmd/catalog/records.cc)
declare -A sources=(
  [record_fuzz]="${db[*]}"
  [table_open_fuzz]="${db[*]}"
  [label_fuzz]="client/common/status.cc mover/tape/label.cc"
  [proto_fuzz]="${proto[*]}"
  [config_fuzz]="${config[*]}"
  [packtab_fuzz]="${config[*]}"
  [tape_fuzz]="${common[*]} mover/tape/emulated_tape.cc mover/tape/label.cc mover/tape/scan.cc
    mover/tape/library.cc mover/tape/st_tape.cc mover/copy/copy.cc client/common/replace_file.cc"
  [journal_fuzz]="${db[*]} vvmd/db/indexed_table.cc vvmd/db/journal.cc vvmd/db/database.cc
    vvmd/catalog/tables.cc"
  [job_pipe_fuzz]="${common[*]} mover/copy/job_pipe.cc"
  [export_name_fuzz]="${config[*]} ${proto[*]}
    nbdkit-plugin/pack_catalog.cc nbdkit-plugin/pack_export.cc vvmd/catalog/vv_names.cc"
)
[[ -v "sources[$target]" ]] || { echo "run.sh: unknown target '$target'"; exit 1; }

# The ninja file for every target.
write_ninja() {
  local launcher=""
  command -v ccache >/dev/null && launcher="ccache "
  cat <<EOF
# Written by test/fuzz/run.sh: the libFuzzer targets, built with clang.
cxx = $launcher$cxx
cxxflags = -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined $(
    ) -I$src/client -I$src/vvmd -I$src/mover -I$src/nbdkit-plugin -Igen $(
    ) -DVVM_VERSION=\"fuzz\" $(pkg-config --cflags fmt absl_btree absl_flat_hash_map libtirpc)
libs = $(pkg-config --libs fmt absl_btree absl_flat_hash_map) -lboost_program_options -lxxhash -lpthread
rule cxx
  command = \$cxx \$cxxflags -MD -MF \$out.d -c \$in -o \$out
  depfile = \$out.d
  deps = gcc
  description = CXX \$out
rule link
  command = \$cxx \$cxxflags \$in -o \$out \$libs
  description = LINK \$out
rule rpcgen
  command = rm -f \$out && rpcgen -h -o \$out \$in
build gen/vvm_proto.h: rpcgen $src/client/proto/vvm_proto.x
EOF
  local -A seen=()
  local t f
  for t in "${!sources[@]}"; do
    for f in $t.cc ${sources[$t]}; do
      [[ $f == "$t.cc" ]] && f=test/fuzz/$t.cc
      [[ -v "seen[$f]" ]] && continue
      seen[$f]=1
      echo "build obj/${f%.cc}.o: cxx $src/$f || gen/vvm_proto.h"
    done
  done
  for t in "${!sources[@]}"; do
    local objs="obj/test/fuzz/$t.o"
    for f in ${sources[$t]}; do
      [[ " $objs " == *" obj/${f%.cc}.o "* ]] || objs+=" obj/${f%.cc}.o"
    done
    echo "build $t: link $objs"
  done
}

# One build at a time: meson runs the targets' tests side by side.
(
  flock 9
  write_ninja >"$out/build.ninja.new"
  if cmp -s "$out/build.ninja.new" "$out/build.ninja"; then
    rm "$out/build.ninja.new"
  else
    mv "$out/build.ninja.new" "$out/build.ninja"
  fi
  nice ninja -C "$out" -j 2 "$target" >"$out/$target.build.log" 2>&1 ||
    { tail -n 40 "$out/$target.build.log"; exit 1; }
) 9>"$out/build.lock"
[[ ${VVM_FUZZ_BUILD_ONLY:-0} == 1 ]] && exit 0

# The seeds: fresh each run, from the real encoders and files.
work=$(mktemp -d "$out/$target.run.XXXXXX")
# The files the target parses (scratch.h), in memory when possible, gone even after a crash.
scratch=$(mktemp -d "$([[ -w /dev/shm ]] && echo /dev/shm || echo "$work")/vvm-fuzz.XXXXXX")
export VVM_FUZZ_SCRATCH=$scratch
trap 'rm -rf "$work" "$scratch"' EXIT
mkdir -p "$work/new" "$work/seeds"
"$build/test/fuzz_seeds" "$target" "$work/seeds"
case $target in
  config_fuzz)
    cp "$src/conf/vvm.conf" "$work/seeds/vvm.conf"
    grep -Ev '^[[:space:]]*(#|$)' "$src/conf/vvm.conf" >"$work/seeds/vvm.conf.bare"
    ;;
  packtab_fuzz)
    cp "$src/conf/packtab" "$work/seeds/packtab"
    grep -Ev '^[[:space:]]*(#|$)' "$src/conf/packtab" >"$work/seeds/packtab.bare"
    ;;
esac

# Every input that once crashed the target must now pass (each is run once).
limits=(-rss_limit_mb=2048 -timeout=10 -malloc_limit_mb=2048)
cd "$out"
regressions=("$src/test/fuzz/regressions/$target"/*)
if [[ -e ${regressions[0]} ]]; then
  echo "replaying ${#regressions[@]} regression inputs"
  "./$target" "${limits[@]}" "${regressions[@]}" >"$target.regressions.log" 2>&1 ||
    { tail -n 40 "$target.regressions.log"; exit 1; }
fi

echo "running $target for ${seconds}s from $(ls "$work/seeds" | wc -l) generated seeds"
"./$target" "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$out/$target-" "$work/new" "$work/seeds" >"$target.log" 2>&1 ||
  { tail -n 60 "$target.log"; exit 1; }
grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|Done' "$target.log" | tail -n 3
echo "$target: no crash"
