// tape/scan.h: what a tape holds, found from its labels by spacing over tape marks and reading
// label blocks, never the data: the VOL check, the count of tape marks, the last block of a
// file, and the list of every file with what is wrong with its labels. The copy engine
// (copy/copy.h) builds on these; vvmd's VSN catalogue and vvtape ls use list_files alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "tape/device.h"
#include "tape/label.h"

namespace vvm::tape {

// Labels are read into a buffer this big, so that a data block where a label should be is read
// whole and recognised as "not a label" instead of failing with ENOMEM.
inline constexpr size_t kLabelBuffer = 64 * 1024;

// How messages name a tape file: "VSN V00001 file 3".
std::string where(const std::string& vsn, uint64_t n);
// `s` with "CONTEXT: " before its message.
Status with_context(const Status& s, std::string_view context);

// Reads the VOL label and checks it names `vsn` (Mismatch if not, naming both).
Status check_volume(TapeDevice& tape, const std::string& vsn);

// The number of tape marks on the tape (so files 0 .. marks-1 end with one), leaving the tape at
// end of data. st may not know the file number after a fast MTEOM: then count by spacing.
Result<uint64_t> count_marks(TapeDevice& tape);

// One block read into a label-sized buffer: a label, or why it is not one.
struct LabelRead {
  BlockKind kind = BlockKind::kData;
  std::optional<FileLabel> label;
  std::string not_label;  // why the block is not a HDR/EOF label (kData only)
  bool damaged = false;   // an 80-byte block that does not decode: not_label names the field

  // Why this is not the `want` label that should be here: "HDR label: missing (a data block of
  // 262144 bytes)", or the decoder's message, which names the label and the field.
  std::string why_not(std::string_view want) const;
};
Result<LabelRead> read_label_block(TapeDevice& tape);

// The last block of terminated file k (k >= 1, tape mark k+1 exists), read by spacing back
// from the tape mark after it. kTapeMark when the file is empty.
Result<LabelRead> last_block_of(TapeDevice& tape, uint64_t k);

// What the labels of one tape file say, found by spacing (no data is read).
struct FileSummary {
  uint64_t number = 0;
  std::optional<FileLabel> hdr;
  std::optional<FileLabel> eof;
  bool partial = false;  // no EOF label: an interrupted archive (harmless if it is the last file)
  bool empty = false;    // just a tape mark (the end of a tape that ran out of space)
  std::vector<std::string> problems;  // every way the labels are wrong, one sentence each
};

// Every file after file 0, in order.
Result<std::vector<FileSummary>> list_files(TapeDevice& tape);

}  // namespace vvm::tape
