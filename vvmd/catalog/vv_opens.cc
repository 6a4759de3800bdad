// vv_opens.cc: VV_OPEN and VV_CLOSE, and the open VVs; see vv_opens.h.
#include "catalog/vv_opens.h"

#include <algorithm>

#include <fmt/core.h>

#include "common/access.h"
#include "common/config.h"
#include "common/log.h"

namespace vvm::vvmd {

std::string describe_requester(const rpc::VvOpenRequest& r) {
  if (r.tcp) return "host " + r.host;
  return fmt::format("{} (gid {}) on {}", user_name(r.uid), r.gid, r.host);
}

Status VvOpens::check_requester(const rpc::Peer& peer, const rpc::VvOpenRequest& r) const {
  if (peer.kind == Endpoint::Kind::kTcp) return Status::Ok();  // vvmd's allow-host trusts it
  if (peer.uid == 0 || peer.uid == daemon_uid_) return Status::Ok();
  if (!r.tcp && r.uid == peer.uid && r.gid == peer.gid) return Status::Ok();
  return Status::PermissionDenied(
      fmt::format("{} may open VVs only as itself, not for {} (only root and vvmd's user may "
                  "speak for others)",
                  user_name(peer.uid), describe_requester(r)));
}

Result<rpc::VvOpenReply> VvOpens::open(const rpc::Peer& peer, const rpc::VvOpenRequest& req) {
  VVM_RETURN_IF_ERROR(check_requester(peer, req));
  auto vv = catalog_->show(req.name);
  if (!vv.ok()) return vv.status();

  ModeAccess may;
  if (req.tcp) {
    may = other_access(vv->perms);
  } else {
    // A name that no longer resolves matches nobody: only root, and the other bits, apply.
    auto owner = resolve_user(vv->owner);
    auto group = resolve_group(vv->group);
    LocalPeer local{req.uid, req.gid, {}};
    // A requester speaking for itself has no say in its groups: the system's list decides.
    if (peer.kind == Endpoint::Kind::kTcp || peer.uid == 0 || peer.uid == daemon_uid_) {
      local.groups.assign(req.groups.begin(), req.groups.end());
    }
    may = local_access(owner.ok() ? *owner : static_cast<uid_t>(-1),
                       group.ok() ? *group : static_cast<gid_t>(-1), vv->perms, local);
  }
  const std::string who = describe_requester(req);
  if (!may.read) {
    return Status::PermissionDenied(fmt::format("{} may not open VV {}: its mode is {} for {}:{}",
                                                who, vv->name, mode_string(vv->perms), vv->owner,
                                                vv->group));
  }

  rpc::VvOpenReply reply;
  reply.cache_path = catalog_->cache_path(vv->name);
  reply.writable = req.writable && may.write && vv->state == VvState::kHot;
  if (vv->cache != CacheState::kCached) {
    if (!req.use || !stage_) {
      // A probe (a listing, nbdkit's .open) never starts a stage.
      reply.not_ready = fmt::format("VV {} is {}: its first read or write stages it", vv->name,
                                    cache_state_name(vv->cache));
    } else {
      auto staging = stage_(vv->name);
      if (!staging.ok()) return staging.status();
      reply.not_ready = *staging;
    }
    reply.vv = std::move(*vv);
    return reply;
  }
  reply.ready = true;
  if (!req.use) {
    reply.vv = std::move(*vv);
    return reply;
  }
  if (reply.writable) {
    if (auto holder = writer_host(vv->name); holder && *holder != req.host) {
      return Status::Busy(
          fmt::format("VV {} is open for writing from {}: one writer host at a time (refused {}); "
                      "use it from {}, or once its writers there have closed it (a finished VV "
                      "may be read from any host)",
                      vv->name, *holder, who, *holder));
    }
  }
  auto accessed = catalog_->record_access(vv->name);
  if (!accessed.ok()) return accessed.status();
  reply.vv = std::move(*accessed);
  reply.open_id = next_id_++;
  opens_[reply.open_id] =
      Open{reply.open_id, vv->name, peer.session, reply.writable, req.host, who};
  by_vv_.emplace(vv->name, reply.open_id);
  by_session_.emplace(peer.session, reply.open_id);
  log::info("VV {} open {} {} for {} ({} open now)", vv->name, reply.open_id,
            reply.writable ? "read-write" : "read-only", who, opens_.size());
  return reply;
}

Result<Vv> VvOpens::close(const rpc::Peer& peer, const rpc::VvCloseRequest& req) {
  auto it = opens_.find(req.open_id);
  if (it == opens_.end() || it->second.session != peer.session) {
    return Status::NotFound(fmt::format("no VV open {} on this connection", req.open_id));
  }
  const Open open = it->second;
  forget(open.id);
  log::info("VV {} open {} closed by {} ({}; {} open now)", open.vv, open.id, open.who,
            req.written ? "written" : "not written", opens_.size());
  return catalog_->record_access(open.vv);
}

void VvOpens::forget(uint64_t id) {
  auto it = opens_.find(id);
  if (it == opens_.end()) return;
  for (auto [v, end] = by_vv_.equal_range(it->second.vv); v != end; ++v) {
    if (v->second == id) {
      by_vv_.erase(v);
      break;
    }
  }
  for (auto [c, end] = by_session_.equal_range(it->second.session); c != end; ++c) {
    if (c->second == id) {
      by_session_.erase(c);
      break;
    }
  }
  opens_.erase(it);
}

size_t VvOpens::drop_session(uint64_t session) {
  std::vector<uint64_t> ids;
  for (auto [c, end] = by_session_.equal_range(session); c != end; ++c) ids.push_back(c->second);
  for (uint64_t id : ids) {
    const Open& o = opens_.at(id);
    log::warning("VV {} open {} for {} forgotten: its control connection ended without closing it",
                 o.vv, id, o.who);
    forget(id);
  }
  return ids.size();
}

bool VvOpens::is_open(const std::string& name) const { return by_vv_.count(name) > 0; }

std::optional<std::string> VvOpens::writer_host(const std::string& name) const {
  for (auto [v, end] = by_vv_.equal_range(name); v != end; ++v) {
    const Open& o = opens_.at(v->second);
    if (o.writer) return o.host;
  }
  return std::nullopt;
}

std::vector<std::string> VvOpens::holders(const std::string& name) const {
  std::vector<std::string> who;
  for (auto [v, end] = by_vv_.equal_range(name); v != end; ++v) {
    who.push_back(opens_.at(v->second).who);
  }
  return who;
}

VvOpens::Serves VvOpens::serve(rpc::Server& server) {
  server.on_disconnect([this](uint64_t session) { drop_session(session); });
  return server.handle<rpc::VvOpenRequest>(
             [this](const rpc::VvOpenRequest& r, const rpc::Peer& peer) { return open(peer, r); }) +
         server.handle<rpc::VvCloseRequest>(
             [this](const rpc::VvCloseRequest& r, const rpc::Peer& peer) -> Result<rpc::VvReply> {
               auto closed = close(peer, r);
               if (!closed.ok()) return closed.status();
               return rpc::VvReply{.vv = std::move(*closed)};
             });
}

Status VvOpens::check_in_use(const std::string& name, bool for_write) const {
  for (auto [v, end] = by_vv_.equal_range(name); v != end; ++v) {
    const Open& o = opens_.at(v->second);
    if (for_write && !o.writer) continue;
    return Status::Busy(fmt::format("VV {} is open{} by {}: close it first", name,
                                    o.writer ? " for writing" : "", o.who));
  }
  return Status::Ok();
}

}  // namespace vvm::vvmd
