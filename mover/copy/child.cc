// copy/child.cc: the copy child (copy/child.h): one archive, stage, verify or tape copy, reported
// to its requester.
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
  std::string from_drive, from_device;  // a tape copy's source
  uint64_t job = 0;
  uint64_t block_size = tape::kDefaultBlockSize;
  uint64_t rate = 0, from_rate = 0;
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
  a.from_drive = values["from-drive"];
  a.from_device = values["from-device"];
  VVM_RETURN_IF_ERROR(number("from-rate", &a.from_rate));
  a.tls = {values["tls-psk-file"], values["tls-username"], values["tls-certificates"]};
  VVM_RETURN_IF_ERROR(number("job", &a.job));
  VVM_RETURN_IF_ERROR(number("block-size", &a.block_size));
  VVM_RETURN_IF_ERROR(number("rate", &a.rate));
  if (values["log-target"] == "syslog") a.log_target = log::Target::kSyslog;
  if (auto level = log::parse_level(values["log-level"])) a.log_level = *level;
  if (a.mover.empty() || a.drive.empty() || a.job == 0 ||
      (a.op != "archive" && a.op != "stage" && a.op != "verify" && a.op != "tape-copy") ||
      a.library.empty() == a.device.empty() || a.block_size == 0 ||
      (a.op == "tape-copy") != !a.from_drive.empty() ||
      (a.op == "tape-copy" && a.library.empty() == a.from_device.empty())) {
    return Status::InvalidArgument(
        "copy job: needs --mover, --job, --drive, --op archive|stage|verify|tape-copy and "
        "--library or --device, and for a tape copy --from-drive and --library or "
        "--from-device (vvmover starts copy jobs itself)");
  }
  return a;
}

// The request as the child needs it: the copy (a tape copy's destination) and a tape copy's
// source.
struct JobRequest {
  rpc::CopyArgs copy;
  std::string from_vsn;
  uint64_t from_file = 0;
};

Result<JobRequest> read_request(const std::string& op) {
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
    if (auto* a = std::get_if<rpc::ArchiveRequest>(&request->body)) return JobRequest{a->copy};
  } else if (op == "verify") {
    if (auto* v = std::get_if<rpc::VerifyRequest>(&request->body)) return JobRequest{v->copy};
  } else if (op == "tape-copy") {
    if (auto* t = std::get_if<rpc::TapeCopyRequest>(&request->body)) {
      return JobRequest{t->to, t->from_vsn, t->from_file};
    }
  } else if (auto* s = std::get_if<rpc::StageRequest>(&request->body)) {
    return JobRequest{s->copy};
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

// The drive's time model: the test knob (vvm.conf, [drive] emulated-rate) charges only streaming.
tape::TimeModel time_model(uint64_t rate) {
  tape::TimeModel time;
  if (rate > 0) {
    time.scale = 1;
    time.load_seconds = time.locate_seconds = time.rewind_seconds = time.unload_seconds = 0;
    time.bytes_per_second = static_cast<double>(rate);
  }
  return time;
}

// A tape copy: both tapes mounted, then tape_copy(). `*blame` names the tape a failure is to
// blame, when one is.
Result<Outcome> copy_tape_to_tape(const ChildArgs& a, const JobRequest& job,
                                  const tape::Progress& progress, tape::VvFields vv,
                                  std::string* blame) {
  const rpc::CopyArgs& to = job.copy;
  auto path = [&](const std::string& device, const std::string& vsn) {
    return device.empty() ? a.library + "/" + vsn + ".tap" : device;
  };
  const auto mount_began = Clock::now();
  auto from = tape::open_tape(path(a.from_device, job.from_vsn), true, time_model(a.from_rate));
  if (!from.ok()) {
    *blame = job.from_vsn;
    return from.status();
  }
  auto dest = tape::open_tape(path(a.device, to.vsn), false, time_model(a.rate));
  if (!dest.ok()) {
    *blame = to.vsn;
    return dest.status();
  }
  tell_parent({JobEvent::Kind::kMounted,
               0,
               0,
               {},
               static_cast<uint64_t>(
                   std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - mount_began)
                       .count())});
  tape::TapeCopyRequest request;
  request.from_vsn = job.from_vsn;
  request.from_file = job.from_file;
  request.to_vsn = to.vsn;
  request.to_file = to.file_number;
  request.vv = vv;
  request.checksum = to.checksum;
  request.block_size = a.block_size;
  tape::CopySide side = tape::CopySide::kNone;
  auto done = tape::tape_copy(**from, **dest, request, progress, &side);
  if (!done.ok()) {
    if (side == tape::CopySide::kSource) *blame = job.from_vsn;
    if (side == tape::CopySide::kDestination) *blame = to.vsn;
    return done.status();
  }
  if (done->rewritten) {
    log::notice(
        "VSN {} file {} already held this copy of VV {}{:010} (an earlier attempt whose "
        "report was lost): written again over it",
        to.vsn, to.file_number, to.file.vv_class, to.file.serial);
  }
  return Outcome{done->bytes, done->checksum};
}

Result<Outcome> copy(const ChildArgs& a, const JobRequest& job, const tape::Progress& progress,
                     std::string* blame) {
  const rpc::CopyArgs& args = job.copy;
  if (a.op == "tape-copy") return copy_tape_to_tape(a, job, progress, vv_fields(args.file), blame);
  tape::TimeModel time = time_model(a.rate);
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
  tape::CopySide side = tape::CopySide::kNone;
  auto done = tape::stage(**tape, request, dir, args.cache_path, progress, &side);
  if (!done.ok()) {
    // The cache's failure is no fault of the copy: vvmd must not count it against the tape.
    *blame = side == tape::CopySide::kDestination ? "" : args.vsn;
    return done.status();
  }
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
  auto job = read_request(a->op);
  if (!job.ok()) {
    log::error("copy job {}: {}", a->job, job.status().message());
    tell_parent({JobEvent::Kind::kFailed, 0, 0, job.status()});
    return kExitUndelivered;  // no reply_to to send to: the parent reports what it can
  }
  const rpc::CopyArgs* args = &job->copy;

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

  std::string blame;
  auto outcome = copy(
      *a, *job, [&](uint64_t bytes) { report_progress(bytes, false); }, &blame);
  rpc::CopyReport last;
  if (outcome.ok()) {
    tell_parent({JobEvent::Kind::kDone, outcome->bytes, outcome->checksum, {}});
    last = done_report(base, outcome->bytes, outcome->checksum);
  } else {
    if (a->op == "tape-copy" || a->op == "stage") {
      // The tape to blame ("" for a stage: the cache), for vvmd; before the failed line, which
      // the parent acts on.
      JobEvent blamed{JobEvent::Kind::kBlame};
      blamed.vsn = blame;
      tell_parent(blamed);
      base.vsn = blame;
    }
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
