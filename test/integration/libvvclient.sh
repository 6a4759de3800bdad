#!/usr/bin/env bash
# libvvclient.sh: libvvclient with the real vvmd and nbdkit plugin. vvcopy (the C example) copies
# a random file of an odd size into a new VV, finished, and back out; nbdcopy, qemu-img compare
# and the cache file agree. A C program (compiled as C, linking the C API) writes and reads at odd
# offsets, across the end and past it, and checks the errors (EBADF, ENOSPC, EROFS once finished);
# nbdcopy then reads what it wrote. A user without permission is refused with a message; an
# unknown VV is named. A program that reaches vvmd and nbdkit only over TCP, with no vvm.conf
# (VVM_VVMD, VVM_NBD_URI), reads a VV the same way, and is refused at vv_openread (EPERM) while
# this host holds a hot VV (one writer host).
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

ctest=$VVM_BUILD_DIR/test/libvvclient_c_test
make_tmpdir
chmod 755 "$tmpdir" # the unprivileged user below must reach the sockets and vvm.conf
vvmd_port=$(pick_unused_port)
vvm_conf vvmd.listen+="127.0.0.1:$vvmd_port" vvmd.allow-uid=65534 vvmd.allow-host=127.0.0.1 \
  vvmd.request-timeout=10s plugin.stage-timeout=5s
uri() { echo "nbd+unix:///$1?socket=$tmpdir/nbd.sock"; }
state() { ctl show "$1" --json | jq -r .state; }
# fails CMD...: CMD exits with status 1; its output in $out.
fails() {
  local status=0
  out=$("$@" 2>&1) || status=$?
  ((status == 1)) || die "$* exited with $status, wanted 1: $out"
}

start_vvmd
start_plugin "$tmpdir/nbd.sock"
chmod 777 "$tmpdir/nbd.sock"
export VVM_CONF=$conf
export VVM_NBD_URI="nbd+unix:///?socket=$tmpdir/nbd.sock"

# --- vvcopy: a file in, finished; back out; every other client sees the same bytes ---
head -c $((5 * M + 4321)) /dev/urandom >"$tmpdir/in"
name=$("$vvcopy" --id 77 "$tmpdir/in" A)
[[ $name =~ ^A[0-9]{10}$ ]] || die "vvcopy printed '$name', not a VV name"
show=$(ctl show "$name" --json)
[[ $(jq -r .state <<<"$show") == finished ]] || die "vvcopy did not finish $name: $show"
[[ $(jq -r .size <<<"$show") == $((5 * M + 4321)) ]] || die "$name has the wrong size: $show"
[[ $(jq -r .client_id <<<"$show") == 77 ]] || die "$name does not have the id 77: $show"
cmp "$tmpdir/in" "$cache/$name" || die "the cache file of $name differs from the input"
"$vvcopy" --read "$name" "$tmpdir/out"
cmp "$tmpdir/in" "$tmpdir/out" || die "vvcopy --read gave other bytes"
"$vvcopy" --read "$name" - | cmp - "$tmpdir/in" || die "vvcopy --read to stdout gave other bytes"
nbdcopy "$(uri "vv/$name")" "$tmpdir/nbdcopy.out"
cmp "$tmpdir/in" "$tmpdir/nbdcopy.out" || die "nbdcopy read other bytes than vvcopy wrote"
qemu-img compare -f raw -F raw "$tmpdir/in" "$(uri "vv/$name")" >/dev/null ||
  die "qemu-img compare: vv/$name differs from the input"
grep -Eq "VV $name open [0-9]+ closed by .*\(written;" "$vvmd_log" ||
  die "vvmd did not record vvcopy's write and close of $name"
"$vvcopy" --no-finish --id 78 "$tmpdir/in" A >"$tmpdir/hot.name"
[[ $(state "$(cat "$tmpdir/hot.name")") == hot ]] || die "vvcopy --no-finish finished the VV"
echo "ok: vvcopy copies a file in and out; nbdcopy, qemu-img compare and the cache agree"

# --- the C API, compiled as C: offsets, the end, errors; then read by another client ---
cname=$("$ctest" | tail -n 1)
[[ $cname =~ ^A[0-9]{10}$ ]] || die "the C test printed '$cname', not a VV name"
[[ $(state "$cname") == finished ]] || die "the C test's VV $cname is not finished"
nbdcopy "$(uri "vv/$cname")" "$tmpdir/c.out"
"$ctest" --pattern >"$tmpdir/c.want"
cmp "$tmpdir/c.want" "$tmpdir/c.out" || die "nbdcopy read other bytes than the C test wrote"
echo "ok: the C test program passed, and nbdcopy reads what it wrote"

# --- errors that reach the user: a VV that does not exist, one that is not yours, usage ---
fails "$vvcopy" --read A0999999999 "$tmpdir/x"
grep -q "vvcopy: A0999999999: vv_openread: .*A0999999999.* (No such file or directory)" <<<"$out" ||
  die "an unknown VV: $out"
fails "${nobody[@]}" "$vvcopy" --read "$name" /dev/null
want="vvcopy: $name: vv_openread: vv/$name: the NBD server refused the export (the VV is 0640 "
want+="for root:root; nbdkit's log says why): .* (Permission denied)"
grep -q "$want" <<<"$out" || die "nobody reading root's 0640 VV: $out"
status=0
"$vvcopy" --read "$name" >/dev/null 2>&1 || status=$?
((status == 2)) || die "vvcopy with one argument exited with $status, not 2"
echo "ok: an unknown VV, a refused user and a usage error"

# --- from another host: vvmd and nbdkit over TCP only, and no vvm.conf ---
nbd_port=$(pick_unused_port)
start_plugin "tcp:$nbd_port"
remote=$(ctl create --class A --size 3M --perms 644) # a TCP peer gets the other bits
qemu-io -f raw -c 'write -P 0x5c 0 1M' -c 'write -P 0xc5 2M 1M' "$(uri "vv/$remote")" >/dev/null
# nbdkit tells vvmd of the close after qemu-io has gone: a finish before that is refused.
wait_log "$vvmd_log" "VV $remote open [0-9]+ closed by "
ctl finish "$remote" >/dev/null
qemu-img create -q -f raw "$tmpdir/remote.want" 3M
qemu-io -f raw -c 'write -P 0x5c 0 1M' -c 'write -P 0xc5 2M 1M' "$tmpdir/remote.want" >/dev/null
env -u VVM_CONF VVM_VVMD="127.0.0.1:$vvmd_port" VVM_NBD_URI="nbd://127.0.0.1:$nbd_port" \
  "$vvcopy" --read "$remote" "$tmpdir/remote.out"
cmp "$tmpdir/remote.want" "$tmpdir/remote.out" || die "the read over TCP gave other bytes"
echo "ok: a program with only TCP endpoints reads a VV"

# --- one writer host: while this host holds a hot VV, the open from "another" (TCP) fails ---
busy=$(ctl create --class A --size 1M --perms 666)
connect_client writer "$(uri "vv/$busy")"
fails env -u VVM_CONF VVM_VVMD="127.0.0.1:$vvmd_port" VVM_NBD_URI="nbd://127.0.0.1:$nbd_port" \
  "$vvcopy" --read "$busy" /dev/null
grep -q "vvcopy: $busy: vv_openread: vv/$busy: the first read .*refused: .*(Operation not permitted)" \
  <<<"$out" || die "the second host's open: $out"
disconnect_client writer
echo "ok: a refusal at the plugin's real open is the open's error"
echo "libvvclient: all checks passed"
