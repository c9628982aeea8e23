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

/* `c`, already in the queue, joins its job's queued chunks. */
static void job_link(pp_pool *pool, pp__chunk *c) {
  pp__job *job = c->job;
  c->job_prev = NULL;
  c->job_next = job->queued;
  if (job->queued)
    job->queued->job_prev = c;
  job->queued = c;
  /* Queued after its cancel (a worker that ended gave it back, or a freed
   * iterator's chunk being pulled then): it never runs either. */
  if (job->cancelled || job->unwanted)
    drops_add(pool, job);
}

void pp__queue_append_locked(pp_pool *pool, pp__chunk *first, pp__chunk *last) {
  pp__chunk *prev = pool->queue_tail;
  if (prev)
    prev->next = first;
  else
    pool->queue_head = first;
  for (pp__chunk *c = first;; c = c->next) {
    c->prev = prev;
    job_link(pool, c);
    prev = c;
    if (c == last)
      break;
  }
  last->next = NULL;
  pool->queue_tail = last;
}

void pp__queue_prepend_locked(pp_pool *pool, pp__chunk *first,
                              pp__chunk *last) {
  pp__chunk *prev = NULL;
  for (pp__chunk *c = first;; c = c->next) {
    c->prev = prev;
    job_link(pool, c);
    prev = c;
    if (c == last)
      break;
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
  if (c->job_prev)
    c->job_prev->job_next = c->job_next;
  else
    job->queued = c->job_next;
  if (c->job_next)
    c->job_next->job_prev = c->job_prev;
  if (!job->queued && job->dropping)
    drops_remove(pool, job);
  c->next = c->prev = c->job_next = c->job_prev = NULL;
}

void pp__queue_drop_job_locked(pp_pool *pool, pp__job *job) {
  if (job->queued)
    drops_add(pool, job);
}
