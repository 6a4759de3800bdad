// metrics/metrics.cc: a mover's counters on prometheus-cpp and its drives read at scrape time
// (metrics.h lists them).
#include "metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>

#include "copy/jobs.h"

namespace vvm::mover {
namespace {

std::string op_label(rpc::Op op) {
  if (op == rpc::Op::kArchive) return "archive";
  if (op == rpc::Op::kTapeCopy) return "tape-copy";
  return op == rpc::Op::kVerify ? "verify" : "stage";
}

}  // namespace

struct MoverMetrics::Impl {
  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>& copies =
      prometheus::BuildCounter()
          .Name("vvm_mover_copies_total")
          .Help("Copies this mover's children ended, by operation, drive and result")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& bytes =
      prometheus::BuildCounter()
          .Name("vvm_mover_copied_bytes_total")
          .Help(
              "Bytes this mover's copies moved between the cache and tape, by operation and drive")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& mounts =
      prometheus::BuildHistogram()
          .Name("vvm_mover_mount_duration_seconds")
          .Help("Time a copy took to mount its VSN in a drive (load, or open the image)")
          .Register(*registry);
};

MoverMetrics::MoverMetrics() = default;
MoverMetrics::MoverMetrics(std::shared_ptr<prometheus::Registry> registry)
    : impl_(new Impl{std::move(registry)}) {}
MoverMetrics::~MoverMetrics() = default;

void MoverMetrics::mounted(const std::string& drive, std::chrono::microseconds took) {
  if (!impl_) return;
  // Tape mounts take seconds to minutes; an emulated one, microseconds.
  impl_->mounts
      .Add({{"drive", drive}},
           prometheus::Histogram::BucketBoundaries{0.001, 0.01, 0.1, 1, 5, 10, 30, 60, 120, 300})
      .Observe(std::chrono::duration<double>(took).count());
}

void MoverMetrics::copy_ended(rpc::Op op, const std::string& drive, bool done, uint64_t bytes) {
  if (!impl_) return;
  impl_->copies.Add({{"op", op_label(op)}, {"drive", drive}, {"result", done ? "done" : "failed"}})
      .Increment();
  impl_->bytes.Add({{"op", op_label(op)}, {"drive", drive}}).Increment(static_cast<double>(bytes));
}

metrics::Families state_families(CopyJobs& jobs) {
  metrics::Families out;
  std::map<std::string, double> running{{"archive", 0}, {"stage", 0}};
  double busy = 0, idle = 0;
  out.gauge("vvm_mover_drive_busy", "1 while a copy runs in the drive");
  for (const CopyJobs::DriveUse& d : jobs.drives()) {
    out.add({{"drive", d.drive}, {"media", d.media}}, d.op ? 1 : 0);
    if (d.op) {
      ++busy;
      running[op_label(*d.op)] += 1;
    } else {
      ++idle;
    }
  }
  out.gauge("vvm_mover_drives", "This mover's drives by state: busy (a copy runs) or idle")
      .add({{"state", "busy"}}, busy)
      .add({{"state", "idle"}}, idle);
  out.gauge("vvm_mover_copies_running", "Copies running now, by operation");
  for (const auto& [op, n] : running) out.add({{"op", op}}, n);
  return out;
}

}  // namespace vvm::mover
