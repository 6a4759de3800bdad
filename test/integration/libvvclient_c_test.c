/*
 * libvvclient_c_test.c: the C API, compiled as C, against the real vvmd and nbdkit plugin that
 * libvvclient.sh starts (VVM_CONF and VVM_NBD_URI say where). It makes a VV of an odd size,
 * writes it in pieces of odd sizes and in one call bigger than one NBD request (64 MiB), writes
 * across the end (short) and at the end (ENOSPC), reads back at odd offsets and across the end,
 * checks the errors (EBADF, EINVAL, ENOENT, EROFS, EINVAL for a second finish) and that a
 * finished VV reads back what was written. Prints the VV's name on its last line, for
 * the script's own checks with other clients. With --pattern it prints the bytes the VV should
 * hold instead.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/vvclient_c.h"

/* Past 64 MiB (the most libnbd and nbdkit take in one request; the plugin says 32 MiB) by more
 * than the small writes, so that the big write must be split; not a multiple of anything. */
#define VV_SIZE ((64u << 20) + (256u << 10) + 517u)

static int checks;

#define CHECK(cond)                                                                             \
  do {                                                                                          \
    ++checks;                                                                                   \
    if (!(cond)) {                                                                              \
      fprintf(stderr, "%s:%d: FAIL: %s (errno %d %s; vv_last_error: %s)\n", __FILE__, __LINE__, \
              #cond, errno, strerror(errno), vv_last_error());                                  \
      exit(1);                                                                                  \
    }                                                                                           \
  } while (0)

/* The byte every offset holds: not periodic at any power of two, so a misplaced read shows. */
static unsigned char pattern(uint64_t offset) {
  return (unsigned char)((offset * 7u) ^ (offset >> 9) ^ (offset >> 17) ^ 0x5a);
}

static void fill(unsigned char* buf, size_t n, uint64_t offset) {
  for (size_t i = 0; i < n; ++i) buf[i] = pattern(offset + i);
}

static int matches(const unsigned char* buf, size_t n, uint64_t offset) {
  for (size_t i = 0; i < n; ++i) {
    if (buf[i] != pattern(offset + i)) {
      fprintf(stderr, "byte %llu is 0x%02x, wanted 0x%02x\n", (unsigned long long)(offset + i),
              buf[i], pattern(offset + i));
      return 0;
    }
  }
  return 1;
}

/* Reads at `offset` as a program would: lseek, then read. */
static ssize_t read_at(VV* vv, off_t offset, unsigned char* buf, size_t n) {
  CHECK(vv_lseek(vv, offset, SEEK_SET) == offset);
  return vv_read(vv, buf, n);
}

int main(int argc, char** argv) {
  unsigned char* buf = malloc(VV_SIZE + 4096);
  CHECK(buf != NULL);
  if (argc == 2 && strcmp(argv[1], "--pattern") == 0) { /* what the VV holds, for cmp */
    fill(buf, VV_SIZE, 0);
    CHECK(fwrite(buf, 1, VV_SIZE, stdout) == VV_SIZE);
    free(buf);
    return 0;
  }
  char name[VV_NAME_MAX];
  CHECK(vv_create("A", VV_SIZE, 4242, name, sizeof name) == 0);
  CHECK(strlen(name) == 11 && name[0] == 'A');

  /* --- writing: odd pieces, then the rest in one call bigger than one NBD request --- */
  VV* vv = vv_openwrite(name);
  CHECK(vv != NULL);
  CHECK(vv_lseek(vv, 0, SEEK_END) == (off_t)VV_SIZE);
  CHECK(vv_lseek(vv, 0, SEEK_SET) == 0);
  size_t pieces[] = {1, 4095, 3, 70001, 512};
  uint64_t at = 0;
  for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; ++i) {
    fill(buf, pieces[i], at);
    CHECK(vv_write(vv, buf, pieces[i]) == (ssize_t)pieces[i]);
    at += pieces[i];
    CHECK(vv_lseek(vv, 0, SEEK_CUR) == (off_t)at);
  }
  /* All but the last 100 bytes in one call, then 1000 bytes across the end: 100 are written. */
  size_t big = VV_SIZE - 100 - at;
  fill(buf, big, at);
  CHECK(vv_write(vv, buf, big) == (ssize_t)big);
  fill(buf, 1000, VV_SIZE - 100);
  CHECK(vv_write(vv, buf, 1000) == 100);
  CHECK(vv_lseek(vv, 0, SEEK_CUR) == (off_t)VV_SIZE);
  errno = 0;
  CHECK(vv_write(vv, buf, 1) == -1 && errno == ENOSPC);
  CHECK(strstr(vv_last_error(), "no room at offset") != NULL);
  CHECK(vv_lseek(vv, 1 << 30, SEEK_END) == (off_t)VV_SIZE + (1 << 30)); /* past the end: allowed */
  errno = 0;
  CHECK(vv_write(vv, buf, 1) == -1 && errno == ENOSPC);
  CHECK(vv_write(vv, buf, 0) == 0);
  /* lseek's errors leave the offset alone. */
  CHECK(vv_lseek(vv, 5, SEEK_SET) == 5);
  errno = 0;
  CHECK(vv_lseek(vv, -6, SEEK_CUR) == -1 && errno == EINVAL);
  errno = 0;
  CHECK(vv_lseek(vv, 0, 42) == -1 && errno == EINVAL);
  CHECK(vv_lseek(vv, 0, SEEK_CUR) == 5);

  /* --- reading back through the writer: odd offsets, across the end, at and past it --- */
  CHECK(read_at(vv, 4097, buf, 333) == 333 && matches(buf, 333, 4097));
  CHECK(read_at(vv, (32 << 20) - 7, buf, 9000) == 9000 && matches(buf, 9000, (32 << 20) - 7));
  CHECK(read_at(vv, VV_SIZE - 10, buf, 4096) == 10 && matches(buf, 10, VV_SIZE - 10));
  CHECK(vv_lseek(vv, 0, SEEK_CUR) == (off_t)VV_SIZE);
  CHECK(vv_read(vv, buf, 4096) == 0);
  CHECK(read_at(vv, VV_SIZE + 12345, buf, 4096) == 0);
  CHECK(vv_close(vv) == 0);

  /* --- a reader may not write; a bad name or an unknown VV fails to open --- */
  vv = vv_openread(name);
  CHECK(vv != NULL);
  errno = 0;
  CHECK(vv_write(vv, buf, 1) == -1 && errno == EBADF);
  CHECK(strstr(vv_last_error(), "opened for reading") != NULL);
  CHECK(vv_close(vv) == 0);
  errno = 0;
  CHECK(vv_openread("A0999999999") == NULL && errno == ENOENT);
  errno = 0;
  CHECK(vv_openwrite("../pack/p0") == NULL && errno == EINVAL);

  /* --- finished: read-only, and every byte is there, read in one call --- */
  CHECK(vv_finish(name) == 0);
  errno = 0;
  CHECK(vv_openwrite(name) == NULL && errno == EROFS);
  CHECK(strstr(vv_last_error(), "is finished: read-only") != NULL);
  errno = 0;
  CHECK(vv_finish(name) == -1 && errno == EINVAL);
  vv = vv_openread(name);
  CHECK(vv != NULL);
  memset(buf, 0, VV_SIZE);
  CHECK(vv_read(vv, buf, VV_SIZE + 4096) == (ssize_t)VV_SIZE);
  CHECK(matches(buf, VV_SIZE, 0));
  CHECK(vv_read(vv, buf, 1) == 0);
  CHECK(vv_close(vv) == 0);

  free(buf);
  fprintf(stderr, "libvvclient_c_test: %d checks passed\n", checks);
  printf("%s\n", name);
  return 0;
}
