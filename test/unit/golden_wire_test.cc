// golden_wire_test.cc: the control protocol's exact bytes, pinned. Every request and every reply
// of proto/messages.h, with every field set to a value of its own, is encoded and compared with hex
// recorded from the code as it was when these tests were written; the recorded bytes are then
// decoded and compared with the value they came from. A failure here means that the wire format
// moved: old peers (vvctl, libvvclient, the plugin, vvmover) would no longer understand new ones.
// Never "fix" a literal here to make a test pass: fix the code, or add a new protocol version.
//
// The literals are one XDR word (4 bytes, big-endian) per group of 8 hex digits; a string or an
// opaque is its length word, then its bytes padded with zeros to a whole word; a hyper is two
// words; a bool or an enum one word.
#include <catch2/catch.hpp>
#include <cctype>
#include <cstring>
#include <sstream>
#include <string>
#include <string_view>

#include "process.h"
#include "proto/frame.h"
#include "proto/messages.h"

using namespace vvm;
using namespace vvm::rpc;
using vvm::test::must;

namespace {

constexpr uint32_t kXid = 0x1a2b3c4d;

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// The golden literal without its blanks.
std::string unspaced(std::string_view golden) {
  std::string out;
  for (char c : golden) {
    if (!std::isspace(static_cast<unsigned char>(c))) out += c;
  }
  return out;
}

std::string from_hex(std::string_view golden) {
  const std::string hex = unspaced(golden);
  REQUIRE(hex.size() % 2 == 0);
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

// The bytes as the literals write them, for the message of a failed check.
std::string words(std::string_view bytes) {
  const std::string hex = to_hex(bytes);
  std::ostringstream out;
  for (size_t i = 0; i < hex.size(); i += 8) {
    out << hex.substr(i, 8) << ((i / 8) % 6 == 5 ? "\n" : " ");
  }
  return out.str();
}

void check_golden(std::string_view name, const std::string& bytes, std::string_view golden) {
  INFO("GOLDEN " << name << " " << to_hex(bytes));
  INFO(name << " as encoded now, in XDR words:\n" << words(bytes));
  CHECK(to_hex(bytes) == unspaced(golden));
}

std::string encoded(RequestBody body) {
  Request r;
  r.xid = kXid;
  r.body = std::move(body);
  return must(encode_request(r));
}

std::string encoded(ReplyBody body) {
  Reply r;
  r.xid = kXid;
  r.body = std::move(body);
  return must(encode_reply(r));
}

// The golden bytes decoded: the body, after checking the preamble's fields.
template <class T>
T decoded_request(std::string_view golden) {
  Request r = must(decode_request(from_hex(golden)));
  CHECK(r.version == 1);
  CHECK(r.xid == kXid);
  REQUIRE(std::holds_alternative<T>(r.body));
  return std::get<T>(r.body);
}

template <class T>
T decoded_reply(std::string_view golden) {
  Reply r = must(decode_reply(from_hex(golden)));
  CHECK(r.version == 1);
  CHECK(r.xid == kXid);
  CHECK(r.status.ok());
  CHECK(r.status.message().empty());
  REQUIRE(std::holds_alternative<T>(r.body));
  return std::get<T>(r.body);
}

// --- the values: every field its own bytes, so that two fields swapped show ---

CopyArgs full_copy() {
  CopyArgs c;
  c.drive = "d0";
  c.vsn = "L00001";
  c.file_number = 0x0102030405060708;
  c.cache_path = "/c/A01";
  c.file.vv_class = "A";
  c.file.serial = 0x1112131415161718;
  c.file.client_id = 0x2122232425262728;
  c.file.size = 0x3132333435363738;
  c.file.time_finished = 0x4142434445464748;
  c.checksum = 0x5152535455565758;
  c.reply_to = "unix:/r.sock";
  c.request_id = 0x6162636465666768;
  return c;
}

Vv full_vv() {
  Vv v;
  v.name = "A0000000042";
  v.vv_class = "A";
  v.serial = 0x0102030405060708;
  v.client_id = 0x1112131415161718;
  v.owner = "alice";
  v.group = "staff";
  v.perms = 0750;
  v.size = 0x2122232425262728;
  v.state = VvState::kArchived;
  v.cache = CacheState::kEvicted;
  v.created = 0x3132333435363738;
  v.finished = 0x4142434445464748;
  v.accessed = 0x5152535455565758;
  v.checksum = 0x6162636465666768;
  v.copies = {VvCopy{"L00001", 0x7172737475767778}, VvCopy{"L00002", 0x8182838485868788},
              VvCopy{"M00003", 0x9192939495969798}, VvCopy{"M00004", 0xa1a2a3a4a5a6a7a8}};
  return v;
}

// A second VV for the list: other states, a copy missing (an empty VSN).
Vv other_vv() {
  Vv v;
  v.name = "B0000000007";
  v.vv_class = "B";
  v.serial = 7;
  v.client_id = 0x0000000100000002;
  v.owner = "bob";
  v.group = "wheel";
  v.perms = 0600;
  v.size = 0x0000004000000000;
  v.state = VvState::kFinished;
  v.cache = CacheState::kStaging;
  v.created = 0x65000001;
  v.finished = 0x65000002;
  v.accessed = 0x65000003;
  v.checksum = 0xfedcba9876543210;
  v.copies = {VvCopy{"L00009", 3}, VvCopy{}, VvCopy{}, VvCopy{}};
  return v;
}

Vsn full_vsn() {
  Vsn v;
  v.name = "L00001";
  v.media = "LTO9";
  v.vsn_class = "A";
  v.state = VsnState::kFull;
  v.location = "slot:12";
  v.next_file = 0x0102030405060708;
  v.bytes_used = 0x1112131415161718;
  v.capacity = 0x2122232425262728;
  v.errors = 0x3132333435363738;
  v.last_mount = 0x4142434445464748;
  return v;
}

Vsn other_vsn() {
  Vsn v;
  v.name = "M00002";
  v.media = "LTO8";
  v.vsn_class = "";
  v.state = VsnState::kRetired;
  v.location = "drive:d1";
  v.next_file = 5;
  v.bytes_used = 0x00000005000000a0;
  v.capacity = 12000000000000;
  v.errors = 2;
  v.last_mount = 0x65432100;
  return v;
}

CopyMark bad_mark() {
  return {"L00001",
          0x0102030405060708,
          "A0000000042",
          2,
          0x1112131415161718,
          CopyMarkState::kBad,
          0x2122232425262728,
          "vvmd",
          "checksum 1 is not 2"};
}

CopyMark dead_mark() {
  return {"M00002", 5, "B0000000007", 1, 0xa0, CopyMarkState::kDead, 0x65432100, "alice", ""};
}

VsnDetail vsn_detail() {
  VsnDetail d;
  d.name = "L00001";
  d.state_since = 0x0102030405060708;
  d.state_by = "root";
  d.state_reason = "cleaning";
  d.class_since = 0x1112131415161718;
  d.class_how = "added";
  d.live_files = 0x2122232425262728;
  d.live_bytes = 0x3132333435363738;
  d.dead_files = 0x4142434445464748;
  d.dead_bytes = 0x5152535455565758;
  d.bad_files = 0x6162636465666768;
  d.errors_in_row = 0x7172737475767778;
  return d;
}

DriveDetail drive_down() {
  return {"d0", "m1", "LTO9", false, 0x0102030405060708, "root", "cleaning", 3};
}

RepackInfo repack_running() {
  return {
      "L00001",           "LTO9", "running", 0x0102030405060708, "root", 2, 0x1112131415161718, 3,
      0x2122232425262728, 1};
}

void check_copy(const CopyArgs& got) { CHECK(got == full_copy()); }

}  // namespace

// ------------------------------------------------------------------------------------------------
// Requests
// ------------------------------------------------------------------------------------------------

TEST_CASE("golden wire: ping request", "[golden]") {
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000001 "                    // op: ping
      "00000005 68656c6c 6f000000";  // payload "hello"
  check_golden("ping_request", encoded(PingRequest{"hello"}), kGolden);
  CHECK(decoded_request<PingRequest>(kGolden).payload == "hello");
}

TEST_CASE("golden wire: archive request", "[golden]") {
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000002 "                             // op: archive
      "00000002 64300000 "                    // drive "d0"
      "00000006 4c303030 30310000 "           // vsn "L00001"
      "01020304 05060708 "                    // file_number
      "00000006 2f632f41 30310000 "           // cache_path "/c/A01"
      "00000001 41000000 "                    // file.vv_class "A"
      "11121314 15161718 "                    // file.serial
      "21222324 25262728 "                    // file.client_id
      "31323334 35363738 "                    // file.size
      "41424344 45464748 "                    // file.time_finished
      "51525354 55565758 "                    // checksum
      "0000000c 756e6978 3a2f722e 736f636b "  // reply_to "unix:/r.sock"
      "61626364 65666768";                    // request_id
  check_golden("archive_request", encoded(ArchiveRequest{full_copy()}), kGolden);
  check_copy(decoded_request<ArchiveRequest>(kGolden).copy);
}

TEST_CASE("golden wire: stage request", "[golden]") {
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000003 "                             // op: stage
      "00000002 64300000 "                    // drive "d0"
      "00000006 4c303030 30310000 "           // vsn "L00001"
      "01020304 05060708 "                    // file_number
      "00000006 2f632f41 30310000 "           // cache_path "/c/A01"
      "00000001 41000000 "                    // file.vv_class "A"
      "11121314 15161718 "                    // file.serial
      "21222324 25262728 "                    // file.client_id
      "31323334 35363738 "                    // file.size
      "41424344 45464748 "                    // file.time_finished
      "51525354 55565758 "                    // checksum
      "0000000c 756e6978 3a2f722e 736f636b "  // reply_to "unix:/r.sock"
      "61626364 65666768";                    // request_id
  check_golden("stage_request", encoded(StageRequest{full_copy()}), kGolden);
  check_copy(decoded_request<StageRequest>(kGolden).copy);
}

TEST_CASE("golden wire: copy report, failed", "[golden]") {
  CopyReport r;
  r.request_id = 0x0102030405060708;
  r.mover = "mv1";
  r.job = 0x1112131415161718;
  r.state = CopyState::kFailed;
  r.bytes_done = 0x2122232425262728;
  r.bytes_total = 0x3132333435363738;
  r.vsn = "L00001";
  r.file_number = 0x4142434445464748;
  r.checksum = 0x5152535455565758;
  r.failure = Status::NoSpace("VSN full");
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000004 "                    // op: copy report
      "01020304 05060708 "           // request_id
      "00000003 6d763100 "           // mover "mv1"
      "11121314 15161718 "           // job
      "00000002 "                    // state: failed
      "21222324 25262728 "           // bytes_done
      "31323334 35363738 "           // bytes_total
      "00000006 4c303030 30310000 "  // vsn "L00001"
      "41424344 45464748 "           // file_number
      "51525354 55565758 "           // checksum
      "0000000c "                    // code: no space
      "00000008 56534e20 66756c6c";  // message "VSN full"
  check_golden("copy_report_request", encoded(r), kGolden);
  auto got = decoded_request<CopyReport>(kGolden);
  CHECK(got.request_id == r.request_id);
  CHECK(got.mover == r.mover);
  CHECK(got.job == r.job);
  CHECK(got.state == r.state);
  CHECK(got.bytes_done == r.bytes_done);
  CHECK(got.bytes_total == r.bytes_total);
  CHECK(got.vsn == r.vsn);
  CHECK(got.file_number == r.file_number);
  CHECK(got.checksum == r.checksum);
  CHECK(got.failure.code() == Code::kNoSpace);
  CHECK(got.failure.message() == "VSN full");
}

TEST_CASE("golden wire: vv create request", "[golden]") {
  VvCreateRequest r{"A", 0x0102030405060708, 0x1112131415161718, "alice", "staff", "0750"};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000005 "                    // op: vv create
      "00000001 41000000 "           // vv_class "A"
      "01020304 05060708 "           // size
      "11121314 15161718 "           // client_id
      "00000005 616c6963 65000000 "  // owner "alice"
      "00000005 73746166 66000000 "  // group "staff"
      "00000004 30373530";           // perms "0750"
  check_golden("vv_create_request", encoded(r), kGolden);
  CHECK(decoded_request<VvCreateRequest>(kGolden) == r);
}

TEST_CASE("golden wire: vv show request", "[golden]") {
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000006 "                             // op: vv show
      "0000000b 41303030 30303030 30343200";  // name "A0000000042"
  check_golden("vv_show_request", encoded(VvShowRequest{"A0000000042"}), kGolden);
  CHECK(decoded_request<VvShowRequest>(kGolden).name == "A0000000042");
}

TEST_CASE("golden wire: vv list request", "[golden]") {
  SECTION("with a client id") {
    VvListRequest r{VvState::kFinished, "A", 0x0102030405060708, "A0000000041", 0x0a0b0c0d};
    constexpr std::string_view kGolden =
        "56564d31 "                             // magic "VVM1"
        "00000001 "                             // version
        "1a2b3c4d "                             // xid
        "00000007 "                             // op: vv list
        "00000002 "                             // state: finished
        "00000001 41000000 "                    // vv_class "A"
        "00000001 "                             // has_client_id: true
        "01020304 05060708 "                    // client_id
        "0000000b 41303030 30303030 30343100 "  // after "A0000000041"
        "0a0b0c0d";                             // limit
    check_golden("vv_list_request", encoded(r), kGolden);
    CHECK(decoded_request<VvListRequest>(kGolden) == r);
  }
  SECTION("without a client id") {
    VvListRequest r{VvState::kArchived, "B", std::nullopt, "B0000000001", 7};
    constexpr std::string_view kGolden =
        "56564d31 "                             // magic "VVM1"
        "00000001 "                             // version
        "1a2b3c4d "                             // xid
        "00000007 "                             // op: vv list
        "00000003 "                             // state: archived
        "00000001 42000000 "                    // vv_class "B"
        "00000000 "                             // has_client_id: false
        "00000000 00000000 "                    // client_id
        "0000000b 42303030 30303030 30303100 "  // after "B0000000001"
        "00000007";                             // limit
    check_golden("vv_list_request_any_id", encoded(r), kGolden);
    CHECK(decoded_request<VvListRequest>(kGolden) == r);
  }
}

TEST_CASE("golden wire: vv finish request", "[golden]") {
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000008 "                             // op: vv finish
      "0000000b 41303030 30303030 30343200";  // name "A0000000042"
  check_golden("vv_finish_request", encoded(VvFinishRequest{"A0000000042"}), kGolden);
  CHECK(decoded_request<VvFinishRequest>(kGolden).name == "A0000000042");
}

TEST_CASE("golden wire: vv remove request", "[golden]") {
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000009 "                             // op: vv remove
      "0000000b 41303030 30303030 30343200 "  // name "A0000000042"
      "00000001";                             // force: true
  check_golden("vv_remove_request", encoded(VvRemoveRequest{"A0000000042", true}), kGolden);
  auto got = decoded_request<VvRemoveRequest>(kGolden);
  CHECK(got.name == "A0000000042");
  CHECK(got.force);
}

TEST_CASE("golden wire: vv open request", "[golden]") {
  VvOpenRequest r;
  r.name = "A0000000042";
  r.writable = true;
  r.use = true;
  r.tcp = true;
  r.uid = 0x01020304;
  r.gid = 0x11121314;
  r.groups = {0x21222324, 0x31323334};
  r.host = "nbd-host";
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "0000000a "                             // op: vv open
      "0000000b 41303030 30303030 30343200 "  // name "A0000000042"
      "00000001 "                             // writable: true
      "00000001 "                             // use: true
      "00000001 "                             // tcp: true
      "01020304 "                             // uid
      "11121314 "                             // gid
      "00000002 21222324 31323334 "           // groups: 2, then each
      "00000008 6e62642d 686f7374";           // host "nbd-host"
  check_golden("vv_open_request", encoded(r), kGolden);
  CHECK(decoded_request<VvOpenRequest>(kGolden) == r);
}

TEST_CASE("golden wire: vv close request", "[golden]") {
  VvCloseRequest r{0x0102030405060708, true};
  constexpr std::string_view kGolden =
      "56564d31 "           // magic "VVM1"
      "00000001 "           // version
      "1a2b3c4d "           // xid
      "0000000b "           // op: vv close
      "01020304 05060708 "  // open_id
      "00000001";           // written: true
  check_golden("vv_close_request", encoded(r), kGolden);
  CHECK(decoded_request<VvCloseRequest>(kGolden) == r);
}

TEST_CASE("golden wire: vsn add request", "[golden]") {
  VsnAddRequest r{"L00001", "LTO9", "A"};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "0000000c "                    // op: vsn add
      "00000006 4c303030 30310000 "  // vsn "L00001"
      "00000004 4c544f39 "           // media "LTO9"
      "00000001 41000000";           // vsn_class "A"
  check_golden("vsn_add_request", encoded(r), kGolden);
  CHECK(decoded_request<VsnAddRequest>(kGolden) == r);
}

TEST_CASE("golden wire: vsn list request", "[golden]") {
  VsnListRequest r{"L00001", 0x0a0b0c0d};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "0000000d "                    // op: vsn list
      "00000006 4c303030 30310000 "  // after "L00001"
      "0a0b0c0d";                    // limit
  check_golden("vsn_list_request", encoded(r), kGolden);
  CHECK(decoded_request<VsnListRequest>(kGolden) == r);
}

TEST_CASE("golden wire: vv stage request", "[golden]") {
  VvStageRequest r{"A0000000042", true};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "0000000e "                             // op: vv stage
      "0000000b 41303030 30303030 30343200 "  // name "A0000000042"
      "00000001";                             // wait: true
  check_golden("vv_stage_request", encoded(r), kGolden);
  CHECK(decoded_request<VvStageRequest>(kGolden) == r);
}

TEST_CASE("golden wire: status request", "[golden]") {
  constexpr std::string_view kGolden =
      "56564d31 "  // magic "VVM1"
      "00000001 "  // version
      "1a2b3c4d "  // xid
      "00000010";  // op: status
  check_golden("status_request", encoded(StatusRequest{}), kGolden);
  CHECK(decoded_request<StatusRequest>(kGolden) == StatusRequest{});
}

TEST_CASE("golden wire: vv evict request", "[golden]") {
  VvEvictRequest r{"A0000000042"};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "0000000f "                             // op: vv evict
      "0000000b 41303030 30303030 30343200";  // name "A0000000042"
  check_golden("vv_evict_request", encoded(r), kGolden);
  CHECK(decoded_request<VvEvictRequest>(kGolden) == r);
}

TEST_CASE("golden wire: db stats and db check requests", "[golden]") {
  constexpr std::string_view kStats =
      "56564d31 "  // magic "VVM1"
      "00000001 "  // version
      "1a2b3c4d "  // xid
      "00000011";  // op: db stats
  check_golden("db_stats_request", encoded(DbStatsRequest{}), kStats);
  CHECK(decoded_request<DbStatsRequest>(kStats) == DbStatsRequest{});
  constexpr std::string_view kCheck =
      "56564d31 "  // magic "VVM1"
      "00000001 "  // version
      "1a2b3c4d "  // xid
      "00000012";  // op: db check
  check_golden("db_check_request", encoded(DbCheckRequest{}), kCheck);
  CHECK(decoded_request<DbCheckRequest>(kCheck) == DbCheckRequest{});
}

TEST_CASE("golden wire: db backup request", "[golden]") {
  DbBackupRequest r{"/var/backup"};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000013 "                             // op: db backup
      "0000000b 2f766172 2f626163 6b757000";  // dir "/var/backup"
  check_golden("db_backup_request", encoded(r), kGolden);
  CHECK(decoded_request<DbBackupRequest>(kGolden) == r);
}

// ------------------------------------------------------------------------------------------------
// Replies
// ------------------------------------------------------------------------------------------------

TEST_CASE("golden wire: ping reply", "[golden]") {
  PingReply r{"vvmd", "host1", "vvm 0.1.0", 0x0102030405060708, "hello"};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000000 "                             // code: ok
      "00000000 "                             // message ""
      "00000001 "                             // op: ping
      "00000004 76766d64 "                    // daemon "vvmd"
      "00000005 686f7374 31000000 "           // name "host1"
      "00000009 76766d20 302e312e 30000000 "  // software "vvm 0.1.0"
      "01020304 05060708 "                    // uptime_ms
      "00000005 68656c6c 6f000000";           // payload "hello"
  check_golden("ping_reply", encoded(r), kGolden);
  auto got = decoded_reply<PingReply>(kGolden);
  CHECK(got.daemon == r.daemon);
  CHECK(got.name == r.name);
  CHECK(got.software == r.software);
  CHECK(got.uptime_ms == r.uptime_ms);
  CHECK(got.payload == r.payload);
}

TEST_CASE("golden wire: copy accepted, archive", "[golden]") {
  CopyAccepted r{Op::kArchive, 0x0102030405060708, "d0"};
  constexpr std::string_view kGolden =
      "56564d31 "           // magic "VVM1"
      "00000001 "           // version
      "1a2b3c4d "           // xid
      "00000000 "           // code: ok
      "00000000 "           // message ""
      "00000002 "           // op: archive
      "01020304 05060708 "  // job
      "00000002 64300000";  // drive "d0"
  check_golden("archive_accepted_reply", encoded(r), kGolden);
  CHECK(decoded_reply<CopyAccepted>(kGolden) == r);
}

TEST_CASE("golden wire: copy accepted, stage", "[golden]") {
  CopyAccepted r{Op::kStage, 0x1112131415161718, "d1"};
  constexpr std::string_view kGolden =
      "56564d31 "           // magic "VVM1"
      "00000001 "           // version
      "1a2b3c4d "           // xid
      "00000000 "           // code: ok
      "00000000 "           // message ""
      "00000003 "           // op: stage
      "11121314 15161718 "  // job
      "00000002 64310000";  // drive "d1"
  check_golden("stage_accepted_reply", encoded(r), kGolden);
  CHECK(decoded_reply<CopyAccepted>(kGolden) == r);
}

TEST_CASE("golden wire: verify request", "[golden]") {
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "0000001c "                             // op: verify
      "00000002 64300000 "                    // drive "d0"
      "00000006 4c303030 30310000 "           // vsn "L00001"
      "01020304 05060708 "                    // file_number
      "00000006 2f632f41 30310000 "           // cache_path "/c/A01"
      "00000001 41000000 "                    // file.vv_class "A"
      "11121314 15161718 "                    // file.serial
      "21222324 25262728 "                    // file.client_id
      "31323334 35363738 "                    // file.size
      "41424344 45464748 "                    // file.time_finished
      "51525354 55565758 "                    // checksum
      "0000000c 756e6978 3a2f722e 736f636b "  // reply_to "unix:/r.sock"
      "61626364 65666768";                    // request_id
  check_golden("verify_request", encoded(VerifyRequest{full_copy()}), kGolden);
  check_copy(decoded_request<VerifyRequest>(kGolden).copy);
}

TEST_CASE("golden wire: copy accepted, verify", "[golden]") {
  CopyAccepted r{Op::kVerify, 0x2122232425262728, "d2"};
  constexpr std::string_view kGolden =
      "56564d31 "           // magic "VVM1"
      "00000001 "           // version
      "1a2b3c4d "           // xid
      "00000000 "           // code: ok
      "00000000 "           // message ""
      "0000001c "           // op: verify
      "21222324 25262728 "  // job
      "00000002 64320000";  // drive "d2"
  check_golden("verify_accepted_reply", encoded(r), kGolden);
  CHECK(decoded_reply<CopyAccepted>(kGolden) == r);
}

TEST_CASE("golden wire: tape copy request", "[golden]") {
  TapeCopyRequest r{full_copy(), "d1", "L00002", 0x7172737475767778};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "0000001f "                             // op: tape copy
      "00000002 64300000 "                    // to.drive "d0"
      "00000006 4c303030 30310000 "           // to.vsn "L00001"
      "01020304 05060708 "                    // to.file_number
      "00000006 2f632f41 30310000 "           // to.cache_path "/c/A01"
      "00000001 41000000 "                    // to.file.vv_class "A"
      "11121314 15161718 "                    // to.file.serial
      "21222324 25262728 "                    // to.file.client_id
      "31323334 35363738 "                    // to.file.size
      "41424344 45464748 "                    // to.file.time_finished
      "51525354 55565758 "                    // to.checksum
      "0000000c 756e6978 3a2f722e 736f636b "  // to.reply_to "unix:/r.sock"
      "61626364 65666768 "                    // to.request_id
      "00000002 64310000 "                    // from_drive "d1"
      "00000006 4c303030 30320000 "           // from_vsn "L00002"
      "71727374 75767778";                    // from_file
  check_golden("tape_copy_request", encoded(r), kGolden);
  CHECK(decoded_request<TapeCopyRequest>(kGolden) == r);
}

TEST_CASE("golden wire: copy accepted, tape copy", "[golden]") {
  CopyAccepted r{Op::kTapeCopy, 0x3132333435363738, "d3"};
  constexpr std::string_view kGolden =
      "56564d31 "           // magic "VVM1"
      "00000001 "           // version
      "1a2b3c4d "           // xid
      "00000000 "           // code: ok
      "00000000 "           // message ""
      "0000001f "           // op: tape copy
      "31323334 35363738 "  // job
      "00000002 64330000";  // drive "d3"
  check_golden("tape_copy_accepted_reply", encoded(r), kGolden);
  CHECK(decoded_reply<CopyAccepted>(kGolden) == r);
}

TEST_CASE("golden wire: cancel request", "[golden]") {
  CancelRequest r{0x0102030405060708, 0x1112131415161718, "stage"};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000028 "                    // op: cancel
      "01020304 05060708 "           // job
      "11121314 15161718 "           // request_id
      "00000005 73746167 65000000";  // reason "stage"
  check_golden("cancel_request", encoded(r), kGolden);
  CHECK(decoded_request<CancelRequest>(kGolden) == r);
}

TEST_CASE("golden wire: cancel reply", "[golden]") {
  constexpr std::string_view kGolden =
      "56564d31 "  // magic "VVM1"
      "00000001 "  // version
      "1a2b3c4d "  // xid
      "00000000 "  // code: ok
      "00000000 "  // message ""
      "00000028";  // op: cancel
  check_golden("cancel_reply", encoded(CancelReply{}), kGolden);
  (void)decoded_reply<CancelReply>(kGolden);
}

TEST_CASE("golden wire: copy report ack", "[golden]") {
  constexpr std::string_view kGolden =
      "56564d31 "  // magic "VVM1"
      "00000001 "  // version
      "1a2b3c4d "  // xid
      "00000000 "  // code: ok
      "00000000 "  // message ""
      "00000004";  // op: copy report
  check_golden("copy_report_ack_reply", encoded(CopyReportAck{}), kGolden);
  (void)decoded_reply<CopyReportAck>(kGolden);
}

TEST_CASE("golden wire: vv reply to create", "[golden]") {
  VvReply r{Op::kVvCreate, full_vv()};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000000 "                             // code: ok
      "00000000 "                             // message ""
      "00000005 "                             // op: vv create
      "0000000b 41303030 30303030 30343200 "  // name "A0000000042"
      "00000001 41000000 "                    // vv_class "A"
      "01020304 05060708 "                    // serial
      "11121314 15161718 "                    // client_id
      "00000005 616c6963 65000000 "           // owner "alice"
      "00000005 73746166 66000000 "           // group "staff"
      "000001e8 "                             // perms
      "21222324 25262728 "                    // size
      "00000003 "                             // state: archived
      "00000002 "                             // cache: evicted
      "31323334 35363738 "                    // created
      "41424344 45464748 "                    // finished
      "51525354 55565758 "                    // accessed
      "61626364 65666768 "                    // checksum
      "00000006 4c303030 30310000 "           // copies[0].vsn "L00001"
      "71727374 75767778 "                    // copies[0].file
      "00000006 4c303030 30320000 "           // copies[1].vsn "L00002"
      "81828384 85868788 "                    // copies[1].file
      "00000006 4d303030 30330000 "           // copies[2].vsn "M00003"
      "91929394 95969798 "                    // copies[2].file
      "00000006 4d303030 30340000 "           // copies[3].vsn "M00004"
      "a1a2a3a4 a5a6a7a8";                    // copies[3].file
  check_golden("vv_create_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VvReply>(kGolden) == r);
}

TEST_CASE("golden wire: vv reply to show", "[golden]") {
  VvReply r{Op::kVvShow, full_vv()};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000000 "                             // code: ok
      "00000000 "                             // message ""
      "00000006 "                             // op: vv show
      "0000000b 41303030 30303030 30343200 "  // name "A0000000042"
      "00000001 41000000 "                    // vv_class "A"
      "01020304 05060708 "                    // serial
      "11121314 15161718 "                    // client_id
      "00000005 616c6963 65000000 "           // owner "alice"
      "00000005 73746166 66000000 "           // group "staff"
      "000001e8 "                             // perms
      "21222324 25262728 "                    // size
      "00000003 "                             // state: archived
      "00000002 "                             // cache: evicted
      "31323334 35363738 "                    // created
      "41424344 45464748 "                    // finished
      "51525354 55565758 "                    // accessed
      "61626364 65666768 "                    // checksum
      "00000006 4c303030 30310000 "           // copies[0].vsn "L00001"
      "71727374 75767778 "                    // copies[0].file
      "00000006 4c303030 30320000 "           // copies[1].vsn "L00002"
      "81828384 85868788 "                    // copies[1].file
      "00000006 4d303030 30330000 "           // copies[2].vsn "M00003"
      "91929394 95969798 "                    // copies[2].file
      "00000006 4d303030 30340000 "           // copies[3].vsn "M00004"
      "a1a2a3a4 a5a6a7a8";                    // copies[3].file
  check_golden("vv_show_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VvReply>(kGolden) == r);
}

TEST_CASE("golden wire: vv reply to finish", "[golden]") {
  VvReply r{Op::kVvFinish, full_vv()};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000000 "                             // code: ok
      "00000000 "                             // message ""
      "00000008 "                             // op: vv finish
      "0000000b 41303030 30303030 30343200 "  // name "A0000000042"
      "00000001 41000000 "                    // vv_class "A"
      "01020304 05060708 "                    // serial
      "11121314 15161718 "                    // client_id
      "00000005 616c6963 65000000 "           // owner "alice"
      "00000005 73746166 66000000 "           // group "staff"
      "000001e8 "                             // perms
      "21222324 25262728 "                    // size
      "00000003 "                             // state: archived
      "00000002 "                             // cache: evicted
      "31323334 35363738 "                    // created
      "41424344 45464748 "                    // finished
      "51525354 55565758 "                    // accessed
      "61626364 65666768 "                    // checksum
      "00000006 4c303030 30310000 "           // copies[0].vsn "L00001"
      "71727374 75767778 "                    // copies[0].file
      "00000006 4c303030 30320000 "           // copies[1].vsn "L00002"
      "81828384 85868788 "                    // copies[1].file
      "00000006 4d303030 30330000 "           // copies[2].vsn "M00003"
      "91929394 95969798 "                    // copies[2].file
      "00000006 4d303030 30340000 "           // copies[3].vsn "M00004"
      "a1a2a3a4 a5a6a7a8";                    // copies[3].file
  check_golden("vv_finish_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VvReply>(kGolden) == r);
}

TEST_CASE("golden wire: vv reply to remove", "[golden]") {
  VvReply r{Op::kVvRemove, full_vv()};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000000 "                             // code: ok
      "00000000 "                             // message ""
      "00000009 "                             // op: vv remove
      "0000000b 41303030 30303030 30343200 "  // name "A0000000042"
      "00000001 41000000 "                    // vv_class "A"
      "01020304 05060708 "                    // serial
      "11121314 15161718 "                    // client_id
      "00000005 616c6963 65000000 "           // owner "alice"
      "00000005 73746166 66000000 "           // group "staff"
      "000001e8 "                             // perms
      "21222324 25262728 "                    // size
      "00000003 "                             // state: archived
      "00000002 "                             // cache: evicted
      "31323334 35363738 "                    // created
      "41424344 45464748 "                    // finished
      "51525354 55565758 "                    // accessed
      "61626364 65666768 "                    // checksum
      "00000006 4c303030 30310000 "           // copies[0].vsn "L00001"
      "71727374 75767778 "                    // copies[0].file
      "00000006 4c303030 30320000 "           // copies[1].vsn "L00002"
      "81828384 85868788 "                    // copies[1].file
      "00000006 4d303030 30330000 "           // copies[2].vsn "M00003"
      "91929394 95969798 "                    // copies[2].file
      "00000006 4d303030 30340000 "           // copies[3].vsn "M00004"
      "a1a2a3a4 a5a6a7a8";                    // copies[3].file
  check_golden("vv_remove_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VvReply>(kGolden) == r);
}

TEST_CASE("golden wire: vv reply to close", "[golden]") {
  VvReply r{Op::kVvClose, full_vv()};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000000 "                             // code: ok
      "00000000 "                             // message ""
      "0000000b "                             // op: vv close
      "0000000b 41303030 30303030 30343200 "  // name "A0000000042"
      "00000001 41000000 "                    // vv_class "A"
      "01020304 05060708 "                    // serial
      "11121314 15161718 "                    // client_id
      "00000005 616c6963 65000000 "           // owner "alice"
      "00000005 73746166 66000000 "           // group "staff"
      "000001e8 "                             // perms
      "21222324 25262728 "                    // size
      "00000003 "                             // state: archived
      "00000002 "                             // cache: evicted
      "31323334 35363738 "                    // created
      "41424344 45464748 "                    // finished
      "51525354 55565758 "                    // accessed
      "61626364 65666768 "                    // checksum
      "00000006 4c303030 30310000 "           // copies[0].vsn "L00001"
      "71727374 75767778 "                    // copies[0].file
      "00000006 4c303030 30320000 "           // copies[1].vsn "L00002"
      "81828384 85868788 "                    // copies[1].file
      "00000006 4d303030 30330000 "           // copies[2].vsn "M00003"
      "91929394 95969798 "                    // copies[2].file
      "00000006 4d303030 30340000 "           // copies[3].vsn "M00004"
      "a1a2a3a4 a5a6a7a8";                    // copies[3].file
  check_golden("vv_close_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VvReply>(kGolden) == r);
}

TEST_CASE("golden wire: vv list reply", "[golden]") {
  VvListReply r{{full_vv(), other_vv()}, true};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000000 "                             // code: ok
      "00000000 "                             // message ""
      "00000007 "                             // op: vv list
      "00000002 "                             // vvs: count
      "0000000b 41303030 30303030 30343200 "  // vvs[0].name "A0000000042"
      "00000001 41000000 "                    // vvs[0].vv_class "A"
      "01020304 05060708 "                    // vvs[0].serial
      "11121314 15161718 "                    // vvs[0].client_id
      "00000005 616c6963 65000000 "           // vvs[0].owner "alice"
      "00000005 73746166 66000000 "           // vvs[0].group "staff"
      "000001e8 "                             // vvs[0].perms
      "21222324 25262728 "                    // vvs[0].size
      "00000003 "                             // vvs[0].state: archived
      "00000002 "                             // vvs[0].cache: evicted
      "31323334 35363738 "                    // vvs[0].created
      "41424344 45464748 "                    // vvs[0].finished
      "51525354 55565758 "                    // vvs[0].accessed
      "61626364 65666768 "                    // vvs[0].checksum
      "00000006 4c303030 30310000 "           // vvs[0].copies[0].vsn "L00001"
      "71727374 75767778 "                    // vvs[0].copies[0].file
      "00000006 4c303030 30320000 "           // vvs[0].copies[1].vsn "L00002"
      "81828384 85868788 "                    // vvs[0].copies[1].file
      "00000006 4d303030 30330000 "           // vvs[0].copies[2].vsn "M00003"
      "91929394 95969798 "                    // vvs[0].copies[2].file
      "00000006 4d303030 30340000 "           // vvs[0].copies[3].vsn "M00004"
      "a1a2a3a4 a5a6a7a8 "                    // vvs[0].copies[3].file
      "0000000b 42303030 30303030 30303700 "  // vvs[1].name "B0000000007"
      "00000001 42000000 "                    // vvs[1].vv_class "B"
      "00000000 00000007 "                    // vvs[1].serial
      "00000001 00000002 "                    // vvs[1].client_id
      "00000003 626f6200 "                    // vvs[1].owner "bob"
      "00000005 77686565 6c000000 "           // vvs[1].group "wheel"
      "00000180 "                             // vvs[1].perms
      "00000040 00000000 "                    // vvs[1].size
      "00000002 "                             // vvs[1].state: finished
      "00000003 "                             // vvs[1].cache: staging
      "00000000 65000001 "                    // vvs[1].created
      "00000000 65000002 "                    // vvs[1].finished
      "00000000 65000003 "                    // vvs[1].accessed
      "fedcba98 76543210 "                    // vvs[1].checksum
      "00000006 4c303030 30390000 "           // vvs[1].copies[0].vsn "L00009"
      "00000000 00000003 "                    // vvs[1].copies[0].file
      "00000000 "                             // vvs[1].copies[1].vsn ""
      "00000000 00000000 "                    // vvs[1].copies[1].file
      "00000000 "                             // vvs[1].copies[2].vsn ""
      "00000000 00000000 "                    // vvs[1].copies[2].file
      "00000000 "                             // vvs[1].copies[3].vsn ""
      "00000000 00000000 "                    // vvs[1].copies[3].file
      "00000001";                             // more: true
  check_golden("vv_list_reply", encoded(r), kGolden);
  auto got = decoded_reply<VvListReply>(kGolden);
  CHECK(got.vvs == r.vvs);
  CHECK(got.more);
}

TEST_CASE("golden wire: vv open reply", "[golden]") {
  VvOpenReply r{full_vv(), "/c/A01", true, true, "staging", 0x0102030405060708};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000000 "                             // code: ok
      "00000000 "                             // message ""
      "0000000a "                             // op: vv open
      "0000000b 41303030 30303030 30343200 "  // vv.name "A0000000042"
      "00000001 41000000 "                    // vv.vv_class "A"
      "01020304 05060708 "                    // vv.serial
      "11121314 15161718 "                    // vv.client_id
      "00000005 616c6963 65000000 "           // vv.owner "alice"
      "00000005 73746166 66000000 "           // vv.group "staff"
      "000001e8 "                             // vv.perms
      "21222324 25262728 "                    // vv.size
      "00000003 "                             // vv.state: archived
      "00000002 "                             // vv.cache: evicted
      "31323334 35363738 "                    // vv.created
      "41424344 45464748 "                    // vv.finished
      "51525354 55565758 "                    // vv.accessed
      "61626364 65666768 "                    // vv.checksum
      "00000006 4c303030 30310000 "           // vv.copies[0].vsn "L00001"
      "71727374 75767778 "                    // vv.copies[0].file
      "00000006 4c303030 30320000 "           // vv.copies[1].vsn "L00002"
      "81828384 85868788 "                    // vv.copies[1].file
      "00000006 4d303030 30330000 "           // vv.copies[2].vsn "M00003"
      "91929394 95969798 "                    // vv.copies[2].file
      "00000006 4d303030 30340000 "           // vv.copies[3].vsn "M00004"
      "a1a2a3a4 a5a6a7a8 "                    // vv.copies[3].file
      "00000006 2f632f41 30310000 "           // cache_path "/c/A01"
      "00000001 "                             // writable: true
      "00000001 "                             // ready: true
      "00000007 73746167 696e6700 "           // not_ready "staging"
      "01020304 05060708";                    // open_id
  check_golden("vv_open_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VvOpenReply>(kGolden) == r);
}

TEST_CASE("golden wire: vsn reply", "[golden]") {
  VsnReply r{full_vsn()};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "0000000c "                    // op: vsn add
      "00000006 4c303030 30310000 "  // name "L00001"
      "00000004 4c544f39 "           // media "LTO9"
      "00000001 41000000 "           // vsn_class "A"
      "00000003 "                    // state: full
      "00000007 736c6f74 3a313200 "  // location "slot:12"
      "01020304 05060708 "           // next_file
      "11121314 15161718 "           // bytes_used
      "21222324 25262728 "           // capacity
      "31323334 35363738 "           // errors
      "41424344 45464748";           // last_mount
  check_golden("vsn_add_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VsnReply>(kGolden) == r);
}

TEST_CASE("golden wire: vsn list reply", "[golden]") {
  VsnListReply r{{full_vsn(), other_vsn()}, true};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "0000000d "                    // op: vsn list
      "00000002 "                    // vsns: count
      "00000006 4c303030 30310000 "  // vsns[0].name "L00001"
      "00000004 4c544f39 "           // vsns[0].media "LTO9"
      "00000001 41000000 "           // vsns[0].vsn_class "A"
      "00000003 "                    // vsns[0].state: full
      "00000007 736c6f74 3a313200 "  // vsns[0].location "slot:12"
      "01020304 05060708 "           // vsns[0].next_file
      "11121314 15161718 "           // vsns[0].bytes_used
      "21222324 25262728 "           // vsns[0].capacity
      "31323334 35363738 "           // vsns[0].errors
      "41424344 45464748 "           // vsns[0].last_mount
      "00000006 4d303030 30320000 "  // vsns[1].name "M00002"
      "00000004 4c544f38 "           // vsns[1].media "LTO8"
      "00000000 "                    // vsns[1].vsn_class ""
      "00000004 "                    // vsns[1].state: retired
      "00000008 64726976 653a6431 "  // vsns[1].location "drive:d1"
      "00000000 00000005 "           // vsns[1].next_file
      "00000005 000000a0 "           // vsns[1].bytes_used
      "00000ae9 f7bcc000 "           // vsns[1].capacity
      "00000000 00000002 "           // vsns[1].errors
      "00000000 65432100 "           // vsns[1].last_mount
      "00000001";                    // more: true
  check_golden("vsn_list_reply", encoded(r), kGolden);
  auto got = decoded_reply<VsnListReply>(kGolden);
  CHECK(got.vsns == r.vsns);
  CHECK(got.more);
}

TEST_CASE("golden wire: vv stage reply", "[golden]") {
  VvStageReply r{true,
                 true,
                 "L00001",
                 0x0102030405060708,
                 0x1112131415161718,
                 0x2122232425262728,
                 0x3132333435363738};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "0000000e "                    // op: vv stage
      "00000001 "                    // cached: true
      "00000001 "                    // copying: true
      "00000006 4c303030 30310000 "  // vsn "L00001"
      "01020304 05060708 "           // file
      "11121314 15161718 "           // bytes_done
      "21222324 25262728 "           // bytes_total
      "31323334 35363738";           // queued
  check_golden("vv_stage_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VvStageReply>(kGolden) == r);
}

TEST_CASE("golden wire: status reply", "[golden]") {
  StatusReply r;
  r.uptime_s = 0x0102030405060708;
  r.drives = {StatusDrive{"d0", "mv1", "LTO9", "L00001", "archive A1", 0x1112131415161718,
                          0x2122232425262728, 0x3132333435363738, false},
              StatusDrive{"d1", "mv2", "LTO8", "M00002", "stage B7", 0x4142434445464748,
                          0x5152535455565758, 0x6162636465666768, true}};
  r.queues = {StatusQueue{"archive", "A LTO9", 0x7172737475767778, 0x8182838485868788,
                          0x9192939495969798, true},
              StatusQueue{"stage", "L00001", 0xa1a2a3a4a5a6a7a8, 0xb1b2b3b4b5b6b7b8,
                          0xc1c2c3c4c5c6c7c8, false}};
  r.mounts = 0xd1d2d3d4d5d6d7d8;
  r.opens = 0xe1e2e3e4e5e6e7e8;
  r.cache_used = 0xf1f2f3f4f5f6f7f8;
  r.cache_size = 0x0f0e0d0c0b0a0908;
  r.high_watermark = 0x0a0b0c0d;
  r.low_watermark = 0x1a1b1c1d;
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000000 "                             // code: ok
      "00000000 "                             // message ""
      "00000010 "                             // op: status
      "01020304 05060708 "                    // uptime_s
      "00000002 "                             // drives: count
      "00000002 64300000 "                    // drives[0].name "d0"
      "00000003 6d763100 "                    // drives[0].mover "mv1"
      "00000004 4c544f39 "                    // drives[0].media "LTO9"
      "00000006 4c303030 30310000 "           // drives[0].vsn "L00001"
      "0000000a 61726368 69766520 41310000 "  // drives[0].copying "archive A1"
      "11121314 15161718 "                    // drives[0].bytes_done
      "21222324 25262728 "                    // drives[0].bytes_total
      "31323334 35363738 "                    // drives[0].mounts
      "00000000 "                             // drives[0].usable: false
      "00000002 64310000 "                    // drives[1].name "d1"
      "00000003 6d763200 "                    // drives[1].mover "mv2"
      "00000004 4c544f38 "                    // drives[1].media "LTO8"
      "00000006 4d303030 30320000 "           // drives[1].vsn "M00002"
      "00000008 73746167 65204237 "           // drives[1].copying "stage B7"
      "41424344 45464748 "                    // drives[1].bytes_done
      "51525354 55565758 "                    // drives[1].bytes_total
      "61626364 65666768 "                    // drives[1].mounts
      "00000001 "                             // drives[1].usable: true
      "00000002 "                             // queues: count
      "00000007 61726368 69766500 "           // queues[0].kind "archive"
      "00000006 41204c54 4f390000 "           // queues[0].key "A LTO9"
      "71727374 75767778 "                    // queues[0].files
      "81828384 85868788 "                    // queues[0].bytes
      "91929394 95969798 "                    // queues[0].oldest_s
      "00000001 "                             // queues[0].waiting: true
      "00000005 73746167 65000000 "           // queues[1].kind "stage"
      "00000006 4c303030 30310000 "           // queues[1].key "L00001"
      "a1a2a3a4 a5a6a7a8 "                    // queues[1].files
      "b1b2b3b4 b5b6b7b8 "                    // queues[1].bytes
      "c1c2c3c4 c5c6c7c8 "                    // queues[1].oldest_s
      "00000000 "                             // queues[1].waiting: false
      "d1d2d3d4 d5d6d7d8 "                    // mounts
      "e1e2e3e4 e5e6e7e8 "                    // opens
      "f1f2f3f4 f5f6f7f8 "                    // cache_used
      "0f0e0d0c 0b0a0908 "                    // cache_size
      "0a0b0c0d "                             // high_watermark
      "1a1b1c1d";                             // low_watermark
  check_golden("status_reply", encoded(r), kGolden);
  CHECK(decoded_reply<StatusReply>(kGolden) == r);
}

TEST_CASE("golden wire: vv evict reply", "[golden]") {
  VvEvictReply r{full_vv(), true, 0x0102030405060708};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000000 "                             // code: ok
      "00000000 "                             // message ""
      "0000000f "                             // op: vv evict
      "0000000b 41303030 30303030 30343200 "  // vv.name "A0000000042"
      "00000001 41000000 "                    // vv.vv_class "A"
      "01020304 05060708 "                    // vv.serial
      "11121314 15161718 "                    // vv.client_id
      "00000005 616c6963 65000000 "           // vv.owner "alice"
      "00000005 73746166 66000000 "           // vv.group "staff"
      "000001e8 "                             // vv.perms
      "21222324 25262728 "                    // vv.size
      "00000003 "                             // vv.state: archived
      "00000002 "                             // vv.cache: evicted
      "31323334 35363738 "                    // vv.created
      "41424344 45464748 "                    // vv.finished
      "51525354 55565758 "                    // vv.accessed
      "61626364 65666768 "                    // vv.checksum
      "00000006 4c303030 30310000 "           // vv.copies[0].vsn "L00001"
      "71727374 75767778 "                    // vv.copies[0].file
      "00000006 4c303030 30320000 "           // vv.copies[1].vsn "L00002"
      "81828384 85868788 "                    // vv.copies[1].file
      "00000006 4d303030 30330000 "           // vv.copies[2].vsn "M00003"
      "91929394 95969798 "                    // vv.copies[2].file
      "00000006 4d303030 30340000 "           // vv.copies[3].vsn "M00004"
      "a1a2a3a4 a5a6a7a8 "                    // vv.copies[3].file
      "00000001 "                             // already: true
      "01020304 05060708";                    // freed
  check_golden("vv_evict_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VvEvictReply>(kGolden) == r);
}

namespace {
DbStatsReply db_stats() {
  DbStatsReply st;
  st.dir = "/db";
  st.tables = {
      DbTable{"vv", "/db/vv.tab", 0x0102030405060708, 0x1112131415161718, 0x2122232425262728, 256}};
  st.journal_bytes = 0x3132333435363738;
  st.checkpoint_bytes = 0x4142434445464748;
  return st;
}
// The bytes of db_stats() after a reply's op.
constexpr std::string_view kDbStatsBytes =
    "00000003 2f646200 "                    // dir "/db"
    "00000001 "                             // tables: 1
    "00000002 76760000 "                    // tables[0].name "vv"
    "0000000a 2f64622f 76762e74 61620000 "  // tables[0].file "/db/vv.tab"
    "01020304 05060708 "                    // tables[0].records
    "11121314 15161718 "                    // tables[0].slots
    "21222324 25262728 "                    // tables[0].free_slots
    "00000000 00000100 "                    // tables[0].record_size
    "31323334 35363738 "                    // journal_bytes
    "41424344 45464748";                    // checkpoint_bytes
}  // namespace

TEST_CASE("golden wire: db stats, db check and db backup replies", "[golden]") {
  const std::string head =
      "56564d31 "                                                             // magic "VVM1"
      "00000001 "                                                             // version
      "1a2b3c4d "                                                             // xid
      "00000000 "                                                             // code: ok
      "00000000 ";                                                            // message ""
  const std::string stats = head + "00000011 " + std::string(kDbStatsBytes);  // op: db stats
  check_golden("db_stats_reply", encoded(db_stats()), stats);
  CHECK(decoded_reply<DbStatsReply>(stats) == db_stats());

  DbCheckReply check{db_stats(), {DbProblem{"a"}, DbProblem{"bc"}}};
  const std::string checked = head + "00000012 " + std::string(kDbStatsBytes) +  // op: db check
                              " 00000002 "                                       // problems: 2
                              "00000001 61000000 "                               // problems[0] "a"
                              "00000002 62630000";                               // problems[1] "bc"
  check_golden("db_check_reply", encoded(check), checked);
  CHECK(decoded_reply<DbCheckReply>(checked) == check);

  DbBackupReply backup{"/b", 0x0102030405060708, 0x1112131415161718};
  const std::string backed = head +
                             "00000013 "           // op: db backup
                             "00000002 2f620000 "  // dir "/b"
                             "01020304 05060708 "  // files
                             "11121314 15161718";  // bytes
  check_golden("db_backup_reply", encoded(backup), backed);
  CHECK(decoded_reply<DbBackupReply>(backed) == backup);
}

TEST_CASE("golden wire: copy list request", "[golden]") {
  CopyListRequest r{"A0000000042", "L00001"};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000014 "                             // op: copy list
      "0000000b 41303030 30303030 30343200 "  // vv "A0000000042"
      "00000006 4c303030 30310000";           // vsn "L00001"
  check_golden("copy_list_request", encoded(r), kGolden);
  CHECK(decoded_request<CopyListRequest>(kGolden) == r);
}

TEST_CASE("golden wire: copy list reply", "[golden]") {
  CopyListReply r{{bad_mark(), dead_mark()}};
  constexpr std::string_view kGolden =
      "56564d31 "                                               // magic "VVM1"
      "00000001 "                                               // version
      "1a2b3c4d "                                               // xid
      "00000000 "                                               // code: ok
      "00000000 "                                               // message ""
      "00000014 "                                               // op: copy list
      "00000002 "                                               // marks: count
      "00000006 4c303030 30310000 "                             // marks[0].vsn "L00001"
      "01020304 05060708 "                                      // marks[0].file
      "0000000b 41303030 30303030 30343200 "                    // marks[0].vv "A0000000042"
      "00000002 "                                               // marks[0].copy
      "11121314 15161718 "                                      // marks[0].size
      "00000001 "                                               // marks[0].state: bad
      "21222324 25262728 "                                      // marks[0].since
      "00000004 76766d64 "                                      // marks[0].by "vvmd"
      "00000013 63686563 6b73756d 20312069 73206e6f 74203200 "  // marks[0].why "checksum 1 is not
                                                                // 2"
      "00000006 4d303030 30320000 "                             // marks[1].vsn "M00002"
      "00000000 00000005 "                                      // marks[1].file
      "0000000b 42303030 30303030 30303700 "                    // marks[1].vv "B0000000007"
      "00000001 "                                               // marks[1].copy
      "00000000 000000a0 "                                      // marks[1].size
      "00000002 "                                               // marks[1].state: dead
      "00000000 65432100 "                                      // marks[1].since
      "00000005 616c6963 65000000 "                             // marks[1].by "alice"
      "00000000";                                               // marks[1].why ""
  check_golden("copy_list_reply", encoded(r), kGolden);
  CHECK(decoded_reply<CopyListReply>(kGolden) == r);
}

TEST_CASE("golden wire: vsn set request", "[golden]") {
  VsnSetRequest r{"L00001", VsnState::kReadOnly, "errors"};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000015 "                    // op: vsn set
      "00000006 4c303030 30310000 "  // vsn "L00001"
      "00000005 "                    // state: read-only
      "00000006 6572726f 72730000";  // reason "errors"
  check_golden("vsn_set_request", encoded(r), kGolden);
  CHECK(decoded_request<VsnSetRequest>(kGolden) == r);
}

TEST_CASE("golden wire: vsn set reply", "[golden]") {
  VsnSetReply r{full_vsn(), vsn_detail()};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "00000015 "                    // op: vsn set
      "00000006 4c303030 30310000 "  // vsn.name "L00001"
      "00000004 4c544f39 "           // vsn.media "LTO9"
      "00000001 41000000 "           // vsn.vsn_class "A"
      "00000003 "                    // vsn.state: full
      "00000007 736c6f74 3a313200 "  // vsn.location "slot:12"
      "01020304 05060708 "           // vsn.next_file
      "11121314 15161718 "           // vsn.bytes_used
      "21222324 25262728 "           // vsn.capacity
      "31323334 35363738 "           // vsn.errors
      "41424344 45464748 "           // vsn.last_mount
      "00000006 4c303030 30310000 "  // detail.name "L00001"
      "01020304 05060708 "           // detail.state_since
      "00000004 726f6f74 "           // detail.state_by "root"
      "00000008 636c6561 6e696e67 "  // detail.state_reason "cleaning"
      "11121314 15161718 "           // detail.class_since
      "00000005 61646465 64000000 "  // detail.class_how "added"
      "21222324 25262728 "           // detail.live_files
      "31323334 35363738 "           // detail.live_bytes
      "41424344 45464748 "           // detail.dead_files
      "51525354 55565758 "           // detail.dead_bytes
      "61626364 65666768 "           // detail.bad_files
      "71727374 75767778";           // detail.errors_in_row
  check_golden("vsn_set_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VsnSetReply>(kGolden) == r);
}

TEST_CASE("golden wire: vsn details request", "[golden]") {
  VsnDetailsRequest r{"L00001", 0x0a0b0c0d};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000016 "                    // op: vsn details
      "00000006 4c303030 30310000 "  // after "L00001"
      "0a0b0c0d";                    // limit
  check_golden("vsn_details_request", encoded(r), kGolden);
  CHECK(decoded_request<VsnDetailsRequest>(kGolden) == r);
}

TEST_CASE("golden wire: vsn details reply", "[golden]") {
  VsnDetailsReply r{{vsn_detail()}, true};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "00000016 "                    // op: vsn details
      "00000001 "                    // details: count
      "00000006 4c303030 30310000 "  // details[0].name "L00001"
      "01020304 05060708 "           // details[0].state_since
      "00000004 726f6f74 "           // details[0].state_by "root"
      "00000008 636c6561 6e696e67 "  // details[0].state_reason "cleaning"
      "11121314 15161718 "           // details[0].class_since
      "00000005 61646465 64000000 "  // details[0].class_how "added"
      "21222324 25262728 "           // details[0].live_files
      "31323334 35363738 "           // details[0].live_bytes
      "41424344 45464748 "           // details[0].dead_files
      "51525354 55565758 "           // details[0].dead_bytes
      "61626364 65666768 "           // details[0].bad_files
      "71727374 75767778 "           // details[0].errors_in_row
      "00000001";                    // more: true
  check_golden("vsn_details_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VsnDetailsReply>(kGolden) == r);
}

TEST_CASE("golden wire: drive set request", "[golden]") {
  DriveSetRequest r{"d0", false, "cleaning"};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000017 "                    // op: drive set
      "00000002 64300000 "           // drive "d0"
      "00000000 "                    // up: false
      "00000008 636c6561 6e696e67";  // reason "cleaning"
  check_golden("drive_set_request", encoded(r), kGolden);
  CHECK(decoded_request<DriveSetRequest>(kGolden) == r);
}

TEST_CASE("golden wire: drive set reply", "[golden]") {
  DriveDetail r = drive_down();
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "00000017 "                    // op: drive set
      "00000002 64300000 "           // name "d0"
      "00000002 6d310000 "           // mover "m1"
      "00000004 4c544f39 "           // media "LTO9"
      "00000000 "                    // up: false
      "01020304 05060708 "           // since
      "00000004 726f6f74 "           // by "root"
      "00000008 636c6561 6e696e67 "  // reason "cleaning"
      "00000000 00000003";           // errors_in_row
  check_golden("drive_set_reply", encoded(r), kGolden);
  CHECK(decoded_reply<DriveDetail>(kGolden) == r);
}

TEST_CASE("golden wire: drive list request", "[golden]") {
  DriveListRequest r;
  constexpr std::string_view kGolden =
      "56564d31 "  // magic "VVM1"
      "00000001 "  // version
      "1a2b3c4d "  // xid
      "00000018";  // op: drive list
  check_golden("drive_list_request", encoded(r), kGolden);
  CHECK(decoded_request<DriveListRequest>(kGolden) == r);
}

TEST_CASE("golden wire: drive list reply", "[golden]") {
  DriveListReply r{{drive_down()}};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "00000018 "                    // op: drive list
      "00000001 "                    // drives: count
      "00000002 64300000 "           // drives[0].name "d0"
      "00000002 6d310000 "           // drives[0].mover "m1"
      "00000004 4c544f39 "           // drives[0].media "LTO9"
      "00000000 "                    // drives[0].up: false
      "01020304 05060708 "           // drives[0].since
      "00000004 726f6f74 "           // drives[0].by "root"
      "00000008 636c6561 6e696e67 "  // drives[0].reason "cleaning"
      "00000000 00000003";           // drives[0].errors_in_row
  check_golden("drive_list_reply", encoded(r), kGolden);
  CHECK(decoded_reply<DriveListReply>(kGolden) == r);
}

TEST_CASE("golden wire: vsn repack request", "[golden]") {
  VsnRepackRequest r{"L00001"};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000019 "                    // op: vsn repack
      "00000006 4c303030 30310000";  // vsn "L00001"
  check_golden("vsn_repack_request", encoded(r), kGolden);
  CHECK(decoded_request<VsnRepackRequest>(kGolden) == r);
}

TEST_CASE("golden wire: vsn repack reply", "[golden]") {
  RepackInfo r = repack_running();
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "00000019 "                    // op: vsn repack
      "00000006 4c303030 30310000 "  // vsn "L00001"
      "00000004 4c544f39 "           // media "LTO9"
      "00000007 72756e6e 696e6700 "  // state "running"
      "01020304 05060708 "           // since
      "00000004 726f6f74 "           // by "root"
      "00000000 00000002 "           // files_left
      "11121314 15161718 "           // bytes_left
      "00000000 00000003 "           // files_moved
      "21222324 25262728 "           // bytes_moved
      "00000000 00000001";           // files_moving
  check_golden("vsn_repack_reply", encoded(r), kGolden);
  CHECK(decoded_reply<RepackInfo>(kGolden) == r);
}

TEST_CASE("golden wire: vsn reclaim request", "[golden]") {
  VsnReclaimRequest r{"L00001"};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "0000001a "                    // op: vsn reclaim
      "00000006 4c303030 30310000";  // vsn "L00001"
  check_golden("vsn_reclaim_request", encoded(r), kGolden);
  CHECK(decoded_request<VsnReclaimRequest>(kGolden) == r);
}

TEST_CASE("golden wire: vsn reclaim reply", "[golden]") {
  VsnReclaimReply r{full_vsn(), 7, 0x5152535455565758};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "0000001a "                    // op: vsn reclaim
      "00000006 4c303030 30310000 "  // vsn.name "L00001"
      "00000004 4c544f39 "           // vsn.media "LTO9"
      "00000001 41000000 "           // vsn.vsn_class "A"
      "00000003 "                    // vsn.state: full
      "00000007 736c6f74 3a313200 "  // vsn.location "slot:12"
      "01020304 05060708 "           // vsn.next_file
      "11121314 15161718 "           // vsn.bytes_used
      "21222324 25262728 "           // vsn.capacity
      "31323334 35363738 "           // vsn.errors
      "41424344 45464748 "           // vsn.last_mount
      "00000000 00000007 "           // dead_files
      "51525354 55565758";           // dead_bytes
  check_golden("vsn_reclaim_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VsnReclaimReply>(kGolden) == r);
}

TEST_CASE("golden wire: repack list request", "[golden]") {
  RepackListRequest r;
  constexpr std::string_view kGolden =
      "56564d31 "  // magic "VVM1"
      "00000001 "  // version
      "1a2b3c4d "  // xid
      "0000001b";  // op: repack list
  check_golden("repack_list_request", encoded(r), kGolden);
  CHECK(decoded_request<RepackListRequest>(kGolden) == r);
}

TEST_CASE("golden wire: repack list reply", "[golden]") {
  RepackListReply r{{repack_running()}};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "0000001b "                    // op: repack list
      "00000001 "                    // repacks: count
      "00000006 4c303030 30310000 "  // repacks[0].vsn "L00001"
      "00000004 4c544f39 "           // repacks[0].media "LTO9"
      "00000007 72756e6e 696e6700 "  // repacks[0].state "running"
      "01020304 05060708 "           // repacks[0].since
      "00000004 726f6f74 "           // repacks[0].by "root"
      "00000000 00000002 "           // repacks[0].files_left
      "11121314 15161718 "           // repacks[0].bytes_left
      "00000000 00000003 "           // repacks[0].files_moved
      "21222324 25262728 "           // repacks[0].bytes_moved
      "00000000 00000001";           // repacks[0].files_moving
  check_golden("repack_list_reply", encoded(r), kGolden);
  CHECK(decoded_reply<RepackListReply>(kGolden) == r);
}

TEST_CASE("golden wire: vsn verify request", "[golden]") {
  VsnVerifyRequest r{"L00001"};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "0000001d "                    // op: vsn verify
      "00000006 4c303030 30310000";  // vsn "L00001"
  check_golden("vsn_verify_request", encoded(r), kGolden);
  CHECK(decoded_request<VsnVerifyRequest>(kGolden) == r);
}

TEST_CASE("golden wire: vsn verify reply", "[golden]") {
  VsnVerifyReply r{"L00001", 5, 0x0102030405060708, 0x6572a1b0};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "0000001d "                    // op: vsn verify
      "00000006 4c303030 30310000 "  // vsn "L00001"
      "00000000 00000005 "           // files
      "01020304 05060708 "           // bytes
      "00000000 6572a1b0";           // since
  check_golden("vsn_verify_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VsnVerifyReply>(kGolden) == r);
}

TEST_CASE("golden wire: verify list request", "[golden]") {
  VerifyListRequest r{"L00001"};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "0000001e "                    // op: verify list
      "00000006 4c303030 30310000";  // vsn "L00001"
  check_golden("verify_list_request", encoded(r), kGolden);
  CHECK(decoded_request<VerifyListRequest>(kGolden) == r);
}

TEST_CASE("golden wire: verify list reply", "[golden]") {
  VerifyListReply r{
      {{"L00001", 3, "A0000000042", 1, 0x0102030405060708, "verify", false, "checksum"}}, 2};
  constexpr std::string_view kGolden =
      "56564d31 "                             // magic "VVM1"
      "00000001 "                             // version
      "1a2b3c4d "                             // xid
      "00000000 "                             // code: ok
      "00000000 "                             // message ""
      "0000001e "                             // op: verify list
      "00000001 "                             // marks: count
      "00000006 4c303030 30310000 "           // marks[0].vsn "L00001"
      "00000000 00000003 "                    // marks[0].file
      "0000000b 41303030 30303030 30343200 "  // marks[0].vv "A0000000042"
      "00000001 "                             // marks[0].copy
      "01020304 05060708 "                    // marks[0].when
      "00000006 76657269 66790000 "           // marks[0].how "verify"
      "00000000 "                             // marks[0].good: false
      "00000008 63686563 6b73756d "           // marks[0].why "checksum"
      "00000000 00000002";                    // queued
  check_golden("verify_list_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VerifyListReply>(kGolden) == r);
}

TEST_CASE("golden wire: reload request", "[golden]") {
  ReloadRequest r;
  constexpr std::string_view kGolden =
      "56564d31 "  // magic "VVM1"
      "00000001 "  // version
      "1a2b3c4d "  // xid
      "00000024";  // op: reload
  check_golden("reload_request", encoded(r), kGolden);
  CHECK(decoded_request<ReloadRequest>(kGolden) == r);
}

TEST_CASE("golden wire: reload reply", "[golden]") {
  ReloadReply r{"/etc/vvm.conf", {{"class A"}}, {{"drive d2"}}};
  constexpr std::string_view kGolden =
      "56564d31 "                                      // magic "VVM1"
      "00000001 "                                      // version
      "1a2b3c4d "                                      // xid
      "00000000 "                                      // code: ok
      "00000000 "                                      // message ""
      "00000024 "                                      // op: reload
      "0000000d 2f657463 2f76766d 2e636f6e 66000000 "  // path "/etc/vvm.conf"
      "00000001 "                                      // applied: count
      "00000007 636c6173 73204100 "                    // applied[0].text "class A"
      "00000001 "                                      // restart: count
      "00000008 64726976 65206432";                    // restart[0].text "drive d2"
  check_golden("reload_reply", encoded(r), kGolden);
  CHECK(decoded_reply<ReloadReply>(kGolden) == r);
}

TEST_CASE("golden wire: class list request", "[golden]") {
  ClassListRequest r{true};
  constexpr std::string_view kGolden =
      "56564d31 "  // magic "VVM1"
      "00000001 "  // version
      "1a2b3c4d "  // xid
      "00000025 "  // op: class list
      "00000001";  // counts: true
  check_golden("class_list_request", encoded(r), kGolden);
  CHECK(decoded_request<ClassListRequest>(kGolden) == r);
}

TEST_CASE("golden wire: class list reply", "[golden]") {
  ClassListReply r{{{"A",
                     "two",
                     {{"LTO9", true, 1, 0x0102030405060708, 3, 0x1112131415161718, 5},
                      {"LTO8", false, 6, 0x2122232425262728, 0, 0, 0}},
                     2,
                     1,
                     1,
                     0,
                     9}},
                   true};
  constexpr std::string_view kGolden =
      "56564d31 "           // magic "VVM1"
      "00000001 "           // version
      "1a2b3c4d "           // xid
      "00000000 "           // code: ok
      "00000000 "           // message ""
      "00000025 "           // op: class list
      "00000001 "           // classes: count
      "00000001 41000000 "  // classes[0].name "A"
      "00000003 74776f00 "  // classes[0].description "two"
      "00000002 "           // classes[0].media: count
      "00000004 4c544f39 "  // media[0].media "LTO9"
      "00000001 "           // media[0].listed: true
      "00000000 00000001 "  // media[0].copies
      "01020304 05060708 "  // media[0].bytes
      "00000000 00000003 "  // media[0].lacking
      "11121314 15161718 "  // media[0].lacking_bytes
      "00000000 00000005 "  // media[0].on_way
      "00000004 4c544f38 "  // media[1].media "LTO8"
      "00000000 "           // media[1].listed: false
      "00000000 00000006 "  // media[1].copies
      "21222324 25262728 "  // media[1].bytes
      "00000000 00000000 "  // media[1].lacking
      "00000000 00000000 "  // media[1].lacking_bytes
      "00000000 00000000 "  // media[1].on_way
      "00000002 "           // classes[0].read_max_drives
      "00000001 "           // classes[0].write_max_drives
      "00000001 "           // classes[0].reading
      "00000000 "           // classes[0].writing
      "00000000 00000009 "  // classes[0].vvs
      "00000001";           // counted: true
  check_golden("class_list_reply", encoded(r), kGolden);
  CHECK(decoded_reply<ClassListReply>(kGolden) == r);
}

TEST_CASE("golden wire: class prune request", "[golden]") {
  ClassPruneRequest r{"A"};
  constexpr std::string_view kGolden =
      "56564d31 "           // magic "VVM1"
      "00000001 "           // version
      "1a2b3c4d "           // xid
      "00000026 "           // op: class prune
      "00000001 41000000";  // name "A"
  check_golden("class_prune_request", encoded(r), kGolden);
  CHECK(decoded_request<ClassPruneRequest>(kGolden) == r);
}

TEST_CASE("golden wire: class prune reply", "[golden]") {
  ClassPruneReply r{"A", 3, 0x0102030405060708, 1};
  constexpr std::string_view kGolden =
      "56564d31 "           // magic "VVM1"
      "00000001 "           // version
      "1a2b3c4d "           // xid
      "00000000 "           // code: ok
      "00000000 "           // message ""
      "00000026 "           // op: class prune
      "00000001 41000000 "  // name "A"
      "00000000 00000003 "  // files
      "01020304 05060708 "  // bytes
      "00000000 00000001";  // kept
  check_golden("class_prune_reply", encoded(r), kGolden);
  CHECK(decoded_reply<ClassPruneReply>(kGolden) == r);
}

TEST_CASE("golden wire: vv copies request", "[golden]") {
  VvCopiesRequest r{{{"A1"}}};
  constexpr std::string_view kGolden =
      "56564d31 "           // magic "VVM1"
      "00000001 "           // version
      "1a2b3c4d "           // xid
      "00000027 "           // op: vv copies
      "00000001 "           // vvs: count
      "00000002 41310000";  // vvs[0].name "A1"
  check_golden("vv_copies_request", encoded(r), kGolden);
  CHECK(decoded_request<VvCopiesRequest>(kGolden) == r);
}

TEST_CASE("golden wire: vv copies reply", "[golden]") {
  VvCopiesReply r{{{"A1", {{"L80001", "LTO8"}, {"L90001", "LTO9"}}, {1}, {{"LTO7", 3}}}}};
  constexpr std::string_view kGolden =
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000000 "                    // code: ok
      "00000000 "                    // message ""
      "00000027 "                    // op: vv copies
      "00000001 "                    // vvs: count
      "00000002 41310000 "           // vvs[0].name "A1"
      "00000002 "                    // vvs[0].vsns: count
      "00000006 4c383030 30310000 "  // vsns[0].vsn "L80001"
      "00000004 4c544f38 "           // vsns[0].media "LTO8"
      "00000006 4c393030 30310000 "  // vsns[1].vsn "L90001"
      "00000004 4c544f39 "           // vsns[1].media "LTO9"
      "00000001 00000001 "           // vvs[0].extra: copy 1
      "00000001 "                    // vvs[0].lacking: count
      "00000004 4c544f37 "           // lacking[0].media "LTO7"
      "00000003";                    // lacking[0].copy
  check_golden("vv_copies_reply", encoded(r), kGolden);
  CHECK(decoded_reply<VvCopiesReply>(kGolden) == r);
}

TEST_CASE("golden wire: error reply", "[golden]") {
  Reply r;
  r.xid = kXid;
  r.status = Status::NotFound("no VV A0000000042");
  constexpr std::string_view kGolden =
      "56564d31 "                                               // magic "VVM1"
      "00000001 "                                               // version
      "1a2b3c4d "                                               // xid
      "00000002 "                                               // code: not found
      "00000011 6e6f2056 56204130 30303030 30303034 32000000 "  // message "no VV A0000000042"
      "00000000";                                               // op: none
  check_golden("error_reply", must(encode_reply(r)), kGolden);
  Reply got = must(decode_reply(from_hex(kGolden)));
  CHECK(got.version == 1);
  CHECK(got.xid == kXid);
  CHECK(got.status.code() == Code::kNotFound);
  CHECK(got.status.message() == "no VV A0000000042");
  CHECK(std::holds_alternative<std::monostate>(got.body));
  // error_reply() makes the same bytes from a request's preamble.
  CHECK(must(encode_reply(error_reply(Preamble{kProtocolMagic, 1, kXid},
                                      Status::NotFound("no VV A0000000042")))) ==
        from_hex(kGolden));
}

// ------------------------------------------------------------------------------------------------
// Record marking
// ------------------------------------------------------------------------------------------------

TEST_CASE("golden wire: a record-marked ping request", "[golden]") {
  constexpr std::string_view kGolden =
      "8000001c "                    // record mark: last, length 28
      "56564d31 "                    // magic "VVM1"
      "00000001 "                    // version
      "1a2b3c4d "                    // xid
      "00000001 "                    // op: ping
      "00000005 68656c6c 6f000000";  // payload "hello"
  const std::string framed = frame_record(encoded(PingRequest{"hello"}));
  check_golden("framed_ping_request", framed, kGolden);
  // The mark: last fragment, and the message's length.
  const std::string golden = from_hex(kGolden);
  REQUIRE(golden.size() >= kMarkSize);
  const FragmentMark mark = decode_mark(golden.data());
  CHECK(mark.last);
  CHECK(mark.length == golden.size() - kMarkSize);
  CHECK(to_hex(std::string_view(encode_mark({24, true}).data(), kMarkSize)) == "80000018");
  CHECK(to_hex(std::string_view(encode_mark({0x01020304, false}).data(), kMarkSize)) == "01020304");
  // Read back through a RecordReader, it is the ping request again.
  RecordReader reader;
  REQUIRE(reader.add_mark(mark).ok());
  REQUIRE(reader.pending() == mark.length);
  std::memcpy(reader.tail(), golden.data() + kMarkSize, mark.length);
  reader.advance(mark.length);
  REQUIRE(reader.complete());
  CHECK(must(decode_request(reader.take())).xid == kXid);
}
