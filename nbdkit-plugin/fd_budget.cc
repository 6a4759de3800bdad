// fd_budget.cc: see fd_budget.h.
#include "fd_budget.h"

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>

#include <fmt/core.h>

namespace vvm::plugin {

namespace {

size_t soft_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) {
    return static_cast<size_t>(1) << 20;
  }
  return static_cast<size_t>(limit.rlim_cur);
}

}  // namespace

size_t open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  size_t n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n > 0 ? n - 1 : 0;
}

size_t raise_fd_limit_quietly() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &raised);
  }
  return soft_limit();
}

FdBudget::FdBudget(size_t limit, size_t reserve)
    : fixed_limit_(limit != 0),
      fixed_reserve_(reserve != 0),
      limit_(limit != 0 ? limit : soft_limit()),
      reserve_(reserve != 0 ? reserve : default_reserve(limit_)) {}

size_t FdBudget::default_reserve(size_t limit) { return std::max<size_t>(32, limit / 16); }

Status FdBudget::admit() {
  const std::lock_guard lock(mu_);
  if (!fixed_limit_) {
    // The limit may change under a running nbdkit (prlimit --pid): a system call, no count.
    limit_ = soft_limit();
    if (!fixed_reserve_) reserve_ = default_reserve(limit_);
  }
  const size_t line = limit_ > reserve_ ? limit_ - reserve_ : 0;
  if (!counted_ || seen_ + (since_ + 1) * kPerConnection >= line) {
    seen_ = open_fds();
    since_ = 0;
    counted_ = true;
    if (seen_ >= line) {
      return Status::Unavailable(fmt::format(
          "nbdkit has {} of its {} file descriptors open, and keeps {} free so that it can still "
          "accept and refuse connections: no new connection until some close (raise its limit, "
          "LimitNOFILE= in vvm-nbdkit.service; each connection takes up to {})",
          seen_, limit_, reserve_, kPerConnection));
    }
  }
  ++since_;
  return Status::Ok();
}

}  // namespace vvm::plugin
