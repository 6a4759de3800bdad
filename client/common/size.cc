// size.cc: sizes ("512K", "18T") and durations ("30s", "1h") as vvm.conf and packtab write them.
#include "common/size.h"

#include <fmt/core.h>

#include <cctype>
#include <limits>

namespace vvm {

namespace {

// Reads the leading decimal digits of `text` into `value`. Returns how many digits there were, or
// -1 when the number does not fit in 64 bits.
int parse_digits(std::string_view text, uint64_t& value) {
  value = 0;
  int n = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return -1;
    value = value * 10 + digit;
    ++n;
  }
  return n;
}

// The reason a text that does not start with a digit is no number; "" when it does.
std::string why_not_a_number(std::string_view text) {
  if (text.empty()) return "empty";
  if (text[0] == '-') return "negative";
  if (text[0] == '+') return "a sign is not allowed";
  if (std::isspace(static_cast<unsigned char>(text[0]))) return "leading blank";
  if (!std::isdigit(static_cast<unsigned char>(text[0]))) return "not a number";
  return "";
}

}  // namespace

Result<uint64_t> parse_size(std::string_view text) {
  auto fail = [&](std::string_view reason) {
    return Status::InvalidArgument(fmt::format("'{}': {}", text, reason));
  };
  if (std::string why = why_not_a_number(text); !why.empty()) return fail(why);
  uint64_t value = 0;
  int digits = parse_digits(text, value);
  if (digits < 0) return fail("too large (more than 2^64 - 1 bytes)");
  std::string_view rest = text.substr(static_cast<size_t>(digits));
  if (rest.empty()) return value;
  if (rest[0] == '.' || rest[0] == ',') return fail("not a whole number (write 1536M, not 1.5G)");
  if (rest.size() > 1) {
    return fail(fmt::format("unexpected '{}' after the number (use one of K, M, G or T)", rest));
  }
  int shift = 0;
  switch (std::toupper(static_cast<unsigned char>(rest[0]))) {
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: return fail(fmt::format("unknown suffix '{}' (use K, M, G or T)", rest));
  }
  if (value > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return fail("too large (more than 2^64 - 1 bytes)");
  }
  return value << shift;
}

Result<std::chrono::seconds> parse_duration(std::string_view text) {
  auto fail = [&](std::string_view reason) {
    return Status::InvalidArgument(fmt::format("'{}': {}", text, reason));
  };
  if (std::string why = why_not_a_number(text); !why.empty()) return fail(why);
  uint64_t value = 0;
  int digits = parse_digits(text, value);
  constexpr uint64_t kMax = std::numeric_limits<std::chrono::seconds::rep>::max();
  if (digits < 0 || value > kMax) return fail("too long");
  std::string_view rest = text.substr(static_cast<size_t>(digits));
  if (!rest.empty() && (rest[0] == '.' || rest[0] == ',')) {
    return fail("not a whole number (write 90m, not 1.5h)");
  }
  if (rest.size() > 1) {
    return fail(fmt::format("unexpected '{}' after the number (use one of s, m, h or d)", rest));
  }
  uint64_t unit = 1;
  if (!rest.empty()) {
    switch (rest[0]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      default: return fail(fmt::format("unknown unit '{}' (use s, m, h or d)", rest));
    }
  }
  if (value > kMax / unit) return fail("too long");
  return std::chrono::seconds(static_cast<std::chrono::seconds::rep>(value * unit));
}

std::string format_size(uint64_t bytes) {
  if (bytes == 0) return "0";
  static constexpr struct {
    int shift;
    char suffix;
  } kUnits[] = {{40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
  for (const auto& unit : kUnits) {
    uint64_t mask = (uint64_t{1} << unit.shift) - 1;
    if ((bytes & mask) == 0) return fmt::format("{}{}", bytes >> unit.shift, unit.suffix);
  }
  return fmt::format("{}", bytes);
}

}  // namespace vvm
