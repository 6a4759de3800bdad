// process.h: what integration tests need to run real programs: temporary folders, child
// processes that never outlive the test, nbdkit serving the vvm plugin, and running a command for
// its output and exit status.
//
// Everything that can fail returns a Status or a Result; must() turns a failure into an exception
// for test set-up, where Catch2 reports its message.
//
//   auto dir = must(TempDir::create());
//   auto server = must(NbdkitServer::start(dir, {"packtab=" + dir.file("packtab")}));
//   nbd_connect_uri(nbd, server.uri("pack/a").c_str());
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace vvm::test {

using namespace std::chrono_literals;

// Variables added to (or replacing those of) the test's own environment.
using EnvList = std::vector<std::pair<std::string, std::string>>;

// Throws std::runtime_error carrying the status message when `status` is an error.
void must(const Status& status);
template <class T>
T must(Result<T> result) {
  if (!result.ok()) throw std::runtime_error(result.status().message());
  return std::move(result).value();
}

// $VVM_BUILD_DIR, which meson test sets.
Result<std::string> build_dir();
// The plugin in the build folder: $VVM_BUILD_DIR/nbdkit-plugin/nbdkit-vvm-plugin.so.
Result<std::string> plugin_path();
// What nbdkit needs in its environment: LD_PRELOAD=$VVM_NBDKIT_PRELOAD when that is set (a
// sanitized plugin needs the ASan runtime, which nbdkit itself does not load).
EnvList nbdkit_env();

// A folder made with mkdtemp under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  static Result<TempDir> create(std::string_view prefix = "vvm-test");
  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempDir& operator=(TempDir&& other) noexcept;
  ~TempDir();

  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// A child process in its own process group. It gets SIGKILL when the test process dies
// (PR_SET_PDEATHSIG), and the destructor stops it, so no child outlives a test that fails or
// crashes. stdin is /dev/null; stdout and stderr go to files in `log_dir`.
class Process {
 public:
  // Starts argv[0] (looked up in PATH when it has no '/') with the environment plus `env`.
  static Result<Process> start(const std::vector<std::string>& argv, const std::string& log_dir,
                               const EnvList& env = {});
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  ~Process();  // stop()s it if still running

  pid_t pid() const { return pid_; }
  // False once it has exited (it is then reaped and the rest of its group killed).
  bool running();
  // Waits up to `timeout` for it to exit by itself; Timeout if it has not (it keeps running).
  // The exit status: its exit code, or 128 + the signal number that killed it.
  Result<int> wait(std::chrono::milliseconds timeout);
  // SIGTERM to the process group, up to `grace` to exit, then SIGKILL. Returns the exit status
  // as wait() does; stopping a process that already exited returns its status.
  Result<int> stop(std::chrono::milliseconds grace = 10s);

  const std::string& stdout_path() const { return stdout_path_; }
  const std::string& stderr_path() const { return stderr_path_; }
  std::string stdout_text() const;
  std::string stderr_text() const;

 private:
  Process() = default;
  // Reaps the leader if it has exited (killing what is left of its group); true if it has.
  bool poll_exit();

  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  std::string stdout_path_;
  std::string stderr_path_;
};

// Writes `text` to `path`, replacing it; an error names the path.
Status write_file(const std::string& path, std::string_view text);

// Polls `ready` until it returns true; a Timeout status naming `what` after `timeout`.
Status wait_until(const std::function<bool()>& ready, std::chrono::milliseconds timeout,
                  std::string_view what);
// Waits until `path` exists.
Status wait_for_path(const std::string& path, std::chrono::milliseconds timeout);
// How many sockets process `pid` has open (from /proc/PID/fd); -1 if it cannot be read.
int count_sockets(pid_t pid);

// What a finished command printed, and its exit status (exit code, or 128 + signal).
struct CommandResult {
  int status = -1;
  std::string out;
  std::string err;
};
// Runs argv to completion with the environment plus `env`, capturing stdout and stderr. A command
// still running after `timeout` is killed and reported as a Timeout error.
Result<CommandResult> run_command(const std::vector<std::string>& argv, const EnvList& env = {},
                                  std::chrono::milliseconds timeout = 120s);

struct NbdkitOptions {
  std::vector<std::string> nbdkit_args;  // put before the plugin: "-r", "--filter=...", ...
  bool verbose = true;                   // -v: the plugin's nbdkit_debug lines go to log()
};

// nbdkit serving the vvm plugin from the build folder on a Unix socket in a TempDir:
//   nbdkit -f -U SOCKET -P PIDFILE --exit-with-parent [-v] OPTIONS... PLUGIN ARGS...
class NbdkitServer {
 public:
  // Returns once nbdkit has written its pidfile, which it does when it is listening. If nbdkit
  // exits first, the error carries its exit status and stderr.
  static Result<NbdkitServer> start(const TempDir& dir, const std::vector<std::string>& plugin_args,
                                    const NbdkitOptions& options = {});

  const std::string& socket() const { return socket_; }
  // nbd+unix:///EXPORT?socket=SOCKET
  std::string uri(std::string_view export_name) const;
  // Everything nbdkit wrote to stderr so far.
  std::string log() const { return process_.stderr_text(); }
  // Waits (up to 10 s) until no client is connected, then stops nbdkit and returns its exit
  // status. The wait matters: nbdkit 1.32 neither closes nor frees a connection still open when
  // it quits, and under ASan that leak of nbdkit's own makes the exit status non-zero.
  Result<int> stop();
  Process& process() { return process_; }

 private:
  NbdkitServer(Process process, std::string socket, int idle_sockets)
      : process_(std::move(process)), socket_(std::move(socket)), idle_sockets_(idle_sockets) {}
  Process process_;
  std::string socket_;
  int idle_sockets_;  // sockets nbdkit holds with no client: its listening sockets
};

}  // namespace vvm::test
