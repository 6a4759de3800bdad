// catalog/tables.cc: vvmd's tables over the database engine; see catalog/tables.h.
#include "catalog/tables.h"

#include <fmt/core.h>

namespace vvm::vvmd {

std::vector<db::TableSpec> table_specs() {
  std::vector<db::TableSpec> specs;
  specs.push_back({"vv.tab", &vv_schema(), vv_indexes()});
  specs.push_back({"vsn.tab", &vsn_schema(), vsn_indexes()});
  specs.push_back({"counter.tab", &counter_schema(), counter_indexes()});
  specs.push_back({"copy.tab", &copy_schema(), copy_indexes()});
  specs.push_back({"state.tab", &state_schema(), state_indexes()});
  specs.push_back({"verify.tab", &verify_schema(), verify_indexes()});
  return specs;
}

Result<std::unique_ptr<db::Database>> open_database(const std::string& dir,
                                                    uint64_t checkpoint_bytes) {
  return db::Database::open(dir, table_specs(), checkpoint_bytes);
}

Status read_vv(db::Database& db, uint64_t slot, Vv* out) {
  VvSink sink(out);
  return db.read_to(kVvTable, slot, sink);
}

Result<uint64_t> lookup_vv(db::Database& db, std::string_view index, const std::string& key,
                           Vv* out) {
  VvSink sink(out);
  return db.lookup_to(kVvTable, index, key, sink);
}

Result<uint64_t> find_vv(db::Database& db, const std::string& name, Vv* out) {
  auto slot = lookup_vv(db, "name", db::KeyBuilder().text(name), out);
  if (!slot.ok() && slot.status().code() == Code::kNotFound) {
    return Status::NotFound(fmt::format("no VV {}", name));
  }
  return slot;
}

Status read_vsn(db::Database& db, uint64_t slot, Vsn* out) {
  VsnSink sink(out);
  return db.read_to(kVsnTable, slot, sink);
}

Result<uint64_t> lookup_vsn(db::Database& db, std::string_view index, const std::string& key,
                            Vsn* out) {
  VsnSink sink(out);
  return db.lookup_to(kVsnTable, index, key, sink);
}

Result<uint64_t> find_vsn(db::Database& db, const std::string& name, Vsn* out) {
  auto slot = lookup_vsn(db, "name", db::KeyBuilder().text(name), out);
  if (!slot.ok() && slot.status().code() == Code::kNotFound) {
    return Status::NotFound(fmt::format("no VSN {} ('vvctl vsn ls' lists them)", name));
  }
  return slot;
}

Status scan_vv(db::Database& db, std::string_view index, const std::string& lo,
               const std::string& hi, const std::function<bool(uint64_t, const Vv&)>& each) {
  Vv vv;
  VvSink sink(&vv);
  return db.scan_to(kVvTable, index, lo, hi, sink, [&](uint64_t slot) { return each(slot, vv); });
}

Status scan_vsn(db::Database& db, std::string_view index, const std::string& lo,
                const std::string& hi, const std::function<bool(uint64_t, const Vsn&)>& each) {
  Vsn vsn;
  VsnSink sink(&vsn);
  return db.scan_to(kVsnTable, index, lo, hi, sink, [&](uint64_t slot) { return each(slot, vsn); });
}

namespace {
// Every key that starts with the key of `text` alone (a text part ends with a byte below 0x02,
// so raising that byte passes them all).
db::KeyRange keys_after_text(std::string_view text) {
  db::KeyRange r{db::KeyBuilder().text(text), db::KeyBuilder().text(text)};
  r.hi.back() = static_cast<char>(r.hi.back() + 1);
  return r;
}
}  // namespace

Status scan_copy_marks_of_vv(db::Database& db, const std::string& vv,
                             const std::function<bool(uint64_t, const CopyMark&)>& each) {
  CopyMark mark;
  CopySink sink(&mark);
  const db::KeyRange r = keys_after_text(vv);
  return db.scan_to(kCopyTable, "vv", r.lo, r.hi, sink,
                    [&](uint64_t slot) { return each(slot, mark); });
}

Status scan_copy_marks_on_vsn(db::Database& db, const std::string& vsn,
                              const std::function<bool(uint64_t, const CopyMark&)>& each) {
  CopyMark mark;
  CopySink sink(&mark);
  const db::KeyRange r = keys_after_text(vsn);
  return db.scan_to(kCopyTable, "place", r.lo, r.hi, sink,
                    [&](uint64_t slot) { return each(slot, mark); });
}

Result<uint64_t> find_copy_mark(db::Database& db, const std::string& vsn, uint64_t file,
                                CopyMark* out) {
  CopySink sink(out);
  return db.lookup_to(kCopyTable, "place", db::KeyBuilder().text(vsn).number(file), sink);
}

Result<uint64_t> find_state_note(db::Database& db, const std::string& kind, const std::string& name,
                                 StateNote* out) {
  db::Values v;
  auto slot = db.lookup_into(kStateTable, "name", db::KeyBuilder().text(kind).text(name), &v);
  if (!slot.ok()) return slot.status();
  auto note = state_from_values(v);
  if (!note.ok()) return note.status();
  *out = std::move(*note);
  return *slot;
}

Status set_state_note(db::Database& db, db::Transaction& txn, const StateNote& note) {
  StateNote old;
  auto slot = find_state_note(db, note.kind, note.name, &old);
  if (slot.ok()) {
    txn.update(kStateTable, *slot, state_values(note));
    return Status::Ok();
  }
  if (slot.status().code() != Code::kNotFound) return slot.status();
  txn.insert(kStateTable, state_values(note));
  return Status::Ok();
}

Status scan_state_notes(db::Database& db, const std::string& kind,
                        const std::function<bool(const StateNote&)>& each) {
  const db::KeyRange r = keys_after_text(kind);
  Status bad;
  Status s = db.scan_index(kStateTable, "name", r.lo, r.hi, [&](uint64_t, const db::Values& v) {
    auto note = state_from_values(v);
    if (!note.ok()) {
      bad = note.status();
      return false;
    }
    return each(*note);
  });
  VVM_RETURN_IF_ERROR(s);
  return bad;
}

Result<uint64_t> find_verify_mark(db::Database& db, const std::string& vsn, uint64_t file,
                                  VerifyMark* out) {
  db::Values v;
  auto slot = db.lookup_into(kVerifyTable, "place", db::KeyBuilder().text(vsn).number(file), &v);
  if (!slot.ok()) return slot.status();
  auto mark = verify_from_values(v);
  if (!mark.ok()) return mark.status();
  *out = std::move(*mark);
  return *slot;
}

Status set_verify_mark(db::Database& db, db::Transaction& txn, const VerifyMark& mark) {
  VerifyMark old;
  auto slot = find_verify_mark(db, mark.vsn, mark.file, &old);
  if (slot.ok()) {
    txn.update(kVerifyTable, *slot, verify_values(mark));
    return Status::Ok();
  }
  if (slot.status().code() != Code::kNotFound) return slot.status();
  txn.insert(kVerifyTable, verify_values(mark));
  return Status::Ok();
}

Status scan_verify_marks_on_vsn(db::Database& db, const std::string& vsn,
                                const std::function<bool(uint64_t, const VerifyMark&)>& each) {
  const db::KeyRange r = keys_after_text(vsn);
  Status bad;
  Status s =
      db.scan_index(kVerifyTable, "place", r.lo, r.hi, [&](uint64_t slot, const db::Values& v) {
        auto mark = verify_from_values(v);
        if (!mark.ok()) {
          bad = mark.status();
          return false;
        }
        return each(slot, *mark);
      });
  VVM_RETURN_IF_ERROR(s);
  return bad;
}

Result<uint64_t> counter(db::Database& db, std::string_view name) {
  db::Values v;
  auto slot = db.lookup_into(kCounterTable, "name", db::KeyBuilder().text(name), &v);
  if (slot.status().code() == Code::kNotFound) return uint64_t{0};
  if (!slot.ok()) return slot.status();
  return std::get<uint64_t>(v[1]);
}

Status set_counter(db::Database& db, db::Transaction& txn, std::string_view name, uint64_t value) {
  db::Values v;
  auto slot = db.lookup_into(kCounterTable, "name", db::KeyBuilder().text(name), &v);
  if (slot.ok()) {
    txn.update(kCounterTable, *slot, {std::string(name), value});
    return Status::Ok();
  }
  if (slot.status().code() != Code::kNotFound) return slot.status();
  txn.insert(kCounterTable, {std::string(name), value});
  return Status::Ok();
}

}  // namespace vvm::vvmd
