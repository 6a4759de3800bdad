// copy/jobs.cc: checking copy requests, starting copy children and supervising them (copy/jobs.h).
#include "copy/jobs.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/core.h>

#include "common/log.h"
#include "copy/report.h"
#include "tape/label.h"

extern char** environ;

namespace vvm::mover {
namespace {

using Clock = std::chrono::steady_clock;

// The operation as logs and the copy child's --op name it.
const char* op_word(rpc::Op op) {
  switch (op) {
    case rpc::Op::kArchive: return "archive";
    case rpc::Op::kVerify: return "verify";
    case rpc::Op::kTapeCopy: return "tape-copy";
    default: return "stage";
  }
}

// The media type in VSN.tap's VOL label, read straight from the SIMH image's first record (a
// 4-byte little-endian length, then the block): loading the image as a tape would scan it whole,
// and a child may be writing it.
Result<std::string> read_media(const std::string& image, const std::string& vsn) {
  int fd = ::open(image.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, fmt::format("tape {}: {}", vsn, image));
  unsigned char head[4 + tape::kLabelSize] = {};
  ssize_t n = ::pread(fd, head, sizeof head, 0);
  int err = errno;
  ::close(fd);
  if (n < 0) return Status::FromErrno(err, fmt::format("tape {}: {}", vsn, image));
  uint32_t length = head[0] | head[1] << 8 | head[2] << 16 | static_cast<uint32_t>(head[3]) << 24;
  if (n < static_cast<ssize_t>(sizeof head) || length != tape::kLabelSize) {
    return Status::NotFound(fmt::format("tape {}: {} has no VOL label", vsn, image));
  }
  auto vol = tape::VolLabel::decode(
      std::string_view(reinterpret_cast<const char*>(head + 4), tape::kLabelSize));
  if (!vol.ok())
    return Status(vol.status().code(), fmt::format("tape {}: {}", vsn, vol.status().message()));
  if (vol->vsn != vsn) {
    return Status::Mismatch(fmt::format("tape {}: {} is labelled {}", vsn, image, vol->vsn));
  }
  return vol->media_type;
}

// A descriptor at 10 or above, close-on-exec: the child's fds 3 and 4 are dup2() targets, and a
// source already at 3 or 4 would keep its close-on-exec flag through dup2 onto itself.
int high_fd(int fd) {
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return high;
}

// A VSN as VOL labels hold them (1 to 6 uppercase letters or digits): it becomes a file name.
bool valid_vsn(const std::string& vsn) {
  if (vsn.empty() || vsn.size() > 6) return false;
  return std::all_of(vsn.begin(), vsn.end(),
                     [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); });
}

std::string describe_exit(int wstatus) {
  if (WIFSIGNALED(wstatus)) return fmt::format("signal {}", WTERMSIG(wstatus));
  return fmt::format("exit status {}", WEXITSTATUS(wstatus));
}

// Removes what a stage killed mid-copy left: CACHE_DIR/.stage.NAME.XXXXXX (copy.h).
void remove_stage_temporaries(const std::string& final_path) {
  std::filesystem::path final(final_path);
  std::string prefix = ".stage." + final.filename().string() + ".";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(final.parent_path(), ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() == prefix.size() + 6 && name.starts_with(prefix)) {
      if (::unlink(entry.path().c_str()) == 0) {
        log::info("removed {}, left by a failed stage", entry.path().string());
      }
    }
  }
}

}  // namespace

CopyJobs::CopyJobs(Config config, std::string mover)
    : config_(std::move(config)), mover_(std::move(mover)) {
  stall_timeout_ = config_.movers.at(mover_).stall_timeout;
}

CopyJobs::~CopyJobs() {
  stop();
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

Status CopyJobs::start() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n < 0) return Status::FromErrno(errno, "finding vvmover's own program (/proc/self/exe)");
  exe_.assign(buf, static_cast<size_t>(n));
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Status::FromErrno(errno, "making the supervisor's wake-up pipe");
  }
  supervisor_ = std::thread([this] { supervise(); });
  return Status::Ok();
}

void CopyJobs::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  if (wake_[1] >= 0) [[maybe_unused]]
    ssize_t n = ::write(wake_[1], "x", 1);
  if (supervisor_.joinable()) supervisor_.join();
}

Result<std::string> CopyJobs::pick_drive(const rpc::CopyArgs& args, const std::string& media,
                                         const std::string& other) const {
  const MoverConfig& mover = config_.movers.at(mover_);
  auto busy = [&](const std::string& drive) {
    auto it = drive_jobs_.find(drive);
    return it == drive_jobs_.end() ? 0 : it->second;
  };
  if (!other.empty() && args.drive == other) {
    return Status::InvalidArgument(
        fmt::format("mover {}: drive {} cannot hold both tapes of a tape copy", mover_, other));
  }
  if (!args.drive.empty()) {
    auto it = config_.drives.find(args.drive);
    if (it == config_.drives.end()) {
      return Status::NotFound(fmt::format("mover {}: no drive '{}'", mover_, args.drive));
    }
    if (it->second.mover != mover_) {
      return Status::InvalidArgument(fmt::format("mover {}: drive {} belongs to mover {}", mover_,
                                                 args.drive, it->second.mover));
    }
    if (it->second.media != media) {
      return Status::InvalidArgument(fmt::format("mover {}: drive {} takes {}, and {} is {}",
                                                 mover_, args.drive, it->second.media, args.vsn,
                                                 media));
    }
    if (uint64_t job = busy(args.drive)) {
      return Status::Busy(
          fmt::format("mover {}: drive {} is busy with job {}", mover_, args.drive, job));
    }
    return args.drive;
  }
  bool any = false;
  for (const auto& name : mover.drives) {
    if (config_.drives.at(name).media != media || name == other) continue;
    any = true;
    if (busy(name) == 0) return name;
  }
  if (!any) {
    return Status::InvalidArgument(
        fmt::format("mover {}: no drive takes {} (the media type of {})", mover_, media, args.vsn));
  }
  return Status::Busy(fmt::format("mover {}: every {} drive is busy", mover_, media));
}

Result<std::string> CopyJobs::check_tape(const char* what, const std::string& vsn) const {
  std::string image = config_.library_path + "/" + vsn + ".tap";
  if (!valid_vsn(vsn) || ::access(image.c_str(), F_OK) != 0) {
    return Status::NotFound(
        fmt::format("{}: no tape {} in the library ({})", what, vsn, config_.library_path));
  }
  auto media = read_media(image, vsn);
  if (!media.ok()) return media.status();
  if (!config_.media.contains(*media)) {
    return Status::InvalidArgument(
        fmt::format("{}: tape {} is {}, a media type vvm.conf does not know", what, vsn, *media));
  }
  return *media;
}

Result<rpc::CopyAccepted> CopyJobs::submit_tape_copy(const rpc::TapeCopyRequest& request) {
  const char* what = "tape copy";
  const rpc::CopyArgs& to = request.to;
  if (config_.library_kind != "emulated") {
    return Status::Unavailable(
        fmt::format("mover {}: {} libraries are not supported yet", mover_, config_.library_kind));
  }
  if (auto ep = Endpoint::parse(to.reply_to); !ep.ok()) {
    return Status::InvalidArgument(
        fmt::format("{}: reply_to '{}': {}", what, to.reply_to, ep.status().message()));
  }
  if (to.file_number == 0 || request.from_file == 0) {
    return Status::InvalidArgument(fmt::format("{}: file number 0 is the VOL label", what));
  }
  if (to.file.vv_class.size() != 1) {
    return Status::InvalidArgument(
        fmt::format("{}: VV class '{}' is not one letter or digit", what, to.file.vv_class));
  }
  if (request.from_vsn == to.vsn) {
    return Status::InvalidArgument(
        fmt::format("{}: from {} to {}: the source and the destination must be two tapes", what,
                    request.from_vsn, to.vsn));
  }
  auto from_media = check_tape(what, request.from_vsn);
  if (!from_media.ok()) return from_media.status();
  auto to_media = check_tape(what, to.vsn);
  if (!to_media.ok()) return to_media.status();

  std::unique_lock lock(mu_);
  if (stopping_) return Status::Unavailable(fmt::format("mover {} is stopping", mover_));
  await_ending(lock);
  for (const auto& [id, job] : jobs_) {
    for (const std::string* vsn : {&request.from_vsn, &to.vsn}) {
      if (job->args.vsn == *vsn || job->from_vsn == *vsn) {
        return Status::Busy(fmt::format("{}: tape {} is in a drive for job {}", what, *vsn, id));
      }
    }
  }
  rpc::CopyArgs from_args;
  from_args.drive = request.from_drive;
  from_args.vsn = request.from_vsn;
  auto from_drive = pick_drive(from_args, *from_media, to.drive);
  if (!from_drive.ok()) return from_drive.status();
  auto to_drive = pick_drive(to, *to_media, *from_drive);
  if (!to_drive.ok()) return to_drive.status();

  auto job = std::make_unique<Job>();
  job->id = next_id_++;
  job->op = rpc::Op::kTapeCopy;
  job->args = to;
  job->args.drive = *to_drive;
  job->from_drive = *from_drive;
  job->from_vsn = request.from_vsn;
  job->from_file = request.from_file;
  VVM_RETURN_IF_ERROR(
      spawn(*job, config_.drives.at(*to_drive), config_.media.at(*to_media).block_size));
  log::info(
      "job {} tape copy started: VSN {} file {} in drive {} to VSN {} file {} in drive {}, "
      "VV {}{:010} ({} bytes), pid {}",
      job->id, job->from_vsn, job->from_file, *from_drive, to.vsn, to.file_number, *to_drive,
      to.file.vv_class, to.file.serial, to.file.size, job->pid);
  rpc::CopyAccepted accepted{rpc::Op::kTapeCopy, job->id, *to_drive};
  drive_jobs_[*from_drive] = job->id;
  drive_jobs_[*to_drive] = job->id;
  jobs_[job->id] = std::move(job);
  [[maybe_unused]] ssize_t n = ::write(wake_[1], "x", 1);  // poll the new pipe too
  return accepted;
}

Result<rpc::CopyAccepted> CopyJobs::submit(rpc::Op op, const rpc::CopyArgs& args) {
  const char* what = op_word(op);
  if (config_.library_kind != "emulated") {
    return Status::Unavailable(
        fmt::format("mover {}: {} libraries are not supported yet", mover_, config_.library_kind));
  }
  if (auto ep = Endpoint::parse(args.reply_to); !ep.ok()) {
    return Status::InvalidArgument(
        fmt::format("{}: reply_to '{}': {}", what, args.reply_to, ep.status().message()));
  }
  if (!args.cache_path.starts_with("/")) {
    return Status::InvalidArgument(
        fmt::format("{}: cache path '{}' is not absolute", what, args.cache_path));
  }
  if (args.file_number == 0) {
    return Status::InvalidArgument(fmt::format("{}: file number 0 is the VOL label", what));
  }
  if (args.file.vv_class.size() != 1) {
    return Status::InvalidArgument(
        fmt::format("{}: VV class '{}' is not one letter or digit", what, args.file.vv_class));
  }
  struct stat st;
  bool exists = ::stat(args.cache_path.c_str(), &st) == 0;
  if (op == rpc::Op::kArchive && !exists) {
    return Status::NotFound(fmt::format("archive: no cache file {}", args.cache_path));
  }
  if (op == rpc::Op::kStage && exists) {
    return Status::AlreadyExists(
        fmt::format("stage: {} exists already (a stage never replaces a file)", args.cache_path));
  }
  auto media = check_tape(what, args.vsn);
  if (!media.ok()) return media.status();
  auto type = config_.media.find(*media);

  std::unique_lock lock(mu_);
  if (stopping_) return Status::Unavailable(fmt::format("mover {} is stopping", mover_));
  await_ending(lock);
  for (const auto& [id, job] : jobs_) {
    if (job->args.vsn == args.vsn) {
      return Status::Busy(fmt::format("{}: tape {} is in drive {} for job {}", what, args.vsn,
                                      job->args.drive, id));
    }
    if (job->from_vsn == args.vsn) {
      return Status::Busy(fmt::format("{}: tape {} is in drive {} for job {}", what, args.vsn,
                                      job->from_drive, id));
    }
    if (op == rpc::Op::kStage && job->op == rpc::Op::kStage &&
        job->args.cache_path == args.cache_path) {
      // Busy, not an error: the job may be one whose end the requester has just been told of,
      // not yet reaped here.
      return Status::Busy(fmt::format("stage: job {} is staging {} already", id, args.cache_path));
    }
  }
  auto drive = pick_drive(args, *media);
  if (!drive.ok()) return drive.status();

  auto job = std::make_unique<Job>();
  job->id = next_id_++;
  job->op = op;
  job->args = args;
  job->args.drive = *drive;
  VVM_RETURN_IF_ERROR(spawn(*job, config_.drives.at(*drive), type->second.block_size));
  log::info("job {} {} started: drive {}, VSN {}, file {}, {} ({} bytes), pid {}", job->id, what,
            *drive, args.vsn, args.file_number, args.cache_path, args.file.size, job->pid);
  rpc::CopyAccepted accepted{op, job->id, *drive};
  drive_jobs_[*drive] = job->id;
  jobs_[job->id] = std::move(job);
  [[maybe_unused]] ssize_t n = ::write(wake_[1], "x", 1);  // poll the new pipe too
  return accepted;
}

Result<rpc::CancelReply> CopyJobs::cancel(const rpc::CancelRequest& request) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(request.job);
  if (it == jobs_.end() || it->second->args.request_id != request.request_id) {
    return Status::NotFound(fmt::format("mover {}: no job {} of request {} is running", mover_,
                                        request.job, request.request_id));
  }
  Job& job = *it->second;
  if (job.op != rpc::Op::kVerify) {
    return Status::InvalidArgument(fmt::format(
        "mover {}: job {} is a {}: only a verify is cancelled", mover_, job.id, op_word(job.op)));
  }
  if (!job.killed && !job.result) {
    // Killed now; the supervisor reaps it and sends the failed report with this reason.
    job.killed = Status::Unavailable(
        fmt::format("job {} (verify of VSN {} file {} in drive {}) cancelled: {}", job.id,
                    job.args.vsn, job.args.file_number, job.args.drive, request.reason));
    log::info("{}", job.killed->message());
    ::kill(job.pid, SIGKILL);
  }
  return rpc::CancelReply{};
}

void CopyJobs::await_ending(std::unique_lock<std::mutex>& lock) {
  const auto deadline = Clock::now() + std::chrono::seconds(1);
  for (;;) {
    bool ending = false;
    for (auto& [id, job] : jobs_) {
      drain(*job);
      ending = ending || job->result.has_value();
    }
    if (!ending || stopping_) return;
    [[maybe_unused]] ssize_t n = ::write(wake_[1], "x", 1);  // reap now, not at the next poll
    if (reaped_.wait_until(lock, deadline) == std::cv_status::timeout) return;
  }
}

std::vector<CopyJobs::DriveUse> CopyJobs::drives() {
  const std::lock_guard lock(mu_);
  std::vector<DriveUse> out;
  for (const std::string& name : config_.movers.at(mover_).drives) {
    DriveUse d{name, config_.drives.at(name).media, std::nullopt};
    // A tape copy's two drives both map to its job.
    if (auto it = drive_jobs_.find(name); it != drive_jobs_.end()) {
      if (auto job = jobs_.find(it->second); job != jobs_.end()) d.op = job->second->op;
    }
    out.push_back(std::move(d));
  }
  return out;
}

Status CopyJobs::spawn(Job& job, const DriveConfig& drive, uint32_t block_size) {
  rpc::Request request;
  if (job.op == rpc::Op::kArchive) {
    request.body = rpc::ArchiveRequest{job.args};
  } else if (job.op == rpc::Op::kTapeCopy) {
    rpc::CopyArgs to = job.args;
    request.body = rpc::TapeCopyRequest{to, job.from_drive, job.from_vsn, job.from_file};
  } else if (job.op == rpc::Op::kVerify) {
    request.body = rpc::VerifyRequest{job.args};
  } else {
    request.body = rpc::StageRequest{job.args};
  }
  auto bytes = rpc::encode_request(request);
  if (!bytes.ok()) return bytes.status();
  // The whole request must fit in the pipe, which is written before the child reads it.
  if (bytes->size() > 60000) return Status::InvalidArgument("copy request too large");

  int req[2], events[2];
  if (::pipe2(req, O_CLOEXEC) != 0) return Status::FromErrno(errno, "making a copy job's pipe");
  if (::pipe2(events, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(req[0]);
    ::close(req[1]);
    return Status::FromErrno(err, "making a copy job's pipe");
  }
  for (int* fd : {&req[0], &req[1], &events[0], &events[1]}) *fd = high_fd(*fd);

  std::vector<std::string> argv = {
      exe_,           "--copy-job",
      "--mover",      mover_,
      "--job",        std::to_string(job.id),
      "--drive",      drive.name,
      "--op",         op_word(job.op),
      "--block-size", std::to_string(block_size),
      "--log-target", config_.log_target == log::Target::kSyslog ? "syslog" : "stderr",
      "--log-level",  std::string(log::level_name(config_.log_level))};
  if (drive.emulated()) {
    argv.insert(argv.end(), {"--library", config_.library_path});
  } else {
    argv.insert(argv.end(), {"--device", drive.device});
  }
  if (drive.emulated_rate > 0) {
    argv.insert(argv.end(), {"--rate", std::to_string(drive.emulated_rate)});
  }
  if (!job.from_drive.empty()) {
    const DriveConfig& from = config_.drives.at(job.from_drive);
    argv.insert(argv.end(), {"--from-drive", from.name});
    if (!from.emulated()) argv.insert(argv.end(), {"--from-device", from.device});
    if (from.emulated_rate > 0) {
      argv.insert(argv.end(), {"--from-rate", std::to_string(from.emulated_rate)});
    }
  }
  const TlsClientConfig& tls = config_.movers.at(mover_).tls_client;
  for (const auto& [flag, value] :
       {std::pair{"--tls-psk-file", &tls.psk_file}, std::pair{"--tls-username", &tls.username},
        std::pair{"--tls-certificates", &tls.certificates}}) {
    if (!value->empty()) argv.insert(argv.end(), {flag, *value});
  }
  std::vector<char*> cargv;
  for (auto& s : argv) cargv.push_back(s.data());
  cargv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, req[0], kRequestFd);
  posix_spawn_file_actions_adddup2(&actions, events[1], kEventFd);
  // Nothing else of the daemon's (its sockets, other jobs' pipes) reaches the child.
  posix_spawn_file_actions_addclosefrom_np(&actions, kEventFd + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGPIPE, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, exe_.c_str(), &actions, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(req[0]);
  ::close(events[1]);
  if (rc != 0) {
    ::close(req[1]);
    ::close(events[0]);
    return Status::FromErrno(rc, fmt::format("starting the copy child {}", exe_));
  }
  // Fits in the pipe's buffer (checked above), so this does not wait for the child.
  const char* p = bytes->data();
  size_t left = bytes->size();
  while (left > 0) {
    ssize_t n = ::write(req[1], p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;  // the child died at once: the supervisor reports it
    p += n;
    left -= static_cast<size_t>(n);
  }
  ::close(req[1]);
  ::fcntl(events[0], F_SETFL, O_NONBLOCK);
  job.pid = pid;
  // -1 on kernels without pidfds: the poll's timeout reaps instead.
  job.pid_fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (job.pid_fd >= 0) job.pid_fd = high_fd(job.pid_fd);
  job.event_fd = events[0];
  job.started = job.last_event = Clock::now();
  return Status::Ok();
}

void CopyJobs::drain(Job& job) {
  char buf[4096];
  while (job.event_fd >= 0) {
    ssize_t n = ::read(job.event_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;  // EAGAIN: nothing more for now
    if (n == 0) {
      ::close(job.event_fd);
      job.event_fd = -1;
      break;
    }
    job.last_event = Clock::now();
    for (auto& event : job.reader.feed(std::string_view(buf, static_cast<size_t>(n)))) {
      if (!event.ok()) {
        log::warning("job {}: {}", job.id, event.status().message());
        continue;
      }
      if (event->kind == JobEvent::Kind::kProgress) {
        job.bytes = event->bytes;
      } else if (event->kind == JobEvent::Kind::kBlame) {
        job.blame = event->vsn;
      } else if (event->kind == JobEvent::Kind::kMounted) {
        if (metrics_) metrics_->mounted(job.args.drive, std::chrono::microseconds(event->micros));
      } else {
        job.result = *event;
      }
    }
  }
}

void CopyJobs::finish(Job& job, int wstatus) {
  bool delivered = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
  // The report the requester still needs, if any: the child's own result when it has one (it is
  // the truth about the copy), else why the child is gone.
  std::optional<rpc::CopyReport> report;
  rpc::CopyReport base;
  base.request_id = job.args.request_id;
  base.mover = mover_;
  base.job = job.id;
  base.bytes_done = job.bytes;
  base.bytes_total = job.args.file.size;
  base.vsn = job.args.vsn;
  base.file_number = job.args.file_number;
  bool done = job.result && job.result->kind == JobEvent::Kind::kDone;
  // A tape copy's failed report names the tape to blame: the child's own line says (in its
  // report), a copy killed or dead cannot tell. A stage's names its tape unless the child blamed
  // the cache ("").
  if (job.op == rpc::Op::kTapeCopy && !done) base.vsn = job.result ? job.blame.value_or("") : "";
  if (job.op == rpc::Op::kStage && !done && job.result && job.blame) base.vsn = *job.blame;
  Status failure;
  if (job.result && done) {
    if (!delivered) report = done_report(base, job.result->bytes, job.result->checksum);
  } else if (job.result) {
    failure = job.result->failure;
  } else if (job.killed) {
    failure = *job.killed;
  } else {
    failure =
        Status::IoError(fmt::format("copy process died: {} (job {}, drive {}, VSN {})",
                                    describe_exit(wstatus), job.id, job.args.drive, job.args.vsn));
  }
  if (!done && !delivered) report = failed_report(base, failure);

  double seconds = std::chrono::duration<double>(Clock::now() - job.started).count();
  uint64_t bytes = done ? job.result->bytes : job.bytes;
  if (metrics_) metrics_->copy_ended(job.op, job.args.drive, done, bytes);
  log::info("job {} {} ended: drive {}, VSN {}, file {}, {} bytes in {:.1f} s ({:.1f} MB/s): {}",
            job.id, op_word(job.op), job.args.drive, job.args.vsn, job.args.file_number, bytes,
            seconds, seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0,
            done ? "done" : failure.to_string());
  if (!report) return;
  // On a thread of its own: a requester that does not answer (connect and call time out after
  // 10 s, tried twice) must not hold up the watch over the other copies.
  auto finished = std::make_shared<std::atomic<bool>>(false);
  std::thread sender([id = job.id, reply_to = job.args.reply_to, r = *report, finished,
                      tls = rpc::TlsClientSettings::from_config(
                          config_.movers.at(mover_).tls_client)] {
    if (Status s = ReportSender(reply_to, tls).send(r); !s.ok()) {
      log::error("job {}: could not send its final report to {}: {}", id, reply_to, s.message());
    }
    *finished = true;
  });
  senders_.push_back({std::move(sender), finished});
}

void CopyJobs::join_senders(bool all) {
  for (auto it = senders_.begin(); it != senders_.end();) {
    if (all || *it->finished) {
      it->thread.join();
      it = senders_.erase(it);
    } else {
      ++it;
    }
  }
}

void CopyJobs::supervise() {
  for (;;) {
    std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}};
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, job] : jobs_) {
        if (job->event_fd >= 0) fds.push_back({job->event_fd, POLLIN, 0});
        if (job->pid_fd >= 0) fds.push_back({job->pid_fd, POLLIN, 0});
      }
    }
    ::poll(fds.data(), fds.size(), 200);
    char sink[64];
    while (::read(wake_[0], sink, sizeof sink) > 0) {
    }

    std::vector<std::pair<std::unique_ptr<Job>, int>> ended;
    bool stop_now;
    {
      std::lock_guard lock(mu_);
      stop_now = stopping_;
      auto now = Clock::now();
      for (auto it = jobs_.begin(); it != jobs_.end();) {
        Job& job = *it->second;
        drain(job);
        if (!job.killed && stopping_) {
          job.killed = Status::Unavailable(
              fmt::format("mover {} stopping: job {} on drive {} (VSN {}) killed", mover_, job.id,
                          job.args.drive, job.args.vsn));
          ::kill(job.pid, SIGKILL);
        } else if (!job.killed && now - job.last_event > stall_timeout_) {
          double silent = std::chrono::duration<double>(now - job.last_event).count();
          job.killed = Status::Timeout(
              fmt::format("job {} on drive {} (VSN {}) made no progress for {:.1f} s (stall "
                          "timeout {} s): killed",
                          job.id, job.args.drive, job.args.vsn, silent, stall_timeout_.count()));
          log::warning("{}", job.killed->message());
          ::kill(job.pid, SIGKILL);
        }
        int wstatus = 0;
        pid_t r = ::waitpid(job.pid, &wstatus, WNOHANG);
        if (r == job.pid || (r < 0 && errno == ECHILD)) {
          drain(job);  // what it wrote before it exited
          if (job.event_fd >= 0) ::close(job.event_fd);
          job.event_fd = -1;
          if (job.pid_fd >= 0) ::close(job.pid_fd);
          job.pid_fd = -1;
          // Before the drive (and the final path) can go to another job, which could be a new
          // stage of the same file making a temporary of the same form.
          bool done = job.result && job.result->kind == JobEvent::Kind::kDone;
          if (!done && job.op == rpc::Op::kStage) remove_stage_temporaries(job.args.cache_path);
          drive_jobs_.erase(job.args.drive);
          if (!job.from_drive.empty()) drive_jobs_.erase(job.from_drive);
          ended.emplace_back(std::move(it->second), wstatus);
          it = jobs_.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (!ended.empty()) reaped_.notify_all();
    // Reports go out with the lock released, on threads of their own (finish()).
    for (auto& [job, wstatus] : ended) finish(*job, wstatus);
    join_senders(false);
    if (stop_now) {
      std::lock_guard lock(mu_);
      if (jobs_.empty()) break;
    }
  }
  join_senders(true);  // the mover exits only once the last reports are out
}

}  // namespace vvm::mover
