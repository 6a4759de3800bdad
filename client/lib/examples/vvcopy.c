/*
 * vvcopy.c: libvvclient's C API in use, as a small tool.
 *
 *   vvcopy [--id N] [--no-finish] FILE CLASS   a new VV of class CLASS and FILE's size, FILE
 *                                              written into it, finished; prints its name
 *   vvcopy --read NAME OUT                     the VV NAME copied into the file OUT ("-": stdout)
 *
 * Where vvmd and the NBD server are comes from the environment (VVM_CONF, VVM_VVMD, VVM_NBD_URI;
 * see vvclient_c.h), and over TLS who the caller is (VVM_TLS_PSK_FILE, VVM_TLS_CERTIFICATES).
 * Build: cc vvcopy.c $(pkg-config --cflags --libs vvclient).
 * Exit codes: 0 success, 1 failure, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vvclient_c.h"

/* Big enough that a copy runs at the server's speed, small enough for any machine. */
#define BUFFER_SIZE (4 << 20)

static int usage(void) {
  fprintf(stderr,
          "usage: vvcopy [--id N] [--no-finish] FILE CLASS\n"
          "       vvcopy --read NAME OUT\n");
  return 2;
}

/* Prints the library's message for a call that failed, with errno's name. */
static int failed(const char* what) {
  int err = errno;
  fprintf(stderr, "vvcopy: %s: %s (%s)\n", what, vv_last_error(), strerror(err));
  return 1;
}

static int copy_in(const char* path, const char* vv_class, uint64_t id, int finish) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    fprintf(stderr, "vvcopy: %s: %s\n", path, strerror(errno));
    return 1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size == 0) {
    fprintf(stderr, "vvcopy: %s: %s\n", path, st.st_size == 0 ? "empty" : strerror(errno));
    close(fd);
    return 1;
  }
  char name[VV_NAME_MAX];
  if (vv_create(vv_class, (uint64_t)st.st_size, id, name, sizeof name) != 0) {
    close(fd);
    return failed("create");
  }
  VV* vv = vv_openwrite(name);
  if (vv == NULL) {
    close(fd);
    return failed(name);
  }
  char* buf = malloc(BUFFER_SIZE);
  int rc = 0;
  if (buf == NULL) {
    fprintf(stderr, "vvcopy: out of memory\n");
    rc = 1;
  }
  while (rc == 0) {
    ssize_t n = read(fd, buf, BUFFER_SIZE);
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "vvcopy: %s: %s\n", path, strerror(errno));
      rc = 1;
      break;
    }
    if (n == 0) break;
    /* vv_write may write less than asked, as write(2) may. */
    for (ssize_t done = 0; done < n;) {
      ssize_t w = vv_write(vv, buf + done, (size_t)(n - done));
      if (w < 0) {
        rc = failed(name);
        break;
      }
      done += w;
    }
    if (rc != 0) break;
  }
  free(buf);
  close(fd);
  /* The data is durable only once vv_close has flushed it. */
  if (vv_close(vv) != 0 && rc == 0) rc = failed(name);
  if (rc == 0 && finish && vv_finish(name) != 0) rc = failed(name);
  if (rc == 0) printf("%s\n", name);
  return rc;
}

static int copy_out(const char* name, const char* path) {
  VV* vv = vv_openread(name);
  if (vv == NULL) return failed(name);
  int fd = strcmp(path, "-") == 0 ? STDOUT_FILENO : open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    fprintf(stderr, "vvcopy: %s: %s\n", path, strerror(errno));
    vv_close(vv);
    return 1;
  }
  char* buf = malloc(BUFFER_SIZE);
  int rc = 0;
  if (buf == NULL) {
    fprintf(stderr, "vvcopy: out of memory\n");
    rc = 1;
  }
  while (rc == 0) {
    ssize_t n = vv_read(vv, buf, BUFFER_SIZE);
    if (n < 0) {
      rc = failed(name);
      break;
    }
    if (n == 0) break; /* the end of the VV */
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(fd, buf + done, (size_t)(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        fprintf(stderr, "vvcopy: %s: %s\n", path, strerror(errno));
        rc = 1;
        break;
      }
      done += w;
    }
    if (rc != 0) break;
  }
  free(buf);
  if (vv_close(vv) != 0 && rc == 0) rc = failed(name);
  if (fd != STDOUT_FILENO && close(fd) != 0 && rc == 0) {
    fprintf(stderr, "vvcopy: %s: %s\n", path, strerror(errno));
    rc = 1;
  }
  return rc;
}

int main(int argc, char** argv) {
  int read_mode = 0, finish = 1;
  uint64_t id = 0;
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; ++i) {
    if (strcmp(argv[i], "--read") == 0) {
      read_mode = 1;
    } else if (strcmp(argv[i], "--no-finish") == 0) {
      finish = 0;
    } else if (strcmp(argv[i], "--id") == 0 && i + 1 < argc) {
      char* end = NULL;
      errno = 0;
      id = strtoull(argv[++i], &end, 10);
      if (errno != 0 || *end != '\0' || argv[i][0] == '-') return usage();
    } else {
      return usage();
    }
  }
  if (argc - i != 2) return usage();
  if (read_mode) return copy_out(argv[i], argv[i + 1]);
  return copy_in(argv[i], argv[i + 1], id, finish);
}
