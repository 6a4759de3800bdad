// local_failover.h: what a node must remember about a pack it serves from its own disk to keep
// NBD's durability promise when its path to the disk fails and its own clients' requests go to
// the pack's other node instead (the plugin's fallback: forward/forwarder.h over the route
// cluster_catalog.h gives).
//
// A write this node acknowledged without FUA may sit in its cache for the failed path and never
// reach the disk; the other node cannot flush it. So, per pack:
//   - writes acknowledged here without FUA since the last flush that succeeded here are counted;
//   - when the pack's requests first go to the other node with such writes outstanding, they may
//     be lost: the next flush (through the other node) fails with EIO, saying so, once, rather
//     than claiming them durable (as a Linux fsync reports a lost write-back once);
//   - once requests have gone to the other node, a flush served here again (the path mended)
//     must also flush the other node while it holds writes it acknowledged and has not flushed
//     (its forwarder's replay buffer knows: Forwarder::unflushed).
// A pack with a request pool (more nodes reach the same disk) also sends requests to the others
// while the path here works: this node is one server of the pool, its load the requests of its
// own clients being served from its disk (serving()), and a request goes to another server only
// when one has fewer outstanding (other_less_loaded). Nothing is lost that way (the disk here
// still has every write acknowledged here), but a flush here must flush those of the others
// holding writes not flushed yet, and only those.
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>

namespace vvm::plugin {

class LocalFailover {
 public:
  // A write, trim or zero acknowledged from this node's disk; `fua`: durable already.
  void acknowledged(bool fua);
  // A flush here is about to start: its ticket, for flushed().
  uint64_t flush_starting();
  // That flush succeeded: the writes acknowledged before it started are durable.
  void flushed(uint64_t ticket);
  // A request goes to the other node (the path here failed). The first such request after
  // writes were left unflushed here marks them possibly lost.
  void failing_over();
  // For a flush through the other node: true once after writes were marked lost (the flush must
  // fail, saying so), then false until it happens again.
  bool take_lost();
  // A request goes to another server of the pool by load, or to the pack's other servers
  // because this node is fenced, this node's path working: later flushes here must look at the
  // others (used_other()); nothing is marked lost.
  void sent_by_load();
  // Whether requests have gone to the other node since this object was made: whether a flush
  // here must ask its forwarder whether the others hold unflushed writes.
  bool used_other() const;

  // Counts one request of this node's own clients served from its disk, while it lives.
  class Serving {
   public:
    explicit Serving(std::atomic<uint64_t>& n) : n_(&n) { n_->fetch_add(1); }
    ~Serving() { n_->fetch_sub(1); }
    Serving(const Serving&) = delete;
    Serving& operator=(const Serving&) = delete;

   private:
    std::atomic<uint64_t>* n_;
  };
  Serving serving() { return Serving(serving_); }
  // The requests being served here now: this node's load as a server of the pool.
  uint64_t outstanding() const { return serving_.load(std::memory_order_relaxed); }

 private:
  mutable std::mutex m_;
  uint64_t acked_ = 0;    // writes acknowledged here without FUA, counted
  uint64_t durable_ = 0;  // acked_ as of the start of the last flush that succeeded here
  bool lost_ = false;
  bool used_other_ = false;
  std::atomic<uint64_t> serving_{0};
};

// Whether a request goes to another server of the pool rather than being served here: when the
// least loaded of the others (`least_other`: its requests outstanding; nullopt when none is
// healthy) has fewer than this node (`here`). Ties stay here: no network hop, and a client whose
// requests come one at a time is served here alone.
bool other_less_loaded(uint64_t here, std::optional<uint64_t> least_other);

}  // namespace vvm::plugin
