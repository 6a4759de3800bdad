// sched/scheduler.cc: the scheduler's core (sched/scheduler.h): start-up recovery, the tick,
// sending copies to movers and their answers and reports, VSN updates, status; archive.cc,
// stage.cc and mover_watch.cc hold the rest.
#include "sched/scheduler.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include <fmt/core.h>
#include <fmt/format.h>

#include "common/log.h"
#include "sched/policy.h"

namespace vvm::vvmd {

using namespace policy;

std::chrono::seconds Scheduler::retry_delay(uint32_t attempts) {
  if (attempts == 0) return std::chrono::seconds(0);
  const uint32_t shift = std::min<uint32_t>(attempts - 1, 8);
  return std::min(std::chrono::seconds(2u << shift), std::chrono::seconds(300));
}

Scheduler::Scheduler(db::Database* db, const Config& config, Options options, MoverPort* movers)
    : db_(db),
      commits_(db),
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

uint32_t Scheduler::drives_held(char cls, bool reading) const {
  uint32_t n = 0;
  for (const auto& [id, f] : in_flight_) {
    // A tape copy holds a drive to read and one to write.
    n += f.key.vv_class == cls && (f.staged.has_value() == reading || is_tape_copy(f));
  }
  return n;
}

bool Scheduler::may_take_drive(char cls, bool reading) const {
  auto it = config_.classes.find(cls);
  if (it == config_.classes.end()) return true;
  const uint32_t limit = reading ? it->second.read_max_drives : it->second.write_max_drives;
  return limit == 0 || drives_held(cls, reading) < limit;
}

double Scheduler::drive_share(char cls, bool reading) const {
  auto it = config_.classes.find(cls);
  uint32_t limit = it == config_.classes.end()
                       ? 0
                       : (reading ? it->second.read_max_drives : it->second.write_max_drives);
  if (limit == 0) limit = static_cast<uint32_t>(std::max<size_t>(view_.drives().size(), 1));
  return static_cast<double>(drives_held(cls, reading)) / limit;
}

bool Scheduler::stages_want(const std::string& media) const {
  return stages_.wants_media(media, [this](char cls) { return may_take_drive(cls, true); });
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

  // Drives an operator (or vvmd) took down stay down.
  VVM_RETURN_IF_ERROR(scan_state_notes(*db_, "drive", [&](const StateNote& note) {
    DriveState* d = view_.find(note.name);
    if (d != nullptr && note.state == "down") {
      d->down = true;
      log::warning("drive {} is down since {} ({} : {}): 'vvctl drive up {}' brings it back",
                   d->name, note.since, note.by, note.reason, d->name);
    }
    return true;
  }));

  // Repacks go on where they were: what is left is what the VV table still places there.
  std::vector<StateNote> running;  // read first: a scan in progress allows no other read
  VVM_RETURN_IF_ERROR(scan_state_notes(*db_, kRepackNote, [&](const StateNote& note) {
    if (note.state == "running") running.push_back(note);
    return true;
  }));
  for (const StateNote& note : running) {
    Vsn vsn;
    if (!lookup_vsn(*db_, "name", db::KeyBuilder().text(note.name), &vsn).ok()) continue;
    repacks_[note.name] = vsn.media;
    log::info("recovery: the repack of {} (since {}, by {}) goes on", note.name, note.since,
              note.by);
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
  std::vector<std::string> evicted_files;
  VVM_RETURN_IF_ERROR(
      scan_vv(*db_, "name", kEveryName.lo, kEveryName.hi, [&](uint64_t, const Vv& r) {
        if (r.cache == CacheState::kStaging) staging.push_back(r);
        if (r.cache == CacheState::kEvicted && options_.cache_path) {
          std::string path = options_.cache_path(r.name);
          if (std::filesystem::exists(path, ec)) evicted_files.push_back(std::move(path));
        }
        return true;
      }));
  // Evictions cut short: the cache manager removes a VV's file once its eviction is durable, and
  // a vvmd stopped in between leaves the file, which nothing would ever remove (it counts in the
  // cache's use, and an evicted VV is never evicted again).
  for (const auto& path : evicted_files) {
    std::filesystem::remove(path, ec);
    log::info("recovery: removed {}, the file of an evicted VV (an eviction cut short)", path);
  }
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
  // Archived VVs whose class gained a media type since: derived from the catalogue.
  return find_lacking();
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
    release_drives(f);
    Status why = Status::Timeout(
        fmt::format("no report from mover {} for {} s", f.mover, f.stall_margin.count()));
    copy_failed(std::move(f), why);
  }
  if (now - last_mover_check_ >= kMoverCheck) {
    last_mover_check_ = now;
    check_movers();
  }
  drive_repacks(now);
  drive_class_copies(now);
  while (dispatch_stage(now)) {
  }
  cancel_verifies_for_stages(now);
  // One copy at a time, to the queue whose class uses least of its share of drives for writing
  // (the oldest copy first among equals), so that one class's backlog cannot take every drive.
  for (bool moved = true; moved;) {
    moved = false;
    std::vector<QueueKey> keys = queue_.keys_oldest_first();
    std::stable_sort(keys.begin(), keys.end(), [this](const QueueKey& a, const QueueKey& b) {
      return drive_share(a.vv_class, false) < drive_share(b.vv_class, false);
    });
    for (const QueueKey& key : keys) {
      // Stages go first: their media type's drives are theirs until the stage queue lets go.
      if (stages_want(key.media)) continue;
      if (dispatch(key, now)) {
        moved = true;
        break;
      }
    }
  }
  // Verifies last: they take the drives nothing else wanted.
  scrub(now);
  while (dispatch_verify(now)) {
  }
}

std::pair<rpc::CopyArgs, Scheduler::InFlight> Scheduler::copy_request(
    const Vv& vv, ArchiveItem item, const QueueKey& key, DriveState& drive, const std::string& vsn,
    uint64_t file) {
  rpc::CopyArgs args;
  args.drive = drive.name;
  args.vsn = vsn;
  args.file_number = file;
  args.file = {vv.vv_class, vv.serial, vv.client_id, vv.size, vv.finished};
  args.reply_to = reply_to(drive.mover);
  args.request_id = next_request_id_++;

  InFlight f;
  f.item = std::move(item);
  f.key = key;
  f.vsn = vsn;
  f.drive = drive.name;
  f.mover = drive.mover;
  f.file = file;
  drive.busy = true;
  return {std::move(args), std::move(f)};
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
  f.job_id = id;
  rpc::TapeCopyRequest tape_copy{{}, f.from_drive, f.item.from_vsn, f.item.from_file};
  in_flight_.emplace(id, std::move(f));
  auto done = [this, id](Result<rpc::CopyAccepted> answer) { accepted(id, std::move(answer)); };
  if (op == rpc::Op::kArchive) {
    movers_->archive(drive.mover_endpoint, args, std::move(done));
  } else if (op == rpc::Op::kTapeCopy) {
    tape_copy.to = std::move(args);
    movers_->tape_copy(drive.mover_endpoint, tape_copy, std::move(done));
  } else if (op == rpc::Op::kVerify) {
    movers_->verify(drive.mover_endpoint, args, std::move(done));
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
  release_drives(f);
  if (drive != nullptr) {
    if (why.code() == Code::kBusy) {
      drive->unusable_until = now + kBusyPause;
      if (DriveState* from = view_.find(f.from_drive)) from->unusable_until = now + kBusyPause;
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
    // A failed attempt on that VSN and drive for the metrics, though not an error of the VSN.
    metrics().copy_failed(is_verify(f) ? "verify" : f.staged ? "stage" : "archive", f.vsn, f.drive);
    log::error("mover {} refused copy {} of VV {} to {}: {}", f.mover, f.item.copy + 1, f.item.vv,
               f.vsn, why.message());
    if (is_tape_copy(f)) {
      // A mover that cannot copy tape to tape (an older one, say): the move goes through the
      // cache.
      move_setbacks_[f.item.vv].through_cache =
          fmt::format("mover {} refused the tape copy: {}", f.mover, why.message());
    }
    ++(f.staged ? f.staged->attempts : f.item.attempts);
    retry(f, false);
  }
  wake();
}

Status Scheduler::report(const rpc::Peer& peer, const rpc::CopyReport& r) {
  // Over TLS the identity's role says it is a mover; its uid, never root, says nothing of that.
  if (peer.kind == Endpoint::Kind::kTls) {
    if (peer.role != "mover") {
      return Status::PermissionDenied(
          fmt::format("copy reports over TLS come from identities of role mover; not from {}",
                      peer.to_string()));
    }
  } else if (peer.has_user() && peer.uid != 0 && peer.uid != options_.daemon_uid) {
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
  release_drives(done);
  done.failed_vsn = r.vsn;
  done.cache_at_fault = r.state == rpc::CopyState::kFailed && r.vsn.empty() && done.staged &&
                        !is_verify(done) && !is_tape_copy(done);
  if (r.state == rpc::CopyState::kDone) {
    copy_done(std::move(done), r);
  } else {
    copy_failed(std::move(done),
                r.failure.ok() ? Status::Internal("failed, no reason given") : r.failure);
  }
  wake();
  return Status::Ok();
}

void Scheduler::release_drives(const InFlight& f, bool unload) {
  for (const std::string* name : {&f.drive, &f.from_drive}) {
    if (DriveState* d = view_.find(*name)) {
      d->busy = false;
      if (unload) view_.unload(*d);
    }
  }
}

void Scheduler::retry(InFlight& f, bool front) {
  if (is_tape_copy(f)) {
    // Never queued: the repack starts the move again once its pause is over (drive_repacks).
    MoveSetback& back = move_setbacks_[f.item.vv];
    back.attempts = f.item.attempts;
    back.not_before =
        steady_now() + (front ? std::chrono::seconds(0) : retry_delay(f.item.attempts));
    return;
  }
  if (f.staged) {
    f.staged->not_before =
        steady_now() + (front ? std::chrono::seconds(0) : retry_delay(f.staged->attempts));
    (is_verify(f) ? verifies_ : stages_).push(std::move(*f.staged));
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

bool Scheduler::vsn_disabled(const std::string& name) const {
  Vsn vsn;
  return lookup_vsn(*db_, "name", db::KeyBuilder().text(name), &vsn).ok() &&
         vsn.state == VsnState::kDisabled;
}

Status Scheduler::update_vsn(const std::string& name, const std::function<void(Vsn&)>& change) {
  Vsn vsn;
  auto slot = lookup_vsn(*db_, "name", db::KeyBuilder().text(name), &vsn);
  if (!slot.ok()) return slot.status();
  change(vsn);
  db::Transaction txn;
  txn.update(kVsnTable, *slot, vsn_values(vsn));
  return commits_.apply(txn, "VSN " + name);
}

void Scheduler::copy_error(const std::string& drive_name, const std::string& vsn, bool vsn_fault,
                           const Status& why) {
  if (DriveState* d = view_.find(drive_name); d != nullptr && !vsn_fault) {
    if (++d->errors_in_row >= kDriveErrorsInRow && !d->down) {
      const std::string reason = fmt::format("{} failed copies in a row, the last on {}: {}",
                                             d->errors_in_row, vsn, why.message());
      if (Status s = note_drive(*d, false, "vvmd", reason); !s.ok()) {
        log::error("drive {}: cannot record it down: {}", d->name, s.message());
      }
      log::error("drive {} (mover {}) taken down: {}; check it, then 'vvctl drive up {}'", d->name,
                 d->mover, reason, d->name);
    }
  }
  if (vsn.empty()) return;
  uint32_t& row = vsn_errors_in_row_[vsn];
  if (++row < kVsnErrorsInRow) return;
  Vsn v;
  if (!lookup_vsn(*db_, "name", db::KeyBuilder().text(vsn), &v).ok()) return;
  if (v.state != VsnState::kBlank && v.state != VsnState::kHot && v.state != VsnState::kFull) {
    return;  // an operator's state stays
  }
  const std::string reason =
      fmt::format("{} failed copies in a row, the last: {}", row, why.message());
  Status s = update_vsn(vsn, [](Vsn& r) { r.state = VsnState::kReadOnly; });
  db::Transaction txn;
  if (s.ok()) {
    s = set_state_note(
        *db_, txn,
        {"vsn", vsn, std::string(vsn_state_name(VsnState::kReadOnly)), now_unix(), "vvmd", reason});
  }
  if (s.ok()) s = commits_.apply(txn, "VSN " + vsn + "'s state note");
  if (!s.ok()) return log::error("VSN {}: cannot make it read-only: {}", vsn, s.message());
  log::error("VSN {} set read-only: {}; 'vvctl vsn set {} hot --reason TEXT' to write it again",
             vsn, reason, vsn);
}

void Scheduler::copy_ok(const std::string& drive_name, const std::string& vsn) {
  if (DriveState* d = view_.find(drive_name)) d->errors_in_row = 0;
  vsn_errors_in_row_.erase(vsn);
}

Status Scheduler::note_drive(DriveState& d, bool up, const std::string& by,
                             const std::string& reason) {
  db::Transaction txn;
  VVM_RETURN_IF_ERROR(
      set_state_note(*db_, txn, {"drive", d.name, up ? "up" : "down", now_unix(), by, reason}));
  VVM_RETURN_IF_ERROR(commits_.apply(txn, "drive " + d.name + "'s state"));
  d.down = !up;
  d.errors_in_row = 0;
  if (!up && !d.busy && !d.vsn.empty()) {
    // Its tape counts as in no drive: a stage of it mounts it elsewhere.
    const std::string vsn = d.vsn;
    view_.unload(d);
    (void)update_vsn(vsn, [](Vsn& r) { r.location = "slot"; });
  }
  wake();
  return Status::Ok();
}

Result<rpc::DriveDetail> Scheduler::set_drive(const rpc::Peer& peer,
                                              const rpc::DriveSetRequest& req) {
  const char* what = req.up ? "bring up" : "take down";
  if (!peer.has_user()) {
    return Status::PermissionDenied(
        fmt::format("cannot {} drive {} for a TCP peer ({}): over TCP vvmd cannot tell who you "
                    "are; use vvmd's Unix socket",
                    what, req.drive, peer.address));
  }
  if (peer.uid != 0 && peer.uid != options_.daemon_uid) {
    return Status::PermissionDenied(
        fmt::format("{} may not {} drive {}: only root and vvmd's user ({}) may",
                    user_name(peer.uid), what, req.drive, user_name(options_.daemon_uid)));
  }
  DriveState* d = view_.find(req.drive);
  if (d == nullptr) {
    std::string names;
    for (const DriveState& x : view_.drives()) names += (names.empty() ? "" : ", ") + x.name;
    return Status::NotFound(fmt::format("no drive {} (vvm.conf's drives: {})", req.drive,
                                        names.empty() ? "none" : names));
  }
  if (!req.up && req.reason.empty()) {
    return Status::InvalidArgument(
        fmt::format("drive {}: say why it goes down (--reason TEXT)", req.drive));
  }
  const bool was_down = d->down;
  VVM_RETURN_IF_ERROR(note_drive(*d, req.up, user_name(peer.uid), req.reason));
  log::notice("drive {} {} by {}{}{}", d->name,
              req.up ? (was_down ? "brought up" : "up (it was)")
                     : (was_down ? "down (it was)" : "taken down"),
              user_name(peer.uid), req.reason.empty() ? "" : ": ", req.reason);
  for (const auto& detail : drives().drives) {
    if (detail.name == d->name) return detail;
  }
  return Status::Internal("drive " + d->name + " vanished");
}

rpc::DriveListReply Scheduler::drives() const {
  rpc::DriveListReply reply;
  for (const DriveState& d : view_.drives()) {
    rpc::DriveDetail out{d.name, d.mover, d.media, !d.down, 0, "", "", d.errors_in_row};
    StateNote note;
    if (find_state_note(*db_, "drive", d.name, &note).ok()) {
      out.since = note.since;
      out.by = note.by;
      out.reason = note.reason;
    }
    reply.drives.push_back(std::move(out));
  }
  return reply;
}

rpc::Served<rpc::DriveSetRequest, rpc::DriveListRequest> Scheduler::serve_drives(
    rpc::Server& server) {
  return server.handle<rpc::DriveSetRequest>(
             [this](const rpc::DriveSetRequest& r, const rpc::Peer& peer) {
               return set_drive(peer, r);
             }) +
         server.handle<rpc::DriveListRequest>(
             [this](const rpc::DriveListRequest&, const rpc::Peer&) -> Result<rpc::DriveListReply> {
               return drives();
             });
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
    s.usable = d.unusable_until <= now && !d.down;
    for (const auto& [id, f] : in_flight_) {
      if (f.drive != d.name && f.from_drive != d.name) continue;
      if (is_tape_copy(f)) {
        s.copying = fmt::format("{}: tape copy {} from {} file {} ({}) to {} file {} ({})",
                                f.class_copy ? fmt::format("class {}", f.key.vv_class) : "repack",
                                f.item.vv, f.item.from_vsn, f.item.from_file, f.from_drive, f.vsn,
                                f.file, f.drive);
      } else if (is_verify(f)) {
        s.copying = fmt::format("{} {} on {} file {}", f.staged->how, f.item.vv, f.vsn, f.file);
      } else if (f.staged) {
        s.copying =
            fmt::format("{} {} from {} file {}", f.staged->background ? "repack: stage" : "stage",
                        f.item.vv, f.vsn, f.file);
      } else if (!f.item.from_vsn.empty()) {
        s.copying = fmt::format("repack: move {} from {} file {} to {} file {}", f.item.vv,
                                f.item.from_vsn, f.item.from_file, f.vsn, f.file);
      } else {
        s.copying = fmt::format("archive {} to {} file {}", f.item.vv, f.vsn, f.file);
      }
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
  for (const std::string& vsn : verifies_.vsns_by_priority(Clock::time_point::max())) {
    rpc::StatusQueue s{"verify", vsn, verifies_.files(vsn), verifies_.bytes(vsn), 0, false};
    if (auto oldest = verifies_.oldest(vsn)) s.oldest_s = age(*oldest);
    out->queues.push_back(std::move(s));
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

}  // namespace vvm::vvmd
