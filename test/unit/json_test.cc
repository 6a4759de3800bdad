// json_test.cc: the JSON writer behind vvctl's --json (client/common/json.h).
#include <catch2/catch.hpp>

#include "common/json.h"

using namespace vvm;

TEST_CASE("the JSON writer places commas and escapes strings") {
  JsonWriter j;
  j.begin_array();
  j.begin_object().key("name").value("A0000000001").key("size").value(uint64_t{1} << 40);
  j.key("ok").value(true).key("copies").begin_array().end_array().end_object();
  j.begin_object().key("q\"uote").value("back\\slash\nnew\x01").end_object();
  j.end_array();
  CHECK(j.str() == R"([{"name":"A0000000001","size":1099511627776,"ok":true,"copies":[]},)"
                   R"({"q\"uote":"back\\slash\nnew\u0001"}])");
  CHECK(json_quote("ünïcode") == "\"ünïcode\"");
}
