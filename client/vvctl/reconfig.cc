// vvctl/reconfig.cc: the commands that change pack mappings while nodes serve them, each through
// the reconfiguration barrier (cluster/reconfig.h): pack move, pack set-secondary, pack set-pool,
// pack chmod, pack chown, cluster drain and cluster undrain. They need etcd, not vvmd; in a site
// without a [cluster] section they are refused, naming the file (packs are changed in the packtab
// there).
#include "vvctl/reconfig.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "cluster/reconfig.h"
#include "cluster/records.h"
#include "pack/packtab.h"
#include "vvctl/cluster.h"
#include "vvctl/printing.h"

namespace vvm::vvctl {

using cluster::Change;
using cluster::ClusterView;

namespace {

struct Parsed {
  std::vector<std::string> words;  // the positional arguments
  bool json = false;
  std::chrono::milliseconds timeout{10'000};
  po::variables_map vm;
};

// Parses the positional arguments `names` (all required), then `optional` if given, and --json,
// --timeout SECONDS, and `extra`.
bool parse(std::string_view command, const Args& args, const std::vector<const char*>& names,
           po::options_description extra, Parsed* out, const char* optional = nullptr,
           std::string* optional_value = nullptr) {
  std::vector<std::string> values(names.size());
  double seconds = 10;
  extra.add_options()("json", po::bool_switch(&out->json))("timeout", po::value(&seconds));
  po::positional_options_description positional;
  for (size_t i = 0; i < names.size(); ++i) {
    extra.add_options()(names[i], po::value(&values[i]));
    positional.add(names[i], 1);
  }
  if (optional != nullptr) {
    extra.add_options()(optional, po::value(optional_value));
    positional.add(optional, 1);
  }
  if (!parse_options(command, args, extra, positional, &out->vm)) return false;
  if (!(seconds > 0 && seconds <= 3600)) {
    usage_error(command,
                fmt::format("--timeout {}: give seconds, more than 0, at most 3600", seconds));
    return false;
  }
  out->timeout = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  for (size_t i = 0; i < names.size(); ++i) {
    if (values[i].empty()) {
      usage_error(command, fmt::format("{} is required", names[i]));
      return false;
    }
    out->words.push_back(values[i]);
  }
  return true;
}

// A name given on the command line (pack, node, disk), checked as the records check them.
bool check_name(std::string_view command, std::string_view what, const std::string& name) {
  if (std::string why = pack_name_problem(name); !why.empty()) {
    usage_error(command, fmt::format("{} '{}': {}", what, name, why));
    return false;
  }
  return true;
}

std::string who() { return fmt::format("vvctl on {}, pid {}", local_host_name(), ::getpid()); }

}  // namespace

bool parse_disk_list(std::string_view command, std::string_view what, const std::string& text,
                     std::vector<cluster::DiskRef>* out) {
  size_t start = 0;
  for (int n = 1;; ++n) {
    const size_t comma = text.find(',', start);
    const std::string entry =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (entry.empty()) {
      usage_error(command, fmt::format("{} '{}': entry {} is empty (give NODE[:DISK], separated "
                                       "by commas)",
                                       what, text, n));
      return false;
    }
    cluster::DiskRef d{entry, ""};
    if (auto colon = entry.find(':'); colon != std::string::npos) {
      d.node = entry.substr(0, colon);
      d.disk = entry.substr(colon + 1);
      if (!check_name(command, fmt::format("{} entry {}: disk", what, n), d.disk)) return false;
    }
    if (!check_name(command, fmt::format("{} entry {}: node", what, n), d.node)) return false;
    out->push_back(std::move(d));
    if (comma == std::string::npos) return true;
    start = comma + 1;
  }
}

std::optional<cluster::ReconfigReport> run_barrier(std::string_view command,
                                                   cluster::EtcdClient& etcd,
                                                   const std::string& prefix,
                                                   std::chrono::milliseconds timeout,
                                                   const std::vector<Change>& changes,
                                                   const std::vector<cluster::TxnOp>& also) {
  cluster::ReconfigOptions options;
  options.prefix = prefix;
  options.timeout = timeout;
  options.by = who();
  options.progress = [&](const std::string& what) {
    fmt::print(stderr, "vvctl {}: {}\n", command, what);
  };
  auto done = cluster::reconfigure(etcd, options, changes, also);
  if (!done.ok()) {
    print_failure(command, done.status());
    return std::nullopt;
  }
  return std::move(*done);
}

nlohmann::json reconfig_json(const cluster::ReconfigReport& done) {
  nlohmann::json out;
  out["id"] = done.id;
  out["acked"] = done.acked;
  out["barrier_us"] = done.barrier.count();
  out["total_us"] = done.total.count();
  out["revision"] = done.revision;
  return out;
}

void print_mappings(const std::vector<cluster::PackMapping>& mappings) {
  std::vector<std::array<std::string, 7>> rows = {
      {"PACK", "PRIMARY", "SECONDARY", "POOL", "OWNER:GROUP", "PERMS", "EPOCH"}};
  for (const auto& m : mappings) {
    rows.push_back({m.name, disk_text(m.primary), m.secondary ? disk_text(*m.secondary) : "-",
                    pool_text(m), user_name(m.owner) + ":" + group_name(m.group),
                    fmt::format("{:04o}", m.perms), std::to_string(m.epoch)});
  }
  print_table(rows);
}

void print_committed(const cluster::ReconfigReport& done) {
  std::string nodes;
  for (const auto& n : done.acked) nodes += (nodes.empty() ? "" : ", ") + n;
  fmt::print("committed: {} node{} acknowledged ({}); requests held {:.1f} ms\n", done.acked.size(),
             done.acked.size() == 1 ? "" : "s", nodes.empty() ? "none live" : nodes,
             done.total.count() / 1000.0);
}

int run_reconfiguration(std::string_view command, cluster::EtcdClient& etcd,
                        const std::string& prefix, std::chrono::milliseconds timeout, bool json,
                        const std::vector<Change>& changes, const std::vector<cluster::TxnOp>& also,
                        const nlohmann::json& extra) {
  auto done = run_barrier(command, etcd, prefix, timeout, changes, also);
  if (!done) return kFailed;
  std::vector<cluster::PackMapping> mappings;
  for (const auto& c : changes) mappings.push_back(c.mapping);
  if (json) {
    nlohmann::json out = reconfig_json(*done);
    out["packs"] = nlohmann::json::array();
    for (const auto& m : mappings) out["packs"].push_back(pack_json(m));
    if (extra.is_object()) out.update(extra);
    fmt::print("{}\n", out.dump());
    return kOk;
  }
  print_mappings(mappings);
  print_committed(*done);
  return kOk;
}

namespace {

// Runs the barrier for the command's `changes` (with `also` in its commit) and prints the
// result; the exit code.
int run(std::string_view command, cluster::EtcdClient& etcd, const std::string& prefix,
        const Parsed& p, const std::vector<Change>& changes,
        const std::vector<cluster::TxnOp>& also = {}, const nlohmann::json& extra = {}) {
  return run_reconfiguration(command, etcd, prefix, p.timeout, p.json, changes, also, extra);
}

// etcd and the view of the cluster, or nullopt after printing why (exit code in `*rc`).
struct Session {
  std::unique_ptr<cluster::EtcdClient> etcd;
  std::string prefix;
  ClusterView view;
};
std::optional<Session> open_session(const Globals& g, std::string_view command, int* rc) {
  Session s;
  s.etcd = connect_etcd(g, command, &s.prefix, rc);
  if (!s.etcd) return std::nullopt;
  auto view = cluster::read_view(*s.etcd, s.prefix);
  if (!view.ok()) {
    print_failure(command, view.status());
    *rc = kFailed;
    return std::nullopt;
  }
  s.view = std::move(*view);
  return s;
}

// Plans one change and runs it.
int one_change(std::string_view command, Session& s, const Parsed& p,
               const Result<Change>& change) {
  if (!change.ok()) {
    print_failure(command, change.status());
    return kFailed;
  }
  return run(command, *s.etcd, s.prefix, p, {*change});
}

}  // namespace

int cmd_pack_move(const Globals& g, const Args& args) {
  constexpr std::string_view kCommand = "pack move";
  std::string primary, disk;
  po::options_description extra;
  extra.add_options()("primary", po::value(&primary))("disk", po::value(&disk));
  Parsed p;
  if (!parse(kCommand, args, {"pack"}, extra, &p)) return kUsage;
  if (primary.empty()) return usage_error(kCommand, "--primary NODE is required");
  if (!check_name(kCommand, "pack", p.words[0]) || !check_name(kCommand, "--primary", primary) ||
      (!disk.empty() && !check_name(kCommand, "--disk", disk))) {
    return kUsage;
  }
  int rc = kOk;
  auto s = open_session(g, kCommand, &rc);
  if (!s) return rc;
  return one_change(kCommand, *s, p, cluster::plan_move(s->view, p.words[0], primary, disk));
}

int cmd_pack_set_secondary(const Globals& g, const Args& args) {
  constexpr std::string_view kCommand = "pack set-secondary";
  bool none = false;
  std::string target;
  po::options_description extra;
  extra.add_options()("none", po::bool_switch(&none));
  Parsed p;
  if (!parse(kCommand, args, {"pack"}, extra, &p, "target", &target)) return kUsage;
  if (target.empty() && !none) {
    return usage_error(kCommand, "give NODE[:DISK], or --none to remove the secondary");
  }
  if (!target.empty() && none) return usage_error(kCommand, "give NODE[:DISK] or --none, not both");
  std::string node = target, disk;
  if (auto colon = target.find(':'); colon != std::string::npos) {
    node = target.substr(0, colon);
    disk = target.substr(colon + 1);
    if (!check_name(kCommand, "disk", disk)) return kUsage;
  }
  if (!check_name(kCommand, "pack", p.words[0]) || (!none && !check_name(kCommand, "node", node))) {
    return kUsage;
  }
  int rc = kOk;
  auto s = open_session(g, kCommand, &rc);
  if (!s) return rc;
  return one_change(kCommand, *s, p, cluster::plan_secondary(s->view, p.words[0], node, disk));
}

int cmd_pack_set_pool(const Globals& g, const Args& args) {
  constexpr std::string_view kCommand = "pack set-pool";
  bool none = false;
  std::string list;
  po::options_description extra;
  extra.add_options()("none", po::bool_switch(&none));
  Parsed p;
  if (!parse(kCommand, args, {"pack"}, extra, &p, "pool", &list)) return kUsage;
  if (list.empty() && !none) {
    return usage_error(kCommand, "give NODE[:DISK][,NODE[:DISK]...], or --none to remove the pool");
  }
  if (!list.empty() && none) {
    return usage_error(kCommand, "give NODE[:DISK][,...] or --none, not both");
  }
  if (!check_name(kCommand, "pack", p.words[0])) return kUsage;
  std::vector<cluster::DiskRef> pool;
  if (!none && !parse_disk_list(kCommand, "pool", list, &pool)) return kUsage;
  int rc = kOk;
  auto s = open_session(g, kCommand, &rc);
  if (!s) return rc;
  return one_change(kCommand, *s, p, cluster::plan_pool(s->view, p.words[0], std::move(pool)));
}

int cmd_pack_chmod(const Globals& g, const Args& args) {
  constexpr std::string_view kCommand = "pack chmod";
  Parsed p;
  if (!parse(kCommand, args, {"pack", "mode"}, {}, &p)) return kUsage;
  if (!check_name(kCommand, "pack", p.words[0])) return kUsage;
  auto perms = parse_perms(p.words[1]);
  if (!perms.ok()) return usage_error(kCommand, perms.status().message());
  int rc = kOk;
  auto s = open_session(g, kCommand, &rc);
  if (!s) return rc;
  return one_change(kCommand, *s, p, cluster::plan_chmod(s->view, p.words[0], *perms));
}

int cmd_pack_chown(const Globals& g, const Args& args) {
  constexpr std::string_view kCommand = "pack chown";
  Parsed p;
  if (!parse(kCommand, args, {"pack", "owner"}, {}, &p)) return kUsage;
  if (!check_name(kCommand, "pack", p.words[0])) return kUsage;
  const std::string& spec = p.words[1];
  const auto colon = spec.find(':');
  auto owner = resolve_user(spec.substr(0, colon));
  if (!owner.ok()) return usage_error(kCommand, owner.status().message());
  std::optional<gid_t> group;
  if (colon != std::string::npos) {
    auto gid = resolve_group(spec.substr(colon + 1));
    if (!gid.ok()) return usage_error(kCommand, gid.status().message());
    group = *gid;
  }
  int rc = kOk;
  auto s = open_session(g, kCommand, &rc);
  if (!s) return rc;
  return one_change(kCommand, *s, p, cluster::plan_chown(s->view, p.words[0], *owner, group));
}

namespace {

int undrain(std::string_view command, const Globals& g, const std::string& node, bool json) {
  std::string prefix;
  int rc = kOk;
  auto etcd = connect_etcd(g, command, &prefix, &rc);
  if (!etcd) return rc;
  // The mark as it was, for --json to say since when the node was drained; one that does not
  // decode goes all the same (undrain is how an operator gets rid of it).
  const std::string key = cluster::drained_key(prefix, node);
  auto read = etcd->range(key, "");
  if (!read.ok()) {
    print_failure(command, read.status());
    return kFailed;
  }
  std::optional<uint64_t> since;
  if (!read->kvs.empty()) {
    auto mark = cluster::decode_drain(key, read->kvs[0].value);
    if (mark.ok()) since = mark->since;
  }
  auto gone = etcd->erase(key);
  if (!gone.ok()) {
    print_failure(command, gone.status());
    return kFailed;
  }
  if (*gone == 0) {
    print_failure(command, Status::NotFound(fmt::format("node {} is not drained", node)));
    return kFailed;
  }
  if (json) {
    nlohmann::json out;
    out["undrained"] = node;
    out["drained_since"] = since ? nlohmann::json(*since) : nlohmann::json(nullptr);
    fmt::print("{}\n", out.dump());
    return kOk;
  }
  fmt::print("node {}: undrained: packs may be mapped to it again\n", node);
  return kOk;
}

}  // namespace

// Ending a drain is one transaction, with no barrier for --timeout to bound: said, not ignored.
constexpr std::string_view kUndrainTimeout =
    "--timeout bounds a reconfiguration's barrier; ending a drain runs none";

int cmd_cluster_drain(const Globals& g, const Args& args) {
  constexpr std::string_view kCommand = "cluster drain";
  bool undo = false;
  po::options_description extra;
  extra.add_options()("undo", po::bool_switch(&undo));
  Parsed p;
  if (!parse(kCommand, args, {"node"}, extra, &p)) return kUsage;
  const std::string& node = p.words[0];
  if (!check_name(kCommand, "node", node)) return kUsage;
  if (undo) {
    if (p.vm.count("timeout")) return usage_error(kCommand, kUndrainTimeout);
    return undrain(kCommand, g, node, p.json);
  }
  int rc = kOk;
  auto s = open_session(g, kCommand, &rc);
  if (!s) return rc;
  bool named = s->view.nodes.count(node) > 0;
  for (const auto& [name, item] : s->view.packs) {
    named |= item.record.primary.node == node ||
             (item.record.secondary && item.record.secondary->node == node) ||
             std::any_of(item.record.pool.begin(), item.record.pool.end(),
                         [&](const cluster::DiskRef& d) { return d.node == node; });
  }
  if (!named) {
    print_failure(kCommand, Status::NotFound(fmt::format(
                                "node {} is neither a live member nor named by a mapping", node)));
    return kFailed;
  }
  auto changes = cluster::plan_drain(s->view, node);
  if (!changes.ok()) {
    print_failure(kCommand, changes.status());
    return kFailed;
  }
  const cluster::DrainMark mark{node, static_cast<uint64_t>(std::time(nullptr))};
  const auto put =
      cluster::TxnOp::put(cluster::drained_key(s->prefix, node), cluster::encode_drain(mark));
  if (changes->empty()) {
    cluster::Txn txn;
    txn.success.push_back(put);
    auto done = s->etcd->txn(txn);
    if (!done.ok()) {
      print_failure(kCommand, done.status());
      return kFailed;
    }
    if (p.json) {
      // The same shape as a drain that moved packs: none moved, no barrier run.
      nlohmann::json out;
      out["packs"] = nlohmann::json::array();
      out["acked"] = nlohmann::json::array();
      out["drained"] = node;
      fmt::print("{}\n", out.dump());
    } else {
      fmt::print("node {}: drained (no mapping had it as a primary or in a pool)\n", node);
    }
    return kOk;
  }
  rc = run(kCommand, *s->etcd, s->prefix, p, *changes, {put}, {{"drained", node}});
  if (rc == kOk && !p.json) fmt::print("node {}: drained\n", node);
  return rc;
}

int cmd_cluster_undrain(const Globals& g, const Args& args) {
  constexpr std::string_view kCommand = "cluster undrain";
  Parsed p;
  if (!parse(kCommand, args, {"node"}, {}, &p)) return kUsage;
  if (!check_name(kCommand, "node", p.words[0])) return kUsage;
  if (p.vm.count("timeout")) return usage_error(kCommand, kUndrainTimeout);
  return undrain(kCommand, g, p.words[0], p.json);
}

}  // namespace vvm::vvctl
