// cluster/etcd_watch.cc: the watch thread (etcd_watch.h): one streamed POST /v3/watch at a time,
// resumed after the last delivered revision when the connection is lost.
#include "cluster/etcd_watch.h"

#include <fmt/core.h>

#include <algorithm>

#include "cluster/etcd_http.h"

namespace vvm::cluster {

Result<std::unique_ptr<EtcdWatch>> EtcdWatch::start(const EtcdOptions& options, WatchSpec spec,
                                                    OnEvents on_events, OnError on_error) {
  if (options.endpoints.empty()) return Status::InvalidArgument("no etcd endpoint given");
  std::vector<EtcdEndpoint> endpoints;
  for (const auto& text : options.endpoints) {
    auto ep = EtcdEndpoint::parse(text);
    if (!ep.ok()) return ep.status();
    endpoints.push_back(*ep);
  }
  std::unique_ptr<EtcdWatch> w(new EtcdWatch(options, std::move(endpoints), std::move(spec),
                                             std::move(on_events), std::move(on_error)));
  w->thread_ = std::thread([raw = w.get()] { raw->run(); });
  if (w->endpoints_.size() > 1) w->checker_ = std::thread([raw = w.get()] { raw->check_loop(); });
  return w;
}

EtcdWatch::EtcdWatch(EtcdOptions options, std::vector<EtcdEndpoint> endpoints, WatchSpec spec,
                     OnEvents on_events, OnError on_error)
    : options_(std::move(options)),
      endpoints_(std::move(endpoints)),
      spec_(std::move(spec)),
      on_events_(std::move(on_events)),
      on_error_(std::move(on_error)),
      next_revision_(spec_.start_revision) {}

EtcdWatch::~EtcdWatch() { stop(); }

void EtcdWatch::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (active_ != nullptr) active_->cancel();
    if (probing_ != nullptr) probing_->cancel();
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  if (checker_.joinable()) checker_.join();
}

Status EtcdWatch::wait_created(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (cv_.wait_for(lock, timeout, [&] { return created_ || ended_ || stopping_; }) && created_) {
    return Status::Ok();
  }
  std::string why = last_error_.ok() ? "no answer" : last_error_.message();
  return Status::Timeout(fmt::format("etcd watch on {}: not in place after {} ms: {}", spec_.key,
                                     timeout.count(), why));
}

int64_t EtcdWatch::next_revision() const {
  std::lock_guard lock(mu_);
  return next_revision_;
}

bool EtcdWatch::handle_line(std::string_view line, const std::string& endpoint) {
  // Reports a line that cannot be trusted; the watch then starts again from the last revision it
  // delivered. No exceptions on this thread (etcd_http.h says why).
  auto broken_line = [&](Code code, const std::string& why) {
    Status s = Status(code, fmt::format("etcd {}: watch on {}: {}: {}", endpoint, spec_.key, why,
                                        line.substr(0, 200)));
    {
      std::lock_guard lock(mu_);
      last_error_ = s;
    }
    if (on_error_) on_error_(WatchError{s, 0});
    return false;
  };
  Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return broken_line(Code::kUnavailable, "not a JSON object");
  if (auto e = j.find("error"); e != j.end()) {
    return broken_line(Code::kUnavailable, e->dump());  // the stream's error, as etcd says it
  }
  auto rit = j.find("result");
  if (rit == j.end() || !rit->is_object()) return broken_line(Code::kUnavailable, "no result");
  const Json& r = *rit;
  auto flag = [&](const char* key) {
    auto it = r.find(key);
    return it != r.end() && it->is_boolean() && it->get<bool>();
  };
  std::string error;
  int64_t revision = 0;
  if (auto h = r.find("header"); h != r.end() && !json_int(*h, "revision", &revision, &error)) {
    return broken_line(Code::kProtocolError, "cannot read it: " + error);
  }
  if (flag("created")) {
    {
      std::lock_guard lock(mu_);
      created_ = true;
      cv_.notify_all();
    }
    WatchBatch in_place;
    in_place.revision = revision;
    if (on_events_) on_events_(in_place);
  }
  if (flag("canceled")) {
    WatchError err;
    if (!json_int(r, "compact_revision", &err.compact_revision, &error)) {
      return broken_line(Code::kProtocolError, "cannot read it: " + error);
    }
    std::string why;
    if (auto c = r.find("cancel_reason"); c != r.end() && c->is_string())
      why = c->get<std::string>();
    err.status = Status::Unavailable(
        err.compact_revision > 0
            ? fmt::format("etcd {}: watch on {}: revision {} is compacted (history kept from {})",
                          endpoint, spec_.key, next_revision(), err.compact_revision)
            : fmt::format("etcd {}: watch on {} canceled by etcd: {}", endpoint, spec_.key,
                          why.empty() ? "no reason given" : why));
    {
      std::lock_guard lock(mu_);
      ended_ = true;
      last_error_ = err.status;
      cv_.notify_all();
    }
    if (on_error_) on_error_(err);
    return false;
  }
  auto events = r.find("events");
  if (events == r.end() || events->is_null() || events->empty()) return true;
  if (!events->is_array()) return broken_line(Code::kProtocolError, "'events' is not an array");
  WatchBatch batch;
  batch.revision = revision;
  int64_t last = 0;
  for (const auto& e : *events) {
    WatchEvent ev;
    auto kv = e.is_object() ? e.find("kv") : e.end();
    if (!e.is_object() || kv == e.end())
      return broken_line(Code::kProtocolError, "an event has no kv");
    auto type = e.find("type");
    ev.type = type != e.end() && type->is_string() && type->get<std::string>() == "DELETE"
                  ? WatchEvent::Type::kDelete
                  : WatchEvent::Type::kPut;
    if (!json_kv(*kv, &ev.kv, &error))
      return broken_line(Code::kProtocolError, "cannot read it: " + error);
    last = std::max(last, ev.kv.mod_revision);
    batch.events.push_back(std::move(ev));
  }
  {
    std::lock_guard lock(mu_);
    next_revision_ = std::max(next_revision_, last + 1);
  }
  if (on_events_) on_events_(batch);
  return true;
}

void EtcdWatch::check_loop() {
  std::unique_ptr<HttpConnection> probe;
  const Json read = {{"key", base64_encode(spec_.key)}, {"limit", 1}, {"keys_only", true}};
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_for(lock, kCheckInterval, [&] { return stopping_ || ended_; });
    if (stopping_ || ended_) return;
    if (active_ == nullptr) continue;
    const size_t index = active_index_;
    const uint64_t stream = streams_;
    if (!probe || probe->endpoint().text() != endpoints_[index].text()) {
      probe = std::make_unique<HttpConnection>(endpoints_[index]);
    }
    probing_ = probe.get();
    lock.unlock();
    // A linearizable read: a member cut off from its leader cannot answer it either, and its
    // stream would bring nothing new.
    const auto deadline = std::chrono::steady_clock::now() + options_.attempt_timeout;
    int http_status = 0;
    HttpConnection::Failure failure = HttpConnection::Failure::kNone;
    auto answer =
        probe->post("/v3/kv/range", read.dump(), deadline, deadline, &http_status, &failure);
    lock.lock();
    probing_ = nullptr;
    if (answer.ok() && http_status == 200) continue;
    if (stopping_ || ended_ || active_ == nullptr || streams_ != stream) continue;
    dropped_ = Status::Unavailable(fmt::format(
        "etcd {}: watch on {}: the member does not answer a read ({}): watching through the next "
        "endpoint",
        endpoints_[index].text(), spec_.key,
        answer.ok() ? fmt::format("HTTP {}: {}", http_status, answer->substr(0, 120))
                    : answer.status().message()));
    active_->abort();
  }
}

void EtcdWatch::run() {
  size_t index = 0;
  auto backoff = std::chrono::milliseconds(100);
  // With several endpoints, a member that does not answer is left after one attempt's time.
  const auto connect_timeout = endpoints_.size() > 1
                                   ? std::min(options_.timeout, options_.attempt_timeout)
                                   : options_.timeout;
  for (;;) {
    HttpConnection connection(endpoints_[index]);
    const std::string endpoint = endpoints_[index].text();
    Json create = {{"key", base64_encode(spec_.key)}};
    {
      std::lock_guard lock(mu_);
      if (stopping_ || ended_) return;
      active_ = &connection;
      active_index_ = index;
      ++streams_;
      dropped_ = Status::Ok();
      if (!spec_.range_end.empty()) create["range_end"] = base64_encode(spec_.range_end);
      if (next_revision_ > 0) create["start_revision"] = std::to_string(next_revision_);
    }
    Json body = {{"create_request", create}};
    bool got_some = false, broken = false;
    Status s = connection.stream("/v3/watch", body.dump(),
                                 std::chrono::steady_clock::now() + connect_timeout,
                                 [&](std::string_view line) {
                                   got_some = true;
                                   if (!handle_line(line, endpoint)) {
                                     broken = true;
                                     return false;
                                   }
                                   return true;
                                 });
    std::unique_lock lock(mu_);
    active_ = nullptr;
    if (stopping_ || ended_) return;
    if (!dropped_.ok()) s = dropped_;
    if (!s.ok()) {
      last_error_ = s;
      lock.unlock();
      if (on_error_) on_error_(WatchError{s, 0});
      lock.lock();
    }
    (void)broken;  // a garbled stream is started again, as a lost one is
    if (got_some) backoff = std::chrono::milliseconds(100);
    index = (index + 1) % endpoints_.size();
    cv_.wait_for(lock, backoff, [&] { return stopping_; });
    if (stopping_) return;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

}  // namespace vvm::cluster
