// forwarder.h: the data path of a forwarding node for one export: every request that nbdkit's
// plugin API v2 forwards (pread, pwrite with FUA, flush, trim, zero, extents, cache) is sent over
// NBD (libnbd) to one of an ordered list of servers that reach the same disk, and sent again to the
// next healthy one when its destination fails, so that the caller sees no error unless every
// server has failed.
//
//   ForwardOptions o;
//   o.name = "pack/a";
//   o.servers = {{"nbd://127.0.0.2:10809/pack/a"}, {"nbd://127.0.0.3:10809/pack/a"}};
//   Result<std::unique_ptr<Forwarder>> f = Forwarder::open(std::move(o));
//   IoStatus s = (*f)->pwrite(buf, 4096, 0, /*fua=*/false);
//
// One Forwarder serves every client connection to its export, from any number of threads at once
// (nbdkit's parallel thread model): a flush then covers the writes of every client connection, as
// multi-conn promises.
//
// How requests travel. Each server has a pool of libnbd connections (several when it advertises
// multi-conn, one otherwise), used through libnbd's aio calls: the calling thread issues the
// command (nbd_aio_pread...) and waits; one of the threads waiting on a connection at a time reads
// its replies (leader and followers: no thread of its own, so a reply costs one wake-up at most),
// and requests from many threads overlap on every connection. A request goes to the first
// healthy server of the list (primary, then secondary...), or, for a pool (several servers
// reaching one shared disk), to the healthy server with the fewest requests outstanding (among
// equals, the fewest sent so far), and on that server to the connection with the fewest.
//
// When a request is sent again. Every request is kept (with a write's data: the caller's buffer,
// which stays valid while it waits) until its reply. Its server is declared down, and the request
// sent to the next healthy server, when
//   - the server answers NBD_ESHUTDOWN (errno ESHUTDOWN): the NAK, "my path to the disk failed" or
//     "I am shutting down";
//   - a connection to it dies (the server process died, the host went away);
//   - the caller declares it down with mark_down() (the node lost its lease).
// Any other error is the server's answer about the data (EINVAL, ENOSPC, EPERM, EOPNOTSUPP for a
// fast zero, EIO from a server that does not NAK) and is returned as it is. When no healthy server
// is left, the request fails with EIO and a message naming each server and why it is down.
// A server declared down stays down until mark_up() or reconfigure() brings it back.
//
// The durability rule (what a FLUSH promises after a failover). NBD promises durable only what a
// FLUSH reply, or a write's FUA reply, acknowledged; a write acknowledged without FUA may still sit
// in its server's cache. So the forwarder keeps a copy of every write acknowledged without FUA
// (write, zero, trim) in a replay buffer, tagged with the server that acknowledged it, until a
// flush on that server, sent after the acknowledgement, succeeds. The buffer keeps only the newest
// acknowledged data of each byte: a later acknowledged write (on any server) replaces the bytes it
// covers, and a FUA write drops them, since they are then durable with newer data. When a server
// is declared down, new requests are held, the requests still outstanding on the other servers
// are drained, and the dead server's bytes in the buffer are written again (replayed) to the next
// healthy server, before any request is let through: a write that the client sent after seeing an
// acknowledgement is thus never overtaken by an older replayed one. A flush goes to every healthy
// server that holds unflushed writes in the buffer, and only to them, so it claims durability
// only for what a server has really flushed; with nothing in the buffer (every acknowledged
// write flushed, or written with FUA) it is answered at once, asking no server. A flush fails (EIO)
// if acknowledged writes could not be replayed anywhere: then they may be lost, and the flush says
// so rather than lying. The buffer is bounded (`replay_limit`): a write that takes it over the
// limit flushes first.
//
// A pool assumes the servers' caches are coherent (one host's page cache, a cluster filesystem
// with coherent caching, or direct I/O): a read on one server must see a write acknowledged by
// another. A server declared down may still be running (paused, partitioned): the lease side must
// only call mark_down() once the node cannot write any more (self-fencing), or a late write from
// it could land after a newer one.
//
// Reconfiguration (a new epoch of the mapping): reconfigure() connects to the servers the new list
// adds, then holds new requests, drains the outstanding ones (at most `drain_timeout`), flushes the
// servers that the new list drops (a server that does not answer within `drain_timeout` is cut)
// or replays their unflushed writes on the new list, swaps the list and lets the held requests
// go. It returns how long requests were held.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "io_status.h"

namespace vvm::plugin::forward {

// One server that reaches the disk: an NBD URI (nbd://HOST:PORT/EXPORT,
// nbd+unix:///EXPORT?socket=PATH), as libnbd's nbd_connect_uri takes it. The URI names the server
// in messages and statistics.
struct ServerSpec {
  std::string uri;
  // Known down (its node's lease expired, its path failed): listed down with this reason and not
  // connected to, since a paused node would hold the connect until its timeout; mark_up()
  // connects. "" for a server to connect to.
  std::string down;
};

struct ForwardOptions {
  std::string name;                 // the export, for messages: "pack/a"
  std::vector<ServerSpec> servers;  // in order of preference: primary, secondary, ...
  bool pool = false;                // the servers share one disk: spread requests by load
  // Connections a server gets when it advertises multi-conn (one when it does not).
  unsigned connections = 4;
  // Bytes of acknowledged, unflushed writes kept for replay before a write flushes first.
  uint64_t replay_limit = 256ull << 20;
  // How long a failover or a reconfiguration waits for outstanding requests before going on.
  std::chrono::milliseconds drain_timeout{10'000};
  // How long connecting to a server (TCP and the NBD handshake) may take.
  std::chrono::milliseconds connect_timeout{5'000};
  // The local address to connect to nbd:// servers from ("" for the kernel's choice): a cluster
  // node's advertised host, by which the servers know it is a node (pack/NAME@local).
  std::string source;
  // Where the forwarder says what happened to a server (declared down, replayed on, back up):
  // once an event, never per request. nbdkit_error in the plugin; nothing when empty.
  std::function<void(const std::string&)> log;
};

// What the export offers, as the servers advertised it when the forwarder connected: what every
// connected server offers (a capability one of them lacks is not advertised), the primary's
// block sizes. nbdkit caches these per client connection, so they do not change afterwards.
struct ExportCaps {
  uint64_t size = 0;
  bool can_write = false;
  bool can_flush = false;
  bool can_fua = false;
  bool can_trim = false;
  bool can_zero = false;
  bool can_fast_zero = false;
  bool can_extents = false;  // base:allocation
  bool can_cache = false;
  bool can_multi_conn = false;
  bool is_rotational = false;
  uint32_t block_minimum = 1;
  uint32_t block_preferred = 4096;
  uint32_t block_maximum = 32u << 20;
};

// One block status extent, as NBD base:allocation reports it.
struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool hole = false;
  bool zero = false;
};

// Counters of one server, for tests, benchmarks and `vvctl cluster map`.
struct ServerStats {
  std::string uri;
  bool healthy = false;
  std::string down_reason;  // why it is down; "" when healthy
  unsigned connections = 0;
  uint64_t requests = 0;     // requests sent to it (every attempt counts)
  uint64_t failed = 0;       // requests that failed there and were sent elsewhere
  uint64_t replayed = 0;     // writes replayed on it after another server went down
  uint64_t outstanding = 0;  // requests sent and not answered yet
};

struct ForwardStats {
  std::vector<ServerStats> servers;  // in list order
  uint64_t failovers = 0;            // servers declared down
  uint64_t retries = 0;              // requests sent again after a failure
  uint64_t replay_bytes = 0;         // acknowledged, unflushed bytes kept now
  uint64_t flushes_answered = 0;     // flushes answered with nothing to flush, asking no server
};

class Forwarder {
 public:
  // Connects to every server (blocking, in list order). A server that cannot be reached is marked
  // down with the reason; the open fails only when none can be, or when the servers disagree on
  // the size.
  static Result<std::unique_ptr<Forwarder>> open(ForwardOptions options);
  ~Forwarder();  // closes every connection; no request may be outstanding
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  const ExportCaps& caps() const;
  const std::string& name() const;

  // The operations of nbdkit's plugin API v2. Each blocks until it has an answer; each may be
  // called from any thread. `fua`: the write is durable when this returns.
  IoStatus pread(void* buf, uint32_t count, uint64_t offset);
  IoStatus pwrite(const void* buf, uint32_t count, uint64_t offset, bool fua);
  IoStatus flush();
  IoStatus trim(uint32_t count, uint64_t offset, bool fua);
  // `may_trim`: the range may be deallocated; `fast`: fail with EOPNOTSUPP rather than write the
  // zeroes (the server's answer, passed on).
  IoStatus zero(uint32_t count, uint64_t offset, bool may_trim, bool fast, bool fua);
  // base:allocation for [offset, offset + count), in order, from the server's reply;
  // `req_one`: one extent is enough.
  IoStatus extents(uint32_t count, uint64_t offset, bool req_one, std::vector<Extent>* out);
  IoStatus cache(uint32_t count, uint64_t offset);

  // The hooks of the lease and mapping side.
  // Declares the server `uri` down (its node lost its lease, its path was reported down): its
  // connections are cut, its outstanding requests go to the next healthy server, its unflushed
  // writes are replayed there. NotFound when the list has no such server.
  Status mark_down(const std::string& uri, const std::string& reason);
  // Connects to the server `uri` again and lets requests go to it.
  Status mark_up(const std::string& uri);
  // Swaps the list of servers (a new epoch): see the file comment. Servers in both lists keep
  // their connections and their health. Returns the time requests were held. A new server that
  // cannot be reached is listed down; a list with no reachable server is refused and the old
  // one kept; so is a server whose export has another size.
  Result<std::chrono::microseconds> reconfigure(std::vector<ServerSpec> servers, bool pool);

  ForwardStats stats() const;
  // The requests outstanding on the least loaded healthy server, or nullopt when none is healthy:
  // cheap, for a node that weighs its own load against the servers' (a pool node, whose clients'
  // requests go to the least loaded of itself and the others).
  std::optional<uint64_t> least_outstanding() const;
  // Whether the servers are a pool (used by load), as opened or last reconfigured.
  bool pool() const;
  // Whether some server holds acknowledged writes (or zeroes, trims) not flushed yet: whether
  // a flush() has anything to do.
  bool unflushed() const;

  class Impl;

 private:
  explicit Forwarder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vvm::plugin::forward
