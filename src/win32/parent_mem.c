/* A worker's access to its parent's memory (backend.h): a handle to the
 * parent opened for ReadProcessMemory() and WriteProcessMemory(). Windows
 * grants it to a process of the same user unless the parent is protected
 * or runs at a higher integrity level; the worker asks once, with the
 * probe the parent sets (worker.c), and the parent uses the path only for
 * workers that succeeded. */
#include "win32.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pp__parent_mem {
  HANDLE process;
  DWORD err; /* GetLastError() of the last failure; 0: none */
};

pp_status pp__parent_mem_open(long pid, pp__parent_mem **out) {
  *out = NULL;
  if (pid <= 0)
    return PP_EINVAL;
  pp__parent_mem *m = calloc(1, sizeof *m);
  if (!m)
    return PP_ENOMEM;
  m->process =
      OpenProcess(PROCESS_VM_READ | PROCESS_VM_WRITE | PROCESS_VM_OPERATION,
                  FALSE, (DWORD)pid);
  if (!m->process) {
    pp_status st = pp__win32_status(GetLastError());
    free(m);
    return st == PP_OK ? PP_ESYSTEM : st;
  }
  *out = m;
  return PP_OK;
}

/* A partial copy is a failure: what it moved is not undone, and the
 * caller fails the whole chunk. */
pp_status pp__parent_mem_copy(pp__parent_mem *m, void *local, uint64_t addr,
                              size_t len, int to_parent) {
  SIZE_T done = 0;
  if ((uint64_t)(uintptr_t)addr != addr)
    return PP_EINVAL;
  void *remote = (void *)(uintptr_t)addr;
  BOOL ok = to_parent
                ? WriteProcessMemory(m->process, remote, local, len, &done)
                : ReadProcessMemory(m->process, remote, local, len, &done);
  if (!ok || done != len) {
    m->err = ok ? ERROR_PARTIAL_COPY : GetLastError();
    return PP_ESYSTEM;
  }
  return PP_OK;
}

void pp__parent_mem_error(const pp__parent_mem *m, char *buf, size_t cap) {
  if (!cap)
    return;
  if (!m || !m->err) {
    snprintf(buf, cap, "no failure");
    return;
  }
  pp__win32_error_text(m->err, buf, cap);
}

void pp__parent_mem_close(pp__parent_mem *m) {
  if (!m)
    return;
  CloseHandle(m->process);
  free(m);
}
