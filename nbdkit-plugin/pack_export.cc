// pack_export.cc: the data path on a pack's slice of its backing: full-length read and write
// loops, FUA writes with RWF_DSYNC, and trim, zero, extents and cache with the system call that is
// right for a file or for a block device. The order of the zeroing methods follows nbdkit's file
// plugin (plugins/file/file.c), plus a fast zero that is honest on block devices.
#include "pack_export.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <utility>

#include <fmt/core.h>

#include "common/size.h"

namespace vvm::plugin {

Result<std::unique_ptr<PackExport>> PackExport::open(const ExportInfo& info,
                                                     bool server_read_only) {
  const bool writable = !info.read_only && !server_read_only;
  const int fd = ::open(info.pack.backing.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd == -1) {
    return Status::FromErrno(errno, fmt::format("{}: open {}", info.name, info.pack.backing));
  }
  // Owns fd from here on, so every early return closes it.
  std::unique_ptr<PackExport> pack(new PackExport(info, fd, writable));
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
    pack->block_device_ = true;
    int sector = 0;
    if (::ioctl(fd, BLKSSZGET, &sector) == 0 && sector > 0) {
      pack->minimum_block_ = static_cast<uint32_t>(sector);
    } else {
      pack->minimum_block_ = 512;
    }
  }

  // The backing was checked when the table was loaded, but a file can shrink since.
  Result<uint64_t> size = backing_size(fd, info.pack.backing);
  if (!size.ok()) return Status(size.status().code(), info.name + ": " + size.status().message());
  const uint64_t end = info.pack.offset + info.pack.size;
  if (*size < end) {
    return Status::IoError(fmt::format("{}: backing {} is {} bytes long, but the pack ends at {}",
                                       info.name, info.pack.backing, *size, end));
  }
  return pack;
}

PackExport::~PackExport() {
  if (fd_ != -1) ::close(fd_);
}

IoStatus PackExport::check_range(std::string_view op, uint32_t count, uint64_t offset,
                                 int err) const {
  if (offset <= size() && count <= size() - offset) return IoStatus();
  return IoStatus(err, Status::InvalidArgument(fmt::format(
                           "{}: {} of {} bytes at offset {} is beyond the end of the pack ({})",
                           info_.name, op, count, offset, format_size(size()))));
}

IoStatus PackExport::do_read(void* buf, uint32_t count, uint64_t offset) const {
  if (IoStatus range = check_range("read", count, offset, EINVAL); !range.ok()) return range;
  auto* p = static_cast<char*>(buf);
  auto pos = static_cast<off_t>(info_.pack.offset + offset);
  while (count > 0) {
    const ssize_t n = ::pread(fd_, p, count, pos);
    if (n == -1) {
      if (errno == EINTR) continue;
      return IoStatus::FromErrno(errno, fmt::format("{}: read {} bytes at {} of {}", info_.name,
                                                    count, pos, info_.pack.backing));
    }
    if (n == 0) {
      return IoStatus(EIO, Status::IoError(fmt::format("{}: {} ends at {}, inside the pack",
                                                       info_.name, info_.pack.backing, pos)));
    }
    p += n;
    count -= static_cast<uint32_t>(n);
    pos += n;
  }
  return IoStatus();
}

IoStatus PackExport::check_writable(std::string_view op) const {
  if (writable_) return IoStatus();
  return IoStatus(EROFS, Status::PermissionDenied(
                             fmt::format("{}: {}: the export is read-only", info_.name, op)));
}

IoStatus PackExport::errno_status(int err, std::string_view op, uint32_t count,
                                  uint64_t pos) const {
  return IoStatus::FromErrno(err, fmt::format("{}: {} {} bytes at {} of {}", info_.name, op, count,
                                              pos, info_.pack.backing));
}

namespace {

// The errors with which fallocate and the block ioctls say "not on this backing", as opposed to
// "this request failed": ENODEV from fallocate on a block device before Linux 4.9, ENOTTY from an
// ioctl the driver lacks.
bool unsupported(int err) {
  return err == EOPNOTSUPP || err == ENOTSUP || err == ENODEV || err == ENOSYS || err == ENOTTY;
}

bool hint(const std::atomic<bool>& b) { return b.load(std::memory_order_relaxed); }
void clear(std::atomic<bool>& b) { b.store(false, std::memory_order_relaxed); }

}  // namespace

IoStatus PackExport::do_write(const void* buf, uint32_t count, uint64_t offset, bool fua) {
  if (IoStatus w = check_writable("write"); !w.ok()) return w;
  if (IoStatus range = check_range("write", count, offset, ENOSPC); !range.ok()) return range;
  const auto* p = static_cast<const char*>(buf);
  auto pos = static_cast<off_t>(info_.pack.offset + offset);
  // FUA: RWF_DSYNC makes this one write durable, without flushing the rest of the file as
  // fdatasync would. A kernel without it gets a plain write and fdatasync.
  int flags = fua && hint(can_dsync_) ? RWF_DSYNC : 0;
  bool flush_after = fua && flags == 0;
  while (count > 0) {
    iovec iov{const_cast<char*>(p), count};
    const ssize_t n = ::pwritev2(fd_, &iov, 1, pos, flags);
    if (n == -1) {
      if (errno == EINTR) continue;
      if (flags != 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) {
        clear(can_dsync_);
        flags = 0;
        flush_after = true;
        continue;
      }
      return errno_status(errno, "write", count, static_cast<uint64_t>(pos));
    }
    if (n == 0) {  // not expected from a file or a disk; do not spin on it
      return IoStatus(EIO, Status::IoError(fmt::format("{}: write at {} of {} wrote nothing",
                                                       info_.name, pos, info_.pack.backing)));
    }
    p += n;
    count -= static_cast<uint32_t>(n);
    pos += n;
  }
  return flush_after ? do_flush() : IoStatus();
}

IoStatus PackExport::do_flush() {
  // One fd per connection, but fdatasync flushes the file, so every connection sees the flush
  // (what multi-conn promises).
  if (::fdatasync(fd_) == -1) {
    return IoStatus::FromErrno(errno,
                               fmt::format("{}: fdatasync {}", info_.name, info_.pack.backing));
  }
  return IoStatus();
}

IoStatus PackExport::do_trim(uint32_t count, uint64_t offset, bool fua) {
  if (IoStatus w = check_writable("trim"); !w.ok()) return w;
  if (IoStatus range = check_range("trim", count, offset, EINVAL); !range.ok()) return range;
  const uint64_t pos = info_.pack.offset + offset;
  if (block_device_) {
    // BLKDISCARD takes whole sectors: discard the sectors wholly inside the range, no more.
    const uint64_t sector = minimum_block_;
    const uint64_t start = (pos + sector - 1) / sector * sector;
    const uint64_t end = (pos + count) / sector * sector;
    if (start < end && hint(can_discard_)) {
      uint64_t range[2] = {start, end - start};
      if (::ioctl(fd_, BLKDISCARD, range) == -1) {
        if (!unsupported(errno)) return errno_status(errno, "discard", count, pos);
        clear(can_discard_);
      }
    }
  } else if (count > 0 && hint(can_punch_)) {
    // Only the range itself: fallocate zeroes the partial blocks at either end in place.
    if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(pos),
                    count) == -1) {
      if (!unsupported(errno)) return errno_status(errno, "punch a hole of", count, pos);
      clear(can_punch_);
    }
  }
  return fua ? do_flush() : IoStatus();
}

IoStatus PackExport::do_zero(uint32_t count, uint64_t offset, bool may_trim, bool fast, bool fua) {
  if (IoStatus w = check_writable("zero"); !w.ok()) return w;
  if (IoStatus range = check_range("zero", count, offset, ENOSPC); !range.ok()) return range;
  if (count == 0) return IoStatus();  // fallocate would refuse a length of 0
  const uint64_t pos = info_.pack.offset + offset;
  IoStatus done = block_device_ ? zero_block_device(count, pos, may_trim, fast)
                                : zero_file(count, pos, may_trim);
  if (!done.ok() || !fua) return done;
  return do_flush();
}

IoStatus PackExport::cannot_zero(std::string_view why) const {
  return IoStatus(EOPNOTSUPP,
                  Status::Unavailable(fmt::format("{}: cannot zero on {} without "
                                                  "writing the zeroes: {}",
                                                  info_.name, info_.pack.backing, why)));
}

// Every method here is quick (metadata only), so `fast` changes nothing: when none works the
// answer is EOPNOTSUPP, and only nbdkit would write zeroes.
IoStatus PackExport::zero_file(uint32_t count, uint64_t pos, bool may_trim) {
  const auto off = static_cast<off_t>(pos);
  constexpr int kPunch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  // A hole gives the space back and shows as a hole in extents: best when the client allows it.
  if (may_trim && hint(can_punch_)) {
    if (::fallocate(fd_, kPunch, off, count) == 0) return IoStatus();
    if (!unsupported(errno)) return errno_status(errno, "punch a hole of", count, pos);
    clear(can_punch_);
  }
  // The blocks stay allocated, marked unwritten: zeroes without writing them (ext4, XFS).
  if (hint(can_zero_range_)) {
    if (::fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, count) == 0) {
      return IoStatus();
    }
    if (!unsupported(errno)) return errno_status(errno, "zero", count, pos);
    clear(can_zero_range_);
  }
  // tmpfs and others without ZERO_RANGE: a hole reads as zeroes; then, since the client asked to
  // keep the range allocated, allocate it again, if the file system can. A failure there leaves a
  // hole, which still reads as zeroes: the zero is done either way.
  if (hint(can_punch_)) {
    if (::fallocate(fd_, kPunch, off, count) == 0) {
      if (!may_trim && hint(can_allocate_) &&
          ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, off, count) == -1 && unsupported(errno)) {
        clear(can_allocate_);
      }
      return IoStatus();
    }
    if (!unsupported(errno)) return errno_status(errno, "punch a hole of", count, pos);
    clear(can_punch_);
  }
  return cannot_zero("fallocate is not supported");
}

IoStatus PackExport::zero_block_device(uint32_t count, uint64_t pos, bool may_trim, bool fast) {
  const uint64_t sector = minimum_block_;
  if (pos % sector != 0 || count % sector != 0) {
    return cannot_zero(
        fmt::format("{} bytes at {} are not whole {}-byte sectors", count, pos, sector));
  }
  // fallocate(PUNCH_HOLE) on a block device is a WRITE ZEROES that may unmap and that the kernel
  // never turns into writing zeroes (BLKDEV_ZERO_NOFALLBACK): EOPNOTSUPP when the device cannot
  // zero by itself. The one really fast zero a block device has.
  if (may_trim && hint(can_punch_)) {
    if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(pos),
                    count) == 0) {
      return IoStatus();
    }
    if (!unsupported(errno)) return errno_status(errno, "zero", count, pos);
    clear(can_punch_);
  }
  // BLKZEROOUT keeps the sectors allocated, but falls back to writing every zero when the device
  // cannot zero by itself: never for a fast zero. Without may_trim there is no call that is both
  // allocating and sure not to write, so a fast zero is refused.
  if (fast) {
    return cannot_zero(may_trim ? "the device has no WRITE ZEROES"
                                : "the client wants the range kept allocated");
  }
  if (hint(can_zeroout_)) {
    uint64_t range[2] = {pos, count};
    if (::ioctl(fd_, BLKZEROOUT, range) == 0) return IoStatus();
    if (!unsupported(errno)) return errno_status(errno, "zero", count, pos);
    clear(can_zeroout_);
  }
  return cannot_zero("BLKZEROOUT is not supported");
}

IoStatus PackExport::do_extents(uint32_t count, uint64_t offset, bool req_one,
                                const std::function<bool(const Extent&)>& add) const {
  if (IoStatus range = check_range("extents", count, offset, EINVAL); !range.ok()) return range;
  const uint64_t base = info_.pack.offset;
  const uint64_t pack_end = base + size();
  uint64_t pos = base + offset;
  const uint64_t end = pos + count;
  if (block_device_) {
    add({offset, count, false});
    return IoStatus();
  }
  while (pos < end) {
    off_t data = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
    uint64_t next;
    bool hole;
    if (data == -1 && errno != ENXIO) return errno_status(errno, "find data in", count, pos);
    if (data == -1 || static_cast<uint64_t>(data) > pos) {
      // ENXIO: no data from pos to the end of the file, which is past the pack's end.
      next = data == -1 ? pack_end : std::min<uint64_t>(static_cast<uint64_t>(data), pack_end);
      hole = true;
    } else {
      off_t h = ::lseek(fd_, static_cast<off_t>(pos), SEEK_HOLE);
      if (h == -1) return errno_status(errno, "find a hole in", count, pos);
      next = std::min<uint64_t>(static_cast<uint64_t>(h), pack_end);
      hole = false;
    }
    if (!add({pos - base, next - pos, hole}) || req_one) break;
    pos = next;
  }
  return IoStatus();
}

IoStatus PackExport::do_cache(uint32_t count, uint64_t offset) const {
  if (IoStatus range = check_range("cache", count, offset, EINVAL); !range.ok()) return range;
  const uint64_t pos = info_.pack.offset + offset;
  if (int err = ::posix_fadvise(fd_, static_cast<off_t>(pos), count, POSIX_FADV_WILLNEED)) {
    return errno_status(err, "read ahead", count, pos);
  }
  return IoStatus();
}

// --- the path-failure answer and the test fault hook ---

IoStatus PackExport::on_path(IoStatus status) const {
  if (status.err() != EIO || path_failure_ != PathFailure::kNak) return status;
  return IoStatus(ESHUTDOWN,
                  Status::IoError(status.status().message() +
                                  " (path failure: answering NBD_ESHUTDOWN, so that the client "
                                  "goes to another server of the pack)"));
}

namespace {

// The fault hook, for tests only: VVM_TEST_PATH_FAULT=PACK:FILE makes every request on pack PACK
// fail with EIO, as a dead disk would, for as long as FILE exists. Read once, at the first
// request; unset (as in production) it costs one branch a request. Chosen over a device-mapper
// `error` target or a broken loop device because those need root and kernel modules that CI
// machines and containers lack, and because a test can break and mend the path at a chosen moment.
struct FaultHook {
  std::string pack;
  std::string trigger;
};

const FaultHook* fault_hook() {
  static const std::optional<FaultHook> hook = []() -> std::optional<FaultHook> {
    const char* v = std::getenv("VVM_TEST_PATH_FAULT");
    if (v == nullptr) return std::nullopt;
    const std::string_view text(v);
    const size_t colon = text.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    return FaultHook{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
  }();
  return hook ? &*hook : nullptr;
}

}  // namespace

bool PackExport::fault_injected() const {
  const FaultHook* hook = fault_hook();
  if (hook == nullptr || hook->pack != info_.pack.name) return false;
  return ::access(hook->trigger.c_str(), F_OK) == 0;
}

IoStatus PackExport::injected(std::string_view op, uint32_t count, uint64_t offset) const {
  return on_path(IoStatus(
      EIO, Status::IoError(fmt::format("{}: {} {} bytes at {} of {}: Input/output error (injected "
                                       "by VVM_TEST_PATH_FAULT)",
                                       info_.name, op, count, info_.pack.offset + offset,
                                       info_.pack.backing))));
}

IoStatus PackExport::read(void* buf, uint32_t count, uint64_t offset) const {
  if (fault_injected()) return injected("read", count, offset);
  return on_path(do_read(buf, count, offset));
}

IoStatus PackExport::write(const void* buf, uint32_t count, uint64_t offset, bool fua) {
  if (fault_injected()) return injected("write", count, offset);
  return on_path(do_write(buf, count, offset, fua));
}

IoStatus PackExport::flush() {
  if (fault_injected()) return injected("flush", 0, 0);
  return on_path(do_flush());
}

IoStatus PackExport::trim(uint32_t count, uint64_t offset, bool fua) {
  if (fault_injected()) return injected("trim", count, offset);
  return on_path(do_trim(count, offset, fua));
}

IoStatus PackExport::zero(uint32_t count, uint64_t offset, bool may_trim, bool fast, bool fua) {
  if (fault_injected()) return injected("zero", count, offset);
  return on_path(do_zero(count, offset, may_trim, fast, fua));
}

IoStatus PackExport::extents(uint32_t count, uint64_t offset, bool req_one,
                             const std::function<bool(const Extent&)>& add) const {
  if (fault_injected()) return injected("extents", count, offset);
  return on_path(do_extents(count, offset, req_one, add));
}

IoStatus PackExport::cache(uint32_t count, uint64_t offset) const {
  if (fault_injected()) return injected("cache", count, offset);
  return on_path(do_cache(count, offset));
}

}  // namespace vvm::plugin
