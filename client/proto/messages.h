// proto/messages.h: the control protocol's messages as C++ values, and their XDR encoding.
//
// vvm_proto.x is the wire format's specification; this file declares each of its messages once,
// as a C++ struct that says everything the codec (proto/messages.cc) needs:
//
//   struct VvShowRequest {
//     static constexpr Op kOp = Op::kVvShow;          // its vvm_op, the union's discriminant
//     static constexpr std::string_view kName = "vv-show";  // op_name(), for logs and errors
//     using Reply = VvReply;                          // what a daemon answers it with
//     std::string name;
//     template <class F, class M>                     // M: VvShowRequest or const VvShowRequest
//     static void fields(F& f, M& m) { f.short_string(m.name, "vv name"); }
//   };
//
// `fields` lists the struct's XDR fields in the order vvm_proto.x gives them, and drives both
// the encoding and the decoding. What `f` offers, and the XDR each call stands for:
//
//   f.u32(v)  f.u64(v)  f.flag(v)     unsigned int, unsigned hyper, bool
//   f.short_string(s, "label")        string<VVM_MAX_NAME>; "label" names it in a length error
//   f.long_string(s, "label")         string<VVM_MAX_TEXT>
//   f.opaque(s, "label")              opaque<VVM_MAX_TEXT>
//   f.enumeration(e, first, last, "VV", "VV state")
//                                     an enum; a value outside [first, last] is refused on
//                                     decode as "VV with unknown VV state 9"
//   f.nested(x)                       a struct with its own `fields`
//   f.array(a)                        a fixed array (std::array) of such structs
//   f.list(v)                         a variable array (std::vector) of such structs, vvs<>
//   f.list(v, max, "label")           a variable array of unsigned ints, groups<max>
//   f.optional(o)                     bool present, then the unsigned hyper (0 when absent)
//   f.failure(status, failed, "what") a vvm_code and string<VVM_MAX_TEXT> message; the Status
//                                     is set on decode only when `failed`
//
// RequestBody lists every request; ReplyBody is derived from their Reply types. Both are checked
// when this header compiles: a request without kOp, kName, Reply or fields, a reply without
// fields, or two requests with one op do not compile. A reply type that answers more than one
// request (VvReply, CopyAccepted) carries `Op op` to say which; the codec puts it on the wire as
// the discriminant and refuses an op whose request has another Reply.
//
// Everyone works with these types: a Request holds one operation's arguments, a Reply either a
// Status error or that operation's result.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/copy_mark.h"
#include "common/status.h"
#include "common/vsn.h"
#include "common/vv.h"
#include "proto/meta.h"

namespace vvm::rpc {

inline constexpr uint32_t kProtocolMagic = 0x56564d31;  // "VVM1"
inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr size_t kMaxText = 4096;  // VVM_MAX_TEXT: string<> and opaque<> of text
inline constexpr size_t kMaxName = 256;   // VVM_MAX_NAME: names

enum class Op : uint32_t {
  kNone = 0,
  kPing = 1,
  kArchive = 2,
  kStage = 3,
  kCopyReport = 4,
  kVvCreate = 5,
  kVvShow = 6,
  kVvList = 7,
  kVvFinish = 8,
  kVvRemove = 9,
  kVvOpen = 10,
  kVvClose = 11,
  kVsnAdd = 12,
  kVsnList = 13,
  kVvStage = 14,
  kVvEvict = 15,
  kStatus = 16,
  kDbStats = 17,
  kDbCheck = 18,
  kDbBackup = 19,
  kCopyList = 20,
  kVsnSet = 21,
  kVsnDetails = 22,
  kDriveSet = 23,
  kDriveList = 24,
  kVsnRepack = 25,
  kVsnReclaim = 26,
  kRepackList = 27,
  kVerify = 28,
  kVsnVerify = 29,
  kVerifyList = 30,
  kTapeCopy = 31,
  kReload = 36,
  kClassList = 37,
  kClassPrune = 38,
  kVvCopies = 39,
  kCancel = 40,
};
std::string_view op_name(Op op);  // "ping"

// Forward declarations, so that a request can name its Reply before the reply is defined.
struct PingReply;
struct CopyAccepted;
struct CopyReportAck;
struct CancelReply;
struct VvReply;
struct VvListReply;
struct VvOpenReply;
struct VsnReply;
struct VsnListReply;
struct VvStageReply;
struct DbStatsReply;
struct DbCheckReply;
struct CopyListReply;
struct VsnSetReply;
struct VsnDetailsReply;
struct DriveDetail;
struct DriveListReply;
struct RepackInfo;
struct VsnReclaimReply;
struct RepackListReply;
struct VsnVerifyReply;
struct VerifyListReply;
struct DbBackupReply;
struct StatusReply;
struct VvEvictReply;
struct ReloadReply;
struct ClassListReply;
struct ClassPruneReply;
struct VvCopiesReply;

struct PingRequest {
  static constexpr Op kOp = Op::kPing;
  static constexpr std::string_view kName = "ping";
  using Reply = PingReply;
  std::string payload;  // echoed back
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.opaque(m.payload, "ping payload");
  }
};
struct PingReply {
  std::string daemon;    // "vvmd", "vvmover"
  std::string name;      // host name, or the mover's name
  std::string software;  // "vvm 0.1.0"
  uint64_t uptime_ms = 0;
  std::string payload;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.daemon, "ping daemon");
    f.short_string(m.name, "ping name");
    f.short_string(m.software, "ping software");
    f.u64(m.uptime_ms);
    f.opaque(m.payload, "ping payload");
  }
};

// ARCHIVE and STAGE (vvm_proto.x says how a copy is answered and reported).
struct TapeFile {  // what the HDR and EOF labels of a VV's tape file hold
  std::string vv_class;
  uint64_t serial = 0;
  uint64_t client_id = 0;
  uint64_t size = 0;
  uint64_t time_finished = 0;
  bool operator==(const TapeFile&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vv_class, "copy class");
    f.u64(m.serial);
    f.u64(m.client_id);
    f.u64(m.size);
    f.u64(m.time_finished);
  }
};
struct CopyArgs {
  std::string drive;  // "" for any free drive
  std::string vsn;
  uint64_t file_number = 0;
  std::string cache_path;
  TapeFile file;
  uint64_t checksum = 0;  // stage: the one to check
  std::string reply_to;   // an endpoint
  uint64_t request_id = 0;
  bool operator==(const CopyArgs&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.drive, "copy drive");
    f.short_string(m.vsn, "copy vsn");
    f.u64(m.file_number);
    f.long_string(m.cache_path, "copy cache path");
    f.nested(m.file);
    f.u64(m.checksum);
    f.long_string(m.reply_to, "copy reply-to");
    f.u64(m.request_id);
  }
};
struct ArchiveRequest {
  static constexpr Op kOp = Op::kArchive;
  static constexpr std::string_view kName = "archive";
  using Reply = CopyAccepted;
  CopyArgs copy;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.nested(m.copy);
  }
};
struct StageRequest {
  static constexpr Op kOp = Op::kStage;
  static constexpr std::string_view kName = "stage";
  using Reply = CopyAccepted;
  CopyArgs copy;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.nested(m.copy);
  }
};
// VERIFY (vvm_proto.x): a tape file read back and checked, nothing written.
struct VerifyRequest {
  static constexpr Op kOp = Op::kVerify;
  static constexpr std::string_view kName = "verify";
  using Reply = CopyAccepted;
  CopyArgs copy;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.nested(m.copy);
  }
};
// TAPE_COPY (vvm_proto.x): a tape file copied to another tape by one mover's two drives.
struct TapeCopyRequest {
  static constexpr Op kOp = Op::kTapeCopy;
  static constexpr std::string_view kName = "tape-copy";
  using Reply = CopyAccepted;
  CopyArgs to;  // the destination; its file, checksum and reply_to are the copy's
  std::string from_drive;
  std::string from_vsn;
  uint64_t from_file = 0;
  bool operator==(const TapeCopyRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.nested(m.to);
    f.short_string(m.from_drive, "tape copy source drive");
    f.short_string(m.from_vsn, "tape copy source vsn");
    f.u64(m.from_file);
  }
};
// CANCEL (vvm_proto.x): a running verify ended now, for a stage that needs its drive.
struct CancelRequest {
  static constexpr Op kOp = Op::kCancel;
  static constexpr std::string_view kName = "cancel";
  using Reply = CancelReply;
  uint64_t job = 0;
  uint64_t request_id = 0;
  std::string reason;
  bool operator==(const CancelRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.u64(m.job);
    f.u64(m.request_id);
    f.long_string(m.reason, "cancel reason");
  }
};
struct CancelReply {
  template <class F, class M>
  static void fields(F&, M&) {}
};
struct CopyAccepted {
  Op op = Op::kArchive;  // which request this answers
  uint64_t job = 0;
  std::string drive;
  bool operator==(const CopyAccepted&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.u64(m.job);
    f.short_string(m.drive, "accepted drive");
  }
};

enum class CopyState : uint32_t { kRunning = 0, kDone = 1, kFailed = 2 };
struct CopyReport {
  static constexpr Op kOp = Op::kCopyReport;
  static constexpr std::string_view kName = "copy-report";
  using Reply = CopyReportAck;
  uint64_t request_id = 0;
  std::string mover;
  uint64_t job = 0;
  CopyState state = CopyState::kRunning;
  uint64_t bytes_done = 0, bytes_total = 0;
  // done: the VSN written; failed: the tape to blame, "" for none (a tape copy that cannot tell,
  // a stage whose cache file failed)
  std::string vsn;
  uint64_t file_number = 0;
  uint64_t checksum = 0;
  Status failure;  // failed; NoSpace: the VSN is full, try another
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.u64(m.request_id);
    f.short_string(m.mover, "report mover");
    f.u64(m.job);
    f.enumeration(m.state, CopyState::kRunning, CopyState::kFailed, "copy report", "state");
    f.u64(m.bytes_done);
    f.u64(m.bytes_total);
    f.short_string(m.vsn, "report vsn");
    f.u64(m.file_number);
    f.u64(m.checksum);
    f.failure(m.failure, m.state == CopyState::kFailed, "copy report");
  }
};
struct CopyReportAck {
  template <class F, class M>
  static void fields(F&, M&) {}
};

// The VV catalogue (vvm_proto.x: VV_CREATE, VV_SHOW, VV_LIST, VV_FINISH, VV_REMOVE); a VV is
// common/vv.h's Vv.
struct VvCreateRequest {
  static constexpr Op kOp = Op::kVvCreate;
  static constexpr std::string_view kName = "vv-create";
  using Reply = VvReply;
  std::string vv_class;
  uint64_t size = 0;
  uint64_t client_id = 0;
  std::string owner, group, perms;  // "": the requester's user, group, and 0640
  bool operator==(const VvCreateRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vv_class, "create class");
    f.u64(m.size);
    f.u64(m.client_id);
    f.short_string(m.owner, "create owner");
    f.short_string(m.group, "create group");
    f.short_string(m.perms, "create perms");
  }
};
struct VvShowRequest {
  static constexpr Op kOp = Op::kVvShow;
  static constexpr std::string_view kName = "vv-show";
  using Reply = VvReply;
  std::string name;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "vv name");
  }
};
struct VvFinishRequest {
  static constexpr Op kOp = Op::kVvFinish;
  static constexpr std::string_view kName = "vv-finish";
  using Reply = VvReply;
  std::string name;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "vv name");
  }
};
struct VvRemoveRequest {
  static constexpr Op kOp = Op::kVvRemove;
  static constexpr std::string_view kName = "vv-remove";
  using Reply = VvReply;
  std::string name;
  bool force = false;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "vv name");
    f.flag(m.force);
  }
};
struct VvListRequest {
  static constexpr Op kOp = Op::kVvList;
  static constexpr std::string_view kName = "vv-list";
  using Reply = VvListReply;
  VvState state = VvState::kAny;
  std::string vv_class;               // "": any
  std::optional<uint64_t> client_id;  // nullopt: any
  std::string after;                  // the last name of the previous page
  uint32_t limit = 0;                 // 0: the daemon's page size
  bool operator==(const VvListRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.enumeration(m.state, VvState::kAny, VvState::kArchived, "VV list", "VV state");
    f.short_string(m.vv_class, "list class");
    f.optional(m.client_id);
    f.short_string(m.after, "list after");
    f.u32(m.limit);
  }
};
// VV_OPEN and VV_CLOSE (vvm_proto.x says what a probe and a use are).
inline constexpr size_t kMaxGroups = 1024;  // supplementary groups an open may carry
struct VvOpenRequest {
  static constexpr Op kOp = Op::kVvOpen;
  static constexpr std::string_view kName = "vv-open";
  using Reply = VvOpenReply;
  std::string name;
  bool writable = false;  // the export would be served read-write
  bool use = false;       // false: a probe that changes nothing
  bool tcp = false;       // the NBD peer's identity is `host`; else uid, gid and groups
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;  // supplementary
  std::string host;              // TCP: the peer's address; Unix: the plugin's host name
  bool operator==(const VvOpenRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "vv name");
    f.flag(m.writable);
    f.flag(m.use);
    f.flag(m.tcp);
    f.u32(m.uid);
    f.u32(m.gid);
    f.list(m.groups, kMaxGroups, "groups");
    f.short_string(m.host, "open host");
  }
};
struct VvOpenReply {
  Vv vv;
  std::string cache_path;
  bool writable = false;  // for this peer
  bool ready = false;
  std::string not_ready;  // why not, when !ready
  uint64_t open_id = 0;   // use and ready: the id VV_CLOSE takes
  bool operator==(const VvOpenReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.nested(m.vv);
    f.long_string(m.cache_path, "open cache path");
    f.flag(m.writable);
    f.flag(m.ready);
    f.long_string(m.not_ready, "open not-ready");
    f.u64(m.open_id);
  }
};
struct VvCloseRequest {
  static constexpr Op kOp = Op::kVvClose;
  static constexpr std::string_view kName = "vv-close";
  using Reply = VvReply;
  uint64_t open_id = 0;
  bool written = false;
  bool operator==(const VvCloseRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.u64(m.open_id);
    f.flag(m.written);
  }
};

// The reply to VV_CREATE, VV_SHOW, VV_FINISH, VV_REMOVE and VV_CLOSE: the VV (as it was, for
// remove).
struct VvReply {
  Op op = Op::kVvShow;  // which request this answers
  Vv vv;
  bool operator==(const VvReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.nested(m.vv);
  }
};
struct VvListReply {
  std::vector<Vv> vvs;
  bool more = false;  // ask again with after = vvs.back().name
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.list(m.vvs);
    f.flag(m.more);
  }
};

// The VSN catalogue (vvm_proto.x: VSN_ADD, VSN_LIST); a VSN is common/vsn.h's Vsn.
struct VsnAddRequest {
  static constexpr Op kOp = Op::kVsnAdd;
  static constexpr std::string_view kName = "vsn-add";
  using Reply = VsnReply;
  std::string vsn;
  std::string media;
  std::string vsn_class;  // "": any class of which the media is a type
  bool operator==(const VsnAddRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "vsn name");
    f.short_string(m.media, "vsn media");
    f.short_string(m.vsn_class, "vsn class");
  }
};
struct VsnListRequest {
  static constexpr Op kOp = Op::kVsnList;
  static constexpr std::string_view kName = "vsn-list";
  using Reply = VsnListReply;
  std::string after;   // the last name of the previous page
  uint32_t limit = 0;  // 0: the daemon's page size
  bool operator==(const VsnListRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.after, "list after");
    f.u32(m.limit);
  }
};
// The reply to VSN_ADD: the VSN as it was recorded.
struct VsnReply {
  Vsn vsn;
  bool operator==(const VsnReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.nested(m.vsn);
  }
};
struct VsnListReply {
  std::vector<Vsn> vsns;
  bool more = false;  // ask again with after = vsns.back().name
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.list(m.vsns);
    f.flag(m.more);
  }
};

// VV_STAGE (vvm_proto.x).
struct VvStageRequest {
  static constexpr Op kOp = Op::kVvStage;
  static constexpr std::string_view kName = "vv-stage";
  using Reply = VvStageReply;
  std::string name;
  bool wait = false;  // a client waits for it
  bool operator==(const VvStageRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "vv name");
    f.flag(m.wait);
  }
};
struct VvStageReply {
  bool cached = false;   // done
  bool copying = false;  // a mover reads it now
  std::string vsn;       // the copy being read, or queued to be
  uint64_t file = 0;
  uint64_t bytes_done = 0, bytes_total = 0;
  uint64_t queued = 0;  // stage requests waiting in all
  bool operator==(const VvStageReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.flag(m.cached);
    f.flag(m.copying);
    f.short_string(m.vsn, "stage vsn");
    f.u64(m.file);
    f.u64(m.bytes_done);
    f.u64(m.bytes_total);
    f.u64(m.queued);
  }
};

// STATUS (vvm_proto.x).
struct StatusRequest {
  static constexpr Op kOp = Op::kStatus;
  static constexpr std::string_view kName = "status";
  using Reply = StatusReply;
  bool operator==(const StatusRequest&) const = default;
  template <class F, class M>
  static void fields(F&, M&) {}
};
struct StatusDrive {
  std::string name, mover, media, vsn;
  std::string copying;  // "" when idle
  uint64_t bytes_done = 0, bytes_total = 0, mounts = 0;
  bool usable = true;
  bool operator==(const StatusDrive&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "drive name");
    f.short_string(m.mover, "drive mover");
    f.short_string(m.media, "drive media");
    f.short_string(m.vsn, "drive vsn");
    f.long_string(m.copying, "drive copying");
    f.u64(m.bytes_done);
    f.u64(m.bytes_total);
    f.u64(m.mounts);
    f.flag(m.usable);
  }
};
struct StatusQueue {
  std::string kind;  // "archive", "stage"
  std::string key;   // "A LTO9", or the VSN
  uint64_t files = 0, bytes = 0, oldest_s = 0;
  bool waiting = false;
  bool operator==(const StatusQueue&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.kind, "queue kind");
    f.short_string(m.key, "queue key");
    f.u64(m.files);
    f.u64(m.bytes);
    f.u64(m.oldest_s);
    f.flag(m.waiting);
  }
};
struct StatusReply {
  uint64_t uptime_s = 0;
  std::vector<StatusDrive> drives;
  std::vector<StatusQueue> queues;
  uint64_t mounts = 0, opens = 0;
  uint64_t cache_used = 0, cache_size = 0;
  uint32_t high_watermark = 0, low_watermark = 0;
  bool operator==(const StatusReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.u64(m.uptime_s);
    f.list(m.drives);
    f.list(m.queues);
    f.u64(m.mounts);
    f.u64(m.opens);
    f.u64(m.cache_used);
    f.u64(m.cache_size);
    f.u32(m.high_watermark);
    f.u32(m.low_watermark);
  }
};

// VV_EVICT (vvm_proto.x): drop an archived VV's cache file now.
struct VvEvictRequest {
  static constexpr Op kOp = Op::kVvEvict;
  static constexpr std::string_view kName = "vv-evict";
  using Reply = VvEvictReply;
  std::string name;
  bool operator==(const VvEvictRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "vv name");
  }
};
struct VvEvictReply {
  Vv vv;                 // as recorded after the eviction
  bool already = false;  // it was evicted before: nothing changed
  uint64_t freed = 0;    // bytes of cache space its file held
  bool operator==(const VvEvictReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.nested(m.vv);
    f.flag(m.already);
    f.u64(m.freed);
  }
};

// DB_STATS, DB_CHECK, DB_BACKUP (vvm_proto.x): vvmd's database, seen and copied whole.
struct DbStatsRequest {
  static constexpr Op kOp = Op::kDbStats;
  static constexpr std::string_view kName = "db-stats";
  using Reply = DbStatsReply;
  bool operator==(const DbStatsRequest&) const = default;
  template <class F, class M>
  static void fields(F&, M&) {}
};
struct DbCheckRequest {
  static constexpr Op kOp = Op::kDbCheck;
  static constexpr std::string_view kName = "db-check";
  using Reply = DbCheckReply;
  bool operator==(const DbCheckRequest&) const = default;
  template <class F, class M>
  static void fields(F&, M&) {}
};
struct DbBackupRequest {
  static constexpr Op kOp = Op::kDbBackup;
  static constexpr std::string_view kName = "db-backup";
  using Reply = DbBackupReply;
  std::string dir;
  bool operator==(const DbBackupRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.long_string(m.dir, "backup folder");
  }
};
struct DbTable {
  std::string name, file;
  uint64_t records = 0, slots = 0, free_slots = 0, record_size = 0;
  bool operator==(const DbTable&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "table name");
    f.long_string(m.file, "table file");
    f.u64(m.records);
    f.u64(m.slots);
    f.u64(m.free_slots);
    f.u64(m.record_size);
  }
};
struct DbProblem {
  std::string what;
  bool operator==(const DbProblem&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.long_string(m.what, "database problem");
  }
};
struct DbStatsReply {
  std::string dir;
  std::vector<DbTable> tables;
  uint64_t journal_bytes = 0, checkpoint_bytes = 0;
  bool operator==(const DbStatsReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.long_string(m.dir, "database folder");
    f.list(m.tables);
    f.u64(m.journal_bytes);
    f.u64(m.checkpoint_bytes);
  }
};
struct DbCheckReply {
  DbStatsReply stats;
  std::vector<DbProblem> problems;  // none when the database is sound
  bool operator==(const DbCheckReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.nested(m.stats);
    f.list(m.problems);
  }
};
struct DbBackupReply {
  std::string dir;
  uint64_t files = 0, bytes = 0;
  bool operator==(const DbBackupReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.long_string(m.dir, "backup folder");
    f.u64(m.files);
    f.u64(m.bytes);
  }
};

// COPY_LIST (vvm_proto.x): the bad and dead tape files of VV `vv`, or of those on VSN `vsn`.
struct CopyListRequest {
  static constexpr Op kOp = Op::kCopyList;
  static constexpr std::string_view kName = "copy-list";
  using Reply = CopyListReply;
  std::string vv;
  std::string vsn;
  bool operator==(const CopyListRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vv, "vv name");
    f.short_string(m.vsn, "vsn name");
  }
};
struct CopyListReply {
  std::vector<CopyMark> marks;
  bool operator==(const CopyListReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.list(m.marks);
  }
};

// VSN_SET, VSN_DETAILS (vvm_proto.x): a VSN's state set by hand; what vsn ls shows beside the
// record (who set the state when, the class's age, live, dead and bad tape files).
struct VsnDetail {
  std::string name;
  uint64_t state_since = 0;
  std::string state_by, state_reason;
  uint64_t class_since = 0;
  std::string class_how;  // "added", "first archive"
  uint64_t live_files = 0, live_bytes = 0, dead_files = 0, dead_bytes = 0, bad_files = 0;
  uint64_t errors_in_row = 0;
  bool operator==(const VsnDetail&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "vsn name");
    f.u64(m.state_since);
    f.short_string(m.state_by, "vsn state by");
    f.long_string(m.state_reason, "vsn state reason");
    f.u64(m.class_since);
    f.short_string(m.class_how, "vsn class how");
    f.u64(m.live_files);
    f.u64(m.live_bytes);
    f.u64(m.dead_files);
    f.u64(m.dead_bytes);
    f.u64(m.bad_files);
    f.u64(m.errors_in_row);
  }
};
struct VsnSetRequest {
  static constexpr Op kOp = Op::kVsnSet;
  static constexpr std::string_view kName = "vsn-set";
  using Reply = VsnSetReply;
  std::string vsn;
  VsnState state = VsnState::kHot;
  std::string reason;
  bool operator==(const VsnSetRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "vsn name");
    f.enumeration(m.state, VsnState::kBlank, VsnState::kBad, "VSN", "VSN state");
    f.long_string(m.reason, "vsn state reason");
  }
};
struct VsnSetReply {
  Vsn vsn;
  VsnDetail detail;
  bool operator==(const VsnSetReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.nested(m.vsn);
    f.nested(m.detail);
  }
};
struct VsnDetailsRequest {
  static constexpr Op kOp = Op::kVsnDetails;
  static constexpr std::string_view kName = "vsn-details";
  using Reply = VsnDetailsReply;
  std::string after;   // the last name of the previous page
  uint32_t limit = 0;  // 0: the daemon's page size
  bool operator==(const VsnDetailsRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.after, "list after");
    f.u32(m.limit);
  }
};
struct VsnDetailsReply {
  std::vector<VsnDetail> details;
  bool more = false;
  bool operator==(const VsnDetailsReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.list(m.details);
    f.flag(m.more);
  }
};

// DRIVE_SET, DRIVE_LIST (vvm_proto.x): drives taken down (by hand, or by vvmd after errors in a
// row) and brought up.
struct DriveDetail {
  std::string name, mover, media;
  bool up = true;
  uint64_t since = 0;
  std::string by, reason;
  uint64_t errors_in_row = 0;
  bool operator==(const DriveDetail&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "drive name");
    f.short_string(m.mover, "drive mover");
    f.short_string(m.media, "drive media");
    f.flag(m.up);
    f.u64(m.since);
    f.short_string(m.by, "drive by");
    f.long_string(m.reason, "drive reason");
    f.u64(m.errors_in_row);
  }
};
struct DriveSetRequest {
  static constexpr Op kOp = Op::kDriveSet;
  static constexpr std::string_view kName = "drive-set";
  using Reply = DriveDetail;
  std::string drive;
  bool up = true;
  std::string reason;
  bool operator==(const DriveSetRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.drive, "drive name");
    f.flag(m.up);
    f.long_string(m.reason, "drive reason");
  }
};
struct DriveListRequest {
  static constexpr Op kOp = Op::kDriveList;
  static constexpr std::string_view kName = "drive-list";
  using Reply = DriveListReply;
  bool operator==(const DriveListRequest&) const = default;
  template <class F, class M>
  static void fields(F&, M&) {}
};
struct DriveListReply {
  std::vector<DriveDetail> drives;
  bool operator==(const DriveListReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.list(m.drives);
  }
};

// VSN_REPACK, VSN_RECLAIM, REPACK_LIST (vvm_proto.x): a VSN's live copies moved to other VSNs
// of its media type, and an emptied VSN made writable again from file 1.
struct VsnRepackRequest {
  static constexpr Op kOp = Op::kVsnRepack;
  static constexpr std::string_view kName = "vsn-repack";
  using Reply = RepackInfo;
  std::string vsn;
  bool operator==(const VsnRepackRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "vsn name");
  }
};
struct RepackInfo {
  std::string vsn, media;
  std::string state;  // "running", "done"
  uint64_t since = 0;
  std::string by;
  uint64_t files_left = 0, bytes_left = 0, files_moved = 0, bytes_moved = 0;
  uint64_t files_moving = 0;
  bool operator==(const RepackInfo&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "vsn name");
    f.short_string(m.media, "vsn media");
    f.short_string(m.state, "repack state");
    f.u64(m.since);
    f.short_string(m.by, "repack by");
    f.u64(m.files_left);
    f.u64(m.bytes_left);
    f.u64(m.files_moved);
    f.u64(m.bytes_moved);
    f.u64(m.files_moving);
  }
};
struct VsnReclaimRequest {
  static constexpr Op kOp = Op::kVsnReclaim;
  static constexpr std::string_view kName = "vsn-reclaim";
  using Reply = VsnReclaimReply;
  std::string vsn;
  bool operator==(const VsnReclaimRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "vsn name");
  }
};
struct VsnReclaimReply {
  Vsn vsn;
  uint64_t dead_files = 0, dead_bytes = 0;
  bool operator==(const VsnReclaimReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.nested(m.vsn);
    f.u64(m.dead_files);
    f.u64(m.dead_bytes);
  }
};
struct RepackListRequest {
  static constexpr Op kOp = Op::kRepackList;
  static constexpr std::string_view kName = "repack-list";
  using Reply = RepackListReply;
  bool operator==(const RepackListRequest&) const = default;
  template <class F, class M>
  static void fields(F&, M&) {}
};
struct RepackListReply {
  std::vector<RepackInfo> repacks;
  bool operator==(const RepackListReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.list(m.repacks);
  }
};

// VSN_VERIFY, VERIFY_LIST (vvm_proto.x): a VSN's live copies read back and checked, and when and
// how each was last.
struct VsnVerifyRequest {
  static constexpr Op kOp = Op::kVsnVerify;
  static constexpr std::string_view kName = "vsn-verify";
  using Reply = VsnVerifyReply;
  std::string vsn;
  bool operator==(const VsnVerifyRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "vsn name");
  }
};
struct VsnVerifyReply {
  std::string vsn;
  uint64_t files = 0, bytes = 0;
  // vvmd's clock when the reads were queued: a mark this new or newer is from them, even one
  // equal to an older mark made within the same second.
  uint64_t since = 0;
  bool operator==(const VsnVerifyReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "vsn name");
    f.u64(m.files);
    f.u64(m.bytes);
    f.u64(m.since);
  }
};
struct VerifyListRequest {
  static constexpr Op kOp = Op::kVerifyList;
  static constexpr std::string_view kName = "verify-list";
  using Reply = VerifyListReply;
  std::string vsn;
  bool operator==(const VerifyListRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "vsn name");
  }
};
struct VerifyListReply {
  std::vector<VerifyMark> marks;
  uint64_t queued = 0;
  bool operator==(const VerifyListReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.list(m.marks);
    f.u64(m.queued);
  }
};

// RELOAD, CLASS_LIST, CLASS_PRUNE (vvm_proto.x): vvm.conf read again while vvmd runs, and the
// storage classes with the copies they lack and the extra ones they hold.
struct ReloadRequest {
  static constexpr Op kOp = Op::kReload;
  static constexpr std::string_view kName = "reload";
  using Reply = ReloadReply;
  bool operator==(const ReloadRequest&) const = default;
  template <class F, class M>
  static void fields(F&, M&) {}
};
struct TextLine {
  std::string text;
  bool operator==(const TextLine&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.long_string(m.text, "text line");
  }
};
struct ReloadReply {
  std::string path;
  std::vector<TextLine> applied;  // what changed live
  std::vector<TextLine> restart;  // what waits for a restart
  bool operator==(const ReloadReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.long_string(m.path, "reload path");
    f.list(m.applied);
    f.list(m.restart);
  }
};
struct ClassListRequest {
  static constexpr Op kOp = Op::kClassList;
  static constexpr std::string_view kName = "class-list";
  using Reply = ClassListReply;
  bool counts = true;  // scan every VV for the copies lacking and extra
  bool operator==(const ClassListRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.flag(m.counts);
  }
};
struct ClassMedia {
  std::string media;
  bool listed = true;  // in the class's media; false: its copies are extra
  uint64_t copies = 0, bytes = 0, lacking = 0, lacking_bytes = 0, on_way = 0;
  bool operator==(const ClassMedia&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.media, "class media");
    f.flag(m.listed);
    f.u64(m.copies);
    f.u64(m.bytes);
    f.u64(m.lacking);
    f.u64(m.lacking_bytes);
    f.u64(m.on_way);
  }
};
struct ClassInfo {
  std::string name;  // "A"
  std::string description;
  std::vector<ClassMedia> media;  // vvm.conf's, then the media only extra copies are on
  uint32_t read_max_drives = 0, write_max_drives = 0;  // 0: no limit
  uint32_t reading = 0, writing = 0;                   // drives held now
  uint64_t vvs = 0;
  bool operator==(const ClassInfo&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "class name");
    f.long_string(m.description, "class description");
    f.list(m.media);
    f.u32(m.read_max_drives);
    f.u32(m.write_max_drives);
    f.u32(m.reading);
    f.u32(m.writing);
    f.u64(m.vvs);
  }
};
struct ClassListReply {
  std::vector<ClassInfo> classes;
  bool counted = false;
  bool operator==(const ClassListReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.list(m.classes);
    f.flag(m.counted);
  }
};
struct ClassPruneRequest {
  static constexpr Op kOp = Op::kClassPrune;
  static constexpr std::string_view kName = "class-prune";
  using Reply = ClassPruneReply;
  std::string name;
  bool operator==(const ClassPruneRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "class name");
  }
};
struct ClassPruneReply {
  std::string name;
  uint64_t files = 0, bytes = 0;  // extra copies released
  uint64_t kept = 0;              // extra copies kept: their VV lacks one of the class's
  bool operator==(const ClassPruneReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "class name");
    f.u64(m.files);
    f.u64(m.bytes);
    f.u64(m.kept);
  }
};

// VV_COPIES (vvm_proto.x): what vvmd knows of each copy of some VVs: the media type of each tape
// a copy (or a copy found bad) is on, the copies their class no longer wants, and the copies it
// lacks, against the classes vvmd runs with. A copy's media type is its tape's, not its slot's.
// VVs one VV_COPIES may name: its reply stays well under the message limit.
inline constexpr uint32_t kMaxVvCopiesNames = 256;
struct VvName {
  std::string name;
  bool operator==(const VvName&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "vv name");
  }
};
struct VvCopiesRequest {
  static constexpr Op kOp = Op::kVvCopies;
  static constexpr std::string_view kName = "vv-copies";
  using Reply = VvCopiesReply;
  std::vector<VvName> vvs;  // at most kMaxVvCopiesNames
  bool operator==(const VvCopiesRequest&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.list(m.vvs);
  }
};
struct VsnMedia {
  std::string vsn;
  std::string media;  // "": no such VSN in the catalogue
  bool operator==(const VsnMedia&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.vsn, "vsn name");
    f.short_string(m.media, "vsn media");
  }
};
struct LackingCopy {
  std::string media;  // a media type of the class that no copy is on
  uint32_t copy = 0;  // the copy number (slot + 1) it will be written as; 0: no free slot
  bool operator==(const LackingCopy&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.media, "lacking media");
    f.u32(m.copy);
  }
};
struct VvCopies {
  std::string name;
  std::vector<VsnMedia> vsns;        // each VSN a copy or a bad copy of the VV is on
  std::vector<uint32_t> extra;       // copy numbers the class no longer wants (prune releases)
  std::vector<LackingCopy> lacking;  // in the class's order
  bool operator==(const VvCopies&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.short_string(m.name, "vv name");
    f.list(m.vsns);
    f.list(m.extra, kMaxVvCopies, "extra copies");
    f.list(m.lacking);
  }
};
struct VvCopiesReply {
  std::vector<VvCopies> vvs;  // those of the request found, in its order
  bool operator==(const VvCopiesReply&) const = default;
  template <class F, class M>
  static void fields(F& f, M& m) {
    f.list(m.vvs);
  }
};

// Every request of the protocol, the one list the codec, the server and the client work from.
using RequestBody =
    std::variant<PingRequest, ArchiveRequest, StageRequest, CopyReport, VvCreateRequest,
                 VvShowRequest, VvListRequest, VvFinishRequest, VvRemoveRequest, VvOpenRequest,
                 VvCloseRequest, VsnAddRequest, VsnListRequest, VvStageRequest, StatusRequest,
                 VvEvictRequest, DbStatsRequest, DbCheckRequest, DbBackupRequest, CopyListRequest,
                 VsnSetRequest, VsnDetailsRequest, DriveSetRequest, DriveListRequest,
                 VsnRepackRequest, VsnReclaimRequest, RepackListRequest, VerifyRequest,
                 VsnVerifyRequest, VerifyListRequest, TapeCopyRequest, ReloadRequest,
                 ClassListRequest, ClassPruneRequest, CancelRequest, VvCopiesRequest>;

// --- what makes a message, checked at compile time ---

// Accepts every call `fields` may make, doing nothing: what the concepts below test against.
struct FieldProbe {
  void u32(auto&) {}
  void u64(auto&) {}
  void flag(auto&) {}
  void short_string(auto&, std::string_view) {}
  void long_string(auto&, std::string_view) {}
  void opaque(auto&, std::string_view) {}
  template <class E>
  void enumeration(E&, E, E, std::string_view, std::string_view) {}
  void nested(auto&) {}
  void array(auto&) {}
  void list(auto&) {}
  void list(auto&, size_t, std::string_view) {}
  void optional(auto&) {}
  void failure(auto&, bool, std::string_view) {}
};

// A struct that describes its XDR fields, for decoding (T&) and for encoding (const T&).
template <class T>
concept Described = requires(FieldProbe& f, T& m, const T& c) {
  T::fields(f, m);
  T::fields(f, c);
};

// A request: its op, its name, its reply type, and fields for both.
template <class R>
concept Message = Described<R> && Described<typename R::Reply> && requires {
  { R::kOp } -> std::convertible_to<Op>;
  { R::kName } -> std::convertible_to<std::string_view>;
};

// A reply type that answers several requests carries the op it answers.
template <class T>
concept CarriesOp = requires(T& t) {
  { t.op } -> std::same_as<Op&>;
};

namespace detail {
template <class V>
struct Checked;
template <class... R>
struct Checked<std::variant<R...>> {
  static_assert((Message<R> && ...),
                "every request needs kOp, kName, a Reply and fields() for both: see the top of "
                "proto/messages.h");
  static constexpr bool kUniqueOps = [] {
    const Op ops[] = {R::kOp...};
    for (size_t i = 0; i < sizeof...(R); ++i) {
      if (ops[i] == Op::kNone) return false;
      for (size_t j = 0; j < i; ++j) {
        if (ops[i] == ops[j]) return false;
      }
    }
    return true;
  }();
  static_assert(kUniqueOps, "two requests share an op, or one has Op::kNone");
  // Empty replies: std::monostate, then each request's Reply once, in the requests' order.
  using Replies = meta::UniqueVariant<std::monostate, typename R::Reply...>;
};
}  // namespace detail

// Whether T is one of the protocol's requests.
template <class T>
inline constexpr bool kIsRequest = meta::kIsAlternative<T, RequestBody>;

// monostate: an error reply. Then every request's Reply type, each once, in RequestBody's order.
using ReplyBody = detail::Checked<RequestBody>::Replies;

namespace detail {
template <class T, class... R>
constexpr auto ops_answered(std::variant<R...>*) {
  std::array<Op, (size_t{std::is_same_v<typename R::Reply, T>} + ... + 0)> out{};
  size_t i = 0;
  ((std::is_same_v<typename R::Reply, T> ? (void)(out[i++] = R::kOp) : void()), ...);
  return out;
}
}  // namespace detail

// The ops of the requests that reply type T answers: VvReply answers five of them.
template <class T>
inline constexpr auto kOpsAnswered = detail::ops_answered<T>(static_cast<RequestBody*>(nullptr));

namespace detail {
template <class T>
constexpr bool answers_one_or_carries_op() {
  return CarriesOp<T> || kOpsAnswered<T>.size() == 1;
}
template <class V>
struct CheckedReplies;
template <class... T>
struct CheckedReplies<std::variant<std::monostate, T...>> {
  static_assert((Described<T> && ...));
  static_assert((answers_one_or_carries_op<T>() && ...),
                "a reply type that answers several requests must carry `Op op`");
  static constexpr bool kOk = true;
};
static_assert(CheckedReplies<ReplyBody>::kOk);
}  // namespace detail

Op op_of(const RequestBody& body);

struct Request {
  uint32_t version = kProtocolVersion;
  uint32_t xid = 0;
  RequestBody body;
};

struct Reply {
  uint32_t version = kProtocolVersion;
  uint32_t xid = 0;
  Status status;  // ok, or the error the daemon sent (then body is monostate)
  ReplyBody body;
};

// The start of every message, readable whatever version the peer speaks.
struct Preamble {
  uint32_t magic = 0;
  uint32_t version = 0;
  uint32_t xid = 0;
};

// Encoding fails only when a field is longer than vvm_proto.x allows (InvalidArgument), or a
// reply's op is not one its type answers.
Result<std::string> encode_request(const Request& request);
Result<std::string> encode_reply(const Reply& reply);

// ProtocolError for bytes that are not a vvm message (bad magic, bad XDR, trailing bytes).
Result<Preamble> decode_preamble(std::string_view bytes);
// Also VersionMismatch for another protocol version, InvalidArgument for an unknown operation.
Result<Request> decode_request(std::string_view bytes);
Result<Reply> decode_reply(std::string_view bytes);

// An error reply to the request that began with `preamble`.
Reply error_reply(const Preamble& preamble, Status status);

}  // namespace vvm::rpc
