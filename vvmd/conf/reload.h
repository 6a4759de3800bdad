// conf/reload.h: vvm.conf read again while vvmd runs (SIGHUP, `vvctl reload`).
//
// Only what the running parts can take changes live: the storage classes (their media types,
// read-max-drives, write-max-drives, archive-min-wait and description; a new class; a class
// without VVs dropped) and new media types. Everything else that differs from the running
// configuration (listen addresses, folders, movers, drives, a media type's capacity, ...) is
// named as waiting for a restart, and the running value stays.
//
// A reload is all or nothing: a file that does not load, or a class change vvmd cannot honour,
// is refused with the reason and the running configuration kept. A class cannot gain a media
// type that no drive of the running vvmd takes (drives change only with a restart) or that no
// tape may take the class's copies of (a blank one, or a hot one of the class), nor list more
// media types than a VV has copies, nor be dropped while VVs of it exist.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "proto/messages.h"
#include "proto/server.h"

namespace vvm::vvmd {

// What the checks need to know of the catalogue.
struct ReloadFacts {
  // Whether a VSN of `media` may take class `cls`'s copies.
  std::function<bool(char cls, const std::string& media)> has_tape_for;
  // How many VVs class `cls` has.
  std::function<Result<uint64_t>(char cls)> vvs_of_class;
};

// What a reload changes.
struct ReloadPlan {
  std::vector<std::string> applied;        // "class A: media LTO9 LTO8 (was LTO9)"
  std::vector<std::string> restart;        // "[vvmd] listen", "drive d2 (new)"
  std::map<char, StorageClass> classes;    // the classes from now on
  std::map<std::string, MediaType> media;  // the media types from now on (new ones added)
  bool classes_changed = false;
};

// Compares the running configuration with the one just read; InvalidArgument (every reason, one
// a line, each naming the class, the media type and the vvm.conf line) when a class change
// cannot be honoured. Pure: no I/O but what `facts` does.
Result<ReloadPlan> plan_reload(const Config& live, const Config& next, const ReloadFacts& facts);

class Reloader {
 public:
  // Called with the running configuration once a reload changed its classes or media types.
  using Changed = std::function<void(const Config& live)>;
  // `live` is the running configuration, which the daemon's parts read; a reload changes it in
  // place, on the server's thread.
  Reloader(Config* live, ReloadFacts facts, Changed changed, uid_t daemon_uid)
      : live_(live),
        facts_(std::move(facts)),
        changed_(std::move(changed)),
        daemon_uid_(daemon_uid) {}

  // Reads live->path again and applies what may change live; `by` names who asked, for the log.
  Result<rpc::ReloadReply> reload(const std::string& by);
  // Registers RELOAD (root and vvmd's user over the Unix socket only), and a reload on SIGHUP.
  rpc::Served<rpc::ReloadRequest> serve(rpc::Server& server);

 private:
  Config* live_;
  ReloadFacts facts_;
  Changed changed_;
  uid_t daemon_uid_;
};

}  // namespace vvm::vvmd
