// cli.h: what vvm's command-line tools (vvctl, vvtape) share: a command's option parsing and its
// usage errors, worded the same in every tool.
//
// Exit codes, the same in every tool: 0 success, 1 the operation failed, 2 a usage or
// configuration error (a tool may add its own above these).
#pragma once

#include <boost/program_options.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace vvm::cli {

using Args = std::vector<std::string>;
inline constexpr int kOk = 0, kFailed = 1, kUsage = 2;

// Prints "TOOL COMMAND: MESSAGE" and "Try 'TOOL help COMMAND'." on stderr; returns kUsage.
int usage_error(std::string_view tool, std::string_view command, std::string_view message);

// Parses a command's options into `*vm`; on bad usage prints the error as usage_error does and
// returns false.
bool parse_options(std::string_view tool, std::string_view command, const Args& args,
                   const boost::program_options::options_description& options,
                   const boost::program_options::positional_options_description& positional,
                   boost::program_options::variables_map* vm);

// True when `args` ask for help (--help or -h anywhere).
bool wants_help(const Args& args);

}  // namespace vvm::cli
