// forwarder.cc: the forwarder's engine: libnbd connections read by their waiting callers, the
// choice of server, the retry on failure, the replay buffer of acknowledged, unflushed writes, and
// the gate that holds requests during a failover or a reconfiguration. See forwarder.h for the
// rules.
#include "forward/forwarder.h"

#include <libnbd.h>
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include <fmt/core.h>

namespace vvm::plugin::forward {
namespace {

using Clock = std::chrono::steady_clock;

// How many replayed writes are in flight at once during a failover.
constexpr size_t kReplayWindow = 64;

// --- one libnbd connection, read by the threads waiting on it ---

class Connection;

// One request's wait for libnbd's completion callback.
struct Waiter {
  Connection* conn = nullptr;
  std::condition_variable cv;  // with conn's mutex
  std::atomic<bool> done{false};
  int err = 0;
  std::vector<Extent>* extents = nullptr;  // block status: where the extent callback adds

  static int on_complete(void* user, int* error);
  static int on_extent(void* user, const char* context, uint64_t offset, uint32_t* entries,
                       size_t n, int* /*error*/) {
    auto* w = static_cast<Waiter*>(user);
    if (std::strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 || w->extents == nullptr) {
      return 0;
    }
    uint64_t pos = offset;
    for (size_t i = 0; i + 1 < n; i += 2) {
      const uint32_t flags = entries[i + 1];
      w->extents->push_back(
          {pos, entries[i], (flags & LIBNBD_STATE_HOLE) != 0, (flags & LIBNBD_STATE_ZERO) != 0});
      pos += entries[i];
    }
    return 0;
  }
};

// A libnbd connection without a thread of its own: the threads waiting for its replies read them
// (leader and followers). One waiter at a time, the leader, polls the socket and lets libnbd read
// every reply that has arrived, which completes its own request and wakes the waiters of the
// others; when its own is done it hands the lead to a waiter still waiting. A reply thus costs
// one wake-up at most, not a hop through a poll thread and then another to its caller.
// A TCP connection to nbd://HOST:PORT/... (HOST a name, an IPv4 address or [IPv6]) from the
// local address `source`, made by `deadline`: the connected socket.
Result<int> connect_from(const std::string& uri, const std::string& source,
                         Clock::time_point deadline) {
  const size_t begin = 6;  // after "nbd://"
  const size_t slash = uri.find('/', begin);
  const std::string authority = uri.substr(begin, slash - begin);
  const size_t colon = authority.rfind(':');
  if (colon == std::string::npos || slash == std::string::npos) {
    return Status::InvalidArgument(fmt::format("connect: '{}' has no HOST:PORT/EXPORT", uri));
  }
  std::string host = authority.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = authority.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* to = nullptr;
  if (int e = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &to); e != 0) {
    return Status::Unavailable(fmt::format("connect: {}: {}", authority, ::gai_strerror(e)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> to_owner(to, ::freeaddrinfo);
  hints.ai_family = to->ai_family;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* from = nullptr;
  if (int e = ::getaddrinfo(source.c_str(), nullptr, &hints, &from); e != 0) {
    return Status::Unavailable(
        fmt::format("connect: the source address {}: {}", source, ::gai_strerror(e)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> from_owner(from, ::freeaddrinfo);
  const int fd = ::socket(to->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd == -1) return Status::FromErrno(errno, "connect: socket");
  auto failed = [&](int err, const std::string& what) {
    ::close(fd);
    return Status::FromErrno(err, fmt::format("connect: {}", what));
  };
  if (::bind(fd, from->ai_addr, from->ai_addrlen) == -1) {
    return failed(errno, fmt::format("bind to the source address {}", source));
  }
  if (::connect(fd, to->ai_addr, to->ai_addrlen) == -1) {
    if (errno != EINPROGRESS) return failed(errno, authority);
    pollfd p{fd, POLLOUT, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    const int n = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 0)));
    if (n == 0) return failed(ETIMEDOUT, authority);
    int err = 0;
    socklen_t len = sizeof err;
    if (n == -1) err = errno;
    if (n > 0 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) err = errno;
    if (err != 0) return failed(err, authority);
  }
  return fd;
}

class Connection {
 public:
  // Connects and negotiates within `timeout`: a server that accepts the TCP connection but never
  // answers (a paused node: the kernel accepts for it) must not hold the caller for ever.
  // `source`: the local address to connect from (ForwardOptions::source), "" for the kernel's.
  static Result<std::shared_ptr<Connection>> open(const std::string& uri,
                                                  std::chrono::milliseconds timeout,
                                                  const std::string& source) {
    nbd_handle* h = nbd_create();
    if (h == nullptr) return Status::Internal(fmt::format("{}: {}", uri, nbd_get_error()));
    auto c = std::shared_ptr<Connection>(new Connection(h));
    const Clock::time_point deadline = Clock::now() + timeout;
    if (nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1) {
      return Status::Unavailable(fmt::format("connect: {}", nbd_get_error()));
    }
    if (!source.empty() && uri.starts_with("nbd://")) {
      Result<int> fd = connect_from(uri, source, deadline);
      if (!fd.ok()) return fd.status();
      // The handshake as nbd_aio_connect_uri would do it: the URI's export, on this socket.
      const std::string name = uri.substr(uri.find('/', 6) + 1);
      if (nbd_set_export_name(h, name.c_str()) == -1 || nbd_aio_connect_socket(h, *fd) == -1) {
        ::close(*fd);
        return Status::Unavailable(fmt::format("connect: {}", nbd_get_error()));
      }
    } else if (nbd_aio_connect_uri(h, uri.c_str()) == -1) {
      return Status::Unavailable(fmt::format("connect: {}", nbd_get_error()));
    }
    while (nbd_aio_is_connecting(h) == 1) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        return Status::Timeout(fmt::format("connect: no answer within {} ms", timeout.count()));
      }
      if (nbd_poll(h, static_cast<int>(std::min<int64_t>(left, 1000))) == -1) {
        return Status::Unavailable(fmt::format("connect: {}", nbd_get_error()));
      }
    }
    if (nbd_aio_is_ready(h) != 1) {
      const char* why = nbd_get_error();
      return Status::Unavailable(
          fmt::format("connect: {}", why != nullptr ? why : "the server closed the connection"));
    }
    c->fd_ = nbd_aio_get_fd(h);
    c->wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->fd_ == -1 || c->wake_ == -1) {
      return Status::FromErrno(errno, fmt::format("{}: eventfd", uri));
    }
    return c;
  }

  ~Connection() {
    nbd_close(h_);
    if (wake_ != -1) ::close(wake_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  nbd_handle* handle() const { return h_; }
  bool dead() const { return dead_.load(std::memory_order_relaxed); }
  std::atomic<uint64_t>& outstanding() { return outstanding_; }

  // After a command is issued: if libnbd could not send all of it at once, the leader must also
  // wait for the socket to be writable, which it only learns when woken.
  void after_issue() {
    if (nbd_aio_get_direction(h_) & LIBNBD_AIO_DIRECTION_WRITE) wake();
  }
  // Cuts the connection: the leader sees the end of the stream, libnbd declares the connection
  // dead and completes every outstanding command with an error.
  void cut() {
    if (fd_ != -1) ::shutdown(fd_, SHUT_RDWR);
    wake();
  }

  // Returns once `w`'s command has completed (w.done), leading the reading when nobody does.
  void wait(Waiter& w) {
    std::unique_lock lock(m_);
    waiters_.push_back(&w);
    while (!w.done.load()) {
      if (leading_) {
        w.cv.wait(lock);
        continue;
      }
      leading_ = true;
      lock.unlock();
      lead(w);
      lock.lock();
      leading_ = false;
      // libnbd completes every command before it calls the handle dead; should one be left, its
      // caller gets an error rather than a hang.
      if (!w.done.load()) {
        w.err = ENOTCONN;
        w.done.store(true);
      }
      for (Waiter* other : waiters_) {
        if (other != &w && !other->done.load()) {
          other->cv.notify_one();  // the next leader
          break;
        }
      }
    }
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &w));
  }

 private:
  friend struct Waiter;
  explicit Connection(nbd_handle* h) : h_(h) {}

  void wake() {
    if (wake_ == -1) return;
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_, &one, sizeof one);
  }

  // Drives the connection until `w` is done or the connection is dead.
  void lead(Waiter& w) {
    while (!w.done.load()) {
      if (dead()) return;
      const unsigned dir = nbd_aio_get_direction(h_);
      pollfd fds[2] = {{fd_, 0, 0}, {wake_, POLLIN, 0}};
      if (dir & LIBNBD_AIO_DIRECTION_READ) fds[0].events |= POLLIN;
      if (dir & LIBNBD_AIO_DIRECTION_WRITE) fds[0].events |= POLLOUT;
      const int n = ::poll(fds, 2, 1000);
      if (n == -1 && errno != EINTR) {  // ENOMEM: try again; the command is still libnbd's
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      if (n > 0) {
        if (fds[1].revents & POLLIN) {
          uint64_t v;
          [[maybe_unused]] ssize_t r = ::read(wake_, &v, sizeof v);
        }
        const short ev = fds[0].revents;
        if ((ev & (POLLIN | POLLHUP | POLLERR)) && (dir & LIBNBD_AIO_DIRECTION_READ)) {
          nbd_aio_notify_read(h_);
        } else if ((ev & (POLLOUT | POLLHUP | POLLERR)) && (dir & LIBNBD_AIO_DIRECTION_WRITE)) {
          nbd_aio_notify_write(h_);
        }
      }
      if (nbd_aio_is_dead(h_) || nbd_aio_is_closed(h_)) {
        dead_.store(true);  // libnbd completed every command with an error
        return;
      }
    }
  }

  nbd_handle* h_;
  int fd_ = -1;
  int wake_ = -1;
  std::atomic<bool> dead_{false};
  std::atomic<uint64_t> outstanding_{0};
  std::mutex m_;
  bool leading_ = false;
  std::vector<Waiter*> waiters_;
};

int Waiter::on_complete(void* user, int* error) {
  auto* w = static_cast<Waiter*>(user);
  const std::lock_guard lock(w->conn->m_);
  w->err = *error;
  w->done.store(true);
  // Under the lock: once its caller sees `done` it may return and destroy the Waiter.
  w->cv.notify_one();
  return 1;  // retire the command: nobody calls nbd_aio_command_completed
}

}  // namespace

// --- one server: its connections, its health, its counters ---

struct Server {
  explicit Server(std::string u) : uri(std::move(u)) {}

  const std::string uri;
  ExportCaps caps;
  std::atomic<bool> healthy{false};
  std::atomic<bool> retired{false};  // no longer in the list (reconfigured away)
  std::atomic<uint64_t> requests{0}, failed{0}, replayed{0}, outstanding{0};

  // Healthy and in the list: may take requests and hold unflushed writes.
  bool usable() const { return healthy.load() && !retired.load(); }

  std::string reason() const {
    const std::lock_guard lock(m_);
    return reason_;
  }
  // False if it was already down.
  bool set_down(const std::string& why) {
    const std::lock_guard lock(m_);
    if (!healthy.exchange(false)) return false;
    reason_ = why;
    return true;
  }
  void set_up(std::vector<std::shared_ptr<Connection>> conns) {
    const std::lock_guard lock(m_);
    conns_ = std::move(conns);
    reason_.clear();
    healthy.store(true);
  }
  void cut() {
    const std::lock_guard lock(m_);
    for (auto& c : conns_) c->cut();
  }
  unsigned connection_count() const {
    const std::lock_guard lock(m_);
    return static_cast<unsigned>(conns_.size());
  }
  // The live connection with the fewest outstanding requests, or null.
  std::shared_ptr<Connection> pick_connection() const {
    const std::lock_guard lock(m_);
    std::shared_ptr<Connection> best;
    for (const auto& c : conns_) {
      if (c->dead()) continue;
      if (!best || c->outstanding().load(std::memory_order_relaxed) <
                       best->outstanding().load(std::memory_order_relaxed)) {
        best = c;
      }
    }
    return best;
  }

  // Connects `count` connections (one unless it advertises multi-conn) and reads what it offers.
  struct Dialed {
    ExportCaps caps;
    std::vector<std::shared_ptr<Connection>> conns;
  };
  static Result<Dialed> dial(const std::string& uri, unsigned count,
                             std::chrono::milliseconds timeout, const std::string& source) {
    Result<std::shared_ptr<Connection>> first = Connection::open(uri, timeout, source);
    if (!first.ok()) return first.status();
    nbd_handle* h = (*first)->handle();
    ExportCaps c;
    const int64_t size = nbd_get_size(h);
    if (size < 0) return Status::ProtocolError(fmt::format("get size: {}", nbd_get_error()));
    c.size = static_cast<uint64_t>(size);
    c.can_write = nbd_is_read_only(h) == 0;
    c.can_flush = nbd_can_flush(h) == 1;
    c.can_fua = nbd_can_fua(h) == 1;
    c.can_trim = nbd_can_trim(h) == 1;
    c.can_zero = nbd_can_zero(h) == 1;
    c.can_fast_zero = nbd_can_fast_zero(h) == 1;
    c.can_extents = nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
    c.can_cache = nbd_can_cache(h) == 1;
    c.can_multi_conn = nbd_can_multi_conn(h) == 1;
    c.is_rotational = nbd_is_rotational(h) == 1;
    const int64_t bmin = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
    const int64_t bpref = nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED);
    const int64_t bmax = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
    if (bmin > 0) c.block_minimum = static_cast<uint32_t>(bmin);
    if (bpref > 0) c.block_preferred = static_cast<uint32_t>(bpref);
    if (bmax > 0) c.block_maximum = static_cast<uint32_t>(std::min<int64_t>(bmax, 32 << 20));
    Dialed d{c, {std::move(*first)}};
    // Without multi-conn a flush on one connection would not cover writes on another.
    const unsigned want = c.can_multi_conn ? std::max(count, 1u) : 1u;
    while (d.conns.size() < want) {
      Result<std::shared_ptr<Connection>> more = Connection::open(uri, timeout, source);
      if (!more.ok()) return more.status();
      d.conns.push_back(std::move(*more));
    }
    return d;
  }

 private:
  mutable std::mutex m_;
  std::string reason_;
  std::vector<std::shared_ptr<Connection>> conns_;
};

namespace {

using ServerPtr = std::shared_ptr<Server>;
using ServerList = std::vector<ServerPtr>;

// Holds new requests while a failover or a reconfiguration drains the outstanding ones.
class Gate {
 public:
  void enter() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return held_ == 0; });
    ++active_;
  }
  void leave() {
    const std::lock_guard lock(m_);
    if (--active_ == 0) cv_.notify_all();
  }
  // Holds new requests and waits for the active ones to leave; false if some were still active
  // at `deadline` (requests on a server that does not answer).
  bool hold(Clock::time_point deadline) {
    std::unique_lock lock(m_);
    ++held_;
    return cv_.wait_until(lock, deadline, [&] { return active_ == 0; });
  }
  void release() {
    const std::lock_guard lock(m_);
    --held_;
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int active_ = 0;
  int held_ = 0;
};

enum class Kind { kRead, kWrite, kFlush, kTrim, kZero, kExtents, kCache };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kRead: return "read";
    case Kind::kWrite: return "write";
    case Kind::kFlush: return "flush";
    case Kind::kTrim: return "trim";
    case Kind::kZero: return "zero";
    case Kind::kExtents: return "block status";
    case Kind::kCache: return "cache";
  }
  return "request";
}

struct Op {
  Kind kind;
  void* rbuf = nullptr;
  const void* wbuf = nullptr;
  uint32_t count = 0;
  uint64_t offset = 0;
  uint32_t flags = 0;  // LIBNBD_CMD_FLAG_*
  std::vector<Extent>* extents = nullptr;
};

// Errors that say "this server cannot answer", as opposed to an answer about the data: the NAK,
// and what libnbd reports for a connection that broke (a server's NBD error is never one of
// these but ESHUTDOWN).
bool is_path_failure(int err) {
  return err == ESHUTDOWN || err == ENOTCONN || err == ECONNRESET || err == EPIPE ||
         err == ECONNABORTED || err == ETIMEDOUT;
}

std::string failure_reason(int err, const std::string& detail) {
  if (err == ESHUTDOWN) {
    return "answered NBD_ESHUTDOWN (its path to the disk failed, or it is shutting down)";
  }
  return "connection lost (" + (detail.empty() ? std::string(std::strerror(err)) : detail) + ")";
}

// A request issued on one connection, waited for later (a flush goes to several at once).
struct Pending {
  ServerPtr server;
  std::shared_ptr<Connection> conn;
  Waiter waiter;
  int err = 0;  // when issuing failed
  std::string detail;
  bool issued = false;

  int result() const { return issued ? waiter.err : err; }
};

int64_t issue(nbd_handle* h, const Op& op, Waiter& w) {
  nbd_completion_callback done{Waiter::on_complete, &w, nullptr};
  switch (op.kind) {
    case Kind::kRead: return nbd_aio_pread(h, op.rbuf, op.count, op.offset, done, op.flags);
    case Kind::kWrite: return nbd_aio_pwrite(h, op.wbuf, op.count, op.offset, done, op.flags);
    case Kind::kFlush: return nbd_aio_flush(h, done, 0);
    case Kind::kTrim: return nbd_aio_trim(h, op.count, op.offset, done, op.flags);
    case Kind::kZero: return nbd_aio_zero(h, op.count, op.offset, done, op.flags);
    case Kind::kCache: return nbd_aio_cache(h, op.count, op.offset, done, op.flags);
    case Kind::kExtents: {
      w.extents = op.extents;
      nbd_extent_callback ext{Waiter::on_extent, &w, nullptr};
      return nbd_aio_block_status(h, op.count, op.offset, ext, done, op.flags);
    }
  }
  return -1;
}

// Sends `op` to `server`; the caller then waits with finish().
std::unique_ptr<Pending> start(const ServerPtr& server, const Op& op) {
  auto p = std::make_unique<Pending>();
  p->server = server;
  p->conn = server->pick_connection();
  if (!p->conn) {
    p->err = ENOTCONN;
    p->detail = "no live connection";
    return p;
  }
  server->requests.fetch_add(1, std::memory_order_relaxed);
  server->outstanding.fetch_add(1, std::memory_order_relaxed);
  p->conn->outstanding().fetch_add(1, std::memory_order_relaxed);
  if (op.extents != nullptr) op.extents->clear();
  p->waiter.conn = p->conn.get();
  if (issue(p->conn->handle(), op, p->waiter) == -1) {
    p->err = nbd_get_errno();
    p->detail = nbd_get_error() != nullptr ? nbd_get_error() : "";
    // A dead handle refuses commands ("invalid state"): that is a broken connection.
    if (p->conn->dead() || nbd_aio_is_dead(p->conn->handle())) p->err = ENOTCONN;
    if (p->err == 0) p->err = EIO;
  } else {
    p->issued = true;
    p->conn->after_issue();
  }
  return p;
}

void finish(Pending& p) {
  if (p.issued) p.conn->wait(p.waiter);
  if (p.conn) {
    p.server->outstanding.fetch_sub(1, std::memory_order_relaxed);
    p.conn->outstanding().fetch_sub(1, std::memory_order_relaxed);
  }
}

// --- the replay buffer ---

// The newest acknowledged, not yet flushed data of every byte, with the server that acknowledged
// it. Keyed by start offset; the pieces never overlap.
class ReplayBuffer {
 public:
  struct Piece {
    uint64_t end = 0;
    Kind kind = Kind::kWrite;  // kWrite (data), kZero or kTrim
    uint32_t flags = 0;        // for a zero: NO_HOLE
    std::shared_ptr<const std::vector<char>> data;
    uint64_t data_offset = 0;  // where this piece starts in `data`
    ServerPtr server;
    uint64_t seq = 0;  // acknowledgement order
  };

  // Records an acknowledged write; `durable` (FUA) drops what it covers instead.
  void record(uint64_t start, uint64_t len, Kind kind, uint32_t flags,
              std::shared_ptr<const std::vector<char>> data, ServerPtr server, uint64_t seq,
              bool durable) {
    if (len == 0) return;
    const std::lock_guard lock(m_);
    const uint64_t end = start + len;
    split(start);
    split(end);
    for (auto it = pieces_.lower_bound(start); it != pieces_.end() && it->first < end;) {
      bytes_ -= held(it->first, it->second);
      it = pieces_.erase(it);
    }
    if (durable) return;
    Piece p{end, kind, flags, std::move(data), 0, std::move(server), seq};
    bytes_ += held(start, p);
    pieces_.emplace(start, std::move(p));
  }

  // A flush on `server` sent after acknowledgement `seq` succeeded.
  void flushed(const Server* server, uint64_t seq) {
    const std::lock_guard lock(m_);
    for (auto it = pieces_.begin(); it != pieces_.end();) {
      if (it->second.server.get() == server && it->second.seq <= seq) {
        bytes_ -= held(it->first, it->second);
        it = pieces_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // The servers holding unflushed writes.
  std::vector<ServerPtr> holders() const {
    const std::lock_guard lock(m_);
    std::vector<ServerPtr> out;
    for (const auto& [start, p] : pieces_) {
      if (std::find(out.begin(), out.end(), p.server) == out.end()) out.push_back(p.server);
    }
    return out;
  }

  // Unflushed writes held by a server that can no longer flush them.
  bool orphans() const {
    const std::lock_guard lock(m_);
    return std::any_of(pieces_.begin(), pieces_.end(),
                       [](const auto& kv) { return !kv.second.server->usable(); });
  }
  uint64_t orphan_bytes() const {
    const std::lock_guard lock(m_);
    uint64_t n = 0;
    for (const auto& [start, p] : pieces_) {
      if (!p.server->usable()) n += p.end - start;
    }
    return n;
  }

  // Hands the pieces held by an unusable server, in offset order, to `send`, up to `window` at a
  // time (it writes them all at once and says which were written), and retags each piece written
  // to `to`. Stops after a window with a failure. Returns the bytes moved. Runs with requests
  // held, so nothing changes the pieces meanwhile.
  using Batch = std::vector<std::pair<uint64_t, const Piece*>>;
  uint64_t move_orphans(const ServerPtr& to, uint64_t seq, size_t window,
                        const std::function<std::vector<bool>(const Batch&)>& send) {
    const std::lock_guard lock(m_);
    uint64_t moved = 0;
    std::vector<std::pair<uint64_t, Piece*>> batch;
    auto send_batch = [&] {
      const std::vector<bool> ok = send(Batch(batch.begin(), batch.end()));
      bool all = true;
      for (size_t i = 0; i < batch.size(); ++i) {
        if (i >= ok.size() || !ok[i]) {
          all = false;
          continue;
        }
        batch[i].second->server = to;
        batch[i].second->seq = seq;
        moved += batch[i].second->end - batch[i].first;
      }
      batch.clear();
      return all;
    };
    for (auto& [start, p] : pieces_) {
      if (p.server->usable()) continue;
      batch.emplace_back(start, &p);
      if (batch.size() == window && !send_batch()) return moved;
    }
    if (!batch.empty()) send_batch();
    return moved;
  }

  uint64_t bytes() const {
    const std::lock_guard lock(m_);
    return bytes_;
  }
  // No acknowledged write, zero or trim is waiting for a flush.
  bool empty() const {
    const std::lock_guard lock(m_);
    return pieces_.empty();
  }

 private:
  static uint64_t held(uint64_t start, const Piece& p) {
    return p.kind == Kind::kWrite ? p.end - start : 0;
  }
  // Splits the piece that straddles `pos`, if any, so that a piece starts at `pos`.
  void split(uint64_t pos) {
    auto it = pieces_.upper_bound(pos);
    if (it == pieces_.begin()) return;
    --it;
    if (it->first >= pos || it->second.end <= pos) return;
    Piece tail = it->second;
    tail.data_offset += pos - it->first;
    it->second.end = pos;
    pieces_.emplace(pos, std::move(tail));
  }

  mutable std::mutex m_;
  std::map<uint64_t, Piece> pieces_;
  uint64_t bytes_ = 0;
};

}  // namespace

// --- the forwarder ---

class Forwarder::Impl {
 public:
  explicit Impl(ForwardOptions o) : opt_(std::move(o)), pool_(opt_.pool) {}

  ForwardOptions opt_;
  ExportCaps caps_;

  void log(const std::string& what) const {
    if (opt_.log) opt_.log(opt_.name + ": " + what);
  }

  std::pair<std::shared_ptr<const ServerList>, bool> current() const {
    const std::lock_guard lock(list_m_);
    return {list_, pool_};
  }
  void set_list(ServerList list, bool pool) {
    auto fresh = std::make_shared<const ServerList>(std::move(list));
    const std::lock_guard lock(list_m_);
    list_ = std::move(fresh);
    pool_ = pool;
  }

  // A server connected, or listed down with the reason it could not be.
  ServerPtr connect_server(const ServerSpec& spec) {
    auto s = std::make_shared<Server>(spec.uri);
    if (!spec.down.empty()) {
      s->set_up({});
      s->set_down(spec.down);
      log(fmt::format("server {} is down: {}", spec.uri, spec.down));
      return s;
    }
    Result<Server::Dialed> d =
        Server::dial(spec.uri, opt_.connections, opt_.connect_timeout, opt_.source);
    if (!d.ok()) {
      s->set_up({});
      s->set_down(d.status().message());
      log(fmt::format("server {} is down: {}", spec.uri, d.status().message()));
      return s;
    }
    s->caps = d->caps;
    s->set_up(std::move(d->conns));
    return s;
  }

  // The server a request goes to: the first usable one, or in a pool the least loaded: the
  // fewest requests outstanding, and among equals the fewest sent so far, so that a light load
  // (a client whose requests come one at a time) is spread too, rather than all on the first.
  static ServerPtr pick(const ServerList& list, bool pool) {
    ServerPtr best;
    auto load = [](const ServerPtr& s) {
      return std::pair(s->outstanding.load(std::memory_order_relaxed),
                       s->requests.load(std::memory_order_relaxed));
    };
    for (const auto& s : list) {
      if (!s->usable()) continue;
      if (!pool) return s;
      if (!best || load(s) < load(best)) best = s;
    }
    return best;
  }

  IoStatus all_failed(const ServerList& list, std::string_view what) const {
    std::string why;
    for (const auto& s : list) {
      if (!why.empty()) why += "; ";
      why += s->uri + ": " + (s->retired ? "removed" : s->reason());
    }
    return IoStatus(EIO, Status::Unavailable(
                             fmt::format("{}: {}: every server failed: {}", opt_.name, what, why)));
  }

  std::string describe(const Op& op) const {
    if (op.kind == Kind::kFlush) return "flush";
    return fmt::format("{} of {} bytes at {}", kind_name(op.kind), op.count, op.offset);
  }

  // Every operation but flush.
  IoStatus run(const Op& op) {
    const auto [first_list, first_pool] = current();
    const size_t attempts = 2 * first_list->size() + 4;
    for (size_t attempt = 0; attempt < attempts; ++attempt) {
      gate_.enter();
      const auto [list, pool] = current();
      ServerPtr server = pick(*list, pool);
      if (!server) {
        gate_.leave();
        return all_failed(*list, describe(op));
      }
      std::unique_ptr<Pending> p = start(server, op);
      finish(*p);
      const int err = p->result();
      bool over_limit = false;
      if (err == 0) {
        over_limit = record(op, server);
      }
      gate_.leave();
      if (err == 0) {
        if (over_limit) (void)flush();  // the pieces stay on failure: only memory is at stake
        return IoStatus();
      }
      if (!is_path_failure(err) && server->healthy.load()) {
        return IoStatus(err, Status::FromErrno(err, fmt::format("{}: {} on {}", opt_.name,
                                                                describe(op), server->uri)));
      }
      server->failed.fetch_add(1, std::memory_order_relaxed);
      retries_.fetch_add(1, std::memory_order_relaxed);
      fail_server(server, failure_reason(err, p->detail));
    }
    return IoStatus(EIO, Status::Unavailable(fmt::format("{}: {}: gave up after {} attempts",
                                                         opt_.name, describe(op), attempts)));
  }

  // After an acknowledged write, zero or trim: keeps it for replay. True when the buffer is over
  // its limit.
  bool record(const Op& op, const ServerPtr& server) {
    if (op.kind != Kind::kWrite && op.kind != Kind::kZero && op.kind != Kind::kTrim) return false;
    const bool durable = (op.flags & LIBNBD_CMD_FLAG_FUA) != 0;
    std::shared_ptr<const std::vector<char>> data;
    if (op.kind == Kind::kWrite && !durable) {
      const auto* b = static_cast<const char*>(op.wbuf);
      data = std::make_shared<const std::vector<char>>(b, b + op.count);
    }
    const uint64_t seq = ack_seq_.fetch_add(1) + 1;
    replay_.record(op.offset, op.count, op.kind, op.flags & LIBNBD_CMD_FLAG_NO_HOLE,
                   std::move(data), server, seq, durable);
    return replay_.bytes() > opt_.replay_limit;
  }

  IoStatus flush() {
    const size_t attempts = 2 * current().first->size() + 4;
    for (size_t attempt = 0; attempt < attempts; ++attempt) {
      if (replay_.orphans()) {
        replay_orphans_held();
        if (replay_.orphans()) {
          return IoStatus(EIO, Status::IoError(fmt::format(
                                   "{}: flush: {} bytes of acknowledged writes could not be "
                                   "replayed on any server and may be lost",
                                   opt_.name, replay_.orphan_bytes())));
        }
      }
      gate_.enter();
      const auto [list, pool] = current();
      std::vector<ServerPtr> targets;
      for (const ServerPtr& s : replay_.holders()) {
        if (s->usable()) targets.push_back(s);
      }
      if (targets.empty()) {
        gate_.leave();
        // Every acknowledged write was flushed, or written with FUA: NBD's flush promises
        // nothing more, so no server is asked. A holder that went down meanwhile left orphans,
        // replayed at the next attempt.
        if (replay_.empty()) {
          flushes_answered_.fetch_add(1, std::memory_order_relaxed);
          return IoStatus();
        }
        continue;
      }
      const uint64_t snapshot = ack_seq_.load();
      std::vector<std::unique_ptr<Pending>> pending;
      for (const ServerPtr& s : targets) pending.push_back(start(s, Op{Kind::kFlush}));
      for (auto& p : pending) finish(*p);
      gate_.leave();
      bool retry = false;
      for (auto& p : pending) {
        const int err = p->result();
        if (err == 0) {
          replay_.flushed(p->server.get(), snapshot);
        } else if (is_path_failure(err) || !p->server->healthy.load()) {
          p->server->failed.fetch_add(1, std::memory_order_relaxed);
          retries_.fetch_add(1, std::memory_order_relaxed);
          fail_server(p->server, failure_reason(err, p->detail));
          retry = true;
        } else {
          return IoStatus(err, Status::FromErrno(
                                   err, fmt::format("{}: flush on {}", opt_.name, p->server->uri)));
        }
      }
      if (!retry) return IoStatus();
    }
    return IoStatus(EIO, Status::Unavailable(fmt::format("{}: flush: gave up", opt_.name)));
  }

  // Declares `server` down and replays its unflushed writes elsewhere. Its connections are cut
  // first, so that its outstanding requests fail at once; then new requests are held and the
  // others drained before it is marked down, so that no request issued after a failure reaches
  // another server before the replay has put the failed server's acknowledged writes there.
  void fail_server(const ServerPtr& server, const std::string& why) {
    const std::lock_guard change(change_m_);
    if (!server->healthy.load()) return;  // another thread did it (a flush replays stragglers)
    server->cut();
    hold_requests("a failover");
    if (server->set_down(why)) {
      failovers_.fetch_add(1, std::memory_order_relaxed);
      log(fmt::format("server {} is down: {}", server->uri, why));
    }
    replay_orphans();
    gate_.release();
  }

  void hold_requests(std::string_view why) {
    if (!gate_.hold(Clock::now() + opt_.drain_timeout)) {
      log(fmt::format("{}: requests still outstanding after {} ms; going on", why,
                      opt_.drain_timeout.count()));
    }
  }

  void replay_orphans_held() {
    const std::lock_guard change(change_m_);
    if (!replay_.orphans()) return;
    hold_requests("replay");
    replay_orphans();
    gate_.release();
  }

  // With requests held: writes the pieces of unusable servers to the next usable server.
  void replay_orphans() {
    for (size_t round = 0; round < 2 * current().first->size() + 2 && replay_.orphans(); ++round) {
      const auto [list, pool] = current();
      ServerPtr to = pick(*list, false);
      if (!to) {
        log(fmt::format("{} bytes of acknowledged writes wait for a server to replay them on",
                        replay_.orphan_bytes()));
        return;
      }
      const uint64_t seq = ack_seq_.fetch_add(1) + 1;
      int failed_err = 0;
      std::string failed_detail;
      // The pieces go a window at a time, all in flight at once: one round trip a window, not
      // one a piece, so that a failover does not hold requests for thousands of round trips.
      const uint64_t moved =
          replay_.move_orphans(to, seq, kReplayWindow, [&](const ReplayBuffer::Batch& pieces) {
            std::vector<std::unique_ptr<Pending>> pending;
            for (const auto& [start_at, p] : pieces) {
              Op op{p->kind};
              op.offset = start_at;
              op.count = static_cast<uint32_t>(p->end - start_at);
              op.flags = p->flags;
              if (p->kind == Kind::kWrite) op.wbuf = p->data->data() + p->data_offset;
              pending.push_back(::vvm::plugin::forward::start(to, op));
            }
            std::vector<bool> ok;
            for (auto& pend : pending) {
              finish(*pend);
              const int err = pend->result();
              ok.push_back(err == 0);
              if (err == 0) {
                to->replayed.fetch_add(1, std::memory_order_relaxed);
              } else if (failed_err == 0) {
                failed_err = err;
                failed_detail = pend->detail;
              }
            }
            return ok;
          });
      if (moved > 0) log(fmt::format("replayed {} unflushed bytes on {}", moved, to->uri));
      if (failed_err != 0) {
        if (to->set_down(is_path_failure(failed_err)
                             ? failure_reason(failed_err, failed_detail)
                             : "replaying a write failed: " + std::string(strerror(failed_err)))) {
          failovers_.fetch_add(1, std::memory_order_relaxed);
          log(fmt::format("server {} is down: {}", to->uri, to->reason()));
        }
        to->cut();
      }
    }
  }

  Status mark_down(const std::string& uri, const std::string& why) {
    ServerPtr s = find(uri);
    if (!s) return Status::NotFound(fmt::format("{}: no server {} in the list", opt_.name, uri));
    fail_server(s, "marked down: " + why);
    return Status::Ok();
  }

  Status mark_up(const std::string& uri) {
    ServerPtr s = find(uri);
    if (!s) return Status::NotFound(fmt::format("{}: no server {} in the list", opt_.name, uri));
    if (s->healthy.load()) return Status::Ok();
    Result<Server::Dialed> d =
        Server::dial(uri, opt_.connections, opt_.connect_timeout, opt_.source);
    if (!d.ok())
      return Status(d.status().code(), opt_.name + ": " + uri + ": " + d.status().message());
    if (d->caps.size != caps_.size) {
      return Status::Mismatch(
          fmt::format("{}: {} serves {} bytes, not {}", opt_.name, uri, d->caps.size, caps_.size));
    }
    s->set_up(std::move(d->conns));
    log(fmt::format("server {} is up again", uri));
    return Status::Ok();
  }

  Result<std::chrono::microseconds> reconfigure(std::vector<ServerSpec> specs, bool pool) {
    if (specs.empty()) {
      return Status::InvalidArgument(opt_.name + ": reconfigure: the new list has no server");
    }
    const std::lock_guard change(change_m_);
    const auto [old_list, old_pool] = current();
    ServerList next;
    for (const ServerSpec& spec : specs) {
      auto same = std::find_if(old_list->begin(), old_list->end(),
                               [&](const ServerPtr& s) { return s->uri == spec.uri; });
      next.push_back(same != old_list->end() ? *same : connect_server(spec));
    }
    bool any = false;
    for (const ServerPtr& s : next) {
      if (!s->healthy.load()) continue;
      if (s->caps.size != caps_.size) {
        return Status::Mismatch(fmt::format("{}: reconfigure: {} serves {} bytes, not {}",
                                            opt_.name, s->uri, s->caps.size, caps_.size));
      }
      any = true;
    }
    if (!any) {
      std::string why;
      for (const ServerPtr& s : next)
        why += (why.empty() ? "" : "; ") + s->uri + ": " + s->reason();
      return Status::Unavailable(fmt::format(
          "{}: reconfigure: no server of the new list is reachable: {}", opt_.name, why));
    }
    const Clock::time_point t0 = Clock::now();
    hold_requests("reconfigure");
    // The servers dropped by the new list flush what they acknowledged; if they cannot, their
    // writes are replayed on the new list. A server that does not answer within the drain
    // timeout (a hung node being moved away from) has its connections cut, which ends the flush.
    const uint64_t snapshot = ack_seq_.load();
    for (const ServerPtr& s : replay_.holders()) {
      const bool kept = std::find(next.begin(), next.end(), s) != next.end();
      if (kept || !s->usable()) continue;
      std::unique_ptr<Pending> p = start(s, Op{Kind::kFlush});
      std::mutex m;
      std::condition_variable cv;
      bool flushed = false;
      std::thread watchdog([&] {
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, opt_.drain_timeout, [&] { return flushed; })) s->cut();
      });
      finish(*p);
      {
        const std::lock_guard lock(m);
        flushed = true;
      }
      cv.notify_one();
      watchdog.join();
      if (p->result() == 0) {
        replay_.flushed(s.get(), snapshot);
      } else {
        log(fmt::format("reconfigure: flushing {} failed ({}); its unflushed writes are replayed",
                        s->uri, std::strerror(p->result())));
      }
    }
    for (const ServerPtr& s : *old_list) {
      if (std::find(next.begin(), next.end(), s) == next.end()) s->retired.store(true);
    }
    set_list(std::move(next), pool);
    replay_orphans();
    gate_.release();
    const auto paused = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
    log(fmt::format("reconfigured: requests held {} us", paused.count()));
    return paused;
  }

  ServerPtr find(const std::string& uri) const {
    const auto [list, pool] = current();
    for (const ServerPtr& s : *list) {
      if (s->uri == uri) return s;
    }
    return nullptr;
  }

  bool pool() const { return current().second; }

  bool unflushed() const { return !replay_.empty(); }

  std::optional<uint64_t> least_outstanding() const {
    std::optional<uint64_t> least;
    const auto [list, pool] = current();
    for (const ServerPtr& s : *list) {
      if (!s->usable()) continue;
      const uint64_t n = s->outstanding.load(std::memory_order_relaxed);
      if (!least || n < *least) least = n;
    }
    return least;
  }

  ForwardStats stats() const {
    ForwardStats st;
    const auto [list, pool] = current();
    for (const ServerPtr& s : *list) {
      ServerStats ss;
      ss.uri = s->uri;
      ss.healthy = s->healthy.load();
      ss.down_reason = ss.healthy ? "" : s->reason();
      ss.connections = s->connection_count();
      ss.requests = s->requests.load();
      ss.failed = s->failed.load();
      ss.replayed = s->replayed.load();
      ss.outstanding = s->outstanding.load();
      st.servers.push_back(std::move(ss));
    }
    st.failovers = failovers_.load();
    st.retries = retries_.load();
    st.replay_bytes = replay_.bytes();
    st.flushes_answered = flushes_answered_.load();
    return st;
  }

 private:
  mutable std::mutex list_m_;
  std::shared_ptr<const ServerList> list_ = std::make_shared<const ServerList>();
  bool pool_ = false;
  Gate gate_;
  std::mutex change_m_;  // one failover or reconfiguration at a time
  ReplayBuffer replay_;
  std::atomic<uint64_t> ack_seq_{0};
  std::atomic<uint64_t> failovers_{0}, retries_{0}, flushes_answered_{0};
};

Forwarder::Forwarder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Forwarder::~Forwarder() = default;

Result<std::unique_ptr<Forwarder>> Forwarder::open(ForwardOptions options) {
  if (options.servers.empty()) {
    return Status::InvalidArgument(options.name + ": no server to forward to");
  }
  const bool pool = options.pool;
  auto impl = std::make_unique<Impl>(std::move(options));
  ServerList list;
  std::string why;
  const Server* first = nullptr;
  for (const ServerSpec& spec : impl->opt_.servers) {
    ServerPtr s = impl->connect_server(spec);
    if (!s->healthy.load()) {
      why += (why.empty() ? "" : "; ") + spec.uri + ": " + s->reason();
    } else if (first == nullptr) {
      first = s.get();
      impl->caps_ = s->caps;
    } else if (s->caps.size != first->caps.size) {
      return Status::Mismatch(fmt::format("{}: {} serves {} bytes but {} serves {}",
                                          impl->opt_.name, first->uri, first->caps.size, spec.uri,
                                          s->caps.size));
    }
    list.push_back(std::move(s));
  }
  if (first == nullptr) {
    return Status::Unavailable(
        fmt::format("{}: no server can be reached: {}", impl->opt_.name, why));
  }
  // Offer only what every reachable server offers: a request may land on any of them.
  ExportCaps& c = impl->caps_;
  for (const ServerPtr& s : list) {
    if (!s->healthy.load()) continue;
    c.can_write = c.can_write && s->caps.can_write;
    c.can_flush = c.can_flush && s->caps.can_flush;
    c.can_fua = c.can_fua && s->caps.can_fua;
    c.can_trim = c.can_trim && s->caps.can_trim;
    c.can_zero = c.can_zero && s->caps.can_zero;
    c.can_fast_zero = c.can_fast_zero && s->caps.can_fast_zero;
    c.can_extents = c.can_extents && s->caps.can_extents;
    c.can_cache = c.can_cache && s->caps.can_cache;
    c.can_multi_conn = c.can_multi_conn && s->caps.can_multi_conn;
  }
  impl->set_list(std::move(list), pool);
  return std::unique_ptr<Forwarder>(new Forwarder(std::move(impl)));
}

const ExportCaps& Forwarder::caps() const { return impl_->caps_; }
const std::string& Forwarder::name() const { return impl_->opt_.name; }

IoStatus Forwarder::pread(void* buf, uint32_t count, uint64_t offset) {
  Op op{Kind::kRead};
  op.rbuf = buf;
  op.count = count;
  op.offset = offset;
  return impl_->run(op);
}

IoStatus Forwarder::pwrite(const void* buf, uint32_t count, uint64_t offset, bool fua) {
  Op op{Kind::kWrite};
  op.wbuf = buf;
  op.count = count;
  op.offset = offset;
  op.flags = fua ? LIBNBD_CMD_FLAG_FUA : 0;
  return impl_->run(op);
}

IoStatus Forwarder::flush() { return impl_->flush(); }

IoStatus Forwarder::trim(uint32_t count, uint64_t offset, bool fua) {
  Op op{Kind::kTrim};
  op.count = count;
  op.offset = offset;
  op.flags = fua ? LIBNBD_CMD_FLAG_FUA : 0;
  return impl_->run(op);
}

IoStatus Forwarder::zero(uint32_t count, uint64_t offset, bool may_trim, bool fast, bool fua) {
  Op op{Kind::kZero};
  op.count = count;
  op.offset = offset;
  op.flags = (fua ? LIBNBD_CMD_FLAG_FUA : 0) | (may_trim ? 0 : LIBNBD_CMD_FLAG_NO_HOLE) |
             (fast ? LIBNBD_CMD_FLAG_FAST_ZERO : 0);
  return impl_->run(op);
}

IoStatus Forwarder::extents(uint32_t count, uint64_t offset, bool req_one,
                            std::vector<Extent>* out) {
  Op op{Kind::kExtents};
  op.count = count;
  op.offset = offset;
  op.flags = req_one ? LIBNBD_CMD_FLAG_REQ_ONE : 0;
  op.extents = out;
  return impl_->run(op);
}

IoStatus Forwarder::cache(uint32_t count, uint64_t offset) {
  Op op{Kind::kCache};
  op.count = count;
  op.offset = offset;
  return impl_->run(op);
}

Status Forwarder::mark_down(const std::string& uri, const std::string& reason) {
  return impl_->mark_down(uri, reason);
}
Status Forwarder::mark_up(const std::string& uri) { return impl_->mark_up(uri); }

Result<std::chrono::microseconds> Forwarder::reconfigure(std::vector<ServerSpec> servers,
                                                         bool pool) {
  return impl_->reconfigure(std::move(servers), pool);
}

ForwardStats Forwarder::stats() const { return impl_->stats(); }
std::optional<uint64_t> Forwarder::least_outstanding() const { return impl_->least_outstanding(); }
bool Forwarder::pool() const { return impl_->pool(); }
bool Forwarder::unflushed() const { return impl_->unflushed(); }

}  // namespace vvm::plugin::forward
