// catalog/records.cc: the VV, VSN and counter tables' schemas, indexes and conversions; see
// catalog/records.h.
#include "catalog/records.h"

#include <charconv>
#include <stdexcept>

#include <fmt/core.h>

#include "db/index.h"

namespace vvm::vvmd {

namespace {

using db::Field;
using db::FieldKind;
using db::KeyBuilder;
using db::Values;

Field text(const char* name, int width) { return {name, FieldKind::kText, width, {}}; }
Field dec(const char* name, int width) { return {name, FieldKind::kDecimal, width, {}}; }
Field hex(const char* name, int width) { return {name, FieldKind::kHex, width, {}}; }

db::Schema made(Result<db::Schema> s) {
  if (!s.ok()) throw std::logic_error(s.status().message());  // a bug in the lists below
  return std::move(*s);
}

// The fields' positions, in schema order: never reorder, only append (a VV field after the
// copies is at kCopies + 2 * kMaxVvCopies).
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
  kCopies,  // copy1_vsn, copy1_file, ... copy4_file
};
enum CopyField : size_t {
  kCopyVsn,
  kCopyFile,
  kCopyVv,
  kCopyNumber,
  kCopySize,
  kCopyState,
  kCopySince,
  kCopyBy,
  kCopyWhy,
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
  kLastMount,
};

db::Schema make_vv_schema() {
  std::vector<Field> f = {text("name", 11),     text("class", 1),   dec("serial", 10),
                          dec("client_id", 20), text("owner", 16),  text("group", 16),
                          text("perms", 4),     dec("size", 16),    text("state", 9),
                          text("cache", 8),     hex("created", 10), hex("finished", 10),
                          hex("accessed", 10),  hex("checksum", 16)};
  for (int i = 1; i <= kMaxVvCopies; ++i) {
    f.push_back({fmt::format("copy{}_vsn", i), FieldKind::kText, 6, {}});
    f.push_back({fmt::format("copy{}_file", i), FieldKind::kDecimal, 6, {}});
  }
  return made(db::Schema::make("vv", std::move(f), 256));
}

db::Schema make_vsn_schema() {
  return made(
      db::Schema::make("vsn",
                       {text("name", 6), text("media", 8), text("class", 1), text("state", 8),
                        text("location", 12), dec("next_file", 6), dec("bytes_used", 16),
                        dec("capacity", 16), dec("errors", 6), hex("last_mount", 10)},
                       128));
}

db::Schema make_state_schema() {
  return made(db::Schema::make("state",
                               {text("kind", 5), text("name", 12), text("state", 9),
                                hex("since", 10), text("by", 16), text("reason", 180)},
                               256));
}

db::Schema make_verify_schema() {
  return made(
      db::Schema::make("verify",
                       {text("vsn", 6), dec("file", 6), text("vv", 11), dec("copy", 1),
                        hex("when", 10), text("how", 8), text("result", 4), text("why", 160)},
                       256));
}

db::Schema make_copy_schema() {
  return made(db::Schema::make(
      "copy",
      {text("vsn", 6), dec("file", 6), text("vv", 11), dec("copy", 1), dec("size", 16),
       text("state", 4), hex("since", 10), text("by", 16), text("why", 150)},
      256));
}

const std::string& str(const Values& v, size_t i) { return std::get<std::string>(v[i]); }
uint64_t num(const Values& v, size_t i) { return std::get<uint64_t>(v[i]); }

// Checks that `v` has the schema's kinds, so that the sinks can take them as they are.
Status check_kinds(const Values& v, const db::Schema& s) {
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

// Feeds `v` to `sink` field by field; InvalidArgument naming the field that it refuses.
Status feed(const Values& v, const db::Schema& s, db::FieldSink& sink) {
  VVM_RETURN_IF_ERROR(check_kinds(v, s));
  for (size_t i = 0; i < v.size(); ++i) {
    const bool ok = std::holds_alternative<std::string>(v[i]) ? sink.text(i, str(v, i))
                                                              : sink.number(i, num(v, i));
    if (!ok) {
      const std::string shown =
          std::holds_alternative<std::string>(v[i]) ? str(v, i) : std::to_string(num(v, i));
      return Status::InvalidArgument(fmt::format("{}.{}: '{}' is not a value this field takes",
                                                 s.table(), s.fields()[i].name, shown));
    }
  }
  return Status::Ok();
}

// "0640" (at most 4 octal digits, as the record holds them) as mode bits.
bool parse_octal(std::string_view text, uint32_t* out) {
  if (text.empty() || text.size() > 4) return false;
  uint32_t v = 0;
  for (char d : text) {
    if (d < '0' || d > '7') return false;
    v = v * 8 + static_cast<uint32_t>(d - '0');
  }
  *out = v;
  return true;
}

// The state words, parsed here rather than by parse_vv_state and its kin: a lookup decodes three
// of them, and these are inlined.
template <class E, size_t N>
bool parse_word(std::string_view text, const std::pair<std::string_view, E> (&words)[N], E* out) {
  for (const auto& [word, value] : words) {
    if (text == word) {
      *out = value;
      return true;
    }
  }
  return false;
}
constexpr std::pair<std::string_view, VvState> kVvStates[] = {
    {"hot", VvState::kHot}, {"finished", VvState::kFinished}, {"archived", VvState::kArchived}};
constexpr std::pair<std::string_view, CacheState> kCacheStates[] = {
    {"cached", CacheState::kCached},
    {"evicted", CacheState::kEvicted},
    {"staging", CacheState::kStaging}};
constexpr std::pair<std::string_view, CopyMarkState> kCopyStates[] = {
    {"bad", CopyMarkState::kBad}, {"dead", CopyMarkState::kDead}};
constexpr std::pair<std::string_view, VsnState> kVsnStates[] = {
    {"blank", VsnState::kBlank},       {"hot", VsnState::kHot},
    {"full", VsnState::kFull},         {"retired", VsnState::kRetired},
    {"readonly", VsnState::kReadOnly}, {"disabled", VsnState::kDisabled},
    {"reclaim", VsnState::kReclaim},   {"bad", VsnState::kBad}};
// The word the VSN record holds for `s`: vvctl's, but for read-only, one letter too wide.
std::string vsn_state_word(VsnState s) {
  return s == VsnState::kReadOnly ? "readonly" : std::string(vsn_state_name(s));
}

}  // namespace

const db::Schema& vv_schema() {
  static const db::Schema s = make_vv_schema();
  return s;
}

const db::Schema& vsn_schema() {
  static const db::Schema s = make_vsn_schema();
  return s;
}

const db::Schema& counter_schema() {
  static const db::Schema s =
      made(db::Schema::make("counter", {text("name", 24), dec("value", 20)}, 64));
  return s;
}

const db::Schema& state_schema() {
  static const db::Schema s = make_state_schema();
  return s;
}

Values state_values(const StateNote& r) {
  return {r.kind, r.name, r.state, r.since, db_text(r.by, 16), db_text(r.reason, 180)};
}

Result<StateNote> state_from_values(const Values& v) {
  VVM_RETURN_IF_ERROR(check_kinds(v, state_schema()));
  return StateNote{
      str(v, 0), str(v, 1), str(v, 2), num(v, 3), db_text_read(str(v, 4)), db_text_read(str(v, 5))};
}

const db::Schema& verify_schema() {
  static const db::Schema s = make_verify_schema();
  return s;
}

Values verify_values(const VerifyMark& r) {
  return {r.vsn,
          r.file,
          r.vv,
          uint64_t{r.copy},
          r.when,
          r.how,
          std::string(r.good ? "good" : "bad"),
          db_text(r.why, 160)};
}

Result<VerifyMark> verify_from_values(const Values& v) {
  VVM_RETURN_IF_ERROR(check_kinds(v, verify_schema()));
  const std::string& result = str(v, 6);
  if (result != "good" && result != "bad") {
    return Status::InvalidArgument(fmt::format("verify.result: '{}' is not good or bad", result));
  }
  return VerifyMark{str(v, 0), num(v, 1), str(v, 2),        static_cast<uint32_t>(num(v, 3)),
                    num(v, 4), str(v, 5), result == "good", db_text_read(str(v, 7))};
}

const db::Schema& copy_schema() {
  static const db::Schema s = make_copy_schema();
  return s;
}

std::string db_text(std::string_view text, size_t width) {
  std::string out;
  for (unsigned char c : text) {
    std::string one;
    if (c == ' ') {
      one = "_";
    } else if (c == '_' || c == '%' || c < 0x21 || c > 0x7e) {
      one = fmt::format("%{:02X}", c);
    } else {
      one.assign(1, static_cast<char>(c));
    }
    if (out.size() + one.size() > width) break;
    out += one;
  }
  if (out == db::kEmptyText) out = "%2D";  // "-" alone stands for the empty text
  return out;
}

std::string db_text_read(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    const char c = field[i];
    if (c == '_') {
      out += ' ';
    } else if (c == '%' && i + 2 < field.size()) {
      unsigned v = 0;
      auto [end, ec] = std::from_chars(field.data() + i + 1, field.data() + i + 3, v, 16);
      if (ec != std::errc() || end != field.data() + i + 3) {
        out += c;
        continue;
      }
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

Values copy_values(const CopyMark& r) {
  return {r.vsn,
          r.file,
          r.vv,
          uint64_t{r.copy},
          r.size,
          std::string(copy_mark_state_name(r.state)),
          r.since,
          db_text(r.by, 16),
          db_text(r.why, 150)};
}

Result<CopyMark> copy_from_values(const Values& v) {
  CopyMark r;
  CopySink sink(&r);
  VVM_RETURN_IF_ERROR(feed(v, copy_schema(), sink));
  return r;
}

bool CopySink::text(size_t i, std::string_view v) {
  switch (i) {
    case kCopyVsn: mark_.vsn.assign(v); return true;
    case kCopyVv: mark_.vv.assign(v); return true;
    case kCopyState: return parse_word(v, kCopyStates, &mark_.state);
    case kCopyBy: mark_.by = db_text_read(v); return true;
    case kCopyWhy: mark_.why = db_text_read(v); return true;
    default: return true;
  }
}

bool CopySink::number(size_t i, uint64_t v) {
  switch (i) {
    case kCopyFile: mark_.file = v; break;
    case kCopyNumber: mark_.copy = static_cast<uint32_t>(v); break;
    case kCopySize: mark_.size = v; break;
    case kCopySince: mark_.since = v; break;
    default: break;
  }
  return true;
}

Values vv_values(const Vv& r) {
  Values v = {r.name,
              r.vv_class,
              r.serial,
              r.client_id,
              r.owner,
              r.group,
              fmt::format("{:04o}", r.perms),
              r.size,
              std::string(vv_state_name(r.state)),
              std::string(cache_state_name(r.cache)),
              r.created,
              r.finished,
              r.accessed,
              r.checksum};
  for (const VvCopy& c : r.copies) {
    v.emplace_back(c.vsn);
    v.emplace_back(c.file);
  }
  return v;
}

Result<Vv> vv_from_values(const Values& v) {
  Vv r;
  VvSink sink(&r);
  VVM_RETURN_IF_ERROR(feed(v, vv_schema(), sink));
  return r;
}

Values vsn_values(const Vsn& r) {
  return {r.name,     r.media,     r.vsn_class,  vsn_state_word(r.state),
          r.location, r.next_file, r.bytes_used, r.capacity,
          r.errors,   r.last_mount};
}

Result<Vsn> vsn_from_values(const Values& v) {
  Vsn r;
  VsnSink sink(&r);
  VVM_RETURN_IF_ERROR(feed(v, vsn_schema(), sink));
  return r;
}

// Field positions as in make_vv_schema / make_vsn_schema; the unit test checks that a record
// read through a sink equals the one written.
bool VvSink::text(size_t i, std::string_view v) {
  switch (i) {
    case kName: vv_.name.assign(v); return true;
    case kClass: vv_.vv_class.assign(v); return true;
    case kOwner: vv_.owner.assign(v); return true;
    case kGroup: vv_.group.assign(v); return true;
    case kPerms: return parse_octal(v, &vv_.perms);
    case kState: return parse_word(v, kVvStates, &vv_.state);
    case kCache: return parse_word(v, kCacheStates, &vv_.cache);
    default:
      if (i >= kCopies && (i - kCopies) % 2 == 0 && i < kCopies + 2 * kMaxVvCopies) {
        vv_.copies[(i - kCopies) / 2].vsn.assign(v);
      }
      return true;
  }
}

bool VvSink::number(size_t i, uint64_t v) {
  switch (i) {
    case kSerial: vv_.serial = v; break;
    case kClientId: vv_.client_id = v; break;
    case kSize: vv_.size = v; break;
    case kCreated: vv_.created = v; break;
    case kFinished: vv_.finished = v; break;
    case kAccessed: vv_.accessed = v; break;
    case kChecksum: vv_.checksum = v; break;
    default:
      if (i > kCopies && (i - kCopies) % 2 == 1 && i < kCopies + 2 * kMaxVvCopies) {
        vv_.copies[(i - kCopies) / 2].file = v;
      }
  }
  return true;
}

bool VsnSink::text(size_t i, std::string_view v) {
  switch (i) {
    case kVsnName: vsn_.name.assign(v); return true;
    case kMedia: vsn_.media.assign(v); return true;
    case kVsnClass: vsn_.vsn_class.assign(v); return true;
    case kVsnState: return parse_word(v, kVsnStates, &vsn_.state);
    case kLocation: vsn_.location.assign(v); return true;
    default: return true;
  }
}

bool VsnSink::number(size_t i, uint64_t v) {
  switch (i) {
    case kNextFile: vsn_.next_file = v; break;
    case kBytesUsed: vsn_.bytes_used = v; break;
    case kCapacity: vsn_.capacity = v; break;
    case kErrors: vsn_.errors = v; break;
    case kLastMount: vsn_.last_mount = v; break;
    default: break;
  }
  return true;
}

std::vector<db::Index> vv_indexes() {
  using Keys = std::vector<std::string>;
  return {
      db::Index(
          "name", true,
          [](const Values& v, Keys& out) { out.push_back(KeyBuilder().text(str(v, kName))); }),
      db::Index("hot", false,
                [](const Values& v, Keys& out) {
                  if (str(v, kState) != vv_state_name(VvState::kHot)) return;
                  out.push_back(KeyBuilder().text(str(v, kClass)).number(num(v, kClientId)));
                }),
      db::Index("unwritten", true,
                [](const Values& v, Keys& out) {
                  if (str(v, kState) != vv_state_name(VvState::kFinished)) return;
                  out.push_back(KeyBuilder().text(str(v, kName)));
                }),
      db::Index("vsn", false,
                [](const Values& v, Keys& out) {
                  for (size_t i = 0; i < kMaxVvCopies; ++i) {
                    const std::string& vsn = str(v, kCopies + 2 * i);
                    if (!vsn.empty()) {
                      out.push_back(KeyBuilder().text(vsn).number(num(v, kCopies + 2 * i + 1)));
                    }
                  }
                }),
      db::Index("id", false,
                [](const Values& v, Keys& out) {
                  out.push_back(KeyBuilder().number(num(v, kClientId)));
                }),
  };
}

std::vector<db::Index> vsn_indexes() {
  using Keys = std::vector<std::string>;
  return {
      db::Index(
          "name", true,
          [](const Values& v, Keys& out) { out.push_back(KeyBuilder().text(str(v, kVsnName))); }),
      db::Index("hot", false,
                [](const Values& v, Keys& out) {
                  if (str(v, kVsnState) != vsn_state_name(VsnState::kHot)) return;
                  out.push_back(KeyBuilder().text(str(v, kVsnClass)).text(str(v, kLocation)));
                }),
  };
}

std::vector<db::Index> copy_indexes() {
  using Keys = std::vector<std::string>;
  return {
      db::Index("place", true,
                [](const Values& v, Keys& out) {
                  out.push_back(KeyBuilder().text(str(v, kCopyVsn)).number(num(v, kCopyFile)));
                }),
      db::Index(
          "vv", false,
          [](const Values& v, Keys& out) { out.push_back(KeyBuilder().text(str(v, kCopyVv))); }),
  };
}

std::vector<db::Index> verify_indexes() {
  using Keys = std::vector<std::string>;
  return {db::Index("place", true, [](const Values& v, Keys& out) {
    out.push_back(KeyBuilder().text(str(v, 0)).number(num(v, 1)));
  })};
}

std::vector<db::Index> state_indexes() {
  using Keys = std::vector<std::string>;
  return {db::Index("name", true, [](const Values& v, Keys& out) {
    out.push_back(KeyBuilder().text(str(v, 0)).text(str(v, 1)));
  })};
}

std::vector<db::Index> counter_indexes() {
  using Keys = std::vector<std::string>;
  return {db::Index("name", true, [](const Values& v, Keys& out) {
    out.push_back(KeyBuilder().text(str(v, 0)));
  })};
}

}  // namespace vvm::vvmd
