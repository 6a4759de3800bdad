// vv_export.h: one NBD connection to a vv/NAME export: what vvmd's probe answered at nbdkit's
// .open (size, writable or not), then, at the first data command, the real open: VV_OPEN with
// use = true on a control connection of the connection's own, a bounded wait while the VV is not
// ready (evicted, staging), and the cache file opened for the data path, which is PackExport's
// (the whole cache file as the "pack"). Nothing of this happens at .open: listings open every
// export and must not count an access, register an open or touch a cache file, which an evicted
// VV does not even have.
//
// .close sends VV_CLOSE (with whether the connection wrote) and ends the control connection; if
// nbdkit dies instead, vvmd sees that connection end and forgets the open.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/status.h"
#include "pack_export.h"
#include "proto/client.h"
#include "proto/messages.h"
#include "vv_client.h"

namespace vvm::plugin {

// Why vvmd's probe serves the VV read-only although the connection asked to write (`request`
// is the probe, `probe` its answer, `who` the peer: "host 10.0.0.7", "uid 1000"): "VV A0000000042
// is finished, and only a hot VV can be written", or that its mode lets `who` read it, not write
// it. "" when the export is served as asked.
std::string read_only_reason(const rpc::VvOpenRequest& request, const rpc::VvOpenReply& probe,
                             const std::string& who);

// What the plugin logs when a connection served read-only for `reason` ends without a single
// request, as a client that wants to write does when it finds the export read-only (qemu-io
// without -r: "Permission denied"; NBD gives the server no way to tell it more): the export,
// the reason and the way out, opening it read-only.
std::string read_only_note(const std::string& export_name, const std::string& reason);

class VvConnection {
 public:
  struct Waiting {
    std::chrono::milliseconds timeout{600'000};  // vvm.conf's [plugin] stage-timeout
    std::chrono::milliseconds poll{500};
    // Sleeps; false when the wait must end now (nbdkit is shutting down).
    std::function<bool(std::chrono::milliseconds)> sleep;
    // Says something an administrator should see once a connection: the wait and how it ended.
    std::function<void(const std::string&)> note;
  };

  // `request` names the VV and the NBD peer; `probe` is vvmd's answer to it at .open; `who` is
  // the peer as messages name it.
  VvConnection(VvmdLink* vvmd, rpc::VvOpenRequest request, rpc::VvOpenReply probe,
               const std::string& who, Waiting waiting);
  ~VvConnection();  // ends the control connection; close() first to tell vvmd
  VvConnection(const VvConnection&) = delete;
  VvConnection& operator=(const VvConnection&) = delete;

  const std::string& export_name() const { return export_name_; }  // "vv/A0000000042"
  const std::string& description() const { return description_; }
  uint64_t size() const { return probe_.vv.size; }
  bool writable() const { return probe_.writable; }
  // Why the connection is read-only although it asked to write; "" when it is served as asked.
  const std::string& read_only_reason() const { return read_only_reason_; }
  // Whether a data command came (and ensure_open ran).
  bool used() const { return decided_.load(std::memory_order_acquire); }

  // At the first data command: opens the VV with vvmd and its cache file, waiting while it is not
  // ready. Every later call, from any thread, returns the same answer. `*newly_refused` is set
  // when this call found a refusal, so that it is logged once.
  const Status& ensure_open(bool* newly_refused);
  // The data path; only after ensure_open succeeded.
  PackExport& pack() { return *pack_; }
  // A write, trim or zero succeeded: VV_CLOSE says the VV was written.
  void note_written() { written_.store(true, std::memory_order_relaxed); }

  // VV_CLOSE, if this connection opened the VV; once. Ok when there was nothing to close.
  Status close();

 private:
  Status open_now();

  VvmdLink* vvmd_;
  rpc::VvOpenRequest request_;
  rpc::VvOpenReply probe_;
  Waiting waiting_;
  std::string export_name_;
  std::string description_;
  std::string read_only_reason_;

  std::atomic<bool> decided_{false};
  std::mutex mutex_;
  Status opened_;                      // ok once open, else why not
  std::optional<rpc::Client> client_;  // the control connection that holds the open
  uint64_t open_id_ = 0;
  std::unique_ptr<PackExport> pack_;
  std::atomic<bool> written_{false};
};

}  // namespace vvm::plugin
