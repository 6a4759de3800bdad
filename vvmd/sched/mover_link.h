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

  // Ends the workers; requests not yet sent are dropped without their `done`. Idempotent.
  void stop();

 private:
  struct Job {
    rpc::RequestBody request;
    Done done;
  };
  struct Worker {
    Endpoint endpoint;
    std::deque<Job> jobs;
    std::thread thread;
  };
  void work(Worker* w);

  Post post_;
  std::chrono::milliseconds timeout_;
  rpc::TlsClientSettings tls_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, std::unique_ptr<Worker>> workers_;  // by endpoint
};

}  // namespace vvm::vvmd
