// vvctl/db.h: vvctl's commands about vvmd's database: db stats (its tables and journal), db check
// (the whole database checked, each problem named) and db backup DIR (a consistent copy made while
// vvmd runs).
#pragma once

#include "vvctl/command.h"

namespace vvm::vvctl {

int cmd_db_stats(const Globals& g, const Args& args);
int cmd_db_check(const Globals& g, const Args& args);
int cmd_db_backup(const Globals& g, const Args& args);

}  // namespace vvm::vvctl
