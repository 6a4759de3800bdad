// journal_fuzz.cc: libFuzzer target for journal replay, as vvmd opens its database: the input
// becomes the journal beside vvmd's three tables (catalog/tables.h, empty), and Database::open
// replays it into them and opens them. Any journal must open or be refused with a message, never
// crash or hang; a database that opens must pass its own check (every index against a scan), and
// open again, after its journal was emptied, with the same records.
//
// The first byte of the input is a mode: odd, each frame's CRC-32C is set right before the
// journal is written, so that the fuzzer gets past the checksum to the images within (a CRC is
// what stands between a torn write and the tables; what a frame with a good CRC holds is what
// replay trusts).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/tables.h"
#include "db/database.h"
#include "db/journal_format.h"
#include "db/record.h"
#include "scratch.h"

namespace {

using namespace vvm;
namespace journal = vvm::db::journal;

void require(bool ok) {
  if (!ok) std::abort();
}

constexpr uint64_t kCheckpoint = 64 << 10;
const char* const kTables[] = {"vv.tab", "vsn.tab", "counter.tab"};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  require(in.good());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The files of an empty database, made once by Database::open itself.
const std::vector<std::string>& empty_tables() {
  static const std::vector<std::string> tables = [] {
    const std::string dir = fuzz::scratch_dir() + "/template";
    require(db::Database::open(dir, vvmd::table_specs(), kCheckpoint).ok());
    std::vector<std::string> out;
    for (const char* t : kTables) out.push_back(read_all(dir + "/" + t));
    return out;
  }();
  return tables;
}

// Sets the CRC of every frame that fits in `bytes`, following the lengths as replay does.
void fix_crcs(std::string& bytes) {
  for (size_t pos = 0; pos + journal::kHeaderSize + journal::kTrailerSize <= bytes.size();) {
    const auto len = journal::get<uint32_t>(bytes, pos + journal::kLengthAt);
    if (len > bytes.size() - pos - journal::kHeaderSize - journal::kTrailerSize) break;
    const size_t end = pos + journal::kHeaderSize + len;
    journal::put_at<uint32_t>(bytes, end,
                              db::crc32c(std::string_view(bytes).substr(pos, end - pos)));
    pos = end + journal::kTrailerSize;
  }
}

std::vector<uint64_t> live_counts(db::Database& d) {
  std::vector<uint64_t> counts;
  for (db::TableId t : {vvmd::kVvTable, vvmd::kVsnTable, vvmd::kCounterTable}) {
    uint64_t scanned = 0;
    require(d.scan(t, [&](uint64_t, const db::Values&) { ++scanned; }).ok());
    require(scanned == d.live_count(t));
    counts.push_back(scanned);
  }
  return counts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::vector<std::string>& tables = empty_tables();
  static const std::string dir = [] {
    std::filesystem::create_directories(fuzz::scratch_dir() + "/db");
    return fuzz::scratch_dir() + "/db";
  }();
  for (size_t t = 0; t < tables.size(); ++t) fuzz::write_file(dir + "/" + kTables[t], tables[t]);
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) fix_crcs(bytes);
  fuzz::write_file(dir + "/journal", bytes);
  std::vector<uint64_t> counts;
  {
    auto d = db::Database::open(dir, vvmd::table_specs(), kCheckpoint);
    if (!d.ok()) {
      require(!d.status().message().empty());
      return 0;
    }
    require((*d)->verify().ok());
    counts = live_counts(**d);
  }
  auto again = db::Database::open(dir, vvmd::table_specs(), kCheckpoint);
  require(again.ok() && (*again)->verify().ok() && live_counts(**again) == counts);
  return 0;
}
