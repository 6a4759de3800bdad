// vv_export.cc: a connection's lazy open of a VV and its close; see vv_export.h.
#include "vv_export.h"

#include <fmt/core.h>

#include "common/access.h"

namespace vvm::plugin {

using Clock = std::chrono::steady_clock;

std::string read_only_reason(const rpc::VvOpenRequest& request, const rpc::VvOpenReply& probe,
                             const std::string& who) {
  if (!request.writable || probe.writable) return "";
  const Vv& vv = probe.vv;
  if (vv.state != VvState::kHot) {
    return fmt::format("VV {} is {}, and only a hot VV can be written", vv.name,
                       vv_state_name(vv.state));
  }
  return fmt::format("VV {} is hot, but its mode {} for {}:{} lets {} read it, not write it",
                     vv.name, mode_string(vv.perms), vv.owner, vv.group, who);
}

std::string read_only_note(const std::string& export_name, const std::string& reason) {
  return fmt::format(
      "{}: served read-only, and the client went away without a request, as a writer does when "
      "it finds the export read-only: {}; to read it, open it read-only (qemu-io -r, nbd-client "
      "-readonly)",
      export_name, reason);
}

VvConnection::VvConnection(VvmdLink* vvmd, rpc::VvOpenRequest request, rpc::VvOpenReply probe,
                           const std::string& who, Waiting waiting)
    : vvmd_(vvmd),
      request_(std::move(request)),
      probe_(std::move(probe)),
      waiting_(std::move(waiting)),
      export_name_(std::string(kVvPrefix) + request_.name),
      description_(vv_description(probe_.vv)),
      read_only_reason_(plugin::read_only_reason(request_, probe_, who)) {
  // What the probe allowed is what nbdkit was told (can_write): ask for no more at the use.
  request_.writable = probe_.writable;
}

VvConnection::~VvConnection() = default;

const Status& VvConnection::ensure_open(bool* newly_refused) {
  *newly_refused = false;
  if (decided_.load(std::memory_order_acquire)) return opened_;
  const std::lock_guard lock(mutex_);
  if (!decided_.load(std::memory_order_relaxed)) {
    opened_ = open_now();
    *newly_refused = !opened_.ok();
    decided_.store(true, std::memory_order_release);
  }
  return opened_;
}

Status VvConnection::open_now() {
  auto client = vvmd_->connect();
  if (!client.ok()) {
    return Status(client.status().code(), fmt::format("{}: cannot reach vvmd: {}", export_name_,
                                                      client.status().message()));
  }
  client_.emplace(std::move(*client));
  rpc::VvOpenRequest use = request_;
  use.use = true;
  const auto started = Clock::now();
  bool said_waiting = false;
  std::chrono::milliseconds next_nap{10};
  rpc::VvOpenReply reply;
  for (;;) {
    auto answer = client_->call(use, vvmd_->timeout());
    if (!answer.ok()) {
      if (said_waiting && waiting_.note) {
        waiting_.note(fmt::format("{}: vvmd refused it after the wait: {}", export_name_,
                                  answer.status().message()));
      }
      return Status(answer.status().code(),
                    fmt::format("{}: {}", export_name_, answer.status().message()));
    }
    if (answer->ready) {
      reply = std::move(*answer);
      break;
    }
    const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    if (waited >= waiting_.timeout) {
      const std::string why = fmt::format("{}: not ready after {} s: {}", export_name_,
                                          waiting_.timeout.count() / 1000, answer->not_ready);
      if (waiting_.note) waiting_.note(why);
      return Status::Timeout(why);
    }
    if (!said_waiting && waiting_.note) {
      waiting_.note(fmt::format("{}: waiting up to {} s: {}", export_name_,
                                waiting_.timeout.count() / 1000, answer->not_ready));
    }
    said_waiting = true;
    // Quick at first (a stage from a tape already in a drive takes a fraction of a second),
    // then every `poll`.
    next_nap = std::min(next_nap * 2, waiting_.poll);
    const auto nap = std::min(next_nap, waiting_.timeout - waited);
    if (waiting_.sleep && !waiting_.sleep(nap)) {
      return Status::Unavailable(export_name_ + ": the wait for vvmd was cut short (shutdown)");
    }
  }
  open_id_ = reply.open_id;
  if (said_waiting && waiting_.note) {
    const auto waited = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started);
    waiting_.note(fmt::format("{}: ready after {} s", export_name_, waited.count()));
  }
  // vvmd may have changed its mind since the probe (finished meanwhile): the use decides, but
  // never more than nbdkit was told at .open.
  const bool writable = reply.writable && probe_.writable;
  ExportInfo info;
  info.name = export_name_;
  info.description = description_;
  info.pack.name = reply.vv.name;
  info.pack.backing = reply.cache_path;
  info.pack.offset = 0;
  info.pack.size = probe_.vv.size;
  info.read_only = !writable;
  auto pack = PackExport::open(info, false);
  if (!pack.ok()) {
    Status failed = pack.status();
    (void)close();  // vvmd must not keep an open that will never be used
    return failed;
  }
  pack_ = std::move(*pack);
  return Status::Ok();
}

Status VvConnection::close() {
  if (!client_) return Status::Ok();
  Status result;
  if (open_id_ != 0) {
    const bool written = written_.load(std::memory_order_relaxed);
    auto reply = client_->call(rpc::VvCloseRequest{open_id_, written}, vvmd_->timeout());
    if (!reply.ok()) {
      result = Status(reply.status().code(),
                      fmt::format("{}: VV_CLOSE (open {}, {}): {}", export_name_, open_id_,
                                  written ? "written" : "not written", reply.status().message()));
    }
    open_id_ = 0;
  }
  client_.reset();  // vvmd forgets whatever this connection still held
  return result;
}

}  // namespace vvm::plugin
