// db/database.h: vvmd's database: the VV and VSN tables, their indexes, and the journal that
// makes a change to several records atomic and durable.
//
// A commit appends the new images of every record it changes to the journal as one frame
// (length, sequence, images, CRC-32C), makes the journal durable with one fdatasync, and only
// then writes the records into the tables. Commits arriving while one is being written wait and
// go together in the next frame, so many writers share one fdatasync (group commit). On open,
// every whole frame of the journal is written into the tables again (the images are final
// values, so this is safe to repeat) before the tables are read; a frame cut short by a crash
// was never acknowledged and is dropped. When the journal passes a few MiB, the tables are
// synced and the journal emptied (a checkpoint). The journal keeps its size and is rewritten from
// its start, each round of frames with an epoch of its own.
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
#include "db/schemas.h"

namespace vvm::db {

// The tables, numbered as the journal's images name them: never renumber.
enum class TableId : uint8_t { kVv = 0, kVsn = 1, kCounter = 2 };
inline constexpr size_t kTables = 3;

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
  // Opens (creating when missing) vv.tab, vsn.tab and journal in `dir`, replaying the journal.
  static Result<std::unique_ptr<Database>> open(const std::string& dir,
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
  // Typed: the record straight into the struct (VvSink, VsnSink), the slot for lookups.
  Status read_vv(uint64_t slot, VvRecord* out);
  Result<uint64_t> lookup_vv(std::string_view index, const std::string& key, VvRecord* out);
  Status read_vsn(uint64_t slot, VsnRecord* out);
  Result<uint64_t> lookup_vsn(std::string_view index, const std::string& key, VsnRecord* out);
  // Every record whose key in `index` lies in [lo, hi), in key order, read under the lock
  // (commits wait meanwhile: keep `each` short); `each` returns false to stop. InvalidArgument
  // for an unknown index.
  Status scan_index(TableId t, std::string_view index, const std::string& lo, const std::string& hi,
                    const std::function<bool(uint64_t slot, const Values&)>& each);
  // The same over the VV table, typed.
  Status scan_vv(std::string_view index, const std::string& lo, const std::string& hi,
                 const std::function<bool(uint64_t slot, const VvRecord&)>& each);
  // Counters (the counter table: a name and a number, for values that must never go back, such
  // as the highest VV serial of a class even after that VV is removed): the value, 0 if unset.
  Result<uint64_t> counter(std::string_view name);
  // Adds to `txn` the change that sets counter `name` to `value` (an insert the first time).
  Status set_counter(Transaction& txn, std::string_view name, uint64_t value);
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
  IndexedTable& table(TableId t) { return *tables_[static_cast<size_t>(t)]; }
  // Applies `txn` to the tables in memory (deferred), undoing it all on the first failure.
  Result<std::vector<uint64_t>> apply(const Transaction& txn);
  // The journal frame for everything applied so far (empty when nothing changed).
  using Images = std::array<std::vector<Table::Image>, kTables>;  // by table
  std::string make_frame(const Images& images);
  // Journals `frame` (the commit point), writes the images, checkpoints when due. Runs without
  // the lock: only the leader of a group is here, and readers see the images in memory.
  Status write_group(const std::string& frame, const Images& images);
  // The reads behind read_into/read_vv/... and lookup_into/lookup_vv/...: under the lock, into
  // `sink`.
  Status read_to(TableId t, uint64_t slot, FieldSink& sink);
  Result<uint64_t> lookup_to(TableId t, std::string_view index, const std::string& key,
                             FieldSink& sink);
  // scan_index and scan_vv: each record of the range decoded into `sink`, then `each(slot)`.
  Status scan_to(TableId t, std::string_view index, const std::string& lo, const std::string& hi,
                 FieldSink& sink, const std::function<bool(uint64_t)>& each);
  // Empties the journal after a replay or a checkpoint (the tables being synced).
  Status reset_journal();

  std::string dir_;
  uint64_t checkpoint_bytes_ = 0;
  std::unique_ptr<File> journal_;
  uint64_t journal_size_ = 0;
  std::string journal_tail_;  // the journal's bytes in its last, partly used 4 KiB block
  uint64_t sequence_ = 0;
  uint64_t epoch_ = 0;
  std::array<std::optional<IndexedTable>, kTables> tables_;
  std::optional<Status> failed_;

  std::mutex mutex_;  // the writer queue, and everything above for readers
  std::condition_variable cv_;
  std::deque<Writer*> writers_;
  bool in_flight_ = false;  // a group is being written, its images still in memory
};

}  // namespace vvm::db
