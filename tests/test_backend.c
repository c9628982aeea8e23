/* The POSIX backend alone, through the internal interface (backend.h):
 * starting workers, moving bytes, exits, kills, wake-ups, slot reuse and
 * cleanup. Workers here are plain worker_main functions, valid in the
 * child because the fork context forks. */
#ifdef _WIN32
/* Windows has its own backend suite, "win32" (test_win32.c). */
typedef int pp_test_backend_is_posix_only;
#else
#define _POSIX_C_SOURCE 200809L

#include "backend.h"
#include "posix.h"
#include "util.h"

#include <CUnit/CUnit.h>

#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NSLOTS 4
/* Bound of every wait for something that should happen at once. */
#define DEADLINE_MS 10000L
/* A small capacity, so that events are also kept for the next call. */
#define EVENT_CAPACITY 3

/* ---- worker programs ---- */

/* Sends back every byte until EOF. */
static int echo_main(pp__wchan *chan, const char *key) {
  (void)key;
  pp__buf buf = {0};
  int code = 0;
  for (;;) {
    pp_status st = pp__wchan_read(chan, &buf);
    if (st == PP_EOF)
      break;
    if (st != PP_OK) {
      code = 10;
      break;
    }
    if (pp__wchan_write(chan, pp__buf_head(&buf), pp__buf_len(&buf)) != PP_OK) {
      code = 11;
      break;
    }
    pp__buf_clear(&buf);
  }
  pp__buf_free(&buf);
  return code;
}

/* Echoes, and dies by SIGKILL on a 'K'. */
static int suicide_main(pp__wchan *chan, const char *key) {
  (void)key;
  pp__buf buf = {0};
  for (;;) {
    if (pp__wchan_read(chan, &buf) != PP_OK)
      break;
    if (memchr(pp__buf_head(&buf), 'K', pp__buf_len(&buf)))
      raise(SIGKILL);
    if (pp__wchan_write(chan, pp__buf_head(&buf), pp__buf_len(&buf)) != PP_OK)
      break;
    pp__buf_clear(&buf);
  }
  pp__buf_free(&buf);
  return 0;
}

static int exit7_main(pp__wchan *chan, const char *key) {
  (void)key;
  (void)chan;
  return 7;
}

/* Never reads, never ends by itself. */
static int stubborn_main(pp__wchan *chan, const char *key) {
  (void)key;
  pp__wchan_before_user_code(chan); /* busy from here on, as in a task */
  signal(SIGTERM, SIG_IGN);
  for (;;) {
    pause();
  }
  return 0; /* not reached */
}

/* Reports how many descriptors above 2 it holds (its channel alone,
 * expected), then echoes. */
static int fdcount_main(pp__wchan *chan, const char *key) {
  (void)key;
  pp__wchan_before_user_code(chan); /* what a task would see */
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536)
    max = 65536;
  unsigned char count = 0;
  for (long fd = 3; fd < max; fd++)
    if (fcntl((int)fd, F_GETFD) >= 0 && count < 255)
      count++;
  if (pp__wchan_write(chan, &count, 1) != PP_OK)
    return 12;
  return echo_main(chan, key);
}

/* Writes its parent's pid (the launcher's), then echoes. */
static int ppid_main(pp__wchan *chan, const char *key) {
  (void)key;
  long ppid = (long)getppid();
  if (pp__wchan_write(chan, &ppid, sizeof ppid) != PP_OK)
    return 12;
  return echo_main(chan, key);
}

/* Writes its parent's pid and how many descriptors above 2 it holds, then
 * echoes; exits with code 7 on an 'X', dies by SIGKILL on a 'K'. */
static int report_main(pp__wchan *chan, const char *key) {
  (void)key;
  pp__wchan_before_user_code(chan); /* what a task would see */
  long head[2] = {(long)getppid(), 0};
  for (int fd = 3; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0)
      head[1]++;
  if (pp__wchan_write(chan, head, sizeof head) != PP_OK)
    return 12;
  pp__buf buf = {0};
  int code = 0;
  while (pp__wchan_read(chan, &buf) == PP_OK) {
    if (memchr(pp__buf_head(&buf), 'X', pp__buf_len(&buf))) {
      code = 7;
      break;
    }
    if (memchr(pp__buf_head(&buf), 'K', pp__buf_len(&buf)))
      raise(SIGKILL);
    if (pp__wchan_write(chan, pp__buf_head(&buf), pp__buf_len(&buf)) != PP_OK)
      break;
    pp__buf_clear(&buf);
  }
  pp__buf_free(&buf);
  return code;
}

/* Writes only after the parent hung up: the write must fail with PP_EOF,
 * not kill the worker with SIGPIPE. */
static int late_writer_main(pp__wchan *chan, const char *key) {
  (void)key;
  pp__buf buf = {0};
  pp_status st;
  while ((st = pp__wchan_read(chan, &buf)) == PP_OK)
    pp__buf_clear(&buf);
  pp__buf_free(&buf);
  if (st != PP_EOF)
    return 13;
  return pp__wchan_write(chan, "late", 4) == PP_EOF ? 0 : 14;
}

/* ---- harness ---- */

typedef struct seen {
  long pid;
  int started, start_failed, closed, exited, inputs;
  pp__exit exit;
  pp_status status;
} seen;

typedef struct harness {
  pp__backend *b;
  seen s[NSLOTS];
  int wakes, broken;
} harness;

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pid_gone(long pid) {
  return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/* Waits up to 5 s for `pid` to be gone: a launcher's worker is reaped by
 * whoever inherits it, not by us. */
static int pid_gone_soon(long pid) {
  long until = now_ms() + 5000;
  while (!pid_gone(pid) && now_ms() < until) {
    struct timespec ms = {0, 20 * 1000000L};
    nanosleep(&ms, NULL);
  }
  return pid_gone(pid);
}

/* One wait; records the events and checks their order per slot. */
static void pump(harness *h, long ms) {
  pp__event ev[EVENT_CAPACITY];
  size_t n = 0;
  pp_status st = pp__backend_wait(h->b, ms, ev, EVENT_CAPACITY, &n);
  CU_ASSERT_EQUAL(st, PP_OK);
  CU_ASSERT(n <= EVENT_CAPACITY);
  for (size_t k = 0; k < n; k++) {
    if (ev[k].type == PP__EV_WAKE) {
      h->wakes++;
      continue;
    }
    if (ev[k].type == PP__EV_BROKEN) {
      h->broken++;
      continue;
    }
    CU_ASSERT_FATAL(ev[k].slot < NSLOTS);
    seen *s = &h->s[ev[k].slot];
    switch (ev[k].type) {
    case PP__EV_STARTED:
      CU_ASSERT(!s->started);
      CU_ASSERT(ev[k].pid > 0);
      s->started = 1;
      s->pid = ev[k].pid;
      break;
    case PP__EV_START_FAILED:
      CU_ASSERT(!s->started);
      s->start_failed = 1;
      s->status = ev[k].status;
      break;
    case PP__EV_INPUT:
      CU_ASSERT(s->started);
      s->inputs++;
      break;
    case PP__EV_CLOSED:
      CU_ASSERT(s->started && !s->closed);
      s->closed = 1;
      break;
    case PP__EV_EXITED:
      CU_ASSERT(s->started && !s->exited);
      CU_ASSERT_EQUAL(ev[k].pid, s->pid);
      s->exited = 1;
      s->exit = ev[k].exit;
      break;
    default:
      CU_FAIL("unexpected event type");
    }
  }
}

/* Pumps until `cond` holds or the deadline passes. */
#define PUMP_UNTIL(h, cond)                                                    \
  do {                                                                         \
    long until_ = now_ms() + DEADLINE_MS;                                      \
    while (!(cond) && now_ms() < until_)                                       \
      pump((h), 100);                                                          \
  } while (0)

static int open_harness_as(harness *h, pp__worker_main_fn fn, int early) {
  memset(h, 0, sizeof *h);
  pp__backend_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.context = PP_CONTEXT_FORK;
  cfg.max_slots = NSLOTS;
  cfg.worker_main = fn;
  cfg.early_start = early;
  pp_status st = pp__backend_create(&h->b, &cfg);
  CU_ASSERT_EQUAL(st, PP_OK);
  return st == PP_OK;
}

static int open_harness(harness *h, pp__worker_main_fn fn) {
  return open_harness_as(h, fn, 0);
}

static void forget_slot(harness *h, unsigned slot) {
  memset(&h->s[slot], 0, sizeof h->s[slot]);
}

static void start_and_wait(harness *h, unsigned slot) {
  CU_ASSERT_EQUAL(pp__backend_start(h->b, slot), PP_OK);
  PUMP_UNTIL(h, h->s[slot].started || h->s[slot].start_failed);
  CU_ASSERT(h->s[slot].started);
}

/* Sends `len` bytes and waits until the echo is back in full. */
static void round_trip(harness *h, unsigned slot, const unsigned char *data,
                       size_t len) {
  pp__buf *in = pp__backend_input(h->b, slot);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  pp__buf_clear(in);
  CU_ASSERT_EQUAL(pp__backend_send(h->b, slot, data, len), PP_OK);
  PUMP_UNTIL(h, pp__buf_len(in) >= len || h->s[slot].closed);
  CU_ASSERT_EQUAL(pp__buf_len(in), len);
  CU_ASSERT_EQUAL(pp__backend_pending(h->b, slot), 0);
  if (pp__buf_len(in) == len)
    CU_ASSERT(memcmp(pp__buf_head(in), data, len) == 0);
  pp__buf_consume(in, pp__buf_len(in));
}

static void hangup_and_reap(harness *h, unsigned slot) {
  CU_ASSERT_EQUAL(pp__backend_hangup(h->b, slot), PP_OK);
  PUMP_UNTIL(h, h->s[slot].exited);
  CU_ASSERT(h->s[slot].exited);
  CU_ASSERT_EQUAL(h->s[slot].exit.signaled, 0);
  CU_ASSERT_EQUAL(h->s[slot].exit.code, 0);
}

/* ---- tests ---- */

static void test_create_arguments(void) {
  pp__backend *b = NULL;
  pp__backend_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.context = PP_CONTEXT_FORK;
  cfg.max_slots = 2;
  cfg.worker_main = echo_main;
  CU_ASSERT_EQUAL(pp__backend_create(NULL, &cfg), PP_EINVAL);
  CU_ASSERT_EQUAL(pp__backend_create(&b, NULL), PP_EINVAL);
  cfg.max_slots = 0;
  CU_ASSERT_EQUAL(pp__backend_create(&b, &cfg), PP_EINVAL);
  cfg.max_slots = 2;
  cfg.worker_main = NULL;
  CU_ASSERT_EQUAL(pp__backend_create(&b, &cfg), PP_EINVAL);
  cfg.worker_main = echo_main;
  cfg.context = PP_CONTEXT_DEFAULT;
  CU_ASSERT_EQUAL(pp__backend_create(&b, &cfg), PP_EINVAL);
  cfg.context = (pp_context)(PP_CONTEXT_FORKSERVER + 1);
  CU_ASSERT_EQUAL(pp__backend_create(&b, &cfg), PP_EINVAL);
  CU_ASSERT_PTR_NULL(b);
  /* The contexts that re-launch this program start their launcher (and,
   * for forkserver, a process of this program) and stop it again. */
  cfg.context = PP_CONTEXT_SPAWN;
  CU_ASSERT_EQUAL(pp__backend_create(&b, &cfg), PP_OK);
  pp__backend_destroy(b);
  b = NULL;
  cfg.context = PP_CONTEXT_FORKSERVER;
  CU_ASSERT_EQUAL(pp__backend_create(&b, &cfg), PP_OK);
  pp__backend_destroy(b);
  pp__backend_destroy(NULL);
}

static void test_slot_arguments(void) {
  harness h;
  if (!open_harness(&h, echo_main))
    return;
  unsigned char byte = 1;
  CU_ASSERT_EQUAL(pp__backend_start(h.b, NSLOTS), PP_EINVAL);
  CU_ASSERT_EQUAL(pp__backend_send(h.b, 0, &byte, 1), PP_ESTATE);
  CU_ASSERT_EQUAL(pp__backend_send(h.b, NSLOTS, &byte, 1), PP_EINVAL);
  CU_ASSERT_EQUAL(pp__backend_hangup(h.b, 0), PP_ESTATE);
  CU_ASSERT_EQUAL(pp__backend_kill(h.b, 0), PP_ESTATE);
  CU_ASSERT_PTR_NULL(pp__backend_input(h.b, 0));
  CU_ASSERT_EQUAL(pp__backend_pending(h.b, NSLOTS), 0);
  pp__backend_release(h.b, 0);
  pp__backend_release(h.b, NSLOTS);
  size_t n = 1;
  pp__event ev;
  CU_ASSERT_EQUAL(pp__backend_wait(h.b, 0, &ev, 0, &n), PP_EINVAL);
  /* Nothing happens: a bounded wait returns no event, in about its time. */
  long t0 = now_ms();
  CU_ASSERT_EQUAL(pp__backend_wait(h.b, 50, &ev, 1, &n), PP_OK);
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT(now_ms() - t0 >= 40);
  CU_ASSERT_EQUAL(pp__backend_start(h.b, 0), PP_OK);
  CU_ASSERT_EQUAL(pp__backend_start(h.b, 0), PP_ESTATE);
  pp__backend_destroy(h.b);
}

static void test_echo_three_workers(void) {
  harness h;
  if (!open_harness(&h, echo_main))
    return;
  for (unsigned i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(pp__backend_start(h.b, i), PP_OK);
  PUMP_UNTIL(&h, h.s[0].started && h.s[1].started && h.s[2].started);
  for (unsigned i = 0; i < 3; i++) {
    CU_ASSERT(h.s[i].started);
    CU_ASSERT(h.s[i].pid != (long)getpid());
    for (unsigned j = 0; j < i; j++)
      CU_ASSERT(h.s[i].pid != h.s[j].pid);
  }
  for (unsigned i = 0; i < 3; i++) {
    unsigned char msg[] = "hello, worker 0";
    msg[sizeof msg - 2] = (unsigned char)('0' + i);
    round_trip(&h, i, msg, sizeof msg);
  }

  /* Larger than any socket buffer: partial writes on both sides. */
  size_t big = 1024 * 1024;
  unsigned char *data = malloc(big);
  CU_ASSERT_PTR_NOT_NULL_FATAL(data);
  for (size_t k = 0; k < big; k++)
    data[k] = (unsigned char)(k * 7 + k / 4099);
  pp__buf *in = pp__backend_input(h.b, 1);
  CU_ASSERT_EQUAL(pp__backend_send(h.b, 1, data, big), PP_OK);
  CU_ASSERT(pp__backend_pending(h.b, 1) > 0);
  /* Queued behind the big one, in order. */
  CU_ASSERT_EQUAL(pp__backend_send(h.b, 1, "tail", 4), PP_OK);
  PUMP_UNTIL(&h, pp__buf_len(in) >= big + 4);
  CU_ASSERT_EQUAL(pp__buf_len(in), big + 4);
  CU_ASSERT_EQUAL(pp__backend_pending(h.b, 1), 0);
  if (pp__buf_len(in) == big + 4) {
    CU_ASSERT(memcmp(pp__buf_head(in), data, big) == 0);
    CU_ASSERT(memcmp(pp__buf_head(in) + big, "tail", 4) == 0);
  }
  CU_ASSERT(h.s[1].inputs > 1);
  free(data);

  for (unsigned i = 0; i < 3; i++)
    hangup_and_reap(&h, i);
  for (unsigned i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL(pp__backend_send(h.b, i, "x", 1), PP_EOF);
    pp__backend_release(h.b, i);
    CU_ASSERT_PTR_NULL(pp__backend_input(h.b, i));
  }
  pp__backend_destroy(h.b);
  for (unsigned i = 0; i < 3; i++)
    CU_ASSERT(pid_gone(h.s[i].pid));
}

static void test_worker_killed_by_signal(void) {
  harness h;
  if (!open_harness(&h, suicide_main))
    return;
  start_and_wait(&h, 2);
  round_trip(&h, 2, (const unsigned char *)"abc", 3);
  CU_ASSERT_EQUAL(pp__backend_send(h.b, 2, "K", 1), PP_OK);
  PUMP_UNTIL(&h, h.s[2].closed && h.s[2].exited);
  CU_ASSERT(h.s[2].closed);
  CU_ASSERT(h.s[2].exited);
  CU_ASSERT_EQUAL(h.s[2].exit.signaled, 1);
  CU_ASSERT_EQUAL(h.s[2].exit.code, SIGKILL);
  char text[64];
  pp__exit_describe(&h.s[2].exit, text, sizeof text);
  CU_ASSERT_STRING_EQUAL(text, "was killed by signal 9 (Killed)");
  CU_ASSERT_EQUAL(pp__backend_send(h.b, 2, "x", 1), PP_EOF);
  CU_ASSERT_EQUAL(pp__backend_kill(h.b, 2), PP_OK); /* reaped: left alone */
  pp__backend_release(h.b, 2);
  pp__backend_destroy(h.b);
}

static void test_kill(void) {
  harness h;
  if (!open_harness(&h, echo_main))
    return;
  start_and_wait(&h, 0);
  start_and_wait(&h, 1);
  CU_ASSERT_EQUAL(pp__backend_kill(h.b, 0), PP_OK);
  PUMP_UNTIL(&h, h.s[0].exited && h.s[0].closed);
  CU_ASSERT(h.s[0].exited);
  CU_ASSERT(h.s[0].closed);
  CU_ASSERT_EQUAL(h.s[0].exit.signaled, 1);
  CU_ASSERT_EQUAL(h.s[0].exit.code, SIGKILL);
  CU_ASSERT(pid_gone(h.s[0].pid));
  CU_ASSERT_EQUAL(pp__backend_kill(h.b, 0), PP_OK);
  /* The other worker is untouched. */
  round_trip(&h, 1, (const unsigned char *)"still here", 10);
  CU_ASSERT(!h.s[1].exited);
  hangup_and_reap(&h, 1);
  pp__backend_release(h.b, 0);
  pp__backend_release(h.b, 1);
  pp__backend_destroy(h.b);
}

static void test_exit_code(void) {
  harness h;
  if (!open_harness(&h, exit7_main))
    return;
  start_and_wait(&h, 3);
  PUMP_UNTIL(&h, h.s[3].closed && h.s[3].exited);
  CU_ASSERT(h.s[3].closed);
  CU_ASSERT(h.s[3].exited);
  CU_ASSERT_EQUAL(h.s[3].exit.signaled, 0);
  CU_ASSERT_EQUAL(h.s[3].exit.code, 7);
  char text[64];
  pp__exit_describe(&h.s[3].exit, text, sizeof text);
  CU_ASSERT_STRING_EQUAL(text, "exited with code 7");
  CU_ASSERT_EQUAL(pp__backend_send(h.b, 3, "x", 1), PP_EOF);
  pp__backend_release(h.b, 3);
  pp__backend_destroy(h.b);
}

static void test_hangup_and_kill_while_starting(void) {
  harness h;
  if (!open_harness(&h, echo_main))
    return;
  CU_ASSERT_EQUAL(pp__backend_start(h.b, 0), PP_OK);
  CU_ASSERT_EQUAL(pp__backend_start(h.b, 1), PP_OK);
  /* Queued before STARTED: goes out once the channel is there. */
  CU_ASSERT_EQUAL(pp__backend_send(h.b, 1, "early", 5), PP_OK);
  CU_ASSERT_EQUAL(pp__backend_hangup(h.b, 0), PP_OK);
  CU_ASSERT_EQUAL(pp__backend_send(h.b, 0, "x", 1), PP_EOF);
  PUMP_UNTIL(&h, h.s[0].exited && h.s[1].started);
  CU_ASSERT(h.s[0].started);
  CU_ASSERT(h.s[0].exited);
  CU_ASSERT_EQUAL(h.s[0].exit.signaled, 0);
  CU_ASSERT_EQUAL(h.s[0].exit.code, 0);
  pp__buf *in = pp__backend_input(h.b, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  PUMP_UNTIL(&h, pp__buf_len(in) >= 5);
  CU_ASSERT_EQUAL(pp__buf_len(in), 5);
  if (pp__buf_len(in) == 5)
    CU_ASSERT(memcmp(pp__buf_head(in), "early", 5) == 0);

  pp__backend_release(h.b, 0);
  forget_slot(&h, 0);
  CU_ASSERT_EQUAL(pp__backend_start(h.b, 0), PP_OK);
  CU_ASSERT_EQUAL(pp__backend_kill(h.b, 0), PP_OK);
  PUMP_UNTIL(&h, h.s[0].exited);
  CU_ASSERT(h.s[0].started);
  CU_ASSERT(h.s[0].exited);
  CU_ASSERT_EQUAL(h.s[0].exit.signaled, 1);
  CU_ASSERT_EQUAL(h.s[0].exit.code, SIGKILL);
  pp__backend_destroy(h.b);
  CU_ASSERT(pid_gone(h.s[1].pid));
}

static void *wake_thread(void *arg) {
  pp__backend_wake(arg);
  return NULL;
}

static void test_wake(void) {
  harness h;
  if (!open_harness(&h, echo_main))
    return;
  pthread_t t;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, wake_thread, h.b), 0);
  long t0 = now_ms();
  PUMP_UNTIL(&h, h.wakes > 0);
  CU_ASSERT_EQUAL(h.wakes, 1);
  CU_ASSERT(now_ms() - t0 < DEADLINE_MS);
  pthread_join(t, NULL);
  /* A wake() that raced the wait may have written after the wait took its
   * flag (it saw the thread about to sleep): one spurious event later,
   * which the scheduler shrugs off. It is taken here, so that the counts
   * below are this part's own. */
  pump(&h, 0);

  /* Many wake-ups before a wait cost one event. */
  h.wakes = 0;
  for (int k = 0; k < 100; k++)
    pp__backend_wake(h.b);
  pump(&h, 1000);
  CU_ASSERT_EQUAL(h.wakes, 1);
  pump(&h, 0);
  CU_ASSERT_EQUAL(h.wakes, 1);

  /* A wake-up from another thread ends a wait that would block forever. */
  CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, wake_thread, h.b), 0);
  pump(&h, -1);
  CU_ASSERT_EQUAL(h.wakes, 2);
  pthread_join(t, NULL);
  pp__backend_destroy(h.b);
}

/* A thread that wakes the backend once for each round the test starts. */
typedef struct waker {
  pp__backend *b;
  atomic_int round, stop;
} waker;

static void *waker_main(void *arg) {
  waker *w = arg;
  int done = 0;
  while (!atomic_load(&w->stop)) {
    int round = atomic_load(&w->round);
    if (round == done) {
      sched_yield();
      continue;
    }
    done = round;
    pp__backend_wake(w->b);
  }
  return NULL;
}

/* A wake-up is never lost, whether it comes while the other thread waits
 * in poll(), as it is about to, or just after it woke for another: rounds
 * of a wait that only the other thread's wake-up ends before its deadline
 * (a lost one lets it run to the deadline). */
static void test_wake_never_lost(void) {
  enum { ROUNDS = 20000 };
  harness h;
  if (!open_harness(&h, echo_main))
    return;
  waker w;
  w.b = h.b;
  atomic_init(&w.round, 0);
  atomic_init(&w.stop, 0);
  pthread_t t;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, waker_main, &w), 0);
  for (int k = 1; k <= ROUNDS; k++) {
    atomic_store(&w.round, k);
    pump(&h, DEADLINE_MS);
    if (h.wakes != k) {
      CU_FAIL("a wake-up was lost: a wait ran to its deadline");
      break;
    }
  }
  CU_ASSERT_EQUAL(h.wakes, ROUNDS);
  atomic_store(&w.stop, 1);
  pthread_join(t, NULL);
  pp__backend_destroy(h.b);
}

static void test_destroy_leaves_no_process(void) {
  harness h;
  if (!open_harness(&h, echo_main))
    return;
  for (unsigned i = 0; i < 3; i++)
    start_and_wait(&h, i);
  round_trip(&h, 0, (const unsigned char *)"ping", 4);
  pp__backend_destroy(h.b);
  for (unsigned i = 0; i < 3; i++)
    CU_ASSERT(pid_gone(h.s[i].pid));

  /* A worker that ignores EOF and SIGTERM is killed all the same. */
  if (!open_harness(&h, stubborn_main))
    return;
  start_and_wait(&h, 0);
  start_and_wait(&h, 1);
  pp__backend_destroy(h.b);
  CU_ASSERT(pid_gone(h.s[0].pid));
  CU_ASSERT(pid_gone(h.s[1].pid));
}

static void test_slot_reuse(void) {
  harness h;
  if (!open_harness(&h, echo_main))
    return;
  long pids[3];
  for (int round = 0; round < 3; round++) {
    start_and_wait(&h, 1);
    pids[round] = h.s[1].pid;
    round_trip(&h, 1, (const unsigned char *)"again", 5);
    hangup_and_reap(&h, 1);
    CU_ASSERT_EQUAL(pp__backend_start(h.b, 1), PP_ESTATE);
    pp__backend_release(h.b, 1);
    CU_ASSERT_PTR_NULL(pp__backend_input(h.b, 1));
    forget_slot(&h, 1);
  }
  CU_ASSERT(pids[0] != pids[1] && pids[1] != pids[2]);
  pp__backend_destroy(h.b);
}

static void test_no_descriptor_leaks(void) {
  /* Inheritable, opened before the backend: must not reach workers. */
  int stray = open("/dev/null", O_RDONLY);
  CU_ASSERT(stray >= 0);
  harness h;
  if (open_harness(&h, fdcount_main)) {
    start_and_wait(&h, 0);
    start_and_wait(&h, 1); /* must not hold worker 0's channel */
    for (unsigned i = 0; i < 2; i++) {
      pp__buf *in = pp__backend_input(h.b, i);
      CU_ASSERT_PTR_NOT_NULL_FATAL(in);
      PUMP_UNTIL(&h, pp__buf_len(in) >= 1 || h.s[i].closed);
      CU_ASSERT_EQUAL(pp__buf_len(in), 1);
      if (pp__buf_len(in) >= 1)
        CU_ASSERT_EQUAL(pp__buf_head(in)[0], 1);
    }
    pp__backend_destroy(h.b);
  }
  if (stray >= 0)
    close(stray);
}

static void test_no_sigpipe(void) {
  /* The default action of SIGPIPE ends the process: a raised one would
   * end this test run. */
  void (*old)(int) = signal(SIGPIPE, SIG_DFL);
  harness h;
  if (open_harness(&h, suicide_main)) {
    start_and_wait(&h, 0);
    round_trip(&h, 0, (const unsigned char *)"abc", 3);
    CU_ASSERT_EQUAL(pp__backend_send(h.b, 0, "K", 1), PP_OK);
    /* Without reading its EOF, write to the dead worker until the write
     * fails. */
    pp_status st = PP_OK;
    long until = now_ms() + DEADLINE_MS;
    struct timespec ms = {0, 1000000};
    while (st == PP_OK && now_ms() < until) {
      st = pp__backend_send(h.b, 0, "x", 1);
      if (st == PP_OK)
        nanosleep(&ms, NULL);
    }
    CU_ASSERT_EQUAL(st, PP_EOF);
    PUMP_UNTIL(&h, h.s[0].closed && h.s[0].exited);
    CU_ASSERT(h.s[0].closed && h.s[0].exited);
    CU_ASSERT_EQUAL(h.s[0].exit.signaled, 1);
    CU_ASSERT_EQUAL(h.s[0].exit.code, SIGKILL);
    pp__backend_destroy(h.b);
  }
  if (open_harness(&h, late_writer_main)) {
    start_and_wait(&h, 1);
    CU_ASSERT_EQUAL(pp__backend_send(h.b, 1, "x", 1), PP_OK);
    hangup_and_reap(&h, 1); /* exit code 0: PP_EOF, no SIGPIPE */
    pp__backend_destroy(h.b);
  }
  signal(SIGPIPE, old);
}

static void test_two_backends(void) {
  harness a, c;
  if (!open_harness(&a, echo_main))
    return;
  start_and_wait(&a, 0);
  /* The second launcher is forked while the first pool's channel is
   * open: it must not keep a copy. */
  if (open_harness(&c, fdcount_main)) {
    start_and_wait(&c, 0);
    pp__buf *in = pp__backend_input(c.b, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    PUMP_UNTIL(&c, pp__buf_len(in) >= 1 || c.s[0].closed);
    CU_ASSERT_EQUAL(pp__buf_len(in), 1);
    if (pp__buf_len(in) >= 1)
      CU_ASSERT_EQUAL(pp__buf_head(in)[0], 1);
    round_trip(&a, 0, (const unsigned char *)"one", 3);
    hangup_and_reap(&a, 0);
    pp__backend_destroy(c.b);
    CU_ASSERT(pid_gone(c.s[0].pid));
  }
  pp__backend_destroy(a.b);
}

/* Starts a ppid_main worker in `slot` and takes the pid of its parent, the
 * launcher. */
static long start_for_launcher(harness *h, unsigned slot) {
  forget_slot(h, slot);
  start_and_wait(h, slot);
  pp__buf *in = pp__backend_input(h->b, slot);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  PUMP_UNTIL(h, pp__buf_len(in) >= sizeof(long) || h->s[slot].closed);
  CU_ASSERT_EQUAL_FATAL(pp__buf_len(in), sizeof(long));
  long launcher;
  memcpy(&launcher, pp__buf_head(in), sizeof launcher);
  pp__buf_consume(in, sizeof launcher);
  /* Workers are the launcher's children, not ours. */
  CU_ASSERT(launcher > 1 && launcher != (long)getpid());
  return launcher;
}

/* Kills the launcher and waits until its worker in `slot` is reported lost
 * with it. */
static void kill_launcher(harness *h, long launcher, unsigned slot) {
  CU_ASSERT_EQUAL(kill((pid_t)launcher, SIGKILL), 0);
  PUMP_UNTIL(h, (h->s[slot].exited && h->s[slot].closed) || h->broken);
  CU_ASSERT(h->s[slot].exited && h->s[slot].closed);
}

/* The launcher dies: its worker is reported lost with it (and, on Linux,
 * dies with it), the backend makes a new launcher, and the next start
 * works. */
static void test_launcher_death(void) {
  harness h;
  if (!open_harness(&h, ppid_main))
    return;
  long launcher = start_for_launcher(&h, 0);
  kill_launcher(&h, launcher, 0);
  CU_ASSERT_EQUAL(h.broken, 0);
  CU_ASSERT_EQUAL(h.s[0].exit.with_launcher, 1);
  char text[96];
  pp__exit_describe(&h.s[0].exit, text, sizeof text);
  CU_ASSERT_STRING_EQUAL(text, "was lost with the process that starts the "
                               "pool's workers, which died");
  CU_ASSERT_EQUAL(pp__backend_kill(h.b, 0), PP_OK); /* reported: left alone */
  CU_ASSERT_EQUAL(pp__backend_send(h.b, 0, "x", 1), PP_EOF);
  pp__backend_release(h.b, 0);
  long again = start_for_launcher(&h, 1);
  CU_ASSERT(again != launcher);
  round_trip(&h, 1, (const unsigned char *)"after", 5);
  hangup_and_reap(&h, 1);
  pp__backend_destroy(h.b); /* reaps the new launcher */
  CU_ASSERT(pid_gone(launcher));
  CU_ASSERT(pid_gone(again));
#ifdef __linux__
  CU_ASSERT(pid_gone_soon(h.s[0].pid)); /* its parent-death signal */
#endif
}

/* A launcher that dies again and again, each soon after the one before:
 * replaced three times, then the backend is broken. */
static void test_launcher_keeps_dying(void) {
  harness h;
  if (!open_harness(&h, ppid_main))
    return;
  long launchers[4];
  for (unsigned k = 0; k < 4; k++) {
    launchers[k] = start_for_launcher(&h, k % 2);
    kill_launcher(&h, launchers[k], k % 2);
    CU_ASSERT_EQUAL(h.broken, k == 3);
    CU_ASSERT_EQUAL(h.s[k % 2].exit.with_launcher, 1);
    pp__backend_release(h.b, k % 2);
  }
  CU_ASSERT_EQUAL(pp__backend_start(h.b, 2), PP_ESYSTEM);
  pp__backend_destroy(h.b);
  for (unsigned k = 0; k < 4; k++)
    CU_ASSERT(pid_gone(launchers[k]));
}

/* ---- early starts: the pool's first worker forked by this process ---- */

/* This process forks a fork pool's first worker itself only where a pidfd
 * tells when it ends (Linux 5.3 and later; not under Valgrind, which does
 * not know pidfd_open): pp__direct_workers_possible(). Elsewhere every
 * worker comes from the launcher, and the tests below check that instead.
 */

/* Takes what report_main wrote first: its parent and its descriptors. */
static void read_report(harness *h, unsigned slot, long *ppid, long *nfds) {
  pp__buf *in = pp__backend_input(h->b, slot);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  PUMP_UNTIL(h, pp__buf_len(in) >= 2 * sizeof(long) || h->s[slot].closed);
  CU_ASSERT_EQUAL_FATAL(pp__buf_len(in), 2 * sizeof(long));
  long head[2];
  memcpy(head, pp__buf_head(in), sizeof head);
  pp__buf_consume(in, sizeof head);
  *ppid = head[0];
  *nfds = head[1];
}

/* Starts three workers early, as a pool of three does, and reads their
 * reports: their parents into ppid[]. */
static int start_three_early(harness *h, long ppid[3]) {
  if (!open_harness_as(h, report_main, 1))
    return 0;
  for (unsigned i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(pp__backend_start(h->b, i), PP_OK);
  CU_ASSERT_EQUAL(pp__backend_ready(h->b), PP_OK);
  PUMP_UNTIL(h, h->s[0].started && h->s[1].started && h->s[2].started);
  for (unsigned i = 0; i < 3; i++) {
    long nfds;
    read_report(h, i, &ppid[i], &nfds);
    CU_ASSERT_EQUAL(nfds, 1);
  }
  return 1;
}

/* Early starts, as a pool makes them: the first two workers are this
 * process's children, the second having made the launcher, itself this
 * process's child; the next ones (before and after pp__backend_ready())
 * are the launcher's. Each holds its channel alone, none outlives the
 * backend, the launcher is reaped, and a direct worker's exit code is
 * reported like any other. Without pidfds every worker is the launcher's,
 * and the rest holds. */
static void test_early_start(void) {
  harness h;
  long ppid[3];
  if (!start_three_early(&h, ppid))
    return;
  long launcher = ppid[2];
  CU_ASSERT(launcher > 1 && launcher != (long)getpid());
  if (pp__direct_workers_possible()) {
    CU_ASSERT_EQUAL(ppid[0], (long)getpid());
    CU_ASSERT_EQUAL(ppid[1], (long)getpid());
    CU_ASSERT_EQUAL(tu_parent_of(launcher), (long)getpid());
  } else {
    CU_ASSERT_EQUAL(ppid[0], launcher);
    CU_ASSERT_EQUAL(ppid[1], launcher);
  }
  round_trip(&h, 0, (const unsigned char *)"direct", 6);
  round_trip(&h, 1, (const unsigned char *)"host", 4);
  round_trip(&h, 2, (const unsigned char *)"launched", 8);

  CU_ASSERT_EQUAL(pp__backend_send(h.b, 0, "X", 1), PP_OK);
  PUMP_UNTIL(&h, h.s[0].closed && h.s[0].exited);
  CU_ASSERT(h.s[0].closed && h.s[0].exited);
  CU_ASSERT_EQUAL(h.s[0].exit.signaled, 0);
  CU_ASSERT_EQUAL(h.s[0].exit.code, 7);
  CU_ASSERT(pid_gone(h.s[0].pid));                  /* reaped, not a zombie */
  CU_ASSERT_EQUAL(pp__backend_kill(h.b, 0), PP_OK); /* reaped: left alone */

  /* A replacement in the same slot comes from the launcher. */
  pp__backend_release(h.b, 0);
  forget_slot(&h, 0);
  start_and_wait(&h, 0);
  long again, n;
  read_report(&h, 0, &again, &n);
  CU_ASSERT_EQUAL(again, launcher);
  CU_ASSERT_EQUAL(n, 1);
  for (unsigned i = 0; i < 3; i++)
    hangup_and_reap(&h, i);
  pp__backend_destroy(h.b);
  for (unsigned i = 0; i < 3; i++)
    CU_ASSERT(pid_gone(h.s[i].pid));
  /* Ours, reaped at the end; or the launcher's, gone with it. */
  CU_ASSERT(pid_gone(launcher));
}

/* A worker forked here that cannot put its channel in place (a test hook
 * makes its dup2 fail: only a descriptor limit of 3 would) says why on
 * stderr, the call and the system's words, before it exits with 120, the
 * code procpool describes as "it could not reach the pool that started
 * it". Before, it exited 120 and said nothing. */
static void test_worker_channel_fails_says_why(void) {
  if (!pp__direct_workers_possible())
    return;
  tu_stderr said;
  CU_ASSERT_FATAL(tu_stderr_begin(&said) == 0);
  harness h;
  pp__test_worker_channel_errno = EMFILE;
  int opened = open_harness_as(&h, report_main, 1);
  if (opened)
    CU_ASSERT_EQUAL(pp__backend_start(h.b, 0), PP_OK); /* forked here */
  pp__test_worker_channel_errno = 0; /* the worker has its copy */
  if (opened)
    PUMP_UNTIL(&h, h.s[0].exited && h.s[0].closed);
  char *text = tu_stderr_end(&said);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  if (!opened) {
    free(text);
    return;
  }
  CU_ASSERT(h.s[0].exited);
  CU_ASSERT_EQUAL(h.s[0].exit.signaled, 0);
  CU_ASSERT_EQUAL(h.s[0].exit.code, PP__EXIT_BAD_LAUNCH);
  char want[300];
  snprintf(want, sizeof want,
           "procpool: worker (process %ld) could not set up its channel to "
           "the pool that started it: dup2: %s\n",
           h.s[0].pid, strerror(EMFILE));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
  if (!strstr(text, want))
    fprintf(stderr, "\n  wanted: %s  stderr: %s\n", want, text);
  free(text);
  pp__backend_release(h.b, 0);
  pp__backend_destroy(h.b);
}

/* Makes the next launcher host's first `times` clones fail with `err`
 * (0 for none); 0 where no worker is forked here, so there is no host. */
static int host_clone_fails(int times, int err) {
  if (!pp__direct_workers_possible())
    return 0;
  pp__test_host_clone_fails = times;
  pp__test_host_clone_errno = err;
  return 1;
}

/* A launcher's host that cannot clone it (a sandbox may forbid the call):
 * the workers forked here go on, what was asked of the launcher fails
 * with the reason, the next start forks a launcher here, and later
 * backends fork theirs here at once. */
static void test_early_start_no_host(void) {
  if (!host_clone_fails(1, EPERM))
    return;
  harness h;
  long ppid[2], nfds;
  if (!open_harness_as(&h, report_main, 1)) {
    host_clone_fails(0, 0);
    return;
  }
  for (unsigned i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(pp__backend_start(h.b, i), PP_OK);
  CU_ASSERT_EQUAL(pp__backend_ready(h.b), PP_OK);
  host_clone_fails(0, 0); /* the host has its copy */
  PUMP_UNTIL(&h, h.s[0].started && h.s[1].started && h.s[2].start_failed);
  CU_ASSERT(h.s[2].start_failed);
  CU_ASSERT_EQUAL(h.s[2].status, PP_ESYSTEM);
  CU_ASSERT_EQUAL(h.broken, 0);
  for (unsigned i = 0; i < 2; i++) {
    read_report(&h, i, &ppid[i], &nfds);
    CU_ASSERT_EQUAL(ppid[i], (long)getpid());
    CU_ASSERT_EQUAL(nfds, 1);
  }
  round_trip(&h, 0, (const unsigned char *)"still", 5);
  round_trip(&h, 1, (const unsigned char *)"going", 5);
  CU_ASSERT_EQUAL(atomic_load(&pp__hosting_failed), 1);
  /* Asked again, the start gets a launcher forked here. */
  pp__backend_release(h.b, 2);
  forget_slot(&h, 2);
  start_and_wait(&h, 2);
  long launcher;
  read_report(&h, 2, &launcher, &nfds);
  CU_ASSERT(launcher != (long)getpid() && launcher != h.s[0].pid &&
            launcher != h.s[1].pid);
  CU_ASSERT_EQUAL(tu_parent_of(launcher), (long)getpid());
  round_trip(&h, 2, (const unsigned char *)"late", 4);
  for (unsigned i = 0; i < 3; i++)
    hangup_and_reap(&h, i);
  pp__backend_destroy(h.b);
  CU_ASSERT(pid_gone(launcher));

  /* The next backend forks its launcher here, after its first worker. */
  long again[3];
  if (start_three_early(&h, again)) {
    CU_ASSERT_EQUAL(again[0], (long)getpid());
    CU_ASSERT(again[1] != (long)getpid() && again[1] == again[2]);
    for (unsigned i = 0; i < 3; i++)
      hangup_and_reap(&h, i);
    pp__backend_destroy(h.b);
    CU_ASSERT(pid_gone(again[1]));
  }
  atomic_store(&pp__hosting_failed, 0);
}

/* The direct worker is stopped, killed, hung up on or dies by itself:
 * each is reported with how it ended. Killed and reaped by the program's
 * own wait before the backend looks, it is reported as ended, how not
 * known (its exit status is gone). */
static void test_early_start_endings(void) {
  enum { KILL, STOP, HANGUP, SUICIDE, REAPED_ELSEWHERE, NENDINGS };
  for (int how = 0; how < NENDINGS; how++) {
    harness h;
    if (!open_harness_as(&h, report_main, 1))
      return;
    CU_ASSERT_EQUAL(pp__backend_start(h.b, 2), PP_OK);
    CU_ASSERT_EQUAL(pp__backend_ready(h.b), PP_OK);
    PUMP_UNTIL(&h, h.s[2].started);
    long ppid, nfds;
    read_report(&h, 2, &ppid, &nfds);
    if (pp__direct_workers_possible()) {
      CU_ASSERT_EQUAL(ppid, (long)getpid());
    } else {
      CU_ASSERT(ppid > 1 && ppid != (long)getpid());
    }
    if (how == KILL)
      CU_ASSERT_EQUAL(pp__backend_kill(h.b, 2), PP_OK);
    if (how == STOP)
      CU_ASSERT_EQUAL(pp__backend_stop(h.b, 2), PP_OK);
    if (how == HANGUP)
      CU_ASSERT_EQUAL(pp__backend_hangup(h.b, 2), PP_OK);
    if (how == SUICIDE)
      CU_ASSERT_EQUAL(pp__backend_send(h.b, 2, "K", 1), PP_OK);
    if (how == REAPED_ELSEWHERE) {
      if (!pp__direct_workers_possible()) { /* the launcher's child */
        pp__backend_destroy(h.b);
        continue;
      }
      int status = 0;
      CU_ASSERT_EQUAL(kill((pid_t)h.s[2].pid, SIGKILL), 0);
      CU_ASSERT_EQUAL(waitpid((pid_t)h.s[2].pid, &status, 0),
                      (pid_t)h.s[2].pid);
    }
    PUMP_UNTIL(&h, h.s[2].exited);
    CU_ASSERT(h.s[2].exited);
    CU_ASSERT_EQUAL(h.s[2].exit.unknown, how == REAPED_ELSEWHERE);
    if (how == REAPED_ELSEWHERE) {
      char text[256];
      pp__exit_describe(&h.s[2].exit, text, sizeof text);
      CU_ASSERT(strstr(text, "how is not known") != NULL);
      CU_ASSERT(strstr(text, "code") == NULL);
    } else {
      CU_ASSERT_EQUAL(h.s[2].exit.signaled, how != HANGUP);
      CU_ASSERT_EQUAL(h.s[2].exit.code, how == HANGUP ? 0
                                        : how == STOP ? SIGTERM
                                                      : SIGKILL);
    }
    CU_ASSERT(pid_gone(h.s[2].pid));
    pp__backend_release(h.b, 2);
    pp__backend_destroy(h.b);
  }
}

/* Destroyed with its direct worker still running (a pool whose creation
 * failed late): that worker is killed and reaped. */
static void test_early_start_destroy(void) {
  harness h;
  if (!open_harness_as(&h, stubborn_main, 1))
    return;
  CU_ASSERT_EQUAL(pp__backend_start(h.b, 0), PP_OK);
  PUMP_UNTIL(&h, h.s[0].started);
  pp__backend_destroy(h.b); /* before pp__backend_ready(): no launcher */
  CU_ASSERT(h.s[0].pid > 0 && pid_gone(h.s[0].pid));
}

/* Destroyed right after its early starts, before the hosted launcher's
 * HELLO was read: the workers and the launcher are all ended and reaped,
 * and this process is left with no child, running or zombie. (A child of
 * an earlier test would show here too: each test reaps its own.) */
static void test_early_start_destroy_at_once(void) {
  harness h;
  if (!open_harness_as(&h, stubborn_main, 1))
    return;
  for (unsigned i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(pp__backend_start(h.b, i), PP_OK);
  CU_ASSERT_EQUAL(pp__backend_ready(h.b), PP_OK);
  pp__backend_destroy(h.b);
  errno = 0;
  CU_ASSERT_EQUAL(waitpid(-1, NULL, WNOHANG), -1);
  CU_ASSERT_EQUAL(errno, ECHILD);
}

/* A host whose clone fails for a moment (EAGAIN: no process slot) tries
 * again, and the launcher comes all the same; later backends still host
 * theirs. */
static void test_early_start_host_retries(void) {
  if (!host_clone_fails(2, EAGAIN))
    return;
  harness h;
  long ppid[3];
  int opened = start_three_early(&h, ppid);
  host_clone_fails(0, 0);
  if (!opened)
    return;
  CU_ASSERT_EQUAL(ppid[0], (long)getpid());
  CU_ASSERT_EQUAL(ppid[1], (long)getpid());
  CU_ASSERT(ppid[2] != (long)getpid());
  CU_ASSERT_EQUAL(tu_parent_of(ppid[2]), (long)getpid());
  CU_ASSERT_EQUAL(atomic_load(&pp__hosting_failed), 0);
  for (unsigned i = 0; i < 3; i++)
    hangup_and_reap(&h, i);
  pp__backend_destroy(h.b);
  CU_ASSERT(pid_gone(ppid[2]));
}

/* The launcher dies: its worker is lost with it, the direct workers go
 * on, and a new launcher, this process's child, starts the next one. */
static void test_early_start_launcher_death(void) {
  harness h;
  long ppid[3];
  if (!start_three_early(&h, ppid))
    return;
  long launcher = ppid[2];
  CU_ASSERT_EQUAL_FATAL(kill((pid_t)launcher, SIGKILL), 0);
  PUMP_UNTIL(&h, h.s[2].exited && h.s[2].closed);
  CU_ASSERT(h.s[2].exited && h.s[2].closed);
  CU_ASSERT_EQUAL(h.s[2].exit.with_launcher, 1);
  CU_ASSERT_EQUAL(h.broken, 0);
  /* A launcher's worker is reaped by whoever inherited it. */
  CU_ASSERT(pid_gone_soon(h.s[2].pid));
  pp__backend_release(h.b, 2);
  for (unsigned i = 0; i < 2; i++) {
    CU_ASSERT(!h.s[i].exited);
    round_trip(&h, i, (const unsigned char *)"on", 2);
  }
  CU_ASSERT_EQUAL(pp__backend_start(h.b, 3), PP_OK);
  PUMP_UNTIL(&h, h.s[3].started);
  long again, nfds;
  read_report(&h, 3, &again, &nfds);
  CU_ASSERT(again != launcher && again != (long)getpid());
  if (ppid[0] == (long)getpid()) /* direct workers: the launcher is ours */
    CU_ASSERT_EQUAL(tu_parent_of(again), (long)getpid());
  round_trip(&h, 3, (const unsigned char *)"new", 3);
  for (unsigned i = 0; i < 2; i++)
    hangup_and_reap(&h, i);
  hangup_and_reap(&h, 3);
  pp__backend_destroy(h.b);
  CU_ASSERT(pid_gone(launcher));
  CU_ASSERT(pid_gone(again));
}

/* The launcher's host idles, as one that ran no task does, holding what
 * the launcher needs; the other worker is busy, as stubborn_main is. */
static int busy_unless_host_main(pp__wchan *chan, const char *key) {
  if (chan->host)
    return echo_main(chan, key);
  return stubborn_main(chan, key);
}

/* The backend's owner, running `fn` in its two early workers, is
 * SIGKILLed: both workers go, though a busy one reads nothing, so that
 * its channel's EOF cannot stop it. */
static void owner_death(pp__worker_main_fn fn) {
  int report;
  long owner = tu_fork_owner(&report);
  CU_ASSERT_FATAL(owner >= 0);
  if (owner == 0) {
    long pids[2] = {0, 0};
    pp__backend *b = NULL;
    pp__backend_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.context = PP_CONTEXT_FORK;
    cfg.max_slots = 2;
    cfg.worker_main = fn;
    cfg.early_start = 1;
    if (pp__backend_create(&b, &cfg) == PP_OK &&
        pp__backend_start(b, 0) == PP_OK && pp__backend_start(b, 1) == PP_OK &&
        pp__backend_ready(b) == PP_OK) {
      long until = now_ms() + DEADLINE_MS;
      while ((!pids[0] || !pids[1]) && now_ms() < until) {
        pp__event ev[4];
        size_t n = 0;
        pp__backend_wait(b, 100, ev, 4, &n);
        for (size_t k = 0; k < n; k++)
          if (ev[k].type == PP__EV_STARTED && ev[k].slot < 2)
            pids[ev[k].slot] = ev[k].pid;
      }
    }
    tu_owner_report(report, pids, 2);
  }
  long pids[2];
  CU_ASSERT_EQUAL(tu_kill_owner(owner, report, pids, 2), 2);
}

/* Both busy: the host made the launcher before its task, and the
 * launcher stops the direct worker. */
static void test_early_start_owner_death(void) { owner_death(stubborn_main); }

/* The host made no launcher (it ran no task): it stops the busy direct
 * worker itself once its channel says the owner is gone. */
static void test_early_start_owner_death_no_launcher(void) {
  if (pp__direct_workers_possible())
    owner_death(busy_unless_host_main);
}

/* How many processes have `pid` as their parent, zombies included. */
static int children_of(long pid) {
  DIR *d = opendir("/proc");
  int n = 0;
  if (!d)
    return -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    long child = strtol(e->d_name, &end, 10);
    if (child > 0 && *end == '\0' && tu_parent_of(child) == pid)
      n++;
  }
  closedir(d);
  return n;
}

/* A pool that never needs its launcher makes none: its host, which runs
 * no task, makes it only when a start is asked of it. QUIT before that
 * leaves the host a plain worker, and the end waits for no HELLO. A host
 * killed before it made one: the start gets a launcher forked here. */
static void test_early_start_launcher_on_demand(void) {
  if (!pp__direct_workers_possible())
    return;
  enum { ASKED, QUIT_FIRST, HOST_KILLED, NWAYS };
  for (int way = 0; way < NWAYS; way++) {
    int quit_first = way == QUIT_FIRST;
    harness h;
    long base = children_of((long)getpid());
    if (!open_harness_as(&h, ppid_main, 1))
      return;
    for (unsigned i = 0; i < 2; i++)
      CU_ASSERT_EQUAL(pp__backend_start(h.b, i), PP_OK);
    CU_ASSERT_EQUAL(pp__backend_ready(h.b), PP_OK);
    PUMP_UNTIL(&h, h.s[0].started && h.s[1].started);
    for (unsigned i = 0; i < 2; i++) {
      pp__buf *in = pp__backend_input(h.b, i);
      PUMP_UNTIL(&h, pp__buf_len(in) >= sizeof(long) || h.s[i].closed);
      CU_ASSERT_EQUAL_FATAL(pp__buf_len(in), sizeof(long));
      pp__buf_consume(in, sizeof(long));
      round_trip(&h, i, (const unsigned char *)"idle", 4);
    }
    CU_ASSERT_EQUAL(children_of((long)getpid()), base + 2);
    long launcher = -1;
    if (way == HOST_KILLED) {
      CU_ASSERT_EQUAL(pp__backend_kill(h.b, 1), PP_OK);
      PUMP_UNTIL(&h, h.s[1].exited && h.s[1].closed);
      CU_ASSERT(h.s[1].exited && h.s[1].closed);
      CU_ASSERT_EQUAL(h.broken, 0);
      pp__backend_release(h.b, 1);
      forget_slot(&h, 1);
      round_trip(&h, 0, (const unsigned char *)"on", 2);
    }
    if (quit_first) {
      pp__backend_shutdown(h.b);
      round_trip(&h, 1, (const unsigned char *)"still", 5);
    } else {
      start_and_wait(&h, 2);
      pp__buf *in = pp__backend_input(h.b, 2);
      PUMP_UNTIL(&h, pp__buf_len(in) >= sizeof launcher || h.s[2].closed);
      CU_ASSERT_EQUAL_FATAL(pp__buf_len(in), sizeof launcher);
      memcpy(&launcher, pp__buf_head(in), sizeof launcher);
      pp__buf_consume(in, sizeof launcher);
      CU_ASSERT_EQUAL(tu_parent_of(launcher), (long)getpid());
      CU_ASSERT(launcher != h.s[0].pid && launcher != h.s[1].pid);
      round_trip(&h, 2, (const unsigned char *)"made", 4);
      /* The first workers and the launcher; the killed host is reaped. */
      CU_ASSERT_EQUAL(children_of((long)getpid()),
                      base + (way == HOST_KILLED ? 2 : 3));
    }
    for (unsigned i = 0; i < (quit_first ? 2u : 3u); i++)
      if (!(way == HOST_KILLED && i == 1))
        hangup_and_reap(&h, i);
    long t0 = now_ms();
    pp__backend_destroy(h.b);
    /* Far below the 5 s a backend waits for a HELLO that may come. */
    CU_ASSERT(now_ms() - t0 < 2500);
    CU_ASSERT_EQUAL(children_of((long)getpid()), base);
    if (launcher > 0)
      CU_ASSERT(pid_gone(launcher));
  }
}

/* 1 when every write end of the pipe read by `r` (non-blocking) is
 * closed: the read sees EOF rather than EAGAIN. */
static int writers_gone(int r) {
  char c;
  return read(r, &c, 1) == 0;
}

/* The control socket's descriptor passing: channel ends arrive in order
 * and close-on-exec, and those the receiver has no room for are closed
 * rather than left open in this process. */
static void test_descriptor_passing(void) {
  int sv[2], p[3][2];
  CU_ASSERT_FATAL(pp__socketpair(sv) == 0);
  int ends[3];
  for (int k = 0; k < 3; k++) {
    CU_ASSERT_FATAL(pipe(p[k]) == 0);
    CU_ASSERT_FATAL(pp__set_nonblock(p[k][0]) == 0);
    ends[k] = p[k][1];
  }
  CU_ASSERT_EQUAL(pp__send_fds(sv[0], "abc", 3, ends, 3), 3);
  for (int k = 0; k < 3; k++)
    close(p[k][1]); /* the copies in flight are the only ones left */
  char buf[8];
  int got[2] = {-1, -1};
  size_t n = 99;
  CU_ASSERT_EQUAL(pp__recv_fds(sv[1], buf, sizeof buf, got, 2, &n, 0), 3);
  CU_ASSERT_EQUAL(memcmp(buf, "abc", 3), 0);
  CU_ASSERT_EQUAL_FATAL(n, 2);
  for (int k = 0; k < 2; k++) {
    CU_ASSERT(fcntl(got[k], F_GETFD) & FD_CLOEXEC);
    char c = (char)('x' + k);
    CU_ASSERT_EQUAL(write(got[k], &c, 1), 1);
    CU_ASSERT_EQUAL(read(p[k][0], &c, 1), 1);
    CU_ASSERT_EQUAL(c, 'x' + k); /* got[k] is the k-th sent */
    close(got[k]);
    CU_ASSERT(writers_gone(p[k][0]));
  }
  CU_ASSERT(writers_gone(p[2][0]));

  /* No room at all, as in the parent: every descriptor is closed. */
  int q[2];
  CU_ASSERT_FATAL(pipe(q) == 0);
  CU_ASSERT_FATAL(pp__set_nonblock(q[0]) == 0);
  CU_ASSERT_EQUAL(pp__send_fds(sv[0], "d", 1, &q[1], 1), 1);
  close(q[1]);
  CU_ASSERT_EQUAL(pp__recv_fds(sv[1], buf, sizeof buf, NULL, 0, &n, 0), 1);
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT(writers_gone(q[0]));

  close(sv[0]);
  CU_ASSERT_EQUAL(pp__recv_fds(sv[1], buf, sizeof buf, NULL, 0, &n, 0), 0);
  CU_ASSERT_EQUAL(n, 0);
  close(sv[1]);
  close(q[0]);
  for (int k = 0; k < 3; k++)
    close(p[k][0]);
}

static void test_describe_and_cpus(void) {
  char text[64];
  pp__exit e = {.signaled = 0, .code = 3};
  pp__exit_describe(&e, text, sizeof text);
  CU_ASSERT_STRING_EQUAL(text, "exited with code 3");
  e.signaled = 1;
  e.code = 9;
  pp__exit_describe(&e, text, 8);
  CU_ASSERT_EQUAL(strlen(text), 7); /* truncated, terminated */
  pp__exit_describe(&e, text, 0);   /* no room: untouched, no crash */
  CU_ASSERT(pp__cpu_count() >= 1);
}

int pp_test_suite_backend(void) {
  static const struct {
    const char *name;
    void (*fn)(void);
  } tests[] = {
      {"create arguments", test_create_arguments},
      {"slot arguments", test_slot_arguments},
      {"echo through three workers", test_echo_three_workers},
      {"worker killed by a signal", test_worker_killed_by_signal},
      {"kill", test_kill},
      {"exit code", test_exit_code},
      {"hangup and kill while starting", test_hangup_and_kill_while_starting},
      {"destroy leaves no process", test_destroy_leaves_no_process},
      {"slot reuse", test_slot_reuse},
      {"no descriptor leaks", test_no_descriptor_leaks},
      {"no SIGPIPE", test_no_sigpipe},
      {"two backends", test_two_backends},
      {"launcher death: a new launcher", test_launcher_death},
      {"a launcher that keeps dying breaks the backend",
       test_launcher_keeps_dying},
      {"early start: two workers forked here, the rest by the launcher",
       test_early_start},
      {"early start: a host that cannot make the launcher",
       test_early_start_no_host},
      {"early start: a host tries again when the clone fails for a moment",
       test_early_start_host_retries},
      {"early start: the direct worker's endings", test_early_start_endings},
      {"early start: destroy ends the direct worker", test_early_start_destroy},
      {"early start: destroy at once leaves no child",
       test_early_start_destroy_at_once},
      {"early start: launcher death spares the direct workers",
       test_early_start_launcher_death},
      {"early start: owner SIGKILLed, busy workers go",
       test_early_start_owner_death},
      {"early start: owner SIGKILLed before any launcher, busy worker goes",
       test_early_start_owner_death_no_launcher},
      {"early start: the launcher is made when first needed",
       test_early_start_launcher_on_demand},
      {"a worker forked here that cannot set up its channel says why",
       test_worker_channel_fails_says_why},
      {"describe and cpu count", test_describe_and_cpus},
      {"descriptor passing", test_descriptor_passing},
      /* Last: a thread was created, and forks after that show glibc's
       * cached thread stack as "possibly lost" under valgrind. */
      {"wake", test_wake},
      {"wake-ups are never lost, sent before or during a wait",
       test_wake_never_lost},
  };
  CU_pSuite suite = CU_add_suite("backend", NULL, NULL);
  if (!suite)
    return 1;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
    if (!CU_add_test(suite, tests[i].name, tests[i].fn))
      return 1;
  return 0;
}

#endif /* _WIN32 */
