/* The pool's queue of chunks no worker holds yet, under the pool's lock.
 *
 * It is linked both ways, and each job lists its own queued chunks, so that
 * a cancel (or a freed iterator) takes out just its chunks: a program that
 * cancelled N queued calls one at a time, waiting for each, made the
 * scheduler walk the whole queue N times (40,000 calls: 16.6 s). A job
 * that must drop its queued chunks sits on the pool's `drops` exactly while
 * it has some, so it is never on it once it could complete (a job with a
 * chunk queued has chunks_left > 0) and be freed. */
#include "internal.h"

static void drops_add(pp_pool *pool, pp__job *job) {
  if (job->dropping)
    return;
  job->dropping = 1;
  job->drop_prev = NULL;
  job->drop_next = pool->drops;
  if (pool->drops)
    pool->drops->drop_prev = job;
  pool->drops = job;
}

static void drops_remove(pp_pool *pool, pp__job *job) {
  if (job->drop_prev)
    job->drop_prev->drop_next = job->drop_next;
  else
    pool->drops = job->drop_next;
  if (job->drop_next)
    job->drop_next->drop_prev = job->drop_prev;
  job->drop_next = job->drop_prev = NULL;
  job->dropping = 0;
}

/* A job's queued chunks are listed in queue order, linked one way
 * (`job_next`; a chunk stays small, and a map makes one for each of up to
 * millions of items: each pointer more cost a map of 100,000 one-item
 * chunks 7% of its speed, in page faults). Chunks leave the queue only at
 * its head (dispatch, a failed queue) or a whole job at a time (a cancel),
 * and either way the chunk that leaves is the first its job lists. */

/* Queued after its cancel (a worker that ended gave it back, or a freed
 * iterator's chunk being pulled then): it never runs either. */
static void drop_if_unwanted(pp_pool *pool, pp__job *job) {
  if (job->cancelled || job->unwanted)
    drops_add(pool, job);
}

void pp__queue_run_add(pp__chunk **first, pp__chunk **last, pp__chunk *c,
                       pp__job *job) {
  c->job = job;
  c->next = c->job_next = NULL;
  c->prev = *last;
  if (*last)
    (*last)->next = (*last)->job_next = c;
  else
    *first = c;
  *last = c;
}

void pp__queue_append_run_locked(pp_pool *pool, pp__chunk *first,
                                 pp__chunk *last) {
  first->prev = pool->queue_tail;
  if (pool->queue_tail)
    pool->queue_tail->next = first;
  else
    pool->queue_head = first;
  pool->queue_tail = last;
  /* The run is its job's list already, in queue order: after what the job
   * had queued before. */
  pp__job *job = first->job;
  if (job->queued_tail)
    job->queued_tail->job_next = first;
  else
    job->queued = first;
  job->queued_tail = last;
  drop_if_unwanted(pool, job);
}

void pp__queue_prepend_locked(pp_pool *pool, pp__chunk *first,
                              pp__chunk *last) {
  pp__chunk *prev = NULL;
  for (pp__chunk *c = first;; c = c->next) {
    c->prev = prev;
    prev = c;
    /* Given back by a worker that is gone, unstarted: sent nowhere now.
     * How it went before must not decide how its answer is read when it
     * goes again, perhaps another way (a replacement not yet READY takes
     * no records in place), nor how it fails from the queue (an output
     * left to a worker that wrote in place), nor what lane it releases. */
    c->in_place = c->in_lane = c->in_ring = 0;
    if (c == last)
      break;
  }
  /* Each goes in front of its job's list, the last first: they were sent
   * before anything of theirs still queued, in this order. */
  for (pp__chunk *c = last; c; c = c == first ? NULL : c->prev) {
    pp__job *job = c->job;
    c->job_next = job->queued;
    job->queued = c;
    if (!job->queued_tail)
      job->queued_tail = c;
    drop_if_unwanted(pool, job);
  }
  last->next = pool->queue_head;
  if (pool->queue_head)
    pool->queue_head->prev = last;
  else
    pool->queue_tail = last;
  pool->queue_head = first;
}

void pp__queue_remove_locked(pp_pool *pool, pp__chunk *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    pool->queue_head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    pool->queue_tail = c->prev;
  pp__job *job = c->job;
  if (job->queued == c) {
    job->queued = c->job_next;
  } else {
    /* Not the first its job lists: never so today (see above), and found
     * by a walk rather than trusted. */
    pp__chunk *before = job->queued;
    while (before && before->job_next != c)
      before = before->job_next;
    if (before)
      before->job_next = c->job_next;
    if (job->queued_tail == c)
      job->queued_tail = before;
  }
  if (!job->queued) {
    job->queued_tail = NULL;
    if (job->dropping)
      drops_remove(pool, job);
  }
  c->next = c->prev = c->job_next = NULL;
}

void pp__queue_drop_job_locked(pp_pool *pool, pp__job *job) {
  if (job->queued)
    drops_add(pool, job);
}
