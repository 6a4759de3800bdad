// common/psk_file.cc: GnuTLS's PSK key file, read and checked; see common/psk_file.h.
#include "common/psk_file.h"

#include <algorithm>
#include <string_view>

#include <fmt/core.h>

#include "common/config.h"

namespace vvm {

namespace {

bool is_hex(std::string_view s) {
  if (s.empty() || s.size() % 2 != 0) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

}  // namespace

Result<std::vector<PskLine>> read_psk_file(const std::string& file) {
  auto text = read_text_file(file);
  if (!text.ok()) return text.status();
  std::vector<PskLine> lines;
  int line = 0;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    std::string_view entry = std::string_view(*text).substr(pos, end - pos);
    pos = end + 1;
    ++line;
    if (!entry.empty() && entry.back() == '\r') entry.remove_suffix(1);
    if (entry.empty()) continue;
    size_t colon = entry.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Status::InvalidArgument(
          fmt::format("{}:{}: not USERNAME:HEXKEY (as psktool writes it)", file, line));
    }
    std::string_view key = entry.substr(colon + 1);
    if (!is_hex(key)) {
      return Status::InvalidArgument(
          fmt::format("{}:{}: the key of '{}' is not an even number of hex digits", file, line,
                      entry.substr(0, colon)));
    }
    lines.push_back({line, std::string(entry.substr(0, colon)), std::string(key)});
  }
  if (lines.empty()) {
    return Status::InvalidArgument(fmt::format("{}: holds no PSK user", file));
  }
  return lines;
}

}  // namespace vvm
