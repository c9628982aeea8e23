/* Result objects (Python's AsyncResult and MapResult): how outcomes are
 * recorded by the scheduler and read by the caller. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void pp__item_set(pp__item *item, const pp__outcome *o, pp__copier *copier) {
  item->status = o->status;
  item->len = o->len;
  item->owner = NULL;
  if (o->status == PP_OK && o->len >= PP__BIG_VALUE) {
    item->owner = pp__value_block_new(o->len + 1, 1);
    item->data = item->owner ? (unsigned char *)(item->owner + 1) : NULL;
  } else {
    item->data = malloc(o->len + 1);
  }
  if (!item->data) {
    /* The value is lost, but never silently: the item says why. */
    item->status = PP_ENOMEM;
    item->len = 0;
    return;
  }
  pp__copier_copy(copier, item->data, o->data, o->len, 1);
  item->data[o->len] = '\0';
}

static const char lost_records[] =
    "no memory was left to list the records that failed, so no record of "
    "the map can be trusted";

static int by_record_index(const void *a, const void *b) {
  size_t x = ((const pp__record_error *)a)->index;
  size_t y = ((const pp__record_error *)b)->index;
  return (x > y) - (x < y);
}

static const char *item_says(const pp__item *item) {
  return item->data ? (const char *)item->data : pp_strerror(item->status);
}

/* A cancelled call completes with PP_ECANCELLED, as pp_result_cancel()
 * promised when it said PP_OK, whatever ended its chunks first: its worker
 * died or passed a time limit before the cancel stopped it, or an item
 * had failed before. The items keep what happened to each; the message is
 * the first cancelled item's, or says what ended the call first. */
static void cancelled(pp_result *r, const pp__item *first) {
  const pp__item *found = NULL;
  if (r->job.kind == PP__JOB_CALLS) {
    for (size_t i = 0; i < r->job.count && !found; i++)
      if (r->items[i].status == PP_ECANCELLED)
        found = &r->items[i];
  } else {
    for (size_t i = 0; i < r->nrec_errors && !found; i++)
      if (r->rec_errors[i].item.status == PP_ECANCELLED)
        found = &r->rec_errors[i].item;
  }
  r->status = PP_ECANCELLED;
  if (found)
    r->error = pp__strdup(item_says(found));
  else if (first)
    r->error = pp__format("the call was cancelled, but it had ended first: "
                          "%s",
                          item_says(first));
  else /* nothing to run (an empty map), or records failures not listed */
    r->error = pp__strdup(pp_strerror(PP_ECANCELLED));
}

/* The first failure in index order decides the status of the whole call, as
 * Python's map reports the first exception. A records map's failures,
 * listed as their chunks came back, are sorted by index once here, so
 * that pp_result_item() finds each by a binary search: a scan per item
 * made reading every item of a map of 200,000 failed records (a time
 * limit, a cancel) take 27 s. */
static void finish(pp_result *r) {
  r->status = PP_OK;
  const pp__item *first = NULL;
  if (r->job.kind == PP__JOB_CALLS) {
    for (size_t i = 0; i < r->job.count && !first; i++)
      if (r->items[i].status != PP_OK)
        first = &r->items[i];
  } else if (r->nrec_errors) {
    qsort(r->rec_errors, r->nrec_errors, sizeof *r->rec_errors,
          by_record_index);
    first = &r->rec_errors[0].item;
  }
  if (r->job.cancelled) {
    cancelled(r, first);
  } else if (r->rec_errors_lost) {
    /* Which records failed is not known whole: none reads as a success
     * (pp_result_item()), and the call says why. */
    r->status = PP_ENOMEM;
    r->error = pp__strdup(lost_records);
  } else if (first) {
    r->status = first->status;
    r->error = pp__strdup(item_says(first));
  }
  pp__atomic_set(&r->done, 1);
}

int pp__result_chunk_done(pp_result *r, const pp__chunk *chunk,
                          const pp__outcome *outcomes, const pp__outcome *all,
                          pp__copier *copier) {
  const pp__outcome *o = outcomes ? outcomes : all;
  if (r->small_value && chunk->count == 1 && o->len < r->small_cap) {
    /* An apply's small value goes into the result's own block. */
    pp__item *item = &r->items[chunk->first];
    item->status = o->status;
    item->len = o->len;
    item->data = r->small_value;
    item->owner = NULL;
    if (o->len)
      memcpy(item->data, o->data, o->len);
    item->data[o->len] = '\0';
  } else {
    for (size_t i = 0; i < chunk->count; i++)
      pp__item_set(&r->items[chunk->first + i], outcomes ? &outcomes[i] : all,
                   copier);
  }
  if (--r->job.chunks_left)
    return 0;
  finish(r);
  return 1;
}

/* Lists `count` failed records from `index` on. */
static void add_record_error(pp_result *r, size_t index, size_t count,
                             const pp__outcome *o) {
  if (r->nrec_errors == r->caprec_errors) {
    size_t cap = r->caprec_errors ? 2 * r->caprec_errors : 8;
    pp__record_error *grown = realloc(r->rec_errors, cap * sizeof *grown);
    if (!grown) {
      r->rec_errors_lost = 1;
      return;
    }
    r->rec_errors = grown;
    r->caprec_errors = cap;
  }
  pp__record_error *e = &r->rec_errors[r->nrec_errors++];
  e->index = index;
  e->count = count;
  pp__item_set(&e->item, o, NULL);
}

/* Whether the failure of record `index` extends the last one listed: the
 * next record, with the same outcome (a chunk that failed whole lists each
 * of its records with its one message). */
static int extends_last(const pp_result *r, size_t index,
                        const pp__outcome *o) {
  if (!r->nrec_errors)
    return 0;
  const pp__record_error *last = &r->rec_errors[r->nrec_errors - 1];
  return last->index + last->count == index && last->item.status == o->status &&
         last->item.len == o->len && last->item.data &&
         (!o->len || memcmp(last->item.data, o->data, o->len) == 0);
}

/* The failed records a worker listed (checked whole by the caller). */
static void add_listed_errors(pp_result *r, const pp__chunk *chunk, size_t nerr,
                              pp__reader *errors) {
  for (size_t i = 0; i < nerr; i++) {
    pp__outcome o;
    size_t index = pp__get_u32(errors);
    o.status = (pp_status)pp__get_u8(errors);
    o.data = pp__get_str32(errors, &o.len);
    if (errors->bad || index >= chunk->count)
      break; /* checked by caller */
    if (extends_last(r, chunk->first + index, &o))
      r->rec_errors[r->nrec_errors - 1].count++;
    else
      add_record_error(r, chunk->first + index, 1, &o);
  }
}

int pp__records_chunk_done(pp_result *r, const pp__chunk *chunk,
                           const unsigned char *out, size_t nerr,
                           pp__reader *errors, const pp__outcome *all,
                           pp__copier *copier) {
  /* An empty map's one chunk holds no records, and its arrays may be
   * NULL: nothing is written, nor pointed at. */
  size_t bytes = chunk->count * r->rec.out_size;
  unsigned char *dst =
      bytes ? (unsigned char *)r->rec.out + chunk->first * r->rec.out_size
            : NULL;
  if (chunk->in_place && !all) {
    /* The worker wrote the results into the caller's array itself. */
    add_listed_errors(r, chunk, nerr, errors);
  } else if (out) {
    if (bytes)
      pp__copier_copy(copier, dst, out, bytes, 1);
    add_listed_errors(r, chunk, nerr, errors);
  } else {
    /* The whole chunk failed (its worker died, or the pool ended). A chunk
     * that went in place is left as its worker left it: the system may
     * have refused the worker that memory, and the parent would crash
     * where the worker was only refused. */
    if (!chunk->in_place && bytes)
      memset(dst, 0, bytes);
    if (chunk->count)
      add_record_error(r, chunk->first, chunk->count, all);
  }
  if (--r->job.chunks_left)
    return 0;
  finish(r);
  return 1;
}

static void result_destroy(pp_result *r) {
  for (size_t i = 0; r->items && i < r->job.count; i++) {
    if (r->items[i].owner)
      pp__value_block_release(r->items[i].owner);
    else if (r->items[i].data != r->small_value)
      free(r->items[i].data);
  }
  for (size_t i = 0; i < r->nrec_errors; i++)
    free(r->rec_errors[i].item.data);
  free(r->rec_errors);
  if (!r->one_block) /* else the items, chunk and frame go with r */
    free(r->items);
  free(r->field_sizes);
  free(r->error);
  free(r);
}

void pp__result_release_locked(pp_result *r) {
  if (--r->refs)
    return;
  /* The pool still holds the shared state, so this never frees it. */
  r->shared->refs--;
  result_destroy(r);
}

void pp_result_free(pp_result *r) {
  if (!r || !pp__shared_owned(r->shared))
    return;
  pp__shared *s = r->shared;
  pp__mutex_lock(s->lock);
  if (--r->refs) {
    pp__mutex_unlock(s->lock);
    return;
  }
  result_destroy(r);
  pp__shared_unref_unlock(s);
}

static pp_status cancel(pp_result *r) {
  if (!r)
    return pp__fail(PP_EINVAL, "result is NULL");
  if (!pp__shared_owned(r->shared))
    return pp__fail_not_owner();
  pp__mutex_lock(r->shared->lock);
  if (pp__atomic_get(&r->done)) {
    pp__mutex_unlock(r->shared->lock);
    return pp__fail(PP_ESTATE, "the call is complete already: nothing is "
                               "left to cancel");
  }
  r->job.cancelled = 1;
  pp__queue_drop_job_locked(r->pool, &r->job);
  r->pool->cancels = 1; /* a worker may be running it */
  pp__backend_wake(r->pool->backend);
  pp__mutex_unlock(r->shared->lock);
  return PP_OK;
}

pp_status pp_result_cancel(pp_result *r) {
  return pp__api(__func__, cancel(r));
}

/* How long a waiter spins before it sleeps, in µs. */
#define PP__SPIN_US 100

/* Waits a little without sleeping: an answer that is due in microseconds
 * then costs no wake-up of this thread, and this thread's CPU does not
 * halt meanwhile, so the scheduler's own wake-up on it is quick too. On a
 * virtual machine whose idle vCPUs halt, each such wake-up costs tens of
 * µs. It yields on every turn, so it takes no CPU from a thread with work.
 * 1 when the result became ready. */
static int spin_until_ready(pp_result *r, apr_time_t deadline) {
  apr_time_t until = pp__clock_us() + PP__SPIN_US;
  if (deadline && deadline < until)
    until = deadline;
  for (unsigned turn = 0;; turn++) {
    if (pp__atomic_get(&r->ready))
      return 1;
    if ((turn & 7) == 7 && pp__clock_us() >= until)
      return 0;
    apr_thread_yield();
  }
}

pp_status pp__result_wait(pp_result *r, double timeout) {
  if (!r || timeout != timeout) /* NaN: neither a wait nor none */
    return pp__fail(PP_EINVAL, !r ? "result is NULL"
                                  : "timeout is NaN: give a number of "
                                    "seconds, or a negative value to wait "
                                    "for ever");
  if (pp__atomic_get(&r->ready)) /* no lock, no clock */
    return PP_OK;
  if (!pp__shared_owned(r->shared))
    return pp__fail(PP_ESTATE, "this process is a copy of the pool's "
                               "owner, made by fork(), where the result "
                               "will never be ready: only the process that "
                               "created the pool can wait for it");
  /* In a callback or an imap input function of its pool, the result could
   * complete only once this thread went on: a wait would never end. */
  if (timeout != 0 && pp__shared_on_scheduler(r->shared) &&
      !pp__atomic_get(&r->ready))
    return pp__fail_wait_would_hang(r->shared);
  apr_time_t deadline = pp__deadline(timeout);
  if (timeout != 0 && spin_until_ready(r, deadline))
    return PP_OK;
  pp__mutex_lock(r->shared->lock);
  while (!pp__atomic_get(&r->ready) &&
         pp__shared_wait(r->shared, &r->waiters, deadline) == PP_OK)
    r->sleeps++;
  int ready = pp__atomic_get(&r->ready) != 0;
  pp__mutex_unlock(r->shared->lock);
  return ready ? PP_OK
               : pp__fail(PP_ETIMEOUT,
                          "the result was not ready within %g "
                          "s; it still may be",
                          timeout);
}

unsigned long pp__result_sleeps(pp_result *r) {
  pp__mutex_lock(r->shared->lock);
  unsigned long n = r->sleeps;
  pp__mutex_unlock(r->shared->lock);
  return n;
}

pp_status pp__result_get(pp_result *r, double timeout) {
  pp_status st = pp__result_wait(r, timeout);
  if (st != PP_OK || r->status == PP_OK)
    return st;
  const char *why = pp_result_error(r);
  return pp__fail_text(r->status, why, strlen(why));
}

pp_status pp_result_wait(pp_result *r, double timeout) {
  return pp__api(__func__, pp__result_wait(r, timeout));
}

pp_status pp_result_get(pp_result *r, double timeout) {
  return pp__api(__func__, pp__result_get(r, timeout));
}

int pp_result_ready(const pp_result *r) {
  return r ? pp__atomic_get(&((pp_result *)r)->ready) != 0 : 0;
}

/* Outcomes are final once `done` is seen; callbacks see them before
 * `ready`, as Python runs callbacks before waking get(). */
static int is_done(const pp_result *r) {
  return pp__atomic_get(&((pp_result *)r)->done) != 0;
}

static pp_status not_ready(void) {
  return pp__fail(PP_ENOTREADY, "the call is not complete yet: wait for it "
                                "with pp_result_wait() or pp_result_get()");
}

static pp_status successful(const pp_result *r, int *ok) {
  if (!r || !ok)
    return pp__fail(PP_EINVAL, "%s is NULL", !r ? "result" : "ok");
  if (!is_done(r))
    return not_ready();
  *ok = r->status == PP_OK;
  return PP_OK;
}

pp_status pp_result_successful(const pp_result *r, int *ok) {
  return pp__api(__func__, successful(r, ok));
}

const char *pp_result_error(const pp_result *r) {
  if (!r || !is_done(r) || r->status == PP_OK)
    return NULL;
  /* A copy of the message that could not be made (no memory left): the
   * status's own words still say why. */
  return r->error ? r->error : pp_strerror(r->status);
}

size_t pp_result_count(const pp_result *r) { return r ? r->job.count : 0; }
size_t pp_result_chunks(const pp_result *r) { return r ? r->job.nchunks : 0; }
size_t pp_result_chunksize(const pp_result *r) {
  return r ? r->job.chunksize : 0;
}

/* A failed item or value: its status, with its message as the reason. */
static pp_status failed_item(pp_status st, const pp_bytes *out) {
  return st == PP_OK ? st : pp__fail_text(st, out->data, out->len);
}

static pp_status result_item(const pp_result *r, size_t index, pp_bytes *out) {
  if (!r || !out)
    return pp__fail(PP_EINVAL, "%s is NULL", !r ? "result" : "out");
  if (index >= r->job.count)
    return pp__fail(PP_EINVAL, "index %zu is past the result's %zu items",
                    index, r->job.count);
  if (!is_done(r))
    return not_ready();
  if (r->job.kind == PP__JOB_CALLS) {
    out->data = r->items[index].data;
    out->len = r->items[index].len;
    return failed_item(r->items[index].status, out);
  }
  /* Sorted by finish(), and the ranges do not overlap: the last that
   * begins at or before `index` is the one that may hold it. */
  size_t lo = 0, hi = r->nrec_errors;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->rec_errors[mid].index <= index)
      lo = mid + 1;
    else
      hi = mid;
  }
  const pp__record_error *e = lo ? &r->rec_errors[lo - 1] : NULL;
  if (e && index - e->index < e->count) {
    out->data = e->item.data;
    out->len = e->item.len;
    return failed_item(e->item.status, out);
  }
  if (r->rec_errors_lost) {
    out->data = lost_records;
    out->len = sizeof lost_records - 1;
    return failed_item(PP_ENOMEM, out);
  }
  out->data = (const unsigned char *)r->rec.out + index * r->rec.out_size;
  out->len = r->rec.out_size;
  return PP_OK;
}

pp_status pp_result_item(const pp_result *r, size_t index, pp_bytes *out) {
  return pp__api(__func__, result_item(r, index, out));
}

static pp_status bytes_i64(pp_status st, const pp_bytes *b, int64_t *out) {
  if (st != PP_OK)
    return st;
  if (b->len != sizeof *out)
    return pp__fail(PP_EINVAL,
                    "the value is %zu bytes, not the 8 of an "
                    "int64_t",
                    b->len);
  memcpy(out, b->data, sizeof *out);
  return PP_OK;
}

pp_status pp_result_item_i64(const pp_result *r, size_t index, int64_t *out) {
  pp_bytes b = {NULL, 0};
  if (!out)
    return pp__api(__func__, pp__fail(PP_EINVAL, "out is NULL"));
  return pp__api(__func__, bytes_i64(result_item(r, index, &b), &b, out));
}

static pp_status result_value(const pp_result *r, pp_bytes *out) {
  if (!r || !out)
    return pp__fail(PP_EINVAL, "%s is NULL", !r ? "result" : "out");
  if (!is_done(r))
    return not_ready();
  if (!r->apply)
    return pp__fail(PP_ESTATE, "this is a map's result: read its items with "
                               "pp_result_item()");
  out->data = r->items[0].data;
  out->len = r->items[0].len;
  return failed_item(r->items[0].status, out);
}

pp_status pp_result_value(const pp_result *r, pp_bytes *out) {
  return pp__api(__func__, result_value(r, out));
}

pp_status pp_result_i64(const pp_result *r, int64_t *out) {
  pp_bytes b = {NULL, 0};
  if (!out)
    return pp__api(__func__, pp__fail(PP_EINVAL, "out is NULL"));
  return pp__api(__func__, bytes_i64(result_value(r, &b), &b, out));
}
