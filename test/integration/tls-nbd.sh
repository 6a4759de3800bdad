#!/usr/bin/env bash
# tls-nbd.sh: packs and VVs over NBD with TLS, PSK and X.509, one nbdkit a TLS identity
# (tls-identity=NAME, --tls=require), as the README's "TLS" section sets it up.
#
# - the plugin refuses to start a listener that could admit someone else as the identity: a PSK
#   file holding another identity's user, no --tls, X.509 without --tls-verify-peer or with
#   another identity's CA;
# - every client that speaks TLS: nbdinfo, nbdsh, nbdcopy, qemu-img and qemu-io over PSK and
#   X.509, nbd-client -l over X.509 (it has no PSK), fio over X.509 (its nbd engine may not read
#   a PSK file from the URI; libnbd's default certificate folder, $HOME/.pki/libnbd, serves it);
#   every NBD feature over TLS (zero, fast zero, trim, flush, FUA, extents, cache, multi-conn);
# - permissions by identity: alice's pack and VV serve alice and refuse bob, naming the identity;
#   an exclusive pack is held by an identity (alice's second connection shares it, bob is refused
#   naming alice); the host allow-list still applies on top;
# - refused, each with its reason in the log, while alice's open connection and new ones keep
#   working: a wrong PSK, an unknown username, bob's user at alice's listener, a certificate of
#   another CA with alice's name, an expired certificate, plaintext to a TLS port (nbdkit's own
#   refusal under --tls=require; the plugin's, naming the export, under --tls=on) and TLS to a
#   plaintext port.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
chmod 755 "$tmpdir"
pki=$tmpdir/pki
"$VVM_SOURCE_DIR/test/harness/make-tls.sh" "$pki" alice bob

truncate -s $((16 * M)) "$tmpdir/disk.img"
printf '%s\n' \
  "alice disk.img 0  4M shared    1001 1001 0600" \
  "team  disk.img 4M 4M exclusive 1001 2000 0660" \
  "open  disk.img 8M 4M shared    root root 0644" >"$tmpdir/packtab"
vvm_conf vvmd.allow-host=127.0.0.1 plugin.packtab="$tmpdir/packtab" \
  identity.alice.user=1001 identity.alice.group=1001 identity.alice.psk-username=alice \
  identity.alice.subject=CN=alice,O=vvm identity.alice.client-ca="$pki/alice/client-ca-cert.pem" \
  identity.bob.user=1002 identity.bob.group=1002 identity.bob.groups=2000 \
  identity.bob.psk-username=bob identity.bob.client-ca="$pki/bob/client-ca-cert.pem"
start_vvmd
vv=$(ctl create --class A --size 8M --owner 1001 --group 1001 --perms 0600)

# --- listeners that could admit someone else as alice do not start ---
# refused_start PATTERN NBDKIT_ARGS...: nbdkit with the plugin, conf and tls-identity=alice exits
# 1 at start-up and says PATTERN.
refused_start() {
  local pattern=$1
  shift
  expect 1 "$pattern" -- env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} \
    nbdkit -f -i 127.0.0.1 -p "$(pick_unused_port)" "$@" "$VVM_PLUGIN" conf="$conf" \
    tls-identity=alice
}
cat "$pki/alice/alice.psk" "$pki/bob/bob.psk" >"$tmpdir/both.psk"
refused_start "both.psk:2: PSK username 'bob' is \[identity bob\]'s, not one of \[identity alice\]'s" \
  --tls=require --tls-psk="$tmpdir/both.psk"
refused_start "tls-identity=alice needs nbdkit --tls=require" --tls-psk="$pki/alice/alice.psk"
refused_start "needs nbdkit --tls-verify-peer" --tls=require --tls-certificates="$pki/alice/nbdkit"
refused_start "ca-cert.pem is not \[identity alice\]'s client-ca" \
  --tls=require --tls-certificates="$pki/bob/nbdkit" --tls-verify-peer
expect 1 "tls-identity=carol: $conf has no \[identity carol\] \(it has: alice, bob\)" -- \
  env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit -f -p "$(pick_unused_port)" \
  --tls=require --tls-psk="$pki/alice/alice.psk" "$VVM_PLUGIN" conf="$conf" tls-identity=carol

# --- the listeners: alice and bob over PSK, alice over X.509, alice over PSK with --tls=on, and
# a plaintext one ---
listen() { # listen NAME NBDKIT_ARGS...: an nbdkit with the plugin on its own port, in ${port[NAME]}
  local name=$1 p
  shift
  p=$(pick_unused_port)
  start_nbdkit - -i 127.0.0.1 -p "$p" "$@"
  port[$name]=$p
  log[$name]=$nbdkit_log
}
declare -A port log
listen alice-psk --tls=require --tls-psk="$pki/alice/alice.psk" \
  "$VVM_PLUGIN" conf="$conf" tls-identity=alice
listen bob-psk --tls=require --tls-psk="$pki/bob/bob.psk" "$VVM_PLUGIN" conf="$conf" tls-identity=bob
listen alice-x509 --tls=require --tls-certificates="$pki/alice/nbdkit" --tls-verify-peer \
  "$VVM_PLUGIN" conf="$conf" tls-identity=alice
listen alice-on --tls=on --tls-psk="$pki/alice/alice.psk" \
  "$VVM_PLUGIN" conf="$conf" tls-identity=alice
listen plain "$VVM_PLUGIN" conf="$conf"
# alice's listener with vvm.conf's allow-host excluding her host: the list applies on top.
vvm_conf file="$tmpdir/deny.conf" vvmd.allow-host=127.0.0.2 plugin.packtab="$tmpdir/packtab" \
  identity.alice.user=1001 identity.alice.group=1001 identity.alice.psk-username=alice
listen deny --tls=require --tls-psk="$pki/alice/alice.psk" \
  "$VVM_PLUGIN" conf="$tmpdir/deny.conf" tls-identity=alice

grep -q "every TLS peer of this listener is identity alice (uid 1001, gid 1001)" \
  "${log[alice-psk]}" || die "the listener does not say whose it is"

# psk USER EXPORT [LISTENER] [PSKFILE]: libnbd's URI for USER with a PSK file.
psk() {
  local user=$1 export=$2 l=${3:-$1-psk} file=${4:-$pki/$1/$1.psk}
  echo "nbds://$user@127.0.0.1:${port[$l]}/$export?tls-psk-file=$file"
}
# x509 EXPORT [CLIENT_DIR]: libnbd's URI for a certificate folder (alice's by default).
x509() { echo "nbds://127.0.0.1:${port[alice-x509]}/$1?tls-certificates=${2:-$pki/alice/client}"; }
# qemu's TLS objects: PSK (DIR/keys.psk) and X.509 (DIR/ca-cert.pem, client-cert.pem, -key.pem).
qpsk() { echo "tls-creds-psk,id=tls0,dir=$pki/$1,username=$1,endpoint=client"; }
qx509() { echo "tls-creds-x509,id=tls0,dir=${1:-$pki/alice/client},endpoint=client"; }
qopts() { echo "driver=nbd,host=127.0.0.1,port=${port[$1]},export=$2,tls-creds=tls0"; }
# qio OBJECT LISTENER EXPORT QEMU_IO_ARGS...: qemu-io over TLS; every command must succeed.
qio() {
  local object=$1 l=$2 export=$3 out status=0
  shift 3
  out=$(qemu-io --object "$object" --image-opts "$(qopts "$l" "$export")" "$@" 2>&1) || status=$?
  ((status == 0)) && ! grep -qi 'fail' <<<"$out" || die "qemu-io $* on $l $export: $out"
}
# qio_fails OBJECT LISTENER EXPORT QEMU_IO_ARGS...: qemu-io fails; its output in $out.
qio_fails() {
  local object=$1 l=$2 export=$3 status=0
  shift 3
  out=$(qemu-io --object "$object" --image-opts "$(qopts "$l" "$export")" "$@" 2>&1) || status=$?
  ((status != 0)) || grep -qi 'fail' <<<"$out" || die "qemu-io $* on $l $export succeeded: $out"
}
nbdsh_uri() { # nbdsh_uri URI SCRIPT: nbdsh connected to URI (which may name local files)
  nbdsh -c "h.set_uri_allow_local_file(True); h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)" \
    -c "h.connect_uri('$1')" -c "$2"
}

# --- listings: what each identity may open, and nothing else ---
names() { nbdinfo --list --json "$1" | jq -r '[.exports[]["export-name"]] | sort | join(" ")'; }
got=$(names "$(psk alice "")")
[[ $got == "pack/alice pack/alice@ro pack/open@ro pack/team pack/team@ro vv/$vv" ]] ||
  die "alice's listing: $got"
got=$(names "$(psk bob "")")
[[ $got == "pack/open@ro pack/team pack/team@ro" ]] || die "bob's listing: $got"
nbdinfo --list "$(x509 "")" | grep -q "protocol: newstyle-fixed with TLS" ||
  die "the X.509 listing did not say TLS"
got=$(names "nbd://127.0.0.1:${port[plain]}/") # a TCP host: every pack, the VVs others may read
[[ $got == "pack/alice pack/alice@ro pack/open pack/open@ro pack/team pack/team@ro" ]] ||
  die "the plaintext listing: $got"
echo "ok: nbdinfo --list over TLS shows each identity what it may open (and a TCP host its VVs)"

# --- every client over PSK: alice's VV written, read back, copied ---
qio "$(qpsk alice)" alice-psk "vv/$vv" -c 'write -P 0xa1 0 1M' -c 'write -P 0xa2 7M 1M'
qio "$(qpsk alice)" alice-psk "vv/$vv" -r -c 'read -P 0xa1 0 1M' -c 'read -P 0 1M 6M' \
  -c 'read -P 0xa2 7M 1M'
qemu-img create -q -f raw "$tmpdir/pattern" 8M
qemu-io -f raw -c 'write -P 0xa1 0 1M' -c 'write -P 0xa2 7M 1M' "$tmpdir/pattern" >/dev/null
nbdcopy "$(psk alice "vv/$vv")" "$tmpdir/nbdcopy.img"
cmp "$tmpdir/pattern" "$tmpdir/nbdcopy.img" || die "nbdcopy over PSK copied something else"
qemu-img convert --object "$(qpsk alice)" --image-opts "$(qopts alice-psk "vv/$vv")" \
  -O raw "$tmpdir/convert.img"
cmp "$tmpdir/pattern" "$tmpdir/convert.img" || die "qemu-img convert over PSK copied something else"
info=$(qemu-img info --object "$(qpsk alice)" --image-opts "$(qopts alice-psk "vv/$vv")")
grep -q "virtual size: 8 MiB" <<<"$info" || die "qemu-img info over PSK: $info"
size=$(nbdinfo --size "$(psk alice "vv/$vv")")
((size == 8 * M)) || die "nbdinfo --size over PSK: $size"
wait_log "$vvmd_log" "VV $vv open [0-9]+ read-write for 1001 \(gid 1001\) on 127.0.0.1"
echo "ok: nbdinfo, qemu-io, qemu-img, nbdcopy over PSK: alice wrote and read back vv/$vv"

# Every NBD feature over TLS, on alice's pack: what the server offers, then each command.
nbdsh_uri "$(psk alice pack/alice)" '
import errno
assert h.get_tls_negotiated()
for f in ("can_zero", "can_fast_zero", "can_trim", "can_flush", "can_fua", "can_cache",
          "can_multi_conn"):
    assert getattr(h, f)(), f
assert h.can_meta_context("base:allocation")
assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096
h.pwrite(b"\xab" * 65536, 0, nbd.CMD_FLAG_FUA)
h.flush()
h.zero(65536, 65536)
try:
    h.zero(65536, 131072, nbd.CMD_FLAG_FAST_ZERO)  # done at once, or refused at once: both honest
except nbd.Error as e:
    assert e.errnum == errno.ENOTSUP, e
h.trim(65536, 196608)
h.cache(65536, 0)
assert h.pread(65536, 0) == b"\xab" * 65536
assert h.pread(65536, 65536) == bytes(65536)
seen = []
h.block_status(4 * 1024 * 1024, 0, lambda ctx, off, ents, err: seen.extend(ents))
assert seen, "no extents"
' || die "an NBD feature failed over TLS"
echo "ok: zero, trim, flush, FUA, cache, extents, block size, multi-conn over TLS"

# --- every client over X.509 ---
qio "$(qx509)" alice-x509 pack/alice -c 'write -P 0xb1 0 64k' -c 'read -P 0xb1 0 64k'
nbdcopy "$(x509 "vv/$vv")" "$tmpdir/x509.img"
cmp "$tmpdir/pattern" "$tmpdir/x509.img" || die "nbdcopy over X.509 copied something else"
qemu-img compare --object "$(qx509)" --image-opts \
  "driver=raw,file.driver=file,file.filename=$tmpdir/pattern" "$(qopts alice-x509 "vv/$vv")" \
  >/dev/null || die "qemu-img compare over X.509: vv/$vv differs from the pattern"
out=$(nbd-client -l 127.0.0.1 "${port[alice-x509]}" -cacertfile "$pki/alice/client/ca-cert.pem" \
  -certfile "$pki/alice/client/client-cert.pem" -keyfile "$pki/alice/client/client-key.pem" 2>&1) ||
  die "nbd-client -l over X.509: $out"
grep -q "^vv/$vv" <<<"$out" && grep -q "^pack/alice" <<<"$out" || die "nbd-client -l listed: $out"
# fio: its nbd engine takes no local file from the URI; as a user, libnbd reads $HOME/.pki/libnbd.
mkdir -p "$tmpdir/fiohome/.pki"
cp -r "$pki/alice/client" "$tmpdir/fiohome/.pki/libnbd"
chown -R 65534:65534 "$tmpdir/fiohome"
out=$(HOME=$tmpdir/fiohome "${nobody[@]}" fio --name=tls --ioengine=nbd \
  --uri="nbds://127.0.0.1:${port[alice-x509]}/pack/alice" --rw=randrw --bs=4k --size=1M \
  --io_size=2M --verify=crc32c --iodepth=8 2>&1) || die "fio over X.509: $out"
grep -q "err= 0" <<<"$out" || die "fio over X.509: $out"
echo "ok: qemu-io, nbdcopy, qemu-img, nbdinfo, nbd-client -l, fio over X.509"

# --- permissions by identity ---
expect 1 "" -- nbdinfo "$(psk bob pack/alice)"
wait_log "${log[bob-psk]}" "pack 'alice': identity bob \(uid 1002, gid 1002\) may not open it read-write: its mode is rw------- for 1001:1001"
qio_fails "$(qpsk bob)" bob-psk "vv/$vv" -r -c 'read 0 4k'
wait_log "${log[bob-psk]}" "vv/$vv: 1002 \(gid 1002\) on 127.0.0.1 may not open VV $vv: its mode is rw-------"
qio "$(qpsk bob)" bob-psk pack/open@ro -r -c 'read 0 4k' # others' r--
qio_fails "$(qpsk bob)" bob-psk pack/open -c 'write 0 4k'
echo "ok: bob is refused alice's pack and VV, naming him; reads what others may"

# Alice's connection that stays open through every refusal below, reading once a line: its
# first read takes the hold of the exclusive pack team, for identity alice.
held=$tmpdir/held
mkfifo "$held.fifo"
nbdsh -c "h.set_uri_allow_local_file(True); h.connect_uri('$(psk alice pack/team)')" -c '
import sys
h.pread(512, 0)
print("held", flush=True)
for line in sys.stdin:
    h.pread(512, 0)
    print("still", flush=True)
' <"$held.fifo" >"$held.out" 2>&1 &
held_pid=$!
exec {held_fd}>"$held.fifo"
cleanup_fn kill_quietly "$held_pid"
wait_log "$held.out" "^held$"
# still_serving WHAT: after WHAT was refused, alice's open connection reads and a new one works.
still_serving() {
  local before i
  before=$(grep -c '^still$' "$held.out" || true)
  echo >&"$held_fd"
  for ((i = 0; i < 100; i++)); do
    (($(grep -c '^still$' "$held.out" || true) > before)) && break
    sleep 0.1
  done
  (($(grep -c '^still$' "$held.out" || true) > before)) ||
    die "alice's open connection stopped after $1: $(cat "$held.out")"
  nbdinfo --size "$(psk alice pack/alice)" >/dev/null || die "alice's new connection failed after $1"
  echo "ok: refused $1, its reason in the log; alice still served"
}

# Exclusive holds by identity: alice's second connection shares her hold on team; bob (in its
# group, rw) is refused naming her.
qio "$(qpsk alice)" alice-psk pack/team -c 'write -P 2 4k 4k'
qio_fails "$(qpsk bob)" bob-psk pack/team -c 'write 0 4k'
wait_log "${log[bob-psk]}" "team.*identity alice"
still_serving "bob on alice's exclusive pack"

handshake_errors() { grep -c "error: gnutls_handshake" "${log[$1]}" || true; }

printf 'alice:%s\n' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff >"$tmpdir/wrong.psk"
n=$(handshake_errors alice-psk)
expect 1 "gnutls_handshake|connection is closed|TLS" -- \
  nbdinfo "$(psk alice pack/alice alice-psk "$tmpdir/wrong.psk")"
wait_log "${log[alice-psk]}" "error: gnutls_handshake: "
(($(handshake_errors alice-psk) > n)) || die "no handshake error logged for a wrong PSK"
# nbdkit's line names only the connection's number; the plugin's, under that number, the client.
conn=$(grep "error: gnutls_handshake" "${log[alice-psk]}" | tail -n1 | grep -o 'vvm\[[0-9]*\]')
grep -qF "$conn: debug: client 127.0.0.1 port " "${log[alice-psk]}" ||
  die "no line says who connection $conn, refused by its handshake, was"
still_serving "a wrong PSK"

printf 'mallory:%s\n' 00112233445566778899aabbccddeeff >"$tmpdir/mallory.psk"
n=$(handshake_errors alice-psk)
expect 1 "gnutls_handshake|TLS" -- nbdinfo "$(psk mallory pack/alice alice-psk "$tmpdir/mallory.psk")"
(($(handshake_errors alice-psk) > n)) || die "no handshake error logged for an unknown username"
still_serving "an unknown PSK username"

n=$(handshake_errors alice-psk)
expect 1 "gnutls_handshake|TLS" -- nbdinfo "$(psk bob pack/alice alice-psk)"
(($(handshake_errors alice-psk) > n)) || die "no handshake error logged for bob at alice's listener"
still_serving "bob's user at alice's listener"

# A certificate with alice's name from a CA that is not alice's, and alice's own expired one.
"$VVM_SOURCE_DIR/test/harness/make-tls.sh" "$tmpdir/rogue" alice
mkdir -p "$tmpdir/rogue-client" "$tmpdir/expired-client"
cat "$pki/ca-cert.pem" "$tmpdir/rogue/alice/client-ca-cert.pem" >"$tmpdir/rogue-client/ca-cert.pem"
cp "$tmpdir/rogue/alice/client/client-"*.pem "$tmpdir/rogue-client/"
cp "$pki/alice/client/ca-cert.pem" "$tmpdir/expired-client/"
certtool --generate-privkey --key-type=ecdsa --outfile "$tmpdir/expired-client/client-key.pem" 2>/dev/null
printf '%s\n' 'cn = "alice"' 'organization = "vvm"' 'tls_www_client' 'signing_key' \
  'activation_date = "2020-01-01 00:00:00"' 'expiration_date = "2020-06-01 00:00:00"' \
  >"$tmpdir/expired.template"
certtool --generate-certificate --load-privkey "$tmpdir/expired-client/client-key.pem" \
  --load-ca-certificate "$pki/alice/client-ca-cert.pem" --load-ca-privkey "$pki/alice/client-ca-key.pem" \
  --template "$tmpdir/expired.template" --outfile "$tmpdir/expired-client/client-cert.pem" 2>/dev/null
certtool -i --infile "$tmpdir/expired-client/client-cert.pem" | grep -q "Not After: .* 2020" ||
  die "certtool made no expired certificate"
for who in rogue expired; do
  n=$(grep -c "error: gnutls_handshake: Error in the certificate" "${log[alice-x509]}" || true)
  expect 1 "gnutls|TLS|closed" -- nbdinfo "$(x509 pack/alice "$tmpdir/$who-client")"
  (($(grep -c "error: gnutls_handshake: Error in the certificate" "${log[alice-x509]}" || true) > n)) ||
    die "no certificate error logged for the $who certificate"
  still_serving "the $who certificate"
done
out=$(nbd-client -l 127.0.0.1 "${port[alice-x509]}" -cacertfile "$pki/bob/client/ca-cert.pem" \
  -certfile "$pki/bob/client/client-cert.pem" -keyfile "$pki/bob/client/client-key.pem" 2>&1) &&
  die "nbd-client -l with bob's certificate listed alice's exports: $out"
still_serving "bob's certificate (nbd-client)"

# Plaintext to a TLS port: under --tls=require nbdkit answers every option NBD_REP_ERR_TLS_REQD
# itself and logs it at debug level, naming no export; under --tls=on the plugin refuses by name.
expect 1 "" -- nbdinfo "nbd://127.0.0.1:${port[alice-psk]}/vv/$vv"
wait_log "${log[alice-psk]}" "replying to NBD_OPT_GO with NBD_REP_ERR_TLS_REQD"
still_serving "plaintext under --tls=require"
expect 1 "" -- nbdinfo "nbd://127.0.0.1:${port[alice-on]}/vv/$vv"
wait_log "${log[alice-on]}" "error: vv/$vv: refused: this listener serves \[identity alice\] to TLS clients only \(tls-identity=alice\), and this client did not negotiate TLS"
expect 1 "" -- nbdinfo --list "nbd://127.0.0.1:${port[alice-on]}"
wait_log "${log[alice-on]}" "error: export list: refused: this listener serves \[identity alice\]"
qio "$(qpsk alice)" alice-on "vv/$vv" -r -c 'read -P 0xa1 0 64k' # TLS on it still serves
still_serving "plaintext under --tls=on (by the plugin)"

# TLS to a plaintext port: nbdkit answers STARTTLS with NBD_REP_ERR_POLICY.
expect 1 "" -- nbdinfo "$(psk alice pack/open@ro plain)"
wait_log "${log[plain]}" "replying to NBD_OPT_STARTTLS with NBD_REP_ERR_POLICY"
nbdinfo --size "nbd://127.0.0.1:${port[plain]}/pack/open@ro" >/dev/null ||
  die "the plaintext listener stopped serving"
still_serving "TLS to a plaintext port"

# --- the host allow-list applies on top of the identity ---
expect 1 "" -- nbdinfo "$(psk alice pack/alice deny)"
wait_log "${log[deny]}" "host 127.0.0.1 is not in vvm.conf's \[vvmd\] allow-host list"
echo "ok: alice from a host outside allow-host is refused"

# Every listener was started before the held client's fifo was opened: none holds it open.
exec {held_fd}>&-
wait "$held_pid" || die "alice's held connection failed: $(cat "$held.out")"
echo "tls-nbd: all checks passed"
