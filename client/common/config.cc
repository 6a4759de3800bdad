// config.cc: reads vvm.conf into a checked Config.
//
// Boost.Program_options splits the INI text into "section.key = value" options. It gives no line
// numbers, so a scan of the text, made with the same rules (a '#' starts a comment, blanks are
// trimmed, "[...]" is a header), indexes the line of every header and key; the n-th option named
// "vvmd.listen" is the n-th "listen" line under a [vvmd] header. The scan also checks what
// Program_options would let through: keys before any header, and headers it cannot take.
#include "common/config.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <fmt/core.h>
#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <set>
#include <sstream>

#include "common/size.h"
#include "pack/packtab.h"

namespace vvm {

namespace po = boost::program_options;

namespace {

constexpr std::string_view kBlanks = " \t\r\n";  // what Program_options trims

std::string_view trim(std::string_view s) {
  size_t first = s.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  size_t last = s.find_last_not_of(kBlanks);
  return s.substr(first, last - first + 1);
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// "a b, c" -> {"a", "b", "c"}.
std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> items;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = s.find_first_not_of(" \t,", i);
    if (start == std::string_view::npos) break;
    size_t end = s.find_first_of(" \t,", start);
    if (end == std::string_view::npos) end = s.size();
    items.emplace_back(s.substr(start, end - start));
    i = end;
  }
  return items;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

// A relative path is taken from `base_dir`, or from the working folder when there is none.
std::string resolve_path(std::string_view base_dir, std::string_view path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (p.is_relative()) {
    if (!base_dir.empty()) {
      p = fs::path(base_dir) / p;
    } else {
      std::error_code ec;
      fs::path abs = fs::absolute(p, ec);
      if (!ec) p = abs;
    }
  }
  std::string out = p.lexically_normal().string();
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

template <class Id, class Entry, class Lookup, class Field>
Result<Id> resolve_id(std::string_view text, std::string_view what, Lookup lookup, Field field) {
  if (text.empty()) return Status::InvalidArgument(fmt::format("empty {} name", what));
  if (all_digits(text)) {
    if (text.size() > 10 || std::stoull(std::string(text)) >= 0xffffffffULL) {
      return Status::InvalidArgument(fmt::format("{} id '{}' is out of range", what, text));
    }
    return static_cast<Id>(std::stoull(std::string(text)));
  }
  std::string name(text);
  long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<size_t>(hint) : 16384);
  Entry entry;
  Entry* found = nullptr;
  for (;;) {
    int rc = lookup(name.c_str(), &entry, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 24)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0) return Status::FromErrno(rc, fmt::format("looking up {} '{}'", what, name));
    break;
  }
  if (found == nullptr) return Status::NotFound(fmt::format("no such {} '{}'", what, name));
  return static_cast<Id>(found->*field);
}

// ---- the sections and keys of vvm.conf ----

enum class Kind {
  kGlobal,
  kVvmd,
  kCache,
  kPlugin,
  kLibrary,
  kCluster,
  kMedia,
  kClass,
  kMover,
  kDrive,
  kIdentity
};

struct KeySpec {
  std::string_view key;
  bool list;  // may be given more than once
};

struct KindSpec {
  std::string_view word;
  Kind kind;
  bool named;
  std::vector<KeySpec> keys;

  const KeySpec* find(std::string_view key) const {
    for (const auto& k : keys) {
      if (k.key == key) return &k;
    }
    return nullptr;
  }
  std::string key_names() const {
    std::vector<std::string> names;
    for (const auto& k : keys) names.emplace_back(k.key);
    return join(names, ", ");
  }
};

const std::vector<KindSpec>& kind_specs() {
  static const std::vector<KindSpec> kSpecs = {
      {"global",
       Kind::kGlobal,
       false,
       {{"state-dir", false}, {"log-level", false}, {"log-target", false}}},
      {"vvmd",
       Kind::kVvmd,
       false,
       {{"listen", true},
        {"allow-host", true},
        {"allow-uid", true},
        {"allow-group", true},
        {"database-dir", false},
        {"idle-finish", false},
        {"request-timeout", false},
        {"archive-batch-size", false},
        {"archive-batch-files", false},
        {"archive-max-wait", false},
        {"scrub-interval", false},
        {"metrics", false},
        {"tls-psk-file", false},
        {"tls-certificates", false},
        {"tls-verify-peer", false},
        {"tls-client-psk-file", false},
        {"tls-client-username", false},
        {"tls-client-certificates", false}}},
      {"cache",
       Kind::kCache,
       false,
       {{"dir", false}, {"high-watermark", false}, {"low-watermark", false}, {"size", false}}},
      {"plugin", Kind::kPlugin, false, {{"packtab", false}, {"stage-timeout", false}}},
      {"library", Kind::kLibrary, false, {{"kind", false}, {"path", false}}},
      {"cluster",
       Kind::kCluster,
       false,
       {{"etcd", true},
        {"etcd-timeout", false},
        {"node", false},
        {"advertise", false},
        {"lease-ttl", false},
        {"prefix", false},
        {"disk", true}}},
      {"media",
       Kind::kMedia,
       true,
       {{"capacity", false}, {"block-size", false}, {"description", false}}},
      {"class",
       Kind::kClass,
       true,
       {{"media", false},
        {"description", false},
        {"read-max-drives", false},
        {"write-max-drives", false},
        {"archive-min-wait", false}}},
      {"mover",
       Kind::kMover,
       true,
       {{"listen", false},
        {"stall-timeout", false},
        {"metrics", false},
        {"tls-psk-file", false},
        {"tls-certificates", false},
        {"tls-verify-peer", false},
        {"tls-client-psk-file", false},
        {"tls-client-username", false},
        {"tls-client-certificates", false}}},
      {"drive",
       Kind::kDrive,
       true,
       {{"mover", false}, {"media", false}, {"device", false}, {"emulated-rate", false}}},
      {"identity",
       Kind::kIdentity,
       true,
       {{"user", false},
        {"group", false},
        {"groups", true},
        {"psk-username", true},
        {"subject", true},
        {"client-ca", false},
        {"role", false}}},
  };
  return kSpecs;
}

const KindSpec* find_kind(std::string_view word) {
  for (const auto& spec : kind_specs()) {
    if (spec.word == word) return &spec;
  }
  return nullptr;
}

std::string known_sections() {
  std::vector<std::string> names;
  for (const auto& spec : kind_specs()) {
    names.push_back(spec.named ? fmt::format("[{} NAME]", spec.word)
                               : fmt::format("[{}]", spec.word));
  }
  return join(names, ", ");
}

// The reason a section name is refused, or "" when it is good.
std::string check_section_name(Kind kind, std::string_view name) {
  auto is_upper_or_digit = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  switch (kind) {
    case Kind::kClass:
      if (name.size() != 1 || !is_upper_or_digit(name[0])) {
        return fmt::format(
            "class name '{}' must be one uppercase letter or digit (VV names start with it)", name);
      }
      return "";
    case Kind::kMedia:
      if (name.size() > 8) {
        return fmt::format(
            "media type name '{}' is longer than 8 characters (the tape label holds 8)", name);
      }
      if (!std::all_of(name.begin(), name.end(), is_upper_or_digit)) {
        return fmt::format("media type name '{}' may hold only uppercase letters and digits", name);
      }
      return "";
    default:
      if (name.size() > 64) return fmt::format("name '{}' is longer than 64 characters", name);
      for (char c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
          return fmt::format("name '{}' may hold only letters, digits, '-' and '_'", name);
        }
      }
      return "";
  }
}

Result<int> parse_percent(std::string_view text) {
  std::string_view digits = text;
  if (!digits.empty() && digits.back() == '%') digits.remove_suffix(1);
  if (!all_digits(digits)) {
    return Status::InvalidArgument(fmt::format("'{}' is not a percentage (write 90 or 90%)", text));
  }
  if (digits.size() > 3 || std::stoi(std::string(digits)) > 100) {
    return Status::InvalidArgument(fmt::format("'{}' is not between 0% and 100%", text));
  }
  return std::stoi(std::string(digits));
}

Result<std::chrono::seconds> parse_positive_duration(std::string_view text) {
  auto d = parse_duration(text);
  if (d.ok() && d->count() == 0) {
    return Status::InvalidArgument(fmt::format("'{}': must be at least 1s", text));
  }
  return d;
}

// ---- the reader ----

struct Section {
  const KindSpec* spec;
  std::string name;   // "" for [global] and the other fixed sections
  std::string label;  // "vvmd", "media LTO9": how messages name it
  int line;
  std::map<std::string, int, std::less<>> key_lines;  // key -> the line it was first given on
};

// Where Program_options' n-th option of one name came from.
struct KeyLine {
  size_t section;
  std::string key;
  int line;
};

class ConfigReader {
 public:
  ConfigReader(std::string_view text, std::string_view origin, std::string_view base_dir)
      : text_(text), origin_(origin), base_dir_(base_dir) {}

  Result<Config> read() {
    VVM_RETURN_IF_ERROR(scan());
    VVM_RETURN_IF_ERROR(parse_options());
    VVM_RETURN_IF_ERROR(check());
    return std::move(config_);
  }

 private:
  Status fail(int line, std::string_view where, std::string_view reason) const {
    return Status::InvalidArgument(fmt::format("{}:{}: {}: {}", origin_, line, where, reason));
  }

  Status scan();
  Status scan_header(int line, std::string_view inside);
  Status parse_options();
  Status apply(Section& section, const std::string& key, const std::string& value, int line);
  Status apply_value(Section& section, const std::string& key, const std::string& value);
  Status apply_cluster(ClusterConfig& cluster, const std::string& key, const std::string& value);
  Status apply_identity(TlsIdentity& id, const std::string& key, const std::string& value);
  Status apply_tls(TlsServerConfig& tls, TlsClientConfig& client, const std::string& key,
                   const std::string& value);
  Status check_mover_tls(const Section& s);
  Status check_tls_client(const TlsClientConfig& client, const Section& s);
  Status check();
  Status check_identity(const Section& s);
  std::string path(std::string_view value) const { return resolve_path(base_dir_, value); }

  std::string_view text_;
  std::string origin_;
  std::string base_dir_;
  Config config_;
  std::vector<Section> sections_;
  std::map<std::string, std::deque<KeyLine>> key_lines_;  // by Program_options' name
  std::map<std::string, size_t> section_by_prefix_;       // "media LTO9." -> index
  std::map<std::string, size_t> section_by_label_;
};

Status ConfigReader::scan() {
  int line = 0;
  std::string prefix;  // Program_options' prefix of the current section, "" before the first
  size_t section = 0;
  size_t pos = 0;
  while (pos <= text_.size()) {
    size_t end = text_.find('\n', pos);
    if (end == std::string_view::npos) end = text_.size();
    std::string_view raw = text_.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    std::string_view s = trim(raw.substr(0, raw.find('#')));
    if (s.empty()) continue;
    if (s.front() == '[' && s.back() == ']' && s.size() >= 2) {
      std::string_view inside = s.substr(1, s.size() - 2);
      VVM_RETURN_IF_ERROR(scan_header(line, inside));
      prefix = std::string(inside);
      if (prefix.back() != '.') prefix += '.';
      section = sections_.size() - 1;
      section_by_prefix_[prefix] = section;
      continue;
    }
    size_t eq = s.find('=');
    if (eq == std::string_view::npos) {
      return fail(line, fmt::format("'{}'", s), "expected 'key = value' or a [section] header");
    }
    std::string_view key = trim(s.substr(0, eq));
    if (key.empty()) return fail(line, fmt::format("'{}'", s), "no key before '='");
    if (sections_.empty()) {
      return fail(line, key, "outside any section (put it under a [section] header)");
    }
    key_lines_[prefix + std::string(key)].push_back({section, std::string(key), line});
  }
  return Status::Ok();
}

Status ConfigReader::scan_header(int line, std::string_view inside) {
  std::string where = fmt::format("[{}]", inside);
  std::vector<std::string> words;
  std::string_view rest = inside;
  while (!(rest = trim(rest)).empty()) {
    size_t end = rest.find_first_of(kBlanks);
    words.emplace_back(rest.substr(0, end));
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  }
  if (words.empty()) return fail(line, where, "empty section name");
  const KindSpec* spec = find_kind(words[0]);
  if (spec == nullptr) {
    return fail(line, where, fmt::format("unknown section (known: {})", known_sections()));
  }
  if (!spec->named && words.size() > 1) {
    return fail(line, where, fmt::format("[{}] takes no name", spec->word));
  }
  if (spec->named && words.size() == 1) {
    return fail(line, where, fmt::format("needs a name, as in [{} NAME]", spec->word));
  }
  if (words.size() > 2) return fail(line, where, "a name cannot hold blanks");
  std::string name = spec->named ? words[1] : "";
  if (spec->named) {
    if (std::string why = check_section_name(spec->kind, name); !why.empty()) {
      return fail(line, where, why);
    }
  }
  std::string label =
      spec->named ? fmt::format("{} {}", spec->word, name) : std::string(spec->word);
  if (auto it = section_by_label_.find(label); it != section_by_label_.end()) {
    return fail(line, label,
                fmt::format("section given twice (first on line {})", sections_[it->second].line));
  }
  section_by_label_[label] = sections_.size();
  sections_.push_back({spec, name, label, line, {}});

  // A named section exists as soon as its header does, keys or not; so does [cluster], whose
  // presence alone turns cluster mode on.
  switch (spec->kind) {
    case Kind::kCluster:
      config_.cluster.emplace();
      config_.cluster->line = line;
      break;
    case Kind::kMedia: config_.media[name] = MediaType{name, 0, 256 * 1024, line}; break;
    case Kind::kClass: {
      StorageClass c;
      c.letter = name[0];
      c.line = line;
      config_.classes[name[0]] = c;
      break;
    }
    case Kind::kMover: {
      MoverConfig m;
      m.name = name;
      m.line = line;
      config_.movers[name] = m;
      break;
    }
    case Kind::kDrive: {
      DriveConfig d;
      d.name = name;
      d.line = line;
      config_.drives[name] = d;
      break;
    }
    case Kind::kIdentity: {
      TlsIdentity id;
      id.name = name;
      id.line = line;
      config_.identities[name] = id;
      break;
    }
    default: break;
  }
  return Status::Ok();
}

Status ConfigReader::parse_options() {
  // The fixed sections' keys are registered; named sections come through as unregistered options
  // ("media LTO9.capacity"), and so do unknown keys, which apply() refuses.
  po::options_description known;
  for (const auto& spec : kind_specs()) {
    if (spec.named) continue;
    for (const auto& k : spec.keys) {
      std::string name = fmt::format("{}.{}", spec.word, k.key);
      known.add_options()(name.c_str(), po::value<std::vector<std::string>>()->composing());
    }
  }
  std::vector<po::option> options;
  try {
    std::istringstream in{std::string(text_)};
    options = po::parse_config_file(in, known, /*allow_unregistered=*/true).options;
  } catch (const po::invalid_config_file_syntax& e) {
    // The scan refuses every line Program_options would; this is a last resort.
    return Status::InvalidArgument(fmt::format("{}: line '{}': {}", origin_, e.tokens(), e.what()));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(fmt::format("{}: {}", origin_, e.what()));
  }

  for (const po::option& opt : options) {
    auto it = key_lines_.find(opt.string_key);
    if (it == key_lines_.end() || it->second.empty()) {
      return Status::Internal(fmt::format("{}: option '{}' has no line", origin_, opt.string_key));
    }
    KeyLine where = it->second.front();
    it->second.pop_front();
    std::string value = opt.value.empty() ? std::string() : opt.value.front();
    VVM_RETURN_IF_ERROR(apply(sections_[where.section], where.key, value, where.line));
  }
  return Status::Ok();
}

Status ConfigReader::apply(Section& section, const std::string& key, const std::string& value,
                           int line) {
  std::string where = fmt::format("{}.{}", section.label, key);
  const KeySpec* spec = section.spec->find(key);
  if (spec == nullptr) {
    return fail(line, where,
                fmt::format("unknown key (a [{}] section takes: {})",
                            section.spec->named ? fmt::format("{} NAME", section.spec->word)
                                                : std::string(section.spec->word),
                            section.spec->key_names()));
  }
  if (auto first = section.key_lines.find(key); first != section.key_lines.end()) {
    if (!spec->list) {
      return fail(line, where, fmt::format("given twice (first on line {})", first->second));
    }
  } else {
    section.key_lines[key] = line;
  }
  if (value.empty()) return fail(line, where, "empty value");
  Status st = apply_value(section, key, value);
  if (!st.ok()) return fail(line, where, st.message());
  // The TLS files are read at start: name this line.
  if (section.spec->kind == Kind::kVvmd || section.spec->kind == Kind::kMover) {
    const bool vvmd = section.spec->kind == Kind::kVvmd;
    TlsServerConfig& tls = vvmd ? config_.vvmd_tls : config_.movers[section.name].tls;
    TlsClientConfig& client =
        vvmd ? config_.vvmd_tls_client : config_.movers[section.name].tls_client;
    if (key == "tls-psk-file") tls.psk_file_line = line;
    if (key == "tls-certificates") tls.certificates_line = line;
    if (key == "tls-verify-peer") tls.verify_peer_line = line;
    if (key.starts_with("tls-client-") && client.line == 0) client.line = line;
  }
  if (key == "metrics") {  // a daemon that cannot listen there names this line
    if (section.spec->kind == Kind::kVvmd) config_.vvmd_metrics->line = line;
    if (section.spec->kind == Kind::kMover) config_.movers[section.name].metrics->line = line;
  }
  return Status::Ok();
}

// Stores one value; an error's message is the reason alone (apply() adds where).
Status ConfigReader::apply_value(Section& section, const std::string& key,
                                 const std::string& value) {
  Config& c = config_;
  switch (section.spec->kind) {
    case Kind::kGlobal:
      if (key == "state-dir") {
        c.state_dir = path(value);
      } else if (key == "log-level") {
        auto level = log::parse_level(value);
        if (!level) {
          return Status::InvalidArgument(fmt::format(
              "'{}' is not a log level (use debug, info, notice, warning or error)", value));
        }
        c.log_level = *level;
      } else if (key == "log-target") {
        if (value == "stderr") {
          c.log_target = log::Target::kStderr;
        } else if (value == "syslog") {
          c.log_target = log::Target::kSyslog;
        } else {
          return Status::InvalidArgument(
              fmt::format("'{}' is not a log target (use stderr or syslog)", value));
        }
      }
      return Status::Ok();

    case Kind::kVvmd:
      if (key == "listen") {
        auto ep = Endpoint::parse(value);
        if (!ep.ok()) return ep.status();
        c.vvmd_listen.push_back(*ep);
      } else if (key == "allow-host") {
        for (const auto& item : split_list(value)) {
          auto pattern = HostPattern::parse(item);
          if (!pattern.ok()) return pattern.status();
          c.vvmd_access.allowed_hosts.push_back(*pattern);
        }
      } else if (key == "allow-uid") {
        for (const auto& item : split_list(value)) {
          auto uid = resolve_user(item);
          if (!uid.ok()) return uid.status();
          c.vvmd_access.allowed_uids.push_back(*uid);
        }
      } else if (key == "allow-group") {
        for (const auto& item : split_list(value)) {
          auto gid = resolve_group(item);
          if (!gid.ok()) return gid.status();
          c.vvmd_access.allowed_gids.push_back(*gid);
        }
      } else if (key == "database-dir") {
        c.database_dir = path(value);
      } else if (key == "idle-finish" || key == "request-timeout") {
        auto d = parse_positive_duration(value);
        if (!d.ok()) return d.status();
        (key == "idle-finish" ? c.idle_finish : c.request_timeout) = *d;
      } else if (key == "archive-batch-size") {
        auto size = parse_size(value);
        if (!size.ok()) return size.status();
        c.archive_batch_bytes = *size;
      } else if (key == "archive-batch-files") {
        if (!all_digits(value) || value.size() > 9 || std::stoul(value) == 0) {
          return Status::InvalidArgument(
              fmt::format("'{}' is not a number of files (1 or more)", value));
        }
        c.archive_batch_files = static_cast<uint32_t>(std::stoul(value));
      } else if (key == "archive-max-wait") {
        auto d = parse_duration(value);
        if (!d.ok()) return d.status();
        c.archive_max_wait = *d;
      } else if (key == "scrub-interval") {
        auto d = parse_duration(value);
        if (!d.ok()) return d.status();
        c.scrub_interval = *d;
      } else if (key == "metrics") {
        auto m = MetricsListen::parse(value);
        if (!m.ok()) return m.status();
        c.vvmd_metrics = *m;
      } else if (key.starts_with("tls-")) {
        return apply_tls(c.vvmd_tls, c.vvmd_tls_client, key, value);
      }
      return Status::Ok();

    case Kind::kCache:
      if (key == "dir") {
        c.cache_dir = path(value);
      } else if (key == "size") {
        auto size = parse_size(value);
        if (!size.ok()) return size.status();
        // A zero size would make every byte in the cache an infinite percentage.
        if (*size == 0) return Status::InvalidArgument("'0' is not a cache size (1 or more bytes)");
        c.cache_size = *size;
      } else {
        auto percent = parse_percent(value);
        if (!percent.ok()) return percent.status();
        (key == "high-watermark" ? c.high_watermark : c.low_watermark) = *percent;
      }
      return Status::Ok();

    case Kind::kPlugin:
      if (key == "packtab") {
        c.packtab = path(value);
      } else if (key == "stage-timeout") {
        auto d = parse_positive_duration(value);
        if (!d.ok()) return d.status();
        c.stage_timeout = *d;
      }
      return Status::Ok();

    case Kind::kLibrary:
      if (key == "kind") {
        if (value != "emulated" && value != "mtx") {
          return Status::InvalidArgument(
              fmt::format("'{}' is not a library kind (use emulated or mtx)", value));
        }
        c.library_kind = value;
      } else if (key == "path") {
        c.library_path = path(value);
      }
      return Status::Ok();

    case Kind::kCluster: return apply_cluster(*c.cluster, key, value);

    case Kind::kIdentity: return apply_identity(c.identities[section.name], key, value);

    case Kind::kMedia: {
      MediaType& m = c.media[section.name];
      if (key == "capacity" || key == "block-size") {
        auto size = parse_size(value);
        if (!size.ok()) return size.status();
        if (*size == 0)
          return Status::InvalidArgument(fmt::format("'{}': must not be zero", value));
        if (key == "capacity") {
          m.capacity = *size;
        } else {
          constexpr uint64_t kMaxBlock = 16 << 20;
          if (*size > kMaxBlock) {
            return Status::InvalidArgument(
                fmt::format("'{}': more than the largest block size, 16M", value));
          }
          m.block_size = static_cast<uint32_t>(*size);
        }
      }
      return Status::Ok();  // description is for people only
    }

    case Kind::kClass: {
      StorageClass& sc = c.classes[section.name[0]];
      if (key == "media") {
        std::set<std::string> seen;
        for (const auto& item : split_list(value)) {
          if (!seen.insert(item).second) {
            return Status::InvalidArgument(fmt::format(
                "'{}' names {} twice (a class keeps one copy per media type)", value, item));
          }
          sc.media.push_back(item);
        }
      } else if (key == "description") {
        sc.description = value;
      } else if (key == "read-max-drives" || key == "write-max-drives") {
        if (!all_digits(value) || value.size() > 9 || std::stoul(value) == 0) {
          return Status::InvalidArgument(fmt::format(
              "'{}' is not a number of drives (1 or more; leave the key out for no limit)", value));
        }
        (key == "read-max-drives" ? sc.read_max_drives : sc.write_max_drives) =
            static_cast<uint32_t>(std::stoul(value));
      } else if (key == "archive-min-wait") {
        auto d = parse_duration(value);
        if (!d.ok()) return d.status();
        sc.archive_min_wait = *d;
      }
      return Status::Ok();
    }

    case Kind::kMover:
      if (key == "listen") {
        auto ep = Endpoint::parse(value);
        if (!ep.ok()) return ep.status();
        c.movers[section.name].listen = *ep;
      } else if (key == "stall-timeout") {
        auto d = parse_positive_duration(value);
        if (!d.ok()) return d.status();
        c.movers[section.name].stall_timeout = *d;
      } else if (key == "metrics") {
        auto m = MetricsListen::parse(value);
        if (!m.ok()) return m.status();
        c.movers[section.name].metrics = *m;
      } else if (key.starts_with("tls-")) {
        MoverConfig& m = c.movers[section.name];
        return apply_tls(m.tls, m.tls_client, key, value);
      }
      return Status::Ok();

    case Kind::kDrive: {
      DriveConfig& d = c.drives[section.name];
      if (key == "mover") {
        d.mover = value;
      } else if (key == "media") {
        d.media = value;
      } else if (key == "device") {
        d.device = path(value);
      } else if (key == "emulated-rate") {
        auto rate = parse_size(value);
        if (!rate.ok()) return rate.status();
        if (*rate == 0)
          return Status::InvalidArgument(fmt::format("'{}': must not be zero", value));
        d.emulated_rate = *rate;
      }
      return Status::Ok();
    }
  }
  return Status::Ok();
}

Status ConfigReader::apply_cluster(ClusterConfig& cluster, const std::string& key,
                                   const std::string& value) {
  if (key == "etcd") {
    for (const auto& item : split_list(value)) {
      std::string_view ep = item;
      if (ep.starts_with("https://")) {
        return Status::InvalidArgument(
            fmt::format("'{}': https is not supported yet (use http://HOST:PORT)", item));
      }
      if (ep.starts_with("http://")) ep.remove_prefix(7);
      if (!ep.empty() && ep.back() == '/') ep.remove_suffix(1);
      auto parsed = Endpoint::parse(ep);
      if (!parsed.ok() || parsed->kind != Endpoint::Kind::kTcp) {
        return Status::InvalidArgument(
            fmt::format("'{}' is not an etcd endpoint (HOST:PORT or http://HOST:PORT)", item));
      }
      cluster.etcd.emplace_back(ep);
    }
  } else if (key == "etcd-timeout" || key == "lease-ttl") {
    auto d = parse_positive_duration(value);
    if (!d.ok()) return d.status();
    if (key == "etcd-timeout") {
      cluster.etcd_timeout = *d;
    } else {
      // etcd grants no shorter lease, and a node must renew it a few times within it.
      if (d->count() < 2) {
        return Status::InvalidArgument(fmt::format("'{}' is shorter than 2s", value));
      }
      cluster.lease_ttl = *d;
    }
  } else if (key == "node") {
    if (std::string why = pack_name_problem(value); !why.empty()) {
      return Status::InvalidArgument(fmt::format("node name '{}': {}", value, why));
    }
    cluster.node = value;
  } else if (key == "advertise") {
    auto ep = Endpoint::parse(value);
    if (!ep.ok() || ep->kind != Endpoint::Kind::kTcp) {
      return Status::InvalidArgument(fmt::format(
          "'{}' is not HOST:PORT (other nodes reach this one's NBD server over TCP)", value));
    }
    cluster.advertise = value;
  } else if (key == "prefix") {
    if (value.front() != '/' || value.back() != '/') {
      return Status::InvalidArgument(
          fmt::format("'{}' must start and end with '/' (as /vvm/)", value));
    }
    cluster.prefix = value;
  } else if (key == "disk") {
    size_t colon = value.find(':');
    if (colon == std::string::npos || colon + 1 == value.size()) {
      return Status::InvalidArgument(fmt::format("'{}' is not NAME:PATH (as d0:/dev/sdb)", value));
    }
    std::string name = value.substr(0, colon);
    if (std::string why = pack_name_problem(name); !why.empty()) {
      return Status::InvalidArgument(fmt::format("disk name '{}': {}", name, why));
    }
    if (cluster.disks.count(name) != 0) {
      return Status::InvalidArgument(fmt::format("disk '{}' is given twice", name));
    }
    cluster.disks[name] = path(value.substr(colon + 1));
  }
  return Status::Ok();
}

// A PSK username as psktool writes it to a PSK file ("NAME:HEXKEY"): no ':' and no blanks.
std::string psk_username_problem(std::string_view name) {
  if (name.size() > 128) return "longer than 128 characters";
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != '@') {
      return "may hold only letters, digits, '-', '_', '.' and '@' (a PSK file line is NAME:KEY)";
    }
  }
  return "";
}

Status ConfigReader::apply_identity(TlsIdentity& id, const std::string& key,
                                    const std::string& value) {
  if (key == "user") {
    auto uid = resolve_user(value);
    if (!uid.ok()) return uid.status();
    id.uid = *uid;
  } else if (key == "group") {
    auto gid = resolve_group(value);
    if (!gid.ok()) return gid.status();
    id.gid = *gid;
  } else if (key == "groups") {
    for (const auto& item : split_list(value)) {
      auto gid = resolve_group(item);
      if (!gid.ok()) return gid.status();
      id.groups.push_back(*gid);
    }
  } else if (key == "psk-username") {
    for (const auto& item : split_list(value)) {
      if (std::string why = psk_username_problem(item); !why.empty()) {
        return Status::InvalidArgument(fmt::format("PSK username '{}' {}", item, why));
      }
      id.psk_usernames.push_back(item);
    }
  } else if (key == "subject") {
    // One DN a line: a DN holds commas ("CN=alice,O=example").
    if (value.find('=') == std::string::npos) {
      return Status::InvalidArgument(fmt::format(
          "'{}' is not a certificate subject DN (write it as certtool prints it: CN=alice,O=site)",
          value));
    }
    id.subjects.push_back(value);
  } else if (key == "client-ca") {
    id.client_ca = path(value);
  } else if (key == "role") {
    if (value != "vvmd" && value != "mover") {
      return Status::InvalidArgument(fmt::format(
          "'{}' is not a role (vvmd: may send copy requests to the movers; mover: may send "
          "copy reports to vvmd)",
          value));
    }
    id.role = value;
  }
  return Status::Ok();
}

// The tls-* keys that [vvmd] and [mover NAME] share: their listener's, and how they connect to
// the other daemon (tls-client-*).
Status ConfigReader::apply_tls(TlsServerConfig& tls, TlsClientConfig& client,
                               const std::string& key, const std::string& value) {
  if (key == "tls-psk-file") {
    tls.psk_file = path(value);
  } else if (key == "tls-certificates") {
    tls.certificates = path(value);
  } else if (key == "tls-verify-peer") {
    if (value != "true" && value != "false") {
      return Status::InvalidArgument(fmt::format("'{}' is not true or false", value));
    }
    tls.verify_peer = value == "true";
  } else if (key == "tls-client-psk-file") {
    client.psk_file = path(value);
  } else if (key == "tls-client-username") {
    client.username = value;
  } else if (key == "tls-client-certificates") {
    client.certificates = path(value);
  }
  return Status::Ok();
}

// What tls-client-* must hold together: a username says which user of a PSK file.
Status ConfigReader::check_tls_client(const TlsClientConfig& client, const Section& s) {
  auto it = s.key_lines.find("tls-client-username");
  if (it != s.key_lines.end() && client.psk_file.empty()) {
    return fail(it->second, s.label + ".tls-client-username",
                "given without tls-client-psk-file (whose key is it?)");
  }
  return Status::Ok();
}

// A mover's TLS, against vvmd's: whoever listens on tls: needs credentials, and each side must
// have a way to reach the other.
Status ConfigReader::check_mover_tls(const Section& s) {
  const Config& c = config_;
  const MoverConfig& m = c.movers.at(s.name);
  auto key_line = [&](std::string_view key) {
    auto it = s.key_lines.find(key);
    return it == s.key_lines.end() ? s.line : it->second;
  };
  VVM_RETURN_IF_ERROR(check_tls_client(m.tls_client, s));
  if (!m.tls.verify_peer) {
    return fail(m.tls.verify_peer_line, s.label + ".tls-verify-peer",
                "a mover serves only vvmd's identities (role = vvmd), which prove themselves: a "
                "peer without a certificate cannot be one");
  }
  if (m.listen.kind == Endpoint::Kind::kTls) {
    if (!m.tls.enabled()) {
      return fail(key_line("listen"), s.label + ".listen",
                  "a tls: endpoint without tls-psk-file or tls-certificates in [" + s.label + "]");
    }
    if (!c.vvmd_tls_client.enabled()) {
      return fail(key_line("listen"), s.label + ".listen",
                  "a tls: endpoint, but [vvmd] has no tls-client-psk-file or "
                  "tls-client-certificates to connect to it with");
    }
  } else if (m.tls.enabled()) {
    return fail(m.tls.psk_file_line ? m.tls.psk_file_line : m.tls.certificates_line,
                s.label + (m.tls.psk_file_line ? ".tls-psk-file" : ".tls-certificates"),
                fmt::format("given, but the mover listens on {}, not on a tls: endpoint",
                            m.listen.to_string()));
  }
  if (!c.vvmd_listen.empty() && report_endpoint(c, m) == nullptr) {
    return m.tls_client.enabled()
               ? fail(m.tls_client.line, s.label + ".tls-client-*",
                      "given, but [vvmd] listens on no tls: endpoint to report to")
               : fail(s.line, s.label,
                      "its copy reports cannot reach vvmd, which listens on tls: endpoints only "
                      "(add tls-client-psk-file or tls-client-certificates)");
  }
  return Status::Ok();
}

// An identity needs a user, a group (given, or the user's own) and a way to be recognised; a
// PSK username or a subject names one identity only.
Status ConfigReader::check_identity(const Section& s) {
  auto key_line = [&](std::string_view key) {
    auto it = s.key_lines.find(key);
    return it == s.key_lines.end() ? s.line : it->second;
  };
  TlsIdentity& id = config_.identities[s.name];
  if (s.key_lines.count("user") == 0) {
    return fail(s.line, s.label,
                "no user (add 'user = NAME' or a uid: whose permissions does this peer get?)");
  }
  if (id.uid == 0) {
    return fail(key_line("user"), s.label + ".user",
                "a TLS identity may not be root (uid 0): root passes every permission check, "
                "which no key or certificate on the network should buy");
  }
  if (s.key_lines.count("group") == 0) {
    const passwd* pw = ::getpwuid(id.uid);
    if (pw == nullptr) {
      return fail(key_line("user"), s.label + ".user",
                  fmt::format("uid {} has no passwd entry to take a group from (add 'group = "
                              "NAME' or a gid)",
                              id.uid));
    }
    id.gid = pw->pw_gid;
  }
  if (id.psk_usernames.empty() && id.subjects.empty() && id.client_ca.empty()) {
    return fail(s.line, s.label,
                "nothing names this identity (add 'psk-username = NAME', 'subject = CN=...' or "
                "'client-ca = PATH')");
  }
  for (const auto& [other_name, other] : config_.identities) {
    if (other_name == s.name || other.line > id.line) continue;
    for (const auto& u : id.psk_usernames) {
      if (std::find(other.psk_usernames.begin(), other.psk_usernames.end(), u) !=
          other.psk_usernames.end()) {
        return fail(key_line("psk-username"), s.label + ".psk-username",
                    fmt::format("PSK username '{}' already belongs to [identity {}] (line {}): a "
                                "username is one identity",
                                u, other_name, other.line));
      }
    }
    for (const auto& dn : id.subjects) {
      if (std::find(other.subjects.begin(), other.subjects.end(), dn) != other.subjects.end()) {
        return fail(key_line("subject"), s.label + ".subject",
                    fmt::format("subject '{}' already belongs to [identity {}] (line {}): a "
                                "subject is one identity",
                                dn, other_name, other.line));
      }
    }
    if (!id.client_ca.empty() && id.client_ca == other.client_ca) {
      return fail(key_line("client-ca"), s.label + ".client-ca",
                  fmt::format("'{}' is [identity {}]'s client-ca too (line {}): a CA that signs "
                              "two identities' certificates cannot tell them apart",
                              id.client_ca, other_name, other.line));
    }
  }
  return Status::Ok();
}

// What one key alone cannot tell: required keys, references between sections, the watermarks.
Status ConfigReader::check() {
  Config& c = config_;
  auto known_media = [&] {
    std::vector<std::string> names;
    for (const auto& [name, m] : c.media) names.push_back(name);
    return names.empty() ? std::string("none") : join(names, ", ");
  };
  for (const Section& s : sections_) {
    auto key_line = [&](std::string_view key) {
      auto it = s.key_lines.find(key);
      return it == s.key_lines.end() ? 0 : it->second;
    };
    switch (s.spec->kind) {
      case Kind::kMedia:
        if (c.media[s.name].capacity == 0) {
          return fail(s.line, s.label, "no capacity (add 'capacity = 18T', say)");
        }
        break;
      case Kind::kClass: {
        const StorageClass& sc = c.classes[s.name[0]];
        if (sc.media.empty()) {
          return fail(s.line, s.label, "no media (add 'media = LTO9', say: one copy per type)");
        }
        for (const auto& m : sc.media) {
          if (c.media.count(m) == 0) {
            return fail(key_line("media"), s.label + ".media",
                        fmt::format("unknown media type '{}' (the [media NAME] sections name: {})",
                                    m, known_media()));
          }
        }
        break;
      }
      case Kind::kMover:
        if (key_line("listen") == 0) {
          return fail(s.line, s.label, "no listen (add 'listen = unix:/PATH' or HOST:PORT)");
        }
        VVM_RETURN_IF_ERROR(check_mover_tls(s));
        break;
      case Kind::kDrive: {
        DriveConfig& d = c.drives[s.name];
        if (d.mover.empty()) return fail(s.line, s.label, "no mover (add 'mover = NAME')");
        if (d.media.empty()) return fail(s.line, s.label, "no media (add 'media = TYPE')");
        auto mover = c.movers.find(d.mover);
        if (mover == c.movers.end()) {
          return fail(key_line("mover"), s.label + ".mover",
                      fmt::format("unknown mover '{}' (no [mover {}] section)", d.mover, d.mover));
        }
        if (c.media.count(d.media) == 0) {
          return fail(key_line("media"), s.label + ".media",
                      fmt::format("unknown media type '{}' (the [media NAME] sections name: {})",
                                  d.media, known_media()));
        }
        mover->second.drives.push_back(d.name);  // sections_ is in file order
        break;
      }
      case Kind::kCluster: {
        const ClusterConfig& cl = *c.cluster;
        if (cl.etcd.empty()) {
          return fail(s.line, s.label, "no etcd (add 'etcd = HOST:PORT', one line an endpoint)");
        }
        if (!cl.advertise.empty() && cl.node.empty()) {
          return fail(key_line("advertise"), "cluster.advertise",
                      "given without node (add 'node = NAME': whose address is it?)");
        }
        if (!cl.node.empty() && cl.advertise.empty()) {
          return fail(key_line("node"), "cluster.node",
                      "given without advertise (add 'advertise = HOST:PORT', where other nodes "
                      "reach this one)");
        }
        if (!cl.disks.empty() && cl.node.empty()) {
          return fail(key_line("disk"), "cluster.disk",
                      "given without node (add 'node = NAME': whose disk is it?)");
        }
        break;
      }
      case Kind::kIdentity: VVM_RETURN_IF_ERROR(check_identity(s)); break;
      case Kind::kVvmd: VVM_RETURN_IF_ERROR(check_tls_client(c.vvmd_tls_client, s)); break;
      case Kind::kCache:
        if (c.low_watermark >= c.high_watermark) {
          int low_line = key_line("low-watermark");
          bool at_low = low_line != 0;
          return fail(at_low ? low_line : key_line("high-watermark"),
                      at_low ? "cache.low-watermark" : "cache.high-watermark",
                      fmt::format("the low watermark ({}%) must be below the high watermark ({}%)",
                                  c.low_watermark, c.high_watermark));
        }
        break;
      default: break;
    }
  }
  if (c.database_dir.empty()) c.database_dir = resolve_path(c.state_dir, "db");
  if (c.cache_dir.empty()) c.cache_dir = resolve_path(c.state_dir, "cache");
  if (c.library_path.empty()) c.library_path = resolve_path(c.state_dir, "library");
  return Status::Ok();
}

}  // namespace

std::string TlsIdentity::describe() const {
  return fmt::format("identity {} (uid {}, gid {})", name, uid, gid);
}

const Endpoint* report_endpoint(const Config& config, const MoverConfig& mover) {
  const bool tls = mover.tls_client.enabled();
  for (const auto& e : config.vvmd_listen) {
    if ((e.kind == Endpoint::Kind::kTls) == tls) return &e;
  }
  return nullptr;
}

const TlsIdentity* identity_for_psk_username(const Config& config, std::string_view username) {
  for (const auto& [name, id] : config.identities) {
    for (const auto& u : id.psk_usernames) {
      if (u == username) return &id;
    }
  }
  return nullptr;
}

const TlsIdentity* identity_for_subject(const Config& config, std::string_view subject) {
  for (const auto& [name, id] : config.identities) {
    for (const auto& dn : id.subjects) {
      if (dn == subject) return &id;
    }
  }
  return nullptr;
}

Result<uid_t> resolve_user(std::string_view name_or_id) {
  return resolve_id<uid_t, passwd>(name_or_id, "user", getpwnam_r, &passwd::pw_uid);
}

Result<gid_t> resolve_group(std::string_view name_or_id) {
  return resolve_id<gid_t, group>(name_or_id, "group", getgrnam_r, &group::gr_gid);
}

std::string user_name(uid_t uid) {
  if (const passwd* pw = ::getpwuid(uid)) return pw->pw_name;
  return std::to_string(uid);
}

std::string group_name(gid_t gid) {
  if (const group* gr = ::getgrgid(gid)) return gr->gr_name;
  return std::to_string(gid);
}

std::string local_host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

Result<std::string> read_text_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, path + ": cannot read");
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::FromErrno(err, path + ": cannot read");
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

Result<Config> parse_config(std::string_view text, std::string_view origin,
                            std::string_view base_dir) {
  try {
    return ConfigReader(text, origin, base_dir).read();
  } catch (const std::exception& e) {  // bad_alloc and the like: nothing may escape
    return Status::Internal(fmt::format("{}: {}", origin, e.what()));
  }
}

Result<Config> load_config(const std::string& path) {
  auto text = read_text_file(path);
  if (!text.ok()) return text.status();
  std::string absolute = resolve_path("", path);
  auto config = parse_config(*text, path, std::filesystem::path(absolute).parent_path().string());
  if (config.ok()) config->path = absolute;
  return config;
}

std::string default_config_path() {
  const char* env = std::getenv("VVM_CONF");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("/etc/vvm/vvm.conf");
}

}  // namespace vvm
