// vvclient_c.cc: libvvclient's C API (vvclient_c.h) over the C++ one (vvclient.h). Every entry
// point catches everything: no exception may reach a C caller.
#include "lib/vvclient_c.h"

#include <cerrno>
#include <climits>
#include <mutex>
#include <new>
#include <string>
#include <utility>

#include <fmt/core.h>

#include "lib/vvclient.h"

using vvm::Status;
using vvm::client::Mode;
using vvm::client::Options;
using vvm::client::Volume;

struct vv_handle {
  Volume volume;
};

namespace {

std::mutex g_options_mutex;
Options g_options;  // vv_configure's; the environment fills in what is empty

Options options() {
  std::lock_guard lock(g_options_mutex);
  return g_options;
}

thread_local std::string t_last_error;

// Records why `function` failed, sets errno, and returns `bad`.
template <class T>
T fail(T bad, const char* function, int err, const Status& status) {
  t_last_error = fmt::format("{}: {}", function, status.message());
  errno = err != 0 ? err : EIO;
  return bad;
}

// Runs `body`, turning any exception into a failure of `function`.
template <class T, class F>
T guarded(const char* function, T bad, F&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(bad, function, ENOMEM, Status::Internal("out of memory"));
  } catch (const std::exception& e) {
    return fail(bad, function, EIO, Status::Internal(e.what()));
  } catch (...) {
    return fail(bad, function, EIO, Status::Internal("unknown exception"));
  }
}

VV* open_vv(const char* function, const char* name, Mode mode) {
  return guarded<VV*>(function, nullptr, [&]() -> VV* {
    if (name == nullptr) {
      return fail<VV*>(nullptr, function, EINVAL, Status::InvalidArgument("no VV name (NULL)"));
    }
    int err = 0;
    auto volume = Volume::open(options(), name, mode, &err);
    if (!volume.ok()) return fail<VV*>(nullptr, function, err, volume.status());
    return new vv_handle{std::move(*volume)};
  });
}

Status closed_handle() { return Status::InvalidArgument("no VV handle (NULL)"); }

}  // namespace

extern "C" {

int vv_configure(const char* conf_path, const char* vvmd, const char* nbd_uri) {
  return guarded("vv_configure", -1, [&] {
    Options o;
    o.conf = conf_path != nullptr ? conf_path : "";
    o.vvmd = vvmd != nullptr ? vvmd : "";
    o.nbd_uri = nbd_uri != nullptr ? nbd_uri : "";
    if (!o.nbd_uri.empty()) {
      // Any valid name shows whether export names can be put into the URI.
      auto uri = vvm::client::export_uri(o.nbd_uri, "A0");
      if (!uri.ok()) return fail(-1, "vv_configure", EINVAL, uri.status());
    }
    std::lock_guard lock(g_options_mutex);
    g_options = std::move(o);
    return 0;
  });
}

int vv_create(const char* vv_class, uint64_t size, uint64_t id, char* name, size_t name_size) {
  return guarded("vv_create", -1, [&] {
    if (vv_class == nullptr || name == nullptr) {
      return fail(-1, "vv_create", EINVAL,
                  Status::InvalidArgument(vv_class == nullptr ? "no class (NULL)"
                                                              : "no buffer for the name (NULL)"));
    }
    constexpr size_t kShortest = 12;  // a class letter, 10 digits and the NUL
    if (name_size < kShortest) {
      return fail(
          -1, "vv_create", ERANGE,
          Status::InvalidArgument(fmt::format(
              "a buffer of {} bytes cannot hold a VV name (VV_NAME_MAX bytes can)", name_size)));
    }
    int err = 0;
    auto created = vvm::client::create_vv(options(), vv_class, size, id, &err);
    if (!created.ok()) return fail(-1, "vv_create", err, created.status());
    if (created->size() >= name_size) {
      return fail(
          -1, "vv_create", ERANGE,
          Status::InvalidArgument(fmt::format(
              "created VV {}, but its name does not fit in {} bytes", *created, name_size)));
    }
    created->copy(name, created->size());
    name[created->size()] = '\0';
    return 0;
  });
}

VV* vv_openread(const char* name) { return open_vv("vv_openread", name, Mode::kRead); }

VV* vv_openwrite(const char* name) { return open_vv("vv_openwrite", name, Mode::kWrite); }

off_t vv_lseek(VV* vv, off_t offset, int whence) {
  return guarded<off_t>("vv_lseek", -1, [&]() -> off_t {
    if (vv == nullptr) return fail<off_t>(-1, "vv_lseek", EBADF, closed_handle());
    auto to = vv->volume.seek(offset, whence);
    if (!to.ok()) return fail<off_t>(-1, "vv_lseek", vv->volume.last_errno(), to.status());
    return static_cast<off_t>(*to);
  });
}

ssize_t vv_read(VV* vv, void* buf, size_t count) {
  return guarded<ssize_t>("vv_read", -1, [&]() -> ssize_t {
    if (vv == nullptr) return fail<ssize_t>(-1, "vv_read", EBADF, closed_handle());
    auto done = vv->volume.read(buf, std::min<size_t>(count, SSIZE_MAX));
    if (!done.ok()) return fail<ssize_t>(-1, "vv_read", vv->volume.last_errno(), done.status());
    return static_cast<ssize_t>(*done);
  });
}

ssize_t vv_write(VV* vv, const void* buf, size_t count) {
  return guarded<ssize_t>("vv_write", -1, [&]() -> ssize_t {
    if (vv == nullptr) return fail<ssize_t>(-1, "vv_write", EBADF, closed_handle());
    auto done = vv->volume.write(buf, std::min<size_t>(count, SSIZE_MAX));
    if (!done.ok()) return fail<ssize_t>(-1, "vv_write", vv->volume.last_errno(), done.status());
    return static_cast<ssize_t>(*done);
  });
}

int vv_close(VV* vv) {
  return guarded("vv_close", -1, [&] {
    if (vv == nullptr) return fail(-1, "vv_close", EBADF, closed_handle());
    Status closed = vv->volume.close();
    const int err = vv->volume.last_errno();
    delete vv;
    if (!closed.ok()) return fail(-1, "vv_close", err, closed);
    return 0;
  });
}

int vv_finish(const char* name) {
  return guarded("vv_finish", -1, [&] {
    if (name == nullptr) {
      return fail(-1, "vv_finish", EINVAL, Status::InvalidArgument("no VV name (NULL)"));
    }
    int err = 0;
    Status finished = vvm::client::finish_vv(options(), name, &err);
    if (!finished.ok()) return fail(-1, "vv_finish", err, finished);
    return 0;
  });
}

const char* vv_last_error(void) { return t_last_error.c_str(); }

}  // extern "C"
