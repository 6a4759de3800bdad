// cluster/etcd_watch.h: a watch on a key or a range of keys in etcd: every change from a start
// revision on, delivered as etcd streams it (POST /v3/watch, a chunked answer of one JSON message
// a line), not by polling.
//
// The watch runs on a thread of its own, with its own connection. When the connection is lost it
// connects again (to the next endpoint) and resumes after the last revision it delivered, so no
// change is missed and none is delivered twice; each loss is reported to on_error and the watch
// carries on. A stream that is merely quiet cannot be told from one whose member has stopped
// (SIGSTOP, a hung host: the connection stays up and nothing comes): with several endpoints, a
// second thread reads a key from the watch's member every second (kCheckInterval), and when that
// read gets no answer within the attempt timeout (EtcdOptions::attempt_timeout), the watch drops
// the member and resumes on the next. If the revision to resume from has been compacted away, etcd
// cannot replay the changes: on_error gets a WatchError with compact_revision set and the watch
// ends; its owner reads the range again and starts a new watch from that read's revision + 1.
//
//   auto w = EtcdWatch::start(options, {.key = "/vvm/pack/", .range_end = prefix_end("/vvm/pack/"),
//                                       .start_revision = read.revision + 1},
//                             [](const WatchBatch& b) { ... }, [](const WatchError& e) { ... });
//   (*w)->wait_created(5s);   // the watch is in place: changes from now on will be seen
//   ...
//   (*w)->stop();             // also done by the destructor
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/etcd_client.h"
#include "common/status.h"

namespace vvm::cluster {

struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;  // for a delete: the key and its mod_revision (the delete's revision) only
};

// The events of one revision or a few, in revision order. A batch without events says that the
// watch is in place (again): sent once etcd confirms it, at the start and after each reconnection.
struct WatchBatch {
  int64_t revision = 0;  // the store's revision when etcd sent them
  std::vector<WatchEvent> events;
};

struct WatchError {
  Status status;
  // Not 0: the watch ended because etcd compacted the history up to this revision.
  int64_t compact_revision = 0;
};

struct WatchSpec {
  std::string key;
  std::string range_end;       // "" for the one key; prefix_end(key) for a prefix
  int64_t start_revision = 0;  // 0: changes after the watch is created
};

class EtcdWatch {
 public:
  using OnEvents = std::function<void(const WatchBatch&)>;
  using OnError = std::function<void(const WatchError&)>;

  // Starts the watch thread. The callbacks run on that thread, one at a time; they must not call
  // stop() (nor destroy the watch).
  static Result<std::unique_ptr<EtcdWatch>> start(const EtcdOptions& options, WatchSpec spec,
                                                  OnEvents on_events, OnError on_error);
  ~EtcdWatch();  // stop()
  EtcdWatch(const EtcdWatch&) = delete;
  EtcdWatch& operator=(const EtcdWatch&) = delete;

  // Waits until etcd has confirmed the watch (created) on some endpoint; Timeout if it has not
  // within `timeout`, with the last error seen.
  Status wait_created(std::chrono::milliseconds timeout);
  // Ends the watch and joins its thread; no callback runs after it returns.
  void stop();
  // The revision the watch would resume from (the last delivered + 1).
  int64_t next_revision() const;

  // How often the member a watch streams from is checked, with several endpoints.
  static constexpr std::chrono::milliseconds kCheckInterval{1000};

 private:
  EtcdWatch(EtcdOptions options, std::vector<EtcdEndpoint> endpoints, WatchSpec spec,
            OnEvents on_events, OnError on_error);
  void run();
  // The second thread: checks that the member of the stream answers (the file comment).
  void check_loop();
  // Handles one line of the stream; false when the watch must end (compaction, cancel).
  bool handle_line(std::string_view line, const std::string& endpoint);

  EtcdOptions options_;
  std::vector<EtcdEndpoint> endpoints_;
  WatchSpec spec_;
  OnEvents on_events_;
  OnError on_error_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool created_ = false;
  bool ended_ = false;  // compacted or canceled by etcd: the thread has stopped trying
  Status last_error_;
  int64_t next_revision_ = 0;
  HttpConnection* active_ = nullptr;   // the connection being read, for stop() to cancel
  size_t active_index_ = 0;            // its endpoint
  uint64_t streams_ = 0;               // streams started: which one a check was about
  Status dropped_;                     // why check_loop() broke the current stream
  HttpConnection* probing_ = nullptr;  // check_loop()'s read under way, for stop() to cancel

  std::thread thread_;
  std::thread checker_;
};

}  // namespace vvm::cluster
