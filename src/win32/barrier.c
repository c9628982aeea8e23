/* A barrier on every thread of the process (backend.h).
 * FlushProcessWriteBuffers() is Windows' call for it, but iter.c's owner
 * path has not been measured on Windows, nor the call checked under Wine,
 * so it is not offered: pp__remote_barrier_ready() says 0 and iter.c keeps
 * its lock for every item. */
#include "win32.h"

void pp__remote_barrier_prepare(void) {}

int pp__remote_barrier_ready(void) { return 0; }

void pp__remote_barrier(void) { FlushProcessWriteBuffers(); }

void *pp__thread_token(void) {
  /* Thread ids are never 0; alive at once, never equal. */
  return (void *)(uintptr_t)GetCurrentThreadId();
}
