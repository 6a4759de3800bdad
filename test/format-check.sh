#!/usr/bin/env bash
# format-check.sh: every C++ source of vvm is laid out as .clang-format says.
set -euo pipefail
src=${VVM_SOURCE_DIR:?run me from meson test}
cd "$src"
mapfile -t files < <(find client nbdkit-plugin vvmd mover test bench -name '*.cc' -o -name '*.h' | sort)
((${#files[@]} > 0)) || { echo "no sources found under $src"; exit 1; }
clang-format --dry-run --Werror "${files[@]}"
echo "ok: ${#files[@]} files formatted"
