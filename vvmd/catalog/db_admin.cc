// db_admin.cc: vvctl db stats, db check and db backup; see db_admin.h.
#include "catalog/db_admin.h"

#include <filesystem>
#include <map>
#include <utility>

#include <fmt/core.h>

#include "catalog/tables.h"
#include "catalog/vv_names.h"
#include "common/config.h"
#include "common/log.h"

namespace vvm::vvmd {

namespace {

// The problems of a check, named one by one up to a limit, then counted.
class Problems {
 public:
  template <class... Args>
  void add(fmt::format_string<Args...> format, Args&&... args) {
    if (++count_ <= DbAdmin::kMaxProblems) {
      list_.push_back({fmt::format(format, std::forward<Args>(args)...)});
    }
  }
  std::vector<rpc::DbProblem> take() {
    if (count_ > DbAdmin::kMaxProblems) {
      list_.push_back({fmt::format("... and {} more problem(s)", count_ - DbAdmin::kMaxProblems)});
    }
    return std::move(list_);
  }

 private:
  size_t count_ = 0;
  std::vector<rpc::DbProblem> list_;
};

}  // namespace

rpc::DbStatsReply DbAdmin::stats() {
  const db::Database::Stats st = db_->stats();
  rpc::DbStatsReply reply;
  reply.dir = st.dir;
  for (const auto& t : st.tables) {
    rpc::DbTable table;
    table.file = t.file;
    table.name = std::filesystem::path(t.file).stem().string();  // "vv" for DIR/vv.tab
    table.records = t.records;
    table.slots = t.slots;
    table.free_slots = t.free_slots;
    table.record_size = t.record_size;
    reply.tables.push_back(std::move(table));
  }
  reply.journal_bytes = st.journal_used;
  reply.checkpoint_bytes = st.checkpoint_bytes;
  return reply;
}

rpc::DbCheckReply DbAdmin::check() {
  Problems problems;
  if (Status s = db_->verify(); !s.ok()) problems.add("indexes: {}", s.message());

  // Every record decodes; the VSNs by name, for the copies below.
  std::map<std::string, Vsn> vsns;
  Status scanned = db_->scan(kVsnTable, [&](uint64_t slot, const db::Values& v) {
    auto r = vsn_from_values(v);
    if (!r.ok()) return problems.add("VSN table slot {}: {}", slot, r.status().message());
    vsns.emplace(r->name, std::move(*r));
  });
  if (!scanned.ok()) problems.add("VSN table: {}", scanned.message());

  std::map<std::pair<std::string, uint64_t>, std::string> files;  // (VSN, file) -> VV
  std::map<char, uint64_t> highest;                               // serial by class
  scanned = db_->scan(kVvTable, [&](uint64_t slot, const db::Values& v) {
    auto r = vv_from_values(v);
    if (!r.ok()) return problems.add("VV table slot {}: {}", slot, r.status().message());
    if (!r->vv_class.empty()) {
      uint64_t& h = highest[r->vv_class[0]];
      h = std::max(h, r->serial);
    }
    for (size_t i = 0; i < r->copies.size(); ++i) {
      const VvCopy& c = r->copies[i];
      if (c.vsn.empty()) continue;
      auto vsn = vsns.find(c.vsn);
      if (vsn == vsns.end()) {
        problems.add("VV {}: copy {} is on VSN {}, which the VSN table does not hold", r->name,
                     i + 1, c.vsn);
        continue;
      }
      if (c.file == 0 || c.file >= vsn->second.next_file) {
        problems.add("VV {}: copy {} is file {} of VSN {}, whose files end before {}", r->name,
                     i + 1, c.file, c.vsn, vsn->second.next_file);
      }
      auto [at, fresh] = files.emplace(std::make_pair(c.vsn, c.file), r->name);
      if (!fresh) {
        problems.add("VV {}: copy {} is file {} of VSN {}, which VV {} holds too", r->name, i + 1,
                     c.file, c.vsn, at->second);
      }
    }
  });
  if (!scanned.ok()) problems.add("VV table: {}", scanned.message());

  // The marked tape files (bad, dead) lie on known VSNs, inside their files, and are no VV's
  // copy any more: a VV never points at a file found bad or given back.
  scanned = db_->scan(kCopyTable, [&](uint64_t slot, const db::Values& v) {
    auto m = copy_from_values(v);
    if (!m.ok()) return problems.add("copy table slot {}: {}", slot, m.status().message());
    auto vsn = vsns.find(m->vsn);
    if (vsn == vsns.end()) {
      return problems.add("{} copy of VV {} is on VSN {}, which the VSN table does not hold",
                          copy_mark_state_name(m->state), m->vv, m->vsn);
    }
    if (m->file == 0 || m->file >= vsn->second.next_file) {
      problems.add("{} copy of VV {} is file {} of VSN {}, whose files end before {}",
                   copy_mark_state_name(m->state), m->vv, m->file, m->vsn, vsn->second.next_file);
    }
    if (auto held = files.find({m->vsn, m->file}); held != files.end()) {
      problems.add("file {} of VSN {} is marked {} (VV {}), yet VV {} holds it as a copy", m->file,
                   m->vsn, copy_mark_state_name(m->state), m->vv, held->second);
    }
  });
  if (!scanned.ok()) problems.add("copy table: {}", scanned.message());

  // A serial handed out is never handed out again: each class's counter is at least its VVs'.
  for (const auto& [cls, serial] : highest) {
    auto count = counter(*db_, serial_counter(cls));
    if (!count.ok()) {
      problems.add("counter {}: {}", serial_counter(cls), count.status().message());
    } else if (*count < serial) {
      problems.add("counter {} is {}, below the serial of a VV of class {} ({})",
                   serial_counter(cls), *count, cls, serial);
    }
  }

  rpc::DbCheckReply reply;
  reply.stats = stats();
  reply.problems = problems.take();
  return reply;
}

Result<rpc::DbBackupReply> DbAdmin::backup(const rpc::Peer& peer, const std::string& dir) {
  if (peer.kind != Endpoint::Kind::kUnix) {
    return Status::PermissionDenied(fmt::format(
        "cannot back up the database for a TCP peer ({}): over TCP vvmd cannot tell who you are; "
        "use vvmd's Unix socket",
        peer.address));
  }
  if (peer.uid != 0 && peer.uid != daemon_uid_) {
    return Status::PermissionDenied(
        fmt::format("{} may not back up the database: only root and vvmd's user ({}) may",
                    user_name(peer.uid), user_name(daemon_uid_)));
  }
  if (dir.empty() || dir[0] != '/') {
    return Status::InvalidArgument(
        fmt::format("backup folder '{}': give an absolute path (vvmd writes it)", dir));
  }
  auto copied = db_->backup(dir);
  if (!copied.ok()) return copied.status();
  log::info("database backed up to {} ({} files, {} bytes) for {}", dir, copied->files,
            copied->bytes, peer.to_string());
  return rpc::DbBackupReply{dir, copied->files, copied->bytes};
}

DbAdmin::Serves DbAdmin::serve(rpc::Server& server) {
  return server.handle<rpc::DbStatsRequest>(
             [this](const rpc::DbStatsRequest&, const rpc::Peer&) -> Result<rpc::DbStatsReply> {
               return stats();
             }) +
         server.handle<rpc::DbCheckRequest>(
             [this](const rpc::DbCheckRequest&, const rpc::Peer&) -> Result<rpc::DbCheckReply> {
               return check();
             }) +
         server.handle<rpc::DbBackupRequest>(
             [this](const rpc::DbBackupRequest& r, const rpc::Peer& peer) {
               return backup(peer, r.dir);
             });
}

}  // namespace vvm::vvmd
