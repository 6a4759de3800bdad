// cluster_catalog.h: the plugin in cluster mode (vvm.conf has a [cluster] section naming this
// node): the node joins the cluster (cluster/membership.h), reads the packs' mappings from etcd,
// and serves, from its own disks, the packs whose primary or secondary is this node. A watch on
// the mappings publishes a new catalog into the plugin's CatalogSource at every change, so new
// connections and listings see it at once; open connections keep the pack they opened.
//
// A mapping this node cannot serve (a disk its [cluster] section does not list, a backing that is
// missing or too short, garbage under the prefix) is left out and reported, naming the key and
// the reason; the other packs are served as before. While etcd cannot be reached the node keeps
// serving the catalog it has, and catches up when the watch is back.
//
// Self-fencing: once the membership lease is lost, or no renewal has succeeded in time (see
// membership.h), fenced() is true and the plugin refuses writes (ESHUTDOWN, NBD's "go to the
// alternate") while still serving reads; another node may take the disks over after the TTL.
// The node does not join again by itself: restart it.
//
// Not here yet: forwarding to the node that holds a pack, cluster-wide exclusive holds.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
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

// The catalog of the packs `node` serves among `mappings` (those whose primary or secondary is
// `node`), each on the disk of `disks` (name -> path) its mapping names; a problem, naming the
// pack's key, for each one left out. `prefix` makes the keys for messages.
struct NodeCatalog {
  PackCatalog catalog;
  std::vector<Status> problems;
};
NodeCatalog node_catalog(const std::vector<cluster::PackMapping>& mappings, const std::string& node,
                         const std::map<std::string, std::string>& disks,
                         const std::string& prefix);

class ClusterCatalog {
 public:
  // error: a problem (an nbdkit_error); otherwise news for the debug log.
  using Log = std::function<void(bool error, const std::string& message)>;

  // Joins the cluster as `config`'s [cluster] says, publishes the first catalog into `target`
  // and starts watching the mappings. Fails when the node cannot join (its name is held, etcd
  // is down) or the mappings cannot be read.
  static Result<std::unique_ptr<ClusterCatalog>> start(const Config& config, CatalogSource* target,
                                                       Log log);
  ~ClusterCatalog();  // stops the watch, leaves the cluster (the node key goes at once)

  // True once this node may no longer write: its lease is lost or past its renewal deadline.
  bool fenced() const;
  // Reads the mappings and serves them now (a reconfiguration's resume, reconf_gate.h).
  Status reload_now() { return reload().status(); }
  // The membership lease, which cluster-wide holds are bound to (cluster_holds.h).
  int64_t lease_id() const { return membership_->lease_id(); }
  ClusterCatalog(const ClusterCatalog&) = delete;
  ClusterCatalog& operator=(const ClusterCatalog&) = delete;

 private:
  ClusterCatalog(const Config& config, CatalogSource* target, Log log);
  // Reads every mapping and publishes the catalog; the revision read, or the error.
  Result<int64_t> reload();
  void start_watch(int64_t from_revision);
  void worker();

  ClusterConfig cluster_;
  CatalogSource* target_;
  Log log_;
  std::unique_ptr<cluster::EtcdClient> etcd_;
  std::unique_ptr<cluster::Membership> membership_;
  std::unique_ptr<cluster::EtcdWatch> watch_;

  // The watch's callbacks only ask; the worker thread reads etcd and restarts the watch.
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool reload_wanted_ = false;
  bool restart_wanted_ = false;
  bool watch_down_ = false;  // its loss was logged: the next losses go to the debug log
  // One reload at a time (the worker's and a reconfiguration's): catalogs are published in the
  // order they were read, so an older one never replaces a newer.
  std::mutex reload_mu_;
  std::thread thread_;
};

}  // namespace vvm::plugin
