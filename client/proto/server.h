// proto/server.h: the daemon side of vvm's control protocol (vvmd, vvmover), on Boost.Asio.
//
// A Server listens on any number of TCP, TLS and Unix endpoints, checks each peer against an
// AccessPolicy when it connects (TCP: the peer's address against allow-host; Unix: SO_PEERCRED's
// uid and the peer's groups against root, the daemon's own uid, allow-uid and allow-group; TLS:
// allow-host, and the peer must be an [identity] of vvm.conf, proto/tls.h), then
// reads requests and answers each with the handler registered for its type. A refused peer
// gets one PermissionDenied reply that says why, and the connection is closed. A request the
// server cannot use (another protocol version, an unknown operation, bad XDR) gets an error reply
// and the connection stays usable, since record marking keeps the framing intact; a record over
// the size limit closes the connection.
//
//   rpc::Server server("vvmd", config.vvmd_access);
//   server.handle<rpc::VvShowRequest>(
//       [&](const rpc::VvShowRequest& r, const rpc::Peer&) -> Result<rpc::VvReply> {...});
//   VVM_RETURN_IF_ERROR(server.listen(endpoint));
//   server.run({SIGTERM, SIGINT});   // returns once a signal arrives or stop() is called
//
// The op a handler serves is its request type's (VvShowRequest::kOp), and what it returns must be
// that request's Reply: anything else does not compile. A handler that cannot answer at once
// takes a Responder as well and answers through it later, from any thread:
//
//   server.handle<rpc::VvCreateRequest>(
//       [&](const rpc::VvCreateRequest& r, const rpc::Peer& peer,
//           rpc::Responder<rpc::VvCreateRequest> answer) { commits.add(r, std::move(answer)); });
//
// Until then that connection reads no more requests (its client waits for this reply anyway);
// the others are served meanwhile. A Responder dropped without an answer sends an Internal
// error, so that no client waits for ever.
//
// handle<R>() returns a Served<R>, which nothing else makes: a module's serve() returns the
// Served<...> of what it registered, and a daemon that declares the whole of what it serves
//   using Serves = rpc::Served<rpc::PingRequest, rpc::VvCreateRequest, ...>;
//   const Serves served = ping + catalog.serve(server) + ...;
// does not compile while one of those requests has no handler, or one is served twice.
//
// Handlers run one at a time on the server's thread: they must not block for long.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "proto/messages.h"

namespace vvm::rpc {

class TlsServerCredentials;

// Who is on the other end of a connection. A TLS peer (kTls) is a local user as a Unix peer
// is, its uid and gid its [identity]'s; a TLS peer without an identity (a certificate-less
// client under tls-verify-peer = false) is kTcp: its host alone.
struct Peer {
  Endpoint::Kind kind = Endpoint::Kind::kUnix;
  std::string address;                 // TCP, TLS: "127.0.0.1:40512", "[::1]:40512"
  uid_t uid = static_cast<uid_t>(-1);  // Unix: from SO_PEERCRED; TLS: the identity's
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
  std::vector<gid_t> groups;  // TLS: the identity's supplementary groups
  std::string identity;       // TLS: the [identity] name
  std::string credential;     // TLS: "PSK username 'alice'", "certificate 'CN=...' (issuer ...)"
  std::string role;           // TLS: the identity's role ("vvmd", "mover"), "" for a user
  // Whether the peer is a known local user (Unix socket or TLS identity), whose uid the
  // permission checks use; a TCP peer is its host only.
  bool has_user() const { return kind != Endpoint::Kind::kTcp; }
  // This connection's number, unique for the server's life (from 1): what a daemon ties
  // per-connection state to, so that on_disconnect can drop it.
  uint64_t session = 0;
  // The address, "uid 1000 gid 1000 pid 4242", or "identity alice (uid 1001) at 127.0.0.1:40512"
  std::string to_string() const;
};

// Where the answer to one request goes: to the connection it came on, once. Made by the Server;
// handlers see it through a Responder.
class ReplySink {
 public:
  virtual ~ReplySink() = default;
  // The first call sends; later ones are ignored. Safe from any thread.
  virtual void send(Result<ReplyBody> result) = 0;
};

// Answers request R, now or later, from any thread, once. Copies share the one answer. It must
// not outlive the Server whose handler received it.
template <class R>
class Responder {
 public:
  explicit Responder(std::shared_ptr<ReplySink> sink) : sink_(std::move(sink)) {}

  void reply(Result<typename R::Reply> result) const {
    if (!result.ok()) return sink_->send(result.status());
    typename R::Reply answer = std::move(result).value();
    if constexpr (CarriesOp<typename R::Reply>) answer.op = R::kOp;  // the op is the request's
    sink_->send(ReplyBody(std::move(answer)));
  }

 private:
  std::shared_ptr<ReplySink> sink_;
};

// Proof that handlers for the requests R... were registered: Server::handle makes a Served<R>,
// `+` joins them, and a Served converts only to the Served of the same requests in any order.
template <class... R>
class Served {
  static_assert((kIsRequest<R> && ...), "Served lists requests of proto/messages.h");
  static_assert(meta::kDistinct<R...>, "a request is served twice");

 public:
  // Only from the same requests: a request listed here and not in S... has no handler, one in
  // S... and not here is served without being listed, and neither converts.
  template <class... S>
  requires(meta::kSubset<meta::List<R...>, meta::List<S...>>&&
               meta::kSubset<meta::List<S...>, meta::List<R...>>) Served(const Served<S...>&) {
  }  // NOLINT: implicit, so that a serve() can return a join

 private:
  Served() = default;
  friend class Server;
  template <class...>
  friend class Served;
  template <class... A, class... B>
  friend Served<A..., B...> operator+(const Served<A...>&, const Served<B...>&);
};

template <class... A, class... B>
Served<A..., B...> operator+(const Served<A...>&, const Served<B...>&) {
  return {};
}

// How the server calls a handler, whatever its kind: the request, who sent it, where the answer
// goes.
using Handler =
    std::function<void(const RequestBody& request, const Peer& peer, std::shared_ptr<ReplySink>)>;

class Server {
 public:
  // `daemon` names the server in logs and in the messages peers get ("vvmd").
  Server(std::string daemon, AccessPolicy policy);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves R with `handler`, which is either
  //   (const R&, const Peer&) -> Result<R::Reply>          answers at once, or
  //   (const R&, const Peer&, Responder<R>) -> void         answers through the Responder.
  // A later handle<R> replaces an earlier one.
  template <class R, class F>
  Served<R> handle(F handler) {
    static_assert(kIsRequest<R>, "handle<R>: R is not a request of proto/messages.h");
    if constexpr (std::is_invocable_v<F&, const R&, const Peer&, Responder<R>>) {
      add_handler(R::kOp, [h = std::move(handler)](const RequestBody& body, const Peer& peer,
                                                   std::shared_ptr<ReplySink> sink) mutable {
        h(std::get<R>(body), peer, Responder<R>(std::move(sink)));
      });
    } else {
      static_assert(std::is_invocable_r_v<Result<typename R::Reply>, F&, const R&, const Peer&>,
                    "a handler of R takes (const R&, const Peer&) and returns "
                    "Result<R::Reply>, or takes a Responder<R> as well and returns nothing");
      add_handler(R::kOp, [h = std::move(handler)](const RequestBody& body, const Peer& peer,
                                                   std::shared_ptr<ReplySink> sink) mutable {
        Responder<R>(std::move(sink)).reply(h(std::get<R>(body), peer));
      });
    }
    return Served<R>();
  }
  // Called on the server's thread when a connection ends (the peer hung up or was refused, or
  // the framing was lost), with its Peer::session; not for the connections that stop() closes.
  void on_disconnect(std::function<void(uint64_t session)> hook);
  // Called once for every request answered (a decoded request of a known op), with the time
  // from its arrival to its answer and the answer's code (kOk for a reply): what the daemons'
  // metrics count. Runs on whatever thread answers, so it must be thread-safe. Call before run().
  using AnsweredHook =
      std::function<void(Op op, std::chrono::steady_clock::duration took, Code code)>;
  void on_answered(AnsweredHook hook);

  // The credentials of the tls: endpoints; before listen() on one.
  void set_tls(std::shared_ptr<const TlsServerCredentials> credentials);

  // Binds and listens now, so that a daemon fails at start-up on an endpoint it cannot use. A
  // Unix socket's folder is created if missing; a stale socket file (nobody listening) is
  // replaced; a live one, or a file that is not a socket, is an error. The socket is made
  // connectable by everyone: SO_PEERCRED, not the file mode, decides who is served.
  Status listen(const Endpoint& endpoint);

  // Serves until stop() is called or one of `stop_signals` arrives, then closes every
  // connection and removes the Unix sockets it created.
  Status run(std::initializer_list<int> stop_signals = {});
  // Safe from any thread, and before run() (run then returns at once).
  void stop();

  // Runs `task` on the server's thread, where handlers run, so that work finished elsewhere (a
  // reply from another daemon) can change the handlers' state without locks. Safe from any
  // thread; a task posted after the server stopped never runs.
  void post(std::function<void()> task);
  // Runs `task` on the server's thread each time signal `sig` arrives while run() runs (vvmd's
  // SIGHUP: read vvm.conf again). Call before run().
  void on_signal(int sig, std::function<void()> task);
  // Runs `task` on the server's thread every `period` while run() runs (the first time one
  // period after run() starts). Call before run().
  void every(std::chrono::milliseconds period, std::function<void()> task);

  struct Impl;  // proto/server.cc: the Asio state its connections share

 private:
  void add_handler(Op op, Handler handler);

  std::unique_ptr<Impl> impl_;
};

// Whether `peer` may use a daemon under `policy`: Ok, or PermissionDenied saying why. `groups`
// are the peer's groups (primary and supplementary) when known.
Status check_access(const AccessPolicy& policy, const Peer& peer, const struct sockaddr* tcp_addr,
                    const std::vector<gid_t>& groups);

}  // namespace vvm::rpc
