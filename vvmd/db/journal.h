// db/journal.h: the database's journal file (db/database.h): frames of record images
// (db/journal_format.h) appended in whole 4 KiB blocks, each durable before it returns; read back
// at open; emptied at a checkpoint.
//
// The file keeps its size and is rewritten from its start after each emptying (appending to a
// file that does not grow lets fdatasync write the data alone, without the inode, about twice as
// fast here), each round of frames with an epoch of its own, so that the stale frames of earlier
// rounds further on are told apart. Not thread-safe: one writer at a time, the Database's frame in
// progress (its flusher thread, or a commit() that found nothing else to write).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "db/file.h"

namespace vvm::db {

class Journal {
 public:
  explicit Journal(std::unique_ptr<File> file) : file_(std::move(file)) {}

  // Every image of every whole frame of the current round, oldest first, to `image` (table
  // number, slot, record text), which refuses a bad one with an error. A frame cut short, of
  // another epoch or out of sequence ends the journal (it was never acknowledged). How many
  // frames.
  using EachImage = std::function<Status(uint8_t table, uint64_t slot, std::string_view record)>;
  Result<int> replay(const EachImage& image);
  // Empties the journal (its first frame spoiled, synced), at least `size` bytes long, and starts
  // a new round: after a replay or a checkpoint, the tables being synced.
  Status reset(uint64_t size);

  // The frame of `images` (by table number: slot, record text), the next of this round; empty
  // when there are none.
  using Image = std::pair<uint64_t, std::string>;
  std::string make_frame(const std::vector<std::vector<Image>>& images);
  // Appends `frame` and makes it durable: the commit point.
  Status append(const std::string& frame);
  // The bytes of frames since the journal was emptied.
  uint64_t size() const { return size_; }

 private:
  std::unique_ptr<File> file_;
  uint64_t size_ = 0;
  std::string tail_;  // the journal's bytes in its last, partly used 4 KiB block
  uint64_t sequence_ = 0;
  uint64_t epoch_ = 0;
};

}  // namespace vvm::db
