// db_admin_test.cc: vvctl db's three requests over a real database in a temporary folder: stats
// counts what the tables hold; check finds a sound database sound and names each kind of problem
// (a copy on a VSN the catalogue lacks, one past its VSN's last file, two copies in one tape file,
// a serial counter below a VV's serial); backup copies the tables so that a database opened there
// holds every record, refuses a folder that holds a database and a peer that may not.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "catalog/db_admin.h"
#include "catalog/tables.h"
#include "catalog/vv_names.h"
#include "peers.h"
#include "process.h"

using namespace vvm;
using namespace vvm::vvmd;
using Catch::Matchers::Contains;
using vvm::test::must;
using vvm::test::TempDir;
using vvm::test::unix_peer;

namespace {

struct Fixture {
  TempDir dir = must(TempDir::create());
  std::unique_ptr<db::Database> db = must(open_database(dir.file("db")));
  DbAdmin admin{db.get(), 4242};

  Vsn vsn(const std::string& name, uint64_t next_file) {
    Vsn v;
    v.name = name;
    v.media = "LTO9";
    v.state = VsnState::kHot;
    v.location = "slot";
    v.next_file = next_file;
    db::Transaction txn;
    txn.insert(kVsnTable, vsn_values(v));
    must(db->commit(txn));
    return v;
  }
  // VV A<serial>, with its copies on (VSN, file) pairs, and the class's counter at `counter`.
  void vv(uint64_t serial, std::vector<VvCopy> copies, uint64_t counter_value) {
    Vv v;
    v.vv_class = "A";
    v.serial = serial;
    v.name = format_vv_name('A', serial);
    v.owner = v.group = "root";
    v.perms = 0640;
    v.size = 1 << 20;
    v.state = copies.empty() ? VvState::kHot : VvState::kArchived;
    for (size_t i = 0; i < copies.size(); ++i) v.copies[i] = copies[i];
    db::Transaction txn;
    txn.insert(kVvTable, vv_values(v));
    must(set_counter(*db, txn, serial_counter('A'), counter_value));
    must(db->commit(txn));
  }
  // A bad or dead tape file `file` of `vsn`, once a copy of VV `vv`.
  void mark(const std::string& vsn, uint64_t file, const std::string& vv, CopyMarkState state) {
    db::Transaction txn;
    txn.insert(kCopyTable, copy_values({vsn, file, vv, 1, 1 << 20, state, 1, "vvmd", "test"}));
    must(db->commit(txn));
  }
  std::vector<std::string> problems() {
    std::vector<std::string> out;
    for (const auto& p : admin.check().problems) out.push_back(p.what);
    return out;
  }
};

}  // namespace

TEST_CASE("db stats counts each table's records and slots") {
  Fixture f;
  f.vsn("L00001", 3);
  f.vv(1, {{"L00001", 1}}, 1);
  f.vv(2, {}, 2);
  auto st = f.admin.stats();
  CHECK(st.dir == f.dir.file("db"));
  REQUIRE(st.tables.size() == 6);
  CHECK(st.tables[0].name == "vv");
  CHECK(st.tables[0].records == 2);
  CHECK(st.tables[0].record_size == 256);
  CHECK(st.tables[1].name == "vsn");
  CHECK(st.tables[1].records == 1);
  CHECK(st.tables[2].name == "counter");
  CHECK(st.tables[2].records == 1);
  CHECK(st.tables[3].name == "copy");
  CHECK(st.tables[3].records == 0);
  CHECK(st.tables[4].name == "state");
  CHECK(st.tables[5].name == "verify");
  CHECK(st.tables[0].slots > st.tables[0].records);  // the header is a slot too
}

TEST_CASE("db check: a sound database, then each kind of problem named") {
  Fixture f;
  f.vsn("L00001", 3);
  f.vv(1, {{"L00001", 1}}, 1);
  f.vv(2, {{"L00001", 2}}, 2);
  CHECK(f.problems().empty());

  f.vv(3, {{"Z99999", 1}}, 3);  // no such VSN
  f.vv(4, {{"L00001", 7}}, 4);  // past the VSN's files
  f.vv(5, {{"L00001", 2}}, 5);  // A0000000002's tape file
  f.vv(9, {}, 6);               // the counter below the serial
  auto found = f.problems();
  REQUIRE(found.size() == 4);
  CHECK_THAT(found[0], Contains("VV A0000000003: copy 1 is on VSN Z99999, which the VSN table "
                                "does not hold"));
  CHECK_THAT(found[1], Contains("VV A0000000004: copy 1 is file 7 of VSN L00001, whose files end "
                                "before 3"));
  CHECK_THAT(found[2], Contains("VV A0000000005: copy 1 is file 2 of VSN L00001, which VV "
                                "A0000000002 holds too"));
  CHECK_THAT(found[3], Contains("counter serial.A is 6, below the serial of a VV of class A (9)"));
}

TEST_CASE("db check: marked tape files lie on their VSNs and no VV holds them") {
  Fixture f;
  f.vsn("L00001", 4);
  f.vv(1, {{"L00001", 1}}, 1);
  f.mark("L00001", 2, "A0000000002", CopyMarkState::kDead);
  f.mark("L00001", 3, "A0000000001", CopyMarkState::kBad);
  CHECK(f.problems().empty());

  f.mark("Z99999", 1, "A0000000003", CopyMarkState::kBad);   // no such VSN
  f.mark("L00001", 9, "A0000000004", CopyMarkState::kDead);  // past the VSN's files
  f.mark("L00001", 1, "A0000000005", CopyMarkState::kDead);  // A0000000001's copy
  auto found = f.problems();
  REQUIRE(found.size() == 3);  // in the copy table's slot order
  CHECK_THAT(found[0], Contains("bad copy of VV A0000000003 is on VSN Z99999, which the VSN table "
                                "does not hold"));
  CHECK_THAT(found[1], Contains("dead copy of VV A0000000004 is file 9 of VSN L00001, whose files "
                                "end before 4"));
  CHECK_THAT(found[2], Contains("file 1 of VSN L00001 is marked dead (VV A0000000005), yet VV "
                                "A0000000001 holds it as a copy"));
}

TEST_CASE("db backup: a copy a database opens, whole; refusals say why") {
  Fixture f;
  f.vsn("L00001", 11);
  for (uint64_t s = 1; s <= 20; ++s)
    f.vv(s, s % 2 ? std::vector<VvCopy>{} : std::vector<VvCopy>{{"L00001", s / 2}}, s);
  const std::string to = f.dir.file("backup");
  auto copied = must(f.admin.backup(unix_peer(0), to));
  CHECK(copied.files == 6);
  CHECK(copied.bytes > 0);
  // A change after the copy is not in it.
  f.vv(21, {}, 21);
  {
    auto again = must(open_database(to));
    CHECK(again->live_count(kVvTable) == 20);
    CHECK(again->live_count(kVsnTable) == 1);
    CHECK(must(counter(*again, serial_counter('A'))) == 20);
    DbAdmin other(again.get(), 4242);
    CHECK(other.check().problems == std::vector<rpc::DbProblem>{});
  }
  auto twice = f.admin.backup(unix_peer(0), to);
  CHECK(twice.status().code() == Code::kAlreadyExists);
  CHECK_THAT(twice.status().message(), Contains("holds a database already"));
  auto nobody = f.admin.backup(unix_peer(65534), f.dir.file("b2"));
  CHECK(nobody.status().code() == Code::kPermissionDenied);
  rpc::Peer tcp;
  tcp.kind = Endpoint::Kind::kTcp;
  tcp.address = "127.0.0.1:5000";
  CHECK(f.admin.backup(tcp, f.dir.file("b3")).status().code() == Code::kPermissionDenied);
  CHECK(f.admin.backup(unix_peer(0), "relative").status().code() == Code::kInvalidArgument);
  CHECK_FALSE(std::filesystem::exists(f.dir.file("b2")));
}
