/* The worker side of one task call: arguments in, a value or a message out. */
/* The functions that procpool.h's accessor macros stand for are defined
 * here, under their own names. */
#define PP_NO_INLINE_ACCESSORS
#include "internal.h"
#include "ring.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t pp_call_argc(const pp_call *call) { return call ? call->head.argc : 0; }

/* Why an argument cannot be had: on the way out of a failed call only. */
static PP__NOINLINE pp_status bad_arg(const char *function, const pp_call *call,
                                      size_t index, const void *out) {
  if (!call || !out)
    return pp__api(function,
                   pp__fail(PP_EINVAL, "%s is NULL", !call ? "call" : "out"));
  if (index >= call->head.argc)
    return pp__api(function,
                   pp__fail(PP_EINVAL,
                            "index %zu is past the call's %zu arguments", index,
                            call->head.argc));
  return pp__api(function,
                 pp__fail(PP_EINVAL,
                          "argument %zu is %zu bytes, not the 8 of an "
                          "int64_t",
                          index, call->head.argv[index].len));
}

pp_status pp_call_arg(const pp_call *call, size_t index, pp_bytes *out) {
  if (!call || !out || index >= call->head.argc)
    return bad_arg(__func__, call, index, out);
  *out = call->head.argv[index];
  return PP_OK;
}

/* The _i64 accessors are what a records map of numbers calls once per
 * record each: they take no detour through the generic ones. */
pp_status pp_call_arg_i64(const pp_call *call, size_t index, int64_t *out) {
  if (!call || !out || index >= call->head.argc ||
      call->head.argv[index].len != sizeof *out)
    return bad_arg(__func__, call, index, out);
  memcpy(out, call->head.argv[index].data, sizeof *out);
  return PP_OK;
}

/* Sets the call's value: into its output record in a records map, else
 * where the worker builds its answer (or the call's own buffer). Inline in
 * both callers, so that an 8-byte value is one store. An imap's values
 * are records too once the first has set their size, with the answer as
 * sink: a value of another size goes there instead, and the record is
 * dropped, which tells the worker's loop. */
static inline pp_status set_value(pp_call *call, const void *data, size_t len) {
  if (call->head.record && len != call->head.record_size && call->sink)
    call->head.record = NULL;
  if (call->head.record) {
    if (len != call->head.record_size) {
      call->refused_len = len + 1;
      return pp__fail(PP_ETOOBIG,
                      "a value of %zu bytes for a %zu-byte record "
                      "(pp_records::out_size)",
                      len, call->head.record_size);
    }
    if (len) /* an imap's values may be empty, `data` NULL then */
      memcpy(call->head.record, data, len);
  } else {
    pp__buf *to = call->sink ? call->sink : &call->value;
    pp__buf_truncate(to, call->sink ? call->sink_at : 0); /* replaces */
    pp_status st = pp__buf_append(to, data, len);
    if (st != PP_OK)
      return st;
  }
  call->head.returned = 1;
  return PP_OK;
}

pp_status pp_call_return(pp_call *call, const void *data, size_t len) {
  if (!call || (!data && len))
    return pp__api(
        __func__,
        pp__fail(PP_EINVAL,
                 !call ? "call is NULL" : "data is NULL but len is %zu", len));
  return pp__api(__func__, set_value(call, data, len));
}

/* pp_call_return_i64() outside a records map of 8-byte results: apart, so
 * that the records case, once per record, needs no stack frame. */
static PP__NOINLINE pp_status return_i64_elsewhere(pp_call *call,
                                                   int64_t value) {
  return pp__api("pp_call_return_i64",
                 call ? set_value(call, &value, sizeof value)
                      : pp__fail(PP_EINVAL, "call is NULL"));
}

pp_status pp_call_return_i64(pp_call *call, int64_t value) {
  if (!call)
    return return_i64_elsewhere(call, value);
  if (call->head.record && call->head.record_size == sizeof value) {
    memcpy(call->head.record, &value, sizeof value);
    call->head.returned = 1;
    return PP_OK;
  }
  /* Straight into the worker's answer when it has room, as an imap's
   * values go: no call, no frame. */
  pp__buf *to = call->sink;
  if (to && !call->head.record && to->cap - to->start - call->sink_at >= 8) {
    size_t at = to->start + call->sink_at;
    memcpy(to->data + at, &value, sizeof value);
    to->end = at + sizeof value;
    call->head.returned = 1;
    return PP_OK;
  }
  return return_i64_elsewhere(call, value);
}

char *pp__vformat(const char *format, va_list ap) {
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(NULL, 0, format, ap);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (s)
    vsnprintf(s, (size_t)n + 1, format, again);
  va_end(again);
  return s;
}

char *pp__format(const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  char *s = pp__vformat(format, ap);
  va_end(ap);
  return s;
}

char *pp__strdup(const char *s) { return pp__format("%s", s); }

pp_status pp_call_fail(pp_call *call, const char *format, ...) {
  if (!call)
    return pp__api(__func__, pp__fail(PP_EINVAL, "call is NULL"));
  free(call->message);
  call->message = NULL;
  if (format) {
    va_list ap;
    va_start(ap, format);
    call->message = pp__vformat(format, ap);
    va_end(ap);
  }
  call->failed = 1;
  if (call->message)
    pp__fail_text(PP_ETASK, call->message, strlen(call->message));
  return pp__api(__func__, PP_ETASK);
}

pp_status pp__call_run(pp_call *call, const char *name, pp_task_fn fn) {
  if (!fn) {
    call->message =
        pp__registry_find_records(name)
            ? pp__format("task '%s' is a records task "
                         "(pp_register_records()): it runs only in "
                         "pp_map_records()",
                         name)
            : pp__format("no task named '%s' is registered in the worker "
                         "(register every task before pp_worker_main(), at "
                         "the top of main(): a spawn or forkserver worker "
                         "runs main() afresh and knows only those)",
                         name);
    return PP_EUNKNOWNTASK;
  }
  return pp__call_outcome(call, name, fn(call));
}

pp_status pp__call_outcome(pp_call *call, const char *name, pp_status st) {
  if (call->failed) {
    if (!call->message)
      call->message = pp__format("task '%s' failed", name);
    return PP_ETASK;
  }
  if (st != PP_OK) {
    size_t refused = call->refused_len;
    call->refused_len = 0;
    if (st == PP_ETOOBIG && refused && call->head.record)
      call->message = pp__format("task '%s' returned a value of %zu bytes for "
                                 "a %zu-byte record (pp_records::out_size)",
                                 name, refused - 1, call->head.record_size);
    else
      call->message =
          pp__format("task '%s' returned an error: %s", name, pp_strerror(st));
    return PP_ETASK;
  }
  if (call->head.record && !call->head.returned) {
    call->refused_len = 0;
    call->message =
        pp__format("task '%s' returned no value for a %zu-byte record", name,
                   call->head.record_size);
    return PP_ETASK;
  }
  return PP_OK;
}

void pp__call_reset(pp_call *call) {
  pp__buf_clear(&call->value);
  if (call->message) { /* rare: skip the call to free() for every task */
    free(call->message);
    call->message = NULL;
  }
  call->head.returned = call->failed = 0;
  call->refused_len = 0;
  call->head.record = NULL;
}

void pp__call_free(pp_call *call) {
  pp__call_reset(call);
  pp__buf_free(&call->value);
}

pp_status pp__call_send_raw(pp_call *call, const void *data, size_t len) {
  if (!call || !call->link)
    return PP_EINVAL;
  return pp__wlink_write(call->link, data, len);
}
