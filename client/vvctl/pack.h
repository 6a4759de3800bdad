// vvctl/pack.h: vvctl's pack commands (pack check, pack ls), and the packtab check that conf
// check shares with them.
#pragma once

#include <optional>
#include <string>

#include "pack/packtab.h"
#include "vvctl/command.h"

namespace vvm::vvctl {

// Loads and checks a packtab as the plugin would; prints the error and returns nullopt if bad.
std::optional<PackTable> checked_packtab(const std::string& path);

int cmd_pack_check(const Globals& g, const Args& args);
int cmd_pack_ls(const Globals& g, const Args& args);

}  // namespace vvm::vvctl
