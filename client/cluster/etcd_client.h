// cluster/etcd_client.h: a client of etcd v3, the cluster's database, over etcd's JSON gateway
// (HTTP/1.1 POSTs to /v3/kv/range, /v3/kv/put, /v3/kv/deleterange, /v3/kv/txn, /v3/lease/*).
//
// Debian packs no C++ etcd client. The gateway needs nothing but HTTP and JSON (Boost.Beast and
// nlohmann-json), which is what Vitastor, a C++ block store on etcd, does too; the README's
// "Cluster" section gives the reasons and the latencies measured.
//
// One EtcdClient holds one keep-alive connection, used by one call at a time (calls from several
// threads are serialized). Every call has a deadline (EtcdOptions::timeout), and with several
// endpoints each attempt on one of them has a shorter one (attempt_timeout, connecting within
// connect_timeout): a member that died, stopped (SIGSTOP: the kernel still accepts connections,
// nothing answers) or lost its leader costs one attempt, and the call goes on to the next
// endpoint. What may be sent again after a failure depends on what the request does:
//   - reads (range, a lease's time to live), lease renewals, and requests whose repetition
//     leaves etcd as one would (put, delete, lease grant and revoke, a transaction without
//     compares): sent again, to the next endpoint, until one answers or the deadline passes;
//   - a transaction with compares, sent whole but not answered (the member died with it, or
//     etcd answered "request timed out"): its outcome is unknown, and it is checked rather than
//     sent blindly again (txn() says how; txn_at_most_once(), txn_creates_only() and
//     txn_effect_seen() decide).
// Each endpoint that fails is logged once (until it answers again), naming it and the reason;
// the next call starts at the endpoint that answered last. Errors name the endpoint, the call and
// the reason:
//   "etcd 127.0.0.1:2379: /v3/kv/put: connection refused"
//
// Keys and values are bytes (std::string); the base64 of the gateway's JSON stays inside.
//
//   EtcdClient etcd({.endpoints = {"127.0.0.1:2379"}});
//   auto rev = etcd.put("/vvm/pack/a", "{...}");
//   auto kv = etcd.get("/vvm/pack/a");          // Result<std::optional<KeyValue>>
//   auto all = etcd.range_prefix("/vvm/pack/"); // every key under the prefix, with the revision
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace vvm::cluster {

// Where etcd is and how long a call may take.
struct EtcdOptions {
  // "HOST:PORT" or "http://HOST:PORT", tried in order; at least one.
  std::vector<std::string> endpoints;
  std::chrono::milliseconds timeout{5000};  // each call, connecting included
  // With several endpoints: one attempt on one endpoint, and its connecting. A healthy etcd
  // answers in milliseconds; one that lost its leader takes an election (about a second with
  // etcd's defaults) to answer again, and that is better spent asking another member. With one
  // endpoint an attempt may take the whole timeout: there is nowhere else to go.
  std::chrono::milliseconds attempt_timeout{1000};
  std::chrono::milliseconds connect_timeout{500};
};

// An endpoint as the client uses it: "127.0.0.1:2379" from "http://127.0.0.1:2379". An https://
// endpoint, a missing port or a bad one is an error that names the text.
struct EtcdEndpoint {
  std::string host;
  std::string port;
  std::string text() const { return host + ":" + port; }
  static Result<EtcdEndpoint> parse(std::string_view text);
};

// One key as etcd keeps it.
struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;  // the revision that created it (0: no such key)
  int64_t mod_revision = 0;     // the revision of its last change
  int64_t version = 0;          // changes since it was created, 1 for a new key
  int64_t lease = 0;            // the lease it is bound to, 0 for none
};

// What a range read returns: the keys, and the store's revision when they were read (a watch from
// revision + 1 misses nothing after them).
struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;
};

// The end of the range of every key that starts with `prefix` (etcd's range_end): the prefix with
// its last byte incremented.
std::string prefix_end(std::string_view prefix);

// A condition of a transaction: the key's field compared with a value. With a range_end, the
// condition is on every key of the range [key, range_end) (etcd 3.3 and later): it holds when
// every key there satisfies it, and, for an empty range, when a key that does not exist would
// (create_revision, mod_revision and version 0; never for a value). So "create_revision = 0" over
// a range says that the range is empty.
struct Compare {
  enum class Target { kVersion, kCreateRevision, kModRevision, kValue };
  enum class Op { kEqual, kNotEqual, kGreater, kLess };
  std::string key;
  Target target = Target::kCreateRevision;
  Op op = Op::kEqual;
  int64_t number = 0;     // for the revisions and the version
  std::string value;      // for kValue
  std::string range_end;  // "" for the one key

  // The common ones: the key does not exist; the key is as it was read (`mod_revision`); no key
  // in [key, range_end).
  static Compare absent(std::string key) {
    return {std::move(key), Target::kCreateRevision, Op::kEqual, 0, {}, {}};
  }
  static Compare unchanged(std::string key, int64_t mod_revision) {
    return {std::move(key), Target::kModRevision, Op::kEqual, mod_revision, {}, {}};
  }
  static Compare none_in(std::string key, std::string range_end) {
    return {std::move(key), Target::kCreateRevision, Op::kEqual, 0, {}, std::move(range_end)};
  }
};

// One operation of a transaction's branch: a put, a delete or a read of a key or a range.
struct TxnOp {
  enum class Kind { kPut, kDelete, kRange };
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;      // kPut
  int64_t lease = 0;      // kPut: bound to this lease when not 0
  std::string range_end;  // kDelete, kRange: "" for the one key

  static TxnOp put(std::string key, std::string value, int64_t lease = 0) {
    return {Kind::kPut, std::move(key), std::move(value), lease, {}};
  }
  static TxnOp erase(std::string key, std::string range_end = {}) {
    return {Kind::kDelete, std::move(key), {}, 0, std::move(range_end)};
  }
  static TxnOp range(std::string key, std::string range_end = {}) {
    return {Kind::kRange, std::move(key), {}, 0, std::move(range_end)};
  }
};

// If every compare holds, the success ops run, else the failure ops, all at one revision.
struct Txn {
  std::vector<Compare> compares;
  std::vector<TxnOp> success;
  std::vector<TxnOp> failure;
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;
  // One per op of the branch that ran, in order: what a kRange op read (empty for the others).
  std::vector<std::vector<KeyValue>> ranges;
};

// Whether the keys a transaction creates are its caller's alone (txn()): kOwn when every key it
// requires absent and puts is one that nobody else deletes while the caller waits for the answer
// (a name made of a random id, a key bound to the caller's own new lease). Then, once created,
// such a key cannot be absent again, and the compare fails for good, as a revision's does.
enum class TxnKeys { kShared, kOwn };

// The rules that make a transaction safe to check after an unknown outcome (txn()):
//
// True when `txn` can take effect at most once however often it is sent: a compare of it fails
// for good once its success branch has run. That is a compare of a key's mod_revision with a
// revision R > 0, for a key the success branch writes (puts or deletes): once written at
// revision M > R, the key's mod_revision is M or later (or 0 once deleted) and never R again. Or
// a compare of a key's create_revision with C > 0, for a key the success branch deletes: from
// then on the key is absent (0) or created anew (later than C). A compare that a key is absent
// (create_revision 0), a version or a value can hold again after someone else's change, so it
// does not count; nor does a transaction whose success branch reads (what it read at the
// revision it ran at cannot be read again). With kOwn keys, a compare that a key is absent
// (create_revision 0) for a key the success branch puts counts too. A compare over a range says
// nothing of one key, and does not count.
bool txn_at_most_once(const Txn& txn, TxnKeys keys = TxnKeys::kShared);
// True when `txn` is a create-if-absent: its success branch only puts, each key it puts required
// absent by an equality compare of that one key (create_revision 0 or version 0). Sent twice, the
// second copy fails on the key the first created (and a read of it shows the caller's value and
// lease) or, had someone deleted the key in between, writes the very bytes again: what applying it
// once leaves. So it may be sent again, as one that takes effect at most once is.
bool txn_creates_only(const Txn& txn);
// Whether `read`, etcd's keys read back after `txn` was sent (for each op of the success branch,
// in order, the keys of its key or range: empty for a range op), show its success branch's
// effect: every put's key holds its value, bound to its lease, all of them at one mod_revision,
// and every deleted key or range is empty. When they do, *revision is that mod_revision (or
// `read_revision` for a branch that only deletes).
bool txn_effect_seen(const Txn& txn, const std::vector<std::vector<KeyValue>>& read,
                     int64_t read_revision, int64_t* revision);

struct Lease {
  int64_t id = 0;
  int64_t ttl = 0;  // seconds, as etcd granted it
};

class HttpConnection;

class EtcdClient {
 public:
  // Checks the options (endpoints, timeout); connects at the first call.
  static Result<std::unique_ptr<EtcdClient>> create(EtcdOptions options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  const EtcdOptions& options() const { return options_; }

  // The key, or nullopt when there is none.
  Result<std::optional<KeyValue>> get(const std::string& key);
  // Keys from `key` up to `range_end` (exclusive), in key order; range_prefix: those that start
  // with `prefix`.
  Result<RangeResult> range(const std::string& key, const std::string& range_end);
  Result<RangeResult> range_prefix(const std::string& prefix) {
    return range(prefix, prefix_end(prefix));
  }
  // Writes the key (bound to `lease` when not 0); the revision of the write.
  Result<int64_t> put(const std::string& key, const std::string& value, int64_t lease = 0);
  // Deletes the key, or the keys up to `range_end`; how many there were.
  Result<int64_t> erase(const std::string& key, const std::string& range_end = {});
  // A transaction whose request was sent but not answered is checked, not sent blindly again
  // (etcd_client.cc, above txn(), says how and why that is safe).
  Result<TxnResult> txn(const Txn& txn, TxnKeys keys = TxnKeys::kShared);

  // Leases: a key bound to one is deleted when the lease expires or is revoked.
  Result<Lease> lease_grant(int64_t ttl_seconds);
  // Renews the lease to its full TTL; the TTL it now has, 0 when the lease has expired (or never
  // existed).
  Result<int64_t> lease_keepalive(int64_t id);
  // Seconds left before the lease expires; -1 when it has expired (or never existed).
  Result<int64_t> lease_time_to_live(int64_t id);
  Status lease_revoke(int64_t id);

  // The endpoint the next call goes to first ("127.0.0.1:2379").
  std::string current_endpoint() const;

  // The raw gateway call that the methods above make: POST `path` with the JSON `body`, the JSON
  // answer; not sent again once sent whole. For the benchmark and the tests.
  Result<std::string> call(std::string_view path, const std::string& body);

 private:
  using Clock = std::chrono::steady_clock;
  // Whether a request sent whole but not answered may be sent again (the file comment).
  enum class Repeat { kNo, kYes };
  EtcdClient(EtcdOptions options, std::vector<EtcdEndpoint> endpoints);
  // POSTs until an endpoint answers, as `repeat` allows, by `deadline`. *unknown (when given)
  // is set when the request was sent whole and not answered, or etcd said that it timed out:
  // it may or may not have been applied.
  Result<std::string> call(std::string_view path, const std::string& body, Repeat repeat,
                           Clock::time_point deadline, bool* unknown);
  // An endpoint failed: logged when it had worked until then; the next attempt goes to the next.
  void failed_over(const Status& why);
  // POSTs a request that may be sent again, by the call's timeout.
  Result<std::string> repeatable(std::string_view path, const std::string& body) {
    return call(path, body, Repeat::kYes, Clock::now() + options_.timeout, nullptr);
  }
  // A transaction's answer, whole.
  Result<TxnResult> txn_call(const Txn& txn, Repeat repeat, Clock::time_point deadline,
                             bool* unknown);

  EtcdOptions options_;
  std::vector<EtcdEndpoint> endpoints_;
  mutable std::mutex mu_;  // one call at a time on the connection
  size_t current_ = 0;     // index in endpoints_
  std::unique_ptr<HttpConnection> connection_;
  std::vector<bool> failing_;  // by endpoint: failed last time (logged), not answered since
};

}  // namespace vvm::cluster
