// db_submit_test.cc: Database::submit, the commit that does not wait. A submitted transaction
// is applied and readable at once, in submit order; its on_durable is called once, after the
// journal frame holding it is durable; submits made while a frame is being written all go in
// the next frame; a refused submit applies nothing; a failed journal write fails every waiting
// and later submit, and reads then answer from what is durable; what was acknowledged is there
// after a crash; ~Database waits for submits in flight. The journal is a file whose durable writes
// wait for the test's leave, one by one. Then db/committer.h, which builds on it: with a loop, a
// commit is applied at once and its follow-up runs on the loop only once durable (never on the
// flusher, never before); a refusal answers at once; without a loop it waits and answers inline.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/core.h>

#include "db/committer.h"
#include "db/database.h"
#include "hand_loop.h"
#include "process.h"

using namespace vvm;
using namespace vvm::db;
using vvm::test::must;
using vvm::test::TempDir;
using namespace std::chrono_literals;

namespace {

// Lets the journal's durable writes (one a frame) through only when allowed, counts them, and
// fails them on demand.
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool held = false;
  int allowed = 0;  // writes that may pass while held
  int entered = 0;  // durable writes begun
  int passed = 0;   // durable writes finished
  bool fail = false;

  void hold() {
    const std::lock_guard l(m);
    held = true;
  }
  void allow(int n = 1) {
    const std::lock_guard l(m);
    allowed += n;
    cv.notify_all();
  }
  void release() {
    const std::lock_guard l(m);
    held = false;
    cv.notify_all();
  }
  void set_fail() {
    const std::lock_guard l(m);
    fail = true;
  }
  // Until `n` durable writes have begun (the flusher waits in the n-th).
  void wait_entered(int n) {
    std::unique_lock l(m);
    REQUIRE(cv.wait_for(l, 10s, [&] { return entered >= n; }));
  }
  int frames() {
    const std::lock_guard l(m);
    return passed;
  }
};

class GatedFile : public File {
 public:
  GatedFile(std::unique_ptr<File> inner, Gate& gate) : inner_(std::move(inner)), gate_(gate) {}
  Status read_at(uint64_t offset, char* buf, size_t n) override {
    return inner_->read_at(offset, buf, n);
  }
  Status write_at(uint64_t offset, std::string_view data) override {
    return inner_->write_at(offset, data);
  }
  Status sync() override { return inner_->sync(); }
  Result<uint64_t> size() override { return inner_->size(); }
  Status truncate(uint64_t size) override { return inner_->truncate(size); }
  const std::string& path() const override { return inner_->path(); }
  Status write_durably(uint64_t offset, std::string_view data) override {
    {
      std::unique_lock l(gate_.m);
      ++gate_.entered;
      gate_.cv.notify_all();
      gate_.cv.wait(l, [&] { return !gate_.held || gate_.allowed > 0; });
      if (gate_.held) --gate_.allowed;
      if (gate_.fail) return Status::IoError(path() + ": injected write failure");
    }
    Status s = inner_->write_durably(offset, data);
    const std::lock_guard l(gate_.m);
    ++gate_.passed;
    gate_.cv.notify_all();
    return s;
  }

 private:
  std::unique_ptr<File> inner_;
  Gate& gate_;
};

// The one table of these tests: a name and a number, unique by name.
const TableId kT{0};

std::vector<TableSpec> specs() {
  static const Schema kv = must(Schema::make(
      "kv", {{"name", FieldKind::kText, 12, {}}, {"value", FieldKind::kDecimal, 10, {}}}, 64));
  std::vector<TableSpec> s;
  s.push_back(
      {"kv.tab", &kv, {Index("name", true, [](const Values& v, std::vector<std::string>& out) {
         out.push_back(KeyBuilder().text(std::get<std::string>(v[0])));
       })}});
  return s;
}

std::unique_ptr<Database> open_kv(const std::string& dir, uint64_t checkpoint_bytes = 4 << 20) {
  return must(Database::open(dir, specs(), checkpoint_bytes));
}

std::unique_ptr<Database> open_gated(const std::string& dir, Gate& gate,
                                     uint64_t checkpoint_bytes = 4 << 20) {
  return must(Database::open(
      dir, specs(), checkpoint_bytes,
      [&gate](const std::string& path, bool create) -> Result<std::unique_ptr<File>> {
        auto f = open_posix_file(path, create);
        if (!f.ok()) return f.status();
        return std::unique_ptr<File>(new GatedFile(std::move(*f), gate));
      }));
}

// The on_durable calls of a test: each submit's result by its number.
struct Acks {
  std::mutex m;
  std::condition_variable cv;
  std::vector<int> order;  // submit numbers, in call order
  std::map<int, Status> results;
  int calls = 0;

  Database::OnDurable on(int n) {
    return [this, n](Status s) {
      const std::lock_guard l(m);
      order.push_back(n);
      results[n] = std::move(s);
      ++calls;
      cv.notify_all();
    };
  }
  void wait_calls(int n) {
    std::unique_lock l(m);
    REQUIRE(cv.wait_for(l, 10s, [&] { return calls >= n; }));
  }
  int count() {
    const std::lock_guard l(m);
    return calls;
  }
};

Transaction insert_counter(const std::string& name, uint64_t value) {
  Transaction txn;
  txn.insert(kT, {name, value});
  return txn;
}

std::string key(const std::string& name) { return KeyBuilder().text(name); }

Result<uint64_t> value_of(Database& db, const std::string& name) {
  auto found = db.lookup(kT, "name", key(name));
  if (!found.ok()) return found.status();
  return std::get<uint64_t>(found->second[1]);
}

// The folder as a crash would leave it now: the database stays open, nothing is closed.
std::string snapshot(const TempDir& from, const TempDir& to) {
  std::filesystem::copy(from.path(), to.path() + "/db", std::filesystem::copy_options::recursive);
  return to.path() + "/db";
}

}  // namespace

TEST_CASE("submit applies at once, in submit order, and reads see it before it is durable") {
  auto dir = must(TempDir::create());
  Gate gate;
  auto db = open_gated(dir.path(), gate);
  Acks acks;
  gate.hold();
  const uint64_t slot = must(db->submit(insert_counter("serial", 1), acks.on(0)))[0];
  for (uint64_t i = 2; i <= 20; ++i) {
    Transaction txn;
    txn.update(kT, slot, {std::string("serial"), i});
    must(db->submit(txn, acks.on(static_cast<int>(i - 1))));
    CHECK(must(value_of(*db, "serial")) == i);  // its own change, at once
    CHECK(must(db->read(kT, slot))[1] == Value(i));
  }
  gate.wait_entered(1);
  CHECK(acks.count() == 0);  // nothing is durable yet
  gate.release();
  acks.wait_calls(20);
  std::vector<int> want;
  for (int i = 0; i < 20; ++i) want.push_back(i);
  CHECK(acks.order == want);  // once each, in submit order
  for (auto& [n, s] : acks.results) CHECK(s.ok());
  db.reset();
  CHECK(acks.calls == 20);
  db = open_kv(dir.path());
  CHECK(must(value_of(*db, "serial")) == 20);
}

TEST_CASE("submits made during a frame's write go together in the next frame, newest image kept") {
  auto dir = must(TempDir::create());
  auto crash = must(TempDir::create());
  Gate gate;
  auto db = open_gated(dir.path(), gate);
  Acks acks;
  gate.hold();
  const uint64_t x = must(db->submit(insert_counter("x", 1), acks.on(0)))[0];
  gate.wait_entered(1);  // frame 1 (x = 1) is being written; the next submits wait for it
  for (uint64_t v = 2; v <= 3; ++v) {
    Transaction txn;
    txn.update(kT, x, {std::string("x"), v});
    must(db->submit(txn, acks.on(static_cast<int>(v - 1))));
  }
  for (int i = 0; i < 50; ++i) {
    must(db->submit(insert_counter(fmt::format("c{}", i), i), acks.on(3 + i)));
  }
  CHECK(db->live_count(kT) == 51);
  CHECK(acks.count() == 0);

  gate.allow(1);  // frame 1 is durable and written into the table; frame 2 waits
  acks.wait_calls(1);
  gate.wait_entered(2);
  CHECK(acks.count() == 1);
  CHECK(acks.results[0].ok());
  // The table file now holds x = 1; memory keeps the newest image.
  CHECK(must(value_of(*db, "x")) == 3);
  CHECK(must(value_of(*db, "c49")) == 49);
  {
    // A crash now: only frame 1 is durable.
    auto copy = open_kv(snapshot(dir, crash));
    CHECK(must(value_of(*copy, "x")) == 1);
    CHECK(copy->live_count(kT) == 1);
  }

  gate.release();
  acks.wait_calls(53);
  CHECK(gate.frames() == 2);  // the 52 submits made meanwhile shared one frame
  for (auto& [n, s] : acks.results) CHECK(s.ok());
  must(db->verify());
  db.reset();
  db = open_kv(dir.path());
  CHECK(must(value_of(*db, "x")) == 3);
  CHECK(db->live_count(kT) == 51);
  must(db->verify());
}

TEST_CASE("a refused submit applies nothing and never calls on_durable") {
  auto dir = must(TempDir::create());
  Gate gate;
  auto db = open_gated(dir.path(), gate);
  Acks acks;
  must(db->commit(insert_counter("a", 1)));
  Transaction dup;
  dup.insert(kT, {std::string("b"), uint64_t{2}});
  dup.insert(kT, {std::string("a"), uint64_t{3}});  // a second "a"
  CHECK(db->submit(dup, acks.on(0)).status().code() == Code::kAlreadyExists);
  Transaction missing;
  missing.update(kT, 77, {std::string("z"), uint64_t{1}});
  CHECK(db->submit(missing, acks.on(1)).status().code() == Code::kNotFound);
  CHECK(value_of(*db, "b").status().code() == Code::kNotFound);
  CHECK(db->live_count(kT) == 1);
  must(db->submit(insert_counter("c", 4), acks.on(2)));
  acks.wait_calls(1);
  db.reset();  // every on_durable has been called by now
  CHECK(acks.order == std::vector<int>{2});
  db = open_kv(dir.path());
  CHECK(db->live_count(kT) == 2);
  CHECK(value_of(*db, "b").status().code() == Code::kNotFound);
  must(db->verify());
}

TEST_CASE("a failed journal write fails every waiting submit and every later one") {
  auto dir = must(TempDir::create());
  Gate gate;
  auto db = open_gated(dir.path(), gate);
  Acks acks;
  const uint64_t durable = must(db->commit(insert_counter("z", 26)))[0];
  gate.hold();
  const uint64_t a = must(db->submit(insert_counter("a", 1), acks.on(0)))[0];
  gate.wait_entered(1);
  must(db->submit(insert_counter("b", 2), acks.on(1)));  // waits for the next frame
  must(db->submit(insert_counter("c", 3), acks.on(2)));
  gate.set_fail();
  gate.release();
  acks.wait_calls(3);
  CHECK(acks.order == std::vector<int>{0, 1, 2});
  CHECK(acks.results[0].code() == Code::kIoError);
  CHECK_THAT(acks.results[0].message(), Catch::Contains("injected write failure"));
  CHECK_FALSE(acks.results[1].ok());
  CHECK_FALSE(acks.results[2].ok());
  CHECK_THAT(acks.results[2].message(), Catch::Contains("injected write failure"));
  // From now on everything is refused, at once, with no on_durable.
  CHECK(db->submit(insert_counter("d", 4), acks.on(3)).status().code() == Code::kIoError);
  CHECK(db->commit(insert_counter("e", 5)).status().code() == Code::kIoError);
  // Reads go on, from what is durable: what a restart would find, and nothing else.
  CHECK(must(value_of(*db, "z")) == 26);
  CHECK(must(db->read(kT, durable))[1] == Value(uint64_t{26}));
  for (const char* gone : {"a", "b", "c"}) {
    CHECK(value_of(*db, gone).status().code() == Code::kNotFound);
  }
  CHECK(db->read(kT, a).status().code() == Code::kNotFound);
  CHECK(db->live_count(kT) == 1);
  CHECK(db->verify().ok());
  db.reset();
  CHECK(acks.calls == 3);
  auto again = open_kv(dir.path());
  CHECK(again->live_count(kT) == 1);
  CHECK(must(value_of(*again, "z")) == 26);
}

TEST_CASE("many submits from one thread, a crash, and every acknowledged one is replayed") {
  auto dir = must(TempDir::create());
  auto crash = must(TempDir::create());
  // A small journal: checkpoints happen while submits go on.
  auto db = open_kv(dir.path(), 16 << 10);
  std::mutex m;
  std::condition_variable cv;
  int in_flight = 0, durable = 0, failed = 0;
  const int kSubmits = 3000;
  const uint64_t serial = must(db->commit(insert_counter("serial", 0)))[0];
  for (int i = 1; i <= kSubmits; ++i) {
    {
      std::unique_lock l(m);
      cv.wait(l, [&] { return in_flight < 64; });
      ++in_flight;
    }
    Transaction txn;
    txn.update(kT, serial, {std::string("serial"), uint64_t(i)});
    txn.insert(kT, {fmt::format("k{}", i), uint64_t(i)});
    must(db->submit(txn, [&](Status s) {
      const std::lock_guard l(m);
      --in_flight;
      ++durable;
      if (!s.ok()) ++failed;
      cv.notify_all();
    }));
  }
  {
    std::unique_lock l(m);
    cv.wait(l, [&] { return durable == kSubmits; });
  }
  CHECK(failed == 0);
  auto copy = open_kv(snapshot(dir, crash));
  CHECK(must(value_of(*copy, "serial")) == kSubmits);
  CHECK(copy->live_count(kT) == kSubmits + 1);
  CHECK(must(value_of(*copy, fmt::format("k{}", kSubmits))) == kSubmits);
  must(copy->verify());
}

TEST_CASE("~Database waits for the submits in flight: each is durable and acknowledged") {
  auto dir = must(TempDir::create());
  Gate gate;
  auto db = open_gated(dir.path(), gate);
  Acks acks;
  gate.hold();
  for (int i = 0; i < 10; ++i)
    must(db->submit(insert_counter(fmt::format("s{}", i), i), acks.on(i)));
  gate.wait_entered(1);
  std::thread opener([&] {
    std::this_thread::sleep_for(100ms);
    gate.release();
  });
  db.reset();  // returns once the frames are written and every on_durable has returned
  CHECK(acks.calls == 10);
  opener.join();
  for (auto& [n, s] : acks.results) CHECK(s.ok());
  db = open_kv(dir.path());
  CHECK(db->live_count(kT) == 10);
}

TEST_CASE("on_durable may read and submit, but commit() from it is refused") {
  auto dir = must(TempDir::create());
  auto db = open_kv(dir.path());
  Acks acks;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  Status committed;
  uint64_t seen = 0;
  must(db->submit(insert_counter("a", 1), [&](Status s) {
    REQUIRE(s.ok());
    seen = must(value_of(*db, "a"));
    committed = db->commit(insert_counter("b", 2)).status();
    must(db->submit(insert_counter("c", 3), acks.on(0)));
    const std::lock_guard l(m);
    done = true;
    cv.notify_all();
  }));
  {
    std::unique_lock l(m);
    REQUIRE(cv.wait_for(l, 10s, [&] { return done; }));
  }
  acks.wait_calls(1);
  CHECK(seen == 1);
  CHECK(committed.code() == Code::kInternal);
  CHECK(acks.results[0].ok());
  CHECK(value_of(*db, "b").status().code() == Code::kNotFound);
  CHECK(must(value_of(*db, "c")) == 3);
}

TEST_CASE("commits from threads and submits from another share frames and all land in order") {
  auto dir = must(TempDir::create());
  auto db = open_kv(dir.path(), 64 << 10);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if (!db->commit(insert_counter(fmt::format("t{}-{}", t, i), i)).ok()) ++failures;
      }
    });
  }
  Acks acks;
  const uint64_t serial = must(db->commit(insert_counter("serial", 0)))[0];
  for (int i = 1; i <= 500; ++i) {
    Transaction txn;
    txn.update(kT, serial, {std::string("serial"), uint64_t(i)});
    must(db->submit(txn, acks.on(i)));
    CHECK(must(value_of(*db, "serial")) == uint64_t(i));  // never goes back
  }
  for (auto& th : threads) th.join();
  acks.wait_calls(500);
  CHECK(failures == 0);
  std::vector<int> want;
  for (int i = 1; i <= 500; ++i) want.push_back(i);
  CHECK(acks.order == want);
  for (auto& [n, s] : acks.results) CHECK(s.ok());
  must(db->verify());
  db.reset();
  db = open_kv(dir.path());
  CHECK(db->live_count(kT) == 801);
  CHECK(must(value_of(*db, "serial")) == 500);
  must(db->verify());
}

namespace {
// A database whose journal's durable writes wait at `gate`, and a committer whose follow-ups wait
// for the test to run `loop`.
struct LoopFixture {
  TempDir dir = must(TempDir::create());
  Gate gate;
  std::unique_ptr<Database> db = open_gated(dir.path(), gate);
  vvm::test::HandLoop loop;
  Committer commits{db.get()};
  LoopFixture() { commits.run_on(loop.post()); }
};
}  // namespace

TEST_CASE("Committer with a loop: applied at once, the follow-up on the loop once durable") {
  LoopFixture f;
  auto [gate, db, loop, commits] = std::tie(f.gate, f.db, f.loop, f.commits);
  gate.hold();

  std::vector<Result<std::vector<uint64_t>>> answers;
  std::thread::id answered_on;
  commits.commit(insert_counter("a", 1), [&](Result<std::vector<uint64_t>> r) {
    answered_on = std::this_thread::get_id();
    answers.push_back(std::move(r));
  });
  // The commit returned while its frame waits at the gate: the caller did not wait for it.
  CHECK(must(value_of(*db, "a")) == 1);
  gate.wait_entered(1);
  CHECK(answers.empty());
  CHECK(loop.pending() == 0);  // not durable: nothing posted yet

  // A refusal (the unique name again) answers at once, in the caller.
  std::optional<Status> refused;
  commits.commit(insert_counter("a", 2), [&](auto r) { refused = r.status(); });
  REQUIRE(refused);
  CHECK(refused->code() == Code::kAlreadyExists);

  gate.release();
  loop.run(1);
  REQUIRE(answers.size() == 1);
  CHECK(answered_on == std::this_thread::get_id());  // on the loop, not the flusher
  REQUIRE(answers[0].ok());
  CHECK(answers[0]->size() == 1);  // the insert's slot
  CHECK(must(db->read(kT, answers[0]->at(0)))[1] == Value(uint64_t{1}));
  // And a synchronous answer is refused where the loop would have to give it.
  CHECK(commits.answer_now<int>("test", [](auto) {}).status().code() == Code::kInternal);
}

TEST_CASE("Committer with a loop: a journal that fails answers the follow-up with its error") {
  LoopFixture f;
  auto [gate, loop, commits] = std::tie(f.gate, f.loop, f.commits);
  gate.set_fail();
  std::optional<Status> answer;
  commits.commit(insert_counter("b", 1), [&](auto r) { answer = r.status(); });
  loop.run(1);
  REQUIRE(answer);
  CHECK(answer->code() == Code::kIoError);
  // apply() reports a refusal of the now unusable database at once.
  CHECK(commits.apply(insert_counter("c", 1), "test").code() == Code::kIoError);
}

TEST_CASE("Committer without a loop: commit waits and answers before it returns") {
  auto dir = must(TempDir::create());
  auto db = open_kv(dir.path());
  Committer commits(db.get());
  bool answered = false;
  commits.commit(insert_counter("d", 7), [&](auto r) {
    answered = true;
    CHECK(r.ok());
  });
  CHECK(answered);
  auto seven = commits.answer_now<uint64_t>("value", [&](auto done) { done(value_of(*db, "d")); });
  CHECK(must(seven) == 7);
  // apply() does not wait, and what it applied is read at once and durable by the close.
  must(commits.apply(insert_counter("e", 9), "test"));
  CHECK(must(value_of(*db, "e")) == 9);
  db.reset();
  auto again = open_kv(dir.path());
  CHECK(must(value_of(*again, "e")) == 9);
}
