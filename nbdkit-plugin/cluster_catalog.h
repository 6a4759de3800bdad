// cluster_catalog.h: the plugin in cluster mode (vvm.conf has a [cluster] section naming this
// node): the node joins the cluster (cluster/membership.h), reads the cluster's state from etcd
// (nodes, pack mappings, paths down: cluster/records.h) and serves every mapped pack:
//   - from its own disk when the pack's primary or secondary is this node: a watch publishes a
//     new catalog into the plugin's CatalogSource at every change, so new connections and
//     listings see it at once; open connections keep the pack they opened;
//   - otherwise by forwarding (forward/forwarder.h) to the primary's advertised address, then the
//     secondary's: the routes, handed to the plugin after every change, with each server's known
//     state (down when its node key is gone, its lease expired, or its path to the pack's disk is
//     marked down in etcd).
// A node reaches another node's copy of a pack by the export name pack/NAME@local
// (kLocalSuffix): served only from the receiving node's own disk, never forwarded again, so that
// two nodes whose views of a mapping differ for a moment cannot forward a request in a loop.
//
// A mapping this node cannot serve (a disk its [cluster] section does not list, a backing that is
// missing or too short, a node nobody registered, garbage under the prefix) is left out and
// reported, naming the key and the reason; the other packs are served as before. While etcd
// cannot be reached the node keeps serving and forwarding with the state it has, and catches up
// when the watch is back.
//
// Path failures: when a local pack's backing fails (EIO), the plugin calls path_failed(); the node
// records PREFIX/path/PACK/NODE in etcd under its lease and probes the path (a read of the pack's
// first block) every second, then less often (up to kMaxProbeInterval); when a probe works it
// deletes the key, and the other nodes send the pack's requests to it again.
//
// Self-fencing: once the membership lease is lost, or no renewal has succeeded in time (see
// membership.h), fenced() is true and the plugin writes nothing to the node's disks: it refuses
// writes (ESHUTDOWN, NBD's "go to the alternate"), or sends its own clients' to the pack's other
// servers when it has some (the plugin's serve_local), while still serving reads; another node
// may take the disks over after the TTL.
//
// Rejoining: when etcd says the lease is gone (the node was stopped or cut off past its TTL, and
// the other nodes have served its packs meanwhile, maybe under a new mapping), the worker joins
// again: a new lease and node key (retried every second while etcd or the name refuses), then
// the whole state read anew, at a revision no older than the new key's, and published; only then
// is the node unfenced. Connections opened before that keep being refused writes
// (incarnation()), those it forwards too: they were opened under the old mapping, and their
// cluster-wide holds went with the old lease (pack_holds.h, HoldRegistry::rejoined); their
// clients connect again and get the new mapping, and the hold again if no other node's client
// took it meanwhile. Each step is logged.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "catalog_source.h"
#include "cluster/etcd_client.h"
#include "cluster/etcd_watch.h"
#include "cluster/membership.h"
#include "cluster/records.h"
#include "common/config.h"
#include "common/status.h"
#include "pack_catalog.h"

namespace vvm::plugin {

// Where `node` has a copy of pack `m`: the primary, the secondary or a disk of the pool naming
// it, or null.
const cluster::DiskRef* own_copy(const cluster::PackMapping& m, std::string_view node);

// The catalog of the packs `node` serves among `mappings` (those whose primary, secondary or pool
// names `node`), each on the disk of `disks` (name -> path) its mapping names; a problem, naming
// the pack's key, for each one left out. `prefix` makes the keys for messages.
struct NodeCatalog {
  PackCatalog catalog;
  std::vector<Status> problems;
};
NodeCatalog node_catalog(const std::vector<cluster::PackMapping>& mappings, const std::string& node,
                         const std::map<std::string, std::string>& disks,
                         const std::string& prefix);

// The export-name suffix of a node-to-node connection (see the file comment).
inline constexpr std::string_view kLocalSuffix = "@local";

// A pack this node serves by forwarding: where its copies are, in order (primary, secondary).
struct Route {
  struct Server {
    std::string node;
    std::string uri;   // nbd://ADDRESS/pack/NAME@local
    std::string down;  // why it is known down ("" when it is not): no node key, path down
    bool operator==(const Server&) const = default;
  };
  std::string pack;
  PackEntry entry;  // mode, owner, group, permissions and size, as the mapping gives them
  uint64_t epoch = 0;
  std::vector<Server> servers;
  bool pool = false;  // the mapping has a pool: the servers are used by load, not in order
  bool operator==(const Route&) const = default;
};

// The routes of the packs in `mappings` that `node` does not serve itself (neither primary nor
// secondary), from the nodes' advertised addresses: `known` holds the last record seen of each
// node (also of nodes whose key has gone since), `present` the nodes whose key is there now,
// `paths` the paths marked down. A server whose node was never seen, or which does not have the
// mapping's disk, is left out, and a problem names the pack's key; a pack left with no server is
// not routed.
struct NodeRoutes {
  std::vector<Route> routes;
  // The packs `node` serves itself that another node serves too: that node (the pack's other
  // copy), where this node's own clients go while its path to the disk is down.
  std::vector<Route> fallbacks;
  std::vector<Status> problems;
};
NodeRoutes node_routes(const std::vector<cluster::PackMapping>& mappings, const std::string& node,
                       const std::map<std::string, cluster::NodeRecord>& known,
                       const std::set<std::string>& present,
                       const std::vector<cluster::PathRecord>& paths, const std::string& prefix);

class ClusterCatalog {
 public:
  // error: a problem (an nbdkit_error); otherwise news for the debug log.
  using Log = std::function<void(bool error, const std::string& message)>;
  // What the plugin does with the cluster's state, on the catalog's worker thread.
  struct Hooks {
    Log log;
    // The forwarded packs, after every change of the mappings, nodes or paths.
    std::function<void(const std::vector<Route>&)> routes;
    // The other servers of the packs served here (NodeRoutes::fallbacks), at the same times.
    std::function<void(const std::vector<Route>&)> fallbacks;
    // About once a second: time to retry what failed (a server to connect to again).
    std::function<void()> tick;
    // The node rejoined the cluster with this new membership lease (cluster-wide holds are
    // bound to it); called before incarnation() counts one more, so that connections opened
    // before the call are the ones refused writes.
    std::function<void(int64_t lease)> rejoined;
  };

  // Joins the cluster as `config`'s [cluster] says, publishes the first catalog into `target`,
  // hands the first routes to the hook and starts watching the prefix. Fails when the node
  // cannot join (its name is held, etcd is down) or the state cannot be read.
  static Result<std::unique_ptr<ClusterCatalog>> start(const Config& config, CatalogSource* target,
                                                       Hooks hooks);
  ~ClusterCatalog();  // stops the watch, leaves the cluster (the node key goes at once)

  // True once this node may no longer write: its lease is lost or past its renewal deadline,
  // until it has rejoined.
  bool fenced() const;
  // One more each time the node rejoins the cluster: a connection that opened under an older
  // one may not write.
  uint64_t incarnation() const { return incarnation_.load(std::memory_order_acquire); }
  // The route of a pack this node forwards, or nullopt.
  std::optional<Route> route(std::string_view pack) const;
  // Whether another node also serves `pack` (it has a secondary): its path failures answer the
  // NAK (ESHUTDOWN), so that forwarding nodes go there, rather than EIO.
  bool has_alternate(std::string_view pack) const;
  // The live node (its key is there) whose advertised host is `host`, a peer's numeric address
  // ("127.0.0.2"), or "" when none is. Asks etcd when the view knows none: a node that has just
  // joined may connect before the watch has told this one. Nodes, and only they, open the
  // node-to-node name pack/NAME@local (kLocalSuffix).
  std::string node_at(const std::string& host);
  // The host part of an advertised address "HOST:PORT" ("[::1]:10809" -> "::1").
  static std::string advertised_host(const std::string& address);

  // Whether this node's path to local pack `pack` is down (it failed, and no probe has found it
  // working since). Cheap when no path is down.
  bool path_down(std::string_view pack);
  // The backing of local pack `pack` failed (`reason`: the request and the error). Thread-safe
  // and cheap after the first call for a pack: the worker records it in etcd and probes.
  void path_failed(const std::string& pack, const std::string& reason);

  // The longest wait between two probes of a failed path.
  static constexpr std::chrono::seconds kMaxProbeInterval{8};

  // Runs the tick hook now rather than within the second (a forwarder a request wants opened,
  // which the request itself must not wait for). Cheap; thread-safe.
  void tick_soon();

  // Reads the mappings and serves them now (a reconfiguration's resume, reconf_gate.h).
  Status reload_now() { return reload().status(); }
  // The membership lease, which cluster-wide holds are bound to (cluster_holds.h).
  int64_t lease_id() const { return member().lease_id(); }
  ClusterCatalog(const ClusterCatalog&) = delete;
  ClusterCatalog& operator=(const ClusterCatalog&) = delete;

 private:
  ClusterCatalog(const Config& config, CatalogSource* target, Hooks hooks);
  const cluster::Membership& member() const { return *member_.load(std::memory_order_acquire); }
  // Registers the node (a new lease and key), calling back into this catalog.
  Result<std::unique_ptr<cluster::Membership>> join();
  // Joins again after etcd dropped the lease (the file comment); false to try again later.
  bool rejoin();
  // Reads the cluster's state, publishes the catalog and the routes; the revision read.
  Result<int64_t> reload();
  void start_watch(int64_t from_revision);
  void worker();
  // The worker's upkeep of this node's failed paths: records them in etcd, probes them, and
  // deletes their keys once they work. The next time it wants to run.
  std::chrono::steady_clock::time_point tend_paths();

  struct PathDown {
    std::string reason;
    uint64_t since = 0;
    bool recorded = false;  // its key is in etcd
    bool working = false;   // a probe found it working: its key is to be deleted
    std::chrono::seconds interval{1};
    std::chrono::steady_clock::time_point next_probe;
  };

  ClusterConfig cluster_;
  CatalogSource* target_;
  Hooks hooks_;
  std::unique_ptr<cluster::EtcdClient> etcd_;
  cluster::MembershipOptions membership_options_;
  // Every membership this node has had, the current one last (kept: the plugin's threads may
  // still be looking at an older one), and the current one for them to read.
  std::vector<std::unique_ptr<cluster::Membership>> memberships_;
  std::atomic<cluster::Membership*> member_{nullptr};
  std::atomic<uint64_t> incarnation_{0};
  std::unique_ptr<cluster::EtcdWatch> watch_;

  // The worker's view: the last record seen of each node, and which are present now.
  std::map<std::string, cluster::NodeRecord> known_;
  std::set<std::string> present_;
  bool first_read_ = true;

  // What the plugin's threads ask about, replaced at each reload.
  mutable std::mutex view_m_;
  std::map<std::string, Route, std::less<>> routes_;
  std::set<std::string, std::less<>> alternates_;
  std::map<std::string, std::string> local_disks_;  // local pack -> the disk it is on
  std::map<std::string, std::string> node_hosts_;   // a live node's numeric address -> its name

  std::mutex paths_m_;
  std::map<std::string, PathDown> paths_;  // this node's failed paths, by pack
  std::atomic<size_t> paths_count_{0};     // paths_.size(), read without the lock

  // The watch's callbacks only ask; the worker thread reads etcd and restarts the watch.
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool reload_wanted_ = false;
  bool restart_wanted_ = false;
  bool paths_wanted_ = false;
  bool tick_wanted_ = false;
  bool rejoin_wanted_ = false;  // etcd dropped the lease
  bool watch_down_ = false;     // its loss was logged: the next losses go to the debug log
  // One reload at a time (the worker's and a reconfiguration's): catalogs are published in the
  // order they were read, so an older one never replaces a newer.
  std::mutex reload_mu_;
  std::thread thread_;
};

}  // namespace vvm::plugin
