// proto/client.h: the synchronous side of vvm's control protocol, for vvctl, libvvclient and the
// nbdkit plugin: connect to a daemon, send a request, wait for its reply, each with a deadline.
//
//   auto client = rpc::Client::connect(endpoint, 2s);
//   auto reply = client->call(rpc::PingRequest{}, 2s);   // Result<rpc::PingReply>
//
// A tls: endpoint ("tls:vvm.example:7371") speaks TLS with the credentials given, by default
// those of the environment (TlsClientSettings::from_env(): $VVM_TLS_PSK_FILE and
// $VVM_TLS_USERNAME, or $VVM_TLS_CERTIFICATES), and checks the server's certificate when
// certificates are given.
//
// Errors name the endpoint and the reason: Unavailable when nothing answers at the endpoint or
// the daemon hangs up, Timeout when the deadline passes, ProtocolError for a reply that makes no
// sense, and otherwise the code and message the daemon sent. After a transport error the
// connection is closed; later calls fail with Unavailable.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/status.h"
#include "proto/messages.h"
#include "proto/tls.h"

namespace vvm::rpc {

class Client {
 public:
  static Result<Client> connect(const Endpoint& endpoint, std::chrono::milliseconds timeout,
                                const TlsClientSettings& tls = TlsClientSettings::from_env());
  Client(Client&& other) noexcept;
  Client& operator=(Client&& other) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  // Sends `request` and returns the daemon's result, of the request's Reply type, or its error as
  // a Status; a reply of another type is a ProtocolError.
  template <class R>
  requires kIsRequest<R> Result<typename R::Reply> call(const R& request,
                                                        std::chrono::milliseconds timeout) {
    auto reply = call(RequestBody(request), timeout);
    if (!reply.ok()) return reply.status();
    auto* answer = std::get_if<typename R::Reply>(&*reply);
    if (answer == nullptr) return wrong_reply(R::kOp);
    return std::move(*answer);
  }
  // The same for a request whose type is known only at run time.
  Result<ReplyBody> call(const RequestBody& body, std::chrono::milliseconds timeout);
  // The same with the whole request and reply, for callers (and tests) that set the version or
  // the xid themselves. An error reply is a Reply, not a failed Result.
  Result<Reply> exchange(const Request& request, std::chrono::milliseconds timeout);

  const Endpoint& endpoint() const { return endpoint_; }

 private:
  Client(int fd, Endpoint endpoint) : fd_(fd), endpoint_(std::move(endpoint)) {}
  void close_fd();
  // Sends or receives what it can on the socket or through TLS: bytes moved, or 0 and the
  // readiness to wait for (0 and kNone on receive: the daemon closed the connection).
  Result<size_t> io(bool sending, char* data, size_t n, TlsWait* wait);
  Status fail(Status status);  // closes the connection and returns `status`
  Status wrong_reply(Op op);   // a ProtocolError: the reply to `op` is of another type

  int fd_ = -1;
  Endpoint endpoint_;
  std::unique_ptr<TlsSession> tls_;
  uint32_t next_xid_ = 1;
};

}  // namespace vvm::rpc
