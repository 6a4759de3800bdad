// local_failover.cc: the durability bookkeeping of a local pack's failover; see local_failover.h.
#include "local_failover.h"

#include <algorithm>

namespace vvm::plugin {

void LocalFailover::acknowledged(bool fua) {
  if (fua) return;
  const std::lock_guard lock(m_);
  ++acked_;
}

uint64_t LocalFailover::flush_starting() {
  const std::lock_guard lock(m_);
  return acked_;
}

void LocalFailover::flushed(uint64_t ticket) {
  const std::lock_guard lock(m_);
  durable_ = std::max(durable_, ticket);
}

void LocalFailover::failing_over() {
  const std::lock_guard lock(m_);
  used_other_ = true;
  if (acked_ > durable_) {
    lost_ = true;
    durable_ = acked_;  // reported once, by take_lost()
  }
}

bool LocalFailover::take_lost() {
  const std::lock_guard lock(m_);
  const bool was = lost_;
  lost_ = false;
  return was;
}

void LocalFailover::sent_by_load() {
  const std::lock_guard lock(m_);
  used_other_ = true;
}

bool LocalFailover::used_other() const {
  const std::lock_guard lock(m_);
  return used_other_;
}

bool other_less_loaded(uint64_t here, std::optional<uint64_t> least_other) {
  return least_other && *least_other < here;
}

}  // namespace vvm::plugin
