// stage_queue_test.cc: the stage queue (vvmd/sched/stage_queue.h): requests grouped by VSN and read
// in file order, the order in which tapes are mounted, retries that wait their turn, and which
// tapes have a client's request rather than background work alone.
#include "sched/stage_queue.h"

#include <catch2/catch.hpp>

using namespace vvm::vvmd;
using namespace std::chrono_literals;

namespace {

const Clock::time_point t0 = Clock::time_point() + 1000h;

StageItem item(std::string vv, std::string vsn, uint64_t file, Clock::time_point queued = t0,
               bool waiting = false) {
  StageItem i;
  i.vv = std::move(vv);
  i.vsn = std::move(vsn);
  i.media = "LTO9";
  i.file = file;
  i.queued = i.not_before = queued;
  i.waiting = waiting;
  return i;
}

}  // namespace

TEST_CASE("stages of one tape come out in file order, whatever order they came in") {
  StageQueue q;
  for (uint64_t f : {7, 3, 9, 1, 4}) REQUIRE(q.push(item("A" + std::to_string(f), "L1", f)));
  CHECK(q.files("L1") == 5);
  std::vector<uint64_t> order;
  while (auto i = q.pop("L1", t0)) order.push_back(i->file);
  CHECK(order == std::vector<uint64_t>{1, 3, 4, 7, 9});
  CHECK(q.size() == 0);
  CHECK(q.vsns_by_priority(t0).empty());
}

TEST_CASE("a VV is queued once; asking again while it waits only raises `waiting`") {
  StageQueue q;
  REQUIRE(q.push(item("A1", "L1", 5)));
  CHECK_FALSE(q.find("A1")->waiting);
  CHECK_FALSE(q.push(item("A1", "L2", 2, t0, true)));  // not moved to another tape
  CHECK(q.find("A1")->waiting);
  CHECK(q.find("A1")->vsn == "L1");
  CHECK(q.contains("A1"));
  CHECK(q.find("A9") == nullptr);
}

TEST_CASE("tapes are mounted waited-for first, then oldest request first") {
  StageQueue q;
  REQUIRE(q.push(item("A1", "L1", 1, t0 - 5s)));  // oldest
  REQUIRE(q.push(item("A2", "L2", 1, t0)));
  REQUIRE(q.push(item("A3", "L3", 1, t0 - 1s)));
  REQUIRE(q.push(item("A4", "L2", 9, t0 - 9s)));  // makes L2 the oldest
  CHECK(q.vsns_by_priority(t0) == std::vector<std::string>{"L2", "L1", "L3"});
  REQUIRE(q.push(item("A5", "L3", 2, t0, true)));  // a client waits on L3
  CHECK(q.vsns_by_priority(t0) == std::vector<std::string>{"L3", "L2", "L1"});
  CHECK(q.oldest("L2") == t0 - 9s);
  CHECK_FALSE(q.oldest("L9").has_value());
  CHECK(q.wants_media("LTO9"));
  CHECK_FALSE(q.wants_media("LTO8"));
  CHECK(q.media_of("L1") == "LTO9");
}

TEST_CASE("a request waiting for its retry is skipped until its time") {
  StageQueue q;
  StageItem later = item("A1", "L1", 1);
  later.not_before = t0 + 10s;
  REQUIRE(q.push(later));
  REQUIRE(q.push(item("A2", "L1", 5)));
  CHECK(q.pop("L1", t0)->vv == "A2");  // file 1 must wait: file 5 goes
  CHECK(q.vsns_by_priority(t0).empty());
  CHECK_FALSE(q.pop("L1", t0).has_value());
  CHECK(q.vsns_by_priority(t0 + 10s) == std::vector<std::string>{"L1"});
  CHECK(q.pop("L1", t0 + 10s)->vv == "A1");
  CHECK_FALSE(q.contains("A1"));
}

TEST_CASE("a tape with only background requests is not a client's, until a client asks too") {
  StageQueue q;
  StageItem bg = item("A1", "L1", 1);
  bg.background = true;
  REQUIRE(q.push(bg));
  CHECK_FALSE(q.foreground("L1"));
  CHECK_FALSE(q.wants_media("LTO9"));
  REQUIRE(q.push(item("A2", "L2", 1)));
  CHECK(q.foreground("L2"));
  CHECK_FALSE(q.foreground("L9"));
  // A client asks for the VV the background read is for: the request is the client's now.
  CHECK_FALSE(q.push(item("A1", "L1", 1)));
  CHECK(q.foreground("L1"));
}
