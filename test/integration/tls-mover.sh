#!/usr/bin/env bash
# tls-mover.sh: vvmd and a mover that talk to each other only over TLS (README "TLS and
# identities"): the mover listens on tls: alone, vvmd reaches it with its own client identity
# ([vvmd] tls-client-*), and the mover's copies report to vvmd's tls: endpoint with the mover's
# ([mover NAME] tls-client-*). Real vvmd, real vvmover, emulated drives.
#
# - over TLS-PSK, then over X.509: a VV archived (its tape file is the cache file's bytes),
#   evicted and staged back from tape (the same bytes again); vvmd's log shows the reports came
#   from the mover's identity over TLS;
# - the mover serves only identities of role vvmd: a user's identity (PSK or certificate), the
#   mover's own identity, a wrong key, an unknown PSK user, plaintext to its TLS port, a
#   certificate of an unknown CA and an expired one are each refused with the reason in the
#   mover's log, and the mover then still archives for vvmd; it warns at start of the keys its
#   PSK file holds for identities it will refuse;
# - configuration mistakes are named by vvm.conf's line: a mover's tls: listener without TLS
#   files, with tls-verify-peer false, without [vvmd] tls-client-*, an unreadable client PSK file.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
pki=$tmpdir/pki
"$VVM_SOURCE_DIR/test/harness/make-tls.sh" "$pki" vvmd m1 alice
# Each listener's PSK file holds the keys of whoever may connect: vvmd's the mover's (and
# alice's), the mover's vvmd's (and alice's and its own, so that they are refused by role).
cat "$pki/m1/m1.psk" "$pki/alice/alice.psk" >"$tmpdir/vvmd-listen.psk"
cat "$pki/vvmd/vvmd.psk" "$pki/alice/alice.psk" "$pki/m1/m1.psk" >"$tmpdir/m1-listen.psk"

vvmd_port=$(pick_unused_port)
mover_port=$(pick_unused_port)
identities=(
  identity.vvmd.user=65534 identity.vvmd.group=65534 identity.vvmd.role=vvmd
  identity.vvmd.psk-username=vvmd identity.vvmd.client-ca="$pki/vvmd/client-ca-cert.pem"
  identity.m1.user=65534 identity.m1.group=65534 identity.m1.role=mover
  identity.m1.psk-username=m1 identity.m1.client-ca="$pki/m1/client-ca-cert.pem"
  identity.alice.user=1001 identity.alice.group=1001
  identity.alice.psk-username=alice identity.alice.client-ca="$pki/alice/client-ca-cert.pem"
)
# conf_tls PSK|X509 [VVM_CONF_ARGS...]: $conf with vvmd on a Unix socket (for the test's vvctl)
# and on tls:, the mover on tls: only, both with that kind of credentials.
conf_tls() {
  local kind=$1 creds
  shift
  if [[ $kind == PSK ]]; then
    creds=(vvmd.tls-psk-file="$tmpdir/vvmd-listen.psk" mover.m1.tls-psk-file="$tmpdir/m1-listen.psk"
      vvmd.tls-client-psk-file="$pki/vvmd/vvmd.psk" mover.m1.tls-client-psk-file="$pki/m1/m1.psk")
  else
    creds=(vvmd.tls-certificates="$pki" mover.m1.tls-certificates="$pki"
      vvmd.tls-client-certificates="$pki/vvmd/client"
      mover.m1.tls-client-certificates="$pki/m1/client")
  fi
  vvm_conf drives="LTO9 LTO8" vvmd.listen+="tls:127.0.0.1:$vvmd_port" vvmd.allow-host=127.0.0.1 \
    mover.m1.listen="tls:127.0.0.1:$mover_port" "${identities[@]}" "${creds[@]}" "$@"
}
# start_tls_mover PSK|X509: the mover, ready once vvmd's own credentials get a ping through.
start_tls_mover() {
  local as=(--tls-psk-file "$pki/vvmd/vvmd.psk")
  [[ $1 == PSK ]] || as=(--tls-certificates "$pki/vvmd/client")
  start_daemon mover-m1 "$vvctl" --conf "$conf" "${as[@]}" ping --target mover:m1 --timeout 1 -- \
    "$vvmover" --conf "$conf" --name m1
  mover_pid=$daemon_pid
  mover_log=$daemon_log
}

# --- configuration mistakes, each named by vvm.conf's line ---
conf_tls PSK mover.m1.tls-psk-file=
expect 2 "vvm.conf:[0-9]+: mover m1.listen: a tls: endpoint without tls-psk-file or tls-certificates" -- \
  ctl conf check
conf_tls PSK mover.m1.tls-verify-peer=false
expect 2 "vvm.conf:[0-9]+: mover m1.tls-verify-peer: a mover serves only vvmd's identities" -- \
  ctl conf check
conf_tls PSK vvmd.tls-client-psk-file=
expect 2 "vvm.conf:[0-9]+: mover m1.listen: a tls: endpoint, but \[vvmd\] has no tls-client-psk-file" -- \
  ctl conf check
conf_tls PSK vvmd.listen="tls:127.0.0.1:$vvmd_port" mover.m1.tls-client-psk-file=
expect 2 "vvm.conf:[0-9]+: mover m1: its copy reports cannot reach vvmd, which listens on tls: endpoints only" -- \
  ctl conf check
conf_tls PSK identity.vvmd.role=admin
expect 2 "vvm.conf:[0-9]+: identity vvmd.role: 'admin' is not a role" -- ctl conf check
conf_tls PSK vvmd.tls-client-psk-file="$tmpdir/nope.psk"
expect 2 "vvm.conf:[0-9]+: vvmd.tls-client-\*: $tmpdir/nope.psk: cannot read" -- "$vvmd" --conf "$conf"
conf_tls PSK mover.m1.tls-client-psk-file="$tmpdir/vvmd-listen.psk"
expect 2 "vvm.conf:[0-9]+: mover m1.tls-client-\*: $tmpdir/vvmd-listen.psk: holds 2 users: say which" -- \
  "$vvmover" --conf "$conf" --name m1
echo "ok: TLS mistakes of the movers' configuration named by line"

# new_vv MIB: a new VV of class A with MIB MiB of random data in its cache file, kept aside too.
new_vv() {
  vv=$(ctl create --class A --size "$1M")
  head -c "$(($1 << 20))" /dev/urandom >"$cache/$vv"
  cp "$cache/$vv" "$tmpdir/$vv.keep"
}
# archive_and_stage FILE: a new VV archived over TLS to L90001 file FILE (and to L80001),
# evicted and staged back over TLS with the same bytes.
archive_and_stage() {
  new_vv 2
  expect 0 "^$vv: archived\$" -- ctl finish "$vv" --wait --timeout 60
  "$vvtape" cat "$library/L90001.tap" "$1" | cmp -s - "$tmpdir/$vv.keep" ||
    die "$vv: L90001 file $1 is not the cache file's bytes"
  expect 0 "" -- ctl evict "$vv"
  [[ $(ctl show "$vv" --json | jq -r .cache) == evicted ]] || die "$vv not evicted"
  [[ ! -e $cache/$vv ]] || die "the evicted $vv is still in the cache"
  ctl stage "$vv" --wait --timeout 60 >/dev/null || die "stage of $vv failed"
  cmp -s "$cache/$vv" "$tmpdir/$vv.keep" || die "the staged $vv differs"
  echo "ok: $vv archived, evicted and staged back over TLS"
}
# reports_over_tls: vvmd's log shows the mover's identity connecting over TLS (its reports).
reports_over_tls() {
  grep -Eq "connection from identity m1 \(uid 65534, $1" "$vvmd_log" ||
    die "no report came over TLS from identity m1 ($1)"
}
# refused_by_mover PATTERN VVCTL_TLS_ARGS...: a ping of the mover with those credentials fails,
# and the mover logs one more refusal matching PATTERN.
refused_by_mover() {
  local pattern=$1 before status=0 out
  shift
  before=$(grep -cE "$pattern" "$mover_log" || true)
  out=$(env -u VVM_CONF "$vvctl" --conf "$conf" "$@" ping --target mover:m1 --timeout 5 2>&1) ||
    status=$?
  ((status != 0)) || die "the mover served $*: $out"
  (($(grep -cE "$pattern" "$mover_log" || true) > before)) ||
    die "the mover logged no refusal matching '$pattern' for $*; the client said: $out"
}

# --- TLS-PSK ---
conf_tls PSK
expect 0 "^$conf: ok" -- ctl conf check
start_vvmd --log-level debug
start_tls_mover PSK
grep -q "m1-listen.psk: PSK username 'alice' is \[identity alice\], of no role: the mover will refuse it" \
  "$mover_log" || die "the mover did not warn of alice's key in its PSK file"
grep -q "PSK username 'm1' is \[identity m1\], of role mover: the mover will refuse it" \
  "$mover_log" || die "the mover did not warn of its own key in its PSK file"
! grep -q "PSK username 'vvmd' is" "$mover_log" || die "the mover warned of vvmd's key"
expect 0 "L90001" -- ctl vsn add L90001 --media LTO9 --class A
expect 0 "L80001" -- ctl vsn add L80001 --media LTO8 --class A
archive_and_stage 1
reports_over_tls "PSK username 'm1'"
refused_by_mover "refused 127.0.0.1:[0-9]+: vvmover m1 serves only identities of role vvmd over TLS; identity alice is of none" \
  --tls-psk-file "$pki/alice/alice.psk"
refused_by_mover "refused 127.0.0.1:[0-9]+: vvmover m1 serves only identities of role vvmd over TLS; identity m1 is of role mover" \
  --tls-psk-file "$pki/m1/m1.psk"
psktool -u vvmd -p "$tmpdir/wrong.psk" >/dev/null
refused_by_mover "refused TLS client 127.0.0.1:[0-9]+: .*PSK username 'vvmd' is in .*m1-listen.psk, with another key" \
  --tls-psk-file "$tmpdir/wrong.psk"
psktool -u dave -p "$tmpdir/dave.psk" >/dev/null
refused_by_mover "refused TLS client 127.0.0.1:[0-9]+: .*PSK username 'dave' is not in .*m1-listen.psk" \
  --tls-psk-file "$tmpdir/dave.psk"
# Plaintext to the mover's TLS port: refused, and the client told so.
n=$(grep -c "this is a TLS port and the client spoke plaintext" "$mover_log" || true)
expect 1 "this is a TLS port and the client spoke plaintext" -- \
  env -u VVM_CONF "$vvctl" --conf "$conf" ping --target "127.0.0.1:$mover_port" --timeout 5
(($(grep -c "refused 127.0.0.1:[0-9]*: this is a TLS port and the client spoke plaintext" "$mover_log" || true) > n)) ||
  die "the mover did not log its refusal of a plaintext client"
archive_and_stage 2
echo "ok: over PSK the mover refused alice, itself, a wrong key, an unknown user and plaintext, and still served vvmd"

# --- X.509 ---
stop_daemon "$mover_pid" mover-m1
stop_vvmd
conf_tls X509
start_vvmd --log-level debug
start_tls_mover X509
archive_and_stage 3
reports_over_tls "certificate 'CN=m1,O=vvm'"
refused_by_mover "refused 127.0.0.1:[0-9]+: vvmover m1 serves only identities of role vvmd over TLS; identity alice is of none" \
  --tls-certificates "$pki/alice/client"
"$VVM_SOURCE_DIR/test/harness/make-tls.sh" "$tmpdir/other" vvmd
mkdir -p "$tmpdir/rogue"
cp "$pki/vvmd/client/ca-cert.pem" "$tmpdir/rogue/"
cp "$tmpdir/other/vvmd/client/client-"*.pem "$tmpdir/rogue/"
refused_by_mover "refused 127.0.0.1:[0-9]+: certificate 'CN=vvmd,O=vvm' .*(issuer is unknown|NOT trusted)" \
  --tls-certificates "$tmpdir/rogue"
# vvmd's own certificate, signed by its own CA, but expired.
mkdir -p "$tmpdir/expired"
cp "$pki/vvmd/client/ca-cert.pem" "$tmpdir/expired/"
certtool --generate-privkey --key-type=ecdsa --outfile "$tmpdir/expired/client-key.pem" 2>/dev/null
printf '%s\n' 'cn = "vvmd"' 'organization = "vvm"' 'tls_www_client' 'signing_key' \
  'activation_date = "2020-01-01 00:00:00"' 'expiration_date = "2020-06-01 00:00:00"' \
  >"$tmpdir/expired.template"
certtool --generate-certificate --load-privkey "$tmpdir/expired/client-key.pem" \
  --load-ca-certificate "$pki/vvmd/client-ca-cert.pem" --load-ca-privkey "$pki/vvmd/client-ca-key.pem" \
  --template "$tmpdir/expired.template" --outfile "$tmpdir/expired/client-cert.pem" 2>/dev/null
refused_by_mover "refused 127.0.0.1:[0-9]+: certificate 'CN=vvmd,O=vvm' .*expired" \
  --tls-certificates "$tmpdir/expired"
archive_and_stage 4
echo "ok: over X.509 the mover refused alice, a certificate of another CA and an expired one, and still served vvmd"
echo "tls-mover: all checks passed"
