// db_database_test.cc: transactions over the VV and VSN tables: all or nothing, durable,
// grouped across threads; the journal replayed over a damaged record and a torn journal tail
// dropped; and the crash test: a child process commits a random workload and is killed with
// SIGKILL at a random instant, hundreds of times; after each reopen no acknowledged commit is
// lost, no half of a transaction shows, no record is torn and every index equals a full scan.
// The engine itself knows no VV: a database of a table of the test's own works the same.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include <fmt/core.h>

#include "catalog/tables.h"
#include "db/database.h"
#include "process.h"

using namespace vvm;
using namespace vvm::db;
using namespace vvm::vvmd;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

Vv make_vv(const std::string& name, uint64_t client) {
  Vv r;
  r.name = name;
  r.vv_class = name.substr(0, 1);
  r.client_id = client;
  r.owner = "alice";
  r.group = "staff";
  return r;
}

Vsn make_vsn(const std::string& name) {
  return {name, "LTO9", "A", VsnState::kHot, "slot:1", 1, 0, 18000000000000ull, 0, 0};
}

std::string key(const std::string& name) { return KeyBuilder().text(name); }

uint64_t slot_of(Database& db, TableId t, const std::string& name) {
  return must(db.lookup(t, "name", key(name))).first;
}

// --- the crash test's workload: transaction i, decided by i and the state so far ---

using Model = std::map<std::string, Vv>;  // VVs by name

struct Step {
  enum { kInsert, kUpdate, kErase } op;
  Vv rec;
};

std::vector<Step> steps_for(uint64_t i, const Model& m) {
  std::mt19937_64 rng(i * 7919);
  std::vector<Step> steps;
  const int n = 1 + static_cast<int>(rng() % 3);
  std::vector<std::string> names;
  for (const auto& [name, r] : m) names.push_back(name);
  std::set<std::string> touched;
  for (int k = 0; k < n; ++k) {
    int op = static_cast<int>(rng() % 10);
    if (names.empty() || op < 5) {
      steps.push_back({Step::kInsert, make_vv(fmt::format("A{:010d}", i * 10 + k), rng() % 9)});
      continue;
    }
    const std::string& name = names[rng() % names.size()];
    if (!touched.insert(name).second) continue;  // one change a record a transaction
    Vv r = m.at(name);
    if (op < 8) {
      r.state = rng() % 2 ? VvState::kFinished : VvState::kArchived;
      r.size = rng() % 1000000;
      r.copies[rng() % kMaxVvCopies] = {fmt::format("L{:05d}", rng() % 5), rng() % 50};
      steps.push_back({Step::kUpdate, r});
    } else {
      steps.push_back({Step::kErase, r});
    }
  }
  return steps;
}

void apply_model(Model& m, const std::vector<Step>& steps) {
  for (const Step& s : steps) {
    if (s.op == Step::kErase) {
      m.erase(s.rec.name);
    } else {
      m[s.rec.name] = s.rec;
    }
  }
}

// Transaction i: its VV steps, and the VSN's bytes_used raised by i, so that the VSN alone says
// how many transactions committed (1 + 2 + ... + k) and a VV change without it is caught.
Status run_transaction(Database& db, uint64_t i, const Model& m) {
  Transaction txn;
  for (const Step& s : steps_for(i, m)) {
    if (s.op == Step::kInsert) {
      txn.insert(kVvTable, vv_values(s.rec));
    } else {
      uint64_t slot = slot_of(db, kVvTable, s.rec.name);
      if (s.op == Step::kUpdate) {
        txn.update(kVvTable, slot, vv_values(s.rec));
      } else {
        txn.erase(kVvTable, slot);
      }
    }
  }
  auto vsn = must(db.lookup(kVsnTable, "name", key("L00001")));
  Vsn v = must(vsn_from_values(vsn.second));
  v.bytes_used += i;
  txn.update(kVsnTable, vsn.first, vsn_values(v));
  return db.commit(txn).status();
}

// A database in `dir` holding VV A0000000001, committed and closed.
void commit_one_vv(const std::string& dir) {
  auto db = must(open_database(dir));
  Transaction txn;
  txn.insert(kVvTable, vv_values(make_vv("A0000000001", 1)));
  must(db->commit(txn));
}

Model read_model(Database& db) {
  Model m;
  must(db.scan(kVvTable, [&](uint64_t, const Values& v) {
    Vv r = must(vv_from_values(v));
    m[r.name] = r;
  }));
  return m;
}

}  // namespace

TEST_CASE("a transaction over both tables commits durably, and is seen after reopening") {
  auto dir = must(TempDir::create());
  {
    auto db = must(open_database(dir.path()));
    Transaction txn;
    txn.insert(kVsnTable, vsn_values(make_vsn("L00001")));
    txn.insert(kVvTable, vv_values(make_vv("A0000000001", 5)));
    auto slots = must(db->commit(txn));
    CHECK(slots == std::vector<uint64_t>{1, 1});
    Vv vv = make_vv("A0000000001", 5);
    vv.state = VvState::kArchived;
    vv.copies[0] = {"L00001", 1};
    Vsn vsn = make_vsn("L00001");
    vsn.next_file = 2;
    Transaction written;
    written.update(kVvTable, 1, vv_values(vv));
    written.update(kVsnTable, 1, vsn_values(vsn));
    must(db->commit(written));
    CHECK(db->index(kVvTable, "vsn")->size() == 1);
    must(db->verify());
  }
  auto db = must(open_database(dir.path()));
  CHECK(must(vv_from_values(must(db->read(kVvTable, 1)))).state == VvState::kArchived);
  CHECK(must(vsn_from_values(must(db->read(kVsnTable, 1)))).next_file == 2);
  must(db->verify());
}

TEST_CASE("a transaction that fails anywhere leaves nothing behind") {
  auto dir = must(TempDir::create());
  auto db = must(open_database(dir.path()));
  Transaction setup;
  setup.insert(kVvTable, vv_values(make_vv("A0000000001", 1)));
  setup.insert(kVvTable, vv_values(make_vv("A0000000002", 2)));
  must(db->commit(setup));

  Transaction bad;
  Vv changed = make_vv("A0000000001", 99);
  bad.update(kVvTable, 1, vv_values(changed));
  bad.erase(kVvTable, 2);
  bad.insert(kVvTable, vv_values(make_vv("A0000000003", 3)));
  bad.insert(kVvTable, vv_values(make_vv("A0000000001", 4)));  // a second A0000000001
  auto r = db->commit(bad);
  CHECK(r.status().code() == Code::kAlreadyExists);
  CHECK(db->live_count(kVvTable) == 2);
  CHECK(must(vv_from_values(must(db->read(kVvTable, 1)))).client_id == 1);
  CHECK(db->lookup(kVvTable, "name", key("A0000000003")).status().code() == Code::kNotFound);
  must(db->verify());
  Transaction missing;
  missing.erase(kVvTable, 77);
  CHECK(db->commit(missing).status().code() == Code::kNotFound);
  // Still usable, and the failed attempts left no trace after reopening either.
  Transaction ok;
  ok.insert(kVvTable, vv_values(make_vv("A0000000003", 3)));
  must(db->commit(ok));
  db.reset();
  db = must(open_database(dir.path()));
  CHECK(db->live_count(kVvTable) == 3);
  must(db->verify());
}

TEST_CASE("the journal repairs a record damaged after its commit; a torn journal tail is dropped") {
  auto dir = must(TempDir::create());
  commit_one_vv(dir.path());
  // Tear record 1 of vv.tab by hand, as a crash in the middle of its write could.
  int fd = ::open(dir.file("vv.tab").c_str(), O_WRONLY);
  REQUIRE(::pwrite(fd, "XXXXXXXX", 8, 256 + 100) == 8);
  ::close(fd);
  // And leave the start of a second frame right after the first, as a crash during the next
  // commit would: its header (magic, length, the next sequence number, the same epoch), then
  // less than its length of payload and no checksum. (The journal is preallocated, so the
  // place is found from the first frame's length, not from the end of the file.)
  fd = ::open(dir.file("journal").c_str(), O_RDWR);
  char first[24];
  REQUIRE(::pread(fd, first, sizeof first, 0) == sizeof first);
  uint32_t len;
  uint64_t seq;
  std::memcpy(&len, first + 4, sizeof len);
  std::memcpy(&seq, first + 8, sizeof seq);
  std::string torn(first, sizeof first);
  const uint32_t torn_len = 300;
  ++seq;
  torn.replace(4, 4, reinterpret_cast<const char*>(&torn_len), 4);
  torn.replace(8, 8, reinterpret_cast<const char*>(&seq), 8);
  torn += std::string(100, 'A');
  REQUIRE(::pwrite(fd, torn.data(), torn.size(), 24 + len + 4) ==
          static_cast<ssize_t>(torn.size()));
  ::close(fd);
  // The journal still holds the committed image (no checkpoint yet): the open rewrites it.
  auto db = must(open_database(dir.path()));
  CHECK(must(vv_from_values(must(db->read(kVvTable, 1)))).name == "A0000000001");
  must(db->verify());
}

TEST_CASE("without the journal, a damaged record stops the open and is named") {
  auto dir = must(TempDir::create());
  commit_one_vv(dir.path());
  must(open_database(dir.path()));  // replays, then empties the journal
  int fd = ::open(dir.file("vv.tab").c_str(), O_WRONLY);
  REQUIRE(::pwrite(fd, "XXXXXXXX", 8, 256 + 100) == 8);
  ::close(fd);
  auto db = open_database(dir.path());
  CHECK_THAT(db.status().message(), Catch::Contains("vv.tab: record 1: checksum") &&
                                        Catch::Contains("torn or half-written"));
}

TEST_CASE("commits from many threads share fsyncs and all land") {
  auto dir = must(TempDir::create());
  auto db = must(open_database(dir.path()));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        Transaction txn;
        txn.insert(kVvTable, vv_values(make_vv(fmt::format("B{:04d}{:06d}", t, i), t)));
        if (!db->commit(txn).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(db->live_count(kVvTable) == 800);
  must(db->verify());
}

TEST_CASE("typed reads give the records that Values give, field for field") {
  auto dir = must(TempDir::create());
  auto db = must(open_database(dir.path()));
  std::mt19937_64 rng(8);
  Transaction txn;
  std::vector<Vv> vvs;
  for (int i = 0; i < 50; ++i) {
    Vv r = make_vv(fmt::format("C{:010d}", i), rng() % 1000);
    r.serial = i;
    r.size = rng() % (1ull << 50);
    r.state = i % 3 ? VvState::kArchived : VvState::kHot;
    r.perms = 0600;
    r.created = rng() % (1ull << 40), r.finished = rng() % (1ull << 40);
    r.accessed = rng() % (1ull << 40), r.checksum = rng();
    for (int c = 0; c < kMaxVvCopies; ++c) {
      if (rng() % 2) r.copies[c] = {fmt::format("L{:05d}", rng() % 100000), rng() % 1000000};
    }
    vvs.push_back(r);
    txn.insert(kVvTable, vv_values(r));
  }
  Vsn vsn = make_vsn("L00001");
  vsn.bytes_used = 12345, vsn.errors = 3, vsn.last_mount = 0xabcdef;
  txn.insert(kVsnTable, vsn_values(vsn));
  auto slots = must(db->commit(txn));
  Vv typed;  // reused: every field must be overwritten
  for (size_t i = 0; i < vvs.size(); ++i) {
    must(read_vv(*db, slots[i], &typed));
    CHECK(typed == vvs[i]);
    CHECK(typed == must(vv_from_values(must(db->read(kVvTable, slots[i])))));
    Vv by_name;
    CHECK(must(lookup_vv(*db, "name", key(vvs[i].name), &by_name)) == slots[i]);
    CHECK(by_name == vvs[i]);
  }
  // A typed scan by name sees them all, in name order (they were made in name order).
  std::vector<Vv> scanned;
  must(scan_vv(*db, "name", KeyBuilder().text("C"), KeyBuilder().text("D"),
               [&](uint64_t, const Vv& r) {
                 scanned.push_back(r);
                 return true;
               }));
  CHECK(scanned == vvs);
  Vsn typed_vsn;
  must(read_vsn(*db, slots.back(), &typed_vsn));
  CHECK(typed_vsn == vsn);
  CHECK(lookup_vv(*db, "name", key("Z0000000001"), &typed).status().code() == Code::kNotFound);
}

TEST_CASE("counters: unset is 0, set with other changes atomically, kept across reopening") {
  auto dir = must(TempDir::create());
  {
    auto db = must(open_database(dir.path()));
    CHECK(must(counter(*db, "serial.A")) == 0);
    Transaction txn;
    txn.insert(kVvTable, vv_values(make_vv("A0000000001", 1)));
    must(set_counter(*db, txn, "serial.A", 1));
    must(db->commit(txn));
    CHECK(must(counter(*db, "serial.A")) == 1);
    Transaction next;
    must(set_counter(*db, next, "serial.A", 2));  // an update of the record now
    must(db->commit(next));
    // A transaction that fails sets nothing: the counter with a VV whose name is taken.
    Transaction bad;
    must(set_counter(*db, bad, "serial.A", 3));
    bad.insert(kVvTable, vv_values(make_vv("A0000000001", 1)));
    CHECK(db->commit(bad).status().code() == Code::kAlreadyExists);
    CHECK(must(counter(*db, "serial.A")) == 2);
    CHECK(db->live_count(kCounterTable) == 1);
  }
  auto db = must(open_database(dir.path()));
  CHECK(must(counter(*db, "serial.A")) == 2);
  CHECK(must(counter(*db, "serial.B")) == 0);
  must(db->verify());
}

TEST_CASE("a database made before the counter table existed gets it at open") {
  auto dir = must(TempDir::create());
  commit_one_vv(dir.path());
  REQUIRE(::unlink(dir.file("counter.tab").c_str()) == 0);
  auto db = must(open_database(dir.path()));
  CHECK(db->live_count(kVvTable) == 1);
  CHECK(must(counter(*db, "serial.A")) == 0);
  Transaction txn;
  must(set_counter(*db, txn, "serial.A", 7));
  must(db->commit(txn));
  CHECK(must(counter(*db, "serial.A")) == 7);
}

TEST_CASE("an index range is scanned under the lock while writers commit") {
  auto dir = must(TempDir::create());
  auto db = must(open_database(dir.path()));
  Transaction setup;
  for (int i = 0; i < 100; ++i) {
    setup.insert(kVvTable, vv_values(make_vv(fmt::format("A{:010d}", i), i % 10)));
  }
  must(db->commit(setup));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 100; !stop; ++i) {
      Transaction txn;
      txn.insert(kVvTable, vv_values(make_vv(fmt::format("B{:010d}", i), 3)));
      must(db->commit(txn));
    }
  });
  for (int round = 0; round < 200; ++round) {
    std::vector<uint64_t> ids;
    // Hot VVs of class A with client ids 3 and 4: ten each, whatever class B adds meanwhile.
    must(db->scan_index(kVvTable, "hot", KeyBuilder().text("A").number(3),
                        KeyBuilder().text("A").number(5), [&](uint64_t, const Values& v) {
                          ids.push_back(must(vv_from_values(v)).client_id);
                          return true;
                        }));
    REQUIRE(ids.size() == 20);
    CHECK(std::is_sorted(ids.begin(), ids.end()));
  }
  stop = true;
  writer.join();
  int seen = 0;
  must(db->scan_index(kVvTable, "hot", KeyBuilder().text("A"), KeyBuilder().text("B"),
                      [&](uint64_t, const Values&) { return ++seen < 5; }));
  CHECK(seen == 5);  // each's false stops the scan
  CHECK(db->scan_index(kVvTable, "nope", "", "", [](uint64_t, const Values&) {
            return true;
          }).code() == Code::kInvalidArgument);
}

TEST_CASE("a read, scan or commit from inside a scan's callback is refused, not a deadlock") {
  auto dir = must(TempDir::create());
  auto db = must(open_database(dir.path()));
  Transaction setup;
  setup.insert(kVvTable, vv_values(make_vv("A0000000001", 1)));
  setup.insert(kVvTable, vv_values(make_vv("A0000000002", 2)));
  must(db->commit(setup));
  std::vector<Status> inner;
  must(db->scan_index(kVvTable, "hot", KeyBuilder().text("A"), KeyBuilder().text("B"),
                      [&](uint64_t slot, const Values& v) {
                        inner.push_back(db->read(kVvTable, slot).status());
                        inner.push_back(db->lookup(kVvTable, "name", key("A0000000001")).status());
                        inner.push_back(db->scan_index(
                            kVvTable, "hot", "", "", [](uint64_t, const Values&) { return true; }));
                        Transaction txn;
                        txn.update(kVvTable, slot, v);
                        inner.push_back(db->commit(txn).status());
                        return true;
                      }));
  REQUIRE(inner.size() == 8);
  for (const Status& s : inner) {
    CHECK(s.code() == Code::kInternal);
    CHECK_THAT(s.message(), Catch::Contains("from inside a scan's callback"));
  }
  // After the scan, the same calls work: the mark is the scan's only.
  CHECK(db->read(kVvTable, slot_of(*db, kVvTable, "A0000000002")).ok());
  Transaction txn;
  txn.insert(kVvTable, vv_values(make_vv("A0000000003", 3)));
  CHECK(db->commit(txn).ok());
}

TEST_CASE("crash test: SIGKILL at random instants loses no acknowledged commit") {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  std::mt19937_64 rng(2026);
  int runs = 0;
  uint64_t total_commits = 0;
  while (runs < 300 && Clock::now() < deadline) {
    auto dir = must(TempDir::create("vvm-crash"));
    int ack[2];
    REQUIRE(::pipe(ack) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::close(ack[0]);
      auto db = open_database(dir.path(), 16 << 10);  // small: checkpoints happen too
      if (!db.ok()) _exit(3);
      Transaction first;
      first.insert(kVsnTable, vsn_values(make_vsn("L00001")));
      if (!(*db)->commit(first).ok()) _exit(4);
      Model m;
      for (uint64_t i = 1;; ++i) {
        if (!run_transaction(**db, i, m).ok()) _exit(5);
        apply_model(m, steps_for(i, m));
        if (::write(ack[1], &i, sizeof i) != sizeof i) _exit(6);
      }
    }
    ::close(ack[1]);
    std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 30000));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));  // it never failed by itself
    uint64_t acked = 0, v;
    while (::read(ack[0], &v, sizeof v) == sizeof v) acked = v;
    ::close(ack[0]);

    auto db = open_database(dir.path());
    INFO("run " << runs << ", " << acked << " acknowledged");
    INFO(db.status().message());
    REQUIRE(db.ok());  // a torn record would stop the open
    must((*db)->verify());
    if ((*db)->live_count(kVsnTable) == 0) {
      CHECK(acked == 0);  // killed before the first commit
    } else {
      Vsn vsn = must(vsn_from_values(must((*db)->read(kVsnTable, 1))));
      uint64_t k = 0;
      while (k * (k + 1) / 2 < vsn.bytes_used) ++k;
      REQUIRE(k * (k + 1) / 2 == vsn.bytes_used);  // whole transactions only
      CHECK((k == acked || k == acked + 1));       // nothing acknowledged is lost
      Model want;
      for (uint64_t i = 1; i <= k; ++i) apply_model(want, steps_for(i, want));
      CHECK(read_model(**db) == want);  // the VVs agree with the VSN: all or nothing
      total_commits += k;
    }
    ++runs;
  }
  WARN("crash test: " << runs << " runs killed at random, " << total_commits
                      << " commits recovered and checked");
  CHECK(runs >= 50);
}

// The engine knows no VV: any list of tables, here one of its own, journals, replays and
// indexes the same way.
TEST_CASE("a database of tables the engine was told of at open, and nothing else") {
  auto dir = must(TempDir::create());
  const Schema kv = must(Schema::make(
      "kv", {{"key", FieldKind::kText, 8, {}}, {"value", FieldKind::kDecimal, 6, {}}}, 64));
  auto specs = [&] {
    std::vector<TableSpec> s;
    s.push_back(
        {"kv.tab", &kv, {Index("key", true, [](const Values& v, std::vector<std::string>& out) {
           out.push_back(KeyBuilder().text(std::get<std::string>(v[0])));
         })}});
    return s;
  };
  const TableId t{0};
  {
    auto db = must(Database::open(dir.path(), specs()));
    Transaction txn;
    txn.insert(t, {std::string("one"), uint64_t{1}});
    txn.insert(t, {std::string("two"), uint64_t{2}});
    CHECK(must(db->commit(txn)) == std::vector<uint64_t>{1, 2});
    Transaction dup;
    dup.insert(t, {std::string("one"), uint64_t{3}});
    CHECK(db->commit(dup).status().code() == Code::kAlreadyExists);
  }
  CHECK_FALSE(std::filesystem::exists(dir.file("vv.tab")));
  auto db = must(Database::open(dir.path(), specs()));
  CHECK(db->live_count(t) == 2);
  Values v;
  CHECK(must(db->lookup_into(t, "key", KeyBuilder().text("two"), &v)) == 2);
  CHECK(std::get<uint64_t>(v[1]) == 2);
  must(db->verify());
  CHECK(Database::open(dir.path(), {}).status().code() == Code::kInvalidArgument);
}
