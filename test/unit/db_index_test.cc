// db_index_test.cc: order-preserving keys, the B-tree index, the VV and VSN schemas with their
// seven indexes, and IndexedTable keeping indexes equal to a full scan through every change,
// refusals and reopening, including a random workload checked against a model, and a reload
// with journaled images put over the file in memory.
#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <map>
#include <random>

#include <fmt/core.h>

#include "catalog/records.h"
#include "db/indexed_table.h"
#include "process.h"

using namespace vvm;
using namespace vvm::db;
using namespace vvm::vvmd;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

Vv make_vv(uint64_t serial, std::string vv_class = "A", uint64_t client = 7) {
  Vv r;
  r.name = fmt::format("{}{:010d}", vv_class, serial);
  r.vv_class = vv_class;
  r.serial = serial;
  r.client_id = client;
  r.owner = "alice";
  r.group = "staff";
  r.size = serial * 1024;
  r.created = r.accessed = 0x65f0a1b2c;
  return r;
}

std::vector<std::string> names_in(const Index& idx, const std::string& prefix, IndexedTable& t) {
  std::vector<std::string> out;
  idx.scan_prefix(prefix, [&](const std::string&, uint64_t slot) {
    out.push_back(must(vv_from_values(must(t.read(slot)))).name);
    return true;
  });
  return out;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("keys sort as their tuples do") {
  auto k = [](auto... parts) {
    KeyBuilder b;
    (
        [&](auto p) {
          if constexpr (std::is_integral_v<decltype(p)>) {
            b.number(static_cast<uint64_t>(p));
          } else {
            b.text(p);
          }
        }(parts),
        ...);
    return b.key();
  };
  CHECK(k("ab") < k("abc"));
  CHECK(k("abc") < k("b"));
  CHECK(k(2) < k(10));
  CHECK(k(10) < k(uint64_t{1} << 40));
  CHECK(k("A", 5) < k("A", 10));
  CHECK(k("A", 10) < k("B", 1));
  CHECK(k("A", 99) < k("AB", 0));  // the text ends before the number starts
  CHECK(describe_key(k("A", 42, "L00001")) == "A/42/L00001");
}

TEST_CASE("an index: unique checks, erase of one slot, prefix and range scans") {
  Index idx("t", true, [](const Values&, std::vector<std::string>&) {});
  idx.insert(KeyBuilder().text("a"), 1);
  CHECK(idx.check(KeyBuilder().text("a"), 1).ok());  // its own record
  Status dup = idx.check(KeyBuilder().text("a"), 2);
  CHECK(dup.code() == Code::kAlreadyExists);
  CHECK(dup.message() == "index t: key 'a' is already record 1's");
  Index multi("m", false, [](const Values&, std::vector<std::string>&) {});
  for (uint64_t i = 1; i <= 5; ++i) multi.insert(KeyBuilder().text("x").number(i % 3), i);
  multi.erase(KeyBuilder().text("x").number(1), 4);  // only slot 4's entry
  std::vector<uint64_t> slots;
  multi.scan_prefix(KeyBuilder().text("x"), [&](const std::string&, uint64_t s) {
    slots.push_back(s);
    return true;
  });
  CHECK(slots.size() == 4);
  slots.clear();
  multi.scan_range(KeyBuilder().text("x").number(1), KeyBuilder().text("x").number(2),
                   [&](const std::string&, uint64_t s) {
                     slots.push_back(s);
                     return true;
                   });
  CHECK(slots == std::vector<uint64_t>{1});
}

TEST_CASE("VV and VSN records round-trip through their schemas") {
  Vv vv = make_vv(42);
  vv.state = VvState::kArchived;
  vv.checksum = 0xfedcba9876543210ull;
  vv.copies[0] = {"L00001", 17};
  vv.copies[1] = {"M00002", 3};
  std::string rec = must(vv_schema().encode(kLive, vv_values(vv)));
  CHECK(rec.size() == 256);
  CHECK(rec.substr(11, 12) == "A0000000042 ");
  CHECK(must(vv_from_values(must(vv_schema().decode(rec, "w")))) == vv);

  Vsn vsn{"L00001",          "LTO9", "A",        VsnState::kHot, "slot:42", 18, 1u << 30,
          18000000000000ull, 0,      0x65f0a1b2c};
  std::string vrec = must(vsn_schema().encode(kLive, vsn_values(vsn)));
  CHECK(vrec.size() == 128);
  CHECK(must(vsn_from_values(must(vsn_schema().decode(vrec, "w")))) == vsn);
}

// The sinks parse the state words themselves (catalog/records.cc): every state of every type
// comes back as it went in, written with common/vv.cc's words.
TEST_CASE("every VV, cache and VSN state round-trips through its record") {
  for (VvState state : {VvState::kHot, VvState::kFinished, VvState::kArchived}) {
    for (CacheState cache : {CacheState::kCached, CacheState::kEvicted, CacheState::kStaging}) {
      Vv vv = make_vv(1);
      vv.state = state;
      vv.cache = cache;
      vv.perms = 07777;
      const std::string rec = must(vv_schema().encode(kLive, vv_values(vv)));
      Vv back;
      VvSink sink(&back);
      REQUIRE(vv_schema().decode_to(rec, "w", 1, sink).ok());
      CHECK(back == vv);
      CHECK(must(vv_from_values(vv_values(vv))) == vv);
    }
  }
  for (VsnState state : {VsnState::kBlank, VsnState::kHot, VsnState::kFull, VsnState::kRetired}) {
    Vsn vsn{"L00001", "LTO9", "A", state, "slot", 1, 0, 100, 0, 0};
    const std::string rec = must(vsn_schema().encode(kLive, vsn_values(vsn)));
    Vsn back;
    VsnSink sink(&back);
    REQUIRE(vsn_schema().decode_to(rec, "w", 1, sink).ok());
    CHECK(back == vsn);
  }
  // A word the type does not know fails the decode, naming the field.
  Values v = vv_values(make_vv(1));
  v[static_cast<size_t>(vv_schema().index_of("state"))] = std::string("frozen");
  const std::string rec = must(vv_schema().encode(kLive, v));
  Vv back;
  VvSink sink(&back);
  CHECK_THAT(vv_schema().decode_to(rec, "vv.tab", 1, sink).message(),
             Catch::Contains("field 'state': 'frozen' is not a value this field takes"));
  CHECK_THAT(vv_from_values(v).status().message(), Catch::Contains("vv.state: 'frozen'"));
}

TEST_CASE("the seven indexes follow every change, and unique keys are never doubled") {
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vv.tab");
  IndexedTable t = must(IndexedTable::create(path, vv_schema(), vv_indexes()));
  uint64_t a1 = must(t.insert(vv_values(make_vv(1, "A", 7))));
  must(t.insert(vv_values(make_vv(2, "A", 8))));
  must(t.insert(vv_values(make_vv(3, "B", 7))));

  CHECK(must(t.lookup("name", KeyBuilder().text("A0000000002"))).first == 2);
  CHECK(t.lookup("name", KeyBuilder().text("Z0000000009")).status().code() == Code::kNotFound);
  CHECK(names_in(*t.index("hot"), KeyBuilder().text("A"), t) ==
        std::vector<std::string>{"A0000000001", "A0000000002"});
  CHECK(names_in(*t.index("hot"), KeyBuilder().text("A").number(8), t) ==
        std::vector<std::string>{"A0000000002"});
  CHECK(names_in(*t.index("id"), KeyBuilder().number(7), t).size() == 2);

  // Finish A1: out of "hot", into "unwritten". Then two copies: "vsn" in file order.
  Vv r = make_vv(1, "A", 7);
  r.state = VvState::kFinished;
  must(t.update(a1, vv_values(r)));
  CHECK(names_in(*t.index("hot"), KeyBuilder().text("A"), t).size() == 1);
  CHECK(t.index("unwritten")->find(KeyBuilder().text("A0000000001")) == a1);
  r.state = VvState::kArchived;
  r.copies[0] = {"L00001", 5};
  r.copies[1] = {"M00002", 1};
  must(t.update(a1, vv_values(r)));
  CHECK(t.index("unwritten")->size() == 0);
  Vv other = make_vv(2, "A", 8);
  other.state = VvState::kArchived;
  other.copies[0] = {"L00001", 2};
  must(t.update(2, vv_values(other)));
  CHECK(names_in(*t.index("vsn"), KeyBuilder().text("L00001"), t) ==
        std::vector<std::string>{"A0000000002", "A0000000001"});  // file 2, then file 5
  must(t.verify());

  // A second A0000000002 is refused, by insert or by update, and nothing is written.
  uint64_t before = t.live_count();
  auto dup = t.insert(vv_values(make_vv(2, "A", 9)));
  CHECK(dup.status().code() == Code::kAlreadyExists);
  CHECK_THAT(dup.status().message(), Catch::Contains("index name: key 'A0000000002'"));
  CHECK(t.live_count() == before);
  Vv renamed = make_vv(3, "B", 7);
  renamed.name = "A0000000002";
  CHECK(t.update(3, vv_values(renamed)).code() == Code::kAlreadyExists);
  CHECK(must(vv_from_values(must(t.read(3)))).name == "B0000000003");  // unchanged
  must(t.verify());

  must(t.erase(a1));
  CHECK(t.index("vsn")->size() == 1);
  must(t.verify());
  must(t.sync());

  // Reopened, the indexes are rebuilt to the same state.
  IndexedTable again = must(IndexedTable::open(path, vv_schema(), vv_indexes()));
  CHECK(again.live_count() == 2);
  CHECK(again.index("vsn")->size() == 1);
  CHECK(again.index("hot")->size() == 1);  // B0000000003
  must(again.verify());
}

TEST_CASE("a table holding one unique key twice is refused on open, naming the records") {
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vsn.tab");
  {
    // Written through the bare table, as only a bug or a hand edit could.
    Table raw = must(Table::create(path, vsn_schema()));
    Vsn v{"L00001", "LTO9", "A", VsnState::kHot, "slot:1", 1, 0, 100, 0, 0};
    must(raw.insert(vsn_values(v)));
    v.location = "slot:2";
    must(raw.insert(vsn_values(v)));
    must(raw.sync());
  }
  auto r = IndexedTable::open(path, vsn_schema(), vsn_indexes());
  CHECK(r.status().code() == Code::kAlreadyExists);
  CHECK_THAT(r.status().message(),
             Catch::Contains("vsn.tab: index name: key 'L00001' is held by records 1 and 2"));
}

TEST_CASE("a random workload keeps every index equal to a full scan and to a model") {
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vv.tab");
  IndexedTable t = must(IndexedTable::create(path, vv_schema(), vv_indexes()));
  std::mt19937_64 rng(12345);
  std::map<uint64_t, Vv> model;  // slot -> record
  const VvState states[] = {VvState::kHot, VvState::kFinished, VvState::kArchived};
  for (int step = 0; step < 3000; ++step) {
    int op = static_cast<int>(rng() % 10);
    if (model.empty() || op < 4) {
      Vv r = make_vv(rng() % 500, rng() % 2 ? "A" : "B", rng() % 20);
      auto slot = t.insert(vv_values(r));
      bool taken = false;
      for (auto& [s, m] : model) taken |= m.name == r.name;
      CHECK(slot.ok() == !taken);
      if (slot.ok()) model[*slot] = r;
    } else {
      auto it = std::next(model.begin(), static_cast<long>(rng() % model.size()));
      if (op < 8) {
        Vv r = it->second;
        r.state = states[rng() % 3];
        r.client_id = rng() % 20;
        std::string vsn = rng() % 3 ? fmt::format("L{:05d}", rng() % 9) : std::string();
        r.copies[rng() % kMaxVvCopies] = VvCopy{vsn, rng() % 100};
        must(t.update(it->first, vv_values(r)));
        it->second = r;
      } else {
        must(t.erase(it->first));
        model.erase(it);
      }
    }
    if (step % 500 == 0) must(t.verify());
  }
  must(t.verify());
  must(t.sync());
  IndexedTable again = must(IndexedTable::open(path, vv_schema(), vv_indexes()));
  must(again.verify());
  CHECK(again.live_count() == model.size());
  for (const auto& [slot, r] : model) {
    CHECK(must(vv_from_values(must(again.read(slot)))) == r);
  }
}

TEST_CASE("a table of many MiB opens with several workers to the indexes one would build") {
  // 20,000 records of 256 bytes: 5 MiB, cut into parts that workers decode at once.
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vv.tab");
  std::map<uint64_t, Vv> model;
  {
    Table raw = must(Table::create(path, vv_schema()));
    for (uint64_t i = 0; i < 20000; ++i) {
      Vv r = make_vv(i, i % 2 ? "A" : "B", i % 97);
      if (i % 3 == 0) r.state = VvState::kFinished;
      if (i % 5 == 0) r.copies[0] = {fmt::format("L{:05d}", i % 11), i};
      uint64_t slot = must(raw.insert(vv_values(r)));
      model[slot] = r;
    }
    for (uint64_t slot = 7; slot < 20000; slot += 1000) {  // free slots in every part
      must(raw.erase(slot));
      model.erase(slot);
    }
    must(raw.sync());
  }
  // Opened again and again: the workers start together, and a race between them at the start
  // (it once made them map the file twice and read an unmapped range) shows up as a crash.
  for (int again = 0; again < 30; ++again) {
    IndexedTable t = must(IndexedTable::open(path, vv_schema(), vv_indexes()));
    REQUIRE(t.live_count() == model.size());
  }
  IndexedTable t = must(IndexedTable::open(path, vv_schema(), vv_indexes()));
  CHECK(t.live_count() == model.size());
  must(t.verify());
  // The indexes hold exactly the model's keys: built from both halves, none twice.
  CHECK(t.index("name")->size() == model.size());
  size_t finished = 0, copies = 0;
  for (const auto& [slot, r] : model) {
    finished += r.state == VvState::kFinished;
    copies += !r.copies[0].vsn.empty();
    auto found = must(t.lookup("name", KeyBuilder().text(r.name)));
    REQUIRE(found.first == slot);
  }
  CHECK(t.index("unwritten")->size() == finished);
  CHECK(t.index("vsn")->size() == copies);
  CHECK(t.index("hot")->size() == model.size() - finished);
  // Freed slots are reused lowest first, wherever the worker that found them was.
  CHECK(must(t.insert(vv_values(make_vv(99999)))) == 7);
}

TEST_CASE("with several workers, the first bad record in slot order is the one named") {
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vv.tab");
  {
    Table raw = must(Table::create(path, vv_schema()));
    for (uint64_t i = 0; i < 20000; ++i) must(raw.insert(vv_values(make_vv(i))));
    must(raw.sync());
  }
  // Damage a record in the last part, then one in the first: the first one is reported.
  auto damage = [&](uint64_t slot) {
    FILE* f = std::fopen(path.c_str(), "r+b");
    REQUIRE(f);
    std::fseek(f, static_cast<long>(slot * 256 + 40), SEEK_SET);
    std::fputs("XXXX", f);
    std::fclose(f);
  };
  damage(19000);
  auto late = IndexedTable::open(path, vv_schema(), vv_indexes());
  CHECK_THAT(late.status().message(), Catch::Contains("vv.tab: record 19000: checksum"));
  damage(3);
  auto early = IndexedTable::open(path, vv_schema(), vv_indexes());
  CHECK_THAT(early.status().message(), Catch::Contains("vv.tab: record 3: checksum"));
}

TEST_CASE("key ranges: every text key, a text prefix, a number, past a text") {
  using vvm::db::KeyBuilder;
  auto in = [](const vvm::db::KeyRange& r, const std::string& k) { return r.lo <= k && k < r.hi; };
  const auto all = vvm::db::every_text_key();
  CHECK(in(all, KeyBuilder().text("")));
  CHECK(in(all, KeyBuilder().text("\xff\xff").number(UINT64_MAX)));
  CHECK_FALSE(in(all, KeyBuilder().number(0)));

  const auto a = vvm::db::text_prefix("A");
  CHECK(in(a, KeyBuilder().text("A")));
  CHECK(in(a, KeyBuilder().text("A0000000042")));
  CHECK_FALSE(in(a, KeyBuilder().text("B0000000001")));
  CHECK_FALSE(in(a, KeyBuilder().text("")));
  CHECK(vvm::db::text_prefix("").lo == all.lo);

  for (uint64_t n : {uint64_t{0}, uint64_t{7}, UINT64_MAX}) {
    const auto r = vvm::db::number_prefix(n);
    CHECK(in(r, KeyBuilder().number(n)));
    CHECK(in(r, KeyBuilder().number(n).text("x")));
    if (n > 0) CHECK_FALSE(in(r, KeyBuilder().number(n - 1)));
    if (n < UINT64_MAX) CHECK_FALSE(in(r, KeyBuilder().number(n + 1)));
  }

  const std::string past = vvm::db::past_text("A1");
  CHECK(KeyBuilder().text("A1").key() < past);
  CHECK(past < KeyBuilder().text("A10").key());
  CHECK(past < KeyBuilder().text("A2").key());
}

TEST_CASE("reload with journaled images reads the file with them over it, and leaves it alone") {
  // What the database does when a table write fails after its journal frame is durable: reads
  // must see what a restart's replay will write, while the file itself is not written.
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vv.tab");
  IndexedTable t = must(IndexedTable::create(path, vv_schema(), vv_indexes()));
  const uint64_t a1 = must(t.insert(vv_values(make_vv(1))));
  must(t.insert(vv_values(make_vv(2))));
  must(t.sync());
  const auto before = file_bytes(path);

  Vv finished = make_vv(1);
  finished.state = VvState::kFinished;
  const uint64_t size = vv_schema().record_size();
  std::vector<Table::Image> journaled = {
      {a1, must(vv_schema().encode(kLive, vv_values(finished)))},
      {3, must(vv_schema().encode(kLive, vv_values(make_vv(3))))},  // a new slot at the end
  };
  must(t.reload(journaled));
  CHECK(t.live_count() == 3);
  CHECK(must(vv_from_values(must(t.read(a1)))).state == VvState::kFinished);
  CHECK(must(t.lookup("name", KeyBuilder().text("A0000000003"))).first == 3);
  CHECK(t.index("unwritten")->find(KeyBuilder().text("A0000000001")) == a1);
  must(t.verify());
  CHECK(file_bytes(path) == before);
  CHECK(before.size() == 3 * size);  // header and two records: slot 3 is in memory only

  // Without images, the file as it is.
  must(t.reload());
  CHECK(t.live_count() == 2);
  CHECK(must(vv_from_values(must(t.read(a1)))).state == VvState::kHot);
}
