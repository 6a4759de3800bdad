// vvctl/command.h: what every vvctl command shares: its entry in the command table, the global
// options, option parsing with vvctl's usage errors, reading vvm.conf, and requests to vvmd.
// Each command prints its own errors and returns an exit code (cli.h: kOk, kFailed, kUsage).
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/cli.h"
#include "common/config.h"
#include "common/status.h"
#include "proto/client.h"
#include "proto/messages.h"

namespace vvm::vvctl {

namespace po = boost::program_options;
using cli::Args;
using cli::kFailed, cli::kOk, cli::kUsage;

struct Globals {
  std::string conf_path;  // --conf, or "" for the default
  // --vvmd ENDPOINT (else $VVM_VVMD): vvmd elsewhere than vvm.conf's first [vvmd] listen,
  // "tls:HOST:PORT" over TLS; vvm.conf is then optional.
  std::string vvmd;
  // --tls-psk-file, --tls-username, --tls-certificates, each else its $VVM_TLS_... variable.
  rpc::TlsClientSettings tls;
};

// Where vvmd is: --vvmd, $VVM_VVMD, else `config`'s first [vvmd] listen address.
Result<Endpoint> vvmd_endpoint(const Globals& g, const Config& config);
// Whether vvmd was named (--vvmd, $VVM_VVMD): it may then run on another host, and the local
// vvm.conf says nothing of its folders.
bool vvmd_named(const Globals& g);

struct Command {
  std::string_view name;  // "ping", "conf check"
  std::string_view summary;
  std::string_view usage;
  std::function<int(const Globals&, const Args&)> run;
};

// "vvctl COMMAND: MESSAGE" and the hint to its help on stderr; returns kUsage.
int usage_error(std::string_view command, std::string_view message);

// Parses a command's options into `*vm`; false (after printing why) on bad usage.
bool parse_options(std::string_view command, const Args& args,
                   const po::options_description& options,
                   const po::positional_options_description& positional, po::variables_map* vm);

// Parses a command whose only option is --json, into `*json`; false (after printing why) on bad
// usage.
bool parse_json_only(std::string_view command, const Args& args, bool* json);

// Parses a command that takes at most one positional argument, called `name`, into `*value`,
// besides the options in `extra`.
bool parse_with_positional(std::string_view command, const Args& args, const char* name,
                           std::string* value, po::options_description extra = {},
                           po::variables_map* vm = nullptr);

// vvm.conf (--conf, else the default path); prints the error when it cannot be read.
Result<Config> read_config(const Globals& g);

// Prints "vvctl COMMAND: MESSAGE" on stderr.
void print_failure(std::string_view command, const Status& status);

// A connection to vvmd (vvmd_endpoint(), with g.tls for a tls: one), or nullopt after printing
// why. `*config` is
// set for the caller. Exit code in `*rc`.
std::optional<rpc::Client> connect_vvmd(const Globals& g, std::string_view command,
                                        std::optional<Config>* config, int* rc);

// Sends `request`; on an error prints "vvctl COMMAND: MESSAGE" and returns nullopt.
template <class R>
std::optional<typename R::Reply> call_vvmd(rpc::Client& client, const Config& config,
                                           std::string_view command, const R& request) {
  auto reply = client.call(request, config.request_timeout);
  if (!reply.ok()) {
    print_failure(command, reply.status());
    return std::nullopt;
  }
  return std::move(*reply);
}

// Connects to vvmd and sends `request`: its reply, or nullopt after printing why, with the exit
// code in `*rc`. `*config` is set for the caller.
template <class R>
std::optional<typename R::Reply> ask_vvmd(const Globals& g, std::string_view command,
                                          const R& request, std::optional<Config>* config,
                                          int* rc) {
  auto client = connect_vvmd(g, command, config, rc);
  if (!client) return std::nullopt;
  auto reply = call_vvmd(*client, **config, command, request);
  if (!reply) *rc = kFailed;
  return reply;
}

}  // namespace vvm::vvctl
