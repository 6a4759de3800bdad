// vvctl/vsn.h: vvctl's commands on the VSN catalogue, the tape volumes vvmd writes copies on.
#pragma once

#include "vvctl/command.h"

namespace vvm::vvctl {

int cmd_vsn_add(const Globals& g, const Args& args);
int cmd_vsn_ls(const Globals& g, const Args& args);

}  // namespace vvm::vvctl
