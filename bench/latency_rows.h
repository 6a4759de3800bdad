// bench/latency_rows.h: how the etcd latency benches (etcd_latency.cc over the JSON gateway,
// etcd_latency_grpc.cc over gRPC) report a row of latencies: a table line with p50, p99 and max
// in microseconds, or, with --raw, one line a sample ("ROUTE OP MICROSECONDS"), which
// bench/etcd-latency.sh gathers from rounds of both benches into one table.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

namespace vvm::bench {

class LatencyRows {
 public:
  explicit LatencyRows(bool raw) : raw_(raw) {
    if (!raw_)
      fmt::print("{:<48} {:>6} {:>10} {:>10} {:>10}\n", "operation (microseconds)", "n", "p50",
                 "p99", "max");
  }

  // One row: `route` and `op` name it for the script ("grpc", "put"), `label` for a reader.
  void add(std::string_view route, std::string_view op, std::string_view label,
           std::vector<double> us) const {
    if (us.empty()) return;
    if (raw_) {
      for (double v : us) fmt::print("{} {} {:.1f}\n", route, op, v);
      std::fflush(stdout);
      return;
    }
    std::sort(us.begin(), us.end());
    auto at = [&](double q) { return us[std::min(us.size() - 1, size_t(q * double(us.size())))]; };
    fmt::print("{:<48} {:>6} {:>10.0f} {:>10.0f} {:>10.0f}\n", label, us.size(), at(0.5), at(0.99),
               us.back());
    std::fflush(stdout);
  }

 private:
  bool raw_;
};

inline double micros(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

}  // namespace vvm::bench
