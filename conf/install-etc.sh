#!/bin/sh
# install-etc.sh: meson's install script for the configuration under /etc/vvm (sysconfdir/vvm):
# the example vvm.conf and packtab are installed there only when the file is not there yet, as
# Debian treats a conffile, so that installing again never overwrites what the site edited.
#   install-etc.sh DIR FILE...   (DESTDIR, from meson install --destdir, is put before DIR)
set -eu
dir=${DESTDIR:-}$1
shift
mkdir -p "$dir"
for f in "$@"; do
  target=$dir/$(basename "$f")
  if [ -e "$target" ]; then
    echo "install-etc.sh: $target exists: kept (the example is in the doc folder's examples)"
  else
    install -m 0644 "$f" "$target"
    echo "Installing $f to $target"
  fi
done
