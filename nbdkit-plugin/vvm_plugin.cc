// vvm_plugin.cc: the nbdkit plugin's C boundary (nbdkit plugin API v2).
//
// Turns nbdkit callbacks into calls on the pack catalog (pack_catalog.h) and the per-connection
// data path (pack_export.h). No exception leaves a callback: each is caught, reported with
// nbdkit_error and returned to nbdkit as -1 (or NULL) with an errno set.
//
//   nbdkit vvm packtab=/etc/vvm/packtab      or      nbdkit vvm conf=/etc/vvm/vvm.conf
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <cerrno>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <netdb.h>
#include <sys/socket.h>

#include "catalog_source.h"
#include "config.h"
#include "connection.h"
#include "pack_access.h"
#include "pack_catalog.h"
#include "pack_export.h"
#include "pack_holds.h"
#include "status.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

namespace vvm::plugin {
namespace {

// Set by .config, used by .config_complete.
std::string g_packtab_path;
std::string g_conf_path;
std::string g_holds_dir;
// Who holds which pack; built by .config_complete.
std::unique_ptr<HoldRegistry> g_holds;
// Who may connect over TCP: vvm.conf's [vvmd] allow-host, with conf= only.
std::optional<AccessPolicy> g_tcp_policy;
// Built by .config_complete. The pointer never changes afterwards; the catalog it hands out is
// swapped under its own lock when the packtab changes, so the parallel callbacks share it.
std::unique_ptr<CatalogSource> g_catalog;

// The handles of open connections. nbdkit 1.32 skips .close for connections still open when it
// quits (free_connection in server/connections.c), but calls .unload once every connection
// thread has ended: owning the handles here lets .unload release them.
class OpenHandles {
 public:
  Connection* add(std::unique_ptr<Connection> conn) {
    Connection* raw = conn.get();
    const std::lock_guard lock(mutex_);
    handles_.emplace(raw, std::move(conn));
    return raw;
  }
  void close(Connection* conn) {
    std::unique_ptr<Connection> closing;  // destroyed (hold ended, fd closed) outside the lock
    const std::lock_guard lock(mutex_);
    if (auto it = handles_.find(conn); it != handles_.end()) {
      closing = std::move(it->second);
      handles_.erase(it);
    }
  }
  void close_all() {
    std::unordered_map<Connection*, std::unique_ptr<Connection>> closing;
    const std::lock_guard lock(mutex_);
    closing.swap(handles_);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> handles_;
};
OpenHandles g_handles;

// Reports an error to nbdkit, which sends `err` to the client as the NBD error.
void fail(int err, const std::string& message) {
  nbdkit_error("%s", message.c_str());
  nbdkit_set_error(err);
  errno = err;
}

int errno_for(Code code) {
  switch (code) {
    case Code::kNotFound: return ENOENT;
    case Code::kPermissionDenied: return EACCES;
    case Code::kInvalidArgument: return EINVAL;
    case Code::kBusy: return EBUSY;
    case Code::kUnavailable: return EAGAIN;
    case Code::kTimeout: return ETIMEDOUT;
    default: return EIO;
  }
}

void fail(const Status& status) { fail(errno_for(status.code()), status.message()); }

// Runs a callback body; an exception becomes an nbdkit error with EIO and `failed` is returned.
template <class T, class F>
T guarded(const char* callback, T failed, F&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    fail(EIO, std::string(callback) + ": " + e.what());
  } catch (...) {
    fail(EIO, std::string(callback) + ": unknown exception");
  }
  return failed;
}

int io_result(const IoStatus& status) {
  if (status.ok()) return 0;
  fail(status.err(), status.status().message());
  return -1;
}

Connection* as_conn(void* handle) { return static_cast<Connection*>(handle); }
PackExport* as_pack(void* handle) { return &as_conn(handle)->pack(); }

// Checks that the client may open `entry` as `writable` says, and returns who it is, for holds:
// "uid N" on a Unix socket, "host ADDRESS" over TCP.
Result<std::string> admit_peer(const PackEntry& entry, bool writable) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (nbdkit_peer_name(reinterpret_cast<sockaddr*>(&ss), &len) == -1) {
    return std::string("unknown peer");  // nbdkit -s: the client is whoever started nbdkit
  }
  if (ss.ss_family == AF_UNIX) {
    const int64_t uid = nbdkit_peer_uid(), gid = nbdkit_peer_gid(), pid = nbdkit_peer_pid();
    if (uid < 0 || gid < 0) return Status::PermissionDenied("cannot tell who the client is");
    LocalPeer peer{static_cast<uid_t>(uid), static_cast<gid_t>(gid),
                   pid > 0 ? process_groups(static_cast<pid_t>(pid)) : std::vector<gid_t>{}};
    VVM_RETURN_IF_ERROR(check_local_access(entry, writable, peer));
    return "uid " + std::to_string(uid);
  }
  char host[NI_MAXHOST] = {};
  if (::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, nullptr, 0,
                    NI_NUMERICHOST) != 0) {
    return Status::PermissionDenied("cannot tell the client's address");
  }
  std::string h = host;
  if (h.starts_with("::ffff:") && h.find('.') != std::string::npos) h = h.substr(7);
  if (g_tcp_policy) {
    VVM_RETURN_IF_ERROR(check_host_access(*g_tcp_policy, reinterpret_cast<sockaddr*>(&ss), h));
  }
  return "host " + h;
}

// --- configuration ---

int vvm_config(const char* key, const char* value) {
  return guarded("config", -1, [&] {
    const std::string_view k(key);
    std::string* target = k == "packtab" ? &g_packtab_path
                          : k == "conf"  ? &g_conf_path
                          : k == "holds" ? &g_holds_dir
                                         : nullptr;
    if (target == nullptr) {
      fail(EINVAL, std::string("unknown parameter '") + key + "' (see nbdkit vvm --help)");
      return -1;
    }
    if (!target->empty()) {
      fail(EINVAL, std::string(key) + "= given twice");
      return -1;
    }
    if (k == "holds") {
      // The folder may not exist yet: made absolute here, created when first needed.
      *target = std::filesystem::absolute(value).lexically_normal().string();
      return 0;
    }
    // nbdkit changes directory to / once it starts: resolve now, relative to where it was run.
    char* path = nbdkit_realpath(value);  // reports its own error
    if (path == nullptr) return -1;
    *target = path;
    std::free(path);
    return 0;
  });
}

int vvm_config_complete() {
  return guarded("config_complete", -1, [] {
    if (g_packtab_path.empty() == g_conf_path.empty()) {
      fail(EINVAL, g_packtab_path.empty() ? "give packtab=PATH or conf=PATH"
                                          : "give packtab=PATH or conf=PATH, not both");
      return -1;
    }
    std::string packtab = g_packtab_path;
    if (!g_conf_path.empty()) {
      Result<Config> config = load_config(g_conf_path);
      if (!config.ok()) {
        fail(config.status());
        return -1;
      }
      packtab = config->packtab;  // "" when the site has no packs
      g_tcp_policy = config->vvmd_access;
      if (g_holds_dir.empty()) g_holds_dir = config->state_dir + "/holds";
    }
    Result<std::unique_ptr<CatalogSource>> catalog = CatalogSource::open(packtab);
    if (!catalog.ok()) {
      fail(catalog.status());
      return -1;
    }
    g_catalog = std::move(*catalog);
    if (g_holds_dir.empty()) g_holds_dir = "/run/vvm/holds";
    g_holds = std::make_unique<HoldRegistry>(g_holds_dir);
    nbdkit_debug("holds recorded in %s", g_holds_dir.c_str());
    nbdkit_debug("serving %zu exports from %s", g_catalog->current().catalog->exports().size(),
                 packtab.empty() ? "(no pack table)" : packtab.c_str());
    return 0;
  });
}

// The catalog to serve this connection or listing from, re-read if the packtab changed.
std::shared_ptr<const PackCatalog> current_catalog() {
  CatalogSource::Current now = g_catalog->current();
  if (now.failed) nbdkit_error("%s", now.failed->message().c_str());
  if (now.reloaded) {
    nbdkit_debug("pack table %s re-read: %zu exports", now.catalog->source().c_str(),
                 now.catalog->exports().size());
  }
  return now.catalog;
}

void vvm_unload() {
  g_handles.close_all();  // ends their holds, so before the registry goes
  g_holds.reset();
  g_catalog.reset();
}

// --- exports ---

int vvm_list_exports(int /*readonly*/, int /*is_tls*/, struct nbdkit_exports* exports) {
  return guarded("list_exports", -1, [&] {
    for (const ExportInfo& e : current_catalog()->exports()) {
      if (nbdkit_add_export(exports, e.name.c_str(), e.description.c_str()) == -1) return -1;
    }
    return 0;
  });
}

// There is no default export: a client must name the pack it wants.
const char* vvm_default_export(int /*readonly*/, int /*is_tls*/) { return nullptr; }

void* vvm_open(int readonly) {
  return guarded<void*>("open", nullptr, [&]() -> void* {
    const char* name = nbdkit_export_name();
    std::shared_ptr<const PackCatalog> catalog = current_catalog();
    Result<const ExportInfo*> info = catalog->find(name != nullptr ? name : "");
    if (!info.ok()) {
      fail(info.status());
      return nullptr;
    }
    Result<std::unique_ptr<PackExport>> pack = PackExport::open(**info, readonly != 0);
    if (!pack.ok()) {
      fail(pack.status());
      return nullptr;
    }
    Result<std::string> identity = admit_peer((*info)->pack, (*pack)->writable());
    if (!identity.ok()) {
      fail(identity.status());
      return nullptr;
    }
    auto conn = std::make_unique<Connection>(std::move(*pack), *identity, g_holds.get());
    nbdkit_debug("open %s (%s) for %s", (*info)->name.c_str(),
                 conn->pack().writable() ? "read-write" : "read-only", conn->identity().c_str());
    return g_handles.add(std::move(conn));
  });
}

void vvm_close(void* handle) {
  guarded("close", 0, [&] {
    g_handles.close(as_conn(handle));
    return 0;
  });
}

const char* vvm_export_description(void* handle) {
  // The string lives in the handle, which outlives every use nbdkit makes of it.
  return as_pack(handle)->info().description.c_str();
}

int64_t vvm_get_size(void* handle) { return static_cast<int64_t>(as_pack(handle)->size()); }

int vvm_block_size(void* handle, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  *minimum = as_pack(handle)->minimum_block();     // 1 on a file, the sector size on a device
  *preferred = *minimum > 4096 ? *minimum : 4096;  // no read-modify-write of a page or sector
  *maximum = 32 * 1024 * 1024;                     // nbdkit's own limit for a single request
  return 0;
}

int vvm_can_write(void* handle) { return as_pack(handle)->writable() ? 1 : 0; }
int vvm_can_flush(void* /*handle*/) { return 1; }
int vvm_can_fua(void* /*handle*/) { return NBDKIT_FUA_NATIVE; }
// One fd per connection, flushed with fdatasync, which covers every fd of the file.
int vvm_can_multi_conn(void* /*handle*/) { return 1; }
int vvm_can_trim(void* handle) { return as_pack(handle)->writable() ? 1 : 0; }
int vvm_can_zero(void* handle) { return as_pack(handle)->writable() ? 1 : 0; }
// Honest: a fast zero is refused at once (EOPNOTSUPP) when only writing zeroes would do, by us or
// by the kernel (see PackExport::zero).
int vvm_can_fast_zero(void* handle) { return as_pack(handle)->writable() ? 1 : 0; }
// SEEK_DATA/SEEK_HOLE on files; a block device is all data, which nbdkit reports by itself.
int vvm_can_extents(void* handle) { return as_pack(handle)->block_device() ? 0 : 1; }
int vvm_can_cache(void* /*handle*/) { return NBDKIT_CACHE_NATIVE; }

// --- data ---

// Called first in every data callback: a connection takes its hold on the pack at its first data
// command (holds are lazy: NBD_OPT_INFO opens and closes every export and must not take one).
// Returns 0, or -1 with EPERM when the pack's mode says no (NBD has no EBUSY; nbdkit would send
// EINVAL for it); the reason, naming the pack and its holder, goes to the log once a connection.
int begin_io(void* handle) {
  bool newly_refused = false;
  const Status& hold = as_conn(handle)->ensure_hold(&newly_refused);
  if (hold.ok()) return 0;
  if (newly_refused) {
    nbdkit_error("%s", hold.message().c_str());
  } else {
    nbdkit_debug("%s", hold.message().c_str());
  }
  nbdkit_set_error(EPERM);
  errno = EPERM;
  return -1;
}

int vvm_pread(void* handle, void* buf, uint32_t count, uint64_t offset, uint32_t /*flags*/) {
  return guarded("pread", -1, [&] {
    if (begin_io(handle) == -1) return -1;
    return io_result(as_pack(handle)->read(buf, count, offset));
  });
}

int vvm_pwrite(void* handle, const void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  return guarded("pwrite", -1, [&] {
    if (begin_io(handle) == -1) return -1;
    return io_result(as_pack(handle)->write(buf, count, offset, (flags & NBDKIT_FLAG_FUA) != 0));
  });
}

int vvm_flush(void* handle, uint32_t /*flags*/) {
  return guarded("flush", -1, [&] {
    if (begin_io(handle) == -1) return -1;
    return io_result(as_pack(handle)->flush());
  });
}

int vvm_trim(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  return guarded("trim", -1, [&] {
    if (begin_io(handle) == -1) return -1;
    return io_result(as_pack(handle)->trim(count, offset, (flags & NBDKIT_FLAG_FUA) != 0));
  });
}

int vvm_zero(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  return guarded("zero", -1, [&] {
    if (begin_io(handle) == -1) return -1;
    IoStatus done =
        as_pack(handle)->zero(count, offset, (flags & NBDKIT_FLAG_MAY_TRIM) != 0,
                              (flags & NBDKIT_FLAG_FAST_ZERO) != 0, (flags & NBDKIT_FLAG_FUA) != 0);
    if (done.err() == EOPNOTSUPP) {
      // Not an error to log: nbdkit writes zeroes itself, or tells a fast-zero client no.
      nbdkit_debug("%s", done.status().message().c_str());
      nbdkit_set_error(EOPNOTSUPP);
      errno = EOPNOTSUPP;
      return -1;
    }
    return io_result(done);
  });
}

int vvm_extents(void* handle, uint32_t count, uint64_t offset, uint32_t flags,
                struct nbdkit_extents* extents) {
  return guarded("extents", -1, [&] {
    if (begin_io(handle) == -1) return -1;
    bool added_all = true;
    IoStatus done = as_pack(handle)->extents(
        count, offset, (flags & NBDKIT_FLAG_REQ_ONE) != 0, [&](const PackExport::Extent& e) {
          const uint32_t type = e.hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0;
          added_all = nbdkit_add_extent(extents, e.offset, e.length, type) == 0;
          return added_all;
        });
    if (!added_all) return -1;  // nbdkit_add_extent reported it
    return io_result(done);
  });
}

int vvm_cache(void* handle, uint32_t count, uint64_t offset, uint32_t /*flags*/) {
  return guarded("cache", -1, [&] {
    if (begin_io(handle) == -1) return -1;
    return io_result(as_pack(handle)->cache(count, offset));
  });
}

constexpr const char kConfigHelp[] =
    "packtab=PATH   The pack table to serve: one pack a line,\n"
    "               NAME BACKING OFFSET SIZE MODE OWNER GROUP PERMS.\n"
    "conf=PATH      vvm.conf; its [plugin] packtab names the pack table.\n"
    "holds=DIR      Where holders of packs are recorded, for messages and\n"
    "               vvctl pack ls (default: STATE_DIR/holds with conf=, else\n"
    "               /run/vvm/holds).\n"
    "Give exactly one of them. Exports: pack/NAME (the table's mode) and\n"
    "pack/NAME@ro (read-only); there is no default export.";

nbdkit_plugin make_plugin() {
  nbdkit_plugin p{};  // every callback not set here is absent
  p.name = "vvm";
  p.longname = "vvm virtual disks (packs)";
  p.version = VVM_VERSION;
  p.description = "Serves the packs of a vvm pack table, each as NBD exports pack/NAME[@ro].";
  p.unload = vvm_unload;
  p.config = vvm_config;
  p.config_complete = vvm_config_complete;
  p.config_help = kConfigHelp;
  p.magic_config_key = "packtab";
  p.list_exports = vvm_list_exports;
  p.default_export = vvm_default_export;
  p.open = vvm_open;
  p.close = vvm_close;
  p.export_description = vvm_export_description;
  p.get_size = vvm_get_size;
  p.block_size = vvm_block_size;
  p.can_write = vvm_can_write;
  p.can_flush = vvm_can_flush;
  p.can_fua = vvm_can_fua;
  p.can_multi_conn = vvm_can_multi_conn;
  p.can_trim = vvm_can_trim;
  p.can_zero = vvm_can_zero;
  p.can_fast_zero = vvm_can_fast_zero;
  p.can_extents = vvm_can_extents;
  p.can_cache = vvm_can_cache;
  p.pread = vvm_pread;
  p.pwrite = vvm_pwrite;
  p.flush = vvm_flush;
  p.trim = vvm_trim;
  p.zero = vvm_zero;
  p.extents = vvm_extents;
  p.cache = vvm_cache;
  return p;
}

}  // namespace
}  // namespace vvm::plugin

static nbdkit_plugin plugin = vvm::plugin::make_plugin();
NBDKIT_REGISTER_PLUGIN(plugin)
