// tape/scan.cc: finding tape files and their labels by spacing (tape/scan.h).
#include "tape/scan.h"

#include <cerrno>

#include <fmt/core.h>

#include "tape/library.h"  // read_volume_label

namespace vvm::tape {

std::string where(const std::string& vsn, uint64_t n) {
  return fmt::format("VSN {} file {}", vsn, n);
}

Status with_context(const Status& s, std::string_view context) {
  return Status(s.code(), fmt::format("{}: {}", context, s.message()));
}

Status check_volume(TapeDevice& tape, const std::string& vsn) {
  auto vol = read_volume_label(tape);
  if (!vol.ok()) {
    if (vol.status().code() == Code::kIoError) return vol.status();
    return Status::Mismatch(
        fmt::format("wrong tape in {}: expected VSN {}, found no VOL label ({})", tape.name(), vsn,
                    vol.status().message()));
  }
  if (vol->vsn != vsn) {
    return Status::Mismatch(
        fmt::format("wrong tape in {}: expected VSN {}, found VSN {}", tape.name(), vsn, vol->vsn));
  }
  return Status::Ok();
}

Result<uint64_t> count_marks(TapeDevice& tape) {
  if (TapeResult r = tape.position_to_end_of_data(); !r.ok()) return r.status;
  StateResult st = tape.status();
  if (st.ok() && st.state.file_number >= 0) return static_cast<uint64_t>(st.state.file_number);
  if (TapeResult r = tape.rewind(); !r.ok()) return r.status;
  uint64_t marks = 0;
  while (tape.space_forward(1).ok()) ++marks;
  return marks;
}

std::string LabelRead::why_not(std::string_view want) const {
  if (damaged) return not_label;
  if (label) {
    return fmt::format("{} label: missing (found a {} label)", want, label_kind_name(label->kind));
  }
  return fmt::format("{} label: missing (found {})", want, not_label);
}

Result<LabelRead> read_label_block(TapeDevice& tape) {
  std::string buf(kLabelBuffer, '\0');
  ReadResult r = tape.read_block(buf);
  LabelRead out;
  if (!r.ok()) {
    if (r.err != ENOMEM) return r.status;
    out.not_label = fmt::format("a data block of more than {} bytes", kLabelBuffer);
    return out;
  }
  out.kind = r.kind;
  if (r.kind != BlockKind::kData) return out;
  auto label = FileLabel::decode(std::string_view(buf.data(), r.size));
  if (label.ok()) {
    out.label = *label;
  } else {
    out.damaged = r.size == kLabelSize;
    out.not_label =
        out.damaged ? label.status().message() : fmt::format("a data block of {} bytes", r.size);
  }
  return out;
}

Result<LabelRead> last_block_of(TapeDevice& tape, uint64_t k) {
  if (TapeResult r = tape.position_to_file(k + 1); !r.ok()) return r.status;
  if (TapeResult r = tape.space_back(1); !r.ok()) return r.status;
  if (TapeResult r = tape.space_back_blocks(1); !r.ok()) {
    // A tape mark right before: the file is empty (st reports that as EIO too).
    StateResult st = tape.status();
    if (st.ok() && st.state.file_number >= 0 && static_cast<uint64_t>(st.state.file_number) == k) {
      return r.status;  // still inside file k: a real failure
    }
    LabelRead empty;
    empty.kind = BlockKind::kTapeMark;
    return empty;
  }
  return read_label_block(tape);
}

Result<std::vector<FileSummary>> list_files(TapeDevice& tape) {
  auto vol = read_volume_label(tape);
  if (!vol.ok()) return vol.status();
  auto marks = count_marks(tape);
  if (!marks.ok()) return marks.status();
  // Blocks after the last tape mark: a file st never closed (the writer was killed).
  bool open_tail = false;
  if (*marks > 0) {
    if (TapeResult r = tape.position_to_file(*marks); !r.ok()) return r.status;
    auto b = read_label_block(tape);
    if (!b.ok()) return b.status();
    open_tail = b->kind == BlockKind::kData;
  }
  const uint64_t files = *marks + (open_tail ? 1 : 0);
  std::vector<FileSummary> out;
  for (uint64_t k = 1; k < files; ++k) {
    FileSummary f;
    f.number = k;
    if (TapeResult r = tape.position_to_file(k); !r.ok()) return r.status;
    auto first = read_label_block(tape);
    if (!first.ok()) return with_context(first.status(), fmt::format("file {}", k));
    if (first->kind != BlockKind::kData) {
      f.empty = true;
      if (k + 1 != files) f.problems.push_back("empty: a tape mark only");
      out.push_back(std::move(f));
      continue;
    }
    if (!first->label || first->label->kind != LabelKind::kHdr) {
      f.problems.push_back(first->why_not("HDR"));
    } else {
      f.hdr = first->label;
      if (f.hdr->file_number != k) {
        f.problems.push_back(fmt::format(
            "HDR label field file number: expected {:010}, found {:010}", k, f.hdr->file_number));
      }
    }
    Result<LabelRead> last = LabelRead{};
    if (k < *marks) {
      last = last_block_of(tape, k);
    } else {
      // The open tail: its last block is the last before end of data.
      TapeResult r = tape.position_to_end_of_data();
      if (r.ok()) r = tape.space_back_blocks(1);
      last = r.ok() ? read_label_block(tape) : Result<LabelRead>(r.status);
    }
    if (!last.ok()) return with_context(last.status(), fmt::format("file {}", k));
    if (last->kind == BlockKind::kData && last->label && last->label->kind == LabelKind::kEof) {
      f.eof = last->label;
      if (f.hdr) {
        if (Status s = check_eof(*f.hdr, *f.eof); !s.ok()) {
          f.problems.push_back(fmt::format("EOF label disagrees with the HDR: {}", s.message()));
        }
      } else if (f.eof->file_number != k) {
        f.problems.push_back(fmt::format(
            "EOF label field file number: expected {:010}, found {:010}", k, f.eof->file_number));
      }
    } else {
      f.partial = true;
      if (last->damaged) f.problems.push_back(last->not_label);
      if (k + 1 != files) f.problems.push_back("no EOF label, and more files follow");
    }
    if (k >= *marks) f.problems.push_back("no tape mark at the end");
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace vvm::tape
