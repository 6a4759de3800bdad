// forward_table.cc: parsing forward= parameters, opening each pack's Forwarder once, and bringing
// the open forwarders in line with the cluster's routes.
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
  const std::lock_guard lock(entries_m_);
  for (const ForwardEntry& e : entries_) {
    if (e.pack == entry.pack) {
      return Status::InvalidArgument(fmt::format("forward: pack '{}' is given twice", entry.pack));
    }
  }
  entries_.push_back(std::move(entry));
  return Status::Ok();
}

std::optional<ForwardEntry> ForwardTable::find(std::string_view pack) const {
  const std::lock_guard lock(entries_m_);
  for (const ForwardEntry& e : entries_) {
    if (e.pack == pack) return e;
  }
  return std::nullopt;
}

bool ForwardTable::pool(std::string_view pack) const {
  const std::lock_guard lock(entries_m_);
  for (const ForwardEntry& e : entries_) {
    if (e.pack == pack) return e.pool;
  }
  return false;
}

std::vector<ForwardEntry> ForwardTable::entries() const {
  const std::lock_guard lock(entries_m_);
  return entries_;
}

bool ForwardTable::empty() const {
  const std::lock_guard lock(entries_m_);
  return entries_.empty();
}

namespace {

// Why `uri` is known down in `entry` ("" when it is not, or when `entry` does not list it).
std::string down_reason(const ForwardEntry& entry, const std::string& uri) {
  for (size_t i = 0; i < entry.servers.size() && i < entry.down.size(); ++i) {
    if (entry.servers[i].uri == uri) return entry.down[i];
  }
  return {};
}

bool lists(const ForwardEntry& entry, const std::string& uri) {
  for (const ServerSpec& s : entry.servers) {
    if (s.uri == uri) return true;
  }
  return false;
}

// The entry's servers, each with why it is known down, for the forwarder not to connect to them.
std::vector<ServerSpec> with_down(const ForwardEntry& e) {
  std::vector<ServerSpec> out = e.servers;
  for (size_t i = 0; i < out.size() && i < e.down.size(); ++i) out[i].down = e.down[i];
  return out;
}

std::vector<std::string> uris(const ForwardEntry& e) {
  std::vector<std::string> out;
  for (const ServerSpec& s : e.servers) out.push_back(s.uri);
  return out;
}

}  // namespace

void ForwardTable::apply_down(Forwarder& f, const ForwardEntry& entry, const ForwardEntry* before,
                              const Log& log) {
  for (size_t i = 0; i < entry.servers.size() && i < entry.down.size(); ++i) {
    const std::string& uri = entry.servers[i].uri;
    if (entry.down[i].empty()) continue;
    if (before != nullptr && lists(*before, uri) && !down_reason(*before, uri).empty()) continue;
    if (Status s = f.mark_down(uri, entry.down[i]); !s.ok() && log) log(s.message());
  }
}

std::shared_ptr<Forwarder> ForwardTable::opened(std::string_view pack) {
  const std::unique_lock lock(open_m_, std::try_to_lock);
  if (!lock.owns_lock()) return nullptr;
  auto it = open_.find(pack);
  return it == open_.end() ? nullptr : it->second.forwarder;
}

std::shared_ptr<Forwarder> ForwardTable::open_forwarder(std::string_view pack) const {
  const std::lock_guard lock(live_m_);
  auto it = live_.find(pack);
  return it == live_.end() ? nullptr : it->second.lock();
}

Result<std::shared_ptr<Forwarder>> ForwardTable::forwarder(std::string_view pack, const Log& log) {
  // An open one is a request's look-up: it does not wait behind another pack's change.
  if (std::shared_ptr<Forwarder> f = open_forwarder(pack)) return f;
  const std::lock_guard lock(open_m_);
  if (auto it = open_.find(pack); it != open_.end()) return it->second.forwarder;
  std::optional<ForwardEntry> entry = find(pack);
  if (!entry) {
    return Status::NotFound(fmt::format("{}{} is not forwarded from here", kPackPrefix, pack));
  }
  ForwardOptions o;
  o.name = std::string(kPackPrefix) + entry->pack;
  o.servers = with_down(*entry);
  o.pool = entry->pool;
  o.source = source_;
  o.log = log;
  Result<std::unique_ptr<Forwarder>> f = Forwarder::open(std::move(o));
  if (!f.ok()) return f.status();
  std::shared_ptr<Forwarder> shared = std::move(*f);
  // A server known down is not used, even if it answered the connection (a node that lost its
  // lease may still be running, fenced).
  apply_down(*shared, *entry, nullptr, log);
  open_.emplace(entry->pack, Open{shared, *entry});
  {
    const std::lock_guard live(live_m_);
    live_[entry->pack] = shared;
  }
  return shared;
}

void ForwardTable::replace(std::vector<ForwardEntry> entries, const Log& log) {
  {
    const std::lock_guard lock(entries_m_);
    entries_ = entries;
  }
  const std::lock_guard lock(open_m_);
  for (auto it = open_.begin(); it != open_.end();) {
    const ForwardEntry* next = nullptr;
    for (const ForwardEntry& e : entries) {
      if (e.pack == it->first) next = &e;
    }
    if (next == nullptr) {
      forget(it->first);
      it = open_.erase(it);  // no longer forwarded: new connections will not find it
      continue;
    }
    Forwarder& f = *it->second.forwarder;
    ForwardEntry& applied = it->second.applied;
    // First the servers newly known down, which both lists hold: cut before a reconfiguration
    // waits on them (a paused node would hold it up to its drain timeout).
    for (size_t i = 0; i < next->servers.size() && i < next->down.size(); ++i) {
      const std::string& uri = next->servers[i].uri;
      if (next->down[i].empty() || !lists(applied, uri) || !down_reason(applied, uri).empty()) {
        continue;
      }
      if (Status s = f.mark_down(uri, next->down[i]); !s.ok() && log) log(s.message());
    }
    if (uris(applied) != uris(*next) || applied.pool != next->pool) {
      auto held = f.reconfigure(with_down(*next), next->pool);
      if (!held.ok()) {
        if (log) log(held.status().message());
        ++it;  // the old list stays; the next change tries again
        continue;
      }
    }
    apply_down(f, *next, &applied, log);
    // The servers newly known up: connected again, and used.
    for (size_t i = 0; i < next->servers.size() && i < next->down.size(); ++i) {
      const std::string& uri = next->servers[i].uri;
      if (!next->down[i].empty() || !lists(applied, uri) || down_reason(applied, uri).empty()) {
        continue;
      }
      if (Status s = f.mark_up(uri); !s.ok() && log) {
        log(fmt::format("{} (tried again in a second)", s.message()));
      }
    }
    applied = *next;
    ++it;
  }
}

void ForwardTable::retry_up(const Log& /*log*/) {
  const std::lock_guard lock(open_m_);
  for (auto& [pack, open] : open_) {
    if (open.applied.down.empty()) continue;  // parameters: nothing is known of the servers
    const ForwardStats st = open.forwarder->stats();
    for (const ServerStats& s : st.servers) {
      if (s.healthy || !down_reason(open.applied, s.uri).empty()) continue;
      // Known up, yet down here. A failure is not news: the forwarder said why it went down.
      (void)open.forwarder->mark_up(s.uri);
    }
  }
}

void ForwardTable::close_idle(std::chrono::milliseconds idle, const Log& log) {
  const auto now = std::chrono::steady_clock::now();
  const std::lock_guard lock(open_m_);
  for (auto it = open_.begin(); it != open_.end();) {
    Open& o = it->second;
    uint64_t requests = 0;
    for (const ServerStats& s : o.forwarder->stats().servers) requests += s.requests;
    // Held by a client connection, or by a request under way (the table's is the only other).
    if (requests != o.requests_seen || o.forwarder.use_count() > 1) {
      o.requests_seen = requests;
      o.idle_since = now;
      ++it;
      continue;
    }
    if (now - o.idle_since < idle) {
      ++it;
      continue;
    }
    if (log) {
      log(
          fmt::format("{}: no client and no request for {} ms: its connections to its servers "
                      "are closed",
                      o.forwarder->name(), idle.count()));
    }
    forget(it->first);
    it = open_.erase(it);
  }
}

void ForwardTable::close_all() {
  const std::lock_guard lock(open_m_);
  {
    const std::lock_guard live(live_m_);
    live_.clear();
  }
  open_.clear();
}

void ForwardTable::forget(const std::string& pack) {
  const std::lock_guard live(live_m_);
  live_.erase(pack);
}

}  // namespace vvm::plugin::forward
