// pack_catalog.h: the exports the plugin serves, built from the pack table.
//
// Every pack gives two export names: "pack/NAME" in the mode its table line gives, and
// "pack/NAME@ro", a read-only view whatever the mode. NBD has no way for a client to say it only
// wants to read, so the read-only view has to be chosen by name. The catalog knows nothing about
// nbdkit; the C boundary (vvm_plugin.cc) turns its answers into callbacks.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "pack/packtab.h"

namespace vvm::plugin {

inline constexpr std::string_view kPackPrefix = "pack/";
inline constexpr std::string_view kReadOnlySuffix = "@ro";

// One export name and what it serves.
struct ExportInfo {
  std::string name;         // "pack/home0" or "pack/home0@ro"
  std::string description;  // for NBD_OPT_LIST and NBD_INFO_DESCRIPTION
  PackEntry pack;           // a copy, so that an open connection does not depend on the catalog
  bool read_only = true;    // the table says ro, or the name ends in @ro
};

class PackCatalog {
 public:
  // Builds the exports of `table`. Each backing must exist, be a regular file or a block device
  // and hold the whole pack; otherwise the error names the table, the line, the pack and why.
  static Result<PackCatalog> create(PackTable table);
  // From a packtab file.
  static Result<PackCatalog> load_packtab(const std::string& path);

  // Every export, two a pack, in table order.
  const std::vector<ExportInfo>& exports() const { return exports_; }
  // The export called `name`; a NotFound status whose message names it and says why otherwise
  // ("unknown export 'pack/x': no such pack in /etc/vvm/packtab (spun down?)").
  Result<const ExportInfo*> find(std::string_view name) const;
  // Where the packs came from, for messages: the packtab path, or "" when there is none.
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<ExportInfo> exports_;
  std::map<std::string, std::size_t, std::less<>> index_;  // name -> exports_ position
};

}  // namespace vvm::plugin
