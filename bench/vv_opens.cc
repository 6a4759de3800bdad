// bench/vv_opens.cc: many VVs open through NBD at once, and what that costs vvmd and nbdkit.
// Against a running vvmd and nbdkit (with the vvm plugin, on a Unix socket) it opens COUNT NBD
// connections, each to a VV of its own, and reads one byte through each (the plugin registers
// the open with vvmd at a connection's first data command, on a control connection of the
// connection's own). It opens them in STEPS steps and after each prints, for every process it
// watches, the descriptors, resident memory and threads; vvmd's count of open VVs; and how long
// vvmd takes to answer a ping, a full listing of the VVs and a status (each on a new control
// connection, as vvctl makes one). Then it holds them, closes them all and prints the same once
// vvmd has counted them closed. The first open that fails stops the opening, and the last line
// says at what count and why.
//
//   bench_vv_opens (--vvmd ENDPOINT [--create CLASS] | --export NAME) (--socket NBD_SOCKET)...
//                  --count N [--steps K] [--threads T] [--samples S] [--hold SECONDS]
//                  [--watch NAME=PID[,PID]...]...
//
// --create CLASS makes COUNT VVs of 1 MiB first (T control connections in parallel); without it
// the first COUNT hot VVs are opened. --export NAME instead of --vvmd opens COUNT connections to
// that one export of any NBD server, with no vvmd (the reference: nbdkit's own plugins). With
// --socket given more than once, connection i goes to the (i mod K)th of the K sockets (several
// nbdkits, when one may not have the descriptors for COUNT); --watch NAME=PID,PID,... shows
// their sum as one process. Exit
// status 0 when all COUNT were open at once and vvmd counted each of them open, then none; 1
// otherwise. bench/vv-opens.sh and test/integration/vv-opens.sh run it.
#include <libnbd.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "bench_common.h"
#include "common/config.h"
#include "proto/client.h"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using vvm::bench::die;

namespace {

constexpr auto kCallTimeout = 60s;

struct Options {
  std::optional<vvm::Endpoint> vvmd;
  std::vector<std::string> sockets;
  size_t count = 0;
  std::string create_class;
  std::string export_name;  // without --vvmd: every connection to this export
  size_t steps = 10;
  size_t threads = 4;
  size_t samples = 10;
  double hold = 0;
  std::vector<std::pair<std::string, std::vector<pid_t>>> watch;
};

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Every VV the listing gives, page after page; with `state`, only those.
std::vector<std::string> list_names(vvm::rpc::Client& c, vvm::VvState state) {
  std::vector<std::string> names;
  vvm::rpc::VvListRequest req;
  req.state = state;
  for (int pages = 0; pages < 100000; ++pages) {
    auto r = c.call(req, kCallTimeout);
    if (!r.ok()) die("vv-list: " + r.status().message());
    for (const auto& v : r->vvs) names.push_back("vv/" + v.name);
    if (!r->more || r->vvs.empty()) break;
    req.after = r->vvs.back().name;
  }
  return names;
}

std::vector<std::string> create_vvs(const Options& o) {
  std::vector<std::string> names(o.count);
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (size_t t = 0; t < o.threads; ++t) {
    threads.emplace_back([&] {
      auto c = vvm::bench::connect_or_die(*o.vvmd);
      vvm::rpc::VvCreateRequest req;
      req.vv_class = o.create_class;
      req.size = 1 << 20;
      for (size_t i; (i = next++) < o.count;) {
        auto r = c.call(req, kCallTimeout);
        if (!r.ok()) die(fmt::format("create {} of {}: {}", i + 1, o.count, r.status().message()));
        names[i] = "vv/" + r->vv.name;
      }
    });
  }
  for (auto& t : threads) t.join();
  fmt::print("created {} VVs of class {} in {:.1f} s\n", o.count, o.create_class,
             ms_since(t0) / 1000);
  return names;
}

struct Probe {
  double ping_p50 = 0, ping_max = 0, ls_ms = 0, status_ms = 0;
  uint64_t opens = 0;
  size_t listed = 0;
};

// vvmd's answers, each on a new connection as vvctl makes one.
Probe probe(const Options& o) {
  Probe p;
  std::vector<double> pings;
  for (size_t i = 0; i < o.samples; ++i) {
    const auto t0 = Clock::now();
    auto c = vvm::bench::connect_or_die(*o.vvmd, kCallTimeout);
    auto r = c.call(vvm::rpc::PingRequest{"bench"}, kCallTimeout);
    if (!r.ok()) die("ping: " + r.status().message());
    pings.push_back(ms_since(t0));
  }
  std::sort(pings.begin(), pings.end());
  p.ping_p50 = vvm::bench::percentile(pings, 0.5);
  p.ping_max = pings.empty() ? 0 : pings.back();
  auto t0 = Clock::now();
  {
    auto c = vvm::bench::connect_or_die(*o.vvmd, kCallTimeout);
    p.listed = list_names(c, vvm::VvState::kAny).size();
  }
  p.ls_ms = ms_since(t0);
  t0 = Clock::now();
  auto c = vvm::bench::connect_or_die(*o.vvmd, kCallTimeout);
  auto st = c.call(vvm::rpc::StatusRequest{}, kCallTimeout);
  if (!st.ok()) die("status: " + st.status().message());
  p.status_ms = ms_since(t0);
  p.opens = st->opens;
  return p;
}

void header(const Options& o) {
  std::string h = fmt::format("{:>8} {:>9}", "open", "opens/s");
  for (const auto& [name, pid] : o.watch) {
    h += fmt::format(" {:>10} {:>10} {:>10}", name + "-fds", name + "-MiB", name + "-thr");
  }
  if (o.vvmd) {
    h += fmt::format(" {:>10} {:>9} {:>9} {:>9} {:>10}", "vvmd-opens", "ping-p50", "ping-max",
                     "ls-ms", "status-ms");
  }
  fmt::print("{}\n", h);
}

void row(const Options& o, const std::string& label, double rate) {
  std::string r = fmt::format("{:>8} {:>9.0f}", label, rate);
  for (const auto& [name, pid] : o.watch) {
    vvm::bench::ProcUse use;
    for (pid_t one : pid) {
      const auto u = vvm::bench::proc_use(one);
      use.fds += u.fds;
      use.rss_kib += u.rss_kib;
      use.threads += u.threads;
    }
    r += fmt::format(" {:>10} {:>10.1f} {:>10}", use.fds, static_cast<double>(use.rss_kib) / 1024,
                     use.threads);
  }
  if (o.vvmd) {
    const Probe p = probe(o);
    r += fmt::format(" {:>10} {:>9.2f} {:>9.2f} {:>9.1f} {:>10.2f}", p.opens, p.ping_p50,
                     p.ping_max, p.ls_ms, p.status_ms);
  }
  fmt::print("{}\n", r);
  std::fflush(stdout);
}

// vvmd's count of open VVs; without vvmd, what the caller says it should be.
uint64_t vvmd_opens(const Options& o, uint64_t otherwise) {
  if (!o.vvmd) return otherwise;
  auto c = vvm::bench::connect_or_die(*o.vvmd, kCallTimeout);
  auto st = c.call(vvm::rpc::StatusRequest{}, kCallTimeout);
  if (!st.ok()) die("status: " + st.status().message());
  return st->opens;
}

// One NBD connection to vv/NAME that has read a byte: the VV is open in vvmd's eyes.
struct Opener {
  std::mutex mu;
  std::string failure;  // the first failure, "" while none
  size_t failed_at = 0;
  std::atomic<bool> stop{false};

  nbd_handle* open(const Options& o, const std::string& name, size_t index) {
    nbd_handle* h = nbd_create();
    const char* step = "nbd_create";
    if (h != nullptr) {
      char byte;
      if (nbd_set_export_name(h, name.c_str()) == -1) {
        step = "set_export_name";
      } else if (nbd_connect_unix(h, o.sockets[index % o.sockets.size()].c_str()) == -1) {
        step = "connect";
      } else if (nbd_pread(h, &byte, 1, 0, 0) == -1) {
        step = "read";
      } else {
        return h;
      }
    }
    const std::lock_guard lock(mu);
    if (failure.empty()) {
      failure = fmt::format("{} of {} (connection {}): {} (errno {})", step, name, index + 1,
                            nbd_get_error() ? nbd_get_error() : "no message", nbd_get_errno());
      failed_at = index;
    }
    stop = true;
    if (h != nullptr) nbd_close(h);
    return nullptr;
  }
};

Options parse(int argc, char** argv) {
  Options o;
  auto usage = [] {
    std::fprintf(stderr,
                 "usage: bench_vv_opens (--vvmd ENDPOINT [--create CLASS] | --export NAME) "
                 "(--socket NBD_SOCKET)... --count N [--steps K] [--threads T] [--samples S] "
                 "[--hold SECONDS] [--watch NAME=PID[,PID]...]...\n");
    std::exit(2);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage();
    const std::string v = argv[++i];
    if (a == "--vvmd") {
      auto e = vvm::Endpoint::parse(v);
      if (!e.ok()) die("--vvmd: " + e.status().message());
      o.vvmd = *e;
    } else if (a == "--socket") {
      o.sockets.push_back(v);
    } else if (a == "--count") {
      o.count = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--export") {
      o.export_name = v;
    } else if (a == "--create") {
      o.create_class = v;
    } else if (a == "--steps") {
      o.steps = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--threads") {
      o.threads = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--samples") {
      o.samples = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--hold") {
      o.hold = std::atof(v.c_str());
    } else if (a == "--watch" && v.find('=') != std::string::npos) {
      std::vector<pid_t> pids;
      for (size_t at = v.find('=') + 1; at != 0; at = v.find(',', at) + 1) {
        pids.push_back(static_cast<pid_t>(std::atol(v.c_str() + at)));
      }
      o.watch.emplace_back(v.substr(0, v.find('=')), std::move(pids));
    } else {
      usage();
    }
  }
  if (o.vvmd.has_value() == !o.export_name.empty() || o.sockets.empty() || o.count == 0 ||
      o.count > 1'000'000 || o.steps == 0 || o.threads == 0 || o.threads > 256 || o.samples == 0 ||
      o.hold < 0 || o.hold > 3600) {
    usage();
  }
  o.steps = std::min(o.steps, o.count);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  // One descriptor a connection: as many as the hard limit allows.
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < o.count + 64) {
    die(fmt::format("{} connections need more descriptors than this process may have ({})", o.count,
                    limit.rlim_cur));
  }

  std::vector<std::string> names;
  if (!o.vvmd) {
    names.assign(o.count, o.export_name);
  } else if (!o.create_class.empty()) {
    names = create_vvs(o);
  } else {
    auto c = vvm::bench::connect_or_die(*o.vvmd);
    names = list_names(c, vvm::VvState::kHot);
    if (names.size() < o.count) {
      die(fmt::format("{} VVs to open, vvmd has {} hot ones", o.count, names.size()));
    }
    names.resize(o.count);
  }

  header(o);
  row(o, "0", 0);
  std::vector<nbd_handle*> handles(o.count, nullptr);
  Opener opener;
  size_t opened = 0;
  const auto all0 = Clock::now();
  for (size_t step = 1; step <= o.steps && !opener.stop; ++step) {
    const size_t target = o.count * step / o.steps;
    std::atomic<size_t> next{opened};
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (size_t t = 0; t < o.threads; ++t) {
      threads.emplace_back([&] {
        for (size_t i; !opener.stop && (i = next++) < target;)
          handles[i] = opener.open(o, names[i], i);
      });
    }
    for (auto& t : threads) t.join();
    size_t now_open = 0;
    for (auto* h : handles) now_open += h != nullptr;
    const double rate = static_cast<double>(now_open - opened) / (ms_since(t0) / 1000);
    opened = now_open;
    row(o, std::to_string(opened), rate);
  }
  const double open_s = ms_since(all0) / 1000;
  const uint64_t counted = vvmd_opens(o, opened);
  if (o.hold > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.hold));
    row(o, "held", 0);
  }

  const auto c0 = Clock::now();
  for (auto*& h : handles) {
    if (h == nullptr) continue;
    nbd_shutdown(h, 0);
    nbd_close(h);
    h = nullptr;
  }
  const double close_s = ms_since(c0) / 1000;
  // vvmd counts an open closed once nbdkit has seen its client go and sent VV_CLOSE.
  uint64_t left = vvmd_opens(o, 0);
  for (int i = 0; i < 600 && left != 0; ++i) {
    std::this_thread::sleep_for(100ms);
    left = vvmd_opens(o, 0);
  }
  std::this_thread::sleep_for(1s);  // nbdkit's connection threads end after their .close
  row(o, "closed", static_cast<double>(opened) / close_s);

  fmt::print(
      "opened {} of {} in {:.1f} s; vvmd counted {} open; closed in {:.1f} s, {} left open "
      "in vvmd\n",
      opened, o.count, open_s, counted, close_s, left);
  if (!opener.failure.empty()) {
    fmt::print("stopped at {} of {}: {}\n", opener.failed_at, o.count, opener.failure);
  }
  return opened == o.count && counted == o.count && left == 0 ? 0 : 1;
}
