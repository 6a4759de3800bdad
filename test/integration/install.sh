#!/usr/bin/env bash
# install.sh: `meson install` puts the programs, the plugin (in nbdkit's plugin folder), the
# headers, the library, the example configuration (in the doc folder, with the Prometheus
# examples and the admin guide, and in sysconfdir/vvm unless already there), the systemd units
# (with the sysusers.d and tmpfiles.d files) and the manual pages where a distribution would, and
# the installed plugin is one nbdkit can load. libvvclient installs its public headers and nothing
# more, a C++ program compiles and links against them with pkg-config, and the library exports
# only its API (the C vv_* functions, vvm::client, vvm::Status), none of vvm's inside.
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
  "$plugindir/nbdkit-vvm-plugin.so" \
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
# Exactly libvvclient's public headers are installed: its two and the Status they return.
want_headers="$prefix/include/vvm/common/status.h
$prefix/include/vvm/vvclient.h
$prefix/include/vvm/vvclient_c.h"
got_headers=$(cd "$tmp/root" && find ".$prefix/include" -type f | sed 's/^\.//' | sort)
if [[ $got_headers == "$want_headers" ]]; then
  echo "ok   the headers installed are vvclient.h, vvclient_c.h and common/status.h"
else
  echo "FAIL installed headers: $(tr '\n' ' ' <<<"$got_headers"), wanted: $(tr '\n' ' ' <<<"$want_headers")"
  failures=$((failures + 1))
fi
for internal in config.h packtab.h messages.h client.h; do
  if [[ -n $(find "$tmp/root$prefix/include" -name "$internal") ]]; then
    echo "FAIL $internal is installed: it is not part of libvvclient's API"; failures=$((failures + 1))
  fi
done

# A C++ program using vvclient.h compiles and links against the installed library with
# pkg-config, and runs with it.
cat >"$tmp/use_vvclient.cc" <<'CXX'
#include <vvclient.h>

#include <cstdio>

int main() {
  auto uri = vvm::client::export_uri("nbd://host:10809", "A0000000042");
  if (!uri.ok()) return 1;
  vvm::client::VolumeInfo info;
  std::printf("%s %s\n", uri->c_str(), std::string(vvm::client::state_name(info.state)).c_str());
  vvm::Status bad = vvm::client::check_vv_name("A/1");
  return bad.ok() || bad.to_string().empty() ? 1 : 0;
}
CXX
libdir=$(dirname "$(find "$tmp/root" -name 'libvvclient.so' | head -n 1)")
if [[ -n $pc ]] && flags=$(PKG_CONFIG_SYSROOT_DIR="$tmp/root" PKG_CONFIG_PATH=$(dirname "$pc") \
  pkg-config --cflags --libs vvclient) && c++ -std=c++20 -Wall -Werror -o "$tmp/use_vvclient" \
  "$tmp/use_vvclient.cc" $flags 2>"$tmp/cxx.log" &&
  out=$(LD_LIBRARY_PATH=$libdir "$tmp/use_vvclient") &&
  [[ $out == "nbd://host:10809/vv/A0000000042 hot" ]]; then
  echo "ok   a C++ program compiles, links and runs with pkg-config --cflags --libs vvclient"
else
  cat "$tmp/cxx.log" 2>/dev/null || true
  echo "FAIL a C++ program does not build against the installed vvclient.h and library (${out:-})"
  failures=$((failures + 1))
fi

# The library exports its API and nothing of vvm's inside (the control protocol, the
# configuration, vvcommon's helpers) nor the templates it instantiates.
lib=$(find "$tmp/root" -name 'libvvclient.so.*.*.*' | head -n 1)
exported=$(nm -D --defined-only -C "$lib" | awk '{ $1 = ""; $2 = ""; sub(/^  /, ""); print }')
api='^(vv_[a-z_]+|vvm::client::[a-z_]+(\[abi:cxx11\])?\(.*|vvm::client::Volume::.*|vvm::Status::.*'
api+='|vvm::code_name\(vvm::Code\))$'
unexpected=$(grep -Ev "$api" \
  <<<"$exported" || true)
if [[ -z $unexpected ]] && grep -qx 'vv_openread' <<<"$exported" &&
  grep -q '^vvm::client::Volume::open(' <<<"$exported"; then
  echo "ok   libvvclient exports $(wc -l <<<"$exported") symbols, all of its API"
else
  echo "FAIL libvvclient exports what is not its API: $(head -n 20 <<<"$unexpected")"
  failures=$((failures + 1))
fi
for inside in 'vvm::rpc::' 'vvm::config' 'vvm::load_config' 'xdr_' 'vvm::Endpoint' 'boost::' 'fmt::'; do
  if grep -q -- "$inside" <<<"$exported"; then
    echo "FAIL libvvclient exports $inside symbols: $(grep -- "$inside" <<<"$exported" | head -n 3)"
    failures=$((failures + 1))
  fi
done

# The systemd units, the vvm user (sysusers.d) and vvm's folders (tmpfiles.d) are where systemd
# looks for them: systemd's own pkg-config variables (Debian bookworm: /lib/systemd/system,
# /usr/lib/sysusers.d, /usr/lib/tmpfiles.d), unless the build's options said otherwise.
buildoption() { meson introspect "$build" --buildoptions | jq -r ".[] | select(.name == \"$1\") | .value"; }
systemd_dir() {
  local dir
  dir=$(buildoption "$1")
  [[ -n $dir ]] || dir=$(pkg-config --variable="$1" systemd)
  echo "$dir"
}
unitdir=$(systemd_dir systemdsystemunitdir)
for f in "$unitdir/vvmd.service" "$unitdir/vvmover@.service" "$unitdir/vvm-nbdkit.service" \
  "$unitdir/vvm-nbdkit.socket" "$unitdir/vvm-nbdkit-tls@.service" "$(systemd_dir sysusersdir)/vvm.conf" \
  "$(systemd_dir tmpfilesdir)/vvm.conf"; do
  if [[ -f $tmp/root$f ]]; then echo "ok   $f"; else echo "FAIL $f is not installed"; failures=$((failures + 1)); fi
done
# The units run what was installed: no path of the build folder or the source tree in them.
if grep -l -e "$build" -e "${VVM_SOURCE_DIR:-/nonexistent}" "$tmp/root$unitdir"/vvm* 2>/dev/null; then
  echo "FAIL the installed units name the build or source folder"; failures=$((failures + 1))
fi
grep -qx "ExecStart=$prefix/sbin/vvmd --conf /etc/vvm/vvm.conf" "$tmp/root$unitdir/vvmd.service" ||
  { echo "FAIL vvmd.service does not run $prefix/sbin/vvmd: $(grep ExecStart "$tmp/root$unitdir/vvmd.service")"; failures=$((failures + 1)); }

# The configuration in sysconfdir/vvm (/etc/vvm with --prefix=/usr, as Debian has it), where the
# programs and the units look: conf/'s example vvm.conf and packtab, which vvctl conf check
# accepts as installed. Installing again keeps a site's edited file.
sysconfdir=$(buildoption sysconfdir)
[[ $sysconfdir == /* ]] || sysconfdir=$prefix/$sysconfdir
for f in vvm.conf packtab; do
  if cmp -s "$tmp/root$sysconfdir/vvm/$f" "$VVM_SOURCE_DIR/conf/$f"; then
    echo "ok   $sysconfdir/vvm/$f (conf/$f)"
  else
    echo "FAIL $sysconfdir/vvm/$f is not conf/$f"; failures=$((failures + 1))
  fi
done
# The packs' backing that doc/admin.md has the site make ("truncate -s 640M
# /var/lib/vvm/packs.img"), made here in the test's folder: the copy of the installed packtab
# names it there, and nothing else changes.
truncate -s 640M "$tmp/packs.img"
mkdir -p "$tmp/etc"
cp "$tmp/root$sysconfdir/vvm/vvm.conf" "$tmp/etc/vvm.conf"
sed "s|/var/lib/vvm/packs.img|$tmp/packs.img|" "$tmp/root$sysconfdir/vvm/packtab" >"$tmp/etc/packtab"
if out=$("$build/client/vvctl" conf check "$tmp/etc/vvm.conf" 2>&1); then
  echo "ok   vvctl conf check $sysconfdir/vvm/vvm.conf: $(head -n 1 <<<"$out")"
else
  echo "$out"; echo "FAIL vvctl conf check refuses the installed vvm.conf"; failures=$((failures + 1))
fi
echo "# the site's own line" >>"$tmp/root$sysconfdir/vvm/vvm.conf"
meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >"$tmp/install2.log" 2>&1 ||
  { cat "$tmp/install2.log"; echo "FAIL: meson install, again"; failures=$((failures + 1)); }
if grep -qx "# the site's own line" "$tmp/root$sysconfdir/vvm/vvm.conf"; then
  echo "ok   installing again keeps $sysconfdir/vvm/vvm.conf as the site edited it"
else
  echo "FAIL installing again overwrote $sysconfdir/vvm/vvm.conf"; failures=$((failures + 1))
fi
# The admin guide, and every file under the doc folder or /etc/vvm that it names (it was written
# for --prefix=/usr).
docdir=$prefix/share/doc/vvm
named=$(grep -oE '/(usr/share/doc/vvm|etc/vvm)/[A-Za-z0-9_./-]*[A-Za-z0-9]' "$VVM_SOURCE_DIR/doc/admin.md" | sort -u)
for f in "$docdir/admin.md" $named; do
  f=${f/#\/usr\/share\/doc\/vvm/$docdir}
  f=${f/#\/etc\/vvm/$sysconfdir/vvm}
  if [[ -e $tmp/root$f ]]; then echo "ok   $f"; else echo "FAIL $f (doc/admin.md) is not installed"; failures=$((failures + 1)); fi
done

# The manual pages, in their sections under mandir, and `man -k vvm` (apropos) lists each one
# once mandb has indexed the staged man folder (a folder of its own: index.db lands there).
mandir=$prefix/$(buildoption mandir)
pages="libvvclient.3 nbdkit-vvm-plugin.1 packtab.5 vvctl.8 vvm.conf.5 vvmd.8 vvmover.8 vvtape.8"
for page in $pages; do
  f=$mandir/man${page##*.}/$page
  if [[ -s $tmp/root$f ]]; then echo "ok   $f"; else echo "FAIL $f is not installed"; failures=$((failures + 1)); fi
done
if mandb -q "$tmp/root$mandir" >"$tmp/mandb.log" 2>&1; then
  listed=$(MANPATH=$tmp/root$mandir man -k vvm 2>&1 || true)
  for page in $pages; do
    if grep -q "^${page%.*} (${page##*.}) " <<<"$listed"; then
      echo "ok   man -k vvm lists ${page%.*}(${page##*.})"
    else
      echo "FAIL man -k vvm does not list ${page%.*}(${page##*.}): $listed"; failures=$((failures + 1))
    fi
  done
  # man finds the C functions' page by their names too.
  [[ $(MANPATH=$tmp/root$mandir man -w vv_openread 2>&1) == "$tmp/root$mandir/man3/libvvclient.3" ]] ||
    { echo "FAIL man vv_openread does not find libvvclient(3)"; failures=$((failures + 1)); }
else
  cat "$tmp/mandb.log"; echo "FAIL mandb could not index $mandir"; failures=$((failures + 1))
fi

# nbdkit loads the installed plugin and reports the API and thread model we built for (the
# plugin lowers the model itself on an nbdkit that aborts when a client hangs up: parallel=).
dump=$(env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit --dump-plugin "$tmp/root$plugindir/nbdkit-vvm-plugin.so")
for want in api_version=2 max_thread_model=parallel has_thread_model=1 has_list_exports=1; do
  grep -qx "$want" <<<"$dump" || { echo "$dump"; echo "FAIL --dump-plugin lacks $want"; failures=$((failures + 1)); }
done

# A build folder outside the source tree (as distributions build) configures and builds the
# control protocol's generated code and libvvclient.
src=${VVM_SOURCE_DIR:?run me from meson test}
if meson setup "$tmp/elsewhere" "$src" -Dtests=false --prefix=/usr >"$tmp/oot.log" 2>&1 &&
  ninja -C "$tmp/elsewhere" client/libvvclient.so.0.1.0 >>"$tmp/oot.log" 2>&1; then
  echo "ok   builds out of tree: meson setup $tmp/elsewhere $src && ninja client/libvvclient.so.0.1.0"
else
  tail -n 30 "$tmp/oot.log"
  echo "FAIL an out-of-tree build folder does not build"; failures=$((failures + 1))
fi
# With --prefix=/usr (as Debian builds) the configuration goes to /etc/vvm, where the units and
# the programs look for it.
etc=$(meson introspect "$tmp/elsewhere" --buildoptions 2>/dev/null |
  jq -r '.[] | select(.name == "sysconfdir") | .value')
if [[ $etc == /etc ]]; then
  echo "ok   with --prefix=/usr, vvm.conf is installed in /etc/vvm"
else
  echo "FAIL with --prefix=/usr, sysconfdir is '$etc', not /etc"; failures=$((failures + 1))
fi
((failures == 0))
