// db/schemas.h: vvmd's two tables, VV and VSN: their fields, their record sizes and the seven
// indexes of DESIGN.md, and typed records so that the daemon never handles field positions.
//
// A VV's copies are in slots 1..kMaxCopies, copy i on the i-th media type its class lists; an
// empty VSN means that copy does not exist yet. Times are unix seconds, written as 40-bit hex
// (10 digits), as in the tape labels.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "db/index.h"
#include "db/record.h"

namespace vvm::db {

inline constexpr int kMaxCopies = 4;

struct VvCopy {
  std::string vsn;  // "" when there is no such copy yet
  uint64_t file = 0;
  bool operator==(const VvCopy&) const = default;
};

struct VvRecord {
  std::string name;        // "A0000000042"
  std::string vv_class;    // "A"
  uint64_t serial = 0;     // 42
  uint64_t client_id = 0;  // the integer id the client gave
  std::string owner, group;
  std::string perms = "0640";                        // octal
  uint64_t size = 0;                                 // bytes
  std::string state = "hot";                         // hot, finished, archived
  std::string cache = "cached";                      // cached, evicted, staging
  uint64_t created = 0, finished = 0, accessed = 0;  // unix seconds
  uint64_t checksum = 0;                             // of the data, as the tape label has it
  std::array<VvCopy, kMaxCopies> copies{};
  bool operator==(const VvRecord&) const = default;

  Values to_values() const;
  static Result<VvRecord> from_values(const Values& v);
};

struct VsnRecord {
  std::string name;             // "L00042"
  std::string media;            // "LTO9"
  std::string vsn_class;        // "A"
  std::string state = "blank";  // blank, hot, full, retired
  std::string location;         // "slot:42", "drive:d0", "" when out of the library
  uint64_t next_file = 1;
  uint64_t bytes_used = 0;
  uint64_t capacity = 0;
  uint64_t errors = 0;
  uint64_t last_mount = 0;  // unix seconds
  bool operator==(const VsnRecord&) const = default;

  Values to_values() const;
  static Result<VsnRecord> from_values(const Values& v);
};

// Typed reads (Database::read_vv, lookup_vv, ...): a record decoded straight into the struct,
// with no Values in between (a lookup then costs a third less).
class VvSink final : public FieldSink {
 public:
  explicit VvSink(VvRecord* out) : r_(*out) {}
  void text(size_t field, std::string_view value) override;
  void number(size_t field, uint64_t value) override;

 private:
  VvRecord& r_;
};
class VsnSink final : public FieldSink {
 public:
  explicit VsnSink(VsnRecord* out) : r_(*out) {}
  void text(size_t field, std::string_view value) override;
  void number(size_t field, uint64_t value) override;

 private:
  VsnRecord& r_;
};

// The counter table: a name (up to 24 characters) and a number; 64-byte records.
const Schema& counter_schema();
std::vector<Index> counter_indexes();  // name (unique)

const Schema& vv_schema();   // 256-byte records
const Schema& vsn_schema();  // 128-byte records

// VV: name (unique), hot (class + client id, hot VVs), unwritten (unique name, finished VVs not
// yet archived: recovery requeues them), vsn (VSN + file number, one key a copy), id (client id).
std::vector<Index> vv_indexes();
// VSN: name (unique), hot (class + location, hot VSNs).
std::vector<Index> vsn_indexes();

}  // namespace vvm::db
