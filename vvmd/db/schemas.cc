// db/schemas.cc: the VV and VSN tables; see db/schemas.h.
#include "db/schemas.h"

#include <fmt/core.h>

namespace vvm::db {

namespace {

Field text(const char* name, int width) { return {name, FieldKind::kText, width}; }
Field dec(const char* name, int width) { return {name, FieldKind::kDecimal, width}; }
Field hex(const char* name, int width) { return {name, FieldKind::kHex, width}; }

Schema make_vv_schema() {
  std::vector<Field> f = {text("name", 11),     text("class", 1),   dec("serial", 10),
                          dec("client_id", 20), text("owner", 16),  text("group", 16),
                          text("perms", 4),     dec("size", 16),    text("state", 9),
                          text("cache", 8),     hex("created", 10), hex("finished", 10),
                          hex("accessed", 10),  hex("checksum", 16)};
  for (int i = 1; i <= kMaxCopies; ++i) {
    f.push_back({fmt::format("copy{}_vsn", i), FieldKind::kText, 6});
    f.push_back({fmt::format("copy{}_file", i), FieldKind::kDecimal, 6});
  }
  auto s = Schema::make("vv", std::move(f), 256);
  if (!s.ok()) throw std::logic_error(s.status().message());  // a bug in the lines above
  return std::move(*s);
}

Schema make_vsn_schema() {
  auto s = Schema::make("vsn",
                        {text("name", 6), text("media", 8), text("class", 1), text("state", 8),
                         text("location", 12), dec("next_file", 6), dec("bytes_used", 16),
                         dec("capacity", 16), dec("errors", 6), hex("last_mount", 10)},
                        128);
  if (!s.ok()) throw std::logic_error(s.status().message());
  return std::move(*s);
}

const std::string& str(const Values& v, size_t i) { return std::get<std::string>(v[i]); }
uint64_t num(const Values& v, size_t i) { return std::get<uint64_t>(v[i]); }

// Checks that `v` has the schema's kinds, so that from_values can take them as they are.
Status check_kinds(const Values& v, const Schema& s) {
  if (v.size() != s.fields().size()) {
    return Status::InvalidArgument(
        fmt::format("{}: {} values for {} fields", s.table(), v.size(), s.fields().size()));
  }
  for (size_t i = 0; i < v.size(); ++i) {
    bool is_text = std::holds_alternative<std::string>(v[i]);
    if (is_text != (s.fields()[i].kind == FieldKind::kText)) {
      return Status::InvalidArgument(
          fmt::format("{}.{}: wrong kind of value", s.table(), s.fields()[i].name));
    }
  }
  return Status::Ok();
}

enum VvField : size_t {
  kName,
  kClass,
  kSerial,
  kClientId,
  kOwner,
  kGroup,
  kPerms,
  kSize,
  kState,
  kCache,
  kCreated,
  kFinished,
  kAccessed,
  kChecksum,
  kCopies
};
enum VsnField : size_t {
  kVsnName,
  kMedia,
  kVsnClass,
  kVsnState,
  kLocation,
  kNextFile,
  kBytesUsed,
  kCapacity,
  kErrors,
  kLastMount
};

}  // namespace

const Schema& vv_schema() {
  static const Schema s = make_vv_schema();
  return s;
}

const Schema& vsn_schema() {
  static const Schema s = make_vsn_schema();
  return s;
}

Values VvRecord::to_values() const {
  Values v = {name, vv_class, serial, client_id, owner,    group,    perms,
              size, state,    cache,  created,   finished, accessed, checksum};
  for (const VvCopy& c : copies) {
    v.emplace_back(c.vsn);
    v.emplace_back(c.file);
  }
  return v;
}

Result<VvRecord> VvRecord::from_values(const Values& v) {
  VVM_RETURN_IF_ERROR(check_kinds(v, vv_schema()));
  VvRecord r;
  r.name = str(v, kName);
  r.vv_class = str(v, kClass);
  r.serial = num(v, kSerial);
  r.client_id = num(v, kClientId);
  r.owner = str(v, kOwner);
  r.group = str(v, kGroup);
  r.perms = str(v, kPerms);
  r.size = num(v, kSize);
  r.state = str(v, kState);
  r.cache = str(v, kCache);
  r.created = num(v, kCreated);
  r.finished = num(v, kFinished);
  r.accessed = num(v, kAccessed);
  r.checksum = num(v, kChecksum);
  for (size_t i = 0; i < kMaxCopies; ++i) {
    r.copies[i] = {str(v, kCopies + 2 * i), num(v, kCopies + 2 * i + 1)};
  }
  return r;
}

Values VsnRecord::to_values() const {
  return {name,      media,      vsn_class, state,  location,
          next_file, bytes_used, capacity,  errors, last_mount};
}

Result<VsnRecord> VsnRecord::from_values(const Values& v) {
  VVM_RETURN_IF_ERROR(check_kinds(v, vsn_schema()));
  VsnRecord r;
  r.name = str(v, kVsnName);
  r.media = str(v, kMedia);
  r.vsn_class = str(v, kVsnClass);
  r.state = str(v, kVsnState);
  r.location = str(v, kLocation);
  r.next_file = num(v, kNextFile);
  r.bytes_used = num(v, kBytesUsed);
  r.capacity = num(v, kCapacity);
  r.errors = num(v, kErrors);
  r.last_mount = num(v, kLastMount);
  return r;
}

// Field positions as in make_vv_schema / make_vsn_schema; the unit test checks that a record
// read through a sink equals one read through Values.
void VvSink::text(size_t i, std::string_view v) {
  switch (i) {
    case kName: r_.name.assign(v); break;
    case kClass: r_.vv_class.assign(v); break;
    case kOwner: r_.owner.assign(v); break;
    case kGroup: r_.group.assign(v); break;
    case kPerms: r_.perms.assign(v); break;
    case kState: r_.state.assign(v); break;
    case kCache: r_.cache.assign(v); break;
    default:
      if (i >= kCopies && (i - kCopies) % 2 == 0) r_.copies[(i - kCopies) / 2].vsn.assign(v);
  }
}

void VvSink::number(size_t i, uint64_t v) {
  switch (i) {
    case kSerial: r_.serial = v; break;
    case kClientId: r_.client_id = v; break;
    case kSize: r_.size = v; break;
    case kCreated: r_.created = v; break;
    case kFinished: r_.finished = v; break;
    case kAccessed: r_.accessed = v; break;
    case kChecksum: r_.checksum = v; break;
    default:
      if (i > kCopies && (i - kCopies) % 2 == 1) r_.copies[(i - kCopies) / 2].file = v;
  }
}

void VsnSink::text(size_t i, std::string_view v) {
  switch (i) {
    case kVsnName: r_.name.assign(v); break;
    case kMedia: r_.media.assign(v); break;
    case kVsnClass: r_.vsn_class.assign(v); break;
    case kVsnState: r_.state.assign(v); break;
    case kLocation: r_.location.assign(v); break;
    default: break;
  }
}

void VsnSink::number(size_t i, uint64_t v) {
  switch (i) {
    case kNextFile: r_.next_file = v; break;
    case kBytesUsed: r_.bytes_used = v; break;
    case kCapacity: r_.capacity = v; break;
    case kErrors: r_.errors = v; break;
    case kLastMount: r_.last_mount = v; break;
    default: break;
  }
}

std::vector<Index> vv_indexes() {
  using Keys = std::vector<std::string>;
  return {
      Index("name", true,
            [](const Values& v, Keys& out) { out.push_back(KeyBuilder().text(str(v, kName))); }),
      Index("hot", false,
            [](const Values& v, Keys& out) {
              if (str(v, kState) != "hot") return;
              out.push_back(KeyBuilder().text(str(v, kClass)).number(num(v, kClientId)));
            }),
      Index("unwritten", true,
            [](const Values& v, Keys& out) {
              if (str(v, kState) != "finished") return;
              out.push_back(KeyBuilder().text(str(v, kName)));
            }),
      Index("vsn", false,
            [](const Values& v, Keys& out) {
              for (size_t i = 0; i < kMaxCopies; ++i) {
                const std::string& vsn = str(v, kCopies + 2 * i);
                if (!vsn.empty()) {
                  out.push_back(KeyBuilder().text(vsn).number(num(v, kCopies + 2 * i + 1)));
                }
              }
            }),
      Index("id", false,
            [](const Values& v, Keys& out) {
              out.push_back(KeyBuilder().number(num(v, kClientId)));
            }),
  };
}

const Schema& counter_schema() {
  static const Schema s = [] {
    auto made = Schema::make("counter", {text("name", 24), dec("value", 20)}, 64);
    if (!made.ok()) throw std::logic_error(made.status().message());  // a bug here
    return std::move(*made);
  }();
  return s;
}

std::vector<Index> counter_indexes() {
  using Keys = std::vector<std::string>;
  return {Index("name", true, [](const Values& v, Keys& out) {
    out.push_back(KeyBuilder().text(std::get<std::string>(v[0])));
  })};
}

std::vector<Index> vsn_indexes() {
  using Keys = std::vector<std::string>;
  return {
      Index("name", true,
            [](const Values& v, Keys& out) { out.push_back(KeyBuilder().text(str(v, kVsnName))); }),
      Index("hot", false,
            [](const Values& v, Keys& out) {
              if (str(v, kVsnState) != "hot") return;
              out.push_back(KeyBuilder().text(str(v, kVsnClass)).text(str(v, kLocation)));
            }),
  };
}

}  // namespace vvm::db
