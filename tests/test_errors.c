/* Suite "errors": NULL, invalid handles and bad input for every public
   function. Each must return an error code (or be a documented no-op),
   never crash. */
#include <math.h> /* NAN */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "internal.h" /* a pp_call built by hand */
#include "procpool.h"
#include "suites.h"
#include "tasks.h"
#include "util.h"

static void test_strerror(void) {
  for (int s = 0; s < PP_STATUS_COUNT_; s++) {
    const char *m = pp_strerror((pp_status)s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(m[0] != '\0');
    CU_ASSERT(strcmp(m, "unknown status") != 0);
    /* distinct names */
    for (int t = 0; t < s; t++) {
      const char *o = pp_strerror((pp_status)t);
      CU_ASSERT(o == NULL || strcmp(o, m) != 0);
    }
  }
  const int bad[] = {PP_STATUS_COUNT_, PP_STATUS_COUNT_ + 1, -1, 1000000};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    const char *m = pp_strerror((pp_status)bad[k]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m, "unknown status");
  }
}

static void test_value_functions(void) {
  pp_value_clear(NULL); /* ignored */
  pp_value zero = {0};
  pp_value_clear(&zero); /* nothing to free */
  CU_ASSERT_PTR_NULL(zero.data);
  CU_ASSERT_PTR_NULL(zero.error);

  int64_t x = 0;
  CU_ASSERT_EQUAL(pp_value_i64(NULL, &x), PP_EINVAL);

  /* values built by hand; not cleared (they own nothing) */
  int64_t eight = 1234;
  pp_value v = {&eight, sizeof eight, PP_OK, NULL, NULL};
  CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 1234);
  CU_ASSERT_NOT_EQUAL(pp_value_i64(&v, NULL), PP_OK);
  v.len = 4;
  CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_EINVAL);
  v.len = 9;
  CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_EINVAL);
  v.len = 0;
  v.data = NULL;
  CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_EINVAL);
  char msg[] = "boom";
  pp_value failed = {NULL, 0, PP_ETASK, msg, NULL};
  CU_ASSERT_EQUAL(pp_value_i64(&failed, &x), PP_ETASK);
}

static pp_status other_fn(pp_call *call) {
  return pp_call_return_i64(call, -1);
}

static pp_status other_fn2(pp_call *call) {
  return pp_call_return_i64(call, -2);
}

/* Registration happens here after pp_worker_main(): these names are never
   run, so spawned workers need not know them. */
static void test_register(void) {
  CU_ASSERT_EQUAL(pp_register(NULL, other_fn), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_register("errors_null_fn", NULL), PP_EINVAL);

  char name[300];
  memset(name, 'n', sizeof name);
  name[256] = '\0'; /* 256 bytes: one too many */
  CU_ASSERT_EQUAL(pp_register(name, other_fn), PP_EINVAL);
  name[299] = '\0';
  memset(name, 'm', 299);
  CU_ASSERT_EQUAL(pp_register(name, other_fn), PP_EINVAL);
  memset(name, 'k', sizeof name);
  name[255] = '\0'; /* 255 bytes: the longest allowed */
  CU_ASSERT_EQUAL(pp_register(name, other_fn), PP_OK);

  /* the same function again is fine; another function is PP_ESTATE */
  CU_ASSERT_EQUAL(pp_register("errors_dup", other_fn), PP_OK);
  CU_ASSERT_EQUAL(pp_register("errors_dup", other_fn), PP_OK);
  CU_ASSERT_EQUAL(pp_register("errors_dup", other_fn2), PP_ESTATE);
  CU_ASSERT_EQUAL(pp_register("square", other_fn), PP_ESTATE);

  /* Many names, through the registry's growth: each stays its own. */
  enum { MANY = 3000 };
  size_t wrong = 0;
  for (int i = 0; i < MANY; i++) {
    snprintf(name, sizeof name, "errors_many_%d", i);
    wrong += pp_register(name, i % 2 ? other_fn : other_fn2) != PP_OK;
  }
  for (int i = 0; i < MANY; i++) {
    snprintf(name, sizeof name, "errors_many_%d", i);
    wrong += pp_register(name, i % 2 ? other_fn : other_fn2) != PP_OK;
    wrong += pp_register(name, i % 2 ? other_fn2 : other_fn) != PP_ESTATE;
  }
  CU_ASSERT_EQUAL(wrong, 0);
  CU_ASSERT_EQUAL(pp_register("square", other_fn), PP_ESTATE);
}

/* Worker-side functions called with NULL in the parent. */
static void test_call_null(void) {
  pp_bytes b;
  int64_t x;
  CU_ASSERT_EQUAL(pp_call_argc(NULL), 0);
  CU_ASSERT_EQUAL(pp_call_arg(NULL, 0, &b), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_call_arg_i64(NULL, 0, &x), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_call_return(NULL, "x", 1), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_call_return(NULL, NULL, 0), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_call_return_i64(NULL, 1), PP_EINVAL);
  CU_ASSERT_NOT_EQUAL(pp_call_fail(NULL, "x %d", 1), PP_OK);
  /* The same names as functions rather than as procpool.h's macros. */
  CU_ASSERT_EQUAL((pp_call_argc)(NULL), 0);
  CU_ASSERT_EQUAL((pp_call_arg)(NULL, 0, &b), PP_EINVAL);
  CU_ASSERT_EQUAL((pp_call_arg_i64)(NULL, 0, &x), PP_EINVAL);
  CU_ASSERT_EQUAL((pp_call_return_i64)(NULL, 1), PP_EINVAL);
}

/* The task accessors are macros over inline code for the common case,
 * which falls back to the library's functions for the rest (procpool.h):
 * the two forms must agree on every input, good or bad. */
static void test_call_accessor_forms(void) {
  const int64_t want = -1234567890123;
  unsigned char raw[12];
  memcpy(raw + 1, &want, sizeof want); /* not aligned */
  const pp_bytes argv[2] = {{raw + 1, 8}, {raw, 3}};
  pp_call call;
  memset(&call, 0, sizeof call);
  call.head.argv = argv;
  call.head.argc = 2;

  CU_ASSERT_EQUAL(pp_call_argc(&call), 2);
  CU_ASSERT_EQUAL((pp_call_argc)(&call), 2);
  for (size_t i = 0; i < 4; i++) {
    pp_bytes inl = {0}, fn = {0};
    pp_status a = pp_call_arg(&call, i, &inl), b = (pp_call_arg)(&call, i, &fn);
    CU_ASSERT_EQUAL(a, b);
    CU_ASSERT_EQUAL(a, i < 2 ? PP_OK : PP_EINVAL);
    CU_ASSERT(inl.data == fn.data && inl.len == fn.len);
    int64_t x = 7, y = 7;
    a = pp_call_arg_i64(&call, i, &x);
    b = (pp_call_arg_i64)(&call, i, &y);
    CU_ASSERT_EQUAL(a, b);
    CU_ASSERT_EQUAL(a, i == 0 ? PP_OK : PP_EINVAL); /* arg 1 is 3 bytes */
    CU_ASSERT_EQUAL(x, i == 0 ? want : 7);
    CU_ASSERT_EQUAL(x, y);
  }
  CU_ASSERT_EQUAL(pp_call_arg(&call, 0, NULL), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_call_arg_i64(&call, 0, NULL), PP_EINVAL);

  /* A result into an 8-byte record (a records map's slot). */
  int64_t slot = 0;
  call.head.record = (unsigned char *)&slot;
  call.head.record_size = sizeof slot;
  CU_ASSERT_EQUAL(pp_call_return_i64(&call, want), PP_OK);
  CU_ASSERT_EQUAL(slot, want);
  CU_ASSERT_EQUAL(call.head.returned, 1);
  call.head.returned = 0;
  CU_ASSERT_EQUAL((pp_call_return_i64)(&call, want + 1), PP_OK);
  CU_ASSERT_EQUAL(slot, want + 1);
  CU_ASSERT_EQUAL(call.head.returned, 1);

  /* A record of another size: both refuse, the slot untouched. */
  call.head.returned = 0;
  call.head.record_size = 4;
  CU_ASSERT_EQUAL(pp_call_return_i64(&call, 1), PP_ETOOBIG);
  CU_ASSERT_EQUAL((pp_call_return_i64)(&call, 1), PP_ETOOBIG);
  CU_ASSERT_EQUAL(slot, want + 1);
  CU_ASSERT_EQUAL(call.head.returned, 0);

  /* pp_call_return() into a record of its size, or of another. */
  call.head.returned = 0;
  call.head.record_size = sizeof slot;
  int64_t v = want - 5;
  CU_ASSERT_EQUAL(pp_call_return(&call, &v, sizeof v), PP_OK);
  CU_ASSERT_EQUAL(slot, want - 5);
  CU_ASSERT_EQUAL(call.head.returned, 1);
  call.head.returned = 0;
  v = want - 6;
  CU_ASSERT_EQUAL((pp_call_return)(&call, &v, sizeof v), PP_OK);
  CU_ASSERT_EQUAL(slot, want - 6);
  CU_ASSERT_EQUAL(call.head.returned, 1);
  call.head.returned = 0;
  CU_ASSERT_EQUAL(pp_call_return(&call, &v, 4), PP_ETOOBIG);
  CU_ASSERT_EQUAL((pp_call_return)(&call, &v, 4), PP_ETOOBIG);
  CU_ASSERT_EQUAL(pp_call_return(&call, NULL, sizeof v), PP_EINVAL);
  CU_ASSERT_EQUAL((pp_call_return)(&call, NULL, sizeof v), PP_EINVAL);
  CU_ASSERT_EQUAL(slot, want - 6);
  CU_ASSERT_EQUAL(call.head.returned, 0);

  /* No record: the value goes to the call's own buffer, replacing. */
  call.head.record = NULL;
  CU_ASSERT_EQUAL(pp_call_return_i64(&call, want), PP_OK);
  CU_ASSERT_EQUAL((pp_call_return_i64)(&call, want - 1), PP_OK);
  CU_ASSERT_EQUAL(call.head.returned, 1);
  CU_ASSERT_EQUAL_FATAL(pp__buf_len(&call.value), sizeof want);
  int64_t got = 0;
  memcpy(&got, call.value.data + call.value.start, sizeof got);
  CU_ASSERT_EQUAL(got, want - 1);
  pp__call_free(&call);
}

/* Worker-side errors, checked inside a task ("call_checks"). */
static void test_call_errors_in_worker(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t x = 5;
  pp_bytes args[2] = {tu_i64(&x), {"abc", 3}};
  pp_value v = {0};
  int64_t r = -1;
  CU_ASSERT_EQUAL(pp_apply(pool, "call_checks", args, 2, &v), PP_OK);
  if (v.error != NULL) {
    fprintf(stderr, "\n  call_checks failed: %s\n", v.error);
    CU_FAIL("call_checks reported a failed check");
  }
  CU_ASSERT_EQUAL(pp_value_i64(&v, &r), PP_OK);
  CU_ASSERT_EQUAL(r, 1); /* the later return replaced the earlier one */
  pp_value_clear(&v);
  pp_pool_destroy(pool);
}

/* A task returning a status without pp_call_fail(): the call fails with
   that status's name. */
static void test_task_returns_status(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_value v = {0};
  pp_status st = pp_apply(pool, "ret_status", NULL, 0, &v);
  CU_ASSERT_NOT_EQUAL(st, PP_OK);
  CU_ASSERT_EQUAL(v.status, st);
  CU_ASSERT(tu_contains(v.error, pp_strerror(TASK_RET_STATUS)));
  pp_value_clear(&v);
  pp_pool_destroy(pool);
}

static void test_pool_null(void) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  CU_ASSERT_EQUAL(pp_pool_create(NULL, &o), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_pool_create(NULL, NULL), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_pool_processes(NULL), 0);
  long pids[4];
  size_t n = 0;
  CU_ASSERT_EQUAL(pp_pool_worker_pids(NULL, pids, 4, &n), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_pool_close(NULL), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_pool_terminate(NULL), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_pool_join(NULL), PP_EINVAL);
  pp_pool_destroy(NULL); /* ignored */

  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(pp_pool_worker_pids(pool, NULL, 4, &n), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_pool_worker_pids(pool, pids, 4, NULL), PP_EINVAL);
  pp_pool_destroy(pool);
}

static void test_apply_bad_args(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t x = 2;
  pp_bytes arg = tu_i64(&x);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(NULL, "square", &arg, 1, &v), PP_EINVAL);
  pp_value_clear(&v);
  CU_ASSERT_EQUAL(pp_apply(pool, NULL, &arg, 1, &v), PP_EINVAL);
  pp_value_clear(&v);
  CU_ASSERT_EQUAL(pp_apply(pool, "square", &arg, 1, NULL), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_apply(pool, "square", NULL, 1, &v), PP_EINVAL);
  pp_value_clear(&v);

  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_apply_async(NULL, "square", &arg, 1, NULL, &r), PP_EINVAL);
  pp_result_free(r);
  r = NULL;
  CU_ASSERT_EQUAL(pp_apply_async(pool, NULL, &arg, 1, NULL, &r), PP_EINVAL);
  pp_result_free(r);
  r = NULL;
  CU_ASSERT_EQUAL(pp_apply_async(pool, "square", NULL, 2, NULL, &r), PP_EINVAL);
  pp_result_free(r);
  CU_ASSERT_EQUAL(pp_apply_async(pool, "square", &arg, 1, NULL, NULL),
                  PP_EINVAL);

  /* a NULL argument buffer with a non-zero length */
  pp_bytes badarg = {NULL, 8};
  r = NULL;
  CU_ASSERT_EQUAL(pp_apply_async(pool, "square", &badarg, 1, NULL, &r),
                  PP_EINVAL);
  pp_result_free(r);

  /* A NaN time limit is neither a limit nor none: refused by every
   * asynchronous call, as the pool's own is by pp_pool_create(). */
  pp_callbacks nan_limit = {NULL, NULL, NULL, NAN};
  r = (pp_result *)&r; /* set to NULL on failure */
  CU_ASSERT_EQUAL(pp_apply_async(pool, "square", &arg, 1, &nan_limit, &r),
                  PP_EINVAL);
  CU_ASSERT_PTR_NULL(r);
  r = (pp_result *)&r;
  CU_ASSERT_EQUAL(pp_map_async(pool, "square", &arg, 1, 0, &nan_limit, &r),
                  PP_EINVAL);
  CU_ASSERT_PTR_NULL(r);
  pp_args call = {&arg, 1};
  r = (pp_result *)&r;
  CU_ASSERT_EQUAL(pp_starmap_async(pool, "square", &call, 1, 0, &nan_limit, &r),
                  PP_EINVAL);
  CU_ASSERT_PTR_NULL(r);
  int64_t in = 3, out = 0;
  pp_records rec = {&in, 1, sizeof in, &out, sizeof out, NULL, 0};
  r = (pp_result *)&r;
  CU_ASSERT_EQUAL(pp_map_records_async(pool, "square", &rec, 0, &nan_limit, &r),
                  PP_EINVAL);
  CU_ASSERT_PTR_NULL(r);

  /* the pool is unharmed */
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 3, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 9);
  pp_pool_destroy(pool);
}

static void test_map_bad_args(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t vals[2];
  pp_bytes items[2];
  tu_i64_items(vals, items, 2, 1);
  pp_args sitems[2] = {{items, 1}, {items + 1, 1}};
  pp_result *r = NULL;

#define EXPECT_EINVAL(call)                                                    \
  do {                                                                         \
    r = NULL;                                                                  \
    CU_ASSERT_EQUAL(call, PP_EINVAL);                                          \
    pp_result_free(r);                                                         \
  } while (0)

  EXPECT_EINVAL(pp_map(NULL, "square", items, 2, 0, &r));
  EXPECT_EINVAL(pp_map(pool, NULL, items, 2, 0, &r));
  EXPECT_EINVAL(pp_map(pool, "square", NULL, 2, 0, &r));
  EXPECT_EINVAL(pp_map(pool, "square", items, 2, 0, NULL));
  EXPECT_EINVAL(pp_map_async(NULL, "square", items, 2, 0, NULL, &r));
  EXPECT_EINVAL(pp_map_async(pool, NULL, items, 2, 0, NULL, &r));
  EXPECT_EINVAL(pp_map_async(pool, "square", NULL, 2, 0, NULL, &r));
  EXPECT_EINVAL(pp_map_async(pool, "square", items, 2, 0, NULL, NULL));
  EXPECT_EINVAL(pp_starmap(NULL, "square", sitems, 2, 0, &r));
  EXPECT_EINVAL(pp_starmap(pool, NULL, sitems, 2, 0, &r));
  EXPECT_EINVAL(pp_starmap(pool, "square", NULL, 2, 0, &r));
  EXPECT_EINVAL(pp_starmap(pool, "square", sitems, 2, 0, NULL));
  EXPECT_EINVAL(pp_starmap_async(NULL, "square", sitems, 2, 0, NULL, &r));
  EXPECT_EINVAL(pp_starmap_async(pool, NULL, sitems, 2, 0, NULL, &r));
  EXPECT_EINVAL(pp_starmap_async(pool, "square", NULL, 2, 0, NULL, &r));
  EXPECT_EINVAL(pp_starmap_async(pool, "square", sitems, 2, 0, NULL, NULL));

  /* malformed items: NULL data with a length, NULL argv with an argc */
  pp_bytes baditems[2] = {items[0], {NULL, 8}};
  EXPECT_EINVAL(pp_map(pool, "square", baditems, 2, 0, &r));
  pp_args badsitems[2] = {{items, 1}, {NULL, 2}};
  EXPECT_EINVAL(pp_starmap(pool, "add", badsitems, 2, 0, &r));
#undef EXPECT_EINVAL

  int64_t x = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 4, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 16);
  pp_pool_destroy(pool);
}

static void test_map_records_bad_args(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t in[4] = {1, 2, 3, 4}, out[4] = {-1, -1, -1, -1};
  const pp_records good = {in, 4, sizeof in[0], out, sizeof out[0], NULL, 0};
  pp_records rec;
  pp_result *r = NULL;

#define EXPECT_NOT_OK(call)                                                    \
  do {                                                                         \
    r = NULL;                                                                  \
    CU_ASSERT_NOT_EQUAL(call, PP_OK);                                          \
    pp_result_free(r);                                                         \
  } while (0)
#define EXPECT_STATUS(call, st)                                                \
  do {                                                                         \
    r = NULL;                                                                  \
    CU_ASSERT_EQUAL(call, st);                                                 \
    pp_result_free(r);                                                         \
  } while (0)

  EXPECT_STATUS(pp_map_records(NULL, "square", &good, 0, &r), PP_EINVAL);
  EXPECT_STATUS(pp_map_records(pool, NULL, &good, 0, &r), PP_EINVAL);
  EXPECT_STATUS(pp_map_records(pool, "square", NULL, 0, &r), PP_EINVAL);
  EXPECT_STATUS(pp_map_records(pool, "square", &good, 0, NULL), PP_EINVAL);
  EXPECT_STATUS(pp_map_records_async(NULL, "square", &good, 0, NULL, &r),
                PP_EINVAL);
  EXPECT_STATUS(pp_map_records_async(pool, NULL, &good, 0, NULL, &r),
                PP_EINVAL);
  EXPECT_STATUS(pp_map_records_async(pool, "square", NULL, 0, NULL, &r),
                PP_EINVAL);
  EXPECT_STATUS(pp_map_records_async(pool, "square", &good, 0, NULL, NULL),
                PP_EINVAL);

  rec = good;
  rec.in = NULL;
  EXPECT_STATUS(pp_map_records(pool, "square", &rec, 0, &r), PP_EINVAL);
  rec = good;
  rec.out = NULL;
  EXPECT_STATUS(pp_map_records(pool, "square", &rec, 0, &r), PP_EINVAL);
  rec = good;
  rec.in_size = 0;
  EXPECT_STATUS(pp_map_records(pool, "square", &rec, 0, &r), PP_EINVAL);
  rec = good;
  rec.out_size = 0;
  EXPECT_STATUS(pp_map_records(pool, "square", &rec, 0, &r), PP_EINVAL);

  /* count * size overflows */
  rec = good;
  rec.count = SIZE_MAX / 2;
  rec.in_size = 8;
  EXPECT_NOT_OK(pp_map_records(pool, "square", &rec, 0, &r));
  rec = good;
  rec.count = SIZE_MAX / 4;
  rec.out_size = 16;
  EXPECT_NOT_OK(pp_map_records(pool, "square", &rec, 0, &r));
  rec = good;
  rec.count = SIZE_MAX;
  EXPECT_NOT_OK(pp_map_records_async(pool, "square", &rec, 0, NULL, &r));

  /* field sizes */
  const size_t short_fields[2] = {4, 2};       /* sum 6 != 8 */
  const size_t long_fields[2] = {8, 8};        /* sum 16 != 8 */
  const size_t wrap_fields[2] = {SIZE_MAX, 9}; /* sum wraps to 8 */
  /* more fields than bytes: refused at the first one past the record's
   * end, however many (beyond the wire's 32-bit count too) */
  const size_t byte_fields[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  rec = good;
  rec.field_sizes = short_fields;
  rec.nfields = 2;
  EXPECT_STATUS(pp_map_records(pool, "add", &rec, 0, &r), PP_EINVAL);
  rec.field_sizes = long_fields;
  EXPECT_STATUS(pp_map_records(pool, "add", &rec, 0, &r), PP_EINVAL);
  rec.field_sizes = wrap_fields;
  EXPECT_STATUS(pp_map_records(pool, "add", &rec, 0, &r), PP_EINVAL);
  rec.field_sizes = byte_fields;
  rec.nfields = 9;
  EXPECT_STATUS(pp_map_records(pool, "add", &rec, 0, &r), PP_EINVAL);
  rec.nfields = SIZE_MAX;
  EXPECT_STATUS(pp_map_records(pool, "add", &rec, 0, &r), PP_EINVAL);
  rec.field_sizes = NULL; /* nfields > 0 without sizes */
  EXPECT_STATUS(pp_map_records(pool, "add", &rec, 0, &r), PP_EINVAL);

  /* Arrays that overlap other than as the same array of the same record
   * size: workers of different chunks would read records that others
   * already overwrote, so the results would depend on timing. */
  int64_t span[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  rec = good;
  rec.in = span;
  rec.out = span + 1; /* shifted by one record */
  EXPECT_STATUS(pp_map_records(pool, "square", &rec, 0, &r), PP_EINVAL);
  rec.out = span + 3; /* the last input record is the first output one */
  EXPECT_STATUS(pp_map_records_async(pool, "square", &rec, 0, NULL, &r),
                PP_EINVAL);
  rec.in = span + 3; /* the output runs into the input */
  rec.out = span;
  EXPECT_STATUS(pp_map_records(pool, "square", &rec, 0, &r), PP_EINVAL);
  rec.in = span; /* the same array, a smaller result per record */
  rec.out = span;
  rec.out_size = sizeof(int32_t);
  EXPECT_STATUS(pp_map_records(pool, "square", &rec, 0, &r), PP_EINVAL);
  for (size_t i = 0; i < 8; i++)
    CU_ASSERT_EQUAL(span[i], (int64_t)i + 1); /* nothing was written */
  /* Adjacent arrays do not overlap; nor do arrays of an empty map. */
  rec = good;
  rec.in = span;
  rec.out = span + 4;
  EXPECT_STATUS(pp_map_records(pool, "square", &rec, 0, &r), PP_OK);
  CU_ASSERT_EQUAL(span[4], 1);
  CU_ASSERT_EQUAL(span[7], 16);
  rec.count = 0;
  rec.out = span + 1;
  EXPECT_STATUS(pp_map_records(pool, "square", &rec, 0, &r), PP_OK);

  /* A record that does not fit the pool's largest message (1 GiB) with
   * its frame's room (4 KiB) is refused, even in an empty map. Just below
   * 4 GiB, the record and that room sum past SIZE_MAX where size_t is 32
   * bits: the check must not wrap and let it through. */
  const size_t room = 4096, limit = (size_t)1 << 30;
  const size_t sizes[] = {(size_t)UINT32_MAX - 100, (size_t)UINT32_MAX,
                          limit - room + 1};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    for (int out_side = 0; out_side < 2; out_side++) {
      rec = good;
      rec.count = 0;
      if (out_side)
        rec.out_size = sizes[k];
      else
        rec.in_size = sizes[k];
      EXPECT_STATUS(pp_map_records_async(pool, "square", &rec, 0, NULL, &r),
                    PP_ETOOBIG);
      CU_ASSERT(tu_contains(pp_last_error(), "max_message_size"));
    }
  }
  rec = good;
  rec.count = 0;
  rec.in_size = rec.out_size = limit - room; /* the largest that fits */
  EXPECT_STATUS(pp_map_records(pool, "square", &rec, 0, &r), PP_OK);
#undef EXPECT_NOT_OK
#undef EXPECT_STATUS

  for (size_t i = 0; i < 4; i++) {
    CU_ASSERT_EQUAL(out[i], -1); /* nothing was written */
  }
  int64_t x = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 5, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 25);
  pp_pool_destroy(pool);
}

/* A records task must return exactly out_size bytes. */
static void test_map_records_wrong_result_size(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t in[4] = {1, 2, 3, 4};
  int64_t out[8];
  /* "square" returns 8 bytes; 16 are expected per record */
  pp_records rec = {in, 4, sizeof in[0], out, 2 * sizeof out[0], NULL, 0};
  pp_result *r = NULL;
  pp_status st = pp_map_records(pool, "square", &rec, 0, &r);
  CU_ASSERT_NOT_EQUAL(st, PP_OK);
  pp_result_free(r);
  /* 4 bytes per record: the 8-byte result is too big */
  int32_t out4[4];
  rec.out = out4;
  rec.out_size = sizeof out4[0];
  r = NULL;
  st = pp_map_records(pool, "square", &rec, 0, &r);
  CU_ASSERT_NOT_EQUAL(st, PP_OK);
  pp_result_free(r);
  int64_t x = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 6, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 36);
  pp_pool_destroy(pool);
}

/* An input with no item yet, ever. */
static pp_status never_ready(void *state, pp_bytes *item) {
  (void)state;
  (void)item;
  return PP_ENOTREADY;
}

static void test_imap_bad_args(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  tu_range range;
  tu_range_init(&range, 0, 3);
  pp_iter *it = NULL;

#define EXPECT_EINVAL(call)                                                    \
  do {                                                                         \
    it = NULL;                                                                 \
    CU_ASSERT_EQUAL(call, PP_EINVAL);                                          \
    pp_iter_free(it);                                                          \
  } while (0)

  EXPECT_EINVAL(pp_imap(NULL, "square", tu_range_next, &range, 0, &it));
  EXPECT_EINVAL(pp_imap(pool, NULL, tu_range_next, &range, 0, &it));
  EXPECT_EINVAL(pp_imap(pool, "square", NULL, &range, 0, &it));
  EXPECT_EINVAL(pp_imap(pool, "square", tu_range_next, &range, 0, NULL));
  EXPECT_EINVAL(
      pp_imap_unordered(NULL, "square", tu_range_next, &range, 0, &it));
  EXPECT_EINVAL(pp_imap_unordered(pool, NULL, tu_range_next, &range, 0, &it));
  EXPECT_EINVAL(pp_imap_unordered(pool, "square", NULL, &range, 0, &it));
  EXPECT_EINVAL(
      pp_imap_unordered(pool, "square", tu_range_next, &range, 0, NULL));
#undef EXPECT_EINVAL

  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_iter_next(NULL, 0.0, &v), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_iter_next(NULL, 1.0, NULL), PP_EINVAL);
  pp_value_clear(&v);
  pp_iter_free(NULL); /* ignored */

  it = NULL;
  /* One chunk of three: once the first item is out, the others are in. */
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "square", tu_range_next, &range, 3, &it),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, NULL), PP_EINVAL);
  int64_t x = -1;
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_OK);
  CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 0); /* the NULL call consumed nothing */
  pp_value_clear(&v);
  /* A NaN timeout is refused only where the call would wait: items in
   * already are handed out, by pp_iter_next() and pp_iter_next_many()
   * alike. */
  pp_value two[2] = {{0}, {0}};
  size_t got = 0;
  CU_ASSERT_EQUAL(pp_iter_next_many(it, NAN, two, 2, &got), PP_OK);
  CU_ASSERT_EQUAL_FATAL(got, 2);
  CU_ASSERT_EQUAL(pp_value_i64(&two[0], &x), PP_OK);
  CU_ASSERT_EQUAL(x, 1);
  CU_ASSERT_EQUAL(pp_value_i64(&two[1], &x), PP_OK);
  CU_ASSERT_EQUAL(x, 4);
  pp_value_clear_many(two, got);
  pp_iter_free(it);

  /* Nothing in, nothing coming: there the NaN is refused. */
  it = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "square", never_ready, NULL, 1, &it),
                        PP_OK);
  got = 1;
  CU_ASSERT_EQUAL(pp_iter_next_many(it, NAN, &v, 1, &got), PP_EINVAL);
  CU_ASSERT_EQUAL(got, 0);
  CU_ASSERT_EQUAL(pp_iter_next(it, NAN, &v), PP_EINVAL);
  pp_value_clear(&v);
  pp_iter_free(it);
  pp_pool_destroy(pool);
}

/* A generator that fails stops the input with an error, not a hang. */
static pp_status failing_next(void *state, pp_bytes *item) {
  tu_range *range = state;
  if (range->next == 3) {
    return PP_ESYSTEM;
  }
  return tu_range_next(state, item);
}

static void test_imap_generator_fails(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  tu_range range;
  tu_range_init(&range, 0, 10);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "square", failing_next, &range, 1, &it),
                        PP_OK);
  for (int64_t i = 0; i < 3; i++) {
    pp_value v = {0};
    int64_t x = -1;
    CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_OK);
    CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_OK);
    CU_ASSERT_EQUAL(x, i * i);
    pp_value_clear(&v);
  }
  /* then the input's error: neither a value, nor a silent end, nor a hang */
  pp_value v = {0};
  pp_status st = pp_iter_next(it, TU_WAIT, &v);
  CU_ASSERT_NOT_EQUAL(st, PP_OK);
  CU_ASSERT_NOT_EQUAL(st, PP_EOF);
  CU_ASSERT_NOT_EQUAL(st, PP_ETIMEOUT);
  pp_value_clear(&v);
  /* afterwards: no hang either */
  st = pp_iter_next(it, TU_WAIT, &v);
  CU_ASSERT_NOT_EQUAL(st, PP_ETIMEOUT);
  CU_ASSERT_NOT_EQUAL(st, PP_OK);
  pp_value_clear(&v);
  pp_iter_free(it);
  pp_pool_destroy(pool);
}

static void test_result_null(void) {
  pp_bytes b;
  int64_t x;
  int ok;
  CU_ASSERT_EQUAL(pp_result_get(NULL, 0.0), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_get(NULL, NAN), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_get(NULL, 1.0), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_wait(NULL, 0.0), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_ready(NULL), 0);
  CU_ASSERT_EQUAL(pp_result_successful(NULL, &ok), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_value(NULL, &b), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_i64(NULL, &x), PP_EINVAL);
  CU_ASSERT_PTR_NULL(pp_result_error(NULL));
  CU_ASSERT_EQUAL(pp_result_count(NULL), 0);
  CU_ASSERT_EQUAL(pp_result_item(NULL, 0, &b), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_item_i64(NULL, 0, &x), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_chunks(NULL), 0);
  CU_ASSERT_EQUAL(pp_result_chunksize(NULL), 0);
  pp_result_free(NULL); /* ignored */

  /* NULL out-pointers on a real, completed result */
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t vals[3];
  pp_bytes items[3];
  tu_i64_items(vals, items, 3, 0);
  pp_result *r = NULL, *m = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", items, 1, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "square", items, 3, 0, NULL, &m),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(m, TU_WAIT), PP_OK);
  /* A NaN timeout is neither a wait nor none, even for a ready result. */
  CU_ASSERT_EQUAL(pp_result_get(r, NAN), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_wait(m, NAN), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_successful(r, NULL), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_value(r, NULL), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_i64(r, NULL), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_item(m, 0, NULL), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_item_i64(m, 0, NULL), PP_EINVAL);
  pp_result_free(r);
  pp_result_free(m);
  pp_pool_destroy(pool);
}

static void test_result_item_out_of_range(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t vals[3];
  pp_bytes items[3];
  tu_i64_items(vals, items, 3, 0);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "square", items, 3, 0, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  pp_bytes b;
  int64_t x;
  CU_ASSERT_EQUAL(pp_result_item(r, 2, &b), PP_OK);
  CU_ASSERT_EQUAL(pp_result_item(r, 3, &b), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_item(r, SIZE_MAX, &b), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_item_i64(r, 3, &x), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_result_item_i64(r, SIZE_MAX, &x), PP_EINVAL);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* An unknown task name fails that call with a message naming the task;
   the worker survives and the pool carries on. */
static void test_unknown_task(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  const char *name = "no_such_task_xyzzy";
  int64_t x = 1;
  pp_bytes arg = tu_i64(&x);
  long before[8], after[8];
  size_t nb = 0, na = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 1, &x), PP_OK);
  /* workers start asynchronously: wait (bounded) until both are listed */
  double t0 = tu_now();
  do {
    CU_ASSERT_EQUAL(pp_pool_worker_pids(pool, before, 8, &nb), PP_OK);
  } while (nb < 2 && tu_now() - t0 < TU_WAIT && (tu_sleep_ms(10), 1));
  CU_ASSERT_EQUAL(nb, 2);
  pp_value v = {0};
  pp_status st = pp_apply(pool, name, &arg, 1, &v);
  CU_ASSERT(st == PP_EUNKNOWNTASK || st == PP_ETASK);
  CU_ASSERT_EQUAL(v.status, st);
  CU_ASSERT(tu_contains(v.error, name));
  CU_ASSERT(tu_contains(v.error, "before pp_worker_main()"));
  pp_value_clear(&v);

  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, name, &arg, 1, NULL, &r), PP_OK);
  st = pp_result_get(r, TU_WAIT);
  CU_ASSERT(st == PP_EUNKNOWNTASK || st == PP_ETASK);
  CU_ASSERT(tu_contains(pp_result_error(r), name));
  pp_result_free(r);

  int64_t vals[4];
  pp_bytes items[4];
  tu_i64_items(vals, items, 4, 0);
  r = NULL;
  st = pp_map(pool, name, items, 4, 1, &r);
  CU_ASSERT(st == PP_EUNKNOWNTASK || st == PP_ETASK);
  CU_ASSERT(tu_contains(pp_result_error(r), name));
  pp_result_free(r);

  /* the workers are the same processes: none died */
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 7, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 49);
  CU_ASSERT_EQUAL(pp_pool_worker_pids(pool, after, 8, &na), PP_OK);
  CU_ASSERT_EQUAL(na, nb);
  for (size_t i = 0; i < na && i < nb && i < 8; i++) {
    int found = 0;
    for (size_t j = 0; j < nb && j < 8; j++) {
      found |= after[i] == before[j];
    }
    CU_ASSERT(found);
  }
  pp_pool_destroy(pool);
}

/* An over-long task name is refused (or fails the call), never crashes. */
static void test_long_task_name(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  char name[1024];
  memset(name, 't', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  pp_value v = {0};
  CU_ASSERT_NOT_EQUAL(pp_apply(pool, name, NULL, 0, &v), PP_OK);
  pp_value_clear(&v);
  CU_ASSERT_NOT_EQUAL(pp_apply(pool, "", NULL, 0, &v), PP_OK);
  pp_value_clear(&v);
  int64_t x = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 2, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 4);
  pp_pool_destroy(pool);
}

/* Expects pp_last_error() to be exactly `want`. */
#define EXPECT_LAST(want)                                                      \
  do {                                                                         \
    const char *got_ = pp_last_error();                                        \
    CU_ASSERT_PTR_NOT_NULL(got_);                                              \
    if (got_ && strcmp(got_, want) != 0) {                                     \
      fprintf(stderr,                                                          \
              "\n  pp_last_error(): \"%s\"\n  expected:        "               \
              "\"%s\"\n",                                                      \
              got_, want);                                                     \
      CU_FAIL("pp_last_error() is not the expected message");                  \
    }                                                                          \
  } while (0)

static void first_failure_of_thread(void *arg) {
  *(const char **)arg = pp_last_error();
}

/* Every refusal says, through pp_last_error(), which call refused what;
 * a call's failed outcome gives the task's own message. */
static void test_last_error(void) {
  /* A thread none of whose calls failed has no message. */
  const char *fresh = "unset";
  tu_thread_join(tu_thread_start(first_failure_of_thread, &fresh));
  CU_ASSERT_PTR_NULL(fresh);

  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_result *r = NULL;
  int64_t x = 5, in[4] = {1, 2, 3, 4}, out[4];
  pp_bytes arg = tu_i64(&x), items[2] = {tu_i64(&x), {NULL, 8}};
  pp_context ctx;
  pp_callbacks nan_limit = {NULL, NULL, NULL, NAN};

  CU_ASSERT_EQUAL(pp_apply_async(NULL, "square", &arg, 1, NULL, &r), PP_EINVAL);
  EXPECT_LAST("pp_apply_async: pool is NULL");
  CU_ASSERT_EQUAL(pp_apply_async(pool, "", &arg, 1, NULL, &r), PP_EINVAL);
  EXPECT_LAST("pp_apply_async: a task name is 1 to 255 bytes, not 0");
  CU_ASSERT_EQUAL(pp_apply_async(pool, "square", &arg, 1, &nan_limit, &r),
                  PP_EINVAL);
  EXPECT_LAST("pp_apply_async: callbacks->time_limit is NaN: give a number "
              "of seconds, 0 for the pool's, or a negative value for none");
  CU_ASSERT_EQUAL(pp_map_async(pool, "square", NULL, 3, 0, NULL, &r),
                  PP_EINVAL);
  EXPECT_LAST("pp_map_async: items is NULL but count is 3");
  CU_ASSERT_EQUAL(pp_map(pool, "square", items, 2, 1, &r), PP_EINVAL);
  EXPECT_LAST("pp_map: item 1's argument 0 has NULL data but a length of 8");
  CU_ASSERT_EQUAL(pp_apply_async(pool, "square", items + 1, 1, NULL, &r),
                  PP_EINVAL);
  EXPECT_LAST("pp_apply_async: argument 0 has NULL data but a length of 8");

  pp_records rec = {in, 4, sizeof in[0], in + 1, sizeof in[0], NULL, 0};
  CU_ASSERT_EQUAL(pp_map_records(pool, "square", &rec, 0, &r), PP_EINVAL);
  EXPECT_LAST("pp_map_records: records->out overlaps records->in: give "
              "separate arrays, or the same one with out_size equal to "
              "in_size");
  const size_t fields[2] = {4, 2};
  rec.out = out;
  rec.field_sizes = fields;
  rec.nfields = 2;
  CU_ASSERT_EQUAL(pp_map_records_async(pool, "add", &rec, 0, NULL, &r),
                  PP_EINVAL);
  EXPECT_LAST("pp_map_records_async: records->field_sizes sum to 6, not to "
              "in_size (8)");

  /* Outcomes: a timeout, a task's failure, an item past the end. */
  pp_bytes slow = tu_i64(&x);
  x = 300;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, 0.01), PP_ETIMEOUT);
  EXPECT_LAST("pp_result_get: the result was not ready within 0.01 s; it "
              "still may be");
  CU_ASSERT_EQUAL(pp_result_successful(r, &(int){0}), PP_ENOTREADY);
  EXPECT_LAST("pp_result_successful: the call is not complete yet: wait for "
              "it with pp_result_wait() or pp_result_get()");
  CU_ASSERT_EQUAL(pp_result_wait(r, -1), PP_OK);
  CU_ASSERT_EQUAL(pp_result_item(r, 1, &arg), PP_EINVAL);
  EXPECT_LAST("pp_result_item: index 1 is past the result's 1 items");
  pp_result_free(r);
  x = TASK_FAIL_ON_ITEM;
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "fail_on", &arg, 1, &v), PP_ETASK);
  EXPECT_LAST("pp_apply: " TASK_FAIL_ON_MSG);
  /* A call that succeeds leaves the message alone, as errno. */
  CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_ETASK);
  EXPECT_LAST("pp_value_i64: " TASK_FAIL_ON_MSG);
  pp_value_clear(&v);
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 3, &x), PP_OK);
  EXPECT_LAST("pp_value_i64: " TASK_FAIL_ON_MSG);

  CU_ASSERT_EQUAL(pp_context_from_name("Spawn", &ctx), PP_EINVAL);
  EXPECT_LAST("pp_context_from_name: \"Spawn\" names no start context: "
              "fork, spawn or forkserver, in lower case");
  CU_ASSERT_EQUAL(pp_register("square", NULL), PP_EINVAL);
  EXPECT_LAST("pp_register: fn is NULL");
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_ESTATE);
  EXPECT_LAST("pp_pool_join: the pool is still running: call "
              "pp_pool_close() or pp_pool_terminate() first");
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_apply_async(pool, "square", &arg, 1, NULL, &r),
                  PP_ECLOSED);
  EXPECT_LAST("pp_apply_async: the pool is closed (pp_pool_close() or "
              "pp_pool_terminate() was called): it takes no more work");
  pp_pool_destroy(pool);

  /* pp_pool_create()'s own message, behind the function's name. */
  pp_options o;
  pp_options_init(&o);
  o.processes = PP_MAX_PROCESSES + 1;
  pp_pool *none = NULL;
  CU_ASSERT_EQUAL(pp_pool_create(&none, &o), PP_EINVAL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pp_pool_create_error());
  char want[300];
  snprintf(want, sizeof want, "pp_pool_create: %s", pp_pool_create_error());
  EXPECT_LAST(want);
}
#undef EXPECT_LAST

int pp_test_suite_errors(void) {
  static const tu_test tests[] = {
      {"pp_strerror of every status; unknown status", test_strerror},
      {"pp_value_clear / pp_value_i64 bad input", test_value_functions},
      {"pp_register: NULL, long name, re-registration", test_register},
      {"pp_call_* with NULL", test_call_null},
      {"pp_call_* accessors: the inline and function forms agree",
       test_call_accessor_forms},
      {"pp_call_* errors inside a worker", test_call_errors_in_worker},
      {"a task returning a status fails with its name",
       test_task_returns_status},
      {"pool functions with NULL", test_pool_null},
      {"apply / apply_async bad arguments", test_apply_bad_args},
      {"map / starmap (async) bad arguments", test_map_bad_args},
      {"map_records bad layouts", test_map_records_bad_args},
      {"map_records: task result of the wrong size",
       test_map_records_wrong_result_size},
      {"imap / imap_unordered / iter_next bad arguments", test_imap_bad_args},
      {"imap: a failing generator ends the input", test_imap_generator_fails},
      {"pp_result_* with NULL", test_result_null},
      {"pp_result_item out of range", test_result_item_out_of_range},
      {"unknown task: error naming it; pool carries on", test_unknown_task},
      {"over-long or empty task name", test_long_task_name},
      {"pp_last_error() names the call and what was wrong", test_last_error},
  };
  return tu_add_suite("errors", tests, TU_NTESTS(tests));
}
