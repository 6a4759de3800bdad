// bench/latency_rows.h: what the etcd latency benches (etcd_latency.cc over the JSON gateway,
// etcd_latency_grpc.cc over gRPC) share: their command line (ENDPOINT [N] [--raw]), and how they
// report a row of latencies: a table line with p50, p99 and max in microseconds, or, with --raw,
// one line a sample ("ROUTE OP MICROSECONDS"), which bench/etcd-latency.sh gathers from rounds of
// both benches into one table.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

namespace vvm::bench {

// The benches' command line: ENDPOINT [N] [--raw], N at least 10 (default 300).
struct LatencyArgs {
  std::string endpoint;
  int n = 300;
  bool raw = false;
};

// The arguments, or nullopt after printing "usage: PROGRAM ENDPOINT_NAME [N] [--raw]".
inline std::optional<LatencyArgs> parse_latency_args(int argc, char** argv,
                                                     std::string_view program,
                                                     std::string_view endpoint_name) {
  std::vector<std::string> positional;
  LatencyArgs args;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--raw")
      args.raw = true;
    else
      positional.emplace_back(argv[i]);
  }
  if (positional.empty() || positional.size() > 2) {
    fmt::print(stderr, "usage: {} {} [N] [--raw]\n", program, endpoint_name);
    return std::nullopt;
  }
  args.endpoint = positional[0];
  if (positional.size() > 1) args.n = std::max(10, std::atoi(positional[1].c_str()));
  return args;
}

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
