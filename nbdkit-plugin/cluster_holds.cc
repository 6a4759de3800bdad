// cluster_holds.cc: a pack's holders kept in etcd (cluster_holds.h).
#include "cluster_holds.h"

#include <fmt/core.h>

#include <ctime>

namespace vvm::plugin {

namespace {

constexpr HoldKind kKinds[] = {HoldKind::kRead, HoldKind::kShared};

HoldKind other_kind(HoldKind kind) {
  return kind == HoldKind::kRead ? HoldKind::kShared : HoldKind::kRead;
}

uint64_t now_seconds() { return static_cast<uint64_t>(std::time(nullptr)); }

}  // namespace

Result<std::unique_ptr<ClusterHolds>> ClusterHolds::create(Options options) {
  std::unique_ptr<ClusterHolds> h(new ClusterHolds(std::move(options)));
  auto etcd = cluster::EtcdClient::create(h->options_.etcd);
  if (!etcd.ok()) return etcd.status();
  h->etcd_ = std::move(*etcd);
  // The fencing token now, so that a client's first hold costs one transaction (a failure here
  // is tried again at that hold).
  (void)h->load_token();
  if (h->options_.resync_every.count() > 0) {
    h->resyncer_ = std::thread([raw = h.get()] {
      std::unique_lock lock(raw->stop_mu_);
      while (!raw->stop_cv_.wait_for(lock, raw->options_.resync_every,
                                     [raw] { return raw->stopping_; })) {
        lock.unlock();
        raw->resync();
        lock.lock();
      }
    });
  }
  return h;
}

ClusterHolds::~ClusterHolds() {
  {
    const std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (resyncer_.joinable()) resyncer_.join();
}

Status ClusterHolds::load_token() {
  const std::string key = cluster::holdseq_key(options_.prefix, options_.node);
  auto kv = etcd_->get(key);
  if (!kv.ok()) return kv.status();
  if (*kv && (*kv)->lease == options_.lease) {
    auto seq = cluster::decode_holdseq(key, (*kv)->value);
    if (seq.ok()) {
      seq_ = std::max(seq_, seq->seq);
      token_rev_ = (*kv)->mod_revision;
      return Status::Ok();
    }
  }
  // None yet under this lease (or garbage): this node's from now. A copy of this put applied
  // late only moves the token, which the next transaction finds and reads again.
  auto rev = etcd_->put(key, cluster::encode_holdseq({options_.node, ++seq_}), options_.lease);
  if (!rev.ok()) return rev.status();
  token_rev_ = *rev;
  return Status::Ok();
}

Result<cluster::TxnResult> ClusterHolds::guarded(const cluster::Txn& txn) {
  const std::string key = cluster::holdseq_key(options_.prefix, options_.node);
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (token_rev_ == 0) VVM_RETURN_IF_ERROR(load_token());
    cluster::Txn t = txn;
    t.compares.push_back(cluster::Compare::unchanged(key, token_rev_));
    t.success.push_back(
        cluster::TxnOp::put(key, cluster::encode_holdseq({options_.node, ++seq_}), options_.lease));
    t.failure.push_back(cluster::TxnOp::range(key));
    if (options_.sent) options_.sent(t);
    auto r = etcd_->txn(t);
    if (!r.ok()) {
      token_rev_ = 0;  // its outcome may be unknown: read the token again
      return r.status();
    }
    if (r->succeeded) {
      token_rev_ = r->revision;
      r->ranges.resize(txn.success.size());
      return r;
    }
    const bool token_held = !r->ranges.empty() && r->ranges.back().size() == 1 &&
                            r->ranges.back()[0].mod_revision == token_rev_;
    r->ranges.resize(txn.failure.size());
    if (token_held) return r;  // a compare of the caller's failed
    token_rev_ = 0;
  }
  return Status::Unavailable(fmt::format(
      "etcd key {} kept changing under this node's hold transactions (another process of node "
      "{}?)",
      key, options_.node));
}

void ClusterHolds::no_other_users(cluster::Txn& txn, const std::string& pack, HoldKind kind) const {
  const std::string prefix = cluster::pack_users_prefix(options_.prefix, pack, kind);
  const std::string own = cluster::users_key(options_.prefix, pack, kind, options_.node);
  // [prefix, own) and (own, end of prefix): every key of the kind but this node's.
  txn.compares.push_back(cluster::Compare::none_in(prefix, own));
  txn.compares.push_back(cluster::Compare::none_in(own + '\0', cluster::prefix_end(prefix)));
}

cluster::TxnOp ClusterHolds::write_users(const std::string& pack, const PackState& state,
                                         HoldKind kind) const {
  const std::string key = cluster::users_key(options_.prefix, pack, kind, options_.node);
  const auto& users = state.users[static_cast<int>(kind)];
  if (users.empty()) return cluster::TxnOp::erase(key);
  cluster::PackUsers record{pack, kind, options_.node, {}};
  for (const auto& [client, since] : users) record.clients.push_back({client, since});
  return cluster::TxnOp::put(key, cluster::encode_users(record), options_.lease);
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

Status ClusterHolds::users_refusal(const std::string& pack, HoldKind kind,
                                   const std::string& identity,
                                   const std::vector<cluster::KeyValue>& kvs) const {
  // The kinds in the way: both for an exclusive hold, the other one for a reader or a writer.
  auto in_way = [&](HoldKind k) { return kind == HoldKind::kExclusive || k != kind; };
  auto refuse = [&](const std::string& holder) {
    return Status::Busy(fmt::format("pack '{}' is held {}: {} on node {} cannot have it {}", pack,
                                    holder, identity, options_.node, hold_kind_name(kind)));
  };
  for (const cluster::KeyValue& kv : kvs) {
    auto u = cluster::decode_users(kv.key, kv.value);
    if (!u.ok() || u->node == options_.node || !in_way(u->kind)) continue;
    std::string clients;
    for (const auto& c : u->clients) clients += (clients.empty() ? "" : ", ") + c.client;
    return refuse(fmt::format("{} by {} on node {} (etcd key {}, since {})",
                              hold_kind_name(u->kind), clients, u->node, kv.key,
                              u->clients.front().since));
  }
  // No record in the way reads: garbage that etcd compared all the same, named.
  for (const cluster::KeyValue& kv : kvs) {
    for (HoldKind k : kKinds) {
      if (in_way(k) && kv.key.starts_with(cluster::pack_users_prefix(options_.prefix, pack, k)) &&
          kv.key != cluster::users_key(options_.prefix, pack, k, options_.node)) {
        return refuse(fmt::format("by etcd key {}, which does not read ({})", kv.key,
                                  cluster::decode_users(kv.key, kv.value).status().message()));
      }
    }
  }
  return Status::Ok();
}

void ClusterHolds::say(bool error, const std::string& message) const {
  if (options_.log) options_.log(error, message);
}

void ClusterHolds::forget_if_unused(const std::string& pack) {
  auto it = packs_.find(pack);
  if (it != packs_.end() && it->second.empty() && !it->second.dirty) packs_.erase(it);
}

Status ClusterHolds::acquire(const std::string& pack, HoldKind kind, const std::string& identity) {
  const std::string key = cluster::hold_key(options_.prefix, pack);
  const std::lock_guard lock(mu_);
  PackState& state = packs_[pack];
  if (state.dirty) (void)sync(pack, state);  // before anything is compared with it
  if (kind != HoldKind::kExclusive) {
    auto& users = state.users[static_cast<int>(kind)];
    // This node's own exclusive holder, another identity: the registry's own rules refuse it.
    if ((!state.exclusive.empty() && state.exclusive != identity) || users.contains(identity)) {
      return Status::Ok();
    }
    users[identity] = now_seconds();
    cluster::Txn txn;
    txn.compares.push_back(state.hold_rev > 0 ? cluster::Compare::unchanged(key, state.hold_rev)
                                              : cluster::Compare::absent(key));
    no_other_users(txn, pack, other_kind(kind));
    txn.success.push_back(write_users(pack, state, kind));
    txn.failure.push_back(cluster::TxnOp::range(key));
    const std::string others = cluster::pack_users_prefix(options_.prefix, pack, other_kind(kind));
    txn.failure.push_back(cluster::TxnOp::range(others, cluster::prefix_end(others)));
    auto done = guarded(txn);
    if (!done.ok()) {
      // etcd away: the node's own rules decide, and the record is written when it answers.
      state.dirty = true;
      say(true, fmt::format("pack '{}': {} on node {} is let in {} on this node's rules alone: "
                            "its record cannot be written to etcd now ({}); written when etcd "
                            "answers",
                            pack, identity, options_.node, hold_kind_name(kind),
                            done.status().message()));
      return Status::Ok();
    }
    if (done->succeeded) return Status::Ok();
    users.erase(identity);
    forget_if_unused(pack);
    if (!done->ranges[0].empty()) return refusal(pack, kind, identity, done->ranges[0][0]);
    Status s = users_refusal(pack, kind, identity, done->ranges[1]);
    return s.ok() ? Status::Busy(fmt::format("pack '{}': etcd keys {} and {} changed while {} "
                                             "on node {} was let in",
                                             pack, key, others, identity, options_.node))
                  : s;
  }
  cluster::ClusterHold record{pack, options_.node, identity, now_seconds()};
  cluster::Txn txn;
  txn.compares.push_back(cluster::Compare::absent(key));
  for (HoldKind k : kKinds) no_other_users(txn, pack, k);
  txn.success.push_back(cluster::TxnOp::put(key, cluster::encode_hold(record), options_.lease));
  txn.failure.push_back(cluster::TxnOp::range(key));
  const std::string users = cluster::users_prefix(options_.prefix) + pack + "/";
  txn.failure.push_back(cluster::TxnOp::range(users, cluster::prefix_end(users)));
  auto done = guarded(txn);
  if (!done.ok()) {
    state.dirty = true;  // a lost answer may have left the hold: resync() deletes it
    return Status::Unavailable(fmt::format(
        "pack '{}': {} cannot have it exclusive: the hold cannot be recorded in etcd ({})", pack,
        identity, done.status().message()));
  }
  if (done->succeeded) {
    state.exclusive = identity;
    state.hold_rev = done->revision;
    return Status::Ok();
  }
  if (!done->ranges[0].empty()) {
    const cluster::KeyValue& held = done->ranges[0][0];
    auto h = cluster::decode_hold(key, held.value);
    if (h.ok() && h->node == options_.node && h->client == identity &&
        held.lease == options_.lease) {
      state.exclusive = identity;  // ours already (a restart of the registry's count)
      state.hold_rev = held.mod_revision;
      return Status::Ok();
    }
    forget_if_unused(pack);
    return refusal(pack, kind, identity, held);
  }
  forget_if_unused(pack);
  Status s = users_refusal(pack, kind, identity, done->ranges[1]);
  return s.ok() ? Status::Busy(
                      fmt::format("pack '{}': etcd key {} changed while it was taken", pack, key))
                : s;
}

void ClusterHolds::release(const std::string& pack, HoldKind kind, const std::string& identity) {
  const std::lock_guard lock(mu_);
  auto it = packs_.find(pack);
  if (it == packs_.end()) return;
  PackState& state = it->second;
  cluster::Txn txn;
  if (kind == HoldKind::kExclusive) {
    if (state.exclusive != identity) return;
    const std::string key = cluster::hold_key(options_.prefix, pack);
    txn.compares.push_back(cluster::Compare::unchanged(key, state.hold_rev));
    txn.success.push_back(cluster::TxnOp::erase(key));
    state.exclusive.clear();
    state.hold_rev = 0;
  } else {
    if (state.users[static_cast<int>(kind)].erase(identity) == 0) return;
    txn.success.push_back(write_users(pack, state, kind));
  }
  auto done = guarded(txn);
  // Not written: the lease takes the keys if the node dies, and resync() writes them before.
  if (!done.ok()) state.dirty = true;
  forget_if_unused(pack);
}

Status ClusterHolds::sync(const std::string& pack, PackState& state) {
  const std::string key = cluster::hold_key(options_.prefix, pack);
  auto held = etcd_->get(key);
  if (!held.ok()) return held.status();
  cluster::Txn txn;
  txn.compares.push_back(*held ? cluster::Compare::unchanged(key, (*held)->mod_revision)
                               : cluster::Compare::absent(key));
  for (HoldKind k : kKinds) txn.success.push_back(write_users(pack, state, k));
  std::optional<cluster::ClusterHold> other;  // another node's exclusive hold
  if (*held) {
    auto h = cluster::decode_hold(key, (*held)->value);
    const bool ours = h.ok() && h->node == options_.node && (*held)->lease == options_.lease;
    if (ours && state.exclusive.empty()) {
      txn.success.push_back(cluster::TxnOp::erase(key));  // left by a lost answer
    } else if (ours) {
      state.hold_rev = (*held)->mod_revision;
    } else if (h.ok()) {
      other = *h;
    }
  }
  auto done = guarded(txn);
  if (!done.ok()) return done.status();
  if (!done->succeeded) {
    return Status::Busy(fmt::format("pack '{}': etcd key {} changed while it was read", pack, key));
  }
  state.dirty = false;
  if (other && (!state.users[0].empty() || !state.users[1].empty())) {
    say(true, fmt::format("pack '{}': node {}'s readers or shared writers were let in while etcd "
                          "could not record them, and {} on node {} holds it exclusive meanwhile "
                          "(etcd key {})",
                          pack, options_.node, other->client, other->node, key));
  }
  say(false,
      fmt::format("pack '{}': node {}'s holders written to etcd again", pack, options_.node));
  return Status::Ok();
}

void ClusterHolds::resync() {
  const std::lock_guard lock(mu_);
  for (auto it = packs_.begin(); it != packs_.end();) {
    if (it->second.dirty && !sync(it->first, it->second).ok()) return;  // etcd away still
    auto next = std::next(it);
    forget_if_unused(it->first);
    it = next;
  }
}

void ClusterHolds::set_lease(int64_t lease) {
  const std::lock_guard lock(mu_);
  options_.lease = lease;
  packs_.clear();
  token_rev_ = 0;
  (void)load_token();  // under the new lease (as in create())
}

}  // namespace vvm::plugin
