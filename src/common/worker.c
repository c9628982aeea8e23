/* The worker loop: runs in a worker process, reads frames from its channel,
 * runs the named tasks and answers each frame in order. */
#include "internal.h"
#include "ring.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct worker {
  pp__wlink link; /* the channel, then the rings */
  pp__buf in, out, errs;
  pp__buf records_scratch;    /* a records task's arrays, when misaligned */
  pp__buf lane_frame;         /* the small frame that points into the up lane */
  pp__parent_mem *parent_mem; /* when CONFIG's probe read right */
  pp__buf place_in, place_out; /* records in place: a slice each way */
  pp__shm *shm; /* the lanes' segment, when the parent offered one */
  pp__lane down, up;
  uint64_t max_rss; /* recycle above this resident size; 0: never */
  /* The longest payload the parent takes in a frame (CONFIG): a longer
   * answer goes in pieces. 0 before CONFIG, when no answer is sent. */
  size_t piece_max;
  pp_bytes *argv;
  size_t capargv;
  pp_call call;
  int ran_user_code; /* before_user_code() was called */
} worker;

static pp_status ensure_argv(worker *w, size_t argc) {
  if (argc <= w->capargv)
    return PP_OK;
  pp_bytes *grown = realloc(w->argv, argc * sizeof *grown);
  if (!grown)
    return PP_ENOMEM;
  w->argv = grown;
  w->capargv = argc;
  return PP_OK;
}

/* Reads an argument list into w->argv. A count that the remaining bytes
 * cannot hold is refused before anything is allocated. */
static pp_status read_args(worker *w, pp__reader *r, size_t *argc) {
  /* One argument, whole, is the common case (map, imap): read inline. */
  if (w->capargv && !r->bad && r->len - r->off >= 8) {
    const unsigned char *p = r->p + r->off;
    uint32_t len = pp__load_u32(p + 4);
    if (pp__load_u32(p) == 1 && len <= r->len - r->off - 8) {
      w->argv[0].data = p + 8;
      w->argv[0].len = len;
      r->off += 8 + (size_t)len;
      *argc = 1;
      return PP_OK;
    }
  }
  uint32_t n = pp__get_u32(r);
  if (r->bad || n > (r->len - r->off) / 4)
    return PP_EPROTOCOL;
  pp_status st = ensure_argv(w, n);
  if (st != PP_OK)
    return st;
  for (uint32_t i = 0; i < n; i++) {
    size_t len;
    const unsigned char *p = pp__get_str32(r, &len);
    if (r->bad)
      return PP_EPROTOCOL;
    w->argv[i].data = p;
    w->argv[i].len = len;
  }
  *argc = n;
  return PP_OK;
}

/* Appends one call's answer as RESULTS says it (wire.h), with one
 * reservation: its status, then its value or a failure's message. */
static pp_status put_outcome(pp__buf *out, pp_status status, const void *data,
                             size_t len) {
  if (len > UINT32_MAX)
    return PP_ETOOBIG;
  pp_status st = pp__buf_reserve(out, 5 + len);
  if (st != PP_OK)
    return st;
  unsigned char *p = pp__buf_tail(out);
  p[0] = (unsigned char)status;
  pp__store_u32(p + 1, (uint32_t)len);
  if (len)
    memcpy(p + 5, data, len);
  pp__buf_commit(out, 5 + len);
  return PP_OK;
}

static pp_status put_failure(pp__buf *out, pp_status cs, const char *message) {
  return put_outcome(out, cs, message, message ? strlen(message) : 0);
}

/* Runs one call on w->argv[0..argc), its value written into w->out from
 * `at` on; returns its outcome (a failure's message in w->call.message).
 * As records are (run_records), calls are run by their frame's loop, and
 * the call is reset in full only after a failure: an imap of small items
 * runs this for every item, and the general path (pp__call_run(), a reset,
 * two appends per answer) was about half of a worker's time there. */
static inline pp_status run_call(worker *w, pp_task_fn fn, const char *name,
                                 size_t argc, size_t at) {
  w->call.head.returned = 0;
  w->call.head.argv = w->argv;
  w->call.head.argc = argc;
  w->call.sink = &w->out;
  w->call.sink_at = at;
  pp_status cs = fn ? fn(&w->call) : PP_EUNKNOWNTASK;
  if (cs != PP_OK || w->call.failed)
    cs = fn ? pp__call_outcome(&w->call, name, cs)
            : pp__call_run(&w->call, name, NULL);
  w->call.sink = NULL;
  return cs;
}

/* Runs one call and appends its answer to w->out, as a RESULTS frame says
 * it. */
static inline pp_status answer_call(worker *w, pp_task_fn fn, const char *name,
                                    size_t argc) {
  /* The value is written in place, behind room for its status and length,
   * which are filled in once the task is done. */
  size_t mark = pp__buf_len(&w->out);
  pp_status st = pp__buf_reserve(&w->out, 5);
  if (st != PP_OK)
    return st;
  pp__buf_commit(&w->out, 5);
  pp_status cs = run_call(w, fn, name, argc, mark + 5);
  size_t len = pp__buf_len(&w->out) - (mark + 5);
  if (cs == PP_OK) {
    if (len > UINT32_MAX)
      return PP_ETOOBIG;
    unsigned char *head = pp__buf_head(&w->out) + mark;
    head[0] = (unsigned char)PP_OK;
    pp__store_u32(head + 1, (uint32_t)len);
    return PP_OK;
  }
  /* A failure drops any value it had set: its message takes the place. */
  pp__buf_truncate(&w->out, mark);
  st = put_failure(&w->out, cs, w->call.message);
  pp__call_reset(&w->call);
  return st;
}

/* Starts the RESULTS answer to `f` for `n` calls. */
static pp_status begin_results(worker *w, const pp__frame *f, uint32_t n,
                               size_t *at) {
  pp_status st = pp__frame_begin(&w->out, PP__F_RESULTS, f->id, at);
  if (st == PP_OK)
    st = pp__put_u32(&w->out, n);
  pp__call_reset(&w->call);
  return st;
}

/* Ends the answer begun at `at` in w->out. One longer than a frame's
 * 32-bit length can say still goes, in pieces, which flush() gives their
 * own lengths. */
static pp_status end_answer(worker *w, size_t at) {
  if (pp__buf_len(&w->out) - at - PP__WIRE_HEADER_SIZE > UINT32_MAX)
    return PP_OK;
  return pp__frame_end(&w->out, at);
}

/* Starts reading a work frame: its task's name and its count of calls or
 * records, which every kind of work frame begins with. */
static uint32_t read_head(pp__reader *r, const pp__frame *f,
                          char name[PP__WIRE_MAX_NAME + 1]) {
  pp__reader_init(r, f->payload, f->len);
  pp__get_name(r, name, PP__WIRE_MAX_NAME + 1);
  return pp__get_u32(r);
}

static pp_status run_calls(worker *w, const pp__frame *f) {
  pp__reader r;
  char name[PP__WIRE_MAX_NAME + 1];
  uint32_t n = read_head(&r, f, name);
  if (r.bad)
    return PP_EPROTOCOL;
  pp_task_fn fn = pp__registry_find(name);
  size_t at;
  pp_status st = begin_results(w, f, n, &at);
  for (uint32_t i = 0; st == PP_OK && i < n; i++) {
    size_t argc;
    st = read_args(w, &r, &argc);
    if (st == PP_OK)
      st = answer_call(w, fn, name, argc);
  }
  return st == PP_OK ? end_answer(w, at) : st;
}

/* An answer begun as VALUES (wire.h), `i` values of `size` bytes in w->out
 * after the header at `*at`, meets item i, whose outcome `cs` is not a
 * value of that size (its value, if any, written from `mark` on): the
 * answer so far is rewritten, with item i's, as the RESULTS frame that says
 * the same. It is built in w->errs, which then takes w->out's place. */
static pp_status values_to_results(worker *w, const pp__frame *f, size_t *at,
                                   uint32_t n, uint32_t i, size_t size,
                                   size_t mark, pp_status cs) {
  pp__buf *b = &w->errs;
  pp__buf_clear(b);
  size_t results_at;
  pp_status st = pp__frame_begin(b, PP__F_RESULTS, f->id, &results_at);
  if (st == PP_OK)
    st = pp__put_u32(b, n);
  const unsigned char *values =
      pp__buf_head(&w->out) + *at + PP__WIRE_HEADER_SIZE + 8;
  for (uint32_t j = 0; st == PP_OK && j < i; j++)
    st = put_outcome(b, PP_OK, values + (size_t)j * (size + 1), size);
  if (st == PP_OK && cs == PP_OK) {
    st = put_outcome(b, PP_OK, pp__buf_head(&w->out) + mark,
                     pp__buf_len(&w->out) - mark);
  } else if (st == PP_OK) {
    st = put_failure(b, cs, w->call.message);
    pp__call_reset(&w->call);
  }
  pp__buf swap = w->out;
  w->out = *b;
  *b = swap;
  pp__buf_clear(b);
  *at = results_at;
  return st;
}

/* run_items' loop once the first value has set the size, from item
 * `*i`: each call writes its value straight into its place in the
 * answer, as a record (call.c: a value of another size goes to the sink
 * and drops the record), so that an item costs its task's call and little
 * more, as in a records map. Stops at the first item that did not simply
 * give a value of that size: its index in `*i` (or `n`), its outcome in
 * `*cs` and where its value begins in `*mark`. Only running out of memory
 * is an error. */
static pp_status plain_values(worker *w, pp_task_fn fn, const char *name,
                              const unsigned char *in, size_t size,
                              size_t vsize, uint32_t n, uint32_t *i,
                              pp_status *cs, size_t *mark) {
  pp_call *call = &w->call;
  call->head.argv = w->argv;
  call->head.argc = 1;
  call->sink = &w->out;
  call->head.record_size = vsize;
  pp_status st = PP_OK;
  for (; *i < n; ++*i) {
    st = pp__buf_reserve(&w->out, vsize + 1);
    if (st != PP_OK)
      break;
    w->argv[0].data = in + (size_t)*i * size;
    unsigned char *slot = pp__buf_tail(&w->out);
    call->head.record = slot;
    call->sink_at = pp__buf_len(&w->out);
    call->head.returned = 0;
    *cs = fn(call);
    if (*cs != PP_OK || call->failed || !call->head.returned ||
        !call->head.record)
      break;
    slot[vsize] = 0; /* where the parent puts its NUL */
    pp__buf_commit(&w->out, vsize + 1);
  }
  *mark = call->sink_at;
  call->head.record =
      NULL; /* a value not given is an empty one, as elsewhere */
  call->sink = NULL;
  if (st == PP_OK && *i < n && (*cs != PP_OK || call->failed))
    *cs = pp__call_outcome(call, name, *cs);
  return st;
}

/* Items of one size, one argument each (an imap's usual input): the
 * argument of each is found by its index, with nothing to read. The
 * answer is a VALUES frame while every call gives a value of the first
 * one's size, which the parent checks at once instead of item by item;
 * else the RESULTS frame that says the same. */
static pp_status run_items(worker *w, const pp__frame *f) {
  pp__reader r;
  char name[PP__WIRE_MAX_NAME + 1];
  uint32_t n = read_head(&r, f, name), size = pp__get_u32(&r);
  const unsigned char *in = NULL;
  if (!r.bad && (!size || n <= (r.len - r.off) / size))
    in = pp__get_bytes(&r, (size_t)n * size);
  if (!in || r.off != r.len)
    return PP_EPROTOCOL;
  pp_status st = ensure_argv(w, 1);
  if (st != PP_OK)
    return st;
  pp_task_fn fn = pp__registry_find(name);
  size_t at, size_at = 0, vsize = 0;
  st = pp__frame_begin(&w->out, PP__F_VALUES, f->id, &at);
  if (st == PP_OK)
    st = pp__put_u32(&w->out, n);
  if (st == PP_OK) {
    size_at = pp__buf_len(&w->out);
    st = pp__put_u32(&w->out, 0);
  }
  pp__call_reset(&w->call);
  w->argv[0].len = size;
  int values = 1;
  for (uint32_t i = 0; st == PP_OK && i < n; i++) {
    w->argv[0].data = in + (size_t)i * size;
    if (!values) {
      st = answer_call(w, fn, name, 1);
      continue;
    }
    size_t mark;
    pp_status cs = PP_OK;
    if (i > 0 && fn) {
      st = plain_values(w, fn, name, in, size, vsize, n, &i, &cs, &mark);
      if (st != PP_OK || i == n)
        break;
      /* Item i ran and did not simply give a value of the size: below. */
    } else {
      mark = pp__buf_len(&w->out);
      cs = run_call(w, fn, name, 1, mark);
    }
    size_t len = pp__buf_len(&w->out) - mark;
    if (cs == PP_OK && (i == 0 || len == vsize) && len <= UINT32_MAX) {
      vsize = len;
      /* The byte after each value, where the parent puts its NUL. */
      st = pp__buf_append(&w->out, "", 1);
      continue;
    }
    st = values_to_results(w, f, &at, n, i, vsize, mark, cs);
    values = 0;
  }
  if (st == PP_OK && values)
    pp__patch_u32(&w->out, size_at, (uint32_t)vsize);
  return st == PP_OK ? end_answer(w, at) : st;
}

/* `len` bytes of answer payload in the up lane, their byte `data_at`
 * aligned to `align`; or NULL when they are few enough for the channel or
 * the parent has not consumed enough of the lane yet. */
static unsigned char *reserve_up(worker *w, size_t len, uint32_t data_at,
                                 uint32_t align, uint32_t *pos) {
  if (!w->up.base || len < PP__LANE_MIN)
    return NULL;
  pp__lane_release(&w->up, pp__lane_published(pp__shm_base(w->shm)));
  return pp__lane_reserve_aligned(&w->up, len, data_at, align, pos);
}

/* Makes the lane frame for a payload written at `pos` in the up lane; on
 * failure the bytes are given back, since nothing was said about them. */
static pp_status point_up(worker *w, pp__frame_type type, uint64_t id,
                          uint32_t pos, size_t len) {
  pp__buf_clear(&w->lane_frame);
  pp_status st = pp__lane_put_frame(&w->lane_frame, type, id, pos, len);
  if (st != PP_OK)
    w->up.head = pos;
  return st;
}

/* The records loop for one argument per record and a known task, from
 * record `from`: what stays the same from record to record is set once, so
 * that a record costs its task's call and little more. Returns the index
 * of the first record whose call did not simply succeed (its status in
 * `*cs`), or `n`. */
static uint32_t plain_records(pp_call *call, pp_bytes *arg, pp_task_fn fn,
                              const unsigned char *in, size_t in_size,
                              unsigned char *out, size_t out_size,
                              uint32_t from, uint32_t n, pp_status *cs) {
  arg->len = in_size;
  call->head.argv = arg;
  call->head.argc = 1;
  call->head.record_size = out_size;
  for (uint32_t i = from; i < n; i++) {
    arg->data = in + (size_t)i * in_size;
    call->head.record = out + (size_t)i * out_size;
    call->head.returned = 0;
    pp_status st = fn(call);
    if (st != PP_OK || call->failed || !call->head.returned) {
      *cs = st;
      return i;
    }
  }
  return n;
}

/* What RECORDS and RECORDS_AT frames say before their records. */
typedef struct records_head {
  char name[PP__WIRE_MAX_NAME + 1];
  uint32_t n, in_size, out_size, nfields;
  size_t *sizes;  /* nfields field sizes, or NULL; the caller frees them */
  uint64_t first; /* the chunk's first record's index in the map */
  pp_task_fn fn;  /* the task, or NULL for a records task or an unknown */
  pp_records_task_fn records_fn;
} records_head;

/* Reads a records frame's head, leaving `r` at what follows it. */
static pp_status read_records_head(worker *w, const pp__frame *f, pp__reader *r,
                                   records_head *h) {
  memset(h, 0, sizeof *h);
  h->n = read_head(r, f, h->name);
  h->in_size = pp__get_u32(r);
  h->out_size = pp__get_u32(r);
  h->nfields = pp__get_u32(r);
  if (r->bad || h->in_size == 0 || h->out_size == 0 || h->nfields > h->in_size)
    return PP_EPROTOCOL;
  /* The chunk's records and results, and an answer's two counts beside
   * them, must be addressable here: with a 32-bit size_t, n * out_size
   * (unlike n * in_size, bytes of the frame itself) can pass SIZE_MAX and
   * wrap to a small buffer that the results would overrun. The parent
   * never sends such a chunk (its chunks fit a frame either way). */
  if ((size_t)h->n > (SIZE_MAX - 8) / h->in_size ||
      (size_t)h->n > (SIZE_MAX - 8) / h->out_size)
    return PP_EPROTOCOL;
  pp_status st = ensure_argv(w, h->nfields ? h->nfields : 1);
  if (st != PP_OK)
    return st;
  if (h->nfields) {
    h->sizes = malloc(h->nfields * sizeof *h->sizes);
    if (!h->sizes)
      return PP_ENOMEM;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < h->nfields; i++) {
      h->sizes[i] = pp__get_u32(r);
      sum += (uint32_t)h->sizes[i];
    }
    if (r->bad || sum != h->in_size)
      return PP_EPROTOCOL;
  }
  h->first = pp__get_u32(r);
  h->first |= (uint64_t)pp__get_u32(r) << 32;
  if (r->bad || (uint64_t)(size_t)h->first != h->first)
    return PP_EPROTOCOL;
  h->fn = pp__registry_find(h->name);
  h->records_fn = h->fn ? NULL : pp__registry_find_records(h->name);
  return PP_OK;
}

/* Runs records [from, from + n) of a chunk, whose input is at `in` and
 * output at `out` (both for those records only), a call per record: their
 * failures appended to w->errs as RECORDS_DONE lists them, indexed in the
 * chunk, and counted in *nerr. */
static pp_status run_record_calls(worker *w, const records_head *h,
                                  const unsigned char *in, unsigned char *out,
                                  uint32_t from, uint32_t n, size_t *nerr) {
  pp_task_fn fn = h->fn;
  size_t in_size = h->in_size, out_size = h->out_size;
  pp_status st = PP_OK;
  for (uint32_t i = 0; st == PP_OK && i < n; i++) {
    pp_status cs;
    if (!h->nfields && fn) {
      i = plain_records(&w->call, w->argv, fn, in, in_size, out, out_size, i, n,
                        &cs);
      if (i == n)
        break;
      /* Record i ran and did not simply succeed: its outcome below. */
    } else {
      const unsigned char *rec = in + (size_t)i * in_size;
      size_t off = 0;
      for (uint32_t k = 0; k < h->nfields; k++) {
        w->argv[k].data = rec + off;
        w->argv[k].len = h->sizes[k];
        off += h->sizes[k];
      }
      if (!h->nfields) {
        w->argv[0].data = rec;
        w->argv[0].len = in_size;
      }
      w->call.head.argv = w->argv;
      w->call.head.argc = h->nfields ? h->nfields : 1;
      w->call.head.record = out + (size_t)i * out_size;
      w->call.head.record_size = out_size;
      w->call.head.returned = 0;
      cs = fn ? fn(&w->call) : PP_EUNKNOWNTASK;
    }
    if (cs != PP_OK || w->call.failed || !w->call.head.returned)
      cs = fn ? pp__call_outcome(&w->call, h->name, cs)
              : pp__call_run(&w->call, h->name, NULL);
    if (cs != PP_OK) {
      /* A failed record's output is unspecified, but never stale bytes. */
      memset(w->call.head.record, 0, out_size);
      (*nerr)++;
      st = pp__put_u32(&w->errs, from + i);
      if (st == PP_OK)
        st = pp__put_u8(&w->errs, (unsigned)cs);
      if (st == PP_OK)
        st = pp__put_str32(&w->errs, w->call.message,
                           w->call.message ? strlen(w->call.message) : 0);
      pp__call_reset(&w->call);
    }
  }
  w->call.head.record = NULL;
  return st;
}

/* A whole chunk, `in` to `out`: a records task's one call, or a call per
 * record. Its failures are listed in w->errs, cleared first. */
static pp_status run_records_chunk(worker *w, const records_head *h,
                                   const unsigned char *in, unsigned char *out,
                                   size_t *nerr) {
  *nerr = 0;
  if (h->records_fn && h->n) {
    pp_records_chunk chunk = {in,          h->in_size, out,
                              h->out_size, h->n,       (size_t)h->first};
    return pp__records_task_run(&w->call, &w->errs, &w->records_scratch,
                                h->records_fn, h->name, &chunk, nerr);
  }
  pp__buf_clear(&w->errs);
  pp__call_reset(&w->call);
  return run_record_calls(w, h, in, out, 0, h->n, nerr);
}

static pp_status run_records(worker *w, const pp__frame *f) {
  pp__reader r;
  records_head h;
  pp_status st = read_records_head(w, f, &r, &h);
  uint32_t n = h.n, out_size = h.out_size;
  const unsigned char *in =
      st == PP_OK && (size_t)n <= (r.len - r.off) / h.in_size
          ? pp__get_bytes(&r, (size_t)n * h.in_size)
          : NULL;
  if (!in) {
    free(h.sizes);
    return st == PP_OK ? PP_EPROTOCOL : st;
  }
  size_t at = 0, nerr = 0, body = 4 + (size_t)n * out_size;
  uint32_t pos = 0;
  /* The records go straight into the up lane when they can: written once,
   * never copied there from w->out afterwards. */
  /* The results after the count: aligned for a records task's arrays. */
  unsigned char *lane = reserve_up(w, body + 4, 4, PP_RECORDS_ALIGN, &pos);
  unsigned char *outp;
  if (lane) {
    pp__store_u32(lane, n);
    outp = lane + 4;
  } else {
    st = pp__frame_begin(&w->out, PP__F_RECORDS_DONE, f->id, &at);
    if (st == PP_OK)
      st = pp__put_u32(&w->out, n);
    if (st == PP_OK)
      st = pp__buf_reserve(&w->out, (size_t)n * out_size);
    if (st != PP_OK) {
      free(h.sizes);
      return st;
    }
    outp = pp__buf_tail(&w->out);
    pp__buf_commit(&w->out, (size_t)n * out_size);
  }
  st = run_records_chunk(w, &h, in, outp, &nerr);
  free(h.sizes);
  if (lane && st == PP_OK && nerr == 0) {
    pp__store_u32(lane + body, 0);
    return point_up(w, PP__F_RECORDS_DONE, f->id, pos, body + 4);
  }
  if (lane) {
    /* Failures carry messages of their own sizes: the answer is built in
     * w->out after all, and the lane's bytes are given back. */
    st = st == PP_OK ? pp__frame_begin(&w->out, PP__F_RECORDS_DONE, f->id, &at)
                     : st;
    if (st == PP_OK)
      st = pp__buf_append(&w->out, lane, body);
    w->up.head = pos;
  }
  if (st == PP_OK)
    st = pp__put_u32(&w->out, (uint32_t)nerr);
  if (st == PP_OK)
    st = pp__buf_append(&w->out, pp__buf_head(&w->errs), pp__buf_len(&w->errs));
  return st == PP_OK ? end_answer(w, at) : st;
}

/* ---- records in place (RECORDS_AT) ----
 * The worker reads a chunk's records from the caller's array in the parent
 * and writes the results into the caller's output array there (backend.h,
 * "the parent's memory"): the parent copies nothing, and the chunk never
 * crosses the channel or a lane. A call per record takes the chunk a slice
 * at a time, so that the records it works on stay in this CPU's cache and
 * its buffers stay small; a records task, called once per chunk, gets the
 * chunk whole. */

/* Bytes of input (and at most as many records of output) per slice. */
#define PLACE_SLICE ((size_t)64 << 10)
/* The most a buffer keeps between chunks. */
#define PLACE_KEEP_MAX ((size_t)16 << 20)

/* Makes *buf hold at least `len` bytes, aligned for a records task. */
static pp_status place_room(pp__buf *buf, size_t len) {
  pp__buf_clear(buf);
  return pp__buf_reserve(buf, len + PP_RECORDS_ALIGN);
}

static unsigned char *place_at(pp__buf *buf) {
  uintptr_t p = (uintptr_t)pp__buf_tail(buf);
  return (unsigned char *)((p + PP_RECORDS_ALIGN - 1) &
                           ~(uintptr_t)(PP_RECORDS_ALIGN - 1));
}

/* What a chunk done in place could not do with the caller's memory. */
static const char read_failed[] = "read its records from";
static const char write_failed[] = "write its results into";

/* The chunk's records [from, from + n): read, run, written back. PP_ESYSTEM
 * with *failed_io set when the parent's memory would not be read or
 * written. */
static pp_status place_span(worker *w, const records_head *h, uint64_t in_addr,
                            uint64_t out_addr, uint32_t from, uint32_t n,
                            size_t *nerr, const char **failed_io) {
  unsigned char *in = place_at(&w->place_in), *out = place_at(&w->place_out);
  uint64_t in_at = in_addr + (uint64_t)from * h->in_size;
  uint64_t out_at = out_addr + (uint64_t)from * h->out_size;
  size_t in_len = (size_t)n * h->in_size, out_len = (size_t)n * h->out_size;
  if (pp__parent_mem_read(w->parent_mem, in, in_at, in_len) != PP_OK) {
    *failed_io = read_failed;
    return PP_ESYSTEM;
  }
  pp_status st = h->records_fn && from == 0 && n == h->n
                     ? run_records_chunk(w, h, in, out, nerr)
                     : run_record_calls(w, h, in, out, from, n, nerr);
  if (st != PP_OK)
    return st;
  if (pp__parent_mem_write(w->parent_mem, out_at, out, out_len) != PP_OK) {
    *failed_io = write_failed;
    return PP_ESYSTEM;
  }
  return PP_OK;
}

/* A chunk that failed in place reads as zeros, as one that failed through
 * the lanes does, as far as the system lets this worker write the output
 * (not at all when the output is what it could not write). The parent
 * never writes there itself: memory the system refused a worker would
 * crash the parent. `per` records fit the output buffer. */
static void zero_output(worker *w, const records_head *h, uint64_t out_addr,
                        uint32_t per) {
  unsigned char *zeros = place_at(&w->place_out);
  memset(zeros, 0, (size_t)per * h->out_size);
  for (uint32_t from = 0; from < h->n; from += per) {
    uint32_t span = h->n - from < per ? h->n - from : per;
    if (pp__parent_mem_write(w->parent_mem,
                             out_addr + (uint64_t)from * h->out_size, zeros,
                             (size_t)span * h->out_size) != PP_OK)
      return;
  }
}

static pp_status run_records_at(worker *w, const pp__frame *f) {
  pp__reader r;
  records_head h;
  pp_status st = read_records_head(w, f, &r, &h);
  uint64_t in_addr = pp__get_u32(&r);
  in_addr |= (uint64_t)pp__get_u32(&r) << 32;
  uint64_t out_addr = pp__get_u32(&r);
  out_addr |= (uint64_t)pp__get_u32(&r) << 32;
  if (st == PP_OK && (r.bad || r.off != r.len || !w->parent_mem))
    st = PP_EPROTOCOL;
  /* Slices of whole records, at least one. */
  uint32_t per = 1;
  if (st == PP_OK) {
    size_t most = h.in_size > h.out_size ? h.in_size : h.out_size;
    size_t fit = PLACE_SLICE / most;
    per = h.records_fn || fit >= h.n ? h.n : fit ? (uint32_t)fit : 1;
  }
  if (st == PP_OK && h.n)
    st = place_room(&w->place_in, (size_t)per * h.in_size);
  if (st == PP_OK && h.n)
    st = place_room(&w->place_out, (size_t)per * h.out_size);
  size_t nerr = 0;
  const char *failed_io = NULL;
  if (st == PP_OK) {
    pp__buf_clear(&w->errs);
    pp__call_reset(&w->call);
  }
  for (uint32_t from = 0; st == PP_OK && from < h.n; from += per) {
    uint32_t span = h.n - from < per ? h.n - from : per;
    size_t got = 0;
    st = place_span(w, &h, in_addr, out_addr, from, span, &got, &failed_io);
    nerr += got;
  }
  /* Why it failed is read before zero_output(), whose writes would say
   * their own. */
  char why[160] = "";
  if (failed_io) {
    pp__parent_mem_error(w->parent_mem, why, sizeof why);
    zero_output(w, &h, out_addr, per);
  }
  free(h.sizes);
  /* A records task's chunk-sized buffers are kept for the next chunk, as
   * fresh ones would cost a page fault per page, unless they are beyond
   * what a lane holds. */
  if (w->place_in.cap > PLACE_KEEP_MAX)
    pp__buf_free(&w->place_in);
  if (w->place_out.cap > PLACE_KEEP_MAX)
    pp__buf_free(&w->place_out);
  if (st != PP_OK && !failed_io)
    return st;
  size_t at;
  pp_status ws = pp__frame_begin(&w->out, PP__F_RECORDS_PUT, f->id, &at);
  if (ws == PP_OK)
    ws = pp__put_u32(&w->out, h.n);
  if (ws == PP_OK && failed_io) {
    /* The chunk fails whole, and says why. */
    char msg[400];
    snprintf(msg, sizeof msg,
             "the worker could not %s the calling process's memory (%s); "
             "is the %s array given to pp_map_records() still allocated, "
             "and %s?",
             failed_io, why, failed_io == write_failed ? "output" : "input",
             failed_io == write_failed ? "writable" : "readable");
    ws = pp__put_u8(&w->out, (unsigned)PP_ESYSTEM);
    if (ws == PP_OK)
      ws = pp__put_str32(&w->out, msg, strlen(msg));
    if (ws == PP_OK)
      ws = pp__put_u32(&w->out, 0);
  } else if (ws == PP_OK) {
    ws = pp__put_u8(&w->out, (unsigned)PP_OK);
    if (ws == PP_OK)
      ws = pp__put_str32(&w->out, NULL, 0);
    if (ws == PP_OK)
      ws = pp__put_u32(&w->out, (uint32_t)nerr);
    if (ws == PP_OK)
      ws = pp__buf_append(&w->out, pp__buf_head(&w->errs),
                          pp__buf_len(&w->errs));
  }
  return ws == PP_OK ? end_answer(w, at) : ws;
}

/* A big answer goes through the up lane when the parent has consumed enough
 * of it, and only a lane frame through the channel. 1 when it did. */
static int answer_in_lane(worker *w) {
  pp__frame f;
  int complete;
  size_t len = pp__buf_len(&w->out);
  if (!w->up.base || len < PP__WIRE_HEADER_SIZE + PP__LANE_MIN)
    return 0;
  /* w->out holds exactly one answer: serve() flushes after each frame. */
  if (pp__frame_peek(&w->out, UINT32_MAX, &f, &complete) != PP_OK ||
      !complete || PP__WIRE_HEADER_SIZE + f.len != len ||
      (f.type != PP__F_RESULTS && f.type != PP__F_VALUES &&
       f.type != PP__F_RECORDS_DONE))
    return 0;
  uint32_t pos;
  unsigned char *dst = reserve_up(w, f.len, 0, 1, &pos);
  if (!dst)
    return 0;
  memcpy(dst, f.payload, f.len);
  if (point_up(w, f.type, f.id, pos, f.len) != PP_OK)
    return 0;
  pp__buf_clear(&w->out);
  return 1;
}

/* Whether w->out holds an answer too long for one frame to the parent. */
static int needs_pieces(const worker *w) {
  size_t len = pp__buf_len(&w->out);
  return w->piece_max && len > PP__WIRE_HEADER_SIZE &&
         len - PP__WIRE_HEADER_SIZE > w->piece_max &&
         pp__frame_answers(pp__frame_type_of(pp__buf_head(&w->out)));
}

/* Sends the answer in w->out, too long for one frame, as frames of
 * w->piece_max payload bytes at most (wire.h, PP__FRAME_MORE). Each piece
 * goes through the up lane when it has room, else whole through the link,
 * its header written over the last bytes of the piece before it, which
 * are sent by then: nothing is copied for the link. */
static pp_status send_pieces(worker *w) {
  unsigned char *frame = pp__buf_head(&w->out);
  pp__frame_type type = pp__frame_type_of(frame);
  uint64_t id = pp__frame_id_of(frame);
  size_t body = pp__buf_len(&w->out) - PP__WIRE_HEADER_SIZE;
  int lane_ok = type != PP__F_RECORDS_PUT; /* never travels so */
  pp_status st = PP_OK;
  for (size_t done = 0; st == PP_OK && done < body;) {
    size_t n = body - done < w->piece_max ? body - done : w->piece_max;
    unsigned flags = done + n < body ? PP__FRAME_MORE : 0;
    unsigned char *slice = frame + PP__WIRE_HEADER_SIZE + done;
    uint32_t pos;
    unsigned char *dst = lane_ok ? reserve_up(w, n, 0, 1, &pos) : NULL;
    if (dst) {
      memcpy(dst, slice, n);
      pp__buf_clear(&w->lane_frame);
      st = pp__lane_put_frame_flagged(&w->lane_frame, type, flags, id, pos, n);
      if (st == PP_OK)
        st = pp__wlink_write(&w->link, pp__buf_head(&w->lane_frame),
                             pp__buf_len(&w->lane_frame));
      pp__buf_clear(&w->lane_frame);
    } else {
      unsigned char *h = slice - PP__WIRE_HEADER_SIZE;
      pp__frame_header(h, type, flags, (uint32_t)n, id);
      st = pp__wlink_write(&w->link, h, PP__WIRE_HEADER_SIZE + n);
    }
    done += n;
  }
  return st;
}

static pp_status flush(worker *w) {
  /* A lane frame already made: the answer was built in the lane. */
  pp__buf *frame = &w->lane_frame;
  if (!pp__buf_len(frame)) {
    if (!pp__buf_len(&w->out))
      return PP_OK;
    if (needs_pieces(w)) {
      pp_status st = send_pieces(w);
      pp__buf_clear(&w->out);
      return st;
    }
    frame = answer_in_lane(w) ? &w->lane_frame : &w->out;
  }
  pp_status st =
      pp__wlink_write(&w->link, pp__buf_head(frame), pp__buf_len(frame));
  pp__buf_clear(frame);
  return st;
}

/* Waits for one whole frame at the head of w->in. */
static pp_status next_frame(worker *w, pp__frame *f) {
  for (;;) {
    int complete;
    pp_status st = pp__frame_peek(&w->in, UINT32_MAX, f, &complete);
    if (st == PP_ENOTSUP)
      return st; /* another protocol version */
    if (st != PP_OK)
      return PP_EPROTOCOL;
    if (complete)
      return PP_OK;
    st = flush(w);
    if (st == PP_OK)
      st = pp__wlink_read(&w->link, &w->in);
    if (st != PP_OK)
      return st;
  }
}

/* The exit code for a status that stops the worker (a read, a write, a
 * frame, a task's answer): PP_EOF is the parent hanging up, or gone; a
 * system call failing on a channel that worked until then is most likely
 * a task that closed it. The code tells the parent why (DESIGN.md
 * decision 11). */
static int stop_code(pp_status st) {
  switch (st) {
  case PP_EOF:
    return 0;
  case PP_ENOTSUP:
    return PP__EXIT_VERSION;
  case PP_EPROTOCOL:
    return PP__EXIT_PROTOCOL;
  case PP_ENOMEM:
  case PP_ETOOBIG:
    return PP__EXIT_NOMEM;
  case PP_ESYSTEM:
    return PP__EXIT_CHANNEL;
  default:
    return 0;
  }
}

/* The first frame is CHALLENGE: answer it with the proof that this process
 * knows the pool's key. Returns the exit code to use, or -1 to go on. */
static int prove(worker *w, const char *key) {
  pp__frame f;
  pp_status st = next_frame(w, &f);
  if (st != PP_OK)
    return stop_code(st);
  if (f.type != PP__F_CHALLENGE || f.len != PP__NONCE_SIZE)
    return PP__EXIT_PROTOCOL;
  unsigned char proof[PP__SHA256_SIZE];
  if (pp__test.mute_proof) /* stays silent until the parent gives up */
    for (;;)
      if (pp__wlink_read(&w->link, &w->in) != PP_OK)
        return 0;
  pp__handshake_proof(key, f.payload, proof);
  pp__buf_consume(&w->in, PP__WIRE_HEADER_SIZE + f.len);
  size_t at;
  st = pp__frame_begin(&w->out, PP__F_PROOF, 0, &at);
  if (st == PP_OK)
    st = pp__buf_append(&w->out, proof, sizeof proof);
  if (st == PP_OK)
    st = pp__frame_end(&w->out, at);
  if (st == PP_OK && pp__test.proof_version)
    pp__buf_head(&w->out)[at + 4] = (unsigned char)pp__test.proof_version;
  if (st == PP_OK)
    st = flush(w);
  return st == PP_OK ? -1 : stop_code(st);
}

/* LANES: maps the segment the parent offers, and says whether it could
 * (LANES_TAKEN); a worker that cannot goes on without it. The parent
 * offers it once, when the worker first needs it: a pool that runs a task
 * or two makes no segment (creating, mapping and unmapping two of them
 * was a sixth of a fork pool's start-up). A malformed offer, or a second
 * one, is a protocol error. */
static pp_status take_lanes(worker *w, const pp__frame *f) {
  pp__reader r;
  char token[PP__WIRE_MAX_NAME + 1];
  pp__reader_init(&r, f->payload, f->len);
  pp__get_name(&r, token, sizeof token);
  uint32_t size = pp__get_u32(&r);
  if (r.bad || pp__lane_size_for(size) != size || w->shm || f->flags)
    return PP_EPROTOCOL;
  if (pp__shm_open(w->link.chan, token, pp__segment_size(size), &w->shm) ==
      PP_OK) {
    pp__lanes_init(pp__shm_base(w->shm), w->shm, size, &w->down, &w->up);
    pp__rings_init(pp__shm_base(w->shm), size, 0, &w->link.rings);
  }
  size_t at;
  pp_status st = pp__frame_begin(&w->out, PP__F_LANES_TAKEN, 0, &at);
  if (st == PP_OK)
    st = pp__put_u8(&w->out, w->shm != NULL);
  if (st == PP_OK)
    st = pp__frame_end(&w->out, at);
  return st;
}

/* CONFIG's probe: the value the parent put at `addr` in process `pid`.
 * Read right, the parent's memory is open to this worker, and big records
 * chunks will come as RECORDS_AT. Read wrong or not at all (no probe, a
 * system without the call, a policy against it), they keep to the lanes. */
static void try_parent_mem(worker *w, uint64_t pid, uint64_t addr,
                           uint64_t value) {
  uint64_t seen = 0;
  if (!pid || (uint64_t)(long)pid != pid ||
      pp__parent_mem_open((long)pid, &w->parent_mem) != PP_OK)
    return;
  if (pp__parent_mem_read(w->parent_mem, &seen, addr, sizeof seen) != PP_OK ||
      seen != value) {
    pp__parent_mem_close(w->parent_mem);
    w->parent_mem = NULL;
  }
}

/* Once, before the first initializer or task: see
 * pp__wchan_before_user_code(). */
static void before_user_code(worker *w) {
  w->ran_user_code = 1;
  pp__wchan_before_user_code(w->link.chan);
}

/* After the proof, CONFIG: run the initializer, answer READY or
 * INIT_FAILED. Returns the exit code to use, or -1 to go on. */
static int configure(worker *w) {
  pp__frame f;
  pp_status st = next_frame(w, &f);
  if (st != PP_OK)
    return stop_code(st);
  if (f.type != PP__F_CONFIG)
    return PP__EXIT_PROTOCOL;
  if (pp__test.unready_exit)
    return pp__test.unready_exit;
  pp__reader r;
  char name[PP__WIRE_MAX_NAME + 1];
  size_t argc = 0;
  pp__reader_init(&r, f.payload, f.len);
  pp__get_name(&r, name, sizeof name);
  if (r.bad || read_args(w, &r, &argc) != PP_OK)
    return PP__EXIT_PROTOCOL;
  w->max_rss = pp__get_u32(&r);
  w->max_rss |= (uint64_t)pp__get_u32(&r) << 32;
  uint64_t probe[3];
  for (int i = 0; i < 3; i++) {
    probe[i] = pp__get_u32(&r);
    probe[i] |= (uint64_t)pp__get_u32(&r) << 32;
  }
  uint64_t most = pp__get_u32(&r);
  most |= (uint64_t)pp__get_u32(&r) << 32;
  if (r.bad || most < PP__MIN_MAX_MESSAGE)
    return PP__EXIT_PROTOCOL;
  /* A frame's length is 32 bits, whatever the parent would take. */
  w->piece_max = most < UINT32_MAX ? (size_t)most : (size_t)UINT32_MAX;
  try_parent_mem(w, probe[0], probe[1], probe[2]);
  pp_status cs = PP_OK;
  if (name[0]) {
    before_user_code(w);
    pp__call_reset(&w->call);
    w->call.head.argv = w->argv;
    w->call.head.argc = argc;
    cs = pp__call_run(&w->call, name, pp__registry_find(name));
  }
  pp__buf_consume(&w->in, PP__WIRE_HEADER_SIZE + f.len);
  size_t at;
  if (cs == PP_OK) {
    st = pp__frame_begin(&w->out, PP__F_READY, 0, &at);
    if (st == PP_OK)
      st = pp__put_u8(&w->out, 0);
    if (st == PP_OK)
      st = pp__put_u8(&w->out, w->parent_mem != NULL);
  } else {
    st = pp__frame_begin(&w->out, PP__F_INIT_FAILED, 0, &at);
    if (st == PP_OK)
      st = pp__put_u8(&w->out, (unsigned)cs);
    if (st == PP_OK)
      st = pp__put_str32(&w->out, w->call.message,
                         w->call.message ? strlen(w->call.message) : 0);
  }
  if (st == PP_OK)
    st = pp__frame_end(&w->out, at);
  if (st == PP_OK)
    st = flush(w);
  if (cs != PP_OK)
    return PP__EXIT_INIT_FAILED;
  return st == PP_OK ? -1 : stop_code(st);
}

/* Past its memory limit, with its answers out: tells the parent it
 * leaves having started nothing more (LEAVING), and the exit code. When
 * the parent cannot be told, the chunk it would take as running fails
 * as a worker's death, which is no lie to the caller. */
static int say_leaving(worker *w) {
  size_t at;
  pp_status st = pp__frame_begin(&w->out, PP__F_LEAVING, 0, &at);
  if (st == PP_OK)
    st = pp__frame_end(&w->out, at);
  if (st == PP_OK)
    st = flush(w);
  return st == PP_OK ? PP__EXIT_RECYCLE : stop_code(st);
}

static int serve(worker *w) {
  for (;;) {
    pp__frame f;
    pp_status st = next_frame(w, &f);
    if (st != PP_OK)
      return stop_code(st);
    size_t wire_len = PP__WIRE_HEADER_SIZE + f.len;
    if (f.type == PP__F_RING) {
      /* The parent's frames come through the down ring from here on, ours
       * through the up ring after RINGED, the last through the channel;
       * what the channel holds after RING is doorbells. */
      if (!w->shm || w->link.down || f.len || f.flags)
        return PP__EXIT_PROTOCOL;
      pp__buf_clear(&w->in);
      w->link.down = 1;
      size_t at;
      st = pp__frame_begin(&w->out, PP__F_RINGED, 0, &at);
      if (st == PP_OK)
        st = pp__frame_end(&w->out, at);
      if (st == PP_OK)
        st = flush(w);
      if (st != PP_OK)
        return stop_code(st);
      w->link.up = 1;
      continue;
    }
    if (f.type == PP__F_LANES) {
      /* Out before any answer: the next one may be built in the lane,
       * and flush() then sends that frame alone. */
      st = take_lanes(w, &f);
      if (st == PP_OK)
        st = flush(w);
      if (st != PP_OK)
        return stop_code(st);
      pp__buf_consume(&w->in, wire_len);
      continue;
    }
    if (pp__lane_resolve(&w->down, &f, NULL))
      return PP__EXIT_PROTOCOL;
    if (!w->ran_user_code)
      before_user_code(w);
    if (f.type == PP__F_CALLS)
      st = run_calls(w, &f);
    else if (f.type == PP__F_ITEMS)
      st = run_items(w, &f);
    else if (f.type == PP__F_RECORDS)
      st = run_records(w, &f);
    else if (f.type == PP__F_RECORDS_AT)
      st = run_records_at(w, &f);
    else
      st = PP_EPROTOCOL;
    if (st != PP_OK)
      return stop_code(st);
    pp__buf_consume(&w->in, wire_len);
    /* Every answer leaves before the next frame runs. Held back to share a
     * write, it would die with the worker if the next task crashed it, and
     * the parent would blame the wrong chunk: it takes the oldest unanswered
     * chunk to be the one that was running. */
    if ((st = flush(w)) != PP_OK)
      return stop_code(st);
    /* Its answers are out and it has started nothing else: a worker past
     * its memory limit leaves here, and says so (its exit code alone could
     * be a task's exit()), so that the parent re-sends what it had
     * queued. */
    if (w->max_rss && pp__current_rss() > w->max_rss)
      return say_leaving(w);
  }
}

int pp__worker_run(pp__wchan *chan, const char *key) {
  pp__spare_drop_inherited(); /* a fork's copy of the parent's */
  worker w;
  memset(&w, 0, sizeof w);
  w.link.chan = chan;
  w.call.link = &w.link;
  int code = prove(&w, key);
  if (code < 0)
    code = configure(&w);
  if (code < 0)
    code = serve(&w);
  pp__call_free(&w.call);
  pp__buf_free(&w.in);
  pp__buf_free(&w.out);
  pp__buf_free(&w.errs);
  pp__buf_free(&w.records_scratch);
  pp__buf_free(&w.lane_frame);
  pp__buf_free(&w.place_in);
  pp__buf_free(&w.place_out);
  pp__parent_mem_close(w.parent_mem);
  pp__wlink_free(&w.link);
  pp__shm_free(w.shm);
  free(w.argv);
  return code;
}

static int hook_ran;

int pp__worker_hook_ran(void) { return hook_ran; }

/* Copies the key a spawned worker was given and removes it from the
 * environment, every copy of it this process keeps (pp__env_remove()), so
 * that a task's getenv() does not see it and the processes its tasks start
 * do not inherit it. The kernel's copy of the initial environment,
 * /proc/PID/environ on Linux, keeps it; only this user and root can read
 * that. A value of the wrong length is no key at all: the worker will be
 * refused. */
static void take_key(char *key, size_t cap) {
  const char *env = getenv(PP__KEY_ENV);
  key[0] = '\0';
  if (env && strlen(env) < cap)
    strcpy(key, env);
  if (env)
    pp__env_remove(PP__KEY_ENV);
}

int pp_worker_main(int argc, char **argv) {
  pp__wchan *chan;
  int code;
  /* Not given main()'s (a Windows program entered at wWinMain, say): the
   * system's record of them. Where there is none, this process cannot
   * tell whether it is a worker, so it is taken for a program whose copies
   * do not know it: spawn and forkserver pools are refused here. */
  if (!argv && !pp__backend_command_line(&argc, &argv))
    return 0;
  /* The worker loop and the service need no APR: a process launched as
   * one must never fall through into the rest of main(). */
  (void)pp__runtime_init();
  /* The program calls the hook at the top of main(), so its copies become
   * workers: true in the forkserver and in a worker as well, where a task
   * may create a pool of its own in any context. */
  hook_ran = 1;
  if (pp__backend_run_service(argc, argv, pp__worker_run, &code))
    exit(code);
  if (!pp__backend_worker_attach(argc, argv, &chan)) {
    /* Here, at the top of main(), the process has one thread as a rule,
     * which makes this cheap (iter.c's owner path needs it). */
    pp__remote_barrier_prepare();
    return 0;
  }
  char key[2 * PP__KEY_BYTES + 1];
  take_key(key, sizeof key);
  exit(pp__worker_run(chan, key));
}
