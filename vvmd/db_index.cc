// db_index.cc: order-preserving keys and the B-tree index; see db_index.h.
#include "db_index.h"

#include <algorithm>

#include <fmt/core.h>

namespace vvm::db {

namespace {
constexpr char kTextTag = '\x01';    // text follows, ended by kTextEnd
constexpr char kTextEnd = '\x00';    // below every text byte, so "ab" < "abc"
constexpr char kNumberTag = '\x02';  // 8 big-endian bytes follow
}  // namespace

KeyBuilder& KeyBuilder::text(std::string_view s) {
  key_ += kTextTag;
  key_ += s;
  key_ += kTextEnd;
  return *this;
}

KeyBuilder& KeyBuilder::number(uint64_t n) {
  key_ += kNumberTag;
  for (int shift = 56; shift >= 0; shift -= 8) key_ += static_cast<char>((n >> shift) & 0xff);
  return *this;
}

std::string describe_key(std::string_view key) {
  std::string out;
  size_t i = 0;
  while (i < key.size()) {
    if (!out.empty()) out += '/';
    if (key[i] == kTextTag) {
      size_t end = key.find(kTextEnd, i + 1);
      if (end == std::string_view::npos) end = key.size();
      out += key.substr(i + 1, end - i - 1);
      i = end + 1;
    } else if (key[i] == kNumberTag && i + 9 <= key.size()) {
      uint64_t n = 0;
      for (size_t j = 1; j <= 8; ++j) n = n << 8 | static_cast<unsigned char>(key[i + j]);
      out += std::to_string(n);
      i += 9;
    } else {
      out += "?";
      break;
    }
  }
  return out;
}

Status Index::check(const std::string& key, uint64_t slot) const {
  if (!unique_) return Status::Ok();
  auto it = set_.lower_bound(Entry(key, 0));
  if (it != set_.end() && it->first == key && it->second == slot) ++it;  // its own entry
  if (it == set_.end() || it->first != key) return Status::Ok();
  return Status::AlreadyExists(fmt::format("index {}: key '{}' is already record {}'s", name_,
                                           describe_key(key), it->second));
}

Status Index::build(std::vector<Entry> entries) {
  std::sort(entries.begin(), entries.end());
  if (unique_) {
    auto dup =
        std::adjacent_find(entries.begin(), entries.end(),
                           [](const Entry& a, const Entry& b) { return a.first == b.first; });
    if (dup != entries.end()) {
      return Status::AlreadyExists(fmt::format("index {}: key '{}' is held by records {} and {}",
                                               name_, describe_key(dup->first), dup->second,
                                               std::next(dup)->second));
    }
  }
  set_.clear();
  for (Entry& e : entries) set_.insert(set_.end(), std::move(e));
  return Status::Ok();
}

std::optional<uint64_t> Index::find(const std::string& key) const {
  auto it = set_.lower_bound(Entry(key, 0));
  if (it == set_.end() || it->first != key) return std::nullopt;
  return it->second;
}

void Index::scan_prefix(const std::string& prefix,
                        const std::function<bool(const std::string&, uint64_t)>& each) const {
  for (auto it = set_.lower_bound(Entry(prefix, 0)); it != set_.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    if (!each(it->first, it->second)) break;
  }
}

void Index::scan_range(const std::string& lo, const std::string& hi,
                       const std::function<bool(const std::string&, uint64_t)>& each) const {
  for (auto it = set_.lower_bound(Entry(lo, 0)); it != set_.end() && it->first < hi; ++it) {
    if (!each(it->first, it->second)) break;
  }
}

}  // namespace vvm::db
