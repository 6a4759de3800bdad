// metrics/metrics.cc: vvmd's counters on prometheus-cpp, and its state read as gauges at scrape
// time (metrics.h lists them).
#include "metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>

#include "cache/cache_manager.h"
#include "catalog/tables.h"
#include "catalog/vv_opens.h"
#include "common/config.h"
#include "db/database.h"
#include "sched/scheduler.h"

namespace vvm::vvmd {

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>& archived_files;
  prometheus::Family<prometheus::Counter>& archived_bytes;
  prometheus::Family<prometheus::Counter>& staged_files;
  prometheus::Family<prometheus::Counter>& staged_bytes;
  prometheus::Family<prometheus::Counter>& copy_failures;
  prometheus::Counter& evictions;
  prometheus::Counter& evicted_bytes;
  prometheus::Histogram& commit_seconds;
  prometheus::Histogram& commit_group;

  explicit Impl(std::shared_ptr<prometheus::Registry> r)
      : registry(std::move(r)),
        archived_files(counter("vvm_archived_files_total",
                               "Copies of VVs written to tape, by class and media type")),
        archived_bytes(counter("vvm_archived_bytes_total",
                               "Bytes of VVs written to tape, by class and media type")),
        staged_files(counter("vvm_staged_files_total", "VVs staged back from tape, by media type")),
        staged_bytes(
            counter("vvm_staged_bytes_total", "Bytes of VVs staged back from tape, by media type")),
        copy_failures(counter("vvm_copy_failures_total",
                              "Archive writes and stage reads that failed, by VSN and drive")),
        evictions(counter("vvm_evictions_total", "VVs evicted from the disk cache").Add({})),
        evicted_bytes(
            counter("vvm_evicted_bytes_total", "Bytes freed in the disk cache by evictions")
                .Add({})),
        commit_seconds(prometheus::BuildHistogram()
                           .Name("vvm_db_commit_duration_seconds")
                           .Help("Time to write and sync one journal frame of the database")
                           .Register(*registry)
                           .Add({}, metrics::latency_buckets())),
        commit_group(prometheus::BuildHistogram()
                         .Name("vvm_db_commit_group_size")
                         .Help("Transactions made durable by one journal frame (group commit)")
                         .Register(*registry)
                         .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64,
                                                                          128, 256, 512, 1024})) {}

  prometheus::Family<prometheus::Counter>& counter(const std::string& name,
                                                   const std::string& help) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(*registry);
  }
};

Metrics::Metrics() = default;
Metrics::Metrics(std::shared_ptr<prometheus::Registry> registry)
    : impl_(std::make_unique<Impl>(std::move(registry))) {}
Metrics::~Metrics() = default;

Metrics& Metrics::none() {
  static Metrics nothing;
  return nothing;
}

void Metrics::archived(char vv_class, const std::string& media, uint64_t bytes) {
  if (!impl_) return;
  const std::map<std::string, std::string> labels{{"class", std::string(1, vv_class)},
                                                  {"media", media}};
  impl_->archived_files.Add(labels).Increment();
  impl_->archived_bytes.Add(labels).Increment(static_cast<double>(bytes));
}

void Metrics::staged(const std::string& media, uint64_t bytes) {
  if (!impl_) return;
  impl_->staged_files.Add({{"media", media}}).Increment();
  impl_->staged_bytes.Add({{"media", media}}).Increment(static_cast<double>(bytes));
}

void Metrics::copy_failed(std::string_view op, const std::string& vsn, const std::string& drive) {
  if (!impl_) return;
  impl_->copy_failures.Add({{"op", std::string(op)}, {"vsn", vsn}, {"drive", drive}}).Increment();
}

void Metrics::evicted(uint64_t bytes) {
  if (!impl_) return;
  impl_->evictions.Increment();
  impl_->evicted_bytes.Increment(static_cast<double>(bytes));
}

void Metrics::db_frame(std::chrono::duration<double> took, size_t transactions) {
  if (!impl_) return;
  impl_->commit_seconds.Observe(took.count());
  impl_->commit_group.Observe(static_cast<double>(transactions));
}

metrics::Families state_families(const Config& config, const Scheduler& scheduler,
                                 const VvOpens& opens, const CacheManager& cache,
                                 db::Database* db) {
  metrics::Families out;
  const auto now = Clock::now();
  auto age = [now](Clock::time_point t) { return std::chrono::duration<double>(now - t).count(); };

  // Archive queues: every class and media pair vvm.conf has, so that an empty queue reads 0
  // rather than vanishing.
  struct Queue {
    double files = 0, bytes = 0, oldest = 0;
  };
  std::map<std::pair<std::string, std::string>, Queue> archive;
  for (const auto& [letter, cls] : config.classes) {
    for (const std::string& media : cls.media) archive[{std::string(1, letter), media}] = {};
  }
  for (const auto& q : scheduler.archive_queue().summary()) {
    Queue& a = archive[{std::string(1, q.key.vv_class), q.key.media}];
    a.files = static_cast<double>(q.files);
    a.bytes = static_cast<double>(q.bytes);
    a.oldest = q.files > 0 ? age(q.oldest) : 0;
  }
  auto archive_family = [&](const char* name, const char* help, double Queue::*field) {
    out.gauge(name, help);
    for (const auto& [key, q] : archive)
      out.add({{"class", key.first}, {"media", key.second}}, q.*field);
  };
  archive_family("vvm_archive_queue_files", "Copies waiting to be written to tape", &Queue::files);
  archive_family("vvm_archive_queue_bytes", "Bytes waiting to be written to tape", &Queue::bytes);
  archive_family("vvm_archive_queue_oldest_age_seconds",
                 "How long the oldest copy waiting to be written has waited (0: none waits)",
                 &Queue::oldest);

  // Stage queues, by the media type of the VSNs they read.
  std::map<std::string, Queue> stage;
  for (const auto& [name, media] : config.media) stage[name] = {};
  const StageQueue& stages = scheduler.stage_queue();
  for (const std::string& vsn : stages.vsns_by_priority(Clock::time_point::max())) {
    Queue& s = stage[stages.media_of(vsn)];
    s.files += static_cast<double>(stages.files(vsn));
    s.bytes += static_cast<double>(stages.bytes(vsn));
    if (auto oldest = stages.oldest(vsn)) s.oldest = std::max(s.oldest, age(*oldest));
  }
  auto stage_family = [&](const char* name, const char* help, double Queue::*field) {
    out.gauge(name, help);
    for (const auto& [media, q] : stage) out.add({{"media", media}}, q.*field);
  };
  stage_family("vvm_stage_queue_files", "VVs waiting to be staged back from tape", &Queue::files);
  stage_family("vvm_stage_queue_bytes", "Bytes waiting to be staged back from tape", &Queue::bytes);
  stage_family("vvm_stage_queue_oldest_age_seconds",
               "How long the oldest stage request has waited (0: none waits)", &Queue::oldest);

  // Drives, as vvmd's scheduler sees them.
  std::map<std::string, double> by_state{{"copying", 0}, {"loaded", 0}, {"empty", 0}, {"down", 0}};
  out.gauge("vvm_drive_up", "1 when the drive may take copies, 0 while its mover is set aside");
  for (const DriveState& d : scheduler.library().drives()) {
    const bool up = d.unusable_until <= now;
    out.add({{"drive", d.name}, {"mover", d.mover}, {"media", d.media}}, up ? 1 : 0);
    by_state[!up ? "down" : d.busy ? "copying" : !d.vsn.empty() ? "loaded" : "empty"] += 1;
  }
  out.gauge("vvm_drives", "Drives by state: copying, loaded (a VSN, idle), empty, down");
  for (const auto& [state, n] : by_state) out.add({{"state", state}}, n);
  out.counter("vvm_mounts_total", "VSNs mounted in each drive since vvmd started");
  for (const DriveState& d : scheduler.library().drives()) {
    out.add({{"drive", d.name}, {"media", d.media}}, static_cast<double>(d.mounts));
  }

  // The cache against its watermarks.
  if (auto use = cache.use(); use.ok()) {
    const double capacity = static_cast<double>(use->capacity);
    out.gauge("vvm_cache_used_bytes", "Bytes used in the disk cache")
        .add({}, static_cast<double>(use->used));
    out.gauge("vvm_cache_capacity_bytes",
              "Bytes of the disk cache ([cache] size, or its filesystem)")
        .add({}, capacity);
    out.gauge("vvm_cache_high_watermark_bytes",
              "Cache use above which archived VVs are evicted ([cache] high-watermark)")
        .add({}, capacity * config.high_watermark / 100.0);
    out.gauge("vvm_cache_low_watermark_bytes",
              "Cache use that evictions bring the cache down to ([cache] low-watermark)")
        .add({}, capacity * config.low_watermark / 100.0);
  }

  // VVs by state, from the database's indexes: no scan.
  const double all = static_cast<double>(db->live_count(kVvTable));
  auto hot = db->index_size(kVvTable, "hot");
  auto finished = db->index_size(kVvTable, "unwritten");
  if (hot.ok() && finished.ok()) {
    out.gauge("vvm_vvs", "Virtual volumes by state: hot, finished (not yet archived), archived")
        .add({{"state", "hot"}}, static_cast<double>(*hot))
        .add({{"state", "finished"}}, static_cast<double>(*finished))
        .add({{"state", "archived"}}, all - static_cast<double>(*hot + *finished));
  }
  out.gauge("vvm_open_vvs", "VVs that an NBD connection has open")
      .add({}, static_cast<double>(opens.count()));
  return out;
}

}  // namespace vvm::vvmd
