// mover_test.cc: a real vvmover archiving and staging on an emulated library, its copies reported
// to a test-side control-protocol server.
//
// The site: a library of two LTO9 tapes (and a small third one that fills up) and an LTO8 one,
// mover m1 with two emulated LTO9 drives slowed to 50 MB/s (emulated-rate) so that copies can be
// caught running and an LTO8 drive (128 KiB blocks, for tape copies across media types), and,
// for the stall test, mover m2 with a 1 s stall timeout and a drive too slow to finish a block in
// that time. The test's rpc::Server on a Unix socket is every request's reply_to and keeps every
// COPY_REPORT it gets.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <catch2/catch.hpp>

#include "copy/copy.h"
#include "process.h"
#include "proto/client.h"
#include "proto/server.h"
#include "tape/library.h"

namespace vvm::test {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_random(const std::string& path, uint64_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string data(size, '\0');
  for (uint64_t i = 0; i < size; i += 8) {
    uint64_t v = rng();
    std::memcpy(data.data() + i, &v, std::min<uint64_t>(8, size - i));
  }
  must(write_file(path, data));
}

// The reply_to side: keeps every COPY_REPORT, in order.
class Collector {
 public:
  explicit Collector(const std::string& socket) : server_("test", AccessPolicy{}) {
    endpoint_ = "unix:" + socket;
    server_.handle<rpc::CopyReport>([this](const rpc::CopyReport& report, const rpc::Peer&) {
      std::lock_guard lock(mu_);
      reports_.push_back(report);
      cv_.notify_all();
      return Result<rpc::CopyReportAck>(rpc::CopyReportAck{});
    });
    must(server_.listen(must(Endpoint::parse(endpoint_))));
    thread_ = std::thread([this] { (void)server_.run(); });
  }
  ~Collector() {
    server_.stop();
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }

  // Every report of `request_id` so far.
  std::vector<rpc::CopyReport> of(uint64_t request_id) {
    std::lock_guard lock(mu_);
    std::vector<rpc::CopyReport> out;
    for (const auto& r : reports_) {
      if (r.request_id == request_id) out.push_back(r);
    }
    return out;
  }
  // Waits for the final (done or failed) report of `request_id`.
  rpc::CopyReport final_of(uint64_t request_id, std::chrono::seconds timeout = 60s) {
    std::unique_lock lock(mu_);
    const rpc::CopyReport* found = nullptr;
    bool ok = cv_.wait_for(lock, timeout, [&] {
      for (const auto& r : reports_) {
        if (r.request_id == request_id && r.state != rpc::CopyState::kRunning) {
          found = &r;
          return true;
        }
      }
      return false;
    });
    if (!ok) throw std::runtime_error(fmt::format("no final report for request {}", request_id));
    return *found;
  }
  size_t finals(uint64_t request_id) {
    size_t n = 0;
    for (const auto& r : of(request_id)) n += r.state != rpc::CopyState::kRunning;
    return n;
  }

 private:
  rpc::Server server_;
  std::string endpoint_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<rpc::CopyReport> reports_;
};

// A temporary site: library, cache, vvm.conf, and mover m1 running.
struct Site {
  TempDir dir = must(TempDir::create("vvm-mover"));
  std::string library = dir.file("library");
  std::string cache = dir.file("cache");
  std::string conf = dir.file("vvm.conf");
  std::unique_ptr<Collector> collector;
  std::optional<Process> mover;
  uint64_t next_request = 1;

  Site() {
    std::filesystem::create_directories(library);
    std::filesystem::create_directories(cache);
    auto lib = must(tape::TapeLibrary::open(library, {}));
    must(lib->create("T00001", "LTO9", 0));
    must(lib->create("T00002", "LTO9", 0));
    must(lib->create("FULL01", "LTO9", 2 * kMiB));  // fills up after about 2 MiB
    must(lib->create("U00001", "LTO8", 0));
    must(write_file(conf, fmt::format(R"([global]
state-dir = {0}/state
log-level = debug
[library]
path = {0}/library
[cache]
dir = {0}/cache
[media LTO9]
capacity = 18T
[media LTO8]
capacity = 12T
block-size = 128K
[mover m1]
listen = unix:{0}/m1.sock
stall-timeout = 30s
[drive d0]
mover = m1
media = LTO9
emulated-rate = 50M
[drive d1]
mover = m1
media = LTO9
emulated-rate = 50M
[drive d2]
mover = m1
media = LTO8
emulated-rate = 50M
[mover m2]
listen = unix:{0}/m2.sock
stall-timeout = 1s
[drive slow]
mover = m2
media = LTO9
emulated-rate = 1K
)",
                                      dir.path())));
    collector = std::make_unique<Collector>(dir.file("reports.sock"));
    start("m1");
  }
  ~Site() {
    if (mover) (void)mover->stop();
  }

  void start(const std::string& name) {
    std::string exe = must(build_dir()) + "/mover/vvmover";
    mover.emplace(must(Process::start({exe, "--conf", conf, "--name", name}, dir.path())));
    std::string socket = dir.file(name + ".sock");
    if (!wait_for_path(socket, 10s).ok()) {
      FAIL("vvmover did not start: " << mover->stderr_text());
    }
    socket_ = socket;
  }

  rpc::CopyArgs args(const std::string& vsn, uint64_t file_number, const std::string& path,
                     uint64_t size, uint64_t serial) {
    rpc::CopyArgs a;
    a.vsn = vsn;
    a.file_number = file_number;
    a.cache_path = path;
    a.file = {"A", serial, 7, size, 1700000000};
    a.reply_to = collector->endpoint();
    a.request_id = next_request++;
    return a;
  }

  // The mover's answer, as it is.
  Result<rpc::CopyAccepted> call(rpc::Op op, const rpc::CopyArgs& a) {
    auto client = rpc::Client::connect(must(Endpoint::parse("unix:" + socket_)), 5s);
    if (!client.ok()) return client.status();
    if (op == rpc::Op::kArchive) return client->call(rpc::ArchiveRequest{a}, 5s);
    return client->call(rpc::StageRequest{a}, 5s);
  }
  Result<rpc::CopyAccepted> tape_copy(const rpc::TapeCopyRequest& request) {
    auto client = rpc::Client::connect(must(Endpoint::parse("unix:" + socket_)), 5s);
    if (!client.ok()) return client.status();
    return client->call(request, 5s);
  }
  // Accepted, waiting while the drive or tape is still taken by a copy that has just reported
  // (its child is reaped a moment after its final report).
  rpc::CopyAccepted submit(rpc::Op op, const rpc::CopyArgs& a) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      auto reply = call(op, a);
      if (reply.ok()) return *reply;
      if (reply.status().code() != Code::kBusy || std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error(reply.status().to_string());
      }
      std::this_thread::sleep_for(20ms);
    }
  }
  rpc::CopyReport run(rpc::Op op, const rpc::CopyArgs& a) {
    submit(op, a);
    return collector->final_of(a.request_id);
  }

  std::string socket_;
};

// The mover's children (the copy processes), from /proc/PID/task/*/children.
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    std::istringstream in(read_all(task.path().string() + "/children"));
    for (pid_t child; in >> child;) out.push_back(child);
  }
  return out;
}

// The one copy child of the site's mover, once it has started.
pid_t the_copy_child(Site& site) {
  std::vector<pid_t> children;
  must(wait_until(
      [&] {
        children = children_of(site.mover->pid());
        return children.size() == 1;
      },
      5s, "the copy child"));
  return children[0];
}

std::vector<std::string> cache_files(const Site& site) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(site.cache)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST_CASE("archive then stage round trips, byte for byte, with equal checksums") {
  Site site;
  const std::vector<uint64_t> sizes = {0,         1, 256 * kKiB - 1, 256 * kKiB, 256 * kKiB + 1,
                                       100 * kMiB};
  uint64_t file_number = 1;
  for (uint64_t size : sizes) {
    INFO("size " << size);
    std::string in = site.cache + "/in." + std::to_string(size);
    std::string out = site.cache + "/out." + std::to_string(size);
    write_random(in, size, size + 1);

    auto a = site.args("T00001", file_number, in, size, 100 + file_number);
    a.drive = "d0";
    rpc::CopyReport archived = site.run(rpc::Op::kArchive, a);
    INFO(archived.failure.to_string());
    REQUIRE(archived.state == rpc::CopyState::kDone);
    CHECK(archived.vsn == "T00001");
    CHECK(archived.file_number == file_number);
    CHECK(archived.bytes_done == size);
    CHECK(archived.mover == "m1");
    std::string data = read_all(in);
    CHECK(archived.checksum == tape::checksum_of(data));
    // Progress came first, at the start.
    auto reports = site.collector->of(a.request_id);
    REQUIRE(reports.size() >= 2);
    CHECK(reports.front().state == rpc::CopyState::kRunning);
    CHECK(site.collector->finals(a.request_id) == 1);

    auto s = site.args("T00001", file_number, out, size, 100 + file_number);
    s.checksum = archived.checksum;  // any free drive this time
    rpc::CopyReport staged = site.run(rpc::Op::kStage, s);
    INFO(staged.failure.to_string());
    REQUIRE(staged.state == rpc::CopyState::kDone);
    CHECK(staged.checksum == archived.checksum);
    CHECK(staged.bytes_done == size);
    CHECK(read_all(out) == data);
    ++file_number;
  }
  // Nothing but the inputs and outputs: no temporary left behind.
  CHECK(cache_files(site).size() == 2 * sizes.size());
  CHECK(site.mover->stderr_text().find("job 1 archive started: drive d0, VSN T00001") !=
        std::string::npos);
  CHECK(site.mover->stderr_text().find("MB/s): done") != std::string::npos);
}

TEST_CASE("two drives copy at once; a third request while both are busy is refused with Busy") {
  Site site;
  std::string in1 = site.cache + "/in1", in2 = site.cache + "/in2", in3 = site.cache + "/in3";
  write_random(in1, 100 * kMiB, 1);
  write_random(in2, 100 * kMiB, 2);
  write_random(in3, 1 * kMiB, 3);
  auto a1 = site.args("T00001", 1, in1, 100 * kMiB, 1);
  auto a2 = site.args("T00002", 1, in2, 100 * kMiB, 2);
  auto first = site.submit(rpc::Op::kArchive, a1);
  auto second = site.submit(rpc::Op::kArchive, a2);
  CHECK(first.drive != second.drive);  // "" picked a free drive each time
  CHECK(first.job != second.job);

  auto a3 = site.args("FULL01", 1, in3, 1 * kMiB, 3);
  auto third = site.call(rpc::Op::kArchive, a3);
  REQUIRE_FALSE(third.ok());
  CHECK(third.status().code() == Code::kBusy);
  CHECK(third.status().message().find("busy") != std::string::npos);
  // A tape in use is refused too: one tape is never in two drives.
  auto again = site.call(rpc::Op::kArchive, site.args("T00001", 2, in3, 1 * kMiB, 4));
  CHECK(again.status().code() == Code::kBusy);

  auto r1 = site.collector->final_of(a1.request_id);
  auto r2 = site.collector->final_of(a2.request_id);
  CHECK(r1.state == rpc::CopyState::kDone);
  CHECK(r2.state == rpc::CopyState::kDone);
  CHECK(r1.checksum == tape::checksum_of(read_all(in1)));
  CHECK(r2.checksum == tape::checksum_of(read_all(in2)));
}

TEST_CASE("requests the mover cannot take are refused at once, saying why") {
  Site site;
  std::string in = site.cache + "/in";
  write_random(in, 1000, 9);
  auto expect = [&](rpc::Op op, rpc::CopyArgs a, Code code, const std::string& words) {
    auto reply = site.call(op, a);
    REQUIRE_FALSE(reply.ok());
    CHECK(reply.status().code() == code);
    CHECK_THAT(reply.status().message(), Catch::Contains(words));
  };
  auto a = site.args("T00001", 1, in, 1000, 1);
  a.drive = "d9";
  expect(rpc::Op::kArchive, a, Code::kNotFound, "no drive 'd9'");
  a.drive = "slow";
  expect(rpc::Op::kArchive, a, Code::kInvalidArgument, "belongs to mover m2");
  a = site.args("NOSUCH", 1, in, 1000, 1);
  expect(rpc::Op::kArchive, a, Code::kNotFound, "no tape NOSUCH");
  a = site.args("T00001", 1, "relative/in", 1000, 1);
  expect(rpc::Op::kArchive, a, Code::kInvalidArgument, "not absolute");
  a = site.args("T00001", 1, in, 1000, 1);  // stage onto a file that exists
  expect(rpc::Op::kStage, a, Code::kAlreadyExists, "exists already");
}

// The length of the first data record of file 1 of a SIMH image: after the VOL label (4 + 80 + 4
// bytes), its tape mark (4) and file 1's HDR label (4 + 80 + 4).
uint32_t first_block(const std::string& image) {
  const std::string data = read_all(image);
  REQUIRE(data.size() >= 184);
  uint32_t n = 0;
  std::memcpy(&n, data.data() + 180, 4);  // little-endian, as this machine
  return n;
}

TEST_CASE(
    "a tape copy reads one media type in one drive and writes another in a second, in the "
    "destination's blocks; drives of the wrong type are refused") {
  Site site;
  const uint64_t size = 3 * kMiB + 5;
  std::string in = site.cache + "/in", out = site.cache + "/out";
  write_random(in, size, 77);
  auto a = site.args("T00001", 1, in, size, 42);
  a.drive = "d0";
  rpc::CopyReport archived = site.run(rpc::Op::kArchive, a);
  INFO(archived.failure.to_string());
  REQUIRE(archived.state == rpc::CopyState::kDone);

  rpc::TapeCopyRequest t;
  t.to = site.args("U00001", 1, "", size, 42);
  t.to.checksum = archived.checksum;
  t.from_vsn = "T00001";
  t.from_file = 1;
  t.from_drive = "d2";  // LTO8: cannot read the LTO9 tape
  auto refused = site.tape_copy(t);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kInvalidArgument);
  CHECK_THAT(refused.status().message(),
             Catch::Contains("drive d2 takes LTO8, and T00001 is LTO9"));
  t.from_drive = "d0";
  t.to.drive = "d1";  // LTO9: cannot write the LTO8 tape
  refused = site.tape_copy(t);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(),
             Catch::Contains("drive d1 takes LTO9, and U00001 is LTO8"));

  t.to.drive = "";  // the mover picks d2, the one LTO8 drive
  auto deadline = std::chrono::steady_clock::now() + 10s;
  Result<rpc::CopyAccepted> accepted = site.tape_copy(t);
  while (!accepted.ok() && accepted.status().code() == Code::kBusy &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);  // the archive's child is reaped a moment after its report
    accepted = site.tape_copy(t);
  }
  INFO(accepted.status().to_string());
  REQUIRE(accepted.ok());
  CHECK(accepted->drive == "d2");
  rpc::CopyReport copied = site.collector->final_of(t.to.request_id);
  INFO(copied.failure.to_string());
  REQUIRE(copied.state == rpc::CopyState::kDone);
  CHECK(copied.vsn == "U00001");
  CHECK(copied.file_number == 1);
  CHECK(copied.bytes_done == size);
  CHECK(copied.checksum == archived.checksum);
  CHECK(first_block(site.library + "/T00001.tap") == 256 * kKiB);
  CHECK(first_block(site.library + "/U00001.tap") == 128 * kKiB);
  CHECK_THAT(site.mover->stderr_text(),
             Catch::Contains("tape copy started: VSN T00001 file 1 in drive d0 to VSN U00001 file "
                             "1 in drive d2"));

  // The new copy reads back, the bytes archived.
  auto s = site.args("U00001", 1, out, size, 42);
  s.checksum = archived.checksum;
  rpc::CopyReport staged = site.run(rpc::Op::kStage, s);
  INFO(staged.failure.to_string());
  REQUIRE(staged.state == rpc::CopyState::kDone);
  CHECK(read_all(out) == read_all(in));
}

TEST_CASE("a copy child killed mid-stage gives one FAILED report and leaves no file") {
  Site site;
  std::string in = site.cache + "/in", out = site.cache + "/out";
  write_random(in, 100 * kMiB, 5);
  auto a = site.args("T00001", 1, in, 100 * kMiB, 1);
  auto archived = site.run(rpc::Op::kArchive, a);
  REQUIRE(archived.state == rpc::CopyState::kDone);

  auto s = site.args("T00001", 1, out, 100 * kMiB, 1);
  s.checksum = archived.checksum;
  s.drive = "d1";
  site.submit(rpc::Op::kStage, s);
  // The stage takes 2 s at 50 MB/s: let it write part of the file, then kill it.
  const pid_t child = the_copy_child(site);
  // Until the stage writes its temporary file (a loaded machine starts the child late), then a
  // little more for a heartbeat with the bytes so far.
  bool temporary = false;
  for (int i = 0; i < 100 && !temporary; ++i) {
    std::this_thread::sleep_for(100ms);
    for (const auto& name : cache_files(site)) temporary |= name.starts_with(".stage.out.");
  }
  CHECK(temporary);  // the kill below does hit a stage under way
  std::this_thread::sleep_for(400ms);
  REQUIRE(::kill(child, SIGKILL) == 0);

  auto failed = site.collector->final_of(s.request_id);
  CHECK(failed.state == rpc::CopyState::kFailed);
  CHECK(failed.failure.code() == Code::kIoError);
  CHECK_THAT(failed.failure.message(), Catch::Contains("copy process died: signal 9"));
  CHECK(failed.bytes_done > 0);  // how far it got, from the child's heartbeat
  CHECK(failed.bytes_done < 100 * kMiB);
  std::this_thread::sleep_for(300ms);  // a second final report would come now
  CHECK(site.collector->finals(s.request_id) == 1);
  CHECK(cache_files(site) == std::vector<std::string>{"in"});

  // The drive takes the next request, and the stage works this time.
  auto again = site.args("T00001", 1, out, 100 * kMiB, 1);
  again.checksum = archived.checksum;
  again.drive = "d1";
  auto staged = site.run(rpc::Op::kStage, again);
  CHECK(staged.state == rpc::CopyState::kDone);
  CHECK(read_all(out) == read_all(in));
}

TEST_CASE("a copy child killed mid-archive: the partial file does not count and is overwritten") {
  Site site;
  std::string first = site.cache + "/first", big = site.cache + "/big";
  write_random(first, 3 * kMiB, 11);
  write_random(big, 100 * kMiB, 12);
  auto one = site.run(rpc::Op::kArchive, site.args("T00001", 1, first, 3 * kMiB, 1));
  REQUIRE(one.state == rpc::CopyState::kDone);

  auto a = site.args("T00001", 2, big, 100 * kMiB, 2);
  a.drive = "d0";
  site.submit(rpc::Op::kArchive, a);
  const pid_t child = the_copy_child(site);
  // At 50 MB/s the archive takes 2 s: kill it once part of the file is on the tape.
  must(wait_until(
      [&] {
        auto reports = site.collector->of(a.request_id);
        return !reports.empty() && reports.back().bytes_done > 10 * kMiB;
      },
      10s, "progress past 10 MiB"));
  REQUIRE(::kill(child, SIGKILL) == 0);
  auto failed = site.collector->final_of(a.request_id);
  CHECK(failed.state == rpc::CopyState::kFailed);
  CHECK_THAT(failed.failure.message(), Catch::Contains("copy process died: signal 9"));

  // The tape still ends after file 1: an archive that expects file 3 is refused, naming both.
  std::string small = site.cache + "/small";
  write_random(small, 1 * kMiB, 13);
  auto wrong = site.run(rpc::Op::kArchive, site.args("T00001", 3, small, 1 * kMiB, 3));
  CHECK(wrong.state == rpc::CopyState::kFailed);
  CHECK(wrong.failure.code() == Code::kMismatch);
  // File 2 is written again, over the partial one, and both files stage back whole.
  auto two = site.run(rpc::Op::kArchive, site.args("T00001", 2, small, 1 * kMiB, 3));
  REQUIRE(two.state == rpc::CopyState::kDone);
  CHECK(two.file_number == 2);
  for (auto [n, path, done] : {std::tuple{1, first, one}, std::tuple{2, small, two}}) {
    std::string out = site.cache + "/out" + std::to_string(n);
    auto s = site.args("T00001", n, out, done.bytes_done, n == 1 ? 1 : 3);
    s.checksum = done.checksum;
    auto staged = site.run(rpc::Op::kStage, s);
    INFO("file " << n << ": " << staged.failure.message());
    REQUIRE(staged.state == rpc::CopyState::kDone);
    CHECK(read_all(out) == read_all(path));
  }
}

TEST_CASE("a copy that makes no progress is killed at the stall timeout and reported") {
  Site site;
  (void)site.mover->stop();
  site.start("m2");  // stall-timeout 1s; its drive streams 1 KB a second
  std::string in = site.cache + "/in";
  write_random(in, 1 * kMiB, 6);
  auto a = site.args("T00002", 1, in, 1 * kMiB, 1);
  auto accepted = site.submit(rpc::Op::kArchive, a);
  CHECK(accepted.drive == "slow");
  auto failed = site.collector->final_of(a.request_id, 20s);
  CHECK(failed.state == rpc::CopyState::kFailed);
  CHECK(failed.failure.code() == Code::kTimeout);
  CHECK_THAT(failed.failure.message(),
             Catch::Contains(
                 fmt::format("job {} on drive slow (VSN T00002) made no progress", accepted.job)));
  CHECK(site.collector->finals(a.request_id) == 1);
  // The drive is free again.
  must(wait_until([&] { return children_of(site.mover->pid()).empty(); }, 5s, "the reap"));
  auto next = site.call(rpc::Op::kArchive, site.args("T00002", 1, in, 1 * kMiB, 2));
  CHECK(next.ok());
}

TEST_CASE(
    "a reply_to that never answers holds up neither the mover, its other copies, nor the drive") {
  Site site;
  // A requester that takes connections (the listen queue does) and never answers, as a stopped
  // or hung vvmd: each report's call can only time out.
  const std::string hole = site.dir.file("hole.sock");
  auto listener = must(Process::start(
      {"/usr/bin/python3", "-c",
       "import socket, sys, time\n"
       "s = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(64)\ntime.sleep(120)\n",
       hole},
      site.dir.path()));
  must(wait_for_path(hole, 10s));
  std::string in1 = site.cache + "/in1", in2 = site.cache + "/in2";
  write_random(in1, 4 * kMiB, 21);
  write_random(in2, 4 * kMiB, 22);
  auto stuck = site.args("T00001", 1, in1, 4 * kMiB, 1);
  stuck.reply_to = "unix:" + hole;
  stuck.drive = "d0";
  const auto start = std::chrono::steady_clock::now();
  auto accepted = site.submit(rpc::Op::kArchive, stuck);
  // The other drive copies for a requester that answers, as if nothing were wrong.
  auto good = site.args("T00002", 1, in2, 4 * kMiB, 2);
  good.drive = "d1";
  CHECK(site.run(rpc::Op::kArchive, good).state == rpc::CopyState::kDone);
  // The mover answers at once.
  auto client = must(rpc::Client::connect(must(Endpoint::parse("unix:" + site.socket_)), 2s));
  CHECK(client.call(rpc::PingRequest{"still there?"}, 2s).ok());
  // The copy for the silent requester ends and frees its drive within seconds: its reports wait
  // 1.5 s each (before, 10 s for each try, progress and final, with the drive held meanwhile).
  must(wait_until([&] { return children_of(site.mover->pid()).empty(); }, 8s,
                  "the end of the copy whose requester does not answer"));
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK_THAT(site.mover->stderr_text(),
             Catch::Contains(fmt::format("job {} archive ended: drive d0", accepted.job)));
  // The mover's own final report to the silent requester (the copy's failed to arrive) is sent
  // from a thread of its own, 10 s a try: meanwhile its watch over the copies goes on, so the
  // next copy on that drive is reaped as soon as it ends, and the drive is free again.
  auto next = site.args("T00001", 2, in2, 4 * kMiB, 3);
  next.drive = "d0";
  REQUIRE(site.call(rpc::Op::kArchive, next).ok());
  CHECK(site.collector->final_of(next.request_id, 10s).state == rpc::CopyState::kDone);
  must(wait_until([&] { return children_of(site.mover->pid()).empty(); }, 5s,
                  "the reap of the next copy while the mover's final report waits"));
  (void)listener.stop();
}

TEST_CASE("a wrong VSN for the file and a full VSN come back as Mismatch and NoSpace") {
  Site site;
  std::string in1 = site.cache + "/in1", in2 = site.cache + "/in2", out = site.cache + "/out";
  write_random(in1, 300 * kKiB, 7);
  write_random(in2, 3 * kMiB, 8);
  auto a1 = site.args("T00001", 1, in1, 300 * kKiB, 1);
  auto r1 = site.run(rpc::Op::kArchive, a1);
  REQUIRE(r1.state == rpc::CopyState::kDone);
  auto a2 = site.args("T00002", 1, in2, 3 * kMiB, 2);
  REQUIRE(site.run(rpc::Op::kArchive, a2).state == rpc::CopyState::kDone);

  // File 1 of T00002 is another VV: its HDR label says so.
  auto s = site.args("T00002", 1, out, 300 * kKiB, 1);
  s.checksum = r1.checksum;
  auto wrong = site.run(rpc::Op::kStage, s);
  CHECK(wrong.state == rpc::CopyState::kFailed);
  CHECK(wrong.failure.code() == Code::kMismatch);
  CHECK_THAT(wrong.failure.message(), Catch::Contains("T00002"));
  // An archive that expects another file number than the tape's next one.
  auto a3 = site.args("T00001", 5, in1, 300 * kKiB, 3);
  auto skipped = site.run(rpc::Op::kArchive, a3);
  CHECK(skipped.failure.code() == Code::kMismatch);

  // 3 MiB do not fit on a 2 MiB tape.
  auto full = site.run(rpc::Op::kArchive, site.args("FULL01", 1, in2, 3 * kMiB, 4));
  CHECK(full.state == rpc::CopyState::kFailed);
  CHECK(full.failure.code() == Code::kNoSpace);
  CHECK(full.bytes_done > 0);  // the child's own failed report says how far it got
  CHECK(full.bytes_done < 3 * kMiB);
  CHECK(cache_files(site) == std::vector<std::string>{"in1", "in2"});
}

TEST_CASE("SIGTERM stops the mover: running copies are killed and reported Unavailable") {
  Site site;
  std::string in = site.cache + "/in";
  write_random(in, 100 * kMiB, 10);
  auto a = site.args("T00001", 1, in, 100 * kMiB, 1);
  site.submit(rpc::Op::kArchive, a);
  must(wait_until([&] { return !site.collector->of(a.request_id).empty(); }, 5s, "progress"));
  auto status = site.mover->stop();
  CHECK(must(std::move(status)) == 0);
  auto failed = site.collector->final_of(a.request_id, 5s);
  CHECK(failed.failure.code() == Code::kUnavailable);
  CHECK_THAT(failed.failure.message(), Catch::Contains("mover m1 stopping"));
  CHECK_THAT(site.mover->stderr_text(), Catch::Contains("vvmover m1 stopped"));
  CHECK_THAT(site.mover->stderr_text(), Catch::Contains("job 1 archive ended: drive d0"));
}

}  // namespace
}  // namespace vvm::test
