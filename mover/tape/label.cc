// tape/label.cc: encoding, decoding and checking of HDR, EOF and VOL labels; see tape/label.h.
#include "tape/label.h"

#include <fmt/core.h>

#include <charconv>
#include <vector>

namespace vvm::tape {

namespace {

// Where each field of a HDR/EOF label lies (DESIGN.md's table, in order).
struct Span {
  size_t offset;
  size_t width;
  std::string_view name;
};
constexpr Span kKind{0, 3, "label"};
constexpr Span kClass{3, 1, "vv class"};
constexpr Span kSerial{4, 10, "vv serial"};
constexpr Span kId{14, 10, "id"};
constexpr Span kFileNumber{24, 10, "file number"};
constexpr Span kSize{34, 16, "size"};
constexpr Span kTimeFinished{50, 10, "time finished"};
constexpr Span kTimeWritten{60, 10, "time written"};
constexpr Span kVersion{70, 10, "version"};
static_assert(kVersion.offset + kVersion.width == kLabelSize);

// And of a VOL label.
constexpr Span kVsn{3, 6, "vsn"};
constexpr Span kMedia{9, 8, "media type"};
constexpr Span kVolVersion{17, 10, "version"};
constexpr Span kReserved{27, 53, "reserved"};
static_assert(kReserved.offset + kReserved.width == kLabelSize);

constexpr uint64_t kMaxDecimal10 = 9'999'999'999;
constexpr uint64_t kTimeLimit = uint64_t{1} << 40;

bool upper_alnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool decimal_digit(char c) { return c >= '0' && c <= '9'; }
bool hex_digit(char c) { return decimal_digit(c) || (c >= 'A' && c <= 'F'); }

// Text from tape, quoted for a message: bytes that are not printable ASCII shown as \xNN, so a
// damaged label never puts control characters into a log.
std::string quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e || c == '\\') {
      out += fmt::format("\\x{:02X}", u);
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Decodes one label; every refusal says which label, which field and what text was found.
class Reader {
 public:
  Reader(std::string_view what, std::string_view bytes) : what_(what), bytes_(bytes) {}

  std::string_view text(const Span& f) const { return bytes_.substr(f.offset, f.width); }

  Status bad(const Span& f, std::string_view why) const {
    return Status::InvalidArgument(
        fmt::format("{} label: field {}: {} {}", what_, f.name, quote(text(f)), why));
  }

  // Every byte printable ASCII and no lowercase letter; the first check of every field.
  Status ascii_upper(const Span& f) const {
    for (char c : text(f)) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u > 0x7e) return bad(f, "holds a byte that is not printable ASCII");
    }
    for (char c : text(f)) {
      if (c >= 'a' && c <= 'z') return bad(f, "is lowercase (labels are all uppercase)");
    }
    return Status::Ok();
  }

  // Exactly `width` digits: right-justified, padded with zeros.
  Status fixed_number(const Span& f, int base, uint64_t* out) const {
    VVM_RETURN_IF_ERROR(ascii_upper(f));
    std::string_view t = text(f);
    if (t.find(' ') != std::string_view::npos) {
      return bad(f, "is padded with spaces (numbers are padded with zeros)");
    }
    for (char c : t) {
      if (!(base == 10 ? decimal_digit(c) : hex_digit(c))) {
        return bad(f, base == 10 ? "is not a decimal number" : "is not a hex number");
      }
    }
    // Cannot overflow: 10 decimal or 16 hex digits fit 64 bits.
    std::from_chars(t.data(), t.data() + t.size(), *out, base);
    return Status::Ok();
  }

  // A word of upper_alnum characters, left-justified, padded with spaces.
  Status left_word(const Span& f, std::string* out) const {
    VVM_RETURN_IF_ERROR(ascii_upper(f));
    std::string_view t = text(f);
    size_t n = 0;
    while (n < t.size() && upper_alnum(t[n])) ++n;
    if (n == 0) {
      if (t.find_first_not_of(' ') == std::string_view::npos) return bad(f, "is blank");
      if (t[0] == ' ') return bad(f, "is not left-justified");
      return bad(f, "holds a character that is not a letter or digit");
    }
    if (n < t.size() && t[n] != ' ')
      return bad(f, "holds a character that is not a letter or digit");
    if (t.find_first_not_of(' ', n) != std::string_view::npos) {
      return bad(f, "has text after its padding");
    }
    out->assign(t.substr(0, n));
    return Status::Ok();
  }

  // The version field: our version, left-justified, padded with spaces.
  Status version(const Span& f) const {
    std::string v;
    VVM_RETURN_IF_ERROR(left_word(f, &v));
    if (v != kLabelVersion) {
      return Status::VersionMismatch(
          fmt::format("{} label: field {}: unknown label version {} (this "
                      "mover reads {})",
                      what_, f.name, quote(v), kLabelVersion));
    }
    return Status::Ok();
  }

 private:
  std::string_view what_;
  std::string_view bytes_;
};

Status wrong_length(std::string_view what, size_t size) {
  return Status::InvalidArgument(
      fmt::format("{} label: {} bytes where a label has {}", what, size, kLabelSize));
}

// The fields of a file label as the label holds them, for encode() and check_label().
std::string class_text(const FileLabel& l) { return std::string(1, l.vv_class); }
std::string serial_text(const FileLabel& l) { return fmt::format("{}", l.vv_serial); }
std::string decimal10(uint64_t n) { return fmt::format("{:010d}", n); }
std::string hex(uint64_t n, int width) { return fmt::format("{:0{}X}", n, width); }

Status encode_error(const FileLabel& l, const Span& f, std::string_view why) {
  return Status::InvalidArgument(
      fmt::format("{} label: field {}: {}", label_kind_name(l.kind), f.name, why));
}

void put(std::string& label, const Span& f, std::string_view text) {
  label.replace(f.offset, text.size(), text);
}

}  // namespace

std::string_view label_kind_name(LabelKind kind) { return kind == LabelKind::kHdr ? "HDR" : "EOF"; }

Result<std::string> FileLabel::encode() const {
  if (vv_class >= 'a' && vv_class <= 'z') {
    return encode_error(*this, kClass, fmt::format("'{}' is lowercase", vv_class));
  }
  if (!upper_alnum(vv_class)) {
    return encode_error(*this, kClass,
                        fmt::format("{} is not a letter or digit", quote({&vv_class, 1})));
  }
  for (auto [f, n] : {std::pair{kSerial, vv_serial}, {kId, id}, {kFileNumber, file_number}}) {
    if (n > kMaxDecimal10) {
      return encode_error(*this, f, fmt::format("{} has more than 10 decimal digits", n));
    }
  }
  for (auto [f, t] : {std::pair{kTimeFinished, time_finished}, {kTimeWritten, time_written}}) {
    if (t >= kTimeLimit) {
      return encode_error(*this, f, fmt::format("{} (0x{:X}) does not fit 40 bits", t, t));
    }
  }
  std::string label(kLabelSize, ' ');
  put(label, kKind, label_kind_name(kind));
  put(label, kClass, class_text(*this));
  put(label, kSerial, serial_text(*this));
  put(label, kId, decimal10(id));
  put(label, kFileNumber, decimal10(file_number));
  put(label, kSize, hex(size, 16));
  put(label, kTimeFinished, hex(time_finished, 10));
  put(label, kTimeWritten, hex(time_written, 10));
  put(label, kVersion, kLabelVersion);
  return label;
}

Result<FileLabel> FileLabel::decode(std::string_view bytes) {
  if (bytes.size() != kLabelSize) return wrong_length("tape", bytes.size());
  FileLabel l;
  {
    Reader r("tape", bytes);
    VVM_RETURN_IF_ERROR(r.ascii_upper(kKind));
    std::string_view kind = r.text(kKind);
    if (kind == "HDR") {
      l.kind = LabelKind::kHdr;
    } else if (kind == "EOF") {
      l.kind = LabelKind::kEof;
    } else {
      return r.bad(kKind, "is not a label kind this mover knows (HDR or EOF)");
    }
  }
  Reader r(label_kind_name(l.kind), bytes);
  VVM_RETURN_IF_ERROR(r.ascii_upper(kClass));
  l.vv_class = bytes[kClass.offset];
  if (!upper_alnum(l.vv_class)) return r.bad(kClass, "is not a letter or digit");

  // The serial: decimal, left-justified, padded with spaces.
  VVM_RETURN_IF_ERROR(r.ascii_upper(kSerial));
  std::string_view st = r.text(kSerial);
  size_t digits = 0;
  while (digits < st.size() && decimal_digit(st[digits])) ++digits;
  if (digits == 0) {
    if (st.find_first_not_of(' ') == std::string_view::npos) return r.bad(kSerial, "is blank");
    if (st[0] == ' ') return r.bad(kSerial, "is not left-justified");
    return r.bad(kSerial, "is not a decimal number");
  }
  if (digits < st.size() && st[digits] != ' ') return r.bad(kSerial, "is not a decimal number");
  if (st.find_first_not_of(' ', digits) != std::string_view::npos) {
    return r.bad(kSerial, "has text after its padding");
  }
  // One way to write each serial, so that equal labels are equal bytes.
  if (digits > 1 && st[0] == '0') {
    return r.bad(kSerial, "has a leading zero (serials are written without)");
  }
  std::from_chars(st.data(), st.data() + digits, l.vv_serial);

  VVM_RETURN_IF_ERROR(r.fixed_number(kId, 10, &l.id));
  VVM_RETURN_IF_ERROR(r.fixed_number(kFileNumber, 10, &l.file_number));
  VVM_RETURN_IF_ERROR(r.fixed_number(kSize, 16, &l.size));
  VVM_RETURN_IF_ERROR(r.fixed_number(kTimeFinished, 16, &l.time_finished));
  VVM_RETURN_IF_ERROR(r.fixed_number(kTimeWritten, 16, &l.time_written));
  VVM_RETURN_IF_ERROR(r.version(kVersion));
  return l;
}

Result<std::string> VolLabel::encode() const {
  for (const auto& field : {std::pair{kVsn, &vsn}, {kMedia, &media_type}}) {
    const Span& f = field.first;
    const std::string& v = *field.second;
    auto fail = [&](std::string_view why) {
      return Status::InvalidArgument(
          fmt::format("VOL label: field {}: {} {}", f.name, quote(v), why));
    };
    if (v.empty()) return fail("is empty");
    if (v.size() > f.width) return fail(fmt::format("is longer than {} characters", f.width));
    for (char c : v) {
      if (c >= 'a' && c <= 'z') return fail("is lowercase");
      if (!upper_alnum(c)) return fail("holds a character that is not a letter or digit");
    }
  }
  std::string label(kLabelSize, ' ');
  put(label, kKind, "VOL");
  put(label, kVsn, vsn);
  put(label, kMedia, media_type);
  put(label, kVolVersion, kLabelVersion);
  return label;
}

Result<VolLabel> VolLabel::decode(std::string_view bytes) {
  if (bytes.size() != kLabelSize) return wrong_length("VOL", bytes.size());
  Reader r("VOL", bytes);
  VVM_RETURN_IF_ERROR(r.ascii_upper(kKind));
  if (r.text(kKind) != "VOL") return r.bad(kKind, "is not a volume label (VOL)");
  VolLabel v;
  VVM_RETURN_IF_ERROR(r.left_word(kVsn, &v.vsn));
  VVM_RETURN_IF_ERROR(r.left_word(kMedia, &v.media_type));
  VVM_RETURN_IF_ERROR(r.version(kVolVersion));
  if (r.text(kReserved).find_first_not_of(' ') != std::string_view::npos) {
    VVM_RETURN_IF_ERROR(r.ascii_upper(kReserved));
    return r.bad(kReserved, "is not all spaces");
  }
  return v;
}

Status check_label(const FileLabel& expected, const FileLabel& found, unsigned fields) {
  std::vector<std::string> diffs;
  auto cmp = [&](unsigned bit, const Span& f, auto text_of) {
    std::string want = text_of(expected), got = text_of(found);
    if ((fields & bit) && want != got) {
      diffs.push_back(fmt::format("field {}: expected {}, found {}", f.name, want, got));
    }
  };
  cmp(kFieldKind, kKind, [](const FileLabel& l) { return std::string(label_kind_name(l.kind)); });
  cmp(kFieldClass, kClass, class_text);
  cmp(kFieldSerial, kSerial, serial_text);
  cmp(kFieldId, kId, [](const FileLabel& l) { return decimal10(l.id); });
  cmp(kFieldFileNumber, kFileNumber, [](const FileLabel& l) { return decimal10(l.file_number); });
  cmp(kFieldSize, kSize, [](const FileLabel& l) { return hex(l.size, 16); });
  cmp(kFieldTimeFinished, kTimeFinished,
      [](const FileLabel& l) { return hex(l.time_finished, 10); });
  cmp(kFieldTimeWritten, kTimeWritten, [](const FileLabel& l) { return hex(l.time_written, 10); });
  if (diffs.empty()) return Status::Ok();
  std::string msg;
  for (const auto& d : diffs) msg += (msg.empty() ? "" : "; ") + d;
  return Status::IoError(std::move(msg));
}

Status check_eof(const FileLabel& hdr, const FileLabel& eof) {
  FileLabel want = hdr;
  want.kind = LabelKind::kEof;
  return check_label(want, eof);
}

}  // namespace vvm::tape
