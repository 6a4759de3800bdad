// catalog_source.cc: re-reading a changed packtab; see catalog_source.h.
#include "catalog_source.h"

#include <utility>

namespace vvm::plugin {

bool CatalogSource::Signature::operator==(const Signature& o) const {
  return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
         mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec &&
         ctime.tv_nsec == o.ctime.tv_nsec;
}

CatalogSource::Signature CatalogSource::signature_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == -1) return Signature{};
  return Signature{st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
}

Result<std::unique_ptr<CatalogSource>> CatalogSource::open(const std::string& packtab_path) {
  std::unique_ptr<CatalogSource> source(new CatalogSource);
  source->path_ = packtab_path;
  if (packtab_path.empty()) {
    source->catalog_ = std::make_shared<const PackCatalog>();
    return source;
  }
  // The signature first: a change while loading is then seen at the next call.
  source->loaded_ = signature_of(packtab_path);
  Result<PackCatalog> catalog = PackCatalog::load_packtab(packtab_path);
  if (!catalog.ok()) return catalog.status();
  source->catalog_ = std::make_shared<const PackCatalog>(std::move(*catalog));
  return source;
}

std::unique_ptr<CatalogSource> CatalogSource::published() {
  std::unique_ptr<CatalogSource> source(new CatalogSource);
  source->catalog_ = std::make_shared<const PackCatalog>();
  return source;
}

void CatalogSource::publish(std::shared_ptr<const PackCatalog> catalog) {
  const std::lock_guard lock(mutex_);
  catalog_ = std::move(catalog);
  published_since_ = true;
}

CatalogSource::Current CatalogSource::current() {
  const std::lock_guard lock(mutex_);
  Current out;
  out.reloaded = std::exchange(published_since_, false);
  if (!path_.empty()) {
    const Signature now = signature_of(path_);
    if (now != loaded_ && now != failed_) {
      // A file that is gone fails here too, with the reason the read gives.
      Result<PackCatalog> catalog = PackCatalog::load_packtab(path_);
      if (catalog.ok()) {
        catalog_ = std::make_shared<const PackCatalog>(std::move(*catalog));
        loaded_ = now;
        failed_.reset();
        out.reloaded = true;
      } else {
        failed_ = now;
        out.failed = Status(catalog.status().code(),
                            catalog.status().message() + " (still serving the previous table)");
      }
    }
  }
  out.catalog = catalog_;
  return out;
}

}  // namespace vvm::plugin
