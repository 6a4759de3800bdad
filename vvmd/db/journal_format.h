// db/journal_format.h: the bytes of the database's journal (db/database.h), every offset and size
// named. All integers are little-endian.
//
// A frame:
//   offset  0  magic "VVMJ"   u32 0x4a4d5656
//           4  length         u32, of the images that follow the header
//           8  sequence       u64, 1 for the first frame after the journal was emptied
//          16  epoch          u64, the same for every frame since the journal was emptied
//          24  images         `length` bytes
//   then       CRC-32C        u32, of the header and the images
// An image, the new text of one record:
//   offset  0  table          u8, the table's number (its place in Database::open's list)
//           1  slot           u64
//           9  size           u16, the record size of that table
//          11  record         `size` bytes
// Frames follow one another from the start of the file; the first that does not have the next
// sequence number and the first frame's epoch, is cut short, or fails its CRC, ends the journal.
// The journal is written in whole 4 KiB blocks (kBlock), zeros after the last frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace vvm::db::journal {

inline constexpr uint32_t kMagic = 0x4a4d5656;  // "VVMJ" in little-endian bytes

inline constexpr size_t kMagicAt = 0;
inline constexpr size_t kLengthAt = 4;
inline constexpr size_t kSequenceAt = 8;
inline constexpr size_t kEpochAt = 16;
inline constexpr size_t kHeaderSize = 24;  // the images start here
inline constexpr size_t kTrailerSize = 4;  // the CRC-32C after the images

inline constexpr size_t kImageTableAt = 0;
inline constexpr size_t kImageSlotAt = 1;
inline constexpr size_t kImageSizeAt = 9;
inline constexpr size_t kImageHeaderSize = 11;  // the record starts here

inline constexpr size_t kBlock = 4096;  // the unit of every journal write

// Appends `v`'s bytes (the host's order: vvmd runs little-endian machines only) to `out`.
template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof v);
  out.append(b, sizeof b);
}

// Overwrites the bytes of `out` at `pos` with `v`'s.
template <class T>
void put_at(std::string& out, size_t pos, T v) {
  std::memcpy(out.data() + pos, &v, sizeof v);
}

// The T at `pos` of `in` (which must hold it).
template <class T>
T get(std::string_view in, size_t pos) {
  T v;
  std::memcpy(&v, in.data() + pos, sizeof v);
  return v;
}

}  // namespace vvm::db::journal
