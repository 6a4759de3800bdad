// catalog/tables.h: vvmd's database: its tables over the engine (db/database.h), their numbers,
// and reads that give the daemon's types (vvm::Vv, vvm::Vsn, vvm::CopyMark) and counters.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "catalog/records.h"
#include "common/status.h"
#include "db/database.h"

namespace vvm::vvmd {

// The tables in the order Database::open gets them, which numbers them in the journal: never
// reorder, only append.
inline constexpr db::TableId kVvTable{0};
inline constexpr db::TableId kVsnTable{1};
inline constexpr db::TableId kCounterTable{2};
inline constexpr db::TableId kCopyTable{3};    // bad and dead tape files (common/copy_mark.h)
inline constexpr db::TableId kStateTable{4};   // who set a VSN's or drive's state (StateNote)
inline constexpr db::TableId kVerifyTable{5};  // a tape file's last verify (common/copy_mark.h)

// vv.tab, vsn.tab, counter.tab, copy.tab, state.tab, verify.tab and the journal in `dir`,
// created when missing (a database made before copy.tab, state.tab or verify.tab gets an empty
// one), older tables upgraded (db/table.h).
Result<std::unique_ptr<db::Database>> open_database(const std::string& dir,
                                                    uint64_t checkpoint_bytes = 4 << 20);
// The tables as Database::open takes them (for tests that open the engine themselves).
std::vector<db::TableSpec> table_specs();

// The VV in `slot`, or the one with `key` in `index` (then its slot).
Status read_vv(db::Database& db, uint64_t slot, Vv* out);
Result<uint64_t> lookup_vv(db::Database& db, std::string_view index, const std::string& key,
                           Vv* out);
// The VV named `name` (by the unique name index) and its slot; NotFound says "no VV NAME".
Result<uint64_t> find_vv(db::Database& db, const std::string& name, Vv* out);
Status read_vsn(db::Database& db, uint64_t slot, Vsn* out);
Result<uint64_t> lookup_vsn(db::Database& db, std::string_view index, const std::string& key,
                            Vsn* out);
// The VSN named `name` (by the unique name index) and its slot; NotFound says "no VSN NAME
// ('vvctl vsn ls' lists them)", for the commands an operator gives a VSN's name.
Result<uint64_t> find_vsn(db::Database& db, const std::string& name, Vsn* out);
// Every VV whose key in `index` lies in [lo, hi), in key order (Database::scan_index).
Status scan_vv(db::Database& db, std::string_view index, const std::string& lo,
               const std::string& hi, const std::function<bool(uint64_t slot, const Vv&)>& each);
Status scan_vsn(db::Database& db, std::string_view index, const std::string& lo,
                const std::string& hi, const std::function<bool(uint64_t slot, const Vsn&)>& each);

// The copy marks of VV `vv` (index "vv"), or of the tape files on `vsn` (index "place"), in key
// order.
Status scan_copy_marks_of_vv(db::Database& db, const std::string& vv,
                             const std::function<bool(uint64_t slot, const CopyMark&)>& each);
Status scan_copy_marks_on_vsn(db::Database& db, const std::string& vsn,
                              const std::function<bool(uint64_t slot, const CopyMark&)>& each);
// The mark of tape file `file` on `vsn`, and its slot; NotFound when it is unmarked.
Result<uint64_t> find_copy_mark(db::Database& db, const std::string& vsn, uint64_t file,
                                CopyMark* out);

// The note of `kind` `name` ("vsn", "L00001"), and its slot; NotFound when there is none.
Result<uint64_t> find_state_note(db::Database& db, const std::string& kind, const std::string& name,
                                 StateNote* out);
// Adds to `txn` the change that makes `note` the note of its kind and name.
Status set_state_note(db::Database& db, db::Transaction& txn, const StateNote& note);
// Every note of `kind`, in name order.
Status scan_state_notes(db::Database& db, const std::string& kind,
                        const std::function<bool(const StateNote&)>& each);

// The last verify of tape file `file` on `vsn`, and its slot; NotFound when it was never verified.
Result<uint64_t> find_verify_mark(db::Database& db, const std::string& vsn, uint64_t file,
                                  VerifyMark* out);
// Adds to `txn` the change that makes `mark` the last verify of its tape file.
Status set_verify_mark(db::Database& db, db::Transaction& txn, const VerifyMark& mark);
// The verifies of the tape files on `vsn`, in file order.
Status scan_verify_marks_on_vsn(db::Database& db, const std::string& vsn,
                                const std::function<bool(uint64_t slot, const VerifyMark&)>& each);

// Counters (a name and a number, for values that must never go back, such as the highest VV
// serial of a class even after that VV is removed): the value, 0 if unset.
Result<uint64_t> counter(db::Database& db, std::string_view name);
// Adds to `txn` the change that sets counter `name` to `value` (an insert the first time).
Status set_counter(db::Database& db, db::Transaction& txn, std::string_view name, uint64_t value);

}  // namespace vvm::vvmd
