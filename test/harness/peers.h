// peers.h: the peers unit tests hand the daemons' request handlers, as the server would see them
// on its Unix socket.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "proto/server.h"

namespace vvm::test {

// A peer on the Unix socket with uid `uid` and gid `gid`, on connection `session` (a server
// numbers its connections from 1).
inline rpc::Peer unix_peer(uid_t uid, gid_t gid, uint64_t session = 1) {
  rpc::Peer p;
  p.kind = Endpoint::Kind::kUnix;
  p.uid = uid;
  p.gid = gid;
  p.session = session;
  return p;
}
// The same with the gid equal to the uid (root's 0, nobody's 65534).
inline rpc::Peer unix_peer(uid_t uid) { return unix_peer(uid, static_cast<gid_t>(uid)); }
// Root on the Unix socket: a peer that may do what only root and vvmd's user may.
inline rpc::Peer root_peer() { return unix_peer(0); }

}  // namespace vvm::test
