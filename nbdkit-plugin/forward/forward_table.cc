// forward_table.cc: parsing forward= parameters and opening each pack's Forwarder once.
#include "forward/forward_table.h"

#include <fmt/core.h>

#include "pack_catalog.h"

namespace vvm::plugin::forward {

Result<ForwardEntry> parse_forward(std::string_view value, bool pool) {
  const char* key = pool ? "forward-pool" : "forward";
  const size_t eq = value.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return Status::InvalidArgument(
        fmt::format("{}={}: give NAME=URI[,URI...] (the pack, then its servers)", key, value));
  }
  ForwardEntry e;
  e.pack = std::string(value.substr(0, eq));
  e.pool = pool;
  std::string_view rest = value.substr(eq + 1);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view uri = rest.substr(0, comma);
    if (!uri.starts_with("nbd://") && !uri.starts_with("nbd+unix://") &&
        !uri.starts_with("nbds://") && !uri.starts_with("nbds+unix://")) {
      return Status::InvalidArgument(
          fmt::format("{}={}: '{}' is not an NBD URI (nbd://HOST:PORT/EXPORT)", key, value, uri));
    }
    e.servers.push_back({std::string(uri)});
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  if (e.servers.empty()) {
    return Status::InvalidArgument(fmt::format("{}={}: no server given", key, value));
  }
  return e;
}

Status ForwardTable::add(ForwardEntry entry) {
  if (find(entry.pack) != nullptr) {
    return Status::InvalidArgument(fmt::format("forward: pack '{}' is given twice", entry.pack));
  }
  entries_.push_back(std::move(entry));
  return Status::Ok();
}

const ForwardEntry* ForwardTable::find(std::string_view pack) const {
  for (const ForwardEntry& e : entries_) {
    if (e.pack == pack) return &e;
  }
  return nullptr;
}

Result<std::shared_ptr<Forwarder>> ForwardTable::forwarder(
    const ForwardEntry& entry, const std::function<void(const std::string&)>& log) {
  const std::lock_guard lock(mutex_);
  if (auto it = open_.find(entry.pack); it != open_.end()) return it->second;
  ForwardOptions o;
  o.name = std::string(kPackPrefix) + entry.pack;
  o.servers = entry.servers;
  o.pool = entry.pool;
  o.log = log;
  Result<std::unique_ptr<Forwarder>> f = Forwarder::open(std::move(o));
  if (!f.ok()) return f.status();
  std::shared_ptr<Forwarder> shared = std::move(*f);
  open_.emplace(entry.pack, shared);
  return shared;
}

void ForwardTable::close_all() {
  const std::lock_guard lock(mutex_);
  open_.clear();
}

}  // namespace vvm::plugin::forward
