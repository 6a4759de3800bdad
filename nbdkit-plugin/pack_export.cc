// pack_export.cc: the data path on a pack's slice of its backing: full-length read and write
// loops, FUA writes with RWF_DSYNC, and trim, zero, extents and cache with the system call that is
// right for a file or for a block device.
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
#include <utility>

#include <fmt/core.h>

#include "size.h"

namespace vvm::plugin {

IoStatus IoStatus::FromErrno(int err, std::string_view what) {
  return IoStatus(err, Status::FromErrno(err, what));
}

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

IoStatus PackExport::read(void* buf, uint32_t count, uint64_t offset) const {
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

IoStatus PackExport::write(const void* buf, uint32_t count, uint64_t offset, bool fua) {
  if (IoStatus w = check_writable("write"); !w.ok()) return w;
  if (IoStatus range = check_range("write", count, offset, ENOSPC); !range.ok()) return range;
  const auto* p = static_cast<const char*>(buf);
  auto pos = static_cast<off_t>(info_.pack.offset + offset);
  // FUA: RWF_DSYNC makes this one write durable, without flushing the rest of the file as
  // fdatasync would.
  const int flags = fua ? RWF_DSYNC : 0;
  while (count > 0) {
    iovec iov{const_cast<char*>(p), count};
    const ssize_t n = ::pwritev2(fd_, &iov, 1, pos, flags);
    if (n == -1) {
      if (errno == EINTR) continue;
      return IoStatus::FromErrno(errno, fmt::format("{}: write {} bytes at {} of {}", info_.name,
                                                    count, pos, info_.pack.backing));
    }
    if (n == 0) {  // not expected from a file or a disk; do not spin on it
      return IoStatus(EIO, Status::IoError(fmt::format("{}: write at {} of {} wrote nothing",
                                                       info_.name, pos, info_.pack.backing)));
    }
    p += n;
    count -= static_cast<uint32_t>(n);
    pos += n;
  }
  return IoStatus();
}

IoStatus PackExport::flush() {
  // One fd per connection, but fdatasync flushes the file, so every connection sees the flush
  // (what multi-conn promises).
  if (::fdatasync(fd_) == -1) {
    return IoStatus::FromErrno(errno,
                               fmt::format("{}: fdatasync {}", info_.name, info_.pack.backing));
  }
  return IoStatus();
}

IoStatus PackExport::trim(uint32_t count, uint64_t offset, bool fua) {
  if (IoStatus w = check_writable("trim"); !w.ok()) return w;
  if (IoStatus range = check_range("trim", count, offset, EINVAL); !range.ok()) return range;
  uint64_t pos = info_.pack.offset + offset;
  if (block_device_) {
    // BLKDISCARD takes whole sectors: discard the sectors wholly inside the range, no more.
    const uint64_t sector = minimum_block_;
    uint64_t start = (pos + sector - 1) / sector * sector;
    uint64_t end = (pos + count) / sector * sector;
    if (start < end) {
      uint64_t range[2] = {start, end - start};
      if (::ioctl(fd_, BLKDISCARD, range) == -1 && errno != EOPNOTSUPP) {
        return errno_status(errno, "discard", count, pos);
      }
    }
  } else if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(pos),
                         count) == -1 &&
             errno != EOPNOTSUPP) {
    return errno_status(errno, "punch a hole of", count, pos);
  }
  return fua ? flush() : IoStatus();
}

IoStatus PackExport::zero(uint32_t count, uint64_t offset, bool may_trim, bool fast, bool fua) {
  if (IoStatus w = check_writable("zero"); !w.ok()) return w;
  if (IoStatus range = check_range("zero", count, offset, ENOSPC); !range.ok()) return range;
  const uint64_t pos = info_.pack.offset + offset;
  IoStatus done =
      block_device_ ? zero_block_device(count, pos, fast) : zero_file(count, pos, may_trim);
  if (!done.ok() || !fua) return done;
  return flush();
}

IoStatus PackExport::zero_file(uint32_t count, uint64_t pos, bool may_trim) {
  const auto off = static_cast<off_t>(pos);
  // ZERO_RANGE converts the blocks to unwritten extents: zeroes, still allocated, no data written.
  if (::fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, count) == 0) {
    return IoStatus();
  }
  if (errno != EOPNOTSUPP && errno != ENODEV) return errno_status(errno, "zero", count, pos);
  // tmpfs and others: a hole reads as zeroes; without may_trim, allocate the range again.
  if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, count) == 0) {
    if (may_trim || ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, off, count) == 0) return IoStatus();
    if (errno != EOPNOTSUPP) return errno_status(errno, "allocate", count, pos);
    return IoStatus();  // zeroes, though left as a hole: still correct
  }
  if (errno != EOPNOTSUPP) return errno_status(errno, "punch a hole of", count, pos);
  // Nothing quick is left: nbdkit writes the zeroes itself, or refuses a fast zero.
  return IoStatus(EOPNOTSUPP, Status::Unavailable(fmt::format("{}: {} cannot zero without writing",
                                                              info_.name, info_.pack.backing)));
}

IoStatus PackExport::zero_block_device(uint32_t count, uint64_t pos, bool fast) {
  // BLKZEROOUT may write every zero on a device without WRITE ZEROES: not fast, by NBD's rule.
  const uint64_t sector = minimum_block_;
  if (fast || pos % sector != 0 || count % sector != 0) {
    return IoStatus(EOPNOTSUPP,
                    Status::Unavailable(fmt::format("{}: no fast zero on block device {}",
                                                    info_.name, info_.pack.backing)));
  }
  uint64_t range[2] = {pos, count};
  if (::ioctl(fd_, BLKZEROOUT, range) == -1) return errno_status(errno, "zero", count, pos);
  return IoStatus();
}

IoStatus PackExport::extents(uint32_t count, uint64_t offset, bool req_one,
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

IoStatus PackExport::cache(uint32_t count, uint64_t offset) const {
  if (IoStatus range = check_range("cache", count, offset, EINVAL); !range.ok()) return range;
  const uint64_t pos = info_.pack.offset + offset;
  if (int err = ::posix_fadvise(fd_, static_cast<off_t>(pos), count, POSIX_FADV_WILLNEED)) {
    return errno_status(err, "read ahead", count, pos);
  }
  return IoStatus();
}

}  // namespace vvm::plugin
