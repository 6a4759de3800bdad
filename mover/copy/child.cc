// copy/child.cc: the copy child (copy/child.h): one archive or stage, reported to its requester.
#include "copy/child.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <fmt/core.h>

#include "common/log.h"
#include "copy/copy.h"
#include "copy/job_pipe.h"
#include "copy/report.h"
#include "proto/messages.h"
#include "tape/library.h"

namespace vvm::mover {
namespace {

using Clock = std::chrono::steady_clock;

struct ChildArgs {
  std::string mover, drive, op, library, device;
  uint64_t job = 0;
  uint64_t block_size = tape::kDefaultBlockSize;
  uint64_t rate = 0;
  log::Target log_target = log::Target::kStderr;
  log::Level log_level = log::Level::kInfo;
  rpc::TlsClientSettings tls;  // how it proves itself to a tls: reply_to
};

Result<ChildArgs> parse_args(int argc, char** argv) {
  std::map<std::string, std::string> values;
  for (int i = 2; i < argc; i += 2) {  // argv[1] is --copy-job
    std::string key = argv[i];
    if (!key.starts_with("--") || i + 1 >= argc) {
      return Status::InvalidArgument(fmt::format("copy job: bad argument '{}'", key));
    }
    values[key.substr(2)] = argv[i + 1];
  }
  auto number = [&](const std::string& key, uint64_t* out) -> Status {
    auto it = values.find(key);
    if (it == values.end()) return Status::Ok();
    char* end = nullptr;
    errno = 0;
    *out = std::strtoull(it->second.c_str(), &end, 10);
    if (errno != 0 || end == it->second.c_str() || *end != '\0') {
      return Status::InvalidArgument(fmt::format("copy job: --{} '{}'", key, it->second));
    }
    return Status::Ok();
  };
  ChildArgs a;
  a.mover = values["mover"];
  a.drive = values["drive"];
  a.op = values["op"];
  a.library = values["library"];
  a.device = values["device"];
  a.tls = {values["tls-psk-file"], values["tls-username"], values["tls-certificates"]};
  VVM_RETURN_IF_ERROR(number("job", &a.job));
  VVM_RETURN_IF_ERROR(number("block-size", &a.block_size));
  VVM_RETURN_IF_ERROR(number("rate", &a.rate));
  if (values["log-target"] == "syslog") a.log_target = log::Target::kSyslog;
  if (auto level = log::parse_level(values["log-level"])) a.log_level = *level;
  if (a.mover.empty() || a.drive.empty() || a.job == 0 ||
      (a.op != "archive" && a.op != "stage" && a.op != "verify") ||
      a.library.empty() == a.device.empty() || a.block_size == 0) {
    return Status::InvalidArgument(
        "copy job: needs --mover, --job, --drive, --op archive|stage|verify and --library or "
        "--device "
        "(vvmover starts copy jobs itself)");
  }
  return a;
}

Result<rpc::CopyArgs> read_request(const std::string& op) {
  std::string bytes;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(kRequestFd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "copy job: reading the request from fd 3");
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(kRequestFd);
  auto request = rpc::decode_request(bytes);
  if (!request.ok()) return request.status();
  if (op == "archive") {
    if (auto* a = std::get_if<rpc::ArchiveRequest>(&request->body)) return a->copy;
  } else if (op == "verify") {
    if (auto* v = std::get_if<rpc::VerifyRequest>(&request->body)) return v->copy;
  } else if (auto* s = std::get_if<rpc::StageRequest>(&request->body)) {
    return s->copy;
  }
  return Status::InvalidArgument(fmt::format("copy job: fd 3 holds no {} request", op));
}

// Writes one event line to the parent. A parent that is gone is no reason to stop a copy whose
// requester still waits: the error is ignored (PR_SET_PDEATHSIG ends the child anyway).
void tell_parent(const JobEvent& event) {
  std::string line = encode_event(event);
  ssize_t n;
  do {
    n = ::write(kEventFd, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
}

tape::VvFields vv_fields(const rpc::TapeFile& file) {
  tape::VvFields vv;
  vv.vv_class = file.vv_class.empty() ? 'A' : file.vv_class[0];
  vv.vv_serial = file.serial;
  vv.id = file.client_id;
  vv.size = file.size;
  vv.time_finished = file.time_finished;
  return vv;
}

struct Outcome {
  uint64_t bytes = 0;
  uint64_t checksum = 0;
};

Result<Outcome> copy(const ChildArgs& a, const rpc::CopyArgs& args,
                     const tape::Progress& progress) {
  tape::TimeModel time;
  if (a.rate > 0) {  // the test knob (vvm.conf, [drive] emulated-rate): only streaming costs
    time.scale = 1;
    time.load_seconds = time.locate_seconds = time.rewind_seconds = time.unload_seconds = 0;
    time.bytes_per_second = static_cast<double>(a.rate);
  }
  std::string path = a.device.empty() ? a.library + "/" + args.vsn + ".tap" : a.device;
  const auto mount_began = Clock::now();
  auto tape = tape::open_tape(path, false, time);
  if (!tape.ok()) return tape.status();
  // The mount's time, for the mover's metrics (vvm_mover_mount_duration_seconds).
  tell_parent({JobEvent::Kind::kMounted,
               0,
               0,
               {},
               static_cast<uint64_t>(
                   std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - mount_began)
                       .count())});
  if (a.op == "archive") {
    tape::ArchiveRequest request;
    request.vsn = args.vsn;
    request.file_number = args.file_number;
    request.vv = vv_fields(args.file);
    request.block_size = a.block_size;
    auto done = tape::archive(**tape, request, args.cache_path, progress);
    if (!done.ok()) return done.status();
    if (done->rewritten) {
      log::notice(
          "VSN {} file {} already held this copy of VV {}{:010} (an earlier attempt whose "
          "report was lost): written again over it",
          args.vsn, args.file_number, args.file.vv_class, args.file.serial);
    }
    return Outcome{done->bytes, done->checksum};
  }
  tape::StageRequest request;
  request.vsn = args.vsn;
  request.file_number = args.file_number;
  request.vv = vv_fields(args.file);
  request.checksum = args.checksum;
  if (a.op == "verify") {
    auto done = tape::verify(**tape, request, progress);
    if (!done.ok()) return done.status();
    return Outcome{done->bytes, done->checksum};
  }
  std::string dir = std::filesystem::path(args.cache_path).parent_path().string();
  auto done = tape::stage(**tape, request, dir, args.cache_path, progress);
  if (!done.ok()) return done.status();
  return Outcome{done->bytes, done->checksum};
}

}  // namespace

// How long the child waits for the requester to take a report, and how long it sends no
// progress after one failed.
constexpr std::chrono::milliseconds kReportTimeout{1500};
constexpr std::chrono::seconds kProgressQuiet{10};

int run_copy_child(int argc, char** argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGPIPE, SIG_IGN);  // a requester that hangs up is an error return, not a death
  auto a = parse_args(argc, argv);
  if (!a.ok()) {
    fmt::print(stderr, "vvmover: {}\n", a.status().message());
    return kExitUsage;
  }
  log::init("vvmover", a->log_target, a->log_level);
  auto args = read_request(a->op);
  if (!args.ok()) {
    log::error("copy job {}: {}", a->job, args.status().message());
    tell_parent({JobEvent::Kind::kFailed, 0, 0, args.status()});
    return kExitUndelivered;  // no reply_to to send to: the parent reports what it can
  }

  rpc::CopyReport base;
  base.request_id = args->request_id;
  base.mover = a->mover;
  base.job = a->job;
  base.bytes_total = args->file.size;
  base.vsn = args->vsn;
  base.file_number = args->file_number;
  // The requester is told with short timeouts: one slow to answer (busy, stopped, or gone with
  // its socket left behind) must hold up neither the copy nor the heartbeat to the parent, which
  // would kill the copy as stalled, nor the drive once the copy is over. Progress is news: after
  // one report fails, none is sent for a while. The final report the parent sends again, from a
  // thread of its own and with the full timeout, when this one fails (kExitUndelivered).
  ReportSender sender(args->reply_to, a->tls, kReportTimeout);

  // Progress: the parent hears of every step (at most 5 a second), which is its heartbeat; the
  // requester at most once a second, and at the start.
  uint64_t bytes_done = 0;  // for the failed report: how far the copy got
  auto last_report = Clock::now();
  auto last_beat = Clock::time_point();
  auto quiet_until = Clock::time_point();
  auto report_progress = [&](uint64_t bytes, bool force) {
    bytes_done = bytes;
    auto now = Clock::now();
    if (force || now - last_beat >= std::chrono::milliseconds(200)) {
      tell_parent({JobEvent::Kind::kProgress, bytes, 0, {}});
      last_beat = now;
    }
    if ((force || now - last_report >= std::chrono::seconds(1)) && now >= quiet_until) {
      rpc::CopyReport r = base;
      r.bytes_done = bytes;
      if (Status s = sender.send(r); !s.ok()) {
        log::warning("copy job {}: progress report to {}: {}; no more for {} s", a->job,
                     args->reply_to, s.message(), kProgressQuiet.count());
        quiet_until = Clock::now() + kProgressQuiet;
      }
      last_report = now;
    }
  };
  report_progress(0, true);

  auto outcome = copy(*a, *args, [&](uint64_t bytes) { report_progress(bytes, false); });
  rpc::CopyReport last;
  if (outcome.ok()) {
    tell_parent({JobEvent::Kind::kDone, outcome->bytes, outcome->checksum, {}});
    last = done_report(base, outcome->bytes, outcome->checksum);
  } else {
    tell_parent({JobEvent::Kind::kFailed, 0, 0, outcome.status()});
    base.bytes_done = bytes_done;
    last = failed_report(base, outcome.status());
  }
  if (Status s = sender.send(last); !s.ok()) {
    log::warning("copy job {}: final report to {}: {}", a->job, args->reply_to, s.message());
    return kExitUndelivered;
  }
  return 0;
}

}  // namespace vvm::mover
