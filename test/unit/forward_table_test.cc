// forward_table_test.cc: the forward= and forward-pool= parameters of the plugin, parsed into the
// table of forwarded packs; every mistake is named. And the table's look-ups against a real
// nbdkit: an open forwarder is found without waiting for another pack's change.
#include <fmt/core.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <thread>

#include "forward/forward_table.h"
#include "process.h"

namespace vvm::plugin::forward {
namespace {

using namespace std::chrono_literals;
using test::must;

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

// A Unix socket that listens and never accepts: the kernel queues the connection and the NBD
// handshake never comes, as with a paused node, so a connect to it lasts its whole timeout.
class SilentServer {
 public:
  explicit SilentServer(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof(a.sun_path));
    std::memcpy(a.sun_path, path.c_str(), path.size());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
  }
  ~SilentServer() { ::close(fd_); }

 private:
  int fd_;
};

// A local flush looks up its pack's open forwarder (open_forwarder) while its request counts in
// the reconfiguration gate's drain: a change of another pack's forwarder that waits (here a
// reconfiguration dialling a server that never answers, up to the forwarder's 5 s connect
// timeout) must not hold it, or a barrier on the flushed pack would wait as long.
TEST_CASE("an open forwarder is found while another pack's forwarder is reconfigured") {
  auto dir = must(test::TempDir::create("vvm-fwdtable"));
  const std::string sock = dir.file("memory.sock");
  auto nbdkit = must(test::Process::start(
      {"nbdkit", "-f", "-U", sock, "-P", dir.file("pid"), "--exit-with-parent", "memory", "1M"},
      dir.path()));
  must(test::wait_for_path(dir.file("pid"), 10s));
  SilentServer silent(dir.file("silent.sock"));
  auto uri = [&](const std::string& s, const char* pack) {
    return fmt::format("nbd+unix:///pack/{}?socket={}", pack, s);
  };
  auto entry = [&](const char* pack, std::vector<std::string> servers) {
    ForwardEntry e;
    e.pack = pack;
    for (const std::string& s : servers) {
      e.servers.push_back({s});
      e.down.emplace_back();  // cluster mode: each server known up
    }
    return e;
  };
  ForwardTable t;
  t.replace({entry("a", {uri(sock, "a")}), entry("b", {uri(sock, "b")})}, nullptr);
  auto a = t.forwarder("a", nullptr);
  REQUIRE(a.ok());
  REQUIRE(t.forwarder("b", nullptr).ok());

  // b's new list adds the silent server: its reconfiguration dials it for the connect timeout.
  std::atomic<bool> replaced{false};
  std::thread change([&] {
    t.replace({entry("a", {uri(sock, "a")}),
               entry("b", {uri(sock, "b"), uri(dir.file("silent.sock"), "b")})},
              nullptr);
    replaced = true;
  });
  // opened() gives up at once while the table is being changed: the change is under way.
  must(test::wait_until([&] { return t.opened("a") == nullptr; }, 2s, "the change to start"));
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<Forwarder> found = t.open_forwarder("a");
  const auto waited = std::chrono::steady_clock::now() - t0;
  const bool during = !replaced.load();
  auto again = t.forwarder("a", nullptr);
  const auto waited_again = std::chrono::steady_clock::now() - t0;
  change.join();
  CHECK(during);  // the look-ups were made while b's change held the table
  CHECK(found == *a);
  CHECK(waited < 1s);
  REQUIRE(again.ok());
  CHECK(*again == *a);
  CHECK(waited_again < 1s);
  CHECK(t.open_forwarder("zz") == nullptr);
  // A pack no longer listed is gone from the look-ups too.
  t.replace({entry("b", {uri(sock, "b")})}, nullptr);
  CHECK(t.open_forwarder("a") == nullptr);
  CHECK(t.open_forwarder("b") != nullptr);
  t.close_all();
  CHECK(t.open_forwarder("b") == nullptr);
}

}  // namespace
}  // namespace vvm::plugin::forward
