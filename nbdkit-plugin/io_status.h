// io_status.h: the outcome of one I/O request of the data path (a pack's backing, a forwarded
// request): the errno that nbdkit sends on as the NBD error, and a Status for the log.
#pragma once

#include <string_view>
#include <utility>

#include "common/status.h"

namespace vvm::plugin {

// The outcome of one I/O request. Besides the Status for the log it keeps the errno that nbdkit
// sends on as the NBD error: ENOSPC has to reach the client as ENOSPC (qemu pauses a guest on it
// rather than failing the disk), not as a generic EIO.
class [[nodiscard]] IoStatus {
 public:
  IoStatus() = default;  // ok
  IoStatus(int err, Status status) : err_(err), status_(std::move(status)) {}
  // "what: strerror(err)", keeping err.
  static IoStatus FromErrno(int err, std::string_view what) {
    return IoStatus(err, Status::FromErrno(err, what));
  }

  bool ok() const { return err_ == 0; }
  int err() const { return err_; }  // 0 when ok
  const Status& status() const { return status_; }

 private:
  int err_ = 0;
  Status status_;
};

}  // namespace vvm::plugin
