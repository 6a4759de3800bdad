// vv_client.cc: listings, probes and control connections to vvmd; see vv_client.h.
#include "vv_client.h"

#include <fmt/core.h>

#include "common/size.h"

namespace vvm::plugin {

std::string vv_description(const Vv& vv) {
  return fmt::format("virtual volume, {}, {}, {}", format_size(vv.size), vv_state_name(vv.state),
                     cache_state_name(vv.cache));
}

Result<rpc::Client> VvmdLink::connect() const { return rpc::Client::connect(vvmd_, timeout_); }

Result<rpc::ReplyBody> VvmdLink::call(const rpc::RequestBody& body) {
  const std::lock_guard lock(mutex_);
  for (int attempt = 0;; ++attempt) {
    if (!shared_) {
      auto client = connect();
      if (!client.ok()) return client.status();
      shared_.emplace(std::move(*client));
    }
    auto reply = shared_->call(body, timeout_);
    // Unavailable: the connection died (vvmd restarted since the last call): one fresh try.
    if (reply.ok() || reply.status().code() != Code::kUnavailable) return reply;
    shared_.reset();
    if (attempt == 1) return reply;
  }
}

Result<std::vector<Vv>> VvmdLink::list_all() {
  std::vector<Vv> all;
  rpc::VvListRequest page;
  for (;;) {
    auto reply = call(page);
    if (!reply.ok()) return reply.status();
    auto* list = std::get_if<rpc::VvListReply>(&*reply);
    if (list == nullptr) return Status::ProtocolError("vvmd answered VV_LIST with something else");
    for (auto& vv : list->vvs) all.push_back(std::move(vv));
    if (!list->more || list->vvs.empty()) return all;
    page.after = all.back().name;
  }
}

Result<rpc::VvOpenReply> VvmdLink::probe(rpc::VvOpenRequest request) {
  request.use = false;
  auto reply = call(request);
  if (!reply.ok()) return reply.status();
  auto* open = std::get_if<rpc::VvOpenReply>(&*reply);
  if (open == nullptr) return Status::ProtocolError("vvmd answered VV_OPEN with something else");
  return std::move(*open);
}

}  // namespace vvm::plugin
