// catalog.cc: vvmd's VV catalogue; see catalog.h.
#include "catalog/catalog.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <vector>

#include <fmt/core.h>

#include "common/log.h"

namespace vvm::vvmd {

namespace {

// The record's owner and group fields are 16 characters wide (catalog/records.cc).
constexpr size_t kMaxIdentity = 16;
// The size field is 16 decimal digits wide.
constexpr uint64_t kMaxSize = 9'999'999'999'999'999ull;

// Root or vvmd's user on vvmd's own host. A TLS identity is never root (vvm.conf refuses it),
// and one that maps to vvmd's user is that user: its uid decides, as a Unix peer's does.
bool privileged(const rpc::Peer& peer, uid_t daemon_uid) {
  return peer.has_user() && (peer.uid == 0 || peer.uid == daemon_uid);
}

// Whether user `uid` is in group `gid`, as its primary group or a supplementary one.
bool in_group(uid_t uid, gid_t primary, gid_t gid) {
  if (gid == primary) return true;
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || !found) return false;
  int n = 64;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  if (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<size_t>(n));
    if (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) return false;
  }
  groups.resize(static_cast<size_t>(n));
  return std::find(groups.begin(), groups.end(), gid) != groups.end();
}

Status check_identity(std::string_view what, const std::string& name) {
  if (name.size() > kMaxIdentity) {
    return Status::InvalidArgument(fmt::format(
        "{} '{}' is longer than the {} characters a VV record holds", what, name, kMaxIdentity));
  }
  return Status::Ok();
}

// "2 copies (L00001 file 3, M00002 file 7)"
std::string describe_copies(const Vv& r) {
  std::string where;
  int n = 0;
  for (const auto& c : r.copies) {
    if (c.vsn.empty()) continue;
    where += fmt::format("{}{} file {}", n ? ", " : "", c.vsn, c.file);
    ++n;
  }
  return fmt::format("{} cop{} ({})", n, n == 1 ? "y" : "ies", where);
}

int count_copies(const Vv& r) {
  return static_cast<int>(std::count_if(r.copies.begin(), r.copies.end(),
                                        [](const auto& c) { return !c.vsn.empty(); }));
}

}  // namespace

Catalog::Options Catalog::options_from(const Config& config) {
  Options o;
  o.cache_dir = config.cache_dir;
  for (const auto& [letter, cls] : config.classes) o.classes.insert(letter);
  o.daemon_uid = ::getuid();
  return o;
}

Result<std::unique_ptr<Catalog>> Catalog::open(db::Database* db, Options options) {
  std::error_code ec;
  std::filesystem::create_directories(options.cache_dir, ec);
  if (ec) {
    return Status::IoError(
        fmt::format("cache folder {}: cannot create: {}", options.cache_dir, ec.message()));
  }
  std::unique_ptr<Catalog> c(new Catalog(db, std::move(options)));
  Status bad;
  uint64_t count = 0;
  VVM_RETURN_IF_ERROR(db->scan(kVvTable, [&](uint64_t, const db::Values& v) {
    auto r = vv_from_values(v);
    if (!r.ok()) {
      if (bad.ok()) bad = r.status();
      return;
    }
    if (!r->vv_class.empty()) c->serials_.observe(r->vv_class[0], r->serial);
    ++count;
  }));
  VVM_RETURN_IF_ERROR(bad);
  // The counters hold each class's highest serial ever handed out, so that the serial of a
  // removed VV (whose tape files keep it in their labels) never comes back.
  for (char cls : c->options_.classes) {
    auto highest = counter(*db, serial_counter(cls));
    if (!highest.ok()) return highest.status();
    c->serials_.observe(cls, *highest);
  }
  std::string highest;
  for (char cls : c->options_.classes) {
    highest += fmt::format(" {}{}", cls, c->serials_.highest(cls));
  }
  log::info("VV catalogue: {} VV(s) in the database; highest serials:{}", count, highest);
  return c;
}

Status Catalog::set_classes(const std::set<char>& classes) {
  for (char cls : classes) {
    if (options_.classes.contains(cls)) continue;
    auto highest = counter(*db_, serial_counter(cls));
    if (!highest.ok()) return highest.status();
    serials_.observe(cls, *highest);
  }
  options_.classes = classes;
  return Status::Ok();
}

uint64_t Catalog::now() const {
  if (options_.now) return options_.now();
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Result<std::pair<uint64_t, Vv>> Catalog::lookup(const std::string& name) {
  auto parsed = parse_vv_name(name);
  if (!parsed.ok()) return parsed.status();
  Vv vv;
  auto slot = find_vv(*db_, name, &vv);
  if (!slot.ok()) return slot.status();
  return std::make_pair(*slot, std::move(vv));
}

Status Catalog::may_change(const rpc::Peer& peer, const Vv& vv, std::string_view action) const {
  if (!peer.has_user()) {
    return Status::PermissionDenied(
        fmt::format("cannot {} VV {} (owner {}) for a TCP peer ({}): over TCP vvmd cannot tell "
                    "who you are; use vvmd's Unix socket or a TLS identity",
                    action, vv.name, vv.owner, peer.address));
  }
  if (privileged(peer, options_.daemon_uid) || user_name(peer.uid) == vv.owner) {
    return Status::Ok();
  }
  return Status::PermissionDenied(
      fmt::format("{} may not {} VV {}: it belongs to {} (only its owner, root or vvmd's user may)",
                  user_name(peer.uid), action, vv.name, vv.owner));
}

Status Catalog::sync_cache_dir() const {
  int dir = ::open(options_.cache_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return Status::FromErrno(errno, "cache folder " + options_.cache_dir);
  // The folder's entry makes the file findable after a crash, so it is synced like the file.
  int rc = ::fsync(dir);
  int err = errno;
  ::close(dir);
  if (rc != 0) return Status::FromErrno(err, "fsync of cache folder " + options_.cache_dir);
  return Status::Ok();
}

Status Catalog::make_cache_file(const std::string& name, uint64_t size) const {
  const std::string path = cache_path(name);
  // Only vvm's own processes touch cache files: who may use a VV is the record's business.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    // No record names this serial (it is past the highest one in the table): the file is left
    // from a create that crashed before its commit, and holds nothing anyone was promised.
    log::warning("{}: removing a cache file that no record names (a create cut short)", path);
    if (::unlink(path.c_str()) != 0) return Status::FromErrno(errno, "cannot remove " + path);
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  }
  if (fd < 0) return Status::FromErrno(errno, "cannot create cache file " + path);
  Status s;
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    s = Status::FromErrno(errno, fmt::format("cannot size cache file {} to {} bytes", path, size));
  } else if (::fsync(fd) != 0) {
    s = Status::FromErrno(errno, "fsync of cache file " + path);
  }
  ::close(fd);
  if (s.ok()) s = sync_cache_dir();
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

Result<Vv> Catalog::prepare_create(const rpc::Peer& peer, const rpc::VvCreateRequest& req) {
  const std::string& cls = req.vv_class;
  if (cls.size() != 1 || !options_.classes.contains(cls[0])) {
    std::string known;
    for (char c : options_.classes) known += fmt::format("{}{}", known.empty() ? "" : ", ", c);
    return Status::InvalidArgument(
        fmt::format("no storage class '{}' (classes: {})", cls, known.empty() ? "none" : known));
  }
  if (req.size == 0) return Status::InvalidArgument("a VV's size must be more than 0 bytes");
  if (req.size > kMaxSize) {
    return Status::InvalidArgument(
        fmt::format("size {} bytes is more than a VV may have ({} bytes)", req.size, kMaxSize));
  }
  auto perms = parse_perms(req.perms);
  if (!perms.ok()) return perms.status();

  // Owner and group: the requester's unless named; only root and vvmd's user give VVs away.
  Vv r;
  // A TCP peer is an allowed host, trusted to speak for its users; a TLS peer is its identity.
  const bool trusted = privileged(peer, options_.daemon_uid) || !peer.has_user();
  if (!peer.has_user() && (req.owner.empty() || req.group.empty())) {
    return Status::InvalidArgument(fmt::format(
        "a create over TCP ({}) must name the owner and the group: vvmd cannot tell who you are",
        peer.address));
  }
  if (req.owner.empty()) {
    r.owner = user_name(peer.uid);
  } else {
    auto uid = resolve_user(req.owner);
    if (!uid.ok()) return uid.status();
    if (!trusted && *uid != peer.uid) {
      return Status::PermissionDenied(
          fmt::format("{} may not create a VV owned by {} (only root or vvmd's user may)",
                      user_name(peer.uid), req.owner));
    }
    r.owner = user_name(*uid);
  }
  if (req.group.empty()) {
    r.group = group_name(peer.gid);
  } else {
    auto gid = resolve_group(req.group);
    if (!gid.ok()) return gid.status();
    const bool identity_group =
        std::find(peer.groups.begin(), peer.groups.end(), *gid) != peer.groups.end();
    if (!trusted && !identity_group && !in_group(peer.uid, peer.gid, *gid)) {
      return Status::PermissionDenied(fmt::format(
          "{} may not create a VV of group {}: not a member", user_name(peer.uid), req.group));
    }
    r.group = group_name(*gid);
  }
  VVM_RETURN_IF_ERROR(check_identity("owner", r.owner));
  VVM_RETURN_IF_ERROR(check_identity("group", r.group));

  auto serial = serials_.next(cls[0]);
  if (!serial.ok()) return serial.status();
  r.name = format_vv_name(cls[0], *serial);
  r.vv_class = cls;
  r.serial = *serial;
  r.client_id = req.client_id;
  r.perms = *perms;
  r.size = req.size;
  r.state = VvState::kHot;
  r.cache = CacheState::kCached;
  r.created = r.accessed = now();
  return r;
}

void Catalog::create_async(const rpc::Peer& peer, const rpc::VvCreateRequest& req,
                           std::function<void(Result<Vv>)> done) {
  auto prepared = prepare_create(peer, req);
  if (!prepared.ok()) return done(prepared.status());
  // The file is made off this thread (it waits for two fsyncs); its record is submitted back on
  // it, so that records go to the database in the order this thread decides.
  auto made = std::make_shared<Status>();
  auto work = [this, made, name = prepared->name, size = prepared->size] {
    *made = make_cache_file(name, size);
  };
  auto then = [this, made, peer, r = std::move(*prepared), done = std::move(done)]() mutable {
    if (!made->ok()) return done(*made);
    commit_create(peer, std::move(r), std::move(done));
  };
  if (background_) {
    background_(std::move(work), std::move(then));
  } else {
    work();
    then();
  }
}

void Catalog::commit_create(const rpc::Peer& peer, Vv r, std::function<void(Result<Vv>)> done) {
  const char cls = r.vv_class[0];
  db::Transaction txn;
  txn.insert(kVvTable, vv_values(r));
  // The highest serial handed out so far, not this VV's: creates whose files were made out of
  // order still move the counter only forward.
  Status counted = set_counter(*db_, txn, serial_counter(cls), serials_.highest(cls));
  if (!counted.ok()) {
    ::unlink(cache_path(r.name).c_str());
    return done(counted);
  }
  auto submitted = db_->submit(txn, [r, done, who = peer.to_string()](Status durable) {
    if (!durable.ok()) {
      // The database refuses everything from now on; the file is left for the next start.
      log::error("create VV {} failed: {}", r.name, durable.message());
      return done(durable);
    }
    log::info("created VV {} (class {}, {} bytes, {}:{} {}, id {}) for {}", r.name, r.vv_class,
              r.size, r.owner, r.group, format_perms(r.perms), r.client_id, who);
    done(r);
  });
  if (!submitted.ok()) {
    ::unlink(cache_path(r.name).c_str());
    log::error("create VV {} failed: {}", r.name, submitted.status().message());
    done(submitted.status());
  }
}

Result<Vv> Catalog::create(const rpc::Peer& peer, const rpc::VvCreateRequest& req) {
  if (background_) return Status::Internal("create() called where creates run in the background");
  std::promise<Result<Vv>> answer;
  auto future = answer.get_future();
  create_async(peer, req, [&answer](Result<Vv> r) { answer.set_value(std::move(r)); });
  return future.get();
}

Result<Vv> Catalog::show(const std::string& name) {
  auto found = lookup(name);
  if (!found.ok()) return found.status();
  return std::move(found->second);
}

Result<rpc::VvListReply> Catalog::list(const rpc::VvListRequest& req) {
  if (req.vv_class.size() > 1) {
    return Status::InvalidArgument(
        fmt::format("no storage class '{}': a class is one letter or digit", req.vv_class));
  }
  const uint32_t limit = req.limit == 0 ? kMaxPage : std::min(req.limit, kMaxPage);
  const VvFilter filter{req.state, req.vv_class, req.client_id};
  std::vector<Vv> found;
  auto take = [&](uint64_t, const Vv& r) {
    if (filter.matches(r) && r.name > req.after) found.push_back(r);
    return true;
  };
  if (req.client_id) {
    // The id index holds each id's VVs together (in slot order): gather them, then order by name.
    const db::KeyRange id = db::number_prefix(*req.client_id);
    VVM_RETURN_IF_ERROR(scan_vv(*db_, "id", id.lo, id.hi, take));
    std::sort(found.begin(), found.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
  } else {
    // Names are keyed in name order; one class is the range of names that start with its letter.
    auto [lo, hi] = db::text_prefix(req.vv_class);
    if (!req.after.empty()) lo = std::max(lo, db::past_text(req.after));
    auto bounded = [&](uint64_t slot, const Vv& v) {
      return take(slot, v) && found.size() <= limit;  // one past the page says there is more
    };
    if (lo < hi) VVM_RETURN_IF_ERROR(scan_vv(*db_, "name", lo, hi, bounded));
  }
  rpc::VvListReply reply;
  reply.more = found.size() > limit;
  if (reply.more) found.resize(limit);
  reply.vvs = std::move(found);
  return reply;
}

void Catalog::commit_finish(uint64_t slot, Vv r, std::function<void(Result<Vv>)> then) {
  r.state = VvState::kFinished;
  r.finished = now();
  db::Transaction txn;
  txn.update(kVvTable, slot, vv_values(r));
  commits_.commit(txn, [this, r = std::move(r), then = std::move(then)](auto committed) {
    if (!committed.ok()) return then(committed.status());
    // Once durable: the scheduler's copies of a finish that a crash could undo would be
    // written for a VV that is hot again.
    if (on_finished_) on_finished_(r);
    then(r);
  });
}

void Catalog::finish_async(const rpc::Peer& peer, const std::string& name,
                           std::function<void(Result<Vv>)> done) {
  auto found = lookup(name);
  if (!found.ok()) return done(found.status());
  auto& [slot, r] = *found;
  if (Status s = may_change(peer, r, "finish"); !s.ok()) return done(s);
  if (r.state != VvState::kHot) {
    return done(Status::InvalidArgument(fmt::format(
        "VV {} is already {}: only a hot VV can be finished", r.name, vv_state_name(r.state))));
  }
  // A writer still attached could change what goes to tape after the copy is taken.
  if (in_use_) {
    if (Status s = in_use_(r.name, true); !s.ok()) return done(s);
  }
  commit_finish(slot, std::move(r), [who = peer.to_string(), done = std::move(done)](Result<Vv> f) {
    if (f.ok()) log::info("finished VV {} for {}", f->name, who);
    done(std::move(f));
  });
}

Result<Vv> Catalog::finish(const rpc::Peer& peer, const std::string& name) {
  return commits_.answer_now<Vv>("finish()", [&](auto done) { finish_async(peer, name, done); });
}

size_t Catalog::finish_idle(uint64_t idle_before) {
  std::vector<std::pair<uint64_t, Vv>> idle;
  const db::KeyRange hot = db::every_text_key();  // the hot index: class, then client id
  Status s = scan_vv(*db_, "hot", hot.lo, hot.hi, [&](uint64_t slot, const Vv& r) {
    if (r.accessed < idle_before) idle.emplace_back(slot, r);
    return true;
  });
  if (!s.ok()) {
    log::error("idle finish: cannot read the hot VVs: {}", s.message());
    return 0;
  }
  size_t started = 0;
  for (auto& [slot, r] : idle) {
    if (in_use_ && !in_use_(r.name, true).ok()) continue;  // a writer is attached: not idle
    const uint64_t last = r.accessed;
    const std::string vv = r.name;
    commit_finish(slot, std::move(r), [vv, last](Result<Vv> f) {
      if (!f.ok()) return log::error("idle finish of VV {}: {}", vv, f.status().message());
      log::info("finished VV {}: idle since {} (idle-finish)", vv, last);
    });
    ++started;
  }
  return started;
}

void Catalog::remove_async(const rpc::Peer& peer, const rpc::VvRemoveRequest& req,
                           std::function<void(Result<Vv>)> done) {
  auto found = lookup(req.name);
  if (!found.ok()) return done(found.status());
  auto& [slot, r] = *found;
  if (Status s = may_change(peer, r, "remove"); !s.ok()) return done(s);
  if (in_use_) {
    if (Status s = in_use_(r.name, false); !s.ok()) return done(s);
  }
  const int copies = count_copies(r);
  if (copies > 0 && !req.force) {
    return done(Status::InvalidArgument(
        fmt::format("VV {} has {} on tape: rm --force removes its record and cache file, and "
                    "leaves the tape files",
                    r.name, describe_copies(r))));
  }
  db::Transaction txn;
  txn.erase(kVvTable, slot);
  // Its tape files stay as they are (nothing on tape is overwritten in place) and are counted
  // dead on their VSNs, in the same commit, so that repack knows what is left worth moving.
  const std::string by = peer.has_user() ? user_name(peer.uid) : peer.address;
  for (size_t i = 0; i < r.copies.size(); ++i) {
    const VvCopy& c = r.copies[i];
    if (c.vsn.empty()) continue;
    CopyMark dead{c.vsn,
                  c.file,
                  r.name,
                  static_cast<uint32_t>(i + 1),
                  r.size,
                  CopyMarkState::kDead,
                  now(),
                  by,
                  "its VV was removed"};
    CopyMark old;
    auto marked = find_copy_mark(*db_, c.vsn, c.file, &old);
    if (marked.ok()) {
      txn.update(kCopyTable, *marked, copy_values(dead));
    } else {
      txn.insert(kCopyTable, copy_values(dead));
    }
  }
  commits_.commit(txn, [this, r = std::move(r), copies, who = peer.to_string(),
                        done = std::move(done)](auto committed) {
    if (!committed.ok()) return done(committed.status());
    // Once durable: a crash before leaves a file no record names, not a record without its
    // file.
    const std::string path = cache_path(r.name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      log::warning("removed VV {}, but not its cache file: {}", r.name,
                   Status::FromErrno(errno, path).message());
    } else if (Status s = sync_cache_dir(); !s.ok()) {
      log::warning("removed VV {}: {}", r.name, s.message());
    }
    log::info("removed VV {} ({}, {} bytes, {}{}) for {}", r.name, vv_state_name(r.state), r.size,
              cache_state_name(r.cache),
              copies ? ", leaving " + describe_copies(r) + " on tape" : "", who);
    done(r);
  });
}

Result<Vv> Catalog::remove(const rpc::Peer& peer, const rpc::VvRemoveRequest& req) {
  return commits_.answer_now<Vv>("remove()", [&](auto done) { remove_async(peer, req, done); });
}

Result<Vv> Catalog::record_access(const std::string& name) {
  auto found = lookup(name);
  if (!found.ok()) return found.status();
  auto& [slot, r] = *found;
  r.accessed = now();
  db::Transaction txn;
  txn.update(kVvTable, slot, vv_values(r));
  // Nobody is promised an access time: a crash that loses it only makes the VV look older to
  // the cache's least-recently-used order. Not waited for.
  VVM_RETURN_IF_ERROR(commits_.apply(txn, "access time of VV " + r.name));
  return r;
}

Catalog::Serves Catalog::serve(rpc::Server& server) {
  // The server sets the reply's op from the request's type.
  auto vv_reply = [](Result<Vv> r) -> Result<rpc::VvReply> {
    if (!r.ok()) return r.status();
    return rpc::VvReply{.vv = std::move(*r)};
  };
  return server.handle<rpc::VvCreateRequest>(
             [this, vv_reply](const rpc::VvCreateRequest& r, const rpc::Peer& peer,
                              rpc::Responder<rpc::VvCreateRequest> answer) {
               create_async(peer, r, [answer, vv_reply](Result<Vv> vv) {
                 answer.reply(vv_reply(std::move(vv)));
               });
             }) +
         server.handle<rpc::VvShowRequest>(
             [this, vv_reply](const rpc::VvShowRequest& r, const rpc::Peer&) {
               return vv_reply(show(r.name));
             }) +
         server.handle<rpc::VvFinishRequest>(
             [this, vv_reply](const rpc::VvFinishRequest& r, const rpc::Peer& peer,
                              rpc::Responder<rpc::VvFinishRequest> answer) {
               finish_async(peer, r.name, [answer, vv_reply](Result<Vv> vv) {
                 answer.reply(vv_reply(std::move(vv)));
               });
             }) +
         server.handle<rpc::VvRemoveRequest>(
             [this, vv_reply](const rpc::VvRemoveRequest& r, const rpc::Peer& peer,
                              rpc::Responder<rpc::VvRemoveRequest> answer) {
               remove_async(peer, r, [answer, vv_reply](Result<Vv> vv) {
                 answer.reply(vv_reply(std::move(vv)));
               });
             }) +
         server.handle<rpc::VvListRequest>(
             [this](const rpc::VvListRequest& r, const rpc::Peer&) { return list(r); }) +
         server.handle<rpc::CopyListRequest>(
             [this](const rpc::CopyListRequest& r, const rpc::Peer&) { return copy_marks(r); });
}

Result<rpc::CopyListReply> Catalog::copy_marks(const rpc::CopyListRequest& req) {
  if (req.vv.empty() == req.vsn.empty()) {
    return Status::InvalidArgument("copy list: name a VV or a VSN, one of the two");
  }
  rpc::CopyListReply reply;
  auto each = [&](uint64_t, const CopyMark& m) {
    reply.marks.push_back(m);
    return reply.marks.size() < kMaxPage;
  };
  VVM_RETURN_IF_ERROR(req.vv.empty() ? scan_copy_marks_on_vsn(*db_, req.vsn, each)
                                     : scan_copy_marks_of_vv(*db_, req.vv, each));
  return reply;
}

}  // namespace vvm::vvmd
