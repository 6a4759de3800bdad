// reconf_gate.cc: a node's side of the reconfiguration barrier (reconf_gate.h).
#include "reconf_gate.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <set>
#include <utility>

namespace vvm::plugin {

namespace {

// The steady-clock time of a unix-milliseconds deadline.
std::chrono::steady_clock::time_point steady_of(uint64_t unix_ms) {
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return std::chrono::steady_clock::now() +
         std::chrono::milliseconds(static_cast<int64_t>(unix_ms) - now_ms);
}

// Makes what was written to `path` durable: any descriptor's fdatasync covers the file.
void flush_backing(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fdatasync(fd);
  ::close(fd);
}

}  // namespace

ReconfGate::Pass::~Pass() { uncount(); }

void ReconfGate::Pass::uncount() {
  if (gate_ != nullptr) std::exchange(gate_, nullptr)->leave(pack_);
}

ReconfGate::ReconfGate(Options options) : options_(std::move(options)) {}

Result<std::unique_ptr<ReconfGate>> ReconfGate::start(Options options) {
  std::unique_ptr<ReconfGate> g(new ReconfGate(std::move(options)));
  auto etcd = cluster::EtcdClient::create(g->options_.etcd);
  if (!etcd.ok()) return etcd.status();
  g->etcd_ = std::move(*etcd);
  auto now = g->etcd_->range_prefix(cluster::reconf_prefix(g->options_.prefix));
  if (!now.ok()) return now.status();
  for (const auto& kv : now->kvs) g->events_.push_back({true, kv});
  g->start_watch(now->revision + 1);
  g->thread_ = std::thread([raw = g.get()] { raw->worker(); });
  return g;
}

ReconfGate::~ReconfGate() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  watch_.reset();
}

void ReconfGate::start_watch(int64_t from_revision) {
  const std::string prefix = cluster::reconf_prefix(options_.prefix);
  auto watch = cluster::EtcdWatch::start(
      options_.etcd, {prefix, cluster::prefix_end(prefix), from_revision},
      [this](const cluster::WatchBatch& batch) {
        std::lock_guard lock(mu_);
        if (batch.events.empty()) {
          if (std::exchange(watch_down_, false)) options_.log(false, "watching intents again");
          return;
        }
        for (const auto& e : batch.events) {
          const bool put = e.type == cluster::WatchEvent::Type::kPut;
          // A drain under way must see its intent go at once, not after the worker is done.
          if (!put) {
            if (auto it = intents_.find(e.kv.key); it != intents_.end()) it->second.deleted = true;
          }
          events_.push_back({put, e.kv});
        }
        cv_.notify_all();
      },
      [this](const cluster::WatchError& e) {
        std::lock_guard lock(mu_);
        const bool first = !std::exchange(watch_down_, true);
        options_.log(
            first || e.compact_revision != 0,
            fmt::format("watching the reconfiguration intents: {}{}", e.status.message(),
                        first ? " (retrying; an intent not seen ends at its deadline)" : ""));
        if (e.compact_revision != 0) {
          restart_watch_ = true;
          cv_.notify_all();
        }
      });
  if (!watch.ok()) {
    options_.log(true, "cannot watch the reconfiguration intents: " + watch.status().message());
    return;
  }
  watch_ = std::move(*watch);
}

std::string ReconfGate::placement_of(const PackEntry& e) {
  return fmt::format("{} {} {}", e.backing, e.offset, e.size);
}

ReconfGate::Placement ReconfGate::placement(const std::string& pack) const {
  auto catalog = options_.catalog->current().catalog;
  auto info = catalog->find(std::string(kPackPrefix) + pack);
  if (!info.ok()) return "";
  return placement_of((*info)->pack);
}

uint64_t ReconfGate::generation(const std::string& pack) const {
  std::lock_guard lock(mu_);
  auto it = packs_.find(pack);
  return it == packs_.end() ? 0 : it->second.generation;
}

ReconfGate::Pass ReconfGate::enter(const std::string& pack, uint64_t generation,
                                   const std::string& where, bool counted) {
  std::unique_lock lock(mu_);
  auto it = packs_.find(pack);
  if (it != packs_.end() && it->second.holds > 0) {
    // Bounded: the worker resumes every pack by its intents' deadlines.
    const auto until = it->second.until + std::chrono::seconds(1);
    cv_.wait_until(lock, until, [&] { return stopping_ || it->second.holds == 0; });
    if (it->second.holds > 0 && !stopping_) {
      return Pass(nullptr, pack,
                  Status::Unavailable(
                      fmt::format("pack '{}': held by a reconfiguration past its deadline", pack)));
    }
  }
  const uint64_t now = it == packs_.end() ? 0 : it->second.generation;
  // A connection opened around a move may have the new placement already: only a different one
  // is refused.
  if (counted && now != generation && placement(pack) != where) {
    return Pass(nullptr, pack,
                Status::Unavailable(fmt::format(
                    "pack '{}': a reconfiguration moved it off this node's disk since this "
                    "connection opened (node {}); reconnect",
                    pack, options_.node)));
  }
  if (!counted) return Pass(nullptr, pack, Status::Ok());
  if (it == packs_.end()) it = packs_.emplace(pack, PackState{}).first;
  ++it->second.in_flight;
  return Pass(this, pack, Status::Ok());
}

void ReconfGate::leave(const std::string& pack) {
  std::lock_guard lock(mu_);
  auto it = packs_.find(pack);
  if (it == packs_.end()) return;
  if (--it->second.in_flight == 0 && it->second.holds > 0) cv_.notify_all();
}

size_t ReconfGate::held_packs() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [name, s] : packs_) n += s.holds > 0;
  return n;
}

void ReconfGate::begin(const cluster::KeyValue& kv) {
  auto record = cluster::decode_intent(kv.key, kv.value);
  if (!record.ok()) {
    options_.log(true, record.status().message() + " (ignored)");
    return;
  }
  const auto deadline = steady_of(record->deadline_ms);
  if (deadline <= Clock::now()) {
    options_.log(false, fmt::format("reconfiguration {}: past its deadline, ignored", kv.key));
    return;
  }
  std::map<std::string, Placement> before;
  for (const auto& p : record->packs) before[p] = placement(p);

  std::unique_lock lock(mu_);
  if (intents_.count(kv.key)) return;  // seen already (the first read and the watch)
  Intent& in = intents_[kv.key];
  in.record = std::move(*record);
  in.lease = kv.lease;
  in.deadline = deadline;
  in.since = Clock::now();
  in.before = std::move(before);
  for (const auto& p : in.record.packs) {
    PackState& s = packs_[p];
    ++s.holds;
    s.until = std::max(s.until, deadline);
  }
  // The drain: the requests served here end (new ones wait at the gate).
  const std::vector<std::string> packs = in.record.packs;
  const bool drained = cv_.wait_until(lock, deadline, [&] {
    if (stopping_ || in.deleted) return true;
    for (const auto& p : packs) {
      if (packs_[p].in_flight > 0) return false;
    }
    return true;
  });
  if (stopping_ || in.deleted) return;
  if (!drained) {
    options_.log(true, fmt::format("reconfiguration {}: requests of {} still running at its "
                                   "deadline; not acknowledged",
                                   kv.key, in.record.packs.front()));
    return;
  }
  const int64_t lease = in.lease;
  const std::string id = in.record.id;
  lock.unlock();
  for (const auto& p : packs) {
    auto catalog = options_.catalog->current().catalog;
    if (auto info = catalog->find(std::string(kPackPrefix) + p); info.ok()) {
      flush_backing((*info)->pack.backing);
    }
  }
  const auto drained_us =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - in.since).count();
  cluster::ReconfAck ack{options_.node, static_cast<uint64_t>(drained_us)};
  auto put = etcd_->put(cluster::ack_key(options_.prefix, id, options_.node),
                        cluster::encode_ack(ack), lease);
  if (!put.ok()) {
    options_.log(false, fmt::format("reconfiguration {}: acknowledging: {}", kv.key,
                                    put.status().message()));
    return;
  }
  options_.log(false, fmt::format("reconfiguration {} by {}: {} held, drained in {} us, "
                                  "acknowledged",
                                  kv.key, in.record.by, in.record.packs.front(), drained_us));
}

void ReconfGate::end(const std::string& key, const std::string& why) {
  std::map<std::string, Placement> before;
  std::vector<std::string> packs;
  Clock::time_point since;
  {
    std::lock_guard lock(mu_);
    auto it = intents_.find(key);
    if (it == intents_.end()) return;
    before = it->second.before;
    packs = it->second.record.packs;
    since = it->second.since;
  }
  // The new mappings served before anything resumes.
  if (Status s = options_.reload(); !s.ok()) {
    options_.log(true, fmt::format("reconfiguration {}: reading the mappings to resume: {}", key,
                                   s.message()));
  }
  std::map<std::string, bool> moved;
  for (const auto& p : packs) moved[p] = !before[p].empty() && placement(p) != before[p];
  {
    std::lock_guard lock(mu_);
    intents_.erase(key);
    for (const auto& p : packs) {
      PackState& s = packs_[p];
      --s.holds;
      if (moved[p]) ++s.generation;
    }
  }
  cv_.notify_all();
  options_.log(
      false,
      fmt::format(
          "reconfiguration {} {}: {} resumed after {} us", key, why, packs.front(),
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - since).count()));
}

void ReconfGate::worker() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    auto next = Clock::now() + std::chrono::seconds(1);
    for (const auto& [key, in] : intents_) next = std::min(next, in.deadline);
    cv_.wait_until(lock, next, [&] { return stopping_ || !events_.empty() || restart_watch_; });
    if (stopping_) return;
    if (std::exchange(restart_watch_, false)) {
      lock.unlock();
      watch_.reset();
      auto now = etcd_->range_prefix(cluster::reconf_prefix(options_.prefix));
      lock.lock();
      if (!now.ok()) {
        restart_watch_ = true;
        cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
        continue;
      }
      // What went while the watch was lost ends; what is there begins (again, harmlessly).
      std::set<std::string> there;
      for (const auto& kv : now->kvs) there.insert(kv.key);
      for (auto& [key, in] : intents_) {
        if (!there.count(key)) events_.push_back({false, {key}});
      }
      for (const auto& kv : now->kvs) events_.push_back({true, kv});
      lock.unlock();
      start_watch(now->revision + 1);
      lock.lock();
      continue;
    }
    if (!events_.empty()) {
      Event e = std::move(events_.front());
      events_.pop_front();
      lock.unlock();
      if (e.put) {
        begin(e.kv);
      } else {
        end(e.kv.key, "ended");
      }
      lock.lock();
      continue;
    }
    std::vector<std::string> late;
    for (const auto& [key, in] : intents_) {
      if (in.deadline <= Clock::now()) late.push_back(key);
    }
    lock.unlock();
    for (const auto& key : late) end(key, "reached its deadline unseen going");
    lock.lock();
  }
}

}  // namespace vvm::plugin
