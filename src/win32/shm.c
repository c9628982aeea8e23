/* Shared-memory segments for a worker's lanes: an unnamed file mapping
 * backed by the paging file. The parent duplicates its handle straight
 * into the worker's process, so there is no name for anyone else to open
 * and nothing to remove: the handle dies with the worker. */
#include "win32.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pp__shm {
  HANDLE mapping;
  unsigned char *base;
};

/* Maps the whole segment; on failure *err (may be NULL) is the system's
 * reason. */
static pp_status map_view(pp__shm *shm, size_t size, DWORD *err) {
  shm->base = MapViewOfFile(shm->mapping, FILE_MAP_ALL_ACCESS, 0, 0, size);
  if (shm->base)
    return PP_OK;
  DWORD e = GetLastError();
  if (err)
    *err = e;
  return pp__win32_status(e);
}

pp_status pp__backend_shm_create(pp__backend *b, unsigned slot, size_t size,
                                 pp__shm **out, char token[PP__SHM_TOKEN_MAX]) {
  *out = NULL;
  HANDLE process = pp__backend_slot_process(b, slot);
  if (!process)
    return PP_EINVAL;
  pp__shm *shm = calloc(1, sizeof *shm);
  if (!shm)
    return PP_ENOMEM;
  unsigned long long wide = size;
  shm->mapping = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE,
                                    (DWORD)(wide >> 32), (DWORD)wide, NULL);
  if (!shm->mapping) {
    free(shm);
    return pp__win32_status(GetLastError());
  }
  HANDLE theirs = NULL;
  pp_status st = map_view(shm, size, NULL);
  if (st == PP_OK &&
      !DuplicateHandle(GetCurrentProcess(), shm->mapping, process, &theirs, 0,
                       FALSE, DUPLICATE_SAME_ACCESS))
    st = pp__win32_status(GetLastError());
  if (st != PP_OK) {
    pp__shm_free(shm);
    return st;
  }
  /* A handle value means something in the worker's process only. */
  snprintf(token, PP__SHM_TOKEN_MAX, "h%llx",
           (unsigned long long)(uintptr_t)theirs);
  *out = shm;
  return PP_OK;
}

pp_status pp__shm_open(pp__wchan *chan, const char *token, size_t size,
                       pp__shm **out) {
  (void)chan; /* the handle is in this process already */
  *out = NULL;
  unsigned long long value = 0;
  char extra;
  if (!token || sscanf(token, "h%llx%c", &value, &extra) != 1 || !value)
    return PP_EINVAL;
  pp__shm *shm = calloc(1, sizeof *shm);
  if (!shm)
    return PP_ENOMEM;
  shm->mapping = (HANDLE)(uintptr_t)value;
  /* A view larger than the mapping fails, so a size the parent did not
   * make is refused here. */
  DWORD err = 0;
  pp_status st = map_view(shm, size, &err);
  if (st != PP_OK) {
    /* A handle that is no mapping fails as an invalid one, and is left
     * alone: it may be another of this process's. A mapping that could
     * not be mapped (a size it does not have, no address space) is
     * closed: kept, it would hold the section's commit for the worker's
     * life, with no lanes to show for it. */
    if (err != ERROR_INVALID_HANDLE)
      CloseHandle(shm->mapping);
    free(shm);
    return st;
  }
  *out = shm;
  return PP_OK;
}

unsigned char *pp__shm_base(const pp__shm *shm) { return shm->base; }

/* A mapping backed by the paging file is committed when it is created:
 * there is nothing left to fail when its pages are first touched. */
pp_status pp__shm_back(pp__shm *shm, size_t offset, size_t len) {
  (void)shm;
  (void)offset;
  (void)len;
  return PP_OK;
}

void pp__shm_free(pp__shm *shm) {
  if (!shm)
    return;
  if (shm->base)
    UnmapViewOfFile(shm->base);
  if (shm->mapping)
    CloseHandle(shm->mapping);
  free(shm);
}
