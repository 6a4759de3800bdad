// log.h: levelled logging for vvm's daemons and tools, to stderr or syslog, formatted with fmt.
//
// The nbdkit plugin does not use this: it logs through nbdkit_debug and nbdkit_error so that its
// messages follow nbdkit's own -v and -s settings.
//
//   vvm::log::init("vvmd", vvm::log::Target::kSyslog, vvm::log::Level::kInfo);
//   vvm::log::info("listening on {}", endpoint);
#pragma once

#include <fmt/core.h>

#include <optional>
#include <string_view>

namespace vvm::log {

enum class Level { kDebug = 0, kInfo = 1, kNotice = 2, kWarning = 3, kError = 4 };
enum class Target { kStderr, kSyslog };

// "debug", "info", "notice", "warning" (or "warn"), "error"; nullopt for anything else.
std::optional<Level> parse_level(std::string_view text);
std::string_view level_name(Level level);

// Sets the program name, where messages go and the lowest level written. Safe to call again (a
// daemon calls it once with defaults, then again when its configuration is read). It also looks
// whether stderr is the journal (journal_stream()), which changes the stderr line.
void init(std::string_view ident, Target target, Level min_level);
// Whether stderr is connected to systemd's journal: $JOURNAL_STREAM names the device and inode
// of stderr ("DEV:INODE", systemd.exec(5)), as under a unit with the default StandardError=.
bool journal_stream();
bool enabled(Level level);
// Writes one message. On stderr: "2026-11-23T03:10:00.123Z vvmd[42] info: message"; on a
// stderr that is the journal, which stamps the time and the process itself, "<6>info: message":
// the <N> prefix of sd-daemon(3) sets the entry's priority (what journalctl -p filters and
// colours), the level word stays for those who grep.
void write(Level level, std::string_view message);

template <class... Args>
void logf(Level level, fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(level)) write(level, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... a) {
  logf(Level::kDebug, f, std::forward<Args>(a)...);
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... a) {
  logf(Level::kInfo, f, std::forward<Args>(a)...);
}
template <class... Args>
void notice(fmt::format_string<Args...> f, Args&&... a) {
  logf(Level::kNotice, f, std::forward<Args>(a)...);
}
template <class... Args>
void warning(fmt::format_string<Args...> f, Args&&... a) {
  logf(Level::kWarning, f, std::forward<Args>(a)...);
}
template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... a) {
  logf(Level::kError, f, std::forward<Args>(a)...);
}

}  // namespace vvm::log
