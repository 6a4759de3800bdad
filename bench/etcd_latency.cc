// etcd_latency.cc: the latency of vvm's etcd client (client/cluster/) against a running etcd,
// beside etcdctl's in the same run: N puts through the client; N watch deliveries (a put on one
// connection, the time until a watch on another sees it); N `etcdctl put`, each a process as an
// administrator's script would run it. Prints p50, p99 and max of each, or with --raw every
// sample (bench/latency_rows.h). bench/etcd-latency.sh starts an etcd and runs it beside
// bench_etcd_latency_grpc, the same rows over etcd's gRPC API.
//
//   bench_etcd_latency ENDPOINT [N] [--raw]     (default N: 300)
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include "cluster/etcd_client.h"
#include "cluster/etcd_watch.h"
#include "latency_rows.h"

extern char** environ;

namespace {

using clock_type = std::chrono::steady_clock;
using vvm::bench::micros;
using vvm::cluster::EtcdClient;

}  // namespace

int main(int argc, char** argv) {
  const auto cli = vvm::bench::parse_latency_args(argc, argv, "bench_etcd_latency", "ENDPOINT");
  if (!cli) return 2;
  const std::string& endpoint = cli->endpoint;
  const int n = cli->n;
  auto client = EtcdClient::create({{endpoint}, std::chrono::seconds(5)});
  if (!client.ok()) {
    fmt::print(stderr, "{}\n", client.status().message());
    return 1;
  }
  EtcdClient& c = **client;
  const std::string value(200, 'v');  // about a pack mapping's size
  const vvm::bench::LatencyRows rows(cli->raw);

  // Warm-up: the connection, etcd's first writes.
  for (int i = 0; i < 10; ++i) {
    if (auto r = c.put("/bench/put/warm", value); !r.ok()) {
      fmt::print(stderr, "{}\n", r.status().message());
      return 1;
    }
  }

  std::vector<double> put_us;
  for (int i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    auto r = c.put(fmt::format("/bench/put/{}", i % 50), value);
    put_us.push_back(micros(clock_type::now() - t0));
    if (!r.ok()) {
      fmt::print(stderr, "{}\n", r.status().message());
      return 1;
    }
  }
  rows.add("json", "put", "vvm client: put (JSON gateway, kept connection)", put_us);

  std::vector<double> get_us;
  for (int i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    auto r = c.get(fmt::format("/bench/put/{}", i % 50));
    get_us.push_back(micros(clock_type::now() - t0));
    if (!r.ok()) return 1;
  }
  rows.add("json", "get", "vvm client: get (linearizable range)", get_us);

  // Watch delivery: the time from the put's start until the watch thread has the event.
  std::mutex mu;
  std::condition_variable cv;
  int64_t seen_revision = 0;
  clock_type::time_point seen_at;
  auto watch = vvm::cluster::EtcdWatch::start(
      {{endpoint}, std::chrono::seconds(5)},
      {"/bench/watch/", vvm::cluster::prefix_end("/bench/watch/"), 0},
      [&](const vvm::cluster::WatchBatch& b) {
        auto now = clock_type::now();
        std::lock_guard lock(mu);
        for (const auto& e : b.events) seen_revision = std::max(seen_revision, e.kv.mod_revision);
        seen_at = now;
        cv.notify_all();
      },
      {});
  if (!watch.ok() || !(*watch)->wait_created(std::chrono::seconds(5)).ok()) {
    fmt::print(stderr, "the watch did not start\n");
    return 1;
  }
  std::vector<double> watch_us;
  for (int i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    auto rev = c.put(fmt::format("/bench/watch/{}", i % 50), value);
    if (!rev.ok()) return 1;
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return seen_revision >= *rev; })) {
      fmt::print(stderr, "the watch missed revision {}\n", *rev);
      return 1;
    }
    watch_us.push_back(micros(seen_at - t0));
  }
  (*watch)->stop();
  rows.add("json", "watch", "vvm client: put -> watch event", watch_us);

  // etcdctl, one process a put, as a script runs it.
  std::vector<double> ctl_us;
  std::string ep_arg = "--endpoints=" + endpoint;
  for (int i = 0; i < n; ++i) {
    std::string key = fmt::format("/bench/ctl/{}", i % 50);
    const char* args[] = {"etcdctl", ep_arg.c_str(), "put", key.c_str(), value.c_str(), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    auto t0 = clock_type::now();
    pid_t pid = 0;
    std::vector<char*> env;
    for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
    static char api[] = "ETCDCTL_API=3";
    env.push_back(api);
    env.push_back(nullptr);
    int rc = posix_spawnp(&pid, "etcdctl", &actions, nullptr, const_cast<char**>(args), env.data());
    posix_spawn_file_actions_destroy(&actions);
    int status = 0;
    if (rc != 0 || waitpid(pid, &status, 0) != pid || status != 0) {
      fmt::print(stderr, "etcdctl put failed\n");
      return 1;
    }
    ctl_us.push_back(micros(clock_type::now() - t0));
  }
  rows.add("etcdctl", "put", "etcdctl put (gRPC, a process each)", ctl_us);
  return 0;
}
