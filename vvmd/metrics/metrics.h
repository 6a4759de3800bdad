// metrics/metrics.h: vvmd's Prometheus metrics, all in one place: the counters that events move
// (Metrics, handed to the scheduler, the cache manager and the database) and the gauges read
// from state at each scrape (state_families).
//
// Counters (moved where the event happens, thread-safe):
//   vvm_archived_files_total{class,media}, vvm_archived_bytes_total{class,media}
//   vvm_staged_files_total{media}, vvm_staged_bytes_total{media}
//   vvm_copy_failures_total{op,vsn,drive}        op: archive or stage
//   vvm_evictions_total, vvm_evicted_bytes_total
//   vvm_db_commit_duration_seconds (histogram)   one journal frame written and synced
//   vvm_db_commit_group_size (histogram)         transactions that frame made durable
// Read at scrape time (state_families), on the server's thread:
//   vvm_archive_queue_files|bytes|oldest_age_seconds{class,media}  every pair of vvm.conf
//   vvm_stage_queue_files|bytes|oldest_age_seconds{media}          every media type
//   vvm_drives{state}        state: copying, loaded (a VSN, idle), empty, down (set aside)
//   vvm_drive_up{drive,mover,media}, vvm_mounts_total{drive,media}
//   vvm_cache_used_bytes, vvm_cache_capacity_bytes, vvm_cache_high|low_watermark_bytes
//   vvm_vvs{state}           state: hot, finished, archived (the database's indexes)
//   vvm_open_vvs             VVs an NBD connection has open
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/metrics.h"

namespace prometheus {
class Registry;
}

namespace vvm {
struct Config;
namespace db {
class Database;
}
}  // namespace vvm

namespace vvm::vvmd {

class Scheduler;
class VvOpens;
class CacheManager;

class Metrics {
 public:
  // Counts nothing: for tests and a vvmd without [vvmd] metrics.
  Metrics();
  explicit Metrics(std::shared_ptr<prometheus::Registry> registry);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // One that counts nothing, for parts given none.
  static Metrics& none();

  void archived(char vv_class, const std::string& media, uint64_t bytes);
  void staged(const std::string& media, uint64_t bytes);
  void copy_failed(std::string_view op, const std::string& vsn, const std::string& drive);
  void evicted(uint64_t bytes);
  void db_frame(std::chrono::duration<double> took, size_t transactions);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// vvmd's state as gauges: call on the server's thread (metrics::read_on_loop).
metrics::Families state_families(const Config& config, const Scheduler& scheduler,
                                 const VvOpens& opens, const CacheManager& cache, db::Database* db);

}  // namespace vvm::vvmd
