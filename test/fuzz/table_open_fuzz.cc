// table_open_fuzz.cc: libFuzzer target for opening a table: any file contents (behind a valid
// header, most of the time, so that the records are what gets exercised) must open or be
// refused with a message, never crash; a table that opens must scan to the same records.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "catalog/records.h"
#include "db/file.h"
#include "db/table.h"

namespace {

// A File in memory.
class MemFile : public vvm::db::File {
 public:
  explicit MemFile(std::string bytes) : bytes_(std::move(bytes)) {}
  vvm::Status read_at(uint64_t offset, char* buf, size_t n) override {
    if (offset + n > bytes_.size()) return vvm::Status::IoError("short read");
    bytes_.copy(buf, n, offset);
    return vvm::Status::Ok();
  }
  vvm::Status write_at(uint64_t offset, std::string_view data) override {
    if (bytes_.size() < offset + data.size()) bytes_.resize(offset + data.size(), '\0');
    bytes_.replace(offset, data.size(), data);
    return vvm::Status::Ok();
  }
  vvm::Status sync() override { return vvm::Status::Ok(); }
  vvm::Result<uint64_t> size() override { return uint64_t{bytes_.size()}; }
  vvm::Status truncate(uint64_t n) override {
    bytes_.resize(n);
    return vvm::Status::Ok();
  }
  const std::string& path() const override { return path_; }

 private:
  std::string bytes_;
  std::string path_ = "fuzz.tab";
};

// The header record of an empty VSN table, made once.
const std::string& valid_header() {
  static const std::string header = [] {
    auto mem = std::make_unique<MemFile>("");
    MemFile* raw = mem.get();
    auto table = vvm::db::Table::create_file(std::move(mem), vvm::vvmd::vsn_schema());
    if (!table.ok()) std::abort();
    std::string h(vvm::vvmd::vsn_schema().record_size(), '\0');
    if (!raw->read_at(0, h.data(), h.size()).ok()) std::abort();
    return h;
  }();
  return header;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vvm::db;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size > 0 && data[0] % 8 != 0) bytes = valid_header() + bytes.substr(1);
  uint64_t seen = 0;
  auto table = Table::open_file(std::make_unique<MemFile>(bytes), vvm::vvmd::vsn_schema(),
                                [&](uint64_t, const Values&) { ++seen; });
  if (!table.ok()) {
    if (table.status().message().empty()) std::abort();  // a refusal always says why
    return 0;
  }
  uint64_t scanned = 0;
  if (!table->scan([&](uint64_t, const Values&) { ++scanned; }).ok()) std::abort();
  if (scanned != seen || seen != table->live_count()) std::abort();
  return 0;
}
