/* Why a call failed, in words (pp_last_error()): the call in progress
 * notes what it found wrong with pp__fail(), and each public function hands
 * its status back through pp__api(), which, for a failure, writes the
 * thread's message from the function's name and that reason, or from the
 * status's own words where no reason was given. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

pp_status pp__fail(pp_status st, const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  pp__vfail(st, format, ap);
  va_end(ap);
  return st;
}

pp_status pp__vfail(pp_status st, const char *format, va_list ap) {
  pp__thread_errors *e = pp__errors_of_thread();
  vsnprintf(e->reason, sizeof e->reason, format, ap);
  e->reason_status = st;
  return st;
}

pp_status pp__fail_text(pp_status st, const char *text, size_t len) {
  pp__thread_errors *e = pp__errors_of_thread();
  if (!text) {
    e->reason_status = PP_OK;
    return st;
  }
  if (len > sizeof e->reason - 1)
    len = sizeof e->reason - 1;
  memcpy(e->reason, text, len);
  e->reason[len] = '\0';
  e->reason_status = st;
  return st;
}

pp_status pp__api_failed(const char *function, pp_status st) {
  pp__thread_errors *e = pp__errors_of_thread();
  /* A reason given for another status belongs to a failure the call got
   * over, not to this one. */
  const char *why = e->reason_status == st ? e->reason : pp_strerror(st);
  snprintf(e->message, sizeof e->message, "%s: %s", function, why);
  e->reason_status = PP_OK;
  return st;
}

const char *pp_last_error(void) {
  const char *m = pp__errors_of_thread()->message;
  return m[0] ? m : NULL;
}
