/* faultfs.c: an LD_PRELOAD library that makes the real vvm daemons' file I/O fail on purpose, for
 * the integration tests of their error paths (a journal whose fdatasync fails, a cache that
 * fills). It changes nothing until armed, and only for the files it is told:
 *
 *   VVM_FAULT_PATH   a text that the file's path (/proc/self/fd/N) must contain ("/db/journal")
 *   VVM_FAULT_ARMED  a file: faults are injected only while it exists (the test creates and
 *                    removes it, so the daemon starts cleanly and the fault begins when asked)
 *   VVM_FAULT_OPS    which calls fail, comma-separated: fsync, fdatasync, dsync (a pwritev2 with
 *                    RWF_DSYNC: the journal's durable write), write (pwrite, pwritev2, write);
 *                    default "fsync,fdatasync,dsync"
 *   VVM_FAULT_ERRNO  EIO (default) or ENOSPC
 *
 * Each injected fault is said once per call kind on stderr ("faultfs: fdatasync of PATH: EIO"),
 * so the test's log shows what was done to the daemon (that message's own write goes to stderr,
 * which is not a faulted path). Children inherit LD_PRELOAD, so a mover's copy children fail too.
 * The failing call does nothing at all, as a device that refuses the write would leave it. */
#define _GNU_SOURCE
/* Both pwrite and pwrite64 are defined here, as their own names. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { kFsync = 1, kFdatasync = 2, kDsync = 4, kWrite = 8 };

static int wanted_ops(void) {
  const char* ops = getenv("VVM_FAULT_OPS");
  if (ops == NULL || *ops == '\0') return kFsync | kFdatasync | kDsync;
  int mask = 0;
  char copy[256];
  snprintf(copy, sizeof copy, "%s", ops);
  char* save = NULL;
  for (char* w = strtok_r(copy, ",", &save); w != NULL; w = strtok_r(NULL, ",", &save)) {
    if (strcmp(w, "fsync") == 0) mask |= kFsync;
    if (strcmp(w, "fdatasync") == 0) mask |= kFdatasync;
    if (strcmp(w, "dsync") == 0) mask |= kDsync;
    if (strcmp(w, "write") == 0) mask |= kWrite;
  }
  return mask;
}

static int fault_errno(void) {
  const char* e = getenv("VVM_FAULT_ERRNO");
  return e != NULL && strcmp(e, "ENOSPC") == 0 ? ENOSPC : EIO;
}

/* Whether the call `op` on `fd` must fail now; says so once per kind. */
static int inject(int fd, int op, const char* what) {
  static int said;
  const char* want = getenv("VVM_FAULT_PATH");
  const char* armed = getenv("VVM_FAULT_ARMED");
  if (want == NULL || armed == NULL || (wanted_ops() & op) == 0) return 0;
  if (access(armed, F_OK) != 0) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n < 0) return 0;
  path[n] = '\0';
  if (strstr(path, want) == NULL) return 0;
  if ((__atomic_fetch_or(&said, op, __ATOMIC_RELAXED) & op) == 0) {
    fprintf(stderr, "faultfs: %s of %s: %s (injected)\n", what, path,
            fault_errno() == ENOSPC ? "ENOSPC" : "EIO");
  }
  errno = fault_errno();
  return 1;
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

int fsync(int fd) {
  if (inject(fd, kFsync, "fsync")) return -1;
  return REAL("fsync", int (*)(int))(fd);
}

int fdatasync(int fd) {
  if (inject(fd, kFdatasync, "fdatasync")) return -1;
  return REAL("fdatasync", int (*)(int))(fd);
}

/* pwritev2 and pwritev64v2 (what a program built with _FILE_OFFSET_BITS=64, as vvm is, calls):
 * the same call under two names, each passed on to its own. */
static ssize_t vectored_write(const char* real, int fd, const struct iovec* iov, int iovcnt,
                              off_t offset, int flags) {
  if ((flags & RWF_DSYNC) != 0 && inject(fd, kDsync, "durable write")) return -1;
  if (inject(fd, kWrite, "write")) return -1;
  return REAL(real, ssize_t(*)(int, const struct iovec*, int, off_t, int))(fd, iov, iovcnt, offset,
                                                                           flags);
}

ssize_t pwritev2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags) {
  return vectored_write("pwritev2", fd, iov, iovcnt, offset, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags) {
  return vectored_write("pwritev64v2", fd, iov, iovcnt, offset, flags);
}

ssize_t write(int fd, const void* buf, size_t count) {
  if (inject(fd, kWrite, "write")) return -1;
  return REAL("write", ssize_t(*)(int, const void*, size_t))(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  if (inject(fd, kWrite, "write")) return -1;
  return REAL("pwrite", ssize_t(*)(int, const void*, size_t, off_t))(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off_t offset) {
  if (inject(fd, kWrite, "write")) return -1;
  return REAL("pwrite64", ssize_t(*)(int, const void*, size_t, off_t))(fd, buf, count, offset);
}
