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

Result<std::vector<Vv>> VvmdLink::list_all() {
  std::vector<Vv> all;
  rpc::VvListRequest page;
  for (;;) {
    auto reply = call(page);
    if (!reply.ok()) return reply.status();
    for (auto& vv : reply->vvs) all.push_back(std::move(vv));
    if (!reply->more || reply->vvs.empty()) return all;
    page.after = all.back().name;
  }
}

Result<rpc::VvOpenReply> VvmdLink::probe(rpc::VvOpenRequest request) {
  request.use = false;
  return call(request);
}

}  // namespace vvm::plugin
