// rpc_message.cc: converts between rpc_message.h's C++ types and vvm_proto.x's rpcgen structs,
// and runs libtirpc's XDR routines over memory buffers.
#include "rpc_message.h"

#include <fmt/core.h>
#include <rpc/rpc.h>

#include <cstring>
#include <memory>
#include <vector>

#include "rpc_frame.h"
#include "vvm_proto.h"

namespace vvm::rpc {

static_assert(kProtocolMagic == VVM_PROTO_MAGIC);
static_assert(kProtocolVersion == VVM_PROTO_VERSION);
static_assert(kMaxMessage == VVM_MAX_MESSAGE);
static_assert(static_cast<int>(Code::kInternal) == VVM_INTERNAL);
static_assert(static_cast<int>(Code::kVersionMismatch) == VVM_VERSION_MISMATCH);
static_assert(static_cast<int>(Code::kNoSpace) == VVM_NO_SPACE);
static_assert(static_cast<int>(Code::kMismatch) == VVM_MISMATCH);
static_assert(kLastCode == Code::kMismatch);
static_assert(static_cast<uint32_t>(Op::kPing) == VVM_OP_PING);
static_assert(static_cast<uint32_t>(Op::kArchive) == VVM_OP_ARCHIVE);
static_assert(static_cast<uint32_t>(Op::kStage) == VVM_OP_STAGE);
static_assert(static_cast<uint32_t>(Op::kCopyReport) == VVM_OP_COPY_REPORT);
static_assert(static_cast<uint32_t>(CopyState::kFailed) == VVM_COPY_FAILED);
static_assert(static_cast<uint32_t>(Op::kVvCreate) == VVM_OP_VV_CREATE);
static_assert(static_cast<uint32_t>(Op::kVvShow) == VVM_OP_VV_SHOW);
static_assert(static_cast<uint32_t>(Op::kVvList) == VVM_OP_VV_LIST);
static_assert(static_cast<uint32_t>(Op::kVvFinish) == VVM_OP_VV_FINISH);
static_assert(static_cast<uint32_t>(Op::kVvRemove) == VVM_OP_VV_REMOVE);
static_assert(static_cast<uint32_t>(Op::kVvOpen) == VVM_OP_VV_OPEN);
static_assert(static_cast<uint32_t>(Op::kVvClose) == VVM_OP_VV_CLOSE);
static_assert(static_cast<uint32_t>(VvState::kArchived) == VVM_VV_ARCHIVED);
static_assert(static_cast<uint32_t>(CacheState::kStaging) == VVM_CACHE_STAGING);
static_assert(kMaxVvCopies == VVM_MAX_COPIES);
static_assert(kMaxGroups == VVM_MAX_GROUPS);
static_assert(static_cast<uint32_t>(Op::kVsnAdd) == VVM_OP_VSN_ADD);
static_assert(static_cast<uint32_t>(Op::kVsnList) == VVM_OP_VSN_LIST);
static_assert(static_cast<uint32_t>(Op::kVvStage) == VVM_OP_VV_STAGE);
static_assert(static_cast<uint32_t>(Op::kStatus) == VVM_OP_STATUS);
static_assert(static_cast<uint32_t>(VsnState::kBlank) == VVM_VSN_BLANK);
static_assert(static_cast<uint32_t>(VsnState::kRetired) == VVM_VSN_RETIRED);
static_assert(static_cast<uint32_t>(Op::kVvEvict) == VVM_OP_VV_EVICT);

namespace {

// rpcgen's structs point at bytes they do not own when encoding: these borrow from the C++ side.
char* borrow(const std::string& s) { return const_cast<char*>(s.c_str()); }

Status check_length(std::string_view field, const std::string& value, size_t max) {
  if (value.size() > max) {
    return Status::InvalidArgument(
        fmt::format("{} is {} bytes long; the protocol allows {}", field, value.size(), max));
  }
  return Status::Ok();
}

template <class T>
Result<std::string> xdr_encode(xdrproc_t proc, T* value) {
  unsigned long size = xdr_sizeof(proc, value);
  if (size > kMaxMessage) {
    return Status::InvalidArgument(
        fmt::format("message of {} bytes is over the limit of {} bytes", size, kMaxMessage));
  }
  std::string out(size, '\0');
  XDR xdrs;
  xdrmem_create(&xdrs, out.data(), static_cast<u_int>(out.size()), XDR_ENCODE);
  bool ok = proc(&xdrs, value);
  xdr_destroy(&xdrs);
  if (!ok) return Status::Internal("XDR encoding failed");
  return out;
}

// Decodes `bytes` into `*value`, which must be zeroed; the caller xdr_free()s it. Returns how
// many bytes were used: the caller decides what left-over bytes mean.
template <class T>
Result<size_t> xdr_decode(xdrproc_t proc, std::string_view bytes, T* value, std::string_view what) {
  XDR xdrs;
  xdrmem_create(&xdrs, const_cast<char*>(bytes.data()), static_cast<u_int>(bytes.size()),
                XDR_DECODE);
  bool ok = proc(&xdrs, value);
  u_int used = xdr_getpos(&xdrs);
  xdr_destroy(&xdrs);
  if (!ok) return Status::ProtocolError(fmt::format("malformed {} ({} bytes)", what, bytes.size()));
  return size_t{used};
}

// Left-over bytes mean the peer and this side disagree on the format.
Status check_used(std::string_view what, size_t used, size_t size) {
  if (used != size) {
    return Status::ProtocolError(
        fmt::format("{} has {} bytes left over after decoding", what, size - used));
  }
  return Status::Ok();
}

// Frees what XDR decoding allocated inside a struct, when the owner goes out of scope.
template <class T>
struct XdrFreer {
  xdrproc_t proc;
  T* value;
  ~XdrFreer() { xdr_free(proc, reinterpret_cast<char*>(value)); }
};

// The number in an enum field that XDR filled from the wire. Read as an integer: a value the C++
// enum does not name (an operation from a newer peer) is undefined behaviour to load as the enum.
template <class E>
uint32_t wire_value(const E& field) {
  static_assert(sizeof(E) == sizeof(uint32_t));
  uint32_t v;
  std::memcpy(&v, &field, sizeof v);
  return v;
}

std::string bytes_of(u_int len, const char* val) { return std::string(val ? val : "", len); }
std::string text_of(const char* s) { return s ? std::string(s) : std::string(); }

Status check_preamble(const vvm_preamble& p) {
  if (p.magic != kProtocolMagic) {
    return Status::ProtocolError(
        fmt::format("not a vvm control message (magic {:#010x})", p.magic));
  }
  return Status::Ok();
}

Status check_version(const Preamble& p) {
  if (p.version != kProtocolVersion) {
    return Status::VersionMismatch(
        fmt::format("peer speaks control protocol version {}; this side speaks version {}",
                    p.version, kProtocolVersion));
  }
  return Status::Ok();
}

// ARCHIVE and STAGE arguments; the strings are borrowed from `c`.
Status encode_copy(const CopyArgs& c, vvm_copy_args* out) {
  VVM_RETURN_IF_ERROR(check_length("copy drive", c.drive, VVM_MAX_NAME));
  VVM_RETURN_IF_ERROR(check_length("copy vsn", c.vsn, VVM_MAX_NAME));
  VVM_RETURN_IF_ERROR(check_length("copy cache path", c.cache_path, VVM_MAX_TEXT));
  VVM_RETURN_IF_ERROR(check_length("copy class", c.file.vv_class, VVM_MAX_NAME));
  VVM_RETURN_IF_ERROR(check_length("copy reply-to", c.reply_to, VVM_MAX_TEXT));
  out->drive = borrow(c.drive);
  out->vsn = borrow(c.vsn);
  out->file_number = c.file_number;
  out->cache_path = borrow(c.cache_path);
  out->file = {borrow(c.file.vv_class), c.file.serial, c.file.client_id, c.file.size,
               c.file.time_finished};
  out->checksum = c.checksum;
  out->reply_to = borrow(c.reply_to);
  out->request_id = c.request_id;
  return Status::Ok();
}

CopyArgs decode_copy(const vvm_copy_args& a) {
  return CopyArgs{text_of(a.drive),
                  text_of(a.vsn),
                  a.file_number,
                  text_of(a.cache_path),
                  {text_of(a.file.vv_class), a.file.serial, a.file.client_id, a.file.size,
                   a.file.time_finished},
                  a.checksum,
                  text_of(a.reply_to),
                  a.request_id};
}

Status encode_report(const CopyReport& c, std::string& message, vvm_copy_report_args* out) {
  VVM_RETURN_IF_ERROR(check_length("report mover", c.mover, VVM_MAX_NAME));
  VVM_RETURN_IF_ERROR(check_length("report vsn", c.vsn, VVM_MAX_NAME));
  out->request_id = c.request_id;
  out->mover = borrow(c.mover);
  out->job = c.job;
  out->state = static_cast<vvm_copy_state>(c.state);
  out->bytes_done = c.bytes_done;
  out->bytes_total = c.bytes_total;
  out->vsn = borrow(c.vsn);
  out->file_number = c.file_number;
  out->checksum = c.checksum;
  out->code = static_cast<vvm_code>(c.failure.code());
  message = c.failure.message().substr(0, VVM_MAX_TEXT);  // cut rather than lost
  out->message = borrow(message);
  return Status::Ok();
}

Result<CopyReport> decode_report(const vvm_copy_report_args& a) {
  const uint32_t state = wire_value(a.state), code = wire_value(a.code);
  if (state > VVM_COPY_FAILED) {
    return Status::InvalidArgument(fmt::format("copy report with unknown state {}", state));
  }
  if (code > static_cast<uint32_t>(kLastCode)) {
    return Status::InvalidArgument(fmt::format("copy report with unknown error code {}", code));
  }
  CopyReport r;
  r.request_id = a.request_id;
  r.mover = text_of(a.mover);
  r.job = a.job;
  r.state = static_cast<CopyState>(state);
  r.bytes_done = a.bytes_done;
  r.bytes_total = a.bytes_total;
  r.vsn = text_of(a.vsn);
  r.file_number = a.file_number;
  r.checksum = a.checksum;
  if (r.state == CopyState::kFailed) {
    // A failure must say why: a failed report with code 0 is the sender's bug, not success.
    r.failure =
        Status(code == VVM_OK ? Code::kInternal : static_cast<Code>(code), text_of(a.message));
  }
  return r;
}

// A VV's record; the strings are borrowed from `v`.
Status encode_vv(const VvInfo& v, vvm_vv_info* out) {
  VVM_RETURN_IF_ERROR(check_length("vv name", v.name, VVM_MAX_NAME));
  VVM_RETURN_IF_ERROR(check_length("vv class", v.vv_class, VVM_MAX_NAME));
  VVM_RETURN_IF_ERROR(check_length("vv owner", v.owner, VVM_MAX_NAME));
  VVM_RETURN_IF_ERROR(check_length("vv group", v.group, VVM_MAX_NAME));
  out->name = borrow(v.name);
  out->vv_class = borrow(v.vv_class);
  out->serial = v.serial;
  out->client_id = v.client_id;
  out->owner = borrow(v.owner);
  out->group = borrow(v.group);
  out->perms = v.perms;
  out->size = v.size;
  out->state = static_cast<vvm_vv_state>(v.state);
  out->cache = static_cast<vvm_vv_cache>(v.cache);
  out->created = v.created;
  out->finished = v.finished;
  out->accessed = v.accessed;
  out->checksum = v.checksum;
  for (size_t i = 0; i < v.copies.size(); ++i) {
    VVM_RETURN_IF_ERROR(check_length("vv copy vsn", v.copies[i].vsn, VVM_MAX_NAME));
    out->copies[i] = {borrow(v.copies[i].vsn), v.copies[i].file};
  }
  return Status::Ok();
}

// A state on the wire, refused by number when this side does not know it. `any` allows
// VVM_VV_ANY (a list filter); a VV itself is always in a real state.
Result<VvState> decode_vv_state(const vvm_vv_state& field, bool any, std::string_view what) {
  const uint32_t v = wire_value(field);
  if (v > VVM_VV_ARCHIVED || (v == VVM_VV_ANY && !any)) {
    return Status::InvalidArgument(fmt::format("{} with unknown VV state {}", what, v));
  }
  return static_cast<VvState>(v);
}

Result<VvInfo> decode_vv(const vvm_vv_info& a) {
  auto state = decode_vv_state(a.state, false, "VV");
  if (!state.ok()) return state.status();
  const uint32_t cache = wire_value(a.cache);
  if (cache < VVM_CACHE_CACHED || cache > VVM_CACHE_STAGING) {
    return Status::InvalidArgument(fmt::format("VV with unknown cache state {}", cache));
  }
  VvInfo v;
  v.name = text_of(a.name);
  v.vv_class = text_of(a.vv_class);
  v.serial = a.serial;
  v.client_id = a.client_id;
  v.owner = text_of(a.owner);
  v.group = text_of(a.group);
  v.perms = a.perms;
  v.size = a.size;
  v.state = *state;
  v.cache = static_cast<CacheState>(cache);
  v.created = a.created;
  v.finished = a.finished;
  v.accessed = a.accessed;
  v.checksum = a.checksum;
  for (size_t i = 0; i < v.copies.size(); ++i) {
    v.copies[i] = {text_of(a.copies[i].vsn), a.copies[i].file};
  }
  return v;
}

// A VSN's record; the strings are borrowed from `v`.
Status encode_vsn(const VsnInfo& v, vvm_vsn_info* out) {
  VVM_RETURN_IF_ERROR(check_length("vsn name", v.name, VVM_MAX_NAME));
  VVM_RETURN_IF_ERROR(check_length("vsn media", v.media, VVM_MAX_NAME));
  VVM_RETURN_IF_ERROR(check_length("vsn class", v.vsn_class, VVM_MAX_NAME));
  VVM_RETURN_IF_ERROR(check_length("vsn location", v.location, VVM_MAX_NAME));
  out->name = borrow(v.name);
  out->media = borrow(v.media);
  out->vsn_class = borrow(v.vsn_class);
  out->state = static_cast<vvm_vsn_state>(v.state);
  out->location = borrow(v.location);
  out->next_file = v.next_file;
  out->bytes_used = v.bytes_used;
  out->capacity = v.capacity;
  out->errors = v.errors;
  out->last_mount = v.last_mount;
  return Status::Ok();
}

Result<VsnInfo> decode_vsn(const vvm_vsn_info& a) {
  const uint32_t state = wire_value(a.state);
  if (state < VVM_VSN_BLANK || state > VVM_VSN_RETIRED) {
    return Status::InvalidArgument(fmt::format("VSN with unknown VSN state {}", state));
  }
  VsnInfo v;
  v.name = text_of(a.name);
  v.media = text_of(a.media);
  v.vsn_class = text_of(a.vsn_class);
  v.state = static_cast<VsnState>(state);
  v.location = text_of(a.location);
  v.next_file = a.next_file;
  v.bytes_used = a.bytes_used;
  v.capacity = a.capacity;
  v.errors = a.errors;
  v.last_mount = a.last_mount;
  return v;
}

vvm_vv_info& vv_reply_arm(vvm_reply_body& body, Op op) {
  switch (op) {
    case Op::kVvCreate: return body.vvm_reply_body_u.vv_created;
    case Op::kVvFinish: return body.vvm_reply_body_u.vv_finished;
    case Op::kVvRemove: return body.vvm_reply_body_u.vv_removed;
    case Op::kVvClose: return body.vvm_reply_body_u.vv_closed;
    default: return body.vvm_reply_body_u.vv_shown;
  }
}

}  // namespace

std::string_view vv_state_name(VvState s) {
  switch (s) {
    case VvState::kAny: return "any";
    case VvState::kHot: return "hot";
    case VvState::kFinished: return "finished";
    case VvState::kArchived: return "archived";
  }
  return "unknown";
}

std::string_view cache_state_name(CacheState s) {
  switch (s) {
    case CacheState::kCached: return "cached";
    case CacheState::kEvicted: return "evicted";
    case CacheState::kStaging: return "staging";
  }
  return "unknown";
}

std::optional<VvState> parse_vv_state(std::string_view name) {
  for (VvState s : {VvState::kHot, VvState::kFinished, VvState::kArchived}) {
    if (vv_state_name(s) == name) return s;
  }
  return std::nullopt;
}

std::optional<CacheState> parse_cache_state(std::string_view name) {
  for (CacheState s : {CacheState::kCached, CacheState::kEvicted, CacheState::kStaging}) {
    if (cache_state_name(s) == name) return s;
  }
  return std::nullopt;
}

std::string_view vsn_state_name(VsnState s) {
  switch (s) {
    case VsnState::kBlank: return "blank";
    case VsnState::kHot: return "hot";
    case VsnState::kFull: return "full";
    case VsnState::kRetired: return "retired";
  }
  return "unknown";
}

std::optional<VsnState> parse_vsn_state(std::string_view name) {
  for (VsnState s : {VsnState::kBlank, VsnState::kHot, VsnState::kFull, VsnState::kRetired}) {
    if (vsn_state_name(s) == name) return s;
  }
  return std::nullopt;
}

std::string_view op_name(Op op) {
  switch (op) {
    case Op::kNone: return "none";
    case Op::kPing: return "ping";
    case Op::kArchive: return "archive";
    case Op::kStage: return "stage";
    case Op::kCopyReport: return "copy-report";
    case Op::kVvCreate: return "vv-create";
    case Op::kVvShow: return "vv-show";
    case Op::kVvList: return "vv-list";
    case Op::kVvFinish: return "vv-finish";
    case Op::kVvRemove: return "vv-remove";
    case Op::kVvOpen: return "vv-open";
    case Op::kVvClose: return "vv-close";
    case Op::kVsnAdd: return "vsn-add";
    case Op::kVsnList: return "vsn-list";
    case Op::kVvStage: return "vv-stage";
    case Op::kStatus: return "status";
    case Op::kVvEvict: return "vv-evict";
  }
  return "unknown";
}

Op op_of(const RequestBody& body) {
  struct Visitor {
    Op operator()(const PingRequest&) const { return Op::kPing; }
    Op operator()(const ArchiveRequest&) const { return Op::kArchive; }
    Op operator()(const StageRequest&) const { return Op::kStage; }
    Op operator()(const CopyReport&) const { return Op::kCopyReport; }
    Op operator()(const VvCreateRequest&) const { return Op::kVvCreate; }
    Op operator()(const VvShowRequest&) const { return Op::kVvShow; }
    Op operator()(const VvListRequest&) const { return Op::kVvList; }
    Op operator()(const VvFinishRequest&) const { return Op::kVvFinish; }
    Op operator()(const VvRemoveRequest&) const { return Op::kVvRemove; }
    Op operator()(const VvOpenRequest&) const { return Op::kVvOpen; }
    Op operator()(const VvCloseRequest&) const { return Op::kVvClose; }
    Op operator()(const VsnAddRequest&) const { return Op::kVsnAdd; }
    Op operator()(const VsnListRequest&) const { return Op::kVsnList; }
    Op operator()(const VvStageRequest&) const { return Op::kVvStage; }
    Op operator()(const StatusRequest&) const { return Op::kStatus; }
    Op operator()(const VvEvictRequest&) const { return Op::kVvEvict; }
  };
  return std::visit(Visitor{}, body);
}

Result<std::string> encode_request(const Request& request) {
  vvm_request r{};
  r.preamble = {kProtocolMagic, request.version, request.xid};
  r.body.op = static_cast<vvm_op>(op_of(request.body));
  if (auto* ping = std::get_if<PingRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(check_length("ping payload", ping->payload, VVM_MAX_TEXT));
    r.body.vvm_request_body_u.ping.payload.payload_len = static_cast<u_int>(ping->payload.size());
    r.body.vvm_request_body_u.ping.payload.payload_val = borrow(ping->payload);
  } else if (auto* archive = std::get_if<ArchiveRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(encode_copy(archive->copy, &r.body.vvm_request_body_u.archive));
  } else if (auto* stage = std::get_if<StageRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(encode_copy(stage->copy, &r.body.vvm_request_body_u.stage));
  } else if (auto* report = std::get_if<CopyReport>(&request.body)) {
    std::string message;  // lives until the encoding below
    VVM_RETURN_IF_ERROR(encode_report(*report, message, &r.body.vvm_request_body_u.report));
    return xdr_encode(reinterpret_cast<xdrproc_t>(xdr_vvm_request), &r);
  } else if (auto* create = std::get_if<VvCreateRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(check_length("create class", create->vv_class, VVM_MAX_NAME));
    VVM_RETURN_IF_ERROR(check_length("create owner", create->owner, VVM_MAX_NAME));
    VVM_RETURN_IF_ERROR(check_length("create group", create->group, VVM_MAX_NAME));
    VVM_RETURN_IF_ERROR(check_length("create perms", create->perms, VVM_MAX_NAME));
    r.body.vvm_request_body_u.vv_create = {borrow(create->vv_class), create->size,
                                           create->client_id,        borrow(create->owner),
                                           borrow(create->group),    borrow(create->perms)};
  } else if (auto* show = std::get_if<VvShowRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(check_length("vv name", show->name, VVM_MAX_NAME));
    r.body.vvm_request_body_u.vv_show.name = borrow(show->name);
  } else if (auto* finish = std::get_if<VvFinishRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(check_length("vv name", finish->name, VVM_MAX_NAME));
    r.body.vvm_request_body_u.vv_finish.name = borrow(finish->name);
  } else if (auto* remove = std::get_if<VvRemoveRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(check_length("vv name", remove->name, VVM_MAX_NAME));
    r.body.vvm_request_body_u.vv_remove = {borrow(remove->name), remove->force};
  } else if (auto* list = std::get_if<VvListRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(check_length("list class", list->vv_class, VVM_MAX_NAME));
    VVM_RETURN_IF_ERROR(check_length("list after", list->after, VVM_MAX_NAME));
    auto& l = r.body.vvm_request_body_u.vv_list;
    l.state = static_cast<vvm_vv_state>(list->state);
    l.vv_class = borrow(list->vv_class);
    l.has_client_id = list->client_id.has_value();
    l.client_id = list->client_id.value_or(0);
    l.after = borrow(list->after);
    l.limit = list->limit;
  } else if (auto* open = std::get_if<VvOpenRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(check_length("vv name", open->name, VVM_MAX_NAME));
    VVM_RETURN_IF_ERROR(check_length("open host", open->host, VVM_MAX_NAME));
    if (open->groups.size() > kMaxGroups) {
      return Status::InvalidArgument(
          fmt::format("{} groups; the protocol allows {}", open->groups.size(), kMaxGroups));
    }
    static_assert(sizeof(u_int) == sizeof(uint32_t));
    auto& o = r.body.vvm_request_body_u.vv_open;
    o.name = borrow(open->name);
    o.writable = open->writable;
    o.use = open->use;
    o.tcp = open->tcp;
    o.uid = open->uid;
    o.gid = open->gid;
    o.groups.groups_len = static_cast<u_int>(open->groups.size());
    o.groups.groups_val = const_cast<u_int*>(open->groups.data());
    o.host = borrow(open->host);
  } else if (auto* close = std::get_if<VvCloseRequest>(&request.body)) {
    r.body.vvm_request_body_u.vv_close = {close->open_id, close->written};
  } else if (auto* add = std::get_if<VsnAddRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(check_length("vsn name", add->vsn, VVM_MAX_NAME));
    VVM_RETURN_IF_ERROR(check_length("vsn media", add->media, VVM_MAX_NAME));
    VVM_RETURN_IF_ERROR(check_length("vsn class", add->vsn_class, VVM_MAX_NAME));
    r.body.vvm_request_body_u.vsn_add = {borrow(add->vsn), borrow(add->media),
                                         borrow(add->vsn_class)};
  } else if (auto* vsn_list = std::get_if<VsnListRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(check_length("list after", vsn_list->after, VVM_MAX_NAME));
    r.body.vvm_request_body_u.vsn_list = {borrow(vsn_list->after), vsn_list->limit};
  } else if (auto* stage = std::get_if<VvStageRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(check_length("vv name", stage->name, VVM_MAX_NAME));
    r.body.vvm_request_body_u.vv_stage = {borrow(stage->name), stage->wait};
  } else if (auto* evict = std::get_if<VvEvictRequest>(&request.body)) {
    VVM_RETURN_IF_ERROR(check_length("vv name", evict->name, VVM_MAX_NAME));
    r.body.vvm_request_body_u.vv_evict.name = borrow(evict->name);
  }
  return xdr_encode(reinterpret_cast<xdrproc_t>(xdr_vvm_request), &r);
}

Result<std::string> encode_reply(const Reply& reply) {
  vvm_reply r{};
  r.preamble = {kProtocolMagic, reply.version, reply.xid};
  r.code = static_cast<vvm_code>(reply.status.code());
  // A long message is cut rather than lost: the start names the thing and the reason.
  std::string message = reply.status.message().substr(0, VVM_MAX_TEXT);
  r.message = borrow(message);
  r.body.op = VVM_OP_NONE;
  if (auto* ping = std::get_if<PingReply>(&reply.body); ping && reply.status.ok()) {
    VVM_RETURN_IF_ERROR(check_length("ping daemon", ping->daemon, VVM_MAX_NAME));
    VVM_RETURN_IF_ERROR(check_length("ping name", ping->name, VVM_MAX_NAME));
    VVM_RETURN_IF_ERROR(check_length("ping software", ping->software, VVM_MAX_NAME));
    VVM_RETURN_IF_ERROR(check_length("ping payload", ping->payload, VVM_MAX_TEXT));
    r.body.op = VVM_OP_PING;
    auto& p = r.body.vvm_reply_body_u.ping;
    p.daemon = borrow(ping->daemon);
    p.name = borrow(ping->name);
    p.software = borrow(ping->software);
    p.uptime_ms = ping->uptime_ms;
    p.payload.payload_len = static_cast<u_int>(ping->payload.size());
    p.payload.payload_val = borrow(ping->payload);
  } else if (auto* accepted = std::get_if<CopyAccepted>(&reply.body);
             accepted && reply.status.ok()) {
    if (accepted->op != Op::kArchive && accepted->op != Op::kStage) {
      return Status::InvalidArgument("a copy is accepted only for archive or stage");
    }
    VVM_RETURN_IF_ERROR(check_length("accepted drive", accepted->drive, VVM_MAX_NAME));
    r.body.op = static_cast<vvm_op>(accepted->op);
    // Both arms have the same type; rpcgen gives each its own member.
    auto& a = accepted->op == Op::kArchive ? r.body.vvm_reply_body_u.archive
                                           : r.body.vvm_reply_body_u.stage;
    a.job = accepted->job;
    a.drive = borrow(accepted->drive);
  } else if (std::holds_alternative<CopyReportAck>(reply.body) && reply.status.ok()) {
    r.body.op = VVM_OP_COPY_REPORT;
  } else if (auto* vv = std::get_if<VvReply>(&reply.body); vv && reply.status.ok()) {
    if (vv->op != Op::kVvCreate && vv->op != Op::kVvShow && vv->op != Op::kVvFinish &&
        vv->op != Op::kVvRemove && vv->op != Op::kVvClose) {
      return Status::InvalidArgument(
          "a VV reply answers only create, show, finish, remove or close");
    }
    r.body.op = static_cast<vvm_op>(vv->op);
    VVM_RETURN_IF_ERROR(encode_vv(vv->vv, &vv_reply_arm(r.body, vv->op)));
  } else if (auto* list = std::get_if<VvListReply>(&reply.body); list && reply.status.ok()) {
    r.body.op = VVM_OP_VV_LIST;
    std::vector<vvm_vv_info> infos(list->vvs.size());  // lives until the encoding below
    for (size_t i = 0; i < infos.size(); ++i) {
      VVM_RETURN_IF_ERROR(encode_vv(list->vvs[i], &infos[i]));
    }
    auto& l = r.body.vvm_reply_body_u.vv_list;
    l.vvs.vvs_len = static_cast<u_int>(infos.size());
    l.vvs.vvs_val = infos.data();
    l.more = list->more;
    return xdr_encode(reinterpret_cast<xdrproc_t>(xdr_vvm_reply), &r);
  } else if (auto* open = std::get_if<VvOpenReply>(&reply.body); open && reply.status.ok()) {
    VVM_RETURN_IF_ERROR(check_length("open cache path", open->cache_path, VVM_MAX_TEXT));
    VVM_RETURN_IF_ERROR(check_length("open not-ready", open->not_ready, VVM_MAX_TEXT));
    r.body.op = VVM_OP_VV_OPEN;
    auto& o = r.body.vvm_reply_body_u.vv_open;
    VVM_RETURN_IF_ERROR(encode_vv(open->vv, &o.vv));
    o.cache_path = borrow(open->cache_path);
    o.writable = open->writable;
    o.ready = open->ready;
    o.not_ready = borrow(open->not_ready);
    o.open_id = open->open_id;
  } else if (auto* vsn = std::get_if<VsnReply>(&reply.body); vsn && reply.status.ok()) {
    r.body.op = VVM_OP_VSN_ADD;
    VVM_RETURN_IF_ERROR(encode_vsn(vsn->vsn, &r.body.vvm_reply_body_u.vsn_added));
  } else if (auto* vsns = std::get_if<VsnListReply>(&reply.body); vsns && reply.status.ok()) {
    r.body.op = VVM_OP_VSN_LIST;
    std::vector<vvm_vsn_info> infos(vsns->vsns.size());  // lives until the encoding below
    for (size_t i = 0; i < infos.size(); ++i) {
      VVM_RETURN_IF_ERROR(encode_vsn(vsns->vsns[i], &infos[i]));
    }
    auto& l = r.body.vvm_reply_body_u.vsn_list;
    l.vsns.vsns_len = static_cast<u_int>(infos.size());
    l.vsns.vsns_val = infos.data();
    l.more = vsns->more;
    return xdr_encode(reinterpret_cast<xdrproc_t>(xdr_vvm_reply), &r);
  } else if (auto* st = std::get_if<StatusReply>(&reply.body); st && reply.status.ok()) {
    r.body.op = VVM_OP_STATUS;
    auto& o = r.body.vvm_reply_body_u.status;
    std::vector<vvm_status_drive> drives(st->drives.size());  // live until the encoding below
    for (size_t i = 0; i < drives.size(); ++i) {
      const auto& d = st->drives[i];
      VVM_RETURN_IF_ERROR(check_length("drive copying", d.copying, VVM_MAX_TEXT));
      drives[i] = {borrow(d.name), borrow(d.mover),   borrow(d.media),
                   borrow(d.vsn),  borrow(d.copying), d.bytes_done,
                   d.bytes_total,  d.mounts,          d.usable};
    }
    std::vector<vvm_status_queue> queues(st->queues.size());
    for (size_t i = 0; i < queues.size(); ++i) {
      const auto& q = st->queues[i];
      queues[i] = {borrow(q.kind), borrow(q.key), q.files, q.bytes, q.oldest_s, q.waiting};
    }
    o.uptime_s = st->uptime_s;
    o.drives = {static_cast<u_int>(drives.size()), drives.data()};
    o.queues = {static_cast<u_int>(queues.size()), queues.data()};
    o.mounts = st->mounts;
    o.opens = st->opens;
    o.cache_used = st->cache_used;
    o.cache_size = st->cache_size;
    o.high_watermark = st->high_watermark;
    o.low_watermark = st->low_watermark;
    return xdr_encode(reinterpret_cast<xdrproc_t>(xdr_vvm_reply), &r);
  } else if (auto* stage = std::get_if<VvStageReply>(&reply.body); stage && reply.status.ok()) {
    VVM_RETURN_IF_ERROR(check_length("stage vsn", stage->vsn, VVM_MAX_NAME));
    r.body.op = VVM_OP_VV_STAGE;
    r.body.vvm_reply_body_u.vv_stage = {stage->cached, stage->copying,    borrow(stage->vsn),
                                        stage->file,   stage->bytes_done, stage->bytes_total,
                                        stage->queued};
  } else if (auto* evict = std::get_if<VvEvictReply>(&reply.body); evict && reply.status.ok()) {
    r.body.op = VVM_OP_VV_EVICT;
    auto& e = r.body.vvm_reply_body_u.vv_evict;
    VVM_RETURN_IF_ERROR(encode_vv(evict->vv, &e.vv));
    e.already = evict->already;
    e.freed = evict->freed;
  }
  return xdr_encode(reinterpret_cast<xdrproc_t>(xdr_vvm_reply), &r);
}

Result<Preamble> decode_preamble(std::string_view bytes) {
  vvm_preamble p{};
  XDR xdrs;
  xdrmem_create(&xdrs, const_cast<char*>(bytes.data()), static_cast<u_int>(bytes.size()),
                XDR_DECODE);
  bool ok = xdr_vvm_preamble(&xdrs, &p);
  xdr_destroy(&xdrs);
  if (!ok) {
    return Status::ProtocolError(
        fmt::format("message of {} bytes is too short for a vvm header", bytes.size()));
  }
  VVM_RETURN_IF_ERROR(check_preamble(p));
  return Preamble{p.magic, p.proto_version, p.xid};
}

Result<Request> decode_request(std::string_view bytes) {
  auto preamble = decode_preamble(bytes);
  if (!preamble.ok()) return preamble.status();
  VVM_RETURN_IF_ERROR(check_version(*preamble));
  vvm_request r{};
  XdrFreer<vvm_request> freer{reinterpret_cast<xdrproc_t>(xdr_vvm_request), &r};
  auto used = xdr_decode(reinterpret_cast<xdrproc_t>(xdr_vvm_request), bytes, &r, "request");
  if (!used.ok()) return used.status();
  Request out;
  out.version = r.preamble.proto_version;
  out.xid = r.preamble.xid;
  switch (uint32_t op = wire_value(r.body.op)) {
    case VVM_OP_PING: {
      auto& p = r.body.vvm_request_body_u.ping;
      out.body = PingRequest{bytes_of(p.payload.payload_len, p.payload.payload_val)};
      break;
    }
    case VVM_OP_ARCHIVE:
      out.body = ArchiveRequest{decode_copy(r.body.vvm_request_body_u.archive)};
      break;
    case VVM_OP_STAGE: out.body = StageRequest{decode_copy(r.body.vvm_request_body_u.stage)}; break;
    case VVM_OP_COPY_REPORT: {
      auto report = decode_report(r.body.vvm_request_body_u.report);
      if (!report.ok()) return report.status();
      out.body = std::move(*report);
      break;
    }
    case VVM_OP_VV_CREATE: {
      auto& c = r.body.vvm_request_body_u.vv_create;
      out.body = VvCreateRequest{text_of(c.vv_class), c.size,           c.client_id,
                                 text_of(c.owner),    text_of(c.group), text_of(c.perms)};
      break;
    }
    case VVM_OP_VV_SHOW:
      out.body = VvShowRequest{text_of(r.body.vvm_request_body_u.vv_show.name)};
      break;
    case VVM_OP_VV_FINISH:
      out.body = VvFinishRequest{text_of(r.body.vvm_request_body_u.vv_finish.name)};
      break;
    case VVM_OP_VV_REMOVE: {
      auto& rm = r.body.vvm_request_body_u.vv_remove;
      out.body = VvRemoveRequest{text_of(rm.name), rm.force != 0};
      break;
    }
    case VVM_OP_VV_LIST: {
      auto& l = r.body.vvm_request_body_u.vv_list;
      auto state = decode_vv_state(l.state, true, "VV list");
      if (!state.ok()) return state.status();
      VvListRequest list;
      list.state = *state;
      list.vv_class = text_of(l.vv_class);
      if (l.has_client_id) list.client_id = l.client_id;
      list.after = text_of(l.after);
      list.limit = l.limit;
      out.body = std::move(list);
      break;
    }
    case VVM_OP_VV_OPEN: {
      auto& o = r.body.vvm_request_body_u.vv_open;
      VvOpenRequest open;
      open.name = text_of(o.name);
      open.writable = o.writable != 0;
      open.use = o.use != 0;
      open.tcp = o.tcp != 0;
      open.uid = o.uid;
      open.gid = o.gid;
      open.groups.assign(o.groups.groups_val, o.groups.groups_val + o.groups.groups_len);
      open.host = text_of(o.host);
      out.body = std::move(open);
      break;
    }
    case VVM_OP_VV_CLOSE: {
      auto& c = r.body.vvm_request_body_u.vv_close;
      out.body = VvCloseRequest{c.open_id, c.written != 0};
      break;
    }
    case VVM_OP_VSN_ADD: {
      auto& a = r.body.vvm_request_body_u.vsn_add;
      out.body = VsnAddRequest{text_of(a.vsn), text_of(a.media), text_of(a.vsn_class)};
      break;
    }
    case VVM_OP_VSN_LIST: {
      auto& l = r.body.vvm_request_body_u.vsn_list;
      out.body = VsnListRequest{text_of(l.after), l.limit};
      break;
    }
    case VVM_OP_STATUS: out.body = StatusRequest{}; break;
    case VVM_OP_VV_STAGE: {
      auto& a = r.body.vvm_request_body_u.vv_stage;
      out.body = VvStageRequest{text_of(a.name), a.wait != 0};
      break;
    }
    case VVM_OP_VV_EVICT:
      out.body = VvEvictRequest{text_of(r.body.vvm_request_body_u.vv_evict.name)};
      break;
    default:
      // Checked before the left-over bytes: those are the arguments of an operation from a newer
      // peer, which deserves a clearer answer than "malformed".
      return Status::InvalidArgument(fmt::format("unknown operation {}", op));
  }
  VVM_RETURN_IF_ERROR(check_used("request", *used, bytes.size()));
  return out;
}

Result<Reply> decode_reply(std::string_view bytes) {
  auto preamble = decode_preamble(bytes);
  if (!preamble.ok()) return preamble.status();
  vvm_reply r{};
  XdrFreer<vvm_reply> freer{reinterpret_cast<xdrproc_t>(xdr_vvm_reply), &r};
  auto used = xdr_decode(reinterpret_cast<xdrproc_t>(xdr_vvm_reply), bytes, &r, "reply");
  if (!used.ok()) return used.status();
  VVM_RETURN_IF_ERROR(check_used("reply", *used, bytes.size()));
  Reply out;
  out.version = r.preamble.proto_version;
  out.xid = r.preamble.xid;
  uint32_t code = wire_value(r.code);
  if (code > static_cast<uint32_t>(kLastCode)) {
    return Status::ProtocolError(fmt::format("reply carries unknown error code {}", code));
  }
  if (code != VVM_OK) {
    out.status = Status(static_cast<Code>(code), text_of(r.message));
    return out;
  }
  switch (uint32_t op = wire_value(r.body.op)) {
    case VVM_OP_NONE: break;
    case VVM_OP_PING: {
      auto& p = r.body.vvm_reply_body_u.ping;
      out.body = PingReply{text_of(p.daemon), text_of(p.name), text_of(p.software), p.uptime_ms,
                           bytes_of(p.payload.payload_len, p.payload.payload_val)};
      break;
    }
    case VVM_OP_ARCHIVE:
    case VVM_OP_STAGE: {
      auto& a =
          op == VVM_OP_ARCHIVE ? r.body.vvm_reply_body_u.archive : r.body.vvm_reply_body_u.stage;
      out.body = CopyAccepted{static_cast<Op>(op), a.job, text_of(a.drive)};
      break;
    }
    case VVM_OP_COPY_REPORT: out.body = CopyReportAck{}; break;
    case VVM_OP_VV_CREATE:
    case VVM_OP_VV_SHOW:
    case VVM_OP_VV_FINISH:
    case VVM_OP_VV_REMOVE:
    case VVM_OP_VV_CLOSE: {
      auto vv = decode_vv(vv_reply_arm(r.body, static_cast<Op>(op)));
      if (!vv.ok()) return Status::ProtocolError("reply: " + vv.status().message());
      out.body = VvReply{static_cast<Op>(op), std::move(*vv)};
      break;
    }
    case VVM_OP_VV_LIST: {
      auto& l = r.body.vvm_reply_body_u.vv_list;
      VvListReply list;
      list.more = l.more != 0;
      list.vvs.reserve(l.vvs.vvs_len);
      for (u_int i = 0; i < l.vvs.vvs_len; ++i) {
        auto vv = decode_vv(l.vvs.vvs_val[i]);
        if (!vv.ok()) return Status::ProtocolError("reply: " + vv.status().message());
        list.vvs.push_back(std::move(*vv));
      }
      out.body = std::move(list);
      break;
    }
    case VVM_OP_VV_OPEN: {
      auto& o = r.body.vvm_reply_body_u.vv_open;
      auto vv = decode_vv(o.vv);
      if (!vv.ok()) return Status::ProtocolError("reply: " + vv.status().message());
      out.body = VvOpenReply{std::move(*vv), text_of(o.cache_path), o.writable != 0,
                             o.ready != 0,   text_of(o.not_ready),  o.open_id};
      break;
    }
    case VVM_OP_VSN_ADD: {
      auto vsn = decode_vsn(r.body.vvm_reply_body_u.vsn_added);
      if (!vsn.ok()) return Status::ProtocolError("reply: " + vsn.status().message());
      out.body = VsnReply{std::move(*vsn)};
      break;
    }
    case VVM_OP_VSN_LIST: {
      auto& l = r.body.vvm_reply_body_u.vsn_list;
      VsnListReply list;
      list.more = l.more != 0;
      list.vsns.reserve(l.vsns.vsns_len);
      for (u_int i = 0; i < l.vsns.vsns_len; ++i) {
        auto vsn = decode_vsn(l.vsns.vsns_val[i]);
        if (!vsn.ok()) return Status::ProtocolError("reply: " + vsn.status().message());
        list.vsns.push_back(std::move(*vsn));
      }
      out.body = std::move(list);
      break;
    }
    case VVM_OP_STATUS: {
      auto& o = r.body.vvm_reply_body_u.status;
      StatusReply st;
      st.uptime_s = o.uptime_s;
      for (u_int i = 0; i < o.drives.drives_len; ++i) {
        const auto& d = o.drives.drives_val[i];
        st.drives.push_back({text_of(d.name), text_of(d.mover), text_of(d.media), text_of(d.vsn),
                             text_of(d.copying), d.bytes_done, d.bytes_total, d.mounts,
                             d.usable != 0});
      }
      for (u_int i = 0; i < o.queues.queues_len; ++i) {
        const auto& q = o.queues.queues_val[i];
        st.queues.push_back(
            {text_of(q.kind), text_of(q.key), q.files, q.bytes, q.oldest_s, q.waiting != 0});
      }
      st.mounts = o.mounts;
      st.opens = o.opens;
      st.cache_used = o.cache_used;
      st.cache_size = o.cache_size;
      st.high_watermark = o.high_watermark;
      st.low_watermark = o.low_watermark;
      out.body = std::move(st);
      break;
    }
    case VVM_OP_VV_STAGE: {
      auto& a = r.body.vvm_reply_body_u.vv_stage;
      out.body = VvStageReply{a.cached != 0, a.copying != 0, text_of(a.vsn), a.file,
                              a.bytes_done,  a.bytes_total,  a.queued};
      break;
    }
    case VVM_OP_VV_EVICT: {
      auto& e = r.body.vvm_reply_body_u.vv_evict;
      auto vv = decode_vv(e.vv);
      if (!vv.ok()) return Status::ProtocolError("reply: " + vv.status().message());
      out.body = VvEvictReply{std::move(*vv), e.already != 0, e.freed};
      break;
    }
    default: return Status::ProtocolError(fmt::format("reply carries unknown operation {}", op));
  }
  return out;
}

Reply error_reply(const Preamble& preamble, Status status) {
  Reply r;
  r.xid = preamble.xid;
  r.status = std::move(status);
  return r;
}

}  // namespace vvm::rpc
