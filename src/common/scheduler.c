/* The scheduler thread: one per pool. It owns the workers, sends queued
 * chunks to idle workers, decodes their answers, replaces workers, and
 * completes every result exactly once, running callbacks on this thread.
 * Everything it shares with callers is changed under the pool's lock; the
 * lock is dropped only to wait for events and to run user code. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PP__EVENTS 64
#define PP__MAX_EARLY_DEATHS 8
/* A started worker answers the challenge in milliseconds; one that has not
 * in this long is stuck or is not ours, and would hold its slot forever. */
#define PP__HANDSHAKE_LIMIT_US (10 * APR_USEC_PER_SEC)
/* A records chunk this big either way stays in place for a worker that can
 * reach this process's memory: two system calls in the worker cost less
 * than the parent's copies into the lane and out of it. Smaller chunks
 * take the lane, which costs no system call at all. */
#define PP__IN_PLACE_MIN ((size_t)64 << 10)

static void lock(pp_pool *p) { pp__mutex_lock(p->shared->lock); }
static void unlock(pp_pool *p) { pp__mutex_unlock(p->shared->lock); }

/* ---- completing work ---- */

static void notify_later(pp_pool *pool, pp_result *r) {
  r->next_done = NULL;
  if (pool->notify_tail)
    pool->notify_tail->next_done = r;
  else
    pool->notify_head = r;
  pool->notify_tail = r;
}

/* What a worker answered for a chunk, checked whole: the field of the
 * chunk's kind is set. */
typedef struct answer {
  const pp__outcome *outs;      /* calls: one outcome per item */
  const unsigned char *results; /* imap: the RESULTS or VALUES body */
  size_t results_len;           /* (wire.h), read as its items are */
  size_t stride;                /* handed out; VALUES: size + 1, else 0 */
  const unsigned char *records; /* records: the output records, */
  size_t nerr;                  /* how many failed, */
  pp__reader *errors;           /* and their list */
} answer;

/* Records the outcome of one chunk (lock held) and frees the chunk: what
 * its worker answered, or `all`, one outcome for each of its items. */
static void chunk_done(pp_pool *pool, pp__chunk *c, const answer *a,
                       const pp__outcome *all) {
  static const answer none = {0};
  if (!a)
    a = &none;
  pp__job *job = c->job;
  if (job->kind == PP__JOB_IMAP) {
    pp__iter_chunk_done((pp_iter *)job, c, a->results, a->results_len,
                        a->stride, all, pool->copier);
  } else {
    pp_result *r = (pp_result *)job;
    int finished = job->kind == PP__JOB_CALLS
                       ? pp__result_chunk_done(r, c, a->outs, all, pool->copier)
                       : pp__records_chunk_done(r, c, a->records, a->nerr,
                                                a->errors, all, pool->copier);
    if (finished)
      notify_later(pool, r);
  }
  pp__chunk_free(c);
}

static void chunk_failed(pp_pool *pool, pp__chunk *c, pp_status why,
                         const char *message) {
  if (!message)
    message = pp_strerror(why);
  pp__outcome all = {why, (const unsigned char *)message, strlen(message)};
  chunk_done(pool, c, NULL, &all);
}

static void fail_queue(pp_pool *pool, pp_status why, const char *message) {
  while (pool->queue_head) {
    pp__chunk *c = pool->queue_head;
    pp__queue_remove_locked(pool, c);
    chunk_failed(pool, c, why, message);
  }
}

static void fail_outstanding(pp_pool *pool, pp__worker *w, pp_status why,
                             const char *message) {
  pp__chunk *c = w->head;
  w->head = w->tail = NULL;
  w->outstanding = 0;
  while (c) {
    pp__chunk *next = c->next;
    chunk_failed(pool, c, why, message);
    c = next;
  }
}

/* Callbacks run without the lock, so they may read results; `ready` is set
 * only afterwards, as Python runs callbacks before waking get(). Only the
 * threads waiting for these results are woken, once the lock is let go
 * (pp__wakes_signal()). */
static int run_callbacks(pp_pool *pool) {
  int ran = pool->notify_head != NULL;
  while (pool->notify_head) {
    pp_result *list = pool->notify_head;
    pool->notify_head = pool->notify_tail = NULL;
    unlock(pool);
    /* What completed before need not wait for these callbacks. */
    pp__wakes_signal(&pool->wakes);
    for (pp_result *r = list; r; r = r->next_done) {
      pp_result_fn fn =
          r->status == PP_OK ? r->cb.callback : r->cb.error_callback;
      if (fn)
        fn(r, r->cb.user_data);
    }
    lock(pool);
    while (list) {
      pp_result *next = list->next_done;
      pp__atomic_set(&list->ready, 1);
      if (list->waiters)
        pp__waiters_defer(&list->waiters, &pool->wakes);
      pool->inflight_jobs--;
      pp__result_release_locked(list);
      list = next;
    }
  }
  return ran;
}

/* ---- the pool breaking ---- */

static void set_broken(pp_pool *pool, pp_status why, char *message) {
  if (pool->broken != PP_OK) {
    free(message);
    return;
  }
  pool->broken = why;
  pool->broken_message = message ? message : pp__strdup(pp_strerror(why));
}

/* ---- workers ---- */

/* How long a worker told to leave (its channel closed, with nothing of its
 * own pending) may take to exit before it is killed. All it has left to do
 * is flush its standard streams; one still there after this is stuck (on a
 * stream lock a thread of a task kept, say), and a join would wait for it
 * forever. */
#define PP__LEAVE_LIMIT_US (10 * APR_USEC_PER_SEC)

static void retire(pp_pool *pool, pp__worker *w, unsigned slot) {
  if (w->state == PP__W_RETIRING || w->state == PP__W_FREE)
    return;
  w->state = PP__W_RETIRING;
  /* With our end closed no CLOSED event can come: the channel is done. */
  pp__backend_hangup(pool->backend, slot);
  w->closed = 1;
  w->kill_at = pp__clock_us() +
               (pp__test.leave_limit_ms
                    ? (apr_interval_time_t)pp__test.leave_limit_ms * 1000
                    : PP__LEAVE_LIMIT_US);
}

/* The pool ends a worker: the chunk it runs will fail with `why` and
 * `message` (the first reason given wins). 0 when there is no worker. */
static int mark_ending(pp__worker *w, pp_status why, char *message) {
  if (w->state == PP__W_FREE) {
    free(message);
    return 0;
  }
  if (!w->fail_status) {
    w->fail_status = why;
    w->fail_message = message;
  } else {
    free(message);
  }
  w->killed_by_pool = 1;
  w->state = PP__W_RETIRING;
  return 1;
}

static void kill_worker(pp_pool *pool, pp__worker *w, unsigned slot,
                        pp_status why, char *message) {
  if (mark_ending(w, why, message))
    pp__backend_kill(pool->backend, slot);
}

/* Like kill_worker(), but asks first (SIGTERM), so that a task can clean
 * up; the worker is killed if it is still there after a grace period. */
#define PP__STOP_GRACE_US (200 * 1000)

static void stop_worker(pp_pool *pool, pp__worker *w, unsigned slot,
                        pp_status why, char *message) {
  if (!mark_ending(w, why, message))
    return;
  w->kill_at = pp__clock_us() + PP__STOP_GRACE_US;
  pp__backend_stop(pool->backend, slot);
}

/* How long a worker whose channel closed may take to exit by itself. */
#define PP__CLOSED_GRACE_US (100 * 1000)

/* A frame longer than the pool's limit (pp_options.max_message_size): the
 * call it answers fails with PP_ETOOBIG and says so, and the worker is
 * stopped, as the rest of that frame could only be read to be dropped. A
 * worker of this build cuts a longer answer into pieces (wire.h): only one
 * that does not follow the protocol sends such a frame. */
static void oversized(pp_pool *pool, unsigned slot, size_t len) {
  pp__worker *w = &pool->workers[slot];
  kill_worker(pool, w, slot, PP_ETOOBIG,
              pp__format("worker %ld sent a message of %zu bytes, beyond "
                         "the pool's limit of %zu (pp_options."
                         "max_message_size), to which its answers are cut; "
                         "it was stopped",
                         w->pid, len, pool->max_message));
}

static void protocol_error(pp_pool *pool, unsigned slot, const char *what) {
  pp__worker *w = &pool->workers[slot];
  kill_worker(pool, w, slot, PP_EPROTOCOL,
              pp__format("worker %ld sent a malformed message (%s); it was "
                         "stopped",
                         w->pid, what));
}

/* A worker ended before it was ready: say why when it is clear that every
 * replacement would end the same way, and stop replacing workers that keep
 * dying, which would otherwise go on forever. */
static void early_end(pp_pool *pool, pp__worker *w, const char *how) {
  if (w->refused) {
    if (++pool->early_deaths > PP__MAX_EARLY_DEATHS)
      set_broken(pool, PP_EPROTOCOL,
                 pp__format("workers failed the handshake: %u in a row did "
                            "not prove that they know the pool's key (the "
                            "last was worker %ld: %s); they were stopped "
                            "before any task",
                            pool->early_deaths, w->pid,
                            w->refusal ? w->refusal : "refused"));
  } else if (w->state == PP__W_HANDSHAKING && !w->exit.signaled &&
             w->exit.code == PP__EXIT_VERSION) {
    set_broken(pool, PP_EPROTOCOL,
               pp__format("protocol version mismatch: worker %ld does not "
                          "speak version %d of the procpool wire protocol, "
                          "which this process speaks, and exited; is the "
                          "worker executable the same build as this program?",
                          w->pid, PP__WIRE_VERSION));
  } else if (w->state == PP__W_CONFIGURING && pool->initializer[0] &&
             !pp__exit_from_outside(&w->exit)) {
    /* A failure the initializer reported would have made the worker
     * RETIRING: this one crashed. One killed from outside (the memory
     * killer) proves nothing against the initializer: it counts as an
     * early death below, and only a run of them breaks the pool. */
    set_broken(pool, PP_EINITIALIZER,
               pp__format("the initializer '%s' did not finish in worker "
                          "%ld: it %s",
                          pool->initializer, w->pid, how));
  } else if (w->state == PP__W_HANDSHAKING || w->state == PP__W_CONFIGURING ||
             (w->state == PP__W_READY && w->ready_owed)) {
    if (++pool->early_deaths > PP__MAX_EARLY_DEATHS)
      set_broken(pool, PP_EWORKERDIED,
                 pp__format("workers keep dying before they are ready; the "
                            "last, %ld, %s",
                            w->pid, how));
  }
}

/* How a worker, or the process that starts them, ended, in words: the
 * system's account (an exit code, a signal), and for the codes they exit
 * with on purpose (internal.h, backend.h), what they meant by it. */
static void describe_end(const pp__exit *e, int launcher, char *buf,
                         size_t cap) {
  pp__exit_describe(e, buf, cap);
  if (e->signaled || e->with_launcher || e->unknown)
    return;
  const char *meant = NULL;
  switch (e->code) {
  case PP__EXIT_LAUNCHER_SETUP:
    if (!launcher)
      return; /* a task's own exit(119): no worker means it */
    meant = "it could not set itself up, and wrote why on its standard "
            "error";
    break;
  case PP__EXIT_BAD_LAUNCH:
    meant = "it could not reach the pool that started it";
    break;
  case PP__EXIT_PROTOCOL:
    meant = "it could not read what the pool sent it";
    break;
  case PP__EXIT_NOMEM:
    meant = "it ran out of memory";
    break;
  case PP__EXIT_VERSION:
    meant = "it speaks another version of the wire protocol";
    break;
  case PP__EXIT_CHANNEL:
    meant = "its channel to the pool failed under it; did a task close a "
            "descriptor it had not opened?";
    break;
  default:
    return;
  }
  size_t len = strlen(buf);
  if (len < cap)
    snprintf(buf + len, cap - len, " (procpool's code: %s)", meant);
}

/* Why the backend can start no more workers, in words: how its last
 * launcher ended, when the backend knows, tells a launcher that could not
 * start (a descriptor limit, no memory: its exit code, which
 * describe_end() puts in words) from one killed from outside. */
static char *launcher_broke(const pp__event *ev) {
  const char *who = "the process that starts the pool's workers";
  if (ev->status == PP_EPROTOCOL)
    return pp__format("%s sent a malformed report: the pool makes no more "
                      "workers",
                      who);
  if (ev->pid <= 0)
    return pp__format("%s kept dying soon after it was made: the pool makes "
                      "no more workers",
                      who);
  char how[256];
  describe_end(&ev->exit, 1, how, sizeof how);
  return pp__format("%s kept dying soon after it was made (the last one, "
                    "process %ld, %s): the pool makes no more workers",
                    who, ev->pid, how);
}

/* Whether a worker that died had not taken a byte of the oldest chunk it
 * held, so started none of them: the down ring says how far it read. A
 * worker killed while idle (by hand, by the OOM killer) with a call sent
 * meanwhile then costs that call nothing: it runs on the replacement, as
 * in Python, whose idle workers take nothing from its queue. On the
 * channel there is no telling (the kernel's buffer), and a chunk the pool
 * stopped its worker for (a time limit, a cancel) was running. */
static int never_read(const pp__worker *w) {
  if (!w->head || !w->head->in_ring || w->killed_by_pool || w->fail_status)
    return 0;
  uint32_t taken = pp__atomic_get(w->rings.out.tail);
  /* A position it could not have reached is no proof of anything. */
  if (w->rings.out.pos - taken > PP__RING_SIZE)
    return 0;
  return (int32_t)(taken - w->head->ring_at) <= 0;
}

/* A worker's process has ended and its channel is drained: account for the
 * work it held and free its slot. */
static void worker_finished(pp_pool *pool, unsigned slot) {
  pp__worker *w = &pool->workers[slot];
  char how[256];
  describe_end(&w->exit, 0, how, sizeof how);
  if (pool->state != PP__TERMINATE)
    early_end(pool, w, how);
  else /* what it held was left to fail now (handle_terminate()) */
    fail_outstanding(pool, w, PP_ETERMINATED, "the pool was terminated");
  /* A worker that left for its memory limit (it said so, and exited with
   * that code: a task may call exit(124) too), or before its READY, had
   * started none of the chunks it still held: they all go back to the
   * front of the queue. */
  int started_none = (w->leaving && !w->killed_by_pool && !w->exit.signaled &&
                      w->exit.code == PP__EXIT_RECYCLE) ||
                     w->ready_owed || never_read(w);
  if (w->head && started_none) {
    /* Those cancelled meanwhile are dropped from there (queue.c). */
    pp__queue_prepend_locked(pool, w->head, w->tail);
    w->head = w->tail = NULL;
    w->outstanding = 0;
  }
  if (w->head) {
    /* The oldest chunk is the one it was running: workers answer in order.
     * The rest never started: they go back to the front of the queue. */
    pp__chunk *running = w->head;
    pp__chunk *rest = running->next;
    if (rest)
      pp__queue_prepend_locked(pool, rest, w->tail);
    running->next = NULL;
    w->head = w->tail = NULL;
    w->outstanding = 0;
    if (w->fail_status) {
      chunk_failed(pool, running, w->fail_status, w->fail_message);
    } else {
      char *msg = pp__format("worker %ld died while running task '%s': it %s",
                             w->pid, running->job->task, how);
      chunk_failed(pool, running, PP_EWORKERDIED, msg);
      free(msg);
    }
  }
  free(w->fail_message);
  pp__buf_free(&w->batch);
  pp__buf_free(&w->ring_in);
  pp__buf_free(&w->pieces); /* an answer cut short: its chunk failed above */
  pp__shm_free(w->shm);
  pp__backend_release(pool->backend, slot);
  memset(w, 0, sizeof *w);
}

static int live_workers(const pp_pool *pool) {
  int n = 0;
  for (unsigned i = 0; i < pool->nslots; i++) {
    pp__worker_state s = pool->workers[i].state;
    n += s == PP__W_STARTING || s == PP__W_HANDSHAKING ||
         s == PP__W_CONFIGURING || s == PP__W_READY;
  }
  return n;
}

/* A worker that could not be started: a passing failure (no memory or
 * process slot for a moment, as a container near its process limit has)
 * is retried after a pause that doubles, from 50 ms up to half a second. Starts
 * that keep failing for PP__START_GIVE_UP_US, with no worker made ready
 * in between, break the pool with the reason, so that calls do not wait
 * for workers that will not come, and a limit that does not pass (too few
 * descriptors for the workers asked for) is told. */
#define PP__START_RETRY_US (50 * 1000)
#define PP__START_RETRY_MAX_US (500 * 1000)
#define PP__START_GIVE_UP_US (5 * 1000 * 1000)

static void start_failed(pp_pool *pool, pp_status why) {
  apr_time_t now = pp__clock_us();
  if (!pool->start_failures++) {
    pool->start_failing_since = now;
    pool->start_retry_us = PP__START_RETRY_US;
  } else if (pool->start_retry_us < PP__START_RETRY_MAX_US) {
    pool->start_retry_us *= 2;
    if (pool->start_retry_us > PP__START_RETRY_MAX_US)
      pool->start_retry_us = PP__START_RETRY_MAX_US;
  }
  pool->start_retry_at = now + pool->start_retry_us;
  apr_time_t give_up = pp__test.start_give_up_ms
                           ? (apr_time_t)pp__test.start_give_up_ms * 1000
                           : PP__START_GIVE_UP_US;
  apr_time_t failing = now - pool->start_failing_since;
  if (failing < give_up)
    return;
  /* The system's reason, where the backend knows it, is what a user can
   * act on: "socketpair: Too many open files", say. */
  const char *reason = pp__backend_start_error(pool->backend);
  set_broken(pool, why,
             pp__format("could not start a worker: %s%s%s (%u attempts over "
                        "%.1f s failed)",
                        pp_strerror(why), *reason ? ": " : "", reason,
                        pool->start_failures, (double)failing / 1e6));
}

static void send_challenge(pp_pool *pool, unsigned slot);

/* Each new worker's challenge is queued with its start, not when it is
 * reported started: the backend hands it over as soon as the channel
 * exists, and the worker need not wait for this thread to answer. */
static void start_workers(pp_pool *pool) {
  int want = pool->processes - live_workers(pool);
  if (want > 0 && pool->start_retry_at) {
    if (pp__clock_us() < pool->start_retry_at)
      return;
    pool->start_retry_at = 0;
  }
  for (unsigned i = 0; want > 0 && i < pool->nslots; i++) {
    pp__worker *w = &pool->workers[i];
    if (w->state != PP__W_FREE)
      continue;
    pp_status st = pp__test.failed_starts ? PP_ESYSTEM
                                          : pp__backend_start(pool->backend, i);
    if (st != PP_OK) {
      if (pp__test.failed_starts)
        pp__test.failed_starts--;
      start_failed(pool, st);
      return;
    }
    w->state = PP__W_STARTING;
    send_challenge(pool, i);
    want--;
  }
}

/* ---- decoding answers ---- */

static pp__outcome *outcomes(pp_pool *pool, size_t n) {
  if (n > pool->capoutcomes) {
    pp__outcome *grown = realloc(pool->outcomes, n * sizeof *grown);
    if (!grown)
      return NULL;
    pool->outcomes = grown;
    pool->capoutcomes = n;
  }
  return pool->outcomes;
}

/* The chunk a RESULTS/RECORDS_DONE frame answers: the oldest sent. */
static pp__chunk *answered_chunk(pp__worker *w, const pp__frame *f,
                                 pp__job_kind kind) {
  pp__chunk *c = w->head;
  if (!c || pp__chunk_id(c) != f->id)
    return NULL;
  int records = c->job->kind == PP__JOB_RECORDS;
  return records == (kind == PP__JOB_RECORDS) ? c : NULL;
}

static void pop_answered(pp__worker *w, apr_time_t now) {
  /* Its answer is in: the worker is done with the frame's lane bytes. */
  if (w->head->in_lane)
    pp__lane_release(&w->down, w->head->lane_end);
  w->head = w->head->next;
  if (!w->head)
    w->tail = NULL;
  else
    w->head_started = now; /* a worker runs its chunks in order */
  w->outstanding--;
  w->chunks_done++;
}

/* From when the chunk became the worker's oldest (it started then), not from
 * when it was sent: chunks queued behind others would seem slow. */
void pp__note_service_time(pp__worker *w, apr_time_t now) {
  apr_time_t took = now > w->head_started ? 16 * (now - w->head_started) : 0;
  w->service_x16 = w->service_known ? (3 * w->service_x16 + took) / 4 : took;
  w->service_known = 1;
}

/* The worker's oldest chunk `c` is answered: record what it says (`a`, or
 * `all` for every item), or drop it when the call was cancelled
 * meanwhile. */
static void answered(pp_pool *pool, pp__worker *w, pp__chunk *c,
                     const answer *a, const pp__outcome *all) {
  pp__note_service_time(w, pool->answers_at);
  pop_answered(w, pool->answers_at);
  if (c->job->cancelled)
    chunk_failed(pool, c, PP_ECANCELLED, NULL);
  else
    chunk_done(pool, c, all ? NULL : a, all);
}

static const char *on_results(pp_pool *pool, pp__worker *w,
                              const pp__frame *f) {
  pp__chunk *c = answered_chunk(w, f, PP__JOB_CALLS);
  if (!c)
    return "an answer to no task it was sent";
  answer a = {0};
  const char *bad;
  if (c->job->kind == PP__JOB_IMAP) {
    /* Checked now, read item by item as the iterator hands them out. */
    bad = pp__check_results(f, c->count, &a.results, &a.results_len);
  } else {
    pp__outcome *outs = outcomes(pool, c->count ? c->count : 1);
    if (!outs) {
      /* The answer is sound; this process is short of memory, and the
       * worker goes on. */
      static const char nomem[] = "no memory to read the chunk's results";
      pp__outcome all = {PP_ENOMEM, (const unsigned char *)nomem,
                         sizeof nomem - 1};
      answered(pool, w, c, NULL, &all);
      return NULL;
    }
    bad = pp__decode_results(f, c->count, outs);
    a.outs = outs;
  }
  if (bad)
    return bad;
  answered(pool, w, c, &a, NULL);
  return NULL;
}

static const char *on_values(pp_pool *pool, pp__worker *w, const pp__frame *f) {
  pp__chunk *c = answered_chunk(w, f, PP__JOB_CALLS);
  if (!c || c->job->kind != PP__JOB_IMAP)
    return "values for no imap chunk it was sent";
  answer a = {0};
  size_t size;
  const char *bad =
      pp__check_values(f, c->count, &a.results, &a.results_len, &size);
  if (bad)
    return bad;
  a.stride = size + 1;
  answered(pool, w, c, &a, NULL);
  return NULL;
}

static const char *on_records(pp_pool *pool, pp__worker *w,
                              const pp__frame *f) {
  pp__chunk *c = answered_chunk(w, f, PP__JOB_RECORDS);
  /* A chunk sent in place is answered with RECORDS_PUT, its results
   * already in the caller's array: records here would be dropped. */
  if (!c || c->in_place)
    return "an answer to no task it was sent";
  const pp_result *res = (const pp_result *)c->job;
  pp__reader errors;
  answer a = {.errors = &errors};
  const char *bad = pp__decode_records_done(f, c->count, res->rec.out_size,
                                            &a.records, &a.nerr, &errors);
  if (bad)
    return bad;
  answered(pool, w, c, &a, NULL);
  return NULL;
}

/* The answer to a chunk done in place: the worker wrote its results into
 * the caller's array already, or says why it could not. */
static const char *on_records_put(pp_pool *pool, pp__worker *w,
                                  const pp__frame *f) {
  pp__chunk *c = answered_chunk(w, f, PP__JOB_RECORDS);
  if (!c || !c->in_place)
    return "an answer to no task it was sent";
  pp__reader errors;
  pp__outcome whole;
  answer a = {.errors = &errors};
  const char *bad =
      pp__decode_records_put(f, c->count, &whole, &a.nerr, &errors);
  if (bad)
    return bad;
  answered(pool, w, c, &a, whole.status == PP_OK ? NULL : &whole);
  return NULL;
}

/* A frame of an answer that comes in pieces (PP__FRAME_MORE): each
 * piece's payload is kept, and the last makes `f` the whole answer's frame,
 * read as a frame whole is (which copies out what it keeps: the pieces'
 * bytes are dropped after). `*kept` when `f` was a piece, and there is
 * nothing more to do with it. NULL, or what is wrong. */
static const char *on_piece(pp_pool *pool, unsigned slot, pp__frame *f,
                            int *kept) {
  pp__worker *w = &pool->workers[slot];
  if (w->piece_type && f->type != w->piece_type)
    return "an answer in pieces of different kinds";
  int calls = f->type == PP__F_RESULTS || f->type == PP__F_VALUES;
  pp__chunk *c = answered_chunk(w, f, calls ? PP__JOB_CALLS : PP__JOB_RECORDS);
  /* What the answer's own reader refuses, refused at its first piece. */
  if (!c || (f->type == PP__F_VALUES && c->job->kind != PP__JOB_IMAP) ||
      (f->type == PP__F_RECORDS_PUT && !c->in_place) ||
      (f->type == PP__F_RECORDS_DONE && c->in_place))
    return "a piece of an answer to no task it was sent";
  *kept = (f->flags & PP__FRAME_MORE) != 0;
  if (pp__buf_append(&w->pieces, f->payload, f->len) != PP_OK) {
    *kept = 1;
    kill_worker(pool, w, slot, PP_ENOMEM,
                pp__strdup("out of memory reading the worker's answer"));
    return NULL;
  }
  w->piece_type = *kept ? f->type : 0;
  if (!*kept) {
    f->payload = pp__buf_head(&w->pieces);
    f->len = pp__buf_len(&w->pieces);
  }
  return NULL;
}

static const char *on_init_failed(pp_pool *pool, pp__worker *w,
                                  const pp__frame *f) {
  pp__reader r;
  pp__reader_init(&r, f->payload, f->len);
  pp__get_u8(&r);
  size_t len;
  const unsigned char *msg = pp__get_str32(&r, &len);
  if (r.bad || w->state != PP__W_CONFIGURING)
    return "an initializer report out of place";
  set_broken(pool, PP_EINITIALIZER,
             pp__format("the initializer '%s' failed in worker %ld: %.*s",
                        pool->initializer, w->pid, (int)len,
                        msg ? (const char *)msg : ""));
  w->state = PP__W_RETIRING; /* it exits by itself */
  return NULL;
}

/* ---- the handshake ---- */

/* Sends the worker a fresh random nonce to prove the pool's key on. */
static void send_challenge(pp_pool *pool, unsigned slot) {
  pp__worker *w = &pool->workers[slot];
  pp__buf *b = &pool->scratch;
  size_t at;
  w->state = PP__W_HANDSHAKING;
  w->challenged = pp__clock_us();
  pp__buf_clear(b);
  pp_status st = pp__random_bytes(w->nonce, sizeof w->nonce);
  if (st != PP_OK) {
    set_broken(pool, st,
               pp__strdup("could not read random bytes for the worker "
                          "handshake from the operating system"));
    kill_worker(pool, w, slot, st, NULL);
    return;
  }
  st = pp__frame_begin(b, PP__F_CHALLENGE, 0, &at);
  if (st == PP_OK)
    st = pp__buf_append(b, w->nonce, sizeof w->nonce);
  if (st == PP_OK)
    st = pp__frame_end(b, at);
  if (st == PP_OK && pp__test.challenge_version)
    pp__buf_head(b)[at + 4] = (unsigned char)pp__test.challenge_version;
  if (st == PP_OK)
    st = pp__backend_send(pool->backend, slot, pp__buf_head(b), pp__buf_len(b));
  /* PP_EOF: the worker is gone already; PP_ESTATE: its start failed at
   * once. Either way its events follow. */
  if (st != PP_OK && st != PP_EOF && st != PP_ESTATE)
    kill_worker(pool, w, slot, st, NULL);
}

/* Stops a worker that did not prove the pool's key: it never gets the
 * configuration, let alone a task. */
static void refuse(pp_pool *pool, unsigned slot, const char *what) {
  pp__worker *w = &pool->workers[slot];
  w->refused = 1;
  w->refusal = what;
  kill_worker(pool, w, slot, PP_EPROTOCOL,
              pp__format("worker %ld failed the handshake (%s); it was "
                         "stopped",
                         w->pid, what));
}

/* Offers a worker its lanes, once, when it first needs them (want_lanes()):
 * a segment it maps as it reads this frame, in its place among the work.
 * Without one (none wanted, or none to be had here) all goes through the
 * channel, only slower. The parent uses the lanes once LANES_TAKEN says
 * the worker mapped them; work sent before goes through the channel. */
static void offer_lanes(pp_pool *pool, unsigned slot) {
  pp__worker *w = &pool->workers[slot];
  char token[PP__SHM_TOKEN_MAX];
  w->lanes_offered = 1;
  if (!pool->lane_size ||
      pp__backend_shm_create(pool->backend, slot,
                             pp__segment_size(pool->lane_size), &w->shm,
                             token) != PP_OK)
    return;
  /* The control page is written from the start; the lanes' and the rings'
   * pages get memory as they come into use. */
  if (pp__shm_back(w->shm, 0, PP__LANE_CONTROL) != PP_OK) {
    pp__shm_free(w->shm);
    w->shm = NULL;
    return;
  }
  pp__buf *b = &w->batch;
  size_t before = pp__buf_len(b), at;
  pp_status st = pp__frame_begin(b, PP__F_LANES, 0, &at);
  if (st == PP_OK)
    st = pp__put_str16(b, token);
  if (st == PP_OK)
    st = pp__put_u32(b, (uint32_t)pool->lane_size);
  if (st == PP_OK)
    st = pp__frame_end(b, at);
  if (st != PP_OK) {
    b->end = b->start + before; /* no half frame */
    pp__shm_free(w->shm);
    w->shm = NULL;
  }
  pool->batched = 1;
}

/* A worker's lanes are made when it first needs them: at its second chunk
 * (PP__LANES_AFTER), or a frame to or from it that a lane would carry.
 * Made at its proof, as they were, the two segments of a fork pool of two
 * (made, mapped, unmapped and freed) were a sixth of its start-up:
 * `pp_bench_startup 200 --ctx fork --phases` 0.93-1.15 ms with them,
 * 0.80-0.94 without. */
#define PP__LANES_AFTER 2

static void want_lanes(pp_pool *pool, pp__worker *w) {
  /* Not for a worker on its way out: its big answers still come in. */
  if (!w->lanes_offered && pool->lane_size && w->state == PP__W_READY)
    offer_lanes(pool, (unsigned)(w - pool->workers));
}

/* A worker that mapped its segment moves to the rings once it has been
 * sent this many chunks: a pool that runs a task or two never pays for
 * them (their first pages, given memory and touched on both sides, and the
 * switch: about 0.1 ms of a fork pool's start-up), a busy one soon stops
 * paying a system call per frame. */
#define PP__RING_AFTER 8

/* Our frames go through the down ring after RING, which the channel
 * carries behind whatever it still has to; the worker's come through the
 * up ring after its RINGED. Both rings get their memory first: where none
 * can be had (a memory cgroup's limit, a full /dev/shm) the worker stays
 * on its channel, which needs none, rather than meet the want halfway (64
 * KiB of posix_fallocate, once in a worker's life, after its first
 * chunks). 0 when the worker had to be stopped instead: without memory for
 * RING it would wait on the channel for good. */
static int ring_switch(pp_pool *pool, pp__worker *w) {
  unsigned slot = (unsigned)(w - pool->workers);
  w->ring_tried = 1;
  if (pp__test.rings_unbacked ||
      pp__shm_back(w->shm, pp__rings_offset(pool->lane_size),
                   PP__RINGS_BYTES) != PP_OK)
    return 1;
  pp__rings_init(pp__shm_base(w->shm), pool->lane_size, 1, &w->rings);
  pp__buf *b = &w->batch;
  size_t at;
  pp_status st = pp__frame_begin(b, PP__F_RING, 0, &at);
  if (st == PP_OK)
    st = pp__frame_end(b, at);
  if (st != PP_OK) {
    kill_worker(pool, w, slot, st,
                pp__strdup("out of memory switching the worker's channel to "
                           "shared memory"));
    return 0;
  }
  pp__backend_send(pool->backend, slot, pp__buf_head(b), pp__buf_len(b));
  pp__buf_clear(b);
  w->ring_down = 1;
  return 1;
}

/* LANES_TAKEN says whether the worker mapped its lanes. NULL, or what is
 * wrong with it. */
static const char *lanes_taken(pp_pool *pool, pp__worker *w,
                               const pp__frame *f) {
  if (!w->shm || w->down.base || f->len != 1)
    return "a report on shared memory out of place";
  if (f->payload[0] == 1) {
    pp__lanes_init(pp__shm_base(w->shm), w->shm, pool->lane_size, &w->down,
                   &w->up);
  } else {
    pp__shm_free(w->shm);
    w->shm = NULL;
  }
  return NULL;
}

/* The first frame of a worker: its proof. 1 when it was right and the
 * worker may go on to its configuration. */
static int check_proof(pp_pool *pool, unsigned slot, const pp__frame *f) {
  pp__worker *w = &pool->workers[slot];
  if (f->type != PP__F_PROOF) {
    refuse(pool, slot, "it sent another message before its proof");
    return 0;
  }
  if (!pp__handshake_check(pool->key, w->nonce, f->payload, f->len)) {
    refuse(pool, slot, "its proof of the pool's key was wrong");
    return 0;
  }
  /* The configuration goes out with this round's batch. Without an
   * initializer the worker has nothing to fail or wait for: it takes work
   * at once, which shares that write, and its READY is owed. Work that
   * reaches it before READY has not started (a worker answers in order),
   * so if it dies first that work goes back to the queue. */
  if (pp__buf_append(&w->batch, pool->config_frame, pool->config_len) !=
      PP_OK) {
    kill_worker(pool, w, slot, PP_ENOMEM,
                pp__strdup("out of memory configuring the worker"));
    return 0;
  }
  pool->batched = 1;
  if (pool->initializer[0]) {
    w->state = PP__W_CONFIGURING;
    w->configured = pp__clock_us();
  } else {
    w->state = PP__W_READY;
    w->ready_owed = 1;
  }
  return 1;
}

/* A frame of another protocol version: every worker of this executable
 * would send the same, so the pool cannot work. */
static void version_mismatch(pp_pool *pool, unsigned slot, unsigned theirs) {
  pp__worker *w = &pool->workers[slot];
  set_broken(pool, PP_EPROTOCOL,
             pp__format("protocol version mismatch: worker %ld speaks "
                        "version %u of the procpool wire protocol, this "
                        "process version %d; is the worker executable the "
                        "same build as this program?",
                        w->pid, theirs, PP__WIRE_VERSION));
  kill_worker(pool, w, slot, PP_EPROTOCOL,
              pp__format("worker %ld: protocol version mismatch (it speaks "
                         "version %u, this process version %d)",
                         w->pid, theirs, PP__WIRE_VERSION));
}

/* Reads the frames at the head of `in`, the channel's input or what the up
 * ring brought. The channel's stops at RINGED, which switched the worker
 * to the rings: what follows it there is doorbells. */
static void read_frames(pp_pool *pool, unsigned slot, pp__buf *in) {
  pp__worker *w = &pool->workers[slot];
  while (in && w->state != PP__W_FREE && !w->killed_by_pool) {
    pp__frame f;
    int complete;
    /* Before its proof a worker is a stranger: it may not make the parent
     * buffer more than a proof. */
    size_t limit =
        w->state == PP__W_HANDSHAKING ? PP__SHA256_SIZE : pool->max_message;
    pp_status st = pp__frame_peek(in, limit, &f, &complete);
    if (st == PP_ENOTSUP && w->state == PP__W_HANDSHAKING) {
      version_mismatch(pool, slot, pp__frame_version(in));
      return;
    }
    if (st == PP_ENOTSUP) {
      char what[96];
      snprintf(what, sizeof what,
               "protocol version mismatch: it speaks version %u, this "
               "process version %u",
               pp__frame_version(in), PP__WIRE_VERSION);
      protocol_error(pool, slot, what);
      return;
    }
    if (st != PP_OK && w->state == PP__W_HANDSHAKING) {
      refuse(pool, slot, "it sent a malformed message");
      return;
    }
    if (st == PP_ETOOBIG) {
      oversized(pool, slot, f.len);
      return;
    }
    if (st != PP_OK) {
      protocol_error(pool, slot, "a bad frame header");
      return;
    }
    if (!complete)
      return;
    if (w->state == PP__W_HANDSHAKING) {
      if (!check_proof(pool, slot, &f))
        return;
      pp__buf_consume(in, PP__WIRE_HEADER_SIZE + f.len);
      continue;
    }
    size_t wire_len = PP__WIRE_HEADER_SIZE + f.len;
    uint32_t lane_end = 0;
    const char *bad = pp__lane_resolve(&w->up, &f, &lane_end);
    if (f.len >= PP__LANE_MIN && !(f.flags & PP__FRAME_LANE))
      want_lanes(pool, w); /* its answers are big */
    if (!bad && f.len > pool->max_message) {
      oversized(pool, slot, f.len);
      return;
    }
    int kept = 0, pieces = w->piece_type || (f.flags & PP__FRAME_MORE);
    if (!bad && pieces)
      bad = on_piece(pool, slot, &f, &kept);
    if (w->killed_by_pool)
      return; /* no memory for the pieces */
    switch (bad || kept ? 0 : f.type) {
    case 0:
      break;
    case PP__F_READY:
      if (w->state == PP__W_CONFIGURING) {
        w->state = PP__W_READY;
        pool->early_deaths = pool->start_failures = 0;
        w->parent_mem = f.len >= 2 && f.payload[1] == 1;
      } else if (w->ready_owed && w->state == PP__W_READY) {
        w->ready_owed = 0;
        pool->early_deaths = pool->start_failures = 0;
        w->parent_mem = f.len >= 2 && f.payload[1] == 1;
      } else if (w->state != PP__W_RETIRING) {
        bad = "a ready report out of place";
      }
      w->ready_owed = 0;
      break;
    case PP__F_INIT_FAILED:
      bad = on_init_failed(pool, w, &f);
      break;
    case PP__F_RESULTS:
      bad = on_results(pool, w, &f);
      break;
    case PP__F_VALUES:
      bad = on_values(pool, w, &f);
      break;
    case PP__F_RECORDS_DONE:
      bad = on_records(pool, w, &f);
      break;
    case PP__F_RECORDS_PUT:
      bad = on_records_put(pool, w, &f);
      break;
    case PP__F_PROOF:
      bad = "a second proof of the key";
      break;
    case PP__F_LANES_TAKEN:
      bad = lanes_taken(pool, w, &f);
      break;
    case PP__F_LEAVING:
      if ((w->state == PP__W_READY || w->state == PP__W_RETIRING) && !f.len)
        w->leaving = 1;
      else
        bad = "a notice of leaving out of place";
      break;
    case PP__F_RINGED:
      /* From here its frames come through the up ring. */
      if (w->ring_down && !w->ring_up && in != &w->ring_in && !f.len)
        w->ring_up = 1;
      else
        bad = "a switch to shared memory out of place";
      break;
    default:
      bad = "a frame only the parent sends";
    }
    if (bad) {
      protocol_error(pool, slot, bad);
      return;
    }
    if (pieces && !kept)
      pp__buf_clear(&w->pieces);
    /* Decoded and copied out: the worker may reuse those lane bytes. */
    if (f.flags & PP__FRAME_LANE)
      pp__lane_publish(pp__shm_base(w->shm), lane_end);
    pp__buf_consume(in, wire_len);
    if (w->ring_up && in != &w->ring_in)
      return;
  }
}

static void ring_bell(pp_pool *pool, unsigned slot) {
  static const unsigned char bell = 0;
  pp__backend_send(pool->backend, slot, &bell, 1);
}

/* Reads what the worker's up ring holds. Also after its death: what it
 * published before is its, and the chunk it was running is the first one
 * those answers leave unanswered. */
static void drain_ring(pp_pool *pool, unsigned slot) {
  pp__worker *w = &pool->workers[slot];
  if (!w->ring_down || w->state == PP__W_FREE || w->killed_by_pool)
    return;
  size_t n = 0;
  int bell = 0;
  pp_status st = w->ring_fault == PP_EPROTOCOL ? PP_EPROTOCOL
                 : w->ring_up ? pp__ring_take(&w->rings, &w->ring_in, &n, &bell)
                              : PP_OK;
  if (st == PP_EPROTOCOL) {
    protocol_error(pool, slot, "a position outside its shared-memory ring");
    return;
  }
  if (st != PP_OK) {
    kill_worker(pool, w, slot, PP_ENOMEM,
                pp__strdup("out of memory reading the worker's answers"));
    return;
  }
  if (bell)
    ring_bell(pool, slot);
  if (n)
    read_frames(pool, slot, &w->ring_in);
}

static void drain_rings(pp_pool *pool) {
  for (unsigned i = 0; i < pool->nslots; i++)
    drain_ring(pool, i);
}

static void on_input(pp_pool *pool, unsigned slot) {
  pp__worker *w = &pool->workers[slot];
  pp__buf *in = pp__backend_input(pool->backend, slot);
  if (!w->ring_up)
    read_frames(pool, slot, in);
  if (w->ring_up) {
    if (in)
      pp__buf_clear(in); /* doorbells */
    drain_ring(pool, slot);
  }
}

static void on_event(pp_pool *pool, const pp__event *ev) {
  pp__worker *w = ev->type == PP__EV_WAKE || ev->type == PP__EV_BROKEN
                      ? NULL
                      : &pool->workers[ev->slot];
  switch (ev->type) {
  case PP__EV_WAKE:
    break;
  case PP__EV_STARTED:
    w->pid = ev->pid; /* its challenge went out with the start */
    break;
  case PP__EV_START_FAILED:
    pp__buf_free(&w->batch);
    memset(w, 0, sizeof *w);
    start_failed(pool, ev->status);
    break;
  case PP__EV_INPUT:
    on_input(pool, ev->slot);
    break;
  case PP__EV_CLOSED:
    drain_ring(pool, ev->slot);
    w->closed = 1;
    /* A worker that closed its channel but lives on is of no use. One whose
     * task closed it exits by itself in a moment, with a code that says so
     * (describe_end()); one still there after a grace period is killed, so
     * that its end is known and reported. */
    if (!w->exited && w->state != PP__W_RETIRING && !w->kill_at)
      w->kill_at = pp__clock_us() + PP__CLOSED_GRACE_US;
    break;
  case PP__EV_EXITED:
    drain_ring(pool, ev->slot);
    w->exited = 1;
    w->exit = ev->exit;
    break;
  case PP__EV_BROKEN:
    set_broken(pool, ev->status, launcher_broke(ev));
    for (unsigned i = 0; i < pool->nslots; i++) {
      pp__worker *x = &pool->workers[i];
      if (x->state == PP__W_FREE)
        continue;
      pp__backend_hangup(pool->backend, i);
      /* The backend stops them all, the workers forked here too: the
       * message of the task each ran says they went with the launcher. */
      x->closed = x->exited = 1;
      x->exit.signaled = 0;
      x->exit.code = -1;
      x->exit.with_launcher = 1;
    }
    break;
  }
  if (w && w->state != PP__W_FREE && w->closed && w->exited)
    worker_finished(pool, ev->slot);
}

/* ---- dispatch ---- */

/* Appends bytes to the worker's batch. Big ones go out at once instead,
 * after what the batch already holds: copying them into the batch would
 * cost more than the write it saves. */
#define PP__BATCH_COPY_MAX ((size_t)64 << 10)

static pp_status send_frame(pp_pool *pool, unsigned slot, const void *data,
                            size_t len) {
  pp__buf *b = &pool->workers[slot].batch;
  if (len <= PP__BATCH_COPY_MAX || pool->workers[slot].ring_down)
    return pp__buf_append(b, data, len);
  pp_status st = PP_OK;
  if (pp__buf_len(b))
    st = pp__backend_send(pool->backend, slot, pp__buf_head(b), pp__buf_len(b));
  pp__buf_clear(b);
  return st == PP_OK ? pp__backend_send(pool->backend, slot, data, len) : st;
}

/* A big payload (`a` then `b`) goes into the worker's down lane when there
 * is room, and a lane frame saying where into its batch: 1. Otherwise 0,
 * and the caller sends the frame through the channel. `b` lands aligned as
 * a records task's array must be. */
static int send_in_lane(pp_pool *pool, pp__worker *w, pp__chunk *c,
                        pp__frame_type type, const void *a, size_t na,
                        const void *b, size_t nb, pp_status *st) {
  uint32_t pos;
  if (na + nb >= PP__LANE_MIN)
    want_lanes(pool, w);
  unsigned char *dst =
      na + nb >= PP__LANE_MIN
          ? pp__lane_reserve_aligned(&w->down, na + nb, (uint32_t)na,
                                     PP_RECORDS_ALIGN, &pos)
          : NULL;
  c->in_lane = dst != NULL;
  if (!dst)
    return 0;
  pp__copier_copy(pool->copier, dst, a, na, 0);
  pp__copier_copy(pool->copier, dst + na, b, nb, 0);
  c->lane_end = pos + (uint32_t)(na + nb);
  *st = pp__lane_put_frame(&w->batch, type, pp__chunk_id(c), pos, na + nb);
  return 1;
}

/* Big lent arguments go into a lane by the pool's copier. */
static void copy_into_lane(void *copier, void *dst, const void *src,
                           size_t len) {
  pp__copier_copy(copier, dst, src, len, 0);
}

/* A chunk whose arguments a blocking call lent: encoded now, into the
 * worker's down lane when big and there is room (no copy of the arguments
 * is ever made on the caller's side), else into its batch. */
static pp_status send_lent_calls(pp_pool *pool, unsigned slot, pp__chunk *c) {
  const pp_result *r = (const pp_result *)c->job;
  const pp_args *calls = r->lent_calls ? r->lent_calls + c->first : NULL;
  const pp_bytes *single = r->lent_single ? r->lent_single + c->first : NULL;
  pp__worker *w = &pool->workers[slot];
  size_t size = pp__chunk_frame_len(c); /* pp__calls_frame_size() */
  uint32_t pos;
  if (size - PP__WIRE_HEADER_SIZE >= PP__LANE_MIN)
    want_lanes(pool, w);
  unsigned char *dst = size - PP__WIRE_HEADER_SIZE >= PP__LANE_MIN
                           ? pp__lane_reserve(&w->down, size, &pos)
                           : NULL;
  c->in_lane = dst != NULL;
  if (dst) {
    /* The whole frame goes in; the lane frame points past its header. */
    c->lane_end = pos + (uint32_t)size;
    pp_status st =
        pp__calls_frame_encode(dst, size, r->job.task, pp__chunk_id(c), calls,
                               single, c->count, copy_into_lane, pool->copier);
    return st == PP_OK
               ? pp__lane_put_frame(&w->batch, PP__F_CALLS, pp__chunk_id(c),
                                    pos + PP__WIRE_HEADER_SIZE,
                                    size - PP__WIRE_HEADER_SIZE)
               : st;
  }
  pp_status st = pp__buf_reserve(&w->batch, size);
  if (st == PP_OK)
    st = pp__calls_frame_encode(pp__buf_tail(&w->batch), size, r->job.task,
                                pp__chunk_id(c), calls, single, c->count, NULL,
                                NULL);
  if (st == PP_OK)
    pp__buf_commit(&w->batch, size);
  return st;
}

static pp_status send_calls(pp_pool *pool, unsigned slot, pp__chunk *c) {
  if (!c->frame)
    return send_lent_calls(pool, slot, c);
  pp_status st;
  if (send_in_lane(pool, &pool->workers[slot], c, pp__frame_type_of(c->frame),
                   c->frame + PP__WIRE_HEADER_SIZE, c->payload_len, NULL, 0,
                   &st))
    return st;
  return send_frame(pool, slot, c->frame, pp__chunk_frame_len(c));
}

/* A records chunk left where it is (records in place): its head `head`,
 * then where its records and its results lie in this process. The worker
 * reads and writes them there, so the chunk is done only once it answers
 * or is gone (see handle_terminate()). */
static pp_status send_records_at(pp__worker *w, pp__chunk *c,
                                 const pp__buf *head, const void *in) {
  const pp_result *r = (const pp_result *)c->job;
  uint64_t where[2] = {(uint64_t)(uintptr_t)in,
                       (uint64_t)(uintptr_t)((unsigned char *)r->rec.out +
                                             c->first * r->rec.out_size)};
  pp__buf *b = &w->batch;
  size_t before = pp__buf_len(b), at;
  pp_status st = pp__frame_begin(b, PP__F_RECORDS_AT, pp__chunk_id(c), &at);
  if (st == PP_OK)
    st = pp__buf_append(b, pp__buf_head(head), pp__buf_len(head));
  for (int i = 0; st == PP_OK && i < 2; i++) {
    st = pp__put_u32(b, (uint32_t)where[i]);
    if (st == PP_OK)
      st = pp__put_u32(b, (uint32_t)(where[i] >> 32));
  }
  if (st == PP_OK)
    st = pp__frame_end(b, at);
  if (st != PP_OK) {
    b->end = b->start + before; /* no half frame */
    return st;
  }
  c->in_place = 1;
  return PP_OK;
}

/* A records chunk: its fields, then its records straight from the caller's
 * array. */
static pp_status send_records(pp_pool *pool, unsigned slot, pp__chunk *c) {
  const pp_result *r = (const pp_result *)c->job;
  pp__buf *f = &pool->scratch;
  pp__buf_clear(f);
  pp_status st = pp__put_str16(f, r->job.task);
  if (st == PP_OK)
    st = pp__put_u32(f, (uint32_t)c->count);
  if (st == PP_OK)
    st = pp__put_u32(f, (uint32_t)r->rec.in_size);
  if (st == PP_OK)
    st = pp__put_u32(f, (uint32_t)r->rec.out_size);
  if (st == PP_OK)
    st = pp__put_u32(f, (uint32_t)r->rec.nfields);
  for (size_t i = 0; st == PP_OK && i < r->rec.nfields; i++)
    st = pp__put_u32(f, (uint32_t)r->rec.field_sizes[i]);
  /* Where the chunk starts in the map, for a records task. */
  if (st == PP_OK)
    st = pp__put_u32(f, (uint32_t)((uint64_t)c->first & 0xffffffffu));
  if (st == PP_OK)
    st = pp__put_u32(f, (uint32_t)((uint64_t)c->first >> 32));
  if (st != PP_OK)
    return st;
  size_t data = c->count * r->rec.in_size;
  const unsigned char *in =
      (const unsigned char *)r->rec.in + c->first * r->rec.in_size;
  pp__worker *w = &pool->workers[slot];
  if (w->parent_mem && (data >= PP__IN_PLACE_MIN ||
                        c->count * r->rec.out_size >= PP__IN_PLACE_MIN)) {
    st = send_records_at(w, c, f, in);
    pool->chunks_in_place += st == PP_OK;
    return st;
  }
  if (send_in_lane(pool, w, c, PP__F_RECORDS, pp__buf_head(f), pp__buf_len(f),
                   in, data, &st))
    return st;
  pp__buf *b = &w->batch;
  size_t at;
  st = pp__frame_begin(b, PP__F_RECORDS, pp__chunk_id(c), &at);
  if (st == PP_OK)
    st = pp__buf_append(b, pp__buf_head(f), pp__buf_len(f));
  if (st != PP_OK)
    return st;
  /* The header says how many record bytes follow it. */
  pp__patch_u32(b, at + 8, (uint32_t)(pp__buf_len(f) + data));
  return send_frame(pool, slot, in, data);
}

size_t pp__pipeline_cap(const pp__worker *w) {
  if (!w->service_known || w->service_x16 >= 16 * PP__PIPELINE_US)
    return 1;
  if (w->service_x16 <= 16 * PP__PIPELINE_US / PP__PIPELINE_MAX)
    return PP__PIPELINE_MAX;
  size_t cap = (size_t)(16 * PP__PIPELINE_US / w->service_x16);
  return cap < 2 ? 2 : cap;
}

/* The ready worker with the fewest chunks, among those with room. */
static int pick_worker(const pp_pool *pool, unsigned *slot) {
  size_t best = (size_t)-1;
  for (unsigned i = 0; i < pool->nslots; i++) {
    const pp__worker *w = &pool->workers[i];
    /* One that said LEAVING would only give its chunks back. */
    if (w->state != PP__W_READY || w->closed || w->leaving ||
        w->outstanding >= best || w->outstanding >= pp__pipeline_cap(w))
      continue;
    if (pool->maxtasksperchild && w->chunks_sent >= pool->maxtasksperchild)
      continue;
    best = w->outstanding;
    *slot = i;
  }
  return best != (size_t)-1;
}

/* Chunks go to workers' batches; each batch then leaves in one write. */
static void dispatch(pp_pool *pool) {
  int batched = 0;
  apr_time_t now = 0; /* read once, at the first chunk sent */
  while (pool->queue_head) {
    pp__chunk *c = pool->queue_head;
    if (c->count == 0) { /* an empty map completes at once */
      pp__queue_remove_locked(pool, c);
      pp__outcome none = {PP_OK, NULL, 0};
      chunk_done(pool, c, NULL, &none);
      continue;
    }
    unsigned slot = 0;
    if (!pick_worker(pool, &slot))
      break;
    pp__queue_remove_locked(pool, c);
    pp__worker *w = &pool->workers[slot];
    if (w->tail) {
      w->tail->next = c;
    } else {
      if (!now)
        now = pp__clock_us();
      w->head = c;
      w->head_started = now;
      w->head_unsent = 1;
      pool->heads_unsent = 1;
    }
    w->tail = c;
    w->outstanding++;
    w->chunks_sent++;
    batched = 1;
    if (w->chunks_sent >= PP__LANES_AFTER)
      want_lanes(pool, w);
    /* At the first chunk from the eighth on that finds the lanes mapped
     * (LANES_TAKEN may come after the eighth is sent), once. */
    if (w->chunks_sent >= PP__RING_AFTER && w->down.base && !w->ring_tried &&
        !ring_switch(pool, w))
      continue; /* its end accounts for the chunk */
    /* Where its frame starts in the down ring: the bytes put there so far
     * and those of the batch before it (all of the batch goes there). */
    c->in_ring = w->ring_down;
    if (w->ring_down)
      c->ring_at = w->rings.out.pos + (uint32_t)pp__buf_len(&w->batch);
    /* A failed send means the channel is closing (or memory ran out, and
     * the worker is stopped below): either way its end comes, and the
     * chunk is accounted for there. */
    pp_status st = c->job->kind == PP__JOB_RECORDS ? send_records(pool, slot, c)
                                                   : send_calls(pool, slot, c);
    if (st == PP_ENOMEM || st == PP_ETOOBIG)
      kill_worker(pool, w, slot, st,
                  pp__strdup("out of memory queueing work for the worker"));
  }
  pool->batched |= batched;
}

/* Sends each worker's batch in one write. Called without the lock: the
 * batches and the backend belong to this thread alone, and callers that
 * queue work should not wait on our system calls. */
static void flush_batches(pp_pool *pool) {
  if (!pool->batched)
    return;
  pool->batched = 0;
  for (unsigned i = 0; i < pool->nslots; i++) {
    pp__worker *w = &pool->workers[i];
    pp__buf *b = &w->batch;
    if (!pp__buf_len(b))
      continue;
    if (!w->ring_down) {
      pp__backend_send(pool->backend, i, pp__buf_head(b), pp__buf_len(b));
      pp__buf_clear(b);
      continue;
    }
    /* What does not fit waits for room, which the worker rings for. An
     * error is for drain_ring() to report, under the lock. */
    size_t n = 0;
    int bell = 0;
    pp_status st =
        pp__ring_put(&w->rings, pp__buf_head(b), pp__buf_len(b), &n, &bell);
    if (st != PP_OK)
      w->ring_fault = st;
    pp__buf_consume(b, n);
    if (bell)
      ring_bell(pool, i);
    if (pp__buf_len(b) && !w->ring_fault)
      pool->batched = 1;
  }
}

/* What the scheduler thread waits for from a worker's rings when it
 * sleeps: its answers once they come that way, room for frames that wait
 * for it. */
static unsigned ring_wants(const pp__worker *w) {
  if (!w->ring_down || w->state == PP__W_FREE)
    return 0;
  return (w->ring_up ? PP__RING_DATA : 0) |
         (pp__buf_len(&w->batch) ? PP__RING_SPACE : 0);
}

/* Before the scheduler thread sleeps: tells each worker on the rings what
 * to ring for; 0 when some of it came meanwhile, and it must not sleep. */
static int rings_may_sleep(pp_pool *pool) {
  int any = 0;
  for (unsigned i = 0; i < pool->nslots; i++) {
    pp__worker *w = &pool->workers[i];
    if (w->ring_down && w->state != PP__W_FREE) {
      pp__rings_say_waiting(&w->rings, ring_wants(w));
      any = 1;
    }
  }
  for (unsigned i = 0; any && i < pool->nslots; i++) {
    pp__worker *w = &pool->workers[i];
    unsigned what = ring_wants(w);
    if (what && pp__rings_ready(&w->rings, what))
      return 0;
  }
  return 1;
}

static void rings_awake(pp_pool *pool) {
  for (unsigned i = 0; i < pool->nslots; i++) {
    pp__worker *w = &pool->workers[i];
    if (w->ring_down && w->state != PP__W_FREE)
      pp__rings_awake(&w->rings);
  }
}

/* ---- the pool's state ---- */

static int work_left(const pp_pool *pool) {
  return pool->inflight_jobs > 0 || pool->queue_head != NULL;
}

static int holds_in_place(const pp__worker *w) {
  for (const pp__chunk *c = w->head; c; c = c->next)
    if (c->in_place)
      return 1;
  return 0;
}

static void handle_terminate(pp_pool *pool) {
  if (pool->terminate_handled)
    return;
  pool->terminate_handled = 1;
  for (unsigned i = 0; i < pool->nslots; i++) {
    pp__worker *w = &pool->workers[i];
    /* A worker may go on writing a chunk done in place into the caller's
     * array until it is gone, and the caller may free the array once the
     * call returns: such a worker's chunks fail when it has ended
     * (worker_finished()), the others' now. */
    if (!holds_in_place(w))
      fail_outstanding(pool, w, PP_ETERMINATED, "the pool was terminated");
    if (w->state == PP__W_STARTING)
      continue; /* killed once it starts */
    kill_worker(pool, w, i, PP_ETERMINATED, NULL);
  }
  fail_queue(pool, PP_ETERMINATED, "the pool was terminated");
  for (pp_iter *it = pool->active_iters; it; it = it->next_active)
    pp__iter_cut_short_locked(it, PP_ETERMINATED, "the pool was terminated");
}

static void handle_broken(pp_pool *pool) {
  fail_queue(pool, pool->broken, pool->broken_message);
  for (pp_iter *it = pool->active_iters; it; it = it->next_active)
    pp__iter_cut_short_locked(it, pool->broken, pool->broken_message);
  for (unsigned i = 0; i < pool->nslots; i++)
    if (!pool->workers[i].outstanding)
      retire(pool, &pool->workers[i], i);
}

/* Cancelled work still queued never runs; a cancelled chunk that a worker
 * is running costs that worker its life. Chunks queued behind it in a
 * worker are answered normally and then discarded (see on_results). A
 * freed iterator's queued chunks never run either, but the ones its
 * workers hold finish: nobody asked to stop them. Only the dropped chunks
 * are visited (each job on `drops` lists its own), not the whole queue:
 * cancels made one at a time would each have cost a walk over it. */
static void handle_cancels(pp_pool *pool) {
  while (pool->drops) {
    pp__job *job = pool->drops;
    pp__chunk *c = job->queued;
    pp__queue_remove_locked(pool, c); /* off `drops` with its last chunk */
    chunk_failed(pool, c, PP_ECANCELLED,
                 job->cancelled ? NULL : "the iterator was freed");
  }
  if (!pool->cancels)
    return;
  pool->cancels = 0;
  for (unsigned i = 0; i < pool->nslots; i++) {
    pp__worker *w = &pool->workers[i];
    if (w->head && w->head->job->cancelled && w->state == PP__W_READY)
      kill_worker(pool, w, i, PP_ECANCELLED,
                  pp__format("the call was cancelled while task '%s' ran; "
                             "worker %ld was stopped",
                             w->head->job->task, w->pid));
  }
}

/* How long until a limit falls due at `due`: more than 0, not yet; 0, due
 * by the clock but not by the time this thread last read the workers'
 * answers, so read them first; less than 0, passed. A callback or an imap
 * input function that ran long kept this thread from reading meanwhile:
 * a worker that answered in time must not be stopped for the time its
 * answer waited to be read. */
static apr_interval_time_t until_due(const pp_pool *pool, apr_time_t due,
                                     apr_time_t now) {
  if (due > now)
    return due - now;
  return due > pool->answers_at ? 0 : -1;
}

/* Kills the workers whose running chunk is past its time limit, and returns
 * how long until the next limit falls due (ms; -1: none). */
static long enforce_time_limits(pp_pool *pool) {
  apr_time_t now = pp__clock_us();
  apr_interval_time_t next = -1;
  if (pool->start_retry_at) /* wake up to start the workers again */
    next = pool->start_retry_at > now ? pool->start_retry_at - now : 0;
  for (unsigned i = 0; i < pool->nslots; i++) {
    pp__worker *w = &pool->workers[i];
    if (w->kill_at && !w->exited) {
      /* Asked to stop and still there after the grace period: killed. */
      apr_interval_time_t left = w->kill_at - now;
      if (left <= 0) {
        w->kill_at = 0;
        pp__backend_kill(pool->backend, i);
      } else if (next < 0 || left < next) {
        next = left;
      }
      continue;
    }
    if (w->state == PP__W_HANDSHAKING) {
      apr_interval_time_t limit =
          pp__test.handshake_limit_ms
              ? (apr_interval_time_t)pp__test.handshake_limit_ms * 1000
              : PP__HANDSHAKE_LIMIT_US;
      apr_interval_time_t left = until_due(pool, w->challenged + limit, now);
      if (left < 0) {
        w->refused = 1; /* counts as a failed handshake */
        w->refusal = "it did not answer the challenge in time";
        kill_worker(pool, w, i, PP_EPROTOCOL, NULL);
      } else if (next < 0 || left < next) {
        next = left;
      }
      continue;
    }
    if (w->state == PP__W_CONFIGURING && pool->init_limit) {
      /* An initializer past the pool's time limit would hang every
       * replacement the same way: it breaks the pool, as a failing one
       * does. */
      apr_interval_time_t left =
          until_due(pool, w->configured + pool->init_limit, now);
      if (left < 0) {
        set_broken(pool, PP_EINITIALIZER,
                   pp__format("the initializer '%s' did not finish within "
                              "the pool's time limit of %g s in worker %ld; "
                              "it was stopped",
                              pool->initializer, pool->time_limit, w->pid));
        kill_worker(pool, w, i, PP_EINITIALIZER, NULL);
      } else if (next < 0 || left < next) {
        next = left;
      }
      continue;
    }
    if (!w->head || w->state != PP__W_READY || !w->head->job->time_limit)
      continue;
    apr_interval_time_t left =
        until_due(pool, w->head_started + w->head->job->time_limit, now);
    if (left < 0) {
      stop_worker(pool, w, i, PP_ETIMELIMIT,
                  pp__format("task '%s' ran past its time limit of %g s; "
                             "worker %ld was stopped",
                             w->head->job->task,
                             /* as given: pp__time_limit() added 1 µs */
                             (double)(w->head->job->time_limit - 1) / 1e6,
                             w->pid));
      if (next < 0 || PP__STOP_GRACE_US < next)
        next = PP__STOP_GRACE_US; /* to kill it if it ignores the request */
    } else if (next < 0 || left < next) {
      next = left;
    }
  }
  if (next < 0)
    return -1;
  /* In milliseconds for a long, which is 32 bits on 32-bit systems and on
   * Windows: a limit of 25 days or more would wrap. A wait that ends early
   * only looks again. */
  next = next / 1000 + 1;
  return next > INT32_MAX ? INT32_MAX : (long)next;
}

static void drop_finished_iters(pp_pool *pool) {
  pp_iter **link = &pool->active_iters;
  while (*link) {
    pp_iter *it = *link;
    if (it->input_done && it->job.chunks_left == 0 && !it->pulling) {
      *link = it->next_active;
      pp__iter_wake_locked(it); /* its last waiter must see it end */
      it->pool = NULL;
      pool->inflight_jobs--;
      pp__iter_release_locked(it);
    } else {
      link = &it->next_active;
    }
  }
}

/* Returns 1 when input is left to pull right away. */
static int step(pp_pool *pool) {
  int more = 0;
  if (pool->state == PP__TERMINATE)
    handle_terminate(pool);
  if (pool->broken != PP_OK)
    handle_broken(pool);
  handle_cancels(pool);
  for (pp_iter *it = pool->active_iters; it; it = it->next_active)
    more |= pp__iter_fill_locked(pool, it);
  dispatch(pool);
  /* Workers done with maxtasksperchild leave once their last answer is in. */
  for (unsigned i = 0; i < pool->nslots; i++) {
    pp__worker *w = &pool->workers[i];
    if (w->state == PP__W_READY && pool->maxtasksperchild &&
        w->chunks_done >= pool->maxtasksperchild)
      retire(pool, w, i);
  }
  drop_finished_iters(pool);
  int wanted =
      pool->state == PP__RUN || (pool->state == PP__CLOSE && work_left(pool));
  if (wanted && pool->broken == PP_OK)
    start_workers(pool);
  int over = pool->state == PP__TERMINATE ||
             (pool->state == PP__CLOSE && !work_left(pool));
  /* Neither state is ever left, and neither starts a worker: what the
   * backend keeps for starting them can go while the workers leave. Said
   * before the hang-ups: a worker that still holds what its launcher would
   * need (POSIX, the fork context) tells the pool's end from its owner's
   * death by it. */
  if (over && !pool->starts_over) {
    pool->starts_over = 1;
    pp__backend_shutdown(pool->backend);
  }
  if (pool->state == PP__CLOSE && !work_left(pool))
    for (unsigned i = 0; i < pool->nslots; i++)
      retire(pool, &pool->workers[i], i);
  return more;
}

static int finished(const pp_pool *pool) {
  if (pool->state == PP__RUN || work_left(pool) || pool->notify_head)
    return 0;
  for (unsigned i = 0; i < pool->nslots; i++)
    if (pool->workers[i].state != PP__W_FREE)
      return 0;
  return 1;
}

void pp__scheduler_prime(pp_pool *pool) {
  lock(pool);
  start_workers(pool);
  unlock(pool);
}

/* A chunk's time runs from when it leaves for its worker: the batches go
 * after this pass's callbacks and input calls, which may have kept the
 * scheduler long after the chunk was put in one. Counted from then, a
 * call that ran for microseconds failed its time limit (a callback that
 * slept 2 s, a limit of 0.5 s). */
static void restamp_unsent_heads(pp_pool *pool) {
  if (!pool->heads_unsent)
    return;
  pool->heads_unsent = 0;
  apr_time_t now = pp__clock_us();
  for (unsigned i = 0; i < pool->nslots; i++) {
    pp__worker *w = &pool->workers[i];
    if (w->head_unsent && w->head)
      w->head_started = now;
    w->head_unsent = 0;
  }
}

void *APR_THREAD_FUNC pp__scheduler_main(apr_thread_t *thread, void *arg) {
  pp_pool *pool = arg;
  pp__event events[PP__EVENTS];
  pp__spare_pool_add(pool);
  lock(pool);
  pp__atomic_ptr_set(&pool->shared->scheduler_token, pp__thread_token());
  for (;;) {
    /* Completions change what a step decides (close drains, imap windows
     * free up), so step again until nothing completes. */
    int more;
    do {
      more = step(pool);
    } while (run_callbacks(pool));
    /* The waiters of the results and iterators this pass completed or fed
     * are woken once the lock is dropped, so that a waiter does not wake
     * only to sleep again on the lock this thread holds; no other thread
     * is woken (join waits for the end). */
    if (finished(pool))
      break;
    restamp_unsent_heads(pool);
    long timeout = enforce_time_limits(pool);
    if (more)
      timeout = 0;
    /* An imap that could not begin a chunk for want of memory tries
     * again soon, whether or not anything else happens. */
    if (pool->input_retry && (timeout < 0 || timeout > PP__INPUT_RETRY_MS))
      timeout = PP__INPUT_RETRY_MS;
    pool->input_retry = 0;
    unlock(pool);
    flush_batches(pool);
    pp__wakes_signal(&pool->wakes);
    /* Spare value blocks unused for a while go back to the system, even
     * when nothing else happens; outside the lock, as freeing takes time. */
    long spares_due = pp__spare_trim();
    if (spares_due >= 0 && (timeout < 0 || spares_due < timeout))
      timeout = spares_due;
    size_t n = 0;
    int said = timeout != 0; /* the workers on the rings were told */
    if (said && !rings_may_sleep(pool))
      timeout = 0;
    pp__backend_wait(pool->backend, timeout, events, PP__EVENTS, &n);
    if (said)
      rings_awake(pool);
    lock(pool);
    /* A clock read costs about 25 ns here: three a chunk were an eighth of
     * a map of chunk size 1 (perf). */
    pool->answers_at = pp__clock_us();
    for (size_t i = 0; i < n; i++) {
      /* A worker that started while terminating is stopped at once. */
      on_event(pool, &events[i]);
      if (events[i].type == PP__EV_STARTED && pool->state == PP__TERMINATE)
        kill_worker(pool, &pool->workers[events[i].slot], events[i].slot,
                    PP_ETERMINATED, NULL);
    }
    /* The workers on the rings ring only when this thread sleeps. */
    drain_rings(pool);
  }
  pool->scheduler_done = 1;
  pp__atomic_ptr_set(&pool->shared->scheduler_token, NULL);
  pp__wakes_signal(&pool->wakes);
  pp__waiters_wake(&pool->joiners);
  unlock(pool);
  pp__spare_pool_remove(pool);
  /* Its helper thread is the scheduler's: it ends with it. */
  pp__copier_destroy(pool->copier);
  pool->copier = NULL;
  /* Returning (not apr_thread_exit, which ends in pthread_exit) keeps the
   * thread's stack unwinding ordinary for the sanitizers; the thread's
   * memory pool goes with the shared state. */
  (void)thread;
  return NULL;
}
