/* primes.c: the procpool demo.
 *
 * Counts the primes in [1, LIMIT] by trial division, a CPU-bound job cut into
 * RANGES ranges: first serially in this process, then through a pool of
 * worker processes with pp_imap_unordered(), showing progress as the ranges
 * come back. Prints both wall times and the speed-up, and exits 1 unless the
 * two totals agree.
 *
 * Usage: pp_demo [LIMIT [RANGES [PROCESSES]]]
 *   LIMIT      upper bound, at most 4294967295 (default 20000000)
 *   RANGES     number of ranges, i.e. of tasks (default 200)
 *   PROCESSES  worker processes; 0 = number of CPUs (default 0)
 * The environment variable PROCPOOL_START_METHOD (fork, spawn, forkserver)
 * chooses how workers are started; the default is the platform's.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif

#include <procpool.h>

#ifdef _WIN32
#include <windows.h>
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_LIMIT 20000000
#define DEFAULT_RANGES 200

/* Monotonic seconds, for timing. (C11's timespec_get() is missing from some
 * mingw-w64 runtimes, and is not monotonic anyway.) */
static double now_seconds(void) {
#ifdef _WIN32
  LARGE_INTEGER freq, now;
  QueryPerformanceFrequency(&freq);
  QueryPerformanceCounter(&now);
  return (double)now.QuadPart / (double)freq.QuadPart;
#else
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
    return 0.0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#endif
}

static int is_prime(uint32_t n) {
  if (n < 2)
    return 0;
  if (n < 4)
    return 1;
  if (n % 2 == 0 || n % 3 == 0)
    return 0;
  for (uint32_t d = 5; d <= n / d; d += 6) {
    if (n % d == 0 || n % (d + 2) == 0)
      return 0;
  }
  return 1;
}

/* Number of primes in [lo, hi], 1 <= lo, hi <= UINT32_MAX. */
static int64_t count_primes(int64_t lo, int64_t hi) {
  int64_t count = 0;
  for (int64_t n = lo; n <= hi; n++)
    count += is_prime((uint32_t)n);
  return count;
}

/* The task, run in a worker: one argument of two int64_t (lo, hi), one
 * int64_t result. */
static pp_status task_count_primes(pp_call *call) {
  pp_bytes arg;
  int64_t range[2];
  pp_status st = pp_call_arg(call, 0, &arg);
  if (st != PP_OK)
    return pp_call_fail(call, "count_primes: missing argument");
  if (arg.len != sizeof range)
    return pp_call_fail(call, "count_primes: expected %zu bytes, got %zu",
                        sizeof range, arg.len);
  memcpy(range, arg.data, sizeof range);
  if (range[0] < 1 || range[1] < range[0] - 1 || range[1] > UINT32_MAX)
    return pp_call_fail(call,
                        "count_primes: bad range [%" PRId64 ", %" PRId64 "]",
                        range[0], range[1]);
  return pp_call_return_i64(call, count_primes(range[0], range[1]));
}

/* Range i of n over [1, limit]: [lo, hi], inclusive. */
static void range_of(int64_t limit, int64_t i, int64_t n, int64_t range[2]) {
  range[0] = 1 + i * limit / n;
  range[1] = (i + 1) * limit / n;
}

/* The lazy input of the imap: one range per call. */
typedef struct ranges_input {
  int64_t limit;
  int64_t nranges;
  int64_t next;
  int64_t item[2]; /* the bytes handed out last */
} ranges_input;

static pp_status next_range(void *state, pp_bytes *item) {
  ranges_input *in = state;
  if (in->next >= in->nranges)
    return PP_EOF;
  range_of(in->limit, in->next++, in->nranges, in->item);
  item->data = in->item;
  item->len = sizeof in->item;
  return PP_OK;
}

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
    return 0;
  *out = (int64_t)v;
  return 1;
}

static void usage(FILE *f, const char *prog) {
  fprintf(f,
          "usage: %s [LIMIT [RANGES [PROCESSES]]]\n"
          "  counts the primes in [1, LIMIT] (default %d) cut into RANGES\n"
          "  ranges (default %d), serially and with PROCESSES workers\n"
          "  (default 0: the number of CPUs)\n",
          prog, DEFAULT_LIMIT, DEFAULT_RANGES);
}

int main(int argc, char **argv) {
  /* Register the tasks, then hand worker processes to procpool: in a worker
   * pp_worker_main() runs tasks and never returns. */
  if (pp_register("count_primes", task_count_primes) != PP_OK) {
    fprintf(stderr, "pp_demo: cannot register the task\n");
    return 1;
  }
  int rc = pp_worker_main(argc, argv);
  if (rc != 0)
    return rc;

  int64_t limit = DEFAULT_LIMIT, nranges = DEFAULT_RANGES, processes = 0;
  if (argc > 1 &&
      (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    usage(stdout, argv[0]);
    return 0;
  }
  if (argc > 4 || (argc > 1 && !parse_i64(argv[1], 1, UINT32_MAX, &limit)) ||
      (argc > 2 && !parse_i64(argv[2], 1, 1000000, &nranges)) ||
      (argc > 3 && !parse_i64(argv[3], 0, PP_MAX_PROCESSES, &processes))) {
    usage(stderr, argv[0]);
    return 2;
  }
  if (nranges > limit)
    nranges = limit;

  pp_options opts;
  pp_options_init(&opts);
  opts.processes = (int)processes;
  const char *method = getenv("PROCPOOL_START_METHOD");
  if (method != NULL && *method != '\0' &&
      pp_context_from_name(method, &opts.context) != PP_OK) {
    fprintf(stderr, "pp_demo: unknown start method '%s'\n", method);
    return 2;
  }

  printf("procpool %s demo: counting the primes in [1, %" PRId64 "] in %" PRId64
         " ranges\n\n",
         pp_version(), limit, nranges);

  /* 1. Serially, in this process. */
  double t0 = now_seconds();
  int64_t serial_total = 0;
  for (int64_t i = 0; i < nranges; i++) {
    int64_t range[2];
    range_of(limit, i, nranges, range);
    serial_total += count_primes(range[0], range[1]);
  }
  double serial_time = now_seconds() - t0;
  printf("serial: %10" PRId64 " primes in %7.3f s\n", serial_total,
         serial_time);

  /* 2. Through the pool: ranges go out lazily, results come back in the order
   * they complete. The time counts the pool's start-up too. */
  t0 = now_seconds();
  pp_pool *pool = NULL;
  pp_status st = pp_pool_create(&pool, &opts);
  if (st != PP_OK) {
    fprintf(stderr, "pp_demo: %s\n", pp_last_error()); /* names the call */
    return 1;
  }
  int nworkers = pp_pool_processes(pool);
  const char *ctx_name = pp_context_name(opts.context);
  printf("pool:   %d worker processes (start method: %s)\n", nworkers,
         ctx_name != NULL && opts.context != PP_CONTEXT_DEFAULT ? ctx_name
                                                                : "default");

  ranges_input input = {limit, nranges, 0, {0, 0}};
  pp_iter *iter = NULL;
  st = pp_imap_unordered(pool, "count_primes", next_range, &input, 1, &iter);
  if (st != PP_OK) {
    fprintf(stderr, "pp_demo: %s\n", pp_last_error());
    pp_pool_destroy(pool);
    return 1;
  }

  int64_t pool_total = 0, done = 0, shown = -1;
  double last_shown = 0.0;
  int failed = 0;
  while (done < nranges) {
    pp_value v = {0};
    st = pp_iter_next(iter, 0.1, &v);
    if (st == PP_OK) {
      int64_t count;
      if (pp_value_i64(&v, &count) != PP_OK) {
        fprintf(stderr, "\npp_demo: a result is not an int64\n");
        failed = 1;
      } else {
        pool_total += count;
      }
      done++;
    } else if (st == PP_EOF) {
      break;
    } else if (st != PP_ETIMEOUT) {
      fprintf(stderr, "\npp_demo: a task failed: %s%s%s\n", pp_strerror(st),
              v.error != NULL ? ": " : "", v.error != NULL ? v.error : "");
      failed = 1;
      done++;
      if (st == PP_EINVAL) { /* not an item's failure: stop */
        pp_value_clear(&v);
        break;
      }
    }
    pp_value_clear(&v);
    /* Progress, redrawn in place at most ten times a second. */
    double now = now_seconds();
    if (done != shown && (done == nranges || now - last_shown >= 0.1)) {
      printf("\r        done %" PRId64 "/%" PRId64 " ranges (%.1f s)", done,
             nranges, now - t0);
      fflush(stdout);
      shown = done;
      last_shown = now;
    }
  }
  double pool_time = now_seconds() - t0;
  printf("\n");
  pp_iter_free(iter);

  pp_pool_close(pool);
  pp_pool_join(pool);
  pp_pool_destroy(pool);

  printf("pool:   %10" PRId64 " primes in %7.3f s\n\n", pool_total, pool_time);
  if (pool_time > 0.0)
    printf("speed-up: %.2fx with %d worker processes\n",
           serial_time / pool_time, nworkers);

  if (failed || pool_total != serial_total || done != nranges) {
    fprintf(stderr,
            "pp_demo: FAILED: serial total %" PRId64 ", pool total %" PRId64
            " (%" PRId64 "/%" PRId64 " ranges)\n",
            serial_total, pool_total, done, nranges);
    return 1;
  }
  printf("the totals agree\n");
  return 0;
}
