#!/usr/bin/env bash
# tls-control.sh: vvm's control protocol over TLS, real vvmd and real vvctl (vvmd's
# "listen = tls:ADDR:PORT", GnuTLS, PSK and X.509; README "TLS and identities").
#
# - vvmd refuses to start on a TLS setting it cannot use, naming vvm.conf's line, the file and
#   the reason: a bad PSK file line, a key file it cannot read, a certificate that does not match
#   its key, a CA it cannot read, an identity's client-ca it cannot read; `vvctl conf check`
#   names each of them the same way;
# - permissions by identity: over TLS alice finishes, evicts and removes her own VVs, bob is
#   refused on hers (and may on his own), over PSK and over X.509; the host allow-list applies
#   on top;
# - refused, each with its reason in vvmd's log, while vvmd goes on serving alice: a wrong PSK,
#   a PSK username vvmd does not know, one in the PSK file but in no [identity], a certificate of
#   another CA with alice's name, an expired certificate, plaintext to the TLS port (the client
#   told so), TLS to a plaintext port;
# - libvvclient's vvcopy, run as uid 1001 with only VVM_VVMD, VVM_TLS_PSK_FILE and VVM_NBD_URI,
#   creates, writes, finishes and reads back a VV over TLS on both legs (control to vvmd, NBD to
#   alice's nbdkit); bob, through his, is refused it; the same with VVM_TLS_CERTIFICATES, X.509.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
pki=$tmpdir/pki
"$VVM_SOURCE_DIR/test/harness/make-tls.sh" "$pki" alice bob
# vvmd's PSK file holds every user it admits; carol's has no [identity].
psktool -u carol -p "$tmpdir/carol.psk" >/dev/null
cat "$pki/alice/alice.psk" "$pki/bob/bob.psk" "$tmpdir/carol.psk" >"$tmpdir/vvmd.psk"

tls_port=$(pick_unused_port)
plain_port=$(pick_unused_port)
identities=(
  identity.alice.user=1001 identity.alice.group=1001 identity.alice.psk-username=alice
  identity.alice.subject=CN=alice,O=vvm identity.alice.client-ca="$pki/alice/client-ca-cert.pem"
  identity.bob.user=1002 identity.bob.group=1002 identity.bob.psk-username=bob
  identity.bob.client-ca="$pki/bob/client-ca-cert.pem"
)
tls_keys=(vvmd.tls-psk-file="$tmpdir/vvmd.psk" vvmd.tls-certificates="$pki")

# --- TLS settings vvmd cannot use stop it at once, with vvm.conf's line and the reason ---
# refused_start PATTERN VVM_CONF_ARGS...: vvmd with that configuration exits 2 saying PATTERN,
# and so does vvctl conf check.
refused_start() {
  local pattern=$1
  shift
  vvm_conf file="$tmpdir/bad.conf" global.state-dir="$tmpdir/bad-state" \
    vvmd.listen="unix:$tmpdir/run/bad.sock" vvmd.listen+="tls:127.0.0.1:$tls_port" \
    "${identities[@]}" "$@"
  expect 2 "$pattern" -- "$vvmd" --conf "$tmpdir/bad.conf"
  expect 2 "$pattern" -- "$vvctl" conf check "$tmpdir/bad.conf"
}
printf 'alice:%s\nbob\n' "$(cut -d: -f2 "$pki/alice/alice.psk")" >"$tmpdir/badline.psk"
refused_start "bad.conf:[0-9]+: vvmd.tls-psk-file: $tmpdir/badline.psk:2: not USERNAME:HEXKEY" \
  vvmd.tls-psk-file="$tmpdir/badline.psk"
printf 'alice:12345\n' >"$tmpdir/oddkey.psk"
refused_start "oddkey.psk:1: the key of 'alice' is not an even number of hex digits" \
  vvmd.tls-psk-file="$tmpdir/oddkey.psk"
refused_start "vvmd.tls-psk-file: $tmpdir/nope.psk: cannot read" vvmd.tls-psk-file="$tmpdir/nope.psk"
mkdir -p "$tmpdir/nokey" "$tmpdir/mismatch"
cp "$pki/ca-cert.pem" "$pki/server-cert.pem" "$tmpdir/nokey/"
refused_start "bad.conf:[0-9]+: vvmd.tls-certificates: $tmpdir/nokey/server-key.pem: cannot read: No such file" \
  vvmd.tls-certificates="$tmpdir/nokey"
"$VVM_SOURCE_DIR/test/harness/make-tls.sh" "$tmpdir/other" alice
cp "$pki/ca-cert.pem" "$pki/server-cert.pem" "$tmpdir/mismatch/"
cp "$tmpdir/other/server-key.pem" "$tmpdir/mismatch/"
refused_start "vvmd.tls-certificates: .*server-cert.pem and .*server-key.pem: The certificate and the given key do not match" \
  vvmd.tls-certificates="$tmpdir/mismatch"
refused_start "listens on a tls: endpoint without tls-psk-file or tls-certificates"
mkdir -p "$tmpdir/noca"
cp "$pki/server-cert.pem" "$pki/server-key.pem" "$tmpdir/noca/"
refused_start "bad.conf:[0-9]+: vvmd.tls-certificates: $tmpdir/noca/ca-cert.pem: cannot read: No such file" \
  vvmd.tls-certificates="$tmpdir/noca"
refused_start "bad.conf:[0-9]+: identity alice.client-ca: $tmpdir/nope-ca.pem: cannot read: No such file" \
  vvmd.tls-certificates="$pki" identity.alice.client-ca="$tmpdir/nope-ca.pem"
echo 'not a certificate' >"$tmpdir/garbage-ca.pem"
refused_start "bad.conf:[0-9]+: identity alice.client-ca: $tmpdir/garbage-ca.pem: no PEM certificate in it" \
  vvmd.tls-psk-file="$pki/alice/alice.psk" identity.alice.client-ca="$tmpdir/garbage-ca.pem"

# --- vvmd with a Unix socket, a TLS port and a plaintext TCP port ---
vvm_conf vvmd.listen+="tls:127.0.0.1:$tls_port" vvmd.listen+="127.0.0.1:$plain_port" \
  vvmd.allow-host=127.0.0.1 "${tls_keys[@]}" "${identities[@]}"
start_vvmd
grep -q "vvmd.psk: PSK username 'carol' is in no \[identity\]" "$vvmd_log" ||
  die "vvmd did not warn of carol, who has no identity"
a1=$(ctl create --class A --size 4M --owner 1001 --group 1001 --perms 0600)
a2=$(ctl create --class A --size 4M --owner 1001 --group 1001 --perms 0600)
a3=$(ctl create --class A --size 4M --owner 1001 --group 1001 --perms 0600)
b1=$(ctl create --class A --size 4M --owner 1002 --group 1002 --perms 0600)

# as USER [VVCTL_ARGS...]: vvctl over TLS-PSK as USER, with no vvm.conf at all.
as() {
  local user=$1
  shift
  env -u VVM_CONF "$vvctl" --vvmd "tls:127.0.0.1:$tls_port" --tls-psk-file "$pki/$user/$user.psk" \
    "$@"
}
# as_cert DIR [VVCTL_ARGS...]: vvctl over TLS with the certificate folder DIR.
as_cert() {
  local dir=$1
  shift
  env -u VVM_CONF "$vvctl" --vvmd "tls:127.0.0.1:$tls_port" --tls-certificates "$dir" "$@"
}
# state NAME: the VV's state, as vvmd says over its Unix socket.
state() { ctl show "$1" --json | jq -r .state; }
# refusals: how many refusals vvmd has logged.
refusals() { grep -c "refused" "$vvmd_log" || true; }
# refused_with PATTERN CMD...: CMD fails, and vvmd logs one more refusal matching PATTERN; then
# vvmd still serves alice.
refused_with() {
  local pattern=$1 before status=0 out
  shift
  before=$(grep -cE "$pattern" "$vvmd_log" || true)
  out=$("$@" 2>&1) || status=$?
  ((status != 0)) || die "$* succeeded: $out"
  (($(grep -cE "$pattern" "$vvmd_log" || true) > before)) ||
    die "vvmd logged no refusal matching '$pattern' for: $*; the client said: $out"
  as alice show "$a3" >/dev/null || die "vvmd no longer serves alice after: $*"
}

# --- permissions by identity over PSK ---
expect 0 "vvmd .* at tls:127.0.0.1:$tls_port" -- as alice ping
expect 1 "1002 may not finish VV $a1: it belongs to 1001" -- as bob finish "$a1"
[[ $(state "$a1") == hot ]] || die "bob's refused finish changed $a1"
expect 0 "" -- as alice finish "$a1"
[[ $(state "$a1") == finished ]] || die "alice's finish over TLS left $a1 $(state "$a1")"
expect 1 "1002 may not evict VV $a1" -- as bob evict "$a1"
# alice may: what stops her is that nothing archived it (this test runs no mover).
expect 1 "VV $a1 is finished but not yet archived" -- as alice evict "$a1"
expect 1 "1002 may not remove VV $a2" -- as bob rm "$a2"
# vvmd is on "another host": vvctl names no cache path it cannot know (it printed "/NAME").
expect 0 "^removed $a2: its record \(.*\) and its cache file$" -- as alice rm "$a2"
expect 1 "no VV|not found|No VV" -- ctl show "$a2"
expect 0 "" -- as bob finish "$b1"
[[ $(state "$b1") == finished ]] || die "bob's finish of his own VV left it $(state "$b1")"
# a create over TLS is the identity's, and may not be given away
c1=$(as alice create --class A --size 1M)
[[ $(ctl show "$c1" --json | jq -r .owner) == 1001 ]] || die "alice's TLS create is not hers"
expect 1 "may not create a VV owned by 1002" -- as alice create --class A --size 1M --owner 1002
expect 1 "over TCP vvmd cannot tell who you are" -- \
  env -u VVM_CONF "$vvctl" --vvmd "127.0.0.1:$plain_port" finish "$a3"

# --- the same over X.509: alice's certificate, then bob's ---
expect 0 "vvmd" -- as_cert "$pki/alice/client" ping
expect 1 "1002 may not finish VV $a3" -- as_cert "$pki/bob/client" finish "$a3"
expect 0 "" -- as_cert "$pki/alice/client" finish "$a3"
[[ $(state "$a3") == finished ]] || die "alice's finish over X.509 left $a3 $(state "$a3")"

# --- refusals, each named in vvmd's log, vvmd serving alice after each ---
psktool -u alice -p "$tmpdir/wrong.psk" >/dev/null # alice's name, another key
refused_with "refused TLS client 127.0.0.1:[0-9]+: .*PSK username 'alice' is in .*vvmd.psk, with another key" \
  as alice --tls-psk-file "$tmpdir/wrong.psk" ping
psktool -u dave -p "$tmpdir/dave.psk" >/dev/null
refused_with "refused TLS client 127.0.0.1:[0-9]+: .*PSK username 'dave' is not in .*vvmd.psk" \
  as alice --tls-psk-file "$tmpdir/dave.psk" ping
refused_with "refused 127.0.0.1:[0-9]+: PSK username 'carol' is in no \[identity\]" \
  as alice --tls-psk-file "$tmpdir/carol.psk" ping
expect 1 "PSK username 'carol' is in no \[identity\]" -- as alice --tls-psk-file "$tmpdir/carol.psk" ping

# A certificate with alice's name from a CA vvmd does not know, and alice's own expired one.
mkdir -p "$tmpdir/rogue-client" "$tmpdir/expired-client"
cp "$pki/alice/client/ca-cert.pem" "$tmpdir/rogue-client/"
cp "$tmpdir/other/alice/client/client-"*.pem "$tmpdir/rogue-client/"
cp "$pki/alice/client/ca-cert.pem" "$tmpdir/expired-client/"
certtool --generate-privkey --key-type=ecdsa --outfile "$tmpdir/expired-client/client-key.pem" 2>/dev/null
printf '%s\n' 'cn = "alice"' 'organization = "vvm"' 'tls_www_client' 'signing_key' \
  'activation_date = "2020-01-01 00:00:00"' 'expiration_date = "2020-06-01 00:00:00"' \
  >"$tmpdir/expired.template"
certtool --generate-certificate --load-privkey "$tmpdir/expired-client/client-key.pem" \
  --load-ca-certificate "$pki/alice/client-ca-cert.pem" --load-ca-privkey "$pki/alice/client-ca-key.pem" \
  --template "$tmpdir/expired.template" --outfile "$tmpdir/expired-client/client-cert.pem" 2>/dev/null
refused_with "refused 127.0.0.1:[0-9]+: certificate 'CN=alice,O=vvm' \(issuer 'CN=vvm CA of alice,O=vvm'\): .*(issuer is unknown|NOT trusted)" \
  as_cert "$tmpdir/rogue-client" ping
refused_with "refused 127.0.0.1:[0-9]+: certificate 'CN=alice,O=vvm' .*expired" \
  as_cert "$tmpdir/expired-client" ping
expect 1 "expired" -- as_cert "$tmpdir/expired-client" ping

# Plaintext to the TLS port: the client is told, in plaintext, what to do.
refused_with "refused 127.0.0.1:[0-9]+: this is a TLS port and the client spoke plaintext" \
  env -u VVM_CONF "$vvctl" --vvmd "127.0.0.1:$tls_port" ping
expect 1 "this is a TLS port and the client spoke plaintext \(connect to tls:HOST:PORT\)" -- \
  env -u VVM_CONF "$vvctl" --vvmd "127.0.0.1:$tls_port" ping
# TLS to the plaintext port.
refused_with "a TLS client on a plaintext port" \
  env -u VVM_CONF "$vvctl" --vvmd "tls:127.0.0.1:$plain_port" --tls-psk-file "$pki/alice/alice.psk" ping
# A client that connects and never shakes hands is dropped, and does not hold vvmd up meanwhile.
exec {idle}<>/dev/tcp/127.0.0.1/$tls_port
as alice ping >/dev/null || die "a silent TLS client holds vvmd up"
exec {idle}>&-

# --- libvvclient and vvcopy over TLS on both legs, as uid 1001 and 1002 (not root) ---
# Control over TLS to vvmd, NBD over TLS to the identity's own nbdkit; the identity comes from
# VVM_TLS_PSK_FILE alone, and the URI names no key file.
chmod 755 "$tmpdir"
for who in alice:1001 bob:1002; do
  user=${who%:*} uid=${who#*:}
  mkdir -p "$tmpdir/$user-home"
  cp "$pki/$user/$user.psk" "$tmpdir/$user-home/"
  chown -R "$uid:$uid" "$tmpdir/$user-home"
  p=$(pick_unused_port)
  start_nbdkit - -i 127.0.0.1 -p "$p" --tls=require --tls-psk="$pki/$user/$user.psk" \
    "$VVM_PLUGIN" conf="$conf" tls-identity="$user"
  declare "nbd_$user=$p" "nbdlog_$user=$nbdkit_log"
done
# client USER UID NBD_PORT CMD...: CMD as UID, its environment only vvm's TLS settings.
client() {
  local user=$1 uid=$2 p=$3
  shift 3
  setpriv --reuid "$uid" --regid "$uid" --clear-groups env -i PATH=/usr/bin:/bin \
    HOME="$tmpdir/$user-home" VVM_VVMD="tls:127.0.0.1:$tls_port" \
    VVM_TLS_PSK_FILE="$tmpdir/$user-home/$user.psk" VVM_NBD_URI="nbds://127.0.0.1:$p/" "$@"
}
head -c $((3 * M)) /dev/urandom >"$tmpdir/alice-home/in.img"
chown 1001:1001 "$tmpdir/alice-home/in.img"
copied=$(client alice 1001 "$nbd_alice" "$vvcopy" "$tmpdir/alice-home/in.img" A) ||
  die "vvcopy as alice over TLS failed: $copied"
[[ $(ctl show "$copied" --json | jq -r '.owner + " " + .state') == "1001 finished" ]] ||
  die "alice's vvcopy left $copied $(ctl show "$copied" --json | jq -c '{owner, state}')"
grep -q "created VV $copied .* for identity alice (uid 1001, PSK username 'alice')" "$vvmd_log" ||
  die "vvmd does not say that identity alice created $copied"
grep -q "finished VV $copied for identity alice" "$vvmd_log" ||
  die "vvmd does not say that identity alice finished $copied"
client alice 1001 "$nbd_alice" "$vvcopy" --read "$copied" "$tmpdir/alice-home/out.img" ||
  die "vvcopy --read as alice over TLS failed"
cmp "$tmpdir/alice-home/in.img" "$tmpdir/alice-home/out.img" || die "alice read back other bytes"
# bob, through his own listener, may not read alice's VV (0640, group 1001).
expect 1 "vv/$copied: .*refused" -- \
  client bob 1002 "$nbd_bob" "$vvcopy" --read "$copied" "$tmpdir/bob-home/out.img"
grep -q "1002 (gid 1002) .* may not open VV $copied" "$nbdlog_bob" ||
  die "bob's nbdkit does not say why it refused $copied"
echo "ok: vvcopy as uid 1001 over TLS-PSK on both legs; bob refused through his listener"

# The same over X.509: alice's certificate folder alone (VVM_TLS_CERTIFICATES) proves her to vvmd
# and to her X.509 listener.
cp -r "$pki/alice/client" "$tmpdir/alice-home/client"
chown -R 1001:1001 "$tmpdir/alice-home/client"
x509_port=$(pick_unused_port)
start_nbdkit - -i 127.0.0.1 -p "$x509_port" --tls=require --tls-certificates="$pki/alice/nbdkit" \
  --tls-verify-peer "$VVM_PLUGIN" conf="$conf" tls-identity=alice
# client_x509 CMD...: CMD as uid 1001, its environment only vvm's TLS settings, X.509.
client_x509() {
  setpriv --reuid 1001 --regid 1001 --clear-groups env -i PATH=/usr/bin:/bin \
    HOME="$tmpdir/alice-home" VVM_VVMD="tls:127.0.0.1:$tls_port" \
    VVM_TLS_CERTIFICATES="$tmpdir/alice-home/client" VVM_NBD_URI="nbds://127.0.0.1:$x509_port/" "$@"
}
copied=$(client_x509 "$vvcopy" "$tmpdir/alice-home/in.img" A) ||
  die "vvcopy as alice over X.509 failed: $copied"
[[ $(ctl show "$copied" --json | jq -r '.owner + " " + .state') == "1001 finished" ]] ||
  die "alice's vvcopy over X.509 left $copied $(ctl show "$copied" --json | jq -c '{owner, state}')"
grep -q "finished VV $copied for identity alice (uid 1001, certificate 'CN=alice,O=vvm'" "$vvmd_log" ||
  die "vvmd does not say that identity alice finished $copied with her certificate"
client_x509 "$vvcopy" --read "$copied" "$tmpdir/alice-home/out-x509.img" ||
  die "vvcopy --read as alice over X.509 failed"
cmp "$tmpdir/alice-home/in.img" "$tmpdir/alice-home/out-x509.img" ||
  die "alice read back other bytes over X.509"
echo "ok: vvcopy as uid 1001 over X.509 on both legs"

# --- the host allow-list still applies on top of the identity ---
deny_port=$(pick_unused_port)
vvm_conf file="$tmpdir/deny.conf" global.state-dir="$tmpdir/deny-state" \
  vvmd.listen="unix:$tmpdir/run/deny.sock" vvmd.listen+="tls:127.0.0.1:$deny_port" \
  vvmd.allow-host=127.0.0.2 "${tls_keys[@]}" "${identities[@]}"
start_daemon vvmd-deny "$vvctl" --conf "$tmpdir/deny.conf" ping --timeout 1 -- \
  "$vvmd" --conf "$tmpdir/deny.conf"
expect 1 "the host is not in the allow-host list" -- env -u VVM_CONF "$vvctl" \
  --vvmd "tls:127.0.0.1:$deny_port" --tls-psk-file "$pki/alice/alice.psk" ping
grep -q "refused 127.0.0.1:[0-9]*: the host is not in the allow-host list" "$daemon_log" ||
  die "the denying vvmd did not log its refusal of alice's host"

echo "tls-control: ok"
