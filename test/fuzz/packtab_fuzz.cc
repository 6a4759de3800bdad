// packtab_fuzz.cc: libFuzzer target for the pack table, read as the plugin reads it: the input is
// written to a file and loaded with load_packtab (pack/packtab.h). Any file must load or be
// refused with an error that names it, never crash or throw; a table that loads must keep the
// promises packtab.h makes for each pack: a valid name found under it, a size, no overflow,
// perms within 0777, an absolute backing, and no two packs sharing a name or overlapping in one
// backing. (The backings themselves are not opened: check_backings would open any path the
// fuzzer wrote, devices included.)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "pack/packtab.h"
#include "scratch.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (unsigned char c : name) {
    if (!std::isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

void check(const vvm::PackTable& table, const std::string& path) {
  require(table.path == path);
  std::set<std::string> names;
  for (const vvm::PackEntry& p : table.packs) {
    require(valid_name(p.name) && names.insert(p.name).second);
    require(table.find(p.name) == &p);
    require(p.size > 0 && p.offset + p.size > p.offset);  // no wrap-around
    require(p.perms <= 0777 && p.line > 0);
    require(!p.backing.empty() && p.backing[0] == '/');
    for (const vvm::PackEntry& q : table.packs) {
      if (&p == &q || p.backing != q.backing) continue;
      require(p.offset + p.size <= q.offset || q.offset + q.size <= p.offset);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = vvm::fuzz::scratch_dir() + "/packtab";
  vvm::fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));
  auto table = vvm::load_packtab(path);
  if (table.ok()) {
    check(*table, path);
  } else {
    require(std::string_view(table.status().message()).starts_with(path));
  }
  return 0;
}
