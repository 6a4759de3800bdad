// metrics/metrics.h: a mover's Prometheus metrics, all in one place: the counters its copy jobs
// move (MoverMetrics) and its drives read at each scrape (state_families).
//
// Counters (moved by the copy supervisor as children report, thread-safe):
//   vvm_mover_copies_total{op,drive,result}         op: archive or stage; result: done, failed
//   vvm_mover_copied_bytes_total{op,drive}          bytes a copy moved, done or not
//   vvm_mover_mount_duration_seconds{drive}         a copy's mount of its VSN (histogram)
// Read at scrape time (state_families), under the jobs' lock:
//   vvm_mover_drives{state}                         busy (a copy runs there) or idle
//   vvm_mover_drive_busy{drive,media}               1 while a copy runs there
//   vvm_mover_copies_running{op}
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/metrics.h"
#include "proto/messages.h"

namespace prometheus {
class Registry;
}

namespace vvm::mover {

class CopyJobs;

class MoverMetrics {
 public:
  MoverMetrics();  // counts nothing: a mover without metrics
  explicit MoverMetrics(std::shared_ptr<prometheus::Registry> registry);
  ~MoverMetrics();
  MoverMetrics(const MoverMetrics&) = delete;
  MoverMetrics& operator=(const MoverMetrics&) = delete;

  void mounted(const std::string& drive, std::chrono::microseconds took);
  void copy_ended(rpc::Op op, const std::string& drive, bool done, uint64_t bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The mover's drives and running copies as gauges; safe from any thread.
metrics::Families state_families(CopyJobs& jobs);

}  // namespace vvm::mover
