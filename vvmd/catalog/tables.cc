// catalog/tables.cc: vvmd's tables over the database engine; see catalog/tables.h.
#include "catalog/tables.h"

#include <fmt/core.h>

namespace vvm::vvmd {

std::vector<db::TableSpec> table_specs() {
  std::vector<db::TableSpec> specs;
  specs.push_back({"vv.tab", &vv_schema(), vv_indexes()});
  specs.push_back({"vsn.tab", &vsn_schema(), vsn_indexes()});
  specs.push_back({"counter.tab", &counter_schema(), counter_indexes()});
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
