// db/index.cc: order-preserving keys and the B-tree index; see db/index.h.
#include "db/index.h"

#include <sys/mman.h>

#include <new>

#include <algorithm>

#include <fmt/core.h>

namespace vvm::db {

void* allocate_bytes(size_t bytes) {
  constexpr size_t kHuge = 2 << 20;
  if (bytes < kHuge) return ::operator new(bytes);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  ::madvise(p, bytes, MADV_HUGEPAGE);  // a hint: without it, ordinary pages
  return p;
}

void deallocate_bytes(void* p, size_t bytes) {
  if (bytes < (2 << 20)) {
    ::operator delete(p);
  } else {
    ::munmap(p, bytes);
  }
}

namespace {
constexpr char kTextTag = '\x01';    // text follows, ended by kTextEnd
constexpr char kTextEnd = '\x00';    // below every text byte, so "ab" < "abc"
constexpr char kNumberTag = '\x02';  // 8 big-endian bytes follow
}  // namespace

KeyRange every_text_key() {
  return {std::string(1, kTextTag), std::string(1, static_cast<char>(kTextTag + 1))};
}

KeyRange text_prefix(std::string_view prefix) {
  if (prefix.empty()) return every_text_key();
  KeyRange r{kTextTag + std::string(prefix), kTextTag + std::string(prefix)};
  r.hi.back() = static_cast<char>(r.hi.back() + 1);  // past every key that starts with prefix
  return r;
}

KeyRange number_prefix(uint64_t n) {
  if (n == UINT64_MAX)
    return {KeyBuilder().number(n), std::string(1, static_cast<char>(kNumberTag + 1))};
  return {KeyBuilder().number(n), KeyBuilder().number(n + 1)};
}

std::string past_text(std::string_view text) {
  // Every longer key that starts with text's key sorts after it, so one zero byte is the least
  // key above it.
  return KeyBuilder().text(text).key() + '\x00';
}

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
  auto it = point_.find(key);
  if (it == point_.end() || it->second == slot) return Status::Ok();
  return Status::AlreadyExists(fmt::format("index {}: key '{}' is already record {}'s", name_,
                                           describe_key(key), it->second));
}

void Index::insert(const std::string& key, uint64_t slot) {
  set_.emplace(key, slot);
  if (unique_) point_.insert_or_assign(key, slot);
}

void Index::erase(const std::string& key, uint64_t slot) {
  set_.erase(Entry(key, slot));
  if (unique_) {
    if (auto it = point_.find(key); it != point_.end() && it->second == slot) point_.erase(it);
  }
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
    point_.clear();
    point_.reserve(entries.size());
    for (const Entry& e : entries) point_.emplace(e.first, e.second);
  }
  set_.clear();
  for (Entry& e : entries) set_.insert(set_.end(), std::move(e));
  return Status::Ok();
}

Status Index::verify_point() const {
  if (!unique_) return Status::Ok();
  if (point_.size() != set_.size()) {
    return Status::Internal(fmt::format("index {}: {} keys in its hash map, {} in its B-tree",
                                        name_, point_.size(), set_.size()));
  }
  for (const auto& [key, slot] : set_) {
    auto it = point_.find(key);
    if (it == point_.end() || it->second != slot) {
      return Status::Internal(
          fmt::format("index {}: the hash map disagrees on key '{}'", name_, describe_key(key)));
    }
  }
  return Status::Ok();
}

std::optional<uint64_t> Index::find(const std::string& key) const {
  if (unique_) {
    auto it = point_.find(key);
    if (it == point_.end()) return std::nullopt;
    return it->second;
  }
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
