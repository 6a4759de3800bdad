// sched/stage.cc: the scheduler's stage half: stage requests grouped by tape, mounts and the
// turn of a tape, the cache state of a staged VV, and what a read's end changes
// (sched/scheduler.h).
#include "sched/scheduler.h"

#include <sys/stat.h>
#include <algorithm>

#include <fmt/core.h>
#include <fmt/format.h>

#include "common/log.h"
#include "sched/policy.h"

namespace vvm::vvmd {

using namespace policy;

std::string Scheduler::StageProgress::describe(const std::string& vv) const {
  if (cached) return fmt::format("VV {} is in the cache", vv);
  if (copying) {
    return fmt::format("job {} is staging VV {} from {} file {} already ({} of {} bytes)", job, vv,
                       vsn, file, bytes_done, bytes_total);
  }
  return fmt::format("VV {} is queued to be staged from {} file {} ({} stage request{} queued)", vv,
                     vsn, file, queued, queued == 1 ? "" : "s");
}

Status Scheduler::set_cache(const std::string& name, CacheState cache, bool touch) {
  Vv vv;
  auto slot = lookup_vv(*db_, "name", db::KeyBuilder().text(name), &vv);
  if (!slot.ok()) return slot.status();
  vv.cache = cache;
  if (touch) vv.accessed = now_unix();
  db::Transaction txn;
  txn.update(kVvTable, *slot, vv_values(vv));
  return commits_.apply(txn, fmt::format("VV {} {}", name, cache_state_name(cache)));
}

bool Scheduler::mount(DriveState& drive, const std::string& vsn, const std::string& what,
                      const std::string& purpose) {
  if (!view_.load(drive, vsn)) return true;  // there already
  if (Status s = record_mount(drive, vsn); !s.ok()) {
    log::error("cannot record VSN {} in drive {}: {}", vsn, drive.name, s.message());
    view_.unload(drive);
    return false;
  }
  log::info("mount {} ({}) in drive {} of mover {} {}", vsn, what, drive.name, drive.mover,
            purpose);
  return true;
}

Status Scheduler::record_mount(const DriveState& drive, const std::string& name) {
  return update_vsn(name, [&](Vsn& vsn) {
    vsn.location = "drive:" + drive.name;
    vsn.last_mount = now_unix();
  });
}

Status Scheduler::queue_stage(const Vv& vv, StageItem item) {
  // The best copy: one whose VSN is in a drive already, else the first that has not failed. A
  // copy found bad is no longer among the VV's copies (mark_bad_copy): it is never read again.
  // A disabled VSN is never mounted, and one set bad is read only when no other copy is left.
  std::optional<size_t> best;
  std::pair<int, int> best_rank{2, 2};  // (on a bad VSN, not in a drive): lower is better
  std::string disabled;
  for (size_t i = 0; i < vv.copies.size(); ++i) {
    if (vv.copies[i].vsn.empty() || item.bad_copies.contains(i)) continue;
    Vsn state;
    if (lookup_vsn(*db_, "name", db::KeyBuilder().text(vv.copies[i].vsn), &state).ok()) {
      if (state.state == VsnState::kDisabled) {
        disabled += fmt::format("{}{}", disabled.empty() ? "" : ", ", state.name);
        continue;
      }
    }
    const std::pair<int, int> rank{state.state == VsnState::kBad ? 1 : 0,
                                   view_.holding(vv.copies[i].vsn) != nullptr ? 0 : 1};
    if (!best || rank < best_rank) {
      best = i;
      best_rank = rank;
    }
  }
  if (!best) {
    std::string bad;
    (void)scan_copy_marks_of_vv(*db_, vv.name, [&](uint64_t, const CopyMark& m) {
      if (m.state == CopyMarkState::kBad) {
        bad += fmt::format("{}{} file {} ({})", bad.empty() ? "" : ", ", m.vsn, m.file, m.why);
      }
      return true;
    });
    return Status::Unavailable(fmt::format(
        "VV {} has no copy left to stage from ({} failed their reads now; marked bad: {}{})",
        vv.name, item.bad_copies.size(), bad.empty() ? "none" : bad,
        disabled.empty() ? ""
                         : fmt::format("; on disabled VSNs, never mounted: {} ('vvctl vsn set "
                                       "VSN read-only --reason TEXT' allows reading)",
                                       disabled)));
  }
  Vsn vsn;
  auto slot = lookup_vsn(*db_, "name", db::KeyBuilder().text(vv.copies[*best].vsn), &vsn);
  if (!slot.ok()) {
    log::error("VV {}: copy {} is on {}, which vvmd cannot find: {}", vv.name, *best + 1,
               vv.copies[*best].vsn, slot.status().message());
    item.bad_copies.insert(*best);
    return queue_stage(vv, std::move(item));
  }
  if (item.copy != *best) item.attempts = 0;
  item.copy = *best;
  item.vv_class = vv.vv_class.empty() ? 0 : vv.vv_class[0];
  item.vsn = vsn.name;
  item.media = vsn.media;
  item.file = vv.copies[*best].file;
  item.bytes = vv.size;
  stages_.push(std::move(item));
  wake();
  return Status::Ok();
}

Result<Scheduler::StageProgress> Scheduler::stage(const std::string& name, bool waiting) {
  Vv vv;
  auto slot = find_vv(*db_, name, &vv);
  if (!slot.ok()) return slot.status();
  if (auto failed = failed_stages_.find(name); failed != failed_stages_.end()) {
    // Fresh news of a stage that failed goes to whoever asks, rather than a new try at once.
    if (steady_now() < failed->second.first) {
      return Status::Unavailable(failed->second.second);
    }
    failed_stages_.erase(failed);
  }
  StageProgress p;
  if (vv.cache == CacheState::kCached) {
    p.cached = true;
    return p;
  }
  for (const auto& [id, f] : in_flight_) {
    if (f.staged && f.staged->how.empty() && f.staged->vv == name) {
      // One job a VV: whoever asks again (a second open, vvctl stage) waits for this one.
      if (joined_.insert(id).second) {
        log::info("stage VV {}: job {} is staging it from {} file {} already; joined", name, id,
                  f.vsn, f.file);
      }
      p.job = id;
      p.copying = true;
      p.vsn = f.vsn;
      p.file = f.file;
      p.bytes_done = f.bytes_done;
      p.bytes_total = f.item.bytes;
      p.queued = stages_.size();
      return p;
    }
  }
  if (!stages_.contains(name)) {
    StageItem item;
    item.vv = name;
    item.waiting = waiting;
    item.queued = item.not_before = steady_now();
    if (vv.cache != CacheState::kStaging) {
      // Marked before the queue takes it: a restart finds it and queues it again.
      VVM_RETURN_IF_ERROR(set_cache(name, CacheState::kStaging, false));
    }
    if (Status s = queue_stage(vv, std::move(item)); !s.ok()) {
      (void)set_cache(name, CacheState::kEvicted, false);
      return s;
    }
    const StageItem* queued = stages_.find(name);
    log::info("stage VV {} ({} bytes) from {} file {}{}", name, vv.size, queued->vsn, queued->file,
              waiting ? ", a client waits" : "");
  } else if (waiting) {
    StageItem raise;
    raise.vv = name;
    raise.waiting = true;
    stages_.push(std::move(raise));  // only raises `waiting`
  }
  const StageItem* queued = stages_.find(name);
  p.vsn = queued->vsn;
  p.file = queued->file;
  p.bytes_total = queued->bytes;
  p.queued = stages_.size();
  return p;
}

bool Scheduler::dispatch_stage(Clock::time_point now) {
  std::set<std::string> writing;  // VSNs an archive write has now
  for (const auto& [id, f] : in_flight_) {
    if (!f.staged) writing.insert(f.vsn);
    if (is_tape_copy(f)) writing.insert(f.item.from_vsn);  // read by a tape copy: not free
  }
  std::vector<std::string> order = stages_.vsns_by_priority(now);
  // Among requests a client waits for, and among the others, the class that uses least of its
  // share of drives for reading goes first; a class at its limit waits for one of its reads to end.
  std::stable_sort(order.begin(), order.end(), [this](const std::string& a, const std::string& b) {
    const bool wa = stages_.waiting(a), wb = stages_.waiting(b);
    if (wa != wb) return wa;
    return drive_share(stages_.class_of(a), true) < drive_share(stages_.class_of(b), true);
  });
  std::erase_if(order, [this](const std::string& vsn) {
    return !may_take_drive(stages_.class_of(vsn), true);
  });
  // Whether a client's request waits for a drive to mount another tape of `media` than `vsn` (a
  // tape in a drive already is read there).
  auto client_waits_elsewhere = [&](const std::string& vsn, const std::string& media) {
    return std::any_of(order.begin(), order.end(), [&](const std::string& v) {
      return v != vsn && stages_.media_of(v) == media && stages_.foreground(v) &&
             view_.holding(v) == nullptr && !writing.contains(v);
    });
  };
  // First a tape that is in a free drive already: no mount, unless it has had its turn while
  // others of its media type wait. Background reads alone (a repack's, a class change's) have
  // no turn while a client's request waits for another tape: they never hold a drive from it.
  for (const std::string& vsn : order) {
    DriveState* d = view_.holding(vsn);
    if (d == nullptr || d->busy || d->unusable_until > now || writing.contains(vsn)) continue;
    const bool others_wait = std::any_of(order.begin(), order.end(), [&](const std::string& v) {
      return v != vsn && stages_.media_of(v) == d->media;
    });
    if (others_wait && d->reads_since_mount >= kMountBudget) continue;
    if (!stages_.foreground(vsn) && client_waits_elsewhere(vsn, d->media)) continue;
    auto item = stages_.pop(vsn, now);
    if (item) return start_stage(std::move(*item), *d, now);
  }
  // Then a mount, for the first tape in line whose requests have gathered.
  for (const std::string& vsn : order) {
    if (writing.contains(vsn)) continue;
    // A tape in a drive is read there (above) or waits for that drive: choosing a drive for it
    // here would hand the drive back to a tape whose turn is over.
    if (view_.holding(vsn) != nullptr) continue;
    auto oldest = stages_.oldest(vsn);
    if (!oldest || now - *oldest < kStageGather) continue;
    DriveState* chosen = nullptr;
    for (DriveState* d : view_.free_drives(stages_.media_of(vsn), now)) {
      // A drive whose tape has stage requests of its own keeps it, unless its turn is over, or
      // they are background work and this tape a client's.
      if (!d->vsn.empty() && stages_.files(d->vsn) > 0 && d->reads_since_mount < kMountBudget &&
          may_take_drive(stages_.class_of(d->vsn), true) &&
          (stages_.foreground(d->vsn) || !stages_.foreground(vsn))) {
        continue;
      }
      chosen = d;
      break;
    }
    if (chosen == nullptr) continue;
    auto item = stages_.pop(vsn, now);
    if (item) return start_stage(std::move(*item), *chosen, now);
  }
  return false;
}

bool Scheduler::start_stage(StageItem item, DriveState& drive, Clock::time_point now) {
  Vv vv;
  auto slot = lookup_vv(*db_, "name", db::KeyBuilder().text(item.vv), &vv);
  if (!slot.ok() || vv.cache != CacheState::kStaging) {
    log::info("VV {} is no longer waiting to be staged ({}): dropped from the stage queue", item.vv,
              slot.ok() ? std::string(cache_state_name(vv.cache)) : slot.status().message());
    return true;
  }
  // A stage that ended while vvmd was away (the mover renames the file into place only once it
  // is whole and checked) left the VV in the cache already.
  struct stat st {};
  if (::stat(options_.cache_path(vv.name).c_str(), &st) == 0 &&
      static_cast<uint64_t>(st.st_size) == vv.size) {
    if (Status s = set_cache(vv.name, CacheState::kCached, true); !s.ok()) {
      log::error("VV {}: {}", vv.name, s.message());
      stages_.push(std::move(item));
      return false;
    }
    log::info("VV {} is in the cache already (staged while vvmd was away)", vv.name);
    return true;
  }
  // A tape disabled since the request was queued is never mounted: another copy is read, or the
  // stage fails saying why.
  if (vsn_disabled(item.vsn)) {
    log::notice("VV {}: {} was disabled after its stage was asked for: not mounted", vv.name,
                item.vsn);
    const std::string name = vv.name;
    if (Status s = queue_stage(vv, std::move(item)); !s.ok()) {
      log::error("cannot stage VV {}: {}; it stays evicted", name, s.message());
      failed_stages_[name] = {steady_now() + kFailedStageMemory,
                              fmt::format("the stage of VV {} failed: {}", name, s.message())};
      (void)set_cache(name, CacheState::kEvicted, false);
    }
    return true;
  }
  if (!mount(drive, item.vsn, item.media,
             fmt::format("to stage {} file(s)", stages_.files(item.vsn) + 1))) {
    stages_.push(std::move(item));
    return false;
  }
  ++drive.reads_since_mount;

  auto [args, f] = read_request(vv, std::move(item), drive);
  log::info("stage VV {} from {} file {} (copy {}) in drive {} (request {})", vv.name, f.vsn,
            f.file, f.item.copy + 1, drive.name, args.request_id);
  send(drive, std::move(f), rpc::Op::kStage, std::move(args), now);
  return true;
}

std::pair<rpc::CopyArgs, Scheduler::InFlight> Scheduler::read_request(const Vv& vv, StageItem item,
                                                                      DriveState& drive) {
  ArchiveItem read;
  read.vv = item.vv;
  read.copy = item.copy;
  read.bytes = vv.size;
  const QueueKey key{vv.vv_class.empty() ? '?' : vv.vv_class[0], item.media};
  auto [args, f] = copy_request(vv, std::move(read), key, drive, item.vsn, item.file);
  // A verify writes nothing there: the path names the VV in the mover's log.
  args.cache_path = options_.cache_path(vv.name);
  args.checksum = vv.checksum;
  f.staged = std::move(item);
  return {std::move(args), std::move(f)};
}

void Scheduler::stage_done(InFlight f, const rpc::CopyReport& r) {
  joined_.erase(f.job_id);
  if (Status s = set_cache(f.item.vv, CacheState::kCached, true); !s.ok()) {
    // The file is in place; the record says staging, and a restart stages it again.
    log::error("VV {} staged from {} file {}, but the database did not take it: {}", f.item.vv,
               f.vsn, f.file, s.message());
    return;
  }
  metrics().staged(f.staged->media, r.bytes_total);
  copy_ok(f.drive, f.vsn);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady_now() - f.started);
  log::info("staged VV {} from {} file {} ({} bytes in {:.1f} s)", f.item.vv, f.vsn, f.file,
            r.bytes_total, took.count() / 1000.0);
  // A copy found bad on the way left the VV finished, one copy short: now that the cache holds
  // it again, that copy is made anew from there.
  Vv vv;
  if (lookup_vv(*db_, "name", db::KeyBuilder().text(f.item.vv), &vv).ok() &&
      vv.state == VvState::kFinished) {
    finished(vv);
  }
}

bool Scheduler::mark_bad_copy(const InFlight& f, const Status& why) {
  const StageItem& item = *f.staged;
  Vv vv;
  auto slot = lookup_vv(*db_, "name", db::KeyBuilder().text(item.vv), &vv);
  if (!slot.ok()) return false;
  VvCopy& copy = vv.copies[item.copy];
  if (copy.vsn != f.vsn || copy.file != f.file) return false;  // changed meanwhile
  db::Transaction txn;
  CopyMark mark{f.vsn,        f.file,
                vv.name,      static_cast<uint32_t>(item.copy + 1),
                vv.size,      CopyMarkState::kBad,
                now_unix(),   "vvmd",
                why.message()};
  CopyMark old;
  auto marked = find_copy_mark(*db_, f.vsn, f.file, &old);
  if (marked.ok()) {
    txn.update(kCopyTable, *marked, copy_values(mark));
  } else {
    txn.insert(kCopyTable, copy_values(mark));
  }
  // The VV leaves archived for finished, that copy missing: the scheduler makes it again once
  // the VV is in the cache (stage_done), and a restart finds it among the unwritten VVs.
  copy = {};
  if (vv.state == VvState::kArchived) vv.state = VvState::kFinished;
  txn.update(kVvTable, *slot, vv_values(vv));
  if (Status s = commits_.apply(
          txn, fmt::format("VV {}'s bad copy on {} file {}", vv.name, f.vsn, f.file));
      !s.ok()) {
    log::error("VV {}: cannot mark copy {} on {} file {} bad: {}", vv.name, item.copy + 1, f.vsn,
               f.file, s.message());
    return false;
  }
  log::notice(
      "VV {}: copy {} on {} file {} marked bad ({}); it is made again once the VV is in "
      "the cache",
      vv.name, item.copy + 1, f.vsn, f.file, why.message());
  return true;
}

void Scheduler::stage_failed(InFlight f, const Status& why) {
  joined_.erase(f.job_id);
  StageItem& item = *f.staged;
  if (why.code() == Code::kNoSpace || f.cache_at_fault) {
    // The cache filled, or failed, while the mover wrote the VV into it (it removed its partial
    // file): no copy is to blame (nothing counted on the VSN, the drive keeps its tape) and
    // another copy would meet the same cache. The VV stays evicted; the clients waiting hear
    // why, and a stage asked for a little later starts again.
    const std::string what =
        why.code() == Code::kNoSpace ? "the cache is full" : "the cache file could not be written";
    log::error("stage of VV {} from {} file {} failed: {}: {}", item.vv, f.vsn, f.file, what,
               why.message());
    failed_stages_[item.vv] = {
        steady_now() + kFullCacheStageMemory,
        fmt::format("the stage of VV {} failed: {}: {}", item.vv, what, why.message())};
    (void)set_cache(item.vv, CacheState::kEvicted, false);
    return;
  }
  ++item.attempts;
  const bool bad = why.code() == Code::kMismatch;
  if (bad) {
    log::error("VV {}: copy {} on {} file {} failed its checks: {}", item.vv, item.copy + 1, f.vsn,
               f.file, why.message());
    // The tape's fault, not the drive's: counted as a bad file (copy.tab), in the VSN's row.
    copy_error("", f.vsn, true, why);
    // Remembered at once: no second read of a copy whose checks failed.
    if (mark_bad_copy(f, why)) item.attempts = kBadCopyAttempts;
  } else {
    log::warning("stage of VV {} from {} file {} (drive {}) failed, attempt {}: {}", item.vv, f.vsn,
                 f.file, f.drive, item.attempts, why.message());
    mark_vsn(f.vsn, std::nullopt, true);
    copy_error(f.drive, f.vsn, false, why);
    if (DriveState* d = view_.find(f.drive)) view_.unload(*d);
  }
  if (item.attempts < (bad ? kBadCopyAttempts : kFailedCopyAttempts)) {
    retry(f, false);
    return;
  }
  // This copy has had its chances: the next one.
  item.bad_copies.insert(item.copy);
  Vv vv;
  auto slot = lookup_vv(*db_, "name", db::KeyBuilder().text(item.vv), &vv);
  if (!slot.ok()) return;
  const std::string vv_name = item.vv;
  const size_t copy = item.copy;
  StageItem next = std::move(item);
  next.not_before = steady_now();
  if (Status s = queue_stage(vv, std::move(next)); !s.ok()) {
    log::error("cannot stage VV {}: {}; it stays evicted", vv_name, s.message());
    failed_stages_[vv_name] = {steady_now() + kFailedStageMemory,
                               fmt::format("the stage of VV {} failed: {}", vv_name, s.message())};
    (void)set_cache(vv_name, CacheState::kEvicted, false);
    return;
  }
  const StageItem* queued = stages_.find(vv_name);
  log::notice("VV {}: copy {} set aside; staging from copy {} on {} file {}", vv_name, copy + 1,
              queued->copy + 1, queued->vsn, queued->file);
}

rpc::Served<rpc::VvStageRequest> Scheduler::serve_stage(rpc::Server& server) {
  return server.handle<rpc::VvStageRequest>(
      [this](const rpc::VvStageRequest& req, const rpc::Peer&) -> Result<rpc::VvStageReply> {
        auto p = stage(req.name, req.wait);
        if (!p.ok()) return p.status();
        rpc::VvStageReply reply;
        reply.cached = p->cached;
        reply.copying = p->copying;
        reply.vsn = p->vsn;
        reply.file = p->file;
        reply.bytes_done = p->bytes_done;
        reply.bytes_total = p->bytes_total;
        reply.queued = p->queued;
        return reply;
      });
}

}  // namespace vvm::vvmd
