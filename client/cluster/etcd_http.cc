// cluster/etcd_http.cc: one HTTP/1.1 connection to an etcd endpoint (etcd_http.h), with
// Boost.Beast. Each step is an asynchronous operation run to completion on the connection's own
// io_context: that is how Beast bounds a step in time (the stream's timer closes the socket at
// the deadline), and how another thread can end a step at once (cancel() posts a close).
#include "cluster/etcd_http.h"

#include <fmt/core.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>

namespace vvm::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// ---- base64 (RFC 4648, with padding), as the gateway writes keys and values ----

namespace {
constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) |
                 uint8_t(bytes[i + 2]);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t n = uint32_t(uint8_t(bytes[i])) << 16;
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    uint32_t n = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

bool base64_decode(std::string_view text, std::string* out) {
  static const std::array<int8_t, 256> kValue = [] {
    std::array<int8_t, 256> v{};
    v.fill(-1);
    for (size_t i = 0; i < kAlphabet.size(); ++i) v[uint8_t(kAlphabet[i])] = int8_t(i);
    return v;
  }();
  out->clear();
  if (text.size() % 4 != 0) return false;
  out->reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int pad = 0;
    uint32_t n = 0;
    for (size_t k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        ++pad;
        n <<= 6;
        continue;
      }
      if (pad > 0) return false;  // data after padding
      int8_t v = kValue[uint8_t(c)];
      if (v < 0) return false;
      n = (n << 6) | uint32_t(v);
    }
    out->push_back(char(n >> 16));
    if (pad < 2) out->push_back(char((n >> 8) & 0xff));
    if (pad < 1) out->push_back(char(n & 0xff));
  }
  return true;
}

// ---- the gateway's JSON ----

bool json_int(const Json& j, const char* key, int64_t* out, std::string* error) {
  *out = 0;
  if (!j.is_object()) {
    *error = fmt::format("{} is not a JSON object", j.dump().substr(0, 60));
    return false;
  }
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (it->is_number_integer()) {
    *out = it->get<int64_t>();
    return true;
  }
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    const char* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(s.data(), end, *out);
    if (ec == std::errc() && ptr == end && !s.empty()) return true;
    *error = fmt::format("field '{}': '{}' is not a number", key, s.substr(0, 40));
    return false;
  }
  *error = fmt::format("field '{}': {} is not a number", key, it->dump().substr(0, 40));
  return false;
}

bool json_kv(const Json& j, KeyValue* kv, std::string* error) {
  *kv = KeyValue();
  if (!j.is_object()) {
    *error = fmt::format("a key-value {} is not a JSON object", j.dump().substr(0, 60));
    return false;
  }
  auto bytes = [&](const char* key, std::string* out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return true;
    if (!it->is_string() || !base64_decode(it->get_ref<const std::string&>(), out)) {
      *error = fmt::format("field '{}' is not base64", key);
      return false;
    }
    return true;
  };
  return bytes("key", &kv->key) && bytes("value", &kv->value) &&
         json_int(j, "create_revision", &kv->create_revision, error) &&
         json_int(j, "mod_revision", &kv->mod_revision, error) &&
         json_int(j, "version", &kv->version, error) && json_int(j, "lease", &kv->lease, error);
}

// ---- the connection ----

struct HttpConnection::Impl {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  bool connected = false;
  std::atomic<bool> cancelled{false};

  // Starts an operation with `start(handler)` and runs the io_context until it completes; its
  // error (beast::error::timeout when the stream's deadline passed first).
  template <class Start>
  beast::error_code run(Start&& start) {
    beast::error_code result = asio::error::would_block;
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }

  void close() {
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.close();
    buffer.clear();
    connected = false;
  }
};

HttpConnection::HttpConnection(EtcdEndpoint endpoint)
    : endpoint_(std::move(endpoint)), impl_(std::make_unique<Impl>()) {}

HttpConnection::~HttpConnection() { close(); }

void HttpConnection::close() { impl_->close(); }

void HttpConnection::cancel() {
  impl_->cancelled = true;
  asio::post(impl_->ioc, [im = impl_.get()] { im->stream.close(); });
}

void HttpConnection::abort() {
  asio::post(impl_->ioc, [im = impl_.get()] { im->stream.close(); });
}

namespace {

std::string reason(const beast::error_code& ec) {
  if (ec == beast::error::timeout) return "timed out";
  if (ec == http::error::end_of_stream || ec == asio::error::eof) return "connection closed";
  return ec.message();
}

}  // namespace

// Connects when not connected. The resolver runs synchronously: endpoints are addresses or names
// of the local resolver, which answers at once or not at all.
static Status connect(HttpConnection::Impl& im, const EtcdEndpoint& ep,
                      std::chrono::steady_clock::time_point deadline) {
  if (im.connected) {
    // A kept connection the server closed while it was idle is readable (its end): found out
    // now, before a request is sent on it, rather than after, when its fate would be unknown.
    pollfd p{im.stream.socket().native_handle(), POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) == 0) return Status::Ok();
    im.close();
  }
  tcp::resolver resolver(im.ioc);
  beast::error_code ec;
  auto results = resolver.resolve(ep.host, ep.port, ec);
  if (ec) {
    return Status::Unavailable(
        fmt::format("etcd {}: cannot resolve {}: {}", ep.text(), ep.host, ec.message()));
  }
  im.stream.expires_at(deadline);
  ec = im.run([&](auto handler) { im.stream.async_connect(results, handler); });
  if (ec) {
    im.close();
    return Status::Unavailable(fmt::format("etcd {}: cannot connect: {}", ep.text(), reason(ec)));
  }
  beast::error_code ignored;
  im.stream.socket().set_option(tcp::no_delay(true), ignored);
  im.stream.socket().set_option(asio::socket_base::keep_alive(true), ignored);
  im.connected = true;
  return Status::Ok();
}

static http::request<http::string_body> make_request(const EtcdEndpoint& ep,
                                                     std::string_view target,
                                                     const std::string& body) {
  http::request<http::string_body> req{http::verb::post, std::string(target), 11};
  req.set(http::field::host, ep.text());
  req.set(http::field::content_type, "application/json");
  req.keep_alive(true);
  req.body() = body;
  req.prepare_payload();
  return req;
}

Result<std::string> HttpConnection::post(std::string_view target, const std::string& body,
                                         std::chrono::steady_clock::time_point connect_deadline,
                                         std::chrono::steady_clock::time_point deadline,
                                         int* http_status, Failure* failure) {
  Impl& im = *impl_;
  *failure = Failure::kNone;
  if (Status s = connect(im, endpoint_, std::min(connect_deadline, deadline)); !s.ok()) {
    *failure = Failure::kConnect;
    return s;
  }
  auto fail = [&](const beast::error_code& ec, Failure how) -> Status {
    im.close();
    *failure = how;
    return Status(ec == beast::error::timeout ? Code::kTimeout : Code::kUnavailable,
                  fmt::format("etcd {}: {}: {}", endpoint_.text(), target, reason(ec)));
  };
  auto req = make_request(endpoint_, target, body);
  im.stream.expires_at(deadline);
  beast::error_code ec = im.run([&](auto handler) { http::async_write(im.stream, req, handler); });
  // etcd acts on a request once it has read it whole (its Content-Length): one that could not be
  // written whole was not acted on, and may be sent anywhere again.
  if (ec) return fail(ec, Failure::kNotSent);
  http::response_parser<http::string_body> parser;
  parser.body_limit(uint64_t{256} << 20);
  ec = im.run([&](auto handler) { http::async_read(im.stream, im.buffer, parser, handler); });
  // Sent, and no answer: a kept connection that the server had closed while idle, or a member
  // that died or stopped with the request, look the same from here. The caller decides.
  if (ec) return fail(ec, Failure::kAfterSend);
  auto res = parser.release();
  *http_status = static_cast<int>(res.result_int());
  if (!res.keep_alive()) im.close();
  return std::move(res.body());
}

Status HttpConnection::stream(std::string_view target, const std::string& body,
                              std::chrono::steady_clock::time_point connect_deadline,
                              const std::function<bool(std::string_view line)>& on_line) {
  Impl& im = *impl_;
  if (im.cancelled) return Status::Ok();
  VVM_RETURN_IF_ERROR(connect(im, endpoint_, connect_deadline));
  auto fail = [&](const beast::error_code& ec) -> Status {
    im.close();
    if (im.cancelled) return Status::Ok();
    return Status(ec == beast::error::timeout ? Code::kTimeout : Code::kUnavailable,
                  fmt::format("etcd {}: {}: {}", endpoint_.text(), target, reason(ec)));
  };
  auto req = make_request(endpoint_, target, body);
  im.stream.expires_at(connect_deadline);
  beast::error_code ec = im.run([&](auto handler) { http::async_write(im.stream, req, handler); });
  if (ec) return fail(ec);
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  ec =
      im.run([&](auto handler) { http::async_read_header(im.stream, im.buffer, parser, handler); });
  if (ec) return fail(ec);
  im.stream.expires_never();
  const int status = static_cast<int>(parser.get().result_int());

  std::string pending;  // a line not yet ended
  bool stop = false;
  auto feed = [&](std::string_view data) {
    pending.append(data);
    size_t start = 0;
    for (size_t nl; !stop && (nl = pending.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      if (nl > start && !on_line(std::string_view(pending).substr(start, nl - start))) {
        stop = true;
      }
    }
    pending.erase(0, start);
  };
  auto on_chunk = [&](uint64_t, beast::string_view data, beast::error_code&) -> size_t {
    if (status == 200) feed(std::string_view(data.data(), data.size()));
    return data.size();
  };
  parser.on_chunk_body(on_chunk);
  while (!parser.is_done() && !stop && !im.cancelled) {
    ec =
        im.run([&](auto handler) { http::async_read_some(im.stream, im.buffer, parser, handler); });
    if (ec) return fail(ec);
  }
  if (stop || im.cancelled) {
    im.close();  // the rest of the stream is not wanted: the connection cannot be reused
    return Status::Ok();
  }
  // An answer that was not streamed (an error, mostly) arrives whole in the body.
  std::string whole = std::move(parser.get().body());
  if (status != 200) {
    im.close();
    return Status::Unavailable(fmt::format("etcd {}: {}: HTTP {}: {}", endpoint_.text(), target,
                                           status, whole.substr(0, 200)));
  }
  feed(whole);
  if (!stop && !pending.empty()) on_line(pending);
  if (!parser.get().keep_alive()) im.close();
  return Status::Unavailable(
      fmt::format("etcd {}: {}: the server ended the stream", endpoint_.text(), target));
}

}  // namespace vvm::cluster
