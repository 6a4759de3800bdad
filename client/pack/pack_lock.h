// pack_lock.h: how processes agree on who uses a pack: open file description locks on the pack's
// own bytes in its backing, and a holds folder that says who the holder is.
//
// A hold has a kind: kRead (any open of an `ro` pack or of pack/NAME@ro), kShared (a writable
// open of a `shared` pack) or kExclusive (a writable open of an `exclusive` pack). Reads go with
// reads and shared writers with shared writers; an exclusive hold goes with nothing else.
//
// The locks are fcntl(F_OFD_SETLK) on the first three bytes of the pack (advisory: they never
// block I/O), so they hold across processes and die with the process:
//   byte 0: the exclusive holder takes a write lock; every other user a read lock;
//   byte 1: readers take a read lock;   byte 2: shared writers take a read lock.
// A reader sets its bytes, then tests byte 2 (and a shared writer byte 1); on a conflict it
// lets go and is refused. Set-then-test never admits both sides; under a race both may be
// refused, which is safe. Locks of one open file description never conflict with each other,
// so a process keeps one PackLock per pack and decides among its own connections itself.
//
// The holds folder has one file per pack and process, "NAME.PID.hold", written atomically, so
// that a refusal and `vvctl pack ls` can name the holder. A record whose lock is gone (its
// process died, or let go before it could remove the file) is stale: holders_now() ignores it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace vvm {

enum class HoldKind { kRead = 0, kShared = 1, kExclusive = 2 };
std::string_view hold_kind_name(HoldKind kind);  // "read", "shared", "exclusive"
std::optional<HoldKind> parse_hold_kind(std::string_view text);

// What a set of holds in one process amounts to, lock-wise.
struct LockSet {
  bool exclusive = false;
  bool read = false;
  bool shared = false;
  bool empty() const { return !exclusive && !read && !shared; }
  bool operator==(const LockSet&) const = default;
};

// The locks one process holds on one pack, through its own open file description.
class PackLock {
 public:
  static Result<PackLock> open(const std::string& backing, uint64_t pack_offset);
  PackLock(PackLock&& other) noexcept;
  PackLock& operator=(PackLock&& other) noexcept;
  PackLock(const PackLock&) = delete;
  PackLock& operator=(const PackLock&) = delete;
  ~PackLock();  // closing the descriptor drops every lock

  // Moves from the current set to `wanted`. Busy when another process holds a conflicting lock;
  // the locks are then as they were before the call.
  Status change(const LockSet& wanted);
  const LockSet& current() const { return current_; }

 private:
  PackLock(int fd, uint64_t offset, std::string backing)
      : fd_(fd), offset_(offset), backing_(std::move(backing)) {}
  Status apply(const LockSet& set);  // sets and clears bytes; no conflict test
  int fd_ = -1;
  uint64_t offset_ = 0;
  std::string backing_;
  LockSet current_;
};

// Which kinds of hold other processes have on a pack now, from the locks alone.
Result<LockSet> probe_locks(const std::string& backing, uint64_t pack_offset);

// One holder of a pack in one process.
struct HoldRecord {
  std::string pack;     // the pack's name
  std::string backing;  // absolute path
  uint64_t offset = 0;  // the pack's offset in it
  HoldKind kind = HoldKind::kRead;
  std::string holder;  // "uid 1000", "host 10.0.0.5"
  std::string since;   // ISO 8601 UTC
  pid_t pid = 0;       // the nbdkit process
  std::string host;    // where that process runs
  int connections = 0;
};

// The holds folder: DIR/NAME.PID.hold, one file per pack and process, holding every holder
// that process has on the pack (one line each).
class HoldsDir {
 public:
  explicit HoldsDir(std::string dir) : dir_(std::move(dir)) {}
  const std::string& path() const { return dir_; }
  // Replaces this process's file for `pack` with `records`, or removes it when empty.
  Status write(const std::string& pack, const std::vector<HoldRecord>& records) const;
  // Every record in the folder, in no particular order, less those of processes on this host
  // that have exited (a pid on another host sharing the folder cannot be checked here).
  // Unreadable or malformed files are skipped (someone else's half-written state).
  std::vector<HoldRecord> read_all() const;

 private:
  std::string dir_;
};

// Who holds the pack at `pack_offset` in `backing` now: its records in `holds`, each kept only
// while some process still has the lock of the record's kind (probe_locks). When the backing
// cannot be opened to look at the locks, the records are all there is to go on.
std::vector<HoldRecord> holders_now(const HoldsDir& holds, const std::string& backing,
                                    uint64_t pack_offset);

// "exclusive by uid 0 since 2026-11-23T08:00:00Z (nbdkit pid 42 on host1)"
std::string describe_hold(const HoldRecord& r);

// The current time as ISO 8601 UTC, for HoldRecord::since.
std::string utc_now();

}  // namespace vvm
