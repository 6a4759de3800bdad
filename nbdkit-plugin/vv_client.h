// vv_client.h: the plugin's side of vvmd for the vv/NAME exports: the list of VVs for
// .list_exports, the probe of nbdkit's .open (VV_OPEN with use = false), and a control connection
// of its own for each NBD connection that uses a VV, so that vvmd forgets that connection's opens
// if nbdkit dies.
//
// Listings and probes share one connection to vvmd, under a lock, made again once after a
// failure (vvmd restarted). Free of nbdkit calls, like the rest of vvpack.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "proto/client.h"
#include "proto/messages.h"

namespace vvm::plugin {

inline constexpr std::string_view kVvPrefix = "vv/";

// "virtual volume, 10G, hot, cached": the export's description in listings and NBD_INFO.
std::string vv_description(const Vv& vv);

class VvmdLink {
 public:
  // `vvmd`: where vvmd listens (vvm.conf's first [vvmd] listen); `timeout` bounds each call.
  VvmdLink(Endpoint vvmd, std::chrono::milliseconds timeout)
      : vvmd_(std::move(vvmd)), timeout_(timeout) {}

  const Endpoint& endpoint() const { return vvmd_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Every VV, following VV_LIST's pages to the end.
  Result<std::vector<Vv>> list_all();
  // VV_OPEN with use = false: what vvmd would answer; changes nothing.
  Result<rpc::VvOpenReply> probe(rpc::VvOpenRequest request);
  // A new control connection, for one NBD connection's open and close.
  Result<rpc::Client> connect() const;

 private:
  // One call on the shared connection, connecting first if needed and once more if the
  // connection turns out to be dead.
  template <class R>
  Result<typename R::Reply> call(const R& request) {
    const std::lock_guard lock(mutex_);
    for (int attempt = 0;; ++attempt) {
      if (!shared_) {
        auto client = connect();
        if (!client.ok()) return client.status();
        shared_.emplace(std::move(*client));
      }
      auto reply = shared_->call(request, timeout_);
      // Unavailable: the connection died (vvmd restarted since the last call): one fresh try.
      if (reply.ok() || reply.status().code() != Code::kUnavailable) return reply;
      shared_.reset();
      if (attempt == 1) return reply;
    }
  }

  Endpoint vvmd_;
  std::chrono::milliseconds timeout_;
  std::mutex mutex_;
  std::optional<rpc::Client> shared_;
};

}  // namespace vvm::plugin
