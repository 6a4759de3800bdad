// vvctl/reconfig.h: vvctl's commands that change pack mappings while the nodes serve them,
// through the reconfiguration barrier (cluster/reconfig.h): pack move, pack set-secondary, pack
// chmod, pack chown, cluster drain and cluster undrain.
#pragma once

#include "vvctl/command.h"

namespace vvm::vvctl {

int cmd_pack_move(const Globals& g, const Args& args);
int cmd_pack_set_secondary(const Globals& g, const Args& args);
int cmd_pack_chmod(const Globals& g, const Args& args);
int cmd_pack_chown(const Globals& g, const Args& args);
int cmd_cluster_drain(const Globals& g, const Args& args);
int cmd_cluster_undrain(const Globals& g, const Args& args);

}  // namespace vvm::vvctl
