// vvclient.h: libvvclient's C++ API, for programs that make, write, read and finish virtual
// volumes (VVs) themselves. vvclient_c.h is the C API (the original NAStore names, vv_openread
// and friends) and wraps this one.
//
//   using namespace vvm::client;
//   Options options;                                  // vvm.conf, $VVM_VVMD, $VVM_NBD_URI
//   Result<std::string> name = create_vv(options, "A", 1 << 30, 7);
//   Result<Volume> vv = Volume::open(options, *name, Mode::kWrite);
//   vv->write(data, n);                               // at the current offset
//   Status closed = vv->close();                      // flushes, then disconnects
//   Status finished = finish_vv(options, *name);      // read-only from now on
//
// Control (create, show, finish) goes to vvmd over vvm's control protocol, which stays inside the
// library: what a call answers comes back in the types below (VolumeInfo). Data goes over NBD
// through libnbd to the nbdkit plugin's export vv/NAME, so a program on another host works the same
// as one beside vvmd: only Options (or the environment) differ.
//
// Errors: every call that can fail returns a Status or a Result<T> whose message names the VV
// and the reason. The POSIX errno the C API reports for it is given too (Volume::last_errno(), or
// the `err` argument of the functions that have no handle): libnbd's own errno for NBD failures,
// EROFS for writing a finished VV, EBADF for writing a handle opened for reading, ENOSPC for
// writing at or past the end, and otherwise error_errno(status.code()).
//
// Threads: a Volume is for one thread at a time (its offset is its state); different Volumes may
// be used by different threads at once. The free functions are safe to call from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

struct nbd_handle;  // libnbd's

// What libvvclient exports: the library is built with every other symbol hidden, so that its
// ABI is this header, vvclient_c.h and the Status of common/status.h, and nothing of the control
// protocol or the configuration it uses inside.
#ifndef VVCLIENT_API
#define VVCLIENT_API __attribute__((visibility("default")))
#endif

namespace vvm::client {

// Where vvmd and the NBD server are, and how long a control request may take. Empty fields are
// looked up when a call needs them, in this order:
//   vvmd:    this field, $VVM_VVMD, the first [vvmd] listen address of vvm.conf;
//   conf:    this field, $VVM_CONF, /etc/vvm/vvm.conf (read only when vvmd or timeout need it);
//   nbd_uri: this field, $VVM_NBD_URI, kDefaultNbdUri;
//   timeout: this field, vvm.conf's [vvmd] request-timeout, 30 s.
// Over TLS (vvmd "tls:host:7371", nbd_uri "nbds://host:10810/") the identity of both legs comes
// from the environment: $VVM_TLS_PSK_FILE and $VVM_TLS_USERNAME (default: the file's only
// user), or $VVM_TLS_CERTIFICATES (a folder: ca-cert.pem, client-cert.pem, client-key.pem).
struct Options {
  std::string conf;     // a vvm.conf path
  std::string vvmd;     // an endpoint: "unix:/run/vvm/vvmd.sock", "host:7370", "tls:host:7371"
  std::string nbd_uri;  // the NBD server without an export name; see export_uri()
  std::chrono::milliseconds timeout{0};
};

inline constexpr std::string_view kDefaultNbdUri = "nbd+unix:///?socket=/run/vvm/nbd.sock";

// The NBD URI of the export vv/NAME on the server `base`, which names no export:
//   "nbd://host:10809", "nbd://host/"            -> "nbd://host:10809/vv/NAME"
//   "nbd+unix:///?socket=/run/vvm/nbd.sock"      -> "nbd+unix:///vv/NAME?socket=/run/vvm/nbd.sock"
//   "/run/vvm/nbd.sock" (a socket path, for short) ->
//   "nbd+unix:///vv/NAME?socket=/run/vvm/nbd.sock"
// nbds:// and nbds+unix:// (TLS) and nbd+vsock:// work the same. InvalidArgument for a base that
// is not an NBD URI or already names an export, and for a VV name that is not 1 to 64 letters and
// digits.
VVCLIENT_API Result<std::string> export_uri(std::string_view base, std::string_view vv_name);

// Checks a VV name as export_uri() does ("A0000000042"): InvalidArgument naming what is wrong.
VVCLIENT_API Status check_vv_name(std::string_view vv_name);

// The errno the C API reports for a Status of this code (kNotFound -> ENOENT, kPermissionDenied
// -> EACCES, kUnavailable -> ECONNREFUSED, kTimeout -> ETIMEDOUT, ...).
VVCLIENT_API int error_errno(Code code);

// --- what vvmd says of a VV ---

// The numbers are libvvclient's own, fixed: they do not follow vvmd's.
enum class VolumeState { kHot = 1, kFinished = 2, kArchived = 3 };  // writable; read-only; on tape
enum class Residency { kCached = 1, kEvicted = 2, kStaging = 3 };   // in vvmd's disk cache or not
// "hot", "finished", "archived"; "cached", "evicted", "staging": the words vvctl prints.
VVCLIENT_API std::string_view state_name(VolumeState state);
VVCLIENT_API std::string_view residency_name(Residency residency);

struct VolumeInfo {
  std::string name;      // "A0000000042"
  std::string vv_class;  // "A"
  uint64_t client_id = 0;
  uint64_t size = 0;  // bytes
  VolumeState state = VolumeState::kHot;
  Residency residency = Residency::kCached;          // an evicted VV is staged when it is opened
  std::string owner, group;                          // user and group names
  uint32_t perms = 0640;                             // mode bits for owner, group and others
  uint64_t created = 0, finished = 0, accessed = 0;  // unix seconds; 0: not yet
  unsigned copies = 0;                               // copies on tape so far
};

// --- control: one request to vvmd each, on a connection of its own ---

// Creates a hot VV of class `vv_class` (one letter), `size` bytes, with the client id `id` (any
// number the program chooses, for finding its VVs again: `vvctl ls --id`). The VV belongs to the
// caller (its uid over vvmd's Unix socket). Returns the new name ("A0000000042").
VVCLIENT_API Result<std::string> create_vv(const Options& options, std::string_view vv_class,
                                           uint64_t size, uint64_t id, int* err = nullptr);
// What vvmd knows of the VV: size, state, cache residency, owner, copies.
VVCLIENT_API Result<VolumeInfo> show_vv(const Options& options, std::string_view name,
                                        int* err = nullptr);
// Makes a hot VV finished: read-only, queued for archiving. Close every writer first: vvmd does
// not wait for them, and refuses while one is open (Busy, EBUSY), after asking again for up to
// 2 s (a writer just closed is closed at vvmd a moment later). Only the owner (or root) may;
// InvalidArgument (EINVAL) for a VV that is not hot.
VVCLIENT_API Status finish_vv(const Options& options, std::string_view name, int* err = nullptr);

// --- data: a VV opened over NBD, with a current offset, like a file descriptor ---

enum class Mode { kRead, kWrite };

class VVCLIENT_API Volume {
 public:
  // Opens the VV: asks vvmd for it (NotFound, and EROFS for kWrite on a VV that is not hot),
  // connects to its export, and reads its first byte, so that the plugin's checks (permissions,
  // one writer host at a time) and any stage of an evicted VV happen here, not at the first
  // read: an evicted VV makes this wait, up to the plugin's [plugin] stage-timeout. The offset
  // starts at 0. `err`, if given, receives the errno on failure.
  //
  // NBD cannot say "read only", so a kRead open of a hot VV counts with the plugin as a
  // connection of a writing host, as any NBD client's would.
  static Result<Volume> open(const Options& options, std::string_view name, Mode mode,
                             int* err = nullptr);

  Volume(Volume&& other) noexcept;
  Volume& operator=(Volume&& other) noexcept;
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;
  ~Volume();  // close(), with any error ignored

  const std::string& name() const { return name_; }
  uint64_t size() const { return size_; }
  Mode mode() const { return mode_; }
  bool is_open() const { return nbd_ != nullptr; }
  uint64_t offset() const { return offset_; }

  // Moves the offset (whence: SEEK_SET, SEEK_CUR, SEEK_END) and returns it. It may go past the
  // end; a negative result is InvalidArgument.
  Result<uint64_t> seek(int64_t offset, int whence);
  // Reads up to `count` bytes at the offset and advances it: fewer at the end of the VV, 0 at or
  // past it. Any size and alignment; large requests are split at the server's maximum.
  Result<size_t> read(void* buf, size_t count);
  // Writes up to `count` bytes at the offset and advances it: fewer when the VV ends first;
  // NoSpace (ENOSPC) when the offset is at or past the end. Needs a kWrite open (EBADF).
  Result<size_t> write(const void* buf, size_t count);
  // The same at `offset`, without moving the current one.
  Result<size_t> pread(void* buf, size_t count, uint64_t offset);
  Result<size_t> pwrite(const void* buf, size_t count, uint64_t offset);
  // Makes what was written durable on the server (NBD flush).
  Status flush();
  // Flushes a writer and disconnects. The Volume is closed even when the flush fails (its
  // error is returned). Closing a closed Volume does nothing.
  Status close();

  // The errno of this Volume's last failure, for the C API.
  int last_errno() const { return last_errno_; }

 private:
  Volume() = default;
  Status fail(int err, Status status);  // records err and returns status
  Status nbd_failure(std::string_view what);

  struct nbd_handle* nbd_ = nullptr;
  std::string name_;
  std::string uri_;
  uint64_t size_ = 0;
  uint64_t offset_ = 0;
  uint64_t max_request_ = 0;  // the largest single NBD request
  Mode mode_ = Mode::kRead;
  int last_errno_ = 0;
};

}  // namespace vvm::client
