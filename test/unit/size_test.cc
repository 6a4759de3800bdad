// size_test.cc: parse_size, parse_duration and format_size: golden values and refused text.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "common/size.h"

using Catch::Contains;
using Catch::StartsWith;

namespace {

// `text` must be refused with a message that quotes it and gives `reason`.
void require_bad_size(const std::string& text, const std::string& reason) {
  INFO("size '" << text << "'");
  auto r = vvm::parse_size(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == vvm::Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), StartsWith("'" + text + "': "));
  CHECK_THAT(r.status().message(), Contains(reason));
}

void require_bad_duration(const std::string& text, const std::string& reason) {
  INFO("duration '" << text << "'");
  auto r = vvm::parse_duration(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == vvm::Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), StartsWith("'" + text + "': "));
  CHECK_THAT(r.status().message(), Contains(reason));
}

uint64_t size_of(const std::string& text) {
  auto r = vvm::parse_size(text);
  INFO(text << ": " << r.status().message());
  REQUIRE(r.ok());
  return *r;
}

long long seconds_of(const std::string& text) {
  auto r = vvm::parse_duration(text);
  INFO(text << ": " << r.status().message());
  REQUIRE(r.ok());
  return r->count();
}

}  // namespace

TEST_CASE("sizes: plain bytes and binary suffixes in either case") {
  CHECK(size_of("0") == 0);
  CHECK(size_of("4096") == 4096);
  CHECK(size_of("007") == 7);
  CHECK(size_of("512K") == 512 * 1024);
  CHECK(size_of("512k") == 512 * 1024);
  CHECK(size_of("256M") == 256ULL << 20);
  CHECK(size_of("10G") == 10ULL << 30);
  CHECK(size_of("10g") == 10ULL << 30);
  CHECK(size_of("18T") == 18ULL << 40);
  CHECK(size_of("2t") == 2ULL << 40);
  CHECK(size_of("18446744073709551615") == UINT64_MAX);
  CHECK(size_of("16777215T") == 16777215ULL << 40);
}

TEST_CASE("sizes: overflow, signs, fractions and garbage are refused with the reason") {
  require_bad_size("", "empty");
  require_bad_size("-1", "negative");
  require_bad_size("-1G", "negative");
  require_bad_size("+5", "sign");
  require_bad_size("1.5G", "not a whole number");
  require_bad_size("12Q", "unknown suffix 'Q'");
  require_bad_size("10KB", "unexpected 'KB'");
  require_bad_size("G", "not a number");
  require_bad_size("abc", "not a number");
  require_bad_size(" 5", "blank");
  require_bad_size("5 ", "unknown suffix");
  require_bad_size("18446744073709551616", "too large");
  require_bad_size("99999999999999999999999", "too large");
  require_bad_size("16777216T", "too large");
  require_bad_size("17179869184G", "too large");
}

TEST_CASE("durations: seconds by default, s m h d units") {
  CHECK(seconds_of("0") == 0);
  CHECK(seconds_of("90") == 90);
  CHECK(seconds_of("30s") == 30);
  CHECK(seconds_of("10m") == 600);
  CHECK(seconds_of("1h") == 3600);
  CHECK(seconds_of("2d") == 172800);
}

TEST_CASE("durations: bad text is refused with the reason") {
  require_bad_duration("", "empty");
  require_bad_duration("-5s", "negative");
  require_bad_duration("1.5h", "not a whole number");
  require_bad_duration("1w", "unknown unit 'w'");
  require_bad_duration("1H", "unknown unit 'H'");
  require_bad_duration("10min", "unexpected 'min'");
  require_bad_duration("soon", "not a number");
  require_bad_duration("9223372036854775808", "too long");
  require_bad_duration("106751991167301d", "too long");
}

TEST_CASE("format_size writes the largest exact binary unit") {
  CHECK(vvm::format_size(0) == "0");
  CHECK(vvm::format_size(1) == "1");
  CHECK(vvm::format_size(1536) == "1536");
  CHECK(vvm::format_size(1024) == "1K");
  CHECK(vvm::format_size(1536 * 1024) == "1536K");
  CHECK(vvm::format_size(1073741824) == "1G");
  CHECK(vvm::format_size(18ULL << 40) == "18T");
  CHECK(vvm::format_size(1ULL << 50) == "1024T");
  CHECK(vvm::format_size(UINT64_MAX) == "18446744073709551615");
}

TEST_CASE("format_size output parses back to the same number") {
  const uint64_t values[] = {0ULL,       1ULL,       1000ULL,
                             1024ULL,    3ULL << 20, (5ULL << 30) + 1024,
                             7ULL << 40, UINT64_MAX, UINT64_MAX - 1023};
  for (uint64_t v : values) {
    INFO(v);
    auto r = vvm::parse_size(vvm::format_size(v));
    REQUIRE(r.ok());
    CHECK(*r == v);
  }
}
