// db/database.h: a database of several tables (db/indexed_table.h), each with its indexes, and
// the journal that makes a change to several records atomic and durable. It knows nothing of what
// the tables hold: the caller names them, with their schemas and indexes, at open (vvmd's are in
// catalog/tables.h).
//
// A transaction is applied to the tables in memory at once, in the order transactions are
// submitted, and is durable once the journal frame holding it is: a frame holds the new images
// of every record changed since the previous frame (length, sequence, images, CRC-32C), and is
// made durable with one write and one fdatasync. A flusher thread writes the frames (a commit()
// that finds nothing else to write writes its own, saving two thread wake-ups), one at a time:
// whatever is applied while one is written goes together in the next, so many transactions share
// one fdatasync (group commit), whether they come from many threads or from one thread that does
// not wait (submit()). Only after its frame is durable are a frame's records written into the
// tables. On open, every whole frame of the journal (db/journal.h) is written into the tables
// again (the images are final values, so this is safe to repeat) before the tables are read; a
// frame cut short by a crash was never acknowledged and is dropped. When the journal passes a few
// MiB, the tables are synced and the journal emptied (a checkpoint). The journal keeps its size
// and is rewritten from its start, each round of frames with an epoch of its own.
//
// Reads go through the Database too; a record cannot be changed except by a transaction, which
// keeps every index in step. Readers are not held up by a frame's fdatasync: they see a
// transaction's records (from memory) as soon as it is applied, before it is durable. If the
// journal then fails, the database refuses every change from there on, and reads answer from
// what is durable: the tables are read again from their files (every durable frame was written
// there, the failed one never was), so no reader sees a change a restart would not find. When a
// table write (or a checkpoint) fails after its frame is durable, that frame's transactions are
// done (on_durable gets Ok), every later change is refused, and reads answer from the files with
// the journal's frames put over them in memory: what a restart's replay writes.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
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
  // The same with the journal opened by `open_journal` (path, create) instead of
  // open_posix_file: tests put there a file that fails or holds its syncs.
  using FileOpener =
      std::function<Result<std::unique_ptr<File>>(const std::string& path, bool create)>;
  static Result<std::unique_ptr<Database>> open(const std::string& dir,
                                                std::vector<TableSpec> tables,
                                                uint64_t checkpoint_bytes,
                                                const FileOpener& open_journal);
  // Waits until every submitted transaction is durable (or failed) and its on_durable has
  // returned, then closes. No submit may start meanwhile.
  ~Database();

  // Applies every change of `txn` or none, in memory, at once: the slots of its inserts, in
  // order. A change that breaks a unique index or names a record that is not live refuses the
  // whole transaction, as does a database that has failed; then nothing of it is applied and
  // `on_durable` is never called. Otherwise every later read (and every later transaction) sees
  // it, transactions apply in the order their submit() calls took the lock, and `on_durable` is
  // called exactly once, on the database's flusher thread, when the journal frame holding the
  // transaction is durable (Ok) or could not be made so (the error; the database then refuses
  // everything, and the transaction may or may not be there after a reopen). Calls are in
  // submit order. `on_durable` must be short and must not call commit() (which would wait for
  // the thread it runs on); it may call submit() and reads. An event loop hands the result back
  // to itself: post(loop, ...) from inside `on_durable`. Thread-safe.
  using OnDurable = std::function<void(Status)>;
  Result<std::vector<uint64_t>> submit(const Transaction& txn, OnDurable on_durable);
  // submit() and wait for `on_durable`: applies every change of `txn` or none, durably. The
  // slots of its inserts, in order; the error that refused it, or the journal's failure.
  // Thread-safe; not from inside an `on_durable` (refused: Internal).
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
  // for an unknown index. `each` may not call this database (read, scan, submit...): the call
  // returns Internal instead of waiting for the lock for ever.
  Status scan_index(TableId t, std::string_view index, const std::string& lo, const std::string& hi,
                    const std::function<bool(uint64_t slot, const Values&)>& each);
  // The same, each record of the range decoded into `sink`, then `each(slot)`.
  Status scan_to(TableId t, std::string_view index, const std::string& lo, const std::string& hi,
                 FieldSink& sink, const std::function<bool(uint64_t slot)>& each);
  // The index itself, unlocked: for tests and tools that run alone.
  const Index* index(TableId t, std::string_view name);
  Status scan(TableId t, const std::function<void(uint64_t, const Values&)>& each);
  uint64_t live_count(TableId t);
  // The keys index `index` holds now: how many records a conditional index (VVs in a state,
  // say) covers, without a scan. InvalidArgument for an unknown index.
  Result<uint64_t> index_size(TableId t, std::string_view index);
  // Called after every journal frame, on the thread that wrote it, with the time its write and
  // sync took and the transactions it made durable: what the daemon's metrics observe. Set it
  // before the database is shared; it must be short and thread-safe.
  using FrameObserver =
      std::function<void(std::chrono::duration<double> took, size_t transactions)>;
  void observe_frames(FrameObserver observer);
  // Every index against a full scan.
  Status verify();

  // What `vvctl db stats` shows: each table's file and its use, and the journal's.
  struct TableStats {
    std::string file;  // its path
    uint64_t records = 0, slots = 0, free_slots = 0, record_size = 0;
  };
  struct Stats {
    std::string dir;
    std::vector<TableStats> tables;  // in TableId order
    uint64_t journal_used = 0;       // bytes of frames since the last checkpoint
    uint64_t checkpoint_bytes = 0;   // when a checkpoint empties it
  };
  Stats stats();
  // A consistent copy of the database as of one instant: every table, once every transaction
  // applied so far is written to the files (changes wait meanwhile), copied into `dir` (made if
  // missing; refused if it holds a table or a journal already), each file and the folder synced.
  // A database opened on `dir` has every change made durable before the call. The files copied
  // and their bytes. Refused once the journal has failed: the files are then not known whole.
  struct Copied {
    uint64_t files = 0, bytes = 0;
  };
  Result<Copied> backup(const std::string& dir);

 private:
  Database() = default;
  // Opens the journal, replays it and the tables; starts nothing.
  static Result<std::unique_ptr<Database>> open_files(const std::string& dir,
                                                      std::vector<TableSpec> specs,
                                                      uint64_t checkpoint_bytes,
                                                      const FileOpener& open_journal);
  // The table numbered `t`; a caller's bug (abort) when there is none.
  IndexedTable& table(TableId t);
  // Applies `txn` to the tables in memory (deferred), undoing it all on the first failure.
  Result<std::vector<uint64_t>> apply(const Transaction& txn);
  using Images = std::vector<std::vector<Table::Image>>;  // by table
  // Journals `frame` (the commit point; then sets `journaled`), writes the images, checkpoints
  // when due. Runs without the lock, from write_frame: one frame is written at a time, and
  // readers see the images in memory until write_frame drops them.
  Status write_group(const std::string& frame, const Images& images, bool* journaled);
  // Empties the journal after a replay or a checkpoint (the tables being synced).
  Status reset_journal();
  // The flusher thread: until stopped with nothing left, takes everything applied since its
  // last frame as one frame, writes it and calls the on_durable of every submit it holds.
  void flush_loop();
  // Takes every image applied since the last frame, writes them as one frame without the lock
  // (`lock` holds mutex_ on entry and on return), then drops them from memory; a failure
  // makes the database refuse everything. One caller at a time writes a frame (in_flight_):
  // the flusher, or a commit() that found nothing else to write.
  Status write_frame(std::unique_lock<std::mutex>& lock, size_t transactions);
  // Internal naming `what` when this thread is inside a scan's callback of this database (which
  // holds the lock, so `what` would deadlock), else Ok; die_if_in_scan aborts saying so, for
  // the calls that return no status.
  Status not_in_scan(std::string_view what) const;
  void die_if_in_scan(std::string_view what) const;
  // Whether a table holds changes not yet taken into a frame (under the lock).
  bool untaken();
  // Whether every applied change is written to the table files (under the lock): what a scan
  // of the files needs.
  bool all_written() { return !in_flight_ && waiting_.empty() && !untaken(); }
  // What a transaction gets once the database has failed for `why`.
  static Status unusable(const Status& why) {
    return Status(why.code(), "database unusable: " + why.message());
  }

  std::string dir_;
  uint64_t checkpoint_bytes_ = 0;
  std::unique_ptr<Journal> journal_;
  std::vector<std::optional<IndexedTable>> tables_;
  std::optional<Status> failed_;

  std::mutex mutex_;                // everything above and below
  std::condition_variable cv_;      // a frame is written: for scans that wait for all_written()
  std::condition_variable work_;    // something to flush, or stop: for the flusher
  std::vector<OnDurable> waiting_;  // submits applied since the last frame was taken
  bool in_flight_ = false;          // a frame is being written, its images still in memory
  bool stop_ = false;
  std::thread flusher_;
  FrameObserver frame_observer_;  // under mutex_
};

}  // namespace vvm::db
