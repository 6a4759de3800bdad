// common/vv.h: a virtual volume as every vvm process knows it: its states, its copies on tape and
// every field of its database record. vvmd's VV table, the control protocol and vvctl all use
// this one type (DESIGN.md, "VV lifecycle").
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vvm {

// The numbers are the control protocol's (vvm_proto.x: vvm_vv_state, vvm_vv_cache).
enum class VvState : uint32_t { kAny = 0, kHot = 1, kFinished = 2, kArchived = 3 };
enum class CacheState : uint32_t { kCached = 1, kEvicted = 2, kStaging = 3 };
// "hot", "finished", "archived" ("any" for kAny); "cached", "evicted", "staging": the words the
// database and vvctl use.
std::string_view vv_state_name(VvState s);
std::string_view cache_state_name(CacheState s);
std::optional<VvState> parse_vv_state(std::string_view name);  // not "any"
std::optional<CacheState> parse_cache_state(std::string_view name);

inline constexpr int kMaxVvCopies = 4;  // one copy per media type of the VV's class
struct VvCopy {
  std::string vsn;  // "" when that copy does not exist yet
  uint64_t file = 0;
  bool operator==(const VvCopy&) const = default;
};

struct Vv {
  std::string name;  // "A0000000042"
  std::string vv_class;
  uint64_t serial = 0;
  uint64_t client_id = 0;
  std::string owner, group;
  uint32_t perms = 0640;
  uint64_t size = 0;
  VvState state = VvState::kHot;
  CacheState cache = CacheState::kCached;
  uint64_t created = 0, finished = 0, accessed = 0;  // unix seconds
  uint64_t checksum = 0;
  std::array<VvCopy, kMaxVvCopies> copies{};  // copy i on the class's i-th media type
  bool operator==(const Vv&) const = default;
};

}  // namespace vvm
