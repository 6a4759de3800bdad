// tls_listener_test.cc: nbdkit's TLS options as the plugin reads them from its command line, and
// the rule that a tls-identity= listener admits that identity alone: --tls=require, a PSK file of
// its users only, or X.509 with peer verification by the identity's own CA. Each refusal names
// the option or file and why.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "parse_checks.h"
#include "process.h"
#include "tls_listener.h"

using namespace vvm;
using namespace vvm::plugin;
using Catch::Contains;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  REQUIRE(out.good());
}

// alice: PSK users alice and alice2, client CA alice-ca.pem; bob: PSK user bob.
Config two_identities(const TempDir& dir) {
  write(dir.file("alice-ca.pem"), "ALICE CA\n");
  write(dir.file("bob-ca.pem"), "BOB CA\n");
  const std::string text =
      "[identity alice]\nuser = 1001\ngroup = 1001\npsk-username = alice, alice2\n"
      "client-ca = alice-ca.pem\n"
      "[identity bob]\nuser = 1002\ngroup = 1002\npsk-username = bob\nclient-ca = bob-ca.pem\n"
      "[identity carol]\nuser = 1003\ngroup = 1003\npsk-username = carol\n";
  Config c = vvm::test::require_parsed(parse_config(text, dir.file("vvm.conf"), dir.path()), text);
  c.path = dir.file("vvm.conf");
  return c;
}

}  // namespace

TEST_CASE("nbdkit's TLS options are read in both forms; a --tls abbreviation is refused") {
  NbdkitTls t = must(parse_nbdkit_tls(
      {"nbdkit", "-f", "--tls=require", "--tls-psk", "/k.psk", "-p", "10810", "vvm", "conf=/c"}));
  CHECK(t.mode == "require");
  CHECK(t.psk_file == "/k.psk");
  CHECK(t.certificates.empty());
  CHECK_FALSE(t.verify_peer);
  t = must(parse_nbdkit_tls(
      {"nbdkit", "--tls", "on", "--tls-certificates=/d", "--tls-verify-peer", "vvm"}));
  CHECK(t.mode == "on");
  CHECK(t.certificates == "/d");
  CHECK(t.verify_peer);
  CHECK(must(parse_nbdkit_tls({"nbdkit", "vvm"})).mode == "off");
  auto abbreviated = parse_nbdkit_tls({"nbdkit", "--tls-p=/k.psk"});
  REQUIRE_FALSE(abbreviated.ok());
  CHECK_THAT(abbreviated.status().message(), Contains("nbdkit option '--tls-p=/k.psk'"));
  auto missing = parse_nbdkit_tls({"nbdkit", "--tls-psk"});
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Contains("has no value"));
}

TEST_CASE("own_command_line is this process's argv") {
  auto argv = must(own_command_line());
  REQUIRE_FALSE(argv.empty());
  CHECK_THAT(argv[0], Contains("unit_tls_listener"));
}

TEST_CASE("a PSK listener speaks for an identity only when its file holds that identity's users") {
  auto dir = must(TempDir::create());
  Config c = two_identities(dir);
  const TlsIdentity& alice = c.identities.at("alice");
  write(dir.file("alice.psk"), "alice:00112233\nalice2:44556677\n");
  NbdkitTls t{"require", dir.file("alice.psk"), "", false};
  CHECK(check_identity_listener(t, alice, c).ok());

  // --tls=on: plaintext clients reach the plugin, which refuses them; off: none could be alice.
  t.mode = "on";
  CHECK(check_identity_listener(t, alice, c).ok());
  t.mode = "off";
  Status s = check_identity_listener(t, alice, c);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Contains("tls-identity=alice needs nbdkit --tls=require (or --tls=on; "
                                   "it has --tls=off)"));
  t.mode = "require";

  // Bob's user in alice's file, or a user of no identity: named with the file and line.
  write(dir.file("mixed.psk"), "alice:00\nbob:11\n");
  t.psk_file = dir.file("mixed.psk");
  s = check_identity_listener(t, alice, c);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(),
             Contains(dir.file("mixed.psk") + ":2: PSK username 'bob' is [identity "
                                              "bob]'s, not one of [identity alice]'s"));
  write(dir.file("stranger.psk"), "mallory:11\n");
  t.psk_file = dir.file("stranger.psk");
  s = check_identity_listener(t, alice, c);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Contains(":1: PSK username 'mallory' is in no [identity]"));
  write(dir.file("bad.psk"), "alice\n");
  t.psk_file = dir.file("bad.psk");
  CHECK_THAT(check_identity_listener(t, alice, c).message(),
             Contains(dir.file("bad.psk") + ":1: not USERNAME:HEXKEY"));
  write(dir.file("empty.psk"), "\n");
  t.psk_file = dir.file("empty.psk");
  CHECK_THAT(check_identity_listener(t, alice, c).message(), Contains("holds no PSK user"));
  t.psk_file = dir.file("absent.psk");
  CHECK_THAT(check_identity_listener(t, alice, c).message(),
             Contains(dir.file("absent.psk") + ": cannot read"));
}

TEST_CASE("an X.509 listener speaks for an identity only with peer verification by its own CA") {
  auto dir = must(TempDir::create());
  Config c = two_identities(dir);
  const TlsIdentity& alice = c.identities.at("alice");
  std::filesystem::create_directory(dir.file("certs"));
  write(dir.file("certs/ca-cert.pem"), "ALICE CA\n");
  NbdkitTls t{"require", "", dir.file("certs"), true};
  CHECK(check_identity_listener(t, alice, c).ok());

  t.verify_peer = false;
  CHECK_THAT(check_identity_listener(t, alice, c).message(),
             Contains("needs nbdkit --tls-verify-peer"));
  t.verify_peer = true;
  // Bob's CA in the folder: alice's name on bob's certificates.
  write(dir.file("certs/ca-cert.pem"), "BOB CA\n");
  CHECK_THAT(check_identity_listener(t, alice, c).message(),
             Contains(dir.file("certs") + "/ca-cert.pem is not [identity alice]'s client-ca"));
  // An identity with no client CA cannot be an X.509 listener's.
  CHECK_THAT(check_identity_listener(t, c.identities.at("carol"), c).message(),
             Contains("[identity carol] in " + c.path + " has no client-ca"));
  // Neither PSK nor certificates: nothing says who the peers are.
  t.certificates.clear();
  CHECK_THAT(check_identity_listener(t, alice, c).message(),
             Contains("needs --tls-psk=FILE (the identity's users only) or --tls-certificates"));
}
