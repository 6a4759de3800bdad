// membership_test.cc: a node's lease-bound membership (client/cluster/membership.h) against a
// real etcd: the key and its lease, one name held by one node, leaving, and the loss of the lease
// reported before it can have expired, and a node fenced while etcd was away taken back when its
// lease is still there.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "cluster/etcd_client.h"
#include "cluster/membership.h"
#include "cluster/records.h"
#include "etcd.h"
#include "process.h"

using namespace vvm;
using namespace vvm::cluster;
using vvm::test::must;
using namespace std::chrono_literals;

namespace {

MembershipOptions options_for(const std::string& endpoint, const std::string& name,
                              const std::string& address, std::chrono::seconds ttl = 4s) {
  MembershipOptions o;
  o.etcd = {{endpoint}, 2000ms};
  o.node.name = name;
  o.node.address = address;
  o.node.disks = {{"d0", "/dev/vdb"}};
  o.ttl = ttl;
  return o;
}

// Records the first on_lost call and when it came.
struct LostFlag {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Status> why;
  std::chrono::steady_clock::time_point when;

  Membership::OnLost callback() {
    return [this](const Status& s) {
      std::lock_guard lock(mu);
      why = s;
      when = std::chrono::steady_clock::now();
      cv.notify_all();
    };
  }
  bool wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return why.has_value(); });
  }
};

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("joining writes the node's record under its lease; leaving removes it at once") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto c = must(EtcdClient::create({{etcd.endpoint()}}));

  LostFlag lost;
  auto m = Membership::join(options_for(etcd.endpoint(), "n1", "127.0.0.1:10809"), lost.callback());
  REQUIRE(m.ok());
  CHECK((*m)->key() == "/vvm/node/n1");
  auto kv = c->get("/vvm/node/n1");
  REQUIRE(kv.ok());
  REQUIRE(kv->has_value());
  CHECK((*kv)->lease == (*m)->lease_id());
  auto node = decode_node((*kv)->key, (*kv)->value);
  REQUIRE(node.ok());
  CHECK(node->address == "127.0.0.1:10809");
  CHECK(node->disks.at("d0") == "/dev/vdb");
  CHECK(node->started > 0);

  // Renewed: past its TTL the key is still there, and the fencing deadline moves on.
  auto first_deadline = (*m)->valid_until();
  std::this_thread::sleep_for(5s);
  CHECK(c->get("/vvm/node/n1")->has_value());
  CHECK((*m)->valid_until() > first_deadline);
  CHECK_FALSE((*m)->lost());

  (*m)->leave();
  CHECK_FALSE(c->get("/vvm/node/n1")->has_value());
  CHECK(*c->lease_time_to_live((*m)->lease_id()) == -1);
  CHECK_FALSE(lost.why.has_value());
}

TEST_CASE("a second node of the same name is refused, naming the key and the holder") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto first = Membership::join(options_for(etcd.endpoint(), "n1", "127.0.0.1:10809"), {});
  REQUIRE(first.ok());
  auto second = Membership::join(options_for(etcd.endpoint(), "n1", "127.0.0.2:10809"), {});
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == Code::kAlreadyExists);
  CHECK_THAT(second.status().message(), Catch::Contains("etcd key /vvm/node/n1"));
  CHECK_THAT(second.status().message(), Catch::Contains("node n1 at 127.0.0.1:10809"));
  CHECK_THAT(second.status().message(), Catch::Contains("lease expires in"));
  // The refused one's lease was given back: only the first's remains.
  auto c = must(EtcdClient::create({{etcd.endpoint()}}));
  auto leases = c->call("/v3/lease/leases", "{}");
  REQUIRE(leases.ok());
  CHECK(count_of(*leases, "\"ID\"") == 1);
  // Once the first leaves, the name is free again.
  (*first)->leave();
  CHECK(Membership::join(options_for(etcd.endpoint(), "n1", "127.0.0.2:10809"), {}).ok());
}

TEST_CASE("a lease revoked behind the node's back is reported lost") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  LostFlag lost;
  auto m =
      Membership::join(options_for(etcd.endpoint(), "n1", "127.0.0.1:10809", 3s), lost.callback());
  REQUIRE(m.ok());
  auto c = must(EtcdClient::create({{etcd.endpoint()}}));
  REQUIRE(c->lease_revoke((*m)->lease_id()).ok());
  REQUIRE(lost.wait(3s));  // at the next renewal, a third of the TTL later
  CHECK_THAT(lost.why->message(), Catch::Contains("/vvm/node/n1"));
  CHECK_THAT(lost.why->message(), Catch::Contains("expired"));
  CHECK((*m)->lost());
}

TEST_CASE("with etcd gone, the loss is reported before the lease could expire") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  LostFlag lost;
  auto m =
      Membership::join(options_for(etcd.endpoint(), "n1", "127.0.0.1:10809", 3s), lost.callback());
  REQUIRE(m.ok());
  // The last renewal can be no later than now: the lease lives at least until now + TTL.
  (void)etcd.stop(0ms);
  const auto stopped = std::chrono::steady_clock::now();
  REQUIRE(lost.wait(5s));
  CHECK(lost.when < stopped + 3s);
  CHECK(lost.when >= (*m)->valid_until());
  CHECK_THAT(lost.why->message(), Catch::Contains("could not be renewed before it expires"));
  CHECK_THAT(lost.why->message(), Catch::Contains(etcd.endpoint()));
}

TEST_CASE("etcd back while the lease lives: the node renews it and may write again") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  LostFlag lost;
  std::mutex mu;
  std::condition_variable cv;
  int back = 0;
  auto m = Membership::join(options_for(etcd.endpoint(), "n1", "127.0.0.1:10809", 3s),
                            lost.callback(), [&] {
                              std::lock_guard lock(mu);
                              ++back;
                              cv.notify_all();
                            });
  REQUIRE(m.ok());
  (void)etcd.stop(0ms);
  REQUIRE(lost.wait(5s));  // fenced: past valid_until()
  CHECK(std::chrono::steady_clock::now() >= (*m)->valid_until());
  CHECK_FALSE((*m)->lost());
  // A restarted etcd extends every lease: the next renewal finds it, and the node is back.
  REQUIRE(etcd.restart().ok());
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, 10s, [&] { return back == 1; }));
  }
  CHECK(std::chrono::steady_clock::now() < (*m)->valid_until());
  CHECK_FALSE((*m)->lost());
  auto c = must(EtcdClient::create({{etcd.endpoint()}, 2000ms}));
  auto kv = c->get(node_key(kDefaultPrefix, "n1"));
  REQUIRE(kv.ok());
  REQUIRE(kv->has_value());
  CHECK((*kv)->lease == (*m)->lease_id());
}

TEST_CASE("a fenced node whose lease etcd dropped meanwhile is lost for good") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  LostFlag lost;
  std::atomic<int> gone{0};
  auto m = Membership::join(options_for(etcd.endpoint(), "n1", "127.0.0.1:10809", 3s),
                            lost.callback(), {}, [&] { ++gone; });
  REQUIRE(m.ok());
  CHECK((*m)->revision() > 0);
  // Fenced while etcd is down; etcd back, the lease is revoked before (or soon after) the node
  // renews it: the node finds it gone and stays fenced, and its owner is told, once, to join
  // again.
  auto c = must(EtcdClient::create({{etcd.endpoint()}, 2000ms}));
  (void)etcd.stop(0ms);
  REQUIRE(lost.wait(5s));
  REQUIRE(etcd.restart().ok());
  REQUIRE(c->lease_revoke((*m)->lease_id()).ok());
  for (int i = 0; i < 100 && !(*m)->lost(); ++i) std::this_thread::sleep_for(100ms);
  CHECK((*m)->lost());  // the plugin's fenced() is true for good
  for (int i = 0; i < 20 && gone == 0; ++i) std::this_thread::sleep_for(50ms);
  CHECK(gone == 1);
  // A new join makes a new lease and key, created after the old one.
  auto again = Membership::join(options_for(etcd.endpoint(), "n1", "127.0.0.1:10809", 3s), {});
  REQUIRE(again.ok());
  CHECK((*again)->lease_id() != (*m)->lease_id());
  CHECK((*again)->revision() > (*m)->revision());
  CHECK(c->get(node_key(kDefaultPrefix, "n1"))->value().lease == (*again)->lease_id());
}
