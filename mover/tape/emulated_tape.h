// emulated_tape.h: a tape drive emulated on a SIMH .tap image, faithful to st's semantics.
//
// The image format (open-simh sim_tape.h): each block is a 4-byte little-endian length, the data,
// a pad byte when the length is odd, and the length again; a tape mark is a zero length; the end
// of medium marker 0xFFFFFFFF (or the end of the file) ends the data. Tools that read SIMH tapes
// read these images.
//
// What the emulation models, besides the TapeDevice contract (tape/device.h):
// - Loading scans the record headers only (two 4-byte reads a block, never the data) to find end
//   of data and to build an index of tape-mark offsets, so that positioning to file N spaces over
//   tape marks without reading earlier files. A torn last record (or any record whose two lengths
//   disagree) ends the data: the torn tail is recovered by the scan, and cut off by the next write.
// - Durability. Every block goes to the image file when written (the image is what the drive has
//   received: its buffer and the medium). A synchronous tape mark fdatasyncs the image and moves
//   the synced end up to end of data. simulate_power_loss() truncates the image back to the synced
//   end and unloads the tape: blocks not followed by a synchronous mark are lost, as a drive's
//   buffer is. A process that dies without simulate_power_loss() loses nothing it wrote, as with a
//   real drive, which still writes out its buffer. Writing cuts off what followed at once: a real
//   drive moves end of data when it starts writing, so the cut data is gone even if the new
//   blocks are then lost.
// - Capacity and early warning, counted in image bytes (headers included).
// - Write protection (EACCES on writes), injected faults, and a time model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tape/device.h"

namespace vvm::tape {

// Seconds a drive takes, by default an IBM LTO-9 half-height drive's (its TS2290 manual: load 16 s,
// unload 56 s, average locate 65 s, rewind 62 s). Locate and rewind costs are averages over
// positions uniform on the tape: a move of distance d on a tape of length L costs
// seconds × (0.2 + 1.6 d / L), from 0.2× for a short hop to 1.8× end to end.
struct TimeModel {
  double scale = 0;  // 0: no delays (only counted); 1: real time; 0.001: a thousandth
  double load_seconds = 16;
  double locate_seconds = 65;
  double rewind_seconds = 62;
  double unload_seconds = 56;  // after the rewind
  double bytes_per_second = 400e6;
  // The tape length for locate costs when the options set no capacity (LTO-9: 18 TB).
  double nominal_length = 18e12;
};

struct EmulatedTapeOptions {
  uint64_t capacity = 0;       // image bytes the medium holds; 0: no limit
  uint64_t early_warning = 0;  // image offset where early warning starts; 0: 2% before capacity
  TimeModel time;
};

// Faults to inject; they stay until cleared.
struct TapeFaults {
  // Reading logical block k (blocks and tape marks counted from the beginning of the tape) fails
  // with EIO; writing it is accepted, but the next synchronous tape mark fails with EIO and the
  // unsynced blocks are lost, as a deferred write error on a real drive.
  int64_t medium_error_block = -1;
  bool fail_mount = false;  // load() fails with EIO, as a drive that cannot thread the tape
  std::string wrong_tape;   // load() mounts this image instead of the one asked for
};

class EmulatedTape : public TapeDevice {
 public:
  explicit EmulatedTape(EmulatedTapeOptions options = {});
  // As st on close: a tape mark after data writes, then the image is closed.
  ~EmulatedTape() override;
  EmulatedTape(const EmulatedTape&) = delete;
  EmulatedTape& operator=(const EmulatedTape&) = delete;

  // Makes an empty (blank) tape image; AlreadyExists if there is one.
  static Status create_image(const std::string& path);

  // Mounts the image at `path`, positioned at the beginning of the tape. A tape already loaded is
  // unloaded first. An image that cannot be opened for writing is loaded write-protected.
  TapeResult load(const std::string& path, bool write_protect = false);
  TapeFaults& faults() { return faults_; }
  // Drops the blocks written since the last synchronous tape mark, and unloads the tape.
  void simulate_power_loss();
  // Seconds the time model has charged so far (before scaling), so tests can check the model
  // without waiting for it.
  double modeled_seconds() const { return modeled_seconds_; }
  // Image bytes known durable: what survives simulate_power_loss().
  uint64_t synced_bytes() const { return synced_end_; }

  std::string name() const override { return path_; }
  TapeResult write_block(std::span<const char> data) override;
  ReadResult read_block(std::span<char> buffer) override;
  TapeResult write_tape_marks(uint32_t count, bool sync = true) override;
  TapeResult rewind() override;
  TapeResult space_forward(uint32_t count) override;
  TapeResult space_back(uint32_t count) override;
  TapeResult space_forward_blocks(uint32_t count) override;
  TapeResult space_back_blocks(uint32_t count) override;
  TapeResult position_to_file(uint64_t n) override;
  TapeResult position_to_end_of_data() override;
  StateResult status() override;
  TapeResult unload() override;

 private:
  struct Mark {
    uint64_t offset;  // of its 4-byte header in the image
    uint64_t block;   // its logical block number
  };
  // One record of the image, as read from its headers.
  struct Record {
    enum Kind { kData, kBad, kMark, kEnd } kind = kEnd;
    uint64_t length = 0;  // data bytes
    uint64_t next = 0;    // offset just past it
  };

  TapeResult fail(int err, std::string_view op, std::string_view detail = {}) const;
  TapeResult check_loaded(std::string_view op) const;
  TapeResult scan();
  // The record at `offset`, gaps skipped; kEnd at end of file, an end of medium marker, or a torn
  // or inconsistent record (only the scan can meet those: positions stay below end of data).
  Result<Record> record_at(uint64_t offset, uint64_t* data_offset = nullptr) const;
  // Cuts the tape at (offset, block): what follows is gone.
  TapeResult cut(uint64_t offset, uint64_t block);
  // st writes a tape mark before rewinding, unloading or spacing back after data writes.
  TapeResult mark_after_writes();
  void move_to(uint64_t offset, uint64_t block, uint64_t file);
  // How many tape marks lie before `offset`.
  size_t marks_before(uint64_t offset) const;
  void charge(double seconds);
  double move_seconds(double base, uint64_t from, uint64_t to) const;
  double stream_seconds(uint64_t bytes) const;

  EmulatedTapeOptions options_;
  TapeFaults faults_;
  double modeled_seconds_ = 0;

  int fd_ = -1;  // the loaded image; -1 when the drive is empty
  std::string path_;
  bool write_protected_ = false;
  std::vector<Mark> marks_;  // every tape mark, in order
  uint64_t eod_ = 0;         // end of data: offset, and logical block number there
  uint64_t eod_block_ = 0;
  uint64_t image_size_ = 0;  // the file's size: end of data, or more after a torn write
  uint64_t synced_end_ = 0;  // image bytes durable
  uint64_t synced_block_ = 0;

  uint64_t offset_ = 0;  // the position
  uint64_t block_ = 0;
  uint64_t file_ = 0;
  bool eod_read_ = false;        // a read returned kEndOfData here: the next one fails
  bool wrote_data_ = false;      // data written since the last tape mark
  bool ew_refuse_next_ = true;   // past early warning: the next write fails, then they alternate
  bool deferred_error_ = false;  // an injected write error, reported at the next sync
};

}  // namespace vvm::tape
