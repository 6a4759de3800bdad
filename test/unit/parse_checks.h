// parse_checks.h: Catch2 checks shared by the tests of vvm's parsers (vvm.conf, packtab): a text
// that must parse, and a text that must be refused with a message naming where and why.
#pragma once

#include <catch2/catch.hpp>
#include <initializer_list>
#include <string>

#include "common/status.h"

namespace vvm::test {

// The value parsed from `text`, or a test failure showing the text and the error.
template <class T>
T require_parsed(Result<T> r, const std::string& text) {
  INFO(text);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return std::move(r).value();
}

// `r`, parsed from `text`, must be an InvalidArgument whose message starts with `prefix`
// ("ORIGIN:LINE: WHERE: ") and holds every fragment of `reason`.
template <class T>
void require_refused(const Result<T>& r, const std::string& text, const std::string& prefix,
                     std::initializer_list<std::string> reason) {
  INFO("text:\n" << text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::StartsWith(prefix));
  for (const auto& fragment : reason) CHECK_THAT(r.status().message(), Catch::Contains(fragment));
}

}  // namespace vvm::test
