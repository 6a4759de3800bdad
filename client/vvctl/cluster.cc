// vvctl/cluster.cc: `vvctl cluster import`, `vvctl cluster nodes` and `vvctl cluster map`: the
// cluster's records in etcd (cluster/records.h), reached through vvm.conf's [cluster] section.
// None needs vvmd or a node to run; import --replace goes through the reconfiguration barrier
// (vvctl/reconfig.h) when nodes are there.
#include "vvctl/cluster.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "cluster/etcd_client.h"
#include "cluster/membership.h"
#include "cluster/reconfig.h"
#include "cluster/records.h"
#include "pack/packtab.h"
#include "vvctl/printing.h"
#include "vvctl/reconfig.h"

namespace vvm::vvctl {

using cluster::DiskRef;
using cluster::EtcdClient;
using cluster::NodeRecord;
using cluster::PackMapping;

std::unique_ptr<EtcdClient> connect_etcd(const Globals& g, std::string_view command,
                                         std::string* prefix, int* rc) {
  auto config = read_config(g);
  if (!config.ok()) {
    *rc = kUsage;
    return nullptr;
  }
  auto options = cluster::etcd_options(*config);
  if (!options.ok()) {
    print_failure(command, options.status());
    *rc = kUsage;
    return nullptr;
  }
  auto client = EtcdClient::create(*options);
  if (!client.ok()) {
    print_failure(command, client.status());
    *rc = kUsage;
    return nullptr;
  }
  *prefix = config->cluster->prefix;
  return std::move(*client);
}

std::string disk_text(const DiskRef& d) { return d.node + ":" + d.disk; }

std::string pool_text(const PackMapping& m) {
  std::string out;
  for (const DiskRef& d : m.pool) out += (out.empty() ? "" : ",") + disk_text(d);
  return out.empty() ? "-" : out;
}

namespace {

// Each key that did not decode, on stderr; the exit code a listing with them gets.
int report_problems(std::string_view command, const std::vector<Status>& problems) {
  for (const auto& p : problems)
    fmt::print(stderr, "vvctl {}: {} (skipped)\n", command, p.message());
  return problems.empty() ? kOk : kFailed;
}

// "uid 1000 on n1 since 2026-12-07 13:00:00", or "-" for a pack nobody holds exclusively.
std::string holder_text(const cluster::ClusterHold* hold) {
  if (hold == nullptr) return "-";
  return fmt::format("{} on {} since {}", hold->client, hold->node, format_time(hold->started));
}

// The disk of `node` that holds `backing`: `disk` when given, else the node's disk whose path is
// the backing's, as the node registered it.
Result<std::string> disk_for(const std::string& node, const std::string& disk,
                             const PackEntry& pack,
                             const std::map<std::string, NodeRecord>& nodes) {
  if (!disk.empty()) return disk;
  auto it = nodes.find(node);
  if (it == nodes.end()) {
    return Status::NotFound(fmt::format(
        "pack '{}': node {} is not registered in etcd, so its disk holding {} cannot be looked "
        "up (give --disk NAME)",
        pack.name, node, pack.backing));
  }
  std::vector<std::string> have;
  for (const auto& [name, path] : it->second.disks) {
    if (path == pack.backing) return name;
    have.push_back(name + "=" + path);
  }
  std::string list;
  for (const auto& h : have) list += (list.empty() ? "" : ", ") + h;
  return Status::NotFound(
      fmt::format("pack '{}': backing {} is none of node {}'s disks ({}); "
                  "give --disk NAME",
                  pack.name, pack.backing, node, list.empty() ? "it has none" : list));
}

}  // namespace

int cmd_cluster_import(const Globals& g, const Args& args) {
  constexpr std::string_view kCommand = "cluster import";
  std::string packtab, primary, secondary, disk, pool_list;
  double timeout_s = 10;
  bool json = false;
  po::options_description options;
  options.add_options()("primary", po::value(&primary))("secondary", po::value(&secondary))(
      "disk", po::value(&disk))("pool", po::value(&pool_list))("replace", po::bool_switch())(
      "timeout", po::value(&timeout_s))("json", po::bool_switch(&json));
  po::variables_map vm;
  if (!parse_with_positional(kCommand, args, "packtab", &packtab, options, &vm)) return kUsage;
  if (packtab.empty()) return usage_error(kCommand, "a PACKTAB is required");
  if (primary.empty()) return usage_error(kCommand, "--primary NODE is required");
  for (const auto& [what, name] :
       {std::pair{"--primary", primary}, {"--secondary", secondary}, {"--disk", disk}}) {
    if (name.empty()) continue;
    if (std::string why = pack_name_problem(name); !why.empty()) {
      return usage_error(kCommand, fmt::format("{} '{}': {}", what, name, why));
    }
  }
  if (secondary == primary) {
    return usage_error(kCommand, "--secondary must be another node than --primary");
  }
  // Each pool entry's disk: its own, else --disk, else the node's disk holding the backing.
  std::vector<DiskRef> pool;
  if (vm.count("pool") && !parse_disk_list(kCommand, "--pool", pool_list, &pool)) return kUsage;
  const bool replace = vm["replace"].as<bool>();
  if (!(timeout_s > 0 && timeout_s <= 3600)) {
    return usage_error(
        kCommand, fmt::format("--timeout {}: give seconds, more than 0, at most 3600", timeout_s));
  }
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));

  auto table = load_packtab(packtab);
  if (!table.ok()) {
    fmt::print(stderr, "vvctl: {}\n", table.status().message());
    return kUsage;
  }
  std::string prefix;
  int rc = kOk;
  auto etcd = connect_etcd(g, kCommand, &prefix, &rc);
  if (!etcd) return rc;

  std::map<std::string, NodeRecord> nodes;
  if (disk.empty() || !pool.empty()) {
    auto listed = cluster::list_nodes(*etcd, prefix);
    if (!listed.ok()) {
      print_failure(kCommand, listed.status());
      return kFailed;
    }
    for (auto& item : listed->items) nodes[item.record.name] = std::move(item.record);
  }
  // A drained node (vvctl cluster drain) takes nothing new.
  auto drained = cluster::list_drained(*etcd, prefix);
  if (!drained.ok()) {
    print_failure(kCommand, drained.status());
    return kFailed;
  }
  for (const auto& item : drained->items) {
    const bool in_pool = std::any_of(pool.begin(), pool.end(),
                                     [&](const DiskRef& d) { return d.node == item.record.node; });
    if (item.record.node == primary || item.record.node == secondary || in_pool) {
      print_failure(kCommand, Status::Busy(fmt::format(
                                  "node {} is drained (vvctl cluster undrain {}); nothing imported",
                                  item.record.node, item.record.node)));
      return kFailed;
    }
  }
  auto existing = cluster::list_packs(*etcd, prefix);
  if (!existing.ok()) {
    print_failure(kCommand, existing.status());
    return kFailed;
  }
  std::map<std::string, cluster::Listing<PackMapping>::Item> old;
  for (auto& item : existing->items) old[item.record.name] = std::move(item);
  // A key that does not decode is there all the same: import must not pass over it silently.
  std::map<std::string, int64_t> undecodable;  // pack name -> mod_revision
  if (!existing->problems.empty()) {
    auto raw = etcd->range_prefix(cluster::pack_prefix(prefix));
    if (!raw.ok()) {
      print_failure(kCommand, raw.status());
      return kFailed;
    }
    for (const auto& kv : raw->kvs) {
      std::string name = kv.key.substr(cluster::pack_prefix(prefix).size());
      if (old.count(name) == 0) undecodable[name] = kv.mod_revision;
    }
  }

  // New packs (and keys that held garbage, which no node serves) are simply written; a mapping
  // that nodes may be serving is replaced through the reconfiguration barrier, as pack move
  // does, so that no request is served under the old mapping once the new one is there.
  std::vector<PackMapping> mappings;
  std::vector<cluster::Compare> guards;
  std::vector<cluster::Change> changes;
  std::vector<std::string> refused;
  size_t replaced = 0;
  for (const auto& p : table->packs) {
    PackMapping m;
    m.name = p.name;
    auto primary_disk = disk_for(primary, disk, p, nodes);
    if (!primary_disk.ok()) {
      print_failure(kCommand, primary_disk.status());
      return kFailed;
    }
    m.primary = {primary, *primary_disk};
    if (!secondary.empty()) {
      auto secondary_disk = disk_for(secondary, disk, p, nodes);
      if (!secondary_disk.ok()) {
        print_failure(kCommand, secondary_disk.status());
        return kFailed;
      }
      m.secondary = DiskRef{secondary, *secondary_disk};
    }
    for (const DiskRef& entry : pool) {
      auto pool_disk = disk_for(entry.node, entry.disk.empty() ? disk : entry.disk, p, nodes);
      if (!pool_disk.ok()) {
        print_failure(kCommand, pool_disk.status());
        return kFailed;
      }
      // A registered node must list the disk; one not registered yet is taken at its word, as
      // the primary with --disk is (mappings may be seeded before the nodes start).
      if (auto n = nodes.find(entry.node); n != nodes.end() && !n->second.disks.count(*pool_disk)) {
        std::string have;
        for (const auto& [name, path] : n->second.disks) have += (have.empty() ? "" : ", ") + name;
        print_failure(
            kCommand,
            Status::NotFound(fmt::format(
                "pack '{}': --pool entry {}:{}: node {} has no disk '{}' (its disks: {})", p.name,
                entry.node, *pool_disk, entry.node, *pool_disk, have.empty() ? "none" : have)));
        return kFailed;
      }
      m.pool.push_back({entry.node, *pool_disk});
    }
    if (Status ok = cluster::check_pool(m); !ok.ok()) {
      print_failure(kCommand, ok);
      return kFailed;
    }
    m.offset = p.offset;
    m.size = p.size;
    m.mode = p.mode;
    m.owner = p.owner;
    m.group = p.group;
    m.perms = p.perms;
    m.epoch = 1;
    const std::string key = cluster::pack_key(prefix, p.name);
    if (auto it = old.find(p.name); it != old.end()) {
      if (!replace) {
        refused.push_back(fmt::format("pack '{}' is already mapped ({}, {} epoch {})", p.name, key,
                                      disk_text(it->second.record.primary),
                                      it->second.record.epoch));
        continue;
      }
      m.epoch = it->second.record.epoch + 1;  // a change of the mapping
      changes.push_back({std::move(m), it->second.mod_revision});
      ++replaced;
      continue;
    } else if (auto bad = undecodable.find(p.name); bad != undecodable.end()) {
      if (!replace) {
        refused.push_back(
            fmt::format("pack '{}': {} holds a record that does not decode", p.name, key));
        continue;
      }
      guards.push_back(cluster::Compare::unchanged(key, bad->second));
      ++replaced;
    } else {
      guards.push_back(cluster::Compare::absent(key));
    }
    mappings.push_back(std::move(m));
  }
  if (!refused.empty()) {
    for (const auto& r : refused) fmt::print(stderr, "vvctl {}: {}\n", kCommand, r);
    fmt::print(stderr,
               "vvctl {}: nothing imported; give --replace to overwrite the mappings above\n",
               kCommand);
    return kFailed;
  }

  // etcd takes at most 128 operations a transaction: a large table goes in several, each one
  // refused whole if another writer changed one of its packs since they were read. The
  // replacements go first, so that a node that does not acknowledge leaves everything as it was.
  constexpr size_t kPerTxn = 100;
  size_t done = 0;
  std::vector<cluster::ReconfigReport> reports;
  for (size_t start = 0; start < changes.size(); start += kPerTxn) {
    std::vector<cluster::Change> some(
        changes.begin() + static_cast<ptrdiff_t>(start),
        changes.begin() + static_cast<ptrdiff_t>(std::min(changes.size(), start + kPerTxn)));
    auto report = run_barrier(kCommand, *etcd, prefix, timeout, some);
    if (!report) {
      if (done > 0) {
        fmt::print(stderr, "vvctl {}: the first {} packs were replaced before that\n", kCommand,
                   done);
      }
      return kFailed;
    }
    reports.push_back(std::move(*report));
    done += some.size();
  }
  for (size_t start = 0; start < mappings.size(); start += kPerTxn) {
    cluster::Txn txn;
    for (size_t i = start; i < std::min(mappings.size(), start + kPerTxn); ++i) {
      txn.compares.push_back(guards[i]);
      txn.success.push_back(cluster::TxnOp::put(cluster::pack_key(prefix, mappings[i].name),
                                                cluster::encode_pack(mappings[i])));
    }
    auto result = etcd->txn(txn);
    if (!result.ok() || !result->succeeded) {
      print_failure(kCommand, result.ok()
                                  ? Status::Busy("another writer changed these packs' mappings "
                                                 "while they were imported: run it again")
                                  : result.status());
      if (done > 0) {
        fmt::print(stderr, "vvctl {}: the first {} packs were imported before that\n", kCommand,
                   done);
      }
      return kFailed;
    }
    done += txn.success.size();
  }

  // What was written: the replaced mappings (they went first), then the new ones.
  std::vector<PackMapping> written;
  for (const auto& c : changes) written.push_back(c.mapping);
  written.insert(written.end(), mappings.begin(), mappings.end());
  if (json) {
    nlohmann::json out;
    out["packtab"] = table->path;
    out["imported"] = done;
    out["replaced"] = replaced;
    out["packs"] = nlohmann::json::array();
    for (const auto& m : written) out["packs"].push_back(cluster::pack_json(m));
    std::set<std::string> acked;
    out["reconfigurations"] = nlohmann::json::array();
    for (const auto& r : reports) {
      acked.insert(r.acked.begin(), r.acked.end());
      out["reconfigurations"].push_back(reconfig_json(r));
    }
    out["acked"] = acked;
    fmt::print("{}\n", out.dump());
    return kOk;
  }
  print_mappings(written);
  for (const auto& r : reports) print_committed(r);
  std::string pool_nodes;
  for (const DiskRef& d : pool) pool_nodes += (pool_nodes.empty() ? "" : ", ") + d.node;
  fmt::print("{}: imported {} pack{} ({} replaced): primary {}{}{}\n", table->path, done,
             done == 1 ? "" : "s", replaced, primary,
             secondary.empty() ? std::string() : ", secondary " + secondary,
             pool.empty() ? std::string() : ", pool " + pool_nodes);
  return kOk;
}

int cmd_cluster_nodes(const Globals& g, const Args& args) {
  constexpr std::string_view kCommand = "cluster nodes";
  bool json = false;
  if (!parse_json_only(kCommand, args, &json)) return kUsage;
  std::string prefix;
  int rc = kOk;
  auto etcd = connect_etcd(g, kCommand, &prefix, &rc);
  if (!etcd) return rc;
  auto listed = cluster::list_nodes(*etcd, prefix);
  if (!listed.ok()) {
    print_failure(kCommand, listed.status());
    return kFailed;
  }
  // The nodes in maintenance (PREFIX/drained/NODE, vvctl cluster drain): still members, but no
  // pack is mapped to them until they are undrained.
  auto drained = cluster::list_drained(*etcd, prefix);
  if (!drained.ok()) {
    print_failure(kCommand, drained.status());
    return kFailed;
  }
  // The mappings name the nodes the cluster counts on: one named there (or drained) without a
  // membership key is down (killed, stopped past its lease, cut off), and an administrator needs
  // to see it. A mapping that does not decode is cluster map's to report, not this command's.
  auto packs = cluster::list_packs(*etcd, prefix);
  if (!packs.ok()) {
    print_failure(kCommand, packs.status());
    return kFailed;
  }

  // Every node, by name: its membership (nullptr for a node that is down), its drain mark, and
  // the packs whose mappings name it.
  struct Row {
    const cluster::Listing<NodeRecord>::Item* member = nullptr;
    int64_t lease_left = -1;  // seconds; -1: expired, the key about to go
    const cluster::DrainMark* drain = nullptr;
    std::set<std::string> packs;
  };
  std::map<std::string, Row> rows;
  for (const auto& item : listed->items) {
    Row& row = rows[item.record.name];
    row.member = &item;
    auto ttl =
        item.lease == 0 ? Result<int64_t>(int64_t{-1}) : etcd->lease_time_to_live(item.lease);
    row.lease_left = ttl.ok() ? *ttl : -1;
  }
  for (const auto& item : drained->items) rows[item.record.node].drain = &item.record;
  for (const auto& item : packs->items) {
    const PackMapping& p = item.record;
    rows[p.primary.node].packs.insert(p.name);
    if (p.secondary) rows[p.secondary->node].packs.insert(p.name);
    for (const DiskRef& d : p.pool) rows[d.node].packs.insert(p.name);
  }

  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [name, row] : rows) {
      nlohmann::json j;
      if (row.member != nullptr) {
        j = cluster::node_json(row.member->record);
        j["lease"] = fmt::format("{:x}", row.member->lease);
        j["lease_ttl_left"] = row.lease_left;
      } else {
        j["name"] = name;
      }
      j["live"] = row.member != nullptr;
      j["drained"] = row.drain != nullptr;
      if (row.drain != nullptr) j["drained_since"] = row.drain->since;
      j["packs"] = row.packs;
      out.push_back(std::move(j));
    }
    fmt::print("{}\n", out.dump());
  } else {
    std::vector<std::array<std::string, 7>> table = {
        {"NODE", "STATE", "ADDRESS", "DISKS", "LEASE LEFT", "STARTED", "DRAINED"}};
    for (const auto& [name, row] : rows) {
      const std::string drain =
          row.drain != nullptr ? "since " + format_time(row.drain->since) : "-";
      if (row.member == nullptr) {
        table.push_back({name, "DOWN", "-", "-", "-", "-", drain});
        continue;
      }
      const NodeRecord& n = row.member->record;
      std::string disks;
      for (const auto& [disk, path] : n.disks)
        disks += (disks.empty() ? "" : ",") + disk + "=" + path;
      table.push_back({n.name, "live", n.address, disks.empty() ? "-" : disks,
                       row.lease_left < 0 ? "expired" : fmt::format("{}s", row.lease_left),
                       format_time(n.started), drain});
    }
    print_table(table);
  }
  std::vector<Status> problems = listed->problems;
  problems.insert(problems.end(), drained->problems.begin(), drained->problems.end());
  return report_problems(kCommand, problems);
}

int cmd_cluster_map(const Globals& g, const Args& args) {
  constexpr std::string_view kCommand = "cluster map";
  bool json = false;
  if (!parse_json_only(kCommand, args, &json)) return kUsage;
  std::string prefix;
  int rc = kOk;
  auto etcd = connect_etcd(g, kCommand, &prefix, &rc);
  if (!etcd) return rc;
  auto listed = cluster::list_packs(*etcd, prefix);
  if (!listed.ok()) {
    print_failure(kCommand, listed.status());
    return kFailed;
  }
  // The paths marked down (cluster/records.h): a node's path to a pack's disk is up unless its
  // key says otherwise.
  auto paths = cluster::list_paths(*etcd, prefix);
  if (!paths.ok()) {
    print_failure(kCommand, paths.status());
    return kFailed;
  }
  auto path_down = [&](const std::string& pack,
                       const std::string& node) -> const cluster::PathRecord* {
    for (const auto& item : paths->items) {
      if (item.record.pack == pack && item.record.node == node) return &item.record;
    }
    return nullptr;
  };
  // Who holds each pack exclusively, cluster-wide (PREFIX/hold/PACK, under the holder's node's
  // lease): the pack is free unless its key is there.
  auto holds = cluster::list_holds(*etcd, prefix);
  if (!holds.ok()) {
    print_failure(kCommand, holds.status());
    return kFailed;
  }
  auto holder_of = [&](const std::string& pack) -> const cluster::ClusterHold* {
    for (const auto& item : holds->items) {
      if (item.record.pack == pack) return &item.record;
    }
    return nullptr;
  };
  // Its readers and shared writers, node by node (PREFIX/users/PACK/KIND/NODE, under each node's
  // lease): holders too, which an exclusive hold must wait for.
  auto users = cluster::list_users(*etcd, prefix);
  if (!users.ok()) {
    print_failure(kCommand, users.status());
    return kFailed;
  }
  auto users_of = [&](const std::string& pack) {
    std::vector<const cluster::PackUsers*> found;
    for (const auto& item : users->items) {
      if (item.record.pack == pack) found.push_back(&item.record);
    }
    return found;
  };
  // The HOLDERS column: the exclusive holder, else "uid 0 on n3 (read), ...", else "-".
  auto holders_text = [&](const std::string& pack) {
    if (const cluster::ClusterHold* hold = holder_of(pack)) return holder_text(hold);
    std::string text;
    for (const cluster::PackUsers* u : users_of(pack)) {
      for (const auto& c : u->clients) {
        text += fmt::format("{}{} on {} ({})", text.empty() ? "" : ", ", c.client, u->node,
                            hold_kind_name(u->kind));
      }
    }
    return text.empty() ? std::string("-") : text;
  };
  auto nodes_of = [](const PackMapping& p) {
    std::vector<std::string> nodes = {p.primary.node};
    if (p.secondary) nodes.push_back(p.secondary->node);
    for (const DiskRef& d : p.pool) nodes.push_back(d.node);
    return nodes;
  };
  if (json) {
    // The records as etcd holds them, one object a pack, with the state of each node's path.
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : listed->items) {
      auto j = cluster::pack_json(item.record);
      j["paths"] = nlohmann::json::object();
      for (const auto& node : nodes_of(item.record)) {
        const cluster::PathRecord* down = path_down(item.record.name, node);
        nlohmann::json path = {{"up", down == nullptr}};
        if (down != nullptr) {
          path["reason"] = down->reason;
          path["since"] = down->since;
        }
        j["paths"][node] = std::move(path);
      }
      const cluster::ClusterHold* hold = holder_of(item.record.name);
      j["holder"] = hold == nullptr ? nlohmann::json(nullptr)
                                    : nlohmann::json{{"node", hold->node},
                                                     {"client", hold->client},
                                                     {"since", hold->started}};
      j["users"] = nlohmann::json::array();
      for (const cluster::PackUsers* u : users_of(item.record.name)) {
        for (const auto& c : u->clients) {
          j["users"].push_back({{"node", u->node},
                                {"kind", hold_kind_name(u->kind)},
                                {"client", c.client},
                                {"since", c.since}});
        }
      }
      out.push_back(std::move(j));
    }
    fmt::print("{}\n", out.dump());
  } else {
    std::vector<std::array<std::string, 12>> rows = {{"PACK", "PRIMARY", "SECONDARY", "POOL",
                                                      "OFFSET", "SIZE", "MODE", "OWNER:GROUP",
                                                      "PERMS", "EPOCH", "PATHS", "HOLDERS"}};
    for (const auto& item : listed->items) {
      const PackMapping& p = item.record;
      std::string state;
      for (const auto& node : nodes_of(p)) {
        state += fmt::format("{}{} {}", state.empty() ? "" : ", ", node,
                             path_down(p.name, node) != nullptr ? "down" : "up");
      }
      rows.push_back(
          {p.name, disk_text(p.primary), p.secondary ? disk_text(*p.secondary) : "-", pool_text(p),
           human_size(p.offset), human_size(p.size), std::string(pack_mode_name(p.mode)),
           user_name(p.owner) + ":" + group_name(p.group), fmt::format("{:04o}", p.perms),
           std::to_string(p.epoch), state, holders_text(p.name)});
    }
    print_table(rows);
  }
  for (const auto* problems : {&paths->problems, &holds->problems, &users->problems}) {
    for (const auto& p : *problems)
      fmt::print(stderr, "vvctl {}: {} (skipped)\n", kCommand, p.message());
  }
  if (!paths->problems.empty() || !holds->problems.empty() || !users->problems.empty()) {
    return kFailed;
  }
  return report_problems(kCommand, listed->problems);
}

}  // namespace vvm::vvctl
