// bench/bench_common.h: what the control-protocol benchmarks share: giving up with a message, a
// connection that must succeed, percentiles of latencies, and a process's descriptors, memory and
// threads read from /proc.
#pragma once

#include <errno.h>
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "common/config.h"
#include "proto/client.h"

namespace vvm::bench {

// Ends the program with "PROGRAM: what".
[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, what.c_str());
  std::exit(1);
}

inline rpc::Client connect_or_die(const Endpoint& endpoint,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto c = rpc::Client::connect(endpoint, timeout);
  if (!c.ok()) die(c.status().message());
  return std::move(*c);
}

// The value below which a fraction `p` of `sorted` lies.
inline double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1,
                         static_cast<size_t>(p * static_cast<double>(sorted.size())))];
}

// What a process holds, from /proc/PID: open descriptors, resident memory, threads. All 0 when
// the process is gone.
struct ProcUse {
  size_t fds = 0;
  size_t rss_kib = 0;
  size_t threads = 0;
};

inline ProcUse proc_use(pid_t pid) {
  ProcUse use;
  const std::string dir = "/proc/" + std::to_string(pid);
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir + "/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++use.fds;
  }
  std::ifstream status(dir + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") status >> use.rss_kib;
    if (key == "Threads:") status >> use.threads;
    status.ignore(1 << 20, '\n');
  }
  return use;
}

}  // namespace vvm::bench
