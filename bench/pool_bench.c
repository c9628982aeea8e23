/* pool_bench.c: the procpool side of the benchmark (scripts/bench.sh).
 *
 * Runs every case of the benchmark with a pool of 2 worker processes, once
 * per start context the platform offers, and prints one JSON line per
 * measurement:
 *
 *   {"peer": "procpool", "ctx": "fork", "case": "apply_rtt_us",
 *    "value": 12.3, "unit": "us"}
 *
 * bench/peer_python.py runs the same cases with Python's multiprocessing, so
 * that bench/report.py can print ratios measured on the same machine in the
 * same run.
 *
 * Usage: pp_bench [--quick] [--ctx NAME] [--case NAME] [--repeat N]
 *   --quick      every case scaled down (a smoke run of a few seconds)
 *   --ctx NAME   only this start context (fork, spawn, forkserver)
 *   --case NAME  only this case (e.g. apply_rtt_us), or the cases whose
 *                names start with NAME_
 *   --repeat N   run the steady-state cases N times in the same pool, to
 *                profile the steady state rather than the first run
 * Internal: pp_bench --rss-child ITEMS CHUNKSIZE CTX CASE runs one imap in a
 * fresh process and prints its peak RSS (a process-lifetime figure, so each
 * size needs its own process). pp_bench --startup-child REPS CTX times
 * start-up in a fresh process.
 *
 * Notes go to stderr; stdout holds only JSON lines.
 */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L /* clock_gettime, posix_spawn */
#endif

#include <procpool.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
/* After windows.h, which psapi.h needs. */
#include <process.h>
#include <psapi.h>
#else
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#endif

#define PROCESSES 2
#define MIB (1024.0 * 1024.0)

/* ---------------------------------------------------------------------- */
/* Tasks. Registered by name at the top of main(), so that a spawned worker
 * (a fresh copy of this executable) finds them too. */

static pp_status task_noop(pp_call *call) {
  return pp_call_return(call, NULL, 0);
}

static pp_status task_square(pp_call *call) {
  int64_t x;
  pp_status st = pp_call_arg_i64(call, 0, &x);
  return st != PP_OK ? st : pp_call_return_i64(call, x * x);
}

/* The same square as a records task: one call per chunk, the loop its own
 * (pp_register_records()). */
static pp_status records_square(const pp_records_chunk *chunk, pp_call *call) {
  (void)call;
  const int64_t *in = chunk->in;
  int64_t *out = chunk->out;
  for (size_t i = 0; i < chunk->count; i++)
    out[i] = in[i] * in[i];
  return PP_OK;
}

static pp_status task_identity(pp_call *call) {
  pp_bytes b;
  pp_status st = pp_call_arg(call, 0, &b);
  return st != PP_OK ? st : pp_call_return(call, b.data, b.len);
}

/* Pure computation the compiler cannot fold away: a xorshift walk. The
 * loop count comes with the argument, so the parent calibrates it once and
 * every worker, forked or spawned, runs the same amount of work. */
static uint64_t spin(int64_t loops) {
  uint64_t x = 88172645463325252u;
  for (int64_t i = 0; i < loops; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

static pp_status task_spin(pp_call *call) {
  int64_t loops;
  pp_status st = pp_call_arg_i64(call, 0, &loops);
  return st != PP_OK ? st : pp_call_return_i64(call, (int64_t)spin(loops));
}

/* ---------------------------------------------------------------------- */
/* Platform bits: a monotonic clock, peak RSS, running this program again. */

static double now_s(void) {
#ifdef _WIN32
  LARGE_INTEGER f, t;
  QueryPerformanceFrequency(&f);
  QueryPerformanceCounter(&t);
  return (double)t.QuadPart / (double)f.QuadPart;
#else
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#endif
}

/* Peak resident set size of this process, in MiB. On Linux getrusage()
 * will not do: ru_maxrss survives execve(), and posix_spawn() runs the child
 * in the parent's memory until the exec, so a child would report the peak of
 * the benchmark that started it. VmHWM belongs to the process image. */
static double peak_rss_mib(void) {
#ifdef _WIN32
  PROCESS_MEMORY_COUNTERS pmc;
  if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc))
    return -1;
  return (double)pmc.PeakWorkingSetSize / MIB;
#else
#ifdef __linux__
  FILE *f = fopen("/proc/self/status", "r");
  if (f) {
    char line[256];
    double kib = -1;
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "VmHWM:", 6) == 0)
        kib = strtod(line + 6, NULL);
    fclose(f);
    if (kib >= 0)
      return kib / 1024.0;
  }
#endif
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
#ifdef __APPLE__
  return (double)ru.ru_maxrss / MIB; /* bytes on macOS */
#else
  return (double)ru.ru_maxrss / 1024.0; /* KiB elsewhere */
#endif
#endif
}

#ifndef _WIN32
extern char **environ;
#endif

/* Runs this executable with `args` (NULL-terminated, args[0] ignored) and
 * waits. Returns its exit code, or -1 if it could not run. */
static int run_self(const char *argv0, char **args) {
  fflush(stdout);
  fflush(stderr);
#ifdef _WIN32
  char path[MAX_PATH];
  DWORD n = GetModuleFileNameA(NULL, path, sizeof path);
  if (n == 0 || n == sizeof path)
    return -1;
  (void)argv0;
  args[0] = path;
  intptr_t rc = _spawnv(_P_WAIT, path, (const char *const *)args);
  return rc < 0 ? -1 : (int)rc;
#else
  /* /proc/self/exe names this very file even when argv[0] is a bare name
   * found through PATH; elsewhere argv[0] must do. */
  const char *path =
      access("/proc/self/exe", X_OK) == 0 ? "/proc/self/exe" : argv0;
  args[0] = (char *)argv0;
  pid_t pid;
  if (posix_spawn(&pid, path, NULL, NULL, args, environ) != 0)
    return -1;
  int status;
  while (waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
#endif
}

/* ---------------------------------------------------------------------- */
/* Output */

static const char *g_only_case;
static int g_repeat = 1;
static int g_failures;

/* While a throughput case is taken several times, emit() collects its
 * values here instead of printing them (see measure()). */
static struct {
  int on;
  size_t n;
  double values[8];
  const char *unit;
} g_capture;

static void emit(const char *ctx, const char *name, double value,
                 const char *unit) {
  if (g_capture.on) {
    if (g_capture.n < sizeof g_capture.values / sizeof g_capture.values[0])
      g_capture.values[g_capture.n++] = value;
    g_capture.unit = unit;
    return;
  }
  /* Plain decimals for readability; %g keeps tiny values meaningful. */
  if (value >= 100.0)
    printf("{\"peer\": \"procpool\", \"ctx\": \"%s\", \"case\": \"%s\", "
           "\"value\": %.1f, \"unit\": \"%s\"}\n",
           ctx, name, value, unit);
  else
    printf("{\"peer\": \"procpool\", \"ctx\": \"%s\", \"case\": \"%s\", "
           "\"value\": %.4g, \"unit\": \"%s\"}\n",
           ctx, name, value, unit);
  fflush(stdout);
}

static void fail(const char *ctx, const char *name, const char *what,
                 pp_status st) {
  fprintf(stderr, "pp_bench: %s/%s: %s: %s\n", ctx, name, what,
          pp_strerror(st));
  g_failures++;
}

static int wanted(const char *name) {
  return !g_only_case || strcmp(g_only_case, name) == 0 ||
         (strncmp(name, g_only_case, strlen(g_only_case)) == 0 &&
          name[strlen(g_only_case)] == '_');
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------------------------------------------------------------------- */
/* Sizes: full, and --quick (a smoke run; numbers only roughly comparable) */

typedef struct sizes {
  size_t startup_reps;
  size_t apply_calls;
  size_t async_tasks;
  size_t map_items;
  size_t chunk1_items;
  size_t imap_items;
  size_t imap_c1_items; /* imap at chunk size 1, Python's default */
  size_t payload_buffers;
  size_t payload_bytes;
  size_t cpu_items, cpu_runs; /* runs: at most 3 */
  size_t rss_small, rss_large, rss_chunksize;
  size_t warmups, runs; /* of each throughput case; runs: at most 7 */
  double warm_s;        /* and untimed runs go on until this much time */
} sizes;

/* The imap RSS runs use the imap cases' chunk size: 100 M items take about
 * 15 s at it on a 2-core machine, inside the 60 s budget a run may take. */
static const sizes FULL = {.startup_reps = 20,
                           .apply_calls = 2000,
                           .async_tasks = 100000,
                           .map_items = 1000000,
                           .chunk1_items = 100000,
                           .imap_items = 1000000,
                           .imap_c1_items = 20000,
                           .payload_buffers = 64,
                           .payload_bytes = 4u << 20,
                           .cpu_items = 2000,
                           .cpu_runs = 3,
                           .rss_small = 1000000,
                           .rss_large = 100000000,
                           .rss_chunksize = 1000,
                           .warmups = 1,
                           .runs = 3,
                           .warm_s = 0.3};
static const sizes QUICK = {.startup_reps = 3,
                            .apply_calls = 200,
                            .async_tasks = 5000,
                            .map_items = 100000,
                            .chunk1_items = 5000,
                            .imap_items = 100000,
                            .imap_c1_items = 2000,
                            .payload_buffers = 4,
                            .payload_bytes = 4u << 20,
                            .cpu_items = 100,
                            .cpu_runs = 1,
                            .rss_small = 100000,
                            .rss_large = 1000000,
                            .rss_chunksize = 1000,
                            .warmups = 0,
                            .runs = 1,
                            .warm_s = 0};

static pp_status make_pool(pp_context ctx, pp_pool **pool) {
  pp_options o;
  pp_options_init(&o);
  o.processes = PROCESSES;
  o.context = ctx;
  return pp_pool_create(pool, &o);
}

static void end_pool(pp_pool *pool) {
  pp_pool_close(pool);
  pp_pool_join(pool);
  pp_pool_destroy(pool);
}

/* ---------------------------------------------------------------------- */
/* Cases */

/* Create a pool, run one trivial apply, close, join: what a short program
 * pays before its first result. */
static void case_startup(const char *cn, pp_context ctx, const sizes *sz) {
  double *t = calloc(sz->startup_reps, sizeof *t);
  if (!t)
    return;
  for (size_t i = 0; i < sz->startup_reps; i++) {
    double t0 = now_s();
    pp_pool *pool;
    pp_status st = make_pool(ctx, &pool);
    if (st != PP_OK) {
      fail(cn, "startup_ms", "pp_pool_create", st);
      free(t);
      return;
    }
    pp_value v;
    st = pp_apply(pool, "noop", NULL, 0, &v);
    pp_value_clear(&v);
    end_pool(pool);
    if (st != PP_OK) {
      fail(cn, "startup_ms", "pp_apply", st);
      free(t);
      return;
    }
    t[i] = now_s() - t0;
  }
  emit(cn, "startup_ms", median(t, sz->startup_reps) * 1e3, "ms");
  free(t);
}

static void case_apply_rtt(const char *cn, pp_pool *pool, const sizes *sz) {
  size_t n = sz->apply_calls;
  double *t = calloc(n, sizeof *t);
  if (!t)
    return;
  int64_t x = 3;
  pp_bytes arg = {&x, sizeof x};
  /* Warm up: both workers started and every allocation grown. */
  for (size_t i = 0; i < 50; i++) {
    pp_value v;
    pp_apply(pool, "square", &arg, 1, &v);
    pp_value_clear(&v);
  }
  for (size_t i = 0; i < n; i++) {
    pp_value v;
    double t0 = now_s();
    pp_status st = pp_apply(pool, "square", &arg, 1, &v);
    t[i] = now_s() - t0;
    int64_t y = 0;
    if (st == PP_OK)
      st = pp_value_i64(&v, &y);
    pp_value_clear(&v);
    if (st != PP_OK || y != 9) {
      fail(cn, "apply_rtt_us", "pp_apply", st);
      free(t);
      return;
    }
  }
  emit(cn, "apply_rtt_us", median(t, n) * 1e6, "us");
  free(t);
}

static void case_apply_async(const char *cn, pp_pool *pool, const sizes *sz) {
  size_t n = sz->async_tasks;
  pp_result **r = calloc(n, sizeof *r);
  int64_t *xs = malloc(n * sizeof *xs);
  if (!r || !xs) {
    free(r);
    free(xs);
    return;
  }
  for (size_t i = 0; i < n; i++)
    xs[i] = (int64_t)i;
  pp_status st = PP_OK;
  double t0 = now_s();
  for (size_t i = 0; i < n && st == PP_OK; i++) {
    pp_bytes arg = {&xs[i], sizeof xs[i]};
    st = pp_apply_async(pool, "square", &arg, 1, NULL, &r[i]);
  }
  for (size_t i = 0; i < n && st == PP_OK; i++) {
    int64_t y;
    st = pp_result_get(r[i], -1);
    if (st == PP_OK)
      st = pp_result_i64(r[i], &y);
    if (st == PP_OK && y != xs[i] * xs[i])
      st = PP_EPROTOCOL;
  }
  double dt = now_s() - t0;
  for (size_t i = 0; i < n; i++)
    pp_result_free(r[i]);
  free(r);
  free(xs);
  if (st != PP_OK)
    fail(cn, "apply_async_per_s", "apply_async/get", st);
  else
    emit(cn, "apply_async_per_s", (double)n / dt, "items/s");
}

/* A map of `task` (a square) over int64 records; checks every result.
 * Both arrays are written before the clock starts: memory the caller hands
 * to the map is the caller's to prepare (in the first context of the
 * process, a fresh output array from glibc's heap cost up to 1,935 page
 * faults inside a timed map), and a result left unwritten keeps the -1
 * that no square is. */
static void map_records_case(const char *cn, const char *name, pp_pool *pool,
                             const char *task, size_t n, size_t chunksize) {
  int64_t *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
  if (!in || !out) {
    free(in);
    free(out);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    in[i] = (int64_t)i;
    out[i] = -1;
  }
  pp_records rec = {in, n, sizeof *in, out, sizeof *out, NULL, 0};
  pp_result *r = NULL;
  double t0 = now_s();
  pp_status st = pp_map_records(pool, task, &rec, chunksize, &r);
  double dt = now_s() - t0;
  pp_result_free(r);
  for (size_t i = 0; st == PP_OK && i < n; i++)
    if (out[i] != in[i] * in[i])
      st = PP_EPROTOCOL;
  free(in);
  free(out);
  if (st != PP_OK)
    fail(cn, name, "pp_map_records", st);
  else
    emit(cn, name, (double)n / dt, "items/s");
}

/* The imap input: 0, 1, 2, ... generated one at a time, as a Python
 * generator would, never held as a whole. The scheduler thread writes it
 * for every item; the padding keeps it off the cache lines of the
 * consumer's locals next to it on the stack, which it shared before
 * (perf: counter_next stalled on its first load, and the consumer's
 * locked instructions waited on its stores), so that the case measures
 * the pool rather than that accident. A Python generator's frame lives on
 * the heap, away from its consumer's. */
typedef struct counter {
  char before[64];
  int64_t next, end, current;
  char after[64];
} counter;

static pp_status counter_next(void *state, pp_bytes *item) {
  counter *c = state;
  if (c->next >= c->end)
    return PP_EOF;
  c->current = c->next++;
  item->data = &c->current;
  item->len = sizeof c->current;
  return PP_OK;
}

/* The results the imap cases check as they take them: in order for imap,
 * as a sum for imap_unordered. */
typedef struct imap_check {
  int ordered;
  size_t got;
  uint64_t sum, want;
} imap_check;

static inline pp_status check_item(imap_check *k, const pp_value *v) {
  int64_t y = 0;
  pp_status st = v->status == PP_OK ? pp_value_i64(v, &y) : v->status;
  if (st != PP_OK)
    return st;
  if (k->ordered && y != (int64_t)k->got * (int64_t)k->got)
    return PP_EPROTOCOL;
  k->sum += (uint64_t)y;
  k->want += (uint64_t)k->got * (uint64_t)k->got;
  k->got++;
  return PP_OK;
}

/* Every result taken with pp_iter_next(); PP_EOF at the end. */
static pp_status take_each(pp_iter *it, imap_check *k) {
  for (;;) {
    pp_value v;
    pp_status st = pp_iter_next(it, -1, &v);
    if (st == PP_EOF)
      return st;
    st = check_item(k, &v); /* a failure too is an item, and is reported */
    pp_value_clear(&v);
    if (st != PP_OK)
      return st;
  }
}

/* The batch the _many cases take with pp_iter_next_many(). */
#define IMAP_BATCH 256

/* Every result taken in batches with pp_iter_next_many(); PP_EOF at the
 * end. */
static pp_status take_batches(pp_iter *it, imap_check *k) {
  for (;;) {
    pp_value v[IMAP_BATCH];
    size_t got;
    pp_status st = pp_iter_next_many(it, -1, v, IMAP_BATCH, &got);
    if (st != PP_OK) { /* PP_EOF, or the input's error in v[0] */
      pp_value_clear(&v[0]);
      return st;
    }
    for (size_t i = 0; st == PP_OK && i < got; i++)
      st = check_item(k, &v[i]);
    pp_value_clear_many(v, got);
    if (st != PP_OK)
      return st;
  }
}

/* Runs one imap of square over n generated items, each result taken with
 * pp_iter_next() or, with `many`, in batches with pp_iter_next_many(). */
static pp_status run_imap(pp_pool *pool, int ordered, int many, size_t n,
                          size_t chunksize) {
  counter c = {{0}, 0, (int64_t)n, 0, {0}};
  pp_iter *it;
  pp_status st =
      ordered
          ? pp_imap(pool, "square", counter_next, &c, chunksize, &it)
          : pp_imap_unordered(pool, "square", counter_next, &c, chunksize, &it);
  if (st != PP_OK)
    return st;
  imap_check k = {ordered, 0, 0, 0};
  st = many ? take_batches(it, &k) : take_each(it, &k);
  pp_iter_free(it);
  if (st == PP_EOF)
    st = k.got == n && k.sum == k.want ? PP_OK : PP_EPROTOCOL;
  return st;
}

static void case_imap(const char *cn, pp_pool *pool, int ordered, int many,
                      const sizes *sz) {
  static const char *const names[2][2] = {
      {"imap_unordered_c1000_per_s", "imap_unordered_many_c1000_per_s"},
      {"imap_c1000_per_s", "imap_many_c1000_per_s"}};
  const char *name = names[ordered][many];
  double t0 = now_s();
  pp_status st = run_imap(pool, ordered, many, sz->imap_items, 1000);
  double dt = now_s() - t0;
  if (st != PP_OK)
    fail(cn, name, ordered ? "pp_imap" : "pp_imap_unordered", st);
  else
    emit(cn, name, (double)sz->imap_items / dt, "items/s");
}

/* imap at chunk size 1, the default of Python's imap: what a chunk costs
 * the pool, as each holds one small item. */
static void case_imap_c1(const char *cn, pp_pool *pool, const sizes *sz) {
  double t0 = now_s();
  pp_status st = run_imap(pool, 1, 0, sz->imap_c1_items, 1);
  double dt = now_s() - t0;
  if (st != PP_OK)
    fail(cn, "imap_c1_per_s", "pp_imap", st);
  else
    emit(cn, "imap_c1_per_s", (double)sz->imap_c1_items / dt, "items/s");
}

/* Large buffers both ways: identity over 4 MiB buffers, one per chunk. */
static void case_payload(const char *cn, pp_pool *pool, const sizes *sz) {
  size_t n = sz->payload_buffers, len = sz->payload_bytes;
  unsigned char *buf = malloc(len);
  pp_bytes *items = calloc(n, sizeof *items);
  if (!buf || !items) {
    free(buf);
    free(items);
    return;
  }
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char)(i * 31u);
  /* One buffer, passed n times: what is measured is moving the bytes, not
   * the caller filling them. */
  for (size_t i = 0; i < n; i++)
    items[i] = (pp_bytes){buf, len};
  pp_result *r = NULL;
  double t0 = now_s();
  pp_status st = pp_map(pool, "identity", items, n, 1, &r);
  double dt = now_s() - t0;
  for (size_t i = 0; st == PP_OK && i < n; i++) {
    pp_bytes out;
    st = pp_result_item(r, i, &out);
    if (st == PP_OK && (out.len != len || memcmp(out.data, buf, len) != 0))
      st = PP_EPROTOCOL;
  }
  pp_result_free(r);
  free(buf);
  free(items);
  if (st != PP_OK)
    fail(cn, "payload_roundtrip_MiB_per_s", "pp_map", st);
  else
    emit(cn, "payload_roundtrip_MiB_per_s",
         2.0 * (double)n * (double)len / MIB / dt, "MiB/s");
}

/* Loop count for ~1 ms of spin(), found once: double until a call takes
 * over 1 ms, then scale, then keep the fastest of a few timings (the least
 * disturbed by the machine's other work). */
static int64_t g_spin_loops;

static void calibrate_spin(void) {
  int64_t loops = 1000;
  volatile uint64_t sink;
  for (;;) {
    double t0 = now_s();
    sink = spin(loops);
    double dt = now_s() - t0;
    if (dt > 1e-3 || loops > ((int64_t)1 << 40)) {
      double best = dt;
      for (int i = 0; i < 5; i++) {
        t0 = now_s();
        sink = spin(loops);
        dt = now_s() - t0;
        if (dt < best)
          best = dt;
      }
      g_spin_loops = (int64_t)((double)loops * 1e-3 / best);
      break;
    }
    loops *= 2;
  }
  (void)sink;
}

/* Serial time over pool time for the same n calls; 0 on failure. */
static double cpu_once(pp_pool *pool, const int64_t *in, int64_t *out, size_t n,
                       pp_status *st) {
  volatile uint64_t sink = 0;
  double t0 = now_s();
  for (size_t i = 0; i < n; i++)
    sink += spin(in[i]);
  double serial = now_s() - t0;
  pp_records rec = {in, n, sizeof *in, out, sizeof *out, NULL, 0};
  pp_result *r = NULL;
  t0 = now_s();
  *st = pp_map_records(pool, "spin", &rec, 0, &r);
  double pooled = now_s() - t0;
  pp_result_free(r);
  (void)sink; /* there so that the serial loop is not optimised away */
  uint64_t expect = spin(g_spin_loops);
  for (size_t i = 0; *st == PP_OK && i < n; i++)
    if ((uint64_t)out[i] != expect)
      *st = PP_EPROTOCOL;
  return *st == PP_OK ? serial / pooled : 0;
}

/* The median of a few runs: one run is at the mercy of whatever else the
 * machine does for a moment, and the target sits close to the limit. */
static void case_cpu(const char *cn, pp_pool *pool, const sizes *sz) {
  size_t n = sz->cpu_items;
  int64_t *in = malloc(n * sizeof *in), *out = calloc(n, sizeof *out);
  if (!in || !out) {
    free(in);
    free(out);
    return;
  }
  for (size_t i = 0; i < n; i++)
    in[i] = g_spin_loops;
  double ratio[3];
  pp_status st = PP_OK;
  size_t runs = sz->cpu_runs;
  /* Warm up: a worker's first calls fault in its pages. */
  pp_records warm = {in, 2 * PROCESSES, sizeof *in, out, sizeof *out, NULL, 0};
  pp_result *r = NULL;
  st = pp_map_records(pool, "spin", &warm, 1, &r);
  pp_result_free(r);
  for (size_t i = 0; i < runs && st == PP_OK; i++)
    ratio[i] = cpu_once(pool, in, out, n, &st);
  free(in);
  free(out);
  if (st != PP_OK)
    fail(cn, "cpu_speedup", "pp_map_records", st);
  else
    emit(cn, "cpu_speedup", median(ratio, runs), "x");
}

/* Peak RSS of imap over `items` generated items, in a fresh process each:
 * the figure is the lifetime peak of the process. */
static void case_rss(const char *argv0, const char *cn, const char *name,
                     size_t items, size_t chunksize) {
  char n_arg[32], c_arg[32];
  snprintf(n_arg, sizeof n_arg, "%zu", items);
  snprintf(c_arg, sizeof c_arg, "%zu", chunksize);
  char *args[] = {NULL,       "--rss-child", n_arg, c_arg,
                  (char *)cn, (char *)name,  NULL};
  int rc = run_self(argv0, args);
  if (rc != 0) {
    fprintf(stderr, "pp_bench: %s/%s: the measuring process failed (%d)\n", cn,
            name, rc);
    g_failures++;
  }
}

/* Start-up in a fresh process: a parent that has run the other cases has
 * touched hundreds of MiB, and fork copies the page tables of all of it, so
 * measured in place the figure grows with whatever ran before. */
static void case_startup_fresh(const char *argv0, const char *cn,
                               const sizes *sz) {
  char reps[32];
  snprintf(reps, sizeof reps, "%zu", sz->startup_reps);
  char *args[] = {NULL, "--startup-child", reps, (char *)cn, NULL};
  int rc = run_self(argv0, args);
  if (rc != 0) {
    fprintf(stderr,
            "pp_bench: %s/startup_ms: the measuring process failed "
            "(%d)\n",
            cn, rc);
    g_failures++;
  }
}

static int startup_child(char **argv) {
  sizes sz = FULL;
  sz.startup_reps = strtoull(argv[0], NULL, 10);
  pp_context ctx;
  if (sz.startup_reps == 0 || pp_context_from_name(argv[1], &ctx) != PP_OK)
    return 2;
  int failures = g_failures;
  case_startup(argv[1], ctx, &sz);
  return g_failures != failures;
}

static int rss_child(char **argv) {
  size_t items = strtoull(argv[0], NULL, 10);
  size_t chunksize = strtoull(argv[1], NULL, 10);
  const char *cn = argv[2], *name = argv[3];
  pp_context ctx;
  pp_pool *pool;
  pp_status st = pp_context_from_name(cn, &ctx);
  if (st == PP_OK)
    st = make_pool(ctx, &pool);
  if (st != PP_OK) {
    fail(cn, name, "pp_pool_create", st);
    return 1;
  }
  double t0 = now_s();
  st = run_imap(pool, 1, 0, items, chunksize);
  double dt = now_s() - t0;
  end_pool(pool);
  if (st != PP_OK) {
    fail(cn, name, "pp_imap", st);
    return 1;
  }
  fprintf(stderr, "pp_bench: %s/%s: %zu items in %.1f s (chunksize %zu)\n", cn,
          name, items, dt, chunksize);
  emit(cn, name, peak_rss_mib(), "MiB");
  return 0;
}

/* ---------------------------------------------------------------------- */

static void case_map_default(const char *cn, pp_pool *pool, const sizes *sz) {
  map_records_case(cn, "map_default_per_s", pool, "square", sz->map_items, 0);
}

/* map_default with the square as a records task. */
static void case_map_task_default(const char *cn, pp_pool *pool,
                                  const sizes *sz) {
  map_records_case(cn, "map_task_default_per_s", pool, "records_square",
                   sz->map_items, 0);
}

static void case_map_chunk1(const char *cn, pp_pool *pool, const sizes *sz) {
  map_records_case(cn, "map_chunk1_per_s", pool, "square", sz->chunk1_items, 1);
}

static void case_imap_ordered(const char *cn, pp_pool *pool, const sizes *sz) {
  case_imap(cn, pool, 1, 0, sz);
}

static void case_imap_unordered(const char *cn, pp_pool *pool,
                                const sizes *sz) {
  case_imap(cn, pool, 0, 0, sz);
}

static void case_imap_many(const char *cn, pp_pool *pool, const sizes *sz) {
  case_imap(cn, pool, 1, 1, sz);
}

static void case_imap_unordered_many(const char *cn, pp_pool *pool,
                                     const sizes *sz) {
  case_imap(cn, pool, 0, 1, sz);
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* A throughput case, as peer_python.py takes it too: after sz->warmups
 * untimed runs, and more until sz->warm_s have passed (first-touch page
 * faults, lazily grown buffers and caches, and the first tens of
 * milliseconds of a new pool, while the kernel learns where to put its
 * busy threads, are not what a program that keeps its pool pays), the
 * median of sz->runs. */
#define WARM_RUNS_MAX 100
static void measure(const char *cn, const char *name, pp_pool *pool,
                    const sizes *sz,
                    void (*run)(const char *, pp_pool *, const sizes *)) {
  g_capture.on = 1;
  g_capture.n = 0;
  double t0 = now_s();
  for (size_t i = 0;
       i < sz->warmups || (i < WARM_RUNS_MAX && now_s() - t0 < sz->warm_s); i++)
    run(cn, pool, sz);
  g_capture.n = 0;
  int failures = g_failures;
  for (size_t i = 0; i < sz->runs; i++)
    run(cn, pool, sz);
  g_capture.on = 0;
  if (g_failures != failures || g_capture.n == 0)
    return; /* said on stderr already */
  qsort(g_capture.values, g_capture.n, sizeof g_capture.values[0], by_value);
  emit(cn, name, g_capture.values[g_capture.n / 2], g_capture.unit);
}

/* The cases run in one pool, in this order. */
static const struct {
  const char *name;
  void (*run)(const char *, pp_pool *, const sizes *);
  int throughput; /* else the case takes its own median */
} STEADY[] = {
    {"apply_rtt_us", case_apply_rtt, 0},
    {"apply_async_per_s", case_apply_async, 1},
    {"map_default_per_s", case_map_default, 1},
    {"map_task_default_per_s", case_map_task_default, 1},
    {"map_chunk1_per_s", case_map_chunk1, 1},
    {"imap_c1000_per_s", case_imap_ordered, 1},
    {"imap_unordered_c1000_per_s", case_imap_unordered, 1},
    {"imap_many_c1000_per_s", case_imap_many, 1},
    {"imap_unordered_many_c1000_per_s", case_imap_unordered_many, 1},
    {"imap_c1_per_s", case_imap_c1, 1},
    {"payload_roundtrip_MiB_per_s", case_payload, 1},
    {"cpu_speedup", case_cpu, 0},
};

/* The cases run in processes of their own, after the pool's. */
static const char *const FRESH[] = {"startup_ms", "imap_peak_rss_MiB_small",
                                    "imap_peak_rss_MiB_large"};

static void steady_cases(const char *cn, pp_pool *pool, const sizes *sz) {
  for (size_t i = 0; i < sizeof STEADY / sizeof STEADY[0]; i++) {
    if (!wanted(STEADY[i].name))
      continue;
    if (STEADY[i].throughput)
      measure(cn, STEADY[i].name, pool, sz, STEADY[i].run);
    else
      STEADY[i].run(cn, pool, sz);
  }
}

/* --list: every case's name, one per line, in the order they run. */
static int list_cases(void) {
  for (size_t i = 0; i < sizeof STEADY / sizeof STEADY[0]; i++)
    puts(STEADY[i].name);
  for (size_t i = 0; i < sizeof FRESH / sizeof FRESH[0]; i++)
    puts(FRESH[i]);
  return 0;
}

static void run_context(const char *argv0, const char *cn, const sizes *sz) {
  pp_context ctx;
  pp_status st = pp_context_from_name(cn, &ctx);
  pp_pool *pool = NULL;
  if (st == PP_OK)
    st = make_pool(ctx, &pool);
  if (st == PP_ENOTSUP || st == PP_EINVAL) {
    fprintf(stderr, "pp_bench: context %s: %s; skipped\n", cn, pp_strerror(st));
    return;
  }
  if (st != PP_OK) {
    fail(cn, "-", "pp_pool_create", st);
    return;
  }
  /* One pool for the steady-state cases, as a program would keep one.
   * --repeat runs them again in the same pool, for profiling. */
  for (int rep = 0; rep < g_repeat; rep++)
    steady_cases(cn, pool, sz);
  end_pool(pool);
  if (wanted("startup_ms"))
    case_startup_fresh(argv0, cn, sz);
  if (wanted("imap_peak_rss_MiB_small"))
    case_rss(argv0, cn, "imap_peak_rss_MiB_small", sz->rss_small,
             sz->rss_chunksize);
  if (wanted("imap_peak_rss_MiB_large"))
    case_rss(argv0, cn, "imap_peak_rss_MiB_large", sz->rss_large,
             sz->rss_chunksize);
}

static int usage(void) {
  fprintf(stderr, "usage: pp_bench [--quick] [--ctx NAME] [--case NAME] "
                  "[--repeat N] | --list\n");
  return 2;
}

int main(int argc, char **argv) {
  if (pp_register("noop", task_noop) != PP_OK ||
      pp_register("square", task_square) != PP_OK ||
      pp_register_records("records_square", records_square) != PP_OK ||
      pp_register("identity", task_identity) != PP_OK ||
      pp_register("spin", task_spin) != PP_OK)
    return 1;
  pp_worker_main(argc, argv); /* in a worker: never returns */

  if (argc == 6 && strcmp(argv[1], "--rss-child") == 0)
    return rss_child(argv + 2);
  if (argc == 4 && strcmp(argv[1], "--startup-child") == 0)
    return startup_child(argv + 2);
  if (argc == 2 && strcmp(argv[1], "--list") == 0)
    return list_cases();

  const sizes *sz = &FULL;
  const char *only_ctx = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      sz = &QUICK;
    else if (strcmp(argv[i], "--ctx") == 0 && i + 1 < argc)
      only_ctx = argv[++i];
    else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc)
      g_only_case = argv[++i];
    else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc &&
             (g_repeat = atoi(argv[++i])) > 0)
      continue;
    else
      return usage();
  }
  if (wanted("cpu_speedup")) {
    calibrate_spin();
    fprintf(stderr, "pp_bench: spin: %" PRId64 " loops for ~1 ms\n",
            g_spin_loops);
  }
  if (wanted("imap_peak_rss_MiB")) /* the sizes, for the report's note */
    fprintf(stderr,
            "pp_bench: imap_peak_rss_MiB: small %zu, large %zu items, "
            "chunksize %zu\n",
            sz->rss_small, sz->rss_large, sz->rss_chunksize);
  static const char *const contexts[] = {"fork", "spawn", "forkserver"};
  for (size_t i = 0; i < sizeof contexts / sizeof *contexts; i++)
    if (!only_ctx || strcmp(only_ctx, contexts[i]) == 0)
      run_context(argv[0], contexts[i], sz);
  return g_failures ? 1 : 0;
}
