// proto/client.cc: blocking control-protocol client on a non-blocking socket, with poll() for the
// deadlines (connect, send and receive all share the caller's timeout).
#include "proto/client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include <fmt/core.h>

#include "proto/frame.h"

namespace vvm::rpc {

namespace {

using Clock = std::chrono::steady_clock;

std::string describe(std::chrono::milliseconds ms) {
  if (ms.count() % 1000 == 0) return fmt::format("{}s", ms.count() / 1000);
  return fmt::format("{}ms", ms.count());
}

// Waits until `fd` is ready for `events` or `deadline` passes; false on timeout.
Result<bool> wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 60'000)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return Status::FromErrno(errno, "poll");
  }
}

// Starts a non-blocking connect to `addr` and waits for it to finish.
Result<int> connect_addr(const sockaddr* addr, socklen_t len, int family,
                         Clock::time_point deadline, const std::string& where,
                         std::chrono::milliseconds timeout) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  int rc = ::connect(fd, addr, len);
  if (rc < 0 && errno == EINPROGRESS) {
    auto ready = wait_fd(fd, POLLOUT, deadline);
    if (!ready.ok() || !*ready) {
      ::close(fd);
      if (!ready.ok()) return ready.status();
      return Status::Timeout(
          fmt::format("cannot connect to {}: no answer within {}", where, describe(timeout)));
    }
    int err = 0;
    socklen_t elen = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    rc = err ? -1 : 0;
    errno = err;
  }
  if (rc < 0) {
    int err = errno;
    ::close(fd);
    return Status::Unavailable(fmt::format("cannot connect to {}: {}", where, std::strerror(err)));
  }
  return fd;
}

// Shakes hands on the connected socket `fd` of `client` before `deadline`.
Status start_tls(int fd, const Endpoint& endpoint, const TlsClientSettings& settings,
                 Clock::time_point deadline, std::chrono::milliseconds timeout,
                 std::unique_ptr<TlsSession>* out) {
  std::string where = endpoint.to_string();
  auto creds = TlsClientCredentials::load(settings);
  if (!creds.ok()) {
    return Status(creds.status().code(),
                  fmt::format("cannot connect to {}: {}", where, creds.status().message()));
  }
  // The handshake's small writes must not wait for delayed ACKs (Nagle's algorithm).
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto session = TlsSession::client(fd, *creds, endpoint.host);
  if (!session.ok()) return session.status();
  for (;;) {
    auto wait = session->handshake();
    if (!wait.ok()) {
      return Status::Unavailable(fmt::format(
          "cannot connect to {} as {}: {} (is it a TLS port of vvm, and are the credentials "
          "the daemon's?)",
          where, (*creds)->describe(), wait.status().message()));
    }
    if (*wait == TlsWait::kNone) break;
    auto ready = wait_fd(fd, *wait == TlsWait::kRead ? POLLIN : POLLOUT, deadline);
    if (!ready.ok()) return ready.status();
    if (!*ready) {
      return Status::Timeout(fmt::format("cannot connect to {}: no TLS handshake within {}", where,
                                         describe(timeout)));
    }
  }
  *out = std::make_unique<TlsSession>(std::move(*session));
  return Status::Ok();
}

}  // namespace

Result<Client> Client::connect(const Endpoint& endpoint, std::chrono::milliseconds timeout,
                               const TlsClientSettings& tls) {
  auto deadline = Clock::now() + timeout;
  std::string where = endpoint.to_string();
  if (endpoint.kind == Endpoint::Kind::kUnix) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (endpoint.path.size() >= sizeof sun.sun_path) {
      return Status::InvalidArgument(
          fmt::format("cannot connect to {}: the path is longer than {} bytes", where,
                      sizeof sun.sun_path - 1));
    }
    std::memcpy(sun.sun_path, endpoint.path.c_str(), endpoint.path.size() + 1);
    auto fd = connect_addr(reinterpret_cast<sockaddr*>(&sun), sizeof sun, AF_UNIX, deadline, where,
                           timeout);
    if (!fd.ok()) return fd.status();
    return Client(*fd, endpoint);
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(endpoint.port);
  if (int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return Status::Unavailable(fmt::format("cannot connect to {}: {}", where, ::gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
  Status last = Status::Unavailable(fmt::format("cannot connect to {}: no address", where));
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    auto fd = connect_addr(ai->ai_addr, ai->ai_addrlen, ai->ai_family, deadline, where, timeout);
    if (!fd.ok()) {
      last = fd.status();
      continue;
    }
    Client client(*fd, endpoint);
    if (endpoint.kind == Endpoint::Kind::kTls) {
      VVM_RETURN_IF_ERROR(start_tls(*fd, endpoint, tls, deadline, timeout, &client.tls_));
    }
    return client;
  }
  return last;
}

Client::Client(Client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      endpoint_(std::move(other.endpoint_)),
      tls_(std::move(other.tls_)),
      next_xid_(other.next_xid_) {}

Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    close_fd();
    fd_ = std::exchange(other.fd_, -1);
    endpoint_ = std::move(other.endpoint_);
    tls_ = std::move(other.tls_);
    next_xid_ = other.next_xid_;
  }
  return *this;
}

Client::~Client() { close_fd(); }

void Client::close_fd() {
  if (tls_) tls_->bye();
  tls_.reset();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<size_t> Client::io(bool sending, char* data, size_t n, TlsWait* wait) {
  if (tls_) return sending ? tls_->send(data, n, wait) : tls_->recv(data, n, wait);
  *wait = TlsWait::kNone;
  for (;;) {
    ssize_t got = sending ? ::send(fd_, data, n, MSG_NOSIGNAL) : ::recv(fd_, data, n, 0);
    if (got >= 0) return static_cast<size_t>(got);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      *wait = sending ? TlsWait::kWrite : TlsWait::kRead;
      return size_t{0};
    }
    return Status::Unavailable(fmt::format("cannot {} {}: {}", sending ? "send to" : "read from",
                                           endpoint_.to_string(), std::strerror(errno)));
  }
}

Status Client::fail(Status status) {
  close_fd();
  return status;
}

Result<ReplyBody> Client::call(const RequestBody& body, std::chrono::milliseconds timeout) {
  Request request;
  request.xid = next_xid_++;
  request.body = body;
  auto reply = exchange(request, timeout);
  if (!reply.ok()) return reply.status();
  if (!reply->status.ok()) return reply->status;
  if (reply->body.index() == 0) {
    return fail(Status::ProtocolError(
        fmt::format("{} sent an empty reply to {}", endpoint_.to_string(), op_name(op_of(body)))));
  }
  return std::move(reply->body);
}

Status Client::wrong_reply(Op op) {
  return fail(Status::ProtocolError(fmt::format("{} answered {} with another operation's reply",
                                                endpoint_.to_string(), op_name(op))));
}

Result<Reply> Client::exchange(const Request& request, std::chrono::milliseconds timeout) {
  std::string where = endpoint_.to_string();
  if (fd_ < 0) {
    return Status::Unavailable(
        fmt::format("connection to {} was closed after an earlier error", where));
  }
  auto deadline = Clock::now() + timeout;
  auto timeout_status = [&] {
    return Status::Timeout(fmt::format("no reply from {} to {} within {}", where,
                                       op_name(op_of(request.body)), describe(timeout)));
  };

  auto bytes = encode_request(request);
  if (!bytes.ok()) return bytes.status();
  std::string out = frame_record(*bytes);
  for (size_t sent = 0; sent < out.size();) {
    TlsWait wait = TlsWait::kNone;
    auto n = io(true, out.data() + sent, out.size() - sent, &wait);
    if (!n.ok()) return fail(n.status());
    sent += *n;
    if (wait == TlsWait::kNone) continue;
    auto ready = wait_fd(fd_, wait == TlsWait::kRead ? POLLIN : POLLOUT, deadline);
    if (!ready.ok()) return fail(ready.status());
    if (!*ready) return fail(timeout_status());
  }

  // Reads exactly `len` bytes into `buf`.
  auto read_exact = [&](char* buf, size_t len) -> Status {
    for (size_t got = 0; got < len;) {
      TlsWait wait = TlsWait::kNone;
      auto n = io(false, buf + got, len - got, &wait);
      if (!n.ok()) return n.status();
      if (*n > 0) {
        got += *n;
        continue;
      }
      if (wait == TlsWait::kNone) {
        return Status::Unavailable(fmt::format("{} closed the connection", where));
      }
      auto ready = wait_fd(fd_, wait == TlsWait::kRead ? POLLIN : POLLOUT, deadline);
      if (!ready.ok()) return ready.status();
      if (!*ready) return timeout_status();
    }
    return Status::Ok();
  };

  RecordReader reader;
  while (!reader.complete()) {
    char mark[kMarkSize];
    if (Status s = read_exact(mark, sizeof mark); !s.ok()) return fail(s);
    if (Status s = reader.add_mark(decode_mark(mark)); !s.ok()) {
      return fail(Status::ProtocolError(fmt::format("{}: {}", where, s.message())));
    }
    if (Status s = read_exact(reader.tail(), reader.pending()); !s.ok()) return fail(s);
    reader.advance(reader.pending());
  }
  auto reply = decode_reply(reader.take());
  if (!reply.ok()) {
    return fail(Status::ProtocolError(fmt::format("{}: {}", where, reply.status().message())));
  }
  if (reply->xid != request.xid) {
    return fail(Status::ProtocolError(fmt::format(
        "{} answered request {} with a reply to request {}", where, request.xid, reply->xid)));
  }
  return reply;
}

}  // namespace vvm::rpc
