// fd_budget_test.cc: the plugin's guard against nbdkit's descriptor limit: new connections are
// admitted while more than the reserve is free, refused with a message naming the count and the
// limit once it is not, and admitted again once descriptors close; the count of /proc/self/fd.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <memory>
#include <vector>

#include "fd_budget.h"

using vvm::plugin::FdBudget;
using vvm::plugin::open_fds;

namespace {

// Opens `n` descriptors (duplicates of /dev/null) until destroyed.
struct Held {
  std::vector<int> fds;
  explicit Held(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      REQUIRE(fd >= 0);
      fds.push_back(fd);
    }
  }
  ~Held() {
    for (int fd : fds) ::close(fd);
  }
};

}  // namespace

TEST_CASE("open_fds counts this process's descriptors") {
  const size_t before = open_fds();
  REQUIRE(before >= 3);
  {
    Held more(10);
    CHECK(open_fds() == before + 10);
  }
  CHECK(open_fds() == before);
}

TEST_CASE("connections are refused while fewer descriptors than the reserve are free") {
  const size_t now = open_fds();
  // A limit 100 above what is open now, 32 of them kept free: 68 to spend.
  FdBudget budget(now + 100, 32);
  // Each connection admitted opens what a connection may: the 14th brings the count to 70.
  std::vector<std::unique_ptr<Held>> connections;
  while (connections.size() < 100 && budget.admit().ok()) {
    connections.push_back(std::make_unique<Held>(FdBudget::kPerConnection));
  }
  CHECK(connections.size() == 14);
  const vvm::Status refused = budget.admit();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.code() == vvm::Code::kUnavailable);
  CHECK_THAT(refused.message(),
             Catch::Contains(std::to_string(now + 70) + " of its " + std::to_string(now + 100) +
                             " file descriptors open"));
  CHECK_THAT(refused.message(), Catch::Contains("LimitNOFILE"));
  // Two connections close: admitted again, until those descriptors are spent.
  connections.resize(12);
  CHECK(budget.admit().ok());
  connections.push_back(std::make_unique<Held>(FdBudget::kPerConnection));
  CHECK(budget.admit().ok());
  connections.push_back(std::make_unique<Held>(FdBudget::kPerConnection));
  CHECK_FALSE(budget.admit().ok());
}

TEST_CASE("descriptors opened by others are seen at the next count") {
  const size_t now = open_fds();
  FdBudget budget(now + 100, 32);
  CHECK(budget.admit().ok());
  // Not through admitted connections (nbdkit's own, say): the estimate does not know of them,
  // but admissions count against it, and the count it then makes finds them.
  Held others(68);
  size_t admitted = 0;
  while (admitted < 100 && budget.admit().ok()) ++admitted;
  CHECK(admitted == 12);  // the 13th brings the estimate to the line: a count
  CHECK_FALSE(budget.admit().ok());
}
