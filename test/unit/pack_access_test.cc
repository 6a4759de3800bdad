// pack_access_test.cc: who may open a pack: the owner, group or other bits (exactly one class
// applies, as in Unix), supplementary groups, root, read-only against read-write opens, the
// messages of a refusal (a TLS identity's named as such), and the TCP allow-list.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>

#include <catch2/catch.hpp>

#include "pack_access.h"
#include "process.h"

using namespace vvm;
using namespace vvm::plugin;
using vvm::test::must;

namespace {

PackEntry pack(mode_t perms, uid_t owner = 1000, gid_t group = 100) {
  return PackEntry{"p", "/srv/disk.img", 0, 1024 * 1024, PackMode::kShared, owner, group, perms, 1};
}

// "rw" when `peer` may open the pack writable, "r" when only read-only, "" when not at all.
std::string access(mode_t perms, const LocalPeer& peer) {
  if (check_local_access(pack(perms), true, peer).ok()) return "rw";
  return check_local_access(pack(perms), false, peer).ok() ? "r" : "";
}

}  // namespace

TEST_CASE("owner, group and other bits; root may do anything") {
  const LocalPeer owner{1000, 1000, {}}, member{2000, 100, {}},
      by_supplementary{2000, 2000, {5, 100}}, other{3000, 3000, {}}, root{0, 0, {}};
  CHECK(access(0600, owner) == "rw");
  CHECK(access(0600, member) == "");
  CHECK(access(0600, root) == "rw");
  CHECK(access(0000, root) == "rw");
  CHECK(access(0640, member) == "r");
  CHECK(access(0640, by_supplementary) == "r");
  CHECK(access(0660, by_supplementary) == "rw");
  CHECK(access(0640, other) == "");
  CHECK(access(0644, other) == "r");
  CHECK(access(0666, other) == "rw");
  // Exactly one class applies: an owner without r is refused even when others may read.
  CHECK(access(0044, owner) == "");
  CHECK(access(0404, member) == "");
  // w alone is not enough: every open reads.
  CHECK(access(0222, other) == "");
  CHECK(access(0200, owner) == "");
}

TEST_CASE("a refusal says who, how and why, and points a reader at @ro") {
  const LocalPeer member{2000, 100, {}};
  Status s = check_local_access(pack(0640, 0, 100), true, member);
  CHECK(s.code() == Code::kPermissionDenied);
  CHECK_THAT(s.message(),
             Catch::StartsWith("pack 'p': uid 2000 (gid 100) may not open it read-write: its "
                               "mode is rw-r----- for root:") &&
                 Catch::EndsWith("(pack/p@ro reads it)"));
  s = check_local_access(pack(0600, 0, 100), false, member);
  CHECK(s.code() == Code::kPermissionDenied);
  CHECK_THAT(s.message(),
             Catch::Contains("may not open it read-only") && !Catch::Contains("@ro reads it"));
}

TEST_CASE("a TLS identity is checked by its user and groups, and named in the refusal") {
  const LocalPeer alice{1001, 1001, {100}};  // in the pack's group through a supplementary one
  const std::string who = "identity alice (uid 1001, gid 1001)";
  CHECK(check_local_access(pack(0640, 0, 100), false, alice, who).ok());
  Status s = check_local_access(pack(0640, 0, 100), true, alice, who);
  CHECK(s.code() == Code::kPermissionDenied);
  CHECK_THAT(s.message(), Catch::StartsWith("pack 'p': identity alice (uid 1001, gid 1001) may "
                                            "not open it read-write: its mode is rw-r-----"));
  CHECK(check_local_access(pack(0600, 1001, 5), true, alice, who).ok());  // the owner's bits
}

TEST_CASE("mode_string") {
  CHECK(mode_string(0640) == "rw-r-----");
  CHECK(mode_string(0777) == "rwxrwxrwx");
  CHECK(mode_string(0) == "---------");
}

TEST_CASE("TCP peers: only hosts in the allow-list") {
  AccessPolicy policy;
  policy.allowed_hosts.push_back(must(HostPattern::parse("10.0.0.0/8")));
  policy.allowed_hosts.push_back(must(HostPattern::parse("::1")));
  auto v4 = [](const char* text) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    REQUIRE(::inet_pton(AF_INET, text, &sa.sin_addr) == 1);
    return sa;
  };
  auto v6 = [](const char* text) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    REQUIRE(::inet_pton(AF_INET6, text, &sa.sin6_addr) == 1);
    return sa;
  };
  auto in = v4("10.1.2.3"), out = v4("192.168.0.1");
  auto loop6 = v6("::1"), mapped = v6("::ffff:10.9.9.9");
  CHECK(check_host_access(policy, reinterpret_cast<sockaddr*>(&in), "10.1.2.3").ok());
  CHECK(check_host_access(policy, reinterpret_cast<sockaddr*>(&loop6), "::1").ok());
  CHECK(check_host_access(policy, reinterpret_cast<sockaddr*>(&mapped), "10.9.9.9").ok());
  Status s = check_host_access(policy, reinterpret_cast<sockaddr*>(&out), "192.168.0.1");
  CHECK(s.code() == Code::kPermissionDenied);
  CHECK(s.message() == "host 192.168.0.1 is not in vvm.conf's [vvmd] allow-host list");
  CHECK_FALSE(check_host_access(AccessPolicy{}, reinterpret_cast<sockaddr*>(&in), "10.1.2.3").ok());
}

TEST_CASE("process_groups reads a process's supplementary groups") {
  std::vector<gid_t> mine(static_cast<size_t>(::getgroups(0, nullptr)));
  ::getgroups(static_cast<int>(mine.size()), mine.data());
  std::vector<gid_t> read = process_groups(::getpid());
  std::sort(mine.begin(), mine.end());
  std::sort(read.begin(), read.end());
  CHECK(read == mine);
  CHECK(process_groups(-1).empty());
}
