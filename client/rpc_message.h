// rpc_message.h: the control protocol's messages as C++ values, and their XDR encoding.
//
// vvm_proto.x defines the wire format; rpcgen turns it into C structs and libtirpc's xdr_*
// routines, which only rpc_message.cc sees. Everyone else works with these types: a Request
// holds one operation's arguments, a Reply either a Status error or that operation's result.
//
// Adding an operation: its arguments and result here, an arm in RequestBody and ReplyBody, and
// the conversions in rpc_message.cc (the compiler points at every switch that needs it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "status.h"

namespace vvm::rpc {

inline constexpr uint32_t kProtocolMagic = 0x56564d31;  // "VVM1"
inline constexpr uint32_t kProtocolVersion = 1;

enum class Op : uint32_t { kNone = 0, kPing = 1 };
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

using RequestBody = std::variant<PingRequest>;
using ReplyBody = std::variant<std::monostate, PingReply>;  // monostate: an error reply

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
