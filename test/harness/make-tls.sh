#!/usr/bin/env bash
# make-tls.sh: a small public-key infrastructure and PSK files for vvm's TLS listeners, made with
# GnuTLS's certtool and psktool (Debian gnutls-bin), for tests and for `./vvm-dev run`.
#
#   make-tls.sh DIR IDENTITY...
#
# In DIR (created; files already there are kept, so a second run changes nothing):
#   ca-cert.pem, ca-key.pem          the site CA: signs the server's certificate; clients trust it
#   server-cert.pem, server-key.pem  the server: CN 127.0.0.1, IP 127.0.0.1, DNS localhost
#   gnutls-aes.conf                  conf/gnutls-aes.conf, for GNUTLS_SYSTEM_PRIORITY_FILE of a
#                                    PSK listener's nbdkit: CHACHA20-POLY1305 disabled, so that
#                                    PSK connections take AES-128-GCM, which AES-NI makes many
#                                    times faster (bench/tls.sh); X.509 ones take AES-256-GCM
# and for each IDENTITY (alice, bob ...), in DIR/IDENTITY/:
#   IDENTITY.psk                     its PSK file ("IDENTITY:HEXKEY", psktool): nbdkit --tls-psk
#                                    of its listener, and libnbd's tls-psk-file=
#   keys.psk                         the same file for qemu (tls-creds-psk,dir=DIR/IDENTITY)
#   client-ca-cert.pem, -key.pem     the identity's own CA, which signs its certificates alone:
#                                    nbdkit 1.32 checks no certificate name, so the CA tells
#                                    identities apart (vvm.conf [identity] client-ca)
#   nbdkit/                          nbdkit --tls-certificates of its listener: ca-cert.pem (its
#                                    client CA), server-cert.pem, server-key.pem
#   client/                          the client's folder, as libnbd (tls-certificates=) and qemu
#                                    (tls-creds-x509,dir=) read it: ca-cert.pem (the site CA, which
#                                    checks the server, then the identity's CA, without which qemu
#                                    refuses its own certificate), client-cert.pem
#                                    (CN=IDENTITY,O=vvm), client-key.pem
# Keys are ECDSA P-256: made at once, and every client here (GnuTLS) takes them.
set -euo pipefail

(($# >= 1)) || {
  echo "usage: $0 DIR IDENTITY..." >&2
  exit 2
}
dir=$1
shift
mkdir -p "$dir"
umask 077

key() { [[ -s $1 ]] || certtool --generate-privkey --key-type=ecdsa --outfile "$1" 2>/dev/null; }

# sign CERT KEY TEMPLATE-TEXT [CA-CERT CA-KEY]: CERT for KEY, self-signed without a CA.
sign() {
  local cert=$1 k=$2 template=$3 ca_cert=${4:-} ca_key=${5:-}
  [[ -s $cert ]] && return 0
  printf '%s\n' "$template" >"$cert.template"
  if [[ -z $ca_cert ]]; then
    certtool --generate-self-signed --load-privkey "$k" --template "$cert.template" \
      --outfile "$cert" >/dev/null 2>&1
  else
    certtool --generate-certificate --load-privkey "$k" --load-ca-certificate "$ca_cert" \
      --load-ca-privkey "$ca_key" --template "$cert.template" --outfile "$cert" >/dev/null 2>&1
  fi
  rm -f "$cert.template"
}

ca_template() { printf 'cn = "%s"\norganization = "vvm"\nca\ncert_signing_key\nexpiration_days = 3650' "$1"; }

key "$dir/ca-key.pem"
sign "$dir/ca-cert.pem" "$dir/ca-key.pem" "$(ca_template "vvm site CA")"
key "$dir/server-key.pem"
sign "$dir/server-cert.pem" "$dir/server-key.pem" \
  "$(printf 'cn = "127.0.0.1"\norganization = "vvm"\ndns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 365')" \
  "$dir/ca-cert.pem" "$dir/ca-key.pem"

# The same file as vvm-nbdkit-tls@.service's, from the source tree.
cp "$(dirname "$0")/../../conf/gnutls-aes.conf" "$dir/gnutls-aes.conf"

for id in "$@"; do
  d=$dir/$id
  mkdir -p "$d/nbdkit" "$d/client"
  [[ -s $d/$id.psk ]] || psktool -u "$id" -p "$d/$id.psk" >/dev/null
  cp "$d/$id.psk" "$d/keys.psk"
  key "$d/client-ca-key.pem"
  sign "$d/client-ca-cert.pem" "$d/client-ca-key.pem" "$(ca_template "vvm CA of $id")"
  cp "$d/client-ca-cert.pem" "$d/nbdkit/ca-cert.pem"
  cp "$dir/server-cert.pem" "$dir/server-key.pem" "$d/nbdkit/"
  cat "$dir/ca-cert.pem" "$d/client-ca-cert.pem" >"$d/client/ca-cert.pem"
  key "$d/client/client-key.pem"
  sign "$d/client/client-cert.pem" "$d/client/client-key.pem" \
    "$(printf 'cn = "%s"\norganization = "vvm"\ntls_www_client\nsigning_key\nencryption_key\nexpiration_days = 365' "$id")" \
    "$d/client-ca-cert.pem" "$d/client-ca-key.pem"
done
