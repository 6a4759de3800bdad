// catalog.h: vvmd's VV catalogue: create, show, list, finish and remove virtual volumes, each a
// record in the database's VV table and a sparse file in the cache folder (DESIGN.md, "VV
// lifecycle").
//
// Create makes the cache file first (sized with ftruncate, the file and its folder fsynced) and
// commits the record second, so a record never names a missing file; a crash between the two
// leaves a file no record names, which the next create of that serial replaces. Remove goes the
// other way (record first, then the file, once the record's end is durable) for the same reason;
// its tape files are marked dead in the copy table in the same commit (common/copy_mark.h).
// Finish moves a hot VV to finished and hands it to the scheduler (scheduler.h), which archives
// it.
//
// Who may do what (DESIGN.md, "Permissions"): anyone vvmd serves may create, show and list.
// Finish and remove are for the VV's owner (the peer's uid's name), root and vvmd's own uid. A
// TCP peer has no uid: it may create (vvmd's allow-host trusts the host) when it names the owner
// and group, and may not finish or remove until TCP peers have an identity (TLS-PSK).
//
// The handlers run one at a time on the server's thread, so a look-up and the change that follows
// it see no other writer in between. No handler waits there for a journal fdatasync: a change is
// applied at once (every later request sees it) and what must wait for its durability (the reply
// to a finish or a remove, the scheduler's copies of a finished VV, the removal of a cache file)
// runs back on that thread once its journal frame is durable (db/committer.h). A create also
// makes its cache file off that thread (run_in_background). Requests arriving together thus share
// one fdatasync, and none waits for another's.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "catalog/tables.h"
#include "catalog/vv_names.h"
#include "common/config.h"
#include "common/vv.h"
#include "db/committer.h"
#include "db/database.h"
#include "proto/messages.h"
#include "proto/server.h"

namespace vvm::vvmd {

class Catalog {
 public:
  // The most VVs one VV_LIST reply carries: ~250 bytes each on the wire at the record's widest,
  // so a page stays well under the 1 MiB message limit (rpc_test checks it).
  static constexpr uint32_t kMaxPage = 1000;

  struct Options {
    std::string cache_dir;          // created if missing
    std::set<char> classes;         // the configured storage classes
    uid_t daemon_uid = 0;           // may finish and remove any VV, as root may
    std::function<uint64_t()> now;  // unix seconds; the system clock when empty
  };
  // Scans the VV table once for the highest serial of each class.
  static Result<std::unique_ptr<Catalog>> open(db::Database* db, Options options);
  static Options options_from(const Config& config);

  // A new VV: its cache file (in the background), then its record, submitted on this thread
  // and answered through `done` once durable. `done` runs on the database's flusher thread when
  // the create got that far, else on this thread: it must only hand the result on.
  void create_async(const rpc::Peer& peer, const rpc::VvCreateRequest& request,
                    std::function<void(Result<Vv>)> done);
  // The same, waiting for the answer; only without a background (it would wait on the thread
  // that must run the second half).
  Result<Vv> create(const rpc::Peer& peer, const rpc::VvCreateRequest& request);
  Result<Vv> show(const std::string& name);
  // A reload changed vvm.conf's classes: VVs may be created in `classes` from now on (a new
  // class's serials continue from its counter, as at start).
  Status set_classes(const std::set<char>& classes);
  Result<rpc::VvListReply> list(const rpc::VvListRequest& request);
  // A finish and a remove answer through `done` once durable (on the loop, or before they
  // return when there is none); the plain forms wait, and only work without a loop.
  void finish_async(const rpc::Peer& peer, const std::string& name,
                    std::function<void(Result<Vv>)> done);
  Result<Vv> finish(const rpc::Peer& peer, const std::string& name);
  void remove_async(const rpc::Peer& peer, const rpc::VvRemoveRequest& request,
                    std::function<void(Result<Vv>)> done);
  Result<Vv> remove(const rpc::Peer& peer, const rpc::VvRemoveRequest& request);
  // Sets the VV's last access to now: an NBD connection used it (vv_opens.h). Applied at once,
  // not waited for: nobody is promised an access time.
  Result<Vv> record_access(const std::string& name);

  // Called after each finish is committed, with the finished record (the scheduler queues its
  // copies).
  void on_finished(std::function<void(const Vv&)> hook) { on_finished_ = std::move(hook); }
  // Asked before a finish (`for_write`: is it open for writing?) and a remove (is it open at
  // all?): Busy naming who has it open, else Ok. Without it nothing is in use.
  void in_use_check(std::function<Status(const std::string& vv, bool for_write)> check) {
    in_use_ = std::move(check);
  }
  // Where a create's blocking part (its cache file, made durable with two fsyncs) runs: `work`
  // off the catalogue's thread, then `then` back on it. Without it both
  // run at once, in the caller (tests, tools).
  using Background = std::function<void(std::function<void()> work, std::function<void()> then)>;
  void run_in_background(Background background) { background_ = std::move(background); }
  // Where what waits for a commit's durability runs: the server's thread (post). Without it a
  // change is committed and waited for in the caller (tests, tools).
  void finish_commits_on(db::Committer::Post post) { commits_.run_on(std::move(post)); }
  // Finishes the hot VVs that nobody has open for writing and nobody has used since
  // `idle_before` (unix seconds): vvm.conf's idle-finish. Returns how many it started (with a
  // loop, each is logged once durable).
  size_t finish_idle(uint64_t idle_before);

  // The bad and dead tape files (copy.tab) of a VV or on a VSN: what `vvctl show` marks bad.
  // At most kMaxPage of them.
  Result<rpc::CopyListReply> copy_marks(const rpc::CopyListRequest& request);

  // Registers the six operations' handlers; the catalogue must outlive the server's run.
  using Serves = rpc::Served<rpc::VvCreateRequest, rpc::VvShowRequest, rpc::VvFinishRequest,
                             rpc::VvRemoveRequest, rpc::VvListRequest, rpc::CopyListRequest>;
  Serves serve(rpc::Server& server);

  std::string cache_path(const std::string& name) const { return options_.cache_dir + "/" + name; }
  const std::string& cache_dir() const { return options_.cache_dir; }

  // Public for the cache manager (cache_manager.h), which evicts by the same rules and means.
  // The record of VV `name` and its slot; InvalidArgument for a bad name, NotFound naming it.
  Result<std::pair<uint64_t, Vv>> lookup(const std::string& name);
  // Ok when `peer` may change `vv` (finish, remove, evict: `action`), else PermissionDenied.
  Status may_change(const rpc::Peer& peer, const Vv& vv, std::string_view action) const;
  // fsyncs the cache folder, so that a file's creation or removal is durable.
  Status sync_cache_dir() const;

 private:
  Catalog(db::Database* db, Options options)
      : db_(db), commits_(db), options_(std::move(options)) {}
  // The sparse cache file for a new VV, durable (the file and its folder fsynced) before its
  // record is committed. Touches no state of the catalogue's: safe off its thread.
  Status make_cache_file(const std::string& name, uint64_t size) const;
  // A create's checks and its record, with a serial of its own (handed out now).
  Result<Vv> prepare_create(const rpc::Peer& peer, const rpc::VvCreateRequest& request);
  // Submits the record of a create whose cache file is made.
  void commit_create(const rpc::Peer& peer, Vv r, std::function<void(Result<Vv>)> done);
  uint64_t now() const;

  db::Database* db_;
  db::Committer commits_;
  Options options_;
  SerialAllocator serials_;
  std::function<void(const Vv&)> on_finished_;
  std::function<Status(const std::string&, bool)> in_use_;
  Background background_;
  // The commit of a finish, shared by finish() and finish_idle(): `then` once durable, after the
  // on_finished hook.
  void commit_finish(uint64_t slot, Vv r, std::function<void(Result<Vv>)> then);
};

}  // namespace vvm::vvmd
