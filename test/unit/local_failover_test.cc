// local_failover_test.cc: the durability bookkeeping of a local pack's failover (local_failover.h).
#include <catch2/catch.hpp>

#include "local_failover.h"

using vvm::plugin::LocalFailover;

TEST_CASE("writes left unflushed here make the next flush elsewhere fail, once") {
  LocalFailover f;
  f.acknowledged(false);
  CHECK_FALSE(f.used_other());
  f.failing_over();
  CHECK(f.used_other());
  CHECK(f.take_lost());
  CHECK_FALSE(f.take_lost());  // said once
  f.failing_over();            // later requests: nothing new was left unflushed here
  CHECK_FALSE(f.take_lost());
}

TEST_CASE("a flush that succeeded here, or FUA, leaves nothing to lose") {
  LocalFailover f;
  f.acknowledged(false);
  f.acknowledged(true);
  const uint64_t ticket = f.flush_starting();
  f.flushed(ticket);
  f.acknowledged(true);
  f.failing_over();
  CHECK_FALSE(f.take_lost());
}

TEST_CASE("a write acknowledged while a flush runs is not covered by it") {
  LocalFailover f;
  f.acknowledged(false);
  const uint64_t ticket = f.flush_starting();
  f.acknowledged(false);  // after the flush started
  f.flushed(ticket);
  f.failing_over();
  CHECK(f.take_lost());
}
