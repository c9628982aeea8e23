/* Declarations shared by the files of the portable core. */
#ifndef PP_INTERNAL_H
#define PP_INTERNAL_H

#include "atomic.h"
#include "backend.h"
#include "buf.h"
#include "copier.h"
#include "lane.h"
#include "owner.h"
#include "procpool.h"
#include "ring.h"
#include "sha256.h"
#include "wire.h"

#include <apr_atomic.h>
#include <apr_pools.h>
#include <apr_portable.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include <stdarg.h>
#include <stdint.h>

/* Keeps a function out of its callers: for a rare path that, inlined,
 * would make a hot caller save registers on every call. Only a hint; where
 * the compiler has no such attribute it is nothing. */
#if defined(_MSC_VER)
#define PP__NOINLINE __declspec(noinline)
#elif (defined(__GNUC__) || defined(__clang__)) &&                             \
    !defined(PP_NO_COMPILER_EXTENSIONS)
#define PP__NOINLINE __attribute__((noinline))
#else
#define PP__NOINLINE
#endif

/* Worker exit codes that carry intent (DESIGN.md decision 11); 119 and
 * 120, PP__EXIT_LAUNCHER_SETUP and PP__EXIT_BAD_LAUNCH, are the backends'
 * (backend.h). */
#define PP__EXIT_PROTOCOL 121    /* the parent sent a malformed frame */
#define PP__EXIT_INIT_FAILED 122 /* the initializer failed */
#define PP__EXIT_NOMEM 123       /* the worker ran out of memory */
#define PP__EXIT_RECYCLE 124     /* past max_memory_per_child: replace me */
#define PP__EXIT_VERSION 125     /* the parent speaks another wire version */
#define PP__EXIT_CHANNEL 126     /* its channel failed under it (closed?) */

/* Bytes of the per-pool secret. */
#define PP__KEY_BYTES 32

/* Default limit on one frame from a worker. */
#define PP__DEFAULT_MAX_MESSAGE ((size_t)1 << 30)
/* The smallest limit a pool accepts: below it even a worker's small
 * answers (its READY, an error's message) would not fit. */
#define PP__MIN_MAX_MESSAGE 4096

/* ---- why a call failed (last_error.c) ---- */

/* Notes what the call in progress found wrong, for pp_last_error(): say
 * it where the status `st` is decided, only when `st` goes back to the
 * caller as it is. Returns `st`. */
pp_status pp__fail(pp_status st, const char *format, ...)
    PP_PRINTF_FORMAT(2, 3);
pp_status pp__vfail(pp_status st, const char *format, va_list ap);
/* The same with `len` bytes of text as they are (a task's message); NULL
 * gives no reason. */
pp_status pp__fail_text(pp_status st, const char *text, size_t len);
/* Every public function returns its status through pp__api(__func__, st):
 * a failure becomes the thread's message. Success costs one comparison. */
pp_status pp__api_failed(const char *function, pp_status st);
static inline pp_status pp__api(const char *function, pp_status st) {
  return st == PP_OK ? st : pp__api_failed(function, st);
}

/* ---- process-wide ---- */
pp_status pp__runtime_init(void); /* APR, once */
pp_task_fn pp__registry_find(const char *name);
pp_records_task_fn pp__registry_find_records(const char *name);
int pp__worker_run(pp__wchan *chan, const char *key);
pp_status pp__context_resolve(pp_context requested, pp_context *out);
/* 1 once pp_worker_main() ran in this process and returned (so this is not
 * a worker): a spawned worker of this program will stop in it too. */
int pp__worker_hook_ran(void);
/* The handshake (handshake.c): the proof of a key for a nonce, and its
 * check in constant time (1: right). */
void pp__handshake_proof(const char *key,
                         const unsigned char nonce[PP__NONCE_SIZE],
                         unsigned char proof[PP__SHA256_SIZE]);
int pp__handshake_check(const char *key,
                        const unsigned char nonce[PP__NONCE_SIZE],
                        const unsigned char *proof, size_t len);
char *pp__strdup(const char *s);
/* Fails a value: its status, and its message a copy of the `len` bytes at
 * `message` (NULL: none). Where no copy can be made (or there is no
 * message), the message is the status's own words, pp_strerror()'s, which
 * pp_value_clear() knows not to free: a failed value always says why. */
void pp__value_fail(pp_value *v, pp_status st, const char *message, size_t len);
/* 1 when `text` is one of pp_strerror()'s own strings. */
int pp__is_status_text(const char *text);
char *pp__format(const char *format, ...) PP_PRINTF_FORMAT(1, 2);
char *pp__vformat(const char *format, va_list ap);

/* ---- the worker side of one call (call.c) ---- */

/* The failed records of a records task's chunk (records_task.c). */
typedef struct pp__records_failures {
  pp__buf *list; /* per failure: index u32, status u8, message str32 */
  size_t count;  /* records in the chunk */
  size_t nfailed;
  unsigned char *failed; /* a bit per record; NULL until the first failure */
  const char *task;
  pp_status status; /* PP_ENOMEM once a failure could not be listed */
} pp__records_failures;

struct pp_call {
  /* argv, argc, the result's record and whether a result was set: first,
   * where procpool.h's inline accessors read and write them. */
  pp_priv_call_head head;
  pp__buf value; /* the result, for calls without a sink */
  /* Where a call's value is written instead: the answer being built, from
   * its byte sink_at on, so that the value is copied once. */
  pp__buf *sink;
  size_t sink_at;
  struct pp__wlink *link; /* the worker's link (for pp__call_send_raw) */
  int failed;             /* pp_call_fail() was called */
  /* A value of the wrong size for its record: its length + 1 (0: none), to
   * say so when the task passes the refusal on. */
  size_t refused_len;
  char *message;
  /* A records task's chunk (NULL outside one): pp_records_fail() lists
   * its failures there, as a RECORDS_DONE answer lists them. */
  pp__records_failures *records;
};
/* Runs `fn` (NULL: unknown task `name`) on the call and returns its status;
 * on failure call->message holds a message. */
pp_status pp__call_run(pp_call *call, const char *name, pp_task_fn fn);
/* What a task that returned `st` on the call amounts to (pp__call_run()'s
 * second half, for loops that call the task themselves). */
pp_status pp__call_outcome(pp_call *call, const char *name, pp_status st);
void pp__call_reset(pp_call *call);
void pp__call_free(pp_call *call);
/* Writes raw bytes onto the worker's link, bypassing the protocol: lets
 * the tests act as a misbehaving worker. */
pp_status pp__call_send_raw(pp_call *call, const void *data, size_t len);
/* Runs records task `fn` (named `name`) over one chunk: its results in
 * chunk->out, its failed records listed in `errs` (cleared first) as a
 * RECORDS_DONE answer lists them, their count in `*nerr`. A failed record's
 * result is zeroed. Arrays not at PP_RECORDS_ALIGN are copied through
 * `scratch` for the task. PP_OK, or PP_ENOMEM. */
pp_status pp__records_task_run(pp_call *call, pp__buf *errs, pp__buf *scratch,
                               pp_records_task_fn fn, const char *name,
                               const pp_records_chunk *chunk, size_t *nerr);

/* ---- parent side ---- */

/* A thread waiting, under the pool's lock, for one thing the scheduler
 * changes: a result, an iterator, or the pool's end. It is linked on that
 * thing's list of waiters while it sleeps on its own condition variable,
 * so that the scheduler wakes only the threads waiting for what it
 * completed: one condition for all woke every waiting thread for every
 * completion (512 threads each in pp_apply(): hundreds of µs of the
 * parent's CPU per call). Records are kept by the pool's shared state and
 * reused, never freed before it, so a wait allocates nothing once a
 * record per waiting thread exists, and a condition signalled late (after
 * its waiter left) only wakes some later waiter for nothing. */
typedef struct pp__waiter {
  struct pp__waiter *next;  /* on a list of waiters, or of spares */
  struct pp__waiter **link; /* what points at it there; NULL: on none */
  struct pp__waiter *all;   /* every record of the shared state */
  pp__cond *cond;
} pp__waiter;

/* Conditions the scheduler thread signals once it has let go of the lock,
 * so that a waiter does not wake only to sleep again on the lock that
 * thread holds. Scheduler thread only. */
typedef struct pp__wakes {
  pp__cond **conds;
  size_t n, cap;
} pp__wakes;

/* The lock shared by a pool and everything it hands out, kept alive by
 * references so results and iterators outlive the pool. */
typedef struct pp__shared {
  apr_pool_t *mem;
  pp__mutex *lock;
  pp__waiter *spare_waiters; /* under lock */
  pp__waiter *all_waiters;   /* under lock */
  unsigned refs;             /* under lock */
  /* The scheduler thread's pp__thread_token() while it runs, else NULL:
   * the results and iterators it completes must not be waited for there.
   * Set and cleared by that thread, so no other thread alive meanwhile
   * has the same token; read without the lock. */
  pp__atomic_ptr scheduler_token;
  /* pp__process_generation() of the process that made the pool: set
   * before the pool is shared, read without the lock. */
  unsigned long generation;
} pp__shared;

pp_status pp__shared_create(pp__shared **out);
/* With the lock held: drops a reference and unlocks, freeing everything when
 * it was the last. */
void pp__shared_unref_unlock(pp__shared *s);
/* With the lock held: waits on `*waiters` (a result's, an iterator's or
 * the pool's list) until woken, maybe spuriously, or until `deadline` (0:
 * none); the caller looks again at what it waits for. PP_ETIMEOUT when the
 * deadline had passed already. */
pp_status pp__shared_wait(pp__shared *s, pp__waiter **waiters,
                          apr_time_t deadline);
/* With the lock held: takes every waiter off `*waiters` and wakes it. */
void pp__waiters_wake(pp__waiter **waiters);
/* With the lock held, on the scheduler thread: takes every waiter off
 * `*waiters`, to be woken by pp__wakes_signal() once the lock is let go
 * (at once when `wakes` cannot grow). */
void pp__waiters_defer(pp__waiter **waiters, pp__wakes *wakes);
/* Wakes the waiters deferred to `wakes`, lock or no lock. */
void pp__wakes_signal(pp__wakes *wakes);
void pp__wakes_free(pp__wakes *wakes);
/* 1 when the calling thread is the pool's scheduler thread, where a wait
 * for one of its results or iterators would never end (it is the thread
 * that would end it). Lock or no lock. */
int pp__shared_on_scheduler(const pp__shared *s);
/* 0 in a copy of the pool's owner that fork() made (a fork worker, or a
 * fork of the program's own): it has the pool's memory but none of its
 * threads, so nothing there would ever complete, and a lock another
 * thread held at the fork stays held. Calls there fail with PP_ESTATE
 * before they take a lock; frees leave the copy as it is. 1 in the
 * owner. */
int pp__shared_owned(const pp__shared *s);
apr_time_t pp__deadline(double timeout); /* 0 for a negative timeout */

typedef enum pp__job_kind {
  PP__JOB_CALLS,   /* apply, map, starmap: results per item */
  PP__JOB_RECORDS, /* records map: results into the caller's array */
  PP__JOB_IMAP     /* lazy iteration: results to an iterator */
} pp__job_kind;

typedef struct pp__job pp__job;

/* Where a chunk's memory comes from, so that one pp__chunk_free() frees
 * each kind right: small calls cost one allocation, not three. */
typedef enum pp__chunk_mem {
  PP__CHUNK_OWN = 0,      /* chunk and frame malloc'd apart (frame may be
                             NULL) */
  PP__CHUNK_FRAME_INLINE, /* the frame follows the chunk in its allocation */
  PP__CHUNK_IN_JOB        /* chunk and frame live in the job's allocation
                             (an apply), freed with the result */
} pp__chunk_mem;

/* One unit sent to one worker: a frame holding `count` calls. */
typedef struct pp__chunk {
  /* In the pool's queue (queue.c), linked both ways so that a cancel takes
   * a chunk out of the middle at once; in a worker's list, `next` alone. */
  struct pp__chunk *next, *prev;
  /* While queued, its job's next queued chunk, in queue order: a cancel
   * finds what it drops without a walk over the whole queue. */
  struct pp__chunk *job_next;
  pp__job *job;
  size_t first;         /* its first item within the job */
  unsigned char *frame; /* encoded frame; NULL for records (built at send) */
  /* Its frame's payload length, a u32 on the wire (the whole frame is
   * PP__WIRE_HEADER_SIZE longer: pp__chunk_frame_len()); 32 bits, as is
   * `number`, for the chunk's size (queue.c). */
  uint32_t payload_len;
  uint32_t number;   /* its place among its job's chunks: the low half of
                        its frames' id (pp__chunk_id()) */
  uint32_t count;    /* its items: a frame says how many in 32 bits, and
                        every chunk is cut to fit */
  uint32_t lane_end; /* in_lane: its answer releases the lane up to here */
  uint32_t ring_at;  /* in_ring: its frame's first byte in the ring */
  /* Flags and `mem` in bytes: every byte of a chunk counts (queue.c). */
  unsigned char in_place; /* records read and written by the worker in the
                             caller's arrays: done only once answered or
                             once the worker is gone */
  unsigned char in_lane;  /* sent through the worker's down lane */
  unsigned char in_ring;  /* sent through the worker's down ring */
  unsigned char mem;      /* a pp__chunk_mem */
} pp__chunk;

/* What results and iterators share: the work the scheduler tracks. */
struct pp__job {
  pp__job_kind kind;
  uint32_t id; /* the high half of its chunks' frame ids */
  /* NUL-terminated, in the job's own allocation: a name's length, not the
   * longest name's, as an apply allocates this for every task. */
  const char *task;
  size_t count;                   /* items, when known up front */
  size_t chunksize;               /* as used */
  size_t nchunks;                 /* chunks made so far */
  size_t chunks_left;             /* sent or queued, not yet answered */
  apr_interval_time_t time_limit; /* per chunk, in µs; 0: none */
  /* Flags in bytes, side by side: an apply allocates a job for every
   * call, and its size shows in apply_async's rate (queue.c). */
  unsigned char cancelled; /* pp_result_cancel() was called */
  unsigned char unwanted;  /* pp_iter_free(): its chunks still queued are
                              dropped */
  /* On the pool's `drops` while cancelled or unwanted with chunks queued
   * (queue.c), so that the scheduler drops them in one pass. */
  unsigned char dropping;
  pp__chunk *queued, *queued_tail; /* its chunks in the pool's queue, in
                                       its order (queue.c) */
  pp__job *drop_next, *drop_prev;
};

/* The id a chunk's frames carry (a worker answers with the same): its
 * job's id above its number within the job. */
static inline uint64_t pp__chunk_id(const pp__chunk *c) {
  return (uint64_t)c->job->id << 32 | c->number;
}

static inline uint64_t pp__job_chunk_id(const pp__job *job, size_t number) {
  return (uint64_t)job->id << 32 | (uint32_t)number;
}

static inline size_t pp__chunk_frame_len(const pp__chunk *c) {
  return PP__WIRE_HEADER_SIZE + (size_t)c->payload_len;
}

typedef struct pp__value_block pp__value_block;

typedef struct pp__item {
  pp_status status;
  unsigned char *data; /* NUL-terminated; value or message: malloc'd, or in
                          `owner` */
  size_t len;
  pp__value_block *owner; /* a big value's block (see spare.c), else NULL */
} pp__item;

/* Failed records of a records map: `count` records from `index` on, all
 * with the outcome `item` (a whole chunk that failed is one entry). */
typedef struct pp__record_error {
  size_t index, count;
  pp__item item;
} pp__record_error;

struct pp_result {
  pp__job job;
  pp__shared *shared;
  struct pp_pool *pool; /* valid while pending (a pool completes all its
                           results before it goes away) */
  int apply;            /* one call: pp_result_value() applies */
  unsigned refs; /* the caller's and, while pending, the pool's; under lock */
  /* Set under the lock, read without it: a caller that sees one set (an
   * acquire) sees the outcome recorded before it, and needs no lock. */
  pp__atomic_u32 done;  /* outcome final: accessors work (callbacks see
                           this) */
  pp__atomic_u32 ready; /* done and callbacks have run: waiters may return */
  pp_status status;
  unsigned sleeps; /* waits for it that slept (tests); under the lock */
  char *error;     /* first failure's message */
  pp__item *items; /* job.count items (calls) */
  pp_records rec;  /* records jobs: borrowed arrays */
  size_t *field_sizes;
  pp__record_error *rec_errors;
  size_t nrec_errors, caprec_errors;
  int rec_errors_lost; /* a failure could not be listed (no memory) */
  /* An apply is one allocation: the result, its item, its chunk and frame,
   * and room for a small value, which then needs no allocation either. */
  int one_block; /* items (and the chunk) are inside r */
  pp_callbacks cb;
  pp__waiter *waiters;         /* threads waiting for it to be ready; lock */
  struct pp_result *next_done; /* scheduler's list of completions to notify */
  /* A blocking apply, map or starmap lends its arguments until the result
   * completes, which its caller waits for: its chunks carry no frame, and
   * each is encoded when sent, straight into the worker's lane or batch. */
  const pp_args *lent_calls;
  const pp_bytes *lent_single;
  unsigned char *small_value; /* NULL, or inline room for a value */
  size_t small_cap;           /* bytes of it, the NUL included */
};

/* Values in one allocation, each NUL-terminated: the values of one imap
 * chunk (one malloc per chunk instead of one per item), or one big value
 * (whose block may be reused, see spare.c). Each pp_value handed out holds
 * a reference; the last pp_value_clear() lets the block go. */
struct pp__value_block {
  pp__atomic_u32 refs;
  size_t size; /* a big block's whole size, for spare.c; 0: malloc'd */
  /* The owner path (value.c): the thread that gives its references back
   * without an atomic operation, while no other thread gives one back. */
  pp__atomic_ptr owner;      /* its token; NULL: none (any more) */
  pp__atomic_u32 owner_busy; /* 1 while it gives references back so */
  apr_uint32_t owner_gave;   /* how many it gave back so; its own */
  /* the values' bytes follow */
};

/* Values from this size up get a block that spare.c may reuse. */
#define PP__BIG_VALUE ((size_t)1 << 20)

/* spare.c */
/* A block for `bytes` of values, with `refs` references; NULL when out of
 * memory. Big ones may be spares of about their size. */
pp__value_block *pp__value_block_new(size_t bytes, apr_uint32_t refs);
/* The last reference is gone: frees the block or keeps it spare. */
void pp__value_block_free(pp__value_block *block);
/* Drops `n` references at once. */
void pp__value_block_release_n(pp__value_block *block, apr_uint32_t n);
/* Frees the spares kept unused too long; returns ms until the next one is
 * due (-1: none kept). Any thread; the schedulers call it as they wait. */
long pp__spare_trim(void);
/* A pool's scheduler thread starts, or ends. Spares are kept only while
 * some scheduler runs, as the schedulers trim them: when the last ends,
 * they all go. */
void pp__spare_pool_add(pp_pool *pool);
void pp__spare_pool_remove(pp_pool *pool);
/* In a worker forked from its parent: forgets the parent's pools, whose
 * schedulers are not here, and frees the copies of its spares. */
void pp__spare_drop_inherited(void);
/* Bytes kept spare right now (for the tests). */
size_t pp__spare_held(void);

/* value.c */
/* The calling thread becomes the block's owner (iter.c does this for the
 * chunks its own owner takes). Before any of its values is handed out. */
void pp__value_block_own(pp__value_block *block);
/* Another thread than the owner gives a reference back: ends the owner
 * path for good, folding the owner's count into `refs`. */
void pp__value_block_drop_owner(pp__value_block *block);
/* 1 while the block has an owner (for the tests). */
int pp__value_block_owned(pp__value_block *block);

/* `n` references given back by the block's owner, as the owner path in
 * value.c says: 1 when that is the caller and it stays the owner (the
 * block is then freed if they were the last); 0 when the caller must drop
 * them from `refs` itself. */
static inline int pp__value_block_owner_gives(pp__value_block *block,
                                              apr_uint32_t n) {
  void *owner = pp__atomic_ptr_get(&block->owner);
  if (!owner)
    return 0;
  if (owner != pp__thread_token()) {
    pp__value_block_drop_owner(block);
    return 0;
  }
  if (!pp__owner_enter(&block->owner, &block->owner_busy, owner))
    return 0; /* dropped meanwhile */
  block->owner_gave += n;
  /* Others change `refs` only after one of them took the owner away, and
   * that one holds a reference until it folded our count in: the count
   * reaches `refs` only when nobody else holds one. */
  int last = block->owner_gave == pp__atomic_get(&block->refs);
  pp__owner_leave(&block->owner_busy);
  if (last)
    pp__value_block_free(block);
  return 1;
}
/* Drops a reference; the last one frees the block or keeps it spare.
 * Inline: pp_value_clear() drops one for every imap item. */
static inline void pp__value_block_release(pp__value_block *block) {
  if (!pp__value_block_owner_gives(block, 1) &&
      pp__atomic_dec_is_zero(&block->refs))
    pp__value_block_free(block);
}

/* An answered imap chunk waiting to be handed out, or the one being
 * handed out (iter.c). */
typedef struct pp__iter_chunk {
  /* A copy of the chunk's RESULTS body, each value NUL-terminated in place
   * as it is handed out; it holds a reference for each item not yet handed
   * out and one for the iterator. NULL when the chunk failed whole. */
  pp__value_block *block;
  size_t count;     /* its items */
  size_t number;    /* its place in the input: its first item / chunksize */
  size_t stride;    /* a VALUES body: each value's size + 1; RESULTS: 0 */
  size_t bytes;     /* the body's size: what the block holds */
  pp_status status; /* failed whole: why, */
  char *message;    /* and what every item says */
  int filled;       /* in a ring: this place holds a chunk */
} pp__iter_chunk;

/* Chunks held per worker (sent, or answered and not yet taken), and two
 * more: enough that the consumer seldom finds none answered and sleeps, as
 * a wake-up costs more than a chunk of small items takes to hand out
 * (pp_bench imap_many: 35-45 M/s with 2 per worker, 58-69 M/s with 8), and
 * that the scheduler thread seldom stops pulling for want of room (one by
 * one, 40 alternating rounds: median 78 M/s with 8, 85 with 16). */
#define PP__ITER_CHUNKS_PER_WORKER 16
/* The same once input frames are big (PP__ITER_FRAME_HINT_MAX and up):
 * then memory counts more than wake-ups. */
#define PP__ITER_BIG_CHUNKS_PER_WORKER 2
/* An iterator holds at least this many items (in whole chunks) while they
 * are small: a chunk of small items takes a worker less time than a
 * wake-up, and a window of a few such chunks left the workers waiting on
 * the parent (chunk size 50: 8 M/s with the CPUs half idle; chunk size 1:
 * 0.1-0.2 M/s, about Python's speed). */
#define PP__ITER_SMALL_WINDOW ((size_t)4096)
/* Items count as small while the input frames and answers the iterator
 * holds take less than this many bytes; past it, its window is the one
 * counted in chunks again (iter.c). */
#define PP__ITER_SMALL_BYTES ((size_t)8 << 20)

/* The input chunk being pulled (iter.c): its frame and where its fields
 * are. Kept in the iterator while the input has no item yet
 * (PP_ENOTREADY) in the middle of it, and taken up where it stopped. */
typedef struct pp__iter_pull {
  pp__buf frame;
  uint64_t id;
  size_t at;       /* where the frame begins (pp__frame_begin) */
  size_t count_at; /* where its item count goes */
  size_t size_at;  /* where an ITEMS frame's item size goes */
  size_t size;     /* that size (packed) */
  size_t n;        /* items in it so far */
  int packed;      /* an ITEMS frame, not (yet) turned into CALLS */
  int open;        /* begun and not finished */
  size_t null_len; /* the length of an item the input gave with NULL data */
  /* An item taken from the input that there was no memory to store: it is
   * stored first when the chunk is tried again (its bytes stay the
   * input's until its next call, which waits). */
  pp_bytes pending;
  int has_pending;
  /* The chunk it becomes, allocated as it begins: a failure then takes
   * nothing from the input, so it can be tried again. */
  struct pp__chunk *chunk;
} pp__iter_pull;

/* How long an imap keeps trying to begin a chunk when memory is short
 * (its input loses nothing meanwhile), and how often. */
#define PP__INPUT_RETRY_US (1000 * 1000)
#define PP__INPUT_RETRY_MS 2

struct pp_iter {
  pp__job job;
  pp__shared *shared;
  struct pp_pool *pool; /* NULL once the pool is gone */
  unsigned refs;        /* the caller's and, while active, the pool's */
  int ordered;
  pp_next_fn next;
  void *state;
  /* Threads waiting for its items or its end, or for a pull to end
   * (pp_iter_free()); under the pool's lock. */
  pp__waiter *waiters;
  int input_done;        /* next() said PP_EOF or failed, or pulling stopped */
  pp_status input_error; /* PP_OK, or why the input stopped early */
  char *input_message;
  int error_reported;
  int pulling;   /* the scheduler is inside next() */
  int abandoned; /* pp_iter_free() was called */
  /* Set (by pp_iter_free(), or a terminate) for the pull running without
   * the lock: it stops at its next item instead of filling its chunk,
   * which at a slow input's pace could take seconds. */
  pp__atomic_u32 stop_pulling;
  /* next() said PP_ENOTREADY: no pull until pp_iter_input_ready(), whose
   * calls `input_kicks` counts (both under the pool's lock), so that one
   * made while next() ran is not lost. */
  int input_waiting;
  unsigned long input_kicks;
  pp__iter_pull pull; /* scheduler only */
  /* Since when a chunk could not begin for want of memory (0: it could):
   * tried again each few ms, for PP__INPUT_RETRY_US at most. */
  apr_time_t begin_failing_since;
  size_t pulled;       /* items taken from the input */
  size_t delivered;    /* items taken by pp_iter_next() */
  size_t window;       /* most items pulled and not yet taken, */
  size_t small_window; /* or this many while held_bytes is small, */
  size_t big_window;   /* or this many while input frames are big */
  /* Bytes of the input frames not yet answered and of the answered chunks
   * not yet taken: what the window holds (iter.c). */
  size_t held_bytes;
  int big_frames; /* the last input frame was big (iter.c) */
  /* Answered chunks: ordered, at their number mod nchunks; unordered, a
   * FIFO from `head`. A chunk is taken whole by pp_iter_next(). These, and
   * `pulled`, `delivered`, the window and big_frames, are under ring_lock
   * (iter.c), and those the scheduler writes under the pool's lock too. */
  pp__iter_chunk *chunks;
  size_t nchunks, head, queued;
  size_t taken; /* chunks taken (ordered: the number of the next one) */
  struct pp_iter *next_active;
  size_t frame_hint; /* bytes the last input frame took (scheduler only) */
  /* The chunk pp_iter_next() hands out from, under take_lock alone, so
   * that the pool's lock, which the scheduler holds much of the time, is
   * taken once per chunk, not once per item. Its items count as
   * delivered already. */
  pp__atomic_u32 taking; /* take_lock (iter.c): a spin lock, as it is
                            taken once per item and held briefly */
  pp__atomic_u32 ring;   /* ring_lock (iter.c): taken once per chunk by the
                            consumer and by the scheduler, held briefly */
  pp__iter_chunk cur;
  size_t cur_left;       /* its items not yet handed out */
  unsigned char *cur_at; /* the next one's place in cur.block */
  unsigned cur_status;   /* the next one's status (its byte may be a NUL) */
  /* The owner path (iter.c): the thread that may take an item from `cur`
   * without take_lock while no other thread has come, and its flag. */
  pp__atomic_ptr owner;      /* its token; NULL: none yet; iter.c's
                                OWNER_GONE: none ever again */
  pp__atomic_u32 owner_busy; /* 1 while it takes an item so */
};

typedef enum pp__pool_state {
  PP__RUN,
  PP__CLOSE,
  PP__TERMINATE
} pp__pool_state;

typedef enum pp__worker_state {
  PP__W_FREE = 0,
  PP__W_STARTING,    /* asked the backend, no STARTED yet */
  PP__W_HANDSHAKING, /* CHALLENGE sent, waiting for PROOF */
  PP__W_CONFIGURING, /* CONFIG sent, waiting for READY */
  PP__W_READY,       /* takes work */
  PP__W_RETIRING,    /* hung up or killed; waiting for its end */
} pp__worker_state;

typedef struct pp__worker {
  pp__worker_state state;
  long pid;
  pp__chunk *head, *tail; /* sent, unanswered, in send order */
  size_t outstanding;
  unsigned long chunks_done;
  unsigned long chunks_sent;
  /* Smoothed time per chunk in sixteenths of a µs, once `service_known`:
   * tiny tasks take less than the clock's µs, and an average of them in
   * whole µs fell to 0, which read as unknown and held the worker to one
   * chunk at a time. */
  apr_time_t service_x16;
  int service_known;
  apr_time_t head_started; /* when the oldest unanswered chunk began */
  int head_unsent; /* its oldest chunk is still in its batch (dispatch()) */
  apr_time_t challenged; /* when the handshake's challenge went out */
  apr_time_t configured; /* when its CONFIG went out (its initializer's
                            time limit runs from then) */
  apr_time_t kill_at;    /* asked to stop: killed if still alive then */
  pp__buf batch;         /* frames of this dispatch round, sent as one */
  pp__shm *shm;          /* the lanes' segment, once offered */
  int lanes_offered;     /* offer_lanes() was called (once a life) */
  pp__lane down, up;     /* usable once the worker said it mapped them */
  /* The segment's rings (ring.h): ours go through the down one from RING
   * on, the worker's come through the up one from its RINGED on. */
  pp__rings rings;
  int ring_up, ring_down;
  int ring_tried; /* ring_switch() was called (once a life) */
  /* Writing its down ring failed (PP_EPROTOCOL: it said something
   * impossible): stop it. */
  pp_status ring_fault;
  pp__buf ring_in; /* what the up ring brought, not yet read as frames */
  /* An answer coming in pieces (wire.h, PP__FRAME_MORE): the payloads so
   * far, and their frames' type (0: none under way). */
  pp__buf pieces;
  unsigned piece_type;
  int closed, exited;
  pp__exit exit;
  int killed_by_pool;  /* terminate or a protocol error */
  int refused;         /* failed the handshake, killed */
  const char *refusal; /* how (a string constant), for the pool's message */
  int ready_owed;      /* took work before its READY came (no initializer) */
  int leaving;         /* said LEAVING: what it holds never started (wire.h) */
  int parent_mem;      /* READY said it reads and writes this process's
                          memory: big records chunks stay in place */
  unsigned char nonce[PP__NONCE_SIZE]; /* the challenge it must answer */
  pp_status fail_status;               /* for chunks lost when it ends */
  char *fail_message;
} pp__worker;

struct pp_pool {
  pp__shared *shared;
  int processes;
  pp_context context;
  size_t max_message;
  size_t lane_size;  /* per worker and direction; 0: no shared memory */
  double time_limit; /* the pool's default, seconds; 0: none */
  apr_interval_time_t init_limit; /* its initializer's, µs; 0: none */
  unsigned long maxtasksperchild;
  unsigned char *config_frame;
  size_t config_len;
  char initializer[PP__WIRE_MAX_NAME + 1];
  char key[2 * PP__KEY_BYTES + 1]; /* hex */
  /* A random value whose address CONFIG gives the workers: one that reads
   * it there may read and write the parent's memory (backend.h). */
  uint64_t parent_mem_probe;

  /* under shared->lock */
  pp__pool_state state;
  int scheduler_done;
  int joining; /* a join() waits: imap windows stop bounding the input */
  int joined;
  pp__waiter *joiners;                /* threads waiting for scheduler_done */
  pp__chunk *queue_head, *queue_tail; /* FIFO, both ways (queue.c) */
  pp__job *drops; /* cancelled or unwanted jobs with chunks queued */
  pp_iter *active_iters;
  pp_status broken; /* PP_OK, or why no work can run */
  char *broken_message;
  pp__worker *workers; /* nslots; the scheduler changes them */
  unsigned nslots;
  size_t inflight_jobs; /* results and iterators not yet complete */
  int cancels; /* a pp_result_cancel() awaits the scheduler, which stops a
                  worker running the cancelled call */
  unsigned long chunks_in_place; /* records chunks sent as RECORDS_AT */

  /* scheduler thread only */
  int terminate_handled;
  int starts_over;       /* no worker will be started again (backend told) */
  int input_retry;       /* an imap could not begin a chunk: try again soon */
  int heads_unsent;      /* a worker's head_unsent is set */
  pp__wakes wakes;       /* waiters of what completed this pass */
  int batched;           /* some worker's batch holds frames to send */
  unsigned early_deaths; /* workers in a row that died before READY */
  apr_time_t start_retry_at;      /* a start failed: try again at this time */
  apr_time_t start_retry_us;      /* the pause before that try, doubling */
  unsigned start_failures;        /* starts failed since a worker was ready */
  apr_time_t start_failing_since; /* when the first of them failed */
  apr_time_t answers_at;          /* when this pass's answers came in: the clock
                                     read once for all of them */
  pp_result *notify_head, *notify_tail; /* completed, callbacks to run */
  pp__outcome *outcomes;                /* decoding scratch */
  size_t capoutcomes;
  pp__backend *backend;
  apr_thread_t *thread;
  volatile apr_uint32_t next_job; /* atomic */
  pp__buf scratch;
  pp__copier *copier;  /* big copies; may be NULL (then they run alone) */
  pp_pool *spare_next; /* the live pools, under spare.c's lock */
};

/* Test hooks, zero in programs: each makes pools misbehave in one way, so
 * that tests can watch the misbehaviour refused. */
typedef struct pp__test_hooks {
  int wrong_key;              /* pools created now give their workers a key
                                 other than their own */
  unsigned challenge_version; /* parent: CHALLENGE frames carry this wire
                                 version (0: the real one) */
  unsigned proof_version;     /* worker: PROOF frames carry this version
                                 (fork workers see the parent's value) */
  int mute_proof;             /* worker: never answers the challenge */
  long handshake_limit_ms;    /* parent: waits this long for a proof
                                 (0: the real limit) */
  long leave_limit_ms;        /* parent: a worker told to leave is killed
                                 when still there after this long (0: the
                                 real limit) */
  int lanes_unbacked;         /* no memory can be had behind a lane's pages
                                 (fork workers see the parent's value) */
  int no_parent_mem;          /* parent: pools created now offer their
                                 workers no probe of their memory, so
                                 records chunks keep to the lanes */
  int rings_unbacked;         /* parent: no memory can be had behind the
                                 rings, so workers keep to their channels */
  int named_segments;         /* parent: pools created now make their lanes'
                                 segments as where the system has no
                                 anonymous kind (pp__backend_config) */
  int unready_exit;           /* worker: exits with this code once it has
                                 its CONFIG, before it says READY (fork
                                 workers see the parent's value; 0: none) */
  unsigned failed_starts;     /* parent: this many worker starts fail with
                                 PP_ESYSTEM, as when the system has no
                                 process slot, before they succeed again */
  long start_give_up_ms;      /* parent: starts that keep failing break the
                                 pool after this long (0: the real time) */
} pp__test_hooks;
extern pp__test_hooks pp__test;

/* submit.c */
/* A call's time limit in µs (0: none) from its callbacks and the pool. */
apr_interval_time_t pp__time_limit(const pp_pool *pool, const pp_callbacks *cb);
pp_status pp__result_new(pp_pool *pool, pp__job_kind kind, const char *task,
                         const pp_callbacks *cb, pp_result **out);
uint32_t pp__next_job_id(pp_pool *pool);
/* The checks every submission makes: PP_EINVAL for a missing or bad
 * argument (a NaN time limit in `callbacks`, which may be NULL),
 * PP_ESTATE in a copy of the pool's owner. */
pp_status pp__check_submit(pp_pool *pool, const char *task,
                           const pp_callbacks *callbacks, void *out);
/* 1 when a call that waits for `pool` would never return: on its
 * scheduler thread (the one that would end the wait), or in a copy of its
 * owner (pp__shared_owned()). */
int pp__wait_would_hang(pp_pool *pool);
/* The reasons for PP_ESTATE given by such a call (pp__wait_would_hang()),
 * by any pool call in a fork of the owner, and for PP_ECLOSED. */
pp_status pp__fail_wait_would_hang(const pp__shared *shared);
pp_status pp__fail_not_owner(void);
pp_status pp__fail_closed(void);
/* The chunk of `count` calls from item `first` of the caller's array. */
pp_status pp__encode_calls(const char *task, uint64_t id, const pp_args *calls,
                           const pp_bytes *single, size_t count, size_t first,
                           pp__chunk **out);
/* Frees a finished chunk as its `mem` says. */
void pp__chunk_free(pp__chunk *c);

/* queue.c: the pool's queue of chunks no worker holds yet (lock held). */
/* A run: chunks of one job made in order, linked as they are made (no
 * lock: they are the caller's until appended), so that appending them
 * costs the same however many they are: a map of 100,000 chunks used to
 * be walked under the lock. pp__queue_run_add() puts `c`, of `job`, at the
 * end of the run from *first to *last (both NULL for a new run). */
void pp__queue_run_add(pp__chunk **first, pp__chunk **last, pp__chunk *c,
                       pp__job *job);
/* Appends a run made by pp__queue_run_add(). */
void pp__queue_append_run_locked(pp_pool *pool, pp__chunk *first,
                                 pp__chunk *last);
/* Puts them back in front of the queue, in order: a worker that ended
 * had not started them. */
void pp__queue_prepend_locked(pp_pool *pool, pp__chunk *first, pp__chunk *last);
/* Takes queued chunk `c` out of the queue, wherever it is, in O(1). */
void pp__queue_remove_locked(pp_pool *pool, pp__chunk *c);
/* `job` was cancelled or made unwanted: its queued chunks, now and any
 * queued later, go on the pool's `drops` for the scheduler to drop. */
void pp__queue_drop_job_locked(pp_pool *pool, pp__job *job);

/* result.c */
/* pp_result_wait() and pp_result_get() inside the library: a failure's
 * reason is given, but the message is left to the public function. */
pp_status pp__result_wait(pp_result *r, double timeout);
pp_status pp__result_get(pp_result *r, double timeout);
/* Records one chunk's outcomes into the job (lock held). `outcomes` has
 * chunk->count entries, or is NULL with `all` set for a whole-chunk failure.
 * Returns 1 when that completed the job (a result to notify). */
int pp__result_chunk_done(pp_result *r, const pp__chunk *chunk,
                          const pp__outcome *outcomes, const pp__outcome *all,
                          pp__copier *copier);
/* A records chunk answered: its `out` records (NULL for a chunk done in
 * place, whose records the worker wrote) and the `nerr` failures listed in
 * `errors`; or `all`, the outcome of every record, for a whole-chunk
 * failure, whose output is zeroed unless the chunk went in place (its
 * worker zeroes what it can). */
int pp__records_chunk_done(pp_result *r, const pp__chunk *chunk,
                           const unsigned char *out, size_t nerr,
                           pp__reader *errors, const pp__outcome *all,
                           pp__copier *copier);
void pp__result_release_locked(pp_result *r); /* drops a reference */
/* How many times a thread waiting for the result slept and woke: once for
 * a wait that was not ended early, whatever else completed meanwhile (for
 * the tests). */
unsigned long pp__result_sleeps(pp_result *r);
/* An imap chunk is answered: `results` is its checked RESULTS body
 * (pp__check_results()) or, with `stride` (each value's size + 1), its
 * VALUES body (pp__check_values()); or NULL, and `all` the outcome of
 * every item. */
void pp__iter_chunk_done(pp_iter *it, const pp__chunk *chunk,
                         const unsigned char *results, size_t results_len,
                         size_t stride, const pp__outcome *all,
                         pp__copier *copier);
void pp__iter_release_locked(pp_iter *it);
/* Lock held: the iterator got items or ended, or a pull ended: its waiters
 * look again (once the scheduler lets go of the lock). */
void pp__iter_wake_locked(pp_iter *it);
/* Scheduler, lock held: pulls input while there is room and queues chunks;
 * unlocks around the caller's next(). Returns 1 when it stopped with input
 * and room left (call again soon). */
int pp__iter_fill_locked(pp_pool *pool, pp_iter *it);
/* Lock held: stops the input with `why` (an input error, no memory). */
void pp__iter_stop_locked(pp_iter *it, pp_status why, const char *message);
/* Scheduler, lock held: the pool ended before the input did (terminate, a
 * broken pool): the items of a chunk still open fail with `why` and
 * `message`, and the input stops, its end saying it was cut short. */
void pp__iter_cut_short_locked(pp_iter *it, pp_status why, const char *message);
/* 1 while a thread takes the iterator's items on the owner path (iter.c);
 * for the tests. */
int pp__iter_owned(pp_iter *it);
/* Copies an outcome into an allocation of the item's own; big values by
 * `copier` (may be NULL). */
void pp__item_set(pp__item *item, const pp__outcome *o, pp__copier *copier);

/* scheduler.c */
/* A second chunk goes to a busy worker only when its chunks are short, so
 * that it never waits for the parent; long tasks would instead hold the
 * second chunk hostage while another worker sits idle. */
#define PP__PIPELINE_US 2000
/* Tiny tasks take a few µs each in a worker: 32 of them lasted less than a
 * time slice of the scheduler thread, which shares the CPUs with the
 * workers, so workers ran dry and slept in recv() (perf sched_switch). The
 * PP__PIPELINE_US bound still holds for anything longer. */
#define PP__PIPELINE_MAX 256
/* The worker's oldest chunk was answered at `now`: its smoothed time per
 * chunk takes that in. */
void pp__note_service_time(pp__worker *w, apr_time_t now);
/* How many chunks a worker may hold: one while its chunks are long or their
 * length is unknown, so that a long task never holds a second chunk hostage
 * while another worker sits idle; for short chunks, about PP__PIPELINE_US of
 * work, so that the worker never waits for the parent and one write carries
 * many chunks (at most PP__PIPELINE_MAX). */
size_t pp__pipeline_cap(const pp__worker *w);
/* Asks for the pool's first workers and queues their challenges, on the
 * creating thread before the scheduler thread exists: they start while
 * that thread is being made. */
void pp__scheduler_prime(pp_pool *pool);
void *APR_THREAD_FUNC pp__scheduler_main(apr_thread_t *thread, void *arg);

#endif
