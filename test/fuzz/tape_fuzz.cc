// tape_fuzz.cc: libFuzzer target for the emulated drive's reader of SIMH .tap images
// (tape/emulated_tape.h), with the mover's label scan (tape/scan.h) and the copy engine's file
// reader (copy/copy.h) on top. The input is the image. Any image must load or be refused with a
// message, never crash, and a tape that loads must behave as st does (tape/device.h):
// - reading from the start meets data blocks and tape marks, then end of data once, then EIO;
// - position_to_file(n) lands at the start of file n for every file, with EIO past the last;
// - spacing back over every tape mark returns to the beginning of the tape;
// - list_files, read_volume_label and the copy engine's read_file read it or say why not, and
//   a file read whole has the size its HDR label gives and the checksum of its data;
// - a block appended at end of data (which cuts off a torn tail) reads back after a reload.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "copy/copy.h"
#include "scratch.h"
#include "tape/emulated_tape.h"
#include "tape/library.h"
#include "tape/scan.h"

namespace {

using namespace vvm::tape;

void require(bool ok) {
  if (!ok) std::abort();
}

TapeState state_of(EmulatedTape& tape) {
  StateResult s = tape.status();
  require(s.ok() && s.state.loaded);
  return s.state;
}

void check(const std::string& image, size_t size) {
  // Read-only first, so that nothing the reads do can change the image.
  uint64_t marks = 0;
  {
    EmulatedTape tape;
    TapeResult loaded = tape.load(image, /*write_protect=*/true);
    if (!loaded.ok()) {
      require(!loaded.status.message().empty() && loaded.err != 0);
      return;
    }
    TapeState s = state_of(tape);
    require(s.bot && s.file_number == 0 && s.logical_block == 0);
    // Every block is smaller than the image.
    std::vector<char> buffer(std::max<size_t>(size, 1));
    uint64_t reads = 0;
    for (;; ++reads) {
      require(reads <= size);  // each block or mark takes at least 4 bytes of the image
      ReadResult r = tape.read_block(buffer);
      if (!r.ok()) {
        require(r.err == EIO && !r.status.message().empty());  // a bad record: a medium error
        continue;
      }
      if (r.kind == BlockKind::kEndOfData) break;
      if (r.kind == BlockKind::kTapeMark) ++marks;
      if (r.kind == BlockKind::kData) require(r.size > 0 && r.size <= size);
    }
    require(state_of(tape).eod && state_of(tape).file_number == static_cast<int64_t>(marks));
    ReadResult past = tape.read_block(buffer);
    require(!past.ok() && past.err == EIO);
    for (uint64_t n = 0; n <= marks; ++n) {
      require(tape.position_to_file(n).ok());
      TapeState at = state_of(tape);
      require(at.file_number == static_cast<int64_t>(n) && at.block_in_file == 0);
    }
    TapeResult beyond = tape.position_to_file(marks + 1);
    require(!beyond.ok() && beyond.err == EIO && state_of(tape).eod);
    if (marks > 0) {
      require(tape.position_to_end_of_data().ok());
      require(tape.space_back(static_cast<uint32_t>(marks)).ok());
      require(state_of(tape).file_number == 0);
      require(tape.rewind().ok());
      require(tape.space_forward(static_cast<uint32_t>(marks)).ok());
      require(state_of(tape).file_number == static_cast<int64_t>(marks));
    }
    require(tape.rewind().ok() && state_of(tape).bot);
    if (auto label = read_volume_label(tape); !label.ok()) {
      require(!label.status().message().empty());
    }
    if (auto files = list_files(tape); !files.ok()) require(!files.status().message().empty());
    // The first files read whole, as vvtape cat and verify read them (stage() reads the same way).
    for (uint64_t n = 1; n <= std::min<uint64_t>(marks, 3); ++n) {
      std::string got;
      auto file = read_file(tape, "V00001", n, [&](std::span<const char> d) {
        got.append(d.data(), d.size());
        return vvm::Status::Ok();
      });
      if (!file.ok()) {
        require(!file.status().message().empty());
        continue;
      }
      require(file->hdr.file_number == n && file->hdr.size == file->bytes);
      require(got.size() == file->bytes && file->checksum == checksum_of(got));
    }
  }
  // Then append a block at end of data and a synchronous mark, as an archive does.
  int64_t file = 0, block_in_file = 0;
  {
    EmulatedTape tape;
    require(tape.load(image).ok());
    require(tape.position_to_end_of_data().ok());
    TapeState end = state_of(tape);
    file = end.file_number;
    block_in_file = end.block_in_file;
    const std::string block = "appended by the fuzzer";
    require(tape.write_block(block).ok() && tape.write_tape_marks(1).ok());
  }
  EmulatedTape tape;
  require(tape.load(image, true).ok());
  require(tape.position_to_file(static_cast<uint64_t>(file)).ok());
  if (block_in_file > 0) {
    require(tape.space_forward_blocks(static_cast<uint32_t>(block_in_file)).ok());
  }
  char back[64];
  ReadResult r = tape.read_block(back);
  require(r.ok() && r.kind == BlockKind::kData &&
          std::string_view(back, r.size) == "appended by the fuzzer");
  ReadResult mark = tape.read_block(back);
  require(mark.ok() && mark.kind == BlockKind::kTapeMark);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string image = vvm::fuzz::scratch_dir() + "/V00001.tap";
  vvm::fuzz::write_file(image, std::string_view(reinterpret_cast<const char*>(data), size));
  check(image, size);
  return 0;
}
