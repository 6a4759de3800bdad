// pack_access.cc: pack permissions and the TCP allow-list; see pack_access.h.
#include "pack_access.h"

#include <fstream>
#include <sstream>

#include <fmt/core.h>

namespace vvm::plugin {

Status check_local_access(const PackEntry& pack, bool writable, const LocalPeer& peer) {
  return check_local_access(pack, writable, peer,
                            fmt::format("uid {} (gid {})", peer.uid, peer.gid));
}

Status check_local_access(const PackEntry& pack, bool writable, const LocalPeer& peer,
                          const std::string& who) {
  const ModeAccess may = local_access(pack.owner, pack.group, pack.perms, peer);
  const bool can_read = may.read, can_write = may.write;
  if (can_read && (can_write || !writable)) return Status::Ok();
  return Status::PermissionDenied(fmt::format(
      "pack '{}': {} may not open it {}: its mode is {} for {}:{}{}", pack.name, who,
      writable ? "read-write" : "read-only", mode_string(pack.perms), user_name(pack.owner),
      group_name(pack.group), writable && can_read ? " (pack/" + pack.name + "@ro reads it)" : ""));
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
