// access.cc: mode-bit checks for packs and VVs; see access.h.
#include "common/access.h"

#include <algorithm>

namespace vvm {

namespace {

ModeAccess from_bits(mode_t bits) { return {(bits & 4) != 0, (bits & 2) != 0}; }

}  // namespace

ModeAccess local_access(uid_t owner, gid_t group, mode_t perms, const LocalPeer& peer) {
  if (peer.uid == 0) return {true, true};
  if (peer.uid == owner) return from_bits((perms >> 6) & 7);
  if (peer.gid == group ||
      std::find(peer.groups.begin(), peer.groups.end(), group) != peer.groups.end()) {
    return from_bits((perms >> 3) & 7);
  }
  return from_bits(perms & 7);
}

ModeAccess other_access(mode_t perms) { return from_bits(perms & 7); }

std::string mode_string(mode_t perms) {
  std::string s(9, '-');
  const char letters[] = "rwx";
  for (int i = 0; i < 9; ++i) {
    if (perms & (0400 >> i)) s[static_cast<size_t>(i)] = letters[i % 3];
  }
  return s;
}

}  // namespace vvm
