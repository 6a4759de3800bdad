// mover/main.cc: vvmover's entry point, the daemon that owns one host's tape drives.
//
// A mover reads vvm.conf, finds its [mover NAME] section, listens where that says, admits the
// peers vvmd admits ([vvmd] allow-*), answers PING, and takes ARCHIVE, STAGE, VERIFY and
// TAPE_COPY requests, each copied by a child process of its own (copy/jobs.h), and CANCEL of a
// running verify. Started as "vvmover
// --copy-job ...", the program is that child (copy/child.h). Under systemd (vvmover@.service,
// Type=notify) it says READY=1 once it listens.
#include <csignal>
#include <cstdio>
#include <string_view>

#include <fmt/core.h>

#include "common/log.h"
#include "copy/child.h"
#include "copy/jobs.h"
#include "metrics/metrics.h"
#include "proto/daemon.h"
#include "proto/tls.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  using namespace vvm;
  // The hidden mode comes first: a copy child must not parse the daemon's options or set up
  // what the daemon sets up.
  if (argc > 1 && std::string_view(argv[1]) == "--copy-job") {
    return mover::run_copy_child(argc, argv);
  }
  auto started = std::chrono::steady_clock::now();
  std::string name;
  po::options_description own("Mover options");
  own.add_options()("name,n", po::value<std::string>(&name),
                    "which [mover NAME] of vvm.conf this process is (required)");
  daemon::CommandLine cmd;
  if (auto rc = daemon::parse_command_line(
          argc, argv, "vvmover",
          "Usage: vvmover --name NAME [--conf PATH] [--log-level LEVEL]\n"
          "The vvm mover: owns the tape drives vvm.conf gives to [mover NAME] and moves data\n"
          "between them and the disk cache for vvmd. Runs in the foreground; SIGTERM or SIGINT\n"
          "stop it cleanly.",
          own, &cmd)) {
    return *rc;
  }
  if (name.empty()) {
    fmt::print(stderr, "vvmover: --name is required (a [mover NAME] section of vvm.conf)\n");
    return 2;
  }
  auto config = daemon::load_config_and_log("vvmover", cmd);
  if (!config.ok()) return 2;
  auto it = config->movers.find(name);
  if (it == config->movers.end()) {
    std::string known;
    for (const auto& [n, m] : config->movers) known += (known.empty() ? "" : ", ") + n;
    fmt::print(stderr, "vvmover: {}: no [mover {}] section (movers: {})\n", config->path, name,
               known.empty() ? "none" : known);
    return 2;
  }
  const MoverConfig& mover = it->second;

  std::string ident = "vvmover " + name;
  // Over TLS a mover serves vvmd alone: identities of role vvmd. A user's identity, whatever its
  // uid, has no business starting copies, which write tapes and the cache as the mover.
  AccessPolicy policy = config->vvmd_access;
  policy.tls_role = "vvmd";
  rpc::Server server(ident, policy);
  // TLS credentials are read before anything starts, so that a bad file stops the mover at once,
  // named with its vvm.conf line.
  const std::string section = "mover " + name;
  if (mover.listen.kind == Endpoint::Kind::kTls) {
    auto tls = rpc::TlsServerCredentials::load(*config, mover.tls, section);
    if (!tls.ok()) {
      log::error("{}", tls.status().message());
      return 2;
    }
    for (const auto& user : (*tls)->unmapped_psk_users()) {
      log::warning("{}: PSK username '{}' is in no [identity]: its clients will be refused",
                   mover.tls.psk_file, user);
    }
    // A key the mover holds for a user's identity is most likely a copy of vvmd's PSK file.
    for (const auto& [id_name, id] : config->identities) {
      if (id.role == "vvmd") continue;
      for (const auto& user : id.psk_usernames) {
        if ((*tls)->psk_key(user) == nullptr) continue;
        log::warning(
            "{}: PSK username '{}' is [identity {}], of {}: the mover will refuse it (it serves "
            "identities of role vvmd only)",
            mover.tls.psk_file, user, id_name, id.role.empty() ? "no role" : "role " + id.role);
      }
    }
    server.set_tls(*tls);
  }
  if (Status s = rpc::check_tls_client(*config, mover.tls_client, section); !s.ok()) {
    log::error("{}", s.message());
    return 2;
  }
  // The metrics endpoint first, so that a bad address stops the mover before it starts anything.
  std::unique_ptr<metrics::Exporter> exporter;
  if (mover.metrics) {
    auto started_metrics = daemon::start_metrics(server, *mover.metrics, *config,
                                                 "mover " + name + ".metrics", "vvmover", name);
    if (!started_metrics.ok()) return 2;
    exporter = std::move(*started_metrics);
  }
  mover::MoverMetrics counters =
      exporter ? mover::MoverMetrics(exporter->registry()) : mover::MoverMetrics();
  const auto ping = daemon::serve_ping(server, "vvmover", name, started);
  mover::CopyJobs jobs(*config, name);
  jobs.count_with(&counters);
  // CopyJobs keeps its drives under its own lock: a scrape reads them from the HTTP thread.
  if (exporter)
    exporter->collect([&jobs](metrics::Families& out) { out.append(mover::state_families(jobs)); });
  if (Status s = jobs.start(); !s.ok()) {
    log::error("{}", s.message());
    return 1;
  }
  const auto archive =
      server.handle<rpc::ArchiveRequest>([&](const rpc::ArchiveRequest& r, const rpc::Peer&) {
        return jobs.submit(rpc::Op::kArchive, r.copy);
      });
  const auto stage =
      server.handle<rpc::StageRequest>([&](const rpc::StageRequest& r, const rpc::Peer&) {
        return jobs.submit(rpc::Op::kStage, r.copy);
      });
  const auto verify =
      server.handle<rpc::VerifyRequest>([&](const rpc::VerifyRequest& r, const rpc::Peer&) {
        return jobs.submit(rpc::Op::kVerify, r.copy);
      });
  const auto tape_copy = server.handle<rpc::TapeCopyRequest>(
      [&](const rpc::TapeCopyRequest& r, const rpc::Peer&) { return jobs.submit_tape_copy(r); });
  const auto cancel = server.handle<rpc::CancelRequest>(
      [&](const rpc::CancelRequest& r, const rpc::Peer&) { return jobs.cancel(r); });
  // Every request a mover serves; this does not compile while one of them has no handler.
  const rpc::Served<rpc::PingRequest, rpc::ArchiveRequest, rpc::StageRequest, rpc::VerifyRequest,
                    rpc::TapeCopyRequest, rpc::CancelRequest>
      served = ping + archive + stage + verify + tape_copy + cancel;
  (void)served;
  if (Status s = server.listen(mover.listen); !s.ok()) {
    log::error("{}", s.message());
    return 1;
  }
  log::info("mover {} listening on {} with {} drive(s)", name, mover.listen.to_string(),
            mover.drives.size());
  log::info("vvmover {} ready (vvm {}, {})", name, VVM_VERSION, config->path);
  daemon::notify_ready(fmt::format("mover {} serving {} drive(s) on {}", name, mover.drives.size(),
                                   mover.listen.to_string()));
  Status ran = server.run({SIGTERM, SIGINT});
  daemon::notify_stopping();
  exporter.reset();  // no scrape reads the jobs from here on
  // No more requests come in: the running copies are killed and reported failed.
  jobs.stop();
  if (!ran.ok()) {
    log::error("{}", ran.message());
    return 1;
  }
  log::info("vvmover {} stopped", name);
  return 0;
}
