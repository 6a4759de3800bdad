// db/committer.cc: commits whose follow-up runs on the loop's thread once durable (committer.h).
#include "db/committer.h"

#include <memory>
#include <utility>

#include "common/log.h"

namespace vvm::db {

void Committer::commit(const Transaction& txn, Then then) {
  if (!post_) {
    then(db_->commit(txn));
    return;
  }
  // The slots are known once applied, the verdict once durable: the follow-up needs both.
  auto slots = std::make_shared<std::vector<uint64_t>>();
  auto pending = std::make_shared<Then>(std::move(then));
  auto applied = db_->submit(txn, [post = post_, slots, pending](Status durable) {
    post([slots, pending, durable = std::move(durable)] {
      if (!durable.ok()) return (*pending)(durable);
      (*pending)(std::move(*slots));
    });
  });
  if (!applied.ok()) return (*pending)(applied.status());
  // The flusher may have made the frame durable already, but its follow-up runs on the loop,
  // which is this thread (committer.h: called on the loop), so after this assignment.
  *slots = std::move(*applied);
}

Status Committer::apply(const Transaction& txn, std::string what) {
  auto applied = db_->submit(txn, [what = std::move(what)](Status durable) {
    if (!durable.ok()) log::error("{}: not durable: {}", what, durable.message());
  });
  return applied.status();
}

}  // namespace vvm::db
