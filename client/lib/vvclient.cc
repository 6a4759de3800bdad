// vvclient.cc: libvvclient's C++ API (vvclient.h): control requests to vvmd, VV data over NBD
// through libnbd. The protocol's messages and the VV record (vvm::Vv) are used here only: what a
// caller gets is VolumeInfo, so that the library's ABI does not move with the wire or the record.
#include "lib/vvclient.h"

#include <libnbd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <thread>
#include <utility>

#include <fmt/core.h>

#include "common/config.h"
#include "common/vv.h"
#include "proto/client.h"
#include "proto/messages.h"
#include "proto/tls.h"

namespace vvm::client {

namespace {

// nbdkit's own limit for one request, and what the plugin advertises as its maximum.
constexpr uint64_t kMaxRequest = 32ull << 20;
constexpr size_t kMaxNameLength = 64;
constexpr std::chrono::milliseconds kDefaultTimeout{30'000};

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// Characters a URI may hold as they are in a path or a query value (RFC 3986's unreserved, and
// '/'); anything else in a socket path is percent-encoded.
bool uri_safe(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~' || c == '/';
}

std::string percent_encode(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (uri_safe(c)) {
      out += c;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
  }
  return out;
}

// Where vvmd is and how long to wait for it (Options' rules).
struct Control {
  Endpoint vvmd;
  std::chrono::milliseconds timeout{kDefaultTimeout};
};

Result<Control> resolve_control(const Options& options) {
  Control control;
  std::string vvmd = !options.vvmd.empty() ? options.vvmd : env("VVM_VVMD");
  const bool conf_named = !options.conf.empty() || !env("VVM_CONF").empty();
  const bool need_conf = vvmd.empty() || options.timeout.count() <= 0;
  std::optional<Config> config;
  if (need_conf) {
    const std::string path = !options.conf.empty() ? options.conf : default_config_path();
    auto loaded = load_config(path);
    if (loaded.ok()) {
      config = std::move(*loaded);
    } else if (vvmd.empty() || conf_named) {
      // Without vvmd's address the file is needed; a file the caller named must be good.
      return loaded.status();
    }
  }
  if (vvmd.empty()) {
    if (config->vvmd_listen.empty()) {
      return Status::InvalidArgument(config->path + ": [vvmd] has no listen address");
    }
    control.vvmd = config->vvmd_listen.front();
  } else {
    auto endpoint = Endpoint::parse(vvmd);
    if (!endpoint.ok()) {
      return Status::InvalidArgument("vvmd endpoint '" + vvmd +
                                     "': " + endpoint.status().message());
    }
    control.vvmd = std::move(*endpoint);
  }
  if (options.timeout.count() > 0) {
    control.timeout = options.timeout;
  } else if (config) {
    control.timeout = config->request_timeout;
  }
  return control;
}

// One request to vvmd on a connection of its own.
template <class R>
Result<typename R::Reply> ask_vvmd(const Options& options, const R& request) {
  auto control = resolve_control(options);
  if (!control.ok()) return control.status();
  auto client = rpc::Client::connect(control->vvmd, control->timeout);
  if (!client.ok()) return client.status();
  return client->call(request, control->timeout);
}

// The VV of a VvReply.
Result<Vv> vv_of(Result<rpc::VvReply> reply) {
  if (!reply.ok()) return reply.status();
  return std::move(reply->vv);
}

template <class T>
Result<T> with_errno(Result<T> result, int* err) {
  if (!result.ok() && err != nullptr) *err = error_errno(result.status().code());
  return result;
}

// What a libnbd errno means as a Status code.
Code code_of_errno(int err) {
  switch (err) {
    case EPERM:
    case EACCES: return Code::kPermissionDenied;
    case ENOSPC:
    case EFBIG: return Code::kNoSpace;
    case ETIMEDOUT: return Code::kTimeout;
    case ECONNREFUSED:
    case ECONNRESET:
    case ENOTCONN:
    case ESHUTDOWN:
    case EPIPE: return Code::kUnavailable;
    case EINVAL: return Code::kInvalidArgument;
    case ENOENT: return Code::kNotFound;
    default: return Code::kIoError;
  }
}

// One request to vvmd for the VV's record (VV_SHOW); the name is checked first.
Result<Vv> show_record(const Options& options, std::string_view name, int* err) {
  if (Status ok = check_vv_name(name); !ok.ok()) {
    if (err != nullptr) *err = EINVAL;
    return ok;
  }
  return with_errno(vv_of(ask_vvmd(options, rpc::VvShowRequest{std::string(name)})), err);
}

VolumeState volume_state(VvState state) {
  switch (state) {
    case VvState::kFinished: return VolumeState::kFinished;
    case VvState::kArchived: return VolumeState::kArchived;
    case VvState::kAny:
    case VvState::kHot: break;
  }
  return VolumeState::kHot;
}

Residency residency(CacheState cache) {
  switch (cache) {
    case CacheState::kEvicted: return Residency::kEvicted;
    case CacheState::kStaging: return Residency::kStaging;
    case CacheState::kCached: break;
  }
  return Residency::kCached;
}

VolumeInfo volume_info(const Vv& vv) {
  VolumeInfo info;
  info.name = vv.name;
  info.vv_class = vv.vv_class;
  info.client_id = vv.client_id;
  info.size = vv.size;
  info.state = volume_state(vv.state);
  info.residency = residency(vv.cache);
  info.owner = vv.owner;
  info.group = vv.group;
  info.perms = vv.perms;
  info.created = vv.created;
  info.finished = vv.finished;
  info.accessed = vv.accessed;
  for (const VvCopy& copy : vv.copies) info.copies += copy.vsn.empty() ? 0 : 1;
  return info;
}

}  // namespace

std::string_view state_name(VolumeState state) {
  switch (state) {
    case VolumeState::kHot: return "hot";
    case VolumeState::kFinished: return "finished";
    case VolumeState::kArchived: return "archived";
  }
  return "unknown";
}

std::string_view residency_name(Residency r) {
  switch (r) {
    case Residency::kCached: return "cached";
    case Residency::kEvicted: return "evicted";
    case Residency::kStaging: return "staging";
  }
  return "unknown";
}

Status check_vv_name(std::string_view vv_name) {
  if (vv_name.empty()) return Status::InvalidArgument("a VV name is needed");
  if (vv_name.size() > kMaxNameLength) {
    return Status::InvalidArgument(fmt::format("VV name '{}...': longer than {} characters",
                                               vv_name.substr(0, 16), kMaxNameLength));
  }
  for (char c : vv_name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum) {
      return Status::InvalidArgument(
          fmt::format("VV name '{}': only letters and digits (\"A0000000042\")", vv_name));
    }
  }
  return Status::Ok();
}

Result<std::string> export_uri(std::string_view base, std::string_view vv_name) {
  VVM_RETURN_IF_ERROR(check_vv_name(vv_name));
  const std::string path = "/vv/" + std::string(vv_name);
  if (base.starts_with("/")) {  // a Unix socket's path
    return "nbd+unix://" + path + "?socket=" + percent_encode(base);
  }
  const auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(fmt::format("NBD URI '{}': {}", base, why));
  };
  const size_t sep = base.find("://");
  if (sep == std::string_view::npos)
    return bad("not a URI (nbd://HOST:PORT, nbd+unix:///?socket=)");
  const std::string_view scheme = base.substr(0, sep);
  if (scheme != "nbd" && scheme != "nbds" && scheme != "nbd+unix" && scheme != "nbds+unix" &&
      scheme != "nbd+vsock" && scheme != "nbds+vsock") {
    return bad("the scheme is not nbd, nbds, nbd+unix, nbds+unix, nbd+vsock or nbds+vsock");
  }
  const std::string_view rest = base.substr(sep + 3);
  const size_t authority_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, authority_end);
  std::string_view tail =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (tail.find('#') != std::string_view::npos) return bad("a fragment (#) has no meaning here");
  const size_t query_at = tail.find('?');
  const std::string_view old_path = tail.substr(0, query_at);
  const std::string_view query =
      query_at == std::string_view::npos ? std::string_view() : tail.substr(query_at);
  if (!old_path.empty() && old_path != "/") {
    return bad(
        fmt::format("it names the export '{}' already; give the server alone", old_path.substr(1)));
  }
  const bool unix_socket = scheme.ends_with("+unix");
  if (unix_socket && query.find("socket=") == std::string_view::npos) {
    return bad("a Unix socket URI needs ?socket=PATH");
  }
  if (!unix_socket && scheme.find("vsock") == std::string_view::npos && authority.empty()) {
    return bad("no host");
  }
  return fmt::format("{}://{}{}{}", scheme, authority, path, query);
}

int error_errno(Code code) {
  switch (code) {
    case Code::kOk: return 0;
    case Code::kInvalidArgument: return EINVAL;
    case Code::kNotFound: return ENOENT;
    case Code::kAlreadyExists: return EEXIST;
    case Code::kPermissionDenied: return EACCES;
    case Code::kIoError: return EIO;
    case Code::kTimeout: return ETIMEDOUT;
    case Code::kProtocolError:
    case Code::kVersionMismatch: return EPROTO;
    case Code::kUnavailable: return ECONNREFUSED;
    case Code::kBusy: return EBUSY;
    case Code::kNoSpace: return ENOSPC;
    case Code::kInternal:
    case Code::kMismatch: return EIO;
  }
  return EIO;
}

Result<std::string> create_vv(const Options& options, std::string_view vv_class, uint64_t size,
                              uint64_t id, int* err) {
  if (vv_class.size() != 1) {
    if (err != nullptr) *err = EINVAL;
    return Status::InvalidArgument(
        fmt::format("VV class '{}': one letter or digit, as vvm.conf's [class X]", vv_class));
  }
  if (size == 0) {
    if (err != nullptr) *err = EINVAL;
    return Status::InvalidArgument("a VV's size must be more than 0 bytes");
  }
  rpc::VvCreateRequest request;
  request.vv_class = std::string(vv_class);
  request.size = size;
  request.client_id = id;
  auto vv = with_errno(vv_of(ask_vvmd(options, request)), err);
  if (!vv.ok()) return vv.status();
  return std::move(vv->name);
}

Result<VolumeInfo> show_vv(const Options& options, std::string_view name, int* err) {
  auto vv = show_record(options, name, err);
  if (!vv.ok()) return vv.status();
  return volume_info(*vv);
}

Status finish_vv(const Options& options, std::string_view name, int* err) {
  if (Status ok = check_vv_name(name); !ok.ok()) {
    if (err != nullptr) *err = EINVAL;
    return ok;
  }
  // A writer that the caller has just closed is closed at vvmd a moment later (nbdkit tells the
  // plugin, which tells vvmd), so vvmd may still answer Busy: asked again for up to 2 s.
  for (int attempt = 1;; ++attempt) {
    if (err != nullptr) *err = 0;
    Status done =
        with_errno(vv_of(ask_vvmd(options, rpc::VvFinishRequest{std::string(name)})), err).status();
    if (done.code() != Code::kBusy || attempt == 20) return done;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// --- Volume ---

Result<Volume> Volume::open(const Options& options, std::string_view name, Mode mode, int* err) {
  const auto failed = [err](int e, Status status) -> Result<Volume> {
    if (err != nullptr) *err = e;
    return status;
  };
  const std::string base = !options.nbd_uri.empty()      ? options.nbd_uri
                           : !env("VVM_NBD_URI").empty() ? env("VVM_NBD_URI")
                                                         : std::string(kDefaultNbdUri);
  auto uri = export_uri(base, name);
  if (!uri.ok()) return failed(EINVAL, uri.status());
  int show_err = 0;
  auto info = show_record(options, name, &show_err);
  if (!info.ok()) return failed(show_err, info.status());
  if (mode == Mode::kWrite && info->state != VvState::kHot) {
    return failed(EROFS, Status::PermissionDenied(fmt::format(
                             "VV {} is {}: read-only (only a hot VV can be opened for writing)",
                             info->name, vv_state_name(info->state))));
  }

  Volume v;
  v.name_ = std::string(name);
  v.uri_ = std::move(*uri);
  v.mode_ = mode;
  v.nbd_ = nbd_create();
  if (v.nbd_ == nullptr) {
    const int e = nbd_get_errno() != 0 ? nbd_get_errno() : ENOMEM;
    return failed(e, Status(code_of_errno(e), fmt::format("vv/{}: libnbd: {}", name,
                                                          nbd_get_error() ? nbd_get_error() : "")));
  }
  // From here a failure closes the connection as ~Volume does, without a flush.
  const auto nbd_failed = [&](std::string_view what) {
    Status status = v.nbd_failure(what);
    nbd_close(v.nbd_);
    v.nbd_ = nullptr;
    return failed(v.last_errno_, std::move(status));
  };
  // The TLS identity of the environment is the NBD leg's too: an nbds:// URI needs no
  // tls-psk-file= of its own (one in the URI still wins). The program chose the URI, so it may
  // name local files (tls-psk-file=, tls-certificates=), which libnbd refuses by default.
  const auto tls = rpc::TlsClientSettings::from_env();
  if (!tls.psk_file.empty()) {
    auto user = tls.psk_user();
    if (!user.ok()) {
      nbd_close(v.nbd_);
      v.nbd_ = nullptr;
      return failed(EINVAL, user.status());
    }
    if (nbd_set_tls_psk_file(v.nbd_, tls.psk_file.c_str()) == -1 ||
        nbd_set_tls_username(v.nbd_, user->c_str()) == -1) {
      return nbd_failed("TLS PSK file " + tls.psk_file);
    }
  } else if (!tls.certificates.empty() &&
             nbd_set_tls_certificates(v.nbd_, tls.certificates.c_str()) == -1) {
    return nbd_failed("TLS certificates " + tls.certificates);
  }
  if (nbd_set_uri_allow_local_file(v.nbd_, true) == -1) return nbd_failed("URI settings");
  if (nbd_connect_uri(v.nbd_, v.uri_.c_str()) == -1) {
    if (nbd_get_errno() != ENOENT) return nbd_failed("connect to " + v.uri_);
    // vvmd knows the VV, so "no such export" is the plugin's refusal: NBD's handshake carries no
    // reason (nbdkit's log has it), and permissions are the likely one.
    Status unknown = v.nbd_failure("connect to " + v.uri_);
    nbd_close(v.nbd_);
    v.nbd_ = nullptr;
    return failed(EACCES, Status::PermissionDenied(fmt::format(
                              "vv/{}: the NBD server refused the export (the VV is {:04o} for "
                              "{}:{}; nbdkit's log says why): {}",
                              name, info->perms, info->owner, info->group, unknown.message())));
  }
  const int64_t size = nbd_get_size(v.nbd_);
  if (size < 0) return nbd_failed("size");
  v.size_ = static_cast<uint64_t>(size);
  if (mode == Mode::kWrite && nbd_is_read_only(v.nbd_) == 1) {
    nbd_close(v.nbd_);
    v.nbd_ = nullptr;
    return failed(EACCES, Status::PermissionDenied(fmt::format(
                              "vv/{} is served read-only to you: its mode bits do not let you "
                              "write it ({}:{}, {:o})",
                              name, info->owner, info->group, info->perms)));
  }
  const int64_t maximum = nbd_get_block_size(v.nbd_, LIBNBD_SIZE_MAXIMUM);
  v.max_request_ =
      maximum > 0 ? std::min<uint64_t>(static_cast<uint64_t>(maximum), kMaxRequest) : kMaxRequest;
  // The first data command is where the plugin opens the VV with vvmd (and stages it): do it now,
  // so that a refusal or a failed stage is this call's error and not the first read's.
  if (v.size_ > 0) {
    char byte = 0;
    if (nbd_pread(v.nbd_, &byte, 1, 0, 0) == -1) {
      std::string what = "the first read (the server opens the VV then)";
      if (nbd_get_errno() == EPERM) {
        what += "; refused: nbdkit's log says why (permissions, or another host writes the VV)";
      } else if (auto again = show_record(options, name, nullptr);
                 again.ok() && again->cache != CacheState::kCached) {
        what += fmt::format("; the VV is {}: not staged within the plugin's stage-timeout",
                            cache_state_name(again->cache));
      }
      return nbd_failed(what);
    }
  }
  v.last_errno_ = 0;
  return v;
}

Volume::Volume(Volume&& other) noexcept { *this = std::move(other); }

Volume& Volume::operator=(Volume&& other) noexcept {
  if (this != &other) {
    (void)close();
    nbd_ = std::exchange(other.nbd_, nullptr);
    name_ = std::move(other.name_);
    uri_ = std::move(other.uri_);
    size_ = other.size_;
    offset_ = other.offset_;
    max_request_ = other.max_request_;
    mode_ = other.mode_;
    last_errno_ = other.last_errno_;
  }
  return *this;
}

Volume::~Volume() { (void)close(); }

Status Volume::fail(int err, Status status) {
  last_errno_ = err;
  return status;
}

Status Volume::nbd_failure(std::string_view what) {
  int err = nbd_get_errno();
  if (err == 0) err = EIO;
  const char* message = nbd_get_error();
  return fail(err, Status(code_of_errno(err),
                          fmt::format("vv/{}: {}: {}", name_, what,
                                      message != nullptr ? message : std::strerror(err))));
}

Result<uint64_t> Volume::seek(int64_t offset, int whence) {
  if (nbd_ == nullptr) return fail(EBADF, Status::InvalidArgument("the VV handle is closed"));
  int64_t from = 0;
  switch (whence) {
    case SEEK_SET: from = 0; break;
    case SEEK_CUR: from = static_cast<int64_t>(offset_); break;
    case SEEK_END: from = static_cast<int64_t>(size_); break;
    default:
      return fail(EINVAL,
                  Status::InvalidArgument(fmt::format(
                      "vv/{}: whence {}: not SEEK_SET, SEEK_CUR or SEEK_END", name_, whence)));
  }
  int64_t to = 0;
  if (__builtin_add_overflow(from, offset, &to) || to < 0) {
    return fail(EINVAL, Status::InvalidArgument(fmt::format(
                            "vv/{}: seek to {} {:+}: before the start", name_, from, offset)));
  }
  offset_ = static_cast<uint64_t>(to);
  return offset_;
}

Result<size_t> Volume::pread(void* buf, size_t count, uint64_t offset) {
  if (nbd_ == nullptr) return fail(EBADF, Status::InvalidArgument("the VV handle is closed"));
  if (buf == nullptr && count > 0) {
    return fail(EINVAL, Status::InvalidArgument(fmt::format("vv/{}: no buffer to read", name_)));
  }
  if (offset >= size_) return size_t{0};
  count = static_cast<size_t>(std::min<uint64_t>(count, size_ - offset));
  size_t done = 0;
  while (done < count) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(count - done, max_request_));
    if (nbd_pread(nbd_, static_cast<char*>(buf) + done, n, offset + done, 0) == -1) {
      Status failure = nbd_failure(fmt::format("read of {} bytes at offset {}", n, offset + done));
      // As read(2): what was read counts; the error comes back at the next call.
      if (done > 0) return done;
      return failure;
    }
    done += n;
  }
  return done;
}

Result<size_t> Volume::pwrite(const void* buf, size_t count, uint64_t offset) {
  if (nbd_ == nullptr) return fail(EBADF, Status::InvalidArgument("the VV handle is closed"));
  if (mode_ != Mode::kWrite) {
    return fail(EBADF, Status::PermissionDenied(
                           fmt::format("vv/{}: opened for reading, not writing", name_)));
  }
  if (buf == nullptr && count > 0) {
    return fail(EINVAL, Status::InvalidArgument(fmt::format("vv/{}: no buffer to write", name_)));
  }
  if (count == 0) return size_t{0};
  if (offset >= size_) {
    return fail(ENOSPC, Status::NoSpace(
                            fmt::format("vv/{}: no room at offset {}: the VV's size is {} bytes",
                                        name_, offset, size_)));
  }
  count = static_cast<size_t>(std::min<uint64_t>(count, size_ - offset));
  size_t done = 0;
  while (done < count) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(count - done, max_request_));
    if (nbd_pwrite(nbd_, static_cast<const char*>(buf) + done, n, offset + done, 0) == -1) {
      Status failure = nbd_failure(fmt::format("write of {} bytes at offset {}", n, offset + done));
      if (done > 0) return done;
      return failure;
    }
    done += n;
  }
  return done;
}

Result<size_t> Volume::read(void* buf, size_t count) {
  auto done = pread(buf, count, offset_);
  if (done.ok()) offset_ += *done;
  return done;
}

Result<size_t> Volume::write(const void* buf, size_t count) {
  auto done = pwrite(buf, count, offset_);
  if (done.ok()) offset_ += *done;
  return done;
}

Status Volume::flush() {
  if (nbd_ == nullptr) return fail(EBADF, Status::InvalidArgument("the VV handle is closed"));
  if (mode_ != Mode::kWrite) return Status::Ok();  // nothing to make durable
  if (nbd_flush(nbd_, 0) == -1) return nbd_failure("flush");
  return Status::Ok();
}

Status Volume::close() {
  if (nbd_ == nullptr) return Status::Ok();
  Status result = flush();
  // A clean NBD_CMD_DISC, so that nbdkit closes the export (and tells vvmd) at once.
  (void)nbd_shutdown(nbd_, 0);
  nbd_close(nbd_);
  nbd_ = nullptr;
  return result;
}

}  // namespace vvm::client
