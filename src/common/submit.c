/* Submitting work: apply, map, starmap and records maps are cut into chunks,
 * encoded into frames on the caller's thread (so the caller's buffers may be
 * reused at once), and queued for the scheduler. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int pp__wait_would_hang(pp_pool *pool) {
  return !pp__shared_owned(pool->shared) ||
         pp__shared_on_scheduler(pool->shared);
}

pp_status pp__fail_wait_would_hang(const pp__shared *shared) {
  if (!pp__shared_owned(shared))
    return pp__fail_not_owner();
  return pp__fail(PP_ESTATE, "called on the pool's own thread (in a "
                             "callback or an imap input function), where "
                             "it would wait for itself");
}

pp_status pp__check_submit(pp_pool *pool, const char *task,
                           const pp_callbacks *callbacks, void *out) {
  if (!pool || !task || !out)
    return pp__fail(PP_EINVAL, "%s is NULL",
                    !pool   ? "pool"
                    : !task ? "task"
                            : "out");
  if (!task[0] || strlen(task) > PP__WIRE_MAX_NAME)
    return pp__fail(PP_EINVAL, "a task name is 1 to %d bytes, not %zu",
                    PP__WIRE_MAX_NAME, strlen(task));
  /* A NaN limit is neither a limit nor none, as the pool's is refused. */
  if (callbacks && callbacks->time_limit != callbacks->time_limit)
    return pp__fail(PP_EINVAL, "callbacks->time_limit is NaN: give a number "
                               "of seconds, 0 for the pool's, or a negative "
                               "value for none");
  return pp__shared_owned(pool->shared) ? PP_OK : pp__fail_not_owner();
}

/* Atomic rather than under the pool's lock: every submission takes one,
 * and the lock is contended enough already. */
uint32_t pp__next_job_id(pp_pool *pool) {
  return apr_atomic_inc32(&pool->next_job) + 1;
}

apr_interval_time_t pp__time_limit(const pp_pool *pool,
                                   const pp_callbacks *cb) {
  double limit = cb && cb->time_limit != 0 ? cb->time_limit : pool->time_limit;
  if (!(limit > 0)) /* negative or NaN: none */
    return 0;
  /* Past ~30 years a limit is no limit, and must not overflow. */
  return limit > 1e9 ? 0 : (apr_interval_time_t)(limit * 1e6) + 1;
}

/* Fills a zeroed result; `name` is room for the task's name (with its NUL)
 * in the result's allocation. */
static void result_init(pp_result *r, pp_pool *pool, pp__job_kind kind,
                        const char *task, char *name, const pp_callbacks *cb) {
  r->job.kind = kind;
  strcpy(name, task);
  r->job.task = name;
  r->shared = pool->shared;
  r->pool = pool;
  r->job.time_limit = pp__time_limit(pool, cb);
  if (cb)
    r->cb = *cb;
}

pp_status pp__result_new(pp_pool *pool, pp__job_kind kind, const char *task,
                         const pp_callbacks *cb, pp_result **out) {
  pp_result *r = calloc(1, sizeof *r + strlen(task) + 1);
  if (!r)
    return PP_ENOMEM;
  result_init(r, pool, kind, task, (char *)(r + 1), cb);
  *out = r;
  return PP_OK;
}

static pp_status new_chunk(size_t first, size_t count, pp__chunk **out) {
  pp__chunk *c = calloc(1, sizeof *c);
  if (!c)
    return PP_ENOMEM;
  c->first = first;
  c->count = (uint32_t)count; /* cut to fit a frame */
  *out = c;
  return PP_OK;
}

void pp__chunk_free(pp__chunk *c) {
  switch (c->mem) {
  case PP__CHUNK_OWN:
    free(c->frame);
    free(c);
    break;
  case PP__CHUNK_FRAME_INLINE:
    free(c);
    break;
  case PP__CHUNK_IN_JOB:
    break;
  }
}

static void free_chunks(pp__chunk *c) {
  while (c) {
    pp__chunk *next = c->next;
    pp__chunk_free(c);
    c = next;
  }
}

/* Why pp__calls_frame_size() refused the `count` calls from item `first`
 * (PP__AN_APPLY: an apply's arguments) with `st`: the same walk, on the
 * way out of a failed call only, so that the frame format keeps to its
 * bytes and the messages stay here. */
#define PP__AN_APPLY ((size_t)-1)

static pp_status explain_calls(pp_status st, const char *task,
                               const pp_args *calls, const pp_bytes *single,
                               size_t count, size_t first) {
  int apply = first == PP__AN_APPLY;
  if (apply)
    first = 0;
  if (count > UINT32_MAX)
    return pp__fail(st,
                    "a chunk of %zu items is more than a frame holds "
                    "(2^32 - 1): give a smaller chunksize",
                    count);
  uint64_t total = 2 + strlen(task) + 4; /* as the frame counts */
  for (size_t i = 0; i < count; i++) {
    const pp_bytes *argv = calls ? calls[i].argv : &single[i];
    size_t argc = calls ? calls[i].argc : 1;
    if (!argv && argc)
      return pp__fail(st, "item %zu has %zu arguments but its argv is NULL",
                      first + i, argc);
    if (argc > UINT32_MAX)
      return pp__fail(st,
                      "item %zu has %zu arguments, more than a frame "
                      "holds (2^32 - 1)",
                      first + i, argc);
    total += 4;
    for (size_t k = 0; k < argc; k++) {
      if (!argv[k].data && argv[k].len)
        return apply ? pp__fail(st,
                                "argument %zu has NULL data but a "
                                "length of %zu",
                                k, argv[k].len)
                     : pp__fail(st,
                                "item %zu's argument %zu has NULL data "
                                "but a length of %zu",
                                first + i, k, argv[k].len);
      total += 4 + (uint64_t)argv[k].len;
    }
    if (total > UINT32_MAX)
      return apply ? pp__fail(st, "the arguments come to more than a frame "
                                  "holds (4 GiB)")
                   : pp__fail(st,
                              "items %zu to %zu come to more than a "
                              "frame holds (4 GiB): give a smaller "
                              "chunksize",
                              first, first + i);
  }
  return pp__fail(st, "the call's frame would not fit in this process's "
                      "memory");
}

/* pp__calls_frame_size() with its refusal explained. */
static pp_status calls_frame_size(const char *task, const pp_args *calls,
                                  const pp_bytes *single, size_t count,
                                  size_t first, size_t *size) {
  pp_status st = pp__calls_frame_size(task, calls, single, count, size);
  return st == PP_OK ? st
                     : explain_calls(st, task, calls, single, count, first);
}

pp_status pp__encode_calls(const char *task, uint64_t id, const pp_args *calls,
                           const pp_bytes *single, size_t count, size_t first,
                           pp__chunk **out) {
  size_t size;
  pp_status st = calls_frame_size(task, calls, single, count, first, &size);
  if (st != PP_OK)
    return st;
  /* The chunk and its frame in one allocation. */
  pp__chunk *c = malloc(sizeof *c + size);
  if (!c)
    return PP_ENOMEM;
  memset(c, 0, sizeof *c);
  c->mem = PP__CHUNK_FRAME_INLINE;
  c->frame = (unsigned char *)(c + 1);
  c->payload_len = (uint32_t)(size - PP__WIRE_HEADER_SIZE); /* a u32 */
  c->count = (uint32_t)count; /* calls_frame_size() refused more */
  c->number = (uint32_t)id;
  st = pp__calls_frame_encode(c->frame, size, task, id, calls, single, count,
                              NULL, NULL);
  if (st != PP_OK) {
    free(c);
    return st;
  }
  *out = c;
  return PP_OK;
}

/* Hands a result and its chunks, a run of them (pp__queue_run_add()), to
 * the pool, or refuses when the pool no longer takes work (then the caller
 * frees both). */
static pp_status submit(pp_pool *pool, pp_result *r, pp__chunk *first,
                        pp__chunk *last) {
  pp__mutex_lock(pool->shared->lock);
  if (pool->state != PP__RUN) {
    pp__mutex_unlock(pool->shared->lock);
    return pp__fail_closed();
  }
  r->refs = 2; /* the caller's and the pool's until it completes */
  pool->shared->refs++;
  pool->inflight_jobs++;
  pp__queue_append_run_locked(pool, first, last);
  pp__mutex_unlock(pool->shared->lock);
  pp__backend_wake(pool->backend);
  return PP_OK;
}

/* What cut_and_submit() cuts a map into chunks with: the frame of items
 * [at, at + *n) for calls, a bare range for records (their frame is built
 * when sent, from the caller's array). It may take fewer than *n items,
 * and says how many. */
typedef pp_status (*make_chunk_fn)(const void *source, size_t at, size_t *n,
                                   uint64_t id, pp__chunk **out);

typedef struct calls_source {
  const char *task;
  const pp_args *calls;
  const pp_bytes *single;
  size_t budget; /* the most bytes of items a chunk takes; 0: no limit */
} calls_source;

/* How many of the `n` items from `at` a chunk takes: all of them, or with
 * a budget as many as fit it, at least one. Python's default chunk size
 * counts items, not bytes; a default chunk of big items could make a frame
 * past the wire's 4 GiB, or answers past the pool's largest message, where
 * smaller chunks of the same items would go through. */
static size_t items_within(const calls_source *src, size_t at, size_t n) {
  if (!src->budget)
    return n;
  uint64_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    const pp_bytes *argv =
        src->calls ? src->calls[at + i].argv : &src->single[at + i];
    size_t argc = src->calls ? src->calls[at + i].argc : 1;
    uint64_t item = 4;
    for (size_t k = 0; argv && k < argc; k++)
      item += 4 + (uint64_t)argv[k].len;
    if (i && bytes + item > src->budget)
      return i;
    bytes += item;
  }
  return n;
}

static pp_status make_calls_chunk(const void *source, size_t at, size_t *n,
                                  uint64_t id, pp__chunk **out) {
  const calls_source *src = source;
  *n = items_within(src, at, *n);
  return pp__encode_calls(src->task, id, src->calls ? src->calls + at : NULL,
                          src->single ? src->single + at : NULL, *n, at, out);
}

/* A lent chunk: checked now as its frame would be, encoded when sent. */
static pp_status make_lent_chunk(const void *source, size_t at, size_t *n,
                                 uint64_t id, pp__chunk **out) {
  const calls_source *src = source;
  size_t size;
  *n = items_within(src, at, *n);
  pp_status st =
      calls_frame_size(src->task, src->calls ? src->calls + at : NULL,
                       src->single ? src->single + at : NULL, *n, at, &size);
  if (st == PP_OK)
    st = new_chunk(at, *n, out);
  if (st == PP_OK) {
    (*out)->number = (uint32_t)id;
    (*out)->payload_len = (uint32_t)(size - PP__WIRE_HEADER_SIZE);
  }
  return st;
}

static pp_status make_records_chunk(const void *source, size_t at, size_t *n,
                                    uint64_t id, pp__chunk **out) {
  (void)source;
  pp_status st = new_chunk(at, *n, out);
  if (st == PP_OK)
    (*out)->number = (uint32_t)id;
  return st;
}

/* Cuts `count` items into chunks of r->job.chunksize and hands them to the
 * pool. An empty map still gets one empty chunk, so that it completes (and
 * runs its callback) on the scheduler like any other. */
static pp_status cut_and_submit(pp_pool *pool, pp_result *r, size_t count,
                                make_chunk_fn make, const void *source) {
  r->job.id = pp__next_job_id(pool);
  pp__chunk *first = NULL, *last = NULL;
  pp_status st = PP_OK;
  for (size_t at = 0; st == PP_OK && (at < count || !first);) {
    size_t n = count - at < r->job.chunksize ? count - at : r->job.chunksize;
    pp__chunk *c;
    st = make(source, at, &n, pp__job_chunk_id(&r->job, r->job.nchunks), &c);
    if (st != PP_OK)
      break;
    c->first = at;
    if (n)
      r->job.nchunks++;
    r->job.chunks_left++;
    pp__queue_run_add(&first, &last, c, &r->job);
    at += n;
  }
  if (st == PP_OK)
    st = submit(pool, r, first, last);
  if (st != PP_OK)
    free_chunks(first);
  return st;
}

/* Small results of an apply are kept in its block: an i64 and the like
 * then cost no allocation. */
#define PP__SMALL_VALUE 32

typedef struct apply_block {
  pp_result r;
  pp__item item;
  pp__chunk chunk;
  pp_args lent; /* a blocking apply's arguments, lent */
  unsigned char value[PP__SMALL_VALUE];
  /* the frame follows (none when lent) */
} apply_block;

/* apply_async, or with `lend` the first half of a blocking apply, whose
 * caller waits for the result and so may lend its arguments. */
static pp_status apply_submit(pp_pool *pool, const char *task,
                              const pp_bytes *args, size_t nargs,
                              const pp_callbacks *callbacks, int lend,
                              pp_result **out) {
  if (out)
    *out = NULL;
  pp_status st = pp__check_submit(pool, task, callbacks, out);
  if (st != PP_OK)
    return st;
  if (!args && nargs)
    return pp__fail(PP_EINVAL, "args is NULL but nargs is %zu", nargs);
  pp_args one = {args, nargs};
  size_t size;
  if ((st = calls_frame_size(task, &one, NULL, 1, PP__AN_APPLY, &size)) !=
      PP_OK)
    return st;
  size_t framed = lend ? 0 : size;
  /* One allocation for all a task needs: result, item, chunk, frame and
   * the task's name (checked short by pp__check_submit). */
  apply_block *blk = malloc(sizeof *blk + framed + strlen(task) + 1);
  if (!blk)
    return PP_ENOMEM;
  memset(blk, 0, sizeof *blk);
  pp_result *r = &blk->r;
  result_init(r, pool, PP__JOB_CALLS, task, (char *)(blk + 1) + framed,
              callbacks);
  r->apply = 1;
  r->one_block = 1;
  r->items = &blk->item;
  r->small_value = blk->value;
  r->small_cap = sizeof blk->value;
  r->job.count = r->job.nchunks = r->job.chunks_left = r->job.chunksize = 1;
  pp__chunk *c = &blk->chunk;
  c->mem = PP__CHUNK_IN_JOB;
  c->payload_len = (uint32_t)(size - PP__WIRE_HEADER_SIZE);
  c->count = 1;
  r->job.id = pp__next_job_id(pool);
  if (lend) {
    blk->lent = one;
    r->lent_calls = &blk->lent;
  } else {
    c->frame = (unsigned char *)(blk + 1);
    st = pp__calls_frame_encode(c->frame, size, task,
                                pp__job_chunk_id(&r->job, 0), &one, NULL, 1,
                                NULL, NULL);
  }
  if (st == PP_OK) {
    pp__chunk *first = NULL, *last = NULL;
    pp__queue_run_add(&first, &last, c, &r->job);
    st = submit(pool, r, first, last);
  }
  if (st != PP_OK) {
    free(blk);
    return st;
  }
  *out = r;
  return PP_OK;
}

pp_status pp_apply_async(pp_pool *pool, const char *task, const pp_bytes *args,
                         size_t nargs, const pp_callbacks *callbacks,
                         pp_result **out) {
  return pp__api(__func__,
                 apply_submit(pool, task, args, nargs, callbacks, 0, out));
}

/* Room a frame keeps beside what it carries, either way: the task's name,
 * the counts and lengths or field sizes, and an answer's failure messages.
 * 4 KiB, or half the pool's largest message where that is smaller (the
 * smallest limit allowed is 4 KiB itself, which would leave no room). */
static size_t frame_slack(const pp_pool *pool) {
  return pool->max_message / 2 < 4096 ? pool->max_message / 2 : 4096;
}

/* map and starmap: `count` items in chunks of `chunksize` (0: Python's
 * default), encoded now so that the caller may reuse its buffers, or with
 * `lend` (a blocking map, whose caller waits) encoded when sent. */
static pp_status map_common(pp_pool *pool, const char *task,
                            const pp_args *calls, const pp_bytes *single,
                            size_t count, size_t chunksize,
                            const pp_callbacks *cb, int lend, pp_result **out) {
  if (out)
    *out = NULL;
  pp_status st = pp__check_submit(pool, task, cb, out);
  if (st != PP_OK)
    return st;
  if (!calls && !single && count)
    return pp__fail(PP_EINVAL, "items is NULL but count is %zu", count);
  if (count > ((size_t)-1) / sizeof(pp__item))
    return pp__fail(PP_ETOOBIG,
                    "%zu items are more than this process can "
                    "keep results for",
                    count);
  pp_result *r;
  if ((st = pp__result_new(pool, PP__JOB_CALLS, task, cb, &r)) != PP_OK)
    return st;
  r->job.count = count;
  r->job.chunksize =
      chunksize ? chunksize : pp_default_chunksize(count, pool->processes);
  r->items = calloc(count ? count : 1, sizeof *r->items);
  if (!r->items)
    st = PP_ENOMEM;
  /* The default chunk size is Python's, in chunks whose items fit the
   * largest message a worker may answer with (an identity's answer is as
   * big as its items), within the wire's 4 GiB. */
  size_t budget = 0;
  if (!chunksize)
    budget = (pool->max_message < UINT32_MAX ? pool->max_message
                                             : (size_t)UINT32_MAX) -
             frame_slack(pool);
  calls_source src = {task, calls, single, budget};
  if (lend) {
    r->lent_calls = calls;
    r->lent_single = single;
  }
  if (st == PP_OK)
    st = cut_and_submit(pool, r, count,
                        lend ? make_lent_chunk : make_calls_chunk, &src);
  if (st != PP_OK) {
    free(r->items);
    free(r);
    return st;
  }
  *out = r;
  return PP_OK;
}

pp_status pp_map_async(pp_pool *pool, const char *task, const pp_bytes *items,
                       size_t count, size_t chunksize,
                       const pp_callbacks *callbacks, pp_result **out) {
  return pp__api(__func__, map_common(pool, task, NULL, items, count, chunksize,
                                      callbacks, 0, out));
}

pp_status pp_starmap_async(pp_pool *pool, const char *task,
                           const pp_args *items, size_t count, size_t chunksize,
                           const pp_callbacks *callbacks, pp_result **out) {
  return pp__api(__func__, map_common(pool, task, items, NULL, count, chunksize,
                                      callbacks, 0, out));
}

/* The largest chunk of records whose frames (either way) fit the limits. */
static size_t records_chunk_limit(const pp_pool *pool, const pp_records *rec) {
  size_t widest = rec->in_size > rec->out_size ? rec->in_size : rec->out_size;
  size_t limit =
      pool->max_message < UINT32_MAX ? pool->max_message : (size_t)UINT32_MAX;
  size_t n = (limit - frame_slack(pool)) / widest;
  return n ? n : 1;
}

/* Whether the output array overlaps the input other than as the same
 * array with the same record size. Chunks run in any order, so a worker
 * would read records that another one already overwrote. */
static int records_overlap(const pp_records *rec) {
  if (!rec->count || (rec->in == rec->out && rec->in_size == rec->out_size))
    return 0;
  uintptr_t in = (uintptr_t)rec->in, out = (uintptr_t)rec->out;
  return in < out + rec->count * rec->out_size &&
         out < in + rec->count * rec->in_size;
}

static pp_status check_records(const pp_pool *pool, const pp_records *rec) {
  if (!rec->in_size || !rec->out_size)
    return pp__fail(PP_EINVAL, "records->%s is 0: a record is a byte or more",
                    !rec->in_size ? "in_size" : "out_size");
  if ((!rec->in || !rec->out) && rec->count)
    return pp__fail(PP_EINVAL, "records->%s is NULL but count is %zu",
                    !rec->in ? "in" : "out", rec->count);
  if (rec->nfields && !rec->field_sizes)
    return pp__fail(PP_EINVAL,
                    "records->field_sizes is NULL but nfields is "
                    "%zu",
                    rec->nfields);
  if (rec->in_size > UINT32_MAX || rec->out_size > UINT32_MAX)
    return pp__fail(PP_ETOOBIG,
                    "records->%s is %zu bytes; a record may be "
                    "at most 4 GiB - 1",
                    rec->in_size > UINT32_MAX ? "in_size" : "out_size",
                    rec->in_size > UINT32_MAX ? rec->in_size : rec->out_size);
  if (rec->count > ((size_t)-1) / rec->in_size ||
      rec->count > ((size_t)-1) / rec->out_size)
    return pp__fail(PP_ETOOBIG,
                    "%zu records of %zu bytes are more than "
                    "this process can address",
                    rec->count,
                    rec->in_size > rec->out_size ? rec->in_size
                                                 : rec->out_size);
  if (records_overlap(rec))
    return pp__fail(PP_EINVAL, "records->out overlaps records->in: give "
                               "separate arrays, or the same one with "
                               "out_size equal to in_size");
  /* The slack is at most half the limit: subtracted, nothing wraps, where
   * a record of nearly 4 GiB plus the slack would pass SIZE_MAX with a
   * 32-bit size_t and look small. */
  size_t widest = rec->in_size > rec->out_size ? rec->in_size : rec->out_size;
  if (widest > pool->max_message - frame_slack(pool))
    return pp__fail(PP_ETOOBIG,
                    "a record of %zu bytes does not fit the "
                    "pool's max_message_size of %zu bytes with "
                    "its frame (%zu bytes more)",
                    widest, pool->max_message, frame_slack(pool));
  /* Fields of a byte or more summing to in_size: more fields than bytes
   * (so more than the wire's 32-bit count) fail here, on the first field
   * past the record's end. */
  size_t sum = 0;
  for (size_t i = 0; i < rec->nfields; i++) {
    if (!rec->field_sizes[i] || rec->field_sizes[i] > rec->in_size - sum)
      return pp__fail(PP_EINVAL,
                      !rec->field_sizes[i]
                          ? "records->field_sizes[%zu] is 0: a field is a "
                            "byte or more"
                          : "records->field_sizes[%zu] goes past the end of "
                            "the record (in_size %zu)",
                      i, rec->in_size);
    sum += rec->field_sizes[i];
  }
  if (rec->nfields && sum != rec->in_size)
    return pp__fail(PP_EINVAL,
                    "records->field_sizes sum to %zu, not to "
                    "in_size (%zu)",
                    sum, rec->in_size);
  return PP_OK;
}

static pp_status records_async(pp_pool *pool, const char *task,
                               const pp_records *records, size_t chunksize,
                               const pp_callbacks *callbacks, pp_result **out) {
  if (out)
    *out = NULL;
  pp_status st = pp__check_submit(pool, task, callbacks, out);
  if (st == PP_OK && !records)
    st = pp__fail(PP_EINVAL, "records is NULL");
  if (st == PP_OK)
    st = check_records(pool, records);
  if (st != PP_OK)
    return st;
  pp_result *r;
  if ((st = pp__result_new(pool, PP__JOB_RECORDS, task, callbacks, &r)) !=
      PP_OK)
    return st;
  r->rec = *records;
  if (records->nfields) {
    r->field_sizes = malloc(records->nfields * sizeof *r->field_sizes);
    if (!r->field_sizes) {
      free(r);
      return PP_ENOMEM;
    }
    memcpy(r->field_sizes, records->field_sizes,
           records->nfields * sizeof *r->field_sizes);
    r->rec.field_sizes = r->field_sizes;
  }
  size_t count = records->count;
  size_t limit = records_chunk_limit(pool, records);
  r->job.count = count;
  r->job.chunksize =
      chunksize ? chunksize : pp_default_chunksize(count, pool->processes);
  if (r->job.chunksize > limit)
    r->job.chunksize = limit;
  st = cut_and_submit(pool, r, count, make_records_chunk, NULL);
  if (st != PP_OK) {
    free(r->field_sizes);
    free(r);
    return st;
  }
  *out = r;
  return PP_OK;
}

pp_status pp_map_records_async(pp_pool *pool, const char *task,
                               const pp_records *records, size_t chunksize,
                               const pp_callbacks *callbacks, pp_result **out) {
  return pp__api(__func__,
                 records_async(pool, task, records, chunksize, callbacks, out));
}

/* The blocking forms wait on a result, so from a callback (the scheduler
 * thread), or in a fork of the pool's owner, they would never return. */
static pp_status refuse_blocking(pp_pool *pool, pp_result **out) {
  if (out)
    *out = NULL;
  return pool && pp__wait_would_hang(pool)
             ? pp__fail_wait_would_hang(pool->shared)
             : PP_OK;
}

static pp_status wait_map(pp_status st, pp_result **out) {
  return st != PP_OK ? st : pp__result_get(*out, -1);
}

/* The blocking map and starmap wait for their result, so they lend their
 * items rather than copy them. */
static pp_status blocking_map(pp_pool *pool, const char *task,
                              const pp_args *calls, const pp_bytes *single,
                              size_t count, size_t chunksize, pp_result **out) {
  pp_status st = refuse_blocking(pool, out);
  return st != PP_OK ? st
                     : wait_map(map_common(pool, task, calls, single, count,
                                           chunksize, NULL, 1, out),
                                out);
}

pp_status pp_map(pp_pool *pool, const char *task, const pp_bytes *items,
                 size_t count, size_t chunksize, pp_result **out) {
  return pp__api(__func__,
                 blocking_map(pool, task, NULL, items, count, chunksize, out));
}

pp_status pp_starmap(pp_pool *pool, const char *task, const pp_args *items,
                     size_t count, size_t chunksize, pp_result **out) {
  return pp__api(__func__,
                 blocking_map(pool, task, items, NULL, count, chunksize, out));
}

pp_status pp_map_records(pp_pool *pool, const char *task,
                         const pp_records *records, size_t chunksize,
                         pp_result **out) {
  pp_status st = refuse_blocking(pool, out);
  if (st == PP_OK)
    st =
        wait_map(records_async(pool, task, records, chunksize, NULL, out), out);
  return pp__api(__func__, st);
}

/* A failed apply's value: its status, and as its message the reason the
 * call gave (the thread's), or none. */
static pp_status fail_value(pp_value *out, pp_status st) {
  const pp__thread_errors *e = pp__errors_of_thread();
  if (e->reason_status == st)
    pp__value_fail(out, st, e->reason, strlen(e->reason));
  else
    pp__value_fail(out, st, NULL, 0);
  return st;
}

static pp_status apply(pp_pool *pool, const char *task, const pp_bytes *args,
                       size_t nargs, pp_value *out) {
  if (out)
    memset(out, 0, sizeof *out);
  if (!out)
    return pp__fail(PP_EINVAL, "out is NULL");
  pp_result *r;
  pp_status st = refuse_blocking(pool, NULL);
  if (st == PP_OK)
    st = apply_submit(pool, task, args, nargs, NULL, 1, &r);
  if (st != PP_OK)
    return fail_value(out, st);
  st = pp__result_get(r, -1);
  const pp__item *item = &r->items[0];
  out->status = st;
  if (st == PP_OK && item->data == r->small_value) {
    /* The value sits in the result's block, which goes: copy it out. */
    out->data = malloc(item->len + 1);
    if (out->data) {
      memcpy(out->data, item->data, item->len + 1);
      out->len = item->len;
    } else {
      st = PP_ENOMEM;
      pp__value_fail(out, st, NULL, 0);
    }
  } else if (st == PP_OK) {
    out->data = item->data; /* ownership moves to the caller */
    out->len = item->len;
    out->owner = item->owner;
    r->items[0].data = NULL;
    r->items[0].owner = NULL;
  } else {
    const char *why = pp_result_error(r);
    pp__value_fail(out, st, why, why ? strlen(why) : 0);
  }
  pp_result_free(r);
  return st;
}

pp_status pp_apply(pp_pool *pool, const char *task, const pp_bytes *args,
                   size_t nargs, pp_value *out) {
  return pp__api(__func__, apply(pool, task, args, nargs, out));
}
