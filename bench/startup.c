/* pp_bench_startup: what a pool costs to start, per start context.
 *
 * For each context the platform has: create a pool of 2 workers, run one
 * trivial apply, close, join, destroy; the median of RUNS rounds is printed
 * as one JSON line:
 *   {"peer":"procpool","ctx":"fork","case":"startup_ms","value":1.23,"unit":"ms"}
 *
 * Usage: pp_bench_startup [RUNS]   (default 50)
 *
 * (pp_bench's startup_ms case measures the same, with fewer rounds, next to
 * Python's Pool; this program is the quick answer to "what does a context
 * cost to start".)
 */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif

#include <procpool.h>

#include <stdio.h>
#include <stdlib.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <time.h>
#endif

#define DEFAULT_RUNS 50

static pp_status noop(pp_call *call) { return pp_call_return_i64(call, 0); }

/* A monotonic clock in milliseconds. */
static double now_ms(void) {
#ifdef _WIN32
  LARGE_INTEGER f, t;
  QueryPerformanceFrequency(&f);
  QueryPerformanceCounter(&t);
  return (double)t.QuadPart * 1e3 / (double)f.QuadPart;
#else
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
#endif
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* One round: milliseconds, or a negative value with *st set on failure. */
static double one_round(pp_context ctx, pp_status *st) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.context = ctx;
  pp_pool *pool = NULL;
  pp_value v = {0};
  double t0 = now_ms();
  *st = pp_pool_create(&pool, &o);
  if (*st == PP_OK)
    *st = pp_apply(pool, "noop", NULL, 0, &v);
  if (*st == PP_OK)
    *st = pp_pool_close(pool);
  if (*st == PP_OK)
    *st = pp_pool_join(pool);
  pp_pool_destroy(pool);
  double took = now_ms() - t0;
  if (*st != PP_OK && v.error)
    fprintf(stderr, "pp_bench_startup: %s\n", v.error);
  pp_value_clear(&v);
  return *st == PP_OK ? took : -1.0;
}

int main(int argc, char **argv) {
  if (pp_register("noop", noop) != PP_OK)
    return 1;
  /* Spawned workers and the forkserver are this program again. */
  int wm = pp_worker_main(argc, argv);
  if (wm != 0)
    return wm;
  int runs = argc > 1 ? atoi(argv[1]) : DEFAULT_RUNS;
  if (runs < 1) {
    fprintf(stderr, "usage: %s [RUNS]\n", argv[0]);
    return 2;
  }
  double *ms = malloc((size_t)runs * sizeof *ms);
  if (!ms)
    return 1;
  int failed = 0;
  const pp_context contexts[] = {PP_CONTEXT_FORK, PP_CONTEXT_SPAWN,
                                 PP_CONTEXT_FORKSERVER};
  for (size_t c = 0; c < sizeof contexts / sizeof contexts[0]; c++) {
    pp_status st = PP_OK;
    int i;
    for (i = 0; i < runs; i++) {
      ms[i] = one_round(contexts[c], &st);
      if (st != PP_OK)
        break;
    }
    if (st == PP_ENOTSUP && i == 0)
      continue; /* a context this platform does not have */
    if (st != PP_OK) {
      fprintf(stderr, "pp_bench_startup: %s: %s\n",
              pp_context_name(contexts[c]), pp_strerror(st));
      failed = 1;
      continue;
    }
    qsort(ms, (size_t)runs, sizeof *ms, by_value);
    double median =
        runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2;
    printf("{\"peer\":\"procpool\",\"ctx\":\"%s\",\"case\":\"startup_ms\","
           "\"value\":%.3f,\"unit\":\"ms\"}\n",
           pp_context_name(contexts[c]), median);
    fflush(stdout);
  }
  free(ms);
  return failed;
}
