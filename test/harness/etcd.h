// etcd.h: a real etcd for the tests of the cluster code: Debian's /usr/bin/etcd, a single member
// listening on 127.0.0.1 on two free ports, its data in a folder of the test's TempDir. It is
// stopped (SIGTERM, then SIGKILL) when the object goes, and dies with the test process.
//
//   auto dir = must(TempDir::create());
//   auto etcd = must(EtcdServer::start(dir));
//   auto client = must(cluster::EtcdClient::create({.endpoints = {etcd.endpoint()}}));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "process.h"

namespace vvm::test {

// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick for port 0).
Result<uint16_t> pick_unused_port();

class EtcdServer {
 public:
  // Starts etcd with its data in DIR/etcd-N and waits (up to 30 s) until it answers a read,
  // which it does once it has elected itself leader.
  static Result<EtcdServer> start(const TempDir& dir);

  // "127.0.0.1:PORT", the client endpoint.
  const std::string& endpoint() const { return endpoint_; }
  Process& process() { return *process_; }
  // Stops it (SIGTERM, then SIGKILL after `grace`); the endpoint then refuses connections.
  Result<int> stop(std::chrono::milliseconds grace = 10s) { return process_->stop(grace); }
  // Starts it again, stopped or not, on the same ports and data, and waits until it answers.
  Status restart();

 private:
  EtcdServer(const TempDir& dir, std::vector<std::string> argv, std::string endpoint)
      : log_dir_(dir.path()), argv_(std::move(argv)), endpoint_(std::move(endpoint)) {}
  Status launch();  // starts argv_ and waits until it answers

  std::string log_dir_;
  std::vector<std::string> argv_;
  std::string endpoint_;
  std::optional<Process> process_;
};

}  // namespace vvm::test
