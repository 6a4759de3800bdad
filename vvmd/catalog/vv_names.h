// vv_names.h: the pure rules of vvmd's VV catalogue, apart from the database and the files, so
// that unit tests reach them directly: VV names and serials, permission bits, and list filters.
//
// A VV is named by its class letter and a 10-digit serial ("A0000000042", DESIGN.md). Serials
// count up per class from 1 and are never handed out twice, even when a create then fails or the
// VV is removed (its tape files keep the serial in their labels): a gap is harmless, a reuse is
// not. vvmd learns the highest of each class at start from the counter "serial.C" in the database
// (set in the same transaction as each create) and from a scan of the VV table (for databases
// older than the counters), then keeps counting in memory, so a create costs no scan.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/vv.h"
#include "proto/messages.h"

namespace vvm::vvmd {

inline constexpr uint64_t kMaxSerial = 9'999'999'999;  // 10 decimal digits

struct VvName {
  char vv_class = 'A';
  uint64_t serial = 0;
};

// The database counter holding class `vv_class`'s highest serial: "serial.A".
inline std::string serial_counter(char vv_class) { return std::string("serial.") + vv_class; }

// "A0000000042"; the serial must be at most kMaxSerial.
std::string format_vv_name(char vv_class, uint64_t serial);
// InvalidArgument quoting `text` unless it is an uppercase letter or digit and 10 digits.
Result<VvName> parse_vv_name(std::string_view text);

class SerialAllocator {
 public:
  // A serial already in use in `vv_class` (from the start-up scan).
  void observe(char vv_class, uint64_t serial);
  // One more than the highest serial of `vv_class` observed or handed out; NoSpace once the
  // class has used every 10-digit serial.
  Result<uint64_t> next(char vv_class);
  uint64_t highest(char vv_class) const;

 private:
  std::map<char, uint64_t> highest_;
};

// "0640", "640", "600": octal, at most 07777; "" is the default 0640.
Result<uint32_t> parse_perms(std::string_view text);
std::string format_perms(uint32_t perms);  // "0640", as the record and the log show it

// What VV_LIST asks for, apart from paging.
struct VvFilter {
  VvState state = VvState::kAny;
  std::string vv_class;               // "": any
  std::optional<uint64_t> client_id;  // nullopt: any
  bool matches(const Vv& r) const;
};

}  // namespace vvm::vvmd
