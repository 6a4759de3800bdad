// vv_names.cc: VV names, serials, permission bits and list filters; see vv_names.h.
#include "catalog/vv_names.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>

namespace vvm::vvmd {

std::string format_vv_name(char vv_class, uint64_t serial) {
  return fmt::format("{}{:010d}", vv_class, serial);
}

Result<VvName> parse_vv_name(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(
        fmt::format("'{}' is not a VV name ({}; a VV name is a class letter and 10 digits, as "
                    "A0000000042)",
                    text, why));
  };
  if (text.size() != 11) return bad(fmt::format("{} characters", text.size()));
  const unsigned char c = static_cast<unsigned char>(text[0]);
  if (!std::isupper(c) && !std::isdigit(c)) return bad("the class is not A-Z or 0-9");
  VvName name{text[0], 0};
  for (char d : text.substr(1)) {
    if (d < '0' || d > '9') return bad("the serial is not 10 digits");
    name.serial = name.serial * 10 + static_cast<uint64_t>(d - '0');
  }
  return name;
}

void SerialAllocator::observe(char vv_class, uint64_t serial) {
  uint64_t& h = highest_[vv_class];
  h = std::max(h, serial);
}

Result<uint64_t> SerialAllocator::next(char vv_class) {
  uint64_t& h = highest_[vv_class];
  if (h >= kMaxSerial) {
    return Status::NoSpace(
        fmt::format("class {} has used every serial up to {}", vv_class, kMaxSerial));
  }
  return ++h;
}

uint64_t SerialAllocator::highest(char vv_class) const {
  auto it = highest_.find(vv_class);
  return it == highest_.end() ? 0 : it->second;
}

Result<uint32_t> parse_perms(std::string_view text) {
  if (text.empty()) return 0640u;
  uint32_t v = 0;
  bool ok = text.size() <= 5;
  for (char d : text) {
    if (d < '0' || d > '7') ok = false;
    v = v * 8 + static_cast<uint32_t>(d - '0');
  }
  if (!ok || v > 07777) {
    return Status::InvalidArgument(
        fmt::format("perms '{}': expected octal mode bits, at most 07777 (as 0640)", text));
  }
  return v;
}

std::string format_perms(uint32_t perms) { return fmt::format("{:04o}", perms); }

bool VvFilter::matches(const Vv& r) const {
  if (state != VvState::kAny && r.state != state) return false;
  if (!vv_class.empty() && r.vv_class != vv_class) return false;
  if (client_id && r.client_id != *client_id) return false;
  return true;
}

}  // namespace vvm::vvmd
