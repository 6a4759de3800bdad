// proto/tls.cc: TLS credentials, sessions and peer identities on GnuTLS; see proto/tls.h.
#include "proto/tls.h"

#include <gnutls/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fmt/core.h>

#include "common/psk_file.h"

namespace vvm::rpc {

namespace {

// GnuTLS's defaults, with the PSK key exchanges that "NORMAL" leaves out (as nbdkit does).
constexpr const char* kPriority = "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK";

std::string gnutls_says(int rc) { return gnutls_strerror(rc); }

// Writes with MSG_NOSIGNAL, so that a peer gone away is an error and not SIGPIPE.
ssize_t push(gnutls_transport_ptr_t fd, const void* data, size_t n) {
  return ::send(static_cast<int>(reinterpret_cast<intptr_t>(fd)), data, n, MSG_NOSIGNAL);
}

// Empty when `path` can be read, else why not ("cannot read: Permission denied").
std::string unreadable(const std::string& path) {
  if (::access(path.c_str(), R_OK) == 0) return "";
  return fmt::format("cannot read: {}", std::strerror(errno));
}

// Every certificate of a PEM file.
Result<std::vector<gnutls_x509_crt_t>> read_certificates(const std::string& file) {
  if (std::string why = unreadable(file); !why.empty()) {
    return Status::InvalidArgument(fmt::format("{}: {}", file, why));
  }
  gnutls_datum_t data{};
  if (int rc = gnutls_load_file(file.c_str(), &data); rc < 0) {
    return Status::InvalidArgument(fmt::format("{}: {}", file, gnutls_says(rc)));
  }
  gnutls_x509_crt_t* list = nullptr;
  unsigned n = 0;
  int rc = gnutls_x509_crt_list_import2(&list, &n, &data, GNUTLS_X509_FMT_PEM, 0);
  gnutls_free(data.data);
  if (rc < 0 || n == 0) {
    return Status::InvalidArgument(fmt::format("{}: no PEM certificate in it{}", file,
                                               rc < 0 ? ": " + gnutls_says(rc) : std::string()));
  }
  std::vector<gnutls_x509_crt_t> out(list, list + n);
  gnutls_free(list);
  return out;
}

// A certificate's subject or issuer DN, RFC 4514 style ("CN=alice,O=vvm").
std::string dn_of(gnutls_x509_crt_t crt, bool issuer) {
  gnutls_datum_t dn{};
  int rc =
      issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) : gnutls_x509_crt_get_dn3(crt, &dn, 0);
  if (rc < 0) return "?";
  std::string out(reinterpret_cast<const char*>(dn.data), dn.size);
  gnutls_free(dn.data);
  return out;
}

}  // namespace

// ---- client credentials ----

TlsClientSettings TlsClientSettings::from_env() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  return {env("VVM_TLS_PSK_FILE"), env("VVM_TLS_USERNAME"), env("VVM_TLS_CERTIFICATES")};
}

TlsClientSettings TlsClientSettings::from_config(const TlsClientConfig& config) {
  return {config.psk_file, config.username, config.certificates};
}

Result<std::string> TlsClientSettings::psk_user() const {
  if (!username.empty()) return username;
  auto lines = read_psk_file(psk_file);
  if (!lines.ok()) return lines.status();
  if (lines->size() > 1) {
    return Status::InvalidArgument(
        fmt::format("{}: holds {} users: say which (VVM_TLS_USERNAME, vvctl --tls-username)",
                    psk_file, lines->size()));
  }
  return lines->front().user;
}

Result<std::shared_ptr<TlsClientCredentials>> TlsClientCredentials::load(
    const TlsClientSettings& settings) {
  std::shared_ptr<TlsClientCredentials> c(new TlsClientCredentials());
  if (!settings.psk_file.empty()) {
    auto lines = read_psk_file(settings.psk_file);
    if (!lines.ok()) return lines.status();
    auto user = settings.psk_user();
    if (!user.ok()) return user.status();
    const PskLine* use = nullptr;
    for (const auto& l : *lines) {
      if (l.user == *user) use = &l;
    }
    if (use == nullptr) {
      return Status::InvalidArgument(
          fmt::format("{}: has no key for PSK username '{}'", settings.psk_file, *user));
    }
    if (int rc = gnutls_psk_allocate_client_credentials(&c->psk_); rc < 0) {
      return Status::Internal("gnutls_psk_allocate_client_credentials: " + gnutls_says(rc));
    }
    gnutls_datum_t key{reinterpret_cast<unsigned char*>(const_cast<char*>(use->key.data())),
                       static_cast<unsigned>(use->key.size())};
    if (int rc =
            gnutls_psk_set_client_credentials(c->psk_, use->user.c_str(), &key, GNUTLS_PSK_KEY_HEX);
        rc < 0) {
      return Status::InvalidArgument(
          fmt::format("{}: the key of '{}': {}", settings.psk_file, use->user, gnutls_says(rc)));
    }
    c->describe_ = fmt::format("PSK username '{}'", use->user);
  }
  // The server's certificate is checked against ca-cert.pem whenever the folder is given; a PSK
  // session has none to check.
  if (!settings.certificates.empty()) {
    const std::string ca = settings.certificates + "/ca-cert.pem";
    const std::string cert = settings.certificates + "/client-cert.pem";
    const std::string key = settings.certificates + "/client-key.pem";
    for (const auto* f : {&ca, &cert, &key}) {
      if (std::string why = unreadable(*f); !why.empty()) {
        return Status::InvalidArgument(fmt::format("{}: {}", *f, why));
      }
    }
    if (int rc = gnutls_certificate_allocate_credentials(&c->x509_); rc < 0) {
      return Status::Internal("gnutls_certificate_allocate_credentials: " + gnutls_says(rc));
    }
    int n = gnutls_certificate_set_x509_trust_file(c->x509_, ca.c_str(), GNUTLS_X509_FMT_PEM);
    if (n <= 0) {
      return Status::InvalidArgument(
          fmt::format("{}: {}", ca, n < 0 ? gnutls_says(n) : "no CA certificate in it"));
    }
    if (settings.psk_file.empty()) {
      if (int rc = gnutls_certificate_set_x509_key_file2(c->x509_, cert.c_str(), key.c_str(),
                                                         GNUTLS_X509_FMT_PEM, nullptr, 0);
          rc < 0) {
        return Status::InvalidArgument(fmt::format("{} and {}: {}", cert, key, gnutls_says(rc)));
      }
      auto certs = read_certificates(cert);
      if (!certs.ok()) return certs.status();
      c->describe_ = fmt::format("certificate '{}'", dn_of(certs->front(), false));
      for (auto crt : *certs) gnutls_x509_crt_deinit(crt);
    }
  }
  if (c->psk_ == nullptr && c->x509_ == nullptr) {
    return Status::InvalidArgument(
        "a tls: endpoint needs credentials: VVM_TLS_PSK_FILE (and VVM_TLS_USERNAME), or "
        "VVM_TLS_CERTIFICATES (a folder with ca-cert.pem, client-cert.pem, client-key.pem); "
        "vvctl takes --tls-psk-file, --tls-username, --tls-certificates");
  }
  return c;
}

TlsClientCredentials::~TlsClientCredentials() {
  if (psk_) gnutls_psk_free_client_credentials(psk_);
  if (x509_) gnutls_certificate_free_credentials(x509_);
}

// ---- server credentials ----

namespace {

// GnuTLS's PSK key lookup for a server session: the key of `username` (binary, allocated with
// gnutls_malloc as GnuTLS frees it), or -1 for a username the PSK file does not have.
int psk_key_of(gnutls_session_t session, const char* username, gnutls_datum_t* key) {
  auto* seen = static_cast<TlsSession::Seen*>(gnutls_session_get_ptr(session));
  if (seen == nullptr || seen->creds == nullptr) return -1;
  seen->psk_username = username;
  const std::string* hex = seen->creds->psk_key(username);
  if (hex == nullptr) return -1;
  gnutls_datum_t in{reinterpret_cast<unsigned char*>(const_cast<char*>(hex->data())),
                    static_cast<unsigned>(hex->size())};
  return gnutls_hex_decode2(&in, key) < 0 ? -1 : 0;
}

}  // namespace

const std::string* TlsServerCredentials::psk_key(const std::string& username) const {
  auto it = psk_keys_.find(username);
  return it == psk_keys_.end() ? nullptr : &it->second;
}

Result<std::shared_ptr<TlsServerCredentials>> TlsServerCredentials::load(const Config& config,
                                                                         const TlsServerConfig& tls,
                                                                         std::string_view section) {
  std::shared_ptr<TlsServerCredentials> c(new TlsServerCredentials());
  c->config_ = config;
  c->verify_peer_ = tls.verify_peer;
  const auto fail = [&](int line, std::string_view key, std::string_view why) {
    return Status::InvalidArgument(
        fmt::format("{}:{}: {}.{}: {}", config.path, line, section, key, why));
  };
  if (!tls.enabled()) {
    return Status::InvalidArgument(
        fmt::format("{}: [{}] listens on a tls: endpoint without tls-psk-file or tls-certificates",
                    config.path, section));
  }
  // Every identity's CA is read, whatever this listener uses, so that a broken one is named at
  // start rather than when a listener that uses it (an nbdkit's) meets a client.
  for (const auto& [name, id] : c->config_.identities) {
    if (id.client_ca.empty()) continue;
    auto certs = read_certificates(id.client_ca);
    if (!certs.ok()) {
      return Status::InvalidArgument(fmt::format("{}:{}: identity {}.client-ca: {}", config.path,
                                                 id.line, name, certs.status().message()));
    }
    c->client_cas_.push_back({&id, *certs});
  }
  if (!tls.psk_file.empty()) {
    auto lines = read_psk_file(tls.psk_file);
    if (!lines.ok()) return fail(tls.psk_file_line, "tls-psk-file", lines.status().message());
    for (const auto& l : *lines) {
      if (c->psk_keys_.contains(l.user)) {
        return fail(tls.psk_file_line, "tls-psk-file",
                    fmt::format("{}: PSK username '{}' is given twice", tls.psk_file, l.user));
      }
      c->psk_keys_[l.user] = l.key;
      if (identity_for_psk_username(c->config_, l.user) == nullptr) c->unmapped_.push_back(l.user);
    }
    c->psk_file_ = tls.psk_file;
    if (int rc = gnutls_psk_allocate_server_credentials(&c->psk_); rc < 0) {
      return Status::Internal("gnutls_psk_allocate_server_credentials: " + gnutls_says(rc));
    }
    // The keys come from this callback rather than gnutls_psk_set_server_credentials_file, which
    // would read the same file, so that vvmd sees the username a client asked for even when the
    // handshake then fails (GnuTLS keeps it only on success), and can say why it failed.
    gnutls_psk_set_server_credentials_function(c->psk_, psk_key_of);
  }
  if (!tls.certificates.empty()) {
    const std::string dir = tls.certificates;
    const std::string ca = dir + "/ca-cert.pem";
    const std::string cert = dir + "/server-cert.pem";
    const std::string key = dir + "/server-key.pem";
    for (const auto* f : {&cert, &key, &ca}) {
      if (std::string why = unreadable(*f); !why.empty()) {
        return fail(tls.certificates_line, "tls-certificates", fmt::format("{}: {}", *f, why));
      }
    }
    if (int rc = gnutls_certificate_allocate_credentials(&c->x509_); rc < 0) {
      return Status::Internal("gnutls_certificate_allocate_credentials: " + gnutls_says(rc));
    }
    if (int rc = gnutls_certificate_set_x509_key_file2(c->x509_, cert.c_str(), key.c_str(),
                                                       GNUTLS_X509_FMT_PEM, nullptr, 0);
        rc < 0) {
      return fail(tls.certificates_line, "tls-certificates",
                  fmt::format("{} and {}: {}", cert, key, gnutls_says(rc)));
    }
    int n = gnutls_certificate_set_x509_trust_file(c->x509_, ca.c_str(), GNUTLS_X509_FMT_PEM);
    if (n <= 0) {
      return fail(tls.certificates_line, "tls-certificates",
                  fmt::format("{}: {}", ca, n < 0 ? gnutls_says(n) : "no CA certificate in it"));
    }
    // Each identity's own CA is trusted too, and a certificate it signed is that identity's.
    for (auto& own : c->client_cas_) {
      n = gnutls_certificate_set_x509_trust(c->x509_, own.certs.data(),
                                            static_cast<int>(own.certs.size()));
      if (n < 0) {
        return Status::InvalidArgument(
            fmt::format("{}:{}: identity {}.client-ca: {}: {}", config.path, own.identity->line,
                        own.identity->name, own.identity->client_ca, gnutls_says(n)));
      }
    }
  }
  return c;
}

TlsServerCredentials::~TlsServerCredentials() {
  if (psk_) gnutls_psk_free_server_credentials(psk_);
  if (x509_) gnutls_certificate_free_credentials(x509_);
  for (auto& ca : client_cas_) {
    for (auto crt : ca.certs) gnutls_x509_crt_deinit(crt);
  }
}

Result<TlsPeer> TlsServerCredentials::identify(const TlsSession& session) const {
  gnutls_session_t s = session.native();
  if (gnutls_auth_get_type(s) == GNUTLS_CRD_PSK) {
    const std::string& name = session.psk_username();
    TlsPeer peer;
    peer.credential = fmt::format("PSK username '{}'", name);
    peer.identity = identity_for_psk_username(config_, name);
    if (peer.identity == nullptr) {
      return Status::PermissionDenied(
          fmt::format("{} is in no [identity] of {} (add it to one's psk-username)",
                      peer.credential, config_.path));
    }
    return peer;
  }

  unsigned count = 0;
  const gnutls_datum_t* chain = gnutls_certificate_get_peers(s, &count);
  if (chain == nullptr || count == 0) {
    if (verify_peer_) {
      return Status::PermissionDenied(
          "no client certificate (tls-verify-peer is on: a TLS client proves who it is)");
    }
    return TlsPeer{nullptr, "no client certificate"};
  }
  gnutls_x509_crt_t crt = nullptr;
  gnutls_x509_crt_init(&crt);
  std::unique_ptr<gnutls_x509_crt_int, decltype(&gnutls_x509_crt_deinit)> guard(
      crt, gnutls_x509_crt_deinit);
  if (int rc = gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER); rc < 0) {
    return Status::PermissionDenied("the client certificate cannot be read: " + gnutls_says(rc));
  }
  const std::string subject = dn_of(crt, false);
  const std::string issuer = dn_of(crt, true);
  TlsPeer peer;
  peer.credential = fmt::format("certificate '{}' (issuer '{}')", subject, issuer);

  unsigned status = 0;
  if (int rc = gnutls_certificate_verify_peers3(s, nullptr, &status); rc < 0) {
    return Status::PermissionDenied(
        fmt::format("{}: cannot be verified: {}", peer.credential, gnutls_says(rc)));
  }
  if (status != 0) {
    gnutls_datum_t out{};
    std::string why = "does not verify";
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
      why = std::string(reinterpret_cast<const char*>(out.data), out.size);
      while (!why.empty() && why.back() == ' ') why.pop_back();
      gnutls_free(out.data);
    }
    return Status::PermissionDenied(fmt::format("{}: {}", peer.credential, why));
  }
  // A certificate that an identity's own CA signed is that identity's, whatever it names.
  for (const auto& ca : client_cas_) {
    unsigned st = 1;
    if (gnutls_x509_crt_verify(crt, ca.certs.data(), static_cast<unsigned>(ca.certs.size()), 0,
                               &st) == 0 &&
        st == 0) {
      const TlsIdentity* named = identity_for_subject(config_, subject);
      if (named != nullptr && named != ca.identity) {
        return Status::PermissionDenied(fmt::format(
            "{}: signed by [identity {}]'s client-ca, but its subject is [identity {}]'s",
            peer.credential, ca.identity->name, named->name));
      }
      peer.identity = ca.identity;
      return peer;
    }
  }
  peer.identity = identity_for_subject(config_, subject);
  if (peer.identity == nullptr) {
    return Status::PermissionDenied(
        fmt::format("{}: its subject is in no [identity] of {} (add it to one's subject)",
                    peer.credential, config_.path));
  }
  if (!peer.identity->client_ca.empty()) {
    return Status::PermissionDenied(
        fmt::format("{}: [identity {}]'s certificates come from its client-ca {} alone",
                    peer.credential, peer.identity->name, peer.identity->client_ca));
  }
  return peer;
}

std::string TlsServerCredentials::explain_failure(const TlsSession& session,
                                                  const Status& failure) const {
  std::string why = failure.message();
  if (psk_ == nullptr) return why;
  const std::string& user = session.psk_username();
  if (user.empty()) return why;
  if (psk_key(user) == nullptr) {
    return fmt::format("{}: PSK username '{}' is not in {}", why, user, psk_file_);
  }
  return fmt::format("{}: PSK username '{}' is in {}, with another key than the client's", why,
                     user, psk_file_);
}

// ---- checks of vvm.conf's files ----

Status check_tls_client(const Config& config, const TlsClientConfig& tls,
                        std::string_view section) {
  if (!tls.enabled()) return Status::Ok();
  auto loaded = TlsClientCredentials::load(TlsClientSettings::from_config(tls));
  if (loaded.ok()) return Status::Ok();
  return Status::InvalidArgument(fmt::format("{}:{}: {}.tls-client-*: {}", config.path, tls.line,
                                             section, loaded.status().message()));
}

Status check_tls_files(const Config& config, std::vector<std::string>* warnings) {
  // The identities' CAs first: a listener's load reads them only with tls-certificates.
  for (const auto& [name, id] : config.identities) {
    if (id.client_ca.empty()) continue;
    auto certs = read_certificates(id.client_ca);
    if (!certs.ok()) {
      return Status::InvalidArgument(fmt::format("{}:{}: identity {}.client-ca: {}", config.path,
                                                 id.line, name, certs.status().message()));
    }
    for (auto crt : *certs) gnutls_x509_crt_deinit(crt);
  }
  auto server = [&](const TlsServerConfig& tls, bool listens, const std::string& section) {
    if (!listens && !tls.enabled()) return Status::Ok();
    auto loaded = TlsServerCredentials::load(config, tls, section);
    if (!loaded.ok()) return loaded.status();
    for (const auto& user : (*loaded)->unmapped_psk_users()) {
      warnings->push_back(fmt::format(
          "{}:{}: {}.tls-psk-file: PSK username '{}' of {} is in no [identity]: its clients "
          "will be refused",
          config.path, tls.psk_file_line, section, user, tls.psk_file));
    }
    return Status::Ok();
  };
  const bool vvmd_tls =
      std::any_of(config.vvmd_listen.begin(), config.vvmd_listen.end(),
                  [](const Endpoint& e) { return e.kind == Endpoint::Kind::kTls; });
  VVM_RETURN_IF_ERROR(server(config.vvmd_tls, vvmd_tls, "vvmd"));
  VVM_RETURN_IF_ERROR(check_tls_client(config, config.vvmd_tls_client, "vvmd"));
  for (const auto& [name, m] : config.movers) {
    const std::string section = "mover " + name;
    VVM_RETURN_IF_ERROR(server(m.tls, m.listen.kind == Endpoint::Kind::kTls, section));
    VVM_RETURN_IF_ERROR(check_tls_client(config, m.tls_client, section));
  }
  return Status::Ok();
}

// ---- sessions ----

namespace {

Result<gnutls_session_t> new_session(unsigned flags, int fd) {
  gnutls_session_t s = nullptr;
  if (int rc = gnutls_init(&s, flags | GNUTLS_NONBLOCK); rc < 0) {
    return Status::Internal("gnutls_init: " + gnutls_says(rc));
  }
  const char* where = nullptr;
  if (int rc = gnutls_priority_set_direct(s, kPriority, &where); rc < 0) {
    gnutls_deinit(s);
    return Status::Internal(fmt::format("TLS priority '{}': {}", kPriority, gnutls_says(rc)));
  }
  gnutls_transport_set_int(s, fd);
  gnutls_transport_set_push_function(s, push);
  return s;
}

}  // namespace

Result<TlsSession> TlsSession::server(int fd, std::shared_ptr<const TlsServerCredentials> creds) {
  auto s = new_session(GNUTLS_SERVER, fd);
  if (!s.ok()) return s.status();
  TlsSession session(*s);
  session.seen_ = std::make_unique<Seen>();
  session.seen_->creds = creds.get();
  gnutls_session_set_ptr(*s, session.seen_.get());
  if (creds->psk_) gnutls_credentials_set(*s, GNUTLS_CRD_PSK, creds->psk_);
  if (creds->x509_) {
    gnutls_credentials_set(*s, GNUTLS_CRD_CERTIFICATE, creds->x509_);
    // The certificate is checked after the handshake (identify()), so that the refusal reaches
    // the client as a reply that says why rather than as a bare TLS alert.
    gnutls_certificate_server_set_request(
        *s, creds->verify_peer_ ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
  }
  return session;
}

Result<TlsSession> TlsSession::client(int fd, std::shared_ptr<const TlsClientCredentials> creds,
                                      const std::string& host) {
  auto s = new_session(GNUTLS_CLIENT, fd);
  if (!s.ok()) return s.status();
  TlsSession session(*s);
  if (creds->psk_) gnutls_credentials_set(*s, GNUTLS_CRD_PSK, creds->psk_);
  if (creds->x509_) {
    gnutls_credentials_set(*s, GNUTLS_CRD_CERTIFICATE, creds->x509_);
    // The server's certificate must be signed by ca-cert.pem and name `host`.
    gnutls_session_set_verify_cert(*s, host.c_str(), 0);
    bool numeric = host.find_first_not_of("0123456789.") == std::string::npos ||
                   host.find(':') != std::string::npos;
    if (!numeric) gnutls_server_name_set(*s, GNUTLS_NAME_DNS, host.data(), host.size());
  }
  return session;
}

TlsSession::TlsSession(TlsSession&& other) noexcept
    : session_(std::exchange(other.session_, nullptr)), seen_(std::move(other.seen_)) {}

TlsSession& TlsSession::operator=(TlsSession&& other) noexcept {
  if (this != &other) {
    if (session_) gnutls_deinit(session_);
    session_ = std::exchange(other.session_, nullptr);
    seen_ = std::move(other.seen_);
  }
  return *this;
}

const std::string& TlsSession::psk_username() const {
  static const std::string kNone;
  return seen_ ? seen_->psk_username : kNone;
}

TlsSession::~TlsSession() {
  if (session_) gnutls_deinit(session_);
}

namespace {
TlsWait direction(gnutls_session_t s) {
  return gnutls_record_get_direction(s) == 0 ? TlsWait::kRead : TlsWait::kWrite;
}
}  // namespace

Result<TlsWait> TlsSession::handshake() {
  for (;;) {
    int rc = gnutls_handshake(session_);
    if (rc == GNUTLS_E_SUCCESS) return TlsWait::kNone;
    if (rc == GNUTLS_E_AGAIN) return direction(session_);
    if (rc == GNUTLS_E_INTERRUPTED) continue;
    if (!gnutls_error_is_fatal(rc)) continue;  // a warning alert: go on
    std::string why = gnutls_says(rc);
    if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED) {
      why += fmt::format(" ({})", gnutls_alert_get_name(gnutls_alert_get(session_)));
    }
    if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
      gnutls_datum_t out{};
      unsigned status = gnutls_session_get_verify_cert_status(session_);
      if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
        why += fmt::format(": {}", std::string(reinterpret_cast<const char*>(out.data), out.size));
        gnutls_free(out.data);
      }
    }
    return Status::Unavailable("TLS handshake failed: " + why);
  }
}

Result<size_t> TlsSession::recv(char* buf, size_t n, TlsWait* wait) {
  *wait = TlsWait::kNone;
  for (;;) {
    ssize_t rc = gnutls_record_recv(session_, buf, n);
    if (rc >= 0) return static_cast<size_t>(rc);
    if (rc == GNUTLS_E_AGAIN) {
      *wait = direction(session_);
      return size_t{0};
    }
    if (rc == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(static_cast<int>(rc))) continue;
    if (rc == GNUTLS_E_PREMATURE_TERMINATION) return size_t{0};  // hung up without close_notify
    return Status::Unavailable("TLS: " + gnutls_says(static_cast<int>(rc)));
  }
}

Result<size_t> TlsSession::send(const char* buf, size_t n, TlsWait* wait) {
  *wait = TlsWait::kNone;
  for (;;) {
    ssize_t rc = gnutls_record_send(session_, buf, n);
    if (rc >= 0) return static_cast<size_t>(rc);
    if (rc == GNUTLS_E_AGAIN) {
      *wait = direction(session_);
      return size_t{0};
    }
    if (rc == GNUTLS_E_INTERRUPTED) continue;
    return Status::Unavailable("TLS: " + gnutls_says(static_cast<int>(rc)));
  }
}

void TlsSession::bye() {
  if (session_) (void)gnutls_bye(session_, GNUTLS_SHUT_WR);
}

}  // namespace vvm::rpc
