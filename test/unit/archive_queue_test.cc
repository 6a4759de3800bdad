// archive_queue_test.cc: the archive queues and the batch rule (vvmd/sched/archive_queue.h), and
// the library view's drive choice and mount count (vvmd/sched/library_view.h).
#include "sched/archive_queue.h"

#include <catch2/catch.hpp>

#include "common/config.h"
#include "sched/library_view.h"
#include "sched/scheduler.h"

using namespace vvm;
using namespace vvm::vvmd;
using namespace std::chrono_literals;

namespace {

const Clock::time_point t0 = Clock::time_point() + 1000h;

ArchiveItem item(std::string vv, size_t copy, uint64_t bytes, Clock::time_point queued = t0) {
  return ArchiveItem{std::move(vv), copy, bytes, queued, queued, 0};
}

}  // namespace

TEST_CASE("a queue is due at its byte or file threshold, or when its oldest copy is old") {
  ArchiveQueue q(BatchPolicy{100, 3, 60s});
  const QueueKey a{'A', "LTO9"}, b{'A', "LTO8"};
  CHECK_FALSE(q.due(a, t0));
  CHECK_FALSE(q.ready(a, t0));

  REQUIRE(q.push(a, item("A1", 0, 10)));
  REQUIRE(q.push(a, item("A2", 0, 10)));
  CHECK(q.ready(a, t0));
  CHECK_FALSE(q.due(a, t0));  // 2 files, 20 bytes, just queued
  CHECK_FALSE(q.due(a, t0 + 59s));
  CHECK(q.due(a, t0 + 60s));  // the oldest waited max_wait
  REQUIRE(q.push(a, item("A3", 0, 10)));
  CHECK(q.due(a, t0));        // 3 files
  CHECK_FALSE(q.due(b, t0));  // queues are separate

  REQUIRE(q.push(b, item("A1", 1, 100)));
  CHECK(q.due(b, t0));  // 100 bytes
  CHECK(q.size() == 4);
  CHECK(q.files(a) == 3);
}

TEST_CASE("a copy is queued once, and comes out in order") {
  ArchiveQueue q(BatchPolicy{});
  const QueueKey a{'A', "LTO9"};
  REQUIRE(q.push(a, item("A1", 0, 1)));
  CHECK_FALSE(q.push(a, item("A1", 0, 1)));  // recovery offering it again
  CHECK_FALSE(q.push_front(a, item("A1", 0, 1)));
  REQUIRE(q.push(a, item("A1", 1, 1)));  // the other copy is another item
  REQUIRE(q.push(a, item("A2", 0, 1)));
  REQUIRE(q.push_front(a, item("A0", 0, 1)));  // a VSN filled up under it
  std::vector<std::string> order;
  while (auto i = q.pop(a, t0)) order.push_back(i->vv + "/" + std::to_string(i->copy));
  CHECK(order == std::vector<std::string>{"A0/0", "A1/0", "A1/1", "A2/0"});
  CHECK(q.size() == 0);
  CHECK(q.keys_oldest_first().empty());
  CHECK(q.push(a, item("A1", 0, 1)));  // gone from the queue: may come back
}

TEST_CASE("a copy waiting for a retry is skipped, and does not count for the batch rule") {
  ArchiveQueue q(BatchPolicy{100, 2, 60s});
  const QueueKey a{'A', "LTO9"};
  ArchiveItem later = item("A1", 0, 500, t0 - 1h);
  later.not_before = t0 + 10s;
  REQUIRE(q.push(a, later));
  CHECK_FALSE(q.ready(a, t0));
  CHECK_FALSE(q.due(a, t0));  // old and big, but not before t0 + 10 s
  CHECK_FALSE(q.pop(a, t0).has_value());
  REQUIRE(q.push(a, item("A2", 0, 1)));
  auto first = q.pop(a, t0);
  REQUIRE(first.has_value());
  CHECK(first->vv == "A2");
  CHECK(q.due(a, t0 + 10s));
  CHECK(q.pop(a, t0 + 10s)->vv == "A1");
}

TEST_CASE("the queue with the oldest copy comes first") {
  ArchiveQueue q(BatchPolicy{});
  const QueueKey a{'A', "LTO9"}, b{'B', "LTO9"}, c{'A', "LTO8"};
  REQUIRE(q.push(a, item("A1", 0, 1, t0)));
  REQUIRE(q.push(b, item("B1", 0, 1, t0 - 5s)));
  REQUIRE(q.push(c, item("A1", 1, 1, t0 + 5s)));
  REQUIRE(q.push(a, item("A2", 0, 1, t0 - 9s)));  // a requeued old copy makes A/LTO9 oldest
  CHECK(q.keys_oldest_first() == std::vector<QueueKey>{a, b, c});
}

TEST_CASE("the library view prefers empty drives and counts mounts") {
  auto config = parse_config(
      "[vvmd]\nlisten = unix:/tmp/x.sock\n[media LTO9]\ncapacity = 1T\n[media LTO8]\n"
      "capacity = 1T\n[mover m1]\nlisten = unix:/tmp/m1.sock\n[mover m2]\n"
      "listen = unix:/tmp/m2.sock\n[drive d0]\nmover = m1\nmedia = LTO9\n[drive d1]\n"
      "mover = m2\nmedia = LTO9\n[drive d2]\nmover = m1\nmedia = LTO8\n",
      "test.conf", "/tmp");
  REQUIRE(config.ok());
  LibraryView view(*config);
  REQUIRE(view.drives().size() == 3);
  DriveState* d0 = view.find("d0");
  DriveState* d1 = view.find("d1");
  REQUIRE(d0 != nullptr);
  REQUIRE(d1 != nullptr);
  CHECK(d1->mover_endpoint.to_string() == "unix:/tmp/m2.sock");
  CHECK(view.find("d9") == nullptr);

  CHECK(view.free_drives("LTO9", t0).size() == 2);
  CHECK(view.load(*d0, "L00001"));        // a mount
  CHECK_FALSE(view.load(*d0, "L00001"));  // already there: no mount
  CHECK(view.holding("L00001") == d0);
  auto free = view.free_drives("LTO9", t0);
  REQUIRE(free.size() == 2);
  CHECK(free.front() == d1);  // empty drives first
  d1->busy = true;
  CHECK(view.free_drives("LTO9", t0) == std::vector<DriveState*>{d0});
  d0->unusable_until = t0 + 10s;
  CHECK(view.free_drives("LTO9", t0).empty());
  CHECK(view.free_drives("LTO9", t0 + 10s).size() == 1);

  CHECK(view.load(*d1, "L00001"));  // moved to another drive: d0 is empty again
  CHECK(d0->vsn.empty());
  CHECK(view.holding("L00001") == d1);
  view.unload(*d1);
  CHECK(view.holding("L00001") == nullptr);
  CHECK(view.load(*d1, "L00001"));
  CHECK(view.mounts() == 3);
  CHECK(d0->mounts == 1);
  CHECK(d1->mounts == 2);
}

TEST_CASE("a failed copy's pause grows with each attempt, to at most five minutes") {
  CHECK(Scheduler::retry_delay(0) == 0s);
  CHECK(Scheduler::retry_delay(1) == 2s);
  CHECK(Scheduler::retry_delay(2) == 4s);
  CHECK(Scheduler::retry_delay(5) == 32s);
  CHECK(Scheduler::retry_delay(9) == 300s);
  CHECK(Scheduler::retry_delay(1000) == 300s);
}
