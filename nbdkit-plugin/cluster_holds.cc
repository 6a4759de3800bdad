// cluster_holds.cc: exclusive holds kept in etcd (cluster_holds.h).
#include "cluster_holds.h"

#include <fmt/core.h>

#include <ctime>

namespace vvm::plugin {

Result<std::unique_ptr<ClusterHolds>> ClusterHolds::create(Options options) {
  std::unique_ptr<ClusterHolds> h(new ClusterHolds(std::move(options)));
  auto etcd = cluster::EtcdClient::create(h->options_.etcd);
  if (!etcd.ok()) return etcd.status();
  h->etcd_ = std::move(*etcd);
  return h;
}

Status ClusterHolds::refusal(const std::string& pack, HoldKind kind, const std::string& identity,
                             const cluster::KeyValue& held) const {
  auto h = cluster::decode_hold(held.key, held.value);
  const std::string holder = h.ok() ? fmt::format("{} on node {} (etcd key {}, since {})",
                                                  h->client, h->node, held.key, h->started)
                                    : fmt::format("a holder etcd key {} does not name ({})",
                                                  held.key, h.status().message());
  return Status::Busy(
      fmt::format("pack '{}' is held exclusive by {}: {} on node {} cannot have "
                  "it {}",
                  pack, holder, identity, options_.node, hold_kind_name(kind)));
}

Status ClusterHolds::acquire(const std::string& pack, HoldKind kind, const std::string& identity) {
  const std::string key = cluster::hold_key(options_.prefix, pack);
  const std::lock_guard lock(mu_);
  if (kind != HoldKind::kExclusive) {
    auto held = etcd_->get(key);
    if (!held.ok()) return Status::Ok();  // etcd away: the node's own rules decide
    if (!*held) return Status::Ok();
    auto h = cluster::decode_hold(key, (*held)->value);
    if (h.ok() && h->node == options_.node) return Status::Ok();  // ours: the registry decided
    return refusal(pack, kind, identity, **held);
  }
  cluster::ClusterHold record{pack, options_.node, identity,
                              static_cast<uint64_t>(std::time(nullptr))};
  cluster::Txn txn;
  txn.compares.push_back(cluster::Compare::absent(key));
  txn.success.push_back(cluster::TxnOp::put(key, cluster::encode_hold(record), options_.lease));
  txn.failure.push_back(cluster::TxnOp::range(key));
  auto done = etcd_->txn(txn);
  if (!done.ok()) {
    return Status::Unavailable(fmt::format(
        "pack '{}': {} cannot have it exclusive: the hold cannot be recorded in etcd ({})", pack,
        identity, done.status().message()));
  }
  if (done->succeeded) {
    mine_[pack] = done->revision;
    return Status::Ok();
  }
  if (done->ranges.empty() || done->ranges[0].empty()) {
    return Status::Busy(
        fmt::format("pack '{}': etcd key {} changed while it was taken", pack, key));
  }
  const cluster::KeyValue& held = done->ranges[0][0];
  auto h = cluster::decode_hold(key, held.value);
  if (h.ok() && h->node == options_.node && h->client == identity && held.lease == options_.lease) {
    mine_[pack] = held.mod_revision;  // ours already (a restart of the registry's count)
    return Status::Ok();
  }
  return refusal(pack, kind, identity, held);
}

void ClusterHolds::release(const std::string& pack, HoldKind kind,
                           const std::string& /*identity*/) {
  if (kind != HoldKind::kExclusive) return;
  const std::lock_guard lock(mu_);
  auto it = mine_.find(pack);
  if (it == mine_.end()) return;
  const std::string key = cluster::hold_key(options_.prefix, pack);
  cluster::Txn txn;
  txn.compares.push_back(cluster::Compare::unchanged(key, it->second));
  txn.success.push_back(cluster::TxnOp::erase(key));
  (void)etcd_->txn(txn);  // a failure leaves the key to the node's lease
  mine_.erase(it);
}

void ClusterHolds::set_lease(int64_t lease) {
  const std::lock_guard lock(mu_);
  options_.lease = lease;
  mine_.clear();
}

}  // namespace vvm::plugin
