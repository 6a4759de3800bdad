// proto/tls.h: TLS for vvm's control protocol, on GnuTLS: the credentials a daemon serves its
// "tls:ADDR:PORT" listeners with and a client connects with, one TLS session over a connected
// non-blocking socket, and who the peer of a server session is.
//
// A server (vvmd) loads TlsServerCredentials once, from vvm.conf's TLS settings; every file is
// checked then, and a mistake names vvm.conf's line, the file and the reason. A client loads
// TlsClientCredentials from TlsClientSettings (vvctl's --tls-* options, or the environment).
// Each connection then gets a TlsSession, whose calls never block: they say what the socket
// must become ready for (TlsWait) before they are called again, so that the same session serves
// the blocking client (poll) and the daemon's event loop (Asio).
//
// Who a peer is: GnuTLS hands over the PSK username or the client's certificate, and vvm.conf's
// [identity] sections map that to a local user (identify()). A name no section lists is
// nobody: such a peer, a certificate that does not verify, and one from another identity's CA
// are refused with the reason, never guessed.
#pragma once

#include <gnutls/gnutls.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace vvm::rpc {

// What a client proves itself with. PSK wins when both are given.
struct TlsClientSettings {
  std::string psk_file;      // "USERNAME:HEXKEY" lines, as psktool writes them
  std::string username;      // which of its users; "" when the file holds one
  std::string certificates;  // a folder: ca-cert.pem, client-cert.pem, client-key.pem
  // $VVM_TLS_PSK_FILE, $VVM_TLS_USERNAME, $VVM_TLS_CERTIFICATES.
  static TlsClientSettings from_env();
  // A daemon's, from vvm.conf ([vvmd] or [mover NAME] tls-client-*).
  static TlsClientSettings from_config(const TlsClientConfig& config);
  bool empty() const { return psk_file.empty() && certificates.empty(); }
  // The PSK username these settings use: `username`, else the PSK file's only user.
  Result<std::string> psk_user() const;
};

// A daemon's TLS client settings (`section`: "vvmd", "mover m1"), loaded as a connection would
// load them, so that a file that cannot be used is named with vvm.conf's line at start (and by
// vvctl conf check), not at the first connection:
//   "vvm.conf:20: vvmd.tls-client-*: /etc/vvm/vvmd.psk: cannot read: Permission denied".
// Not enabled: Ok, nothing loaded.
Status check_tls_client(const Config& config, const TlsClientConfig& tls, std::string_view section);

// Every TLS file vvm.conf names, as the daemons will read them: vvmd's and each tls: mover's
// listener (TlsServerCredentials::load), vvmd's and the movers' tls-client-*, and every
// [identity]'s client-ca (a readable PEM file of certificates). The first mistake, named by
// vvm.conf's line, the file and the reason. `warnings` gets what is not a mistake but does not
// work either (a PSK username in no [identity]).
Status check_tls_files(const Config& config, std::vector<std::string>* warnings);

// What a TLS session asks for before its call can go on.
enum class TlsWait { kNone, kRead, kWrite };

class TlsClientCredentials {
 public:
  // Reads the PSK file (its key for `settings.username`) or the certificate folder. Errors name
  // the file and the reason.
  static Result<std::shared_ptr<TlsClientCredentials>> load(const TlsClientSettings& settings);
  ~TlsClientCredentials();
  TlsClientCredentials(const TlsClientCredentials&) = delete;
  TlsClientCredentials& operator=(const TlsClientCredentials&) = delete;

  // "PSK username 'alice'", "certificate CN=alice,O=vvm": for messages.
  const std::string& describe() const { return describe_; }

 private:
  TlsClientCredentials() = default;
  friend class TlsSession;
  gnutls_psk_client_credentials_t psk_ = nullptr;
  gnutls_certificate_credentials_t x509_ = nullptr;
  std::string describe_;
};

// Who a TLS peer proved to be.
struct TlsPeer {
  const TlsIdentity* identity = nullptr;  // null: a certificate-less peer (verify_peer false)
  std::string credential;                 // "PSK username 'alice'", "certificate 'CN=...'"
};

class TlsSession;

class TlsServerCredentials {
 public:
  // From `config.vvmd_tls` (or a mover's `tls`): the PSK file's every line (USERNAME:HEXKEY), the
  // certificate folder's key, certificate and CA, every identity's client-ca. Errors read
  // "vvm.conf:14: vvmd.tls-certificates: DIR/server-key.pem: cannot read: Permission denied".
  // The identities are the config's, copied.
  static Result<std::shared_ptr<TlsServerCredentials>> load(const Config& config,
                                                            const TlsServerConfig& tls,
                                                            std::string_view section);
  ~TlsServerCredentials();
  TlsServerCredentials(const TlsServerCredentials&) = delete;
  TlsServerCredentials& operator=(const TlsServerCredentials&) = delete;

  // The peer of a session whose handshake is done: its identity, or PermissionDenied saying
  // why it has none (an unknown PSK username, a certificate that does not verify, a subject no
  // [identity] lists, a certificate of one identity's CA naming another identity).
  Result<TlsPeer> identify(const TlsSession& session) const;
  // Why a handshake failed, from GnuTLS's error and what the session saw of the peer.
  std::string explain_failure(const TlsSession& session, const Status& failure) const;

  // The hex key of a PSK username of the PSK file, or null.
  const std::string* psk_key(const std::string& username) const;

  // Usernames of the PSK file that no [identity] lists: a peer using one is refused; vvmd
  // warns of them at start.
  const std::vector<std::string>& unmapped_psk_users() const { return unmapped_; }

 private:
  TlsServerCredentials() = default;
  friend class TlsSession;
  Config config_;  // its identities decide who a peer is
  gnutls_psk_server_credentials_t psk_ = nullptr;
  gnutls_certificate_credentials_t x509_ = nullptr;
  bool verify_peer_ = true;
  std::string psk_file_;
  std::map<std::string, std::string> psk_keys_;  // username -> hex key, the PSK file's
  std::vector<std::string> unmapped_;
  struct ClientCa {
    const TlsIdentity* identity;
    std::vector<gnutls_x509_crt_t> certs;
  };
  std::vector<ClientCa> client_cas_;
};

// One TLS connection over a connected socket that the caller owns and has made non-blocking.
class TlsSession {
 public:
  static Result<TlsSession> server(int fd, std::shared_ptr<const TlsServerCredentials> creds);
  // `host` is the name the server's certificate must carry (an address or a DNS name).
  static Result<TlsSession> client(int fd, std::shared_ptr<const TlsClientCredentials> creds,
                                   const std::string& host);
  TlsSession(TlsSession&& other) noexcept;
  TlsSession& operator=(TlsSession&& other) noexcept;
  ~TlsSession();

  // One step of the handshake: kNone once it is done, else call again when the socket is ready
  // for what it says. An error says why (GnuTLS's words).
  Result<TlsWait> handshake();
  // Reads up to `n` bytes into `buf`: the count (0 with *wait kNone: the peer closed), or 0 and
  // what to wait for.
  Result<size_t> recv(char* buf, size_t n, TlsWait* wait);
  // Writes up to `n` bytes: the count, or 0 and what to wait for (then call again with the same
  // bytes).
  Result<size_t> send(const char* buf, size_t n, TlsWait* wait);
  // Says goodbye (close_notify) if the socket takes it at once; never waits.
  void bye();

  gnutls_session_t native() const { return session_; }
  // Server: the PSK username the client gave, once it has given one (also when the handshake
  // then failed); "" before, or for a certificate.
  const std::string& psk_username() const;

  // What a server session's PSK callback sees (GnuTLS's session pointer): where to look up the
  // key, and the username asked for.
  struct Seen {
    const TlsServerCredentials* creds = nullptr;
    std::string psk_username;
  };

 private:
  explicit TlsSession(gnutls_session_t s) : session_(s) {}
  gnutls_session_t session_ = nullptr;
  std::unique_ptr<Seen> seen_;  // servers only; on the heap, so that moves keep its address
};

}  // namespace vvm::rpc
