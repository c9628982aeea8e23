/* The lock and condition variable a pool shares with its results and
 * iterators. They are reference-counted so that a result can outlive its
 * pool: after pp_pool_destroy() the caller may still read and free it. */
#include "internal.h"

pp_status pp__shared_create(pp__shared **out) {
  apr_pool_t *mem;
  if (apr_pool_create(&mem, NULL) != APR_SUCCESS)
    return PP_ENOMEM;
  pp__shared *s = apr_pcalloc(mem, sizeof *s);
  s->mem = mem;
  pp_status st = pp__mutex_create(&s->lock, mem);
  if (st == PP_OK) {
    st = pp__cond_create(&s->changed, mem);
    if (st != PP_OK)
      pp__mutex_destroy(s->lock);
  }
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
  pp__cond_destroy(s->changed);
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

pp_status pp__shared_wait(pp__shared *s, apr_time_t deadline) {
  if (!deadline) {
    pp__cond_wait(s->changed, s->lock);
    return PP_OK;
  }
  apr_time_t left = deadline - pp__clock_us();
  if (left <= 0)
    return PP_ETIMEOUT;
  pp__cond_timedwait(s->changed, s->lock, left);
  return PP_OK;
}
