// etcd_client_test.cc: the etcd client and its watches (client/cluster/) against a real etcd
// started for each test case (harness/etcd.h), and the parts that need none (base64, endpoints).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

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

  Compare version{"/t/node", Compare::Target::kVersion, Compare::Op::kEqual, 2, {}};
  auto by_version = c->txn({{version}, {TxnOp::erase("/t/node")}, {}});
  REQUIRE(by_version.ok());
  CHECK(by_version->succeeded);
  CHECK_FALSE(c->get("/t/node")->has_value());
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
