// daemon.cc: start-up shared by vvmd and vvmover, see daemon.h.
#include "proto/daemon.h"

#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <fmt/core.h>

#include "common/log.h"

namespace vvm::daemon {

namespace po = boost::program_options;

std::optional<int> parse_command_line(int argc, char** argv, std::string_view program,
                                      std::string_view about, const po::options_description& own,
                                      CommandLine* out) {
  po::options_description common("Options");
  std::string level;
  common.add_options()("conf,c", po::value<std::string>(&out->conf_path),
                       "vvm.conf to read (default: $VVM_CONF, else /etc/vvm/vvm.conf)")(
      "log-level", po::value<std::string>(&level),
      "debug, info, notice, warning or error (default: vvm.conf's [global] log-level)")(
      "help,h", "print this help and exit")("version", "print the version and exit");
  po::options_description all;
  all.add(common).add(own);
  try {
    po::store(po::command_line_parser(argc, argv).options(all).run(), out->vm);
    po::notify(out->vm);
  } catch (const po::error& e) {
    fmt::print(stderr, "{}: {}\nTry '{} --help'.\n", program, e.what(), program);
    return 2;
  }
  if (out->vm.count("help")) {
    std::cout << about << "\n" << all << "\n";
    return 0;
  }
  if (out->vm.count("version")) {
    fmt::print("{} (vvm) {}\n", program, VVM_VERSION);
    return 0;
  }
  if (!level.empty()) {
    out->log_level = log::parse_level(level);
    if (!out->log_level) {
      fmt::print(stderr,
                 "{}: --log-level: '{}' is not one of debug, info, notice, warning, error\n",
                 program, level);
      return 2;
    }
  }
  if (out->conf_path.empty()) out->conf_path = default_config_path();
  return std::nullopt;
}

Result<Config> load_config_and_log(std::string_view program, const CommandLine& cmd) {
  log::init(program, log::Target::kStderr, cmd.log_level.value_or(log::Level::kInfo));
  auto config = load_config(cmd.conf_path);
  if (!config.ok()) {
    fmt::print(stderr, "{}: {}\n", program, config.status().message());
    return config.status();
  }
  log::init(program, config->log_target, cmd.log_level.value_or(config->log_level));
  ignore_sigpipe();
  raise_fd_limit();
  return config;
}

void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }

void raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    const rlim_t was = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      log::warning("cannot raise the file descriptor limit from {} to {}: {}",
                   static_cast<uint64_t>(was), static_cast<uint64_t>(limit.rlim_max),
                   std::strerror(errno));
      limit.rlim_cur = was;
    }
  }
  log::info("up to {} file descriptors (each control connection takes one)",
            static_cast<uint64_t>(limit.rlim_cur));
}

rpc::Served<rpc::PingRequest> serve_ping(rpc::Server& server, std::string daemon, std::string name,
                                         std::chrono::steady_clock::time_point started) {
  return server.handle<rpc::PingRequest>([daemon = std::move(daemon), name = std::move(name),
                                          started](const rpc::PingRequest& request,
                                                   const rpc::Peer&) -> Result<rpc::PingReply> {
    rpc::PingReply reply;
    reply.daemon = daemon;
    reply.name = name;
    reply.software = fmt::format("vvm {}", VVM_VERSION);
    reply.uptime_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - started)
                                                .count());
    reply.payload = request.payload;
    return reply;
  });
}

namespace {
// sd_notify returns 0 when $NOTIFY_SOCKET is not set (not started by systemd), so only a
// negative answer, a socket that would not take the datagram, is worth a word.
void notify(const std::string& state) {
  if (int rc = sd_notify(0, state.c_str()); rc < 0) {
    log::warning("telling systemd '{}' through $NOTIFY_SOCKET failed: {}", state,
                 std::strerror(-rc));
  }
}
}  // namespace

void notify_ready(std::string_view status) { notify(fmt::format("READY=1\nSTATUS={}", status)); }

Result<std::unique_ptr<metrics::Exporter>> start_metrics(rpc::Server& server,
                                                         const MetricsListen& at,
                                                         const Config& config, std::string_view key,
                                                         std::string_view program,
                                                         std::string_view name) {
  auto exporter = metrics::Exporter::start(at, config.path, key, program, name);
  if (!exporter.ok()) {
    fmt::print(stderr, "{}: {}\n", program, exporter.status().message());
    return exporter.status();
  }
  auto registry = (*exporter)->registry();
  auto& requests = prometheus::BuildCounter()
                       .Name("vvm_control_requests_total")
                       .Help("Control requests answered, by operation and answer code")
                       .Register(*registry);
  auto& latency = prometheus::BuildHistogram()
                      .Name("vvm_control_request_duration_seconds")
                      .Help("Time from a control request's arrival to its answer, by operation")
                      .Register(*registry);
  // Family::Add finds an existing series under its own lock: the hook may run on any thread.
  server.on_answered([registry, &requests, &latency](
                         rpc::Op op, std::chrono::steady_clock::duration took, Code code) {
    std::string op_label(rpc::op_name(op));
    std::string code_label(code == Code::kOk ? "ok" : code_name(code));
    for (char& c : code_label) {
      if (c == ' ') c = '_';
    }
    requests.Add({{"op", op_label}, {"code", code_label}}).Increment();
    latency.Add({{"op", op_label}}, metrics::latency_buckets())
        .Observe(std::chrono::duration<double>(took).count());
  });
  log::info("metrics on http://{}/metrics", at.at.to_string());
  return exporter;
}

void notify_stopping() { notify("STOPPING=1\nSTATUS=stopping"); }

}  // namespace vvm::daemon
