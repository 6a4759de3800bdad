// library_view.h: vvmd's view of the tape library: the drives vvm.conf lists, which mover owns
// each, which VSN vvmd last mounted in each, and which are busy.
//
// Drives are the scarce resource, and a mount (a tape into a drive that held another one, or
// none) is the expensive step: the scheduler asks this view for a drive that already holds the
// VSN it wants before it mounts one, and counts mounts here. A mover loads the tape named in each
// copy request, so a request for the VSN already in the drive costs no robot move.
//
// A drive whose mover failed to answer, or answered Busy (someone else uses the drive), is set
// aside for a while rather than tried on every tick. Used on the server thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"
#include "sched/archive_queue.h"

namespace vvm::vvmd {

struct DriveState {
  std::string name;   // "d0"
  std::string mover;  // "m1"
  std::string media;  // "LTO9"
  Endpoint mover_endpoint;
  std::string vsn;                     // the VSN vvmd last mounted there; "" when empty
  bool busy = false;                   // a copy is running there, or being handed to its mover
  Clock::time_point unusable_until{};  // set aside after a failure of its mover
  uint64_t mounts = 0;
  uint64_t reads_since_mount = 0;  // stages read from the tape mounted now
  // Down (vvctl drive down, or vvmd after errors in a row): nothing is sent to it, and a tape
  // in it counts as in no drive.
  bool down = false;
  uint32_t errors_in_row = 0;  // failed copies since its last good one
};

class LibraryView {
 public:
  // Every [drive] of vvm.conf, in name order, with its mover's endpoint.
  explicit LibraryView(const Config& config);

  DriveState* find(const std::string& drive);
  // The drive vvmd last mounted `vsn` in, or nullptr (also when that drive is down).
  DriveState* holding(const std::string& vsn);
  // Drives of `media` that are neither down, busy nor set aside at `now`: empty drives first (a
  // mount there unloads nothing), then the others in name order.
  std::vector<DriveState*> free_drives(const std::string& media, Clock::time_point now);

  // Records that `vsn` is in `drive` for the next copy; it leaves any other drive. Returns true
  // when that is a mount: the drive held another tape or none.
  bool load(DriveState& drive, const std::string& vsn);
  // Forgets what `drive` holds (its mover restarted, or the copy failed in a way that leaves the
  // tape's position in doubt): the next request there counts as a mount.
  void unload(DriveState& drive) { drive.vsn.clear(); }

  uint64_t mounts() const { return mounts_; }
  const std::vector<DriveState>& drives() const { return drives_; }

 private:
  std::vector<DriveState> drives_;
  uint64_t mounts_ = 0;
};

}  // namespace vvm::vvmd
