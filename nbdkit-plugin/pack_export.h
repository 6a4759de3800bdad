// pack_export.h: the data path of one connection to a pack: reads, writes and flushes on the
// pack's slice of its backing file or disk, never outside it.
//
// Kept free of nbdkit calls so that it can be tested on its own; vvm_plugin.cc adapts it to the
// nbdkit callbacks. Mode enforcement (exclusive holders, locks), trim, zero and extents will live
// here too.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "pack_catalog.h"
#include "status.h"

namespace vvm::plugin {

// The outcome of one I/O request. Besides the Status for the log it keeps the errno that nbdkit
// sends on as the NBD error: ENOSPC has to reach the client as ENOSPC (qemu pauses a guest on it
// rather than failing the disk), not as a generic EIO.
class [[nodiscard]] IoStatus {
 public:
  IoStatus() = default;  // ok
  IoStatus(int err, Status status) : err_(err), status_(std::move(status)) {}
  // "what: strerror(err)", keeping err.
  static IoStatus FromErrno(int err, std::string_view what);

  bool ok() const { return err_ == 0; }
  int err() const { return err_; }  // 0 when ok
  const Status& status() const { return status_; }

 private:
  int err_ = 0;
  Status status_;
};

// The size in bytes of an open regular file or block device; an error for anything else.
Result<uint64_t> backing_size(int fd, const std::string& path);

class PackExport {
 public:
  // Opens the backing of `info` for one connection: read-write unless the export is read-only or
  // nbdkit runs with -r (`server_read_only`). Cheap: listing exports opens every one of them.
  static Result<std::unique_ptr<PackExport>> open(const ExportInfo& info, bool server_read_only);

  PackExport(const PackExport&) = delete;
  PackExport& operator=(const PackExport&) = delete;
  ~PackExport();

  const ExportInfo& info() const { return info_; }
  uint64_t size() const { return info_.pack.size; }
  bool writable() const { return writable_; }

  // `offset` is relative to the pack. A range that leaves the pack fails (EINVAL for reads,
  // ENOSPC for writes, as nbdkit itself answers) before the backing is touched.
  IoStatus read(void* buf, uint32_t count, uint64_t offset) const;
  // With `fua` the data is on stable storage when this returns.
  IoStatus write(const void* buf, uint32_t count, uint64_t offset, bool fua);
  IoStatus flush();

 private:
  PackExport(ExportInfo info, int fd, bool writable)
      : info_(std::move(info)), fd_(fd), writable_(writable) {}
  IoStatus check_range(std::string_view op, uint32_t count, uint64_t offset, int err) const;

  ExportInfo info_;
  int fd_ = -1;
  bool writable_ = false;
};

}  // namespace vvm::plugin
