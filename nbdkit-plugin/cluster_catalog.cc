// cluster_catalog.cc: the plugin's packs from the mappings in etcd (cluster_catalog.h).
#include "cluster_catalog.h"

#include <fmt/core.h>
#include <netdb.h>
#include <sys/socket.h>

#include <array>
#include <ctime>
#include <utility>

#include "pack_export.h"

namespace vvm::plugin {

const cluster::DiskRef* own_copy(const cluster::PackMapping& m, std::string_view node) {
  if (m.primary.node == node) return &m.primary;
  if (m.secondary && m.secondary->node == node) return &*m.secondary;
  for (const cluster::DiskRef& d : m.pool) {
    if (d.node == node) return &d;
  }
  return nullptr;
}

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
    const cluster::DiskRef* mine = own_copy(m, node);
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

NodeRoutes node_routes(const std::vector<cluster::PackMapping>& mappings, const std::string& node,
                       const std::map<std::string, cluster::NodeRecord>& known,
                       const std::set<std::string>& present,
                       const std::vector<cluster::PathRecord>& paths, const std::string& prefix) {
  NodeRoutes out;
  for (const auto& m : mappings) {
    const bool mine = own_copy(m, node) != nullptr;
    const std::string key = cluster::pack_key(prefix, m.name);
    Route r;
    r.pack = m.name;
    r.epoch = m.epoch;
    r.entry.name = m.name;
    r.entry.offset = m.offset;
    r.entry.size = m.size;
    r.entry.mode = m.mode;
    r.entry.owner = m.owner;
    r.entry.group = m.group;
    r.entry.perms = m.perms;
    r.pool = !m.pool.empty();
    std::vector<const cluster::DiskRef*> refs = {&m.primary};
    if (m.secondary) refs.push_back(&*m.secondary);
    for (const cluster::DiskRef& d : m.pool) refs.push_back(&d);
    for (const cluster::DiskRef* ref : refs) {
      if (ref->node == node) continue;  // this node's own copy: not a server to forward to
      auto n = known.find(ref->node);
      if (n == known.end()) {
        out.problems.push_back(Status::NotFound(
            fmt::format("etcd key {}: node {} is not registered (no key {}): pack '{}' is not "
                        "forwarded to it",
                        key, ref->node, cluster::node_key(prefix, ref->node), m.name)));
        continue;
      }
      if (n->second.disks.count(ref->disk) == 0) {
        out.problems.push_back(Status::NotFound(
            fmt::format("etcd key {}: disk '{}' is not one of node {}'s disks: pack '{}' is not "
                        "forwarded to it",
                        key, ref->disk, ref->node, m.name)));
        continue;
      }
      Route::Server server;
      server.node = ref->node;
      server.uri =
          fmt::format("nbd://{}/{}{}{}", n->second.address, kPackPrefix, m.name, kLocalSuffix);
      if (present.count(ref->node) == 0) {
        server.down = fmt::format("node {} has left the cluster (its key {} is gone)", ref->node,
                                  cluster::node_key(prefix, ref->node));
      } else {
        for (const auto& p : paths) {
          if (p.pack == m.name && p.node == ref->node) {
            server.down = fmt::format("its path to the disk is down ({}): {}",
                                      cluster::path_key(prefix, p.pack, p.node), p.reason);
          }
        }
      }
      r.servers.push_back(std::move(server));
    }
    if (mine) {
      if (!r.servers.empty()) out.fallbacks.push_back(std::move(r));
      continue;
    }
    if (r.servers.empty()) {
      out.problems.push_back(Status::NotFound(fmt::format(
          "etcd key {}: no registered node serves pack '{}': not served here", key, m.name)));
      continue;
    }
    out.routes.push_back(std::move(r));
  }
  return out;
}

ClusterCatalog::ClusterCatalog(const Config& config, CatalogSource* target, Hooks hooks)
    : cluster_(*config.cluster), target_(target), hooks_(std::move(hooks)) {}

Result<std::unique_ptr<ClusterCatalog>> ClusterCatalog::start(const Config& config,
                                                              CatalogSource* target, Hooks hooks) {
  auto etcd_options = cluster::etcd_options(config);
  if (!etcd_options.ok()) return etcd_options.status();
  auto membership = cluster::membership_options(config);
  if (!membership.ok()) return membership.status();
  std::unique_ptr<ClusterCatalog> c(new ClusterCatalog(config, target, std::move(hooks)));
  if (!c->hooks_.log) c->hooks_.log = [](bool, const std::string&) {};
  auto etcd = cluster::EtcdClient::create(*etcd_options);
  if (!etcd.ok()) return etcd.status();
  c->etcd_ = std::move(*etcd);

  c->membership_options_ = *membership;
  auto joined = c->join();
  if (!joined.ok()) return joined.status();
  c->memberships_.push_back(std::move(*joined));
  c->member_.store(c->memberships_.back().get(), std::memory_order_release);
  c->hooks_.log(false,
                fmt::format("joined the cluster as {} (lease {:x}, TTL {}s)", c->member().key(),
                            c->member().lease_id(), c->cluster_.lease_ttl.count()));

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
  memberships_.clear();  // the current one leaves: its key goes at once
}

Result<std::unique_ptr<cluster::Membership>> ClusterCatalog::join() {
  return cluster::Membership::join(
      membership_options_,
      [this](const Status& why) {
        hooks_.log(true, fmt::format("cluster membership lost: {}; writes are refused from now "
                                     "on (self-fencing), until a renewal finds the lease still "
                                     "in etcd, or the node has joined again if etcd dropped it",
                                     why.message()));
      },
      [this] {
        hooks_.log(true,
                   "cluster membership back: etcd still had this node's lease; "
                   "writes are served again");
      },
      [this] {
        std::lock_guard lock(mu_);
        rejoin_wanted_ = true;
        cv_.notify_all();
      });
}

bool ClusterCatalog::rejoin() {
  const cluster::Membership& old = member();
  hooks_.log(true, fmt::format("rejoining the cluster: etcd dropped lease {:x} of {}; joining "
                               "with a new lease (writes stay refused until the mapping is "
                               "read anew)",
                               old.lease_id(), old.key()));
  auto joined = join();
  if (!joined.ok()) {
    hooks_.log(true, fmt::format("rejoining the cluster: cannot join yet (trying again in a "
                                 "second): {}",
                                 joined.status().message()));
    return false;
  }
  const cluster::Membership& m = **joined;
  hooks_.log(false, fmt::format("rejoining the cluster: {} registered again (lease {:x}) at etcd "
                                "revision {}; reading the cluster's state",
                                m.key(), m.lease_id(), m.revision()));
  // The fence: the mapping served from now on is one read at the new key's revision or later,
  // so it holds every change the other nodes made while this one was away (the secondary's
  // takeover, a move). Until it is published, writes stay refused.
  auto revision = reload();
  if (!revision.ok() || *revision < m.revision()) {
    hooks_.log(true, fmt::format("rejoining the cluster: cannot read the cluster's state {} "
                                 "(trying again in a second): {}",
                                 revision.ok() ? "past the new key" : "",
                                 revision.ok() ? fmt::format("read at revision {} < {}", *revision,
                                                             m.revision())
                                               : revision.status().message()));
    return false;  // the new membership leaves (its key goes) and the next try makes another
  }
  // Before the connections count as new: a hold the hook forgets is one of a connection that
  // may no longer write, and one taken after it is bound to the new lease.
  if (hooks_.rejoined) hooks_.rejoined(m.lease_id());
  // Connections opened before now were opened under the old mapping: no write from them.
  incarnation_.fetch_add(1, std::memory_order_acq_rel);
  memberships_.push_back(std::move(*joined));
  member_.store(memberships_.back().get(), std::memory_order_release);
  hooks_.log(true, fmt::format("rejoined the cluster as {} (lease {:x}): serving the mapping of "
                               "etcd revision {}; writes are served again (not to connections "
                               "opened before)",
                               member().key(), member().lease_id(), *revision));
  return true;
}

bool ClusterCatalog::fenced() const {
  const cluster::Membership& m = member();
  return m.lost() || std::chrono::steady_clock::now() >= m.valid_until();
}

std::optional<Route> ClusterCatalog::route(std::string_view pack) const {
  std::lock_guard lock(view_m_);
  auto it = routes_.find(pack);
  if (it == routes_.end()) return std::nullopt;
  return it->second;
}

bool ClusterCatalog::has_alternate(std::string_view pack) const {
  std::lock_guard lock(view_m_);
  return alternates_.find(pack) != alternates_.end();
}

std::string ClusterCatalog::advertised_host(const std::string& address) {
  std::string host = address.substr(0, address.rfind(':'));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

namespace {

// The numeric addresses `address`'s host stands for (one, for a numeric host).
std::vector<std::string> numeric_hosts(const std::string& address) {
  std::vector<std::string> out;
  const std::string host = ClusterCatalog::advertised_host(address);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return out;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[NI_MAXHOST] = {};
    if (::getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) ==
        0) {
      out.emplace_back(text);
    }
  }
  ::freeaddrinfo(found);
  return out;
}

std::map<std::string, std::string> hosts_of(const std::vector<cluster::NodeRecord>& nodes) {
  std::map<std::string, std::string> out;
  for (const auto& n : nodes) {
    for (const auto& h : numeric_hosts(n.address)) out[h] = n.name;
  }
  return out;
}

}  // namespace

std::string ClusterCatalog::node_at(const std::string& host) {
  {
    std::lock_guard lock(view_m_);
    if (auto it = node_hosts_.find(host); it != node_hosts_.end()) return it->second;
  }
  auto nodes = cluster::list_nodes(*etcd_, cluster_.prefix);
  if (!nodes.ok()) return {};
  std::vector<cluster::NodeRecord> live;
  for (const auto& item : nodes->items) live.push_back(item.record);
  auto hosts = hosts_of(live);
  auto it = hosts.find(host);
  return it == hosts.end() ? std::string() : it->second;
}

bool ClusterCatalog::path_down(std::string_view pack) {
  if (paths_count_.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard lock(paths_m_);
  auto it = paths_.find(std::string(pack));
  return it != paths_.end() && !it->second.working;
}

void ClusterCatalog::path_failed(const std::string& pack, const std::string& reason) {
  {
    std::lock_guard lock(paths_m_);
    auto [it, added] = paths_.try_emplace(pack);
    if (!added) return;
    paths_count_.fetch_add(1);
    it->second.reason = reason;
    it->second.since = static_cast<uint64_t>(::time(nullptr));
    it->second.next_probe = std::chrono::steady_clock::now() + it->second.interval;
  }
  std::lock_guard lock(mu_);
  paths_wanted_ = true;
  cv_.notify_all();
}

Result<int64_t> ClusterCatalog::reload() {
  const std::lock_guard serial(reload_mu_);
  auto state = cluster::read_state(*etcd_, cluster_.prefix);
  if (!state.ok()) return state.status();
  const Log& log = hooks_.log;
  for (const auto& p : state->nodes.problems) log(true, p.message() + " (node ignored)");
  for (const auto& p : state->packs.problems) log(true, p.message() + " (not served)");
  for (const auto& p : state->paths.problems) log(true, p.message() + " (path record ignored)");

  // Membership: who is here now, who has gone, who came back.
  std::set<std::string> present;
  for (const auto& item : state->nodes.items) {
    present.insert(item.record.name);
    known_[item.record.name] = item.record;
  }
  if (!first_read_) {
    for (const auto& name : present_) {
      if (present.count(name) == 0) {
        log(true, fmt::format("node {} has left the cluster (its key {} is gone: its lease "
                              "expired or it left); its packs are served by their other nodes",
                              name, cluster::node_key(cluster_.prefix, name)));
      }
    }
    for (const auto& name : present) {
      if (present_.count(name) == 0) log(false, fmt::format("node {} is in the cluster", name));
    }
  }
  first_read_ = false;
  present_ = present;

  std::vector<cluster::PackMapping> mappings;
  for (auto& item : state->packs.items) mappings.push_back(std::move(item.record));
  std::vector<cluster::PathRecord> paths;
  for (auto& item : state->paths.items) paths.push_back(std::move(item.record));

  std::vector<cluster::NodeRecord> live;
  for (const auto& item : state->nodes.items) live.push_back(item.record);
  std::map<std::string, std::string> node_hosts = hosts_of(live);

  NodeCatalog built = node_catalog(mappings, cluster_.node, cluster_.disks, cluster_.prefix);
  for (const auto& p : built.problems) log(true, p.message() + " (not served)");
  NodeRoutes routed =
      node_routes(mappings, cluster_.node, known_, present_, paths, cluster_.prefix);
  for (const auto& p : routed.problems) log(true, p.message());
  {
    std::lock_guard lock(view_m_);
    routes_.clear();
    for (const auto& r : routed.routes) routes_.emplace(r.pack, r);
    alternates_.clear();
    local_disks_.clear();
    node_hosts_ = std::move(node_hosts);
    for (const auto& m : mappings) {
      if (m.secondary || !m.pool.empty()) alternates_.insert(m.name);
      if (const cluster::DiskRef* d = own_copy(m, cluster_.node)) local_disks_[m.name] = d->disk;
    }
  }
  const size_t packs = built.catalog.exports().size() / 2;
  target_->publish(std::make_shared<const PackCatalog>(std::move(built.catalog)));
  if (hooks_.routes) hooks_.routes(routed.routes);
  if (hooks_.fallbacks) hooks_.fallbacks(routed.fallbacks);
  log(false, fmt::format("cluster state read at etcd revision {}: serving {} pack{} from this "
                         "node's disks, forwarding {}",
                         state->revision, packs, packs == 1 ? "" : "s", routed.routes.size()));
  return state->revision;
}

void ClusterCatalog::start_watch(int64_t from_revision) {
  // One watch on the whole prefix; only the nodes, mappings and paths matter here.
  const std::string prefix = cluster_.prefix;
  const std::array<std::string, 3> watched = {
      cluster::node_prefix(prefix), cluster::pack_prefix(prefix), cluster::path_prefix(prefix)};
  // The watch has a connection of its own, to the same endpoints.
  cluster::EtcdOptions options = etcd_->options();
  auto watch = cluster::EtcdWatch::start(
      options, {prefix, cluster::prefix_end(prefix), from_revision},
      [this, watched](const cluster::WatchBatch& batch) {
        std::lock_guard lock(mu_);
        if (batch.events.empty()) {  // the watch is in place (again)
          if (std::exchange(watch_down_, false)) {
            hooks_.log(false, "watching the pack mappings again");
          }
          return;
        }
        for (const auto& e : batch.events) {
          for (const auto& w : watched) {
            if (e.kv.key.starts_with(w)) reload_wanted_ = true;
          }
        }
        if (reload_wanted_) cv_.notify_all();
      },
      [this](const cluster::WatchError& e) {
        std::lock_guard lock(mu_);
        // An etcd that is down fails the watch every few seconds: said once, until it is back.
        const bool first = !std::exchange(watch_down_, true);
        hooks_.log(first || e.compact_revision != 0,
                   fmt::format("watching the pack mappings: {}{}", e.status.message(),
                               first && e.compact_revision == 0
                                   ? " (retrying; serving the mappings read last)"
                                   : ""));
        // The watch carries on by itself; a reload when it is back catches up with anything
        // its resumption could not replay.
        if (e.compact_revision == 0) return;
        restart_wanted_ = true;
        cv_.notify_all();
      });
  if (!watch.ok()) {
    hooks_.log(true, fmt::format("cannot watch the pack mappings: {}", watch.status().message()));
    return;
  }
  watch_ = std::move(*watch);
}

std::chrono::steady_clock::time_point ClusterCatalog::tend_paths() {
  using Clock = std::chrono::steady_clock;
  const auto now = Clock::now();
  auto next = now + std::chrono::seconds(1);
  std::vector<std::pair<std::string, PathDown>> work;
  {
    std::lock_guard lock(paths_m_);
    for (const auto& [pack, p] : paths_) work.emplace_back(pack, p);
  }
  if (work.empty()) return next;
  std::shared_ptr<const PackCatalog> catalog = target_->current().catalog;
  for (auto& [pack, p] : work) {
    std::string disk;
    {
      std::lock_guard lock(view_m_);
      if (auto it = local_disks_.find(pack); it != local_disks_.end()) disk = it->second;
    }
    const std::string key = cluster::path_key(cluster_.prefix, pack, cluster_.node);
    auto info = catalog->find(std::string(kPackPrefix) + pack);
    if (!p.working && (!info.ok() || disk.empty())) p.working = true;  // no longer served here
    if (!p.recorded && !p.working) {
      cluster::PathRecord rec{pack, cluster_.node, disk, p.reason, p.since};
      auto put = etcd_->put(key, cluster::encode_path(rec), lease_id());
      if (put.ok()) {
        p.recorded = true;
        hooks_.log(true, fmt::format("pack/{}: the path to disk '{}' failed ({}): marked down in "
                                     "etcd ({}); probing it",
                                     pack, disk, p.reason, key));
      } else {
        hooks_.log(false, fmt::format("pack/{}: cannot mark the path down in etcd yet: {}", pack,
                                      put.status().message()));
      }
    }
    if (!p.working && now >= p.next_probe) {
      // A probe: the pack's first block, read through the data path (and its test fault hook).
      auto pack_export = PackExport::open(**info, /*server_read_only=*/true);
      bool works = false;
      if (pack_export.ok()) {
        std::vector<char> block(std::min<uint64_t>(4096, (*info)->pack.size));
        works = (*pack_export)->read(block.data(), static_cast<uint32_t>(block.size()), 0).ok();
      }
      if (works) {
        p.working = true;
      } else {
        p.interval = std::min(p.interval * 2, kMaxProbeInterval);
        p.next_probe = now + p.interval;
      }
    }
    if (p.working) {
      auto erased = p.recorded ? etcd_->erase(key) : Result<int64_t>(int64_t{0});
      if (erased.ok()) {
        hooks_.log(true, fmt::format("pack/{}: the path to disk '{}' works again: marked up in "
                                     "etcd ({} deleted)",
                                     pack, disk, key));
        std::lock_guard lock(paths_m_);
        if (paths_.erase(pack) != 0) paths_count_.fetch_sub(1);
        continue;
      }
      hooks_.log(false, fmt::format("pack/{}: cannot mark the path up in etcd yet: {}", pack,
                                    erased.status().message()));
    }
    {
      std::lock_guard lock(paths_m_);
      if (auto it = paths_.find(pack); it != paths_.end()) it->second = p;
    }
    if (!p.working) next = std::min(next, p.next_probe);
  }
  return next;
}

void ClusterCatalog::tick_soon() {
  {
    const std::lock_guard lock(mu_);
    tick_wanted_ = true;
  }
  cv_.notify_all();
}

void ClusterCatalog::worker() {
  std::unique_lock lock(mu_);
  auto next_tick = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (;;) {
    cv_.wait_until(lock, next_tick, [&] {
      return stopping_ || reload_wanted_ || restart_wanted_ || paths_wanted_ || tick_wanted_ ||
             rejoin_wanted_;
    });
    if (stopping_) return;
    if (rejoin_wanted_) {
      lock.unlock();
      const bool done = rejoin();
      lock.lock();
      if (done) {
        rejoin_wanted_ = false;
      } else {
        // The paths and the tick wait too: the node is fenced meanwhile.
        cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
        continue;
      }
    }
    const bool restart = std::exchange(restart_wanted_, false);
    const bool read = std::exchange(reload_wanted_, false) || restart;
    paths_wanted_ = false;
    tick_wanted_ = false;
    lock.unlock();
    if (read) {
      if (restart) watch_.reset();  // it has ended: etcd compacted past its revision
      auto revision = reload();
      if (!revision.ok()) {
        hooks_.log(true, fmt::format("cannot read the cluster's state (still serving the last "
                                     "one read): {}",
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
    }
    next_tick = tend_paths();
    if (hooks_.tick) hooks_.tick();
    lock.lock();
  }
}

}  // namespace vvm::plugin
