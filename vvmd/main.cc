// vvmd/main.cc: the Virtual Volume Manager daemon's entry point.
//
// vvmd reads vvm.conf, opens the database ([vvmd] database-dir), listens on [vvmd] listen (Unix
// and TCP), checks peers as the [vvmd] allow-* keys say, answers PING, serves the VV catalogue
// (catalog.h), the nbdkit plugin's opens of vv/NAME exports (vv_opens.h) and the VSN catalogue
// (vsn_catalog.h), and runs the tape scheduler (scheduler.h), which hands finished VVs to the
// movers, records their copies and stages evicted VVs back, and the cache manager
// (cache_manager.h), which evicts archived VVs when the cache passes its high watermark and on
// VV_EVICT. Under systemd (vvmd.service, Type=notify) it says READY=1 once it listens on every
// endpoint, its database open and recovered.
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <set>

#include <fmt/core.h>

#include "cache/cache_manager.h"
#include "catalog/catalog.h"
#include "catalog/db_admin.h"
#include "catalog/vsn_catalog.h"
#include "catalog/vv_opens.h"
#include "common/log.h"
#include "conf/reload.h"
#include "db/database.h"
#include "metrics/metrics.h"
#include "proto/daemon.h"
#include "proto/tls.h"
#include "sched/mover_link.h"
#include "sched/scheduler.h"

namespace po = boost::program_options;

namespace {
// What vvmd serves, all of it: main() joins what each part registered into this, which does not
// compile while a request listed here has no handler or one is registered that is not listed.
using VvmdServes = vvm::rpc::Served<
    vvm::rpc::PingRequest, vvm::rpc::VvCreateRequest, vvm::rpc::VvShowRequest,
    vvm::rpc::VvListRequest, vvm::rpc::VvFinishRequest, vvm::rpc::VvRemoveRequest,
    vvm::rpc::VvOpenRequest, vvm::rpc::VvCloseRequest, vvm::rpc::VsnAddRequest,
    vvm::rpc::VsnListRequest, vvm::rpc::VvStageRequest, vvm::rpc::VvEvictRequest,
    vvm::rpc::StatusRequest, vvm::rpc::CopyReport, vvm::rpc::DbStatsRequest,
    vvm::rpc::DbCheckRequest, vvm::rpc::DbBackupRequest, vvm::rpc::CopyListRequest,
    vvm::rpc::VsnSetRequest, vvm::rpc::VsnDetailsRequest, vvm::rpc::DriveSetRequest,
    vvm::rpc::DriveListRequest, vvm::rpc::VsnRepackRequest, vvm::rpc::VsnReclaimRequest,
    vvm::rpc::RepackListRequest, vvm::rpc::VsnVerifyRequest, vvm::rpc::VerifyListRequest,
    vvm::rpc::ReloadRequest, vvm::rpc::ClassListRequest, vvm::rpc::ClassPruneRequest,
    vvm::rpc::VvCopiesRequest>;
}  // namespace

int main(int argc, char** argv) {
  using namespace vvm;
  auto started = std::chrono::steady_clock::now();
  po::options_description own;
  daemon::CommandLine cmd;
  if (auto rc = daemon::parse_command_line(
          argc, argv, "vvmd",
          "Usage: vvmd [--conf PATH] [--log-level LEVEL]\n"
          "The vvm Virtual Volume Manager daemon: listens where vvm.conf's [vvmd] listen says and\n"
          "serves vvctl, the nbdkit plugin and the movers. Runs in the foreground; SIGTERM or\n"
          "SIGINT stop it cleanly; SIGHUP reads vvm.conf again (its storage classes change live).",
          own, &cmd)) {
    return *rc;
  }
  auto config = daemon::load_config_and_log("vvmd", cmd);
  if (!config.ok()) return 2;
  if (config->vvmd_listen.empty()) {
    fmt::print(stderr, "vvmd: {}: [vvmd] has no listen address\n", config->path);
    return 2;
  }

  // Declared before the database: a transaction still in flight when vvmd stops answers its
  // client as the database closes, through this server.
  rpc::Server server("vvmd", config->vvmd_access);
  // TLS credentials are read before anything opens, so that a bad key or PSK file stops vvmd
  // at once, named with its vvm.conf line.
  if (std::any_of(config->vvmd_listen.begin(), config->vvmd_listen.end(),
                  [](const Endpoint& e) { return e.kind == Endpoint::Kind::kTls; })) {
    auto tls = rpc::TlsServerCredentials::load(*config, config->vvmd_tls, "vvmd");
    if (!tls.ok()) {
      log::error("{}", tls.status().message());
      return 2;
    }
    for (const auto& user : (*tls)->unmapped_psk_users()) {
      log::warning("{}: PSK username '{}' is in no [identity]: its clients will be refused",
                   config->vvmd_tls.psk_file, user);
    }
    server.set_tls(*tls);
  }
  // How vvmd proves itself to the movers' tls: endpoints, checked now for the same reason.
  if (Status s = rpc::check_tls_client(*config, config->vvmd_tls_client, "vvmd"); !s.ok()) {
    log::error("{}", s.message());
    return 2;
  }
  // The metrics endpoint comes first, so that a bad address stops vvmd before it opens anything;
  // its HTTP threads read the daemon's state only through the server's loop (state_families).
  std::unique_ptr<metrics::Exporter> exporter;
  if (config->vvmd_metrics) {
    auto started_metrics = daemon::start_metrics(server, *config->vvmd_metrics, *config,
                                                 "vvmd.metrics", "vvmd", local_host_name());
    if (!started_metrics.ok()) return 2;
    exporter = std::move(*started_metrics);
  }
  vvmd::Metrics counters = exporter ? vvmd::Metrics(exporter->registry()) : vvmd::Metrics();
  // Without its database vvmd can serve nothing: a failure to open it is fatal.
  auto db = vvmd::open_database(config->database_dir);
  if (!db.ok()) {
    log::error("database {}: {}", config->database_dir, db.status().message());
    return 1;
  }
  (*db)->observe_frames([&counters](std::chrono::duration<double> took, size_t transactions) {
    counters.db_frame(took, transactions);
  });
  auto catalog = vvmd::Catalog::open(db->get(), vvmd::Catalog::options_from(*config));
  if (!catalog.ok()) {
    log::error("{}", catalog.status().message());
    return 1;
  }

  auto vsns = vvmd::VsnCatalog::open(db->get(), vvmd::VsnCatalog::options_from(*config));
  if (!vsns.ok()) {
    log::error("{}", vsns.status().message());
    return 1;
  }

  // What waits for a commit's durability (a reply, a file's removal, a hook) runs back on the
  // server's thread; no handler waits there for the journal's fdatasync (db/committer.h).
  const db::Committer::Post on_loop = [&server](std::function<void()> task) {
    server.post(std::move(task));
  };
  (*catalog)->finish_commits_on(on_loop);
  (*vsns)->finish_commits_on(on_loop);

  const auto ping = daemon::serve_ping(server, "vvmd", local_host_name(), started);
  const auto catalog_ops = (*catalog)->serve(server);
  // A create's cache file (two fsyncs) is made on these threads, never on the server's, so
  // that a slow disk stalls no other request and creates arriving together share the journal's
  // fdatasync. Threads that mostly wait on the disk: 16 let the filesystem's journal group the
  // fsyncs of many creates (bench/vvmd-load: 9.2k creates/s at 64 clients, 5.3k with 4).
  // Gone before the catalogue and the server it posts to.
  boost::asio::thread_pool file_work(16);
  (*catalog)->run_in_background(
      [&file_work, &server](std::function<void()> work, std::function<void()> then) {
        boost::asio::post(file_work, [work = std::move(work), then = std::move(then), &server] {
          work();
          server.post(then);
        });
      });
  // Gone before the server, which calls no hook once its run has ended.
  vvmd::VvOpens opens(catalog->get(), ::getuid());
  const auto open_ops = opens.serve(server);
  (*catalog)->in_use_check([&opens](const std::string& vv, bool for_write) {
    return opens.check_in_use(vv, for_write);
  });
  // Hot VVs nobody has used for idle-finish are finished, checked a few times per period.
  const auto idle = config->idle_finish;
  server.every(std::clamp<std::chrono::milliseconds>(idle / 4, std::chrono::seconds(1),
                                                     std::chrono::seconds(60)),
               [c = catalog->get(), idle] {
                 const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch());
                 c->finish_idle(static_cast<uint64_t>((now - idle).count()));
               });
  const auto vsn_ops = (*vsns)->serve(server);
  auto cache_options = vvmd::CacheManager::options_from(*config);
  cache_options.metrics = &counters;
  vvmd::CacheManager cache(db->get(), catalog->get(), &opens, std::move(cache_options));
  cache.finish_commits_on(on_loop);
  const auto cache_ops = cache.serve(server);

  vvmd::MoverLink movers([&server](std::function<void()> task) { server.post(std::move(task)); },
                         config->request_timeout,
                         rpc::TlsClientSettings::from_config(config->vvmd_tls_client));
  vvmd::Scheduler::Options scheduling;
  scheduling.reply_to = config->vvmd_listen.front().to_string();
  for (const auto& [name, mover] : config->movers) {
    if (const Endpoint* to = report_endpoint(*config, mover)) {
      scheduling.mover_reply_to[name] = to->to_string();
    }
  }
  scheduling.cache_path = [c = catalog->get()](const std::string& vv) { return c->cache_path(vv); };
  scheduling.cache_dir = config->cache_dir;
  scheduling.daemon_uid = ::getuid();
  scheduling.metrics = &counters;
  scheduling.relabel = [v = vsns->get()](const Vsn& vsn) { return v->relabel(vsn); };
  vvmd::Scheduler scheduler(db->get(), *config, scheduling, &movers);
  scheduler.finish_commits_on(on_loop);
  if (Status s = scheduler.recover(); !s.ok()) {
    log::error("recovery: {}", s.message());
    return 1;
  }
  (*catalog)->on_finished([&scheduler](const Vv& vv) { scheduler.finished(vv); });
  const auto copy_ops = scheduler.serve(server);
  const auto stage_ops = scheduler.serve_stage(server);
  const auto drive_ops = scheduler.serve_drives(server);
  const auto repack_ops = scheduler.serve_repack(server);
  const auto verify_ops = scheduler.serve_verify(server);
  const auto class_ops = scheduler.serve_classes(server);
  // vvm.conf read again on SIGHUP and `vvctl reload`: the classes change live (conf/reload.h).
  vvmd::Reloader reloader(
      &*config,
      {[&scheduler](char cls, const std::string& media) {
         return scheduler.has_tape_for(cls, media);
       },
       [&scheduler](char cls) { return scheduler.vvs_of_class(cls); }},
      [&](const Config& live) {
        std::set<char> letters;
        for (const auto& [letter, cls] : live.classes) letters.insert(letter);
        if (Status s = (*catalog)->set_classes(letters); !s.ok()) {
          log::error("reload: the VV catalogue did not take the classes: {}", s.message());
        }
        (*vsns)->set_classes(live.media, live.classes);
        scheduler.classes_changed();
      },
      ::getuid());
  const auto reload_op = reloader.serve(server);
  const auto status_op = server.handle<rpc::StatusRequest>(
      [&](const rpc::StatusRequest&, const rpc::Peer&) -> Result<rpc::StatusReply> {
        rpc::StatusReply st;
        st.uptime_s = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::steady_clock::now() - started)
                                                .count());
        scheduler.fill_status(&st);
        st.opens = opens.count();
        st.high_watermark = static_cast<uint32_t>(config->high_watermark);
        st.low_watermark = static_cast<uint32_t>(config->low_watermark);
        return st;
      });
  // Every request vvmd serves; this does not compile while one of them has no handler above.
  vvmd::DbAdmin db_admin(db->get(), ::getuid());
  const auto db_ops = db_admin.serve(server);
  const VvmdServes served = ping + catalog_ops + open_ops + vsn_ops + cache_ops + copy_ops +
                            stage_ops + drive_ops + repack_ops + verify_ops + status_op + db_ops +
                            class_ops + reload_op;
  (void)served;
  opens.on_not_cached([&scheduler](const std::string& vv) -> Result<std::string> {
    auto p = scheduler.stage(vv, true);
    if (!p.ok()) return p.status();
    return p->describe(vv);
  });
  if (exporter) {
    // At each scrape: the state's gauges, read on the server's thread, where it changes. A loop
    // that does not answer within 5 s (stopping, or stuck) leaves them out of that scrape.
    exporter->collect([&](metrics::Families& out) {
      auto state = metrics::read_on_loop(
          [&server](std::function<void()> task) { server.post(std::move(task)); },
          [&] { return vvmd::state_families(*config, scheduler, opens, cache, db->get()); },
          std::chrono::seconds(5));
      if (state) out.append(std::move(*state));
    });
  }
  for (const auto& endpoint : config->vvmd_listen) {
    if (Status s = server.listen(endpoint); !s.ok()) {
      log::error("{}", s.message());
      return 1;
    }
    log::info("listening on {}", endpoint.to_string());
  }
  log::info("vvmd ready (vvm {}, {})", VVM_VERSION, config->path);
  daemon::notify_ready(
      fmt::format("serving {} on {}", config->path, config->vvmd_listen.front().to_string()));
  Status ran = server.run({SIGTERM, SIGINT});
  daemon::notify_stopping();
  exporter.reset();  // no scrape waits on a loop that no longer runs
  if (!ran.ok()) {
    log::error("{}", ran.message());
    return 1;
  }
  if (auto running = scheduler.copying(); !running.empty()) {
    // Their reports will find nobody: recovery on the next start queues them again.
    log::notice("stopping with {} cop{} running on the movers; they are redone after a restart",
                running.size(), running.size() == 1 ? "y" : "ies");
  }
  movers.stop();
  log::info("vvmd stopped");
  return 0;
}
