// vv_opens.h: the virtual volumes that NBD connections have open, as vvmd knows them, and the
// rules of VV_OPEN and VV_CLOSE (DESIGN.md, "VV lifecycle" and "Permissions").
//
// The nbdkit plugin probes at nbdkit's .open (use = false: an answer, no change: listings open
// every export), opens at a connection's first data command (use = true: the open is registered
// and counts as an access) and closes at .close (the access is recorded, the open forgotten).
//
//  - Reading needs r and writing w, by the owner, group and other bits for a Unix peer (root may
//    do anything; client/common/access.h). A TCP peer passed the plugin's allow-host check: its
//    host is its identity, and it gets the other bits.
//  - A peer with r but not w gets the VV read-only; a finished or archived VV is read-only for
//    everyone. Neither is an error: the reply says writable = false.
//  - A hot VV has one writer host at a time: a write open from another host is refused with
//    Busy, naming the VV and the holder. The same host may open it many times (multi-conn).
//  - An evicted or staging VV is not ready: the reply says why, nothing is registered, and the
//    plugin asks again. A use (never a probe) asks the stage hook to bring it back: a stage a
//    client waits for.
//  - Every open belongs to the control connection (rpc::Peer::session) it was made on: when that
//    connection ends, say because nbdkit was killed, its opens are forgotten.
//  - A control peer speaks for another user only if vvmd trusts it: root or vvmd's user on the
//    Unix socket, or a TCP peer (vvmd's allow-host). Anyone else may open only as itself.
//
// Runs on the server's thread, like the catalogue: no locking.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "common/status.h"
#include "proto/messages.h"
#include "proto/server.h"

namespace vvm::vvmd {

class VvOpens {
 public:
  struct Open {
    uint64_t id = 0;
    std::string vv;
    uint64_t session = 0;  // of the control connection it was made on
    bool writer = false;
    std::string host;  // where the NBD client is: a TCP peer's address, else nbdkit's host
    std::string who;   // "uid 1000 on storage1", "host 10.0.0.7", for messages
  };

  // `catalog` outlives this; `daemon_uid` is trusted like root to speak for other users.
  VvOpens(Catalog* catalog, uid_t daemon_uid) : catalog_(catalog), daemon_uid_(daemon_uid) {}

  Result<rpc::VvOpenReply> open(const rpc::Peer& peer, const rpc::VvOpenRequest& request);
  // NotFound unless `request.open_id` was opened on the peer's own session.
  Result<Vv> close(const rpc::Peer& peer, const rpc::VvCloseRequest& request);
  // Forgets the opens of a control connection that ended; returns how many there were.
  size_t drop_session(uint64_t session);

  // Whether any connection has VV `name` open (a VV that is open must never be evicted).
  bool is_open(const std::string& name) const;
  // The host that has `name` open for writing, if any.
  std::optional<std::string> writer_host(const std::string& name) const;
  // Busy, naming who has VV `name` open (for writing, with `for_write`), else Ok: the
  // catalogue's in-use check before a finish or a remove.
  Status check_in_use(const std::string& name, bool for_write) const;
  // Who has `name` open, one entry an open ("uid 1000 (gid 100) on storage1"), for messages.
  std::vector<std::string> holders(const std::string& name) const;
  // Opens registered now, for vvctl status.
  size_t count() const { return opens_.size(); }

  // Called by a use of a VV that is not in the cache: queues its stage (or finds it queued) and
  // says where it stands, or why it cannot be staged.
  void on_not_cached(std::function<Result<std::string>(const std::string& vv)> stage) {
    stage_ = std::move(stage);
  }

  // Registers VV_OPEN and VV_CLOSE and the server's disconnect hook; this must outlive the
  // server's run.
  using Serves = rpc::Served<rpc::VvOpenRequest, rpc::VvCloseRequest>;
  Serves serve(rpc::Server& server);

 private:
  Status check_requester(const rpc::Peer& peer, const rpc::VvOpenRequest& request) const;
  void forget(uint64_t id);  // an open closed or dropped, out of every index

  Catalog* catalog_;
  uid_t daemon_uid_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Open> opens_;  // by open id
  // The same opens by VV and by control connection: with thousands of VVs open, the cache
  // manager's pass asks is_open of every cached VV and the end of every control connection asks
  // for its opens; a scan of all the opens for each made those passes opens x VVs.
  std::multimap<std::string, uint64_t> by_vv_;
  std::multimap<uint64_t, uint64_t> by_session_;
  std::function<Result<std::string>(const std::string& vv)> stage_;
};

// "uid 1000 (gid 100) on storage1" or "host 10.0.0.7": the NBD peer an open speaks for.
std::string describe_requester(const rpc::VvOpenRequest& request);

}  // namespace vvm::vvmd
