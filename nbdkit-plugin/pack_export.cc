// pack_export.cc: reads and writes on a pack's slice of its backing, with full-length loops.
#include "pack_export.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include <fmt/core.h>

#include "size.h"

namespace vvm::plugin {

IoStatus IoStatus::FromErrno(int err, std::string_view what) {
  return IoStatus(err, Status::FromErrno(err, what));
}

Result<uint64_t> backing_size(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) == -1) return Status::FromErrno(errno, fmt::format("stat {}", path));
  if (S_ISREG(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    uint64_t size = 0;
    if (::ioctl(fd, BLKGETSIZE64, &size) == -1) {
      return Status::FromErrno(errno, fmt::format("{}: BLKGETSIZE64", path));
    }
    return size;
  }
  return Status::InvalidArgument(fmt::format("{} is not a regular file or a block device", path));
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

IoStatus PackExport::write(const void* buf, uint32_t count, uint64_t offset, bool fua) {
  if (!writable_) {
    return IoStatus(EROFS, Status::PermissionDenied(info_.name + " is read-only"));
  }
  if (IoStatus range = check_range("write", count, offset, ENOSPC); !range.ok()) return range;
  const auto* p = static_cast<const char*>(buf);
  auto pos = static_cast<off_t>(info_.pack.offset + offset);
  while (count > 0) {
    const ssize_t n = ::pwrite(fd_, p, count, pos);
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
  return fua ? flush() : IoStatus();
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

}  // namespace vvm::plugin
