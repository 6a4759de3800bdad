// common/vv.cc: the words for VV, VSN and copy states (common/vv.h, common/vsn.h,
// common/copy_mark.h).
#include "common/vv.h"
#include "common/copy_mark.h"
#include "common/vsn.h"

namespace vvm {

std::string_view vv_state_name(VvState s) {
  switch (s) {
    case VvState::kAny: return "any";
    case VvState::kHot: return "hot";
    case VvState::kFinished: return "finished";
    case VvState::kArchived: return "archived";
  }
  return "unknown";
}

std::string_view cache_state_name(CacheState s) {
  switch (s) {
    case CacheState::kCached: return "cached";
    case CacheState::kEvicted: return "evicted";
    case CacheState::kStaging: return "staging";
  }
  return "unknown";
}

std::optional<VvState> parse_vv_state(std::string_view name) {
  for (VvState s : {VvState::kHot, VvState::kFinished, VvState::kArchived}) {
    if (vv_state_name(s) == name) return s;
  }
  return std::nullopt;
}

std::optional<CacheState> parse_cache_state(std::string_view name) {
  for (CacheState s : {CacheState::kCached, CacheState::kEvicted, CacheState::kStaging}) {
    if (cache_state_name(s) == name) return s;
  }
  return std::nullopt;
}

std::string_view vsn_state_name(VsnState s) {
  switch (s) {
    case VsnState::kBlank: return "blank";
    case VsnState::kHot: return "hot";
    case VsnState::kFull: return "full";
    case VsnState::kRetired: return "retired";
    case VsnState::kReadOnly: return "read-only";
    case VsnState::kDisabled: return "disabled";
    case VsnState::kReclaim: return "reclaim";
    case VsnState::kBad: return "bad";
  }
  return "unknown";
}

std::optional<VsnState> parse_vsn_state(std::string_view name) {
  for (VsnState s :
       {VsnState::kBlank, VsnState::kHot, VsnState::kFull, VsnState::kRetired, VsnState::kReadOnly,
        VsnState::kDisabled, VsnState::kReclaim, VsnState::kBad}) {
    if (vsn_state_name(s) == name) return s;
  }
  return std::nullopt;
}

std::string_view copy_mark_state_name(CopyMarkState s) {
  switch (s) {
    case CopyMarkState::kBad: return "bad";
    case CopyMarkState::kDead: return "dead";
  }
  return "unknown";
}

std::optional<CopyMarkState> parse_copy_mark_state(std::string_view name) {
  for (CopyMarkState s : {CopyMarkState::kBad, CopyMarkState::kDead}) {
    if (copy_mark_state_name(s) == name) return s;
  }
  return std::nullopt;
}

}  // namespace vvm
