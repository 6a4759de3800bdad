// db/indexed_table.h: a table and its indexes, changed only together. This is what vvmd uses:
// there is no way to change a record here without its indexes following, and a change that
// would break a unique index is refused before anything is written.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "db/index.h"
#include "db/table.h"

namespace vvm::db {

class IndexedTable {
 public:
  static Result<IndexedTable> create(const std::string& path, const Schema& schema,
                                     std::vector<Index> indexes);
  // Opens the table and builds every index from its records. Two records with one key in a
  // unique index stop the open, naming both.
  static Result<IndexedTable> open(const std::string& path, const Schema& schema,
                                   std::vector<Index> indexes);

  const Schema& schema() const { return table_->schema(); }
  uint64_t live_count() const { return table_->live_count(); }

  Result<uint64_t> insert(const Values& values);
  Status update(uint64_t slot, const Values& values);
  Status erase(uint64_t slot);
  Result<Values> read(uint64_t slot) { return table_->read(slot); }
  Status scan(const std::function<void(uint64_t, const Values&)>& each) {
    return table_->scan(each);
  }
  Status sync() { return table_->sync(); }

  // The index called `name`; nullptr when there is none.
  const Index* index(std::string_view name) const;
  // The live record with `key` in unique index `name`: its slot and values; NotFound otherwise.
  Result<std::pair<uint64_t, Values>> lookup(std::string_view name, const std::string& key);
  // The same into `out` (see Table::read_into); the slot.
  Result<uint64_t> lookup_into(std::string_view name, const std::string& key, Values* out);
  Result<uint64_t> lookup_to(std::string_view name, const std::string& key, FieldSink& sink);

  // Puts `values` back into the free slot `slot`, keys and all (undoes an erase).
  Status insert_at(uint64_t slot, const Values& values);
  // The table underneath, for the Database's deferred writes; never for changing records.
  Table& table() { return *table_; }

  // Reads the table again from its file, and its indexes from those records: what a restart
  // would find, dropping what was changed in memory only. The database does this when its
  // journal fails, so that reads go on from what is durable. With `journaled` (images of
  // journal frames that a restart writes into the file before reading it), the file is read
  // into memory and they are put there first, since they could not be written to the file
  // itself. Unchanged on failure.
  Status reload(const std::vector<Table::Image>& journaled = {});

  // Rebuilds every index from a full scan and compares: Ok, or Internal naming the first
  // difference. For tests, the crash test and `vvctl db check`.
  Status verify();

 private:
  // open() on the table that `open_table` opens, given the per-record callback and how many
  // workers call it.
  using TableOpener = std::function<Result<Table>(const Table::EachLive&, int workers)>;
  static Result<IndexedTable> build(const std::string& path, const TableOpener& open_table,
                                    std::vector<Index> indexes);

  IndexedTable(Table table, std::vector<Index> indexes)
      : table_(std::make_unique<Table>(std::move(table))), indexes_(std::move(indexes)) {}
  Status check_unique(const Values& values, uint64_t slot) const;
  void add_keys(const Values& values, uint64_t slot);
  void remove_keys(const Values& values, uint64_t slot);

  std::unique_ptr<Table> table_;
  std::vector<Index> indexes_;
};

}  // namespace vvm::db
