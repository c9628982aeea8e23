/* Helpers shared by the procpool CUnit suites. */
#ifndef _WIN32
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#endif

#include "util.h"
#include "tasks.h"

#include <CUnit/CUnit.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <process.h>
#include <windows.h>
#else
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#endif

double tu_now(void) {
#ifdef _WIN32
  LARGE_INTEGER freq, now;
  QueryPerformanceFrequency(&freq);
  QueryPerformanceCounter(&now);
  return (double)now.QuadPart / (double)freq.QuadPart;
#else
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#endif
}

void tu_sleep_ms(long ms) {
  if (ms <= 0) {
    return;
  }
#ifdef _WIN32
  Sleep((DWORD)ms);
#else
  struct timespec req, rem;
  req.tv_sec = ms / 1000;
  req.tv_nsec = (ms % 1000) * 1000000L;
  while (nanosleep(&req, &rem) == -1 && errno == EINTR) {
    req = rem;
  }
#endif
}

long tu_self_pid(void) {
#ifdef _WIN32
  return (long)GetCurrentProcessId();
#else
  return (long)getpid();
#endif
}

#ifdef _WIN32
int tu_pid_gone(long pid) {
  if (pid <= 0) {
    return 0;
  }
  /* No such process, or one that has ended but whose object some handle
     still keeps. */
  HANDLE h = OpenProcess(SYNCHRONIZE, FALSE, (DWORD)pid);
  if (h == NULL) {
    return GetLastError() == ERROR_INVALID_PARAMETER;
  }
  int gone = WaitForSingleObject(h, 0) == WAIT_OBJECT_0;
  CloseHandle(h);
  return gone;
}
#else
int tu_pid_gone(long pid) {
  if (pid <= 0) {
    return 0;
  }
  return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}
#endif

long tu_parent_of(long pid) {
#ifdef __linux__
  char path[64], text[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) {
    return -1;
  }
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  /* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
  const char *close = strrchr(text, ')');
  long ppid = -1;
  if (!close || sscanf(close + 1, " %*c %ld", &ppid) != 1) {
    return -1;
  }
  return ppid;
#else
  (void)pid;
  return -1;
#endif
}

#ifndef _WIN32
long tu_fork_owner(int *report) {
  int fds[2];
  if (pipe(fds) != 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  close(fds[pid == 0 ? 0 : 1]);
  *report = fds[pid == 0 ? 1 : 0];
  return (long)pid;
}

void tu_owner_report(int report, const long *pids, size_t n) {
  if (write(report, pids, n * sizeof *pids) < 0)
    _exit(1);
  for (;;)
    pause();
}

size_t tu_kill_owner(long owner, int report, long *pids, size_t n) {
  memset(pids, 0, n * sizeof *pids);
  ssize_t got = read(report, pids, n * sizeof *pids);
  close(report);
  if (got != (ssize_t)(n * sizeof *pids))
    memset(pids, 0, n * sizeof *pids);
  kill((pid_t)owner, SIGKILL);
  waitpid((pid_t)owner, NULL, 0);
  double t0 = tu_now();
  size_t gone = 0;
  for (;;) {
    gone = 0;
    for (size_t k = 0; k < n; k++)
      gone += pids[k] > 0 && tu_pid_gone(pids[k]);
    if (gone == n || tu_now() - t0 >= 5.0)
      break;
    tu_sleep_ms(20);
  }
  for (size_t k = 0; k < n; k++)
    if (pids[k] > 0 && !tu_pid_gone(pids[k]))
      kill((pid_t)pids[k], SIGKILL);
  return gone;
}

int tu_stderr_begin(tu_stderr *c) {
  c->file = tmpfile();
  c->saved = c->file ? fcntl(2, F_DUPFD_CLOEXEC, 10) : -1;
  fflush(stderr);
  if (c->saved < 0 || dup2(fileno(c->file), 2) != 2) {
    if (c->saved >= 0)
      close(c->saved);
    if (c->file)
      fclose(c->file);
    c->file = NULL;
    return -1;
  }
  return 0;
}

char *tu_stderr_end(tu_stderr *c) {
  fflush(stderr);
  dup2(c->saved, 2);
  close(c->saved);
  size_t cap = 4096, n = 0;
  char *text = malloc(cap);
  rewind(c->file);
  while (text) {
    n += fread(text + n, 1, cap - 1 - n, c->file);
    if (n < cap - 1)
      break;
    char *more = realloc(text, cap *= 2);
    if (!more)
      free(text);
    text = more;
  }
  if (text)
    text[n] = '\0';
  fclose(c->file);
  c->file = NULL;
  return text;
}
#endif

void tu_counter_init(tu_counter *c) {
#if defined(_MSC_VER)
  InterlockedExchange(&c->v, 0);
#else
  atomic_init(&c->v, 0);
#endif
}

long tu_counter_inc(tu_counter *c) {
#if defined(_MSC_VER)
  return InterlockedIncrement(&c->v);
#else
  return atomic_fetch_add(&c->v, 1) + 1;
#endif
}

long tu_counter_get(tu_counter *c) {
#if defined(_MSC_VER)
  return InterlockedCompareExchange(&c->v, 0, 0);
#else
  return atomic_load(&c->v);
#endif
}

long tu_counter_wait(tu_counter *c, long target, double timeout) {
  double deadline = tu_now() + timeout;
  long v = tu_counter_get(c);
  while (v < target && tu_now() < deadline) {
    tu_sleep_ms(2);
    v = tu_counter_get(c);
  }
  return v;
}

pp_bytes tu_i64(const int64_t *value) {
  pp_bytes b;
  b.data = value;
  b.len = sizeof *value;
  return b;
}

void tu_i64_items(int64_t *vals, pp_bytes *items, size_t n, int64_t first) {
  for (size_t i = 0; i < n; i++) {
    vals[i] = first + (int64_t)i;
    items[i] = tu_i64(&vals[i]);
  }
}

void tu_range_init(tu_range *range, int64_t first, int64_t end) {
  range->next = first;
  range->end = end;
  range->current = 0;
  range->pulled = 0;
}

pp_status tu_range_next(void *state, pp_bytes *item) {
  tu_range *range = state;
  if (range->next >= range->end) {
    return PP_EOF;
  }
  range->current = range->next++;
  range->pulled++;
  *item = tu_i64(&range->current);
  return PP_OK;
}

pp_pool *tu_pool_opts(const pp_options *options) {
  pp_pool *pool = NULL;
  pp_status st = pp_pool_create(&pool, options);
  if (st != PP_OK) {
    fprintf(stderr, "pp_pool_create: %s\n", pp_strerror(st));
    return NULL;
  }
  return pool;
}

pp_pool *tu_pool_memory_limited(size_t headroom_mib) {
  pp_pool *pool = tu_pool(1);
  int64_t base = 0;
  pp_status st = pool ? tu_apply_i64(pool, "rss", 0, &base) : PP_ENOMEM;
  pp_pool_destroy(pool);
  if (st != PP_OK || base <= 0) {
    fprintf(stderr, "a worker's resident size: %s\n", pp_strerror(st));
    return NULL;
  }
  pp_options o;
  pp_options_init(&o);
  o.processes = 1;
  o.max_memory_per_child = (size_t)base + (headroom_mib << 20);
  return tu_pool_opts(&o);
}

pp_pool *tu_pool(int processes) {
  pp_options opts;
  pp_options_init(&opts);
  opts.processes = processes;
  return tu_pool_opts(&opts);
}

int tu_contains(const char *haystack, const char *needle) {
  return haystack != NULL && needle != NULL && strstr(haystack, needle) != NULL;
}

pp_status tu_apply_echo(pp_pool *pool, const char *task, const void *buf,
                        size_t len) {
  pp_bytes arg = {buf, len};
  pp_value v = {0};
  pp_status st = pp_apply(pool, task, &arg, 1, &v);
  if (st == PP_OK && (v.len != len || memcmp(v.data, buf, len) != 0))
    st = PP_EPROTOCOL;
  pp_value_clear(&v);
  return st;
}

int tu_bytes_contain(pp_bytes b, const char *needle) {
  size_t n = strlen(needle);
  const char *p = b.data;
  if (p == NULL || b.len < n) {
    return 0;
  }
  for (size_t i = 0; i + n <= b.len; i++) {
    if (memcmp(p + i, needle, n) == 0) {
      return 1;
    }
  }
  return 0;
}

pp_status tu_apply_i64(pp_pool *pool, const char *task, int64_t arg,
                       int64_t *out) {
  pp_result *r = NULL;
  pp_bytes a = tu_i64(&arg);
  pp_status st = pp_apply_async(pool, task, &a, 1, NULL, &r);
  if (st != PP_OK) {
    return st;
  }
  st = pp_result_get(r, TU_WAIT);
  if (st == PP_OK) {
    st = pp_result_i64(r, out);
  } else {
    /* Say why in the test's output: a bare status says too little when a
       failure is rare. */
    const char *why = pp_result_error(r);
    printf("\n    %s: %s (%s)\n", task, pp_strerror(st), why ? why : "-");
  }
  pp_result_free(r);
  return st;
}

int tu_add_suite(const char *name, const tu_test *tests, size_t n) {
  CU_pSuite suite = CU_add_suite(name, NULL, NULL);
  if (suite == NULL) {
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (CU_add_test(suite, tests[i].name, tests[i].fn) == NULL) {
      return -1;
    }
  }
  return 0;
}

struct tu_thread {
  void (*fn)(void *);
  void *arg;
#ifdef _WIN32
  HANDLE thread;
#else
  pthread_t thread;
#endif
};

#ifdef _WIN32
static unsigned __stdcall thread_main(void *arg) {
#else
static void *thread_main(void *arg) {
#endif
  tu_thread *t = arg;
  t->fn(t->arg);
#ifdef _WIN32
  return 0;
#else
  return NULL;
#endif
}

tu_thread *tu_thread_start(void (*fn)(void *), void *arg) {
  tu_thread *t = calloc(1, sizeof *t);
  if (t == NULL) {
    return NULL;
  }
  t->fn = fn;
  t->arg = arg;
#ifdef _WIN32
  uintptr_t h = _beginthreadex(NULL, 0, thread_main, t, 0, NULL);
  if (h == 0) {
    free(t);
    return NULL;
  }
  t->thread = (HANDLE)h;
#else
  if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
    free(t);
    return NULL;
  }
#endif
  return t;
}

void tu_thread_join(tu_thread *t) {
  if (t == NULL) {
    return;
  }
#ifdef _WIN32
  WaitForSingleObject(t->thread, INFINITE);
  CloseHandle(t->thread);
#else
  pthread_join(t->thread, NULL);
#endif
  free(t);
}

/* A joiner is a tu_thread running pp_pool_join(). */
struct tu_joiner {
  pp_pool *pool;
  tu_counter done;
  pp_status status;
  tu_thread *thread;
};

static void joiner_main(void *arg) {
  tu_joiner *j = arg;
  j->status = pp_pool_join(j->pool);
  tu_counter_inc(&j->done); /* publishes status */
}

tu_joiner *tu_joiner_start(pp_pool *pool) {
  tu_joiner *j = calloc(1, sizeof *j);
  if (j == NULL) {
    return NULL;
  }
  j->pool = pool;
  j->status = PP_ESYSTEM;
  tu_counter_init(&j->done);
  j->thread = tu_thread_start(joiner_main, j);
  if (j->thread == NULL) {
    free(j);
    return NULL;
  }
  return j;
}

int tu_joiner_wait(tu_joiner *j, double timeout) {
  return tu_counter_wait(&j->done, 1, timeout) >= 1;
}

pp_status tu_joiner_status(tu_joiner *j) {
  return tu_counter_get(&j->done) >= 1 ? j->status : PP_ETIMEOUT;
}

void tu_joiner_free(tu_joiner *j) {
  if (j == NULL) {
    return;
  }
  tu_thread_join(j->thread);
  free(j);
}

int tu_allocator_keeps(void) {
  const char *preload = getenv("LD_PRELOAD");
  return TU_ALLOCATOR_KEEPS || (preload && strstr(preload, "vgpreload"));
}

size_t tu_wrong_blobs(pp_result *r, size_t n, int64_t first, size_t len) {
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++) {
    pp_bytes b = {NULL, 0};
    wrong += pp_result_item(r, i, &b) != PP_OK || b.len != len ||
             !task_blob_right(b.data, b.len, first + (int64_t)i);
  }
  return wrong;
}

size_t tu_wrong_imap_blobs(pp_iter *it, size_t n, int64_t first) {
  size_t wrong = 0, got = 0;
  for (;;) {
    pp_value v = {0};
    pp_status st = pp_iter_next(it, TU_WAIT, &v);
    if (st == PP_EOF || st == PP_ETIMEOUT) {
      wrong += st != PP_EOF;
      break;
    }
    wrong += st != PP_OK || v.len != TASK_BLOB_LEN ||
             !task_blob_right(v.data, v.len, first + (int64_t)got);
    if (st != PP_OK && wrong == 1)
      fprintf(stderr, "\n  imap item %zu: %s\n", got,
              v.error ? v.error : pp_strerror(st));
    got++;
    pp_value_clear(&v);
  }
  return wrong + (got != n ? n : 0);
}

size_t tu_wrong_echoes(const pp_result *r, const pp_bytes *items, size_t n) {
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++) {
    pp_bytes b = {NULL, 0};
    wrong += pp_result_item(r, i, &b) != PP_OK || b.len != items[i].len ||
             (b.len && memcmp(b.data, items[i].data, b.len) != 0);
  }
  return wrong;
}
