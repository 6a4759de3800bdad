// db/database.cc: journal, group commit and recovery; see db/database.h.
#include "db/database.h"

#include "db/journal_format.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include <fmt/core.h>

namespace vvm::db {

namespace {

using Clock = std::chrono::steady_clock;
using journal::get;
using journal::put;

// Writes every whole frame of `journal` into the tables and syncs them. Returns how many frames.
// The journal is reused from its start after each checkpoint, so stale frames of an earlier
// round follow the current ones: a frame counts only with the first frame's epoch and the next
// sequence number.
Result<int> replay(const std::string& dir, const std::vector<TableSpec>& specs, File& file) {
  using namespace journal;
  auto size = file.size();
  if (!size.ok()) return size.status();
  std::string bytes(*size, '\0');
  if (*size > 0) VVM_RETURN_IF_ERROR(file.read_at(0, bytes.data(), bytes.size()));
  std::vector<std::unique_ptr<File>> tables(specs.size());
  int frames = 0;
  uint64_t epoch = 0, sequence = 0;
  for (size_t pos = 0; pos + kHeaderSize + kTrailerSize <= bytes.size();) {
    if (get<uint32_t>(bytes, pos + kMagicAt) != kMagic) break;
    if (frames > 0 && (get<uint64_t>(bytes, pos + kEpochAt) != epoch ||
                       get<uint64_t>(bytes, pos + kSequenceAt) != sequence + 1)) {
      break;
    }
    const auto len = get<uint32_t>(bytes, pos + kLengthAt);
    if (pos + kHeaderSize + len + kTrailerSize > bytes.size()) break;  // cut short: dropped
    std::string_view frame(bytes.data() + pos, kHeaderSize + len);
    if (crc32c(frame) != get<uint32_t>(bytes, pos + kHeaderSize + len)) break;
    epoch = get<uint64_t>(bytes, pos + kEpochAt);
    sequence = get<uint64_t>(bytes, pos + kSequenceAt);
    const size_t images_end = pos + kHeaderSize + len;
    for (size_t p = pos + kHeaderSize; p < images_end;) {
      auto bad = [&] {
        return Status::IoError(fmt::format("{}/journal: frame {} holds a bad image", dir, frames));
      };
      if (p + kImageHeaderSize > images_end) return bad();
      const auto t = static_cast<uint8_t>(bytes[p + kImageTableAt]);
      const auto slot = get<uint64_t>(bytes, p + kImageSlotAt);
      const auto n = get<uint16_t>(bytes, p + kImageSizeAt);
      if (t >= specs.size() || n != specs[t].schema->record_size() ||
          p + kImageHeaderSize + n > images_end) {
        return bad();
      }
      if (!tables[t]) {
        auto f = open_posix_file(dir + "/" + specs[t].file, false);
        if (!f.ok()) return f.status();
        tables[t] = std::move(*f);
      }
      VVM_RETURN_IF_ERROR(
          tables[t]->write_at(slot * n, std::string_view(bytes.data() + p + kImageHeaderSize, n)));
      p += kImageHeaderSize + n;
    }
    pos += kHeaderSize + len + kTrailerSize;
    ++frames;
  }
  for (auto& f : tables) {
    if (f) VVM_RETURN_IF_ERROR(f->sync());
  }
  return frames;
}

}  // namespace

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
  db->journal_ = std::move(*journal);
  // The journal goes into the tables before they are opened (and upgraded, which reads them
  // whole and may rewrite them): its images are of the tables as they are on disk.
  auto frames = replay(dir, specs, *db->journal_);
  if (!frames.ok()) return frames.status();
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

Status Database::reset_journal() {
  // Overwritten in place rather than truncated: appending to a file that does not grow lets
  // fdatasync write the data alone, without the inode, about twice as fast here.
  auto size = journal_->size();
  if (!size.ok()) return size.status();
  const uint64_t want = checkpoint_bytes_ + (1 << 20);
  if (*size < want) {
    VVM_RETURN_IF_ERROR(journal_->write_at(*size, std::string(want - *size, '\0')));
  }
  // Spoil the first frame: the journal is empty until the next frame is written there. A new
  // epoch tells the frames of this round from the stale ones of earlier rounds further on.
  VVM_RETURN_IF_ERROR(journal_->write_at(0, std::string(journal::kHeaderSize, '\0')));
  VVM_RETURN_IF_ERROR(journal_->sync());
  epoch_ = std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32) ^
           static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  sequence_ = 0;
  journal_size_ = 0;
  journal_tail_.clear();
  return Status::Ok();
}

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

std::string Database::make_frame(const Images& images) {
  using namespace journal;
  bool empty = true;
  for (const auto& i : images) empty = empty && i.empty();
  if (empty) return {};
  std::string frame;
  put<uint32_t>(frame, kMagic);
  put<uint32_t>(frame, 0);  // the length, once known
  put<uint64_t>(frame, ++sequence_);
  put<uint64_t>(frame, epoch_);
  for (size_t t = 0; t < images.size(); ++t) {
    for (const auto& [slot, rec] : images[t]) {
      put<uint8_t>(frame, static_cast<uint8_t>(t));
      put<uint64_t>(frame, slot);
      put<uint16_t>(frame, static_cast<uint16_t>(rec.size()));
      frame += rec;
    }
  }
  put_at<uint32_t>(frame, kLengthAt, static_cast<uint32_t>(frame.size() - kHeaderSize));
  put<uint32_t>(frame, crc32c(frame));
  return frame;
}

Status Database::write_group(const std::string& frame, const Images& images) {
  if (frame.empty()) return Status::Ok();
  // Whole 4 KiB blocks, so that the file can write them durably in one direct write: the block
  // where the journal ends starts with the bytes already there (kept in journal_tail_; rewriting
  // them with the same bytes cannot harm a committed frame, even torn), then the frame, then
  // zeros, which end the journal for replay as well as any stale frame would.
  using journal::kBlock;
  const uint64_t start = journal_size_ - journal_tail_.size();
  const size_t used = journal_tail_.size() + frame.size();
  const size_t padded = (used + kBlock - 1) / kBlock * kBlock;
  void* raw = nullptr;
  if (::posix_memalign(&raw, kBlock, padded) != 0) {
    return Status::Internal("journal: no memory for a frame's blocks");
  }
  std::unique_ptr<char, decltype(&std::free)> blocks(static_cast<char*>(raw), &std::free);
  std::memcpy(blocks.get(), journal_tail_.data(), journal_tail_.size());
  std::memcpy(blocks.get() + journal_tail_.size(), frame.data(), frame.size());
  std::memset(blocks.get() + used, 0, padded - used);
  VVM_RETURN_IF_ERROR(  // the commit point
      journal_->write_durably(start, std::string_view(blocks.get(), padded)));
  journal_size_ += frame.size();
  journal_tail_.assign(blocks.get() + used / kBlock * kBlock, used % kBlock);
  for (size_t t = 0; t < tables_.size(); ++t) {
    VVM_RETURN_IF_ERROR(tables_[t]->table().write_images(images[t]));
  }
  if (journal_size_ >= checkpoint_bytes_) {
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
    const std::string frame = make_frame(images);
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
