// tape_library_test.cc: the emulated library: create writes a VOL label (file 0: the label and a
// synced tape mark) and records the capacity; mount refuses a VSN that is in another drive and a
// busy drive, naming both; unmount frees both; list shows VSN, media and where each tape is; the
// capacity sidecar is replaced whole, so a reader never finds it empty.
#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "process.h"
#include "tape/library.h"

using namespace vvm;
using namespace vvm::tape;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

struct Lib {
  TempDir dir = must(TempDir::create("vvm-lib"));
  std::unique_ptr<TapeLibrary> lib =
      must(TapeLibrary::open(dir.path(), LibraryOptions{{"d1", "d2"}, {}}));
};

void ok(const Status& s) {
  INFO(s.message());
  REQUIRE(s.ok());
}

}  // namespace

TEST_CASE("create writes file 0: the VOL label and a tape mark, and records the capacity") {
  Lib l;
  ok(l.lib->create("V00001", "LTO9", 1 << 20));
  REQUIRE(must(read_capacity(l.lib->image_path("V00001"))) == 1 << 20);

  EmulatedTape tape;
  REQUIRE(tape.load(l.lib->image_path("V00001")).ok());
  std::string buf(1024, '\0');
  ReadResult r = tape.read_block(buf);
  REQUIRE(r.ok());
  REQUIRE(r.kind == BlockKind::kData);
  REQUIRE(r.size == kLabelSize);
  REQUIRE(must(VolLabel::decode(std::string_view(buf.data(), r.size))) ==
          VolLabel{"V00001", "LTO9"});
  REQUIRE(tape.read_block(buf).kind == BlockKind::kTapeMark);
  REQUIRE(tape.read_block(buf).kind == BlockKind::kEndOfData);
  // Synced: a power loss right after create keeps the label.
  REQUIRE(tape.synced_bytes() == 4 + 80 + 4 + 4);

  SECTION("twice is refused") {
    Status s = l.lib->create("V00001", "LTO9", 0);
    REQUIRE(s.code() == Code::kAlreadyExists);
  }
  SECTION("a bad VSN or media is refused before any image exists") {
    REQUIRE(l.lib->create("v1", "LTO9", 0).code() == Code::kInvalidArgument);
    REQUIRE(l.lib->create("V1234567", "LTO9", 0).code() == Code::kInvalidArgument);
    REQUIRE(l.lib->create("V2", "lto9", 0).code() == Code::kInvalidArgument);
    REQUIRE(must(l.lib->list()).size() == 1);
  }
}

TEST_CASE("mount puts one tape in one drive") {
  Lib l;
  ok(l.lib->create("V00001", "LTO9", 0));
  ok(l.lib->create("V00002", "LTO8", 0));
  ok(l.lib->mount("V00001", "d1"));
  REQUIRE(l.lib->mounted("d1") == "V00001");
  REQUIRE(l.lib->drive("d1") != nullptr);
  REQUIRE(l.lib->drive("d2") == nullptr);
  REQUIRE(must(read_volume_label(*l.lib->drive("d1"))).vsn == "V00001");

  SECTION("the same tape in another drive is refused, naming both drives") {
    Status s = l.lib->mount("V00001", "d2");
    REQUIRE(s.code() == Code::kBusy);
    REQUIRE(s.message() == "cannot mount V00001 in drive d2: it is mounted in drive d1");
  }
  SECTION("another tape in a busy drive is refused, naming both tapes") {
    Status s = l.lib->mount("V00002", "d1");
    REQUIRE(s.code() == Code::kBusy);
    REQUIRE(s.message() == "cannot mount V00002 in drive d1: the drive holds V00001");
  }
  SECTION("mounting a tape where it is already is fine") { ok(l.lib->mount("V00001", "d1")); }
  SECTION("unknown drives and tapes") {
    REQUIRE(l.lib->mount("V00002", "d9").code() == Code::kNotFound);
    Status s = l.lib->mount("V00009", "d2");
    REQUIRE(s.code() == Code::kNotFound);
    REQUIRE_THAT(s.message(), Catch::Contains("no tape V00009"));
  }
  SECTION("unmount frees the drive and the tape") {
    ok(l.lib->unmount("d1"));
    REQUIRE(l.lib->mounted("d1").empty());
    REQUIRE(l.lib->drive("d1") == nullptr);
    ok(l.lib->mount("V00001", "d2"));
    ok(l.lib->mount("V00002", "d1"));
    ok(l.lib->unmount("d1"));
    ok(l.lib->unmount("d1"));  // empty already: nothing to do
  }
}

TEST_CASE("a mounted tape has its capacity") {
  Lib l;
  ok(l.lib->create("V00001", "LTO9", 64 * 1024));
  ok(l.lib->mount("V00001", "d1"));
  EmulatedTape* t = l.lib->drive("d1");
  REQUIRE(t->position_to_file(1).ok());
  std::string block(16 * 1024, 'x');
  TapeResult r;
  for (int i = 0; i < 8 && r.ok(); ++i) r = t->write_block(block);
  REQUIRE(r.err == ENOSPC);
}

TEST_CASE("list shows VSN, media and where each tape is") {
  Lib l;
  ok(l.lib->create("V00002", "LTO8", 0));
  ok(l.lib->create("V00001", "LTO9", 5000));
  must(EmulatedTape::create_image(l.lib->image_path("BLANK")));
  ok(l.lib->mount("V00002", "d2"));
  auto tapes = must(l.lib->list());
  REQUIRE(tapes.size() == 3);
  REQUIRE(tapes[0].vsn == "BLANK");
  REQUIRE(tapes[0].media.empty());
  REQUIRE_THAT(tapes[0].error, Catch::Contains("blank tape"));
  REQUIRE(tapes[1].vsn == "V00001");
  REQUIRE(tapes[1].media == "LTO9");
  REQUIRE(tapes[1].capacity == 5000);
  REQUIRE(tapes[1].drive.empty());
  REQUIRE(tapes[1].error.empty());
  REQUIRE(tapes[2].vsn == "V00002");
  REQUIRE(tapes[2].media == "LTO8");
  REQUIRE(tapes[2].drive == "d2");
}

TEST_CASE("open_tape loads an image with the capacity of its sidecar") {
  TempDir dir = must(TempDir::create("vvm-lib"));
  std::string image = dir.file("T.tap");
  must(EmulatedTape::create_image(image));
  must(write_capacity(image, 40000));
  auto tape = must(open_tape(image));
  std::string block(16 * 1024, 'x');
  TapeResult r;
  for (int i = 0; i < 4 && r.ok(); ++i) r = tape->write_block(block);
  REQUIRE(r.err == ENOSPC);
  REQUIRE(open_tape(dir.file("missing.tap")).status().code() == Code::kNotFound);
}

TEST_CASE("a capacity sidecar rewritten while it is read is always whole") {
  // A mover opening a tape while vvmd or vvtape writes its sidecar must read the old capacity or
  // the new one: a sidecar rewritten in place (truncated, then written) reads empty in between,
  // which this reader, spinning on it, sees within a few hundred rewrites.
  TempDir dir = must(TempDir::create("vvm-lib"));
  const std::string image = dir.file("T.tap");
  must(write_capacity(image, 40000));
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::string bad;  // the first bad read, written by the reader alone, read after join
  std::thread reader([&] {
    while (!stop.load()) {
      auto c = read_capacity(image);
      reads.fetch_add(1);
      if (!c.ok() || (*c != 40000 && *c != 80000)) {
        bad = c.ok() ? fmt::format("read {}", *c) : c.status().message();
        return;
      }
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int rewrites = 0;
  for (; rewrites < 300 && std::chrono::steady_clock::now() < deadline; ++rewrites) {
    must(write_capacity(image, rewrites % 2 ? 40000 : 80000));
  }
  stop = true;
  reader.join();
  INFO(rewrites << " rewrites, " << reads.load() << " reads");
  CHECK(bad == "");
  CHECK(reads.load() > rewrites);
  // No temporary file is left beside it, and the sidecar keeps its mode.
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    names.push_back(e.path().filename().string());
  }
  CHECK(names == std::vector<std::string>{"T.tap.capacity"});
  struct stat st;
  REQUIRE(::stat(capacity_path(image).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  // A capacity of 0 removes it.
  must(write_capacity(image, 0));
  CHECK_FALSE(std::filesystem::exists(capacity_path(image)));
  CHECK(must(read_capacity(image)) == 0);
}
