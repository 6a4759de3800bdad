// etcd_client_test.cc: the etcd client and its watches (client/cluster/) against a real etcd
// started for each test case (harness/etcd.h), and the parts that need none (base64, endpoints,
// the rules that decide whether a transaction may be sent again). Members that fail are stood
// for by sockets that never answer (a stopped member) and by a proxy that drops etcd's answers
// (a member that died just after applying a request).
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <thread>

#include "cluster/etcd_client.h"
#include "cluster/etcd_http.h"
#include "cluster/etcd_watch.h"
#include "etcd.h"
#include "process.h"

using namespace vvm;
using namespace vvm::cluster;
using vvm::test::must;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<EtcdClient> client_for(const std::vector<std::string>& endpoints,
                                       std::chrono::milliseconds timeout = 3000ms) {
  return must(EtcdClient::create({endpoints, timeout}));
}

// Collects what a watch delivers, for a test thread to wait on.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<WatchEvent> events;
  std::vector<WatchError> errors;
  int in_place = 0;  // the batches without events: the watch (re)created

  void add(const WatchBatch& b) {
    std::lock_guard lock(mu);
    if (b.events.empty()) ++in_place;
    events.insert(events.end(), b.events.begin(), b.events.end());
    cv.notify_all();
  }
  void fail(const WatchError& e) {
    std::lock_guard lock(mu);
    errors.push_back(e);
    cv.notify_all();
  }
  bool wait_events(size_t n, std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return events.size() >= n; });
  }
  bool wait_errors(size_t n, std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return errors.size() >= n; });
  }
};

// A listening socket on 127.0.0.1 that nobody accepts on: connections are made (the backlog
// takes them), requests are sent, and no answer ever comes, as from a SIGSTOPped etcd.
struct SilentServer {
  int fd = -1;
  std::string endpoint;
  SilentServer() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 16) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    endpoint = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  }
  ~SilentServer() { ::close(fd); }
};

// A proxy in front of a real etcd that hands each request on whole, waits for etcd's answer, and
// then closes the client's connection without it: etcd has acted on the request, the client
// cannot know (a member that died right after applying it).
class AnswerDropper {
 public:
  explicit AnswerDropper(uint16_t etcd_port) : etcd_port_(etcd_port) {
    SilentServer listener;  // bound and listening; taken over here
    std::swap(fd_, listener.fd);
    endpoint_ = listener.endpoint;
    thread_ = std::thread([this] { serve(); });
  }
  ~AnswerDropper() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  const std::string& endpoint() const { return endpoint_; }
  int dropped() const { return dropped_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      relay(client);
      ::close(client);
    }
  }
  // One request: headers, then Content-Length bytes of body.
  void relay(int client) {
    std::string request;
    char buf[4096];
    size_t body_at = std::string::npos, length = 0;
    while (body_at == std::string::npos || request.size() < body_at + length) {
      ssize_t n = ::recv(client, buf, sizeof buf, 0);
      if (n <= 0) return;
      request.append(buf, static_cast<size_t>(n));
      if (body_at == std::string::npos &&
          (body_at = request.find("\r\n\r\n")) != std::string::npos) {
        body_at += 4;
        auto at = request.find("Content-Length: ");
        if (at != std::string::npos) length = std::stoul(request.substr(at + 16));
      }
    }
    int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(etcd_port_);
    if (::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::send(up, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()) &&
        ::recv(up, buf, sizeof buf, 0) > 0) {
      ++dropped_;  // etcd answered: it has acted on the request
    }
    ::close(up);
  }

  uint16_t etcd_port_;
  int fd_ = -1;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<int> dropped_{0};
  std::thread thread_;
};

uint16_t port_of(const std::string& endpoint) {
  return static_cast<uint16_t>(std::stoul(endpoint.substr(endpoint.rfind(':') + 1)));
}

// A client of these endpoints whose attempts on one of them are short, as in a test of failover.
std::unique_ptr<EtcdClient> failover_client(const std::vector<std::string>& endpoints) {
  EtcdOptions o{endpoints, 4000ms};
  o.attempt_timeout = 400ms;
  o.connect_timeout = 200ms;
  return must(EtcdClient::create(o));
}

}  // namespace

TEST_CASE("base64 round-trips every byte and refuses garbage") {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n : {0, 1, 2, 3, 4, 255, 256}) {
    std::string in = all.substr(0, n), out;
    REQUIRE(base64_decode(base64_encode(in), &out));
    CHECK(out == in);
  }
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("fo") == "Zm8=");
  std::string out;
  CHECK_FALSE(base64_decode("Zm9", &out));
  CHECK_FALSE(base64_decode("Zm!v", &out));
  CHECK_FALSE(base64_decode("Z=9v", &out));
}

TEST_CASE("the gateway's JSON is read without exceptions, naming the field that is wrong") {
  std::string error;
  int64_t n = -1;
  CHECK(json_int(Json::parse(R"({"a":"42"})"), "a", &n, &error));
  CHECK(n == 42);
  CHECK(json_int(Json::parse(R"({"a":-7})"), "a", &n, &error));
  CHECK(n == -7);
  CHECK(json_int(Json::parse(R"({})"), "a", &n, &error));
  CHECK(n == 0);
  CHECK_FALSE(json_int(Json::parse(R"({"a":"4x2"})"), "a", &n, &error));
  CHECK(error == "field 'a': '4x2' is not a number");
  CHECK_FALSE(json_int(Json::parse(R"({"a":[1]})"), "a", &n, &error));
  CHECK(error == "field 'a': [1] is not a number");
  CHECK_FALSE(json_int(Json::parse(R"([1])"), "a", &n, &error));
  CHECK(error == "[1] is not a JSON object");
  KeyValue kv;
  CHECK(json_kv(Json::parse(R"({"key":"Zm9v","value":"YmFy","mod_revision":"9"})"), &kv, &error));
  CHECK(kv.key == "foo");
  CHECK(kv.value == "bar");
  CHECK(kv.mod_revision == 9);
  CHECK_FALSE(json_kv(Json::parse(R"({"key":12})"), &kv, &error));
  CHECK(error == "field 'key' is not base64");
  CHECK_FALSE(json_kv(Json::parse(R"({"key":"Zm9v","lease":{}})"), &kv, &error));
  CHECK(error == "field 'lease': {} is not a number");
}

namespace {

// A one-connection HTTP server that answers every request with `body` (200, JSON): a gateway gone
// wrong, for the client's error path.
class FakeGateway {
 public:
  explicit FakeGateway(std::string body) : body_(std::move(body)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      FAIL("cannot listen");
    }
    endpoint_ = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    thread_ = std::thread([this] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      std::string request;
      // Headers, then the body the Content-Length says (the client's requests are small).
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      std::string answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(body_.size()) + "\r\nConnection: close\r\n\r\n" + body_;
      (void)!::write(c, answer.data(), answer.size());
      ::close(c);
    });
  }
  ~FakeGateway() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  std::string body_;
  int fd_ = -1;
  std::string endpoint_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("garbage from the gateway is an error naming the endpoint and the call") {
  for (const auto& [body, want] : std::vector<std::pair<std::string, std::string>>{
           {R"({"kvs":7})", "field 'kvs' is not an array"},
           {R"({"kvs":[{"key":"!!"}]})", "field 'key' is not base64"},
           {R"({"header":{"revision":"x"}})", "field 'revision': 'x' is not a number"},
           {R"(not json)", "the answer is not JSON"},
       }) {
    FakeGateway gateway(body);
    auto c = client_for({gateway.endpoint()}, 2000ms);
    auto r = c->range_prefix("/t/");
    REQUIRE_FALSE(r.ok());
    INFO(r.status().message());
    CHECK(r.status().code() == Code::kProtocolError);
    CHECK_THAT(r.status().message(),
               Catch::StartsWith("etcd " + gateway.endpoint() + ": /v3/kv/range: "));
    CHECK_THAT(r.status().message(), Catch::Contains(want));
  }
}

TEST_CASE("etcd endpoints are HOST:PORT or http://HOST:PORT") {
  auto ep = EtcdEndpoint::parse("http://127.0.0.1:2379");
  REQUIRE(ep.ok());
  CHECK(ep->text() == "127.0.0.1:2379");
  CHECK(EtcdEndpoint::parse("[::1]:2379")->host == "::1");
  CHECK(EtcdEndpoint::parse("etcd1:2379").ok());
  auto https = EtcdEndpoint::parse("https://etcd1:2379");
  REQUIRE_FALSE(https.ok());
  CHECK_THAT(https.status().message(), Catch::Contains("https is not supported"));
  for (const char* bad : {"etcd1", "etcd1:", ":2379", "etcd1:0", "etcd1:99999", "etcd1:23x"}) {
    INFO(bad);
    auto r = EtcdEndpoint::parse(bad);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains(bad));
  }
  CHECK_FALSE(EtcdClient::create({}).ok());
}

TEST_CASE("prefix_end is the first key after every key with the prefix") {
  CHECK(prefix_end("/vvm/pack/") == "/vvm/pack0");
  CHECK(prefix_end("a\xff") == "b");
  CHECK(prefix_end("") == std::string(1, '\0'));
}

TEST_CASE("put, get, range and delete against a real etcd") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto c = client_for({etcd.endpoint()});

  auto missing = c->get("/t/none");
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());

  // Keys and values are bytes: the base64 of the gateway must carry NUL and 0xff.
  const std::string value("v\0\xff\n", 4);
  auto rev = c->put("/t/a", value);
  REQUIRE(rev.ok());
  CHECK(*rev > 1);
  auto got = c->get("/t/a");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->value == value);
  CHECK((*got)->create_revision == *rev);
  CHECK((*got)->mod_revision == *rev);
  CHECK((*got)->version == 1);

  REQUIRE(c->put("/t/b", "2").ok());
  REQUIRE(c->put("/t/c", "3").ok());
  REQUIRE(c->put("/u/x", "other prefix").ok());
  auto r = c->range_prefix("/t/");
  REQUIRE(r.ok());
  REQUIRE(r->kvs.size() == 3);
  CHECK(r->kvs[0].key == "/t/a");
  CHECK(r->kvs[2].key == "/t/c");
  CHECK(r->revision >= *rev + 3);

  auto deleted = c->erase("/t/", prefix_end("/t/"));
  REQUIRE(deleted.ok());
  CHECK(*deleted == 3);
  CHECK(c->range_prefix("/t/")->kvs.empty());
  CHECK(c->get("/u/x")->has_value());
}

TEST_CASE("transactions compare create_revision, mod_revision and version") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto c = client_for({etcd.endpoint()});

  // Create-if-absent: the first wins, the second reads the holder in its failure branch.
  Txn create{
      {Compare::absent("/t/node")}, {TxnOp::put("/t/node", "first")}, {TxnOp::range("/t/node")}};
  auto first = c->txn(create);
  REQUIRE(first.ok());
  CHECK(first->succeeded);
  create.success = {TxnOp::put("/t/node", "second")};
  auto second = c->txn(create);
  REQUIRE(second.ok());
  CHECK_FALSE(second->succeeded);
  REQUIRE(second->ranges.size() == 1);
  REQUIRE(second->ranges[0].size() == 1);
  CHECK(second->ranges[0][0].value == "first");

  // Compare-and-set on mod_revision: a stale revision loses.
  const int64_t seen = second->ranges[0][0].mod_revision;
  auto cas = c->txn({{Compare::unchanged("/t/node", seen)}, {TxnOp::put("/t/node", "cas")}, {}});
  REQUIRE(cas.ok());
  CHECK(cas->succeeded);
  auto stale = c->txn({{Compare::unchanged("/t/node", seen)}, {TxnOp::put("/t/node", "x")}, {}});
  REQUIRE(stale.ok());
  CHECK_FALSE(stale->succeeded);
  CHECK(c->get("/t/node")->value().value == "cas");

  Compare version{"/t/node", Compare::Target::kVersion, Compare::Op::kEqual, 2, {}, {}};
  auto by_version = c->txn({{version}, {TxnOp::erase("/t/node")}, {}});
  REQUIRE(by_version.ok());
  CHECK(by_version->succeeded);
  CHECK_FALSE(c->get("/t/node")->has_value());
}

// A compare over a range holds when every key in it satisfies it: create_revision 0 says "no key
// in the range" (what a cluster-wide hold asks of the other nodes' keys), and a key just past the
// range's end does not count.
TEST_CASE("a compare over a range: no key in it, or every key in it") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto c = client_for({etcd.endpoint()});
  const Txn empty{
      {Compare::none_in("/t/r/", prefix_end("/t/r/"))}, {TxnOp::put("/t/mark", "1")}, {}};
  auto none = c->txn(empty);
  REQUIRE(none.ok());
  CHECK(none->succeeded);
  REQUIRE(c->put("/t/s", "after the range").ok());  // "/t/s" is the range's end: outside it
  CHECK(c->txn(empty)->succeeded);
  REQUIRE(c->put("/t/r/n2", "x").ok());
  auto one = c->txn(empty);
  REQUIRE(one.ok());
  CHECK_FALSE(one->succeeded);
  // The range around one key: [/t/r/, /t/r/n2) and [/t/r/n2\0, /t/s) leave /t/r/n2 out.
  const std::string own = "/t/r/n2";
  const Txn others{
      {Compare::none_in("/t/r/", own), Compare::none_in(own + '\0', prefix_end("/t/r/"))},
      {TxnOp::put("/t/mark", "2")},
      {}};
  CHECK(c->txn(others)->succeeded);
  REQUIRE(c->put("/t/r/n20", "x").ok());
  CHECK_FALSE(c->txn(others)->succeeded);
  REQUIRE(c->erase("/t/r/n20").ok());
  REQUIRE(c->put("/t/r/n1", "x").ok());
  CHECK_FALSE(c->txn(others)->succeeded);
  // Every key of a range: versions compared over it.
  Compare all_new{"/t/r/", Compare::Target::kVersion, Compare::Op::kEqual, 1,
                  {},      prefix_end("/t/r/")};
  CHECK(c->txn({{all_new}, {}, {}})->succeeded);
  REQUIRE(c->put("/t/r/n1", "y").ok());
  CHECK_FALSE(c->txn({{all_new}, {}, {}})->succeeded);
}

TEST_CASE("a key bound to a lease goes with the lease") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto c = client_for({etcd.endpoint()});

  auto lease = c->lease_grant(5);
  REQUIRE(lease.ok());
  CHECK(lease->ttl == 5);
  REQUIRE(c->put("/t/member", "me", lease->id).ok());
  CHECK(c->get("/t/member")->value().lease == lease->id);
  auto ttl = c->lease_keepalive(lease->id);
  REQUIRE(ttl.ok());
  CHECK(*ttl == 5);
  auto left = c->lease_time_to_live(lease->id);
  REQUIRE(left.ok());
  CHECK(*left > 0);
  CHECK(*left <= 5);

  REQUIRE(c->lease_revoke(lease->id).ok());
  CHECK_FALSE(c->get("/t/member")->has_value());
  CHECK(*c->lease_keepalive(lease->id) == 0);
  CHECK(*c->lease_time_to_live(lease->id) == -1);

  // A short lease left alone expires by itself, taking its key.
  auto short_lease = c->lease_grant(2);
  REQUIRE(short_lease.ok());
  REQUIRE(c->put("/t/short", "x", short_lease->id).ok());
  CHECK(
      test::wait_until([&] { return !c->get("/t/short")->has_value(); }, 8s, "lease expiry").ok());
}

TEST_CASE("a watch sees puts and deletes from its start revision, as they happen") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto c = client_for({etcd.endpoint()});
  auto before = c->put("/w/old", "1");
  REQUIRE(before.ok());

  Seen seen;
  auto w = EtcdWatch::start(
      {{etcd.endpoint()}, 3000ms}, {"/w/", prefix_end("/w/"), *before},
      [&](const WatchBatch& b) { seen.add(b); }, [&](const WatchError& e) { seen.fail(e); });
  REQUIRE(w.ok());
  REQUIRE((*w)->wait_created(5s).ok());
  REQUIRE(seen.wait_events(1));  // the put before the watch, from its start revision
  CHECK(seen.events[0].kv.key == "/w/old");

  REQUIRE(c->put("/w/new", "2").ok());
  REQUIRE(c->put("/x/elsewhere", "not watched").ok());
  REQUIRE(c->erase("/w/old").ok());
  REQUIRE(seen.wait_events(3));
  std::lock_guard lock(seen.mu);
  REQUIRE(seen.events.size() == 3);
  CHECK(seen.events[1].type == WatchEvent::Type::kPut);
  CHECK(seen.events[1].kv.key == "/w/new");
  CHECK(seen.events[1].kv.value == "2");
  CHECK(seen.events[2].type == WatchEvent::Type::kDelete);
  CHECK(seen.events[2].kv.key == "/w/old");
  CHECK((*w)->next_revision() == seen.events[2].kv.mod_revision + 1);
  CHECK(seen.errors.empty());
}

TEST_CASE("a watch whose start revision is compacted ends and says so") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto c = client_for({etcd.endpoint()});
  REQUIRE(c->put("/w/a", "1").ok());
  auto rev = c->put("/w/a", "2");
  REQUIRE(rev.ok());
  REQUIRE(c->call("/v3/kv/compaction", "{\"revision\":\"" + std::to_string(*rev) + "\"}").ok());

  Seen seen;
  auto w = EtcdWatch::start(
      {{etcd.endpoint()}, 3000ms}, {"/w/", prefix_end("/w/"), 1},
      [&](const WatchBatch& b) { seen.add(b); }, [&](const WatchError& e) { seen.fail(e); });
  REQUIRE(w.ok());
  REQUIRE(seen.wait_errors(1));
  std::lock_guard lock(seen.mu);
  CHECK(seen.errors[0].compact_revision == *rev);
  CHECK_THAT(seen.errors[0].status.message(), Catch::Contains("compacted"));
}

TEST_CASE("a watch carries on across an etcd restart without missing a change") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto c = client_for({etcd.endpoint()});
  Seen seen;
  auto w = EtcdWatch::start(
      {{etcd.endpoint()}, 2000ms}, {"/w/", prefix_end("/w/"), 0},
      [&](const WatchBatch& b) { seen.add(b); }, [&](const WatchError& e) { seen.fail(e); });
  REQUIRE(w.ok());
  REQUIRE((*w)->wait_created(5s).ok());
  REQUIRE(c->put("/w/1", "a").ok());
  REQUIRE(seen.wait_events(1));

  // Killed, etcd drops the stream: the watch reports it and keeps trying; the change comes after
  // the restart, on the same data folder and ports.
  (void)etcd.stop(0ms);
  REQUIRE(seen.wait_errors(1));
  {
    std::lock_guard lock(seen.mu);
    CHECK_THAT(seen.errors[0].status.message(), Catch::Contains(etcd.endpoint()));
  }
  must(etcd.restart());
  REQUIRE(c->put("/w/2", "b").ok());
  REQUIRE(seen.wait_events(2, 10s));
  std::lock_guard lock(seen.mu);
  CHECK(seen.events.size() == 2);
  CHECK(seen.events[1].kv.key == "/w/2");
  CHECK(seen.in_place == 2);  // created, then created again after the restart
}

TEST_CASE("calls go on to the next endpoint, and name it when none answers") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  const std::string dead = "127.0.0.1:" + std::to_string(must(test::pick_unused_port()));

  auto c = client_for({dead, etcd.endpoint()});
  REQUIRE(c->put("/t/k", "v").ok());
  CHECK(c->current_endpoint() == etcd.endpoint());

  auto down = client_for({dead});
  auto r = down->get("/t/k");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("etcd " + dead));
  CHECK_THAT(r.status().message(), Catch::Contains("cannot connect"));

  // A gateway error comes back as a Status naming the endpoint and the call.
  auto bad = c->call("/v3/kv/put", R"({"key":"!!!"})");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK_THAT(bad.status().message(), Catch::Contains("/v3/kv/put"));
}

TEST_CASE("a call goes on to the next endpoint when the member it was connected to is killed") {
  // Two single-member etcds stand for two members of one cluster: what is tested is the client's
  // choice of endpoint, on a kept connection whose server dies (SIGKILL: no goodbye).
  auto dir = must(test::TempDir::create());
  auto first = must(test::EtcdServer::start(dir));
  auto second = must(test::EtcdServer::start(dir));
  REQUIRE(client_for({second.endpoint()})->put("/t/k", "second").ok());

  auto c = client_for({first.endpoint(), second.endpoint()});
  REQUIRE(c->put("/t/k", "first").ok());
  REQUIRE(c->current_endpoint() == first.endpoint());
  REQUIRE(::kill(first.process().pid(), SIGKILL) == 0);
  REQUIRE(first.process().wait(5s).ok());

  auto start = std::chrono::steady_clock::now();
  auto r = c->get("/t/k");
  auto took = std::chrono::steady_clock::now() - start;
  INFO((r.ok() ? std::string("ok") : r.status().message()));
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK((*r)->value == "second");
  CHECK(c->current_endpoint() == second.endpoint());
  CHECK(took < 1s);  // refused at once: no time spent waiting on the dead member
  // Every later call stays there, leases included.
  auto lease = c->lease_grant(5);
  REQUIRE(lease.ok());
  CHECK(c->lease_keepalive(lease->id).ok());
  CHECK(c->current_endpoint() == second.endpoint());
}

TEST_CASE("a call to a server that never answers times out, naming it") {
  // A listening socket that nobody accepts on: the connection is made (the backlog takes it),
  // the request is sent, and no answer ever comes.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 4) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string silent = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  auto c = client_for({silent}, 300ms);
  auto start = std::chrono::steady_clock::now();
  auto r = c->get("/t/k");
  auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kTimeout);
  CHECK_THAT(r.status().message(), Catch::Contains("etcd " + silent));
  CHECK_THAT(r.status().message(), Catch::Contains("timed out"));
  CHECK(took < 2s);
}

TEST_CASE("a watch delivers each change of a quiet stream as it comes") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto c = client_for({etcd.endpoint()});
  Seen seen;
  auto w = EtcdWatch::start(
      {{etcd.endpoint()}, 3000ms}, {"/w/", prefix_end("/w/"), 0},
      [&](const WatchBatch& b) { seen.add(b); }, [&](const WatchError& e) { seen.fail(e); });
  REQUIRE(w.ok());
  REQUIRE((*w)->wait_created(5s).ok());
  for (size_t i = 1; i <= 5; ++i) {
    std::this_thread::sleep_for(200ms);
    REQUIRE(c->put("/w/k" + std::to_string(i), std::string(i * 100, 'x')).ok());
    INFO("change " << i);
    REQUIRE(seen.wait_events(i, 3s));
  }
}

TEST_CASE("which transactions may be sent again after an unknown outcome") {
  // Compare-and-set on a key it writes: fails for good once applied.
  CHECK(txn_at_most_once({{Compare::unchanged("/k", 5)}, {TxnOp::put("/k", "v")}, {}}));
  CHECK(txn_at_most_once({{Compare::unchanged("/k", 5)}, {TxnOp::erase("/k")}, {}}));
  CHECK(txn_at_most_once({{Compare::absent("/a"), Compare::unchanged("/k", 5)},
                          {TxnOp::put("/a", "x"), TxnOp::put("/k", "v")},
                          {}}));
  // ... also when the key is in a range the branch deletes.
  CHECK(txn_at_most_once(
      {{Compare::unchanged("/p/b", 5)}, {TxnOp::erase("/p/", prefix_end("/p/"))}, {}}));
  // A reconfiguration's commit: its intent, created at C, deleted by it.
  CHECK(
      txn_at_most_once({{{"/i", Compare::Target::kCreateRevision, Compare::Op::kEqual, 9, {}, {}}},
                        {TxnOp::put("/k", "v"), TxnOp::erase("/i")},
                        {}}));
  // Absent: someone may delete the key after it ran, and it would run again.
  CHECK_FALSE(txn_at_most_once({{Compare::absent("/k")}, {TxnOp::put("/k", "v")}, {}}));
  // A revision compared on a key it does not write holds for as long as nobody writes that key.
  CHECK_FALSE(txn_at_most_once({{Compare::unchanged("/o", 5)}, {TxnOp::put("/k", "v")}, {}}));
  CHECK_FALSE(txn_at_most_once(
      {{Compare::unchanged("/p/b", 5)}, {TxnOp::erase("/p/a", "/p/b")}, {}}));  // end excluded
  // A create_revision compare on a key it only puts: a put leaves create_revision as it is.
  CHECK_FALSE(
      txn_at_most_once({{{"/k", Compare::Target::kCreateRevision, Compare::Op::kEqual, 9, {}, {}}},
                        {TxnOp::put("/k", "v")},
                        {}}));
  // Versions, values, inequalities, revision 0 (absent): may hold again.
  CHECK_FALSE(txn_at_most_once({{{"/k", Compare::Target::kVersion, Compare::Op::kEqual, 2, {}, {}}},
                                {TxnOp::put("/k", "v")},
                                {}}));
  CHECK_FALSE(
      txn_at_most_once({{{"/k", Compare::Target::kModRevision, Compare::Op::kLess, 9, {}, {}}},
                        {TxnOp::put("/k", "v")},
                        {}}));
  CHECK_FALSE(txn_at_most_once({{Compare::unchanged("/k", 0)}, {TxnOp::put("/k", "v")}, {}}));
  // A revision compared over a range: it says nothing of the one key the branch writes.
  CHECK_FALSE(txn_at_most_once(
      {{{"/k", Compare::Target::kModRevision, Compare::Op::kEqual, 5, {}, prefix_end("/k")}},
       {TxnOp::put("/k", "v")},
       {}}));
  // What a read in its success branch read cannot be had again.
  CHECK_FALSE(txn_at_most_once(
      {{Compare::unchanged("/k", 5)}, {TxnOp::put("/k", "v"), TxnOp::range("/o")}, {}}));
}

TEST_CASE("which transactions are create-if-absent, and may be sent again as such") {
  CHECK(txn_creates_only({{Compare::absent("/k")}, {TxnOp::put("/k", "v", 7)}, {}}));
  CHECK(txn_creates_only({{{"/k", Compare::Target::kVersion, Compare::Op::kEqual, 0, {}, {}}},
                          {TxnOp::put("/k", "v")},
                          {TxnOp::range("/k")}}));
  // An import: several packs, each required absent; another compare is only a condition.
  CHECK(txn_creates_only({{Compare::absent("/p/a"),
                           Compare::absent("/p/b"),
                           {"/c", Compare::Target::kValue, Compare::Op::kEqual, 0, "on", {}}},
                          {TxnOp::put("/p/a", "1"), TxnOp::put("/p/b", "2")},
                          {}}));
  // A put of a key not required absent would be written twice.
  CHECK_FALSE(txn_creates_only(
      {{Compare::absent("/p/a")}, {TxnOp::put("/p/a", "1"), TxnOp::put("/p/b", "2")}, {}}));
  // A delete, or a read, in the branch: applied twice is not applied once.
  CHECK_FALSE(
      txn_creates_only({{Compare::absent("/k")}, {TxnOp::put("/k", "v"), TxnOp::erase("/o")}, {}}));
  CHECK_FALSE(
      txn_creates_only({{Compare::absent("/k")}, {TxnOp::put("/k", "v"), TxnOp::range("/o")}, {}}));
  // Not "absent": another revision, another version, an inequality.
  CHECK_FALSE(txn_creates_only({{Compare::unchanged("/k", 0)}, {TxnOp::put("/k", "v")}, {}}));
  CHECK_FALSE(txn_creates_only({{{"/k", Compare::Target::kVersion, Compare::Op::kEqual, 2, {}, {}}},
                                {TxnOp::put("/k", "v")},
                                {}}));
  CHECK_FALSE(txn_creates_only(
      {{{"/k", Compare::Target::kCreateRevision, Compare::Op::kNotEqual, 0, {}, {}}},
       {TxnOp::put("/k", "v")},
       {}}));
  CHECK_FALSE(txn_creates_only({{}, {TxnOp::put("/k", "v")}, {}}));
  // No key in a range that begins with the key: not the key required absent.
  CHECK_FALSE(
      txn_creates_only({{Compare::none_in("/k", prefix_end("/k"))}, {TxnOp::put("/k", "v")}, {}}));
  CHECK_FALSE(txn_creates_only({{Compare::absent("/k")}, {}, {}}));
}

TEST_CASE("a transaction's effect is seen in its keys read back") {
  const Txn t{{Compare::unchanged("/k", 5)},
              {TxnOp::put("/k", "v", 7), TxnOp::put("/l", "w"), TxnOp::erase("/d")},
              {}};
  auto kv = [](std::string key, std::string value, int64_t rev, int64_t lease) {
    KeyValue k;
    k.key = std::move(key);
    k.value = std::move(value);
    k.mod_revision = rev;
    k.lease = lease;
    return k;
  };
  int64_t at = 0;
  CHECK(txn_effect_seen(t, {{kv("/k", "v", 12, 7)}, {kv("/l", "w", 12, 0)}, {}}, 20, &at));
  CHECK(at == 12);
  // A deleted key written again since does not hide the puts.
  CHECK(txn_effect_seen(t, {{kv("/k", "v", 12, 7)}, {kv("/l", "w", 12, 0)}, {kv("/d", "x", 15, 0)}},
                        20, &at));
  // Not one write: two revisions, another value, another lease, a key missing.
  CHECK_FALSE(txn_effect_seen(t, {{kv("/k", "v", 12, 7)}, {kv("/l", "w", 13, 0)}, {}}, 20, &at));
  CHECK_FALSE(txn_effect_seen(t, {{kv("/k", "x", 12, 7)}, {kv("/l", "w", 12, 0)}, {}}, 20, &at));
  CHECK_FALSE(txn_effect_seen(t, {{kv("/k", "v", 12, 8)}, {kv("/l", "w", 12, 0)}, {}}, 20, &at));
  CHECK_FALSE(txn_effect_seen(t, {{}, {kv("/l", "w", 12, 0)}, {}}, 20, &at));
  CHECK_FALSE(txn_effect_seen(t, {{kv("/k", "v", 12, 7)}}, 20, &at));  // reads missing
  // A branch of deletes only: its keys gone, as of the read.
  const Txn d{{Compare::unchanged("/k", 5)}, {TxnOp::erase("/k"), TxnOp::erase("/p/", "/p0")}, {}};
  CHECK(txn_effect_seen(d, {{}, {}}, 20, &at));
  CHECK(at == 20);
  CHECK_FALSE(txn_effect_seen(d, {{}, {kv("/p/x", "1", 3, 0)}}, 20, &at));
}

TEST_CASE("a read goes on to the next endpoint when a member never answers (a stopped one)") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  REQUIRE(client_for({etcd.endpoint()})->put("/t/k", "v").ok());
  SilentServer stopped;
  auto c = failover_client({stopped.endpoint, etcd.endpoint()});
  auto start = std::chrono::steady_clock::now();
  auto r = c->get("/t/k");
  auto took = std::chrono::steady_clock::now() - start;
  INFO((r.ok() ? std::string("ok") : r.status().message()));
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK((*r)->value == "v");
  CHECK(took >= 400ms);  // one attempt on the silent one...
  CHECK(took < 1500ms);  // ... and not the call's whole timeout
  CHECK(c->current_endpoint() == etcd.endpoint());
  // A lease renewal and a plain put go on too, and a read-only transaction.
  auto lease = c->lease_grant(5);
  REQUIRE(lease.ok());
  auto first = failover_client({stopped.endpoint, etcd.endpoint()});
  CHECK(*first->lease_keepalive(lease->id) == 5);
  first = failover_client({stopped.endpoint, etcd.endpoint()});
  CHECK(first->put("/t/k", "w").ok());
  first = failover_client({stopped.endpoint, etcd.endpoint()});
  auto read = first->txn({{}, {TxnOp::range("/t/k")}, {}});
  REQUIRE(read.ok());
  REQUIRE(read->ranges.size() == 1);
  CHECK(read->ranges[0].at(0).value == "w");
}

TEST_CASE("a compare-and-set whose answer is lost is applied once, and said to have succeeded") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto direct = client_for({etcd.endpoint()});
  const int64_t created = *direct->put("/t/k", "old");

  SECTION("applied by the member that died: found applied, not applied again") {
    AnswerDropper died(port_of(etcd.endpoint()));
    auto c = failover_client({died.endpoint(), etcd.endpoint()});
    auto r = c->txn({{Compare::unchanged("/t/k", created)}, {TxnOp::put("/t/k", "new")}, {}});
    INFO((r.ok() ? std::string("ok") : r.status().message()));
    REQUIRE(r.ok());
    CHECK(r->succeeded);
    CHECK(died.dropped() == 1);
    auto kv = direct->get("/t/k")->value();
    CHECK(kv.value == "new");
    CHECK(kv.version == 2);  // created, then written once
    CHECK(r->revision == kv.mod_revision);
  }
  SECTION("never seen by the stopped member: sent again and applied there, once") {
    SilentServer stopped;
    auto c = failover_client({stopped.endpoint, etcd.endpoint()});
    auto r = c->txn({{Compare::unchanged("/t/k", created)}, {TxnOp::put("/t/k", "new")}, {}});
    INFO((r.ok() ? std::string("ok") : r.status().message()));
    REQUIRE(r.ok());
    CHECK(r->succeeded);
    auto kv = direct->get("/t/k")->value();
    CHECK(kv.version == 2);
    CHECK(r->revision == kv.mod_revision);
  }
  SECTION("changed by someone else meanwhile: not succeeded, the caller's reads kept") {
    SilentServer stopped;
    REQUIRE(direct->put("/t/k", "theirs").ok());
    auto c = failover_client({stopped.endpoint, etcd.endpoint()});
    auto r = c->txn({{Compare::unchanged("/t/k", created)},
                     {TxnOp::put("/t/k", "new")},
                     {TxnOp::range("/t/k")}});
    REQUIRE(r.ok());
    CHECK_FALSE(r->succeeded);
    REQUIRE(r->ranges.size() == 1);
    CHECK(r->ranges[0].at(0).value == "theirs");
    CHECK(direct->get("/t/k")->value().value == "theirs");
  }
}

TEST_CASE("a create-if-absent whose answer is lost is resolved: ours, created, or theirs") {
  auto dir = must(test::TempDir::create());
  auto etcd = must(test::EtcdServer::start(dir));
  auto direct = client_for({etcd.endpoint()});
  const int64_t lease = direct->lease_grant(30)->id;
  // A hold as a node takes it: bound to the node's lease, the holder read when it fails.
  const Txn create{
      {Compare::absent("/t/n")}, {TxnOp::put("/t/n", "mine", lease)}, {TxnOp::range("/t/n")}};

  SECTION("applied by the member that died: ours, found in its keys, not applied again") {
    AnswerDropper died(port_of(etcd.endpoint()));
    auto c = failover_client({died.endpoint(), etcd.endpoint()});
    auto r = c->txn(create);
    INFO((r.ok() ? std::string("ok") : r.status().message()));
    REQUIRE(r.ok());
    CHECK(r->succeeded);
    CHECK(died.dropped() == 1);
    auto kv = direct->get("/t/n")->value();
    CHECK(kv.version == 1);
    CHECK(kv.lease == lease);
    CHECK(r->revision == kv.mod_revision);
  }
  SECTION("never seen by the stopped member: sent again, and created there once") {
    SilentServer stopped;
    auto c = failover_client({stopped.endpoint, etcd.endpoint()});
    auto r = c->txn(create);
    INFO((r.ok() ? std::string("ok") : r.status().message()));
    REQUIRE(r.ok());
    CHECK(r->succeeded);
    auto kv = direct->get("/t/n")->value();
    CHECK(kv.value == "mine");
    CHECK(kv.version == 1);
    CHECK(r->revision == kv.mod_revision);
  }
  SECTION("created by someone else meanwhile: not succeeded, the holder in the caller's read") {
    SilentServer stopped;
    REQUIRE(direct->put("/t/n", "theirs").ok());
    auto c = failover_client({stopped.endpoint, etcd.endpoint()});
    auto r = c->txn(create);
    INFO((r.ok() ? std::string("ok") : r.status().message()));
    REQUIRE(r.ok());
    CHECK_FALSE(r->succeeded);
    REQUIRE(r->ranges.size() == 1);
    CHECK(r->ranges[0].at(0).value == "theirs");
    CHECK(direct->get("/t/n")->value().value == "theirs");
  }
  SECTION("the same value under another lease is not ours") {
    AnswerDropper died(port_of(etcd.endpoint()));
    REQUIRE(direct->put("/t/n", "mine").ok());  // no lease: someone else's
    auto c = failover_client({died.endpoint(), etcd.endpoint()});
    auto r = c->txn(create);
    REQUIRE(r.ok());
    CHECK_FALSE(r->succeeded);
  }
  SECTION("several keys at once (an import): applied by the member that died, all ours") {
    AnswerDropper died(port_of(etcd.endpoint()));
    auto c = failover_client({died.endpoint(), etcd.endpoint()});
    auto r = c->txn({{Compare::absent("/t/p/a"), Compare::absent("/t/p/b")},
                     {TxnOp::put("/t/p/a", "1"), TxnOp::put("/t/p/b", "2")},
                     {}});
    INFO((r.ok() ? std::string("ok") : r.status().message()));
    REQUIRE(r.ok());
    CHECK(r->succeeded);
    CHECK(direct->get("/t/p/a")->value().version == 1);
    CHECK(direct->get("/t/p/b")->value().version == 1);
  }
  SECTION("neither create-if-absent nor at most once: read back, never sent again") {
    REQUIRE(direct->put("/t/v", "old").ok());
    SilentServer stopped;
    auto c = failover_client({stopped.endpoint, etcd.endpoint()});
    auto r = c->txn({{{"/t/v", Compare::Target::kVersion, Compare::Op::kEqual, 1, {}, {}}},
                     {TxnOp::put("/t/v", "new")},
                     {}});
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("etcd " + stopped.endpoint));
    CHECK_THAT(r.status().message(), Catch::Contains("outcome is unknown"));
    CHECK(direct->get("/t/v")->value().value == "old");
  }
}

TEST_CASE("a watch leaves a member that stops answering and resumes on the next") {
  auto dir = must(test::TempDir::create());
  auto first = must(test::EtcdServer::start(dir));
  auto second = must(test::EtcdServer::start(dir));
  Seen seen;
  EtcdOptions o{{first.endpoint(), second.endpoint()}, 3000ms};
  o.attempt_timeout = 400ms;
  auto w = EtcdWatch::start(
      o, {"/w/", prefix_end("/w/"), 0}, [&](const WatchBatch& b) { seen.add(b); },
      [&](const WatchError& e) { seen.fail(e); });
  REQUIRE(w.ok());
  REQUIRE((*w)->wait_created(5s).ok());
  REQUIRE(::kill(first.process().pid(), SIGSTOP) == 0);
  auto start = std::chrono::steady_clock::now();
  const bool left = seen.wait_errors(1, 5s);
  auto took = std::chrono::steady_clock::now() - start;
  ::kill(first.process().pid(), SIGCONT);
  REQUIRE(left);
  CHECK(took < EtcdWatch::kCheckInterval + 1s);
  {
    std::lock_guard lock(seen.mu);
    CHECK_THAT(seen.errors[0].status.message(), Catch::Contains("etcd " + first.endpoint()));
    CHECK_THAT(seen.errors[0].status.message(), Catch::Contains("does not answer a read"));
  }
  // In place again on the second: its changes come.
  REQUIRE(test::wait_until(
              [&] {
                std::lock_guard lock(seen.mu);
                return seen.in_place >= 2;
              },
              5s, "the watch on the second member")
              .ok());
  REQUIRE(client_for({second.endpoint()})->put("/w/x", "1").ok());
  CHECK(seen.wait_events(1, 3s));
}
