/* The lock a pool shares with its results and iterators, and the waiters
 * that sleep under it. They are reference-counted so that a result can
 * outlive its pool: after pp_pool_destroy() the caller may still read and
 * free it. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

pp_status pp__shared_create(pp__shared **out) {
  apr_pool_t *mem;
  if (apr_pool_create(&mem, NULL) != APR_SUCCESS)
    return PP_ENOMEM;
  pp__shared *s = apr_pcalloc(mem, sizeof *s);
  s->mem = mem;
  pp_status st = pp__mutex_create(&s->lock, mem);
  if (st != PP_OK) {
    apr_pool_destroy(mem);
    return st;
  }
  s->refs = 1;
  s->generation = pp__process_generation();
  *out = s;
  return PP_OK;
}

void pp__shared_unref_unlock(pp__shared *s) {
  if (--s->refs > 0) {
    pp__mutex_unlock(s->lock);
    return;
  }
  pp__mutex_unlock(s->lock);
  /* Nobody waits: a waiter holds a reference to what it waits for. */
  for (pp__waiter *w = s->all_waiters; w; w = w->all)
    pp__cond_destroy(w->cond);
  pp__mutex_destroy(s->lock);
  apr_pool_destroy(s->mem);
}

apr_time_t pp__deadline(double timeout) {
  if (timeout < 0)
    return 0;
  /* Beyond ~30 years a timeout is "forever" and must not overflow. */
  if (timeout > 1e9)
    return 0;
  return pp__clock_us() + (apr_time_t)(timeout * 1e6);
}

int pp__shared_on_scheduler(const pp__shared *s) {
  return pp__atomic_ptr_get(&s->scheduler_token) == pp__thread_token();
}

int pp__shared_owned(const pp__shared *s) {
  return s->generation == pp__process_generation();
}

/* A waiter record: a spare one, else a new one for good. NULL when none
 * can be had. */
static pp__waiter *waiter_get(pp__shared *s) {
  pp__waiter *w = s->spare_waiters;
  if (w) {
    s->spare_waiters = w->next;
    return w;
  }
  w = apr_pcalloc(s->mem, sizeof *w);
  if (!w || pp__cond_create(&w->cond, s->mem) != PP_OK)
    return NULL; /* its bytes go with s->mem */
  w->all = s->all_waiters;
  s->all_waiters = w;
  return w;
}

static void waiter_unlink(pp__waiter *w) {
  *w->link = w->next;
  if (w->next)
    w->next->link = w->link;
  w->link = NULL;
}

/* How long a wait sleeps when no waiter record can be had (no memory):
 * it looks again this often instead of waiting to be woken. */
#define PP__WAIT_NAP_US 1000

pp_status pp__shared_wait(pp__shared *s, pp__waiter **waiters,
                          apr_time_t deadline) {
  apr_time_t left = 0;
  if (deadline) {
    left = deadline - pp__clock_us();
    if (left <= 0)
      return PP_ETIMEOUT;
  }
  pp__waiter *w = waiter_get(s);
  if (!w) {
    pp__mutex_unlock(s->lock);
    apr_sleep(deadline && left < PP__WAIT_NAP_US ? left : PP__WAIT_NAP_US);
    pp__mutex_lock(s->lock);
    return PP_OK;
  }
  w->next = *waiters;
  if (w->next)
    w->next->link = &w->next;
  *waiters = w;
  w->link = waiters;
  if (deadline)
    pp__cond_timedwait(w->cond, s->lock, left);
  else
    pp__cond_wait(w->cond, s->lock);
  /* Woken, a waker took it off the list; timed out or woken spuriously, it
   * is still there. */
  if (w->link)
    waiter_unlink(w);
  w->next = s->spare_waiters;
  s->spare_waiters = w;
  return PP_OK;
}

void pp__waiters_wake(pp__waiter **waiters) {
  while (*waiters) {
    pp__waiter *w = *waiters;
    waiter_unlink(w);
    pp__cond_signal(w->cond);
  }
}

void pp__waiters_defer(pp__waiter **waiters, pp__wakes *wakes) {
  while (*waiters) {
    pp__waiter *w = *waiters;
    if (wakes->n == wakes->cap) {
      size_t cap = wakes->cap ? 2 * wakes->cap : 16;
      pp__cond **conds = realloc(wakes->conds, cap * sizeof *conds);
      if (!conds) {
        pp__waiters_wake(waiters);
        return;
      }
      wakes->conds = conds;
      wakes->cap = cap;
    }
    waiter_unlink(w);
    /* The record may be reused before the signal, by another wait of the
     * same shared state: that wait then wakes once for nothing. The
     * condition itself lives as long as the state, which the scheduler's
     * pool keeps. */
    wakes->conds[wakes->n++] = w->cond;
  }
}

void pp__wakes_signal(pp__wakes *wakes) {
  for (size_t i = 0; i < wakes->n; i++)
    pp__cond_signal(wakes->conds[i]);
  wakes->n = 0;
}

void pp__wakes_free(pp__wakes *wakes) {
  free(wakes->conds);
  memset(wakes, 0, sizeof *wakes);
}
