// sched_fixture.h: the scheduler as its unit tests (scheduler_test, classes_test) drive it: over
// a real database, with the real VV and VSN catalogues and cache manager, fake movers
// (fake_movers.h) and a fake clock, so that a test decides when time passes and how every copy
// ends. Each test file derives its Fixture from it, with its own vvm.conf and helpers.
#pragma once

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "cache/cache_manager.h"
#include "catalog/catalog.h"
#include "catalog/tables.h"
#include "catalog/vsn_catalog.h"
#include "catalog/vv_opens.h"
#include "common/config.h"
#include "db/database.h"
#include "fake_movers.h"
#include "metrics/metrics.h"
#include "peers.h"
#include "process.h"
#include "sched/scheduler.h"

namespace vvm::test {

// The size of the tests' VVs, and the checksum the fake movers report for every copy.
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kChecksum = 0x5eed;

struct SchedFixture {
  // `answer_pings`: the movers answer PING and CANCEL themselves (FakeMovers).
  SchedFixture(Config c, bool answer_pings) : config(std::move(c)), movers(answer_pings) {
    vvmd::Catalog::Options o;
    o.cache_dir = dir.file("cache");
    for (const auto& [letter, cls] : config.classes) o.classes.insert(letter);
    o.now = [this] { return unix_clock; };
    catalog = must(vvmd::Catalog::open(db.get(), o));
    vvmd::VsnCatalog::Options v;
    v.media = config.media;
    v.classes = config.classes;
    v.library_kind = "mtx";  // records only: no tape images
    vsns = must(vvmd::VsnCatalog::open(db.get(), v));
    opens = std::make_unique<vvmd::VvOpens>(catalog.get(), 0);
    vvmd::CacheManager::Options m;
    m.cache_dir = o.cache_dir;
    cache = std::make_unique<vvmd::CacheManager>(db.get(), catalog.get(), opens.get(), m);
    catalog->on_finished([this](const auto& vv) { sched->finished(vv); });
    restart();
  }

  TempDir dir = must(TempDir::create());
  Config config;
  std::unique_ptr<db::Database> db = must(vvmd::open_database(dir.file("db")));
  vvmd::Clock::time_point clock = vvmd::Clock::time_point{} + std::chrono::hours(1000);
  uint64_t unix_clock = 1'700'000'000;
  std::unique_ptr<vvmd::Catalog> catalog;
  std::unique_ptr<vvmd::VsnCatalog> vsns;
  std::unique_ptr<vvmd::VvOpens> opens;
  std::unique_ptr<vvmd::CacheManager> cache;
  FakeMovers movers;
  std::unique_ptr<vvmd::Scheduler> sched;
  uint64_t next_job = 1;
  std::map<std::string, std::string> mover_reply_to;  // Options::mover_reply_to at restart()
  vvmd::Metrics* metrics = nullptr;                   // Options::metrics at restart()

  // A new scheduler over the same database, as after vvmd restarted: it starts with empty
  // drives and no mount counted.
  void restart() {
    sched.reset();
    movers.pending.clear();
    vvmd::Scheduler::Options o;
    o.reply_to = "unix:/nonexistent/vvmd.sock";
    o.mover_reply_to = mover_reply_to;
    o.metrics = metrics;
    o.cache_path = [this](const std::string& vv) { return catalog->cache_path(vv); };
    o.cache_dir = catalog->cache_dir();
    o.now = [this] { return unix_clock; };
    o.clock = [this] { return clock; };
    sched = std::make_unique<vvmd::Scheduler>(db.get(), config, o, &movers);
    must(sched->recover());
  }
  void advance(std::chrono::milliseconds d) {
    clock += d;
    unix_clock +=
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(d).count());
  }
  Vv vv(const std::string& name) { return must(catalog->show(name)); }

  // The mover takes the copy: CopyAccepted.
  void accept(FakeMovers::Request& r, rpc::Op op) {
    r.copy_done(rpc::CopyAccepted{op, next_job++, r.args.drive});
  }
  // The mover's final report of the copy: done where it was asked to go.
  static rpc::CopyReport done_report(const FakeMovers::Request& r) {
    rpc::CopyReport rep;
    rep.request_id = r.args.request_id;
    rep.mover = "m1";
    rep.state = rpc::CopyState::kDone;
    rep.bytes_done = rep.bytes_total = kMiB;
    rep.vsn = r.args.vsn;
    rep.file_number = r.args.file_number;
    rep.checksum = kChecksum;
    return rep;
  }
  // That report, sent by root.
  void report_done(const FakeMovers::Request& r) {
    must(sched->report(root_peer(), done_report(r)));
  }
};

}  // namespace vvm::test
