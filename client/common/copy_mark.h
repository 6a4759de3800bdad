// common/copy_mark.h: a tape file that is no longer a good copy of a VV, as every vvm process
// knows it: a copy that failed its checks on a read (bad), or one whose VV was removed (dead).
// vvmd keeps one in its copy table (copy.tab) for as long as the tape holds the file, so that a
// bad copy is never read again and is made anew, and so that a VSN's dead bytes are known;
// nothing on tape is ever overwritten in place. `fields` is its wire form, vvm_proto.x's
// vvm_copy_mark, in the vocabulary proto/messages.h describes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vvm {

// The numbers are the control protocol's (vvm_proto.x: vvm_copy_mark_state).
enum class CopyMarkState : uint32_t { kBad = 1, kDead = 2 };
// "bad", "dead": the words the database and vvctl use.
std::string_view copy_mark_state_name(CopyMarkState s);
std::optional<CopyMarkState> parse_copy_mark_state(std::string_view name);

struct CopyMark {
  std::string vsn;  // where the tape file is: "L00042" file 3
  uint64_t file = 0;
  std::string vv;     // the VV it was a copy of
  uint32_t copy = 0;  // which copy it was (1: the class's first media type)
  uint64_t size = 0;  // bytes of VV data in the file
  CopyMarkState state = CopyMarkState::kBad;
  uint64_t since = 0;  // unix seconds: when it was found bad, or its VV removed
  std::string by;      // who: "vvmd" (a read's checks), or the user who removed the VV
  std::string why;     // a bad copy: what its checks found
  bool operator==(const CopyMark&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "copy mark vsn");
    f.u64(m.file);
    f.short_string(m.vv, "copy mark vv");
    f.u32(m.copy);
    f.u64(m.size);
    f.enumeration(m.state, CopyMarkState::kBad, CopyMarkState::kDead, "copy mark", "copy state");
    f.u64(m.since);
    f.short_string(m.by, "copy mark by");
    f.long_string(m.why, "copy mark why");
  }
};

// When and how a copy was last read back and checked whole (vvctl vsn verify, the scrub), and
// with what result. vvmd keeps the last one of each tape file in its verify table (verify.tab).
// `fields` is its wire form, vvm_proto.x's vvm_verify_mark.
struct VerifyMark {
  std::string vsn;  // where the tape file is: "L00042" file 3
  uint64_t file = 0;
  std::string vv;     // the VV it is a copy of
  uint32_t copy = 0;  // which copy (1: the class's first media type)
  uint64_t when = 0;  // unix seconds
  std::string how;    // "verify", "scrub"
  bool good = true;
  std::string why;  // not good: what the checks found
  bool operator==(const VerifyMark&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "verify vsn");
    f.u64(m.file);
    f.short_string(m.vv, "verify vv");
    f.u32(m.copy);
    f.u64(m.when);
    f.short_string(m.how, "verify how");
    f.flag(m.good);
    f.long_string(m.why, "verify why");
  }
};

}  // namespace vvm
