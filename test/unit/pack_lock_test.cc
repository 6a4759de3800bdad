// pack_lock_test.cc: the OFD lock rules between processes (two PackLocks on one file are two open
// file descriptions, so they conflict exactly as two processes would), the probe that vvctl uses,
// and the holds folder's records, including stale and malformed ones.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "common/config.h"
#include "pack/pack_lock.h"
#include "process.h"

using namespace vvm;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

std::string make_backing(const TempDir& dir) {
  std::string path = dir.file("disk.img");
  std::ofstream(path) << std::string(8192, 'x');
  return path;
}

LockSet set_of(HoldKind k) {
  LockSet s;
  s.exclusive = k == HoldKind::kExclusive;
  s.read = k == HoldKind::kRead;
  s.shared = k == HoldKind::kShared;
  return s;
}

}  // namespace

TEST_CASE("hold kinds between two processes: reads share, shared writers share, nothing else") {
  auto dir = must(TempDir::create());
  std::string backing = make_backing(dir);
  const HoldKind kinds[] = {HoldKind::kRead, HoldKind::kShared, HoldKind::kExclusive};
  for (HoldKind first : kinds) {
    for (HoldKind second : kinds) {
      INFO(hold_kind_name(first) << " then " << hold_kind_name(second));
      auto a = must(PackLock::open(backing, 4096));
      auto b = must(PackLock::open(backing, 4096));
      REQUIRE(a.change(set_of(first)).ok());
      Status s = b.change(set_of(second));
      bool want = first == second && first != HoldKind::kExclusive;
      CHECK(s.ok() == want);
      if (!want) {
        CHECK(s.code() == Code::kBusy);
        CHECK(b.current().empty());  // a refusal leaves nothing behind
        // Once the first lets go, the second gets it.
        REQUIRE(a.change(LockSet{}).ok());
        CHECK(b.change(set_of(second)).ok());
      }
    }
  }
}

TEST_CASE("locks on one pack do not touch a neighbouring pack in the same backing") {
  auto dir = must(TempDir::create());
  std::string backing = make_backing(dir);
  auto a = must(PackLock::open(backing, 0));
  auto b = must(PackLock::open(backing, 4096));
  REQUIRE(a.change(set_of(HoldKind::kExclusive)).ok());
  CHECK(b.change(set_of(HoldKind::kExclusive)).ok());
}

TEST_CASE("probe_locks sees what others hold, and nothing once they are gone") {
  auto dir = must(TempDir::create());
  std::string backing = make_backing(dir);
  CHECK(must(probe_locks(backing, 0)).empty());
  {
    auto a = must(PackLock::open(backing, 0));
    REQUIRE(a.change(set_of(HoldKind::kExclusive)).ok());
    CHECK(must(probe_locks(backing, 0)).exclusive);
    REQUIRE(a.change(set_of(HoldKind::kRead)).ok());  // a downgrade is always possible
    LockSet seen = must(probe_locks(backing, 0));
    CHECK((seen.read && !seen.exclusive && !seen.shared));
  }
  CHECK(must(probe_locks(backing, 0)).empty());  // closing the descriptor dropped them
  // A process that dies leaves no lock behind either.
  pid_t child = ::fork();
  if (child == 0) {
    auto a = PackLock::open(backing, 0);
    _exit(a.ok() && a->change(set_of(HoldKind::kShared)).ok() ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WEXITSTATUS(status) == 0);
  CHECK(must(probe_locks(backing, 0)).empty());
}

TEST_CASE("holds records: written atomically, read back, stale and malformed ones skipped") {
  auto dir = must(TempDir::create());
  HoldsDir holds(dir.file("holds"));  // created on first write
  HoldRecord r{"c",        "/srv/disk.img", 4096, HoldKind::kExclusive, "uid 0", utc_now(),
               ::getpid(), "host1",         2};
  REQUIRE(holds.write("c", {r}).ok());
  auto all = holds.read_all();
  REQUIRE(all.size() == 1);
  CHECK(all[0].pack == "c");
  CHECK(all[0].backing == "/srv/disk.img");
  CHECK(all[0].offset == 4096);
  CHECK(all[0].kind == HoldKind::kExclusive);
  CHECK(all[0].holder == "uid 0");
  CHECK(all[0].connections == 2);
  CHECK_THAT(describe_hold(all[0]),
             Catch::StartsWith("exclusive by uid 0 since 20") &&
                 Catch::Contains("(nbdkit pid " + std::to_string(::getpid()) + " on host1)"));

  // A dead process's record, and a malformed file, are ignored.
  pid_t child = ::fork();
  if (child == 0) _exit(0);
  ::waitpid(child, nullptr, 0);
  std::ofstream(dir.file("holds/c." + std::to_string(child) + ".hold"))
      << "pack=c\tbacking=/srv/disk.img\toffset=4096\tkind=exclusive\tholder=uid 5\tsince=x\tpid="
      << child << "\thost=" << local_host_name() << "\tconnections=1\n";
  std::ofstream(dir.file("holds/junk.1.hold")) << "not a record\n";
  CHECK(holds.read_all().size() == 1);

  // An empty list removes this process's file.
  REQUIRE(holds.write("c", {}).ok());
  CHECK(holds.read_all().empty());
  CHECK_FALSE(std::filesystem::exists(dir.file("holds/c." + std::to_string(::getpid()) + ".hold")));
}

TEST_CASE("holders_now: a record counts only while the lock of its kind is held") {
  auto dir = must(TempDir::create());
  std::string backing = make_backing(dir);
  HoldsDir holds(dir.file("holds"));
  auto record = [&](std::string pack, uint64_t offset, HoldKind kind, std::string holder) {
    return HoldRecord{std::move(pack), backing,    offset,     kind, std::move(holder),
                      utc_now(),       ::getpid(), "somehost", 1};
  };
  // Records of a live process (this one) for two packs in one backing, but no lock yet: stale.
  REQUIRE(holds.write("c", {record("c", 4096, HoldKind::kExclusive, "uid 7")}).ok());
  REQUIRE(holds.write("d", {record("d", 0, HoldKind::kRead, "host 10.0.0.5")}).ok());
  CHECK(holds.read_all().size() == 2);
  CHECK(holders_now(holds, backing, 4096).empty());
  CHECK(holders_now(holds, backing, 0).empty());

  auto c = must(PackLock::open(backing, 4096));
  REQUIRE(c.change(set_of(HoldKind::kExclusive)).ok());
  auto now = holders_now(holds, backing, 4096);
  REQUIRE(now.size() == 1);
  CHECK(now[0].holder == "uid 7");
  CHECK(holders_now(holds, backing, 0).empty());  // the neighbour's lock is still gone

  // A record of a kind other than the lock held is stale too.
  REQUIRE(c.change(set_of(HoldKind::kShared)).ok());
  CHECK(holders_now(holds, backing, 4096).empty());

  // A backing that cannot be opened leaves the records as the only evidence.
  REQUIRE(holds
              .write("e", {HoldRecord{"e", dir.file("gone.img"), 0, HoldKind::kRead, "uid 1",
                                      utc_now(), ::getpid(), "somehost", 1}})
              .ok());
  CHECK(holders_now(holds, dir.file("gone.img"), 0).size() == 1);
}

TEST_CASE("holds records from another host are not judged by a local pid") {
  auto dir = must(TempDir::create());
  HoldsDir holds(dir.file("holds"));
  pid_t child = ::fork();
  if (child == 0) _exit(0);
  ::waitpid(child, nullptr, 0);  // `child` is now a pid with no process on this host
  std::filesystem::create_directories(dir.file("holds"));
  const std::string line =
      "pack=c\tbacking=/srv/disk.img\toffset=0\tkind=read\tholder=uid 5\t"
      "since=x\tpid=" +
      std::to_string(child) + "\thost=";
  std::ofstream(dir.file("holds/c.1.hold")) << line << local_host_name() << "\tconnections=1\n";
  std::ofstream(dir.file("holds/c.2.hold")) << line << "elsewhere\tconnections=1\n";
  auto all = holds.read_all();
  REQUIRE(all.size() == 1);
  CHECK(all[0].host == "elsewhere");
}
