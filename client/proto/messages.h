// proto/messages.h: the control protocol's messages as C++ values, and their XDR encoding.
//
// vvm_proto.x defines the wire format; rpcgen turns it into C structs and libtirpc's xdr_*
// routines, which only proto/messages.cc sees. Everyone else works with these types: a Request
// holds one operation's arguments, a Reply either a Status error or that operation's result.
//
// Adding an operation: its arguments and result here, an arm in RequestBody and ReplyBody, and
// the conversions in proto/messages.cc (the compiler points at every switch that needs it).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"
#include "common/vsn.h"
#include "common/vv.h"

namespace vvm::rpc {

inline constexpr uint32_t kProtocolMagic = 0x56564d31;  // "VVM1"
inline constexpr uint32_t kProtocolVersion = 1;

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
};
std::string_view op_name(Op op);  // "ping"

struct PingRequest {
  std::string payload;  // echoed back
};
struct PingReply {
  std::string daemon;    // "vvmd", "vvmover"
  std::string name;      // host name, or the mover's name
  std::string software;  // "vvm 0.1.0"
  uint64_t uptime_ms = 0;
  std::string payload;
};

// ARCHIVE and STAGE (vvm_proto.x says how a copy is answered and reported).
struct TapeFile {  // what the HDR and EOF labels of a VV's tape file hold
  std::string vv_class;
  uint64_t serial = 0;
  uint64_t client_id = 0;
  uint64_t size = 0;
  uint64_t time_finished = 0;
  bool operator==(const TapeFile&) const = default;
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
};
struct ArchiveRequest {
  CopyArgs copy;
};
struct StageRequest {
  CopyArgs copy;
};
struct CopyAccepted {
  Op op = Op::kArchive;  // which request this answers
  uint64_t job = 0;
  std::string drive;
  bool operator==(const CopyAccepted&) const = default;
};

enum class CopyState : uint32_t { kRunning = 0, kDone = 1, kFailed = 2 };
struct CopyReport {
  uint64_t request_id = 0;
  std::string mover;
  uint64_t job = 0;
  CopyState state = CopyState::kRunning;
  uint64_t bytes_done = 0, bytes_total = 0;
  std::string vsn;  // done
  uint64_t file_number = 0;
  uint64_t checksum = 0;
  Status failure;  // failed; NoSpace: the VSN is full, try another
};
struct CopyReportAck {};

// The VV catalogue (vvm_proto.x: VV_CREATE, VV_SHOW, VV_LIST, VV_FINISH, VV_REMOVE); a VV is
// common/vv.h's Vv.
struct VvCreateRequest {
  std::string vv_class;
  uint64_t size = 0;
  uint64_t client_id = 0;
  std::string owner, group, perms;  // "": the requester's user, group, and 0640
  bool operator==(const VvCreateRequest&) const = default;
};
struct VvShowRequest {
  std::string name;
};
struct VvFinishRequest {
  std::string name;
};
struct VvRemoveRequest {
  std::string name;
  bool force = false;
};
struct VvListRequest {
  VvState state = VvState::kAny;
  std::string vv_class;               // "": any
  std::optional<uint64_t> client_id;  // nullopt: any
  std::string after;                  // the last name of the previous page
  uint32_t limit = 0;                 // 0: the daemon's page size
  bool operator==(const VvListRequest&) const = default;
};
// VV_OPEN and VV_CLOSE (vvm_proto.x says what a probe and a use are).
inline constexpr size_t kMaxGroups = 1024;  // supplementary groups an open may carry
struct VvOpenRequest {
  std::string name;
  bool writable = false;  // the export would be served read-write
  bool use = false;       // false: a probe that changes nothing
  bool tcp = false;       // the NBD peer's identity is `host`; else uid, gid and groups
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;  // supplementary
  std::string host;              // TCP: the peer's address; Unix: the plugin's host name
  bool operator==(const VvOpenRequest&) const = default;
};
struct VvOpenReply {
  Vv vv;
  std::string cache_path;
  bool writable = false;  // for this peer
  bool ready = false;
  std::string not_ready;  // why not, when !ready
  uint64_t open_id = 0;   // use and ready: the id VV_CLOSE takes
  bool operator==(const VvOpenReply&) const = default;
};
struct VvCloseRequest {
  uint64_t open_id = 0;
  bool written = false;
  bool operator==(const VvCloseRequest&) const = default;
};

// The reply to VV_CREATE, VV_SHOW, VV_FINISH, VV_REMOVE and VV_CLOSE: the VV (as it was, for
// remove).
struct VvReply {
  Op op = Op::kVvShow;  // which request this answers
  Vv vv;
  bool operator==(const VvReply&) const = default;
};
struct VvListReply {
  std::vector<Vv> vvs;
  bool more = false;  // ask again with after = vvs.back().name
};

// The VSN catalogue (vvm_proto.x: VSN_ADD, VSN_LIST); a VSN is common/vsn.h's Vsn.
struct VsnAddRequest {
  std::string vsn;
  std::string media;
  std::string vsn_class;  // "": any class of which the media is a type
  bool operator==(const VsnAddRequest&) const = default;
};
struct VsnListRequest {
  std::string after;   // the last name of the previous page
  uint32_t limit = 0;  // 0: the daemon's page size
  bool operator==(const VsnListRequest&) const = default;
};
// The reply to VSN_ADD: the VSN as it was recorded.
struct VsnReply {
  Vsn vsn;
  bool operator==(const VsnReply&) const = default;
};
struct VsnListReply {
  std::vector<Vsn> vsns;
  bool more = false;  // ask again with after = vsns.back().name
};

// VV_STAGE (vvm_proto.x).
struct VvStageRequest {
  std::string name;
  bool wait = false;  // a client waits for it
  bool operator==(const VvStageRequest&) const = default;
};
struct VvStageReply {
  bool cached = false;   // done
  bool copying = false;  // a mover reads it now
  std::string vsn;       // the copy being read, or queued to be
  uint64_t file = 0;
  uint64_t bytes_done = 0, bytes_total = 0;
  uint64_t queued = 0;  // stage requests waiting in all
  bool operator==(const VvStageReply&) const = default;
};

// STATUS (vvm_proto.x).
struct StatusRequest {
  bool operator==(const StatusRequest&) const = default;
};
struct StatusDrive {
  std::string name, mover, media, vsn;
  std::string copying;  // "" when idle
  uint64_t bytes_done = 0, bytes_total = 0, mounts = 0;
  bool usable = true;
  bool operator==(const StatusDrive&) const = default;
};
struct StatusQueue {
  std::string kind;  // "archive", "stage"
  std::string key;   // "A LTO9", or the VSN
  uint64_t files = 0, bytes = 0, oldest_s = 0;
  bool waiting = false;
  bool operator==(const StatusQueue&) const = default;
};
struct StatusReply {
  uint64_t uptime_s = 0;
  std::vector<StatusDrive> drives;
  std::vector<StatusQueue> queues;
  uint64_t mounts = 0, opens = 0;
  uint64_t cache_used = 0, cache_size = 0;
  uint32_t high_watermark = 0, low_watermark = 0;
  bool operator==(const StatusReply&) const = default;
};

// VV_EVICT (vvm_proto.x): drop an archived VV's cache file now.
struct VvEvictRequest {
  std::string name;
  bool operator==(const VvEvictRequest&) const = default;
};
struct VvEvictReply {
  Vv vv;                 // as recorded after the eviction
  bool already = false;  // it was evicted before: nothing changed
  uint64_t freed = 0;    // bytes of cache space its file held
  bool operator==(const VvEvictReply&) const = default;
};

using RequestBody = std::variant<PingRequest, ArchiveRequest, StageRequest, CopyReport,
                                 VvCreateRequest, VvShowRequest, VvListRequest, VvFinishRequest,
                                 VvRemoveRequest, VvOpenRequest, VvCloseRequest, VsnAddRequest,
                                 VsnListRequest, VvStageRequest, StatusRequest, VvEvictRequest>;
// monostate: an error reply
using ReplyBody =
    std::variant<std::monostate, PingReply, CopyAccepted, CopyReportAck, VvReply, VvListReply,
                 VvOpenReply, VsnReply, VsnListReply, VvStageReply, StatusReply, VvEvictReply>;

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

// Encoding fails only when a field is longer than vvm_proto.x allows (InvalidArgument).
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
