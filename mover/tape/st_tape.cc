// st_tape.cc: TapeDevice on /dev/nstN through st's read/write and MTIOCTOP/MTIOCGET; see
// st_tape.h.
#include "tape/st_tape.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mtio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#ifndef MTWEOFI
#define MTWEOFI 35  // linux/mtio.h: a tape mark in immediate mode (no flush); glibc lacks it
#endif

namespace vvm::tape {

namespace {

constexpr uint64_t kMaxSpace = 0x7FFFFF;  // the largest count one SPACE command is given

std::string plural(uint64_t n, std::string_view what) {
  return fmt::format("{} {}{}", n, what, n == 1 ? "" : "s");
}

}  // namespace

Result<std::unique_ptr<StTape>> StTape::open(const std::string& device) {
  bool write_protected = false;
  int fd = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && (errno == EROFS || errno == EACCES)) {
    fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC);
    write_protected = true;
  }
  if (fd < 0) return Status::FromErrno(errno, device);
  struct mtget get = {};
  if (::ioctl(fd, MTIOCGET, &get) != 0) {
    int err = errno;
    ::close(fd);
    if (err == ENOTTY || err == EINVAL) {
      return Status::InvalidArgument(
          fmt::format("{}: not a tape drive (MTIOCGET: {})", device, std::strerror(err)));
    }
    return Status::FromErrno(err, device + ": MTIOCGET");
  }
  struct mtop op = {MTSETBLK, 0};  // variable block mode: one write() is one block
  if (::ioctl(fd, MTIOCTOP, &op) != 0) {
    int err = errno;
    ::close(fd);
    return Status::FromErrno(err, device + ": MTSETBLK 0 (variable block mode)");
  }
  return std::unique_ptr<StTape>(new StTape(device, fd, write_protected));
}

StTape::~StTape() {
  if (fd_ >= 0) ::close(fd_);
}

TapeResult StTape::fail(int err, std::string_view op, std::string_view detail) const {
  Status s = Status::FromErrno(err, fmt::format("{}: {}", device_, op));
  if (detail.empty()) return {std::move(s), err};
  return {Status(s.code(), fmt::format("{} ({})", s.message(), detail)), err};
}

TapeResult StTape::mt(short op, uint64_t count, std::string_view what) {
  zero_read_ = false;
  do {
    uint64_t n = std::min(count, kMaxSpace);
    struct mtop m = {op, static_cast<int>(n)};
    if (::ioctl(fd_, MTIOCTOP, &m) != 0) return fail(errno, what);
    count -= n;
  } while (count > 0);
  return {};
}

TapeResult StTape::write_block(std::span<const char> data) {
  zero_read_ = false;
  for (;;) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      return fail(err, plural(data.size(), "byte") + " write",
                  err == ENOSPC ? "end of medium" : std::string_view{});
    }
    if (static_cast<size_t>(n) != data.size()) {
      return fail(EIO, "write", fmt::format("{} of {} bytes written", n, data.size()));
    }
    return {};
  }
}

ReadResult StTape::read_block(std::span<char> buffer) {
  for (;;) {
    ssize_t n = ::read(fd_, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      zero_read_ = false;
      TapeResult r = fail(
          err, "read", err == ENOMEM ? "the block is larger than the buffer" : std::string_view{});
      return {std::move(r.status), r.err};
    }
    if (n > 0) {
      zero_read_ = false;
      return {Status::Ok(), 0, BlockKind::kData, static_cast<size_t>(n)};
    }
    // 0 bytes: a tape mark, or end of data when st says so or this is the second in a row.
    struct mtget get = {};
    bool eod = zero_read_ || (::ioctl(fd_, MTIOCGET, &get) == 0 && GMT_EOD(get.mt_gstat));
    zero_read_ = true;
    return {Status::Ok(), 0, eod ? BlockKind::kEndOfData : BlockKind::kTapeMark, 0};
  }
}

TapeResult StTape::write_tape_marks(uint32_t count, bool sync) {
  return mt(sync ? MTWEOF : MTWEOFI, count,
            fmt::format("{} ({})", plural(count, "tape mark"), sync ? "MTWEOF" : "MTWEOFI"));
}

TapeResult StTape::rewind() { return mt(MTREW, 1, "rewind"); }

TapeResult StTape::space_forward(uint32_t count) {
  if (count == 0) return {};
  return mt(MTFSF, count, "space forward " + plural(count, "tape mark"));
}

TapeResult StTape::space_back(uint32_t count) {
  if (count == 0) return {};
  return mt(MTBSF, count, "space back " + plural(count, "tape mark"));
}

TapeResult StTape::space_forward_blocks(uint32_t count) {
  if (count == 0) return {};
  return mt(MTFSR, count, "space forward " + plural(count, "block"));
}

TapeResult StTape::space_back_blocks(uint32_t count) {
  if (count == 0) return {};
  return mt(MTBSR, count, "space back " + plural(count, "block"));
}

TapeResult StTape::position_to_file(uint64_t n) {
  const std::string what = fmt::format("position to file {}", n);
  if (n == 0) return mt(MTREW, 1, what);
  // Relative spacing from where st knows it is; from the beginning when it does not.
  struct mtget get = {};
  int64_t here = ::ioctl(fd_, MTIOCGET, &get) == 0 ? get.mt_fileno : -1;
  if (here < 0) {
    if (TapeResult r = mt(MTREW, 1, what); !r.ok()) return r;
    here = 0;
  }
  const auto cur = static_cast<uint64_t>(here);
  if (cur < n) return mt(MTFSF, n - cur, what);
  // Back over the marks to just before the one that ends file n - 1, then past it.
  if (TapeResult r = mt(MTBSF, cur - n + 1, what); !r.ok()) return r;
  return mt(MTFSF, 1, what);
}

TapeResult StTape::position_to_end_of_data() { return mt(MTEOM, 1, "position to end of data"); }

StateResult StTape::status() {
  StateResult out;
  struct mtget get = {};
  if (::ioctl(fd_, MTIOCGET, &get) != 0) {
    TapeResult r = fail(errno, "MTIOCGET");
    return {std::move(r.status), r.err};
  }
  TapeState& s = out.state;
  s.loaded = GMT_ONLINE(get.mt_gstat) != 0;
  s.bot = GMT_BOT(get.mt_gstat) != 0;
  s.eod = GMT_EOD(get.mt_gstat) != 0;
  s.at_tape_mark = GMT_EOF(get.mt_gstat) != 0;
  s.early_warning = GMT_EOT(get.mt_gstat) != 0;
  s.write_protected = GMT_WR_PROT(get.mt_gstat) != 0 || write_protected_;
  s.file_number = get.mt_fileno;
  s.block_in_file = get.mt_blkno;
  struct mtpos pos = {};
  s.logical_block = ::ioctl(fd_, MTIOCPOS, &pos) == 0 ? static_cast<int64_t>(pos.mt_blkno) : -1;
  return out;
}

TapeResult StTape::unload() { return mt(MTOFFL, 1, "unload"); }

}  // namespace vvm::tape
