// etcd.cc: a real etcd for the tests (etcd.h).
#include "etcd.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/core.h>

#include <atomic>
#include <cerrno>

#include "cluster/etcd_client.h"

namespace vvm::test {

Result<uint16_t> pick_unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    return Status::FromErrno(err, "binding 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

Result<EtcdServer> EtcdServer::start(const TempDir& dir) {
  static std::atomic<int> count{0};
  auto client_port = pick_unused_port();
  if (!client_port.ok()) return client_port.status();
  auto peer_port = pick_unused_port();
  if (!peer_port.ok()) return peer_port.status();
  const std::string client_url = fmt::format("http://127.0.0.1:{}", *client_port);
  const std::string peer_url = fmt::format("http://127.0.0.1:{}", *peer_port);
  const std::string data = dir.file(fmt::format("etcd-{}", ++count));
  EtcdServer server(dir,
                    {"/usr/bin/etcd", "--name", "test", "--data-dir", data, "--listen-client-urls",
                     client_url, "--advertise-client-urls", client_url, "--listen-peer-urls",
                     peer_url, "--initial-advertise-peer-urls", peer_url, "--initial-cluster",
                     "test=" + peer_url, "--log-level", "warn", "--logger", "zap"},
                    fmt::format("127.0.0.1:{}", *client_port));
  VVM_RETURN_IF_ERROR(server.launch());
  return server;
}

Status EtcdServer::restart() {
  if (process_) (void)process_->stop();
  process_.reset();
  return launch();
}

Status EtcdServer::launch() {
  auto process = Process::start(argv_, log_dir_);
  if (!process.ok()) return process.status();
  process_.emplace(std::move(*process));
  auto client = cluster::EtcdClient::create({{endpoint_}, std::chrono::milliseconds(1000)});
  if (!client.ok()) return client.status();
  Status ready = wait_until(
      [&] {
        if (!process_->running()) return true;
        return (*client)->get("/ready").ok();
      },
      std::chrono::seconds(30), "etcd to answer on " + endpoint_);
  if (!process_->running()) {
    return Status::Unavailable(
        fmt::format("etcd on {} exited: {}", endpoint_, process_->stderr_text()));
  }
  return ready;
}

}  // namespace vvm::test
