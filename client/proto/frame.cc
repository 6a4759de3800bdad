// proto/frame.cc: RPC record marking, see proto/frame.h.
#include "proto/frame.h"

#include <fmt/core.h>

#include <cassert>

namespace vvm::rpc {

namespace {
constexpr uint32_t kLastFragment = 0x80000000u;
}

std::array<char, kMarkSize> encode_mark(FragmentMark mark) {
  assert(mark.length < kLastFragment);
  uint32_t v = mark.length | (mark.last ? kLastFragment : 0);
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

FragmentMark decode_mark(const char* bytes) {
  auto b = reinterpret_cast<const unsigned char*>(bytes);
  uint32_t v = uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | uint32_t{b[3]};
  return {v & ~kLastFragment, (v & kLastFragment) != 0};
}

Status RecordReader::add_mark(FragmentMark mark) {
  assert(pending() == 0 && !seen_last_);
  size_t total = data_.size() + mark.length;
  if (total > max_size_) {
    return Status::ProtocolError(fmt::format(
        "message of at least {} bytes refused: the limit is {} bytes", total, max_size_));
  }
  data_.resize(total);
  seen_last_ = mark.last;
  return Status::Ok();
}

std::string RecordReader::take() {
  assert(complete());
  std::string out = std::move(data_);
  data_.clear();
  filled_ = 0;
  seen_last_ = false;
  return out;
}

std::string frame_record(std::string_view message) {
  assert(message.size() <= kMaxMessage);
  auto mark = encode_mark({static_cast<uint32_t>(message.size()), true});
  std::string out(mark.data(), mark.size());
  out.append(message);
  return out;
}

}  // namespace vvm::rpc
