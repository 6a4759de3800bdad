// vvmd/main.cc: the Virtual Volume Manager daemon's entry point.
//
// vvmd reads vvm.conf, opens the database ([vvmd] database-dir), listens on [vvmd] listen (Unix
// and TCP), checks peers as the [vvmd] allow-* keys say, answers PING, serves the VV catalogue
// (catalog.h), the nbdkit plugin's opens of vv/NAME exports (vv_opens.h) and the VSN catalogue
// (vsn_catalog.h), and runs the tape scheduler (scheduler.h), which hands finished VVs to the
// movers and records their copies, and the cache manager (cache_manager.h), which evicts archived
// VVs when the cache passes its high watermark and on VV_EVICT. The stage queue comes later.
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include <fmt/core.h>

#include "cache_manager.h"
#include "catalog.h"
#include "daemon.h"
#include "db_database.h"
#include "log.h"
#include "mover_link.h"
#include "scheduler.h"
#include "vsn_catalog.h"
#include "vv_opens.h"

namespace po = boost::program_options;

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
          "SIGINT stop it cleanly.",
          own, &cmd)) {
    return *rc;
  }
  auto config = daemon::load_config_and_log("vvmd", cmd);
  if (!config.ok()) return 2;
  if (config->vvmd_listen.empty()) {
    fmt::print(stderr, "vvmd: {}: [vvmd] has no listen address\n", config->path);
    return 2;
  }

  // Without its database vvmd can serve nothing: a failure to open it is fatal.
  auto db = db::Database::open(config->database_dir);
  if (!db.ok()) {
    log::error("database {}: {}", config->database_dir, db.status().message());
    return 1;
  }
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

  rpc::Server server("vvmd", config->vvmd_access);
  server.handle(rpc::Op::kPing, daemon::ping_handler("vvmd", local_host_name(), started));
  (*catalog)->serve(server);
  // Gone before the server, which calls no hook once its run has ended.
  vvmd::VvOpens opens(catalog->get(), ::getuid());
  opens.serve(server);
  (*vsns)->serve(server);
  vvmd::CacheManager cache(db->get(), catalog->get(), &opens,
                           vvmd::CacheManager::options_from(*config));
  cache.serve(server);

  vvmd::MoverLink movers([&server](std::function<void()> task) { server.post(std::move(task)); },
                         config->request_timeout);
  vvmd::Scheduler::Options scheduling;
  scheduling.reply_to = config->vvmd_listen.front().to_string();
  scheduling.cache_path = [c = catalog->get()](const std::string& vv) { return c->cache_path(vv); };
  scheduling.daemon_uid = ::getuid();
  vvmd::Scheduler scheduler(db->get(), *config, scheduling, &movers);
  if (Status s = scheduler.recover(); !s.ok()) {
    log::error("recovery: {}", s.message());
    return 1;
  }
  (*catalog)->on_finished([&scheduler](const db::VvRecord& vv) { scheduler.finished(vv); });
  scheduler.serve(server);
  for (const auto& endpoint : config->vvmd_listen) {
    if (Status s = server.listen(endpoint); !s.ok()) {
      log::error("{}", s.message());
      return 1;
    }
    log::info("listening on {}", endpoint.to_string());
  }
  log::info("vvmd ready (vvm {}, {})", VVM_VERSION, config->path);
  if (Status s = server.run({SIGTERM, SIGINT}); !s.ok()) {
    log::error("{}", s.message());
    return 1;
  }
  movers.stop();
  log::info("vvmd stopped");
  return 0;
}
