#!/usr/bin/env bash
# bad-config.sh: every vvm program stops on a bad vvm.conf or packtab, with a message that names
# the file, the line and the reason, and a non-zero exit status (2 for vvm's own programs).
set -euo pipefail

build=${VVM_BUILD_DIR:?run me from meson test}
vvmd=$build/vvmd/vvmd
vvmover=$build/mover/vvmover
vvctl=$build/client/vvctl
plugin=$build/nbdkit-plugin/nbdkit-vvm-plugin.so

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect_fail WANT_STATUS LABEL PATTERN... -- COMMAND...: COMMAND must exit with WANT_STATUS (or any
# non-zero status for "nonzero") and print every PATTERN (an extended regex) on stderr.
expect_fail() {
  local want=$1 label=$2 patterns=() status=0
  shift 2
  while [[ $1 != -- ]]; do patterns+=("$1"); shift; done
  shift
  timeout 20 "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || status=$?
  if [[ $want == nonzero && $status == 0 ]] || [[ $want != nonzero && $status != "$want" ]]; then
    echo "FAIL $label: exit status $status, wanted $want"; sed 's/^/  | /' "$tmp/err"
    failures=$((failures + 1))
    return
  fi
  local p
  for p in "${patterns[@]}"; do
    if ! grep -Eq -- "$p" "$tmp/err"; then
      echo "FAIL $label: stderr lacks /$p/"; sed 's/^/  | /' "$tmp/err"
      failures=$((failures + 1))
      return
    fi
  done
  echo "ok   $label: $(head -n1 "$tmp/err")"
}

# A good base configuration, then one broken copy per case.
good_conf() {
  cat <<CONF
[global]
state-dir = $tmp/state

[vvmd]
listen = unix:$tmp/vvmd.sock

[plugin]
packtab = packtab

[media LTO9]
capacity = 18T

[class A]
media = LTO9

[mover m1]
listen = unix:$tmp/m1.sock

[drive d0]
mover = m1
media = LTO9
CONF
}
good_conf >"$tmp/vvm.conf"
truncate -s 1G "$tmp/disk.img"
cat >"$tmp/packtab" <<TAB
# name backing offset size mode owner group perms
a $tmp/disk.img 0 100M shared root root 0660
b $tmp/disk.img 100M 100M ro root root 0644
TAB

# The good files load, so each failure below is the broken line's doing.
"$vvctl" --conf "$tmp/vvm.conf" conf check >/dev/null

# 1. An unknown key (line 6 of the broken file).
sed '5a colour = blue' "$tmp/vvm.conf" >"$tmp/unknown-key.conf"
# 2. A bad watermark (the last line).
{ good_conf; printf '\n[cache]\nhigh-watermark = 120%%\n'; } >"$tmp/bad-watermark.conf"
wm_line=$(wc -l <"$tmp/bad-watermark.conf")
# 3. A class naming a media type that does not exist.
sed '0,/^media = LTO9$/s//media = LTO9 DLT7/' "$tmp/vvm.conf" >"$tmp/unknown-media.conf"
media_line=$(grep -n 'DLT7' "$tmp/unknown-media.conf" | cut -d: -f1)

for conf in unknown-key bad-watermark unknown-media; do
  case $conf in
    unknown-key) pats=("unknown-key.conf:6:" "colour") ;;
    bad-watermark) pats=("bad-watermark.conf:$wm_line:" "high-watermark" "120") ;;
    unknown-media) pats=("unknown-media.conf:$media_line:" "DLT7") ;;
  esac
  f=$tmp/$conf.conf
  expect_fail 2 "vvmd, $conf" "${pats[@]}" -- "$vvmd" --conf "$f"
  expect_fail 2 "vvmover, $conf" "${pats[@]}" -- "$vvmover" --conf "$f" --name m1
  expect_fail 2 "vvctl, $conf" "${pats[@]}" -- "$vvctl" --conf "$f" ping
  expect_fail 2 "vvctl conf check, $conf" "${pats[@]}" -- "$vvctl" conf check "$f"
  expect_fail nonzero "nbdkit conf=, $conf" "${pats[@]}" -- \
    env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit -U "$tmp/nbd.sock" -f "$plugin" conf="$f"
done

# A missing file is named too.
expect_fail 2 "vvmd, missing conf" "$tmp/nope.conf" -- "$vvmd" --conf "$tmp/nope.conf"

# Bad packtabs: through nbdkit (packtab= and via conf=) and vvctl conf check.
cp "$tmp/packtab" "$tmp/bad-size.tab"
echo "c $tmp/disk.img 200M 10Q shared root root 0660" >>"$tmp/bad-size.tab"
cp "$tmp/packtab" "$tmp/dup.tab"
echo "a $tmp/disk.img 300M 10M shared root root 0660" >>"$tmp/dup.tab"
for tab in bad-size dup; do
  case $tab in
    bad-size) pats=("bad-size.tab:4:" "10Q") ;;
    dup) pats=("dup.tab:4:" "'?a'?" "line 2|:2") ;;
  esac
  expect_fail nonzero "nbdkit packtab=, $tab" "${pats[@]}" -- \
    env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit -U "$tmp/nbd.sock" -f "$plugin" packtab="$tmp/$tab.tab"
  sed "s#^packtab = packtab\$#packtab = $tab.tab#" "$tmp/vvm.conf" >"$tmp/with-$tab.conf"
  expect_fail 2 "vvctl conf check, packtab $tab" "${pats[@]}" -- "$vvctl" conf check "$tmp/with-$tab.conf"
  expect_fail nonzero "nbdkit conf=, packtab $tab" "${pats[@]}" -- \
    env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit -U "$tmp/nbd.sock" -f "$plugin" conf="$tmp/with-$tab.conf"
done

# Nothing was left listening.
[[ ! -e $tmp/vvmd.sock && ! -e $tmp/nbd.sock ]] || { echo "FAIL: a socket was left behind"; failures=$((failures + 1)); }

((failures == 0)) || { echo "$failures case(s) failed"; exit 1; }
