/* Shared-memory segments for a worker's lanes: POSIX shared memory objects.
 *
 * A worker may be a fork of the launcher or a freshly executed program, so
 * it cannot inherit the segment: it opens it by a random name that only this
 * user may open (mode 0600, created exclusively) and removes the name at
 * once. The parent removes it too once the worker answered, so no name
 * outlives the pair however either ends. */
#define _POSIX_C_SOURCE 200809L
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

struct pp__shm {
  unsigned char *base;
  size_t size;
  int fd;                       /* kept to allocate its pages (pp__shm_back) */
  char name[PP__SHM_TOKEN_MAX]; /* "" once removed */
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

pp_status pp__backend_shm_create(pp__backend *b, unsigned slot, size_t size,
                                 pp__shm **out, char token[PP__SHM_TOKEN_MAX]) {
  (void)b;
  (void)slot;
  *out = NULL;
  pp__shm *shm = calloc(1, sizeof *shm);
  if (!shm)
    return PP_ENOMEM;
  unsigned char rnd[8];
  pp_status st = pp__random_bytes(rnd, sizeof rnd);
  if (st != PP_OK) {
    free(shm);
    return st;
  }
  /* Short: macOS allows 31 bytes. */
  snprintf(shm->name, sizeof shm->name,
           "/pp.%ld.%02x%02x%02x%02x%02x%02x%02x%02x", (long)getpid(), rnd[0],
           rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
  int fd = shm_open(shm->name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    st = pp__errno_status(errno);
    free(shm);
    return st;
  }
  if (pp__set_cloexec(fd) != 0 || ftruncate(fd, (off_t)size) != 0) {
    st = pp__errno_status(errno);
    pp__close(fd);
    shm_unlink(shm->name);
    free(shm);
    return st;
  }
  st = map_fd(fd, size, shm);
  if (st != PP_OK) {
    shm_unlink(shm->name);
    free(shm);
    return st;
  }
  strcpy(token, shm->name);
  *out = shm;
  return PP_OK;
}

void pp__shm_forget(pp__shm *shm) {
  if (shm && shm->name[0]) {
    shm_unlink(shm->name);
    shm->name[0] = '\0';
  }
}

pp_status pp__shm_open(const char *token, size_t size, pp__shm **out) {
  *out = NULL;
  if (!token || token[0] != '/' || strlen(token) >= PP__SHM_TOKEN_MAX)
    return PP_EINVAL;
  pp__shm *shm = calloc(1, sizeof *shm);
  if (!shm)
    return PP_ENOMEM;
  int fd = shm_open(token, O_RDWR, 0);
  if (fd < 0) {
    free(shm);
    return pp__errno_status(errno);
  }
  shm_unlink(token);
  struct stat sb;
  if (pp__set_cloexec(fd) != 0 || fstat(fd, &sb) != 0 ||
      (size_t)sb.st_size != size) {
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
  pp__shm_forget(shm);
  munmap(shm->base, shm->size);
  pp__close(shm->fd);
  free(shm);
}
