// archive_queue.h: the copies of finished VVs waiting to be written to tape, one queue per storage
// class and media type (a VV of class A, whose media are LTO9 and LTO8, waits in two queues: one
// copy on each), and the rule that says when a queue is worth mounting a tape for.
//
// Mounting costs a minute or more, so small VVs are not written one mount each: a queue is due
// when its bytes or files reach the batch thresholds or its oldest copy has waited the longest
// allowed (vvm.conf [vvmd] archive-batch-*). The scheduler writes at once, due or not, when a
// tape of the right type is already in a free drive. Plain data, no I/O: tested on its own.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vvm::vvmd {

using Clock = std::chrono::steady_clock;

struct ArchiveItem {
  std::string vv;   // "A0000000042"
  size_t copy = 0;  // which copy: the position of its media type in the class's list
  uint64_t bytes = 0;
  Clock::time_point queued{};      // when it was first queued: its age for the batch rule
  Clock::time_point not_before{};  // after a failure: not retried before this
  uint32_t attempts = 0;           // failed writes so far
  // A repack's move (sched/repack.cc): the copy exists at this place, which the new one
  // replaces; empty for a copy that does not exist yet. Due at once, whatever the batch rule.
  std::string from_vsn;
  uint64_t from_file = 0;
};

struct QueueKey {
  char vv_class = 'A';
  std::string media;  // "LTO9"
  auto operator<=>(const QueueKey&) const = default;
};

struct BatchPolicy {
  uint64_t bytes = 10ull << 30;
  uint32_t files = 100;
  std::chrono::seconds max_wait{600};
};

class ArchiveQueue {
 public:
  explicit ArchiveQueue(BatchPolicy policy) : policy_(policy) {}

  // Queues `item` at the back, unless that copy of that VV is queued already (recovery and a
  // retry may both offer it). Returns whether it was added.
  bool push(const QueueKey& key, ArchiveItem item);
  // At the front: a copy that failed through no fault of its own (its VSN filled up).
  bool push_front(const QueueKey& key, ArchiveItem item);

  // Worth a mount at `now`: the copies ready to go reach the byte or file threshold, or the
  // oldest of them has waited max_wait, or one is a repack's move (its source tape is read for
  // it now, and the cache holds what it read until it is written).
  bool due(const QueueKey& key, Clock::time_point now) const;
  // Whether the oldest copy ready at `now` has waited `min_age` (its class's archive-min-wait),
  // or one is a repack's move: only then is the queue worth a mount.
  bool aged(const QueueKey& key, Clock::time_point now, std::chrono::seconds min_age) const;
  // Whether a copy is ready to go at `now` (its not_before has passed).
  bool ready(const QueueKey& key, Clock::time_point now) const;
  // Removes and returns the first copy ready at `now`, in queue order.
  std::optional<ArchiveItem> pop(const QueueKey& key, Clock::time_point now);

  // The queues that hold copies, the one with the oldest copy first, so that a busy queue does
  // not keep a quieter one waiting for ever.
  std::vector<QueueKey> keys_oldest_first() const;

  struct Summary {
    QueueKey key;
    size_t files = 0;
    uint64_t bytes = 0;
    Clock::time_point oldest{};
  };
  std::vector<Summary> summary() const;
  size_t size() const { return index_.size(); }
  size_t files(const QueueKey& key) const {
    auto it = queues_.find(key);
    return it == queues_.end() ? 0 : it->second.items.size();
  }
  bool contains(const std::string& vv, size_t copy) const { return index_.contains({vv, copy}); }

 private:
  bool add(const QueueKey& key, ArchiveItem item, bool front);

  BatchPolicy policy_;
  struct Queue {
    std::deque<ArchiveItem> items;
    uint64_t bytes = 0;
  };
  std::map<QueueKey, Queue> queues_;
  std::map<std::pair<std::string, size_t>, QueueKey> index_;  // (vv, copy) queued
};

}  // namespace vvm::vvmd
