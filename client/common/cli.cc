// cli.cc: option parsing and usage errors shared by vvm's tools; see cli.h.
#include "common/cli.h"

#include <cstdio>

#include <fmt/core.h>

namespace vvm::cli {

namespace po = boost::program_options;

int usage_error(std::string_view tool, std::string_view command, std::string_view message) {
  fmt::print(stderr, "{} {}: {}\nTry '{} help {}'.\n", tool, command, message, tool, command);
  return kUsage;
}

bool parse_options(std::string_view tool, std::string_view command, const Args& args,
                   const po::options_description& options,
                   const po::positional_options_description& positional, po::variables_map* vm) {
  try {
    po::store(po::command_line_parser(args).options(options).positional(positional).run(), *vm);
    po::notify(*vm);
    return true;
  } catch (const po::error& e) {
    usage_error(tool, command, e.what());
    return false;
  }
}

bool wants_help(const Args& args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

}  // namespace vvm::cli
