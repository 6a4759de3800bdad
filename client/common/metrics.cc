// metrics.cc: the HTTP endpoint (prometheus-cpp's Exposer), the scrape-time collectors and the
// families they build, behind metrics.h.
#include "common/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <cerrno>
#include <cstring>
#include <future>
#include <mutex>

#include <fmt/core.h>

#include "common/log.h"

namespace vvm::metrics {

Families::Families() = default;
Families::~Families() = default;
Families::Families(Families&&) noexcept = default;
Families& Families::operator=(Families&&) noexcept = default;

Families& Families::gauge(std::string name, std::string help) {
  families_.push_back({std::move(name), std::move(help), prometheus::MetricType::Gauge, {}});
  return *this;
}

Families& Families::counter(std::string name, std::string help) {
  families_.push_back({std::move(name), std::move(help), prometheus::MetricType::Counter, {}});
  return *this;
}

Families& Families::add(Labels labels, double value) {
  if (families_.empty()) return *this;  // a caller's bug: a sample before any family
  prometheus::ClientMetric m;
  for (auto& [k, v] : labels) m.label.push_back({k, std::move(v)});
  if (families_.back().type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  families_.back().metric.push_back(std::move(m));
  return *this;
}

void Families::append(Families&& other) {
  for (auto& f : other.families_) families_.push_back(std::move(f));
  other.families_.clear();
}

std::vector<prometheus::MetricFamily> Families::take() { return std::move(families_); }

std::vector<double> latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

namespace {

// What prometheus-cpp asks of a collectable, filled by the daemon's collectors at each scrape.
class Collectors : public prometheus::Collectable {
 public:
  void add(Collector c) {
    const std::lock_guard lock(mu_);
    collectors_.push_back(std::move(c));
  }
  std::vector<prometheus::MetricFamily> Collect() const override {
    const std::lock_guard lock(mu_);
    Families out;
    for (const Collector& c : collectors_) {
      // An exception must not reach civetweb's thread: the scrape goes on without that part.
      try {
        c(out);
      } catch (const std::exception& e) {
        log::warning("metrics: a collector failed: {}", e.what());
      }
    }
    return out.take();
  }

 private:
  mutable std::mutex mu_;  // scrapes may run on several HTTP threads at once
  std::vector<Collector> collectors_;
};

// Why `at` cannot be listened on, found by trying, as civetweb would (it says only that it could
// not start): Ok when a listening socket could be had.
Status try_listen(const Endpoint& at) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
      inet_pton(AF_INET, at.host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(at.port);
    len = sizeof *a4;
  } else {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET6, at.host.c_str(), &a6->sin6_addr) != 1) {
      return Status::InvalidArgument("not a numeric address");
    }
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(at.port);
    len = sizeof *a6;
    family = AF_INET6;
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as civetweb does
  Status s = Status::Ok();
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 1) != 0) {
    s = Status::IoError(std::strerror(errno));
  }
  ::close(fd);
  return s;
}

}  // namespace

struct Exporter::Impl {
  MetricsListen at;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::shared_ptr<Collectors> collectors = std::make_shared<Collectors>();
  std::unique_ptr<prometheus::Exposer> exposer;
};

Exporter::Exporter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Exporter::~Exporter() {
  // The HTTP threads first: they may be inside a collector.
  impl_->exposer.reset();
}

Result<std::unique_ptr<Exporter>> Exporter::start(const MetricsListen& at,
                                                  std::string_view config_path,
                                                  std::string_view key, std::string_view daemon,
                                                  std::string_view name) {
  auto fail = [&](std::string_view reason) {
    return Status::InvalidArgument(fmt::format("{}:{}: {}: cannot listen on {}: {}", config_path,
                                               at.line, key, at.at.to_string(), reason));
  };
  if (Status s = try_listen(at.at); !s.ok()) return fail(s.message());
  auto impl = std::make_unique<Impl>();
  impl->at = at;
  prometheus::BuildGauge()
      .Name("vvm_build_info")
      .Help("The vvm software this daemon runs: always 1, its version in a label")
      .Register(*impl->registry)
      .Add({{"version", VVM_VERSION}, {"daemon", std::string(daemon)}, {"name", std::string(name)}})
      .Set(1);
  try {
    // Two threads: a scrape that waits for a busy loop does not hold up another scraper.
    impl->exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", at.at.to_string(), "num_threads", "2"});
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  impl->exposer->RegisterCollectable(impl->registry);
  impl->exposer->RegisterCollectable(impl->collectors);
  return std::unique_ptr<Exporter>(new Exporter(std::move(impl)));
}

std::shared_ptr<prometheus::Registry> Exporter::registry() { return impl_->registry; }

void Exporter::collect(Collector collector) { impl_->collectors->add(std::move(collector)); }

const MetricsListen& Exporter::at() const { return impl_->at; }

std::optional<Families> read_on_loop(const std::function<void(std::function<void()>)>& post,
                                     std::function<Families()> read,
                                     std::chrono::milliseconds timeout) {
  // Shared with the task: a task that runs after the wait gave up sets a promise nobody reads.
  auto promise = std::make_shared<std::promise<Families>>();
  auto future = promise->get_future();
  post([promise, read = std::move(read)] {
    try {
      promise->set_value(read());
    } catch (...) {
      promise->set_exception(std::current_exception());
    }
  });
  if (future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  try {
    return future.get();
  } catch (const std::exception& e) {
    log::warning("metrics: reading the daemon's state failed: {}", e.what());
    return std::nullopt;
  }
}

}  // namespace vvm::metrics
