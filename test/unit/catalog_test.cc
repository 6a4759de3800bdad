// catalog_test.cc: vvmd's VV catalogue over a real database in a temporary folder: create (names,
// serials across a reopen, the sparse cache file, owners and checks), list (filters, paging),
// show, finish, remove (copies, force), who may finish and remove, and finish and remove with
// vvmd's loop (their answers, hooks and file removal on it, after the change is applied). The
// daemon itself, with vvctl: test/integration/vv-catalog.sh.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/tables.h"
#include "hand_loop.h"
#include "peers.h"
#include "process.h"

using namespace vvm;
using namespace vvm::vvmd;
using vvm::test::must;
using vvm::test::TempDir;
using vvm::test::unix_peer;

namespace {

const rpc::Peer kRoot = unix_peer(0, 0);
const rpc::Peer kNobody = unix_peer(65534, 65534);

struct Fixture {
  TempDir dir = must(TempDir::create());
  std::unique_ptr<db::Database> db;
  std::unique_ptr<Catalog> catalog;
  uint64_t clock = 1'700'000'000;

  Fixture() { reopen(); }
  void reopen() {
    catalog.reset();
    db.reset();
    db = must(open_database(dir.file("db")));
    Catalog::Options o;
    o.cache_dir = dir.file("cache");
    o.classes = {'A', 'B'};
    o.daemon_uid = 4242;  // not the test's uid: root alone is privileged here
    o.now = [this] { return clock; };
    catalog = must(Catalog::open(db.get(), o));
  }
  Vv create(char cls, uint64_t size = 1 << 20, uint64_t id = 0, const rpc::Peer& peer = kRoot) {
    return must(catalog->create(peer, {std::string(1, cls), size, id, "", "", ""}));
  }
  std::vector<std::string> names(rpc::VvListRequest req) {
    std::vector<std::string> out;
    for (const auto& v : must(catalog->list(req)).vvs) out.push_back(v.name);
    return out;
  }
};

}  // namespace

TEST_CASE("create names VVs by class and serial and makes a sparse cache file") {
  Fixture f;
  auto a1 = f.create('A', 10ull << 30, 7);
  CHECK(a1.name == "A0000000001");
  CHECK(f.create('A').name == "A0000000002");
  CHECK(f.create('B').name == "B0000000001");
  CHECK(a1.vv_class == "A");
  CHECK(a1.serial == 1);
  CHECK(a1.client_id == 7);
  CHECK(a1.size == 10ull << 30);
  CHECK(a1.state == VvState::kHot);
  CHECK(a1.cache == CacheState::kCached);
  CHECK(a1.created == f.clock);
  CHECK(a1.finished == 0);
  CHECK(a1.owner == "root");
  CHECK(a1.group == "root");
  CHECK(a1.perms == 0640);
  struct stat st {};
  REQUIRE(::stat(f.dir.file("cache/A0000000001").c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == 10ull << 30);
  CHECK(st.st_blocks == 0);  // sparse: nothing written yet
  CHECK(must(f.catalog->show("A0000000001")) == a1);

  SECTION("serials go on after a reopen, from the database") {
    f.reopen();
    CHECK(f.create('A').name == "A0000000003");
    CHECK(f.create('B').name == "B0000000002");
  }
  SECTION("a cache file that no record names (a create cut short) is replaced") {
    {
      FILE* stale = std::fopen(f.dir.file("cache/A0000000003").c_str(), "w");
      std::fputs("left over", stale);
      std::fclose(stale);
    }
    auto a3 = f.create('A', 4096);
    CHECK(a3.name == "A0000000003");
    CHECK(std::filesystem::file_size(f.dir.file("cache/A0000000003")) == 4096);
  }
}

TEST_CASE(
    "creates in the background: files made out of order still move the serial counter "
    "only forward") {
  Fixture f;
  std::vector<std::pair<std::function<void()>, std::function<void()>>> jobs;
  f.catalog->run_in_background([&jobs](std::function<void()> work, std::function<void()> then) {
    jobs.emplace_back(std::move(work), std::move(then));
  });
  std::promise<Result<Vv>> first, second;
  f.catalog->create_async(kRoot, {"A", 4096, 0, "", "", ""},
                          [&first](Result<Vv> r) { first.set_value(std::move(r)); });
  f.catalog->create_async(kRoot, {"A", 4096, 0, "", "", ""},
                          [&second](Result<Vv> r) { second.set_value(std::move(r)); });
  REQUIRE(jobs.size() == 2);
  // Nothing is recorded until a file is made and the record submitted.
  CHECK(f.catalog->show("A0000000001").status().code() == Code::kNotFound);
  jobs[1].first();
  jobs[0].first();
  jobs[1].second();  // the second create's record goes first
  jobs[0].second();
  CHECK(must(second.get_future().get()).name == "A0000000002");
  CHECK(must(first.get_future().get()).name == "A0000000001");
  CHECK(must(counter(*f.db, "serial.A")) == 2);
  // A synchronous create would wait for itself where creates run in the background.
  CHECK(f.catalog->create(kRoot, {"A", 1, 0, "", "", ""}).status().code() == Code::kInternal);

  f.reopen();
  CHECK(must(f.catalog->show("A0000000001")).size == 4096);
  CHECK(must(f.catalog->show("A0000000002")).size == 4096);
  CHECK(f.create('A').name == "A0000000003");  // the refused create took no serial
}

TEST_CASE("create refuses what it cannot make, naming why") {
  Fixture f;
  auto err = [&](rpc::VvCreateRequest r, const rpc::Peer& peer = kRoot) {
    auto res = f.catalog->create(peer, r);
    REQUIRE_FALSE(res.ok());
    return res.status();
  };
  CHECK_THAT(err({"Z", 1, 0, "", "", ""}).message(),
             Catch::Contains("no storage class 'Z' (classes: A, B)"));
  CHECK_THAT(err({"AB", 1, 0, "", "", ""}).message(), Catch::Contains("no storage class 'AB'"));
  CHECK_THAT(err({"A", 0, 0, "", "", ""}).message(), Catch::Contains("more than 0 bytes"));
  CHECK_THAT(err({"A", 1, 0, "", "", "0999"}).message(), Catch::Contains("perms '0999'"));
  CHECK_THAT(err({"A", 1, 0, "no-such-user-here", "", ""}).message(),
             Catch::Contains("no-such-user-here"));
  // Only root and vvmd's user give a VV to someone else.
  auto given = err({"A", 1, 0, "root", "", ""}, kNobody);
  CHECK(given.code() == Code::kPermissionDenied);
  CHECK_THAT(given.message(), Catch::Contains("may not create a VV owned by root"));
  CHECK(err({"A", 1, 0, "", "root", ""}, kNobody).code() == Code::kPermissionDenied);
  rpc::Peer tcp;
  tcp.kind = Endpoint::Kind::kTcp;
  tcp.address = "127.0.0.1:5000";
  CHECK_THAT(err({"A", 1, 0, "", "", ""}, tcp).message(),
             Catch::Contains("over TCP (127.0.0.1:5000) must name the owner and the group"));
  // None of these used a serial or left a file.
  CHECK(f.create('A').name == "A0000000001");
  CHECK(std::distance(std::filesystem::directory_iterator(f.dir.file("cache")), {}) == 1);

  auto mine = must(f.catalog->create(kNobody, {"A", 1, 0, "nobody", "", "0600"}));
  CHECK(mine.owner == "nobody");
  CHECK(mine.perms == 0600);
  auto given_by_root = must(f.catalog->create(kRoot, {"B", 1, 0, "nobody", "65534", ""}));
  CHECK(given_by_root.owner == "nobody");
  CHECK(given_by_root.group == group_name(65534));
  auto over_tcp = must(f.catalog->create(tcp, {"B", 1, 0, "nobody", "root", ""}));
  CHECK(over_tcp.owner == "nobody");
}

TEST_CASE("list filters by state, class and client id, in name order, page by page") {
  Fixture f;
  for (int i = 0; i < 5; ++i) f.create('B', 1, i % 2);  // B1..B5, ids 0 1 0 1 0
  for (int i = 0; i < 5; ++i) f.create('A', 1, 1);      // A1..A5, id 1
  must(f.catalog->finish(kRoot, "A0000000002"));
  must(f.catalog->finish(kRoot, "B0000000004"));

  auto all = f.names({});
  REQUIRE(all.size() == 10);
  CHECK(all.front() == "A0000000001");
  CHECK(all.back() == "B0000000005");
  CHECK(std::is_sorted(all.begin(), all.end()));

  rpc::VvListRequest req;
  req.vv_class = "B";
  CHECK(f.names(req) == std::vector<std::string>{"B0000000001", "B0000000002", "B0000000003",
                                                 "B0000000004", "B0000000005"});
  req.state = VvState::kFinished;
  CHECK(f.names(req) == std::vector<std::string>{"B0000000004"});
  req = {};
  req.state = VvState::kFinished;
  CHECK(f.names(req) == std::vector<std::string>{"A0000000002", "B0000000004"});
  req = {};
  req.client_id = 1;
  CHECK(f.names(req) == std::vector<std::string>{"A0000000001", "A0000000002", "A0000000003",
                                                 "A0000000004", "A0000000005", "B0000000002",
                                                 "B0000000004"});
  req.vv_class = "B";
  req.state = VvState::kHot;
  CHECK(f.names(req) == std::vector<std::string>{"B0000000002"});
  req = {};
  req.client_id = 99;
  CHECK(f.names(req).empty());
  req = {};
  req.vv_class = "C";
  CHECK(f.names(req).empty());

  SECTION("pages of 3 walk the whole list once, with or without filters") {
    for (auto base : {rpc::VvListRequest{}, rpc::VvListRequest{VvState::kAny, "", 1, "", 0},
                      rpc::VvListRequest{VvState::kHot, "A", {}, "", 0}}) {
      std::vector<std::string> walked;
      rpc::VvListRequest page = base;
      page.limit = 3;
      int pages = 0;
      for (;;) {
        auto reply = must(f.catalog->list(page));
        CHECK(reply.vvs.size() <= 3);
        for (const auto& v : reply.vvs) walked.push_back(v.name);
        ++pages;
        if (!reply.more) break;
        page.after = reply.vvs.back().name;
      }
      CHECK(walked == f.names(base));
      // No empty last page: `more` is false on the page that ends the list.
      CHECK(pages == std::max<int>(1, static_cast<int>((walked.size() + 2) / 3)));
    }
  }
  SECTION("a page never exceeds the daemon's page size") {
    rpc::VvListRequest big;
    big.limit = 1'000'000;
    auto reply = must(f.catalog->list(big));
    CHECK(reply.vvs.size() == 10);
    CHECK_FALSE(reply.more);
  }
}

TEST_CASE("finish makes a hot VV finished, once") {
  Fixture f;
  f.create('A');
  f.clock += 60;
  auto done = must(f.catalog->finish(kRoot, "A0000000001"));
  CHECK(done.state == VvState::kFinished);
  CHECK(done.finished == f.clock);
  CHECK(must(f.catalog->show("A0000000001")) == done);
  auto again = f.catalog->finish(kRoot, "A0000000001");
  CHECK_THAT(again.status().message(), Catch::Contains("VV A0000000001 is already finished"));
  CHECK(f.catalog->finish(kRoot, "A0000000009").status().code() == Code::kNotFound);
  CHECK(f.catalog->show("A0000000009").status().message() == "no VV A0000000009");
  CHECK(f.catalog->show("nonsense").status().code() == Code::kInvalidArgument);
  f.reopen();
  CHECK(must(f.catalog->show("A0000000001")).state == VvState::kFinished);
}

TEST_CASE("only the owner, root and vvmd's user may finish or remove a VV") {
  Fixture f;
  f.create('A');                 // root's
  f.create('A', 1, 0, kNobody);  // nobody's
  auto refused = f.catalog->finish(kNobody, "A0000000001");
  CHECK(refused.status().code() == Code::kPermissionDenied);
  CHECK_THAT(refused.status().message(),
             Catch::Contains("may not finish VV A0000000001: it belongs to root"));
  CHECK(f.catalog->remove(kNobody, {"A0000000001", true}).status().code() ==
        Code::kPermissionDenied);
  CHECK(must(f.catalog->finish(kNobody, "A0000000002")).state == VvState::kFinished);
  CHECK(must(f.catalog->remove(unix_peer(4242, 4242), {"A0000000001", false})).name ==
        "A0000000001");
  rpc::Peer tcp;
  tcp.kind = Endpoint::Kind::kTcp;
  CHECK(f.catalog->remove(tcp, {"A0000000002", false}).status().code() == Code::kPermissionDenied);
  CHECK(must(f.catalog->remove(kRoot, {"A0000000002", false})).owner == "nobody");
}

TEST_CASE("a TLS peer is its identity's user: its own VVs only, never a trusted host") {
  Fixture f;
  f.create('A');                 // root's
  f.create('A', 1, 0, kNobody);  // nobody's
  rpc::Peer tls;
  tls.kind = Endpoint::Kind::kTls;
  tls.address = "127.0.0.1:5000";
  tls.uid = 65534;
  tls.gid = 65534;
  tls.identity = "nob";
  CHECK_THAT(f.catalog->finish(tls, "A0000000001").status().message(),
             Catch::Contains("may not finish VV A0000000001: it belongs to root"));
  CHECK(f.catalog->remove(tls, {"A0000000001", true}).status().code() == Code::kPermissionDenied);
  CHECK(must(f.catalog->finish(tls, "A0000000002")).state == VvState::kFinished);
  // Its creates are its own; unlike a TCP host it may not name another owner.
  auto own = must(f.catalog->create(tls, {"A", 1, 0, "", "", ""}));
  CHECK(own.owner == user_name(65534));
  CHECK(f.catalog->create(tls, {"A", 1, 0, "root", "", ""}).status().code() ==
        Code::kPermissionDenied);
  CHECK(must(f.catalog->remove(tls, {own.name, false})).name == own.name);
}

TEST_CASE("remove takes the record and the cache file; copies on tape need force") {
  Fixture f;
  auto a1 = f.create('A');
  f.create('A');
  auto removed = must(f.catalog->remove(kRoot, {"A0000000001", false}));
  CHECK(removed == a1);
  CHECK_FALSE(std::filesystem::exists(f.dir.file("cache/A0000000001")));
  CHECK(f.catalog->show("A0000000001").status().code() == Code::kNotFound);
  CHECK(f.catalog->remove(kRoot, {"A0000000001", false}).status().code() == Code::kNotFound);

  // Give A2 two copies, as the archiver will.
  Vv rec;
  uint64_t slot = must(lookup_vv(*f.db, "name", db::KeyBuilder().text("A0000000002"), &rec));
  rec.state = VvState::kArchived;
  rec.copies[0] = {"L00001", 3};
  rec.copies[1] = {"M00002", 7};
  db::Transaction txn;
  txn.update(kVvTable, slot, vv_values(rec));
  must(f.db->commit(txn));

  auto refused = f.catalog->remove(kRoot, {"A0000000002", false});
  CHECK_THAT(refused.status().message(),
             Catch::Contains("VV A0000000002 has 2 copies (L00001 file 3, M00002 file 7) on tape"));
  CHECK(std::filesystem::exists(f.dir.file("cache/A0000000002")));
  auto forced = must(f.catalog->remove(kRoot, {"A0000000002", true}));
  CHECK(forced.copies[1] == VvCopy{"M00002", 7});
  CHECK_FALSE(std::filesystem::exists(f.dir.file("cache/A0000000002")));
  // Removing the highest serial does not hand it out again in this process.
  CHECK(f.create('A').name == "A0000000003");
  // Nor after a restart: remove the highest again, reopen, and the serials go on from it.
  must(f.catalog->remove(kRoot, {"A0000000003", false}));
  f.reopen();
  CHECK(f.create('A').name == "A0000000004");
  CHECK(must(counter(*f.db, "serial.A")) == 4);
}

TEST_CASE("a VV in use is not finished or removed, and idle hot VVs are finished") {
  Fixture f;
  f.create('A', 4096);  // A0000000001, used at clock
  f.create('A', 4096);  // A0000000002
  f.create('A', 4096);  // A0000000003
  std::set<std::string> writing = {"A0000000001"}, reading = {"A0000000002"};
  f.catalog->in_use_check([&](const std::string& vv, bool for_write) {
    if (writing.contains(vv) || (!for_write && reading.contains(vv))) {
      return Status::Busy("VV " + vv + " is open by someone");
    }
    return Status::Ok();
  });
  std::vector<std::string> handed_on;
  f.catalog->on_finished([&](const Vv& r) { handed_on.push_back(r.name); });

  auto refused = f.catalog->finish(kRoot, "A0000000001");
  CHECK(refused.status().code() == Code::kBusy);
  CHECK_THAT(refused.status().message(), Catch::Contains("open by someone"));
  CHECK(f.catalog->remove(kRoot, {"A0000000002", false}).status().code() == Code::kBusy);
  CHECK(handed_on.empty());

  // Idle: used before the cut-off, hot, and no writer. A reader does not keep a VV hot.
  const uint64_t used = f.clock;
  CHECK(f.catalog->finish_idle(used) == 0);  // nobody idle before then
  CHECK(f.catalog->finish_idle(used + 1) == 2);
  CHECK(must(f.catalog->show("A0000000001")).state == VvState::kHot);  // a writer
  CHECK(must(f.catalog->show("A0000000002")).state == VvState::kFinished);
  CHECK(must(f.catalog->show("A0000000003")).state == VvState::kFinished);
  CHECK(handed_on == std::vector<std::string>{"A0000000002", "A0000000003"});
  CHECK(f.catalog->finish_idle(used + 1) == 0);  // finished once
  writing.clear();
  CHECK(must(f.catalog->finish(kRoot, "A0000000001")).state == VvState::kFinished);
}

TEST_CASE("with a loop, finish and remove answer on it, after their change is applied") {
  Fixture f;
  f.create('A');
  f.create('A');
  vvm::test::HandLoop loop;
  f.catalog->finish_commits_on(loop.post());
  std::vector<std::string> hooked;
  f.catalog->on_finished([&](const Vv& vv) { hooked.push_back(vv.name); });

  std::optional<Result<Vv>> finished;
  f.catalog->finish_async(kRoot, "A0000000001", [&](Result<Vv> r) { finished = std::move(r); });
  CHECK(must(f.catalog->show("A0000000001")).state == VvState::kFinished);  // applied at once
  CHECK_FALSE(finished);  // answered, and the scheduler told, only on the loop
  CHECK(hooked.empty());
  // A second finish meanwhile sees the first.
  std::optional<Result<Vv>> again;
  f.catalog->finish_async(kRoot, "A0000000001", [&](Result<Vv> r) { again = std::move(r); });
  REQUIRE(again);
  CHECK(again->status().code() == Code::kInvalidArgument);
  loop.run(1);
  REQUIRE(finished);
  CHECK(must(*finished).state == VvState::kFinished);
  CHECK(hooked == std::vector<std::string>{"A0000000001"});

  const std::string file = f.catalog->cache_path("A0000000002");
  std::optional<Result<Vv>> removed;
  f.catalog->remove_async(kRoot, {"A0000000002", false},
                          [&](Result<Vv> r) { removed = std::move(r); });
  CHECK(f.catalog->show("A0000000002").status().code() == Code::kNotFound);
  CHECK(::access(file.c_str(), F_OK) == 0);  // the file goes once the record's end is durable
  loop.run(1);
  REQUIRE(removed);
  CHECK(removed->ok());
  CHECK(::access(file.c_str(), F_OK) != 0);
  // The waiting forms cannot be answered on the thread that would wait.
  CHECK(f.catalog->finish(kRoot, "A0000000001").status().code() == Code::kInternal);
}
