// reconf_gate.h: a cluster node's side of a reconfiguration (the barrier of
// client/cluster/reconfig.h): the gate every pack request passes.
//
// The gate watches PREFIX/reconf/. When an intent appears it holds new requests of the packs the
// intent names, waits until the requests this node is serving from its own disks have finished
// (the drain), flushes those packs' backings, and acknowledges with PREFIX/ack/ID/NODE under the
// intent's lease. When the intent goes (committed, or given up) it has the node serve the
// mappings now in etcd (ClusterCatalog::reload_now) and only then lets the held requests go; a
// node that has not seen the intent go by the intent's deadline resumes by itself. Requests a
// node forwards to another server are held too but not drained here: the forwarder keeps them
// until their reply and sends them again when their server refuses them (see forwarder.h), and
// the server holds them like its own until the new mapping is in place; draining them here would
// wait for a server that waits for this node. The same goes for a request of a pack this node
// serves that leaves for another server of the pack (a pool's peer by load, the pack's other
// node while the path here is down or the node is fenced): it passes the gate counted, as any
// request of a local pack, and stops counting as it leaves (Pass::uncount); one served here
// after all, every other server having failed it, passes the gate again.
//
// No request is served under an old mapping: a connection opened before a reconfiguration that
// moved its pack off this node, or to another disk or offset of it, is refused with ESHUTDOWN
// (NBD's "go to the alternate") after the resume. Permissions changes do not end connections
// already open, as with a file's mode.
//
//   auto gate = ReconfGate::start(options);       // after the node has joined
//   uint64_t gen = gate->generation("home0");      // at open
//   auto pass = gate->enter("home0", gen, true);   // at each request; pass.status() ok: go on
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog_source.h"
#include "cluster/etcd_client.h"
#include "cluster/etcd_watch.h"
#include "cluster/records.h"
#include "common/status.h"

namespace vvm::plugin {

class ReconfGate {
 public:
  using Log = std::function<void(bool error, const std::string& message)>;
  struct Options {
    cluster::EtcdOptions etcd;
    std::string prefix{cluster::kDefaultPrefix};
    std::string node;
    // Where the node's packs are served from: the flush before an acknowledgement, and whether a
    // reconfiguration moved a pack off this node.
    CatalogSource* catalog = nullptr;
    // Has the node serve the mappings now in etcd; runs before held requests resume.
    std::function<Status()> reload;
    Log log;
  };

  // Reads the intents already there (a node that starts during a reconfiguration takes part)
  // and starts watching. Fails when etcd cannot be read.
  static Result<std::unique_ptr<ReconfGate>> start(Options options);
  ~ReconfGate();  // stops the watch; held requests go on
  ReconfGate(const ReconfGate&) = delete;
  ReconfGate& operator=(const ReconfGate&) = delete;

  // One request through the gate; counted ones end (for the drain) when the Pass goes.
  class Pass {
   public:
    Pass(Pass&& o) noexcept
        : gate_(std::exchange(o.gate_, nullptr)),
          pack_(std::move(o.pack_)),
          status_(std::move(o.status_)) {}
    Pass& operator=(Pass&&) = delete;
    ~Pass();
    // Ok: serve the request. Else why not (the connection's pack moved off this node).
    const Status& status() const { return status_; }
    // The request leaves this node's disk for another server: it no longer counts in the drain
    // (see the file comment). Nothing when it was not counted.
    void uncount();

   private:
    friend class ReconfGate;
    Pass(ReconfGate* gate, std::string pack, Status status)
        : gate_(gate), pack_(std::move(pack)), status_(std::move(status)) {}
    ReconfGate* gate_;  // set when the request is counted
    std::string pack_;
    Status status_;
  };

  // What a connection to `pack` notes when it opens, for enter(): the generation, and where it
  // serves the pack from (placement_of its entry; "" for a forwarded pack).
  uint64_t generation(const std::string& pack) const;
  static std::string placement_of(const PackEntry& pack);
  // Waits while a reconfiguration holds `pack` (at most to the intent's deadline), then lets the
  // request through. `counted`: a request this node serves from its own disk, which a
  // reconfiguration drains. A counted connection is refused when a reconfiguration since
  // `generation` moved the pack and the node serves it now from elsewhere than `placement` (or
  // not at all): only a reconfiguration makes the gate look, so the check costs nothing else.
  Pass enter(const std::string& pack, uint64_t generation, const std::string& placement,
             bool counted);

  // Requests held now, for tests: the packs held and the requests waiting.
  size_t held_packs() const;

 private:
  using Clock = std::chrono::steady_clock;
  // Where this node serves a pack from: backing, offset, size ("" when it does not).
  using Placement = std::string;
  struct Intent {
    cluster::ReconfIntent record;
    int64_t lease = 0;
    Clock::time_point deadline;
    Clock::time_point since;
    std::map<std::string, Placement> before;
    bool deleted = false;  // seen going; the worker resumes its packs
  };
  struct PackState {
    int holds = 0;            // intents holding it
    int64_t in_flight = 0;    // counted requests being served
    uint64_t generation = 0;  // one more each time a reconfiguration moves it off this node
    Clock::time_point until;  // the latest deadline of the intents holding it
  };
  struct Event {
    bool put = false;
    cluster::KeyValue kv;
  };

  explicit ReconfGate(Options options);
  void start_watch(int64_t from_revision);
  void worker();
  void begin(const cluster::KeyValue& kv);                   // worker: an intent seen
  void end(const std::string& key, const std::string& why);  // worker: its packs resume
  Placement placement(const std::string& pack) const;
  void leave(const std::string& pack);

  Options options_;
  std::unique_ptr<cluster::EtcdClient> etcd_;
  std::unique_ptr<cluster::EtcdWatch> watch_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // requests waiting, the drain, the worker
  bool stopping_ = false;
  bool restart_watch_ = false;
  bool watch_down_ = false;
  std::deque<Event> events_;
  std::map<std::string, Intent> intents_;  // by key
  std::map<std::string, PackState, std::less<>> packs_;
  std::thread thread_;
};

}  // namespace vvm::plugin
