// mover_link.cc: see mover_link.h.
#include "sched/mover_link.h"

#include <optional>

#include <fmt/core.h>

#include "proto/client.h"

namespace vvm::vvmd {

MoverLink::MoverLink(Post post, std::chrono::milliseconds timeout, rpc::TlsClientSettings tls)
    : post_(std::move(post)), timeout_(timeout), tls_(std::move(tls)) {}

MoverLink::~MoverLink() { stop(); }

void MoverLink::call(const Endpoint& endpoint, rpc::RequestBody request, Done done) {
  const std::lock_guard lock(mu_);
  if (stopping_) return;
  auto& w = workers_[endpoint.to_string()];
  if (!w) {
    w = std::make_unique<Worker>();
    w->endpoint = endpoint;
    w->thread = std::thread([this, raw = w.get()] { work(raw); });
  }
  w->jobs.push_back({std::move(request), std::move(done)});
  cv_.notify_all();
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

void MoverLink::stop() {
  {
    const std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.notify_all();
  }
  for (auto& [name, w] : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void MoverLink::work(Worker* w) {
  std::optional<rpc::Client> client;
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !w->jobs.empty(); });
      if (stopping_) return;
      job = std::move(w->jobs.front());
      w->jobs.pop_front();
    }
    Result<rpc::ReplyBody> answer = Status::Internal("not sent");
    if (!client) {
      auto c = rpc::Client::connect(w->endpoint, timeout_, tls_);
      if (c.ok()) {
        client.emplace(std::move(*c));
      } else {
        answer = c.status();
      }
    }
    if (client) {
      answer = client->call(job.request, timeout_);
      // A transport failure closed the connection; a refusal (Busy, ...) leaves it usable.
      if (!answer.ok() && (answer.status().code() == Code::kUnavailable ||
                           answer.status().code() == Code::kTimeout ||
                           answer.status().code() == Code::kProtocolError)) {
        client.reset();
      }
    }
    post_([done = std::move(job.done), answer = std::move(answer)]() mutable {
      done(std::move(answer));
    });
  }
}

}  // namespace vvm::vvmd
