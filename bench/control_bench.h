// bench/control_bench.h: what the control-protocol benches (bench_vvmd_load, bench_control_rate)
// share: connecting or ending the run with the reason, and percentiles of sorted samples.
#pragma once

#include <errno.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/config.h"
#include "proto/client.h"

namespace vvm::bench {

// A bench has no way to go on without its daemon: it says why, named as the program, and exits.
[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, what.c_str());
  std::exit(1);
}

inline rpc::Client connect(const Endpoint& endpoint) {
  auto c = rpc::Client::connect(endpoint, std::chrono::seconds(5));
  if (!c.ok()) die(c.status().message());
  return std::move(*c);
}

// The value below which a fraction `p` of `sorted` lies.
inline double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1,
                         static_cast<size_t>(p * static_cast<double>(sorted.size())))];
}

}  // namespace vvm::bench
