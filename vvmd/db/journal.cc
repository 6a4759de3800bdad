// db/journal.cc: the database's journal file; see db/journal.h and db/journal_format.h.
#include "db/journal.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>

#include <fmt/core.h>

#include "db/journal_format.h"
#include "db/record.h"

namespace vvm::db {

using namespace journal;

Result<int> Journal::replay(const EachImage& image) {
  auto file_size = file_->size();
  if (!file_size.ok()) return file_size.status();
  std::string bytes(*file_size, '\0');
  if (*file_size > 0) VVM_RETURN_IF_ERROR(file_->read_at(0, bytes.data(), bytes.size()));
  int frames = 0;
  uint64_t epoch = 0, sequence = 0;
  for (size_t pos = 0; pos + kHeaderSize + kTrailerSize <= bytes.size();) {
    if (get<uint32_t>(bytes, pos + kMagicAt) != kMagic) break;
    if (frames > 0 && (get<uint64_t>(bytes, pos + kEpochAt) != epoch ||
                       get<uint64_t>(bytes, pos + kSequenceAt) != sequence + 1)) {
      break;
    }
    const auto len = get<uint32_t>(bytes, pos + kLengthAt);
    if (pos + kHeaderSize + len + kTrailerSize > bytes.size()) break;  // cut short: dropped
    std::string_view frame(bytes.data() + pos, kHeaderSize + len);
    if (crc32c(frame) != get<uint32_t>(bytes, pos + kHeaderSize + len)) break;
    epoch = get<uint64_t>(bytes, pos + kEpochAt);
    sequence = get<uint64_t>(bytes, pos + kSequenceAt);
    const size_t images_end = pos + kHeaderSize + len;
    for (size_t p = pos + kHeaderSize; p < images_end;) {
      const size_t n =
          p + kImageHeaderSize <= images_end ? get<uint16_t>(bytes, p + kImageSizeAt) : 0;
      if (p + kImageHeaderSize + n > images_end || n == 0) {
        return Status::IoError(fmt::format("{}: frame {} holds an image that runs past its end",
                                           file_->path(), frames));
      }
      Status s = image(static_cast<uint8_t>(bytes[p + kImageTableAt]),
                       get<uint64_t>(bytes, p + kImageSlotAt),
                       std::string_view(bytes.data() + p + kImageHeaderSize, n));
      if (!s.ok()) {
        return Status(s.code(),
                      fmt::format("{}: frame {}: {}", file_->path(), frames, s.message()));
      }
      p += kImageHeaderSize + n;
    }
    pos += kHeaderSize + len + kTrailerSize;
    ++frames;
  }
  return frames;
}

Status Journal::reset(uint64_t size) {
  auto file_size = file_->size();
  if (!file_size.ok()) return file_size.status();
  if (*file_size < size) {
    VVM_RETURN_IF_ERROR(file_->write_at(*file_size, std::string(size - *file_size, '\0')));
  }
  // Spoil the first frame: the journal is empty until the next frame is written there. A new
  // epoch tells the frames of this round from the stale ones of earlier rounds further on.
  VVM_RETURN_IF_ERROR(file_->write_at(0, std::string(kHeaderSize, '\0')));
  VVM_RETURN_IF_ERROR(file_->sync());
  epoch_ = std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32) ^
           static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  sequence_ = 0;
  size_ = 0;
  tail_.clear();
  return Status::Ok();
}

std::string Journal::make_frame(const std::vector<std::vector<Image>>& images) {
  bool empty = true;
  for (const auto& i : images) empty = empty && i.empty();
  if (empty) return {};
  std::string frame;
  put<uint32_t>(frame, kMagic);
  put<uint32_t>(frame, 0);  // the length, once known
  put<uint64_t>(frame, ++sequence_);
  put<uint64_t>(frame, epoch_);
  for (size_t t = 0; t < images.size(); ++t) {
    for (const auto& [slot, rec] : images[t]) {
      put<uint8_t>(frame, static_cast<uint8_t>(t));
      put<uint64_t>(frame, slot);
      put<uint16_t>(frame, static_cast<uint16_t>(rec.size()));
      frame += rec;
    }
  }
  put_at<uint32_t>(frame, kLengthAt, static_cast<uint32_t>(frame.size() - kHeaderSize));
  put<uint32_t>(frame, crc32c(frame));
  return frame;
}

Status Journal::append(const std::string& frame) {
  if (frame.empty()) return Status::Ok();
  // Whole 4 KiB blocks, so that the file can write them durably in one direct write: the block
  // where the journal ends starts with the bytes already there (kept in tail_; rewriting them
  // with the same bytes cannot harm a committed frame, even torn), then the frame, then zeros,
  // which end the journal for replay as well as any stale frame would.
  const uint64_t start = size_ - tail_.size();
  const size_t used = tail_.size() + frame.size();
  const size_t padded = (used + kBlock - 1) / kBlock * kBlock;
  void* raw = nullptr;
  if (::posix_memalign(&raw, kBlock, padded) != 0) {
    return Status::Internal("journal: no memory for a frame's blocks");
  }
  std::unique_ptr<char, decltype(&std::free)> blocks(static_cast<char*>(raw), &std::free);
  std::memcpy(blocks.get(), tail_.data(), tail_.size());
  std::memcpy(blocks.get() + tail_.size(), frame.data(), frame.size());
  std::memset(blocks.get() + used, 0, padded - used);
  VVM_RETURN_IF_ERROR(file_->write_durably(start, std::string_view(blocks.get(), padded)));
  size_ += frame.size();
  tail_.assign(blocks.get() + used / kBlock * kBlock, used % kBlock);
  return Status::Ok();
}

}  // namespace vvm::db
