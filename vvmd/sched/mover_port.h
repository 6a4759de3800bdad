// mover_port.h: what the scheduler asks of the movers, and how their answers come back: hand a
// copy (ARCHIVE: a VV's cache file onto a tape file; STAGE: a tape file back into the cache;
// TAPE_COPY: a tape file onto another tape, two drives of one mover) to a mover's drive, and ping a
// mover to learn whether it is there and since when.
//
// Each request gets one answer, through its `done`: the mover's reply (the copy accepted, with
// the mover's job number; the ping's reply, with the mover's uptime), or why not: Busy (the drive
// is in use), Unavailable or Timeout (the mover cannot be reached), any other code a refusal of
// the copy itself. `done` runs on the scheduler's thread and never inside the call that asked, so
// the scheduler may ask while it walks its own state. The end of an accepted copy does not come
// back here: the mover sends it to vvmd as a COPY_REPORT (Scheduler::report).
//
// MoverLink (mover_link.h) is the real one: a worker thread per mover and the answer posted to the
// server's thread. A test gives the scheduler a fake that holds the requests and answers them
// when the test says.
#pragma once

#include <functional>

#include "common/config.h"
#include "common/status.h"
#include "proto/messages.h"

namespace vvm::vvmd {

class MoverPort {
 public:
  using CopyDone = std::function<void(Result<rpc::CopyAccepted>)>;
  using PingDone = std::function<void(Result<rpc::PingReply>)>;

  virtual ~MoverPort() = default;

  // Asks the mover listening at `mover` to write a VV onto args.vsn at args.file_number in
  // args.drive (ARCHIVE).
  virtual void archive(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) = 0;
  // Asks it to read args.vsn's file args.file_number into args.cache_path (STAGE).
  virtual void stage(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) = 0;
  // Asks it to read args.vsn's file args.file_number back and check it, writing nothing (VERIFY).
  virtual void verify(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) = 0;
  // Asks it to copy tape file request.from_file of request.from_vsn onto request.to.vsn at
  // request.to.file_number, two of its drives (TAPE_COPY).
  virtual void tape_copy(const Endpoint& mover, const rpc::TapeCopyRequest& request,
                         CopyDone done) = 0;
  // Asks it to end running job request.job (a VERIFY) at once (CANCEL); the verify's failed
  // report follows.
  using CancelDone = std::function<void(Result<rpc::CancelReply>)>;
  virtual void cancel(const Endpoint& mover, const rpc::CancelRequest& request,
                      CancelDone done) = 0;
  // Asks it whether it is there (PING).
  virtual void ping(const Endpoint& mover, PingDone done) = 0;
};

}  // namespace vvm::vvmd
