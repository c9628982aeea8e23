/* Shared-memory segments for a worker's lanes.
 *
 * The segment has no name anyone could find it by: the parent makes it
 * anonymous (memfd_create() on Linux) and the descriptor itself goes to
 * the worker over the channel, with the LANES frame (SCM_RIGHTS). A name
 * would outlive a parent killed before its worker opened the segment, and
 * the system keeps such names until it restarts. Where there is no
 * anonymous kind, a POSIX shared memory object is made under a random name
 * (mode 0600, created exclusively) that is removed in the next call: only
 * a death between the two leaves it. */
#define _GNU_SOURCE 1 /* glibc: memfd_create() with -std=c11 */
/* A segment of the biggest lanes (2 GiB and more) needs a 64-bit off_t for
 * ftruncate() on 32-bit systems, where off_t is 32 bits by default. */
#define _FILE_OFFSET_BITS 64
#define _DARWIN_C_SOURCE 1 /* macOS: MAP_ANON and friends */

#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the LANES frame names: "the descriptor that came with me". */
#define PASSED_TOKEN "fd"

struct pp__shm {
  unsigned char *base;
  size_t size;
  int fd; /* kept to allocate its pages (pp__shm_back) */
};

/* Maps `fd` (kept in shm, or closed on failure) as a segment of `size`
 * bytes. */
static pp_status map_fd(int fd, size_t size, pp__shm *shm) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    pp__close(fd);
    return pp__errno_status(err);
  }
  shm->base = p;
  shm->size = size;
  shm->fd = fd;
  return PP_OK;
}

/* A shared memory object whose name is gone before this returns: a
 * descriptor, close-on-exec, or -1 with errno. */
static int unnamed_object(void) {
  unsigned char rnd[8];
  if (pp__random_bytes(rnd, sizeof rnd) != PP_OK) {
    errno = EAGAIN;
    return -1;
  }
  /* Short: macOS allows 31 bytes, which its pids (5 digits) keep to. */
  char name[64];
  snprintf(name, sizeof name, "/pp.%ld.%02x%02x%02x%02x%02x%02x%02x%02x",
           (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5],
           rnd[6], rnd[7]);
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0)
    return -1;
  shm_unlink(name);
  fd = pp__fd_above_std(fd);
  if (fd < 0)
    return -1;
  if (pp__set_cloexec(fd) != 0) {
    int err = errno;
    pp__close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

/* An anonymous segment's descriptor, close-on-exec, or -1 with errno.
 * `named`: as where there is no memfd_create() (a test hook). */
static int anonymous_segment(int named) {
#if defined(__linux__) && defined(MFD_CLOEXEC)
  if (!named) {
    int fd = memfd_create("procpool-lanes", MFD_CLOEXEC);
    /* ENOSYS: a kernel older than 3.17, or a sandbox that forbids it. */
    if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
      return pp__fd_above_std(fd);
  }
#else
  (void)named;
#endif
  return unnamed_object();
}

pp_status pp__backend_shm_create(pp__backend *b, unsigned slot, size_t size,
                                 pp__shm **out, char token[PP__SHM_TOKEN_MAX]) {
  *out = NULL;
  pp__shm *shm = calloc(1, sizeof *shm);
  if (!shm)
    return PP_ENOMEM;
  int fd = anonymous_segment(pp__backend_named_segments(b));
  if (fd < 0) {
    free(shm);
    return pp__errno_status(errno);
  }
  if (ftruncate(fd, (off_t)size) != 0) {
    pp_status st = pp__errno_status(errno);
    pp__close(fd);
    free(shm);
    return st;
  }
  pp_status st = map_fd(fd, size, shm);
  if (st != PP_OK) {
    free(shm);
    return st;
  }
  st = pp__backend_pass_fd(b, slot, fd);
  if (st != PP_OK) {
    pp__shm_free(shm);
    return st;
  }
  strcpy(token, PASSED_TOKEN);
  *out = shm;
  return PP_OK;
}

pp_status pp__shm_open(pp__wchan *chan, const char *token, size_t size,
                       pp__shm **out) {
  *out = NULL;
  /* Taken whatever the token says, so that it is not left open. */
  int fd = chan ? pp__wchan_take_fd(chan) : -1;
  if (!token || strcmp(token, PASSED_TOKEN) != 0 || fd < 0) {
    pp__close(fd);
    return PP_EINVAL;
  }
  pp__shm *shm = calloc(1, sizeof *shm);
  if (!shm) {
    pp__close(fd);
    return PP_ENOMEM;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || (size_t)sb.st_size != size) {
    pp__close(fd);
    free(shm);
    return PP_ESYSTEM;
  }
  pp_status st = map_fd(fd, size, shm);
  if (st != PP_OK) {
    free(shm);
    return st;
  }
  *out = shm;
  return PP_OK;
}

unsigned char *pp__shm_base(const pp__shm *shm) { return shm->base; }

pp_status pp__shm_back(pp__shm *shm, size_t offset, size_t len) {
#if defined(__APPLE__)
  /* No posix_fallocate(); macOS's shared memory is not a file system that
   * fills up. */
  (void)shm;
  (void)offset;
  (void)len;
  return PP_OK;
#else
  int err;
  do
    err = posix_fallocate(shm->fd, (off_t)offset, (off_t)len);
  while (err == EINTR);
  /* A file system that cannot say (EOPNOTSUPP, EINVAL) is taken as one
   * that does not run out: tmpfs, the usual one, can. */
  if (err == 0 || err == EOPNOTSUPP || err == EINVAL)
    return PP_OK;
  return err == ENOSPC || err == EFBIG ? PP_ENOMEM : PP_ESYSTEM;
#endif
}

void pp__shm_free(pp__shm *shm) {
  if (!shm)
    return;
  munmap(shm->base, shm->size);
  pp__close(shm->fd);
  free(shm);
}
