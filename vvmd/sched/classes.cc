// sched/classes.cc: the scheduler's part in storage classes that change while VVs of them are on
// tape (sched/scheduler.h, sched/class_copies.h).
//
// A class that gains a media type (vvm.conf, then a reload or a restart) lacks that copy in every
// VV it has archived. Which VVs lack what is derived from the catalogue, never stored: at start
// and after each reload, find_lacking() compares every archived VV's copies (the media type of
// each copy's VSN) with its class's media types. vvm.conf is what says what a class should have,
// and the VV table what each VV has, so a record of "missing" would only be a third thing to keep
// in step (and to get wrong after a crash between a copy's commit and its own).
//
// The copies are archive work like any other (the class's queue for the new media type, its batch
// rule and drive limits; below client stages). A VV in the cache is written from there. An
// evicted one is copied tape to tape when one mover has a drive up that reads one of its copies
// and a drive of the new media type (copy_route(), class_copies.h): one copy process holds both
// drives, reads the old copy (checked as a stage checks it) and writes the new one as an archive
// does, and the new copy's place is committed with the VSN's next file in one transaction, as any
// archive's; no cache room is used. It waits while a stage a client waits for wants a drive of
// either media type, and takes its source tapes in file order. Otherwise (no such mover, or a
// tape copy that failed reading its source) the VV is first staged in the background
// (stage_queue.h: after every stage a client waits for, in file order per tape), and vvmd logs
// why once. At most kClassCopyWindow VVs are copied or staged at once, so that the cache holds few
// of them and archive writes get drives between them; the VV stays archived meanwhile, since every
// copy it was archived with is still there.
//
// A class that loses a media type keeps those copies, now extra (class_copies.h): they are read
// like any other copy and counted by `vvctl class ls`, until prune() releases them: each tape
// file is marked dead in the copy table, as a removed VV's are, and the slot freed, in one commit
// with the VV's record. A VV that still lacks one of its class's copies keeps its extra ones.
#include <algorithm>
#include <map>
#include <memory>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "common/log.h"
#include "sched/policy.h"
#include "sched/scheduler.h"

namespace vvm::vvmd {

using namespace policy;

namespace {
// How many VV records a prune commits at once: each VV's record and its marks go together, and
// a transaction stays well within what the journal takes.
constexpr size_t kPruneBatch = 128;

}  // namespace

bool Scheduler::still_lacking(const Vv& vv, const QueueKey& key, size_t slot) const {
  auto cls = config_.classes.find(key.vv_class);
  if (cls == config_.classes.end()) return false;
  const auto lacking = lacking_copies(vv, cls->second);
  return std::any_of(lacking.begin(), lacking.end(), [&](const ClassCopies::Lacking& l) {
    return l.media == key.media && l.slot == slot;
  });
}

Result<std::function<std::string(const std::string& vsn)>> Scheduler::media_of_vsns() const {
  std::map<std::string, std::string> out;
  VVM_RETURN_IF_ERROR(
      scan_vsn(*db_, "name", kEveryName.lo, kEveryName.hi, [&](uint64_t, const Vsn& v) {
        out[v.name] = v.media;
        return true;
      }));
  return std::function<std::string(const std::string&)>(
      [media = std::move(out)](const std::string& vsn) {
        auto it = media.find(vsn);
        return it == media.end() ? std::string() : it->second;
      });
}

bool Scheduler::has_tape_for(char cls, const std::string& media) const {
  bool found = false;
  (void)scan_vsn(*db_, "name", kEveryName.lo, kEveryName.hi, [&](uint64_t, const Vsn& v) {
    found = takes_class(v, cls, media);
    return !found;
  });
  return found;
}

Result<uint64_t> Scheduler::vvs_of_class(char cls) const {
  uint64_t n = 0;
  VVM_RETURN_IF_ERROR(
      scan_vv(*db_, "name", kEveryName.lo, kEveryName.hi, [&](uint64_t, const Vv& vv) {
        n += vv.vv_class.size() == 1 && vv.vv_class[0] == cls;
        return true;
      }));
  return n;
}

Status Scheduler::find_lacking() {
  auto media = media_of_vsns();
  if (!media.ok()) return media.status();
  const auto& media_of = *media;
  std::map<char, std::pair<size_t, uint64_t>> per_class;  // VVs and bytes lacking a copy
  decltype(lacking_) found;
  VVM_RETURN_IF_ERROR(
      scan_vv(*db_, "name", kEveryName.lo, kEveryName.hi, [&](uint64_t, const Vv& vv) {
        // A finished VV's copies are queued when it is finished (and at start): only archived
        // ones can lack a copy that nobody queues.
        if (vv.state != VvState::kArchived || vv.vv_class.size() != 1) return true;
        auto cls = config_.classes.find(vv.vv_class[0]);
        if (cls == config_.classes.end()) return true;
        const ClassCopies cc = class_copies(vv, cls->second.media, media_of);
        if (cc.complete()) return true;
        // Kept in the order of the tape the copy will be read from: the one a tape copy reads,
        // when a mover can, else the first.
        std::vector<CopySource> sources;
        for (size_t i = 0; i < vv.copies.size(); ++i) {
          if (!vv.copies[i].vsn.empty()) {
            sources.push_back({i, vv.copies[i].vsn, vv.copies[i].file, media_of(vv.copies[i].vsn)});
          }
        }
        if (sources.empty()) return true;
        const CopyRoute route =
            copy_route(false, sources, cc.lacking.front().media, view_.drives());
        const CopySource& source =
            route.kind == CopyRoute::Kind::kTapeToTape ? route.source : sources.front();
        found.insert({source.vsn, source.file, vv.name});
        auto& [count, bytes] = per_class[cls->first];
        ++count;
        bytes += vv.size;
        return true;
      }));
  lacking_ = std::move(found);
  for (const auto& [cls, n] : per_class) {
    log::notice("class {}: {} archived VV(s) ({} bytes) lack a copy on {}: made in the background",
                cls, n.first, n.second, fmt::join(config_.classes.at(cls).media, " "));
  }
  wake();
  return Status::Ok();
}

void Scheduler::classes_changed() {
  if (Status s = find_lacking(); !s.ok()) {
    log::error("classes changed, but the VVs lacking a copy cannot be found: {}", s.message());
  }
  starved_.clear();  // a class's new media type may have no tape: say so again
}

void Scheduler::drive_class_copies(Clock::time_point now) {
  if (lacking_.empty() || now - last_lacking_step_ < kClassCopyStep) return;
  last_lacking_step_ = now;
  std::vector<std::tuple<std::string, uint64_t, std::string>> done;
  // VVs on their way: staged (in the cache's room) or copied tape to tape.
  size_t on_way = 0, looked = 0;
  for (const auto& [id, f] : in_flight_) on_way += f.class_copy;
  for (const auto& entry : lacking_) {
    if (++looked > kClassCopyLook) break;
    const std::string& name = std::get<2>(entry);
    Vv vv;
    if (!find_vv(*db_, name, &vv).ok() || vv.vv_class.size() != 1) {
      done.push_back(entry);  // removed meanwhile
      continue;
    }
    auto cls = config_.classes.find(vv.vv_class[0]);
    // Finished again (a copy found bad): finished() and stage_done() see to it from now on.
    if (cls == config_.classes.end() || vv.state != VvState::kArchived) {
      done.push_back(entry);
      continue;
    }
    const auto lacking = lacking_copies(vv, cls->second);
    if (lacking.empty()) {
      done.push_back(entry);
      continue;
    }
    auto free_slot =
        std::find_if(lacking.begin(), lacking.end(),
                     [](const ClassCopies::Lacking& l) { return l.slot < kMaxVvCopies; });
    if (free_slot == lacking.end()) {
      // Every slot holds a copy: nothing to stage or write until extra ones are pruned (a
      // reload or a restart looks again).
      log::warning(
          "class {}: VV {} lacks its {} copy but holds {} copies already: 'vvctl class prune {}' "
          "releases the extra ones",
          cls->first, name, lacking.front().media, kMaxVvCopies, cls->first);
      done.push_back(entry);
      continue;
    }
    if (vv.cache == CacheState::kStaging) {
      ++on_way;
      continue;
    }
    const bool tape_copying = std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& f) {
      return f.second.class_copy && f.second.item.vv == name;
    });
    if (tape_copying) continue;  // counted above
    CopyRoute route = copy_route(vv.cache == CacheState::kCached, copy_sources(vv),
                                 free_slot->media, view_.drives());
    if (route.kind == CopyRoute::Kind::kFromCache) {
      // Written from the cache file like any archive copy; while it waits in the queue the VV
      // may be evicted, and is then copied again from here.
      queue_lacking(vv, cls->second);
      continue;
    }
    if (on_way >= kClassCopyWindow || stages_.contains(name)) continue;
    MoveSetback* back = nullptr;
    if (auto it = move_setbacks_.find(name); it != move_setbacks_.end()) back = &it->second;
    if (back != nullptr && back->not_before > now) continue;  // a copy that failed waits
    if (route.kind == CopyRoute::Kind::kTapeToTape && back != nullptr &&
        !back->through_cache.empty()) {
      route.kind = CopyRoute::Kind::kStageFirst;
      route.why = back->through_cache;
    }
    if (route.kind == CopyRoute::Kind::kTapeToTape) {
      const TapeCopyStart started = start_class_copy(vv, *free_slot, route, now, &route.why);
      if (started == TapeCopyStart::kStarted) ++on_way;
      if (started != TapeCopyStart::kThroughCache) continue;
    }
    if (back == nullptr) back = &move_setbacks_[name];
    if (!back->logged) {
      back->logged = true;
      log::info(
          "class {}: VV {}'s {} copy is made through the cache (a stage, then an archive write), "
          "not tape to tape: {}",
          cls->first, name, free_slot->media, route.why);
    }
    if (auto failed = failed_stages_.find(name);
        failed != failed_stages_.end() && now < failed->second.first) {
      continue;
    }
    if (Status s = set_cache(name, CacheState::kStaging, false); !s.ok()) {
      log::error("class {}: VV {} cannot be staged for its new copy: {}", cls->first, name,
                 s.message());
      continue;
    }
    StageItem item;
    item.vv = name;
    item.background = true;
    item.queued = item.not_before = now;
    if (Status s = queue_stage(vv, std::move(item)); !s.ok()) {
      (void)set_cache(name, CacheState::kEvicted, false);
      log::warning("class {}: VV {} cannot be staged for its new copy: {}", cls->first, name,
                   s.message());
      continue;
    }
    ++on_way;
    const StageItem* queued = stages_.find(name);
    log::info("class {}: stage VV {} ({} bytes) from {} file {} for the copy it lacks", cls->first,
              name, vv.size, queued->vsn, queued->file);
  }
  for (const auto& entry : done) {
    lacking_.erase(entry);
    const std::string& name = std::get<2>(entry);
    const bool moving = std::any_of(in_flight_.begin(), in_flight_.end(),
                                    [&](const auto& f) { return f.second.item.vv == name; });
    if (!moving) move_setbacks_.erase(name);
  }
}

std::vector<CopySource> Scheduler::copy_sources(const Vv& vv) const {
  std::vector<CopySource> good, bad;
  for (size_t i = 0; i < vv.copies.size(); ++i) {
    if (vv.copies[i].vsn.empty()) continue;
    Vsn vsn;
    if (!lookup_vsn(*db_, "name", db::KeyBuilder().text(vv.copies[i].vsn), &vsn).ok()) continue;
    if (vsn.state == VsnState::kDisabled) continue;
    (vsn.state == VsnState::kBad ? bad : good)
        .push_back({i, vsn.name, vv.copies[i].file, vsn.media});
  }
  good.insert(good.end(), bad.begin(), bad.end());
  return good;
}

Scheduler::TapeCopyStart Scheduler::start_class_copy(const Vv& vv, const ClassCopies::Lacking& l,
                                                     const CopyRoute& route, Clock::time_point now,
                                                     std::string* why) {
  const char cls = vv.vv_class[0];
  const CopySource& src = route.source;
  // Client stages first (of either tape's media type), and the class within its share of drives
  // for reading and for writing.
  if (stages_want(src.media) || stages_want(l.media) || !may_take_drive(cls, true) ||
      !may_take_drive(cls, false)) {
    return TapeCopyStart::kWait;
  }
  for (const auto& [id, f] : in_flight_) {
    if (f.vsn == src.vsn || f.item.from_vsn == src.vsn) return TapeCopyStart::kWait;
  }
  bool any_busy = false;
  std::vector<Vsn> targets = writable_vsns(cls, l.media, &any_busy);
  if (targets.empty()) {
    if (any_busy) return TapeCopyStart::kWait;
    // The archive queue says why no tape takes it, and waits for one.
    *why = fmt::format("no {} tape can take class {}'s copies now", l.media, cls);
    return TapeCopyStart::kThroughCache;
  }
  DriveState *from = nullptr, *to = nullptr;
  const Vsn* target = nullptr;
  if (!pick_tape_copy_drives(route.mover, src.vsn, src.media, l.media, targets, now, &from, &to,
                             &target)) {
    return TapeCopyStart::kWait;
  }
  ArchiveItem item{vv.name, l.slot, vv.size, now, now, 0, src.vsn, src.file};
  if (auto back = move_setbacks_.find(vv.name); back != move_setbacks_.end()) {
    item.attempts = back->second.attempts;
  }
  const bool sent =
      send_tape_copy(vv, std::move(item), {cls, l.media}, *from, *to, *target, true, now);
  return sent ? TapeCopyStart::kStarted : TapeCopyStart::kWait;
}

Result<rpc::ClassListReply> Scheduler::classes(bool counts) const {
  rpc::ClassListReply reply;
  reply.counted = counts;
  std::map<char, size_t> index;
  for (const auto& [letter, cls] : config_.classes) {
    rpc::ClassInfo info;
    info.name = std::string(1, letter);
    info.description = cls.description;
    for (const std::string& m : cls.media) info.media.push_back({m, true, 0, 0, 0, 0, 0});
    info.read_max_drives = cls.read_max_drives;
    info.write_max_drives = cls.write_max_drives;
    info.reading = drives_held(letter, true);
    info.writing = drives_held(letter, false);
    index[letter] = reply.classes.size();
    reply.classes.push_back(std::move(info));
  }
  if (!counts) return reply;
  auto media = media_of_vsns();
  if (!media.ok()) return media.status();
  const auto& media_of = *media;
  auto entry = [](rpc::ClassInfo& info, const std::string& m) -> rpc::ClassMedia& {
    for (auto& e : info.media) {
      if (e.media == m) return e;
    }
    info.media.push_back({m, false, 0, 0, 0, 0, 0});
    return info.media.back();
  };
  VVM_RETURN_IF_ERROR(
      scan_vv(*db_, "name", kEveryName.lo, kEveryName.hi, [&](uint64_t, const Vv& vv) {
        if (vv.vv_class.size() != 1) return true;
        auto at = index.find(vv.vv_class[0]);
        if (at == index.end()) return true;
        rpc::ClassInfo& info = reply.classes[at->second];
        ++info.vvs;
        if (vv.state == VvState::kHot) return true;  // no copies yet, and none lacking
        const auto& cls = config_.classes.at(at->first);
        const ClassCopies cc = class_copies(vv, cls.media, media_of);
        for (size_t i = 0; i < vv.copies.size(); ++i) {
          if (vv.copies[i].vsn.empty()) continue;
          auto extra = std::find(cc.extra.begin(), cc.extra.end(), i);
          std::string m = extra != cc.extra.end() ? cc.extra_media[extra - cc.extra.begin()]
                                                  : media_of(vv.copies[i].vsn);
          if (m.empty() && i < cls.media.size()) m = cls.media[i];
          rpc::ClassMedia& e = entry(info, m);
          if (extra != cc.extra.end() && e.listed) {
            // A second copy on a listed type: counted with the extras apart.
            rpc::ClassMedia& twice = entry(info, m + "+");
            twice.listed = false;
            ++twice.copies;
            twice.bytes += vv.size;
            continue;
          }
          ++e.copies;
          e.bytes += vv.size;
        }
        for (const auto& l : cc.lacking) {
          rpc::ClassMedia& e = entry(info, l.media);
          ++e.lacking;
          e.lacking_bytes += vv.size;
          const bool on_way =
              vv.cache == CacheState::kStaging || queue_.contains(vv.name, l.slot) ||
              std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& f) {
                return f.second.item.vv == vv.name &&
                       (f.second.staged ? !is_verify(f.second) : f.second.item.copy == l.slot);
              });
          e.on_way += on_way;
        }
        return true;
      }));
  return reply;
}

void Scheduler::prune(const rpc::Peer& peer, const rpc::ClassPruneRequest& req,
                      std::function<void(Result<rpc::ClassPruneReply>)> done) {
  if (Status s = privileged(peer, "prune class " + req.name); !s.ok()) return done(s);
  auto cls = req.name.size() == 1 ? config_.classes.find(req.name[0]) : config_.classes.end();
  if (cls == config_.classes.end()) {
    std::string names;
    for (const auto& [letter, c] : config_.classes) {
      names += fmt::format("{}{}", names.empty() ? "" : ", ", letter);
    }
    return done(Status::NotFound(fmt::format("no storage class '{}' (classes: {})", req.name,
                                             names.empty() ? "none" : names)));
  }
  auto media = media_of_vsns();
  if (!media.ok()) return done(media.status());
  const auto& media_of = *media;
  // Read first, changed after: a scan in progress allows no other read.
  struct Prunable {
    uint64_t slot;
    Vv vv;
    ClassCopies cc;
  };
  std::vector<Prunable> found;
  rpc::ClassPruneReply reply;
  reply.name = req.name;
  Status scanned =
      scan_vv(*db_, "name", kEveryName.lo, kEveryName.hi, [&](uint64_t slot, const Vv& vv) {
        if (vv.vv_class != req.name || vv.state == VvState::kHot) return true;
        ClassCopies cc = class_copies(vv, cls->second.media, media_of);
        if (cc.extra.empty()) return true;
        if (!cc.complete()) {
          reply.kept += cc.extra.size();  // its extra copies are still what it has
          return true;
        }
        found.push_back({slot, vv, std::move(cc)});
        return true;
      });
  if (!scanned.ok()) return done(scanned);

  const std::string by = user_name(peer.uid);
  std::vector<db::Transaction> txns(1);
  size_t in_txn = 0;
  for (Prunable& p : found) {
    for (size_t k = 0; k < p.cc.extra.size(); ++k) {
      VvCopy& copy = p.vv.copies[p.cc.extra[k]];
      CopyMark dead{
          copy.vsn,
          copy.file,
          p.vv.name,
          static_cast<uint32_t>(p.cc.extra[k] + 1),
          p.vv.size,
          CopyMarkState::kDead,
          now_unix(),
          by,
          fmt::format("pruned: {} is not a media type of class {}",
                      p.cc.extra_media[k].empty() ? "its media" : p.cc.extra_media[k], req.name)};
      CopyMark old;
      if (auto marked = find_copy_mark(*db_, dead.vsn, dead.file, &old); marked.ok()) {
        txns.back().update(kCopyTable, *marked, copy_values(dead));
      } else {
        txns.back().insert(kCopyTable, copy_values(dead));
      }
      ++reply.files;
      reply.bytes += p.vv.size;
      copy = {};
    }
    txns.back().update(kVvTable, p.slot, vv_values(p.vv));
    if (++in_txn == kPruneBatch) {
      txns.emplace_back();
      in_txn = 0;
    }
  }
  if (txns.back().changes().empty()) txns.pop_back();
  log::notice("class {}: prune by {}: {} extra cop{} ({} bytes) released{}", req.name, by,
              reply.files, reply.files == 1 ? "y" : "ies", reply.bytes,
              reply.kept > 0
                  ? fmt::format(", {} kept (their VVs lack a copy of the class yet)", reply.kept)
                  : "");
  if (txns.empty()) return done(reply);
  // Answered once the last commit is durable, or at the first that fails.
  struct Pending {
    size_t left;
    bool answered = false;
    std::function<void(Result<rpc::ClassPruneReply>)> done;
    rpc::ClassPruneReply reply;
  };
  auto pending = std::make_shared<Pending>(Pending{txns.size(), false, std::move(done), reply});
  for (const db::Transaction& txn : txns) {
    commits_.commit(txn, [pending, name = req.name](Result<std::vector<uint64_t>> r) {
      if (pending->answered) return;
      if (!r.ok()) {
        pending->answered = true;
        log::error("class {}: prune not recorded: {}", name, r.status().message());
        return pending->done(r.status());
      }
      if (--pending->left == 0) {
        pending->answered = true;
        pending->done(pending->reply);
      }
    });
  }
}

Result<rpc::VvCopiesReply> Scheduler::vv_copies(const rpc::VvCopiesRequest& req) const {
  if (req.vvs.size() > rpc::kMaxVvCopiesNames) {
    return Status::InvalidArgument(fmt::format("vv copies: {} VVs named; at most {} at once",
                                               req.vvs.size(), rpc::kMaxVvCopiesNames));
  }
  rpc::VvCopiesReply reply;
  for (const rpc::VvName& n : req.vvs) {
    Vv vv;
    if (auto found = find_vv(*db_, n.name, &vv); !found.ok()) {
      if (found.status().code() == Code::kNotFound) continue;  // removed since it was listed
      return found.status();
    }
    rpc::VvCopies out;
    out.name = vv.name;
    std::map<std::string, std::string> media;  // each VSN looked up once
    auto media_of = [&](const std::string& vsn) {
      auto [at, added] = media.try_emplace(vsn);
      if (added) at->second = vsn_media(vsn);
      return at->second;
    };
    for (const VvCopy& c : vv.copies) {
      if (!c.vsn.empty()) media_of(c.vsn);
    }
    // Read first, looked up after: a scan in progress allows no other read.
    std::vector<std::string> bad;
    VVM_RETURN_IF_ERROR(scan_copy_marks_of_vv(*db_, vv.name, [&](uint64_t, const CopyMark& m) {
      if (m.state == CopyMarkState::kBad) bad.push_back(m.vsn);
      return true;
    }));
    for (const std::string& vsn : bad) media_of(vsn);
    for (const auto& [vsn, m] : media) out.vsns.push_back({vsn, m});
    auto cls =
        vv.vv_class.size() == 1 ? config_.classes.find(vv.vv_class[0]) : config_.classes.end();
    if (cls != config_.classes.end()) {
      const ClassCopies cc = class_copies(vv, cls->second.media, media_of);
      for (size_t slot : cc.extra) out.extra.push_back(static_cast<uint32_t>(slot + 1));
      for (const auto& l : cc.lacking) {
        out.lacking.push_back(
            {l.media, l.slot < kMaxVvCopies ? static_cast<uint32_t>(l.slot + 1) : 0});
      }
    }
    reply.vvs.push_back(std::move(out));
  }
  return reply;
}

rpc::Served<rpc::ClassListRequest, rpc::ClassPruneRequest, rpc::VvCopiesRequest>
Scheduler::serve_classes(rpc::Server& server) {
  return server.handle<rpc::ClassListRequest>(
             [this](const rpc::ClassListRequest& r,
                    const rpc::Peer&) -> Result<rpc::ClassListReply> {
               return classes(r.counts);
             }) +
         server.handle<rpc::ClassPruneRequest>(
             [this](const rpc::ClassPruneRequest& r, const rpc::Peer& peer,
                    rpc::Responder<rpc::ClassPruneRequest> responder) {
               prune(peer, r, [responder](Result<rpc::ClassPruneReply> answer) mutable {
                 responder.reply(std::move(answer));
               });
             }) +
         server.handle<rpc::VvCopiesRequest>(
             [this](const rpc::VvCopiesRequest& r, const rpc::Peer&) -> Result<rpc::VvCopiesReply> {
               return vv_copies(r);
             });
}

}  // namespace vvm::vvmd
