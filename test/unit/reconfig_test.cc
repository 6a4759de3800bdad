// reconfig_test.cc: the reconfiguration barrier (client/cluster/reconfig.h, the command's side;
// nbdkit-plugin/reconf_gate.h, a node's) and cluster-wide exclusive holds (cluster_holds.h)
// against a real etcd: nodes are real memberships with real gates; requests are Passes through
// the gates, from threads of the test.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <thread>

#include "catalog_source.h"
#include "cluster/etcd_client.h"
#include "cluster/membership.h"
#include "cluster/reconfig.h"
#include "cluster/records.h"
#include "cluster_catalog.h"
#include "cluster_holds.h"
#include "etcd.h"
#include "process.h"
#include "reconf_gate.h"

using namespace vvm;
using namespace vvm::cluster;
using vvm::plugin::ReconfGate;
using vvm::test::must;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t kMiB = 1 << 20;

PackMapping mapping_a() {
  PackMapping m;
  m.name = "a";
  m.primary = {"n1", "d0"};
  m.secondary = DiskRef{"n2", "d0"};
  m.size = kMiB;
  m.mode = PackMode::kExclusive;
  m.perms = 0660;
  return m;
}

// A node as the plugin makes one: a membership, the catalog it serves and its gate.
struct Node {
  std::unique_ptr<Membership> membership;
  std::unique_ptr<plugin::CatalogSource> catalog = plugin::CatalogSource::published();
  std::unique_ptr<ReconfGate> gate;
  std::atomic<int> reloads{0};
};

std::unique_ptr<Node> start_node(const std::string& endpoint, const std::string& name,
                                 const std::string& disk, bool with_gate = true) {
  auto n = std::make_unique<Node>();
  MembershipOptions m;
  m.etcd = {{endpoint}, 2000ms};
  m.node = {name, "127.0.0.1:10809", {{"d0", disk}}, 0};
  m.ttl = 3s;
  n->membership = must(Membership::join(m, [](const Status&) {}));
  if (!with_gate) return n;
  ReconfGate::Options o;
  o.etcd = {{endpoint}, 2000ms};
  o.node = name;
  o.catalog = n->catalog.get();
  Node* raw = n.get();
  o.reload = [raw, endpoint, name, disk]() -> Status {
    auto etcd = EtcdClient::create({{endpoint}, 2000ms});
    if (!etcd.ok()) return etcd.status();
    auto listed = list_packs(**etcd, "/vvm/");
    if (!listed.ok()) return listed.status();
    std::vector<PackMapping> ms;
    for (auto& i : listed->items) ms.push_back(i.record);
    auto built = plugin::node_catalog(ms, name, {{"d0", disk}}, "/vvm/");
    raw->catalog->publish(std::make_shared<const plugin::PackCatalog>(std::move(built.catalog)));
    ++raw->reloads;
    return Status::Ok();
  };
  o.log = [](bool, const std::string&) {};
  REQUIRE(o.reload().ok());
  n->gate = must(ReconfGate::start(std::move(o)));
  return n;
}

// Where `node` serves pack a from now, as a connection notes it at open.
std::string where(Node& node) {
  auto info = node.catalog->current().catalog->find("pack/a");
  return info.ok() ? ReconfGate::placement_of((*info)->pack) : "";
}

// Waits (at most `limit`) until `done` holds.
template <class F>
bool eventually(F done, std::chrono::milliseconds limit = 5000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

struct Fixture {
  test::TempDir dir = must(test::TempDir::create());
  test::EtcdServer etcd = must(test::EtcdServer::start(dir));
  std::unique_ptr<EtcdClient> client = must(EtcdClient::create({{etcd.endpoint()}, 2000ms}));
  std::string disk = dir.file("disk.img");

  Fixture() {
    std::ofstream(disk).close();
    REQUIRE(::truncate(disk.c_str(), 4 * kMiB) == 0);
    must(client->put(pack_key("/vvm/", "a"), encode_pack(mapping_a())));
  }
  PackMapping mapping() {
    auto kv = must(client->get(pack_key("/vvm/", "a")));
    REQUIRE(kv);
    return must(decode_pack(kv->key, kv->value));
  }
  ReconfigOptions options(std::chrono::milliseconds timeout = 5000ms) {
    ReconfigOptions o;
    o.timeout = timeout;
    o.by = "reconfig_test";
    return o;
  }
  size_t keys_under(const std::string& prefix) {
    return must(client->range_prefix(prefix)).kvs.size();
  }
};

}  // namespace

TEST_CASE("a move waits for every live node, commits the next epoch and leaves no intent") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk);
  auto n2 = start_node(f.etcd.endpoint(), "n2", f.disk);
  auto view = must(read_view(*f.client, "/vvm/"));
  auto change = must(plan_move(view, "a", "n2", ""));
  auto report = must(reconfigure(*f.client, f.options(), {change}));
  CHECK(report.acked == std::vector<std::string>{"n1", "n2"});
  PackMapping now = f.mapping();
  CHECK(now.primary == DiskRef{"n2", "d0"});
  CHECK(now.secondary == DiskRef{"n1", "d0"});
  CHECK(now.epoch == 2);
  CHECK(f.keys_under(reconf_prefix("/vvm/")) == 0);
  CHECK(f.keys_under("/vvm/ack/") == 0);
  CHECK(eventually([&] { return n1->gate->held_packs() == 0 && n2->gate->held_packs() == 0; }));
  INFO("barrier " << report.barrier.count() << " us, total " << report.total.count() << " us");
  CHECK(report.total < 2s);
}

TEST_CASE(
    "a request in flight delays the ack; a request arriving meanwhile waits for the new "
    "mapping") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk);
  const uint64_t gen = n1->gate->generation("a");
  auto running = std::make_optional(n1->gate->enter("a", gen, where(*n1), true));
  REQUIRE(running->status().ok());
  auto view = must(read_view(*f.client, "/vvm/"));
  auto change = must(plan_chmod(view, "a", 0600));
  auto command =
      std::async(std::launch::async, [&] { return reconfigure(*f.client, f.options(), {change}); });
  // The intent is there and the pack held; no ack while the request runs.
  REQUIRE(eventually([&] { return n1->gate->held_packs() == 1; }));
  std::this_thread::sleep_for(300ms);
  CHECK(f.keys_under("/vvm/ack/") == 0);
  CHECK(command.wait_for(0s) == std::future_status::timeout);
  // A new request waits at the gate until the commit, and then sees the new mapping served.
  const int reloads_before = n1->reloads;
  auto later = std::async(std::launch::async, [&] {
    auto pass = n1->gate->enter("a", gen, where(*n1), true);
    return std::make_pair(pass.status().ok(), n1->reloads.load());
  });
  std::this_thread::sleep_for(100ms);
  CHECK(later.wait_for(0s) == std::future_status::timeout);
  running.reset();  // the request ends: the drain is done
  auto report = command.get();
  REQUIRE(report.ok());
  auto [ok, reloads_seen] = later.get();
  CHECK(ok);
  CHECK(reloads_seen > reloads_before);  // resumed only once the new mapping was served
  CHECK(f.mapping().perms == 0600);
  CHECK(f.mapping().epoch == 2);
}

TEST_CASE("a request that leaves for another server stops holding the drain, once") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk);
  const uint64_t gen = n1->gate->generation("a");
  auto leaving = n1->gate->enter("a", gen, where(*n1), true);
  REQUIRE(leaving.status().ok());
  auto chmod = [&](mode_t perms) {
    auto change = must(plan_chmod(must(read_view(*f.client, "/vvm/")), "a", perms));
    return std::async(std::launch::async,
                      [&f, change] { return reconfigure(*f.client, f.options(), {change}); });
  };
  auto first = chmod(0600);
  REQUIRE(eventually([&] { return n1->gate->held_packs() == 1; }));
  std::this_thread::sleep_for(300ms);
  CHECK(first.wait_for(0s) == std::future_status::timeout);  // counted: the drain waits
  // Sent to a pool peer, which holds it for the same barrier: the drain no longer waits.
  leaving.uncount();
  REQUIRE(first.get().ok());
  leaving.uncount();  // nothing more, nor when it goes
  // Counted once only: a request running now still holds the next drain until it ends.
  REQUIRE(eventually([&] { return n1->gate->held_packs() == 0; }));
  auto running = std::make_optional(n1->gate->enter("a", gen, where(*n1), true));
  REQUIRE(running->status().ok());
  auto second = chmod(0640);
  REQUIRE(eventually([&] { return n1->gate->held_packs() == 1; }));
  std::this_thread::sleep_for(300ms);
  CHECK(second.wait_for(0s) == std::future_status::timeout);
  running.reset();
  REQUIRE(second.get().ok());
  CHECK(f.mapping().perms == 0640);
}

TEST_CASE("a node that never acknowledges times the command out, naming it; nothing changes") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk);
  auto n3 = start_node(f.etcd.endpoint(), "n3", f.disk, /*with_gate=*/false);
  auto view = must(read_view(*f.client, "/vvm/"));
  auto bad = plan_move(view, "a", "n2", "");  // n2 is not a member
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(),
             Catch::Contains("node n2") && Catch::Contains("not a live member"));
  auto chmod = must(plan_chmod(view, "a", 0644));
  const auto start = std::chrono::steady_clock::now();
  auto r = reconfigure(*f.client, f.options(1500ms), {chmod});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kTimeout);
  CHECK_THAT(r.status().message(),
             Catch::Contains("node n3 did not acknowledge") && Catch::Contains("pack a"));
  CHECK(std::chrono::steady_clock::now() - start < 4s);
  CHECK(f.mapping().epoch == 1);
  CHECK(f.mapping().perms == 0660);
  CHECK(f.keys_under(reconf_prefix("/vvm/")) == 0);
  // n1 resumes at once: the intent went with the command's lease.
  CHECK(eventually([&] { return n1->gate->held_packs() == 0; }, 1000ms));
}

TEST_CASE("a node whose lease goes stops counting") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk);
  auto n3 = start_node(f.etcd.endpoint(), "n3", f.disk, /*with_gate=*/false);
  auto view = must(read_view(*f.client, "/vvm/"));
  auto chmod = must(plan_chmod(view, "a", 0644));
  auto command = std::async(std::launch::async,
                            [&] { return reconfigure(*f.client, f.options(8000ms), {chmod}); });
  std::this_thread::sleep_for(500ms);
  CHECK(command.wait_for(0s) == std::future_status::timeout);
  n3->membership->leave();  // its key goes
  REQUIRE(command.wait_for(3s) == std::future_status::ready);
  auto report = command.get();
  REQUIRE(report.ok());
  CHECK(report->acked == std::vector<std::string>{"n1"});
  CHECK(f.mapping().perms == 0644);
}

TEST_CASE("a mapping changed during the barrier fails the commit, naming the pack") {
  Fixture f;
  // n3 acknowledges by hand, after changing the mapping behind the command's back.
  auto n3 = start_node(f.etcd.endpoint(), "n3", f.disk, /*with_gate=*/false);
  auto view = must(read_view(*f.client, "/vvm/"));
  auto chmod = must(plan_chmod(view, "a", 0644));
  auto command = std::async(std::launch::async,
                            [&] { return reconfigure(*f.client, f.options(5000ms), {chmod}); });
  std::string intent_key;
  int64_t lease = 0;
  REQUIRE(eventually([&] {
    auto r = must(f.client->range_prefix(reconf_prefix("/vvm/")));
    if (r.kvs.empty()) return false;
    intent_key = r.kvs[0].key;
    lease = r.kvs[0].lease;
    return true;
  }));
  PackMapping other = mapping_a();
  other.perms = 0600;
  other.epoch = 7;
  must(f.client->put(pack_key("/vvm/", "a"), encode_pack(other)));
  auto intent = must(decode_intent(intent_key, must(f.client->get(intent_key))->value));
  must(f.client->put(ack_key("/vvm/", intent.id, "n3"), encode_ack({"n3", 1}), lease));
  auto r = command.get();
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kBusy);
  CHECK_THAT(r.status().message(), Catch::Contains("pack 'a': its mapping changed"));
  CHECK(f.mapping().epoch == 7);
  CHECK(f.keys_under(reconf_prefix("/vvm/")) == 0);
}

TEST_CASE("an intent whose command died goes with its lease, and the nodes resume") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk);
  auto lease = must(f.client->lease_grant(1));
  ReconfIntent intent;
  intent.id = "dead-command";
  intent.packs = {"a"};
  intent.mappings = {mapping_a()};
  intent.by = "a command that died";
  intent.deadline_ms = static_cast<uint64_t>(std::time(nullptr) + 60) * 1000;
  must(f.client->put(reconf_key("/vvm/", intent.id), encode_intent(intent), lease.id));
  REQUIRE(eventually([&] { return n1->gate->held_packs() == 1; }));
  CHECK(eventually([&] { return f.keys_under("/vvm/ack/") == 1; }));  // n1 drained and acked
  // The lease ends (about a second), the intent and the ack go, n1 resumes.
  CHECK(eventually([&] { return n1->gate->held_packs() == 0; }, 5000ms));
  CHECK(f.keys_under("/vvm/ack/") == 0);
  auto pass = n1->gate->enter("a", n1->gate->generation("a"), where(*n1), true);
  CHECK(pass.status().ok());
}

TEST_CASE("a connection whose pack moved off its node is refused after the resume") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk);
  auto n2 = start_node(f.etcd.endpoint(), "n2", f.disk);
  auto n3 = start_node(f.etcd.endpoint(), "n3", f.disk);
  const uint64_t opened = n2->gate->generation("a");
  const std::string opened_at = where(*n2);
  CHECK(n2->gate->enter("a", opened, opened_at, true).status().ok());
  // n2, the secondary, is replaced by n3: n2 serves the pack no more.
  auto view = must(read_view(*f.client, "/vvm/"));
  must(reconfigure(*f.client, f.options(), {must(plan_secondary(view, "a", "n3", ""))}));
  REQUIRE(eventually([&] { return n2->gate->generation("a") != opened; }));
  auto refused = n2->gate->enter("a", opened, opened_at, true);
  CHECK(refused.status().code() == Code::kUnavailable);
  CHECK_THAT(refused.status().message(), Catch::Contains("moved it off this node"));
  // n1, still the primary, goes on.
  CHECK(n1->gate->enter("a", n1->gate->generation("a"), where(*n1), true).status().ok());
}

TEST_CASE("plans refuse bad targets, naming the pack, the node and the reason") {
  ClusterView view;
  view.nodes["n1"] = {"n1", "127.0.0.1:1", {{"d0", "/x"}}, 0};
  view.nodes["n2"] = {"n2", "127.0.0.1:2", {{"d0", "/x"}}, 0};
  view.nodes["n3"] = {"n3", "127.0.0.1:3", {{"d1", "/y"}}, 0};
  view.packs["a"] = {mapping_a(), 5, 0};
  auto unknown = plan_move(view, "zz", "n2", "");
  CHECK_THAT(unknown.status().message(), Catch::Contains("pack 'zz' is not mapped"));
  auto no_disk = plan_move(view, "a", "n3", "");
  CHECK_THAT(no_disk.status().message(),
             Catch::Contains("node n3 cannot be its primary: it has no disk 'd0'"));
  auto swap = must(plan_move(view, "a", "n2", ""));
  CHECK(swap.mapping.primary == DiskRef{"n2", "d0"});
  CHECK(swap.mapping.secondary == DiskRef{"n1", "d0"});
  CHECK(swap.mod_revision == 5);
  CHECK(swap.mapping.epoch == 2);
  auto replace = must(plan_move(view, "a", "n3", "d1"));
  CHECK(replace.mapping.primary == DiskRef{"n3", "d1"});
  CHECK(replace.mapping.secondary == DiskRef{"n2", "d0"});
  // A disk of the pack's pool made primary or secondary leaves the pool: a mapping lists each
  // server once (records.h refuses one listed twice).
  view.packs["a"].record.pool = {{"n3", "d1"}};
  auto from_pool = must(plan_move(view, "a", "n3", "d1"));
  CHECK(from_pool.mapping.primary == DiskRef{"n3", "d1"});
  CHECK(from_pool.mapping.pool.empty());
  CHECK(must(decode_pack("/vvm/pack/a", encode_pack(from_pool.mapping))) == from_pool.mapping);
  CHECK(must(plan_secondary(view, "a", "n3", "d1")).mapping.pool.empty());
  view.packs["a"].record.pool.clear();
  // A pool: each entry a live, undrained node with the disk, each node once.
  view.nodes["n4"] = {"n4", "127.0.0.1:4", {{"d0", "/x"}}, 0};
  auto pooled = must(plan_pool(view, "a", {{"n3", "d1"}, {"n4", ""}}));
  CHECK(pooled.mapping.pool == std::vector<DiskRef>{{"n3", "d1"}, {"n4", "d0"}});
  CHECK(pooled.mapping.epoch == 2);
  CHECK(must(decode_pack("/vvm/pack/a", encode_pack(pooled.mapping))) == pooled.mapping);
  CHECK_THAT(plan_pool(view, "a", {{"n9", "d0"}}).status().message(),
             Catch::Contains("pack 'a': node n9 cannot be its pool server: it is not a live "
                             "member of the cluster (live: n1, n2, n3, n4)"));
  CHECK_THAT(plan_pool(view, "a", {{"n3", "d0"}}).status().message(),
             Catch::Contains("node n3 cannot be its pool server: it has no disk 'd0' (its "
                             "disks: d1)"));
  CHECK_THAT(plan_pool(view, "a", {{"n4", "d0"}, {"n4", ""}}).status().message(),
             Catch::Contains("pack 'a': pool entry n4:d0 is listed twice (it is the pack's pool "
                             "entry n4:d0 already)"));
  CHECK_THAT(plan_pool(view, "a", {{"n3", "d1"}, {"n3", "d2"}}).status().message(),
             Catch::Contains("pool entry n3:d2: node n3 is named twice (it is the pack's pool "
                             "entry n3:d1 on disk d1)"));
  CHECK_THAT(plan_pool(view, "a", {{"n2", "d1"}}).status().message(),
             Catch::Contains("node n2 is named twice (it is the pack's secondary on disk d0)"));
  CHECK_THAT(plan_pool(view, "a", {{"n1", "d0"}}).status().message(),
             Catch::Contains("pool entry n1:d0 is listed twice (it is the pack's primary"));
  CHECK_THAT(plan_pool(view, "a", {}).status().message(),
             Catch::Contains("pack 'a' has no pool already"));
  view.packs["a"].record.pool = pooled.mapping.pool;
  CHECK_THAT(plan_pool(view, "a", {{"n3", "d1"}, {"n4", "d0"}}).status().message(),
             Catch::Contains("pack 'a': its pool is n3:d1, n4:d0 already"));
  CHECK(must(plan_pool(view, "a", {})).mapping.pool.empty());
  // A node of the pool made primary leaves the pool, whichever disk it is given.
  auto moved = must(plan_move(view, "a", "n4", ""));
  CHECK(moved.mapping.pool == std::vector<DiskRef>{{"n3", "d1"}});
  view.drained.insert("n4");
  CHECK_THAT(plan_pool(view, "a", {{"n4", "d0"}}).status().message(),
             Catch::Contains("node n4 cannot be its pool server: it is drained"));
  view.drained.clear();
  view.nodes.erase("n4");
  view.packs["a"].record.pool.clear();
  view.drained.insert("n2");
  CHECK_THAT(plan_move(view, "a", "n2", "").status().message(), Catch::Contains("drained"));
  CHECK_THAT(plan_secondary(view, "a", "n1", "").status().message(),
             Catch::Contains("node n1 is its primary"));
  CHECK_FALSE(must(plan_secondary(view, "a", "", "")).mapping.secondary);
  view.drained.clear();
  auto drain = must(plan_drain(view, "n1"));
  REQUIRE(drain.size() == 1);
  CHECK(drain[0].mapping.primary == DiskRef{"n2", "d0"});
  view.packs["a"].record.secondary.reset();
  CHECK_THAT(plan_drain(view, "n1").status().message(),
             Catch::Contains("pack 'a': its primary is n1 and it has no secondary"));
}

TEST_CASE("a drain takes the node out of every pool, as a pool entry and as a pool's secondary") {
  ClusterView view;
  for (const char* n : {"n1", "n2", "n3", "n4"}) {
    view.nodes[n] = {n, "127.0.0.1:1", {{"d0", "/x"}}, 0};
  }
  PackMapping a = mapping_a();  // n1, n2, pool n3, n4
  a.pool = {{"n3", "d0"}, {"n4", "d0"}};
  PackMapping b = mapping_a();  // n3, no secondary, pool n1
  b.name = "b";
  b.primary = {"n3", "d0"};
  b.secondary.reset();
  b.pool = {{"n1", "d0"}};
  PackMapping c = mapping_a();  // n2, n3, no pool: a drained secondary stays
  c.name = "c";
  c.primary = {"n2", "d0"};
  c.secondary = DiskRef{"n3", "d0"};
  view.packs["a"] = {a, 5, 0};
  view.packs["b"] = {b, 6, 0};
  view.packs["c"] = {c, 7, 0};
  auto named = [](const std::vector<Change>& changes, const std::string& pack) {
    for (const Change& ch : changes) {
      if (ch.mapping.name == pack) return ch.mapping;
    }
    FAIL("no change of pack " << pack);
    return PackMapping{};
  };

  // n4 is a pool entry of a only.
  auto n4 = must(plan_drain(view, "n4"));
  REQUIRE(n4.size() == 1);
  CHECK(n4[0].mapping.pool == std::vector<DiskRef>{{"n3", "d0"}});
  CHECK(n4[0].mapping.epoch == 2);
  CHECK(n4[0].mod_revision == 5);

  // n3: a pool entry of a, the primary of b (which has no secondary: n1 of its pool takes it),
  // the secondary of c (no pool: it stays).
  auto n3 = must(plan_drain(view, "n3"));
  REQUIRE(n3.size() == 2);
  CHECK(named(n3, "a").pool == std::vector<DiskRef>{{"n4", "d0"}});
  CHECK(named(n3, "b").primary == DiskRef{"n1", "d0"});
  CHECK(named(n3, "b").pool.empty());

  // n2: the secondary of a, whose pool stays (n3, n4): it leaves a; c's primary swaps with n3.
  auto n2 = must(plan_drain(view, "n2"));
  REQUIRE(n2.size() == 2);
  CHECK_FALSE(named(n2, "a").secondary);
  CHECK(named(n2, "a").primary == DiskRef{"n1", "d0"});
  CHECK(named(n2, "a").pool.size() == 2);
  CHECK(named(n2, "c").primary == DiskRef{"n3", "d0"});
  CHECK(named(n2, "c").secondary == DiskRef{"n2", "d0"});

  // n1: a's primary swaps with n2, then leaves (a keeps its pool); b's pool loses it.
  auto n1 = must(plan_drain(view, "n1"));
  REQUIRE(n1.size() == 2);
  CHECK(named(n1, "a").primary == DiskRef{"n2", "d0"});
  CHECK_FALSE(named(n1, "a").secondary);
  CHECK(named(n1, "b").pool.empty());
  for (const Change& ch : n1) CHECK(check_pool(ch.mapping).ok());

  // b's primary drained with no pool server able to take it: refused, naming the pack.
  view.drained.insert("n1");
  CHECK_THAT(plan_drain(view, "n3").status().message(),
             Catch::Contains("pack 'b': its primary is n3 and it has no secondary and no live, "
                             "undrained pool server to move to"));
}

TEST_CASE("an exclusive hold on one node refuses another node's client, naming the holder") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk, false);
  auto n2 = start_node(f.etcd.endpoint(), "n2", f.disk, false);
  auto h1 = must(plugin::ClusterHolds::create(
      {{{f.etcd.endpoint()}, 2000ms}, "/vvm/", "n1", n1->membership->lease_id(), {}, {}}));
  auto h2 = must(plugin::ClusterHolds::create(
      {{{f.etcd.endpoint()}, 2000ms}, "/vvm/", "n2", n2->membership->lease_id(), {}, {}}));
  REQUIRE(h1->acquire("a", HoldKind::kExclusive, "uid 1000").ok());
  Status refused = h2->acquire("a", HoldKind::kExclusive, "uid 1001");
  CHECK(refused.code() == Code::kBusy);
  CHECK_THAT(refused.message(), Catch::Contains("held exclusive by uid 1000 on node n1") &&
                                    Catch::Contains("uid 1001 on node n2"));
  CHECK(h2->acquire("a", HoldKind::kRead, "uid 1001").code() == Code::kBusy);
  h1->release("a", HoldKind::kExclusive, "uid 1000");
  CHECK(h2->acquire("a", HoldKind::kExclusive, "uid 1001").ok());
  // The holder's lease goes: so does its hold.
  n2->membership->leave();
  CHECK(eventually([&] { return f.keys_under(hold_prefix("/vvm/")) == 0; }));
  CHECK(h1->acquire("a", HoldKind::kExclusive, "uid 1000").ok());
}

namespace {

plugin::ClusterHolds::Options holds_options(const std::string& endpoint, const std::string& node,
                                            int64_t lease,
                                            std::chrono::milliseconds timeout = 2000ms) {
  plugin::ClusterHolds::Options o;
  o.etcd = {{endpoint}, timeout};
  o.prefix = "/vvm/";
  o.node = node;
  o.lease = lease;
  return o;
}

// The users record of `node`'s holders of pack a of `kind`, with the lease it is bound to.
std::optional<std::pair<PackUsers, int64_t>> users_of(EtcdClient& etcd, HoldKind kind,
                                                      const std::string& node) {
  auto kv = must(etcd.get(users_key("/vvm/", "a", kind, node)));
  if (!kv) return std::nullopt;
  return std::make_pair(must(decode_users(kv->key, kv->value)), kv->lease);
}

}  // namespace

TEST_CASE("readers and shared writers on one node and a hold on another follow one host's rules") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk, false);
  auto n2 = start_node(f.etcd.endpoint(), "n2", f.disk, false);
  auto h1 = must(plugin::ClusterHolds::create(
      holds_options(f.etcd.endpoint(), "n1", n1->membership->lease_id())));
  auto h2 = must(plugin::ClusterHolds::create(
      holds_options(f.etcd.endpoint(), "n2", n2->membership->lease_id())));

  // n2's reader: recorded under n2's lease; n1's exclusive hold refused, naming it.
  REQUIRE(h2->acquire("a", HoldKind::kRead, "uid 1001").ok());
  auto users = users_of(*f.client, HoldKind::kRead, "n2");
  REQUIRE(users);
  REQUIRE(users->first.clients.size() == 1);
  CHECK(users->first.clients[0].client == "uid 1001");
  CHECK(users->second == n2->membership->lease_id());
  Status refused = h1->acquire("a", HoldKind::kExclusive, "uid 1000");
  CHECK(refused.code() == Code::kBusy);
  CHECK_THAT(refused.message(),
             Catch::StartsWith("pack 'a' is held read by uid 1001 on node n2 (etcd key "
                               "/vvm/users/a/read/n2, since ") &&
                 Catch::EndsWith("uid 1000 on node n1 cannot have it exclusive"));
  CHECK(f.keys_under(hold_prefix("/vvm/")) == 0);
  // A second reader on n2: one key, two clients, which goes with the last of them.
  REQUIRE(h2->acquire("a", HoldKind::kRead, "uid 1002").ok());
  CHECK(users_of(*f.client, HoldKind::kRead, "n2")->first.clients.size() == 2);
  h2->release("a", HoldKind::kRead, "uid 1001");
  CHECK_THAT(h1->acquire("a", HoldKind::kExclusive, "uid 1000").message(),
             Catch::Contains("held read by uid 1002 on node n2"));
  h2->release("a", HoldKind::kRead, "uid 1002");
  CHECK(f.keys_under(users_prefix("/vvm/")) == 0);

  // n1 holds a exclusive: n2's reader refused, naming it; n1's holder may read a itself.
  REQUIRE(h1->acquire("a", HoldKind::kExclusive, "uid 1000").ok());
  refused = h2->acquire("a", HoldKind::kRead, "uid 1001");
  CHECK(refused.code() == Code::kBusy);
  CHECK_THAT(refused.message(), Catch::Contains("held exclusive by uid 1000 on node n1") &&
                                    Catch::EndsWith("uid 1001 on node n2 cannot have it read"));
  CHECK(f.keys_under(users_prefix("/vvm/")) == 0);
  REQUIRE(h1->acquire("a", HoldKind::kRead, "uid 1000").ok());
  CHECK(users_of(*f.client, HoldKind::kRead, "n1"));
  h1->release("a", HoldKind::kRead, "uid 1000");
  h1->release("a", HoldKind::kExclusive, "uid 1000");
  CHECK(f.keys_under(hold_prefix("/vvm/")) == 0);
  CHECK(f.keys_under(users_prefix("/vvm/")) == 0);

  // Shared writers share across nodes; a reader of another node is refused by them, and an
  // exclusive hold by the other node's (a node's own are its registry's to judge).
  REQUIRE(h1->acquire("a", HoldKind::kShared, "uid 1000").ok());
  REQUIRE(h2->acquire("a", HoldKind::kShared, "uid 1001").ok());
  CHECK_THAT(h2->acquire("a", HoldKind::kRead, "uid 1003").message(),
             Catch::Contains("held shared by uid 1000 on node n1 (etcd key "
                             "/vvm/users/a/shared/n1, since ") &&
                 Catch::EndsWith("uid 1003 on node n2 cannot have it read"));
  CHECK_THAT(h1->acquire("a", HoldKind::kExclusive, "uid 1005").message(),
             Catch::Contains("held shared by uid 1001 on node n2"));
  CHECK_FALSE(users_of(*f.client, HoldKind::kRead, "n2"));
  h1->release("a", HoldKind::kShared, "uid 1000");
  h2->release("a", HoldKind::kShared, "uid 1001");

  // Readers share across nodes, and refuse another node's shared writer.
  REQUIRE(h1->acquire("a", HoldKind::kRead, "uid 1000").ok());
  REQUIRE(h2->acquire("a", HoldKind::kRead, "uid 1001").ok());
  CHECK_THAT(h2->acquire("a", HoldKind::kShared, "uid 1009").message(),
             Catch::Contains("held read by uid 1000 on node n1"));
  // Garbage where another node's readers would be is in the way too, and named.
  REQUIRE(f.client->put(users_key("/vvm/", "a", HoldKind::kRead, "n3"), "garbage").ok());
  CHECK_THAT(h1->acquire("a", HoldKind::kShared, "uid 1010").message(),
             Catch::Contains("held read by uid 1001 on node n2"));
  h2->release("a", HoldKind::kRead, "uid 1001");
  CHECK_FALSE(users_of(*f.client, HoldKind::kRead, "n2"));
  CHECK_THAT(h1->acquire("a", HoldKind::kShared, "uid 1010").message(),
             Catch::StartsWith("pack 'a' is held by etcd key /vvm/users/a/read/n3, which does not "
                               "read (etcd key /vvm/users/a/read/n3: not JSON"));
  REQUIRE(f.client->erase(users_key("/vvm/", "a", HoldKind::kRead, "n3")).ok());
  // n2's lease goes: its keys with it, and n1's reader alone is no obstacle to n1.
  REQUIRE(h2->acquire("a", HoldKind::kRead, "uid 1001").ok());
  CHECK(users_of(*f.client, HoldKind::kRead, "n2"));
  n2->membership->leave();
  CHECK(eventually([&] { return !users_of(*f.client, HoldKind::kRead, "n2"); }));
  h1->release("a", HoldKind::kRead, "uid 1000");
  CHECK(h1->acquire("a", HoldKind::kExclusive, "uid 1000").ok());
}

// A transaction sent to a member that stopped before answering is sent again elsewhere; the
// stopped member may still hand its copy on when it resumes, later. That copy, applied after the
// hold (or the reader) was released, must not bring it back.
TEST_CASE("a late copy of a hold's or a reader's transaction cannot bring back what was released") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk, false);
  auto n2 = start_node(f.etcd.endpoint(), "n2", f.disk, false);
  std::vector<Txn> sent;
  auto o = holds_options(f.etcd.endpoint(), "n1", n1->membership->lease_id());
  o.sent = [&](const Txn& t) { sent.push_back(t); };
  auto h1 = must(plugin::ClusterHolds::create(o));
  auto h2 = must(plugin::ClusterHolds::create(
      holds_options(f.etcd.endpoint(), "n2", n2->membership->lease_id())));

  REQUIRE(h1->acquire("a", HoldKind::kExclusive, "uid 1000").ok());
  REQUIRE_FALSE(sent.empty());
  const Txn hold = sent.back();
  h1->release("a", HoldKind::kExclusive, "uid 1000");
  REQUIRE(f.keys_under(hold_prefix("/vvm/")) == 0);
  auto late = must(f.client->txn(hold));
  CHECK_FALSE(late.succeeded);
  CHECK(f.keys_under(hold_prefix("/vvm/")) == 0);
  CHECK(h2->acquire("a", HoldKind::kExclusive, "uid 1001").ok());
  h2->release("a", HoldKind::kExclusive, "uid 1001");

  REQUIRE(h1->acquire("a", HoldKind::kRead, "uid 1000").ok());
  const Txn reader = sent.back();
  h1->release("a", HoldKind::kRead, "uid 1000");
  REQUIRE(f.keys_under(users_prefix("/vvm/")) == 0);
  late = must(f.client->txn(reader));
  CHECK_FALSE(late.succeeded);
  CHECK(f.keys_under(users_prefix("/vvm/")) == 0);
  CHECK(h2->acquire("a", HoldKind::kExclusive, "uid 1001").ok());
}

TEST_CASE("with etcd away a reader is let in and recorded once etcd answers; a hold is refused") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk, false);
  const int64_t lease = n1->membership->lease_id();
  auto h1 =
      must(plugin::ClusterHolds::create(holds_options(f.etcd.endpoint(), "n1", lease, 500ms)));
  // n2 resyncs by itself, as the plugin does.
  auto n2 = start_node(f.etcd.endpoint(), "n2", f.disk, false);
  auto o2 = holds_options(f.etcd.endpoint(), "n2", n2->membership->lease_id(), 500ms);
  o2.resync_every = 100ms;
  auto h2 = must(plugin::ClusterHolds::create(o2));
  REQUIRE(f.etcd.stop().ok());
  CHECK(h1->acquire("a", HoldKind::kRead, "uid 1000").ok());
  CHECK(h2->acquire("a", HoldKind::kRead, "uid 2000").ok());
  Status refused = h1->acquire("b", HoldKind::kExclusive, "uid 1001");
  CHECK(refused.code() == Code::kUnavailable);
  CHECK_THAT(refused.message(),
             Catch::Contains("pack 'b': uid 1001 cannot have it exclusive: the hold cannot be "
                             "recorded in etcd"));
  h1->resync();  // etcd away still: nothing written, nothing lost
  REQUIRE(f.etcd.restart().ok());
  h1->resync();
  auto users = users_of(*f.client, HoldKind::kRead, "n1");
  REQUIRE(users);
  CHECK(users->first.clients.at(0).client == "uid 1000");
  CHECK(users->second == lease);
  CHECK(f.keys_under(hold_prefix("/vvm/")) == 0);
  CHECK(eventually([&] { return users_of(*f.client, HoldKind::kRead, "n2").has_value(); }));
  // Released while etcd is away: the key goes once it answers.
  REQUIRE(f.etcd.stop().ok());
  h1->release("a", HoldKind::kRead, "uid 1000");
  h2->release("a", HoldKind::kRead, "uid 2000");
  REQUIRE(f.etcd.restart().ok());
  CHECK(users_of(*f.client, HoldKind::kRead, "n1"));
  h1->resync();
  CHECK_FALSE(users_of(*f.client, HoldKind::kRead, "n1"));
  CHECK(eventually([&] { return !users_of(*f.client, HoldKind::kRead, "n2"); }));
}

TEST_CASE("a rejoin forgets the node's users; new ones are recorded under the new lease") {
  Fixture f;
  auto n1 = start_node(f.etcd.endpoint(), "n1", f.disk, false);
  auto h1 = must(plugin::ClusterHolds::create(
      holds_options(f.etcd.endpoint(), "n1", n1->membership->lease_id())));
  REQUIRE(h1->acquire("a", HoldKind::kRead, "uid 1000").ok());
  n1->membership->leave();  // the old lease goes, and its keys
  const Lease next = must(f.client->lease_grant(10));
  h1->set_lease(next.id);
  CHECK_FALSE(users_of(*f.client, HoldKind::kRead, "n1"));
  REQUIRE(h1->acquire("a", HoldKind::kRead, "uid 1001").ok());
  h1->release("a", HoldKind::kRead, "uid 1000");  // a holder from before: forgotten
  auto users = users_of(*f.client, HoldKind::kRead, "n1");
  REQUIRE(users);
  CHECK(users->second == next.id);
  REQUIRE(users->first.clients.size() == 1);
  CHECK(users->first.clients[0].client == "uid 1001");
}
