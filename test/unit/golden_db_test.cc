// golden_db_test.cc: a database written by an earlier vvmd (test/data/db-v1, see its README)
// opens with this one, and every record reads back field for field. A failure here means that a
// vvmd built from this tree could not take over the database of one already installed. Never
// regenerate test/data/db-v1 to make this test pass: it is the old database.
//
// db-v1's tables are of record format 1 (fields padded inside the record): opening them upgrades
// them to the current format (db/table.h), once, and a crash during that upgrade still leaves a
// database that opens; both are checked here.
//
// The hidden test case "golden db: generate" wrote it (with the code of the commit that added
// it; run now, it writes the current format):
//   VVM_GOLDEN_DB_OUT=/tmp/db-v1 build/dev/test/unit_golden_db '[.generate]'
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "catalog/tables.h"
#include "db/database.h"
#include "db/table.h"
#include "process.h"

using namespace vvm;
using namespace vvm::db;
using namespace vvm::vvmd;
using vvm::test::must;
using vvm::test::TempDir;

namespace fs = std::filesystem;

namespace {

// --- what test/data/db-v1 holds ---

Vsn vsn_hot() {
  return {"L00001",   "LTO9",         "A", VsnState::kHot, "slot:1", 3,
          3221229568, 18000000000000, 0,   0x65b0c000};
}
Vsn vsn_full() {
  return {"M00001",       "LTO8",         "A", VsnState::kFull, "slot:2", 2,
          12000000000000, 12000000000000, 1,   0x65b0c100};
}

Vv vv(uint64_t serial) {
  Vv r;
  r.name = "A000000000" + std::to_string(serial);
  r.vv_class = "A";
  r.serial = serial;
  r.client_id = 100 + serial;
  r.owner = "alice";
  r.group = "staff";
  r.perms = 0640;
  return r;
}

// Hot: written to, in the cache, no copy yet.
Vv vv_hot() {
  Vv r = vv(1);
  r.size = 1073741824;
  r.state = VvState::kHot;
  r.cache = CacheState::kCached;
  r.created = 0x65b00001;
  r.accessed = 0x65b00301;
  return r;
}

// Finished, its first copy written (on the class's first media type), not yet the second.
Vv vv_finished() {
  Vv r = vv(2);
  r.size = 2147483648;
  r.state = VvState::kFinished;
  r.cache = CacheState::kCached;
  r.created = 0x65b00002;
  r.finished = 0x65b00102;
  r.accessed = 0x65b00202;
  r.checksum = 0x1111222233334444;
  r.copies[0] = {"L00001", 1};
  return r;
}

// Archived on both media types, then evicted from the cache.
Vv vv_archived() {
  Vv r = vv(3);
  r.owner = "bob";
  r.group = "wheel";
  r.perms = 0600;
  r.size = 4096;
  r.state = VvState::kArchived;
  r.cache = CacheState::kEvicted;
  r.created = 0x65b00003;
  r.finished = 0x65b00103;
  r.accessed = 0x65b00203;
  r.checksum = 0x5555666677778888;
  r.copies[0] = {"L00001", 2};
  r.copies[1] = {"M00001", 1};
  return r;
}

// Created and then removed: its slot holds a deleted record.
Vv vv_removed() {
  Vv r = vv(4);
  r.size = 65536;
  r.created = r.accessed = 0x65b00004;
  return r;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// `after` holds the records of `before`, slot for slot, with the same state and values.
void check_same_records(const std::string& before, const std::string& after, const Schema& s) {
  const size_t rs = s.record_size();
  REQUIRE(after.size() == before.size());
  for (size_t slot = 1; slot < before.size() / rs; ++slot) {
    INFO(s.table() << " slot " << slot);
    const std::string_view old_rec = std::string_view(before).substr(slot * rs, rs);
    const std::string_view new_rec = std::string_view(after).substr(slot * rs, rs);
    CHECK(new_rec[0] == old_rec[0]);
    CHECK(checksum_ok(new_rec));
    CHECK(must(s.decode(new_rec, "after")) == must(s.decode(old_rec, "before")));
  }
}

// The fields of a format 2 record are its blank-separated words: no blank doubled before the
// padding.
bool single_blanks(std::string_view rec) {
  const std::string_view body = rec.substr(0, rec.find_last_not_of(" \n") + 1);
  return body.find("  ") == std::string_view::npos;
}

ino_t inode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_ino;
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
    auto db = must(open_database(db_dir));  // as vvmd opens it (vvmd/main.cc)
    CHECK(db->live_count(kVvTable) == 3);
    CHECK(db->live_count(kVsnTable) == 2);
    CHECK(db->live_count(kCounterTable) == 1);

    // Slot by slot, in the order the generator committed them.
    Vv r;
    REQUIRE(read_vv(*db, 1, &r).ok());
    CHECK(r == vv_hot());
    REQUIRE(read_vv(*db, 2, &r).ok());
    CHECK(r == vv_finished());
    REQUIRE(read_vv(*db, 3, &r).ok());
    CHECK(r == vv_archived());
    CHECK(read_vv(*db, 4, &r).code() == Code::kNotFound);  // deleted
    Vsn v;
    REQUIRE(read_vsn(*db, 1, &v).ok());
    CHECK(v == vsn_hot());
    REQUIRE(read_vsn(*db, 2, &v).ok());
    CHECK(v == vsn_full());
    CHECK(must(counter(*db, "serial.A")) == 4);

    // Field by field too, so that a failure names the field.
    std::map<uint64_t, Vv> vvs;
    REQUIRE(db->scan(kVvTable, [&](uint64_t slot, const Values& values) {
                vvs[slot] = must(vv_from_values(values));
              }).ok());
    REQUIRE(vvs.size() == 3);
    const Vv& a = vvs[3];
    CHECK(a.name == "A0000000003");
    CHECK(a.vv_class == "A");
    CHECK(a.serial == 3);
    CHECK(a.client_id == 103);
    CHECK(a.owner == "bob");
    CHECK(a.group == "wheel");
    CHECK(a.perms == 0600);
    CHECK(a.size == 4096);
    CHECK(a.state == VvState::kArchived);
    CHECK(a.cache == CacheState::kEvicted);
    CHECK(a.created == 0x65b00003);
    CHECK(a.finished == 0x65b00103);
    CHECK(a.accessed == 0x65b00203);
    CHECK(a.checksum == 0x5555666677778888);
    CHECK(a.copies[0] == VvCopy{"L00001", 2});
    CHECK(a.copies[1] == VvCopy{"M00001", 1});
    CHECK(a.copies[2] == VvCopy{});
    CHECK(a.copies[3] == VvCopy{});
    CHECK(vvs[1].state == VvState::kHot);
    CHECK(vvs[1].finished == 0);
    CHECK(vvs[1].copies[0] == VvCopy{});
    CHECK(vvs[2].state == VvState::kFinished);
    CHECK(vvs[2].copies[0] == VvCopy{"L00001", 1});
    CHECK(vvs[2].copies[1] == VvCopy{});

    // The indexes built from the old records find them.
    CHECK(must(lookup_vv(*db, "name", KeyBuilder().text("A0000000002"), &r)) == 2);
    CHECK(r == vv_finished());
    CHECK(lookup_vv(*db, "name", KeyBuilder().text("A0000000004"), &r).status().code() ==
          Code::kNotFound);
    CHECK(must(lookup_vsn(*db, "name", KeyBuilder().text("M00001"), &v)) == 2);
    CHECK(v == vsn_full());
    REQUIRE(db->verify().ok());

    // The deleted record keeps the removed VV's fields (db/table.cc's erase).
    const std::string_view slot4 = std::string_view(vv_tab).substr(4 * 256, 256);
    CHECK(slot4[0] == kDeleted);
    CHECK(must(vv_from_values(must(vv_schema().decode(slot4, "vv.tab: record 4")))) ==
          vv_removed());
  }
  // The journal was empty, so opening changed no record: it upgraded each table to format 2
  // (db/table.h), slot for slot, every record, live or deleted, holding what it held.
  check_same_records(vv_tab, file_bytes(db_dir + "/vv.tab"), vv_schema());
  check_same_records(vsn_tab, file_bytes(db_dir + "/vsn.tab"), vsn_schema());
  check_same_records(counter_tab, file_bytes(db_dir + "/counter.tab"), counter_schema());

  // A commit on top of the old database, and a reopen: it is a database like any other.
  {
    auto db = must(open_database(db_dir));
    Vv r;
    const uint64_t slot = must(lookup_vv(*db, "name", KeyBuilder().text("A0000000001"), &r));
    r.state = VvState::kFinished;
    r.finished = 0x65b00401;
    Transaction txn;
    txn.update(kVvTable, slot, vv_values(r));
    REQUIRE(db->commit(txn).ok());
  }
  auto db = must(open_database(db_dir));
  Vv r;
  REQUIRE(read_vv(*db, 1, &r).ok());
  CHECK(r.state == VvState::kFinished);
  CHECK(r.finished == 0x65b00401);
  CHECK(db->live_count(kVvTable) == 3);
  REQUIRE(db->verify().ok());
}

// A database made before the copy and state tables existed (db-v1 has vv.tab, vsn.tab and
// counter.tab) gets an empty copy.tab and state.tab at its next open, and takes marks like any
// other.
TEST_CASE("golden db: db-v1 gains an empty copy table and state table", "[golden]") {
  auto dir = must(TempDir::create());
  const std::string db_dir = dir.file("db");
  fs::copy(golden_dir(), db_dir, fs::copy_options::recursive);
  REQUIRE(!fs::exists(db_dir + "/copy.tab"));
  {
    auto db = must(open_database(db_dir));
    CHECK(db->live_count(kCopyTable) == 0);
    CHECK(fs::file_size(db_dir + "/copy.tab") == 256);
    CHECK(db->live_count(kStateTable) == 0);
    CHECK(fs::file_size(db_dir + "/state.tab") == 256);
    Vv r;
    REQUIRE(read_vv(*db, 3, &r).ok());
    CopyMark bad{
        r.copies[0].vsn, r.copies[0].file,   r.name, 1, r.size, CopyMarkState::kBad, 0x65b00301,
        "vvmd",          "checksum mismatch"};
    r.copies[0] = {};
    r.state = VvState::kFinished;
    Transaction txn;
    txn.update(kVvTable, 3, vv_values(r));
    txn.insert(kCopyTable, copy_values(bad));
    REQUIRE(db->commit(txn).ok());
  }
  auto db = must(open_database(db_dir));
  CopyMark got;
  REQUIRE(find_copy_mark(*db, "L00001", 2, &got).ok());
  CHECK(got.vv == "A0000000003");
  CHECK(got.why == "checksum mismatch");
  std::vector<CopyMark> of_vv;
  REQUIRE(scan_copy_marks_of_vv(*db, "A0000000003", [&](uint64_t, const CopyMark& m) {
            of_vv.push_back(m);
            return true;
          }).ok());
  REQUIRE(of_vv.size() == 1);
  CHECK(of_vv[0] == got);
  size_t on_prefix = 0;
  REQUIRE(scan_copy_marks_on_vsn(*db, "L0000", [&](uint64_t, const CopyMark&) {
            ++on_prefix;  // L0000 holds no marked file: a prefix is not a VSN
            return true;
          }).ok());
  CHECK(on_prefix == 0);
  Vv unwritten;
  CHECK(must(lookup_vv(*db, "unwritten", KeyBuilder().text("A0000000003"), &unwritten)) == 3);
  REQUIRE(db->verify().ok());
}

// db-v1, made before the verify table, gets an empty verify.tab at its next open, which keeps a
// copy's last verify across opens.
TEST_CASE("golden db: db-v1 gains an empty verify table", "[golden]") {
  auto dir = must(TempDir::create());
  const std::string db_dir = dir.file("db");
  fs::copy(golden_dir(), db_dir, fs::copy_options::recursive);
  REQUIRE(!fs::exists(db_dir + "/verify.tab"));
  const VerifyMark mark{"L00001", 2, "A0000000003", 1, 0x65b00301, "verify", true, ""};
  {
    auto db = must(open_database(db_dir));
    CHECK(db->live_count(kVerifyTable) == 0);
    CHECK(fs::file_size(db_dir + "/verify.tab") == 256);
    Transaction txn;
    REQUIRE(set_verify_mark(*db, txn, mark).ok());
    REQUIRE(db->commit(txn).ok());
  }
  auto db = must(open_database(db_dir));
  VerifyMark got;
  REQUIRE(find_verify_mark(*db, "L00001", 2, &got).ok());
  CHECK(got == mark);
  // Verified again: the same record, updated.
  VerifyMark again = mark;
  again.when = 0x65b00401;
  again.how = "scrub";
  Transaction txn;
  REQUIRE(set_verify_mark(*db, txn, again).ok());
  REQUIRE(db->commit(txn).ok());
  std::vector<VerifyMark> on;
  REQUIRE(scan_verify_marks_on_vsn(*db, "L00001", [&](uint64_t, const VerifyMark& m) {
            on.push_back(m);
            return true;
          }).ok());
  REQUIRE(on.size() == 1);
  CHECK(on[0] == again);
  CHECK(db->live_count(kVerifyTable) == 1);
  REQUIRE(db->verify().ok());
}

TEST_CASE("golden db: db-v1's tables are upgraded once, to format 2", "[golden]") {
  auto dir = must(TempDir::create());
  const std::string db_dir = dir.file("db");
  fs::copy(golden_dir(), db_dir, fs::copy_options::recursive);
  const char* tables[] = {"vv.tab", "vsn.tab", "counter.tab"};
  const Schema* schemas[] = {&vv_schema(), &vsn_schema(), &counter_schema()};
  for (const char* t : tables) {
    CHECK(file_bytes(db_dir + "/" + t).substr(11, 11) == "vvm-table 1");
  }
  { auto db = must(open_database(db_dir)); }
  std::map<std::string, std::string> upgraded;
  for (size_t i = 0; i < 3; ++i) {
    INFO(tables[i]);
    const std::string bytes = file_bytes(db_dir + "/" + tables[i]);
    upgraded[tables[i]] = bytes;
    const size_t rs = schemas[i]->record_size();
    CHECK(bytes.substr(11, 11) == "vvm-table 2");
    for (size_t slot = 1; slot < bytes.size() / rs; ++slot) {
      const std::string_view rec = std::string_view(bytes).substr(slot * rs, rs);
      INFO("slot " << slot << ": " << rec);
      CHECK(single_blanks(rec));
    }
    CHECK_FALSE(fs::exists(db_dir + "/" + tables[i] + ".upgrade"));
  }
  // Opening again upgrades nothing: the files stay as they are, byte for byte, and are the same
  // files (an upgrade renames a new one over the table).
  std::map<std::string, ino_t> inodes;
  for (const char* t : tables) inodes[t] = inode(db_dir + "/" + t);
  {
    auto db = must(open_database(db_dir));
    Vv r;
    REQUIRE(read_vv(*db, 3, &r).ok());
    CHECK(r == vv_archived());
  }
  for (const char* t : tables) {
    CHECK(file_bytes(db_dir + "/" + t) == upgraded[t]);
    CHECK(inode(db_dir + "/" + t) == inodes[t]);
  }
}

// An upgrade cut short by a crash leaves the old table whole, and perhaps its half-written
// PATH.upgrade; or, once one table is renamed and the next not yet, tables of both formats.
// Either way the database opens, upgrades what is left, and reads back.
TEST_CASE("golden db: an upgrade cut short opens and finishes", "[golden]") {
  auto dir = must(TempDir::create());
  const std::string db_dir = dir.file("db");
  fs::copy(golden_dir(), db_dir, fs::copy_options::recursive);
  {
    // vv.tab upgraded and renamed; the crash came while vsn.tab's new file was being written.
    must(Table::open(db_dir + "/vv.tab", vv_schema()));
    std::ofstream(db_dir + "/vsn.tab.upgrade", std::ios::binary)
        << file_bytes(db_dir + "/vsn.tab").substr(0, 200);
  }
  CHECK(file_bytes(db_dir + "/vv.tab").substr(11, 11) == "vvm-table 2");
  CHECK(file_bytes(db_dir + "/vsn.tab").substr(11, 11) == "vvm-table 1");
  auto db = must(open_database(db_dir));
  CHECK(file_bytes(db_dir + "/vsn.tab").substr(11, 11) == "vvm-table 2");
  CHECK_FALSE(fs::exists(db_dir + "/vsn.tab.upgrade"));
  Vsn v;
  REQUIRE(read_vsn(*db, 2, &v).ok());
  CHECK(v == vsn_full());
  Vv r;
  REQUIRE(read_vv(*db, 2, &r).ok());
  CHECK(r == vv_finished());
  REQUIRE(db->verify().ok());
}

// The step of README.md's "Adding a field to the VV record", on the oldest VV table there is: a
// schema with one more field at its end (and its fill) opens db-v1's vv.tab, upgrading it from
// format 1 with 22 fields to format 2 with 23; every record keeps its fields and gets the fill.
TEST_CASE("golden db: db-v1's VV table takes a field appended to the VV schema", "[golden]") {
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vv.tab");
  fs::copy_file(golden_dir() + "/vv.tab", path);
  std::vector<Field> fields = vv_schema().fields();
  fields.push_back({"tier", FieldKind::kText, 8, Value(std::string("disk"))});
  const Schema next = must(Schema::make("vv", fields, vv_schema().record_size()));
  std::map<uint64_t, Values> seen;
  {
    Table t =
        must(Table::open(path, next, [&](uint64_t slot, const Values& v) { seen[slot] = v; }));
    CHECK(t.live_count() == 3);
  }
  REQUIRE(seen.size() == 3);
  const std::map<uint64_t, Vv> want = {{1, vv_hot()}, {2, vv_finished()}, {3, vv_archived()}};
  for (const auto& [slot, values] : seen) {
    INFO("slot " << slot);
    REQUIRE(values.size() == 23);
    CHECK(std::get<std::string>(values.back()) == "disk");
    const Values known(values.begin(), values.end() - 1);
    CHECK(must(vv_from_values(known)) == want.at(slot));
  }
  CHECK(file_bytes(path).substr(11, 30) ==
        fmt::format("vvm-table 2 vv 256 23 {:08x}", next.fingerprint()));
}

// Writes the database of test/data/db-v1 into $VVM_GOLDEN_DB_OUT, which must not exist. Kept
// to show how it was made; never run it to replace the committed files.
TEST_CASE("golden db: generate", "[.generate]") {
  const char* out_env = std::getenv("VVM_GOLDEN_DB_OUT");
  REQUIRE(out_env != nullptr);
  const std::string out = out_env;
  REQUIRE(!fs::exists(out));
  {
    auto db = must(open_database(out));  // as vvmd opens it
    Transaction vsns;                    // vvctl vsn add, then archives and mounts
    vsns.insert(kVsnTable, vsn_values(vsn_hot()));
    vsns.insert(kVsnTable, vsn_values(vsn_full()));
    REQUIRE(must(db->commit(vsns)) == std::vector<uint64_t>{1, 2});
    uint64_t serial = 0;
    for (const Vv& r : {vv_hot(), vv_finished(), vv_archived(), vv_removed()}) {
      Transaction create;  // as Catalog::create: the record and the serial counter together
      create.insert(kVvTable, vv_values(r));
      REQUIRE(set_counter(*db, create, "serial.A", ++serial).ok());
      REQUIRE(must(db->commit(create)).front() == serial);
    }
    Transaction remove;
    remove.erase(kVvTable, 4);
    REQUIRE(db->commit(remove).ok());
  }
  // Reopened, the journal is replayed into the tables, which are synced, and emptied (its first
  // frame spoiled): a checkpoint. Opening makes it 5 MiB of mostly zeros again, so it is cut
  // to nothing last; Database::open takes an empty journal as it takes a new one.
  { auto db = must(open_database(out)); }
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
