// cache_manager_test.cc: vvmd's cache manager over a real database, catalogue and cache folder of
// real files: the cache's use ([cache] size and the filesystem's), nothing evicted below the high
// watermark, least recently used first down below the low watermark, never a hot, finished, open,
// staging or evicted VV, the record committed before the file goes (with vvmd's loop: only once
// durable, and not at all for a VV cached again meanwhile), the warning once when nothing more
// may go, and VV_EVICT's rules. With the real daemons: test/integration/vv-evict.sh.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache_manager.h"
#include "catalog/catalog.h"
#include "catalog/vv_opens.h"
#include "db/database.h"
#include "hand_loop.h"
#include "peers.h"
#include "process.h"

using namespace vvm;
using namespace vvm::vvmd;
using Catch::Matchers::Contains;
using vvm::test::must;
using vvm::test::TempDir;
using vvm::test::unix_peer;

namespace {

constexpr uint64_t kMiB = 1 << 20;

struct Fixture {
  TempDir dir = must(TempDir::create());
  std::unique_ptr<db::Database> db = must(open_database(dir.file("db")));
  uint64_t clock = 1'700'000'000;
  std::unique_ptr<Catalog> catalog;
  std::unique_ptr<VvOpens> opens;
  CacheManager::Options options;
  std::unique_ptr<CacheManager> cache;

  // A cache of 100 MiB ([cache] size) that evicts above 60% down below 40%.
  Fixture() {
    Catalog::Options o;
    o.cache_dir = dir.file("cache");
    o.classes = {'A'};
    o.daemon_uid = 4242;
    o.now = [this] { return clock; };
    catalog = must(Catalog::open(db.get(), o));
    opens = std::make_unique<VvOpens>(catalog.get(), 4242);
    options.cache_dir = o.cache_dir;
    options.size = 100 * kMiB;
    options.high_watermark = 60;
    options.low_watermark = 40;
    make_manager();
  }
  void make_manager() {
    cache = std::make_unique<CacheManager>(db.get(), catalog.get(), opens.get(), options);
  }

  // A VV of root's in `state` and `residency`, last accessed at `accessed`, whose cache file
  // holds `mib` MiB of data (the rest of its 64 MiB sparse).
  std::string make(const std::string& state, uint64_t accessed, uint64_t mib,
                   const std::string& residency = "cached") {
    const std::string name =
        must(catalog->create(unix_peer(0), {"A", 64 * kMiB, 0, "", "", "0640"})).name;
    write_data(name, mib);
    Vv r;
    uint64_t slot = must(lookup_vv(*db, "name", db::KeyBuilder().text(name), &r));
    r.state = parse_vv_state(state).value();
    r.cache = parse_cache_state(residency).value();
    r.accessed = accessed;
    if (state == "archived") r.copies[0] = {"L00001", r.serial};
    db::Transaction txn;
    txn.update(kVvTable, slot, vv_values(r));
    must(db->commit(txn));
    return name;
  }
  void write_data(const std::string& name, uint64_t mib) {
    int fd = ::open(catalog->cache_path(name).c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    std::string chunk(kMiB, 'v');
    for (uint64_t i = 0; i < mib; ++i) {
      REQUIRE(::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(i * kMiB)) ==
              static_cast<ssize_t>(kMiB));
    }
    REQUIRE(::fsync(fd) == 0);
    ::close(fd);
  }
  bool has_file(const std::string& name) {
    return ::access(catalog->cache_path(name).c_str(), F_OK) == 0;
  }
  std::string residency(const std::string& name) {
    return std::string(cache_state_name(must(catalog->show(name)).cache));
  }
};

}  // namespace

TEST_CASE("with [cache] size, the use is the blocks the folder's files hold over the size") {
  Fixture f;
  CHECK(must(f.cache->use()).used == 0);
  const std::string a = f.make("hot", f.clock, 0);  // 64 MiB, all of it a hole
  auto u = must(f.cache->use());
  CHECK(u.sized);
  CHECK(u.used == 0);
  CHECK(u.capacity == 100 * kMiB);
  f.write_data(a, 3);
  u = must(f.cache->use());
  CHECK(u.used == 3 * kMiB);
  CHECK(u.percent == Approx(3.0));
  // A file that is no VV's takes space too.
  f.make("hot", f.clock, 0);
  int fd = ::open((f.options.cache_dir + "/stray").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  std::string mib(kMiB, 's');
  REQUIRE(::write(fd, mib.data(), mib.size()) == static_cast<ssize_t>(mib.size()));
  REQUIRE(::fsync(fd) == 0);
  ::close(fd);
  CHECK(must(f.cache->use()).used == 4 * kMiB);
}

TEST_CASE("without [cache] size, the use is the filesystem's, as df counts it") {
  Fixture f;
  f.options.size.reset();
  f.make_manager();
  auto u = must(f.cache->use());
  CHECK_FALSE(u.sized);
  struct statvfs vfs {};
  REQUIRE(::statvfs(f.options.cache_dir.c_str(), &vfs) == 0);
  const uint64_t total = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
  CHECK(u.capacity > 0);
  CHECK(u.capacity <= total);
  CHECK(u.used > 0);
  CHECK(u.used < u.capacity);
  CHECK(u.percent > 0);
  CHECK(u.percent < 100);
}

TEST_CASE("at or below the high watermark nothing is evicted") {
  Fixture f;
  const std::string a = f.make("archived", 100, 30);
  const std::string b = f.make("archived", 200, 30);  // 60%: not above
  auto pass = must(f.cache->check());
  CHECK(pass.evicted.empty());
  CHECK_FALSE(pass.stuck);
  CHECK(pass.before.percent == Approx(60.0));
  CHECK(f.has_file(a));
  CHECK(f.has_file(b));
  CHECK(f.residency(a) == "cached");
}

TEST_CASE("above the high watermark, archived VVs go least recently used first, to below low") {
  Fixture f;
  // Names in creation order; last accesses in another order.
  const std::string a = f.make("archived", 300, 10);
  const std::string b = f.make("archived", 100, 10);
  const std::string c = f.make("archived", 200, 10);
  const std::string d = f.make("archived", 400, 10);
  const std::string hot = f.make("hot", 50, 25);  // the oldest access of all, and kept
  auto pass = must(f.cache->check());             // 65%
  CHECK(pass.before.percent == Approx(65.0));
  // 65 -> 55 -> 45 -> 35: below 40% after the third.
  CHECK(pass.evicted == std::vector<std::string>{b, c, a});
  CHECK(pass.freed == 30 * kMiB);
  CHECK(pass.after.used == 35 * kMiB);
  CHECK(pass.after.percent == Approx(35.0));
  CHECK_FALSE(pass.stuck);
  CHECK_FALSE(pass.warned);
  for (const auto& gone : {a, b, c}) {
    INFO(gone);
    CHECK(f.residency(gone) == "evicted");
    CHECK_FALSE(f.has_file(gone));
  }
  CHECK(f.residency(d) == "cached");
  CHECK(f.has_file(d));
  CHECK(f.residency(hot) == "cached");
  CHECK(f.has_file(hot));
  // Below the high watermark now: the next check does nothing.
  CHECK(must(f.cache->check()).evicted.empty());
}

TEST_CASE("hot, finished, open, staging and evicted VVs are never evicted") {
  Fixture f;
  const std::string hot = f.make("hot", 1, 15);
  const std::string finished = f.make("finished", 2, 15);
  const std::string open = f.make("archived", 3, 15);
  const std::string staging = f.make("archived", 4, 15, "staging");
  const std::string evicted = f.make("archived", 5, 0, "evicted");
  const std::string old = f.make("archived", 6, 5);
  const std::string newest = f.make("archived", 7, 5);
  // An NBD connection reads `open` (which records an access later than everyone's).
  rpc::VvOpenRequest req;
  req.name = open;
  req.use = true;
  req.host = "nbd1";
  auto opened = must(f.opens->open(unix_peer(0), req));
  REQUIRE(f.opens->is_open(open));

  auto pass = must(f.cache->check());  // 70%
  CHECK(pass.before.percent == Approx(70.0));
  CHECK(pass.evicted == std::vector<std::string>{old, newest});
  CHECK(pass.after.percent == Approx(60.0));
  CHECK(pass.stuck);
  CHECK(pass.warned);
  for (const auto& kept : {hot, finished, open, staging}) {
    INFO(kept);
    CHECK(f.has_file(kept));
  }
  CHECK(f.residency(hot) == "cached");
  CHECK(f.residency(finished) == "cached");
  CHECK(f.residency(open) == "cached");
  CHECK(f.residency(staging) == "staging");
  CHECK(f.residency(evicted) == "evicted");

  // Still stuck: said once, not on every check.
  f.write_data(hot, 16);  // 61%: above the high watermark again
  pass = must(f.cache->check());
  CHECK(pass.evicted.empty());
  CHECK(pass.stuck);
  CHECK_FALSE(pass.warned);

  // Once the open VV is closed it may go, and the cache gets below the low watermark.
  must(f.opens->close(unix_peer(0), {opened.open_id, false}));
  pass = must(f.cache->check());
  CHECK(pass.evicted == std::vector<std::string>{open});
  CHECK(pass.after.percent == Approx(46.0));
  CHECK(pass.stuck);  // 46% is still above 40%: hot and finished hold the rest
  CHECK(pass.warned == false);
}

TEST_CASE("the warning comes back after the cache was fine again") {
  Fixture f;
  const std::string hot = f.make("hot", 1, 61);
  auto pass = must(f.cache->check());
  CHECK(pass.stuck);
  CHECK(pass.warned);
  CHECK_FALSE(must(f.cache->check()).warned);
  REQUIRE(::truncate(f.catalog->cache_path(hot).c_str(), 0) == 0);
  CHECK_FALSE(must(f.cache->check()).stuck);
  f.write_data(hot, 61);
  CHECK(must(f.cache->check()).warned);
}

TEST_CASE("an eviction commits the record before it removes the file") {
  Fixture f;
  std::vector<std::string> seen;
  f.options.after_commit = [&](const std::string& vv) {
    // The database already says evicted; the file is still there.
    CHECK(f.residency(vv) == "evicted");
    CHECK(f.has_file(vv));
    seen.push_back(vv);
  };
  f.make_manager();
  const std::string a = f.make("archived", 1, 65);
  const std::string b = f.make("archived", 2, 1);
  auto pass = must(f.cache->check());
  CHECK(pass.evicted == std::vector<std::string>{a});
  CHECK(seen == std::vector<std::string>{a});
  CHECK_FALSE(f.has_file(a));
  must(f.cache->evict(unix_peer(0), b));
  CHECK(seen == std::vector<std::string>{a, b});
  CHECK_FALSE(f.has_file(b));
}

TEST_CASE("with a loop, the file goes only once durable, and stays for a VV cached again") {
  Fixture f;
  // vvmd's loop, run by hand: what waits for durability runs only when the test says.
  vvm::test::HandLoop loop;
  f.cache->finish_commits_on(loop.post());

  const std::string a = f.make("archived", 1, 65);
  auto pass = must(f.cache->check());
  CHECK(pass.evicted == std::vector<std::string>{a});
  CHECK(f.residency(a) == "evicted");  // applied at once
  CHECK(f.has_file(a));                // its file waits for durability
  CHECK(pass.after.used == 0);         // but counts as gone
  loop.run(1);
  CHECK_FALSE(f.has_file(a));

  // A VV staged back (marked cached again, its whole file found in place) before its eviction
  // was durable keeps its file.
  const std::string b = f.make("archived", 2, 1);
  std::optional<Result<rpc::VvEvictReply>> answer;
  f.cache->evict_async(unix_peer(0), b, [&](auto r) { answer = std::move(r); });
  CHECK_FALSE(answer);  // not before it is durable
  Vv again;
  const uint64_t slot = must(lookup_vv(*f.db, "name", db::KeyBuilder().text(b), &again));
  again.cache = CacheState::kCached;
  db::Transaction txn;
  txn.update(kVvTable, slot, vv_values(again));
  must(f.db->commit(txn));
  loop.run(1);
  REQUIRE(answer);
  CHECK(answer->ok());
  CHECK(f.has_file(b));
  CHECK(f.residency(b) == "cached");
  // And the synchronous form is refused where the loop must answer.
  CHECK(f.cache->evict(unix_peer(0), b).status().code() == Code::kInternal);
}

TEST_CASE("VV_EVICT: archived VVs go whatever the watermarks; others are refused, saying why") {
  Fixture f;
  const std::string hot = f.make("hot", 1, 1);
  const std::string finished = f.make("finished", 2, 1);
  const std::string archived = f.make("archived", 3, 2);
  const std::string open = f.make("archived", 4, 1);
  const std::string staging = f.make("archived", 5, 1, "staging");
  rpc::VvOpenRequest req;
  req.name = open;
  req.use = true;
  req.host = "nbd1";
  must(f.opens->open(unix_peer(0), req));

  auto r = f.cache->evict(unix_peer(0), hot);
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Contains("VV " + hot + " is hot"));
  r = f.cache->evict(unix_peer(0), finished);
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Contains("is finished but not yet archived"));
  r = f.cache->evict(unix_peer(0), open);
  CHECK(r.status().code() == Code::kBusy);
  CHECK_THAT(r.status().message(), Contains("is open"));
  CHECK_THAT(r.status().message(), Contains("on nbd1"));
  r = f.cache->evict(unix_peer(0), staging);
  CHECK(r.status().code() == Code::kBusy);
  CHECK_THAT(r.status().message(), Contains("staging"));
  r = f.cache->evict(unix_peer(0), "A0000000999");
  CHECK(r.status().code() == Code::kNotFound);
  for (const auto& kept : {hot, finished, open, staging}) CHECK(f.has_file(kept));

  // Only the owner (root here), root and vvmd's user; never a TCP peer, who has no identity.
  r = f.cache->evict(unix_peer(65534), archived);
  CHECK(r.status().code() == Code::kPermissionDenied);
  CHECK_THAT(r.status().message(), Contains("may not evict VV " + archived));
  rpc::Peer tcp;
  tcp.kind = Endpoint::Kind::kTcp;
  tcp.address = "127.0.0.1:40000";
  CHECK(f.cache->evict(tcp, archived).status().code() == Code::kPermissionDenied);
  CHECK(f.has_file(archived));

  auto done = must(f.cache->evict(unix_peer(4242), archived));  // vvmd's user
  CHECK_FALSE(done.already);
  CHECK(done.freed == 2 * kMiB);
  CHECK(done.vv.name == archived);
  CHECK(done.vv.cache == CacheState::kEvicted);
  CHECK(f.residency(archived) == "evicted");
  CHECK_FALSE(f.has_file(archived));
  // Again: nothing to do, and no error.
  auto again = must(f.cache->evict(unix_peer(0), archived));
  CHECK(again.already);
  CHECK(again.freed == 0);
  CHECK(again.vv.cache == CacheState::kEvicted);
}
