// emulated_tape_test.cc: the emulated tape behaves as a drive under st: block boundaries and the
// SIMH bytes on disk, ENOMEM on a short buffer, tape marks and end of data on read, cut-off on
// write, write protection, the early-warning sequence, durability across a power loss and a
// reopen, a torn tail recovered by scanning, positioning by tape marks, status, the tape mark st
// adds after writes, injected faults and the time model.
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <fstream>

#include "process.h"
#include "tape/emulated_tape.h"
#include "tape/label.h"

using namespace vvm;
using namespace vvm::tape;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

struct Tape {
  TempDir dir = must(TempDir::create("vvm-tape"));
  std::string image = dir.file("V00001.tap");
  Tape() { vvm::test::must(EmulatedTape::create_image(image)); }
};

void ok(const TapeResult& r) {
  INFO(r.status.message());
  REQUIRE(r.ok());
}

void write(EmulatedTape& t, std::string_view data) {
  ok(t.write_block(std::span<const char>(data.data(), data.size())));
}

ReadResult read(EmulatedTape& t, std::string* out, size_t buffer = 1 << 20) {
  std::string buf(buffer, '\0');
  ReadResult r = t.read_block(buf);
  if (r.ok() && out) out->assign(buf.data(), r.size);
  return r;
}

std::string read_data(EmulatedTape& t) {
  std::string data;
  ReadResult r = read(t, &data);
  INFO(r.status.message());
  REQUIRE(r.ok());
  REQUIRE(r.kind == BlockKind::kData);
  return data;
}

BlockKind read_kind(EmulatedTape& t) {
  ReadResult r = read(t, nullptr);
  INFO(r.status.message());
  REQUIRE(r.ok());
  return r.kind;
}

TapeState state(EmulatedTape& t) {
  StateResult r = t.status();
  REQUIRE(r.ok());
  return r.state;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void append_bytes(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

// A SIMH record written by hand.
std::string record(std::string_view data) {
  std::string s = le32(static_cast<uint32_t>(data.size())) + std::string(data);
  if (data.size() % 2) s += '\0';
  return s + le32(static_cast<uint32_t>(data.size()));
}

// Files of one block each, "file 0", "file 1", ..., each closed by a synchronous tape mark.
void write_files(EmulatedTape& t, int n) {
  for (int i = 0; i < n; ++i) {
    write(t, "file " + std::to_string(i));
    ok(t.write_tape_marks(1));
  }
}

}  // namespace

TEST_CASE("blocks keep their boundaries, in SIMH's format on disk") {
  Tape f;
  EmulatedTape t;
  ok(t.load(f.image));
  write(t, "abc");
  write(t, "defg");
  ok(t.write_tape_marks(1));
  const std::string expected = std::string("\x03\0\0\0abc\0\x03\0\0\0", 12) +
                               std::string("\x04\0\0\0defg\x04\0\0\0", 12) +
                               std::string("\0\0\0\0", 4);
  CHECK(file_bytes(f.image) == expected);
  CHECK(record("abc") + record("defg") + le32(0) == expected);

  ok(t.rewind());
  CHECK(read_data(t) == "abc");
  CHECK(read_data(t) == "defg");
  // A tape mark, then end of data: two zero-length reads; the third read fails.
  CHECK(read_kind(t) == BlockKind::kTapeMark);
  CHECK(read_kind(t) == BlockKind::kEndOfData);
  ReadResult past = read(t, nullptr);
  CHECK(past.err == EIO);
  CHECK(past.status.code() == Code::kIoError);
  CHECK_THAT(past.status.message(), Catch::Contains("read past end of data"));
  // Repositioning clears it.
  ok(t.rewind());
  CHECK(read_data(t) == "abc");
}

TEST_CASE("a buffer shorter than the block fails with ENOMEM, and the block is passed") {
  Tape f;
  EmulatedTape t;
  ok(t.load(f.image));
  write(t, std::string(100, 'a'));
  write(t, std::string(7, 'b'));
  ok(t.rewind());
  std::string data;
  ReadResult r = read(t, &data, 99);
  CHECK_FALSE(r.ok());
  CHECK(r.err == ENOMEM);
  CHECK_THAT(r.status.message(), Catch::Contains("read block 0"));
  CHECK_THAT(r.status.message(), Catch::Contains("the block has 100 bytes, the buffer 99"));
  CHECK(read_data(t) == std::string(7, 'b'));
  // Back over both blocks, and the first reads with a buffer of exactly its size.
  ok(t.space_back_blocks(2));
  r = read(t, &data, 100);
  REQUIRE(r.ok());
  CHECK(data == std::string(100, 'a'));
}

TEST_CASE("writing anywhere but at end of data cuts off what followed") {
  Tape f;
  {
    EmulatedTape t;
    ok(t.load(f.image));
    write_files(t, 3);
    ok(t.position_to_file(1));
    write(t, "new");
    CHECK(state(t).eod);
    CHECK(file_bytes(f.image) == record("file 0") + le32(0) + record("new"));
    ok(t.write_tape_marks(1));
    CHECK(state(t).eod);
  }
  CHECK(file_bytes(f.image) == record("file 0") + le32(0) + record("new") + le32(0));
  EmulatedTape t;
  ok(t.load(f.image));
  ok(t.position_to_file(1));
  CHECK(read_data(t) == "new");
  CHECK(read_kind(t) == BlockKind::kTapeMark);
  CHECK(read_kind(t) == BlockKind::kEndOfData);
  TapeResult r = t.position_to_file(3);
  CHECK(r.err == EIO);
  CHECK_THAT(r.status.message(), Catch::Contains("the tape has 2 complete files"));
  CHECK(state(t).eod);

  // A tape mark written over data cuts too.
  ok(t.rewind());
  ok(t.write_tape_marks(1));
  CHECK(file_bytes(f.image) == le32(0));
}

TEST_CASE("a write-protected tape refuses writes with EACCES and still reads") {
  Tape f;
  {
    EmulatedTape t;
    ok(t.load(f.image));
    write_files(t, 1);
  }
  const std::string before = file_bytes(f.image);
  EmulatedTape t;
  ok(t.load(f.image, /*write_protect=*/true));
  CHECK(state(t).write_protected);
  TapeResult w = t.write_block(std::string("x"));
  CHECK(w.err == EACCES);
  CHECK(w.status.code() == Code::kPermissionDenied);
  CHECK_THAT(w.status.message(), Catch::Contains("V00001.tap: write block 0"));
  CHECK_THAT(w.status.message(), Catch::Contains("write-protected"));
  CHECK(t.write_tape_marks(1).err == EACCES);
  CHECK(read_data(t) == "file 0");
  CHECK(read_kind(t) == BlockKind::kTapeMark);
  CHECK(file_bytes(f.image) == before);
}

TEST_CASE("capacity: the early-warning sequence, then the physical end of the medium") {
  Tape f;
  EmulatedTapeOptions o;
  o.capacity = 1000;
  o.early_warning = 450;
  EmulatedTape t(o);
  ok(t.load(f.image));
  const std::string block(92, 'd');  // a 100-byte record
  for (int i = 0; i < 4; ++i) write(t, block);
  CHECK_FALSE(state(t).early_warning);
  write(t, block);  // starts at 400, crosses the early warning at 450: completes
  CHECK(state(t).early_warning);
  TapeResult r = t.write_block(block);
  CHECK(r.err == ENOSPC);
  CHECK_THAT(r.status.message(), Catch::Contains("early warning"));
  write(t, "EOF label");  // the trailer is allowed: 18 bytes
  ok(t.write_tape_marks(1));
  // From then on writes fail and succeed alternately.
  CHECK(t.write_block(block).err == ENOSPC);  // at 522
  write(t, block);
  CHECK(t.write_block(block).err == ENOSPC);  // at 622
  write(t, block);
  CHECK(t.write_block(block).err == ENOSPC);  // at 722
  write(t, block);
  CHECK(t.write_block(block).err == ENOSPC);  // at 822: a 100-byte record still fits
  write(t, block);
  // At 922 none fits, whatever the alternation says.
  r = t.write_block(block);
  CHECK(r.err == ENOSPC);
  CHECK_THAT(r.status.message(), Catch::Contains("physical end of medium"));
  r = t.write_block(block);
  CHECK_THAT(r.status.message(), Catch::Contains("physical end of medium"));
  ok(t.write_tape_marks(1));  // a tape mark still fits
  CHECK(file_bytes(f.image).size() == 926);
  CHECK(t.write_tape_marks(20).err == ENOSPC);

  // Everything written reads back; refused writes left nothing.
  ok(t.rewind());
  CHECK_FALSE(state(t).early_warning);
  for (int i = 0; i < 5; ++i) CHECK(read_data(t) == block);
  CHECK(read_data(t) == "EOF label");
  CHECK(read_kind(t) == BlockKind::kTapeMark);
  for (int i = 0; i < 4; ++i) CHECK(read_data(t) == block);
  CHECK(read_kind(t) == BlockKind::kTapeMark);
  CHECK(read_kind(t) == BlockKind::kEndOfData);
}

TEST_CASE("the default early warning is 2% before the capacity") {
  Tape f;
  EmulatedTapeOptions o;
  o.capacity = 10000;
  EmulatedTape t(o);
  ok(t.load(f.image));
  write(t, std::string(9792, 'x'));  // a 9800-byte record ends exactly at the early warning
  CHECK(state(t).early_warning);
  CHECK(t.write_block(std::string("y")).err == ENOSPC);
}

TEST_CASE("power loss drops the blocks no synchronous tape mark covered") {
  Tape f;
  EmulatedTape t;
  ok(t.load(f.image));
  write(t, "A");
  ok(t.write_tape_marks(1));
  const uint64_t synced = t.synced_bytes();
  CHECK(synced == file_bytes(f.image).size());
  write(t, "B");
  ok(t.write_tape_marks(1, /*sync=*/false));  // MTWEOFI: no sync
  write(t, "C");
  CHECK(t.synced_bytes() == synced);
  t.simulate_power_loss();
  CHECK_FALSE(state(t).loaded);
  CHECK(t.write_block(std::string("x")).err == ENOMEDIUM);
  CHECK(file_bytes(f.image).size() == synced);

  ok(t.load(f.image));
  CHECK(read_data(t) == "A");
  CHECK(read_kind(t) == BlockKind::kTapeMark);
  CHECK(read_kind(t) == BlockKind::kEndOfData);

  // A count of 0 only syncs, and that is enough.
  ok(t.position_to_end_of_data());
  write(t, "D");
  ok(t.write_tape_marks(0, true));
  t.simulate_power_loss();
  ok(t.load(f.image));
  ok(t.position_to_file(1));
  CHECK(read_data(t) == "D");
  CHECK(read_kind(t) == BlockKind::kEndOfData);
}

TEST_CASE("reopened, an image has what was written, and its index") {
  Tape f;
  {
    EmulatedTape t;
    ok(t.load(f.image));
    write(t, must(VolLabel{"V00001", "LTO9"}.encode()));
    ok(t.write_tape_marks(1));
    for (int i = 1; i <= 4; ++i) {
      write(t, "hdr " + std::to_string(i));
      write(t, std::string(1000 + i, static_cast<char>('a' + i)));
      write(t, "eof " + std::to_string(i));
      ok(t.write_tape_marks(1));
    }
  }
  EmulatedTape t;
  ok(t.load(f.image));
  CHECK(must(VolLabel::decode(read_data(t))).vsn == "V00001");
  ok(t.position_to_file(3));
  TapeState s = state(t);
  CHECK(s.file_number == 3);
  CHECK(s.block_in_file == 0);
  CHECK(s.logical_block == 10);  // VOL, mark, then 4 blocks a file
  CHECK(s.at_tape_mark);
  CHECK(read_data(t) == "hdr 3");
  CHECK(read_data(t) == std::string(1003, 'd'));
  s = state(t);
  CHECK(s.block_in_file == 2);
  CHECK_FALSE(s.at_tape_mark);
  CHECK(read_data(t) == "eof 3");
  ok(t.position_to_end_of_data());
  s = state(t);
  CHECK(s.eod);
  CHECK(s.file_number == 5);
  CHECK(s.logical_block == 18);
}

TEST_CASE("a process that dies keeps what the drive took; a torn tail ends the data") {
  Tape f;
  {
    EmulatedTape t;
    ok(t.load(f.image));
    write_files(t, 1);
    write(t, "unsynced but received");
  }  // closed like st: a tape mark follows the data
  const std::string whole = record("file 0") + le32(0) + record("unsynced but received") + le32(0);
  CHECK(file_bytes(f.image) == whole);

  SECTION("a header with half its data") {
    append_bytes(f.image, le32(1000) + std::string(10, 'x'));
  }
  SECTION("a record whose two lengths disagree") {
    append_bytes(f.image, le32(4) + "abcd" + le32(5));
  }
  SECTION("half a header") { append_bytes(f.image, std::string("\x10\x00", 2)); }
  SECTION("an end-of-medium marker, then leftovers") {
    append_bytes(f.image, le32(0xFFFFFFFF) + record("stale"));
  }
  EmulatedTape t;
  ok(t.load(f.image));
  CHECK(read_data(t) == "file 0");
  CHECK(read_kind(t) == BlockKind::kTapeMark);
  CHECK(read_data(t) == "unsynced but received");
  CHECK(read_kind(t) == BlockKind::kTapeMark);
  CHECK(read_kind(t) == BlockKind::kEndOfData);
  // The next write replaces the torn tail.
  write(t, "next");
  ok(t.write_tape_marks(1));
  CHECK(file_bytes(f.image) == whole + record("next") + le32(0));
}

TEST_CASE("SIMH gaps are skipped and a record flagged bad reads as a medium error") {
  Tape f;
  append_bytes(f.image, le32(0xFFFFFFFE) + record("hi") + le32(0x80000002) + "xy" +
                            le32(0x80000002) + record("after"));
  EmulatedTape t;
  ok(t.load(f.image));
  CHECK(read_data(t) == "hi");
  ReadResult bad = read(t, nullptr);
  CHECK(bad.err == EIO);
  CHECK_THAT(bad.status.message(), Catch::Contains("read block 1"));
  CHECK_THAT(bad.status.message(), Catch::Contains("medium error"));
  CHECK(read_data(t) == "after");
  ok(t.space_back_blocks(3));
  CHECK(state(t).bot);
  CHECK(read_data(t) == "hi");
}

TEST_CASE("spacing over tape marks and blocks, as MTFSF, MTBSF, MTFSR and MTBSR do") {
  Tape f;
  EmulatedTape t;
  ok(t.load(f.image));
  write_files(t, 4);
  ok(t.rewind());
  CHECK(state(t).bot);

  ok(t.space_forward(2));
  CHECK(state(t).file_number == 2);
  CHECK(read_data(t) == "file 2");
  // Back over one mark, the one closing file 1: just before it, at the end of file 1.
  ok(t.space_back(1));
  CHECK(state(t).file_number == 1);
  CHECK_FALSE(state(t).at_tape_mark);
  CHECK(read_kind(t) == BlockKind::kTapeMark);
  CHECK(read_data(t) == "file 2");

  TapeResult r = t.space_back(5);
  CHECK(r.err == EIO);
  CHECK_THAT(r.status.message(), Catch::Contains("beginning of tape first"));
  CHECK(state(t).bot);
  r = t.space_forward(5);
  CHECK(r.err == EIO);
  CHECK_THAT(r.status.message(), Catch::Contains("end of data first"));
  CHECK(state(t).eod);
  CHECK(state(t).file_number == 4);

  // Spacing blocks stops at a tape mark: past it going forward, before it going back.
  ok(t.position_to_file(1));
  r = t.space_forward_blocks(2);
  CHECK(r.err == EIO);
  CHECK_THAT(r.status.message(), Catch::Contains("a tape mark first"));
  CHECK(state(t).file_number == 2);
  CHECK(state(t).at_tape_mark);
  r = t.space_back_blocks(1);
  CHECK(r.err == EIO);
  CHECK(state(t).file_number == 1);
  ok(t.space_back_blocks(1));
  CHECK(read_data(t) == "file 1");
  // At end of data, nothing to space over.
  ok(t.position_to_end_of_data());
  CHECK(t.space_forward_blocks(1).err == EIO);
  ok(t.space_forward(0));
  ok(t.space_forward_blocks(0));
}

TEST_CASE("positioning to file N spaces over tape marks without reading the data") {
  Tape f;
  EmulatedTapeOptions o;
  o.capacity = 100'000'000;
  o.time.bytes_per_second = 1e6;  // slow enough that reading the files would show
  EmulatedTape t(o);
  ok(t.load(f.image));
  const std::string big(1'000'000, 'x');
  for (int i = 0; i < 10; ++i) {
    write(t, big);
    ok(t.write_tape_marks(1));
  }
  ok(t.rewind());
  double before = t.modeled_seconds();
  ok(t.position_to_file(9));
  double spent = t.modeled_seconds() - before;
  // A locate over ~9% of the tape: 65 s × (0.2 + 1.6 × 0.09) ≈ 22 s; reading 9 MB would be 9 s
  // more at 1 MB/s.
  CHECK(spent == Approx(65 * (0.2 + 1.6 * 9'000'108.0 / 100'000'000)));
  CHECK(read_data(t) == big);
}

TEST_CASE("after data writes, st writes a tape mark before moving; not after MTWEOFI") {
  Tape f;
  EmulatedTape t;
  ok(t.load(f.image));
  SECTION("rewind") {
    write(t, "data");
    ok(t.rewind());
  }
  SECTION("space back") {
    write(t, "data");
    ok(t.space_back(1));
  }
  SECTION("position to file") {
    write(t, "data");
    ok(t.position_to_file(0));
  }
  SECTION("unload") {
    write(t, "data");
    ok(t.unload());
    ok(t.load(f.image));
  }
  CHECK(file_bytes(f.image) == record("data") + le32(0));
}

TEST_CASE("no tape mark is added after MTWEOFI, nor on spacing back over blocks") {
  Tape f;
  EmulatedTape t;
  ok(t.load(f.image));
  write(t, "more");
  ok(t.write_tape_marks(1, /*sync=*/false));
  ok(t.rewind());
  CHECK(file_bytes(f.image) == record("more") + le32(0));

  ok(t.position_to_end_of_data());
  write(t, "last");
  ok(t.space_back_blocks(1));  // a writer stepping back over its own block
  CHECK(read_data(t) == "last");
  CHECK(read_kind(t) == BlockKind::kEndOfData);
  ok(t.rewind());
  CHECK(file_bytes(f.image) == record("more") + le32(0) + record("last"));
}

TEST_CASE("injected faults: a medium error on block k, a failed mount, a wrong tape") {
  Tape f;
  SECTION("reading block k") {
    EmulatedTape t;
    ok(t.load(f.image));
    write_files(t, 2);
    t.faults().medium_error_block = 2;  // file 0's block, its mark, then file 1's block
    ok(t.rewind());
    CHECK(read_data(t) == "file 0");
    CHECK(read_kind(t) == BlockKind::kTapeMark);
    ReadResult r = read(t, nullptr);
    CHECK(r.err == EIO);
    CHECK(r.status.code() == Code::kIoError);
    CHECK_THAT(r.status.message(), Catch::Contains("read block 2: Input/output error"));
    CHECK(read_kind(t) == BlockKind::kTapeMark);  // the bad block was passed over
  }
  SECTION("writing block k: the error shows at the sync, and the unsynced blocks are lost") {
    EmulatedTape t;
    ok(t.load(f.image));
    write_files(t, 1);
    t.faults().medium_error_block = 3;
    write(t, "block 2");
    write(t, "block 3");  // accepted: the drive buffers it
    TapeResult r = t.write_tape_marks(1);
    CHECK(r.err == EIO);
    CHECK_THAT(r.status.message(), Catch::Contains("deferred write error"));
    CHECK(state(t).eod);
    CHECK(state(t).file_number == 1);
    CHECK(file_bytes(f.image) == record("file 0") + le32(0));
    t.faults().medium_error_block = -1;
    write(t, "again");
    ok(t.write_tape_marks(1));
    ok(t.position_to_file(1));
    CHECK(read_data(t) == "again");
  }
  SECTION("a failed mount") {
    EmulatedTape t;
    t.faults().fail_mount = true;
    TapeResult r = t.load(f.image);
    CHECK(r.err == EIO);
    CHECK_THAT(r.status.message(), Catch::Contains("could not thread the tape"));
    CHECK_FALSE(state(t).loaded);
    CHECK(read(t, nullptr).err == ENOMEDIUM);
    CHECK(t.rewind().err == ENOMEDIUM);
    t.faults().fail_mount = false;
    ok(t.load(f.image));
  }
  SECTION("a wrong tape: the VOL label tells") {
    const std::string other = f.dir.file("V00002.tap");
    must(EmulatedTape::create_image(other));
    EmulatedTape t;
    ok(t.load(other));
    write(t, must(VolLabel{"V00002", "LTO9"}.encode()));
    ok(t.write_tape_marks(1));
    t.faults().wrong_tape = other;
    ok(t.load(f.image));
    CHECK(t.name() == f.image);
    CHECK(must(VolLabel::decode(read_data(t))).vsn == "V00002");
  }
  SECTION("a missing image") {
    EmulatedTape t;
    TapeResult r = t.load(f.dir.file("nope.tap"));
    CHECK(r.err == ENOENT);
    CHECK_THAT(r.status.message(), Catch::Contains("nope.tap"));
  }
}

TEST_CASE("blocks must hold 1 byte to what a SIMH record holds") {
  Tape f;
  EmulatedTape t;
  ok(t.load(f.image));
  CHECK(t.write_block({}).err == EINVAL);
  CHECK(t.write_block(std::string(0x1000000, 'x')).err == EINVAL);
  write(t, std::string(0xFFFFFF, 'x'));
  ok(t.rewind());
  std::string data;
  ReadResult r = read(t, &data, 0xFFFFFF);
  REQUIRE(r.ok());
  CHECK(data == std::string(0xFFFFFF, 'x'));
}

TEST_CASE("the time model: LTO-9 defaults, counted, and slept when scaled") {
  Tape f;
  EmulatedTapeOptions o;
  o.capacity = 1'000'000;
  o.time.bytes_per_second = 1000;
  EmulatedTape t(o);
  ok(t.load(f.image));
  CHECK(t.modeled_seconds() == Approx(16));
  write(t, std::string(492, 'x'));  // a 500-byte record, half a second of data
  CHECK(t.modeled_seconds() == Approx(16.492));
  ok(t.write_tape_marks(1));
  // Rewind from 504 bytes into a 1 MB tape: 62 × (0.2 + 1.6 × 504e-6).
  ok(t.rewind());
  const double rewind = 62 * (0.2 + 1.6 * 504e-6);
  CHECK(t.modeled_seconds() == Approx(16.492 + rewind));
  ok(t.rewind());  // already there: free
  CHECK(t.modeled_seconds() == Approx(16.492 + rewind));
  ok(t.unload());  // at the beginning: the unload alone
  CHECK(t.modeled_seconds() == Approx(16.492 + rewind + 56));

  // Scaled by 1/1000, a load sleeps 16 ms; with no scale nothing sleeps.
  EmulatedTapeOptions fast;
  fast.time.scale = 0.001;
  EmulatedTape scaled(fast);
  auto start = std::chrono::steady_clock::now();
  ok(scaled.load(f.image));
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(16));
  EmulatedTape unscaled;
  start = std::chrono::steady_clock::now();
  ok(unscaled.load(f.image));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(16));
  CHECK(unscaled.modeled_seconds() == Approx(16));
}
