// tape/device.h: what a mover needs from a tape drive, as the Linux st driver offers it.
//
// Two implementations: StTape drives /dev/nstN with MTIOCTOP/MTIOCGET in variable block mode, and
// EmulatedTape works on a SIMH .tap image and behaves as st does, so that the mover's logic is
// tested against the semantics it will meet on a real drive:
//
// - One write_block is one tape block; a read returns one whole block, and a buffer shorter than
//   the block fails with ENOMEM (the tape has then moved past the block).
// - Reading a tape mark returns kTapeMark once and moves past it; at end of data a read returns
//   kEndOfData once (so a tape mark then end of data reads as two zero-length reads, as with st),
//   and the read after that fails with EIO.
// - Writing anywhere but at end of data cuts off everything that followed.
// - Near the end of the medium (early warning) the write that crosses it completes, the next one
//   fails with ENOSPC, the one after is allowed (to write a trailer), and so on alternately until
//   the physical end of the medium.
// - Blocks written are durable only once a synchronous tape mark (or a sync) has returned; a
//   write error may surface only there.
// - After data writes, rewind, unload, space_back and position_to_file first write a tape mark,
//   as st does (MTREW, MTOFFL, MTBSF, MTSEEK; not MTBSR, which lets a writer step back over what
//   it wrote).
//
// Errors are a Status whose message names the device, the operation and the reason
// ("lib/V00001.tap: write block 17: No space left on device (early warning)"), plus the errno st
// would give (ENOSPC, EACCES, ENOMEM, EIO, ...) so that callers can tell them apart without
// parsing messages. Nothing here is thread-safe: one owner drives one device.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"

namespace vvm::tape {

// The outcome of one operation: ok, or what failed with the errno-like reason.
struct [[nodiscard]] TapeResult {
  Status status;  // IoError for medium errors, PermissionDenied for a protected tape, ...
  int err = 0;    // ENOSPC, EACCES, ENOMEM, EIO, ENOMEDIUM, ...; 0 when ok

  bool ok() const { return status.ok(); }
};

// What one read_block found.
enum class BlockKind { kData, kTapeMark, kEndOfData };

struct [[nodiscard]] ReadResult {
  Status status;
  int err = 0;
  BlockKind kind = BlockKind::kData;
  size_t size = 0;  // bytes of data read (kData only)

  bool ok() const { return status.ok(); }
};

// What MTIOCGET and MTIOCPOS tell. Positions are -1 when the drive does not know them (st after
// some errors); an emulated tape always knows.
struct TapeState {
  bool loaded = false;           // a tape is in the drive and ready (GMT_ONLINE)
  bool bot = false;              // at the beginning of the tape (GMT_BOT)
  bool eod = false;              // at end of data (GMT_EOD)
  bool at_tape_mark = false;     // just past a tape mark (GMT_EOF)
  bool early_warning = false;    // past the early-warning point (GMT_EOT)
  bool write_protected = false;  // GMT_WR_PROT
  int64_t file_number = -1;      // tape marks between the beginning of the tape and here
  int64_t block_in_file = -1;    // blocks between the start of this file and here
  int64_t logical_block = -1;    // blocks and tape marks from the beginning (MTIOCPOS)
};

struct [[nodiscard]] StateResult {
  Status status;
  int err = 0;
  TapeState state;

  bool ok() const { return status.ok(); }
};

class TapeDevice {
 public:
  virtual ~TapeDevice() = default;

  // How messages name the device: "/dev/nst0", "lib/V00001.tap".
  virtual std::string name() const = 0;

  // Writes one block of data.size() bytes (at least 1).
  virtual TapeResult write_block(std::span<const char> data) = 0;
  // Reads the next block into `buffer`.
  virtual ReadResult read_block(std::span<char> buffer) = 0;
  // Writes `count` tape marks. Synchronous marks (MTWEOF) return once everything before them is
  // on the medium and report any deferred write error; others (MTWEOFI) return at once. A count
  // of 0 with sync = true only flushes.
  virtual TapeResult write_tape_marks(uint32_t count, bool sync = true) = 0;

  virtual TapeResult rewind() = 0;
  // Spaces forward over `count` tape marks, stopping just past the last (MTFSF). At end of data
  // first: EIO, positioned at end of data.
  virtual TapeResult space_forward(uint32_t count) = 0;
  // Spaces back over `count` tape marks, stopping just before the last, on its beginning-of-tape
  // side (MTBSF). At the beginning of the tape first: EIO, positioned there.
  virtual TapeResult space_back(uint32_t count) = 0;
  // Spaces forward or back over `count` blocks (MTFSR, MTBSR); a tape mark in the way stops the
  // spacing with EIO, positioned past it (forward) or before it (back).
  virtual TapeResult space_forward_blocks(uint32_t count) = 0;
  virtual TapeResult space_back_blocks(uint32_t count) = 0;
  // The start of file `n` (just past tape mark n; file 0 starts at the beginning of the tape),
  // spacing over tape marks rather than reading through earlier files. EIO, positioned at end of
  // data, when the tape has fewer files.
  virtual TapeResult position_to_file(uint64_t n) = 0;
  // End of data, where the next file is appended (MTEOM).
  virtual TapeResult position_to_end_of_data() = 0;

  virtual StateResult status() = 0;
  // Rewinds and ejects the tape (MTOFFL).
  virtual TapeResult unload() = 0;
};

}  // namespace vvm::tape
