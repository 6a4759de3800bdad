// packtab.h: the pack table, which apportions backing files and disks into named packs.
//
// One pack a line, '#' starts a comment, fields separated by blanks:
//   NAME BACKING OFFSET SIZE MODE OWNER GROUP PERMS
//   home0  /dev/sdb      0     100G  exclusive  alice  staff  0660
//   tools  disks/big.img 1T    20G   ro         root   root   rw-r--r--
// OFFSET and SIZE take K, M, G, T suffixes. MODE is ro, exclusive or shared. OWNER and GROUP are
// names or numbers. PERMS is octal (0640) or nine rwx characters (rw-r-----). A relative BACKING is
// resolved against the folder that holds the packtab (nbdkit changes directory to / when it
// starts, so every path is made absolute while loading).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace vvm {

enum class PackMode { kReadOnly, kExclusive, kShared };

std::string_view pack_mode_name(PackMode mode);  // "ro", "exclusive", "shared"
// The other way round; an error names the text and the modes there are.
Result<PackMode> parse_pack_mode(std::string_view text);

// Why `name` cannot name a pack (empty, longer than 64, a character other than a letter, a digit,
// '-', '_' or '.'), or "" when it can. The cluster's node and disk names follow the same rule.
std::string pack_name_problem(std::string_view name);

// Permission bits as a packtab writes them: octal ("0640", "640") or nine letters ("rw-r-----").
Result<mode_t> parse_perms(std::string_view text);

struct PackEntry {
  std::string name;     // export name is "pack/" + name
  std::string backing;  // absolute path of a file or block device
  uint64_t offset = 0;  // bytes
  uint64_t size = 0;    // bytes
  PackMode mode = PackMode::kReadOnly;
  uid_t owner = 0;
  gid_t group = 0;
  mode_t perms = 0;  // the nine permission bits, 0777 at most
  int line = 0;      // line number in the packtab, for messages; 0 for a pack from no file
};

struct PackTable {
  std::string path;              // the file it came from ("" when parsed from text)
  std::vector<PackEntry> packs;  // in table order

  const PackEntry* find(std::string_view name) const;
};

// Parses packtab text. `origin` names the text in messages ("packtab" or its path) and
// `base_dir` is the folder relative backing paths are resolved against. Every error names the
// origin, the line and the reason: "/etc/vvm/packtab:7: pack 'home0': bad size '10Q': ...".
// Checked here: field count, names (letters, digits, '-', '_', '.'; not empty, at most 64), sizes,
// a zero size, offset + size overflowing, modes, owners, groups, perms, duplicate names, and two
// packs that overlap in one backing. Whether each backing exists and is long enough is checked
// by whoever opens the backings (the nbdkit plugin), not here.
Result<PackTable> parse_packtab(std::string_view text, std::string_view origin,
                                std::string_view base_dir);

// Reads and parses a packtab file.
Result<PackTable> load_packtab(const std::string& path);

// What only the backings can tell, checked by the plugin before it serves a table and by `vvctl
// pack check`: every backing exists and is a regular file or a block device that holds the
// whole pack; a pack on a block device starts and ends on a sector boundary; and no two packs
// overlap in one backing reached through two paths (a symlink, a hard link: compared by device
// and inode). The first problem is returned, named as parse errors are ("packtab:7: pack 'x':
// ...").
Status check_backings(const PackTable& table);

// The size of an open regular file or block device; an error for anything else.
Result<uint64_t> backing_size(int fd, const std::string& path);

}  // namespace vvm
