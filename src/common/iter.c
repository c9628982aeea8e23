/* imap and imap_unordered: input pulled lazily on the scheduler thread,
 * results handed out by pp_iter_next(). Items taken from the input but not
 * yet handed out never exceed the window (plus the one chunk pp_iter_next()
 * hands out from), so memory stays bounded however long the input is and
 * however slowly the caller consumes.
 *
 * An answered chunk is kept as its worker wrote it, a RESULTS or VALUES
 * body copied whole (pp__check_results() or pp__check_values() vouched for
 * it), and pp_iter_next() reads its items from there one by one: no item
 * is touched on the scheduler thread, where a value made per item cost as
 * much as the rest of an imap. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Chunks pulled per scheduler pass, per worker: a long input never keeps
 * the scheduler from its workers' answers for long. */
#define PP__ITER_PULLS_PER_WORKER 2
#define PP__ITER_MAX_WINDOW ((size_t)1 << 16)
/* The most an input frame reserves up front, from the last one's size. */
#define PP__ITER_FRAME_HINT_MAX ((size_t)1 << 20)
/* The owner of an iterator owns the value blocks of the chunks it takes
 * (value.c) from this many items: a block given back on another thread
 * then costs one barrier on every thread (about 0.1 us, more when they
 * run) for at least this many items. */
#define PP__ITER_OWNED_BLOCK_MIN 16

static void iter_destroy(pp_iter *it);

/* Items held at most with `per_worker` chunks per worker and two more;
 * at least two chunks. */
static size_t window_for(const pp_pool *pool, size_t chunksize,
                         size_t per_worker) {
  size_t chunks = (size_t)pool->processes * per_worker + 2;
  size_t window = chunksize > PP__ITER_MAX_WINDOW / chunks ? PP__ITER_MAX_WINDOW
                                                           : chunks * chunksize;
  return window < 2 * chunksize ? 2 * chunksize : window;
}

/* `window`, or PP__ITER_SMALL_WINDOW items in whole chunks when more (as
 * far as PP__ITER_MAX_WINDOW). */
static size_t small_window_for(size_t window, size_t chunksize) {
  if (window >= PP__ITER_SMALL_WINDOW)
    return window;
  size_t chunks = (PP__ITER_SMALL_WINDOW + chunksize - 1) / chunksize;
  size_t small = chunks * chunksize;
  return small > PP__ITER_MAX_WINDOW ? window : small;
}

static pp_status iter_create(pp_pool *pool, const char *task, pp_next_fn next,
                             void *state, size_t chunksize, int ordered,
                             pp_iter **out) {
  if (out)
    *out = NULL;
  pp_status st = pp__check_submit(pool, task, NULL, out);
  if (st != PP_OK)
    return st;
  if (!next)
    return pp__fail(PP_EINVAL, "next is NULL: give the function that "
                               "produces the input items");
  if (!chunksize)
    chunksize = 1;
  /* No more than a frame's count can say, nor than the window's sums can
   * hold where size_t is 32 bits. */
  if (chunksize > UINT32_MAX - 1 || chunksize > SIZE_MAX / 4)
    chunksize = UINT32_MAX - 1 < SIZE_MAX / 4 ? UINT32_MAX - 1 : SIZE_MAX / 4;
  size_t window = window_for(pool, chunksize, PP__ITER_CHUNKS_PER_WORKER);
  size_t small_window = small_window_for(window, chunksize);
  pp_iter *it = calloc(1, sizeof *it + strlen(task) + 1);
  if (!it)
    return PP_ENOMEM;
  /* Every chunk but the last is whole, and one is pulled only when the
   * window has room for it: no more than this many are ever held. */
  it->nchunks = small_window / chunksize;
  it->chunks = calloc(it->nchunks, sizeof *it->chunks);
  if (!it->chunks) {
    iter_destroy(it);
    return PP_ENOMEM;
  }
  it->job.kind = PP__JOB_IMAP;
  it->job.id = pp__next_job_id(pool);
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
  it->small_window = small_window;
  it->big_window = window_for(pool, chunksize, PP__ITER_BIG_CHUNKS_PER_WORKER);
  it->frame_hint = chunksize < PP__ITER_FRAME_HINT_MAX / 16
                       ? 64 + 16 * chunksize
                       : PP__ITER_FRAME_HINT_MAX;

  pp__mutex_lock(pool->shared->lock);
  if (pool->state != PP__RUN) {
    pp__mutex_unlock(pool->shared->lock);
    iter_destroy(it);
    return pp__fail_closed();
  }
  it->refs = 2; /* the caller's and the pool's while it is active */
  pool->shared->refs++;
  pool->inflight_jobs++;
  it->next_active = pool->active_iters;
  pool->active_iters = it;
  /* Before the scheduler can see the iterator: its input function may use
   * the handle from its first call on (to free it, to say it is ready). */
  *out = it;
  pp__mutex_unlock(pool->shared->lock);
  pp__backend_wake(pool->backend);
  return PP_OK;
}

pp_status pp_imap(pp_pool *pool, const char *task, pp_next_fn next, void *state,
                  size_t chunksize, pp_iter **out) {
  return pp__api(__func__,
                 iter_create(pool, task, next, state, chunksize, 1, out));
}

pp_status pp_imap_unordered(pp_pool *pool, const char *task, pp_next_fn next,
                            void *state, size_t chunksize, pp_iter **out) {
  return pp__api(__func__,
                 iter_create(pool, task, next, state, chunksize, 0, out));
}

/* The iterator's two spin locks (internal.h), each held briefly: a spin
 * lock costs one atomic exchange, a mutex two locked instructions. A
 * thread that finds one taken yields rather than burn the CPU the holder
 * may need. */
static PP__NOINLINE void spin_contended(pp__atomic_u32 *lock) {
  while (!pp__atomic_try_take(lock))
    apr_thread_yield();
}

static inline void spin_lock(pp__atomic_u32 *lock) {
  if (!pp__atomic_try_take(lock))
    spin_contended(lock); /* apart: the common case needs no frame */
}

/* ---- the owner path ----
 * take_lock's exchange cost 6 ns an item, 40% of a consumer thread that
 * takes items one at a time, and such a consumer is one thread as a rule.
 * So the first thread to take an item with pp_iter_next() becomes the
 * iterator's owner, and takes the next ones without the lock: it says so
 * with a plain store to owner_busy, checks that it is still the owner, and
 * takes the item. Any other thread, once it holds take_lock, ends that for
 * good (drop_owner()): it marks the owner gone, runs pp__remote_barrier()
 * so that the owner's store, if made, is visible to it, and waits while
 * owner_busy says the owner is taking an item (owner.h). Where the system
 * has no such barrier, no thread becomes owner. */

/* `owner` once another thread came, or where there is no owner path. */
static char owner_gone;
#define OWNER_GONE ((void *)&owner_gone)

static int is_owner_token(const void *owner) {
  return owner != NULL && owner != OWNER_GONE;
}

/* take_lock held, the owner another thread: ends the owner path. */
static PP__NOINLINE void drop_owner(pp_iter *it) {
  pp__atomic_ptr_set(&it->owner, OWNER_GONE);
  pp__owner_wait_out(&it->owner_busy);
}

/* take_lock just taken: makes sure no owner takes items beside us. */
static inline void settle_owner(pp_iter *it) {
  void *owner = pp__atomic_ptr_get(&it->owner);
  if (is_owner_token(owner) && owner != pp__thread_token())
    drop_owner(it);
}

/* take_lock held, by pp_iter_next(): the first such thread becomes the
 * owner, where there can be one. */
static void claim_owner(pp_iter *it) {
  if (pp__atomic_ptr_get(&it->owner))
    return;
  pp__atomic_ptr_set(&it->owner, pp__remote_barrier_ready() ? pp__thread_token()
                                                            : OWNER_GONE);
}

/* 1 when the calling thread is the owner. */
static int taker_owns(pp_iter *it) {
  void *owner = pp__atomic_ptr_get(&it->owner);
  return is_owner_token(owner) && owner == pp__thread_token();
}

int pp__iter_owned(pp_iter *it) {
  return is_owner_token(pp__atomic_ptr_get(&it->owner));
}

/* take_lock, over the current chunk: taken by every thread but the owner,
 * and by the owner too but for items it takes on its path; held only to
 * hand out one item or to take the next chunk. */
static inline void take_lock(pp_iter *it) {
  spin_lock(&it->taking);
  settle_owner(it);
}
static inline void take_unlock(pp_iter *it) { pp__atomic_give(&it->taking); }

/* ring_lock, over the answered chunks and the counts that make the window:
 * taken after the pool's lock or take_lock, never before. */
static inline void ring_lock(pp_iter *it) { spin_lock(&it->ring); }
static inline void ring_unlock(pp_iter *it) { pp__atomic_give(&it->ring); }

/* Items that may still be pulled before the iterator holds its limit. */
static size_t room(const pp_iter *it) {
  size_t held = it->pulled - it->delivered;
  size_t limit = it->big_frames                          ? it->big_window
                 : it->held_bytes < PP__ITER_SMALL_BYTES ? it->small_window
                                                         : it->window;
  return held < limit ? limit - held : 0;
}

void pp__iter_stop_locked(pp_iter *it, pp_status why, const char *message) {
  if (it->input_done)
    return;
  it->input_done = 1;
  pp__iter_wake_locked(it); /* its waiters must see it end */
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
  size_t calls_at = 0;
  pp_status st = pp__buf_reserve(&calls, pp__buf_len(frame) + 8 * n);
  if (st == PP_OK)
    st = begin_chunk(it, &calls, PP__F_CALLS, id, &calls_at);
  for (size_t i = 0; st == PP_OK && i < n; i++)
    st = put_call(&calls, items + i * size, size);
  if (st != PP_OK) { /* the ITEMS frame stands, to be tried again */
    pp__buf_free(&calls);
    return st;
  }
  pp__buf_free(frame);
  *frame = calls;
  *at = calls_at;
  return PP_OK;
}

/* Begins the chunk `id` in it->pull: an ITEMS frame's head, its item
 * count and size patched when it ends. */
static pp_status pull_begin(pp_iter *it, uint64_t id) {
  pp__iter_pull *p = &it->pull;
  memset(p, 0, sizeof *p);
  p->id = id;
  p->packed = 1;
  p->open = 1;
  p->chunk = calloc(1, sizeof *p->chunk);
  pp_status st =
      p->chunk ? pp__buf_reserve(&p->frame, it->frame_hint) : PP_ENOMEM;
  if (st == PP_OK)
    st = begin_chunk(it, &p->frame, PP__F_ITEMS, id, &p->at);
  /* A CALLS frame made of it has its count at the same place. */
  p->count_at = pp__buf_len(&p->frame) - 4;
  if (st == PP_OK) {
    p->size_at = pp__buf_len(&p->frame);
    st = pp__put_u32(&p->frame, 0);
  }
  return st;
}

/* Pulls items into the open chunk until it is whole or the input stops
 * (`*end`: PP_EOF, PP_ENOTREADY, or an error). Runs without the lock, for
 * every item of the input, so the frame is reserved at the last one's size
 * and each item is written in place. Items all of one size (the rule:
 * numbers, records) go into an ITEMS frame, which the worker reads with no
 * length per item; the first item of another size turns it into a CALLS
 * frame. */
static pp_status pull_items(pp_iter *it, pp_status *end) {
  pp__iter_pull *p = &it->pull;
  pp__buf *frame = &p->frame;
  size_t n = p->n, size = p->size;
  int packed = p->packed;
  pp_status st = PP_OK;
  *end = PP_OK;
  /* The common case, an item of the frame's size with room for it, is
   * written through these locals: stores through a byte pointer would have
   * the compiler reload the frame's fields after each. */
  unsigned char *dst = pp__buf_tail(frame);
  size_t room = frame->cap - frame->end;
  pp_bytes item = {NULL, 0};
  while (n < it->job.chunksize) {
    if (pp__atomic_get(&it->stop_pulling)) {
      *end = PP_ENOTREADY; /* the chunk stays open, as for a slow input */
      break;
    }
    if (p->has_pending) {
      item = p->pending;
      p->has_pending = 0;
    } else {
      pp_status got = it->next(it->state, &item);
      if (got != PP_OK) {
        *end = got;
        break;
      }
      if (!item.data && item.len) {
        p->null_len = item.len;
        *end = PP_EINVAL;
        break;
      }
    }
    if (packed && item.len == size && room >= size) {
      copy_item(dst, item.data, size);
      dst += size;
      room -= size;
      n++;
      continue;
    }
    pp__buf_commit(frame, (size_t)(dst - pp__buf_tail(frame)));
    if (packed && n == 0) {
      size = item.len;
    } else if (packed && item.len != size) {
      st = repack_as_calls(it, frame, p->id, &p->at,
                           pp__buf_head(frame) + p->size_at + 4, n, size);
      if (st != PP_OK) {
        p->pending = item; /* repacked again when tried again */
        p->has_pending = 1;
        break;
      }
      packed = 0;
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
    if (st != PP_OK) {
      /* Taken from the input but not stored: kept to be stored when the
       * chunk is tried again if memory was short, else it fails with the
       * chunk's other items (pp__iter_fill_locked()). */
      if (st == PP_ENOMEM) {
        p->pending = item;
        p->has_pending = 1;
      } else {
        n++;
      }
      break;
    }
    n++;
    dst = pp__buf_tail(frame);
    room = frame->cap - frame->end;
  }
  if (st == PP_OK)
    pp__buf_commit(frame, (size_t)(dst - pp__buf_tail(frame)));
  p->n = n;
  p->size = size;
  p->packed = packed;
  return st;
}

/* Ends the open chunk: its counts patched, its frame closed, the pull
 * left empty. */
static pp_status pull_end(pp_iter *it) {
  pp__iter_pull *p = &it->pull;
  p->open = 0;
  pp__patch_u32(&p->frame, p->count_at, (uint32_t)p->n);
  if (p->packed)
    pp__patch_u32(&p->frame, p->size_at, (uint32_t)p->size);
  size_t used = pp__buf_len(&p->frame);
  it->frame_hint =
      used < PP__ITER_FRAME_HINT_MAX ? used : PP__ITER_FRAME_HINT_MAX;
  return pp__frame_end(&p->frame, p->at);
}

/* Doubles the window, keeping every held chunk at its place. */
static pp_status grow(pp_iter *it) {
  size_t window = 2 * it->window, small_window = 2 * it->small_window;
  size_t nchunks = small_window / it->job.chunksize;
  pp__iter_chunk *chunks = calloc(nchunks, sizeof *chunks);
  if (!chunks)
    return PP_ENOMEM;
  for (size_t i = 0; i < it->nchunks; i++) {
    /* Unordered: the FIFO from its head, to the new one's start. */
    pp__iter_chunk *c =
        &it->chunks[it->ordered ? i : (it->head + i) % it->nchunks];
    if (c->filled)
      chunks[it->ordered ? c->number % nchunks : i] = *c;
  }
  free(it->chunks);
  it->chunks = chunks;
  it->nchunks = nchunks;
  it->head = 0;
  it->window = window;
  it->small_window = small_window;
  it->big_window *= 2;
  return PP_OK;
}

/* Stops the iterator with the error its input function returned. The
 * caller of pp_iter_next() reads that status once; a status which
 * pp_iter_next() keeps for itself (PP_ETIMEOUT: "try again") or a value
 * that is no status at all would be misread there, and the error lost, so
 * those are reported as PP_EINVAL, the message naming what came back. */
static void stop_on_input_error(pp_iter *it, pp_status end, size_t null_len) {
  char *msg;
  pp_status as = end;
  if (null_len) {
    msg = pp__format("the imap input function gave an item of %zu bytes "
                     "with NULL data (give data, or a length of 0); the "
                     "input was stopped",
                     null_len);
  } else if (end == PP_ETIMEOUT) {
    as = PP_EINVAL;
    msg = pp__format("the imap input function returned PP_ETIMEOUT, which "
                     "pp_iter_next() keeps for its own waits; the input was "
                     "stopped");
  } else if ((unsigned)end >= PP_STATUS_COUNT_) {
    as = PP_EINVAL;
    msg = pp__format("the imap input function returned %d, which is not a "
                     "pp_status; the input was stopped",
                     (int)end);
  } else {
    msg = pp__format("the imap input stopped with an error: %s",
                     pp_strerror(end));
  }
  pp__iter_stop_locked(it, as, msg);
  free(msg);
}

/* A chunk that could not begin for want of memory took nothing from the
 * input: 1 when it is to be tried again in a few ms (the scheduler is
 * told), 0 when memory has been short for too long. */
static int retry_begin(pp_pool *pool, pp_iter *it) {
  apr_time_t now = pp__clock_us();
  if (!it->begin_failing_since)
    it->begin_failing_since = now;
  if (now - it->begin_failing_since >= PP__INPUT_RETRY_US)
    return 0;
  pool->input_retry = 1;
  return 1;
}

int pp__iter_fill_locked(pp_pool *pool, pp_iter *it) {
  /* A few chunks per call, so that a long input never keeps the scheduler
   * from its workers' answers. */
  for (size_t pulls = 0;; pulls++) {
    if (it->input_done || it->abandoned || it->input_waiting ||
        pool->state == PP__TERMINATE || pool->broken != PP_OK)
      return 0;
    if (pulls == (size_t)pool->processes * PP__ITER_PULLS_PER_WORKER + 2)
      return 1;
    /* A chunk the input left open (PP_ENOTREADY) had its room when it
     * began. Once someone joins a closed pool, nobody may be left to read
     * before the work is done (Python's imap buffers without bound): the
     * window grows instead of stopping the input. */
    uint64_t id = 0; /* a new chunk's */
    if (!it->pull.open) {
      ring_lock(it);
      int full =
          room(it) < it->job.chunksize && (!pool->joining || grow(it) != PP_OK);
      ring_unlock(it);
      if (full)
        return 0;
      id = pp__job_chunk_id(&it->job, it->job.nchunks);
    }
    unsigned long kicks = it->input_kicks;
    pp_status end = PP_OK;
    it->pulling = 1;
    pp__mutex_unlock(pool->shared->lock);
    pp_status st = PP_OK;
    int begin_failed = 0; /* nothing was taken from the input */
    if (!it->pull.open) {
      st = pull_begin(it, id);
      begin_failed = st != PP_OK;
    }
    if (st == PP_OK)
      st = pull_items(it, &end);
    /* A chunk ends whole, or with the input (its last chunk); with no
     * item yet it stays open. */
    int whole = st == PP_OK && end != PP_ENOTREADY;
    if (whole)
      st = pull_end(it);
    size_t n = it->pull.n, null_len = it->pull.null_len;
    /* An item there was no memory to store waits in the open chunk, which
     * is tried again as one that cannot begin is. */
    int retry_item = st == PP_ENOMEM && it->pull.has_pending;
    /* Items were taken from the input and their chunk failed otherwise
     * (more than a frame holds): they fail, rather than vanish, and the
     * input stops (below). */
    int taken_lost = st != PP_OK && !begin_failed && !retry_item && n;
    pp__chunk *c = NULL;
    if (st == PP_OK && whole && n) {
      c = it->pull.chunk;
      it->pull.chunk = NULL;
    }
    pp__mutex_lock(pool->shared->lock);
    it->pulling = 0;
    pp__buf frame = it->pull.frame;
    uint32_t number = (uint32_t)it->pull.id; /* begun now or before */
    /* The chunk is the caller's now, unless its items are to fail. */
    if ((st != PP_OK || whole) && !taken_lost && !retry_item) {
      free(it->pull.chunk);
      memset(&it->pull, 0, sizeof it->pull);
    }
    ring_lock(it);
    it->big_frames = it->frame_hint >= PP__ITER_FRAME_HINT_MAX;
    size_t first = it->pulled;
    if (c) {
      it->pulled += n;
      it->held_bytes += frame.end;
    }
    ring_unlock(it);
    /* Only pp_iter_free() waits for this, and it marks the iterator
     * abandoned first: a broadcast for every chunk would wake the consumer
     * for nothing, straight into the lock this thread holds. */
    if (it->abandoned)
      pp__iter_wake_locked(it);
    if (retry_item && retry_begin(pool, it))
      return 0;
    if (retry_item || taken_lost) {
      it->pull.open = 1; /* as pull_end() found it */
      pp__iter_cut_short_locked(
          it, st,
          st == PP_ENOMEM
              ? "imap could not encode its input: no memory for an item "
                "of its chunk for a second; the chunk's items failed"
              : "imap could not encode its input: a chunk's items come to "
                "more than a frame holds (4 GiB; an item at most 4 GiB - "
                "8 bytes): give a smaller chunksize");
      return 0;
    }
    if (st != PP_OK) {
      pp__buf_free(&frame);
      if (begin_failed && st == PP_ENOMEM && retry_begin(pool, it))
        return 0;
      pp__iter_stop_locked(it, st,
                           it->begin_failing_since
                               ? "imap could not encode its input: no "
                                 "memory for a new chunk for a second"
                               : "imap could not encode its input");
      return 0;
    }
    it->begin_failing_since = 0;
    if (c) {
      pp__chunk *run = NULL, *run_end = NULL;
      pp__queue_run_add(&run, &run_end, c, &it->job);
      c->number = number;
      c->first = first;
      c->count = (uint32_t)n; /* chunksize: at most UINT32_MAX - 1 */
      c->frame = frame.data;
      /* ITEMS frames are cut to a payload a u32 says (submit.c) */
      c->payload_len = (uint32_t)(frame.end - PP__WIRE_HEADER_SIZE);
      it->job.nchunks++;
      it->job.chunks_left++;
      pp__queue_append_run_locked(pool, run, run_end);
    } else if (whole) {
      pp__buf_free(&frame);
    }
    if (end == PP_ENOTREADY) {
      /* Asked again once the input says it has more; at once when it
       * said so while next() ran. */
      if (it->input_kicks == kicks)
        it->input_waiting = 1;
    } else if (end == PP_EOF) {
      it->input_done = 1;
      pp__iter_wake_locked(it); /* a waiter past the last item must see it */
    } else if (end != PP_OK) {
      stop_on_input_error(it, end, null_len);
    }
  }
}

pp_status pp_iter_input_ready(pp_iter *it) {
  if (!it)
    return pp__api(__func__, pp__fail(PP_EINVAL, "iterator is NULL"));
  if (!pp__shared_owned(it->shared))
    return pp__api(__func__, pp__fail_not_owner());
  pp__shared *s = it->shared;
  pp__mutex_lock(s->lock);
  it->input_kicks++;
  if (it->input_waiting) {
    it->input_waiting = 0;
    if (it->pool)
      pp__backend_wake(it->pool->backend);
  }
  pp__mutex_unlock(s->lock);
  return PP_OK;
}

/* A copy of `len` bytes of message, NUL-terminated; NULL when out of
 * memory. */
static char *copy_message(const void *data, size_t len) {
  char *s = malloc(len + 1);
  if (s) {
    if (len)
      memcpy(s, data, len);
    s[len] = '\0';
  }
  return s;
}

void pp__iter_chunk_done(pp_iter *it, const pp__chunk *chunk,
                         const unsigned char *results, size_t results_len,
                         size_t stride, const pp__outcome *all,
                         pp__copier *copier) {
  pp__iter_chunk c = {.count = chunk->count,
                      .number = chunk->first / it->job.chunksize,
                      .stride = stride,
                      .status = PP_OK,
                      .filled = 1};
  static const char nomem[] = "no memory to hold the chunk's results";
  pp__outcome lost = {PP_ENOMEM, (const unsigned char *)nomem,
                      sizeof nomem - 1};
  if (results) {
    /* One byte more: the last value's NUL. */
    c.block =
        pp__value_block_new(results_len + 1, (apr_uint32_t)chunk->count + 1);
    if (c.block) {
      pp__copier_copy(copier, c.block + 1, results, results_len, 1);
      ((unsigned char *)(c.block + 1))[results_len] = '\0';
    } else
      all = &lost; /* every item says so: none is lost silently */
  }
  if (!c.block) {
    c.status = all->status;
    c.message = copy_message(all->data, all->len);
  }
  if (c.block)
    c.bytes = results_len;
  ring_lock(it);
  size_t index = it->ordered ? c.number % it->nchunks
                             : (it->head + it->queued++) % it->nchunks;
  it->chunks[index] = c;
  it->held_bytes += c.bytes;
  it->held_bytes -= pp__chunk_frame_len(chunk);
  ring_unlock(it);
  it->job.chunks_left--;
  pp__iter_wake_locked(it);
}

void pp__iter_wake_locked(pp_iter *it) {
  if (!it->waiters)
    return;
  /* Deferred only on the scheduler thread, which alone signals
   * pool->wakes; anywhere else (it->pool may be gone) at once. */
  if (it->pool && pp__shared_on_scheduler(it->shared))
    pp__waiters_defer(&it->waiters, &it->pool->wakes);
  else
    pp__waiters_wake(&it->waiters);
}

void pp__iter_cut_short_locked(pp_iter *it, pp_status why,
                               const char *message) {
  if (it->input_done)
    return;
  if (!message)
    message = pp_strerror(why);
  /* The chunk the input left open (it said PP_ENOTREADY part-way) holds
   * items taken from it: each is reported failed, as the pending chunks'
   * items are, rather than lost. pp__iter_fill_locked() runs on the
   * scheduler thread, as this does, so no input call is filling it now. */
  pp__iter_pull *p = &it->pull;
  /* An item waiting for memory to be stored was taken too. */
  size_t taken = p->n + (p->has_pending ? 1 : 0);
  if (p->open && taken && !it->pulling) {
    pp__chunk *c = p->chunk;
    p->chunk = NULL;
    c->job = &it->job;
    c->number = (uint32_t)p->id;
    c->first = it->pulled;
    c->count = (uint32_t)taken;
    c->mem = PP__CHUNK_OWN; /* its frame is not kept: nothing sends it */
    ring_lock(it);
    it->pulled += taken;
    /* As for a chunk queued: pp__iter_chunk_done() gives it back. */
    it->held_bytes += pp__chunk_frame_len(c);
    ring_unlock(it);
    it->job.nchunks++;
    it->job.chunks_left++;
    pp__outcome all = {why, (const unsigned char *)message, strlen(message)};
    pp__iter_chunk_done(it, c, NULL, 0, 0, &all, NULL);
    pp__chunk_free(c);
  }
  if (p->open) {
    pp__buf_free(&p->frame);
    free(p->chunk);
    memset(p, 0, sizeof *p);
  }
  /* The input's own end, reported once after its items, says that it was
   * cut short, not that one more item failed. */
  char *said = pp__format("the imap's input was cut short: %s", message);
  pp__iter_stop_locked(it, why, said ? said : message);
  free(said);
}

/* Lets go of what `c` holds for the `left` items not handed out. */
static void chunk_drop(pp__iter_chunk *c, size_t left) {
  if (c->block)
    pp__value_block_release_n(c->block, (apr_uint32_t)left + 1);
  free(c->message);
  memset(c, 0, sizeof *c);
}

static void iter_destroy(pp_iter *it) {
  if (it->chunks)
    for (size_t i = 0; i < it->nchunks; i++)
      if (it->chunks[i].filled)
        chunk_drop(&it->chunks[i], it->chunks[i].count);
  if (it->cur_left)
    chunk_drop(&it->cur, it->cur_left);
  pp__buf_free(&it->pull.frame); /* a chunk the input left open */
  free(it->pull.chunk);
  free(it->chunks);
  free(it->input_message);
  free(it);
}

void pp__iter_release_locked(pp_iter *it) {
  if (--it->refs)
    return;
  it->shared->refs--; /* the pool still holds the shared state */
  iter_destroy(it);
}

/* take_lock and ring_lock held, it->cur empty: makes the next answered
 * chunk to hand out the current one; 0 when there is none yet. */
static int take_chunk(pp_iter *it) {
  size_t index = it->ordered ? it->taken % it->nchunks : it->head;
  pp__iter_chunk *c = &it->chunks[index];
  if (!c->filled)
    return 0;
  it->cur = *c;
  c->filled = 0;
  if (!it->ordered) {
    it->head = (it->head + 1) % it->nchunks;
    it->queued--;
  }
  it->taken++;
  it->delivered += it->cur.count;
  it->held_bytes -= it->cur.bytes;
  it->cur_left = it->cur.count;
  if (it->cur.block) {
    it->cur_at = (unsigned char *)(it->cur.block + 1);
    it->cur_status = it->cur.stride ? PP_OK : it->cur_at[0];
    if (it->cur.count >= PP__ITER_OWNED_BLOCK_MIN && taker_owns(it))
      pp__value_block_own(it->cur.block);
  }
  return 1;
}

/* take_lock held, an item left in it->cur, which has a block: steps past
 * that item and gives its place and length, and its status. A value is
 * left where its worker wrote it and gets the NUL the contract promises
 * over the byte after it: in a VALUES body a byte of no meaning, in a
 * RESULTS body the next item's status, read before. */
static inline pp_status step(pp_iter *it, unsigned char **data, size_t *len) {
  pp_status status = (pp_status)it->cur_status;
  if (it->cur.stride) {
    *data = it->cur_at;
    *len = it->cur.stride - 1;
    it->cur_at += it->cur.stride;
  } else {
    *data = it->cur_at + 5;
    *len = pp__load_u32(it->cur_at + 1);
    it->cur_at = *data + *len;
    it->cur_status = *it->cur_at; /* past the last: the block's spare */
  }
  /* Written only when not there already: in a VALUES body the spare byte
   * is a NUL as a worker writes it, in a RESULTS body the next status is
   * PP_OK, a NUL too, and a store to a line of the block, which the
   * scheduler's core wrote, stalled the consumer's next locked
   * instruction until the line came over. */
  if ((*data)[*len])
    (*data)[*len] = '\0';
  it->cur_left--;
  return status;
}

/* take_lock held: hands out the next item of it->cur when it is a value
 * and not the chunk's last, the common case, inline; else 0. */
static inline int hand_out_value(pp_iter *it, pp_value *out) {
  if (it->cur_left < 2 || it->cur_status != PP_OK || !it->cur.block)
    return 0;
  unsigned char *data;
  size_t len;
  (void)step(it, &data, &len);
  out->data = data;
  out->len = len;
  out->status = PP_OK;
  out->error = NULL;
  out->owner = it->cur.block; /* the item's reference goes with it */
  return 1;
}

/* take_lock held, an item left in it->cur: hands it out, whatever it is.
 * Failures, rare, get messages of their own. */
static PP__NOINLINE void hand_out(pp_iter *it, pp_value *out) {
  if (hand_out_value(it, out))
    return;
  pp__iter_chunk *c = &it->cur;
  out->owner = NULL;
  out->data = NULL;
  out->len = 0;
  if (!c->block) { /* the chunk failed whole */
    it->cur_left--;
    pp__value_fail(out, c->status, c->message,
                   c->message ? strlen(c->message) : 0);
    if (!it->cur_left)
      chunk_drop(c, 0);
    return;
  }
  unsigned char *data;
  size_t len;
  out->status = step(it, &data, &len);
  if (out->status == PP_OK) {
    out->data = data;
    out->len = len;
    out->error = NULL;
    out->owner = c->block; /* the item's reference goes with it */
  } else {
    pp__value_fail(out, out->status, (const char *)data, len);
    pp__value_block_release(c->block);
  }
  if (!it->cur_left) { /* the iterator's own reference */
    pp__value_block_release(c->block);
    memset(c, 0, sizeof *c);
  }
}

/* take_lock held, it->cur empty: takes the next answered chunk, if there
 * is one, under ring_lock; `*made_room` when that makes room for another
 * chunk of input, which the scheduler must then be woken to pull (once per
 * chunk, not once per item). */
static int take_chunk_ring(pp_iter *it, int *made_room) {
  ring_lock(it);
  int was_full = room(it) < it->job.chunksize;
  int took = take_chunk(it);
  *made_room = took && was_full && room(it) >= it->job.chunksize;
  ring_unlock(it);
  return took;
}

/* The pool's lock held: the scheduler pulls more input, if there is any. */
static void wake_puller_locked(pp_iter *it) {
  if (it->pool && !it->input_done)
    pp__backend_wake(it->pool->backend);
}

/* take_lock and the pool's lock held, it->cur empty: takes the next
 * answered chunk, if there is one, waking the scheduler if need be. */
static int take_chunk_waking(pp_iter *it) {
  int made_room, took = take_chunk_ring(it, &made_room);
  if (made_room)
    wake_puller_locked(it);
  return took;
}

/* take_lock held, it->cur empty: take_chunk_waking() without the pool's
 * lock, which it takes only to wake the scheduler. The scheduler holds that
 * lock for most of its work: a consumer that waited for it there slept,
 * and had to be woken, for one chunk in two (perf, imap in batches). */
static int take_chunk_quick(pp_iter *it) {
  int made_room, took = take_chunk_ring(it, &made_room);
  if (made_room) {
    pp__mutex_lock(it->shared->lock);
    wake_puller_locked(it);
    pp__mutex_unlock(it->shared->lock);
  }
  return took;
}

/* take_lock held, it->cur empty: waits for the next answered chunk. PP_OK
 * when it is current, take_lock still held; otherwise take_lock is given
 * up and the status is what pp_iter_next() says: PP_EOF, PP_ETIMEOUT, or
 * once the status that stopped the input, with its message in `out`. */
static pp_status wait_chunk(pp_iter *it, double timeout, pp_value *out) {
  memset(out, 0, sizeof *out);
  /* A NaN timeout is neither a wait nor none: refused below, where the
   * call would wait, not where an item or the end is in already. */
  int nan = timeout != timeout;
  /* Lock order: take_lock, then the pool's lock. */
  apr_time_t deadline = nan ? 0 : pp__deadline(timeout);
  pp__shared *s = it->shared;
  pp__mutex_lock(s->lock);
  for (;;) {
    if (take_chunk_waking(it)) {
      pp__mutex_unlock(s->lock);
      return PP_OK;
    }
    /* Both counts as good as ring_lock: `delivered` changes under
     * take_lock, `pulled` under the pool's lock. */
    if (it->input_done && it->delivered == it->pulled) {
      pp_status st = PP_EOF;
      if (it->input_error != PP_OK && !it->error_reported) {
        it->error_reported = 1;
        st = it->input_error;
        pp__value_fail(out, st, it->input_message,
                       it->input_message ? strlen(it->input_message) : 0);
        pp__fail_text(st, out->error, strlen(out->error));
      }
      pp__mutex_unlock(s->lock);
      take_unlock(it);
      return st;
    }
    if (nan) {
      pp__mutex_unlock(s->lock);
      take_unlock(it);
      return pp__fail(PP_EINVAL, "timeout is NaN: give a number of seconds, "
                                 "or a negative value to wait for ever");
    }
    /* On the pool's scheduler thread nothing would ever come: that thread
     * is the one that brings answers in. */
    if (timeout != 0 && pp__shared_on_scheduler(s)) {
      pp__mutex_unlock(s->lock);
      take_unlock(it);
      return pp__fail_wait_would_hang(s);
    }
    /* Waits without take_lock, so that another thread's pp_iter_next()
     * keeps its own timeout; then takes the locks again in their order. */
    take_unlock(it);
    pp_status waited = pp__shared_wait(s, &it->waiters, deadline);
    pp__mutex_unlock(s->lock);
    if (waited == PP_ETIMEOUT)
      return pp__fail(PP_ETIMEOUT, "no item came within %g s; more may come",
                      timeout);
    take_lock(it);
    if (it->cur_left) /* another thread took a chunk meanwhile */
      return PP_OK;
    pp__mutex_lock(s->lock);
  }
}

/* Takes take_lock with an item left in it->cur, waiting for a chunk if
 * need be: PP_OK with the lock held, else wait_chunk()'s status without. */
static pp_status lock_with_items(pp_iter *it, double timeout, pp_value *out) {
  if (!pp__shared_owned(it->shared)) {
    memset(out, 0, sizeof *out);
    return pp__fail_not_owner();
  }
  take_lock(it);
  return it->cur_left || take_chunk_quick(it) ? PP_OK
                                              : wait_chunk(it, timeout, out);
}

/* pp_iter_next() but for its common case: apart, so that the common case
 * saves and restores none of the registers this needs. */
static pp_status next_value(pp_iter *it, double timeout, pp_value *out) {
  if (!it || !out) {
    if (out)
      memset(out, 0, sizeof *out);
    return pp__fail(PP_EINVAL, "%s is NULL", !it ? "iterator" : "out");
  }
  pp_status st = lock_with_items(it, timeout, out);
  if (st != PP_OK)
    return st;
  claim_owner(it);
  hand_out(it, out);
  take_unlock(it);
  return out->status == PP_OK
             ? PP_OK
             : pp__fail_text(out->status, out->error, strlen(out->error));
}

static PP__NOINLINE pp_status next_slow(pp_iter *it, double timeout,
                                        pp_value *out) {
  return pp__api("pp_iter_next", next_value(it, timeout, out));
}

static pp_status next_many(pp_iter *it, double timeout, pp_value *out,
                           size_t cap, size_t *n) {
  if (n)
    *n = 0;
  if (!it || !out || !cap || !n) {
    if (out && cap)
      memset(out, 0, sizeof *out);
    return pp__fail(PP_EINVAL, !it    ? "iterator is NULL"
                               : !out ? "out is NULL"
                               : !cap ? "cap is 0: give room for a value "
                                        "or more"
                                      : "n is NULL");
  }
  pp_status st = lock_with_items(it, timeout, out);
  if (st != PP_OK)
    return st;
  size_t k = 0;
  for (;;) {
    while (k < cap && hand_out_value(it, &out[k]))
      k++;
    if (k < cap && it->cur_left) { /* its chunk's last, or a failure */
      hand_out(it, &out[k++]);
      continue;
    }
    if (k == cap)
      break;
    /* Room left: the next chunk too, if it is in already. */
    if (!take_chunk_quick(it))
      break;
  }
  take_unlock(it);
  *n = k;
  return PP_OK;
}

pp_status pp_iter_next_many(pp_iter *it, double timeout, pp_value *out,
                            size_t cap, size_t *n) {
  return pp__api(__func__, next_many(it, timeout, out, cap, n));
}

/* The owner path: 1 when the calling thread is the owner and stays it, and
 * then *done as hand_out_value() says; else 0. */
static inline int owner_hand_out(pp_iter *it, pp_value *out, int *done) {
  void *owner = pp__atomic_ptr_get(&it->owner);
  if (!is_owner_token(owner) || owner != pp__thread_token())
    return 0;
  if (!pp__owner_enter(&it->owner, &it->owner_busy, owner))
    return 0; /* dropped meanwhile */
  *done = hand_out_value(it, out);
  pp__owner_leave(&it->owner_busy);
  return 1;
}

pp_status pp_iter_next(pp_iter *it, double timeout, pp_value *out) {
  /* The common case, a value not the last of its chunk, inline: by the
   * owner without take_lock, by another thread with it when it is free. */
  if (it && out) {
    int done = 0;
    if (owner_hand_out(it, out, &done)) {
      if (done)
        return PP_OK;
    } else if (pp__atomic_try_take(&it->taking)) {
      settle_owner(it);
      done = hand_out_value(it, out);
      take_unlock(it);
      if (done)
        return PP_OK;
    }
  }
  return next_slow(it, timeout, out);
}

void pp_iter_free(pp_iter *it) {
  if (!it || !pp__shared_owned(it->shared))
    return;
  /* Items taken but not handed out are dropped now. */
  take_lock(it);
  if (it->cur_left)
    chunk_drop(&it->cur, it->cur_left);
  it->cur_left = 0;
  take_unlock(it);
  pp__shared *s = it->shared;
  pp__atomic_set(&it->stop_pulling, 1);
  pp__mutex_lock(s->lock);
  it->abandoned = 1;
  /* The caller may free the input's state after this returns, so wait out a
   * next() the scheduler is running right now; unless this is that next(),
   * freeing its own iterator on the scheduler thread: the pull stops when
   * it returns, and the pool's reference keeps the iterator until then. */
  while (it->pulling && !pp__shared_on_scheduler(s))
    pp__shared_wait(s, &it->waiters, 0);
  if (!it->input_done)
    it->input_done = 1;
  /* Nobody will take the results: the chunks no worker holds yet are
   * dropped unsent (up to the whole window of pulled items, which would
   * otherwise run before any later work). */
  it->job.unwanted = 1;
  if (it->pool) {
    pp__queue_drop_job_locked(it->pool, &it->job);
    pp__backend_wake(it->pool->backend);
  }
  if (--it->refs) {
    pp__mutex_unlock(s->lock);
    return;
  }
  iter_destroy(it);
  pp__shared_unref_unlock(s);
}
