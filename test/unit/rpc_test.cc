// rpc_test.cc: the control protocol's framing, XDR messages, and a real Server and Client talking
// over Unix and TCP sockets in this process (the daemons themselves: control-ping.sh).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/core.h>

#include "process.h"
#include "proto/client.h"
#include "proto/frame.h"
#include "proto/messages.h"
#include "proto/server.h"

using namespace vvm;
using namespace vvm::rpc;
using namespace std::chrono_literals;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

Endpoint unix_endpoint(const TempDir& dir, std::string_view name = "ctl.sock") {
  return must(Endpoint::parse("unix:" + dir.file(name)));
}

// A Server on its own thread, stopped and joined on destruction.
class RunningServer {
 public:
  RunningServer(std::string daemon, AccessPolicy policy)
      : server_(std::move(daemon), std::move(policy)) {}
  ~RunningServer() { (void)stop(); }
  Server& server() { return server_; }
  void start() {
    thread_ = std::thread([this] { status_ = server_.run(); });
  }
  Status stop() {
    if (thread_.joinable()) {
      server_.stop();
      thread_.join();
    }
    return status_;
  }

 private:
  Server server_;
  std::thread thread_;
  Status status_;
};

std::function<Result<PingReply>(const PingRequest&, const Peer&)> echo_ping() {
  return [](const PingRequest& request, const Peer&) -> Result<PingReply> {
    PingReply r;
    r.daemon = "testd";
    r.name = "here";
    r.payload = request.payload;
    return r;
  };
}

// Connects a raw socket, for sending what a Client never would.
int raw_connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(bytes.size()));
}

// Reads one record (or "" when the peer closes first).
std::string read_record(int fd) {
  RecordReader reader;
  while (!reader.complete()) {
    char mark[kMarkSize];
    if (::recv(fd, mark, sizeof mark, MSG_WAITALL) != sizeof mark) return "";
    REQUIRE(reader.add_mark(decode_mark(mark)).ok());
    ssize_t n = ::recv(fd, reader.tail(), reader.pending(), MSG_WAITALL);
    if (n != static_cast<ssize_t>(reader.pending())) return "";
    reader.advance(static_cast<size_t>(n));
  }
  return reader.take();
}

}  // namespace

TEST_CASE("record marks carry the length and the last-fragment bit") {
  for (uint32_t len : {0u, 1u, 4096u, 0x7fffffffu}) {
    for (bool last : {true, false}) {
      auto bytes = encode_mark({len, last});
      FragmentMark m = decode_mark(bytes.data());
      CHECK(m.length == len);
      CHECK(m.last == last);
    }
  }
  auto bytes = encode_mark({0x010203, true});
  CHECK(static_cast<unsigned char>(bytes[0]) == 0x80);
  CHECK(bytes[1] == 0x01);
  CHECK(bytes[3] == 0x03);
}

TEST_CASE("a record in several fragments is put back together") {
  RecordReader reader;
  std::string parts[] = {"hello, ", "fragmented ", "world"};
  for (size_t i = 0; i < 3; ++i) {
    REQUIRE(reader.add_mark({static_cast<uint32_t>(parts[i].size()), i == 2}).ok());
    std::memcpy(reader.tail(), parts[i].data(), parts[i].size());
    reader.advance(parts[i].size());
    CHECK(reader.complete() == (i == 2));
  }
  CHECK(reader.take() == "hello, fragmented world");
  // Ready for the next record.
  REQUIRE(reader.add_mark({0, true}).ok());
  CHECK(reader.complete());
  CHECK(reader.take().empty());
}

TEST_CASE("a record over the limit is refused before it is read") {
  RecordReader reader(100);
  REQUIRE(reader.add_mark({60, false}).ok());
  reader.advance(60);
  Status s = reader.add_mark({41, true});
  CHECK(s.code() == Code::kProtocolError);
  CHECK_THAT(s.message(), Catch::Contains("101") && Catch::Contains("100"));
}

TEST_CASE("requests and replies survive an XDR round trip") {
  Request req;
  req.xid = 77;
  req.body = PingRequest{std::string("bin\0ary", 7)};
  auto bytes = must(encode_request(req));
  CHECK(bytes.size() % 4 == 0);  // XDR pads everything to 4 bytes
  auto back = must(decode_request(bytes));
  CHECK(back.xid == 77);
  CHECK(back.version == kProtocolVersion);
  CHECK(std::get<PingRequest>(back.body).payload == std::string("bin\0ary", 7));

  Reply rep;
  rep.xid = 77;
  rep.body = PingReply{"vvmd", "host1", "vvm 0.1.0", 123456789012ull, "p"};
  auto r = must(decode_reply(must(encode_reply(rep))));
  CHECK(r.xid == 77);
  CHECK(r.status.ok());
  auto& pong = std::get<PingReply>(r.body);
  CHECK(pong.daemon == "vvmd");
  CHECK(pong.name == "host1");
  CHECK(pong.software == "vvm 0.1.0");
  CHECK(pong.uptime_ms == 123456789012ull);
  CHECK(pong.payload == "p");
}

TEST_CASE("archive, stage and copy reports survive an XDR round trip") {
  CopyArgs copy{"d0",
                "L00042",
                7,
                "/cache/A0000000042",
                {"A", 42, 9000000000ull, 1ull << 40, 0xabcdef0123ull},
                0x1122334455667788ull,
                "unix:/run/vvm/vvmd.sock",
                99};
  for (Op op : {Op::kArchive, Op::kStage}) {
    Request req;
    req.xid = 5;
    if (op == Op::kArchive) {
      req.body = ArchiveRequest{copy};
    } else {
      req.body = StageRequest{copy};
    }
    auto back = must(decode_request(must(encode_request(req))));
    CHECK(op_of(back.body) == op);
    CHECK((op == Op::kArchive ? std::get<ArchiveRequest>(back.body).copy
                              : std::get<StageRequest>(back.body).copy) == copy);
    Reply rep;
    rep.body = CopyAccepted{op, 314, "d1"};
    auto r = must(decode_reply(must(encode_reply(rep))));
    CHECK(std::get<CopyAccepted>(r.body) == CopyAccepted{op, 314, "d1"});
  }

  CopyReport report;
  report.request_id = 99;
  report.mover = "m1";
  report.job = 314;
  report.state = CopyState::kDone;
  report.bytes_done = report.bytes_total = 1ull << 40;
  report.vsn = "L00042";
  report.file_number = 7;
  report.checksum = 0xfeedfacecafebeefull;
  Request req;
  req.body = report;
  auto done = std::get<CopyReport>(must(decode_request(must(encode_request(req)))).body);
  CHECK(done.state == CopyState::kDone);
  CHECK(done.failure.ok());
  CHECK(done.bytes_done == 1ull << 40);
  CHECK(done.vsn == "L00042");
  CHECK(done.file_number == 7);
  CHECK(done.checksum == 0xfeedfacecafebeefull);
  CHECK(done.mover == "m1");

  report.state = CopyState::kFailed;
  report.failure = Status::NoSpace("VSN L00042 is full after file 6");
  req.body = report;
  auto failed = std::get<CopyReport>(must(decode_request(must(encode_request(req)))).body);
  CHECK(failed.failure.code() == Code::kNoSpace);
  CHECK(failed.failure.message() == "VSN L00042 is full after file 6");
  // A failed report that forgot to say why is still a failure.
  report.failure = Status::Ok();
  req.body = report;
  failed = std::get<CopyReport>(must(decode_request(must(encode_request(req)))).body);
  CHECK(failed.failure.code() == Code::kInternal);

  Reply ack;
  ack.body = CopyReportAck{};
  CHECK(std::holds_alternative<CopyReportAck>(must(decode_reply(must(encode_reply(ack)))).body));
  // Accepting anything but a copy is a bug of the sender, refused before it reaches the wire.
  ack.body = CopyAccepted{Op::kPing, 1, ""};
  CHECK(encode_reply(ack).status().code() == Code::kInvalidArgument);
}

TEST_CASE("a copy report with an unknown state or code is refused, naming it") {
  CopyReport report;
  report.state = CopyState::kRunning;
  Request req;
  req.body = report;
  std::string bytes = must(encode_request(req));
  // The state is the 5th word of the report: after the preamble (3 words), the op, request id
  // (2), mover (length 0: 1), job (2).
  const size_t state_at = 4 * (3 + 1 + 2 + 1 + 2);
  std::string bad = bytes;
  bad[state_at + 3] = 9;
  CHECK_THAT(decode_request(bad).status().message(),
             Catch::Contains("copy report with unknown state 9"));
  // The code comes after bytes done and total (4), vsn (1), file number and checksum (4).
  const size_t code_at = state_at + 4 * (1 + 4 + 1 + 4);
  bad = bytes;
  bad[code_at + 3] = 77;
  CHECK_THAT(decode_request(bad).status().message(),
             Catch::Contains("copy report with unknown error code 77"));
}

namespace {
Vv sample_vv() {
  Vv v;
  v.name = "A0000000042";
  v.vv_class = "A";
  v.serial = 42;
  v.client_id = 9000000000ull;
  v.owner = "root";
  v.group = "root";
  v.perms = 0640;
  v.size = 10ull << 30;
  v.state = VvState::kArchived;
  v.cache = CacheState::kEvicted;
  v.created = 1700000000;
  v.finished = 1700000100;
  v.accessed = 1700000200;
  v.checksum = 0xfeedfacecafebeefull;
  v.copies[0] = {"L00001", 3};
  v.copies[2] = {"M00002", 77};
  return v;
}
}  // namespace

TEST_CASE("the VV catalogue's requests and replies survive an XDR round trip") {
  auto round_trip = [](RequestBody body) {
    Request req;
    req.xid = 11;
    req.body = std::move(body);
    return must(decode_request(must(encode_request(req)))).body;
  };
  VvCreateRequest create{"B", 1ull << 40, 12345, "alice", "staff", "0600"};
  CHECK(std::get<VvCreateRequest>(round_trip(create)) == create);
  CHECK(std::get<VvShowRequest>(round_trip(VvShowRequest{"A0000000001"})).name == "A0000000001");
  CHECK(std::get<VvFinishRequest>(round_trip(VvFinishRequest{"A0000000002"})).name ==
        "A0000000002");
  auto rm = std::get<VvRemoveRequest>(round_trip(VvRemoveRequest{"A0000000003", true}));
  CHECK(rm.name == "A0000000003");
  CHECK(rm.force);
  CHECK_FALSE(std::get<VvRemoveRequest>(round_trip(VvRemoveRequest{"A0000000003", false})).force);

  VvListRequest list;
  CHECK(std::get<VvListRequest>(round_trip(list)) == list);  // no filter at all
  list.state = VvState::kFinished;
  list.vv_class = "A";
  list.client_id = 0;  // id 0 is a filter too, unlike no id
  list.after = "A0000000007";
  list.limit = 500;
  CHECK(std::get<VvListRequest>(round_trip(list)) == list);

  for (Op op : {Op::kVvCreate, Op::kVvShow, Op::kVvFinish, Op::kVvRemove}) {
    Reply rep;
    rep.body = VvReply{op, sample_vv()};
    auto r = must(decode_reply(must(encode_reply(rep))));
    CHECK(std::get<VvReply>(r.body) == VvReply{op, sample_vv()});
  }
  Reply rep;
  rep.body = VvReply{Op::kPing, sample_vv()};
  CHECK(encode_reply(rep).status().code() == Code::kInvalidArgument);

  VvListReply page;
  for (int i = 0; i < 3; ++i) {
    page.vvs.push_back(sample_vv());
    page.vvs.back().serial = static_cast<uint64_t>(i);
  }
  page.more = true;
  rep.body = page;
  auto back = std::get<VvListReply>(must(decode_reply(must(encode_reply(rep)))).body);
  CHECK(back.more);
  REQUIRE(back.vvs.size() == 3);
  CHECK(back.vvs[2] == page.vvs[2]);
  rep.body = VvListReply{};
  back = std::get<VvListReply>(must(decode_reply(must(encode_reply(rep)))).body);
  CHECK(back.vvs.empty());
  CHECK_FALSE(back.more);
}

TEST_CASE("VV_OPEN and VV_CLOSE survive an XDR round trip") {
  auto round_trip = [](RequestBody body) {
    Request req;
    req.body = std::move(body);
    return must(decode_request(must(encode_request(req)))).body;
  };
  VvOpenRequest open{"A0000000042", true, true, false, 1000, 100, {4, 27, 1000}, "storage1"};
  CHECK(std::get<VvOpenRequest>(round_trip(open)) == open);
  VvOpenRequest probe{"B0000000001", false, false, true, 0, 0, {}, "10.1.2.3"};
  CHECK(std::get<VvOpenRequest>(round_trip(probe)) == probe);
  open.groups.assign(kMaxGroups + 1, 7);
  Request too_many;
  too_many.body = open;
  CHECK(encode_request(too_many).status().code() == Code::kInvalidArgument);
  VvCloseRequest close{(1ull << 40) + 3, true};
  CHECK(std::get<VvCloseRequest>(round_trip(close)) == close);
  CHECK_FALSE(std::get<VvCloseRequest>(round_trip(VvCloseRequest{1, false})).written);

  Reply rep;
  VvOpenReply answer{sample_vv(), "/var/lib/vvm/cache/A0000000042", true, true, "", 77};
  rep.body = answer;
  CHECK(std::get<VvOpenReply>(must(decode_reply(must(encode_reply(rep)))).body) == answer);
  answer = {sample_vv(), "/c/A1", false, false, "VV A1 is evicted and vvmd cannot stage yet", 0};
  rep.body = answer;
  CHECK(std::get<VvOpenReply>(must(decode_reply(must(encode_reply(rep)))).body) == answer);
  rep.body = VvReply{Op::kVvClose, sample_vv()};
  CHECK(std::get<VvReply>(must(decode_reply(must(encode_reply(rep)))).body) ==
        VvReply{Op::kVvClose, sample_vv()});
  CHECK(op_name(Op::kVvOpen) == "vv-open");
  CHECK(op_name(Op::kVvClose) == "vv-close");
}

TEST_CASE("a page of 1000 VVs with the longest names fits in one message") {
  // vvmd's page size (catalog.h, kMaxPage) must stay under VVM_MAX_MESSAGE at the record's
  // widest: 16-character owner and group, every copy present.
  VvListReply page;
  Vv v = sample_vv();
  v.owner = v.group = std::string(16, 'x');
  for (auto& c : v.copies) c = {"L99999", 999999};
  page.vvs.assign(1000, v);
  Reply rep;
  rep.body = page;
  CHECK(must(encode_reply(rep)).size() < kMaxMessage / 2);
}

TEST_CASE("VV states and cache states this side does not know are refused, naming them") {
  // VV_LIST's state is the first word after the preamble (3 words) and the op.
  Request req;
  req.body = VvListRequest{};
  std::string bytes = must(encode_request(req));
  bytes[4 * 4 + 3] = 9;
  CHECK_THAT(decode_request(bytes).status().message(),
             Catch::Contains("VV list with unknown VV state 9"));

  // In a reply: preamble (3), code, message (empty: 1), op, then the VV: name (4 + 12 bytes),
  // class (4 + 4), serial and id (16), owner and group (2 * (4 + 4)), perms (4), size (8).
  Reply rep;
  rep.body = VvReply{Op::kVvShow, sample_vv()};
  bytes = must(encode_reply(rep));
  const size_t state_at = 4 * 6 + 16 + 8 + 16 + 16 + 4 + 8;
  REQUIRE(bytes[state_at + 3] == static_cast<char>(VvState::kArchived));
  std::string bad = bytes;
  bad[state_at + 3] = 0;  // "any" is a filter, not a state a VV can be in
  CHECK_THAT(decode_reply(bad).status().message(), Catch::Contains("VV with unknown VV state 0"));
  bad = bytes;
  bad[state_at + 4 + 3] = 8;
  CHECK_THAT(decode_reply(bad).status().message(),
             Catch::Contains("VV with unknown cache state 8"));
}

TEST_CASE("VV state names are the database's words") {
  for (VvState s : {VvState::kHot, VvState::kFinished, VvState::kArchived}) {
    CHECK(parse_vv_state(vv_state_name(s)) == s);
  }
  CHECK_FALSE(parse_vv_state("any").has_value());
  CHECK_FALSE(parse_vv_state("Hot").has_value());
  for (CacheState s : {CacheState::kCached, CacheState::kEvicted, CacheState::kStaging}) {
    CHECK(parse_cache_state(cache_state_name(s)) == s);
  }
  CHECK(op_name(Op::kVvRemove) == "vv-remove");
}

TEST_CASE("the VSN catalogue's requests and replies survive an XDR round trip") {
  auto round_trip = [](RequestBody body) {
    Request req;
    req.xid = 12;
    req.body = std::move(body);
    return must(decode_request(must(encode_request(req)))).body;
  };
  VsnAddRequest add{"L00042", "LTO9", "A"};
  CHECK(std::get<VsnAddRequest>(round_trip(add)) == add);
  VsnAddRequest any{"L00043", "LTO8", ""};
  CHECK(std::get<VsnAddRequest>(round_trip(any)) == any);
  VsnListRequest list{"L00007", 500};
  CHECK(std::get<VsnListRequest>(round_trip(list)) == list);
  CHECK(std::get<VsnListRequest>(round_trip(VsnListRequest{})) == VsnListRequest{});

  Vsn v;  // every field other than its default
  v.name = "L00042";
  v.media = "LTO9";
  v.vsn_class = "A";
  v.state = VsnState::kFull;
  v.location = "drive:d0";
  v.next_file = 17;
  v.bytes_used = 5ull << 40;
  v.capacity = 18ull << 40;
  v.errors = 3;
  v.last_mount = 1700000123;
  Reply rep;
  rep.body = VsnReply{v};
  CHECK(std::get<VsnReply>(must(decode_reply(must(encode_reply(rep)))).body).vsn == v);

  VsnListReply page;
  for (int i = 0; i < 3; ++i) {
    page.vsns.push_back(v);
    page.vsns.back().next_file = static_cast<uint64_t>(i);
  }
  page.more = true;
  rep.body = page;
  auto back = std::get<VsnListReply>(must(decode_reply(must(encode_reply(rep)))).body);
  CHECK(back.more);
  REQUIRE(back.vsns.size() == 3);
  CHECK(back.vsns[2] == page.vsns[2]);
  rep.body = VsnListReply{};
  back = std::get<VsnListReply>(must(decode_reply(must(encode_reply(rep)))).body);
  CHECK(back.vsns.empty());
  CHECK_FALSE(back.more);
  CHECK(op_name(Op::kVsnAdd) == "vsn-add");
  CHECK(op_name(Op::kVsnList) == "vsn-list");
}

TEST_CASE("VV_EVICT survives an XDR round trip, with its number 15") {
  Request req;
  req.xid = 15;
  req.body = VvEvictRequest{"A0000000042"};
  auto bytes = must(encode_request(req));
  CHECK(std::get<VvEvictRequest>(must(decode_request(bytes)).body).name == "A0000000042");
  CHECK(static_cast<uint32_t>(Op::kVvEvict) == 15);
  CHECK(op_name(Op::kVvEvict) == "vv-evict");

  Vv v = sample_vv();
  v.cache = CacheState::kEvicted;
  Reply rep;
  rep.body = VvEvictReply{v, false, (3ull << 30) + 512};
  CHECK(std::get<VvEvictReply>(must(decode_reply(must(encode_reply(rep)))).body) ==
        VvEvictReply{v, false, (3ull << 30) + 512});
  rep.body = VvEvictReply{v, true, 0};
  auto back = std::get<VvEvictReply>(must(decode_reply(must(encode_reply(rep)))).body);
  CHECK(back.already);
  CHECK(back.freed == 0);
  CHECK(back.vv == v);
}

TEST_CASE("a page of 1000 VSNs at the record's widest fits in one message") {
  // vvmd's page size (vsn_catalog.h, kMaxPage): the database's fields at their widest.
  VsnListReply page;
  Vsn v{"L99999",   "LTO99999", "A",    VsnState::kRetired, std::string(12, 'x'), 999999,
        UINT64_MAX, UINT64_MAX, 999999, UINT64_MAX};
  page.vsns.assign(1000, v);
  Reply rep;
  rep.body = page;
  CHECK(must(encode_reply(rep)).size() < kMaxMessage / 2);
}

TEST_CASE("VSN states this side does not know are refused, naming them") {
  for (VsnState s :
       {VsnState::kBlank, VsnState::kHot, VsnState::kFull, VsnState::kRetired, VsnState::kReadOnly,
        VsnState::kDisabled, VsnState::kReclaim, VsnState::kBad}) {
    CHECK(parse_vsn_state(vsn_state_name(s)) == s);
  }
  CHECK(vsn_state_name(VsnState::kReadOnly) == "read-only");
  CHECK_FALSE(parse_vsn_state("Blank").has_value());
  // In a reply: preamble (3), code, message (empty: 1), op, then the VSN: name (4 + 8 bytes),
  // media (4 + 4), class (4 + 4), then the state.
  Reply rep;
  rep.body = VsnReply{Vsn{"L00042", "LTO9", "A", VsnState::kHot, "slot"}};
  std::string bytes = must(encode_reply(rep));
  const size_t state_at = 4 * 6 + 12 + 8 + 8;
  REQUIRE(bytes[state_at + 3] == static_cast<char>(VsnState::kHot));
  for (char bad : {0, 9}) {
    std::string changed = bytes;
    changed[state_at + 3] = bad;
    CHECK_THAT(decode_reply(changed).status().message(),
               Catch::Contains(fmt::format("VSN with unknown VSN state {}", int{bad})));
  }
}

TEST_CASE("an error reply carries the code and the message, and no body") {
  Reply rep =
      error_reply({kProtocolMagic, kProtocolVersion, 9}, Status::NotFound("VV 'A00042' not found"));
  rep.body = PingReply{"ignored", "", "", 0, ""};  // an error never sends a body
  auto r = must(decode_reply(must(encode_reply(rep))));
  CHECK(r.xid == 9);
  CHECK(r.status.code() == Code::kNotFound);
  CHECK(r.status.message() == "VV 'A00042' not found");
  CHECK(std::holds_alternative<std::monostate>(r.body));
}

TEST_CASE("every status code crosses the wire unchanged") {
  for (int c = 1; c <= static_cast<int>(kLastCode); ++c) {
    Reply rep = error_reply({}, Status(static_cast<Code>(c), "m"));
    auto r = must(decode_reply(must(encode_reply(rep))));
    CHECK(static_cast<int>(r.status.code()) == c);
  }
}

TEST_CASE("a reply with an error code this side does not know is a protocol error") {
  auto bytes = must(encode_reply(error_reply({}, Status::Busy("b"))));
  bytes[15] = 99;  // the code, after magic, version and xid
  auto r = decode_reply(bytes);
  CHECK(r.status().code() == Code::kProtocolError);
  CHECK_THAT(r.status().message(), Catch::Contains("unknown error code 99"));
}

TEST_CASE("bad bytes are refused with a reason") {
  auto good = must(encode_request(Request{kProtocolVersion, 1, PingRequest{"x"}}));

  SECTION("too short for a header") {
    auto r = decode_request(good.substr(0, 6));
    CHECK(r.status().code() == Code::kProtocolError);
  }
  SECTION("wrong magic") {
    std::string bad = good;
    bad[0] = 'X';
    auto r = decode_request(bad);
    CHECK(r.status().code() == Code::kProtocolError);
    CHECK_THAT(r.status().message(), Catch::Contains("not a vvm control message"));
  }
  SECTION("another protocol version") {
    auto other = must(encode_request(Request{kProtocolVersion + 1, 5, PingRequest{}}));
    auto p = must(decode_preamble(other));
    CHECK(p.version == kProtocolVersion + 1);
    CHECK(p.xid == 5);
    auto r = decode_request(other);
    CHECK(r.status().code() == Code::kVersionMismatch);
    CHECK_THAT(r.status().message(), Catch::Contains("version 2") && Catch::Contains("version 1"));
  }
  SECTION("an unknown operation") {
    std::string bad = good;
    bad[15] = 99;  // the op, after magic, version and xid
    auto r = decode_request(bad);
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains("unknown operation 99"));
  }
  SECTION("truncated body") {
    auto r = decode_request(good.substr(0, good.size() - 4));
    CHECK(r.status().code() == Code::kProtocolError);
  }
  SECTION("bytes left over") {
    auto r = decode_request(good + std::string(4, '\0'));
    CHECK(r.status().code() == Code::kProtocolError);
    CHECK_THAT(r.status().message(), Catch::Contains("left over"));
  }
  SECTION("a payload longer than the protocol allows is not encoded") {
    auto r = encode_request(Request{kProtocolVersion, 1, PingRequest{std::string(5000, 'a')}});
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains("5000"));
  }
}

TEST_CASE("access policy: hosts over TCP, uids and groups over Unix sockets") {
  AccessPolicy policy;
  policy.allowed_hosts.push_back(must(HostPattern::parse("10.1.0.0/16")));
  policy.allowed_uids = {1234};
  policy.allowed_gids = {500};

  Peer tcp_peer;
  tcp_peer.kind = Endpoint::Kind::kTcp;
  tcp_peer.address = "10.1.2.3:999";
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(0x0a010203);
  CHECK(check_access(policy, tcp_peer, reinterpret_cast<sockaddr*>(&in), {}).ok());
  in.sin_addr.s_addr = htonl(0x0a020203);
  Status refused = check_access(policy, tcp_peer, reinterpret_cast<sockaddr*>(&in), {});
  CHECK(refused.code() == Code::kPermissionDenied);
  CHECK_THAT(refused.message(), Catch::Contains("allow-host"));

  Peer u;
  u.kind = Endpoint::Kind::kUnix;
  u.uid = 0;
  CHECK(check_access(policy, u, nullptr, {0}).ok());  // root
  u.uid = 4321;
  if (::geteuid() != 4321) {
    CHECK(check_access(policy, u, nullptr, {4321}).code() == Code::kPermissionDenied);
    CHECK(check_access(policy, u, nullptr, {4321, 500}).ok());  // a supplementary group
  }
  u.uid = 1234;
  CHECK(check_access(policy, u, nullptr, {77}).ok());
  u.uid = ::geteuid();
  CHECK(check_access(AccessPolicy{}, u, nullptr, {}).ok());  // the daemon's own user
}

TEST_CASE("a server answers pings over a Unix socket and over TCP") {
  auto dir = must(TempDir::create());
  AccessPolicy policy;
  policy.allowed_hosts.push_back(must(HostPattern::parse("127.0.0.1")));
  RunningServer rs("testd", policy);
  rs.server().handle<PingRequest>(echo_ping());
  auto unix_ep = unix_endpoint(dir);
  must(rs.server().listen(unix_ep));
  // The first free port of a range: Server does not report the port the kernel would pick.
  Endpoint tcp_ep;
  for (uint16_t port = 47370; port < 47470; ++port) {
    tcp_ep = must(Endpoint::parse("127.0.0.1:" + std::to_string(port)));
    if (rs.server().listen(tcp_ep).ok()) break;
  }
  rs.start();

  for (const auto& ep : {unix_ep, tcp_ep}) {
    auto client = must(Client::connect(ep, 5s));
    for (int i = 0; i < 3; ++i) {
      auto body = must(client.call(RequestBody(PingRequest{"n" + std::to_string(i)}), 5s));
      auto& pong = std::get<PingReply>(body);
      CHECK(pong.daemon == "testd");
      CHECK(pong.payload == "n" + std::to_string(i));
    }
  }
  CHECK(rs.stop().ok());
  // The Unix socket is gone with the server.
  CHECK(::access(unix_ep.path.c_str(), F_OK) != 0);
  auto after = Client::connect(unix_ep, 1s);
  CHECK(after.status().code() == Code::kUnavailable);
  CHECK_THAT(after.status().message(), Catch::Contains(unix_ep.to_string()));
}

TEST_CASE("each connection is its own session, and its end is reported with its number") {
  auto dir = must(TempDir::create());
  RunningServer rs("testd", AccessPolicy{});
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<uint64_t> ended;
  // The session a request came on, sent back as the payload.
  rs.server().handle<PingRequest>([](const PingRequest&, const Peer& peer) -> Result<PingReply> {
    PingReply r;
    r.payload = std::to_string(peer.session);
    return r;
  });
  rs.server().on_disconnect([&](uint64_t session) {
    const std::lock_guard lock(mutex);
    ended.push_back(session);
    changed.notify_all();
  });
  auto ep = unix_endpoint(dir);
  must(rs.server().listen(ep));
  rs.start();
  auto session_of = [](Client& c) {
    return std::stoull(std::get<PingReply>(must(c.call(RequestBody(PingRequest{}), 5s))).payload);
  };
  auto wait_ended = [&](size_t n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 5s, [&] { return ended.size() >= n; });
  };

  auto a = must(Client::connect(ep, 5s));
  const uint64_t sa = session_of(a);
  CHECK(sa > 0);
  CHECK(session_of(a) == sa);  // the same connection, the same session
  uint64_t sb = 0;
  {
    auto b = must(Client::connect(ep, 5s));
    sb = session_of(b);
    CHECK(sb != sa);
    std::lock_guard lock(mutex);
    CHECK(ended.empty());  // nobody has gone yet
  }                        // b hangs up
  REQUIRE(wait_ended(1));
  {
    std::lock_guard lock(mutex);
    CHECK(ended == std::vector<uint64_t>{sb});
  }
  CHECK(session_of(a) == sa);  // a is untouched by b's end
  { auto gone = std::move(a); }
  REQUIRE(wait_ended(2));
  {
    std::lock_guard lock(mutex);
    CHECK(ended == std::vector<uint64_t>{sb, sa});
  }
  // A connection that stop() closes is not reported: the daemon is going away.
  auto c = must(Client::connect(ep, 5s));
  const uint64_t sc = session_of(c);
  CHECK(sc > sb);
  CHECK(rs.stop().ok());
  std::lock_guard lock(mutex);
  CHECK(ended.size() == 2);
}

TEST_CASE("a TCP peer not in allow-host gets one refusal that says why") {
  RunningServer rs("testd", AccessPolicy{});  // nobody over TCP
  rs.server().handle<PingRequest>(echo_ping());
  Endpoint ep;
  for (uint16_t port = 47470; port < 47570; ++port) {
    ep = must(Endpoint::parse("127.0.0.1:" + std::to_string(port)));
    if (rs.server().listen(ep).ok()) break;
  }
  rs.start();
  auto client = must(Client::connect(ep, 5s));
  auto r = client.call(PingRequest{}, 5s);
  CHECK(r.status().code() == Code::kPermissionDenied);
  CHECK_THAT(r.status().message(),
             Catch::Contains("testd refuses 127.0.0.1:") && Catch::Contains("allow-host"));
  // The server hung up: the connection is of no more use.
  auto again = client.call(PingRequest{}, 5s);
  CHECK(again.status().code() == Code::kUnavailable);
}

TEST_CASE("handler errors, exceptions and wrong versions reach the client as statuses") {
  auto dir = must(TempDir::create());
  RunningServer rs("testd", AccessPolicy{});
  std::atomic<int> mode{0};
  rs.server().handle<PingRequest>([&](const PingRequest&, const Peer&) -> Result<PingReply> {
    if (mode == 1) return Status::Busy("drive d0 is busy");
    if (mode == 2) throw std::runtime_error("boom");
    if (mode == 3) std::this_thread::sleep_for(800ms);
    return PingReply{"testd", "", "", 0, ""};
  });
  auto ep = unix_endpoint(dir);
  must(rs.server().listen(ep));
  rs.start();
  auto client = must(Client::connect(ep, 5s));

  mode = 1;
  auto busy = client.call(PingRequest{}, 5s);
  CHECK(busy.status().code() == Code::kBusy);
  CHECK(busy.status().message() == "drive d0 is busy");

  mode = 2;
  auto boom = client.call(PingRequest{}, 5s);
  CHECK(boom.status().code() == Code::kInternal);
  CHECK_THAT(boom.status().message(), Catch::Contains("boom"));

  // Another version: answered with VersionMismatch and the xid, and the connection stays usable.
  mode = 0;
  auto other = must(client.exchange(Request{kProtocolVersion + 1, 4242, PingRequest{}}, 5s));
  CHECK(other.xid == 4242);
  CHECK(other.status.code() == Code::kVersionMismatch);
  CHECK(must(client.call(RequestBody(PingRequest{}), 5s)).index() == 1);

  // A slow reply: Timeout, naming the endpoint; the connection is then closed.
  mode = 3;
  auto slow = client.call(PingRequest{}, 200ms);
  CHECK(slow.status().code() == Code::kTimeout);
  CHECK_THAT(slow.status().message(), Catch::Contains(ep.to_string()) && Catch::Contains("200ms"));
  CHECK(client.call(PingRequest{}, 1s).status().code() == Code::kUnavailable);
  mode = 0;
}

TEST_CASE("a server survives garbage and oversized records") {
  auto dir = must(TempDir::create());
  RunningServer rs("testd", AccessPolicy{});
  rs.server().handle<PingRequest>(echo_ping());
  auto ep = unix_endpoint(dir);
  must(rs.server().listen(ep));
  rs.start();

  SECTION("not a vvm message: one ProtocolError reply, then the server hangs up") {
    int fd = raw_connect(ep.path);
    send_all(fd, frame_record("GET / HTTP/1.1\r\n\r\n"));
    auto reply = must(decode_reply(read_record(fd)));
    CHECK(reply.status.code() == Code::kProtocolError);
    CHECK(read_record(fd).empty());
    ::close(fd);
  }
  SECTION("a record over the limit: one ProtocolError reply, unread, then the server hangs up") {
    int fd = raw_connect(ep.path);
    auto mark = encode_mark({static_cast<uint32_t>(kMaxMessage + 1), true});
    send_all(fd, std::string(mark.data(), mark.size()));
    auto reply = must(decode_reply(read_record(fd)));
    CHECK(reply.xid == 0);  // the request was never read: its xid is unknown
    CHECK(reply.status.code() == Code::kProtocolError);
    CHECK_THAT(reply.status.message(), Catch::Contains("testd: ") && Catch::Contains("limit"));
    CHECK(read_record(fd).empty());
    ::close(fd);
  }
  SECTION("fragments adding up to more than the limit: refused at the mark that passes it") {
    int fd = raw_connect(ep.path);
    auto m1 = encode_mark({static_cast<uint32_t>(kMaxMessage / 2 + 8), false});
    send_all(fd, std::string(m1.data(), 4) + std::string(kMaxMessage / 2 + 8, 'x'));
    send_all(fd, std::string(m1.data(), 4));
    auto reply = must(decode_reply(read_record(fd)));
    CHECK(reply.status.code() == Code::kProtocolError);
    CHECK(read_record(fd).empty());
    ::close(fd);
  }
  SECTION("a request in two fragments is served") {
    int fd = raw_connect(ep.path);
    auto bytes = must(encode_request(Request{kProtocolVersion, 3, PingRequest{"frag"}}));
    auto m1 = encode_mark({8, false});
    auto m2 = encode_mark({static_cast<uint32_t>(bytes.size() - 8), true});
    send_all(fd, std::string(m1.data(), 4) + bytes.substr(0, 8) + std::string(m2.data(), 4) +
                     bytes.substr(8));
    auto reply = must(decode_reply(read_record(fd)));
    CHECK(reply.xid == 3);
    CHECK(std::get<PingReply>(reply.body).payload == "frag");
    ::close(fd);
  }
  // Whatever came before, the server still serves a well-behaved client.
  auto client = must(Client::connect(ep, 5s));
  CHECK(must(client.call(RequestBody(PingRequest{"ok"}), 5s)).index() == 1);
}

TEST_CASE("listen replaces a stale socket and refuses a live one or a plain file") {
  auto dir = must(TempDir::create());
  auto ep = unix_endpoint(dir, "sub/dir/ctl.sock");  // missing folders are created

  {
    // A stale socket: bound, then its owner is gone.
    RunningServer first("first", AccessPolicy{});
    must(first.server().listen(ep));
    first.start();
    RunningServer second("second", AccessPolicy{});
    Status live = second.server().listen(ep);
    CHECK(live.code() == Code::kAlreadyExists);
    CHECK_THAT(live.message(), Catch::Contains("another daemon is listening"));
  }
  {
    // Leave a socket file behind with nobody listening, as a killed daemon would.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, ep.path.c_str(), sizeof sun.sun_path - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
    ::close(fd);
    RunningServer rs("testd", AccessPolicy{});
    rs.server().handle<PingRequest>(echo_ping());
    must(rs.server().listen(ep));
    rs.start();
    CHECK(must(must(Client::connect(ep, 5s)).call(RequestBody(PingRequest{}), 5s)).index() == 1);
  }
  {
    std::ofstream(ep.path) << "not a socket\n";
    RunningServer rs("testd", AccessPolicy{});
    Status s = rs.server().listen(ep);
    CHECK(s.code() == Code::kAlreadyExists);
    CHECK_THAT(s.message(), Catch::Contains("not a socket"));
    CHECK(::access(ep.path.c_str(), F_OK) == 0);  // and it is left alone
  }
}

TEST_CASE("connecting to nothing is Unavailable, naming the endpoint") {
  auto dir = must(TempDir::create());
  auto r = Client::connect(unix_endpoint(dir, "nobody.sock"), 1s);
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("nobody.sock"));
}

TEST_CASE("posted tasks and periodic tasks run on the server's thread, where handlers run") {
  auto dir = must(TempDir::create());
  RunningServer rs("testd", AccessPolicy{});
  std::atomic<int> ticks{0};
  std::atomic<bool> posted_ran{false};
  std::thread::id handler_thread, tick_thread, posted_thread;
  std::mutex mu;
  rs.server().handle<PingRequest>([&](const PingRequest& b, const Peer& p) {
    const std::lock_guard lock(mu);
    handler_thread = std::this_thread::get_id();
    return echo_ping()(b, p);
  });
  rs.server().every(20ms, [&] {
    const std::lock_guard lock(mu);
    tick_thread = std::this_thread::get_id();
    ++ticks;
  });
  auto ep = unix_endpoint(dir);
  must(rs.server().listen(ep));
  rs.start();
  auto client = must(Client::connect(ep, 5s));
  must(client.call(PingRequest{"x"}, 5s));
  // From another thread, as MoverLink hands back a mover's answer.
  std::thread([&] {
    rs.server().post([&] {
      const std::lock_guard lock(mu);
      posted_thread = std::this_thread::get_id();
      posted_ran = true;
    });
  }).join();
  for (int i = 0; i < 500 && (ticks < 3 || !posted_ran); ++i) std::this_thread::sleep_for(10ms);
  CHECK(ticks >= 3);
  CHECK(posted_ran);
  CHECK(rs.stop().ok());
  const std::lock_guard lock(mu);
  CHECK(tick_thread == handler_thread);
  CHECK(posted_thread == handler_thread);
  // After the stop, a posted task never runs and ticks stop.
  const int stopped_at = ticks;
  std::this_thread::sleep_for(60ms);
  CHECK(ticks == stopped_at);
}

TEST_CASE("VV_STAGE survives an XDR round trip") {
  Request req;
  req.body = VvStageRequest{"A0000000042", true};
  auto back = must(decode_request(must(encode_request(req))));
  CHECK(std::get<VvStageRequest>(back.body) == VvStageRequest{"A0000000042", true});
  CHECK(op_of(back.body) == Op::kVvStage);
  CHECK(op_name(Op::kVvStage) == "vv-stage");

  Reply rep;
  VvStageReply progress{false, true, "L90001", 7, 1 << 20, 3 << 20, 12};
  rep.body = progress;
  CHECK(std::get<VvStageReply>(must(decode_reply(must(encode_reply(rep)))).body) == progress);
  rep.body = VvStageReply{true, false, "", 0, 0, 0, 0};
  CHECK(std::get<VvStageReply>(must(decode_reply(must(encode_reply(rep)))).body).cached);
}

TEST_CASE("STATUS survives an XDR round trip") {
  Request req;
  req.body = StatusRequest{};
  CHECK(op_of(must(decode_request(must(encode_request(req)))).body) == Op::kStatus);
  StatusReply st;
  st.uptime_s = 3600;
  st.drives.push_back(
      {"d0", "m1", "LTO9", "L90001", "archive A0000000001 to L90001 file 3", 5, 10, 2, true});
  st.drives.push_back({"d1", "m1", "LTO8", "", "", 0, 0, 0, false});
  st.queues.push_back({"archive", "A LTO9", 3, 3 << 20, 12, false});
  st.queues.push_back({"stage", "L90002", 1, 1 << 20, 1, true});
  st.mounts = 7;
  st.opens = 2;
  st.cache_used = 1 << 30;
  st.cache_size = 10ull << 30;
  st.high_watermark = 90;
  st.low_watermark = 70;
  Reply rep;
  rep.body = st;
  CHECK(std::get<StatusReply>(must(decode_reply(must(encode_reply(rep)))).body) == st);
}

// --- messages declared once, handlers by type ---

namespace {
struct NoFields {  // a would-be request that forgot its field description
  static constexpr Op kOp = Op::kPing;
  static constexpr std::string_view kName = "no-fields";
  using Reply = PingReply;
};
struct NoOp {  // and one that forgot its op
  static constexpr std::string_view kName = "no-op";
  using Reply = PingReply;
  template <class F, class M>
  static void fields(F&, M&) {}
};
}  // namespace

TEST_CASE("a message needs its op, its reply and its fields; Served proves each handler") {
  static_assert(Message<VvShowRequest>);
  static_assert(!Message<NoFields>);
  static_assert(!Message<NoOp>);
  static_assert(std::is_same_v<VvShowRequest::Reply, VvReply>);
  static_assert(kOpsAnswered<VvReply>.size() > 1 && kOpsAnswered<VvReply>[1] == Op::kVvShow);
  static_assert(kOpsAnswered<VvStageReply>.size() == 1 &&
                kOpsAnswered<VvStageReply>[0] == Op::kVvStage);
  // The same requests in another order convert; a request listed without its handler does not,
  // nor one handled without being listed.
  static_assert(std::is_convertible_v<Served<PingRequest, VvShowRequest>,
                                      Served<VvShowRequest, PingRequest>>);
  static_assert(!std::is_convertible_v<Served<PingRequest>, Served<PingRequest, VvShowRequest>>);
  static_assert(!std::is_convertible_v<Served<PingRequest, VvShowRequest>, Served<PingRequest>>);
  // The op is the one declared with the message, and its name too.
  CHECK(op_of(RequestBody(VvShowRequest{"A1"})) == Op::kVvShow);
  CHECK(op_name(VvShowRequest::kOp) == "vv-show");
  CHECK(op_name(static_cast<Op>(999)) == "unknown");
}

TEST_CASE("a field over its limit is refused on encode, naming the field") {
  auto r = encode_request(Request{kProtocolVersion, 1, VvShowRequest{std::string(300, 'a')}});
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(),
             Catch::Contains("vv name is 300 bytes long") && Catch::Contains("allows 256"));
  Reply rep;
  StatusReply st;
  st.queues.push_back({std::string(257, 'k'), "A LTO9", 0, 0, 0, false});
  rep.body = st;
  CHECK_THAT(encode_reply(rep).status().message(), Catch::Contains("queue kind is 257 bytes"));
}

TEST_CASE("a handler registered by type answers with its request's reply, op included") {
  auto dir = must(TempDir::create());
  RunningServer rs("testd", AccessPolicy{});
  // The handler leaves the op at its default (kVvShow): the server sets the request's.
  rs.server().handle<VvFinishRequest>([](const VvFinishRequest& r, const Peer&) -> Result<VvReply> {
    VvReply reply;
    reply.vv.name = r.name;
    return reply;
  });
  auto ep = unix_endpoint(dir);
  must(rs.server().listen(ep));
  rs.start();
  auto client = must(Client::connect(ep, 5s));
  VvReply got = must(client.call(VvFinishRequest{"A0000000009"}, 5s));
  CHECK(got.op == Op::kVvFinish);
  CHECK(got.vv.name == "A0000000009");
  // A request without a handler is refused by name, and the connection stays usable.
  auto none = client.call(VvShowRequest{"A1"}, 5s);
  CHECK(none.status().code() == Code::kInvalidArgument);
  CHECK_THAT(none.status().message(), Catch::Contains("testd does not handle vv-show"));
  CHECK(must(client.call(VvFinishRequest{"A2"}, 5s)).vv.name == "A2");
}

TEST_CASE("a handler can answer later, from another thread, while other connections are served") {
  auto dir = must(TempDir::create());
  RunningServer rs("testd", AccessPolicy{});
  std::mutex mu;
  std::condition_variable held_cv;
  std::vector<Responder<VvShowRequest>> held;
  rs.server().handle<VvShowRequest>(
      [&](const VvShowRequest&, const Peer&, Responder<VvShowRequest> answer) {
        const std::lock_guard lock(mu);
        held.push_back(std::move(answer));
        held_cv.notify_all();
      });
  rs.server().handle<PingRequest>(echo_ping());
  auto ep = unix_endpoint(dir);
  must(rs.server().listen(ep));
  rs.start();

  // Catch2 checks on this thread only: the waiter keeps what it got.
  Result<VvReply> shown = Status::Internal("not asked");
  Result<VvReply> dropped = Status::Internal("not asked");
  std::thread waiter([&] {
    auto client = Client::connect(ep, 5s);
    if (!client.ok()) return;
    shown = client->call(VvShowRequest{"A0000000001"}, 5s);
    dropped = client->call(VvShowRequest{"A0000000002"}, 5s);
  });
  {
    std::unique_lock lock(mu);
    REQUIRE(held_cv.wait_for(lock, 5s, [&] { return held.size() == 1; }));
  }
  // The show waits; a ping on another connection does not.
  auto other = must(Client::connect(ep, 5s));
  CHECK(must(other.call(PingRequest{"meanwhile"}, 5s)).payload == "meanwhile");
  std::thread([&] {
    const std::lock_guard lock(mu);
    Vv vv;
    vv.name = "A0000000001";
    held[0].reply(VvReply{Op::kVvShow, vv});
    held[0].reply(Status::Busy("a second answer is ignored"));
  }).join();
  {
    std::unique_lock lock(mu);
    REQUIRE(held_cv.wait_for(lock, 5s, [&] { return held.size() == 2; }));
    held.clear();  // both dropped: the first was answered, the second never is
  }
  waiter.join();
  REQUIRE(shown.ok());
  CHECK(shown->vv.name == "A0000000001");
  CHECK(shown->op == Op::kVvShow);
  // A Responder dropped without an answer: an Internal error, not a client waiting for ever.
  CHECK(dropped.status().code() == Code::kInternal);
  CHECK_THAT(dropped.status().message(), Catch::Contains("vv-show was dropped without a reply"));
}

namespace {
template <class... R>
std::map<uint32_t, std::string_view> request_ops(std::variant<R...>*) {
  return {{static_cast<uint32_t>(R::kOp), R::kName}...};
}
}  // namespace

TEST_CASE("every request's op is vvm_proto.x's, by number and by name") {
  const char* src = std::getenv("VVM_SOURCE_DIR");
  REQUIRE(src != nullptr);
  std::ifstream in(std::string(src) + "/client/proto/vvm_proto.x");
  REQUIRE(in);
  // "  VVM_OP_VV_SHOW = 6," -> 6: "vv-show"
  std::map<uint32_t, std::string> spec;
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find("VVM_OP_");
    const auto eq = line.find(" = ");
    if (at == std::string::npos || eq == std::string::npos || at > eq) continue;
    std::string name = line.substr(at + 7, eq - at - 7);
    for (char& c : name) c = c == '_' ? '-' : static_cast<char>(std::tolower(c));
    spec[static_cast<uint32_t>(std::stoul(line.substr(eq + 3)))] = name;
  }
  REQUIRE(spec.size() > 10);
  CHECK(spec.at(0) == "none");
  const auto ops = request_ops(static_cast<RequestBody*>(nullptr));
  CHECK(ops.size() + 1 == spec.size());  // every op of the .x has its request, but NONE
  for (const auto& [number, name] : ops) {
    INFO("op " << number);
    REQUIRE(spec.count(number) == 1);
    CHECK(spec.at(number) == name);
    CHECK(op_name(static_cast<Op>(number)) == name);
  }
}
