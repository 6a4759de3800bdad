// connection.cc: a connection's lazy hold on its pack; see connection.h.
#include "connection.h"

namespace vvm::plugin {

HoldKind hold_kind_for(const PackExport& pack) {
  if (!pack.writable()) return HoldKind::kRead;
  return pack.info().pack.mode == PackMode::kExclusive ? HoldKind::kExclusive : HoldKind::kShared;
}

Connection::~Connection() {
  if (decided_.load(std::memory_order_acquire) && hold_.ok()) {
    registry_->release(pack_->info().pack, kind_, identity_, cluster_wide_);
  }
}

const Status& Connection::ensure_hold(bool* newly_refused) {
  *newly_refused = false;
  if (decided_.load(std::memory_order_acquire)) return hold_;
  const std::lock_guard lock(mutex_);
  if (!decided_.load(std::memory_order_relaxed)) {
    hold_ = registry_->acquire(pack_->info().pack, kind_, identity_, cluster_wide_);
    *newly_refused = !hold_.ok();
    decided_.store(true, std::memory_order_release);
  }
  return hold_;
}

}  // namespace vvm::plugin
