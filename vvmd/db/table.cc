// db/table.cc: the table file; see db/table.h.
#include "db/table.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <thread>

#include <fmt/core.h>

#include "common/log.h"

namespace vvm::db {

namespace {

std::string header_text(const Schema& s, int version = kFormatVersion) {
  return fmt::format("vvm-table {} {} {} {} {:08x}", version, s.table(), s.record_size(),
                     s.fields().size(), s.fingerprint());
}

// The header record: like a data record (state, checksum), with the header text as its body.
std::string header_record(const Schema& s, int version = kFormatVersion) {
  std::string rec(s.record_size(), ' ');
  rec[0] = kHeader;
  std::string text = header_text(s, version);
  rec.replace(kPrefix, text.size(), text);
  rec.back() = '\n';
  rec.replace(2, 8, fmt::format("{:08x}", record_checksum(rec)));
  return rec;
}

// The layout a header record names, when it is one of `schema`'s that open() upgrades: the
// schema of its fields and its format version. nullopt for the current header and for anything
// that is not an older header of this table.
struct OldLayout {
  Schema schema;
  int version;
};
std::optional<OldLayout> old_layout(std::string_view header, const Schema& schema) {
  if (header.size() != schema.record_size() || header[0] != kHeader || !checksum_ok(header)) {
    return std::nullopt;
  }
  // "vvm-table VERSION NAME SIZE FIELDS FINGERPRINT"
  std::vector<std::string_view> words;
  std::string_view body = header.substr(kPrefix);
  while (!body.empty()) {
    const size_t start = body.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    const size_t end = std::min(body.find_first_of(" \n", start), body.size());
    words.push_back(body.substr(start, end - start));
    body.remove_prefix(end);
  }
  auto number = [](std::string_view w, int base) -> std::optional<uint64_t> {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(w.data(), w.data() + w.size(), n, base);
    if (ec != std::errc() || end != w.data() + w.size()) return std::nullopt;
    return n;
  };
  if (words.size() != 6 || words[0] != "vvm-table" || words[2] != schema.table()) {
    return std::nullopt;
  }
  auto version = number(words[1], 10), size = number(words[3], 10), fields = number(words[4], 10),
       fingerprint = number(words[5], 16);
  if (!version || !size || !fields || !fingerprint || *version < kFormatPadded ||
      *version > kFormatVersion || *size != schema.record_size() || *fields == 0 ||
      *fields > schema.fields().size()) {
    return std::nullopt;
  }
  if (*version == kFormatVersion && *fields == schema.fields().size()) return std::nullopt;
  auto old = schema.first_fields(*fields);
  if (!old.ok() || old->fingerprint() != *fingerprint) return std::nullopt;
  if (header != header_record(*old, static_cast<int>(*version))) return std::nullopt;
  return OldLayout{std::move(*old), static_cast<int>(*version)};
}

std::string table_name(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

}  // namespace

Table::Table(std::unique_ptr<File> file, const Schema& schema)
    : file_(std::move(file)),
      file_name_(table_name(file_->path())),
      schema_(std::make_unique<Schema>(schema)) {}

std::string Table::where(uint64_t slot) const {
  return fmt::format("{}: record {}", file_name_, slot);
}

Result<Table> Table::create(const std::string& path, const Schema& schema) {
  if (::access(path.c_str(), F_OK) == 0) {
    return Status::AlreadyExists(fmt::format("{}: the table exists already", path));
  }
  // Made under a temporary name and renamed when whole: a crash during create leaves no table
  // (and a leftover temporary file that the next create replaces), never an empty one.
  const std::string tmp = path + ".new";
  ::unlink(tmp.c_str());
  auto file = open_posix_file(tmp, true);
  if (!file.ok()) return file.status();
  auto table = create_file(std::move(*file), schema);
  if (!table.ok()) return table.status();
  VVM_RETURN_IF_ERROR(rename_durably(tmp, path));
  return Table::open(path, schema);
}

Result<Table> Table::create_file(std::unique_ptr<File> file, const Schema& schema) {
  if (header_text(schema).size() + kPrefix + 1 > schema.record_size()) {
    return Status::InvalidArgument(
        fmt::format("table {}: records too small for the header", schema.table()));
  }
  Table t(std::move(file), schema);
  VVM_RETURN_IF_ERROR(t.file_->write_at(0, header_record(schema)));
  VVM_RETURN_IF_ERROR(t.sync());
  return t;
}

namespace {
Table::EachLive one_worker(const std::function<void(uint64_t, const Values&)>& each) {
  if (!each) return {};
  return [&each](int, uint64_t slot, const Values& v) { each(slot, v); };
}
}  // namespace

Result<Table> Table::open(const std::string& path, const Schema& schema,
                          const std::function<void(uint64_t, const Values&)>& each) {
  return open(path, schema, one_worker(each), 1);
}

Result<Table> Table::open(const std::string& path, const Schema& schema, const EachLive& each,
                          int workers) {
  auto upgraded = upgrade(path, schema);
  if (!upgraded.ok()) return upgraded.status();
  auto file = open_posix_file(path, false);
  if (!file.ok()) return file.status();
  return open_file(std::move(*file), schema, each, workers);
}

Result<Table> Table::open_file(std::unique_ptr<File> file, const Schema& schema,
                               const std::function<void(uint64_t, const Values&)>& each) {
  return open_file(std::move(file), schema, one_worker(each), 1);
}

Result<Table> Table::open_file(std::unique_ptr<File> file, const Schema& schema,
                               const EachLive& each, int workers) {
  Table t(std::move(file), schema);
  const size_t rs = schema.record_size();
  auto size = t.file_->size();
  if (!size.ok()) return size.status();
  const std::string name = table_name(t.file_->path());
  if (*size < rs) {
    return Status::InvalidArgument(
        fmt::format("{}: {} bytes, too short for a header", name, *size));
  }
  std::string header(rs, '\0');
  VVM_RETURN_IF_ERROR(t.file_->read_at(0, header.data(), rs));
  std::string want = header_record(schema);
  if (header != want) {
    std::string found = header.substr(kPrefix, header.find_last_not_of(" \n") + 1 - kPrefix);
    return Status::InvalidArgument(fmt::format(
        "{}: header '{}' is not the one this vvmd writes ('{}'): another format, record size or "
        "set of fields, or not a vvm table",
        name, header[0] == kHeader ? found : header.substr(0, 40), header_text(schema)));
  }
  if (*size % rs != 0) {
    return Status::InvalidArgument(fmt::format(
        "{}: {} bytes is not a whole number of {}-byte records (record {} is cut short)", name,
        *size, rs, *size / rs));
  }
  t.slots_ = *size / rs;
  VVM_RETURN_IF_ERROR(t.read_all(each, std::max(workers, 1), true));
  return t;
}

Result<bool> Table::upgrade(const std::string& path, const Schema& schema) {
  const size_t rs = schema.record_size();
  std::optional<OldLayout> old;
  uint64_t slots = 0;
  std::unique_ptr<File> in;
  {
    auto file = open_posix_file(path, false);
    if (!file.ok()) return file.status();
    in = std::move(*file);
    auto size = in->size();
    if (!size.ok()) return size.status();
    if (*size < rs || *size % rs != 0) return false;  // open_file says what is wrong
    std::string header(rs, '\0');
    VVM_RETURN_IF_ERROR(in->read_at(0, header.data(), rs));
    old = old_layout(header, schema);
    if (!old) return false;
    slots = *size / rs;
  }
  const std::string name = table_name(path);
  const std::string tmp = path + ".upgrade";
  ::unlink(tmp.c_str());  // left by an upgrade cut short
  auto made = open_posix_file(tmp, true);
  if (!made.ok()) return made.status();
  std::unique_ptr<File> out = std::move(*made);
  VVM_RETURN_IF_ERROR(out->write_at(0, header_record(schema)));
  // Slot for slot, so that the journal's images and every index still name the same records:
  // deleted records stay deleted (with their values), never-written slots stay zeros.
  const size_t old_fields = old->schema.fields().size();
  constexpr uint64_t kChunk = 1 << 20;
  const uint64_t per_chunk = kChunk / rs;
  std::string buf, next;
  Values values;
  uint64_t live = 0, deleted = 0;
  for (uint64_t first = 1; first < slots; first += per_chunk) {
    const uint64_t count = std::min(per_chunk, slots - first);
    buf.resize(count * rs);
    VVM_RETURN_IF_ERROR(in->read_at(first * rs, buf.data(), buf.size()));
    next.assign(buf.size(), '\0');
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t slot = first + i;
      std::string_view rec(buf.data() + i * rs, rs);
      if (is_blank(rec)) continue;
      uint32_t expected = 0;
      if (!checksum_ok(rec, &expected)) {
        return Status::IoError(fmt::format(
            "{}: record {}: checksum '{}' is not {:08x}: the record is torn or half-written, and "
            "the table was not upgraded: '{}'",
            name, slot, rec.substr(2, 8), expected, rec.substr(0, std::min<size_t>(rs - 1, 80))));
      }
      VVM_RETURN_IF_ERROR(old->schema.decode_into(rec, name, slot, &values));
      for (size_t f = old_fields; f < schema.fields().size(); ++f) {
        const Field& field = schema.fields()[f];
        values.push_back(field.fill                       ? *field.fill
                         : field.kind == FieldKind::kText ? Value(std::string())
                                                          : Value(uint64_t{0}));
      }
      auto text = schema.encode(rec[0], values);
      if (!text.ok()) {
        return Status(text.status().code(),
                      fmt::format("{}: record {}: {}", name, slot, text.status().message()));
      }
      next.replace(i * rs, rs, *text);
      (rec[0] == kLive ? live : deleted) += 1;
    }
    VVM_RETURN_IF_ERROR(out->write_at(first * rs, next));
  }
  VVM_RETURN_IF_ERROR(out->sync());
  out.reset();
  in.reset();
  VVM_RETURN_IF_ERROR(rename_durably(tmp, path));
  log::info(
      "{}: upgraded from format {} with {} fields to format {} with {}: {} live and {} "
      "deleted records rewritten",
      path, old->version, old_fields, kFormatVersion, schema.fields().size(), live, deleted);
  return true;
}

struct Table::Part {
  uint64_t first = 0, end = 0;
  std::vector<uint64_t> free;  // in slot order
  uint64_t live = 0;
  Status error;
};

Status Table::read_all(const EachLive& each, int workers, bool rebuild) {
  if (rebuild) live_slots_.assign(slots_, 0);
  // A part a worker, cut at whole MiB so that no two workers read the same page.
  const uint64_t per_mib = (1 << 20) / schema_->record_size();
  const uint64_t records = slots_ - 1;
  const uint64_t chunks = (records + per_mib - 1) / per_mib;
  const auto n = static_cast<uint64_t>(workers) < chunks ? static_cast<uint64_t>(workers) : 1;
  std::vector<Part> parts(n);
  for (uint64_t i = 0; i < n; ++i) {
    parts[i].first = 1 + chunks * i / n * per_mib;
    parts[i].end = std::min(slots_, 1 + chunks * (i + 1) / n * per_mib);
  }
  // Mapped here, once: File::mapping is not thread-safe (two workers mapping at once made two
  // reservations, and one read through the other's unmapped one).
  const char* mapped = file_->mapping(slots_ * schema_->record_size());
  if (n == 1) {
    read_part(parts[0], mapped, each, 0, rebuild);
  } else {
    std::vector<std::thread> threads;
    for (uint64_t i = 0; i < n; ++i) {
      threads.emplace_back(
          [&, i] { read_part(parts[i], mapped, each, static_cast<int>(i), rebuild); });
    }
    for (auto& t : threads) t.join();
  }
  for (Part& p : parts) {
    VVM_RETURN_IF_ERROR(p.error);  // the first bad record in slot order
    if (rebuild) {
      for (uint64_t slot : p.free) free_.insert(free_.end(), slot);
      live_ += p.live;
    }
  }
  return Status::Ok();
}

void Table::read_part(Part& part, const char* mapped, const EachLive& each, int worker,
                      bool rebuild) {
  const size_t rs = schema_->record_size();
  // Through the file's mapping when it has one; else 1 MiB at a time (one pread a record is
  // slow).
  std::string buf;
  Values values;
  constexpr size_t kChunk = 1 << 20;
  const uint64_t per_chunk = kChunk / rs;
  for (uint64_t first = part.first; first < part.end; first += per_chunk) {
    const uint64_t count = std::min(per_chunk, part.end - first);
    const char* base;
    if (mapped) {
      base = mapped + first * rs;
    } else {
      buf.resize(count * rs);
      part.error = file_->read_at(first * rs, buf.data(), buf.size());
      if (!part.error.ok()) return;
      base = buf.data();
    }
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t slot = first + i;
      std::string_view rec(base + i * rs, rs);
      if (is_blank(rec)) {
        if (rebuild) part.free.push_back(slot);
        continue;
      }
      uint32_t expected = 0;
      if (!checksum_ok(rec, &expected)) {
        part.error = Status::IoError(fmt::format(
            "{}: checksum '{}' is not {:08x}: the record is torn or half-written: '{}'",
            where(slot), rec.substr(2, 8), expected, rec.substr(0, std::min<size_t>(rs - 1, 80))));
        return;
      }
      part.error = schema_->decode_into(rec, file_name_, slot, &values);
      if (!part.error.ok()) return;
      if (rec[0] == kDeleted) {
        if (rebuild) part.free.push_back(slot);
        continue;
      }
      if (rebuild) {
        live_slots_[slot] = 1;
        ++part.live;
      }
      if (each) each(worker, slot, values);
    }
  }
}

Status Table::check_usable() const {
  if (failed_) {
    return Status(failed_->code(), fmt::format("{}: unusable after an earlier failure: {}", path(),
                                               failed_->message()));
  }
  return Status::Ok();
}

Status Table::check_live(uint64_t slot) const {
  if (slot >= live_slots_.size() || !live_slots_[slot]) {
    return Status::NotFound(fmt::format("{}: no live record there", where(slot)));
  }
  return Status::Ok();
}

Status Table::write_slot(uint64_t slot, char state, const Values& values) {
  auto rec = schema_->encode(state, values);
  if (!rec.ok()) return rec.status();
  if (deferred_) {
    Pending& p = pending_[slot];
    p.text = std::move(*rec);
    if (p.take != takes_ + 1) {  // first change since the last take
      p.take = takes_ + 1;
      untaken_.push_back(slot);
    }
    return Status::Ok();
  }
  Status s = file_->write_at(slot * schema_->record_size(), *rec);
  if (!s.ok()) failed_ = s;  // what reached the file is unknown now
  return s;
}

Result<uint64_t> Table::insert(const Values& values) {
  const uint64_t slot = free_.empty() ? slots_ : *free_.begin();
  VVM_RETURN_IF_ERROR(insert_at(slot, values));
  return slot;
}

Status Table::update(uint64_t slot, const Values& values) {
  VVM_RETURN_IF_ERROR(check_usable());
  VVM_RETURN_IF_ERROR(check_live(slot));
  return write_slot(slot, kLive, values);
}

Status Table::erase(uint64_t slot) {
  VVM_RETURN_IF_ERROR(check_usable());
  VVM_RETURN_IF_ERROR(check_live(slot));
  // The old values stay readable in the deleted record (handy with grep after a mistake).
  auto old = read(slot);
  if (!old.ok()) return old.status();
  VVM_RETURN_IF_ERROR(write_slot(slot, kDeleted, *old));
  live_slots_[slot] = 0;
  free_.insert(slot);
  --live_;
  return Status::Ok();
}

Result<std::string_view> Table::record_text(uint64_t slot, std::string& buf) {
  if (auto it = pending_.find(slot); it != pending_.end()) {
    return std::string_view(it->second.text);
  }
  const size_t rs = schema_->record_size();
  if (const char* mapped = file_->mapping(slots_ * rs)) {
    return std::string_view(mapped + slot * rs, rs);
  }
  buf.resize(rs);
  VVM_RETURN_IF_ERROR(file_->read_at(slot * rs, buf.data(), rs));
  return std::string_view(buf);
}

Result<Values> Table::read(uint64_t slot) {
  Values values;
  VVM_RETURN_IF_ERROR(read_into(slot, &values));
  return values;
}

Status Table::read_into(uint64_t slot, Values* out) {
  ValuesSink sink(*out, schema_->fields().size());
  return read_to(slot, sink);
}

Status Table::read_to(uint64_t slot, FieldSink& sink) {
  VVM_RETURN_IF_ERROR(check_usable());
  if (slot == 0 || slot >= slots_) {
    return Status::NotFound(fmt::format("{}: no live record there", where(slot)));
  }
  std::string buf;
  auto rec = record_text(slot, buf);
  if (!rec.ok()) return rec.status();
  // The record's own state says whether it is live (live_slots_ agrees, but is one more cache
  // miss on a random read).
  if ((*rec)[0] != kLive) {
    return Status::NotFound(fmt::format("{}: no live record there", where(slot)));
  }
  if (!checksum_ok(*rec)) {
    return Status::IoError(
        fmt::format("{}: checksum does not match: the record is damaged", where(slot)));
  }
  return schema_->decode_to(*rec, file_name_, slot, sink);
}

Status Table::scan(const std::function<void(uint64_t, const Values&)>& each) {
  VVM_RETURN_IF_ERROR(check_usable());
  if (!pending_.empty()) {
    return Status::Internal(fmt::format("{}: scan with changes not yet written", path()));
  }
  return read_all(one_worker(each), 1, false);
}

std::vector<Table::Image> Table::take_pending() {
  std::sort(untaken_.begin(), untaken_.end());
  std::vector<Image> images;
  images.reserve(untaken_.size());
  for (uint64_t slot : untaken_) images.emplace_back(slot, pending_.at(slot).text);
  untaken_.clear();
  ++takes_;
  return images;
}

void Table::release_pending(const std::vector<Image>& taken) {
  ++released_;
  for (const auto& [slot, text] : taken) {
    // An image changed after this take belongs to a later one and stays.
    if (auto it = pending_.find(slot); it != pending_.end() && it->second.take <= released_) {
      pending_.erase(it);
    }
  }
}

Status Table::write_images(const std::vector<Image>& images) {
  for (const auto& [slot, rec] : images) {
    VVM_RETURN_IF_ERROR(file_->write_at(slot * schema_->record_size(), rec));
  }
  return Status::Ok();
}

Status Table::insert_at(uint64_t slot, const Values& values) {
  VVM_RETURN_IF_ERROR(check_usable());
  if (slot != slots_ && !free_.contains(slot)) {
    return Status::Internal(fmt::format("{}: not free", where(slot)));
  }
  VVM_RETURN_IF_ERROR(write_slot(slot, kLive, values));
  if (slot == slots_) {
    ++slots_;
    live_slots_.resize(slots_, 0);
  } else {
    free_.erase(slot);
  }
  live_slots_[slot] = 1;
  ++live_;
  return Status::Ok();
}

Status Table::sync() {
  VVM_RETURN_IF_ERROR(check_usable());
  Status s = file_->sync();
  if (!s.ok()) failed_ = s;
  return s;
}

}  // namespace vvm::db
