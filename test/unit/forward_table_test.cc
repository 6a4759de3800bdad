// forward_table_test.cc: the forward= and forward-pool= parameters of the plugin, parsed into the
// table of forwarded packs; every mistake is named.
#include <catch2/catch.hpp>

#include "forward/forward_table.h"

namespace vvm::plugin::forward {
namespace {

TEST_CASE("forward=NAME=URI,URI lists the servers in order") {
  Result<ForwardEntry> e = parse_forward(
      "home0=nbd://10.0.0.1:10809/pack/home0,nbd+unix:///pack/home0?socket=/s", false);
  REQUIRE(e.ok());
  CHECK(e->pack == "home0");
  CHECK_FALSE(e->pool);
  REQUIRE(e->servers.size() == 2);
  CHECK(e->servers[0].uri == "nbd://10.0.0.1:10809/pack/home0");
  CHECK(e->servers[1].uri == "nbd+unix:///pack/home0?socket=/s");
  CHECK(parse_forward("a=nbd://h/pack/a", true)->pool);
}

TEST_CASE("forward= mistakes are named") {
  auto message = [](std::string_view v, bool pool = false) {
    Result<ForwardEntry> e = parse_forward(v, pool);
    REQUIRE_FALSE(e.ok());
    return e.status().message();
  };
  CHECK(message("nbd://h/pack/a") ==
        "forward=nbd://h/pack/a: give NAME=URI[,URI...] (the pack, "
        "then its servers)");
  CHECK(message("=nbd://h/pack/a").find("give NAME=URI") != std::string::npos);
  CHECK(message("a=") == "forward=a=: no server given");
  CHECK(message("a=http://h/x", true) ==
        "forward-pool=a=http://h/x: 'http://h/x' is not an NBD URI (nbd://HOST:PORT/EXPORT)");
  CHECK(message("a=nbd://h/pack/a,,nbd://g/pack/a").find("'' is not an NBD URI") !=
        std::string::npos);
}

TEST_CASE("a pack forwarded twice is refused") {
  ForwardTable t;
  REQUIRE(t.add(*parse_forward("a=nbd://h/pack/a", false)).ok());
  Status twice = t.add(*parse_forward("a=nbd://g/pack/a", true));
  CHECK(twice.message() == "forward: pack 'a' is given twice");
  REQUIRE(t.find("a").has_value());
  CHECK(t.find("a")->servers[0].uri == "nbd://h/pack/a");
  CHECK_FALSE(t.pool("a"));  // the first, not the pool refused
  CHECK_FALSE(t.find("b").has_value());
  REQUIRE(t.add(*parse_forward("p=nbd://h/pack/p,nbd://g/pack/p", true)).ok());
  CHECK(t.pool("p"));
  CHECK_FALSE(t.pool("zz"));
}

TEST_CASE("a forwarder whose servers are all unreachable is not opened, and says why") {
  ForwardTable t;
  REQUIRE(t.add(*parse_forward("a=nbd+unix:///pack/a?socket=/nonexistent/sock", false)).ok());
  auto f = t.forwarder("a", nullptr);
  REQUIRE_FALSE(f.ok());
  INFO(f.status().message());
  CHECK(f.status().message().find("pack/a: no server can be reached: "
                                  "nbd+unix:///pack/a?socket=/nonexistent/sock: connect:") == 0);
  CHECK(t.opened("a") == nullptr);  // never opened: opened() does not try
  CHECK(t.opened("zz") == nullptr);
}

}  // namespace
}  // namespace vvm::plugin::forward
