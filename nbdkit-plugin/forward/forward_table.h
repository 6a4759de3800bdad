// forward_table.h: the packs this node forwards, the servers of each, and the one Forwarder each
// pack gets, opened at its first connection and shared by every client of the pack.
//
// Until the cluster mapping (etcd) fills it, the plugin's parameters do, for tests and benchmarks:
//   forward=NAME=URI[,URI...]        primary first, then the secondaries
//   forward-pool=NAME=URI[,URI...]   servers that share one disk, used by load
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
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
};

// Parses "NAME=URI[,URI...]"; the error names the parameter and what is wrong with it.
Result<ForwardEntry> parse_forward(std::string_view value, bool pool);

class ForwardTable {
 public:
  // Refuses a pack given twice.
  Status add(ForwardEntry entry);
  const ForwardEntry* find(std::string_view pack) const;
  const std::vector<ForwardEntry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }

  // The forwarder of `entry`, opened (connecting to its servers) at the first call; a failed
  // open is tried again at the next call. `log` receives the forwarder's events.
  Result<std::shared_ptr<Forwarder>> forwarder(const ForwardEntry& entry,
                                               const std::function<void(const std::string&)>& log);
  // Closes every forwarder (no request may be outstanding).
  void close_all();

 private:
  std::vector<ForwardEntry> entries_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Forwarder>, std::less<>> open_;
};

}  // namespace vvm::plugin::forward
