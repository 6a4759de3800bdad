// fd_budget.h: keeps nbdkit off its file descriptor limit.
//
// nbdkit 1.32 at the limit spins: accept() fails with EMFILE, nbdkit logs it and tries again at
// once, forever (measured: 5.8 million "accept: Too many open files" lines, 250 MB, in 100 s),
// while the clients that connected meanwhile wait for a handshake that never comes. Every NBD
// connection takes descriptors (its socket; a pack's backing file; a VV's control connection to
// vvmd and its cache file), so enough clients bring any limit within reach. The plugin therefore
// refuses a new connection (.open) while fewer than a reserve of descriptors are left: nbdkit
// closes it at once, its socket is freed, the client gets a message naming the limit, and accept
// always finds a descriptor for the next one.
//
// Counting the open descriptors reads /proc/self/fd, which takes time in proportion to their
// number: it is done only when the count last seen, plus what the connections admitted since can
// have opened, comes near the line. Free of nbdkit calls.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <mutex>

#include "common/status.h"

namespace vvm::plugin {

class FdBudget {
 public:
  // The most descriptors one connection opens: its socket, nbdkit's pipe pair in parallel mode,
  // a VV's control connection and cache file.
  static constexpr size_t kPerConnection = 5;

  // `limit`: the descriptors nbdkit may have (0: RLIMIT_NOFILE's soft limit, read at each
  // admit); `reserve`: descriptors kept free (0: a sixteenth of the limit, at least 32).
  explicit FdBudget(size_t limit = 0, size_t reserve = 0);

  // Ok when a new connection may open; else Unavailable, naming the count and the limit.
  Status admit();

  size_t limit() const { return limit_; }
  size_t reserve() const { return reserve_; }

 private:
  static size_t default_reserve(size_t limit);

  std::mutex mu_;
  const bool fixed_limit_;
  const bool fixed_reserve_;
  size_t limit_;
  size_t reserve_;
  size_t seen_ = 0;   // descriptors open at the last count
  size_t since_ = 0;  // connections admitted since that count
  bool counted_ = false;
};

// The descriptors this process has open (entries of /proc/self/fd, less the one reading it).
size_t open_fds();

// Raises RLIMIT_NOFILE's soft limit to the hard one, as the daemons do (nbdkit does not): a shell
// gives 1024, a few hundred VVs' worth. Returns the soft limit now.
size_t raise_fd_limit_quietly();

}  // namespace vvm::plugin
