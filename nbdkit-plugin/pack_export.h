// pack_export.h: the data path of one connection to a pack: read, write, flush, trim, zero,
// extents and cache on the pack's slice of its backing file or block device, never outside it.
//
// Kept free of nbdkit calls so that it can be tested on its own; vvm_plugin.cc adapts it to the
// nbdkit callbacks. Each operation uses the call that is right for the backing: fallocate and
// SEEK_DATA/SEEK_HOLE on files, BLKDISCARD and BLKZEROOUT on block devices.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "io_status.h"
#include "pack_catalog.h"

namespace vvm::plugin {

// What a request answers when the backing itself fails (EIO: the disk or the path to it is gone).
enum class PathFailure {
  kEio,  // EIO: no other server can do better (single-host mode, no secondary)
  // ESHUTDOWN, which nbdkit sends as NBD_ESHUTDOWN: the NAK that tells a forwarding node to send
  // the request again to the secondary or another server of the pack's pool.
  kNak,
};

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
  bool block_device() const { return block_device_; }
  // The smallest I/O the backing takes without read-modify-write: 1 for a file, the logical
  // sector size (usually 512) for a block device.
  uint32_t minimum_block() const { return minimum_block_; }

  // Chosen by whoever opens the pack: kNak when a secondary or a pool serves the same disk.
  void set_path_failure(PathFailure mode) { path_failure_ = mode; }
  PathFailure path_failure() const { return path_failure_; }

  // `offset` is relative to the pack. A range that leaves the pack fails (EINVAL for reads,
  // ENOSPC for writes, as nbdkit itself answers) before the backing is touched.
  IoStatus read(void* buf, uint32_t count, uint64_t offset) const;
  // With `fua` the data is on stable storage when this returns.
  IoStatus write(const void* buf, uint32_t count, uint64_t offset, bool fua);
  IoStatus flush();

  // Deallocates the range: a hole in a file, a discard of the whole sectors inside it on a block
  // device. Trim is advisory, so a backing that cannot do it succeeds doing nothing.
  IoStatus trim(uint32_t count, uint64_t offset, bool fua);

  // Makes the range read as zeroes. `may_trim`: deallocating is fine. `fast`: fail with
  // EOPNOTSUPP unless neither we nor the kernel write the zeroes (NBD's FAST_ZERO). EOPNOTSUPP
  // also when no quick method works: nbdkit then writes zeroes itself for a request without
  // `fast`. Files: a hole (may_trim), else ZERO_RANGE, else a hole allocated again: all quick.
  // Block devices: fallocate(PUNCH_HOLE), which the kernel does only as a WRITE ZEROES offload
  // (never by writing), when may_trim; BLKZEROOUT, which may write every zero, unless fast.
  IoStatus zero(uint32_t count, uint64_t offset, bool may_trim, bool fast, bool fua);

  // Which parts of the range are data and which are holes (reading as zeroes), in pack-relative
  // offsets, in order, covering at least the first byte of the range; with `req_one` only the
  // first extent. Block devices report one data extent. `add` returns false to stop.
  struct Extent {
    uint64_t offset = 0;
    uint64_t length = 0;
    bool hole = false;
  };
  IoStatus extents(uint32_t count, uint64_t offset, bool req_one,
                   const std::function<bool(const Extent&)>& add) const;

  // Asks the kernel to read the range ahead (NBD_CMD_CACHE).
  IoStatus cache(uint32_t count, uint64_t offset) const;

 private:
  // The operations themselves; the public ones add the fault hook and the path-failure answer.
  IoStatus do_read(void* buf, uint32_t count, uint64_t offset) const;
  IoStatus do_write(const void* buf, uint32_t count, uint64_t offset, bool fua);
  IoStatus do_flush();
  IoStatus do_trim(uint32_t count, uint64_t offset, bool fua);
  IoStatus do_zero(uint32_t count, uint64_t offset, bool may_trim, bool fast, bool fua);
  IoStatus do_extents(uint32_t count, uint64_t offset, bool req_one,
                      const std::function<bool(const Extent&)>& add) const;
  IoStatus do_cache(uint32_t count, uint64_t offset) const;
  // EIO becomes ESHUTDOWN under kNak, the message saying so.
  IoStatus on_path(IoStatus status) const;
  // The test-only fault hook (see pack_export.cc): an EIO, as from a dead disk, naming `op`.
  bool fault_injected() const;
  IoStatus injected(std::string_view op, uint32_t count, uint64_t offset) const;

  PackExport(ExportInfo info, int fd, bool writable)
      : info_(std::move(info)), fd_(fd), writable_(writable) {}
  IoStatus check_range(std::string_view op, uint32_t count, uint64_t offset, int err) const;
  IoStatus check_writable(std::string_view op) const;
  // "pack/a: zero 4096 bytes at 1048576 of /srv/disk.img: REASON", keeping errno.
  IoStatus errno_status(int err, std::string_view op, uint32_t count, uint64_t pos) const;
  IoStatus zero_block_device(uint32_t count, uint64_t pos, bool may_trim, bool fast);
  IoStatus zero_file(uint32_t count, uint64_t pos, bool may_trim);
  IoStatus cannot_zero(std::string_view why) const;

  ExportInfo info_;
  PathFailure path_failure_ = PathFailure::kEio;
  int fd_ = -1;
  bool writable_ = false;
  bool block_device_ = false;
  uint32_t minimum_block_ = 1;
  // What the backing turned out not to support, so that a refused call is not made again for
  // every request. Requests of one connection run in parallel, hence atomic (relaxed: each is a
  // hint on its own, and trying a call once more is harmless).
  std::atomic<bool> can_dsync_{true};       // pwritev2(RWF_DSYNC)
  std::atomic<bool> can_punch_{true};       // fallocate(PUNCH_HOLE); on a device: WRITE ZEROES
  std::atomic<bool> can_zero_range_{true};  // fallocate(ZERO_RANGE)
  std::atomic<bool> can_allocate_{true};    // fallocate(0): allocating a hole again
  std::atomic<bool> can_discard_{true};     // BLKDISCARD
  std::atomic<bool> can_zeroout_{true};     // BLKZEROOUT
};

}  // namespace vvm::plugin
