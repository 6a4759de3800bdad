// connection.h: one client connection to a pack: its data path, who the client is, and the hold
// it takes on the pack at its first data command (never at open: NBD_OPT_INFO, which every
// `nbdinfo --list` sends, opens and closes each export and must not take or break a hold).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "pack_export.h"
#include "pack_holds.h"

namespace vvm::plugin {

// The hold a connection needs: read for a read-only export, else what the pack's mode says.
HoldKind hold_kind_for(const PackExport& pack);

class Connection {
 public:
  // `cluster_wide` false for another node's connection (HoldRegistry::acquire says why).
  Connection(std::unique_ptr<PackExport> pack, std::string identity, HoldRegistry* registry,
             bool cluster_wide = true)
      : pack_(std::move(pack)),
        identity_(std::move(identity)),
        kind_(hold_kind_for(*pack_)),
        registry_(registry),
        cluster_wide_(cluster_wide) {}
  ~Connection();  // ends the hold, if it was granted
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  PackExport& pack() { return *pack_; }
  const std::string& identity() const { return identity_; }
  HoldKind kind() const { return kind_; }

  // Takes the hold on the first call and returns the same answer to every later call, from any
  // thread. `*newly_refused` is set when this call is the one that found the refusal, so that
  // it is logged once, not on every command. A reference: this runs before every read and
  // write, and the answer never changes once given.
  const Status& ensure_hold(bool* newly_refused);

 private:
  std::unique_ptr<PackExport> pack_;
  std::string identity_;
  HoldKind kind_;
  HoldRegistry* registry_;
  bool cluster_wide_;
  std::atomic<bool> decided_{false};
  std::mutex mutex_;
  Status hold_;  // ok once granted, else why not
};

}  // namespace vvm::plugin
