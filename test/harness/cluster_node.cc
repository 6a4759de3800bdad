// cluster_node.cc: a stand-in for a cluster node in the shell tests, until the plugin registers
// itself: it joins the cluster as vvm.conf's [cluster] section says (cluster/membership.h), holds
// its membership until SIGTERM or SIGINT, then leaves (the node key goes at once). It serves
// nothing, so it acknowledges every reconfiguration intent at once (PREFIX/ack/ID/NODE, under the
// intent's lease, as a node does once drained): commands that take the barrier do not wait for
// it.
//
//   cluster-node --conf FILE
//
// Prints "joined KEY lease HEX" once registered. Exit codes: 0 left on a signal, 1 could not
// join (the reason on stderr: a name already held, etcd down), 2 usage or vvm.conf, 3 the lease
// was lost (the reason on stderr), as a node would fence itself.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <thread>

#include <fmt/core.h>

#include "cluster/etcd_client.h"
#include "cluster/etcd_watch.h"
#include "cluster/membership.h"
#include "cluster/records.h"
#include "common/config.h"

namespace {

int self_pipe[2] = {-1, -1};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || std::string(argv[1]) != "--conf") {
    fmt::print(stderr, "usage: cluster-node --conf FILE\n");
    return 2;
  }
  auto config = vvm::load_config(argv[2]);
  if (!config.ok()) {
    fmt::print(stderr, "cluster-node: {}\n", config.status().message());
    return 2;
  }
  auto options = vvm::cluster::membership_options(*config);
  if (!options.ok()) {
    fmt::print(stderr, "cluster-node: {}\n", options.status().message());
    return 2;
  }
  // The renewal thread and the signals both end the wait by writing a byte: 'L' lost, 'S' signal.
  if (::pipe(self_pipe) != 0) return 1;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts: all inherit it
  auto member = vvm::cluster::Membership::join(*options, [](const vvm::Status& why) {
    fmt::print(stderr, "cluster-node: lease lost: {}\n", why.message());
    char c = 'L';
    (void)!::write(self_pipe[1], &c, 1);
  });
  if (!member.ok()) {
    fmt::print(stderr, "cluster-node: {}\n", member.status().message());
    return 1;
  }
  // Acknowledges each intent written from now on.
  auto etcd = vvm::cluster::EtcdClient::create(options->etcd);
  if (!etcd.ok()) {
    fmt::print(stderr, "cluster-node: {}\n", etcd.status().message());
    return 2;
  }
  const std::string intents = vvm::cluster::reconf_prefix(options->prefix);
  auto acker = vvm::cluster::EtcdWatch::start(
      options->etcd, {intents, vvm::cluster::prefix_end(intents), 0},
      [&](const vvm::cluster::WatchBatch& batch) {
        for (const auto& ev : batch.events) {
          if (ev.type != vvm::cluster::WatchEvent::Type::kPut) continue;
          const std::string id = ev.kv.key.substr(intents.size());
          auto put = (*etcd)->put(vvm::cluster::ack_key(options->prefix, id, options->node.name),
                                  vvm::cluster::encode_ack({options->node.name, 0}), ev.kv.lease);
          if (!put.ok())
            fmt::print(stderr, "cluster-node: ack {}: {}\n", id, put.status().message());
        }
      },
      {});
  if (!acker.ok() || !(*acker)->wait_created(std::chrono::seconds(5)).ok()) {
    fmt::print(stderr, "cluster-node: cannot watch {}\n", intents);
    return 1;
  }
  fmt::print("joined {} lease {:x}\n", (*member)->key(), (*member)->lease_id());
  std::fflush(stdout);
  std::thread waiter([&signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    char c = 'S';
    (void)!::write(self_pipe[1], &c, 1);
  });
  waiter.detach();
  char why = 0;
  while (::read(self_pipe[0], &why, 1) != 1) {
  }
  (*acker)->stop();
  if (why == 'L') return 3;
  (*member)->leave();
  fmt::print("left {}\n", (*member)->key());
  return 0;
}
