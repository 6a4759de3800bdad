// vvctl/status.cc: `vvctl status` (vvmd's drives, mounts, queues and cache), `vvctl ping` (a
// daemon's answer and round trip) and `vvctl conf check` (vvm.conf and the packtab it names).
#include "vvctl/status.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "common/json.h"
#include "proto/tls.h"
#include "vvctl/pack.h"
#include "vvctl/printing.h"

namespace vvm::vvctl {

int cmd_status(const Globals& g, const Args& args) {
  bool json = false;
  if (!parse_json_only("status", args, &json)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto client = connect_vvmd(g, "status", &config, &rc);
  if (!client) return rc;
  auto reply = call_vvmd(*client, *config, "status", rpc::StatusRequest{});
  if (!reply) return kFailed;
  const auto& st = *reply;
  // The drives' states: which are down, since when, by whom and why.
  auto states = call_vvmd(*client, *config, "status", rpc::DriveListRequest{});
  if (!states) return kFailed;
  std::map<std::string, rpc::DriveDetail> state;
  for (const auto& d : states->drives) state[d.name] = d;
  // The repacks running, with how far each has come.
  auto repack_list = call_vvmd(*client, *config, "status", rpc::RepackListRequest{});
  if (!repack_list) return kFailed;
  std::vector<rpc::RepackInfo> repacks;
  for (auto& r : repack_list->repacks) {
    if (r.state == "running") repacks.push_back(std::move(r));
  }
  // Each class's drive limits and the drives it holds now (no scan of the VVs).
  auto class_list = call_vvmd(*client, *config, "status", rpc::ClassListRequest{false});
  if (!class_list) return kFailed;
  if (json) {
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
      if (auto it = state.find(d.name); it != state.end()) {
        j.key("state");
        write_drive_json(j, it->second);
      }
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
    j.key("repacks").begin_array();
    for (const auto& r : repacks) write_repack_json(j, r);
    j.end_array();
    j.key("classes").begin_array();
    for (const auto& c : class_list->classes) {
      j.begin_object().key("class").value(c.name);
      j.key("read_max_drives").value(uint64_t{c.read_max_drives});
      j.key("write_max_drives").value(uint64_t{c.write_max_drives});
      j.key("reading").value(uint64_t{c.reading}).key("writing").value(uint64_t{c.writing});
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
    if (auto it = state.find(d.name); it != state.end() && !it->second.up) {
      now = fmt::format("DOWN since {} by {}: {}{}", format_time(it->second.since), it->second.by,
                        it->second.reason, d.copying.empty() ? "" : "; still " + now);
    }
    drives.push_back(
        {d.name, d.mover, d.media, d.vsn.empty() ? "-" : d.vsn, std::to_string(d.mounts), now});
  }
  print_table(drives);
  // Per class: the drives it holds for reading and writing, of its limits ("-": no limit).
  std::vector<std::array<std::string, 3>> classes = {{"CLASS", "READING", "WRITING"}};
  auto of = [](uint32_t held, uint32_t max) {
    return fmt::format("{} of {}", held, max == 0 ? std::string("-") : std::to_string(max));
  };
  for (const auto& c : class_list->classes) {
    classes.push_back(
        {c.name, of(c.reading, c.read_max_drives), of(c.writing, c.write_max_drives)});
  }
  if (classes.size() > 1) print_table(classes);
  for (const auto& r : repacks) fmt::print("{}: {}\n", r.vsn, repack_progress(r));
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
  if (target == "vvmd" && vvmd_named(g)) {
    auto where = vvmd_endpoint(g, Config{});
    if (!where.ok()) {
      fmt::print(stderr, "vvctl: {}\n", where.status().message());
      return kUsage;
    }
    endpoint = *where;
  } else if (target == "vvmd" || target.starts_with("mover:")) {
    auto config = read_config(g);
    if (!config.ok()) return kUsage;
    if (target == "vvmd") {
      auto where = vvmd_endpoint(g, *config);
      if (!where.ok()) {
        fmt::print(stderr, "vvctl: {}\n", where.status().message());
        return kUsage;
      }
      endpoint = *where;
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

  auto client = rpc::Client::connect(endpoint, timeout, g.tls);
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

int cmd_conf_check(const Globals& g, const Args& args) {
  std::string path;
  if (!parse_with_positional("conf check", args, "path", &path)) return kUsage;
  Globals use = g;
  if (!path.empty()) use.conf_path = path;
  auto config = read_config(use);
  if (!config.ok()) return kUsage;
  // The TLS files too, as vvmd and the movers will read them when they start.
  std::vector<std::string> warnings;
  if (Status s = rpc::check_tls_files(*config, &warnings); !s.ok()) {
    fmt::print(stderr, "vvctl: {}\n", s.message());
    return kUsage;
  }
  for (const auto& w : warnings) fmt::print(stderr, "vvctl: warning: {}\n", w);
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

}  // namespace vvm::vvctl
