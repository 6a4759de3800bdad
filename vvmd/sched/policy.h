// sched/policy.h: the scheduler's fixed rules: pauses, budgets and attempt counts, shared by
// the scheduler's core, its archive and stage halves and its mover watch.
#pragma once

#include <chrono>
#include <cstdint>

#include "db/index.h"

namespace vvm::vvmd::policy {

// A VSN that failed this many copies is not chosen for writing until someone looks at it.
inline constexpr uint64_t kMaxVsnErrors = 3;
// Failed copies in a row after which vvmd takes a drive down (an operator brings it up again
// with vvctl drive up), and after which it makes a writable VSN read-only.
inline constexpr uint32_t kDriveErrorsInRow = 3;
inline constexpr uint32_t kVsnErrorsInRow = 3;
// How long a drive is set aside after its mover said Busy, and after its mover did not answer at
// all. Busy is mostly a race: a copy reports its end a moment before its mover reaps it and frees
// the drive, so the pause is short.
inline constexpr std::chrono::milliseconds kBusyPause{100};
inline constexpr std::chrono::seconds kDownPause{30};
// Beyond the mover's stall timeout, the time vvmd waits for a report before it gives up on a
// copy: the mover itself reports a stalled copy as failed after its stall timeout.
inline constexpr std::chrono::seconds kReportMargin{60};
// How often the movers running vvmd's copies are asked whether they are still there (and the
// same process): a mover that died took its copies with it, and they must be sent again.
inline constexpr std::chrono::seconds kMoverCheck{3};
// How long a stage waits before its tape is mounted, so that requests arriving together (a
// program opening many VVs) share one mount and are read in file order.
inline constexpr std::chrono::milliseconds kStageGather{1000};
// Reads of one tape in a row, while other tapes of its media type wait, before the drive may
// take another tape: a tape with a steady stream of requests does not keep the others waiting.
inline constexpr uint64_t kMountBudget = 64;
// Failed reads of one copy before the next copy is tried: checks (Mismatch), anything else.
inline constexpr uint32_t kBadCopyAttempts = 2;
inline constexpr uint32_t kFailedCopyAttempts = 3;
// How long a stage that failed on every copy is answered with its failure, not tried again.
inline constexpr std::chrono::seconds kFailedStageMemory{60};
// The same for a stage that failed because the cache filled or failed a write: shorter, since
// the cache manager makes room within seconds, and long enough for the clients that wait on it
// to hear.
inline constexpr std::chrono::seconds kFullCacheStageMemory{5};

// Copies of one repack on their way at once (staged, or being written): the cache holds no more
// VVs than this for it, and while one is written the next is read.
inline constexpr size_t kRepackWindow = 2;

// Evicted VVs staged or copied tape to tape at once for the copies their class gained
// (sched/classes.cc): the cache holds no more of them than this, archive writes get drives
// between them, and the source tapes are read in file order. How often that work is looked at,
// and how many of its VVs a look reads at most.
inline constexpr size_t kClassCopyWindow = 2;
inline constexpr std::chrono::milliseconds kClassCopyStep{1000};
inline constexpr size_t kClassCopyLook = 64;

// How often the scrub looks for a tape due for reading back, when none is being read: the look
// reads every tape's live copies and verify records, too much to do at every tick.
inline constexpr std::chrono::seconds kScrubCheck{60};

inline const db::KeyRange kEveryName = db::every_text_key();

}  // namespace vvm::vvmd::policy
