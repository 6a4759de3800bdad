/* faultfs.c: an LD_PRELOAD library that makes the real vvm daemons' file I/O fail on purpose, for
 * the integration tests of their error paths (a journal whose fdatasync fails, a cache that
 * fills) and for bench/soak's fault injection. It changes nothing until armed, and only for the
 * files it is told:
 *
 *   VVM_FAULT_PATH   a text that the file's path (/proc/self/fd/N) must contain ("/db/journal")
 *   VVM_FAULT_ARMED  a file: faults are injected only while it exists (the test creates and
 *                    removes it, so the daemon starts cleanly and the fault begins when asked)
 *   VVM_FAULT_OPS    which calls fail, comma-separated: fsync, fdatasync, dsync (a pwritev2 with
 *                    RWF_DSYNC: the journal's durable write), write (pwrite, pwritev, pwritev2,
 *                    write), read (read, pread, preadv), torn (a write that puts the first half
 *                    of its bytes in the file, then fails, as a write cut short by a dying disk);
 *                    default "fsync,fdatasync,dsync"
 *   VVM_FAULT_ERRNO  EIO (default) or ENOSPC
 *
 * When the armed file is not empty, its lines are the rules instead of the three variables
 * above, each "PATH OPS ERRNO" ("/cache/ write,fsync ENOSPC"), so one preloaded process can be
 * given several kinds of fault over its life by rewriting the file (bench/soak does). The file
 * is read again whenever its size or modification time changes.
 *
 * Each injected fault is said once per call kind on stderr ("faultfs: fdatasync of PATH: EIO"),
 * so the test's log shows what was done to the daemon (that message's own write goes to stderr,
 * which is not a faulted path). Children inherit LD_PRELOAD, so a mover's copy children fail too.
 * The failing call does nothing at all, as a device that refuses the write would leave it, but
 * for a torn write. */
#define _GNU_SOURCE
/* Both pwrite and pwrite64 (and their kin) are defined here, as their own names. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { kFsync = 1, kFdatasync = 2, kDsync = 4, kWrite = 8, kRead = 16, kTorn = 32 };

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

static int parse_ops(const char* ops) {
  int mask = 0;
  char copy[256];
  snprintf(copy, sizeof copy, "%s", ops);
  char* save = NULL;
  for (char* w = strtok_r(copy, ",", &save); w != NULL; w = strtok_r(NULL, ",", &save)) {
    if (strcmp(w, "fsync") == 0) mask |= kFsync;
    if (strcmp(w, "fdatasync") == 0) mask |= kFdatasync;
    if (strcmp(w, "dsync") == 0) mask |= kDsync;
    if (strcmp(w, "write") == 0) mask |= kWrite;
    if (strcmp(w, "read") == 0) mask |= kRead;
    if (strcmp(w, "torn") == 0) mask |= kTorn;
  }
  return mask;
}

static int parse_errno(const char* e) {
  return e != NULL && strcmp(e, "ENOSPC") == 0 ? ENOSPC : EIO;
}

/* The rules of a non-empty armed file, cached until the file changes. */
enum { kMaxRules = 16 };
struct rule {
  char path[256];
  int ops;
  int err;
};
static pthread_mutex_t rules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule rules[kMaxRules];
static int rule_count;
static struct stat rules_seen;

static void load_rules(const char* armed, const struct stat* st) {
  char text[4096];
  ssize_t n = 0;
  int fd = open(armed, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    n = REAL("read", ssize_t(*)(int, void*, size_t))(fd, text, sizeof text - 1);
    close(fd);
  }
  text[n > 0 ? n : 0] = '\0';
  rule_count = 0;
  char* save = NULL;
  for (char* line = strtok_r(text, "\n", &save); line != NULL && rule_count < kMaxRules;
       line = strtok_r(NULL, "\n", &save)) {
    char path[256], ops[256], err[32] = "EIO";
    if (sscanf(line, "%255s %255s %31s", path, ops, err) < 2) continue;
    snprintf(rules[rule_count].path, sizeof rules[rule_count].path, "%s", path);
    rules[rule_count].ops = parse_ops(ops);
    rules[rule_count].err = parse_errno(err);
    rule_count++;
  }
  rules_seen = *st;
}

/* The errno that the call `op` on `fd` must fail with now, or 0; says so once per kind. */
static int inject(int fd, int op, const char* what) {
  static int said;
  const char* armed = getenv("VVM_FAULT_ARMED");
  if (armed == NULL) return 0;
  struct stat st;
  if (stat(armed, &st) != 0) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n < 0) return 0;
  path[n] = '\0';
  int err = 0;
  if (st.st_size == 0) {
    const char* want = getenv("VVM_FAULT_PATH");
    const char* ops = getenv("VVM_FAULT_OPS");
    int mask = ops == NULL || *ops == '\0' ? kFsync | kFdatasync | kDsync : parse_ops(ops);
    if (want != NULL && (mask & op) != 0 && strstr(path, want) != NULL) {
      err = parse_errno(getenv("VVM_FAULT_ERRNO"));
    }
  } else {
    pthread_mutex_lock(&rules_lock);
    if (st.st_size != rules_seen.st_size || st.st_mtim.tv_sec != rules_seen.st_mtim.tv_sec ||
        st.st_mtim.tv_nsec != rules_seen.st_mtim.tv_nsec || st.st_ino != rules_seen.st_ino) {
      load_rules(armed, &st);
    }
    for (int i = 0; i < rule_count && err == 0; i++) {
      if ((rules[i].ops & op) != 0 && strstr(path, rules[i].path) != NULL) err = rules[i].err;
    }
    pthread_mutex_unlock(&rules_lock);
  }
  if (err == 0) return 0;
  if ((__atomic_fetch_or(&said, op, __ATOMIC_RELAXED) & op) == 0) {
    fprintf(stderr, "faultfs: %s of %s: %s (injected)\n", what, path,
            err == ENOSPC ? "ENOSPC" : "EIO");
  }
  return err;
}

/* A write to `fd` of `count` bytes, faulted: 0 to do it, else -1 with errno set, after writing
 * the first half of `buf` at `offset` (-1: at the file position) for a torn write. */
static int faulted_write(int fd, const void* buf, size_t count, off_t offset) {
  int err = inject(fd, kWrite, "write");
  if (err == 0 && count > 1 && (err = inject(fd, kTorn, "torn write")) != 0) {
    if (offset < 0) {
      (void)REAL("write", ssize_t(*)(int, const void*, size_t))(fd, buf, count / 2);
    } else {
      (void)REAL("pwrite64", ssize_t(*)(int, const void*, size_t, off_t))(fd, buf, count / 2,
                                                                          offset);
    }
  }
  if (err == 0) return 0;
  errno = err;
  return -1;
}

/* The first iovec's bytes, for a torn vectored write: the tear falls inside it or at its end. */
static int faulted_writev(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  return faulted_write(fd, iovcnt > 0 ? iov[0].iov_base : NULL, iovcnt > 0 ? iov[0].iov_len : 0,
                       offset);
}

static int faulted(int fd, int op, const char* what) {
  int err = inject(fd, op, what);
  if (err == 0) return 0;
  errno = err;
  return -1;
}

int fsync(int fd) {
  if (faulted(fd, kFsync, "fsync")) return -1;
  return REAL("fsync", int (*)(int))(fd);
}

int fdatasync(int fd) {
  if (faulted(fd, kFdatasync, "fdatasync")) return -1;
  return REAL("fdatasync", int (*)(int))(fd);
}

/* pwritev2 and pwritev64v2 (what a program built with _FILE_OFFSET_BITS=64, as vvm is, calls):
 * the same call under two names, each passed on to its own. So for pwritev, pread and preadv. */
static ssize_t vectored_write(const char* real, int fd, const struct iovec* iov, int iovcnt,
                              off_t offset, int flags) {
  if ((flags & RWF_DSYNC) != 0 && faulted(fd, kDsync, "durable write")) return -1;
  if (faulted_writev(fd, iov, iovcnt, offset)) return -1;
  return REAL(real, ssize_t(*)(int, const struct iovec*, int, off_t, int))(fd, iov, iovcnt, offset,
                                                                           flags);
}

ssize_t pwritev2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags) {
  return vectored_write("pwritev2", fd, iov, iovcnt, offset, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags) {
  return vectored_write("pwritev64v2", fd, iov, iovcnt, offset, flags);
}

ssize_t pwritev(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  if (faulted_writev(fd, iov, iovcnt, offset)) return -1;
  return REAL("pwritev", ssize_t(*)(int, const struct iovec*, int, off_t))(fd, iov, iovcnt, offset);
}

ssize_t pwritev64(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  if (faulted_writev(fd, iov, iovcnt, offset)) return -1;
  return REAL("pwritev64", ssize_t(*)(int, const struct iovec*, int, off_t))(fd, iov, iovcnt,
                                                                             offset);
}

ssize_t write(int fd, const void* buf, size_t count) {
  if (faulted_write(fd, buf, count, -1)) return -1;
  return REAL("write", ssize_t(*)(int, const void*, size_t))(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  if (faulted_write(fd, buf, count, offset)) return -1;
  return REAL("pwrite", ssize_t(*)(int, const void*, size_t, off_t))(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off_t offset) {
  if (faulted_write(fd, buf, count, offset)) return -1;
  return REAL("pwrite64", ssize_t(*)(int, const void*, size_t, off_t))(fd, buf, count, offset);
}

ssize_t read(int fd, void* buf, size_t count) {
  if (faulted(fd, kRead, "read")) return -1;
  return REAL("read", ssize_t(*)(int, void*, size_t))(fd, buf, count);
}

ssize_t pread(int fd, void* buf, size_t count, off_t offset) {
  if (faulted(fd, kRead, "read")) return -1;
  return REAL("pread", ssize_t(*)(int, void*, size_t, off_t))(fd, buf, count, offset);
}

ssize_t pread64(int fd, void* buf, size_t count, off_t offset) {
  if (faulted(fd, kRead, "read")) return -1;
  return REAL("pread64", ssize_t(*)(int, void*, size_t, off_t))(fd, buf, count, offset);
}
