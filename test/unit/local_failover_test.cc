// local_failover_test.cc: the durability bookkeeping of a local pack's failover, and a pool
// node's load beside the other servers' (local_failover.h).
#include <catch2/catch.hpp>

#include "local_failover.h"

using vvm::plugin::LocalFailover;
using vvm::plugin::other_less_loaded;

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

TEST_CASE("a request goes to another server of the pool only when it is less loaded") {
  LocalFailover f;
  CHECK(f.outstanding() == 0);
  {
    const LocalFailover::Serving a = f.serving();
    const LocalFailover::Serving b = f.serving();
    CHECK(f.outstanding() == 2);
    CHECK(other_less_loaded(f.outstanding(), 1));
    CHECK_FALSE(other_less_loaded(f.outstanding(), 2));             // a tie stays here
    CHECK_FALSE(other_less_loaded(f.outstanding(), std::nullopt));  // none healthy
  }
  CHECK(f.outstanding() == 0);
  CHECK_FALSE(other_less_loaded(0, 0));  // idle: served here
}

TEST_CASE("requests sent to the pool by load make flushes cover it, and lose nothing") {
  LocalFailover f;
  f.acknowledged(false);
  CHECK_FALSE(f.used_other());
  f.sent_by_load();
  CHECK(f.used_other());       // a flush here must flush the others too
  CHECK_FALSE(f.take_lost());  // the path here works: what it acknowledged is on its disk
}
