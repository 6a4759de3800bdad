// vvctl/reconfig.h: vvctl's commands that change pack mappings while the nodes serve them,
// through the reconfiguration barrier (cluster/reconfig.h): pack move, pack set-secondary, pack
// set-pool, pack chmod, pack chown, cluster drain and cluster undrain.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/etcd_client.h"
#include "cluster/reconfig.h"
#include "vvctl/command.h"

namespace vvm::vvctl {

// Runs the barrier for `changes`, with `also` in its commit (cluster::reconfigure), and prints the
// new mappings and how long requests were held, or with `json` one object (id, packs, acked,
// barrier_us, total_us, revision); the exit code. Also for cluster import --replace.
int run_reconfiguration(std::string_view command, cluster::EtcdClient& etcd,
                        const std::string& prefix, std::chrono::milliseconds timeout, bool json,
                        const std::vector<cluster::Change>& changes,
                        const std::vector<cluster::TxnOp>& also = {});

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
