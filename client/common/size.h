// size.h: parsing of sizes and durations as they appear in vvm.conf and packtab.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace vvm {

// "4096", "512K", "10G", "2T": decimal digits and an optional binary suffix K, M, G, T (or k, m,
// g, t; 1K = 1024). Anything else, or a value past 2^64 - 1, is an error whose message quotes the
// text and says why ("'12Q': unknown suffix 'Q' (use K, M, G or T)").
Result<uint64_t> parse_size(std::string_view text);

// "90", "30s", "10m", "1h", "2d": seconds by default.
Result<std::chrono::seconds> parse_duration(std::string_view text);

// The largest exact binary unit: 1073741824 -> "1G", 1536 -> "1536", 0 -> "0".
std::string format_size(uint64_t bytes);

}  // namespace vvm
