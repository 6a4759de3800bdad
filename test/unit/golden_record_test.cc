// golden_record_test.cc: vvmd's database formats on disk, pinned: the exact text of a VV, a VSN
// and a counter record and of each table's header record, and the bytes of a journal frame,
// compared with literals recorded from the code as it was when these tests were written. A
// failure here means that the disk format moved: a vvmd built from this tree could no longer
// open the databases that earlier ones wrote (test/data/db-v1 and golden_db_test.cc check that
// too). Never "fix" a literal here to make a test pass.
//
// A record is one line of ASCII (db/record.h): its state (A live, D deleted, H header), its
// CRC-32C in hex, the fields, blanks up to the record size, a newline. The literals give one
// field a line. Two layouts, as the table header's version says:
//   format 1 (kVvRecord, ...): each field padded to its width, single blanks between. Written by
//     the first vvmd; still decoded, and upgraded by Table::open (the tests below check both).
//   format 2 (kVvRecordV2, ...): single blanks between the fields, padding only before the
//     newline, so that cut -d' ', awk and sort -k count fields right. Written now.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "catalog/tables.h"
#include "db/database.h"
#include "db/table.h"
#include "process.h"

using namespace vvm;
using namespace vvm::db;
using namespace vvm::vvmd;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string from_hex(std::string_view golden) {
  std::string hex;
  for (char c : golden) {
    if (c != ' ') hex += c;
  }
  REQUIRE(hex.size() % 2 == 0);
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

// A record with its newline shown, for the message of a failed check.
std::string shown(std::string_view record) {
  std::string out(record);
  if (!out.empty() && out.back() == '\n') out.replace(out.size() - 1, 1, "\\n");
  return "[" + out + "]";
}

void check_record(std::string_view name, std::string_view got, std::string_view golden) {
  INFO(name << " as written now: " << shown(got));
  INFO(name << " golden:         " << shown(golden));
  CHECK(got.size() == golden.size());
  CHECK(got == golden);
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every field set, each wide as its schema allows where that shows padding and cutting.
Vv full_vv() {
  Vv r;
  r.name = "A0000000042";
  r.vv_class = "A";
  r.serial = 42;
  r.client_id = 12345678901234567890u;
  r.owner = "alice";
  r.group = "staff";
  r.perms = 0750;
  r.size = 1099511627776;  // 1 TiB
  r.state = VvState::kArchived;
  r.cache = CacheState::kEvicted;
  r.created = 0x0065a0b1c2;
  r.finished = 0x0065a0b1d3;
  r.accessed = 0x0065a0b1e4;
  r.checksum = 0x0123456789abcdef;
  r.copies = {VvCopy{"L00001", 17}, VvCopy{"M00002", 3}, VvCopy{"N00003", 999999},
              VvCopy{"P00004", 1}};
  return r;
}

Vsn full_vsn() {
  Vsn r;
  r.name = "L00001";
  r.media = "LTO9";
  r.vsn_class = "A";
  r.state = VsnState::kFull;
  r.location = "drive:d0";
  r.next_file = 18;
  r.bytes_used = 17592186044416;  // 16 TiB
  r.capacity = 18000000000000;
  r.errors = 2;
  r.last_mount = 0x0065a0b1f5;
  return r;
}

// A VV with no copies yet and nothing but its creation recorded: "-" for the empty texts.
Vv hot_vv() {
  Vv r;
  r.name = "B0000000001";
  r.vv_class = "B";
  r.serial = 1;
  r.client_id = 0;
  r.owner = "bob";
  r.group = "wheel";
  r.size = 4096;
  r.created = r.accessed = 0x0065000000;
  return r;
}

// --- the literals ---

constexpr std::string_view kVvRecord =
    "A "                     // state: live
    "51c5614f "              // CRC-32C of the record but these 8 characters
    "A0000000042 "           // name (11)
    "A "                     // class (1)
    "0000000042 "            // serial (10)
    "12345678901234567890 "  // client_id (20)
    "alice            "      // owner (16)
    "staff            "      // group (16)
    "0750 "                  // perms (4)
    "0001099511627776 "      // size (16)
    "archived  "             // state (9)
    "evicted  "              // cache (8)
    "0065a0b1c2 "            // created (10)
    "0065a0b1d3 "            // finished (10)
    "0065a0b1e4 "            // accessed (10)
    "0123456789abcdef "      // checksum (16)
    "L00001 "                // copy1_vsn (6)
    "000017 "                // copy1_file (6)
    "M00002 "                // copy2_vsn (6)
    "000003 "                // copy2_file (6)
    "N00003 "                // copy3_vsn (6)
    "999999 "                // copy3_file (6)
    "P00004 "                // copy4_vsn (6)
    "000001 "                // copy4_file (6)
    "                 \n";   // padding (17 blanks), newline
constexpr std::string_view kDeletedVvRecord =
    "D "                     // state: deleted
    "047d0933 "              // CRC-32C of the record but these 8 characters
    "A0000000042 "           // name (11)
    "A "                     // class (1)
    "0000000042 "            // serial (10)
    "12345678901234567890 "  // client_id (20)
    "alice            "      // owner (16)
    "staff            "      // group (16)
    "0750 "                  // perms (4)
    "0001099511627776 "      // size (16)
    "archived  "             // state (9)
    "evicted  "              // cache (8)
    "0065a0b1c2 "            // created (10)
    "0065a0b1d3 "            // finished (10)
    "0065a0b1e4 "            // accessed (10)
    "0123456789abcdef "      // checksum (16)
    "L00001 "                // copy1_vsn (6)
    "000017 "                // copy1_file (6)
    "M00002 "                // copy2_vsn (6)
    "000003 "                // copy2_file (6)
    "N00003 "                // copy3_vsn (6)
    "999999 "                // copy3_file (6)
    "P00004 "                // copy4_vsn (6)
    "000001 "                // copy4_file (6)
    "                 \n";   // padding (17 blanks), newline
constexpr std::string_view kHotVvRecord =
    "A "                     // state: live
    "e99c7a78 "              // CRC-32C of the record but these 8 characters
    "B0000000001 "           // name (11)
    "B "                     // class (1)
    "0000000001 "            // serial (10)
    "00000000000000000000 "  // client_id (20)
    "bob              "      // owner (16)
    "wheel            "      // group (16)
    "0640 "                  // perms (4)
    "0000000000004096 "      // size (16)
    "hot       "             // state (9)
    "cached   "              // cache (8)
    "0065000000 "            // created (10)
    "0000000000 "            // finished (10)
    "0065000000 "            // accessed (10)
    "0000000000000000 "      // checksum (16)
    "-      "                // copy1_vsn (6)
    "000000 "                // copy1_file (6)
    "-      "                // copy2_vsn (6)
    "000000 "                // copy2_file (6)
    "-      "                // copy3_vsn (6)
    "000000 "                // copy3_file (6)
    "-      "                // copy4_vsn (6)
    "000000 "                // copy4_file (6)
    "                 \n";   // padding (17 blanks), newline
constexpr std::string_view kVsnRecord =
    "A "                    // state: live
    "88c19d20 "             // CRC-32C of the record but these 8 characters
    "L00001 "               // name (6)
    "LTO9     "             // media (8)
    "A "                    // class (1)
    "full     "             // state (8)
    "drive:d0     "         // location (12)
    "000018 "               // next_file (6)
    "0017592186044416 "     // bytes_used (16)
    "0018000000000000 "     // capacity (16)
    "000002 "               // errors (6)
    "0065a0b1f5 "           // last_mount (10)
    "                 \n";  // padding (17 blanks), newline
constexpr std::string_view kCounterRecord =
    "A "                         // state: live
    "3cbd5695 "                  // CRC-32C of the record but these 8 characters
    "serial.A                 "  // name (24)
    "12345678901234567890 "      // value (20)
    "      \n";                  // padding (6 blanks), newline
constexpr std::string_view kVvHeader =
    "H "                                        // state: header
    "932ed2ff "                                 // CRC-32C of the record but these 8 characters
    "vvm-table 1 vv 256 22 41a64df4"            // vvm-table VERSION TABLE SIZE FIELDS FINGERPRINT
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "              \n";                         // padding (14 blanks), newline
constexpr std::string_view kVsnHeader =
    "H "                                        // state: header
    "8a31c464 "                                 // CRC-32C of the record but these 8 characters
    "vvm-table 1 vsn 128 10 6536d1eb"           // vvm-table VERSION TABLE SIZE FIELDS FINGERPRINT
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "     \n";                                  // padding (5 blanks), newline
constexpr std::string_view kCounterHeader =
    "H "                                 // state: header
    "5c784de6 "                          // CRC-32C of the record but these 8 characters
    "vvm-table 1 counter 64 2 0bc32076"  // vvm-table VERSION TABLE SIZE FIELDS FINGERPRINT
    "                   \n";             // padding (19 blanks), newline

// --- format 2 ---

constexpr std::string_view kVvRecordV2 =
    "A "                                        // state: live
    "2ab2735d "                                 // CRC-32C of the record but these 8 characters
    "A0000000042 "                              // name (text, at most 11)
    "A "                                        // class (text, at most 1)
    "0000000042 "                               // serial (10 digits)
    "12345678901234567890 "                     // client_id (20 digits)
    "alice "                                    // owner (text, at most 16)
    "staff "                                    // group (text, at most 16)
    "0750 "                                     // perms (text, at most 4)
    "0001099511627776 "                         // size (16 digits)
    "archived "                                 // state (text, at most 9)
    "evicted "                                  // cache (text, at most 8)
    "0065a0b1c2 "                               // created (10 digits)
    "0065a0b1d3 "                               // finished (10 digits)
    "0065a0b1e4 "                               // accessed (10 digits)
    "0123456789abcdef "                         // checksum (16 digits)
    "L00001 "                                   // copy1_vsn (text, at most 6)
    "000017 "                                   // copy1_file (6 digits)
    "M00002 "                                   // copy2_vsn (text, at most 6)
    "000003 "                                   // copy2_file (6 digits)
    "N00003 "                                   // copy3_vsn (text, at most 6)
    "999999 "                                   // copy3_file (6 digits)
    "P00004 "                                   // copy4_vsn (text, at most 6)
    "000001 "                                   // copy4_file (6 digits)
    "                                        "  // padding (40 blanks)
    " \n";                                      // padding (1 blanks), newline

constexpr std::string_view kDeletedVvRecordV2 =
    "D "                                        // state: deleted
    "7f0a1b21 "                                 // CRC-32C of the record but these 8 characters
    "A0000000042 "                              // name (text, at most 11)
    "A "                                        // class (text, at most 1)
    "0000000042 "                               // serial (10 digits)
    "12345678901234567890 "                     // client_id (20 digits)
    "alice "                                    // owner (text, at most 16)
    "staff "                                    // group (text, at most 16)
    "0750 "                                     // perms (text, at most 4)
    "0001099511627776 "                         // size (16 digits)
    "archived "                                 // state (text, at most 9)
    "evicted "                                  // cache (text, at most 8)
    "0065a0b1c2 "                               // created (10 digits)
    "0065a0b1d3 "                               // finished (10 digits)
    "0065a0b1e4 "                               // accessed (10 digits)
    "0123456789abcdef "                         // checksum (16 digits)
    "L00001 "                                   // copy1_vsn (text, at most 6)
    "000017 "                                   // copy1_file (6 digits)
    "M00002 "                                   // copy2_vsn (text, at most 6)
    "000003 "                                   // copy2_file (6 digits)
    "N00003 "                                   // copy3_vsn (text, at most 6)
    "999999 "                                   // copy3_file (6 digits)
    "P00004 "                                   // copy4_vsn (text, at most 6)
    "000001 "                                   // copy4_file (6 digits)
    "                                        "  // padding (40 blanks)
    " \n";                                      // padding (1 blanks), newline

constexpr std::string_view kHotVvRecordV2 =
    "A "                                        // state: live
    "6a6e546a "                                 // CRC-32C of the record but these 8 characters
    "B0000000001 "                              // name (text, at most 11)
    "B "                                        // class (text, at most 1)
    "0000000001 "                               // serial (10 digits)
    "00000000000000000000 "                     // client_id (20 digits)
    "bob "                                      // owner (text, at most 16)
    "wheel "                                    // group (text, at most 16)
    "0640 "                                     // perms (text, at most 4)
    "0000000000004096 "                         // size (16 digits)
    "hot "                                      // state (text, at most 9)
    "cached "                                   // cache (text, at most 8)
    "0065000000 "                               // created (10 digits)
    "0000000000 "                               // finished (10 digits)
    "0065000000 "                               // accessed (10 digits)
    "0000000000000000 "                         // checksum (16 digits)
    "- "                                        // copy1_vsn (text, at most 6)
    "000000 "                                   // copy1_file (6 digits)
    "- "                                        // copy2_vsn (text, at most 6)
    "000000 "                                   // copy2_file (6 digits)
    "- "                                        // copy3_vsn (text, at most 6)
    "000000 "                                   // copy3_file (6 digits)
    "- "                                        // copy4_vsn (text, at most 6)
    "000000 "                                   // copy4_file (6 digits)
    "                                        "  // padding (40 blanks)
    "                             \n";          // padding (29 blanks), newline

constexpr std::string_view kVsnRecordV2 =
    "A "                                // state: live
    "68a4aa68 "                         // CRC-32C of the record but these 8 characters
    "L00001 "                           // name (text, at most 6)
    "LTO9 "                             // media (text, at most 8)
    "A "                                // class (text, at most 1)
    "full "                             // state (text, at most 8)
    "drive:d0 "                         // location (text, at most 12)
    "000018 "                           // next_file (6 digits)
    "0017592186044416 "                 // bytes_used (16 digits)
    "0018000000000000 "                 // capacity (16 digits)
    "000002 "                           // errors (6 digits)
    "0065a0b1f5 "                       // last_mount (10 digits)
    "                             \n";  // padding (29 blanks), newline

constexpr std::string_view kCounterRecordV2 =
    "A "                         // state: live
    "54b57778 "                  // CRC-32C of the record but these 8 characters
    "serial.A "                  // name (text, at most 24)
    "12345678901234567890 "      // value (20 digits)
    "                      \n";  // padding (22 blanks), newline

constexpr std::string_view kVvHeaderV2 =
    "H "                                        // state: header
    "385e9c42 "                                 // CRC-32C of the record but these 8 characters
    "vvm-table 2 vv 256 22 41a64df4"            // vvm-table VERSION TABLE SIZE FIELDS FINGERPRINT
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "              \n";                         // padding (14 blanks), newline
constexpr std::string_view kVsnHeaderV2 =
    "H "                                        // state: header
    "0ca9b169 "                                 // CRC-32C of the record but these 8 characters
    "vvm-table 2 vsn 128 10 6536d1eb"           // vvm-table VERSION TABLE SIZE FIELDS FINGERPRINT
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "     \n";                                  // padding (5 blanks), newline
constexpr std::string_view kCounterHeaderV2 =
    "H "                                 // state: header
    "ef7947a4 "                          // CRC-32C of the record but these 8 characters
    "vvm-table 2 counter 64 2 0bc32076"  // vvm-table VERSION TABLE SIZE FIELDS FINGERPRINT
    "                   \n";             // padding (19 blanks), newline

// The copy table (copy.tab), new in format 2: a bad copy whose reason holds a blank, a '_', a '%'
// and a tab, escaped as db_text writes them.
CopyMark bad_copy() {
  return {"L00001",   3,       "A0000000042",
          2,          3145728, CopyMarkState::kBad,
          0x65a0b1f5, "vvmd",  "checksum 1_2% is not\t2"};
}
constexpr std::string_view kCopyRecordV2 =
    "A "                                        // state: live
    "c7d375ea "                                 // CRC-32C of the record but these 8 characters
    "L00001 "                                   // vsn (text, at most 6)
    "000003 "                                   // file (6 digits)
    "A0000000042 "                              // vv (text, at most 11)
    "2 "                                        // copy (1 digit)
    "0000000003145728 "                         // size (16 digits)
    "bad "                                      // state (text, at most 4)
    "0065a0b1f5 "                               // since (10 hex digits)
    "vvmd "                                     // by (text, at most 16)
    "checksum_1%5F2%25_is_not%092"              // why (text, at most 150)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                               \n";        // padding (31 blanks), newline
constexpr std::string_view kCopyHeaderV2 =
    "H "                                        // state: header
    "499490bc "                                 // CRC-32C of the record but these 8 characters
    "vvm-table 2 copy 256 9 333de86c"           // vvm-table VERSION TABLE SIZE FIELDS FINGERPRINT
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "             \n";                          // padding (13 blanks), newline

// The state table (state.tab): a VSN made read-only by an operator, the reason with blanks.
constexpr std::string_view kStateRecordV2 =
    "A "                                        // state: live
    "a30e27da "                                 // CRC-32C of the record but these 8 characters
    "vsn "                                      // kind (text, at most 5)
    "L00001 "                                   // name (text, at most 12)
    "read-only "                                // state (text, at most 9)
    "0065a0b1f5 "                               // since (10 hex digits)
    "root "                                     // by (text, at most 16)
    "robot_arm_jam"                             // reason (text, at most 180)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                  \n";     // padding (34 blanks), newline
constexpr std::string_view kStateHeaderV2 =
    "H "                                        // state: header
    "fd07a54f "                                 // CRC-32C of the record but these 8 characters
    "vvm-table 2 state 256 6 b6bfaea8"          // vvm-table VERSION TABLE SIZE FIELDS FINGERPRINT
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "            \n";                           // padding (12 blanks), newline

// The verify table (verify.tab): a copy found bad by a verify, the reason with blanks.
constexpr std::string_view kVerifyRecordV2 =
    "A "                                        // state: live
    "1f57e8ae "                                 // CRC-32C of the record but these 8 characters
    "L00001 "                                   // vsn (text, at most 6)
    "000003 "                                   // file (decimal, 6 digits)
    "A0000000042 "                              // vv (text, at most 11)
    "1 "                                        // copy (decimal, 1 digit)
    "0065a0b1f5 "                               // when (10 hex digits)
    "verify "                                   // how (text, at most 8)
    "bad "                                      // result: good or bad (text, at most 4)
    "checksum_mismatch"                         // why (text, at most 160)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                 \n";                      // padding (17 blanks), newline
constexpr std::string_view kVerifyHeaderV2 =
    "H "                                        // state: header
    "46b40f83 "                                 // CRC-32C of the record but these 8 characters
    "vvm-table 2 verify 256 8 ab2d6434"         // vvm-table VERSION TABLE SIZE FIELDS FINGERPRINT
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "                                        "  // padding (40 blanks)
    "           \n";                            // padding (11 blanks), newline

}  // namespace

TEST_CASE("golden record: CRC-32C", "[golden]") {
  // The check value of CRC-32C (Castagnoli), as every implementation gives it.
  CHECK(crc32c("123456789") == 0xe3069283);
  CHECK(crc32c("") == 0);
}

TEST_CASE("golden record: record sizes", "[golden]") {
  CHECK(vv_schema().record_size() == 256);
  CHECK(vsn_schema().record_size() == 128);
  CHECK(counter_schema().record_size() == 64);
  CHECK(copy_schema().record_size() == 256);
}

TEST_CASE("golden record: a state record", "[golden]") {
  const StateNote r{"vsn", "L00001", "read-only", 0x65a0b1f5, "root", "robot arm jam"};
  check_record("state", must(state_schema().encode(kLive, state_values(r))), kStateRecordV2);
  CHECK(checksum_ok(kStateRecordV2));
  CHECK(must(state_from_values(must(state_schema().decode(kStateRecordV2, "golden")))) == r);
  CHECK(state_schema().record_size() == 256);
}

TEST_CASE("golden record: a verify record", "[golden]") {
  const VerifyMark r{"L00001",   3,        "A0000000042", 1,
                     0x65a0b1f5, "verify", false,         "checksum mismatch"};
  check_record("verify", must(verify_schema().encode(kLive, verify_values(r))), kVerifyRecordV2);
  CHECK(checksum_ok(kVerifyRecordV2));
  CHECK(must(verify_from_values(must(verify_schema().decode(kVerifyRecordV2, "golden")))) == r);
  CHECK(verify_schema().record_size() == 256);
  // A result other than good or bad is refused.
  auto values = verify_values(r);
  values[6] = std::string("meh");
  CHECK_THAT(verify_from_values(values).status().message(),
             Catch::Contains("verify.result: 'meh' is not good or bad"));
}

TEST_CASE("golden record: a copy record", "[golden]") {
  const CopyMark r = bad_copy();
  check_record("copy", must(copy_schema().encode(kLive, copy_values(r))), kCopyRecordV2);
  CHECK(checksum_ok(kCopyRecordV2));
  CHECK(must(copy_from_values(must(copy_schema().decode(kCopyRecordV2, "golden")))) == r);
  CopyMark typed;
  CopySink sink(&typed);
  REQUIRE(copy_schema().decode_to(kCopyRecordV2, "golden", 1, sink).ok());
  CHECK(typed == r);
  // A dead copy with no reason: "-", the empty text.
  CopyMark dead = r;
  dead.state = CopyMarkState::kDead;
  dead.why = "";
  CHECK(must(copy_from_values(must(copy_schema().decode(
            must(copy_schema().encode(kLive, copy_values(dead))), "golden")))) == dead);
  // A reason longer than the field is cut, never split inside an escape; "-" alone is escaped.
  CHECK(db_text(std::string(200, 'x'), 150) == std::string(150, 'x'));
  CHECK(db_text(std::string(149, 'x') + "%", 150) == std::string(149, 'x'));
  CHECK(db_text("-", 150) == "%2D");
  CHECK(db_text_read("%2D") == "-");
  CHECK(db_text_read("a_b%5Fc%25") == "a b_c%");
}

// Each record: the current encoder writes the format 2 literal, which decodes to the values
// (as Values and through the typed sink); the format 1 literal still decodes to the same.
TEST_CASE("golden record: a VV record", "[golden]") {
  const Vv r = full_vv();
  check_record("vv", must(vv_schema().encode(kLive, vv_values(r))), kVvRecordV2);
  CHECK(checksum_ok(kVvRecordV2));
  CHECK(must(vv_from_values(must(vv_schema().decode(kVvRecordV2, "golden")))) == r);
  Vv typed;
  VvSink sink(&typed);
  REQUIRE(vv_schema().decode_to(kVvRecordV2, "golden", 1, sink).ok());
  CHECK(typed == r);
  // Format 1.
  CHECK(checksum_ok(kVvRecord));
  CHECK(must(vv_from_values(must(vv_schema().decode(kVvRecord, "golden")))) == r);
  Vv typed_v1;
  VvSink sink_v1(&typed_v1);
  REQUIRE(vv_schema().decode_to(kVvRecord, "golden", 1, sink_v1).ok());
  CHECK(typed_v1 == r);
}

TEST_CASE("golden record: a deleted VV record", "[golden]") {
  const Vv r = full_vv();
  check_record("deleted vv", must(vv_schema().encode(kDeleted, vv_values(r))), kDeletedVvRecordV2);
  CHECK(checksum_ok(kDeletedVvRecordV2));
  CHECK(must(vv_from_values(must(vv_schema().decode(kDeletedVvRecordV2, "golden")))) == r);
  CHECK(checksum_ok(kDeletedVvRecord));
  CHECK(must(vv_from_values(must(vv_schema().decode(kDeletedVvRecord, "golden")))) == r);
}

TEST_CASE("golden record: a hot VV record, empty copies", "[golden]") {
  const Vv r = hot_vv();
  check_record("hot vv", must(vv_schema().encode(kLive, vv_values(r))), kHotVvRecordV2);
  CHECK(checksum_ok(kHotVvRecordV2));
  CHECK(must(vv_from_values(must(vv_schema().decode(kHotVvRecordV2, "golden")))) == r);
  CHECK(checksum_ok(kHotVvRecord));
  CHECK(must(vv_from_values(must(vv_schema().decode(kHotVvRecord, "golden")))) == r);
}

TEST_CASE("golden record: a VSN record", "[golden]") {
  const Vsn r = full_vsn();
  check_record("vsn", must(vsn_schema().encode(kLive, vsn_values(r))), kVsnRecordV2);
  CHECK(checksum_ok(kVsnRecordV2));
  CHECK(must(vsn_from_values(must(vsn_schema().decode(kVsnRecordV2, "golden")))) == r);
  Vsn typed;
  VsnSink sink(&typed);
  REQUIRE(vsn_schema().decode_to(kVsnRecordV2, "golden", 1, sink).ok());
  CHECK(typed == r);
  CHECK(checksum_ok(kVsnRecord));
  CHECK(must(vsn_from_values(must(vsn_schema().decode(kVsnRecord, "golden")))) == r);
  Vsn typed_v1;
  VsnSink sink_v1(&typed_v1);
  REQUIRE(vsn_schema().decode_to(kVsnRecord, "golden", 1, sink_v1).ok());
  CHECK(typed_v1 == r);
}

TEST_CASE("golden record: a counter record", "[golden]") {
  const Values v = {std::string("serial.A"), uint64_t{12345678901234567890u}};
  check_record("counter", must(counter_schema().encode(kLive, v)), kCounterRecordV2);
  CHECK(checksum_ok(kCounterRecordV2));
  CHECK(must(counter_schema().decode(kCounterRecordV2, "golden")) == v);
  CHECK(checksum_ok(kCounterRecord));
  CHECK(must(counter_schema().decode(kCounterRecord, "golden")) == v);
}

// Format 2 is what cut, awk and sort take: the fields are the blank-separated words.
TEST_CASE("golden record: format 2 fields are the words of the line", "[golden]") {
  auto words = [](std::string_view rec) {
    std::vector<std::string> out;
    rec = rec.substr(0, rec.find_last_not_of(" \n") + 1);  // the padding goes
    for (size_t start = 0;;) {                             // cut -d' ': every blank splits
      const size_t end = rec.find(' ', start);
      out.emplace_back(rec.substr(start, end - start));
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
    return out;
  };
  const auto vv = words(kHotVvRecordV2);
  REQUIRE(vv.size() == 2 + vv_schema().fields().size());
  CHECK(vv[2 + static_cast<size_t>(vv_schema().index_of("owner"))] == "bob");
  CHECK(vv[2 + static_cast<size_t>(vv_schema().index_of("state"))] == "hot");
  CHECK(vv[2 + static_cast<size_t>(vv_schema().index_of("copy1_vsn"))] == "-");
  CHECK(words(kVvRecordV2).size() == 2 + vv_schema().fields().size());
  CHECK(words(kVsnRecordV2).size() == 2 + vsn_schema().fields().size());
  CHECK(words(kCounterRecordV2).size() == 2 + counter_schema().fields().size());
  // Format 1 is not: its padding makes empty words.
  CHECK(words(kVvRecord).size() != 2 + vv_schema().fields().size());
  // "-" stands for empty text, so it is no value of its own.
  Vv dash = hot_vv();
  dash.owner = "-";
  CHECK_THAT(vv_schema().encode(kLive, vv_values(dash)).status().message(),
             Catch::Contains("vv.owner: '-' stands for an empty text"));
}

TEST_CASE("golden record: the header records of the tables", "[golden]") {
  auto dir = must(TempDir::create());
  // As vvmd makes them: Database::open creates the missing tables.
  { auto db = must(open_database(dir.path())); }
  const std::string vv = file_bytes(dir.file("vv.tab"));
  const std::string vsn = file_bytes(dir.file("vsn.tab"));
  const std::string counter = file_bytes(dir.file("counter.tab"));
  const std::string copy = file_bytes(dir.file("copy.tab"));
  // A new table is its header alone.
  check_record("copy.tab header", copy, kCopyHeaderV2);
  check_record("state.tab header", file_bytes(dir.file("state.tab")), kStateHeaderV2);
  CHECK(checksum_ok(kStateHeaderV2));
  check_record("verify.tab header", file_bytes(dir.file("verify.tab")), kVerifyHeaderV2);
  CHECK(checksum_ok(kVerifyHeaderV2));
  CHECK(checksum_ok(kCopyHeaderV2));
  check_record("vv.tab header", vv, kVvHeaderV2);
  check_record("vsn.tab header", vsn, kVsnHeaderV2);
  check_record("counter.tab header", counter, kCounterHeaderV2);
  CHECK(checksum_ok(kVvHeaderV2));
  CHECK(checksum_ok(kVsnHeaderV2));
  CHECK(checksum_ok(kCounterHeaderV2));
  CHECK(checksum_ok(kVvHeader));
  CHECK(checksum_ok(kVsnHeader));
  CHECK(checksum_ok(kCounterHeader));
}

// A table of format 1, header and records as the first vvmd wrote them, is rewritten by
// Table::open into exactly the format 2 texts, slot for slot.
TEST_CASE("golden record: Table::open upgrades a format 1 table to format 2", "[golden]") {
  auto dir = must(TempDir::create());
  auto write = [&](const std::string& name, std::string_view bytes) {
    std::ofstream(dir.file(name), std::ios::binary) << bytes;
  };
  write("vv.tab", std::string(kVvHeader) + std::string(kVvRecord) + std::string(kDeletedVvRecord) +
                      std::string(kHotVvRecord));
  write("vsn.tab", std::string(kVsnHeader) + std::string(kVsnRecord));
  write("counter.tab", std::string(kCounterHeader) + std::string(kCounterRecord));
  {
    auto vv = must(Table::open(dir.file("vv.tab"), vv_schema()));
    CHECK(vv.live_count() == 2);
    Vv r;
    VvSink sink(&r);
    REQUIRE(vv.read_to(3, sink).ok());
    CHECK(r == hot_vv());
    must(Table::open(dir.file("vsn.tab"), vsn_schema()));
    must(Table::open(dir.file("counter.tab"), counter_schema()));
  }
  check_record("upgraded vv.tab", file_bytes(dir.file("vv.tab")),
               std::string(kVvHeaderV2) + std::string(kVvRecordV2) +
                   std::string(kDeletedVvRecordV2) + std::string(kHotVvRecordV2));
  check_record("upgraded vsn.tab", file_bytes(dir.file("vsn.tab")),
               std::string(kVsnHeaderV2) + std::string(kVsnRecordV2));
  check_record("upgraded counter.tab", file_bytes(dir.file("counter.tab")),
               std::string(kCounterHeaderV2) + std::string(kCounterRecordV2));
  CHECK_FALSE(std::filesystem::exists(dir.file("vv.tab.upgrade")));
}

// The journal frame (db/journal_format.h), all integers little-endian:
//   magic "VVMJ" (u32 0x4a4d5656), payload length (u32), sequence (u64, 1 for the first frame
//   after open), epoch (u64), then each image: table (u8: 0 vv, 1 vsn, 2 counter), slot (u64),
//   record size (u16), the record text (format 2 now); then CRC-32C (u32) of everything before
//   it.
// The epoch is random at each open (std::random_device and the clock): its 8 bytes are masked
// here, and so the CRC, which covers them, is checked by recomputing it, not against a literal.
// "golden record: a journal frame is replayed" pins a whole frame with a fixed epoch instead.
TEST_CASE("golden record: a journal frame", "[golden]") {
  auto dir = must(TempDir::create());
  auto db = must(open_database(dir.path()));
  Transaction txn;
  txn.insert(kVvTable, vv_values(full_vv()));
  txn.insert(kVsnTable, vsn_values(full_vsn()));
  REQUIRE(set_counter(*db, txn, "serial.A", 12345678901234567890u).ok());
  CHECK(must(db->commit(txn)) == std::vector<uint64_t>{1, 1, 1});
  const std::string journal = file_bytes(dir.file("journal"));
  // Made as big as a checkpoint's worth (4 MiB) and 1 MiB more, and overwritten in place.
  CHECK(journal.size() == (5u << 20));

  const size_t images = (11 + 256) + (11 + 128) + (11 + 64);
  const size_t frame_size = 24 + images + 4;
  REQUIRE(journal.size() >= 4096);
  const std::string_view j(journal);
  // magic, payload length, sequence
  CHECK(to_hex(j.substr(0, 16)) ==
        "56564d4a"
        "e1010000"
        "0100000000000000");
  // j.substr(16, 8): the epoch, masked.
  size_t pos = 24;
  CHECK(to_hex(j.substr(pos, 11)) ==
        "00"
        "0100000000000000"
        "0001");  // vv, slot 1, 256 bytes
  pos += 11;
  check_record("journal vv image", j.substr(pos, 256), kVvRecordV2);
  pos += 256;
  CHECK(to_hex(j.substr(pos, 11)) ==
        "01"
        "0100000000000000"
        "8000");  // vsn, slot 1, 128 bytes
  pos += 11;
  check_record("journal vsn image", j.substr(pos, 128), kVsnRecordV2);
  pos += 128;
  CHECK(to_hex(j.substr(pos, 11)) ==
        "02"
        "0100000000000000"
        "4000");  // counter, slot 1, 64
  pos += 11;
  check_record("journal counter image", j.substr(pos, 64), kCounterRecordV2);
  pos += 64;
  REQUIRE(pos + 4 == frame_size);
  uint32_t crc;
  std::memcpy(&crc, j.data() + pos, 4);
  CHECK(crc == crc32c(j.substr(0, pos)));
  // Then zeros to the end of the 4 KiB block the frame was written in (and to the end of the
  // journal, in a new one).
  CHECK(j.substr(frame_size).find_first_not_of('\0') == std::string_view::npos);
}

// A frame as today's code wrote it, with epoch 0x0807060504030201: a database whose journal
// holds it gets its records at open.
TEST_CASE("golden record: a journal frame is replayed", "[golden]") {
  const std::string frame = from_hex("56564d4a e1010000 0100000000000000 0102030405060708") +
                            from_hex("00 0100000000000000 0001") + std::string(kVvRecord) +
                            from_hex("01 0100000000000000 8000") + std::string(kVsnRecord) +
                            from_hex("02 0100000000000000 4000") + std::string(kCounterRecord) +
                            from_hex("8a84f800");  // CRC-32C 0x00f8848a
  {
    // The literal CRC is the one today's crc32c gives.
    const std::string_view body = std::string_view(frame).substr(0, frame.size() - 4);
    uint32_t crc;
    std::memcpy(&crc, frame.data() + body.size(), 4);
    CHECK(crc == crc32c(body));
  }
  auto dir = must(TempDir::create());
  { auto db = must(open_database(dir.path())); }  // the empty tables and journal
  {
    std::fstream out(dir.file("journal"), std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(out);
    out.write(frame.data(), static_cast<std::streamsize>(frame.size()));
    REQUIRE(out);
  }
  auto db = must(open_database(dir.path()));
  CHECK(db->live_count(kVvTable) == 1);
  CHECK(db->live_count(kVsnTable) == 1);
  Vv vv;
  REQUIRE(read_vv(*db, 1, &vv).ok());
  CHECK(vv == full_vv());
  Vsn vsn;
  REQUIRE(read_vsn(*db, 1, &vsn).ok());
  CHECK(vsn == full_vsn());
  CHECK(must(counter(*db, "serial.A")) == 12345678901234567890u);
  // Replayed into the table files themselves.
  const std::string vv_tab = file_bytes(dir.file("vv.tab"));
  REQUIRE(vv_tab.size() == 512);
  CHECK(vv_tab.substr(256) == kVvRecord);
}
