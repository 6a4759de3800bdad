// sched/class_copies.cc: see class_copies.h.
#include "sched/class_copies.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/core.h>
#include <fmt/ranges.h>

namespace vvm::vvmd {

ClassCopies class_copies(const Vv& vv, const std::vector<std::string>& class_media,
                         const std::function<std::string(const std::string& vsn)>& media_of) {
  ClassCopies out;
  std::set<std::string> have;
  std::vector<bool> used(vv.copies.size(), false);
  for (size_t i = 0; i < vv.copies.size(); ++i) {
    if (vv.copies[i].vsn.empty()) continue;
    used[i] = true;
    std::string media = media_of(vv.copies[i].vsn);
    if (media.empty() && i < class_media.size()) media = class_media[i];
    const bool listed =
        std::find(class_media.begin(), class_media.end(), media) != class_media.end();
    if (listed && have.insert(media).second) continue;
    out.extra.push_back(i);
    out.extra_media.push_back(media);
  }
  std::vector<bool> taken = used;
  for (size_t k = 0; k < class_media.size(); ++k) {
    if (have.contains(class_media[k])) continue;
    // Its own position first, so that a new VV's copies sit where they always did.
    size_t slot = kMaxVvCopies;
    if (k < taken.size() && !taken[k]) {
      slot = k;
    } else {
      for (size_t i = 0; i < taken.size(); ++i) {
        if (!taken[i]) {
          slot = i;
          break;
        }
      }
    }
    if (slot < taken.size()) taken[slot] = true;
    out.lacking.push_back({class_media[k], slot});
  }
  return out;
}

CopyRoute copy_route(bool cached, const std::vector<CopySource>& sources, const std::string& media,
                     const std::vector<DriveState>& drives) {
  CopyRoute route;
  if (cached) {
    route.kind = CopyRoute::Kind::kFromCache;
    return route;
  }
  if (sources.empty()) {
    route.why = "it has no copy on a tape that may be read";
    return route;
  }
  // Drives up, by mover and media type.
  std::map<std::string, std::map<std::string, size_t>> up;
  for (const DriveState& d : drives) {
    if (!d.down) ++up[d.mover][d.media];
  }
  for (const CopySource& s : sources) {
    for (const auto& [mover, by_media] : up) {
      auto count = [&](const std::string& m) {
        auto it = by_media.find(m);
        return it == by_media.end() ? size_t{0} : it->second;
      };
      // One drive reads, another writes: two of one type when both tapes are of it.
      const bool both =
          s.media == media ? count(media) >= 2 : count(s.media) >= 1 && count(media) >= 1;
      if (both) {
        route.kind = CopyRoute::Kind::kTapeToTape;
        route.source = s;
        route.mover = mover;
        return route;
      }
    }
  }
  std::vector<std::string> read;
  for (const CopySource& s : sources) {
    std::string m = fmt::format("{} ({})", s.media.empty() ? "?" : s.media, s.vsn);
    if (std::find(read.begin(), read.end(), m) == read.end()) read.push_back(m);
  }
  route.why =
      fmt::format("no mover has a drive up for {} and one for {}", fmt::join(read, " or "), media);
  return route;
}

}  // namespace vvm::vvmd
