// conf/reload.cc: see conf/reload.h.
#include "conf/reload.h"

#include <algorithm>
#include <csignal>
#include <set>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "common/log.h"
#include "common/vv.h"

namespace vvm::vvmd {

namespace {

std::string media_list(const std::vector<std::string>& media) {
  return media.empty() ? std::string("none") : fmt::format("{}", fmt::join(media, " "));
}

std::string endpoints(const std::vector<Endpoint>& list) {
  std::vector<std::string> out;
  for (const auto& e : list) out.push_back(e.to_string());
  return fmt::format("{}", fmt::join(out, " "));
}

std::string hosts(const AccessPolicy& p) {
  std::vector<std::string> out;
  for (const auto& h : p.allowed_hosts) out.push_back(h.text);
  return fmt::format("{} uids {} gids {}", fmt::join(out, " "), fmt::join(p.allowed_uids, " "),
                     fmt::join(p.allowed_gids, " "));
}

// What differs outside the classes and the new media types: each waits for a restart.
void restart_changes(const Config& a, const Config& b, std::vector<std::string>* out) {
  auto differ = [out](bool changed, std::string what) {
    if (changed) out->push_back(std::move(what));
  };
  differ(a.state_dir != b.state_dir, "[global] state-dir");
  differ(a.log_level != b.log_level || a.log_target != b.log_target, "[global] log");
  differ(endpoints(a.vvmd_listen) != endpoints(b.vvmd_listen), "[vvmd] listen");
  differ(hosts(a.vvmd_access) != hosts(b.vvmd_access), "[vvmd] allow-host, allow-uid, allow-group");
  differ(a.database_dir != b.database_dir, "[vvmd] database-dir");
  differ(a.idle_finish != b.idle_finish, "[vvmd] idle-finish");
  differ(a.request_timeout != b.request_timeout, "[vvmd] request-timeout");
  differ(a.archive_batch_bytes != b.archive_batch_bytes ||
             a.archive_batch_files != b.archive_batch_files ||
             a.archive_max_wait != b.archive_max_wait,
         "[vvmd] archive-batch-size, archive-batch-files, archive-max-wait");
  differ(a.scrub_interval != b.scrub_interval, "[vvmd] scrub-interval");
  differ(a.vvmd_metrics.has_value() != b.vvmd_metrics.has_value() ||
             (a.vvmd_metrics && a.vvmd_metrics->at.to_string() != b.vvmd_metrics->at.to_string()),
         "[vvmd] metrics");
  differ(a.vvmd_tls.psk_file != b.vvmd_tls.psk_file ||
             a.vvmd_tls.certificates != b.vvmd_tls.certificates ||
             a.vvmd_tls.verify_peer != b.vvmd_tls.verify_peer,
         "[vvmd] tls-*");
  differ(a.cache_dir != b.cache_dir, "[cache] dir");
  differ(a.high_watermark != b.high_watermark || a.low_watermark != b.low_watermark,
         "[cache] high-watermark, low-watermark");
  differ(a.cache_size != b.cache_size, "[cache] size");
  differ(a.library_kind != b.library_kind || a.library_path != b.library_path, "[library]");
  for (const auto& [name, m] : a.media) {
    auto it = b.media.find(name);
    if (it == b.media.end()) {
      out->push_back(fmt::format("media {} (removed)", name));
    } else if (it->second.capacity != m.capacity || it->second.block_size != m.block_size) {
      out->push_back(fmt::format("media {} (capacity, block-size)", name));
    }
  }
  for (const auto& [name, m] : a.movers) {
    auto it = b.movers.find(name);
    if (it == b.movers.end()) {
      out->push_back(fmt::format("mover {} (removed)", name));
    } else if (!(it->second.listen == m.listen) || it->second.drives != m.drives ||
               it->second.stall_timeout != m.stall_timeout) {
      out->push_back(fmt::format("mover {}", name));
    }
  }
  for (const auto& [name, m] : b.movers) {
    if (!a.movers.contains(name)) out->push_back(fmt::format("mover {} (new)", name));
  }
  for (const auto& [name, d] : a.drives) {
    auto it = b.drives.find(name);
    if (it == b.drives.end()) {
      out->push_back(fmt::format("drive {} (removed)", name));
    } else if (it->second.mover != d.mover || it->second.media != d.media ||
               it->second.device != d.device || it->second.emulated_rate != d.emulated_rate) {
      out->push_back(fmt::format("drive {}", name));
    }
  }
  for (const auto& [name, d] : b.drives) {
    if (!a.drives.contains(name)) out->push_back(fmt::format("drive {} (new)", name));
  }
  std::set<std::string> ids_a, ids_b;
  for (const auto& [name, i] : a.identities) ids_a.insert(name);
  for (const auto& [name, i] : b.identities) ids_b.insert(name);
  differ(ids_a != ids_b, "[identity] sections");
}

}  // namespace

Result<ReloadPlan> plan_reload(const Config& live, const Config& next, const ReloadFacts& facts) {
  ReloadPlan plan;
  plan.media = live.media;
  std::vector<std::string> refused;
  auto at = [&](const StorageClass& c) { return fmt::format("{}:{}", next.path, c.line); };

  // New media types first: a class may list one the same reload brings.
  for (const auto& [name, m] : next.media) {
    if (live.media.contains(name)) continue;
    plan.media[name] = m;
    plan.applied.push_back(fmt::format("media {}: new ({} bytes a tape)", name, m.capacity));
  }
  for (const auto& [letter, c] : next.classes) {
    auto old = live.classes.find(letter);
    const std::vector<std::string> before =
        old == live.classes.end() ? std::vector<std::string>{} : old->second.media;
    if (c.media.size() > kMaxVvCopies) {
      refused.push_back(
          fmt::format("{}: class {}: {} media types, but a VV holds at most {} copies", at(c),
                      letter, c.media.size(), kMaxVvCopies));
      continue;
    }
    for (const std::string& m : c.media) {
      if (std::find(before.begin(), before.end(), m) != before.end()) continue;
      // Drives change only with a restart: the running ones must take the new type.
      const bool drive = std::any_of(live.drives.begin(), live.drives.end(),
                                     [&](const auto& d) { return d.second.media == m; });
      if (!drive) {
        std::string later;
        for (const auto& [name, d] : next.drives) {
          if (d.media == m)
            later = fmt::format(
                " (drive {} in the file takes it: drives change "
                "only with a restart)",
                name);
        }
        refused.push_back(fmt::format("{}: class {}: no drive of vvmd's movers takes media {}{}",
                                      at(c), letter, m, later));
        continue;
      }
      if (!facts.has_tape_for(letter, m)) {
        refused.push_back(fmt::format(
            "{}: class {}: no tape of media {} may take its copies (add a blank one first: "
            "'vvctl vsn add VSN --media {}')",
            at(c), letter, m, m));
      }
    }
    if (old == live.classes.end()) {
      plan.applied.push_back(fmt::format("class {}: new, media {}", letter, media_list(c.media)));
      continue;
    }
    const StorageClass& o = old->second;
    if (o.media != c.media) {
      plan.applied.push_back(fmt::format("class {}: media {} (was {})", letter, media_list(c.media),
                                         media_list(o.media)));
    }
    if (o.read_max_drives != c.read_max_drives || o.write_max_drives != c.write_max_drives) {
      plan.applied.push_back(fmt::format(
          "class {}: read-max-drives {}, write-max-drives {} (was "
          "{}, {}; 0: no limit)",
          letter, c.read_max_drives, c.write_max_drives, o.read_max_drives, o.write_max_drives));
    }
    if (o.archive_min_wait != c.archive_min_wait) {
      plan.applied.push_back(fmt::format("class {}: archive-min-wait {} s (was {} s)", letter,
                                         c.archive_min_wait.count(), o.archive_min_wait.count()));
    }
    if (o.description != c.description) {
      plan.applied.push_back(fmt::format("class {}: description", letter));
    }
  }
  for (const auto& [letter, o] : live.classes) {
    if (next.classes.contains(letter)) continue;
    auto vvs = facts.vvs_of_class(letter);
    if (!vvs.ok()) return vvs.status();
    if (*vvs > 0) {
      refused.push_back(fmt::format("{}: class {} is gone from the file, but {} VV(s) of it exist",
                                    next.path, letter, *vvs));
      continue;
    }
    plan.applied.push_back(fmt::format("class {}: removed (it had no VVs)", letter));
  }
  if (!refused.empty()) {
    return Status::InvalidArgument(fmt::format("{}", fmt::join(refused, "\n")));
  }
  plan.classes = next.classes;
  plan.classes_changed = !plan.applied.empty();
  restart_changes(live, next, &plan.restart);
  return plan;
}

Result<rpc::ReloadReply> Reloader::reload(const std::string& by) {
  const std::string path = live_->path;
  auto next = load_config(path);
  if (!next.ok()) {
    log::error("reload ({}): refused, the running configuration stays: {}", by,
               next.status().message());
    return Status::InvalidArgument(fmt::format(
        "reload refused, the running configuration stays: {}", next.status().message()));
  }
  auto plan = plan_reload(*live_, *next, facts_);
  if (!plan.ok()) {
    log::error("reload of {} ({}): refused, the running configuration stays: {}", path, by,
               plan.status().message());
    return Status::InvalidArgument(fmt::format(
        "reload refused, the running configuration stays:\n{}", plan.status().message()));
  }
  live_->media = plan->media;
  live_->classes = plan->classes;
  rpc::ReloadReply reply;
  reply.path = path;
  for (const auto& line : plan->applied) reply.applied.push_back({line});
  for (const auto& line : plan->restart) reply.restart.push_back({line});
  log::notice("reload of {} ({}): applied: {}; waiting for a restart: {}", path, by,
              plan->applied.empty() ? std::string("nothing changed")
                                    : fmt::format("{}", fmt::join(plan->applied, "; ")),
              plan->restart.empty() ? std::string("nothing")
                                    : fmt::format("{}", fmt::join(plan->restart, "; ")));
  if (plan->classes_changed && changed_) changed_(*live_);
  return reply;
}

rpc::Served<rpc::ReloadRequest> Reloader::serve(rpc::Server& server) {
  server.on_signal(SIGHUP, [this] { (void)reload("SIGHUP"); });
  return server.handle<rpc::ReloadRequest>(
      [this](const rpc::ReloadRequest&, const rpc::Peer& peer) -> Result<rpc::ReloadReply> {
        if (peer.kind != Endpoint::Kind::kUnix) {
          return Status::PermissionDenied(fmt::format(
              "cannot reload for a TCP peer ({}): over TCP vvmd cannot tell who you are; use "
              "vvmd's Unix socket",
              peer.address));
        }
        if (peer.uid != 0 && peer.uid != daemon_uid_) {
          return Status::PermissionDenied(
              fmt::format("{} may not reload vvmd: only root and vvmd's user ({}) may",
                          user_name(peer.uid), user_name(daemon_uid_)));
        }
        return reload(user_name(peer.uid));
      });
}

}  // namespace vvm::vvmd
