// pack_holds.cc: the per-process hold registry; see pack_holds.h.
#include "pack_holds.h"

#include <unistd.h>

#include <algorithm>

#include <fmt/core.h>

#include "cluster_holds.h"
#include "common/config.h"

namespace vvm::plugin {

namespace {

bool compatible(HoldKind a, HoldKind b) { return a == b && a != HoldKind::kExclusive; }

}  // namespace

HoldRegistry::HoldRegistry(std::string holds_dir)
    : holds_(std::move(holds_dir)), host_(local_host_name()) {}

HoldRegistry::~HoldRegistry() {
  const std::lock_guard lock(mutex_);
  for (const auto& [key, state] : packs_) (void)holds_.write(state.pack.name, {});
}

LockSet HoldRegistry::lock_set(const std::vector<Holder>& holders) {
  LockSet set;
  for (const auto& h : holders) {
    set.exclusive |= h.kind == HoldKind::kExclusive;
    set.read |= h.kind == HoldKind::kRead;
    set.shared |= h.kind == HoldKind::kShared;
  }
  return set;
}

HoldRecord HoldRegistry::record(const PackState& state, const Holder& h) const {
  HoldRecord r;
  r.pack = state.pack.name;
  r.backing = state.pack.backing;
  r.offset = state.pack.offset;
  r.kind = h.kind;
  r.holder = h.identity;
  r.since = h.since;
  r.pid = ::getpid();
  r.host = host_;
  r.connections = h.connections;
  return r;
}

void HoldRegistry::write_records(const PackState& state) const {
  std::vector<HoldRecord> records;
  for (const auto& h : state.holders) records.push_back(record(state, h));
  // Best effort: the locks enforce the rules; the records only name the holders.
  (void)holds_.write(state.pack.name, records);
}

std::string HoldRegistry::other_holders(const PackEntry& pack) const {
  std::string out;
  for (const auto& r : holders_now(holds_, pack.backing, pack.offset)) {
    if (r.pid == ::getpid() && r.host == host_) continue;  // ours were checked in-process
    out += (out.empty() ? "" : "; ") + describe_hold(r);
  }
  return out.empty() ? "another process (no record in " + holds_.path() + ")" : out;
}

HoldRegistry::Key HoldRegistry::key_of(const PackEntry& pack) {
  // A forwarded pack has no backing here: its name keys it (a backing path is absolute).
  if (pack.backing.empty()) return {"forwarded " + pack.name, 0};
  return {pack.backing, pack.offset};
}

Status HoldRegistry::acquire(const PackEntry& pack, HoldKind kind, const std::string& identity,
                             uint64_t* generation) {
  const std::lock_guard lock(mutex_);
  if (generation != nullptr) *generation = generation_;
  const Key key = key_of(pack);
  PackState& state = packs_[key];
  if (state.holders.empty()) state.pack = pack;
  auto forget_if_unused = [&] {
    if (state.holders.empty()) packs_.erase(key);
  };
  auto refuse = [&](const std::string& held) {
    return Status::Busy(fmt::format("pack '{}' is held {}: {} cannot have it {}", pack.name, held,
                                    identity, hold_kind_name(kind)));
  };
  auto same = std::find_if(state.holders.begin(), state.holders.end(), [&](const Holder& h) {
    return h.identity == identity && h.kind == kind;
  });
  if (same != state.holders.end()) {
    ++same->connections;
    write_records(state);
    return Status::Ok();
  }
  // Cluster mode: etcd first, whose refusal names the holder's node and client (another node on
  // this host would only show as another process's lock).
  if (cluster_ != nullptr) {
    if (Status s = cluster_->acquire(pack.name, kind, identity); !s.ok()) {
      forget_if_unused();
      return s;
    }
  }
  auto undo_cluster = [&] {
    if (cluster_ != nullptr) cluster_->release(pack.name, kind, identity);
  };
  for (const Holder& h : state.holders) {
    if (h.identity != identity && !compatible(h.kind, kind)) {
      undo_cluster();
      return refuse(describe_hold(record(state, h)));
    }
  }
  std::vector<Holder> wanted = state.holders;
  wanted.push_back({kind, identity, 1, utc_now()});
  if (!state.lock && !pack.backing.empty()) {
    auto opened = PackLock::open(pack.backing, pack.offset);
    if (!opened.ok()) {
      forget_if_unused();
      undo_cluster();
      return Status(opened.status().code(),
                    fmt::format("pack '{}': {}", pack.name, opened.status().message()));
    }
    state.lock.emplace(std::move(*opened));
  }
  if (state.lock) {
    if (Status s = state.lock->change(lock_set(wanted)); !s.ok()) {
      Status out = s.code() == Code::kBusy
                       ? refuse(other_holders(pack))
                       : Status(s.code(), "pack '" + pack.name + "': " + s.message());
      forget_if_unused();
      undo_cluster();
      return out;
    }
  }
  state.holders = std::move(wanted);
  write_records(state);
  return Status::Ok();
}

void HoldRegistry::release(const PackEntry& pack, HoldKind kind, const std::string& identity,
                           std::optional<uint64_t> generation) {
  const std::lock_guard lock(mutex_);
  if (generation && *generation != generation_) return;  // forgotten at a rejoin
  auto it = packs_.find(key_of(pack));
  if (it == packs_.end()) return;
  PackState& state = it->second;
  auto h = std::find_if(state.holders.begin(), state.holders.end(),
                        [&](const Holder& x) { return x.identity == identity && x.kind == kind; });
  if (h == state.holders.end()) return;
  if (--h->connections > 0) {
    write_records(state);
    return;
  }
  state.holders.erase(h);
  if (cluster_ != nullptr) cluster_->release(pack.name, kind, identity);
  if (state.holders.empty()) {
    (void)holds_.write(state.pack.name, {});
    packs_.erase(it);  // closing the lock descriptor drops the locks
    return;
  }
  // Giving up locks does not conflict.
  if (state.lock) (void)state.lock->change(lock_set(state.holders));
  write_records(state);
}

void HoldRegistry::rejoined(int64_t lease) {
  const std::lock_guard lock(mutex_);
  ++generation_;
  // The old lease took the cluster-wide records; closing the lock descriptors drops the locks.
  for (const auto& [key, state] : packs_) (void)holds_.write(state.pack.name, {});
  packs_.clear();
  // Under the registry's lock, as acquire() calls the cluster's: no hold is recorded under the
  // old lease after this, nor counted in the old generation.
  if (cluster_ != nullptr) cluster_->set_lease(lease);
}

std::vector<HoldRecord> HoldRegistry::holders() const {
  const std::lock_guard lock(mutex_);
  std::vector<HoldRecord> out;
  for (const auto& [key, state] : packs_) {
    for (const auto& h : state.holders) out.push_back(record(state, h));
  }
  return out;
}

}  // namespace vvm::plugin
