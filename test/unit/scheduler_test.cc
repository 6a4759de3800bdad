// scheduler_test.cc: the tape scheduler's decisions, over a real database, VV catalogue and VSN
// catalogue in a temporary folder, with fake movers (a MoverPort that holds each request until the
// test answers it) and a fake clock: a full VSN (NoSpace) and a VSN not as the database says
// (Mismatch) are not written again and the copy goes first to another; N stages on M tapes take M
// mounts, each tape read in file order; stages go before archive writes; a tape read many times
// in a row gives way when other tapes wait, and background reads (a repack's) give way at once to
// a client's stage of another tape; a verify read is cancelled for a client's stage (the one on
// the stage's own tape first; none while its tape waits in a drive busy otherwise), counted as
// nothing; the scrub reads the tape verified least recently first, once its interval has
// passed; a tape disabled after a stage, verify or repack of it was queued is never mounted; bad
// input to verify, drive up and down, repack, reclaim and prune (unknown names, a disabled VSN,
// a user or TCP peer) is refused, changing nothing; the copies of a mover that restarted or is
// gone are sent again; a Busy drive is tried again after its pause; the "no VSN" warning only
// when there is none, not while the VSNs are busy; failed copies in a row take a drive down
// (logged) and make a VSN read-only; two classes share the drives by their read-max-drives and
// write-max-drives (a drive freed going to the class using least of its share), and
// archive-min-wait holds a mount back. No thread, no sleep: the test moves time and answers for
// the movers. With the real daemons: test/integration/vv-archive.sh, vv-stage.sh.
#include <unistd.h>

#include <prometheus/registry.h>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cache/cache_manager.h"
#include "catalog/catalog.h"
#include "catalog/vsn_catalog.h"
#include "catalog/vv_opens.h"
#include "common/config.h"
#include "db/database.h"
#include "fake_movers.h"
#include "metrics/metrics.h"
#include "peers.h"
#include "process.h"
#include "sched/mover_port.h"
#include "sched/scheduler.h"
#include "sched_fixture.h"

using namespace vvm;
using namespace vvm::vvmd;
using namespace std::chrono_literals;
using vvm::test::FakeMovers;
using vvm::test::kChecksum;
using vvm::test::kMiB;
using vvm::test::must;
using vvm::test::root_peer;
using vvm::test::TempDir;

namespace {

// Runs `body` with stderr (where the log goes) sent to a file, and returns what it wrote.
template <typename F>
std::string capture_log(const TempDir& dir, F body) {
  const std::string path = dir.file("stderr");
  std::FILE* out = std::fopen(path.c_str(), "w");
  REQUIRE(out != nullptr);
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  REQUIRE(::dup2(::fileno(out), STDERR_FILENO) >= 0);
  body();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::fclose(out);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// vvm_copy_failures_total of `op`, over every VSN and drive.
double copy_failures(prometheus::Registry& registry, const std::string& op) {
  double n = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name != "vvm_copy_failures_total") continue;
    for (const auto& metric : family.metric) {
      for (const auto& label : metric.label) {
        if (label.name == "op" && label.value == op) n += metric.counter.value;
      }
    }
  }
  return n;
}

// vvm.conf for one class A of one media type LTO9 (with `class_a`'s keys), and `drives` (a
// [drive] section each, and any other section).
Config make_config(const std::string& drives, const std::string& class_a = "") {
  const std::string text = R"(
[vvmd]
listen = unix:/nonexistent/vvmd.sock
archive-batch-files = 1

[media LTO9]
capacity = 64M

[class A]
media = LTO9
)" + class_a + R"(
[mover m1]
listen = unix:/nonexistent/m1.sock
stall-timeout = 100s

[mover m2]
listen = unix:/nonexistent/m2.sock
)" + drives;
  return must(parse_config(text, "scheduler_test", "/nonexistent"));
}

const std::string kOneDrive = "[drive d0]\nmover = m1\nmedia = LTO9\n";
const std::string kTwoMovers =
    "[drive d0]\nmover = m1\nmedia = LTO9\n[drive d1]\nmover = m2\nmedia = LTO9\n";

struct Fixture : vvm::test::SchedFixture {
  explicit Fixture(const std::string& drives = kOneDrive, const std::string& class_a = "")
      : SchedFixture(make_config(drives, class_a), /*answer_pings=*/false) {}

  void add_vsn(const std::string& name) { must(vsns->add(root_peer(), {name, "LTO9", ""})); }
  Vsn vsn(const std::string& name) {
    for (const Vsn& v : must(vsns->list({})).vsns) {
      if (v.name == name) return v;
    }
    FAIL("no VSN " << name);
    return {};
  }
  Vv vv(const std::string& name) { return must(catalog->show(name)); }

  // A finished VV of class `cls` (the scheduler queues its copy).
  std::string make_vv(const std::string& cls = "A") {
    const std::string name =
        must(catalog->create(root_peer(), {cls, kMiB, 0, "", "", "0640"})).name;
    must(catalog->finish(root_peer(), name));
    return name;
  }

  void report_failed(const FakeMovers::Request& r, Status why) {
    rpc::CopyReport rep;
    rep.request_id = r.args.request_id;
    rep.mover = "m1";
    rep.state = rpc::CopyState::kFailed;
    rep.failure = std::move(why);
    must(sched->report(root_peer(), rep));
  }

  // Ticks, and lets the archive write that goes succeed; returns where it went.
  std::pair<std::string, uint64_t> archive_next() {
    sched->tick();
    auto r = movers.take("archive");
    accept(r, rpc::Op::kArchive);
    report_done(r);
    return {r.args.vsn, r.args.file_number};
  }
  // Ticks, and has the archive write that goes find its VSN full.
  std::string fill_next() {
    sched->tick();
    auto r = movers.take("archive");
    accept(r, rpc::Op::kArchive);
    report_failed(r, Status::NoSpace("end of tape"));
    return r.args.vsn;
  }
  // Writes VV `name` (queued) onto `vsn`, the VSN being written, and evicts it from the cache.
  void archive_and_evict(const std::string& name, const std::string& vsn) {
    REQUIRE(archive_next().first == vsn);
    REQUIRE(vv(name).state == VvState::kArchived);
    must(cache->evict(root_peer(), name));
  }
  // VSNs added one after the other, each with `files` VVs archived on it (then evicted): a VSN
  // is written until it is full (NoSpace), and the VV that did not fit goes first to the next
  // one. Returns the VVs on each VSN, in file order.
  std::map<std::string, std::vector<std::string>> fill_tapes(
      const std::vector<std::pair<std::string, int>>& tapes) {
    std::map<std::string, std::vector<std::string>> on;
    std::string overflow;
    for (size_t t = 0; t < tapes.size(); ++t) {
      const auto& [vsn, files] = tapes[t];
      add_vsn(vsn);
      auto& names = on[vsn];
      while (static_cast<int>(names.size()) < files) {
        const std::string name = overflow.empty() ? make_vv() : std::exchange(overflow, {});
        archive_and_evict(name, vsn);
        names.push_back(name);
      }
      if (t + 1 < tapes.size()) {
        overflow = make_vv();
        REQUIRE(fill_next() == vsn);
      }
    }
    return on;
  }

  // Lets every stage run to its end, one request at a time, `step` apart; returns the (VSN,
  // file) each read, in order.
  std::vector<std::pair<std::string, uint64_t>> run_stages(
      std::chrono::milliseconds step = 100ms,
      const std::function<void(size_t reads)>& after_read = {}) {
    std::vector<std::pair<std::string, uint64_t>> reads;
    for (int spins = 0; spins < 1000; ++spins) {
      sched->tick();
      if (movers.pending.empty()) {
        if (sched->stage_queue().size() == 0) break;
        advance(step);
        continue;
      }
      auto r = movers.take("stage");
      reads.emplace_back(r.args.vsn, r.args.file_number);
      accept(r, rpc::Op::kStage);
      report_done(r);
      if (after_read) after_read(reads.size());
      advance(step);
    }
    return reads;
  }
};

}  // namespace

TEST_CASE("copy reports over TLS come only from an identity of role mover; a mover's reply_to") {
  Fixture f;
  f.mover_reply_to["m1"] = "tls:127.0.0.1:7371";
  f.restart();
  f.add_vsn("L00001");
  const std::string name = f.make_vv();
  f.sched->tick();
  auto r = f.movers.take("archive");
  CHECK(r.args.reply_to == "tls:127.0.0.1:7371");
  f.accept(r, rpc::Op::kArchive);
  const rpc::CopyReport rep = Fixture::done_report(r);

  // A user's identity, even one with vvmd's uid, is not a mover.
  rpc::Peer user;
  user.kind = Endpoint::Kind::kTls;
  user.uid = 0;
  user.identity = "alice";
  Status refused = f.sched->report(user, rep);
  CHECK(refused.code() == Code::kPermissionDenied);
  CHECK(refused.message().find("identities of role mover") != std::string::npos);
  CHECK(f.vv(name).state == VvState::kFinished);
  user.role = "vvmd";
  CHECK(f.sched->report(user, rep).code() == Code::kPermissionDenied);
  CHECK(f.vv(name).state == VvState::kFinished);

  rpc::Peer mover = user;
  mover.identity = "m1";
  mover.uid = 65534;
  mover.role = "mover";
  must(f.sched->report(mover, rep));
  CHECK(f.vv(name).state == VvState::kArchived);
}

TEST_CASE("NoSpace marks the VSN full and the copy goes first to another VSN") {
  Fixture f;
  f.add_vsn("L00001");
  f.add_vsn("L00002");
  const std::string first = f.make_vv();
  const std::string second = f.make_vv();
  CHECK(f.sched->archive_queue().size() == 2);

  CHECK(f.fill_next() == "L00001");
  CHECK(f.vsn("L00001").state == VsnState::kFull);
  CHECK(f.vsn("L00001").errors == 0);  // a full tape is no fault of the tape

  // The copy that did not fit goes before the one that waited behind it, onto the other VSN.
  f.sched->tick();
  auto again = f.movers.take("archive");
  CHECK(again.args.cache_path == f.catalog->cache_path(first));
  CHECK(again.args.vsn == "L00002");
  CHECK(again.args.file_number == 1);
  f.accept(again, rpc::Op::kArchive);
  f.report_done(again);
  CHECK(f.vv(first).state == VvState::kArchived);
  CHECK(f.vv(first).copies[0] == VvCopy{"L00002", 1});

  auto [vsn, file] = f.archive_next();
  CHECK(vsn == "L00002");
  CHECK(file == 2);
  CHECK(f.vv(second).copies[0] == VvCopy{"L00002", 2});
}

TEST_CASE("Mismatch sets the VSN aside: no write goes to it again") {
  Fixture f;
  f.add_vsn("L00001");
  f.add_vsn("L00002");
  const std::string first = f.make_vv();

  f.sched->tick();
  auto r = f.movers.take("archive");
  REQUIRE(r.args.vsn == "L00001");
  f.accept(r, rpc::Op::kArchive);
  f.report_failed(r, Status::Mismatch("VOL label names L00009"));
  CHECK(f.vsn("L00001").state == VsnState::kFull);
  CHECK(f.vsn("L00001").errors == 1);

  // The copy goes at once (first in line, no pause) to the other VSN, and so do the next ones.
  CHECK(f.archive_next() == std::pair<std::string, uint64_t>{"L00002", 1});
  CHECK(f.vv(first).copies[0] == VvCopy{"L00002", 1});
  for (int i = 0; i < 3; ++i) {
    f.make_vv();
    CHECK(f.archive_next().first == "L00002");
  }
  for (const auto& sent : f.movers.sent) {
    if (sent.args.request_id != r.args.request_id) CHECK(sent.args.vsn != "L00001");
  }
}

TEST_CASE("failed copies in a row take the drive down and make the VSN read-only, by vvmd") {
  Fixture f;
  f.add_vsn("L00001");
  const std::string name = f.make_vv();
  const std::string log = capture_log(f.dir, [&] {
    for (int i = 0; i < 3; ++i) {
      f.sched->tick();
      auto r = f.movers.take("archive");
      CHECK(r.args.drive == "d0");
      CHECK(r.args.vsn == "L00001");
      f.accept(r, rpc::Op::kArchive);
      f.report_failed(r, Status::IoError("write: Input/output error"));
      f.advance(10min);  // past the retry pause
    }
  });
  // The operator is told: an error in the log, saying how to bring the drive back.
  CHECK_THAT(log, Catch::Contains("drive d0 (mover m1) taken down: 3 failed copies in a row"));
  CHECK_THAT(log, Catch::Contains("'vvctl drive up d0'"));
  CHECK_THAT(log, Catch::Contains("VSN L00001 set read-only: 3 failed copies in a row"));
  const rpc::DriveDetail d0 = f.sched->drives().drives.at(0);
  CHECK_FALSE(d0.up);
  CHECK(d0.by == "vvmd");
  CHECK_THAT(d0.reason, Catch::Contains("3 failed copies in a row, the last on L00001: write"));
  CHECK(f.vsn("L00001").state == VsnState::kReadOnly);
  CHECK(f.vsn("L00001").errors == 3);
  const rpc::VsnDetail detail = f.vsns->detail_of(f.vsn("L00001"));
  CHECK(detail.state_by == "vvmd");
  CHECK_THAT(detail.state_reason, Catch::Contains("3 failed copies in a row"));
  rpc::StatusReply st;
  f.sched->fill_status(&st);
  CHECK_FALSE(st.drives.at(0).usable);

  // Nothing goes to the down drive, nor to the read-only VSN once the drive is up again.
  f.sched->tick();
  CHECK(f.movers.pending.empty());
  CHECK(f.sched->set_drive(root_peer(), {"d0", true, ""}).ok());
  CHECK(f.sched->drives().drives.at(0).up);
  f.sched->tick();
  CHECK(f.movers.pending.empty());
  // An operator makes it hot again (vvctl vsn set): the copy goes, and the rows start over.
  f.vsns->set_state_async(root_peer(), {"L00001", VsnState::kHot, "checked"},
                          [](Result<rpc::VsnSetReply> r) { REQUIRE(r.ok()); });
  CHECK(f.archive_next().first == "L00001");
  CHECK(f.vv(name).state == VvState::kArchived);
  CHECK(f.sched->drives().drives.at(0).errors_in_row == 0);
  // Refusals: an unknown drive names the drives; going down needs a reason.
  auto unknown = f.sched->set_drive(root_peer(), {"d9", false, "x"});
  CHECK(unknown.status().code() == Code::kNotFound);
  CHECK_THAT(unknown.status().message(), Catch::Contains("no drive d9 (vvm.conf's drives: d0)"));
  CHECK(f.sched->set_drive(root_peer(), {"d0", false, ""}).status().code() ==
        Code::kInvalidArgument);
  CHECK(f.sched->drives().drives.at(0).up);
}

TEST_CASE("N stages on M tapes take M mounts, each tape read in file order") {
  Fixture f;
  auto on = f.fill_tapes({{"L00001", 3}, {"L00002", 3}, {"L00003", 3}});
  f.restart();  // the drives empty, no mount counted
  f.sched->tick();
  REQUIRE(f.movers.pending.empty());

  // Asked for out of order: the tape with the oldest request first, each tape in file order.
  const std::vector<std::pair<std::string, int>> asks = {
      {"L00002", 2}, {"L00001", 1}, {"L00003", 0}, {"L00002", 0}, {"L00001", 2},
      {"L00003", 2}, {"L00001", 0}, {"L00002", 1}, {"L00003", 1}};
  for (const auto& [vsn, i] : asks) {
    must(f.sched->stage(on[vsn][i], false));
    f.advance(10ms);
  }
  CHECK(f.sched->stage_queue().size() == 9);
  f.sched->tick();
  CHECK(f.movers.pending.empty());  // requests gather a moment before a mount

  auto reads = f.run_stages();
  std::vector<std::pair<std::string, uint64_t>> want;
  for (const std::string vsn : {"L00002", "L00001", "L00003"}) {
    uint64_t last = 0;
    for (const std::string& name : on[vsn]) {
      const uint64_t file = f.vv(name).copies[0].file;
      REQUIRE(file > last);
      last = file;
      want.emplace_back(vsn, file);
    }
  }
  CHECK(reads == want);
  CHECK(f.sched->library().mounts() == 3);
  for (const auto& [vsn, names] : on) {
    for (const std::string& name : names) CHECK(f.vv(name).cache == CacheState::kCached);
  }
}

TEST_CASE("a stage a client waits for goes before archive writes") {
  Fixture f;
  auto on = f.fill_tapes({{"L00001", 1}});
  const std::string old = on["L00001"][0];
  f.restart();

  must(f.sched->stage(old, true));
  const std::string fresh = f.make_vv();  // its copy is due at once (archive-batch-files = 1)
  f.sched->tick();
  CHECK(f.movers.pending.empty());  // the drive waits for the stage's mount
  f.advance(1s);
  f.sched->tick();
  auto stage = f.movers.take("stage");
  CHECK(stage.args.cache_path == f.catalog->cache_path(old));
  CHECK(f.movers.pending.empty());
  f.accept(stage, rpc::Op::kStage);
  f.report_done(stage);
  CHECK(f.vv(old).cache == CacheState::kCached);

  // Then the write, onto the tape in the drive.
  f.sched->tick();
  auto write = f.movers.take("archive");
  CHECK(write.args.cache_path == f.catalog->cache_path(fresh));
  CHECK(write.args.vsn == "L00001");
  CHECK(f.sched->library().mounts() == 1);
}

TEST_CASE("a tape read many times in a row gives way to another tape that waits") {
  // One drive; 66 stages on L00001, then, while they are read, one on L00002. After its 64th
  // read in a row L00001 leaves the drive to L00002, and comes back for its last two.
  Fixture f;
  auto on = f.fill_tapes({{"L00001", 66}, {"L00002", 1}});
  f.restart();
  for (const std::string& name : on["L00001"]) must(f.sched->stage(name, false));
  f.advance(1s);
  auto reads = f.run_stages(100ms, [&](size_t n) {
    if (n == 3) must(f.sched->stage(on["L00002"][0], false));
  });
  REQUIRE(reads.size() == 67);
  for (size_t i = 0; i < 64; ++i) CHECK(reads[i].first == "L00001");
  CHECK(reads[64].first == "L00002");
  CHECK(reads[65] == std::pair<std::string, uint64_t>{"L00001", 65});
  CHECK(reads[66] == std::pair<std::string, uint64_t>{"L00001", 66});
  CHECK(f.sched->library().mounts() == 3);
}

TEST_CASE("the copies of a mover that restarted or is gone are sent again") {
  Fixture f;
  f.add_vsn("L00001");
  const std::string name = f.make_vv();
  f.sched->tick();
  auto first = f.movers.take("archive");
  f.accept(first, rpc::Op::kArchive);
  REQUIRE(f.sched->copying().size() == 1);

  // The movers running copies are pinged every few seconds.
  f.sched->tick();
  CHECK(f.movers.pending.empty());
  f.advance(3s);
  f.sched->tick();
  auto ping = f.movers.take("ping");
  CHECK(ping.mover == "unix:/nonexistent/m1.sock");
  bool lost = false;

  SECTION("up for longer than the copy has run: nothing is lost") {
    ping.ping_done(rpc::PingReply{"vvmover", "m1", "vvm", 3'600'000, ""});
    f.sched->tick();
    CHECK(f.movers.pending.empty());
    CHECK(f.sched->copying().size() == 1);
    f.report_done(first);
    CHECK(f.vv(name).copies[0] == VvCopy{"L00001", 1});
  }
  SECTION("restarted since the copy went") {
    ping.ping_done(rpc::PingReply{"vvmover", "m1", "vvm", 1000, ""});
    lost = true;
    CHECK(f.sched->copying().empty());
    CHECK(f.sched->archive_queue().contains(name, 0));
  }
  SECTION("two pings unanswered") {
    ping.ping_done(Status::Unavailable("connection refused"));
    CHECK(f.sched->copying().size() == 1);  // once may be a hiccup
    f.advance(3s);
    f.sched->tick();
    f.movers.take("ping").ping_done(Status::Unavailable("connection refused"));
    lost = true;
    CHECK(f.sched->copying().empty());
    CHECK(f.sched->archive_queue().contains(name, 0));
  }
  if (lost) {
    f.sched->tick();
    auto again = f.movers.take("archive");
    CHECK(again.args.cache_path == f.catalog->cache_path(name));
    CHECK(again.args.request_id != first.args.request_id);
    CHECK(again.args.vsn == "L00001");
    CHECK(again.args.file_number == 1);
    f.accept(again, rpc::Op::kArchive);
    // A late report of the lost request is not taken for the new one.
    f.report_done(first);
    CHECK(f.vv(name).state == VvState::kFinished);
    CHECK(f.sched->copying().size() == 1);
    f.report_done(again);
    CHECK(f.vv(name).state == VvState::kArchived);
    CHECK(f.vv(name).copies[0] == VvCopy{"L00001", 1});
  }
}

TEST_CASE("recovery removes the file of an evicted VV, an eviction cut short") {
  Fixture f;
  f.add_vsn("L00001");
  const std::string gone = f.make_vv(), kept = f.make_vv();
  f.archive_and_evict(gone, "L00001");
  REQUIRE(f.archive_next().first == "L00001");
  // vvmd stopped after the eviction's record was durable and before its file went.
  const std::string path = f.catalog->cache_path(gone);
  { std::ofstream(path) << "left behind"; }
  REQUIRE(std::filesystem::exists(path));
  f.restart();
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(f.vv(gone).cache == CacheState::kEvicted);
  // A cached VV's file stays.
  CHECK(f.vv(kept).cache == CacheState::kCached);
  CHECK(std::filesystem::exists(f.catalog->cache_path(kept)));
}

TEST_CASE("a mover that does not answer its ping gets no other until it does") {
  Fixture f;
  f.add_vsn("L00001");
  f.make_vv();
  f.sched->tick();
  auto archive = f.movers.take("archive");
  f.accept(archive, rpc::Op::kArchive);
  f.advance(3s);
  f.sched->tick();
  auto ping = f.movers.take("ping");
  // A mover that accepts and never reads: each ping waits the request timeout, and more sent
  // meanwhile would queue behind it, then behind each other, ever later.
  for (int i = 0; i < 5; ++i) {
    f.advance(3s);
    f.sched->tick();
  }
  CHECK(f.movers.pending.empty());
  ping.ping_done(rpc::PingReply{"vvmover", "m1", "vvm", 3'600'000, ""});
  f.advance(3s);
  f.sched->tick();
  CHECK(f.movers.take("ping").mover == "unix:/nonexistent/m1.sock");
}

TEST_CASE("Busy from a mover is tried again after its pause") {
  Fixture f;
  f.add_vsn("L00001");
  const std::string name = f.make_vv();
  f.sched->tick();
  auto first = f.movers.take("archive");
  first.copy_done(Status::Busy("drive d0 is in use"));
  CHECK(f.sched->copying().empty());
  CHECK(f.sched->archive_queue().contains(name, 0));

  // The drive is set aside a moment; the copy keeps its place and its attempts.
  f.sched->tick();
  CHECK(f.movers.pending.empty());
  f.advance(50ms);
  f.sched->tick();
  CHECK(f.movers.pending.empty());
  f.advance(60ms);
  f.sched->tick();
  auto again = f.movers.take("archive");
  CHECK(again.args.cache_path == f.catalog->cache_path(name));
  CHECK(again.args.drive == "d0");
  CHECK(again.args.file_number == 1);
  f.accept(again, rpc::Op::kArchive);
  f.report_done(again);
  CHECK(f.vv(name).copies[0] == VvCopy{"L00001", 1});
  CHECK(f.vsn("L00001").errors == 0);
}

TEST_CASE("a copy a drive was Busy for goes to another free drive at once") {
  Fixture f(kTwoMovers);
  f.add_vsn("L00001");
  const std::string name = f.make_vv();
  f.sched->tick();
  auto first = f.movers.take("archive");
  REQUIRE(first.args.drive == "d0");
  first.copy_done(Status::Busy("drive d0 is in use"));
  f.sched->tick();
  auto again = f.movers.take("archive");
  CHECK(again.args.drive == "d1");
  CHECK(again.mover == "unix:/nonexistent/m2.sock");
  CHECK(again.args.vsn == "L00001");
}

TEST_CASE("a queue whose VSNs are all being written waits quietly; one with no VSN says so") {
  Fixture f;
  const std::string none = capture_log(f.dir, [&] {
    f.make_vv();
    f.sched->tick();
  });
  CHECK_THAT(none, Catch::Contains("no VSN can take class A's copies on LTO9 (1 waiting)"));
  f.add_vsn("L00001");
  f.sched->tick();
  auto first = f.movers.take("archive");  // L00001 is being written
  f.accept(first, rpc::Op::kArchive);
  const std::string busy = capture_log(f.dir, [&] {
    f.make_vv();
    f.sched->tick();
  });
  CHECK(f.movers.pending.empty());
  CHECK_THAT(busy, !Catch::Contains("no VSN can take"));
  f.report_done(first);
  f.sched->tick();
  CHECK(f.movers.take("archive").args.vsn == "L00001");
}

TEST_CASE("repack: refused without another tape; each move one commit; resumed; reclaimed") {
  Fixture f;
  f.add_vsn("L00001");
  std::vector<std::string> vvs;
  for (int i = 0; i < 3; ++i) {
    vvs.push_back(f.make_vv());
    REQUIRE(f.archive_next() == std::pair<std::string, uint64_t>("L00001", i + 1));
  }
  auto repack = [&](const std::string& vsn) {
    std::optional<Result<rpc::RepackInfo>> got;
    f.sched->repack(root_peer(), {vsn}, [&](Result<rpc::RepackInfo> r) { got = std::move(r); });
    REQUIRE(got);
    return *got;
  };
  CHECK(repack("NOPE").status().code() == Code::kNotFound);
  auto none = repack("L00001");
  CHECK(none.status().code() == Code::kUnavailable);
  CHECK_THAT(none.status().message(),
             Catch::Contains("no other LTO9 tape can take its 3 live file(s) of class A"));
  CHECK(must(f.sched->repacks()).repacks.empty());

  f.add_vsn("L00002");
  auto started = repack("L00001");
  REQUIRE(started.ok());
  CHECK(started->files_left == 3);
  CHECK(started->state == "running");
  CHECK(repack("L00001").status().code() == Code::kBusy);

  // The first move: the copy's new place and the old file dead, together.
  REQUIRE(f.archive_next() == std::pair<std::string, uint64_t>("L00002", 1));
  CHECK(f.vv(vvs[0]).copies[0] == VvCopy{"L00002", 1});
  CopyMark mark;
  REQUIRE(find_copy_mark(*f.db, "L00001", 1, &mark).ok());
  CHECK(mark.state == CopyMarkState::kDead);
  CHECK(mark.vv == vvs[0]);
  CHECK(mark.why == "repacked to L00002 file 1");
  // A restart: the repack goes on with what is left, and nothing new goes to L00001.
  f.restart();
  REQUIRE(must(f.sched->repacks()).repacks.size() == 1);
  CHECK(must(f.sched->repacks()).repacks[0].files_moved == 1);
  CHECK(must(f.sched->repacks()).repacks[0].files_left == 2);
  REQUIRE(f.archive_next() == std::pair<std::string, uint64_t>("L00002", 2));
  REQUIRE(f.archive_next() == std::pair<std::string, uint64_t>("L00002", 3));
  f.sched->tick();
  CHECK(f.vsn("L00001").state == VsnState::kReclaim);
  auto done = must(f.sched->repacks()).repacks.at(0);
  CHECK(done.state == "done");
  CHECK(done.files_moved == 3);
  CHECK(done.files_left == 0);
  for (size_t i = 0; i < vvs.size(); ++i) {
    CHECK(f.vv(vvs[i]).copies[0] == VvCopy{"L00002", i + 1});
  }

  // Reclaim: only a reclaim tape, then hot from file 1 with its dead files forgotten.
  auto reclaim = [&](const std::string& vsn) {
    std::optional<Result<rpc::VsnReclaimReply>> got;
    f.sched->reclaim(root_peer(), {vsn},
                     [&](Result<rpc::VsnReclaimReply> r) { got = std::move(r); });
    REQUIRE(got);
    return *got;
  };
  CHECK(reclaim("L00002").status().code() == Code::kInvalidArgument);
  auto reclaimed = reclaim("L00001");
  REQUIRE(reclaimed.ok());
  CHECK(reclaimed->dead_files == 3);
  CHECK(f.vsn("L00001").state == VsnState::kHot);
  CHECK(f.vsn("L00001").next_file == 1);
  CHECK(f.vsn("L00001").bytes_used == 0);
  CHECK(find_copy_mark(*f.db, "L00001", 1, &mark).status().code() == Code::kNotFound);
  CHECK(must(f.sched->repacks()).repacks.at(0).state == "reclaimed");
}

namespace {
const std::string kTwoDrivesOneMover =
    "[drive d0]\nmover = m1\nmedia = LTO9\n[drive d1]\nmover = m1\nmedia = LTO9\n";

// Starts a repack of `vsn` and returns its answer.
Result<rpc::RepackInfo> start_repack(Fixture& f, const std::string& vsn) {
  std::optional<Result<rpc::RepackInfo>> got;
  f.sched->repack(root_peer(), {vsn}, [&](Result<rpc::RepackInfo> r) { got = std::move(r); });
  REQUIRE(got);
  return *got;
}
}  // namespace

TEST_CASE(
    "repack: evicted copies move tape to tape; a failed read of the old one goes through the "
    "cache") {
  Fixture f(kTwoDrivesOneMover);
  f.add_vsn("L00001");
  std::vector<std::string> vvs;
  for (int i = 0; i < 2; ++i) {
    vvs.push_back(f.make_vv());
    f.archive_and_evict(vvs.back(), "L00001");
  }
  f.add_vsn("L00002");
  REQUIRE(start_repack(f, "L00001").ok());

  // One request to the one mover, both its drives: the old file in one, the new tape in the other.
  std::string log = capture_log(f.dir, [&] { f.sched->tick(); });
  auto r = f.movers.take("tape-copy");
  CHECK(f.movers.pending.empty());  // no stage, and the second move waits for the drives
  CHECK(r.mover == "unix:/nonexistent/m1.sock");
  CHECK(r.from_vsn == "L00001");
  CHECK(r.from_file == 1);
  CHECK(r.args.vsn == "L00002");
  CHECK(r.args.file_number == 1);
  CHECK(r.args.checksum == kChecksum);
  CHECK(r.args.file.serial == f.vv(vvs[0]).serial);
  CHECK(((r.from_drive == "d0" && r.args.drive == "d1") ||
         (r.from_drive == "d1" && r.args.drive == "d0")));
  CHECK_THAT(log, Catch::Contains("from L00001 file 1 to L00002 file 1, tape to tape in drives"));
  rpc::StatusReply status;
  f.sched->fill_status(&status);
  for (const auto& d : status.drives) {
    CHECK_THAT(d.copying, Catch::StartsWith("repack: tape copy " + vvs[0] + " from L00001 file 1"));
  }
  f.accept(r, rpc::Op::kTapeCopy);
  f.report_done(r);
  // The copy's new place and the old file dead, in one commit; the VV never entered the cache.
  CHECK(f.vv(vvs[0]).copies[0] == VvCopy{"L00002", 1});
  CHECK(f.vv(vvs[0]).cache == CacheState::kEvicted);
  CopyMark mark;
  REQUIRE(find_copy_mark(*f.db, "L00001", 1, &mark).ok());
  CHECK(mark.state == CopyMarkState::kDead);
  CHECK(mark.why == "repacked to L00002 file 1");
  CHECK(f.vsn("L00002").next_file == 2);

  // The second: its read fails (the mover blames L00001). The copy stays where it was, live.
  f.sched->tick();
  r = f.movers.take("tape-copy");
  CHECK(r.from_file == 2);
  CHECK(r.args.file_number == 2);
  f.accept(r, rpc::Op::kTapeCopy);
  rpc::CopyReport failed;
  failed.request_id = r.args.request_id;
  failed.mover = "m1";
  failed.state = rpc::CopyState::kFailed;
  failed.vsn = "L00001";
  failed.file_number = 2;
  failed.failure = Status::IoError("VSN L00001 file 2: after 0 data bytes: medium error");
  log = capture_log(f.dir, [&] { must(f.sched->report(root_peer(), failed)); });
  CHECK_THAT(log, Catch::Contains("failed reading L00001"));
  CHECK(f.vv(vvs[1]).copies[0] == VvCopy{"L00001", 2});
  CHECK(f.vv(vvs[1]).state == VvState::kArchived);
  CHECK(find_copy_mark(*f.db, "L00001", 2, &mark).status().code() == Code::kNotFound);
  CHECK(f.vsn("L00001").errors == 1);
  CHECK(f.vsn("L00002").errors == 0);
  CHECK(f.vsn("L00002").next_file == 2);
  // After its pause the move goes through the cache: a stage of the old copy, saying why.
  log = capture_log(f.dir, [&] {
    for (int i = 0; i < 10 && f.movers.pending.empty(); ++i) {
      f.advance(1s);
      f.sched->tick();
    }
  });
  CHECK_THAT(log, Catch::Contains("repack: VV " + vvs[1] +
                                  " (L00001 file 2) is moved through the cache (a stage, then an "
                                  "archive write), not tape to tape: its tape copy failed reading "
                                  "L00001 file 2"));
  auto stage = f.movers.take("stage");
  CHECK(stage.args.vsn == "L00001");
  CHECK(stage.args.file_number == 2);
}

TEST_CASE("the scrub reads the tape verified least recently first, once its interval has passed") {
  Fixture f;
  auto on = f.fill_tapes({{"L00001", 2}, {"L00002", 1}});
  f.restart();
  // Reads every verify read the scheduler sends now, as `how`; returns the tapes read.
  auto read_all = [&](const std::string& how) {
    std::vector<std::string> tapes;
    f.sched->tick();
    for (int i = 0; i < 10 && !f.movers.pending.empty(); ++i) {
      auto r = f.movers.take("verify");
      tapes.push_back(r.args.vsn);
      f.accept(r, rpc::Op::kVerify);
      f.report_done(r);
      f.sched->tick();
    }
    for (const std::string& tape : tapes) {
      for (const VerifyMark& m : must(f.sched->verifies({tape})).marks) CHECK(m.how == how);
    }
    return tapes;
  };
  // L00001 verified by hand; L00002 never.
  REQUIRE(must(f.sched->verify(root_peer(), {"L00001"})).files == 2);
  CHECK(read_all("verify") == std::vector<std::string>{"L00001", "L00001"});
  f.config.scrub_interval = std::chrono::hours(1);
  f.advance(20min);
  CHECK(read_all("scrub") == std::vector<std::string>{"L00002"});  // never verified: first
  // Both read within the hour: nothing, however often the scrub looks.
  for (int i = 0; i < 5; ++i) {
    f.advance(2min);
    CHECK(read_all("scrub").empty());
  }
  // The hour past L00001's verify, not yet L00002's: L00001 again, then nothing.
  f.advance(35min);  // 65 min after L00001's verify, 45 after L00002's scrub
  CHECK(read_all("scrub") == std::vector<std::string>{"L00001", "L00001"});
  f.advance(2min);
  CHECK(read_all("scrub").empty());
  // Both due: the one read longest ago first (L00002), then the other.
  f.advance(2h);
  CHECK(read_all("scrub") == std::vector<std::string>{"L00002"});
  f.advance(2min);
  CHECK(read_all("scrub") == std::vector<std::string>{"L00001", "L00001"});
}

TEST_CASE("a tape disabled after a stage, verify or repack of it was asked for is never mounted") {
  Fixture f(kTwoDrivesOneMover);
  f.add_vsn("L00001");
  std::vector<std::string> vvs;
  for (int i = 0; i < 2; ++i) {
    vvs.push_back(f.make_vv());
    f.archive_and_evict(vvs.back(), "L00001");
  }
  f.restart();  // the drives empty
  auto disable = [&] {
    f.vsns->set_state_async(root_peer(), {"L00001", VsnState::kDisabled, "robot arm jam"},
                            [](Result<rpc::VsnSetReply> r) { REQUIRE(r.ok()); });
    REQUIRE(f.vsn("L00001").state == VsnState::kDisabled);
  };
  SECTION("a stage of its only copy fails, saying why") {
    must(f.sched->stage(vvs[0], true));
    REQUIRE(must(f.sched->verify(root_peer(), {"L00001"})).files == 2);
    disable();
    const std::string log = capture_log(f.dir, [&] {
      for (int i = 0; i < 3; ++i) {
        f.advance(1s);
        f.sched->tick();
      }
    });
    CHECK(f.movers.sent.size() == 2);  // the two archives of the set-up, nothing since
    CHECK(f.sched->stage_queue().size() == 0);
    CHECK(f.vv(vvs[0]).cache == CacheState::kEvicted);
    auto again = f.sched->stage(vvs[0], true);
    CHECK(again.status().code() == Code::kUnavailable);
    CHECK_THAT(again.status().message(),
               Catch::Contains("on disabled VSNs, never mounted: L00001"));
    CHECK(must(f.sched->verifies({"L00001"})).queued == 0);
    CHECK_THAT(log,
               Catch::Contains("verify: VV " + vvs[1] +
                               "'s copy 1 on L00001 file 2 not read back: L00001 is disabled"));
  }
  SECTION("a repack's tape copy waits") {
    f.add_vsn("L00002");
    REQUIRE(start_repack(f, "L00001").ok());
    disable();
    for (int i = 0; i < 3; ++i) {
      f.advance(1s);
      f.sched->tick();
    }
    CHECK(f.movers.pending.empty());
    CHECK(f.sched->library().mounts() == 0);
  }
}

TEST_CASE("bad input to verify, drive up and down, repack, reclaim and prune changes nothing") {
  Fixture f;
  f.add_vsn("L00001");
  const std::string name = f.make_vv();
  f.archive_and_evict(name, "L00001");
  f.add_vsn("L00002");
  f.vsns->set_state_async(root_peer(), {"L00002", VsnState::kDisabled, "robot arm jam"},
                          [](Result<rpc::VsnSetReply> r) { REQUIRE(r.ok()); });
  const auto vsns_before = must(f.vsns->list({})).vsns;
  const auto drives_before = f.sched->drives();
  rpc::Peer user = root_peer();
  user.uid = 4242;
  rpc::Peer tcp;
  tcp.kind = Endpoint::Kind::kTcp;
  tcp.address = "127.0.0.1:40000";
  // Answers given through a callback come at once, before anything durable is waited for.
  auto answer = [](auto call) {
    std::optional<Status> got;
    call([&](auto r) { got = r.status(); });
    REQUIRE(got);
    return *got;
  };
  auto refused = [](const Status& s, Code code, const std::string& words) {
    CHECK(s.code() == code);
    CHECK_THAT(s.message(), Catch::Contains(words));
  };

  refused(f.sched->verify(root_peer(), {"NOPE"}).status(), Code::kNotFound, "no VSN NOPE");
  refused(f.sched->verify(root_peer(), {"L00002"}).status(), Code::kInvalidArgument,
          "cannot verify VSN L00002: it is disabled");
  refused(f.sched->verify(user, {"L00001"}).status(), Code::kPermissionDenied,
          "may not verify VSN L00001");
  refused(f.sched->verify(tcp, {"L00001"}).status(), Code::kPermissionDenied,
          "for a TCP peer (127.0.0.1:40000)");
  refused(f.sched->verifies({"NOPE"}).status(), Code::kNotFound, "no VSN NOPE");
  refused(f.sched->set_drive(root_peer(), {"d9", true, ""}).status(), Code::kNotFound,
          "no drive d9 (vvm.conf's drives: d0)");
  refused(f.sched->set_drive(user, {"d0", false, "x"}).status(), Code::kPermissionDenied,
          "may not take down drive d0");
  refused(f.sched->set_drive(tcp, {"d0", false, "x"}).status(), Code::kPermissionDenied,
          "over TCP vvmd cannot tell who you are");
  refused(answer([&](auto done) { f.sched->repack(user, {"L00001"}, done); }),
          Code::kPermissionDenied, "may not repack VSN L00001");
  refused(answer([&](auto done) { f.sched->repack(root_peer(), {"L00002"}, done); }),
          Code::kInvalidArgument, "cannot repack VSN L00002: it is disabled");
  refused(answer([&](auto done) { f.sched->reclaim(root_peer(), {"L00001"}, done); }),
          Code::kInvalidArgument, "VSN L00001 is hot: only a tape in state reclaim");
  refused(answer([&](auto done) { f.sched->reclaim(root_peer(), {"NOPE"}, done); }),
          Code::kNotFound, "no VSN NOPE");
  refused(answer([&](auto done) { f.sched->prune(root_peer(), {"Z"}, done); }), Code::kNotFound,
          "no storage class 'Z' (classes: A)");
  refused(answer([&](auto done) { f.sched->prune(user, {"A"}, done); }), Code::kPermissionDenied,
          "may not prune class A");

  // Nothing queued, nothing sent, no state changed.
  f.advance(2s);
  f.sched->tick();
  CHECK(f.movers.pending.empty());
  CHECK(must(f.sched->verifies({"L00001"})).queued == 0);
  CHECK(must(f.sched->repacks()).repacks.empty());
  CHECK(f.sched->drives() == drives_before);
  CHECK(must(f.vsns->list({})).vsns == vsns_before);
  CHECK(f.vsns->detail_of(f.vsn("L00002")).state_reason == "robot arm jam");
  CHECK(f.vv(name).state == VvState::kArchived);
  CHECK(f.vv(name).copies[0] == VvCopy{"L00001", 1});
}

TEST_CASE("repack: with no mover holding two drives of the media, moves go through the cache") {
  Fixture f(kTwoMovers);
  f.add_vsn("L00001");
  const std::string vv = f.make_vv();
  f.archive_and_evict(vv, "L00001");
  f.add_vsn("L00002");
  REQUIRE(start_repack(f, "L00001").ok());
  const std::string log = capture_log(f.dir, [&] {
    for (int i = 0; i < 10 && f.movers.pending.empty(); ++i) {
      f.advance(1s);
      f.sched->tick();
    }
  });
  CHECK_THAT(log, Catch::Contains("repack: VV " + vv +
                                  " (L00001 file 1) is moved through the cache (a stage, then an "
                                  "archive write), not tape to tape: no mover has two LTO9 drives "
                                  "up, one for each tape"));
  CHECK(f.movers.take("stage").args.vsn == "L00001");
}

TEST_CASE("a verify read running on the drive a client's stage needs is cancelled, read later") {
  Fixture f;  // one drive
  auto registry = std::make_shared<prometheus::Registry>();
  Metrics metrics(registry);
  f.metrics = &metrics;
  f.restart();
  f.add_vsn("L00001");
  std::vector<std::string> vvs;
  for (int i = 0; i < 2; ++i) {
    vvs.push_back(f.make_vv());
    f.archive_and_evict(vvs.back(), "L00001");
  }
  REQUIRE(must(f.sched->verify(root_peer(), {"L00001"})).files == 2);
  f.sched->tick();
  auto read = f.movers.take("verify");
  CHECK(read.args.file_number == 1);
  // Not yet accepted: there is no job to cancel.
  must(f.sched->stage(vvs[1], true));
  f.sched->tick();
  CHECK(f.movers.cancels.empty());
  f.accept(read, rpc::Op::kVerify);
  const std::string log = capture_log(f.dir, [&] { f.sched->tick(); });
  REQUIRE(f.movers.cancels.size() == 1);
  CHECK(f.movers.cancels[0].first == "unix:/nonexistent/m1.sock");
  CHECK(f.movers.cancels[0].second.request_id == read.args.request_id);
  CHECK(f.movers.cancels[0].second.job == f.next_job - 1);
  CHECK_THAT(log, Catch::Contains("cancelled: a client waits for a stage from L00001, the tape it "
                                  "reads"));
  f.sched->tick();
  CHECK(f.movers.cancels.size() == 1);  // asked once
  CHECK(f.movers.pending.empty());      // the drive is the verify's until it has ended
  f.movers.cancel_done[0](rpc::CancelReply{});
  // The mover's report of the killed read: no fault of the tape or the drive.
  f.report_failed(read, Status::Unavailable("job 1 (verify of VSN L00001 file 1) cancelled"));
  // Neither a pass nor a failure: nothing counted, nothing recorded.
  CHECK(f.vsn("L00001").errors == 0);
  CHECK(copy_failures(*registry, "verify") == 0);
  CHECK(must(f.sched->verifies({"L00001"})).marks.empty());
  CHECK(f.sched->drives().drives[0].errors_in_row == 0);
  f.sched->tick();
  auto stage = f.movers.take("stage");
  CHECK(stage.args.file_number == 2);
  f.accept(stage, rpc::Op::kStage);
  f.report_done(stage);
  // Then the verify reads go on, the cancelled one again.
  std::vector<uint64_t> files;
  for (int i = 0; i < 5 && files.size() < 2; ++i) {
    f.advance(1s);
    f.sched->tick();
    if (f.movers.pending.empty()) continue;
    auto r = f.movers.take("verify");
    files.push_back(r.args.file_number);
    f.accept(r, rpc::Op::kVerify);
    f.report_done(r);
  }
  CHECK(files == std::vector<uint64_t>{1, 2});
  auto marks = must(f.sched->verifies({"L00001"})).marks;
  REQUIRE(marks.size() == 2);
  for (const VerifyMark& m : marks) CHECK(m.good);
  CHECK(copy_failures(*registry, "verify") == 0);
}

TEST_CASE("the verify read cancelled for a client's stage is the one on the stage's own tape") {
  // Two drives, each verifying a tape. Cancelling the read of the other tape would leave the
  // stage waiting: its tape is in the drive still verifying, and it can be read nowhere else.
  Fixture f(kTwoMovers);
  auto on = f.fill_tapes({{"L00001", 1}, {"L00002", 2}, {"L00003", 1}});
  f.restart();
  REQUIRE(must(f.sched->verify(root_peer(), {"L00001"})).files == 1);
  REQUIRE(must(f.sched->verify(root_peer(), {"L00002"})).files == 2);
  f.sched->tick();
  auto first = f.movers.take("verify");
  auto second = f.movers.take("verify");
  REQUIRE(first.args.vsn == "L00001");
  REQUIRE(second.args.vsn == "L00002");
  REQUIRE(second.args.file_number == 1);
  f.accept(first, rpc::Op::kVerify);
  f.accept(second, rpc::Op::kVerify);
  const uint64_t mounts = f.sched->library().mounts();
  // How far each read has come: the first further.
  auto progress = [&](const FakeMovers::Request& r, uint64_t bytes) {
    rpc::CopyReport rep;
    rep.request_id = r.args.request_id;
    rep.mover = "m1";
    rep.state = rpc::CopyState::kRunning;
    rep.bytes_done = bytes;
    must(f.sched->report(root_peer(), rep));
  };
  progress(first, kMiB / 2);
  progress(second, kMiB / 4);

  SECTION("the stage's tape is in a verifying drive: that read is cancelled, the tape read there") {
    must(f.sched->stage(on["L00002"][1], true));
    f.sched->tick();
    REQUIRE(f.movers.cancels.size() == 1);
    CHECK(f.movers.cancels[0].second.request_id == second.args.request_id);
    CHECK(f.movers.cancels[0].first == second.mover);
    f.movers.cancel_done[0](rpc::CancelReply{});
    f.report_failed(second, Status::Unavailable("cancelled"));
    f.sched->tick();
    auto stage = f.movers.take("stage");
    CHECK(stage.args.vsn == "L00002");
    CHECK(stage.args.file_number == 2);
    CHECK(stage.args.drive == second.args.drive);
    CHECK(f.sched->library().mounts() == mounts);  // the tape where it was
  }
  SECTION("the stage's tape is in no drive: the read that has done least is cancelled") {
    must(f.sched->stage(on["L00003"][0], true));
    f.sched->tick();
    REQUIRE(f.movers.cancels.size() == 1);
    CHECK(f.movers.cancels[0].second.request_id == second.args.request_id);
    f.movers.cancel_done[0](rpc::CancelReply{});
    f.report_failed(second, Status::Unavailable("cancelled"));
    f.advance(1s);
    f.sched->tick();
    auto stage = f.movers.take("stage");
    CHECK(stage.args.vsn == "L00003");
    CHECK(stage.args.drive == second.args.drive);
  }
  // The first read was left alone, and nothing counted against the tapes or drives.
  CHECK(f.movers.cancels.size() == 1);
  CHECK(f.vsn("L00002").errors == 0);
  for (const auto& d : f.sched->drives().drives) CHECK(d.errors_in_row == 0);
}

TEST_CASE("no verify read is cancelled for a stage whose tape is in a drive busy otherwise") {
  // d1 stages from L00001 and d0 verifies L00002; a second stage of L00001 waits for d1, where
  // its tape is: cancelling the verify would free a drive it cannot use.
  Fixture f(kTwoMovers);
  auto on = f.fill_tapes({{"L00001", 2}, {"L00002", 1}});
  f.restart();
  REQUIRE(must(f.sched->verify(root_peer(), {"L00002"})).files == 1);
  f.sched->tick();
  auto verify = f.movers.take("verify");
  f.accept(verify, rpc::Op::kVerify);
  must(f.sched->stage(on["L00001"][0], true));
  f.advance(1s);
  f.sched->tick();
  auto first = f.movers.take("stage");
  REQUIRE(first.args.vsn == "L00001");
  REQUIRE(first.args.drive != verify.args.drive);
  f.accept(first, rpc::Op::kStage);
  must(f.sched->stage(on["L00001"][1], true));
  for (int i = 0; i < 3; ++i) {
    f.advance(1s);
    f.sched->tick();
  }
  CHECK(f.movers.cancels.empty());
  std::erase_if(f.movers.pending, [](const auto& r) { return r.what == "ping"; });  // unanswered
  CHECK(f.movers.pending.empty());
  // Once the first stage ends, the second is read where its tape is.
  f.report_done(first);
  f.sched->tick();
  auto second = f.movers.take("stage");
  CHECK(second.args.vsn == "L00001");
  CHECK(second.args.drive == first.args.drive);
  CHECK(f.movers.cancels.empty());
}

TEST_CASE("background reads leave a mounted tape's drive at once to a client's stage elsewhere") {
  // One drive. A repack of L00001 stages its copies through the cache (background reads); a
  // client's stage of a VV on L00002, asked for while the first of them runs, is next in the
  // drive: the repack's second read does not extend L00001's mount.
  Fixture f;
  auto on = f.fill_tapes({{"L00001", 3}, {"L00002", 1}});
  f.restart();
  REQUIRE(start_repack(f, "L00001").ok());
  f.sched->tick();
  f.advance(1s);
  f.sched->tick();
  auto bg = f.movers.take("stage");
  REQUIRE(bg.args.vsn == "L00001");
  REQUIRE(bg.args.file_number == 1);
  f.accept(bg, rpc::Op::kStage);
  const bool waiting = GENERATE(true, false);  // `vvctl stage --wait`, or without
  must(f.sched->stage(on["L00002"][0], waiting));
  f.report_done(bg);
  f.sched->tick();
  CHECK(f.movers.pending.empty());  // the client's requests gather a moment; the drive waits
  f.advance(1s);
  f.sched->tick();
  auto stage = f.movers.take("stage");
  CHECK(stage.args.vsn == "L00002");
  f.accept(stage, rpc::Op::kStage);
  f.report_done(stage);
  CHECK(f.vv(on["L00002"][0]).cache == CacheState::kCached);
  // Then the repack goes on: its next read on L00001, mounted again.
  std::vector<std::pair<std::string, uint64_t>> reads;
  for (int i = 0; i < 10 && reads.empty(); ++i) {
    f.advance(1s);
    f.sched->tick();
    while (!f.movers.pending.empty()) {
      auto r = std::move(f.movers.pending.front());
      f.movers.pending.pop_front();
      if (r.what == "stage") reads.emplace_back(r.args.vsn, r.args.file_number);
    }
  }
  CHECK(reads == std::vector<std::pair<std::string, uint64_t>>{{"L00001", 2}});
}

TEST_CASE("a queue whose only VSN failed too many copies, not in a row, names it") {
  // vsn ls shows such a VSN hot, and the scheduler writes it no more: the warning must not only
  // tell the operator to add a tape, but name this one and how to write it again.
  Fixture f;
  f.add_vsn("L00001");
  for (int i = 0; i < 3; ++i) {
    f.make_vv();
    f.sched->tick();
    auto r = f.movers.take("archive");
    f.accept(r, rpc::Op::kArchive);
    f.report_failed(r, Status::IoError("write block 2: Input/output error"));
    f.advance(60s);
    if (i < 2) REQUIRE(f.archive_next().first == "L00001");  // a good copy between failures
  }
  REQUIRE(f.vsn("L00001").errors == 3);
  REQUIRE(f.vsn("L00001").state == VsnState::kHot);  // never 3 failures in a row
  const std::string log = capture_log(f.dir, [&] {
    f.advance(60s);
    f.sched->tick();
  });
  CHECK(f.movers.pending.empty());
  CHECK_THAT(log, Catch::Contains("no VSN can take class A's copies on LTO9 (1 waiting)"));
  CHECK_THAT(log, Catch::Contains("L00001 has 3 failed copies and is not written until set hot "
                                  "again ('vvctl vsn set VSN hot --reason TEXT' once checked)"));
}

namespace {

const std::string kThreeDrives = kTwoMovers + "[drive d2]\nmover = m1\nmedia = LTO9\n";

// The requests waiting for the movers' answers whose VV is of class `cls`, of kind `what`.
size_t pending_of(const FakeMovers& movers, const std::string& what, const std::string& cls) {
  size_t n = 0;
  for (const auto& r : movers.pending) n += r.what == what && r.args.file.vv_class == cls;
  return n;
}

// Ticks, then ends the oldest request (accepted, done), `steps` times or until nothing goes;
// `check` sees the requests running before each end. Returns the steps taken.
int run_copies(Fixture& f, const std::string& what, int steps, const std::function<void()>& check) {
  int step = 0;
  for (; step < steps; ++step) {
    f.sched->tick();
    if (f.movers.pending.empty()) break;
    check();
    auto r = f.movers.take(what);
    f.accept(r, what == "stage" ? rpc::Op::kStage : rpc::Op::kArchive);
    f.report_done(r);
  }
  return step;
}

}  // namespace

TEST_CASE("two classes' archive backlogs share the drives by their write limits") {
  // Three drives; A may write on one, B on two. A's backlog is the older: without the limits it
  // would take all three drives until it is done.
  Fixture f(std::string("[class B]\nmedia = LTO9\nwrite-max-drives = 2\n") + kThreeDrives,
            "write-max-drives = 1\n");
  for (int i = 1; i <= 8; ++i) f.add_vsn("L0000" + std::to_string(i));
  std::vector<std::string> vvs;
  for (int i = 0; i < 6; ++i) vvs.push_back(f.make_vv("A"));
  f.advance(1ms);
  for (int i = 0; i < 6; ++i) vvs.push_back(f.make_vv("B"));

  size_t most_a = 0, most_b = 0;
  bool together = true;
  const int steps = run_copies(f, "archive", 100, [&] {
    const size_t a = pending_of(f.movers, "archive", "A"), b = pending_of(f.movers, "archive", "B");
    CHECK(a <= 1);
    CHECK(b <= 2);
    most_a = std::max(most_a, a);
    most_b = std::max(most_b, b);
    // While both have copies left, both write.
    if (f.sched->archive_queue().files({'A', "LTO9"}) > 0 &&
        f.sched->archive_queue().files({'B', "LTO9"}) > 0) {
      together = together && a == 1 && b == 2;
    }
  });
  CHECK(steps == 12);
  CHECK(most_a == 1);
  CHECK(most_b == 2);
  CHECK(together);
  for (const std::string& name : vvs) CHECK(f.vv(name).state == VvState::kArchived);
}

TEST_CASE("without limits a drive freed goes to the class using the fewest") {
  // Two drives, two classes without limits, A's backlog the older: one drive each, not both A's.
  Fixture f(std::string("[class B]\nmedia = LTO9\n") + kTwoMovers);
  for (int i = 1; i <= 4; ++i) f.add_vsn("L0000" + std::to_string(i));
  for (int i = 0; i < 4; ++i) f.make_vv("A");
  f.advance(1ms);
  for (int i = 0; i < 4; ++i) f.make_vv("B");
  const int steps = run_copies(f, "archive", 100, [&] {
    if (f.sched->archive_queue().files({'A', "LTO9"}) > 0 &&
        f.sched->archive_queue().files({'B', "LTO9"}) > 0) {
      CHECK(pending_of(f.movers, "archive", "A") == 1);
      CHECK(pending_of(f.movers, "archive", "B") == 1);
    }
  });
  CHECK(steps == 8);
}

TEST_CASE("a class's read limit of one drive is never exceeded, and without it two read") {
  for (const bool limited : {true, false}) {
    CAPTURE(limited);
    Fixture f(kTwoMovers, limited ? "read-max-drives = 1\n" : "");
    auto on = f.fill_tapes({{"L00001", 3}, {"L00002", 3}});
    f.restart();  // the drives empty
    for (const auto& [vsn, names] : on) {
      for (const std::string& name : names) must(f.sched->stage(name, false));
    }
    f.advance(2s);  // past the gathering of requests
    size_t most = 0;
    const int steps = run_copies(f, "stage", 100, [&] {
      const size_t n = pending_of(f.movers, "stage", "A");
      if (limited) CHECK(n <= 1);
      most = std::max(most, n);
    });
    CHECK(steps == 6);
    CHECK(most == (limited ? 1u : 2u));
    for (const auto& [vsn, names] : on) {
      for (const std::string& name : names) CHECK(f.vv(name).cache == CacheState::kCached);
    }
  }
}

TEST_CASE(
    "archive-min-wait: no mount before the oldest copy has waited, but a mounted tape takes it") {
  Fixture f(kOneDrive, "archive-min-wait = 10m\n");
  f.add_vsn("L00001");
  const std::string first = f.make_vv();
  f.sched->tick();
  CHECK(f.movers.pending.empty());  // due by the batch rule, too young for a mount
  f.advance(9min);
  f.sched->tick();
  CHECK(f.movers.pending.empty());
  f.advance(1min);
  f.sched->tick();
  auto r = f.movers.take("archive");
  CHECK(r.args.file.serial == f.vv(first).serial);
  f.accept(r, rpc::Op::kArchive);
  f.report_done(r);
  CHECK(f.vv(first).state == VvState::kArchived);

  // L00001 is in the free drive now: the next copy goes at once.
  const std::string second = f.make_vv();
  f.sched->tick();
  auto next = f.movers.take("archive");
  CHECK(next.args.vsn == "L00001");
  CHECK(f.sched->library().mounts() == 1);
}

TEST_CASE("a class at its read limit leaves the other drive to another class's stages") {
  // Two drives; A may read on one. A's stages on two tapes are older than B's: without the
  // limit they would take both drives and B would wait.
  Fixture f(std::string("[class B]\nmedia = LTO9\n") + kTwoMovers, "read-max-drives = 1\n");
  auto on = f.fill_tapes({{"L00001", 2}, {"L00002", 2}});
  f.add_vsn("L00003");
  const std::string b = f.make_vv("B");
  REQUIRE(f.archive_next().first == "L00003");
  must(f.cache->evict(root_peer(), b));
  f.restart();
  for (const auto& [vsn, names] : on) {
    for (const std::string& name : names) must(f.sched->stage(name, false));
    f.advance(10ms);
  }
  must(f.sched->stage(b, false));
  f.advance(2s);
  f.sched->tick();
  CHECK(pending_of(f.movers, "stage", "A") == 1);
  CHECK(pending_of(f.movers, "stage", "B") == 1);
}

TEST_CASE("a stage whose cache file failed blames no tape; asked again a little later, it reads") {
  Fixture f;
  auto on = f.fill_tapes({{"L00001", 1}});
  const std::string name = on["L00001"][0];
  f.restart();
  const uint64_t errors_before = f.vsn("L00001").errors;

  // A mover's report of a stage names its tape when the tape failed; without a VSN it says the
  // cache file could not be written (copy/child.cc).
  auto fail_stage = [&](const std::string& blamed) {
    must(f.sched->stage(name, true));
    f.advance(1s);
    f.sched->tick();
    auto r = f.movers.take("stage");
    f.accept(r, rpc::Op::kStage);
    rpc::CopyReport rep;
    rep.request_id = r.args.request_id;
    rep.mover = "m1";
    rep.state = rpc::CopyState::kFailed;
    rep.vsn = blamed;
    rep.failure = Status::IoError("/cache/.stage.A1: write: Input/output error");
    must(f.sched->report(root_peer(), rep));
  };

  fail_stage("");
  // Nothing counted against the copy or its tape: the VV is evicted again, not retried on the
  // tape, and whoever asks at once hears why.
  CHECK(f.vv(name).cache == CacheState::kEvicted);
  CHECK(f.vsn("L00001").errors == errors_before);
  CHECK(f.sched->stage_queue().size() == 0);
  auto refused = f.sched->stage(name, true);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::Contains("the cache file could not be written"));

  // A little later a new stage reads the same copy, from the tape still in the drive.
  f.advance(6s);
  f.sched->tick();
  const uint64_t mounts = f.sched->library().mounts();
  must(f.sched->stage(name, true));
  f.advance(1s);
  f.sched->tick();
  auto again = f.movers.take("stage");
  CHECK(again.args.vsn == "L00001");
  CHECK(f.sched->library().mounts() == mounts);
  f.accept(again, rpc::Op::kStage);
  f.report_done(again);
  CHECK(f.vv(name).cache == CacheState::kCached);

  // The same failure blamed on the tape counts there, and the stage is tried again on it.
  must(f.cache->evict(root_peer(), name));
  fail_stage("L00001");
  CHECK(f.vsn("L00001").errors == errors_before + 1);
  CHECK(f.vv(name).cache == CacheState::kStaging);
  CHECK(f.sched->stage_queue().size() == 1);
}
