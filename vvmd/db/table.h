// db/table.h: one table file of fixed-size records (db/record.h): create, open (checking every
// record, upgrading an older format), insert into a free slot, update in place, delete, scan,
// sync.
//
// Slot 0 holds the header record: "vvm-table VERSION NAME SIZE FIELDS FINGERPRINT", VERSION being
// the record layout (kFormatVersion) and FINGERPRINT the digest of the schema's fields. Record i
// lives at i * record_size. Every change is one aligned write of one record; nothing is durable
// until sync(). A failed sync is final: the kernel may have dropped the dirty pages, so retrying
// could "succeed" with data lost. The table then refuses everything, and the daemon must stop and
// recover from what is on disk.
//
// Upgrades: open() takes a table of an older layout (version 1: fields padded inside the record)
// or one written before the schema's last fields were appended (its header names fewer fields,
// and its fingerprint is that of the schema's first ones); it rewrites every record, slot for
// slot, in the current layout with the new fields set to their fill (db/record.h), into
// PATH.upgrade beside the table, syncs it and renames it over the table. A crash before the
// rename leaves the old table whole (and the leftover file is replaced at the next open); after
// it, the new one. Anything else in the header is refused.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "db/file.h"
#include "db/record.h"

namespace vvm::db {

// The record layouts, as table headers name them: 1, fields padded to their widths; 2, fields
// separated by single blanks, padding only before the newline.
inline constexpr int kFormatPadded = 1;
inline constexpr int kFormatVersion = 2;

class Table {
 public:
  // A new, empty table at `path` (which must not exist), synced.
  static Result<Table> create(const std::string& path, const Schema& schema);
  // Opens `path` and reads every record. `each` sees every live record (slot, values), for
  // building indexes. Stops with an error naming the table, the record number, the field and
  // the text found on any record that does not decode; a record whose checksum does not match
  // is reported as torn.
  static Result<Table> open(const std::string& path, const Schema& schema,
                            const std::function<void(uint64_t, const Values&)>& each = {});
  // The same, decoding with `workers` threads at once (a 1M-record table is 256 MB of text to
  // check and decode): `each` is called from all of them, with the worker's number
  // (0..workers-1); each worker sees a run of slots, in order.
  using EachLive = std::function<void(int worker, uint64_t slot, const Values&)>;
  static Result<Table> open(const std::string& path, const Schema& schema, const EachLive& each,
                            int workers);
  // The same on a File the caller made (tests use files that fail or crash). No upgrade here:
  // a table of an older layout is refused.
  static Result<Table> open_file(std::unique_ptr<File> file, const Schema& schema,
                                 const std::function<void(uint64_t, const Values&)>& each = {});
  static Result<Table> open_file(std::unique_ptr<File> file, const Schema& schema,
                                 const EachLive& each, int workers);
  static Result<Table> create_file(std::unique_ptr<File> file, const Schema& schema);
  // What open() does first: when the table at `path` has an older layout or fewer fields than
  // `schema` (see the header comment), rewrites it in the current one and says so in the log.
  // True when it did. Refusals are left to open_file, which names what it found.
  static Result<bool> upgrade(const std::string& path, const Schema& schema);

  Table(Table&&) noexcept = default;
  Table& operator=(Table&&) noexcept = default;

  const Schema& schema() const { return *schema_; }
  const std::string& path() const { return file_->path(); }
  uint64_t live_count() const { return live_; }
  // Slots in the file, header included.
  uint64_t slot_count() const { return slots_; }
  // Slots an insert may reuse (deleted or blank).
  uint64_t free_count() const { return free_.size(); }

  // Writes `values` into a free slot (the lowest freed one, else a new one at the end).
  Result<uint64_t> insert(const Values& values);
  // Rewrites the live record in `slot`.
  Status update(uint64_t slot, const Values& values);
  // Marks the live record in `slot` deleted; its slot is reused by a later insert.
  Status erase(uint64_t slot);
  // The live record in `slot`, read from the file.
  Result<Values> read(uint64_t slot);
  // The same into `out`, reusing its room (LevelDB's Get(key, std::string*) habit): a daemon
  // reading records in a loop allocates nothing.
  Status read_into(uint64_t slot, Values* out);
  // The same, field by field into `sink` (a typed record, say).
  Status read_to(uint64_t slot, FieldSink& sink);
  // Every live record, in slot order, read from the file.
  Status scan(const std::function<void(uint64_t, const Values&)>& each);
  // Makes every change so far durable (fdatasync). See the header comment on failure.
  Status sync();

  // Deferred mode (the Database's): changes are kept as record images in memory, visible to
  // read(), until the Database has journaled them and written them to the file. The Database
  // takes the images changed since its last take as one journal frame (take_pending()), writes
  // them with write_images() (which may run without the Database's lock: it only writes the
  // file), and then drops them (release_pending()). Changes made between a take and its release
  // stay in memory with their newest image and go in the next take; a record changed on both
  // sides of a take is in both frames, each with its own image.
  void set_deferred(bool deferred) { deferred_ = deferred; }
  bool deferred() const { return deferred_; }
  using Image = std::pair<uint64_t, std::string>;  // slot, record text
  // The images changed since the last take, in slot order, copied: they stay readable.
  std::vector<Image> take_pending();
  // Whether anything changed since the last take.
  bool has_untaken() const { return !untaken_.empty(); }
  // Drops the images of the oldest take not yet released (`taken`: what it returned) that have
  // not changed since: the file now holds them. Takes are released in the order they were made.
  void release_pending(const std::vector<Image>& taken);
  Status write_images(const std::vector<Image>& images);
  // fdatasync of the file alone, for the Database's checkpoint, which runs without its lock: it
  // leaves the table's failed state to the Database, which sets it under the lock (sync() would
  // set it here, racing readers that check it).
  Status sync_file() { return file_->sync(); }
  // After a failure elsewhere (the journal), the table refuses everything too.
  void mark_failed(const Status& why) { failed_ = why; }
  // Puts `values` live in the free slot `slot` (to undo an erase).
  Status insert_at(uint64_t slot, const Values& values);

 private:
  Table(std::unique_ptr<File> file, const Schema& schema);
  Status check_usable() const;
  Status check_live(uint64_t slot) const;
  Status write_slot(uint64_t slot, char state, const Values& values);
  std::string where(uint64_t slot) const;
  // The text of the record in `slot`: from the pending images, the file's mapping, or read into
  // `buf`.
  Result<std::string_view> record_text(uint64_t slot, std::string& buf);
  // Checks and decodes every record with `workers` threads; `rebuild` also records which slots
  // are live and which free.
  Status read_all(const EachLive& each, int workers, bool rebuild);
  // One worker's part of read_all: slots [first, end).
  struct Part;
  void read_part(Part& part, const char* mapped, const EachLive& each, int worker, bool rebuild);

  std::unique_ptr<File> file_;
  std::string file_name_;  // "vv.tab", for messages
  std::unique_ptr<Schema> schema_;
  uint64_t slots_ = 1;
  uint64_t live_ = 0;
  std::set<uint64_t> free_;          // deleted or blank slots
  std::vector<uint8_t> live_slots_;  // 1 for a live slot, by slot (a set costs a cache miss)
  std::optional<Status> failed_;     // set by a failed write or sync: the table is unusable
  bool deferred_ = false;
  // Deferred images, by slot: the newest text and the number of the take it belongs to (the
  // next one while it is untaken).
  struct Pending {
    std::string text;
    uint64_t take = 0;
  };
  std::map<uint64_t, Pending> pending_;
  std::vector<uint64_t> untaken_;  // slots changed since the last take, each once
  uint64_t takes_ = 0;             // takes made
  uint64_t released_ = 0;          // takes released
};

}  // namespace vvm::db
