// vvctl/classes.h: vvctl's commands on storage classes that change while vvmd runs: `vvctl
// reload` (vvm.conf read again), `vvctl class ls` (each class, its media types, the copies its VVs
// lack and the extra ones) and `vvctl class prune` (extra copies released).
#pragma once

#include "vvctl/command.h"

namespace vvm::vvctl {

int cmd_reload(const Globals& g, const Args& args);
int cmd_class_ls(const Globals& g, const Args& args);
int cmd_class_prune(const Globals& g, const Args& args);

}  // namespace vvm::vvctl
