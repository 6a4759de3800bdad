// stage_queue.cc: see stage_queue.h.
#include "sched/stage_queue.h"

#include <algorithm>
#include <tuple>

namespace vvm::vvmd {

bool StageQueue::push(StageItem item) {
  if (auto it = where_.find(item.vv); it != where_.end()) {
    for (auto& [key, queued] : groups_[it->second]) {
      if (queued.vv != item.vv) continue;
      if (item.waiting) queued.waiting = true;
      if (!item.background) queued.background = false;  // someone else wants it too
    }
    return false;
  }
  where_[item.vv] = item.vsn;
  auto key = std::pair(item.file, item.vv);
  groups_[item.vsn].emplace(key, std::move(item));
  return true;
}

const StageItem* StageQueue::find(const std::string& vv) const {
  auto it = where_.find(vv);
  if (it == where_.end()) return nullptr;
  for (const auto& [key, item] : groups_.at(it->second)) {
    if (item.vv == vv) return &item;
  }
  return nullptr;
}

std::vector<std::string> StageQueue::vsns_by_priority(Clock::time_point now) const {
  struct Rank {
    bool waiting;
    Clock::time_point oldest;
    std::string vsn;
  };
  std::vector<Rank> ranks;
  for (const auto& [vsn, items] : groups_) {
    Rank r{false, Clock::time_point::max(), vsn};
    bool ready = false;
    for (const auto& [key, item] : items) {
      if (item.not_before > now) continue;
      ready = true;
      r.waiting = r.waiting || item.waiting;
      r.oldest = std::min(r.oldest, item.queued);
    }
    if (ready) ranks.push_back(std::move(r));
  }
  std::sort(ranks.begin(), ranks.end(), [](const Rank& a, const Rank& b) {
    return std::tie(b.waiting, a.oldest, a.vsn) < std::tie(a.waiting, b.oldest, b.vsn);
  });
  std::vector<std::string> out;
  for (auto& r : ranks) out.push_back(std::move(r.vsn));
  return out;
}

bool StageQueue::wants_media(const std::string& media, const std::function<bool(char)>& may) const {
  return std::any_of(groups_.begin(), groups_.end(), [&](const auto& g) {
    return !g.second.empty() && g.second.begin()->second.media == media &&
           (!may || may(g.second.begin()->second.vv_class)) &&
           std::any_of(g.second.begin(), g.second.end(),
                       [](const auto& i) { return !i.second.background; });
  });
}

std::optional<Clock::time_point> StageQueue::oldest(const std::string& vsn) const {
  auto it = groups_.find(vsn);
  if (it == groups_.end()) return std::nullopt;
  std::optional<Clock::time_point> out;
  for (const auto& [key, item] : it->second) {
    if (!out || item.queued < *out) out = item.queued;
  }
  return out;
}

std::optional<StageItem> StageQueue::pop(const std::string& vsn, Clock::time_point now) {
  auto it = groups_.find(vsn);
  if (it == groups_.end()) return std::nullopt;
  for (auto i = it->second.begin(); i != it->second.end(); ++i) {
    if (i->second.not_before > now) continue;
    StageItem item = std::move(i->second);
    it->second.erase(i);
    if (it->second.empty()) groups_.erase(it);
    where_.erase(item.vv);
    return item;
  }
  return std::nullopt;
}

size_t StageQueue::files(const std::string& vsn) const {
  auto it = groups_.find(vsn);
  return it == groups_.end() ? 0 : it->second.size();
}

uint64_t StageQueue::bytes(const std::string& vsn) const {
  uint64_t n = 0;
  if (auto it = groups_.find(vsn); it != groups_.end()) {
    for (const auto& [key, item] : it->second) n += item.bytes;
  }
  return n;
}

bool StageQueue::waiting(const std::string& vsn) const {
  auto it = groups_.find(vsn);
  if (it == groups_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(),
                     [](const auto& entry) { return entry.second.waiting; });
}

bool StageQueue::foreground(const std::string& vsn) const {
  auto it = groups_.find(vsn);
  if (it == groups_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(),
                     [](const auto& entry) { return !entry.second.background; });
}

char StageQueue::class_of(const std::string& vsn) const {
  auto it = groups_.find(vsn);
  if (it == groups_.end() || it->second.empty()) return 0;
  return it->second.begin()->second.vv_class;
}

std::string StageQueue::media_of(const std::string& vsn) const {
  auto it = groups_.find(vsn);
  if (it == groups_.end() || it->second.empty()) return "";
  return it->second.begin()->second.media;
}

}  // namespace vvm::vvmd
