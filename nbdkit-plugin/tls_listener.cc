// tls_listener.cc: nbdkit's TLS options, and whether they make a listener one identity's; see
// tls_listener.h.
#include "tls_listener.h"

#include <fmt/core.h>

#include <string_view>

#include "common/psk_file.h"

namespace vvm::plugin {

Result<NbdkitTls> parse_nbdkit_tls(const std::vector<std::string>& argv) {
  NbdkitTls tls;
  for (size_t i = 1; i < argv.size(); ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") break;
    if (!arg.starts_with("--tls")) continue;
    if (arg == "--tls-verify-peer") {
      tls.verify_peer = true;
      continue;
    }
    std::string_view name = arg.substr(0, arg.find('='));
    std::string* target = name == "--tls"                ? &tls.mode
                          : name == "--tls-psk"          ? &tls.psk_file
                          : name == "--tls-certificates" ? &tls.certificates
                                                         : nullptr;
    if (target == nullptr) {
      return Status::InvalidArgument(fmt::format(
          "nbdkit option '{}': not one of --tls, --tls-psk, --tls-certificates, "
          "--tls-verify-peer; write nbdkit's TLS options in full so that the plugin can tell "
          "who its TLS peers are",
          arg));
    }
    if (name.size() < arg.size()) {
      *target = std::string(arg.substr(name.size() + 1));
    } else if (i + 1 < argv.size()) {
      *target = argv[++i];
    } else {
      return Status::InvalidArgument(fmt::format("nbdkit option '{}' has no value", arg));
    }
  }
  return tls;
}

Result<std::vector<std::string>> own_command_line() {
  auto text = read_text_file("/proc/self/cmdline");
  if (!text.ok()) return text.status();
  std::vector<std::string> argv;
  size_t start = 0;
  while (start < text->size()) {
    size_t end = text->find('\0', start);
    if (end == std::string::npos) end = text->size();
    argv.emplace_back(text->substr(start, end - start));
    start = end + 1;
  }
  return argv;
}

namespace {

// Every username of the PSK file (GnuTLS's format, as psktool writes it: "USERNAME:HEXKEY" a
// line) must be one of the identity's.
Status check_psk_file(const std::string& file, const TlsIdentity& identity, const Config& config) {
  auto lines = read_psk_file(file);
  if (!lines.ok()) return lines.status();
  for (const PskLine& entry : *lines) {
    const TlsIdentity* owner = identity_for_psk_username(config, entry.user);
    if (owner != &identity) {
      return Status::PermissionDenied(fmt::format(
          "{}:{}: PSK username '{}' is {}, not one of [identity {}]'s psk-username in {}: nbdkit "
          "1.32 cannot tell the plugin which user connected, so the PSK file of a listener with "
          "tls-identity={} must hold only that identity's users",
          file, entry.line, entry.user,
          owner ? fmt::format("[identity {}]'s", owner->name) : std::string("in no [identity]"),
          identity.name, config.path, identity.name));
    }
  }
  return Status::Ok();
}

}  // namespace

Status check_identity_listener(const NbdkitTls& tls, const TlsIdentity& identity,
                               const Config& config) {
  const std::string who = fmt::format("tls-identity={}", identity.name);
  // --tls=on admits plaintext clients as far as the plugin, which refuses them by export name
  // (vvm_plugin.cc): only a TLS peer is ever taken for the identity.
  if (tls.mode != "require" && tls.mode != "on") {
    return Status::PermissionDenied(fmt::format(
        "{} needs nbdkit --tls=require (or --tls=on; it has --tls={}): without TLS no client "
        "proves that it is {}",
        who, tls.mode, identity.describe()));
  }
  if (!tls.psk_file.empty()) return check_psk_file(tls.psk_file, identity, config);
  if (tls.certificates.empty()) {
    return Status::PermissionDenied(fmt::format(
        "{} needs --tls-psk=FILE (the identity's users only) or --tls-certificates=DIR with "
        "--tls-verify-peer (DIR/ca-cert.pem the identity's client-ca)",
        who));
  }
  if (!tls.verify_peer) {
    return Status::PermissionDenied(
        fmt::format("{} with X.509 needs nbdkit --tls-verify-peer: without it any client without a "
                    "certificate is admitted",
                    who));
  }
  if (identity.client_ca.empty()) {
    return Status::PermissionDenied(fmt::format(
        "{} with X.509: [identity {}] in {} has no client-ca, the CA that signs its certificates "
        "alone (nbdkit 1.32 checks no certificate name, so the CA is what tells identities "
        "apart)",
        who, identity.name, config.path));
  }
  const std::string served = tls.certificates + "/ca-cert.pem";
  auto ca = read_text_file(served);
  if (!ca.ok()) return ca.status();
  auto own = read_text_file(identity.client_ca);
  if (!own.ok()) {
    return Status(own.status().code(), fmt::format("[identity {}] client-ca: {}", identity.name,
                                                   own.status().message()));
  }
  if (*ca != *own) {
    return Status::PermissionDenied(fmt::format(
        "{} with X.509: {} is not [identity {}]'s client-ca ({}): the listener would admit "
        "certificates that CA did not sign for {}",
        who, served, identity.name, identity.client_ca, identity.name));
  }
  return Status::Ok();
}

}  // namespace vvm::plugin
