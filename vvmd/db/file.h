// db/file.h: the file operations the database makes, behind an interface, so that tests can
// put a file that fails or loses unsynced writes where the real one goes (SQLite's way of testing
// I/O errors and crashes).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace vvm::db {

class File {
 public:
  virtual ~File() = default;
  // Exactly `n` bytes at `offset`; NotFound-free: short reads past the end are IoError.
  virtual Status read_at(uint64_t offset, char* buf, size_t n) = 0;
  // All of `data` at `offset` (the file grows as needed).
  virtual Status write_at(uint64_t offset, std::string_view data) = 0;
  // Data on stable storage. A failure here is final: see Table::sync().
  virtual Status sync() = 0;
  virtual Result<uint64_t> size() = 0;
  virtual Status truncate(uint64_t size) = 0;
  // Writes `data` at `offset` and makes it durable before returning (the journal's commit point).
  // This default is write_at then sync; a PosixFile given whole aligned 4 KiB blocks writes them
  // with O_DIRECT and RWF_DSYNC instead, one device write with no separate flush of the page
  // cache (13% more commits a second on the development disk).
  virtual Status write_durably(uint64_t offset, std::string_view data) {
    VVM_RETURN_IF_ERROR(write_at(offset, data));
    return sync();
  }
  virtual const std::string& path() const = 0;
  // The file's first `size` bytes (all within the file), read-only, from a shared mapping that
  // sees every write_at at once; nullptr when the file cannot be mapped, and callers then use
  // read_at. The address stays valid for the File's life while the file grows: reading a
  // record then costs no system call and no copy. Not thread-safe: one caller at a time.
  virtual const char* mapping(uint64_t /*size*/) { return nullptr; }
};

// A file on disk, opened read-write. `create`: made new (it must not exist), and its folder
// synced so that the name survives a crash.
Result<std::unique_ptr<File>> open_posix_file(const std::string& path, bool create);

// The bytes of the file at `path`, copied into memory: writes change the copy alone, sync does
// nothing. For reading a table as it would be with images that cannot be written to it (the
// database after a table write failed, db/database.h). Messages name `path`.
Result<std::unique_ptr<File>> open_memory_copy(const std::string& path);

// Renames `from` to `to` and syncs the folder: after a crash the file is there whole under its
// new name, or not at all.
Status rename_durably(const std::string& from, const std::string& to);
// fsyncs the folder that holds `path`, so that a file made or renamed there is durable.
Status sync_folder_of(const std::string& path);

}  // namespace vvm::db
