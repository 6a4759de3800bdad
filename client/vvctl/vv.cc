// vvctl/vv.cc: vvctl's commands on virtual volumes, each one or a few requests to vvmd: create,
// show, ls (page after page), finish (and --wait for the copies on tape), stage (and --wait, with
// a progress bar), rm and evict.
#include "vvctl/vv.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/core.h>
#include <fmt/format.h>

#include "common/json.h"
#include "common/size.h"
#include "vvctl/printing.h"

namespace vvm::vvctl {

namespace {

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

}  // namespace

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
  auto client = connect_vvmd(g, "show", &config, &rc);
  if (!client) return rc;
  auto reply = call_vvmd(*client, *config, "show", rpc::VvShowRequest{name});
  if (!reply) return kFailed;
  const Vv& v = reply->vv;
  // The copies found bad, which are no longer among the VV's copies.
  auto marks = call_vvmd(*client, *config, "show", rpc::CopyListRequest{v.name, ""});
  if (!marks) return kFailed;
  // Each copy's media type (its tape's), the extra copies and the lacking ones, from vvmd.
  auto media = call_vvmd(*client, *config, "show", rpc::VvCopiesRequest{{{v.name}}});
  if (!media) return kFailed;
  const rpc::VvCopies* copies = media->vvs.empty() ? nullptr : &media->vvs.front();
  if (vm["json"].as<bool>()) {
    JsonWriter j;
    write_vv_json(j, v, copies, &marks->marks);
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
  auto labelled = [](const std::string& m) { return m.empty() ? "" : m + ": "; };
  for (size_t i = 0; i < v.copies.size(); ++i) {
    const VvCopy& c = v.copies[i];
    if (c.vsn.empty()) continue;
    const bool extra = is_extra(copies, static_cast<uint32_t>(i + 1));
    fmt::print("copy {}:    {}{} file {}{}\n", i + 1, labelled(copy_media(copies, c.vsn)), c.vsn,
               c.file, extra ? fmt::format(" (extra: not wanted by class {})", v.vv_class) : "");
  }
  if (copies != nullptr) {
    for (const rpc::LackingCopy& l : copies->lacking) {
      if (l.copy == 0) {
        fmt::print("lacking:   {}: not yet written (no free copy slot)\n", l.media);
      } else {
        fmt::print("copy {}:    {}: not yet written\n", l.copy, l.media);
      }
    }
  }
  for (const CopyMark& m : marks->marks) {
    if (m.state != CopyMarkState::kBad) continue;
    fmt::print("copy {}:    {}{} file {}: bad since {} ({}: {})\n", m.copy,
               labelled(copy_media(copies, m.vsn)), m.vsn, m.file, format_time(m.since), m.by,
               m.why);
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
    // Each copy's media type is its tape's, which vvmd knows: asked a page of VVs at a time.
    std::map<std::string, rpc::VvCopies> copies;
    for (size_t at = 0; at < vvs.size(); at += rpc::kMaxVvCopiesNames) {
      rpc::VvCopiesRequest ask;
      for (size_t i = at; i < std::min(vvs.size(), at + rpc::kMaxVvCopiesNames); ++i) {
        ask.vvs.push_back({vvs[i].name});
      }
      auto media = call_vvmd(*client, *config, "ls", ask);
      if (!media) return kFailed;
      for (auto& c : media->vvs) copies[c.name] = std::move(c);
    }
    JsonWriter j;
    j.begin_array();
    for (const auto& v : vvs) {
      auto c = copies.find(v.name);
      write_vv_json(j, v, c == copies.end() ? nullptr : &c->second);
    }
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
  fmt::print("removed {}: its record ({}, {}, owner {}) and its cache file", v.name,
             vv_state_name(v.state), format_size(v.size), v.owner);
  // vvm.conf names vvmd's cache folder only when it also named vvmd.
  if (!vvmd_named(g)) fmt::print(" {}/{}", config->cache_dir, v.name);
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

}  // namespace vvm::vvctl
