// proto/xdr.h: the XDR (RFC 4506) primitives the control protocol is made of, written into and
// read from memory: 4-byte big-endian words, 8-byte hypers, and counted bytes padded with zeros
// to a whole word.
//
// The codec writes these itself rather than through libtirpc's xdrmem and xdr_* routines: those
// work on C structs whose strings and arrays they malloc on decode (and which must be freed
// again), take their input through a non-const pointer, and report only "failed". A reader that
// checks every length against the bytes left before it copies anything is a few lines, knows no
// allocation it did not ask for, and is the same on every platform. The bytes are XDR's, so that
// vvm_proto.x stays the specification and any XDR implementation can speak to vvm.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vvm::rpc::xdr {

// Appends XDR to a string.
class Writer {
 public:
  void u32(uint32_t v) {
    const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
    out_.append(b, 4);
  }
  void u64(uint64_t v) {  // "unsigned hyper": the high word first
    u32(static_cast<uint32_t>(v >> 32));
    u32(static_cast<uint32_t>(v));
  }
  // A variable-length opaque or string: its length, its bytes, zeros to the next word.
  void bytes(std::string_view b) {
    u32(static_cast<uint32_t>(b.size()));
    out_.append(b);
    out_.append((4 - b.size() % 4) % 4, '\0');
  }
  size_t size() const { return out_.size(); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads XDR from memory. A read past the end, or a length over its limit, makes the reader
// broken: every later read then fails too, so a decoder can read a whole message and check once.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool u32(uint32_t* v) {
    if (!have(4)) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(in_.data() + pos_);
    *v = uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
    pos_ += 4;
    return true;
  }
  bool u64(uint64_t* v) {
    uint32_t hi = 0, lo = 0;
    if (!u32(&hi) || !u32(&lo)) return false;
    *v = uint64_t{hi} << 32 | lo;
    return true;
  }
  // A variable-length opaque or string of at most `max` bytes.
  bool bytes(std::string* out, size_t max) {
    uint32_t len = 0;
    if (!u32(&len)) return false;
    const size_t padded = len + size_t{(4 - len % 4) % 4};
    if (len > max || !have(padded)) return fail();
    out->assign(in_.data() + pos_, len);
    pos_ += padded;
    return true;
  }
  bool fail() {
    broken_ = true;
    return false;
  }

  bool broken() const { return broken_; }
  size_t used() const { return pos_; }
  size_t left() const { return in_.size() - pos_; }

 private:
  bool have(size_t n) {
    if (broken_ || in_.size() - pos_ < n) return fail();
    return true;
  }

  std::string_view in_;
  size_t pos_ = 0;
  bool broken_ = false;
};

}  // namespace vvm::rpc::xdr
