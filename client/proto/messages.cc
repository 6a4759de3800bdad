// proto/messages.cc: the codec of the control protocol. It walks a message's `fields`
// description (proto/messages.h) with an Encoder or a Decoder over proto/xdr.h's primitives, and
// frames each message as vvm_proto.x's vvm_request and vvm_reply do: the preamble, then (for a
// reply) the code and message, then the op and that op's arguments or result.
#include "proto/messages.h"

#include <fmt/core.h>

#include <cstring>

#include "proto/frame.h"
#include "proto/xdr.h"
#include "vvm_proto.h"  // rpcgen -h of proto/vvm_proto.x: its constants, checked below

namespace vvm::rpc {

static_assert(kProtocolMagic == VVM_PROTO_MAGIC);
static_assert(kProtocolVersion == VVM_PROTO_VERSION);
static_assert(kMaxMessage == VVM_MAX_MESSAGE);
static_assert(kMaxText == VVM_MAX_TEXT);
static_assert(kMaxName == VVM_MAX_NAME);
static_assert(kMaxVvCopies == VVM_MAX_COPIES);
static_assert(kMaxGroups == VVM_MAX_GROUPS);
static_assert(static_cast<int>(Code::kInternal) == VVM_INTERNAL);
static_assert(static_cast<int>(Code::kVersionMismatch) == VVM_VERSION_MISMATCH);
static_assert(static_cast<int>(Code::kNoSpace) == VVM_NO_SPACE);
static_assert(static_cast<int>(Code::kMismatch) == VVM_MISMATCH);
static_assert(kLastCode == Code::kMismatch);
static_assert(static_cast<uint32_t>(Op::kPing) == VVM_OP_PING);
static_assert(static_cast<uint32_t>(Op::kArchive) == VVM_OP_ARCHIVE);
static_assert(static_cast<uint32_t>(Op::kStage) == VVM_OP_STAGE);
static_assert(static_cast<uint32_t>(Op::kCopyReport) == VVM_OP_COPY_REPORT);
static_assert(static_cast<uint32_t>(Op::kVvCreate) == VVM_OP_VV_CREATE);
static_assert(static_cast<uint32_t>(Op::kVvShow) == VVM_OP_VV_SHOW);
static_assert(static_cast<uint32_t>(Op::kVvList) == VVM_OP_VV_LIST);
static_assert(static_cast<uint32_t>(Op::kVvFinish) == VVM_OP_VV_FINISH);
static_assert(static_cast<uint32_t>(Op::kVvRemove) == VVM_OP_VV_REMOVE);
static_assert(static_cast<uint32_t>(Op::kVvOpen) == VVM_OP_VV_OPEN);
static_assert(static_cast<uint32_t>(Op::kVvClose) == VVM_OP_VV_CLOSE);
static_assert(static_cast<uint32_t>(Op::kVsnAdd) == VVM_OP_VSN_ADD);
static_assert(static_cast<uint32_t>(Op::kVsnList) == VVM_OP_VSN_LIST);
static_assert(static_cast<uint32_t>(Op::kVvStage) == VVM_OP_VV_STAGE);
static_assert(static_cast<uint32_t>(Op::kStatus) == VVM_OP_STATUS);
static_assert(static_cast<uint32_t>(Op::kVvEvict) == VVM_OP_VV_EVICT);
static_assert(static_cast<uint32_t>(Op::kDbStats) == VVM_OP_DB_STATS);
static_assert(static_cast<uint32_t>(Op::kDbCheck) == VVM_OP_DB_CHECK);
static_assert(static_cast<uint32_t>(Op::kDbBackup) == VVM_OP_DB_BACKUP);
static_assert(static_cast<uint32_t>(Op::kCopyList) == VVM_OP_COPY_LIST);
static_assert(static_cast<uint32_t>(Op::kVsnSet) == VVM_OP_VSN_SET);
static_assert(static_cast<uint32_t>(Op::kVsnDetails) == VVM_OP_VSN_DETAILS);
static_assert(static_cast<uint32_t>(Op::kDriveSet) == VVM_OP_DRIVE_SET);
static_assert(static_cast<uint32_t>(Op::kDriveList) == VVM_OP_DRIVE_LIST);
static_assert(static_cast<uint32_t>(Op::kVsnRepack) == VVM_OP_VSN_REPACK);
static_assert(static_cast<uint32_t>(Op::kVsnReclaim) == VVM_OP_VSN_RECLAIM);
static_assert(static_cast<uint32_t>(Op::kRepackList) == VVM_OP_REPACK_LIST);
static_assert(static_cast<uint32_t>(Op::kVerify) == VVM_OP_VERIFY);
static_assert(static_cast<uint32_t>(Op::kVsnVerify) == VVM_OP_VSN_VERIFY);
static_assert(static_cast<uint32_t>(Op::kVerifyList) == VVM_OP_VERIFY_LIST);
static_assert(static_cast<uint32_t>(Op::kReload) == VVM_OP_RELOAD);
static_assert(static_cast<uint32_t>(Op::kClassList) == VVM_OP_CLASS_LIST);
static_assert(static_cast<uint32_t>(Op::kClassPrune) == VVM_OP_CLASS_PRUNE);
static_assert(static_cast<uint32_t>(Op::kTapeCopy) == VVM_OP_TAPE_COPY);
static_assert(static_cast<uint32_t>(Op::kCancel) == VVM_OP_CANCEL);
static_assert(static_cast<uint32_t>(Op::kVvCopies) == VVM_OP_VV_COPIES);
static_assert(static_cast<uint32_t>(CopyState::kFailed) == VVM_COPY_FAILED);
static_assert(static_cast<uint32_t>(VvState::kAny) == VVM_VV_ANY);
static_assert(static_cast<uint32_t>(VvState::kArchived) == VVM_VV_ARCHIVED);
static_assert(static_cast<uint32_t>(CacheState::kCached) == VVM_CACHE_CACHED);
static_assert(static_cast<uint32_t>(CacheState::kStaging) == VVM_CACHE_STAGING);
static_assert(static_cast<uint32_t>(VsnState::kBlank) == VVM_VSN_BLANK);
static_assert(static_cast<uint32_t>(VsnState::kRetired) == VVM_VSN_RETIRED);
static_assert(static_cast<uint32_t>(VsnState::kBad) == VVM_VSN_BAD);
static_assert(static_cast<uint32_t>(VsnState::kReadOnly) == VVM_VSN_READ_ONLY);
static_assert(static_cast<uint32_t>(CopyMarkState::kBad) == VVM_MARK_BAD);
static_assert(static_cast<uint32_t>(CopyMarkState::kDead) == VVM_MARK_DEAD);

namespace {

// A string as XDR's string<> carries it: up to its first NUL, as a C string would be.
std::string_view c_string(const std::string& s) { return std::string_view(s.c_str()); }

// Writes a message's fields. A field over its limit is an error named by its label; the encoding
// goes on to the end, and the caller looks at `error` once.
class Encoder {
 public:
  xdr::Writer w;
  Status error;

  void u32(uint32_t v) { w.u32(v); }
  void u64(uint64_t v) { w.u64(v); }
  void flag(bool v) { w.u32(v ? 1 : 0); }
  void short_string(const std::string& s, std::string_view label) {
    if (fits(s.size(), kMaxName, label, "bytes long")) w.bytes(c_string(s));
  }
  void long_string(const std::string& s, std::string_view label) {
    if (fits(s.size(), kMaxText, label, "bytes long")) w.bytes(c_string(s));
  }
  void opaque(const std::string& s, std::string_view label) {
    if (fits(s.size(), kMaxText, label, "bytes long")) w.bytes(s);
  }
  template <class E>
  void enumeration(const E& e, E, E, std::string_view, std::string_view) {
    w.u32(static_cast<uint32_t>(e));
  }
  template <class T>
  void nested(const T& v) {
    T::fields(*this, v);
  }
  template <class T, size_t N>
  void array(const std::array<T, N>& a) {
    for (const T& v : a) nested(v);
  }
  template <class T>
  void list(const std::vector<T>& v) {
    w.u32(static_cast<uint32_t>(v.size()));
    for (const T& x : v) nested(x);
  }
  void list(const std::vector<uint32_t>& v, size_t max, std::string_view label) {
    if (v.size() > max) {
      set(Status::InvalidArgument(
          fmt::format("{} {}; the protocol allows {}", v.size(), label, max)));
      return;
    }
    w.u32(static_cast<uint32_t>(v.size()));
    for (uint32_t x : v) w.u32(x);
  }
  void optional(const std::optional<uint64_t>& o) {
    flag(o.has_value());
    w.u64(o.value_or(0));
  }
  // A long message is cut rather than lost: the start names the thing and the reason.
  void failure(const Status& s, bool, std::string_view) {
    w.u32(static_cast<uint32_t>(s.code()));
    w.bytes(c_string(s.message().substr(0, kMaxText)));
  }

  Result<std::string> finish() {
    if (!error.ok()) return error;
    if (w.size() > kMaxMessage) {
      return Status::InvalidArgument(
          fmt::format("message of {} bytes is over the limit of {} bytes", w.size(), kMaxMessage));
    }
    return w.take();
  }

 private:
  bool fits(size_t size, size_t max, std::string_view label, std::string_view unit) {
    if (size <= max) return true;
    set(Status::InvalidArgument(
        fmt::format("{} is {} {}; the protocol allows {}", label, size, unit, max)));
    return false;
  }
  void set(Status s) {
    if (error.ok()) error = std::move(s);
  }
};

// Reads a message's fields. Bad XDR (too short, a length over its limit) breaks the reader; a
// well-formed value this side does not know (an enum's) is kept in `refused`, the first one only,
// so that the caller reports bad XDR before unknown values, as a peer's bug comes before its
// newer version.
class Decoder {
 public:
  explicit Decoder(std::string_view bytes) : r(bytes) {}
  xdr::Reader r;
  Status refused;

  void u32(uint32_t& v) { r.u32(&v); }
  void u64(uint64_t& v) { r.u64(&v); }
  void flag(bool& v) {
    uint32_t x = 0;
    r.u32(&x);
    v = x != 0;
  }
  void short_string(std::string& s, std::string_view) { c_string_of(s, kMaxName); }
  void long_string(std::string& s, std::string_view) { c_string_of(s, kMaxText); }
  void opaque(std::string& s, std::string_view) { r.bytes(&s, kMaxText); }
  template <class E>
  void enumeration(E& e, E first, E last, std::string_view what, std::string_view kind) {
    uint32_t v = 0;
    if (!r.u32(&v)) return;
    if (v < static_cast<uint32_t>(first) || v > static_cast<uint32_t>(last)) {
      refuse(fmt::format("{} with unknown {} {}", what, kind, v));
    }
    e = static_cast<E>(v);  // the enum's underlying type holds any number: no harm until used
  }
  template <class T>
  void nested(T& v) {
    T::fields(*this, v);
  }
  template <class T, size_t N>
  void array(std::array<T, N>& a) {
    for (T& v : a) nested(v);
  }
  template <class T>
  void list(std::vector<T>& v) {
    uint32_t n = 0;
    r.u32(&n);
    v.clear();
    // Each element takes bytes: a count larger than the message breaks the reader soon enough.
    for (uint32_t i = 0; i < n && !r.broken(); ++i) nested(v.emplace_back());
  }
  void list(std::vector<uint32_t>& v, size_t max, std::string_view) {
    uint32_t n = 0;
    if (!r.u32(&n)) return;
    if (n > max || r.left() / 4 < n) {
      r.fail();
      return;
    }
    v.resize(n);
    for (uint32_t& x : v) r.u32(&x);
  }
  void optional(std::optional<uint64_t>& o) {
    bool has = false;
    uint64_t v = 0;
    flag(has);
    r.u64(&v);
    o = has ? std::optional<uint64_t>(v) : std::nullopt;
  }
  void failure(Status& s, bool failed, std::string_view what) {
    uint32_t code = 0;
    std::string message;
    r.u32(&code);
    long_string(message, "");
    if (code > static_cast<uint32_t>(kLastCode)) {
      refuse(fmt::format("{} with unknown error code {}", what, code));
    } else if (failed) {
      // A failure must say why: a failure with code 0 is the sender's bug, not success.
      s = Status(code == 0 ? Code::kInternal : static_cast<Code>(code), std::move(message));
    }
  }

 private:
  void c_string_of(std::string& s, size_t max) {
    if (r.bytes(&s, max)) s.resize(std::strlen(s.c_str()));
  }
  void refuse(std::string message) {
    if (refused.ok()) refused = Status::InvalidArgument(std::move(message));
  }
};

// Left-over bytes mean the peer and this side disagree on the format.
Status check_used(std::string_view what, const Decoder& d, size_t size) {
  if (d.r.used() != size) {
    return Status::ProtocolError(
        fmt::format("{} has {} bytes left over after decoding", what, size - d.r.used()));
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

void write_preamble(Encoder& e, uint32_t version, uint32_t xid) {
  e.u32(kProtocolMagic);
  e.u32(version);
  e.u32(xid);
}

// The op a reply goes out under: its type's one request, or the op it carries, which must be one
// its type answers.
template <class T>
Result<Op> reply_op(const T& body) {
  constexpr auto& ops = kOpsAnswered<T>;
  if constexpr (CarriesOp<T>) {
    for (Op op : ops) {
      if (body.op == op) return op;
    }
    std::string names;
    for (size_t i = 0; i < ops.size(); ++i) {
      names += i == 0 ? "" : i + 1 == ops.size() ? " or " : ", ";
      names += op_name(ops[i]);
    }
    return Status::InvalidArgument(
        fmt::format("this reply answers only {}, not {}", names, op_name(body.op)));
  } else {
    return ops[0];
  }
}

// Decodes the arguments of the request whose op is `op` into `out`; false for an unknown op.
template <class... R>
bool decode_request_body(uint32_t op, Decoder& d, std::variant<R...>& out) {
  auto one = [&]<class T>(T*) {
    if (static_cast<uint32_t>(T::kOp) != op) return false;
    T::fields(d, out.template emplace<T>());
    return true;
  };
  return (one(static_cast<R*>(nullptr)) || ...);
}

// Decodes the result of the request whose op is `op` into `out`; false for an unknown op.
template <class... R>
bool decode_reply_body(uint32_t op, Decoder& d, ReplyBody& out, std::variant<R...>*) {
  auto one = [&]<class T>(T*) {
    if (static_cast<uint32_t>(T::kOp) != op) return false;
    using Answer = typename T::Reply;
    auto& body = out.template emplace<Answer>();
    Answer::fields(d, body);
    if constexpr (CarriesOp<Answer>) body.op = T::kOp;
    return true;
  };
  return (one(static_cast<R*>(nullptr)) || ...);
}

template <class... R>
std::string_view name_of(Op op, std::variant<R...>*) {
  std::string_view name = "unknown";
  ((R::kOp == op ? (void)(name = R::kName) : void()), ...);
  return name;
}

}  // namespace

std::string_view op_name(Op op) {
  if (op == Op::kNone) return "none";
  return name_of(op, static_cast<RequestBody*>(nullptr));
}

Op op_of(const RequestBody& body) {
  return std::visit([](const auto& r) { return std::decay_t<decltype(r)>::kOp; }, body);
}

Result<std::string> encode_request(const Request& request) {
  Encoder e;
  write_preamble(e, request.version, request.xid);
  std::visit(
      [&](const auto& body) {
        e.u32(static_cast<uint32_t>(body.kOp));
        e.nested(body);
      },
      request.body);
  return e.finish();
}

Result<std::string> encode_reply(const Reply& reply) {
  Encoder e;
  write_preamble(e, reply.version, reply.xid);
  e.u32(static_cast<uint32_t>(reply.status.code()));
  // A long message is cut rather than lost: the start names the thing and the reason.
  e.w.bytes(c_string(reply.status.message().substr(0, kMaxText)));
  if (!reply.status.ok()) {
    e.u32(static_cast<uint32_t>(Op::kNone));  // an error never sends a body
    return e.finish();
  }
  Status status = std::visit(
      [&]<class T>(const T& body) -> Status {
        if constexpr (std::is_same_v<T, std::monostate>) {
          e.u32(static_cast<uint32_t>(Op::kNone));
        } else {
          auto op = reply_op(body);
          if (!op.ok()) return op.status();
          e.u32(static_cast<uint32_t>(*op));
          e.nested(body);
        }
        return Status::Ok();
      },
      reply.body);
  VVM_RETURN_IF_ERROR(status);
  return e.finish();
}

Result<Preamble> decode_preamble(std::string_view bytes) {
  xdr::Reader r(bytes);
  Preamble p;
  if (!r.u32(&p.magic) || !r.u32(&p.version) || !r.u32(&p.xid)) {
    return Status::ProtocolError(
        fmt::format("message of {} bytes is too short for a vvm header", bytes.size()));
  }
  if (p.magic != kProtocolMagic) {
    return Status::ProtocolError(
        fmt::format("not a vvm control message (magic {:#010x})", p.magic));
  }
  return p;
}

Result<Request> decode_request(std::string_view bytes) {
  auto preamble = decode_preamble(bytes);
  if (!preamble.ok()) return preamble.status();
  VVM_RETURN_IF_ERROR(check_version(*preamble));
  Decoder d(bytes);
  uint32_t skip = 0, op = 0;
  for (int i = 0; i < 3; ++i) d.r.u32(&skip);
  d.r.u32(&op);
  Request out;
  out.version = preamble->version;
  out.xid = preamble->xid;
  const bool known = !d.r.broken() && decode_request_body(op, d, out.body);
  if (d.r.broken()) {
    return Status::ProtocolError(fmt::format("malformed request ({} bytes)", bytes.size()));
  }
  // Before the left-over bytes: those are the arguments of an operation from a newer peer, which
  // deserves a clearer answer than "malformed".
  if (!known) return Status::InvalidArgument(fmt::format("unknown operation {}", op));
  VVM_RETURN_IF_ERROR(d.refused);
  VVM_RETURN_IF_ERROR(check_used("request", d, bytes.size()));
  return out;
}

Result<Reply> decode_reply(std::string_view bytes) {
  auto preamble = decode_preamble(bytes);
  if (!preamble.ok()) return preamble.status();
  Decoder d(bytes);
  uint32_t skip = 0, code = 0, op = 0;
  std::string message;
  for (int i = 0; i < 3; ++i) d.r.u32(&skip);
  d.r.u32(&code);
  d.long_string(message, "");
  d.r.u32(&op);
  Reply out;
  out.version = preamble->version;
  out.xid = preamble->xid;
  // The body is read whatever the code says, as XDR's union would: its bytes are part of the
  // message, and left-over bytes are an error either way.
  const bool known =
      !d.r.broken() && (op == static_cast<uint32_t>(Op::kNone) ||
                        decode_reply_body(op, d, out.body, static_cast<RequestBody*>(nullptr)));
  if (d.r.broken()) {
    return Status::ProtocolError(fmt::format("malformed reply ({} bytes)", bytes.size()));
  }
  VVM_RETURN_IF_ERROR(check_used("reply", d, bytes.size()));
  if (code > static_cast<uint32_t>(kLastCode)) {
    return Status::ProtocolError(fmt::format("reply carries unknown error code {}", code));
  }
  if (code != static_cast<uint32_t>(Code::kOk)) {
    out.status = Status(static_cast<Code>(code), std::move(message));
    out.body = std::monostate{};
    return out;
  }
  if (!known) return Status::ProtocolError(fmt::format("reply carries unknown operation {}", op));
  if (!d.refused.ok()) return Status::ProtocolError("reply: " + d.refused.message());
  return out;
}

Reply error_reply(const Preamble& preamble, Status status) {
  Reply r;
  r.xid = preamble.xid;
  r.status = std::move(status);
  return r;
}

}  // namespace vvm::rpc
