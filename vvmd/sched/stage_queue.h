// stage_queue.h: evicted VVs waiting to be read back from tape, grouped by the VSN of the copy
// chosen for each and ordered by file number within a VSN (DESIGN.md, "VV lifecycle", step 6).
//
// Grouping is what makes N stages on M tapes cost M mounts: once a VSN is in a drive, every
// request for it is read in file order (one pass down the tape) before the drive takes another
// tape, unless other tapes wait and it has had its turn (the scheduler's kMountBudget reads). Which
// VSN is mounted next: one with a request a client waits for (an NBD open, `vvctl stage --wait`)
// before one without, then the one whose oldest request is oldest, so a busy tape never keeps a
// quiet one waiting for ever. Plain data, no I/O: tested on its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "sched/archive_queue.h"  // Clock

namespace vvm::vvmd {

struct StageItem {
  std::string vv;     // "A0000000042"
  char vv_class = 0;  // the VV's storage class: whose drives for reading its read counts on
  size_t copy = 0;    // the copy being read: its position in the VV's copies
  std::string vsn;    // that copy's VSN, and its tape file
  std::string media;  // the VSN's media type: which drives can read it
  uint64_t file = 0;
  uint64_t bytes = 0;
  bool waiting = false;  // a client waits for it
  // A repack's read (sched/repack.cc): it leaves the drives of its media type to archive writes,
  // which write what the repack read, so that reading and writing go on side by side.
  bool background = false;
  // A verify's read ("verify", "scrub": sched/verify.cc): the copy is read back and checked,
  // nothing written; such items wait in a queue of their own. Empty for a stage.
  std::string how;
  Clock::time_point queued{};      // when it was asked for
  Clock::time_point not_before{};  // after a failure
  uint32_t attempts = 0;           // failed reads of this copy
  std::set<size_t> bad_copies;     // copies that failed their checks: not tried again
};

class StageQueue {
 public:
  // Queues `item` unless its VV is queued already (then only `waiting` is raised). Returns
  // whether it was added.
  bool push(StageItem item);
  bool contains(const std::string& vv) const { return where_.contains(vv); }
  const StageItem* find(const std::string& vv) const;

  // The VSNs with a request ready at `now`, the next to mount first: waited-for before not,
  // then oldest request first.
  std::vector<std::string> vsns_by_priority(Clock::time_point now) const;
  // Whether any request (ready or not) other than a repack's needs a drive of `media`: archive
  // writes then leave those drives to the stages. With `may`, only requests of a class for which
  // it says yes (one not at its limit of drives) count.
  bool wants_media(const std::string& media, const std::function<bool(char)>& may = {}) const;
  // The storage class of `vsn`'s requests (a VSN holds one class's copies); 0 when none.
  char class_of(const std::string& vsn) const;
  // The oldest request for `vsn` (queued time), or nullopt when none.
  std::optional<Clock::time_point> oldest(const std::string& vsn) const;
  // Removes and returns `vsn`'s ready request with the lowest file number.
  std::optional<StageItem> pop(const std::string& vsn, Clock::time_point now);

  size_t size() const { return where_.size(); }
  size_t files(const std::string& vsn) const;
  uint64_t bytes(const std::string& vsn) const;
  bool waiting(const std::string& vsn) const;  // a client waits for one of its requests
  // Whether one of its requests (ready or not) is a client's, not background work's.
  bool foreground(const std::string& vsn) const;
  std::string media_of(const std::string& vsn) const;

 private:
  // vsn -> (file, vv) -> item. A VV is in one group at a time.
  std::map<std::string, std::map<std::pair<uint64_t, std::string>, StageItem>> groups_;
  std::map<std::string, std::string> where_;  // vv -> vsn
};

}  // namespace vvm::vvmd
