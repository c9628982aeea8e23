/* Suite "core": the seed example of issue 2, translated, plus apply. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "procpool.h"
#include "suites.h"
#include "tasks.h"
#include "util.h"

/* Starts the workers and checks they answer, so that the 1-second bounds
   below measure the call, not process start-up (slow under valgrind or the
   spawn context). */
static void warm_up(pp_pool *pool) {
  int64_t v = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 3, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 9);
}

/* apply_async(f, 10).get(timeout=1) == 100 */
static void test_seed_apply_async(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  warm_up(pool);

  int64_t ten = 10, v = 0;
  pp_bytes arg = tu_i64(&ten);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &arg, 1, NULL, &r),
                        PP_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(pp_result_get(r, 1.0), PP_OK);
  CU_ASSERT_EQUAL(pp_result_i64(r, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 100);
  CU_ASSERT_EQUAL(pp_result_count(r), 1);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* map(f, range(10)) == [0, 1, 4, ..., 81] */
static void test_seed_map(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t vals[10];
  pp_bytes items[10];
  tu_i64_items(vals, items, 10, 0);

  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map(pool, "square", items, 10, 0, &r), PP_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(pp_result_ready(r), 1);
  CU_ASSERT_EQUAL_FATAL(pp_result_count(r), 10);
  for (size_t i = 0; i < 10; i++) {
    int64_t v = -1;
    CU_ASSERT_EQUAL(pp_result_item_i64(r, i, &v), PP_OK);
    CU_ASSERT_EQUAL(v, (int64_t)(i * i));
  }
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* it = imap(f, range(10)); next(it) == 0; next(it) == 1;
   it.next(timeout=1) == 4 */
static void test_seed_imap(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  tu_range range;
  tu_range_init(&range, 0, 10);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "square", tu_range_next, &range, 0, &it),
                        PP_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(it);

  pp_value v = {0};
  int64_t x = -1;
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_OK);
  CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 0);
  pp_value_clear(&v);

  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_OK);
  CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 1);
  pp_value_clear(&v);

  CU_ASSERT_EQUAL(pp_iter_next(it, 1.0, &v), PP_OK);
  CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 4);
  pp_value_clear(&v);

  pp_iter_free(it); /* the remaining items are still run */
  pp_pool_destroy(pool);
}

/* get(timeout=1) on a task that sleeps 10 s: a timeout error within about
   1 s, and the pool is still usable. */
static void test_seed_get_timeout(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  warm_up(pool);

  int64_t ms = 10000;
  pp_bytes arg = tu_i64(&ms);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &arg, 1, NULL, &r),
                        PP_OK);
  double t0 = tu_now();
  pp_status st = pp_result_get(r, 1.0);
  double elapsed = tu_now() - t0;
  CU_ASSERT_EQUAL(st, PP_ETIMEOUT);
  CU_ASSERT(elapsed >= 0.9);
  CU_ASSERT(elapsed < 2.5);
  CU_ASSERT_EQUAL(pp_result_ready(r), 0);

  /* still usable: the other worker answers */
  int64_t v = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 6, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 36);

  /* end without waiting for the 10 s task */
  double t1 = tu_now();
  pp_pool_destroy(pool);
  CU_ASSERT(tu_now() - t1 < 5.0);
  CU_ASSERT_EQUAL(pp_result_get(r, 0.0), PP_ETERMINATED);
  pp_result_free(r);
}

/* The blocking apply. */
static void test_apply(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t x = 12, v = 0;
  pp_bytes arg = tu_i64(&x);
  pp_value out = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "square", &arg, 1, &out), PP_OK);
  CU_ASSERT_EQUAL(out.status, PP_OK);
  CU_ASSERT_PTR_NULL(out.error);
  CU_ASSERT_EQUAL(out.len, 8);
  CU_ASSERT_EQUAL(pp_value_i64(&out, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 144);
  pp_value_clear(&out);
  CU_ASSERT_PTR_NULL(out.data);
  CU_ASSERT_EQUAL(out.len, 0);
  pp_pool_destroy(pool);
}

/* apply with several arguments. */
static void test_apply_several_args(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t vals[5] = {1, 2, 3, 4, 5}, v = 0;
  pp_bytes args[5];
  for (size_t i = 0; i < 5; i++) {
    args[i] = tu_i64(&vals[i]);
  }
  pp_value out = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "sum", args, 5, &out), PP_OK);
  CU_ASSERT_EQUAL(pp_value_i64(&out, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 15);
  pp_value_clear(&out);

  CU_ASSERT_EQUAL(pp_apply(pool, "add", args + 2, 2, &out), PP_OK);
  CU_ASSERT_EQUAL(pp_value_i64(&out, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 7);
  pp_value_clear(&out);

  /* no arguments at all */
  CU_ASSERT_EQUAL(pp_apply(pool, "sum", NULL, 0, &out), PP_OK);
  CU_ASSERT_EQUAL(pp_value_i64(&out, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 0);
  pp_value_clear(&out);

  /* async with several arguments */
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "add", args, 2, NULL, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(pp_result_i64(r, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 3);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* A failing task: PP_ETASK and its message, and the pool carries on. */
static void test_apply_task_fails(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t x = 7, v = 0;
  pp_bytes arg = tu_i64(&x);
  pp_value out = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "fail", &arg, 1, &out), PP_ETASK);
  CU_ASSERT_EQUAL(out.status, PP_ETASK);
  CU_ASSERT(tu_contains(out.error, TASK_FAIL_PREFIX "7"));
  CU_ASSERT_EQUAL(pp_value_i64(&out, &v), PP_ETASK);
  pp_value_clear(&out);
  CU_ASSERT_PTR_NULL(out.error);

  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 5, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 25);
  pp_pool_destroy(pool);
}

/* Bytes cross both ways unchanged: empty, small, large. */
static void test_apply_bytes(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  const size_t sizes[] = {0, 1, 3, 4096, 100000, 4u << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k];
    unsigned char *buf = malloc(n ? n : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (size_t i = 0; i < n; i++) {
      buf[i] = (unsigned char)(i * 31u + k);
    }
    pp_bytes arg = {buf, n};
    pp_value out = {0};
    CU_ASSERT_EQUAL(pp_apply(pool, "echo", &arg, 1, &out), PP_OK);
    CU_ASSERT_EQUAL(out.len, n);
    if (out.len == n && n > 0) {
      CU_ASSERT_PTR_NOT_NULL_FATAL(out.data);
      CU_ASSERT(memcmp(out.data, buf, n) == 0);
    }
    if (out.data != NULL) {
      /* documented: NUL-terminated past len */
      CU_ASSERT_EQUAL(((const char *)out.data)[out.len], '\0');
    }
    pp_value_clear(&out);
    free(buf);
  }
  pp_pool_destroy(pool);
}

static void test_version(void) {
  char expect[32];
  snprintf(expect, sizeof expect, "%d.%d.%d", PP_VERSION_MAJOR,
           PP_VERSION_MINOR, PP_VERSION_PATCH);
  const char *v = pp_version();
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  CU_ASSERT_STRING_EQUAL(v, expect);
}

int pp_test_suite_core(void) {
  static const tu_test tests[] = {
      {"seed: apply_async(square, 10).get(1) == 100", test_seed_apply_async},
      {"seed: map(square, 0..9) is the squares", test_seed_map},
      {"seed: imap gives 0, 1, then next(1) gives 4", test_seed_imap},
      {"seed: get(1) on a 10 s task times out in ~1 s; pool still usable",
       test_seed_get_timeout},
      {"apply returns the value", test_apply},
      {"apply with several arguments", test_apply_several_args},
      {"a failing task gives PP_ETASK and its message", test_apply_task_fails},
      {"bytes cross unchanged (0 B to 4 MiB)", test_apply_bytes},
      {"pp_version matches the header", test_version},
  };
  return tu_add_suite("core", tests, TU_NTESTS(tests));
}
