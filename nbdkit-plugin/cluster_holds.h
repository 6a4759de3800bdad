// cluster_holds.h: the rules between a pack's holders, across the cluster. A node's HoldRegistry
// (pack_holds.h) keeps them between its own clients; in cluster mode every holder is also
// recorded in etcd (records.h), bound to the node's membership lease, so that they hold between
// the clients of different nodes exactly as between different identities on one host: readers
// share with readers, shared writers with shared writers, and an exclusive hold with nobody.
//   - an exclusive hold is PREFIX/hold/PACK, written by a transaction that requires the key
//     absent and no other node's users key of the pack (below);
//   - a node's readers, and its shared writers, of a pack are PREFIX/users/PACK/read/NODE and
//     PREFIX/users/PACK/shared/NODE (the identities and since when), written by a transaction
//     that requires no other node's exclusive hold and no other node's users key of the other
//     kind; updated as they come and go, deleted with the last of them.
// A client of another node is another identity, whatever its name (its node is part of it). The
// transactions compare ranges (etcd's range_end): no key in [PREFIX/users/PACK/KIND/, the node's
// own key) and none after it; the node's own keys are left out, for its registry judges its own
// clients (one identity may hold a pack exclusive and read it too). A refusal names the node and
// the client in the way, and the key: "pack 'x' is held read by uid 1000 on node n2 (etcd key
// /vvm/users/x/read/n2, since ...): host 10.0.0.5 on node n1 cannot have it exclusive". The keys go
// with the node's lease if the node dies.
//
// A fencing token: a create-if-absent is not safe to apply late. Sent to a member that stopped
// (SIGSTOP) before answering, it is sent again elsewhere (EtcdClient::txn), and the stopped
// member may still hand its copy to the leader when it resumes, after the hold was released:
// the copy finds the key absent again and brings the hold back, bound to a lease that lives on.
// So every write of these keys also requires the node's PREFIX/holdseq/NODE unchanged since the
// node last wrote it, and writes it again: once any later write of the node has been applied, an
// earlier copy fails (and EtcdClient::txn, seeing such a transaction take effect at most once,
// reads back rather than guess when an answer is lost).
//
// While etcd cannot be reached (or a write's outcome stays unknown) an exclusive hold is refused
// (it could not be made cluster-wide); a reader or a shared writer is let through on the node's
// own rules, unrecorded. The pack is then marked to be written again: resync(), every second
// on a thread of its own (Options::resync_every; not the cluster's tick, which a stopped etcd
// member must not hold up), writes its users keys as they are now (and deletes a hold that a lost
// answer may have left), once etcd answers. Written then rather than accepting the gap, because
// the gap would last as long as the client stays: hours for a mounted disk, with other nodes'
// exclusive holds let through meanwhile. What cannot be undone is logged: another node's client
// that took the pack exclusive while this node could not record its readers.
//
// The node rejoins the cluster under a new lease (set_lease, from HoldRegistry::rejoined) only
// after its old lease, and every key bound to it, is gone: everything recorded here is forgotten
// with the registry's holds, whose connections are refused reads and writes from then on
// (vvm_plugin.cc, opened_before_rejoin). New holders are recorded under the new lease.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

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
    // Tests: every transaction as it is sent, to apply a copy of it late as a resumed member
    // would.
    std::function<void(const cluster::Txn&)> sent;
    // Where what is not an answer to a caller goes (nbdkit's log): an error, or a debug line.
    std::function<void(bool error, const std::string&)> log;
    // > 0: a thread calls resync() this often; 0: the caller does (the tests).
    std::chrono::milliseconds resync_every{0};
  };
  static Result<std::unique_ptr<ClusterHolds>> create(Options options);
  ~ClusterHolds();  // stops the resync thread
  ClusterHolds(const ClusterHolds&) = delete;
  ClusterHolds& operator=(const ClusterHolds&) = delete;

  // Called by the registry for a new holder of `pack` (before the node's own rules are asked):
  // Busy, naming the holder on its node, when another node's clients are in the way.
  Status acquire(const std::string& pack, HoldKind kind, const std::string& identity);
  // Called when that holder's last connection has closed (or the registry refused it after all).
  void release(const std::string& pack, HoldKind kind, const std::string& identity);
  // The node rejoined the cluster with a new lease: see the file comment.
  void set_lease(int64_t lease);
  // Writes the packs whose records etcd may not show as they are (the file comment); nothing
  // when there are none.
  void resync();

 private:
  struct PackState {
    std::map<std::string, uint64_t> users[2];  // by kind (read, shared): identity -> since
    std::string exclusive;                     // this node's exclusive holder in etcd, or ""
    int64_t hold_rev = 0;                      // mod revision of PREFIX/hold/PACK it wrote
    bool dirty = false;                        // etcd may not show the above
    bool empty() const { return users[0].empty() && users[1].empty() && exclusive.empty(); }
  };
  explicit ClusterHolds(Options options) : options_(std::move(options)) {}

  // Runs `txn` with the fencing token's compare and write added (and a read of it in the failure
  // branch, taken off the result); tried again when the token had moved (a late copy of an
  // earlier write was applied meanwhile).
  Result<cluster::TxnResult> guarded(const cluster::Txn& txn);
  Status load_token();
  // The compares that no other node has a users key of `kind` for `pack`.
  void no_other_users(cluster::Txn& txn, const std::string& pack, HoldKind kind) const;
  cluster::TxnOp write_users(const std::string& pack, const PackState& state, HoldKind kind) const;
  // Writes every record of `pack` as `state` says (resync()).
  Status sync(const std::string& pack, PackState& state);
  Status refusal(const std::string& pack, HoldKind kind, const std::string& identity,
                 const cluster::KeyValue& held) const;
  // The refusal by the first other node's users key in `kvs` of a kind `kind` may not meet;
  // Ok when there is none.
  Status users_refusal(const std::string& pack, HoldKind kind, const std::string& identity,
                       const std::vector<cluster::KeyValue>& kvs) const;
  void forget_if_unused(const std::string& pack);
  void say(bool error, const std::string& message) const;

  Options options_;
  std::unique_ptr<cluster::EtcdClient> etcd_;
  std::mutex mu_;
  std::map<std::string, PackState> packs_;
  std::thread resyncer_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  int64_t token_rev_ = 0;  // mod revision of PREFIX/holdseq/NODE as last written; 0: read it
  uint64_t seq_ = 0;       // its count
};

}  // namespace vvm::plugin
