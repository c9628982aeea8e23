/* Suite "results": result objects (get, wait, ready, successful, value)
   and callbacks. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "internal.h"
#include "procpool.h"
#include "suites.h"
#include "tasks.h"
#include "util.h"

/* What the callbacks saw (whether pp_result_ready() is already 1 inside a
   callback is not specified: Python runs callbacks before waking get()).
   The fields are written by the callback before it
   increments its counter, and read by the test after it sees the counter. */
typedef struct cb_record {
  tu_counter calls;  /* callback runs */
  tu_counter errors; /* error_callback runs */
  int successful;    /* pp_result_successful()'s ok, or -1 */
  int64_t value;     /* apply: the value */
  size_t count;      /* pp_result_count() */
  int items_ok;      /* map: every item had the expected value */
  char msg[256];     /* error_callback: pp_result_error() */
} cb_record;

static void record_init(cb_record *rec) {
  memset(rec, 0, sizeof *rec);
  tu_counter_init(&rec->calls);
  tu_counter_init(&rec->errors);
  rec->successful = -1;
  rec->value = -1;
}

static void record_common(cb_record *rec, pp_result *result) {
  int ok = -1;
  if (pp_result_successful(result, &ok) == PP_OK) {
    rec->successful = ok;
  }
  rec->count = pp_result_count(result);
}

static void on_value(pp_result *result, void *user) {
  cb_record *rec = user;
  record_common(rec, result);
  (void)pp_result_i64(result, &rec->value);
  tu_counter_inc(&rec->calls);
}

/* map of "square" over 0..count-1 */
static void on_squares(pp_result *result, void *user) {
  cb_record *rec = user;
  record_common(rec, result);
  int ok = rec->count > 0;
  for (size_t i = 0; i < rec->count; i++) {
    int64_t v = -1;
    if (pp_result_item_i64(result, i, &v) != PP_OK || v != (int64_t)(i * i)) {
      ok = 0;
    }
  }
  rec->items_ok = ok;
  tu_counter_inc(&rec->calls);
}

static void on_error(pp_result *result, void *user) {
  cb_record *rec = user;
  record_common(rec, result);
  const char *e = pp_result_error(result);
  if (e != NULL) {
    snprintf(rec->msg, sizeof rec->msg, "%s", e);
  }
  tu_counter_inc(&rec->errors);
}

/* Waits (bounded) for @p target runs of the counter, then a little longer,
   and checks the count did not move past it. */
static void expect_runs(tu_counter *c, long target) {
  CU_ASSERT_EQUAL(tu_counter_wait(c, target, TU_WAIT), target);
  tu_sleep_ms(100);
  CU_ASSERT_EQUAL(tu_counter_get(c), target);
}

static void test_callback_once_with_value(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  cb_record rec;
  record_init(&rec);
  pp_callbacks cbs = {on_value, on_error, &rec, 0};
  int64_t x = 7;
  pp_bytes arg = tu_i64(&x);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &arg, 1, &cbs, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  expect_runs(&rec.calls, 1);
  CU_ASSERT_EQUAL(tu_counter_get(&rec.errors), 0);
  CU_ASSERT_EQUAL(rec.value, 49);
  CU_ASSERT_EQUAL(rec.successful, 1);
  CU_ASSERT_EQUAL(rec.count, 1);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* A result freed while pending still completes and its callback runs. */
static void test_callback_after_free(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  cb_record rec;
  record_init(&rec);
  pp_callbacks cbs = {on_value, on_error, &rec, 0};
  int64_t ms = 100;
  pp_bytes arg = tu_i64(&ms);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &arg, 1, &cbs, &r),
                        PP_OK);
  pp_result_free(r);
  expect_runs(&rec.calls, 1);
  CU_ASSERT_EQUAL(tu_counter_get(&rec.errors), 0);
  CU_ASSERT_EQUAL(rec.value, 100);
  pp_pool_destroy(pool);
}

static void test_map_callback_sees_whole_list(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 50 };
  int64_t vals[N];
  pp_bytes items[N];
  tu_i64_items(vals, items, N, 0);
  cb_record rec;
  record_init(&rec);
  pp_callbacks cbs = {on_squares, on_error, &rec, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "square", items, N, 3, &cbs, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  expect_runs(&rec.calls, 1);
  CU_ASSERT_EQUAL(tu_counter_get(&rec.errors), 0);
  CU_ASSERT_EQUAL(rec.count, N);
  CU_ASSERT_EQUAL(rec.items_ok, 1);
  CU_ASSERT_EQUAL(rec.successful, 1);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

static void test_starmap_callback(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 20 };
  int64_t vals[N][2];
  pp_bytes argv[N][2];
  pp_args items[N];
  for (size_t i = 0; i < N; i++) {
    /* i*i = (i*i - i) + i */
    vals[i][0] = (int64_t)(i * i) - (int64_t)i;
    vals[i][1] = (int64_t)i;
    argv[i][0] = tu_i64(&vals[i][0]);
    argv[i][1] = tu_i64(&vals[i][1]);
    items[i].argv = argv[i];
    items[i].argc = 2;
  }
  cb_record rec;
  record_init(&rec);
  pp_callbacks cbs = {on_squares, on_error, &rec, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_starmap_async(pool, "add", items, N, 0, &cbs, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  expect_runs(&rec.calls, 1);
  CU_ASSERT_EQUAL(tu_counter_get(&rec.errors), 0);
  CU_ASSERT_EQUAL(rec.count, N);
  CU_ASSERT_EQUAL(rec.items_ok, 1);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

static void test_error_callback_once_with_message(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  cb_record rec;
  record_init(&rec);
  pp_callbacks cbs = {on_value, on_error, &rec, 0};
  int64_t x = 31;
  pp_bytes arg = tu_i64(&x);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "fail", &arg, 1, &cbs, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ETASK);
  expect_runs(&rec.errors, 1);
  CU_ASSERT_EQUAL(tu_counter_get(&rec.calls), 0);
  CU_ASSERT(tu_contains(rec.msg, TASK_FAIL_PREFIX "31"));
  CU_ASSERT_EQUAL(rec.successful, 0);
  CU_ASSERT(tu_contains(pp_result_error(r), TASK_FAIL_PREFIX "31"));
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* Only an error callback given: it runs; only a callback given: nothing
   runs on failure, and nothing crashes. */
static void test_callbacks_partial(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t x = 2;
  pp_bytes arg = tu_i64(&x);

  cb_record rec;
  record_init(&rec);
  pp_callbacks only_value = {on_value, NULL, &rec, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "fail", &arg, 1, &only_value, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ETASK);
  tu_sleep_ms(100);
  CU_ASSERT_EQUAL(tu_counter_get(&rec.calls), 0);
  pp_result_free(r);

  cb_record rec2;
  record_init(&rec2);
  pp_callbacks only_error = {NULL, on_error, &rec2, 0};
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "fail", &arg, 1, &only_error, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ETASK);
  expect_runs(&rec2.errors, 1);
  CU_ASSERT(tu_contains(rec2.msg, TASK_FAIL_PREFIX "2"));
  pp_result_free(r);

  cb_record rec3;
  record_init(&rec3);
  pp_callbacks only_error2 = {NULL, on_error, &rec3, 0};
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "square", &arg, 1, &only_error2, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  tu_sleep_ms(100);
  CU_ASSERT_EQUAL(tu_counter_get(&rec3.errors), 0);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

static void test_map_failing_item_error_callback(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t vals[10];
  pp_bytes items[10];
  tu_i64_items(vals, items, 10, 0);
  cb_record rec;
  record_init(&rec);
  pp_callbacks cbs = {on_squares, on_error, &rec, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "fail_on", items, 10, 2, &cbs, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ETASK);
  expect_runs(&rec.errors, 1);
  CU_ASSERT_EQUAL(tu_counter_get(&rec.calls), 0);
  CU_ASSERT(tu_contains(rec.msg, TASK_FAIL_ON_MSG));
  CU_ASSERT_EQUAL(rec.successful, 0);
  CU_ASSERT_EQUAL(rec.count, 10);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

static void test_successful(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t ms = 10000, x = 4;
  pp_bytes slow = tu_i64(&ms), arg = tu_i64(&x);
  pp_result *pending = NULL, *good = NULL, *bad = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &pending), PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &arg, 1, NULL, &good),
                        PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "fail", &arg, 1, NULL, &bad),
                        PP_OK);

  /* not ready: an error code, never an abort (Python raises) */
  int ok = 42;
  CU_ASSERT_EQUAL(pp_result_successful(pending, &ok), PP_ENOTREADY);
  pp_bytes b;
  CU_ASSERT_EQUAL(pp_result_value(pending, &b), PP_ENOTREADY);
  CU_ASSERT_PTR_NULL(pp_result_error(pending));

  CU_ASSERT_EQUAL(pp_result_get(good, TU_WAIT), PP_OK);
  ok = -1;
  CU_ASSERT_EQUAL(pp_result_successful(good, &ok), PP_OK);
  CU_ASSERT_EQUAL(ok, 1);

  CU_ASSERT_EQUAL(pp_result_get(bad, TU_WAIT), PP_ETASK);
  ok = -1;
  CU_ASSERT_EQUAL(pp_result_successful(bad, &ok), PP_OK);
  CU_ASSERT_EQUAL(ok, 0);

  pp_pool_destroy(pool); /* terminates the 10 s task */
  ok = -1;
  CU_ASSERT_EQUAL(pp_result_successful(pending, &ok), PP_OK);
  CU_ASSERT_EQUAL(ok, 0);
  pp_result_free(pending);
  pp_result_free(good);
  pp_result_free(bad);
}

static void test_ready_and_wait(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t ms = 400;
  pp_bytes arg = tu_i64(&ms);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &arg, 1, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_ready(r), 0);
  CU_ASSERT_EQUAL(pp_result_wait(r, 0.0), PP_ETIMEOUT);
  CU_ASSERT_EQUAL(pp_result_get(r, 0.0), PP_ETIMEOUT);
  double t0 = tu_now();
  CU_ASSERT_EQUAL(pp_result_wait(r, 0.05), PP_ETIMEOUT);
  double dt = tu_now() - t0;
  CU_ASSERT(dt >= 0.04);
  CU_ASSERT(dt < 1.0);
  CU_ASSERT_EQUAL(pp_result_ready(r), 0);
  CU_ASSERT_EQUAL(pp_result_wait(r, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(pp_result_ready(r), 1);
  /* once ready, waits return at once */
  CU_ASSERT_EQUAL(pp_result_wait(r, 0.0), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, 0.0), PP_OK);
  int64_t v = 0;
  CU_ASSERT_EQUAL(pp_result_i64(r, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 400);
  pp_result_free(r);

  /* wait is PP_OK on a failed result too (ready, whatever the outcome) */
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "fail", &arg, 1, NULL, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_wait(r, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(pp_result_ready(r), 1);
  CU_ASSERT_EQUAL(pp_result_get(r, 0.0), PP_ETASK);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* A negative timeout waits until the result is ready. */
static void test_get_forever(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t ms = 50;
  pp_bytes arg = tu_i64(&ms);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &arg, 1, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, -1.0), PP_OK);
  CU_ASSERT_EQUAL(pp_result_ready(r), 1);
  pp_result_free(r);
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &arg, 1, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_wait(r, -1.0), PP_OK);
  CU_ASSERT_EQUAL(pp_result_ready(r), 1);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* Accessors of an apply result and of a map result. */
static void test_value_accessors(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_bytes arg = {"hello", 5};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "echo", &arg, 1, NULL, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  pp_bytes b = {NULL, 0};
  CU_ASSERT_EQUAL(pp_result_value(r, &b), PP_OK);
  CU_ASSERT_EQUAL_FATAL(b.len, 5);
  CU_ASSERT(memcmp(b.data, "hello", 5) == 0);
  int64_t v;
  CU_ASSERT_EQUAL(pp_result_i64(r, &v), PP_EINVAL); /* 5 bytes, not 8 */
  CU_ASSERT_PTR_NULL(pp_result_error(r));
  CU_ASSERT_EQUAL(pp_result_count(r), 1);
  pp_result_free(r);

  /* failed apply: value gives the failure status */
  int64_t x = 9;
  pp_bytes a9 = tu_i64(&x);
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "fail", &a9, 1, NULL, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ETASK);
  CU_ASSERT_EQUAL(pp_result_value(r, &b), PP_ETASK);
  CU_ASSERT_EQUAL(pp_result_i64(r, &v), PP_ETASK);
  CU_ASSERT(tu_contains(pp_result_error(r), TASK_FAIL_PREFIX "9"));
  pp_result_free(r);

  /* map result: pp_result_value is PP_ESTATE */
  int64_t vals[3];
  pp_bytes items[3];
  tu_i64_items(vals, items, 3, 1);
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "square", items, 3, 0, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(pp_result_value(r, &b), PP_ESTATE);
  CU_ASSERT_EQUAL(pp_result_count(r), 3);
  CU_ASSERT_EQUAL(pp_result_item(r, 2, &b), PP_OK);
  CU_ASSERT_EQUAL(b.len, 8);
  CU_ASSERT_EQUAL(pp_result_item_i64(r, 2, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 9);
  pp_result_free(r);

  /* not-ready map result: items are PP_ENOTREADY */
  int64_t ms[2] = {300, 300};
  pp_bytes slow[2] = {tu_i64(&ms[0]), tu_i64(&ms[1])};
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "sleep_ms", slow, 2, 1, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_item(r, 0, &b), PP_ENOTREADY);
  CU_ASSERT_EQUAL(pp_result_item_i64(r, 1, &v), PP_ENOTREADY);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(pp_result_item_i64(r, 1, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 300);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* Many results in flight at once, collected in reverse order. */
static void test_many_results(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 200 };
  int64_t vals[N];
  pp_bytes args[N];
  pp_result *rs[N] = {0};
  tu_i64_items(vals, args, N, 0);
  for (size_t i = 0; i < N; i++) {
    CU_ASSERT_EQUAL(pp_apply_async(pool, "square", &args[i], 1, NULL, &rs[i]),
                    PP_OK);
  }
  for (size_t i = N; i-- > 0;) {
    int64_t v = -1;
    if (rs[i] == NULL) {
      continue;
    }
    CU_ASSERT_EQUAL(pp_result_get(rs[i], TU_WAIT), PP_OK);
    CU_ASSERT_EQUAL(pp_result_i64(rs[i], &v), PP_OK);
    CU_ASSERT_EQUAL(v, (int64_t)(i * i));
    pp_result_free(rs[i]);
  }
  pp_pool_destroy(pool);
}

/* What a callback saw when it waited on its own pool, and on another. */
typedef struct waits_seen {
  pp_pool *pool;        /* the callback's */
  pp_result *pending;   /* a result of the same pool, not ready yet */
  pp_result *elsewhere; /* a result of another pool */
  pp_status own, own_poll, pending_wait, blocking_apply, elsewhere_get;
  int apply_says_why; /* the refused pp_apply's message names the thread */
  tu_counter calls;
} waits_seen;

static void on_value_wait(pp_result *result, void *user) {
  waits_seen *w = user;
  w->own = pp_result_get(result, 2.0);
  w->own_poll = pp_result_wait(result, 0);
  w->pending_wait = pp_result_wait(w->pending, 2.0);
  int64_t x = 3;
  pp_bytes arg = tu_i64(&x);
  pp_value v;
  w->blocking_apply = pp_apply(w->pool, "square", &arg, 1, &v);
  w->apply_says_why = tu_contains(v.error, "pool's own thread");
  pp_value_clear(&v);
  w->elsewhere_get = pp_result_get(w->elsewhere, TU_WAIT);
  tu_counter_inc(&w->calls);
}

/* A callback runs on its pool's scheduler thread, which completes the
 * pool's results: a wait there for one that is not ready (its own
 * included) would never end. It is refused at once with PP_ESTATE, as a
 * blocking call is; a poll answers as anywhere, and a result of another
 * pool may be waited for. */
static void test_callback_waits_refused(void) {
  /* The other pool is up and idle before this one forks its workers: a
   * fork while another thread allocates leaves the child stuck in an
   * allocator that is not fork-safe (AddressSanitizer's is not). */
  pp_pool *other = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(other);
  int64_t warm = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(other, "square", 2, &warm), PP_OK);
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  waits_seen w;
  memset(&w, 0, sizeof w);
  w.pool = pool;
  tu_counter_init(&w.calls);
  int64_t ms = 1500, x = 7;
  pp_bytes slow = tu_i64(&ms), arg = tu_i64(&x);
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &w.pending), PP_OK);
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(other, "square", &arg, 1, NULL, &w.elsewhere), PP_OK);
  pp_callbacks cb = {on_value_wait, NULL, &w, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &arg, 1, &cb, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(tu_counter_get(&w.calls), 1);
  CU_ASSERT_EQUAL(w.own, PP_ESTATE);
  CU_ASSERT_EQUAL(w.own_poll, PP_ETIMEOUT);
  CU_ASSERT_EQUAL(w.pending_wait, PP_ESTATE);
  CU_ASSERT_EQUAL(w.blocking_apply, PP_ESTATE);
  CU_ASSERT(w.apply_says_why);
  CU_ASSERT_EQUAL(w.elsewhere_get, PP_OK);
  /* Waited for from here, the same results complete as ever. */
  CU_ASSERT_EQUAL(pp_result_get(w.pending, TU_WAIT), PP_OK);
  pp_result_free(w.pending);
  pp_result_free(w.elsewhere);
  pp_result_free(r);
  pp_pool_destroy(other);
  pp_pool_destroy(pool);
}

/* Threads that each wait for results of their own, in pp_result_get(),
 * pp_result_wait() and pp_apply(), while the others' complete: each gets
 * its own values, and every wait is woken. A wake-up lost (say, when a
 * result completes as its waiter goes to sleep) leaves a timed wait asleep
 * until its time is up, when it finds the result ready and returns PP_OK
 * all the same: a wait that lasted nearly its whole time (LATE_S, where a
 * call takes 0-3 ms) counts as a hang, and a blocking apply would hang
 * for good. The jitter task takes 0-3 ms: some answers come while the
 * waiter still spins, some as it goes to sleep, some once it sleeps. */
enum { OWN_THREADS = 48, OWN_CALLS = 12 };
#define OWN_WAIT_S 5.0
#define LATE_S 4.5

typedef struct own_waiter {
  pp_pool *pool;
  int64_t base;
  int wrong;    /* values not the thread's own */
  int failed;   /* calls that did not succeed */
  int timedout; /* waits that ran out */
  int late;     /* waits that lasted LATE_S or more */
} own_waiter;

static void own_waiter_main(void *arg) {
  own_waiter *w = arg;
  for (int i = 0; i < OWN_CALLS; i++) {
    int64_t x = w->base + i, y = -1;
    pp_bytes a = tu_i64(&x);
    pp_status st;
    if (i % 3 == 2) {
      pp_value v;
      st = pp_apply(w->pool, "jitter", &a, 1, &v);
      if (st == PP_OK)
        st = pp_value_i64(&v, &y);
      pp_value_clear(&v);
    } else {
      pp_result *r = NULL;
      st = pp_apply_async(w->pool, "jitter", &a, 1, NULL, &r);
      if (st == PP_OK) {
        double t0 = tu_now();
        st = i % 3 == 0 ? pp_result_get(r, OWN_WAIT_S)
                        : pp_result_wait(r, OWN_WAIT_S);
        if (tu_now() - t0 >= LATE_S)
          w->late++;
        if (st == PP_OK)
          st = pp_result_i64(r, &y);
        pp_result_free(r);
      }
    }
    if (st == PP_ETIMEOUT)
      w->timedout++;
    else if (st != PP_OK)
      w->failed++;
    else if (y != x)
      w->wrong++;
  }
}

static void test_threads_wait_for_their_own(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  own_waiter w[OWN_THREADS];
  tu_thread *th[OWN_THREADS];
  for (int t = 0; t < OWN_THREADS; t++) {
    memset(&w[t], 0, sizeof w[t]);
    w[t].pool = pool;
    w[t].base = 1000 * (int64_t)t;
    th[t] = tu_thread_start(own_waiter_main, &w[t]);
    CU_ASSERT_PTR_NOT_NULL(th[t]);
  }
  int wrong = 0, failed = 0, timedout = 0, late = 0;
  for (int t = 0; t < OWN_THREADS; t++) {
    if (th[t])
      tu_thread_join(th[t]);
    wrong += w[t].wrong;
    failed += w[t].failed;
    timedout += w[t].timedout;
    late += w[t].late;
  }
  CU_ASSERT_EQUAL(wrong, 0);
  CU_ASSERT_EQUAL(failed, 0);
  CU_ASSERT_EQUAL(timedout, 0);
  CU_ASSERT_EQUAL(late, 0);
  pp_pool_destroy(pool);
}

/* A thread waiting for one result sleeps until that result is ready,
 * however many others complete meanwhile: a completion wakes only the
 * threads waiting for what it completed (one condition for all woke every
 * waiter of the pool for every completion). The result waited for is a
 * long call that the pool's terminate ends once all the others are in. */
typedef struct long_waiter {
  pp_result *r;
  pp_status st;
} long_waiter;

static void long_waiter_main(void *arg) {
  long_waiter *w = arg;
  w->st = pp_result_wait(w->r, 3 * TU_WAIT);
}

static void test_waiter_sleeps_through_others(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { OTHERS = 200 };
  int64_t ms = 60000;
  pp_bytes slow = tu_i64(&ms);
  long_waiter w = {NULL, PP_EINVAL};
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &w.r),
                        PP_OK);
  tu_thread *th = tu_thread_start(long_waiter_main, &w);
  CU_ASSERT_PTR_NOT_NULL_FATAL(th);
  cb_record rec;
  record_init(&rec);
  pp_callbacks cbs = {on_value, on_error, &rec, 0};
  for (int i = 0; i < OTHERS; i++) {
    int64_t x = i;
    pp_bytes a = tu_i64(&x);
    pp_result *other = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "jitter", &a, 1, &cbs, &other),
                          PP_OK);
    pp_result_free(other);
  }
  /* All of them completed, on the other worker, while the thread waited. */
  CU_ASSERT_EQUAL(tu_counter_wait(&rec.calls, OTHERS, TU_WAIT), OTHERS);
  CU_ASSERT_FALSE(pp_result_ready(w.r));
  CU_ASSERT_EQUAL(pp_pool_terminate(pool), PP_OK);
  tu_thread_join(th);
  CU_ASSERT_EQUAL(w.st, PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(w.r, 0), PP_ETERMINATED);
  /* Once, or a few times for spurious wake-ups; not once per completion. */
  unsigned long sleeps = pp__result_sleeps(w.r);
  CU_ASSERT(sleeps >= 1 && sleeps <= 5);
  if (sleeps > 5)
    fprintf(stderr, "\n  the waiter woke %lu times\n", sleeps);
  pp_result_free(w.r);
  pp_pool_destroy(pool);
}

/* Waits that run out leave nothing behind: threads that time out on a
 * result, then wait again for it and for a map's result, all see them
 * ready; and a wait with a timeout still times out while other results
 * complete around it. */
typedef struct timing_out {
  pp_result *slow, *map;
  pp_status first, second, map_get;
  int late; /* waits ended by their time, not woken (see LATE_S) */
} timing_out;

static void timing_out_main(void *arg) {
  timing_out *t = arg;
  t->first = pp_result_wait(t->slow, 0.05);
  double t0 = tu_now();
  t->map_get = pp_result_get(t->map, OWN_WAIT_S);
  double t1 = tu_now();
  t->second = pp_result_get(t->slow, OWN_WAIT_S);
  t->late = (t1 - t0 >= LATE_S) + (tu_now() - t1 >= LATE_S);
}

static void test_timeouts_among_waiters(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { T = 6, N = 40 };
  int64_t ms = 600;
  pp_bytes slow = tu_i64(&ms);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &r),
                        PP_OK);
  int64_t vals[N];
  pp_bytes items[N];
  tu_i64_items(vals, items, N, 0);
  pp_result *m = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "jitter", items, N, 1, NULL, &m),
                        PP_OK);
  timing_out t[T];
  tu_thread *th[T];
  for (int k = 0; k < T; k++) {
    t[k].slow = r;
    t[k].map = m;
    th[k] = tu_thread_start(timing_out_main, &t[k]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(th[k]);
  }
  /* This thread's own timed waits, on the slow result, run out too. */
  CU_ASSERT_EQUAL(pp_result_get(r, 0.1), PP_ETIMEOUT);
  CU_ASSERT_EQUAL(pp_result_wait(r, 0.01), PP_ETIMEOUT);
  for (int k = 0; k < T; k++) {
    tu_thread_join(th[k]);
    CU_ASSERT_EQUAL(t[k].first, PP_ETIMEOUT);
    CU_ASSERT_EQUAL(t[k].map_get, PP_OK);
    CU_ASSERT_EQUAL(t[k].second, PP_OK);
    CU_ASSERT_EQUAL(t[k].late, 0);
  }
  CU_ASSERT_EQUAL(pp_result_count(m), N);
  for (size_t i = 0; i < N; i++) {
    int64_t y = -1;
    CU_ASSERT_EQUAL(pp_result_item_i64(m, i, &y), PP_OK);
    CU_ASSERT_EQUAL(y, (int64_t)i);
  }
  pp_result_free(m);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

int pp_test_suite_results(void) {
  static const tu_test tests[] = {
      {"callback runs exactly once with the value",
       test_callback_once_with_value},
      {"callback of a freed pending result still runs",
       test_callback_after_free},
      {"map_async callback sees the whole list",
       test_map_callback_sees_whole_list},
      {"starmap_async callback sees the whole list", test_starmap_callback},
      {"error_callback runs once with the message",
       test_error_callback_once_with_message},
      {"only the matching callback runs", test_callbacks_partial},
      {"map with a failing item: error_callback once",
       test_map_failing_item_error_callback},
      {"successful: ENOTREADY, then 1 or 0", test_successful},
      {"ready and wait with timeouts", test_ready_and_wait},
      {"negative timeout waits until ready", test_get_forever},
      {"value, i64, error, count, item accessors", test_value_accessors},
      {"200 results in flight, collected in reverse", test_many_results},
      {"a callback's waits on its own pool are refused, not hung",
       test_callback_waits_refused},
      {"threads each waiting for their own results get them",
       test_threads_wait_for_their_own},
      {"a waiter sleeps through other results' completions",
       test_waiter_sleeps_through_others},
      {"timed waits among other waiters time out, then see the result",
       test_timeouts_among_waiters},
  };
  return tu_add_suite("results", tests, TU_NTESTS(tests));
}
