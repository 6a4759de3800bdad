// vvctl/cluster.h: vvctl's cluster commands: cluster import (a packtab's packs as mappings in
// etcd), cluster nodes (the members, and the nodes the mappings name that are down) and cluster
// map (the packs' mappings).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "cluster/etcd_client.h"
#include "cluster/records.h"
#include "vvctl/command.h"

namespace vvm::vvctl {

// A client of the etcd that vvm.conf's [cluster] names, and the prefix; nullptr after printing
// why, with the exit code in `*rc`.
std::unique_ptr<cluster::EtcdClient> connect_etcd(const Globals& g, std::string_view command,
                                                  std::string* prefix, int* rc);

// How tables show a mapping's servers: "n1:d0", and a pool as "n3:d0,n4:d0" (one word, so that
// columns stay aligned), "-" for none.
std::string disk_text(const cluster::DiskRef& d);
std::string pool_text(const cluster::PackMapping& m);

int cmd_cluster_import(const Globals& g, const Args& args);
int cmd_cluster_nodes(const Globals& g, const Args& args);
int cmd_cluster_map(const Globals& g, const Args& args);

}  // namespace vvm::vvctl
