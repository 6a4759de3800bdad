#!/usr/bin/env bash
# vv-lifecycle.sh: a VV's whole life with every real process, as issue 6 words it: vvmd, one
# vvmover with two emulated drives (LTO9 and LTO8) and nbdkit with the plugin on a Unix socket
# and on TCP. Two VVs of class A are created with vvctl; qemu-io writes patterns into one through
# nbd+unix:// and into the other through nbd://127.0.0.1; `vvctl finish --wait` returns once both
# copies of each exist, and `vvtape ls --json` on both tape images shows each VV's tape file
# (file number, serial, size) where `vvctl show` records it; `vvctl evict` drops the cache files;
# `qemu-img compare` of each export against a pattern file with the same bytes stages the VV back
# transparently, and `vvctl show --json` says cached again.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

vvmd=$VVM_BUILD_DIR/vvmd/vvmd
vvmover=$VVM_BUILD_DIR/mover/vvmover
vvctl=$VVM_BUILD_DIR/client/vvctl
vvtape=$VVM_BUILD_DIR/mover/vvtape
make_tmpdir
library=$tmpdir/state/library
cache=$tmpdir/state/cache
port=$(pick_unused_port)
M=$((1024 * 1024))

cat >"$tmpdir/vvm.conf" <<CONF
[global]
state-dir = $tmpdir/state
[vvmd]
listen = unix:$tmpdir/run/vvmd.sock
allow-host = 127.0.0.1
archive-max-wait = 0
[plugin]
stage-timeout = 2m
[media LTO9]
capacity = 1G
block-size = 64K
[media LTO8]
capacity = 1G
block-size = 64K
[class A]
media = LTO9 LTO8
[mover m1]
listen = unix:$tmpdir/run/m1.sock
stall-timeout = 20s
[drive d0]
mover = m1
media = LTO9
[drive d1]
mover = m1
media = LTO8
CONF
conf=$tmpdir/vvm.conf
ctl() { "$vvctl" --conf "$conf" "$@"; }
unix_uri() { echo "nbd+unix:///vv/$1?socket=$tmpdir/nbd.sock"; }
tcp_uri() { echo "nbd://127.0.0.1:$port/vv/$1"; }
# io URI QEMU_IO_ARGS...: qemu-io succeeds, every command with it (a failed pattern check too).
io() {
  local uri=$1 out status=0
  shift
  out=$(qemu-io -f raw "$@" "$uri" 2>&1) || status=$?
  ((status == 0)) && ! grep -qi 'fail' <<<"$out" || die "qemu-io $* $uri: $out"
}
# pattern_file PATH QEMU_IO_ARGS...: a 64 MiB raw file with the bytes those qemu-io commands write.
pattern_file() {
  local path=$1
  shift
  qemu-img create -q -f raw "$path" 64M
  io "$path" "$@"
}
# check JQ_FILTER JSON WHAT: jq -e JQ_FILTER holds on JSON.
check() { jq -e "$1" <<<"$2" >/dev/null || die "$3: $2"; }

start_daemon vvmd "$vvctl" --conf "$conf" ping --timeout 1 -- "$vvmd" --conf "$conf"
start_daemon mover "$vvctl" --conf "$conf" ping --target mover:m1 --timeout 1 -- \
  "$vvmover" --conf "$conf" --name m1
start_nbdkit "$tmpdir/nbd.sock" "$VVM_PLUGIN" conf="$conf"
start_nbdkit - -i 127.0.0.1 -p "$port" "$VVM_PLUGIN" conf="$conf"
ctl vsn add L90001 --media LTO9 --class A >/dev/null
ctl vsn add L80001 --media LTO8 --class A >/dev/null

# --- create, and write through NBD: one VV over the Unix socket, the other over TCP ---
one=$(ctl create --class A --size 64M)
# A TCP client is its host, and gets the "other" bits: everyone may write the second VV.
two=$(ctl create --class A --size 64M --perms 666)
[[ $one =~ ^A[0-9]{10}$ && $two =~ ^A[0-9]{10}$ && $one != "$two" ]] ||
  die "create printed '$one' and '$two'"
check '.state == "hot" and .cache == "cached" and .size == 67108864 and .copies == []' \
  "$(ctl show "$one" --json)" "a new VV"
one_io=(-c 'write -P 0x5a 0 64M')
two_io=(-c 'write -P 0xa5 0 1M' -c 'write -P 0x3c 20M 3M' -c 'write -P 0xc3 63M 1M')
io "$(unix_uri "$one")" "${one_io[@]}"
io "$(tcp_uri "$two")" "${two_io[@]}"
pattern_file "$tmpdir/one.pattern" "${one_io[@]}"
pattern_file "$tmpdir/two.pattern" "${two_io[@]}"
cmp "$tmpdir/one.pattern" "$cache/$one" || die "$one's cache file is not what qemu-io wrote"
cmp "$tmpdir/two.pattern" "$cache/$two" || die "$two's cache file is not what qemu-io wrote"
echo "ok: $one written through nbd+unix://, $two through nbd://127.0.0.1:$port"

# --- finish --wait: both copies of each, on the tapes where show says ---
ctl finish "$two" >/dev/null
out=$(ctl finish "$one" --wait --timeout 120) || die "finish --wait $one: $out"
[[ $(tail -n1 <<<"$out") == "$one: archived" ]] || die "finish --wait $one printed: $out"
out=$(ctl finish "$two" --wait --timeout 120) || die "finish --wait $two: $out"
[[ $(tail -n1 <<<"$out") == "$two: archived" ]] || die "finish --wait $two printed: $out"
ls9=$("$vvtape" ls "$library/L90001.tap" --json) || die "vvtape ls L90001: $ls9"
ls8=$("$vvtape" ls "$library/L80001.tap" --json) || die "vvtape ls L80001: $ls8"
for vv in "$one" "$two"; do
  json=$(ctl show "$vv" --json)
  check '.state == "archived" and (.copies | length) == 2
    and .copies[0].vsn == "L90001" and .copies[0].media == "LTO9"
    and .copies[1].vsn == "L80001" and .copies[1].media == "LTO8"' "$json" "show $vv"
  serial=$(jq .serial <<<"$json")
  for c in 0 1; do
    file=$(jq ".copies[$c].file" <<<"$json")
    tape=$([[ $c == 0 ]] && echo "$ls9" || echo "$ls8")
    check ".files[] | select(.file == $file) | .state == \"ok\" and .hdr.class == \"A\"
      and .hdr.serial == $serial and .hdr.size == $((64 * M)) and .hdr.file_number == $file
      and .eof.serial == $serial and .eof.size == $((64 * M))" "$tape" \
      "$vv copy $((c + 1)): file $file of $(jq -r .vsn <<<"$tape") is not its"
  done
  echo "ok: $vv archived: $(jq -c '[.copies[] | "\(.vsn) file \(.file)"]' <<<"$json")," \
    "both tape files carry serial $serial and size 64M"
done
[[ $(jq '[.files[] | select(.hdr != null)] | length' <<<"$ls9") == 2 &&
  $(jq '[.files[] | select(.hdr != null)] | length' <<<"$ls8") == 2 ]] ||
  die "the tapes hold other files than the two VVs: $ls9 $ls8"

# --- evict, then read back through NBD: the opens stage them transparently ---
for vv in "$one" "$two"; do
  out=$(ctl evict "$vv") || die "evict $vv: $out"
  check '.cache == "evicted"' "$(ctl show "$vv" --json)" "$vv after evict"
  [[ ! -e $cache/$vv ]] || die "$vv's cache file is still there after evict"
done
echo "ok: both VVs evicted"
qemu-img compare -f raw -F raw "$tmpdir/one.pattern" "$(unix_uri "$one")" ||
  die "qemu-img compare: vv/$one differs from its pattern after the stage"
qemu-img compare -f raw -F raw "$tmpdir/two.pattern" "$(tcp_uri "$two")" ||
  die "qemu-img compare: vv/$two differs from its pattern after the stage"
for vv in "$one" "$two"; do
  check '.cache == "cached" and .state == "archived"' "$(ctl show "$vv" --json)" "$vv after the read"
  grep -q "stage VV $vv .*a client waits" "$tmpdir/vvmd.log" || die "vvmd did not log $vv's stage"
done
cmp "$tmpdir/one.pattern" "$cache/$one" || die "$one's staged cache file differs"
cmp "$tmpdir/two.pattern" "$cache/$two" || die "$two's staged cache file differs"
echo "ok: qemu-img compare staged both back (Unix socket and TCP); show says cached"
echo "vv-lifecycle: all checks passed"
