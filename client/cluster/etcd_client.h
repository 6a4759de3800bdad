// cluster/etcd_client.h: a client of etcd v3, the cluster's database, over etcd's JSON gateway
// (HTTP/1.1 POSTs to /v3/kv/range, /v3/kv/put, /v3/kv/deleterange, /v3/kv/txn, /v3/lease/*).
//
// Debian packs no C++ etcd client. The gateway needs nothing but HTTP and JSON (Boost.Beast and
// nlohmann-json), which is what Vitastor, a C++ block store on etcd, does too; the README's
// "Cluster" section gives the reasons and the latencies measured.
//
// One EtcdClient holds one keep-alive connection, used by one call at a time (calls from several
// threads are serialized). Every call has a deadline (EtcdOptions::timeout). When an endpoint
// cannot be reached, the call goes on to the next one; once a request has been sent, a failure is
// returned rather than sent again (a transaction might have been applied) and the next call
// starts at the next endpoint. Errors name the endpoint, the call and the reason:
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

// A condition of a transaction: the key's field compared with a value.
struct Compare {
  enum class Target { kVersion, kCreateRevision, kModRevision, kValue };
  enum class Op { kEqual, kNotEqual, kGreater, kLess };
  std::string key;
  Target target = Target::kCreateRevision;
  Op op = Op::kEqual;
  int64_t number = 0;  // for the revisions and the version
  std::string value;   // for kValue

  // The common ones: the key does not exist; the key is as it was read (`mod_revision`).
  static Compare absent(std::string key) {
    return {std::move(key), Target::kCreateRevision, Op::kEqual, 0, {}};
  }
  static Compare unchanged(std::string key, int64_t mod_revision) {
    return {std::move(key), Target::kModRevision, Op::kEqual, mod_revision, {}};
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
  Result<TxnResult> txn(const Txn& txn);

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
  // answer. For the benchmark and the tests.
  Result<std::string> call(std::string_view path, const std::string& body);

 private:
  EtcdClient(EtcdOptions options, std::vector<EtcdEndpoint> endpoints);

  EtcdOptions options_;
  std::vector<EtcdEndpoint> endpoints_;
  mutable std::mutex mu_;  // one call at a time on the connection
  size_t current_ = 0;     // index in endpoints_
  std::unique_ptr<HttpConnection> connection_;
};

}  // namespace vvm::cluster
