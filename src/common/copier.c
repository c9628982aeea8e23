/* Big copies on the scheduler thread, shared with a helper thread.
 *
 * The scheduler copies every big argument into a worker's lane and every
 * big result out of one, and while it copies it reads no answers: with
 * large payloads it is the pool's bottleneck, and one core is all it uses.
 * A copier splits each big copy into pieces that the scheduler and one
 * helper thread take in turn, so that the other core (idle while the
 * workers wait for their next payload) copies half.
 *
 * The scheduler never waits for the helper to start: it takes pieces
 * itself from the first one on, and a job the helper has not picked up by
 * the time the scheduler ran out of pieces is simply withdrawn. So a slow,
 * busy or missing helper costs no more than copying alone, and a copy
 * never depends on the helper to end. */
#include "internal.h"

#include <apr_thread_proc.h>
#include <stdlib.h>
#include <string.h>

/* Small enough that the scheduler, done with its own pieces, waits for at
 * most one piece of the helper's; big enough that taking one is cheap. */
#define PIECE ((size_t)256 << 10)

struct pp__copier {
  apr_pool_t *mem;
  pp__mutex *lock;
  pp__cond *posted_cond; /* a job was posted, or quit */
  pp__cond *idle_cond;   /* the helper left a job */
  apr_thread_t *thread;  /* NULL until started, or when it could not be */
  int tried;             /* start() ran */
  /* under lock */
  int posted; /* a job waits for the helper to take it */
  int active; /* the helper works on the current job */
  int quit;
  /* the current job, written before it is posted */
  unsigned char *dst;
  const unsigned char *src;
  size_t len;
  size_t npieces;
  int prefault;
  pp__atomic_u32 next; /* the next piece to take */
};

/* Takes pieces of the current job until none is left. */
static void take_pieces(pp__copier *c) {
  for (;;) {
    size_t i = (size_t)pp__atomic_add(&c->next, 1);
    if (i >= c->npieces)
      return;
    size_t at = i * PIECE;
    size_t n = c->len - at < PIECE ? c->len - at : PIECE;
    if (c->prefault)
      pp__prefault(c->dst + at, n);
    memcpy(c->dst + at, c->src + at, n);
  }
}

static void *APR_THREAD_FUNC helper_main(apr_thread_t *thread, void *arg) {
  pp__copier *c = arg;
  pp__mutex_lock(c->lock);
  for (;;) {
    while (!c->posted && !c->quit)
      pp__cond_wait(c->posted_cond, c->lock);
    if (c->quit)
      break;
    c->posted = 0;
    c->active = 1;
    pp__mutex_unlock(c->lock);
    take_pieces(c);
    pp__mutex_lock(c->lock);
    c->active = 0;
    pp__cond_signal(c->idle_cond);
  }
  pp__mutex_unlock(c->lock);
  (void)thread;
  return NULL;
}

pp__copier *pp__copier_create(void) { return calloc(1, sizeof(pp__copier)); }

static void free_sync(pp__copier *c) {
  pp__cond_destroy(c->idle_cond);
  pp__cond_destroy(c->posted_cond);
  pp__mutex_destroy(c->lock);
  c->idle_cond = c->posted_cond = NULL;
  c->lock = NULL;
}

/* The helper starts with the first big copy: most pools never make one. */
static int start(pp__copier *c) {
  c->tried = 1;
  if (pp__cpu_count() < 2)
    return 0; /* a helper would only take turns with the scheduler */
  if (apr_pool_create(&c->mem, NULL) != APR_SUCCESS)
    return 0;
  if (pp__mutex_create(&c->lock, c->mem) != PP_OK ||
      pp__cond_create(&c->posted_cond, c->mem) != PP_OK ||
      pp__cond_create(&c->idle_cond, c->mem) != PP_OK ||
      pp__thread_create(&c->thread, helper_main, c, c->mem) != APR_SUCCESS) {
    free_sync(c);
    apr_pool_destroy(c->mem);
    c->mem = NULL;
    c->thread = NULL;
    return 0;
  }
  return 1;
}

void pp__copier_destroy(pp__copier *c) {
  if (!c)
    return;
  if (c->thread) {
    pp__mutex_lock(c->lock);
    c->quit = 1;
    pp__cond_signal(c->posted_cond);
    pp__mutex_unlock(c->lock);
    apr_status_t rv;
    apr_thread_join(&rv, c->thread);
    free_sync(c);
    apr_pool_destroy(c->mem);
  }
  free(c);
}

void pp__copier_copy(pp__copier *c, void *dst, const void *src, size_t len,
                     int prefault) {
  if (!c || len < PP__COPIER_MIN || (!c->thread && (c->tried || !start(c)))) {
    if (prefault)
      pp__prefault(dst, len);
    if (len)
      memcpy(dst, src, len);
    return;
  }
  pp__mutex_lock(c->lock);
  c->dst = dst;
  c->src = src;
  c->len = len;
  c->npieces = (len + PIECE - 1) / PIECE;
  c->prefault = prefault;
  pp__atomic_set(&c->next, 0);
  c->posted = 1;
  pp__cond_signal(c->posted_cond);
  pp__mutex_unlock(c->lock);
  take_pieces(c);
  /* Every piece is taken; the helper may still be copying its last one. */
  pp__mutex_lock(c->lock);
  if (c->posted)
    c->posted = 0; /* never taken: nothing of it is the helper's */
  while (c->active)
    pp__cond_wait(c->idle_cond, c->lock);
  pp__mutex_unlock(c->lock);
}
