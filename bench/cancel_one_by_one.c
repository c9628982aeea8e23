/* Probe: N queued pp_apply_async calls cancelled and waited one by one.
 * Two workers are kept busy by long first tasks, so every later call stays
 * queued; the time is that of the cancel-and-wait loop alone.
 *
 * Built as pp_bench_cancel with the benchmarks (PP_BUILD_BENCH).
 * Run: pp_bench_cancel N [ORDER]   ORDER: fifo (default), lifo, middle */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "procpool.h"

static pp_status task_sleep_ms(pp_call *call) {
  int64_t ms = 0;
  pp_call_arg_i64(call, 0, &ms);
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  return pp_call_return_i64(call, ms);
}

static pp_status task_square(pp_call *call) {
  int64_t x = 0;
  pp_call_arg_i64(call, 0, &x);
  return pp_call_return_i64(call, x * x);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  pp_register("sleep_ms", task_sleep_ms);
  pp_register("square", task_square);
  pp_worker_main(argc, argv); /* in a worker, it does not return */
  size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 10000;
  const char *order = argc > 2 ? argv[2] : "fifo";
  pp_options opts;
  pp_options_init(&opts);
  opts.processes = 2;
  pp_pool *pool = NULL;
  if (pp_pool_create(&pool, &opts) != PP_OK) {
    fprintf(stderr, "pool: %s\n", pp_last_error());
    return 1;
  }
  int64_t ms = 600000, x = 3;
  pp_bytes slow = {&ms, sizeof ms}, quick = {&x, sizeof x};
  pp_result *busy[2];
  for (int i = 0; i < 2; i++)
    if (pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &busy[i]) != PP_OK)
      return 1;
  pp_result **r = calloc(n, sizeof *r);
  for (size_t i = 0; i < n; i++)
    if (pp_apply_async(pool, "square", &quick, 1, NULL, &r[i]) != PP_OK)
      return 1;
  size_t bad = 0;
  double t0 = now();
  for (size_t k = 0; k < n; k++) {
    size_t i = k;
    if (!strcmp(order, "lifo"))
      i = n - 1 - k;
    else if (!strcmp(order, "middle")) /* outward from the middle */
      i = k % 2 ? n / 2 - 1 - k / 2 : n / 2 + k / 2;
    pp_result_cancel(r[i]);
    pp_result_wait(r[i], -1);
    if (pp_result_get(r[i], 0) != PP_ECANCELLED)
      bad++;
  }
  double took = now() - t0;
  printf("n=%zu order=%s cancel+wait one by one: %.3f s (%.2f us each)%s\n", n,
         order, took, took / (double)n * 1e6, bad ? " SOME NOT CANCELLED" : "");
  for (size_t i = 0; i < n; i++)
    pp_result_free(r[i]);
  free(r);
  pp_pool_terminate(pool);
  for (int i = 0; i < 2; i++)
    pp_result_free(busy[i]);
  pp_pool_destroy(pool);
  return bad != 0;
}
