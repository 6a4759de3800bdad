// sched/repack.cc: the scheduler's repack half: a VSN's live copies moved to other VSNs of its
// media type, and an emptied VSN made writable again (sched/scheduler.h).
//
// A VV in the cache is written from there at once: an archive copy that names the place it
// replaces (ArchiveItem::from_vsn), due at once, to any VSN that may take the class's copies but
// the one being repacked. A VV not in the cache is copied tape to tape (TAPE_COPY: one copy
// process of one mover holds a drive for each tape, reads the old file, checks it as a stage
// does and writes the new one as an archive does, so every byte moves once) when a mover has two
// drives of the media type up (try_tape_copy()); while their drives, the tapes or the class's
// share of drives are busy, it waits for them. Otherwise (no mover with two such drives, a mover
// that refused the tape copy, or a tape copy that failed reading the old copy) the move goes
// through the cache, logged once with why: a background stage (stage_queue.h, which checks the
// copy, marks it bad if it is, and reads another copy if there is one) that leaves the drives of
// its media type to archive writes, then the archive write. Either way copy_done() commits the
// VV's copy at its new place and the old tape file dead ("repacked to VSN file N", copy.tab) in
// one transaction; a move that fails leaves the old copy live. At most kRepackWindow copies of a
// repack are on their way at once, taken in file order: the cache holds no more VVs than that
// for it, and the source tape is read front to back.
//
// A repack is a note in the state table (kind "move", kRepackNote; the VSN; "running"), committed
// before the request is answered: a vvmd that restarts finds it and goes on, since what is left to
// move is what the VV table still places on the VSN. A copy on its way when vvmd or a mover died is
// moved again (first in file order, so the same copy goes first to the tape it was being written
// to: the mover finds its file there, the same copy, and writes it again). Once nothing live is
// left, the VSN is set reclaim and the note done, in one commit.
#include <algorithm>
#include <map>
#include <set>

#include <fmt/core.h>

#include "common/log.h"
#include "sched/policy.h"
#include "sched/scheduler.h"

namespace vvm::vvmd {

using namespace policy;

namespace {
constexpr std::string_view kRunning = "running";
constexpr std::string_view kDone = "done";
constexpr std::string_view kReclaimed = "reclaimed";
}  // namespace

Status Scheduler::privileged(const rpc::Peer& peer, const std::string& what) const {
  if (peer.kind != Endpoint::Kind::kUnix) {
    return Status::PermissionDenied(
        fmt::format("cannot {} for a TCP peer ({}): over TCP vvmd cannot tell who you are; use "
                    "vvmd's Unix socket",
                    what, peer.address));
  }
  if (peer.uid != 0 && peer.uid != options_.daemon_uid) {
    return Status::PermissionDenied(fmt::format("{} may not {}: only root and vvmd's user ({}) may",
                                                user_name(peer.uid), what,
                                                user_name(options_.daemon_uid)));
  }
  return Status::Ok();
}

Result<std::vector<Scheduler::LiveCopy>> Scheduler::live_copies(const std::string& vsn) const {
  std::vector<LiveCopy> out;
  const std::string lo = db::KeyBuilder().text(vsn);
  std::string hi = lo;
  hi.back() = static_cast<char>(hi.back() + 1);  // past every key of this VSN's text
  VVM_RETURN_IF_ERROR(scan_vv(*db_, "vsn", lo, hi, [&](uint64_t, const Vv& vv) {
    for (size_t i = 0; i < vv.copies.size(); ++i) {
      if (vv.copies[i].vsn != vsn) continue;
      // The index has a key a copy: a VV with two copies there is seen twice.
      const bool seen = std::any_of(out.begin(), out.end(), [&](const LiveCopy& c) {
        return c.vv == vv.name && c.copy == i;
      });
      if (seen) continue;
      out.push_back({vv.name, vv.vv_class.empty() ? '?' : vv.vv_class[0], i, vv.copies[i].file,
                     vv.size, vv.cache});
    }
    return true;
  }));
  std::sort(out.begin(), out.end(),
            [](const LiveCopy& a, const LiveCopy& b) { return a.file < b.file; });
  return out;
}

Status Scheduler::stage_for_repack(const std::string& name) {
  Vv vv;
  VVM_RETURN_IF_ERROR(find_vv(*db_, name, &vv).status());
  if (auto failed = failed_stages_.find(name); failed != failed_stages_.end()) {
    if (steady_now() < failed->second.first) return Status::Unavailable(failed->second.second);
    failed_stages_.erase(failed);
  }
  if (vv.cache != CacheState::kEvicted || stages_.contains(name)) return Status::Ok();
  VVM_RETURN_IF_ERROR(set_cache(name, CacheState::kStaging, false));
  StageItem item;
  item.vv = name;
  item.background = true;
  item.queued = item.not_before = steady_now();
  if (Status s = queue_stage(vv, std::move(item)); !s.ok()) {
    (void)set_cache(name, CacheState::kEvicted, false);
    return s;
  }
  const StageItem* queued = stages_.find(name);
  log::info("repack: stage VV {} ({} bytes) from {} file {}", name, vv.size, queued->vsn,
            queued->file);
  return Status::Ok();
}

Scheduler::TapeCopyStart Scheduler::try_tape_copy(const LiveCopy& c, const std::string& vsn,
                                                  const std::string& media, Clock::time_point now,
                                                  std::string* why) {
  if (auto back = move_setbacks_.find(c.vv); back != move_setbacks_.end()) {
    // A move that failed waits for its pause either way.
    if (back->second.not_before > now) return TapeCopyStart::kWait;
    if (!back->second.through_cache.empty()) {
      *why = back->second.through_cache;
      return TapeCopyStart::kThroughCache;
    }
  }
  // A mover with a drive up for each tape; the drives' being busy now is no reason to go
  // through the cache, which would need them too.
  std::map<std::string, size_t> up;
  for (const DriveState& d : view_.drives()) up[d.mover] += d.media == media && !d.down;
  if (std::none_of(up.begin(), up.end(), [](const auto& m) { return m.second >= 2; })) {
    *why = fmt::format("no mover has two {} drives up, one for each tape", media);
    return TapeCopyStart::kThroughCache;
  }
  // A tape disabled since the repack began is never mounted: the move waits until it is readable.
  if (vsn_disabled(vsn)) return TapeCopyStart::kWait;
  // Client stages first, and the class within its share of drives for reading and for writing.
  if (stages_want(media) || !may_take_drive(c.vv_class, true) ||
      !may_take_drive(c.vv_class, false)) {
    return TapeCopyStart::kWait;
  }
  for (const auto& [id, f] : in_flight_) {
    if ((f.staged && f.vsn == vsn) || (is_tape_copy(f) && f.item.from_vsn == vsn)) {
      return TapeCopyStart::kWait;  // the old tape is being read
    }
  }
  bool any_busy = false;
  std::vector<Vsn> targets = writable_vsns(c.vv_class, media, &any_busy);
  if (targets.empty()) {
    if (any_busy) return TapeCopyStart::kWait;
    // The archive queue says why no tape takes it, and waits for one.
    *why = fmt::format("no other {} tape can take class {}'s copies now", media, c.vv_class);
    return TapeCopyStart::kThroughCache;
  }
  for (const auto& [mover, drives_up] : up) {
    if (drives_up < 2) continue;
    DriveState *from = nullptr, *to = nullptr;
    const Vsn* target = nullptr;
    if (!pick_tape_copy_drives(mover, vsn, media, media, targets, now, &from, &to, &target)) {
      continue;
    }
    Vv vv;
    auto slot = lookup_vv(*db_, "name", db::KeyBuilder().text(c.vv), &vv);
    if (!slot.ok() || vv.copies[c.copy].vsn != vsn || vv.copies[c.copy].file != c.file ||
        vv.cache != CacheState::kEvicted) {
      return TapeCopyStart::kWait;  // changed meanwhile: the next look sees how
    }
    ArchiveItem item{c.vv, c.copy, vv.size, now, now, 0, vsn, c.file};
    if (auto back = move_setbacks_.find(c.vv); back != move_setbacks_.end()) {
      item.attempts = back->second.attempts;
    }
    const bool sent =
        send_tape_copy(vv, std::move(item), {c.vv_class, media}, *from, *to, *target, false, now);
    return sent ? TapeCopyStart::kStarted : TapeCopyStart::kWait;
  }
  return TapeCopyStart::kWait;
}

bool Scheduler::pick_tape_copy_drives(const std::string& mover, const std::string& from_vsn,
                                      const std::string& from_media, const std::string& to_media,
                                      const std::vector<Vsn>& targets, Clock::time_point now,
                                      DriveState** from, DriveState** to, const Vsn** target) {
  *from = *to = nullptr;
  *target = targets.empty() ? nullptr : &targets.front();
  if (*target == nullptr) return false;
  auto usable = [&](const DriveState* d, const std::string& media) {
    return d != nullptr && d->mover == mover && d->media == media && !d->down && !d->busy &&
           d->unusable_until <= now;
  };
  // Tapes already in these drives stay there: no mount.
  if (DriveState* d = view_.holding(from_vsn); usable(d, from_media)) *from = d;
  for (const Vsn& t : targets) {
    DriveState* d = view_.holding(t.name);
    if (usable(d, to_media) && d != *from) {
      *to = d;
      *target = &t;
      break;
    }
  }
  for (DriveState* d : view_.free_drives(from_media, now)) {
    if (*from != nullptr) break;
    if (d->mover == mover && d != *to) *from = d;
  }
  for (DriveState* d : view_.free_drives(to_media, now)) {
    if (*to != nullptr) break;
    if (d->mover == mover && d != *from) *to = d;
  }
  return *from != nullptr && *to != nullptr;
}

bool Scheduler::send_tape_copy(const Vv& vv, ArchiveItem item, const QueueKey& key,
                               DriveState& from, DriveState& to, const Vsn& target, bool class_copy,
                               Clock::time_point now) {
  const std::string what = class_copy
                               ? fmt::format("class {}'s new {} copies", key.vv_class, key.media)
                               : "the repack of " + item.from_vsn;
  for (DriveState* d : {&from, &to}) {
    const std::string& tape = d == &from ? item.from_vsn : target.name;
    if (!mount(*d, tape, d->media, "for " + what)) return false;
  }
  auto [args, f] = copy_request(vv, std::move(item), key, to, target.name, target.next_file);
  args.checksum = vv.checksum;
  f.from_drive = from.name;
  f.class_copy = class_copy;
  from.busy = true;
  log::info(
      "{}: copy {} of VV {} ({} bytes) from {} file {} to {} file {}, tape to tape in drives {} "
      "and {} of mover {} (request {})",
      class_copy ? fmt::format("class {}", key.vv_class) : "repack", f.item.copy + 1, vv.name,
      vv.size, f.item.from_vsn, f.item.from_file, target.name, target.next_file, from.name, to.name,
      to.mover, args.request_id);
  send(to, std::move(f), rpc::Op::kTapeCopy, std::move(args), now);
  return true;
}

void Scheduler::tape_copy_failed(InFlight f, const Status& why) {
  const std::string& from = f.item.from_vsn;
  const std::string who = f.class_copy ? fmt::format("class {}", f.key.vv_class) : "repack";
  ++f.item.attempts;
  if (!f.failed_vsn.empty() && f.failed_vsn == from) {
    // The old copy's read: it stays where it is, live, and the copy goes through the cache,
    // whose stage checks it (a copy that fails its checks there is marked bad and another read).
    log::error(
        "{}: tape copy of VV {} from {} file {} (drive {}) to {} failed reading {}: {}; the "
        "copy stays live on {}, and the {} goes through the cache (a stage, then an archive "
        "write)",
        who, f.item.vv, from, f.item.from_file, f.from_drive, f.vsn, from, why.message(), from,
        f.class_copy ? "new copy" : "move");
    if (why.code() == Code::kMismatch) {
      copy_error("", from, true, why);
    } else {
      mark_vsn(from, std::nullopt, true);
      copy_error(f.from_drive, from, false, why);
      if (DriveState* d = view_.find(f.from_drive)) view_.unload(*d);
    }
    MoveSetback& back = move_setbacks_[f.item.vv];
    back.through_cache = fmt::format("its tape copy failed reading {} file {}: {}", from,
                                     f.item.from_file, why.message());
    retry(f, false);
    return;
  }
  if (!f.failed_vsn.empty() && f.failed_vsn == f.vsn) {
    // The new tape's write: as for an archive write, and tape to tape again.
    DriveState* drive = view_.find(f.drive);
    switch (why.code()) {
      case Code::kNoSpace:
        log::notice("VSN {} is full ({}): the {} of VV {} goes to another VSN", f.vsn,
                    why.message(), f.class_copy ? "new copy" : "move", f.item.vv);
        mark_vsn(f.vsn, VsnState::kFull, false);
        --f.item.attempts;
        retry(f, true);
        return;
      case Code::kMismatch:
        log::error(
            "VSN {} is not as vvmd's database says ({}): no more writes to it (marked full); "
            "check it with 'vvtape ls'. The {} of VV {} goes to another VSN",
            f.vsn, why.message(), f.class_copy ? "new copy" : "move", f.item.vv);
        mark_vsn(f.vsn, VsnState::kFull, true);
        if (drive != nullptr) view_.unload(*drive);
        retry(f, true);
        return;
      default: break;
    }
    mark_vsn(f.vsn, std::nullopt, true);
    copy_error(f.drive, f.vsn, false, why);
    if (drive != nullptr) view_.unload(*drive);
  } else {
    // Killed, stalled, or no report: neither tape is known to be at fault.
    release_drives(f, /*unload=*/true);
  }
  if (f.item.attempts >= kFailedCopyAttempts) {
    move_setbacks_[f.item.vv].through_cache =
        fmt::format("its tape copy failed {} times, the last: {}", f.item.attempts, why.message());
  }
  log::warning(
      "{}: tape copy of VV {} from {} file {} to {} file {} (drives {} and {}, mover {}) "
      "failed, attempt {}: {}; retrying in {} s",
      who, f.item.vv, from, f.item.from_file, f.vsn, f.file, f.from_drive, f.drive, f.mover,
      f.item.attempts, why.message(), retry_delay(f.item.attempts).count());
  retry(f, false);
}

void Scheduler::drive_repacks(Clock::time_point now) {
  std::vector<std::string> ended;
  for (const auto& [vsn, media] : repacks_) {
    auto live = live_copies(vsn);
    if (!live.ok()) {
      log::error("repack of {}: {}", vsn, live.status().message());
      continue;
    }
    auto moving = [&](const LiveCopy& c) {
      if (queue_.contains(c.vv, c.copy) || stages_.contains(c.vv)) return true;
      return std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& f) {
        return f.second.item.vv == c.vv && !is_verify(f.second) &&
               (f.second.staged || f.second.item.copy == c.copy);
      });
    };
    if (live->empty()) {
      const bool busy = std::any_of(in_flight_.begin(), in_flight_.end(),
                                    [&](const auto& f) { return f.second.item.from_vsn == vsn; });
      if (!busy) ended.push_back(vsn);
      continue;
    }
    size_t on_way = 0;
    for (const LiveCopy& c : *live) {
      if (moving(c) || c.cache == CacheState::kStaging) ++on_way;
    }
    for (const LiveCopy& c : *live) {
      if (on_way >= kRepackWindow) break;
      if (moving(c) || c.cache == CacheState::kStaging) continue;
      // A copy's media type is its tape's, wherever its slot (sched/class_copies.h): moved to
      // another tape of that type, an extra one included, for as long as vvm.conf has its class.
      if (!config_.classes.contains(c.vv_class)) continue;
      if (c.cache == CacheState::kCached) {
        ArchiveItem item{c.vv, c.copy, c.bytes, now, now, 0, vsn, c.file};
        queue_.push({c.vv_class, media}, std::move(item));
        ++on_way;
      } else if (c.cache == CacheState::kEvicted) {
        std::string why;
        const TapeCopyStart tape = try_tape_copy(c, vsn, media, now, &why);
        if (tape == TapeCopyStart::kStarted) {
          ++on_way;
          continue;
        }
        if (tape == TapeCopyStart::kWait) continue;
        if (MoveSetback& back = move_setbacks_[c.vv]; !back.logged) {
          back.logged = true;
          log::info(
              "repack: VV {} ({} file {}) is moved through the cache (a stage, then an "
              "archive write), not tape to tape: {}",
              c.vv, vsn, c.file, why);
        }
        if (Status s = stage_for_repack(c.vv); !s.ok()) {
          log::warning("repack of {}: VV {} cannot be read now: {}", vsn, c.vv, s.message());
          continue;
        }
        ++on_way;
      }
    }
  }
  for (const std::string& vsn : ended) {
    uint64_t moved = 0;
    (void)scan_copy_marks_on_vsn(*db_, vsn, [&](uint64_t, const CopyMark& m) {
      moved += m.state == CopyMarkState::kDead && m.why.starts_with(kRepackedTo);
      return true;
    });
    end_repack(vsn, moved);
  }
}

void Scheduler::end_repack(const std::string& name, uint64_t moved) {
  Vsn vsn;
  auto slot = lookup_vsn(*db_, "name", db::KeyBuilder().text(name), &vsn);
  if (!slot.ok()) {
    log::error("repack of {}: {}", name, slot.status().message());
    repacks_.erase(name);
    return;
  }
  StateNote note;
  if (!find_state_note(*db_, kRepackNote, name, &note).ok())
    note = {kRepackNote, name, "", 0, "", ""};
  const std::string reason = fmt::format("repacked: {} file(s) moved off it", moved);
  vsn.state = VsnState::kReclaim;
  db::Transaction txn;
  txn.update(kVsnTable, *slot, vsn_values(vsn));
  Status s = set_state_note(*db_, txn,
                            {"vsn", name, std::string(vsn_state_name(VsnState::kReclaim)),
                             now_unix(), note.by.empty() ? "vvmd" : note.by, reason});
  note.state = std::string(kDone);
  if (s.ok()) s = set_state_note(*db_, txn, note);
  if (s.ok()) s = commits_.apply(txn, "the end of " + name + "'s repack");
  if (!s.ok()) {
    log::error("repack of {}: cannot record its end: {}", name, s.message());
    return;  // tried again on the next tick
  }
  repacks_.erase(name);
  log::notice(
      "repack of {} done: {} file(s) moved; it is reclaim now ('vvctl vsn reclaim {}' "
      "writes it again from file 1)",
      name, moved, name);
}

rpc::RepackInfo Scheduler::repack_info(const StateNote& note) const {
  rpc::RepackInfo info;
  info.vsn = note.name;
  info.state = note.state;
  info.since = note.since;
  info.by = note.by;
  if (auto it = repacks_.find(note.name); it != repacks_.end()) info.media = it->second;
  Vsn vsn;
  if (info.media.empty() && lookup_vsn(*db_, "name", db::KeyBuilder().text(note.name), &vsn).ok()) {
    info.media = vsn.media;
  }
  if (auto live = live_copies(note.name); live.ok()) {
    for (const LiveCopy& c : *live) {
      ++info.files_left;
      info.bytes_left += c.bytes;
      const bool on_way = queue_.contains(c.vv, c.copy) || stages_.contains(c.vv) ||
                          c.cache == CacheState::kStaging ||
                          std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& f) {
                            return f.second.item.vv == c.vv && !is_verify(f.second) &&
                                   (f.second.staged || f.second.item.copy == c.copy);
                          });
      info.files_moving += on_way;
    }
  }
  (void)scan_copy_marks_on_vsn(*db_, note.name, [&](uint64_t, const CopyMark& m) {
    if (m.state == CopyMarkState::kDead && m.why.starts_with(kRepackedTo)) {
      ++info.files_moved;
      info.bytes_moved += m.size;
    }
    return true;
  });
  return info;
}

Result<rpc::RepackListReply> Scheduler::repacks() const {
  // The notes first: repack_info() reads other tables, which a scan in progress would not let it.
  std::vector<StateNote> notes;
  VVM_RETURN_IF_ERROR(scan_state_notes(*db_, kRepackNote, [&](const StateNote& note) {
    notes.push_back(note);
    return true;
  }));
  rpc::RepackListReply reply;
  for (const StateNote& note : notes) reply.repacks.push_back(repack_info(note));
  return reply;
}

void Scheduler::repack(const rpc::Peer& peer, const rpc::VsnRepackRequest& req,
                       std::function<void(Result<rpc::RepackInfo>)> done) {
  if (Status s = privileged(peer, "repack VSN " + req.vsn); !s.ok()) return done(s);
  Vsn vsn;
  if (auto slot = find_vsn(*db_, req.vsn, &vsn); !slot.ok()) return done(slot.status());
  if (repacks_.contains(vsn.name)) {
    StateNote note;
    (void)find_state_note(*db_, kRepackNote, vsn.name, &note);
    return done(Status::Busy(fmt::format(
        "VSN {} is being repacked already (asked for by {}): 'vvctl status' shows how far",
        vsn.name, note.by.empty() ? "vvmd" : note.by)));
  }
  if (vsn.state == VsnState::kDisabled) {
    return done(Status::InvalidArgument(
        fmt::format("cannot repack VSN {}: it is disabled, never mounted, so it cannot be read; "
                    "'vvctl vsn set {} read-only --reason TEXT' first",
                    vsn.name, vsn.name)));
  }
  auto live = live_copies(vsn.name);
  if (!live.ok()) return done(live.status());
  // Every class whose copies live there needs another VSN of the media type to take them.
  std::map<char, uint64_t> by_class;
  uint64_t bytes = 0;
  for (const LiveCopy& c : *live) {
    ++by_class[c.vv_class];
    bytes += c.bytes;
  }
  for (const auto& [cls, files] : by_class) {
    bool target = false;
    Status bad;
    Status s = db_->scan_index(kVsnTable, "name", kEveryName.lo, kEveryName.hi,
                               [&](uint64_t, const db::Values& v) {
                                 auto r = vsn_from_values(v);
                                 if (!r.ok()) {
                                   bad = r.status();
                                   return false;
                                 }
                                 target = r->name != vsn.name && can_take(*r, cls, vsn.media);
                                 return !target;
                               });
    if (!s.ok() || !bad.ok()) return done(!s.ok() ? s : bad);
    if (!target) {
      return done(Status::Unavailable(fmt::format(
          "cannot repack VSN {}: no other {} tape can take its {} live file(s) of class {} (one "
          "blank, or hot of class {}, not failing); add one with 'vvctl vsn add VSN --media {} "
          "--class {}'",
          vsn.name, vsn.media, files, cls, cls, vsn.media, cls)));
    }
  }
  StateNote note{kRepackNote,
                 vsn.name,
                 std::string(kRunning),
                 now_unix(),
                 user_name(peer.uid),
                 fmt::format("{} live file(s), {} bytes, at the start", live->size(), bytes)};
  db::Transaction txn;
  if (Status s = set_state_note(*db_, txn, note); !s.ok()) return done(s);
  // Taken now, so that nothing is written to it from here on; given back if the commit fails.
  repacks_[vsn.name] = vsn.media;
  commits_.commit(txn, [this, note, done = std::move(done)](auto committed) {
    if (!committed.ok()) {
      repacks_.erase(note.name);
      return done(committed.status());
    }
    log::notice("repack of {} started by {}: {}", note.name, note.by, note.reason);
    wake();
    done(repack_info(note));
  });
}

void Scheduler::reclaim(const rpc::Peer& peer, const rpc::VsnReclaimRequest& req,
                        std::function<void(Result<rpc::VsnReclaimReply>)> done) {
  if (Status s = privileged(peer, "reclaim VSN " + req.vsn); !s.ok()) return done(s);
  Vsn vsn;
  auto slot = find_vsn(*db_, req.vsn, &vsn);
  if (!slot.ok()) return done(slot.status());
  if (repacks_.contains(vsn.name)) {
    return done(Status::Busy(fmt::format(
        "VSN {} is being repacked: it is reclaimed once that is done ('vvctl status' shows how "
        "far)",
        vsn.name)));
  }
  if (vsn.state != VsnState::kReclaim) {
    return done(Status::InvalidArgument(fmt::format(
        "VSN {} is {}: only a tape in state reclaim is reclaimed ('vvctl vsn repack {}' empties "
        "it and sets it so)",
        vsn.name, vsn_state_name(vsn.state), vsn.name)));
  }
  auto live = live_copies(vsn.name);
  if (!live.ok()) return done(live.status());
  if (!live->empty()) {
    return done(Status::InvalidArgument(
        fmt::format("VSN {} still holds {} live file(s) (the first: VV {}, file {}): 'vvctl vsn "
                    "repack {}' moves them first",
                    vsn.name, live->size(), live->front().vv, live->front().file, vsn.name)));
  }
  const bool copying = std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& f) {
    return f.second.vsn == vsn.name || f.second.item.from_vsn == vsn.name;
  });
  if (copying) {
    return done(
        Status::Busy(fmt::format("VSN {} is being read or written now: try again once "
                                 "'vvctl status' shows its drive idle",
                                 vsn.name)));
  }
  // The tape first: a crash after it leaves a record that still says reclaim, and the reclaim
  // is done again; the record first would send archives to a tape that still holds old files.
  if (options_.relabel) {
    if (Status s = options_.relabel(vsn); !s.ok()) {
      return done(Status(s.code(), fmt::format("cannot reclaim VSN {}: writing its fresh label "
                                               "failed: {}",
                                               vsn.name, s.message())));
    }
  }
  db::Transaction txn;
  rpc::VsnReclaimReply reply;
  Status s = scan_copy_marks_on_vsn(*db_, vsn.name, [&](uint64_t mark_slot, const CopyMark& m) {
    ++reply.dead_files;
    reply.dead_bytes += m.size;
    txn.erase(kCopyTable, mark_slot);
    return true;
  });
  if (!s.ok()) return done(s);
  if (DriveState* d = view_.holding(vsn.name); d != nullptr && !d->busy) view_.unload(*d);
  vsn.state = VsnState::kHot;
  vsn.next_file = 1;
  vsn.bytes_used = 0;
  vsn.errors = 0;
  if (vsn.location.starts_with("drive:")) vsn.location = "slot";
  txn.update(kVsnTable, *slot, vsn_values(vsn));
  const std::string by = user_name(peer.uid);
  s = set_state_note(
      *db_, txn,
      {"vsn", vsn.name, std::string(vsn_state_name(VsnState::kHot)), now_unix(), by,
       fmt::format("reclaimed: relabelled, {} dead file(s) forgotten", reply.dead_files)});
  StateNote note;
  if (s.ok() && find_state_note(*db_, kRepackNote, vsn.name, &note).ok()) {
    note.state = std::string(kReclaimed);
    s = set_state_note(*db_, txn, note);
  }
  if (!s.ok()) return done(s);
  vsn_errors_in_row_.erase(vsn.name);
  reply.vsn = vsn;
  commits_.commit(txn, [by, reply, done = std::move(done)](auto committed) {
    if (!committed.ok()) return done(committed.status());
    log::notice(
        "VSN {} reclaimed by {}: relabelled, hot from file 1; {} dead file(s) ({} bytes) "
        "forgotten",
        reply.vsn.name, by, reply.dead_files, reply.dead_bytes);
    done(reply);
  });
}

rpc::Served<rpc::VsnRepackRequest, rpc::VsnReclaimRequest, rpc::RepackListRequest>
Scheduler::serve_repack(rpc::Server& server) {
  return server.handle<rpc::VsnRepackRequest>([this](const rpc::VsnRepackRequest& r,
                                                     const rpc::Peer& peer,
                                                     rpc::Responder<rpc::VsnRepackRequest> answer) {
    repack(peer, r, [answer](Result<rpc::RepackInfo> info) { answer.reply(info); });
  }) +
         server.handle<rpc::VsnReclaimRequest>(
             [this](const rpc::VsnReclaimRequest& r, const rpc::Peer& peer,
                    rpc::Responder<rpc::VsnReclaimRequest> answer) {
               reclaim(peer, r, [answer](Result<rpc::VsnReclaimReply> got) { answer.reply(got); });
             }) +
         server.handle<rpc::RepackListRequest>(
             [this](const rpc::RepackListRequest&, const rpc::Peer&) { return repacks(); });
}

}  // namespace vvm::vvmd
