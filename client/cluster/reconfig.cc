// cluster/reconfig.cc: the reconfiguration barrier, command side, and the plans of the commands
// that change mappings (reconfig.h).
#include "cluster/reconfig.h"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>

#include "cluster/etcd_watch.h"

namespace vvm::cluster {

namespace {

using Clock = std::chrono::steady_clock;

uint64_t unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// A fresh id, unique enough for one cluster: the time and 32 random bits, in hex.
std::string new_id() {
  std::random_device rd;
  return fmt::format("{:x}-{:08x}", unix_ms(), rd());
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string packs_text(const std::vector<Change>& changes) {
  std::vector<std::string> names;
  for (const auto& c : changes) names.push_back(c.mapping.name);
  return (names.size() == 1 ? "pack " : "packs ") + join(names);
}

// What the watches tell the waiting command: something changed, look again.
struct Wakeup {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t events = 0;
  void poke() {
    {
      std::lock_guard lock(mu);
      ++events;
    }
    cv.notify_all();
  }
};

}  // namespace

Result<ReconfigReport> reconfigure(EtcdClient& etcd, const ReconfigOptions& options,
                                   const std::vector<Change>& changes,
                                   const std::vector<TxnOp>& also) {
  if (changes.empty()) return Status::InvalidArgument("a reconfiguration needs a pack to change");
  ReconfigReport report;
  report.id = new_id();
  const std::string what = packs_text(changes);

  // The intent lives on the command's lease: if the command dies, it goes a little after the
  // timeout, and the nodes resume.
  const auto timeout_s = std::chrono::ceil<std::chrono::seconds>(options.timeout).count();
  auto lease = etcd.lease_grant(timeout_s + 2);
  if (!lease.ok()) return lease.status();
  auto give_up = [&](Status why) -> Result<ReconfigReport> {
    (void)etcd.lease_revoke(lease->id);  // the intent and the acks go: the nodes resume
    return why;
  };

  ReconfIntent intent;
  intent.id = report.id;
  for (const auto& c : changes) {
    intent.packs.push_back(c.mapping.name);
    intent.mappings.push_back(c.mapping);
  }
  intent.by = options.by;
  // The nodes' own bound: a second after the command's, for clocks a little apart.
  intent.deadline_ms = unix_ms() + static_cast<uint64_t>(options.timeout.count()) + 1000;
  const std::string key = reconf_key(options.prefix, report.id);
  const std::string acks = ack_prefix(options.prefix, report.id);
  const std::string nodes = node_prefix(options.prefix);

  // Watches, not polling: an ack, or a node that comes or goes, wakes the command up. They are
  // in place before the intent is written, so that connecting them is not part of the pause.
  auto wake = std::make_shared<Wakeup>();
  auto on_events = [wake](const WatchBatch&) { wake->poke(); };
  auto on_error = [wake](const WatchError&) { wake->poke(); };
  auto ack_watch =
      EtcdWatch::start(etcd.options(), {acks, prefix_end(acks), 0}, on_events, on_error);
  if (!ack_watch.ok()) return give_up(ack_watch.status());
  auto node_watch =
      EtcdWatch::start(etcd.options(), {nodes, prefix_end(nodes), 0}, on_events, on_error);
  if (!node_watch.ok()) return give_up(node_watch.status());
  for (auto* w : {ack_watch->get(), node_watch->get()}) {
    if (Status s = w->wait_created(options.timeout); !s.ok()) return give_up(s);
  }

  const auto start = Clock::now();
  const auto give_up_at = start + options.timeout;
  Txn write;
  write.compares.push_back(Compare::absent(key));
  write.success.push_back(TxnOp::put(key, encode_intent(intent), lease->id));
  // The intent's key is named by a random id and bound to this command's lease: nobody else
  // deletes it, so a resend after a lost answer cannot create it twice.
  auto written = etcd.txn(write, TxnKeys::kOwn);
  if (!written.ok()) return give_up(written.status());
  if (!written->succeeded) return give_up(Status::Busy("etcd key " + key + " exists already"));
  const int64_t intent_revision = written->revision;

  std::vector<std::string> missing;
  auto last_progress = start;
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard lock(wake->mu);
      seen = wake->events;
    }
    auto members = list_nodes(etcd, options.prefix);
    if (!members.ok()) return give_up(members.status());
    auto acked = etcd.range_prefix(acks);
    if (!acked.ok()) return give_up(acked.status());
    std::set<std::string> have;
    for (const auto& kv : acked->kvs) have.insert(kv.key.substr(acks.size()));
    missing.clear();
    report.acked.clear();
    for (const auto& item : members->items) {
      (have.count(item.record.name) ? report.acked : missing).push_back(item.record.name);
    }
    if (missing.empty()) break;
    const auto now = Clock::now();
    if (now >= give_up_at) {
      return give_up(Status::Timeout(fmt::format(
          "reconfiguration of {}: node{} {} did not acknowledge within {} ms ({} of {} did); "
          "nothing changed and every node resumed",
          what, missing.size() == 1 ? "" : "s", join(missing), options.timeout.count(),
          report.acked.size(), report.acked.size() + missing.size())));
    }
    if (options.progress && now - last_progress >= std::chrono::seconds(1)) {
      last_progress = now;
      options.progress(fmt::format("waiting for {} ({} of {} nodes acknowledged)", join(missing),
                                   report.acked.size(), report.acked.size() + missing.size()));
    }
    std::unique_lock lock(wake->mu);
    wake->cv.wait_until(lock, std::min(give_up_at, now + std::chrono::milliseconds(250)),
                        [&] { return wake->events != seen; });
  }
  report.barrier = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  (*ack_watch)->stop();
  (*node_watch)->stop();
  if (Clock::now() >= give_up_at) {
    return give_up(Status::Timeout(
        fmt::format("reconfiguration of {}: the nodes acknowledged too late ({} ms, timeout {} "
                    "ms); nothing changed",
                    what, report.barrier.count() / 1000, options.timeout.count())));
  }

  Txn commit;
  commit.compares.push_back(
      {key, Compare::Target::kCreateRevision, Compare::Op::kEqual, intent_revision, {}, {}});
  for (const auto& c : changes) {
    const std::string pack = pack_key(options.prefix, c.mapping.name);
    commit.compares.push_back(Compare::unchanged(pack, c.mod_revision));
    commit.success.push_back(TxnOp::put(pack, encode_pack(c.mapping)));
  }
  for (const auto& op : also) commit.success.push_back(op);
  commit.success.push_back(TxnOp::erase(key));
  commit.success.push_back(TxnOp::erase(acks, prefix_end(acks)));
  auto committed = etcd.txn(commit);
  if (!committed.ok()) return give_up(committed.status());
  if (!committed->succeeded) {
    // Say which condition failed: the intent gone (its lease ended), or a mapping changed.
    auto still = etcd.get(key);
    if (still.ok() && !*still) {
      return give_up(Status::Busy(fmt::format(
          "reconfiguration of {}: its intent {} went before the commit (its lease ended); "
          "nothing changed",
          what, key)));
    }
    for (const auto& c : changes) {
      auto now = etcd.get(pack_key(options.prefix, c.mapping.name));
      if (now.ok() && (!*now || (*now)->mod_revision != c.mod_revision)) {
        return give_up(Status::Busy(fmt::format(
            "pack '{}': its mapping changed while it was being reconfigured (etcd key {}); "
            "nothing changed: run the command again",
            c.mapping.name, pack_key(options.prefix, c.mapping.name))));
      }
    }
    return give_up(
        Status::Busy(fmt::format("reconfiguration of {}: the commit was refused", what)));
  }
  report.revision = committed->revision;
  report.total = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  (void)etcd.lease_revoke(lease->id);  // nothing is left on it
  return report;
}

Result<ClusterView> read_view(EtcdClient& etcd, std::string_view prefix) {
  ClusterView view;
  auto nodes = list_nodes(etcd, prefix);
  if (!nodes.ok()) return nodes.status();
  for (auto& item : nodes->items) view.nodes[item.record.name] = std::move(item.record);
  auto drained = list_drained(etcd, prefix);
  if (!drained.ok()) return drained.status();
  for (const auto& item : drained->items) view.drained.insert(item.record.node);
  auto packs = list_packs(etcd, prefix);
  if (!packs.ok()) return packs.status();
  for (auto& item : packs->items) view.packs[item.record.name] = std::move(item);
  return view;
}

namespace {

Result<Change> change_of(const ClusterView& view, const std::string& pack) {
  auto it = view.packs.find(pack);
  if (it == view.packs.end()) {
    return Status::NotFound(
        fmt::format("pack '{}' is not mapped in etcd (see vvctl cluster map)", pack));
  }
  Change c{it->second.record, it->second.mod_revision};
  ++c.mapping.epoch;
  return c;
}

// NODE may take a pack on DISK: it is a member, not drained, and has the disk.
Status check_target(const ClusterView& view, const std::string& pack, const std::string& node,
                    const std::string& disk, std::string_view role) {
  auto it = view.nodes.find(node);
  if (it == view.nodes.end()) {
    std::vector<std::string> live;
    for (const auto& [name, n] : view.nodes) live.push_back(name);
    return Status::NotFound(fmt::format(
        "pack '{}': node {} cannot be its {}: it is not a live member of the cluster (live: {})",
        pack, node, role, live.empty() ? "none" : join(live)));
  }
  if (view.drained.count(node)) {
    return Status::Busy(
        fmt::format("pack '{}': node {} cannot be its {}: it is drained (vvctl cluster undrain {})",
                    pack, node, role, node));
  }
  if (it->second.disks.count(disk) == 0) {
    std::vector<std::string> have;
    for (const auto& [name, path] : it->second.disks) have.push_back(name);
    return Status::NotFound(
        fmt::format("pack '{}': node {} cannot be its {}: it has no disk '{}' (its disks: {})",
                    pack, node, role, disk, have.empty() ? "none" : join(have)));
  }
  return Status::Ok();
}

}  // namespace

Result<Change> plan_move(const ClusterView& view, const std::string& pack, const std::string& node,
                         const std::string& disk) {
  auto c = change_of(view, pack);
  if (!c.ok()) return c.status();
  PackMapping& m = c->mapping;
  if (m.primary.node == node && (disk.empty() || disk == m.primary.disk)) {
    return Status::AlreadyExists(
        fmt::format("pack '{}': node {} is its primary already", pack, node));
  }
  if (m.secondary && m.secondary->node == node && (disk.empty() || disk == m.secondary->disk)) {
    VVM_RETURN_IF_ERROR(check_target(view, pack, node, m.secondary->disk, "primary"));
    std::swap(m.primary, *m.secondary);
    return c;
  }
  DiskRef target{node, disk.empty() ? m.primary.disk : disk};
  VVM_RETURN_IF_ERROR(check_target(view, pack, node, target.disk, "primary"));
  if (m.secondary && m.secondary->node == node) m.secondary.reset();  // another disk of it
  m.primary = target;
  // A node of the pool made primary leaves the pool: it serves the pack from one disk.
  std::erase_if(m.pool, [&](const DiskRef& d) { return d.node == node; });
  return c;
}

Result<Change> plan_secondary(const ClusterView& view, const std::string& pack,
                              const std::string& node, const std::string& disk) {
  auto c = change_of(view, pack);
  if (!c.ok()) return c.status();
  PackMapping& m = c->mapping;
  if (node.empty()) {
    if (!m.secondary) {
      return Status::AlreadyExists(fmt::format("pack '{}' has no secondary already", pack));
    }
    m.secondary.reset();
    return c;
  }
  DiskRef target{node, disk.empty() ? m.primary.disk : disk};
  if (target == m.primary || node == m.primary.node) {
    return Status::InvalidArgument(fmt::format(
        "pack '{}': node {} is its primary; the secondary must be another node", pack, node));
  }
  if (m.secondary && *m.secondary == target) {
    return Status::AlreadyExists(
        fmt::format("pack '{}': {}:{} is its secondary already", pack, target.node, target.disk));
  }
  VVM_RETURN_IF_ERROR(check_target(view, pack, node, target.disk, "secondary"));
  m.secondary = target;
  // A node of the pool made secondary leaves the pool: it serves the pack from one disk.
  std::erase_if(m.pool, [&](const DiskRef& d) { return d.node == node; });
  return c;
}

Status check_pool(const PackMapping& m) {
  // Each server once: by disk, and by node, for a node serves a pack from one disk only.
  std::vector<std::pair<DiskRef, std::string>> seen = {{m.primary, "primary"}};
  if (m.secondary) seen.push_back({*m.secondary, "secondary"});
  for (const DiskRef& d : m.pool) {
    for (const auto& [other, role] : seen) {
      if (other == d) {
        return Status::InvalidArgument(
            fmt::format("pack '{}': pool entry {}:{} is listed twice (it is the pack's {} "
                        "already)",
                        m.name, d.node, d.disk, role));
      }
      if (other.node == d.node) {
        return Status::InvalidArgument(fmt::format(
            "pack '{}': pool entry {}:{}: node {} is named twice (it is the pack's {} on disk "
            "{}); a node serves a pack from one disk",
            m.name, d.node, d.disk, d.node, role, other.disk));
      }
    }
    seen.push_back({d, "pool entry " + d.node + ":" + d.disk});
  }
  return Status::Ok();
}

Result<Change> plan_pool(const ClusterView& view, const std::string& pack,
                         std::vector<DiskRef> pool) {
  auto c = change_of(view, pack);
  if (!c.ok()) return c.status();
  PackMapping& m = c->mapping;
  if (pool.empty()) {
    if (m.pool.empty()) {
      return Status::AlreadyExists(fmt::format("pack '{}' has no pool already", pack));
    }
    m.pool.clear();
    return c;
  }
  for (DiskRef& d : pool) {
    if (d.disk.empty()) d.disk = m.primary.disk;
  }
  m.pool = std::move(pool);
  VVM_RETURN_IF_ERROR(check_pool(m));
  for (const DiskRef& d : m.pool) {
    VVM_RETURN_IF_ERROR(check_target(view, pack, d.node, d.disk, "pool server"));
  }
  if (m.pool == view.packs.at(pack).record.pool) {
    std::vector<std::string> names;
    for (const DiskRef& d : m.pool) names.push_back(d.node + ":" + d.disk);
    return Status::AlreadyExists(
        fmt::format("pack '{}': its pool is {} already", pack, join(names)));
  }
  return c;
}

Result<std::vector<Change>> plan_drain(const ClusterView& view, const std::string& node) {
  std::vector<Change> out;
  for (const auto& [name, item] : view.packs) {
    const PackMapping& was = item.record;
    const bool pooled = !was.pool.empty();
    const bool in_pool = std::any_of(was.pool.begin(), was.pool.end(),
                                     [&](const DiskRef& d) { return d.node == node; });
    const bool secondary = was.secondary && was.secondary->node == node;
    // A pack without a pool keeps a drained secondary (it takes requests only when the primary
    // fails); in a pool every server takes requests by load, so the node leaves every role.
    if (was.primary.node != node && !in_pool && !(pooled && secondary)) continue;
    auto c = change_of(view, name);
    if (!c.ok()) return c.status();
    PackMapping& m = c->mapping;
    std::erase_if(m.pool, [&](const DiskRef& d) { return d.node == node; });
    if (m.primary.node == node) {
      if (m.secondary) {
        if (Status s = check_target(view, name, m.secondary->node, m.secondary->disk, "primary");
            !s.ok()) {
          return Status(s.code(), s.message() + "; nothing changed");
        }
        std::swap(m.primary, *m.secondary);
      } else {
        // A pool without a secondary: its first entry able to take the pack becomes primary.
        auto next = std::find_if(m.pool.begin(), m.pool.end(), [&](const DiskRef& d) {
          return check_target(view, name, d.node, d.disk, "primary").ok();
        });
        if (next == m.pool.end()) {
          return Status::Busy(fmt::format(
              "pack '{}': its primary is {} and it has no secondary{} to move to (give it one "
              "with vvctl pack set-secondary, or move it with vvctl pack move); nothing changed",
              name, node, pooled ? " and no live, undrained pool server" : ""));
        }
        m.primary = *next;
        m.pool.erase(next);
      }
    }
    // Left as the secondary of a pack that still has a pool: it would still take requests by
    // load. The pool's servers are the pack's other copies (and its alternates) without it.
    if (m.secondary && m.secondary->node == node && !m.pool.empty()) m.secondary.reset();
    out.push_back(std::move(*c));
  }
  return out;
}

Result<Change> plan_chmod(const ClusterView& view, const std::string& pack, mode_t perms) {
  auto c = change_of(view, pack);
  if (!c.ok()) return c.status();
  c->mapping.perms = perms & 0777;
  return c;
}

Result<Change> plan_chown(const ClusterView& view, const std::string& pack, uid_t owner,
                          std::optional<gid_t> group) {
  auto c = change_of(view, pack);
  if (!c.ok()) return c.status();
  c->mapping.owner = owner;
  if (group) c->mapping.group = *group;
  return c;
}

}  // namespace vvm::cluster
