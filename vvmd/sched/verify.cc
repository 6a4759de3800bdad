// sched/verify.cc: the scheduler's verify half: every live copy on a VSN read back whole and
// checked, on drives nothing else wants (sched/scheduler.h).
//
// A verify's read is a VERIFY to a mover: a stage that writes nothing (the VOL label, the HDR
// against the VV's record, exactly its size in data bytes, the EOF label and the checksum are
// checked, mover/copy/copy.h). The reads wait in a queue of their own, grouped by tape and read
// in file order as stages are, and go to a drive only once the stages and archive writes have
// taken what they need: a stage asked for meanwhile goes before every verify read not yet
// started. Each read's end is recorded in the verify table (verify.tab: when, how, good or not
// and why), applied at once and durable soon, as nobody is promised it. A copy that fails its
// checks (Mismatch) is marked bad (copy.tab) and taken out of its VV's copies, which leaves the
// VV finished, one copy short, and the scheduler makes that copy again from a good one (the
// cache file, or a stage of another copy first), as after a stage that found it bad. A read that
// fails otherwise (the drive, the mover) is tried again, and after kFailedCopyAttempts recorded
// as not good, the copy left as it is: the tape may be fine and the drive not.
//
// A verify's read gives way to a client stage at once: when a stage a client waits for needs a
// drive of a media type whose drives are all busy, a verify read on one of them is cancelled
// (CANCEL to its mover, which kills its copy process), the read queued again at the front, and
// the drive goes to the stage. The verify on the tape the stage wants is the one cancelled, if
// there is one: the stage then reads that tape where it is, with no mount. A cancelled read is
// neither a pass nor a failure: nothing is counted or recorded, and it is read again later.
//
// The scrub ([vvmd] scrub-interval) is the same reads, recorded as "scrub", of one tape at a
// time: when no verify read is queued, the tape whose least recently verified live copy is the
// oldest (never verified counts as oldest), once the interval has passed since then. Disabled
// tapes and tapes being repacked are left alone.
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "common/log.h"
#include "sched/policy.h"
#include "sched/scheduler.h"

namespace vvm::vvmd {

using namespace policy;

Result<std::pair<uint64_t, uint64_t>> Scheduler::queue_verifies(const Vsn& vsn,
                                                                const std::string& how) {
  auto live = live_copies(vsn.name);
  if (!live.ok()) return live.status();
  uint64_t files = 0, bytes = 0;
  const auto now = steady_now();
  for (const LiveCopy& c : *live) {
    StageItem item;
    item.vv = c.vv;
    item.vv_class = c.vv_class;
    item.copy = c.copy;
    item.vsn = vsn.name;
    item.media = vsn.media;
    item.file = c.file;
    item.bytes = c.bytes;
    item.how = how;
    item.queued = item.not_before = now;
    if (!verifies_.push(std::move(item))) continue;  // one read a VV at a time: the next round
    ++files;
    bytes += c.bytes;
  }
  if (files > 0) wake();
  return std::pair{files, bytes};
}

Result<rpc::VsnVerifyReply> Scheduler::verify(const rpc::Peer& peer,
                                              const rpc::VsnVerifyRequest& req) {
  VVM_RETURN_IF_ERROR(privileged(peer, "verify VSN " + req.vsn));
  Vsn vsn;
  VVM_RETURN_IF_ERROR(find_vsn(*db_, req.vsn, &vsn).status());
  if (vsn.state == VsnState::kDisabled) {
    return Status::InvalidArgument(
        fmt::format("cannot verify VSN {}: it is disabled, never mounted; 'vvctl vsn set {} "
                    "read-only --reason TEXT' first",
                    vsn.name, vsn.name));
  }
  const uint64_t since = now_unix();  // before any read it queues can end
  auto queued = queue_verifies(vsn, "verify");
  if (!queued.ok()) return queued.status();
  log::notice("verify of {} asked for by {}: {} copies ({} bytes) to read back", vsn.name,
              user_name(peer.uid), queued->first, queued->second);
  return rpc::VsnVerifyReply{vsn.name, queued->first, queued->second, since};
}

Result<rpc::VerifyListReply> Scheduler::verifies(const rpc::VerifyListRequest& req) const {
  Vsn vsn;
  VVM_RETURN_IF_ERROR(find_vsn(*db_, req.vsn, &vsn).status());
  rpc::VerifyListReply reply;
  VVM_RETURN_IF_ERROR(scan_verify_marks_on_vsn(*db_, req.vsn, [&](uint64_t, const VerifyMark& m) {
    reply.marks.push_back(m);
    return true;
  }));
  reply.queued = verifies_.files(req.vsn);
  for (const auto& [id, f] : in_flight_) reply.queued += is_verify(f) && f.vsn == req.vsn;
  return reply;
}

bool Scheduler::dispatch_verify(Clock::time_point now) {
  std::set<std::string> busy;  // VSNs a copy reads or writes now
  for (const auto& [id, f] : in_flight_) {
    busy.insert(f.vsn);
    if (is_tape_copy(f)) busy.insert(f.item.from_vsn);
  }
  for (const std::string& vsn : verifies_.vsns_by_priority(now)) {
    const std::string media = verifies_.media_of(vsn);
    // A stage that waits for a drive of this media type goes first, and so does a ready archive
    // write: a verify never takes a drive they want.
    if (stages_want(media) || busy.contains(vsn)) continue;
    if (!may_take_drive(verifies_.class_of(vsn), true)) continue;
    bool archive_waits = false;
    for (const QueueKey& key : queue_.keys_oldest_first()) {
      // Only a write that would mount now: its class below its limit, past its minimum wait.
      auto cls = config_.classes.find(key.vv_class);
      const auto min_wait =
          cls == config_.classes.end() ? std::chrono::seconds(0) : cls->second.archive_min_wait;
      archive_waits =
          archive_waits || (key.media == media && queue_.due(key, now) &&
                            may_take_drive(key.vv_class, false) && queue_.aged(key, now, min_wait));
    }
    if (archive_waits) continue;
    DriveState* drive = view_.holding(vsn);
    if (drive != nullptr) {
      if (drive->busy || drive->down || drive->unusable_until > now) continue;
    } else {
      auto free = view_.free_drives(media, now);
      if (free.empty()) continue;
      drive = free.front();
    }
    auto item = verifies_.pop(vsn, now);
    if (item) return start_verify(std::move(*item), *drive, now);
  }
  return false;
}

bool Scheduler::start_verify(StageItem item, DriveState& drive, Clock::time_point now) {
  Vv vv;
  auto slot = lookup_vv(*db_, "name", db::KeyBuilder().text(item.vv), &vv);
  if (!slot.ok() || item.copy >= vv.copies.size() || vv.copies[item.copy].vsn != item.vsn ||
      vv.copies[item.copy].file != item.file) {
    log::info("{}: VV {}'s copy {} is no longer on {} file {}: not read back", item.how, item.vv,
              item.copy + 1, item.vsn, item.file);
    return true;
  }
  // A tape disabled since the read was queued is never mounted.
  if (vsn_disabled(item.vsn)) {
    log::info("{}: VV {}'s copy {} on {} file {} not read back: {} is disabled, never mounted",
              item.how, item.vv, item.copy + 1, item.vsn, item.file, item.vsn);
    return true;
  }
  if (!mount(drive, item.vsn, item.media,
             fmt::format("to {} {} file(s)", item.how, verifies_.files(item.vsn) + 1))) {
    verifies_.push(std::move(item));
    return false;
  }
  auto [args, f] = read_request(vv, std::move(item), drive);
  log::info("{} VV {}'s copy {} on {} file {} in drive {} (request {})", f.staged->how, vv.name,
            f.item.copy + 1, f.vsn, f.file, drive.name, args.request_id);
  send(drive, std::move(f), rpc::Op::kVerify, std::move(args), now);
  return true;
}

void Scheduler::record_verify(const InFlight& f, bool good, const std::string& why) {
  VerifyMark mark{f.vsn,      f.file,        f.item.vv, static_cast<uint32_t>(f.item.copy + 1),
                  now_unix(), f.staged->how, good,      why};
  db::Transaction txn;
  Status s = set_verify_mark(*db_, txn, mark);
  if (s.ok()) s = commits_.apply(txn, fmt::format("the verify of {} file {}", f.vsn, f.file));
  if (!s.ok()) {
    log::error("{} of {} file {}: cannot record it: {}", f.staged->how, f.vsn, f.file, s.message());
  }
}

void Scheduler::verify_done(InFlight f, const rpc::CopyReport& r) {
  cancelling_.erase(f.job_id);  // a cancel that came too late: the read ended whole
  record_verify(f, true, "");
  copy_ok(f.drive, f.vsn);
  log::info("{}: VV {}'s copy {} on {} file {} is good ({} bytes, checksum {:016x})", f.staged->how,
            f.item.vv, f.item.copy + 1, f.vsn, f.file, r.bytes_total, r.checksum);
}

void Scheduler::cancel_verifies_for_stages(Clock::time_point now) {
  // The tapes of the stages a client waits for, by media type.
  std::map<std::string, std::set<std::string>> wanted;
  for (const std::string& vsn : stages_.vsns_by_priority(now)) {
    if (stages_.waiting(vsn) && may_take_drive(stages_.class_of(vsn), true)) {
      wanted[stages_.media_of(vsn)].insert(vsn);
    }
  }
  for (const auto& [m, tapes] : wanted) {
    const bool asked = std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& e) {
      return cancelling_.contains(e.first) && e.second.key.media == m;
    });
    if (asked) continue;  // one at a time: its drive is free in a moment
    // A stage's own tape in a verifying drive first: the stage reads there once the verify is
    // gone, with no mount, and could take no other drive while its tape is in that one (so even
    // a free drive does not help it). Else, when no drive of the type is free and a stage's tape
    // is in none (one in a drive waits for that drive), the read that has done the least, as the
    // least work lost.
    const bool needs_mount = std::any_of(tapes.begin(), tapes.end(), [&](const std::string& t) {
      return view_.holding(t) == nullptr;
    });
    std::optional<uint64_t> pick;
    bool own_tape = false;
    for (const auto& [id, f] : in_flight_) {
      const DriveState* d = view_.find(f.drive);
      if (!is_verify(f) || f.job == 0 || d == nullptr || d->media != m) continue;
      if (tapes.contains(f.vsn)) {
        pick = id;
        own_tape = true;
        break;
      }
      if (!pick || f.bytes_done < in_flight_.at(*pick).bytes_done) pick = id;
    }
    if (!pick || (!own_tape && (!needs_mount || !view_.free_drives(m, now).empty()))) continue;
    const InFlight& f = in_flight_.at(*pick);
    const DriveState* d = view_.find(f.drive);
    const uint64_t id = *pick;
    const std::string why =
        own_tape ? fmt::format("a client waits for a stage from {}, the tape it reads", f.vsn)
                 : fmt::format("a client waits for a stage from a {} tape", m);
    cancelling_[id] = why;
    log::info("{} of VV {}'s copy on {} file {} (drive {}, request {}) cancelled: {}",
              f.staged->how, f.item.vv, f.vsn, f.file, f.drive, id, why);
    movers_->cancel(d->mover_endpoint, rpc::CancelRequest{f.job, id, why},
                    [this, id](Result<rpc::CancelReply> answer) {
                      // A verify that ended meanwhile (NotFound) reports as it ended.
                      if (!answer.ok() && cancelling_.erase(id) > 0) {
                        log::info("cancel of request {}: {}", id, answer.status().message());
                      }
                    });
  }
}

void Scheduler::verify_failed(InFlight f, const Status& why) {
  StageItem& item = *f.staged;
  if (auto cancelled = cancelling_.find(f.job_id); cancelled != cancelling_.end()) {
    // Cancelled for a stage: no fault of the tape or the drive; read again, first in line.
    log::info("{} of VV {}'s copy on {} file {} gave its drive {} to a stage; read again later",
              item.how, item.vv, f.vsn, f.file, f.drive);
    cancelling_.erase(cancelled);
    retry(f, true);
    return;
  }
  if (why.code() == Code::kMismatch) {
    log::error("{}: VV {}'s copy {} on {} file {} failed its checks: {}", item.how, item.vv,
               item.copy + 1, f.vsn, f.file, why.message());
    copy_error("", f.vsn, true, why);
    record_verify(f, false, why.message());
    // Marked bad at once; the VV, finished again one copy short, gets that copy anew.
    if (mark_bad_copy(f, why)) {
      Vv vv;
      if (lookup_vv(*db_, "name", db::KeyBuilder().text(item.vv), &vv).ok() &&
          vv.state == VvState::kFinished) {
        finished(vv);
      }
    }
    return;
  }
  ++item.attempts;
  log::warning("{} of VV {}'s copy on {} file {} (drive {}) failed, attempt {}: {}", item.how,
               item.vv, f.vsn, f.file, f.drive, item.attempts, why.message());
  if (why.code() != Code::kBusy && why.code() != Code::kUnavailable) {
    mark_vsn(f.vsn, std::nullopt, true);
    copy_error(f.drive, f.vsn, false, why);
  }
  if (DriveState* d = view_.find(f.drive)) view_.unload(*d);
  if (item.attempts < kFailedCopyAttempts) {
    retry(f, false);
    return;
  }
  record_verify(f, false, "could not be read: " + why.message());
  log::error("{}: VV {}'s copy on {} file {} could not be read back {} times: left as it is",
             item.how, item.vv, f.vsn, f.file, item.attempts);
}

void Scheduler::scrub(Clock::time_point now) {
  if (config_.scrub_interval.count() <= 0 || verifies_.size() > 0) return;
  if (now - last_scrub_check_ < kScrubCheck) return;
  last_scrub_check_ = now;
  for (const auto& [id, f] : in_flight_) {
    if (is_verify(f)) return;  // one tape at a time
  }
  // The VSNs first: a scan in progress would not let live_copies() read the VV table.
  std::vector<Vsn> vsns;
  Status s = scan_vsn(*db_, "name", kEveryName.lo, kEveryName.hi, [&](uint64_t, const Vsn& vsn) {
    if (vsn.state != VsnState::kDisabled && !repacks_.contains(vsn.name)) vsns.push_back(vsn);
    return true;
  });
  if (!s.ok()) {
    log::error("scrub: cannot read the VSNs: {}", s.message());
    return;
  }
  std::optional<Vsn> oldest;
  uint64_t oldest_when = 0;
  for (const Vsn& vsn : vsns) {
    auto live = live_copies(vsn.name);
    if (!live.ok()) {
      log::error("scrub: {}", live.status().message());
      return;
    }
    if (live->empty()) continue;
    std::map<uint64_t, uint64_t> when;  // file -> last verified
    (void)scan_verify_marks_on_vsn(*db_, vsn.name, [&](uint64_t, const VerifyMark& m) {
      when[m.file] = m.when;
      return true;
    });
    uint64_t least = UINT64_MAX;
    for (const LiveCopy& c : *live) {
      auto it = when.find(c.file);
      least = std::min(least, it == when.end() ? 0 : it->second);
    }
    if (!oldest || least < oldest_when) {
      oldest = vsn;
      oldest_when = least;
    }
  }
  if (!oldest) return;
  const auto interval = static_cast<uint64_t>(config_.scrub_interval.count());
  if (oldest_when + interval > now_unix()) return;
  auto queued = queue_verifies(*oldest, "scrub");
  if (!queued.ok()) {
    log::error("scrub of {}: {}", oldest->name, queued.status().message());
    return;
  }
  log::info("scrub: {} copies ({} bytes) on {} to read back, its oldest verify {}", queued->first,
            queued->second, oldest->name,
            oldest_when == 0 ? std::string("never") : fmt::format("at {}", oldest_when));
}

rpc::Served<rpc::VsnVerifyRequest, rpc::VerifyListRequest> Scheduler::serve_verify(
    rpc::Server& server) {
  return server.handle<rpc::VsnVerifyRequest>([this](const rpc::VsnVerifyRequest& r,
                                                     const rpc::Peer& peer) {
    return verify(peer, r);
  }) + server.handle<rpc::VerifyListRequest>([this](const rpc::VerifyListRequest& r,
                                                    const rpc::Peer&) { return verifies(r); });
}

}  // namespace vvm::vvmd
