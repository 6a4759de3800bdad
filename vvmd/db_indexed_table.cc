// db_indexed_table.cc: a table whose indexes always follow its records; see db_indexed_table.h.
#include "db_indexed_table.h"

#include <algorithm>

#include <fmt/core.h>

namespace vvm::db {

Result<IndexedTable> IndexedTable::create(const std::string& path, const Schema& schema,
                                          std::vector<Index> indexes) {
  auto table = Table::create(path, schema);
  if (!table.ok()) return table.status();
  return IndexedTable(std::move(*table), std::move(indexes));
}

Result<IndexedTable> IndexedTable::open(const std::string& path, const Schema& schema,
                                        std::vector<Index> indexes) {
  Status duplicate;
  auto table = Table::open(path, schema, [&](uint64_t slot, const Values& v) {
    for (Index& index : indexes) {
      for (const std::string& key : index.keys_of(v)) {
        if (duplicate.ok()) {
          if (Status s = index.check(key, slot); !s.ok()) {
            duplicate = Status(s.code(), fmt::format("{}: record {}: {}", path, slot, s.message()));
          }
        }
        index.insert(key, slot);
      }
    }
  });
  if (!table.ok()) return table.status();
  VVM_RETURN_IF_ERROR(duplicate);
  return IndexedTable(std::move(*table), std::move(indexes));
}

const Index* IndexedTable::index(std::string_view name) const {
  for (const Index& i : indexes_) {
    if (i.name() == name) return &i;
  }
  return nullptr;
}

Status IndexedTable::check_unique(const Values& values, uint64_t slot) const {
  for (const Index& index : indexes_) {
    for (const std::string& key : index.keys_of(values)) {
      VVM_RETURN_IF_ERROR(index.check(key, slot));
    }
  }
  return Status::Ok();
}

void IndexedTable::add_keys(const Values& values, uint64_t slot) {
  for (Index& index : indexes_) {
    for (const std::string& key : index.keys_of(values)) index.insert(key, slot);
  }
}

void IndexedTable::remove_keys(const Values& values, uint64_t slot) {
  for (Index& index : indexes_) {
    for (const std::string& key : index.keys_of(values)) index.erase(key, slot);
  }
}

Result<uint64_t> IndexedTable::insert(const Values& values) {
  // No slot yet: nothing may hold any of its unique keys.
  VVM_RETURN_IF_ERROR(check_unique(values, UINT64_MAX));
  auto slot = table_->insert(values);
  if (!slot.ok()) return slot.status();
  add_keys(values, *slot);
  return slot;
}

Status IndexedTable::update(uint64_t slot, const Values& values) {
  auto old = table_->read(slot);
  if (!old.ok()) return old.status();
  VVM_RETURN_IF_ERROR(check_unique(values, slot));
  VVM_RETURN_IF_ERROR(table_->update(slot, values));
  remove_keys(*old, slot);
  add_keys(values, slot);
  return Status::Ok();
}

Status IndexedTable::insert_at(uint64_t slot, const Values& values) {
  VVM_RETURN_IF_ERROR(check_unique(values, slot));
  VVM_RETURN_IF_ERROR(table_->insert_at(slot, values));
  add_keys(values, slot);
  return Status::Ok();
}

Status IndexedTable::erase(uint64_t slot) {
  auto old = table_->read(slot);
  if (!old.ok()) return old.status();
  VVM_RETURN_IF_ERROR(table_->erase(slot));
  remove_keys(*old, slot);
  return Status::Ok();
}

Result<std::pair<uint64_t, Values>> IndexedTable::lookup(std::string_view name,
                                                         const std::string& key) {
  const Index* idx = index(name);
  if (!idx) return Status::InvalidArgument(fmt::format("no index '{}'", name));
  auto slot = idx->find(key);
  if (!slot) {
    return Status::NotFound(
        fmt::format("{}: no record with {} '{}'", schema().table(), name, describe_key(key)));
  }
  auto values = table_->read(*slot);
  if (!values.ok()) return values.status();
  return std::make_pair(*slot, std::move(*values));
}

Status IndexedTable::verify() {
  std::vector<std::vector<std::pair<std::string, uint64_t>>> want(indexes_.size());
  VVM_RETURN_IF_ERROR(table_->scan([&](uint64_t slot, const Values& v) {
    for (size_t i = 0; i < indexes_.size(); ++i) {
      for (const std::string& key : indexes_[i].keys_of(v)) want[i].emplace_back(key, slot);
    }
  }));
  for (size_t i = 0; i < indexes_.size(); ++i) {
    auto have = indexes_[i].entries();
    std::sort(want[i].begin(), want[i].end());
    std::sort(have.begin(), have.end());
    if (have != want[i]) {
      auto [h, w] = std::mismatch(have.begin(), have.end(), want[i].begin(), want[i].end());
      std::string at =
          h != have.end() ? fmt::format("has '{}' for record {}", describe_key(h->first), h->second)
          : w != want[i].end()
              ? fmt::format("lacks '{}' for record {}", describe_key(w->first), w->second)
              : std::string("differs");
      return Status::Internal(fmt::format("{}: index {} disagrees with a full scan: it {}",
                                          schema().table(), indexes_[i].name(), at));
    }
  }
  return Status::Ok();
}

}  // namespace vvm::db
