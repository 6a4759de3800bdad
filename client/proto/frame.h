// proto/frame.h: RPC record marking (RFC 5531, section 11), the framing of vvm's control protocol.
//
// A record is one or more fragments, each behind a 4-byte big-endian mark whose high bit says
// "last fragment" and whose low 31 bits give the fragment's length. vvm writes every message as a
// single fragment and reads any number of them, refusing a record longer than kMaxMessage before
// reading it, so that a bad or hostile peer cannot make a daemon allocate without bound.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace vvm::rpc {

inline constexpr size_t kMaxMessage = 1024 * 1024;  // VVM_MAX_MESSAGE in vvm_proto.x
inline constexpr size_t kMarkSize = 4;

struct FragmentMark {
  uint32_t length = 0;
  bool last = true;
};

std::array<char, kMarkSize> encode_mark(FragmentMark mark);
FragmentMark decode_mark(const char* bytes);  // reads kMarkSize bytes

// Collects the fragments of one record. The reader loop is:
//   read kMarkSize bytes; VVM_RETURN_IF_ERROR(r.add_mark(decode_mark(buf)));
//   read r.pending() bytes into r.tail(); if (!r.complete()) repeat;  then take().
class RecordReader {
 public:
  explicit RecordReader(size_t max_size = kMaxMessage) : max_size_(max_size) {}

  // Accepts the next fragment's mark; a ProtocolError if the record would exceed max_size.
  Status add_mark(FragmentMark mark);
  // How many bytes of the current fragment are still to be read, and where they go.
  size_t pending() const { return data_.size() - filled_; }
  char* tail() { return data_.data() + filled_; }
  void advance(size_t n) { filled_ += n; }
  // True once the last fragment is read in full.
  bool complete() const { return seen_last_ && pending() == 0; }
  // The record; the reader is then ready for the next one.
  std::string take();

 private:
  size_t max_size_;
  std::string data_;
  size_t filled_ = 0;
  bool seen_last_ = false;
};

// One message as a single-fragment record: mark, then the bytes.
std::string frame_record(std::string_view message);

}  // namespace vvm::rpc
