/* The one interface between the portable core (src/common) and an operating
 * system backend (src/posix, src/win32). Each backend implements every
 * function here, with these names, but pp__backend_wait(), which the core
 * builds on pp__backend_events() and pp__backend_poll() (event_queue.c);
 * the core calls nothing else of the OS.
 *
 * Model: the core's scheduler thread owns a pp__backend. Workers live in
 * numbered slots (0 .. max_slots-1, chosen by the core). Starting a worker is
 * asynchronous: pp__backend_start() asks, an event reports. Each slot has a
 * duplex byte channel; the backend does the I/O and hands the core received
 * bytes in the slot's input buffer, and queues what the core sends. Events
 * come from pp__backend_wait(), the only place the scheduler thread blocks.
 */
#ifndef PP_BACKEND_H
#define PP_BACKEND_H

#include "buf.h"
#include "procpool.h"
#include <apr_thread_proc.h>

typedef struct pp__backend pp__backend;

/* The worker side of a channel, inside a worker process. */
typedef struct pp__wchan pp__wchan;

/* The worker loop, implemented by the core (worker.c): the backend calls it
 * in a new worker process once its channel is connected, with the pool's
 * key (see pp__backend_config); its return value is the process's exit
 * code. */
typedef int (*pp__worker_main_fn)(pp__wchan *chan, const char *key);

/* The exit code of a process started as one of the pool's (a spawned
 * worker, the forkserver) that could not reach the pool that started it:
 * no usable channel (POSIX: the descriptor its option names; Windows: the
 * named pipe, gone when the pool gave the worker up). Here rather than
 * with the core's worker exit codes (internal.h), which the backends do
 * not see: the backends exit with it, the core describes it. */
#define PP__EXIT_BAD_LAUNCH 120

/* The exit code of the process that starts a pool's workers (POSIX: the
 * launcher, the forkserver) when it could not set itself up (no
 * descriptor for its pipe, no memory): it wrote the failed call and the
 * system's reason on its standard error first. Next to
 * PP__EXIT_BAD_LAUNCH for the same reason: the backends exit with it, the
 * core describes it. */
#define PP__EXIT_LAUNCHER_SETUP 119

/* The name of the environment variable that carries the key to a spawned
 * worker: never the command line, which other users can read. */
#define PP__KEY_ENV "PROCPOOL_WORKER_KEY"

typedef struct pp__backend_config {
  pp_context context; /* resolved: never PP_CONTEXT_DEFAULT */
  unsigned max_slots; /* slot numbers are < max_slots */
  pp__worker_main_fn worker_main;
  /* The pool's secret, as hex (NUL-terminated), that a worker proves it
   * knows before it gets any work. A forked worker is passed it by
   * worker_main's argument; a spawned one finds it in PP__KEY_ENV. */
  const char *key;
  /* 1: the creating thread asks for the pool's first workers itself, then
   * calls pp__backend_ready(), before the pool has a thread of its own.
   * Those starts may then be made from that thread (the POSIX fork context
   * forks them there, sparing them the trip through its launcher). 0:
   * every start takes the usual path and pp__backend_ready() does
   * nothing. */
  int early_start;
  /* Test hook: lanes' segments are made as where the system has no
   * anonymous kind (POSIX: a name removed at once); 0 in programs. */
  int named_segments;
} pp__backend_config;

/* How a worker process ended. */
typedef struct pp__exit {
  int signaled; /* 1: killed by signal `code` (POSIX); 0: exited */
  long code;    /* exit code, signal number, or Windows exception code */
  /* 1: it was lost with the process that started it, which died (POSIX:
   * a launcher's worker), and `code` says what that did to it. */
  int with_launcher;
  /* 1: it ended, but how was collected by another wait in this process
   * (the program's waitpid(-1) or SIGCHLD handler); `code` means nothing. */
  int unknown;
} pp__exit;

typedef enum pp__event_type {
  PP__EV_WAKE,         /* pp__backend_wake() was called */
  PP__EV_STARTED,      /* slot's worker runs: `pid` set, channel open */
  PP__EV_START_FAILED, /* slot's worker could not start: `status` */
  PP__EV_INPUT,        /* bytes were appended to pp__backend_input(slot) */
  PP__EV_CLOSED,       /* slot's channel hit EOF or an error; the process may
                          still run: its PP__EV_EXITED follows (kill it if
                          need be) */
  PP__EV_EXITED,       /* slot's process ended and was reaped: `exit` set */
  PP__EV_BROKEN        /* the backend can start no more workers: `status` */
} pp__event_type;

typedef struct pp__event {
  pp__event_type type;
  unsigned slot;
  long pid;
  pp__exit exit;
  pp_status status;
} pp__event;

/* Called on the thread that creates the pool, before the scheduler thread
 * exists (the POSIX fork context forks its launcher here). A failure to
 * start what the backend needs leaves its reason (the call and the
 * system's words) in pp__thread_message(). */
pp_status pp__backend_create(pp__backend **out, const pp__backend_config *cfg);

/* Why the last start failed, in words (the call and the system's reason),
 * or "" when that is not known. */
const char *pp__backend_start_error(const pp__backend *b);

/* Asks for a worker in a free slot. PP__EV_STARTED or PP__EV_START_FAILED
 * follows from pp__backend_wait(). Called on the creating thread before
 * pp__backend_ready() (see early_start), on the scheduler thread after. */
pp_status pp__backend_start(pp__backend *b, unsigned slot);

/* With early_start: the first workers were asked for and the pool's
 * scheduler thread is about to be created, on the thread that created the
 * backend. What must happen while this process may still have no thread
 * of the pool's happens here (POSIX fork context: forking the launcher,
 * after the first workers). An error fails the pool's creation. */
pp_status pp__backend_ready(pp__backend *b);

/* The core will start no more workers in this pool (it was closed with no
 * work left, or terminated). Workers still running are reported as before;
 * a backend may release what it kept for starting workers (the POSIX
 * launcher leaves once its last worker is reaped, while the pool is still
 * shutting down, rather than in pp__backend_destroy()). The core calls
 * pp__backend_start() no more afterwards. */
void pp__backend_shutdown(pp__backend *b);

/* Queues `len` bytes (copied) for the slot's worker and writes what it can
 * without blocking; the rest goes out from pp__backend_wait(). After the
 * channel closed it returns PP_EOF and drops the bytes. */
pp_status pp__backend_send(pp__backend *b, unsigned slot, const void *data,
                           size_t len);

/* Bytes queued for the slot and not yet written. */
size_t pp__backend_pending(const pp__backend *b, unsigned slot);

/* The slot's input buffer: the core parses frames from its head and consumes
 * them. Valid from PP__EV_STARTED until pp__backend_release(). */
pp__buf *pp__backend_input(pp__backend *b, unsigned slot);

/* Closes the parent's end of the slot's channel (the worker sees EOF and
 * exits). PP__EV_EXITED follows. */
pp_status pp__backend_hangup(pp__backend *b, unsigned slot);

/* Stops the slot's worker at once (SIGKILL / TerminateProcess); a worker
 * already reaped is left alone. PP__EV_EXITED follows. */
pp_status pp__backend_kill(pp__backend *b, unsigned slot);

/* Asks the slot's worker to stop (SIGTERM: a task may clean up), where the
 * platform has such a request; elsewhere it is pp__backend_kill(). The
 * caller follows with pp__backend_kill() after a grace period. */
pp_status pp__backend_stop(pp__backend *b, unsigned slot);

/* Frees the slot after its PP__EV_EXITED; the slot may then be reused. */
void pp__backend_release(pp__backend *b, unsigned slot);

/* Waits up to `timeout_ms` (negative: forever) for events, writes up to
 * `capacity` of them and their number to `*count`; also flushes queued
 * output. Scheduler thread only. The core's (event_queue.c): it hands out
 * the events already queued, and calls pp__backend_poll() only when there
 * are none, so that a backend reporting many at once is asked for more
 * only once they are taken. */
pp_status pp__backend_wait(pp__backend *b, long timeout_ms, pp__event *events,
                           size_t capacity, size_t *count);

/* The backend's queue of events (event_queue.h), oldest first: the backend
 * pushes each event there as it happens, having reserved room for it, and
 * pp__backend_wait() takes them from the head. */
pp__buf *pp__backend_events(pp__backend *b);

/* Called by pp__backend_wait() when no event is queued: writes what it can
 * of the queued output and waits up to `timeout_ms` (negative: forever; 0:
 * only looks) for something to happen, queueing the events it finds.
 * Returns PP_OK once any are queued or the time is up; an error
 * (PP_ENOMEM, PP_ESYSTEM) when it cannot go on, and then what it queued
 * stays queued for the next call. Scheduler thread only. */
pp_status pp__backend_poll(pp__backend *b, long timeout_ms);

/* Makes a pp__backend_wait() return PP__EV_WAKE soon. Any thread; cheap
 * when a wake-up is already pending. */
void pp__backend_wake(pp__backend *b);

/* Kills every worker still running, reaps them, stops the launcher and frees
 * everything. Called after the scheduler thread has ended. */
void pp__backend_destroy(pp__backend *b);

/* Writes a phrase such as "was killed by signal 9 (Killed)" or "exited with
 * code 3" into buf (always NUL-terminated). */
void pp__exit_describe(const pp__exit *exit, char *buf, size_t cap);
/* 1 when the process was ended from outside, as the system's memory
 * killer or `kill -9` end one, by nothing it did itself (POSIX: SIGKILL,
 * which no handler sees; lost with its launcher; ended in a way another
 * wait collected), so that its death says nothing of the code it ran
 * (an initializer, say). Windows cannot tell: 0. */
int pp__exit_from_outside(const pp__exit *exit);

/* The platform's default start context (never PP_CONTEXT_DEFAULT). */
pp_context pp__backend_default_context(void);

/* Fills `buf` with `len` bytes from the OS's CSPRNG. */
pp_status pp__random_bytes(void *buf, size_t len);

/* This process's resident memory in bytes (0 if it cannot be told). */
size_t pp__current_rss(void);

/* This process's id. */
long pp__process_id(void);

/* Removes the variable `name` from every copy of the environment this
 * process keeps, so that getenv() no longer finds it and no process started
 * from here inherits it (POSIX: unsetenv(); Windows: the C runtime's narrow
 * and wide copies, which its getenv() and _spawn*e(..., _environ) read, as
 * well as the system's block, which CreateProcess passes on). */
void pp__env_remove(const char *name);

/* The number of CPUs available to this process (at least 1). */
int pp__cpu_count(void);

/* Now, in microseconds, on a clock that only moves forward at a steady
 * pace (POSIX: CLOCK_MONOTONIC; Windows: the performance counter): the
 * clock of every deadline the library keeps (waits, time limits, grace
 * periods). The wall clock (apr_time_now()) jumps when it is set or
 * corrected, which would end a wait or a time limit early or late. Not a
 * date: only differences mean anything. */
apr_time_t pp__clock_us(void);

/* A number that changes in every child fork() makes (POSIX: a
 * pthread_atfork() child handler adds one, registered by the first call;
 * Windows, which cannot fork: always 0). A pool keeps the number of the
 * process that made it: another one says the caller is a copy of that
 * process, with the pool's memory but none of its threads. */
unsigned long pp__process_generation(void);

/* Once APR is initialized (pp__runtime_init()): no other thread of this
 * process holds APR's process-wide allocator lock when it forks (POSIX:
 * pthread_atfork() handlers take the lock before the fork and give it back
 * after, in both processes; Windows, which cannot fork: nothing). A fork
 * worker is a copy of a parent whose other threads may be creating or
 * destroying APR pools, and its task may make a pool of its own, which
 * would wait for that lock for ever. */
void pp__apr_fork_guard(void);

/* Implemented by the core (spare.c), called by that child handler, in the
 * new child while it has one thread: forgets the parent's spare value
 * blocks, whose list another thread of the parent may have held locked
 * at the fork. */
void pp__spare_forget(void);

/* A buffer of PP__THREAD_MESSAGE bytes that is the calling thread's own:
 * why that thread's last pool creation failed (pp_pool_create_error()). */
#define PP__THREAD_MESSAGE 256
char *pp__thread_message(void);

/* The calling thread's own record of its failed calls (last_error.c):
 * what the call in progress found wrong, and the message of the last call
 * that failed (pp_last_error()). Zero in a new thread. */
#define PP__ERROR_TEXT 512
typedef struct pp__thread_errors {
  pp_status reason_status; /* the status `reason` was given with; 0: none */
  char reason[PP__ERROR_TEXT];
  char message[PP__ERROR_TEXT + 64]; /* "function: reason"; "" before any */
} pp__thread_errors;
pp__thread_errors *pp__errors_of_thread(void);

/* apr_thread_create() for a thread of the library's own (the scheduler,
 * the copier). POSIX: the thread blocks every signal but those a fault
 * raises, so that a signal sent to the process is handled on one of the
 * program's threads, never on ours; a program that blocks a signal to
 * wait for it (sigwait(), signalfd) then gets it, whenever it made its
 * pools. */
apr_status_t pp__thread_create(apr_thread_t **thread, apr_thread_start_t main,
                               void *data, apr_pool_t *mem);

/* ---- the library's mutex and condition variable ----
 * The platform's own (pthreads; a slim reader/writer lock and a condition
 * variable on Windows), not APR's: APR's timed wait on POSIX sleeps until
 * a time of the wall clock, which a clock set back while it sleeps makes
 * longer by as much. Neither is recursive. Their memory comes from `mem`
 * (destroy them before it goes); a create returns PP_OK, PP_ENOMEM or
 * PP_ESYSTEM. */
typedef struct pp__mutex pp__mutex;
typedef struct pp__cond pp__cond;

pp_status pp__mutex_create(pp__mutex **out, apr_pool_t *mem);
void pp__mutex_destroy(pp__mutex *m); /* NULL: nothing */
void pp__mutex_lock(pp__mutex *m);
void pp__mutex_unlock(pp__mutex *m);

pp_status pp__cond_create(pp__cond **out, apr_pool_t *mem);
void pp__cond_destroy(pp__cond *c); /* NULL: nothing */
/* With `m` held: sleeps until woken (or spuriously), `m` held again. */
void pp__cond_wait(pp__cond *c, pp__mutex *m);
/* Like pp__cond_wait(), for `usec` microseconds of the steady clock at
 * most (see pp__clock_us()). */
void pp__cond_timedwait(pp__cond *c, pp__mutex *m, apr_time_t usec);
void pp__cond_signal(pp__cond *c);
void pp__cond_broadcast(pp__cond *c);

/* Gives [p, p + len) its pages, writable, in one call, before a big copy
 * into memory that may be fresh: otherwise the copy stops on a fault for
 * every page. The contents do not change. A hint: where the system has no
 * such call, or for a copy too small to gain from it, it does nothing. */
void pp__prefault(void *p, size_t len);

/* malloc(len) for a big value about to be written whole, freed with
 * free() like any other. Where the system has huge pages that a program
 * can ask for, a big one starts on a huge page boundary and asks for them:
 * a 4 MiB value then costs two faults instead of a thousand. */
void *pp__alloc_fresh(size_t len);

/* ---- a barrier on every thread ----
 * For a lock whose owning thread takes it with plain stores (iter.c): the
 * rare other thread that wants it runs pp__remote_barrier(), and may then
 * rely on seeing whatever the owner stored before its next load. */

/* Readies pp__remote_barrier() for this process, where the system has such
 * a call; cheap while the process has one thread, and pp_worker_main()
 * calls it at the top of main() for that reason. */
void pp__remote_barrier_prepare(void);
/* 1 when pp__remote_barrier() works in this process. */
int pp__remote_barrier_ready(void);
/* Makes every thread of this process run a full memory barrier before it
 * returns. Only after pp__remote_barrier_ready() said 1. */
void pp__remote_barrier(void);
/* void *pp__thread_token(void): the calling thread's token; threads alive
 * at once have different ones, never NULL. From the backend's
 * thread_token.h, where it may be inline: the owner paths ask for it for
 * every item. */
#include "thread_token.h"

/* ---- shared memory ----
 * A segment mapped by the parent and one worker: big frames travel through
 * it (lane.h) and the channel carries only where they lie. */

typedef struct pp__shm pp__shm;

/* The longest token pp__backend_shm_create() writes, NUL included. */
#define PP__SHM_TOKEN_MAX 64

/* Parent: creates and maps a segment of `size` bytes for the slot's started
 * worker, and writes into `token` what that worker gives pp__shm_open().
 * The segment has no name another process could open it by: only that
 * worker gets it (POSIX: its descriptor goes with the next bytes sent to
 * the worker; Windows: a handle is duplicated into its process), and
 * nothing of it outlives the two. */
pp_status pp__backend_shm_create(pp__backend *b, unsigned slot, size_t size,
                                 pp__shm **out, char token[PP__SHM_TOKEN_MAX]);

/* Worker: opens and maps the segment a token names, which came on `chan`;
 * it must be `size` bytes. */
pp_status pp__shm_open(pp__wchan *chan, const char *token, size_t size,
                       pp__shm **out);

/* The mapping's first byte (page-aligned). */
unsigned char *pp__shm_base(const pp__shm *shm);

/* Makes sure `len` bytes at `offset` have memory behind them before either
 * side writes there: where shared memory is a file system of limited size
 * (a container's small /dev/shm), touching a page it has no room for would
 * kill the process with SIGBUS, while this fails and the caller uses the
 * channel instead. PP_OK where memory is committed up front (Windows). */
pp_status pp__shm_back(pp__shm *shm, size_t offset, size_t len);

/* Unmaps the segment (forgetting its name); NULL is ignored. */
void pp__shm_free(pp__shm *shm);

/* ---- the parent's memory, from a worker ----
 * A records chunk need not travel at all: a worker may read its records
 * straight from the caller's array in the parent and write the results
 * straight into the caller's output (scheduler.c, "records in place").
 * The parent then copies nothing. Where the system forbids it (no such
 * call, or a policy that keeps a process out of its parent's memory, such
 * as Linux's Yama ptrace_scope 1 and above) the chunks go through the
 * lanes as before. */

typedef struct pp__parent_mem pp__parent_mem;

/* Worker: readies access to the memory of process `pid` (the pool's
 * parent). PP_ENOTSUP where this system has no way to it. Whether access
 * is allowed shows only at the first read. */
pp_status pp__parent_mem_open(long pid, pp__parent_mem **out);

/* Copies `len` bytes between `local`, in this process, and address `addr`
 * of the parent: into the parent with `to_parent`, out of it without. All
 * or nothing is reported: PP_OK, or PP_ESYSTEM (not allowed, or a bad
 * address) with the reason for pp__parent_mem_error(); a copy that stopped
 * part-way leaves what it moved. */
pp_status pp__parent_mem_copy(pp__parent_mem *mem, void *local, uint64_t addr,
                              size_t len, int to_parent);

static inline pp_status pp__parent_mem_read(pp__parent_mem *mem, void *dst,
                                            uint64_t addr, size_t len) {
  return pp__parent_mem_copy(mem, dst, addr, len, 0);
}

/* The parent's memory is written from `src`, which is only read. */
static inline pp_status pp__parent_mem_write(pp__parent_mem *mem, uint64_t addr,
                                             const void *src, size_t len) {
  return pp__parent_mem_copy(mem, (void *)(uintptr_t)src, addr, len, 1);
}

/* The system's words for the last failure of a read or write. */
void pp__parent_mem_error(const pp__parent_mem *mem, char *buf, size_t cap);

/* NULL is ignored. */
void pp__parent_mem_close(pp__parent_mem *mem);

/* ---- worker side ---- */

/* Reads what is available into `into` (at least one byte, blocking until
 * then). PP_EOF when the parent closed the channel. */
pp_status pp__wchan_read(pp__wchan *chan, pp__buf *into);

/* pp__wchan_read() for a caller that expects nothing there yet (a worker
 * going to sleep on its rings until a doorbell): it waits first, sparing
 * the read that would find nothing. */
pp_status pp__wchan_read_idle(pp__wchan *chan, pp__buf *into);

/* Writes all `len` bytes (blocking). PP_EOF when the parent is gone. */
pp_status pp__wchan_write(pp__wchan *chan, const void *data, size_t len);

/* Called by the worker loop once, before it first runs the user's code (an
 * initializer or a task). A fork worker that hosts the launcher (POSIX)
 * makes it now, while it is still a copy of the parent as it was at pool
 * creation, and lets go of what it held for it. */
void pp__wchan_before_user_code(pp__wchan *chan);

/* This process's command line as main() got it, for pp_worker_main(0,
 * NULL): 1 with *argc and *argv set (kept for the life of the process), 0
 * where the system cannot tell it. */
int pp__backend_command_line(int *argc, char ***argv);

/* In a process started by the backend's spawn context: connects the
 * worker's channel from the command line and returns 1, or returns 0 when
 * this process is not a worker. Used by pp_worker_main(). */
int pp__backend_worker_attach(int argc, char **argv, pp__wchan **out);

/* In a process the backend launched as a helper service (the forkserver):
 * runs it, sets *exit_code and returns 1; otherwise returns 0 at once.
 * Called by pp_worker_main() before pp__backend_worker_attach(). */
int pp__backend_run_service(int argc, char **argv, pp__worker_main_fn main,
                            int *exit_code);

#endif
