// pack_access.cc: pack permissions and the TCP allow-list; see pack_access.h.
#include "pack_access.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

namespace vvm::plugin {

std::string mode_string(mode_t perms) {
  std::string s(9, '-');
  const char letters[] = "rwx";
  for (int i = 0; i < 9; ++i) {
    if (perms & (0400 >> i)) s[static_cast<size_t>(i)] = letters[i % 3];
  }
  return s;
}

Status check_local_access(const PackEntry& pack, bool writable, const LocalPeer& peer) {
  if (peer.uid == 0) return Status::Ok();
  mode_t bits;
  if (peer.uid == pack.owner) {
    bits = (pack.perms >> 6) & 7;
  } else if (peer.gid == pack.group ||
             std::find(peer.groups.begin(), peer.groups.end(), pack.group) != peer.groups.end()) {
    bits = (pack.perms >> 3) & 7;
  } else {
    bits = pack.perms & 7;
  }
  const bool can_read = bits & 4, can_write = bits & 2;
  if (can_read && (can_write || !writable)) return Status::Ok();
  return Status::PermissionDenied(
      fmt::format("pack '{}': uid {} (gid {}) may not open it {}: its mode is {} for {}:{}{}",
                  pack.name, peer.uid, peer.gid, writable ? "read-write" : "read-only",
                  mode_string(pack.perms), user_name(pack.owner), group_name(pack.group),
                  writable && can_read ? " (pack/" + pack.name + "@ro reads it)" : ""));
}

Status check_host_access(const AccessPolicy& policy, const sockaddr* addr,
                         const std::string& address) {
  for (const auto& pattern : policy.allowed_hosts) {
    if (pattern.matches(addr)) return Status::Ok();
  }
  return Status::PermissionDenied(
      fmt::format("host {} is not in vvm.conf's [vvmd] allow-host list", address));
}

std::vector<gid_t> process_groups(pid_t pid) {
  std::vector<gid_t> groups;
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("Groups:")) continue;
    std::istringstream fields(line.substr(7));
    unsigned long g;
    while (fields >> g) groups.push_back(static_cast<gid_t>(g));
  }
  return groups;
}

}  // namespace vvm::plugin
