// db/committer.h: how a part of a daemon that runs on one event-loop thread hands the database a
// transaction without waiting on that thread for its fdatasync.
//
// Database::submit() applies a transaction at once and reports durability later, from the
// database's flusher thread, where little may be done (no commit(), nothing of the loop's state).
// A Committer pairs the two halves: the change is applied now, in the loop's order, so every read
// that follows sees it; what must wait for durability (a reply that promises it, a file removed
// once no record names it, a hook) runs back on the loop once the journal frame is durable. Many
// transactions of one loop thus share one fdatasync, and no request waits for another's.
//
// Without a loop (tests and tools, which have no thread to post to) it commits and waits, and
// the follow-up runs in the caller before commit() returns: the same code serves both.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "db/database.h"

namespace vvm::db {

class Committer {
 public:
  // Runs a task on the loop's thread, later (boost::asio::post, rpc::Server::post).
  using Post = std::function<void(std::function<void()>)>;
  // What follows a commit: the slots of its inserts, or why it was refused or is not durable.
  using Then = std::function<void(Result<std::vector<uint64_t>>)>;

  explicit Committer(Database* db) : db_(db) {}
  // From now on follow-ups run through `post`, after durability, and commit() never waits.
  void run_on(Post post) { post_ = std::move(post); }
  bool has_loop() const { return static_cast<bool>(post_); }

  // Applies `txn` now (or refuses it); `then` runs once it is durable or failed. With a loop
  // (and called on the loop's thread, as everything of its owner is):
  // a refusal calls `then` at once, in the caller, and a durable (or failed) frame posts `then`
  // to the loop. Without one: commit() waits and `then` runs before this returns.
  void commit(const Transaction& txn, Then then);
  // Applies `txn` now and does not wait for it: for changes nobody is told are durable (an
  // access time, a tape's mount, a state that recovery derives again after a crash). A refusal
  // is returned; a frame that later fails is logged, naming `what` (the database then refuses
  // every further change, and says why).
  Status apply(const Transaction& txn, std::string what);

  // The synchronous form of an operation that answers through a callback (`start(done)`): the
  // answer, which without a loop has come by the time `start` returns. With a loop it would come
  // later, on the very thread that would wait for it: Internal, naming `what`.
  template <class T, class Start>
  Result<T> answer_now(std::string_view what, Start start) {
    if (has_loop()) {
      return Status::Internal(std::string(what) + " called where commits finish on the loop");
    }
    std::optional<Result<T>> answer;
    start([&answer](Result<T> r) { answer.emplace(std::move(r)); });
    if (!answer) return Status::Internal(std::string(what) + " did not answer");
    return std::move(*answer);
  }

 private:
  Database* db_;
  Post post_;
};

}  // namespace vvm::db
