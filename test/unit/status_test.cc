// status_test.cc: Status and Result basics, code names, and the errno mapping of FromErrno.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "common/status.h"

using Catch::Contains;
using vvm::Code;
using vvm::Result;
using vvm::Status;

TEST_CASE("a default Status is ok and says so") {
  Status s;
  CHECK(s.ok());
  CHECK(s.code() == Code::kOk);
  CHECK(s.message().empty());
  CHECK(s.to_string() == "ok");
  CHECK(Status::Ok().ok());
}

TEST_CASE("each factory sets its code and keeps the message") {
  struct Case {
    Status status;
    Code code;
    const char* name;
  };
  const Case cases[] = {
      {Status::InvalidArgument("m"), Code::kInvalidArgument, "invalid argument"},
      {Status::NotFound("m"), Code::kNotFound, "not found"},
      {Status::AlreadyExists("m"), Code::kAlreadyExists, "already exists"},
      {Status::PermissionDenied("m"), Code::kPermissionDenied, "permission denied"},
      {Status::IoError("m"), Code::kIoError, "I/O error"},
      {Status::Timeout("m"), Code::kTimeout, "timed out"},
      {Status::ProtocolError("m"), Code::kProtocolError, "protocol error"},
      {Status::VersionMismatch("m"), Code::kVersionMismatch, "version mismatch"},
      {Status::Unavailable("m"), Code::kUnavailable, "unavailable"},
      {Status::Busy("m"), Code::kBusy, "busy"},
      {Status::Internal("m"), Code::kInternal, "internal error"},
      {Status::NoSpace("m"), Code::kNoSpace, "no space"},
      {Status::Mismatch("m"), Code::kMismatch, "mismatch"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    CHECK_FALSE(c.status.ok());
    CHECK(c.status.code() == c.code);
    CHECK(c.status.message() == "m");
    CHECK(vvm::code_name(c.code) == c.name);
    CHECK(c.status.to_string() == std::string(c.name) + ": m");
  }
  CHECK(vvm::code_name(Code::kOk) == "ok");
}

TEST_CASE("code numbers stay as the control protocol has them") {
  CHECK(static_cast<int>(Code::kOk) == 0);
  CHECK(static_cast<int>(Code::kInvalidArgument) == 1);
  CHECK(static_cast<int>(Code::kNotFound) == 2);
  CHECK(static_cast<int>(Code::kUnavailable) == 9);
  CHECK(static_cast<int>(Code::kInternal) == 11);
  CHECK(static_cast<int>(Code::kNoSpace) == 12);
  CHECK(static_cast<int>(Code::kMismatch) == 13);
}

TEST_CASE("FromErrno maps errno values to codes and adds strerror") {
  struct Case {
    int err;
    Code code;
  };
  const Case cases[] = {
      {ENOENT, Code::kNotFound},
      {EACCES, Code::kPermissionDenied},
      {EPERM, Code::kPermissionDenied},
      {EEXIST, Code::kAlreadyExists},
      {EINVAL, Code::kInvalidArgument},
      {ETIMEDOUT, Code::kTimeout},
      {EBUSY, Code::kBusy},
      {ECONNREFUSED, Code::kUnavailable},
      {EAGAIN, Code::kUnavailable},
      {EIO, Code::kIoError},
      {ENOSPC, Code::kIoError},
  };
  for (const Case& c : cases) {
    INFO("errno " << c.err);
    Status s = Status::FromErrno(c.err, "/tmp/x: open");
    CHECK(s.code() == c.code);
    CHECK(s.message() == std::string("/tmp/x: open: ") + std::strerror(c.err));
  }
}

TEST_CASE("a Result holds a value or the Status that explains why not") {
  Result<int> good(42);
  REQUIRE(good.ok());
  CHECK(good.status().ok());
  CHECK(good.value() == 42);
  CHECK(*good == 42);

  Result<int> bad(Status::NotFound("no such VV 'A1'"));
  CHECK_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kNotFound);
  CHECK_THAT(bad.status().message(), Contains("A1"));

  Result<std::string> text(std::string("hello"));
  CHECK(text->size() == 5);
  std::string moved = std::move(text).value();
  CHECK(moved == "hello");

  Result<std::unique_ptr<int>> owner(std::make_unique<int>(7));
  REQUIRE(owner.ok());
  std::unique_ptr<int> taken = std::move(owner).value();
  CHECK(*taken == 7);
}

namespace {

int calls_after = 0;

Status step(bool fail) { return fail ? Status::Busy("drive d0 is in use") : Status::Ok(); }

Status two_steps(bool fail_first) {
  VVM_RETURN_IF_ERROR(step(fail_first));
  ++calls_after;
  return Status::Ok();
}

Result<int> as_result(bool fail_first) {
  VVM_RETURN_IF_ERROR(step(fail_first));
  return 1;
}

}  // namespace

TEST_CASE("VVM_RETURN_IF_ERROR returns the first failure and goes on after success") {
  calls_after = 0;
  Status failed = two_steps(true);
  CHECK(failed.code() == Code::kBusy);
  CHECK(calls_after == 0);
  CHECK(two_steps(false).ok());
  CHECK(calls_after == 1);

  CHECK(as_result(false).ok());
  Result<int> r = as_result(true);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == "drive d0 is in use");
}
