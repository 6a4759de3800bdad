// replace_file.h: replacing a small file (a tape's capacity sidecar, a state file next to a data
// file) so that a reader never sees it half written, and a crash leaves the old or the new one.
//
// Rewriting a file in place (open with O_TRUNC, then write) lets a reader that opens it between
// the truncation and the write read it empty, and a crash there leaves it empty for good. Here
// the new contents go to a temporary file in the same folder, which is fsynced and renamed over
// the old name (rename(2) is atomic within a filesystem), and then the folder is fsynced so the
// new name survives a crash.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace vvm {

// Makes `path` hold `contents`, with the mode it had (0644 when it did not exist).
// On failure the old file is left as it was and no temporary file is left behind; the message
// names the file and the step that failed.
Status replace_file(const std::string& path, std::string_view contents);

// fsyncs the folder holding `path`, so that a new, renamed or removed entry of it survives a
// crash.
Status sync_parent_dir(const std::string& path);

}  // namespace vvm
