// bench/vvmd_load.cc: the load driver of bench/vvmd-load.sh. Against one running vvmd it runs,
// for each writer count, that many clients creating VVs as fast as vvmd answers (each its own
// control connection, one request in flight) and, beside them, READERS clients asking VV_SHOW of
// one existing VV; it prints creates/s and the show latencies (p50, p99, max) for each count.
// Not a test: the figures depend on the machine; the script compares them with the engine's own
// commit rate measured in the same run.
//
//   bench_vvmd_load ENDPOINT SECONDS_PER_CASE READERS WRITERS...
//   bench_vvmd_load unix:/tmp/x/vvmd.sock 5 2 1 8 64
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "bench_common.h"
#include "common/config.h"
#include "proto/client.h"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using vvm::bench::die;
using vvm::bench::percentile;

namespace {

std::string create_one(vvm::rpc::Client& c) {
  vvm::rpc::VvCreateRequest req;
  req.vv_class = "A";
  req.size = 1 << 20;
  auto r = c.call(req, 30s);
  if (!r.ok()) die("create: " + r.status().message());
  return r->vv.name;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: bench_vvmd_load ENDPOINT SECONDS READERS WRITERS...\n");
    return 2;
  }
  auto endpoint = vvm::Endpoint::parse(argv[1]);
  if (!endpoint.ok()) die(endpoint.status().message());
  const double secs = std::atof(argv[2]);
  const int readers = std::atoi(argv[3]);
  std::vector<int> writer_counts;
  for (int i = 4; i < argc; ++i) writer_counts.push_back(std::atoi(argv[i]));

  std::string shown;
  {
    auto c = vvm::bench::connect_or_die(*endpoint);
    shown = create_one(c);
  }
  fmt::print("{:>8} {:>12} {:>10} {:>10} {:>10} {:>8}\n", "writers", "creates/s", "show p50",
             "show p99", "show max", "shows");
  for (int writers : writer_counts) {
    std::vector<vvm::rpc::Client> wc, rc;
    for (int i = 0; i < writers; ++i) wc.push_back(vvm::bench::connect_or_die(*endpoint));
    for (int i = 0; i < readers; ++i) rc.push_back(vvm::bench::connect_or_die(*endpoint));
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> creates{0};
    std::vector<std::vector<double>> lat(readers);
    std::vector<std::thread> threads;
    const auto t0 = Clock::now();
    for (int i = 0; i < writers; ++i) {
      threads.emplace_back([&, i] {
        while (!stop) {
          create_one(wc[i]);
          ++creates;
        }
      });
    }
    for (int i = 0; i < readers; ++i) {
      threads.emplace_back([&, i] {
        vvm::rpc::VvShowRequest req{shown};
        while (!stop) {
          const auto s0 = Clock::now();
          auto r = rc[i].call(req, 30s);
          if (!r.ok()) die("show: " + r.status().message());
          lat[i].push_back(std::chrono::duration<double, std::milli>(Clock::now() - s0).count());
          std::this_thread::sleep_for(1ms);  // a steady prober, not a second load
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(secs));
    stop = true;
    for (auto& t : threads) t.join();
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    std::vector<double> all;
    for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    const size_t shows = all.size();
    std::sort(all.begin(), all.end());
    const double p50 = percentile(all, 0.50), p99 = percentile(all, 0.99);
    const double mx = all.empty() ? 0 : all.back();
    fmt::print("{:>8} {:>12.1f} {:>8.2f}ms {:>8.2f}ms {:>8.2f}ms {:>8}\n", writers,
               static_cast<double>(creates) / elapsed, p50, p99, mx, shows);
    std::fflush(stdout);
  }
  return 0;
}
