// copy_test.cc: the copy engine on an emulated tape. Archive then stage round trips byte for
// byte (sizes 0, 1, block-1, block, block+1, a few MiB); the layout on tape is DESIGN.md's; a
// corrupted label, a flipped data byte, a wrong tape and a wrong file number are each caught with
// a message naming VSN, file, field, expected and found, and leave no cache file behind; an
// interrupted archive (with or without the tape mark st adds on close) is overwritten by the
// next; end of medium gives NoSpace and leaves every earlier file readable; stage spaces over
// earlier files rather than reading them; a cache file that cannot be written stops a stage
// cleanly. A tape copy (tape to tape, two drives) writes labels of its own file number, reblocks,
// stages back byte for byte, and on a bad source (a flipped byte, a medium error), the wrong
// tape or a full destination fails naming the tape to blame, leaving no complete file behind.
#include <dirent.h>
#include <fmt/core.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>

#include "copy/copy.h"
#include "process.h"
#include "tape/emulated_tape.h"
#include "tape/library.h"

using namespace vvm;
using namespace vvm::tape;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

constexpr size_t kBlock = kDefaultBlockSize;

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) s[i + j] = static_cast<char>(v >> (8 * j));
  }
  return s;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void put_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Flips the byte at `offset` of the image.
void flip(const std::string& path, size_t offset, char to = 0) {
  std::string s = file_bytes(path);
  REQUIRE(offset < s.size());
  s[offset] = to ? to : static_cast<char>(s[offset] ^ 0x20);
  put_file(path, s);
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

VvFields vv_for(uint64_t n, uint64_t size) { return VvFields{'A', 40 + n, 7, size, 1700000000}; }

struct Fixture {
  TempDir dir = must(TempDir::create("vvm-copy"));
  std::string image = dir.file("V00001.tap");
  std::string cache = dir.file("cache");
  std::unique_ptr<EmulatedTape> tape;

  explicit Fixture(EmulatedTapeOptions options = {}) {
    must(EmulatedTape::create_image(image));
    REQUIRE(::mkdir(cache.c_str(), 0755) == 0);
    tape = std::make_unique<EmulatedTape>(options);
    REQUIRE(tape->load(image).ok());
    must(write_volume_label(*tape, VolLabel{"V00001", "LTO9"}));
  }

  // Archives `data` as file n, from a cache file named after n.
  Result<ArchiveDone> archive_data(uint64_t n, std::string_view data, size_t block = kBlock,
                                   std::string vsn = "V00001") {
    std::string src = cache + "/src" + std::to_string(n);
    put_file(src, data);
    ArchiveRequest req{vsn, n, vv_for(n, data.size()), 1700000100, block};
    return archive(*tape, req, src);
  }

  StageRequest stage_request(uint64_t n, std::string_view data) {
    return StageRequest{"V00001", n, vv_for(n, data.size()), checksum_of(data)};
  }

  std::string out(uint64_t n) { return cache + "/A" + std::to_string(40 + n); }

  Result<StageDone> stage_to(const StageRequest& req, CopySide* side = nullptr) {
    return stage(*tape, req, cache, out(req.file_number), {}, side);
  }

  // Checks that file n stages back as `data`.
  void require_stages(uint64_t n, std::string_view data) {
    auto done = stage_to(stage_request(n, data));
    INFO("file " << n << ": " << done.status().message());
    REQUIRE(done.ok());
    REQUIRE(done->bytes == data.size());
    REQUIRE(file_bytes(out(n)) == data);
    ::unlink(out(n).c_str());
  }

  // Reopens the image, as a new process would.
  void reload() {
    tape = std::make_unique<EmulatedTape>();
    REQUIRE(tape->load(image).ok());
  }

  // The cache folder holds only the archive sources: no staged or temporary file.
  void require_no_stage_leftovers() {
    for (const auto& n : names_in(cache)) REQUIRE_THAT(n, Catch::StartsWith("src"));
  }
};

}  // namespace

TEST_CASE("archive then stage round trips byte for byte") {
  Fixture f;
  const std::vector<size_t> sizes = {0, 1, kBlock - 1, kBlock, kBlock + 1, 3 * 1024 * 1024 + 17};
  std::vector<std::string> datas;
  for (size_t i = 0; i < sizes.size(); ++i) {
    datas.push_back(random_bytes(sizes[i], i));
    std::vector<uint64_t> seen;
    std::string src = f.cache + "/src" + std::to_string(i + 1);
    put_file(src, datas[i]);
    ArchiveRequest req{"V00001", i + 1, vv_for(i + 1, sizes[i]), 1700000100};
    auto done = archive(*f.tape, req, src, [&](uint64_t b) { seen.push_back(b); });
    INFO("size " << sizes[i] << ": " << done.status().message());
    REQUIRE(done.ok());
    REQUIRE(done->vsn == "V00001");
    REQUIRE(done->file_number == i + 1);
    REQUIRE(done->bytes == sizes[i]);
    REQUIRE(done->checksum == checksum_of(datas[i]));
    REQUIRE(done->time_written == 1700000100);
    REQUIRE(done->blocks == (sizes[i] + kBlock - 1) / kBlock);
    REQUIRE(seen.size() == done->blocks);
    if (!seen.empty()) REQUIRE(seen.back() == sizes[i]);
    REQUIRE(std::is_sorted(seen.begin(), seen.end()));
  }
  // In any order, and after the tape has been closed and opened again.
  f.reload();
  for (size_t i = sizes.size(); i-- > 0;) f.require_stages(i + 1, datas[i]);
  f.require_stages(5, datas[4]);
  f.require_no_stage_leftovers();

  SECTION("list_files sees every file complete") {
    auto files = must(list_files(*f.tape));
    REQUIRE(files.size() == sizes.size());
    for (size_t i = 0; i < files.size(); ++i) {
      REQUIRE(files[i].number == i + 1);
      REQUIRE(files[i].hdr);
      REQUIRE(files[i].eof);
      REQUIRE(files[i].hdr->size == sizes[i]);
      REQUIRE(files[i].problems.empty());
      REQUIRE(!files[i].partial);
    }
  }
}

TEST_CASE("other block sizes round trip too") {
  Fixture f;
  std::string data = random_bytes(2 * 1024 * 1024 + 3, 9);
  auto done = must(f.archive_data(1, data, 4096));
  REQUIRE(done.blocks == (data.size() + 4095) / 4096);
  auto big = must(f.archive_data(2, data, 1024 * 1024));
  REQUIRE(big.blocks == 3);
  f.require_stages(1, data);
  f.require_stages(2, data);
}

TEST_CASE("the layout on tape: HDR, data blocks, EOF, one tape mark") {
  Fixture f;
  std::string data = random_bytes(kBlock + 5, 1);
  must(f.archive_data(1, data));
  must(f.archive_data(2, ""));
  f.reload();
  EmulatedTape& t = *f.tape;
  std::string buf(1 << 20, '\0');
  auto next = [&]() {
    ReadResult r = t.read_block(buf);
    REQUIRE(r.ok());
    return r;
  };
  REQUIRE(t.position_to_file(1).ok());
  ReadResult r = next();
  REQUIRE(r.size == kLabelSize);
  FileLabel hdr = must(FileLabel::decode(std::string_view(buf.data(), r.size)));
  REQUIRE(hdr == FileLabel{LabelKind::kHdr, 'A', 41, 7, 1, data.size(), 1700000000, 1700000100});
  REQUIRE(next().size == kBlock);
  REQUIRE(next().size == 5);
  r = next();
  FileLabel eof = must(FileLabel::decode(std::string_view(buf.data(), r.size)));
  REQUIRE(eof.kind == LabelKind::kEof);
  REQUIRE(next().kind == BlockKind::kTapeMark);
  // File 2, empty: HDR, EOF, tape mark.
  REQUIRE(must(FileLabel::decode(std::string_view(buf.data(), next().size))).file_number == 2);
  REQUIRE(must(FileLabel::decode(std::string_view(buf.data(), next().size))).kind ==
          LabelKind::kEof);
  REQUIRE(next().kind == BlockKind::kTapeMark);
  REQUIRE(next().kind == BlockKind::kEndOfData);
  // Synced: nothing is lost in a power loss.
  REQUIRE(t.synced_bytes() == std::filesystem::file_size(f.image));
}

TEST_CASE("the wrong tape is refused before anything is read or written") {
  Fixture f;
  std::string data = random_bytes(1000, 2);
  must(f.archive_data(1, data));
  auto size_before = std::filesystem::file_size(f.image);

  auto a = f.archive_data(2, data, kBlock, "V00002");
  REQUIRE(a.status().code() == Code::kMismatch);
  REQUIRE(a.status().message() ==
          "wrong tape in " + f.image + ": expected VSN V00002, found VSN V00001");
  REQUIRE(std::filesystem::file_size(f.image) == size_before);

  StageRequest req = f.stage_request(1, data);
  req.vsn = "V00002";
  auto s = f.stage_to(req);
  REQUIRE(s.status().code() == Code::kMismatch);
  REQUIRE(s.status().message() ==
          "wrong tape in " + f.image + ": expected VSN V00002, found VSN V00001");
  f.require_no_stage_leftovers();

  SECTION("a blank tape is a wrong tape too") {
    std::string blank = f.dir.file("blank.tap");
    must(EmulatedTape::create_image(blank));
    EmulatedTape t;
    REQUIRE(t.load(blank).ok());
    std::string src = f.cache + "/src1";
    auto b = archive(t, ArchiveRequest{"V00001", 1, vv_for(1, data.size())}, src);
    REQUIRE(b.status().code() == Code::kMismatch);
    REQUIRE_THAT(b.status().message(), Catch::Contains("expected VSN V00001, found no VOL label"));
    REQUIRE(std::filesystem::file_size(blank) == 0);
  }
}

TEST_CASE("an archive whose file number is not the next one is refused, naming both") {
  Fixture f;
  auto a = f.archive_data(2, "x");
  REQUIRE(a.status().code() == Code::kMismatch);
  REQUIRE(a.status().message() ==
          "VSN V00001: the last complete file on the tape is 0, but the request expects to write "
          "file 2 (after file 1)");
  must(f.archive_data(1, "x"));
  must(f.archive_data(2, "yy"));
  auto again = f.archive_data(2, "zzz");  // not the same copy again: another size
  REQUIRE(again.status().code() == Code::kMismatch);
  REQUIRE_THAT(again.status().message(),
               Catch::Contains("last complete file on the tape is 2, but the request expects to "
                               "write file 2"));
  f.require_stages(2, "yy");
}

TEST_CASE("the same copy again at the same file, its first report lost, is written over itself") {
  // vvmd killed while the copy ran: the tape has file 2, vvmd's database still says 2 is next.
  Fixture f;
  must(f.archive_data(1, "x"));
  std::string first = random_bytes(kBlock + 3, 5);
  must(f.archive_data(2, first));
  auto again = must(f.archive_data(2, first));
  CHECK(again.rewritten);
  CHECK(again.file_number == 2);
  f.require_stages(2, first);
  // Written over, not after: the next file is 3, and file 1 is untouched.
  must(f.archive_data(3, "zzz"));
  f.require_stages(1, "x");
  f.require_stages(3, "zzz");
  // Another VV at a file the tape already holds is still refused (serial 42 is not 43's).
  std::string src = f.cache + "/other";
  put_file(src, "x");
  auto other =
      archive(*f.tape, ArchiveRequest{"V00001", 3, vv_for(3 - 1, 1), 1700000100, kBlock}, src);
  REQUIRE(other.status().code() == Code::kMismatch);
  CHECK_THAT(other.status().message(), Catch::Contains("last complete file on the tape is 3"));
  // And a first write is no rewrite.
  CHECK_FALSE(must(f.archive_data(4, "w")).rewritten);
}

TEST_CASE("the cache file must have the VV's size") {
  Fixture f;
  std::string src = f.cache + "/src1";
  put_file(src, "abc");
  auto a = archive(*f.tape, ArchiveRequest{"V00001", 1, vv_for(1, 4)}, src);
  REQUIRE(a.status().code() == Code::kInvalidArgument);
  REQUIRE_THAT(a.status().message(), Catch::Contains("3 bytes, but the request says the VV has 4"));
}

TEST_CASE("stage catches a corrupted label, names VSN, file, field, expected and found") {
  Fixture f;
  std::string data = random_bytes(kBlock * 2 + 9, 3);
  must(f.archive_data(1, "first"));
  must(f.archive_data(2, data));
  std::string image = file_bytes(f.image);
  // File 2's labels, found by their bytes: "HDRA42" and "EOFA42".
  size_t hdr = image.find("HDRA42 ");
  size_t eof = image.find("EOFA42 ");
  REQUIRE(hdr != std::string::npos);
  REQUIRE(eof != std::string::npos);
  f.tape.reset();

  SECTION("a HDR field that decodes but differs") {
    flip(f.image, hdr + 5, '3');  // serial 42 -> 43
    f.reload();
    auto s = f.stage_to(f.stage_request(2, data));
    REQUIRE(s.status().code() == Code::kMismatch);
    REQUIRE(s.status().message() ==
            "VSN V00001 file 2: HDR label: field vv serial: expected 42, found 43");
  }
  SECTION("a HDR that does not decode") {
    flip(f.image, hdr + 1);  // 'D' -> 'd'
    f.reload();
    auto s = f.stage_to(f.stage_request(2, data));
    REQUIRE(s.status().code() == Code::kMismatch);
    REQUIRE_THAT(s.status().message(), Catch::StartsWith("VSN V00001 file 2: "));
    REQUIRE_THAT(s.status().message(), Catch::Contains("'HdR'"));
  }
  SECTION("an EOF label that disagrees with its HDR") {
    flip(f.image, eof + 33, '9');  // the file number's last digit: 2 -> 9
    f.reload();
    auto s = f.stage_to(f.stage_request(2, data));
    REQUIRE(s.status().code() == Code::kMismatch);
    REQUIRE(s.status().message() ==
            "VSN V00001 file 2: EOF label: field file number: expected 0000000002, found "
            "0000000009");
    auto files = must(list_files(*f.tape));
    REQUIRE(files[1].problems.size() == 1);
    REQUIRE_THAT(files[1].problems[0], Catch::Contains("field file number"));
  }
  SECTION("the request disagrees with the tape (size)") {
    f.reload();
    StageRequest req = f.stage_request(2, data);
    req.vv.size += 1;
    auto s = f.stage_to(req);
    REQUIRE(s.status().code() == Code::kMismatch);
    REQUIRE_THAT(s.status().message(),
                 Catch::StartsWith("VSN V00001 file 2: HDR label: field size: expected "));
  }
  SECTION("a file the tape does not have") {
    f.reload();
    StageRequest req = f.stage_request(5, data);
    auto s = f.stage_to(req);
    REQUIRE(s.status().code() == Code::kMismatch);
    REQUIRE(s.status().message() ==
            "VSN V00001 file 5: no such file (the last file on the tape is 2)");
  }
  f.require_no_stage_leftovers();
  if (f.tape) f.require_stages(1, "first");  // the other file is fine
}

TEST_CASE("stage catches a flipped data byte with the checksum") {
  Fixture f;
  std::string data = random_bytes(kBlock * 3, 4);
  must(f.archive_data(1, data));
  std::string image = file_bytes(f.image);
  size_t at = image.find(data.substr(kBlock + 100, 64));
  REQUIRE(at != std::string::npos);
  f.tape.reset();
  flip(f.image, at);
  f.reload();
  std::string final_path = f.out(1);
  CopySide side = CopySide::kNone;
  auto s = f.stage_to(f.stage_request(1, data), &side);
  REQUIRE(s.status().code() == Code::kMismatch);
  CHECK(side == CopySide::kSource);  // the copy on tape is to blame
  REQUIRE_THAT(s.status().message(),
               Catch::StartsWith("VSN V00001 file 1: field checksum: expected " +
                                 fmt::format("{:016X}", checksum_of(data)) + ", found "));
  REQUIRE(::access(final_path.c_str(), F_OK) != 0);
  f.require_no_stage_leftovers();
}

TEST_CASE("verify reads a file back whole, writes nothing, and catches a flipped byte") {
  Fixture f;
  std::string data = random_bytes(kBlock * 3 + 17, 5);
  must(f.archive_data(1, "first"));
  must(f.archive_data(2, data));
  auto good = verify(*f.tape, f.stage_request(2, data));
  REQUIRE(good.ok());
  CHECK(good->bytes == data.size());
  CHECK(good->checksum == checksum_of(data));
  f.require_no_stage_leftovers();

  std::string image = file_bytes(f.image);
  size_t at = image.find(data.substr(2 * kBlock + 5, 64));
  REQUIRE(at != std::string::npos);
  f.tape.reset();
  flip(f.image, at);
  f.reload();
  auto bad = verify(*f.tape, f.stage_request(2, data));
  REQUIRE(bad.status().code() == Code::kMismatch);
  REQUIRE_THAT(bad.status().message(),
               Catch::StartsWith("VSN V00001 file 2: field checksum: expected " +
                                 fmt::format("{:016X}", checksum_of(data)) + ", found "));
  // The other file, and the wrong file number, as a stage would find them.
  REQUIRE(verify(*f.tape, f.stage_request(1, "first")).ok());
  CHECK(verify(*f.tape, f.stage_request(1, data)).status().code() == Code::kMismatch);
}

TEST_CASE("an interrupted archive is overwritten by the next one") {
  Fixture f;
  std::string one = random_bytes(kBlock + 1, 5), two = random_bytes(kBlock * 2 + 7, 6);
  must(f.archive_data(1, one));
  // An archive of file 2 that stopped after the HDR and some data blocks.
  FileLabel hdr{LabelKind::kHdr, 'A', 42, 7, 2, 10 * kBlock, 1700000000, 1700000100};
  std::string hdr_bytes = must(hdr.encode());
  std::string block = random_bytes(kBlock, 7);

  SECTION("closed by st with a tape mark") {
    REQUIRE(f.tape->position_to_file(2).ok());
    REQUIRE(f.tape->write_block(hdr_bytes).ok());
    for (int i = 0; i < 3; ++i) REQUIRE(f.tape->write_block(block).ok());
    f.tape.reset();  // the process ends: st writes a tape mark on close
    f.reload();
    auto files = must(list_files(*f.tape));
    REQUIRE(files.size() == 2);
    REQUIRE(files[1].partial);
    REQUIRE(files[1].problems.empty());  // the last file: an interrupted archive, not damage
  }
  SECTION("killed, no tape mark") {
    f.tape.reset();
    // The blocks as a killed writer leaves them in the image: SIMH records, no tape mark.
    auto record = [](std::string_view d) {
      std::string len(4, '\0');
      for (int i = 0; i < 4; ++i) len[i] = static_cast<char>((d.size() >> (8 * i)) & 0xFF);
      return len + std::string(d) + (d.size() % 2 ? std::string(1, '\0') : "") + len;
    };
    std::ofstream out(f.image, std::ios::binary | std::ios::app);
    out << record(hdr_bytes) << record(block) << record(block);
    out.close();
    f.reload();
    auto files = must(list_files(*f.tape));
    REQUIRE(files.size() == 2);
    REQUIRE(files[1].partial);
    REQUIRE(files[1].hdr);
    REQUIRE(files[1].problems == std::vector<std::string>{"no tape mark at the end"});
  }
  SECTION("right after the VOL label") {
    f.tape.reset();
    std::filesystem::remove(f.image);
    f.tape = nullptr;
    must(EmulatedTape::create_image(f.image));
    f.tape = std::make_unique<EmulatedTape>();
    REQUIRE(f.tape->load(f.image).ok());
    must(write_volume_label(*f.tape, VolLabel{"V00001", "LTO9"}));
    REQUIRE(f.tape->write_block(hdr_bytes).ok());
    REQUIRE(f.tape->write_block(block).ok());
    f.tape.reset();
    f.reload();
    must(f.archive_data(1, one));
  }
  auto done = f.archive_data(2, two);
  INFO(done.status().message());
  REQUIRE(done.ok());
  f.reload();
  f.require_stages(1, one);
  f.require_stages(2, two);
  auto files = must(list_files(*f.tape));
  REQUIRE(files.size() == 2);
  for (const auto& file : files) {
    REQUIRE(!file.partial);
    REQUIRE(file.problems.empty());
  }
}

TEST_CASE("end of medium: NoSpace, the partial file cut off, earlier files readable") {
  EmulatedTapeOptions options;
  options.capacity = 2 * 1024 * 1024;
  Fixture f(options);
  std::string one = random_bytes(600 * 1024, 8), big = random_bytes(3 * 1024 * 1024, 9);
  must(f.archive_data(1, one));
  auto full = f.archive_data(2, big);
  REQUIRE(full.status().code() == Code::kNoSpace);
  REQUIRE_THAT(full.status().message(),
               Catch::StartsWith("VSN V00001 is full: file 2 (VV A42, 3145728 bytes) did not fit"));
  // The tape ends after file 1: an empty file 2 (two tape marks in a row), synced.
  REQUIRE(f.tape->synced_bytes() == std::filesystem::file_size(f.image));
  f.reload();
  auto files = must(list_files(*f.tape));
  REQUIRE(files.size() == 2);
  REQUIRE(files[0].problems.empty());
  REQUIRE(files[1].empty);
  REQUIRE(files[1].problems.empty());
  f.require_stages(1, one);
  // A smaller VV still fits as file 2, over the empty file.
  std::string small = random_bytes(100 * 1024, 10);
  must(f.archive_data(2, small));
  f.require_stages(2, small);
  f.require_stages(1, one);
}

TEST_CASE("stage spaces over earlier files instead of reading them") {
  Fixture f;
  std::string big = random_bytes(4 * 1024 * 1024, 11), small = random_bytes(1000, 12);
  must(f.archive_data(1, big));
  must(f.archive_data(2, small));
  f.tape.reset();
  EmulatedTapeOptions options;
  options.time = TimeModel{0, 0, 0, 0, 0, 1.0};  // only reading costs: a second a byte
  f.tape = std::make_unique<EmulatedTape>(options);
  REQUIRE(f.tape->load(f.image).ok());
  f.require_stages(2, small);
  // The VOL, HDR and EOF labels and file 2's data: nothing of file 1.
  REQUIRE(f.tape->modeled_seconds() == 80 + 80 + 1000 + 80);
}

TEST_CASE("a failing cache folder leaves nothing behind") {
  Fixture f;
  std::string data = random_bytes(5000, 13);
  must(f.archive_data(1, data));
  CopySide side = CopySide::kNone;
  auto s = stage(*f.tape, f.stage_request(1, data), f.dir.file("no-such-dir"), f.out(1), {}, &side);
  REQUIRE(s.status().code() == Code::kNotFound);
  CHECK(side == CopySide::kDestination);  // the cache, not the copy
  f.require_no_stage_leftovers();
}

TEST_CASE("a cache file that cannot be written stops the stage and is removed") {
  Fixture f;
  std::string data = random_bytes(2 * 1024 * 1024, 14);
  must(f.archive_data(1, data));
  // Files of this process may not grow past 300 KB: the writer thread's write fails with EFBIG
  // after the reader has queued blocks, so both sides must stop cleanly.
  struct rlimit old;
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = {300 * 1000, old.rlim_max};
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  CopySide side = CopySide::kNone;
  auto s = f.stage_to(f.stage_request(1, data), &side);
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  REQUIRE(s.status().code() == Code::kIoError);
  CHECK(side == CopySide::kDestination);
  REQUIRE_THAT(s.status().message(),
               Catch::StartsWith("VSN V00001 file 1: " + f.cache + "/.stage.A41."));
  REQUIRE_THAT(s.status().message(), Catch::Contains("File too large"));
  f.require_no_stage_leftovers();
  f.require_stages(1, data);
}

// --- tape copy ---

namespace {

// A second tape, V00002, the destination of tape copies from the fixture's V00001.
struct Destination {
  std::string image;
  std::unique_ptr<EmulatedTape> tape;

  Destination(Fixture& f, EmulatedTapeOptions options = {}) : image(f.dir.file("V00002.tap")) {
    must(EmulatedTape::create_image(image));
    tape = std::make_unique<EmulatedTape>(options);
    REQUIRE(tape->load(image).ok());
    must(write_volume_label(*tape, VolLabel{"V00002", "LTO9"}));
  }

  // Tape file `from` of V00001 (VV vv_for(from)) holding `data`, copied to file `to`.
  Result<ArchiveDone> copy(Fixture& f, uint64_t from, uint64_t to, std::string_view data,
                           CopySide* side = nullptr, size_t block = kBlock) {
    TapeCopyRequest req{"V00001",          from,       "V00002", to, vv_for(from, data.size()),
                        checksum_of(data), 1700000200, block};
    return tape_copy(*f.tape, *tape, req, {}, side);
  }

  // File `to` of V00002 stages back as `data`, the VV of V00001's file `from`.
  void require_stages(Fixture& f, uint64_t from, uint64_t to, std::string_view data) {
    StageRequest req{"V00002", to, vv_for(from, data.size()), checksum_of(data)};
    std::string out = f.cache + "/copy" + std::to_string(to);
    auto done = stage(*tape, req, f.cache, out);
    INFO("V00002 file " << to << ": " << done.status().message());
    REQUIRE(done.ok());
    REQUIRE(file_bytes(out) == data);
    ::unlink(out.c_str());
  }

  std::vector<FileSummary> files() {
    REQUIRE(tape->rewind().ok());
    return must(list_files(*tape));
  }
};

}  // namespace

TEST_CASE("tape copy: every size round trips, with labels of the new file") {
  Fixture f;
  Destination d(f);
  const std::vector<size_t> sizes = {0, 1, kBlock - 1, kBlock, kBlock + 1, 3 * 1024 * 1024 + 17};
  std::vector<std::string> datas;
  for (size_t i = 0; i < sizes.size(); ++i) {
    datas.push_back(random_bytes(sizes[i], 20 + i));
    must(f.archive_data(i + 1, datas[i]));
  }
  // Backwards, so that no file lands at its own number: file i+1 of V00001 becomes file
  // sizes.size()-i of V00002.
  for (size_t k = 0; k < sizes.size(); ++k) {
    const size_t i = sizes.size() - 1 - k;
    std::vector<uint64_t> seen;
    TapeCopyRequest req{
        "V00001",  i + 1, "V00002", k + 1, vv_for(i + 1, sizes[i]), checksum_of(datas[i]),
        1700000200};
    CopySide side = CopySide::kSource;
    auto done = tape_copy(
        *f.tape, *d.tape, req, [&](uint64_t b) { seen.push_back(b); }, &side);
    INFO("size " << sizes[i] << ": " << done.status().message());
    REQUIRE(done.ok());
    REQUIRE(side == CopySide::kNone);
    REQUIRE(done->vsn == "V00002");
    REQUIRE(done->file_number == k + 1);
    REQUIRE(done->bytes == sizes[i]);
    REQUIRE(done->checksum == checksum_of(datas[i]));
    REQUIRE(done->blocks == (sizes[i] + kBlock - 1) / kBlock);
    REQUIRE(!done->rewritten);
    if (!seen.empty()) REQUIRE(seen.back() == sizes[i]);
  }
  // The destination's labels: the VV's fields, its own file number and time written.
  auto files = d.files();
  REQUIRE(files.size() == sizes.size());
  for (size_t k = 0; k < files.size(); ++k) {
    const size_t i = sizes.size() - 1 - k;
    INFO("V00002 file " << k + 1);
    REQUIRE(files[k].problems.empty());
    REQUIRE(files[k].hdr);
    REQUIRE(files[k].eof);
    REQUIRE(*files[k].hdr ==
            FileLabel{LabelKind::kHdr, 'A', 41 + i, 7, k + 1, sizes[i], 1700000000, 1700000200});
    REQUIRE(files[k].eof->kind == LabelKind::kEof);
    REQUIRE(files[k].eof->file_number == k + 1);
  }
  // Synced: nothing is lost in a power loss.
  REQUIRE(d.tape->synced_bytes() == std::filesystem::file_size(d.image));
  for (size_t k = 0; k < sizes.size(); ++k) {
    const size_t i = sizes.size() - 1 - k;
    d.require_stages(f, i + 1, k + 1, datas[i]);
  }
  // The source is untouched.
  for (size_t i = 0; i < sizes.size(); ++i) f.require_stages(i + 1, datas[i]);
}

TEST_CASE("tape copy: the destination's blocks are its own block size") {
  Fixture f;
  Destination d(f);
  std::string data = random_bytes(2 * 1024 * 1024 + 3, 30);
  must(f.archive_data(1, data, 4096));
  auto done = must(d.copy(f, 1, 1, data, nullptr, 1024 * 1024));
  REQUIRE(done.blocks == 3);
  d.require_stages(f, 1, 1, data);
  must(f.archive_data(2, data, 1024 * 1024));
  done = must(d.copy(f, 2, 2, data, nullptr, 4096));
  REQUIRE(done.blocks == (data.size() + 4095) / 4096);
  d.require_stages(f, 2, 2, data);
}

TEST_CASE("tape copy: a flipped byte in the source leaves no file on the destination") {
  Fixture f;
  Destination d(f);
  std::string data = random_bytes(3 * kBlock + 10, 31);
  must(f.archive_data(1, data));
  // A data byte of file 1: past the VOL label, its mark, the HDR and some data.
  f.tape.reset();
  flip(f.image, 2 * kBlock);
  f.reload();
  CopySide side = CopySide::kNone;
  auto bad = d.copy(f, 1, 1, data, &side);
  REQUIRE(bad.status().code() == Code::kMismatch);
  REQUIRE(side == CopySide::kSource);
  REQUIRE_THAT(bad.status().message(), Catch::StartsWith("VSN V00001 file 1: field checksum"));
  REQUIRE_THAT(bad.status().message(),
               Catch::Contains("(its partial copy on VSN V00002 file 1 cut off)"));
  // Nothing of it on V00002: file 1 is empty, and the next copy goes there.
  auto files = d.files();
  REQUIRE(files.size() <= 1);
  if (!files.empty()) REQUIRE(files[0].empty);
  std::string good = random_bytes(5000, 32);
  must(f.archive_data(2, good));
  must(d.copy(f, 2, 1, good));
  d.require_stages(f, 2, 1, good);
}

TEST_CASE("tape copy: a medium error reading the source fails it, the source to blame") {
  Fixture f;
  Destination d(f);
  std::string data = random_bytes(4 * kBlock, 33);
  must(f.archive_data(1, data));
  // Blocks: VOL 0, mark 1, then file 1: HDR 2, data 3, 4, 5, 6.
  f.tape->faults().medium_error_block = 5;
  CopySide side = CopySide::kNone;
  auto bad = d.copy(f, 1, 1, data, &side);
  REQUIRE(bad.status().code() == Code::kIoError);
  REQUIRE(side == CopySide::kSource);
  REQUIRE_THAT(bad.status().message(), Catch::StartsWith("VSN V00001 file 1: after 524288 data"));
  auto files = d.files();
  REQUIRE(files.size() <= 1);
  if (!files.empty()) REQUIRE(files[0].empty);
  f.tape->faults().medium_error_block = -1;
  must(d.copy(f, 1, 1, data));
  d.require_stages(f, 1, 1, data);
}

TEST_CASE("tape copy: the wrong tapes and file numbers are refused, naming the tape") {
  Fixture f;
  Destination d(f);
  std::string data = random_bytes(1000, 34);
  must(f.archive_data(1, data));
  CopySide side = CopySide::kNone;
  TapeCopyRequest req{"V00009", 1, "V00002", 1, vv_for(1, data.size()), checksum_of(data)};
  auto r = tape_copy(*f.tape, *d.tape, req, {}, &side);
  REQUIRE(r.status().code() == Code::kMismatch);
  REQUIRE(side == CopySide::kSource);
  req = {"V00001", 1, "V00008", 1, vv_for(1, data.size()), checksum_of(data)};
  r = tape_copy(*f.tape, *d.tape, req, {}, &side);
  REQUIRE(r.status().code() == Code::kMismatch);
  REQUIRE(side == CopySide::kDestination);
  // File 2 on an empty V00002: not the next file.
  r = d.copy(f, 1, 2, data, &side);
  REQUIRE(r.status().code() == Code::kMismatch);
  REQUIRE(side == CopySide::kDestination);
  REQUIRE_THAT(r.status().message(), Catch::Contains("the last complete file on the tape is 0"));
  // A file the source does not have, and a HDR that is another VV's.
  r = d.copy(f, 2, 1, data, &side);
  REQUIRE(r.status().code() == Code::kMismatch);
  REQUIRE(side == CopySide::kSource);
  req = {"V00001", 1, "V00002", 1, vv_for(5, data.size()), checksum_of(data)};
  r = tape_copy(*f.tape, *d.tape, req, {}, &side);
  REQUIRE(r.status().code() == Code::kMismatch);
  REQUIRE(side == CopySide::kSource);
  REQUIRE_THAT(r.status().message(), Catch::StartsWith("VSN V00001 file 1: HDR label"));
  // A tape onto itself.
  req = {"V00001", 1, "V00001", 2, vv_for(1, data.size()), checksum_of(data)};
  REQUIRE(tape_copy(*f.tape, *f.tape, req).status().code() == Code::kInvalidArgument);
  REQUIRE(d.files().empty());
  must(d.copy(f, 1, 1, data));
}

TEST_CASE("tape copy: the same copy again over itself, its first report lost") {
  Fixture f;
  Destination d(f);
  std::string data = random_bytes(kBlock + 1, 35);
  must(f.archive_data(1, data));
  REQUIRE(!must(d.copy(f, 1, 1, data)).rewritten);
  REQUIRE(must(d.copy(f, 1, 1, data)).rewritten);
  REQUIRE(d.files().size() == 1);
  d.require_stages(f, 1, 1, data);
}

TEST_CASE("tape copy: a full destination is NoSpace, the destination to blame") {
  Fixture f;
  EmulatedTapeOptions small;
  small.capacity = 2 * 1024 * 1024;
  Destination d(f, small);
  std::string one = random_bytes(600 * 1024, 36), big = random_bytes(3 * 1024 * 1024, 37);
  must(f.archive_data(1, one));
  must(f.archive_data(2, big));
  must(d.copy(f, 1, 1, one));
  CopySide side = CopySide::kNone;
  auto full = d.copy(f, 2, 2, big, &side);
  REQUIRE(full.status().code() == Code::kNoSpace);
  REQUIRE(side == CopySide::kDestination);
  REQUIRE_THAT(full.status().message(), Catch::StartsWith("VSN V00002 is full: file 2"));
  auto files = d.files();
  REQUIRE(files.size() == 2);
  REQUIRE(files[1].empty);
  d.require_stages(f, 1, 1, one);
}
