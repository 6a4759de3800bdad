// job_pipe.h: what a copy child tells its parent mover, one text line per event, on the pipe the
// parent hands it as fd 4 (the "heartbeat" pipe):
//
//   progress BYTES            at the start (BYTES 0), then as the copy moves (at most 5 a second)
//   mounted MICROSECONDS      the VSN is mounted and its VOL label checked, in that time
//   done BYTES CHECKSUM       the copy succeeded; CHECKSUM in hex
//   failed CODE MESSAGE       the copy failed; CODE is Status's number, MESSAGE one line
//   blame VSN                 before a tape copy's or a stage's failed line: the tape to blame
//                             (the one read or the one written); empty: none (a stage whose
//                             cache file failed)
//
// The child writes its result line before it sends the final COPY_REPORT, so that a parent whose
// child could not deliver that report (or died right after the copy) can send it instead. Each
// line is one write() shorter than PIPE_BUF, so lines never interleave or arrive torn.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace vvm::mover {

// The descriptors the copy child finds open: the request (read to end of file) and the events.
inline constexpr int kRequestFd = 3;
inline constexpr int kEventFd = 4;

// The child's exit codes: 0 once its final report was delivered (the parent sends nothing),
// kExitUndelivered when it could not be (the parent retries with the child's result), and
// kExitUsage for a copy child started wrongly (by hand, say).
inline constexpr int kExitUndelivered = 3;
inline constexpr int kExitUsage = 2;

struct JobEvent {
  enum class Kind { kProgress, kDone, kFailed, kMounted, kBlame };
  Kind kind = Kind::kProgress;
  uint64_t bytes = 0;
  uint64_t checksum = 0;  // done
  Status failure;         // failed
  uint64_t micros = 0;    // mounted: how long the mount took
  std::string vsn;        // blame
};

// The line for `event`, with its '\n'.
std::string encode_event(const JobEvent& event);
// One line without its '\n'. ProtocolError for anything else.
Result<JobEvent> parse_event(std::string_view line);

// Cuts what the pipe delivers into lines, whatever the read sizes.
class EventReader {
 public:
  // Appends `data`; returns the events it completes (malformed lines come back as errors).
  std::vector<Result<JobEvent>> feed(std::string_view data);

 private:
  std::string pending_;
};

}  // namespace vvm::mover
