/*
 * vvclient_c.h: libvvclient's C API, with NAStore's Virtual Volume Manager names: a program makes
 * a virtual volume (VV), writes it like a file, finishes it, and reads it back later, wherever it
 * is (in the disk cache, or on tape: an evicted VV is staged back when it is opened).
 *
 *   char name[VV_NAME_MAX];
 *   if (vv_create("A", size, 7, name, sizeof name) != 0) die(vv_last_error());
 *   VV *vv = vv_openwrite(name);
 *   vv_write(vv, buf, n);          ... as often as needed
 *   vv_close(vv);                  flushes, then disconnects
 *   vv_finish(name);               read-only from now on, and archived to tape
 *   vv = vv_openread(name);  vv_lseek(vv, off, SEEK_SET);  vv_read(vv, buf, n);  vv_close(vv);
 *
 * Link with -lvvclient (pkg-config vvclient). Control requests go to vvmd, data goes over NBD
 * (libnbd) to the vvm nbdkit plugin's export vv/NAME. Where they are comes from vv_configure(),
 * else the environment:
 *   VVM_VVMD     vvmd's endpoint ("unix:/run/vvm/vvmd.sock", "host:7370"); else the first
 *                [vvmd] listen address of vvm.conf;
 *   VVM_CONF     the vvm.conf to read (default /etc/vvm/vvm.conf), for that address and for
 *                the control requests' timeout ([vvmd] request-timeout);
 *   VVM_NBD_URI  the NBD server, without an export name: "nbd://host:10809",
 *                "nbd+unix:///?socket=/run/vvm/nbd.sock" (the default), or a socket's path;
 *                "nbds://host:10810/" over TLS;
 *   VVM_TLS_PSK_FILE and VVM_TLS_USERNAME, or VVM_TLS_CERTIFICATES: the TLS identity of both
 *                legs, for VVM_VVMD "tls:host:7371" and an nbds:// VVM_NBD_URI.
 *
 * Errors: a call that fails returns -1 (NULL for the opens), sets errno, and keeps a message
 * naming the VV and the reason that vv_last_error() returns. The errno values are POSIX's:
 *   EINVAL     a bad argument (a NULL or malformed name, a bad whence, a negative offset);
 *   EBADF      a NULL handle, or vv_write on a handle from vv_openread;
 *   ENOENT     no such VV;
 *   EROFS      vv_openwrite of a VV that is finished (read-only);
 *   EACCES     the VV's owner, group and mode bits do not allow it; EPERM when the NBD server
 *              refuses (permissions, or another host is writing the VV: one writer host);
 *   ENOSPC     vv_write at or past the end of the VV (a VV's size is fixed at vv_create);
 *   ERANGE     vv_create's name buffer is too small;
 *   ECONNREFUSED, ETIMEDOUT, EIO, ...: vvmd or the NBD server is down, slow or failing.
 *
 * Threads: a VV handle is for one thread at a time (its offset is its state); different handles
 * may be used by different threads at once. vv_last_error() is per thread. Every function may be
 * called from any thread.
 */
#ifndef VVM_VVCLIENT_C_H
#define VVM_VVCLIENT_C_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What libvvclient exports; every other symbol of the library is hidden. */
#ifndef VVCLIENT_C_API
#if defined(__GNUC__)
#define VVCLIENT_C_API __attribute__((visibility("default")))
#else
#define VVCLIENT_C_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A VV opened by vv_openread or vv_openwrite. */
typedef struct vv_handle VV;

/* Room enough for any VV name and its terminating NUL ("A0000000042" has 11 characters). */
#define VV_NAME_MAX 72

/* Sets where vvmd and the NBD server are for every later call of this process: vvm.conf's path,
 * vvmd's endpoint, the NBD server's URI. NULL (or "") leaves a setting to the environment, as
 * above. Returns 0; -1 with EINVAL for an NBD URI that export names cannot be put into. */
VVCLIENT_C_API int vv_configure(const char* conf_path, const char* vvmd, const char* nbd_uri);

/* Creates a hot VV of class `vv_class` (a one-letter string), `size` bytes, with the client id
 * `id` (any number, to find the program's VVs again with `vvctl ls --id`), owned by the caller.
 * Its name, NUL-terminated, goes into `name` (`name_size` bytes; VV_NAME_MAX is enough). 0 on
 * success. */
VVCLIENT_C_API int vv_create(const char* vv_class, uint64_t size, uint64_t id, char* name,
                             size_t name_size);

/* Opens the VV `name` to read, or to read and write (a hot VV only: EROFS once finished). The
 * offset starts at 0. An evicted VV is staged from tape first: the call waits, up to the
 * plugin's stage timeout. NULL on failure. */
VVCLIENT_C_API VV* vv_openread(const char* name);
VVCLIENT_C_API VV* vv_openwrite(const char* name);

/* Moves the offset as lseek(2) does (SEEK_SET, SEEK_CUR, SEEK_END) and returns it. It may go past
 * the end of the VV; a negative result is EINVAL. */
VVCLIENT_C_API off_t vv_lseek(VV* vv, off_t offset, int whence);

/* Reads up to `count` bytes at the offset into `buf` and advances the offset: returns how many,
 * fewer at the end of the VV, 0 at or past it, -1 on failure. Any size and alignment. */
VVCLIENT_C_API ssize_t vv_read(VV* vv, void* buf, size_t count);

/* Writes up to `count` bytes from `buf` at the offset and advances it: returns how many, fewer
 * when the VV ends first; -1 with ENOSPC when the offset is at or past the end, EBADF on a handle
 * from vv_openread. Data reaches the server at once; vv_close makes it durable. */
VVCLIENT_C_API ssize_t vv_write(VV* vv, const void* buf, size_t count);

/* Flushes a writer (the data is then durable), disconnects and frees the handle, which must not
 * be used again, even when this fails (-1: the flush failed, and data may be lost). */
VVCLIENT_C_API int vv_close(VV* vv);

/* Makes the hot VV `name` finished: read-only, and queued for archiving to tape. Close its
 * writers first: vvmd does not wait for them, and a connection already open may go on writing.
 * Only its owner (or root) may; EINVAL if it is not hot. 0 on success. */
VVCLIENT_C_API int vv_finish(const char* name);

/* The message of this thread's last failed vv_* call ("vv_openwrite A0000000042: VV A0000000042
 * is finished: read-only"); "" if none failed yet. A call that succeeds leaves it as it was (as
 * errno); the pointer is valid until this thread's next failing vv_* call. */
VVCLIENT_C_API const char* vv_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* VVM_VVCLIENT_C_H */
