// copy/report.h: delivering COPY_REPORT requests to a copy's requester (its `reply_to`).
//
// Both sides of a mover send them: the copy child (progress and its final report) and the parent
// (the final report of a child it killed or that died). One sender serves one job, keeping its
// connection between reports; a report that fails is tried once more on a fresh connection,
// since the requester (vvmd) may have restarted in between.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/config.h"
#include "common/status.h"
#include "proto/client.h"
#include "proto/messages.h"

namespace vvm::mover {

class ReportSender {
 public:
  // `tls`: how the mover proves itself to a tls: reply_to ([mover NAME] tls-client-*).
  explicit ReportSender(std::string reply_to, rpc::TlsClientSettings tls = {},
                        std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : reply_to_(std::move(reply_to)), tls_(std::move(tls)), timeout_(timeout) {}

  // Delivers `report`: Ok once the requester acknowledged it. Errors name the endpoint.
  Status send(const rpc::CopyReport& report);

 private:
  Status send_once(const rpc::CopyReport& report);

  std::string reply_to_;
  rpc::TlsClientSettings tls_;
  std::chrono::milliseconds timeout_;
  std::optional<rpc::Client> client_;
};

// A report's final form: DONE with where the data is, or FAILED with why.
rpc::CopyReport done_report(rpc::CopyReport base, uint64_t bytes, uint64_t checksum);
rpc::CopyReport failed_report(rpc::CopyReport base, Status failure);

}  // namespace vvm::mover
