// mover_link.cc: see mover_link.h.
#include "sched/mover_link.h"

#include <optional>

#include <fmt/core.h>

#include "proto/client.h"

namespace vvm::vvmd {

MoverLink::MoverLink(Post post, std::chrono::milliseconds timeout, rpc::TlsClientSettings tls)
    : core_(std::make_shared<Core>()) {
  core_->post = std::move(post);
  core_->timeout = timeout;
  core_->tls = std::move(tls);
}

MoverLink::~MoverLink() { stop(); }

void MoverLink::call(const Endpoint& endpoint, rpc::RequestBody request, Done done) {
  const std::lock_guard lock(core_->mu);
  if (core_->stopping) return;
  auto& w = workers_[endpoint.to_string()];
  if (!w) {
    w = std::make_shared<Worker>();
    w->endpoint = endpoint;
    ++core_->running;
    w->thread = std::thread(work, core_, w);
  }
  w->jobs.push_back({std::move(request), std::move(done)});
  core_->cv.notify_all();
}

namespace {

// `done` for a request whose only good answer is a `Reply`: any other reply is a protocol error.
template <typename Reply>
MoverLink::Done expect(std::function<void(Result<Reply>)> done, rpc::Op op) {
  return [done = std::move(done), op](Result<rpc::ReplyBody> answer) {
    if (!answer.ok()) return done(answer.status());
    if (auto* reply = std::get_if<Reply>(&*answer)) return done(std::move(*reply));
    done(Status::ProtocolError(
        fmt::format("the mover answered {} with another reply", rpc::op_name(op))));
  };
}

}  // namespace

void MoverLink::archive(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) {
  call(mover, rpc::ArchiveRequest{args}, expect(std::move(done), rpc::Op::kArchive));
}

void MoverLink::stage(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) {
  call(mover, rpc::StageRequest{args}, expect(std::move(done), rpc::Op::kStage));
}

void MoverLink::verify(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) {
  call(mover, rpc::VerifyRequest{args}, expect(std::move(done), rpc::Op::kVerify));
}

void MoverLink::tape_copy(const Endpoint& mover, const rpc::TapeCopyRequest& request,
                          CopyDone done) {
  call(mover, request, expect(std::move(done), rpc::Op::kTapeCopy));
}

void MoverLink::cancel(const Endpoint& mover, const rpc::CancelRequest& request, CancelDone done) {
  call(mover, request, expect(std::move(done), rpc::Op::kCancel));
}

void MoverLink::ping(const Endpoint& mover, PingDone done) {
  call(mover, rpc::PingRequest{}, expect(std::move(done), rpc::Op::kPing));
}

void MoverLink::stop(std::chrono::milliseconds grace) {
  std::unique_lock lock(core_->mu);
  if (core_->stopping) return;
  core_->stopping = true;
  core_->cv.notify_all();
  core_->stopped.wait_for(lock, grace, [&] { return core_->running == 0; });
  for (auto& [name, w] : workers_) {
    if (!w->thread.joinable()) continue;
    if (w->ended) {
      w->thread.join();
    } else {
      // In a call to a mover that does not answer: it ends once the call times out, and then
      // touches only what it shares (core_, w), posting nothing.
      w->thread.detach();
    }
  }
}

void MoverLink::work(std::shared_ptr<Core> core, std::shared_ptr<Worker> w) {
  std::optional<rpc::Client> client;
  std::unique_lock lock(core->mu);
  for (;;) {
    core->cv.wait(lock, [&] { return core->stopping || !w->jobs.empty(); });
    if (core->stopping) break;
    Job job = std::move(w->jobs.front());
    w->jobs.pop_front();
    lock.unlock();
    Result<rpc::ReplyBody> answer = Status::Internal("not sent");
    if (!client) {
      auto c = rpc::Client::connect(w->endpoint, core->timeout, core->tls);
      if (c.ok()) {
        client.emplace(std::move(*c));
      } else {
        answer = c.status();
      }
    }
    if (client) {
      answer = client->call(job.request, core->timeout);
      // A transport failure closed the connection; a refusal (Busy, ...) leaves it usable.
      if (!answer.ok() && (answer.status().code() == Code::kUnavailable ||
                           answer.status().code() == Code::kTimeout ||
                           answer.status().code() == Code::kProtocolError)) {
        client.reset();
      }
    }
    lock.lock();
    // Posted under the lock: once stop() has returned, the loop that `post` feeds may be gone.
    if (core->stopping) break;
    core->post([done = std::move(job.done), answer = std::move(answer)]() mutable {
      done(std::move(answer));
    });
  }
  w->ended = true;
  --core->running;
  core->stopped.notify_all();
}

}  // namespace vvm::vvmd
