// packtab.cc: reads and checks the pack table (format in packtab.h).
#include "packtab.h"

#include <fmt/core.h>

#include <filesystem>
#include <limits>
#include <map>

#include "config.h"
#include "size.h"

namespace vvm {

namespace {

constexpr std::string_view kBlanks = " \t\r";
constexpr size_t kFields = 8;
constexpr size_t kMaxNameLength = 64;

// The blank-separated fields of one line, up to a '#' that starts a field.
std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (true) {
    size_t start = line.find_first_not_of(kBlanks, pos);
    if (start == std::string_view::npos || line[start] == '#') break;
    size_t end = line.find_first_of(kBlanks, start);
    if (end == std::string_view::npos) end = line.size();
    fields.push_back(line.substr(start, end - start));
    pos = end;
  }
  return fields;
}

// The reason a pack name is refused, or "" when it is good.
std::string check_name(std::string_view name) {
  if (name.size() > kMaxNameLength) {
    return fmt::format("name is {} characters long, more than {}", name.size(), kMaxNameLength);
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok)
      return fmt::format("bad character '{}' in the name (use letters, digits, -, _ and .)", c);
  }
  return "";
}

Result<PackMode> parse_mode(std::string_view text) {
  if (text == "ro") return PackMode::kReadOnly;
  if (text == "exclusive") return PackMode::kExclusive;
  if (text == "shared") return PackMode::kShared;
  return Status::InvalidArgument(fmt::format("bad mode '{}' (use ro, exclusive or shared)", text));
}

// "0640", "640" or "rw-r-----".
Result<mode_t> parse_perms(std::string_view text) {
  if (text.size() == 9 && text.find_first_not_of("rwx-") == std::string_view::npos) {
    static constexpr std::string_view kLetters = "rwxrwxrwx";
    mode_t perms = 0;
    for (size_t i = 0; i < 9; ++i) {
      if (text[i] == kLetters[i]) {
        perms |= static_cast<mode_t>(1u << (8 - i));
      } else if (text[i] != '-') {
        return Status::InvalidArgument(fmt::format("bad perms '{}': '{}' where '{}' or '-' belongs",
                                                   text, text[i], kLetters[i]));
      }
    }
    return perms;
  }
  if (!text.empty() && text.size() <= 4 &&
      text.find_first_not_of("01234567") == std::string_view::npos) {
    mode_t perms = 0;
    for (char c : text) perms = static_cast<mode_t>(perms * 8 + static_cast<mode_t>(c - '0'));
    if (perms > 0777) {
      return Status::InvalidArgument(fmt::format(
          "bad perms '{}': only the nine permission bits (0777 at most) are allowed", text));
    }
    return perms;
  }
  return Status::InvalidArgument(
      fmt::format("bad perms '{}' (write octal, as 0640, or nine letters, as rw-r-----)", text));
}

std::string resolve_backing(std::string_view base_dir, std::string_view backing) {
  namespace fs = std::filesystem;
  fs::path p(backing);
  if (p.is_relative()) {
    std::error_code ec;
    fs::path base = base_dir.empty() ? fs::current_path(ec) : fs::path(base_dir);
    p = base / p;
  }
  return p.lexically_normal().string();
}

}  // namespace

std::string_view pack_mode_name(PackMode mode) {
  switch (mode) {
    case PackMode::kReadOnly: return "ro";
    case PackMode::kExclusive: return "exclusive";
    case PackMode::kShared: return "shared";
  }
  return "?";
}

const PackEntry* PackTable::find(std::string_view name) const {
  for (const auto& p : packs) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

namespace {

Result<PackTable> parse_lines(std::string_view text, std::string_view origin,
                              std::string_view base_dir) {
  PackTable table;
  std::map<std::string, int, std::less<>> lines_by_name;
  int line = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;

    std::vector<std::string_view> f = split_fields(raw);
    if (f.empty()) continue;
    auto fail = [&](std::string_view reason) {
      return Status::InvalidArgument(
          fmt::format("{}:{}: pack '{}': {}", origin, line, f[0], reason));
    };
    if (f.size() != kFields) {
      return fail(
          fmt::format("{} fields where 8 belong (NAME BACKING OFFSET SIZE MODE OWNER "
                      "GROUP PERMS)",
                      f.size()));
    }
    if (std::string why = check_name(f[0]); !why.empty()) return fail(why);
    if (auto it = lines_by_name.find(f[0]); it != lines_by_name.end()) {
      return fail(fmt::format("name already used on line {}", it->second));
    }

    PackEntry e;
    e.name = std::string(f[0]);
    e.line = line;
    e.backing = resolve_backing(base_dir, f[1]);
    auto offset = parse_size(f[2]);
    if (!offset.ok()) return fail("bad offset " + offset.status().message());
    auto size = parse_size(f[3]);
    if (!size.ok()) return fail("bad size " + size.status().message());
    if (*size == 0) return fail("size is zero");
    if (*offset > std::numeric_limits<uint64_t>::max() - *size) {
      return fail(fmt::format("offset {} + size {} is past 2^64 bytes", f[2], f[3]));
    }
    e.offset = *offset;
    e.size = *size;
    auto mode = parse_mode(f[4]);
    if (!mode.ok()) return fail(mode.status().message());
    e.mode = *mode;
    auto owner = resolve_user(f[5]);
    if (!owner.ok()) return fail("bad owner: " + owner.status().message());
    e.owner = *owner;
    auto group = resolve_group(f[6]);
    if (!group.ok()) return fail("bad group: " + group.status().message());
    e.group = *group;
    auto perms = parse_perms(f[7]);
    if (!perms.ok()) return fail(perms.status().message());
    e.perms = *perms;

    for (const PackEntry& other : table.packs) {
      if (other.backing != e.backing) continue;
      if (e.offset < other.offset + other.size && other.offset < e.offset + e.size) {
        return fail(fmt::format("bytes {}..{} of {} overlap pack '{}' (line {}, bytes {}..{})",
                                format_size(e.offset), format_size(e.offset + e.size), e.backing,
                                other.name, other.line, format_size(other.offset),
                                format_size(other.offset + other.size)));
      }
    }
    lines_by_name[e.name] = line;
    table.packs.push_back(std::move(e));
  }
  return table;
}

}  // namespace

Result<PackTable> parse_packtab(std::string_view text, std::string_view origin,
                                std::string_view base_dir) {
  try {
    return parse_lines(text, origin, base_dir);
  } catch (const std::exception& e) {  // bad_alloc and the like: nothing may escape
    return Status::Internal(fmt::format("{}: {}", origin, e.what()));
  }
}

Result<PackTable> load_packtab(const std::string& path) {
  auto text = read_text_file(path);
  if (!text.ok()) return text.status();
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) absolute = path;
  absolute = absolute.lexically_normal();
  auto table = parse_packtab(*text, path, absolute.parent_path().string());
  if (table.ok()) table->path = absolute.string();
  return table;
}

}  // namespace vvm
