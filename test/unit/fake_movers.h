// fake_movers.h: movers for the scheduler's unit tests (scheduler_test, classes_test). A
// MoverPort that answers nothing by itself: each request waits in `pending` until the test
// answers it, so a test decides when and how every copy ends, with no thread and no socket.
#pragma once

#include <catch2/catch.hpp>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "common/config.h"
#include "sched/mover_port.h"

namespace vvm::test {

// Every request is kept in `sent`, in order. With `answer_pings`, a PING and a CANCEL are
// answered at once instead (a mover that never restarted and cancels nothing), for tests that
// follow the copies alone.
class FakeMovers : public vvmd::MoverPort {
 public:
  struct Request {
    std::string what;    // "archive", "stage", "verify", "tape-copy", "ping"
    std::string mover;   // its endpoint
    rpc::CopyArgs args;  // a tape copy's destination
    CopyDone copy_done;
    PingDone ping_done;
    std::string from_drive, from_vsn;  // a tape copy's source
    uint64_t from_file = 0;
  };

  explicit FakeMovers(bool answer_pings = false) : answer_pings_(answer_pings) {}

  void archive(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) override {
    add({"archive", mover.to_string(), args, std::move(done), {}});
  }
  void stage(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) override {
    add({"stage", mover.to_string(), args, std::move(done), {}});
  }
  void verify(const Endpoint& mover, const rpc::CopyArgs& args, CopyDone done) override {
    add({"verify", mover.to_string(), args, std::move(done), {}});
  }
  void tape_copy(const Endpoint& mover, const rpc::TapeCopyRequest& request,
                 CopyDone done) override {
    add({"tape-copy",
         mover.to_string(),
         request.to,
         std::move(done),
         {},
         request.from_drive,
         request.from_vsn,
         request.from_file});
  }
  void cancel(const Endpoint& mover, const rpc::CancelRequest& request, CancelDone done) override {
    if (answer_pings_) return done(Status::Unavailable("the fake movers cancel nothing"));
    cancels.push_back({mover.to_string(), request});
    cancel_done.push_back(std::move(done));
  }
  void ping(const Endpoint& mover, PingDone done) override {
    // An uptime of 2^40 ms: a mover that never restarted.
    if (answer_pings_) return done(rpc::PingReply{"vvmover", "m1", "vvm", uint64_t{1} << 40, {}});
    add({"ping", mover.to_string(), {}, {}, std::move(done)});
  }

  // The oldest unanswered request, which must be a `what`; removed from `pending`.
  Request take(const std::string& what) {
    REQUIRE_FALSE(pending.empty());
    Request r = std::move(pending.front());
    pending.pop_front();
    REQUIRE(r.what == what);
    return r;
  }

  std::deque<Request> pending;
  std::vector<Request> sent;  // without their `done`
  // CANCELs asked for (the mover's endpoint, the request), and their answers to give.
  std::vector<std::pair<std::string, rpc::CancelRequest>> cancels;
  std::vector<CancelDone> cancel_done;

 private:
  void add(Request r) {
    sent.push_back({r.what, r.mover, r.args, {}, {}, r.from_drive, r.from_vsn, r.from_file});
    pending.push_back(std::move(r));
  }

  bool answer_pings_;
};

}  // namespace vvm::test
