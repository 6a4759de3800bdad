// proto_fuzz.cc: libFuzzer target for the control protocol's decoder, every op of both
// directions. The input is what a peer sends down a connection: record marks and fragments
// (proto/frame.h), read with the RecordReader as vvmd's sessions and the client read them; each
// whole record is then decoded as the server decodes a request (decode_preamble, then
// decode_request) and as the client decodes a reply (decode_reply).
//
// Any bytes must decode or be refused with a message, never crash. What decodes must encode again
// (nothing decoded is over a limit), and that encoding must decode and encode to the same bytes:
// the decoder may normalise (a string is cut at its first NUL, a flag is any non-zero word), but
// only once. A refusal must be answerable: the server's error reply to it must encode.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "proto/frame.h"
#include "proto/messages.h"

namespace {

using namespace vvm::rpc;

void require(bool ok) {
  if (!ok) std::abort();
}

void check_request(const std::string& bytes) {
  auto preamble = decode_preamble(bytes);
  if (!preamble.ok()) {
    require(!preamble.status().message().empty());
    require(encode_reply(error_reply({}, preamble.status())).ok());
    return;
  }
  auto request = decode_request(bytes);
  if (!request.ok()) {
    require(!request.status().message().empty());
    require(encode_reply(error_reply(*preamble, request.status())).ok());
    return;
  }
  require(request->xid == preamble->xid);
  require(op_name(op_of(request->body)) != "unknown");
  auto once = encode_request(*request);
  require(once.ok());
  auto again = decode_request(*once);
  require(again.ok());
  auto twice = encode_request(*again);
  require(twice.ok() && *twice == *once);
}

void check_reply(const std::string& bytes) {
  auto reply = decode_reply(bytes);
  if (!reply.ok()) {
    require(!reply.status().message().empty());
    return;
  }
  auto once = encode_reply(*reply);
  require(once.ok());
  auto again = decode_reply(*once);
  require(again.ok());
  require(again->status.code() == reply->status.code());
  auto twice = encode_reply(*again);
  require(twice.ok() && *twice == *once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  RecordReader reader;
  size_t pos = 0;
  while (pos + kMarkSize <= in.size()) {
    vvm::Status s = reader.add_mark(decode_mark(in.data() + pos));
    pos += kMarkSize;
    if (!s.ok()) {
      require(!s.message().empty());  // the server closes the connection, saying why
      return 0;
    }
    const size_t n = std::min(reader.pending(), in.size() - pos);
    std::memcpy(reader.tail(), in.data() + pos, n);
    reader.advance(n);
    pos += n;
    if (reader.pending() > 0) return 0;  // the peer hung up inside a fragment
    if (!reader.complete()) continue;
    const std::string record = reader.take();
    require(reader.pending() == 0 && !reader.complete());
    check_request(record);
    check_reply(record);
  }
  return 0;
}
