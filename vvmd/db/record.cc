// db/record.cc: encoding, decoding and checksums of fixed-size ASCII records; see db/record.h.
#include "db/record.h"

#include <boost/crc.hpp>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <set>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include <fmt/core.h>

namespace vvm::db {

namespace {

constexpr size_t kBlock = 4096;
constexpr size_t kCrcStart = 2, kCrcLength = 8;
using Crc32c = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;

bool printable_text(std::string_view s) {
  for (char c : s) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

std::string_view kind_name(FieldKind k) {
  switch (k) {
    case FieldKind::kText: return "text";
    case FieldKind::kDecimal: return "decimal";
    case FieldKind::kHex: return "hex";
  }
  return "?";
}

// The biggest number `width` digits hold in `base`, saturating at 2^64 - 1.
uint64_t max_for(int width, int base) {
  uint64_t max = 0;
  for (int i = 0; i < width; ++i) {
    if (max > (UINT64_MAX - (base - 1)) / base) return UINT64_MAX;
    max = max * base + (base - 1);
  }
  return max;
}

// `text`, all of it, as an unsigned number; nullopt for anything else (a sign, a blank, a digit
// of another base, a value past 2^64 - 1). Written out because from_chars's generality showed in
// profiles of table reads, which parse a dozen numbers a record.
std::optional<uint64_t> parse_number(std::string_view text, bool hex) {
  if (text.empty()) return std::nullopt;
  uint64_t n = 0;
  for (char c : text) {
    unsigned digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (hex && c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a' + 10);
    } else if (hex && c >= 'A' && c <= 'F') {
      digit = static_cast<unsigned>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    if (__builtin_mul_overflow(n, hex ? 16u : 10u, &n) || __builtin_add_overflow(n, digit, &n)) {
      return std::nullopt;
    }
  }
  return n;
}

// CRC-32C runs over every record read and every journal frame, and Boost's table-driven code
// takes about 2 ns a byte: a quarter of the time of opening a 1M-record table. SSE 4.2's crc32
// instruction does 8 bytes in a cycle or so; both give the same CRC (the unit test compares them).
#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t state, const char* p, size_t n) {
  uint64_t c = state;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; ++p, --n) c32 = _mm_crc32_u8(c32, static_cast<unsigned char>(*p));
  return c32;
}
const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

// CRC-32C of the concatenation of `pieces`.
uint32_t crc32c_of(std::initializer_list<std::string_view> pieces) {
#if defined(__x86_64__)
  if (kHaveSse42) {
    uint32_t state = 0xFFFFFFFF;
    for (std::string_view p : pieces) state = crc32c_sse42(state, p.data(), p.size());
    return state ^ 0xFFFFFFFF;
  }
#endif
  Crc32c crc;
  for (std::string_view p : pieces) crc.process_bytes(p.data(), p.size());
  return crc.checksum();
}

}  // namespace

uint32_t crc32c(std::string_view bytes) { return crc32c_of({bytes}); }

uint32_t record_checksum(std::string_view record) {
  if (record.size() <= kCrcStart + kCrcLength) return crc32c_of({record.substr(0, kCrcStart)});
  return crc32c_of({record.substr(0, kCrcStart), record.substr(kCrcStart + kCrcLength)});
}

bool checksum_ok(std::string_view record, uint32_t* expected) {
  uint32_t want = record_checksum(record);
  if (expected) *expected = want;
  if (record.size() < kPrefix) return false;
  uint32_t found = 0;
  auto text = record.substr(kCrcStart, kCrcLength);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), found, 16);
  return ec == std::errc() && end == text.data() + text.size() && found == want;
}

bool is_blank(std::string_view record) {
  return record.find_first_not_of('\0') == std::string_view::npos;
}

Result<Schema> Schema::make(std::string table, std::vector<Field> fields, size_t record_size) {
  if (record_size < 32 || kBlock % record_size != 0) {
    return Status::InvalidArgument(
        fmt::format("table {}: record size {} does not divide {}", table, record_size, kBlock));
  }
  Schema s;
  s.table_ = std::move(table);
  s.record_size_ = record_size;
  size_t pos = kPrefix;
  std::set<std::string> names;
  for (const Field& f : fields) {
    if (f.width < 1 || f.name.empty() || !printable_text(f.name) || !names.insert(f.name).second) {
      return Status::InvalidArgument(fmt::format(
          "table {}: field '{}': bad or repeated name, or width {}", s.table_, f.name, f.width));
    }
    if (f.kind != FieldKind::kText && f.width > 20) {
      return Status::InvalidArgument(fmt::format(
          "table {}: field '{}': a number is at most 20 characters wide", s.table_, f.name));
    }
    if (f.fill && std::holds_alternative<std::string>(*f.fill) != (f.kind == FieldKind::kText)) {
      return Status::InvalidArgument(
          fmt::format("table {}: field '{}': a fill of the wrong kind", s.table_, f.name));
    }
    pos += static_cast<size_t>(f.width) + 1;  // the field at its widest and the blank after it
  }
  if (pos > record_size) {  // the last blank becomes the newline at worst
    return Status::InvalidArgument(
        fmt::format("table {}: fields need {} bytes; records have {}", s.table_, pos, record_size));
  }
  s.fields_ = std::move(fields);
  return s;
}

Result<Schema> Schema::first_fields(size_t fields) const {
  if (fields == 0 || fields > fields_.size()) {
    return Status::InvalidArgument(
        fmt::format("table {}: {} fields of {}", table_, fields, fields_.size()));
  }
  return make(table_, {fields_.begin(), fields_.begin() + static_cast<ptrdiff_t>(fields)},
              record_size_);
}

int Schema::index_of(std::string_view name) const {
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (fields_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

uint32_t Schema::fingerprint() const {
  std::string spec = fmt::format("{}:{}", table_, record_size_);
  for (const auto& f : fields_)
    spec += fmt::format(",{}:{}:{}", f.name, kind_name(f.kind), f.width);
  boost::crc_32_type crc;
  crc.process_bytes(spec.data(), spec.size());
  return crc.checksum();
}

Result<std::string> Schema::encode(char state, const Values& values) const {
  if (values.size() != fields_.size()) {
    return Status::InvalidArgument(
        fmt::format("table {}: {} values for {} fields", table_, values.size(), fields_.size()));
  }
  std::string rec(record_size_, ' ');
  rec[0] = state;
  size_t pos = kPrefix;
  for (size_t i = 0; i < fields_.size(); ++i) {
    const Field& f = fields_[i];
    const auto w = static_cast<size_t>(f.width);
    if (f.kind == FieldKind::kText) {
      const auto* s = std::get_if<std::string>(&values[i]);
      if (!s)
        return Status::InvalidArgument(
            fmt::format("{}.{}: a number where text belongs", table_, f.name));
      std::string_view text = *s;
      if (text.empty()) {
        text = kEmptyText;
      } else if (text == kEmptyText) {
        return Status::InvalidArgument(
            fmt::format("{}.{}: '{}' stands for an empty text and is no value of its own", table_,
                        f.name, kEmptyText));
      } else if (!printable_text(text)) {
        return Status::InvalidArgument(
            fmt::format("{}.{}: '{}' has blanks or unprintable characters", table_, f.name, text));
      }
      if (text.size() > w) {
        return Status::InvalidArgument(
            fmt::format("{}.{}: '{}' is longer than {} characters", table_, f.name, text, w));
      }
      rec.replace(pos, text.size(), text);
      pos += text.size() + 1;
    } else {
      const auto* n = std::get_if<uint64_t>(&values[i]);
      if (!n)
        return Status::InvalidArgument(
            fmt::format("{}.{}: text where a number belongs", table_, f.name));
      const bool hex = f.kind == FieldKind::kHex;
      if (*n > max_for(f.width, hex ? 16 : 10)) {
        return Status::InvalidArgument(
            fmt::format("{}.{}: {} does not fit {} digits", table_, f.name, *n, w));
      }
      // Written into the record in place, from the last digit (zeros fill the left): the encoder
      // runs at every commit.
      char* out = rec.data() + pos;
      uint64_t rest = *n;
      for (size_t d = w; d-- > 0; rest /= (hex ? 16 : 10)) {
        out[d] = "0123456789abcdef"[rest % (hex ? 16 : 10)];
      }
      pos += w + 1;
    }
  }
  rec.back() = '\n';
  std::string crc = fmt::format("{:08x}", record_checksum(rec));
  rec.replace(kCrcStart, kCrcLength, crc);
  return rec;
}

bool ValuesSink::text(size_t i, std::string_view value) {
  if (auto* s = std::get_if<std::string>(&out_[i])) {
    s->assign(value);
  } else {
    out_[i].emplace<std::string>(value);
  }
  return true;
}

Result<Values> Schema::decode(std::string_view rec, std::string_view where) const {
  Values out;
  ValuesSink sink(out, fields_.size());
  VVM_RETURN_IF_ERROR(decode_with(
      rec, [&] { return std::string(where); }, sink));
  return out;
}

Status Schema::decode_into(std::string_view rec, std::string_view file, uint64_t record_no,
                           Values* out) const {
  ValuesSink sink(*out, fields_.size());
  return decode_to(rec, file, record_no, sink);
}

Status Schema::decode_to(std::string_view rec, std::string_view file, uint64_t record_no,
                         FieldSink& sink) const {
  return decode_with(
      rec, [&] { return fmt::format("{}: record {}", file, record_no); }, sink);
}

template <class Where>
Status Schema::decode_with(std::string_view rec, const Where& where, FieldSink& sink) const {
  if (rec.size() != record_size_) {
    return Status::InvalidArgument(
        fmt::format("{}: {} bytes where a record has {}", where(), rec.size(), record_size_));
  }
  if (rec[0] != kLive && rec[0] != kDeleted) {
    return Status::InvalidArgument(
        fmt::format("{}: state '{}' is not A (live) or D (deleted)", where(), rec.substr(0, 1)));
  }
  if (rec[1] != ' ' || rec[kPrefix - 1] != ' ' || rec.back() != '\n') {
    return Status::InvalidArgument(fmt::format("{}: not a record: '{}'", where(),
                                               rec.substr(0, std::min<size_t>(rec.size(), 60))));
  }
  // Field by field from the left: a field ends at the first blank, and the next one starts
  // after the blanks that follow (one in the current layout, the padding too in format 1). Both
  // layouts write numbers with zeros to their width, so a number's end is known: table opens and
  // lookups decode a dozen of them a record, and this spares scanning them twice.
  const size_t end = rec.size() - 1;  // the newline, which stops every scan below
  const char* const p = rec.data();
  auto word_char = [](char c) { return static_cast<unsigned char>(c - '!') <= '~' - '!'; };
  size_t pos = kPrefix;
  for (size_t i = 0; i < fields_.size(); ++i) {
    const Field& f = fields_[i];
    const auto w = static_cast<size_t>(f.width);
    if (i > 0) {
      while (p[pos] == ' ') ++pos;  // the previous field ended at a blank
    }
    size_t len = 0;
    if (f.kind != FieldKind::kText && pos + w <= end && (pos + w == end || p[pos + w] == ' ')) {
      len = w;  // a number as written; parse_number checks its digits
    } else {
      while (word_char(p[pos + len])) ++len;
    }
    std::string_view text = rec.substr(pos, len);
    auto bad = [&](std::string_view why) {
      return Status::InvalidArgument(
          fmt::format("{}: field '{}': '{}' {}", where(), f.name, text, why));
    };
    if (pos + len < end && p[pos + len] != ' ') {
      // Up to the next blank, for the message.
      while (pos + len < end && p[pos + len] != ' ') ++len;
      text = rec.substr(pos, len);
      return bad("has a character that is not printable ASCII");
    }
    if (len == 0) {
      return Status::InvalidArgument(fmt::format("{}: field '{}' is missing", where(), f.name));
    }
    if (len > w) return bad(fmt::format("is longer than {} characters", w));
    if (f.kind == FieldKind::kText) {
      std::string_view value = text == kEmptyText ? std::string_view() : text;
      if (!sink.text(i, value)) return bad("is not a value this field takes");
    } else {
      auto n = parse_number(text, f.kind == FieldKind::kHex);
      if (!n) {
        return bad(f.kind == FieldKind::kHex ? "is not a hex number" : "is not a decimal number");
      }
      if (!sink.number(i, *n)) return bad("is not a value this field takes");
    }
    pos += len;
  }
  // Only blanks up to the newline: 8 at a time, as a record has a hundred of them at times.
  constexpr uint64_t kBlanks = 0x2020202020202020ull;
  for (uint64_t word; pos + 8 <= end; pos += 8) {
    std::memcpy(&word, rec.data() + pos, 8);
    if (word != kBlanks) break;
  }
  for (; pos < end; ++pos) {
    if (rec[pos] != ' ') {
      size_t len = 0;
      while (pos + len < end && rec[pos + len] != ' ') ++len;
      return Status::InvalidArgument(
          fmt::format("{}: '{}' after the last field", where(), rec.substr(pos, len)));
    }
  }
  return Status::Ok();
}

}  // namespace vvm::db
