// vvctl/pack.cc: `vvctl pack check` and `vvctl pack ls`: a pack table checked as the nbdkit
// plugin checks it, and its packs with who holds them now. Neither needs vvmd.
#include "vvctl/pack.h"

#include <sys/stat.h>

#include <array>
#include <set>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "common/access.h"
#include "common/size.h"
#include "pack/pack_lock.h"
#include "vvctl/printing.h"

namespace vvm::vvctl {

std::optional<PackTable> checked_packtab(const std::string& path) {
  auto table = load_packtab(path);
  Status s = table.ok() ? check_backings(*table) : table.status();
  if (!s.ok()) {
    fmt::print(stderr, "vvctl: {}\n", s.message());
    return std::nullopt;
  }
  return std::move(*table);
}

namespace {

// The packtab a pack command works on: its argument, else vvm.conf's [plugin] packtab. Errors
// are printed here.
Result<std::string> packtab_path(const Globals& g, const std::string& arg, std::string* holds) {
  std::optional<Config> config;
  if (arg.empty() || (holds && holds->empty())) {
    auto loaded = read_config(g);
    if (!loaded.ok()) {
      if (arg.empty()) return loaded.status();
    } else {
      config = std::move(*loaded);
    }
  }
  if (holds && holds->empty()) {
    *holds = config ? config->state_dir + "/holds" : "/run/vvm/holds";
  }
  if (!arg.empty()) return arg;
  if (config->packtab.empty()) {
    fmt::print(stderr, "vvctl: {}: [plugin] names no packtab\n", config->path);
    return Status::InvalidArgument("no packtab");
  }
  return config->packtab;
}

// "exclusive by uid 0 since ... (nbdkit pid 42 on host1)" for each holder of `pack` now, or "-".
std::string holders_of(const PackEntry& pack, const HoldsDir& holds) {
  std::string out;
  for (const auto& r : holders_now(holds, pack.backing, pack.offset)) {
    out += (out.empty() ? "" : "; ") + describe_hold(r);
  }
  if (!out.empty()) return out;
  auto locks = probe_locks(pack.backing, pack.offset);
  return locks.ok() && !locks->empty() ? "locked by a process that left no record" : "-";
}

}  // namespace

int cmd_pack_check(const Globals& g, const Args& args) {
  std::string arg;
  if (!parse_with_positional("pack check", args, "packtab", &arg)) return kUsage;
  auto path = packtab_path(g, arg, nullptr);
  if (!path.ok()) return kUsage;
  auto table = checked_packtab(*path);
  if (!table) return kUsage;
  // A backing reached through two paths (a symlink) is one backing, as check_backings sees it.
  std::set<std::pair<dev_t, ino_t>> backings;
  for (const auto& p : table->packs) {
    struct stat st {};
    if (::stat(p.backing.c_str(), &st) == 0) backings.emplace(st.st_dev, st.st_ino);
  }
  const size_t packs = table->packs.size();
  fmt::print("{}: ok: {} pack{} in {} backing{}\n", table->path, packs, packs == 1 ? "" : "s",
             backings.size(), backings.size() == 1 ? "" : "s");
  return kOk;
}

int cmd_pack_ls(const Globals& g, const Args& args) {
  std::string arg, holds;
  po::options_description options;
  options.add_options()("holds", po::value(&holds));
  if (!parse_with_positional("pack ls", args, "packtab", &arg, options)) return kUsage;
  auto path = packtab_path(g, arg, &holds);
  if (!path.ok()) return kUsage;
  auto table = checked_packtab(*path);
  if (!table) return kUsage;
  const HoldsDir holds_dir(holds);
  std::vector<std::array<std::string, 6>> rows = {
      {"NAME", "SIZE", "MODE", "BACKING:OFFSET", "OWNER:GROUP PERMS", "HELD BY"}};
  for (const auto& p : table->packs) {
    rows.push_back({p.name, format_size(p.size), std::string(pack_mode_name(p.mode)),
                    fmt::format("{}:{}", p.backing, format_size(p.offset)),
                    fmt::format("{}:{} {:04o}", user_name(p.owner), group_name(p.group), p.perms),
                    holders_of(p, holds_dir)});
  }
  print_table(rows);
  return kOk;
}

}  // namespace vvm::vvctl
