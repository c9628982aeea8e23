/* pp_faults: calls that fail, one at a time or many in a row, at every
 * point of a workload, must never crash the pool's parent, hang it or lose
 * a result: every call returns PP_OK with the right answer, or an error
 * status with a message.
 *
 * What fails (--fail):
 *   alloc   malloc() and its kin: this program replaces them (glibc lets a
 *           program do so) with glibc's own, wrapped;
 *   system  the calls that make descriptors, processes and mappings
 *           (socketpair, pipe, pipe2, eventfd, open, shm_open,
 *           memfd_create where there is one, posix_fallocate (a full
 *           /dev/shm or memory cgroup under the shared memory), fork,
 *           posix_spawn, mmap): the library is linked into this program,
 *           so its calls reach wrappers here that forward to the C
 *           library's own (found with dlsym).
 * Once armed, the n-th such call this process makes (on any of its
 * threads, the pool's included; never in a worker, another process) fails
 * with the error the system would give (ENOMEM, EMFILE, EAGAIN). For each
 * n of the sweep, the workload makes a pool of 2 whose workers are
 * replaced every 6 chunks and drives it through a blocking and an
 * asynchronous apply, a map, ordered and unordered imaps (one taken in
 * batches and dropped, one of items that outgrow their chunk's first
 * room), results with callbacks, a starmap, a payload big
 * enough for the shared-memory lanes, close, join and destroy; the call
 * that fails lands somewhere else each time. A first unarmed run counts
 * the calls the workload makes, which bounds the sweep. After the sweep, a
 * pool made without failures must work as if nothing happened.
 *
 * Usage: pp_faults [--ctx NAME] [--fail alloc|system] [--step S]
 *                  [--burst B] [--in-workers N] [--hang S]
 *   --ctx   the start context (default: PROCPOOL_START_METHOD, or the
 *           platform's default)
 *   --fail  what fails (default alloc)
 *   --step  sweep every S-th call (default 1: every one)
 *   --burst fail B calls in a row from there, not one (default 1): memory
 *           or descriptors short for a while, not for one call
 *   --in-workers N  the failures are the workers' and the launcher's
 *           instead, each process counting its own calls, for the first N
 *           of them: a worker short of memory must end its task with an
 *           error or leave with procpool's exit code for it, and the parent
 *           go on (or say the pool is broken, when every new worker fails
 *           the same way)
 *   --hang  seconds one round may take before it counts as a hang and the
 *           program stops with status 2 (default 60)
 * With PP_FAULTS_VERBOSE set, what each failed call said is printed.
 *
 * Exit status: 0 when every check held; 1 when one failed (each failure
 * printed); 2 on a hang. A crash ends it with the signal.
 *
 * Linux with glibc only (__libc_malloc and kin), and not under a
 * sanitizer, whose runtime owns malloc. */
#define _GNU_SOURCE 1

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h" /* pp__test: the start give-up time */
#include "procpool.h"
#include "tasks.h"
#include "util.h"

/* ---- the allocator ---- */

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

/* Armed at n: this process's allocations number n to n + burst - 1 since
 * arming fail. Counting: how many it made. Only the process that armed it
 * is affected. */
static atomic_int armed;
static atomic_long since_armed;
static long fail_from, fail_until;
static atomic_long counted;
static atomic_int counting;
static atomic_int tripped; /* an armed failure happened */
static pid_t owner_pid;

/* --in-workers: the failures are every other process's (the workers',
 * the launcher's), each counting its own allocations from its start. */
static int in_workers;
static int verbose; /* PP_FAULTS_VERBOSE set */

static int targeted(void) {
  return in_workers ? getpid() != owner_pid : getpid() == owner_pid;
}

/* What fails: allocations (the default), or, with --fail system, the
 * calls that make descriptors, processes and mappings. */
enum { FAIL_ALLOC, FAIL_SYSTEM };
static int fail_kind = FAIL_ALLOC;

static int fail_this_one_of(int kind) {
  if (kind != fail_kind)
    return 0;
  int on = atomic_load_explicit(&armed, memory_order_relaxed);
  int count = atomic_load_explicit(&counting, memory_order_relaxed);
  if ((!on && !count) || !targeted())
    return 0;
  if (count)
    atomic_fetch_add(&counted, 1);
  if (!on)
    return 0;
  long k = atomic_fetch_add(&since_armed, 1) + 1;
  if (k < fail_from || k >= fail_until)
    return 0;
  if (!atomic_exchange(&tripped, 1) && in_workers && verbose)
    (void)!write(2, "pp_faults: a worker's call fails\n", 30);
  return 1;
}

static int fail_this_one(void) { return fail_this_one_of(FAIL_ALLOC); }

void *malloc(size_t size) {
  if (fail_this_one()) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
  if (fail_this_one()) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
  if (size && fail_this_one()) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_realloc(p, size);
}

void *memalign(size_t align, size_t size) {
  if (fail_this_one()) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_memalign(align, size);
}

void *aligned_alloc(size_t align, size_t size) { return memalign(align, size); }

int posix_memalign(void **out, size_t align, size_t size) {
  void *p = memalign(align, size);
  if (!p)
    return ENOMEM;
  *out = p;
  return 0;
}

void free(void *p) { __libc_free(p); }

/* ---- the system calls ----
 * The library is linked into this program, so its calls of these reach
 * these definitions; each forwards to the C library's own, found once at
 * start (resolve_system_calls()), unless it is the one to fail. */

static int (*real_socketpair)(int, int, int, int[2]);
static int (*real_pipe)(int[2]);
static int (*real_pipe2)(int[2], int);
static int (*real_eventfd)(unsigned int, int);
static int (*real_open)(const char *, int, ...);
static int (*real_shm_open)(const char *, int, mode_t);
#ifdef MFD_CLOEXEC
static int (*real_memfd_create)(const char *, unsigned int);
#endif
static int (*real_posix_fallocate)(int, off_t, off_t);
static pid_t (*real_fork)(void);
static int (*real_posix_spawn)(pid_t *, const char *,
                               const posix_spawn_file_actions_t *,
                               const posix_spawnattr_t *, char *const[],
                               char *const[]);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);

/* dlsym() gives a data pointer; a function pointer is copied out of it
 * bytewise, which C allows where POSIX says the two are alike. */
static int resolve(void *fn_ptr, size_t size, const char *name) {
  void *sym = dlsym(RTLD_NEXT, name);
  if (!sym)
    return 0;
  memcpy(fn_ptr, &sym, size);
  return 1;
}

static int resolve_system_calls(void) {
  return resolve(&real_socketpair, sizeof real_socketpair, "socketpair") &&
         resolve(&real_pipe, sizeof real_pipe, "pipe") &&
         resolve(&real_pipe2, sizeof real_pipe2, "pipe2") &&
         resolve(&real_eventfd, sizeof real_eventfd, "eventfd") &&
         resolve(&real_open, sizeof real_open, "open") &&
         resolve(&real_shm_open, sizeof real_shm_open, "shm_open") &&
#ifdef MFD_CLOEXEC
         resolve(&real_memfd_create, sizeof real_memfd_create,
                 "memfd_create") &&
#endif
         resolve(&real_posix_fallocate, sizeof real_posix_fallocate,
                 "posix_fallocate") &&
         resolve(&real_fork, sizeof real_fork, "fork") &&
         resolve(&real_posix_spawn, sizeof real_posix_spawn, "posix_spawn") &&
         resolve(&real_mmap, sizeof real_mmap, "mmap");
}

static int fail_system(int err) {
  if (!fail_this_one_of(FAIL_SYSTEM))
    return 0;
  errno = err;
  return 1;
}

int socketpair(int domain, int type, int protocol, int sv[2]) {
  return fail_system(EMFILE) ? -1 : real_socketpair(domain, type, protocol, sv);
}

int pipe(int fds[2]) { return fail_system(EMFILE) ? -1 : real_pipe(fds); }

int pipe2(int fds[2], int flags) {
  return fail_system(EMFILE) ? -1 : real_pipe2(fds, flags);
}

int eventfd(unsigned int initval, int flags) {
  return fail_system(EMFILE) ? -1 : real_eventfd(initval, flags);
}

int open(const char *path, int flags, ...) {
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  return fail_system(EMFILE) ? -1 : real_open(path, flags, mode);
}

int shm_open(const char *name, int flags, mode_t mode) {
  return fail_system(EMFILE) ? -1 : real_shm_open(name, flags, mode);
}

#ifdef MFD_CLOEXEC
int memfd_create(const char *name, unsigned int flags) {
  return fail_system(EMFILE) ? -1 : real_memfd_create(name, flags);
}
#endif

/* Returns its error, as posix_spawn() does: ENOSPC is a full file system
 * (tmpfs at its size, a memory cgroup at its limit). */
int posix_fallocate(int fd, off_t offset, off_t len) {
  if (fail_system(ENOSPC))
    return ENOSPC;
  return real_posix_fallocate(fd, offset, len);
}

pid_t fork(void) { return fail_system(EAGAIN) ? -1 : real_fork(); }

int posix_spawn(pid_t *pid, const char *path,
                const posix_spawn_file_actions_t *actions,
                const posix_spawnattr_t *attr, char *const argv[],
                char *const envp[]) {
  if (fail_system(EAGAIN))
    return EAGAIN;
  return real_posix_spawn(pid, path, actions, attr, argv, envp);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (fail_system(ENOMEM))
    return MAP_FAILED;
  return real_mmap(addr, len, prot, flags, fd, off);
}

static void arm(long n, long burst) {
  fail_from = n;
  fail_until = n + burst;
  atomic_store(&tripped, 0);
  atomic_store(&since_armed, 0);
  atomic_store(&armed, 1);
}

static void disarm(void) { atomic_store(&armed, 0); }

/* A forked process counts from its own start. */
static void forked_child(void) { atomic_store(&since_armed, 0); }

/* How a worker started afresh (spawn, forkserver) learns its failures:
 * from its environment, as the parent's at pool creation. */
#define WORKERS_VAR "PP_FAULTS_WORKERS"

static void arm_from_environment(void) {
  const char *v = getenv(WORKERS_VAR);
  long from = 0, burst = 0;
  int kind = FAIL_ALLOC;
  if (!v || sscanf(v, "%ld,%ld,%d", &from, &burst, &kind) != 3 || from < 1 ||
      burst < 1 || (kind != FAIL_ALLOC && kind != FAIL_SYSTEM))
    return;
  fail_kind = kind;
  in_workers = 1;
  owner_pid = 0; /* no process here is the owner */
  arm(from, burst);
}

/* ---- the workload ---- */

static int failures;
static long current_round;

static void check(int ok, const char *what, pp_status st) {
  if (ok)
    return;
  failures++;
  fprintf(stderr, "pp_faults: round %ld: %s (status %s)\n", current_round, what,
          pp_strerror(st));
}

/* A call that did not succeed must say why: a status with a name. */
static void check_error(pp_status st, const char *what) {
  check(st != PP_OK && pp_strerror(st) != NULL, what, st);
}

/* A failed call: nothing in this workload kills a worker, so a worker
 * that died of a signal crashed when memory ran short; and every worker
 * speaks the protocol right, so a malformed message is the parent's
 * mistake. With
 * PP_FAULTS_VERBOSE, what each failed call said is printed. */
static void note(const char *what, pp_status st, const char *message) {
  if (st == PP_OK)
    return;
  if (verbose)
    fprintf(stderr, "pp_faults: round %ld: %s: %s: %s\n", current_round, what,
            pp_strerror(st), message ? message : "");
  check(!message || !strstr(message, "signal"),
        "a worker crashed (it died of a signal)", st);
  check(!message || !strstr(message, "malformed"),
        "a worker was blamed for a message it sent right", st);
  check(!message || !strstr(message, "fork: Too many open files"),
        "a failure named the wrong call (fork makes no descriptor)", st);
}

static pp_status apply_square(pp_pool *pool, int64_t x) {
  pp_bytes arg = {&x, sizeof x};
  pp_value v = {0};
  pp_status st = pp_apply(pool, "square", &arg, 1, &v);
  note("pp_apply", st, v.error);
  int64_t got = 0;
  if (st == PP_OK)
    check(pp_value_i64(&v, &got) == PP_OK && got == x * x,
          "pp_apply(square) said PP_OK with a wrong value", st);
  else
    check(st == v.status && v.error != NULL,
          "pp_apply's status and value disagree", st);
  pp_value_clear(&v);
  return st;
}

static void apply_async_square(pp_pool *pool, int64_t x) {
  pp_bytes arg = {&x, sizeof x};
  pp_result *r = NULL;
  pp_status st = pp_apply_async(pool, "square", &arg, 1, NULL, &r);
  if (st != PP_OK) {
    check(r == NULL, "a refused pp_apply_async left a result", st);
    return;
  }
  st = pp_result_get(r, 30.0);
  note("pp_apply_async", st, pp_result_error(r));
  check(st != PP_ETIMEOUT, "pp_result_get: the result never completed", st);
  int64_t got = 0;
  if (st == PP_OK)
    check(pp_result_i64(r, &got) == PP_OK && got == x * x,
          "pp_apply_async said PP_OK with a wrong value", st);
  else
    check(pp_result_error(r) != NULL, "a failed result without a message", st);
  pp_result_free(r);
}

#define MAP_ITEMS 40

static void map_squares(pp_pool *pool) {
  int64_t vals[MAP_ITEMS];
  pp_bytes items[MAP_ITEMS];
  for (size_t i = 0; i < MAP_ITEMS; i++) {
    vals[i] = (int64_t)i;
    items[i] = (pp_bytes){&vals[i], sizeof vals[i]};
  }
  pp_result *r = NULL;
  pp_status st = pp_map(pool, "square", items, MAP_ITEMS, 3, &r);
  note("pp_map", st, pp_result_error(r));
  if (!r) {
    check_error(st, "pp_map failed without a status");
    return;
  }
  check(st != PP_ETIMEOUT, "pp_map did not complete", st);
  if (st == PP_OK) {
    check(pp_result_count(r) == MAP_ITEMS, "pp_map lost items", st);
    for (size_t i = 0; i < pp_result_count(r); i++) {
      int64_t got = -1;
      pp_status ist = pp_result_item_i64(r, i, &got);
      check(ist == PP_OK && got == (int64_t)(i * i),
            "pp_map said PP_OK with a wrong or missing item", ist);
    }
  } else {
    check(pp_result_error(r) != NULL, "a failed map without a message", st);
  }
  pp_result_free(r);
}

#define IMAP_ITEMS 60

/* How an imap ends, by the iterator's contract: its items in order, each
 * a value or its own failure; then, where the input was stopped by an
 * error (an item it could not take, say), that error once; then PP_EOF. */
typedef struct imap_tally {
  int64_t outcomes;   /* items and the stop, as handed out */
  int last_failed;    /* the last outcome was an error */
  uint64_t seen_mask; /* unordered: which squares came */
} imap_tally;

/* One allocation failing in the parent at a time: an imap then keeps
 * its whole input (a chunk that cannot begin is tried again), so every
 * item comes, as a value or as its own failure, and nothing stops it. */
static int single_failures;

static void imap_ended(const imap_tally *t, int64_t items, const char *what) {
  int ok = t->outcomes == items || (t->last_failed && t->outcomes <= items + 1);
  check(ok, what, PP_EOF);
  if (ok && single_failures)
    check(t->outcomes == items, "one failed allocation stopped an imap's input",
          PP_EOF);
}

/* Whether a value an imap handed out is right: its tally says which came
 * before. */
typedef int (*imap_item_check)(const pp_value *v, imap_tally *t, int ordered);

/* Takes every outcome of `it` (of `items` items) until PP_EOF, checking
 * each as the iterator's contract says, values with `item_ok`. */
static void imap_drain(pp_iter *it, int64_t items, int ordered,
                       imap_item_check item_ok, const char *lost) {
  imap_tally t = {0, 0, 0};
  for (;;) {
    pp_value v = {0};
    pp_status st = pp_iter_next(it, 30.0, &v);
    if (st == PP_EOF) {
      imap_ended(&t, items, lost);
      break;
    }
    check(st != PP_ETIMEOUT, "pp_iter_next: the imap stopped moving", st);
    if (st == PP_ETIMEOUT)
      break;
    if (st == PP_OK) {
      check(item_ok(&v, &t, ordered), "an imap gave a wrong or repeated item",
            st);
      t.last_failed = 0;
    } else {
      check(v.error != NULL, "a failed imap item without a message", st);
      note("pp_iter_next", st, v.error);
      t.last_failed = 1;
    }
    pp_value_clear(&v);
    if (++t.outcomes > items + 1) {
      check(0, "an imap gave more items than it was given", st);
      break;
    }
  }
  pp_iter_free(it);
}

/* A square of one of [0, IMAP_ITEMS), not seen before; in order when
 * `ordered`. */
static int square_ok(const pp_value *v, imap_tally *t, int ordered) {
  int64_t got = -1;
  int ok = pp_value_i64(v, &got) == PP_OK && got >= 0;
  int64_t root = 0;
  while (ok && root * root < got)
    root++;
  ok = ok && root * root == got && root < IMAP_ITEMS &&
       !(t->seen_mask & ((uint64_t)1 << root));
  if (ordered)
    ok = ok && root == t->outcomes;
  if (ok)
    t->seen_mask |= (uint64_t)1 << root;
  return ok;
}

static void imap_squares(pp_pool *pool, int ordered) {
  tu_range range;
  tu_range_init(&range, 0, IMAP_ITEMS);
  pp_iter *it = NULL;
  pp_status st = (ordered ? pp_imap : pp_imap_unordered)(
      pool, "square", tu_range_next, &range, 4, &it);
  if (st != PP_OK) {
    check(it == NULL, "a refused pp_imap left an iterator", st);
    return;
  }
  imap_drain(it, IMAP_ITEMS, ordered, square_ok,
             ordered ? "pp_imap lost items without an error"
                     : "pp_imap_unordered lost items without an error");
}

/* Items of BLOB_SIZE bytes, one more for every fourth from the third,
 * item i all bytes i: a chunk's frame outgrows the room first reserved for
 * it (16 bytes an item) while items are taken, and turns from ITEMS to
 * CALLS at its odd item, so allocations fail there with items of the chunk
 * already taken from the input. */
#define BLOB_ITEMS 12
#define BLOB_SIZE 300
#define BLOB_LEN(i) (BLOB_SIZE + ((i) % 4 == 2))

typedef struct blob_input {
  int next;
  unsigned char bytes[BLOB_SIZE + 1];
} blob_input;

static pp_status blob_next(void *state, pp_bytes *item) {
  blob_input *in = state;
  if (in->next == BLOB_ITEMS)
    return PP_EOF;
  item->len = BLOB_LEN(in->next);
  memset(in->bytes, in->next++, item->len);
  item->data = in->bytes;
  return PP_OK;
}

/* Item `t->outcomes`, whole. */
static int blob_ok(const pp_value *v, imap_tally *t, int ordered) {
  (void)ordered;
  const unsigned char *b = v->data;
  return v->len == BLOB_LEN(t->outcomes) &&
         b[0] == (unsigned char)t->outcomes && b[v->len - 1] == b[0];
}

static void imap_blobs(pp_pool *pool) {
  blob_input in = {0};
  pp_iter *it = NULL;
  pp_status st = pp_imap(pool, "echo", blob_next, &in, 4, &it);
  if (st != PP_OK) {
    check(it == NULL, "a refused pp_imap left an iterator", st);
    return;
  }
  imap_drain(it, BLOB_ITEMS, 1, blob_ok,
             "pp_imap of blobs lost items without an error");
}

/* pp_iter_next_many, then dropped half-way: what is left must go quietly. */
static void imap_batches_dropped(pp_pool *pool) {
  tu_range range;
  tu_range_init(&range, 0, IMAP_ITEMS);
  pp_iter *it = NULL;
  pp_status st = pp_imap(pool, "square", tu_range_next, &range, 4, &it);
  if (st != PP_OK)
    return;
  pp_value vals[8];
  size_t n = 0;
  st = pp_iter_next_many(it, 30.0, vals, 8, &n);
  check(st != PP_ETIMEOUT, "pp_iter_next_many: the imap stopped moving", st);
  for (size_t i = 0; st == PP_OK && i < n; i++) {
    int64_t got = -1;
    if (vals[i].status == PP_OK)
      check(pp_value_i64(&vals[i], &got) == PP_OK && got == (int64_t)(i * i),
            "pp_iter_next_many gave a wrong item", vals[i].status);
  }
  if (st == PP_OK)
    pp_value_clear_many(vals, n);
  pp_iter_free(it);
}

/* Each result's callback or error callback runs exactly once. */
typedef struct callback_count {
  atomic_int ok, failed;
} callback_count;

static void on_ok(pp_result *r, void *data) {
  (void)r;
  atomic_fetch_add(&((callback_count *)data)->ok, 1);
}

static void on_failed(pp_result *r, void *data) {
  (void)r;
  atomic_fetch_add(&((callback_count *)data)->failed, 1);
}

#define CALLBACKS 6

static void apply_async_callbacks(pp_pool *pool) {
  callback_count count;
  atomic_init(&count.ok, 0);
  atomic_init(&count.failed, 0);
  pp_callbacks cb = {on_ok, on_failed, &count, 0};
  pp_result *r[CALLBACKS];
  int64_t x[CALLBACKS];
  size_t made = 0;
  for (size_t i = 0; i < CALLBACKS; i++) {
    x[i] = (int64_t)i + 1;
    pp_bytes arg = {&x[i], sizeof x[i]};
    /* One in three fails by design: both callbacks are exercised. */
    const char *task = i % 3 == 2 ? "fail" : "square";
    if (pp_apply_async(pool, task, &arg, 1, &cb, &r[made]) == PP_OK)
      made++;
  }
  int ok_results = 0;
  for (size_t i = 0; i < made; i++) {
    pp_status st = pp_result_wait(r[i], 30.0);
    check(st == PP_OK, "pp_result_wait: a result never completed", st);
    int ok = 0;
    if (pp_result_successful(r[i], &ok) == PP_OK && ok)
      ok_results++;
  }
  /* Callbacks run before the result is marked ready. */
  int calls = atomic_load(&count.ok) + atomic_load(&count.failed);
  check(calls == (int)made, "a callback ran other than once per result", PP_OK);
  check(atomic_load(&count.ok) == ok_results,
        "callbacks and results disagree on which succeeded", PP_OK);
  for (size_t i = 0; i < made; i++)
    pp_result_free(r[i]);
}

static void starmap_adds(pp_pool *pool) {
  enum { N = 12 };
  int64_t a[N], b[N];
  pp_bytes argv[N][2];
  pp_args items[N];
  for (size_t i = 0; i < N; i++) {
    a[i] = (int64_t)i;
    b[i] = 100;
    argv[i][0] = (pp_bytes){&a[i], sizeof a[i]};
    argv[i][1] = (pp_bytes){&b[i], sizeof b[i]};
    items[i] = (pp_args){argv[i], 2};
  }
  pp_result *r = NULL;
  pp_status st = pp_starmap(pool, "add", items, N, 2, &r);
  if (!r)
    return;
  if (st == PP_OK)
    for (size_t i = 0; i < N; i++) {
      int64_t got = -1;
      pp_status ist = pp_result_item_i64(r, i, &got);
      check(ist == PP_OK && got == (int64_t)i + 100,
            "pp_starmap said PP_OK with a wrong item", ist);
    }
  pp_result_free(r);
}

/* Big enough to travel through a lane (shared memory), both ways. */
#define PAYLOAD (512 * 1024)

static void echo_payload(pp_pool *pool, unsigned char *buf) {
  pp_bytes arg = {buf, PAYLOAD};
  pp_value v = {0};
  pp_status st = pp_apply(pool, "echo", &arg, 1, &v);
  note("pp_apply(echo)", st, v.error);
  if (st == PP_OK)
    check(v.len == PAYLOAD && memcmp(v.data, buf, PAYLOAD) == 0,
          "pp_apply(echo) said PP_OK with wrong bytes", st);
  pp_value_clear(&v);
}

/* One round: everything the workload does, armed or not. */
static void round_trip(pp_context ctx, unsigned char *payload) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.context = ctx;
  /* Workers are replaced along the way: starts under failures too. */
  o.maxtasksperchild = 6;
  pp_pool *pool = NULL;
  pp_status st = pp_pool_create(&pool, &o);
  if (st != PP_OK) {
    const char *why = pp_pool_create_error();
    note("pp_pool_create", st, why);
    check(pool == NULL, "a failed pp_pool_create left a pool", st);
    check_error(st, "pp_pool_create failed without a status");
    check(why != NULL, "a failed pp_pool_create without a reason", st);
    /* Out of descriptors or processes: the reason names the call. */
    if (st == PP_ESYSTEM)
      check(why && strstr(why, ": "), "pp_pool_create: no call named", st);
    return;
  }
  apply_square(pool, 7);
  apply_async_square(pool, 9);
  map_squares(pool);
  imap_squares(pool, 1);
  imap_squares(pool, 0);
  imap_batches_dropped(pool);
  imap_blobs(pool);
  apply_async_callbacks(pool);
  starmap_adds(pool);
  echo_payload(pool, payload);
  st = pp_pool_close(pool);
  check(st == PP_OK, "pp_pool_close", st);
  st = pp_pool_join(pool);
  check(st == PP_OK, "pp_pool_join", st);
  pp_pool_destroy(pool);
}

/* ---- the sweep ---- */

static unsigned hang_seconds = 60;

static void on_alarm(int sig) {
  (void)sig;
  char msg[96];
  int n =
      snprintf(msg, sizeof msg, "pp_faults: round %ld took over %u s: a hang\n",
               current_round, hang_seconds);
  if (n > 0)
    (void)!write(2, msg, (size_t)n);
  _exit(2);
}

int main(int argc, char **argv) {
  if (tasks_register() != PP_OK) {
    fprintf(stderr, "pp_faults: cannot register the tasks\n");
    return 1;
  }
  verbose = getenv("PP_FAULTS_VERBOSE") != NULL;
  if (!resolve_system_calls()) {
    fprintf(stderr, "pp_faults: cannot find the C library's own calls\n");
    return 1;
  }
  pthread_atfork(NULL, NULL, forked_child);
  arm_from_environment();
  int wm = pp_worker_main(argc, argv); /* a worker does not return */
  if (wm != 0)
    return wm;
  /* Starts that keep failing break a pool after 5 s; a round whose every
   * start fails would wait that long, and 60 such rounds make minutes.
   * What the sweep checks (no crash, no hang, no result lost, the reason
   * told) does not depend on how long the pool keeps trying: here it gives
   * up at the second failure in a row, one retry after the first. */
  pp__test.start_give_up_ms = 1;

  const char *ctx_name = getenv("PROCPOOL_START_METHOD");
  long step = 1, burst = 1, worker_allocs = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--ctx") == 0 && i + 1 < argc)
      ctx_name = argv[++i];
    else if (strcmp(argv[i], "--step") == 0 && i + 1 < argc)
      step = strtol(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--burst") == 0 && i + 1 < argc)
      burst = strtol(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--fail") == 0 && i + 1 < argc &&
             (strcmp(argv[i + 1], "alloc") == 0 ||
              strcmp(argv[i + 1], "system") == 0))
      fail_kind = strcmp(argv[++i], "alloc") == 0 ? FAIL_ALLOC : FAIL_SYSTEM;
    else if (strcmp(argv[i], "--in-workers") == 0 && i + 1 < argc)
      worker_allocs = strtol(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--hang") == 0 && i + 1 < argc)
      hang_seconds = (unsigned)strtoul(argv[++i], NULL, 10);
    else {
      fprintf(stderr,
              "usage: %s [--ctx NAME] [--fail alloc|system] [--step S] "
              "[--burst B] [--in-workers N] [--hang S]\n",
              argv[0]);
      return 1;
    }
  }
  pp_context ctx = PP_CONTEXT_DEFAULT;
  if (ctx_name && *ctx_name && pp_context_from_name(ctx_name, &ctx) != PP_OK) {
    fprintf(stderr, "pp_faults: unknown context %s\n", ctx_name);
    return 1;
  }
  if (step < 1 || burst < 1 || worker_allocs < 0 || hang_seconds == 0) {
    fprintf(stderr,
            "pp_faults: --step, --burst and --hang take a positive number\n");
    return 1;
  }
  signal(SIGALRM, on_alarm);
  owner_pid = getpid();
  unsigned char *payload = malloc(PAYLOAD);
  if (!payload)
    return 1;
  for (size_t i = 0; i < PAYLOAD; i++)
    payload[i] = (unsigned char)(i * 131u);

  /* Unarmed, counted: the sweep's length (with room, as threads make a
   * few more or fewer allocations from one run to the next). */
  alarm(hang_seconds);
  round_trip(ctx, payload); /* the first pool of a process does more */
  atomic_store(&counting, 1);
  round_trip(ctx, payload);
  atomic_store(&counting, 0);
  alarm(0);
  long total = atomic_load(&counted);
  if (failures || total == 0) {
    fprintf(stderr, "pp_faults: the unarmed run failed (%ld allocations)\n",
            total);
    return 1;
  }
  long last = total + total / 10;
  if (worker_allocs) {
    in_workers = 1;
    last = worker_allocs;
  }
  single_failures = burst == 1 && !in_workers;
  long rounds = 0, tripped_rounds = 0;
  for (long n = 1; n <= last; n += step) {
    current_round = n;
    alarm(hang_seconds);
    char spec[64];
    snprintf(spec, sizeof spec, "%ld,%ld,%d", n, burst, fail_kind);
    if (in_workers)
      setenv(WORKERS_VAR, spec, 1);
    arm(n, burst);
    round_trip(ctx, payload);
    disarm();
    unsetenv(WORKERS_VAR);
    alarm(0);
    rounds++;
    tripped_rounds += atomic_load(&tripped);
  }
  in_workers = 0;
  single_failures = 0;

  /* After all that, a pool works as if nothing happened. */
  current_round = 0;
  alarm(hang_seconds);
  round_trip(ctx, payload);
  alarm(0);
  free(payload);
  const char *what = fail_kind == FAIL_ALLOC ? "allocations" : "system calls";
  if (worker_allocs)
    printf("pp_faults: %s: workers' %s failing from each of the first %ld, %ld "
           "in a row; %d failed checks\n",
           pp_context_name(ctx), what, worker_allocs, burst, failures);
  else
    printf("pp_faults: %s: %ld %s in a round; %ld rounds failing %ld in a row, "
           "%ld with a failure; %d failed checks\n",
           pp_context_name(ctx), total, what, rounds, burst, tripped_rounds,
           failures);
  return failures ? 1 : 0;
}
