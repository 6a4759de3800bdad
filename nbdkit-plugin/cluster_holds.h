// cluster_holds.h: exclusive holds across the cluster. A node's HoldRegistry (pack_holds.h) keeps
// the rules between its own clients; in cluster mode an exclusive hold is also written to etcd,
// PREFIX/hold/PACK (records.h), in a transaction that requires the key absent and bound to the
// holding node's membership lease, so that a client of another node is refused, naming the node
// and the client that hold the pack, and the hold goes with its node's lease if the node dies.
// A reader or a shared writer on another node is refused the same way while the key is there.
// The key is deleted (if it is still the one written) when the holder's last connection closes.
// Readers and shared writers are not recorded: an exclusive hold taken while another node's
// clients read or share the pack is not refused here (the OFD locks refuse it on one host).
//
// While etcd cannot be reached an exclusive hold is refused (it could not be made
// cluster-wide); a reader or a shared writer is let through on the node's own rules.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "cluster/etcd_client.h"
#include "cluster/records.h"
#include "common/status.h"
#include "pack/pack_lock.h"

namespace vvm::plugin {

class ClusterHolds {
 public:
  struct Options {
    cluster::EtcdOptions etcd;
    std::string prefix{cluster::kDefaultPrefix};
    std::string node;
    int64_t lease = 0;  // the node's membership lease
  };
  static Result<std::unique_ptr<ClusterHolds>> create(Options options);

  // Called by the registry for a new holder of `pack` (after the node's own rules allowed it):
  // Busy, naming the holder on its node, when another node's client holds the pack exclusive.
  Status acquire(const std::string& pack, HoldKind kind, const std::string& identity);
  // Called when that holder's last connection has closed.
  void release(const std::string& pack, HoldKind kind, const std::string& identity);
  // The node rejoined the cluster with a new lease: the holds bound to the old one went with it
  // (the registry forgets them too: HoldRegistry::rejoined, which calls this); new ones are
  // bound to the new lease.
  void set_lease(int64_t lease);

 private:
  explicit ClusterHolds(Options options) : options_(std::move(options)) {}
  Status refusal(const std::string& pack, HoldKind kind, const std::string& identity,
                 const cluster::KeyValue& held) const;

  Options options_;
  std::unique_ptr<cluster::EtcdClient> etcd_;
  std::mutex mu_;
  std::map<std::string, int64_t> mine_;  // pack -> mod revision of the key this node wrote
};

}  // namespace vvm::plugin
