// vv_names_test.cc: VV names and serials, permission bits and list filters
// (vvmd/catalog/vv_names.h).
#include <catch2/catch.hpp>

#include "catalog/vv_names.h"

using namespace vvm;
using namespace vvm::vvmd;

TEST_CASE("a VV name is the class letter and a 10-digit serial") {
  CHECK(format_vv_name('A', 42) == "A0000000042");
  CHECK(format_vv_name('7', kMaxSerial) == "79999999999");
  auto n = parse_vv_name("B0000000123");
  REQUIRE(n.ok());
  CHECK(n->vv_class == 'B');
  CHECK(n->serial == 123);
  for (const char* bad : {"", "A42", "a0000000042", "A000000004x", "A00000000420", "-0000000001"}) {
    INFO(bad);
    auto r = parse_vv_name(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains("is not a VV name"));
  }
}

TEST_CASE("serials count up per class from the highest one seen") {
  SerialAllocator s;
  CHECK(s.next('A').value() == 1);
  CHECK(s.next('A').value() == 2);
  s.observe('B', 41);
  s.observe('B', 7);  // a lower one seen later changes nothing
  CHECK(s.next('B').value() == 42);
  CHECK(s.next('A').value() == 3);  // classes count apart
  CHECK(s.highest('B') == 42);
  CHECK(s.highest('C') == 0);
  s.observe('C', kMaxSerial - 1);
  CHECK(s.next('C').value() == kMaxSerial);
  auto full = s.next('C');
  REQUIRE_FALSE(full.ok());
  CHECK(full.status().code() == Code::kNoSpace);
  CHECK_THAT(full.status().message(), Catch::Contains("class C has used every serial"));
}

TEST_CASE("perms are octal mode bits") {
  CHECK(parse_perms("").value() == 0640u);
  CHECK(parse_perms("0600").value() == 0600u);
  CHECK(parse_perms("755").value() == 0755u);
  CHECK(parse_perms("7777").value() == 07777u);
  for (const char* bad : {"0800", "rw-r-----", "17777", "000000", "6 4 0"}) {
    INFO(bad);
    CHECK(parse_perms(bad).status().code() == Code::kInvalidArgument);
  }
  CHECK(format_perms(0640) == "0640");
  CHECK(format_perms(07) == "0007");
}

TEST_CASE("a list filter passes the VVs that match every field it sets") {
  Vv r;
  r.name = "A0000000001";
  r.vv_class = "A";
  r.client_id = 7;
  r.state = VvState::kFinished;
  CHECK(VvFilter{}.matches(r));
  CHECK(VvFilter{VvState::kFinished, "", {}}.matches(r));
  CHECK_FALSE(VvFilter{VvState::kHot, "", {}}.matches(r));
  CHECK(VvFilter{VvState::kAny, "A", {}}.matches(r));
  CHECK_FALSE(VvFilter{VvState::kAny, "B", {}}.matches(r));
  CHECK(VvFilter{VvState::kAny, "", 7}.matches(r));
  CHECK_FALSE(VvFilter{VvState::kAny, "", 0}.matches(r));  // id 0 is a filter too
  CHECK(VvFilter{VvState::kFinished, "A", 7}.matches(r));
  CHECK_FALSE(VvFilter{VvState::kFinished, "A", 8}.matches(r));
}
