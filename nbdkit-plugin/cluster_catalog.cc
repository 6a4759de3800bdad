// cluster_catalog.cc: the plugin's packs from the mappings in etcd (cluster_catalog.h).
#include "cluster_catalog.h"

#include <fmt/core.h>

#include <utility>

namespace vvm::plugin {

NodeCatalog node_catalog(const std::vector<cluster::PackMapping>& mappings, const std::string& node,
                         const std::map<std::string, std::string>& disks,
                         const std::string& prefix) {
  NodeCatalog out;
  struct Candidate {
    PackEntry entry;
    std::string key;
  };
  std::vector<Candidate> candidates;
  for (const auto& m : mappings) {
    const cluster::DiskRef* mine = m.primary.node == node                     ? &m.primary
                                   : m.secondary && m.secondary->node == node ? &*m.secondary
                                                                              : nullptr;
    if (mine == nullptr) continue;
    const std::string key = cluster::pack_key(prefix, m.name);
    auto disk = disks.find(mine->disk);
    if (disk == disks.end()) {
      std::string have;
      for (const auto& [name, path] : disks) have += (have.empty() ? "" : ", ") + name;
      out.problems.push_back(Status::NotFound(fmt::format(
          "etcd key {}: disk '{}' of node {} is not one of this node's disks ([cluster] disk "
          "gives: {})",
          key, mine->disk, node, have.empty() ? "none" : have)));
      continue;
    }
    PackEntry e;
    e.name = m.name;
    e.backing = disk->second;
    e.offset = m.offset;
    e.size = m.size;
    e.mode = m.mode;
    e.owner = m.owner;
    e.group = m.group;
    e.perms = m.perms;
    candidates.push_back({std::move(e), key});
  }
  PackTable table;
  table.path = "etcd " + cluster::pack_prefix(prefix);
  for (const auto& c : candidates) table.packs.push_back(c.entry);
  if (auto whole = PackCatalog::create(table); whole.ok()) {
    out.catalog = std::move(*whole);
    return out;
  }
  // Some pack cannot be served (its backing is missing or short, it overlaps another): take them
  // one at a time, leaving out each that spoils the table.
  PackTable good;
  good.path = table.path;
  for (const auto& c : candidates) {
    PackTable trial = good;
    trial.path = "etcd key " + c.key;
    trial.packs.push_back(c.entry);
    if (Status s = check_backings(trial); !s.ok()) {
      out.problems.push_back(s);
      continue;
    }
    good.packs.push_back(c.entry);
  }
  auto catalog = PackCatalog::create(good);
  if (catalog.ok()) {
    out.catalog = std::move(*catalog);
  } else {
    out.problems.push_back(catalog.status());
  }
  return out;
}

ClusterCatalog::ClusterCatalog(const Config& config, CatalogSource* target, Log log)
    : cluster_(*config.cluster), target_(target), log_(std::move(log)) {}

Result<std::unique_ptr<ClusterCatalog>> ClusterCatalog::start(const Config& config,
                                                              CatalogSource* target, Log log) {
  auto etcd_options = cluster::etcd_options(config);
  if (!etcd_options.ok()) return etcd_options.status();
  auto membership = cluster::membership_options(config);
  if (!membership.ok()) return membership.status();
  std::unique_ptr<ClusterCatalog> c(new ClusterCatalog(config, target, std::move(log)));
  auto etcd = cluster::EtcdClient::create(*etcd_options);
  if (!etcd.ok()) return etcd.status();
  c->etcd_ = std::move(*etcd);

  auto joined = cluster::Membership::join(*membership, [raw = c.get()](const Status& why) {
    raw->log_(true, fmt::format("cluster membership lost: {}; writes are refused from now on "
                                "(self-fencing): restart the node to join again",
                                why.message()));
  });
  if (!joined.ok()) return joined.status();
  c->membership_ = std::move(*joined);
  c->log_(false,
          fmt::format("joined the cluster as {} (lease {:x}, TTL {}s)", c->membership_->key(),
                      c->membership_->lease_id(), c->cluster_.lease_ttl.count()));

  auto revision = c->reload();
  if (!revision.ok()) return revision.status();
  c->start_watch(*revision + 1);
  c->thread_ = std::thread([raw = c.get()] { raw->worker(); });
  return c;
}

ClusterCatalog::~ClusterCatalog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  watch_.reset();
  membership_.reset();
}

bool ClusterCatalog::fenced() const {
  return membership_->lost() || std::chrono::steady_clock::now() >= membership_->valid_until();
}

Result<int64_t> ClusterCatalog::reload() {
  const std::lock_guard serial(reload_mu_);
  auto listed = cluster::list_packs(*etcd_, cluster_.prefix);
  if (!listed.ok()) return listed.status();
  std::vector<cluster::PackMapping> mappings;
  for (auto& item : listed->items) mappings.push_back(std::move(item.record));
  NodeCatalog built = node_catalog(mappings, cluster_.node, cluster_.disks, cluster_.prefix);
  for (const auto& p : listed->problems) log_(true, p.message() + " (not served)");
  for (const auto& p : built.problems) log_(true, p.message() + " (not served)");
  const size_t packs = built.catalog.exports().size() / 2;
  target_->publish(std::make_shared<const PackCatalog>(std::move(built.catalog)));
  log_(false, fmt::format("pack mappings read at etcd revision {}: serving {} pack{}",
                          listed->revision, packs, packs == 1 ? "" : "s"));
  return listed->revision;
}

void ClusterCatalog::start_watch(int64_t from_revision) {
  const std::string prefix = cluster::pack_prefix(cluster_.prefix);
  // The watch has a connection of its own, to the same endpoints.
  cluster::EtcdOptions options = etcd_->options();
  auto watch = cluster::EtcdWatch::start(
      options, {prefix, cluster::prefix_end(prefix), from_revision},
      [this](const cluster::WatchBatch& batch) {
        std::lock_guard lock(mu_);
        if (batch.events.empty()) {  // the watch is in place (again)
          if (std::exchange(watch_down_, false)) log_(false, "watching the pack mappings again");
          return;
        }
        reload_wanted_ = true;
        cv_.notify_all();
      },
      [this](const cluster::WatchError& e) {
        std::lock_guard lock(mu_);
        // An etcd that is down fails the watch every few seconds: said once, until it is back.
        const bool first = !std::exchange(watch_down_, true);
        log_(first || e.compact_revision != 0,
             fmt::format("watching the pack mappings: {}{}", e.status.message(),
                         first && e.compact_revision == 0
                             ? " (retrying; serving the mappings read last)"
                             : ""));
        if (e.compact_revision == 0) return;  // the watch carries on by itself
        restart_wanted_ = true;
        cv_.notify_all();
      });
  if (!watch.ok()) {
    log_(true, fmt::format("cannot watch the pack mappings: {}", watch.status().message()));
    return;
  }
  watch_ = std::move(*watch);
}

void ClusterCatalog::worker() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || reload_wanted_ || restart_wanted_; });
    if (stopping_) return;
    const bool restart = std::exchange(restart_wanted_, false);
    reload_wanted_ = false;
    lock.unlock();
    if (restart) watch_.reset();  // it has ended: etcd compacted past its revision
    auto revision = reload();
    if (!revision.ok()) {
      log_(true, fmt::format("cannot read the pack mappings (still serving the last ones): {}",
                             revision.status().message()));
    }
    if (restart || !watch_) {
      // Without a fresh read to start from, a watch from the old revision would fail again.
      if (revision.ok()) {
        start_watch(*revision + 1);
      } else {
        lock.lock();
        restart_wanted_ = true;
        cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
        continue;
      }
    }
    lock.lock();
  }
}

}  // namespace vvm::plugin
