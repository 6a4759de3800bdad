// st_tape_test.cc: what can be tested of StTape without a drive: opening something that is not a
// tape drive, or nothing at all, is refused with a message that says so. The rest needs a drive
// (st_tape.h says how to try it on one).
#include <catch2/catch.hpp>

#include "process.h"
#include "tape/st_tape.h"

using namespace vvm;
using namespace vvm::tape;
using vvm::test::must;
using vvm::test::TempDir;

TEST_CASE("StTape refuses what is not a tape drive") {
  auto dir = must(TempDir::create("vvm-st"));
  const std::string file = dir.file("not-a-tape.tap");
  must(vvm::test::write_file(file, "just a file"));

  auto r = StTape::open(file);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::StartsWith(file + ": not a tape drive (MTIOCGET: "));

  auto null = StTape::open("/dev/null");
  REQUIRE_FALSE(null.ok());
  CHECK_THAT(null.status().message(), Catch::StartsWith("/dev/null: not a tape drive"));

  auto missing = StTape::open(dir.file("nst9"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK_THAT(missing.status().message(), Catch::Contains("nst9: No such file or directory"));
}
