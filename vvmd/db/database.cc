// db/database.cc: group commit and recovery over the journal (db/journal.h); see db/database.h.
#include "db/database.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <fmt/core.h>

namespace vvm::db {

Result<std::unique_ptr<Database>> Database::open(const std::string& dir,
                                                 std::vector<TableSpec> specs,
                                                 uint64_t checkpoint_bytes) {
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
  auto journal = open_posix_file(dir + "/journal", !std::filesystem::exists(dir + "/journal"));
  if (!journal.ok()) return journal.status();
  db->journal_ = std::make_unique<Journal>(std::move(*journal));
  // The journal goes into the tables before they are opened (and upgraded, which reads them
  // whole and may rewrite them): its images are of the tables as they are on disk, and final
  // values, so writing them again is safe however often a crash repeats this.
  std::vector<std::unique_ptr<File>> files(specs.size());
  auto frames = db->journal_->replay([&](uint8_t t, uint64_t slot, std::string_view record) {
    if (t >= specs.size() || record.size() != specs[t].schema->record_size()) {
      return Status::IoError("holds a bad image");
    }
    if (!files[t]) {
      auto f = open_posix_file(dir + "/" + specs[t].file, false);
      if (!f.ok()) return f.status();
      files[t] = std::move(*f);
    }
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

Database::~Database() = default;

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

Status Database::write_group(const std::string& frame, const Images& images) {
  if (frame.empty()) return Status::Ok();
  VVM_RETURN_IF_ERROR(journal_->append(frame));  // the commit point
  for (size_t t = 0; t < tables_.size(); ++t) {
    VVM_RETURN_IF_ERROR(tables_[t]->table().write_images(images[t]));
  }
  if (journal_->size() >= checkpoint_bytes_) {
    for (auto& t : tables_) VVM_RETURN_IF_ERROR(t->table().sync_file());
    VVM_RETURN_IF_ERROR(reset_journal());
  }
  return Status::Ok();
}

Result<std::vector<uint64_t>> Database::commit(const Transaction& txn) {
  Writer w{&txn};
  std::unique_lock lock(mutex_);
  writers_.push_back(&w);
  cv_.wait(lock, [&] { return w.done || writers_.front() == &w; });
  if (w.done) return std::move(w.result);

  // This writer leads: it applies every transaction waiting now, under the lock (that work is in
  // memory), and then writes them as one frame with the lock released: readers go on meanwhile,
  // seeing the applied images from memory, and writers arriving now queue up behind this group
  // (they cannot lead until it is done and popped) to form the next one.
  std::vector<Writer*> group(writers_.begin(), writers_.end());
  for (Writer* g : group) {
    g->result = failed_ ? Result<std::vector<uint64_t>>(
                              Status(failed_->code(), "database unusable: " + failed_->message()))
                        : apply(*g->txn);
  }
  if (!failed_) {
    Images images(tables_.size());
    for (size_t t = 0; t < tables_.size(); ++t) images[t] = tables_[t]->table().pending();
    const std::string frame = journal_->make_frame(images);
    in_flight_ = true;
    lock.unlock();  // the fdatasync is shared by this group; readers and the next group go on
    Status written = write_group(frame, images);
    lock.lock();
    in_flight_ = false;
    for (auto& t : tables_) t->table().clear_pending();
    if (!written.ok()) {
      failed_ = written;  // a failed journal write or fdatasync is final
      for (auto& t : tables_) t->table().mark_failed(written);
      for (Writer* g : group) g->result = written;
    }
  }
  for (Writer* g : group) {
    writers_.pop_front();
    g->done = true;
  }
  cv_.notify_all();
  return std::move(w.result);
}

Result<Values> Database::read(TableId t, uint64_t slot) {
  const std::lock_guard lock(mutex_);
  return table(t).read(slot);
}

Result<std::pair<uint64_t, Values>> Database::lookup(TableId t, std::string_view index,
                                                     const std::string& key) {
  const std::lock_guard lock(mutex_);
  return table(t).lookup(index, key);
}

Status Database::read_to(TableId t, uint64_t slot, FieldSink& sink) {
  const std::lock_guard lock(mutex_);
  return table(t).table().read_to(slot, sink);
}

Result<uint64_t> Database::lookup_to(TableId t, std::string_view index, const std::string& key,
                                     FieldSink& sink) {
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
  const std::lock_guard lock(mutex_);
  const Index* idx = table(t).index(index);
  if (!idx) {
    return Status::InvalidArgument(
        fmt::format("{}: no index '{}'", table(t).schema().table(), index));
  }
  Status status;
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
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] { return !in_flight_; });  // a scan reads the files
  return table(t).scan(each);
}

uint64_t Database::live_count(TableId t) {
  const std::lock_guard lock(mutex_);
  return table(t).live_count();
}

Status Database::verify() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] { return !in_flight_; });
  for (auto& t : tables_) VVM_RETURN_IF_ERROR(t->verify());
  return Status::Ok();
}

}  // namespace vvm::db
