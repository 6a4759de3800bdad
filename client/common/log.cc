// log.cc: the stderr and syslog sinks behind log.h.
#include "common/log.h"

#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>

namespace vvm::log {
namespace {

std::mutex g_mutex;  // one line at a time, whole
std::string g_ident = "vvm";
Target g_target = Target::kStderr;
std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
bool g_journal = false;  // stderr is the journal: no time or pid of our own, <N> prefixes

int syslog_priority(Level level) {
  switch (level) {
    case Level::kDebug: return LOG_DEBUG;
    case Level::kInfo: return LOG_INFO;
    case Level::kNotice: return LOG_NOTICE;
    case Level::kWarning: return LOG_WARNING;
    case Level::kError: return LOG_ERR;
  }
  return LOG_ERR;
}

std::string utc_timestamp() {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t secs = system_clock::to_time_t(now);
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, millis);
}

}  // namespace

bool journal_stream() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

std::optional<Level> parse_level(std::string_view text) {
  if (text == "debug") return Level::kDebug;
  if (text == "info") return Level::kInfo;
  if (text == "notice") return Level::kNotice;
  if (text == "warning" || text == "warn") return Level::kWarning;
  if (text == "error") return Level::kError;
  return std::nullopt;
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kNotice: return "notice";
    case Level::kWarning: return "warning";
    case Level::kError: return "error";
  }
  return "error";
}

void init(std::string_view ident, Target target, Level min_level) {
  std::lock_guard lock(g_mutex);
  if (g_target == Target::kSyslog) closelog();
  g_ident = ident;
  g_target = target;
  g_min_level = static_cast<int>(min_level);
  g_journal = journal_stream();
  // openlog keeps the pointer, and g_ident lives as long as the program.
  if (target == Target::kSyslog) openlog(g_ident.c_str(), LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

bool enabled(Level level) { return static_cast<int>(level) >= g_min_level.load(); }

void write(Level level, std::string_view message) {
  std::lock_guard lock(g_mutex);
  if (g_target == Target::kSyslog) {
    syslog(syslog_priority(level), "%.*s", static_cast<int>(message.size()), message.data());
    return;
  }
  std::string line =
      g_journal ? fmt::format("<{}>{}: {}\n", syslog_priority(level), level_name(level), message)
                : fmt::format("{} {}[{}] {}: {}\n", utc_timestamp(), g_ident, getpid(),
                              level_name(level), message);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace vvm::log
