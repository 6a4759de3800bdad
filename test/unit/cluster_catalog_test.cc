// cluster_catalog_test.cc: which packs a cluster node serves from the mappings in etcd
// (nbdkit-plugin/cluster_catalog.h, node_catalog): those whose primary or secondary is the node,
// each on the node's disk the mapping names; the others left out with their key and reason.
#include <unistd.h>

#include <catch2/catch.hpp>

#include "cluster/records.h"
#include "cluster_catalog.h"
#include "process.h"

using namespace vvm;
using namespace vvm::cluster;
using vvm::plugin::node_catalog;
using vvm::plugin::node_routes;
using vvm::test::must;

namespace {

PackMapping mapping(const std::string& name, DiskRef primary, std::optional<DiskRef> secondary,
                    uint64_t offset, uint64_t size) {
  PackMapping m;
  m.name = name;
  m.primary = std::move(primary);
  m.secondary = std::move(secondary);
  m.offset = offset;
  m.size = size;
  m.mode = PackMode::kShared;
  m.perms = 0660;
  return m;
}

std::vector<std::string> export_names(const plugin::PackCatalog& c) {
  std::vector<std::string> names;
  for (const auto& e : c.exports()) names.push_back(e.name);
  return names;
}

}  // namespace

TEST_CASE("a node serves the packs mapped to it, primary or secondary, from its own disk") {
  auto dir = must(test::TempDir::create());
  const std::string disk = dir.file("disk.img");
  must(test::write_file(disk, std::string(4 << 20, '\0')));
  const std::map<std::string, std::string> disks = {{"d0", disk}};
  std::vector<PackMapping> mappings = {
      mapping("a", {"n1", "d0"}, std::nullopt, 0, 1 << 20),
      mapping("b", {"n2", "d0"}, DiskRef{"n1", "d0"}, 1 << 20, 1 << 20),
      mapping("z", {"n2", "d0"}, std::nullopt, 2 << 20, 1 << 20),
  };
  auto built = node_catalog(mappings, "n1", disks, "/vvm/");
  CHECK(built.problems.empty());
  CHECK(export_names(built.catalog) ==
        std::vector<std::string>{"pack/a", "pack/a@ro", "pack/b", "pack/b@ro"});
  auto b = built.catalog.find("pack/b");
  REQUIRE(b.ok());
  CHECK((*b)->pack.backing == disk);
  CHECK((*b)->pack.offset == 1 << 20);
  CHECK(export_names(node_catalog(mappings, "n3", disks, "/vvm/").catalog).empty());
}

TEST_CASE("a mapping the node cannot serve is left out, named, and spoils nothing else") {
  auto dir = must(test::TempDir::create());
  const std::string disk = dir.file("disk.img");
  must(test::write_file(disk, std::string(4 << 20, '\0')));
  std::vector<PackMapping> mappings = {
      mapping("a", {"n1", "d0"}, std::nullopt, 0, 1 << 20),
      mapping("nodisk", {"n1", "d9"}, std::nullopt, 0, 1 << 20),
      mapping("long", {"n1", "d0"}, std::nullopt, 3 << 20, 2 << 20),
      mapping("overlap", {"n1", "d0"}, std::nullopt, 512 << 10, 1 << 20),
  };
  auto built = node_catalog(mappings, "n1", {{"d0", disk}}, "/vvm/");
  CHECK(export_names(built.catalog) == std::vector<std::string>{"pack/a", "pack/a@ro"});
  REQUIRE(built.problems.size() == 3);
  CHECK_THAT(built.problems[0].message(),
             Catch::StartsWith("etcd key /vvm/pack/nodisk: disk 'd9' of node n1 is not one of "
                               "this node's disks ([cluster] disk gives: d0)"));
  CHECK_THAT(built.problems[1].message(),
             Catch::StartsWith("etcd key /vvm/pack/long: pack 'long'"));
  CHECK_THAT(built.problems[1].message(), Catch::Contains("past the end of its backing"));
  CHECK_THAT(built.problems[2].message(),
             Catch::StartsWith("etcd key /vvm/pack/overlap: pack 'overlap'"));
  CHECK_THAT(built.problems[2].message(), Catch::Contains("'a'"));
}

TEST_CASE("a node forwards the packs it does not serve to their nodes' advertised addresses") {
  std::map<std::string, NodeRecord> known = {
      {"n2", {"n2", "127.0.0.3:10809", {{"d0", "/x"}}, 0}},
      {"n3", {"n3", "127.0.0.4:10809", {{"d0", "/x"}}, 0}},
  };
  std::vector<PackMapping> mappings = {
      mapping("a", {"n2", "d0"}, DiskRef{"n3", "d0"}, 0, 1 << 20),
      mapping("mine", {"n1", "d0"}, DiskRef{"n2", "d0"}, 1 << 20, 1 << 20),
      mapping("lonely", {"n9", "d0"}, std::nullopt, 2 << 20, 1 << 20),
      mapping("nodisk", {"n2", "d9"}, DiskRef{"n3", "d0"}, 3 << 20, 1 << 20),
  };
  mappings[0].epoch = 4;
  std::vector<PathRecord> paths = {{"a", "n3", "d0", "pread: Input/output error", 1}};

  SECTION("every node present") {
    auto r = node_routes(mappings, "n1", known, {"n2", "n3"}, paths, "/vvm/");
    REQUIRE(r.routes.size() == 2);  // a and nodisk; mine is local, lonely has no node
    const plugin::Route& a = r.routes[0];
    CHECK(a.pack == "a");
    CHECK(a.epoch == 4);
    CHECK(a.entry.size == 1 << 20);
    REQUIRE(a.servers.size() == 2);
    CHECK(a.servers[0].node == "n2");
    CHECK(a.servers[0].uri == "nbd://127.0.0.3:10809/pack/a@local");
    CHECK(a.servers[0].down.empty());
    CHECK(a.servers[1].uri == "nbd://127.0.0.4:10809/pack/a@local");
    CHECK(a.servers[1].down ==
          "its path to the disk is down (/vvm/path/a/n3): pread: Input/output error");
    const plugin::Route& nodisk = r.routes[1];
    REQUIRE(nodisk.servers.size() == 1);  // n2 lacks d9: only n3
    CHECK(nodisk.servers[0].node == "n3");
    REQUIRE(r.problems.size() == 3);
    CHECK(r.problems[0].message() ==
          "etcd key /vvm/pack/lonely: node n9 is not registered (no key /vvm/node/n9): pack "
          "'lonely' is not forwarded to it");
    CHECK(r.problems[1].message() ==
          "etcd key /vvm/pack/lonely: no registered node serves pack 'lonely': not served here");
    CHECK(r.problems[2].message() ==
          "etcd key /vvm/pack/nodisk: disk 'd9' is not one of node n2's disks: pack 'nodisk' is "
          "not forwarded to it");
    // mine is served here, and by n2: where n1's own clients go when n1's path fails.
    REQUIRE(r.fallbacks.size() == 1);
    CHECK(r.fallbacks[0].pack == "mine");
    REQUIRE(r.fallbacks[0].servers.size() == 1);
    CHECK(r.fallbacks[0].servers[0].node == "n2");
    CHECK(r.fallbacks[0].servers[0].uri == "nbd://127.0.0.3:10809/pack/mine@local");
  }
  SECTION("a node whose key has gone is listed down, at its last address") {
    auto r = node_routes(mappings, "n1", known, {"n3"}, {}, "/vvm/");
    REQUIRE(r.routes.size() == 2);
    CHECK(r.routes[0].servers[0].uri == "nbd://127.0.0.3:10809/pack/a@local");
    CHECK(r.routes[0].servers[0].down ==
          "node n2 has left the cluster (its key /vvm/node/n2 is gone)");
    CHECK(r.routes[0].servers[1].down.empty());
  }
}

TEST_CASE("a pack with a pool: every node of it serves it, the others forward to all by load") {
  std::map<std::string, NodeRecord> known = {
      {"n2", {"n2", "127.0.0.3:10809", {{"d0", "/x"}}, 0}},
      {"n3", {"n3", "127.0.0.4:10809", {{"d0", "/x"}}, 0}},
      {"n4", {"n4", "127.0.0.5:10809", {{"d0", "/x"}}, 0}},
  };
  std::vector<PackMapping> mappings = {mapping("p", {"n2", "d0"}, DiskRef{"n3", "d0"}, 0, 1 << 20)};
  mappings[0].pool = {{"n4", "d0"}};

  auto r = node_routes(mappings, "n1", known, {"n2", "n3", "n4"}, {}, "/vvm/");
  REQUIRE(r.routes.size() == 1);
  CHECK(r.routes[0].pool);
  REQUIRE(r.routes[0].servers.size() == 3);
  CHECK(r.routes[0].servers[2].uri == "nbd://127.0.0.5:10809/pack/p@local");

  // n4, in the pool, serves p from its own disk; its fallback is the two others, by load.
  auto mine = node_routes(mappings, "n4", known, {"n2", "n3", "n4"}, {}, "/vvm/");
  CHECK(mine.routes.empty());
  REQUIRE(mine.fallbacks.size() == 1);
  CHECK(mine.fallbacks[0].pool);
  REQUIRE(mine.fallbacks[0].servers.size() == 2);
  CHECK(mine.fallbacks[0].servers[0].node == "n2");
  CHECK(mine.fallbacks[0].servers[1].node == "n3");
  CHECK(vvm::plugin::own_copy(mappings[0], "n4") == &mappings[0].pool[0]);
  CHECK(vvm::plugin::own_copy(mappings[0], "n1") == nullptr);
}
