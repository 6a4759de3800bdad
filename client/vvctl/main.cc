// vvctl/main.cc: the administrator's command-line tool. Each command is one entry in kCommands: a
// name, a one-line summary, its usage, and a function that parses its own options.
//
//   vvctl [--conf PATH] COMMAND [OPTIONS]
//   vvctl ping [--target vvmd|mover:NAME|ENDPOINT] [--timeout SECONDS] [--count N]
//   vvctl conf check [PATH]
//   vvctl pack check [PACKTAB]
//   vvctl pack ls [PACKTAB] [--holds DIR]
//   vvctl create --class C --size S [--id N] [--owner U] [--group G] [--perms P]
//   vvctl show NAME [--json]
//   vvctl ls [--state S] [--class C] [--id N] [--json]
//   vvctl finish NAME [--wait [--timeout SECONDS]]
//   vvctl stage NAME... [--wait [--timeout SECONDS]]
//   vvctl status [--json]
//   vvctl rm NAME [--force]
//   vvctl evict NAME
//   vvctl vsn add VSN --media M [--class C]
//   vvctl vsn ls [--json] [--page-size N]
//
// Exit codes: 0 success, 1 the operation failed (a daemon is down, refused, or answered with an
// error), 2 a usage or configuration error.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
#include <fmt/format.h>

#include "common/cli.h"
#include "common/config.h"
#include "common/json.h"
#include "common/size.h"
#include "pack/pack_lock.h"
#include "pack/packtab.h"
#include "proto/client.h"

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
                           std::string* value, po::options_description extra = {},
                           po::variables_map* vm = nullptr) {
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
    const auto& pong = *reply;
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

// "18T" when a binary unit divides the size exactly (as format_size), else one decimal in the
// largest unit below it ("1.5G"); bytes below 1K as they are.
std::string human_size(uint64_t bytes) {
  std::string exact = format_size(bytes);
  if (bytes < 1024 || exact.back() < '0' || exact.back() > '9') return exact;
  static constexpr std::array<char, 4> kUnits = {'K', 'M', 'G', 'T'};
  double v = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < kUnits.size()) {
    v /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f}{}", v, kUnits[unit]);
}

// Prints `rows` (the first is the header) as aligned columns.
template <size_t N>
void print_table(const std::vector<std::array<std::string, N>>& rows) {
  std::array<size_t, N> width{};
  for (const auto& row : rows) {
    for (size_t i = 0; i < N; ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < N; ++i) {
      line += i + 1 < N ? fmt::format("{:<{}}  ", row[i], width[i]) : row[i];
    }
    fmt::print("{}\n", line);
  }
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
  print_table(rows);
  return kOk;
}

// --- the VV catalogue: create, show, ls, finish, rm ---

// A connection to vvmd (its first listen address), or nullopt after printing why. `*config` is
// set for the caller. Exit code in `*rc`.
std::optional<rpc::Client> connect_vvmd(const Globals& g, std::string_view command,
                                        std::optional<Config>* config, int* rc) {
  auto loaded = read_config(g);
  if (!loaded.ok()) {
    *rc = kUsage;
    return std::nullopt;
  }
  *config = std::move(*loaded);
  if ((*config)->vvmd_listen.empty()) {
    fmt::print(stderr, "vvctl: {}: [vvmd] has no listen address\n", (*config)->path);
    *rc = kUsage;
    return std::nullopt;
  }
  auto client = rpc::Client::connect((*config)->vvmd_listen.front(), (*config)->request_timeout);
  if (!client.ok()) {
    fmt::print(stderr, "vvctl {}: {}\n", command, client.status().message());
    *rc = kFailed;
    return std::nullopt;
  }
  return std::move(*client);
}

// Sends `request`; on an error prints "vvctl COMMAND: MESSAGE" and returns nullopt.
template <class R>
std::optional<typename R::Reply> call_vvmd(rpc::Client& client, const Config& config,
                                           std::string_view command, const R& request) {
  auto reply = client.call(request, config.request_timeout);
  if (!reply.ok()) {
    fmt::print(stderr, "vvctl {}: {}\n", command, reply.status().message());
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

// "2026-11-23 12:05:04" in local time; "-" for 0 (not yet).
std::string format_time(uint64_t unix_seconds) {
  if (unix_seconds == 0) return "-";
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// The media type of copy `i` of a VV of class `cls`, as vvm.conf lists it ("" if unknown).
std::string copy_media(const Config& config, const std::string& cls, size_t i) {
  if (cls.size() != 1) return "";
  auto it = config.classes.find(cls[0]);
  if (it == config.classes.end() || i >= it->second.media.size()) return "";
  return it->second.media[i];
}

void write_vv_json(JsonWriter& j, const Config& config, const Vv& v) {
  j.begin_object();
  j.key("name").value(v.name).key("class").value(v.vv_class).key("serial").value(v.serial);
  j.key("client_id").value(v.client_id).key("owner").value(v.owner).key("group").value(v.group);
  j.key("perms").value(fmt::format("{:04o}", v.perms)).key("size").value(v.size);
  j.key("state").value(vv_state_name(v.state));
  j.key("cache").value(cache_state_name(v.cache));
  j.key("created").value(v.created).key("finished").value(v.finished);
  j.key("accessed").value(v.accessed).key("checksum").value(v.checksum);
  j.key("copies").begin_array();
  for (size_t i = 0; i < v.copies.size(); ++i) {
    if (v.copies[i].vsn.empty()) continue;
    j.begin_object().key("copy").value(uint64_t{i + 1}).key("media");
    j.value(copy_media(config, v.vv_class, i)).key("vsn").value(v.copies[i].vsn);
    j.key("file").value(v.copies[i].file).end_object();
  }
  j.end_array().end_object();
}

// "L00001 file 3, M00002 file 7", or "none".
std::string describe_copies(const Vv& v) {
  std::string out;
  for (const auto& c : v.copies) {
    if (!c.vsn.empty()) out += fmt::format("{}{} file {}", out.empty() ? "" : ", ", c.vsn, c.file);
  }
  return out.empty() ? "none" : out;
}

// A name argument: required, one.
bool parse_name(std::string_view command, const Args& args, std::string* name,
                po::options_description extra = {}, po::variables_map* vm = nullptr) {
  if (!parse_with_positional(command, args, "name", name, std::move(extra), vm)) return false;
  if (name->empty()) {
    usage_error(command, "a VV name is required");
    return false;
  }
  return true;
}

int cmd_create(const Globals& g, const Args& args) {
  std::string cls, size_text, owner, group, perms;
  uint64_t id = 0;
  po::options_description options;
  options.add_options()("class", po::value(&cls)->required())(
      "size", po::value(&size_text)->required())("id", po::value(&id))("owner", po::value(&owner))(
      "group", po::value(&group))("perms", po::value(&perms));
  po::positional_options_description none;
  po::variables_map vm;
  if (!parse_options("create", args, options, none, &vm)) return kUsage;
  auto size = parse_size(size_text);
  if (!size.ok()) return usage_error("create", "--size " + size.status().message());
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "create", rpc::VvCreateRequest{cls, *size, id, owner, group, perms},
                        &config, &rc);
  if (!reply) return rc;
  fmt::print("{}\n", reply->vv.name);
  return kOk;
}

int cmd_show(const Globals& g, const Args& args) {
  std::string name;
  po::options_description options;
  options.add_options()("json", po::bool_switch());
  po::variables_map vm;
  if (!parse_name("show", args, &name, options, &vm)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "show", rpc::VvShowRequest{name}, &config, &rc);
  if (!reply) return rc;
  const Vv& v = reply->vv;
  if (vm["json"].as<bool>()) {
    JsonWriter j;
    write_vv_json(j, *config, v);
    fmt::print("{}\n", j.str());
    return kOk;
  }
  fmt::print("name:      {}\n", v.name);
  fmt::print("class:     {} (serial {})\n", v.vv_class, v.serial);
  fmt::print("client id: {}\n", v.client_id);
  fmt::print("size:      {} ({} bytes)\n", format_size(v.size), v.size);
  fmt::print("state:     {}\n", vv_state_name(v.state));
  fmt::print("cache:     {}\n", cache_state_name(v.cache));
  fmt::print("owner:     {}:{} {:04o}\n", v.owner, v.group, v.perms);
  fmt::print("created:   {}\n", format_time(v.created));
  fmt::print("finished:  {}\n", format_time(v.finished));
  fmt::print("accessed:  {}\n", format_time(v.accessed));
  fmt::print("checksum:  {}\n", v.checksum ? fmt::format("{:016x}", v.checksum) : "-");
  for (size_t i = 0; i < v.copies.size(); ++i) {
    std::string media = copy_media(*config, v.vv_class, i);
    if (media.empty() && v.copies[i].vsn.empty()) continue;
    fmt::print("copy {}:    {}{}\n", i + 1, media.empty() ? "" : media + ": ",
               v.copies[i].vsn.empty()
                   ? "not yet written"
                   : fmt::format("{} file {}", v.copies[i].vsn, v.copies[i].file));
  }
  return kOk;
}

int cmd_ls(const Globals& g, const Args& args) {
  std::string state_text, cls;
  uint64_t id = 0;
  uint32_t page_size = 0;
  po::options_description options;
  options.add_options()("state", po::value(&state_text))("class", po::value(&cls))(
      "id", po::value(&id))("json", po::bool_switch())("page-size", po::value(&page_size));
  po::positional_options_description none;
  po::variables_map vm;
  if (!parse_options("ls", args, options, none, &vm)) return kUsage;
  rpc::VvListRequest request;
  if (!state_text.empty()) {
    auto state = parse_vv_state(state_text);
    if (!state) {
      return usage_error(
          "ls", fmt::format("--state '{}': expected hot, finished or archived", state_text));
    }
    request.state = *state;
  }
  request.vv_class = cls;
  if (vm.count("id")) request.client_id = id;
  request.limit = page_size;

  std::optional<Config> config;
  int rc = kOk;
  auto client = connect_vvmd(g, "ls", &config, &rc);
  if (!client) return rc;
  // Page after page until vvmd says there are no more: each reply stays under the message limit.
  std::vector<Vv> vvs;
  for (;;) {
    auto reply = call_vvmd(*client, *config, "ls", request);
    if (!reply) return kFailed;
    auto& page = *reply;
    for (auto& v : page.vvs) vvs.push_back(std::move(v));
    if (!page.more || vvs.empty()) break;
    request.after = vvs.back().name;
  }
  if (vm["json"].as<bool>()) {
    JsonWriter j;
    j.begin_array();
    for (const auto& v : vvs) write_vv_json(j, *config, v);
    j.end_array();
    fmt::print("{}\n", j.str());
    return kOk;
  }
  constexpr size_t kColumns = 9;
  std::vector<std::array<std::string, kColumns>> rows = {
      {"NAME", "CLASS", "STATE", "CACHE", "SIZE", "OWNER", "ID", "CREATED", "COPIES"}};
  for (const auto& v : vvs) {
    std::string copies;
    for (const auto& c : v.copies) {
      if (!c.vsn.empty()) copies += (copies.empty() ? "" : ",") + c.vsn;
    }
    rows.push_back({v.name, v.vv_class, std::string(vv_state_name(v.state)),
                    std::string(cache_state_name(v.cache)), format_size(v.size), v.owner,
                    std::to_string(v.client_id), format_time(v.created),
                    copies.empty() ? "-" : copies});
  }
  print_table(rows);
  return kOk;
}

// finish --wait: polls the VV until every copy of its class exists, printing each copy as it
// appears. kFailed on a timeout or when the VV goes away.
int wait_archived(rpc::Client& client, const Config& config, const std::string& name,
                  std::optional<std::chrono::seconds> timeout) {
  const auto start = std::chrono::steady_clock::now();
  std::set<std::string> told;
  for (;;) {
    auto reply = call_vvmd(client, config, "finish", rpc::VvShowRequest{name});
    if (!reply) return kFailed;
    const auto& v = reply->vv;
    for (size_t i = 0; i < v.copies.size(); ++i) {
      const auto& c = v.copies[i];
      if (c.vsn.empty() || !told.insert(c.vsn).second) continue;
      fmt::print("{}: copy {} on {} file {}\n", v.name, i + 1, c.vsn, c.file);
      std::fflush(stdout);
    }
    if (v.state == VvState::kArchived) {
      fmt::print("{}: archived\n", v.name);
      return kOk;
    }
    if (timeout && std::chrono::steady_clock::now() - start >= *timeout) {
      size_t want = 0;
      if (auto cls = config.classes.find(v.vv_class.empty() ? '?' : v.vv_class[0]);
          cls != config.classes.end()) {
        want = cls->second.media.size();
      }
      fmt::print(stderr,
                 "vvctl finish: {} is not archived after {} s: {} of {} copies written ('vvctl "
                 "status' shows the queues)\n",
                 v.name, timeout->count(), told.size(), want);
      return kFailed;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

int cmd_finish(const Globals& g, const Args& args) {
  std::string name;
  unsigned timeout_s = 0;
  po::options_description options;
  options.add_options()("wait", po::bool_switch())("timeout", po::value(&timeout_s));
  po::variables_map vm;
  if (!parse_name("finish", args, &name, options, &vm)) return kUsage;
  const bool wait = vm["wait"].as<bool>();
  if (vm.count("timeout") && !wait) return usage_error("finish", "--timeout goes with --wait");
  std::optional<Config> config;
  int rc = kOk;
  auto client = connect_vvmd(g, "finish", &config, &rc);
  if (!client) return rc;
  auto reply = client->call(rpc::VvFinishRequest{name}, config->request_timeout);
  if (reply.ok()) {
    const auto& v = reply->vv;
    fmt::print("{}: finished at {}\n", v.name, format_time(v.finished));
  } else {
    // With --wait, a VV finished earlier is what we wait for, not an error.
    auto shown = wait && reply.status().code() == Code::kInvalidArgument
                     ? client->call(rpc::VvShowRequest{name}, config->request_timeout)
                     : Result<rpc::VvReply>(reply.status());
    const bool already = shown.ok() && shown->vv.state != VvState::kHot;
    if (!already) {
      fmt::print(stderr, "vvctl finish: {}\n", reply.status().message());
      return kFailed;
    }
  }
  if (!wait) return kOk;
  std::optional<std::chrono::seconds> timeout;
  if (vm.count("timeout")) timeout = std::chrono::seconds(timeout_s);
  return wait_archived(*client, *config, name, timeout);
}

// "[#########...........]  45%  12M of 26M from L90001 file 3"
std::string progress_bar(const rpc::VvStageReply& r) {
  constexpr int kWidth = 24;
  const double done =
      r.bytes_total ? static_cast<double>(r.bytes_done) / static_cast<double>(r.bytes_total) : 0;
  const int filled = static_cast<int>(done * kWidth);
  return fmt::format("[{}{}] {:3d}%  {} of {} from {} file {}", std::string(filled, '#'),
                     std::string(kWidth - filled, '.'), static_cast<int>(done * 100),
                     human_size(r.bytes_done), human_size(r.bytes_total), r.vsn, r.file);
}

int cmd_stage(const Globals& g, const Args& args) {
  std::vector<std::string> names;
  unsigned timeout_s = 0;
  po::options_description options;
  options.add_options()("name", po::value(&names))("wait", po::bool_switch())(
      "timeout", po::value(&timeout_s));
  po::positional_options_description positional;
  positional.add("name", -1);
  po::variables_map vm;
  if (!parse_options("stage", args, options, positional, &vm)) return kUsage;
  if (names.empty()) return usage_error("stage", "a VV name is required");
  const bool wait = vm["wait"].as<bool>();
  if (vm.count("timeout") && !wait) return usage_error("stage", "--timeout goes with --wait");
  std::optional<Config> config;
  int rc = kOk;
  auto client = connect_vvmd(g, "stage", &config, &rc);
  if (!client) return rc;

  // One request a VV first, so that vvmd sees them all together and groups them by tape.
  std::vector<std::string> pending;
  for (const auto& name : names) {
    auto reply = call_vvmd(*client, *config, "stage", rpc::VvStageRequest{name, wait});
    if (!reply) {
      rc = kFailed;
      continue;
    }
    const auto& r = *reply;
    if (r.cached) {
      fmt::print("{}: in the cache\n", name);
      continue;
    }
    fmt::print("{}: {} from {} file {}\n", name, r.copying ? "staging" : "queued", r.vsn, r.file);
    pending.push_back(name);
  }
  std::fflush(stdout);
  if (!wait) return rc;

  const bool bar = ::isatty(STDERR_FILENO) != 0;
  const auto start = std::chrono::steady_clock::now();
  while (!pending.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::vector<std::string> still;
    for (const auto& name : pending) {
      auto reply = call_vvmd(*client, *config, "stage", rpc::VvStageRequest{name, true});
      if (bar) fmt::print(stderr, "\r\033[K");
      if (!reply) {
        rc = kFailed;
        continue;
      }
      const auto& r = *reply;
      if (r.cached) {
        fmt::print("{}: staged\n", name);
        std::fflush(stdout);
        continue;
      }
      still.push_back(name);
      if (bar && still.size() == 1) {
        fmt::print(stderr, "{} {}{}", name, r.copying ? progress_bar(r) : "queued",
                   pending.size() > 1 ? fmt::format(" ({} more)", pending.size() - 1) : "");
      }
    }
    pending = std::move(still);
    if (!pending.empty() && vm.count("timeout") &&
        std::chrono::steady_clock::now() - start >= std::chrono::seconds(timeout_s)) {
      if (bar) fmt::print(stderr, "\r\033[K");
      fmt::print(stderr, "vvctl stage: not in the cache after {} s: {}\n", timeout_s,
                 fmt::join(pending, " "));
      return kFailed;
    }
  }
  return rc;
}

// "1h02m", "45s"
std::string format_age(uint64_t s) {
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
}

int cmd_status(const Globals& g, const Args& args) {
  po::options_description options;
  options.add_options()("json", po::bool_switch());
  po::positional_options_description none;
  po::variables_map vm;
  if (!parse_options("status", args, options, none, &vm)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "status", rpc::StatusRequest{}, &config, &rc);
  if (!reply) return rc;
  const auto& st = *reply;
  if (vm["json"].as<bool>()) {
    JsonWriter j;
    j.begin_object();
    j.key("uptime_s").value(st.uptime_s).key("mounts").value(st.mounts);
    j.key("opens").value(st.opens);
    j.key("cache").begin_object();
    j.key("used").value(st.cache_used).key("size").value(st.cache_size);
    j.key("high_watermark").value(uint64_t{st.high_watermark});
    j.key("low_watermark").value(uint64_t{st.low_watermark});
    j.end_object();
    j.key("drives").begin_array();
    for (const auto& d : st.drives) {
      j.begin_object();
      j.key("name").value(d.name).key("mover").value(d.mover).key("media").value(d.media);
      j.key("vsn").value(d.vsn).key("mounts").value(d.mounts).key("usable").value(d.usable);
      j.key("copying").value(d.copying).key("bytes_done").value(d.bytes_done);
      j.key("bytes_total").value(d.bytes_total);
      j.end_object();
    }
    j.end_array();
    j.key("queues").begin_array();
    for (const auto& q : st.queues) {
      j.begin_object();
      j.key("kind").value(q.kind).key("key").value(q.key).key("files").value(q.files);
      j.key("bytes").value(q.bytes).key("oldest_s").value(q.oldest_s);
      j.key("waiting").value(q.waiting);
      j.end_object();
    }
    j.end_array();
    j.end_object();
    fmt::print("{}\n", j.str());
    return kOk;
  }
  fmt::print("vvmd: up {}, {} mount{} since, {} VV open{} through NBD\n", format_age(st.uptime_s),
             st.mounts, st.mounts == 1 ? "" : "s", st.opens, st.opens == 1 ? "" : "s");
  if (st.cache_size > 0) {
    fmt::print("cache: {} of {} used ({}%), evicting above {}% down to {}%\n",
               human_size(st.cache_used), human_size(st.cache_size),
               st.cache_used * 100 / st.cache_size, st.high_watermark, st.low_watermark);
  }
  std::vector<std::array<std::string, 6>> drives = {
      {"DRIVE", "MOVER", "MEDIA", "VSN", "MOUNTS", "NOW"}};
  for (const auto& d : st.drives) {
    std::string now = d.copying.empty()
                          ? (d.usable ? "idle" : "set aside (mover failed)")
                          : fmt::format("{} ({} of {})", d.copying, human_size(d.bytes_done),
                                        human_size(d.bytes_total));
    drives.push_back(
        {d.name, d.mover, d.media, d.vsn.empty() ? "-" : d.vsn, std::to_string(d.mounts), now});
  }
  print_table(drives);
  if (st.queues.empty()) {
    fmt::print("queues: empty\n");
    return kOk;
  }
  std::vector<std::array<std::string, 6>> queues = {
      {"QUEUE", "FOR", "FILES", "BYTES", "OLDEST", "WAITED-FOR"}};
  for (const auto& q : st.queues) {
    queues.push_back({q.kind, q.key, std::to_string(q.files), human_size(q.bytes),
                      format_age(q.oldest_s),
                      q.kind == "stage" ? (q.waiting ? "yes" : "no") : "-"});
  }
  print_table(queues);
  return kOk;
}

int cmd_rm(const Globals& g, const Args& args) {
  std::string name;
  po::options_description options;
  options.add_options()("force", po::bool_switch());
  po::variables_map vm;
  if (!parse_name("rm", args, &name, options, &vm)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "rm", rpc::VvRemoveRequest{name, vm["force"].as<bool>()}, &config, &rc);
  if (!reply) return rc;
  const auto& v = reply->vv;
  fmt::print("removed {}: its record ({}, {}, owner {}) and its cache file {}/{}", v.name,
             vv_state_name(v.state), format_size(v.size), v.owner, config->cache_dir, v.name);
  if (describe_copies(v) != "none") {
    fmt::print("; its tape files stay: {}", describe_copies(v));
  }
  fmt::print("\n");
  return kOk;
}

int cmd_evict(const Globals& g, const Args& args) {
  std::string name;
  if (!parse_name("evict", args, &name)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "evict", rpc::VvEvictRequest{name}, &config, &rc);
  if (!reply) return rc;
  const auto& e = *reply;
  if (e.already) {
    fmt::print("{}: already evicted\n", e.vv.name);
  } else {
    fmt::print("{}: evicted ({} bytes freed)\n", e.vv.name, e.freed);
  }
  return kOk;
}

// --- the VSN catalogue: vsn add, vsn ls ---

void write_vsn_json(JsonWriter& j, const Vsn& v) {
  j.begin_object();
  j.key("name").value(v.name).key("media").value(v.media).key("class").value(v.vsn_class);
  j.key("state").value(vsn_state_name(v.state)).key("location").value(v.location);
  j.key("next_file").value(v.next_file).key("bytes_used").value(v.bytes_used);
  j.key("capacity").value(v.capacity).key("errors").value(v.errors);
  j.key("last_mount").value(v.last_mount);
  j.end_object();
}

int cmd_vsn_add(const Globals& g, const Args& args) {
  std::string vsn, media, cls;
  po::options_description options;
  options.add_options()("media", po::value(&media)->required())("class", po::value(&cls));
  if (!parse_with_positional("vsn add", args, "vsn", &vsn, options)) return kUsage;
  if (vsn.empty()) return usage_error("vsn add", "a VSN is required");
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "vsn add", rpc::VsnAddRequest{vsn, media, cls}, &config, &rc);
  if (!reply) return rc;
  const Vsn& v = reply->vsn;
  fmt::print("added VSN {}: media {}, class {}, {}, next file {}, capacity {}", v.name, v.media,
             v.vsn_class.empty() ? "any" : v.vsn_class, vsn_state_name(v.state), v.next_file,
             human_size(v.capacity));
  if (config->library_kind == "emulated") {
    fmt::print("; tape image {}/{}.tap", config->library_path, v.name);
  }
  fmt::print("\n");
  return kOk;
}

int cmd_vsn_ls(const Globals& g, const Args& args) {
  uint32_t page_size = 0;
  po::options_description options;
  options.add_options()("json", po::bool_switch())("page-size", po::value(&page_size));
  po::positional_options_description none;
  po::variables_map vm;
  if (!parse_options("vsn ls", args, options, none, &vm)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto client = connect_vvmd(g, "vsn ls", &config, &rc);
  if (!client) return rc;
  rpc::VsnListRequest request{"", page_size};
  std::vector<Vsn> vsns;
  for (;;) {
    auto reply = call_vvmd(*client, *config, "vsn ls", request);
    if (!reply) return kFailed;
    auto& page = *reply;
    for (auto& v : page.vsns) vsns.push_back(std::move(v));
    if (!page.more || vsns.empty()) break;
    request.after = vsns.back().name;
  }
  if (vm["json"].as<bool>()) {
    JsonWriter j;
    j.begin_array();
    for (const auto& v : vsns) write_vsn_json(j, v);
    j.end_array();
    fmt::print("{}\n", j.str());
    return kOk;
  }
  constexpr size_t kColumns = 9;
  std::vector<std::array<std::string, kColumns>> rows = {
      {"VSN", "MEDIA", "CLASS", "STATE", "LOCATION", "FILES", "USED", "CAPACITY", "ERRORS"}};
  for (const auto& v : vsns) {
    rows.push_back({v.name, v.media, v.vsn_class.empty() ? "any" : v.vsn_class,
                    std::string(vsn_state_name(v.state)), v.location.empty() ? "-" : v.location,
                    std::to_string(v.next_file > 0 ? v.next_file - 1 : 0), human_size(v.bytes_used),
                    human_size(v.capacity), std::to_string(v.errors)});
  }
  print_table(rows);
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
      {"create", "create a virtual volume",
       "vvctl [--conf PATH] create --class C --size S [--id N] [--owner U] [--group G] "
       "[--perms P]\n"
       "  Asks vvmd for a new hot VV of storage class C and S bytes (K, M, G, T suffixes), a\n"
       "  sparse file in the cache, and prints its name (class letter and serial,\n"
       "  A0000000042) alone on stdout. N is your own integer id for it (default 0). Owner and\n"
       "  group default to yours, perms (octal) to 0640; only root and vvmd's user may give a VV\n"
       "  to another owner.",
       cmd_create},
      {"show", "show one virtual volume",
       "vvctl [--conf PATH] show NAME [--json]\n"
       "  Every field of the VV's record: class, serial, id, size, state (hot, finished,\n"
       "  archived), cache (cached, evicted, staging), owner, times, checksum and its copies\n"
       "  on tape. --json prints one object, times as unix seconds and sizes in bytes.",
       cmd_show},
      {"ls", "list virtual volumes",
       "vvctl [--conf PATH] ls [--state S] [--class C] [--id N] [--json] [--page-size N]\n"
       "  The VVs in name order, one a line (NAME CLASS STATE CACHE SIZE OWNER ID CREATED\n"
       "  COPIES), those of state S (hot, finished, archived), class C and id N when given.\n"
       "  --json prints an array of the objects that show --json prints. vvmd sends the list in\n"
       "  pages of N VVs (default and most: 1000), which ls follows to the end.",
       cmd_ls},
      {"finish", "make a hot virtual volume read-only, for archiving",
       "vvctl [--conf PATH] finish NAME [--wait [--timeout SECONDS]]\n"
       "  Moves the VV from hot to finished: read-only from now on, and queued for its\n"
       "  copies on tape, one on a VSN of each media type of its class. Only its owner, root\n"
       "  and vvmd's user may; a VV that is not hot is refused, naming its state. --wait then\n"
       "  waits until the VV is archived, printing each copy (VSN and file) as it is written\n"
       "  (a VV finished earlier is waited for too); with --timeout it gives up after SECONDS\n"
       "  (exit 1), saying how many copies exist.",
       cmd_finish},
      {"stage", "bring evicted virtual volumes back from tape",
       "vvctl [--conf PATH] stage NAME... [--wait [--timeout SECONDS]]\n"
       "  Asks vvmd to read each evicted VV back into the cache from its best copy (one on a\n"
       "  tape already in a drive first; stages of VVs on one tape share one mount and are read\n"
       "  in file order) and prints where each stands. A cached VV needs nothing. --wait then\n"
       "  waits until all are in the cache, with a progress bar on a terminal, and puts them\n"
       "  before archive writes; --timeout gives up after SECONDS (exit 1). Opening an evicted\n"
       "  VV through its vv/NAME export stages it too, without this command.",
       cmd_stage},
      {"status", "what vvmd is doing: drives, mounts, queues, cache",
       "vvctl [--conf PATH] status [--json]\n"
       "  vvmd's uptime, mounts since it started and VVs open through NBD; the cache's use\n"
       "  and watermarks; each drive (its mover, media type, the VSN vvmd last mounted there,\n"
       "  its mounts and the copy running now, with its progress); and the queues: archive\n"
       "  writes by class and media type, stages by VSN (files, bytes, the oldest request's\n"
       "  age, whether a client waits). --json prints all of it as one object.",
       cmd_status},
      {"rm", "remove a virtual volume",
       "vvctl [--conf PATH] rm NAME [--force]\n"
       "  Removes the VV's record and its cache file and says what it removed. Refused while\n"
       "  the VV has copies on tape (the message lists them) unless --force, which leaves the\n"
       "  tape files in place. Only its owner, root and vvmd's user may.",
       cmd_rm},
      {"evict", "drop an archived virtual volume from the disk cache now",
       "vvctl [--conf PATH] evict NAME\n"
       "  Removes the VV's cache file now, whatever the cache's watermarks, and prints\n"
       "  \"NAME: evicted (N bytes freed)\", or \"NAME: already evicted\" (exit 0, nothing\n"
       "  changed). Its copies on tape stay; opening it later stages it back. Only an archived\n"
       "  VV can be evicted: a hot or finished one is refused, naming its state, and one that\n"
       "  is open or being staged is refused, naming who has it open (exit 1). Only its owner,\n"
       "  root and vvmd's user may.",
       cmd_evict},
      {"vsn add", "add a tape volume (VSN) to the catalogue",
       "vvctl [--conf PATH] vsn add VSN --media M [--class C]\n"
       "  Adds tape volume VSN (1 to 6 uppercase letters or digits) of media type M to vvmd's\n"
       "  catalogue, for class C's copies (C must list M), or for any class that lists M when\n"
       "  --class is not given. With an emulated library ([library] kind = emulated) vvmd\n"
       "  creates the tape image LIBRARY/VSN.tap with M's capacity and writes its VOL label; an\n"
       "  image already there is registered if its VOL label names VSN and M (its next file\n"
       "  found on it), refused otherwise, saying what it holds. With a real library (kind =\n"
       "  mtx) only the record is made: label the tape on a drive first with\n"
       "  'vvtape label /dev/nstN --vsn VSN --media M'. Only root and vvmd's user may add.\n"
       "  Refused (exit 1), naming why: a bad VSN, an unknown media type or class, a class\n"
       "  that does not list M, a VSN already in the catalogue.",
       cmd_vsn_add},
      {"vsn ls", "list tape volumes (VSNs)",
       "vvctl [--conf PATH] vsn ls [--json] [--page-size N]\n"
       "  The VSNs in name order, one a line (VSN MEDIA CLASS STATE LOCATION FILES USED\n"
       "  CAPACITY ERRORS): state blank, hot, full or retired; FILES the tape files written,\n"
       "  USED the bytes of VV data on it. --json prints an array of objects with every field\n"
       "  of the record (name, media, class, state, location, next_file, bytes_used, capacity,\n"
       "  errors, last_mount), sizes in bytes. vvmd sends the list in pages of N VSNs (default\n"
       "  and most: 1000), which ls follows to the end.",
       cmd_vsn_ls},
  };
  return kCommands;
}

void print_help() {
  fmt::print(
      "Usage: vvctl [--conf PATH] COMMAND [OPTIONS]\n"
      "Administer vvm: create, list, finish, evict and remove virtual volumes, add and list tape\n"
      "volumes, talk to vvmd and the movers, check vvm.conf and pack tables, list packs and who\n"
      "holds them.\n\n"
      "Options:\n"
      "  -c, --conf PATH  vvm.conf to read (default: $VVM_CONF, else /etc/vvm/vvm.conf)\n"
      "  -h, --help       print this help and exit\n"
      "  --version        print the version and exit\n\n"
      "Commands:\n");
  for (const auto& c : commands()) fmt::print("  {:<12} {}\n", c.name, c.summary);
  fmt::print(
      "\n'vvctl help COMMAND' or 'vvctl COMMAND --help' describes one command.\n"
      "Exit codes: 0 success, 1 the operation failed (vvmd is down, refused or answered with an\n"
      "error), 2 a usage or configuration error.\n");
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
  Args command_args(rest.begin() + static_cast<long>(best_words), rest.end());
  if (cli::wants_help(command_args)) {
    fmt::print("Usage: {}\n", best->usage);
    return kOk;
  }
  return best->run(g, command_args);
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
