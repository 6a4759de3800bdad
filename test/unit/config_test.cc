// config_test.cc: vvm.conf parsing (golden values, defaults, every refusal with its file, line,
// key and reason), Endpoint and HostPattern, load_config, and the example conf/vvm.conf.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "pack/packtab.h"
#include "parse_checks.h"
#include "process.h"

using Catch::Contains;
using Catch::StartsWith;
using vvm::Config;
using vvm::Endpoint;
using vvm::HostPattern;

namespace fs = std::filesystem;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

Config parse_ok(const std::string& text) {
  return vvm::test::require_parsed(vvm::parse_config(text, "test.conf", "/etc/vvm"), text);
}

// `text` must be refused with a message that starts with `prefix` and holds every fragment of
// the reason.
void require_error(const std::string& text, const std::string& prefix,
                   std::initializer_list<std::string> reason) {
  vvm::test::require_refused(vvm::parse_config(text, "test.conf", "/etc/vvm"), text, prefix,
                             reason);
}

// The smallest useful set of named sections, for tests that add to it.
const std::string kMediaAndMover =
    "[media LTO9]\n"                     // 1
    "capacity = 18T\n"                   // 2
    "[mover m1]\n"                       // 3
    "listen = unix:/run/vvm/m1.sock\n";  // 4

sockaddr_in v4(const char* text) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, text, &sa.sin_addr) == 1);
  return sa;
}

sockaddr_in6 v6(const char* text) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  REQUIRE(inet_pton(AF_INET6, text, &sa.sin6_addr) == 1);
  return sa;
}

bool matches(const std::string& pattern, const sockaddr_in& sa) {
  auto p = HostPattern::parse(pattern);
  REQUIRE(p.ok());
  return p->matches(reinterpret_cast<const sockaddr*>(&sa));
}

bool matches(const std::string& pattern, const sockaddr_in6& sa) {
  auto p = HostPattern::parse(pattern);
  REQUIRE(p.ok());
  return p->matches(reinterpret_cast<const sockaddr*>(&sa));
}

}  // namespace

// ---- Endpoint and HostPattern ----

TEST_CASE("endpoints: the four forms parse and print back") {
  struct Case {
    const char* text;
    Endpoint::Kind kind;
    const char* path_or_host;
    uint16_t port;
  };
  const Case cases[] = {
      {"unix:/run/vvm/vvmd.sock", Endpoint::Kind::kUnix, "/run/vvm/vvmd.sock", 0},
      {"127.0.0.1:7370", Endpoint::Kind::kTcp, "127.0.0.1", 7370},
      {"[::1]:7370", Endpoint::Kind::kTcp, "::1", 7370},
      {"[fd00::12:1]:1", Endpoint::Kind::kTcp, "fd00::12:1", 1},
      {"tape-host.example:65535", Endpoint::Kind::kTcp, "tape-host.example", 65535},
      {"tls:127.0.0.1:7371", Endpoint::Kind::kTls, "127.0.0.1", 7371},
      {"tls:[::1]:7371", Endpoint::Kind::kTls, "::1", 7371},
      {"tls:vvm.example:7371", Endpoint::Kind::kTls, "vvm.example", 7371},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto ep = Endpoint::parse(c.text);
    REQUIRE(ep.ok());
    CHECK(ep->kind == c.kind);
    CHECK((c.kind == Endpoint::Kind::kUnix ? ep->path : ep->host) == c.path_or_host);
    CHECK(ep->port == c.port);
    CHECK(ep->to_string() == c.text);
    CHECK(Endpoint::parse(ep->to_string()).value() == *ep);
  }
}

TEST_CASE("endpoints: bad ones are refused with the text and the reason") {
  struct Case {
    std::string text;
    const char* reason;
  };
  const Case cases[] = {
      {"unix:", "no path"},
      {"unix:run/vvmd.sock", "absolute"},
      {"unix:/" + std::string(107, 'x'), "108 bytes"},
      {"localhost", "no port"},
      {"127.0.0.1:", "no port"},
      {":7370", "no host"},
      {"127.0.0.1:0", "port 0 is not between 1 and 65535"},
      {"127.0.0.1:65536", "port 65536 is not between 1 and 65535"},
      {"127.0.0.1:99999999", "bad port"},
      {"127.0.0.1:http", "bad port 'http'"},
      {"127.0.0.1:-1", "bad port"},
      {"::1:7370", "needs brackets"},
      {"[::1]", "no port"},
      {"[::1:7370", "without ']'"},
      {"[nothost]:7370", "not an IPv6 address"},
      {"1.2.3.999:7370", "not an IPv4 address"},
      {"bad_host!:7370", "not a host name"},
      {"tls:unix:/run/vvmd.sock", "TLS runs over TCP"},
      {"tls:127.0.0.1", "no port"},
      {"tls:", "no port"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto ep = Endpoint::parse(c.text);
    REQUIRE_FALSE(ep.ok());
    CHECK_THAT(ep.status().message(), StartsWith("'" + c.text + "': "));
    CHECK_THAT(ep.status().message(), Contains(c.reason));
  }
  // 107 bytes is the most sun_path takes.
  CHECK(Endpoint::parse("unix:/" + std::string(106, 'x')).ok());
}

TEST_CASE("host patterns: addresses and networks, v4 and v6") {
  auto p = HostPattern::parse("10.0.0.0/8");
  REQUIRE(p.ok());
  CHECK(p->family == AF_INET);
  CHECK(p->prefix_len == 8);
  CHECK(p->addr[0] == 10);
  CHECK(p->text == "10.0.0.0/8");
  auto one = HostPattern::parse("::1");
  REQUIRE(one.ok());
  CHECK(one->family == AF_INET6);
  CHECK(one->prefix_len == 128);
  CHECK(one->addr[15] == 1);
  CHECK(HostPattern::parse("127.0.0.1")->prefix_len == 32);
  CHECK(HostPattern::parse("0.0.0.0/0")->prefix_len == 0);
  CHECK(HostPattern::parse("fd00::/8")->prefix_len == 8);

  CHECK(matches("10.0.0.0/8", v4("10.200.3.4")));
  CHECK_FALSE(matches("10.0.0.0/8", v4("11.0.0.1")));
  CHECK(matches("192.168.4.0/22", v4("192.168.7.255")));
  CHECK_FALSE(matches("192.168.4.0/22", v4("192.168.8.0")));
  CHECK(matches("127.0.0.1", v4("127.0.0.1")));
  CHECK_FALSE(matches("127.0.0.1", v4("127.0.0.2")));
  CHECK(matches("0.0.0.0/0", v4("203.0.113.9")));
  CHECK(matches("::1", v6("::1")));
  CHECK_FALSE(matches("::1", v6("::2")));
  CHECK(matches("fd00::/8", v6("fdab::1")));
  CHECK_FALSE(matches("fd00::/8", v6("fe80::1")));
  // A v4 peer seen through an IPv6 socket matches v4 patterns, and only as that address.
  CHECK(matches("127.0.0.1", v6("::ffff:127.0.0.1")));
  CHECK(matches("10.0.0.0/8", v6("::ffff:10.9.8.7")));
  CHECK_FALSE(matches("10.0.0.0/8", v6("::ffff:11.9.8.7")));
  CHECK_FALSE(matches("127.0.0.1", v6("::1")));
  CHECK_FALSE(matches("::1", v4("127.0.0.1")));
  CHECK(matches("::ffff:10.0.0.0/104", v4("10.1.2.3")));
  // Anything but IP never matches.
  sockaddr unix_peer{};
  unix_peer.sa_family = AF_UNIX;
  CHECK_FALSE(HostPattern::parse("0.0.0.0/0")->matches(&unix_peer));
  CHECK_FALSE(HostPattern::parse("0.0.0.0/0")->matches(nullptr));
}

TEST_CASE("host patterns: names and bad prefixes are refused with the reason") {
  struct Case {
    const char* text;
    const char* reason;
  };
  const Case cases[] = {
      {"", "empty"},
      {"localhost", "host names are not allowed"},
      {"tape.example.org", "not an IP address"},
      {"tape/24", "'tape' is not an IP address"},
      {"10.0.0.0/33", "bad prefix length '/33' (use /0 to /32)"},
      {"::/129", "bad prefix length '/129' (use /0 to /128)"},
      {"10.0.0.0/", "bad prefix length"},
      {"10.0.0.0/x", "bad prefix length"},
      {"10.0.0.0/-1", "bad prefix length"},
      {"10.0.0.1/8", "did you mean 10.0.0.0/8?"},
      {"300.1.1.1", "not an IP address"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto p = HostPattern::parse(c.text);
    REQUIRE_FALSE(p.ok());
    CHECK_THAT(p.status().message(), StartsWith("'" + std::string(c.text) + "': "));
    CHECK_THAT(p.status().message(), Contains(c.reason));
  }
}

// ---- vvm.conf: good files ----

TEST_CASE("an empty file gives the documented defaults") {
  Config c = parse_ok("# nothing but a comment\n\n");
  CHECK(c.state_dir == "/var/lib/vvm");
  CHECK(c.database_dir == "/var/lib/vvm/db");
  CHECK(c.cache_dir == "/var/lib/vvm/cache");
  CHECK(c.library_path == "/var/lib/vvm/library");
  CHECK(c.library_kind == "emulated");
  CHECK(c.log_level == vvm::log::Level::kInfo);
  CHECK(c.log_target == vvm::log::Target::kStderr);
  CHECK(c.idle_finish == std::chrono::seconds(3600));
  CHECK(c.archive_batch_bytes == 10ull << 30);
  CHECK(c.archive_batch_files == 100);
  CHECK(c.archive_max_wait == std::chrono::minutes(10));
  CHECK(c.request_timeout == std::chrono::seconds(30));
  CHECK(c.stage_timeout == std::chrono::seconds(600));
  CHECK(c.high_watermark == 90);
  CHECK(c.low_watermark == 70);
  CHECK_FALSE(c.cache_size.has_value());
  CHECK(c.packtab.empty());
  CHECK(c.vvmd_listen.empty());
  CHECK(c.vvmd_access.allowed_hosts.empty());
  CHECK(c.media.empty());
  CHECK(c.classes.empty());
  CHECK_FALSE(c.cluster.has_value());  // one host, as without cluster support
}

TEST_CASE("[cluster]: every key, and its defaults") {
  Config c = parse_ok(
      "[cluster]\n"
      "etcd = http://10.0.0.1:2379, 10.0.0.2:2379\n"
      "etcd = [::1]:2379\n"
      "node = n1\n"
      "advertise = 10.0.0.1:10809\n"
      "disk = d0:/dev/sdb\n"
      "disk = cache:shared/cache\n");
  REQUIRE(c.cluster.has_value());
  const vvm::ClusterConfig& cl = *c.cluster;
  CHECK(cl.etcd == std::vector<std::string>{"10.0.0.1:2379", "10.0.0.2:2379", "[::1]:2379"});
  CHECK(cl.node == "n1");
  CHECK(cl.advertise == "10.0.0.1:10809");
  CHECK(cl.disks ==
        std::map<std::string, std::string>{{"d0", "/dev/sdb"}, {"cache", "/etc/vvm/shared/cache"}});
  CHECK(cl.lease_ttl == std::chrono::seconds(10));
  CHECK(cl.etcd_timeout == std::chrono::seconds(5));
  CHECK(cl.prefix == "/vvm/");
  CHECK(cl.line == 1);

  c = parse_ok("[cluster]\netcd = e:1\nlease-ttl = 3s\netcd-timeout = 1m\nprefix = /site/vvm/\n");
  CHECK(c.cluster->lease_ttl == std::chrono::seconds(3));
  CHECK(c.cluster->etcd_timeout == std::chrono::seconds(60));
  CHECK(c.cluster->prefix == "/site/vvm/");
  CHECK(c.cluster->node.empty());  // a host that only administers the cluster
}

TEST_CASE("[cluster]: every mistake named with its line, key and reason") {
  require_error("[cluster]\nnode = n1\n", "test.conf:1: cluster: ", {"no etcd"});
  require_error("[cluster]\netcd = e:1\nnode = n1\n",
                "test.conf:3: cluster.node: ", {"without advertise"});
  require_error("[cluster]\netcd = e:1\nadvertise = h:1\n",
                "test.conf:3: cluster.advertise: ", {"without node"});
  require_error("[cluster]\netcd = e:1\ndisk = d0:/x\n",
                "test.conf:3: cluster.disk: ", {"without node"});
  require_error("[cluster]\netcd = e\n",
                "test.conf:2: cluster.etcd: ", {"'e' is not an etcd endpoint"});
  require_error("[cluster]\netcd = https://e:1\n",
                "test.conf:2: cluster.etcd: ", {"https is not supported"});
  require_error("[cluster]\netcd = e:1\nnode = n/1\n",
                "test.conf:3: cluster.node: ", {"node name 'n/1'", "bad character '/'"});
  require_error("[cluster]\netcd = e:1\nnode = n1\nadvertise = unix:/x.sock\n",
                "test.conf:4: cluster.advertise: ", {"'unix:/x.sock' is not HOST:PORT"});
  require_error("[cluster]\netcd = e:1\nlease-ttl = 1\n",
                "test.conf:3: cluster.lease-ttl: ", {"shorter than 2s"});
  require_error("[cluster]\netcd = e:1\nlease-ttl = soon\n",
                "test.conf:3: cluster.lease-ttl: ", {"'soon'"});
  require_error("[cluster]\netcd = e:1\nprefix = vvm\n",
                "test.conf:3: cluster.prefix: ", {"start and end with '/'"});
  require_error("[cluster]\netcd = e:1\nnode = n\nadvertise = h:1\ndisk = /dev/sdb\n",
                "test.conf:5: cluster.disk: ", {"'/dev/sdb' is not NAME:PATH"});
  require_error("[cluster]\netcd = e:1\nnode = n\nadvertise = h:1\ndisk = d 0:/x\n",
                "test.conf:5: cluster.disk: ", {"disk name 'd 0'"});
  require_error("[cluster]\netcd = e:1\nnode = n\nadvertise = h:1\ndisk = d0:/x\ndisk = d0:/y\n",
                "test.conf:6: cluster.disk: ", {"disk 'd0' is given twice"});
  require_error("[cluster]\netcd = e:1\nnode = a\nnode = b\n",
                "test.conf:4: cluster.node: ", {"given twice (first on line 3)"});
  require_error("[cluster]\netcd = e:1\nnodes = a\n", "test.conf:3: cluster.nodes: ",
                {"unknown key", "etcd, etcd-timeout, node, advertise"});
}

TEST_CASE("every key is read into its field") {
  Config c = parse_ok(R"(
[global]
state-dir = state      # relative: from the conf's folder
log-level = debug
log-target = syslog

[vvmd]
listen = unix:/run/vvm/vvmd.sock
listen = [::1]:7371
allow-host = 127.0.0.1, ::1
allow-host = 10.0.0.0/8
allow-uid = root 4242
allow-uid = 1
allow-group = root,777
database-dir = /srv/db
idle-finish = 2h
request-timeout = 45
archive-batch-size = 2G
archive-batch-files = 7
archive-max-wait = 0

[cache]
dir = ../cache
high-watermark = 95%
low-watermark = 80

[plugin]
packtab = packtab
stage-timeout = 5m

[library]
kind = mtx
path = /dev/sg3

[media LTO9]
capacity = 18T
block-size = 1M
description = LTO-9 #comment

[media DLT7]
capacity = 35G

[class A]
media = LTO9, DLT7
description = two copies

[class 7]
media = DLT7

[mover m1]
listen = 127.0.0.1:7380
stall-timeout = 90s

[mover m2]
listen = unix:/run/vvm/m2.sock

[drive zz]
mover = m1
media = LTO9
device = /dev/nst1

[drive aa]
mover = m1
media = DLT7

[drive t0]
media = LTO9
mover = m2
emulated-rate = 40M
)");
  CHECK(c.path.empty());
  CHECK(c.state_dir == "/etc/vvm/state");
  CHECK(c.log_level == vvm::log::Level::kDebug);
  CHECK(c.log_target == vvm::log::Target::kSyslog);
  REQUIRE(c.vvmd_listen.size() == 2);
  CHECK(c.vvmd_listen[0].to_string() == "unix:/run/vvm/vvmd.sock");
  CHECK(c.vvmd_listen[1].to_string() == "[::1]:7371");
  REQUIRE(c.vvmd_access.allowed_hosts.size() == 3);
  CHECK(c.vvmd_access.allowed_hosts[0].text == "127.0.0.1");
  CHECK(c.vvmd_access.allowed_hosts[1].text == "::1");
  CHECK(c.vvmd_access.allowed_hosts[2].text == "10.0.0.0/8");
  CHECK(c.vvmd_access.allowed_uids == std::vector<uid_t>{0, 4242, 1});
  CHECK(c.vvmd_access.allowed_gids == std::vector<gid_t>{0, 777});
  CHECK(c.database_dir == "/srv/db");
  CHECK(c.idle_finish == std::chrono::hours(2));
  CHECK(c.request_timeout == std::chrono::seconds(45));
  CHECK(c.archive_batch_bytes == 2ull << 30);
  CHECK(c.archive_batch_files == 7);
  CHECK(c.archive_max_wait == std::chrono::seconds(0));
  CHECK(c.cache_dir == "/etc/cache");
  CHECK(c.high_watermark == 95);
  CHECK(c.low_watermark == 80);
  CHECK(c.packtab == "/etc/vvm/packtab");
  CHECK(c.stage_timeout == std::chrono::minutes(5));
  CHECK(c.library_kind == "mtx");
  CHECK(c.library_path == "/dev/sg3");

  REQUIRE(c.media.size() == 2);
  CHECK(c.media["LTO9"].name == "LTO9");
  CHECK(c.media["LTO9"].capacity == 18ULL << 40);
  CHECK(c.media["LTO9"].block_size == 1u << 20);
  CHECK(c.media["DLT7"].capacity == 35ULL << 30);
  CHECK(c.media["DLT7"].block_size == 256u * 1024);
  CHECK(c.media["LTO9"].line == 35);

  REQUIRE(c.classes.size() == 2);
  CHECK(c.classes['A'].letter == 'A');
  CHECK(c.classes['A'].media == std::vector<std::string>{"LTO9", "DLT7"});
  CHECK(c.classes['A'].description == "two copies");
  CHECK(c.classes['7'].media == std::vector<std::string>{"DLT7"});

  REQUIRE(c.movers.size() == 2);
  CHECK(c.movers["m1"].listen.to_string() == "127.0.0.1:7380");
  // File order, not name order.
  CHECK(c.movers["m1"].drives == std::vector<std::string>{"zz", "aa"});
  CHECK(c.movers["m2"].drives == std::vector<std::string>{"t0"});
  REQUIRE(c.drives.size() == 3);
  CHECK(c.drives["zz"].device == "/dev/nst1");
  CHECK_FALSE(c.drives["zz"].emulated());
  CHECK(c.drives["aa"].emulated());
  CHECK(c.drives["aa"].media == "DLT7");
  CHECK(c.drives["t0"].mover == "m2");
  // The copy watchdog: given for m1, the 5-minute default for m2.
  CHECK(c.movers["m1"].stall_timeout == std::chrono::seconds(90));
  CHECK(c.movers["m2"].stall_timeout == std::chrono::seconds(300));
  CHECK(c.drives["t0"].emulated_rate == 40u << 20);
  CHECK(c.drives["aa"].emulated_rate == 0);
}

TEST_CASE("defaults under a given state-dir; comments, blanks and CRLF are ignored") {
  Config c = parse_ok(
      "  # comment\r\n[global]\r\n  state-dir=/srv/vvm/  \r\n\r\n[cache]\r\n"
      "high-watermark=50\r\nlow-watermark=0%\r\n");
  CHECK(c.state_dir == "/srv/vvm");
  CHECK(c.database_dir == "/srv/vvm/db");
  CHECK(c.cache_dir == "/srv/vvm/cache");
  CHECK(c.library_path == "/srv/vvm/library");
  CHECK(c.high_watermark == 50);
  CHECK(c.low_watermark == 0);
}

// ---- vvm.conf: refusals, each naming the file, the line, the key and the reason ----

TEST_CASE("structure: unknown and malformed sections, stray lines") {
  require_error("[global]\n[tape X]\n",
                "test.conf:2: [tape X]: ", {"unknown section", "[drive NAME]"});
  require_error("[Global]\n", "test.conf:1: [Global]: ", {"unknown section"});
  require_error("\n[]\n", "test.conf:2: []: ", {"empty section name"});
  require_error("[ ]\n", "test.conf:1: [ ]: ", {"empty section name"});
  require_error("[vvmd x]\n", "test.conf:1: [vvmd x]: ", {"takes no name"});
  require_error("[media]\n", "test.conf:1: [media]: ", {"needs a name", "[media NAME]"});
  require_error("[drive d 0]\n", "test.conf:1: [drive d 0]: ", {"blanks"});
  require_error("[mover m/1]\n", "test.conf:1: [mover m/1]: ", {"'m/1'", "letters, digits"});
  require_error("state-dir = /x\n", "test.conf:1: state-dir: ", {"outside any section"});
  require_error("[global]\nstate-dir /x\n",
                "test.conf:2: 'state-dir /x': ", {"expected 'key = value'"});
  require_error("[global]\n = /x\n", "test.conf:2: '= /x': ", {"no key"});
  require_error("[vvmd]\nidle-finish = 1h\n[cache]\n[vvmd]\n",
                "test.conf:4: vvmd: ", {"section given twice (first on line 1)"});
  require_error(kMediaAndMover + "[media  LTO9]\n",
                "test.conf:5: media LTO9: ", {"given twice (first on line 1)"});
}

TEST_CASE("keys: unknown, empty, or given twice") {
  require_error("[global]\nstate-dir = /x\n\ncolour = blue\n",
                "test.conf:4: global.colour: ", {"unknown key", "state-dir"});
  require_error(kMediaAndMover + "[media LTO8]\ncapacity = 1T\nspeed = 300M\n",
                "test.conf:7: media LTO8.speed: ", {"unknown key", "capacity, block-size"});
  require_error("[drive d0]\nlisten = unix:/x\n",
                "test.conf:2: drive d0.listen: ", {"unknown key"});
  require_error("[vvmd]\ndatabase-dir =\n", "test.conf:2: vvmd.database-dir: ", {"empty value"});
  require_error("[vvmd]\nlisten = \n", "test.conf:2: vvmd.listen: ", {"empty value"});
  require_error("[vvmd]\ndatabase-dir = /a\nidle-finish = 1h\ndatabase-dir = /b\n",
                "test.conf:4: vvmd.database-dir: ", {"given twice (first on line 2)"});
  require_error(kMediaAndMover + "capacity = 1T\n",
                "test.conf:5: mover m1.capacity: ", {"unknown key"});
  require_error("[media LTO9]\ncapacity = 18T\ncapacity = 12T\n",
                "test.conf:3: media LTO9.capacity: ", {"given twice (first on line 2)"});
  // A second [vvmd] key "listen" is a list, not a duplicate.
  CHECK(parse_ok("[vvmd]\nlisten = unix:/a\nlisten = unix:/b\n").vvmd_listen.size() == 2);
}

TEST_CASE("values: numbers, sizes, durations, endpoints, host patterns, names") {
  require_error("[global]\nlog-level = loud\n",
                "test.conf:2: global.log-level: ", {"'loud' is not a log level"});
  require_error("[global]\nlog-target = file\n",
                "test.conf:2: global.log-target: ", {"'file'", "stderr or syslog"});
  require_error("[vvmd]\nidle-finish = 1w\n",
                "test.conf:2: vvmd.idle-finish: ", {"'1w'", "unknown unit"});
  require_error("[vvmd]\narchive-batch-files = 0\n",
                "test.conf:2: vvmd.archive-batch-files: ", {"'0' is not a number of files"});
  require_error("[vvmd]\narchive-batch-size = lots\n",
                "test.conf:2: vvmd.archive-batch-size: ", {"'lots'"});
  require_error("[vvmd]\nrequest-timeout = 0\n",
                "test.conf:2: vvmd.request-timeout: ", {"at least 1s"});
  require_error("[plugin]\nstage-timeout = soon\n",
                "test.conf:2: plugin.stage-timeout: ", {"'soon'", "not a number"});
  require_error("[vvmd]\nlisten = localhost\n",
                "test.conf:2: vvmd.listen: ", {"'localhost'", "no port"});
  require_error("[vvmd]\nlisten = 127.0.0.1:70000\n",
                "test.conf:2: vvmd.listen: ", {"not between 1 and 65535"});
  require_error("[vvmd]\nallow-host = 127.0.0.1 tape.example.org\n",
                "test.conf:2: vvmd.allow-host: ", {"'tape.example.org'", "host names"});
  require_error("[vvmd]\nallow-host = 10.0.0.0/40\n",
                "test.conf:2: vvmd.allow-host: ", {"bad prefix length"});
  require_error("[vvmd]\nallow-uid = root vvm-no-such-user-x\n",
                "test.conf:2: vvmd.allow-uid: ", {"no such user 'vvm-no-such-user-x'"});
  require_error("[vvmd]\nallow-uid = 99999999999\n",
                "test.conf:2: vvmd.allow-uid: ", {"out of range"});
  require_error("[vvmd]\nallow-group = vvm-no-such-group-x\n",
                "test.conf:2: vvmd.allow-group: ", {"no such group 'vvm-no-such-group-x'"});
  require_error("[library]\nkind = robot\n",
                "test.conf:2: library.kind: ", {"'robot'", "emulated or mtx"});
  require_error("[media LTO9]\ncapacity = 12Q\n",
                "test.conf:2: media LTO9.capacity: ", {"'12Q'", "unknown suffix 'Q'"});
  require_error("[media LTO9]\ncapacity = 0\n", "test.conf:2: media LTO9.capacity: ", {"zero"});
  require_error("[media LTO9]\ncapacity = 1T\nblock-size = 32M\n",
                "test.conf:3: media LTO9.block-size: ", {"'32M'", "16M"});
  require_error("[media LTO9]\ncapacity = 1T\nblock-size = 1.5M\n",
                "test.conf:3: media LTO9.block-size: ", {"not a whole number"});
  require_error(kMediaAndMover + "[mover m2]\nlisten = unix:relative.sock\n",
                "test.conf:6: mover m2.listen: ", {"absolute"});
  require_error(kMediaAndMover + "[mover m2]\nlisten = unix:/m2.sock\nstall-timeout = 0\n",
                "test.conf:7: mover m2.stall-timeout: ", {"at least 1s"});
  require_error(kMediaAndMover + "[mover m2]\nlisten = unix:/m2.sock\nstall-timeout = 5x\n",
                "test.conf:7: mover m2.stall-timeout: ", {"'5x'", "unknown unit"});
  require_error(kMediaAndMover + "[drive d9]\nmover = m1\nmedia = LTO9\nemulated-rate = 0\n",
                "test.conf:8: drive d9.emulated-rate: ", {"zero"});
}

TEST_CASE("metrics: an address and a port for vvmd and each mover, with the line; off by default") {
  Config none = parse_ok(kMediaAndMover);
  CHECK_FALSE(none.vvmd_metrics.has_value());
  CHECK_FALSE(none.movers.at("m1").metrics.has_value());
  Config c = parse_ok("[vvmd]\nmetrics = 127.0.0.1:9370\n" + kMediaAndMover +
                      "[mover m2]\nlisten = unix:/m2.sock\nmetrics = [::1]:9371\n");
  REQUIRE(c.vvmd_metrics.has_value());
  CHECK(c.vvmd_metrics->at.to_string() == "127.0.0.1:9370");
  CHECK(c.vvmd_metrics->line == 2);
  REQUIRE(c.movers.at("m2").metrics.has_value());
  CHECK(c.movers.at("m2").metrics->at.host == "::1");
  CHECK(c.movers.at("m2").metrics->at.port == 9371);
  CHECK(c.movers.at("m2").metrics->line == 9);
  require_error("[vvmd]\nmetrics = localhost:9370\n",
                "test.conf:2: vvmd.metrics: ", {"'localhost:9370'", "127.0.0.1:9370"});
  require_error("[vvmd]\nmetrics = unix:/run/vvm/metrics.sock\n",
                "test.conf:2: vvmd.metrics: ", {"address and a port"});
  require_error("[vvmd]\nmetrics = 127.0.0.1\n", "test.conf:2: vvmd.metrics: ", {"no port"});
  require_error("[vvmd]\nmetrics = 127.0.0.1:0\n",
                "test.conf:2: vvmd.metrics: ", {"between 1 and 65535"});
  require_error(kMediaAndMover + "[mover m2]\nlisten = unix:/m2.sock\nmetrics = m2:9371\n",
                "test.conf:7: mover m2.metrics: ", {"'m2:9371'"});
}

TEST_CASE("[vvmd] TLS: its files with their lines, verify-peer on by default; mistakes named") {
  Config none = parse_ok(kMediaAndMover);
  CHECK_FALSE(none.vvmd_tls.enabled());
  CHECK(none.vvmd_tls.verify_peer);
  Config c = parse_ok(
      "[vvmd]\nlisten = tls:0.0.0.0:7371\ntls-psk-file = tls/vvmd.psk\n"
      "tls-certificates = /etc/vvm/tls\ntls-verify-peer = false\n"
      "listen = unix:/run/vvm/vvmd.sock\n" +  // where m1, without tls-client-*, reports
      kMediaAndMover);
  REQUIRE(c.vvmd_listen.size() == 2);
  CHECK(c.vvmd_listen[0].kind == Endpoint::Kind::kTls);
  CHECK(c.vvmd_tls.enabled());
  CHECK(c.vvmd_tls.psk_file == "/etc/vvm/tls/vvmd.psk");
  CHECK(c.vvmd_tls.psk_file_line == 3);
  CHECK(c.vvmd_tls.certificates == "/etc/vvm/tls");
  CHECK(c.vvmd_tls.certificates_line == 4);
  CHECK_FALSE(c.vvmd_tls.verify_peer);
  require_error("[vvmd]\ntls-verify-peer = yes\n",
                "test.conf:2: vvmd.tls-verify-peer: ", {"'yes' is not true or false"});
  require_error("[vvmd]\nlisten = tls:/run/vvmd.sock\n",
                "test.conf:2: vvmd.listen: ", {"'tls:/run/vvmd.sock'"});
}

TEST_CASE("[mover NAME] TLS and roles: listener, client settings, where reports go; mistakes") {
  const std::string vvmd =
      "[vvmd]\n"                                                                           // 1
      "listen = unix:/run/vvm/vvmd.sock\n"                                                 // 2
      "listen = tls:127.0.0.1:7371\n"                                                      // 3
      "tls-psk-file = /etc/vvm/tls/vvmd.psk\n"                                             // 4
      "tls-client-psk-file = /etc/vvm/tls/own.psk\n"                                       // 5
      "tls-client-username = vvmd\n"                                                       // 6
      "[media LTO9]\ncapacity = 18T\n"                                                     // 7, 8
      "[identity vvmd]\nuser = 65534\ngroup = 65534\npsk-username = vvmd\nrole = vvmd\n";  // 9-13
  const std::string mover =
      "[mover m1]\n"                                  // 14
      "listen = tls:127.0.0.1:7380\n"                 // 15
      "tls-certificates = /etc/vvm/tls\n"             // 16
      "tls-client-certificates = /etc/vvm/tls/m1\n";  // 17
  Config c = parse_ok(vvmd + mover);
  CHECK(c.vvmd_tls_client.psk_file == "/etc/vvm/tls/own.psk");
  CHECK(c.vvmd_tls_client.username == "vvmd");
  CHECK(c.vvmd_tls_client.line == 5);
  CHECK(c.identities.at("vvmd").role == "vvmd");
  const vvm::MoverConfig& m = c.movers.at("m1");
  CHECK(m.tls.certificates == "/etc/vvm/tls");
  CHECK(m.tls.certificates_line == 16);
  CHECK(m.tls_client.certificates == "/etc/vvm/tls/m1");
  CHECK(m.tls_client.line == 17);
  // With tls-client-* a mover reports to vvmd's first tls: endpoint, without to its first other.
  REQUIRE(vvm::report_endpoint(c, m) != nullptr);
  CHECK(vvm::report_endpoint(c, m)->to_string() == "tls:127.0.0.1:7371");
  Config plain = parse_ok(vvmd + "[mover m2]\nlisten = unix:/run/vvm/m2.sock\n");
  CHECK(vvm::report_endpoint(plain, plain.movers.at("m2"))->to_string() ==
        "unix:/run/vvm/vvmd.sock");

  require_error(vvmd + "[mover m1]\nlisten = tls:127.0.0.1:7380\n",
                "test.conf:15: mover m1.listen: ", {"without tls-psk-file or tls-certificates"});
  require_error(vvmd + mover + "tls-verify-peer = false\n",
                "test.conf:18: mover m1.tls-verify-peer: ", {"a mover serves only vvmd's"});
  require_error(vvmd + "[mover m1]\nlisten = unix:/m1.sock\ntls-psk-file = /x.psk\n",
                "test.conf:16: mover m1.tls-psk-file: ", {"not on a tls: endpoint"});
  require_error("[vvmd]\nlisten = unix:/v.sock\n" + mover,
                "test.conf:4: mover m1.listen: ", {"[vvmd] has no tls-client-psk-file"});
  require_error(
      "[vvmd]\nlisten = tls:127.0.0.1:1\ntls-client-psk-file = /o.psk\n[mover m1]\n"
      "listen = tls:127.0.0.1:2\ntls-psk-file = /m.psk\n",
      "test.conf:4: mover m1: ", {"listens on tls: endpoints only"});
  require_error(
      "[vvmd]\nlisten = unix:/v.sock\n[mover m1]\nlisten = unix:/m.sock\n"
      "tls-client-psk-file = /m.psk\n",
      "test.conf:5: mover m1.tls-client-*: ", {"listens on no tls: endpoint"});
  require_error("[vvmd]\ntls-client-username = vvmd\n",
                "test.conf:2: vvmd.tls-client-username: ", {"without tls-client-psk-file"});
  require_error("[identity x]\nuser = 65534\npsk-username = x\nrole = root\n",
                "test.conf:4: identity x.role: ", {"'root' is not a role"});
}

TEST_CASE("watermarks: 0 to 100, with or without %, low below high") {
  require_error("[cache]\nhigh-watermark = 120%\n",
                "test.conf:2: cache.high-watermark: ", {"'120%' is not between 0% and 100%"});
  require_error("[cache]\nlow-watermark = 101\n",
                "test.conf:2: cache.low-watermark: ", {"'101' is not between 0% and 100%"});
  require_error("[cache]\nhigh-watermark = -5\n",
                "test.conf:2: cache.high-watermark: ", {"'-5' is not a percentage"});
  require_error("[cache]\nhigh-watermark = 9 0\n",
                "test.conf:2: cache.high-watermark: ", {"not a percentage"});
  require_error("[cache]\nhigh-watermark = 80\nlow-watermark = 80%\n",
                "test.conf:3: cache.low-watermark: ", {"(80%) must be below", "(80%)"});
  require_error("[cache]\nhigh-watermark = 60\n", "test.conf:2: cache.high-watermark: ",
                {"low watermark (70%) must be below the high watermark (60%)"});
  CHECK(parse_ok("[cache]\nhigh-watermark = 100\nlow-watermark = 0\n").high_watermark == 100);
}

TEST_CASE("cache size: a size with a suffix, more than zero") {
  CHECK(parse_ok("[cache]\nsize = 10G\n").cache_size == std::optional<uint64_t>(10ull << 30));
  CHECK(parse_ok("[cache]\nsize = 4096\n").cache_size == std::optional<uint64_t>(4096));
  require_error("[cache]\nsize = 0\n", "test.conf:2: cache.size: ", {"'0' is not a cache size"});
  require_error("[cache]\nsize = 12Q\n", "test.conf:2: cache.size: ", {"'12Q'", "suffix"});
  require_error("[cache]\nsize = -1G\n", "test.conf:2: cache.size: ", {"'-1G'"});
}

TEST_CASE("media types, classes, movers and drives: names and references") {
  require_error("[media LTO9ABCDE]\ncapacity = 1T\n",
                "test.conf:1: [media LTO9ABCDE]: ", {"longer than 8"});
  require_error("[media lto9]\ncapacity = 1T\n",
                "test.conf:1: [media lto9]: ", {"'lto9'", "uppercase letters and digits"});
  require_error("[media LT-9]\ncapacity = 1T\n",
                "test.conf:1: [media LT-9]: ", {"uppercase letters and digits"});
  require_error("[media LTO9]\nblock-size = 1M\n", "test.conf:1: media LTO9: ", {"no capacity"});
  require_error("[class a]\nmedia = LTO9\n",
                "test.conf:1: [class a]: ", {"'a' must be one uppercase letter or digit"});
  require_error("[class AB]\nmedia = LTO9\n",
                "test.conf:1: [class AB]: ", {"one uppercase letter or digit"});
  require_error(kMediaAndMover + "[class A]\ndescription = nothing\n",
                "test.conf:5: class A: ", {"no media"});
  require_error(kMediaAndMover + "[class A]\ndescription = x\nmedia = LTO9 DLT7\n",
                "test.conf:7: class A.media: ", {"unknown media type 'DLT7'", "LTO9"});
  require_error(kMediaAndMover + "[class B]\nmedia = LTO9, LTO9\n",
                "test.conf:6: class B.media: ", {"LTO9 twice"});
  require_error("[media LTO9]\ncapacity = 1T\n[mover m1]\n",
                "test.conf:3: mover m1: ", {"no listen"});
  require_error(kMediaAndMover + "[drive d0]\nmover = m9\nmedia = LTO9\n",
                "test.conf:6: drive d0.mover: ", {"unknown mover 'm9'"});
  require_error(kMediaAndMover + "[drive d0]\nmover = m1\nmedia = LTO7\n",
                "test.conf:7: drive d0.media: ", {"unknown media type 'LTO7'"});
  require_error(kMediaAndMover + "[drive d0]\nmedia = LTO9\n",
                "test.conf:5: drive d0: ", {"no mover"});
  require_error(kMediaAndMover + "[drive d0]\nmover = m1\n",
                "test.conf:5: drive d0: ", {"no media"});
}

TEST_CASE("[class X]: drive limits and the archive minimum wait, defaults and mistakes") {
  Config c = parse_ok(kMediaAndMover +
                      "[class A]\nmedia = LTO9\nread-max-drives = 2\nwrite-max-drives = 1\n"
                      "archive-min-wait = 15m\n[class B]\nmedia = LTO9\n");
  CHECK(c.classes['A'].read_max_drives == 2);
  CHECK(c.classes['A'].write_max_drives == 1);
  CHECK(c.classes['A'].archive_min_wait == std::chrono::minutes(15));
  CHECK(c.classes['B'].read_max_drives == 0);  // no limit
  CHECK(c.classes['B'].write_max_drives == 0);
  CHECK(c.classes['B'].archive_min_wait == std::chrono::seconds(0));

  for (const std::string key : {"read-max-drives", "write-max-drives"}) {
    for (const std::string value : {"two", "0", "-1", "1.5"}) {
      require_error(kMediaAndMover + "[class A]\nmedia = LTO9\n" + key + " = " + value + "\n",
                    "test.conf:7: class A." + key + ": ",
                    {"'" + value + "' is not a number of drives (1 or more"});
    }
  }
  require_error(kMediaAndMover + "[class A]\nmedia = LTO9\narchive-min-wait = soon\n",
                "test.conf:7: class A.archive-min-wait: ", {"'soon'"});
  require_error(kMediaAndMover + "[class A]\nmedia = LTO9\nread-max-drive = 1\n",
                "test.conf:7: class A.read-max-drive: ",
                {"unknown key", "read-max-drives, write-max-drives, archive-min-wait"});
}

// ---- files ----

TEST_CASE("load_config reads a file, names it in errors, and resolves paths from its folder") {
  auto dir = must(TempDir::create());
  fs::path good = dir.file("vvm.conf");
  must(vvm::test::write_file(good,
                             "[global]\nstate-dir = state\n[plugin]\npacktab = tabs/packtab\n"));
  auto c = vvm::load_config(good.string());
  INFO(c.status().message());
  REQUIRE(c.ok());
  CHECK(c->path == good.string());
  CHECK(c->state_dir == dir.file("state"));
  CHECK(c->database_dir == dir.file("state/db"));
  CHECK(c->packtab == dir.file("tabs/packtab"));

  fs::path bad = dir.file("bad.conf");
  must(vvm::test::write_file(bad, "[global]\n\n[cache]\nhigh-watermark = 120%\n"));
  auto b = vvm::load_config(bad.string());
  REQUIRE_FALSE(b.ok());
  CHECK_THAT(b.status().message(),
             StartsWith(bad.string() + ":4: cache.high-watermark: '120%' is not between"));

  std::string missing = dir.file("nope.conf");
  auto m = vvm::load_config(missing);
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == vvm::Code::kNotFound);
  CHECK(m.status().message() == missing + ": cannot read: No such file or directory");

  auto d = vvm::load_config(dir.path());
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().message() == dir.path() + ": cannot read: Is a directory");
}

TEST_CASE("default_config_path: $VVM_CONF, else /etc/vvm/vvm.conf") {
  const char* saved = std::getenv("VVM_CONF");
  std::string saved_value = saved ? saved : "";
  setenv("VVM_CONF", "/tmp/elsewhere.conf", 1);
  CHECK(vvm::default_config_path() == "/tmp/elsewhere.conf");
  unsetenv("VVM_CONF");
  CHECK(vvm::default_config_path() == "/etc/vvm/vvm.conf");
  if (saved) setenv("VVM_CONF", saved_value.c_str(), 1);
}

TEST_CASE("users and groups resolve by name or number") {
  CHECK(vvm::resolve_user("root").value() == 0);
  CHECK(vvm::resolve_user("4242").value() == 4242);
  CHECK(vvm::resolve_group("root").value() == 0);
  CHECK(vvm::resolve_group("31337").value() == 31337);
  CHECK_THAT(vvm::resolve_user("vvm-no-such-user-x").status().message(),
             Contains("no such user 'vvm-no-such-user-x'"));
  CHECK_THAT(vvm::resolve_group("").status().message(), Contains("empty group name"));
}

TEST_CASE("the example conf/vvm.conf loads and says what the brief says") {
  const char* src = std::getenv("VVM_SOURCE_DIR");
  REQUIRE(src != nullptr);
  fs::path conf = fs::path(src) / "conf" / "vvm.conf";
  auto c = vvm::load_config(conf.string());
  INFO(c.status().message());
  REQUIRE(c.ok());
  CHECK(c->state_dir == "/var/lib/vvm");
  REQUIRE(c->vvmd_listen.size() == 2);
  CHECK(c->vvmd_listen[0].to_string() == "unix:/run/vvm/vvmd.sock");
  CHECK(c->vvmd_listen[1].to_string() == "127.0.0.1:7370");
  REQUIRE(c->vvmd_access.allowed_hosts.size() == 2);
  CHECK(matches(c->vvmd_access.allowed_hosts[0].text, v4("127.0.0.1")));
  CHECK(matches(c->vvmd_access.allowed_hosts[1].text, v6("::1")));
  CHECK(c->library_kind == "emulated");
  CHECK_FALSE(c->cache_size.has_value());  // the filesystem's use unless the site says
  CHECK(c->media.at("LTO9").capacity == 18ULL << 40);
  CHECK(c->media.at("LTO8").capacity == 12ULL << 40);
  CHECK(c->classes.at('A').media == std::vector<std::string>{"LTO9", "LTO8"});
  CHECK(c->classes.at('B').media == std::vector<std::string>{"LTO9"});
  CHECK(c->movers.at("m1").listen.to_string() == "unix:/run/vvm/mover-m1.sock");
  CHECK(c->movers.at("m1").drives == std::vector<std::string>{"d0", "d1"});
  CHECK(c->movers.at("m1").stall_timeout == std::chrono::minutes(5));
  CHECK(c->drives.at("d0").emulated());
  CHECK(c->drives.at("d1").media == "LTO8");
  CHECK(c->packtab == (fs::path(src) / "conf" / "packtab").lexically_normal().string());
  // The packtab it names loads too.
  auto tab = vvm::load_packtab(c->packtab);
  INFO(tab.status().message());
  CHECK(tab.ok());
  // Its [cluster] section is commented out: one host unless the site says.
  CHECK_FALSE(c->cluster.has_value());
}

TEST_CASE("the example [cluster] section of conf/vvm.conf, uncommented, loads") {
  const char* src = std::getenv("VVM_SOURCE_DIR");
  REQUIRE(src != nullptr);
  auto text = must(vvm::read_text_file((fs::path(src) / "conf" / "vvm.conf").string()));
  // From "#[cluster]" on, the lines "#key = value" are the example's; "# ..." lines are prose.
  size_t at = text.find("\n#[cluster]\n");
  REQUIRE(at != std::string::npos);
  std::string section;
  std::istringstream in(text.substr(at + 1));
  for (std::string line; std::getline(in, line);) {
    if (line.size() > 1 && line[0] == '#' && line[1] != ' ') section += line.substr(1) + "\n";
  }
  Config c = parse_ok(section);
  REQUIRE(c.cluster.has_value());
  CHECK(c.cluster->etcd.size() == 2);
  CHECK(c.cluster->node == "node1");
  CHECK(c.cluster->disks.size() == 2);
}

TEST_CASE("[identity NAME]: every key, defaults, and the lookups by PSK username and subject") {
  Config c = parse_ok(
      "[identity alice]\n"
      "user = 1001\n"
      "group = 1001\n"
      "groups = 2001, nogroup\n"
      "groups = 2002\n"
      "psk-username = alice, alice.laptop\n"
      "subject = CN=alice,O=vvm test\n"
      "client-ca = tls/alice-ca.pem\n"
      "[identity daemon-tls]\n"
      "user = daemon\n"  // a known user: the group is the user's own
      "psk-username = svc@site\n");
  REQUIRE(c.identities.size() == 2);
  const vvm::TlsIdentity& a = c.identities.at("alice");
  CHECK(a.name == "alice");
  CHECK(a.uid == 1001);
  CHECK(a.gid == 1001);
  CHECK(a.groups == std::vector<gid_t>{2001, must(vvm::resolve_group("nogroup")), 2002});
  CHECK(a.psk_usernames == std::vector<std::string>{"alice", "alice.laptop"});
  CHECK(a.subjects == std::vector<std::string>{"CN=alice,O=vvm test"});
  CHECK(a.client_ca == "/etc/vvm/tls/alice-ca.pem");
  CHECK(a.line == 1);
  CHECK(a.describe() == "identity alice (uid 1001, gid 1001)");
  const vvm::TlsIdentity& d = c.identities.at("daemon-tls");
  CHECK(d.uid == must(vvm::resolve_user("daemon")));
  CHECK(d.gid == must(vvm::resolve_group("daemon")));
  CHECK(d.groups.empty());

  CHECK(vvm::identity_for_psk_username(c, "alice.laptop") == &a);
  CHECK(vvm::identity_for_psk_username(c, "svc@site") == &d);
  CHECK(vvm::identity_for_psk_username(c, "bob") == nullptr);  // never guessed
  CHECK(vvm::identity_for_psk_username(c, "Alice") == nullptr);
  CHECK(vvm::identity_for_subject(c, "CN=alice,O=vvm test") == &a);
  CHECK(vvm::identity_for_subject(c, "CN=alice") == nullptr);
}

TEST_CASE("[identity NAME]: every mistake named with its line, key and reason") {
  require_error("[identity alice]\npsk-username = alice\n",
                "test.conf:1: identity alice: ", {"no user"});
  require_error("[identity alice]\nuser = 1001\n", "test.conf:2: identity alice.user: ",
                {"uid 1001 has no passwd entry", "add 'group = NAME'"});
  require_error("[identity alice]\nuser = 1001\ngroup = 1001\n",
                "test.conf:1: identity alice: ", {"nothing names this identity", "psk-username"});
  require_error("[identity alice]\nuser = root\ngroup = 0\npsk-username = a\n",
                "test.conf:2: identity alice.user: ", {"may not be root"});
  require_error("[identity alice]\nuser = vvm-no-such-user-x\n",
                "test.conf:2: identity alice.user: ", {"no such user 'vvm-no-such-user-x'"});
  require_error("[identity alice]\nuser = 1001\ngroup = vvm-no-such-group-x\n",
                "test.conf:3: identity alice.group: ", {"no such group 'vvm-no-such-group-x'"});
  require_error("[identity alice]\nuser = 1001\ngroups = 1, vvm-no-such-group-x\n",
                "test.conf:3: identity alice.groups: ", {"no such group"});
  require_error(
      "[identity alice]\nuser = 1001\ngroup = 1\npsk-username = al:ice\n",
      "test.conf:4: identity alice.psk-username: ", {"PSK username 'al:ice'", "NAME:KEY"});
  require_error("[identity alice]\nuser = 1001\ngroup = 1\nsubject = alice\n",
                "test.conf:4: identity alice.subject: ", {"not a certificate subject DN"});
  require_error("[identity alice]\nuser = 1001\nuser = 1002\n",
                "test.conf:3: identity alice.user: ", {"given twice (first on line 2)"});
  require_error("[identity alice]\nuser = 1001\nhost = x\n", "test.conf:3: identity alice.host: ",
                {"unknown key", "user, group, groups, psk-username, subject, client-ca"});
  require_error("[identity al/ice]\n",
                "test.conf:1: [identity al/ice]: ", {"may hold only letters"});
  require_error("[identity]\n", "test.conf:1: [identity]: ", {"needs a name"});
  // A username, a subject or a client CA names one identity: the later one is refused.
  const std::string alice =
      "[identity alice]\nuser = 1001\ngroup = 1001\npsk-username = alice\n"
      "subject = CN=alice\nclient-ca = /ca.pem\n";
  require_error(alice + "[identity bob]\nuser = 1002\ngroup = 1002\npsk-username = bob, alice\n",
                "test.conf:10: identity bob.psk-username: ",
                {"'alice' already belongs to [identity alice] (line 1)"});
  require_error(
      alice + "[identity bob]\nuser = 1002\ngroup = 1002\nsubject = CN=alice\n",
      "test.conf:10: identity bob.subject: ", {"'CN=alice' already belongs to [identity alice]"});
  require_error(alice + "[identity bob]\nuser = 1002\ngroup = 1002\nclient-ca = /ca.pem\n",
                "test.conf:10: identity bob.client-ca: ",
                {"[identity alice]'s client-ca too", "cannot tell them apart"});
}
