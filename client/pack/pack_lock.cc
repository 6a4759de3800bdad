// pack_lock.cc: OFD locks on a pack's first bytes, and the holds folder; see pack_lock.h.
#include "pack/pack_lock.h"

#include "common/config.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include <fmt/chrono.h>
#include <fmt/core.h>

namespace vvm {

namespace {

enum Byte : uint64_t { kUseByte = 0, kReadByte = 1, kSharedByte = 2 };

struct flock lock_of(short type, uint64_t pos) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(pos);
  fl.l_len = 1;
  fl.l_pid = 0;  // required by F_OFD_*
  return fl;
}

// The lock type another open file description holds on `pos` that would conflict with a write
// lock: F_UNLCK when there is none.
Result<short> other_lock(int fd, uint64_t pos, const std::string& backing) {
  struct flock fl = lock_of(F_WRLCK, pos);
  if (::fcntl(fd, F_OFD_GETLK, &fl) == -1) {
    return Status::FromErrno(errno, fmt::format("{}: F_OFD_GETLK", backing));
  }
  return fl.l_type;
}

}  // namespace

std::string_view hold_kind_name(HoldKind kind) {
  switch (kind) {
    case HoldKind::kRead: return "read";
    case HoldKind::kShared: return "shared";
    case HoldKind::kExclusive: return "exclusive";
  }
  return "?";
}

std::optional<HoldKind> parse_hold_kind(std::string_view text) {
  for (HoldKind k : {HoldKind::kRead, HoldKind::kShared, HoldKind::kExclusive}) {
    if (text == hold_kind_name(k)) return k;
  }
  return std::nullopt;
}

Result<PackLock> PackLock::open(const std::string& backing, uint64_t pack_offset) {
  // A write lock needs a descriptor open for writing; a read-only backing can still take the
  // read locks.
  int fd = ::open(backing.c_str(), O_RDWR | O_CLOEXEC);
  if (fd == -1 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
    fd = ::open(backing.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd == -1) return Status::FromErrno(errno, fmt::format("{}: open for locking", backing));
  return PackLock(fd, pack_offset, backing);
}

PackLock::PackLock(PackLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      offset_(other.offset_),
      backing_(std::move(other.backing_)),
      current_(other.current_) {}

PackLock& PackLock::operator=(PackLock&& other) noexcept {
  if (this != &other) {
    if (fd_ != -1) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    offset_ = other.offset_;
    backing_ = std::move(other.backing_);
    current_ = other.current_;
  }
  return *this;
}

PackLock::~PackLock() {
  if (fd_ != -1) ::close(fd_);
}

Status PackLock::apply(const LockSet& set) {
  const short use = set.exclusive ? F_WRLCK : (set.read || set.shared) ? F_RDLCK : F_UNLCK;
  const std::pair<uint64_t, short> bytes[] = {
      {kUseByte, use},
      {kReadByte, set.read ? F_RDLCK : F_UNLCK},
      {kSharedByte, set.shared ? F_RDLCK : F_UNLCK},
  };
  for (auto [byte, type] : bytes) {
    struct flock fl = lock_of(type, offset_ + byte);
    if (::fcntl(fd_, F_OFD_SETLK, &fl) == -1) {
      if (errno == EAGAIN || errno == EACCES) {
        return Status::Busy(
            fmt::format("another process holds a conflicting lock on {} at {}", backing_, offset_));
      }
      return Status::FromErrno(errno, fmt::format("{}: F_OFD_SETLK", backing_));
    }
  }
  return Status::Ok();
}

Status PackLock::change(const LockSet& wanted) {
  if (wanted == current_) return Status::Ok();
  const LockSet before = current_;
  Status s = apply(wanted);
  // Set, then test what a lock cannot say by itself: readers and shared writers exclude each
  // other, but both take read locks.
  if (s.ok() && wanted.read && !before.read) {
    auto other = other_lock(fd_, offset_ + kSharedByte, backing_);
    if (!other.ok())
      s = other.status();
    else if (*other != F_UNLCK)
      s = Status::Busy("another process has the pack open shared");
  }
  if (s.ok() && wanted.shared && !before.shared) {
    auto other = other_lock(fd_, offset_ + kReadByte, backing_);
    if (!other.ok())
      s = other.status();
    else if (*other != F_UNLCK)
      s = Status::Busy("another process has the pack open read-only");
  }
  if (!s.ok()) {
    (void)apply(before);  // back to what was held; dropping locks cannot fail for a conflict
    return s;
  }
  current_ = wanted;
  return Status::Ok();
}

Result<LockSet> probe_locks(const std::string& backing, uint64_t pack_offset) {
  int fd = ::open(backing.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd == -1) return Status::FromErrno(errno, fmt::format("{}: open", backing));
  LockSet set;
  Status status;
  auto use = other_lock(fd, pack_offset + kUseByte, backing);
  auto read = other_lock(fd, pack_offset + kReadByte, backing);
  auto shared = other_lock(fd, pack_offset + kSharedByte, backing);
  ::close(fd);
  for (auto* r : {&use, &read, &shared}) {
    if (!r->ok()) return r->status();
  }
  set.exclusive = *use == F_WRLCK;
  set.read = *read != F_UNLCK;
  set.shared = *shared != F_UNLCK;
  return set;
}

// --- holds folder ---

namespace {

std::string record_file(const std::string& dir, const std::string& pack, pid_t pid) {
  return fmt::format("{}/{}.{}.hold", dir, pack, pid);
}

// One record a line: tab-separated key=value fields (paths and names hold no tabs or newlines:
// the packtab parser splits on blanks).
std::string format_record(const HoldRecord& r) {
  return fmt::format(
      "pack={}\tbacking={}\toffset={}\tkind={}\tholder={}\tsince={}\tpid={}\thost={}\t"
      "connections={}\n",
      r.pack, r.backing, r.offset, hold_kind_name(r.kind), r.holder, r.since, r.pid, r.host,
      r.connections);
}

std::optional<HoldRecord> parse_record(const std::string& line) {
  HoldRecord r;
  int fields = 0;
  std::istringstream in(line);
  std::string field;
  try {
    while (std::getline(in, field, '\t')) {
      auto eq = field.find('=');
      if (eq == std::string::npos) return std::nullopt;
      std::string key = field.substr(0, eq), value = field.substr(eq + 1);
      ++fields;
      if (key == "pack")
        r.pack = value;
      else if (key == "backing")
        r.backing = value;
      else if (key == "offset")
        r.offset = std::stoull(value);
      else if (key == "kind") {
        auto k = parse_hold_kind(value);
        if (!k) return std::nullopt;
        r.kind = *k;
      } else if (key == "holder")
        r.holder = value;
      else if (key == "since")
        r.since = value;
      else if (key == "pid")
        r.pid = static_cast<pid_t>(std::stol(value));
      else if (key == "host")
        r.host = value;
      else if (key == "connections")
        r.connections = std::stoi(value);
      else
        --fields;  // a field from a newer version
    }
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (fields < 9 || r.pid <= 0) return std::nullopt;
  return r;
}

}  // namespace

Status HoldsDir::write(const std::string& pack, const std::vector<HoldRecord>& records) const {
  const std::string file = record_file(dir_, pack, ::getpid());
  if (records.empty()) {
    if (::unlink(file.c_str()) == -1 && errno != ENOENT) {
      return Status::FromErrno(errno, fmt::format("remove {}", file));
    }
    return Status::Ok();
  }
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return Status::IoError(fmt::format("create {}: {}", dir_, ec.message()));
  std::string text;
  for (const auto& r : records) text += format_record(r);
  // Written beside, then renamed: a reader sees the old file or the new one, never half of one.
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.close();
    if (!out) return Status::IoError(fmt::format("write {}", tmp));
  }
  if (::rename(tmp.c_str(), file.c_str()) == -1) {
    return Status::FromErrno(errno, fmt::format("rename {} to {}", tmp, file));
  }
  return Status::Ok();
}

std::vector<HoldRecord> HoldsDir::read_all() const {
  std::vector<HoldRecord> out;
  const std::string host = local_host_name();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    if (entry.path().extension() != ".hold") continue;
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line)) {
      auto r = parse_record(line);
      if (!r) continue;
      // A dead process's record is stale: its locks went with it.
      if (r->host == host && ::kill(r->pid, 0) == -1 && errno == ESRCH) continue;
      out.push_back(std::move(*r));
    }
  }
  return out;
}

std::vector<HoldRecord> holders_now(const HoldsDir& holds, const std::string& backing,
                                    uint64_t pack_offset) {
  std::vector<HoldRecord> out;
  for (auto& r : holds.read_all()) {
    if (r.backing == backing && r.offset == pack_offset) out.push_back(std::move(r));
  }
  if (out.empty()) return out;
  Result<LockSet> locks = probe_locks(backing, pack_offset);
  if (!locks.ok()) return out;
  std::erase_if(out, [&](const HoldRecord& r) {
    switch (r.kind) {
      case HoldKind::kRead: return !locks->read;
      case HoldKind::kShared: return !locks->shared;
      case HoldKind::kExclusive: return !locks->exclusive;
    }
    return true;
  });
  return out;
}

std::string describe_hold(const HoldRecord& r) {
  return fmt::format("{} by {} since {} (nbdkit pid {} on {})", hold_kind_name(r.kind), r.holder,
                     r.since, r.pid, r.host);
}

std::string utc_now() {
  auto now = std::chrono::system_clock::now();
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                     fmt::gmtime(std::chrono::system_clock::to_time_t(now)));
}

}  // namespace vvm
