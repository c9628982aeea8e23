/* Suite "lifecycle": close, join, terminate, destroy, maxtasksperchild,
   initializer. */
#ifndef _WIN32
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#endif

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifndef _WIN32
#include <pthread.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <CUnit/CUnit.h>

#include "procpool.h"
#include "suites.h"
#include "tasks.h"
#include "util.h"

enum { MAX_PIDS = 64 };

static void on_done(pp_result *result, void *user) {
  (void)result;
  tu_counter_inc(user);
}

/* 1 when all @p n values are distinct. */
static int all_distinct(const int64_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    for (size_t j = i + 1; j < n; j++) {
      if (v[i] == v[j]) {
        return 0;
      }
    }
  }
  return 1;
}

static size_t count_distinct(const int64_t *v, size_t n) {
  size_t d = 0;
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < i && v[j] != v[i]) {
      j++;
    }
    d += j == i;
  }
  return d;
}

/* join() before close()/terminate() is an error, and harmless. */
static void test_join_before_close(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_ESTATE);
  CU_ASSERT(tu_contains(pp_last_error(),
                        "pp_pool_join: the pool is still running: call "
                        "pp_pool_close() or pp_pool_terminate() first"));
  int64_t v = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 4, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 16);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_ESTATE);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  pp_pool_destroy(pool);
}

/* Submits every kind of call and expects @p expect from each. */
static void expect_submit_refused(pp_pool *pool, pp_status expect) {
  int64_t x = 3, out64[1] = {-1};
  pp_bytes arg = tu_i64(&x);
  pp_args sargs = {&arg, 1};
  pp_records rec = {&x, 1, sizeof x, out64, sizeof out64[0], NULL, 0};
  tu_range range;
  tu_range_init(&range, 0, 3);

  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_apply_async(pool, "square", &arg, 1, NULL, &r), expect);
  pp_result_free(r);
  r = NULL;
  CU_ASSERT_EQUAL(pp_map_async(pool, "square", &arg, 1, 0, NULL, &r), expect);
  pp_result_free(r);
  r = NULL;
  CU_ASSERT_EQUAL(pp_map(pool, "square", &arg, 1, 0, &r), expect);
  pp_result_free(r);
  r = NULL;
  CU_ASSERT_EQUAL(pp_starmap_async(pool, "square", &sargs, 1, 0, NULL, &r),
                  expect);
  pp_result_free(r);
  r = NULL;
  CU_ASSERT_EQUAL(pp_starmap(pool, "square", &sargs, 1, 0, &r), expect);
  pp_result_free(r);
  r = NULL;
  CU_ASSERT_EQUAL(pp_map_records_async(pool, "square", &rec, 0, NULL, &r),
                  expect);
  pp_result_free(r);
  r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "square", &rec, 0, &r), expect);
  pp_result_free(r);
  CU_ASSERT_EQUAL(out64[0], -1);

  pp_iter *it = NULL;
  CU_ASSERT_EQUAL(pp_imap(pool, "square", tu_range_next, &range, 0, &it),
                  expect);
  pp_iter_free(it);
  it = NULL;
  CU_ASSERT_EQUAL(
      pp_imap_unordered(pool, "square", tu_range_next, &range, 0, &it), expect);
  pp_iter_free(it);

  /* A refused blocking call's value says why, like any failed value, and
   * so does pp_last_error(), naming the call. */
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "square", &arg, 1, &v), expect);
  CU_ASSERT_EQUAL(v.status, expect);
  CU_ASSERT(tu_contains(v.error, "pp_pool_close() or pp_pool_terminate() "
                                 "was called"));
  CU_ASSERT(tu_contains(pp_last_error(), "pp_apply: the pool is closed"));
  pp_value_clear(&v);
}

/* Submitting after close() is PP_ECLOSED, for every kind of call. */
static void test_submit_after_close(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  expect_submit_refused(pool, PP_ECLOSED);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK); /* again: PP_OK */
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  expect_submit_refused(pool, PP_ECLOSED);
  pp_pool_destroy(pool);
}

/* ... and after terminate(). */
static void test_submit_after_terminate(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(pp_pool_terminate(pool), PP_OK);
  expect_submit_refused(pool, PP_ECLOSED);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK); /* already terminated: OK */
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  pp_pool_destroy(pool);
}

/* close(); join() waits for all outstanding work; every result is
   delivered and every callback has run. */
static void test_close_join_delivers(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 20 };
  int64_t ms = 50;
  pp_bytes arg = tu_i64(&ms);
  pp_result *rs[N] = {0};
  tu_counter done;
  tu_counter_init(&done);
  pp_callbacks cbs = {on_done, on_done, &done, 0};
  for (size_t i = 0; i < N; i++) {
    CU_ASSERT_EQUAL(pp_apply_async(pool, "sleep_ms", &arg, 1, &cbs, &rs[i]),
                    PP_OK);
  }
  /* a map in flight too */
  int64_t vals[10];
  pp_bytes items[10];
  tu_i64_items(vals, items, 10, 0);
  pp_result *m = NULL;
  CU_ASSERT_EQUAL(pp_map_async(pool, "square", items, 10, 1, NULL, &m), PP_OK);

  double t0 = tu_now();
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  /* 20 x 50 ms on 2 workers: join must have waited for them */
  CU_ASSERT(tu_now() - t0 >= 0.4);
  for (size_t i = 0; i < N; i++) {
    if (rs[i] == NULL) {
      continue;
    }
    CU_ASSERT_EQUAL(pp_result_ready(rs[i]), 1);
    CU_ASSERT_EQUAL(pp_result_get(rs[i], 0.0), PP_OK);
    int64_t v = -1;
    CU_ASSERT_EQUAL(pp_result_i64(rs[i], &v), PP_OK);
    CU_ASSERT_EQUAL(v, 50);
    pp_result_free(rs[i]);
  }
  CU_ASSERT_EQUAL(tu_counter_wait(&done, N, TU_WAIT), N);
  if (m != NULL) {
    CU_ASSERT_EQUAL(pp_result_ready(m), 1);
    CU_ASSERT_EQUAL(pp_result_get(m, 0.0), PP_OK);
    pp_result_free(m);
  }
  pp_pool_destroy(pool);
}

/* close(); join() with an imap of `n` items in chunks of `chunksize` whose
   results nobody has read yet: as in Python, join() returns once the work
   is done, and the results can be read afterwards. The join runs on a
   helper thread so that a deadlock fails the test instead of hanging it. */
static void close_join_unread_imap(int64_t n, size_t chunksize) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  tu_range range;
  tu_range_init(&range, 0, n);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap(pool, "square", tu_range_next, &range, chunksize, &it), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  tu_joiner *j = tu_joiner_start(pool);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  int joined = tu_joiner_wait(j, TU_WAIT);
  CU_ASSERT(joined); /* fails if join() waits for the caller to read */
  if (joined) {
    CU_ASSERT_EQUAL(tu_joiner_status(j), PP_OK);
  }
  /* every result is delivered, in order (this also unblocks a stuck join) */
  size_t bad = 0;
  for (int64_t i = 0; i < n; i++) {
    pp_value v = {0};
    int64_t x = -1;
    if (pp_iter_next(it, TU_WAIT, &v) != PP_OK ||
        pp_value_i64(&v, &x) != PP_OK || x != i * i) {
      bad++;
    }
    pp_value_clear(&v);
  }
  CU_ASSERT_EQUAL(bad, 0);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_EOF);
  pp_value_clear(&v);
  CU_ASSERT(tu_joiner_wait(j, TU_WAIT));
  tu_joiner_free(j);
  pp_iter_free(it);
  pp_pool_destroy(pool);
}

/* 50 items, within the window of work an imap holds... */
static void test_close_join_unread_imap(void) { close_join_unread_imap(50, 1); }

/* ...and many times that window (2,000 chunks where it holds a few dozen):
   it grows while the join waits, instead of stopping the input. */
static void test_close_join_unread_imap_past_window(void) {
  close_join_unread_imap(20000, 10);
}

/* The same unordered, chunks of 3, some read first: join() waits for the
   whole input, the iterator holding every chunk as it arrives; each item
   comes out once. */
static void test_close_join_unread_imap_unordered(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 200, FIRST = 10 };
  tu_range range;
  tu_range_init(&range, 0, N);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap_unordered(pool, "square", tu_range_next, &range, 3, &it), PP_OK);
  static char seen[N];
  memset(seen, 0, sizeof seen);
  tu_joiner *j = NULL;
  size_t bad = 0;
  for (int64_t i = 0; i < N && !bad; i++) {
    if (i == FIRST) {
      CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
      j = tu_joiner_start(pool);
      CU_ASSERT_PTR_NOT_NULL_FATAL(j);
      CU_ASSERT(tu_joiner_wait(j, 5.0)); /* not waiting for the reader */
    }
    pp_value v = {0};
    int64_t x = -1, root = 0;
    if (pp_iter_next(it, TU_WAIT, &v) != PP_OK ||
        pp_value_i64(&v, &x) != PP_OK) {
      bad++;
    } else {
      while (root * root < x)
        root++;
      if (root >= N || root * root != x || seen[root]++)
        bad++;
    }
    pp_value_clear(&v);
  }
  CU_ASSERT_EQUAL(bad, 0);
  pp_value v = {0};
  if (!bad)
    CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_EOF);
  pp_value_clear(&v);
  pp_iter_free(it); /* lets a join stuck on lost items end */
  CU_ASSERT(tu_joiner_wait(j, TU_WAIT));
  tu_joiner_free(j);
  pp_pool_destroy(pool);
}

/* close(); join() after freeing a half-read iterator: its remaining work
   is still run (pp_iter_free) and join() returns. */
static void test_close_join_freed_imap(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  tu_range range;
  tu_range_init(&range, 0, 50);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap_unordered(pool, "square", tu_range_next, &range, 1, &it), PP_OK);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_OK);
  pp_value_clear(&v);
  pp_iter_free(it);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  tu_joiner *j = tu_joiner_start(pool);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  int joined = tu_joiner_wait(j, TU_WAIT);
  CU_ASSERT(joined);
  if (joined) {
    CU_ASSERT_EQUAL(tu_joiner_status(j), PP_OK);
    tu_joiner_free(j);
  } else {
    /* join is stuck: terminate ends it, then the thread can be joined */
    CU_ASSERT_EQUAL(pp_pool_terminate(pool), PP_OK);
    CU_ASSERT(tu_joiner_wait(j, TU_WAIT));
    tu_joiner_free(j);
  }
  pp_pool_destroy(pool);
}

/* terminate() with long tasks in flight: returns at once, join within 1 s,
   every pending result PP_ETERMINATED, every worker gone. */
static void test_terminate_in_flight(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 4 };
  int64_t ms = 10000;
  pp_bytes arg = tu_i64(&ms);
  pp_result *rs[N] = {0};
  tu_counter errors;
  tu_counter_init(&errors);
  pp_callbacks cbs = {NULL, on_done, &errors, 0};
  for (size_t i = 0; i < N; i++) {
    CU_ASSERT_EQUAL_FATAL(
        pp_apply_async(pool, "sleep_ms", &arg, 1, &cbs, &rs[i]), PP_OK);
  }
  tu_sleep_ms(200); /* let the workers start on them */
  long pids[MAX_PIDS];
  size_t npids = 0;
  CU_ASSERT_EQUAL(pp_pool_worker_pids(pool, pids, MAX_PIDS, &npids), PP_OK);
  CU_ASSERT_EQUAL(npids, 2);

  double t0 = tu_now();
  CU_ASSERT_EQUAL(pp_pool_terminate(pool), PP_OK);
  CU_ASSERT(tu_now() - t0 < 1.0);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  double elapsed = tu_now() - t0;
  CU_ASSERT(elapsed < 1.5);

  for (size_t i = 0; i < N; i++) {
    CU_ASSERT_EQUAL(pp_result_get(rs[i], 2.0), PP_ETERMINATED);
    int ok = -1;
    CU_ASSERT_EQUAL(pp_result_successful(rs[i], &ok), PP_OK);
    CU_ASSERT_EQUAL(ok, 0);
    pp_result_free(rs[i]);
  }
  CU_ASSERT_EQUAL(tu_counter_wait(&errors, N, TU_WAIT), N);
  /* No survivor, no zombie: a reaped process no longer exists. Workers may
     be children of an internal launcher, so they are not waited for here. */
  for (size_t i = 0; i < npids && i < MAX_PIDS; i++) {
    CU_ASSERT(pids[i] > 0);
    CU_ASSERT(pids[i] != tu_self_pid());
    CU_ASSERT(tu_pid_gone(pids[i]));
  }
  pp_pool_destroy(pool);
}

/* A call blocked on another thread: which call, and what it returned. */
enum { BLOCKED_APPLY, BLOCKED_NEXT, BLOCKED_GET, BLOCKED_JOIN, BLOCKED_KINDS };
typedef struct blocked_call {
  int kind;
  pp_pool *pool;
  pp_iter *it;
  pp_result *r;
  pp_status st;
  tu_counter *done;
} blocked_call;

static void block_in_call(void *arg) {
  blocked_call *b = arg;
  int64_t ms = 20000;
  pp_bytes slow = tu_i64(&ms);
  pp_value v = {0};
  if (b->kind == BLOCKED_APPLY)
    b->st = pp_apply(b->pool, "sleep_ms", &slow, 1, &v);
  else if (b->kind == BLOCKED_NEXT)
    b->st = pp_iter_next(b->it, -1, &v);
  else if (b->kind == BLOCKED_GET)
    b->st = pp_result_get(b->r, -1);
  else
    b->st = pp_pool_join(b->pool);
  pp_value_clear(&v);
  tu_counter_inc(b->done);
}

/* Threads wait without a time limit in every way a pool has (a blocking
 * apply, an iterator's next item, a result, a join after close) on tasks
 * of 20 s; another thread terminates the pool: each wait returns at once,
 * the calls with PP_ETERMINATED and the join with PP_OK. */
static void test_terminate_wakes_other_threads(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t ms = 20000;
  pp_bytes slow = tu_i64(&ms);
  tu_range range;
  tu_range_init(&range, 20000, 20004);
  tu_counter done;
  tu_counter_init(&done);
  blocked_call calls[BLOCKED_KINDS];
  memset(calls, 0, sizeof calls);
  for (int k = 0; k < BLOCKED_KINDS; k++) {
    calls[k].kind = k;
    calls[k].pool = pool;
    calls[k].st = PP_STATUS_COUNT_;
    calls[k].done = &done;
  }
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "sleep_ms", tu_range_next, &range, 1,
                                &calls[BLOCKED_NEXT].it),
                        PP_OK);
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &calls[BLOCKED_GET].r),
      PP_OK);
  tu_thread *th[BLOCKED_KINDS] = {NULL};
  for (int k = 0; k < BLOCKED_JOIN; k++)
    th[k] = tu_thread_start(block_in_call, &calls[k]);
  tu_sleep_ms(300); /* the apply submitted, every thread asleep */
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  th[BLOCKED_JOIN] = tu_thread_start(block_in_call, &calls[BLOCKED_JOIN]);
  tu_sleep_ms(200);
  CU_ASSERT_EQUAL(tu_counter_get(&done), 0); /* all still waiting */
  CU_ASSERT_EQUAL(pp_pool_terminate(pool), PP_OK);
  CU_ASSERT_EQUAL(tu_counter_wait(&done, BLOCKED_KINDS, TU_WAIT),
                  BLOCKED_KINDS);
  for (int k = 0; k < BLOCKED_KINDS; k++) {
    CU_ASSERT_PTR_NOT_NULL(th[k]);
    if (th[k])
      tu_thread_join(th[k]);
  }
  CU_ASSERT_EQUAL(calls[BLOCKED_APPLY].st, PP_ETERMINATED);
  CU_ASSERT_EQUAL(calls[BLOCKED_NEXT].st, PP_ETERMINATED);
  CU_ASSERT_EQUAL(calls[BLOCKED_GET].st, PP_ETERMINATED);
  CU_ASSERT_EQUAL(calls[BLOCKED_JOIN].st, PP_OK);
  pp_iter_free(calls[BLOCKED_NEXT].it);
  pp_result_free(calls[BLOCKED_GET].r);
  pp_pool_destroy(pool);
}

/* Several threads join a closed pool while its last call runs: the pool's
 * end wakes every one of them (they wait on the pool, not on a result). */
static void test_several_joiners_woken(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { JOINERS = 4 };
  int64_t ms = 300;
  pp_bytes slow = tu_i64(&ms);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  tu_joiner *j[JOINERS];
  for (int k = 0; k < JOINERS; k++) {
    j[k] = tu_joiner_start(pool);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j[k]);
  }
  for (int k = 0; k < JOINERS; k++) {
    CU_ASSERT(tu_joiner_wait(j[k], TU_WAIT));
    CU_ASSERT_EQUAL(tu_joiner_status(j[k]), PP_OK);
  }
  CU_ASSERT_TRUE(pp_result_ready(r)); /* join waited for the call */
  for (int k = 0; k < JOINERS; k++)
    tu_joiner_free(j[k]);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* Terminate also ends maps and iterators in flight. */
static void test_terminate_map_and_imap(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t ms[6] = {10000, 10000, 10000, 10000, 10000, 10000};
  pp_bytes items[6];
  for (size_t i = 0; i < 6; i++) {
    items[i] = tu_i64(&ms[i]);
  }
  pp_result *m = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "sleep_ms", items, 6, 1, NULL, &m),
                        PP_OK);
  tu_range range;
  tu_range_init(&range, 10000, 10003); /* three 10 s sleeps */
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap(pool, "sleep_ms", tu_range_next, &range, 1, &it), PP_OK);
  tu_sleep_ms(100);
  double t0 = tu_now();
  CU_ASSERT_EQUAL(pp_pool_terminate(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  CU_ASSERT(tu_now() - t0 < 1.5);
  CU_ASSERT_EQUAL(pp_result_get(m, 2.0), PP_ETERMINATED);
  pp_result_free(m);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_iter_next(it, 2.0, &v), PP_ETERMINATED);
  pp_value_clear(&v);
  pp_iter_free(it);
  pp_pool_destroy(pool);
}

/* destroy() with pending work returns, and the results complete with
   PP_ETERMINATED and stay valid until pp_result_free(). */
static void test_destroy_pending(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 4 };
  int64_t ms = 10000;
  pp_bytes arg = tu_i64(&ms);
  pp_result *rs[N] = {0};
  tu_counter errors;
  tu_counter_init(&errors);
  pp_callbacks cbs = {NULL, on_done, &errors, 0};
  for (size_t i = 0; i < N; i++) {
    CU_ASSERT_EQUAL_FATAL(
        pp_apply_async(pool, "sleep_ms", &arg, 1, &cbs, &rs[i]), PP_OK);
  }
  tu_sleep_ms(100);
  double t0 = tu_now();
  pp_pool_destroy(pool);
  CU_ASSERT(tu_now() - t0 < 1.5);
  /* the pool (and its scheduler thread) is gone: callbacks have run */
  CU_ASSERT_EQUAL(tu_counter_get(&errors), N);
  for (size_t i = 0; i < N; i++) {
    CU_ASSERT_EQUAL(pp_result_ready(rs[i]), 1);
    CU_ASSERT_EQUAL(pp_result_get(rs[i], 0.0), PP_ETERMINATED);
    CU_ASSERT_EQUAL(pp_result_wait(rs[i], 0.0), PP_OK);
    pp_bytes b;
    CU_ASSERT_EQUAL(pp_result_value(rs[i], &b), PP_ETERMINATED);
    pp_result_free(rs[i]);
  }
}

/* destroy() of an idle pool, and of a closed and joined one. */
static void test_destroy_idle(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_pool_destroy(pool);
  pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  pp_pool_destroy(pool);
}

/* maxtasksperchild = 1: each task in a different pid; the pool keeps
   working. */
static void test_maxtasksperchild_1(void) {
  pp_options opts;
  pp_options_init(&opts);
  opts.processes = 2;
  opts.maxtasksperchild = 1;
  pp_pool *pool = tu_pool_opts(&opts);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 10 };
  int64_t pids[N];
  for (size_t i = 0; i < N; i++) {
    pp_result *r = NULL;
    pids[i] = -(int64_t)i - 1;
    CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "getpid", NULL, 0, NULL, &r),
                          PP_OK);
    CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
    CU_ASSERT_EQUAL(pp_result_i64(r, &pids[i]), PP_OK);
    CU_ASSERT(pids[i] > 0 && pids[i] != tu_self_pid());
    pp_result_free(r);
  }
  CU_ASSERT(all_distinct(pids, N));

  /* concurrently too */
  pp_result *rs[N] = {0};
  for (size_t i = 0; i < N; i++) {
    CU_ASSERT_EQUAL(pp_apply_async(pool, "getpid", NULL, 0, NULL, &rs[i]),
                    PP_OK);
  }
  for (size_t i = 0; i < N; i++) {
    pids[i] = -(int64_t)i - 1;
    CU_ASSERT_EQUAL(pp_result_get(rs[i], TU_WAIT), PP_OK);
    CU_ASSERT_EQUAL(pp_result_i64(rs[i], &pids[i]), PP_OK);
    pp_result_free(rs[i]);
  }
  CU_ASSERT(all_distinct(pids, N));

  int64_t v = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 8, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 64);
  /* (retiring workers may briefly be listed too, so no count check) */
  CU_ASSERT_EQUAL(pp_pool_processes(pool), 2);
  pp_pool_destroy(pool);
}

/* maxtasksperchild counts chunks: a map still completes, in order. */
static void test_maxtasksperchild_map(void) {
  pp_options opts;
  pp_options_init(&opts);
  opts.processes = 2;
  opts.maxtasksperchild = 2;
  pp_pool *pool = tu_pool_opts(&opts);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 40 };
  int64_t vals[N];
  pp_bytes items[N];
  tu_i64_items(vals, items, N, 0);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "square", items, N, 3, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp_result_count(r), N);
  size_t bad = 0;
  for (size_t i = 0; i < N; i++) {
    int64_t v = -1;
    if (pp_result_item_i64(r, i, &v) != PP_OK || v != (int64_t)(i * i)) {
      bad++;
    }
  }
  CU_ASSERT_EQUAL(bad, 0);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* The initializer runs before the first task, with initargs. */
static void test_initializer_initargs(void) {
  int64_t fortytwo = 42;
  pp_bytes initarg = tu_i64(&fortytwo);
  pp_options opts;
  pp_options_init(&opts);
  opts.processes = 2;
  opts.initializer = "init_store";
  opts.initargs = &initarg;
  opts.ninitargs = 1;
  pp_pool *pool = tu_pool_opts(&opts);
  fortytwo = 0; /* initargs are copied */
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 10 };
  pp_result *rs[N] = {0};
  for (size_t i = 0; i < N; i++) {
    CU_ASSERT_EQUAL(pp_apply_async(pool, "get_stored", NULL, 0, NULL, &rs[i]),
                    PP_OK);
  }
  for (size_t i = 0; i < N; i++) {
    int64_t v = -1;
    CU_ASSERT_EQUAL(pp_result_get(rs[i], TU_WAIT), PP_OK);
    CU_ASSERT_EQUAL(pp_result_i64(rs[i], &v), PP_OK);
    CU_ASSERT_EQUAL(v, 42);
    pp_result_free(rs[i]);
  }
  pp_pool_destroy(pool);
}

/* The initializer runs exactly once per worker, also across recycling. */
static void test_initializer_once_per_worker(void) {
  const unsigned long maxtasks[] = {0, 2};
  for (size_t k = 0; k < 2; k++) {
    pp_options opts;
    pp_options_init(&opts);
    opts.processes = 2;
    opts.initializer = "init_count";
    opts.maxtasksperchild = maxtasks[k];
    pp_pool *pool = tu_pool_opts(&opts);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    enum { N = 12 };
    pp_result *rs[N] = {0};
    int64_t pids[N];
    for (size_t i = 0; i < N; i++) {
      CU_ASSERT_EQUAL(pp_apply_async(pool, "init_probe", NULL, 0, NULL, &rs[i]),
                      PP_OK);
    }
    size_t bad = 0;
    for (size_t i = 0; i < N; i++) {
      pp_bytes b = {NULL, 0};
      int64_t probe[2] = {-1, -(int64_t)i - 1};
      CU_ASSERT_EQUAL(pp_result_get(rs[i], TU_WAIT), PP_OK);
      if (pp_result_value(rs[i], &b) == PP_OK && b.len == sizeof probe) {
        memcpy(probe, b.data, sizeof probe);
      }
      if (probe[0] != 1) {
        bad++;
      }
      pids[i] = probe[1];
      pp_result_free(rs[i]);
    }
    CU_ASSERT_EQUAL(bad, 0);
    if (maxtasks[k] == 2) {
      /* 12 tasks, at most 2 per worker: at least 6 workers */
      CU_ASSERT(count_distinct(pids, N) >= 6);
    } else {
      CU_ASSERT(count_distinct(pids, N) <= 2);
    }
    /* and "get_init_count" agrees */
    int64_t v = -1;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "get_init_count", 0, &v), PP_OK);
    CU_ASSERT_EQUAL(v, 1);
    pp_pool_destroy(pool);
  }
}

/* A failing initializer is reported (PP_EINITIALIZER with its message),
   not retried forever. */
static void test_initializer_fails(void) {
  int64_t x = 99;
  pp_bytes initarg = tu_i64(&x);
  pp_options opts;
  pp_options_init(&opts);
  opts.processes = 2;
  opts.initializer = "fail";
  opts.initargs = &initarg;
  opts.ninitargs = 1;
  pp_pool *pool = NULL;
  pp_status st = pp_pool_create(&pool, &opts);
  CU_ASSERT_EQUAL_FATAL(st, PP_OK);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &initarg, 1, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_EINITIALIZER);
  CU_ASSERT(tu_contains(pp_result_error(r), TASK_FAIL_PREFIX "99"));
  pp_result_free(r);
  /* later calls fail the same way */
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "square", &initarg, 1, &v), PP_EINITIALIZER);
  CU_ASSERT(tu_contains(v.error, TASK_FAIL_PREFIX "99"));
  pp_value_clear(&v);
  double t0 = tu_now();
  pp_pool_destroy(pool);
  CU_ASSERT(tu_now() - t0 < 5.0);
}

#ifndef _WIN32
typedef struct made_on_thread {
  pp_pool *pool;
  long pids[2];
  size_t npids;
} made_on_thread;

static void *make_pool_thread(void *arg) {
  made_on_thread *m = arg;
  m->pool = tu_pool(2);
  double t0 = tu_now();
  while (m->pool && m->npids < 2 && tu_now() - t0 < TU_WAIT) {
    pp_pool_worker_pids(m->pool, m->pids, 2, &m->npids);
    tu_sleep_ms(5);
  }
  return NULL;
}

/* The thread that created a pool ends; the pool and its workers go on
 * (Linux's parent-death signal follows the creating thread, not the
 * process: no worker may depend on it). */
static void test_creating_thread_ends(void) {
  made_on_thread m;
  memset(&m, 0, sizeof m);
  pthread_t t;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, make_pool_thread, &m), 0);
  pthread_join(t, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m.pool);
  CU_ASSERT_EQUAL(m.npids, 2);
  tu_sleep_ms(100);
  for (int64_t i = 0; i < 8; i++) {
    int64_t y = 0;
    CU_ASSERT_EQUAL(tu_apply_i64(m.pool, "square", i, &y), PP_OK);
    CU_ASSERT_EQUAL(y, i * i);
  }
  long now[4];
  size_t n = 0;
  CU_ASSERT_EQUAL(pp_pool_worker_pids(m.pool, now, 4, &n), PP_OK);
  CU_ASSERT_EQUAL(n, 2);
  for (size_t i = 0; i < n && i < 2; i++)
    CU_ASSERT(now[i] == m.pids[0] || now[i] == m.pids[1]);
  CU_ASSERT_EQUAL(pp_pool_close(m.pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(m.pool), PP_OK);
  pp_pool_destroy(m.pool);
}
#endif

#ifndef _WIN32
/* In a fork of the pool's owner (the program's own fork(), or a fork
 * worker holding a copy of a pointer to it): the bits of the checks below
 * that failed, 0 when all held. Each call must come back at once: the copy
 * has none of the pool's threads, so a wait would never end (an alarm
 * ends the child if one does). */
static int use_copy(pp_pool *pool, pp_result *pending, pp_result *done,
                    pp_iter *it) {
  alarm(20);
  int bad = 0;
  int64_t x = 3;
  pp_bytes arg = tu_i64(&x);
  pp_value v = {0};
  if (pp_apply(pool, "square", &arg, 1, &v) != PP_ESTATE ||
      v.status != PP_ESTATE || !tu_contains(v.error, "made by fork()"))
    bad |= 1 << 0;
  pp_value_clear(&v);
  pp_result *r = NULL;
  if (pp_apply_async(pool, "square", &arg, 1, NULL, &r) != PP_ESTATE || r ||
      !tu_contains(pp_last_error(), "pp_apply_async: this process is a "
                                    "copy of the pool's owner, made by "
                                    "fork()"))
    bad |= 1 << 1;
  if (pp_map(pool, "square", &arg, 1, 0, &r) != PP_ESTATE || r)
    bad |= 1 << 2;
  tu_range range;
  tu_range_init(&range, 0, 4);
  pp_iter *other = NULL;
  if (pp_imap(pool, "square", tu_range_next, &range, 1, &other) != PP_ESTATE ||
      other)
    bad |= 1 << 3;
  if (pp_result_get(pending, 5.0) != PP_ESTATE ||
      pp_result_cancel(pending) != PP_ESTATE)
    bad |= 1 << 4;
  int64_t y = 0;
  if (pp_result_get(done, 5.0) != PP_OK || pp_result_i64(done, &y) != PP_OK ||
      y != 49)
    bad |= 1 << 5; /* what had come before the fork reads as it was */
  if (pp_iter_next(it, 5.0, &v) != PP_ESTATE)
    bad |= 1 << 6;
  pp_value_clear(&v);
  long pids[4];
  size_t n = 0;
  if (pp_pool_worker_pids(pool, pids, 4, &n) != PP_ESTATE ||
      pp_pool_close(pool) != PP_ESTATE ||
      pp_pool_terminate(pool) != PP_ESTATE || pp_pool_join(pool) != PP_ESTATE)
    bad |= 1 << 7;
  /* Frees leave the owner's things alone. */
  pp_iter_free(it);
  pp_result_free(pending);
  pp_result_free(done);
  pp_pool_destroy(pool);
  return bad;
}

/* The program forks after making a pool, and the child uses the copy of
 * it: every call fails at once with PP_ESTATE (each would wait forever:
 * the child has none of the pool's threads); the owner's pool, results
 * and iterators go on untouched. */
static void test_fork_of_owner(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t ms = 800, seven = 7;
  pp_bytes slow = tu_i64(&ms), arg = tu_i64(&seven);
  pp_result *pending = NULL, *done = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &pending), PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &arg, 1, NULL, &done),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(done, TU_WAIT), PP_OK);
  tu_range range;
  tu_range_init(&range, 600, 604);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap(pool, "sleep_ms", tu_range_next, &range, 1, &it), PP_OK);
  fflush(NULL);
  pid_t child = fork();
  if (child == 0)
    _exit(use_copy(pool, pending, done, it));
  CU_ASSERT_FATAL(child > 0);
  int status = 0;
  CU_ASSERT_EQUAL(waitpid(child, &status, 0), child);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fprintf(stderr, "\n  the fork: %s %d\n",
            WIFEXITED(status) ? "failed checks" : "killed by signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* The owner's pool is untouched. */
  CU_ASSERT_EQUAL(pp_result_get(pending, TU_WAIT), PP_OK);
  pp_value v = {0};
  int64_t got = 0, want = 600;
  while (pp_iter_next(it, TU_WAIT, &v) == PP_OK) {
    int64_t y = -1;
    CU_ASSERT_EQUAL(pp_value_i64(&v, &y), PP_OK);
    CU_ASSERT_EQUAL(y, want);
    want++;
    got++;
    pp_value_clear(&v);
  }
  CU_ASSERT_EQUAL(got, 4);
  pp_iter_free(it);
  pp_result_free(pending);
  pp_result_free(done);
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 9, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 81);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  pp_pool_destroy(pool);
}
#endif

int pp_test_suite_lifecycle(void) {
  static const tu_test tests[] = {
      {"join before close/terminate is PP_ESTATE", test_join_before_close},
      {"submitting after close is PP_ECLOSED", test_submit_after_close},
      {"submitting after terminate is PP_ECLOSED", test_submit_after_terminate},
      {"close; join waits for all work; every result delivered",
       test_close_join_delivers},
      {"close; join with an unread imap: join returns, results readable",
       test_close_join_unread_imap},
      {"close; join with an unread imap many windows long: the window grows",
       test_close_join_unread_imap_past_window},
      {"close; join with an unread imap_unordered: each item once",
       test_close_join_unread_imap_unordered},
      {"close; join after freeing a half-read imap",
       test_close_join_freed_imap},
      {"terminate with long tasks: fast, PP_ETERMINATED, workers gone",
       test_terminate_in_flight},
      {"terminate ends maps and iterators in flight",
       test_terminate_map_and_imap},
      {"terminate wakes every thread waiting on the pool, each at once",
       test_terminate_wakes_other_threads},
      {"several threads joining a closed pool are all woken",
       test_several_joiners_woken},
      {"destroy with pending work: results PP_ETERMINATED, still valid",
       test_destroy_pending},
      {"destroy of an idle or joined pool", test_destroy_idle},
      {"maxtasksperchild=1: every task in a new pid", test_maxtasksperchild_1},
      {"maxtasksperchild=2: a map completes in order",
       test_maxtasksperchild_map},
      {"initializer runs with initargs before the first task",
       test_initializer_initargs},
      {"initializer runs exactly once per worker (with recycling)",
       test_initializer_once_per_worker},
      {"a failing initializer gives PP_EINITIALIZER and its message",
       test_initializer_fails},
#ifndef _WIN32
      {"the thread that created the pool ends: its workers go on",
       test_creating_thread_ends},
      {"a fork of the owner: calls on its copy of the pool fail at once, "
       "the owner's goes on",
       test_fork_of_owner},
#endif
  };
  return tu_add_suite("lifecycle", tests, TU_NTESTS(tests));
}
