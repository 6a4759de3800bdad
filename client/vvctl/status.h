// vvctl/status.h: vvctl's commands about the system rather than one volume: status (what vvmd
// is doing), ping (is a daemon there) and conf check (is vvm.conf right).
#pragma once

#include "vvctl/command.h"

namespace vvm::vvctl {

int cmd_status(const Globals& g, const Args& args);
int cmd_ping(const Globals& g, const Args& args);
int cmd_conf_check(const Globals& g, const Args& args);

}  // namespace vvm::vvctl
