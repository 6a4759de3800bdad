// sched/mover_watch.cc: the scheduler's watch over movers running its copies: pings, and the
// copies of a mover that died or restarted sent again (sched/scheduler.h).
#include "sched/scheduler.h"

#include <fmt/core.h>
#include <fmt/format.h>

#include "common/log.h"

namespace vvm::vvmd {

void Scheduler::check_movers() {
  std::set<std::string> movers;
  for (const auto& [id, f] : in_flight_) movers.insert(f.mover);
  for (const std::string& name : movers) {
    auto m = config_.movers.find(name);
    if (m == config_.movers.end() || !pinging_.insert(name).second) continue;
    const auto asked = steady_now();
    movers_->ping(m->second.listen, [this, name, asked](Result<rpc::PingReply> answer) {
      pinging_.erase(name);
      const rpc::PingReply* ping = answer.ok() ? &*answer : nullptr;
      if (ping == nullptr) {
        // Once may be a hiccup; twice running, the mover and its copies are gone.
        if (++mover_misses_[name] < 2) return;
        lose_copies(name, asked,
                    Status::Unavailable(fmt::format("mover {} does not answer: {}", name,
                                                    answer.status().message())));
        return;
      }
      mover_misses_[name] = 0;
      // Copies sent before the mover (re)started died with its old self.
      const auto up_since = asked - std::chrono::milliseconds(ping->uptime_ms);
      lose_copies(name, up_since, Status::Unavailable(fmt::format("mover {} restarted", name)));
    });
  }
}

void Scheduler::lose_copies(const std::string& mover, Clock::time_point before, const Status& why) {
  std::vector<uint64_t> lost;
  for (const auto& [id, f] : in_flight_) {
    if (f.mover == mover && f.started < before) lost.push_back(id);
  }
  for (uint64_t id : lost) {
    InFlight f = std::move(in_flight_.at(id));
    in_flight_.erase(id);
    release_drives(f, /*unload=*/true);
    log::warning("copy {} of VV {} to {} (request {}) is lost: {}", f.item.copy + 1, f.item.vv,
                 f.vsn, id, why.message());
    // Not the copy's fault, nor the VSN's: it goes first in line again.
    retry(f, true);
  }
  if (!lost.empty()) wake();
}

}  // namespace vvm::vvmd
