// archive_queue.cc: see archive_queue.h.
#include "sched/archive_queue.h"

#include <algorithm>

namespace vvm::vvmd {

bool ArchiveQueue::add(const QueueKey& key, ArchiveItem item, bool front) {
  if (!index_.emplace(std::pair(item.vv, item.copy), key).second) return false;
  Queue& q = queues_[key];
  q.bytes += item.bytes;
  if (front) {
    q.items.push_front(std::move(item));
  } else {
    q.items.push_back(std::move(item));
  }
  return true;
}

bool ArchiveQueue::push(const QueueKey& key, ArchiveItem item) {
  return add(key, std::move(item), false);
}

bool ArchiveQueue::push_front(const QueueKey& key, ArchiveItem item) {
  return add(key, std::move(item), true);
}

bool ArchiveQueue::ready(const QueueKey& key, Clock::time_point now) const {
  auto it = queues_.find(key);
  if (it == queues_.end()) return false;
  return std::any_of(it->second.items.begin(), it->second.items.end(),
                     [now](const ArchiveItem& i) { return i.not_before <= now; });
}

bool ArchiveQueue::due(const QueueKey& key, Clock::time_point now) const {
  auto it = queues_.find(key);
  if (it == queues_.end()) return false;
  uint64_t bytes = 0;
  uint32_t files = 0;
  for (const ArchiveItem& i : it->second.items) {
    if (i.not_before > now) continue;
    bytes += i.bytes;
    ++files;
    if (now - i.queued >= policy_.max_wait || !i.from_vsn.empty()) return true;
  }
  return files > 0 && (bytes >= policy_.bytes || files >= policy_.files);
}

bool ArchiveQueue::aged(const QueueKey& key, Clock::time_point now,
                        std::chrono::seconds min_age) const {
  auto it = queues_.find(key);
  if (it == queues_.end()) return false;
  return std::any_of(it->second.items.begin(), it->second.items.end(), [&](const ArchiveItem& i) {
    return i.not_before <= now && (now - i.queued >= min_age || !i.from_vsn.empty());
  });
}

std::optional<ArchiveItem> ArchiveQueue::pop(const QueueKey& key, Clock::time_point now) {
  auto it = queues_.find(key);
  if (it == queues_.end()) return std::nullopt;
  auto& items = it->second.items;
  auto found = std::find_if(items.begin(), items.end(),
                            [now](const ArchiveItem& i) { return i.not_before <= now; });
  if (found == items.end()) return std::nullopt;
  ArchiveItem item = std::move(*found);
  items.erase(found);
  it->second.bytes -= item.bytes;
  index_.erase({item.vv, item.copy});
  if (items.empty()) queues_.erase(it);
  return item;
}

std::vector<ArchiveQueue::Summary> ArchiveQueue::summary() const {
  std::vector<Summary> out;
  for (const auto& [key, q] : queues_) {
    Summary s{key, q.items.size(), q.bytes, q.items.front().queued};
    for (const auto& i : q.items) s.oldest = std::min(s.oldest, i.queued);
    out.push_back(s);
  }
  return out;
}

std::vector<QueueKey> ArchiveQueue::keys_oldest_first() const {
  auto all = summary();
  std::stable_sort(all.begin(), all.end(),
                   [](const Summary& a, const Summary& b) { return a.oldest < b.oldest; });
  std::vector<QueueKey> keys;
  for (auto& s : all) keys.push_back(std::move(s.key));
  return keys;
}

}  // namespace vvm::vvmd
