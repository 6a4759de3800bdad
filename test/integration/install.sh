#!/usr/bin/env bash
# install.sh: `meson install` puts the programs, the plugin (in nbdkit's plugin folder), the
# headers, the library and the example configuration where a distribution would, and the
# installed plugin is one nbdkit can load.
set -euo pipefail
build=${VVM_BUILD_DIR:?run me from meson test}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; echo "FAIL: meson install"; exit 1; }

prefix=$(meson introspect "$build" --buildoptions | jq -r '.[] | select(.name == "prefix") | .value')
plugindir=$(pkg-config --variable=plugindir nbdkit)
failures=0
for f in "$prefix/bin/vvctl" "$prefix/bin/vvtape" "$prefix/sbin/vvmd" "$prefix/sbin/vvmover" \
  "$plugindir/nbdkit-vvm-plugin.so" "$prefix/include/vvm/common/status.h" \
  "$prefix/include/vvm/vvclient.h" "$prefix/include/vvm/vvclient_c.h" \
  "$prefix/share/doc/vvm/examples/vvcopy.c" \
  "$prefix/share/doc/vvm/examples/vvm.conf" "$prefix/share/doc/vvm/examples/packtab"; do
  if [[ -e $tmp/root$f ]]; then echo "ok   $f"; else echo "FAIL $f is not installed"; failures=$((failures + 1)); fi
done
ls "$tmp/root$prefix"/lib*/ -R 2>/dev/null | grep -q 'libvvclient\.so' ||
  { echo "FAIL libvvclient.so is not installed"; failures=$((failures + 1)); }
ls "$tmp/root$prefix"/lib*/ -R 2>/dev/null | grep -q 'vvclient\.pc' ||
  { echo "FAIL vvclient.pc (pkg-config) is not installed"; failures=$((failures + 1)); }

# The installed header and pkg-config file are enough to compile the example, as C.
pc=$(find "$tmp/root" -name vvclient.pc | head -n 1)
if [[ -n $pc ]] && cflags=$(PKG_CONFIG_SYSROOT_DIR="$tmp/root" PKG_CONFIG_PATH=$(dirname "$pc") \
  pkg-config --cflags vvclient) && cc -Wall -Werror $cflags -c -o "$tmp/vvcopy.o" \
  "$tmp/root$prefix/share/doc/vvm/examples/vvcopy.c" 2>"$tmp/cc.log"; then
  echo "ok   vvcopy.c compiles with pkg-config --cflags vvclient ($cflags)"
else
  cat "$tmp/cc.log" 2>/dev/null || true
  echo "FAIL vvcopy.c does not compile against the installed header"; failures=$((failures + 1))
fi
# nbdkit loads the installed plugin and reports the API and thread model we built for.
dump=$(env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit --dump-plugin "$tmp/root$plugindir/nbdkit-vvm-plugin.so")
for want in api_version=2 thread_model=parallel has_list_exports=1; do
  grep -qx "$want" <<<"$dump" || { echo "$dump"; echo "FAIL --dump-plugin lacks $want"; failures=$((failures + 1)); }
done

# A build folder outside the source tree (as distributions build) configures and builds the
# control protocol's generated code and libvvclient.
src=${VVM_SOURCE_DIR:?run me from meson test}
if meson setup "$tmp/elsewhere" "$src" -Dtests=false >"$tmp/oot.log" 2>&1 &&
  ninja -C "$tmp/elsewhere" client/libvvclient.so.0.1.0 >>"$tmp/oot.log" 2>&1; then
  echo "ok   builds out of tree: meson setup $tmp/elsewhere $src && ninja client/libvvclient.so.0.1.0"
else
  tail -n 30 "$tmp/oot.log"
  echo "FAIL an out-of-tree build folder does not build"; failures=$((failures + 1))
fi
((failures == 0))
