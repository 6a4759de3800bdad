// emulated_tape.cc: st semantics over a SIMH .tap image; see emulated_tape.h.
#include "tape/emulated_tape.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/core.h>

namespace vvm::tape {

namespace {

constexpr uint32_t kTapeMark = 0;
constexpr uint32_t kEndOfMedium = 0xFFFFFFFF;
constexpr uint32_t kGap = 0xFFFFFFFE;      // an erase gap: 4 bytes, skipped
constexpr uint32_t kHalfGap = 0xFFFEFFFF;  // half an erase gap: 2 bytes, skipped
constexpr uint32_t kMaxLength = 0x00FFFFFF;
constexpr uint32_t kBadFlag = 0x80000000;  // SIMH class 8: a record with a medium error

void put_le32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
uint32_t get_le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Reads exactly n bytes at `offset`; false at end of file (a short read); errno on errors.
Result<bool> pread_full(int fd, char* buf, size_t n, uint64_t offset) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, buf + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "pread");
    }
    if (r == 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

Status pwrite_full(int fd, struct iovec* iov, int n, uint64_t offset) {
  while (n > 0) {
    ssize_t w = ::pwritev(fd, iov, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "pwrite");
    }
    offset += static_cast<uint64_t>(w);
    auto left = static_cast<size_t>(w);
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --n;
    }
    if (n > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return Status::Ok();
}

ReadResult read_failure(TapeResult r) { return {std::move(r.status), r.err}; }

}  // namespace

EmulatedTape::EmulatedTape(EmulatedTapeOptions options) : options_(options) {
  if (options_.capacity > 0 && options_.early_warning == 0) {
    options_.early_warning = options_.capacity - options_.capacity / 50;
  }
}

EmulatedTape::~EmulatedTape() {
  if (fd_ < 0) return;
  (void)mark_after_writes();
  ::close(fd_);
}

Status EmulatedTape::create_image(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(errno, path);
  ::close(fd);
  return Status::Ok();
}

TapeResult EmulatedTape::fail(int err, std::string_view op, std::string_view detail) const {
  Status s = Status::FromErrno(err, fmt::format("{}: {}", path_.empty() ? "tape" : path_, op));
  if (detail.empty()) return {std::move(s), err};
  return {Status(s.code(), fmt::format("{} ({})", s.message(), detail)), err};
}

TapeResult EmulatedTape::check_loaded(std::string_view op) const {
  if (fd_ < 0) return fail(ENOMEDIUM, op, "no tape loaded");
  return {};
}

void EmulatedTape::charge(double seconds) {
  if (seconds <= 0) return;
  modeled_seconds_ += seconds;
  if (options_.time.scale > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds * options_.time.scale));
  }
}

double EmulatedTape::move_seconds(double base, uint64_t from, uint64_t to) const {
  if (from == to) return 0;
  double length =
      options_.capacity > 0 ? static_cast<double>(options_.capacity) : options_.time.nominal_length;
  double distance = static_cast<double>(from > to ? from - to : to - from);
  return base * (0.2 + 1.6 * std::min(1.0, distance / length));
}

double EmulatedTape::stream_seconds(uint64_t bytes) const {
  if (options_.time.bytes_per_second <= 0) return 0;
  return static_cast<double>(bytes) / options_.time.bytes_per_second;
}

TapeResult EmulatedTape::load(const std::string& path, bool write_protect) {
  if (fd_ >= 0) {
    if (TapeResult r = unload(); !r.ok()) return r;
  }
  path_ = path;
  if (faults_.fail_mount) return fail(EIO, "load", "the drive could not thread the tape");
  const std::string& image = faults_.wrong_tape.empty() ? path : faults_.wrong_tape;
  write_protected_ = write_protect;
  int fd = write_protect ? -1 : ::open(image.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && (write_protect || errno == EACCES || errno == EROFS)) {
    fd = ::open(image.c_str(), O_RDONLY | O_CLOEXEC);
    write_protected_ = true;
  }
  if (fd < 0) return fail(errno, "load", image);
  fd_ = fd;
  charge(options_.time.load_seconds);
  if (TapeResult r = scan(); !r.ok()) {
    ::close(fd_);
    fd_ = -1;
    return r;
  }
  synced_end_ = eod_;
  synced_block_ = eod_block_;
  move_to(0, 0, 0);
  return {};
}

Result<EmulatedTape::Record> EmulatedTape::record_at(uint64_t offset, uint64_t* data_offset) const {
  Record rec;
  for (;;) {
    char head[4];
    auto got = pread_full(fd_, head, 4, offset);
    if (!got.ok()) return got.status();
    if (!*got) return rec;  // end of file (or a torn header): end of data
    uint32_t v = get_le32(head);
    if (v == kGap) {
      offset += 4;
      continue;
    }
    if (v == kHalfGap) {
      offset += 2;
      continue;
    }
    if (v == kEndOfMedium) return rec;
    if (v == kTapeMark) {
      rec.kind = Record::kMark;
      rec.next = offset + 4;
      return rec;
    }
    uint32_t length = v & ~kBadFlag;
    if (length > kMaxLength) return rec;  // a record class SIMH reserves: not ours, not data
    uint64_t trailer = offset + 4 + length + (length & 1);
    char tail[4];
    got = pread_full(fd_, tail, 4, trailer);
    if (!got.ok()) return got.status();
    if (!*got || get_le32(tail) != v) return rec;  // torn: the write never finished
    rec.kind = (v & kBadFlag) ? Record::kBad : Record::kData;
    rec.length = length;
    rec.next = trailer + 4;
    if (data_offset) *data_offset = offset + 4;
    return rec;
  }
}

TapeResult EmulatedTape::scan() {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return fail(errno, "load");
  image_size_ = static_cast<uint64_t>(st.st_size);
  marks_.clear();
  uint64_t offset = 0, block = 0;
  for (;;) {
    auto rec = record_at(offset);
    if (!rec.ok()) return fail(EIO, "load", rec.status().message());
    if (rec->kind == Record::kEnd) break;
    if (rec->kind == Record::kMark) marks_.push_back({rec->next - 4, block});
    offset = rec->next;
    ++block;
  }
  eod_ = offset;
  eod_block_ = block;
  return {};
}

void EmulatedTape::move_to(uint64_t offset, uint64_t block, uint64_t file) {
  offset_ = offset;
  block_ = block;
  file_ = file;
  eod_read_ = false;
  ew_refuse_next_ = true;
  wrote_data_ = false;  // st adds its tape mark only where the writing stopped
}

size_t EmulatedTape::marks_before(uint64_t offset) const {
  auto it = std::lower_bound(marks_.begin(), marks_.end(), offset,
                             [](const Mark& m, uint64_t o) { return m.offset < o; });
  return static_cast<size_t>(it - marks_.begin());
}

TapeResult EmulatedTape::cut(uint64_t offset, uint64_t block) {
  if (offset >= image_size_) return {};
  if (::ftruncate(fd_, static_cast<off_t>(offset)) != 0) return fail(errno, "truncate image");
  image_size_ = offset;
  marks_.resize(marks_before(offset));
  eod_ = offset;
  eod_block_ = block;
  if (synced_end_ > offset) {
    synced_end_ = offset;
    synced_block_ = block;
  }
  return {};
}

TapeResult EmulatedTape::mark_after_writes() {
  if (fd_ < 0 || !wrote_data_) return {};
  return write_tape_marks(1, true);
}

TapeResult EmulatedTape::write_block(std::span<const char> data) {
  const std::string op = fmt::format("write block {}", block_);
  if (TapeResult r = check_loaded(op); !r.ok()) return r;
  if (write_protected_) return fail(EACCES, op, "the tape is write-protected");
  if (data.empty() || data.size() > kMaxLength) {
    return fail(EINVAL, op,
                fmt::format("{} bytes: a block holds 1 to {}", data.size(), kMaxLength));
  }
  const auto length = static_cast<uint32_t>(data.size());
  const uint64_t end = offset_ + 8 + length + (length & 1);
  if (options_.capacity > 0 && end > options_.capacity) {
    return fail(ENOSPC, op, "physical end of medium");
  }
  if (options_.early_warning > 0 && offset_ >= options_.early_warning) {
    // st: past early warning, writes fail and succeed alternately, the first one failing, so
    // that a writer learns of the end and can still write a trailer.
    ew_refuse_next_ = !ew_refuse_next_;
    if (!ew_refuse_next_) return fail(ENOSPC, op, "early warning: the end of the medium is near");
  }
  if (TapeResult r = cut(offset_, block_); !r.ok()) return r;
  char head[4], tail[5] = {0};
  put_le32(head, length);
  size_t pad = length & 1;
  put_le32(tail + pad, length);
  struct iovec iov[3] = {
      {head, 4},
      {const_cast<char*>(data.data()), data.size()},
      {tail, 4 + pad},
  };
  if (Status s = pwrite_full(fd_, iov, 3, offset_); !s.ok()) return fail(EIO, op, s.message());
  if (faults_.medium_error_block >= 0 &&
      static_cast<uint64_t>(faults_.medium_error_block) == block_) {
    deferred_error_ = true;  // the drive took the block; the error shows at the next sync
  }
  charge(stream_seconds(length));
  image_size_ = std::max(image_size_, end);
  eod_ = end;
  eod_block_ = block_ + 1;
  offset_ = end;
  ++block_;
  eod_read_ = false;
  wrote_data_ = true;
  return {};
}

ReadResult EmulatedTape::read_block(std::span<char> buffer) {
  const std::string op = fmt::format("read block {}", block_);
  if (TapeResult r = check_loaded(op); !r.ok()) return read_failure(std::move(r));
  if (offset_ >= eod_) {
    if (eod_read_) return read_failure(fail(EIO, op, "read past end of data"));
    eod_read_ = true;
    return {Status::Ok(), 0, BlockKind::kEndOfData, 0};
  }
  uint64_t data_offset = 0;
  auto rec = record_at(offset_, &data_offset);
  if (!rec.ok()) return read_failure(fail(EIO, op, rec.status().message()));
  if (rec->kind == Record::kEnd) return read_failure(fail(EIO, op, "the image changed under us"));
  const uint64_t block = block_;
  offset_ = rec->next;
  ++block_;
  if (rec->kind == Record::kMark) {
    ++file_;
    return {Status::Ok(), 0, BlockKind::kTapeMark, 0};
  }
  // As st, a block that cannot be read has still been passed over.
  if (rec->kind == Record::kBad || (faults_.medium_error_block >= 0 &&
                                    static_cast<uint64_t>(faults_.medium_error_block) == block)) {
    return read_failure(fail(EIO, op, "medium error"));
  }
  if (rec->length > buffer.size()) {
    return read_failure(
        fail(ENOMEM, op,
             fmt::format("the block has {} bytes, the buffer {}", rec->length, buffer.size())));
  }
  auto got = pread_full(fd_, buffer.data(), rec->length, data_offset);
  if (!got.ok() || !*got) {
    return read_failure(fail(EIO, op, got.ok() ? "short image" : got.status().message()));
  }
  charge(stream_seconds(rec->length));
  return {Status::Ok(), 0, BlockKind::kData, rec->length};
}

TapeResult EmulatedTape::write_tape_marks(uint32_t count, bool sync) {
  const std::string op = fmt::format("write {} tape mark{}", count, count == 1 ? "" : "s");
  if (TapeResult r = check_loaded(op); !r.ok()) return r;
  if (count > 0) {
    if (write_protected_) return fail(EACCES, op, "the tape is write-protected");
    const uint64_t end = offset_ + 4ull * count;
    if (options_.capacity > 0 && end > options_.capacity) {
      return fail(ENOSPC, op, "physical end of medium");
    }
    if (TapeResult r = cut(offset_, block_); !r.ok()) return r;
    std::string zeros(4ull * count, '\0');
    struct iovec iov = {zeros.data(), zeros.size()};
    if (Status s = pwrite_full(fd_, &iov, 1, offset_); !s.ok()) return fail(EIO, op, s.message());
    for (uint32_t i = 0; i < count; ++i) marks_.push_back({offset_ + 4ull * i, block_ + i});
    image_size_ = std::max(image_size_, end);
    offset_ = eod_ = end;
    block_ = eod_block_ = block_ + count;
    file_ += count;
    eod_read_ = false;
    wrote_data_ = false;
  }
  if (!sync) return {};
  if (deferred_error_) {
    // The drive could not write a buffered block: what was not yet synced is lost.
    deferred_error_ = false;
    const uint64_t keep = synced_end_, keep_block = synced_block_;
    (void)cut(keep, keep_block);
    move_to(keep, keep_block, marks_.size());
    return fail(EIO, op, "deferred write error: blocks since the last sync are lost");
  }
  if (::fdatasync(fd_) != 0) return fail(errno, op, "fdatasync of the image");
  synced_end_ = eod_;
  synced_block_ = eod_block_;
  return {};
}

TapeResult EmulatedTape::rewind() {
  if (TapeResult r = check_loaded("rewind"); !r.ok()) return r;
  if (TapeResult r = mark_after_writes(); !r.ok()) return r;
  charge(move_seconds(options_.time.rewind_seconds, offset_, 0));
  move_to(0, 0, 0);
  return {};
}

TapeResult EmulatedTape::space_forward(uint32_t count) {
  const std::string op = fmt::format("space forward {} tape mark{}", count, count == 1 ? "" : "s");
  if (TapeResult r = check_loaded(op); !r.ok()) return r;
  if (count == 0) return {};
  const size_t target = marks_before(offset_) + count - 1;
  if (target >= marks_.size()) {
    charge(move_seconds(options_.time.locate_seconds, offset_, eod_));
    move_to(eod_, eod_block_, marks_.size());
    return fail(EIO, op, "end of data first");
  }
  const Mark& m = marks_[target];
  charge(move_seconds(options_.time.locate_seconds, offset_, m.offset + 4));
  move_to(m.offset + 4, m.block + 1, target + 1);
  return {};
}

TapeResult EmulatedTape::space_back(uint32_t count) {
  const std::string op = fmt::format("space back {} tape mark{}", count, count == 1 ? "" : "s");
  if (TapeResult r = check_loaded(op); !r.ok()) return r;
  if (TapeResult r = mark_after_writes(); !r.ok()) return r;
  if (count == 0) return {};
  const size_t before = marks_before(offset_);
  if (before < count) {
    charge(move_seconds(options_.time.locate_seconds, offset_, 0));
    move_to(0, 0, 0);
    return fail(EIO, op, "beginning of tape first");
  }
  const size_t target = before - count;
  const Mark& m = marks_[target];
  charge(move_seconds(options_.time.locate_seconds, offset_, m.offset));
  move_to(m.offset, m.block, target);
  return {};
}

TapeResult EmulatedTape::space_forward_blocks(uint32_t count) {
  const std::string op = fmt::format("space forward {} block{}", count, count == 1 ? "" : "s");
  if (TapeResult r = check_loaded(op); !r.ok()) return r;
  uint64_t offset = offset_, block = block_, file = file_, bytes = 0;
  TapeResult result;
  for (uint32_t i = 0; i < count; ++i) {
    if (offset >= eod_) {
      result = fail(EIO, op, "end of data first");
      break;
    }
    auto rec = record_at(offset);
    if (!rec.ok() || rec->kind == Record::kEnd) {
      result = fail(EIO, op, rec.ok() ? "the image changed under us" : rec.status().message());
      break;
    }
    offset = rec->next;
    ++block;
    bytes += rec->length;
    if (rec->kind == Record::kMark) {
      ++file;
      result = fail(EIO, op, "a tape mark first");
      break;
    }
  }
  charge(stream_seconds(bytes));
  move_to(offset, block, file);
  return result;
}

TapeResult EmulatedTape::space_back_blocks(uint32_t count) {
  const std::string op = fmt::format("space back {} block{}", count, count == 1 ? "" : "s");
  if (TapeResult r = check_loaded(op); !r.ok()) return r;
  uint64_t offset = offset_, block = block_, file = file_, bytes = 0;
  TapeResult result;
  for (uint32_t i = 0; i < count && result.ok();) {
    if (offset == 0) {
      result = fail(EIO, op, "beginning of tape first");
      break;
    }
    char tail[4];
    auto got = offset >= 4 ? pread_full(fd_, tail, 4, offset - 4) : Result<bool>(false);
    if (!got.ok() || !*got) {
      result = fail(EIO, op, got.ok() ? "the image changed under us" : got.status().message());
      break;
    }
    uint32_t v = get_le32(tail);
    if (v == kGap) {
      offset -= 4;
      continue;
    }
    --block;
    ++i;
    if (v == kTapeMark) {
      offset -= 4;
      --file;
      result = fail(EIO, op, "a tape mark first");
      break;
    }
    uint32_t length = v & ~kBadFlag;
    uint64_t size = 8 + length + (length & 1);
    if (length > kMaxLength || size > offset) {
      result = fail(EIO, op, fmt::format("no block ends at image offset {}", offset));
      break;
    }
    offset -= size;
    bytes += length;
  }
  charge(stream_seconds(bytes));
  move_to(offset, block, file);
  return result;
}

TapeResult EmulatedTape::position_to_file(uint64_t n) {
  const std::string op = fmt::format("position to file {}", n);
  if (TapeResult r = check_loaded(op); !r.ok()) return r;
  if (TapeResult r = mark_after_writes(); !r.ok()) return r;
  if (n > marks_.size()) {
    charge(move_seconds(options_.time.locate_seconds, offset_, eod_));
    move_to(eod_, eod_block_, marks_.size());
    return fail(EIO, op, fmt::format("the tape has {} complete files", marks_.size()));
  }
  uint64_t offset = n == 0 ? 0 : marks_[n - 1].offset + 4;
  uint64_t block = n == 0 ? 0 : marks_[n - 1].block + 1;
  charge(move_seconds(options_.time.locate_seconds, offset_, offset));
  move_to(offset, block, n);
  return {};
}

TapeResult EmulatedTape::position_to_end_of_data() {
  if (TapeResult r = check_loaded("position to end of data"); !r.ok()) return r;
  charge(move_seconds(options_.time.locate_seconds, offset_, eod_));
  move_to(eod_, eod_block_, marks_.size());
  return {};
}

StateResult EmulatedTape::status() {
  StateResult out;
  if (fd_ < 0) return out;  // ok, not loaded: positions unknown
  TapeState& s = out.state;
  s.loaded = true;
  s.bot = block_ == 0;  // an erase gap may come first
  s.eod = offset_ >= eod_;
  size_t before = marks_before(offset_);
  s.at_tape_mark = before > 0 && marks_[before - 1].offset + 4 == offset_;
  s.early_warning = options_.early_warning > 0 && offset_ >= options_.early_warning;
  s.write_protected = write_protected_;
  s.file_number = static_cast<int64_t>(file_);
  s.logical_block = static_cast<int64_t>(block_);
  uint64_t file_start = file_ == 0 ? 0 : marks_[file_ - 1].block + 1;
  s.block_in_file = static_cast<int64_t>(block_ - file_start);
  return out;
}

TapeResult EmulatedTape::unload() {
  if (TapeResult r = check_loaded("unload"); !r.ok()) return r;
  if (TapeResult r = mark_after_writes(); !r.ok()) return r;
  charge(move_seconds(options_.time.rewind_seconds, offset_, 0) + options_.time.unload_seconds);
  ::close(fd_);
  fd_ = -1;
  marks_.clear();
  return {};
}

void EmulatedTape::simulate_power_loss() {
  if (fd_ < 0) return;
  // The drive's buffer is gone, and the tape comes out of it unsynced blocks and all.
  if (image_size_ > synced_end_) (void)::ftruncate(fd_, static_cast<off_t>(synced_end_));
  ::close(fd_);
  fd_ = -1;
  marks_.clear();
  wrote_data_ = false;
  deferred_error_ = false;
}

}  // namespace vvm::tape
