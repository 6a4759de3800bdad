// replace_file.cc: a small file replaced by a temporary file, fsync, rename and a folder fsync.
#include "common/replace_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/core.h>

namespace vvm {

namespace {

std::string parent_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Status sync_parent_dir(const std::string& path) {
  const std::string dir = parent_of(path);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, fmt::format("{}: cannot open it to sync it", dir));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Status::FromErrno(err, fmt::format("{}: fsync of the folder", dir));
  return Status::Ok();
}

Status replace_file(const std::string& path, std::string_view contents) {
  // Same folder, so the rename stays within one filesystem; mkstemp's unique name lets two
  // writers of one file each finish (the last rename wins) without writing into each other's.
  std::string tmp = path + ".XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    return Status::FromErrno(errno,
                             fmt::format("{}: cannot create a temporary file beside it", path));
  }
  auto fail = [&](int err, std::string_view step) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::FromErrno(err, fmt::format("{}: {} {}", path, step, tmp));
  };
  // mkstemp makes the file 0600: the new file gets the old one's mode, or 0644 (not the umask,
  // which a thread cannot read without setting it for the whole process).
  struct stat old;
  const mode_t mode = ::stat(path.c_str(), &old) == 0 ? (old.st_mode & 07777) : 0644;
  if (::fchmod(fd, mode) != 0) return fail(errno, "cannot set the mode of");
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno, "cannot write");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail(errno, "cannot fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno(err, fmt::format("{}: cannot close {}", path, tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno(err, fmt::format("{}: cannot rename {} over it", path, tmp));
  }
  return sync_parent_dir(path);
}

}  // namespace vvm
