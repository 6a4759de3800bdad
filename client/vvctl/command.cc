// vvctl/command.cc: what every vvctl command shares (command.h): option parsing, vvm.conf and
// requests to vvmd, with their errors printed as "vvctl COMMAND: MESSAGE".
#include "vvctl/command.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include <fmt/core.h>

namespace vvm::vvctl {

int usage_error(std::string_view command, std::string_view message) {
  return cli::usage_error("vvctl", command, message);
}

bool parse_options(std::string_view command, const Args& args,
                   const po::options_description& options,
                   const po::positional_options_description& positional, po::variables_map* vm) {
  return cli::parse_options("vvctl", command, args, options, positional, vm);
}

bool parse_json_only(std::string_view command, const Args& args, bool* json) {
  po::options_description options;
  options.add_options()("json", po::bool_switch(json));
  po::positional_options_description none;
  po::variables_map vm;
  return parse_options(command, args, options, none, &vm);
}

bool parse_with_positional(std::string_view command, const Args& args, const char* name,
                           std::string* value, po::options_description extra,
                           po::variables_map* vm) {
  extra.add_options()(name, po::value(value));
  po::positional_options_description positional;
  positional.add(name, 1);
  po::variables_map local;
  return parse_options(command, args, extra, positional, vm ? vm : &local);
}

Result<Config> read_config(const Globals& g) {
  std::string path = g.conf_path.empty() ? default_config_path() : g.conf_path;
  auto config = load_config(path);
  if (!config.ok()) fmt::print(stderr, "vvctl: {}\n", config.status().message());
  return config;
}

namespace {
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
}  // namespace

Result<Endpoint> vvmd_endpoint(const Globals& g, const Config& config) {
  std::string text = !g.vvmd.empty() ? g.vvmd : env("VVM_VVMD");
  if (text.empty()) {
    if (config.vvmd_listen.empty()) {
      return Status::InvalidArgument(config.path + ": [vvmd] has no listen address");
    }
    return config.vvmd_listen.front();
  }
  auto endpoint = Endpoint::parse(text);
  if (!endpoint.ok()) {
    return Status::InvalidArgument(fmt::format(
        "{} '{}': {}", g.vvmd.empty() ? "$VVM_VVMD" : "--vvmd", text, endpoint.status().message()));
  }
  return endpoint;
}

bool vvmd_named(const Globals& g) { return !g.vvmd.empty() || !env("VVM_VVMD").empty(); }

std::optional<rpc::Client> connect_vvmd(const Globals& g, std::string_view command,
                                        std::optional<Config>* config, int* rc) {
  // With vvmd named (--vvmd, $VVM_VVMD), vvm.conf is needed only if it was named too: a client
  // on another host may have none, and then takes the defaults.
  const bool conf_named = !g.conf_path.empty() || !env("VVM_CONF").empty();
  if (vvmd_named(g) && !conf_named) {
    auto loaded = load_config(default_config_path());
    *config = loaded.ok() ? std::move(*loaded) : Config{};
  } else {
    auto loaded = read_config(g);
    if (!loaded.ok()) {
      *rc = kUsage;
      return std::nullopt;
    }
    *config = std::move(*loaded);
  }
  auto endpoint = vvmd_endpoint(g, **config);
  if (!endpoint.ok()) {
    fmt::print(stderr, "vvctl: {}\n", endpoint.status().message());
    *rc = kUsage;
    return std::nullopt;
  }
  auto client = rpc::Client::connect(*endpoint, (*config)->request_timeout, g.tls);
  if (!client.ok()) {
    fmt::print(stderr, "vvctl {}: {}\n", command, client.status().message());
    *rc = kFailed;
    return std::nullopt;
  }
  return std::move(*client);
}

void print_failure(std::string_view command, const Status& status) {
  fmt::print(stderr, "vvctl {}: {}\n", command, status.message());
}

}  // namespace vvm::vvctl
