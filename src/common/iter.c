/* imap and imap_unordered: input pulled lazily on the scheduler thread,
 * results handed out by pp_iter_next(). Items taken from the input but not
 * yet handed out never exceed the window (plus the few pp_iter_next() has
 * taken into its cache), so memory stays bounded however long the input is
 * and however slowly the caller consumes. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Chunks in flight per worker: one running, one queued behind it. */
#define PP__ITER_CHUNKS_PER_WORKER 2
#define PP__ITER_MAX_WINDOW ((size_t)1 << 16)
/* Items pp_iter_next() takes at once under the pool's lock (see
 * pp_iter.cache); beyond the window, so memory stays bounded. */
#define PP__ITER_CACHE ((size_t)512)
/* The most an input frame reserves up front, from the last one's size. */
#define PP__ITER_FRAME_HINT_MAX ((size_t)1 << 20)

static void iter_destroy(pp_iter *it);

static pp_status iter_create(pp_pool *pool, const char *task, pp_next_fn next,
                             void *state, size_t chunksize, int ordered,
                             pp_iter **out) {
  if (out)
    *out = NULL;
  pp_status st = pp__check_submit(pool, task, out);
  if (st != PP_OK || !next)
    return st != PP_OK ? st : PP_EINVAL;
  if (!chunksize)
    chunksize = 1;
  size_t chunks = (size_t)pool->processes * PP__ITER_CHUNKS_PER_WORKER + 2;
  size_t window = chunksize > PP__ITER_MAX_WINDOW / chunks ? PP__ITER_MAX_WINDOW
                                                           : chunks * chunksize;
  if (window < 2 * chunksize)
    window = 2 * chunksize;
  pp_iter *it = calloc(1, sizeof *it + strlen(task) + 1);
  if (!it)
    return PP_ENOMEM;
  it->cache_cap = window < PP__ITER_CACHE ? window : PP__ITER_CACHE;
  it->slots = calloc(window, sizeof *it->slots);
  it->cache = calloc(it->cache_cap, sizeof *it->cache);
  if (!it->slots || !it->cache) {
    iter_destroy(it);
    return PP_ENOMEM;
  }
  it->job.kind = PP__JOB_IMAP;
  strcpy((char *)(it + 1), task);
  it->job.task = (const char *)(it + 1);
  it->job.chunksize = chunksize;
  it->job.time_limit = pp__time_limit(pool, NULL);
  it->shared = pool->shared;
  it->pool = pool;
  it->ordered = ordered;
  it->next = next;
  it->state = state;
  it->window = window;
  it->frame_hint = chunksize < PP__ITER_FRAME_HINT_MAX / 16
                       ? 64 + 16 * chunksize
                       : PP__ITER_FRAME_HINT_MAX;

  apr_thread_mutex_lock(pool->shared->lock);
  if (pool->state != PP__RUN) {
    apr_thread_mutex_unlock(pool->shared->lock);
    iter_destroy(it);
    return PP_ECLOSED;
  }
  it->refs = 2; /* the caller's and the pool's while it is active */
  pool->shared->refs++;
  pool->inflight_jobs++;
  it->next_active = pool->active_iters;
  pool->active_iters = it;
  apr_thread_mutex_unlock(pool->shared->lock);
  pp__backend_wake(pool->backend);
  *out = it;
  return PP_OK;
}

pp_status pp_imap(pp_pool *pool, const char *task, pp_next_fn next, void *state,
                  size_t chunksize, pp_iter **out) {
  return iter_create(pool, task, next, state, chunksize, 1, out);
}

pp_status pp_imap_unordered(pp_pool *pool, const char *task, pp_next_fn next,
                            void *state, size_t chunksize, pp_iter **out) {
  return iter_create(pool, task, next, state, chunksize, 0, out);
}

static size_t room(const pp_iter *it) {
  return it->window - (it->pulled - it->delivered);
}

void pp__iter_stop_locked(pp_iter *it, pp_status why, const char *message) {
  if (it->input_done)
    return;
  it->input_done = 1;
  if (it->pool) /* its waiters must see it end */
    it->pool->iters_changed = 1;
  it->input_error = why;
  it->input_message = pp__strdup(message ? message : pp_strerror(why));
}

/* memcpy() of a length known only at run time is a call; items of 8 to 16
 * bytes (an int64, a double, a pair of them), which imap copies once each
 * way, take two fixed-size copies inline instead. */
static inline void copy_item(unsigned char *dst, const void *src, size_t len) {
  const unsigned char *s = src;
  if (len >= 8 && len <= 16) {
    memcpy(dst, s, 8);
    memcpy(dst + len - 8, s + len - 8, 8);
  } else if (len) {
    memcpy(dst, s, len);
  }
}

/* The start of a chunk's frame: its type, the task's name and a count
 * (patched at the end); the ITEMS frame's item size follows. */
static pp_status begin_chunk(pp_iter *it, pp__buf *frame, pp__frame_type type,
                             uint64_t id, size_t *at) {
  pp_status st = pp__frame_begin(frame, type, id, at);
  if (st == PP_OK)
    st = pp__put_str16(frame, it->job.task);
  if (st == PP_OK)
    st = pp__put_u32(frame, 0);
  return st;
}

/* Appends one item to a CALLS frame: argc 1, its length, its bytes (wire.h's
 * args). */
static pp_status put_call(pp__buf *frame, const void *data, size_t len) {
  if (len > UINT32_MAX - 8)
    return PP_ETOOBIG;
  pp_status st = pp__buf_reserve(frame, 8 + len);
  if (st != PP_OK)
    return st;
  unsigned char *p = pp__buf_tail(frame);
  pp__store_u32(p, 1);
  pp__store_u32(p + 4, (uint32_t)len);
  copy_item(p + 8, data, len);
  pp__buf_commit(frame, 8 + len);
  return PP_OK;
}

/* The first `n` items, written into an ITEMS frame as `size` bytes each
 * from `items` on, are rewritten into `frame` as the CALLS frame that says
 * the same: an item of another size came. */
static pp_status repack_as_calls(pp_iter *it, pp__buf *frame, uint64_t id,
                                 size_t *at, const unsigned char *items,
                                 size_t n, size_t size) {
  pp__buf calls = {0};
  pp_status st = pp__buf_reserve(&calls, pp__buf_len(frame) + 8 * n);
  if (st == PP_OK)
    st = begin_chunk(it, &calls, PP__F_CALLS, id, at);
  for (size_t i = 0; st == PP_OK && i < n; i++)
    st = put_call(&calls, items + i * size, size);
  pp__buf_free(frame);
  *frame = calls;
  return st;
}

/* Encodes up to one chunk of input; `*n` items, `*end` PP_EOF or an error
 * when the input stopped. Runs without the lock, for every item of the
 * input, so the frame is reserved at the last one's size and each item is
 * written in place. Items all of one size (the rule: numbers, records) go
 * into an ITEMS frame, which the worker reads with no length per item; the
 * first item of another size turns it into a CALLS frame. */
static pp_status pull_chunk(pp_iter *it, uint64_t id, pp__buf *frame, size_t *n,
                            pp_status *end) {
  size_t at, size_at = 0, size = 0;
  int packed = 1;
  *n = 0;
  *end = PP_OK;
  pp_status st = pp__buf_reserve(frame, it->frame_hint);
  if (st == PP_OK)
    st = begin_chunk(it, frame, PP__F_ITEMS, id, &at);
  /* A CALLS frame made of it has its count at the same place. */
  size_t count_at = pp__buf_len(frame) - 4;
  if (st == PP_OK) {
    size_at = pp__buf_len(frame);
    st = pp__put_u32(frame, 0);
  }
  while (st == PP_OK && *n < it->job.chunksize) {
    pp_bytes item = {NULL, 0};
    pp_status got = it->next(it->state, &item);
    if (got != PP_OK) {
      *end = got;
      break;
    }
    if (!item.data && item.len) {
      *end = PP_EINVAL;
      break;
    }
    if (packed && *n == 0) {
      size = item.len;
    } else if (packed && item.len != size) {
      st = repack_as_calls(it, frame, id, &at,
                           pp__buf_head(frame) + size_at + 4, *n, size);
      packed = 0;
      if (st != PP_OK)
        break;
    }
    if (packed) {
      st = item.len <= UINT32_MAX ? pp__buf_reserve(frame, item.len)
                                  : PP_ETOOBIG;
      if (st == PP_OK) {
        copy_item(pp__buf_tail(frame), item.data, item.len);
        pp__buf_commit(frame, item.len);
      }
    } else {
      st = put_call(frame, item.data, item.len);
    }
    if (st == PP_OK)
      (*n)++;
  }
  if (st != PP_OK)
    return st;
  pp__patch_u32(frame, count_at, (uint32_t)*n);
  if (packed)
    pp__patch_u32(frame, size_at, (uint32_t)size);
  size_t used = pp__buf_len(frame);
  it->frame_hint =
      used < PP__ITER_FRAME_HINT_MAX ? used : PP__ITER_FRAME_HINT_MAX;
  return pp__frame_end(frame, at);
}

/* Doubles the window, keeping every held item at its place. */
static pp_status grow(pp_iter *it) {
  size_t window = 2 * it->window;
  pp__slot *slots = calloc(window, sizeof *slots);
  if (!slots)
    return PP_ENOMEM;
  if (it->ordered) {
    for (size_t i = it->delivered; i < it->pulled; i++)
      slots[i % window] = it->slots[i % it->window];
  } else {
    for (size_t i = 0; i < it->fifo_len; i++)
      slots[i] = it->slots[(it->fifo_head + i) % it->window];
    it->fifo_head = 0;
  }
  free(it->slots);
  it->slots = slots;
  it->window = window;
  return PP_OK;
}

int pp__iter_fill_locked(pp_pool *pool, pp_iter *it) {
  /* A few chunks per call, so that a long input never keeps the scheduler
   * from its workers' answers. */
  for (size_t pulls = 0;; pulls++) {
    if (it->input_done || it->abandoned || pool->state == PP__TERMINATE ||
        pool->broken != PP_OK)
      return 0;
    if (pulls == (size_t)pool->processes * PP__ITER_CHUNKS_PER_WORKER + 2)
      return 1;
    /* Once someone joins a closed pool, nobody may be left to read before
     * the work is done (Python's imap buffers without bound): the window
     * grows instead of stopping the input. */
    if (room(it) < it->job.chunksize && (!pool->joining || grow(it) != PP_OK))
      return 0;
    uint64_t id = (uint64_t)pp__next_job_id(pool) << 32;
    pp__buf frame = {0};
    size_t n;
    pp_status end;
    it->pulling = 1;
    apr_thread_mutex_unlock(pool->shared->lock);
    pp_status st = pull_chunk(it, id, &frame, &n, &end);
    pp__chunk *c = NULL;
    if (st == PP_OK && n) {
      c = calloc(1, sizeof *c);
      if (!c)
        st = PP_ENOMEM;
    }
    apr_thread_mutex_lock(pool->shared->lock);
    it->pulling = 0;
    /* Only pp_iter_free() waits for this, and it marks the iterator
     * abandoned first: a broadcast for every chunk would wake the consumer
     * for nothing, straight into the lock this thread holds. */
    if (it->abandoned)
      apr_thread_cond_broadcast(pool->shared->changed);
    if (st != PP_OK) {
      pp__buf_free(&frame);
      free(c);
      pp__iter_stop_locked(it, st, "imap could not encode its input");
      return 0;
    }
    if (c) {
      c->job = &it->job;
      c->id = id;
      c->first = it->pulled;
      c->count = n;
      c->frame = frame.data;
      c->frame_len = frame.end;
      it->pulled += n;
      it->job.nchunks++;
      it->job.chunks_left++;
      pp__enqueue_locked(pool, c, c);
    } else {
      pp__buf_free(&frame);
    }
    if (end == PP_EOF) {
      it->input_done = 1;
      pool->iters_changed = 1; /* a waiter past the last item must see it */
    } else if (end != PP_OK) {
      char *msg = pp__format("the imap input stopped with an error: %s",
                             pp_strerror(end));
      pp__iter_stop_locked(it, end, msg);
      free(msg);
    }
  }
}

/* Puts one outcome into a slot, its value in an allocation of its own. */
static void slot_set_alone(pp__slot *slot, const pp__outcome *o,
                           pp__copier *copier) {
  pp__item item;
  pp__item_set(&item, o, copier);
  memset(&slot->value, 0, sizeof slot->value); /* take() leaves it as is */
  slot->filled = 1;
  slot->value.status = item.status;
  if (item.status == PP_OK) {
    slot->value.data = item.data;
    slot->value.len = item.len;
    slot->value.owner = item.owner;
  } else {
    slot->value.error = (char *)item.data;
    if (!slot->value.error)
      slot->value.error = pp__strdup(pp_strerror(item.status));
  }
}

void pp__iter_chunk_done(pp_iter *it, const pp__chunk *chunk,
                         const pp__outcome *outcomes, const pp__outcome *all,
                         pp__copier *copier) {
  /* The chunk's values go into one block (see pp__value_block); failures
   * keep a message of their own, as they are rare. */
  pp__value_block *block = NULL;
  unsigned char *at = NULL;
  if (outcomes) {
    size_t bytes = 0, ok = 0;
    for (size_t i = 0; i < chunk->count; i++) {
      if (outcomes[i].status == PP_OK) {
        bytes += outcomes[i].len + 1; /* bounded by the frame's size */
        ok++;
      }
    }
    if (ok && (block = pp__value_block_new(bytes, (apr_uint32_t)ok)) != NULL)
      at = (unsigned char *)(block + 1);
  }
  size_t index = it->ordered ? chunk->first % it->window
                             : (it->fifo_head + it->fifo_len) % it->window;
  for (size_t i = 0; i < chunk->count; i++) {
    const pp__outcome *o = outcomes ? &outcomes[i] : all;
    pp__slot *slot = &it->slots[index];
    if (++index == it->window)
      index = 0;
    if (!block || o->status != PP_OK) {
      slot_set_alone(slot, o, copier);
      continue;
    }
    copy_item(at, o->data, o->len);
    at[o->len] = '\0';
    slot->filled = 1;
    slot->value.data = at;
    slot->value.len = o->len;
    slot->value.status = PP_OK;
    slot->value.error = NULL;
    slot->value.owner = block;
    at += o->len + 1;
  }
  if (!it->ordered)
    it->fifo_len += chunk->count;
  it->finished += chunk->count;
  it->job.chunks_left--;
}

static void iter_destroy(pp_iter *it) {
  if (it->slots)
    for (size_t i = 0; i < it->window; i++)
      if (it->slots[i].filled)
        pp_value_clear(&it->slots[i].value);
  if (it->cache)
    for (size_t i = it->cache_pos; i < it->cache_len; i++)
      pp_value_clear(&it->cache[i]);
  free(it->slots);
  free(it->cache);
  free(it->input_message);
  free(it);
}

void pp__iter_release_locked(pp_iter *it) {
  if (--it->refs)
    return;
  it->shared->refs--; /* the pool still holds the shared state */
  iter_destroy(it);
}

/* Lock held: moves up to `cap` deliverable items, in the order they are to
 * be handed out, into `out`; returns how many. */
static size_t take(pp_iter *it, pp_value *out, size_t cap) {
  size_t n = 0;
  /* An emptied slot keeps stale fields: only `filled` says anything, and a
   * slot is filled whole (pp__iter_chunk_done). */
  if (it->ordered) {
    size_t index = it->delivered % it->window;
    while (n < cap && it->slots[index].filled) {
      out[n++] = it->slots[index].value;
      it->slots[index].filled = 0;
      if (++index == it->window)
        index = 0;
    }
  } else {
    while (n < cap && it->fifo_len) {
      out[n++] = it->slots[it->fifo_head].value;
      it->slots[it->fifo_head].filled = 0;
      if (++it->fifo_head == it->window)
        it->fifo_head = 0;
      it->fifo_len--;
    }
  }
  it->delivered += n;
  return n;
}

/* The iterator's own lock, over its cache. Taken for every item, by
 * one consumer thread as a rule, and held only to move a few values (and,
 * to refill the cache, for the pool's lock): a spin lock costs one atomic
 * exchange, a mutex two locked instructions. A thread that finds it taken
 * yields rather than burn the CPU the holder may need. */
static PP__NOINLINE void take_lock_contended(pp_iter *it) {
  while (!pp__atomic_try_take(&it->taking))
    apr_thread_yield();
}

static inline void take_lock(pp_iter *it) {
  if (!pp__atomic_try_take(&it->taking))
    take_lock_contended(it); /* apart: the common case needs no frame */
}

static void take_unlock(pp_iter *it) { pp__atomic_give(&it->taking); }

/* take_lock held: hands out the next cached item, if any. Entries before
 * cache_pos are stale copies, never read again. */
static int from_cache(pp_iter *it, pp_value *out) {
  if (it->cache_pos == it->cache_len)
    return 0;
  *out = it->cache[it->cache_pos++];
  return 1;
}

/* pp_iter_next() once the cache is empty, take_lock held: refills it from
 * the slots, waiting for them as need be. Apart, so that the common case
 * saves and restores none of the registers this needs. */
static PP__NOINLINE pp_status refill_and_next(pp_iter *it, double timeout,
                                              pp_value *out) {
  memset(out, 0, sizeof *out);
  /* Lock order: take_lock, then the pool's lock. */
  apr_time_t deadline = pp__deadline(timeout);
  pp__shared *s = it->shared;
  apr_thread_mutex_lock(s->lock);
  for (;;) {
    int was_full = room(it) < it->job.chunksize;
    size_t n = take(it, it->cache, it->cache_cap);
    if (n) {
      /* Room for another chunk of input just appeared: let the scheduler
       * pull it (once per chunk, not once per item). */
      if (was_full && room(it) >= it->job.chunksize && it->pool &&
          !it->input_done)
        pp__backend_wake(it->pool->backend);
      apr_thread_mutex_unlock(s->lock);
      it->cache_pos = 0;
      it->cache_len = n;
      from_cache(it, out);
      take_unlock(it);
      return out->status;
    }
    if (it->input_done && it->delivered == it->pulled) {
      pp_status st = PP_EOF;
      if (it->input_error != PP_OK && !it->error_reported) {
        it->error_reported = 1;
        st = out->status = it->input_error;
        out->error = pp__strdup(it->input_message);
      }
      apr_thread_mutex_unlock(s->lock);
      take_unlock(it);
      return st;
    }
    /* Waits without take_lock, so that another thread's pp_iter_next()
     * keeps its own timeout; then takes the locks again in their order. */
    take_unlock(it);
    pp_status waited = pp__shared_wait(s, deadline);
    apr_thread_mutex_unlock(s->lock);
    if (waited == PP_ETIMEOUT)
      return PP_ETIMEOUT;
    take_lock(it);
    if (from_cache(it, out)) { /* another thread filled it meanwhile */
      take_unlock(it);
      return out->status;
    }
    apr_thread_mutex_lock(s->lock);
  }
}

pp_status pp_iter_next(pp_iter *it, double timeout, pp_value *out) {
  if (!it || !out) {
    if (out)
      memset(out, 0, sizeof *out);
    return PP_EINVAL;
  }
  take_lock(it);
  if (from_cache(it, out)) { /* the common case: a whole value copied */
    take_unlock(it);
    return out->status;
  }
  return refill_and_next(it, timeout, out);
}

void pp_iter_free(pp_iter *it) {
  if (!it)
    return;
  /* Items taken but not handed out are dropped now. */
  take_lock(it);
  while (it->cache_pos < it->cache_len)
    pp_value_clear(&it->cache[it->cache_pos++]);
  take_unlock(it);
  pp__shared *s = it->shared;
  apr_thread_mutex_lock(s->lock);
  it->abandoned = 1;
  /* The caller may free the input's state after this returns, so wait out a
   * next() the scheduler is running right now. */
  while (it->pulling)
    apr_thread_cond_wait(s->changed, s->lock);
  if (!it->input_done)
    it->input_done = 1;
  if (it->pool)
    pp__backend_wake(it->pool->backend);
  if (--it->refs) {
    apr_thread_mutex_unlock(s->lock);
    return;
  }
  iter_destroy(it);
  pp__shared_unref_unlock(s);
}
