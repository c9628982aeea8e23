/* The library's mutex and condition variable: a slim reader/writer lock,
 * taken only exclusively, and a condition variable. Their timed wait is
 * relative, so it does not depend on the wall clock. */
#include "win32.h"

#include <apr_pools.h>

struct pp__mutex {
  SRWLOCK lock;
};

struct pp__cond {
  CONDITION_VARIABLE cv;
};

pp_status pp__mutex_create(pp__mutex **out, apr_pool_t *mem) {
  pp__mutex *m = apr_palloc(mem, sizeof *m);
  if (!m)
    return PP_ENOMEM;
  InitializeSRWLock(&m->lock);
  *out = m;
  return PP_OK;
}

/* Nothing to release: the memory goes with its APR pool. */
void pp__mutex_destroy(pp__mutex *m) { (void)m; }

void pp__mutex_lock(pp__mutex *m) { AcquireSRWLockExclusive(&m->lock); }

void pp__mutex_unlock(pp__mutex *m) { ReleaseSRWLockExclusive(&m->lock); }

pp_status pp__cond_create(pp__cond **out, apr_pool_t *mem) {
  pp__cond *c = apr_palloc(mem, sizeof *c);
  if (!c)
    return PP_ENOMEM;
  InitializeConditionVariable(&c->cv);
  *out = c;
  return PP_OK;
}

void pp__cond_destroy(pp__cond *c) { (void)c; }

void pp__cond_wait(pp__cond *c, pp__mutex *m) {
  SleepConditionVariableSRW(&c->cv, &m->lock, INFINITE, 0);
}

void pp__cond_timedwait(pp__cond *c, pp__mutex *m, apr_time_t usec) {
  /* Rounded up to whole milliseconds: not woken before its time. */
  apr_time_t ms = usec > 0 ? (usec + 999) / 1000 : 0;
  if (ms >= (apr_time_t)INFINITE)
    ms = (apr_time_t)INFINITE - 1;
  SleepConditionVariableSRW(&c->cv, &m->lock, (DWORD)ms, 0);
}

void pp__cond_signal(pp__cond *c) { WakeConditionVariable(&c->cv); }

void pp__cond_broadcast(pp__cond *c) { WakeAllConditionVariable(&c->cv); }
