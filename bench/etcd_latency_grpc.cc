// etcd_latency_grpc.cc: the rows of bench_etcd_latency over etcd's gRPC API instead of its JSON
// gateway, with grpc++ and the code protoc makes from etcd's own .proto files (Debian's
// golang-etcd-server-dev, with bench/etcd-grpc/'s stand-ins for their gogoproto and google/api
// imports): N puts and N linearizable gets on one kept channel, and N watch deliveries (a put on
// that channel, the time until a watch on another channel, its own connection, sees it). It is
// the route vvm did not take (README, "Why the JSON gateway"); bench/etcd-latency.sh runs both
// against one etcd so they can be compared. Prints p50, p99 and max of each, or with --raw every
// sample (bench/latency_rows.h).
//
//   bench_etcd_latency_grpc ENDPOINT [N] [--raw]     (ENDPOINT: HOST:PORT; default N: 300)
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "latency_rows.h"

namespace {

using clock_type = std::chrono::steady_clock;
using vvm::bench::micros;
namespace pb = etcdserverpb;

constexpr auto kCallTimeout = std::chrono::seconds(5);

[[noreturn]] void fail(const std::string& what) {
  fmt::print(stderr, "bench_etcd_latency_grpc: {}\n", what);
  std::exit(1);
}

// A channel with a connection of its own: channels with the same arguments share gRPC's global
// pool of connections, and the watch must not ride on the puts' connection (as the JSON bench's
// watch has its own), so each channel gets a local pool.
std::shared_ptr<grpc::Channel> open_channel(const std::string& endpoint) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + kCallTimeout))
    fail(fmt::format("no gRPC connection to {} within 5 s", endpoint));
  return channel;
}

// grpc++ takes deadlines on the system clock only; the figures use the steady clock.
void deadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
}

// Puts `key`; returns the revision of the put.
int64_t put(pb::KV::Stub& kv, const std::string& endpoint, const std::string& key,
            const std::string& value) {
  pb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  pb::PutResponse resp;
  grpc::ClientContext ctx;
  deadline(ctx);
  if (auto st = kv.Put(&ctx, req, &resp); !st.ok())
    fail(fmt::format("{}: put {}: {}", endpoint, key, st.error_message()));
  return resp.header().revision();
}

// The end of the range of keys that start with `prefix`, as etcd counts it.
std::string prefix_end(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (prefix.empty()) return std::string(1, '\0');
  prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

// A watch on a key prefix over its own channel; a thread reads its events and records the
// highest revision seen and when it arrived.
class PrefixWatch {
 public:
  PrefixWatch(const std::string& endpoint, const std::string& prefix)
      : channel_(open_channel(endpoint)), stub_(pb::Watch::NewStub(channel_)) {
    stream_ = stub_->Watch(&ctx_);
    pb::WatchRequest req;
    req.mutable_create_request()->set_key(prefix);
    req.mutable_create_request()->set_range_end(prefix_end(prefix));
    pb::WatchResponse resp;
    if (!stream_->Write(req) || !stream_->Read(&resp) || !resp.created())
      fail(fmt::format("{}: the watch on {} was not created", endpoint, prefix));
    reader_ = std::thread([this] { read_events(); });
  }

  ~PrefixWatch() {
    ctx_.TryCancel();
    reader_.join();
    stream_->Finish();  // CANCELLED, as asked
  }

  // Waits until an event of `revision` or later has arrived; returns when it did.
  clock_type::time_point wait_for(int64_t revision) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, kCallTimeout, [&] { return seen_revision_ >= revision; }))
      fail(fmt::format("the watch missed revision {}", revision));
    return seen_at_;
  }

 private:
  void read_events() {
    pb::WatchResponse resp;
    while (stream_->Read(&resp)) {
      auto now = clock_type::now();
      std::lock_guard lock(mu_);
      for (const auto& e : resp.events())
        seen_revision_ = std::max(seen_revision_, e.kv().mod_revision());
      seen_at_ = now;
      cv_.notify_all();
    }
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Watch::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t seen_revision_ = 0;
  clock_type::time_point seen_at_;
};

}  // namespace

int main(int argc, char** argv) {
  const auto cli =
      vvm::bench::parse_latency_args(argc, argv, "bench_etcd_latency_grpc", "HOST:PORT");
  if (!cli) return 2;
  const std::string& endpoint = cli->endpoint;
  const int n = cli->n;
  const std::string value(200, 'v');  // about a pack mapping's size, as bench_etcd_latency

  auto channel = open_channel(endpoint);
  auto kv = pb::KV::NewStub(channel);
  const vvm::bench::LatencyRows rows(cli->raw);

  // Warm-up: the channel, etcd's first writes.
  for (int i = 0; i < 10; ++i) put(*kv, endpoint, "/bench/put/warm", value);

  std::vector<double> put_us;
  for (int i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    put(*kv, endpoint, fmt::format("/bench/put/{}", i % 50), value);
    put_us.push_back(micros(clock_type::now() - t0));
  }
  rows.add("grpc", "put", "gRPC: put (grpc++, kept channel)", put_us);

  std::vector<double> get_us;
  for (int i = 0; i < n; ++i) {
    pb::RangeRequest req;
    req.set_key(fmt::format("/bench/put/{}", i % 50));  // linearizable: serializable unset
    pb::RangeResponse resp;
    grpc::ClientContext ctx;
    deadline(ctx);
    auto t0 = clock_type::now();
    auto st = kv->Range(&ctx, req, &resp);
    get_us.push_back(micros(clock_type::now() - t0));
    if (!st.ok() || resp.kvs_size() != 1)
      fail(fmt::format("{}: get {}: {}", endpoint, req.key(),
                       st.ok() ? "not found" : st.error_message()));
  }
  rows.add("grpc", "get", "gRPC: get (linearizable range)", get_us);

  // Watch delivery: the time from the put's start until the watch thread has the event.
  std::vector<double> watch_us;
  {
    PrefixWatch watch(endpoint, "/bench/watch/");
    for (int i = 0; i < n; ++i) {
      auto t0 = clock_type::now();
      int64_t rev = put(*kv, endpoint, fmt::format("/bench/watch/{}", i % 50), value);
      watch_us.push_back(micros(watch.wait_for(rev) - t0));
    }
  }
  rows.add("grpc", "watch", "gRPC: put -> watch event", watch_us);
  return 0;
}
