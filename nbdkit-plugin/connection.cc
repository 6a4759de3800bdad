// connection.cc: a connection's lazy hold on its pack; see connection.h.
#include "connection.h"

namespace vvm::plugin {

HoldKind hold_kind_for(const PackEntry& pack, bool writable) {
  if (!writable) return HoldKind::kRead;
  return pack.mode == PackMode::kExclusive ? HoldKind::kExclusive : HoldKind::kShared;
}

HoldKind hold_kind_for(const PackExport& pack) {
  return hold_kind_for(pack.info().pack, pack.writable());
}

LazyHold::~LazyHold() {
  if (registry_ != nullptr && decided_.load(std::memory_order_acquire) && hold_.ok()) {
    registry_->release(pack_, kind_, identity_, generation_);
  }
}

const Status& LazyHold::ensure(bool* newly_refused) {
  *newly_refused = false;
  if (decided_.load(std::memory_order_acquire)) return hold_;
  const std::lock_guard lock(mutex_);
  if (!decided_.load(std::memory_order_relaxed)) {
    hold_ = registry_ == nullptr ? Status::Ok()
                                 : registry_->acquire(pack_, kind_, identity_, &generation_);
    *newly_refused = !hold_.ok();
    decided_.store(true, std::memory_order_release);
  }
  return hold_;
}

}  // namespace vvm::plugin
