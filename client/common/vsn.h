// common/vsn.h: a tape volume (VSN) as every vvm process knows it: its state and every field of
// its database record. vvmd's VSN table, the control protocol and vvctl all use this one type.
// `fields` is its wire form, vvm_proto.x's vvm_vsn_info, in the vocabulary proto/messages.h
// describes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vvm {

// The numbers are the control protocol's (vvm_proto.x: vvm_vsn_state).
// blank, hot and full follow the tape's use; an operator (vvctl vsn set) or vvmd (errors in a
// row: read-only) sets the others. Only blank and hot tapes are written; disabled ones are never
// mounted; bad ones are read only for a copy that is nowhere else.
enum class VsnState : uint32_t {
  kBlank = 1,
  kHot = 2,
  kFull = 3,
  kRetired = 4,
  kReadOnly = 5,
  kDisabled = 6,
  kReclaim = 7,
  kBad = 8,
};
// "blank", "hot", "full", "retired", "read-only", "disabled", "reclaim", "bad": the words vvctl
// uses (the database writes read-only as "readonly", its field being 8 wide).
std::string_view vsn_state_name(VsnState s);
std::optional<VsnState> parse_vsn_state(std::string_view name);

struct Vsn {
  std::string name;       // "L00042"
  std::string media;      // "LTO9"
  std::string vsn_class;  // "A"; "": any class that lists its media
  VsnState state = VsnState::kBlank;
  std::string location;  // "slot", "drive:d0"; "" when out of the library
  uint64_t next_file = 1;
  uint64_t bytes_used = 0;
  uint64_t capacity = 0;
  uint64_t errors = 0;
  uint64_t last_mount = 0;  // unix seconds; 0: never
  bool operator==(const Vsn&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "vsn name");
    f.short_string(m.media, "vsn media");
    f.short_string(m.vsn_class, "vsn class");
    f.enumeration(m.state, VsnState::kBlank, VsnState::kBad, "VSN", "VSN state");
    f.short_string(m.location, "vsn location");
    f.u64(m.next_file);
    f.u64(m.bytes_used);
    f.u64(m.capacity);
    f.u64(m.errors);
    f.u64(m.last_mount);
  }
};

}  // namespace vvm
