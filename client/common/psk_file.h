// common/psk_file.h: GnuTLS's PSK key file ("USERNAME:HEXKEY" a line, as psktool writes it),
// read whole and checked when it is loaded, so that a bad line is named by file and line then,
// not at some client's handshake. vvmd's TLS listener and the plugin's identity check read it.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace vvm {

struct PskLine {
  int line = 0;  // 1-based, in the file
  std::string user;
  std::string key;  // hex
};

// Every user of `file` (blank lines skipped); InvalidArgument naming the file and the line for a
// line that is not USERNAME:HEXKEY or a key that is not an even number of hex digits, and for a
// file that holds no user.
Result<std::vector<PskLine>> read_psk_file(const std::string& file);

}  // namespace vvm
