// sched/scheduler.h: vvmd's tape scheduler: it hands the copies of finished VVs to the movers'
// drives and records what they report (DESIGN.md, "VV lifecycle", steps 3 and 4).
//
// Finishing a VV queues one copy per media type of its class (archive_queue.h). On every tick,
// and after every event, each queue in turn (oldest copy first) gets a drive: at once when a VSN
// of its class and media type that can take more files is already in a free drive; otherwise,
// once the queue is due, a free drive of that type gets a VSN mounted (a hot VSN of the class,
// else a blank one). The mover accepts the copy and reports its end to vvmd (COPY_REPORT); a
// done copy is recorded in one transaction with the VSN's next file and bytes, so a crash can
// never leave a VV pointing at a file its VSN does not account for. When every copy exists the
// VV is archived.
//
// Nothing is lost on failure: a VSN that fills up (NoSpace) is marked full and the copy goes
// first in line for another VSN; a VSN that holds something unexpected (Mismatch) is marked full
// too, with an error counted on it, since writing past what vvmd does not know would be worse. A
// mover that answers a copy request Busy (its drive is in use) or cannot be reached did not fail
// the copy: the copy keeps its place and another drive may take it, while that drive (for a mover
// that is down, each of its drives) is set aside a moment. Any other failure of a copy (I/O error,
// stalled copy, no report) is logged, counted on the VSN and retried after a pause that grows with
// each attempt; a copy the mover refuses is retried the same way, without counting on the VSN.
// The movers running copies are pinged every few seconds: when one is gone (two pings unanswered)
// or has restarted (its uptime is shorter than a copy's age), its copies died with it (a copy
// process dies with its mover) and go first in line again. A copy whose mover never reports is
// given up on after the mover's stall timeout plus a margin. On start (recover()), the VVs the
// database holds as finished get their missing copies queued again, and VSNs the database holds
// as in a drive go back to their slots: vvmd's view of the drives starts empty, as the movers'
// does.
//
// Stages (stage(): an NBD open of an evicted VV, `vvctl stage`) go before archive writes: a drive
// of a media type some stage needs takes no archive write. A VSN already in a free drive is read
// at once; a mount for a stage waits a moment (kStageGather) so that requests arriving together
// share it and are read in file order; a tape read kMountBudget times in a row leaves its drive to
// another tape of its media type that waits, and a tape with only background reads left (a
// repack's, a class change's) leaves it at once to a tape a client's request waits for. A stage
// whose copy fails its checks (Mismatch: label, size, checksum) is retried once, then that copy is
// set aside (logged as bad, counted on its VSN) and the next copy's VSN is queued; on other
// failures a copy is tried three times before the next one. With no copy left the VV goes back to
// evicted and the failure is logged. On start, VVs left staging are queued again and the movers'
// leftover temporary files (.stage.*) removed.
//
// Runs on the server's thread: handlers, ticks and the movers' answers (which the MoverPort hands
// back on that thread) never run at once, so the state needs no lock. It never waits there for
// the journal: what it records (a copy's place, a VSN's mount, state and errors, a VV's cache
// state) is applied at once and made durable by the database's flusher (db/committer.h), since
// nobody is promised it and recovery derives it again after a crash: a copy not recorded is
// queued and written again, drives start empty, a VV left staging is staged again or found whole.
//
// Fair use of drives: a class holds at most [class] read-max-drives drives for reading (stages,
// verifies) and write-max-drives for writing (archives, repack moves) at once, so that one
// class's backlog cannot starve the others; a drive freed goes to the class that uses the least
// of its share (drive_share()). Its archive copies cause no mount before the oldest has waited
// archive-min-wait (a tape of the right kind already in a free drive is written at once).
//
// Verifies (verify(): `vvctl vsn verify`) read every live copy on a VSN back on drives nothing
// else needs, and record when and how each was read and whether it was good (verify.tab); a copy
// that fails its checks is marked bad and made again, as after a stage (sched/verify.cc).
//
// Repacks (repack(): `vvctl vsn repack`) move every live copy off a VSN to other VSNs of its
// media type, tape to tape where one mover has a drive for each tape, else through the cache (a
// stage, then an archive write), and reclaim() makes an emptied VSN writable again from file 1;
// sched/repack.cc says how.
//
// Storage classes change while vvmd runs (a reload): a class that gains a media type has the copy
// each archived VV lacks made in the background, one that loses a type keeps those copies, extra,
// until prune() releases them; which copies a VV lacks is derived from the catalogue, never
// stored (sched/classes.cc, sched/class_copies.h).
//
// One class, seven files: scheduler.cc (recovery, the tick, sending copies and taking their
// answers and reports, VSN updates, status), archive.cc (the archive half), stage.cc (the stage
// half), repack.cc (repack and reclaim), verify.cc (verify), classes.cc (classes that change) and
// mover_watch.cc (pings and lost movers); policy.h holds the fixed rules (kStageGather,
// kMountBudget, the pauses and attempt counts).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "catalog/tables.h"
#include "common/config.h"
#include "db/committer.h"
#include "db/database.h"
#include "metrics/metrics.h"
#include "proto/messages.h"
#include "proto/server.h"
#include "sched/archive_queue.h"
#include "sched/class_copies.h"
#include "sched/library_view.h"
#include "sched/mover_port.h"
#include "sched/stage_queue.h"

namespace vvm::vvmd {

class Scheduler {
 public:
  struct Options {
    std::string reply_to;  // where movers send COPY_REPORT: vvmd's first listen endpoint
    // A mover's own reply_to, where it differs (report_endpoint(): over TLS), by mover name.
    std::map<std::string, std::string> mover_reply_to;
    std::function<std::string(const std::string& vv)> cache_path;
    std::string cache_dir;          // where the movers leave .stage.* files of stages cut short
    uid_t daemon_uid = 0;           // besides root, the uid whose reports are believed
    std::function<uint64_t()> now;  // unix seconds, for records; the system clock when empty
    // Monotonic time, for the queues, pauses and deadlines; Clock::now when empty.
    std::function<Clock::time_point()> clock;
    // What counts copies done and failed (metrics/metrics.h); none: nothing is counted.
    Metrics* metrics = nullptr;
    // Writes a fresh VOL label on a VSN being reclaimed (an emulated tape: cutting off what
    // followed it); none: the operator labels the tape (vvtape label) before the reclaim.
    std::function<Status(const Vsn&)> relabel;
  };
  // `movers` carries the requests to every mover; it must outlive the scheduler.
  Scheduler(db::Database* db, const Config& config, Options options, MoverPort* movers);

  // At start: VSNs back to their slots, finished VVs' missing copies queued again.
  Status recover();
  // A VV has just been finished: queue its copies.
  void finished(const Vv& vv);
  // Hands out what can go now, and gives up on copies that stopped reporting.
  void tick();
  // Where a stage stands, for VV_STAGE's reply and the plugin's wait.
  struct StageProgress {
    bool cached = false;   // done: the VV is in the cache
    bool copying = false;  // a mover reads it now
    std::string vsn;       // the copy being read, or queued to be
    uint64_t file = 0;
    uint64_t bytes_done = 0, bytes_total = 0;
    size_t queued = 0;                                  // stage requests waiting in all
    uint64_t job = 0;                                   // copying: the request that reads it
    std::string describe(const std::string& vv) const;  // "staging from L90001 file 3, ..."
  };
  // Asks for VV `name` back in the cache (`waiting`: a client waits for it): queues a read of
  // its best copy (one on a VSN already in a drive first) unless one is queued or running.
  // Unavailable when no copy is left to read (each failed its checks), NotFound for no such VV.
  Result<StageProgress> stage(const std::string& name, bool waiting);
  // Registers VV_STAGE.
  rpc::Served<rpc::VvStageRequest> serve_stage(rpc::Server& server);

  // An operator takes a drive down (nothing more is sent to it; a copy running there ends) or
  // brings it up, with a reason (needed to go down); root and vvmd's user only. Kept in the
  // database's state table, so that a restart keeps the drive down. NotFound naming the drives
  // for an unknown one.
  Result<rpc::DriveDetail> set_drive(const rpc::Peer& peer, const rpc::DriveSetRequest& request);
  rpc::DriveListReply drives() const;
  // Registers DRIVE_SET and DRIVE_LIST.
  rpc::Served<rpc::DriveSetRequest, rpc::DriveListRequest> serve_drives(rpc::Server& server);

  // An operator repacks a VSN: its live copies are moved to other VSNs of its media type, and
  // once none is left it is set reclaim (sched/repack.cc); root and vvmd's user only. The
  // repack is committed (state.tab) before `done` hears of it. NotFound for no such VSN, Busy
  // for one being repacked, InvalidArgument for a disabled one, Unavailable when no other VSN
  // can take its copies: nothing changes then.
  void repack(const rpc::Peer& peer, const rpc::VsnRepackRequest& request,
              std::function<void(Result<rpc::RepackInfo>)> done);
  // Makes a VSN in state reclaim with no live file writable again: a fresh VOL label (the
  // relabel option), next file 1, nothing used, its dead files forgotten, hot; answered once
  // durable. Refused (nothing changed) for a VSN in another state, being repacked or copied, or
  // still holding live files.
  void reclaim(const rpc::Peer& peer, const rpc::VsnReclaimRequest& request,
               std::function<void(Result<rpc::VsnReclaimReply>)> done);
  // The repacks running and done (state.tab's notes), with how far each has come.
  Result<rpc::RepackListReply> repacks() const;
  // Registers VSN_REPACK, VSN_RECLAIM and REPACK_LIST.
  rpc::Served<rpc::VsnRepackRequest, rpc::VsnReclaimRequest, rpc::RepackListRequest> serve_repack(
      rpc::Server& server);
  // From now on what waits for a commit's durability (the repack's and reclaim's answers) runs
  // through `post`, on the server's thread (db/committer.h).
  void finish_commits_on(db::Committer::Post post) { commits_.run_on(std::move(post)); }

  // An operator has every live copy on a VSN read back and checked (sched/verify.cc); root and
  // vvmd's user only. The reads are queued (the reply says how many) and run on drives no stage
  // or archive needs. NotFound for no such VSN, InvalidArgument for a disabled one.
  Result<rpc::VsnVerifyReply> verify(const rpc::Peer& peer, const rpc::VsnVerifyRequest& request);
  // The last verify of each tape file on a VSN, and the reads of it still queued or running.
  Result<rpc::VerifyListReply> verifies(const rpc::VerifyListRequest& request) const;
  // Registers VSN_VERIFY and VERIFY_LIST.
  rpc::Served<rpc::VsnVerifyRequest, rpc::VerifyListRequest> serve_verify(rpc::Server& server);

  // Storage classes that change while vvmd runs (sched/classes.cc). After a reload changed the
  // classes: the archived VVs that lack a copy are looked for again (as at start), and their
  // copies made in the background.
  void classes_changed();
  // Whether a VSN of `media` may take class `cls`'s copies (blank, or hot of the class): a
  // reload refuses a class a media type without one.
  bool has_tape_for(char cls, const std::string& media) const;
  // The VVs of class `cls` in the catalogue (a reload refuses to drop a class that has some).
  Result<uint64_t> vvs_of_class(char cls) const;
  // Each class, its media types, its drive limits and the drives it holds; with `counts`, the
  // copies its VVs lack and the extra ones they hold (a scan of every VV).
  Result<rpc::ClassListReply> classes(bool counts) const;
  // An operator releases class `name`'s extra copies (on media types it no longer lists): their
  // tape files are marked dead (copy.tab) and the copies taken out of their VVs, answered once
  // durable; a copy whose VV still lacks one of the class's copies is kept. Root and vvmd's user
  // only; NotFound naming the classes for an unknown one.
  void prune(const rpc::Peer& peer, const rpc::ClassPruneRequest& request,
             std::function<void(Result<rpc::ClassPruneReply>)> done);
  // VV_COPIES: for each VV named, the media of the VSNs its copies and bad copies are on, its
  // extra copies and those it lacks, against the running classes (what vvctl show prints, so
  // that no client guesses a copy's media from its own vvm.conf). Unknown names are left out.
  Result<rpc::VvCopiesReply> vv_copies(const rpc::VvCopiesRequest& request) const;
  // Registers CLASS_LIST, CLASS_PRUNE and VV_COPIES.
  rpc::Served<rpc::ClassListRequest, rpc::ClassPruneRequest, rpc::VvCopiesRequest> serve_classes(
      rpc::Server& server);

  // A mover's COPY_REPORT.
  Status report(const rpc::Peer& peer, const rpc::CopyReport& report);

  // Registers COPY_REPORT and a tick every `period`; `server` must outlive the scheduler's use.
  rpc::Served<rpc::CopyReport> serve(
      rpc::Server& server, std::chrono::milliseconds period = std::chrono::milliseconds(200));

  // The drives, mounts and queues of a STATUS reply.
  void fill_status(rpc::StatusReply* out) const;

  // For status and tests.
  struct Copying {
    uint64_t request_id = 0;
    std::string vv, vsn, drive, mover;
    uint64_t file = 0, bytes_done = 0, bytes_total = 0;
  };
  std::vector<Copying> copying() const;
  const ArchiveQueue& archive_queue() const { return queue_; }
  const StageQueue& stage_queue() const { return stages_; }
  const LibraryView& library() const { return view_; }

  // A copy's pause before retry number `attempts` (1, 2, ...): 2 s doubling, at most 5 minutes.
  static std::chrono::seconds retry_delay(uint32_t attempts);

  // Where `mover` sends its reports (Options::mover_reply_to, else reply_to).
  const std::string& reply_to(const std::string& mover) const {
    auto it = options_.mover_reply_to.find(mover);
    return it == options_.mover_reply_to.end() ? options_.reply_to : it->second;
  }

 private:
  struct InFlight {
    ArchiveItem item;                 // for a stage: the VV and the copy, for messages
    std::optional<StageItem> staged;  // set for a stage
    QueueKey key;
    std::string vsn, drive, mover;
    uint64_t file = 0;
    uint64_t job = 0;     // the mover's
    uint64_t job_id = 0;  // vvmd's: the request id, which logs and messages name
    uint64_t bytes_done = 0;
    Clock::time_point deadline;
    Clock::time_point started;
    std::chrono::seconds stall_margin{0};
    // A tape copy (item.from_vsn read in this drive, written to `vsn` in `drive`, both of
    // `mover`); empty for any other copy.
    std::string from_drive;
    // A tape copy that makes a class's new copy (into slot item.copy; the copy read stays), not
    // a repack's move (item.from_vsn's copy replaced).
    bool class_copy = false;
    // A failed tape copy: the tape its mover blamed (the report's VSN), "" when it could not tell.
    std::string failed_vsn;
    // A failed stage whose mover blamed no tape (a report without a VSN): the cache file could
    // not be written, which says nothing about the copy.
    bool cache_at_fault = false;
  };

  // Starts at most one stage; true when the stage queue moved (one went, or a request that no
  // longer needs a read was dropped), so that the caller tries again.
  bool dispatch_stage(Clock::time_point now);
  bool start_stage(StageItem item, DriveState& drive, Clock::time_point now);
  // The mover's arguments and the in-flight record for reading `item` (a copy of `vv`) on `drive`,
  // which is marked busy: a stage and a verify's read differ only in their op and log line.
  std::pair<rpc::CopyArgs, InFlight> read_request(const Vv& vv, StageItem item, DriveState& drive);
  void stage_done(InFlight f, const rpc::CopyReport& report);
  void stage_failed(InFlight f, const Status& why);
  // Records the copy `f` read as bad (copy.tab: when, why) and takes it out of the VV's copies,
  // leaving the VV finished; false when the VV no longer has that copy or the commit failed.
  bool mark_bad_copy(const InFlight& f, const Status& why);
  // Queues `item` on the best copy of `vv` not in item.bad_copies (item.copy, vsn, file and media
  // set); Unavailable naming the bad copies when none is left.
  Status queue_stage(const Vv& vv, StageItem item);
  // Sets the VV's cache state (applied now, durable soon).
  Status set_cache(const std::string& vv, CacheState cache, bool touch);
  // Records that `vsn` went into `drive` (its location and last mount).
  Status record_mount(const DriveState& drive, const std::string& vsn);
  // Puts `vsn` in `drive` (vvmd's view) unless it is there, records that mount and logs it as
  // "mount VSN (WHAT) in drive D of mover M PURPOSE". False when the record cannot be written:
  // logged, and the drive left empty again.
  bool mount(DriveState& drive, const std::string& vsn, const std::string& what,
             const std::string& purpose);

  // A VV's copy that lives on a VSN being repacked (live_copies()).
  struct LiveCopy {
    std::string vv;
    char vv_class = 'A';
    size_t copy = 0;
    uint64_t file = 0, bytes = 0;
    CacheState cache = CacheState::kCached;
  };
  // The live copies on `vsn`, in file order.
  Result<std::vector<LiveCopy>> live_copies(const std::string& vsn) const;
  // Each running repack a step on: its next copies staged or queued to be written, up to
  // policy::kRepackWindow on their way; an empty VSN set reclaim.
  void drive_repacks(Clock::time_point now);
  // A repack that has nothing left on its VSN: the VSN set reclaim, its note done.
  void end_repack(const std::string& vsn, uint64_t moved);
  // How far the repack of `note` has come.
  rpc::RepackInfo repack_info(const StateNote& note) const;
  // Root and vvmd's user over the Unix socket may `what`; PermissionDenied for anyone else.
  Status privileged(const rpc::Peer& peer, const std::string& what) const;
  // Whether `vsn` may take class `cls`'s next copy: its media's tape, blank or hot of the class,
  // not failing, not being repacked.
  bool can_take(const Vsn& vsn, char cls, const std::string& media) const;
  // can_take, failing or not: its state, class and media say it takes `cls`'s copies.
  bool takes_class(const Vsn& vsn, char cls, const std::string& media) const;
  // Queues a read of `vv` for a repack (a background stage), unless one is queued or running.
  Status stage_for_repack(const std::string& vv);
  // What became of an attempt to move a copy tape to tape (try_tape_copy()).
  enum class TapeCopyStart { kStarted, kWait, kThroughCache };
  // Starts the move of evicted copy `c` off `vsn` as a tape copy when one mover has a free drive
  // for each tape; kWait when one could but its drives, the tapes or the class's share are busy
  // now; kThroughCache (`*why` says why) when no mover can, or a tape copy of it failed reading.
  TapeCopyStart try_tape_copy(const LiveCopy& c, const std::string& vsn, const std::string& media,
                              Clock::time_point now, std::string* why);
  // Two free drives of `mover` for a tape copy: `*from` for `from_media` (the one holding
  // `from_vsn` when it is in one), `*to` for `to_media` (one holding a tape of `targets`, which
  // is then `*target`; else targets.front()); false when the mover has not both free now.
  bool pick_tape_copy_drives(const std::string& mover, const std::string& from_vsn,
                             const std::string& from_media, const std::string& to_media,
                             const std::vector<Vsn>& targets, Clock::time_point now,
                             DriveState** from, DriveState** to, const Vsn** target);
  // Records the mounts of item.from_vsn in `from` and `target` in `to` and sends the tape copy
  // of `vv` (`class_copy`: the class's new copy into slot item.copy; else a repack's move of
  // that copy); false, nothing sent, when a mount cannot be recorded.
  bool send_tape_copy(const Vv& vv, ArchiveItem item, const QueueKey& key, DriveState& from,
                      DriveState& to, const Vsn& target, bool class_copy, Clock::time_point now);
  // A tape copy that failed: the tape its mover blamed counted, the copy tried again (through
  // the cache after a failed read of the source).
  void tape_copy_failed(InFlight f, const Status& why);
  // Frees the drives `f` holds (both of a tape copy's); `unload`: their tapes in doubt.
  void release_drives(const InFlight& f, bool unload = false);
  static bool is_tape_copy(const InFlight& f) { return !f.from_drive.empty(); }

  // The copies `vv` lacks for its class `cls` (sched/class_copies.h), each with its free slot.
  std::vector<ClassCopies::Lacking> lacking_copies(const Vv& vv, const StorageClass& cls) const;
  // Queues the copies `vv` lacks (unless queued or being written); how many were queued.
  size_t queue_lacking(const Vv& vv, const StorageClass& cls);
  // Whether `vv` still lacks a copy on `key`'s media type, to be written into `slot`.
  bool still_lacking(const Vv& vv, const QueueKey& key, size_t slot) const;
  // The media type of VSN `name`; "" when there is no such VSN.
  std::string vsn_media(const std::string& name) const;
  // Every VSN's media type, read at once (for what scans the VV table, which allows no other read
  // while it runs), as class_copies() takes it: "" for a VSN that is not there.
  Result<std::function<std::string(const std::string& vsn)>> media_of_vsns() const;
  // Finds the archived VVs that lack a copy of their class (vvm.conf's media types against the
  // copies' VSNs): at start and after a reload. Nothing is stored: the catalogue says it again.
  Status find_lacking();
  // The lacking copies a step on: those of VVs in the cache queued as archive writes; evicted
  // ones copied tape to tape where a mover can (copy_route()), else staged in the background;
  // at most kClassCopyWindow of either at once, in file order per tape.
  void drive_class_copies(Clock::time_point now);
  // The copies of `vv` a lacking one may be read from, best first: not on a disabled VSN (never
  // mounted), one on a VSN set bad last.
  std::vector<CopySource> copy_sources(const Vv& vv) const;
  // Starts the tape copy `route` says makes `vv`'s lacking copy `l`; kWait while the drives,
  // the source tape or the class's share of drives are busy, or a client's stage wants a drive
  // of either media type; kThroughCache (`*why` says why) when no tape takes the copy now.
  TapeCopyStart start_class_copy(const Vv& vv, const ClassCopies::Lacking& l,
                                 const CopyRoute& route, Clock::time_point now, std::string* why);

  // Whether `f` is a verify's read (staged, with a `how`).
  static bool is_verify(const InFlight& f) { return f.staged && !f.staged->how.empty(); }
  // Queues a read back of every live copy on `vsn`, as `how`; the copies and bytes queued.
  Result<std::pair<uint64_t, uint64_t>> queue_verifies(const Vsn& vsn, const std::string& how);
  // Starts at most one verify's read on a drive that no stage or archive wants; true when the
  // verify queue moved.
  bool dispatch_verify(Clock::time_point now);
  bool start_verify(StageItem item, DriveState& drive, Clock::time_point now);
  void verify_done(InFlight f, const rpc::CopyReport& report);
  void verify_failed(InFlight f, const Status& why);
  // A client stage waits for a drive: the verify's read on its own tape is cancelled (CANCEL to
  // its mover), so that the stage reads the tape where it is; else, when every drive of its media
  // type is busy, another verify's read of that type. At most one cancel at a time a media type;
  // the read is read again later, and its failed report counts against nothing.
  void cancel_verifies_for_stages(Clock::time_point now);
  // Records the verify of `f`'s copy (verify.tab): good, or not and why.
  void record_verify(const InFlight& f, bool good, const std::string& why);
  // The background scrub ([vvmd] scrub-interval): when no verify is queued, the live copies of
  // the tape verified least recently, once the interval has passed since then.
  void scrub(Clock::time_point now);

  // Dispatches at most one copy of `key`; true when the queue moved (one went, or a copy that no
  // longer needs writing was dropped), so that the caller tries again.
  bool dispatch(const QueueKey& key, Clock::time_point now);
  // The VSNs of `media` that may take `cls`'s next copy, best first: hot ones of the class
  // (fewest errors first), then blank ones; none that is in a busy drive or copying (then
  // `*any_busy` is set), nor one that failed kMaxVsnErrors copies (named in `*failing`).
  std::vector<Vsn> writable_vsns(char cls, const std::string& media, bool* any_busy,
                                 std::vector<std::string>* failing = nullptr);
  // Sends `item` to `drive` onto `vsn`; false (item requeued) if the records do not allow it.
  bool start_copy(const QueueKey& key, ArchiveItem item, DriveState& drive, const Vsn& vsn,
                  Clock::time_point now);
  // The mover's arguments and the in-flight record that every copy request starts from: VV `vv`
  // (`item`, of queue `key`) written or read as `vsn` file `file` in `drive`, which is marked
  // busy, under the next request id. What only one kind of copy needs (a cache path, a checksum
  // to check, a tape copy's source drive, a stage's request) its caller adds.
  std::pair<rpc::CopyArgs, InFlight> copy_request(const Vv& vv, ArchiveItem item,
                                                  const QueueKey& key, DriveState& drive,
                                                  const std::string& vsn, uint64_t file);
  // Registers `f` (its deadline from the mover's stall timeout) and sends `args` as `op` to the
  // drive's mover; the answer comes back to accepted().
  void send(const DriveState& drive, InFlight f, rpc::Op op, rpc::CopyArgs args,
            Clock::time_point now);
  void accepted(uint64_t request_id, Result<rpc::CopyAccepted> answer);
  void copy_done(InFlight f, const rpc::CopyReport& report);
  void copy_failed(InFlight f, const Status& why);
  // Puts a failed copy back in line, after its pause.
  void retry(InFlight& f, bool front);
  // Whether VSN `name` is disabled (never mounted); false when there is no such VSN.
  bool vsn_disabled(const std::string& name) const;
  // Looks VSN `name` up, lets `change` edit it and applies it (durable soon).
  Status update_vsn(const std::string& name, const std::function<void(Vsn&)>& change);
  // Adds 1 to the VSN's errors (failed reads and writes; a bad copy is counted in the copy
  // table instead) and sets its state (if given), in one commit.
  void mark_vsn(const std::string& vsn, std::optional<VsnState> state, bool count_error);
  // A copy failed on `drive` and `vsn` (`in_row_vsn`: the VSN's fault too): after errors in a
  // row the drive goes down and a writable VSN read-only, each noted as vvmd's doing, and
  // logged. A copy that went well ends a row.
  void copy_error(const std::string& drive, const std::string& vsn, bool vsn_fault,
                  const Status& why);
  void copy_ok(const std::string& drive, const std::string& vsn);
  // Takes `drive` down or up and notes who and why (state.tab), applied now, durable soon.
  Status note_drive(DriveState& drive, bool up, const std::string& by, const std::string& reason);
  // Pings the movers that run copies; lose_copies() those of a mover that is gone or restarted.
  void check_movers();
  // The copies on `mover` started before `before` died with it: queued again, first in line.
  void lose_copies(const std::string& mover, Clock::time_point before, const Status& why);
  void wake();  // a tick soon, on the server thread
  Metrics& metrics() const { return options_.metrics ? *options_.metrics : Metrics::none(); }
  uint64_t now_unix() const;
  Clock::time_point steady_now() const;
  size_t copies_of(char cls) const;
  // Drives class `cls`'s copies hold now: for reading (stages, verifies) or for writing.
  uint32_t drives_held(char cls, bool reading) const;
  // Whether class `cls` may take one more drive to read or to write: it holds fewer than its
  // [class] read-max-drives or write-max-drives (no limit when unset).
  bool may_take_drive(char cls, bool reading) const;
  // How much of its share class `cls` uses: the drives it holds over its limit (over every
  // drive when it has none). A drive freed goes to the class that uses least.
  double drive_share(char cls, bool reading) const;
  // Whether a stage (not a repack's) of a class that may take a drive to read needs `media`.
  bool stages_want(const std::string& media) const;

  db::Database* db_;
  db::Committer commits_;
  const Config& config_;
  Options options_;
  MoverPort* movers_;
  rpc::Server* server_ = nullptr;
  bool wake_pending_ = false;
  ArchiveQueue queue_;
  StageQueue stages_;
  StageQueue verifies_;  // verifies' reads (StageItem::how set)
  Clock::time_point last_scrub_check_{};
  // vv -> until when a stage request is answered with this failure, and the failure
  std::map<std::string, std::pair<Clock::time_point, std::string>> failed_stages_;
  LibraryView view_;
  std::map<uint64_t, InFlight> in_flight_;  // by request id
  std::set<uint64_t> joined_;               // stage jobs someone else joined: logged once
  uint64_t next_request_id_;
  std::set<QueueKey> starved_;  // queues told "no VSN": logged once until that changes
  Clock::time_point last_mover_check_{};
  std::map<std::string, int> mover_misses_;  // pings unanswered in a row, by mover
  // Movers with a ping under way: one at a time, or pings to a mover that does not answer (each
  // waiting the request timeout) would pile up behind each other and the copies sent after them.
  std::set<std::string> pinging_;
  std::map<std::string, uint32_t> vsn_errors_in_row_;  // by VSN
  std::map<std::string, std::string> repacks_;         // VSN being repacked -> its media
  // Archived VVs that lack a copy since their class gained a media type, by the place of the
  // copy a stage reads (VSN, file, VV): staged in file order per tape (drive_class_copies()).
  std::set<std::tuple<std::string, uint64_t, std::string>> lacking_;
  Clock::time_point last_lacking_step_{};
  // Tape copies set back (by VV: a repack's move, or a class's new copy): not started again
  // before `not_before`; `through_cache` says why the copy no longer goes tape to tape (logged
  // once), empty while it may.
  struct MoveSetback {
    Clock::time_point not_before{};
    uint32_t attempts = 0;
    std::string through_cache;
    bool logged = false;
  };
  std::map<std::string, MoveSetback> move_setbacks_;
  // Verify reads whose cancel was asked for (by request id), and why.
  std::map<uint64_t, std::string> cancelling_;
};

}  // namespace vvm::vvmd
