// process.cc: temporary folders, child processes and nbdkit for integration tests.
#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace vvm::test {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// A file descriptor closed on destruction.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ != -1) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Everything execve needs, built before fork: after fork in a threaded program only
// async-signal-safe calls are allowed, so the child must not allocate.
struct ExecPlan {
  std::string program;  // the resolved path
  std::vector<std::string> argv;
  std::vector<std::string> envp;
  std::vector<char*> argv_ptrs;  // filled by spawn(), pointing into argv and envp
  std::vector<char*> envp_ptrs;
};

Result<ExecPlan> make_plan(const std::vector<std::string>& argv, const EnvList& env) {
  if (argv.empty()) return Status::InvalidArgument("empty command line");
  ExecPlan plan;
  plan.argv = argv;
  std::string path_var = "/usr/local/bin:/usr/bin:/bin";
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view key = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [k, v] : env) replaced = replaced || k == key;
    if (!replaced) plan.envp.emplace_back(entry);
    if (key == "PATH" && !replaced) path_var = std::string(entry.substr(5));
  }
  for (const auto& [k, v] : env) {
    plan.envp.push_back(k + "=" + v);
    if (k == "PATH") path_var = v;
  }

  plan.program = argv[0];
  if (plan.program.find('/') == std::string::npos) {
    std::string found;
    std::istringstream dirs(path_var);
    for (std::string dir; found.empty() && std::getline(dirs, dir, ':');) {
      const std::string candidate = (dir.empty() ? "." : dir) + "/" + argv[0];
      if (::access(candidate.c_str(), X_OK) == 0) found = candidate;
    }
    if (found.empty()) return Status::NotFound("program '" + argv[0] + "' is not in PATH");
    plan.program = found;
  }
  return plan;
}

// Forks and execs `plan` in a new process group with the given stdin, stdout and stderr. Returns
// once the exec has happened, or with the reason it failed.
Result<pid_t> spawn(ExecPlan& plan, int in_fd, int out_fd, int err_fd) {
  plan.argv_ptrs.clear();
  for (auto& a : plan.argv) plan.argv_ptrs.push_back(a.data());
  plan.argv_ptrs.push_back(nullptr);
  plan.envp_ptrs.clear();
  for (auto& e : plan.envp) plan.envp_ptrs.push_back(e.data());
  plan.envp_ptrs.push_back(nullptr);
  int report[2];  // the child writes its errno here if exec fails; exec closes it otherwise
  if (::pipe2(report, O_CLOEXEC) == -1) return Status::FromErrno(errno, "pipe2");
  Fd report_read(report[0]);
  Fd report_write(report[1]);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid == -1) return Status::FromErrno(errno, "fork");
  if (pid == 0) {
    ::setpgid(0, 0);
    // Dies with the test. PDEATHSIG fires when the parent *thread* exits: tests start children
    // from their main thread.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) ::signal(sig, SIG_DFL);
    ::execve(plan.program.c_str(), plan.argv_ptrs.data(), plan.envp_ptrs.data());
    const int err = errno;
    [[maybe_unused]] ssize_t n = ::write(report[1], &err, sizeof err);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here, so the group exists before we ever signal it
  report_write.reset();
  int child_errno = 0;
  ssize_t n;
  do n = ::read(report_read.get(), &child_errno, sizeof child_errno);
  while (n == -1 && errno == EINTR);
  if (n == sizeof child_errno) {
    int status;
    ::waitpid(pid, &status, 0);
    return Status::FromErrno(child_errno, "exec " + plan.program);
  }
  return pid;
}

std::atomic<int> g_process_counter{0};

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || std::strchr("-._~/@:", c) != nullptr) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

void must(const Status& status) {
  if (!status.ok()) throw std::runtime_error(status.message());
}

Result<std::string> build_dir() {
  const char* dir = std::getenv("VVM_BUILD_DIR");
  if (dir == nullptr || *dir == '\0') {
    return Status::InvalidArgument("VVM_BUILD_DIR is not set: run the tests with meson test");
  }
  return std::string(dir);
}

Result<std::string> plugin_path() {
  Result<std::string> dir = build_dir();
  if (!dir.ok()) return dir.status();
  std::string path = *dir + "/nbdkit-plugin/nbdkit-vvm-plugin.so";
  if (::access(path.c_str(), R_OK) != 0) return Status::FromErrno(errno, path);
  return path;
}

EnvList nbdkit_env() {
  const char* preload = std::getenv("VVM_NBDKIT_PRELOAD");
  if (preload == nullptr || *preload == '\0') return {};
  return {{"LD_PRELOAD", preload}};
}

// --- TempDir ---

Result<TempDir> TempDir::create(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" +
                      std::string(prefix) + ".XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return Status::FromErrno(errno, "mkdtemp " + templ);
  return TempDir(templ);
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    TempDir old(std::move(*this));
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

// --- Process ---

Result<Process> Process::start(const std::vector<std::string>& argv, const std::string& log_dir,
                               const EnvList& env) {
  Result<ExecPlan> plan = make_plan(argv, env);
  if (!plan.ok()) return plan.status();

  Process p;
  const std::string base = log_dir + "/" + fs::path(argv[0]).filename().string() + "." +
                           std::to_string(++g_process_counter);
  p.stdout_path_ = base + ".out";
  p.stderr_path_ = base + ".err";
  Fd in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  Fd out(::open(p.stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  Fd err(::open(p.stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (in.get() == -1 || out.get() == -1 || err.get() == -1) {
    return Status::FromErrno(errno, "open the output files " + base + ".{out,err}");
  }
  Result<pid_t> pid = spawn(*plan, in.get(), out.get(), err.get());
  if (!pid.ok()) return pid.status();
  p.pid_ = *pid;
  return p;
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      exit_status_(std::move(other.exit_status_)),
      stdout_path_(std::move(other.stdout_path_)),
      stderr_path_(std::move(other.stderr_path_)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    Process old(std::move(*this));
    pid_ = std::exchange(other.pid_, -1);
    exit_status_ = std::move(other.exit_status_);
    stdout_path_ = std::move(other.stdout_path_);
    stderr_path_ = std::move(other.stderr_path_);
  }
  return *this;
}

Process::~Process() {
  if (pid_ > 0 && !exit_status_) (void)stop();
}

bool Process::poll_exit() {
  if (exit_status_) return true;
  if (pid_ <= 0) return false;
  // Look without reaping: while the leader is a zombie its pid, and so the group id, cannot be
  // reused, so killing the rest of the group cannot hit a stranger.
  siginfo_t info{};
  if (::waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) == -1 || info.si_pid == 0) {
    return false;
  }
  ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) == -1 && errno == EINTR) {
  }
  exit_status_ = decode_wait_status(status);
  return true;
}

bool Process::running() { return pid_ > 0 && !poll_exit(); }

Result<int> Process::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return Status::InvalidArgument("no process");
  VVM_RETURN_IF_ERROR(
      wait_until([this] { return poll_exit(); }, timeout, "process " + std::to_string(pid_)));
  return *exit_status_;
}

Result<int> Process::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return Status::InvalidArgument("no process");
  if (poll_exit()) return *exit_status_;
  ::kill(-pid_, SIGTERM);
  if (wait_until([this] { return poll_exit(); }, grace, "").ok()) return *exit_status_;
  ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) == -1 && errno == EINTR) {
  }
  exit_status_ = decode_wait_status(status);
  return *exit_status_;
}

std::string Process::stdout_text() const { return read_file(stdout_path_); }
std::string Process::stderr_text() const { return read_file(stderr_path_); }

// --- waiting ---

Status write_file(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) return Status::IoError(path + ": cannot write");
  return Status::Ok();
}

Status wait_until(const std::function<bool()>& ready, std::chrono::milliseconds timeout,
                  std::string_view what) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ready()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Timeout("gave up waiting for " + std::string(what) + " after " +
                             std::to_string(timeout.count()) + " ms");
    }
    std::this_thread::sleep_for(10ms);
  }
  return Status::Ok();
}

Status wait_for_path(const std::string& path, std::chrono::milliseconds timeout) {
  return wait_until([&] { return ::access(path.c_str(), F_OK) == 0; }, timeout, path);
}

int count_sockets(pid_t pid) {
  std::error_code ec;
  fs::directory_iterator it(fs::path("/proc") / std::to_string(pid) / "fd", ec);
  if (ec) return -1;
  int sockets = 0;
  for (const fs::directory_entry& fd : it) {
    const fs::path target = fs::read_symlink(fd.path(), ec);
    if (!ec && target.native().starts_with("socket:")) ++sockets;
  }
  return sockets;
}

// --- run_command ---

Result<CommandResult> run_command(const std::vector<std::string>& argv, const EnvList& env,
                                  std::chrono::milliseconds timeout) {
  Result<ExecPlan> plan = make_plan(argv, env);
  if (!plan.ok()) return plan.status();
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) == -1) return Status::FromErrno(errno, "pipe2");
  Fd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) == -1) return Status::FromErrno(errno, "pipe2");
  Fd err_read(err_pipe[0]), err_write(err_pipe[1]);
  Fd in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (in.get() == -1) return Status::FromErrno(errno, "open /dev/null");

  Result<pid_t> pid = spawn(*plan, in.get(), out_write.get(), err_write.get());
  if (!pid.ok()) return pid.status();
  out_write.reset();
  err_write.reset();

  CommandResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  std::vector<pollfd> fds = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
  std::string* sinks[] = {&result.out, &result.err};
  while (fds[0].fd != -1 || fds[1].fd != -1) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (ready == -1 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd == -1 || fds[i].revents == 0) continue;
      char buf[65536];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;  // EOF (the Fd still owns and closes it)
      }
    }
  }
  if (timed_out) ::kill(-*pid, SIGKILL);
  int status = 0;
  while (::waitpid(*pid, &status, 0) == -1 && errno == EINTR) {
  }
  ::kill(-*pid, SIGKILL);  // anything it left behind in its group
  if (timed_out) {
    return Status::Timeout(argv[0] + " still running after " + std::to_string(timeout.count()) +
                           " ms; stderr so far: " + result.err);
  }
  result.status = decode_wait_status(status);
  return result;
}

// --- NbdkitServer ---

Result<NbdkitServer> NbdkitServer::start(const TempDir& dir,
                                         const std::vector<std::string>& plugin_args,
                                         const NbdkitOptions& options) {
  Result<std::string> plugin = plugin_path();
  if (!plugin.ok()) return plugin.status();
  const std::string id = std::to_string(++g_process_counter);
  const std::string socket = dir.file("nbdkit" + id + ".sock");
  const std::string pidfile = dir.file("nbdkit" + id + ".pid");
  std::vector<std::string> argv = {
      "nbdkit", "-f", "-U", socket, "-P", pidfile, "--exit-with-parent"};
  if (options.verbose) argv.push_back("-v");
  argv.insert(argv.end(), options.nbdkit_args.begin(), options.nbdkit_args.end());
  argv.push_back(*plugin);
  argv.insert(argv.end(), plugin_args.begin(), plugin_args.end());

  Result<Process> process = Process::start(argv, dir.path(), nbdkit_env());
  if (!process.ok()) return process.status();
  // nbdkit writes the pidfile once it listens. Readiness is waited for, never assumed.
  struct stat st;
  const Status ready = wait_until(
      [&] { return (::stat(pidfile.c_str(), &st) == 0 && st.st_size > 0) || !process->running(); },
      60s, "nbdkit's pidfile " + pidfile);
  if (!process->running()) {
    Result<int> status = process->stop();
    return Status::Unavailable("nbdkit exited with status " +
                               std::to_string(status.ok() ? *status : -1) +
                               " before it was ready:\n" + process->stderr_text());
  }
  if (!ready.ok()) return Status(ready.code(), ready.message() + "\n" + process->stderr_text());
  const int idle_sockets = count_sockets(process->pid());
  return NbdkitServer(std::move(*process), socket, idle_sockets);
}

Result<int> NbdkitServer::stop() {
  if (process_.running() && idle_sockets_ >= 0) {
    // Clients that have just closed their end may not have been noticed yet. A client that stays
    // connected only costs the wait.
    (void)wait_until(
        [this] {
          const int n = count_sockets(process_.pid());
          return n >= 0 && n <= idle_sockets_;
        },
        10s, "nbdkit's clients to disconnect");
  }
  return process_.stop();
}

std::string NbdkitServer::uri(std::string_view export_name) const {
  return "nbd+unix:///" + percent_encode(export_name) + "?socket=" + percent_encode(socket_);
}

}  // namespace vvm::test
