// copy/report.cc: sending COPY_REPORT to a copy's requester (copy/report.h).
#include "copy/report.h"

#include <fmt/core.h>

namespace vvm::mover {

Status ReportSender::send_once(const rpc::CopyReport& report) {
  if (!client_) {
    auto endpoint = Endpoint::parse(reply_to_);
    if (!endpoint.ok()) {
      return Status::InvalidArgument(
          fmt::format("reply_to '{}': {}", reply_to_, endpoint.status().message()));
    }
    auto client = rpc::Client::connect(*endpoint, timeout_, tls_);
    if (!client.ok()) return client.status();
    client_.emplace(std::move(*client));
  }
  auto reply = client_->call(report, timeout_);
  if (!reply.ok()) {
    client_.reset();  // a failed call leaves the connection closed (proto/client.h)
    return reply.status();
  }
  return Status::Ok();
}

Status ReportSender::send(const rpc::CopyReport& report) {
  Status first = send_once(report);
  // Only a lost connection is worth a second try: an error the requester sent would come back.
  if (first.code() != Code::kUnavailable) return first;
  return send_once(report);
}

rpc::CopyReport done_report(rpc::CopyReport base, uint64_t bytes, uint64_t checksum) {
  base.state = rpc::CopyState::kDone;
  base.bytes_done = bytes;
  base.checksum = checksum;
  base.failure = Status::Ok();
  return base;
}

rpc::CopyReport failed_report(rpc::CopyReport base, Status failure) {
  base.state = rpc::CopyState::kFailed;
  base.failure = std::move(failure);
  return base;
}

}  // namespace vvm::mover
