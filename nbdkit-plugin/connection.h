// connection.h: one client connection to a pack: its data path, who the client is, and the hold
// it takes on the pack at its first data command (never at open: NBD_OPT_INFO, which every
// `nbdinfo --list` sends, opens and closes each export and must not take or break a hold).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "pack/packtab.h"
#include "pack_export.h"
#include "pack_holds.h"

namespace vvm::plugin {

// The hold a connection needs: read for a read-only export, else what the pack's mode says.
HoldKind hold_kind_for(const PackExport& pack);
HoldKind hold_kind_for(const PackEntry& pack, bool writable);

// A connection's hold on a pack, taken at the first call of ensure() and ended with the object.
// Used by a connection served from this node's disk (Connection) and by one this node forwards,
// whose pack has no backing here: the registry then keeps its rules and its cluster-wide record
// without locking a file (pack_holds.h).
class LazyHold {
 public:
  // `registry` null: no hold (another node's connection: see Connection).
  LazyHold(PackEntry pack, HoldKind kind, std::string identity, HoldRegistry* registry)
      : pack_(std::move(pack)), identity_(std::move(identity)), kind_(kind), registry_(registry) {}
  ~LazyHold();  // ends the hold, if it was granted
  LazyHold(const LazyHold&) = delete;
  LazyHold& operator=(const LazyHold&) = delete;

  const std::string& identity() const { return identity_; }
  HoldKind kind() const { return kind_; }

  // Takes the hold on the first call and returns the same answer to every later call, from any
  // thread. `*newly_refused` is set when this call is the one that found the refusal, so that
  // it is logged once, not on every command. A reference: this runs before every read and
  // write, and the answer never changes once given.
  const Status& ensure(bool* newly_refused);

 private:
  PackEntry pack_;
  std::string identity_;
  HoldKind kind_;
  HoldRegistry* registry_;
  std::atomic<bool> decided_{false};
  std::mutex mutex_;
  Status hold_;              // ok once granted, else why not
  uint64_t generation_ = 0;  // the registry's, when granted (HoldRegistry::rejoined)
};

class Connection {
 public:
  // `registry` null for another node's connection (pack/NAME@local), which takes no hold: that
  // node holds the pack for its own clients, here and cluster-wide, and keeps its connections
  // open while it has no client at all, so a hold of the connection would outlast every client
  // behind it and refuse this node's clients.
  Connection(std::unique_ptr<PackExport> pack, std::string identity, HoldRegistry* registry)
      : pack_(std::move(pack)),
        hold_(pack_->info().pack, hold_kind_for(*pack_), std::move(identity), registry) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  PackExport& pack() { return *pack_; }
  const std::string& identity() const { return hold_.identity(); }
  HoldKind kind() const { return hold_.kind(); }

  // LazyHold::ensure.
  const Status& ensure_hold(bool* newly_refused) { return hold_.ensure(newly_refused); }

 private:
  std::unique_ptr<PackExport> pack_;
  LazyHold hold_;  // declared after pack_: released before the pack closes
};

}  // namespace vvm::plugin
