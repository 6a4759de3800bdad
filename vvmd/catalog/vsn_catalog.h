// vsn_catalog.h: vvmd's VSN catalogue: add tape volumes (VSNs) to the database's VSN table and
// list them (DESIGN.md, "Tape" and "Database").
//
// Add checks the VSN's name against the VOL label's rules (tape/label.h), that its media type is
// configured, that its class (if given) is configured and lists the media, and that no record
// has the name. Then, for an emulated library ([library] kind = emulated), the tape comes first
// and the record second, as catalog.cc does with cache files, so that a record never names a
// missing tape:
//   - no image LIBRARY/VSN.tap: it is made (tape/library.h: TapeLibrary::create), with the
//     media's capacity in its sidecar and a VOL label for the VSN and the media, the image, the
//     sidecar and the folder fsynced; then the record is committed: state blank, location
//     "slot", next file 1, the media's capacity. If the commit fails, the image is removed.
//   - an image that is there already: registered if its VOL label names this VSN and this media
//     and its files read cleanly (list_files, copy.h); the next file is the one after the last
//     complete file (a partial or empty file after it is what the next archive overwrites), the
//     bytes used the data of the complete files, the state blank (no file), hot (files, room
//     for more) or full (it ends with an empty file: an archive ran out of space). A sidecar
//     that disagrees with the media's capacity is refused; a missing one is written. A blank
//     image, one labelled for another VSN or media, or one with damaged files is refused,
//     naming the image and what it holds. A crash between the image and the commit leaves a
//     labelled image no record names, which the next add of that VSN registers.
// For a real library (kind = mtx) add only records the VSN: the tape is labelled on a drive with
// `vvtape label`.
//
// Only privileged peers may add: root and vvmd's own uid over the Unix socket (a TCP peer has no
// identity until TLS-PSK). Anyone vvmd serves may list.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "catalog/tables.h"
#include "common/config.h"
#include "db/committer.h"
#include "db/database.h"
#include "proto/messages.h"
#include "proto/server.h"

namespace vvm::vvmd {

class VsnCatalog {
 public:
  // The most VSNs one VSN_LIST reply carries: ~100 bytes each on the wire at the record's widest
  // (rpc_test checks that a page stays well under the message limit).
  static constexpr uint32_t kMaxPage = 1000;

  struct Options {
    std::map<std::string, MediaType> media;  // the configured media types, by name
    std::map<char, StorageClass> classes;    // the configured storage classes
    std::string library_kind = "emulated";   // "emulated" or "mtx"
    std::string library_path;       // emulated: the folder of VSN.tap images (created if missing)
    uid_t daemon_uid = 0;           // may add VSNs, as root may
    std::function<uint64_t()> now;  // unix seconds; the system clock when empty
  };
  static Options options_from(const Config& config);
  static Result<std::unique_ptr<VsnCatalog>> open(db::Database* db, Options options);

  // Adds a VSN, answering through `done` once its record is durable (on the loop, when there is
  // one: finish_commits_on). add() waits, and only works without a loop. The tape image is made
  // on the caller's thread: adds are rare, and an image is a few writes.
  using Done = std::function<void(Result<Vsn>)>;
  void add_async(const rpc::Peer& peer, const rpc::VsnAddRequest& request, Done done);
  Result<Vsn> add(const rpc::Peer& peer, const rpc::VsnAddRequest& request);
  void finish_commits_on(db::Committer::Post post) { commits_.run_on(std::move(post)); }
  Result<rpc::VsnListReply> list(const rpc::VsnListRequest& request);
  // A reload changed vvm.conf's media types and classes: VSNs are added by these from now on.
  void set_classes(const std::map<std::string, MediaType>& media,
                   const std::map<char, StorageClass>& classes) {
    options_.media = media;
    options_.classes = classes;
  }
  // An operator sets a VSN's state (vvctl vsn set): hot, full, read-only, disabled, reclaim, bad
  // or retired, never blank (that follows the tape), with a reason; root and vvmd's user only.
  // The state and its note (who, when, why: state.tab) change in one commit, answered once
  // durable; set hot, its count of failed copies starts again from 0. NotFound for no such VSN,
  // InvalidArgument for a state that cannot be set or no reason: nothing changes then.
  void set_state_async(const rpc::Peer& peer, const rpc::VsnSetRequest& request,
                       std::function<void(Result<rpc::VsnSetReply>)> done);
  // What vsn ls shows beside each record, page by page as list(): the state's note, the class's
  // age, and the VSN's tape files counted: live (a VV's copy), dead (no VV needs it: its VV was
  // removed, or it was found bad) and, among the dead, bad.
  Result<rpc::VsnDetailsReply> details(const rpc::VsnDetailsRequest& request);
  rpc::VsnDetail detail_of(const Vsn& vsn);

  // Registers VSN_ADD's, VSN_LIST's, VSN_SET's and VSN_DETAILS' handlers; the catalogue must
  // outlive the server's run.
  using Serves = rpc::Served<rpc::VsnAddRequest, rpc::VsnListRequest, rpc::VsnSetRequest,
                             rpc::VsnDetailsRequest>;
  Serves serve(rpc::Server& server);

  // A fresh VOL label on VSN `vsn`'s tape, for a reclaim: an emulated image is written from its
  // start, so what followed the label is cut off (nothing else is overwritten) and the image
  // synced; with a real library (mtx) the operator labels the tape with vvtape: nothing to do.
  Status relabel(const Vsn& vsn);

  bool emulated() const { return options_.library_kind == "emulated"; }
  std::string image_path(const std::string& vsn) const {
    return options_.library_path + "/" + vsn + ".tap";
  }

 private:
  VsnCatalog(db::Database* db, Options options)
      : db_(db), commits_(db), options_(std::move(options)) {}
  // What an add commits: the record, whether its image was made now (and goes if the commit
  // fails), and what was done, for the log.
  struct Prepared {
    Vsn record;
    bool made = false;
    std::string what;
  };
  // An add's checks and its tape image.
  Result<Prepared> prepare_add(const rpc::Peer& peer, const rpc::VsnAddRequest& request);
  // The checks that need no tape: name, media, class, privilege, duplicate.
  Status check_add(const rpc::Peer& peer, const rpc::VsnAddRequest& request) const;
  // A new labelled image for `r` (durable before its record is committed).
  Status make_image(const Vsn& r);
  // Fills `r` (next file, bytes used, state) from the image already at `image`, or says why it
  // cannot be registered.
  Status register_image(const std::string& image, Vsn* r);
  Status sync_library_dir();
  uint64_t now() const;

  db::Database* db_;
  db::Committer commits_;
  Options options_;
};

}  // namespace vvm::vvmd
