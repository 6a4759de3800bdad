// packtab.cc: reads and checks the pack table (format in packtab.h).
#include "pack/packtab.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>

#include "common/config.h"
#include "common/size.h"

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

}  // namespace

std::string_view pack_mode_name(PackMode mode) {
  switch (mode) {
    case PackMode::kReadOnly: return "ro";
    case PackMode::kExclusive: return "exclusive";
    case PackMode::kShared: return "shared";
  }
  return "?";
}

std::string pack_name_problem(std::string_view name) {
  if (name.empty()) return "empty name";
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

Result<PackMode> parse_pack_mode(std::string_view text) {
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

namespace {

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
    if (std::string why = pack_name_problem(f[0]); !why.empty()) return fail(why);
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
    auto mode = parse_pack_mode(f[4]);
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

Result<uint64_t> backing_size(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) == -1) return Status::FromErrno(errno, fmt::format("stat {}", path));
  if (S_ISREG(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    uint64_t size = 0;
    if (::ioctl(fd, BLKGETSIZE64, &size) == -1) {
      return Status::FromErrno(errno, fmt::format("{}: BLKGETSIZE64", path));
    }
    return size;
  }
  return Status::InvalidArgument(fmt::format("{} is not a regular file or a block device", path));
}

Status check_backings(const PackTable& table) {
  const std::string origin = table.path.empty() ? "packtab" : table.path;
  struct Seen {
    dev_t dev;
    ino_t ino;
    const PackEntry* pack;
  };
  std::vector<Seen> seen;
  for (const PackEntry& pack : table.packs) {
    // A pack from no file (a cluster mapping) has no line: its origin names it.
    const std::string where = pack.line > 0
                                  ? fmt::format("{}:{}: pack '{}'", origin, pack.line, pack.name)
                                  : fmt::format("{}: pack '{}'", origin, pack.name);
    const int fd = ::open(pack.backing.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
      return Status(errno == ENOENT ? Code::kNotFound : Code::kIoError,
                    fmt::format("{}: backing {}: {}", where, pack.backing, std::strerror(errno)));
    }
    struct stat st {};
    (void)::fstat(fd, &st);
    Result<uint64_t> size = backing_size(fd, pack.backing);
    int sector = 512;
    if (S_ISBLK(st.st_mode)) (void)::ioctl(fd, BLKSSZGET, &sector);
    ::close(fd);
    if (!size.ok()) return Status(size.status().code(), where + ": " + size.status().message());
    const uint64_t end = pack.offset + pack.size;
    if (*size < end) {
      return Status::InvalidArgument(fmt::format(
          "{}: ends past the end of its backing: {} is {} bytes long, the pack ends at {} "
          "(offset {} + size {})",
          where, pack.backing, *size, end, format_size(pack.offset), format_size(pack.size)));
    }
    if (S_ISBLK(st.st_mode) && (pack.offset % sector != 0 || pack.size % sector != 0)) {
      return Status::InvalidArgument(
          fmt::format("{}: offset {} and size {} must be multiples of {}'s {}-byte sectors", where,
                      pack.offset, pack.size, pack.backing, sector));
    }
    for (const Seen& s : seen) {
      const PackEntry& other = *s.pack;
      // Packs of one path were checked by the parse, when they come from a table; packs from no
      // file (cluster mappings) are checked here too.
      if (s.dev != st.st_dev || s.ino != st.st_ino) continue;
      if (other.backing == pack.backing && other.line > 0) continue;
      if (pack.offset < other.offset + other.size && other.offset < end) {
        return Status::InvalidArgument(fmt::format(
            "{}: bytes {}..{} of {} overlap pack '{}'{}, whose backing {} is the same file", where,
            format_size(pack.offset), format_size(end), pack.backing, other.name,
            other.line > 0 ? fmt::format(" (line {})", other.line) : std::string(), other.backing));
      }
    }
    seen.push_back({st.st_dev, st.st_ino, &pack});
  }
  return Status::Ok();
}

Result<PackTable> load_packtab(const std::string& path) {
  auto text = read_text_file(path);
  if (!text.ok()) return text.status();
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) absolute = path;
  absolute = absolute.lexically_normal();
  // Named by its absolute path, as check_backings() names it, so that messages agree.
  auto table = parse_packtab(*text, absolute.string(), absolute.parent_path().string());
  if (table.ok()) table->path = absolute.string();
  return table;
}

}  // namespace vvm
