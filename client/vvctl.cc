// vvctl.cc: the administrator's command-line tool. Each command is one entry in kCommands: a
// name, a one-line summary, its usage, and a function that parses its own options.
//
//   vvctl [--conf PATH] COMMAND [OPTIONS]
//   vvctl ping [--target vvmd|mover:NAME|ENDPOINT] [--timeout SECONDS] [--count N]
//   vvctl conf check [PATH]
//   vvctl pack check [PACKTAB]
//   vvctl pack ls [PACKTAB] [--holds DIR]
//
// Exit codes: 0 success, 1 the operation failed (a daemon is down, refused, or answered with an
// error), 2 a usage or configuration error.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "cli.h"
#include "config.h"
#include "pack_lock.h"
#include "packtab.h"
#include "rpc_client.h"
#include "size.h"

namespace vvm {
namespace {

namespace po = boost::program_options;
using cli::Args;

int usage_error(std::string_view command, std::string_view message) {
  return cli::usage_error("vvctl", command, message);
}

bool parse_options(std::string_view command, const Args& args,
                   const po::options_description& options,
                   const po::positional_options_description& positional, po::variables_map* vm) {
  return cli::parse_options("vvctl", command, args, options, positional, vm);
}

using cli::kFailed, cli::kOk, cli::kUsage;

struct Globals {
  std::string conf_path;  // --conf, or "" for the default
};

struct Command {
  std::string_view name;  // "ping", "conf check"
  std::string_view summary;
  std::string_view usage;
  std::function<int(const Globals&, const Args&)> run;
};

// Parses a command that takes at most one positional argument, called `name`, into `*value`,
// besides the options in `extra`.
bool parse_with_positional(std::string_view command, const Args& args, const char* name,
                           std::string* value, po::options_description extra = {}) {
  extra.add_options()(name, po::value(value));
  po::positional_options_description positional;
  positional.add(name, 1);
  po::variables_map vm;
  return parse_options(command, args, extra, positional, &vm);
}

Result<Config> read_config(const Globals& g) {
  std::string path = g.conf_path.empty() ? default_config_path() : g.conf_path;
  auto config = load_config(path);
  if (!config.ok()) fmt::print(stderr, "vvctl: {}\n", config.status().message());
  return config;
}

// --- ping ---

int cmd_ping(const Globals& g, const Args& args) {
  std::string target = "vvmd";
  double timeout_s = 5;
  int count = 1;
  po::options_description options;
  options.add_options()("target,t", po::value(&target))("timeout", po::value(&timeout_s))(
      "count,n", po::value(&count));
  po::positional_options_description none;
  po::variables_map vm;
  if (!parse_options("ping", args, options, none, &vm)) return kUsage;
  if (timeout_s <= 0 || timeout_s > 3600) {
    return usage_error("ping",
                       fmt::format("--timeout {}: not between 0 and 3600 seconds", timeout_s));
  }
  if (count < 1) return usage_error("ping", fmt::format("--count {}: must be at least 1", count));
  auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));

  Endpoint endpoint;
  if (target == "vvmd" || target.starts_with("mover:")) {
    auto config = read_config(g);
    if (!config.ok()) return kUsage;
    if (target == "vvmd") {
      if (config->vvmd_listen.empty()) {
        fmt::print(stderr, "vvctl: {}: [vvmd] has no listen address\n", config->path);
        return kUsage;
      }
      endpoint = config->vvmd_listen.front();
    } else {
      std::string name = target.substr(6);
      auto it = config->movers.find(name);
      if (it == config->movers.end()) {
        fmt::print(stderr, "vvctl ping: {}: no [mover {}] section\n", config->path, name);
        return kUsage;
      }
      endpoint = it->second.listen;
    }
  } else {
    auto parsed = Endpoint::parse(target);
    if (!parsed.ok()) {
      return usage_error("ping", fmt::format("--target '{}': expected vvmd, mover:NAME or an "
                                             "endpoint: {}",
                                             target, parsed.status().message()));
    }
    endpoint = *parsed;
  }

  auto client = rpc::Client::connect(endpoint, timeout);
  if (!client.ok()) {
    fmt::print(stderr, "vvctl ping: {}\n", client.status().message());
    return kFailed;
  }
  for (int i = 0; i < count; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto t0 = std::chrono::steady_clock::now();
    rpc::PingRequest request{fmt::format("vvctl ping {}", i + 1)};
    auto reply = client->call(request, timeout);
    auto rtt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);
    if (!reply.ok()) {
      fmt::print(stderr, "vvctl ping: {}\n", reply.status().message());
      return kFailed;
    }
    const auto& pong = std::get<rpc::PingReply>(*reply);
    if (pong.payload != request.payload) {
      fmt::print(stderr, "vvctl ping: {} echoed '{}' instead of '{}'\n", endpoint.to_string(),
                 pong.payload, request.payload);
      return kFailed;
    }
    fmt::print("{} {} at {}: {}, up {:.1f}s, time {:.3f} ms\n", pong.daemon, pong.name,
               endpoint.to_string(), pong.software, static_cast<double>(pong.uptime_ms) / 1000,
               rtt.count());
    std::fflush(stdout);
  }
  return kOk;
}

// Loads and checks a packtab as the plugin would; prints the error and returns nullopt if bad.
std::optional<PackTable> checked_packtab(const std::string& path) {
  auto table = load_packtab(path);
  Status s = table.ok() ? check_backings(*table) : table.status();
  if (!s.ok()) {
    fmt::print(stderr, "vvctl: {}\n", s.message());
    return std::nullopt;
  }
  return std::move(*table);
}

// --- conf check ---

int cmd_conf_check(const Globals& g, const Args& args) {
  std::string path;
  if (!parse_with_positional("conf check", args, "path", &path)) return kUsage;
  Globals use = g;
  if (!path.empty()) use.conf_path = path;
  auto config = read_config(use);
  if (!config.ok()) return kUsage;
  size_t packs = 0;
  if (!config->packtab.empty()) {
    auto table = checked_packtab(config->packtab);
    if (!table) return kUsage;
    packs = table->packs.size();
  }
  fmt::print(
      "{}: ok: {} listen address(es), {} media type(s), {} class(es), {} mover(s), "
      "{} drive(s)",
      config->path, config->vvmd_listen.size(), config->media.size(), config->classes.size(),
      config->movers.size(), config->drives.size());
  if (!config->packtab.empty()) fmt::print(", packtab {} with {} pack(s)", config->packtab, packs);
  fmt::print("\n");
  return kOk;
}

// --- pack check, pack ls ---

// The packtab a pack command works on: its argument, else vvm.conf's [plugin] packtab. Errors
// are printed here.
Result<std::string> packtab_path(const Globals& g, const std::string& arg, std::string* holds) {
  std::optional<Config> config;
  if (arg.empty() || (holds && holds->empty())) {
    auto loaded = read_config(g);
    if (!loaded.ok()) {
      if (arg.empty()) return loaded.status();
    } else {
      config = std::move(*loaded);
    }
  }
  if (holds && holds->empty()) {
    *holds = config ? config->state_dir + "/holds" : "/run/vvm/holds";
  }
  if (!arg.empty()) return arg;
  if (config->packtab.empty()) {
    fmt::print(stderr, "vvctl: {}: [plugin] names no packtab\n", config->path);
    return Status::InvalidArgument("no packtab");
  }
  return config->packtab;
}

int cmd_pack_check(const Globals& g, const Args& args) {
  std::string arg;
  if (!parse_with_positional("pack check", args, "packtab", &arg)) return kUsage;
  auto path = packtab_path(g, arg, nullptr);
  if (!path.ok()) return kUsage;
  auto table = checked_packtab(*path);
  if (!table) return kUsage;
  // A backing reached through two paths (a symlink) is one backing, as check_backings sees it.
  std::set<std::pair<dev_t, ino_t>> backings;
  for (const auto& p : table->packs) {
    struct stat st {};
    if (::stat(p.backing.c_str(), &st) == 0) backings.emplace(st.st_dev, st.st_ino);
  }
  const size_t packs = table->packs.size();
  fmt::print("{}: ok: {} pack{} in {} backing{}\n", table->path, packs, packs == 1 ? "" : "s",
             backings.size(), backings.size() == 1 ? "" : "s");
  return kOk;
}

// "exclusive by uid 0 since ... (nbdkit pid 42 on host1)" for each holder of `pack` now, or "-".
std::string holders_of(const PackEntry& pack, const HoldsDir& holds) {
  std::string out;
  for (const auto& r : holders_now(holds, pack.backing, pack.offset)) {
    out += (out.empty() ? "" : "; ") + describe_hold(r);
  }
  if (!out.empty()) return out;
  auto locks = probe_locks(pack.backing, pack.offset);
  return locks.ok() && !locks->empty() ? "locked by a process that left no record" : "-";
}

int cmd_pack_ls(const Globals& g, const Args& args) {
  std::string arg, holds;
  po::options_description options;
  options.add_options()("holds", po::value(&holds));
  if (!parse_with_positional("pack ls", args, "packtab", &arg, options)) return kUsage;
  auto path = packtab_path(g, arg, &holds);
  if (!path.ok()) return kUsage;
  auto table = checked_packtab(*path);
  if (!table) return kUsage;
  const HoldsDir holds_dir(holds);
  std::vector<std::array<std::string, 6>> rows = {
      {"NAME", "SIZE", "MODE", "BACKING:OFFSET", "OWNER:GROUP PERMS", "HELD BY"}};
  for (const auto& p : table->packs) {
    rows.push_back({p.name, format_size(p.size), std::string(pack_mode_name(p.mode)),
                    fmt::format("{}:{}", p.backing, format_size(p.offset)),
                    fmt::format("{}:{} {:04o}", user_name(p.owner), group_name(p.group), p.perms),
                    holders_of(p, holds_dir)});
  }
  std::array<size_t, 6> width{};
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += i + 1 < row.size() ? fmt::format("{:<{}}  ", row[i], width[i]) : row[i];
    }
    fmt::print("{}\n", line);
  }
  return kOk;
}

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {"ping", "ask a daemon whether it is there",
       "vvctl [--conf PATH] ping [--target vvmd|mover:NAME|ENDPOINT] [--timeout SECONDS] "
       "[--count N]\n"
       "  Connects to vvmd (the first [vvmd] listen address), to a mover (its [mover NAME]\n"
       "  listen address) or to an endpoint (unix:/PATH or HOST:PORT), sends N pings a fifth\n"
       "  of a second apart (default 1) and prints each reply and its round trip. Fails (exit 1)\n"
       "  when nothing answers within --timeout (default 5 seconds) or the daemon refuses.",
       cmd_ping},
      {"conf check", "check vvm.conf and the packtab it names",
       "vvctl [--conf PATH] conf check [PATH]\n"
       "  Reads vvm.conf (PATH, else --conf, else $VVM_CONF, else /etc/vvm/vvm.conf) and the\n"
       "  packtab it names, prints a summary, or the first error with its file, line and\n"
       "  reason (exit 2).",
       cmd_conf_check},
      {"pack check", "check a pack table and its backings",
       "vvctl [--conf PATH] pack check [PACKTAB]\n"
       "  Reads PACKTAB (default: vvm.conf's [plugin] packtab) and checks it as the nbdkit\n"
       "  plugin does: fields, sizes, modes, owners, duplicate names, overlapping packs (also\n"
       "  through symlinks and hard links), missing backings, packs past the end of theirs.\n"
       "  Prints \"PACKTAB: ok: N packs in M backings\", or the first problem with its file,\n"
       "  line and reason, as nbdkit prints it (exit 2).",
       cmd_pack_check},
      {"pack ls", "list packs and who holds them now",
       "vvctl [--conf PATH] pack ls [PACKTAB] [--holds DIR]\n"
       "  One line a pack: name, size, mode, backing and offset, owner, group and permissions,\n"
       "  and who holds it now (client, hold, since, nbdkit pid), from the holds records the\n"
       "  plugin writes (DIR; default: vvm.conf's state-dir/holds, else /run/vvm/holds) and the\n"
       "  locks on the backing. Works whether or not vvmd runs.",
       cmd_pack_ls},
  };
  return kCommands;
}

void print_help() {
  fmt::print(
      "Usage: vvctl [--conf PATH] COMMAND [OPTIONS]\n"
      "Administer vvm: talk to vvmd and the movers, check vvm.conf and pack tables, list packs\n"
      "and who holds them.\n\n"
      "Options:\n"
      "  -c, --conf PATH  vvm.conf to read (default: $VVM_CONF, else /etc/vvm/vvm.conf)\n"
      "  -h, --help       print this help and exit\n"
      "  --version        print the version and exit\n\n"
      "Commands:\n");
  for (const auto& c : commands()) fmt::print("  {:<12} {}\n", c.name, c.summary);
  fmt::print("\n'vvctl help COMMAND' describes one command.\n");
}

int run(int argc, char** argv) {
  Globals g;
  Args rest;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (!rest.empty()) {
      rest.emplace_back(a);
    } else if (a == "--help" || a == "-h") {
      print_help();
      return kOk;
    } else if (a == "--version") {
      fmt::print("vvctl (vvm) {}\n", VVM_VERSION);
      return kOk;
    } else if (a == "--conf" || a == "-c") {
      if (++i == argc) {
        fmt::print(stderr, "vvctl: --conf needs a path\n");
        return kUsage;
      }
      g.conf_path = argv[i];
    } else if (a.starts_with("--conf=")) {
      g.conf_path = std::string(a.substr(7));
    } else if (a.starts_with("-")) {
      fmt::print(stderr, "vvctl: unknown option '{}'\nTry 'vvctl --help'.\n", a);
      return kUsage;
    } else {
      rest.emplace_back(a);
    }
  }
  if (rest.empty()) {
    print_help();
    return kUsage;
  }
  if (rest[0] == "help") {
    std::string topic;
    for (size_t i = 1; i < rest.size(); ++i) topic += (i > 1 ? " " : "") + rest[i];
    if (topic.empty()) {
      print_help();
      return kOk;
    }
    for (const auto& c : commands()) {
      if (c.name == topic) {
        fmt::print("Usage: {}\n", c.usage);
        return kOk;
      }
    }
    fmt::print(stderr, "vvctl help: no command '{}'\n", topic);
    return kUsage;
  }
  // The longest command name that the words start with ("conf check" before "conf").
  const Command* best = nullptr;
  size_t best_words = 0;
  for (const auto& c : commands()) {
    std::vector<std::string> words;
    std::string name(c.name);
    for (size_t p = 0; p <= name.size();) {
      size_t q = name.find(' ', p);
      if (q == std::string::npos) q = name.size();
      words.push_back(name.substr(p, q - p));
      p = q + 1;
    }
    if (words.size() <= rest.size() && std::equal(words.begin(), words.end(), rest.begin()) &&
        words.size() > best_words) {
      best = &c;
      best_words = words.size();
    }
  }
  if (!best) {
    fmt::print(stderr, "vvctl: unknown command '{}'\nTry 'vvctl --help'.\n", rest[0]);
    return kUsage;
  }
  return best->run(g, Args(rest.begin() + static_cast<long>(best_words), rest.end()));
}

}  // namespace
}  // namespace vvm

int main(int argc, char** argv) {
  try {
    return vvm::run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "vvctl: {}\n", e.what());
    return 1;
  }
}
