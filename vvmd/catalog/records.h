// catalog/records.h: vvmd's tables as the database engine (db/) sees them: the VV, VSN, counter,
// copy, state and verify schemas (fields, widths, record sizes), the indexes of DESIGN.md, and the
// conversions between their records and the daemon's one type for each (vvm::Vv, vvm::Vsn,
// vvm::CopyMark: common/vv.h, common/vsn.h, common/copy_mark.h).
//
// The record text (db/record.h) keeps the words of the states ("hot", "archived", "blank"), the
// permission bits in octal ("0640") and "-" for an empty text, so that a table reads well with
// cat, awk and sort; the types hold enums and numbers. A VV's copies are in slots
// 1..kMaxVvCopies, copy i on the i-th media type its class lists; an empty VSN means that copy
// does not exist yet. Times are unix seconds, written as 40-bit hex (10 digits), as in the tape
// labels.
//
// To add a field, append it to the end of its schema in records.cc with the fill that older
// records get, and to the conversions and the sink below (README.md, "Adding a field to the VV
// record"): Table::open upgrades the tables written before it.
#pragma once

#include <string_view>
#include <vector>

#include "common/copy_mark.h"
#include "common/status.h"
#include "common/vsn.h"
#include "common/vv.h"
#include "db/index.h"
#include "db/record.h"

namespace vvm::vvmd {

const db::Schema& vv_schema();       // 256-byte records
const db::Schema& vsn_schema();      // 128-byte records
const db::Schema& counter_schema();  // 64-byte records: a name (up to 24 characters), a number
const db::Schema& copy_schema();     // 256-byte records: a bad or dead tape file
const db::Schema& state_schema();    // 256-byte records: who set a VSN's or drive's state
const db::Schema& verify_schema();   // 256-byte records: a tape file's last verify (VerifyMark)

// VV: name (unique), hot (class + client id, hot VVs), unwritten (unique name, finished VVs not
// yet archived: recovery requeues them), vsn (VSN + file number, one key a copy), id (client id).
std::vector<db::Index> vv_indexes();
// VSN: name (unique), hot (class + location, hot VSNs).
std::vector<db::Index> vsn_indexes();
// Counter: name (unique).
std::vector<db::Index> counter_indexes();
// Copy: place (unique: VSN + file number), vv (the VV it was a copy of).
std::vector<db::Index> copy_indexes();
// State: name (unique: kind + name).
std::vector<db::Index> state_indexes();
// Verify: place (unique: VSN + file number).
std::vector<db::Index> verify_indexes();

// Who set the state of a VSN or a drive, when and why: an operator (vvctl vsn set, drive down,
// drive up) or vvmd itself (errors in a row); and since when a VSN has its class. A VSN's state
// and class themselves are its record's; a drive's state is here alone (a drive with no note is
// up).
struct StateNote {
  std::string kind;   // "vsn", "drive", "class" (a VSN's class), kRepackNote (a VSN's repack)
  std::string name;   // "L00001", "d0"
  std::string state;  // a VSN's state word as vvctl says it, "up", "down", or the class
  uint64_t since = 0;
  std::string by;      // a user name, or "vvmd"
  std::string reason;  // as given, cut to what the record holds; a class: "vsn add --class" or
                       // kFirstArchive
  bool operator==(const StateNote&) const = default;
};
inline constexpr std::string_view kFirstArchive = "first archive";
// The kind of a VSN's repack note (sched/repack.cc), its state "running", "done" or "reclaimed":
// "repack" is one letter too long for the field.
inline constexpr char kRepackNote[] = "move";
// How the dead mark of a copy a repack moved begins its why: "repacked to L90002 file 3".
inline constexpr std::string_view kRepackedTo = "repacked to ";
db::Values state_values(const StateNote& note);
Result<StateNote> state_from_values(const db::Values& values);

// The record's values, in schema order.
db::Values vv_values(const Vv& vv);
db::Values vsn_values(const Vsn& vsn);
// The type from a record's values; InvalidArgument naming the field for values of the wrong
// kind, or a state word or permission text the type cannot hold.
Result<Vv> vv_from_values(const db::Values& values);
Result<Vsn> vsn_from_values(const db::Values& values);
db::Values copy_values(const CopyMark& mark);
db::Values verify_values(const VerifyMark& mark);
Result<VerifyMark> verify_from_values(const db::Values& values);
Result<CopyMark> copy_from_values(const db::Values& values);

// A copy mark's free text (its reason) as a record field holds it: a record's text has no blanks,
// so a blank is written '_', and '_', '%' and anything unprintable as %XX; cut to `width`
// without splitting an escape. db_text_read undoes it.
std::string db_text(std::string_view text, size_t width);
std::string db_text_read(std::string_view field);

// Typed reads: a record decoded straight into the type, with no Values in between (a lookup
// then costs a third less). A state word the type does not know fails the decode.
class VvSink final : public db::FieldSink {
 public:
  explicit VvSink(Vv* out) : vv_(*out) {}
  bool text(size_t field, std::string_view value) override;
  bool number(size_t field, uint64_t value) override;

 private:
  Vv& vv_;
};
class VsnSink final : public db::FieldSink {
 public:
  explicit VsnSink(Vsn* out) : vsn_(*out) {}
  bool text(size_t field, std::string_view value) override;
  bool number(size_t field, uint64_t value) override;

 private:
  Vsn& vsn_;
};

class CopySink final : public db::FieldSink {
 public:
  explicit CopySink(CopyMark* out) : mark_(*out) {}
  bool text(size_t field, std::string_view value) override;
  bool number(size_t field, uint64_t value) override;

 private:
  CopyMark& mark_;
};

}  // namespace vvm::vvmd
