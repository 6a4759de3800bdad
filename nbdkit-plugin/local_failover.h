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
//     must also flush the other node, which acknowledged writes too.
// Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>

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
  // Whether requests have gone to the other node since this object was made.
  bool used_other() const;

 private:
  mutable std::mutex m_;
  uint64_t acked_ = 0;    // writes acknowledged here without FUA, counted
  uint64_t durable_ = 0;  // acked_ as of the start of the last flush that succeeded here
  bool lost_ = false;
  bool used_other_ = false;
};

}  // namespace vvm::plugin
