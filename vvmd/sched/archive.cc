// sched/archive.cc: the scheduler's archive half: a finished VV's copies queued, the VSN each
// goes to, the batch rule, and what a copy's end changes (sched/scheduler.h).
#include "sched/scheduler.h"

#include <algorithm>

#include <fmt/ranges.h>

#include "common/log.h"
#include "sched/policy.h"

namespace vvm::vvmd {

using namespace policy;

void Scheduler::finished(const Vv& vv) {
  if (vv.vv_class.size() != 1) return;
  auto cls = config_.classes.find(vv.vv_class[0]);
  if (cls == config_.classes.end()) {
    log::error("VV {}: class {} is not in vvm.conf: it cannot be archived", vv.name, vv.vv_class);
    return;
  }
  if (vv.cache != CacheState::kCached) {
    // A copy is written from the cache file: a VV that lost a copy while evicted (it was found
    // bad) comes back first, and stage_done queues the copy; one being staged waits for that.
    if (vv.cache == CacheState::kEvicted) {
      auto staged = stage(vv.name, false);
      log::info("VV {} lacks a copy and is not in the cache: {}", vv.name,
                staged.ok() ? "staged first, then copied" : staged.status().message());
    }
    return;
  }
  queue_lacking(vv, cls->second);
  wake();
}

size_t Scheduler::queue_lacking(const Vv& vv, const StorageClass& cls) {
  const auto now = steady_now();
  size_t queued = 0;
  // Which copies are lacking follows from the class's media types and the VSNs the VV's copies
  // are on (sched/class_copies.h): a class that gained a type lacks it in every VV.
  for (const ClassCopies::Lacking& l : lacking_copies(vv, cls)) {
    if (l.slot >= vv.copies.size()) {
      log::warning(
          "VV {}: no free copy slot for its {} copy (at most {} copies; 'vvctl class prune {}' "
          "releases extra ones)",
          vv.name, l.media, kMaxVvCopies, cls.letter);
      continue;
    }
    const bool copying = std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& f) {
      return f.second.item.vv == vv.name && f.second.item.copy == l.slot && !f.second.staged;
    });
    if (copying || queue_.contains(vv.name, l.slot)) continue;
    queued += queue_.push({cls.letter, l.media}, {vv.name, l.slot, vv.size, now, now, 0});
  }
  return queued;
}

std::string Scheduler::vsn_media(const std::string& name) const {
  Vsn vsn;
  if (!lookup_vsn(*db_, "name", db::KeyBuilder().text(name), &vsn).ok()) return "";
  return vsn.media;
}

std::vector<ClassCopies::Lacking> Scheduler::lacking_copies(const Vv& vv,
                                                            const StorageClass& cls) const {
  return class_copies(vv, cls.media, [this](const std::string& v) { return vsn_media(v); }).lacking;
}

bool Scheduler::can_take(const Vsn& r, char cls, const std::string& media) const {
  if (r.errors >= kMaxVsnErrors) return false;
  return takes_class(r, cls, media);
}

bool Scheduler::takes_class(const Vsn& r, char cls, const std::string& media) const {
  if (r.media != media || repacks_.contains(r.name)) return false;
  const std::string cls_text(1, cls);
  // A VSN set hot by hand before its first file may have no class yet: any class's.
  const bool hot = r.state == VsnState::kHot &&
                   (r.vsn_class == cls_text || (r.vsn_class.empty() && r.next_file == 1));
  const bool blank =
      r.state == VsnState::kBlank && (r.vsn_class.empty() || r.vsn_class == cls_text);
  return hot || blank;
}

std::vector<Vsn> Scheduler::writable_vsns(char cls, const std::string& media, bool* any_busy,
                                          std::vector<std::string>* failing) {
  *any_busy = false;
  std::vector<Vsn> out;
  std::set<std::string> copying;
  for (const auto& [id, f] : in_flight_) copying.insert(f.vsn);
  Status bad;
  Status s = db_->scan_index(kVsnTable, "name", kEveryName.lo, kEveryName.hi,
                             [&](uint64_t, const db::Values& v) {
                               auto r = vsn_from_values(v);
                               if (!r.ok()) {
                                 bad = r.status();
                                 return false;
                               }
                               if (!takes_class(*r, cls, media)) return true;
                               if (r->errors >= kMaxVsnErrors) {
                                 // Its state still says it takes archives: whoever is told there is
                                 // no tape must hear of this one.
                                 if (failing != nullptr) failing->push_back(r->name);
                                 return true;
                               }
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

bool Scheduler::dispatch(const QueueKey& key, Clock::time_point now) {
  if (!queue_.ready(key, now) || !may_take_drive(key.vv_class, false)) return false;
  const bool due = queue_.due(key, now);
  bool any_busy = false;
  std::vector<std::string> failing;
  std::vector<Vsn> vsns = writable_vsns(key.vv_class, key.media, &any_busy, &failing);
  if (vsns.empty()) {
    // All of them being written is no reason to tell anyone; having none at all is. Tapes that
    // vsn ls shows hot or blank but that failed too often are named, with how to use them again.
    if (!any_busy && starved_.insert(key).second) {
      std::string kept_away;
      if (!failing.empty()) {
        kept_away = fmt::format(
            "; {} {} {} failed copies and {} not written until set hot again ('vvctl vsn set "
            "VSN hot --reason TEXT' once checked)",
            fmt::join(failing, ", "), failing.size() == 1 ? "has" : "have", kMaxVsnErrors,
            failing.size() == 1 ? "is" : "are");
      }
      log::warning(
          "no VSN can take class {}'s copies on {} ({} waiting): add one with "
          "'vvctl vsn add VSN --media {} --class {}'{}",
          key.vv_class, key.media, queue_.files(key), key.media, key.vv_class, kept_away);
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
    auto cls = config_.classes.find(key.vv_class);
    if (cls != config_.classes.end() && !queue_.aged(key, now, cls->second.archive_min_wait)) {
      return false;  // low-priority work: no mount for it before its oldest copy has waited
    }
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
  const bool move = !item.from_vsn.empty();
  if (move) {
    // A repack's move: the copy must still be where the repack found it.
    const VvCopy& from = vv.copies[item.copy];
    if (vv.state == VvState::kHot || from.vsn != item.from_vsn || from.file != item.from_file) {
      return true;
    }
  } else if (vv.state == VvState::kHot || !vv.copies[item.copy].vsn.empty() ||
             !still_lacking(vv, key, item.copy)) {
    // Written meanwhile, or no longer wanted: its class dropped the media type on a reload.
    return true;
  }
  if (vv.cache != CacheState::kCached) {
    log::info("VV {} is {}: its copy {} waits until it is in the cache again", vv.name,
              cache_state_name(vv.cache), item.copy + 1);
    return true;  // stage_done queues it again
  }

  if (!mount(drive, vsn.name, fmt::format("{}, {}", vsn.media, vsn_state_name(vsn.state)),
             fmt::format("for class {}'s copies", key.vv_class))) {
    queue_.push_front(key, std::move(item));
    return false;
  }

  auto [args, f] = copy_request(vv, std::move(item), key, drive, vsn.name, vsn.next_file);
  args.cache_path = options_.cache_path(vv.name);
  if (move) {
    log::info(
        "repack: copy {} of VV {} ({} bytes) from {} file {} to {} file {} in drive {} "
        "(request {})",
        f.item.copy + 1, vv.name, vv.size, f.item.from_vsn, f.item.from_file, vsn.name,
        vsn.next_file, drive.name, args.request_id);
  } else {
    log::info("archive copy {} of VV {} ({} bytes) to {} file {} in drive {} (request {})",
              f.item.copy + 1, vv.name, vv.size, vsn.name, vsn.next_file, drive.name,
              args.request_id);
  }
  send(drive, std::move(f), rpc::Op::kArchive, std::move(args), now);
  return true;
}

void Scheduler::copy_done(InFlight f, const rpc::CopyReport& r) {
  if (is_verify(f)) return verify_done(std::move(f), r);
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
  if (vsn.vsn_class.empty()) {
    // A VSN added for any class takes the class of its first archive: recorded, with when.
    vsn.vsn_class = std::string(1, f.key.vv_class);
    if (Status s = set_state_note(
            *db_, txn,
            {"class", vsn.name, vsn.vsn_class, now_unix(), "vvmd", std::string(kFirstArchive)});
        !s.ok()) {
      log::error("VSN {}: cannot note since when it has class {}: {}", vsn.name, vsn.vsn_class,
                 s.message());
    }
    log::notice("VSN {} takes class {}: its first archive (VV {})", vsn.name, vsn.vsn_class,
                f.item.vv);
  }
  txn.update(kVsnTable, *vsn_slot, vsn_values(vsn));

  Vv vv;
  auto vv_slot = lookup_vv(*db_, "name", db::KeyBuilder().text(f.item.vv), &vv);
  bool recorded = false, archived = false;
  // A class's new copy made tape to tape read item.from_vsn too, and leaves that copy where it is.
  const bool move = !f.item.from_vsn.empty() && !f.class_copy;
  if (move && vv_slot.ok() && vv.copies[f.item.copy].vsn == f.item.from_vsn &&
      vv.copies[f.item.copy].file == f.item.from_file) {
    // A repack's move: the copy's new place and its old tape file dead, in this one commit.
    if (vv.checksum != r.checksum) {
      log::error(
          "VV {}: copy {} moved to {} file {} has checksum {:016x}, the VV {:016x}: not "
          "recorded, moved again",
          vv.name, f.item.copy + 1, r.vsn, r.file_number, r.checksum, vv.checksum);
    } else {
      vv.copies[f.item.copy] = {r.vsn, r.file_number};
      txn.update(kVvTable, *vv_slot, vv_values(vv));
      CopyMark dead{f.item.from_vsn,
                    f.item.from_file,
                    vv.name,
                    static_cast<uint32_t>(f.item.copy + 1),
                    vv.size,
                    CopyMarkState::kDead,
                    now_unix(),
                    "vvmd",
                    fmt::format("{}{} file {}", kRepackedTo, r.vsn, r.file_number)};
      CopyMark old;
      if (auto marked = find_copy_mark(*db_, dead.vsn, dead.file, &old); marked.ok()) {
        txn.update(kCopyTable, *marked, copy_values(dead));
      } else {
        txn.insert(kCopyTable, copy_values(dead));
      }
      recorded = true;
    }
  } else if (!move && vv_slot.ok() && vv.state != VvState::kHot &&
             vv.copies[f.item.copy].vsn.empty()) {
    // A finished VV's copy, or the copy an archived one lacks since its class gained a media
    // type (it stays archived meanwhile: every copy it was archived with is there).
    if (vv.checksum != 0 && vv.checksum != r.checksum) {
      log::error(
          "VV {}: copy {} on {} file {} has checksum {:016x}, its other copies {:016x}: not "
          "recorded, written again",
          vv.name, f.item.copy + 1, r.vsn, r.file_number, r.checksum, vv.checksum);
    } else {
      vv.checksum = r.checksum;
      vv.copies[f.item.copy] = {r.vsn, r.file_number};
      auto cls = config_.classes.find(f.key.vv_class);
      const bool complete = cls == config_.classes.end() ||
                            class_copies(vv, cls->second.media, [&](const std::string& v) {
                              return v == vsn.name ? vsn.media : vsn_media(v);
                            }).complete();
      if (complete && vv.state == VvState::kFinished) {
        vv.state = VvState::kArchived;
        archived = true;
      }
      txn.update(kVvTable, *vv_slot, vv_values(vv));
      recorded = true;
    }
  }
  if (Status applied = commits_.apply(
          txn, fmt::format("VV {}'s copy on {} file {}", f.item.vv, r.vsn, r.file_number));
      !applied.ok()) {
    log::error("VV {} written to {} file {}, but the database did not take it: {}", f.item.vv,
               r.vsn, r.file_number, applied.message());
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
    if (move) {
      // Still where the repack found it: moved again; moved meanwhile: the repack looks again.
      if (vv.copies[f.item.copy].vsn == f.item.from_vsn &&
          vv.copies[f.item.copy].file == f.item.from_file) {
        ++f.item.attempts;
        retry(f, false);
      }
    } else if (vv.state != VvState::kHot && vv.copies[f.item.copy].vsn.empty()) {
      ++f.item.attempts;
      retry(f, false);
    }
    return;
  }
  if (move) {
    metrics().archived(f.key.vv_class, f.key.media, r.bytes_total);
    copy_ok(f.drive, r.vsn);
    if (is_tape_copy(f)) copy_ok(f.from_drive, f.item.from_vsn);
    move_setbacks_.erase(vv.name);
    log::info("repack: VV {}: copy {} moved from {} file {} to {} file {} ({} bytes, {})", vv.name,
              f.item.copy + 1, f.item.from_vsn, f.item.from_file, r.vsn, r.file_number,
              r.bytes_total, is_tape_copy(f) ? "tape to tape" : "through the cache");
    return;
  }
  metrics().archived(f.key.vv_class, f.key.media, r.bytes_total);

  copy_ok(f.drive, r.vsn);
  if (is_tape_copy(f)) {
    copy_ok(f.from_drive, f.item.from_vsn);
    move_setbacks_.erase(vv.name);
  }
  log::info("VV {}: copy {} on {} file {} ({} bytes, checksum {:016x}){}{}", vv.name,
            f.item.copy + 1, r.vsn, r.file_number, r.bytes_total, r.checksum,
            is_tape_copy(f)
                ? fmt::format(", tape to tape from {} file {}", f.item.from_vsn, f.item.from_file)
                : "",
            archived ? ": archived" : "");
}

void Scheduler::copy_failed(InFlight f, const Status& why) {
  // A verify's read cancelled for a stage did not fail: not counted (verify_failed()).
  if (!is_verify(f) || !cancelling_.contains(f.job_id)) {
    metrics().copy_failed(is_verify(f)      ? "verify"
                          : f.staged        ? "stage"
                          : is_tape_copy(f) ? "tape-copy"
                                            : "archive",
                          f.vsn, f.drive);
  }
  if (is_tape_copy(f)) return tape_copy_failed(std::move(f), why);
  if (is_verify(f)) return verify_failed(std::move(f), why);
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
      copy_error(f.drive, f.vsn, false, why);
      if (drive != nullptr) view_.unload(*drive);
      retry(f, false);
      return;
  }
}

}  // namespace vvm::vvmd
