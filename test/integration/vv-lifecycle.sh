#!/usr/bin/env bash
# vv-lifecycle.sh: a VV's whole life with every real process: vvmd, one vvmover with two emulated
# drives (LTO9 and LTO8) and nbdkit with the plugin on a Unix socket and on TCP. Two VVs of class A
# are created with vvctl; qemu-io writes patterns into one through nbd+unix:// and into the other
# through nbd://127.0.0.1; `vvctl finish --wait` returns once both copies of each exist, and `vvtape
# ls --json` on both tape images shows each VV's tape file (file number, serial, size) where `vvctl
# show` records it; `vvctl evict` drops the cache files; `qemu-img compare` of each export against a
# pattern file with the same bytes stages the VV back transparently, and `vvctl show --json` says
# cached again.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
port=$(pick_unused_port)
vvm_conf drives="LTO9 LTO8" vvmd.allow-host=127.0.0.1 plugin.stage-timeout=2m

unix_uri() { echo "nbd+unix:///vv/$1?socket=$tmpdir/nbd.sock"; }
tcp_uri() { echo "nbd://127.0.0.1:$port/vv/$1"; }
# pattern_file PATH QEMU_IO_ARGS...: a 64 MiB raw file with the bytes those qemu-io commands write.
pattern_file() {
  local path=$1
  shift
  qemu-img create -q -f raw "$path" 64M
  io "$path" "$@"
}
# holds JQ_FILTER JSON WHAT: jq -e JQ_FILTER holds on JSON.
holds() { jq -e "$1" <<<"$2" >/dev/null || die "$3: $2"; }

start_vvmd
start_mover m1
start_plugin "$tmpdir/nbd.sock"
start_plugin "tcp:$port"
ctl vsn add L90001 --media LTO9 --class A >/dev/null
ctl vsn add L80001 --media LTO8 --class A >/dev/null

# --- create, and write through NBD: one VV over the Unix socket, the other over TCP ---
one=$(ctl create --class A --size 64M)
# A TCP client is its host, and gets the "other" bits: everyone may write the second VV.
two=$(ctl create --class A --size 64M --perms 666)
[[ $one =~ ^A[0-9]{10}$ && $two =~ ^A[0-9]{10}$ && $one != "$two" ]] ||
  die "create printed '$one' and '$two'"
holds '.state == "hot" and .cache == "cached" and .size == 67108864 and .copies == []' \
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
  holds '.state == "archived" and (.copies | length) == 2
    and .copies[0].vsn == "L90001" and .copies[0].media == "LTO9"
    and .copies[1].vsn == "L80001" and .copies[1].media == "LTO8"' "$json" "show $vv"
  serial=$(jq .serial <<<"$json")
  for c in 0 1; do
    file=$(jq ".copies[$c].file" <<<"$json")
    tape=$([[ $c == 0 ]] && echo "$ls9" || echo "$ls8")
    holds ".files[] | select(.file == $file) | .state == \"ok\" and .hdr.class == \"A\"
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
  holds '.cache == "evicted"' "$(ctl show "$vv" --json)" "$vv after evict"
  [[ ! -e $cache/$vv ]] || die "$vv's cache file is still there after evict"
done
echo "ok: both VVs evicted"
qemu-img compare -f raw -F raw "$tmpdir/one.pattern" "$(unix_uri "$one")" ||
  die "qemu-img compare: vv/$one differs from its pattern after the stage"
qemu-img compare -f raw -F raw "$tmpdir/two.pattern" "$(tcp_uri "$two")" ||
  die "qemu-img compare: vv/$two differs from its pattern after the stage"
for vv in "$one" "$two"; do
  holds '.cache == "cached" and .state == "archived"' "$(ctl show "$vv" --json)" "$vv after the read"
  grep -q "stage VV $vv .*a client waits" "$vvmd_log" || die "vvmd did not log $vv's stage"
done
cmp "$tmpdir/one.pattern" "$cache/$one" || die "$one's staged cache file differs"
cmp "$tmpdir/two.pattern" "$cache/$two" || die "$two's staged cache file differs"
echo "ok: qemu-img compare staged both back (Unix socket and TCP); show says cached"
echo "vv-lifecycle: all checks passed"
