// db/record.h: the fixed-size ASCII records of vvmd's tables, and the schemas that describe them.
//
// A record is one line of exactly record_size bytes, record_size dividing 4096 so that a record
// never crosses a block (nor a 512-byte sector when it is 512 or less):
//
//   A 3f2a9c01 A0000000042 A 0000000042 hot cached 0065a0b1c2 ...                 \n
//   | |        the fields, separated by single blanks; then blanks up to the size, '\n'
//   | CRC-32C of the record (all of it but these 8 characters), in hex
//   A live record, D deleted (its slot is free), H the table's header
//
// Text fields hold printable characters without blanks, at most their width; "-" stands for an
// empty text, so that every record has all its fields for awk, cut -d' ' and sort -k (and "-" is
// therefore never a value of its own). Decimal and hex fields hold unsigned numbers, written with
// zeros to their width (times are 40-bit hex, 10 wide, as in the tape labels), so that they sort
// as text. Anyone can cat, grep, awk and sort a table. A record whose checksum does not match is
// torn or half-written, never data.
//
// Tables written by the first format (version 1 in the table header, db/table.h) padded every
// field to its width inside the record ("alice            staff            0640"). The decoder
// reads both layouts (fields separated by one blank or more), so that such a table, or a journal
// image of that layout, decodes; Table::open rewrites a version 1 table in the current format.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"

namespace vvm::db {

enum class FieldKind { kText, kDecimal, kHex };

using Value = std::variant<std::string, uint64_t>;  // text, or a number
using Values = std::vector<Value>;                  // one a field, in schema order

struct Field {
  std::string name;
  FieldKind kind = FieldKind::kText;
  int width = 1;
  // The value that records written before this field existed get when Table::open upgrades
  // their table; unset: "" for text, 0 for numbers. Only fields appended at the end of a schema
  // can be new (db/table.h).
  std::optional<Value> fill;
};

inline constexpr char kLive = 'A';
inline constexpr char kDeleted = 'D';
inline constexpr char kHeader = 'H';
inline constexpr size_t kPrefix = 11;  // "A 3f2a9c01 "
// What a record holds for an empty text field.
inline constexpr std::string_view kEmptyText = "-";

// Receives a record's fields, by position, as decoding finds them: decode_into's Values, or a
// typed record filled without Values in between (the daemon's own types, which live above the
// engine). Text comes as "" for "-"; each field arrives as its schema's kind says. A sink returns
// false to refuse a value it cannot hold (a state word it does not know): the decode then fails
// naming the field and the text.
class FieldSink {
 public:
  virtual ~FieldSink() = default;
  virtual bool text(size_t field, std::string_view value) = 0;
  virtual bool number(size_t field, uint64_t value) = 0;
};

// Fills Values (resized to `fields`), reusing the room of the strings already there.
class ValuesSink final : public FieldSink {
 public:
  ValuesSink(Values& out, size_t fields) : out_(out) { out_.resize(fields); }
  bool text(size_t i, std::string_view value) override;
  bool number(size_t i, uint64_t value) override {
    out_[i] = value;
    return true;
  }

 private:
  Values& out_;
};

class Schema {
 public:
  // Checks that the fields fit `record_size`, that it divides 4096, and that names are unique.
  static Result<Schema> make(std::string table, std::vector<Field> fields, size_t record_size);

  const std::string& table() const { return table_; }
  const std::vector<Field>& fields() const { return fields_; }
  size_t record_size() const { return record_size_; }
  // The position of `name` among the fields; -1 when there is none.
  int index_of(std::string_view name) const;
  // A short digest of the fields (names, kinds, widths) kept in the header, so that a table
  // made by another layout is refused at open.
  uint32_t fingerprint() const;
  // This schema's first `fields` fields alone: the layout of a table written before the others
  // were appended (Table::open's upgrade decodes its records with it).
  Result<Schema> first_fields(size_t fields) const;

  // The record text for `values` with state `state` (kLive or kDeleted), in the current layout
  // (single blanks). InvalidArgument naming the field when a value has the wrong kind, does not
  // fit its width, is text with blanks, or is the text "-" (which stands for "").
  Result<std::string> encode(char state, const Values& values) const;
  // Decodes a live or deleted record, of either layout; `where` ("vv.tab: record 17") starts every
  // message, which names the field and the text found.
  Result<Values> decode(std::string_view record, std::string_view where) const;
  // The same into `out`, reusing its room (opening a table decodes every record, and most text
  // fits the strings already there); the messages name `file` and record number `record`, and
  // are made only on error.
  Status decode_into(std::string_view record, std::string_view file, uint64_t record_no,
                     Values* out) const;
  // The same, field by field into `sink`.
  Status decode_to(std::string_view record, std::string_view file, uint64_t record_no,
                   FieldSink& sink) const;

 private:
  template <class Where>
  Status decode_with(std::string_view record, const Where& where, FieldSink& sink) const;

  std::string table_;
  std::vector<Field> fields_;
  size_t record_size_ = 0;
};

// CRC-32C (Castagnoli) of `bytes`: records and journal frames use the same checksum.
uint32_t crc32c(std::string_view bytes);
// CRC-32C of `record` without its checksum characters (bytes 2..9).
uint32_t record_checksum(std::string_view record);
// True when `record` carries the right checksum; "expected", "found" for messages.
bool checksum_ok(std::string_view record, uint32_t* expected = nullptr);

// A slot that was never written (the file was extended, all zero bytes).
bool is_blank(std::string_view record);

}  // namespace vvm::db
