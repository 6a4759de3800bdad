// db_replay_test.cc: journal replay refuses a frame whose image lies past the end of its table
// (found by test/fuzz/journal_fuzz.cc): a table grows one record at a time, so such an image is
// damage, and writing it would have made a sparse table file of up to 2^64 bytes that the open
// then tried to read (the fuzzer's input asked for 64 GiB of memory). An image that appends the
// next record is still replayed.
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "catalog/tables.h"
#include "db/database.h"
#include "db/journal.h"
#include "process.h"

using namespace vvm;
using namespace vvm::db;
using namespace vvm::vvmd;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

// An empty database in `dir`, then a journal of one frame: one VV record image at `slot`.
void journal_one_image(const std::string& dir, uint64_t slot) {
  must(Database::open(dir, table_specs()));
  Vv vv;
  vv.name = "A0000000001";
  vv.vv_class = "A";
  vv.serial = 1;
  const std::string record = must(vv_schema().encode(kLive, vv_values(vv)));
  Journal journal(must(open_posix_file(dir + "/journal", false)));
  must(journal.reset(1 << 20));
  std::vector<std::vector<Journal::Image>> images(3);
  images[0].push_back({slot, record});
  must(journal.append(journal.make_frame(images)));
}

}  // namespace

TEST_CASE("replay refuses an image past the end of its table, and leaves the table alone") {
  auto dir = must(TempDir::create());
  const std::string db = dir.path() + "/db";
  journal_one_image(db, uint64_t{1} << 40);
  const auto size = std::filesystem::file_size(db + "/vv.tab");
  auto opened = Database::open(db, table_specs());
  REQUIRE(!opened.ok());
  CHECK(opened.status().code() == Code::kIoError);
  CHECK(opened.status().message() ==
        db + "/journal: frame 0: holds an image of vv.tab record 1099511627776, past its end (1)");
  CHECK(std::filesystem::file_size(db + "/vv.tab") == size);
}

TEST_CASE("replay appends an image at the end of its table") {
  auto dir = must(TempDir::create());
  const std::string db = dir.path() + "/db";
  journal_one_image(db, 1);  // slot 0 is the table's header
  auto opened = must(Database::open(db, table_specs()));
  CHECK(opened->live_count(kVvTable) == 1);
  Vv vv;
  must(find_vv(*opened, "A0000000001", &vv));
  CHECK(vv.serial == 1);
}
