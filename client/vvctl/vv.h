// vvctl/vv.h: vvctl's commands on virtual volumes: create, show, ls, finish, stage, evict, rm.
#pragma once

#include "vvctl/command.h"

namespace vvm::vvctl {

int cmd_create(const Globals& g, const Args& args);
int cmd_show(const Globals& g, const Args& args);
int cmd_ls(const Globals& g, const Args& args);
int cmd_finish(const Globals& g, const Args& args);
int cmd_stage(const Globals& g, const Args& args);
int cmd_rm(const Globals& g, const Args& args);
int cmd_evict(const Globals& g, const Args& args);

}  // namespace vvm::vvctl
