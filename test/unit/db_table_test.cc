// db_table_test.cc: vvmd's record codec and table file: layout, round trips, every refusal with
// the field and the text, slot reuse, reopening, a torn record written by hand, a hand-edited bad
// field, a foreign header, a cut-short file, and a failed fsync that makes the table unusable.
#include <fcntl.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>

#include <fmt/core.h>

#include "db/table.h"
#include "process.h"

using namespace vvm;
using namespace vvm::db;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

Schema test_schema(size_t record_size = 128) {
  return must(Schema::make("vv",
                           {{"name", FieldKind::kText, 11},
                            {"state", FieldKind::kText, 8},
                            {"size", FieldKind::kDecimal, 14},
                            {"created", FieldKind::kHex, 10}},
                           record_size));
}

Values vv(const std::string& name, const std::string& state, uint64_t size, uint64_t t) {
  return {name, state, size, t};
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void poke(const std::string& path, uint64_t offset, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) ==
          static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// A File that passes everything to a real one, but whose sync fails when told to.
class FailingSyncFile : public File {
 public:
  FailingSyncFile(std::unique_ptr<File> inner, bool* fail)
      : inner_(std::move(inner)), fail_(fail) {}
  Status read_at(uint64_t o, char* b, size_t n) override { return inner_->read_at(o, b, n); }
  Status write_at(uint64_t o, std::string_view d) override { return inner_->write_at(o, d); }
  Status sync() override {
    if (*fail_) return Status::IoError(path() + ": fdatasync: Input/output error");
    return inner_->sync();
  }
  Result<uint64_t> size() override { return inner_->size(); }
  Status truncate(uint64_t n) override { return inner_->truncate(n); }
  const std::string& path() const override { return inner_->path(); }

 private:
  std::unique_ptr<File> inner_;
  bool* fail_;
};

}  // namespace

TEST_CASE("CRC-32C: the standard check value, and the same as Boost's at every length") {
  CHECK(crc32c("123456789") == 0xE3069283);
  CHECK(crc32c("") == 0);
  std::mt19937 rng(3);
  std::string bytes(300, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  for (size_t n = 0; n <= bytes.size(); ++n) {
    boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> want;
    want.process_bytes(bytes.data(), n);
    INFO("length " << n);
    REQUIRE(crc32c(std::string_view(bytes.data(), n)) == want.checksum());
  }
  // A record's checksum skips its own 8 characters (bytes 2..9).
  std::string rec = bytes.substr(0, 128);
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> want;
  want.process_bytes(rec.data(), 2);
  want.process_bytes(rec.data() + 10, rec.size() - 10);
  CHECK(record_checksum(rec) == want.checksum());
}

TEST_CASE("schemas: record sizes divide 4096 and the fields must fit") {
  CHECK(Schema::make("t", {{"a", FieldKind::kText, 4}}, 100).status().code() ==
        Code::kInvalidArgument);
  auto too_wide = Schema::make("t", {{"a", FieldKind::kText, 120}}, 128);
  CHECK_THAT(too_wide.status().message(), Catch::Contains("need 132 bytes; records have 128"));
  auto dup = Schema::make("t", {{"a", FieldKind::kText, 4}, {"a", FieldKind::kText, 4}}, 64);
  CHECK_THAT(dup.status().message(), Catch::Contains("field 'a'"));
  CHECK(Schema::make("t", {{"n", FieldKind::kDecimal, 21}}, 64).status().code() ==
        Code::kInvalidArgument);
  CHECK(test_schema().fingerprint() != test_schema(256).fingerprint());
}

TEST_CASE("a record is one fixed-size line anyone can read") {
  Schema s = test_schema();
  std::string rec = must(s.encode(kLive, vv("A0000000042", "hot", 10737418240, 0x65f0a1b2cull)));
  CHECK(rec.size() == 128);
  CHECK(rec.back() == '\n');
  CHECK(rec.find('\n') == 127);
  CHECK(rec.substr(0, 2) == "A ");
  // Single blanks between the fields (numbers keep their width), padding only at the end.
  CHECK(rec.substr(11, 42) == "A0000000042 hot 00010737418240 065f0a1b2c ");
  CHECK(rec.find_first_not_of(' ', 53) == 127);
  CHECK(checksum_ok(rec));
  Values back = must(s.decode(rec, "vv: record 1"));
  CHECK(std::get<std::string>(back[0]) == "A0000000042");
  CHECK(std::get<std::string>(back[1]) == "hot");
  CHECK(std::get<uint64_t>(back[2]) == 10737418240);
  CHECK(std::get<uint64_t>(back[3]) == 0x65f0a1b2cull);
  // Empty text round-trips through "-".
  Values empty = must(s.decode(must(s.encode(kLive, vv("", "x", 0, 0))), "w"));
  CHECK(std::get<std::string>(empty[0]).empty());
  // Any changed byte breaks the checksum.
  for (size_t i : {0ul, 12ul, 40ul, 126ul}) {
    std::string bad = rec;
    bad[i] = bad[i] == 'x' ? 'y' : 'x';
    CHECK_FALSE(checksum_ok(bad));
  }
}

TEST_CASE("values that do not fit are refused, naming the field") {
  Schema s = test_schema();
  auto msg = [&](const Values& v) { return s.encode(kLive, v).status().message(); };
  CHECK_THAT(msg(vv("A 42", "hot", 1, 1)), Catch::Contains("vv.name: 'A 42' has blanks"));
  CHECK_THAT(msg(vv("A00000000420", "hot", 1, 1)),
             Catch::Contains("vv.name: 'A00000000420' is longer than 11"));
  CHECK_THAT(msg(vv("A", "hot", 100000000000000ull, 1)),
             Catch::Contains("vv.size: 100000000000000 does not fit 14 digits"));
  CHECK_THAT(msg(vv("A", "hot", 1, 0x10000000000ull)), Catch::Contains("vv.created"));
  CHECK_THAT(msg({std::string("A"), uint64_t{1}, uint64_t{1}, uint64_t{1}}),
             Catch::Contains("vv.state: a number where text belongs"));
  CHECK_THAT(msg({std::string("A")}), Catch::Contains("1 values for 4 fields"));
}

TEST_CASE("decode names the record, the field and the text it found") {
  Schema s = test_schema();
  std::string rec = must(s.encode(kLive, vv("A1", "hot", 5, 6)));
  std::string bad = rec;
  bad.replace(18, 14, "0000000000x005");  // the size field
  auto r = s.decode(bad, "vv.tab: record 7");
  CHECK(r.status().message() ==
        "vv.tab: record 7: field 'size': '0000000000x005' is not a decimal number");
  bad = rec;
  bad.replace(14, 3, "h t");  // a blank splits a field in two: the next one gets "t"
  CHECK_THAT(s.decode(bad, "w").status().message(),
             Catch::Contains("field 'size': 't' is not a decimal number"));
  bad = rec;
  bad[0] = 'Q';
  CHECK_THAT(s.decode(bad, "w").status().message(), Catch::Contains("state 'Q'"));
  bad = rec;
  bad.replace(14, 3, "h\x01t");  // not printable
  CHECK_THAT(s.decode(bad, "w").status().message(),
             Catch::Contains("field 'state': 'h\x01t' has a character that is not printable"));
  bad = rec;
  bad.replace(32, 11, std::string(11, ' '));  // the last field gone
  CHECK_THAT(s.decode(bad, "w").status().message(), Catch::Contains("field 'created' is missing"));
  bad = rec;
  bad.replace(42, 3, "0 x");  // something after the last field
  CHECK_THAT(s.decode(bad, "w").status().message(), Catch::Contains("'x' after the last field"));
  for (const char* text : {"-0000000000005", "+0000000000005", "0000000000005x"}) {
    bad = rec;
    bad.replace(18, 14, text);
    INFO(text);
    CHECK_THAT(s.decode(bad, "w").status().message(), Catch::Contains("is not a decimal number"));
  }
}

TEST_CASE("numbers decode up to 2^64 - 1 and no further; hex in either case") {
  Schema s =
      must(Schema::make("n", {{"d", FieldKind::kDecimal, 20}, {"h", FieldKind::kHex, 16}}, 64));
  auto decode = [&](std::string d, std::string h) {
    std::string rec = must(s.encode(kLive, {uint64_t{0}, uint64_t{0}}));
    rec.replace(kPrefix, 20, d);
    rec.replace(kPrefix + 21, 16, h);
    rec.replace(2, 8, fmt::format("{:08x}", record_checksum(rec)));
    return s.decode(rec, "n");
  };
  auto max = must(decode("18446744073709551615", "ffffffffffffffff"));
  CHECK(std::get<uint64_t>(max[0]) == UINT64_MAX);
  CHECK(std::get<uint64_t>(max[1]) == UINT64_MAX);
  CHECK(std::get<uint64_t>(must(decode("00000000000000000042", "00000000000000AB"))[1]) == 0xab);
  CHECK_THAT(decode("18446744073709551616", "0000000000000000").status().message(),
             Catch::Contains("'18446744073709551616' is not a decimal number"));
  CHECK_THAT(decode("00000000000000000000", "000000000000000g").status().message(),
             Catch::Contains("is not a hex number"));
}

TEST_CASE("insert, update, erase, slot reuse, scan and reopen") {
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vv.tab");
  Schema s = test_schema();
  {
    Table t = must(Table::create(path, s));
    CHECK(must(t.insert(vv("A1", "hot", 1, 1))) == 1);
    CHECK(must(t.insert(vv("A2", "hot", 2, 2))) == 2);
    CHECK(must(t.insert(vv("A3", "hot", 3, 3))) == 3);
    must(t.update(2, vv("A2", "finished", 2, 9)));
    must(t.erase(1));
    CHECK(t.live_count() == 2);
    CHECK(must(t.insert(vv("A4", "hot", 4, 4))) == 1);  // the freed slot
    must(t.erase(3));
    CHECK(t.update(3, vv("A3", "x", 0, 0)).code() == Code::kNotFound);
    CHECK(t.erase(3).code() == Code::kNotFound);
    CHECK(std::get<std::string>(must(t.read(2))[1]) == "finished");
    must(t.sync());
  }
  // The file is plain text: header, then one line a slot, deleted ones marked D.
  std::string text = file_text(path);
  CHECK(text.size() == 4 * 128);
  CHECK(text.substr(11, 9) == "vvm-table");
  CHECK(text[128] == 'A');
  CHECK(text[3 * 128] == 'D');
  CHECK(text.find("A3 hot") != std::string::npos);  // a deleted record keeps its text

  std::map<uint64_t, std::string> seen;
  Table t = must(Table::open(
      path, s, [&](uint64_t slot, const Values& v) { seen[slot] = std::get<std::string>(v[0]); }));
  CHECK(seen == std::map<uint64_t, std::string>{{1, "A4"}, {2, "A2"}});
  CHECK(t.live_count() == 2);
  CHECK(t.slot_count() == 4);
  CHECK(must(t.insert(vv("A5", "hot", 5, 5))) == 3);  // the deleted slot, found on open
  seen.clear();
  must(t.scan([&](uint64_t slot, const Values& v) { seen[slot] = std::get<std::string>(v[0]); }));
  CHECK(seen.size() == 3);
}

TEST_CASE("a blank slot (zeros, as a crash can leave at the end) is free, not an error") {
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vv.tab");
  Schema s = test_schema();
  {
    Table t = must(Table::create(path, s));
    must(t.insert(vv("A1", "hot", 1, 1)));
    must(t.sync());
  }
  poke(path, 3 * 128, std::string(128, '\0'));  // slot 2 never written, slot 3 zeros
  Table t = must(Table::open(path, s));
  CHECK(t.live_count() == 1);
  CHECK(must(t.insert(vv("A2", "hot", 2, 2))) == 2);
}

TEST_CASE("damage is reported on open, never read as data") {
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vv.tab");
  Schema s = test_schema();
  {
    Table t = must(Table::create(path, s));
    for (int i = 1; i <= 5; ++i) must(t.insert(vv("A" + std::to_string(i), "hot", i, i)));
    must(t.sync());
  }
  const std::string good = file_text(path);

  SECTION("a torn record: the second half of record 3 from an older write") {
    poke(path, 3 * 128 + 64, std::string(63, 'z'));
    auto r = Table::open(path, s);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::StartsWith("vv.tab: record 3: checksum '") &&
                                         Catch::Contains("torn or half-written"));
  }
  SECTION("a hand-edited record with a correct checksum but a bad field") {
    std::string rec = good.substr(2 * 128, 128);
    rec.replace(18, 14, "twelve00000000");
    rec.replace(2, 8, fmt::format("{:08x}", record_checksum(rec)));
    poke(path, 2 * 128, rec);
    auto r = Table::open(path, s);
    CHECK(r.status().message() ==
          "vv.tab: record 2: field 'size': 'twelve00000000' is not a decimal number");
  }
  SECTION("a file cut inside a record") {
    REQUIRE(::truncate(path.c_str(), 5 * 128 + 50) == 0);
    CHECK_THAT(Table::open(path, s).status().message(),
               Catch::Contains("not a whole number of 128-byte records (record 5 is cut short)"));
  }
  SECTION("another layout of fields") {
    Schema other = must(Schema::make("vv", {{"name", FieldKind::kText, 12}}, 128));
    CHECK_THAT(Table::open(path, other).status().message(),
               Catch::Contains("header 'vvm-table 2 vv 128 4 ") &&
                   Catch::Contains("is not the one this vvmd writes"));
  }
  SECTION("not a table at all") {
    std::ofstream(path, std::ios::trunc) << std::string(300, 'x');
    CHECK_THAT(Table::open(path, s).status().message(), Catch::Contains("not a vvm table"));
  }
}

TEST_CASE("create refuses to overwrite; open of a missing table is NotFound") {
  auto dir = must(TempDir::create());
  Schema s = test_schema();
  must(Table::create(dir.file("vv.tab"), s));
  CHECK(Table::create(dir.file("vv.tab"), s).status().code() == Code::kAlreadyExists);
  CHECK(Table::open(dir.file("nope.tab"), s).status().code() == Code::kNotFound);
}

TEST_CASE("a failed fsync is final: the table refuses everything afterwards") {
  auto dir = must(TempDir::create());
  bool fail = false;
  auto file = must(open_posix_file(dir.file("vv.tab"), true));
  Table t = must(
      Table::create_file(std::make_unique<FailingSyncFile>(std::move(file), &fail), test_schema()));
  must(t.insert(vv("A1", "hot", 1, 1)));
  fail = true;
  Status s = t.sync();
  CHECK(s.code() == Code::kIoError);
  fail = false;  // even if the next fsync would "succeed", the lost pages are not coming back
  CHECK_THAT(t.sync().message(), Catch::Contains("unusable after an earlier failure"));
  CHECK_THAT(t.insert(vv("A2", "hot", 2, 2)).status().message(),
             Catch::Contains("unusable after an earlier failure"));
  CHECK(t.read(1).status().code() == Code::kIoError);
}

TEST_CASE("durable writes: whole aligned blocks go direct, anything else is write + sync") {
  auto dir = must(TempDir::create());
  auto file = must(open_posix_file(dir.file("journal"), true));
  void* raw = nullptr;
  REQUIRE(::posix_memalign(&raw, 4096, 8192) == 0);
  std::unique_ptr<char, decltype(&std::free)> block(static_cast<char*>(raw), &std::free);
  std::memset(block.get(), 'j', 8192);
  must(file->write_durably(4096, std::string_view(block.get(), 8192)));  // direct
  must(file->write_durably(10, "abc"));                                  // buffered + sync
  must(file->write_durably(4096 + 5, "xyz"));  // buffered, over what went direct
  std::string all = file_text(dir.file("journal"));
  REQUIRE(all.size() == 4096 + 8192);
  CHECK(all.substr(10, 3) == "abc");
  CHECK(all.substr(4096, 5) == "jjjjj");
  CHECK(all.substr(4096 + 5, 3) == "xyz");
  CHECK(all.substr(4096 + 8, 8184) == std::string(8184, 'j'));
}

// Adding a field: the schema gets it at its end, with the value older records take (its fill);
// Table::open rewrites a table written before, slot for slot, and only once.
TEST_CASE("a field appended to the schema: older tables are upgraded to it at open") {
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vv.tab");
  const Schema old_schema = test_schema();
  {
    Table t = must(Table::create(path, old_schema));
    must(t.insert(vv("A1", "hot", 1, 1)));
    must(t.insert(vv("A2", "finished", 2, 2)));
    must(t.erase(1));  // a deleted record is rewritten too, and stays deleted
    must(t.sync());
  }
  std::vector<Field> fields = old_schema.fields();
  fields.push_back({"tier", FieldKind::kText, 4, Value(std::string("disk"))});
  fields.push_back({"copies", FieldKind::kDecimal, 2, {}});  // no fill: 0
  const Schema new_schema = must(Schema::make("vv", fields, 128));

  CHECK(must(Table::upgrade(path, new_schema)));
  CHECK_FALSE(must(Table::upgrade(path, new_schema)));  // done once: nothing left to do
  std::map<uint64_t, Values> seen;
  Table t =
      must(Table::open(path, new_schema, [&](uint64_t slot, const Values& v) { seen[slot] = v; }));
  CHECK(t.live_count() == 1);
  CHECK(t.slot_count() == 3);
  REQUIRE(seen.size() == 1);
  CHECK(seen[2] == Values{std::string("A2"), std::string("finished"), uint64_t{2}, uint64_t{2},
                          std::string("disk"), uint64_t{0}});
  const std::string text = file_text(path);
  CHECK(text.substr(11, 14) == "vvm-table 2 vv");
  CHECK(text.find(fmt::format("vvm-table 2 vv 128 6 {:08x}", new_schema.fingerprint())) == 11);
  CHECK(text[128] == 'D');
  CHECK(text.find("A1 hot 00000000000001 0000000001 disk 00 ") == 128 + 11);
  CHECK(text.find("A2 finished 00000000000002 0000000002 disk 00 ") == 256 + 11);
  // The old vvmd cannot open the table any more: it has fields that vvmd does not know.
  CHECK_THAT(Table::open(path, old_schema).status().message(),
             Catch::Contains("is not the one this vvmd writes"));
  // Nor is a schema that changed a field before the new ones an upgrade: refused.
  std::vector<Field> changed = fields;
  changed[1].width = 9;
  CHECK_THAT(Table::open(path, must(Schema::make("vv", changed, 128))).status().message(),
             Catch::Contains("is not the one this vvmd writes"));
}

TEST_CASE("an upgrade stops at a torn record and leaves the table as it was") {
  auto dir = must(TempDir::create());
  const std::string path = dir.file("vv.tab");
  {
    Table t = must(Table::create(path, test_schema()));
    must(t.insert(vv("A1", "hot", 1, 1)));
    must(t.insert(vv("A2", "hot", 2, 2)));
    must(t.sync());
  }
  poke(path, 2 * 128 + 20, "zz");
  const std::string before = file_text(path);
  std::vector<Field> fields = test_schema().fields();
  fields.push_back({"tier", FieldKind::kText, 4, {}});
  auto r = Table::open(path, must(Schema::make("vv", fields, 128)));
  CHECK_THAT(r.status().message(), Catch::Contains("vv.tab: record 2: checksum") &&
                                       Catch::Contains("the table was not upgraded"));
  CHECK(file_text(path) == before);
}
