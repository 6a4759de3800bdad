// classes_test.cc: storage classes that change while VVs of them are on tape. Which copies a VV
// lacks and which are extra (sched/class_copies.h); what a reload of vvm.conf applies, what it
// leaves for a restart and what it refuses (conf/reload.h); and the scheduler over a real
// database with fake movers and a fake clock: a class that gains a media type has every archived
// VV's copy made (from the cache, or staged first), found again after a restart, counted by
// classes(); one that loses a type keeps those copies, extra, until prune() marks their tape files
// dead, and a stage then reads the copy that is left; what vv_copies() tells vvctl show of each
// copy's media; and the copies made as background work, after a stage a client waits for: tape to
// tape where one mover has a drive of each media type (copy_route()), else through the cache.
// With the real daemons: test/integration/vv-class-change.sh and vv-class-third.sh.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "cache/cache_manager.h"
#include "catalog/catalog.h"
#include "catalog/vsn_catalog.h"
#include "catalog/vv_opens.h"
#include "common/config.h"
#include "conf/reload.h"
#include "db/database.h"
#include "fake_movers.h"
#include "peers.h"
#include "process.h"
#include "sched/class_copies.h"
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

Vv vv_with(std::vector<std::string> vsns) {
  Vv vv;
  vv.name = "A0000000001";
  vv.vv_class = "A";
  for (size_t i = 0; i < vsns.size(); ++i) vv.copies[i] = {vsns[i], i + 1};
  return vv;
}

// L* tapes are LTO9, M* LTO8, N* LTO7.
std::string media_of(const std::string& vsn) {
  if (vsn.starts_with("L")) return "LTO9";
  if (vsn.starts_with("M")) return "LTO8";
  if (vsn.starts_with("N")) return "LTO7";
  return "";
}

// The vvm.conf sections the tests put together: a media type's small tapes, a mover, and a
// drive of `media` on `mover`.
std::string media_section(const std::string& media) {
  return fmt::format("[media {}]\ncapacity = 64M\n", media);
}
std::string mover_section(const std::string& mover) {
  return fmt::format("[mover {}]\nlisten = unix:/nonexistent/{}.sock\n", mover, mover);
}
std::string drive_section(const std::string& drive, const std::string& mover,
                          const std::string& media) {
  return fmt::format("[drive {}]\nmover = {}\nmedia = {}\n", drive, mover, media);
}

const std::string kConf =
    "[vvmd]\nlisten = unix:/nonexistent/vvmd.sock\narchive-batch-files = 1\n" +
    media_section("LTO9") + media_section("LTO8") + "[class A]\nmedia = LTO9\n";
const std::string kMovers =
    mover_section("m1") + drive_section("d0", "m1", "LTO9") + drive_section("d1", "m1", "LTO8");
// The LTO8 drive on a mover of its own: no mover can copy LTO9 to LTO8 tape to tape.
const std::string kMoversApart = mover_section("m1") + mover_section("m2") +
                                 drive_section("d0", "m1", "LTO9") +
                                 drive_section("d1", "m2", "LTO8");

Config conf(const std::string& text) {
  return must(parse_config(text, "vvm.conf", "/nonexistent"));
}

// `text` with the first `from` in it replaced by `to`; the test fails when there is none.
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("class copies: what a VV lacks and what it holds in excess") {
  SECTION("a new VV's copies go to the slots of their media types' positions") {
    ClassCopies c = class_copies(vv_with({}), {"LTO9", "LTO8"}, media_of);
    REQUIRE(c.lacking.size() == 2);
    CHECK(c.lacking[0].media == "LTO9");
    CHECK(c.lacking[0].slot == 0);
    CHECK(c.lacking[1].media == "LTO8");
    CHECK(c.lacking[1].slot == 1);
    CHECK(c.extra.empty());
  }
  SECTION("a media type added: its copy lacking, in the next free slot") {
    ClassCopies c = class_copies(vv_with({"L00001"}), {"LTO9", "LTO8"}, media_of);
    REQUIRE(c.lacking.size() == 1);
    CHECK(c.lacking[0].media == "LTO8");
    CHECK(c.lacking[0].slot == 1);
    CHECK_FALSE(c.complete());
  }
  SECTION("a media type removed: its copy extra, the rest complete, whatever the order") {
    ClassCopies c = class_copies(vv_with({"L00001", "M00001"}), {"LTO8"}, media_of);
    CHECK(c.complete());
    REQUIRE(c.extra.size() == 1);
    CHECK(c.extra[0] == 0);
    CHECK(c.extra_media[0] == "LTO9");
  }
  SECTION("a type added into a slot freed by another's removal") {
    Vv vv = vv_with({"", "M00001"});
    ClassCopies c = class_copies(vv, {"LTO8", "LTO7"}, media_of);
    REQUIRE(c.lacking.size() == 1);
    CHECK(c.lacking[0].media == "LTO7");
    CHECK(c.lacking[0].slot == 0);  // its position (1) is taken by the LTO8 copy
  }
  SECTION("a second copy on one media type is extra") {
    ClassCopies c = class_copies(vv_with({"L00001", "L00002"}), {"LTO9"}, media_of);
    CHECK(c.complete());
    REQUIRE(c.extra.size() == 1);
    CHECK(c.extra[0] == 1);
  }
  SECTION("no free slot left") {
    ClassCopies c =
        class_copies(vv_with({"L00001", "L00002", "L00003", "L00004"}), {"LTO9", "LTO8"}, media_of);
    REQUIRE(c.lacking.size() == 1);
    CHECK(c.lacking[0].slot == kMaxVvCopies);
  }
}

TEST_CASE("class copies: the route of a lacking copy: the cache, tape to tape, or a stage first") {
  const Config config = conf(kConf + kMovers + media_section("LTO7") + mover_section("m2") +
                             drive_section("d2", "m2", "LTO7") + drive_section("d3", "m2", "LTO9"));
  LibraryView view(config);
  const std::vector<CopySource> lto9 = {{0, "L00001", 3, "LTO9"}};
  SECTION("a VV in the cache is written from there") {
    CHECK(copy_route(true, lto9, "LTO8", view.drives()).kind == CopyRoute::Kind::kFromCache);
  }
  SECTION("tape to tape on the mover with a drive for each media type") {
    CopyRoute r = copy_route(false, lto9, "LTO8", view.drives());
    CHECK(r.kind == CopyRoute::Kind::kTapeToTape);
    CHECK(r.mover == "m1");
    CHECK(r.source.vsn == "L00001");
    CHECK(r.source.file == 3);
    r = copy_route(false, lto9, "LTO7", view.drives());
    CHECK(r.kind == CopyRoute::Kind::kTapeToTape);
    CHECK(r.mover == "m2");
  }
  SECTION("the first source a mover can read: an LTO8 copy read for LTO7 only through m2's LTO9") {
    const std::vector<CopySource> two = {{1, "M00001", 1, "LTO8"}, {0, "L00001", 3, "LTO9"}};
    CopyRoute r = copy_route(false, two, "LTO7", view.drives());
    CHECK(r.kind == CopyRoute::Kind::kTapeToTape);
    CHECK(r.source.vsn == "L00001");
    CHECK(r.mover == "m2");
  }
  SECTION("a drive down: staged first, saying why") {
    view.find("d1")->down = true;
    CopyRoute r = copy_route(false, lto9, "LTO8", view.drives());
    CHECK(r.kind == CopyRoute::Kind::kStageFirst);
    CHECK(r.why == "no mover has a drive up for LTO9 (L00001) and one for LTO8");
    view.find("d1")->down = false;
    view.find("d1")->busy = true;  // busy is waited for, not a reason to use the cache
    CHECK(copy_route(false, lto9, "LTO8", view.drives()).kind == CopyRoute::Kind::kTapeToTape);
  }
  SECTION("no copy to read") {
    CopyRoute r = copy_route(false, {}, "LTO8", view.drives());
    CHECK(r.kind == CopyRoute::Kind::kStageFirst);
    CHECK(r.why == "it has no copy on a tape that may be read");
  }
}

TEST_CASE(
    "reload: the classes change live, the rest waits for a restart, the impossible is refused") {
  const Config live = conf(kConf + kMovers);
  bool tape = true;
  uint64_t vvs = 0;
  ReloadFacts facts{[&](char, const std::string&) { return tape; },
                    [&](char) -> Result<uint64_t> { return vvs; }};

  SECTION("a media type added to a class, a limit, a new class") {
    const std::string text =
        replaced(kConf + kMovers + "[class B]\nmedia = LTO8\n", "media = LTO9\n",
                 "media = LTO9 LTO8\nwrite-max-drives = 1\n");
    auto plan = must(plan_reload(live, conf(text), facts));
    CHECK(plan.classes_changed);
    REQUIRE(plan.applied.size() == 3);
    CHECK(plan.applied[0] == "class A: media LTO9 LTO8 (was LTO9)");
    CHECK(plan.applied[1] ==
          "class A: read-max-drives 0, write-max-drives 1 (was 0, 0; 0: no limit)");
    CHECK(plan.applied[2] == "class B: new, media LTO8");
    CHECK(plan.restart.empty());
    CHECK(plan.classes.at('A').media == std::vector<std::string>{"LTO9", "LTO8"});
  }
  SECTION("what cannot change live is named and left as it runs") {
    const std::string text = replaced(kConf + kMovers + drive_section("d2", "m1", "LTO9"),
                                      "archive-batch-files = 1", "archive-batch-files = 5");
    auto plan = must(plan_reload(live, conf(text), facts));
    CHECK_FALSE(plan.classes_changed);
    CHECK(plan.applied.empty());
    CHECK(plan.restart == std::vector<std::string>{
                              "[vvmd] archive-batch-size, archive-batch-files, archive-max-wait",
                              "mover m1", "drive d2 (new)"});
  }
  SECTION("a media type no running drive takes") {
    const std::string text =
        replaced(kConf + kMovers + media_section("LTO7") + drive_section("d3", "m1", "LTO7"),
                 "media = LTO9\n", "media = LTO9 LTO7\n");
    auto plan = plan_reload(live, conf(text), facts);
    REQUIRE_FALSE(plan.ok());
    CHECK_THAT(plan.status().message(),
               Catch::Contains("class A: no drive of vvmd's movers takes media LTO7 (drive d3 in "
                               "the file takes it: drives change only with a restart)"));
  }
  SECTION("no tape of the media type") {
    tape = false;
    const std::string text = replaced(kConf + kMovers, "media = LTO9\n", "media = LTO9 LTO8\n");
    auto plan = plan_reload(live, conf(text), facts);
    REQUIRE_FALSE(plan.ok());
    CHECK_THAT(plan.status().message(),
               Catch::Contains("class A: no tape of media LTO8 may take its copies (add a blank "
                               "one first: 'vvctl vsn add VSN --media LTO8')"));
  }
  SECTION("a class dropped while it has VVs") {
    vvs = 3;
    const std::string text =
        replaced(kConf + kMovers, "[class A]\nmedia = LTO9\n", "[class B]\nmedia = LTO9\n");
    auto plan = plan_reload(live, conf(text), facts);
    REQUIRE_FALSE(plan.ok());
    CHECK_THAT(plan.status().message(),
               Catch::Contains("class A is gone from the file, but 3 VV(s) of it exist"));
    vvs = 0;
    auto ok = must(plan_reload(live, conf(text), facts));
    CHECK(ok.applied ==
          std::vector<std::string>{"class B: new, media LTO9", "class A: removed (it had no VVs)"});
  }
}

namespace {

struct Fixture : vvm::test::SchedFixture {
  // `drives`: the [mover] and [drive] sections.
  explicit Fixture(const std::string& drives = kMovers)
      : SchedFixture(conf(kConf + drives), /*answer_pings=*/true) {}

  // Ticks until the movers hold a request (at most 5 s of fake time).
  FakeMovers::Request next(const std::string& what) {
    for (int i = 0; i < 50 && movers.pending.empty(); ++i) {
      sched->tick();
      if (movers.pending.empty()) advance(100ms);
    }
    return movers.take(what);
  }
  // The mover takes the copy and reports it done.
  void done(FakeMovers::Request& r, rpc::Op op) {
    accept(r, op);
    report_done(r);
  }
  // Class A's line for media `type` in classes(); none when it has no copy and is not listed.
  std::optional<rpc::ClassMedia> media(const std::string& type) {
    auto list = must(sched->classes(true));
    for (const auto& m : list.classes.at(0).media) {
      if (m.media == type) return m;
    }
    return std::nullopt;
  }
};

}  // namespace

TEST_CASE(
    "a class that gains a media type has every archived VV's copy made; one that loses it "
    "keeps the copies until pruned") {
  Fixture f(kMoversApart);  // no tape-to-tape copy: an evicted VV is staged first
  must(f.vsns->add(root_peer(), {"L00001", "LTO9", ""}));
  must(f.vsns->add(root_peer(), {"M00001", "LTO8", ""}));
  std::vector<std::string> names;
  for (int i = 0; i < 2; ++i) {
    names.push_back(must(f.catalog->create(root_peer(), {"A", kMiB, 0, "", "", "0640"})).name);
    must(f.catalog->finish(root_peer(), names.back()));
    auto r = f.next("archive");
    CHECK(r.args.vsn == "L00001");
    f.done(r, rpc::Op::kArchive);
    REQUIRE(f.vv(names.back()).state == VvState::kArchived);
  }
  must(f.cache->evict(root_peer(), names[0]));  // the first must be staged for its new copy

  // The class gains LTO8 (as a reload does), then vvmd restarts: what lacks is derived again.
  f.config.classes['A'].media = {"LTO9", "LTO8"};
  f.sched->classes_changed();
  {
    auto lto8 = f.media("LTO8");
    REQUIRE(lto8);
    CHECK(lto8->listed);
    CHECK(lto8->lacking == 2);
    CHECK(lto8->copies == 0);
  }
  {
    // What vvctl show prints: the copy lacking and the slot it will be written to.
    auto c = must(f.sched->vv_copies({{{names[1]}}}));
    REQUIRE(c.vvs.size() == 1);
    CHECK(c.vvs[0].vsns == std::vector<rpc::VsnMedia>{{"L00001", "LTO9"}});
    CHECK(c.vvs[0].lacking == std::vector<rpc::LackingCopy>{{"LTO8", 2}});
    CHECK(c.vvs[0].extra.empty());
  }
  f.restart();

  // The cached VV is written from the cache at once; the evicted one is staged (from L00001)
  // in the background, then written.
  auto write = f.next("archive");
  CHECK(write.args.vsn == "M00001");
  CHECK(write.args.cache_path == f.catalog->cache_path(names[1]));
  f.done(write, rpc::Op::kArchive);
  CHECK(f.vv(names[1]).state == VvState::kArchived);
  CHECK(f.vv(names[1]).copies[1] == VvCopy{"M00001", 1});
  CHECK(f.vv(names[0]).cache == CacheState::kStaging);
  auto read = f.next("stage");
  CHECK(read.args.vsn == "L00001");
  CHECK(read.args.file_number == 1);
  f.done(read, rpc::Op::kStage);
  f.advance(1s);
  auto second = f.next("archive");
  CHECK(second.args.vsn == "M00001");
  CHECK(second.args.file_number == 2);
  f.done(second, rpc::Op::kArchive);
  CHECK(f.vv(names[0]).copies[1] == VvCopy{"M00001", 2});
  CHECK(f.vv(names[0]).state == VvState::kArchived);
  {
    auto lto8 = f.media("LTO8");
    CHECK(lto8->lacking == 0);
    CHECK(lto8->copies == 2);
  }
  // Nothing more to write, after a restart too.
  f.restart();
  for (int i = 0; i < 30; ++i) {
    f.sched->tick();
    f.advance(100ms);
  }
  CHECK(f.movers.pending.empty());

  // LTO9 leaves the class: its copies are extra, listed, until pruned.
  f.config.classes['A'].media = {"LTO8"};
  f.sched->classes_changed();
  {
    auto lto9 = f.media("LTO9");
    REQUIRE(lto9);
    CHECK_FALSE(lto9->listed);
    CHECK(lto9->copies == 2);
    CHECK(lto9->bytes == 2 * kMiB);
  }
  {
    // Each copy's media is its tape's, whatever its slot (the LTO8 copy is copy 2 of a class
    // that lists LTO8 alone); an unknown name is left out.
    auto c = must(f.sched->vv_copies({{{names[0]}, {"A0000009999"}}}));
    REQUIRE(c.vvs.size() == 1);
    CHECK(c.vvs[0].name == names[0]);
    CHECK(c.vvs[0].vsns == std::vector<rpc::VsnMedia>{{"L00001", "LTO9"}, {"M00001", "LTO8"}});
    CHECK(c.vvs[0].extra == std::vector<uint32_t>{1});
    CHECK(c.vvs[0].lacking.empty());
  }
  rpc::Peer nobody = root_peer();
  nobody.uid = 4242;
  f.sched->prune(nobody, {"A"}, [](Result<rpc::ClassPruneReply> r) {
    CHECK(r.status().code() == Code::kPermissionDenied);
  });
  f.sched->prune(root_peer(), {"Z"}, [](Result<rpc::ClassPruneReply> r) {
    CHECK_THAT(r.status().message(), Catch::Contains("no storage class 'Z' (classes: A)"));
  });
  std::optional<rpc::ClassPruneReply> pruned;
  f.sched->prune(root_peer(), {"A"}, [&](Result<rpc::ClassPruneReply> r) { pruned = must(r); });
  REQUIRE(pruned);
  CHECK(pruned->files == 2);
  CHECK(pruned->bytes == 2 * kMiB);
  CHECK(pruned->kept == 0);
  size_t dead = 0;
  must(scan_copy_marks_on_vsn(*f.db, "L00001", [&](uint64_t, const CopyMark& m) {
    dead +=
        m.state == CopyMarkState::kDead && m.why == "pruned: LTO9 is not a media type of class A";
    return true;
  }));
  CHECK(dead == 2);
  CHECK(f.vv(names[0]).copies[0].vsn.empty());
  {
    auto lto9 = f.media("LTO9");
    CHECK_FALSE(lto9.has_value());  // no copy left on it
    auto c = must(f.sched->vv_copies({{{names[0]}}}));
    REQUIRE(c.vvs.size() == 1);
    CHECK(c.vvs[0].vsns == std::vector<rpc::VsnMedia>{{"M00001", "LTO8"}});
    CHECK(c.vvs[0].extra.empty());
    CHECK(c.vvs[0].lacking.empty());
  }

  // Staging reads the copy that is left.
  must(f.cache->evict(root_peer(), names[1]));
  must(f.sched->stage(names[1], true));
  auto back = f.next("stage");
  CHECK(back.args.vsn == "M00001");
  CHECK(back.args.file_number == 1);
}

TEST_CASE(
    "a class's new copies are background work: a stage a client waits for goes first, and the "
    "copies are all made after it, in file order per tape") {
  Fixture f(kMoversApart);  // through the cache
  must(f.vsns->add(root_peer(), {"L00001", "LTO9", ""}));
  must(f.vsns->add(root_peer(), {"M00001", "LTO8", ""}));
  auto archived = [&](const std::string& vsn) {
    std::string name = must(f.catalog->create(root_peer(), {"A", kMiB, 0, "", "", "0640"})).name;
    must(f.catalog->finish(root_peer(), name));
    auto r = f.next("archive");
    CHECK(r.args.vsn == vsn);
    f.done(r, rpc::Op::kArchive);
    REQUIRE(f.vv(name).state == VvState::kArchived);
    return name;
  };
  std::vector<std::string> names = {archived("L00001"), archived("L00001")};
  // The third goes to a second LTO9 tape, L00001 read-only by then: the client's stage and the
  // background ones then want the one LTO9 drive for two different tapes.
  bool set = false;
  f.vsns->set_state_async(root_peer(), {"L00001", VsnState::kReadOnly, "test"},
                          [&](Result<rpc::VsnSetReply> r) { set = r.ok(); });
  REQUIRE(set);
  must(f.vsns->add(root_peer(), {"L00002", "LTO9", ""}));
  names.push_back(archived("L00002"));
  for (const std::string& n : names) must(f.cache->evict(root_peer(), n));

  // The class gains LTO8: the first two (L00001 files 1 and 2) are queued to be staged in the
  // background, before any client asks for anything.
  f.config.classes['A'].media = {"LTO9", "LTO8"};
  f.sched->classes_changed();
  f.sched->tick();
  CHECK(f.vv(names[0]).cache == CacheState::kStaging);
  CHECK(f.vv(names[1]).cache == CacheState::kStaging);
  CHECK(f.movers.pending.empty());  // their requests gather a moment before a mount
  f.advance(500ms);
  // Then a client waits for the third: its tape is mounted first, though it asked later.
  must(f.sched->stage(names[2], true));
  auto first = f.next("stage");
  CHECK(first.args.vsn == "L00002");
  CHECK(first.args.file_number == 1);
  for (int i = 0; i < 20; ++i) {  // the background reads wait for the drive meanwhile
    f.sched->tick();
    f.advance(100ms);
  }
  CHECK(f.movers.pending.empty());
  f.done(first, rpc::Op::kStage);
  CHECK(f.vv(names[2]).cache == CacheState::kCached);

  // Then the background work goes on to the end: each VV read and its LTO8 copy written.
  auto all_copied = [&] {
    return std::all_of(names.begin(), names.end(), [&](const std::string& n) {
      Vv vv = f.vv(n);
      return vv.state == VvState::kArchived && vv.copies[1].vsn == "M00001";
    });
  };
  std::vector<std::string> reads;
  for (int i = 0; i < 300 && !all_copied(); ++i) {
    f.sched->tick();
    if (f.movers.pending.empty()) {
      f.advance(100ms);
      continue;
    }
    FakeMovers::Request r = std::move(f.movers.pending.front());
    f.movers.pending.pop_front();
    if (r.what == "stage") {
      reads.push_back(fmt::format("{} file {}", r.args.vsn, r.args.file_number));
      f.done(r, rpc::Op::kStage);
    } else {
      REQUIRE(r.what == "archive");
      CHECK(r.args.vsn == "M00001");
      f.done(r, rpc::Op::kArchive);
    }
  }
  CHECK(all_copied());
  CHECK(reads == std::vector<std::string>{"L00001 file 1", "L00001 file 2"});
  auto lto8 = f.media("LTO8");
  REQUIRE(lto8);
  CHECK(lto8->lacking == 0);
  CHECK(lto8->copies == 3);
}

TEST_CASE(
    "a class's new copies of evicted VVs go tape to tape on the mover that has both drives, after "
    "a stage a client waits for, in file order; a failed read of the source goes through the "
    "cache") {
  Fixture f;  // m1: d0 LTO9, d1 LTO8
  must(f.vsns->add(root_peer(), {"L00001", "LTO9", ""}));
  must(f.vsns->add(root_peer(), {"M00001", "LTO8", ""}));
  std::vector<std::string> names;
  for (int i = 0; i < 5; ++i) {
    names.push_back(must(f.catalog->create(root_peer(), {"A", kMiB, 0, "", "", "0640"})).name);
    must(f.catalog->finish(root_peer(), names.back()));
    auto r = f.next("archive");
    f.done(r, rpc::Op::kArchive);
    REQUIRE(f.vv(names.back()).copies[0] == VvCopy{"L00001", static_cast<uint64_t>(i + 1)});
  }
  // names[2] stays in the cache; names[4] is the one a client asks for.
  for (int i : {0, 1, 3, 4}) must(f.cache->evict(root_peer(), names[i]));
  f.config.classes['A'].media = {"LTO9", "LTO8"};
  f.sched->classes_changed();
  must(f.sched->stage(names[4], true));

  std::vector<std::string> seen;  // "stage L00001 4", "tape-copy L00001 1 M00001", ...
  bool failed_once = false;
  auto all_copied = [&] {
    return std::all_of(names.begin(), names.end(), [&](const std::string& n) {
      Vv vv = f.vv(n);
      return vv.state == VvState::kArchived && vv.copies[1].vsn == "M00001";
    });
  };
  for (int i = 0; i < 600 && !all_copied(); ++i) {
    f.sched->tick();
    if (f.movers.pending.empty()) {
      f.advance(100ms);
      continue;
    }
    FakeMovers::Request r = std::move(f.movers.pending.front());
    f.movers.pending.pop_front();
    if (r.what == "tape-copy") {
      seen.push_back(fmt::format("tape-copy {} {} {}", r.from_vsn, r.from_file, r.args.vsn));
      CHECK(r.from_drive == "d0");
      CHECK(r.args.drive == "d1");
      CHECK(r.args.checksum == kChecksum);
      // Nothing of a tape copy goes through the cache.
      CHECK(f.vv(names[r.from_file - 1]).cache == CacheState::kEvicted);
      const auto& on_way = f.media("LTO8");
      REQUIRE(on_way);
      CHECK(on_way->on_way >= 1);
      if (r.from_file == 2 && !failed_once) {
        // The source's read fails: the copy stays, and the new one goes through the cache.
        failed_once = true;
        r.copy_done(rpc::CopyAccepted{rpc::Op::kTapeCopy, f.next_job++, "d1"});
        rpc::CopyReport rep;
        rep.request_id = r.args.request_id;
        rep.mover = "m1";
        rep.state = rpc::CopyState::kFailed;
        rep.vsn = "L00001";
        rep.file_number = r.args.file_number;
        rep.failure = Status::IoError("L00001 file 2: reading a data block: Input/output error");
        must(f.sched->report(root_peer(), rep));
        CHECK(f.vv(names[1]).copies[0] == VvCopy{"L00001", 2});
        continue;
      }
      f.done(r, rpc::Op::kTapeCopy);
    } else {
      seen.push_back(fmt::format("{} {} {}", r.what, r.args.vsn, r.args.file_number));
      f.done(r, r.what == "stage" ? rpc::Op::kStage : rpc::Op::kArchive);
    }
  }
  REQUIRE(all_copied());
  INFO(fmt::format("{}", fmt::join(seen, ", ")));
  // The client's stage went first of the reads of L00001, before any tape copy.
  auto at = [&](const std::string& what) {
    return std::find(seen.begin(), seen.end(), what) - seen.begin();
  };
  const auto client = at("stage L00001 5");
  REQUIRE(client < static_cast<ptrdiff_t>(seen.size()));
  for (size_t i = 0; i < seen.size(); ++i) {
    if (seen[i].starts_with("tape-copy")) CHECK(static_cast<ptrdiff_t>(i) > client);
  }
  // In file order: file 1 tape to tape, file 2 tried, then through the cache (a stage of it,
  // then its archive from the cache), file 4 tape to tape; files 3 and 5 (in the cache by then)
  // from the cache.
  CHECK(at("tape-copy L00001 1 M00001") < at("tape-copy L00001 2 M00001"));
  CHECK(at("tape-copy L00001 2 M00001") < at("tape-copy L00001 4 M00001"));
  CHECK(at("stage L00001 2") < static_cast<ptrdiff_t>(seen.size()));
  CHECK(std::count_if(seen.begin(), seen.end(),
                      [](const std::string& s) { return s.starts_with("tape-copy"); }) == 3);
  CHECK(f.vv(names[0]).cache == CacheState::kEvicted);
  CHECK(f.vv(names[3]).cache == CacheState::kEvicted);
  CHECK(f.vv(names[1]).cache == CacheState::kCached);
  auto lto8 = f.media("LTO8");
  REQUIRE(lto8);
  CHECK(lto8->lacking == 0);
  CHECK(lto8->copies == 5);
  // Every new copy a file of its own on M00001, the VSN's next file past them.
  std::set<uint64_t> files;
  for (const std::string& n : names) files.insert(f.vv(n).copies[1].file);
  CHECK(files == std::set<uint64_t>{1, 2, 3, 4, 5});
  Vsn m;
  must(lookup_vsn(*f.db, "name", db::KeyBuilder().text("M00001"), &m));
  CHECK(m.next_file == 6);
}

TEST_CASE("a class's tape copy cut short by a vvmd restart is sent again, to the same tape file") {
  Fixture f;
  must(f.vsns->add(root_peer(), {"L00001", "LTO9", ""}));
  must(f.vsns->add(root_peer(), {"M00001", "LTO8", ""}));
  const std::string name =
      must(f.catalog->create(root_peer(), {"A", kMiB, 0, "", "", "0640"})).name;
  must(f.catalog->finish(root_peer(), name));
  auto r = f.next("archive");
  f.done(r, rpc::Op::kArchive);
  must(f.cache->evict(root_peer(), name));
  f.config.classes['A'].media = {"LTO9", "LTO8"};
  f.sched->classes_changed();

  auto first = f.next("tape-copy");
  CHECK(first.from_vsn == "L00001");
  CHECK(first.from_file == 1);
  CHECK(first.args.vsn == "M00001");
  CHECK(first.args.file_number == 1);
  f.restart();  // vvmd gone before the report: nothing was recorded
  CHECK(f.vv(name).copies[1].vsn.empty());
  auto again = f.next("tape-copy");
  CHECK(again.from_vsn == "L00001");
  CHECK(again.args.vsn == "M00001");
  CHECK(again.args.file_number == 1);  // the mover writes over what the first left there
  CHECK(again.args.request_id != first.args.request_id);
  f.done(again, rpc::Op::kTapeCopy);
  CHECK(f.vv(name).copies[1] == VvCopy{"M00001", 1});
  CHECK(f.vv(name).cache == CacheState::kEvicted);
  CHECK(f.vv(name).state == VvState::kArchived);
}
