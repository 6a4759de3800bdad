// vvctl/reconfig.h: vvctl's commands that change pack mappings while the nodes serve them,
// through the reconfiguration barrier (cluster/reconfig.h): pack move, pack set-secondary, pack
// set-pool, pack chmod, pack chown, cluster drain and cluster undrain.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/etcd_client.h"
#include "cluster/reconfig.h"
#include "vvctl/command.h"

namespace vvm::vvctl {

// Runs the barrier for `changes`, with `also` in its commit (cluster::reconfigure), printing its
// progress on stderr; its report, or nullopt after printing why it failed.
std::optional<cluster::ReconfigReport> run_barrier(std::string_view command,
                                                   cluster::EtcdClient& etcd,
                                                   const std::string& prefix,
                                                   std::chrono::milliseconds timeout,
                                                   const std::vector<cluster::Change>& changes,
                                                   const std::vector<cluster::TxnOp>& also = {});
// A barrier's report as --json gives it: id, acked, barrier_us, total_us, revision.
nlohmann::json reconfig_json(const cluster::ReconfigReport& done);
// The table of mappings the commands that change them print (PACK PRIMARY SECONDARY POOL
// OWNER:GROUP PERMS EPOCH), and the line that says a barrier committed ("committed: 3 nodes
// acknowledged (n1, n2, n3); requests held 4.2 ms").
void print_mappings(const std::vector<cluster::PackMapping>& mappings);
void print_committed(const cluster::ReconfigReport& done);
// Runs the barrier (run_barrier) and prints the new mappings and how long requests were held, or
// with `json` one object: reconfig_json's and packs, with the members of `extra` (an object)
// added; the exit code.
int run_reconfiguration(std::string_view command, cluster::EtcdClient& etcd,
                        const std::string& prefix, std::chrono::milliseconds timeout, bool json,
                        const std::vector<cluster::Change>& changes,
                        const std::vector<cluster::TxnOp>& also = {},
                        const nlohmann::json& extra = {});
// Parses a pool as the command line gives it, "NODE[:DISK][,NODE[:DISK]...]" (an entry's disk
// "" when not given), into `*out`; false after a usage error naming `what` (the option) and the
// entry.
bool parse_disk_list(std::string_view command, std::string_view what, const std::string& text,
                     std::vector<cluster::DiskRef>* out);

int cmd_pack_move(const Globals& g, const Args& args);
int cmd_pack_set_secondary(const Globals& g, const Args& args);
int cmd_pack_set_pool(const Globals& g, const Args& args);
int cmd_pack_chmod(const Globals& g, const Args& args);
int cmd_pack_chown(const Globals& g, const Args& args);
int cmd_cluster_drain(const Globals& g, const Args& args);
int cmd_cluster_undrain(const Globals& g, const Args& args);

}  // namespace vvm::vvctl
