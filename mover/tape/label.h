// tape/label.h: the 80-byte labels movers write on tape (DESIGN.md, "Tape").
//
// Every VV on tape is one tape file: a HDR label block, the data, an EOF label block, a tape mark.
// File 0 of every tape is a VOL label block and a tape mark. A label is exactly 80 ASCII bytes, all
// letters uppercase, fixed fields, so that anyone can read it with `dd | od -c` and a wrong or
// damaged label is caught field by field:
//
//   HDR|A|42        |0000000007|0000000003|0000000000100000|0065F0A1B2|0065F0A1C0|VVM1      |
//   VOL|V00001|LTO9    |VVM1      |53 spaces|
//
// Encoding refuses values that do not fit; decoding refuses anything but a canonical label, and
// every message names the field and quotes the text found.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace vvm::tape {

inline constexpr size_t kLabelSize = 80;
// The one label format version there is; labels of any other version are refused.
inline constexpr std::string_view kLabelVersion = "VVM1";

enum class LabelKind { kHdr, kEof };
std::string_view label_kind_name(LabelKind kind);  // "HDR", "EOF"

// A HDR or EOF label: the EOF label repeats its HDR field for field (the mover writes the same
// time written in both), so that a tape file can be checked on its own.
struct FileLabel {
  LabelKind kind = LabelKind::kHdr;
  char vv_class = 'A';         // one uppercase letter or digit
  uint64_t vv_serial = 0;      // at most 10 decimal digits, written without leading zeros
  uint64_t id = 0;             // the client's integer id, at most 10 decimal digits
  uint64_t file_number = 0;    // the tape file this label is in, at most 10 decimal digits
  uint64_t size = 0;           // bytes of data between the HDR and the EOF
  uint64_t time_finished = 0;  // unix time, < 2^40
  uint64_t time_written = 0;   // unix time, < 2^40

  // Exactly 80 bytes; InvalidArgument naming the field when a value does not fit.
  Result<std::string> encode() const;
  // InvalidArgument naming the field and quoting the text for anything but a canonical HDR or
  // EOF label; VersionMismatch for a well-formed label of another version.
  static Result<FileLabel> decode(std::string_view bytes);

  bool operator==(const FileLabel&) const = default;
};

// The volume label, file 0 of every tape: the VSN is checked before anything is read or written.
struct VolLabel {
  std::string vsn;         // 1 to 6 uppercase letters or digits
  std::string media_type;  // 1 to 8 uppercase letters or digits ("LTO9")

  Result<std::string> encode() const;
  static Result<VolLabel> decode(std::string_view bytes);

  bool operator==(const VolLabel&) const = default;
};

// Which fields check_label() compares.
enum LabelFields : unsigned {
  kFieldKind = 1u << 0,
  kFieldClass = 1u << 1,
  kFieldSerial = 1u << 2,
  kFieldId = 1u << 3,
  kFieldFileNumber = 1u << 4,
  kFieldSize = 1u << 5,
  kFieldTimeFinished = 1u << 6,
  kFieldTimeWritten = 1u << 7,
  kAllFields = 0xFFu,
};

// Compares a label read from tape with the one expected: ok, or IoError listing every field that
// differs, "field id: expected 0000000042, found 0000000043; field size: ...", values shown as the
// label holds them. The caller puts the VSN and the file number in front.
Status check_label(const FileLabel& expected, const FileLabel& found, unsigned fields = kAllFields);
// Checks that `eof` closes the file `hdr` opens: an EOF label with every other field equal.
Status check_eof(const FileLabel& hdr, const FileLabel& eof);

}  // namespace vvm::tape
