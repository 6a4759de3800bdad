// pack_holds.h: who holds which pack in this nbdkit process, and the rules between holders.
//
// A holder is a client identity ("uid 1000" on a Unix socket, "host 10.0.0.5" over TCP) with a
// kind of hold (pack_lock.h). All connections of one identity to one pack share one hold
// (multi-conn), which ends with the last of them. Holders of different identities are
// compatible only when both read or both write a shared pack. Across processes the rules are
// kept by PackLock's OFD locks, and the holds folder says who the other process's holders are,
// so that a refusal names them.
//
// In cluster mode, every holder is also recorded in etcd and the same rules are kept with other
// nodes' holders (cluster_holds.h): set_cluster(). When
// the node rejoins the cluster under a new lease, the holds counted before are forgotten
// (rejoined()): see there for why.
//
// Thread-safe: nbdkit runs the plugin with the parallel thread model.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "pack/pack_lock.h"
#include "pack/packtab.h"

namespace vvm::plugin {

class ClusterHolds;

class HoldRegistry {
 public:
  explicit HoldRegistry(std::string holds_dir);
  ~HoldRegistry();  // removes this process's records
  HoldRegistry(const HoldRegistry&) = delete;
  HoldRegistry& operator=(const HoldRegistry&) = delete;

  // Adds one connection of `identity` to the holders of `pack`. Busy, naming the pack, the
  // holder in the way and its hold, when the rules say no. A pack with no backing is one this
  // node forwards: the same rules between its clients, and the cluster-wide record, with no lock
  // on a file (the serving node has the backing). `*generation`, when given, is set to the
  // registry's generation the hold belongs to (see rejoined()).
  Status acquire(const PackEntry& pack, HoldKind kind, const std::string& identity,
                 uint64_t* generation = nullptr);
  // Removes one connection added by acquire(); nothing when `generation` is given and the hold
  // belonged to an older one (it was forgotten by rejoined()).
  void release(const PackEntry& pack, HoldKind kind, const std::string& identity,
               std::optional<uint64_t> generation = std::nullopt);

  // Cluster mode: the node rejoined the cluster under the membership lease `lease`, after etcd
  // dropped the old one and with it every record of this node's holders (exclusive holds,
  // readers, shared writers); meanwhile another node's client may have taken those packs. The
  // rule: every hold counted here is forgotten (its records and file locks too), for the
  // connections that took them were opened before the rejoin and may no longer read or write
  // (the plugin refuses both), and their later releases are ignored (a new generation). A hold
  // still wanted is taken again by the next connection, from etcd under the new lease, by
  // compare-and-set: refused, naming the holder, if another node's client took the pack
  // meanwhile. (Re-recording the old holds instead would keep other nodes' clients off packs
  // that only connections refused I/O still hold, and could not be honest where another node
  // took the pack meanwhile.)
  void rejoined(int64_t lease);

  // Cluster mode: every new holder is also checked and recorded in etcd.
  // Set once, before the first acquire().
  void set_cluster(ClusterHolds* cluster) { cluster_ = cluster; }

  // The holders in this process, for tests and logs.
  std::vector<HoldRecord> holders() const;

 private:
  struct Holder {
    HoldKind kind;
    std::string identity;
    int connections = 0;
    std::string since;
  };
  struct PackState {
    PackEntry pack;
    std::optional<PackLock> lock;
    std::vector<Holder> holders;
  };
  using Key = std::pair<std::string, uint64_t>;  // backing, offset
  static Key key_of(const PackEntry& pack);

  static LockSet lock_set(const std::vector<Holder>& holders);
  HoldRecord record(const PackState& state, const Holder& holder) const;
  // The other processes' holders of `pack`, described, for a refusal.
  std::string other_holders(const PackEntry& pack) const;
  void write_records(const PackState& state) const;

  ClusterHolds* cluster_ = nullptr;
  uint64_t generation_ = 0;  // one more at each rejoined()
  HoldsDir holds_;
  std::string host_;
  mutable std::mutex mutex_;
  std::map<Key, PackState> packs_;
};

}  // namespace vvm::plugin
