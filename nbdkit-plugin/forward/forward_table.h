// forward_table.h: the packs this node forwards, the servers of each, and the one Forwarder each
// pack gets, opened at its first connection and shared by every client of the pack.
//
// Two sources fill it. In cluster mode the mapping in etcd does (cluster_catalog.h's routes):
// replace() takes the whole list after every change and brings each open forwarder in line:
//   - a server newly known down (its node's key is gone, its path is marked down) is marked down
//     (its connections cut, its requests and unflushed writes sent to the next server);
//   - a new list of servers (a new epoch of the mapping) is a reconfigure();
//   - a server newly known up again (its node is back, its path works) is marked up;
// and retry_up() connects again, about once a second, to the servers known up that their
// forwarder has found down itself (a NAK, a lost connection) and could not reach since.
// Otherwise the plugin's parameters do, for tests and benchmarks:
//   forward=NAME=URI[,URI...]        primary first, then the secondaries
//   forward-pool=NAME=URI[,URI...]   servers that share one disk, used by load
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "forward/forwarder.h"

namespace vvm::plugin::forward {

struct ForwardEntry {
  std::string pack;  // NAME of pack/NAME
  std::vector<ServerSpec> servers;
  bool pool = false;
  // Cluster mode: why each server (same order) is known to be down, "" when it is not; empty for
  // the parameters, which know nothing of the servers' state.
  std::vector<std::string> down;
  // For listings: what the export is ("pack a, forwarded to n1, n2").
  std::string description;
  bool operator==(const ForwardEntry&) const = default;
};

// Parses "NAME=URI[,URI...]"; the error names the parameter and what is wrong with it.
Result<ForwardEntry> parse_forward(std::string_view value, bool pool);

class ForwardTable {
 public:
  using Log = std::function<void(const std::string&)>;

  // Refuses a pack given twice.
  Status add(ForwardEntry entry);
  // Copies: the cluster may replace the entries at any time.
  std::optional<ForwardEntry> find(std::string_view pack) const;
  // Whether `pack` is listed with a pool of servers (find's, without the copy).
  bool pool(std::string_view pack) const;
  std::vector<ForwardEntry> entries() const;
  bool empty() const;

  // The forwarder of `pack`, opened (connecting to its servers) at the first call; a failed
  // open is tried again at the next call. `log` receives the forwarder's events. NotFound when
  // the table has no such pack. An open one is found without waiting (open_forwarder); opening
  // one waits for the table's changes.
  Result<std::shared_ptr<Forwarder>> forwarder(std::string_view pack, const Log& log);
  // The forwarder of `pack` if it is open, else null, without waiting: null also while another
  // thread opens or brings in line a forwarder (a pool node weighing its load against the other
  // servers' must never wait for a connection).
  std::shared_ptr<Forwarder> opened(std::string_view pack);
  // The forwarder of `pack` if it is open, else null (never opening one), without waiting for
  // the table's changes either: a local flush asks it, and a change of another pack's forwarder
  // (a reconfiguration draining it, a server dialled within its connect timeout) must not hold
  // that flush. Unlike opened(), a forwarder being brought in line is returned: its own requests
  // wait for the change, not the caller's other packs.
  std::shared_ptr<Forwarder> open_forwarder(std::string_view pack) const;

  // Cluster mode: the entries are now `entries` (see the file comment). A forwarder whose pack is
  // gone is dropped from the table (its open connections keep it). Blocks while forwarders are
  // reconfigured.
  void replace(std::vector<ForwardEntry> entries, const Log& log);
  // Connects again to the servers known up that their forwarder has down (see the file comment).
  void retry_up(const Log& log);

  // Closes every forwarder (no request may be outstanding).
  void close_all();

  // Closes the forwarders that no client connection holds and that have sent no request for
  // `idle` (checked at each call): a node keeps no idle connection to a server, for nbdkit 1.32
  // told to stop waits for its open connections, and a node whose peers kept theirs would never
  // stop. The next connection or request opens the forwarder again. `log` hears each one closed.
  void close_idle(std::chrono::milliseconds idle, const Log& log);

  // Cluster mode: forwarders opened from now on connect from this local address (the node's
  // advertised host: ForwardOptions::source). Set before the first forwarder opens.
  void set_source(std::string host) { source_ = std::move(host); }

 private:
  struct Open {
    std::shared_ptr<Forwarder> forwarder;
    ForwardEntry applied;  // the entry whose servers and states the forwarder has been given
    // For close_idle(): the requests counted at its last call, and since when none came.
    uint64_t requests_seen = 0;
    std::chrono::steady_clock::time_point idle_since = std::chrono::steady_clock::now();
  };
  // Marks down, in `f`, the servers that `entry` knows down.
  static void apply_down(Forwarder& f, const ForwardEntry& entry, const ForwardEntry* before,
                         const Log& log);
  // Drops `pack` from live_ (open_m_ held, as it leaves open_).
  void forget(const std::string& pack);

  std::string source_;
  mutable std::mutex entries_m_;
  std::vector<ForwardEntry> entries_;
  // Held while a forwarder is opened or brought in line: one change at a time.
  std::mutex open_m_;
  std::map<std::string, Open, std::less<>> open_;
  // The forwarders of open_, for open_forwarder() and forwarder()'s look-up of an open one:
  // changed with open_ (open_m_ held, then live_m_ for the change alone), read under live_m_
  // only, which is never held across a wait. Weak: close_idle() counts the holders.
  mutable std::mutex live_m_;
  std::map<std::string, std::weak_ptr<Forwarder>, std::less<>> live_;
};

}  // namespace vvm::plugin::forward
