// pack_catalog.cc: export names, descriptions and backing checks for the pack table.
#include "pack_catalog.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include <fmt/core.h>

#include "common/size.h"
#include "pack_export.h"

namespace vvm::plugin {
namespace {

// "pack home0, 100G, exclusive, backing /dev/sdb at 0", or for its @ro name
// "pack home0, 100G, read-only view, table mode exclusive, backing /dev/sdb at 0".
std::string describe(const PackEntry& pack, bool read_only_view) {
  std::string mode(pack_mode_name(pack.mode));
  if (read_only_view && pack.mode != PackMode::kReadOnly) {
    mode = fmt::format("read-only view, table mode {}", mode);
  }
  std::string text =
      fmt::format("pack {}, {}, {}, backing {} at {}", pack.name, format_size(pack.size), mode,
                  pack.backing, format_size(pack.offset));
  // NBD limits strings to 4096 bytes, and nbdkit refuses the whole list over one that is longer.
  constexpr std::size_t kMaxDescription = 4096;
  if (text.size() > kMaxDescription) text.replace(kMaxDescription - 3, std::string::npos, "...");
  return text;
}

}  // namespace

Result<PackCatalog> PackCatalog::create(PackTable table) {
  PackCatalog catalog;
  catalog.source_ = table.path.empty() ? "packtab" : table.path;
  catalog.exports_.reserve(2 * table.packs.size());
  // Finding a missing or short backing at the first read would be too late.
  VVM_RETURN_IF_ERROR(check_backings(table));
  for (PackEntry& pack : table.packs) {
    const std::string name = std::string(kPackPrefix) + pack.name;
    const bool read_only = pack.mode == PackMode::kReadOnly;
    catalog.exports_.push_back({name, describe(pack, false), pack, read_only});
    catalog.exports_.push_back(
        {name + std::string(kReadOnlySuffix), describe(pack, true), std::move(pack), true});
  }
  for (std::size_t i = 0; i < catalog.exports_.size(); ++i) {
    catalog.index_.emplace(catalog.exports_[i].name, i);
  }
  return catalog;
}

Result<PackCatalog> PackCatalog::load_packtab(const std::string& path) {
  Result<PackTable> table = vvm::load_packtab(path);
  if (!table.ok()) return table.status();
  return create(std::move(*table));
}

Result<const ExportInfo*> PackCatalog::find(std::string_view name) const {
  if (auto it = index_.find(name); it != index_.end()) return &exports_[it->second];
  if (name.starts_with(kPackPrefix)) {
    return Status::NotFound(
        fmt::format("unknown export '{}': {}", name,
                    source_.empty() ? "no pack table is configured"
                                    : fmt::format("no such pack in {} (spun down?)", source_)));
  }
  return Status::NotFound(fmt::format("unknown export '{}': export names are {}NAME and {}NAME{}",
                                      name, kPackPrefix, kPackPrefix, kReadOnlySuffix));
}

}  // namespace vvm::plugin
