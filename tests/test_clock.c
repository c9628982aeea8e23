/* Suite "clock": the library keeps its deadlines on a steady clock, not on
   the wall clock, which jumps when it is set or corrected (or after a
   suspend). CTest runs this suite under faketime twice (CMakeLists.txt):
   with the wall clock ten times as fast as the steady one, where a
   deadline kept on the wall clock comes ten times too early, and ten times
   as slow, where a sleep until a time of the wall clock (what a clock set
   back does to one) lasts ten times too long. POSIX only. */
#ifndef _WIN32
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include <CUnit/CUnit.h>

#include "procpool.h"
#include "suites.h"
#include "util.h"

static double steady_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Spins (does not sleep: faketime shortens sleeps too) for its argument in
 * milliseconds of the steady clock. */
static pp_status steady_spin(pp_call *call) {
  int64_t ms = 0;
  if (pp_call_arg_i64(call, 0, &ms) != PP_OK)
    return pp_call_fail(call, "steady_spin: needs an int64");
  double until = steady_now() + (double)ms / 1000.0;
  while (steady_now() < until) {
  }
  return pp_call_return_i64(call, ms);
}

pp_status clock_tasks_register(void) {
  return pp_register("steady_spin", steady_spin);
}

/* The premise: the wall clock runs far faster or far slower than the
 * steady one. Run without faketime, this fails, and the checks below prove
 * nothing. (Measured by spinning: faketime stretches sleeps as well.) */
static void test_wall_clock_runs_apart(void) {
  double s0 = steady_now(), w0 = wall_now();
  while (steady_now() - s0 < 0.1) {
  }
  double speed = (wall_now() - w0) / (steady_now() - s0);
  if (speed < 5.0 && speed > 0.2)
    fprintf(stderr,
            "\n  the wall clock runs %.2f times the steady one: run this "
            "suite under faketime -f '+0 x10' (or x0.1) with "
            "FAKETIME_DONT_FAKE_MONOTONIC=1\n",
            speed);
  CU_ASSERT(speed >= 5.0 || speed <= 0.2);
}

/* A task well within its time limit (1 s of 3), while other calls keep
 * the pool's thread busy looking at deadlines: on the wall clock the limit
 * would have passed after 0.3 s. */
static void test_time_limit_is_steady(void) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.task_time_limit = 3.0;
  pp_pool *pool = tu_pool_opts(&o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t ms = 1000, one = 1;
  pp_bytes arg = tu_i64(&ms), quick = tu_i64(&one);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "steady_spin", &arg, 1, NULL, &r),
                        PP_OK);
  double t0 = steady_now();
  while (!pp_result_ready(r) && steady_now() - t0 < TU_WAIT) {
    pp_value v = {0};
    CU_ASSERT_EQUAL(pp_apply(pool, "steady_spin", &quick, 1, &v), PP_OK);
    pp_value_clear(&v);
  }
  pp_status st = pp_result_get(r, TU_WAIT);
  if (st != PP_OK)
    fprintf(stderr, "\n  %s\n", pp_result_error(r) ? pp_result_error(r) : "");
  CU_ASSERT_EQUAL(st, PP_OK);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* Timed waits on a result and on an iterator last what they say on the
 * steady clock: 0.5 s, where on the wall clock they would last 0.05 s (a
 * fast wall clock) or 5 s (a slow one). */
static void test_timed_waits_are_steady(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t ms = 2000;
  pp_bytes arg = tu_i64(&ms);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "steady_spin", &arg, 1, NULL, &r),
                        PP_OK);
  double t0 = steady_now();
  CU_ASSERT_EQUAL(pp_result_get(r, 0.5), PP_ETIMEOUT);
  double waited = steady_now() - t0;
  if (waited < 0.45 || waited > 2.5)
    fprintf(stderr, "\n  pp_result_get(0.5) ended after %.3f s\n", waited);
  CU_ASSERT(waited >= 0.45 && waited <= 2.5);

  tu_range range;
  tu_range_init(&range, 2000, 2001);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap(pool, "steady_spin", tu_range_next, &range, 1, &it), PP_OK);
  pp_value v = {0};
  t0 = steady_now();
  CU_ASSERT_EQUAL(pp_iter_next(it, 0.5, &v), PP_ETIMEOUT);
  waited = steady_now() - t0;
  if (waited < 0.45 || waited > 2.5)
    fprintf(stderr, "\n  pp_iter_next(0.5) ended after %.3f s\n", waited);
  CU_ASSERT(waited >= 0.45 && waited <= 2.5);
  pp_value_clear(&v);
  pp_iter_free(it);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

int pp_test_suite_clock(void) {
  static const tu_test tests[] = {
      {"the wall clock runs ten times as fast or as slow here (faketime)",
       test_wall_clock_runs_apart},
      {"a task's time limit is kept on the steady clock",
       test_time_limit_is_steady},
      {"timed waits last their time on the steady clock",
       test_timed_waits_are_steady},
  };
  return tu_add_suite("clock", tests, TU_NTESTS(tests));
}
#else
typedef int pp_test_clock_is_posix_only;
#endif
