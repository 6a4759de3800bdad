// cluster/etcd_client.cc: the etcd v3 calls (etcd_client.h) as JSON over the gateway.
#include "cluster/etcd_client.h"

#include <fmt/core.h>

#include "cluster/etcd_http.h"

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
    : options_(std::move(options)), endpoints_(std::move(endpoints)) {}

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
  std::lock_guard lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  std::string refused;  // why each endpoint could not be reached
  bool stale_retried = false;
  for (size_t tried = 0; tried < endpoints_.size();) {
    if (!connection_) connection_ = std::make_unique<HttpConnection>(endpoints_[current_]);
    const std::string endpoint = connection_->endpoint().text();
    int http_status = 0;
    HttpConnection::Failure failure = HttpConnection::Failure::kNone;
    auto answer = connection_->post(path, body, deadline, &http_status, &failure);
    if (answer.ok()) {
      if (http_status == 200) return answer;
      // The gateway's error: {"error": "...", "message": "...", "code": N}.
      Json j = Json::parse(*answer, nullptr, false);
      if (j.is_object() && j.contains("message") && j["message"].is_string()) {
        int64_t code = 0;
        std::string ignored;  // a code that does not read is an unknown one
        (void)json_int(j, "code", &code, &ignored);
        return Status(grpc_code(code), fmt::format("etcd {}: {}: {}", endpoint, path,
                                                   j["message"].get<std::string>()));
      }
      return Status::ProtocolError(fmt::format("etcd {}: {}: HTTP {}: {}", endpoint, path,
                                               http_status, answer->substr(0, 200)));
    }
    if (failure == HttpConnection::Failure::kStale && !stale_retried) {
      stale_retried = true;  // the server closed the kept connection: once more, on a new one
      continue;
    }
    // The next call (or the next try) goes to the next endpoint.
    connection_.reset();
    current_ = (current_ + 1) % endpoints_.size();
    ++tried;
    if (failure != HttpConnection::Failure::kConnect) return answer.status();
    refused += (refused.empty() ? "" : "; ") + answer.status().message();
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  if (endpoints_.size() == 1) return Status::Unavailable(refused);
  return Status::Unavailable(fmt::format("no etcd endpoint answered: {}", refused));
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
  auto answer = call(kPath, range_request(key, range_end).dump());
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

Result<int64_t> EtcdClient::put(const std::string& key, const std::string& value, int64_t lease) {
  constexpr std::string_view kPath = "/v3/kv/put";
  auto answer = call(kPath, put_request(key, value, lease).dump());
  return decode_answer<int64_t>(answer, kPath, current_endpoint(), header_revision);
}

Result<int64_t> EtcdClient::erase(const std::string& key, const std::string& range_end) {
  constexpr std::string_view kPath = "/v3/kv/deleterange";
  auto answer = call(kPath, range_request(key, range_end).dump());
  return decode_answer<int64_t>(
      answer, kPath, current_endpoint(),
      [](const Json& j, int64_t* deleted) { return read_int(j, "deleted", deleted); });
}

Result<TxnResult> EtcdClient::txn(const Txn& txn) {
  constexpr std::string_view kPath = "/v3/kv/txn";
  Json compares = Json::array();
  for (const auto& c : txn.compares) {
    Json jc = {{"key", base64_encode(c.key)}};
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
  auto answer = call(kPath, body.dump());
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

Result<Lease> EtcdClient::lease_grant(int64_t ttl_seconds) {
  constexpr std::string_view kPath = "/v3/lease/grant";
  Json body = {{"TTL", std::to_string(ttl_seconds)}};
  auto answer = call(kPath, body.dump());
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
  auto answer = call(kPath, body.dump());
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
  auto answer = call(kPath, body.dump());
  return decode_answer<int64_t>(answer, kPath, current_endpoint(), [](const Json& j, int64_t* ttl) {
    return read_int(j, "TTL", ttl);
  });
}

Status EtcdClient::lease_revoke(int64_t id) {
  constexpr std::string_view kPath = "/v3/lease/revoke";
  Json body = {{"ID", std::to_string(id)}};
  return call(kPath, body.dump()).status();
}

}  // namespace vvm::cluster
