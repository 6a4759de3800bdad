// vvm_plugin.cc: the nbdkit plugin's C boundary (nbdkit plugin API v2).
//
// Turns nbdkit callbacks into calls on the pack catalog (pack_catalog.h), vvmd for the virtual
// volumes (vv_client.h, vv_export.h) and the per-connection data path (pack_export.h). No
// exception leaves a callback: each is caught, reported with nbdkit_error and returned to nbdkit
// as -1 (or NULL) with an errno set.
//
//   nbdkit vvm packtab=/etc/vvm/packtab      or      nbdkit vvm conf=/etc/vvm/vvm.conf
//
// With conf= the plugin also serves vv/NAME, every VV that vvmd (vvm.conf's first [vvmd] listen)
// knows. When vvm.conf has a [cluster] section naming this node, the packs come from etcd instead
// of a packtab (cluster_catalog.h): the node joins the cluster in .after_fork (nbdkit forks when
// it daemonizes, and threads do not survive a fork) and serves the packs mapped to it.
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>
#include <nbdkit-version.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <fmt/core.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "catalog_source.h"
#include "cluster_catalog.h"
#include "cluster_holds.h"
#include "common/config.h"
#include "common/status.h"
#include "connection.h"
#include "fd_budget.h"
#include "forward/forward_table.h"
#include "forward/forwarder.h"
#include "local_failover.h"
#include "pack_access.h"
#include "pack_catalog.h"
#include "pack_export.h"
#include "pack_holds.h"
#include "reconf_gate.h"
#include "tls_listener.h"
#include "vv_client.h"
#include "vv_export.h"

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
// tls-identity=NAME: every peer of this listener is vvm.conf's [identity NAME], which
// .config_complete checks nbdkit's own TLS options for (tls_listener.h).
std::string g_tls_identity_name;
std::optional<TlsIdentity> g_tls_identity;
// Built by .config_complete. The pointer never changes afterwards; the catalog it hands out is
// swapped under its own lock when the packtab changes, so the parallel callbacks share it.
std::unique_ptr<CatalogSource> g_catalog;
// Cluster mode: vvm.conf, kept by .config_complete for .after_fork, which joins the cluster and
// feeds g_catalog from the mappings in etcd.
std::optional<Config> g_cluster_config;
std::unique_ptr<ClusterCatalog> g_cluster;
// Cluster mode: the gate of reconfigurations (every pack request passes it) and the exclusive
// holds kept in etcd.
std::unique_ptr<ReconfGate> g_gate;
std::unique_ptr<ClusterHolds> g_cluster_holds;
// vvmd, for the vv/NAME exports; conf= only, and only when vvm.conf gives vvmd a listen address.
std::unique_ptr<VvmdLink> g_vvmd;
// New connections are refused while nbdkit is near its descriptor limit (fd_budget.h).
std::unique_ptr<FdBudget> g_fd_budget;
std::chrono::milliseconds g_stage_timeout{600'000};
std::string g_host_name;  // where a Unix-socket client is, for vvmd's one-writer-host rule
// What a pack request answers when its backing fails: path-failure=eio (alone) or nak (another
// server reaches the disk). Until the cluster mapping says per pack, one choice for every pack.
PathFailure g_path_failure = PathFailure::kEio;

// What a local pack's request answers when its backing fails: in cluster mode, the NAK when
// another node serves the pack too (a forwarding node then goes there), else EIO.
PathFailure path_failure_of(const std::string& pack) {
  if (g_cluster) return g_cluster->has_alternate(pack) ? PathFailure::kNak : PathFailure::kEio;
  return g_path_failure;
}

// nbdkit 1.32.4 to 1.33.9 abort ("raw_send_socket: Assertion `sock >= 0' failed") when a client
// hangs up while two worker threads of its connection hold replies: the first send fails and
// closes the socket, the second asserts. Every other client loses its disk with it. Handling
// each connection's requests one after another (NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS, which
// nbdkit serves with no worker threads) leaves no second reply; connections still run in
// parallel. parallel=auto, the default, does so when built against such an nbdkit. (Not
// "serialize=": nbdkit's noparallel filter takes that key before the plugin would see it.)
constexpr bool kNbdkitAbortsOnHangup =
    NBDKIT_VERSION_MAJOR == 1 && ((NBDKIT_VERSION_MINOR == 32 && NBDKIT_VERSION_MICRO >= 4) ||
                                  (NBDKIT_VERSION_MINOR == 33 && NBDKIT_VERSION_MICRO < 10));
bool g_serialize = kNbdkitAbortsOnHangup;  // parallel=no

// The packs whose path to the disk has failed: the failure is logged as an error once a pack,
// then only in the debug log (a client retrying elsewhere would fill the log otherwise).
class PathsDown {
 public:
  bool first(const std::string& pack) {
    const std::lock_guard lock(mutex_);
    return packs_.insert(pack).second;
  }

 private:
  std::mutex mutex_;
  std::set<std::string> packs_;
};
PathsDown g_paths_down;
// The packs this node forwards to other servers (forward=, forward-pool=): test-only until the
// cluster mapping provides them.
forward::ForwardTable g_forward;

// Cluster mode: the other node of each pack served from this node's disk, where this node's own
// clients' requests go while its path to the disk is down (cluster_catalog.h's fallbacks), and,
// for a pack with a pool, whenever another server of the pool is less loaded than this node.
forward::ForwardTable g_fallback;

// The pool packs whose forwarder to the other servers a client's request would have weighed
// had it been open: the catalog's tick opens them, asked to run at once (tick_soon), on its own
// thread, for connecting may take seconds (a paused peer) and a request must never wait for it.
class PoolOpens {
 public:
  // True when `pack` was not wanted yet (the tick is to be asked for).
  bool want(const std::string& pack) {
    const std::lock_guard lock(mutex_);
    return packs_.insert(pack).second;
  }
  std::set<std::string> take() {
    const std::lock_guard lock(mutex_);
    return std::exchange(packs_, {});
  }

 private:
  std::mutex mutex_;
  std::set<std::string> packs_;
};
PoolOpens g_pool_opens;

// Cluster mode: the durability bookkeeping of each pack served from this node's disk, shared by
// its connections (local_failover.h).
class LocalFailovers {
 public:
  std::shared_ptr<LocalFailover> of(const std::string& pack) {
    const std::lock_guard lock(mutex_);
    std::shared_ptr<LocalFailover>& f = packs_[pack];
    if (!f) f = std::make_shared<LocalFailover>();
    return f;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<LocalFailover>> packs_;
};
LocalFailovers g_local_failovers;
// The packs whose clients have gone to their other node: said once a pack.
PathsDown g_failed_over;
// The packs whose clients' requests went to their other servers while this node was fenced:
// said once a pack and incarnation ("NAME INCARNATION").
PathsDown g_fenced_sent;

// What an NBD connection's handle holds: a pack connection or a VV connection.
struct Handle {
  std::unique_ptr<Connection> pack;
  std::unique_ptr<VvConnection> vv;
  // A forwarded pack: the pack's forwarder, shared by all its connections.
  std::shared_ptr<forward::Forwarder> fwd;
  bool fwd_writable = false;
  std::string fwd_description;
  // Cluster mode: a forwarded pack's client holds it here, and cluster-wide for an exclusive
  // pack, as a client of the serving node would (the serving node sees only this node).
  std::unique_ptr<LazyHold> fwd_hold;
  bool listing = false;  // opened after NBD_OPT_LIST on its connection: a listing's look
  // Cluster mode: the pack, and the gate's generation of it when the connection opened.
  std::string gate_pack;
  uint64_t gate_generation = 0;
  std::string gate_placement;  // where this node serves it from ("" when forwarded)
  // Cluster mode, a pack served from this node's disk to a client of this node (not another
  // node's connection): its bookkeeping for sending requests to the pack's other node.
  std::shared_ptr<LocalFailover> failover;
  // A local pack's forwarders to its other servers (the pool's, by load, or the other node's
  // while the path here is down) that requests of this connection went through, held while the
  // connection lasts, as a forwarded pack's connection holds its own: their replay buffers keep
  // its unflushed writes, server by server, for the client's flush (which flushes only the
  // servers holding some), rather than losing them with an idle forwarder
  // (ForwardTable::close_idle). Usually one; another when the table opened a new one.
  std::mutex peers_m;
  std::vector<std::shared_ptr<forward::Forwarder>> peers;
  void hold_peer(const std::shared_ptr<forward::Forwarder>& f) {
    const std::lock_guard lock(peers_m);
    if (std::find(peers.begin(), peers.end(), f) == peers.end()) peers.push_back(f);
  }
  // Cluster mode: the node's incarnation when the connection opened (ClusterCatalog): one
  // opened before the node last rejoined the cluster was opened under an old mapping.
  uint64_t incarnation = 0;
  // Cluster mode: another node's connection (pack/NAME@local), carrying its clients' requests.
  bool from_node = false;
  // A write, trim or zero of this connection succeeded (wrote()).
  std::atomic<bool> wrote_any{false};
};

// Whether this NBD connection asked for the list of exports. nbdkit negotiates each connection
// (.list_exports, .open, and .close at the end) on a thread of the connection's own, so a
// thread-local flag is the connection's.
thread_local bool t_listed_exports = false;

// Tells vvmd that a VV connection is done with it; a failure is only logged.
void close_vv(Handle& h) {
  if (!h.vv) return;
  if (Status s = h.vv->close(); !s.ok()) nbdkit_error("%s", s.message().c_str());
}

// A client that finds a VV read-only when it wants to write it (qemu-io without -r) says only
// "Permission denied" and goes away without a request: NBD has no way for the server to say why,
// and a write it sends anyway is refused by nbdkit before the plugin sees it. The log says why
// instead, when the connection ends without a request; a listing's look at each export is not
// such a client, and neither is a reader, whose first read opens the VV.
void explain_read_only(const Handle& h) {
  if (!h.vv || h.listing || h.vv->used() || h.vv->read_only_reason().empty()) return;
  nbdkit_error("%s", read_only_note(h.vv->export_name(), h.vv->read_only_reason()).c_str());
}

// The handles of open connections. nbdkit 1.32 skips .close for connections still open when it
// quits (free_connection in server/connections.c), but calls .unload once every connection
// thread has ended: owning the handles here lets .unload release them.
class OpenHandles {
 public:
  Handle* add(std::unique_ptr<Handle> handle) {
    Handle* raw = handle.get();
    const std::lock_guard lock(mutex_);
    handles_.emplace(raw, std::move(handle));
    return raw;
  }
  void close(Handle* handle) {
    std::unique_ptr<Handle> closing;  // closed (hold ended, VV_CLOSE sent) outside the lock
    {
      const std::lock_guard lock(mutex_);
      if (auto it = handles_.find(handle); it != handles_.end()) {
        closing = std::move(it->second);
        handles_.erase(it);
      }
    }
    if (closing) {
      explain_read_only(*closing);
      close_vv(*closing);
    }
  }
  void close_all() {
    std::unordered_map<Handle*, std::unique_ptr<Handle>> closing;
    {
      const std::lock_guard lock(mutex_);
      closing.swap(handles_);
    }
    for (auto& [raw, handle] : closing) close_vv(*handle);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<Handle*, std::unique_ptr<Handle>> handles_;
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
  if (status.err() == ESHUTDOWN) {
    // The NAK of a failed path (pack_export.h): an error once a pack, then debug lines.
    const std::string& what = status.status().message();
    const std::string pack = what.substr(0, what.find(':'));
    if (g_paths_down.first(pack)) {
      nbdkit_error("%s", what.c_str());
    } else {
      nbdkit_debug("%s", what.c_str());
    }
    nbdkit_set_error(ESHUTDOWN);
    errno = ESHUTDOWN;
    return -1;
  }
  fail(status.err(), status.status().message());
  return -1;
}

Handle* as_handle(void* handle) { return static_cast<Handle*>(handle); }

// io_result for a request served from this node's disk. In cluster mode a failed backing (EIO,
// or its NAK) is also a path failure for the cluster to record (cluster_catalog.h).
int pack_result(void* handle, const IoStatus& status) {
  if (!status.ok() && g_cluster && as_handle(handle)->pack &&
      (status.err() == EIO || status.err() == ESHUTDOWN)) {
    g_cluster->path_failed(as_handle(handle)->pack->pack().info().pack.name,
                           status.status().message());
  }
  return io_result(status);
}

// A TCP peer's numeric address ("127.0.0.1", an IPv4-mapped IPv6 address as IPv4).
Result<std::string> peer_host(const sockaddr_storage& ss, socklen_t len) {
  char host[NI_MAXHOST] = {};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&ss), len, host, sizeof host, nullptr, 0,
                    NI_NUMERICHOST) != 0) {
    return Status::PermissionDenied("cannot tell the client's address");
  }
  std::string h = host;
  if (h.starts_with("::ffff:") && h.find('.') != std::string::npos) h = h.substr(7);
  return h;
}

// With tls-identity=: the connection must be TLS, which nbdkit --tls=require already makes
// sure of, and --tls=on leaves to this check, which names the export and the reason in the log
// (an identity taken from a plaintext peer would be a guess). Then the TCP address must pass
// allow-host, as any TCP peer's; `*host` is set to it.
Status admit_identity(const std::string& export_name, const sockaddr_storage* ss, socklen_t len,
                      std::string* host) {
  if (!nbdkit_is_tls()) {
    return Status::PermissionDenied(
        fmt::format("{}: refused: this listener serves [identity {}] to TLS clients only "
                    "(tls-identity={}), and this client did not negotiate TLS",
                    export_name, g_tls_identity->name, g_tls_identity->name));
  }
  if (ss == nullptr || ss->ss_family == AF_UNIX) return Status::Ok();
  Result<std::string> h = peer_host(*ss, len);
  if (!h.ok()) return h.status();
  if (g_tcp_policy) {
    VVM_RETURN_IF_ERROR(
        check_host_access(*g_tcp_policy, reinterpret_cast<const sockaddr*>(ss), *h));
  }
  *host = *h;
  return Status::Ok();
}

// Checks that the client may open `entry` as `writable` says, and returns who it is, for holds:
// "uid N" on a Unix socket, "host ADDRESS" over TCP, "identity NAME" on a tls-identity= listener
// (wherever its clients are: an identity holds a pack, not a host).
Result<std::string> admit_peer(const PackEntry& entry, bool writable) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  const bool known = nbdkit_peer_name(reinterpret_cast<sockaddr*>(&ss), &len) == 0;
  if (g_tls_identity) {
    std::string host;
    VVM_RETURN_IF_ERROR(
        admit_identity(std::string(kPackPrefix) + entry.name, known ? &ss : nullptr, len, &host));
    const TlsIdentity& id = *g_tls_identity;
    VVM_RETURN_IF_ERROR(
        check_local_access(entry, writable, LocalPeer{id.uid, id.gid, id.groups}, id.describe()));
    return "identity " + id.name;
  }
  if (!known) return std::string("unknown peer");  // nbdkit -s: whoever started nbdkit
  if (ss.ss_family == AF_UNIX) {
    const int64_t uid = nbdkit_peer_uid(), gid = nbdkit_peer_gid(), pid = nbdkit_peer_pid();
    if (uid < 0 || gid < 0) return Status::PermissionDenied("cannot tell who the client is");
    LocalPeer peer{static_cast<uid_t>(uid), static_cast<gid_t>(gid),
                   pid > 0 ? process_groups(static_cast<pid_t>(pid)) : std::vector<gid_t>{}};
    VVM_RETURN_IF_ERROR(check_local_access(entry, writable, peer));
    return "uid " + std::to_string(uid);
  }
  Result<std::string> h = peer_host(ss, len);
  if (!h.ok()) return h.status();
  if (g_tcp_policy) {
    VVM_RETURN_IF_ERROR(check_host_access(*g_tcp_policy, reinterpret_cast<sockaddr*>(&ss), *h));
  }
  return "host " + *h;
}

// Cluster mode, pack/NAME@local: the peer must be a node, for the name bypasses the mapping's
// permissions and the cluster-wide holds, which the node the client is attached to has checked
// (a node's forwarder connects from its advertised host: forward/forwarder.h). A node is known by
// its address: the advertised host of a live member (its key in etcd); it must also pass
// allow-host, as any TCP peer. Returns who it is for this node's own holds, "node NAME (host
// ADDRESS)", for the log. Anyone able to
// send from a node's address passes: on a host of several nodes or of untrusted users, a private
// network between the nodes, or TLS, is what keeps them out.
Result<std::string> admit_node(const char* export_name) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  auto refused = [&](const std::string& why) {
    return Status::PermissionDenied(
        fmt::format("{}: refused: {}; this name is for the cluster's nodes only (a client opens "
                    "{})",
                    export_name, why,
                    std::string_view(export_name)
                        .substr(0, std::string_view(export_name).size() - kLocalSuffix.size())));
  };
  if (nbdkit_peer_name(reinterpret_cast<sockaddr*>(&ss), &len) != 0 || ss.ss_family == AF_UNIX) {
    return refused("the client is not on TCP, and nodes reach each other over TCP");
  }
  Result<std::string> h = peer_host(ss, len);
  if (!h.ok()) return h.status();
  if (g_tcp_policy) {
    VVM_RETURN_IF_ERROR(check_host_access(*g_tcp_policy, reinterpret_cast<sockaddr*>(&ss), *h));
  }
  const std::string node = g_cluster->node_at(*h);
  if (node.empty()) {
    return refused(
        fmt::format("{} is not the advertised address of any live node (no key under "
                    "{} advertises it)",
                    *h, cluster::node_prefix(g_cluster_config->cluster->prefix)));
  }
  return fmt::format("node {} (host {})", node, *h);
}

// The NBD peer as vvmd needs it for VV_OPEN: a Unix peer's uid, gid and groups (on this host),
// a tls-identity= listener's identity (its user and groups, from the client's address), or a
// TCP peer's address once it has passed vvm.conf's allow-host.
Result<rpc::VvOpenRequest> vv_peer(const std::string& vv, bool writable) {
  rpc::VvOpenRequest r;
  r.name = vv;
  r.writable = writable;
  r.host = g_host_name;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  const bool known = nbdkit_peer_name(reinterpret_cast<sockaddr*>(&ss), &len) == 0;
  if (g_tls_identity) {
    std::string host;
    VVM_RETURN_IF_ERROR(
        admit_identity(std::string(kVvPrefix) + vv, known ? &ss : nullptr, len, &host));
    const TlsIdentity& id = *g_tls_identity;
    r.uid = id.uid;
    r.gid = id.gid;
    r.groups.assign(id.groups.begin(), id.groups.end());
    if (r.groups.size() > rpc::kMaxGroups) r.groups.resize(rpc::kMaxGroups);
    if (!host.empty()) r.host = host;  // one writer host at a time, as for any client
    return r;
  }
  if (!known) {
    // nbdkit -s: the client is whoever started nbdkit.
    r.uid = ::getuid();
    r.gid = ::getgid();
    return r;
  }
  if (ss.ss_family == AF_UNIX) {
    const int64_t uid = nbdkit_peer_uid(), gid = nbdkit_peer_gid(), pid = nbdkit_peer_pid();
    if (uid < 0 || gid < 0) return Status::PermissionDenied("cannot tell who the client is");
    r.uid = static_cast<uint32_t>(uid);
    r.gid = static_cast<uint32_t>(gid);
    if (pid > 0) {
      for (gid_t g : process_groups(static_cast<pid_t>(pid))) r.groups.push_back(g);
      if (r.groups.size() > rpc::kMaxGroups) r.groups.resize(rpc::kMaxGroups);
    }
    return r;
  }
  Result<std::string> h = peer_host(ss, len);
  if (!h.ok()) return h.status();
  if (g_tcp_policy) {
    VVM_RETURN_IF_ERROR(check_host_access(*g_tcp_policy, reinterpret_cast<sockaddr*>(&ss), *h));
  }
  r.tcp = true;
  r.host = *h;
  return r;
}

// --- configuration ---

int vvm_config(const char* key, const char* value) {
  return guarded("config", -1, [&] {
    const std::string_view k(key);
    std::string* target = k == "packtab" ? &g_packtab_path
                          : k == "conf"  ? &g_conf_path
                          : k == "holds" ? &g_holds_dir
                                         : nullptr;
    if (k == "tls-identity") {
      if (!g_tls_identity_name.empty()) {
        fail(EINVAL, "tls-identity= given twice");
        return -1;
      }
      if (*value == '\0') {
        fail(EINVAL, "tls-identity= is empty: give the name of an [identity NAME] of vvm.conf");
        return -1;
      }
      g_tls_identity_name = value;
      return 0;
    }
    if (k == "forward" || k == "forward-pool") {
      Result<forward::ForwardEntry> e = forward::parse_forward(value, k == "forward-pool");
      Status added = e.ok() ? g_forward.add(std::move(*e)) : e.status();
      if (!added.ok()) {
        fail(added);
        return -1;
      }
      return 0;
    }
    if (k == "path-failure") {
      const std::string_view v(value);
      if (v != "eio" && v != "nak") {
        fail(EINVAL, "path-failure=" + std::string(v) + ": give eio or nak");
        return -1;
      }
      g_path_failure = v == "nak" ? PathFailure::kNak : PathFailure::kEio;
      return 0;
    }
    if (k == "parallel") {
      const std::string_view v(value);
      if (v != "auto" && v != "yes" && v != "no") {
        fail(EINVAL, "parallel=" + std::string(v) + ": give auto, yes or no");
        return -1;
      }
      g_serialize = v == "auto" ? kNbdkitAbortsOnHangup : v == "no";
      return 0;
    }
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

// tls-identity=NAME: vvm.conf's [identity NAME], once nbdkit's own options show that every peer
// of this listener is that identity (tls_listener.h).
Status tls_identity(const Config& config) {
  auto it = config.identities.find(g_tls_identity_name);
  if (it == config.identities.end()) {
    std::string known;
    for (const auto& [name, id] : config.identities) known += (known.empty() ? "" : ", ") + name;
    return Status::InvalidArgument(
        fmt::format("tls-identity={}: {} has no [identity {}] (it has: {})", g_tls_identity_name,
                    config.path, g_tls_identity_name, known.empty() ? "none" : known));
  }
  Result<std::vector<std::string>> argv = own_command_line();
  if (!argv.ok()) return argv.status();
  Result<NbdkitTls> tls = parse_nbdkit_tls(*argv);
  if (!tls.ok()) return tls.status();
  VVM_RETURN_IF_ERROR(check_identity_listener(*tls, it->second, config));
  g_tls_identity = it->second;
  nbdkit_debug("every TLS peer of this listener is %s (tls-identity=%s)",
               g_tls_identity->describe().c_str(), g_tls_identity->name.c_str());
  return Status::Ok();
}

int vvm_config_complete() {
  return guarded("config_complete", -1, [] {
    if (!g_tls_identity_name.empty() && g_conf_path.empty()) {
      fail(EINVAL, "tls-identity= needs conf=PATH: the identity is an [identity NAME] of vvm.conf");
      return -1;
    }
    if (g_packtab_path.empty() && g_conf_path.empty() && !g_forward.empty()) {
      // A node that only forwards: no pack of its own.
    } else if (g_packtab_path.empty() == g_conf_path.empty()) {
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
      if (!g_tls_identity_name.empty()) {
        Status listener = tls_identity(*config);
        if (!listener.ok()) {
          fail(listener);
          return -1;
        }
      }
      if (!config->vvmd_listen.empty()) {
        g_vvmd = std::make_unique<VvmdLink>(config->vvmd_listen.front(),
                                            std::chrono::milliseconds(config->request_timeout));
        g_stage_timeout = std::chrono::milliseconds(config->stage_timeout);
        g_host_name = local_host_name();
        nbdkit_debug("virtual volumes from vvmd at %s, stage timeout %llds",
                     g_vvmd->endpoint().to_string().c_str(),
                     static_cast<long long>(config->stage_timeout.count()));
      }
      if (g_holds_dir.empty()) g_holds_dir = config->state_dir + "/holds";
      if (config->cluster && !config->cluster->node.empty()) {
        if (!packtab.empty()) {
          fail(EINVAL, config->path +
                           ": [plugin] packtab and [cluster] node are both given: a cluster node "
                           "serves the packs mapped to it in etcd (seed them with 'vvctl cluster "
                           "import PACKTAB')");
          return -1;
        }
        g_cluster_config = std::move(*config);
      }
    }
    if (g_cluster_config) {
      g_catalog = CatalogSource::published();  // filled by .after_fork
    } else {
      Result<std::unique_ptr<CatalogSource>> catalog = CatalogSource::open(packtab);
      if (!catalog.ok()) {
        fail(catalog.status());
        return -1;
      }
      g_catalog = std::move(*catalog);
    }
    if (g_holds_dir.empty()) g_holds_dir = "/run/vvm/holds";
    g_holds = std::make_unique<HoldRegistry>(g_holds_dir);
    raise_fd_limit_quietly();
    g_fd_budget = std::make_unique<FdBudget>();
    nbdkit_debug("up to %zu file descriptors; new connections refused with fewer than %zu free",
                 g_fd_budget->limit(), g_fd_budget->reserve());
    nbdkit_debug("holds recorded in %s", g_holds_dir.c_str());
    if (!g_cluster_config) {
      nbdkit_debug("serving %zu exports from %s", g_catalog->current().catalog->exports().size(),
                   packtab.empty() ? "(no pack table)" : packtab.c_str());
    }
    return 0;
  });
}

// How long a forwarder with no client and no request keeps its connections to its servers.
constexpr std::chrono::milliseconds kIdlePeerConnections{2'000};

// A forwarder's events (a server down, up, replayed on): once an event, as errors.
void log_forward_event(const std::string& what) { nbdkit_error("%s", what.c_str()); }

// The cluster's routes as the forward table's entries.
std::vector<forward::ForwardEntry> forward_entries(const std::vector<Route>& routes) {
  std::vector<forward::ForwardEntry> out;
  for (const Route& r : routes) {
    forward::ForwardEntry e;
    e.pack = r.pack;
    e.pool = r.pool;
    e.description = "pack " + r.pack + ", forwarded to " + (r.pool ? "the pool " : "");
    for (size_t i = 0; i < r.servers.size(); ++i) {
      e.servers.push_back({r.servers[i].uri});
      e.down.push_back(r.servers[i].down);
      e.description += (i ? ", " : "") + r.servers[i].node;
    }
    e.description += fmt::format(" (epoch {})", r.epoch);
    out.push_back(std::move(e));
  }
  return out;
}

// Cluster mode: join the cluster and serve every mapped pack, from this node's disks or by
// forwarding. A node that cannot join (its name is held by another, etcd is down) does not start.
int vvm_after_fork() {
  return guarded("after_fork", -1, [] {
    if (!g_cluster_config) return 0;
    ClusterCatalog::Hooks hooks;
    hooks.log = [](bool error, const std::string& message) {
      if (error) {
        nbdkit_error("%s", message.c_str());
      } else {
        nbdkit_debug("%s", message.c_str());
      }
    };
    hooks.routes = [](const std::vector<Route>& routes) {
      g_forward.replace(forward_entries(routes), log_forward_event);
    };
    hooks.fallbacks = [](const std::vector<Route>& routes) {
      g_fallback.replace(forward_entries(routes), log_forward_event);
    };
    hooks.rejoined = [](int64_t lease) {
      if (g_holds) g_holds->rejoined(lease);
    };
    hooks.tick = [] {
      g_forward.retry_up(log_forward_event);
      g_fallback.retry_up(log_forward_event);
      // The pool packs whose own clients' requests want the other servers (less_loaded_peers).
      for (const std::string& pack : g_pool_opens.take()) {
        auto f = g_fallback.forwarder(pack, log_forward_event);
        if (f.ok()) {
          nbdkit_debug("pack/%s: its pool's other servers are connected, for requests by load",
                       pack.c_str());
        } else {
          nbdkit_debug("%s", f.status().message().c_str());
        }
      }
      // No idle connection kept to a peer, which would keep it from stopping (close_idle).
      auto debug = [](const std::string& what) { nbdkit_debug("%s", what.c_str()); };
      g_forward.close_idle(kIdlePeerConnections, debug);
      g_fallback.close_idle(kIdlePeerConnections, debug);
    };
    // Other nodes know this one by its address (admit_node): connect from it.
    g_forward.set_source(ClusterCatalog::advertised_host(g_cluster_config->cluster->advertise));
    g_fallback.set_source(ClusterCatalog::advertised_host(g_cluster_config->cluster->advertise));
    auto cluster = ClusterCatalog::start(*g_cluster_config, g_catalog.get(), std::move(hooks));
    if (!cluster.ok()) {
      fail(cluster.status());
      return -1;
    }
    g_cluster = std::move(*cluster);
    const ClusterConfig& c = *g_cluster_config->cluster;
    auto etcd = cluster::etcd_options(*g_cluster_config);
    if (!etcd.ok()) {
      fail(etcd.status());
      return -1;
    }
    ClusterHolds::Options holds_options{*etcd, c.prefix, c.node, g_cluster->lease_id(), {}, {}};
    holds_options.resync_every = std::chrono::seconds(1);
    holds_options.log = [](bool error, const std::string& message) {
      if (error) {
        nbdkit_error("%s", message.c_str());
      } else {
        nbdkit_debug("%s", message.c_str());
      }
    };
    auto holds = ClusterHolds::create(std::move(holds_options));
    if (!holds.ok()) {
      fail(holds.status());
      return -1;
    }
    g_cluster_holds = std::move(*holds);
    g_holds->set_cluster(g_cluster_holds.get());
    ReconfGate::Options gate;
    gate.etcd = *etcd;
    gate.prefix = c.prefix;
    gate.node = c.node;
    gate.catalog = g_catalog.get();
    gate.reload = [] { return g_cluster->reload_now(); };
    gate.log = [](bool error, const std::string& message) {
      if (error) {
        nbdkit_error("%s", message.c_str());
      } else {
        nbdkit_debug("%s", message.c_str());
      }
    };
    auto started = ReconfGate::start(std::move(gate));
    if (!started.ok()) {
      fail(started.status());
      return -1;
    }
    g_gate = std::move(*started);
    return 0;
  });
}

// The forwarded pack an export name (pack/NAME or pack/NAME@ro) names, or nullopt.
std::optional<forward::ForwardEntry> forwarded(std::string_view name) {
  if (!name.starts_with(kPackPrefix)) return std::nullopt;
  name.remove_prefix(kPackPrefix.size());
  if (name.ends_with(kReadOnlySuffix)) name.remove_suffix(kReadOnlySuffix.size());
  return g_forward.find(name);
}

std::string forward_description(const forward::ForwardEntry& e) {
  if (!e.description.empty()) return e.description;
  std::string d = "pack " + e.pack + ", forwarded to " + (e.pool ? "the pool " : "");
  for (size_t i = 0; i < e.servers.size(); ++i) d += (i ? ", " : "") + e.servers[i].uri;
  return d;
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
  g_forward.close_all();
  g_fallback.close_all();
  g_holds.reset();
  g_cluster_holds.reset();
  g_gate.reset();
  g_cluster.reset();  // leaves the cluster: the node key goes at once
  g_catalog.reset();
  g_vvmd.reset();
}

// .preconnect, on a tls-identity= listener: a debug line naming the client's address and port.
// nbdkit refuses some clients before the plugin hears of them (a failed TLS handshake, a
// plaintext client under --tls=require), and its line says only the connection's number
// ("vvm[7]: error: gnutls_handshake: ..."); this line, under the same number, says who it was.
int vvm_preconnect(int /*readonly*/) {
  return guarded("preconnect", -1, [] {
    if (!g_tls_identity) return 0;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST] = {}, port[NI_MAXSERV] = {};
    if (nbdkit_peer_name(reinterpret_cast<sockaddr*>(&ss), &len) == 0 && ss.ss_family != AF_UNIX &&
        ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, port, sizeof port,
                      NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
      nbdkit_debug("client %s port %s on the TLS listener of [identity %s]", host, port,
                   g_tls_identity->name.c_str());
    }
    return 0;
  });
}

// --- exports ---

// On a tls-identity= listener the list holds what the identity may open, and a plain TCP peer,
// which is its host, sees the VVs whose other bits let it read: a listing (nbdinfo --list opens
// every export it lists) then shows what the client may use rather than failing on the first
// it may not. Elsewhere every export is listed, as before.
bool may_list(const ExportInfo& e) {
  if (!g_tls_identity) return true;
  const TlsIdentity& id = *g_tls_identity;
  return check_local_access(e.pack, !e.read_only, LocalPeer{id.uid, id.gid, id.groups}).ok();
}
bool may_list(const Vv& vv, bool tcp_host) {
  if (!g_tls_identity) return !tcp_host || other_access(vv.perms).read;
  const TlsIdentity& id = *g_tls_identity;
  auto owner = resolve_user(vv.owner);
  auto group = resolve_group(vv.group);
  return local_access(owner.ok() ? *owner : static_cast<uid_t>(-1),
                      group.ok() ? *group : static_cast<gid_t>(-1), vv.perms,
                      LocalPeer{id.uid, id.gid, id.groups})
      .read;
}

int vvm_list_exports(int /*readonly*/, int is_tls, struct nbdkit_exports* exports) {
  return guarded("list_exports", -1, [&] {
    t_listed_exports = true;
    if (g_tls_identity && !is_tls) {  // nbdkit --tls=on: a plaintext client sees nothing
      fail(EPERM, fmt::format("export list: refused: this listener serves [identity {}] to TLS "
                              "clients only (tls-identity={}), and this client did not "
                              "negotiate TLS",
                              g_tls_identity->name, g_tls_identity->name));
      return -1;
    }
    std::shared_ptr<const PackCatalog> catalog = current_catalog();
    for (const ExportInfo& e : catalog->exports()) {
      if (!may_list(e)) continue;
      if (nbdkit_add_export(exports, e.name.c_str(), e.description.c_str()) == -1) return -1;
    }
    for (const forward::ForwardEntry& e : g_forward.entries()) {
      const std::string name = std::string(kPackPrefix) + e.pack;
      if (catalog->find(name).ok()) continue;  // served here: forwarded only when not local
      const std::string description = forward_description(e);
      if (nbdkit_add_export(exports, name.c_str(), description.c_str()) == -1) return -1;
      // Its read-only view too, as for the packs served here.
      const std::string ro = name + std::string(kReadOnlySuffix);
      if (nbdkit_add_export(exports, ro.c_str(), (description + ", read-only").c_str()) == -1) {
        return -1;
      }
    }
    if (!g_vvmd) return 0;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const bool tcp_host =
        nbdkit_peer_name(reinterpret_cast<sockaddr*>(&ss), &len) == 0 && ss.ss_family != AF_UNIX;
    // The packs are worth listing even when vvmd is down: say why the VVs are missing.
    Result<std::vector<Vv>> vvs = g_vvmd->list_all();
    if (!vvs.ok()) {
      nbdkit_error("listing the virtual volumes: %s", vvs.status().message().c_str());
      return 0;
    }
    for (const Vv& vv : *vvs) {
      if (!may_list(vv, tcp_host)) continue;
      const std::string name = std::string(kVvPrefix) + vv.name;
      if (nbdkit_add_export(exports, name.c_str(), vv_description(vv).c_str()) == -1) return -1;
    }
    return 0;
  });
}

// There is no default export: a client must name the pack it wants.
const char* vvm_default_export(int /*readonly*/, int /*is_tls*/) { return nullptr; }

// .open of vv/NAME: vvmd's probe decides (it registers nothing: listings open every export);
// the real open waits for the first data command (vv_export.h).
void* open_vv(std::string_view vv, bool readonly) {
  if (!g_vvmd) {
    fail(ENOENT, "unknown export 'vv/" + std::string(vv) +
                     "': virtual volumes are served only with conf= and a [vvmd] listen address");
    return nullptr;
  }
  Result<rpc::VvOpenRequest> peer = vv_peer(std::string(vv), !readonly);
  if (!peer.ok()) {
    fail(peer.status());
    return nullptr;
  }
  Result<rpc::VvOpenReply> probe = g_vvmd->probe(*peer);
  if (!probe.ok()) {
    fail(Status(probe.status().code(), "vv/" + std::string(vv) + ": " + probe.status().message()));
    return nullptr;
  }
  VvConnection::Waiting waiting;
  waiting.timeout = g_stage_timeout;
  waiting.sleep = [](std::chrono::milliseconds nap) {
    // Returns at once (-1) when nbdkit is shutting down or the client went away.
    return nbdkit_nanosleep(static_cast<unsigned>(nap.count() / 1000),
                            static_cast<unsigned>(nap.count() % 1000 * 1'000'000)) == 0;
  };
  waiting.note = [](const std::string& what) { nbdkit_error("%s", what.c_str()); };
  const std::string who = g_tls_identity ? g_tls_identity->describe()
                          : peer->tcp    ? "host " + peer->host
                                         : "uid " + std::to_string(peer->uid);
  auto handle = std::make_unique<Handle>();
  handle->listing = t_listed_exports;
  handle->vv = std::make_unique<VvConnection>(g_vvmd.get(), std::move(*peer), std::move(*probe),
                                              who, std::move(waiting));
  nbdkit_debug("open %s (%s) for %s", handle->vv->export_name().c_str(),
               handle->vv->writable() ? "read-write" : "read-only", who.c_str());
  return g_handles.add(std::move(handle));
}

// .open of a pack this node does not serve itself but forwards: the pack's forwarder (connected
// at its first open), read-only for pack/NAME@ro, for nbdkit -r, or when the servers are.
// `incarnation`: the node's when the connection opened (fenced_write).
void* open_forwarded(const forward::ForwardEntry& entry, bool read_only, uint64_t incarnation) {
  std::optional<std::pair<PackEntry, std::string>> hold;  // the mapping's pack, the client
  if (g_tls_identity && !nbdkit_is_tls()) {
    fail(EPERM, fmt::format("{}{}: refused: this listener serves [identity {}] to TLS clients only",
                            kPackPrefix, entry.pack, g_tls_identity->name));
    return nullptr;
  }
  // Cluster mode: the mapping's owner, group and mode bits, checked here, where the client is
  // known (the server node sees only this node).
  if (g_cluster) {
    std::optional<Route> route = g_cluster->route(entry.pack);
    Result<std::string> identity = route
                                       ? admit_peer(route->entry, !read_only)
                                       : Result<std::string>(Status::NotFound(fmt::format(
                                             "{}{} is no longer mapped", kPackPrefix, entry.pack)));
    if (!identity.ok()) {
      fail(identity.status());
      return nullptr;
    }
    hold.emplace(route->entry, *identity);
  }
  Result<std::shared_ptr<forward::Forwarder>> f =
      g_forward.forwarder(entry.pack, log_forward_event);
  if (!f.ok()) {
    fail(f.status());
    return nullptr;
  }
  auto handle = std::make_unique<Handle>();
  handle->fwd = std::move(*f);
  handle->fwd_writable = !read_only && handle->fwd->caps().can_write;
  handle->fwd_description = forward_description(entry);
  handle->incarnation = incarnation;
  if (hold) {
    handle->fwd_hold = std::make_unique<LazyHold>(
        hold->first, hold_kind_for(hold->first, handle->fwd_writable), hold->second, g_holds.get());
  }
  handle->gate_pack = entry.pack;
  if (g_gate) handle->gate_generation = g_gate->generation(entry.pack);
  nbdkit_debug("open %s%s, forwarded (%s)", (std::string(kPackPrefix) + entry.pack).c_str(),
               read_only ? "@ro" : "", handle->fwd_writable ? "read-write" : "read-only");
  return g_handles.add(std::move(handle));
}

void* vvm_open(int readonly) {
  return guarded<void*>("open", nullptr, [&]() -> void* {
    if (Status room = g_fd_budget->admit(); !room.ok()) {
      fail(room);
      return nullptr;
    }
    const char* name = nbdkit_export_name();
    if (name != nullptr && std::string_view(name).starts_with(kVvPrefix)) {
      return open_vv(std::string_view(name).substr(kVvPrefix.size()), readonly != 0);
    }
    std::string_view wanted = name != nullptr ? name : "";
    // Before the catalog is taken: a rejoin publishes the new catalog, then counts one more.
    const uint64_t incarnation = g_cluster ? g_cluster->incarnation() : 0;
    // Another node's connection (cluster_catalog.h): this node's own disk, never forwarded.
    const bool local_only = g_cluster && wanted.ends_with(kLocalSuffix);
    if (local_only) wanted.remove_suffix(kLocalSuffix.size());
    std::shared_ptr<const PackCatalog> catalog = current_catalog();
    Result<const ExportInfo*> info = catalog->find(wanted);
    if (!info.ok()) {
      std::optional<forward::ForwardEntry> e = local_only ? std::nullopt : forwarded(wanted);
      if (e) {
        return open_forwarded(*e, wanted.ends_with(kReadOnlySuffix) || readonly != 0, incarnation);
      }
      fail(local_only ? Status::NotFound(fmt::format("{}: not served from this node's disks (a "
                                                     "node-to-node name is never forwarded)",
                                                     name))
                      : info.status());
      return nullptr;
    }
    Result<std::unique_ptr<PackExport>> pack = PackExport::open(**info, readonly != 0);
    if (!pack.ok()) {
      fail(pack.status());
      return nullptr;
    }
    (*pack)->set_path_failure(path_failure_of((*info)->pack.name));
    Result<std::string> identity =
        local_only ? admit_node(name) : admit_peer((*info)->pack, (*pack)->writable());
    if (!identity.ok()) {
      fail(identity.status());
      return nullptr;
    }
    auto handle = std::make_unique<Handle>();
    handle->incarnation = incarnation;
    handle->from_node = local_only;
    handle->gate_pack = (*info)->pack.name;
    if (g_gate) handle->gate_generation = g_gate->generation(handle->gate_pack);
    handle->gate_placement = ReconfGate::placement_of((*info)->pack);
    handle->pack = std::make_unique<Connection>(std::move(*pack), *identity,
                                                local_only ? nullptr : g_holds.get());
    // Another node's connection is never sent on: its node goes to the other copy itself.
    if (g_cluster && !local_only) handle->failover = g_local_failovers.of((*info)->pack.name);
    nbdkit_debug("open %s (%s) for %s", (*info)->name.c_str(),
                 handle->pack->pack().writable() ? "read-write" : "read-only",
                 handle->pack->identity().c_str());
    return g_handles.add(std::move(handle));
  });
}

// A connection that wrote through a forwarder flushes it as it closes, before its hold ends. The
// forwarder keeps the writes its servers acknowledged without a flush, to write them again on
// another server if theirs dies; kept after their client has gone, they would be written again
// over newer data that another node's client wrote once this one's hold was released (a stale
// replay). NBD promises nothing of unflushed writes, so flushing them here costs a flush of each
// server still holding some, and changes no promise.
void flush_forwarded_writes(Handle& h) {
  if (!h.wrote_any.load(std::memory_order_relaxed)) return;
  std::vector<std::shared_ptr<forward::Forwarder>> used;
  if (h.fwd) used.push_back(h.fwd);
  {
    const std::lock_guard lock(h.peers_m);
    used.insert(used.end(), h.peers.begin(), h.peers.end());
  }
  for (auto& f : used) {
    IoStatus flushed = f->flush();  // asks only the servers holding unflushed writes
    if (!flushed.ok()) {
      nbdkit_error(
          "closing a connection that wrote: its forwarded writes could not be flushed "
          "(they may be lost): %s",
          flushed.status().message().c_str());
    }
  }
}

void vvm_close(void* handle) {
  guarded("close", 0, [&] {
    flush_forwarded_writes(*as_handle(handle));
    g_handles.close(as_handle(handle));
    return 0;
  });
}

// What nbdkit asks before any data command. A VV's cache file is not open yet (vv_export.h): its
// answers come from vvmd's probe, and a cache file is a regular file.
const char* vvm_export_description(void* handle) {
  // The string lives in the handle, which outlives every use nbdkit makes of it.
  Handle* h = as_handle(handle);
  if (h->fwd) return h->fwd_description.c_str();
  return h->vv ? h->vv->description().c_str() : h->pack->pack().info().description.c_str();
}

int64_t vvm_get_size(void* handle) {
  Handle* h = as_handle(handle);
  if (h->fwd) return static_cast<int64_t>(h->fwd->caps().size);
  return static_cast<int64_t>(h->vv ? h->vv->size() : h->pack->pack().size());
}

bool writable(void* handle) {
  Handle* h = as_handle(handle);
  if (h->fwd) return h->fwd_writable;
  return h->vv ? h->vv->writable() : h->pack->pack().writable();
}

bool block_device(void* handle) {
  Handle* h = as_handle(handle);
  return h->pack && h->pack->pack().block_device();
}

int vvm_block_size(void* handle, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  Handle* h = as_handle(handle);
  if (h->fwd) {  // what the servers advertised
    *minimum = h->fwd->caps().block_minimum;
    *preferred = h->fwd->caps().block_preferred;
    *maximum = h->fwd->caps().block_maximum;
    return 0;
  }
  *minimum = h->pack ? h->pack->pack().minimum_block() : 1;  // the sector size on a device
  *preferred = *minimum > 4096 ? *minimum : 4096;  // no read-modify-write of a page or sector
  *maximum = 32 * 1024 * 1024;                     // nbdkit's own limit for a single request
  return 0;
}

// A forwarded pack offers what its servers offer (Forwarder::caps).
const forward::ExportCaps* forwarded_caps(void* handle) {
  Handle* h = as_handle(handle);
  return h->fwd ? &h->fwd->caps() : nullptr;
}

int vvm_can_write(void* handle) { return writable(handle) ? 1 : 0; }
int vvm_can_flush(void* handle) {
  const forward::ExportCaps* c = forwarded_caps(handle);
  return !c || c->can_flush ? 1 : 0;
}
int vvm_can_fua(void* handle) {
  const forward::ExportCaps* c = forwarded_caps(handle);
  if (!c || c->can_fua) return NBDKIT_FUA_NATIVE;
  return c->can_flush ? NBDKIT_FUA_EMULATE : NBDKIT_FUA_NONE;
}
// One fd per connection, flushed with fdatasync, which covers every fd of the file. A forwarded
// pack: one forwarder for every connection, whose flush covers every server's writes.
int vvm_can_multi_conn(void* handle) {
  const forward::ExportCaps* c = forwarded_caps(handle);
  return !c || c->can_multi_conn ? 1 : 0;
}
int vvm_can_trim(void* handle) {
  const forward::ExportCaps* c = forwarded_caps(handle);
  return writable(handle) && (!c || c->can_trim) ? 1 : 0;
}
int vvm_can_zero(void* handle) {
  const forward::ExportCaps* c = forwarded_caps(handle);
  return writable(handle) && (!c || c->can_zero) ? 1 : 0;
}
// Honest: a fast zero is refused at once (EOPNOTSUPP) when only writing zeroes would do, by us or
// by the kernel (see PackExport::zero).
int vvm_can_fast_zero(void* handle) {
  const forward::ExportCaps* c = forwarded_caps(handle);
  return writable(handle) && (!c || c->can_fast_zero) ? 1 : 0;
}
// SEEK_DATA/SEEK_HOLE on files; a block device is all data, which nbdkit reports by itself.
int vvm_can_extents(void* handle) {
  if (const forward::ExportCaps* c = forwarded_caps(handle)) return c->can_extents ? 1 : 0;
  return block_device(handle) ? 0 : 1;
}
int vvm_can_cache(void* handle) {
  const forward::ExportCaps* c = forwarded_caps(handle);
  return !c || c->can_cache ? NBDKIT_CACHE_NATIVE : NBDKIT_CACHE_NONE;
}
int vvm_is_rotational(void* handle) {
  const forward::ExportCaps* c = forwarded_caps(handle);
  return c && c->is_rotational ? 1 : 0;
}

// --- data ---

// Called first in every data callback, and returns the data path, or nullptr with errno set. A
// pack connection takes its hold at its first data command, a VV connection opens the VV with
// vvmd then (both lazy: NBD_OPT_INFO opens and closes every export and must not take a hold,
// count an access or wait for a stage). A refusal is EPERM (NBD has no EBUSY or EACCES; nbdkit
// would send EINVAL for them), anything else (vvmd down, a stage that timed out) EIO; the reason,
// naming the export and any holder, goes to the log once a connection.
PackExport* begin_io(void* handle) {
  Handle* h = as_handle(handle);
  bool newly_refused = false;
  const Status& ready =
      h->vv ? h->vv->ensure_open(&newly_refused) : h->pack->ensure_hold(&newly_refused);
  if (ready.ok()) return h->vv ? &h->vv->pack() : &h->pack->pack();
  if (newly_refused) {
    nbdkit_error("%s", ready.message().c_str());
  } else {
    nbdkit_debug("%s", ready.message().c_str());
  }
  const bool refused = ready.code() == Code::kBusy || ready.code() == Code::kPermissionDenied;
  const int err = h->pack || refused ? EPERM : EIO;
  nbdkit_set_error(err);
  errno = err;
  return nullptr;
}

// After a write, trim or zero: a VV records that it was written, for VV_CLOSE.
int wrote(void* handle, int result) {
  if (result != 0) return result;
  Handle* h = as_handle(handle);
  h->wrote_any.store(true, std::memory_order_relaxed);
  if (h->vv) h->vv->note_written();
  return result;
}

// The forwarder of a forwarded pack's handle, or null.
forward::Forwarder* fwd(void* handle) { return as_handle(handle)->fwd.get(); }

// The forwarder of a forwarded pack's handle once its client holds the pack (cluster mode: the
// hold is taken at the first data command, as begin_io's), or null with EPERM, the reason in
// the log once a connection.
forward::Forwarder* begin_forward(void* handle) {
  Handle* h = as_handle(handle);
  if (!h->fwd_hold) return h->fwd.get();
  bool newly_refused = false;
  const Status& ready = h->fwd_hold->ensure(&newly_refused);
  if (ready.ok()) return h->fwd.get();
  if (newly_refused) {
    nbdkit_error("%s", ready.message().c_str());
  } else {
    nbdkit_debug("%s", ready.message().c_str());
  }
  nbdkit_set_error(EPERM);
  errno = EPERM;
  return nullptr;
}

// Cluster mode: every pack request passes the reconfiguration gate (reconf_gate.h), which holds
// it while a reconfiguration of its pack is under way and counts it, when served here, for the
// drain. False, with ESHUTDOWN (NBD's "go to the alternate"), when the connection's pack has
// moved off this node since it opened.
bool pass_gate(void* handle, std::optional<ReconfGate::Pass>* pass) {
  Handle* h = as_handle(handle);
  if (!g_gate || h->gate_pack.empty()) return true;
  pass->emplace(g_gate->enter(h->gate_pack, h->gate_generation, h->gate_placement, !h->fwd));
  if ((*pass)->status().ok()) return true;
  nbdkit_debug("%s", (*pass)->status().message().c_str());
  nbdkit_set_error(ESHUTDOWN);
  errno = ESHUTDOWN;
  return false;
}

// Refuses a request with ESHUTDOWN, NBD's sign to send it to the alternate (a client connects
// again): the first refusal of each kind (`said`) is logged as an error, the others as debug.
bool refuse_shutdown(std::atomic<bool>& said, const char* fmt_text, const char* what) {
  if (!said.exchange(true)) {
    nbdkit_error(fmt_text, what);
  } else {
    nbdkit_debug(fmt_text, what);
  }
  nbdkit_set_error(ESHUTDOWN);
  errno = ESHUTDOWN;
  return true;
}

// The fallback forwarder of local pack `pack` (its other node), or null when it has none.
std::shared_ptr<forward::Forwarder> fallback_of(const std::string& pack) {
  if (!g_fallback.find(pack)) return nullptr;
  Result<std::shared_ptr<forward::Forwarder>> f = g_fallback.forwarder(pack, log_forward_event);
  if (!f.ok()) {
    nbdkit_debug("%s", f.status().message().c_str());
    return nullptr;
  }
  return *f;
}

// What a request changes, for the flush rule of local_failover.h.
enum class Changes { kNothing, kData, kDataFua };
// Whether a request of a pool's pack may go to another server of the pool by load (a flush
// may not: it is served here, and flushes the others that took writes).
enum class Spread { kByLoad, kHere };

// The forwarder to the other servers of pool pack `pack` when one of them has fewer requests
// outstanding than this node's `here` (local_failover.h's other_less_loaded), or null: the pack
// has no pool, none is less loaded, or its forwarder is not open (then the request is served
// here, and the tick opens it).
std::shared_ptr<forward::Forwarder> less_loaded_peers(const std::string& pack, uint64_t here) {
  if (here == 0) return nullptr;  // nobody can have fewer: spares the look-ups of a light load
  std::shared_ptr<forward::Forwarder> f = g_fallback.opened(pack);
  if (!f) {
    if (g_fallback.pool(pack) && g_pool_opens.want(pack)) g_cluster->tick_soon();
    return nullptr;
  }
  if (!f->pool() || !other_less_loaded(here, f->least_outstanding())) return nullptr;
  return f;
}

// Refuses `what` (a write, trim or zero) of a fenced node with ESHUTDOWN: the first refusal is
// logged as an error.
bool refuse_fenced(const char* what) {
  static std::atomic<bool> said{false};
  return refuse_shutdown(
      said, "%s refused: this node's cluster membership lease is lost (self-fenced)", what);
}

// Cluster mode, this node fenced: the forwarder to the other servers of local pack `pack` (its
// pool, or its other node) when one of them is healthy, or null. For a write, which would be
// refused otherwise, it is opened if need be (connecting); a read, which can be served here,
// never waits for a connection.
std::shared_ptr<forward::Forwarder> fenced_peers(const std::string& pack, bool writes) {
  std::shared_ptr<forward::Forwarder> f = writes ? fallback_of(pack) : g_fallback.opened(pack);
  if (!f || !f->least_outstanding()) return nullptr;
  if (g_fenced_sent.first(fmt::format("{} {}", pack, g_cluster->incarnation()))) {
    std::optional<forward::ForwardEntry> e = g_fallback.find(pack);
    nbdkit_error("%s", fmt::format("pack/{}: this node's cluster membership lease is lost "
                                   "(self-fenced): its own clients' requests go to the pack's "
                                   "other servers ({}); it serves no write itself",
                                   pack, e ? forward_description(*e) : f->name())
                           .c_str());
  }
  return f;
}

// A request on a pack served from this node's disk. `local` serves it here (an IoStatus);
// `other(Forwarder&)` sends it to the pack's other node. In cluster mode, for a client of this
// node, the request goes to the other node instead while this node's path to the pack's disk is
// down, or when `local` fails as a path failure does (EIO, or the NAK), so that the client sees
// no error; the path failure is recorded as before (cluster_catalog.h). Without another node, for
// another node's connection, or when `*answered` says that `local` has already answered part of
// the request, the failure is answered as before. For a pack with a pool, the request (unless
// `spread` is kHere) goes to another server of the pool when one is less loaded than this node
// (less_loaded_peers), and is served here after all if every other server fails it.
// A request that leaves for another server stops counting in the reconfiguration gate's drain
// (`pass`: ReconfGate::Pass::uncount): that server holds it for the same barrier as its own
// requests, so counted here it would hold this node's drain, and the barrier, until the
// barrier's timeout. One served here after all passes the gate again (pass_gate).
// A fenced node (its membership lease lost) never writes to its disk: its clients' writes, trims
// and zeroes go to the pack's other servers (fenced_peers), and are refused with ESHUTDOWN, as a
// peer's are, only when no other server is healthy or every one fails them, or when the pack is
// exclusive (its cluster-wide hold went with the lease); its clients' reads go there too while
// one is healthy (its mapping may be old), else are served here. Its flushes are served here, as
// always: they make durable what was acknowledged here before the fence, and flush the others
// holding writes they acknowledged (flush_peers).
template <class Local, class Other>
int serve_local(void* handle, const char* op, std::optional<ReconfGate::Pass>& pass, Local&& local,
                Other&& other, Changes changes, Spread spread = Spread::kByLoad,
                const bool* answered = nullptr) {
  Handle* h = as_handle(handle);
  if (!h->failover) return pack_result(handle, local());
  const std::string& pack = h->pack->pack().info().pack.name;
  auto away = [&](const std::shared_ptr<forward::Forwarder>& f) {
    h->hold_peer(f);
    if (pass) pass->uncount();
    return other(*f);
  };
  // Any answer but a path failure of every other server is the request's answer.
  auto answered_there = [](const IoStatus& done) {
    return done.ok() || (done.err() != EIO && done.err() != ESHUTDOWN);
  };
  const bool writes = changes != Changes::kNothing;
  if ((writes || spread == Spread::kByLoad) && g_cluster->fenced()) {
    // Not an exclusive pack's writes: its cluster-wide hold goes with the lost lease, and another
    // node's client may hold the pack by now.
    const bool exclusive = h->pack->pack().info().pack.mode == PackMode::kExclusive;
    if (auto f = writes && exclusive ? nullptr : fenced_peers(pack, writes)) {
      h->failover->sent_by_load();  // a flush here flushes them too
      IoStatus done = away(f);
      if (answered_there(done)) return io_result(done);
      nbdkit_debug("%s", done.status().message().c_str());
      if (writes) {
        refuse_fenced(op);
        return -1;
      }
      if (!pass_gate(handle, &pass)) return -1;  // read here after all
    } else if (writes) {
      refuse_fenced(op);
      return -1;
    }
  }
  std::optional<IoStatus> failed;
  if (!g_cluster->path_down(pack)) {
    if (spread == Spread::kByLoad) {
      if (auto f = less_loaded_peers(pack, h->failover->outstanding())) {
        h->failover->sent_by_load();
        IoStatus done = away(f);
        if (answered_there(done)) return io_result(done);
        nbdkit_debug("%s: served here instead", done.status().message().c_str());
        if (!pass_gate(handle, &pass)) return -1;
        if (writes && g_cluster->fenced()) {  // fenced during the hop
          refuse_fenced(op);
          return -1;
        }
      }
    }
    const LocalFailover::Serving counted = h->failover->serving();
    IoStatus done = local();
    if (done.ok()) {
      if (changes != Changes::kNothing) h->failover->acknowledged(changes == Changes::kDataFua);
      return 0;
    }
    if ((done.err() != EIO && done.err() != ESHUTDOWN) || (answered && *answered)) {
      return pack_result(handle, done);
    }
    g_cluster->path_failed(pack, done.status().message());
    failed = std::move(done);
  }
  std::shared_ptr<forward::Forwarder> f = fallback_of(pack);
  if (!f) return pack_result(handle, failed ? *failed : local());
  if (g_failed_over.first(pack)) {
    std::optional<forward::ForwardEntry> e = g_fallback.find(pack);
    nbdkit_error("%s", fmt::format("pack/{}: this node's path to its disk is down{}: its own "
                                   "clients' requests go to the other node ({})",
                                   pack, failed ? " (" + failed->status().message() + ")" : "",
                                   e ? forward_description(*e) : f->name())
                           .c_str());
  }
  h->failover->failing_over();
  return io_result(away(f));
}

// Cluster mode: whether the connection (a pack's, served here or forwarded) was opened before
// this node last rejoined the cluster: under a mapping that may have changed while the node was
// away, its cluster-wide hold given up with the old lease (HoldRegistry::rejoined).
bool opened_before_rejoin(const Handle& h) {
  return g_cluster && (h.pack || h.fwd) && h.incarnation != g_cluster->incarnation();
}

// Cluster mode: a node whose membership lease is lost must not write to its disks, for another
// node may take them over once the lease has expired (a pack it forwards is written by its
// serving node, which fences itself); nor may a connection opened before the node last rejoined
// the cluster, served here or forwarded (opened_before_rejoin): another node's client may hold
// the pack now. The write is refused with ESHUTDOWN.
bool fenced_write(void* handle, const char* what) {
  if (!g_cluster) return false;
  static std::atomic<bool> said_old{false};
  const Handle* h = as_handle(handle);
  // A client of this node on a local pack: serve_local sends its write to the other servers.
  if (!h->fwd && !h->failover && g_cluster->fenced()) return refuse_fenced(what);
  if (opened_before_rejoin(*h)) {
    return refuse_shutdown(
        said_old,
        "%s refused: the connection was opened before this node rejoined the cluster, under "
        "the mapping of then; its hold was given up with the old lease (connect again)",
        what);
  }
  return false;
}

// Cluster mode: reads (and block status, cache) of a client's connection opened before the node
// last rejoined the cluster are refused with ESHUTDOWN too, so that its client connects again
// under the current mapping: while the node was away the pack may have been moved, written
// elsewhere and moved back, or held exclusive by another node's client (its hold went with the
// old lease), and a read under the old mapping could return what is no longer the pack's data
// or break that hold. Another node's connection (pack/NAME@local) is not refused: that node
// admitted the request under its own view, and the gate (reconf_gate.h) still refuses a
// connection whose pack has moved off this disk, so its reads come from where a new one's
// would. Reads of a fenced node that has not rejoined are still served (its mapping is the last
// it had; see cluster_catalog.h). A flush is still served: it only makes durable what the
// connection wrote before, and refusing it would not unwrite that.
bool stale_read(void* handle, const char* what) {
  static std::atomic<bool> said{false};
  const Handle* h = as_handle(handle);
  if (h->from_node || !opened_before_rejoin(*h)) return false;
  return refuse_shutdown(said,
                         "%s refused: the connection was opened before this node rejoined the "
                         "cluster, under the mapping of then, which may have changed while it "
                         "was away (connect again)",
                         what);
}

int vvm_pread(void* handle, void* buf, uint32_t count, uint64_t offset, uint32_t /*flags*/) {
  return guarded("pread", -1, [&] {
    std::optional<ReconfGate::Pass> pass;
    if (!pass_gate(handle, &pass)) return -1;
    if (stale_read(handle, "read")) return -1;
    if (fwd(handle)) {
      auto* f = begin_forward(handle);
      return f ? io_result(f->pread(buf, count, offset)) : -1;
    }
    PackExport* io = begin_io(handle);
    if (io == nullptr) return -1;
    return serve_local(
        handle, "read", pass, [&] { return io->read(buf, count, offset); },
        [&](forward::Forwarder& f) { return f.pread(buf, count, offset); }, Changes::kNothing);
  });
}

int vvm_pwrite(void* handle, const void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  return guarded("pwrite", -1, [&] {
    std::optional<ReconfGate::Pass> pass;
    if (!pass_gate(handle, &pass)) return -1;
    if (fwd(handle)) {
      if (fenced_write(handle, "write")) return -1;
      auto* f = begin_forward(handle);
      return f ? wrote(handle,
                       io_result(f->pwrite(buf, count, offset, (flags & NBDKIT_FLAG_FUA) != 0)))
               : -1;
    }
    if (fenced_write(handle, "write")) return -1;
    PackExport* io = begin_io(handle);
    if (io == nullptr) return -1;
    const bool fua = (flags & NBDKIT_FLAG_FUA) != 0;
    return wrote(handle,
                 serve_local(
                     handle, "write", pass, [&] { return io->write(buf, count, offset, fua); },
                     [&](forward::Forwarder& f) { return f.pwrite(buf, count, offset, fua); },
                     fua ? Changes::kDataFua : Changes::kData));
  });
}

// A local pack's flush, after its backing's: flushes each forwarder to the pack's other servers
// that holds acknowledged, unflushed writes (Handle::peers, and the table's open one once any
// request of the pack went to another server), and nothing else. A forwarder with none is not
// asked, so that a connection whose writes some other server once took does not flush that
// server at every later flush. Its failure (every server of a forwarder failed the flush, or
// the writes of one that died could be replayed on no other) is the client's flush's answer,
// EIO, and not a failure of this node's path to its disk (vvm_flush).
IoStatus flush_peers(Handle& h) {
  std::vector<std::shared_ptr<forward::Forwarder>> peers;
  {
    const std::lock_guard lock(h.peers_m);
    peers = h.peers;
  }
  if (h.failover->used_other()) {
    if (auto f = g_fallback.open_forwarder(h.pack->pack().info().pack.name);
        f && std::find(peers.begin(), peers.end(), f) == peers.end()) {
      peers.push_back(std::move(f));
    }
  }
  for (const auto& f : peers) {
    if (!f->unflushed()) continue;
    if (IoStatus done = f->flush(); !done.ok()) return done;
  }
  return IoStatus();
}

int vvm_flush(void* handle, uint32_t /*flags*/) {
  return guarded("flush", -1, [&] {
    std::optional<ReconfGate::Pass> pass;
    if (!pass_gate(handle, &pass)) return -1;
    if (fwd(handle)) {
      auto* f = begin_forward(handle);
      return f ? io_result(f->flush()) : -1;
    }
    PackExport* io = begin_io(handle);
    if (io == nullptr) return -1;
    Handle* h = as_handle(handle);
    auto lost = [&] {
      return IoStatus(EIO, Status::IoError(fmt::format(
                               "{}: flush: writes acknowledged from this node's disk before "
                               "its path failed were never flushed there, and may be lost",
                               h->pack->pack().info().name)));
    };
    // The other servers' flush failed after this node's own succeeded (flush_peers).
    std::optional<IoStatus> peers_failed;
    auto local = [&] {
      if (!h->failover) return io->flush();
      const uint64_t ticket = h->failover->flush_starting();
      IoStatus done = io->flush();
      if (!done.ok()) return done;
      h->failover->flushed(ticket);
      // Requests went to other servers (the pool's by load, the other node's while the path was
      // down): what they acknowledged and have not flushed since is flushed there, and only
      // there (Forwarder::flush asks the servers holding such writes, one flush each). The
      // connection's forwarders, and the table's (other connections' writes: a flush covers
      // every connection's, as multi-conn promises). Out of the drain from here, as any request
      // that leaves for another server (serve_local).
      if (pass) pass->uncount();
      if (IoStatus peers = flush_peers(*h); !peers.ok()) peers_failed = std::move(peers);
      return IoStatus();  // this node's path worked: answered below, not as a path failure
    };
    auto other = [&](forward::Forwarder& f) {
      return h->failover->take_lost() ? lost() : f.flush();
    };
    // Marked lost by an earlier request's failover (the path may be back since: the writes
    // may not be): answered before the flush goes anywhere, and not as a path failure.
    if (h->failover && h->failover->take_lost()) return io_result(lost());
    const int r =
        serve_local(handle, "flush", pass, local, other, Changes::kNothing, Spread::kHere);
    if (!peers_failed) return r;
    // Writes that the others acknowledged may be lost: EIO (never the NAK, which would tell the
    // client that this server is going away), naming the others' failure.
    const int err = peers_failed->err() == ESHUTDOWN ? EIO : peers_failed->err();
    return io_result(IoStatus(
        err, Status(peers_failed->status().code(),
                    fmt::format("{}: flush: the pack's other servers did not flush writes they "
                                "acknowledged ({}); this node's disk is flushed",
                                h->pack->pack().info().name, peers_failed->status().message()))));
  });
}

int vvm_trim(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  return guarded("trim", -1, [&] {
    std::optional<ReconfGate::Pass> pass;
    if (!pass_gate(handle, &pass)) return -1;
    if (fwd(handle)) {
      if (fenced_write(handle, "trim")) return -1;
      auto* f = begin_forward(handle);
      return f ? wrote(handle, io_result(f->trim(count, offset, (flags & NBDKIT_FLAG_FUA) != 0)))
               : -1;
    }
    if (fenced_write(handle, "trim")) return -1;
    PackExport* io = begin_io(handle);
    if (io == nullptr) return -1;
    const bool fua = (flags & NBDKIT_FLAG_FUA) != 0;
    return wrote(handle, serve_local(
                             handle, "trim", pass, [&] { return io->trim(count, offset, fua); },
                             [&](forward::Forwarder& f) { return f.trim(count, offset, fua); },
                             fua ? Changes::kDataFua : Changes::kData));
  });
}

int vvm_zero(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  return guarded("zero", -1, [&] {
    std::optional<ReconfGate::Pass> pass;
    if (!pass_gate(handle, &pass)) return -1;
    const bool may_trim = (flags & NBDKIT_FLAG_MAY_TRIM) != 0;
    const bool fast = (flags & NBDKIT_FLAG_FAST_ZERO) != 0;
    const bool fua = (flags & NBDKIT_FLAG_FUA) != 0;
    PackExport* io = nullptr;
    if (fenced_write(handle, "zero")) return -1;
    if (fwd(handle) && begin_forward(handle) == nullptr) return -1;
    if (!fwd(handle) && (io = begin_io(handle)) == nullptr) return -1;
    // Not an error to log: nbdkit writes zeroes itself, or tells a fast-zero client no.
    auto not_supported = [](const IoStatus& done) {
      nbdkit_debug("%s", done.status().message().c_str());
      nbdkit_set_error(EOPNOTSUPP);
      errno = EOPNOTSUPP;
      return -1;
    };
    if (io == nullptr) {
      IoStatus done = fwd(handle)->zero(count, offset, may_trim, fast, fua);
      return done.err() == EOPNOTSUPP ? not_supported(done) : wrote(handle, io_result(done));
    }
    std::optional<IoStatus> unsupported;
    auto checked = [&](IoStatus done) {
      if (done.err() != EOPNOTSUPP) return done;
      unsupported = done;
      return IoStatus();  // answered below, not as a failure of the path or of the request
    };
    const int r = serve_local(
        handle, "zero", pass, [&] { return checked(io->zero(count, offset, may_trim, fast, fua)); },
        [&](forward::Forwarder& f) { return checked(f.zero(count, offset, may_trim, fast, fua)); },
        fua ? Changes::kDataFua : Changes::kData);
    if (unsupported) return not_supported(*unsupported);
    return wrote(handle, r);
  });
}

int vvm_extents(void* handle, uint32_t count, uint64_t offset, uint32_t flags,
                struct nbdkit_extents* extents) {
  return guarded("extents", -1, [&] {
    std::optional<ReconfGate::Pass> pass;
    if (!pass_gate(handle, &pass)) return -1;
    if (stale_read(handle, "block status")) return -1;
    if (fwd(handle)) {
      auto* f = begin_forward(handle);
      if (f == nullptr) return -1;
      std::vector<forward::Extent> got;
      if (int r = io_result(f->extents(count, offset, (flags & NBDKIT_FLAG_REQ_ONE) != 0, &got));
          r != 0) {
        return r;
      }
      for (const forward::Extent& e : got) {
        const uint32_t type = (e.hole ? NBDKIT_EXTENT_HOLE : 0) | (e.zero ? NBDKIT_EXTENT_ZERO : 0);
        if (nbdkit_add_extent(extents, e.offset, e.length, type) == -1) return -1;
      }
      return 0;
    }
    PackExport* io = begin_io(handle);
    if (io == nullptr) return -1;
    const bool req_one = (flags & NBDKIT_FLAG_REQ_ONE) != 0;
    bool added_all = true, added_any = false;
    auto local = [&] {
      IoStatus done = io->extents(count, offset, req_one, [&](const PackExport::Extent& e) {
        const uint32_t type = e.hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0;
        added_all = nbdkit_add_extent(extents, e.offset, e.length, type) == 0;
        added_any = true;
        return added_all;
      });
      return done;
    };
    auto other = [&](forward::Forwarder& f) {
      std::vector<forward::Extent> got;
      IoStatus done = f.extents(count, offset, req_one, &got);
      for (const forward::Extent& e : got) {
        const uint32_t type = (e.hole ? NBDKIT_EXTENT_HOLE : 0) | (e.zero ? NBDKIT_EXTENT_ZERO : 0);
        if (done.ok() && nbdkit_add_extent(extents, e.offset, e.length, type) == -1) {
          added_all = false;
        }
      }
      return done;
    };
    // Extents already given to nbdkit cannot be taken back: after some, a failure is answered.
    const int r = serve_local(handle, "block status", pass, local, other, Changes::kNothing,
                              Spread::kByLoad, &added_any);
    if (!added_all) return -1;  // nbdkit_add_extent reported it
    return r;
  });
}

int vvm_cache(void* handle, uint32_t count, uint64_t offset, uint32_t /*flags*/) {
  return guarded("cache", -1, [&] {
    std::optional<ReconfGate::Pass> pass;
    if (!pass_gate(handle, &pass)) return -1;
    if (stale_read(handle, "cache")) return -1;
    if (fwd(handle)) {
      auto* f = begin_forward(handle);
      return f ? io_result(f->cache(count, offset)) : -1;
    }
    PackExport* io = begin_io(handle);
    if (io == nullptr) return -1;
    return serve_local(
        handle, "cache", pass, [&] { return io->cache(count, offset); },
        [&](forward::Forwarder& f) { return f.cache(count, offset); }, Changes::kNothing);
  });
}

// Called by nbdkit after .config_complete; it may only lower the model THREAD_MODEL declares.
int vvm_thread_model() {
  if (g_serialize)
    nbdkit_debug("parallel=no: each connection's requests are handled one at a time (nbdkit %s)",
                 NBDKIT_VERSION_STRING);
  return g_serialize ? NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS : NBDKIT_THREAD_MODEL_PARALLEL;
}

constexpr const char kConfigHelp[] =
    "packtab=PATH   The pack table to serve: one pack a line,\n"
    "               NAME BACKING OFFSET SIZE MODE OWNER GROUP PERMS.\n"
    "conf=PATH      vvm.conf; its [plugin] packtab names the pack table, and\n"
    "               the virtual volumes come from vvmd at its first [vvmd]\n"
    "               listen address. With a [cluster] section naming this\n"
    "               node, the node joins the cluster in etcd and serves every\n"
    "               mapped pack: from its own disk when the mapping names it\n"
    "               (primary or secondary), else by forwarding to those nodes.\n"
    "holds=DIR      Where holders of packs are recorded, for messages and\n"
    "               vvctl pack ls (default: STATE_DIR/holds with conf=, else\n"
    "               /run/vvm/holds).\n"
    "path-failure=eio|nak  What a pack request answers when its backing\n"
    "               fails: EIO (the default), or NBD_ESHUTDOWN, which sends a\n"
    "               forwarding node to another server of the pack.\n"
    "parallel=auto|yes|no  no: each connection's requests one at a time\n"
    "               (connections still in parallel), so that a client hanging\n"
    "               up with requests in flight cannot make nbdkit 1.32.4 to\n"
    "               1.33.9 abort; yes: nbdkit's worker threads; auto (the\n"
    "               default): no with those nbdkits, else yes.\n"
    "forward=NAME=URI[,URI...]  Serve pack/NAME by forwarding it to these NBD\n"
    "               servers: the primary, then the secondaries (for tests; in\n"
    "               cluster mode the mappings in etcd provide them).\n"
    "forward-pool=NAME=URI[,URI...]  The same for servers sharing one disk,\n"
    "               used by load.\n"
    "tls-identity=NAME  Every client of this nbdkit is vvm.conf's [identity\n"
    "               NAME]: checked as its user and groups. Needs conf=, and\n"
    "               nbdkit --tls=require with a PSK file of that identity's\n"
    "               users only, or --tls-certificates=DIR --tls-verify-peer\n"
    "               with DIR/ca-cert.pem the identity's client-ca.\n"
    "Give packtab= or conf=, not both (neither when only forwarding). Exports: pack/NAME (the "
    "table's mode),\n"
    "pack/NAME@ro (read-only) and, with conf=, vv/NAME (a virtual volume:\n"
    "writable while hot, by one client host at a time, read-only once\n"
    "finished; an evicted one is waited for up to [plugin] stage-timeout at\n"
    "the first read or write). There is no default export.";

nbdkit_plugin make_plugin() {
  nbdkit_plugin p{};  // every callback not set here is absent
  p.name = "vvm";
  p.longname = "vvm virtual disks (packs and virtual volumes)";
  p.version = VVM_VERSION;
  p.description =
      "Serves the packs of a vvm pack table as NBD exports pack/NAME[@ro], and with conf= the "
      "virtual volumes of vvmd as vv/NAME.";
  p.unload = vvm_unload;
  p.config = vvm_config;
  p.config_complete = vvm_config_complete;
  p.after_fork = vvm_after_fork;
  p.preconnect = vvm_preconnect;
  p.thread_model = vvm_thread_model;
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
  p.is_rotational = vvm_is_rotational;
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
