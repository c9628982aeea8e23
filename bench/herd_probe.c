/* pp_bench_herd: N threads, each looping on a blocking pp_apply() of a
 * trivial task for S seconds, against a 2-worker fork pool. Prints the
 * applies per second and the parent's CPU (user + system, getrusage) per
 * apply. Usage: pp_bench_herd THREADS SECONDS [TASK_US]: with TASK_US the
 * task sleeps that long in the worker first (0: a bare square), so that
 * the waiters sleep rather than spin. */
#define _GNU_SOURCE 1
#include <procpool.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static pp_pool *pool;
static atomic_int stop;
static atomic_long applies, failures;
static int64_t task_us;

static pp_status task_square(pp_call *call) {
  int64_t x;
  pp_status st = pp_call_arg_i64(call, 0, &x);
  if (st == PP_OK && pp_call_argc(call) > 1) {
    int64_t us;
    if (pp_call_arg_i64(call, 1, &us) == PP_OK && us > 0)
      usleep((useconds_t)us);
  }
  return st != PP_OK ? st : pp_call_return_i64(call, x * x);
}

static void *loop(void *arg) {
  int64_t x = (int64_t)(intptr_t)arg;
  long n = 0;
  while (!atomic_load(&stop)) {
    pp_bytes a[2] = {{&x, sizeof x}, {&task_us, sizeof task_us}};
    pp_value v;
    if (pp_apply(pool, "square", a, task_us ? 2 : 1, &v) != PP_OK) {
      atomic_fetch_add(&failures, 1);
    } else {
      int64_t y;
      if (v.len != sizeof y)
        atomic_fetch_add(&failures, 1);
      else {
        memcpy(&y, v.data, sizeof y);
        if (y != x * x)
          atomic_fetch_add(&failures, 1);
      }
      pp_value_clear(&v);
    }
    n++;
  }
  atomic_fetch_add(&applies, n);
  return NULL;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  if (pp_register("square", task_square) != PP_OK)
    return 1;
  pp_worker_main(argc, argv);
  if (argc != 3 && argc != 4)
    return fprintf(stderr, "usage: herd_probe THREADS SECONDS [TASK_US]\n"), 2;
  task_us = argc == 4 ? atoll(argv[3]) : 0;
  int nthreads = atoi(argv[1]);
  double seconds = atof(argv[2]);
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.context = PP_CONTEXT_FORK;
  if (pp_pool_create(&pool, &o) != PP_OK)
    return fprintf(stderr, "create: %s\n", pp_last_error()), 1;
  pthread_t *t = calloc((size_t)nthreads, sizeof *t);
  double c0 = cpu(), t0 = now();
  for (int i = 0; i < nthreads; i++)
    if (pthread_create(&t[i], NULL, loop, (void *)(intptr_t)(i + 1)))
      return fprintf(stderr, "thread %d\n", i), 1;
  struct timespec s = {(time_t)seconds,
                       (long)((seconds - (time_t)seconds) * 1e9)};
  nanosleep(&s, NULL);
  atomic_store(&stop, 1);
  for (int i = 0; i < nthreads; i++)
    pthread_join(t[i], NULL);
  double c1 = cpu(), t1 = now();
  long n = atomic_load(&applies);
  printf("task_us=%lld threads=%d applies=%ld failures=%ld applies/s=%.0f "
         "cpu_us/apply=%.2f wall=%.2fs cpu=%.2fs\n",
         (long long)task_us, nthreads, n, atomic_load(&failures), n / (t1 - t0),
         (c1 - c0) / n * 1e6, t1 - t0, c1 - c0);
  pp_pool_close(pool);
  pp_pool_join(pool);
  pp_pool_destroy(pool);
  free(t);
  return 0;
}
