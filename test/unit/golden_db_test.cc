// golden_db_test.cc: a database written by an earlier vvmd (test/data/db-v1, see its README)
// opens with this one, and every record reads back field for field. A failure here means that a
// vvmd built from this tree could not take over the database of one already installed. Never
// regenerate test/data/db-v1 to make this test pass: it is the old database.
//
// The hidden test case "golden db: generate" wrote it (with the code of the commit that added
// it):
//   VVM_GOLDEN_DB_OUT=/tmp/db-v1 build/dev/test/unit_golden_db '[.generate]'
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "db/database.h"
#include "db/schemas.h"
#include "process.h"

using namespace vvm;
using namespace vvm::db;
using vvm::test::must;
using vvm::test::TempDir;

namespace fs = std::filesystem;

namespace {

// --- what test/data/db-v1 holds ---

VsnRecord vsn_hot() {
  return {"L00001", "LTO9", "A", "hot", "slot:1", 3, 3221229568, 18000000000000, 0, 0x65b0c000};
}
VsnRecord vsn_full() {
  return {"M00001",       "LTO8",         "A", "full",    "slot:2", 2,
          12000000000000, 12000000000000, 1,   0x65b0c100};
}

VvRecord vv(uint64_t serial) {
  VvRecord r;
  r.name = "A000000000" + std::to_string(serial);
  r.vv_class = "A";
  r.serial = serial;
  r.client_id = 100 + serial;
  r.owner = "alice";
  r.group = "staff";
  r.perms = "0640";
  return r;
}

// Hot: written to, in the cache, no copy yet.
VvRecord vv_hot() {
  VvRecord r = vv(1);
  r.size = 1073741824;
  r.state = "hot";
  r.cache = "cached";
  r.created = 0x65b00001;
  r.accessed = 0x65b00301;
  return r;
}

// Finished, its first copy written (on the class's first media type), not yet the second.
VvRecord vv_finished() {
  VvRecord r = vv(2);
  r.size = 2147483648;
  r.state = "finished";
  r.cache = "cached";
  r.created = 0x65b00002;
  r.finished = 0x65b00102;
  r.accessed = 0x65b00202;
  r.checksum = 0x1111222233334444;
  r.copies[0] = {"L00001", 1};
  return r;
}

// Archived on both media types, then evicted from the cache.
VvRecord vv_archived() {
  VvRecord r = vv(3);
  r.owner = "bob";
  r.group = "wheel";
  r.perms = "0600";
  r.size = 4096;
  r.state = "archived";
  r.cache = "evicted";
  r.created = 0x65b00003;
  r.finished = 0x65b00103;
  r.accessed = 0x65b00203;
  r.checksum = 0x5555666677778888;
  r.copies[0] = {"L00001", 2};
  r.copies[1] = {"M00001", 1};
  return r;
}

// Created and then removed: its slot holds a deleted record.
VvRecord vv_removed() {
  VvRecord r = vv(4);
  r.size = 65536;
  r.created = r.accessed = 0x65b00004;
  return r;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string golden_dir() {
  const char* src = std::getenv("VVM_SOURCE_DIR");
  REQUIRE(src != nullptr);  // meson test sets it
  return std::string(src) + "/test/data/db-v1";
}

}  // namespace

TEST_CASE("golden db: the database of db-v1 opens and reads back", "[golden]") {
  const std::string golden = golden_dir();
  auto dir = must(TempDir::create());
  const std::string db_dir = dir.file("db");
  fs::copy(golden, db_dir, fs::copy_options::recursive);

  // The files as committed: three tables of whole records, an empty journal.
  CHECK(fs::file_size(db_dir + "/vv.tab") == 5 * 256);
  CHECK(fs::file_size(db_dir + "/vsn.tab") == 3 * 128);
  CHECK(fs::file_size(db_dir + "/counter.tab") == 2 * 64);
  CHECK(fs::file_size(db_dir + "/journal") == 0);
  const std::string vv_tab = file_bytes(db_dir + "/vv.tab");
  const std::string vsn_tab = file_bytes(db_dir + "/vsn.tab");
  const std::string counter_tab = file_bytes(db_dir + "/counter.tab");

  {
    auto db = must(Database::open(db_dir));  // as vvmd opens it (vvmd/main.cc)
    CHECK(db->live_count(TableId::kVv) == 3);
    CHECK(db->live_count(TableId::kVsn) == 2);
    CHECK(db->live_count(TableId::kCounter) == 1);

    // Slot by slot, in the order the generator committed them.
    VvRecord r;
    REQUIRE(db->read_vv(1, &r).ok());
    CHECK(r == vv_hot());
    REQUIRE(db->read_vv(2, &r).ok());
    CHECK(r == vv_finished());
    REQUIRE(db->read_vv(3, &r).ok());
    CHECK(r == vv_archived());
    CHECK(db->read_vv(4, &r).code() == Code::kNotFound);  // deleted
    VsnRecord v;
    REQUIRE(db->read_vsn(1, &v).ok());
    CHECK(v == vsn_hot());
    REQUIRE(db->read_vsn(2, &v).ok());
    CHECK(v == vsn_full());
    CHECK(must(db->counter("serial.A")) == 4);

    // Field by field too, so that a failure names the field.
    std::map<uint64_t, VvRecord> vvs;
    REQUIRE(db->scan(TableId::kVv, [&](uint64_t slot, const Values& values) {
                vvs[slot] = must(VvRecord::from_values(values));
              }).ok());
    REQUIRE(vvs.size() == 3);
    const VvRecord& a = vvs[3];
    CHECK(a.name == "A0000000003");
    CHECK(a.vv_class == "A");
    CHECK(a.serial == 3);
    CHECK(a.client_id == 103);
    CHECK(a.owner == "bob");
    CHECK(a.group == "wheel");
    CHECK(a.perms == "0600");
    CHECK(a.size == 4096);
    CHECK(a.state == "archived");
    CHECK(a.cache == "evicted");
    CHECK(a.created == 0x65b00003);
    CHECK(a.finished == 0x65b00103);
    CHECK(a.accessed == 0x65b00203);
    CHECK(a.checksum == 0x5555666677778888);
    CHECK(a.copies[0] == VvCopy{"L00001", 2});
    CHECK(a.copies[1] == VvCopy{"M00001", 1});
    CHECK(a.copies[2] == VvCopy{});
    CHECK(a.copies[3] == VvCopy{});
    CHECK(vvs[1].state == "hot");
    CHECK(vvs[1].finished == 0);
    CHECK(vvs[1].copies[0] == VvCopy{});
    CHECK(vvs[2].state == "finished");
    CHECK(vvs[2].copies[0] == VvCopy{"L00001", 1});
    CHECK(vvs[2].copies[1] == VvCopy{});

    // The indexes built from the old records find them.
    CHECK(must(db->lookup_vv("name", KeyBuilder().text("A0000000002"), &r)) == 2);
    CHECK(r == vv_finished());
    CHECK(db->lookup_vv("name", KeyBuilder().text("A0000000004"), &r).status().code() ==
          Code::kNotFound);
    CHECK(must(db->lookup_vsn("name", KeyBuilder().text("M00001"), &v)) == 2);
    CHECK(v == vsn_full());
    REQUIRE(db->verify().ok());

    // The deleted record keeps the removed VV's fields (db_table.cc's erase).
    const std::string_view slot4 = std::string_view(vv_tab).substr(4 * 256, 256);
    CHECK(slot4[0] == kDeleted);
    CHECK(must(VvRecord::from_values(must(vv_schema().decode(slot4, "vv.tab: record 4")))) ==
          vv_removed());
  }
  // Opening changed no table: the journal was empty.
  CHECK(file_bytes(db_dir + "/vv.tab") == vv_tab);
  CHECK(file_bytes(db_dir + "/vsn.tab") == vsn_tab);
  CHECK(file_bytes(db_dir + "/counter.tab") == counter_tab);

  // A commit on top of the old database, and a reopen: it is a database like any other.
  {
    auto db = must(Database::open(db_dir));
    VvRecord r;
    const uint64_t slot = must(db->lookup_vv("name", KeyBuilder().text("A0000000001"), &r));
    r.state = "finished";
    r.finished = 0x65b00401;
    Transaction txn;
    txn.update(TableId::kVv, slot, r.to_values());
    REQUIRE(db->commit(txn).ok());
  }
  auto db = must(Database::open(db_dir));
  VvRecord r;
  REQUIRE(db->read_vv(1, &r).ok());
  CHECK(r.state == "finished");
  CHECK(r.finished == 0x65b00401);
  CHECK(db->live_count(TableId::kVv) == 3);
  REQUIRE(db->verify().ok());
}

// Writes the database of test/data/db-v1 into $VVM_GOLDEN_DB_OUT, which must not exist. Kept
// to show how it was made; never run it to replace the committed files.
TEST_CASE("golden db: generate", "[.generate]") {
  const char* out_env = std::getenv("VVM_GOLDEN_DB_OUT");
  REQUIRE(out_env != nullptr);
  const std::string out = out_env;
  REQUIRE(!fs::exists(out));
  {
    auto db = must(Database::open(out));  // as vvmd opens it
    Transaction vsns;                     // vvctl vsn add, then archives and mounts
    vsns.insert(TableId::kVsn, vsn_hot().to_values());
    vsns.insert(TableId::kVsn, vsn_full().to_values());
    REQUIRE(must(db->commit(vsns)) == std::vector<uint64_t>{1, 2});
    uint64_t serial = 0;
    for (const VvRecord& r : {vv_hot(), vv_finished(), vv_archived(), vv_removed()}) {
      Transaction create;  // as Catalog::create: the record and the serial counter together
      create.insert(TableId::kVv, r.to_values());
      REQUIRE(db->set_counter(create, "serial.A", ++serial).ok());
      REQUIRE(must(db->commit(create)).front() == serial);
    }
    Transaction remove;
    remove.erase(TableId::kVv, 4);
    REQUIRE(db->commit(remove).ok());
  }
  // Reopened, the journal is replayed into the tables, which are synced, and emptied (its first
  // frame spoiled): a checkpoint. Opening makes it 5 MiB of mostly zeros again, so it is cut
  // to nothing last; Database::open takes an empty journal as it takes a new one.
  { auto db = must(Database::open(out)); }
  REQUIRE(::truncate((out + "/journal").c_str(), 0) == 0);
  std::ofstream(out + "/README")
      << "db-v1: a vvmd database (vv.tab, vsn.tab, counter.tab, journal) as the vvmd of the\n"
         "commit that added it wrote it: 3 VVs (A0000000001 hot; A0000000002 finished, one copy;\n"
         "A0000000003 archived and evicted, two copies), a deleted record (A0000000004, created\n"
         "and removed), 2 VSNs (L00001 hot, M00001 full) and the counter serial.A = 4.\n"
         "Checkpointed: the tables hold every record; the journal (5 MiB of mostly zeros after\n"
         "any open) is cut to 0 bytes, which Database::open accepts as an empty journal.\n"
         "Made by test/unit/golden_db_test.cc's hidden case, never to be made again:\n"
         "  VVM_GOLDEN_DB_OUT=/tmp/db-v1 build/dev/test/unit_golden_db '[.generate]'\n"
         "Checked by golden_db_test.cc (meson test golden_db). Do not edit: it is the old\n"
         "database that newer vvmd versions must open.\n";
}
