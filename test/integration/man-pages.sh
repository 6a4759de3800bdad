#!/usr/bin/env bash
# man-pages.sh: the manual pages say what the programs say they do. Each page is the one meson
# built (pod2man), rendered by man(1) as a reader sees it; then:
#   - every option of vvmd's, vvmover's, vvctl's and vvtape's --help appears in its page, and
#     every command of vvctl's and vvtape's --help has its own subsection there ("vvctl vsn add
#     ...") that names every option of that command's --help;
#   - every key of the plugin's help (nbdkit PLUGIN --help) appears in nbdkit-vvm-plugin(1);
#   - every key of the example conf/vvm.conf (commented-out ones too), read now, not from a list
#     kept here, appears as an item of its own section ("[vvmd]", "[media NAME]") in vvm.conf(5);
#   - every function of vvclient_c.h and every variable of the environment it reads appears in
#     libvvclient(3);
#   - each page's NAME line mentions vvm, so that `man -k vvm` finds it (install.sh runs that
#     on the installed pages).
# The checks are shown to fail on a page with one option taken out.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
requires man --version

make_tmpdir
failures=0
fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}

# render PAGE: the built page as man shows it, in ASCII, with no line broken (so that a phrase
# never straddles two lines) and no overstriking.
render() {
  local page=$VVM_BUILD_DIR/$1
  [[ -s $page ]] || die "$page was not built"
  MANWIDTH=2000 MAN_KEEP_FORMATTING= man -E ascii -l "$page" 2>/dev/null | col -bx
}

# long_options TEXT: the --options TEXT names, one a line.
long_options() { grep -oE -- '(^|[][ ,|(])--[a-z][a-z0-9-]*' <<<"$1" | sed 's/^[^-]*//' | sort -u; }
# short_options TEXT: the -x options that start an option line ("  -c, --conf", "  -n [ --name ]").
short_options() { grep -oE -- '^ +-[a-zA-Z]([, ]|$)' <<<"$1" | grep -oE -- '-[a-zA-Z]' | sort -u; }
# commands TEXT: the commands of a "Commands:" block ("  vsn add   add a tape ..."), one a line.
commands() {
  sed -n '/^Commands:/,/^$/p' <<<"$1" | sed -nE 's/^  ([a-z][a-z -]*[a-z])  +.*/\1/p'
}

# missing_words PAGE_TEXT WORD...: the WORDs that PAGE_TEXT does not contain, one a line (a word
# is bounded by anything but letters, digits and '-').
missing_words() {
  local text=$1 word
  shift
  for word in "$@"; do
    grep -qE -- "(^|[^a-zA-Z0-9-])${word}([^a-zA-Z0-9-]|$)" <<<"$text" || echo "$word"
  done
}

# subsection PAGE_TEXT TITLE: the subsection whose heading (indented 3) starts with TITLE, up to
# the next heading; nothing when there is none.
subsection() {
  awk -v title="$2" '
    /^   [^ ]/ || /^[^ \t]/ { inside = (index($0, "   " title " ") == 1 || $0 == "   " title) }
    inside' <<<"$1"
}

# check_program NAME PAGE HELP_CMD...: the options of HELP_CMD's output are in PAGE; with
# commands, each one's own subsection names the options of `HELP_CMD COMMAND --help`.
check_program() {
  local name=$1 page=$2 text help cmd cmd_help section missing n=0
  shift 2
  text=$(render "$page")
  help=$("$@" --help) || die "$* --help failed"
  missing=$(missing_words "$text" $(long_options "$help") $(short_options "$help"))
  [[ -z $missing ]] || fail "$page lacks options of '$name --help': $(tr '\n' ' ' <<<"$missing")"
  while read -r cmd; do
    [[ -n $cmd ]] || continue
    n=$((n + 1))
    section=$(subsection "$text" "$name $cmd")
    if [[ -z $section ]]; then
      fail "$page has no subsection for '$name $cmd'"
      continue
    fi
    cmd_help=$("$@" $cmd --help) || die "$* $cmd --help failed"
    missing=$(missing_words "$section" $(long_options "$cmd_help" | grep -vx -- --conf))
    [[ -z $missing ]] ||
      fail "$page: the subsection '$name $cmd' lacks $(tr '\n' ' ' <<<"$missing")(from '$name $cmd --help')"
  done < <(commands "$help")
  echo "checked $page against '$name --help': $(long_options "$help" | wc -l) long options, $n commands"
}

check_program vvmd vvmd.8 "$vvmd"
check_program vvmover vvmover.8 "$vvmover"
check_program vvctl vvctl.8 "$vvctl"
check_program vvtape vvtape.8 "$vvtape"
# vvctl and vvtape do have commands: a change to the help's layout must not make the loop above
# check none.
[[ $(commands "$("$vvctl" --help)" | wc -l) -ge 14 ]] || fail "no commands found in 'vvctl --help'"
[[ $(commands "$("$vvtape" --help)" | wc -l) -ge 5 ]] || fail "no commands found in 'vvtape --help'"

# The checker fails a page that lacks an option: vvctl.8 without --page-size.
text=$(render vvctl.8)
[[ -n $(missing_words "${text//--page-size/}" --page-size) ]] ||
  fail "the check does not notice a page without --page-size"
section=$(subsection "$text" "vvctl vsn ls")
[[ -n $section && -n $(missing_words "$(subsection "$text" "vvctl vsn add")" --page-size) ]] ||
  fail "the subsections of vvctl.8 are not told apart (vsn add names --page-size?)"

# --- the plugin's keys ---
plugin_help=$(env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit "$VVM_PLUGIN" --help 2>&1) ||
  die "nbdkit $VVM_PLUGIN --help failed: $plugin_help"
keys=$(sed -n '/^plugin: vvm /,$p' <<<"$plugin_help" | sed -nE 's/^([a-z]+)=.*/\1=/p')
[[ $(wc -l <<<"$keys") -ge 3 ]] || fail "found no keys in the plugin's help: $plugin_help"
text=$(render nbdkit-vvm-plugin.1)
for key in $keys; do
  grep -qE -- "(^|[^a-z])$key" <<<"$text" || fail "nbdkit-vvm-plugin.1 lacks the plugin key $key"
done
echo "checked nbdkit-vvm-plugin.1 against the plugin's help: $(tr '\n' ' ' <<<"$keys")"

# --- every key of conf/vvm.conf, in its section of vvm.conf(5) ---
text=$(render vvm.conf.5)
n=0
while read -r kind key; do
  n=$((n + 1))
  # A named section ([media LTO9]) is documented as [media NAME].
  section=$(awk -v kind="$kind" '
    /^   [^ ]/ || /^[^ \t]/ { inside = ($0 ~ "^   \\[" kind "( [A-Za-z]+)?\\]$") }
    inside' <<<"$text")
  if [[ -z $section ]]; then
    fail "vvm.conf.5 has no subsection [$kind] (for $key in conf/vvm.conf)"
  elif ! grep -qE -- "^       $key( |$)" <<<"$section"; then
    fail "vvm.conf.5 does not document [$kind] $key (from conf/vvm.conf)"
  fi
done < <(awk '
    /^#?\[[a-z]+( [^]]*)?\]/ { kind = $1; sub(/^#?\[/, "", kind); sub(/\]$/, "", kind) }
    /^#?[a-z][a-z-]* = / { key = $1; sub(/^#/, "", key); if (!seen[kind " " key]++) print kind, key }
  ' "$VVM_SOURCE_DIR/conf/vvm.conf")
((n >= 25)) || fail "found only $n keys in conf/vvm.conf"
echo "checked vvm.conf.5 against the $n keys of conf/vvm.conf"

# --- libvvclient(3): the C API's functions and environment ---
header=$VVM_SOURCE_DIR/client/lib/vvclient_c.h
functions=$(grep -oE 'VVCLIENT_C_API [^(]*[ *](vv_[a-z_]+)\(' "$header" | grep -oE 'vv_[a-z_]+' | sort -u)
variables=$(grep -oE '\bVVM_[A-Z_]+' "$header" | grep -v '^VVM_VVCLIENT' | sort -u)
[[ $(wc -w <<<"$functions") -ge 10 ]] || fail "found only $(wc -w <<<"$functions") functions in $header"
text=$(render libvvclient.3)
missing=$(missing_words "$text" $functions $variables)
[[ -z $missing ]] || fail "libvvclient.3 lacks $(tr '\n' ' ' <<<"$missing")"
echo "checked libvvclient.3 against vvclient_c.h: $(tr '\n' ' ' <<<"$functions $variables")"

# --- NAME lines: what man -k vvm matches ---
for page in vvctl.8 vvmd.8 vvmover.8 vvtape.8 nbdkit-vvm-plugin.1 vvm.conf.5 packtab.5 libvvclient.3; do
  name=$(render "$page" | sed -n '/^NAME$/,/^$/p' | sed -n 2p)
  [[ $name == *vvm* ]] || fail "$page: its NAME line does not mention vvm: '$name'"
  grep -q '^\.TH "*[A-Z.-]*"* "*'"${page##*.}"'"* ' "$VVM_BUILD_DIR/$page" ||
    fail "$page is not a page of section ${page##*.}: $(grep '^\.TH' "$VVM_BUILD_DIR/$page")"
done

((failures == 0)) || die "$failures problems with the manual pages"
echo "ok: every page documents its program's options, commands and keys"
