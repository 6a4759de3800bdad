// cluster/etcd_http.h: what the etcd client and its watches share inside client/cluster/: one
// HTTP/1.1 connection to one etcd endpoint with a deadline on every step (Boost.Beast), base64,
// and the reading of the gateway's JSON (int64 fields come as strings, keys and values as base64).
// Not for use outside client/cluster/: the public types are in etcd_client.h and etcd_watch.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/etcd_client.h"
#include "common/status.h"

namespace vvm::cluster {

using Json = nlohmann::json;

std::string base64_encode(std::string_view bytes);
// False on a character outside the alphabet or a bad length.
bool base64_decode(std::string_view text, std::string* out);

// The gateway's JSON is read without exceptions: the plugin reads it on its own threads, where an
// exception under nbdkit's preloaded ASan aborts the process. Each reader returns false on
// garbage and says why in *error ("field 'mod_revision': 'x' is not a number"); the caller adds
// the endpoint and the call.
//
// A gateway int64: "42" or 42; 0 when absent.
bool json_int(const Json& j, const char* key, int64_t* out, std::string* error);
// One key-value object of the gateway's JSON.
bool json_kv(const Json& j, KeyValue* kv, std::string* error);

// One connection to one endpoint, kept open between requests (HTTP keep-alive).
class HttpConnection {
 public:
  explicit HttpConnection(EtcdEndpoint endpoint);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  const EtcdEndpoint& endpoint() const { return endpoint_; }

  // What went wrong in a request, for the caller's choice of retrying elsewhere.
  enum class Failure {
    kNone,
    kConnect,    // no connection: nothing was sent
    kNotSent,    // the request could not be written whole: etcd cannot have acted on it
    kAfterSend,  // sent whole, no (whole) answer: etcd may or may not have acted on it
  };

  // POSTs `body` (JSON) to `target` and returns the body of the answer, whatever its HTTP status
  // (in *http_status). Connects first when not connected, by `connect_deadline`; everything by
  // `deadline`.
  Result<std::string> post(std::string_view target, const std::string& body,
                           std::chrono::steady_clock::time_point connect_deadline,
                           std::chrono::steady_clock::time_point deadline, int* http_status,
                           Failure* failure);

  // For a streamed answer (a watch): POSTs `body`, then hands each line of the answer's body to
  // `on_line` as it arrives, until `on_line` returns false, the server ends the answer, or
  // cancel() is called. Only the connecting and the request are bounded by `connect_deadline`;
  // the stream may stay quiet for as long as there is nothing to say. An OK status when on_line
  // asked to stop or cancel() was called.
  Status stream(std::string_view target, const std::string& body,
                std::chrono::steady_clock::time_point connect_deadline,
                const std::function<bool(std::string_view line)>& on_line);
  // Thread-safe: ends stream() (or a post) now, for good: stream() returns OK.
  void cancel();
  // Thread-safe: breaks the connection under stream() (or a post) now, which then fails as on a
  // lost connection; the connection may be used again.
  void abort();

  void close();

  struct Impl;  // the Beast stream and its io_context, in the .cc

 private:
  EtcdEndpoint endpoint_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vvm::cluster
