// sched/class_copies.cc: see class_copies.h.
#include "sched/class_copies.h"

#include <algorithm>
#include <set>

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

}  // namespace vvm::vvmd
