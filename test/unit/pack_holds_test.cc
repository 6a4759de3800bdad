// pack_holds_test.cc: the per-process hold registry: one hold per identity shared by its
// connections and ended by the last, the rules between kinds and identities, refusals that name
// the pack, the holder and its mode, the holds records, and a second process (a forked child
// with its own registry) that is refused through the OFD locks and named from its records, and a
// rejoin of the cluster, which forgets the holds from before.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "pack_holds.h"
#include "process.h"

using namespace vvm;
using vvm::plugin::HoldRegistry;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

constexpr uint64_t kMiB = 1024 * 1024;

struct Fixture {
  TempDir dir = must(TempDir::create());
  std::string holds = dir.file("holds");
  PackEntry c, d;
  Fixture() {
    std::string backing = dir.file("disk.img");
    must(vvm::test::write_file(backing, ""));
    std::filesystem::resize_file(backing, 4 * kMiB);
    c = PackEntry{"c", backing, 0, kMiB, PackMode::kExclusive, 0, 0, 0666, 1};
    d = PackEntry{"d", backing, kMiB, kMiB, PackMode::kShared, 0, 0, 0666, 2};
  }
  size_t record_files() const {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(holds, ec)) n += e.is_regular_file();
    return n;
  }
};

}  // namespace

TEST_CASE("an exclusive hold: one identity, many connections, ended by the last") {
  Fixture f;
  HoldRegistry reg(f.holds);
  REQUIRE(reg.acquire(f.c, HoldKind::kExclusive, "uid 0").ok());
  REQUIRE(reg.acquire(f.c, HoldKind::kExclusive, "uid 0").ok());  // multi-conn
  REQUIRE(reg.holders().size() == 1);
  CHECK(reg.holders()[0].connections == 2);
  CHECK(reg.holders()[0].kind == HoldKind::kExclusive);
  CHECK(f.record_files() == 1);

  Status refused = reg.acquire(f.c, HoldKind::kExclusive, "uid 1000");
  CHECK(refused.code() == Code::kBusy);
  CHECK_THAT(refused.message(), Catch::StartsWith("pack 'c' is held exclusive by uid 0 since 20") &&
                                    Catch::EndsWith(": uid 1000 cannot have it exclusive"));
  // Reading is no exception, and the pack's neighbour is not affected.
  CHECK(reg.acquire(f.c, HoldKind::kRead, "uid 1000").code() == Code::kBusy);
  REQUIRE(reg.acquire(f.d, HoldKind::kShared, "uid 1000").ok());
  reg.release(f.d, HoldKind::kShared, "uid 1000");

  reg.release(f.c, HoldKind::kExclusive, "uid 0");
  CHECK(reg.acquire(f.c, HoldKind::kExclusive, "uid 1000").code() == Code::kBusy);  // 1 left
  reg.release(f.c, HoldKind::kExclusive, "uid 0");
  CHECK(reg.holders().empty());
  CHECK(f.record_files() == 0);
  REQUIRE(reg.acquire(f.c, HoldKind::kExclusive, "uid 1000").ok());
  reg.release(f.c, HoldKind::kExclusive, "uid 1000");
  reg.release(f.c, HoldKind::kExclusive, "uid 1000");  // one too many: ignored
  CHECK(reg.holders().empty());
}

TEST_CASE("the exclusive holder may also read its pack through @ro; nobody else may") {
  Fixture f;
  HoldRegistry reg(f.holds);
  REQUIRE(reg.acquire(f.c, HoldKind::kExclusive, "host 10.0.0.5").ok());
  REQUIRE(reg.acquire(f.c, HoldKind::kRead, "host 10.0.0.5").ok());
  CHECK(reg.acquire(f.c, HoldKind::kRead, "host 10.0.0.6").code() == Code::kBusy);
  CHECK(must(probe_locks(f.c.backing, f.c.offset)) == LockSet{true, true, false});
  reg.release(f.c, HoldKind::kExclusive, "host 10.0.0.5");
  // What is left is a read hold, which other readers share.
  CHECK(must(probe_locks(f.c.backing, f.c.offset)) == LockSet{false, true, false});
  REQUIRE(reg.acquire(f.c, HoldKind::kRead, "host 10.0.0.6").ok());
  CHECK(reg.holders().size() == 2);
}

TEST_CASE("readers share, shared writers share, and the two exclude each other") {
  Fixture f;
  HoldRegistry reg(f.holds);
  REQUIRE(reg.acquire(f.d, HoldKind::kRead, "uid 1").ok());
  REQUIRE(reg.acquire(f.d, HoldKind::kRead, "uid 2").ok());
  Status s = reg.acquire(f.d, HoldKind::kShared, "uid 3");
  CHECK(s.code() == Code::kBusy);
  CHECK_THAT(s.message(), Catch::Contains("pack 'd' is held read by uid 1") &&
                              Catch::Contains("uid 3 cannot have it shared"));
  reg.release(f.d, HoldKind::kRead, "uid 1");
  reg.release(f.d, HoldKind::kRead, "uid 2");
  REQUIRE(reg.acquire(f.d, HoldKind::kShared, "uid 3").ok());
  REQUIRE(reg.acquire(f.d, HoldKind::kShared, "uid 4").ok());
  CHECK(reg.acquire(f.d, HoldKind::kRead, "uid 1").code() == Code::kBusy);
  // The records name every holder of the pack, one line each.
  std::ifstream in(f.holds + "/d." + std::to_string(::getpid()) + ".hold");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Catch::Contains("kind=shared\tholder=uid 3") &&
                       Catch::Contains("kind=shared\tholder=uid 4"));
}

TEST_CASE("another process's hold refuses this one through the locks, and is named") {
  Fixture f;
  int ready[2], done[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(done) == 0);
  pid_t child = ::fork();
  REQUIRE(child != -1);
  if (child == 0) {
    char c = 0;
    {
      HoldRegistry reg(f.holds);
      c = reg.acquire(f.c, HoldKind::kExclusive, "uid 42").ok() ? 'y' : 'n';
      (void)!::write(ready[1], &c, 1);
      (void)!::read(done[0], &c, 1);  // hold until the parent has looked
    }
    _exit(0);
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  REQUIRE(c == 'y');
  {
    HoldRegistry reg(f.holds);
    Status s = reg.acquire(f.c, HoldKind::kRead, "uid 7");
    CHECK(s.code() == Code::kBusy);
    CHECK_THAT(s.message(), Catch::StartsWith("pack 'c' is held exclusive by uid 42 since ") &&
                                Catch::Contains("(nbdkit pid " + std::to_string(child) + " on ") &&
                                Catch::EndsWith("uid 7 cannot have it read"));
    CHECK(reg.holders().empty());  // a refusal keeps nothing
    // The other process's neighbour pack is free.
    CHECK(reg.acquire(f.d, HoldKind::kShared, "uid 7").ok());
    REQUIRE(::write(done[1], "x", 1) == 1);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    // Its hold ended with it: this process gets the pack now.
    CHECK(reg.acquire(f.c, HoldKind::kExclusive, "uid 7").ok());
  }
  for (int fd : {ready[0], ready[1], done[0], done[1]}) ::close(fd);
  CHECK(f.record_files() == 0);  // both registries removed their records
}

TEST_CASE("connections of one identity come and go from many threads at once") {
  Fixture f;
  HoldRegistry reg(f.holds);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (!reg.acquire(f.c, HoldKind::kExclusive, "uid 5").ok()) ++failures;
        reg.release(f.c, HoldKind::kExclusive, "uid 5");
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(reg.holders().empty());
  CHECK(f.record_files() == 0);
  CHECK(must(probe_locks(f.c.backing, f.c.offset)).empty());
}

TEST_CASE("a rejoin forgets the holds from before; their connections' releases are ignored") {
  Fixture f;
  HoldRegistry reg(f.holds);
  uint64_t old_generation = 99;
  REQUIRE(reg.acquire(f.c, HoldKind::kExclusive, "uid 0", &old_generation).ok());
  REQUIRE(reg.acquire(f.d, HoldKind::kShared, "uid 1").ok());
  reg.rejoined(0x1234);  // no cluster set: only the node's own count and locks
  CHECK(reg.holders().empty());
  CHECK(f.record_files() == 0);
  CHECK(must(probe_locks(f.c.backing, f.c.offset)).empty());
  // The same client, connecting again, is a new holder of the new generation.
  uint64_t generation = old_generation;
  REQUIRE(reg.acquire(f.c, HoldKind::kExclusive, "uid 0", &generation).ok());
  CHECK(generation == old_generation + 1);
  // The old connection's release, at its close, leaves the new hold alone.
  reg.release(f.c, HoldKind::kExclusive, "uid 0", old_generation);
  REQUIRE(reg.holders().size() == 1);
  CHECK(reg.holders()[0].connections == 1);
  CHECK(reg.acquire(f.c, HoldKind::kExclusive, "uid 1000").code() == Code::kBusy);
  reg.release(f.c, HoldKind::kExclusive, "uid 0", generation);
  CHECK(reg.holders().empty());
  CHECK(reg.acquire(f.c, HoldKind::kExclusive, "uid 1000").ok());
}
