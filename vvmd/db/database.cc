// db/database.cc: the flusher's group commit and recovery over the journal (db/journal.h); see
// db/database.h.
#include "db/database.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <fmt/core.h>

#include "common/log.h"

namespace vvm::db {

Result<std::unique_ptr<Database>> Database::open(const std::string& dir,
                                                 std::vector<TableSpec> specs,
                                                 uint64_t checkpoint_bytes) {
  return open(dir, std::move(specs), checkpoint_bytes, open_posix_file);
}

Result<std::unique_ptr<Database>> Database::open(const std::string& dir,
                                                 std::vector<TableSpec> specs,
                                                 uint64_t checkpoint_bytes,
                                                 const FileOpener& open_journal) {
  auto db = open_files(dir, std::move(specs), checkpoint_bytes, open_journal);
  if (!db.ok()) return db.status();
  Database* d = db->get();
  d->flusher_ = std::thread([d] { d->flush_loop(); });
  return db;
}

Result<std::unique_ptr<Database>> Database::open_files(const std::string& dir,
                                                       std::vector<TableSpec> specs,
                                                       uint64_t checkpoint_bytes,
                                                       const FileOpener& open_journal) {
  if (specs.empty() || specs.size() > 256) {
    return Status::InvalidArgument(
        fmt::format("{}: a database has 1 to 256 tables, not {}", dir, specs.size()));
  }
  std::unique_ptr<Database> db(new Database);
  db->dir_ = dir;
  db->checkpoint_bytes_ = checkpoint_bytes;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  // A database made before a table existed gets it, empty, at its next open.
  for (const TableSpec& spec : specs) {
    const std::string path = dir + "/" + spec.file;
    if (!std::filesystem::exists(path)) {
      auto made = IndexedTable::create(path, *spec.schema, spec.indexes);
      if (!made.ok()) return made.status();
    }
  }
  auto journal = open_journal(dir + "/journal", !std::filesystem::exists(dir + "/journal"));
  if (!journal.ok()) return journal.status();
  db->journal_ = std::make_unique<Journal>(std::move(*journal));
  // The journal goes into the tables before they are opened (and upgraded, which reads them
  // whole and may rewrite them): its images are of the tables as they are on disk, and final
  // values, so writing them again is safe however often a crash repeats this.
  // A table only grows, one record at a time, and its images go into frames in slot order: an
  // image rewrites a record or appends one at the end. One past the end is a bad image (a slot
  // of 2^40 would make a sparse table of 256 TiB that no open could read).
  std::vector<std::unique_ptr<File>> files(specs.size());
  std::vector<uint64_t> ends(specs.size());
  auto frames = db->journal_->replay([&](uint8_t t, uint64_t slot, std::string_view record) {
    if (t >= specs.size() || record.size() != specs[t].schema->record_size()) {
      return Status::IoError("holds a bad image");
    }
    if (!files[t]) {
      auto f = open_posix_file(dir + "/" + specs[t].file, false);
      if (!f.ok()) return f.status();
      files[t] = std::move(*f);
      auto size = files[t]->size();
      if (!size.ok()) return size.status();
      ends[t] = *size / record.size();
    }
    if (slot > ends[t]) {
      return Status::IoError(fmt::format("holds an image of {} record {}, past its end ({})",
                                         specs[t].file, slot, ends[t]));
    }
    ends[t] = std::max(ends[t], slot + 1);
    return files[t]->write_at(slot * record.size(), record);
  });
  if (!frames.ok()) return frames.status();
  for (auto& f : files) {
    if (f) VVM_RETURN_IF_ERROR(f->sync());
  }
  VVM_RETURN_IF_ERROR(db->reset_journal());

  db->tables_.resize(specs.size());
  for (size_t t = 0; t < specs.size(); ++t) {
    auto opened = IndexedTable::open(dir + "/" + specs[t].file, *specs[t].schema,
                                     std::move(specs[t].indexes));
    if (!opened.ok()) return opened.status();
    db->tables_[t].emplace(std::move(*opened));
    db->tables_[t]->table().set_deferred(true);
  }
  return db;
}

IndexedTable& Database::table(TableId t) {
  const auto i = static_cast<size_t>(t);
  if (i >= tables_.size() || !tables_[i]) {
    std::fprintf(stderr, "db: no table %zu in %s\n", i, dir_.c_str());
    std::abort();
  }
  return *tables_[i];
}

Database::~Database() {
  if (!flusher_.joinable()) return;
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_.notify_one();
  flusher_.join();  // it writes what is left first
}

Status Database::reset_journal() { return journal_->reset(checkpoint_bytes_ + (1 << 20)); }

Result<std::vector<uint64_t>> Database::apply(const Transaction& txn) {
  struct Undo {
    Transaction::Change::Kind kind;
    TableId table;
    uint64_t slot;
    Values old;
  };
  std::vector<Undo> undo;
  std::vector<uint64_t> inserted;
  Status failure;
  for (const auto& c : txn.changes()) {
    IndexedTable& t = table(c.table);
    if (c.kind == Transaction::Change::kInsert) {
      auto slot = t.insert(c.values);
      if (!slot.ok()) {
        failure = slot.status();
        break;
      }
      inserted.push_back(*slot);
      undo.push_back({c.kind, c.table, *slot, {}});
      continue;
    }
    auto old = t.read(c.slot);
    if (!old.ok()) {
      failure = old.status();
      break;
    }
    Status s =
        c.kind == Transaction::Change::kUpdate ? t.update(c.slot, c.values) : t.erase(c.slot);
    if (!s.ok()) {
      failure = s;
      break;
    }
    undo.push_back({c.kind, c.table, c.slot, std::move(*old)});
  }
  if (failure.ok()) return inserted;
  // Back out what was applied, newest first; the images this leaves pending are the old ones.
  for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
    IndexedTable& t = table(it->table);
    Status s = it->kind == Transaction::Change::kInsert   ? t.erase(it->slot)
               : it->kind == Transaction::Change::kUpdate ? t.update(it->slot, it->old)
                                                          : t.insert_at(it->slot, it->old);
    if (!s.ok()) failed_ = Status::Internal("undo failed: " + s.message());
  }
  return failure;
}

Status Database::write_group(const std::string& frame, const Images& images, bool* journaled) {
  if (frame.empty()) return Status::Ok();
  VVM_RETURN_IF_ERROR(journal_->append(frame));  // the commit point
  *journaled = true;
  for (size_t t = 0; t < tables_.size(); ++t) {
    VVM_RETURN_IF_ERROR(tables_[t]->table().write_images(images[t]));
  }
  if (journal_->size() >= checkpoint_bytes_) {
    for (auto& t : tables_) VVM_RETURN_IF_ERROR(t->table().sync_file());
    VVM_RETURN_IF_ERROR(reset_journal());
  }
  return Status::Ok();
}

namespace {
// The database whose lock this thread holds for a scan's callback, if any: a read, scan or
// commit of that database from inside the callback would wait for the lock for ever.
thread_local const Database* t_scanning = nullptr;

// Marks the thread as inside a scan of `db` for its lifetime.
class ScanMark {
 public:
  explicit ScanMark(const Database* db) : previous_(t_scanning) { t_scanning = db; }
  ~ScanMark() { t_scanning = previous_; }
  ScanMark(const ScanMark&) = delete;
  ScanMark& operator=(const ScanMark&) = delete;

 private:
  const Database* previous_;
};
}  // namespace

Status Database::not_in_scan(std::string_view what) const {
  if (t_scanning != this) return Status::Ok();
  return Status::Internal(fmt::format(
      "database {}: {} from inside a scan's callback, which holds the database's lock (it would "
      "wait for ever): collect what the scan finds, then {}",
      dir_, what, what));
}

void Database::die_if_in_scan(std::string_view what) const {
  Status s = not_in_scan(what);
  if (s.ok()) return;
  std::fprintf(stderr, "%s\n", s.message().c_str());
  std::abort();
}

Result<std::vector<uint64_t>> Database::submit(const Transaction& txn, OnDurable on_durable) {
  VVM_RETURN_IF_ERROR(not_in_scan("submit"));
  std::unique_lock lock(mutex_);
  if (failed_) return unusable(*failed_);
  auto result = apply(txn);
  // A refused transaction applied nothing, but its undo left images (the old values) that the
  // next frame carries; wake the flusher for them too, so that scans need not wait for more.
  if (result.ok()) waiting_.push_back(std::move(on_durable));
  if (result.ok() || untaken()) work_.notify_one();
  return result;
}

Result<std::vector<uint64_t>> Database::commit(const Transaction& txn) {
  VVM_RETURN_IF_ERROR(not_in_scan("commit"));
  if (std::this_thread::get_id() == flusher_.get_id()) {
    return Status::Internal("commit() from inside on_durable would wait for itself");
  }
  {
    // With no frame being written and nothing else waiting, this thread writes its own frame:
    // handing it to the flusher and back would cost two thread wake-ups for the same one
    // fdatasync (a third of the commits a second of a lone writer).
    std::unique_lock lock(mutex_);
    if (failed_) return unusable(*failed_);
    if (!in_flight_ && waiting_.empty() && !untaken()) {
      auto result = apply(txn);
      if (!result.ok()) {
        if (untaken()) work_.notify_one();
        return result;
      }
      Status written = write_frame(lock, 1);
      if (!written.ok()) return written;
      return result;
    }
  }
  std::mutex m;
  std::condition_variable done_cv;
  std::optional<Status> done;
  auto result = submit(txn, [&](Status s) {
    const std::lock_guard lock(m);
    done = std::move(s);
    done_cv.notify_one();
  });
  if (!result.ok()) return result;
  std::unique_lock lock(m);
  done_cv.wait(lock, [&] { return done.has_value(); });
  if (!done->ok()) return *done;
  return result;
}

bool Database::untaken() {
  for (auto& t : tables_) {
    if (t && t->table().has_untaken()) return true;
  }
  return false;
}

Status Database::write_frame(std::unique_lock<std::mutex>& lock, size_t transactions) {
  Images images(tables_.size());
  for (size_t t = 0; t < tables_.size(); ++t) images[t] = tables_[t]->table().take_pending();
  std::optional<Status> failed = failed_;
  in_flight_ = true;
  lock.unlock();           // submits and readers go on while the frame is written
  bool journaled = false;  // the frame is durable, whatever failed after
  const auto began = std::chrono::steady_clock::now();
  Status written =
      failed ? unusable(*failed) : write_group(journal_->make_frame(images), images, &journaled);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - began;
  lock.lock();
  if (frame_observer_ && written.ok() && transactions > 0) frame_observer_(took, transactions);
  in_flight_ = false;
  for (size_t t = 0; t < tables_.size(); ++t) tables_[t]->table().release_pending(images[t]);
  if (!written.ok() && !failed_) {
    // A failed journal write or fdatasync, or a failed table write or checkpoint, is final: no
    // change is taken again (the kernel may have dropped what it could not write).
    failed_ = written;
    // Reads go on from what is durable, what a restart would find: each table as its file holds
    // it and its indexes rebuilt from those records. When the journal failed, every durable frame
    // was written to the files and this one never was. When the frame is durable and a table
    // write after it failed, the journal's frames (this one with them) are put over the files'
    // records in memory, as a restart's replay would write them. A table that cannot be read
    // again refuses reads too.
    std::vector<std::vector<Table::Image>> replayed(tables_.size());
    if (journaled) {
      auto frames = journal_->replay([&](uint8_t t, uint64_t slot, std::string_view record) {
        if (t >= replayed.size()) {
          return Status::IoError(fmt::format("{}: an image of table {}, which is not there", dir_,
                                             static_cast<int>(t)));
        }
        replayed[t].emplace_back(slot, std::string(record));
        return Status::Ok();
      });
      if (!frames.ok()) {
        log::error("database {}: after a table write failed, cannot read the journal back: {}",
                   dir_, frames.status().message());
        for (auto& t : tables_) t->table().mark_failed(frames.status());
        replayed.clear();
      }
    }
    for (size_t i = 0; i < tables_.size() && (!journaled || !replayed.empty()); ++i) {
      auto& t = tables_[i];
      if (Status again = t->reload(journaled ? replayed[i] : std::vector<Table::Image>{});
          !again.ok()) {
        log::error("{}: after the journal failed, cannot be read again: {}", t->table().path(),
                   again.message());
        t->table().mark_failed(written);
      }
    }
    log::error(
        "database {}: {}: every change is refused from now on; reads are answered from "
        "what is durable; restart vvmd once the disk is good again",
        dir_, written.message());
  }
  cv_.notify_all();
  // What was applied meanwhile is the flusher's next frame (woken only then: a lone committer
  // would otherwise wake it for nothing after every frame).
  if (!waiting_.empty() || untaken() || stop_) work_.notify_one();
  // A durable frame's transactions are done, even if nothing after them will be.
  return journaled ? Status::Ok() : written;
}

void Database::flush_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_.wait(lock, [&] { return !in_flight_ && (stop_ || !waiting_.empty() || untaken()); });
    if (waiting_.empty() && !untaken()) return;  // stopped, nothing left
    // Everything applied since the last frame, as one frame: its submits and its images.
    std::vector<OnDurable> group;
    group.swap(waiting_);
    Status written = write_frame(lock, group.size());
    lock.unlock();  // on_durable may read, or submit
    for (OnDurable& f : group) {
      if (f) f(written);
    }
    lock.lock();
  }
}

Result<Values> Database::read(TableId t, uint64_t slot) {
  VVM_RETURN_IF_ERROR(not_in_scan("read"));
  const std::lock_guard lock(mutex_);
  return table(t).read(slot);
}

Result<std::pair<uint64_t, Values>> Database::lookup(TableId t, std::string_view index,
                                                     const std::string& key) {
  VVM_RETURN_IF_ERROR(not_in_scan("lookup"));
  const std::lock_guard lock(mutex_);
  return table(t).lookup(index, key);
}

Status Database::read_to(TableId t, uint64_t slot, FieldSink& sink) {
  VVM_RETURN_IF_ERROR(not_in_scan("read"));
  const std::lock_guard lock(mutex_);
  return table(t).table().read_to(slot, sink);
}

Result<uint64_t> Database::lookup_to(TableId t, std::string_view index, const std::string& key,
                                     FieldSink& sink) {
  VVM_RETURN_IF_ERROR(not_in_scan("lookup"));
  const std::lock_guard lock(mutex_);
  return table(t).lookup_to(index, key, sink);
}

Status Database::read_into(TableId t, uint64_t slot, Values* out) {
  ValuesSink sink(*out, table(t).schema().fields().size());
  return read_to(t, slot, sink);
}

Result<uint64_t> Database::lookup_into(TableId t, std::string_view index, const std::string& key,
                                       Values* out) {
  ValuesSink sink(*out, table(t).schema().fields().size());
  return lookup_to(t, index, key, sink);
}

Status Database::scan_to(TableId t, std::string_view index, const std::string& lo,
                         const std::string& hi, FieldSink& sink,
                         const std::function<bool(uint64_t)>& each) {
  VVM_RETURN_IF_ERROR(not_in_scan("scan"));
  const std::lock_guard lock(mutex_);
  const Index* idx = table(t).index(index);
  if (!idx) {
    return Status::InvalidArgument(
        fmt::format("{}: no index '{}'", table(t).schema().table(), index));
  }
  Status status;
  const ScanMark mark(this);
  idx->scan_range(lo, hi, [&](const std::string&, uint64_t slot) {
    status = table(t).table().read_to(slot, sink);
    return status.ok() && each(slot);
  });
  return status;
}

Status Database::scan_index(TableId t, std::string_view index, const std::string& lo,
                            const std::string& hi,
                            const std::function<bool(uint64_t, const Values&)>& each) {
  Values values;
  ValuesSink sink(values, table(t).schema().fields().size());
  return scan_to(t, index, lo, hi, sink, [&](uint64_t slot) { return each(slot, values); });
}

const Index* Database::index(TableId t, std::string_view name) { return table(t).index(name); }

Status Database::scan(TableId t, const std::function<void(uint64_t, const Values&)>& each) {
  VVM_RETURN_IF_ERROR(not_in_scan("scan"));
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] { return all_written(); });  // a scan reads the files
  const ScanMark mark(this);
  return table(t).scan(each);
}

uint64_t Database::live_count(TableId t) {
  die_if_in_scan("live_count");
  const std::lock_guard lock(mutex_);
  return table(t).live_count();
}

Result<uint64_t> Database::index_size(TableId t, std::string_view index) {
  VVM_RETURN_IF_ERROR(not_in_scan("index_size"));
  const std::lock_guard lock(mutex_);
  const Index* i = table(t).index(index);
  if (i == nullptr) return Status::InvalidArgument(fmt::format("no index '{}'", index));
  return static_cast<uint64_t>(i->size());
}

void Database::observe_frames(FrameObserver observer) {
  const std::lock_guard lock(mutex_);
  frame_observer_ = std::move(observer);
}

Database::Stats Database::stats() {
  die_if_in_scan("stats");
  const std::lock_guard lock(mutex_);
  Stats st;
  st.dir = dir_;
  for (auto& t : tables_) {
    const Table& table = t->table();
    st.tables.push_back({table.path(), table.live_count(), table.slot_count(), table.free_count(),
                         table.schema().record_size()});
  }
  st.journal_used = journal_->size();
  st.checkpoint_bytes = checkpoint_bytes_;
  return st;
}

Result<Database::Copied> Database::backup(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return Status::IoError(fmt::format("backup folder {}: cannot create: {}", dir, ec.message()));
  std::unique_lock lock(mutex_);
  // Nothing is taken into a frame while the lock is held, so once everything applied is written
  // the table files are whole and stay as they are until the copy ends.
  cv_.wait(lock, [&] { return all_written() || failed_; });
  if (failed_) return unusable(*failed_);
  // Each table file and where its copy goes; a journal there would replay into the copies.
  std::vector<std::pair<std::string, std::string>> copies;
  for (auto& t : tables_) {
    const std::string& from = t->table().path();
    copies.emplace_back(from, dir + "/" + std::filesystem::path(from).filename().string());
  }
  std::vector<std::string> taken;
  for (const auto& [from, to] : copies) taken.push_back(to);
  taken.push_back(dir + "/journal");
  for (const std::string& path : taken) {
    if (std::filesystem::exists(path, ec)) {
      return Status::AlreadyExists(
          fmt::format("backup folder {} holds a database already ({}): give an empty or new folder",
                      dir, path));
    }
  }
  Copied copied;
  for (const auto& [from, to] : copies) {
    if (!std::filesystem::copy_file(from, to, ec)) {
      return Status::IoError(fmt::format("backup of {} to {}: {}", from, to, ec.message()));
    }
    auto file = open_posix_file(to, false);
    if (!file.ok()) return file.status();
    VVM_RETURN_IF_ERROR((*file)->sync());
    auto size = (*file)->size();
    if (!size.ok()) return size.status();
    ++copied.files;
    copied.bytes += *size;
  }
  VVM_RETURN_IF_ERROR(sync_folder_of(dir + "/journal"));
  return copied;
}

Status Database::verify() {
  VVM_RETURN_IF_ERROR(not_in_scan("verify"));
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] { return all_written(); });
  for (auto& t : tables_) VVM_RETURN_IF_ERROR(t->verify());
  return Status::Ok();
}

}  // namespace vvm::db
