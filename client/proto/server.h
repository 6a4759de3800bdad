// proto/server.h: the daemon side of vvm's control protocol (vvmd, vvmover), on Boost.Asio.
//
// A Server listens on any number of TCP and Unix endpoints, checks each peer against an
// AccessPolicy when it connects (TCP: the peer's address against allow-host; Unix: SO_PEERCRED's
// uid and the peer's groups against root, the daemon's own uid, allow-uid and allow-group), then
// reads requests and answers each with the handler registered for its operation. A refused peer
// gets one PermissionDenied reply that says why, and the connection is closed. A request the
// server cannot use (another protocol version, an unknown operation, bad XDR) gets an error reply
// and the connection stays usable, since record marking keeps the framing intact; a record over
// the size limit closes the connection.
//
//   rpc::Server server("vvmd", config.vvmd_access);
//   server.handle(rpc::Op::kPing, [&](const rpc::Peer&, const rpc::RequestBody& r) {...});
//   VVM_RETURN_IF_ERROR(server.listen(endpoint));
//   server.run({SIGTERM, SIGINT});   // returns once a signal arrives or stop() is called
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

#include "common/config.h"
#include "common/status.h"
#include "proto/messages.h"

namespace vvm::rpc {

// Who is on the other end of a connection.
struct Peer {
  Endpoint::Kind kind = Endpoint::Kind::kUnix;
  std::string address;                 // TCP: "127.0.0.1:40512", "[::1]:40512"
  uid_t uid = static_cast<uid_t>(-1);  // Unix: from SO_PEERCRED
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
  // This connection's number, unique for the server's life (from 1): what a daemon ties
  // per-connection state to, so that on_disconnect can drop it.
  uint64_t session = 0;
  std::string to_string() const;  // the address, or "uid 1000 gid 1000 pid 4242"
};

using Handler = std::function<Result<ReplyBody>(const Peer& peer, const RequestBody& request)>;

class Server {
 public:
  // `daemon` names the server in logs and in the messages peers get ("vvmd").
  Server(std::string daemon, AccessPolicy policy);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void handle(Op op, Handler handler);
  // Called on the server's thread when a connection ends (the peer hung up or was refused, or
  // the framing was lost), with its Peer::session; not for the connections that stop() closes.
  void on_disconnect(std::function<void(uint64_t session)> hook);

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
  // Runs `task` on the server's thread every `period` while run() runs (the first time one
  // period after run() starts). Call before run().
  void every(std::chrono::milliseconds period, std::function<void()> task);

  struct Impl;  // proto/server.cc: the Asio state its connections share

 private:
  std::unique_ptr<Impl> impl_;
};

// Whether `peer` may use a daemon under `policy`: Ok, or PermissionDenied saying why. `groups`
// are the peer's groups (primary and supplementary) when known.
Status check_access(const AccessPolicy& policy, const Peer& peer, const struct sockaddr* tcp_addr,
                    const std::vector<gid_t>& groups);

}  // namespace vvm::rpc
