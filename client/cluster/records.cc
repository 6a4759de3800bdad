// cluster/records.cc: the JSON of the cluster's records (records.h) and its checked decoding.
#include "cluster/records.h"

#include <fmt/core.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/config.h"

namespace vvm::cluster {

using Json = nlohmann::json;

std::string node_prefix(std::string_view prefix) { return fmt::format("{}node/", prefix); }
std::string pack_prefix(std::string_view prefix) { return fmt::format("{}pack/", prefix); }
std::string node_key(std::string_view prefix, std::string_view name) {
  return fmt::format("{}node/{}", prefix, name);
}
std::string pack_key(std::string_view prefix, std::string_view name) {
  return fmt::format("{}pack/{}", prefix, name);
}
std::string path_prefix(std::string_view prefix) { return fmt::format("{}path/", prefix); }
std::string path_key(std::string_view prefix, std::string_view pack, std::string_view node) {
  return fmt::format("{}path/{}/{}", prefix, pack, node);
}

std::string reconf_prefix(std::string_view prefix) { return fmt::format("{}reconf/", prefix); }
std::string reconf_key(std::string_view prefix, std::string_view id) {
  return fmt::format("{}reconf/{}", prefix, id);
}
std::string ack_prefix(std::string_view prefix, std::string_view id) {
  return fmt::format("{}ack/{}/", prefix, id);
}
std::string ack_key(std::string_view prefix, std::string_view id, std::string_view node) {
  return fmt::format("{}ack/{}/{}", prefix, id, node);
}
std::string hold_prefix(std::string_view prefix) { return fmt::format("{}hold/", prefix); }
std::string hold_key(std::string_view prefix, std::string_view pack) {
  return fmt::format("{}hold/{}", prefix, pack);
}
std::string users_prefix(std::string_view prefix) { return fmt::format("{}users/", prefix); }
std::string pack_users_prefix(std::string_view prefix, std::string_view pack, HoldKind kind) {
  return fmt::format("{}users/{}/{}/", prefix, pack, hold_kind_name(kind));
}
std::string users_key(std::string_view prefix, std::string_view pack, HoldKind kind,
                      std::string_view node) {
  return pack_users_prefix(prefix, pack, kind) + std::string(node);
}
std::string holdseq_key(std::string_view prefix, std::string_view node) {
  return fmt::format("{}holdseq/{}", prefix, node);
}
std::string drained_prefix(std::string_view prefix) { return fmt::format("{}drained/", prefix); }
std::string drained_key(std::string_view prefix, std::string_view node) {
  return fmt::format("{}drained/{}", prefix, node);
}

namespace {

// The checked reading of one JSON object's fields. No exceptions: the plugin decodes records on
// its own threads, and an exception thrown there under nbdkit's preloaded ASan aborts the
// process. The first problem is kept in *error ("field 'size': ..."); after it every reader
// returns an empty value, and the decoder checks *error once at the end.
class Fields {
 public:
  Fields(const Json& j, std::string path, std::string* error)
      : j_(j), path_(std::move(path)), error_(error) {}

  bool failed() const { return !error_->empty(); }
  const Json* need(const char* name) {
    if (failed()) return nullptr;
    auto it = j_.find(name);
    if (it == j_.end() || it->is_null()) {
      *error_ = fmt::format("no field '{}{}'", path_, name);
      return nullptr;
    }
    return &*it;
  }
  bool has(const char* name) const {
    auto it = j_.find(name);
    return it != j_.end() && !it->is_null();
  }
  void bad(const char* name, const std::string& why) {
    if (!failed()) *error_ = fmt::format("field '{}{}': {}", path_, name, why);
  }
  std::string text(const char* name) {
    const Json* v = need(name);
    if (v == nullptr) return {};
    if (!v->is_string()) {
      bad(name, fmt::format("{} is not a string", v->dump()));
      return {};
    }
    return v->get<std::string>();
  }
  // A name of a pack, node or disk.
  std::string name(const char* field) {
    std::string n = text(field);
    if (failed()) return {};
    if (std::string why = pack_name_problem(n); !why.empty()) bad(field, why);
    return n;
  }
  uint64_t number(const char* name, uint64_t max = std::numeric_limits<uint64_t>::max()) {
    const Json* v = need(name);
    if (v == nullptr) return 0;
    if (!v->is_number_unsigned()) {
      bad(name, fmt::format("{} is not a whole number of 0 or more", v->dump()));
      return 0;
    }
    uint64_t n = v->get<uint64_t>();
    if (n > max) bad(name, fmt::format("{} is more than {}", n, max));
    return n;
  }
  // The object, or an empty one after a problem.
  const Json& object(const char* name) {
    static const Json kEmpty = Json::object();
    const Json* v = need(name);
    if (v == nullptr) return kEmpty;
    if (!v->is_object()) {
      bad(name, fmt::format("{} is not an object", v->dump()));
      return kEmpty;
    }
    return *v;
  }
  const std::string& path() const { return path_; }
  std::string* error() { return error_; }

 private:
  const Json& j_;
  std::string path_;
  std::string* error_;
};

void check_name_matches_key(Fields& f, std::string_view key, const std::string& name) {
  if (f.failed()) return;
  size_t slash = key.rfind('/');
  std::string_view last = slash == std::string_view::npos ? key : key.substr(slash + 1);
  if (last != name) f.bad("name", fmt::format("'{}' is not the key's name '{}'", name, last));
}

DiskRef disk_ref(Fields& f, const char* field) {
  Fields ref(f.object(field), fmt::format("{}{}.", f.path(), field), f.error());
  DiskRef d;
  d.node = ref.name("node");
  d.disk = ref.name("disk");
  return d;
}

// Parses `value` as a JSON object and runs `fn(fields)` on it; the record, or the first problem
// as "etcd key KEY: REASON".
template <class T, class Decode>
Result<T> decode(std::string_view key, std::string_view value, Decode fn) {
  Json j = Json::parse(value, nullptr, /*allow_exceptions=*/false);
  std::string error;
  if (j.is_discarded()) {
    error = fmt::format("not JSON: '{}{}'", value.substr(0, 60), value.size() > 60 ? "..." : "");
  } else if (!j.is_object()) {
    error = fmt::format("{} is not a JSON object", j.dump().substr(0, 60));
  } else {
    Fields f(j, "", &error);
    T record = fn(f);
    if (error.empty()) return record;
  }
  return Status::InvalidArgument(fmt::format("etcd key {}: {}", key, error));
}

Json disk_json(const DiskRef& d) { return {{"node", d.node}, {"disk", d.disk}}; }

}  // namespace

Json node_json(const NodeRecord& node) {
  Json disks = Json::object();
  for (const auto& [name, path] : node.disks) disks[name] = path;
  return {
      {"name", node.name}, {"address", node.address}, {"disks", disks}, {"started", node.started}};
}

std::string encode_node(const NodeRecord& node) { return node_json(node).dump(); }

Result<NodeRecord> decode_node(std::string_view key, std::string_view value) {
  return decode<NodeRecord>(key, value, [&](Fields& f) {
    NodeRecord n;
    n.name = f.name("name");
    check_name_matches_key(f, key, n.name);
    n.address = f.text("address");
    if (!f.failed()) {
      auto ep = Endpoint::parse(n.address);
      if (!ep.ok() || ep->kind != Endpoint::Kind::kTcp) {
        f.bad("address", fmt::format("'{}' is not HOST:PORT", n.address));
      }
    }
    for (const auto& [disk, path] : f.object("disks").items()) {
      if (f.failed()) break;
      if (std::string why = pack_name_problem(disk); !why.empty()) {
        f.bad("disks", fmt::format("disk '{}': {}", disk, why));
      } else if (!path.is_string() || path.get<std::string>().empty() ||
                 path.get<std::string>().front() != '/') {
        f.bad("disks", fmt::format("disk '{}': {} is not an absolute path", disk, path.dump()));
      } else {
        n.disks[disk] = path.get<std::string>();
      }
    }
    n.started = f.number("started");
    return n;
  });
}

Json pack_json(const PackMapping& p) {
  Json j = {{"name", p.name}, {"primary", disk_json(p.primary)}};
  if (p.secondary) j["secondary"] = disk_json(*p.secondary);
  if (!p.pool.empty()) {  // absent, not empty, when none: a record as older writers wrote it
    Json pool = Json::array();
    for (const DiskRef& d : p.pool) pool.push_back(disk_json(d));
    j["pool"] = pool;
  }
  j["offset"] = p.offset;
  j["size"] = p.size;
  j["mode"] = std::string(pack_mode_name(p.mode));
  j["owner"] = static_cast<uint64_t>(p.owner);
  j["group"] = static_cast<uint64_t>(p.group);
  j["perms"] = fmt::format("{:04o}", p.perms);
  j["epoch"] = p.epoch;
  return j;
}

std::string encode_pack(const PackMapping& p) { return pack_json(p).dump(); }

Result<PackMapping> decode_pack(std::string_view key, std::string_view value) {
  return decode<PackMapping>(key, value, [&](Fields& f) {
    PackMapping p;
    p.name = f.name("name");
    check_name_matches_key(f, key, p.name);
    p.primary = disk_ref(f, "primary");
    if (f.has("secondary")) {
      p.secondary = disk_ref(f, "secondary");
      if (!f.failed() && *p.secondary == p.primary) {
        f.bad("secondary",
              fmt::format("the same as the primary ({}:{})", p.primary.node, p.primary.disk));
      }
    }
    if (f.has("pool")) {
      const Json* pool = f.need("pool");
      if (pool != nullptr && !pool->is_array()) {
        f.bad("pool", fmt::format("{} is not a list of disks", pool->dump().substr(0, 60)));
      }
      for (size_t i = 0; pool != nullptr && pool->is_array() && i < pool->size(); ++i) {
        if (f.failed()) break;
        if (!(*pool)[i].is_object()) {
          f.bad("pool", fmt::format("entry {}: {} is not a disk", i, (*pool)[i].dump()));
          break;
        }
        Fields entry((*pool)[i], fmt::format("{}pool[{}].", f.path(), i), f.error());
        DiskRef d{entry.name("node"), entry.name("disk")};
        if (f.failed()) break;
        const bool again = d == p.primary || (p.secondary && d == *p.secondary) ||
                           std::find(p.pool.begin(), p.pool.end(), d) != p.pool.end();
        // A node serves a pack from one disk (the first the mapping names for it): another
        // disk of the same node would be a server nobody uses.
        const auto same_node = [&](const DiskRef& o) { return o.node == d.node; };
        if (again) {
          f.bad("pool", fmt::format("{}:{} is listed twice (primary, secondary and pool are "
                                    "each one server)",
                                    d.node, d.disk));
        } else if (same_node(p.primary) || (p.secondary && same_node(*p.secondary)) ||
                   std::any_of(p.pool.begin(), p.pool.end(), same_node)) {
          f.bad("pool", fmt::format("{}:{}: node {} is named twice (a node serves a pack from "
                                    "one disk)",
                                    d.node, d.disk, d.node));
        }
        p.pool.push_back(std::move(d));
      }
    }
    p.offset = f.number("offset");
    p.size = f.number("size");
    if (!f.failed() && p.size == 0) f.bad("size", "0 is not a size (1 byte or more)");
    if (!f.failed() && p.offset > std::numeric_limits<uint64_t>::max() - p.size) {
      f.bad("size", fmt::format("offset {} + size {} is past 2^64", p.offset, p.size));
    }
    std::string mode_text = f.text("mode");
    if (!f.failed()) {
      auto mode = parse_pack_mode(mode_text);
      if (mode.ok()) {
        p.mode = *mode;
      } else {
        f.bad("mode", mode.status().message());
      }
    }
    p.owner = static_cast<uid_t>(f.number("owner", 0xfffffffe));
    p.group = static_cast<gid_t>(f.number("group", 0xfffffffe));
    std::string perms_text = f.text("perms");
    if (!f.failed()) {
      auto perms = parse_perms(perms_text);
      if (perms.ok()) {
        p.perms = *perms;
      } else {
        f.bad("perms", perms.status().message());
      }
    }
    p.epoch = f.number("epoch");
    if (!f.failed() && p.epoch == 0) f.bad("epoch", "0 is not an epoch (the first is 1)");
    return p;
  });
}

std::string encode_path(const PathRecord& p) {
  Json j = {{"pack", p.pack},
            {"node", p.node},
            {"disk", p.disk},
            {"reason", p.reason},
            {"since", p.since}};
  return j.dump();
}

Result<PathRecord> decode_path(std::string_view key, std::string_view value) {
  return decode<PathRecord>(key, value, [&](Fields& f) {
    PathRecord p;
    p.pack = f.name("pack");
    p.node = f.name("node");
    // The key is PREFIX/path/PACK/NODE: both names must be the key's.
    if (!f.failed()) {
      const std::string tail = "/" + p.pack + "/" + p.node;
      if (!std::string_view(key).ends_with(tail)) {
        f.bad("pack", fmt::format("'{}' and node '{}' are not the key's", p.pack, p.node));
      }
    }
    p.disk = f.name("disk");
    p.reason = f.text("reason");
    p.since = f.number("since");
    return p;
  });
}

std::string encode_intent(const ReconfIntent& intent) {
  Json mappings = Json::array();
  for (const auto& m : intent.mappings) mappings.push_back(pack_json(m));
  Json j = {{"id", intent.id},
            {"packs", intent.packs},
            {"mappings", mappings},
            {"by", intent.by},
            {"deadline_ms", intent.deadline_ms}};
  return j.dump();
}

Result<ReconfIntent> decode_intent(std::string_view key, std::string_view value) {
  std::optional<Status> nested;  // a mapping's own problem, named by decode_pack
  auto decoded = decode<ReconfIntent>(key, value, [&](Fields& f) {
    ReconfIntent r;
    r.id = f.name("id");
    check_name_matches_key(f, key, r.id);
    const Json* packs = f.need("packs");
    if (packs != nullptr && !packs->is_array()) f.bad("packs", "not an array");
    for (size_t i = 0; packs != nullptr && !f.failed() && i < packs->size(); ++i) {
      const Json& p = (*packs)[i];
      if (!p.is_string() || !pack_name_problem(p.get<std::string>()).empty()) {
        f.bad("packs", fmt::format("{} is not a pack name", p.dump()));
      } else {
        r.packs.push_back(p.get<std::string>());
      }
    }
    if (!f.failed() && r.packs.empty()) f.bad("packs", "names no pack");
    const Json* mappings = f.need("mappings");
    if (mappings != nullptr && !mappings->is_array()) f.bad("mappings", "not an array");
    for (size_t i = 0; mappings != nullptr && !f.failed() && i < mappings->size(); ++i) {
      const Json& m = (*mappings)[i];
      const auto name = m.is_object() && m.contains("name") && m["name"].is_string()
                            ? m["name"].get<std::string>()
                            : std::string("?");
      auto mapping = decode_pack(fmt::format("{} mappings/{}", key, name), m.dump());
      if (!mapping.ok()) {
        nested = mapping.status();
        f.bad("mappings", "");
      } else {
        r.mappings.push_back(std::move(*mapping));
      }
    }
    r.by = f.text("by");
    r.deadline_ms = f.number("deadline_ms");
    return r;
  });
  if (nested) return *nested;
  return decoded;
}

std::string encode_ack(const ReconfAck& ack) {
  return Json{{"node", ack.node}, {"drained_us", ack.drained_us}}.dump();
}

Result<ReconfAck> decode_ack(std::string_view key, std::string_view value) {
  return decode<ReconfAck>(key, value, [&](Fields& f) {
    ReconfAck a;
    a.node = f.name("node");
    check_name_matches_key(f, key, a.node);
    a.drained_us = f.number("drained_us");
    return a;
  });
}

std::string encode_hold(const ClusterHold& hold) {
  return Json{
      {"pack", hold.pack}, {"node", hold.node}, {"client", hold.client}, {"since", hold.started}}
      .dump();
}

Result<ClusterHold> decode_hold(std::string_view key, std::string_view value) {
  return decode<ClusterHold>(key, value, [&](Fields& f) {
    ClusterHold h;
    h.pack = f.name("pack");
    check_name_matches_key(f, key, h.pack);
    h.node = f.name("node");
    h.client = f.text("client");
    h.started = f.number("since");
    return h;
  });
}

std::string encode_users(const PackUsers& users) {
  Json clients = Json::array();
  for (const PackUser& u : users.clients) {
    clients.push_back({{"client", u.client}, {"since", u.since}});
  }
  return Json{{"pack", users.pack},
              {"kind", hold_kind_name(users.kind)},
              {"node", users.node},
              {"clients", clients}}
      .dump();
}

Result<PackUsers> decode_users(std::string_view key, std::string_view value) {
  return decode<PackUsers>(key, value, [&](Fields& f) {
    PackUsers u;
    u.pack = f.name("pack");
    const std::string kind = f.text("kind");
    if (!f.failed()) {
      auto k = parse_hold_kind(kind);
      if (!k || *k == HoldKind::kExclusive) {
        f.bad("kind", fmt::format("'{}' is not read or shared", kind));
      } else {
        u.kind = *k;
      }
    }
    u.node = f.name("node");
    // The key is PREFIX/users/PACK/KIND/NODE: the three must be the key's.
    if (!f.failed()) {
      const std::string tail = fmt::format("/{}/{}/{}", u.pack, kind, u.node);
      if (!std::string_view(key).ends_with(tail)) {
        f.bad("pack",
              fmt::format("'{}', kind '{}' and node '{}' are not the key's", u.pack, kind, u.node));
      }
    }
    const Json* clients = f.need("clients");
    if (clients != nullptr && !clients->is_array()) f.bad("clients", "not an array");
    for (size_t i = 0; clients != nullptr && !f.failed() && i < clients->size(); ++i) {
      const Json& c = (*clients)[i];
      if (!c.is_object()) {
        f.bad("clients", fmt::format("{} is not an object", c.dump()));
        break;
      }
      Fields one(c, fmt::format("clients[{}].", i), f.error());
      PackUser user;
      user.client = one.text("client");
      if (!f.failed() && user.client.empty()) one.bad("client", "empty");
      user.since = one.number("since");
      u.clients.push_back(std::move(user));
    }
    if (!f.failed() && u.clients.empty()) f.bad("clients", "names no client");
    return u;
  });
}

std::string encode_holdseq(const HoldSequence& seq) {
  return Json{{"node", seq.node}, {"seq", seq.seq}}.dump();
}

Result<HoldSequence> decode_holdseq(std::string_view key, std::string_view value) {
  return decode<HoldSequence>(key, value, [&](Fields& f) {
    HoldSequence s;
    s.node = f.name("node");
    check_name_matches_key(f, key, s.node);
    s.seq = f.number("seq");
    return s;
  });
}

std::string encode_drain(const DrainMark& mark) {
  return Json{{"node", mark.node}, {"since", mark.since}}.dump();
}

Result<DrainMark> decode_drain(std::string_view key, std::string_view value) {
  return decode<DrainMark>(key, value, [&](Fields& f) {
    DrainMark d;
    d.node = f.name("node");
    check_name_matches_key(f, key, d.node);
    d.since = f.number("since");
    return d;
  });
}

namespace {

template <class T, class Decode>
void add_item(Listing<T>& out, const KeyValue& kv, Decode fn) {
  auto record = fn(kv.key, kv.value);
  if (!record.ok()) {
    out.problems.push_back(record.status());
    return;
  }
  out.items.push_back({std::move(*record), kv.mod_revision, kv.lease});
}

template <class T, class Decode>
Result<Listing<T>> list(EtcdClient& etcd, const std::string& prefix, Decode fn) {
  auto range = etcd.range_prefix(prefix);
  if (!range.ok()) return range.status();
  Listing<T> out;
  out.revision = range->revision;
  for (const auto& kv : range->kvs) add_item(out, kv, fn);
  return out;
}

}  // namespace

Result<Listing<NodeRecord>> list_nodes(EtcdClient& etcd, std::string_view prefix) {
  return list<NodeRecord>(etcd, node_prefix(prefix), decode_node);
}

Result<Listing<PackMapping>> list_packs(EtcdClient& etcd, std::string_view prefix) {
  return list<PackMapping>(etcd, pack_prefix(prefix), decode_pack);
}

Result<Listing<PathRecord>> list_paths(EtcdClient& etcd, std::string_view prefix) {
  return list<PathRecord>(etcd, path_prefix(prefix), decode_path);
}

Result<ClusterState> read_state(EtcdClient& etcd, std::string_view prefix) {
  auto range = etcd.range_prefix(std::string(prefix));
  if (!range.ok()) return range.status();
  ClusterState out;
  out.revision = range->revision;
  out.nodes.revision = out.packs.revision = out.paths.revision = range->revision;
  const std::string nodes = node_prefix(prefix), packs = pack_prefix(prefix),
                    paths = path_prefix(prefix);
  // Other keys under the prefix (what other parts of vvm keep there) are not this reader's.
  for (const auto& kv : range->kvs) {
    if (kv.key.starts_with(nodes)) {
      add_item(out.nodes, kv, decode_node);
    } else if (kv.key.starts_with(packs)) {
      add_item(out.packs, kv, decode_pack);
    } else if (kv.key.starts_with(paths)) {
      add_item(out.paths, kv, decode_path);
    }
  }
  return out;
}

Result<Listing<DrainMark>> list_drained(EtcdClient& etcd, std::string_view prefix) {
  return list<DrainMark>(etcd, drained_prefix(prefix), decode_drain);
}

Result<Listing<ClusterHold>> list_holds(EtcdClient& etcd, std::string_view prefix) {
  return list<ClusterHold>(etcd, hold_prefix(prefix), decode_hold);
}

Result<Listing<PackUsers>> list_users(EtcdClient& etcd, std::string_view prefix) {
  return list<PackUsers>(etcd, users_prefix(prefix), decode_users);
}

}  // namespace vvm::cluster
