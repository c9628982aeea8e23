/* pp_bench_startup: what a pool costs to start, per start context.
 *
 * For each context the platform has: create a pool of 2 workers, run one
 * trivial apply, close, join, destroy; the median of RUNS rounds is printed
 * as one JSON line:
 *   {"peer":"procpool","ctx":"fork","case":"startup_ms","value":1.23,"unit":"ms"}
 *
 * Usage: pp_bench_startup [RUNS] [--ctx NAME] [--phases]
 *   RUNS      rounds per context (default 50)
 *   --ctx     only that context (fork, spawn, forkserver)
 *   --phases  also the median of each phase, in µs: startup_create_us,
 *             startup_apply_us, startup_close_us, startup_join_us and
 *             startup_destroy_us (what a change to the start-up moved;
 *             the medians of the phases need not add up to the total's)
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
#include <string.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <time.h>
#endif

#define DEFAULT_RUNS 50

/* The phases of a round, timed apart, then the whole round. */
enum { CREATE, APPLY, CLOSE, JOIN, DESTROY, NPHASES, TOTAL = NPHASES };
static const char *const phase_names[NPHASES] = {"create", "apply", "close",
                                                 "join", "destroy"};

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

/* One round: each phase's milliseconds into ms[0..NPHASES) and the whole
 * round's into ms[TOTAL]. *st says whether it worked. */
static void one_round(pp_context ctx, double ms[NPHASES + 1], pp_status *st) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.context = ctx;
  pp_pool *pool = NULL;
  pp_value v = {0};
  double t[NPHASES + 1];
  t[0] = now_ms();
  *st = pp_pool_create(&pool, &o);
  t[1] = now_ms();
  if (*st == PP_OK)
    *st = pp_apply(pool, "noop", NULL, 0, &v);
  t[2] = now_ms();
  if (*st == PP_OK)
    *st = pp_pool_close(pool);
  t[3] = now_ms();
  if (*st == PP_OK)
    *st = pp_pool_join(pool);
  t[4] = now_ms();
  pp_pool_destroy(pool);
  t[5] = now_ms();
  for (int k = 0; k < NPHASES; k++)
    ms[k] = t[k + 1] - t[k];
  ms[TOTAL] = t[NPHASES] - t[0];
  if (*st != PP_OK && v.error)
    fprintf(stderr, "pp_bench_startup: %s\n", v.error);
  pp_value_clear(&v);
}

/* Sorts the `runs` values and returns their median. */
static double median(double *values, int runs) {
  qsort(values, (size_t)runs, sizeof *values, by_value);
  return runs % 2 ? values[runs / 2]
                  : (values[runs / 2 - 1] + values[runs / 2]) / 2;
}

static void print_line(pp_context ctx, const char *name, double value,
                       const char *unit) {
  printf("{\"peer\":\"procpool\",\"ctx\":\"%s\",\"case\":\"%s\","
         "\"value\":%.3f,\"unit\":\"%s\"}\n",
         pp_context_name(ctx), name, value, unit);
}

/* RUNS rounds in one context; 0, or 1 on a failure (said on stderr). */
static int measure(pp_context ctx, int runs, int phases, double *by_phase) {
  pp_status st = PP_OK;
  int i;
  for (i = 0; i < runs; i++) {
    double ms[NPHASES + 1];
    one_round(ctx, ms, &st);
    if (st != PP_OK)
      break;
    for (int k = 0; k <= NPHASES; k++)
      by_phase[(size_t)k * (size_t)runs + (size_t)i] = ms[k];
  }
  if (st == PP_ENOTSUP && i == 0)
    return 0; /* a context this platform does not have */
  if (st != PP_OK) {
    fprintf(stderr, "pp_bench_startup: %s: %s\n", pp_context_name(ctx),
            pp_strerror(st));
    return 1;
  }
  print_line(ctx, "startup_ms",
             median(by_phase + (size_t)TOTAL * (size_t)runs, runs), "ms");
  for (int k = 0; phases && k < NPHASES; k++) {
    char name[32];
    snprintf(name, sizeof name, "startup_%s_us", phase_names[k]);
    print_line(ctx, name,
               1e3 * median(by_phase + (size_t)k * (size_t)runs, runs), "us");
  }
  fflush(stdout);
  return 0;
}

static int usage(const char *argv0) {
  fprintf(stderr, "usage: %s [RUNS] [--ctx NAME] [--phases]\n", argv0);
  return 2;
}

int main(int argc, char **argv) {
  if (pp_register("noop", noop) != PP_OK)
    return 1;
  /* Spawned workers and the forkserver are this program again. */
  int wm = pp_worker_main(argc, argv);
  if (wm != 0)
    return wm;
  int runs = DEFAULT_RUNS, phases = 0, only = 0;
  pp_context only_ctx = PP_CONTEXT_DEFAULT;
  for (int a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--phases") == 0) {
      phases = 1;
    } else if (strcmp(argv[a], "--ctx") == 0 && a + 1 < argc) {
      if (pp_context_from_name(argv[++a], &only_ctx) != PP_OK)
        return usage(argv[0]);
      only = 1;
    } else {
      char *end;
      long n = strtol(argv[a], &end, 10);
      if (*end || n < 1 || n > 1000000)
        return usage(argv[0]);
      runs = (int)n;
    }
  }
  double *by_phase =
      malloc((size_t)(NPHASES + 1) * (size_t)runs * sizeof *by_phase);
  if (!by_phase)
    return 1;
  int failed = 0;
  const pp_context contexts[] = {PP_CONTEXT_FORK, PP_CONTEXT_SPAWN,
                                 PP_CONTEXT_FORKSERVER};
  for (size_t c = 0; c < sizeof contexts / sizeof contexts[0]; c++)
    if (!only || contexts[c] == only_ctx)
      failed |= measure(contexts[c], runs, phases, by_phase);
  free(by_phase);
  return failed;
}
