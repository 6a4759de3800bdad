// copy/copy.cc: archive, stage and tape copy (copy/copy.h), the pipeline that overlaps file and
// tape I/O, and the whole-file read vvtape uses; the label scans are tape/scan.cc's.
#include "copy/copy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include <fmt/core.h>

#include "tape/library.h"
#include "tape/scan.h"

namespace vvm::tape {

namespace {

// The largest block a SIMH image (and so EmulatedTape) holds.
constexpr size_t kMaxWriteBlock = 0xFFFFFF;
// Buffers are aligned for direct I/O (st's bounce buffer is skipped with aligned user buffers).
constexpr size_t kAlign = 4096;

// A bounded queue of aligned buffers between one producer and one consumer thread. The producer
// takes a free buffer, fills it and puts it; the consumer gets it, uses it and gives it back.
// Either side can abort: the other then sees no more buffers.
class Pipe {
 public:
  Pipe(size_t count, size_t size) : size_((size + kAlign - 1) / kAlign * kAlign) {
    for (size_t i = 0; i < std::max<size_t>(count, 1); ++i) {
      void* p = std::aligned_alloc(kAlign, size_);
      if (!p) break;  // fewer buffers: slower, still correct
      owned_.push_back(static_cast<char*>(p));
      free_.push_back(static_cast<char*>(p));
    }
  }
  ~Pipe() {
    for (char* p : owned_) std::free(p);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  bool ok() const { return !owned_.empty(); }
  size_t buffer_size() const { return size_; }

  // Producer: a free buffer, or nullptr once the consumer aborted.
  char* take() {
    std::unique_lock lock(mu_);
    free_cv_.wait(lock, [&] { return !free_.empty() || aborted_; });
    if (aborted_) return nullptr;
    char* b = free_.back();
    free_.pop_back();
    return b;
  }
  void put(char* buffer, size_t length) {
    std::lock_guard lock(mu_);
    full_.push_back({buffer, length});
    full_cv_.notify_one();
  }
  // Producer: nothing more comes.
  void finish() {
    std::lock_guard lock(mu_);
    finished_ = true;
    full_cv_.notify_one();
  }
  // Consumer: the next full buffer; false at the end or once the producer aborted.
  bool get(char** buffer, size_t* length) {
    std::unique_lock lock(mu_);
    full_cv_.wait(lock, [&] { return !full_.empty() || finished_ || aborted_; });
    if (aborted_ || full_.empty()) return false;
    *buffer = full_.front().first;
    *length = full_.front().second;
    full_.pop_front();
    return true;
  }
  void give(char* buffer) {
    std::lock_guard lock(mu_);
    free_.push_back(buffer);
    free_cv_.notify_one();
  }
  // Either side: stop the other.
  void abort() {
    std::lock_guard lock(mu_);
    aborted_ = true;
    free_cv_.notify_all();
    full_cv_.notify_all();
  }

 private:
  size_t size_;
  std::vector<char*> owned_;
  std::mutex mu_;
  std::condition_variable free_cv_, full_cv_;
  std::vector<char*> free_;
  std::deque<std::pair<char*, size_t>> full_;
  bool finished_ = false;
  bool aborted_ = false;
};

// Aborts the pipe and joins the thread on every way out of a scope.
class Joiner {
 public:
  Joiner(Pipe& pipe, std::thread& thread) : pipe_(pipe), thread_(thread) {}
  ~Joiner() { join(/*abort=*/true); }
  void join(bool abort = false) {
    if (!thread_.joinable()) return;
    if (abort) pipe_.abort();
    thread_.join();
  }

 private:
  Pipe& pipe_;
  std::thread& thread_;
};

class Hasher {
 public:
  Hasher() : state_(XXH3_createState()) { XXH3_64bits_reset(state_); }
  ~Hasher() { XXH3_freeState(state_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void update(const char* data, size_t n) { XXH3_64bits_update(state_, data, n); }
  uint64_t digest() const { return XXH3_64bits_digest(state_); }

 private:
  XXH3_state_t* state_;
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string hex16(uint64_t v) { return fmt::format("{:016X}", v); }

// Reads up to n bytes, retrying short reads; the count read (less than n only at end of file).
Result<size_t> read_full(int fd, char* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::read(fd, buf + done, n - done);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read");
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

// A full filesystem is NoSpace, not IoError: on stage it is the cache's doing, not the tape's.
Status write_error(int err, std::string_view what) {
  if (err == ENOSPC) return Status::NoSpace(fmt::format("{}: {}", what, std::strerror(err)));
  return Status::FromErrno(err, what);
}

Status write_full(int fd, const char* buf, size_t n) {
  while (n > 0) {
    ssize_t put = ::write(fd, buf, n);
    if (put < 0) {
      if (errno == EINTR) continue;
      return write_error(errno, "write");
    }
    buf += put;
    n -= static_cast<size_t>(put);
  }
  return Status::Ok();
}

// Checks the VOL label and finds where file n goes: the last complete file must be n-1, or n
// holding this very copy (`hdr`, written by an earlier attempt whose report was lost: `*again`
// is then set), and the tape is left at the start of file n.
Status find_append_point(TapeDevice& tape, const std::string& vsn, uint64_t n, const FileLabel& hdr,
                         bool* again) {
  VVM_RETURN_IF_ERROR(check_volume(tape, vsn));
  auto marks = count_marks(tape);
  if (!marks.ok()) return with_context(marks.status(), fmt::format("VSN {}", vsn));
  if (*marks == 0) {
    return Status::Mismatch(fmt::format(
        "VSN {}: file 0 has no tape mark after its VOL label (label the tape again)", vsn));
  }
  // Files 0 .. marks-1 end with a tape mark; blocks after the last mark are a partial file. The
  // last terminated file is complete, or it is the partial one (st closed it with a tape mark)
  // and the one before it is complete; anything else is damage, not an interrupted archive.
  uint64_t last = 0;
  std::optional<FileLabel> eof;
  for (uint64_t k = *marks - 1; k >= 1 && k + 2 >= *marks; --k) {
    auto b = last_block_of(tape, k);
    if (!b.ok()) return with_context(b.status(), where(vsn, k));
    if (b->kind == BlockKind::kData && b->label && b->label->kind == LabelKind::kEof) {
      last = k;
      eof = b->label;
      break;
    }
    if (k + 2 == *marks) {
      return Status::Mismatch(fmt::format(
          "VSN {}: neither file {} nor file {} ends with an EOF label: the tape is damaged, not "
          "appending to it",
          vsn, k + 1, k));
    }
  }
  if (eof && eof->file_number != last) {
    return Status::Mismatch(
        fmt::format("{}: EOF label field file number: expected {:010}, found {:010}",
                    where(vsn, last), last, eof->file_number));
  }
  // The requester names n as the next file only while its records use none from n on. A
  // complete file n with this same VV (class, serial, id, size, time finished) is this copy
  // already written once, its report lost (the requester was killed before it came, or gave up
  // on it): writing it again over itself loses nothing, while refusing would take a good tape
  // out of service after every crash. Anything else there is not ours to overwrite.
  *again = last == n && eof && eof->vv_class == hdr.vv_class && eof->vv_serial == hdr.vv_serial &&
           eof->id == hdr.id && eof->size == hdr.size && eof->time_finished == hdr.time_finished;
  if (last + 1 != n && !*again) {
    return Status::Mismatch(fmt::format(
        "VSN {}: the last complete file on the tape is {}, but the request expects to write "
        "file {} (after file {})",
        vsn, last, n, n - 1));
  }
  if (TapeResult r = tape.position_to_file(n); !r.ok()) {
    return with_context(r.status, where(vsn, n));
  }
  return Status::Ok();
}

// After end of medium or a failed cache-file read: back to the start of file n, and a tape mark
// there, so that the tape ends after file n-1 and the partial data is gone. Returns "" or what
// failed, for the caller's message.
std::string abandon(TapeDevice& tape, uint64_t n) {
  if (TapeResult r = tape.position_to_file(n); !r.ok()) {
    return fmt::format("; going back to the start of file {} failed: {}", n, r.status.message());
  }
  if (TapeResult r = tape.write_tape_marks(1, true); !r.ok()) {
    return fmt::format("; cutting the partial file off failed: {}", r.status.message());
  }
  return {};
}

// The HDR label of file `n` holding `vv` (time written left to the caller).
FileLabel hdr_label(const VvFields& vv, uint64_t n) {
  FileLabel hdr;
  hdr.kind = LabelKind::kHdr;
  hdr.vv_class = vv.vv_class;
  hdr.vv_serial = vv.vv_serial;
  hdr.id = vv.id;
  hdr.file_number = n;
  hdr.size = vv.size;
  hdr.time_finished = vv.time_finished;
  return hdr;
}

// A file about to be written as file `n`: its HDR label (time written: `time_written`, else now)
// and the encoded HDR and EOF labels around its data. `what` names the operation in errors.
struct WrittenLabels {
  FileLabel hdr;
  std::string hdr_bytes, eof_bytes;
};
Result<WrittenLabels> written_labels(const VvFields& vv, uint64_t n, uint64_t time_written,
                                     std::string_view what) {
  WrittenLabels w;
  w.hdr = hdr_label(vv, n);
  w.hdr.time_written = time_written ? time_written : static_cast<uint64_t>(std::time(nullptr));
  FileLabel eof = w.hdr;
  eof.kind = LabelKind::kEof;
  auto hdr_bytes = w.hdr.encode();
  if (!hdr_bytes.ok()) return with_context(hdr_bytes.status(), fmt::format("{}: HDR label", what));
  auto eof_bytes = eof.encode();
  if (!eof_bytes.ok()) return with_context(eof_bytes.status(), fmt::format("{}: EOF label", what));
  w.hdr_bytes = std::move(*hdr_bytes);
  w.eof_bytes = std::move(*eof_bytes);
  return w;
}

}  // namespace

uint64_t checksum_of(std::span<const char> data) { return XXH3_64bits(data.data(), data.size()); }

// --- archive ---

Result<ArchiveDone> archive(TapeDevice& tape, const ArchiveRequest& request,
                            const std::string& cache_file, const Progress& progress) {
  const uint64_t n = request.file_number;
  if (n == 0) return Status::InvalidArgument("archive: file number 0 is the VOL label's");
  if (request.block_size == 0 || request.block_size > kMaxWriteBlock) {
    return Status::InvalidArgument(fmt::format("archive: block size {}: not between 1 and {}",
                                               request.block_size, kMaxWriteBlock));
  }
  auto labels = written_labels(request.vv, n, request.time_written, "archive");
  if (!labels.ok()) return labels.status();
  const FileLabel& hdr = labels->hdr;
  const std::string& hdr_bytes = labels->hdr_bytes;
  const std::string& eof_bytes = labels->eof_bytes;

  Fd fd(::open(cache_file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::FromErrno(errno, cache_file);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, cache_file);
  if (static_cast<uint64_t>(st.st_size) != request.vv.size) {
    return Status::InvalidArgument(fmt::format("{}: {} bytes, but the request says the VV has {}",
                                               cache_file, st.st_size, request.vv.size));
  }
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);

  // The reader starts at once: while the tape positions, the first buffers fill.
  Pipe pipe(request.buffers, request.block_size);
  if (!pipe.ok()) return Status::Internal("archive: no memory for the copy buffers");
  Status reader_status;
  uint64_t checksum = 0;
  std::thread reader([&] {
    Hasher hash;
    uint64_t left = request.vv.size;
    while (left > 0) {
      char* b = pipe.take();
      if (!b) return;
      size_t want = static_cast<size_t>(std::min<uint64_t>(request.block_size, left));
      auto got = read_full(fd.get(), b, want);
      if (!got.ok() || *got != want) {
        reader_status =
            got.ok()
                ? Status::IoError(fmt::format("{}: ended after {} bytes; the VV has {}", cache_file,
                                              request.vv.size - left + *got, request.vv.size))
                : with_context(got.status(), cache_file);
        pipe.abort();
        return;
      }
      hash.update(b, want);
      pipe.put(b, want);
      left -= want;
    }
    checksum = hash.digest();
    pipe.finish();
  });
  Joiner joiner(pipe, reader);

  bool again = false;
  VVM_RETURN_IF_ERROR(find_append_point(tape, request.vsn, n, hdr, &again));

  uint64_t written = 0, blocks = 0;
  // Any write failure: ENOSPC means the VSN is full; the rest are the drive's.
  auto failed = [&](const TapeResult& r, std::string_view what) -> Status {
    joiner.join(/*abort=*/true);
    if (r.err == ENOSPC) {
      std::string cleanup = abandon(tape, n);
      return Status::NoSpace(fmt::format(
          "VSN {} is full: file {} (VV {}{}, {} bytes) did not fit: {} after {} data bytes "
          "failed: {}{}",
          request.vsn, n, hdr.vv_class, hdr.vv_serial, hdr.size, what, written, r.status.message(),
          cleanup));
    }
    return with_context(r.status, fmt::format("{}: {}", where(request.vsn, n), what));
  };

  if (TapeResult r = tape.write_block(hdr_bytes); !r.ok()) return failed(r, "writing the HDR");
  char* b;
  size_t len;
  while (pipe.get(&b, &len)) {
    TapeResult r = tape.write_block(std::span<const char>(b, len));
    pipe.give(b);
    if (!r.ok()) return failed(r, "writing a data block");
    written += len;
    ++blocks;
    if (progress) progress(written);
  }
  joiner.join();
  if (!reader_status.ok()) {
    std::string cleanup = abandon(tape, n);
    return Status(reader_status.code(),
                  fmt::format("{}: {}{}", where(request.vsn, n), reader_status.message(), cleanup));
  }
  if (written != request.vv.size) {
    return Status::Internal(
        fmt::format("{}: wrote {} bytes of {}", where(request.vsn, n), written, request.vv.size));
  }
  if (TapeResult r = tape.write_block(eof_bytes); !r.ok()) return failed(r, "writing the EOF");
  if (TapeResult r = tape.write_tape_marks(1, true); !r.ok()) {
    return failed(r, "writing the tape mark");
  }
  return ArchiveDone{request.vsn, n, written, checksum, hdr.time_written, blocks, again};
}

// --- reading ---

Result<FileContents> read_file(TapeDevice& tape, const std::string& vsn_or_empty, uint64_t n,
                               const Sink& sink, const FileLabel* expected, unsigned fields,
                               size_t max_block_size, size_t buffers, const Progress& progress) {
  const std::string vsn = vsn_or_empty.empty() ? tape.name() : vsn_or_empty;
  const std::string at = where(vsn, n);
  if (n == 0) return Status::InvalidArgument(fmt::format("{}: file 0 is the VOL label's", at));
  if (TapeResult r = tape.position_to_file(n); !r.ok()) {
    StateResult st = tape.status();
    if (st.ok() && st.state.eod) {
      return Status::Mismatch(fmt::format("{}: no such file (the last file on the tape is {})", at,
                                          st.state.file_number - 1));
    }
    return with_context(r.status, at);
  }
  auto first = read_label_block(tape);
  if (!first.ok()) return with_context(first.status(), at);
  if (first->kind == BlockKind::kTapeMark) {
    return Status::Mismatch(fmt::format("{}: empty (a tape mark where the HDR should be)", at));
  }
  if (first->kind == BlockKind::kEndOfData) {
    return Status::Mismatch(fmt::format("{}: no such file (end of data)", at));
  }
  if (!first->label || first->label->kind != LabelKind::kHdr) {
    return Status::Mismatch(fmt::format("{}: {}", at, first->why_not("HDR")));
  }
  FileContents out;
  out.hdr = *first->label;
  if (out.hdr.file_number != n) {
    return Status::Mismatch(
        fmt::format("{}: HDR label field file number: expected {:010}, found "
                    "{:010}",
                    at, n, out.hdr.file_number));
  }
  if (expected) {
    if (Status s = check_label(*expected, out.hdr, fields); !s.ok()) {
      return Status::Mismatch(fmt::format("{}: HDR label: {}", at, s.message()));
    }
  }

  Pipe pipe(buffers, max_block_size);
  if (!pipe.ok()) return Status::Internal("read: no memory for the copy buffers");
  Status writer_status;
  uint64_t checksum = 0;
  std::thread writer([&] {
    Hasher hash;
    char* b;
    size_t len;
    while (pipe.get(&b, &len)) {
      hash.update(b, len);
      Status s = sink ? sink(std::span<const char>(b, len)) : Status::Ok();
      pipe.give(b);
      if (!s.ok()) {
        writer_status = s;
        pipe.abort();
        return;
      }
    }
    checksum = hash.digest();
  });
  Joiner joiner(pipe, writer);

  uint64_t left = out.hdr.size;
  while (left > 0) {
    char* b = pipe.take();
    if (!b) break;  // the sink failed
    ReadResult r = tape.read_block(std::span<char>(b, pipe.buffer_size()));
    const uint64_t done = out.hdr.size - left;
    if (!r.ok()) {
      pipe.give(b);
      if (r.err == ENOMEM) {
        return Status::Mismatch(fmt::format("{}: a data block larger than {} bytes, after {} bytes",
                                            at, pipe.buffer_size(), done));
      }
      return with_context(r.status, fmt::format("{}: after {} data bytes", at, done));
    }
    if (r.kind != BlockKind::kData) {
      pipe.give(b);
      return Status::Mismatch(
          fmt::format("{}: field size: expected {:016X}, found {:016X} (a {} "
                      "ends the data)",
                      at, out.hdr.size, done,
                      r.kind == BlockKind::kTapeMark ? "tape mark" : "the end of data"));
    }
    if (r.size > left) {
      bool label = r.size == kLabelSize && FileLabel::decode(std::string_view(b, r.size)).ok();
      pipe.give(b);
      if (label) {
        return Status::Mismatch(
            fmt::format("{}: field size: expected {:016X}, found {:016X} (a label ends the data)",
                        at, out.hdr.size, done));
      }
      return Status::Mismatch(
          fmt::format("{}: field size: expected {:016X}, found more (a block "
                      "of {} bytes after {})",
                      at, out.hdr.size, r.size, done));
    }
    pipe.put(b, r.size);
    left -= r.size;
    if (progress) progress(out.hdr.size - left);
  }
  pipe.finish();
  joiner.join();
  if (!writer_status.ok()) return with_context(writer_status, at);
  out.bytes = out.hdr.size;
  out.checksum = checksum;

  auto last = read_label_block(tape);
  if (!last.ok()) return with_context(last.status(), fmt::format("{}: EOF label", at));
  if (last->kind != BlockKind::kData) {
    return Status::Mismatch(
        fmt::format("{}: EOF label: missing (a {} after the data)", at,
                    last->kind == BlockKind::kTapeMark ? "tape mark" : "end of data"));
  }
  if (!last->label || last->label->kind != LabelKind::kEof) {
    // More data where the EOF should be: the HDR's size is smaller than what was written.
    return Status::Mismatch(fmt::format("{}: {}", at, last->why_not("EOF")));
  }
  out.eof = *last->label;
  if (Status s = check_eof(out.hdr, out.eof); !s.ok()) {
    return Status::Mismatch(fmt::format("{}: EOF label: {}", at, s.message()));
  }
  auto mark = read_label_block(tape);
  if (!mark.ok()) return with_context(mark.status(), fmt::format("{}: after the EOF label", at));
  if (mark->kind != BlockKind::kTapeMark) {
    return Status::Mismatch(fmt::format("{}: no tape mark after the EOF label", at));
  }
  return out;
}

// --- stage ---

Result<StageDone> stage(TapeDevice& tape, const StageRequest& request, const std::string& cache_dir,
                        const std::string& final_path, const Progress& progress, CopySide* side) {
  CopySide ignored;
  CopySide& blame = side ? *side : ignored;
  blame = CopySide::kNone;
  const uint64_t n = request.file_number;
  const std::string at = where(request.vsn, n);
  if (n == 0) return Status::InvalidArgument("stage: file number 0 is the VOL label's");
  blame = CopySide::kSource;
  VVM_RETURN_IF_ERROR(check_volume(tape, request.vsn));

  const FileLabel expected = hdr_label(request.vv, n);

  std::string name = final_path.substr(final_path.find_last_of('/') + 1);
  std::string temp = fmt::format("{}/.stage.{}.XXXXXX", cache_dir, name);
  Fd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (fd.get() < 0) {
    blame = CopySide::kDestination;
    return write_error(errno, temp);
  }
  struct Remove {
    std::string path;
    bool keep = false;
    ~Remove() {
      if (!keep) ::unlink(path.c_str());
    }
  } remove{temp};
  std::atomic<bool> cache_failed{false};  // set by the writer thread

  auto contents = read_file(
      tape, request.vsn, n,
      [&](std::span<const char> data) {
        Status s = write_full(fd.get(), data.data(), data.size());
        if (s.ok()) return s;
        cache_failed = true;
        return with_context(s, temp);
      },
      &expected, kAllFields & ~kFieldTimeWritten, request.max_block_size, request.buffers,
      progress);
  if (!contents.ok()) {
    if (cache_failed) blame = CopySide::kDestination;
    return contents.status();
  }
  if (contents->checksum != request.checksum) {
    return Status::Mismatch(fmt::format("{}: field checksum: expected {}, found {}", at,
                                        hex16(request.checksum), hex16(contents->checksum)));
  }
  // From here on only the cache can fail.
  blame = CopySide::kDestination;
  if (::fsync(fd.get()) != 0) return write_error(errno, temp + ": fsync");
  if (::close(fd.release()) != 0) return write_error(errno, temp + ": close");
  if (::rename(temp.c_str(), final_path.c_str()) != 0) {
    return Status::FromErrno(errno, fmt::format("rename {} to {}", temp, final_path));
  }
  remove.keep = true;
  // The rename is durable once the folder is.
  std::string dir = final_path.find('/') == std::string::npos
                        ? "."
                        : final_path.substr(0, std::max<size_t>(final_path.find_last_of('/'), 1));
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() < 0 || ::fsync(dfd.get()) != 0) return Status::FromErrno(errno, dir);
  blame = CopySide::kNone;
  return StageDone{contents->bytes, contents->checksum};
}

// --- tape copy ---

Result<ArchiveDone> tape_copy(TapeDevice& from, TapeDevice& to, const TapeCopyRequest& request,
                              const Progress& progress, CopySide* side) {
  CopySide ignored;
  CopySide& blame = side ? *side : ignored;
  blame = CopySide::kNone;
  const uint64_t n = request.to_file;
  if (request.from_file == 0 || n == 0) {
    return Status::InvalidArgument("tape copy: file number 0 is the VOL label's");
  }
  if (request.from_vsn == request.to_vsn) {
    return Status::InvalidArgument(
        fmt::format("tape copy: {} to itself: the source and the destination must be two tapes",
                    request.from_vsn));
  }
  if (request.block_size == 0 || request.block_size > kMaxWriteBlock) {
    return Status::InvalidArgument(fmt::format("tape copy: block size {}: not between 1 and {}",
                                               request.block_size, kMaxWriteBlock));
  }
  auto labels = written_labels(request.vv, n, request.time_written, "tape copy");
  if (!labels.ok()) return labels.status();
  const FileLabel& hdr = labels->hdr;
  const std::string& hdr_bytes = labels->hdr_bytes;
  const std::string& eof_bytes = labels->eof_bytes;

  blame = CopySide::kSource;
  VVM_RETURN_IF_ERROR(check_volume(from, request.from_vsn));
  blame = CopySide::kDestination;
  bool again = false;
  VVM_RETURN_IF_ERROR(find_append_point(to, request.to_vsn, n, hdr, &again));

  // The destination's side, run by read_file's worker thread: the HDR before the first data,
  // then the data cut into block_size blocks (a block read whole goes straight through).
  const std::string to_at = where(request.to_vsn, n);
  bool started = false;  // something was written to the destination
  uint64_t written = 0, blocks = 0;
  TapeResult write_failure;
  std::string write_what;
  std::vector<char> partial;
  partial.reserve(request.block_size);
  auto write = [&](std::span<const char> block, const char* what) -> Status {
    started = true;
    TapeResult r = to.write_block(block);
    if (!r.ok()) {
      write_failure = r;
      write_what = what;
      return Status::IoError("the destination failed");  // replaced by the caller
    }
    return Status::Ok();
  };
  auto write_data = [&](std::span<const char> block) -> Status {
    VVM_RETURN_IF_ERROR(write(block, "writing a data block"));
    written += block.size();
    ++blocks;
    return Status::Ok();
  };
  auto sink = [&](std::span<const char> data) -> Status {
    if (!started) VVM_RETURN_IF_ERROR(write(hdr_bytes, "writing the HDR"));
    while (!data.empty()) {
      if (partial.empty() && data.size() >= request.block_size) {
        VVM_RETURN_IF_ERROR(write_data(data.first(request.block_size)));
        data = data.subspan(request.block_size);
        continue;
      }
      const size_t take = std::min(request.block_size - partial.size(), data.size());
      partial.insert(partial.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(take));
      data = data.subspan(take);
      if (partial.size() == request.block_size) {
        VVM_RETURN_IF_ERROR(write_data(partial));
        partial.clear();
      }
    }
    return Status::Ok();
  };
  // A destination write failed: end of medium is NoSpace, the partial file cut off; anything
  // else is the drive's, its partial file left for the next write to go over.
  auto write_failed = [&]() -> Status {
    blame = CopySide::kDestination;
    if (write_failure.err == ENOSPC) {
      std::string cleanup = abandon(to, n);
      return Status::NoSpace(fmt::format(
          "VSN {} is full: file {} (VV {}{}, {} bytes) did not fit: {} after {} data bytes "
          "failed: {}{}",
          request.to_vsn, n, hdr.vv_class, hdr.vv_serial, hdr.size, write_what, written,
          write_failure.status.message(), cleanup));
    }
    return with_context(write_failure.status, fmt::format("{}: {}", to_at, write_what));
  };
  // The source failed: the destination keeps no part of the file.
  auto read_failed = [&](const Status& why) -> Status {
    blame = CopySide::kSource;
    if (!started) return why;
    const std::string cleanup = abandon(to, n);
    return Status(why.code(), fmt::format("{} (its partial copy on {} cut off{})", why.message(),
                                          to_at, cleanup));
  };

  const FileLabel expected = hdr_label(request.vv, request.from_file);
  auto contents =
      read_file(from, request.from_vsn, request.from_file, sink, &expected,
                kAllFields & ~kFieldTimeWritten, request.max_block_size, request.buffers, progress);
  if (!write_failure.ok()) return write_failed();
  if (!contents.ok()) return read_failed(contents.status());
  if (contents->checksum != request.checksum) {
    return read_failed(Status::Mismatch(fmt::format(
        "{}: field checksum: expected {}, found {}", where(request.from_vsn, request.from_file),
        hex16(request.checksum), hex16(contents->checksum))));
  }
  if (!started && !sink({}).ok()) return write_failed();  // a VV of size 0: its HDR
  if (!partial.empty()) {
    if (!write_data(partial).ok()) return write_failed();
    partial.clear();
  }
  if (written != request.vv.size) {
    blame = CopySide::kNone;
    return Status::Internal(
        fmt::format("{}: wrote {} bytes of {}", to_at, written, request.vv.size));
  }
  if (!write(eof_bytes, "writing the EOF").ok()) return write_failed();
  if (TapeResult r = to.write_tape_marks(1, true); !r.ok()) {
    write_failure = r;
    write_what = "writing the tape mark";
    return write_failed();
  }
  blame = CopySide::kNone;
  return ArchiveDone{request.to_vsn,   n,      written, contents->checksum,
                     hdr.time_written, blocks, again};
}

Result<StageDone> verify(TapeDevice& tape, const StageRequest& request, const Progress& progress) {
  const uint64_t n = request.file_number;
  if (n == 0) return Status::InvalidArgument("verify: file number 0 is the VOL label's");
  VVM_RETURN_IF_ERROR(check_volume(tape, request.vsn));
  const FileLabel expected = hdr_label(request.vv, n);
  auto contents = read_file(
      tape, request.vsn, n, [](std::span<const char>) { return Status::Ok(); }, &expected,
      kAllFields & ~kFieldTimeWritten, request.max_block_size, request.buffers, progress);
  if (!contents.ok()) return contents.status();
  if (contents->checksum != request.checksum) {
    return Status::Mismatch(fmt::format("{}: field checksum: expected {}, found {}",
                                        where(request.vsn, n), hex16(request.checksum),
                                        hex16(contents->checksum)));
  }
  return StageDone{contents->bytes, contents->checksum};
}

}  // namespace vvm::tape
