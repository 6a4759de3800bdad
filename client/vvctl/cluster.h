// vvctl/cluster.h: vvctl's cluster commands: cluster import (a packtab's packs as mappings in
// etcd), cluster nodes (the members) and cluster map (the packs' mappings).
#pragma once

#include "vvctl/command.h"

namespace vvm::vvctl {

int cmd_cluster_import(const Globals& g, const Args& args);
int cmd_cluster_nodes(const Globals& g, const Args& args);
int cmd_cluster_map(const Globals& g, const Args& args);

}  // namespace vvm::vvctl
