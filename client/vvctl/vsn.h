// vvctl/vsn.h: vvctl's commands on the VSN catalogue, the tape volumes vvmd writes copies on,
// and on the drives that read and write them.
#pragma once

#include "vvctl/command.h"

namespace vvm::vvctl {

int cmd_vsn_add(const Globals& g, const Args& args);
int cmd_vsn_ls(const Globals& g, const Args& args);
int cmd_vsn_set(const Globals& g, const Args& args);
int cmd_vsn_repack(const Globals& g, const Args& args);
int cmd_vsn_reclaim(const Globals& g, const Args& args);
int cmd_vsn_verify(const Globals& g, const Args& args);
int cmd_drive_down(const Globals& g, const Args& args);
int cmd_drive_up(const Globals& g, const Args& args);
int cmd_drive_ls(const Globals& g, const Args& args);

}  // namespace vvm::vvctl
