// db/index.h: in-memory B-tree indexes over a table's records, rebuilt from the table on open
// (a 1M-record table opens in about 0.8 s on two cores; see bench/db), so that an index can never
// disagree with the records: there is nothing on disk to get out of step.
//
// A key is a tuple of field values encoded into a string whose byte order is the tuple's order
// (KeyBuilder), so composite keys and range scans are plain string ranges. An index is an
// absl::btree_set of (key, slot) pairs: Debian packs Abseil, its B-tree is several times denser
// than std::map's red-black tree and faster to search, and we need no on-disk B-tree. With the
// slot in the entry, a non-unique key held by thousands of records is still removed in log time.
//
// A unique index also keeps a hash map from key to slot, for point lookups: finding one of 1M
// keys in the B-tree costs about 8 levels of cache misses (~1 us here), the hash map one or two.
// The B-tree keeps the order for range scans. (InnoDB's adaptive hash index does the same.) It
// costs ~50 bytes a key of memory.
#pragma once

#include <absl/container/btree_set.h>
#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "db/record.h"

namespace vvm::db {

void* allocate_bytes(size_t bytes);
void deallocate_bytes(void* p, size_t bytes);

// Gives arrays of 2 MiB or more their own mapping with transparent huge pages asked for
// (MADV_HUGEPAGE): a point lookup in a 1M-key hash map lands on a random one of ~12,000 4-KiB
// pages, and the page walk after each TLB miss costs as much as the lookup itself.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: rebinding, as allocators do
  T* allocate(size_t n) { return static_cast<T*>(allocate_bytes(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { deallocate_bytes(p, n * sizeof(T)); }
  bool operator==(const HugePageAllocator&) const { return true; }
};

// Builds an order-preserving key: text sorts as bytes, numbers as numbers.
class KeyBuilder {
 public:
  KeyBuilder& text(std::string_view s);  // s holds no byte below 0x02
  KeyBuilder& number(uint64_t n);
  const std::string& key() const { return key_; }
  operator std::string() const { return key_; }  // NOLINT: a builder reads as its key

 private:
  std::string key_;
};

// A range [lo, hi) of keys, as scan_index takes them, built without knowing how keys are coded.
struct KeyRange {
  std::string lo, hi;
};
// Every key whose first part is text: the whole of a name index.
KeyRange every_text_key();
// The keys whose first part is text starting with `prefix` ("A": the names of class A's VVs).
KeyRange text_prefix(std::string_view prefix);
// The keys whose first part is the number `n` (a client id's VVs).
KeyRange number_prefix(uint64_t n);
// The lowest key above the one of `text` alone: a page's start after its last name.
std::string past_text(std::string_view text);

class Index {
 public:
  // The keys one record has in this index: none (the record is not in it, say a VV that is not
  // hot in the "hot" index), one, or several (a VV has one key per VSN holding a copy).
  // It appends them to `out`.
  using KeysOf = std::function<void(const Values&, std::vector<std::string>& out)>;
  using Entry = std::pair<std::string, uint64_t>;  // key, slot

  Index(std::string name, bool unique, KeysOf keys_of)
      : name_(std::move(name)), unique_(unique), keys_of_(std::move(keys_of)) {}

  const std::string& name() const { return name_; }
  bool unique() const { return unique_; }
  // The same index with no entries: what a table's records are indexed into again.
  Index empty_copy() const { return Index(name_, unique_, keys_of_); }
  std::vector<std::string> keys_of(const Values& v) const {
    std::vector<std::string> keys;
    keys_of_(v, keys);
    return keys;
  }
  void append_keys(const Values& v, std::vector<std::string>& out) const { keys_of_(v, out); }
  size_t size() const { return set_.size(); }

  // AlreadyExists, naming the index, the key and the record that has it, when a unique index
  // has `key` already for a slot other than `slot`.
  Status check(const std::string& key, uint64_t slot) const;
  void insert(const std::string& key, uint64_t slot);
  void erase(const std::string& key, uint64_t slot);
  // Fills an empty index from every entry of a table, sorting them first (a B-tree filled in
  // order is built at its end, several times faster than at random places). AlreadyExists
  // naming the key and both records when a unique index has a key twice.
  Status build(std::vector<Entry> entries);

  // The slot of `key` (the first one in a non-unique index).
  std::optional<uint64_t> find(const std::string& key) const;
  // Every slot whose key starts with `prefix`, in key order; `each` returns false to stop.
  void scan_prefix(const std::string& prefix,
                   const std::function<bool(const std::string&, uint64_t)>& each) const;
  // Every slot with lo <= key < hi, in key order.
  void scan_range(const std::string& lo, const std::string& hi,
                  const std::function<bool(const std::string&, uint64_t)>& each) const;
  // All (key, slot) pairs, for checking against a full scan.
  std::vector<Entry> entries() const { return {set_.begin(), set_.end()}; }
  // A unique index's hash map against its B-tree: Ok, or Internal naming the first difference.
  Status verify_point() const;

 private:
  std::string name_;
  bool unique_;
  KeysOf keys_of_;
  absl::btree_set<Entry> set_;
  // Unique indexes only: key -> slot.
  absl::flat_hash_map<std::string, uint64_t,
                      absl::container_internal::hash_default_hash<std::string>,
                      absl::container_internal::hash_default_eq<std::string>,
                      HugePageAllocator<std::pair<const std::string, uint64_t>>>
      point_;
};

// A readable form of a key for messages: components separated by '/', numbers in decimal.
std::string describe_key(std::string_view key);

}  // namespace vvm::db
