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
  "$plugindir/nbdkit-vvm-plugin.so" "$prefix/include/vvm/config.h" "$prefix/include/vvm/status.h" \
  "$prefix/share/doc/vvm/examples/vvm.conf" "$prefix/share/doc/vvm/examples/packtab"; do
  if [[ -e $tmp/root$f ]]; then echo "ok   $f"; else echo "FAIL $f is not installed"; failures=$((failures + 1)); fi
done
ls "$tmp/root$prefix"/lib*/ -R 2>/dev/null | grep -q 'libvvclient\.so' ||
  { echo "FAIL libvvclient.so is not installed"; failures=$((failures + 1)); }

# nbdkit loads the installed plugin and reports the API and thread model we built for.
dump=$(env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit --dump-plugin "$tmp/root$plugindir/nbdkit-vvm-plugin.so")
for want in api_version=2 thread_model=parallel has_list_exports=1; do
  grep -qx "$want" <<<"$dump" || { echo "$dump"; echo "FAIL --dump-plugin lacks $want"; failures=$((failures + 1)); }
done
((failures == 0))
