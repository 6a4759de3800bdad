// metrics.h: what vvmd and the movers share to be watched by Prometheus: an HTTP endpoint that
// serves the text exposition format on GET /metrics (prometheus-cpp's pull exposer, on civetweb
// threads of its own), one registry per daemon, `vvm_build_info`, the control requests a daemon
// answers (counted by op and code, their latency as a histogram), and the families a daemon
// builds at scrape time from its state.
//
// Counters and histograms that events move (a copy done, an eviction) are prometheus-cpp's and
// thread-safe: the code that sees the event adds to them. Values that state already holds (queue
// lengths, drives by state, cache use) are not tracked by hand: a collector reads them at each
// scrape. State that belongs to an event loop is read on that loop (read_on_loop), so that the
// HTTP threads never touch it and the loop never waits for them.
//
//   auto exporter = metrics::Exporter::start(*config.vvmd_metrics, "vvmd", host);
//   (*exporter)->collect([&](metrics::Families& out) { out.gauge("vvm_x", "...").add({}, 1); });
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace prometheus {
class Registry;
struct MetricFamily;
}  // namespace prometheus

namespace vvm::metrics {

using Labels = std::map<std::string, std::string>;

// Families a collector builds at scrape time. Each sample goes to the family last started.
class Families {
 public:
  Families();
  ~Families();
  Families(Families&&) noexcept;
  Families& operator=(Families&&) noexcept;

  Families& gauge(std::string name, std::string help);
  Families& counter(std::string name, std::string help);  // a count that state keeps
  Families& add(Labels labels, double value);
  // Moves every family of `other` to the end of these.
  void append(Families&& other);
  std::vector<prometheus::MetricFamily> take();

 private:
  std::vector<prometheus::MetricFamily> families_;
};

// Fills `out` at each scrape, on an HTTP thread.
using Collector = std::function<void(Families& out)>;

// Latency buckets, in seconds: from 100 µs to 10 s, for control requests and commits.
std::vector<double> latency_buckets();

class Exporter {
 public:
  // Listens on `at` and serves GET /metrics from now on, with `vvm_build_info{version, daemon,
  // name}`. An address that cannot be had is an error that names vvm.conf's line as a
  // configuration error does: "PATH:LINE: KEY: cannot listen on ADDRESS: REASON".
  static Result<std::unique_ptr<Exporter>> start(const MetricsListen& at,
                                                 std::string_view config_path, std::string_view key,
                                                 std::string_view daemon, std::string_view name);
  ~Exporter();  // stops the HTTP server: no collector runs once this returns
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // Where the counters and histograms that events move are registered. Shared: a hook that
  // holds it may outlive the exporter (a reply sent while the daemon shuts down).
  std::shared_ptr<prometheus::Registry> registry();
  // Adds a collector, run at every scrape. Add them before anything may scrape, or at least
  // before anything they read may go away.
  void collect(Collector collector);
  const MetricsListen& at() const;

  struct Impl;

 private:
  explicit Exporter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Runs `read` on an event loop's thread, through `post` (rpc::Server::post), and waits at most
// `timeout` for what it built: how a collector reads a loop's state without locks. nullopt when
// the loop did not run it in time (it is stopping, or stuck); `read` may then still run later,
// so it must hold nothing of the caller's.
std::optional<Families> read_on_loop(const std::function<void(std::function<void()>)>& post,
                                     std::function<Families()> read,
                                     std::chrono::milliseconds timeout);

}  // namespace vvm::metrics
