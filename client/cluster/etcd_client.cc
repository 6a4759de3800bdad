// cluster/etcd_client.cc: the etcd v3 calls (etcd_client.h) as JSON over the gateway.
#include "cluster/etcd_client.h"

#include <fmt/core.h>

#include <algorithm>
#include <map>
#include <thread>

#include "cluster/etcd_http.h"
#include "common/log.h"

namespace vvm::cluster {

Result<EtcdEndpoint> EtcdEndpoint::parse(std::string_view text) {
  std::string_view rest = text;
  if (rest.starts_with("https://")) {
    return Status::InvalidArgument(
        fmt::format("etcd endpoint '{}': https is not supported yet (use http://HOST:PORT)", text));
  }
  if (rest.starts_with("http://")) rest.remove_prefix(7);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  size_t colon = rest.rfind(':');
  if (rest.empty() || colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size()) {
    return Status::InvalidArgument(
        fmt::format("etcd endpoint '{}' is not HOST:PORT or http://HOST:PORT", text));
  }
  EtcdEndpoint ep;
  ep.host = std::string(rest.substr(0, colon));
  ep.port = std::string(rest.substr(colon + 1));
  if (ep.host.size() > 2 && ep.host.front() == '[' && ep.host.back() == ']') {
    ep.host = ep.host.substr(1, ep.host.size() - 2);  // [::1]
  }
  unsigned port = 0;
  for (char c : ep.port) {
    if (c < '0' || c > '9' || port > 65535) {
      return Status::InvalidArgument(
          fmt::format("etcd endpoint '{}': '{}' is not a port", text, ep.port));
    }
    port = port * 10 + unsigned(c - '0');
  }
  if (port == 0 || port > 65535) {
    return Status::InvalidArgument(
        fmt::format("etcd endpoint '{}': '{}' is not a port", text, ep.port));
  }
  if (ep.host.find_first_of("/ \t") != std::string::npos) {
    return Status::InvalidArgument(
        fmt::format("etcd endpoint '{}': '{}' is not a host", text, ep.host));
  }
  return ep;
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key: etcd's "\0" range end
}

Result<std::unique_ptr<EtcdClient>> EtcdClient::create(EtcdOptions options) {
  if (options.endpoints.empty()) return Status::InvalidArgument("no etcd endpoint given");
  if (options.timeout.count() <= 0) return Status::InvalidArgument("etcd timeout must be > 0");
  std::vector<EtcdEndpoint> endpoints;
  for (const auto& text : options.endpoints) {
    auto ep = EtcdEndpoint::parse(text);
    if (!ep.ok()) return ep.status();
    endpoints.push_back(*ep);
  }
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(options), std::move(endpoints)));
}

EtcdClient::EtcdClient(EtcdOptions options, std::vector<EtcdEndpoint> endpoints)
    : options_(std::move(options)),
      endpoints_(std::move(endpoints)),
      failing_(endpoints_.size(), false) {}

EtcdClient::~EtcdClient() = default;

std::string EtcdClient::current_endpoint() const {
  std::lock_guard lock(mu_);
  return endpoints_[current_].text();
}

namespace {

// gRPC's status codes, which the gateway puts in its error answers, as vvm's.
Code grpc_code(int64_t code) {
  switch (code) {
    case 3: return Code::kInvalidArgument;   // INVALID_ARGUMENT
    case 5: return Code::kNotFound;          // NOT_FOUND (a lease, mostly)
    case 6: return Code::kAlreadyExists;     // ALREADY_EXISTS
    case 4: return Code::kTimeout;           // DEADLINE_EXCEEDED
    case 14: return Code::kUnavailable;      // UNAVAILABLE (no leader, say)
    case 8: return Code::kNoSpace;           // RESOURCE_EXHAUSTED (the quota)
    case 7: return Code::kPermissionDenied;  // PERMISSION_DENIED
    case 11: return Code::kInvalidArgument;  // OUT_OF_RANGE (a compacted revision)
    default: return Code::kInternal;
  }
}

}  // namespace

Result<std::string> EtcdClient::call(std::string_view path, const std::string& body) {
  return call(path, body, Repeat::kNo, Clock::now() + options_.timeout, nullptr);
}

void EtcdClient::failed_over(const Status& why) {
  connection_.reset();
  const size_t next = (current_ + 1) % endpoints_.size();
  // With one endpoint the error returned says it all; with several, the log says which member
  // failed while another answered, once until it answers again.
  if (endpoints_.size() > 1 && !failing_[current_]) {
    // The message names the endpoint and, once connected, the call.
    log::warning("{}; trying etcd {}", why.message(), endpoints_[next].text());
  }
  failing_[current_] = true;
  current_ = next;
}

Result<std::string> EtcdClient::call(std::string_view path, const std::string& body, Repeat repeat,
                                     Clock::time_point deadline, bool* unknown) {
  std::lock_guard lock(mu_);
  if (unknown != nullptr) *unknown = false;
  const bool several = endpoints_.size() > 1;
  std::map<size_t, std::string> failures;  // the last failure of each endpoint, for the error
  Status last;
  size_t refused_in_row = 0;  // endpoints in a row that could not be connected to
  auto pause = std::chrono::milliseconds(50);
  for (size_t attempt = 0;; ++attempt) {
    auto now = Clock::now();
    if (attempt > 0 && now >= deadline) break;
    if (!connection_) connection_ = std::make_unique<HttpConnection>(endpoints_[current_]);
    const size_t index = current_;
    const std::string endpoint = connection_->endpoint().text();
    const auto attempt_deadline =
        several ? std::min(deadline, now + options_.attempt_timeout) : deadline;
    const auto connect_deadline =
        several ? std::min(attempt_deadline, now + options_.connect_timeout) : deadline;
    int http_status = 0;
    HttpConnection::Failure failure = HttpConnection::Failure::kNone;
    auto answer =
        connection_->post(path, body, connect_deadline, attempt_deadline, &http_status, &failure);
    Status why;
    bool maybe_applied = false;  // sent whole, and not known to have been refused
    if (answer.ok()) {
      if (http_status == 200) {
        if (failing_[index] && several) log::info("etcd {} answers again ({})", endpoint, path);
        failing_[index] = false;
        return answer;
      }
      // The gateway's error: {"error": "...", "message": "...", "code": N}.
      Json j = Json::parse(*answer, nullptr, false);
      if (!j.is_object() || !j.contains("message") || !j["message"].is_string()) {
        return Status::ProtocolError(fmt::format("etcd {}: {}: HTTP {}: {}", endpoint, path,
                                                 http_status, answer->substr(0, 200)));
      }
      int64_t code = 0;
      std::string ignored;  // a code that does not read is an unknown one
      (void)json_int(j, "code", &code, &ignored);
      Status refusal(grpc_code(code), fmt::format("etcd {}: {}: {}", endpoint, path,
                                                  j["message"].get<std::string>()));
      // An answer: etcd refused the request. Only UNAVAILABLE means "not now" (no leader, the
      // leader changed, the request timed out inside etcd), which another member, or this one
      // after an election, may not say; and raft's "proposal dropped" (no leader to propose
      // to). The others would be said again anywhere.
      const std::string& message = j["message"].get_ref<const std::string&>();
      const bool not_acted_on = message.find("no leader") != std::string::npos ||
                                message.find("leader changed") != std::string::npos ||
                                message.find("proposal dropped") != std::string::npos;
      if (code != 14 && !not_acted_on) return refusal;
      why = refusal;
      // Those say that etcd did not act on the request (it had no leader to propose it to, or it
      // was a read); "request timed out" and the like say that a write was proposed and may yet
      // be applied.
      maybe_applied = !not_acted_on;
      refused_in_row = 0;
    } else {
      why = answer.status();
      refused_in_row = failure == HttpConnection::Failure::kConnect ? refused_in_row + 1 : 0;
      maybe_applied = failure == HttpConnection::Failure::kAfterSend;
    }
    failures[index] = why.message();
    last = why;
    failed_over(why);
    if (maybe_applied && repeat == Repeat::kNo) {
      if (unknown != nullptr) *unknown = true;
      return why;
    }
    if (refused_in_row >= endpoints_.size()) break;  // nothing listens anywhere: etcd is down
    // After each round of the endpoints, a pause: an election takes a few hundred milliseconds.
    if ((attempt + 1) % endpoints_.size() == 0) {
      now = Clock::now();
      if (now >= deadline) break;
      std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - now));
      pause = std::min(pause * 2, std::chrono::milliseconds(500));
    }
  }
  if (failures.size() <= 1) return last;
  std::string text;
  for (const auto& [index, message] : failures) text += (text.empty() ? "" : "; ") + message;
  return Status::Unavailable(fmt::format("no etcd endpoint answered: {}", text));
}

namespace {

// Runs `decode(json, &out)` on the JSON answer. Garbage in it (decode's ProtocolError) becomes
// an error naming the endpoint and the call; another status decode returns (an error etcd put in
// the answer) is returned as it is.
template <class T, class Decode>
Result<T> decode_answer(const Result<std::string>& answer, std::string_view path,
                        const std::string& endpoint, Decode decode) {
  if (!answer.ok()) return answer.status();
  Json j = Json::parse(*answer, nullptr, false);
  if (!j.is_object()) {
    return Status::ProtocolError(fmt::format("etcd {}: {}: the answer is not JSON: {}", endpoint,
                                             path, answer->substr(0, 200)));
  }
  T out{};
  Status s = decode(j, &out);
  if (s.ok()) return out;
  if (s.code() != Code::kProtocolError) return s;
  return Status::ProtocolError(
      fmt::format("etcd {}: {}: cannot read the answer: {}", endpoint, path, s.message()));
}

// A field of the answer as an int64, or a ProtocolError saying why not.
Status read_int(const Json& j, const char* key, int64_t* out) {
  std::string error;
  if (!json_int(j, key, out, &error)) return Status::ProtocolError(error);
  return Status::Ok();
}

Status header_revision(const Json& j, int64_t* out) {
  *out = 0;
  auto h = j.find("header");
  return h == j.end() ? Status::Ok() : read_int(*h, "revision", out);
}

Status json_kvs(const Json& j, std::vector<KeyValue>* kvs) {
  kvs->clear();
  auto it = j.find("kvs");
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return Status::ProtocolError("field 'kvs' is not an array");
  for (const auto& item : *it) {
    KeyValue kv;
    std::string error;
    if (!json_kv(item, &kv, &error)) return Status::ProtocolError(error);
    kvs->push_back(std::move(kv));
  }
  return Status::Ok();
}

Json range_request(const std::string& key, const std::string& range_end) {
  Json r = {{"key", base64_encode(key)}};
  if (!range_end.empty()) r["range_end"] = base64_encode(range_end);
  return r;
}

Json put_request(const std::string& key, const std::string& value, int64_t lease) {
  Json r = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) r["lease"] = std::to_string(lease);
  return r;
}

}  // namespace

Result<RangeResult> EtcdClient::range(const std::string& key, const std::string& range_end) {
  constexpr std::string_view kPath = "/v3/kv/range";
  auto answer = repeatable(kPath, range_request(key, range_end).dump());
  return decode_answer<RangeResult>(answer, kPath, current_endpoint(),
                                    [](const Json& j, RangeResult* r) {
                                      VVM_RETURN_IF_ERROR(json_kvs(j, &r->kvs));
                                      return header_revision(j, &r->revision);
                                    });
}

Result<std::optional<KeyValue>> EtcdClient::get(const std::string& key) {
  auto r = range(key, {});
  if (!r.ok()) return r.status();
  if (r->kvs.empty()) return std::optional<KeyValue>();
  return std::optional<KeyValue>(std::move(r->kvs.front()));
}

// A put or a delete sent again leaves etcd as the first one did: the same value (or no key) is
// there, written last by this client, which is what an unconditional write asks for.
Result<int64_t> EtcdClient::put(const std::string& key, const std::string& value, int64_t lease) {
  constexpr std::string_view kPath = "/v3/kv/put";
  auto answer = repeatable(kPath, put_request(key, value, lease).dump());
  return decode_answer<int64_t>(answer, kPath, current_endpoint(), header_revision);
}

Result<int64_t> EtcdClient::erase(const std::string& key, const std::string& range_end) {
  constexpr std::string_view kPath = "/v3/kv/deleterange";
  auto answer = repeatable(kPath, range_request(key, range_end).dump());
  return decode_answer<int64_t>(
      answer, kPath, current_endpoint(),
      [](const Json& j, int64_t* deleted) { return read_int(j, "deleted", deleted); });
}

Result<TxnResult> EtcdClient::txn_call(const Txn& txn, Repeat repeat, Clock::time_point deadline,
                                       bool* unknown) {
  constexpr std::string_view kPath = "/v3/kv/txn";
  Json compares = Json::array();
  for (const auto& c : txn.compares) {
    Json jc = {{"key", base64_encode(c.key)}};
    if (!c.range_end.empty()) jc["range_end"] = base64_encode(c.range_end);
    static constexpr const char* kResults[] = {"EQUAL", "NOT_EQUAL", "GREATER", "LESS"};
    jc["result"] = kResults[static_cast<int>(c.op)];
    switch (c.target) {
      case Compare::Target::kVersion:
        jc["target"] = "VERSION";
        jc["version"] = std::to_string(c.number);
        break;
      case Compare::Target::kCreateRevision:
        jc["target"] = "CREATE";
        jc["create_revision"] = std::to_string(c.number);
        break;
      case Compare::Target::kModRevision:
        jc["target"] = "MOD";
        jc["mod_revision"] = std::to_string(c.number);
        break;
      case Compare::Target::kValue:
        jc["target"] = "VALUE";
        jc["value"] = base64_encode(c.value);
        break;
    }
    compares.push_back(std::move(jc));
  }
  auto ops = [](const std::vector<TxnOp>& list) {
    Json out = Json::array();
    for (const auto& op : list) {
      switch (op.kind) {
        case TxnOp::Kind::kPut:
          out.push_back({{"request_put", put_request(op.key, op.value, op.lease)}});
          break;
        case TxnOp::Kind::kDelete:
          out.push_back({{"request_delete_range", range_request(op.key, op.range_end)}});
          break;
        case TxnOp::Kind::kRange:
          out.push_back({{"request_range", range_request(op.key, op.range_end)}});
          break;
      }
    }
    return out;
  };
  Json body = {{"compare", compares}, {"success", ops(txn.success)}, {"failure", ops(txn.failure)}};
  auto answer = call(kPath, body.dump(), repeat, deadline, unknown);
  return decode_answer<TxnResult>(
      answer, kPath, current_endpoint(), [](const Json& j, TxnResult* r) {
        auto ok = j.find("succeeded");
        r->succeeded = ok != j.end() && ok->is_boolean() && ok->get<bool>();
        VVM_RETURN_IF_ERROR(header_revision(j, &r->revision));
        auto it = j.find("responses");
        if (it == j.end() || it->is_null()) return Status::Ok();
        if (!it->is_array()) return Status::ProtocolError("field 'responses' is not an array");
        for (const auto& resp : *it) {
          r->ranges.emplace_back();
          if (!resp.is_object()) return Status::ProtocolError("a response is not a JSON object");
          auto range = resp.find("response_range");
          if (range != resp.end()) VVM_RETURN_IF_ERROR(json_kvs(*range, &r->ranges.back()));
        }
        return Status::Ok();
      });
}

namespace {

// Whether key `key` is in the range [op.key, op.range_end) of a delete (or is its one key).
bool deletes(const TxnOp& op, const std::string& key) {
  if (op.kind != TxnOp::Kind::kDelete) return false;
  if (op.range_end.empty()) return op.key == key;
  if (op.range_end == std::string(1, '\0')) return key >= op.key;
  return key >= op.key && key < op.range_end;
}

bool writes(const TxnOp& op, const std::string& key) {
  return (op.kind == TxnOp::Kind::kPut && op.key == key) || deletes(op, key);
}

// A read of what `op` wrote: its key, or its range.
TxnOp read_back(const TxnOp& op) { return TxnOp::range(op.key, op.range_end); }

}  // namespace

bool txn_at_most_once(const Txn& txn, TxnKeys keys) {
  for (const TxnOp& op : txn.success) {
    if (op.kind == TxnOp::Kind::kRange) return false;
  }
  for (const Compare& c : txn.compares) {
    if (c.op != Compare::Op::kEqual || !c.range_end.empty()) continue;
    if (c.number == 0 && c.target == Compare::Target::kCreateRevision && keys == TxnKeys::kOwn) {
      for (const TxnOp& op : txn.success) {
        if (op.kind == TxnOp::Kind::kPut && op.key == c.key) return true;
      }
    }
    if (c.number <= 0) continue;
    for (const TxnOp& op : txn.success) {
      if (c.target == Compare::Target::kModRevision && writes(op, c.key)) return true;
      if (c.target == Compare::Target::kCreateRevision && deletes(op, c.key)) return true;
    }
  }
  return false;
}

bool txn_creates_only(const Txn& txn) {
  if (txn.success.empty()) return false;
  for (const TxnOp& op : txn.success) {
    if (op.kind != TxnOp::Kind::kPut) return false;
    const bool required_absent =
        std::any_of(txn.compares.begin(), txn.compares.end(), [&](const Compare& c) {
          return c.key == op.key && c.range_end.empty() && c.op == Compare::Op::kEqual &&
                 c.number == 0 &&
                 (c.target == Compare::Target::kCreateRevision ||
                  c.target == Compare::Target::kVersion);
        });
    if (!required_absent) return false;
  }
  return true;
}

bool txn_effect_seen(const Txn& txn, const std::vector<std::vector<KeyValue>>& read,
                     int64_t read_revision, int64_t* revision) {
  if (read.size() != txn.success.size()) return false;
  int64_t at = 0;
  bool puts = false;
  for (size_t i = 0; i < txn.success.size(); ++i) {
    const TxnOp& op = txn.success[i];
    if (op.kind != TxnOp::Kind::kPut) continue;
    puts = true;
    if (read[i].size() != 1) return false;
    const KeyValue& kv = read[i][0];
    if (kv.key != op.key || kv.value != op.value || kv.lease != op.lease) return false;
    if (at != 0 && kv.mod_revision != at) return false;
    at = kv.mod_revision;
  }
  if (puts) {
    // Every value of the branch, written at one revision: that write was this transaction (or
    // one that wrote the very same bytes, which leaves what this one would). Its deletes are not
    // looked at: a deleted key may have been written again since.
    *revision = at;
    return true;
  }
  for (size_t i = 0; i < txn.success.size(); ++i) {
    if (txn.success[i].kind == TxnOp::Kind::kDelete && !read[i].empty()) return false;
  }
  *revision = read_revision;
  return true;
}

// A transaction whose request went out whole and got no answer (or etcd's "request timed out")
// may have been applied or not, and may even be applied later (etcd still had it in hand).
// Sending it blindly again could apply it twice: a compare that held for the first may hold
// again for the second (a key deleted and created again by someone else in between). So:
//   - a transaction without compares is an unconditional write: sent again, as put() is;
//   - one that can take effect at most once (txn_at_most_once: a compare of it fails for good
//     once it has run, whoever else writes; or, for the caller's own keys, whatever the caller
//     does not do itself) is sent again, with reads of the keys it writes added to its failure
//     branch. If the resend succeeds, the first was never applied, and now cannot be: applied
//     once. If it fails, the reads, made at the revision its compares failed at, say whether the
//     first was applied (txn_effect_seen): then the answer is that it succeeded, at the revision
//     it did; else it failed as any transaction whose compares no longer hold (someone else
//     changed its keys), and the first cannot be applied later either;
//   - a create-if-absent on keys others may create too (txn_creates_only: a node's hold on a
//     pack, packs imported) is sent again in the same way: its first copy, if applied, created
//     the keys, so the resend fails and its reads show the caller's value and lease (it was
//     ours: succeeded); if the resend succeeds, the first was not applied (or someone deleted
//     what it wrote since, and the resend wrote the same bytes again); if the reads show another
//     value, someone else created the key: it failed, as it would have without the lost answer.
//     The first copy, still in a stopped member's hands, could be applied later only while the
//     key is absent again (the caller deleted it); bound to a lease, it goes with the lease;
//   - any other is not sent again: its keys are read back, and it succeeded if they show its
//     effect; if not, the error says that the outcome is unknown (etcd may still apply it).
Result<TxnResult> EtcdClient::txn(const Txn& txn, TxnKeys keys) {
  const auto deadline = Clock::now() + options_.timeout;
  bool unknown = false;
  auto first = txn_call(txn, txn.compares.empty() ? Repeat::kYes : Repeat::kNo, deadline, &unknown);
  if (first.ok() || !unknown) return first;
  const std::string failed = first.status().message();
  auto seen = [&](const TxnResult& r, size_t from, int64_t revision) -> std::optional<TxnResult> {
    std::vector<std::vector<KeyValue>> read(r.ranges.begin() + static_cast<ptrdiff_t>(from),
                                            r.ranges.end());
    int64_t at = 0;
    if (!txn_effect_seen(txn, read, revision, &at)) return std::nullopt;
    log::warning("{}: the transaction was applied, at revision {} (read back): not applied again",
                 failed, at);
    TxnResult done;
    done.succeeded = true;
    done.revision = at;
    done.ranges.resize(txn.success.size());  // what its reads read is gone: none has any
    return done;
  };
  const bool creates_only = !txn_at_most_once(txn, keys) && txn_creates_only(txn);
  if (creates_only || txn_at_most_once(txn, keys)) {
    log::warning(
        "{}: the outcome of the transaction is unknown: sending it again ({}) with a "
        "read of its keys",
        failed,
        creates_only ? "it creates keys that must be absent: a second copy fails on "
                       "them, or writes the same bytes"
                     : "it can take effect only once");
    Txn again = txn;
    const size_t base = txn.failure.size();
    for (const TxnOp& op : txn.success) again.failure.push_back(read_back(op));
    for (;;) {
      bool again_unknown = false;
      auto r = txn_call(again, Repeat::kNo, deadline, &again_unknown);
      if (r.ok()) {
        if (r->succeeded) return r;  // the first was not applied, and now cannot be
        if (auto done = seen(*r, base, r->revision)) return *done;
        r->ranges.resize(base);  // the caller's own failure reads
        return r;
      }
      if (!again_unknown || Clock::now() >= deadline) {
        return Status(r.status().code(),
                      fmt::format("{}; its outcome is unknown, and sending it again failed: {}",
                                  failed, r.status().message()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  Txn read;
  for (const TxnOp& op : txn.success) read.success.push_back(read_back(op));
  auto r = txn_call(read, Repeat::kYes, deadline, nullptr);
  if (!r.ok()) {
    return Status(first.status().code(),
                  fmt::format("{}; its outcome is unknown, and its keys cannot be read back: {}",
                              failed, r.status().message()));
  }
  if (auto done = seen(*r, 0, r->revision)) return *done;
  return Status::Unavailable(
      fmt::format("{}; its outcome is unknown: its keys read back at revision {} do not show it "
                  "applied, and it is not sent again (it could apply twice; etcd may still apply "
                  "it)",
                  failed, r->revision));
}

Result<Lease> EtcdClient::lease_grant(int64_t ttl_seconds) {
  constexpr std::string_view kPath = "/v3/lease/grant";
  Json body = {{"TTL", std::to_string(ttl_seconds)}};
  // Granted twice, the first lease has no key bound to it and expires by itself.
  auto answer = repeatable(kPath, body.dump());
  const std::string endpoint = current_endpoint();
  auto lease = decode_answer<Lease>(answer, kPath, endpoint, [&](const Json& j, Lease* l) {
    if (auto e = j.find("error"); e != j.end() && e->is_string() && !e->empty()) {
      return Status::Unavailable(
          fmt::format("etcd {}: {}: {}", endpoint, kPath, e->get<std::string>()));
    }
    VVM_RETURN_IF_ERROR(read_int(j, "ID", &l->id));
    return read_int(j, "TTL", &l->ttl);
  });
  if (lease.ok() && lease->id == 0) {
    return Status::ProtocolError(
        fmt::format("etcd {}: {}: no lease granted", current_endpoint(), kPath));
  }
  return lease;
}

Result<int64_t> EtcdClient::lease_keepalive(int64_t id) {
  constexpr std::string_view kPath = "/v3/lease/keepalive";
  Json body = {{"ID", std::to_string(id)}};
  auto answer = repeatable(kPath, body.dump());
  // A stream of one answer: {"result": {..., "TTL": "5"}}, no TTL once the lease is gone.
  const std::string endpoint = current_endpoint();
  return decode_answer<int64_t>(answer, kPath, endpoint, [&](const Json& j, int64_t* ttl) {
    // An error inside the stream (no leader, say): {"error": {"grpc_code": 14, ...}}.
    if (auto e = j.find("error"); e != j.end()) {
      return Status::Unavailable(fmt::format("etcd {}: {}: {}", endpoint, kPath, e->dump()));
    }
    auto r = j.find("result");
    return r == j.end() ? Status::Ok() : read_int(*r, "TTL", ttl);
  });
}

Result<int64_t> EtcdClient::lease_time_to_live(int64_t id) {
  constexpr std::string_view kPath = "/v3/lease/timetolive";
  Json body = {{"ID", std::to_string(id)}};
  auto answer = repeatable(kPath, body.dump());
  return decode_answer<int64_t>(answer, kPath, current_endpoint(), [](const Json& j, int64_t* ttl) {
    return read_int(j, "TTL", ttl);
  });
}

Status EtcdClient::lease_revoke(int64_t id) {
  constexpr std::string_view kPath = "/v3/lease/revoke";
  Json body = {{"ID", std::to_string(id)}};
  // Sent again after a first revocation that was applied, it finds no lease: gone either way.
  Status s = repeatable(kPath, body.dump()).status();
  return s.code() == Code::kNotFound ? Status::Ok() : s;
}

}  // namespace vvm::cluster
