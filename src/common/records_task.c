/* Records tasks: a records map's chunk in one call (pp_register_records()).
 *
 * A task registered with pp_register() costs the worker a call per record,
 * with its argument and result passed through the call's accessors; for a
 * task as small as a square that is most of a map's time. A records task
 * gets the chunk's arrays and loops itself. Its failures are listed as the
 * per-record loop lists them, so the parent cannot tell the two apart. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Lists one failure; the message is the caller's and stays so. */
static pp_status list_failure(pp__buf *list, size_t index, pp_status status,
                              const char *message) {
  pp_status st = pp__put_u32(list, (uint32_t)index);
  if (st == PP_OK)
    st = pp__put_u8(list, (unsigned)status);
  if (st == PP_OK)
    st = pp__put_str32(list, message, message ? strlen(message) : 0);
  return st;
}

pp_status pp_records_fail(pp_call *call, size_t index, const char *format,
                          ...) {
  if (!call || !call->records || index >= call->records->count)
    return pp__api(__func__,
                   pp__fail(PP_EINVAL,
                            !call            ? "call is NULL"
                            : !call->records ? "not a records task's call"
                                             : "index %zu is past the "
                                               "chunk's %zu records",
                            index,
                            call && call->records ? call->records->count : 0));
  pp__records_failures *rf = call->records;
  if (rf->status != PP_OK)
    return pp__api(__func__, rf->status);
  if (!rf->failed) {
    rf->failed = calloc((rf->count + 7) / 8, 1);
    if (!rf->failed)
      return pp__api(__func__, rf->status = PP_ENOMEM);
  }
  unsigned char bit = (unsigned char)(1u << (index % 8));
  if (rf->failed[index / 8] & bit)
    return PP_OK; /* the first message stands */
  char *message;
  if (format) {
    va_list ap;
    va_start(ap, format);
    message = pp__vformat(format, ap);
    va_end(ap);
  } else {
    message = pp__format("task '%s' failed on record %zu", rf->task, index);
  }
  pp_status st =
      message ? list_failure(rf->list, index, PP_ETASK, message) : PP_ENOMEM;
  free(message);
  if (st != PP_OK)
    return pp__api(__func__, rf->status = st);
  rf->failed[index / 8] |= bit;
  rf->nfailed++;
  return PP_OK;
}

/* Zeroes the results of the records listed in `list`, as the per-record
 * loop does: a failed record's result is unspecified, but never stale
 * bytes of an earlier chunk. */
static void zero_failed(const pp__buf *list, size_t nfailed,
                        const pp_records_chunk *chunk) {
  pp__reader r;
  pp__reader_init(&r, pp__buf_head(list), pp__buf_len(list));
  for (size_t i = 0; i < nfailed && !r.bad; i++) {
    size_t index = pp__get_u32(&r), len;
    pp__get_u8(&r);
    pp__get_str32(&r, &len);
    memset((unsigned char *)chunk->out + index * chunk->out_size, 0,
           chunk->out_size);
  }
}

static int aligned(const void *p) {
  return (uintptr_t)p % PP_RECORDS_ALIGN == 0;
}

/* Points `chunk`'s arrays, where they are not aligned, at aligned room in
 * `scratch`, the records copied there. PP_OK or PP_ENOMEM. */
static pp_status align_arrays(pp__buf *scratch, pp_records_chunk *chunk) {
  if (aligned(chunk->in) && aligned(chunk->out))
    return PP_OK;
  size_t in_len = chunk->count * chunk->in_size;
  size_t out_len = chunk->count * chunk->out_size;
  size_t in_room =
      (in_len + PP_RECORDS_ALIGN - 1) / PP_RECORDS_ALIGN * PP_RECORDS_ALIGN;
  pp__buf_clear(scratch);
  pp_status st =
      pp__buf_reserve(scratch, PP_RECORDS_ALIGN - 1 + in_room + out_len);
  if (st != PP_OK)
    return st;
  unsigned char *room = pp__buf_tail(scratch);
  room += (PP_RECORDS_ALIGN - (uintptr_t)room % PP_RECORDS_ALIGN) %
          PP_RECORDS_ALIGN;
  if (!aligned(chunk->in)) {
    memcpy(room, chunk->in, in_len);
    chunk->in = room;
  }
  if (!aligned(chunk->out))
    chunk->out = room + in_room;
  return PP_OK;
}

pp_status pp__records_task_run(pp_call *call, pp__buf *errs, pp__buf *scratch,
                               pp_records_task_fn fn, const char *name,
                               const pp_records_chunk *given, size_t *nerr) {
  pp__records_failures rf = {errs, given->count, 0, NULL, name, PP_OK};
  pp_records_chunk chunk = *given;
  *nerr = 0;
  pp__buf_clear(errs);
  pp_status st = align_arrays(scratch, &chunk);
  if (st != PP_OK)
    return st;
  pp__call_reset(call);
  call->head.argv = NULL;
  call->head.argc = 0;
  call->sink = NULL;
  call->records = &rf;
  pp_status cs = fn(&chunk, call);
  call->records = NULL;
  free(rf.failed);
  if (rf.status != PP_OK) {
    pp__call_reset(call);
    return rf.status;
  }
  if (cs == PP_OK && !call->failed) {
    *nerr = rf.nfailed;
    zero_failed(errs, rf.nfailed, &chunk);
  } else {
    /* The whole chunk failed: every record says so, with the one message,
     * and only so: the records it failed one by one before are listed
     * anew (the answer lists each record once). */
    cs = pp__call_outcome(call, name, cs);
    pp__buf_clear(errs);
    memset(chunk.out, 0, chunk.count * chunk.out_size);
    for (size_t i = 0; st == PP_OK && i < chunk.count; i++)
      st = list_failure(errs, i, cs, call->message);
    pp__call_reset(call);
    if (st != PP_OK)
      return st;
    *nerr = chunk.count;
  }
  if (chunk.out != given->out)
    memcpy(given->out, chunk.out, chunk.count * chunk.out_size);
  return PP_OK;
}
