/* Helpers shared by the procpool CUnit suites. */
#ifndef PP_TEST_UTIL_H
#define PP_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "procpool.h"

#if !defined(_MSC_VER)
#include <stdatomic.h>
#endif

/** Generous bound for waits that should finish quickly (seconds). */
#define TU_WAIT 10.0

/* 1 in a build whose allocator keeps what is freed (AddressSanitizer's
 * quarantine, ThreadSanitizer's own allocator): resident memory then says
 * nothing about what the library gave back. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TU_ALLOCATOR_KEEPS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TU_ALLOCATOR_KEEPS 1
#endif
#endif
#ifndef TU_ALLOCATOR_KEEPS
#define TU_ALLOCATOR_KEEPS 0
#endif

/* 1 when freed memory is not given back to the system in this process:
 * TU_ALLOCATOR_KEEPS, or Valgrind's allocator (it keeps freed blocks to
 * catch late uses). */
int tu_allocator_keeps(void);

/* 1 under ThreadSanitizer, which stops a child that starts threads after
 * a fork of a threaded process. */
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif
#ifndef TU_TSAN
#define TU_TSAN 0
#endif

/** Monotonic clock in seconds. */
double tu_now(void);

/** Sleeps @p ms milliseconds (nanosleep on POSIX). */
void tu_sleep_ms(long ms);

/** The calling process's id. */
long tu_self_pid(void);

/** 1 when no process @p pid exists (POSIX: kill(pid, 0) fails with ESRCH;
    Windows: OpenProcess finds none, or one that has ended). */
int tu_pid_gone(long pid);

/** The parent of process @p pid as /proc says (Linux), or -1 (elsewhere,
    or no such process). */
long tu_parent_of(long pid);

#ifndef _WIN32
/** Forks a process that will own a pool and report its workers' pids
    with tu_owner_report(): returns 0 in it, with @p report the write end
    of a pipe; in the caller, its pid, with @p report the read end. -1
    when the pipe or the fork failed. */
long tu_fork_owner(int *report);

/** In the owner: writes the @p n pids to @p report, then waits to be
    killed. Never returns. */
void tu_owner_report(int report, const long *pids, size_t n);

/** Reads the @p n worker pids the owner reported on @p report (into
    @p pids, 0 where none came), SIGKILLs and reaps @p owner, and waits up
    to 5 s for those workers to be gone, as they must be once their owner
    is. Returns how many were reported and are gone; SIGKILLs the others,
    so that no survivor holds the test's output open. */
size_t tu_kill_owner(long owner, int report, long *pids, size_t n);

/** What this process (and the children it starts) writes on stderr, kept
    in a temporary file from tu_stderr_begin() to tu_stderr_end(). */
typedef struct tu_stderr {
  FILE *file;
  int saved; /* the real stderr */
} tu_stderr;

/** Sends descriptor 2 to a temporary file: 0, or -1 when it could not. */
int tu_stderr_begin(tu_stderr *c);

/** Puts stderr back and returns all that was written meanwhile
    (malloc'd, NUL-ended; NULL when out of memory). */
char *tu_stderr_end(tu_stderr *c);
#endif

/** A counter shared between a callback (scheduler thread) and the test. */
typedef struct tu_counter {
#if defined(_MSC_VER)
  volatile long v;
#else
  atomic_long v;
#endif
} tu_counter;

void tu_counter_init(tu_counter *c);
long tu_counter_inc(tu_counter *c);
long tu_counter_get(tu_counter *c);
/** Polls until @p c reaches at least @p target or @p timeout seconds pass;
    returns the last value read. */
long tu_counter_wait(tu_counter *c, long target, double timeout);

/** Starts the watchdog (tests/watchdog.c) when PP_TEST_WATCHDOG_S says
    how long a run may take: past it, what every process of the run is
    doing is printed and the run exits. */
void tu_watchdog_start(void);

/** A thread running pp_pool_join(), so that a test can bound the wait. */
typedef struct tu_joiner tu_joiner;

/** Starts a thread calling pp_pool_join(@p pool); NULL on failure. */
tu_joiner *tu_joiner_start(pp_pool *pool);

/** Waits up to @p timeout seconds for the join to return; 1 if it did. */
int tu_joiner_wait(tu_joiner *j, double timeout);

/** The status pp_pool_join() returned (after tu_joiner_wait() gave 1). */
pp_status tu_joiner_status(tu_joiner *j);

/** Joins the thread (blocks until pp_pool_join() returns) and frees it. */
void tu_joiner_free(tu_joiner *j);

/** A thread running a test's function. */
typedef struct tu_thread tu_thread;

/** Starts a thread calling @p fn(@p arg); NULL on failure. */
tu_thread *tu_thread_start(void (*fn)(void *), void *arg);

/** Waits for the thread's function to return and frees the thread. */
void tu_thread_join(tu_thread *t);

/** A pp_bytes viewing one int64_t. */
pp_bytes tu_i64(const int64_t *value);

/** Fills vals[i] = first + i and items[i] viewing vals[i], for i < n. */
void tu_i64_items(int64_t *vals, pp_bytes *items, size_t n, int64_t first);

/** Generator for imap: yields the int64 values [next, end). */
typedef struct tu_range {
  int64_t next;
  int64_t end;
  int64_t current; /* storage of the item handed out last */
  size_t pulled;   /* how many items were handed out */
} tu_range;

void tu_range_init(tu_range *range, int64_t first, int64_t end);
pp_status tu_range_next(void *state, pp_bytes *item);

/** Creates a pool with default options and @p processes workers; NULL on
    failure (the status is printed). */
pp_pool *tu_pool(int processes);

/** Creates a pool from @p options; NULL on failure. */
pp_pool *tu_pool_opts(const pp_options *options);

/** Creates a pool of one worker whose max_memory_per_child is a fresh
    worker's resident size plus @p headroom_mib MiB (the tasks' "hog" passes
    it); NULL on failure. */
pp_pool *tu_pool_memory_limited(size_t headroom_mib);

/** 1 when @p haystack is non-NULL and contains @p needle. */
int tu_contains(const char *haystack, const char *needle);

/** pp_apply() of @p task (one that answers its argument) on @p len bytes
    at @p buf: PP_OK when the value came back the same, the call's status
    when it failed, PP_EPROTOCOL when it came back different. */
pp_status tu_apply_echo(pp_pool *pool, const char *task, const void *buf,
                        size_t len);

/** 1 when the bytes @p b contain the string @p needle. */
int tu_bytes_contain(pp_bytes b, const char *needle);

/**
 * Runs @p task on one int64 argument through pp_apply_async() and
 * pp_result_get() with a TU_WAIT timeout; stores the int64 result in @p out.
 * @return the get status, or the pp_result_i64 status.
 */
pp_status tu_apply_i64(pp_pool *pool, const char *task, int64_t arg,
                       int64_t *out);

/** One CUnit test. */
typedef struct tu_test {
  const char *name;
  void (*fn)(void);
} tu_test;

/** Adds suite @p name with @p n tests; 0 on success. */
int tu_add_suite(const char *name, const tu_test *tests, size_t n);

#define TU_NTESTS(array) (sizeof(array) / sizeof((array)[0]))

/* How many of a map's `n` values of the "blob" task, for seeds first..,
 * each `len` bytes, are wrong or missing. */
size_t tu_wrong_blobs(pp_result *r, size_t n, int64_t first, size_t len);
/* The same of what an imap of "blob" over seeds first.. hands out until
 * its end (n values expected). */
size_t tu_wrong_imap_blobs(pp_iter *it, size_t n, int64_t first);
/* How many of an "echo" map's values differ from its `n` items. */
size_t tu_wrong_echoes(const pp_result *r, const pp_bytes *items, size_t n);

#endif /* PP_TEST_UTIL_H */
