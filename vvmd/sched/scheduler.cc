// scheduler.cc: see scheduler.h.
#include "sched/scheduler.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include <fmt/core.h>
#include <fmt/format.h>

#include "common/log.h"

namespace vvm::vvmd {

namespace {

// A VSN that failed this many copies is not chosen for writing until someone looks at it.
constexpr uint64_t kMaxVsnErrors = 3;
// How long a drive is set aside after its mover said Busy, and after its mover did not answer at
// all. Busy is mostly a race: a copy reports its end a moment before its mover reaps it and frees
// the drive, so the pause is short.
constexpr std::chrono::milliseconds kBusyPause{100};
constexpr std::chrono::seconds kDownPause{30};
// Beyond the mover's stall timeout, the time vvmd waits for a report before it gives up on a
// copy: the mover itself reports a stalled copy as failed after its stall timeout.
constexpr std::chrono::seconds kReportMargin{60};
// How often the movers running vvmd's copies are asked whether they are still there (and the
// same process): a mover that died took its copies with it, and they must be sent again.
constexpr std::chrono::seconds kMoverCheck{3};
// How long a stage waits before its tape is mounted, so that requests arriving together (a
// program opening many VVs) share one mount and are read in file order.
constexpr std::chrono::milliseconds kStageGather{1000};
// Reads of one tape in a row, while other tapes of its media type wait, before the drive may
// take another tape: a tape with a steady stream of requests does not keep the others waiting.
constexpr uint64_t kMountBudget = 64;
// Failed reads of one copy before the next copy is tried: checks (Mismatch), anything else.
constexpr uint32_t kBadCopyAttempts = 2;
constexpr uint32_t kFailedCopyAttempts = 3;
// How long a stage that failed on every copy is answered with its failure, not tried again.
constexpr std::chrono::seconds kFailedStageMemory{60};

const db::KeyRange kEveryName = db::every_text_key();

}  // namespace

std::chrono::seconds Scheduler::retry_delay(uint32_t attempts) {
  if (attempts == 0) return std::chrono::seconds(0);
  const uint32_t shift = std::min<uint32_t>(attempts - 1, 8);
  return std::min(std::chrono::seconds(2u << shift), std::chrono::seconds(300));
}

Scheduler::Scheduler(db::Database* db, const Config& config, Options options, MoverPort* movers)
    : db_(db),
      config_(config),
      options_(std::move(options)),
      movers_(movers),
      queue_(BatchPolicy{config.archive_batch_bytes, config.archive_batch_files,
                         config.archive_max_wait}),
      view_(config) {
  // Request ids are never reused across restarts, so that a report of a copy from before a
  // restart is not taken for a new one.
  next_request_id_ = (now_unix() << 20) + (std::random_device{}() & 0xfffff);
}

uint64_t Scheduler::now_unix() const {
  if (options_.now) return options_.now();
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Clock::time_point Scheduler::steady_now() const {
  return options_.clock ? options_.clock() : Clock::now();
}

size_t Scheduler::copies_of(char cls) const {
  auto it = config_.classes.find(cls);
  return it == config_.classes.end() ? 0 : it->second.media.size();
}

void Scheduler::wake() {
  if (server_ == nullptr || wake_pending_) return;
  wake_pending_ = true;
  server_->post([this] {
    wake_pending_ = false;
    tick();
  });
}

Status Scheduler::recover() {
  // The movers load a tape for each copy and hold none between runs: the drives start empty.
  db::Transaction back;
  std::vector<std::string> moved;
  Status bad;
  VVM_RETURN_IF_ERROR(db_->scan_index(
      kVsnTable, "name", kEveryName.lo, kEveryName.hi, [&](uint64_t slot, const db::Values& v) {
        auto r = vsn_from_values(v);
        if (!r.ok()) {
          bad = r.status();
          return false;
        }
        if (r->location.starts_with("drive:")) {
          moved.push_back(fmt::format("{} ({})", r->name, r->location));
          r->location = "slot";
          back.update(kVsnTable, slot, vsn_values(*r));
        }
        return true;
      }));
  VVM_RETURN_IF_ERROR(bad);
  if (!back.changes().empty()) {
    auto committed = db_->commit(back);
    if (!committed.ok()) return committed.status();
    log::info("recovery: {} VSN{} back in their slots: {}", moved.size(),
              moved.size() == 1 ? "" : "s", fmt::join(moved, ", "));
  }

  // Stages cut short: the movers' temporary files go, and the VVs are queued again.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.cache_dir, ec)) {
    const std::string file = entry.path().filename().string();
    if (!file.starts_with(".stage.")) continue;
    std::filesystem::remove(entry.path(), ec);
    log::info("recovery: removed {}, a stage cut short", entry.path().string());
  }
  std::vector<Vv> staging;
  VVM_RETURN_IF_ERROR(
      scan_vv(*db_, "name", kEveryName.lo, kEveryName.hi, [&](uint64_t, const Vv& r) {
        if (r.cache == CacheState::kStaging) staging.push_back(r);
        return true;
      }));
  for (const auto& r : staging) {
    StageItem item;
    item.vv = r.name;
    item.bytes = r.size;
    item.queued = item.not_before = steady_now();
    if (Status s = queue_stage(r, std::move(item)); !s.ok()) {
      log::error("recovery: VV {} was being staged and cannot be: {}", r.name, s.message());
      (void)set_cache(r.name, CacheState::kEvicted, false);
    }
  }
  if (!staging.empty()) log::info("recovery: {} stage(s) queued again", staging.size());

  std::vector<Vv> unwritten;
  VVM_RETURN_IF_ERROR(
      scan_vv(*db_, "unwritten", kEveryName.lo, kEveryName.hi, [&](uint64_t, const Vv& r) {
        unwritten.push_back(r);
        return true;
      }));
  for (const auto& r : unwritten) finished(r);
  if (!unwritten.empty()) {
    log::info("recovery: {} finished VV{} not yet on every VSN, queued again ({} copies)",
              unwritten.size(), unwritten.size() == 1 ? "" : "s", queue_.size());
  }
  return Status::Ok();
}

void Scheduler::finished(const Vv& vv) {
  if (vv.vv_class.size() != 1) return;
  auto cls = config_.classes.find(vv.vv_class[0]);
  if (cls == config_.classes.end()) {
    log::error("VV {}: class {} is not in vvm.conf: it cannot be archived", vv.name, vv.vv_class);
    return;
  }
  const auto now = steady_now();
  for (size_t i = 0; i < cls->second.media.size() && i < vv.copies.size(); ++i) {
    if (!vv.copies[i].vsn.empty()) continue;
    const bool copying = std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& f) {
      return f.second.item.vv == vv.name && f.second.item.copy == i;
    });
    if (copying) continue;
    queue_.push({cls->first, cls->second.media[i]}, {vv.name, i, vv.size, now, now, 0});
  }
  wake();
}

std::vector<Vsn> Scheduler::writable_vsns(char cls, const std::string& media, bool* any_busy) {
  *any_busy = false;
  std::vector<Vsn> out;
  std::set<std::string> copying;
  for (const auto& [id, f] : in_flight_) copying.insert(f.vsn);
  const std::string cls_text(1, cls);
  Status bad;
  Status s = db_->scan_index(
      kVsnTable, "name", kEveryName.lo, kEveryName.hi, [&](uint64_t, const db::Values& v) {
        auto r = vsn_from_values(v);
        if (!r.ok()) {
          bad = r.status();
          return false;
        }
        if (r->media != media) return true;
        if (r->errors >= kMaxVsnErrors) return true;
        const bool hot = r->state == VsnState::kHot && r->vsn_class == cls_text;
        const bool blank =
            r->state == VsnState::kBlank && (r->vsn_class.empty() || r->vsn_class == cls_text);
        if (!hot && !blank) return true;
        const DriveState* d = view_.holding(r->name);
        if (copying.contains(r->name) || (d != nullptr && d->busy)) {
          *any_busy = true;  // it will take copies again once this one ends
          return true;
        }
        out.push_back(std::move(*r));
        return true;
      });
  if (!s.ok() || !bad.ok()) {
    log::error("scheduler: cannot read the VSN table: {}", (!s.ok() ? s : bad).message());
    return {};
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    // Fill hot tapes before starting blank ones; among them, the ones that failed least.
    if ((a.state == VsnState::kHot) != (b.state == VsnState::kHot))
      return a.state == VsnState::kHot;
    return a.errors < b.errors;
  });
  return out;
}

void Scheduler::tick() {
  const auto now = steady_now();
  std::vector<uint64_t> lost;
  for (const auto& [id, f] : in_flight_) {
    if (f.deadline <= now) lost.push_back(id);
  }
  for (uint64_t id : lost) {
    InFlight f = std::move(in_flight_.at(id));
    in_flight_.erase(id);
    if (DriveState* d = view_.find(f.drive)) d->busy = false;
    Status why = Status::Timeout(
        fmt::format("no report from mover {} for {} s", f.mover, f.stall_margin.count()));
    copy_failed(std::move(f), why);
  }
  if (now - last_mover_check_ >= kMoverCheck) {
    last_mover_check_ = now;
    check_movers();
  }
  while (dispatch_stage(now)) {
  }
  for (const QueueKey& key : queue_.keys_oldest_first()) {
    // Stages go first: their media type's drives are theirs until the stage queue lets go.
    if (stages_.wants_media(key.media)) continue;
    while (dispatch(key, now)) {
    }
  }
}

void Scheduler::check_movers() {
  std::set<std::string> movers;
  for (const auto& [id, f] : in_flight_) movers.insert(f.mover);
  for (const std::string& name : movers) {
    auto m = config_.movers.find(name);
    if (m == config_.movers.end()) continue;
    const auto asked = steady_now();
    movers_->ping(m->second.listen, [this, name, asked](Result<rpc::PingReply> answer) {
      const rpc::PingReply* ping = answer.ok() ? &*answer : nullptr;
      if (ping == nullptr) {
        // Once may be a hiccup; twice running, the mover and its copies are gone.
        if (++mover_misses_[name] < 2) return;
        lose_copies(name, asked,
                    Status::Unavailable(fmt::format("mover {} does not answer: {}", name,
                                                    answer.status().message())));
        return;
      }
      mover_misses_[name] = 0;
      // Copies sent before the mover (re)started died with its old self.
      const auto up_since = asked - std::chrono::milliseconds(ping->uptime_ms);
      lose_copies(name, up_since, Status::Unavailable(fmt::format("mover {} restarted", name)));
    });
  }
}

void Scheduler::lose_copies(const std::string& mover, Clock::time_point before, const Status& why) {
  std::vector<uint64_t> lost;
  for (const auto& [id, f] : in_flight_) {
    if (f.mover == mover && f.started < before) lost.push_back(id);
  }
  for (uint64_t id : lost) {
    InFlight f = std::move(in_flight_.at(id));
    in_flight_.erase(id);
    if (DriveState* d = view_.find(f.drive)) {
      d->busy = false;
      view_.unload(*d);
    }
    log::warning("copy {} of VV {} to {} (request {}) is lost: {}", f.item.copy + 1, f.item.vv,
                 f.vsn, id, why.message());
    // Not the copy's fault, nor the VSN's: it goes first in line again.
    retry(f, true);
  }
  if (!lost.empty()) wake();
}

bool Scheduler::dispatch(const QueueKey& key, Clock::time_point now) {
  if (!queue_.ready(key, now)) return false;
  const bool due = queue_.due(key, now);
  bool any_busy = false;
  std::vector<Vsn> vsns = writable_vsns(key.vv_class, key.media, &any_busy);
  if (vsns.empty()) {
    // All of them being written is no reason to tell anyone; having none at all is.
    if (!any_busy && starved_.insert(key).second) {
      log::warning(
          "no VSN can take class {}'s copies on {} ({} waiting): add one with "
          "'vvctl vsn add VSN --media {} --class {}'",
          key.vv_class, key.media, queue_.files(key), key.media, key.vv_class);
    }
    return false;
  }
  starved_.erase(key);
  // A tape of the right kind already in a free drive: write now, whatever the batch rule says.
  DriveState* drive = nullptr;
  const Vsn* vsn = nullptr;
  for (const auto& v : vsns) {
    DriveState* d = view_.holding(v.name);
    if (d != nullptr && !d->busy && d->unusable_until <= now) {
      drive = d;
      vsn = &v;
      break;
    }
  }
  if (drive == nullptr) {
    if (!due) return false;
    auto free = view_.free_drives(key.media, now);
    if (free.empty()) return false;
    drive = free.front();
    vsn = &vsns.front();
  }
  auto item = queue_.pop(key, now);
  if (!item) return false;
  return start_copy(key, std::move(*item), *drive, *vsn, now);
}

bool Scheduler::start_copy(const QueueKey& key, ArchiveItem item, DriveState& drive, const Vsn& vsn,
                           Clock::time_point now) {
  Vv vv;
  auto slot = lookup_vv(*db_, "name", db::KeyBuilder().text(item.vv), &vv);
  if (!slot.ok()) {
    if (slot.status().code() != Code::kNotFound) {
      log::error("scheduler: VV {}: {}", item.vv, slot.status().message());
      item.not_before = now + retry_delay(++item.attempts);
      queue_.push(key, std::move(item));
      return false;
    }
    log::info("VV {} was removed: its copy {} is not written", item.vv, item.copy + 1);
    return true;  // the queue moved on
  }
  if (vv.state != VvState::kFinished || !vv.copies[item.copy].vsn.empty()) return true;

  if (view_.load(drive, vsn.name)) {
    Status recorded = record_mount(drive, vsn.name);
    if (!recorded.ok()) {
      log::error("cannot record VSN {} in drive {}: {}", vsn.name, drive.name, recorded.message());
      view_.unload(drive);
      queue_.push_front(key, std::move(item));
      return false;
    }
    log::info("mount {} ({}, {}) in drive {} of mover {} for class {}'s copies", vsn.name,
              vsn.media, vsn_state_name(vsn.state), drive.name, drive.mover, key.vv_class);
  }

  rpc::CopyArgs args;
  args.drive = drive.name;
  args.vsn = vsn.name;
  args.file_number = vsn.next_file;
  args.cache_path = options_.cache_path(vv.name);
  args.file = {vv.vv_class, vv.serial, vv.client_id, vv.size, vv.finished};
  args.reply_to = options_.reply_to;
  args.request_id = next_request_id_++;

  InFlight f;
  f.item = std::move(item);
  f.key = key;
  f.vsn = vsn.name;
  f.drive = drive.name;
  f.mover = drive.mover;
  f.file = vsn.next_file;
  drive.busy = true;
  log::info("archive copy {} of VV {} ({} bytes) to {} file {} in drive {} (request {})",
            f.item.copy + 1, vv.name, vv.size, vsn.name, vsn.next_file, drive.name,
            args.request_id);
  send(drive, std::move(f), rpc::Op::kArchive, std::move(args), now);
  return true;
}

void Scheduler::send(const DriveState& drive, InFlight f, rpc::Op op, rpc::CopyArgs args,
                     Clock::time_point now) {
  auto mover = config_.movers.find(drive.mover);
  f.stall_margin =
      (mover != config_.movers.end() ? mover->second.stall_timeout : std::chrono::seconds(300)) +
      kReportMargin;
  f.deadline = now + f.stall_margin;
  f.started = now;
  const uint64_t id = args.request_id;
  in_flight_.emplace(id, std::move(f));
  auto done = [this, id](Result<rpc::CopyAccepted> answer) { accepted(id, std::move(answer)); };
  if (op == rpc::Op::kArchive) {
    movers_->archive(drive.mover_endpoint, args, std::move(done));
  } else {
    movers_->stage(drive.mover_endpoint, args, std::move(done));
  }
}

void Scheduler::accepted(uint64_t request_id, Result<rpc::CopyAccepted> answer) {
  auto it = in_flight_.find(request_id);
  if (it == in_flight_.end()) return;  // its final report came first
  if (answer.ok()) {
    it->second.job = answer->job;
    log::debug("request {}: mover {} runs it as job {} on drive {}", request_id, it->second.mover,
               answer->job, answer->drive);
    return;
  }
  InFlight f = std::move(it->second);
  in_flight_.erase(it);
  DriveState* drive = view_.find(f.drive);
  const auto now = steady_now();
  const Status& why = answer.status();
  if (drive != nullptr) {
    drive->busy = false;
    if (why.code() == Code::kBusy) {
      drive->unusable_until = now + kBusyPause;
    } else if (why.code() == Code::kUnavailable || why.code() == Code::kTimeout) {
      // The mover is down: all its drives are.
      for (const auto& d : view_.drives()) {
        if (d.mover == f.mover) {
          DriveState* same = view_.find(d.name);
          same->unusable_until = now + kDownPause;
          view_.unload(*same);
        }
      }
    }
  }
  if (why.code() == Code::kBusy || why.code() == Code::kUnavailable ||
      why.code() == Code::kTimeout) {
    // Not the copy's fault: it keeps its place, and another drive may take it.
    log::warning("mover {} did not take copy {} of VV {} (drive {}): {}", f.mover, f.item.copy + 1,
                 f.item.vv, f.drive, why.message());
    retry(f, true);
  } else {
    log::error("mover {} refused copy {} of VV {} to {}: {}", f.mover, f.item.copy + 1, f.item.vv,
               f.vsn, why.message());
    ++(f.staged ? f.staged->attempts : f.item.attempts);
    retry(f, false);
  }
  wake();
}

Status Scheduler::report(const rpc::Peer& peer, const rpc::CopyReport& r) {
  if (peer.kind == Endpoint::Kind::kUnix && peer.uid != 0 && peer.uid != options_.daemon_uid) {
    return Status::PermissionDenied(fmt::format(
        "copy reports come from movers, which run as root or as vvmd's user; not from {}",
        peer.to_string()));
  }
  auto it = in_flight_.find(r.request_id);
  if (it == in_flight_.end()) {
    if (r.state != rpc::CopyState::kRunning) {
      log::warning(
          "report from mover {} (job {}) for request {}, which vvmd is not waiting for (given "
          "up on, or sent before vvmd restarted): {} {} file {}",
          r.mover, r.job, r.request_id, r.state == rpc::CopyState::kDone ? "done" : "failed", r.vsn,
          r.file_number);
    }
    return Status::Ok();
  }
  InFlight& f = it->second;
  if (r.state == rpc::CopyState::kRunning) {
    f.bytes_done = r.bytes_done;
    f.deadline = steady_now() + f.stall_margin;
    return Status::Ok();
  }
  InFlight done = std::move(f);
  in_flight_.erase(it);
  if (DriveState* d = view_.find(done.drive)) d->busy = false;
  if (r.state == rpc::CopyState::kDone) {
    copy_done(std::move(done), r);
  } else {
    copy_failed(std::move(done),
                r.failure.ok() ? Status::Internal("failed, no reason given") : r.failure);
  }
  wake();
  return Status::Ok();
}

void Scheduler::copy_done(InFlight f, const rpc::CopyReport& r) {
  if (f.staged) return stage_done(std::move(f), r);
  if (r.vsn != f.vsn || r.file_number != f.file) {
    log::warning("mover {} wrote VV {} to {} file {}, asked for {} file {}: recording where it is",
                 f.mover, f.item.vv, r.vsn, r.file_number, f.vsn, f.file);
  }
  db::Transaction txn;
  Vsn vsn;
  auto vsn_slot = lookup_vsn(*db_, "name", db::KeyBuilder().text(r.vsn), &vsn);
  if (!vsn_slot.ok()) {
    log::error("VV {} written to {} file {}, but: {}", f.item.vv, r.vsn, r.file_number,
               vsn_slot.status().message());
    ++f.item.attempts;
    retry(f, false);
    return;
  }
  vsn.next_file = std::max(vsn.next_file, r.file_number + 1);
  vsn.bytes_used += r.bytes_total;
  if (vsn.state == VsnState::kBlank) vsn.state = VsnState::kHot;
  if (vsn.vsn_class.empty()) vsn.vsn_class = std::string(1, f.key.vv_class);
  txn.update(kVsnTable, *vsn_slot, vsn_values(vsn));

  Vv vv;
  auto vv_slot = lookup_vv(*db_, "name", db::KeyBuilder().text(f.item.vv), &vv);
  bool recorded = false, archived = false;
  if (vv_slot.ok() && vv.state == VvState::kFinished && vv.copies[f.item.copy].vsn.empty()) {
    if (vv.checksum != 0 && vv.checksum != r.checksum) {
      log::error(
          "VV {}: copy {} on {} file {} has checksum {:016x}, its other copies {:016x}: not "
          "recorded, written again",
          vv.name, f.item.copy + 1, r.vsn, r.file_number, r.checksum, vv.checksum);
    } else {
      vv.checksum = r.checksum;
      vv.copies[f.item.copy] = {r.vsn, r.file_number};
      const size_t want = copies_of(f.key.vv_class);
      size_t have = 0;
      for (size_t i = 0; i < want && i < vv.copies.size(); ++i) have += !vv.copies[i].vsn.empty();
      if (have == want) {
        vv.state = VvState::kArchived;
        archived = true;
      }
      txn.update(kVvTable, *vv_slot, vv_values(vv));
      recorded = true;
    }
  }
  if (auto committed = db_->commit(txn); !committed.ok()) {
    log::error("VV {} written to {} file {}, but the database did not take it: {}", f.item.vv,
               r.vsn, r.file_number, committed.status().message());
    ++f.item.attempts;
    retry(f, false);
    return;
  }
  if (!vv_slot.ok()) {
    log::info("VV {} was removed while its copy went to {} file {}: the file is left unused",
              f.item.vv, r.vsn, r.file_number);
    return;
  }
  if (!recorded) {
    if (vv.state == VvState::kFinished && vv.copies[f.item.copy].vsn.empty()) {
      ++f.item.attempts;
      retry(f, false);
    }
    return;
  }
  log::info("VV {}: copy {} on {} file {} ({} bytes, checksum {:016x}){}", vv.name, f.item.copy + 1,
            r.vsn, r.file_number, r.bytes_total, r.checksum, archived ? ": archived" : "");
}

void Scheduler::copy_failed(InFlight f, const Status& why) {
  if (f.staged) return stage_failed(std::move(f), why);
  DriveState* drive = view_.find(f.drive);
  switch (why.code()) {
    case Code::kNoSpace:
      log::notice("VSN {} is full ({}): copy {} of VV {} goes to another VSN", f.vsn, why.message(),
                  f.item.copy + 1, f.item.vv);
      mark_vsn(f.vsn, VsnState::kFull, false);
      retry(f, true);
      return;
    case Code::kMismatch:
      // The tape is not what the database says: writing on would risk what it holds.
      log::error(
          "VSN {} is not as vvmd's database says ({}): no more writes to it (marked "
          "full); check it with 'vvtape ls'. Copy {} of VV {} goes to another VSN",
          f.vsn, why.message(), f.item.copy + 1, f.item.vv);
      mark_vsn(f.vsn, VsnState::kFull, true);
      if (drive != nullptr) view_.unload(*drive);
      retry(f, true);
      return;
    default:
      ++f.item.attempts;
      log::warning(
          "copy {} of VV {} to {} file {} (drive {}, mover {}) failed, attempt {}: {}; "
          "retrying in {} s",
          f.item.copy + 1, f.item.vv, f.vsn, f.file, f.drive, f.mover, f.item.attempts,
          why.message(), retry_delay(f.item.attempts).count());
      mark_vsn(f.vsn, std::nullopt, true);
      if (drive != nullptr) view_.unload(*drive);
      retry(f, false);
      return;
  }
}

void Scheduler::retry(InFlight& f, bool front) {
  if (f.staged) {
    f.staged->not_before =
        steady_now() + (front ? std::chrono::seconds(0) : retry_delay(f.staged->attempts));
    stages_.push(std::move(*f.staged));
    return;
  }
  f.item.not_before =
      steady_now() + (front ? std::chrono::seconds(0) : retry_delay(f.item.attempts));
  if (front) {
    queue_.push_front(f.key, std::move(f.item));
  } else {
    queue_.push(f.key, std::move(f.item));
  }
}

Status Scheduler::update_vsn(const std::string& name, const std::function<void(Vsn&)>& change) {
  Vsn vsn;
  auto slot = lookup_vsn(*db_, "name", db::KeyBuilder().text(name), &vsn);
  if (!slot.ok()) return slot.status();
  change(vsn);
  db::Transaction txn;
  txn.update(kVsnTable, *slot, vsn_values(vsn));
  return db_->commit(txn).status();
}

void Scheduler::mark_vsn(const std::string& name, std::optional<VsnState> state, bool count_error) {
  Status s = update_vsn(name, [&](Vsn& vsn) {
    if (state) vsn.state = *state;
    if (count_error) ++vsn.errors;
  });
  if (!s.ok()) log::error("cannot mark VSN {}: {}", name, s.message());
}

void Scheduler::fill_status(rpc::StatusReply* out) const {
  const auto now = steady_now();
  auto age = [now](Clock::time_point t) {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(now - t).count());
  };
  for (const DriveState& d : view_.drives()) {
    rpc::StatusDrive s;
    s.name = d.name;
    s.mover = d.mover;
    s.media = d.media;
    s.vsn = d.vsn;
    s.mounts = d.mounts;
    s.usable = d.unusable_until <= now;
    for (const auto& [id, f] : in_flight_) {
      if (f.drive != d.name) continue;
      s.copying = f.staged ? fmt::format("stage {} from {} file {}", f.item.vv, f.vsn, f.file)
                           : fmt::format("archive {} to {} file {}", f.item.vv, f.vsn, f.file);
      s.bytes_done = f.bytes_done;
      s.bytes_total = f.item.bytes;
    }
    out->drives.push_back(std::move(s));
  }
  out->mounts = view_.mounts();
  for (const auto& q : queue_.summary()) {
    out->queues.push_back({"archive", fmt::format("{} {}", q.key.vv_class, q.key.media), q.files,
                           q.bytes, age(q.oldest), false});
  }
  for (const std::string& vsn : stages_.vsns_by_priority(Clock::time_point::max())) {
    rpc::StatusQueue s{"stage", vsn, stages_.files(vsn), 0, 0, false};
    if (auto oldest = stages_.oldest(vsn)) s.oldest_s = age(*oldest);
    s.waiting = stages_.waiting(vsn);
    s.bytes = stages_.bytes(vsn);
    out->queues.push_back(std::move(s));
  }
}

std::vector<Scheduler::Copying> Scheduler::copying() const {
  std::vector<Copying> out;
  for (const auto& [id, f] : in_flight_) {
    out.push_back({id, f.item.vv, f.vsn, f.drive, f.mover, f.file, f.bytes_done, f.item.bytes});
  }
  return out;
}

rpc::Served<rpc::CopyReport> Scheduler::serve(rpc::Server& server,
                                              std::chrono::milliseconds period) {
  server_ = &server;
  server.every(period, [this] { tick(); });
  return server.handle<rpc::CopyReport>(
      [this](const rpc::CopyReport& r, const rpc::Peer& peer) -> Result<rpc::CopyReportAck> {
        Status s = report(peer, r);
        if (!s.ok()) return s;
        return rpc::CopyReportAck{};
      });
}

// --- stages ---

std::string Scheduler::StageProgress::describe(const std::string& vv) const {
  if (cached) return fmt::format("VV {} is in the cache", vv);
  if (copying) {
    return fmt::format("VV {} is being staged from {} file {} ({} of {} bytes)", vv, vsn, file,
                       bytes_done, bytes_total);
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
  return db_->commit(txn).status();
}

Status Scheduler::record_mount(const DriveState& drive, const std::string& name) {
  return update_vsn(name, [&](Vsn& vsn) {
    vsn.location = "drive:" + drive.name;
    vsn.last_mount = now_unix();
  });
}

Status Scheduler::queue_stage(const Vv& vv, StageItem item) {
  // The best copy: one whose VSN is in a drive already, else the first that has not failed.
  std::optional<size_t> best;
  for (size_t i = 0; i < vv.copies.size(); ++i) {
    if (vv.copies[i].vsn.empty() || item.bad_copies.contains(i)) continue;
    if (!best) best = i;
    if (view_.holding(vv.copies[i].vsn) != nullptr) {
      best = i;
      break;
    }
  }
  if (!best) {
    return Status::Unavailable(
        fmt::format("VV {} has no copy left to stage from ({} of its copies failed their reads)",
                    vv.name, item.bad_copies.size()));
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
  auto slot = lookup_vv(*db_, "name", db::KeyBuilder().text(name), &vv);
  if (!slot.ok()) {
    if (slot.status().code() == Code::kNotFound) {
      return Status::NotFound(fmt::format("no VV {}", name));
    }
    return slot.status();
  }
  if (auto failed = failed_stages_.find(name); failed != failed_stages_.end()) {
    // Fresh news of a stage that failed goes to whoever asks, rather than a new try at once.
    if (steady_now() - failed->second.first < kFailedStageMemory) {
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
    if (f.staged && f.staged->vv == name) {
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
  }
  const std::vector<std::string> order = stages_.vsns_by_priority(now);
  // First a tape that is in a free drive already: no mount, unless it has had its turn while
  // others of its media type wait.
  for (const std::string& vsn : order) {
    DriveState* d = view_.holding(vsn);
    if (d == nullptr || d->busy || d->unusable_until > now || writing.contains(vsn)) continue;
    const bool others_wait = std::any_of(order.begin(), order.end(), [&](const std::string& v) {
      return v != vsn && stages_.media_of(v) == d->media;
    });
    if (others_wait && d->reads_since_mount >= kMountBudget) continue;
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
      // A drive whose tape has stage requests of its own keeps it, unless its turn is over.
      if (!d->vsn.empty() && stages_.files(d->vsn) > 0 && d->reads_since_mount < kMountBudget) {
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
  if (view_.load(drive, item.vsn)) {
    if (Status s = record_mount(drive, item.vsn); !s.ok()) {
      log::error("cannot record VSN {} in drive {}: {}", item.vsn, drive.name, s.message());
      view_.unload(drive);
      stages_.push(std::move(item));
      return false;
    }
    log::info("mount {} ({}) in drive {} of mover {} to stage {} file(s)", item.vsn, item.media,
              drive.name, drive.mover, stages_.files(item.vsn) + 1);
  }
  ++drive.reads_since_mount;

  rpc::CopyArgs args;
  args.drive = drive.name;
  args.vsn = item.vsn;
  args.file_number = item.file;
  args.cache_path = options_.cache_path(vv.name);
  args.file = {vv.vv_class, vv.serial, vv.client_id, vv.size, vv.finished};
  args.checksum = vv.checksum;
  args.reply_to = options_.reply_to;
  args.request_id = next_request_id_++;

  InFlight f;
  f.item.vv = item.vv;
  f.item.copy = item.copy;
  f.item.bytes = vv.size;
  f.key = {vv.vv_class.empty() ? '?' : vv.vv_class[0], item.media};
  f.vsn = item.vsn;
  f.drive = drive.name;
  f.mover = drive.mover;
  f.file = item.file;
  f.staged = std::move(item);
  drive.busy = true;
  log::info("stage VV {} from {} file {} (copy {}) in drive {} (request {})", vv.name, f.vsn,
            f.file, f.item.copy + 1, drive.name, args.request_id);
  send(drive, std::move(f), rpc::Op::kStage, std::move(args), now);
  return true;
}

void Scheduler::stage_done(InFlight f, const rpc::CopyReport& r) {
  if (Status s = set_cache(f.item.vv, CacheState::kCached, true); !s.ok()) {
    // The file is in place; the record says staging, and a restart stages it again.
    log::error("VV {} staged from {} file {}, but the database did not take it: {}", f.item.vv,
               f.vsn, f.file, s.message());
    return;
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady_now() - f.started);
  log::info("staged VV {} from {} file {} ({} bytes in {:.1f} s)", f.item.vv, f.vsn, f.file,
            r.bytes_total, took.count() / 1000.0);
}

void Scheduler::stage_failed(InFlight f, const Status& why) {
  StageItem& item = *f.staged;
  ++item.attempts;
  const bool bad = why.code() == Code::kMismatch;
  if (bad) {
    log::error("VV {}: copy {} on {} file {} failed its checks: {}", item.vv, item.copy + 1, f.vsn,
               f.file, why.message());
    mark_vsn(f.vsn, std::nullopt, true);
  } else {
    log::warning("stage of VV {} from {} file {} (drive {}) failed, attempt {}: {}", item.vv, f.vsn,
                 f.file, f.drive, item.attempts, why.message());
    mark_vsn(f.vsn, std::nullopt, true);
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
    failed_stages_[vv_name] = {steady_now(),
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
