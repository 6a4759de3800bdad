# bench/build-dir.sh: sourced by the benchmarks that run vvmd: which build they measure
# (find_build, find_rel_build) and the header line that names it (print_build).
#
# find_build SCRIPT [BUILD_DIR]
# sets $build: BUILD_DIR when given, else the first of build-rel, build/run and any other build
# folder of the checkout that holds vvmd/vvmd; with none, it says so as SCRIPT and exits 2.
find_build() {
  local script=$1 here b
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [[ -n ${2:-} ]]; then
    build=$2
    return
  fi
  build=
  for b in "$here"/build-rel "$here"/build/run "$here"/build*/ "$here"/build/*/; do
    [[ -x $b/vvmd/vvmd ]] && { build=${b%/}; return; }
  done
  echo "$script: no build folder with vvmd/vvmd: build first" >&2
  exit 2
}

# find_rel_build SCRIPT [BUILD_DIR]: the same, but a release build in build/rel (meson setup
# build/rel . -Dbuildtype=release) comes first when no BUILD_DIR is given: for the benchmarks
# whose figures mean something only in a release build.
find_rel_build() {
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [[ -z ${2:-} && -x $here/build/rel/vvmd/vvmd ]]; then
    build=$here/build/rel
    return
  fi
  find_build "$@"
}

# print_build: the "build:" line of a benchmark's header: $build and its meson buildtype (unknown
# without meson's introspection file), since only a release build's figures mean much.
print_build() {
  local buildtype
  buildtype=$(jq -r '.[] | select(.name == "buildtype") | .value' \
    "$build/meson-info/intro-buildoptions.json" 2>/dev/null || echo unknown)
  printf 'build:      %s (buildtype %s)\n' "$build" "$buildtype"
}
