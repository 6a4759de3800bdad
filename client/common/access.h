// access.h: owner, group and other mode bits: whether a local user may read or write a pack or a
// virtual volume (DESIGN.md, "Permissions"). The plugin checks packs with it, vvmd checks VVs:
// one rule for both.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace vvm {

// A user as a Unix socket shows it.
struct LocalPeer {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, when known
};

struct ModeAccess {
  bool read = false;
  bool write = false;
};

// What `perms` (owned by owner:group) lets `peer` do: the owner's bits for the owner, the group's
// for a member (primary or supplementary group), the others' for everyone else. Root may do
// anything.
ModeAccess local_access(uid_t owner, gid_t group, mode_t perms, const LocalPeer& peer);
// What the others' bits allow: for a peer known only by its host.
ModeAccess other_access(mode_t perms);

// "rw-r-----"
std::string mode_string(mode_t perms);

}  // namespace vvm
