// bench/control_rate.cc: the request driver of bench/tls-control.sh. Against one running daemon
// it measures, for SECONDS each: PING requests on one connection, one in flight (requests/s and
// the p50 and p99 round trip), and a new connection for every PING, as vvctl and libvvclient make
// one a call (connections/s: connect, the TLS handshake for a tls: endpoint, one request). It
// prints one line: LABEL req/s p50_us p99_us conn/s. TLS credentials come from the environment
// (VVM_TLS_PSK_FILE, VVM_TLS_CERTIFICATES), as for every client.
//
//   bench_control_rate LABEL ENDPOINT SECONDS
//   bench_control_rate tls-psk tls:127.0.0.1:7371 3
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
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

void ping(vvm::rpc::Client& c) {
  auto r = c.call(vvm::rpc::PingRequest{"bench"}, 5s);
  if (!r.ok()) die("ping: " + r.status().message());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: bench_control_rate LABEL ENDPOINT SECONDS\n");
    return 2;
  }
  auto endpoint = vvm::Endpoint::parse(argv[2]);
  if (!endpoint.ok()) die(endpoint.status().message());
  const auto span = std::chrono::duration<double>(std::atof(argv[3]));
  if (span.count() <= 0 || span.count() > 600) die("SECONDS: between 0 and 600");

  // One connection, one request in flight.
  auto c = vvm::bench::connect_or_die(*endpoint);
  std::vector<double> rtt_us;
  auto start = Clock::now();
  while (Clock::now() - start < span && rtt_us.size() < 10'000'000) {
    auto t0 = Clock::now();
    ping(c);
    rtt_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  const double reqs = static_cast<double>(rtt_us.size()) /
                      std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(rtt_us.begin(), rtt_us.end());

  // A connection a request.
  size_t conns = 0;
  start = Clock::now();
  while (Clock::now() - start < span && conns < 10'000'000) {
    auto one = vvm::bench::connect_or_die(*endpoint);
    ping(one);
    ++conns;
  }
  const double conn_rate =
      static_cast<double>(conns) / std::chrono::duration<double>(Clock::now() - start).count();
  fmt::print("{} {:.0f} {:.0f} {:.0f} {:.0f}\n", argv[1], reqs, percentile(rtt_us, 0.5),
             percentile(rtt_us, 0.99), conn_rate);
  return 0;
}
