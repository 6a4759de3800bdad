// db/file.cc: File on a POSIX file descriptor.
#include "db/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/core.h>

namespace vvm::db {

namespace {

class PosixFile : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override {
    if (base_) ::munmap(base_, kReserve);
    if (direct_fd_ >= 0) ::close(direct_fd_);
    ::close(fd_);
  }
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  Status read_at(uint64_t offset, char* buf, size_t n) override {
    for (size_t done = 0; done < n;) {
      ssize_t r = ::pread(fd_, buf + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::FromErrno(errno, fmt::format("{}: read at {}", path_, offset));
      if (r == 0) {
        return Status::IoError(
            fmt::format("{}: ends at {}, inside a record", path_, offset + done));
      }
      done += static_cast<size_t>(r);
    }
    return Status::Ok();
  }

  Status write_at(uint64_t offset, std::string_view data) override {
    for (size_t done = 0; done < data.size();) {
      ssize_t r =
          ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::FromErrno(errno, fmt::format("{}: write at {}", path_, offset));
      done += static_cast<size_t>(r);
    }
    return Status::Ok();
  }

  Status sync() override {
    if (::fdatasync(fd_) == -1)
      return Status::FromErrno(errno, fmt::format("{}: fdatasync", path_));
    return Status::Ok();
  }

  Result<uint64_t> size() override {
    struct stat st {};
    if (::fstat(fd_, &st) == -1) return Status::FromErrno(errno, fmt::format("stat {}", path_));
    return static_cast<uint64_t>(st.st_size);
  }

  Status truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) == -1) {
      return Status::FromErrno(errno, fmt::format("{}: truncate", path_));
    }
    return Status::Ok();
  }

  const std::string& path() const override { return path_; }

  Status write_durably(uint64_t offset, std::string_view data) override {
    const auto address = reinterpret_cast<uintptr_t>(data.data());
    if (offset % kDirectBlock != 0 || data.size() % kDirectBlock != 0 ||
        address % kDirectBlock != 0 || !direct_ready()) {
      return File::write_durably(offset, data);
    }
    for (size_t done = 0; done < data.size();) {
      struct iovec v = {const_cast<char*>(data.data() + done), data.size() - done};
      ssize_t r = ::pwritev2(direct_fd_, &v, 1, static_cast<off_t>(offset + done), RWF_DSYNC);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        return Status::FromErrno(errno, fmt::format("{}: durable write at {}", path_, offset));
      }
      done += static_cast<size_t>(r);
    }
    return Status::Ok();
  }

  // One reservation of address space, never moved, into which the file is mapped a chunk at a
  // time as it grows (MAP_FIXED over the reservation), so that addresses handed out stay valid.
  const char* mapping(uint64_t size) override {
    if (size > kReserve) return nullptr;
    if (!base_) {
      void* p =
          ::mmap(nullptr, kReserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) return nullptr;
      base_ = static_cast<char*>(p);
    }
    if (size > mapped_) {
      const uint64_t want = (size + kChunk - 1) / kChunk * kChunk;
      void* p = ::mmap(base_ + mapped_, want - mapped_, PROT_READ, MAP_SHARED | MAP_FIXED, fd_,
                       static_cast<off_t>(mapped_));
      if (p == MAP_FAILED) return nullptr;
      mapped_ = want;
    }
    return base_;
  }

 private:
  static constexpr uint64_t kReserve = uint64_t{64} << 30;  // 256M records of 256 bytes
  static constexpr uint64_t kChunk = uint64_t{64} << 20;
  // A second descriptor with O_DIRECT, opened at the first durable write; some filesystems
  // (tmpfs) refuse it, and then durable writes stay write + fdatasync.
  bool direct_ready() {
    if (direct_fd_ == -1) {
      direct_fd_ = ::open(path_.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
      if (direct_fd_ < 0) direct_fd_ = -2;
    }
    return direct_fd_ >= 0;
  }

  static constexpr size_t kDirectBlock = 4096;
  int fd_;
  int direct_fd_ = -1;  // -1: not tried yet; -2: O_DIRECT refused
  std::string path_;
  char* base_ = nullptr;
  uint64_t mapped_ = 0;
};

}  // namespace

namespace {

class MemoryFile : public File {
 public:
  MemoryFile(std::string path, std::string bytes)
      : path_(std::move(path)), bytes_(std::move(bytes)) {}
  Status read_at(uint64_t offset, char* buf, size_t n) override {
    if (offset + n > bytes_.size()) {
      return Status::IoError(fmt::format("{}: ends at {}, inside a record", path_, bytes_.size()));
    }
    bytes_.copy(buf, n, offset);
    return Status::Ok();
  }
  Status write_at(uint64_t offset, std::string_view data) override {
    if (offset + data.size() > bytes_.size()) bytes_.resize(offset + data.size(), '\0');
    bytes_.replace(offset, data.size(), data);
    return Status::Ok();
  }
  Status sync() override { return Status::Ok(); }
  Result<uint64_t> size() override { return uint64_t{bytes_.size()}; }
  Status truncate(uint64_t size) override {
    bytes_.resize(size, '\0');
    return Status::Ok();
  }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  std::string bytes_;
};

}  // namespace

Result<std::unique_ptr<File>> open_memory_copy(const std::string& path) {
  auto file = open_posix_file(path, false);
  if (!file.ok()) return file.status();
  auto size = (*file)->size();
  if (!size.ok()) return size.status();
  std::string bytes(*size, '\0');
  if (*size > 0) VVM_RETURN_IF_ERROR((*file)->read_at(0, bytes.data(), bytes.size()));
  return std::unique_ptr<File>(std::make_unique<MemoryFile>(path, std::move(bytes)));
}

Result<std::unique_ptr<File>> open_posix_file(const std::string& path, bool create) {
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd == -1) {
    int err = errno;
    Code code = err == ENOENT   ? Code::kNotFound
                : err == EEXIST ? Code::kAlreadyExists
                                : Code::kIoError;
    return Status(code, fmt::format("{}: {}", path, std::strerror(err)));
  }
  std::unique_ptr<File> file = std::make_unique<PosixFile>(fd, path);
  if (create) VVM_RETURN_IF_ERROR(sync_folder_of(path));
  return file;
}

Status sync_folder_of(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string folder = parent.empty() ? std::string(".") : parent.string();
  int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1) return Status::FromErrno(errno, fmt::format("open folder {}", folder));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc == -1) return Status::FromErrno(err, fmt::format("fsync folder {}", folder));
  return Status::Ok();
}

Status rename_durably(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) == -1) {
    return Status::FromErrno(errno, fmt::format("rename {} to {}", from, to));
  }
  return sync_folder_of(to);
}

}  // namespace vvm::db
