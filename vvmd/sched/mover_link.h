// mover_link.h: how vvmd hands copy requests (ARCHIVE, STAGE) and pings to the movers without
// blocking its event loop: the MoverPort (mover_port.h) the scheduler uses in the daemon.
//
// A mover answers a copy request (and a PING) at once (accepted, or why not), but "at once" is a
// network round trip, and a mover that is down costs a connect timeout: so each mover gets a worker
// thread that sends its requests in order over one kept connection (reconnecting after a failure),
// and the answer is handed back to the server thread through `post`, where the scheduler's state
// lives. The copy's progress and end come later as COPY_REPORT requests to vvmd itself.
// A mover's tls: endpoint is reached with vvmd's own client credentials ([vvmd] tls-client-*),
// never the environment's, so that who vvmd is to a mover is vvm.conf's to say.
//
// A mover that accepts and never answers, or an address that drops connection attempts, holds
// its worker in a call for the request timeout; stop() does not wait for that (vvmd would take
// as long to stop): it leaves such a worker to end by itself, which then posts nothing. So a
// worker's state is shared with its thread, not owned by the MoverLink alone.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/config.h"
#include "common/status.h"
#include "proto/messages.h"
#include "proto/tls.h"
#include "sched/mover_port.h"

namespace vvm::vvmd {

class MoverLink : public MoverPort {
 public:
  using Post = std::function<void(std::function<void()>)>;
  using Done = std::function<void(Result<rpc::ReplyBody>)>;

  // `tls`: how vvmd proves itself to a mover's tls: endpoint.
  MoverLink(Post post, std::chrono::milliseconds timeout, rpc::TlsClientSettings tls = {});
  ~MoverLink() override;  // stop()s
  MoverLink(const MoverLink&) = delete;
  MoverLink& operator=(const MoverLink&) = delete;

  // Sends `request` (ARCHIVE, STAGE, PING) to the mover at `endpoint`; `done` gets the mover's
  // answer (or the transport's error: Unavailable, Timeout), run through `post`.
  void call(const Endpoint& endpoint, rpc::RequestBody request, Done done);

  // MoverPort: call() with the request, the answer checked to be the reply it expects.
  void archive(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) override;
  void stage(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) override;
  void verify(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) override;
  void tape_copy(const Endpoint& mover, const rpc::TapeCopyRequest& request,
                 CopyDone done) override;
  void cancel(const Endpoint& mover, const rpc::CancelRequest& request, CancelDone done) override;
  void ping(const Endpoint& mover, PingDone done) override;

  // Ends the workers; requests not yet sent are dropped without their `done`, and so is the
  // answer to one under way. Waits up to `grace` for the workers, then leaves those still in a
  // call to end by themselves, posting nothing. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(1));

 private:
  struct Job {
    rpc::RequestBody request;
    Done done;
  };
  // What the workers share with the MoverLink, kept alive by whichever ends last.
  struct Core {
    Post post;
    std::chrono::milliseconds timeout;
    rpc::TlsClientSettings tls;
    std::mutex mu;
    std::condition_variable cv;       // a job queued, or stopping
    std::condition_variable stopped;  // a worker ended
    bool stopping = false;
    size_t running = 0;  // workers not yet ended
  };
  struct Worker {
    Endpoint endpoint;
    std::deque<Job> jobs;
    bool ended = false;
    std::thread thread;
  };
  static void work(std::shared_ptr<Core> core, std::shared_ptr<Worker> w);

  std::shared_ptr<Core> core_;
  std::map<std::string, std::shared_ptr<Worker>> workers_;  // by endpoint, under core_->mu
};

}  // namespace vvm::vvmd
