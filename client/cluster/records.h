// cluster/records.h: what the cluster keeps in etcd, each record declared once: a node (its
// membership, written under its lease) and a pack's mapping (where the pack lives and who may use
// it). Values are JSON objects; keys live under a prefix (vvm.conf's [cluster] prefix, "/vvm/" by
// default):
//
//   PREFIX/node/NAME  {"name":"n1","address":"10.0.0.1:10809","disks":{"d0":"/dev/sdb"},
//                      "started":1765090000}
//   PREFIX/pack/NAME  {"name":"home0","primary":{"node":"n1","disk":"d0"},
//                      "secondary":{"node":"n2","disk":"d0"},"offset":0,"size":107374182400,
//                      "mode":"exclusive","owner":1000,"group":100,"perms":"0660","epoch":1}
//                     (and "pool":[{"node":"n3","disk":"d0"},...] for a pack whose disk more
//                     nodes reach: PackMapping::pool)
//   PREFIX/path/PACK/NODE  {"pack":"home0","node":"n1","disk":"d0","reason":"...: Input/output
//                      error","since":1765090000}  (written under NODE's lease while its path to
//                      PACK's disk is down; deleted when a probe finds it working again)
//
//
// A reconfiguration (cluster/reconfig.h) and the cluster-wide holds add:
//
//   PREFIX/reconf/ID       {"id":"...","packs":["home0"],"mappings":[{...a pack mapping...}],
//                           "by":"vvctl on host1 pid 42","deadline_ms":1765090010000}
//                          the intent: written under the command's lease, so that it goes when
//                          the command does; every live node suspends the packs it names
//   PREFIX/ack/ID/NODE     {"node":"n1","drained_us":250}
//                          a node has drained the packs of intent ID (under the intent's lease)
//   PREFIX/hold/PACK       {"pack":"home0","node":"n1","client":"uid 1000","since":1765090000}
//                          an exclusive hold, under the holding node's lease
//   PREFIX/users/PACK/KIND/NODE
//                          {"pack":"home0","kind":"read","node":"n2",
//                           "clients":[{"client":"uid 1000","since":1765090000}]}
//                          NODE's readers (KIND read) or shared writers (KIND shared) of PACK,
//                          under NODE's lease: the other holders an exclusive hold must not
//                          have, and those of the other kind a reader or a shared writer must not
//   PREFIX/holdseq/NODE    {"node":"n1","seq":42}
//                          NODE's fencing token for its hold and users keys, under its lease:
//                          each write of them requires it unchanged and writes it again, so that
//                          a copy of an earlier one that etcd applies late fails
//                          (nbdkit-plugin/cluster_holds.h)
//   PREFIX/drained/NODE    {"node":"n2","since":1765090000}
//                          a node in maintenance: nothing new is mapped to it
//
// Decoding checks every field (presence, type, range, names) and that the name in the value is
// the key's; an error names the key and the reason:
//   "etcd key /vvm/pack/home0: field 'size': 0 is not a size (1 byte or more)"
// Fields a reader does not know are ignored, so that a newer writer may add some. Owner and group
// are numbers: every node must agree on them, as on a shared filesystem.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cluster/etcd_client.h"
#include "common/status.h"
#include "pack/pack_lock.h"
#include "pack/packtab.h"

namespace vvm::cluster {

inline constexpr std::string_view kDefaultPrefix = "/vvm/";

// A node: a host running nbdkit with the vvm plugin.
struct NodeRecord {
  std::string name;
  std::string address;                       // where other nodes reach its NBD server: "HOST:PORT"
  std::map<std::string, std::string> disks;  // disk name -> path on that node
  uint64_t started = 0;                      // unix seconds when it registered
  bool operator==(const NodeRecord&) const = default;
};

// A disk as the cluster names it: a node's disk.
struct DiskRef {
  std::string node;
  std::string disk;
  bool operator==(const DiskRef&) const = default;
};

// Where a pack lives and who may use it. The epoch counts the mapping's changes: 1 when it is
// first written, one more at each change.
struct PackMapping {
  std::string name;  // export "pack/" + name
  DiskRef primary;
  std::optional<DiskRef> secondary;
  // More servers of the same disk (a device every one of them reaches, such as a shared block
  // device): with the primary and the secondary, a request pool, which forwarding nodes use by
  // load rather than in order. Empty for most packs; absent from the JSON then.
  std::vector<DiskRef> pool;
  uint64_t offset = 0;  // bytes into the disk
  uint64_t size = 0;    // bytes
  PackMode mode = PackMode::kReadOnly;
  uid_t owner = 0;
  gid_t group = 0;
  mode_t perms = 0;  // the nine permission bits
  uint64_t epoch = 1;
  bool operator==(const PackMapping&) const = default;
};

// A node's path to a pack's disk that failed (its backing answered EIO): the node answers the NAK
// for the pack, and other nodes send the pack's requests elsewhere until the key goes.
struct PathRecord {
  std::string pack;
  std::string node;
  std::string disk;
  std::string reason;  // the failed request and the error, as the node logged it
  uint64_t since = 0;  // unix seconds when it failed
  bool operator==(const PathRecord&) const = default;
};

// A reconfiguration's intent: the packs it changes and their new mappings (each with the epoch it
// will have: one more than the mapping read). Nodes resume by themselves at `deadline_ms` (unix
// milliseconds) if they have not seen the intent go by then.
struct ReconfIntent {
  std::string id;
  std::vector<std::string> packs;
  std::vector<PackMapping> mappings;
  std::string by;  // who asked, for messages
  uint64_t deadline_ms = 0;
  bool operator==(const ReconfIntent&) const = default;
};

// A node's acknowledgement of an intent: it holds new requests of the intent's packs and has
// drained (and flushed) the ones it had.
struct ReconfAck {
  std::string node;
  uint64_t drained_us = 0;  // how long the drain took
  bool operator==(const ReconfAck&) const = default;
};

// An exclusive hold on a pack, cluster-wide: which node's client holds it.
struct ClusterHold {
  std::string pack;
  std::string node;
  std::string client;    // "uid 1000", "host 10.0.0.5"
  uint64_t started = 0;  // unix seconds ("since")
  bool operator==(const ClusterHold&) const = default;
};

// One client of a pack on a node, in a PackUsers record.
struct PackUser {
  std::string client;  // "uid 1000", "host 10.0.0.5"
  uint64_t since = 0;  // unix seconds
  bool operator==(const PackUser&) const = default;
};

// The readers, or the shared writers, of a pack on one node: its holders of that kind, which an
// exclusive hold (and a holder of the other kind) on another node must not meet. Never
// HoldKind::kExclusive: those are ClusterHold.
struct PackUsers {
  std::string pack;
  HoldKind kind = HoldKind::kRead;
  std::string node;
  std::vector<PackUser> clients;  // one at least
  bool operator==(const PackUsers&) const = default;
};

// A node's fencing token for its hold and users keys (cluster_holds.h): `seq` counts its writes.
struct HoldSequence {
  std::string node;
  uint64_t seq = 0;
  bool operator==(const HoldSequence&) const = default;
};

// A node in maintenance (vvctl cluster drain): no pack is mapped to it until it is undrained.
struct DrainMark {
  std::string node;
  uint64_t since = 0;  // unix seconds
  bool operator==(const DrainMark&) const = default;
};

// The keys. `prefix` starts and ends with '/' (vvm.conf's [cluster] prefix, checked there).
std::string node_prefix(std::string_view prefix);  // PREFIX/node/
std::string pack_prefix(std::string_view prefix);  // PREFIX/pack/
std::string node_key(std::string_view prefix, std::string_view name);
std::string pack_key(std::string_view prefix, std::string_view name);
std::string path_prefix(std::string_view prefix);  // PREFIX/path/
std::string path_key(std::string_view prefix, std::string_view pack, std::string_view node);
std::string reconf_prefix(std::string_view prefix);  // PREFIX/reconf/
std::string reconf_key(std::string_view prefix, std::string_view id);
std::string ack_prefix(std::string_view prefix, std::string_view id);  // PREFIX/ack/ID/
std::string ack_key(std::string_view prefix, std::string_view id, std::string_view node);
std::string hold_prefix(std::string_view prefix);  // PREFIX/hold/
std::string hold_key(std::string_view prefix, std::string_view pack);
std::string users_prefix(std::string_view prefix);  // PREFIX/users/
// PREFIX/users/PACK/KIND/: every node's users of PACK of one kind.
std::string pack_users_prefix(std::string_view prefix, std::string_view pack, HoldKind kind);
std::string users_key(std::string_view prefix, std::string_view pack, HoldKind kind,
                      std::string_view node);
std::string holdseq_key(std::string_view prefix, std::string_view node);
std::string drained_prefix(std::string_view prefix);  // PREFIX/drained/
std::string drained_key(std::string_view prefix, std::string_view node);

// JSON values, and their checked decoding (`key` is where the value was read: the name in it must
// be the key's last part).
std::string encode_node(const NodeRecord& node);
Result<NodeRecord> decode_node(std::string_view key, std::string_view value);
std::string encode_pack(const PackMapping& pack);
// The same values as JSON objects, for a record nested in another value (an intent's mappings,
// vvctl's --json) without a round trip through text.
nlohmann::json node_json(const NodeRecord& node);
nlohmann::json pack_json(const PackMapping& pack);
Result<PackMapping> decode_pack(std::string_view key, std::string_view value);
std::string encode_path(const PathRecord& path);
Result<PathRecord> decode_path(std::string_view key, std::string_view value);
std::string encode_intent(const ReconfIntent& intent);
Result<ReconfIntent> decode_intent(std::string_view key, std::string_view value);
std::string encode_ack(const ReconfAck& ack);
Result<ReconfAck> decode_ack(std::string_view key, std::string_view value);
std::string encode_hold(const ClusterHold& hold);
Result<ClusterHold> decode_hold(std::string_view key, std::string_view value);
std::string encode_users(const PackUsers& users);
Result<PackUsers> decode_users(std::string_view key, std::string_view value);
std::string encode_holdseq(const HoldSequence& seq);
Result<HoldSequence> decode_holdseq(std::string_view key, std::string_view value);
std::string encode_drain(const DrainMark& mark);
Result<DrainMark> decode_drain(std::string_view key, std::string_view value);

// Everything under one record prefix, as read at one revision: the records that decode, with
// their keys' metadata, and a problem for each key that does not (which the readers report and
// skip: garbage under the prefix spoils nothing else).
template <class T>
struct Listing {
  struct Item {
    T record;
    int64_t mod_revision = 0;
    int64_t lease = 0;
  };
  std::vector<Item> items;
  std::vector<Status> problems;  // one per bad key, naming it
  int64_t revision = 0;          // a watch from revision + 1 misses nothing after this read
};

Result<Listing<NodeRecord>> list_nodes(EtcdClient& etcd, std::string_view prefix);
Result<Listing<PackMapping>> list_packs(EtcdClient& etcd, std::string_view prefix);
Result<Listing<PathRecord>> list_paths(EtcdClient& etcd, std::string_view prefix);

// The nodes, the mappings and the paths down, read together at one revision (one range over the
// whole prefix: a node's view of the cluster, and where its watch starts).
struct ClusterState {
  Listing<NodeRecord> nodes;
  Listing<PackMapping> packs;
  Listing<PathRecord> paths;
  int64_t revision = 0;
};
Result<ClusterState> read_state(EtcdClient& etcd, std::string_view prefix);
Result<Listing<DrainMark>> list_drained(EtcdClient& etcd, std::string_view prefix);
// The cluster-wide exclusive holds (PREFIX/hold/PACK), one a pack at most.
Result<Listing<ClusterHold>> list_holds(EtcdClient& etcd, std::string_view prefix);
// Every node's readers and shared writers of every pack (PREFIX/users/).
Result<Listing<PackUsers>> list_users(EtcdClient& etcd, std::string_view prefix);

}  // namespace vvm::cluster
