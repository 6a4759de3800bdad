// common/vv.h: a virtual volume as every vvm process knows it: its states, its copies on tape and
// every field of its database record. vvmd's VV table, the control protocol and vvctl all use
// this one type (DESIGN.md, "VV lifecycle"). `fields` is its wire form, vvm_proto.x's
// vvm_vv_info, in the vocabulary proto/messages.h describes.
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
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "vv copy vsn");
    f.u64(m.file);
  }
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
  std::array<VvCopy, kMaxVvCopies> copies{};  // slots; a copy's media type is its VSN's
  bool operator==(const Vv&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "vv name");
    f.short_string(m.vv_class, "vv class");
    f.u64(m.serial);
    f.u64(m.client_id);
    f.short_string(m.owner, "vv owner");
    f.short_string(m.group, "vv group");
    f.u32(m.perms);
    f.u64(m.size);
    f.enumeration(m.state, VvState::kHot, VvState::kArchived, "VV", "VV state");
    f.enumeration(m.cache, CacheState::kCached, CacheState::kStaging, "VV", "cache state");
    f.u64(m.created);
    f.u64(m.finished);
    f.u64(m.accessed);
    f.u64(m.checksum);
    f.array(m.copies);
  }
};

}  // namespace vvm
