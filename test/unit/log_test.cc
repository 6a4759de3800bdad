// log_test.cc: levels filter, the stderr line format, and level names round-trip.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "common/log.h"

namespace {

// Runs `body` with stderr sent to a temporary file and returns what it wrote.
template <class F>
std::string capture_stderr(F body) {
  char path[] = "/tmp/vvm-log-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  std::fflush(stderr);
  int saved = dup(STDERR_FILENO);
  REQUIRE(dup2(fd, STDERR_FILENO) >= 0);
  body();
  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(fd);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  unlink(path);
  return ss.str();
}

}  // namespace

TEST_CASE("messages below the level are dropped, the rest are written whole") {
  using namespace vvm::log;
  std::string out = capture_stderr([] {
    init("logtest", Target::kStderr, Level::kNotice);
    debug("hidden debug {}", 1);
    info("hidden info {}", 2);
    notice("shown notice {}", 3);
    warning("shown warning {}", "four");
    error("shown error {:04}", 5);
  });
  CHECK(out.find("hidden") == std::string::npos);
  CHECK_THAT(out,
             Catch::Contains("logtest[" + std::to_string(getpid()) + "] notice: shown notice 3\n"));
  CHECK_THAT(out, Catch::Contains("warning: shown warning four\n"));
  CHECK_THAT(out, Catch::Contains("error: shown error 0005\n"));
  // Three lines, each starting with an ISO 8601 UTC time to the millisecond.
  std::istringstream lines(out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    REQUIRE(line.size() > 24);
    CHECK(line[4] == '-');
    CHECK(line[10] == 'T');
    CHECK(line[19] == '.');
    CHECK(line[23] == 'Z');
  }
  CHECK(n == 3);
  CHECK(enabled(Level::kError));
  CHECK_FALSE(enabled(Level::kInfo));
  init("logtest", Target::kStderr, Level::kInfo);
}

TEST_CASE("on a stderr that is the journal, lines have a <N> priority and no time of their own") {
  using namespace vvm::log;
  // JOURNAL_STREAM names stderr's device and inode (systemd.exec(5)): set it from the very file
  // stderr goes to, as systemd does for its stream.
  auto journal_line = [] {
    struct stat st {};
    REQUIRE(fstat(STDERR_FILENO, &st) == 0);
    setenv("JOURNAL_STREAM", fmt::format("{}:{}", st.st_dev, st.st_ino).c_str(), 1);
    init("logtest", Target::kStderr, Level::kDebug);
    CHECK(journal_stream());
    debug("a debug line");
    info("an info line");
    warning("VSN {} is full", "L90001");
    error("an error line");
  };
  CHECK(capture_stderr(journal_line) ==
        "<7>debug: a debug line\n<6>info: an info line\n<4>warning: VSN L90001 is full\n"
        "<3>error: an error line\n");
  // Another file's inode (stderr redirected elsewhere in a unit): today's lines.
  std::string out = capture_stderr([] {
    setenv("JOURNAL_STREAM", "1:2", 1);
    init("logtest", Target::kStderr, Level::kInfo);
    CHECK_FALSE(journal_stream());
    info("an info line");
  });
  CHECK_THAT(out,
             Catch::Contains("logtest[" + std::to_string(getpid()) + "] info: an info line\n"));
  CHECK(out[23] == 'Z');
  unsetenv("JOURNAL_STREAM");
  init("logtest", Target::kStderr, Level::kInfo);
  CHECK_FALSE(journal_stream());
}

TEST_CASE("level names parse back and unknown names are refused") {
  using namespace vvm::log;
  for (Level l : {Level::kDebug, Level::kInfo, Level::kNotice, Level::kWarning, Level::kError}) {
    auto parsed = parse_level(level_name(l));
    REQUIRE(parsed.has_value());
    CHECK(*parsed == l);
  }
  CHECK(parse_level("warn") == Level::kWarning);
  CHECK_FALSE(parse_level("loud").has_value());
  CHECK_FALSE(parse_level("").has_value());
  CHECK_FALSE(parse_level("INFO").has_value());
}
