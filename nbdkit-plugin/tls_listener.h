// tls_listener.h: what makes an nbdkit listener's TLS peers one identity of vvm.conf.
//
// nbdkit 1.32 hands a plugin nothing about a TLS peer but nbdkit_is_tls(): not the PSK username,
// not the certificate. A listener may therefore speak for one identity only when nbdkit itself
// admits no one else: --tls=require (no plaintext client), and either a PSK file holding only
// that identity's usernames, or --tls-verify-peer with a certificate folder whose CA
// (ca-cert.pem) is the identity's own client-ca, which signs no one else's certificate (1.32
// checks no certificate name). The plugin, given tls-identity=NAME, reads the options nbdkit was
// started with and refuses to start unless they say so: an identity is never guessed.
#pragma once

#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace vvm::plugin {

// nbdkit's TLS options, as its command line gives them.
struct NbdkitTls {
  std::string mode = "off";  // --tls=off|on|require
  std::string psk_file;      // --tls-psk=FILE
  std::string certificates;  // --tls-certificates=DIR
  bool verify_peer = false;  // --tls-verify-peer
};

// Reads nbdkit's options from its argument list (argv[0] first). Both "--opt=VALUE" and
// "--opt VALUE" forms; an option that starts with --tls but is none of these (an abbreviation
// getopt would take) is refused, since its meaning cannot be told.
Result<NbdkitTls> parse_nbdkit_tls(const std::vector<std::string>& argv);

// The argument list of this process, from /proc/self/cmdline.
Result<std::vector<std::string>> own_command_line();

// Ok when every TLS peer of a listener started with `tls` is `identity`; else why not, naming
// the option or file and what to change.
Status check_identity_listener(const NbdkitTls& tls, const TlsIdentity& identity,
                               const Config& config);

}  // namespace vvm::plugin
