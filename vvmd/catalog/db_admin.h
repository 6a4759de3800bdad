// db_admin.h: vvmd's database as an administrator sees it (vvctl db stats, db check, db backup):
// the use of its tables and journal; a check of the whole (every index against a full scan,
// every record decoded, every VV's copies against its VSNs, the marked (bad, dead) tape files
// against the VSNs and the VVs' copies, the serial counters against the VVs), each problem named;
// and a consistent copy, made while vvmd runs, that a vvmd opens as its database-dir.
//
// The check and the copy hold the database's lock while they read (changes wait meanwhile, for
// as long as a full scan or a copy of the table files takes); they run on the server's thread,
// as every handler does. Only root and vvmd's own user, over the Unix socket, may back up: the
// copy is written as vvmd's user, where the request says.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"
#include "db/database.h"
#include "proto/messages.h"
#include "proto/server.h"

namespace vvm::vvmd {

class DbAdmin {
 public:
  // The most problems one DB_CHECK reply names; the last then says how many more there were.
  static constexpr size_t kMaxProblems = 200;

  DbAdmin(db::Database* db, uid_t daemon_uid) : db_(db), daemon_uid_(daemon_uid) {}

  rpc::DbStatsReply stats();
  rpc::DbCheckReply check();
  Result<rpc::DbBackupReply> backup(const rpc::Peer& peer, const std::string& dir);

  using Serves = rpc::Served<rpc::DbStatsRequest, rpc::DbCheckRequest, rpc::DbBackupRequest>;
  Serves serve(rpc::Server& server);

 private:
  db::Database* db_;
  uid_t daemon_uid_;
};

}  // namespace vvm::vvmd
