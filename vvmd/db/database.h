// db/database.h: a database of several tables (db/indexed_table.h), each with its indexes, and
// the journal that makes a change to several records atomic and durable. It knows nothing of what
// the tables hold: the caller names them, with their schemas and indexes, at open (vvmd's are in
// catalog/tables.h).
//
// A commit appends the new images of every record it changes to the journal as one frame
// (length, sequence, images, CRC-32C), makes the journal durable with one fdatasync, and only
// then writes the records into the tables. Commits arriving while one is being written wait and
// go together in the next frame, so many writers share one fdatasync (group commit). On open,
// every whole frame of the journal (db/journal.h) is written into the tables again (the
// images are final values, so this is safe to repeat) before the tables are read; a frame cut short
// by a crash was never acknowledged and is dropped. When the journal passes a few MiB, the tables
// are synced and the journal emptied (a checkpoint). The journal keeps its size and is rewritten
// from its start, each round of frames with an epoch of its own.
//
// Reads go through the Database too; a record cannot be changed except by commit(), which keeps
// every index in step. Readers are not held up by a group's fdatasync: they see its records
// (from memory) as soon as they are applied, a moment before they are durable; if the journal
// then fails, the database refuses everything from there on.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "db/file.h"
#include "db/indexed_table.h"
#include "db/journal.h"

namespace vvm::db {

// A table of the database: its place in the list given to Database::open, which is also its
// number in the journal's images (so a caller never reorders that list, only appends to it).
enum class TableId : uint8_t {};

// One table as Database::open takes it.
struct TableSpec {
  std::string file;  // "vv.tab", in the database's folder
  const Schema* schema = nullptr;
  std::vector<Index> indexes;  // empty, to be filled from the records at open
};

class Transaction {
 public:
  struct Change {
    enum Kind { kInsert, kUpdate, kErase } kind;
    TableId table;
    uint64_t slot = 0;  // update, erase
    Values values;      // insert, update
  };
  void insert(TableId t, Values v) { changes_.push_back({Change::kInsert, t, 0, std::move(v)}); }
  void update(TableId t, uint64_t slot, Values v) {
    changes_.push_back({Change::kUpdate, t, slot, std::move(v)});
  }
  void erase(TableId t, uint64_t slot) { changes_.push_back({Change::kErase, t, slot, {}}); }
  const std::vector<Change>& changes() const { return changes_; }

 private:
  std::vector<Change> changes_;
};

class Database {
 public:
  // Opens (creating when missing) the tables of `tables` and the journal in `dir`, replaying the
  // journal, then opening (and upgrading, db/table.h) each table. At most 256 tables.
  static Result<std::unique_ptr<Database>> open(const std::string& dir,
                                                std::vector<TableSpec> tables,
                                                uint64_t checkpoint_bytes = 4 << 20);
  ~Database();

  // Applies every change of `txn` or none, durably. The slots of its inserts, in order. A
  // change that breaks a unique index or names a record that is not live fails the whole
  // transaction, and nothing of it is written. Thread-safe.
  Result<std::vector<uint64_t>> commit(const Transaction& txn);

  Result<Values> read(TableId t, uint64_t slot);
  Result<std::pair<uint64_t, Values>> lookup(TableId t, std::string_view index,
                                             const std::string& key);
  // The same two into `out`, reusing its room: a loop of reads allocates nothing.
  Status read_into(TableId t, uint64_t slot, Values* out);
  Result<uint64_t> lookup_into(TableId t, std::string_view index, const std::string& key,
                               Values* out);
  // The same two into `sink` (a typed record, say), with no Values in between.
  Status read_to(TableId t, uint64_t slot, FieldSink& sink);
  Result<uint64_t> lookup_to(TableId t, std::string_view index, const std::string& key,
                             FieldSink& sink);
  // Every record whose key in `index` lies in [lo, hi), in key order, read under the lock
  // (commits wait meanwhile: keep `each` short); `each` returns false to stop. InvalidArgument
  // for an unknown index.
  Status scan_index(TableId t, std::string_view index, const std::string& lo, const std::string& hi,
                    const std::function<bool(uint64_t slot, const Values&)>& each);
  // The same, each record of the range decoded into `sink`, then `each(slot)`.
  Status scan_to(TableId t, std::string_view index, const std::string& lo, const std::string& hi,
                 FieldSink& sink, const std::function<bool(uint64_t slot)>& each);
  // The index itself, unlocked: for tests and tools that run alone.
  const Index* index(TableId t, std::string_view name);
  Status scan(TableId t, const std::function<void(uint64_t, const Values&)>& each);
  uint64_t live_count(TableId t);
  // Every index against a full scan.
  Status verify();

 private:
  Database() = default;
  struct Writer {
    const Transaction* txn;
    Result<std::vector<uint64_t>> result = Status::Internal("not committed");
    bool done = false;
  };
  // The table numbered `t`; a caller's bug (abort) when there is none.
  IndexedTable& table(TableId t);
  // Applies `txn` to the tables in memory (deferred), undoing it all on the first failure.
  Result<std::vector<uint64_t>> apply(const Transaction& txn);
  using Images = std::vector<std::vector<Table::Image>>;  // by table
  // Journals `frame` (the commit point), writes the images, checkpoints when due. Runs without
  // the lock: only the leader of a group is here, and readers see the images in memory.
  Status write_group(const std::string& frame, const Images& images);
  // Empties the journal after a replay or a checkpoint (the tables being synced).
  Status reset_journal();

  std::string dir_;
  uint64_t checkpoint_bytes_ = 0;
  std::unique_ptr<Journal> journal_;
  std::vector<std::optional<IndexedTable>> tables_;
  std::optional<Status> failed_;

  std::mutex mutex_;  // the writer queue, and everything above for readers
  std::condition_variable cv_;
  std::deque<Writer*> writers_;
  bool in_flight_ = false;  // a group is being written, its images still in memory
};

}  // namespace vvm::db
