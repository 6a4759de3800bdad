// copy.h: the copy engine, what a mover's child process runs for one request: archive (a cache
// file becomes the next tape file of a VSN), stage (tape file N of a VSN becomes a cache file)
// and tape copy (tape file N of one VSN becomes the next tape file of another, drive to drive).
// vvtape uses the same reading code for cat, ls and verify.
//
// Layout on tape (DESIGN.md, "Tape"; unlike CTA's and ANSI's layouts there is no tape mark
// between a label and the data). Every VV is exactly one tape file, so tape file
// number, label file number and the number of tape marks before the file are all the same N:
//
//   file 0:  VOL | TM
//   file N:  HDR | data block | ... | data block | EOF | TM        (N >= 1)
//
// The HDR and EOF labels are single 80-byte blocks; the data blocks are block_size bytes (256
// KiB by default), the last one short; a VV of size 0 is HDR | EOF | TM. The HDR's size says how
// many data bytes follow, so an 80-byte data block is never taken for the EOF label. Spacing
// over N tape marks from the beginning reaches file N without reading earlier files. The
// tape mark after the EOF is written synchronously: a file counts as written only once it has
// returned. A tape whose last write ran out of space ends with an empty file (two tape marks in a
// row, as ANSI tapes end), see archive().
//
// Checksum: XXH3-64 (libxxhash), computed on the stream in both directions. Chosen over CRC-32C
// (which vvmd's database uses, with SSE 4.2) because a whole VV, up to terabytes, is one check:
// 64 bits leave a wrong-but-accepted copy at 2^-64 rather than 2^-32; XXH3 needs no particular
// CPU and is fast everywhere (6 GB/s on one core of the development machine with Debian's build,
// 15 times a drive's 400 MB/s, so it never slows a copy); and it has a streaming API in a Debian
// package (libxxhash-dev).
//
// Error codes (Status::code()), so that vvmd can act without parsing messages:
//   NoSpace   on archive, the VSN is full (end of medium): archive the VV to another VSN. On
//             stage, the cache filesystem is full (ENOSPC writing the temporary file): no copy
//             is to blame, and another would fill it too.
//   Mismatch  the tape is not what the request says: wrong VSN in the drive (or a blank tape),
//             a last complete file other than the one expected, a label field, the data length,
//             the checksum. The message names the VSN, the file number, the field, the expected
//             and the found value. On stage: try the VV's next copy.
//   IoError   the drive or the cache file failed (EIO, medium error, ...).
//   InvalidArgument  the request itself is wrong (file number 0, a block size of 0, a cache
//             file whose size is not the request's size).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "tape/device.h"
#include "tape/label.h"
#include "tape/scan.h"

namespace vvm::tape {

inline constexpr size_t kDefaultBlockSize = 256 * 1024;
// The largest block a read accepts by default: a tape written with bigger blocks fails to read
// with ENOMEM (st's semantics), which names the block size.
inline constexpr size_t kDefaultMaxBlockSize = 4 * 1024 * 1024;

// What a VV's labels say about it, as vvmd's database has it.
struct VvFields {
  char vv_class = 'A';
  uint64_t vv_serial = 0;
  uint64_t id = 0;
  uint64_t size = 0;  // bytes
  uint64_t time_finished = 0;
};

struct ArchiveRequest {
  std::string vsn;           // the tape that must be in the drive
  uint64_t file_number = 0;  // the file the VV becomes: 1 + the last complete file on the tape
  VvFields vv;
  uint64_t time_written = 0;  // 0: now
  size_t block_size = kDefaultBlockSize;
  size_t buffers = 8;  // blocks in flight between the cache-file reader and the tape writer
};

struct ArchiveDone {
  std::string vsn;
  uint64_t file_number = 0;
  uint64_t bytes = 0;
  uint64_t checksum = 0;  // XXH3-64 of the data
  uint64_t time_written = 0;
  uint64_t blocks = 0;  // data blocks
  // File n held this same copy already, from an attempt whose report was lost: written again.
  bool rewritten = false;
};

struct StageRequest {
  std::string vsn;
  uint64_t file_number = 0;
  VvFields vv;            // checked against the HDR label field by field (not time written)
  uint64_t checksum = 0;  // what archive() returned
  size_t max_block_size = kDefaultMaxBlockSize;
  size_t buffers = 8;
};

struct StageDone {
  uint64_t bytes = 0;
  uint64_t checksum = 0;
};

// Called on the calling thread after each data block with the data bytes copied so far, so that
// the caller can report progress (and a watchdog can see it move).
using Progress = std::function<void(uint64_t bytes)>;

// Appends the cache file at `cache_file` to the tape as file request.file_number:
// 1. Rewinds and reads the VOL label: a tape of another VSN (or a blank one) is refused.
// 2. Goes to end of data and finds the last complete file L (the one whose last block is an EOF
//    label for file L), reading only that file's last block or two; a partial file after it
//    (an archive interrupted by a crash, with or without the tape mark st adds on close) is
//    overwritten. L + 1 must be request.file_number, or nothing is written.
// 3. Writes HDR, the data in block_size blocks, EOF, and a synchronous tape mark. A reader thread
//    fills a queue of aligned buffers from the cache file (and computes the checksum) while the
//    calling thread writes blocks, so the file and the tape stream at the same time.
// At end of medium (ENOSPC) the partial file is abandoned: the tape goes back to the start of
// file N and a tape mark there cuts the partial data off, so the tape ends after file N-1 (and a
// later archive would overwrite from file N); the result is NoSpace. A failed cache-file read
// cuts the partial file off the same way; a failing drive is left alone (the partial file stays,
// and the next archive overwrites it).
Result<ArchiveDone> archive(TapeDevice& tape, const ArchiveRequest& request,
                            const std::string& cache_file, const Progress& progress = {});

// Which side a failed copy is to blame: the one read (a tape), the one written (a tape, or the
// cache for a stage), or neither (the request itself).
enum class CopySide { kNone, kSource, kDestination };

// Copies tape file request.file_number to `final_path`: checks the VOL label, spaces over tape
// marks to the file, checks the HDR against the request, reads exactly `size` data bytes into a
// temporary file CACHE_DIR/.stage.NAME.XXXXXX (NAME: final_path's last component; vvmd removes
// leftovers of that form on start), checks the EOF label, the tape mark after it and the
// checksum, fsyncs, and renames it to `final_path` (then fsyncs the folder). A writer thread
// writes the file while the calling thread reads the tape. On any failure the temporary file is
// removed and final_path is untouched. `*side`, when given, says what a failure is to blame:
// the tape read (kSource) or the cache written (kDestination: the temporary file's creation,
// writes, fsync, rename), whose failure says nothing about the copy on tape.
Result<StageDone> stage(TapeDevice& tape, const StageRequest& request, const std::string& cache_dir,
                        const std::string& final_path, const Progress& progress = {},
                        CopySide* side = nullptr);

// Reads tape file request.file_number back and checks it as stage() does (the VOL label, the HDR
// against the request, exactly `size` data bytes, the EOF label, the tape mark after it, the
// checksum), writing nothing: what a verify or a scrub of a copy runs. The data's bytes and
// checksum, or the first check that failed (Mismatch, naming the field).
Result<StageDone> verify(TapeDevice& tape, const StageRequest& request,
                         const Progress& progress = {});

struct TapeCopyRequest {
  std::string from_vsn;  // the tape read, in the first drive
  uint64_t from_file = 0;
  std::string to_vsn;     // the tape written, in the second drive
  uint64_t to_file = 0;   // 1 + the last complete file on it
  VvFields vv;            // checked against the source's HDR (not time written), as a stage does
  uint64_t checksum = 0;  // the data's, what archive() returned: checked on what is read
  uint64_t time_written = 0;              // the destination's labels; 0: now
  size_t block_size = kDefaultBlockSize;  // the destination's data blocks
  size_t max_block_size = kDefaultMaxBlockSize;
  size_t buffers = 8;
};

// Copies tape file request.from_file of `from` to file request.to_file of `to`, one pass:
// 1. Checks `from`'s VOL label, and `to`'s VOL label and append point as archive() does (the last
//    complete file must be to_file - 1, or to_file holding this very copy: `rewritten`).
// 2. Reads the source as stage() does (the HDR against request.vv, exactly `size` data bytes),
//    and writes the destination as archive() does (a HDR for to_file, written once the source's
//    HDR passed, the data in block_size blocks, whatever the source's block size was), the
//    calling thread reading while a worker thread checksums and writes.
// 3. Only once the source's EOF label, its tape mark and the checksum have passed: the EOF label
//    and a synchronous tape mark on the destination. The file counts as written once that
//    returned, as an archive's.
// A source that fails (a read error, a label, the size, the checksum) leaves no complete file on
// the destination: its partial file is cut off as after a failed cache-file read in archive().
// End of medium on the destination gives NoSpace, the partial file cut off; another failure of
// the destination drive leaves its partial file (the next write goes over it). `*side`, when
// given, says which tape a failure is to blame.
Result<ArchiveDone> tape_copy(TapeDevice& from, TapeDevice& to, const TapeCopyRequest& request,
                              const Progress& progress = {}, CopySide* side = nullptr);

// --- reading tapes for vvtape ---

// Receives the data of a file in order, on a worker thread; a failure stops the read.
using Sink = std::function<Status(std::span<const char> data)>;

// Tape file n, read whole.
struct FileContents {
  FileLabel hdr;
  FileLabel eof;
  uint64_t bytes = 0;
  uint64_t checksum = 0;
};

// Positions to file n (n >= 1) and reads it: HDR (which must be a HDR label for file n, and match
// `expected` in the fields given, if there is one), exactly hdr.size data bytes handed to `sink`,
// the EOF (which must close the HDR) and the tape mark after it. Failures name `vsn` (the tape's
// name when empty) and the file number.
Result<FileContents> read_file(TapeDevice& tape, const std::string& vsn, uint64_t n,
                               const Sink& sink, const FileLabel* expected = nullptr,
                               unsigned fields = kAllFields,
                               size_t max_block_size = kDefaultMaxBlockSize, size_t buffers = 8,
                               const Progress& progress = {});

// The checksum archive() and stage() compute, for tests and tools.
uint64_t checksum_of(std::span<const char> data);

}  // namespace vvm::tape
