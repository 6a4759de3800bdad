#!/usr/bin/env bash
# tls-plugin.sh: the plugin's link to vvmd over TLS. vvmd listens on tls: alone, so the plugin
# (vvm.conf's first [vvmd] listen) reaches it over TLS with the identity of nbdkit's environment
# (VVM_TLS_PSK_FILE, or VVM_TLS_CERTIFICATES), the identity its tls-identity= listener serves.
# Real vvmd, real nbdkit; nbdinfo and qemu-io over NBD-TLS:
#
# - over PSK, then over X.509 (both the NBD and the control leg): alice's nbdkit lists her VV,
#   qemu-io writes it and reads it back, and vvmd logs the opens as identity alice's;
# - bob's nbdkit, linked to vvmd as bob, is refused alice's VV, with vvmd's reason in its log;
# - an nbdkit whose environment has no TLS credentials cannot reach vvmd, and says why.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
pki=$tmpdir/pki
"$VVM_SOURCE_DIR/test/harness/make-tls.sh" "$pki" alice bob
cat "$pki/alice/alice.psk" "$pki/bob/bob.psk" >"$tmpdir/vvmd.psk"
tls_port=$(pick_unused_port)
vvm_conf vvmd.listen="tls:127.0.0.1:$tls_port" vvmd.allow-host=127.0.0.1 \
  vvmd.tls-psk-file="$tmpdir/vvmd.psk" vvmd.tls-certificates="$pki" \
  identity.alice.user=1001 identity.alice.group=1001 identity.alice.psk-username=alice \
  identity.alice.client-ca="$pki/alice/client-ca-cert.pem" \
  identity.bob.user=1002 identity.bob.group=1002 identity.bob.psk-username=bob \
  identity.bob.client-ca="$pki/bob/client-ca-cert.pem"
# Every vvctl of the test is alice, over TLS: vvmd has no other endpoint.
export VVM_TLS_PSK_FILE=$pki/alice/alice.psk
start_vvmd --log-level debug
expect 1 "a tls: endpoint needs credentials" -- env -u VVM_TLS_PSK_FILE "$vvctl" --conf "$conf" ping
vv=$(ctl create --class A --size 8M --perms 0600)
[[ $(ctl show "$vv" --json | jq -r .owner) == 1001 ]] || die "$vv is not alice's"

# plugin NAME [VAR=VALUE] -- NBDKIT_OPTIONS... IDENTITY: nbdkit with the plugin (conf=$conf,
# tls-identity=IDENTITY) on a port of its own, in ${port[NAME]} and ${log[NAME]}; its
# environment has no VVM_TLS_* but VAR=VALUE.
declare -A port log
plugin() {
  local name=$1 set=() p saved_psk=${VVM_TLS_PSK_FILE:-}
  shift
  [[ $1 == -- ]] || {
    set=("$1")
    shift
  }
  shift
  p=$(pick_unused_port)
  unset VVM_TLS_PSK_FILE VVM_TLS_CERTIFICATES
  ((${#set[@]} == 0)) || export "${set[0]}"
  local identity=${*: -1}
  set -- "${@:1:$#-1}"
  start_nbdkit - -i 127.0.0.1 -p "$p" "$@" "$VVM_PLUGIN" conf="$conf" tls-identity="$identity"
  unset VVM_TLS_PSK_FILE VVM_TLS_CERTIFICATES
  export VVM_TLS_PSK_FILE=$saved_psk
  port[$name]=$p
  log[$name]=$nbdkit_log
}
# qio OBJECT LISTENER QEMU_IO_ARGS...: qemu-io on vv/$vv over NBD-TLS; every command must succeed.
qio() {
  local object=$1 l=$2 out status=0
  shift 2
  out=$(qemu-io --object "$object" \
    --image-opts "driver=nbd,host=127.0.0.1,port=${port[$l]},export=vv/$vv,tls-creds=tls0" \
    "$@" 2>&1) || status=$?
  ((status == 0)) && ! grep -qi 'fail' <<<"$out" || die "qemu-io $* on $l: $out"
}
qpsk() { echo "tls-creds-psk,id=tls0,dir=$pki/$1,username=$1,endpoint=client"; }
qx509() { echo "tls-creds-x509,id=tls0,dir=$pki/$1/client,endpoint=client"; }
# links USER CREDENTIAL: how many connections vvmd logged from identity USER with CREDENTIAL.
links() { grep -c "connection from identity $1 (uid [0-9]*, $2" "$vvmd_log" || true; }

# --- PSK on both legs: NBD to alice's nbdkit, and its link to vvmd ---
plugin alice-psk VVM_TLS_PSK_FILE="$pki/alice/alice.psk" -- \
  --tls=require --tls-psk="$pki/alice/alice.psk" alice
before=$(links alice "PSK username 'alice'")
nbdinfo --list "nbds://alice@127.0.0.1:${port[alice-psk]}/?tls-psk-file=$pki/alice/alice.psk" |
  grep -q "vv/$vv" || die "alice's nbdkit does not list vv/$vv"
size=$(nbdinfo --size "nbds://alice@127.0.0.1:${port[alice-psk]}/vv/$vv?tls-psk-file=$pki/alice/alice.psk")
((size == 8 << 20)) || die "nbdinfo --size of vv/$vv over TLS: $size"
qio "$(qpsk alice)" alice-psk -c 'write -P 0xa1 0 1M' -c 'write -P 0xa2 7M 1M'
qio "$(qpsk alice)" alice-psk -r -c 'read -P 0xa1 0 1M' -c 'read -P 0 1M 6M' -c 'read -P 0xa2 7M 1M'
(($(links alice "PSK username 'alice'") > before)) ||
  die "vvmd logged no link from the plugin as identity alice over PSK"
echo "ok: over PSK on both legs nbdinfo listed vv/$vv, qemu-io wrote and read it back"

# --- X.509 on both legs ---
plugin alice-x509 VVM_TLS_CERTIFICATES="$pki/alice/client" -- \
  --tls=require --tls-certificates="$pki/alice/nbdkit" --tls-verify-peer alice
before=$(links alice "certificate 'CN=alice,O=vvm'")
qio "$(qx509 alice)" alice-x509 -c 'write -P 0xb1 2M 1M'
qio "$(qx509 alice)" alice-x509 -r -c 'read -P 0xa1 0 1M' -c 'read -P 0xb1 2M 1M'
(($(links alice "certificate 'CN=alice,O=vvm'") > before)) ||
  die "vvmd logged no link from the plugin as identity alice over X.509"
echo "ok: over X.509 on both legs qemu-io wrote and read vv/$vv"

# --- bob's nbdkit, linked as bob, is refused alice's VV ---
plugin bob-psk VVM_TLS_PSK_FILE="$pki/bob/bob.psk" -- \
  --tls=require --tls-psk="$pki/bob/bob.psk" bob
status=0
out=$(qemu-io --object "$(qpsk bob)" \
  --image-opts "driver=nbd,host=127.0.0.1,port=${port[bob-psk]},export=vv/$vv,tls-creds=tls0" \
  -r -c 'read 0 4k' 2>&1) || status=$?
((status != 0)) || grep -qi 'fail' <<<"$out" || die "bob read alice's vv/$vv: $out"
wait_log "${log[bob-psk]}" "may not open VV $vv: its mode is rw-------"
echo "ok: bob's nbdkit, linked to vvmd as bob, is refused alice's VV"

# --- no credentials in nbdkit's environment: the plugin says what it lacks ---
plugin bare -- --tls=require --tls-psk="$pki/alice/alice.psk" alice
status=0
out=$(qemu-io --object "$(qpsk alice)" \
  --image-opts "driver=nbd,host=127.0.0.1,port=${port[bare]},export=vv/$vv,tls-creds=tls0" \
  -r -c 'read 0 4k' 2>&1) || status=$?
((status != 0)) || grep -qi 'fail' <<<"$out" || die "a plugin without credentials opened vv/$vv"
wait_log "${log[bare]}" "a tls: endpoint needs credentials: VVM_TLS_PSK_FILE"
echo "tls-plugin: all checks passed"
