/* A worker's access to its parent's memory (backend.h): Linux's
 * process_vm_readv() and process_vm_writev(), which copy between two
 * processes' memory in one step, as ptrace would allow. Elsewhere there is
 * none, and records chunks keep to the lanes.
 *
 * The kernel checks, at every call, that this process may ptrace the
 * parent: the same user, a parent that is not set-user-ID or otherwise
 * made undumpable, and whatever policy the system adds (Yama's
 * ptrace_scope 1 lets only ancestors in, not children). The worker asks
 * once, with a probe the parent sets (worker.c), and the parent uses the
 * path only for workers that succeeded. */
#define _GNU_SOURCE 1 /* glibc: process_vm_readv */

#include "posix.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#ifdef __linux__
#include <sys/uio.h>
#endif

struct pp__parent_mem {
  pid_t pid;
  int err; /* errno of the last failure; -1: a short copy */
};

#ifdef __linux__

pp_status pp__parent_mem_open(long pid, pp__parent_mem **out) {
  *out = NULL;
  if (pid <= 0 || (long)(pid_t)pid != pid)
    return PP_EINVAL;
  pp__parent_mem *m = calloc(1, sizeof *m);
  if (!m)
    return PP_ENOMEM;
  m->pid = (pid_t)pid;
  *out = m;
  return PP_OK;
}

/* One call moves at most the iovec's length; a call may stop short (a
 * fault part-way, or a signal), and what it moved is not undone, so the
 * rest is tried again until it fails outright. */
pp_status pp__parent_mem_copy(pp__parent_mem *m, void *local, uint64_t addr,
                              size_t len, int to_parent) {
  if ((uint64_t)(uintptr_t)addr != addr)
    return PP_EINVAL;
  unsigned char *p = local;
  uintptr_t remote = (uintptr_t)addr;
  while (len) {
    struct iovec here = {p, len}, there = {(void *)remote, len};
    ssize_t n = to_parent ? process_vm_writev(m->pid, &here, 1, &there, 1, 0)
                          : process_vm_readv(m->pid, &here, 1, &there, 1, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      m->err = n < 0 ? errno : -1;
      return PP_ESYSTEM;
    }
    p += n;
    remote += (uintptr_t)n;
    len -= (size_t)n;
  }
  return PP_OK;
}

#else /* no such call: the lanes it is */

pp_status pp__parent_mem_open(long pid, pp__parent_mem **out) {
  (void)pid;
  *out = NULL;
  return PP_ENOTSUP;
}

pp_status pp__parent_mem_copy(pp__parent_mem *m, void *local, uint64_t addr,
                              size_t len, int to_parent) {
  (void)m, (void)local, (void)addr, (void)len, (void)to_parent;
  return PP_ENOTSUP;
}

#endif

void pp__parent_mem_error(const pp__parent_mem *m, char *buf, size_t cap) {
  if (!cap)
    return;
  if (!m || m->err == 0)
    snprintf(buf, cap, "no failure");
  else if (m->err < 0)
    snprintf(buf, cap, "the copy moved no bytes");
  else
    snprintf(buf, cap, "%s", strerror(m->err));
}

void pp__parent_mem_close(pp__parent_mem *m) { free(m); }
