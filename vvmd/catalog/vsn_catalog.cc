// vsn_catalog.cc: vvmd's VSN catalogue; see vsn_catalog.h.
#include "catalog/vsn_catalog.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <filesystem>
#include <vector>

#include <fmt/core.h>

#include "common/log.h"
#include "tape/emulated_tape.h"
#include "tape/label.h"
#include "tape/library.h"
#include "tape/scan.h"

namespace vvm::vvmd {

namespace {

// "A, B", or "none".
template <class Map, class Name>
std::string names_of(const Map& map, Name name) {
  std::string out;
  for (const auto& entry : map) out += fmt::format("{}{}", out.empty() ? "" : ", ", name(entry));
  return out.empty() ? "none" : out;
}

Status fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "cannot open " + path + " to sync it");
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::FromErrno(err, "fsync of " + path);
  return Status::Ok();
}

}  // namespace

VsnCatalog::Options VsnCatalog::options_from(const Config& config) {
  Options o;
  o.media = config.media;
  o.classes = config.classes;
  o.library_kind = config.library_kind;
  o.library_path = config.library_path;
  o.daemon_uid = ::getuid();
  return o;
}

Result<std::unique_ptr<VsnCatalog>> VsnCatalog::open(db::Database* db, Options options) {
  if (options.library_kind != "emulated" && options.library_kind != "mtx") {
    return Status::InvalidArgument(fmt::format(
        "library kind '{}': vvmd knows emulated and mtx libraries", options.library_kind));
  }
  if (options.library_kind == "emulated") {
    std::error_code ec;
    std::filesystem::create_directories(options.library_path, ec);
    if (ec) {
      return Status::IoError(
          fmt::format("library folder {}: cannot create: {}", options.library_path, ec.message()));
    }
  }
  std::unique_ptr<VsnCatalog> c(new VsnCatalog(db, std::move(options)));
  log::info("VSN catalogue: {} VSN(s) in the database; {} library {}", db->live_count(kVsnTable),
            c->options_.library_kind, c->options_.library_path);
  return c;
}

uint64_t VsnCatalog::now() const {
  return options_.now ? options_.now() : static_cast<uint64_t>(::time(nullptr));
}

Status VsnCatalog::check_add(const rpc::Peer& peer, const rpc::VsnAddRequest& req) const {
  if (!peer.has_user()) {
    return Status::PermissionDenied(
        fmt::format("cannot add VSN {} for a TCP peer ({}): over TCP vvmd cannot tell who you "
                    "are; use vvmd's Unix socket",
                    req.vsn, peer.address));
  }
  if (peer.uid != 0 && peer.uid != options_.daemon_uid) {
    return Status::PermissionDenied(
        fmt::format("{} may not add VSN {}: only root and vvmd's user ({}) may add VSNs",
                    user_name(peer.uid), req.vsn, user_name(options_.daemon_uid)));
  }
  // The VOL label's rules are the VSN's rules: a name the label cannot hold is no VSN.
  if (auto label = tape::VolLabel{req.vsn, "X"}.encode(); !label.ok()) {
    std::string why = label.status().message();
    if (why.starts_with("VOL label: ")) why = why.substr(11);
    return Status::InvalidArgument(
        fmt::format("bad VSN '{}': {} (a VSN is 1 to 6 uppercase letters or digits, as the "
                    "VOL label holds it)",
                    req.vsn, why));
  }
  auto media = options_.media.find(req.media);
  if (media == options_.media.end()) {
    return Status::InvalidArgument(
        fmt::format("no media type '{}' (media types: {})", req.media,
                    names_of(options_.media, [](const auto& e) { return e.first; })));
  }
  if (auto label = tape::VolLabel{req.vsn, req.media}.encode(); !label.ok()) {
    return Status::InvalidArgument(
        fmt::format("media type '{}' cannot be written in a VOL label: {}", req.media,
                    label.status().message()));
  }
  if (!req.vsn_class.empty()) {
    auto cls = req.vsn_class.size() == 1 ? options_.classes.find(req.vsn_class[0])
                                         : options_.classes.end();
    if (cls == options_.classes.end()) {
      return Status::InvalidArgument(fmt::format(
          "no storage class '{}' (classes: {})", req.vsn_class,
          names_of(options_.classes, [](const auto& e) { return std::string(1, e.first); })));
    }
    const auto& types = cls->second.media;
    if (std::find(types.begin(), types.end(), req.media) == types.end()) {
      std::string listed;
      for (const auto& m : types) listed += fmt::format("{}{}", listed.empty() ? "" : ", ", m);
      return Status::InvalidArgument(
          fmt::format("media {} is not a type of class {} (class {} keeps its copies on: {})",
                      req.media, req.vsn_class, req.vsn_class, listed));
    }
  }
  Vsn old;
  auto found = lookup_vsn(*db_, "name", db::KeyBuilder().text(req.vsn), &old);
  if (found.ok()) {
    return Status::AlreadyExists(fmt::format(
        "VSN {} is already in the catalogue (media {}, class {}, {})", old.name, old.media,
        old.vsn_class.empty() ? "any" : old.vsn_class, vsn_state_name(old.state)));
  }
  if (found.status().code() != Code::kNotFound) return found.status();
  return Status::Ok();
}

Status VsnCatalog::sync_library_dir() {
  // The folder's entries make the image and its sidecar findable after a crash.
  return fsync_path(options_.library_path, O_RDONLY | O_DIRECTORY);
}

Status VsnCatalog::make_image(const Vsn& r) {
  const std::string image = image_path(r.name);
  VVM_RETURN_IF_ERROR(tape::EmulatedTape::create_image(image));
  // From here on a failure removes what was made: the image is new, nobody else's.
  auto made = [&]() -> Status {
    VVM_RETURN_IF_ERROR(tape::write_capacity(image, r.capacity));
    auto tape = tape::open_tape(image);
    if (!tape.ok()) return tape.status();
    // Ends with a synchronous tape mark: the label is on the medium (fdatasynced) when it returns.
    VVM_RETURN_IF_ERROR(tape::write_volume_label(**tape, tape::VolLabel{r.name, r.media}));
    if (tape::TapeResult u = (*tape)->unload(); !u.ok()) return u.status;
    return sync_library_dir();
  }();
  if (!made.ok()) {
    ::unlink(image.c_str());
    ::unlink(tape::capacity_path(image).c_str());
  }
  return made;
}

Status VsnCatalog::relabel(const Vsn& r) {
  if (!emulated()) return Status::Ok();
  auto tape = tape::open_tape(image_path(r.name));
  if (!tape.ok()) return tape.status();
  // Ends with a synchronous tape mark: the label is on the medium (fdatasynced) when it returns.
  VVM_RETURN_IF_ERROR(tape::write_volume_label(**tape, tape::VolLabel{r.name, r.media}));
  if (tape::TapeResult u = (*tape)->unload(); !u.ok()) return u.status;
  return Status::Ok();
}

Status VsnCatalog::register_image(const std::string& image, Vsn* r) {
  auto refuse = [&](std::string_view holds) {
    return Status::AlreadyExists(fmt::format(
        "cannot add VSN {}: the library already has {}, which {}", r->name, image, holds));
  };
  auto tape = tape::open_tape(image, /*write_protect=*/true);
  if (!tape.ok()) return refuse(fmt::format("cannot be read: {}", tape.status().message()));
  auto vol = tape::read_volume_label(**tape);
  if (!vol.ok()) {
    if (vol.status().code() == Code::kIoError) {
      return refuse(fmt::format("cannot be read: {}", vol.status().message()));
    }
    return refuse(
        fmt::format("holds no VOL label ({}); remove it, or label it with 'vvtape label {} --vsn "
                    "{} --media {}'",
                    vol.status().message(), image, r->name, r->media));
  }
  if (vol->vsn != r->name || vol->media_type != r->media) {
    return refuse(fmt::format("is labelled VSN {}, media {} (not VSN {}, media {})", vol->vsn,
                              vol->media_type, r->name, r->media));
  }
  // An archive appends only after file 0's tape mark (copy.cc, find_append_point).
  if (tape::TapeResult at_file1 = (*tape)->position_to_file(1); !at_file1.ok()) {
    return refuse(fmt::format(
        "is labelled VSN {}, media {}, but has no tape mark after the label; label it again with "
        "'vvtape label {} --vsn {} --media {} --force'",
        vol->vsn, vol->media_type, image, r->name, r->media));
  }
  auto files = tape::list_files(**tape);
  if (!files.ok()) return refuse(fmt::format("cannot be read: {}", files.status().message()));
  // list_files flags a partial or empty file anywhere but at the end: what is left is complete
  // files 1..L, then at most an interrupted archive (partial) or the end of a tape that ran out
  // of space (empty), which the next archive overwrites or which ends the tape.
  uint64_t last = 0, bytes = 0;
  bool ran_out = false;
  for (const auto& f : *files) {
    if (!f.problems.empty()) {
      return refuse(
          fmt::format("is labelled VSN {}, media {}, but its file {} is damaged ({}); "
                      "see 'vvtape ls {}'",
                      vol->vsn, vol->media_type, f.number, f.problems.front(), image));
    }
    if (f.empty) {
      ran_out = true;
    } else if (!f.partial && f.hdr) {
      last = f.number;
      bytes += f.hdr->size;
    }
  }
  auto sidecar = tape::read_capacity(image);
  if (!sidecar.ok())
    return refuse(fmt::format("has a bad sidecar: {}", sidecar.status().message()));
  if (*sidecar != 0 && *sidecar != r->capacity) {
    return refuse(fmt::format(
        "is labelled VSN {}, media {}, but its capacity sidecar {} says {} bytes where media {} "
        "holds {}; correct or remove the sidecar",
        vol->vsn, vol->media_type, tape::capacity_path(image), *sidecar, r->media, r->capacity));
  }
  if (*sidecar == 0 && r->capacity != 0) {
    // No sidecar: the emulated drive would know no end of medium. It gets the media's.
    VVM_RETURN_IF_ERROR(tape::write_capacity(image, r->capacity));
    VVM_RETURN_IF_ERROR(sync_library_dir());
  }
  r->next_file = last + 1;
  r->bytes_used = bytes;
  r->state = ran_out ? VsnState::kFull : last > 0 ? VsnState::kHot : VsnState::kBlank;
  return Status::Ok();
}

void VsnCatalog::add_async(const rpc::Peer& peer, const rpc::VsnAddRequest& req, Done done) {
  auto added = prepare_add(peer, req);
  if (!added.ok()) return done(added.status());
  auto& [r, made, what] = *added;
  db::Transaction txn;
  txn.insert(kVsnTable, vsn_values(r));
  if (!r.vsn_class.empty()) {
    if (Status s = set_state_note(
            *db_, txn,
            {"class", r.name, r.vsn_class, now(), user_name(peer.uid), "vsn add --class"});
        !s.ok()) {
      return done(s);
    }
  }
  commits_.commit(txn, [this, r = std::move(r), made, what = std::move(what),
                        who = peer.to_string(), done = std::move(done)](auto committed) {
    if (!committed.ok()) {
      if (made) {
        // The record never happened: neither does the tape.
        ::unlink(image_path(r.name).c_str());
        ::unlink(tape::capacity_path(image_path(r.name)).c_str());
      }
      log::error("add VSN {} failed: {}", r.name, committed.status().message());
      return done(committed.status());
    }
    log::info("added VSN {} (media {}, class {}, {}, {} bytes): {}; for {}", r.name, r.media,
              r.vsn_class.empty() ? "any" : r.vsn_class, vsn_state_name(r.state), r.capacity, what,
              who);
    done(r);
  });
}

Result<Vsn> VsnCatalog::add(const rpc::Peer& peer, const rpc::VsnAddRequest& req) {
  return commits_.answer_now<Vsn>("add()", [&](auto done) { add_async(peer, req, done); });
}

Result<VsnCatalog::Prepared> VsnCatalog::prepare_add(const rpc::Peer& peer,
                                                     const rpc::VsnAddRequest& req) {
  VVM_RETURN_IF_ERROR(check_add(peer, req));
  Vsn r;
  r.name = req.vsn;
  r.media = req.media;
  r.vsn_class = req.vsn_class;
  r.state = VsnState::kBlank;
  r.location = "slot";
  r.next_file = 1;
  r.capacity = options_.media.at(req.media).capacity;

  std::string what = "recorded (mtx library: label the tape on a drive with vvtape label)";
  bool made = false;
  if (emulated()) {
    const std::string image = image_path(r.name);
    struct stat st {};
    if (::lstat(image.c_str(), &st) == 0) {
      VVM_RETURN_IF_ERROR(register_image(image, &r));
      what =
          fmt::format("registered the image already there, {} (next file {})", image, r.next_file);
    } else if (errno != ENOENT) {
      return Status::FromErrno(errno, image);
    } else {
      VVM_RETURN_IF_ERROR(make_image(r));
      made = true;
      what = fmt::format("created and labelled {}", image);
    }
  }
  return Prepared{std::move(r), made, std::move(what)};
}

Result<rpc::VsnListReply> VsnCatalog::list(const rpc::VsnListRequest& req) {
  const uint32_t limit = req.limit == 0 ? kMaxPage : std::min(req.limit, kMaxPage);
  std::vector<Vsn> found;
  // Every text key of the name index; just past `after`'s key when given (every longer key that
  // starts with it sorts after it).
  auto [lo, hi] = db::every_text_key();
  if (!req.after.empty()) lo = std::max(lo, db::past_text(req.after));
  VVM_RETURN_IF_ERROR(scan_vsn(*db_, "name", lo, hi, [&](uint64_t, const Vsn& r) {
    found.push_back(r);
    return found.size() <= limit;  // one past the page says there is more
  }));
  rpc::VsnListReply reply;
  reply.more = found.size() > limit;
  if (reply.more) found.resize(limit);
  reply.vsns = std::move(found);
  return reply;
}

void VsnCatalog::set_state_async(const rpc::Peer& peer, const rpc::VsnSetRequest& req,
                                 std::function<void(Result<rpc::VsnSetReply>)> done) {
  if (!peer.has_user()) {
    return done(Status::PermissionDenied(
        fmt::format("cannot set VSN {}'s state for a TCP peer ({}): over TCP vvmd cannot tell "
                    "who you are; use vvmd's Unix socket",
                    req.vsn, peer.address)));
  }
  if (peer.uid != 0 && peer.uid != options_.daemon_uid) {
    return done(Status::PermissionDenied(
        fmt::format("{} may not set VSN {}'s state: only root and vvmd's user ({}) may",
                    user_name(peer.uid), req.vsn, user_name(options_.daemon_uid))));
  }
  if (req.state == VsnState::kBlank) {
    return done(Status::InvalidArgument(fmt::format(
        "VSN {}: blank is not set by hand (a tape is blank until its first file); set hot, "
        "full, read-only, disabled, reclaim, bad or retired",
        req.vsn)));
  }
  if (req.reason.empty()) {
    return done(Status::InvalidArgument(
        fmt::format("VSN {}: say why its state changes (--reason TEXT)", req.vsn)));
  }
  Vsn r;
  auto slot = find_vsn(*db_, req.vsn, &r);
  if (!slot.ok()) return done(slot.status());
  const VsnState was = r.state;
  r.state = req.state;
  // Set hot, someone has looked at it: the failures counted so far no longer keep archives away
  // (the scheduler writes no VSN with kMaxVsnErrors of them).
  if (req.state == VsnState::kHot) r.errors = 0;
  StateNote note{
      "vsn",     r.name, std::string(vsn_state_name(req.state)), now(), user_name(peer.uid),
      req.reason};
  db::Transaction txn;
  txn.update(kVsnTable, *slot, vsn_values(r));
  if (Status s = set_state_note(*db_, txn, note); !s.ok()) return done(s);
  commits_.commit(txn, [this, r, was, note, done = std::move(done)](auto committed) {
    if (!committed.ok()) return done(committed.status());
    log::notice("VSN {}: {} -> {} by {}: {}", r.name, vsn_state_name(was), vsn_state_name(r.state),
                note.by, note.reason);
    done(rpc::VsnSetReply{r, detail_of(r)});
  });
}

rpc::VsnDetail VsnCatalog::detail_of(const Vsn& v) {
  rpc::VsnDetail d;
  d.name = v.name;
  StateNote note;
  if (find_state_note(*db_, "class", v.name, &note).ok() && note.state == v.vsn_class) {
    d.class_since = note.since;
    d.class_how = note.reason == kFirstArchive ? "first" : "added";
  }
  if (find_state_note(*db_, "vsn", v.name, &note).ok()) {
    d.state_since = note.since;
    d.state_by = note.by;
    d.state_reason = note.reason;
  }
  // Live: the files the VVs' copies name (the VV index by VSN and file).
  Vv vv;
  VvSink sink(&vv);
  const std::string lo = db::KeyBuilder().text(v.name);
  std::string hi = lo;
  hi.back() = static_cast<char>(hi.back() + 1);  // past every key of this VSN's text
  (void)db_->scan_to(kVvTable, "vsn", lo, hi, sink, [&](uint64_t) {
    for (const VvCopy& c : vv.copies) {
      if (c.vsn == v.name) {
        ++d.live_files;
        d.live_bytes += vv.size;
      }
    }
    return true;
  });
  (void)scan_copy_marks_on_vsn(*db_, v.name, [&](uint64_t, const CopyMark& m) {
    ++d.dead_files;
    d.dead_bytes += m.size;
    if (m.state == CopyMarkState::kBad) ++d.bad_files;
    return true;
  });
  return d;
}

Result<rpc::VsnDetailsReply> VsnCatalog::details(const rpc::VsnDetailsRequest& req) {
  auto page = list(rpc::VsnListRequest{req.after, req.limit});
  if (!page.ok()) return page.status();
  rpc::VsnDetailsReply reply;
  reply.more = page->more;
  for (const Vsn& v : page->vsns) reply.details.push_back(detail_of(v));
  return reply;
}

VsnCatalog::Serves VsnCatalog::serve(rpc::Server& server) {
  return server.handle<rpc::VsnAddRequest>([this](const rpc::VsnAddRequest& r,
                                                  const rpc::Peer& peer,
                                                  rpc::Responder<rpc::VsnAddRequest> answer) {
    add_async(peer, r, [answer](Result<Vsn> added) {
      if (!added.ok()) return answer.reply(added.status());
      answer.reply(rpc::VsnReply{std::move(*added)});
    });
  }) + server.handle<rpc::VsnListRequest>([this](const rpc::VsnListRequest& r, const rpc::Peer&) {
    return list(r);
  }) +
         server.handle<rpc::VsnSetRequest>([this](const rpc::VsnSetRequest& r,
                                                  const rpc::Peer& peer,
                                                  rpc::Responder<rpc::VsnSetRequest> answer) {
           set_state_async(peer, r, [answer](Result<rpc::VsnSetReply> set) { answer.reply(set); });
         }) +
         server.handle<rpc::VsnDetailsRequest>(
             [this](const rpc::VsnDetailsRequest& r, const rpc::Peer&) { return details(r); });
}

}  // namespace vvm::vvmd
