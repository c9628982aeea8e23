/* Suite "reliability": a worker that dies never hangs the pool and never
   loses a result; descriptors and processes do not leak across many pools;
   workers do not outlive their pool's owner. */
#ifndef _WIN32
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "internal.h" /* pp__call_send_raw: a worker that misbehaves */
#include "procpool.h"
#include "suites.h"
#include "tasks.h"
#include "util.h"

#ifndef _WIN32
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

/* How the "die" task ends its worker. */
enum {
  DIE_SIGKILL = 1,
  DIE_ABORT,
  DIE_NULL,
  DIE_EXIT3,
  DIE_EXIT_BAD_LAUNCH,
  DIE_EXIT_RECYCLE,
  DIE_EXIT_LAUNCHER_SETUP
};

static pp_status die(pp_call *call) {
  int64_t how = 0;
  if (pp_call_arg_i64(call, 0, &how) != PP_OK)
    return pp_call_fail(call, "die: needs an int64");
  switch (how) {
#ifndef _WIN32
  case DIE_SIGKILL:
    raise(SIGKILL);
    break;
#endif
  case DIE_ABORT:
    abort();
  case DIE_NULL: {
    volatile int *volatile p = NULL;
    *p = 1;
    break;
  }
  case DIE_EXIT3:
    exit(3);
  case DIE_EXIT_BAD_LAUNCH:
    exit(PP__EXIT_BAD_LAUNCH);
  case DIE_EXIT_RECYCLE:
    exit(PP__EXIT_RECYCLE);
  case DIE_EXIT_LAUNCHER_SETUP:
    exit(PP__EXIT_LAUNCHER_SETUP);
  default:
    break;
  }
  return pp_call_fail(call, "die: unknown way %d", (int)how);
}

/* x * x, except that every item with x % 100 == 99 kills its worker. */
static pp_status square_or_die(pp_call *call) {
  int64_t x = 0;
  if (pp_call_arg_i64(call, 0, &x) != PP_OK)
    return pp_call_fail(call, "square_or_die: needs an int64");
  if (x % 100 == 99)
    exit(9);
  return pp_call_return_i64(call, x * x);
}

/* How the "garbage" task breaks the protocol. */
enum {
  BAD_MAGIC = 1,
  BAD_VERSION,
  BAD_LENGTH,
  TRUNCATED,
  STRAY_PUT,
  /* well-formed frames out of their place */
  READY_AGAIN,
  PROOF_AGAIN,
  INIT_FAILED_LATE,
  PARENT_FRAME,
  /* pieces of an answer (PP__FRAME_MORE) out of their place */
  MORE_STRAY,    /* a piece for no chunk it was sent */
  MORE_ON_READY, /* the flag on a frame that answers nothing */
  MORE_MIXED,    /* a piece of RESULTS, then the last piece as VALUES */
  MORE_THEN_DIE  /* a piece, then the worker dies mid-answer */
};

static void put_header(unsigned char *h, unsigned version, unsigned type,
                       uint32_t len) {
  static const unsigned char magic[4] = {'P', 'P', 'F', '1'};
  memcpy(h, magic, 4);
  h[4] = (unsigned char)version;
  h[5] = (unsigned char)type;
  h[6] = h[7] = 0;
  for (int i = 0; i < 4; i++)
    h[8 + i] = (unsigned char)(len >> (8 * i));
  memset(h + 12, 0, 8);
}

/* A header with flags and an id, for the pieces of an answer. */
static void put_piece(unsigned char *h, unsigned type, unsigned flags,
                      uint32_t len, uint64_t id) {
  put_header(h, PP__WIRE_VERSION, type, len);
  h[6] = (unsigned char)flags;
  for (int i = 0; i < 8; i++)
    h[12 + i] = (unsigned char)(id >> (8 * i));
}

/* Writes a malformed frame onto its own channel, as a broken or hostile
 * worker would. */
static pp_status garbage(pp_call *call) {
  int64_t how = 0;
  unsigned char h[PP__WIRE_HEADER_SIZE + PP__NONCE_SIZE];
  memset(h, 'X', sizeof h);
  if (pp_call_arg_i64(call, 0, &how) != PP_OK)
    return pp_call_fail(call, "garbage: needs an int64");
  size_t len = PP__WIRE_HEADER_SIZE;
  if (how == BAD_VERSION) {
    put_header(h, 99, PP__F_RESULTS, 0);
  } else if (how == BAD_LENGTH) {
    put_header(h, PP__WIRE_VERSION, PP__F_RESULTS, 0xFFFFFFF0u);
  } else if (how == TRUNCATED) {
    put_header(h, PP__WIRE_VERSION, PP__F_RESULTS, 100);
    len += 10;
  } else if (how == STRAY_PUT) { /* the answer to a records chunk in place */
    put_header(h, PP__WIRE_VERSION, PP__F_RECORDS_PUT, 0);
  } else if (how == READY_AGAIN) { /* no segment, no parent's memory */
    put_header(h, PP__WIRE_VERSION, PP__F_READY, 2);
    h[len] = h[len + 1] = 0;
    len += 2;
  } else if (how == PROOF_AGAIN) { /* a proof's size, of nothing */
    put_header(h, PP__WIRE_VERSION, PP__F_PROOF, PP__NONCE_SIZE);
    len += PP__NONCE_SIZE;
  } else if (how == INIT_FAILED_LATE) { /* status PP_ETASK, no message */
    put_header(h, PP__WIRE_VERSION, PP__F_INIT_FAILED, 5);
    memset(h + len, 0, 5);
    h[len] = PP_ETASK;
    len += 5;
  } else if (how == PARENT_FRAME) { /* CALLS goes the other way */
    put_header(h, PP__WIRE_VERSION, PP__F_CALLS, 0);
  } else if (how >= MORE_STRAY) {
    /* The chunk's id, from the test: the first piece of its answer. */
    int64_t id = 0;
    if (how != MORE_STRAY && pp_call_arg_i64(call, 1, &id) != PP_OK)
      return pp_call_fail(call, "garbage: needs the chunk's id");
    put_piece(h, how == MORE_ON_READY ? PP__F_READY : PP__F_RESULTS,
              PP__FRAME_MORE, 4, (uint64_t)id);
    memset(h + len, 0, 4); /* the start of a RESULTS: u32 n */
    h[len] = 1;
    len += 4;
    if (how == MORE_MIXED) {
      /* The last piece, as another type: one value of 1 byte. */
      put_piece(h + len, PP__F_VALUES, 0, 6, (uint64_t)id);
      memset(h + len + PP__WIRE_HEADER_SIZE, 0, 6);
      h[len + PP__WIRE_HEADER_SIZE + 4] = 1;
      len += PP__WIRE_HEADER_SIZE + 6;
    }
  }
  pp__call_send_raw(call, h, len);
  if (how == TRUNCATED || how == MORE_THEN_DIE)
    exit(0);
  return pp_call_return_i64(call, 1);
}

/* Allocates and touches the given number of MiB and keeps them (a worker
 * that grows), then returns its pid. */
static void *volatile hoard; /* volatile: the memory must really be used */
static pp_status hog(pp_call *call) {
  int64_t mib = 0;
  if (pp_call_arg_i64(call, 0, &mib) != PP_OK || mib <= 0)
    return pp_call_fail(call, "hog: needs a positive int64");
  size_t n = (size_t)mib << 20;
  char *p = malloc(n);
  if (!p)
    return pp_call_fail(call, "hog: out of memory");
  memset(p, 1, n);
  hoard = p;
  return pp_call_return_i64(call, tu_self_pid());
}

#ifndef _WIN32
/* Argument `i` of a call, a path, into `buf` with its NUL; 0 when there
 * is none or it does not fit. */
static int path_arg(pp_call *call, size_t i, char *buf, size_t cap) {
  pp_bytes path = {NULL, 0};
  if (pp_call_arg(call, i, &path) != PP_OK || path.len >= cap)
    return 0;
  memcpy(buf, path.data, path.len);
  buf[path.len] = '\0';
  return 1;
}

/* "on_term": writes a marker file when SIGTERM comes, then exits. */
static char term_marker[256];
static void on_sigterm(int sig) {
  (void)sig;
  int fd = open(term_marker, O_WRONLY | O_CREAT, 0600);
  if (fd >= 0)
    close(fd);
  _exit(0);
}

/* Sleeps 10 s; argument 1: cleans up on SIGTERM (marker file named by
 * argument 2), 0: ignores SIGTERM. */
static pp_status slow_with_term(pp_call *call) {
  int64_t mode = 0;
  if (pp_call_arg_i64(call, 0, &mode) != PP_OK ||
      !path_arg(call, 1, term_marker, sizeof term_marker))
    return pp_call_fail(call, "slow_with_term: needs (int64, path)");
  signal(SIGTERM, mode ? on_sigterm : SIG_IGN);
  tu_sleep_ms(10000);
  return pp_call_return_i64(call, 0);
}

/* A thread that takes the worker's stdout lock and keeps it. */
static void *keep_stdout(void *arg) {
  (void)arg;
  flockfile(stdout);
  for (;;)
    pause();
  return NULL;
}

/* Leaves a thread holding the worker's stdout lock, so that the worker,
 * told to leave, blocks in its last flush and never exits by itself. */
static pp_status hold_stdout(pp_call *call) {
  pthread_t t;
  if (pthread_create(&t, NULL, keep_stdout, NULL) != 0)
    return pp_call_fail(call, "hold_stdout: no thread");
  /* Answered only once the thread holds the lock. */
  while (ftrylockfile(stdout) == 0) {
    funlockfile(stdout);
    sched_yield();
  }
  return pp_call_return_i64(call, 1);
}

/* Closes every descriptor from 3 on, the worker's channel among them, as
 * a careless daemon-style library might, then answers. */
static pp_status close_descriptors(pp_call *call) {
  for (int fd = 3; fd < 1024; fd++)
    close(fd);
  return pp_call_return_i64(call, 1);
}

/* Forks a child that keeps every descriptor the worker has (its channel
 * too) for 30 s, writes the child's pid into the file its argument names,
 * then kills its own worker. */
static pp_status fork_linger_and_die(pp_call *call) {
  char name[256];
  if (!path_arg(call, 0, name, sizeof name))
    return pp_call_fail(call, "fork_linger_and_die: needs a path");
  pid_t child = fork();
  if (child == 0) {
    tu_sleep_ms(30000);
    _exit(0);
  }
  FILE *f = fopen(name, "w");
  if (f) {
    fprintf(f, "%ld\n", (long)child);
    fclose(f);
  }
  raise(SIGKILL);
  return PP_OK;
}

/* An initializer: this worker ignores Ctrl-C (SIGINT), which the terminal
 * sends to the owner's whole process group, workers included. */
static pp_status ignore_interrupts(pp_call *call) {
  (void)call;
  signal(SIGINT, SIG_IGN);
  return PP_OK;
}

/* The signals 1 to 63 its worker blocks, as bits (1 << (signal - 1)). */
static pp_status blocked_signals(pp_call *call) {
  sigset_t mask;
  if (pthread_sigmask(SIG_SETMASK, NULL, &mask) != 0)
    return pp_call_fail(call, "blocked_signals: pthread_sigmask failed");
  int64_t bits = 0;
  for (int sig = 1; sig < 64; sig++)
    if (sigismember(&mask, sig) == 1)
      bits |= (int64_t)1 << (sig - 1);
  return pp_call_return_i64(call, bits);
}

/* Creates the file its argument names, then sleeps 1.5 s: the file says
 * the task runs. */
static pp_status mark_and_nap(pp_call *call) {
  char name[256];
  if (!path_arg(call, 0, name, sizeof name))
    return pp_call_fail(call, "mark_and_nap: needs a path");
  int fd = open(name, O_WRONLY | O_CREAT, 0600);
  if (fd < 0)
    return pp_call_fail(call, "mark_and_nap: cannot create %s", name);
  close(fd);
  tu_sleep_ms(1500);
  return pp_call_return_i64(call, 1);
}
#endif

/* An initializer that crashes its worker. */
static pp_status init_crash(pp_call *call) {
  (void)call;
  abort();
}

/* An initializer that takes a while, and one that takes too long. */
static pp_status init_slow(pp_call *call) {
  (void)call;
  tu_sleep_ms(400);
  return PP_OK;
}

static pp_status init_stuck(pp_call *call) {
  (void)call;
  tu_sleep_ms(60000);
  return PP_OK;
}

static pp_status rss(pp_call *call) {
  return pp_call_return_i64(call, (int64_t)pp__current_rss());
}

pp_status reliability_tasks_register(void) {
  pp_status st = pp_register("die", die);
  if (st == PP_OK)
    st = pp_register("hog", hog);
  if (st == PP_OK)
    st = pp_register("rss", rss);
  if (st == PP_OK)
    st = pp_register("init_crash", init_crash);
  if (st == PP_OK)
    st = pp_register("init_slow", init_slow);
  if (st == PP_OK)
    st = pp_register("init_stuck", init_stuck);
#ifndef _WIN32
  if (st == PP_OK)
    st = pp_register("slow_with_term", slow_with_term);
  if (st == PP_OK)
    st = pp_register("hold_stdout", hold_stdout);
  if (st == PP_OK)
    st = pp_register("ignore_interrupts", ignore_interrupts);
  if (st == PP_OK)
    st = pp_register("close_descriptors", close_descriptors);
  if (st == PP_OK)
    st = pp_register("fork_linger_and_die", fork_linger_and_die);
  if (st == PP_OK)
    st = pp_register("mark_and_nap", mark_and_nap);
  if (st == PP_OK)
    st = pp_register("blocked_signals", blocked_signals);
#endif
  if (st == PP_OK)
    st = pp_register("garbage", garbage);
  return st != PP_OK ? st : pp_register("square_or_die", square_or_die);
}

/* The pid a "worker N died ..." message names, or -1. */
static long named_pid(const char *message) {
  const char *p = message ? strstr(message, "worker ") : NULL;
  return p ? strtol(p + 7, NULL, 10) : -1;
}

static int listed(const long *pids, size_t n, long pid) {
  for (size_t i = 0; i < n; i++)
    if (pids[i] == pid)
      return 1;
  return 0;
}

/* Waits (bounded) until the pool lists `want` workers. */
static size_t wait_workers(pp_pool *pool, long *pids, size_t cap, size_t want) {
  size_t n = 0;
  double t0 = tu_now();
  for (;;) {
    pp_pool_worker_pids(pool, pids, cap, &n);
    if (n >= want || tu_now() - t0 > TU_WAIT)
      return n;
    tu_sleep_ms(5);
  }
}

/* One way of dying, by `task`: exactly that call fails with
 * PP_EWORKERDIED, the message names the task, the worker's pid and how it
 * ended (`how_text`, when given), and the pool works on. */
static void check_death_by(const char *task, const pp_bytes *args, size_t nargs,
                           const char *how_text) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  long pids[8];
  size_t n = wait_workers(pool, pids, 8, 2);
  CU_ASSERT_EQUAL(n, 2);

  pp_value v = {0};
  char quoted[64];
  snprintf(quoted, sizeof quoted, "'%s'", task);
  CU_ASSERT_EQUAL(pp_apply(pool, task, args, nargs, &v), PP_EWORKERDIED);
  CU_ASSERT_EQUAL(v.status, PP_EWORKERDIED);
  CU_ASSERT(tu_contains(v.error, "died"));
  CU_ASSERT(tu_contains(v.error, quoted));
  CU_ASSERT(listed(pids, n, named_pid(v.error)));
  if (how_text)
    CU_ASSERT(tu_contains(v.error, how_text));
  pp_value_clear(&v);

  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 12, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 144);
  pp_pool_destroy(pool);
}

/* The "die" task's ways. */
static void check_death(int64_t how, const char *how_text) {
  pp_bytes arg = tu_i64(&how);
  check_death_by("die", &arg, 1, how_text);
}

#ifndef _WIN32
static void test_death_sigkill(void) { check_death(DIE_SIGKILL, "signal 9"); }
#endif
static void test_death_abort(void) { check_death(DIE_ABORT, NULL); }
/* Under a sanitizer the crash may end as an exit code instead of SIGSEGV,
 * so only "died" and the pid are checked for it. */
static void test_death_null(void) { check_death(DIE_NULL, NULL); }
static void test_death_exit3(void) { check_death(DIE_EXIT3, "code 3"); }

/* The code a worker that could not reach its pool exits with (a spawned
 * one whose channel is gone) is named for what it means. */
static void test_death_bad_launch_code(void) {
  check_death(DIE_EXIT_BAD_LAUNCH,
              "exited with code 120 (procpool's code: it could not reach the "
              "pool that started it)");
}

/* A task that exits with the code a worker leaving for its memory limit
 * uses (124, also timeout(1)'s) died running: its call fails, once. That
 * code alone made the pool take the call as never started and send it
 * again, to a worker that died the same way, for ever: the call hung. */
static void test_death_exit_recycle_code(void) {
  check_death(DIE_EXIT_RECYCLE, "code 124");
}

/* 119 means something only from a launcher: a worker's is a task's own
 * exit(), named as such, not "could not set itself up". */
static void test_death_exit_launcher_code(void) {
  check_death(DIE_EXIT_LAUNCHER_SETUP, "exited with code 119");
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t how = DIE_EXIT_LAUNCHER_SETUP;
  pp_bytes arg = tu_i64(&how);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "die", &arg, 1, &v), PP_EWORKERDIED);
  CU_ASSERT(!tu_contains(v.error, "set itself up"));
  pp_value_clear(&v);
  pp_pool_destroy(pool);
}

/* Work queued behind the dying task on the same worker was not started:
 * it is sent to a worker again and succeeds. One worker, so everything
 * queues behind the task that kills it. */
static void test_queued_work_is_resent(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  /* quick tasks first, so that the pool pipelines work to the worker */
  for (int64_t i = 0; i < 20; i++) {
    int64_t y;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", i, &y), PP_OK);
  }
  enum { N = 30 };
  pp_result *rs[N];
  int64_t how = DIE_EXIT3, xs[N];
  pp_bytes arg = tu_i64(&how);
  pp_result *dying = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "die", &arg, 1, NULL, &dying),
                        PP_OK);
  for (int i = 0; i < N; i++) {
    xs[i] = i;
    pp_bytes a = tu_i64(&xs[i]);
    CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &a, 1, NULL, &rs[i]),
                          PP_OK);
  }
  CU_ASSERT_EQUAL(pp_result_get(dying, TU_WAIT), PP_EWORKERDIED);
  for (int i = 0; i < N; i++) {
    int64_t y = -1;
    CU_ASSERT_EQUAL(pp_result_get(rs[i], TU_WAIT), PP_OK);
    CU_ASSERT_EQUAL(pp_result_i64(rs[i], &y), PP_OK);
    CU_ASSERT_EQUAL(y, (int64_t)i * i);
    pp_result_free(rs[i]);
  }
  pp_result_free(dying);
  pp_pool_destroy(pool);
}

#ifndef _WIN32
/* A worker killed while idle (by hand, by the OOM killer) had not read the
 * call the pool sent it meanwhile: that call runs on its replacement, as
 * in Python, instead of failing as if the death were its. The worker is
 * stopped first, so that the call surely reaches it before its death is
 * seen; after its first chunks its calls come through its ring, which
 * tells what it read. */
static void test_idle_death_costs_no_call(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  for (int64_t i = 0; i < 40; i++) {
    int64_t y;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", i, &y), PP_OK);
  }
  long pid = -1;
  CU_ASSERT_EQUAL_FATAL(wait_workers(pool, &pid, 1, 1), 1);
  CU_ASSERT_EQUAL_FATAL(kill((pid_t)pid, SIGSTOP), 0);
  int64_t x = 7;
  pp_bytes arg = tu_i64(&x);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &arg, 1, NULL, &r),
                        PP_OK);
  tu_sleep_ms(100); /* sent to the stopped worker by then */
  CU_ASSERT_EQUAL(kill((pid_t)pid, SIGKILL), 0);
  pp_status st = pp_result_get(r, TU_WAIT);
  CU_ASSERT_EQUAL(st, PP_OK);
  if (st != PP_OK)
    fprintf(stderr, "\n  got: %s\n", pp_result_error(r));
  int64_t y = 0;
  CU_ASSERT_EQUAL(pp_result_i64(r, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 49);
  pp_result_free(r);
  long now = -1;
  CU_ASSERT_EQUAL(wait_workers(pool, &now, 1, 1), 1);
  CU_ASSERT_NOT_EQUAL(now, pid);
  pp_pool_destroy(pool);
}
#endif

/* A map of 1,000 items where every 100th item kills its worker completes:
 * those 10 items fail, the 990 others succeed, nothing hangs. */
static void test_map_with_deaths(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 1000 };
  static int64_t vals[N];
  static pp_bytes items[N];
  tu_i64_items(vals, items, N, 0);
  pp_result *r = NULL;
  pp_status st = pp_map_async(pool, "square_or_die", items, N, 1, NULL, &r);
  CU_ASSERT_EQUAL_FATAL(st, PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, 60.0), PP_EWORKERDIED);
  size_t died = 0, ok = 0;
  for (size_t i = 0; i < N; i++) {
    int64_t y = -1;
    pp_status s = pp_result_item_i64(r, i, &y);
    if (i % 100 == 99) {
      died += s == PP_EWORKERDIED;
    } else {
      ok += s == PP_OK && y == (int64_t)(i * i);
    }
  }
  CU_ASSERT_EQUAL(died, 10);
  CU_ASSERT_EQUAL(ok, 990);
  CU_ASSERT(tu_contains(pp_result_error(r), "code 9"));
  pp_result_free(r);
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 5, &y), PP_OK);
  pp_pool_destroy(pool);
}

/* The same through imap, chunks of 10: a chunk whose worker died fails
 * whole, each of its items saying so in its place, and the chunks around
 * it arrive whole. */
static void test_imap_with_deaths(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 1000 };
  tu_range range;
  tu_range_init(&range, 0, N);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap(pool, "square_or_die", tu_range_next, &range, 10, &it), PP_OK);
  size_t died = 0, ok = 0, other = 0;
  for (int64_t i = 0; i < N; i++) {
    pp_value v = {0};
    int64_t y = -1;
    pp_status s = pp_iter_next(it, 60.0, &v);
    if (i % 100 >= 90) { /* the chunk of the 99th */
      if (s == PP_EWORKERDIED && v.status == s && tu_contains(v.error, "died"))
        died++;
      else
        other++;
    } else if (s == PP_OK && pp_value_i64(&v, &y) == PP_OK && y == i * i) {
      ok++;
    } else {
      other++;
    }
    pp_value_clear(&v);
    if (s == PP_ETIMEOUT)
      break;
  }
  CU_ASSERT_EQUAL(died, 100);
  CU_ASSERT_EQUAL(ok, 900);
  CU_ASSERT_EQUAL(other, 0);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_EOF);
  pp_value_clear(&v);
  pp_iter_free(it);
  pp_pool_destroy(pool);
}

#ifdef __linux__
static size_t count_fds(void) {
  size_t n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return 0;
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

/* Processes whose parent is this one; with `say`, each is printed (pid,
 * name, state), so that a failed count shows what it counted. */
static size_t count_children(int say) {
  size_t n = 0;
  long self = (long)getpid();
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    char path[300], buf[512];
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    /* pid (comm) state ppid ...: comm may hold spaces, so from the last ')' */
    const char *p = strrchr(buf, ')');
    long ppid = -1;
    char state = '?';
    if (p && sscanf(p + 1, " %c %ld", &state, &ppid) == 2 && ppid == self) {
      n++;
      if (say)
        fprintf(stderr, "\n    child %.*s %c", (int)(p + 1 - buf), buf, state);
    }
  }
  if (d)
    closedir(d);
  return n;
}

/* The open descriptors, each with what it points to, on stderr. */
static void say_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    char path[300], target[300];
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    ssize_t len = readlink(path, target, sizeof target - 1);
    target[len > 0 ? len : 0] = '\0';
    fprintf(stderr, "\n    fd %s -> %s", e->d_name, target);
  }
  if (d)
    closedir(d);
}

/* Out of descriptors (a limit of a few more than are open): the pool
 * cannot start all its workers, and once starts have failed nine times in
 * a row its calls fail with the system's reason, which the user can act
 * on. */
static void test_out_of_descriptors(void) {
  struct rlimit old;
  CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
  struct rlimit low = old;
  low.rlim_cur = (rlim_t)count_fds() + 12;
  CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &low), 0);
  pp_options o;
  pp_options_init(&o);
  o.processes = 40;
  pp_pool *pool = NULL;
  pp_status st = pp_pool_create(&pool, &o);
  pp_value v = {0};
  double t0 = tu_now();
  while (st == PP_OK && tu_now() - t0 < TU_WAIT) {
    int64_t x = 3;
    pp_bytes arg = tu_i64(&x);
    pp_value_clear(&v);
    st = pp_apply(pool, "square", &arg, 1, &v);
  }
  CU_ASSERT_EQUAL(st, PP_ESYSTEM);
  /* "could not start a worker: <status>: <call>: <the system's words> (…)":
   * the words are the system's (under memcheck, which keeps descriptors of
   * its own above the limit, a call may say EBADF instead of EMFILE). */
  char head[200];
  snprintf(head, sizeof head,
           "could not start a worker: %s: ", pp_strerror(PP_ESYSTEM));
  const char *reason = v.error ? strstr(v.error, head) : NULL;
  CU_ASSERT_PTR_NOT_NULL(reason);
  if (reason) {
    reason += strlen(head);
    const char *words = strstr(reason, ": ");
    const char *tail = strstr(reason, " (");
    CU_ASSERT(words && tail && words + 2 < tail);
  }
  if (!reason || !tu_contains(v.error, strerror(EMFILE)))
    fprintf(stderr, "\n  got: %s\n", v.error ? v.error : pp_strerror(st));
  pp_value_clear(&v);
  pp_pool_destroy(pool);
  CU_ASSERT_EQUAL(setrlimit(RLIMIT_NOFILE, &old), 0);
}

/* Near the descriptor limit, a pool that could be made works: with a few
 * descriptors to spare, creation either fails and says so, or every call
 * succeeds (a fork pool's launcher needed more room than its parent had
 * left, and died at its start: every call failed, "the process that
 * starts the pool's workers kept dying"). */
static void test_near_descriptor_limit(void) {
  struct rlimit old;
  CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
  size_t made = 0;
  for (size_t spare = 4; spare <= 24; spare++) {
    struct rlimit low = old;
    low.rlim_cur = (rlim_t)(count_fds() + spare);
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &low), 0);
    pp_options o;
    pp_options_init(&o);
    o.processes = 3;
    pp_pool *pool = NULL;
    pp_status st = pp_pool_create(&pool, &o);
    if (st == PP_OK) {
      made++;
      size_t failed = 0;
      for (int64_t i = 0; i < 6; i++) {
        pp_value v = {0};
        pp_bytes arg = tu_i64(&i);
        if (pp_apply(pool, "square", &arg, 1, &v) != PP_OK && !failed++)
          fprintf(stderr, "\n  %zu to spare: %s\n", spare, v.error);
        pp_value_clear(&v);
      }
      CU_ASSERT_EQUAL(failed, 0);
      pp_pool_destroy(pool);
    }
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &old), 0);
  }
  CU_ASSERT(made > 0);
}

/* 200 pools created, used and terminated: the open descriptors and the
 * child processes are the same before and after. A count that differs
 * prints what is there after. */
static void test_many_pools_leak_nothing(void) {
  size_t fds = count_fds(), children = count_children(0);
  for (int i = 0; i < 200; i++) {
    pp_pool *pool = tu_pool(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    int64_t y = 0;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", i, &y), PP_OK);
    CU_ASSERT_EQUAL(y, (int64_t)i * i);
    pp_pool_terminate(pool);
    pp_pool_destroy(pool);
  }
  size_t fds_after = count_fds(), children_after = count_children(0);
  if (fds_after != fds) {
    fprintf(stderr, "\n    descriptors: %zu before, %zu after:", fds,
            fds_after);
    say_fds();
  }
  if (children_after != children) {
    fprintf(stderr, "\n    children: %zu before, %zu after:", children,
            children_after);
    count_children(1);
  }
  if (fds_after != fds || children_after != children)
    fprintf(stderr, "\n");
  CU_ASSERT_EQUAL(fds_after, fds);
  CU_ASSERT_EQUAL(children_after, children);
}
#endif

#ifndef _WIN32
/* A worker told to leave that does not (blocked in its last flush by a
 * thread of a task that kept the stdout lock) is killed once the leave
 * limit passes: the join ends instead of waiting for it forever. */
static void test_stuck_leaver_killed(void) {
  pp__test.leave_limit_ms = 300;
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "hold_stdout", NULL, 0, &v), PP_OK);
  pp_value_clear(&v);
  long pid = 0;
  size_t n = 0;
  CU_ASSERT_EQUAL(pp_pool_worker_pids(pool, &pid, 1, &n), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  tu_joiner *j = tu_joiner_start(pool);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  int joined = tu_joiner_wait(j, TU_WAIT);
  CU_ASSERT(joined);
  if (!joined) /* the worker is killed now, and the join ends */
    pp_pool_terminate(pool);
  CU_ASSERT(tu_joiner_wait(j, TU_WAIT));
  tu_joiner_free(j);
  CU_ASSERT(n == 1 && tu_pid_gone(pid));
  pp_pool_destroy(pool);
  pp__test.leave_limit_ms = 0;
}

/* The owner (a child that reported its two workers' pids) is SIGKILLed:
 * both workers must be gone within 5 s. */
static void kill_owner_expect_workers_gone(long owner, int report) {
  long pids[2];
  CU_ASSERT_EQUAL(tu_kill_owner(owner, report, pids, 2), 2);
}

/* The owner of a pool is SIGKILLed: its workers go away within seconds. */
static void test_owner_killed(void) {
  int report;
  long owner = tu_fork_owner(&report);
  CU_ASSERT_FATAL(owner >= 0);
  if (owner == 0) {
    pp_pool *pool = NULL;
    long pids[2] = {0, 0};
    if (pp_pool_create(&pool, NULL) == PP_OK)
      wait_workers(pool, pids, 2, 2);
    tu_owner_report(report, pids, 2);
  }
  kill_owner_expect_workers_gone(owner, report);
}

/* The owner is SIGKILLed while its workers run long tasks: they do not
 * read their channels, so EOF cannot stop them; they are killed. */
static void test_owner_killed_busy(void) {
  int report;
  long owner = tu_fork_owner(&report);
  CU_ASSERT_FATAL(owner >= 0);
  if (owner == 0) {
    pp_pool *pool = NULL;
    long pids[2] = {0, 0};
    if (pp_pool_create(&pool, NULL) == PP_OK &&
        wait_workers(pool, pids, 2, 2) == 2) {
      static const int64_t ms = 60000;
      pp_bytes arg = tu_i64(&ms);
      pp_result *r;
      for (int i = 0; i < 2; i++)
        pp_apply_async(pool, "sleep_ms", &arg, 1, NULL, &r);
      tu_sleep_ms(300); /* both running */
    }
    tu_owner_report(report, pids, 2);
  }
  kill_owner_expect_workers_gone(owner, report);
}

static void reap_every_child(int sig) {
  int saved = errno;
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

/* The pool still answers (a square of `x`), then closes, joins and is
 * freed. */
static void works_then_ends(pp_pool *pool, int64_t x) {
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", x, &y), PP_OK);
  CU_ASSERT_EQUAL(y, x * x);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  pp_pool_destroy(pool);
}

/* An owner that ignores SIGCHLD (its children are reaped by the kernel),
 * or reaps every child in a handler: worker deaths are still reported with
 * how the worker ended, and the pool carries on. */
static void test_owner_sigchld(void) {
  struct sigaction old, sa;
  for (int with_handler = 0; with_handler < 2; with_handler++) {
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = with_handler ? reap_every_child : SIG_IGN;
    sa.sa_flags = SA_RESTART;
    CU_ASSERT_EQUAL_FATAL(sigaction(SIGCHLD, &sa, &old), 0);
    pp_pool *pool = tu_pool(2);
    CU_ASSERT_PTR_NOT_NULL(pool);
    if (pool) {
      for (int i = 0; i < 3; i++) {
        int64_t how = DIE_EXIT3;
        pp_value v = {0};
        pp_bytes arg = tu_i64(&how);
        CU_ASSERT_EQUAL(pp_apply(pool, "die", &arg, 1, &v), PP_EWORKERDIED);
        CU_ASSERT(tu_contains(v.error, "exited with code 3"));
        pp_value_clear(&v);
      }
      works_then_ends(pool, 5);
    }
    sigaction(SIGCHLD, &old, NULL);
  }
}

/* Both of the pool's two workers are ready: of two calls made at once, the
 * second goes to an idle ready worker before a busy one, so two pids say
 * so. 0 if that did not happen within TU_WAIT. */
static int both_ready(pp_pool *pool) {
  double t0 = tu_now();
  while (tu_now() - t0 < TU_WAIT) {
    pp_result *r[2] = {NULL, NULL};
    int64_t pid[2] = {0, 0};
    for (int i = 0; i < 2; i++)
      if (pp_apply_async(pool, "getpid", NULL, 0, NULL, &r[i]) != PP_OK)
        return 0;
    for (int i = 0; i < 2; i++)
      if (pp_result_get(r[i], TU_WAIT) != PP_OK ||
          pp_result_i64(r[i], &pid[i]) != PP_OK)
        pid[i] = -1 - i;
    pp_result_free(r[0]);
    pp_result_free(r[1]);
    if (pid[0] > 0 && pid[1] > 0 && pid[0] != pid[1])
      return 1;
    tu_sleep_ms(20);
  }
  return 0;
}

/* A task closes its worker's channel (every descriptor from 3 on): the
 * worker cannot answer and exits with the code that says why, which the
 * task's error names. A fresh pool, so that the answer would go through
 * the channel (not yet the rings). */
static void test_task_closes_channel(void) {
  check_death_by("close_descriptors", NULL, 0,
                 "exited with code 126 (procpool's code: its channel to the "
                 "pool failed under it");
}

/* A worker dies while a process its task forked lives on, holding the
 * worker's end of the channel: the death is reported when the worker
 * ends, not when that process does (it would be 30 s here), and the pool
 * goes on. */
static void test_death_with_lingering_child(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  char mark[128];
  snprintf(mark, sizeof mark, "pp_tests_linger_%ld", tu_self_pid());
  remove(mark);
  pp_bytes arg = {mark, strlen(mark)};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "fork_linger_and_die", &arg, 1, NULL, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_EWORKERDIED);
  CU_ASSERT(tu_contains(pp_result_error(r), "signal 9"));
  pp_result_free(r);
  works_then_ends(pool, 4);
  long child = 0;
  FILE *f = fopen(mark, "r");
  CU_ASSERT_PTR_NOT_NULL(f);
  if (f) {
    CU_ASSERT_EQUAL(fscanf(f, "%ld", &child), 1);
    fclose(f);
  }
  if (child > 0)
    kill((pid_t)child, SIGKILL);
  remove(mark);
}

/* The context this run's pools start in: PROCPOOL_START_METHOD, else the
 * POSIX default, fork. */
static pp_context run_context(void) {
  pp_context c = PP_CONTEXT_FORK;
  const char *name = getenv("PROCPOOL_START_METHOD");
  if (name && *name && pp_context_from_name(name, &c) != PP_OK)
    c = PP_CONTEXT_FORK;
  return c;
}

/* The owner's Ctrl-C handler; a fork worker runs its own copy. */
static volatile sig_atomic_t interrupted;
static void note_interrupt(int sig) {
  (void)sig;
  interrupted = 1;
}

/* Ctrl-C: SIGINT to every worker while each runs a task, the owner
 * handling it. With an initializer that ignores it, both tasks complete,
 * in every context. Without, a worker has what the owner's disposition at
 * the pool's creation gives it: a fork worker runs its copy of the
 * owner's handler and goes on; a spawn or forkserver worker, a fresh
 * start of the program, has the default and dies, its task failing with
 * the signal's name. */
static void test_interrupt_reaches_workers(void) {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = note_interrupt;
  CU_ASSERT_EQUAL_FATAL(sigaction(SIGINT, &sa, &old), 0);
  for (int ignoring = 0; ignoring < 2; ignoring++) {
    pp_options opts;
    pp_options_init(&opts);
    opts.processes = 2;
    if (ignoring)
      opts.initializer = "ignore_interrupts";
    int survive = ignoring || run_context() == PP_CONTEXT_FORK;
    pp_pool *pool = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_pool_create(&pool, &opts), PP_OK);
    long pids[2];
    CU_ASSERT_EQUAL(wait_workers(pool, pids, 2, 2), 2);
    CU_ASSERT(both_ready(pool));
    /* Two tasks, one on each idle worker; the signals go once both have
     * begun. */
    char marks[2][128];
    pp_result *r[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
      snprintf(marks[i], sizeof marks[i], "pp_tests_int_%ld_%d", tu_self_pid(),
               i);
      remove(marks[i]);
      pp_bytes arg = {marks[i], strlen(marks[i])};
      CU_ASSERT_EQUAL(
          pp_apply_async(pool, "mark_and_nap", &arg, 1, NULL, &r[i]), PP_OK);
    }
    double t0 = tu_now();
    while ((access(marks[0], F_OK) != 0 || access(marks[1], F_OK) != 0) &&
           tu_now() - t0 < TU_WAIT)
      tu_sleep_ms(5);
    CU_ASSERT(access(marks[0], F_OK) == 0 && access(marks[1], F_OK) == 0);
    for (int i = 0; i < 2; i++) {
      CU_ASSERT_EQUAL(kill((pid_t)pids[i], SIGINT), 0);
      remove(marks[i]);
    }
    for (int i = 0; i < 2 && r[i]; i++) {
      pp_status st = pp_result_get(r[i], TU_WAIT);
      if (survive) {
        CU_ASSERT_EQUAL(st, PP_OK);
      } else {
        CU_ASSERT_EQUAL(st, PP_EWORKERDIED);
        CU_ASSERT(tu_contains(pp_result_error(r[i]), "killed by signal 2"));
      }
      pp_result_free(r[i]);
    }
    CU_ASSERT_EQUAL(interrupted, 0); /* this process was not signalled */
    CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
    CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
    pp_pool_destroy(pool);
  }
  sigaction(SIGINT, &old, NULL);
}

static volatile sig_atomic_t usr1_handled;
static void note_usr1(int sig) {
  (void)sig;
  usr1_handled++;
}

/* A program whose signals interrupt its calls: a timer (a profiler's
 * SIGPROF, an alarm) firing every 200 µs into a handler installed without
 * SA_RESTART, so that every system call of the calling thread may fail
 * with EINTR. A pool (of the suite's context) is made, used (applies, a
 * map, an imap, a payload big enough for shared memory, a worker's death)
 * and ended under it: every call gives its right answer, none fails or hangs
 * for the interruptions. */
static volatile sig_atomic_t alarms;
static void note_alarm(int sig) {
  (void)sig;
  alarms++;
}

static void drive_under_alarms(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL(pool);
  if (!pool)
    return; /* no FATAL here: the caller must stop the timer */
  for (int64_t i = 0; i < 50; i++) {
    int64_t y = -1;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", i, &y), PP_OK);
    CU_ASSERT_EQUAL(y, i * i);
  }
  enum { N = 5000 };
  static int64_t xs[N];
  pp_bytes items[N];
  for (size_t i = 0; i < N; i++) {
    xs[i] = (int64_t)i;
    items[i] = tu_i64(&xs[i]);
  }
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map(pool, "square", items, N, 7, &r), PP_OK);
  size_t right = 0;
  for (size_t i = 0; r && i < N; i++) {
    int64_t y = -1;
    if (pp_result_item_i64(r, i, &y) == PP_OK && y == (int64_t)(i * i))
      right++;
  }
  CU_ASSERT_EQUAL(right, N);
  pp_result_free(r);
  tu_range range;
  tu_range_init(&range, 0, N);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL(pp_imap(pool, "square", tu_range_next, &range, 3, &it),
                  PP_OK);
  pp_value v = {0};
  int64_t want = 0;
  while (it && pp_iter_next(it, TU_WAIT, &v) == PP_OK) {
    int64_t y = -1;
    if (pp_value_i64(&v, &y) == PP_OK && y == want * want)
      want++;
    pp_value_clear(&v);
  }
  CU_ASSERT_EQUAL(want, N);
  pp_iter_free(it);
  size_t len = (size_t)4 << 20;
  char *big = malloc(len);
  CU_ASSERT_PTR_NOT_NULL(big);
  if (big) {
    memset(big, 'y', len);
    CU_ASSERT_EQUAL(tu_apply_echo(pool, "echo", big, len), PP_OK);
    free(big);
  }
  int64_t how = DIE_EXIT3;
  pp_bytes arg = tu_i64(&how);
  CU_ASSERT_EQUAL(pp_apply(pool, "die", &arg, 1, &v), PP_EWORKERDIED);
  pp_value_clear(&v);
  int64_t y = -1;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 12, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 144);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  pp_pool_destroy(pool);
}

static void test_interrupted_calls(void) {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = note_alarm; /* no SA_RESTART: calls fail with EINTR */
  CU_ASSERT_EQUAL_FATAL(sigaction(SIGALRM, &sa, &old), 0);
  struct itimerval every = {{0, 200}, {0, 200}}, off = {{0, 0}, {0, 0}};
  alarms = 0;
  CU_ASSERT_EQUAL_FATAL(setitimer(ITIMER_REAL, &every, NULL), 0);
  drive_under_alarms();
  CU_ASSERT(alarms > 10); /* the calls were interrupted */
  setitimer(ITIMER_REAL, &off, NULL);
  /* A signal the timer raised before it stopped may still be pending (it
   * is, under Valgrind, which delivers signals late): ignoring the signal
   * discards it, before the default action, death, comes back. */
  signal(SIGALRM, SIG_IGN);
  sigaction(SIGALRM, &old, NULL);
}

/* A program that blocks a signal on its thread to wait for it there
 * (sigwait(), signalfd), having made a pool before: the signal, sent to
 * the process, must reach that wait. Were a thread of the pool's open to
 * it, the kernel would deliver it there instead: the handler would run
 * (or the process die of the default action) and the wait time out. The
 * big echo starts the pool's copying thread as well, from this thread. */
static void test_blocked_signal_reaches_program(void) {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = note_usr1;
  CU_ASSERT_EQUAL_FATAL(sigaction(SIGUSR1, &sa, &old), 0);
  usr1_handled = 0;
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  size_t len = (size_t)8 << 20;
  char *big = malloc(len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(big);
  memset(big, 'x', len);
  pp_bytes arg = {big, len};
  pp_value out = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "echo", &arg, 1, &out), PP_OK);
  CU_ASSERT_EQUAL(out.len, len);
  pp_value_clear(&out);
  free(big);
  sigset_t usr1, before;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  CU_ASSERT_EQUAL_FATAL(pthread_sigmask(SIG_BLOCK, &usr1, &before), 0);
  for (int round = 0; round < 20; round++) {
    CU_ASSERT_EQUAL(kill(getpid(), SIGUSR1), 0);
    struct timespec limit = {5, 0};
    CU_ASSERT_EQUAL(sigtimedwait(&usr1, NULL, &limit), SIGUSR1);
    int64_t y = 0;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", round, &y), PP_OK);
  }
  CU_ASSERT_EQUAL(usr1_handled, 0);
  pthread_sigmask(SIG_SETMASK, &before, NULL);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  pp_pool_destroy(pool);
  sigaction(SIGUSR1, &old, NULL);
}
#endif

#ifdef __linux__
/* Waits (bounded) until `pid` is gone: an orphan is reaped by whoever
 * inherited it, not by us. */
static int gone_soon(long pid) {
  double t0 = tu_now();
  while (!tu_pid_gone(pid) && tu_now() - t0 < TU_WAIT)
    tu_sleep_ms(10);
  return tu_pid_gone(pid);
}

/* The pool's only worker, made one the launcher started: a fork pool's
 * first worker is this process's own, so it is replaced. Its pid into
 * *worker; returns its parent, the launcher. */
static long launcher_worker(pp_pool *pool, long *worker) {
  long pids[4];
  CU_ASSERT_EQUAL(wait_workers(pool, pids, 4, 1), 1);
  if (tu_parent_of(pids[0]) == tu_self_pid()) {
    int64_t how = DIE_EXIT3;
    pp_value v = {0};
    pp_bytes arg = tu_i64(&how);
    CU_ASSERT_EQUAL(pp_apply(pool, "die", &arg, 1, &v), PP_EWORKERDIED);
    pp_value_clear(&v);
    CU_ASSERT_EQUAL(wait_workers(pool, pids, 4, 1), 1);
  }
  *worker = pids[0];
  return tu_parent_of(pids[0]);
}

/* launcher_worker(), and that worker given `ms` of "sleep_ms" (the call
 * into *r): the launcher's pid, 0 where something failed. */
static long launcher_with_task(pp_pool *pool, int64_t ms, long *worker,
                               pp_result **r) {
  long launcher = launcher_worker(pool, worker);
  CU_ASSERT(launcher > 1 && launcher != tu_self_pid());
  pp_bytes arg = tu_i64(&ms);
  *r = NULL;
  if (pp_apply_async(pool, "sleep_ms", &arg, 1, NULL, r) != PP_OK)
    return 0;
  tu_sleep_ms(500); /* the task is the worker's by then */
  return launcher > 1 && launcher != tu_self_pid() ? launcher : 0;
}

/* The launcher is killed (by hand, or by the OOM killer, to which it looks
 * as big as the parent was when it was made): the task its worker ran
 * fails saying so, a new launcher starts the replacement, and the pool
 * goes on. */
static void test_launcher_killed(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  long worker = -1;
  pp_result *r = NULL;
  long launcher = launcher_with_task(pool, 5000, &worker, &r);
  CU_ASSERT_FATAL(launcher > 0);
  CU_ASSERT_EQUAL(kill((pid_t)launcher, SIGKILL), 0);
  CU_ASSERT_EQUAL(pp_result_get(r, 30.0), PP_EWORKERDIED);
  CU_ASSERT(tu_contains(pp_result_error(r), "was lost with the process that "
                                            "starts the pool's workers"));
  pp_result_free(r);
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 7, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 49);
  long pids[4];
  CU_ASSERT_EQUAL(wait_workers(pool, pids, 4, 1), 1);
  long again = tu_parent_of(pids[0]);
  CU_ASSERT(pids[0] != worker);
  CU_ASSERT(again > 1 && again != launcher && again != tu_self_pid());
  CU_ASSERT_EQUAL(tu_parent_of(again), tu_self_pid());
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  pp_pool_destroy(pool);
  CU_ASSERT(tu_pid_gone(launcher) && tu_pid_gone(again));
  CU_ASSERT(gone_soon(worker));
}

/* The launcher stopped (SIGSTOP, a debugger) while its worker must end:
 * the pool does not wait for it for ever. A join that needs the worker
 * gone kills the launcher once it has not done so in a few seconds, and
 * the worker is lost with it (a join waited for ever). */
static void test_launcher_stopped(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  long worker = -1;
  pp_result *r = NULL;
  long launcher = launcher_with_task(pool, 20000, &worker, &r);
  CU_ASSERT_FATAL(launcher > 0);
  CU_ASSERT_EQUAL(kill((pid_t)launcher, SIGSTOP), 0);
  CU_ASSERT_EQUAL(pp_pool_terminate(pool), PP_OK);
  tu_joiner *j = tu_joiner_start(pool);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  int joined = tu_joiner_wait(j, 20.0);
  CU_ASSERT_EQUAL(joined, 1);
  if (!joined) /* let it finish, so that the test can end */
    kill((pid_t)launcher, SIGCONT);
  CU_ASSERT_EQUAL(tu_joiner_wait(j, 60.0), 1);
  tu_joiner_free(j);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ETERMINATED);
  pp_result_free(r);
  pp_pool_destroy(pool);
  CU_ASSERT(gone_soon(launcher));
  CU_ASSERT(gone_soon(worker));
}

/* The children of this process now (up to `cap`): how many. */
static size_t own_children(long *pids, size_t cap) {
  size_t n = 0;
  long self = tu_self_pid();
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && n < cap && (e = readdir(d)) != NULL) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (pid > 0 && *end == '\0' && tu_parent_of(pid) == self)
      pids[n++] = pid;
  }
  if (d)
    closedir(d);
  return n;
}

/* Whether `probe`, a call queued behind busy workers, has failed because
 * the pool broke for want of a launcher; when it completed otherwise (a
 * launcher lived long enough to start a worker that ran it), it is
 * replaced by a new one. */
static int broke_for_launchers(pp_pool *pool, pp_result **probe) {
  if (!*probe || !pp_result_ready(*probe))
    return 0;
  if (tu_contains(pp_result_error(*probe),
                  "the process that starts the pool's workers kept dying"))
    return 1;
  pp_result_free(*probe);
  *probe = NULL;
  int64_t x = 3;
  pp_bytes arg = tu_i64(&x);
  if (pp_apply_async(pool, "square", &arg, 1, NULL, probe) != PP_OK)
    *probe = NULL;
  return 0;
}

/* The launcher dies again each time it is made (killed here as soon as it
 * appears): the pool stops making launchers and breaks. The tasks its
 * workers were running fail saying the workers were lost with it, those
 * of the workers the parent forked too, and a later call fails at once
 * with the reason. */
static void test_launcher_keeps_dying(void) {
  enum { CAP = 32, KILLS = 1024, DEATHS = 4 }; /* it gives up at the 4th */
  /* A bound for a hang, not a speed: how long killing may go on before
   * the pool breaks. A launcher that took over a second to appear (a
   * loaded machine) starts the backend's count of quick deaths again. */
  const double BREAK_WAIT_S = 3 * TU_WAIT;
  long before[CAP];
  size_t nbefore = own_children(before, CAP); /* the watchdog, say */
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  long pids[4];
  CU_ASSERT_EQUAL(wait_workers(pool, pids, 4, 2), 2);
  if (run_context() == PP_CONTEXT_FORK) {
    /* Its launcher is made when first needed: for a replacement. */
    int64_t how = DIE_EXIT3;
    pp_value v = {0};
    pp_bytes arg = tu_i64(&how);
    CU_ASSERT_EQUAL(pp_apply(pool, "die", &arg, 1, &v), PP_EWORKERDIED);
    pp_value_clear(&v);
  }
  int64_t ms = 20000;
  pp_bytes arg = tu_i64(&ms);
  pp_result *r[2] = {NULL, NULL};
  for (int i = 0; i < 2; i++)
    CU_ASSERT_EQUAL_FATAL(
        pp_apply_async(pool, "sleep_ms", &arg, 1, NULL, &r[i]), PP_OK);
  tu_sleep_ms(300); /* each worker runs one by then */
  CU_ASSERT_EQUAL(wait_workers(pool, pids, 4, 2), 2);
  /* Each launcher is killed as it appears, until the pool says it broke:
   * a call queued behind the busy workers fails then, with the reason. A
   * spell with no new launcher proves nothing on a loaded machine, where
   * one may take seconds to appear (a slow machine may also take more
   * kills than the backend's limit, when some fall outside its second). */
  static long killed[KILLS];
  size_t nkilled = 0;
  pp_result *probe = NULL;
  int64_t three = 3;
  pp_bytes three_arg = tu_i64(&three);
  CU_ASSERT_EQUAL(pp_apply_async(pool, "square", &three_arg, 1, NULL, &probe),
                  PP_OK);
  int broke = 0;
  double t0 = tu_now();
  while (!(broke = broke_for_launchers(pool, &probe)) && nkilled < KILLS &&
         tu_now() - t0 < BREAK_WAIT_S) {
    long kids[CAP], workers[4];
    size_t n = own_children(kids, CAP), nw = 0;
    pp_pool_worker_pids(pool, workers, 4, &nw);
    for (size_t i = 0; i < n && nkilled < KILLS; i++)
      if (!listed(before, nbefore, kids[i]) && !listed(workers, nw, kids[i]) &&
          !listed(pids, 2, kids[i]) && !listed(killed, nkilled, kids[i]) &&
          kill((pid_t)kids[i], SIGKILL) == 0)
        killed[nkilled++] = kids[i];
    tu_sleep_ms(1);
  }
  CU_ASSERT(broke);
  CU_ASSERT(nkilled >= DEATHS);
  if (!broke)
    fprintf(stderr,
            "\n  %zu launchers killed in %.1f s; the pool did not "
            "break\n",
            nkilled, tu_now() - t0);
  pp_result_free(probe);
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL(pp_result_get(r[i], TU_WAIT), PP_EWORKERDIED);
    CU_ASSERT(tu_contains(pp_result_error(r[i]),
                          "was lost with the process that starts the pool's "
                          "workers"));
    pp_result_free(r[i]);
  }
  pp_value v = {0};
  double t1 = tu_now();
  CU_ASSERT_NOT_EQUAL(pp_apply(pool, "square", &arg, 1, &v), PP_OK);
  CU_ASSERT(tu_contains(v.error, "the process that starts the pool's workers "
                                 "kept dying"));
  /* How the last one ended tells a launcher killed from outside from one
   * that could not start. */
  CU_ASSERT(tu_contains(v.error, "was killed by signal 9"));
  CU_ASSERT(tu_now() - t1 < TU_WAIT);
  pp_value_clear(&v);
  pp_pool_destroy(pool);
  for (int i = 0; i < 2; i++)
    CU_ASSERT(gone_soon(pids[i]));
}

/* The launcher cannot set itself up: a descriptor limit lowered after
 * the pool was made leaves it none for its self-pipe (it keeps 0 to 2,
 * its socket on 3 and its one guard, the first worker's pidfd, on 4; a
 * pipe wants 5 and 6). It says why on stderr, the call and the system's
 * words, and exits with procpool's code for it; the pool, which breaks as
 * each new launcher dies the same way, names what the code means. Before,
 * the launcher exited with code 1 and said nothing. Fork context only:
 * there the pool's one worker is the parent's own child and lives on, so
 * new launchers are all the pool asks for (elsewhere every worker goes
 * with the launcher, and the new ones' channels want descriptors the
 * limit leaves the parent none of). */
static int launcher_setup_fails_try(int last_try) {
  enum { CAP = 32, LIMIT = 6 };
  /* 3 to 5 are held while the pool is made, so that all of its
   * descriptors lie above the limit; once free, the parent makes each new
   * launcher's socket there. */
  int held[LIMIT] = {0};
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  CU_ASSERT_FATAL(null >= 0);
  if (null < LIMIT)
    held[null] = 1;
  for (int fd = 3; fd < LIMIT; fd++)
    if (!held[fd] && fcntl(fd, F_GETFD) < 0)
      held[fd] = fcntl(null, F_DUPFD_CLOEXEC, fd) == fd;
  int free_fds = 0;
  for (int fd = 3; fd < LIMIT; fd++)
    free_fds += held[fd];
  long before[CAP];
  size_t nbefore = own_children(before, CAP);
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  long worker[4];
  CU_ASSERT_EQUAL_FATAL(wait_workers(pool, worker, 4, 1), 1);
  long launcher = -1;
  for (double t0 = tu_now(); launcher < 0 && tu_now() - t0 < TU_WAIT;) {
    long kids[CAP];
    size_t n = own_children(kids, CAP);
    for (size_t i = 0; i < n && launcher < 0; i++)
      if (!listed(before, nbefore, kids[i]) && kids[i] != worker[0])
        launcher = kids[i];
    if (launcher < 0)
      tu_sleep_ms(5);
  }
  if (free_fds < 2 || tu_parent_of(worker[0]) != tu_self_pid() ||
      launcher < 0) {
    /* Not the case this test makes (descriptors 3 to 5 taken by someone
     * else, no pidfds): nothing to see. */
    fprintf(stderr,
            "\n  skipped: %d of descriptors 3-5 free, worker's parent "
            "%ld, launcher %ld\n",
            free_fds, tu_parent_of(worker[0]), launcher);
    for (int fd = 3; fd < LIMIT; fd++)
      if (held[fd])
        close(fd);
    pp_pool_destroy(pool);
    return 1;
  }
  tu_stderr said;
  CU_ASSERT_FATAL(tu_stderr_begin(&said) == 0);
  for (int fd = 3; fd < LIMIT; fd++)
    if (held[fd])
      close(fd);
  struct rlimit old;
  CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
  struct rlimit low = old;
  low.rlim_cur = LIMIT;
  CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &low), 0);
  CU_ASSERT_EQUAL(kill((pid_t)launcher, SIGKILL), 0);
  /* Calls go on in the first worker until the pool breaks; nothing here
   * opens a descriptor meanwhile, which the parent's next launcher would
   * not find. */
  pp_value v = {0};
  pp_status st = PP_OK;
  for (double t0 = tu_now(); st == PP_OK && tu_now() - t0 < 3 * TU_WAIT;) {
    int64_t x = 3;
    pp_bytes arg = tu_i64(&x);
    pp_value_clear(&v);
    st = pp_apply(pool, "square", &arg, 1, &v);
    if (st == PP_OK)
      tu_sleep_ms(2);
  }
  CU_ASSERT_EQUAL(setrlimit(RLIMIT_NOFILE, &old), 0);
  char *text = tu_stderr_end(&said);
  /* The parent's own launch takes all three descriptors the limit leaves
   * it: one more held for a moment (seen once on a loaded machine under
   * AddressSanitizer, no launcher's line on stderr) and no launcher is
   * made, nor needed while the worker lives. Once more, then it counts. */
  if (st != PP_ESYSTEM && !last_try) {
    fprintf(stderr,
            "\n  the pool did not break (%s; its stderr: %s): once "
            "more\n",
            v.error ? v.error : pp_strerror(st), text ? text : "(none)");
    free(text);
    pp_value_clear(&v);
    pp_pool_destroy(pool);
    return 0;
  }
  CU_ASSERT_EQUAL(st, PP_ESYSTEM);
  CU_ASSERT(tu_contains(v.error, "the process that starts the pool's workers "
                                 "kept dying"));
  CU_ASSERT(tu_contains(v.error, "exited with code 119 (procpool's code: it "
                                 "could not set itself up, and wrote why on "
                                 "its standard error)"));
  /* "procpool: the process that starts the pool's workers (process N)
   * could not set itself up: pipe: Too many open files", from each. */
  char why[200];
  snprintf(why, sizeof why, "could not set itself up: pipe: %s",
           strerror(EMFILE));
  CU_ASSERT(tu_contains(text, "procpool: the process that starts the pool's "
                              "workers (process "));
  CU_ASSERT(tu_contains(text, why));
  if (!tu_contains(text, why) || st != PP_ESYSTEM)
    fprintf(stderr, "\n  the pool: %s\n  its stderr: %s\n",
            v.error ? v.error : pp_strerror(st), text ? text : "(none)");
  free(text);
  pp_value_clear(&v);
  pp_pool_destroy(pool);
  return 1;
}

static void test_launcher_setup_fails(void) {
  if (run_context() != PP_CONTEXT_FORK)
    return;
  for (int last = 0; last < 2 && !launcher_setup_fails_try(last); last++)
    ;
}

/* The signals `pool`'s next worker blocks, as blocked_signals() gives
 * them; -1 when the call fails. */
static int64_t worker_mask(pp_pool *pool) {
  pp_value v = {0};
  int64_t bits = -1;
  if (pp_apply(pool, "blocked_signals", NULL, 0, &v) != PP_OK ||
      pp_value_i64(&v, &bits) != PP_OK)
    bits = -1;
  pp_value_clear(&v);
  return bits;
}

/* A worker's signal mask is what a child of the pool's creating thread
 * would have: in the fork and spawn contexts that thread's at the pool's
 * creation (blocked there for the occasion: SIGUSR2), in the forkserver
 * context none, as for the fresh program it is. So is the mask of a
 * worker that a new launcher starts after a death, though that launcher
 * is made on the pool's own thread, which blocks every signal. */
static void test_workers_keep_creators_mask(void) {
  sigset_t usr2, before;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  CU_ASSERT_EQUAL_FATAL(pthread_sigmask(SIG_BLOCK, &usr2, &before), 0);
  sigset_t creating;
  pthread_sigmask(SIG_SETMASK, NULL, &creating);
  int64_t want = 0;
  if (run_context() != PP_CONTEXT_FORKSERVER)
    for (int sig = 1; sig < 64; sig++)
      if (sigismember(&creating, sig) == 1)
        want |= (int64_t)1 << (sig - 1);
  pp_pool *pool = tu_pool(1);
  pthread_sigmask(SIG_SETMASK, &before, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(worker_mask(pool), want);
  long worker = -1;
  long launcher = launcher_worker(pool, &worker);
  CU_ASSERT_FATAL(launcher > 1 && launcher != tu_self_pid());
  CU_ASSERT_EQUAL(worker_mask(pool), want);
  CU_ASSERT_EQUAL(kill((pid_t)launcher, SIGKILL), 0);
  CU_ASSERT(gone_soon(worker));
  long pids[4];
  CU_ASSERT_EQUAL(wait_workers(pool, pids, 4, 1), 1);
  CU_ASSERT_EQUAL(worker_mask(pool), want);
  long again = tu_parent_of(pids[0]);
  CU_ASSERT(again > 1 && again != launcher && again != tu_self_pid());
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  pp_pool_destroy(pool);
}
#endif

/* 5,000 mixed tasks with random worker deaths, time-outs and task errors:
 * every result is delivered exactly once, with the right value or error. */
static void test_mixed_campaign(void) {
  enum { N = 5000, OK = 0, FAIL, DIE, OVERDUE };
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static pp_result *rs[N];
  static int64_t xs[N];
  static int kind[N];
  static const char *const task[] = {"square", "fail", "die", "sleep_ms"};
  pp_callbacks overdue = {NULL, NULL, NULL, 0.05};
  unsigned seed = 12345;
  for (int i = 0; i < N; i++) {
    seed = seed * 1103515245u + 12345u;
    unsigned roll = (seed >> 16) % 200;
    kind[i] = roll < 1 ? OVERDUE : roll < 3 ? DIE : roll < 13 ? FAIL : OK;
    xs[i] = kind[i] == DIE ? DIE_EXIT3 : kind[i] == OVERDUE ? 5000 : i;
    pp_bytes a = tu_i64(&xs[i]);
    CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, task[kind[i]], &a, 1,
                                         kind[i] == OVERDUE ? &overdue : NULL,
                                         &rs[i]),
                          PP_OK);
  }
  static const pp_status expected[] = {PP_OK, PP_ETASK, PP_EWORKERDIED,
                                       PP_ETIMELIMIT};
  size_t right = 0;
  for (int i = 0; i < N; i++) {
    pp_status st = pp_result_get(rs[i], 60.0);
    int64_t y = -1;
    if (st == expected[kind[i]] &&
        (kind[i] != OK ||
         (pp_result_i64(rs[i], &y) == PP_OK && y == (int64_t)i * i)))
      right++;
    else if (right == (size_t)i) /* the first wrong one says why */
      printf("\n    item %d (%s): %s (%s)\n", i, task[kind[i]], pp_strerror(st),
             pp_result_error(rs[i]) ? pp_result_error(rs[i]) : "-");
    pp_result_free(rs[i]);
  }
  CU_ASSERT_EQUAL(right, N);
  pp_pool_destroy(pool);
}

/* Malformed frames from a worker (bad magic, wrong version, a length beyond
 * the limit, a truncated frame, sound frames out of their place, pieces of
 * an answer out of theirs): that worker is killed, its task fails, the
 * parent and the pool carry on. One that dies after a piece of its answer
 * fails its chunk as any worker that dies while running it. */
static void test_malformed_frames(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static const struct {
    int64_t how;
    pp_status expect;
    const char *says;
  } cases[] = {
      {BAD_MAGIC, PP_EPROTOCOL, "malformed"},
      {BAD_VERSION, PP_EPROTOCOL, "version"},
      {BAD_LENGTH, PP_ETOOBIG, "beyond the pool's limit"},
      {TRUNCATED, PP_EWORKERDIED, "died"},
      {STRAY_PUT, PP_EPROTOCOL, "no task it was sent"},
      {READY_AGAIN, PP_EPROTOCOL, "a ready report out of place"},
      {PROOF_AGAIN, PP_EPROTOCOL, "a second proof of the key"},
      {INIT_FAILED_LATE, PP_EPROTOCOL, "an initializer report out of place"},
      {PARENT_FRAME, PP_EPROTOCOL, "a frame only the parent sends"},
      {MORE_STRAY, PP_EPROTOCOL, "a piece of an answer to no task"},
      {MORE_ON_READY, PP_EPROTOCOL, "a bad frame header"},
      {MORE_MIXED, PP_EPROTOCOL, "an answer in pieces of different kinds"},
      {MORE_THEN_DIE, PP_EWORKERDIED, "died while running"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    long pids[4];
    size_t n = wait_workers(pool, pids, 4, 2);
    /* An apply's chunk id is its job's number (the next one) << 32. */
    int64_t id =
        (int64_t)((uint64_t)(apr_atomic_read32(&pool->next_job) + 1) << 32);
    pp_bytes args[2] = {tu_i64(&cases[i].how), tu_i64(&id)};
    pp_value v = {0};
    CU_ASSERT_EQUAL(pp_apply(pool, "garbage", args, 2, &v), cases[i].expect);
    if (!tu_contains(v.error, cases[i].says))
      fprintf(stderr, "\n  case %d: %s\n", (int)cases[i].how,
              v.error ? v.error : "-");
    CU_ASSERT(tu_contains(v.error, cases[i].says));
    CU_ASSERT(listed(pids, n, named_pid(v.error)));
    pp_value_clear(&v);
    int64_t y = 0;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 6, &y), PP_OK);
    CU_ASSERT_EQUAL(y, 36);
  }
  pp_pool_destroy(pool);
}

/* A worker whose resident memory passes the limit after a task is replaced;
 * the work queued for it runs elsewhere and nothing is lost. */
static void test_max_memory_per_child(void) {
  pp_pool *pool = tu_pool_memory_limited(64);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t first = 0, grown = 0, later = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "getpid", 0, &first), PP_OK);
  for (int64_t i = 0; i < 20; i++) /* quick tasks: the pool pipelines */
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", i, &later), PP_OK);
  enum { N = 20 };
  int64_t mib = 128, xs[N];
  pp_bytes a = tu_i64(&mib);
  pp_result *h = NULL, *rs[N];
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "hog", &a, 1, NULL, &h), PP_OK);
  for (int i = 0; i < N; i++) {
    xs[i] = i;
    pp_bytes x = tu_i64(&xs[i]);
    CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &x, 1, NULL, &rs[i]),
                          PP_OK);
  }
  CU_ASSERT_EQUAL(pp_result_get(h, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(pp_result_i64(h, &grown), PP_OK);
  CU_ASSERT_EQUAL(grown, first);
  for (int i = 0; i < N; i++) {
    int64_t y = -1;
    CU_ASSERT_EQUAL(pp_result_get(rs[i], TU_WAIT), PP_OK);
    if (pp_result_get(rs[i], 0) != PP_OK)
      fprintf(stderr, "\n  call %d: %s\n", i, pp_result_error(rs[i]));
    CU_ASSERT_EQUAL(pp_result_i64(rs[i], &y), PP_OK);
    CU_ASSERT_EQUAL(y, (int64_t)i * i);
    pp_result_free(rs[i]);
  }
  pp_result_free(h);
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "getpid", 0, &later), PP_OK);
  CU_ASSERT(later > 0 && later != first);
  pp_pool_destroy(pool);
}

/* A message bigger than a lane passes through the channel's buffers,
 * which grow to it: once it has passed they are given back, in the worker
 * and in the parent, instead of being held for the worker's life (96 MiB
 * each way here held about 100 MiB in the worker and 200 in the parent). */
static void test_big_message_memory_given_back(void) {
  if (tu_allocator_keeps()) {
    fprintf(stderr, "\n  not run: this process's allocator keeps what is "
                    "freed\n");
    return;
  }
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t worker_before = 0, worker_after = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "rss", 0, &worker_before), PP_OK);
  size_t parent_before = pp__current_rss();
  const size_t big = (size_t)96 << 20;
  unsigned char *data = malloc(big);
  CU_ASSERT_PTR_NOT_NULL_FATAL(data);
  memset(data, 0x5a, big);
  pp_bytes arg = {data, big};
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "echo", &arg, 1, &v), PP_OK);
  CU_ASSERT_EQUAL(v.len, big);
  CU_ASSERT(v.data && memcmp(v.data, data, big) == 0);
  pp_value_clear(&v);
  free(data);
  /* A freed value's block is kept a second for the next big value. */
  tu_sleep_ms(1500);
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "rss", 0, &worker_after), PP_OK);
  size_t parent_after = pp__current_rss();
  CU_ASSERT(worker_after < worker_before + (int64_t)(32 << 20));
  CU_ASSERT(parent_after < parent_before + ((size_t)32 << 20));
  if (worker_after >= worker_before + (int64_t)(32 << 20) ||
      parent_after >= parent_before + ((size_t)32 << 20))
    fprintf(stderr, "\n  resident: worker %lld -> %lld, parent %zu -> %zu\n",
            (long long)worker_before, (long long)worker_after, parent_before,
            parent_after);
  pp_pool_destroy(pool);
}

#ifndef _WIN32
/* A worker killed from outside while its initializer runs (the memory
 * killer, `kill -9`) says nothing against the initializer: it is replaced
 * and the pool goes on (it broke the pool for good, every call failing
 * with PP_EINITIALIZER). */
static void test_initializer_killed_from_outside(void) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.initializer = "init_slow";
  pp_pool *pool = tu_pool_opts(&o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  long pids[4];
  CU_ASSERT_EQUAL_FATAL(wait_workers(pool, pids, 4, 2), 2);
  CU_ASSERT_EQUAL(kill((pid_t)pids[0], SIGKILL), 0); /* in its initializer */
  for (int64_t i = 0; i < 4; i++) {
    int64_t y = -1;
    pp_value v = {0};
    pp_bytes arg = tu_i64(&i);
    CU_ASSERT_EQUAL(pp_apply(pool, "square", &arg, 1, &v), PP_OK);
    if (v.error)
      fprintf(stderr, "\n  %s\n", v.error);
    CU_ASSERT_EQUAL(pp_value_i64(&v, &y), PP_OK);
    CU_ASSERT_EQUAL(y, i * i);
    pp_value_clear(&v);
  }
  pp_pool_destroy(pool);
}
#endif

/* An initializer that runs past the pool's time limit breaks the pool, as
 * a failing one does, instead of holding every call for ever. */
static void test_initializer_time_limit(void) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.initializer = "init_stuck";
  o.task_time_limit = 0.3;
  pp_pool *pool = tu_pool_opts(&o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t x = 3;
  pp_bytes arg = tu_i64(&x);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &arg, 1, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_EINITIALIZER);
  CU_ASSERT(tu_contains(pp_result_error(r),
                        "the initializer 'init_stuck' did not finish within "
                        "the pool's time limit of 0.3 s"));
  pp_result_free(r);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "square", &arg, 1, &v), PP_EINITIALIZER);
  pp_value_clear(&v);
  pp_pool_destroy(pool);
}

/* An initializer that crashes: no endless respawn; pending and later calls
 * fail with PP_EINITIALIZER and a message that says what happened. */
static void test_initializer_crash(void) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.initializer = "init_crash";
  pp_pool *pool = tu_pool_opts(&o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t y = 0;
  double t0 = tu_now();
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 2, &y), PP_EINITIALIZER);
  CU_ASSERT(tu_now() - t0 < 5.0);
  pp_value v = {0};
  pp_bytes arg = tu_i64(&y);
  CU_ASSERT_EQUAL(pp_apply(pool, "square", &arg, 1, &v), PP_EINITIALIZER);
  CU_ASSERT(tu_contains(v.error, "init_crash"));
  CU_ASSERT(tu_contains(v.error, "did not finish"));
  pp_value_clear(&v);
  /* the pool starts no more workers: none is listed for long */
  long pids[8];
  size_t n = 8;
  double t1 = tu_now();
  do {
    pp_pool_worker_pids(pool, pids, 8, &n);
  } while (n > 0 && tu_now() - t1 < TU_WAIT && (tu_sleep_ms(10), 1));
  CU_ASSERT_EQUAL(n, 0);
  tu_sleep_ms(200);
  pp_pool_worker_pids(pool, pids, 8, &n);
  CU_ASSERT_EQUAL(n, 0);
  pp_pool_destroy(pool);
}

static pp_pool *pool_with_limit(int processes, double limit) {
  pp_options o;
  pp_options_init(&o);
  o.processes = processes;
  o.task_time_limit = limit;
  return tu_pool_opts(&o);
}

/* An overdue task: its worker is killed and replaced, the task fails with
 * PP_ETIMELIMIT, later tasks run normally. */
static void test_time_limit_pool(void) {
  pp_pool *pool = pool_with_limit(2, 0.3);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  long before[4];
  size_t nb = wait_workers(pool, before, 4, 2);
  int64_t ms = 10000;
  pp_bytes arg = tu_i64(&ms);
  pp_value v = {0};
  double t0 = tu_now();
  CU_ASSERT_EQUAL(pp_apply(pool, "sleep_ms", &arg, 1, &v), PP_ETIMELIMIT);
  double took = tu_now() - t0;
  CU_ASSERT(took >= 0.29 && took < 3.0);
  CU_ASSERT(tu_contains(v.error, "time limit"));
  long killed = named_pid(v.error);
  CU_ASSERT(listed(before, nb, killed));
  pp_value_clear(&v);
  /* quick tasks are untouched by the limit */
  for (int64_t i = 0; i < 10; i++) {
    int64_t y = -1;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", i, &y), PP_OK);
    CU_ASSERT_EQUAL(y, i * i);
  }
  double t1 = tu_now();
  while (!tu_pid_gone(killed) && tu_now() - t1 < TU_WAIT)
    tu_sleep_ms(10);
  CU_ASSERT(tu_pid_gone(killed));
  long after[4];
  CU_ASSERT_EQUAL(wait_workers(pool, after, 4, 2), 2);
  pp_pool_destroy(pool);
}

/* The per-call limit overrides the pool's, both ways. */
static void test_time_limit_per_call(void) {
  pp_pool *pool = pool_with_limit(2, 0.2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t ms = 500;
  pp_bytes arg = tu_i64(&ms);
  pp_callbacks none = {NULL, NULL, NULL, -1.0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &arg, 1, &none, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  pp_result_free(r);
  pp_pool_destroy(pool);

  pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  ms = 10000;
  pp_callbacks tight = {NULL, NULL, NULL, 0.2};
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &arg, 1, &tight, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ETIMELIMIT);
  pp_result_free(r);
  pp_options o;
  pp_options_init(&o);
  o.task_time_limit = -1;
  pp_pool *bad = NULL;
  CU_ASSERT_EQUAL(pp_pool_create(&bad, &o), PP_EINVAL);
  pp_pool_destroy(pool);
}

static void sleep_in_callback(pp_result *r, void *ms) {
  (void)r;
  tu_sleep_ms(*(const long *)ms);
}

/* A task that answered in time is not stopped for the time its answer
 * waited while a callback ran long on the pool's thread (it was: the
 * limit was checked before the answers that came meanwhile were read). */
static void test_time_limit_slow_callback(void) {
  pp_pool *pool = pool_with_limit(2, 0.5);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t one = 1;
  pp_bytes warm = tu_i64(&one);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "sleep_ms", &warm, 1, &v), PP_OK);
  pp_value_clear(&v);
  long before[4];
  size_t nb = wait_workers(pool, before, 4, 2);
  static long callback_ms = 1500;
  int64_t ms = 100, none = 0;
  pp_bytes slow = tu_i64(&ms), quick = tu_i64(&none);
  pp_callbacks sleepy = {sleep_in_callback, NULL, &callback_ms, 0};
  pp_result *timed = NULL, *other = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &timed), PP_OK);
  tu_sleep_ms(20); /* on its worker: the other takes the next call */
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "sleep_ms", &quick, 1, &sleepy, &other), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(timed, TU_WAIT), PP_OK);
  if (pp_result_error(timed))
    fprintf(stderr, "\n  %s\n", pp_result_error(timed));
  CU_ASSERT_EQUAL(pp_result_get(other, TU_WAIT), PP_OK);
  pp_result_free(timed);
  pp_result_free(other);
  long after[4];
  size_t na = wait_workers(pool, after, 4, 2);
  CU_ASSERT(nb == 2 && na == 2 && listed(before, 2, after[0]) &&
            listed(before, 2, after[1])); /* none was stopped */
  pp_pool_destroy(pool);
}

/* A call given its worker in the pass where another call's callback
 * blocks: its time runs from when it leaves, after the callback, not from
 * when it was put in the worker's batch. Before, the quick call failed
 * its 0.5 s limit for the callback's 1.5 s. */
static void test_time_limit_call_sent_after_slow_callback(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static long callback_ms = 1500;
  int64_t ms = 200, none = 0;
  pp_bytes slow = tu_i64(&ms), quick = tu_i64(&none);
  pp_callbacks sleepy = {sleep_in_callback, NULL, &callback_ms, 0};
  pp_callbacks limited = {NULL, NULL, NULL, 0.5};
  for (int round = 0; round < 2; round++) {
    pp_result *first = NULL, *next = NULL;
    /* The one worker is busy for 200 ms: the next call waits in the
     * queue and goes as the first answers, before its callback runs. */
    CU_ASSERT_EQUAL_FATAL(
        pp_apply_async(pool, "sleep_ms", &slow, 1, &sleepy, &first), PP_OK);
    CU_ASSERT_EQUAL_FATAL(
        pp_apply_async(pool, "sleep_ms", &quick, 1, &limited, &next), PP_OK);
    CU_ASSERT_EQUAL(pp_result_get(next, TU_WAIT), PP_OK);
    if (pp_result_error(next))
      fprintf(stderr, "\n  round %d: %s\n", round, pp_result_error(next));
    CU_ASSERT_EQUAL(pp_result_get(first, TU_WAIT), PP_OK);
    pp_result_free(first);
    pp_result_free(next);
  }
  pp_pool_destroy(pool);
}

#ifndef _WIN32
/* An overdue task's worker is asked to stop first (SIGTERM: a task can
 * clean up), then killed after a short grace if it ignores that. */
static void test_time_limit_terminate_then_kill(void) {
  pp_pool *pool = pool_with_limit(1, 0.2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  char marker[128];
  snprintf(marker, sizeof marker, "pp_tests_term_%ld", tu_self_pid());
  remove(marker);
  for (int64_t mode = 1; mode >= 0; mode--) {
    pp_bytes args[2] = {tu_i64(&mode), {marker, strlen(marker)}};
    pp_value v = {0};
    double t0 = tu_now();
    CU_ASSERT_EQUAL(pp_apply(pool, "slow_with_term", args, 2, &v),
                    PP_ETIMELIMIT);
    CU_ASSERT(tu_now() - t0 < 3.0);
    CU_ASSERT(tu_contains(v.error, "time limit"));
    pp_value_clear(&v);
    FILE *f = fopen(marker, "r");
    if (mode == 1) {
      CU_ASSERT_PTR_NOT_NULL(f); /* it was asked first, and cleaned up */
    }
    if (f)
      fclose(f);
    remove(marker);
  }
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 4, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 16);
  pp_pool_destroy(pool);
}
#endif

/* Cancel a pending call: it never runs and completes as cancelled; cancel a
 * running one: its worker is stopped and replaced. */
static void test_cancel(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t ms = 10000, x = 3;
  pp_bytes slow = tu_i64(&ms), quick = tu_i64(&x);
  pp_result *running = NULL, *queued = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &running), PP_OK);
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "square", &quick, 1, NULL, &queued), PP_OK);
  /* the only worker is busy for 10 s: the queued call cannot have run */
  CU_ASSERT_EQUAL(pp_result_cancel(queued), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(queued, TU_WAIT), PP_ECANCELLED);
  CU_ASSERT_EQUAL(pp_result_ready(running), 0);
  CU_ASSERT_EQUAL(pp_result_cancel(queued), PP_ESTATE);

  double t0 = tu_now();
  CU_ASSERT_EQUAL(pp_result_cancel(running), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(running, TU_WAIT), PP_ECANCELLED);
  CU_ASSERT(tu_now() - t0 < 3.0);
  CU_ASSERT(tu_contains(pp_result_error(running), "cancelled"));
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 9, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 81);
  CU_ASSERT_EQUAL(pp_result_cancel(NULL), PP_EINVAL);
  pp_result_free(running);
  pp_result_free(queued);
  pp_pool_destroy(pool);
}

/* A cancel that pp_result_cancel() took (PP_OK) ends the call with
 * PP_ECANCELLED, as documented, even when something else ended its chunk
 * first: here an item failed before the cancel. The item keeps its own
 * failure. The call said the first failed item's PP_ETASK. */
static void test_cancel_wins_over_failed_item(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t xs[4] = {0, 1, 2, 3}; /* 0 fails at once, the others are slow */
  pp_bytes items[4];
  for (int i = 0; i < 4; i++)
    items[i] = tu_i64(&xs[i]);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_map_async(pool, "fail_zero_slow", items, 4, 1, NULL, &r), PP_OK);
  tu_sleep_ms(TASK_SLOW_MS / 2); /* item 0 failed, item 1 runs */
  CU_ASSERT_EQUAL(pp_result_cancel(r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ECANCELLED);
  CU_ASSERT(tu_contains(pp_result_error(r), "cancelled"));
  pp_bytes b;
  pp_status first = pp_result_item(r, 0, &b);
  CU_ASSERT(first == PP_ETASK || first == PP_ECANCELLED);
  CU_ASSERT_EQUAL(pp_result_item(r, 3, &b), PP_ECANCELLED);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* An empty map queued behind busy work, cancelled: it ends cancelled,
 * its error callback run once (it ended as a success, its success
 * callback run: it had no item to fail). A call waits in the queue before
 * it: an empty map at the queue's head completes at once. */
typedef struct outcome_count {
  tu_counter oks, errors;
} outcome_count;

static void count_ok(pp_result *r, void *user) {
  (void)r;
  tu_counter_inc(&((outcome_count *)user)->oks);
}

static void count_error(pp_result *r, void *user) {
  (void)r;
  tu_counter_inc(&((outcome_count *)user)->errors);
}

static void test_cancel_empty_map(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t ms = 10000;
  pp_bytes slow = tu_i64(&ms);
  pp_result *busy = NULL, *ahead = NULL, *empty = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &busy),
                        PP_OK);
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "sleep_ms", &slow, 1, NULL, &ahead), PP_OK);
  outcome_count n;
  tu_counter_init(&n.oks);
  tu_counter_init(&n.errors);
  pp_callbacks cb = {count_ok, count_error, &n, 0};
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "square", NULL, 0, 1, &cb, &empty),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_cancel(empty), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(empty, TU_WAIT), PP_ECANCELLED);
  CU_ASSERT(tu_contains(pp_result_error(empty), "cancelled"));
  CU_ASSERT_EQUAL(tu_counter_wait(&n.errors, 1, TU_WAIT), 1);
  CU_ASSERT_EQUAL(tu_counter_get(&n.oks), 0);
  CU_ASSERT_EQUAL(pp_result_cancel(ahead), PP_OK);
  CU_ASSERT_EQUAL(pp_result_cancel(busy), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(ahead, TU_WAIT), PP_ECANCELLED);
  CU_ASSERT_EQUAL(pp_result_get(busy, TU_WAIT), PP_ECANCELLED);
  pp_result_free(empty);
  pp_result_free(ahead);
  pp_result_free(busy);
  pp_pool_destroy(pool);
}

#ifndef _WIN32
/* The same when the call's time limit is stopping its worker (the task
 * ignores SIGTERM, so the pool waits out its grace before SIGKILL) as the
 * cancel comes: the call ends cancelled. It said PP_ETIMELIMIT. */
static void test_cancel_wins_over_time_limit(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  char marker[128];
  snprintf(marker, sizeof marker, "pp_tests_term_%ld", tu_self_pid());
  int64_t ignore = 0;
  pp_bytes args[2] = {tu_i64(&ignore), {marker, strlen(marker)}};
  pp_callbacks cb = {0};
  cb.time_limit = 0.2;
  for (int round = 0; round < 2; round++) {
    pp_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(
        pp_apply_async(pool, "slow_with_term", args, 2, &cb, &r), PP_OK);
    tu_sleep_ms(300); /* past its limit, inside the grace */
    CU_ASSERT_EQUAL(pp_result_cancel(r), PP_OK);
    CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ECANCELLED);
    CU_ASSERT(tu_contains(pp_result_error(r), "cancelled"));
    if (pp_result_get(r, 0) != PP_ECANCELLED)
      fprintf(stderr, "\n  round %d: %s\n", round, pp_result_error(r));
    pp_result_free(r);
  }
  pp_pool_destroy(pool);
}
#endif

/* ---- cancels in a long queue: each takes out its own chunks, wherever
 * they are (queue.c), and the rest keeps its order ---- */

#define CQ_LEN 300 /* calls queued behind a blocker */

/* What the callbacks saw: the values of the calls answered, in the order
 * they were answered (one worker answers in queue order), and the error
 * callbacks' runs. Callbacks run on the scheduler thread, one at a time;
 * the test reads the log once the results it waits for are ready. */
typedef struct cq_log {
  tu_counter oks, errors;
  int64_t answered[CQ_LEN];
  long cancelled; /* error callbacks whose result said "cancelled" */
} cq_log;

static void cq_log_init(cq_log *log) {
  memset(log, 0, sizeof *log);
  tu_counter_init(&log->oks);
  tu_counter_init(&log->errors);
}

static void cq_on_value(pp_result *r, void *user) {
  cq_log *log = user;
  int64_t v = -1; /* a map's: counted only */
  if (pp_result_count(r) == 1 && pp_result_i64(r, &v) != PP_OK)
    v = -2;
  long k = tu_counter_get(&log->oks);
  if (k < CQ_LEN)
    log->answered[k] = v;
  tu_counter_inc(&log->oks);
}

static void cq_on_error(pp_result *r, void *user) {
  cq_log *log = user;
  if (tu_contains(pp_result_error(r), "cancelled"))
    log->cancelled++;
  tu_counter_inc(&log->errors);
}

/* A call that holds the pool's only worker until it is cancelled. */
static pp_result *cq_blocker(pp_pool *pool) {
  int64_t ms = 60000;
  pp_bytes arg = tu_i64(&ms);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_apply_async(pool, "sleep_ms", &arg, 1, NULL, &r), PP_OK);
  return r;
}

/* Cancels the blocker: its worker is stopped, and the queue goes to the
 * replacement. */
static void cq_unblock(pp_result *blocker) {
  CU_ASSERT_EQUAL(pp_result_cancel(blocker), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(blocker, TU_WAIT), PP_ECANCELLED);
  pp_result_free(blocker);
}

/* `n` squares of 0 .. n-1 queued, each with the log's callbacks. */
static void cq_queue(pp_pool *pool, cq_log *log, int64_t *x, pp_result **r,
                     size_t n) {
  pp_callbacks cbs = {cq_on_value, cq_on_error, log, 0};
  for (size_t i = 0; i < n; i++) {
    x[i] = (int64_t)i;
    pp_bytes arg = tu_i64(&x[i]);
    CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &arg, 1, &cbs, &r[i]),
                          PP_OK);
  }
}

/* The calls not in `gone` were answered right, once each, in queue
 * order. */
static void cq_check_rest(cq_log *log, pp_result **r, const char *gone,
                          size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (gone[i])
      continue;
    int64_t v = -1;
    CU_ASSERT_EQUAL(pp_result_get(r[i], TU_WAIT), PP_OK);
    CU_ASSERT_EQUAL(pp_result_i64(r[i], &v), PP_OK);
    CU_ASSERT_EQUAL(v, (int64_t)(i * i));
    if (k < CQ_LEN && log->answered[k] != (int64_t)(i * i)) {
      CU_FAIL("a call was answered out of queue order");
      k = CQ_LEN; /* once */
    }
    k++;
  }
  CU_ASSERT_EQUAL(tu_counter_get(&log->oks), (long)k);
}

/* 1 when the pool's queue holds `want`, in order, linked right both ways. */
static int cq_queue_is(const pp_pool *pool, pp__chunk *const *want, size_t n) {
  const pp__chunk *c = pool->queue_head, *prev = NULL;
  for (size_t i = 0; i < n; prev = c, c = c->next, i++)
    if (c != want[i] || c->prev != prev)
      return 0;
  if (c || pool->queue_tail != prev)
    return 0;
  c = pool->queue_tail;
  for (size_t i = n; i-- > 0; c = c->prev)
    if (c != want[i])
      return 0;
  return c == NULL;
}

/* How many chunks `job` lists as queued, each once, in the queue and in
 * its order, its tail right; (size_t)-1 when they are not. */
static size_t cq_job_queued(const pp_pool *pool, const pp__job *job) {
  size_t n = 0;
  const pp__chunk *prev = NULL, *q = pool->queue_head;
  for (const pp__chunk *c = job->queued; c; prev = c, c = c->job_next) {
    /* In the queue, after the one listed before it */
    while (q && q != c)
      q = q->next;
    if (c->job != job || !q || ++n > 64)
      return (size_t)-1;
    q = q->next;
  }
  return job->queued_tail == prev ? n : (size_t)-1;
}

/* 1 when the pool's drops list holds exactly `want` (n of them), each
 * marked, linked right both ways. */
static int cq_drops_are(const pp_pool *pool, pp__job *const *want, size_t n) {
  size_t found = 0;
  const pp__job *prev = NULL;
  for (const pp__job *j = pool->drops; j; prev = j, j = j->drop_next) {
    int listed = 0;
    for (size_t i = 0; i < n; i++)
      listed |= j == want[i];
    if (!listed || !j->dropping || j->drop_prev != prev || ++found > n)
      return 0;
  }
  return found == n;
}

/* The queue on its own (queue.c), without a pool's threads: chunks taken
 * out at the head, in the middle and at the tail, a worker's chunks put
 * back in front, then one behind them taken out; both directions and each
 * job's own list stay right, and a job is on the drops list exactly while
 * it is cancelled or unwanted with chunks queued. */
static void test_cancel_queue_links(void) {
  static pp_pool pool;
  static pp__job a, b;
  static pp__chunk c[8];
  memset(&pool, 0, sizeof pool);
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(c, 0, sizeof c);
  for (size_t i = 0; i < 8; i++)
    c[i].job = i % 2 ? &b : &a;
  /* One chunk a run, as an imap appends them */
  for (size_t i = 0; i < 6; i++) {
    pp__chunk *first = NULL, *last = NULL;
    pp__queue_run_add(&first, &last, &c[i], c[i].job);
    pp__queue_append_run_locked(&pool, first, last);
  }
  pp__chunk *all[] = {&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]};
  CU_ASSERT(cq_queue_is(&pool, all, 6));
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &a), 3);
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &b), 3);
  pp__queue_remove_locked(&pool, &c[0]); /* head */
  pp__queue_remove_locked(&pool, &c[3]); /* middle */
  pp__queue_remove_locked(&pool, &c[5]); /* tail */
  CU_ASSERT_PTR_NULL(c[3].next);
  CU_ASSERT_PTR_NULL(c[3].prev);
  pp__chunk *left[] = {&c[1], &c[2], &c[4]};
  CU_ASSERT(cq_queue_is(&pool, left, 3));
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &a), 2);
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &b), 1);
  /* A worker's unstarted chunks, back in front */
  c[6].next = &c[7];
  c[7].next = NULL;
  pp__queue_prepend_locked(&pool, &c[6], &c[7]);
  pp__chunk *back[] = {&c[6], &c[7], &c[1], &c[2], &c[4]};
  CU_ASSERT(cq_queue_is(&pool, back, 5));
  pp__queue_remove_locked(&pool, &c[1]); /* the head before, now behind */
  pp__chunk *after[] = {&c[6], &c[7], &c[2], &c[4]};
  CU_ASSERT(cq_queue_is(&pool, after, 4));
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &a), 3);
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &b), 1);
  /* b cancelled: listed while it has chunks queued, and again when one is
   * queued after (a worker gave it back) */
  CU_ASSERT(cq_drops_are(&pool, NULL, 0));
  b.cancelled = 1;
  pp__queue_drop_job_locked(&pool, &b);
  pp__job *just_b[] = {&b}, *both[] = {&a, &b}, *just_a[] = {&a};
  CU_ASSERT(cq_drops_are(&pool, just_b, 1));
  pp__queue_remove_locked(&pool, &c[7]);
  CU_ASSERT(cq_drops_are(&pool, NULL, 0));
  CU_ASSERT_PTR_NULL(b.queued);
  c[3].next = NULL;
  pp__queue_prepend_locked(&pool, &c[3], &c[3]);
  CU_ASSERT(cq_drops_are(&pool, just_b, 1));
  a.unwanted = 1;
  pp__queue_drop_job_locked(&pool, &a);
  CU_ASSERT(cq_drops_are(&pool, both, 2));
  pp__queue_drop_job_locked(&pool, &a); /* listed once */
  CU_ASSERT(cq_drops_are(&pool, both, 2));
  pp__queue_remove_locked(&pool, &c[3]);
  CU_ASSERT(cq_drops_are(&pool, just_a, 1));
  pp__chunk *only_a[] = {&c[6], &c[2], &c[4]};
  CU_ASSERT(cq_queue_is(&pool, only_a, 3));
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &a), 3);
  /* Drained as the scheduler drops a job's chunks: the first it lists */
  while (pool.drops)
    pp__queue_remove_locked(&pool, pool.drops->queued);
  CU_ASSERT(cq_queue_is(&pool, NULL, 0));
  CU_ASSERT_PTR_NULL(a.queued);
  CU_ASSERT_EQUAL(a.dropping, 0);
  CU_ASSERT_EQUAL(b.dropping, 0);

  /* Runs of many chunks, as a map appends them: a job's second run joins
   * its list, a chunk comes out of a run's middle, and a cancel drops the
   * rest. */
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(c, 0, sizeof c);
  pp__chunk *first = NULL, *last = NULL;
  pp__queue_run_add(&first, &last, &c[0], &a);
  pp__queue_append_run_locked(&pool, first, last);
  first = last = NULL;
  for (size_t i = 1; i < 4; i++)
    pp__queue_run_add(&first, &last, &c[i], &b);
  pp__queue_append_run_locked(&pool, first, last);
  first = last = NULL;
  for (size_t i = 4; i < 8; i++)
    pp__queue_run_add(&first, &last, &c[i], &a);
  pp__queue_append_run_locked(&pool, first, last);
  pp__chunk *runs[] = {&c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6], &c[7]};
  CU_ASSERT(cq_queue_is(&pool, runs, 8));
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &a), 5);
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &b), 3);
  pp__queue_remove_locked(&pool, &c[2]);
  pp__queue_remove_locked(&pool, &c[5]);
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &a), 4);
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &b), 2);
  a.cancelled = 1;
  pp__queue_drop_job_locked(&pool, &a);
  while (pool.drops)
    pp__queue_remove_locked(&pool, pool.drops->queued);
  pp__chunk *b_left[] = {&c[1], &c[3]};
  CU_ASSERT(cq_queue_is(&pool, b_left, 2));
  CU_ASSERT_PTR_NULL(a.queued);
  CU_ASSERT_EQUAL(cq_job_queued(&pool, &b), 2);
}

/* Cancelled one at a time, each waited for, from the head, the middle and
 * the tail of a long queue and next to where one was taken out: each
 * completes as cancelled at once (its error callback run) while the
 * worker is still busy, and the rest then run in their order. */
static void test_cancel_in_long_queue(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static cq_log log;
  static int64_t x[CQ_LEN];
  static pp_result *r[CQ_LEN];
  char gone[CQ_LEN] = {0};
  cq_log_init(&log);
  pp_result *blocker = cq_blocker(pool);
  CU_ASSERT_PTR_NOT_NULL_FATAL(blocker);
  cq_queue(pool, &log, x, r, CQ_LEN);
  static const size_t picks[] = {
      0,          CQ_LEN / 2,     CQ_LEN - 1, 1, CQ_LEN / 2 + 1,
      CQ_LEN - 2, CQ_LEN / 2 - 1, CQ_LEN - 3, 2};
  size_t npicks = sizeof picks / sizeof picks[0];
  for (size_t k = 0; k < npicks; k++) {
    size_t i = picks[k];
    gone[i] = 1;
    CU_ASSERT_EQUAL(pp_result_cancel(r[i]), PP_OK);
    CU_ASSERT_EQUAL(pp_result_get(r[i], TU_WAIT), PP_ECANCELLED);
    CU_ASSERT(tu_contains(pp_result_error(r[i]), "cancelled"));
    CU_ASSERT_EQUAL(tu_counter_get(&log.errors), (long)k + 1);
    CU_ASSERT_EQUAL(pp_result_cancel(r[i]), PP_ESTATE);
  }
  CU_ASSERT_EQUAL(pp_result_ready(blocker), 0);
  CU_ASSERT_EQUAL(log.cancelled, (long)npicks);
  /* New work joins behind what is left, at the tail. */
  int64_t late = 1000, got = 0;
  pp_bytes late_arg = tu_i64(&late);
  pp_result *last = NULL;
  CU_ASSERT_EQUAL(pp_apply_async(pool, "square", &late_arg, 1, NULL, &last),
                  PP_OK);
  cq_unblock(blocker);
  cq_check_rest(&log, r, gone, CQ_LEN);
  CU_ASSERT_EQUAL(pp_result_get(last, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(pp_result_i64(last, &got), PP_OK);
  CU_ASSERT_EQUAL(got, 1000000);
  CU_ASSERT_EQUAL(tu_counter_get(&log.errors), (long)npicks);
  pp_result_free(last);
  for (size_t i = 0; i < CQ_LEN; i++)
    pp_result_free(r[i]);
  pp_pool_destroy(pool);
}

/* A map cancelled with calls queued before and after it: all its chunks
 * go (every item cancelled, its error callback run once), the calls
 * around it run in their order, a map queued behind it too. */
static void test_cancel_map_in_queue(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static cq_log log, map_log;
  cq_log_init(&log);
  cq_log_init(&map_log);
  pp_result *blocker = cq_blocker(pool);
  CU_ASSERT_PTR_NOT_NULL_FATAL(blocker);
  pp_callbacks cbs = {cq_on_value, cq_on_error, &log, 0};
  pp_callbacks map_cbs = {cq_on_value, cq_on_error, &map_log, 0};
  int64_t before = 2, after = 3, vals[100], got = 0;
  pp_bytes items[100];
  tu_i64_items(vals, items, 100, 0);
  pp_bytes a_arg = tu_i64(&before), b_arg = tu_i64(&after);
  pp_result *a = NULL, *m = NULL, *b = NULL, *m2 = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &a_arg, 1, &cbs, &a),
                        PP_OK);
  CU_ASSERT_EQUAL_FATAL(
      pp_map_async(pool, "square", items, 100, 7, &map_cbs, &m), PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &b_arg, 1, &cbs, &b),
                        PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "square", items, 10, 3, &cbs, &m2),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_chunks(m), 15);
  CU_ASSERT_EQUAL(pp_result_cancel(m), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(m, TU_WAIT), PP_ECANCELLED);
  CU_ASSERT_EQUAL(tu_counter_get(&map_log.errors), 1);
  CU_ASSERT_EQUAL(map_log.cancelled, 1);
  CU_ASSERT_EQUAL(tu_counter_get(&map_log.oks), 0);
  CU_ASSERT_EQUAL(pp_result_count(m), 100);
  for (size_t i = 0; i < 100; i++) {
    pp_bytes out;
    if (pp_result_item(m, i, &out) != PP_ECANCELLED) {
      CU_FAIL("an item of the cancelled map is not cancelled");
      break;
    }
  }
  CU_ASSERT_EQUAL(pp_result_ready(a), 0);
  CU_ASSERT_EQUAL(pp_result_ready(b), 0);
  CU_ASSERT_EQUAL(pp_result_ready(m2), 0);
  cq_unblock(blocker);
  CU_ASSERT_EQUAL(pp_result_get(a, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(pp_result_i64(a, &got), PP_OK);
  CU_ASSERT_EQUAL(got, 4);
  CU_ASSERT_EQUAL(pp_result_get(b, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(pp_result_i64(b, &got), PP_OK);
  CU_ASSERT_EQUAL(got, 9);
  CU_ASSERT_EQUAL(pp_result_get(m2, TU_WAIT), PP_OK);
  for (size_t i = 0; i < 10; i++) {
    CU_ASSERT_EQUAL(pp_result_item_i64(m2, i, &got), PP_OK);
    CU_ASSERT_EQUAL(got, (int64_t)(i * i));
  }
  CU_ASSERT_EQUAL(tu_counter_get(&log.oks), 3);
  CU_ASSERT_EQUAL(log.answered[0], 4); /* a, b, then the map: in order */
  CU_ASSERT_EQUAL(log.answered[1], 9);
  CU_ASSERT_EQUAL(log.answered[2], -1);
  CU_ASSERT_EQUAL(tu_counter_get(&log.errors), 0);
  pp_result_free(a);
  pp_result_free(m);
  pp_result_free(b);
  pp_result_free(m2);
  pp_pool_destroy(pool);
}

/* Every other call of a long queue cancelled, all at once, then waited
 * for: the others all run, right and in order, and the pool's count of
 * work left ends at none (a join returns). */
static void test_cancel_every_other(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static cq_log log;
  static int64_t x[CQ_LEN];
  static pp_result *r[CQ_LEN];
  char gone[CQ_LEN] = {0};
  cq_log_init(&log);
  pp_result *blocker = cq_blocker(pool);
  CU_ASSERT_PTR_NOT_NULL_FATAL(blocker);
  cq_queue(pool, &log, x, r, CQ_LEN);
  for (size_t i = 0; i < CQ_LEN; i += 2) {
    gone[i] = 1;
    CU_ASSERT_EQUAL(pp_result_cancel(r[i]), PP_OK);
  }
  for (size_t i = 0; i < CQ_LEN; i += 2)
    CU_ASSERT_EQUAL(pp_result_get(r[i], TU_WAIT), PP_ECANCELLED);
  CU_ASSERT_EQUAL(tu_counter_get(&log.errors), CQ_LEN / 2);
  CU_ASSERT_EQUAL(log.cancelled, CQ_LEN / 2);
  CU_ASSERT_EQUAL(pp_result_ready(blocker), 0);
  cq_unblock(blocker);
  cq_check_rest(&log, r, gone, CQ_LEN);
  CU_ASSERT_EQUAL(tu_counter_get(&log.errors), CQ_LEN / 2);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  tu_joiner *j = tu_joiner_start(pool);
  CU_ASSERT(tu_joiner_wait(j, TU_WAIT));
  CU_ASSERT_EQUAL(tu_joiner_status(j), PP_OK);
  tu_joiner_free(j);
  for (size_t i = 0; i < CQ_LEN; i++)
    pp_result_free(r[i]);
  pp_pool_destroy(pool);
}

/* Cancels while the scheduler hands the same queue out to two workers:
 * each call ends once, as cancelled when its cancel was taken, answered
 * right otherwise; a map cancelled part-way too; then the pool works and
 * a join returns. */
static void test_cancel_racing_dispatch(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static cq_log log;
  static int64_t x[CQ_LEN];
  static pp_result *r[CQ_LEN];
  cq_log_init(&log);
  for (int round = 0; round < 3; round++) {
    cq_log_init(&log);
    int64_t vals[400];
    pp_bytes items[400];
    tu_i64_items(vals, items, 400, 0);
    pp_result *m = NULL;
    cq_queue(pool, &log, x, r, CQ_LEN / 2);
    CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "square", items, 400, 4, NULL, &m),
                          PP_OK);
    cq_queue(pool, &log, x + CQ_LEN / 2, r + CQ_LEN / 2, CQ_LEN / 2);
    pp_status map_cancel = PP_OK;
    char taken[CQ_LEN] = {0};
    /* From the tail back, every third, the map when half-way */
    for (size_t k = CQ_LEN; k-- > 0;) {
      if (k == CQ_LEN / 2)
        map_cancel = pp_result_cancel(m);
      if (k % 3 != (size_t)round)
        continue;
      pp_status st = pp_result_cancel(r[k]);
      CU_ASSERT(st == PP_OK || st == PP_ESTATE);
      taken[k] = st == PP_OK;
    }
    long ncancelled = 0;
    for (size_t i = 0; i < CQ_LEN; i++) {
      pp_status st = pp_result_get(r[i], TU_WAIT);
      int64_t want = (int64_t)(i < CQ_LEN / 2 ? i : i - CQ_LEN / 2), v = -1;
      if (taken[i]) {
        CU_ASSERT_EQUAL(st, PP_ECANCELLED);
        ncancelled++;
      } else {
        CU_ASSERT_EQUAL(st, PP_OK);
        CU_ASSERT_EQUAL(pp_result_i64(r[i], &v), PP_OK);
        CU_ASSERT_EQUAL(v, want * want);
      }
    }
    pp_status mst = pp_result_get(m, TU_WAIT);
    CU_ASSERT(map_cancel == PP_OK ? mst == PP_ECANCELLED : mst == PP_OK);
    CU_ASSERT_EQUAL(tu_counter_wait(&log.errors, ncancelled, TU_WAIT),
                    ncancelled);
    CU_ASSERT_EQUAL(tu_counter_get(&log.oks), CQ_LEN - ncancelled);
    pp_result_free(m);
    for (size_t i = 0; i < CQ_LEN; i++)
      pp_result_free(r[i]);
  }
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 12, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 144);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  tu_joiner *j = tu_joiner_start(pool);
  CU_ASSERT(tu_joiner_wait(j, TU_WAIT));
  tu_joiner_free(j);
  pp_pool_destroy(pool);
}

/* An imap's input: the same long task for ever, its pulls counted. */
static pp_status cq_slow_forever(void *state, pp_bytes *item) {
  static const int64_t ms = 3000;
  tu_counter_inc(state);
  item->data = &ms;
  item->len = sizeof ms;
  return PP_OK;
}

/* A freed imap's queued chunks (3 s each, a window of them) are dropped
 * at once, in the same pass as a call cancelled beside them: a call
 * queued behind them runs as soon as the worker is free. */
static void test_cancel_with_freed_imap(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_result *blocker = cq_blocker(pool);
  CU_ASSERT_PTR_NOT_NULL_FATAL(blocker);
  int64_t two = 2, seven = 7, got = 0;
  pp_bytes two_arg = tu_i64(&two), seven_arg = tu_i64(&seven);
  pp_result *doomed = NULL, *behind = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "square", &two_arg, 1, NULL, &doomed), PP_OK);
  tu_counter pulls;
  tu_counter_init(&pulls);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap(pool, "sleep_ms", cq_slow_forever, &pulls, 1, &it), PP_OK);
  CU_ASSERT(tu_counter_wait(&pulls, 8, TU_WAIT) >= 8);
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "square", &seven_arg, 1, NULL, &behind), PP_OK);
  pp_iter_free(it);
  CU_ASSERT_EQUAL(pp_result_cancel(doomed), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(doomed, TU_WAIT), PP_ECANCELLED);
  CU_ASSERT_EQUAL(pp_result_ready(behind), 0);
  cq_unblock(blocker);
  /* Not dropped, the imap's chunks would hold it 24 s and more. */
  CU_ASSERT_EQUAL(pp_result_get(behind, TU_WAIT), PP_OK);
  CU_ASSERT_EQUAL(pp_result_i64(behind, &got), PP_OK);
  CU_ASSERT_EQUAL(got, 49);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  tu_joiner *j = tu_joiner_start(pool);
  CU_ASSERT(tu_joiner_wait(j, TU_WAIT));
  tu_joiner_free(j);
  pp_result_free(doomed);
  pp_result_free(behind);
  pp_pool_destroy(pool);
}

/* Worker starts that fail (no process slot for a moment): retried after
 * a pause, and the pool then works as if nothing had happened. */
static void test_start_fails_for_a_moment(void) {
  pp__test.failed_starts = 3;
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 11, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 121);
  CU_ASSERT_EQUAL(pp__test.failed_starts, 0); /* all three were tried */
  pp_pool_destroy(pool);
  pp__test.failed_starts = 0;
}

/* Worker starts that fail for a while (a container at its process limit
 * for a few seconds): retried, each pause twice the one before, and the
 * pool then works. Nine failures in a row take about 3 s so; they broke
 * the pool when the pauses were 50 ms and nine failures the limit. */
static void test_start_fails_for_a_while(void) {
  pp__test.failed_starts = 9;
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t y = 0;
  pp_status st = tu_apply_i64(pool, "square", 12, &y);
  CU_ASSERT_EQUAL(st, PP_OK);
  CU_ASSERT_EQUAL(y, 144);
  CU_ASSERT_EQUAL(pp__test.failed_starts, 0); /* all nine were tried */
  pp_pool_destroy(pool);
  pp__test.failed_starts = 0;
}

/* Worker starts that keep failing: the pool stops trying once they have
 * failed for its give-up time (5 s; 300 ms here, by a test hook) and is
 * broken with the reason; the call waiting for a worker fails with it
 * instead of waiting forever, and so does the next one. */
static void test_start_always_fails(void) {
  pp__test.failed_starts = 1000;
  pp__test.start_give_up_ms = 300;
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t x = 4;
  pp_bytes arg = tu_i64(&x);
  /* A bounded wait: a pool that kept trying would fail the test, not hang
   * it. */
  for (int call = 0; call < 2; call++) {
    pp_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &arg, 1, NULL, &r),
                          PP_OK);
    CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ESYSTEM);
    CU_ASSERT(tu_contains(pp_result_error(r), "could not start a worker"));
    CU_ASSERT(tu_contains(pp_result_error(r), "failed)"));
    if (!tu_contains(pp_result_error(r), "attempts over"))
      fprintf(stderr, "\n  said: %s\n", pp_result_error(r));
    CU_ASSERT(tu_contains(pp_result_error(r), "attempts over"));
    pp_result_free(r);
  }
  /* A few attempts, then none: the pool stopped trying. */
  CU_ASSERT(pp__test.failed_starts >= 1000 - 20);
  pp_pool_destroy(pool);
  pp__test.failed_starts = 0;
  pp__test.start_give_up_ms = 0;
}

int pp_test_suite_reliability(void) {
  static const tu_test tests[] = {
#ifndef _WIN32
      {"worker SIGKILLs itself: that task fails, pool goes on",
       test_death_sigkill},
#endif
      {"worker aborts: that task fails, pool goes on", test_death_abort},
      {"worker dereferences NULL: that task fails", test_death_null},
      {"worker calls exit(3): that task fails with code 3", test_death_exit3},
      {"worker calls exit(124), the memory limit's code: that task fails",
       test_death_exit_recycle_code},
      {"worker calls exit(119), a launcher's code: named as a task's exit",
       test_death_exit_launcher_code},
      {"worker exits with 120: the task's error says what procpool means "
       "by it",
       test_death_bad_launch_code},
      {"work queued behind a dying task is re-sent",
       test_queued_work_is_resent},
#ifndef _WIN32
      {"a worker killed while idle costs no call sent to it meanwhile",
       test_idle_death_costs_no_call},
#endif
      {"map of 1000 with every 100th killing its worker", test_map_with_deaths},
      {"imap of 1000 with every 100th killing its worker",
       test_imap_with_deaths},
      {"5000 mixed tasks: every result exactly once", test_mixed_campaign},
      {"time limit (pool option): overdue worker killed, replaced",
       test_time_limit_pool},
      {"time limit per call overrides the pool's", test_time_limit_per_call},
      {"time limit: an answer in time is not failed while a callback runs",
       test_time_limit_slow_callback},
      {"time limit: a call sent after a slow callback counts from then",
       test_time_limit_call_sent_after_slow_callback},
#ifndef _WIN32
      {"time limit: SIGTERM first, SIGKILL after a grace",
       test_time_limit_terminate_then_kill},
#endif
      {"cancel a queued call and a running one", test_cancel},
      {"a cancel taken ends the call cancelled, though an item failed first",
       test_cancel_wins_over_failed_item},
      {"a cancelled empty map ends cancelled", test_cancel_empty_map},
#ifndef _WIN32
      {"a cancel taken ends the call cancelled, though its time limit was "
       "stopping it",
       test_cancel_wins_over_time_limit},
#endif
      {"the queue: taken out anywhere, put back in front, links stay right",
       test_cancel_queue_links},
      {"cancel one by one from the head, middle and tail of a long queue",
       test_cancel_in_long_queue},
      {"cancel a map with calls queued around it", test_cancel_map_in_queue},
      {"cancel every other queued call: the rest run in order",
       test_cancel_every_other},
      {"cancels racing with dispatch: each call ends once, rightly",
       test_cancel_racing_dispatch},
      {"a freed imap's queued chunks go with a cancel beside them",
       test_cancel_with_freed_imap},
      {"malformed frames from a worker: it is killed, its task fails",
       test_malformed_frames},
      {"max_memory_per_child: a grown worker is replaced, nothing lost",
       test_max_memory_per_child},
      {"a message past a lane: its buffers are given back once it passed",
       test_big_message_memory_given_back},
      {"an initializer that crashes: reported, no respawn loop",
       test_initializer_crash},
      {"an initializer past the pool's time limit breaks the pool",
       test_initializer_time_limit},
#ifndef _WIN32
      {"a worker killed from outside in its initializer is replaced",
       test_initializer_killed_from_outside},
#endif
      {"worker starts fail for a moment: retried, the pool works",
       test_start_fails_for_a_moment},
      {"worker starts fail for seconds: retried, slower each time, the pool "
       "works",
       test_start_fails_for_a_while},
      {"worker starts keep failing: the pool breaks, calls say why",
       test_start_always_fails},
#ifndef _WIN32
      {"out of descriptors: calls fail with the system's reason",
       test_out_of_descriptors},
      {"near the descriptor limit: a pool that could be made works",
       test_near_descriptor_limit},
#endif
#ifdef __linux__
      {"200 pools: no descriptor or process leaks",
       test_many_pools_leak_nothing},
#endif
#ifndef _WIN32
      {"a worker told to leave that cannot is killed: join ends",
       test_stuck_leaver_killed},
      {"owner SIGKILLed: its workers exit", test_owner_killed},
      {"owner SIGKILLed while its workers run tasks: they exit",
       test_owner_killed_busy},
      {"owner ignores or reaps SIGCHLD: deaths still say how",
       test_owner_sigchld},
      {"a worker dies while a child its task forked lives on: reported at "
       "once",
       test_death_with_lingering_child},
      {"a task closes its worker's channel: its error says so, pool goes on",
       test_task_closes_channel},
      {"Ctrl-C (SIGINT) at the workers: ignored by an initializer, or "
       "as the context gives it",
       test_interrupt_reaches_workers},
      {"a signal the program blocks to wait for it reaches the wait, not "
       "the pool's threads",
       test_blocked_signal_reaches_program},
      {"a timer's signals interrupting every call: right answers, no hang",
       test_interrupted_calls},
#endif
#ifdef __linux__
      {"the launcher is killed: its task fails, a new one starts workers",
       test_launcher_killed},
      {"the launcher stopped: a join does not wait for it for ever",
       test_launcher_stopped},
      {"a launcher that keeps dying breaks the pool, and calls say why",
       test_launcher_keeps_dying},
      {"a launcher that cannot set itself up says why; the pool names its "
       "code",
       test_launcher_setup_fails},
      {"workers keep the creating thread's signal mask, after a new "
       "launcher too",
       test_workers_keep_creators_mask},
#endif
  };
  return tu_add_suite("reliability", tests, TU_NTESTS(tests));
}
