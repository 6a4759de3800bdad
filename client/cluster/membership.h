// cluster/membership.h: a node's membership of the cluster: its key PREFIX/node/NAME written
// under an etcd lease and kept alive from a thread, so that the key goes when the node does.
//
// join() grants a lease of the configured TTL and creates the key in one transaction that
// requires it to be absent: a second node of the same name is refused, naming the key and the
// holder's address, until the first leaves or its lease expires. A thread then renews the lease
// every third of its TTL (sooner, after a failed renewal). When no renewal has succeeded in
// time, on_lost is called *before* the lease can have expired in etcd: valid_until() is the last
// successful renewal's send time plus the TTL etcd granted, less a margin (a fifth of the TTL, at
// least half a second). That is the self-fencing rule: a node must stop serving writes once
// valid_until() has passed, for another node may take its disks over after the TTL.
//
// Renewals go on after that. One that reaches etcd and finds the lease alive (etcd was down or
// out of reach, and a restarted etcd extends every lease) moves valid_until() on and calls
// on_back: the key never went, so no other node can have taken anything over, and the node may
// write again. When etcd says the lease is gone, lost() becomes true for good (on_lost is called
// if it was not already, then on_gone): Membership does not join again by itself; its owner
// decides (a new join() makes a new lease, and a new key; the plugin's ClusterCatalog rejoins).
//
//   auto m = Membership::join(options, [](const Status& why) { fence(why); },
//                             [] { unfence(); });
//   ...
//   (*m)->leave();   // revokes the lease: the key goes at once (also done by the destructor)
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cluster/etcd_client.h"
#include "cluster/records.h"
#include "common/config.h"
#include "common/status.h"

namespace vvm::cluster {

struct MembershipOptions {
  EtcdOptions etcd;
  std::string prefix{kDefaultPrefix};
  NodeRecord node;  // name, address, disks; join() sets `started`
  std::chrono::seconds ttl{10};
};

// The options of this host's node from vvm.conf's [cluster]; an error when there is no [cluster]
// section or it names no node.
Result<MembershipOptions> membership_options(const Config& config);
// The etcd options of vvm.conf's [cluster] (endpoints, timeout); an error without the section.
Result<EtcdOptions> etcd_options(const Config& config);

class Membership {
 public:
  using OnLost = std::function<void(const Status& why)>;
  using OnBack = std::function<void()>;

  // Registers the node and starts renewing its lease. `on_lost` and `on_back` run on the renewal
  // thread, in turn (on_lost first, at most once more than on_back), and `on_gone` last, once,
  // when etcd says the lease is gone; they must not call leave() (nor destroy the Membership).
  static Result<std::unique_ptr<Membership>> join(MembershipOptions options, OnLost on_lost,
                                                  OnBack on_back = {}, OnBack on_gone = {});
  ~Membership();  // leave()
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Stops renewing and revokes the lease (when it is not lost), so the key goes at once.
  void leave();

  const std::string& key() const { return key_; }
  int64_t lease_id() const { return lease_id_; }
  // The etcd revision that created the node's key: everything etcd holds from it on was written
  // while this membership was there.
  int64_t revision() const { return revision_; }
  const NodeRecord& node() const { return options_.node; }
  // True once etcd has said the lease is gone: for good.
  bool lost() const { return lost_; }
  // Until when this node may serve writes, by its last successful renewal.
  std::chrono::steady_clock::time_point valid_until() const;

 private:
  Membership(MembershipOptions options, std::unique_ptr<EtcdClient> client, std::string key,
             Lease lease, int64_t revision, OnLost on_lost, OnBack on_back, OnBack on_gone);
  void renew_loop();
  std::chrono::milliseconds margin() const;

  MembershipOptions options_;
  std::unique_ptr<EtcdClient> client_;
  std::string key_;
  int64_t lease_id_;
  int64_t revision_;
  OnLost on_lost_;
  OnBack on_back_;
  OnBack on_gone_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::atomic<bool> lost_{false};
  std::chrono::steady_clock::time_point valid_until_;
  std::thread thread_;
};

}  // namespace vvm::cluster
