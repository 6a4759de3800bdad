// record_fuzz.cc: libFuzzer target for the record decoder. Any bytes, cut or padded to a VV
// record, must decode or be refused with a message, never crash; and whatever decodes must
// encode again and decode to the same values.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "catalog/records.h"
#include "db/record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vvm::db;
  const Schema& schema = size % 2 ? vvm::vvmd::vsn_schema() : vvm::vvmd::vv_schema();
  std::string rec(reinterpret_cast<const char*>(data), size);
  rec.resize(schema.record_size(), ' ');
  (void)checksum_ok(rec);
  (void)is_blank(rec);
  auto values = schema.decode(rec, "fuzz");
  if (!values.ok()) return 0;
  auto again = schema.encode(rec[0], *values);
  if (!again.ok()) std::abort();  // decoded values must always encode
  auto back = schema.decode(*again, "fuzz");
  if (!back.ok() || *back != *values) std::abort();
  return 0;
}
