// cache_manager.cc: vvmd's cache manager; see cache_manager.h.
#include "cache/cache_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <vector>

#include <fmt/core.h>

#include "common/log.h"

namespace vvm::vvmd {

namespace {

// "2026-11-23 12:05:04 UTC"; "never" for 0.
std::string format_time(uint64_t unix_seconds) {
  if (unix_seconds == 0) return "never";
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

double percent_of(uint64_t used, uint64_t capacity) {
  return capacity == 0 ? 0.0 : static_cast<double>(used) * 100.0 / static_cast<double>(capacity);
}

int count_copies(const Vv& r) {
  return static_cast<int>(std::count_if(r.copies.begin(), r.copies.end(),
                                        [](const auto& c) { return !c.vsn.empty(); }));
}

// A VV that the cache holds, as one check sees it.
struct Held {
  uint64_t slot = 0;
  Vv record;
  uint64_t bytes = 0;
};

// What keeps space that the manager may not free, for the warning when it cannot get below the
// low watermark.
struct Holders {
  size_t hot = 0, finished = 0, open = 0, staging = 0;
  uint64_t hot_bytes = 0, finished_bytes = 0, open_bytes = 0, staging_bytes = 0;
};

}  // namespace

CacheManager::Options CacheManager::options_from(const Config& config) {
  Options o;
  o.cache_dir = config.cache_dir;
  o.size = config.cache_size;
  o.high_watermark = config.high_watermark;
  o.low_watermark = config.low_watermark;
  return o;
}

uint64_t CacheManager::allocated(const std::string& name) const {
  struct stat st {};
  if (::lstat(catalog_->cache_path(name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

Result<CacheManager::Use> CacheManager::use() const {
  Use u;
  if (options_.size) {
    // Every regular file counts, a VV's or not (a partly staged file, one left by a crash): they
    // all take the space that `size` allows.
    DIR* dir = ::opendir(options_.cache_dir.c_str());
    if (!dir) return Status::FromErrno(errno, "cache folder " + options_.cache_dir);
    const int fd = ::dirfd(dir);
    errno = 0;
    while (struct dirent* e = ::readdir(dir)) {
      struct stat st {};
      if (::fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
        u.used += static_cast<uint64_t>(st.st_blocks) * 512;
      }
      errno = 0;
    }
    const int err = errno;
    ::closedir(dir);
    if (err != 0) return Status::FromErrno(err, "reading cache folder " + options_.cache_dir);
    u.capacity = *options_.size;
    u.sized = true;
  } else {
    struct statvfs vfs {};
    if (::statvfs(options_.cache_dir.c_str(), &vfs) != 0) {
      return Status::FromErrno(errno, "statvfs of cache folder " + options_.cache_dir);
    }
    // As df counts: the blocks reserved for root are not the cache's to fill.
    const uint64_t frsize = vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize;
    u.used = (static_cast<uint64_t>(vfs.f_blocks) - vfs.f_bfree) * frsize;
    u.capacity = u.used + static_cast<uint64_t>(vfs.f_bavail) * frsize;
  }
  u.percent = percent_of(u.used, u.capacity);
  return u;
}

void CacheManager::evict_record(uint64_t slot, Vv r, uint64_t bytes, std::string why,
                                std::function<void(Status)> then) {
  r.cache = CacheState::kEvicted;
  db::Transaction txn;
  txn.update(kVvTable, slot, vv_values(r));
  unlinking_ += bytes;
  commits_.commit(txn, [this, r = std::move(r), bytes, why = std::move(why),
                        then = std::move(then)](auto committed) {
    unlinking_ -= std::min(unlinking_, bytes);
    if (!committed.ok()) {
      return then(Status(committed.status().code(),
                         fmt::format("evict VV {}: {}", r.name, committed.status().message())));
    }
    if (options_.after_commit) options_.after_commit(r.name);
    // The file goes only while the record still says it has none. A stage asked for meanwhile
    // finds the whole file still there and marks the VV cached again, without a mover
    // (Scheduler::start_stage): then the file stays, as its record now says.
    Vv now;
    if (auto found = catalog_->lookup(r.name); found.ok()) now = std::move(found->second);
    if (now.name == r.name && now.cache == CacheState::kCached) {
      log::info("VV {} was staged back before its eviction was durable: its cache file stays",
                r.name);
      return then(Status::Ok());
    }
    // After the commit: a crash from here on leaves a file no cached record claims.
    const std::string path = catalog_->cache_path(r.name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      Status s = Status::FromErrno(errno, path);
      log::warning("evicted VV {}, but its cache file stays: {}", r.name, s.message());
      return then(Status(s.code(), fmt::format("VV {} is evicted, but its cache file stays: {}",
                                               r.name, s.message())));
    }
    if (Status s = catalog_->sync_cache_dir(); !s.ok()) {
      log::warning("evicted VV {}: {}", r.name, s.message());
    }
    if (options_.metrics) options_.metrics->evicted(bytes);
    log::info("evicted VV {} ({} bytes, {} on tape, last access {}) {}", r.name, bytes,
              count_copies(r) == 1 ? "1 copy" : fmt::format("{} copies", count_copies(r)),
              format_time(r.accessed), why);
    then(Status::Ok());
  });
}

Result<CacheManager::Pass> CacheManager::check() {
  Pass pass;
  auto before = use();
  if (!before.ok()) return before.status();
  pass.before = pass.after = *before;
  if (before->percent <= options_.high_watermark) {
    warned_stuck_ = false;  // the trouble, if there was one, has cleared
    return pass;
  }

  // A scan of the whole VV table: no index holds the archived, cached VVs in access order, and
  // a scan costs little next to the tape stages that follow an eviction.
  std::vector<Held> cached;
  Status bad;
  VVM_RETURN_IF_ERROR(db_->scan(kVvTable, [&](uint64_t slot, const db::Values& v) {
    auto r = vv_from_values(v);
    if (!r.ok()) {
      if (bad.ok()) bad = r.status();
      return;
    }
    if (r->cache != CacheState::kEvicted) cached.push_back(Held{slot, std::move(*r), 0});
  }));
  VVM_RETURN_IF_ERROR(bad);
  // The files are looked at after the scan, which holds the database's lock.
  std::vector<Held> candidates;
  Holders holders;
  for (Held& h : cached) {
    const Vv& r = h.record;
    h.bytes = allocated(r.name);
    if (r.cache == CacheState::kStaging) {
      ++holders.staging;
      holders.staging_bytes += h.bytes;
    } else if (r.state == VvState::kHot) {
      ++holders.hot;
      holders.hot_bytes += h.bytes;
    } else if (r.state != VvState::kArchived) {
      ++holders.finished;
      holders.finished_bytes += h.bytes;
    } else if (opens_ && opens_->is_open(r.name)) {
      ++holders.open;
      holders.open_bytes += h.bytes;
    } else if (r.cache == CacheState::kCached) {
      candidates.push_back(std::move(h));
    }
  }
  std::sort(candidates.begin(), candidates.end(), [](const Held& a, const Held& b) {
    return a.record.accessed != b.record.accessed ? a.record.accessed < b.record.accessed
                                                  : a.record.name < b.record.name;
  });

  // What the cache will hold once each goes: measuring again after every file would cost a scan
  // of the folder each time.
  uint64_t used = before->used;
  size_t next = 0;
  Status failed;
  while (next < candidates.size() && percent_of(used, before->capacity) >= options_.low_watermark) {
    Held& h = candidates[next++];
    const std::string name = h.record.name;
    // Counted as gone once applied. A failure, at once or once durable, is logged; one that
    // comes before evict_record returns (a refusal, or any without a loop) is this pass's too.
    // One VV that cannot go does not keep the others in.
    auto outcome = std::make_shared<Status>();
    evict_record(h.slot, std::move(h.record), h.bytes, "to make room", [outcome](Status s) {
      if (!s.ok()) log::warning("{}", s.message());
      *outcome = std::move(s);
    });
    if (!outcome->ok()) {
      if (failed.ok()) failed = *outcome;
      continue;
    }
    pass.evicted.push_back(name);
    pass.freed += h.bytes;
    used -= std::min(used, h.bytes);
  }

  auto after = use();
  if (!after.ok()) return after.status();
  pass.after = *after;
  // Files whose evictions are not durable yet are still there, but are as good as gone.
  pass.after.used -= std::min(pass.after.used, unlinking_);
  pass.after.percent = percent_of(pass.after.used, pass.after.capacity);
  if (!pass.evicted.empty()) {
    log::info(
        "cache: from {:.1f}% to {:.1f}% of {} bytes: evicted {} VV(s), {} bytes (high "
        "watermark {}%, low {}%)",
        pass.before.percent, pass.after.percent, pass.after.capacity, pass.evicted.size(),
        pass.freed, options_.high_watermark, options_.low_watermark);
  }
  pass.stuck = next == candidates.size() && pass.after.percent >= options_.low_watermark;
  if (pass.stuck && !warned_stuck_) {
    warned_stuck_ = true;
    pass.warned = true;
    log::warning(
        "cache at {:.1f}% ({} of {} bytes) stays above its low watermark ({}%): nothing left may "
        "be evicted; it holds {} hot VV(s) ({} bytes), {} finished VV(s) not yet archived ({} "
        "bytes), {} open VV(s) ({} bytes), {} staging ({} bytes), and {} bytes in other files",
        pass.after.percent, pass.after.used, pass.after.capacity, options_.low_watermark,
        holders.hot, holders.hot_bytes, holders.finished, holders.finished_bytes, holders.open,
        holders.open_bytes, holders.staging, holders.staging_bytes,
        pass.after.used -
            std::min(pass.after.used, holders.hot_bytes + holders.finished_bytes +
                                          holders.open_bytes + holders.staging_bytes));
  } else if (!pass.stuck) {
    warned_stuck_ = false;
  }
  if (!failed.ok() && pass.evicted.empty()) return failed;
  return pass;
}

void CacheManager::evict_async(const rpc::Peer& peer, const std::string& name, Done done) {
  auto found = catalog_->lookup(name);
  if (!found.ok()) return done(found.status());
  auto& [slot, r] = *found;
  if (Status s = catalog_->may_change(peer, r, "evict"); !s.ok()) return done(s);
  if (r.state == VvState::kHot) {
    return done(Status::InvalidArgument(
        fmt::format("VV {} is hot: only an archived VV can be evicted (the cache holds a hot "
                    "VV's only copy; finish it, and evict it once it is archived)",
                    r.name)));
  }
  if (r.state != VvState::kArchived) {
    return done(Status::InvalidArgument(
        fmt::format("VV {} is {} but not yet archived ({} on tape so far): only an archived VV "
                    "can be evicted",
                    r.name, vv_state_name(r.state),
                    count_copies(r) == 1 ? "1 copy" : fmt::format("{} copies", count_copies(r)))));
  }
  if (r.cache == CacheState::kEvicted) {
    rpc::VvEvictReply reply;
    reply.vv = r;
    reply.already = true;
    return done(std::move(reply));
  }
  if (r.cache != CacheState::kCached) {
    return done(Status::Busy(fmt::format("VV {} is {}: it can be evicted once it is cached again",
                                         r.name, cache_state_name(r.cache))));
  }
  if (opens_) {
    if (auto who = opens_->holders(r.name); !who.empty()) {
      std::string list;
      for (const auto& w : who) list += (list.empty() ? "" : ", ") + w;
      return done(
          Status::Busy(fmt::format("VV {} is open ({} open{}: {}): it can be evicted once it "
                                   "is closed",
                                   r.name, who.size(), who.size() == 1 ? "" : "s", list)));
    }
  }
  const uint64_t bytes = allocated(r.name);
  Vv evicted = r;
  evicted.cache = CacheState::kEvicted;
  evict_record(slot, std::move(r), bytes, "for " + peer.to_string(),
               [evicted = std::move(evicted), bytes, done = std::move(done)](Status s) mutable {
                 if (!s.ok()) return done(s);
                 rpc::VvEvictReply reply;
                 reply.vv = std::move(evicted);
                 reply.freed = bytes;
                 done(std::move(reply));
               });
}

Result<rpc::VvEvictReply> CacheManager::evict(const rpc::Peer& peer, const std::string& name) {
  return commits_.answer_now<rpc::VvEvictReply>(
      "evict()", [&](auto done) { evict_async(peer, name, std::move(done)); });
}

rpc::Served<rpc::VvEvictRequest> CacheManager::serve(rpc::Server& server) {
  if (auto u = use(); u.ok()) {
    log::info("cache {}: {:.1f}% used ({} of {} bytes, {}); evicts above {}%, down below {}%",
              options_.cache_dir, u->percent, u->used, u->capacity,
              u->sized ? "[cache] size" : "its filesystem", options_.high_watermark,
              options_.low_watermark);
  } else {
    log::warning("cache: {}", u.status().message());
  }
  auto served =
      server.handle<rpc::VvEvictRequest>([this](const rpc::VvEvictRequest& r, const rpc::Peer& peer,
                                                rpc::Responder<rpc::VvEvictRequest> answer) {
        evict_async(peer, r.name,
                    [answer](Result<rpc::VvEvictReply> reply) { answer.reply(std::move(reply)); });
      });
  server.every(options_.period, [this] {
    auto pass = check();
    if (!pass.ok()) {
      // Every few seconds: the same failure once, not on every tick.
      if (pass.status().message() != last_error_) {
        last_error_ = pass.status().message();
        log::warning("cache check: {}", last_error_);
      }
      return;
    }
    last_error_.clear();
  });
  return served;
}

}  // namespace vvm::vvmd
