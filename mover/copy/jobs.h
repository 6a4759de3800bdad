// copy/jobs.h: the mover's side of ARCHIVE, STAGE, VERIFY (a stage that writes nothing) and
// TAPE_COPY (a tape file onto another tape, one child holding two drives): checking a request,
// starting the copy child (copy/child.h) that does it, and supervising those children.
//
// submit() checks the request against the configuration, the library and the jobs running, and
// answers at once: CopyAccepted{job, drive}, or the reason it cannot be done (Busy when no drive
// is free, or when the VSN or the stage's final file is taken by another job). The copy itself
// runs in a child process (posix_spawn of vvmover --copy-job), which reports to the requester.
//
// A supervisor thread watches the children: their event pipes (job_pipe.h; any event is a
// heartbeat) and their exits (a pidfd each, so that a child is reaped as soon as it exits). It
// kills (SIGKILL) a child silent for the mover's stall timeout and sends the FAILED report itself
// (Timeout), as it does for a child that dies without delivering its final report (IoError "copy
// process died: signal 9"). After a failed stage it removes the stage's temporary file if the child
// left one (copy.h: CACHE_DIR/.stage.NAME.XXXXXX). A drive is free again once its child is reaped.
// A child reports its end to the requester before it exits, so the requester's next request may
// come a moment before that: a request made while some child has told its result waits (a second at
// most) for such children to be reaped rather than being answered Busy. stop() kills every child,
// reports each as failed (Unavailable "mover stopping") and joins the thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "copy/job_pipe.h"
#include "metrics/metrics.h"
#include "proto/messages.h"

namespace vvm::mover {

class CopyJobs {
 public:
  // `config` is the whole vvm.conf; `mover` names this mover's [mover NAME] section.
  CopyJobs(Config config, std::string mover);
  ~CopyJobs();  // stop()s
  CopyJobs(const CopyJobs&) = delete;
  CopyJobs& operator=(const CopyJobs&) = delete;

  // Finds the program to run as the copy child (this executable) and starts the supervisor.
  Status start();
  // The ARCHIVE or STAGE handler's work: CopyAccepted, or the error reply.
  Result<rpc::CopyAccepted> submit(rpc::Op op, const rpc::CopyArgs& args);
  // The TAPE_COPY handler's: both tapes checked, a drive for each (the destination's named in
  // the answer), one child.
  Result<rpc::CopyAccepted> submit_tape_copy(const rpc::TapeCopyRequest& request);
  // The CANCEL handler's: kills verify job request.job (which must carry request.request_id);
  // the supervisor reports it failed (Unavailable, cancelled). NotFound for no such job,
  // InvalidArgument for one that is not a verify.
  Result<rpc::CancelReply> cancel(const rpc::CancelRequest& request);
  // Kills the running copies, reports them failed, waits for the supervisor. Idempotent.
  void stop();
  // From now on copies are counted there (mounts, ends, bytes); call before start().
  void count_with(MoverMetrics* metrics) { metrics_ = metrics; }
  // Each drive of the mover, in vvm.conf's order, and the operation running there if any: for
  // the metrics, from any thread.
  struct DriveUse {
    std::string drive, media;
    std::optional<rpc::Op> op;
  };
  std::vector<DriveUse> drives();

 private:
  struct Job {
    uint64_t id = 0;
    rpc::Op op = rpc::Op::kArchive;
    rpc::CopyArgs args;
    // A tape copy's source: its drive, tape and file (args is the destination).
    std::string from_drive, from_vsn;
    uint64_t from_file = 0;
    pid_t pid = -1;
    int event_fd = -1;  // the read end of its event pipe; -1 once at end of file
    int pid_fd = -1;    // readable once the child has exited; -1 without pidfds
    EventReader reader;
    std::chrono::steady_clock::time_point started, last_event;
    uint64_t bytes = 0;
    std::optional<JobEvent> result;    // the child's done or failed line
    std::optional<Status> killed;      // why the supervisor killed it
    std::optional<std::string> blame;  // a failed tape copy or stage: what the child blamed
  };

  // The drive for `args`, or why there is none; never `other` (a tape copy's other drive). Called
  // with mu_ held.
  Result<std::string> pick_drive(const rpc::CopyArgs& args, const std::string& media,
                                 const std::string& other = {}) const;
  // Checks a request's common fields and finds its tape's media type (the VOL label's), for
  // `what` ("archive", ...).
  Result<std::string> check_tape(const char* what, const std::string& vsn) const;
  // Starts the child for `job`. Called with mu_ held.
  Status spawn(Job& job, const DriveConfig& drive, uint32_t block_size);
  // Waits (a second at most) until no child that has told its result is left unreaped: their
  // drives and tapes are free a moment later. Called with mu_ held, through `lock`.
  void await_ending(std::unique_lock<std::mutex>& lock);
  void supervise();
  // Reads what job's pipe holds now (until EAGAIN or end of file).
  void drain(Job& job);
  // What to do once `job`'s child is reaped with wait status `wstatus`: log its end, and send
  // the final report if the child did not deliver one.
  void finish(Job& job, int wstatus);
  // Joins the report senders that are done (all of them, waiting, when `all`).
  void join_senders(bool all);

  Config config_;
  std::string mover_;
  std::chrono::seconds stall_timeout_;
  std::string exe_;  // this program, for the children

  std::mutex mu_;
  std::condition_variable reaped_;                 // the supervisor reaped children
  std::map<uint64_t, std::unique_ptr<Job>> jobs_;  // running, by id
  std::map<std::string, uint64_t> drive_jobs_;     // busy drive -> job
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  int wake_[2] = {-1, -1};  // a pipe that wakes the supervisor's poll()
  std::thread supervisor_;
  struct Sender {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  std::vector<Sender> senders_;  // the supervisor's alone
  MoverMetrics* metrics_ = nullptr;
};

}  // namespace vvm::mover
