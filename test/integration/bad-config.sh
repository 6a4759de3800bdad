#!/usr/bin/env bash
# bad-config.sh: every vvm program stops on a bad vvm.conf or packtab, with a message that names
# the file, the line and the reason, and a non-zero exit status (2 for vvm's own programs).
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
failures=0

# expect_fail WANT_STATUS LABEL PATTERN... -- COMMAND...: COMMAND must exit with WANT_STATUS (or any
# non-zero status for "nonzero") and print every PATTERN (an extended regex) on stderr.
expect_fail() {
  local want=$1 label=$2 patterns=() status=0
  shift 2
  while [[ $1 != -- ]]; do patterns+=("$1"); shift; done
  shift
  timeout 20 "$@" >"$tmpdir/out" 2>"$tmpdir/err" </dev/null || status=$?
  if [[ $want == nonzero && $status == 0 ]] || [[ $want != nonzero && $status != "$want" ]]; then
    echo "FAIL $label: exit status $status, wanted $want"; sed 's/^/  | /' "$tmpdir/err"
    failures=$((failures + 1))
    return
  fi
  local p
  for p in "${patterns[@]}"; do
    if ! grep -Eq -- "$p" "$tmpdir/err"; then
      echo "FAIL $label: stderr lacks /$p/"; sed 's/^/  | /' "$tmpdir/err"
      failures=$((failures + 1))
      return
    fi
  done
  echo "ok   $label: $(head -n1 "$tmpdir/err")"
}

# A good base configuration (line 5 is [vvmd]'s listen), then one broken copy per case.
good=(plugin.packtab=packtab drives=LTO9)
vvm_conf "${good[@]}"
truncate -s 1G "$tmpdir/disk.img"
cat >"$tmpdir/packtab" <<TAB
# name backing offset size mode owner group perms
a $tmpdir/disk.img 0 100M shared root root 0660
b $tmpdir/disk.img 100M 100M ro root root 0644
TAB

# The good files load, so each failure below is the broken line's doing.
"$vvctl" --conf "$tmpdir/vvm.conf" conf check >/dev/null

# 1. An unknown key (line 6 of the broken file).
sed '5a colour = blue' "$tmpdir/vvm.conf" >"$tmpdir/unknown-key.conf"
# 2. A bad watermark.
vvm_conf file="$tmpdir/bad-watermark.conf" "${good[@]}" cache.high-watermark=120%
wm_line=$(grep -n 'high-watermark' "$tmpdir/bad-watermark.conf" | cut -d: -f1)
# 3. A class naming a media type that does not exist.
sed '0,/^media = LTO9$/s//media = LTO9 DLT7/' "$tmpdir/vvm.conf" >"$tmpdir/unknown-media.conf"
media_line=$(grep -n 'DLT7' "$tmpdir/unknown-media.conf" | cut -d: -f1)

for conf in unknown-key bad-watermark unknown-media; do
  case $conf in
    unknown-key) pats=("unknown-key.conf:6:" "colour") ;;
    bad-watermark) pats=("bad-watermark.conf:$wm_line:" "high-watermark" "120") ;;
    unknown-media) pats=("unknown-media.conf:$media_line:" "DLT7") ;;
  esac
  f=$tmpdir/$conf.conf
  expect_fail 2 "vvmd, $conf" "${pats[@]}" -- "$vvmd" --conf "$f"
  expect_fail 2 "vvmover, $conf" "${pats[@]}" -- "$vvmover" --conf "$f" --name m1
  expect_fail 2 "vvctl, $conf" "${pats[@]}" -- "$vvctl" --conf "$f" ping
  expect_fail 2 "vvctl conf check, $conf" "${pats[@]}" -- "$vvctl" conf check "$f"
  expect_fail nonzero "nbdkit conf=, $conf" "${pats[@]}" -- \
    env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit -U "$tmpdir/nbd.sock" -f "$VVM_PLUGIN" conf="$f"
done

# A missing file is named too.
expect_fail 2 "vvmd, missing conf" "$tmpdir/nope.conf" -- "$vvmd" --conf "$tmpdir/nope.conf"

# Bad packtabs: through nbdkit (packtab= and via conf=) and vvctl conf check.
cp "$tmpdir/packtab" "$tmpdir/bad-size.tab"
echo "c $tmpdir/disk.img 200M 10Q shared root root 0660" >>"$tmpdir/bad-size.tab"
cp "$tmpdir/packtab" "$tmpdir/dup.tab"
echo "a $tmpdir/disk.img 300M 10M shared root root 0660" >>"$tmpdir/dup.tab"
for tab in bad-size dup; do
  case $tab in
    bad-size) pats=("bad-size.tab:4:" "10Q") ;;
    dup) pats=("dup.tab:4:" "'?a'?" "line 2|:2") ;;
  esac
  expect_fail nonzero "nbdkit packtab=, $tab" "${pats[@]}" -- \
    env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit -U "$tmpdir/nbd.sock" -f "$VVM_PLUGIN" packtab="$tmpdir/$tab.tab"
  sed "s#^packtab = packtab\$#packtab = $tab.tab#" "$tmpdir/vvm.conf" >"$tmpdir/with-$tab.conf"
  expect_fail 2 "vvctl conf check, packtab $tab" "${pats[@]}" -- "$vvctl" conf check "$tmpdir/with-$tab.conf"
  expect_fail nonzero "nbdkit conf=, packtab $tab" "${pats[@]}" -- \
    env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit -U "$tmpdir/nbd.sock" -f "$VVM_PLUGIN" conf="$tmpdir/with-$tab.conf"
done

# Nothing was left listening.
[[ ! -e $tmpdir/run/vvmd.sock && ! -e $tmpdir/nbd.sock ]] || { echo "FAIL: a socket was left behind"; failures=$((failures + 1)); }

((failures == 0)) || { echo "$failures case(s) failed"; exit 1; }
