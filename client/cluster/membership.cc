// cluster/membership.cc: a node's lease-bound key and its renewal thread (membership.h).
#include "cluster/membership.h"

#include <fmt/core.h>

#include <algorithm>
#include <ctime>

#include "common/log.h"

namespace vvm::cluster {

Result<EtcdOptions> etcd_options(const Config& config) {
  if (!config.cluster) {
    return Status::InvalidArgument(
        fmt::format("{}: no [cluster] section (it names etcd's endpoints)",
                    config.path.empty() ? std::string("vvm.conf") : config.path));
  }
  EtcdOptions o;
  o.endpoints = config.cluster->etcd;
  o.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.cluster->etcd_timeout);
  return o;
}

Result<MembershipOptions> membership_options(const Config& config) {
  auto etcd = etcd_options(config);
  if (!etcd.ok()) return etcd.status();
  const ClusterConfig& cl = *config.cluster;
  if (cl.node.empty()) {
    return Status::InvalidArgument(
        fmt::format("{}: [cluster] names no node (add 'node = NAME' and 'advertise = HOST:PORT')",
                    config.path.empty() ? std::string("vvm.conf") : config.path));
  }
  MembershipOptions o;
  o.etcd = *etcd;
  o.prefix = cl.prefix;
  o.node.name = cl.node;
  o.node.address = cl.advertise;
  o.node.disks = cl.disks;
  o.ttl = cl.lease_ttl;
  return o;
}

Result<std::unique_ptr<Membership>> Membership::join(MembershipOptions options, OnLost on_lost,
                                                     OnBack on_back, OnBack on_gone) {
  if (options.ttl.count() < 2) {
    return Status::InvalidArgument(
        fmt::format("lease TTL {}s is shorter than 2s", options.ttl.count()));
  }
  // Renewals must be answered well within the TTL, whatever the configured timeout.
  EtcdOptions etcd = options.etcd;
  etcd.timeout = std::min(etcd.timeout,
                          std::chrono::duration_cast<std::chrono::milliseconds>(options.ttl) / 3);
  auto client = EtcdClient::create(etcd);
  if (!client.ok()) return client.status();
  EtcdClient& c = **client;

  const std::string key = node_key(options.prefix, options.node.name);
  const auto sent = std::chrono::steady_clock::now();
  auto lease = c.lease_grant(options.ttl.count());
  if (!lease.ok()) {
    return Status(lease.status().code(),
                  fmt::format("{}: cannot grant a lease: {}", key, lease.status().message()));
  }
  options.node.started = static_cast<uint64_t>(std::time(nullptr));
  // The key is bound to the lease just granted: only this node's leaving or that lease's end
  // deletes it, so a resend after a lost answer cannot create it twice.
  auto txn = c.txn({{Compare::absent(key)},
                    {TxnOp::put(key, encode_node(options.node), lease->id)},
                    {TxnOp::range(key)}},
                   TxnKeys::kOwn);
  if (!txn.ok() || !txn->succeeded) {
    (void)c.lease_revoke(lease->id);  // best effort: it would expire anyway
    if (!txn.ok()) {
      return Status(txn.status().code(),
                    fmt::format("{}: cannot register: {}", key, txn.status().message()));
    }
    // Who holds the name: its address, and how long its lease has left.
    std::string holder = "a node that left no readable record";
    if (!txn->ranges.empty() && !txn->ranges[0].empty()) {
      const KeyValue& kv = txn->ranges[0][0];
      auto other = decode_node(kv.key, kv.value);
      holder = other.ok()
                   ? fmt::format("node {} at {}", other->name, other->address)
                   : fmt::format("a record that does not decode ({})", other.status().message());
      if (kv.lease != 0) {
        auto left = c.lease_time_to_live(kv.lease);
        if (left.ok() && *left >= 0) holder += fmt::format(", whose lease expires in {}s", *left);
      }
    }
    return Status::AlreadyExists(fmt::format(
        "etcd key {} is held by {}: two nodes may not share the name '{}' (stop the other, or "
        "wait until its lease expires)",
        key, holder, options.node.name));
  }
  std::unique_ptr<Membership> m(new Membership(std::move(options), std::move(*client), key, *lease,
                                               txn->revision, std::move(on_lost),
                                               std::move(on_back), std::move(on_gone)));
  {
    std::lock_guard lock(m->mu_);
    m->valid_until_ = sent + std::chrono::seconds(lease->ttl) - m->margin();
  }
  m->thread_ = std::thread([raw = m.get()] { raw->renew_loop(); });
  return m;
}

Membership::Membership(MembershipOptions options, std::unique_ptr<EtcdClient> client,
                       std::string key, Lease lease, int64_t revision, OnLost on_lost,
                       OnBack on_back, OnBack on_gone)
    : options_(std::move(options)),
      client_(std::move(client)),
      key_(std::move(key)),
      lease_id_(lease.id),
      revision_(revision),
      on_lost_(std::move(on_lost)),
      on_back_(std::move(on_back)),
      on_gone_(std::move(on_gone)) {}

Membership::~Membership() { leave(); }

std::chrono::milliseconds Membership::margin() const {
  auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(options_.ttl);
  return std::max(ttl / 5, std::chrono::milliseconds(500));
}

std::chrono::steady_clock::time_point Membership::valid_until() const {
  std::lock_guard lock(mu_);
  return valid_until_;
}

void Membership::leave() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (!lost_) {
    Status s = client_->lease_revoke(lease_id_);
    if (!s.ok()) log::warning("{}: cannot revoke lease {}: {}", key_, lease_id_, s.message());
  }
}

void Membership::renew_loop() {
  using clock = std::chrono::steady_clock;
  const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(options_.ttl) / 3;
  const auto retry = std::min(interval, std::chrono::milliseconds(500));
  auto next = clock::now() + interval;
  Status last_error;
  bool fenced = false;  // on_lost called for a lease not renewed in time, on_back not yet
  std::unique_lock lock(mu_);
  // Calls `fn` without the lock (it may look at valid_until()).
  auto unlocked = [&](auto&& fn) {
    lock.unlock();
    fn();
    lock.lock();
  };
  for (;;) {
    // Wake for the next renewal, or at the fencing deadline if that comes first.
    cv_.wait_until(lock, fenced ? next : std::min(next, valid_until_), [&] { return stopping_; });
    if (stopping_) return;
    if (!fenced && clock::now() >= valid_until_) {
      fenced = true;
      Status why = Status::Unavailable(
          fmt::format("{}: the lease could not be renewed before it expires: {}", key_,
                      last_error.ok() ? std::string("no answer") : last_error.message()));
      unlocked([&] {
        log::error("{}", why.message());
        if (on_lost_) on_lost_(why);
      });
      if (stopping_) return;
    }
    if (clock::now() < next) continue;
    lock.unlock();
    const auto sent = clock::now();
    auto ttl = client_->lease_keepalive(lease_id_);
    lock.lock();
    if (stopping_) return;
    if (ttl.ok() && *ttl > 0) {
      valid_until_ = sent + std::chrono::seconds(*ttl) - margin();
      next = sent + interval;
      last_error = Status::Ok();
      if (fenced) {
        fenced = false;
        unlocked([&] {
          log::info("{}: lease {:x} renewed again: etcd still has it (TTL {}s)", key_, lease_id_,
                    *ttl);
          if (on_back_) on_back_();
        });
        if (stopping_) return;
      }
    } else if (ttl.ok()) {
      lost_ = true;
      Status why =
          Status::Unavailable(fmt::format("{}: etcd says lease {} has expired", key_, lease_id_));
      unlocked([&] {
        log::error("{}", why.message());
        if (on_lost_ && !fenced) on_lost_(why);  // a fenced node is told once
        if (on_gone_) on_gone_();
      });
      return;
    } else {
      if (!fenced || last_error.ok()) {
        log::warning("{}: lease renewal failed (will retry): {}", key_, ttl.status().message());
      }
      last_error = ttl.status();
      next = clock::now() + retry;
    }
  }
}

}  // namespace vvm::cluster
