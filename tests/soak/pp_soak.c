/* pp_soak: a long, random, many-threaded run against the pool, to find what
 * the suites' fixed scenarios miss: races between calls from several
 * threads, worker deaths, time limits, cancels and pools made and ended
 * while other pools work. scripts/soak.sh runs it; CI, for a few seconds
 * per context, under ThreadSanitizer and AddressSanitizer.
 *
 * Usage: pp_soak [--seconds S] [--threads T] [--seed N] [--ctx NAME]...
 *                [--hang S]
 *   --seconds  how long each context is driven (default 20)
 *   --threads  threads driving the pools at once (default 4)
 *   --seed     the first thread's random seed (default: from the clock);
 *              printed, so that a failing run can be repeated (the threads
 *              still interleave as they will)
 *   --ctx      a start context to drive; repeat it for several (default:
 *              every one this platform has)
 *   --hang     seconds without a finished operation that count as a hang
 *              (default 120)
 *
 * Per context, two pools are shared by every thread: one plain, one whose
 * workers are replaced every 5 chunks and whose shared memory is the
 * smallest (so big messages fall back to the channel). Each thread runs
 * random operations until the time is up: blocking and asynchronous calls
 * (some of whose tasks fail, kill their worker or outrun a time limit),
 * maps of values and of records, imaps taken one by one or by the batch
 * and sometimes dropped half-way (some with an input that now and then
 * has no item yet), cancels, big payloads, and pools of its
 * own that it closes or terminates. Every outcome is checked: the value, or
 * the status the task's kind must give, and each callback run exactly once.
 *
 * Exit status: 0 when every check held; 1 when one failed (each failure is
 * printed, the first 20 in full); 2 when no operation finished for --hang
 * seconds (what each thread was doing is printed; nothing is cleaned up).
 */
#include <apr_general.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "procpool.h"
#include "tasks.h"

#define MAX_THREADS 32
#define FAILURES_SHOWN 20
/* Long enough for any one operation on a loaded machine, under a
 * sanitizer: a wait that outlasts it is a failure, not a slow run. */
#define WAIT_S 120.0

/* ---- the soak's own tasks ---- */

/* Ends its worker with exit code 3, as a crash would: the call fails with
 * PP_EWORKERDIED and the worker is replaced. */
static pp_status die(pp_call *call) {
  (void)call;
  _Exit(3);
}

/* ---- random numbers: one state per thread ---- */

static uint32_t next_random(uint64_t *state) {
  *state = *state * 6364136223846793005u + 1442695040888963407u;
  return (uint32_t)(*state >> 33);
}

/* A number in [lo, hi]. */
static uint32_t pick(uint64_t *state, uint32_t lo, uint32_t hi) {
  return lo + next_random(state) % (hi - lo + 1);
}

/* ---- checks and failures ---- */

static apr_thread_mutex_t *print_lock;
static atomic_uint failures;

static void failed(const char *op, const char *format, ...) {
  unsigned n = atomic_fetch_add(&failures, 1);
  if (n >= FAILURES_SHOWN)
    return;
  va_list ap;
  va_start(ap, format);
  apr_thread_mutex_lock(print_lock);
  fprintf(stderr, "pp_soak: FAILED in %s: ", op);
  vfprintf(stderr, format, ap);
  fputc('\n', stderr);
  fflush(stderr);
  apr_thread_mutex_unlock(print_lock);
  va_end(ap);
}

/* Checks a status against the one expected; 1 when it matched. */
static int expect(const char *op, pp_status got, pp_status want,
                  const char *message) {
  if (got == want)
    return 1;
  failed(op, "%s (%s) where %s was due", pp_strerror(got),
         message ? message : "no message", pp_strerror(want));
  return 0;
}

/* ---- what the threads share ---- */

typedef struct soak {
  pp_context ctx;
  pp_pool *plain;   /* default options */
  pp_pool *recycle; /* maxtasksperchild 5, the smallest shared memory */
  apr_time_t until;
} soak;

typedef struct driver {
  soak *s;
  uint64_t rng;
  atomic_uint ops;
  _Atomic(const char *) doing; /* the operation now running, for a hang */
} driver;

static atomic_uint progress;

static pp_pool *some_pool(driver *d) {
  return next_random(&d->rng) % 3 ? d->s->plain : d->s->recycle;
}

static pp_bytes i64_arg(const int64_t *x) {
  pp_bytes b = {x, sizeof *x};
  return b;
}

/* ---- operations ---- */

static void op_apply(driver *d) {
  int64_t x = (int64_t)pick(&d->rng, 0, 3000000);
  pp_bytes arg = i64_arg(&x);
  pp_value v = {0};
  pp_status st = pp_apply(some_pool(d), "square", &arg, 1, &v);
  int64_t y = -1;
  if (expect("apply", st, PP_OK, v.error) &&
      (pp_value_i64(&v, &y) != PP_OK || y != x * x))
    failed("apply", "square(%" PRId64 ") gave %" PRId64, x, y);
  pp_value_clear(&v);
}

/* What an asynchronous call was, and which of its callbacks ran. */
enum kind { SQUARE, FAIL, DIE, OVERDUE, NKINDS };
static const char *const kind_task[NKINDS] = {"square", "fail", "die",
                                              "sleep_ms"};
static const pp_status kind_status[NKINDS] = {PP_OK, PP_ETASK, PP_EWORKERDIED,
                                              PP_ETIMELIMIT};

typedef struct tracked {
  enum kind kind;
  int64_t x;
  pp_result *r;
  atomic_uint ok_calls, error_calls; /* set on the scheduler thread */
} tracked;

static void on_ok(pp_result *r, void *data) {
  (void)r;
  atomic_fetch_add(&((tracked *)data)->ok_calls, 1);
}

static void on_error(pp_result *r, void *data) {
  (void)r;
  atomic_fetch_add(&((tracked *)data)->error_calls, 1);
}

static void op_async_mix(driver *d) {
  enum { MOST = 48 };
  tracked t[MOST];
  size_t n = pick(&d->rng, 1, MOST), submitted = 0;
  pp_pool *pool = some_pool(d);
  for (size_t i = 0; i < n; i++) {
    uint32_t roll = pick(&d->rng, 0, 999);
    t[i].kind = roll < 5     ? OVERDUE
                : roll < 25  ? DIE
                : roll < 150 ? FAIL
                             : SQUARE;
    t[i].x = t[i].kind == OVERDUE ? 10000 : (int64_t)pick(&d->rng, 0, 100000);
    atomic_init(&t[i].ok_calls, 0);
    atomic_init(&t[i].error_calls, 0);
    pp_callbacks cb = {on_ok, on_error, &t[i], 0};
    if (t[i].kind == OVERDUE)
      cb.time_limit = 0.05;
    pp_bytes arg = i64_arg(&t[i].x);
    pp_status st =
        pp_apply_async(pool, kind_task[t[i].kind], &arg, 1, &cb, &t[i].r);
    if (!expect("apply_async", st, PP_OK, NULL))
      break;
    submitted++;
  }
  for (size_t i = 0; i < submitted; i++) {
    pp_status st = pp_result_get(t[i].r, WAIT_S);
    /* Reported below; the callbacks still to come write into t[], so the
     * wait goes on (the watchdog tells a hang). */
    if (st == PP_ETIMEOUT)
      pp_result_wait(t[i].r, -1);
    if (expect(kind_task[t[i].kind], st, kind_status[t[i].kind],
               pp_result_error(t[i].r)) &&
        t[i].kind == SQUARE) {
      int64_t y = -1;
      if (pp_result_i64(t[i].r, &y) != PP_OK || y != t[i].x * t[i].x)
        failed("apply_async", "square(%" PRId64 ") gave %" PRId64, t[i].x, y);
    }
    /* Callbacks run before the result is ready: their counts are final. */
    unsigned oks = atomic_load(&t[i].ok_calls);
    unsigned errors = atomic_load(&t[i].error_calls);
    if (st != PP_ETIMEOUT && (oks != (st == PP_OK) || errors != (st != PP_OK)))
      failed("apply_async", "%s: callback ran %u times, error callback %u",
             kind_task[t[i].kind], oks, errors);
    pp_result_free(t[i].r);
  }
}

static void op_map(driver *d) {
  size_t n = pick(&d->rng, 0, 3000);
  size_t chunksize = pick(&d->rng, 0, 40);
  /* fail_on fails its item TASK_FAIL_ON_ITEM and squares the others. */
  int failing = pick(&d->rng, 0, 9) == 0;
  int64_t *xs = malloc((n + 1) * sizeof *xs);
  pp_bytes *items = malloc((n + 1) * sizeof *items);
  if (!xs || !items) {
    free(xs);
    free(items);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    xs[i] = (int64_t)i;
    items[i] = i64_arg(&xs[i]);
  }
  pp_result *r = NULL;
  pp_status st = pp_map(some_pool(d), failing ? "fail_on" : "square", items, n,
                        chunksize, &r);
  int fails = failing && n > TASK_FAIL_ON_ITEM;
  if (expect("map", st, fails ? PP_ETASK : PP_OK,
             r ? pp_result_error(r) : NULL)) {
    if (pp_result_count(r) != n)
      failed("map", "%zu items in, %zu out", n, pp_result_count(r));
    for (size_t i = 0; i < n && i < pp_result_count(r); i++) {
      int64_t y = -1;
      pp_status is = pp_result_item_i64(r, i, &y);
      int bad_item = fails && i == TASK_FAIL_ON_ITEM;
      if (bad_item ? is != PP_ETASK : (is != PP_OK || y != xs[i] * xs[i])) {
        failed("map", "item %zu: %s, %" PRId64, i, pp_strerror(is), y);
        break;
      }
    }
  }
  pp_result_free(r);
  free(items);
  free(xs);
}

static void op_records(driver *d) {
  size_t n = pick(&d->rng, 0, 200000);
  int64_t *in = malloc((n + 1) * sizeof *in);
  int64_t *out = malloc((n + 1) * sizeof *out);
  if (!in || !out) {
    free(in);
    free(out);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    in[i] = (int64_t)(i * 7 % 100003);
    out[i] = -1;
  }
  pp_records rec = {in, n, sizeof *in, out, sizeof *out, NULL, 0};
  pp_result *r = NULL;
  pp_status st =
      pp_map_records(some_pool(d), "square", &rec, pick(&d->rng, 0, 5000), &r);
  if (expect("map_records", st, PP_OK, r ? pp_result_error(r) : NULL))
    for (size_t i = 0; i < n; i++)
      if (out[i] != in[i] * in[i]) {
        failed("map_records", "record %zu: %" PRId64 " -> %" PRId64, i, in[i],
               out[i]);
        break;
      }
  pp_result_free(r);
  free(in);
  free(out);
}

typedef struct counting {
  int64_t next, n;
  int64_t item; /* the last one handed out, copied before the next call */
  /* An input that now and then has no item yet (PP_ENOTREADY): every
   * `stall_every`th call, 0 for never. It says it has one again itself
   * (`self_kick`, once it knows its iterator) or through its reader, who
   * sees `stalled`. */
  unsigned stall_every, calls;
  int self_kick;
  _Atomic(pp_iter *) it;
  atomic_int stalled;
} counting;

static pp_status count_up(void *state, pp_bytes *item) {
  counting *c = state;
  if (c->stall_every && ++c->calls % c->stall_every == 0) {
    pp_iter *it = atomic_load(&c->it);
    if (c->self_kick && it)
      pp_iter_input_ready(it);
    else
      atomic_store(&c->stalled, 1);
    return PP_ENOTREADY;
  }
  if (c->next >= c->n)
    return PP_EOF;
  c->item = c->next++;
  item->data = &c->item;
  item->len = sizeof c->item;
  return PP_OK;
}

static void op_imap(driver *d) {
  counting input;
  memset(&input, 0, sizeof input);
  input.n = (int64_t)pick(&d->rng, 0, 5000);
  if (pick(&d->rng, 0, 2) == 0) {
    input.stall_every = (unsigned)pick(&d->rng, 2, 300);
    input.self_kick = pick(&d->rng, 0, 1);
  }
  atomic_init(&input.it, NULL);
  atomic_init(&input.stalled, 0);
  int ordered = pick(&d->rng, 0, 1);
  int batches = pick(&d->rng, 0, 1);
  /* Sometimes the caller stops reading half-way and drops the iterator. */
  int64_t stop_at = pick(&d->rng, 0, 7) ? INT64_MAX : input.n / 2;
  size_t chunksize = pick(&d->rng, 1, 200);
  pp_iter *it = NULL;
  pp_pool *pool = some_pool(d);
  pp_status st =
      ordered
          ? pp_imap(pool, "square", count_up, &input, chunksize, &it)
          : pp_imap_unordered(pool, "square", count_up, &input, chunksize, &it);
  if (!expect("imap", st, PP_OK, NULL))
    return;
  atomic_store(&input.it, it);
  /* A stalling input's reader waits in short steps, to tell it to go on. */
  double wait_s = input.stall_every ? 0.005 : WAIT_S;
  int64_t got = 0, sum = 0, want_sum = 0;
  for (int64_t i = 0; i < input.n; i++)
    want_sum += i * i;
  pp_value vs[64];
  for (;;) {
    if (got >= stop_at)
      break;
    size_t taken = 0;
    if (atomic_exchange(&input.stalled, 0))
      pp_iter_input_ready(it);
    if (batches) {
      st = pp_iter_next_many(it, wait_s, vs, 64, &taken);
    } else {
      st = pp_iter_next(it, wait_s, &vs[0]);
      taken = st == PP_OK;
    }
    if (st == PP_ETIMEOUT && input.stall_every)
      continue; /* no progress at all is the watchdog's to report */
    if (st != PP_OK) {
      if (st != PP_EOF) {
        expect("imap: next", st, PP_OK, vs[0].error);
        pp_value_clear(&vs[0]);
      }
      break;
    }
    for (size_t k = 0; k < taken; k++) {
      int64_t y = -1;
      pp_status is = pp_value_i64(&vs[k], &y);
      if (is != PP_OK || (ordered && y != got * got)) {
        failed("imap", "item %" PRId64 ": %s, %" PRId64, got, pp_strerror(is),
               y);
        stop_at = got; /* one report is enough */
      }
      sum += y;
      got++;
    }
    pp_value_clear_many(vs, taken);
  }
  if (stop_at == INT64_MAX && (got != input.n || sum != want_sum))
    failed("imap",
           "%" PRId64 " of %" PRId64 " items, sum %" PRId64 " where %" PRId64
           " was due",
           got, input.n, sum, want_sum);
  pp_iter_free(it);
}

static void op_cancel(driver *d) {
  int64_t ms = pick(&d->rng, 0, 30);
  pp_bytes arg = i64_arg(&ms);
  pp_result *r = NULL;
  if (!expect("cancel",
              pp_apply_async(some_pool(d), "sleep_ms", &arg, 1, NULL, &r),
              PP_OK, NULL))
    return;
  if (pick(&d->rng, 0, 1))
    apr_sleep((apr_interval_time_t)pick(&d->rng, 0, 20000));
  pp_status cs = pp_result_cancel(r);
  pp_status st = pp_result_get(r, WAIT_S);
  /* Too late to cancel is no error: the call then ends as it would have. */
  if (st != PP_OK && st != PP_ECANCELLED)
    failed("cancel", "cancel said %s, the call ended with %s (%s)",
           pp_strerror(cs), pp_strerror(st),
           pp_result_error(r) ? pp_result_error(r) : "no message");
  pp_result_free(r);
}

static void op_big_echo(driver *d) {
  size_t len = pick(&d->rng, 0, 4u << 20);
  unsigned char *data = malloc(len + 1);
  if (!data)
    return;
  uint64_t fill = d->rng;
  for (size_t i = 0; i < len; i++)
    data[i] = (unsigned char)next_random(&fill);
  pp_bytes arg = {data, len};
  pp_value v = {0};
  pp_status st = pp_apply(some_pool(d), "echo", &arg, 1, &v);
  if (expect("echo", st, PP_OK, v.error) &&
      (v.len != len || (len && memcmp(v.data, data, len) != 0)))
    failed("echo", "%zu bytes sent, %zu came back %s", len, v.len,
           v.len == len ? "different" : "");
  pp_value_clear(&v);
  free(data);
}

/* A pool of the thread's own, ended while its calls may still run. */
static void op_own_pool(driver *d) {
  enum { MOST = 24 };
  pp_options o;
  pp_options_init(&o);
  o.processes = (int)pick(&d->rng, 1, 3);
  o.context = d->s->ctx;
  o.maxtasksperchild = pick(&d->rng, 0, 1) ? 3 : 0;
  pp_pool *pool = NULL;
  if (!expect("own pool: create", pp_pool_create(&pool, &o), PP_OK, NULL))
    return;
  pp_result *rs[MOST];
  int64_t xs[MOST];
  size_t n = pick(&d->rng, 0, MOST), submitted = 0;
  for (size_t i = 0; i < n; i++) {
    xs[i] = (int64_t)pick(&d->rng, 0, 20);
    pp_bytes arg = i64_arg(&xs[i]);
    if (!expect("own pool: submit",
                pp_apply_async(pool, "sleep_ms", &arg, 1, NULL, &rs[i]), PP_OK,
                NULL))
      break;
    submitted++;
  }
  int terminate = pick(&d->rng, 0, 1);
  expect("own pool: end",
         terminate ? pp_pool_terminate(pool) : pp_pool_close(pool), PP_OK,
         NULL);
  for (size_t i = 0; i < submitted; i++) {
    pp_status st = pp_result_get(rs[i], WAIT_S);
    if (st != PP_OK && !(terminate && st == PP_ETERMINATED))
      failed("own pool", "a call ended with %s (%s) after %s", pp_strerror(st),
             pp_result_error(rs[i]) ? pp_result_error(rs[i]) : "no message",
             terminate ? "terminate" : "close");
    pp_result_free(rs[i]);
  }
  expect("own pool: join", pp_pool_join(pool), PP_OK, NULL);
  pp_pool_destroy(pool);
}

typedef struct op {
  const char *name;
  void (*run)(driver *d);
  unsigned weight;
} op;

static const op ops[] = {
    {"apply", op_apply, 20},      {"async mix", op_async_mix, 20},
    {"map", op_map, 10},          {"map_records", op_records, 6},
    {"imap", op_imap, 12},        {"cancel", op_cancel, 8},
    {"big echo", op_big_echo, 4}, {"own pool", op_own_pool, 3},
};
#define NOPS (sizeof ops / sizeof ops[0])

static const op *pick_op(driver *d) {
  unsigned total = 0;
  for (size_t i = 0; i < NOPS; i++)
    total += ops[i].weight;
  unsigned roll = pick(&d->rng, 0, total - 1);
  for (size_t i = 0;; i++) {
    if (roll < ops[i].weight)
      return &ops[i];
    roll -= ops[i].weight;
  }
}

static void *APR_THREAD_FUNC drive(apr_thread_t *thread, void *arg) {
  driver *d = arg;
  while (apr_time_now() < d->s->until) {
    const op *o = pick_op(d);
    atomic_store(&d->doing, o->name);
    o->run(d);
    atomic_store(&d->doing, NULL);
    atomic_fetch_add(&d->ops, 1);
    atomic_fetch_add(&progress, 1);
  }
  (void)thread;
  return NULL;
}

/* ---- one context ---- */

static pp_pool *shared_pool(pp_context ctx, unsigned long maxtasks,
                            size_t shm) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.context = ctx;
  o.maxtasksperchild = maxtasks;
  o.shared_memory_size = shm;
  pp_pool *pool = NULL;
  pp_status st = pp_pool_create(&pool, &o);
  if (st != PP_OK)
    failed("create", "%s pool: %s", pp_context_name(ctx), pp_strerror(st));
  return pool;
}

/* Waits for the threads, watching that operations keep finishing. Returns
 * only when they are all done; exits the process on a hang. */
static void watch(apr_pool_t *mem, apr_thread_t **threads, driver *drivers,
                  int nthreads, int hang_s) {
  (void)mem;
  unsigned seen = atomic_load(&progress);
  apr_time_t last_change = apr_time_now();
  for (;;) {
    int running = 0;
    for (int i = 0; i < nthreads; i++)
      running += atomic_load(&drivers[i].doing) != NULL ||
                 apr_time_now() < drivers[i].s->until;
    if (!running)
      break;
    apr_sleep(apr_time_from_sec(1) / 4);
    unsigned now = atomic_load(&progress);
    if (now != seen) {
      seen = now;
      last_change = apr_time_now();
    } else if (apr_time_now() - last_change > apr_time_from_sec(hang_s)) {
      fprintf(stderr, "pp_soak: HANG: no operation finished for %d s\n",
              hang_s);
      for (int i = 0; i < nthreads; i++) {
        const char *doing = atomic_load(&drivers[i].doing);
        fprintf(stderr, "  thread %d: %s\n", i,
                doing ? doing : "between operations");
      }
      fflush(stderr);
      _Exit(2);
    }
  }
  for (int i = 0; i < nthreads; i++) {
    apr_status_t rv;
    apr_thread_join(&rv, threads[i]);
  }
}

static int soak_context(apr_pool_t *mem, pp_context ctx, int seconds,
                        int nthreads, uint64_t seed, int hang_s) {
  soak s;
  s.ctx = ctx;
  s.plain = shared_pool(ctx, 0, 0);
  s.recycle = shared_pool(ctx, 5, 64u << 10);
  if (!s.plain || !s.recycle) {
    pp_pool_destroy(s.plain);
    pp_pool_destroy(s.recycle);
    return 1;
  }
  s.until = apr_time_now() + apr_time_from_sec(seconds);
  unsigned failures_before = atomic_load(&failures);
  apr_thread_t *threads[MAX_THREADS];
  driver drivers[MAX_THREADS];
  for (int i = 0; i < nthreads; i++) {
    drivers[i].s = &s;
    drivers[i].rng = seed + (uint64_t)i * 0x9e3779b97f4a7c15u;
    atomic_init(&drivers[i].ops, 0);
    atomic_init(&drivers[i].doing, NULL);
    if (apr_thread_create(&threads[i], NULL, drive, &drivers[i], mem) !=
        APR_SUCCESS) {
      fprintf(stderr, "pp_soak: cannot start a thread\n");
      _Exit(1);
    }
  }
  watch(mem, threads, drivers, nthreads, hang_s);
  unsigned long total = 0;
  for (int i = 0; i < nthreads; i++)
    total += atomic_load(&drivers[i].ops);
  expect("close", pp_pool_close(s.plain), PP_OK, NULL);
  expect("join", pp_pool_join(s.plain), PP_OK, NULL);
  pp_pool_destroy(s.plain);
  pp_pool_destroy(s.recycle); /* terminated: nothing of it is pending */
  unsigned failed_here = atomic_load(&failures) - failures_before;
  printf("pp_soak: %s: %lu operations by %d threads in %d s, %u failed\n",
         pp_context_name(ctx), total, nthreads, seconds, failed_here);
  fflush(stdout);
  return failed_here != 0;
}

static int usage(void) {
  fprintf(stderr, "usage: pp_soak [--seconds S] [--threads T] [--seed N] "
                  "[--ctx NAME]... [--hang S]\n");
  return 2;
}

int main(int argc, char **argv) {
  if (tasks_register() != PP_OK || pp_register("die", die) != PP_OK)
    return 1;
  int wm = pp_worker_main(argc, argv);
  if (wm != 0)
    return wm;
  int seconds = 20, nthreads = 4, hang_s = 120;
  uint64_t seed = (uint64_t)apr_time_now();
  unsigned chosen = 0; /* bit (1 << context) for each --ctx; 0: all */
  /* Options come in pairs: a name and its value. */
  if (argc % 2 == 0)
    return usage();
  for (int a = 1; a < argc; a += 2) {
    const char *v = argv[a + 1];
    pp_context ctx;
    if (strcmp(argv[a], "--seconds") == 0)
      seconds = atoi(v);
    else if (strcmp(argv[a], "--threads") == 0)
      nthreads = atoi(v);
    else if (strcmp(argv[a], "--seed") == 0)
      seed = strtoull(v, NULL, 10);
    else if (strcmp(argv[a], "--hang") == 0)
      hang_s = atoi(v);
    else if (strcmp(argv[a], "--ctx") == 0 &&
             pp_context_from_name(v, &ctx) == PP_OK &&
             ctx != PP_CONTEXT_DEFAULT)
      chosen |= 1u << ctx;
    else
      return usage();
  }
  if (seconds < 1 || nthreads < 1 || nthreads > MAX_THREADS || hang_s < 1)
    return usage();
  apr_pool_t *mem;
  if (apr_initialize() != APR_SUCCESS || apr_pool_create(&mem, NULL) ||
      apr_thread_mutex_create(&print_lock, APR_THREAD_MUTEX_DEFAULT, mem))
    return 1;
  printf("pp_soak: seed %" PRIu64 "\n", seed);
  fflush(stdout);
  int bad = 0;
  const pp_context contexts[] = {PP_CONTEXT_FORK, PP_CONTEXT_SPAWN,
                                 PP_CONTEXT_FORKSERVER};
  for (size_t c = 0; c < sizeof contexts / sizeof contexts[0]; c++) {
    if (chosen && !(chosen & (1u << contexts[c])))
      continue;
    pp_pool *probe = NULL;
    pp_options o;
    pp_options_init(&o);
    o.processes = 1;
    o.context = contexts[c];
    if (pp_pool_create(&probe, &o) == PP_ENOTSUP)
      continue; /* a context this platform does not have */
    pp_pool_destroy(probe);
    bad |= soak_context(mem, contexts[c], seconds, nthreads, seed, hang_s);
  }
  apr_pool_destroy(mem);
  apr_terminate();
  return bad;
}
