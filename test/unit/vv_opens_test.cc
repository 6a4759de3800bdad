// vv_opens_test.cc: vvmd's rules for opening VVs through the plugin's vv/NAME exports, over a real
// catalogue and database: probes change nothing, uses register and count as accesses, mode bits
// decide who reads and writes, one writer host at a time, read-only once finished, not ready when
// evicted, and the opens of a control connection forgotten when it ends. With the real plugin and
// clients: test/integration/vv-export.sh.
#include <catch2/catch.hpp>
#include <map>

#include "catalog/catalog.h"
#include "catalog/vv_opens.h"
#include "db/database.h"
#include "process.h"

using namespace vvm;
using namespace vvm::vvmd;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

// The plugin's control connection: root, as nbdkit usually runs; `session` tells them apart.
rpc::Peer plugin(uint64_t session, uid_t uid = 0) {
  rpc::Peer p;
  p.kind = Endpoint::Kind::kUnix;
  p.uid = uid;
  p.gid = uid;
  p.session = session;
  return p;
}

// An NBD peer on a Unix socket of the nbdkit on `host`.
rpc::VvOpenRequest local(const std::string& name, uid_t uid, gid_t gid, bool writable, bool use,
                         const std::string& host = "nbd1") {
  rpc::VvOpenRequest r;
  r.name = name;
  r.writable = writable;
  r.use = use;
  r.uid = uid;
  r.gid = gid;
  r.host = host;
  return r;
}

rpc::VvOpenRequest tcp(const std::string& name, const std::string& host, bool writable, bool use) {
  rpc::VvOpenRequest r;
  r.name = name;
  r.writable = writable;
  r.use = use;
  r.tcp = true;
  r.host = host;
  return r;
}

struct Fixture {
  TempDir dir = must(TempDir::create());
  std::unique_ptr<db::Database> db = must(open_database(dir.file("db")));
  uint64_t clock = 1'700'000'000;
  std::unique_ptr<Catalog> catalog;
  std::unique_ptr<VvOpens> opens;

  Fixture() {
    Catalog::Options o;
    o.cache_dir = dir.file("cache");
    o.classes = {'A'};
    o.daemon_uid = 4242;
    o.now = [this] { return clock; };
    catalog = must(Catalog::open(db.get(), o));
    opens = std::make_unique<VvOpens>(catalog.get(), 4242);
  }
  // A VV of root:root with `perms`.
  std::string create(const std::string& perms) {
    return must(catalog->create(plugin(0), {"A", 1 << 20, 0, "", "", perms})).name;
  }
  uint64_t accessed(const std::string& name) { return must(catalog->show(name)).accessed; }
  // What the cache manager does when it evicts or stages a VV: set its cache state.
  void set_cache(const std::string& name, const std::string& cache) {
    Vv r;
    uint64_t slot = must(lookup_vv(*db, "name", db::KeyBuilder().text(name), &r));
    r.cache = parse_cache_state(cache).value();
    db::Transaction txn;
    txn.update(kVvTable, slot, vv_values(r));
    must(db->commit(txn));
  }
};

}  // namespace

TEST_CASE("a probe answers and changes nothing; a use registers and counts as an access") {
  Fixture f;
  const std::string a = f.create("0640");
  const uint64_t created = f.accessed(a);
  f.clock += 100;

  auto probe = must(f.opens->open(plugin(1), local(a, 0, 0, true, false)));
  CHECK(probe.ready);
  CHECK(probe.writable);
  CHECK(probe.open_id == 0);
  CHECK(probe.vv.name == a);
  CHECK(probe.vv.size == 1 << 20);
  CHECK(probe.cache_path == f.catalog->cache_path(a));
  CHECK(f.opens->count() == 0);
  CHECK_FALSE(f.opens->is_open(a));
  CHECK(f.accessed(a) == created);

  auto used = must(f.opens->open(plugin(1), local(a, 0, 0, true, true)));
  CHECK(used.open_id != 0);
  CHECK(used.writable);
  CHECK(used.vv.accessed == created + 100);
  CHECK(f.accessed(a) == created + 100);
  CHECK(f.opens->count() == 1);
  CHECK(f.opens->is_open(a));
  CHECK(f.opens->writer_host(a) == "nbd1");
  // The catalogue's in-use check: busy for a finish (a writer) and for a remove.
  auto busy = f.opens->check_in_use(a, true);
  CHECK(busy.code() == Code::kBusy);
  CHECK_THAT(busy.message(), Catch::Contains("open for writing by"));
  CHECK(f.opens->check_in_use(a, false).code() == Code::kBusy);
  CHECK(f.opens->check_in_use("A0000000099", false).ok());

  // Only the connection that made the open may close it.
  f.clock += 50;
  CHECK(f.opens->close(plugin(2), {used.open_id, true}).status().code() == Code::kNotFound);
  CHECK(f.opens->count() == 1);
  auto closed = must(f.opens->close(plugin(1), {used.open_id, true}));
  CHECK(closed.accessed == created + 150);
  CHECK(f.accessed(a) == created + 150);
  CHECK(f.opens->count() == 0);
  CHECK_FALSE(f.opens->is_open(a));
  CHECK(f.opens->check_in_use(a, false).ok());
  CHECK(f.opens->close(plugin(1), {used.open_id, true}).status().code() == Code::kNotFound);
}

TEST_CASE("unknown VVs are NotFound, naming them") {
  Fixture f;
  auto r = f.opens->open(plugin(1), local("A0000000099", 0, 0, false, false));
  CHECK(r.status().code() == Code::kNotFound);
  CHECK_THAT(r.status().message(), Catch::Contains("A0000000099"));
  CHECK(f.opens->open(plugin(1), local("junk", 0, 0, false, false)).status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("mode bits decide who reads and who writes") {
  Fixture f;
  const std::string private_vv = f.create("0600");
  const std::string group_read = f.create("0640");
  const std::string all_read = f.create("0644");
  const std::string all_write = f.create("0666");

  // nobody (65534, not in group root) may not even probe a VV others cannot read.
  for (const auto& name : {private_vv, group_read}) {
    auto r = f.opens->open(plugin(1), local(name, 65534, 65534, true, false));
    CHECK(r.status().code() == Code::kPermissionDenied);
    CHECK_THAT(r.status().message(), Catch::Contains("may not open VV " + name) &&
                                         Catch::Contains("rw-") && Catch::Contains("root:root"));
  }
  // Read but not write: served read-only, not refused.
  auto ro = must(f.opens->open(plugin(1), local(all_read, 65534, 65534, true, true)));
  CHECK_FALSE(ro.writable);
  CHECK(ro.open_id != 0);
  CHECK_FALSE(f.opens->writer_host(all_read));
  CHECK(must(f.opens->open(plugin(1), local(all_write, 65534, 65534, true, false))).writable);
  // The group's bits for a member, by primary or supplementary group.
  CHECK_FALSE(must(f.opens->open(plugin(1), local(group_read, 1000, 0, true, false))).writable);
  auto member = local(group_read, 1000, 1000, true, false);
  CHECK(f.opens->open(plugin(1), member).status().code() == Code::kPermissionDenied);
  member.groups = {0};
  CHECK(f.opens->open(plugin(1), member).ok());
  // Root may do anything.
  CHECK(must(f.opens->open(plugin(1), local(private_vv, 0, 0, true, false))).writable);
  // A TCP peer is its host, and gets the other bits.
  CHECK(f.opens->open(plugin(1), tcp(group_read, "10.0.0.7", false, false)).status().code() ==
        Code::kPermissionDenied);
  CHECK_FALSE(must(f.opens->open(plugin(1), tcp(all_read, "10.0.0.7", true, false))).writable);
  CHECK(must(f.opens->open(plugin(1), tcp(all_write, "10.0.0.7", true, false))).writable);
  // An export served read-only (nbdkit -r) is never writable.
  CHECK_FALSE(must(f.opens->open(plugin(1), local(private_vv, 0, 0, false, false))).writable);
}

TEST_CASE("only root and vvmd's user may open for another user") {
  Fixture f;
  const std::string a = f.create("0666");
  // uid 1000 speaking for itself is fine, for root is not.
  CHECK(f.opens->open(plugin(1, 1000), local(a, 1000, 1000, true, false)).ok());
  auto r = f.opens->open(plugin(1, 1000), local(a, 0, 0, true, false));
  CHECK(r.status().code() == Code::kPermissionDenied);
  CHECK_THAT(r.status().message(), Catch::Contains("only as itself"));
  CHECK(f.opens->open(plugin(1, 1000), tcp(a, "10.0.0.7", true, false)).status().code() ==
        Code::kPermissionDenied);
  CHECK(f.opens->open(plugin(1, 4242), local(a, 7, 7, true, false)).ok());
  rpc::Peer over_tcp = plugin(1);
  over_tcp.kind = Endpoint::Kind::kTcp;
  CHECK(f.opens->open(over_tcp, local(a, 7, 7, true, false)).ok());
}

TEST_CASE("a hot VV has one writer host at a time; readers and the same host share it") {
  Fixture f;
  const std::string a = f.create("0666");
  auto first = must(f.opens->open(plugin(1), local(a, 0, 0, true, true, "nbd1")));
  CHECK(first.writable);
  // Another connection of the same host: multi-conn.
  auto second = must(f.opens->open(plugin(2), local(a, 0, 0, true, true, "nbd1")));
  CHECK(second.writable);
  // Another host: refused, naming the VV and the holder.
  auto refused = f.opens->open(plugin(3), tcp(a, "10.0.0.7", true, true));
  CHECK(refused.status().code() == Code::kBusy);
  CHECK_THAT(refused.status().message(),
             Catch::Contains("VV " + a) && Catch::Contains("nbd1") && Catch::Contains("10.0.0.7"));
  // And what to do about it.
  CHECK_THAT(refused.status().message(), Catch::Contains("use it from nbd1"));
  // A probe does not take the writer's place, so it is not refused.
  CHECK(f.opens->open(plugin(3), tcp(a, "10.0.0.7", true, false)).ok());
  // Reading from another host is fine.
  auto reader = must(f.opens->open(plugin(3), tcp(a, "10.0.0.7", false, true)));
  CHECK_FALSE(reader.writable);
  CHECK(f.opens->count() == 3);
  // Once the writer host's every connection has gone, the other host may write.
  must(f.opens->close(plugin(1), {first.open_id, true}));
  CHECK(f.opens->open(plugin(3), tcp(a, "10.0.0.7", true, true)).status().code() == Code::kBusy);
  must(f.opens->close(plugin(2), {second.open_id, false}));
  CHECK(must(f.opens->open(plugin(3), tcp(a, "10.0.0.7", true, true))).writable);
  CHECK(f.opens->writer_host(a) == "10.0.0.7");
}

TEST_CASE("the opens of a control connection that ends are forgotten") {
  Fixture f;
  const std::string a = f.create("0666"), b = f.create("0666");
  must(f.opens->open(plugin(1), local(a, 0, 0, true, true, "nbd1")));
  must(f.opens->open(plugin(1), local(b, 0, 0, false, true, "nbd1")));
  must(f.opens->open(plugin(2), local(b, 0, 0, false, true, "nbd2")));
  CHECK(f.opens->open(plugin(3), local(a, 0, 0, true, true, "nbd3")).status().code() ==
        Code::kBusy);
  CHECK(f.opens->drop_session(1) == 2);
  CHECK(f.opens->drop_session(1) == 0);
  CHECK(f.opens->count() == 1);
  CHECK_FALSE(f.opens->is_open(a));
  CHECK(f.opens->is_open(b));
  CHECK(must(f.opens->open(plugin(3), local(a, 0, 0, true, true, "nbd3"))).writable);
}

TEST_CASE("many opens of many VVs on many connections: each VV's and each connection's own") {
  Fixture f;
  std::vector<std::string> vvs;
  for (int i = 0; i < 20; ++i) vvs.push_back(f.create("0666"));
  // 20 VVs, each open on 5 control connections (sessions 1-5), read-only but on session 1.
  std::map<std::pair<int, uint64_t>, uint64_t> ids;  // (VV, session) -> open id
  for (int i = 0; i < 20; ++i) {
    for (uint64_t session = 1; session <= 5; ++session) {
      const bool write = session == 1;
      ids[{i, session}] =
          must(f.opens->open(plugin(session), local(vvs[i], 0, 0, write, true, "nbd1"))).open_id;
    }
  }
  CHECK(f.opens->count() == 100);
  CHECK(f.opens->holders(vvs[7]).size() == 5);
  CHECK(f.opens->writer_host(vvs[7]) == "nbd1");
  // Session 1's end takes the writers with it; the readers stay.
  CHECK(f.opens->drop_session(1) == 20);
  CHECK(f.opens->count() == 80);
  CHECK_FALSE(f.opens->writer_host(vvs[7]).has_value());
  CHECK(f.opens->check_in_use(vvs[7], true).ok());
  CHECK(f.opens->check_in_use(vvs[7], false).code() == Code::kBusy);
  // Closes of VV 3 on every session but 5, then session 5 ends: VV 3 is open nowhere, the others
  // still are (sessions 2-4).
  for (uint64_t session = 2; session <= 4; ++session) {
    must(f.opens->close(plugin(session), {ids[{3, session}], false}));
  }
  CHECK(f.opens->holders(vvs[3]).size() == 1);
  // A close on the wrong connection is not one.
  CHECK(f.opens->close(plugin(2), {ids[{3, 5}], false}).status().code() == Code::kNotFound);
  CHECK(f.opens->drop_session(5) == 20);
  CHECK_FALSE(f.opens->is_open(vvs[3]));
  CHECK(f.opens->holders(vvs[3]).empty());
  for (int i = 0; i < 20; ++i) {
    if (i != 3) CHECK(f.opens->holders(vvs[i]).size() == 3);
  }
  CHECK(f.opens->count() == 57);
  for (uint64_t session = 2; session <= 4; ++session) f.opens->drop_session(session);
  CHECK(f.opens->count() == 0);
  for (const auto& vv : vvs) CHECK_FALSE(f.opens->is_open(vv));
}

TEST_CASE("a finished VV is read-only, and an evicted one is not ready") {
  Fixture f;
  const std::string a = f.create("0666");
  must(f.catalog->finish(plugin(0), a));
  auto r = must(f.opens->open(plugin(1), local(a, 0, 0, true, true)));
  CHECK(r.ready);
  CHECK_FALSE(r.writable);
  CHECK(r.vv.state == VvState::kFinished);
  CHECK_FALSE(f.opens->writer_host(a));
  must(f.opens->close(plugin(1), {r.open_id, false}));

  f.set_cache(a, "evicted");
  const uint64_t before = f.accessed(a);
  f.clock += 10;
  // A probe never stages; a use asks the stage hook (the scheduler) and passes on its answer.
  std::vector<std::string> asked;
  f.opens->on_not_cached([&](const std::string& vv) -> Result<std::string> {
    asked.push_back(vv);
    return std::string("queued behind 2");
  });
  auto probed = must(f.opens->open(plugin(1), local(a, 0, 0, false, false)));
  CHECK_FALSE(probed.ready);
  CHECK(probed.not_ready == "VV " + a + " is evicted: its first read or write stages it");
  CHECK(asked.empty());
  auto used = must(f.opens->open(plugin(1), local(a, 0, 0, false, true)));
  CHECK_FALSE(used.ready);
  CHECK(used.open_id == 0);
  CHECK(used.not_ready == "queued behind 2");
  CHECK(asked == std::vector<std::string>{a});
  CHECK(f.opens->count() == 0);
  CHECK(f.accessed(a) == before);
  // A stage that cannot be done fails the open, with the scheduler's reason.
  f.opens->on_not_cached([](const std::string&) -> Result<std::string> {
    return Status::Unavailable("no copy left");
  });
  auto failed = f.opens->open(plugin(1), local(a, 0, 0, false, true));
  CHECK(failed.status().code() == Code::kUnavailable);
  f.opens->on_not_cached({});
  f.set_cache(a, "staging");
  CHECK_THAT(must(f.opens->open(plugin(1), local(a, 0, 0, false, true))).not_ready,
             Catch::Contains("is staging"));
  f.set_cache(a, "cached");
  CHECK(must(f.opens->open(plugin(1), local(a, 0, 0, false, true))).ready);
}
