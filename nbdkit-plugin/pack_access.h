// pack_access.h: who may open a pack. Over a Unix socket the pack's owner, group and mode bits
// decide, against the peer's uid and groups (root may open anything); reading needs r, a writable
// export needs w as well. Over TCP the peer's address must match vvm.conf's [vvmd] allow-host
// when the plugin was given conf=; with packtab= alone nbdkit's own -i/-p decide who connects.
//
// Checked in .open, so a client that may not use a pack learns it at connect time.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/access.h"
#include "common/config.h"
#include "common/status.h"
#include "pack/packtab.h"

namespace vvm::plugin {

// The mode-bit rules live in client/common/access.h, shared with vvmd's VV checks.
using vvm::LocalPeer;
using vvm::mode_string;

// Ok, or PermissionDenied: "pack 'c': uid 1000 (gid 1000) may not open it read-write: its mode
// is rw-r----- for root:disk".
Status check_local_access(const PackEntry& pack, bool writable, const LocalPeer& peer);
// The same for a peer that messages name as `who` (a TLS identity: "identity alice (uid 1001,
// gid 1001)").
Status check_local_access(const PackEntry& pack, bool writable, const LocalPeer& peer,
                          const std::string& who);

// Ok, or PermissionDenied naming the address, for a TCP peer under `policy`.
Status check_host_access(const AccessPolicy& policy, const sockaddr* addr,
                         const std::string& address);

// The supplementary groups of a running process, from /proc/PID/status; empty if unreadable.
std::vector<gid_t> process_groups(pid_t pid);

}  // namespace vvm::plugin
