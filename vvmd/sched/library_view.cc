// library_view.cc: see library_view.h.
#include "sched/library_view.h"

#include <algorithm>

namespace vvm::vvmd {

LibraryView::LibraryView(const Config& config) {
  for (const auto& [name, d] : config.drives) {
    DriveState s;
    s.name = name;
    s.mover = d.mover;
    s.media = d.media;
    if (auto m = config.movers.find(d.mover); m != config.movers.end()) {
      s.mover_endpoint = m->second.listen;
    }
    drives_.push_back(std::move(s));
  }
}

DriveState* LibraryView::find(const std::string& drive) {
  for (auto& d : drives_) {
    if (d.name == drive) return &d;
  }
  return nullptr;
}

DriveState* LibraryView::holding(const std::string& vsn) {
  for (auto& d : drives_) {
    if (d.vsn == vsn && !d.down) return &d;
  }
  return nullptr;
}

std::vector<DriveState*> LibraryView::free_drives(const std::string& media, Clock::time_point now) {
  std::vector<DriveState*> out;
  for (auto& d : drives_) {
    if (d.media == media && !d.down && !d.busy && d.unusable_until <= now) out.push_back(&d);
  }
  std::stable_partition(out.begin(), out.end(), [](const DriveState* d) { return d->vsn.empty(); });
  return out;
}

bool LibraryView::load(DriveState& drive, const std::string& vsn) {
  if (drive.vsn == vsn) return false;
  for (auto& other : drives_) {
    if (&other != &drive && other.vsn == vsn) other.vsn.clear();  // a down drive's too
  }
  drive.vsn = vsn;
  drive.reads_since_mount = 0;
  ++drive.mounts;
  ++mounts_;
  return true;
}

}  // namespace vvm::vvmd
