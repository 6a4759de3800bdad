// cache_manager.h: vvmd's cache manager: keeps the disk cache below its high watermark by evicting
// archived VVs that nobody has open, least recently used first, down below the low watermark
// (DESIGN.md, "VV lifecycle", step 5), and evicts one VV when asked (VV_EVICT, vvctl evict).
//
// The cache's use: with [cache] size, the bytes that the files in the cache folder occupy
// (allocated blocks, so a sparse VV counts what it holds) over that size; without it, the use of
// the cache folder's filesystem as df shows it (used over used + available to users).
//
// Only an archived VV that is cached and that no NBD connection has open may go: a hot VV and a
// finished one not yet on every VSN have their only copy in the cache, an open one is being
// served, and a staging or evicted one has no whole file to drop. Evicting commits cache =
// evicted first, then, once that is durable, removes the file and fsyncs the folder: a crash in
// between leaves a file that no cached record claims (space, but harmless: a stage rewrites it),
// never a record that says cached with no file behind it.
//
// Runs on the server's thread, like the catalogue and the opens it consults: no locking. It does
// not wait there for the journal (db/committer.h): an eviction is applied at once, and its file
// removed and VV_EVICT answered back on that thread once durable.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/vv_opens.h"
#include "common/config.h"
#include "common/status.h"
#include "db/committer.h"
#include "db/database.h"
#include "metrics/metrics.h"
#include "proto/messages.h"
#include "proto/server.h"

namespace vvm::vvmd {

class CacheManager {
 public:
  struct Options {
    std::string cache_dir;
    std::optional<uint64_t> size;  // [cache] size; none: the filesystem's use
    int high_watermark = 90;       // percent
    int low_watermark = 70;
    std::chrono::milliseconds period{5000};  // between checks, while the server runs
    // Tests: called between an eviction's commit and the removal of its file.
    std::function<void(const std::string& vv)> after_commit;
    // What counts evictions (metrics/metrics.h); none: nothing is counted.
    Metrics* metrics = nullptr;
  };
  static Options options_from(const Config& config);

  struct Use {
    uint64_t used = 0;      // bytes
    uint64_t capacity = 0;  // bytes: [cache] size, or the filesystem's used + available
    double percent = 0;     // used over capacity, 0 to 100 (more when files outgrow `size`)
    bool sized = false;     // measured against [cache] size, not the filesystem
  };

  // What one check did, for logs and tests.
  struct Pass {
    Use before, after;
    std::vector<std::string> evicted;  // in the order they went
    uint64_t freed = 0;                // bytes
    bool stuck = false;   // above the low watermark with nothing left that may be evicted
    bool warned = false;  // this pass logged that (once until the use is fine again)
  };

  // `catalog` and `opens` outlive this.
  CacheManager(db::Database* db, Catalog* catalog, const VvOpens* opens, Options options)
      : db_(db), commits_(db), catalog_(catalog), opens_(opens), options_(std::move(options)) {}

  // The cache's use now.
  Result<Use> use() const;
  // Evicts in LRU order when the use is above the high watermark, until it is below the low one.
  Result<Pass> check();
  // VV_EVICT: evicts `name` now, whatever the watermarks, if `peer` may (its owner, root, vvmd's
  // user) and the VV may go (InvalidArgument for a hot or finished VV, Busy for an open or
  // staging one). An evicted VV is no error: the reply says `already`. Answers through `done`
  // once durable; evict() waits, and only works without a loop (finish_commits_on).
  using Done = std::function<void(Result<rpc::VvEvictReply>)>;
  void evict_async(const rpc::Peer& peer, const std::string& name, Done done);
  Result<rpc::VvEvictReply> evict(const rpc::Peer& peer, const std::string& name);
  // Where what waits for an eviction's durability runs: the server's thread (post). Without it
  // each eviction is committed and waited for in the caller (tests).
  void finish_commits_on(db::Committer::Post post) { commits_.run_on(std::move(post)); }

  // Registers VV_EVICT and the periodic check; this must outlive the server's run.
  rpc::Served<rpc::VvEvictRequest> serve(rpc::Server& server);

 private:
  // Bytes the cache file of `name` occupies on disk; 0 when there is none.
  uint64_t allocated(const std::string& name) const;
  // Marks the record at `slot` evicted (applied at once), then, once durable, removes its cache
  // file and calls `then`. `why` ends the log line ("to make room", "for uid 0 ...").
  void evict_record(uint64_t slot, Vv r, uint64_t bytes, std::string why,
                    std::function<void(Status)> then);

  db::Database* db_;
  db::Committer commits_;
  Catalog* catalog_;
  const VvOpens* opens_;
  Options options_;
  bool warned_stuck_ = false;  // the "nothing left to evict" warning, once until it clears
  std::string last_error_;     // a failing check is logged when its error changes
  uint64_t unlinking_ = 0;     // bytes of evictions applied whose files are not removed yet
};

}  // namespace vvm::vvmd
