/* Status names and the process-wide runtime set-up. */
#include "internal.h"

#include <apr_general.h>

static const char *const names[PP_STATUS_COUNT_] = {
    [PP_OK] = "success",
    [PP_EINVAL] = "invalid argument",
    [PP_ENOMEM] = "out of memory",
    [PP_ESYSTEM] = "an operating-system call failed",
    [PP_ETIMEOUT] = "timed out",
    [PP_ETASK] = "the task failed",
    [PP_ECLOSED] = "the pool is closed",
    [PP_ESTATE] = "not valid in the present state",
    [PP_ENOTREADY] = "the result is not ready",
    [PP_ETERMINATED] = "the pool was terminated",
    [PP_EWORKERDIED] = "the worker died",
    [PP_EINITIALIZER] = "the pool's initializer failed",
    [PP_ENOTSUP] = "not supported on this platform",
    [PP_EUNKNOWNTASK] = "no task is registered under that name",
    [PP_EPROTOCOL] = "a malformed message came from a worker",
    [PP_ETOOBIG] = "too big",
    [PP_EOF] = "no more items",
    [PP_ETIMELIMIT] = "the task exceeded its time limit",
    [PP_ECANCELLED] = "the call was cancelled",
};

static const char unknown_status[] = "unknown status";

const char *pp_strerror(pp_status status) {
  if ((unsigned)status >= PP_STATUS_COUNT_)
    return unknown_status;
  return names[status];
}

int pp__is_status_text(const char *text) {
  if (text == unknown_status)
    return 1;
  for (size_t i = 0; i < PP_STATUS_COUNT_; i++)
    if (text == names[i])
      return 1;
  return 0;
}

/* APR must be initialised once per process before its pools are used. The
 * worker-mode hook runs first thing in main(), so in practice this happens
 * there, before any thread exists; pool creation repeats the cheap check. */
static int runtime_ready;

pp_status pp__runtime_init(void) {
  if (runtime_ready)
    return PP_OK;
  if (apr_initialize() != APR_SUCCESS)
    return PP_ESYSTEM;
  pp__apr_fork_guard();
  runtime_ready = 1;
  return PP_OK;
}
