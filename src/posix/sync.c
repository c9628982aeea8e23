/* The library's mutex and condition variable: pthreads' own, so that a
 * timed wait sleeps on the steady clock. APR's timed wait here sleeps
 * until a time of the wall clock, and a clock set back while it sleeps
 * (by hand, by NTP) lengthens the sleep by as much: a pp_result_get() of
 * a few seconds could last hours. */
#define _GNU_SOURCE 1 /* glibc: pthread_cond_clockwait */
#define _DARWIN_C_SOURCE 1

#include "posix.h"

#include <apr_pools.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

/* How the steady-clock sleep is asked for: glibc 2.30 has a wait that
 * names its clock; macOS a relative wait; elsewhere the condition
 * variable is made on CLOCK_MONOTONIC. */
#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define PP__WAIT_CLOCKWAIT 1
#elif defined(__APPLE__)
#define PP__WAIT_RELATIVE 1
#endif

struct pp__mutex {
  pthread_mutex_t m;
};

struct pp__cond {
  pthread_cond_t c;
};

pp_status pp__mutex_create(pp__mutex **out, apr_pool_t *mem) {
  pp__mutex *m = apr_palloc(mem, sizeof *m);
  if (!m)
    return PP_ENOMEM;
  if (pthread_mutex_init(&m->m, NULL) != 0) {
    return PP_ESYSTEM;
  }
  *out = m;
  return PP_OK;
}

void pp__mutex_destroy(pp__mutex *m) {
  if (m)
    pthread_mutex_destroy(&m->m);
}

void pp__mutex_lock(pp__mutex *m) { pthread_mutex_lock(&m->m); }

void pp__mutex_unlock(pp__mutex *m) { pthread_mutex_unlock(&m->m); }

pp_status pp__cond_create(pp__cond **out, apr_pool_t *mem) {
  pp__cond *c = apr_palloc(mem, sizeof *c);
  if (!c)
    return PP_ENOMEM;
  int rc;
#if defined(PP__WAIT_CLOCKWAIT) || defined(PP__WAIT_RELATIVE)
  rc = pthread_cond_init(&c->c, NULL);
#else
  pthread_condattr_t attr;
  rc = pthread_condattr_init(&attr);
  if (rc == 0) {
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
      rc = pthread_cond_init(&c->c, &attr);
    pthread_condattr_destroy(&attr);
  }
#endif
  if (rc != 0) {
    return rc == ENOMEM ? PP_ENOMEM : PP_ESYSTEM;
  }
  *out = c;
  return PP_OK;
}

void pp__cond_destroy(pp__cond *c) {
  if (c)
    pthread_cond_destroy(&c->c);
}

void pp__cond_wait(pp__cond *c, pp__mutex *m) {
  pthread_cond_wait(&c->c, &m->m);
}

void pp__cond_timedwait(pp__cond *c, pp__mutex *m, apr_time_t usec) {
  if (usec < 0)
    usec = 0;
#ifdef PP__WAIT_RELATIVE
  struct timespec rel = {(time_t)(usec / 1000000),
                         (long)(usec % 1000000) * 1000};
  pthread_cond_timedwait_relative_np(&c->c, &m->m, &rel);
#else
  struct timespec at;
  clock_gettime(CLOCK_MONOTONIC, &at);
  at.tv_sec += (time_t)(usec / 1000000);
  at.tv_nsec += (long)(usec % 1000000) * 1000;
  if (at.tv_nsec >= 1000000000L) {
    at.tv_sec++;
    at.tv_nsec -= 1000000000L;
  }
#ifdef PP__WAIT_CLOCKWAIT
  pthread_cond_clockwait(&c->c, &m->m, CLOCK_MONOTONIC, &at);
#else
  pthread_cond_timedwait(&c->c, &m->m, &at);
#endif
#endif
}

void pp__cond_signal(pp__cond *c) { pthread_cond_signal(&c->c); }

void pp__cond_broadcast(pp__cond *c) { pthread_cond_broadcast(&c->c); }
