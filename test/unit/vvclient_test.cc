// vvclient_test.cc: what libvvclient does without any server: NBD URIs for vv/NAME exports,
// name and argument checks, errno mapping, and failures reported before or at the first
// connection (no vvmd there), through the C++ API and the C API alike.
#include <errno.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <thread>

#include "lib/vvclient.h"
#include "lib/vvclient_c.h"

using vvm::Code;
using vvm::client::error_errno;
using vvm::client::export_uri;
using vvm::client::Mode;
using vvm::client::Options;
using vvm::client::Volume;

namespace {

std::string uri_or_error(std::string_view base, std::string_view name) {
  auto uri = export_uri(base, name);
  return uri.ok() ? *uri : "error: " + uri.status().message();
}

// Options that point at nothing: no vvm.conf is read, nothing answers.
Options nowhere() {
  Options o;
  o.vvmd = "unix:/nonexistent/vvm-test/vvmd.sock";
  o.nbd_uri = "nbd+unix:///?socket=/nonexistent/vvm-test/nbd.sock";
  o.timeout = std::chrono::milliseconds(500);
  return o;
}

}  // namespace

TEST_CASE("export_uri puts vv/NAME into the server's URI") {
  CHECK(uri_or_error("nbd://host:10809", "A0000000042") == "nbd://host:10809/vv/A0000000042");
  CHECK(uri_or_error("nbd://host/", "A1") == "nbd://host/vv/A1");
  CHECK(uri_or_error("nbds://[::1]:10809/", "B7") == "nbds://[::1]:10809/vv/B7");
  CHECK(uri_or_error("nbd+unix:///?socket=/run/vvm/nbd.sock", "A1") ==
        "nbd+unix:///vv/A1?socket=/run/vvm/nbd.sock");
  CHECK(uri_or_error("nbds+unix://?socket=/s&tls-certificates=/c", "A1") ==
        "nbds+unix:///vv/A1?socket=/s&tls-certificates=/c");
  CHECK(uri_or_error("nbd+vsock://2:10809", "A1") == "nbd+vsock://2:10809/vv/A1");
  // A socket path alone, with what a URI cannot hold as it is percent-encoded.
  CHECK(uri_or_error("/run/vvm/nbd.sock", "A1") == "nbd+unix:///vv/A1?socket=/run/vvm/nbd.sock");
  CHECK(uri_or_error("/tmp/my dir/a&b.sock", "A1") ==
        "nbd+unix:///vv/A1?socket=/tmp/my%20dir/a%26b.sock");
}

TEST_CASE("export_uri refuses what is not an NBD server's URI") {
  CHECK(
      uri_or_error("http://host/", "A1").starts_with("error: NBD URI 'http://host/': the scheme"));
  CHECK(uri_or_error("host:10809", "A1").starts_with("error: NBD URI 'host:10809': not a URI"));
  CHECK(uri_or_error("nbd://host/pack/p0", "A1") ==
        "error: NBD URI 'nbd://host/pack/p0': it names the export 'pack/p0' already; give the "
        "server alone");
  CHECK(uri_or_error("nbd+unix:///", "A1").find("needs ?socket=PATH") != std::string::npos);
  CHECK(uri_or_error("nbd:///", "A1").find("no host") != std::string::npos);
  CHECK(uri_or_error("nbd://host/#x", "A1").find("fragment") != std::string::npos);
}

TEST_CASE("VV names are letters and digits, so that they never change a URI") {
  CHECK(vvm::client::check_vv_name("A0000000042").ok());
  for (const char* bad : {"", "A1/../pack/p0", "A1?socket=/x", "A 1", "A1%2F", "Ä1"}) {
    INFO(bad);
    auto status = vvm::client::check_vv_name(bad);
    CHECK(status.code() == Code::kInvalidArgument);
    CHECK_FALSE(export_uri("nbd://h", bad).ok());
  }
  CHECK(vvm::client::check_vv_name(std::string(64, 'A')).ok());
  CHECK(vvm::client::check_vv_name(std::string(65, 'A')).message().find("longer than 64") !=
        std::string::npos);
}

TEST_CASE("error_errno gives POSIX's errno for each code") {
  CHECK(error_errno(Code::kOk) == 0);
  CHECK(error_errno(Code::kInvalidArgument) == EINVAL);
  CHECK(error_errno(Code::kNotFound) == ENOENT);
  CHECK(error_errno(Code::kPermissionDenied) == EACCES);
  CHECK(error_errno(Code::kNoSpace) == ENOSPC);
  CHECK(error_errno(Code::kUnavailable) == ECONNREFUSED);
  CHECK(error_errno(Code::kTimeout) == ETIMEDOUT);
  CHECK(error_errno(Code::kBusy) == EBUSY);
  CHECK(error_errno(Code::kVersionMismatch) == EPROTO);
}

TEST_CASE("VolumeInfo's states and residencies have vvctl's words") {
  using vvm::client::Residency;
  using vvm::client::VolumeState;
  CHECK(vvm::client::state_name(VolumeState::kHot) == "hot");
  CHECK(vvm::client::state_name(VolumeState::kFinished) == "finished");
  CHECK(vvm::client::state_name(VolumeState::kArchived) == "archived");
  CHECK(vvm::client::residency_name(Residency::kCached) == "cached");
  CHECK(vvm::client::residency_name(Residency::kEvicted) == "evicted");
  CHECK(vvm::client::residency_name(Residency::kStaging) == "staging");
}

TEST_CASE("the C++ API checks its arguments before it connects") {
  int err = 0;
  auto bad_name = Volume::open(nowhere(), "A1/x", Mode::kRead, &err);
  REQUIRE_FALSE(bad_name.ok());
  CHECK(err == EINVAL);
  CHECK(bad_name.status().message().find("only letters and digits") != std::string::npos);

  Options bad_uri = nowhere();
  bad_uri.nbd_uri = "nbd://host/pack/p0";
  err = 0;
  auto refused = Volume::open(bad_uri, "A1", Mode::kWrite, &err);
  REQUIRE_FALSE(refused.ok());
  CHECK(err == EINVAL);
  CHECK(refused.status().message().find("names the export") != std::string::npos);

  err = 0;
  auto two_letters = vvm::client::create_vv(nowhere(), "AB", 1 << 20, 0, &err);
  CHECK(err == EINVAL);
  CHECK(two_letters.status().message().find("one letter or digit") != std::string::npos);
  err = 0;
  auto empty = vvm::client::create_vv(nowhere(), "A", 0, 0, &err);
  CHECK(err == EINVAL);
  CHECK(vvm::client::finish_vv(nowhere(), "", &err).code() == Code::kInvalidArgument);
}

TEST_CASE("the C++ API says where vvmd should have been") {
  int err = 0;
  auto opened = Volume::open(nowhere(), "A0000000001", Mode::kRead, &err);
  REQUIRE_FALSE(opened.ok());
  CHECK(err == ECONNREFUSED);
  CHECK(opened.status().code() == Code::kUnavailable);
  CHECK(opened.status().message().find("/nonexistent/vvm-test/vvmd.sock") != std::string::npos);

  // Without vvmd's endpoint the vvm.conf is needed, and a missing one is named.
  Options no_conf;
  no_conf.conf = "/nonexistent/vvm-test/vvm.conf";
  err = 0;
  auto shown = vvm::client::show_vv(no_conf, "A0000000001", &err);
  REQUIRE_FALSE(shown.ok());
  CHECK(err != 0);
  CHECK(shown.status().message().find("/nonexistent/vvm-test/vvm.conf") != std::string::npos);
  Options bad_endpoint = nowhere();
  bad_endpoint.vvmd = "not an endpoint";
  CHECK(vvm::client::finish_vv(bad_endpoint, "A1", &err)
            .message()
            .find("vvmd endpoint 'not an endpoint'") != std::string::npos);
}

TEST_CASE("the C API: NULL arguments, errno and vv_last_error") {
  errno = 0;
  CHECK(vv_openread(nullptr) == nullptr);
  CHECK(errno == EINVAL);
  CHECK(std::string(vv_last_error()) == "vv_openread: no VV name (NULL)");
  errno = 0;
  CHECK(vv_lseek(nullptr, 0, SEEK_SET) == -1);
  CHECK(errno == EBADF);
  CHECK(std::string(vv_last_error()).starts_with("vv_lseek: "));
  char buf[16];
  errno = 0;
  CHECK(vv_read(nullptr, buf, sizeof buf) == -1);
  CHECK(errno == EBADF);
  errno = 0;
  CHECK(vv_write(nullptr, buf, sizeof buf) == -1);
  CHECK(errno == EBADF);
  errno = 0;
  CHECK(vv_close(nullptr) == -1);
  CHECK(errno == EBADF);
  errno = 0;
  CHECK(vv_finish(nullptr) == -1);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(vv_create("A", 1 << 20, 0, buf, 4) == -1);
  CHECK(errno == ERANGE);
  errno = 0;
  CHECK(vv_configure(nullptr, nullptr, "http://host/") == -1);
  CHECK(errno == EINVAL);
  CHECK(std::string(vv_last_error()).starts_with("vv_configure: NBD URI 'http://host/'"));
}

TEST_CASE("the C API uses vv_configure's settings, and vv_last_error is per thread") {
  REQUIRE(vv_configure(nullptr, "unix:/nonexistent/vvm-test/vvmd.sock",
                       "/nonexistent/vvm-test/nbd.sock") == 0);
  errno = 0;
  CHECK(vv_openwrite("A0000000001") == nullptr);
  CHECK(errno == ECONNREFUSED);
  const std::string mine = vv_last_error();
  CHECK(mine.starts_with("vv_openwrite: "));
  CHECK(mine.find("/nonexistent/vvm-test/vvmd.sock") != std::string::npos);

  std::string theirs;
  std::thread other([&] {
    CHECK(std::string(vv_last_error()).empty());  // nothing failed in this thread yet
    char name[VV_NAME_MAX];
    CHECK(vv_create("A", 1 << 20, 0, name, sizeof name) == -1);
    theirs = vv_last_error();
  });
  other.join();
  CHECK(theirs.starts_with("vv_create: "));
  CHECK(std::string(vv_last_error()) == mine);
  REQUIRE(vv_configure(nullptr, nullptr, nullptr) == 0);
}
