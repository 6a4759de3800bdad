// pack_catalog.cc: export names, descriptions and backing checks for the pack table.
#include "pack_catalog.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include <fmt/core.h>

#include "config.h"
#include "pack_export.h"
#include "size.h"

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

// The backing must exist and hold the whole pack: finding out at the first read is too late.
Status check_backing(const PackEntry& pack, std::string_view origin) {
  const std::string where = fmt::format("{}:{}: pack '{}'", origin, pack.line, pack.name);
  const int fd = ::open(pack.backing.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd == -1) return Status::FromErrno(errno, fmt::format("{}: backing {}", where, pack.backing));
  Result<uint64_t> size = backing_size(fd, pack.backing);
  ::close(fd);
  if (!size.ok()) return Status(size.status().code(), where + ": " + size.status().message());
  const uint64_t end = pack.offset + pack.size;
  if (*size < end) {
    return Status::InvalidArgument(fmt::format(
        "{}: backing {} is {} bytes long, but the pack ends at {} (offset {} + size {})", where,
        pack.backing, *size, end, format_size(pack.offset), format_size(pack.size)));
  }
  return Status::Ok();
}

}  // namespace

Result<PackCatalog> PackCatalog::create(PackTable table) {
  PackCatalog catalog;
  catalog.source_ = table.path.empty() ? "packtab" : table.path;
  catalog.exports_.reserve(2 * table.packs.size());
  for (PackEntry& pack : table.packs) {
    VVM_RETURN_IF_ERROR(check_backing(pack, catalog.source_));
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

Result<PackCatalog> PackCatalog::load_config(const std::string& path) {
  Result<Config> config = vvm::load_config(path);
  if (!config.ok()) return config.status();
  if (config->packtab.empty()) return PackCatalog();  // a site without packs
  return load_packtab(config->packtab);
}

Result<const ExportInfo*> PackCatalog::find(std::string_view name) const {
  if (auto it = index_.find(name); it != index_.end()) return &exports_[it->second];
  if (name.starts_with(kPackPrefix)) {
    return Status::NotFound(fmt::format(
        "unknown export '{}': {}", name,
        source_.empty() ? "no pack table is configured" : "no such pack in " + source_));
  }
  return Status::NotFound(fmt::format("unknown export '{}': export names are {}NAME and {}NAME{}",
                                      name, kPackPrefix, kPackPrefix, kReadOnlySuffix));
}

}  // namespace vvm::plugin
