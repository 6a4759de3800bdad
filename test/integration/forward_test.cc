// forward_test.cc: the forwarder (nbdkit-plugin/forward/forwarder.h) against real nbdkit servers
// running the vvm plugin on 127.0.0.2, .3 and .4, all serving one pack of one shared backing
// file, driven from many threads at once: a primary killed mid-run, a primary whose path fails
// (it answers the NAK), a pool of three with one killed, a reconfiguration during writes, every
// server down, and unflushed writes lost with their server and replayed on the next one.
//
// Worker threads never use Catch2's macros (not thread-safe): they count what went wrong, and the
// main thread checks. Every loop is bounded in count and in time.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "forward/forwarder.h"
#include "process.h"

namespace vvm::test {
namespace {

using plugin::IoStatus;
using plugin::forward::Forwarder;
using plugin::forward::ForwardOptions;
using plugin::forward::ServerSpec;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kDiskSize = 32 * kMiB;
constexpr uint32_t kBlock = 4096;

// A port free on 127.0.0.2, .3 and .4 at once: each server listens on its own address.
uint16_t pick_port() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = 0;
    ::inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
    socklen_t len = sizeof a;
    if (::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(probe);
      continue;
    }
    const uint16_t port = ntohs(a.sin_port);
    ::close(probe);
    bool all = true;
    for (const char* ip : {"127.0.0.2", "127.0.0.3", "127.0.0.4"}) {
      int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in b{};
      b.sin_family = AF_INET;
      b.sin_port = htons(port);
      ::inet_pton(AF_INET, ip, &b.sin_addr);
      all = all && ::bind(s, reinterpret_cast<sockaddr*>(&b), sizeof b) == 0;
      ::close(s);
    }
    if (all) return port;
  }
  FAIL("no TCP port free on 127.0.0.2-4");
  return 0;
}

// The byte a block holds after write number `gen` of its owner: differs with the block, the
// generation and the byte, so a lost, stale or misplaced write shows.
void fill(std::vector<char>& buf, uint64_t block, uint64_t gen) {
  for (size_t i = 0; i < buf.size(); i += 8) {
    const uint64_t v = (block << 40) ^ (gen << 8) ^ i ^ 0x9e3779b97f4a7c15ull;
    std::memcpy(buf.data() + i, &v, 8);
  }
}

// Three nbdkit servers with the vvm plugin, serving pack `a` of one backing file, each with the
// path-failure NAK on and a fault trigger file of its own (VVM_TEST_PATH_FAULT).
class Servers {
 public:
  // `options` go before the plugin (--filter=...), `params` after it (the filters' too).
  explicit Servers(std::vector<std::string> options = {}, std::vector<std::string> params = {})
      : dir_(must(TempDir::create("vvm-forward-test"))),
        options_(std::move(options)),
        params_(std::move(params)) {
    backing_ = dir_.file("disk.img");
    const int fd = ::open(backing_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd != -1);
    REQUIRE(::ftruncate(fd, kDiskSize) == 0);
    ::close(fd);
    must(write_file(dir_.file("packtab"),
                    "a disk.img 0 " + std::to_string(kDiskSize) + " shared root root 0666\n"));
    port_ = pick_port();
    for (int i = 0; i < 3; ++i) start(i);
  }
  ~Servers() {
    for (auto& p : procs_) {
      if (p) (void)p->stop(5s);
    }
  }

  std::string uri(int i) const {
    return "nbd://" + ip(i) + ":" + std::to_string(port_) + "/pack/a";
  }
  std::vector<ServerSpec> specs(std::initializer_list<int> which) const {
    std::vector<ServerSpec> out;
    for (int i : which) out.push_back({uri(i)});
    return out;
  }
  void kill(int i) {
    REQUIRE(procs_[i]);
    ::kill(procs_[i]->pid(), SIGKILL);
    (void)procs_[i]->wait(10s);
  }
  void signal(int i, int sig) { ::kill(procs_[i]->pid(), sig); }
  // Makes server i's backing fail with EIO from its next request on.
  void break_path(int i) { must(write_file(trigger(i), "")); }
  std::string log(int i) const { return procs_[i]->stderr_text(); }
  const std::string& backing() const { return backing_; }

  // The backing file's bytes, read directly.
  std::vector<char> disk(uint64_t offset, uint64_t count) const {
    std::vector<char> buf(count);
    const int fd = ::open(backing_.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd != -1);
    REQUIRE(::pread(fd, buf.data(), count, static_cast<off_t>(offset)) ==
            static_cast<ssize_t>(count));
    ::close(fd);
    return buf;
  }

 private:
  static std::string ip(int i) { return "127.0.0." + std::to_string(2 + i); }
  std::string trigger(int i) const { return dir_.file("fault" + std::to_string(i)); }

  void start(int i) {
    const std::string pidfile = dir_.file("nbdkit" + std::to_string(i) + ".pid");
    std::vector<std::string> argv = {"nbdkit", "-f",    "-i",
                                     ip(i),    "-p",    std::to_string(port_),
                                     "-P",     pidfile, "--exit-with-parent"};
    argv.insert(argv.end(), options_.begin(), options_.end());
    argv.push_back(must(plugin_path()));
    argv.push_back("packtab=" + dir_.file("packtab"));
    argv.push_back("path-failure=nak");
    argv.insert(argv.end(), params_.begin(), params_.end());
    EnvList env = nbdkit_env();
    env.emplace_back("VVM_TEST_PATH_FAULT", "a:" + trigger(i));
    procs_[i].emplace(must(Process::start(argv, dir_.path(), env)));
    struct stat st;
    Process& p = *procs_[i];
    must(wait_until(
        [&] { return (::stat(pidfile.c_str(), &st) == 0 && st.st_size > 0) || !p.running(); }, 60s,
        "nbdkit " + std::to_string(i) + "'s pidfile"));
    if (!p.running()) FAIL("nbdkit " << i << " exited before it was ready:\n" << p.stderr_text());
  }

  TempDir dir_;
  std::vector<std::string> options_;
  std::vector<std::string> params_;
  std::string backing_;
  uint16_t port_ = 0;
  std::optional<Process> procs_[3];
};

// What the forwarder logged, for the test's messages.
struct Log {
  std::mutex m;
  std::vector<std::string> lines;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& l) {
      const std::lock_guard lock(m);
      lines.push_back(l);
    };
  }
  std::string text() {
    const std::lock_guard lock(m);
    std::string out;
    for (auto& l : lines) out += l + "\n";
    return out;
  }
};

std::unique_ptr<Forwarder> open_forwarder(std::vector<ServerSpec> servers, bool pool, Log& log,
                                          std::chrono::milliseconds drain_timeout = 10s) {
  ForwardOptions o;
  o.name = "pack/a";
  o.servers = std::move(servers);
  o.pool = pool;
  o.log = log.sink();
  o.drain_timeout = drain_timeout;
  return must(Forwarder::open(std::move(o)));
}

// Writers: `threads` threads, each owning `blocks` blocks of its own, writing generation after
// generation of them in order, a flush every `flush_every` writes, until `stop` or `max_writes`
// writes or `limit` time. Records every error and the last generation each block got.
struct Writers {
  int threads = 16;
  uint64_t blocks = 64;  // per thread
  int flush_every = 16;
  uint64_t max_writes = 20000;  // per thread
  std::chrono::milliseconds limit{20'000};
  bool verify_each = false;  // read each block back after its write (read-your-writes)

  std::atomic<uint64_t> writes{0};
  std::atomic<bool> stop{false};
  std::mutex m;
  std::vector<std::string> errors;
  std::vector<uint64_t> last_gen;     // per block; 0 = never written
  std::vector<uint64_t> flushed_gen;  // per block: the generation a flush acknowledged

  void run(Forwarder& f) {
    last_gen.assign(threads * blocks, 0);
    flushed_gen.assign(threads * blocks, 0);
    std::vector<std::thread> ts;
    const auto deadline = Clock::now() + limit;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        std::vector<char> buf(kBlock), back(kBlock);
        std::vector<uint64_t> mine(blocks, 0);
        for (uint64_t n = 0; n < max_writes && !stop.load() && Clock::now() < deadline; ++n) {
          const uint64_t b = t * blocks + n % blocks;
          const uint64_t gen = n / blocks + 1;
          fill(buf, b, gen);
          if (IoStatus s = f.pwrite(buf.data(), kBlock, b * kBlock, false); !s.ok()) {
            note("write: " + s.status().message());
            return;
          }
          mine[n % blocks] = gen;
          {
            const std::lock_guard lock(m);
            last_gen[b] = gen;
          }
          writes.fetch_add(1);
          if (verify_each) {
            if (IoStatus s = f.pread(back.data(), kBlock, b * kBlock); !s.ok()) {
              note("read: " + s.status().message());
              return;
            }
            if (back != buf)
              note("block " + std::to_string(b) + " does not read back gen " + std::to_string(gen));
          }
          if ((n + 1) % flush_every == 0) {
            if (IoStatus s = f.flush(); !s.ok()) {
              note("flush: " + s.status().message());
              return;
            }
            const std::lock_guard lock(m);
            for (uint64_t i = 0; i < blocks; ++i) flushed_gen[t * blocks + i] = mine[i];
          }
        }
      });
    }
    for (auto& th : ts) th.join();
  }
  void note(const std::string& e) {
    const std::lock_guard lock(m);
    if (errors.size() < 20) errors.push_back(e);
  }
  std::string error_text() {
    std::string out;
    for (auto& e : errors) out += e + "\n";
    return out;
  }
  // Blocks whose content (through `read`) is not their last acknowledged generation.
  template <class Read>
  uint64_t wrong_blocks(Read&& read, std::string* first) {
    uint64_t wrong = 0;
    std::vector<char> want(kBlock);
    for (uint64_t b = 0; b < last_gen.size(); ++b) {
      if (last_gen[b] == 0) continue;
      fill(want, b, last_gen[b]);
      if (read(b) != want) {
        if (wrong++ == 0)
          *first = "block " + std::to_string(b) + " gen " + std::to_string(last_gen[b]);
      }
    }
    return wrong;
  }
};

// Waits (bounded) until the writers have done `n` writes.
void wait_for_writes(Writers& w, uint64_t n) {
  const auto deadline = Clock::now() + 30s;
  while (w.writes.load() < n && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
}

uint64_t requests(const Forwarder& f, size_t i) { return f.stats().servers.at(i).requests; }

void check_readback(Servers& servers, Forwarder& f, Writers& w) {
  std::string first;
  const uint64_t via_forwarder = w.wrong_blocks(
      [&](uint64_t b) {
        std::vector<char> buf(kBlock);
        if (!f.pread(buf.data(), kBlock, b * kBlock).ok()) buf.assign(kBlock, 0);
        return buf;
      },
      &first);
  INFO("first wrong block through the forwarder: " << first);
  CHECK(via_forwarder == 0);
  const uint64_t on_disk =
      w.wrong_blocks([&](uint64_t b) { return servers.disk(b * kBlock, kBlock); }, &first);
  INFO("first wrong block on the backing: " << first);
  CHECK(on_disk == 0);
}

TEST_CASE("the forwarder advertises what the servers offer and passes every request on") {
  Servers servers;
  Log log;
  auto f = open_forwarder(servers.specs({0, 1}), false, log);
  const auto& c = f->caps();
  CHECK(c.size == kDiskSize);
  CHECK(c.can_write);
  CHECK(c.can_flush);
  CHECK(c.can_fua);
  CHECK(c.can_trim);
  CHECK(c.can_zero);
  CHECK(c.can_fast_zero);
  CHECK(c.can_extents);
  CHECK(c.can_cache);
  CHECK(c.can_multi_conn);
  CHECK(c.block_preferred == 4096);

  std::vector<char> buf(64 * 1024, 'x'), back(buf.size());
  REQUIRE(f->pwrite(buf.data(), buf.size(), kMiB, true).ok());
  CHECK(servers.disk(kMiB, buf.size()) == buf);  // FUA: on the backing now
  REQUIRE(f->pread(back.data(), back.size(), kMiB).ok());
  CHECK(back == buf);
  REQUIRE(f->zero(4096, kMiB, false, false, false).ok());
  REQUIRE(f->trim(4096, kMiB + 4096, false).ok());
  REQUIRE(f->flush().ok());
  REQUIRE(f->pread(back.data(), 4096, kMiB).ok());
  CHECK(std::vector<char>(back.begin(), back.begin() + 4096) == std::vector<char>(4096, 0));
  REQUIRE(f->cache(65536, 0).ok());
  std::vector<plugin::forward::Extent> ext;
  REQUIRE(f->extents(8 * kMiB, 16 * kMiB, false, &ext).ok());
  REQUIRE_FALSE(ext.empty());
  CHECK(ext.front().offset == 16 * kMiB);
  CHECK(ext.front().hole);  // never written: a hole in the sparse backing
  // An answer about the data is passed on, not retried: a read past the end.
  IoStatus past = f->pread(back.data(), 4096, kDiskSize);
  CHECK(past.err() == EINVAL);
  CHECK(f->stats().failovers == 0);
  // Every request went to the primary.
  CHECK(requests(*f, 0) > 0);
  CHECK(requests(*f, 1) == 0);
}

TEST_CASE(
    "the primary killed during writes and flushes: no error, every acknowledged write "
    "reads back") {
  Servers servers;
  Log log;
  auto f = open_forwarder(servers.specs({0, 1}), false, log);
  Writers w;
  std::thread killer([&] {
    wait_for_writes(w, 3000);
    servers.kill(0);
  });
  w.run(*f);
  killer.join();
  INFO(log.text());
  INFO(w.error_text());
  CHECK(w.errors.empty());
  const auto st = f->stats();
  CHECK_FALSE(st.servers[0].healthy);
  CHECK(st.servers[0].down_reason.find("connection lost") != std::string::npos);
  CHECK(st.servers[1].healthy);
  CHECK(st.servers[1].requests > 0);
  CHECK(w.writes.load() > 3000);
  check_readback(servers, *f, w);
}

TEST_CASE("the primary answers the NAK when its path fails: requests go to the secondary") {
  Servers servers;
  Log log;
  auto f = open_forwarder(servers.specs({0, 1}), false, log);
  Writers w;
  w.verify_each = true;
  std::thread breaker([&] {
    wait_for_writes(w, 2000);
    servers.break_path(0);
  });
  w.run(*f);
  breaker.join();
  INFO(log.text());
  INFO(w.error_text());
  CHECK(w.errors.empty());
  const auto st = f->stats();
  CHECK_FALSE(st.servers[0].healthy);
  CHECK(st.servers[0].down_reason.find("NBD_ESHUTDOWN") != std::string::npos);
  CHECK(st.servers[1].requests > 0);
  // The failing server logged its path failure as an error once, not once a request.
  const std::string log0 = servers.log(0);
  size_t errors = 0;
  for (size_t pos = 0; (pos = log0.find("error: pack/a:", pos)) != std::string::npos; ++pos) {
    if (log0.find("NBD_ESHUTDOWN", pos) != std::string::npos) ++errors;
  }
  INFO(log0.substr(log0.size() > 3000 ? log0.size() - 3000 : 0));
  CHECK(errors == 1);
  check_readback(servers, *f, w);
}

TEST_CASE("a pool of three spreads the load; one killed, nothing seen") {
  Servers servers;
  Log log;
  auto f = open_forwarder(servers.specs({0, 1, 2}), true, log);
  Writers w;
  w.verify_each = true;
  uint64_t before[3] = {};
  std::thread killer([&] {
    wait_for_writes(w, 3000);
    for (int i = 0; i < 3; ++i) before[i] = requests(*f, i);
    servers.kill(1);
  });
  w.run(*f);
  killer.join();
  INFO(log.text());
  INFO(w.error_text());
  CHECK(w.errors.empty());
  const uint64_t total = before[0] + before[1] + before[2];
  INFO("requests before the kill: " << before[0] << " " << before[1] << " " << before[2]);
  for (int i = 0; i < 3; ++i) CHECK(before[i] * 10 > total);  // each took over a tenth
  const auto st = f->stats();
  CHECK_FALSE(st.servers[1].healthy);
  CHECK(st.servers[0].requests > before[0]);
  CHECK(st.servers[2].requests > before[2]);
  check_readback(servers, *f, w);
}

TEST_CASE("a reconfiguration during writes loses and reorders nothing; the pause is printed") {
  Servers servers;
  Log log;
  auto f = open_forwarder(servers.specs({0, 1}), false, log);
  Writers w;
  w.verify_each = true;
  std::chrono::microseconds paused{0};
  std::string failure;
  std::thread mover([&] {
    wait_for_writes(w, 2000);
    auto r = f->reconfigure(servers.specs({2, 1}), false);
    if (r.ok()) {
      paused = *r;
    } else {
      failure = r.status().message();
    }
  });
  w.run(*f);
  mover.join();
  INFO(log.text());
  INFO(w.error_text());
  REQUIRE(failure.empty());
  CHECK(w.errors.empty());
  std::printf("forward_test: reconfiguration held requests for %.3f ms (16 writer threads)\n",
              paused.count() / 1000.0);
  CHECK(paused < 5s);
  const auto st = f->stats();
  REQUIRE(st.servers.size() == 2);
  CHECK(st.servers[0].uri == servers.uri(2));
  CHECK(st.servers[0].requests > 0);  // the new primary took over
  check_readback(servers, *f, w);
}

TEST_CASE("a hung primary marked down by the lease side: its requests go to the secondary") {
  Servers servers;
  Log log;
  auto f = open_forwarder(servers.specs({0, 1}), false, log);
  Writers w;
  w.verify_each = true;
  Clock::duration stalled{};
  std::thread lease([&] {
    wait_for_writes(w, 2000);
    servers.signal(0, SIGSTOP);  // hangs: requests to it get no answer
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(300ms);  // the lease running out
    (void)f->mark_down(servers.uri(0), "lease expired");
    stalled = Clock::now() - t0;
  });
  w.run(*f);
  lease.join();
  // Fenced for good: a paused node that came back would apply the writes it held late.
  servers.kill(0);
  INFO(log.text());
  INFO(w.error_text());
  CHECK(w.errors.empty());
  const auto st = f->stats();
  CHECK(st.servers[0].down_reason == "marked down: lease expired");
  CHECK(st.servers[1].requests > 0);
  CHECK(stalled < 5s);
  check_readback(servers, *f, w);
}

TEST_CASE("a server marked down and up again takes requests again") {
  Servers servers;
  Log log;
  auto f = open_forwarder(servers.specs({0, 1}), false, log);
  std::vector<char> buf(4096, 'm'), back(4096);
  REQUIRE(f->mark_down(servers.uri(0), "maintenance").ok());
  REQUIRE(f->pwrite(buf.data(), 4096, 0, false).ok());
  CHECK(requests(*f, 0) == 0);
  CHECK(requests(*f, 1) == 1);
  REQUIRE(f->flush().ok());
  REQUIRE(f->mark_up(servers.uri(0)).ok());
  CHECK(f->stats().servers[0].healthy);
  REQUIRE(f->pread(back.data(), 4096, 0).ok());
  CHECK(back == buf);
  CHECK(requests(*f, 0) == 1);  // the primary again
  // A server that is gone cannot come back.
  servers.kill(2);
  REQUIRE(f->reconfigure(servers.specs({0, 1, 2}), false).ok());
  CHECK_FALSE(f->stats().servers[2].healthy);
  CHECK(f->mark_up(servers.uri(2)).code() == Code::kUnavailable);
}

TEST_CASE("a paused server: connecting gives up after the timeout; known down, it is not tried") {
  Servers servers;
  servers.signal(0, SIGSTOP);  // the kernel still accepts its connections; nobody answers
  Log log;
  ForwardOptions o;
  o.name = "pack/a";
  o.servers = servers.specs({0, 1});
  o.log = log.sink();
  o.connect_timeout = 500ms;
  auto t0 = Clock::now();
  auto f = must(Forwarder::open(std::move(o)));
  CHECK(Clock::now() - t0 < 5s);
  INFO(log.text());
  CHECK_FALSE(f->stats().servers[0].healthy);
  CHECK_THAT(f->stats().servers[0].down_reason, Catch::Contains("no answer within 500 ms"));

  // Known down (its lease expired): listed down with the reason, at once, without a connect.
  o = ForwardOptions();
  o.name = "pack/a";
  o.servers = servers.specs({0, 1});
  o.servers[0].down = "node n2 has left the cluster";
  o.log = log.sink();
  t0 = Clock::now();
  auto g = must(Forwarder::open(std::move(o)));
  CHECK(Clock::now() - t0 < 400ms);
  CHECK(g->stats().servers[0].down_reason == "node n2 has left the cluster");
  std::vector<char> buf(4096, 'k');
  REQUIRE(g->pwrite(buf.data(), 4096, 0, true).ok());
  CHECK(requests(*g, 1) == 1);
  servers.signal(0, SIGCONT);
  // Back (its node came back): mark_up connects it.
  REQUIRE(g->mark_up(servers.uri(0)).ok());
  CHECK(g->stats().servers[0].healthy);
}

TEST_CASE("a reconfiguration to no reachable server is refused and the old list kept") {
  Servers servers;
  Log log;
  auto f = open_forwarder(servers.specs({0, 1}), false, log);
  servers.kill(2);
  auto r = f->reconfigure(servers.specs({2}), false);
  REQUIRE_FALSE(r.ok());
  INFO(r.status().message());
  CHECK(r.status().message().find("no server of the new list is reachable") != std::string::npos);
  CHECK(r.status().message().find(servers.uri(2)) != std::string::npos);
  CHECK(f->stats().servers.size() == 2);
  std::vector<char> buf(4096);
  CHECK(f->pread(buf.data(), 4096, 0).ok());
  CHECK_FALSE(f->reconfigure({}, false).ok());
}

TEST_CASE("a reconfiguration away from a hung primary replays its unflushed writes") {
  Servers servers;
  Log log;
  auto f = open_forwarder(servers.specs({0, 1}), false, log, 500ms);
  std::vector<char> buf(64 * 1024, 'h'), back(buf.size());
  REQUIRE(f->pwrite(buf.data(), buf.size(), 3 * kMiB, false).ok());
  CHECK(f->stats().replay_bytes == buf.size());
  servers.signal(0, SIGSTOP);
  auto paused = f->reconfigure(servers.specs({1}), false);
  servers.kill(0);  // fenced
  INFO(log.text());
  REQUIRE(paused.ok());
  // The flush on the hung server was given up after the drain timeout, then the writes replayed.
  CHECK(*paused >= 500ms);
  CHECK(*paused < 5s);
  const auto st = f->stats();
  REQUIRE(st.servers.size() == 1);
  CHECK(st.servers[0].replayed > 0);
  REQUIRE(f->flush().ok());
  CHECK(f->stats().replay_bytes == 0);
  REQUIRE(f->pread(back.data(), back.size(), 3 * kMiB).ok());
  CHECK(back == buf);
}

TEST_CASE("every server down: a clear error naming each server") {
  Servers servers;
  Log log;
  auto f = open_forwarder(servers.specs({0, 1}), false, log);
  std::vector<char> buf(4096, 'q');
  REQUIRE(f->pwrite(buf.data(), 4096, 0, false).ok());
  CHECK(f->least_outstanding() == uint64_t{0});  // both healthy, nothing under way
  servers.kill(0);
  REQUIRE(f->mark_down(servers.uri(1), "lease lost").ok());
  IoStatus s = f->pwrite(buf.data(), 4096, 0, false);
  CHECK_FALSE(f->least_outstanding());  // no healthy server: no load to weigh
  CHECK(s.err() == EIO);
  const std::string& m = s.status().message();
  INFO(m);
  CHECK(m.find("every server failed") != std::string::npos);
  CHECK(m.find(servers.uri(0) + ": connection lost") != std::string::npos);
  CHECK(m.find(servers.uri(1) + ": marked down: lease lost") != std::string::npos);
  // The acknowledged write was never flushed and cannot be replayed: the flush says so.
  IoStatus fl = f->flush();
  CHECK(fl.err() == EIO);
  CHECK(fl.status().message().find("may be lost") != std::string::npos);
  CHECK(f->mark_down("nbd://nowhere/pack/a", "x").code() == Code::kNotFound);
}

TEST_CASE("a flush asks only the servers holding unflushed writes, and none when nobody does") {
  Servers servers;
  Log log;
  auto f = open_forwarder(servers.specs({0, 1, 2}), /*pool=*/true, log);
  auto sent = [&] {
    std::vector<uint64_t> n;
    for (const auto& s : f->stats().servers) n.push_back(s.requests);
    return n;
  };
  std::vector<char> buf(4096, 'f');
  // One at a time, a pool takes turns (the fewest sent so far): one write to each of 0 and 1.
  REQUIRE(f->pwrite(buf.data(), 4096, 0, false).ok());
  REQUIRE(f->pwrite(buf.data(), 4096, 4096, false).ok());
  REQUIRE(sent() == std::vector<uint64_t>{1, 1, 0});
  CHECK(f->unflushed());
  REQUIRE(f->flush().ok());
  CHECK(sent() == std::vector<uint64_t>{2, 2, 0});  // both holders, not server 2
  CHECK_FALSE(f->unflushed());
  REQUIRE(f->flush().ok());  // nothing written since: no server asked
  CHECK(sent() == std::vector<uint64_t>{2, 2, 0});
  CHECK(f->stats().flushes_answered == 1);
  // A FUA write is durable at once: nothing to flush after it either.
  REQUIRE(f->pwrite(buf.data(), 4096, 8192, true).ok());
  CHECK_FALSE(f->unflushed());
  const std::vector<uint64_t> fua = sent();
  REQUIRE(f->flush().ok());
  CHECK(sent() == fua);
  // The next write goes to server 2 (the FUA write went there too): the flush asks it alone.
  REQUIRE(f->pwrite(buf.data(), 4096, 12288, false).ok());
  REQUIRE(sent() == std::vector<uint64_t>{2, 2, 2});
  REQUIRE(f->flush().ok());
  CHECK(sent() == std::vector<uint64_t>{2, 2, 3});
}

TEST_CASE("writes acknowledged but not flushed by a server that dies are replayed on the next") {
  // The cache filter in writeback mode keeps writes in the server's memory until a flush, as a
  // host's page cache would: killing it loses them, unless the forwarder replays them.
  Servers servers({"--filter=cache"}, {"cache=writeback"});
  Log log;
  auto f = open_forwarder(servers.specs({0, 1}), false, log);
  std::vector<char> a(64 * 1024), b(4096);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<char>(i * 7 + 1);
  fill(b, 99, 1);
  REQUIRE(f->pwrite(a.data(), a.size(), 2 * kMiB, false).ok());
  REQUIRE(f->pwrite(b.data(), b.size(), 2 * kMiB + 8192, false).ok());  // newer, overlapping
  REQUIRE(f->zero(4096, 2 * kMiB + 4096, true, false, false).ok());
  CHECK(servers.disk(2 * kMiB, a.size()) != a);  // only in server 0's cache
  CHECK(f->stats().replay_bytes == a.size() - 4096);
  servers.kill(0);
  REQUIRE(f->flush().ok());
  INFO(log.text());
  std::vector<char> want = a;
  std::memcpy(want.data() + 8192, b.data(), b.size());
  std::memset(want.data() + 4096, 0, 4096);
  CHECK(servers.disk(2 * kMiB, a.size()) == want);
  CHECK(f->stats().servers[1].replayed > 0);
  CHECK(f->stats().replay_bytes == 0);
}

}  // namespace
}  // namespace vvm::test
