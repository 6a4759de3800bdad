// catalog_source.h: the pack catalog the plugin serves now, re-read when its packtab changes.
//
// Each new connection (and each listing) asks for the current catalog; that costs one stat() of
// the packtab. When the file's inode, size, mtime or ctime changed, it is read again: a good table
// replaces the catalog for new connections (open connections keep the ExportInfo copy they
// opened), a bad one (or a missing file) leaves the old catalog in place and its error is
// reported once per change. Replace the file by renaming a new one over it: a table caught
// half-written is refused like any bad table, and served once it is whole.
//
// In cluster mode there is no file: the catalog is built from the pack mappings in etcd
// (cluster_catalog.h), which publish() each new one; current() hands out the last published.
//
// Thread-safe: current() may be called from every nbdkit thread at once. The catalog is
// immutable and handed out as a shared_ptr, so a reload never changes one a caller still uses.
#pragma once

#include <sys/stat.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/status.h"
#include "pack_catalog.h"

namespace vvm::plugin {

class CatalogSource {
 public:
  // Loads `packtab_path` now (its errors stop nbdkit at start); "" serves no packs.
  static Result<std::unique_ptr<CatalogSource>> open(const std::string& packtab_path);
  // A source fed by publish() alone, serving no packs until the first.
  static std::unique_ptr<CatalogSource> published();
  // Replaces the catalog for new connections and listings (a published() source only).
  void publish(std::shared_ptr<const PackCatalog> catalog);

  struct Current {
    std::shared_ptr<const PackCatalog> catalog;
    bool reloaded = false;         // this call read a new table
    std::optional<Status> failed;  // this call found a changed table that does not load
  };
  Current current();

 private:
  // What tells one version of the file from another. A file that cannot be stat()ed (gone, or
  // its folder unreadable) has the default signature, so that it too is reported once.
  struct Signature {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    timespec mtime{};
    timespec ctime{};
    bool operator==(const Signature& o) const;
  };
  static Signature signature_of(const std::string& path);

  std::string path_;
  std::mutex mutex_;
  Signature loaded_;                 // of the table being served
  std::optional<Signature> failed_;  // of the last version that did not load
  std::shared_ptr<const PackCatalog> catalog_;
  bool published_since_ = false;  // publish() was called since the last current()
};

}  // namespace vvm::plugin
