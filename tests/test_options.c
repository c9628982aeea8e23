/* Suite "options": pool options and start contexts. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#ifndef _WIN32
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#endif

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "procpool.h"
#include "suites.h"
#include "tasks.h"
#include "util.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif
#ifdef __linux__
#include <sched.h>
#endif

enum { MAX_PIDS = 64 };

/* The CPU count as sysconf (or Windows) gives it. */
static long cpus_online(void) {
#ifdef _WIN32
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  return (long)si.dwNumberOfProcessors;
#else
  return sysconf(_SC_NPROCESSORS_ONLN);
#endif
}

/* The CPUs this process may run on (Linux affinity mask), or -1. */
static long cpus_usable(void) {
#if defined(__linux__) && defined(CPU_COUNT)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    return (long)CPU_COUNT(&set);
  }
#endif
  return -1;
}

/* The library may count online CPUs or the affinity mask (as Python's
   os.cpu_count() and os.process_cpu_count() do): accept either. */
static int is_cpu_count(int n) {
  long a = cpus_online(), b = cpus_usable();
  if (a > PP_MAX_PROCESSES) {
    a = PP_MAX_PROCESSES;
  }
  if (b > PP_MAX_PROCESSES) {
    b = PP_MAX_PROCESSES;
  }
  return n >= 1 && (n == a || n == b);
}

static void check_pool_works(pp_pool *pool) {
  int64_t v = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 9, &v), PP_OK);
  CU_ASSERT_EQUAL(v, 81);
}

/* Waits (bounded) until the pool lists @p want live workers; returns the
   count last seen and fills @p pids. */
static size_t wait_pids(pp_pool *pool, long *pids, size_t want) {
  size_t n = 0;
  double deadline = tu_now() + TU_WAIT;
  do {
    n = 0;
    if (pp_pool_worker_pids(pool, pids, MAX_PIDS, &n) != PP_OK) {
      return 0;
    }
    if (n >= want) {
      break;
    }
    tu_sleep_ms(5);
  } while (tu_now() < deadline);
  return n;
}

static void test_options_init(void) {
  pp_options o;
  memset(&o, 0xA5, sizeof o);
  pp_options_init(&o);
  CU_ASSERT(o.processes <= 0); /* default: the CPU count */
  CU_ASSERT_PTR_NULL(o.initializer);
  CU_ASSERT_PTR_NULL(o.initargs);
  CU_ASSERT_EQUAL(o.ninitargs, 0);
  CU_ASSERT_EQUAL(o.maxtasksperchild, 0);
  CU_ASSERT_EQUAL(o.context, PP_CONTEXT_DEFAULT);
  pp_options_init(NULL); /* ignored */
}

static void test_processes_cpu_count(void) {
  const int asked[] = {0, -1, -100};
  for (size_t k = 0; k < 3; k++) {
    pp_pool *pool = tu_pool(asked[k]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    int n = pp_pool_processes(pool);
    CU_ASSERT(is_cpu_count(n));
    check_pool_works(pool);
    pp_pool_destroy(pool);
  }
  /* NULL options: the defaults */
  pp_pool *pool = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_pool_create(&pool, NULL), PP_OK);
  CU_ASSERT(is_cpu_count(pp_pool_processes(pool)));
  check_pool_works(pool);
  pp_pool_destroy(pool);
}

static void test_processes_too_many(void) {
  const int asked[] = {PP_MAX_PROCESSES + 1, PP_MAX_PROCESSES * 100, INT_MAX};
  for (size_t k = 0; k < 3; k++) {
    pp_options o;
    pp_options_init(&o);
    o.processes = asked[k];
    pp_pool *pool = NULL;
    CU_ASSERT_EQUAL(pp_pool_create(&pool, &o), PP_EINVAL);
    CU_ASSERT(tu_contains(pp_pool_create_error(), "PP_MAX_PROCESSES"));
    pp_pool_destroy(pool); /* NULL, or a pool that should not exist */
  }
  /* A success clears the reason. */
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_PTR_NULL(pp_pool_create_error());
  pp_pool_destroy(pool);
}

static void test_processes_two(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(pp_pool_processes(pool), 2);
  long pids[MAX_PIDS];
  size_t n = wait_pids(pool, pids, 2);
  CU_ASSERT_EQUAL_FATAL(n, 2);
  CU_ASSERT(pids[0] != pids[1]);
  CU_ASSERT(pids[0] > 0 && pids[1] > 0);
  CU_ASSERT(pids[0] != tu_self_pid() && pids[1] != tu_self_pid());

  /* a capacity of 1 writes at most 1 */
  long one[1] = {-1};
  size_t n1 = 99;
  CU_ASSERT_EQUAL(pp_pool_worker_pids(pool, one, 1, &n1), PP_OK);
  CU_ASSERT_EQUAL(n1, 1);
  CU_ASSERT(one[0] == pids[0] || one[0] == pids[1]);

  /* the tasks run in those pids */
  int64_t seen[8];
  for (size_t i = 0; i < 8; i++) {
    pp_result *r = NULL;
    seen[i] = -1;
    CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "getpid", NULL, 0, NULL, &r),
                          PP_OK);
    CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
    CU_ASSERT_EQUAL(pp_result_i64(r, &seen[i]), PP_OK);
    CU_ASSERT(seen[i] == pids[0] || seen[i] == pids[1]);
    pp_result_free(r);
  }
  pp_pool_destroy(pool);
}

static void test_processes_one(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(pp_pool_processes(pool), 1);
  long pids[MAX_PIDS];
  CU_ASSERT_EQUAL(wait_pids(pool, pids, 1), 1);
  check_pool_works(pool);
  pp_pool_destroy(pool);
}

/* pp_pool_create() refuses `o` with PP_EINVAL, makes no pool, and
 * pp_pool_create_error() says `says`. */
static void expect_refused(const pp_options *o, const char *says) {
  pp_pool *pool = (pp_pool *)&pool; /* set to NULL on failure */
  CU_ASSERT_EQUAL(pp_pool_create(&pool, o), PP_EINVAL);
  CU_ASSERT_PTR_NULL(pool);
  if (!tu_contains(pp_pool_create_error(), says))
    fprintf(stderr, "\n  pp_pool_create_error(): %s\n", pp_pool_create_error());
  CU_ASSERT(tu_contains(pp_pool_create_error(), says));
}

static void test_bad_initializer(void) {
  pp_options o;

  /* unregistered initializer */
  pp_options_init(&o);
  o.processes = 2;
  o.initializer = "no_such_initializer";
  expect_refused(&o, "no_such_initializer");

  /* initargs without an initializer */
  int64_t x = 1;
  pp_bytes arg = tu_i64(&x);
  pp_options_init(&o);
  o.processes = 2;
  o.initargs = &arg;
  o.ninitargs = 1;
  expect_refused(&o, "no initializer");

  /* ninitargs > 0 with NULL initargs */
  o.initializer = "init_store";
  o.initargs = NULL;
  expect_refused(&o, "initargs is NULL");

  /* an initarg with no data but a length */
  pp_bytes args[2] = {tu_i64(&x), {NULL, 8}};
  o.initargs = args;
  o.ninitargs = 2;
  expect_refused(&o, "initargs[1] has no data but a length of 8");

  /* a records task named as the initializer */
  pp_options_init(&o);
  o.processes = 2;
  o.initializer = "rsquare";
  expect_refused(&o, "'rsquare' is a records task");

#if SIZE_MAX > UINT32_MAX
  /* an initarg past the frame format's 4 GiB (refused before it is read):
   * PP_ETOOBIG, and words that name the option */
  pp_bytes huge = {&x, (size_t)UINT32_MAX + 1};
  pp_options_init(&o);
  o.processes = 2;
  o.initializer = "init_store";
  o.initargs = &huge;
  o.ninitargs = 1;
  pp_pool *pool = (pp_pool *)&pool;
  CU_ASSERT_EQUAL(pp_pool_create(&pool, &o), PP_ETOOBIG);
  CU_ASSERT_PTR_NULL(pool);
  CU_ASSERT(tu_contains(pp_pool_create_error(), "options.initargs are too "
                                                "big"));
#endif
}

static void test_bad_context(void) {
  const int bad[] = {99, -1, PP_CONTEXT_FORKSERVER + 1};
  for (size_t k = 0; k < 3; k++) {
    pp_options o;
    pp_options_init(&o);
    o.processes = 2;
    o.context = (pp_context)bad[k];
    pp_pool *pool = NULL;
    CU_ASSERT_EQUAL(pp_pool_create(&pool, &o), PP_EINVAL);
    CU_ASSERT(tu_contains(pp_pool_create_error(), "no context"));
    pp_pool_destroy(pool);
  }
}

static void test_context_names(void) {
  static const struct {
    const char *name;
    pp_context ctx;
  } table[] = {{"fork", PP_CONTEXT_FORK},
               {"spawn", PP_CONTEXT_SPAWN},
               {"forkserver", PP_CONTEXT_FORKSERVER}};
  for (size_t i = 0; i < 3; i++) {
    pp_context c = (pp_context)99;
    CU_ASSERT_EQUAL(pp_context_from_name(table[i].name, &c), PP_OK);
    CU_ASSERT_EQUAL(c, table[i].ctx);
    const char *n = pp_context_name(table[i].ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_STRING_EQUAL(n, table[i].name);
    /* round trip */
    c = (pp_context)99;
    CU_ASSERT_EQUAL(pp_context_from_name(n, &c), PP_OK);
    CU_ASSERT_EQUAL(c, table[i].ctx);
  }
  pp_context c = PP_CONTEXT_DEFAULT;
  CU_ASSERT_EQUAL(pp_context_from_name("bogus", &c), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_context_from_name("", &c), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_context_from_name("Fork ", &c), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_context_from_name(NULL, &c), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_context_from_name("fork", NULL), PP_EINVAL);
  CU_ASSERT_PTR_NULL(pp_context_name((pp_context)99));
  CU_ASSERT_PTR_NULL(pp_context_name((pp_context)-1));
  const char *d = pp_context_name(PP_CONTEXT_DEFAULT);
  (void)d; /* the default's name is not specified; it must not crash */
}

/* Creates a pool in @p ctx; on success checks it runs tasks in other
   processes. @return the create status. */
static pp_status try_context(pp_context ctx) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.context = ctx;
  pp_pool *pool = NULL;
  pp_status st = pp_pool_create(&pool, &o);
  if (st == PP_OK) {
    check_pool_works(pool);
    int64_t pid = -1;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "getpid", 0, &pid), PP_OK);
    CU_ASSERT(pid > 0 && pid != tu_self_pid());
    pp_pool_destroy(pool);
  }
  return st;
}

static void test_context_fork(void) {
#ifdef _WIN32
  CU_ASSERT_EQUAL(try_context(PP_CONTEXT_FORK), PP_ENOTSUP);
  CU_ASSERT_EQUAL(try_context(PP_CONTEXT_FORKSERVER), PP_ENOTSUP);
#else
  CU_ASSERT_EQUAL(try_context(PP_CONTEXT_FORK), PP_OK);
#endif
}

/* spawn works everywhere, forkserver on POSIX. */
static void test_context_spawn_forkserver(void) {
  CU_ASSERT_EQUAL(try_context(PP_CONTEXT_SPAWN), PP_OK);
#ifndef _WIN32
  CU_ASSERT_EQUAL(try_context(PP_CONTEXT_FORKSERVER), PP_OK);
#endif
}

/* A result 16 times max_message_size comes back whole: the worker sends it
   in pieces of the limit (before, the call failed with PP_ETOOBIG and the
   worker was replaced), and the pool carries on. A frame past the limit,
   which only a worker that breaks the protocol sends, is refused:
   test_malformed_frames(). */
static void test_max_message_size(void) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.max_message_size = 4096;
  pp_pool *pool = tu_pool_opts(&o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static char big[64 * 1024];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)(i * 7 + (i >> 12));
  pp_bytes arg = {big, sizeof big};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "echo", &arg, 1, NULL, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  const char *why = pp_result_error(r);
  if (why)
    fprintf(stderr, "\n  the call said: %s\n", why);
  pp_bytes back = {NULL, 0};
  CU_ASSERT_EQUAL(pp_result_item(r, 0, &back), PP_OK);
  CU_ASSERT_EQUAL(back.len, sizeof big);
  CU_ASSERT(back.len == sizeof big && memcmp(back.data, big, sizeof big) == 0);
  pp_result_free(r);
  pp_bytes small = {"abc", 3};
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "echo", &small, 1, &v), PP_OK);
  CU_ASSERT_EQUAL(v.len, 3);
  pp_value_clear(&v);
  pp_pool_destroy(pool);
}

/* A limit too small for a worker's smallest answers would fail every call
 * of the pool: refused when the pool is made, with the reason. The
 * smallest limit accepted works, records maps included (their chunks cut
 * to fit; a map of 8-byte records was refused with PP_ETOOBIG before,
 * the frame's room around the records being as big as the limit). */
static void test_max_message_size_too_small(void) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 1;
  o.max_message_size = 16;
  expect_refused(&o, "max_message_size is 16");
  pp_pool *pool = NULL;
  o.max_message_size = 4096; /* the smallest accepted */
  CU_ASSERT_EQUAL_FATAL(pp_pool_create(&pool, &o), PP_OK);
  enum { N = 1000 };
  int64_t in[N], out[N];
  for (size_t i = 0; i < N; i++)
    in[i] = (int64_t)i;
  pp_records rec = {in, N, sizeof in[0], out, sizeof out[0], NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "square", &rec, 0, &r), PP_OK);
  size_t wrong = 0;
  for (size_t i = 0; i < N; i++)
    wrong += out[i] != (int64_t)(i * i);
  CU_ASSERT_EQUAL(wrong, 0);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

int pp_test_suite_options(void) {
  static const tu_test tests[] = {
      {"pp_options_init defaults; NULL ignored", test_options_init},
      {"processes 0, -1, NULL options: the CPU count",
       test_processes_cpu_count},
      {"processes above PP_MAX_PROCESSES: PP_EINVAL, and why",
       test_processes_too_many},
      {"processes = 2: two distinct worker pids", test_processes_two},
      {"processes = 1", test_processes_one},
      {"bad initializer options: PP_EINVAL (PP_ETOOBIG for 4 GiB), and why",
       test_bad_initializer},
      {"invalid context value: PP_EINVAL, and why", test_bad_context},
      {"context names and round trip", test_context_names},
      {"explicit fork context", test_context_fork},
      {"explicit spawn / forkserver contexts", test_context_spawn_forkserver},
      {"max_message_size: a result past it comes in pieces, pool carries on",
       test_max_message_size},
      {"max_message_size below 4096: PP_EINVAL, and why; 4096 works, "
       "records too",
       test_max_message_size_too_small},
  };
  return tu_add_suite("options", tests, TU_NTESTS(tests));
}
