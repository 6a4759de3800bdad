// cluster_records_test.cc: the cluster's records (client/cluster/records.h): their JSON, and that
// every bad field is refused with the key and the reason; listing a prefix with garbage in it
// against a real etcd.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cluster/etcd_client.h"
#include "cluster/records.h"
#include "etcd.h"
#include "process.h"

using namespace vvm;
using namespace vvm::cluster;
using vvm::test::must;

namespace {

PackMapping sample_pack() {
  PackMapping p;
  p.name = "home0";
  p.primary = {"n1", "d0"};
  p.secondary = DiskRef{"n2", "d0"};
  p.offset = 1 << 20;
  p.size = uint64_t{100} << 30;
  p.mode = PackMode::kExclusive;
  p.owner = 1000;
  p.group = 100;
  p.perms = 0660;
  p.epoch = 3;
  return p;
}

// The sample pack's JSON with `field` set to `json` (a JSON text), or removed when it is "".
std::string pack_with(const std::string& field, const std::string& json) {
  auto j = nlohmann::json::parse(encode_pack(sample_pack()));
  if (json.empty()) {
    j.erase(field);
  } else {
    j[field] = nlohmann::json::parse(json);
  }
  return j.dump();
}

}  // namespace

TEST_CASE("keys sit under the prefix") {
  CHECK(node_key("/vvm/", "n1") == "/vvm/node/n1");
  CHECK(pack_key("/vvm/", "home0") == "/vvm/pack/home0");
  CHECK(pack_prefix("/site/vvm/") == "/site/vvm/pack/");
}

TEST_CASE("a pack mapping survives its JSON, with and without a secondary") {
  PackMapping p = sample_pack();
  auto back = decode_pack("/vvm/pack/home0", encode_pack(p));
  REQUIRE(back.ok());
  CHECK(*back == p);
  p.secondary.reset();
  back = decode_pack("/vvm/pack/home0", encode_pack(p));
  REQUIRE(back.ok());
  CHECK(*back == p);
  CHECK(encode_pack(p).find("\"perms\":\"0660\"") != std::string::npos);
}

TEST_CASE("a pack mapping's pool: golden JSON, and a mapping without one as before") {
  PackMapping p = sample_pack();
  p.pool = {{"n3", "d0"}, {"n4", "d1"}};
  const std::string json =
      R"({"epoch":3,"group":100,"mode":"exclusive","name":"home0","offset":1048576,)"
      R"("owner":1000,"perms":"0660","pool":[{"disk":"d0","node":"n3"},{"disk":"d1","node":"n4"}],)"
      R"("primary":{"disk":"d0","node":"n1"},"secondary":{"disk":"d0","node":"n2"},)"
      R"("size":107374182400})";
  CHECK(encode_pack(p) == json);
  CHECK(must(decode_pack("/vvm/pack/home0", json)) == p);
  // A record written before pools existed (no field) still reads, with no pool.
  const std::string old_json =
      R"({"epoch":3,"group":100,"mode":"exclusive","name":"home0","offset":1048576,)"
      R"("owner":1000,"perms":"0660","primary":{"disk":"d0","node":"n1"},)"
      R"("secondary":{"disk":"d0","node":"n2"},"size":107374182400})";
  CHECK(encode_pack(sample_pack()) == old_json);
  CHECK(must(decode_pack("/vvm/pack/home0", old_json)).pool.empty());

  auto bad = [](const std::string& pool_json) {
    auto r = decode_pack("/vvm/pack/home0", pack_with("pool", pool_json));
    REQUIRE_FALSE(r.ok());
    return r.status().message();
  };
  CHECK(bad(R"({"node":"n3"})") ==
        R"(etcd key /vvm/pack/home0: field 'pool': {"node":"n3"} is not a list of disks)");
  CHECK(bad(R"([{"node":"n3"}])") == "etcd key /vvm/pack/home0: no field 'pool[0].disk'");
  CHECK(bad(R"([7])") == "etcd key /vvm/pack/home0: field 'pool': entry 0: 7 is not a disk");
  CHECK(bad(R"([{"node":"n2","disk":"d0"}])") ==
        "etcd key /vvm/pack/home0: field 'pool': n2:d0 is listed twice (primary, secondary and "
        "pool are each one server)");
  CHECK(bad(R"([{"node":"n2","disk":"d1"}])") ==
        "etcd key /vvm/pack/home0: field 'pool': n2:d1: node n2 is named twice (a node serves a "
        "pack from one disk)");
  CHECK(bad(R"([{"node":"n3","disk":"d0"},{"node":"n3","disk":"d1"}])") ==
        "etcd key /vvm/pack/home0: field 'pool': n3:d1: node n3 is named twice (a node serves a "
        "pack from one disk)");
  CHECK(bad(R"([{"node":"n/3","disk":"d0"}])")
            .starts_with("etcd key /vvm/pack/home0: field 'pool[0].node'"));
}

TEST_CASE("a node record survives its JSON") {
  NodeRecord n{"n1", "127.0.0.1:10809", {{"d0", "/dev/sdb"}, {"cache", "/srv/cache"}}, 1765090000};
  auto back = decode_node("/vvm/node/n1", encode_node(n));
  REQUIRE(back.ok());
  CHECK(*back == n);
}

TEST_CASE("every bad field of a pack mapping is named with its key") {
  const std::string key = "/vvm/pack/home0";
  struct Case {
    std::string field, json, reason;
  };
  const std::vector<Case> cases = {
      {"size", "", "no field 'size'"},
      {"size", "0", "field 'size': 0 is not a size"},
      {"size", "\"10G\"", "field 'size': \"10G\" is not a whole number"},
      {"offset", "-1", "field 'offset': -1 is not a whole number"},
      {"offset", "18446744073709551615", "field 'size': offset 18446744073709551615 + size"},
      {"mode", "\"rw\"", "field 'mode': bad mode 'rw'"},
      {"perms", "\"0999\"", "field 'perms': bad perms '0999'"},
      {"perms", "660", "field 'perms': 660 is not a string"},
      {"owner", "4294967295", "field 'owner': 4294967295 is more than"},
      {"epoch", "0", "field 'epoch': 0 is not an epoch"},
      {"name", "\"other\"", "field 'name': 'other' is not the key's name 'home0'"},
      {"name", "\"a b\"", "field 'name': bad character ' '"},
      {"primary", "\"n1\"", "field 'primary': \"n1\" is not an object"},
      {"primary", R"({"node":"n1"})", "no field 'primary.disk'"},
      {"secondary", R"({"node":"n1","disk":"d/0"})", "field 'secondary.disk': bad character '/'"},
      {"secondary", R"({"node":"n1","disk":"d0"})", "field 'secondary': the same as the primary"},
  };
  for (const auto& c : cases) {
    INFO(c.field << " = " << c.json);
    auto r = decode_pack(key, pack_with(c.field, c.json));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::StartsWith("etcd key /vvm/pack/home0: "));
    CHECK_THAT(r.status().message(), Catch::Contains(c.reason));
  }
  for (const char* garbage : {"", "not json", "[1,2]", "42", "{\"name\":"}) {
    INFO(garbage);
    auto r = decode_pack(key, garbage);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::StartsWith("etcd key /vvm/pack/home0: "));
  }
  // A field a newer writer added is no reason to refuse the record.
  CHECK(decode_pack(key, pack_with("paths", R"({"n1":"up"})")).ok());
}

TEST_CASE("a path record survives its JSON, and must match its key") {
  PathRecord p{"home0", "n1", "d0", "pread: Input/output error", 1765090000};
  CHECK(path_key("/vvm/", "home0", "n1") == "/vvm/path/home0/n1");
  CHECK(must(decode_path("/vvm/path/home0/n1", encode_path(p))) == p);
  auto other = decode_path("/vvm/path/home0/n2", encode_path(p));
  REQUIRE_FALSE(other.ok());
  CHECK(other.status().message() ==
        "etcd key /vvm/path/home0/n2: field 'pack': 'home0' and node 'n1' are not the key's");
  auto garbage = decode_path("/vvm/path/x/n1", "{\"pack\":1}");
  REQUIRE_FALSE(garbage.ok());
  CHECK(garbage.status().message() == "etcd key /vvm/path/x/n1: field 'pack': 1 is not a string");
}

TEST_CASE("every bad field of a node record is named with its key") {
  const std::string key = "/vvm/node/n1";
  auto r = decode_node(key, R"({"name":"n1","address":"nowhere","disks":{},"started":1})");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "etcd key /vvm/node/n1: field 'address': 'nowhere' is not HOST:PORT");
  r = decode_node(key, R"({"name":"n1","address":"h:1","disks":{"d0":"rel/path"},"started":1})");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("disk 'd0': \"rel/path\" is not an absolute"));
  r = decode_node(key, R"({"name":"n1","address":"h:1","disks":{"d 0":"/x"},"started":1})");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("disk 'd 0': bad character ' '"));
  r = decode_node(key, R"({"name":"n1","address":"h:1","disks":{}})");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("no field 'started'"));
}

TEST_CASE("listing a prefix skips garbage, naming each bad key") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto c = must(EtcdClient::create({{etcd.endpoint()}}));
  PackMapping good = sample_pack();
  REQUIRE(c->put(pack_key("/vvm/", good.name), encode_pack(good)).ok());
  REQUIRE(c->put("/vvm/pack/junk", "{{{").ok());
  REQUIRE(c->put("/vvm/pack/zero", pack_with("size", "0")).ok());
  auto listing = list_packs(*c, "/vvm/");
  REQUIRE(listing.ok());
  REQUIRE(listing->items.size() == 1);
  CHECK(listing->items[0].record == good);
  REQUIRE(listing->problems.size() == 2);
  CHECK_THAT(listing->problems[0].message(), Catch::StartsWith("etcd key /vvm/pack/junk: "));
  CHECK_THAT(listing->problems[1].message(), Catch::StartsWith("etcd key /vvm/pack/zero: "));
  CHECK(listing->revision > 0);
}

// The JSON of the reconfiguration and hold records, as etcd keeps them: any change to these
// bytes is a change of what nodes of different versions read.
TEST_CASE("the reconfiguration, ack, hold and drain records' golden JSON") {
  ReconfIntent intent{
      "18c2f-0000002a", {"home0"}, {sample_pack()}, "vvctl on h1, pid 42", 1765090010000};
  const std::string intent_json =
      R"({"by":"vvctl on h1, pid 42","deadline_ms":1765090010000,"id":"18c2f-0000002a",)"
      R"("mappings":[{"epoch":3,"group":100,"mode":"exclusive","name":"home0","offset":1048576,)"
      R"("owner":1000,"perms":"0660","primary":{"disk":"d0","node":"n1"},)"
      R"("secondary":{"disk":"d0","node":"n2"},"size":107374182400}],"packs":["home0"]})";
  CHECK(encode_intent(intent) == intent_json);
  CHECK(must(decode_intent("/vvm/reconf/18c2f-0000002a", intent_json)) == intent);
  CHECK(reconf_key("/vvm/", "x1") == "/vvm/reconf/x1");
  CHECK(ack_key("/vvm/", "x1", "n2") == "/vvm/ack/x1/n2");
  CHECK(hold_key("/vvm/", "home0") == "/vvm/hold/home0");
  CHECK(drained_key("/vvm/", "n2") == "/vvm/drained/n2");

  const std::string ack_json = R"({"drained_us":250,"node":"n1"})";
  CHECK(encode_ack({"n1", 250}) == ack_json);
  CHECK(must(decode_ack("/vvm/ack/x1/n1", ack_json)) == ReconfAck{"n1", 250});

  const std::string hold_json =
      R"({"client":"uid 1000","node":"n1","pack":"home0","since":1765090000})";
  ClusterHold hold{"home0", "n1", "uid 1000", 1765090000};
  CHECK(encode_hold(hold) == hold_json);
  CHECK(must(decode_hold("/vvm/hold/home0", hold_json)) == hold);

  const std::string drain_json = R"({"node":"n2","since":1765090000})";
  CHECK(encode_drain({"n2", 1765090000}) == drain_json);
  CHECK(must(decode_drain("/vvm/drained/n2", drain_json)) == DrainMark{"n2", 1765090000});
}

// The users and hold sequence records (cluster_holds.h), as etcd keeps them.
TEST_CASE("the users and hold sequence records' golden JSON") {
  CHECK(users_prefix("/vvm/") == "/vvm/users/");
  CHECK(pack_users_prefix("/vvm/", "home0", HoldKind::kShared) == "/vvm/users/home0/shared/");
  CHECK(users_key("/vvm/", "home0", HoldKind::kRead, "n2") == "/vvm/users/home0/read/n2");
  CHECK(holdseq_key("/vvm/", "n1") == "/vvm/holdseq/n1");

  const std::string users_json =
      R"({"clients":[{"client":"uid 1000","since":1765090000},)"
      R"({"client":"host 10.0.0.5","since":1765090001}],"kind":"read","node":"n2","pack":"home0"})";
  PackUsers users{
      "home0", HoldKind::kRead, "n2", {{"uid 1000", 1765090000}, {"host 10.0.0.5", 1765090001}}};
  CHECK(encode_users(users) == users_json);
  CHECK(must(decode_users("/vvm/users/home0/read/n2", users_json)) == users);
  PackUsers shared{"home0", HoldKind::kShared, "n1", {{"uid 0", 1}}};
  CHECK(must(decode_users("/vvm/users/home0/shared/n1", encode_users(shared))) == shared);

  const std::string seq_json = R"({"node":"n1","seq":42})";
  CHECK(encode_holdseq({"n1", 42}) == seq_json);
  CHECK(must(decode_holdseq("/vvm/holdseq/n1", seq_json)) == HoldSequence{"n1", 42});
}

TEST_CASE("a bad users record is refused naming its key and the field") {
  auto bad = [](const std::string& key, const std::string& json) {
    auto r = decode_users(key, json);
    REQUIRE_FALSE(r.ok());
    return r.status().message();
  };
  const std::string good =
      R"({"clients":[{"client":"uid 1000","since":1}],"kind":"read","node":"n2","pack":"a"})";
  REQUIRE(decode_users("/vvm/users/a/read/n2", good).ok());
  CHECK_THAT(bad("/vvm/users/a/read/n3", good),
             Catch::Contains("etcd key /vvm/users/a/read/n3: field 'pack': 'a', kind 'read' and "
                             "node 'n2' are not the key's"));
  CHECK_THAT(bad("/vvm/users/a/shared/n2", good), Catch::Contains("are not the key's"));
  auto j = nlohmann::json::parse(good);
  j["kind"] = "exclusive";
  CHECK_THAT(bad("/vvm/users/a/exclusive/n2", j.dump()),
             Catch::Contains("field 'kind': 'exclusive' is not read or shared"));
  j["kind"] = "read";
  j["clients"] = nlohmann::json::array();
  CHECK_THAT(bad("/vvm/users/a/read/n2", j.dump()),
             Catch::Contains("field 'clients': names no client"));
  j["clients"] = {{{"client", "uid 1"}, {"since", -1}}};
  CHECK_THAT(bad("/vvm/users/a/read/n2", j.dump()),
             Catch::Contains("field 'clients[0].since': -1 is not a whole number"));
  CHECK_THAT(bad("/vvm/users/a/read/n2", "garbage"),
             Catch::Contains("etcd key /vvm/users/a/read/n2: not JSON"));
  CHECK_THAT(decode_holdseq("/vvm/holdseq/n2", R"({"node":"n1","seq":1})").status().message(),
             Catch::Contains("etcd key /vvm/holdseq/n2: field 'name': 'n1' is not the key's"));
}

TEST_CASE("a bad intent is refused naming its key, or its mapping's") {
  auto j =
      nlohmann::json::parse(encode_intent({"i1", {"home0"}, {sample_pack()}, "me", 1765090010000}));
  j["packs"] = nlohmann::json::array();
  CHECK_THAT(decode_intent("/vvm/reconf/i1", j.dump()).status().message(),
             Catch::Contains("etcd key /vvm/reconf/i1: field 'packs': names no pack"));
  j["packs"] = {"home0"};
  j["mappings"][0]["size"] = 0;
  CHECK_THAT(decode_intent("/vvm/reconf/i1", j.dump()).status().message(),
             Catch::Contains("etcd key /vvm/reconf/i1 mappings/home0: field 'size'"));
  CHECK_THAT(
      decode_intent("/vvm/reconf/i2", encode_intent({"i1", {"a"}, {}, "me", 1})).status().message(),
      Catch::Contains("'i1' is not the key's name 'i2'"));
}
