// cluster/reconfig.h: changing pack mappings while nodes serve them: the barrier in etcd (the
// command's side), and the plans of vvctl's pack move, pack set-secondary, pack set-pool,
// cluster drain, pack chmod and pack chown.
//
// The barrier (the node's side is the plugin's reconf_gate.h):
//   1. The command grants a lease a little longer than its timeout and writes the intent,
//      PREFIX/reconf/ID (records.h: the packs, their new mappings, a deadline), under it.
//   2. Every live node (a member with a lease, PREFIX/node/NAME) sees it by watch, holds new
//      requests of those packs, drains the ones it is serving, flushes them, and writes
//      PREFIX/ack/ID/NODE under the intent's lease.
//   3. The command waits, by watches on the acks and on the members, until every node that is
//      still a member has acknowledged (a node whose lease goes stops counting), at most its
//      timeout; it prints who it is waiting for once a second.
//   4. It commits in one transaction that requires each mapping unchanged since it was read
//      (mod revision) and the intent still there: the new mappings (epoch + 1), and the intent
//      and its acks deleted. Nodes see the intent go, read the mappings, and resume.
// On a timeout, a failed transaction or any error, the command revokes its lease: the intent and
// the acks go, and the nodes resume under the mapping they had. A command killed half-way leaves
// the intent to its lease, which ends a few seconds after the timeout; a node that has not seen
// the intent go by its deadline resumes by itself.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster/etcd_client.h"
#include "cluster/records.h"
#include "common/status.h"

namespace vvm::cluster {

// One mapping to change: the new mapping (its epoch one more than the one read) and the mod
// revision of the one read, which must still be there when the change is committed.
struct Change {
  PackMapping mapping;
  int64_t mod_revision = 0;
};

struct ReconfigOptions {
  std::string prefix{kDefaultPrefix};
  // How long every live node has to acknowledge; the command gives up after it.
  std::chrono::milliseconds timeout{10'000};
  std::string by;  // who asks, for the nodes' logs ("vvctl pack move on host1, pid 42")
  // Progress while waiting (once a second): "waiting for n2 (2 of 3 nodes acknowledged)".
  std::function<void(const std::string&)> progress;
};

struct ReconfigReport {
  std::string id;
  std::vector<std::string> acked;     // the nodes that acknowledged
  std::chrono::microseconds barrier;  // from the intent written to every acknowledgement seen
  std::chrono::microseconds total;    // from the intent written to the commit's answer
  int64_t revision = 0;               // of the commit
};

// Runs the barrier for `changes` and commits them, with `also` in the same transaction (a drain
// mark, say). A Timeout names the nodes that did not acknowledge; a Busy says which pack changed
// meanwhile; an Unavailable names the etcd endpoint. Nothing is changed unless it succeeds.
Result<ReconfigReport> reconfigure(EtcdClient& etcd, const ReconfigOptions& options,
                                   const std::vector<Change>& changes,
                                   const std::vector<TxnOp>& also = {});

// What the plans are made from, read at one time: the live nodes, the drained nodes and the
// mappings with their mod revisions.
struct ClusterView {
  std::map<std::string, NodeRecord> nodes;  // members now (their lease is alive)
  std::set<std::string> drained;
  std::map<std::string, Listing<PackMapping>::Item> packs;
};
Result<ClusterView> read_view(EtcdClient& etcd, std::string_view prefix);

// `vvctl pack move NAME --primary NODE [--disk DISK]`: NODE becomes the primary. When NODE is
// the secondary the two swap; otherwise NODE's DISK (by default the primary's disk name) takes
// the primary's place. NODE must be live, not drained, and have the disk.
Result<Change> plan_move(const ClusterView& view, const std::string& pack, const std::string& node,
                         const std::string& disk);
// `vvctl pack set-secondary NAME NODE[:DISK]`, or `--none` (node ""): the secondary replaced or
// removed. DISK defaults to the primary's disk name.
Result<Change> plan_secondary(const ClusterView& view, const std::string& pack,
                              const std::string& node, const std::string& disk);
// `vvctl pack set-pool NAME NODE[:DISK],...`, or `--none` (`pool` empty): the pool replaced or
// removed. An entry's empty DISK is the primary's disk name. Each entry's node must be live, not
// drained, and have the disk; check_pool's rules hold for the result.
Result<Change> plan_pool(const ClusterView& view, const std::string& pack,
                         std::vector<DiskRef> pool);
// Why `m`'s pool cannot serve it, naming the pack and the entry: a disk listed twice (in the pool,
// or as the primary or secondary), or a node named twice (a node serves a pack from one disk:
// the primary's, the secondary's or one pool entry's). Ok for a pool without either.
Status check_pool(const PackMapping& m);
// `vvctl cluster drain NODE`: every pack whose primary is NODE swaps with its secondary, which
// must be live and not drained (a pack with a pool and no secondary takes its first live,
// undrained pool server as primary instead); a pack with neither is refused, naming it. NODE
// also leaves every pool: its pool entries go, and so does its place as the secondary of a pack
// that still has a pool (every server of a pool takes requests by load; the pool's servers are
// the pack's alternates). The secondary of a pack without a pool stays: it takes requests only
// when the primary fails.
Result<std::vector<Change>> plan_drain(const ClusterView& view, const std::string& node);
// `vvctl pack chmod NAME MODE` and `vvctl pack chown NAME USER[:GROUP]`.
Result<Change> plan_chmod(const ClusterView& view, const std::string& pack, mode_t perms);
Result<Change> plan_chown(const ClusterView& view, const std::string& pack, uid_t owner,
                          std::optional<gid_t> group);

}  // namespace vvm::cluster
