// daemon.h: the start-up that vvmd and vvmover share: the common command-line options, reading
// vvm.conf, setting up logging, the PING handler every daemon answers, and telling systemd (a
// Type=notify unit) when the daemon is ready and when it stops.
//
// Exit codes follow the rest of vvm: 0 on a clean stop, 1 when the daemon fails while running,
// 2 for a usage or configuration error (the message names the file, line and reason).
#pragma once

#include <boost/program_options.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/config.h"
#include "common/metrics.h"
#include "proto/server.h"

namespace vvm::daemon {

struct CommandLine {
  std::string conf_path;
  std::optional<log::Level> log_level;       // --log-level overrides vvm.conf
  boost::program_options::variables_map vm;  // for the daemon's own options
};

// Parses --conf, --log-level, --help, --version and the daemon's `own` options. On --help or
// --version it prints and returns 0; on a usage error it prints the reason and returns 2; nullopt
// means "go on". `about` is the first lines of --help.
std::optional<int> parse_command_line(int argc, char** argv, std::string_view program,
                                      std::string_view about,
                                      const boost::program_options::options_description& own,
                                      CommandLine* out);

// Reads vvm.conf and sets up logging as it says (stderr or syslog, the level), with --log-level
// taking precedence, ignores SIGPIPE (ignore_sigpipe) and raises the file descriptor limit
// (raise_fd_limit). Errors are printed to stderr; the caller exits 2.
Result<Config> load_config_and_log(std::string_view program, const CommandLine& cmd);

// Ignores SIGPIPE for the whole daemon. Sockets are written with MSG_NOSIGNAL, but a pipe cannot
// be: a mover writing a copy child's request to a child already dead (killed, or failed at
// once) would die of the signal without a word, and every copy of its drives with it. A write
// to a reader gone is then EPIPE, which each writer handles. Children get SIGPIPE back by
// default (posix_spawnattr_setsigdefault).
void ignore_sigpipe();

// Raises the soft limit on file descriptors to the hard one (systemd's default soft limit,
// 1024, is below what a thousand control connections take; its hard limit is far above), and
// logs the limit. The daemons use epoll, never select(), so descriptors above 1024 are fine.
// load_config_and_log calls it.
void raise_fd_limit();

// Answers PING: the daemon, its name, the software version, uptime since `started`, the payload.
rpc::Served<rpc::PingRequest> serve_ping(rpc::Server& server, std::string daemon, std::string name,
                                         std::chrono::steady_clock::time_point started);

// Tells the service manager that the daemon is ready: it listens on every endpoint and answers
// requests from now on. `status` is a line for `systemctl status`. Does nothing when the daemon
// was not started by systemd (no $NOTIFY_SOCKET); a failure to notify is logged, not fatal.
void notify_ready(std::string_view status);
// Starts the daemon's metrics endpoint at `at` (vvm.conf's `key`, "vvmd.metrics"), with
// vvm_build_info, and counts the requests `server` answers: vvm_control_requests_total{op,code}
// and vvm_control_request_duration_seconds{op}. An address that cannot be had is printed to
// stderr naming vvm.conf's line; the caller exits 2, as for any configuration error.
Result<std::unique_ptr<metrics::Exporter>> start_metrics(rpc::Server& server,
                                                         const MetricsListen& at,
                                                         const Config& config, std::string_view key,
                                                         std::string_view program,
                                                         std::string_view name);

// Tells the service manager that the daemon is stopping (between SIGTERM and its exit).
void notify_stopping();

}  // namespace vvm::daemon
