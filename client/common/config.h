// config.h: vvm.conf, the configuration every vvm process reads, as typed structs.
//
// vvm.conf is an INI file read with Boost.Program_options. Fixed sections are [global], [vvmd],
// [cache], [plugin], [library] and [cluster]; named sections describe the media types, storage
// classes, movers and drives: "[media LTO9]", "[class A]", "[mover m1]", "[drive d0]", and the
// TLS identities: "[identity alice]". A key may be given more than once where it is a list
// (listen, allow-host, allow-uid, allow-group, groups, psk-username, subject).
// conf/vvm.conf is the commented example and documents every key.
//
// Relative paths are resolved against the folder that holds vvm.conf. Every error names the
// file, the line, the key and the reason:
//   "/etc/vvm/vvm.conf:12: cache.high-watermark: '120%' is not between 0% and 100%"
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "common/status.h"

namespace vvm {

// Where a daemon listens or a client connects: "unix:/run/vvm/vvmd.sock", "127.0.0.1:7370",
// "[::1]:7370" or "host.example:7370"; "tls:127.0.0.1:7371" for the control protocol over TLS
// (the daemon's TLS settings, TlsServerConfig, and the client's, proto/tls.h, say with what).
struct Endpoint {
  enum class Kind { kUnix, kTcp, kTls };
  Kind kind = Kind::kUnix;
  std::string path;   // kUnix
  std::string host;   // kTcp, kTls: an address or a name
  uint16_t port = 0;  // kTcp, kTls

  static Result<Endpoint> parse(std::string_view text);
  std::string to_string() const;  // the form parse() reads
  bool operator==(const Endpoint&) const = default;
};

// A TCP peer that may connect: an address or a network in CIDR form ("10.0.0.0/8", "::1",
// "127.0.0.1"). IPv4-mapped IPv6 peers (::ffff:a.b.c.d) match IPv4 entries.
struct HostPattern {
  std::string text;             // as written, for messages
  int family = 0;               // AF_INET or AF_INET6
  unsigned char addr[16] = {};  // network byte order; the first 4 bytes for AF_INET
  int prefix_len = 0;           // 32 or 128 for a single host

  static Result<HostPattern> parse(std::string_view text);
  // `sa` is a struct sockaddr_in or sockaddr_in6.
  bool matches(const struct sockaddr* sa) const;
};

// Who may talk to a daemon over the control protocol (DESIGN.md, Permissions). Over TCP a peer's
// address must match allowed_hosts (empty: nobody). Over a Unix socket root and the daemon's own
// uid are always allowed, then any uid in allowed_uids or any peer whose gid is in allowed_gids.
struct AccessPolicy {
  std::vector<HostPattern> allowed_hosts;
  std::vector<uid_t> allowed_uids;
  std::vector<gid_t> allowed_gids;
  // Over TLS, only identities of this role ([identity] role): a mover's "vvmd". "": any.
  std::string tls_role;
};

// Where a daemon serves Prometheus metrics over HTTP: a numeric address and a port
// ("127.0.0.1:9370", "[::1]:9370"), and the vvm.conf line that gave it, so that a daemon that
// cannot listen there names the line as for any other configuration error.
struct MetricsListen {
  Endpoint at;  // kTcp, its host an IPv4 or IPv6 address
  int line = 0;
  static Result<MetricsListen> parse(std::string_view text);  // `line` left 0
};

struct MediaType {
  std::string name;  // "LTO9"; at most 8 characters (the VOL label field)
  uint64_t capacity = 0;
  uint32_t block_size = 256 * 1024;
  int line = 0;
};

struct StorageClass {
  char letter =
      'A';  // the class is named by one uppercase letter or digit (VV names start with it)
  std::vector<std::string> media;  // one copy on a VSN of each; every name is in Config::media
  std::string description;
  // The most drives the class's copies may hold at once for reading (stages, verifies) and for
  // writing (archives, repack moves), so that one class's backlog cannot starve the others; 0:
  // no limit.
  uint32_t read_max_drives = 0;
  uint32_t write_max_drives = 0;
  // How old the oldest archive copy of the class must be before it causes a mount (a tape of
  // the right kind already in a free drive is written at once); 0: no minimum.
  std::chrono::seconds archive_min_wait{0};
  int line = 0;
};

struct DriveConfig {
  std::string name;
  std::string mover;   // the [mover NAME] that owns it
  std::string media;   // the media type it takes
  std::string device;  // "/dev/nst0" for a real drive; empty for an emulated one
  // A test knob for emulated drives: the bytes a second the drive streams, with loads, locates
  // and rewinds free, so that tests can make a copy slow (or stall) on purpose. 0: no delays.
  uint64_t emulated_rate = 0;
  bool emulated() const { return device.empty(); }
  int line = 0;
};

// A daemon's TLS for its "tls:ADDR:PORT" control listeners ([vvmd] tls-psk-file,
// tls-certificates, tls-verify-peer, and the same keys of [mover NAME]): PSK, X.509 or both. A
// peer is then the [identity] its PSK username or its certificate names (proto/tls.h). The files
// are read when the daemon starts; each `*_line` is the vvm.conf line that named it, for its
// errors (0: not given).
struct TlsServerConfig {
  std::string psk_file;      // "USERNAME:HEXKEY" lines, as psktool writes them
  std::string certificates;  // a folder: ca-cert.pem, server-cert.pem, server-key.pem
  // A client certificate is required and must verify against ca-cert.pem or an identity's
  // client-ca; false: a peer without one is served as its host alone (allow-host, other bits).
  bool verify_peer = true;
  int psk_file_line = 0;
  int certificates_line = 0;
  int verify_peer_line = 0;
  bool enabled() const { return !psk_file.empty() || !certificates.empty(); }
};

// How one daemon proves itself to another over TLS: vvmd to the movers' tls: listeners ([vvmd]
// tls-client-psk-file, tls-client-username, tls-client-certificates), a mover to vvmd's tls:
// listener for its copy reports (the same keys of [mover NAME]). What a client's
// TlsClientSettings (proto/tls.h) holds, from vvm.conf.
struct TlsClientConfig {
  std::string psk_file;      // a PSK file holding this daemon's key
  std::string username;      // which of its users; "" when the file holds one
  std::string certificates;  // a folder: ca-cert.pem, client-cert.pem, client-key.pem
  int line = 0;              // the first tls-client-* line, for errors
  bool enabled() const { return !psk_file.empty() || !certificates.empty(); }
};

struct MoverConfig {
  std::string name;
  Endpoint listen;
  // Its tls: listener (listen = tls:ADDR:PORT); it serves only identities of role vvmd there.
  TlsServerConfig tls;
  // How its copies' reports reach vvmd over TLS; none: they go to vvmd's first listen endpoint
  // that is not tls: (report_endpoint()).
  TlsClientConfig tls_client;
  std::vector<std::string> drives;  // names of its [drive ...] sections, in file order
  // A copy that reports no progress for this long is killed and reported failed (Timeout).
  std::chrono::seconds stall_timeout{300};
  // Where it serves its Prometheus metrics over HTTP ([mover NAME] metrics); none: it does not.
  std::optional<MetricsListen> metrics;
  int line = 0;
};

// [cluster]: this host is a node of a vvm cluster whose database is etcd. Without the section
// vvm runs on one host, as the packtab says.
struct ClusterConfig {
  std::vector<std::string> etcd;             // the etcd endpoints, "HOST:PORT", tried in order
  std::chrono::seconds etcd_timeout{5};      // each etcd request
  std::string node;                          // this node's name; "" on a host that only administers
  std::string advertise;                     // "HOST:PORT": where other nodes reach its NBD server
  std::chrono::seconds lease_ttl{10};        // the membership lease: a node gone this long is gone
  std::string prefix = "/vvm/";              // every key of vvm in etcd starts with it
  std::map<std::string, std::string> disks;  // disk name -> absolute path on this node
  int line = 0;
};

// [identity NAME]: who a TLS peer is. A peer that proves one of `psk_usernames` (a TLS-PSK
// username) or presents a certificate whose subject is one of `subjects`, or one signed by
// `client_ca`, is this identity, and permission checks treat it as the local user `uid` with
// `gid` and `groups`, as they treat a Unix-socket peer. The host allow-list applies on top.
//
// nbdkit 1.32 cannot tell a plugin which PSK username or certificate a client used, so an NBD
// listener serves one identity: its PSK file holds only that identity's usernames, or its
// certificate folder's CA (client_ca) signs only that identity's certificates, and the plugin
// is given tls-identity=NAME. The control protocol, whose TLS is vvm's own, looks the name up.
struct TlsIdentity {
  std::string name;  // the section's name: what tls-identity= and messages use
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;               // supplementary
  std::vector<std::string> psk_usernames;  // unique across identities
  std::vector<std::string> subjects;       // certificate subject DNs, unique across identities
  std::string client_ca;                   // a CA certificate (PEM) for this identity alone
  // What daemon this identity is, if one: "vvmd" (a mover's tls: listener serves only these) or
  // "mover" (vvmd takes copy reports over TLS only from these); "" for a user.
  std::string role;
  int line = 0;
  // "identity alice (uid 1001, gid 1001)": how messages name the peer.
  std::string describe() const;
};

struct Config {
  std::string path;  // absolute path of the file read; "" for the built-in defaults

  // [global]
  std::string state_dir = "/var/lib/vvm";
  log::Level log_level = log::Level::kInfo;
  log::Target log_target = log::Target::kStderr;

  // [vvmd]
  std::vector<Endpoint> vvmd_listen;  // the first one is where local clients connect
  AccessPolicy vvmd_access;
  std::string database_dir;  // default: state_dir/db
  std::chrono::seconds idle_finish{3600};
  std::chrono::seconds request_timeout{30};  // control-protocol replies
  // When the VVs queued for one class and media type are worth a mount: this many bytes or
  // files, or the oldest has waited this long. A VSN of that type already in a free drive is
  // written at once.
  uint64_t archive_batch_bytes = 10ull << 30;
  uint32_t archive_batch_files = 100;
  std::chrono::seconds archive_max_wait{600};
  // The background scrub: each tape's live copies are read back (as vvctl vsn verify does) once
  // this long has passed since its least recently verified copy was; 0: no scrub.
  std::chrono::seconds scrub_interval{0};
  std::optional<MetricsListen> vvmd_metrics;  // [vvmd] metrics; none: no metrics endpoint
  TlsServerConfig vvmd_tls;                   // for the tls: endpoints of vvmd_listen
  TlsClientConfig vvmd_tls_client;            // how vvmd connects to movers' tls: listeners

  // [cache]
  std::string cache_dir;    // default: state_dir/cache
  int high_watermark = 90;  // percent of the cache filesystem, or of cache_size
  int low_watermark = 70;   // below high_watermark
  // [cache] size: when given, the cache's use is the bytes its files occupy (allocated blocks,
  // so a sparse file counts what it holds) over this; when not, the use of its filesystem.
  std::optional<uint64_t> cache_size;

  // [plugin]
  std::string packtab;  // "" when the site has no packs
  std::chrono::seconds stage_timeout{600};

  // [library]
  std::string library_kind = "emulated";  // "emulated" (a folder of VSN.tap files) or "mtx"
  std::string library_path;  // the folder, or the changer device; default: state_dir/library

  std::map<std::string, MediaType> media;
  std::map<char, StorageClass> classes;
  std::map<std::string, MoverConfig> movers;
  std::map<std::string, DriveConfig> drives;

  std::optional<ClusterConfig> cluster;  // [cluster], when given

  std::map<std::string, TlsIdentity> identities;  // [identity NAME], by name
};

// The identity a TLS-PSK username or a certificate subject DN belongs to; null when none does
// (the peer is then nobody: never guessed).
const TlsIdentity* identity_for_psk_username(const Config& config, std::string_view username);
const TlsIdentity* identity_for_subject(const Config& config, std::string_view subject);

// Where `mover`'s copies report to vvmd (the requests' reply_to): vvmd's first tls: listen
// endpoint when the mover has TLS client settings, else its first that is not tls:; null when
// vvmd has no such endpoint (load_config refuses that when vvmd listens at all).
const Endpoint* report_endpoint(const Config& config, const MoverConfig& mover);

// Reads, checks and resolves vvm.conf. Checked: unknown sections and keys, missing values, bad
// numbers, sizes, durations, endpoints, host patterns, user and group names, low >= high
// watermark, a class naming an unknown media type, a drive naming an unknown mover or media type,
// duplicate names. The first error stops the load.
Result<Config> load_config(const std::string& path);

// The same from text; `origin` names it in messages and `base_dir` resolves relative paths.
Result<Config> parse_config(std::string_view text, std::string_view origin,
                            std::string_view base_dir);

// Where to find vvm.conf when no --conf is given: $VVM_CONF, else /etc/vvm/vvm.conf.
std::string default_config_path();

// Helpers that vvm.conf and packtab share. A user or group by name or number ("alice", "1000");
// an unknown name is an error ("no such user 'bob'").
Result<uid_t> resolve_user(std::string_view name_or_id);
Result<gid_t> resolve_group(std::string_view name_or_id);
// The other way round, for messages and listings: the name, else the number ("1000").
std::string user_name(uid_t uid);
std::string group_name(gid_t gid);
// This machine's host name ("localhost" if it cannot be had).
std::string local_host_name();
// The whole of a text file; an error reads "PATH: cannot read: REASON".
Result<std::string> read_text_file(const std::string& path);

}  // namespace vvm
