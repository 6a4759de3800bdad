// proto/server.cc: the control-protocol server on Boost.Asio: acceptors for TCP and Unix
// endpoints, one Session per connection reading record-marked requests and writing replies,
// the peer check done once per connection, and the ReplySink through which a handler answers.
// A TLS connection is a TlsStream (a socket and its proto/tls.h session, read and written as
// Asio streams are) after a TlsHandshake.
#include "proto/server.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <type_traits>
#include <vector>

#include <fmt/core.h>

#include "common/log.h"
#include "proto/client.h"
#include "proto/frame.h"
#include "proto/tls.h"

namespace vvm::rpc {

namespace asio = boost::asio;
using asio::ip::tcp;
using local = asio::local::stream_protocol;

std::string Peer::to_string() const {
  if (kind == Endpoint::Kind::kTcp) return address;
  if (kind == Endpoint::Kind::kTls) {
    return fmt::format("identity {} (uid {}, {}) at {}", identity, uid, credential, address);
  }
  return fmt::format("uid {} gid {} pid {}", uid, gid, pid);
}

Status check_access(const AccessPolicy& policy, const Peer& peer, const sockaddr* tcp_addr,
                    const std::vector<gid_t>& groups) {
  if (peer.kind != Endpoint::Kind::kUnix) {  // TLS: the host too, then the identity
    for (const auto& pattern : policy.allowed_hosts) {
      if (tcp_addr && pattern.matches(tcp_addr)) return Status::Ok();
    }
    return Status::PermissionDenied("the host is not in the allow-host list");
  }
  if (peer.uid == 0 || peer.uid == ::geteuid()) return Status::Ok();
  const auto& uids = policy.allowed_uids;
  if (std::find(uids.begin(), uids.end(), peer.uid) != uids.end()) return Status::Ok();
  for (gid_t g : groups) {
    const auto& gids = policy.allowed_gids;
    if (std::find(gids.begin(), gids.end(), g) != gids.end()) return Status::Ok();
  }
  return Status::PermissionDenied(
      "not root, not the daemon's user, and neither the uid nor a group is in allow-uid or "
      "allow-group");
}

namespace {

using Clock = std::chrono::steady_clock;

// The peer's credentials and groups from a connected Unix socket.
Peer unix_peer(int fd, std::vector<gid_t>* groups) {
  Peer peer;
  peer.kind = Endpoint::Kind::kUnix;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    peer.uid = cred.uid;
    peer.gid = cred.gid;
    peer.pid = cred.pid;
    groups->push_back(cred.gid);
  }
#ifdef SO_PEERGROUPS
  // Supplementary groups (Linux 4.13+), so that allow-group works for a user's other groups.
  std::vector<gid_t> extra(64);
  len = static_cast<socklen_t>(extra.size() * sizeof(gid_t));
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, extra.data(), &len) < 0 && errno == ERANGE) {
    extra.resize(len / sizeof(gid_t));
    len = static_cast<socklen_t>(extra.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, extra.data(), &len) < 0) len = 0;
  } else if (errno == ENOPROTOOPT) {
    len = 0;
  }
  extra.resize(len / sizeof(gid_t));
  groups->insert(groups->end(), extra.begin(), extra.end());
#endif
  return peer;
}

std::string tcp_address(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

}  // namespace

namespace {

// A TLS connection as Asio's composed reads and writes (async_read, async_write) use a stream:
// each async_*_some tries the session, waits for the socket when it must, and completes
// through the socket's executor, never inline.
class TlsStream {
 public:
  using executor_type = tcp::socket::executor_type;
  TlsStream(tcp::socket socket, TlsSession session)
      : socket_(std::move(socket)), session_(std::move(session)) {}
  TlsStream(TlsStream&&) = default;
  ~TlsStream() {
    if (socket_.is_open()) session_.bye();
  }

  executor_type get_executor() { return socket_.get_executor(); }

  template <class Buffers, class Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    asio::mutable_buffer b = first(buffers);
    step(false, static_cast<char*>(b.data()), b.size(), std::forward<Handler>(handler));
  }
  template <class Buffers, class Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    asio::const_buffer b = first(buffers);
    step(true, static_cast<char*>(const_cast<void*>(b.data())), b.size(),
         std::forward<Handler>(handler));
  }

 private:
  template <class Buffers>
  static auto first(const Buffers& buffers) {
    auto it = asio::buffer_sequence_begin(buffers);
    auto end = asio::buffer_sequence_end(buffers);
    for (; it != end; ++it) {
      if (asio::buffer_size(*it) > 0) return *it;
    }
    return decltype(*it)(*asio::buffer_sequence_begin(buffers));
  }

  template <class Handler>
  void step(bool writing, char* data, size_t size, Handler handler) {
    if (size == 0) return complete(std::move(handler), {}, 0);
    TlsWait wait = TlsWait::kNone;
    auto n = writing ? session_.send(data, size, &wait) : session_.recv(data, size, &wait);
    if (!n.ok()) {
      log::debug("TLS connection: {}", n.status().message());
      return complete(std::move(handler), asio::error::connection_aborted, 0);
    }
    if (*n > 0) return complete(std::move(handler), {}, *n);
    if (wait == TlsWait::kNone) return complete(std::move(handler), asio::error::eof, 0);
    socket_.async_wait(
        wait == TlsWait::kRead ? tcp::socket::wait_read : tcp::socket::wait_write,
        [this, writing, data, size, h = std::move(handler)](boost::system::error_code ec) mutable {
          if (ec) return complete(std::move(h), ec, 0);
          step(writing, data, size, std::move(h));
        });
  }

  template <class Handler>
  void complete(Handler handler, boost::system::error_code ec, size_t n) {
    asio::post(socket_.get_executor(), [h = std::move(handler), ec, n]() mutable { h(ec, n); });
  }

  tcp::socket socket_;
  TlsSession session_;
};

}  // namespace

struct Server::Impl {
  std::string daemon;
  AccessPolicy policy;
  std::shared_ptr<const TlsServerCredentials> tls;
  std::vector<std::unique_ptr<tcp::acceptor>> tls_acceptors;
  std::map<Op, Handler> handlers;
  std::function<void(uint64_t)> disconnect_hook;
  Server::AnsweredHook answered_hook;
  uint64_t last_session = 0;
  uint64_t open_sessions = 0;  // connections open now, for the out-of-descriptors warning
  bool out_of_fds = false;     // said once until an accept works again
  // Set by stop() and the destructor; before `io`, whose end destroys the last sessions.
  bool stopped = false;
  asio::io_context io;
  std::vector<std::unique_ptr<tcp::acceptor>> tcp_acceptors;
  std::vector<std::unique_ptr<local::acceptor>> unix_acceptors;
  std::vector<std::string> unix_paths;  // removed when run() returns
  struct Periodic {
    std::chrono::milliseconds period;
    std::function<void()> task;
    std::unique_ptr<asio::steady_timer> timer;
  };
  std::vector<Periodic> periodic;
  std::vector<std::pair<int, std::function<void()>>> signal_tasks;  // on_signal()

  void arm(Periodic& p);

  // Where a session's reply goes: written, and the connection read again if `keep_open`.
  using Answer = std::function<void(Reply reply, bool keep_open)>;
  // Decodes `bytes` and has the handler of its type answer through `answer`, now or later; an
  // error (bad bytes, no handler) is answered at once.
  void dispatch(const Peer& peer, const std::string& bytes, Answer answer);
  template <class Socket>
  void start_session(Socket socket, Peer peer, Status access);
  // Accepts the listener's connections, handing each on: a plaintext one to its session at
  // once, a TLS one (`with_tls`) to its handshake first.
  void accept_tcp(tcp::acceptor& acceptor, bool with_tls);
  void accept_unix(local::acceptor& acceptor);
  // After a failed accept: `accept_again` later, not at once. Out of file descriptors (EMFILE,
  // ENFILE) the listen queue keeps the peer and every retry fails at once, so retrying without
  // a pause spins a core and floods the log; the pause lets connections end and free theirs.
  void accept_later(const boost::system::error_code& ec, std::function<void()> accept_again);
  void close_all();
  void session_ended(uint64_t session);
};

namespace {

// One connection: read a record, answer it, repeat. Owned by the shared_ptr its pending
// operations hold, so it lives as long as it has work.
template <class Socket>
class Session : public std::enable_shared_from_this<Session<Socket>> {
 public:
  Session(Server::Impl* server, Socket socket, Peer peer, Status access)
      : server_(server),
        socket_(std::move(socket)),
        peer_(std::move(peer)),
        access_(std::move(access)) {}

  // The last pending operation has let go: the connection is over.
  ~Session() { server_->session_ended(peer_.session); }

  void start() { read_mark(); }

 private:
  void read_mark() {
    auto self = this->shared_from_this();
    asio::async_read(socket_, asio::buffer(mark_),
                     [self](boost::system::error_code ec, size_t) { self->on_mark(ec); });
  }

  void on_mark(boost::system::error_code ec) {
    if (ec) return closed(ec);
    if (Status s = reader_.add_mark(decode_mark(mark_.data())); !s.ok()) {
      // A TLS ClientHello (a handshake record, version 3.x) read as a record mark.
      const bool tls_hello = mark_[0] == 22 && mark_[1] == 3;
      log::warning(
          "{}: closing the connection from {}: {}", server_->daemon, peer_.to_string(),
          tls_hello ? "a TLS client on a plaintext port (its endpoint is not tls:)" : s.message());
      // The framing is lost: nothing more can be read from this peer, but it can still be told
      // why (no xid is known: 0) before the connection closes.
      return send(
          error_reply({}, Status(s.code(), fmt::format("{}: {}", server_->daemon, s.message()))),
          false);
    }
    auto self = this->shared_from_this();
    asio::async_read(socket_, asio::buffer(reader_.tail(), reader_.pending()),
                     [self](boost::system::error_code ec2, size_t n) { self->on_body(ec2, n); });
  }

  void on_body(boost::system::error_code ec, size_t n) {
    if (ec) return closed(ec);
    reader_.advance(n);
    if (!reader_.complete()) return read_mark();
    std::string bytes = reader_.take();
    if (!access_.ok()) {
      // Answer the first request, so the peer learns why, then hang up.
      auto preamble = decode_preamble(bytes);
      return send(
          error_reply(preamble.ok() ? *preamble : Preamble{},
                      Status::PermissionDenied(fmt::format("{} refuses {}: {}", server_->daemon,
                                                           peer_.to_string(), access_.message()))),
          false);
    }
    auto self = this->shared_from_this();
    server_->dispatch(peer_, bytes, [self](Reply reply, bool keep_open) {
      self->send(std::move(reply), keep_open);
    });
  }

  // Writes `reply`, then reads the next request if `keep_open`, else lets the connection end.
  void send(Reply reply, bool keep_open) {
    auto encoded = encode_reply(reply);
    if (!encoded.ok()) {
      log::error("{}: cannot encode the reply to {}: {}", server_->daemon, peer_.to_string(),
                 encoded.status().message());
      reply = error_reply(
          {kProtocolMagic, kProtocolVersion, reply.xid},
          Status::Internal("the reply could not be encoded: " + encoded.status().message()));
      encoded = encode_reply(reply);
      if (!encoded.ok()) return;
    }
    out_ = frame_record(*encoded);
    auto self = this->shared_from_this();
    asio::async_write(socket_, asio::buffer(out_),
                      [self, keep_open](boost::system::error_code ec2, size_t) {
                        if (ec2) return self->closed(ec2);
                        if (keep_open) self->read_mark();
                      });
  }

  void closed(boost::system::error_code ec) {
    if (ec == asio::error::eof || ec == asio::error::operation_aborted) {
      log::debug("{}: {} disconnected", server_->daemon, peer_.to_string());
    } else {
      log::debug("{}: connection from {} ended: {}", server_->daemon, peer_.to_string(),
                 ec.message());
    }
  }

  Server::Impl* server_;
  Socket socket_;
  Peer peer_;
  Status access_;
  std::array<char, kMarkSize> mark_{};
  RecordReader reader_;
  std::string out_;
};

}  // namespace

namespace {

// The answer to one request: sent once, on the server's thread, to the session it came from.
class SessionSink : public ReplySink {
 public:
  SessionSink(Server::Impl* server, Server::Impl::Answer answer, uint32_t xid, Op op)
      : server_(server),
        answer_(std::move(answer)),
        xid_(xid),
        op_(op),
        arrived_(std::chrono::steady_clock::now()) {}

  // A handler that let go of its Responder without answering: the client must not wait for ever.
  ~SessionSink() override {
    if (!sent_.load()) {
      send(Status::Internal(
          fmt::format("{}: {} was dropped without a reply", server_->daemon, op_name(op_))));
    }
  }

  void send(Result<ReplyBody> result) override {
    if (sent_.exchange(true)) return;
    if (server_->answered_hook) {
      server_->answered_hook(op_, std::chrono::steady_clock::now() - arrived_,
                             result.ok() ? Code::kOk : result.status().code());
    }
    Reply reply;
    reply.xid = xid_;
    if (result.ok()) {
      reply.body = std::move(result).value();
    } else {
      reply.status = result.status();
    }
    if (server_->io.get_executor().running_in_this_thread()) {
      return answer_(std::move(reply), true);
    }
    // From another thread: the session is the server thread's to touch.
    asio::post(server_->io,
               [server = server_, answer = answer_, reply = std::move(reply)]() mutable {
                 if (!server->stopped) answer(std::move(reply), true);
               });
  }

 private:
  Server::Impl* server_;
  Server::Impl::Answer answer_;
  uint32_t xid_;
  Op op_;
  std::chrono::steady_clock::time_point arrived_;
  std::atomic<bool> sent_{false};
};

}  // namespace

void Server::Impl::dispatch(const Peer& peer, const std::string& bytes, Answer answer) {
  auto preamble = decode_preamble(bytes);
  if (!preamble.ok()) {
    // Not our protocol at all: say so once, then stop listening to this peer.
    log::warning("{}: {} sent {}", daemon, peer.to_string(), preamble.status().message());
    return answer(error_reply({}, preamble.status()), false);
  }
  auto request = decode_request(bytes);
  if (!request.ok()) {
    log::warning("{}: request {} from {}: {}", daemon, preamble->xid, peer.to_string(),
                 request.status().message());
    return answer(
        error_reply(*preamble, Status(request.status().code(),
                                      fmt::format("{}: {}", daemon, request.status().message()))),
        true);
  }
  Op op = op_of(request->body);
  auto it = handlers.find(op);
  if (it == handlers.end()) {
    return answer(error_reply(*preamble, Status::InvalidArgument(fmt::format(
                                             "{} does not handle {}", daemon, op_name(op)))),
                  true);
  }
  log::debug("{}: {} request {} from {}", daemon, op_name(op), request->xid, peer.to_string());
  auto sink = std::make_shared<SessionSink>(this, std::move(answer), request->xid, op);
  try {
    it->second(request->body, peer, sink);
  } catch (const std::exception& e) {
    log::error("{}: {} from {} failed: {}", daemon, op_name(op), peer.to_string(), e.what());
    sink->send(Status::Internal(fmt::format("{}: {} failed: {}", daemon, op_name(op), e.what())));
  }
}

void Server::Impl::session_ended(uint64_t session) {
  --open_sessions;
  // After stop() the daemon is going away, and what the hook would tidy with it.
  if (stopped || !disconnect_hook) return;
  try {
    disconnect_hook(session);
  } catch (const std::exception& e) {
    log::error("{}: the end of session {}: {}", daemon, session, e.what());
  }
}

template <class Socket>
void Server::Impl::start_session(Socket socket, Peer peer, Status access) {
  peer.session = ++last_session;
  ++open_sessions;
  if (out_of_fds) {
    out_of_fds = false;
    log::notice("{}: accepting connections again ({} open)", daemon, open_sessions);
  }
  if (!access.ok()) {
    log::warning("{}: refused {}: {}", daemon, peer.to_string(), access.message());
  } else {
    log::debug("{}: connection from {}", daemon, peer.to_string());
  }
  std::make_shared<Session<Socket>>(this, std::move(socket), std::move(peer), std::move(access))
      ->start();
}

void Server::Impl::accept_later(const boost::system::error_code& ec,
                                std::function<void()> accept_again) {
  const bool fds =
      ec == asio::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system;
  if (!fds) {
    log::warning("{}: accept failed: {}", daemon, ec.message());
  } else if (!out_of_fds) {
    out_of_fds = true;
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    log::warning(
        "{}: out of file descriptors ({}; {} connections open, limit {}): new connections wait "
        "until some end",
        daemon, ec.message(), open_sessions, static_cast<uint64_t>(limit.rlim_cur));
  }
  auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(fds ? 100 : 10));
  timer->async_wait(
      [this, timer, again = std::move(accept_again)](boost::system::error_code wait_ec) {
        if (wait_ec || stopped) return;
        again();
      });
}

namespace {

// How long a TLS client has to finish its handshake: a peer that connects and says nothing
// must not hold a connection for ever.
constexpr std::chrono::seconds kHandshakeTimeout{10};

// A TLS connection until its handshake is done: it peeks at the first byte (a plaintext
// client's request is answered, in plaintext, that this port is TLS), shakes hands, asks the
// credentials who the peer is, and hands the connection to a Session; a failure is logged
// with its reason and the connection closed.
class TlsHandshake : public std::enable_shared_from_this<TlsHandshake> {
 public:
  TlsHandshake(Server::Impl* server, tcp::socket socket, Peer peer)
      : server_(server), socket_(std::move(socket)), timer_(server->io), peer_(std::move(peer)) {}

  void start() {
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    // A handshake is several small writes in a row: without this, Nagle's algorithm holds each
    // back for the peer's delayed ACK (40 ms a round).
    socket_.set_option(tcp::no_delay(true), ec);
    auto self = shared_from_this();
    timer_.expires_after(kHandshakeTimeout);
    timer_.async_wait([self](boost::system::error_code tec) {
      if (tec || self->done_) return;
      self->fail(fmt::format("no TLS handshake within {}s", kHandshakeTimeout.count()));
    });
    socket_.async_wait(tcp::socket::wait_read,
                       [self](boost::system::error_code wec) { self->first_byte(wec); });
  }

 private:
  void first_byte(boost::system::error_code ec) {
    if (done_) return;
    if (ec) return fail(ec.message());
    unsigned char b = 0;
    ssize_t n = ::recv(socket_.native_handle(), &b, 1, MSG_PEEK);
    if (n <= 0) return fail(n == 0 ? "closed before its TLS handshake" : std::strerror(errno));
    // A TLS connection starts with a handshake record (content type 22); vvm's plaintext
    // requests with a record mark, whose high bit is set.
    if (b != 22) {
      done_ = true;
      timer_.cancel();
      Peer plain = peer_;
      plain.kind = Endpoint::Kind::kTcp;
      return server_->start_session(
          std::move(socket_), std::move(plain),
          Status::PermissionDenied(
              "this is a TLS port and the client spoke plaintext (connect to tls:HOST:PORT)"));
    }
    auto session = TlsSession::server(socket_.native_handle(), server_->tls);
    if (!session.ok()) return fail(session.status().message());
    session_.emplace(std::move(*session));
    shake();
  }

  void shake() {
    if (done_) return;
    auto wait = session_->handshake();
    if (!wait.ok()) return fail(server_->tls->explain_failure(*session_, wait.status()));
    if (*wait != TlsWait::kNone) {
      auto self = shared_from_this();
      socket_.async_wait(*wait == TlsWait::kRead ? tcp::socket::wait_read : tcp::socket::wait_write,
                         [self](boost::system::error_code ec) {
                           if (ec) return self->fail(ec.message());
                           self->shake();
                         });
      return;
    }
    done_ = true;
    timer_.cancel();
    Status access = Status::Ok();
    auto who = server_->tls->identify(*session_);
    if (!who.ok()) {
      access = who.status();
    } else if (who->identity != nullptr) {
      peer_.kind = Endpoint::Kind::kTls;
      peer_.identity = who->identity->name;
      peer_.credential = who->credential;
      peer_.uid = who->identity->uid;
      peer_.gid = who->identity->gid;
      peer_.groups = who->identity->groups;
      peer_.role = who->identity->role;
    } else {
      peer_.kind = Endpoint::Kind::kTcp;  // encrypted, but its host alone
    }
    const std::string& role = server_->policy.tls_role;
    if (access.ok() && !role.empty() && peer_.role != role) {
      access = Status::PermissionDenied(fmt::format(
          "{} serves only identities of role {} over TLS; {} is {}", server_->daemon, role,
          who->identity ? "identity " + who->identity->name : who->credential,
          who->identity && !who->identity->role.empty() ? "of role " + who->identity->role
                                                        : "of none"));
    }
    if (access.ok()) {
      boost::system::error_code ec;
      auto remote = socket_.remote_endpoint(ec);
      access = check_access(server_->policy, peer_, ec ? nullptr : remote.data(), {});
    }
    if (!access.ok()) peer_.kind = Endpoint::Kind::kTcp;  // nobody: named by its address
    server_->start_session(TlsStream(std::move(socket_), std::move(*session_)), std::move(peer_),
                           std::move(access));
  }

  void fail(const std::string& why) {
    if (done_) return;
    done_ = true;
    timer_.cancel();
    log::warning("{}: refused TLS client {}: {}", server_->daemon, peer_.address, why);
    boost::system::error_code ec;
    socket_.close(ec);
  }

  Server::Impl* server_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  Peer peer_;
  std::optional<TlsSession> session_;
  bool done_ = false;
};

}  // namespace

void Server::Impl::accept_tcp(tcp::acceptor& acceptor, bool with_tls) {
  acceptor.async_accept(
      [this, &acceptor, with_tls](boost::system::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || stopped) return;
        if (ec) {
          accept_later(ec, [this, &acceptor, with_tls] { accept_tcp(acceptor, with_tls); });
          return;
        }
        Peer peer;
        peer.kind = Endpoint::Kind::kTcp;
        boost::system::error_code ec2;
        auto remote = socket.remote_endpoint(ec2);
        if (!ec2) {  // else the peer is gone already
          peer.address = tcp_address(remote);
          if (with_tls) {
            std::make_shared<TlsHandshake>(this, std::move(socket), std::move(peer))->start();
          } else {
            Status access = check_access(policy, peer, remote.data(), {});
            start_session(std::move(socket), std::move(peer), std::move(access));
          }
        }
        accept_tcp(acceptor, with_tls);
      });
}

void Server::Impl::accept_unix(local::acceptor& acceptor) {
  acceptor.async_accept([this, &acceptor](boost::system::error_code ec, local::socket socket) {
    if (ec == asio::error::operation_aborted || stopped) return;
    if (!ec) {
      std::vector<gid_t> groups;
      Peer peer = unix_peer(socket.native_handle(), &groups);
      Status access = check_access(policy, peer, nullptr, groups);
      start_session(std::move(socket), std::move(peer), std::move(access));
      accept_unix(acceptor);
    } else {
      accept_later(ec, [this, &acceptor] { accept_unix(acceptor); });
    }
  });
}

void Server::Impl::arm(Periodic& p) {
  p.timer->expires_after(p.period);
  p.timer->async_wait([this, &p](boost::system::error_code ec) {
    if (ec || stopped) return;
    p.task();
    arm(p);
  });
}

void Server::Impl::close_all() {
  boost::system::error_code ec;
  for (auto& p : periodic) {
    if (p.timer) p.timer->cancel();
  }
  for (auto& a : tcp_acceptors) a->close(ec);
  for (auto& a : tls_acceptors) a->close(ec);
  for (auto& a : unix_acceptors) a->close(ec);
  for (const auto& path : unix_paths) ::unlink(path.c_str());
  unix_paths.clear();
}

Server::Server(std::string daemon, AccessPolicy policy) : impl_(std::make_unique<Impl>()) {
  impl_->daemon = std::move(daemon);
  impl_->policy = std::move(policy);
}

Server::~Server() {
  impl_->stopped = true;  // no disconnect hook from the sessions destroyed with the io_context
  impl_->close_all();
}

void Server::set_tls(std::shared_ptr<const TlsServerCredentials> credentials) {
  impl_->tls = std::move(credentials);
}

void Server::on_answered(AnsweredHook hook) { impl_->answered_hook = std::move(hook); }

void Server::add_handler(Op op, Handler handler) { impl_->handlers[op] = std::move(handler); }

void Server::on_disconnect(std::function<void(uint64_t session)> hook) {
  impl_->disconnect_hook = std::move(hook);
}

Status Server::listen(const Endpoint& endpoint) {
  std::string where = endpoint.to_string();
  try {
    if (endpoint.kind == Endpoint::Kind::kTls && !impl_->tls) {
      return Status::InvalidArgument(fmt::format(
          "cannot listen on {}: no TLS credentials (tls-psk-file or tls-certificates)", where));
    }
    if (endpoint.kind != Endpoint::Kind::kUnix) {
      auto& acceptors =
          endpoint.kind == Endpoint::Kind::kTls ? impl_->tls_acceptors : impl_->tcp_acceptors;
      tcp::resolver resolver(impl_->io);
      auto results =
          resolver.resolve(endpoint.host, std::to_string(endpoint.port), tcp::resolver::passive);
      for (const auto& entry : results) {
        auto acceptor = std::make_unique<tcp::acceptor>(impl_->io);
        acceptor->open(entry.endpoint().protocol());
        acceptor->set_option(tcp::acceptor::reuse_address(true));
        acceptor->bind(entry.endpoint());
        acceptor->listen();
        acceptors.push_back(std::move(acceptor));
        break;  // the first address the name resolves to, as a client's connect would try
      }
      return Status::Ok();
    }

    namespace fs = std::filesystem;
    fs::path path(endpoint.path);
    std::error_code fec;
    if (path.has_parent_path()) fs::create_directories(path.parent_path(), fec);
    struct stat st {};
    if (::lstat(endpoint.path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return Status::AlreadyExists(
            fmt::format("cannot listen on {}: the path exists and is not a socket", where));
      }
      // Is someone listening? Only a dead daemon's socket may be replaced.
      if (Client::connect(endpoint, std::chrono::seconds(2)).ok()) {
        return Status::AlreadyExists(
            fmt::format("cannot listen on {}: another daemon is listening there", where));
      }
      ::unlink(endpoint.path.c_str());
    }
    // Bound under a temporary name and renamed once listening, so that the path appears only
    // when a connect to it succeeds: whoever waits for the path (a test, a unit's
    // ExecStartPost) never meets a socket that refuses. A path too long for the suffix is bound
    // as it is.
    const bool room = endpoint.path.size() + 4 < sizeof(sockaddr_un{}.sun_path);
    const std::string bound = room ? endpoint.path + ".new" : endpoint.path;
    if (room) ::unlink(bound.c_str());
    auto acceptor = std::make_unique<local::acceptor>(impl_->io);
    acceptor->open(local());
    acceptor->bind(local::endpoint(bound));
    acceptor->listen();
    ::chmod(bound.c_str(), 0666);
    if (room && ::rename(bound.c_str(), endpoint.path.c_str()) != 0) {
      const int err = errno;
      ::unlink(bound.c_str());
      return Status::IoError(
          fmt::format("cannot listen on {}: rename from {}: {}", where, bound, std::strerror(err)));
    }
    impl_->unix_paths.push_back(endpoint.path);
    impl_->unix_acceptors.push_back(std::move(acceptor));
    return Status::Ok();
  } catch (const boost::system::system_error& e) {
    return Status::IoError(fmt::format("cannot listen on {}: {}", where, e.code().message()));
  }
}

Status Server::run(std::initializer_list<int> stop_signals) {
  try {
    asio::signal_set signals(impl_->io);
    for (int sig : stop_signals) signals.add(sig);
    if (stop_signals.size() > 0) {
      signals.async_wait([this](boost::system::error_code ec, int sig) {
        if (ec) return;
        log::info("{}: signal {} received, stopping", impl_->daemon, sig);
        stop();
      });
    }
    // Signals that ask for work, not a stop: each arrival runs its task, then waits again.
    asio::signal_set asked(impl_->io);
    for (const auto& [sig, task] : impl_->signal_tasks) asked.add(sig);
    std::function<void()> wait_asked = [&] {
      asked.async_wait([this, &wait_asked](boost::system::error_code ec, int sig) {
        if (ec) return;
        for (const auto& [s, task] : impl_->signal_tasks) {
          if (s == sig) task();
        }
        wait_asked();
      });
    };
    if (!impl_->signal_tasks.empty()) wait_asked();
    for (auto& a : impl_->tcp_acceptors) impl_->accept_tcp(*a, false);
    for (auto& a : impl_->tls_acceptors) impl_->accept_tcp(*a, true);
    for (auto& a : impl_->unix_acceptors) impl_->accept_unix(*a);
    for (auto& p : impl_->periodic) {
      p.timer = std::make_unique<asio::steady_timer>(impl_->io);
      impl_->arm(p);
    }
    impl_->io.run();
    impl_->close_all();
    return Status::Ok();
  } catch (const std::exception& e) {
    impl_->close_all();
    return Status::Internal(fmt::format("{}: server loop failed: {}", impl_->daemon, e.what()));
  }
}

void Server::stop() {
  asio::post(impl_->io, [impl = impl_.get()] {
    impl->stopped = true;
    impl->close_all();
    impl->io.stop();
  });
}

void Server::post(std::function<void()> task) {
  asio::post(impl_->io, [impl = impl_.get(), task = std::move(task)] {
    if (!impl->stopped) task();
  });
}

void Server::on_signal(int sig, std::function<void()> task) {
  impl_->signal_tasks.emplace_back(sig, std::move(task));
}

void Server::every(std::chrono::milliseconds period, std::function<void()> task) {
  impl_->periodic.push_back({period, std::move(task), nullptr});
}

}  // namespace vvm::rpc
