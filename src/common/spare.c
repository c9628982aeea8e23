/* Big value blocks kept a moment after they are freed, for the next big
 * value to reuse.
 *
 * A value of megabytes in fresh memory costs the kernel a fault and a
 * zeroed page for every page before the copy can write it: on the machines
 * this was measured on, that doubled the cost of receiving a big result.
 * A program that maps big buffers does so again and again, so the blocks
 * its values leave are kept, up to SPARE_MAX_BYTES, and handed to the next
 * values of about their size. A spare unused for SPARE_KEEP_US goes back
 * to the system (the schedulers look, see pp__spare_trim()), as do all of
 * them when the last pool's scheduler ends: memory the program had in use
 * a moment ago, held a moment longer, never for good. Smaller blocks than
 * PP__BIG_VALUE are cheap to get afresh, and the allocator keeps those. */
#include "internal.h"

#include <stdlib.h>

#define SPARE_MAX_BYTES ((size_t)1 << 30)
#define SPARE_MAX_COUNT 512
#define SPARE_KEEP_US ((apr_interval_time_t)1000000)

typedef struct spare {
  void *block;
  size_t size;
  apr_time_t since; /* when it was given back */
} spare;

/* A spin lock, as the list is only ever held to move an entry or two and
 * static storage needs nothing set up. */
static pp__atomic_u32 lock_word;
static spare spares[SPARE_MAX_COUNT]; /* oldest first */
static size_t nspares, spare_bytes;
static pp_pool *live_pools; /* scheduler running; through spare_next */

static void lock(void) {
  while (!pp__atomic_try_take(&lock_word))
    apr_thread_yield();
}

static void unlock(void) { pp__atomic_give(&lock_word); }

void pp__spare_forget(void) {
  /* The blocks are the parent's, in this child's copy of its memory: left
   * alone, they cost nothing until written. */
  nspares = spare_bytes = 0;
  live_pools = NULL;
  pp__atomic_set(&lock_word, 0);
}

static void remove_at(size_t i) {
  spare_bytes -= spares[i].size;
  for (size_t k = i + 1; k < nspares; k++)
    spares[k - 1] = spares[k];
  nspares--;
}

/* A block of at least `size` bytes: a spare of about that size (never more
 * than half as big again, so a small value does not pin a huge block), or
 * fresh memory. `*got` receives its size; NULL when out of memory. */
static void *take(size_t size, size_t *got) {
  void *block = NULL;
  lock();
  size_t best = nspares;
  /* The newest first: its pages are the likeliest still in a cache. */
  for (size_t i = nspares; i-- > 0;) {
    if (spares[i].size >= size && spares[i].size - size <= size / 2 &&
        (best == nspares || spares[i].size < spares[best].size))
      best = i;
  }
  if (best < nspares) {
    block = spares[best].block;
    *got = spares[best].size;
    remove_at(best);
  }
  unlock();
  if (!block) {
    block = pp__alloc_fresh(size);
    *got = size;
  }
  return block;
}

/* Keeps `block` when a pool may want it soon and there is room, making
 * room by freeing the oldest; frees it otherwise. */
static void give(void *block, size_t size) {
  void *victims[SPARE_MAX_COUNT + 1];
  size_t nvictims = 0;
  apr_time_t now = pp__clock_us();
  lock();
  if (!live_pools || size > SPARE_MAX_BYTES) {
    victims[nvictims++] = block;
  } else {
    while (nspares && (nspares == SPARE_MAX_COUNT ||
                       spare_bytes + size > SPARE_MAX_BYTES)) {
      victims[nvictims++] = spares[0].block;
      remove_at(0);
    }
    spares[nspares++] = (spare){block, size, now};
    spare_bytes += size;
    /* A scheduler asleep with none to trim must wake to time this one. */
    if (nspares == 1)
      pp__backend_wake(live_pools->backend);
  }
  unlock();
  for (size_t i = 0; i < nvictims; i++)
    free(victims[i]);
}

/* Frees the spares given back before `cutoff`; returns how long until the
 * next one is due (microseconds; -1: none is kept). */
static apr_interval_time_t trim_before(apr_time_t cutoff) {
  void *victims[SPARE_MAX_COUNT];
  size_t nvictims = 0;
  apr_interval_time_t next = -1;
  lock();
  while (nspares && spares[0].since <= cutoff) {
    victims[nvictims++] = spares[0].block;
    remove_at(0);
  }
  if (nspares)
    next = spares[0].since - cutoff;
  unlock();
  for (size_t i = 0; i < nvictims; i++)
    free(victims[i]);
  return next;
}

size_t pp__spare_held(void) {
  lock();
  size_t bytes = spare_bytes;
  unlock();
  return bytes;
}

long pp__spare_trim(void) {
  /* Every pass of every scheduler comes here: no clock when none is kept. */
  if (!pp__spare_held())
    return -1;
  apr_interval_time_t next = trim_before(pp__clock_us() - SPARE_KEEP_US);
  return next < 0 ? -1 : (long)(next / 1000 + 1);
}

void pp__spare_pool_add(pp_pool *pool) {
  lock();
  pool->spare_next = live_pools;
  live_pools = pool;
  unlock();
}

void pp__spare_pool_remove(pp_pool *pool) {
  lock();
  pp_pool **at = &live_pools;
  while (*at && *at != pool)
    at = &(*at)->spare_next;
  if (*at)
    *at = pool->spare_next;
  int last = live_pools == NULL;
  unlock();
  if (last) /* nobody is left to trim them */
    (void)trim_before(APR_INT64_MAX);
}

void pp__spare_drop_inherited(void) {
  /* One thread here: whoever held the lock in the parent is not. */
  pp__atomic_give(&lock_word);
  live_pools = NULL;
  (void)trim_before(APR_INT64_MAX);
}

pp__value_block *pp__value_block_new(size_t bytes, apr_uint32_t refs) {
  size_t size = sizeof(pp__value_block) + bytes, got = size;
  if (bytes > SIZE_MAX - sizeof(pp__value_block))
    return NULL;
  pp__value_block *block =
      size >= PP__BIG_VALUE ? take(size, &got) : malloc(size);
  if (!block)
    return NULL;
  pp__atomic_set(&block->refs, refs);
  block->size = size >= PP__BIG_VALUE ? got : 0;
  pp__atomic_ptr_set(&block->owner, NULL);
  pp__atomic_set(&block->owner_busy, 0);
  block->owner_gave = 0;
  return block;
}

void pp__value_block_free(pp__value_block *block) {
  if (block->size)
    give(block, block->size);
  else
    free(block);
}

void pp__value_block_release_n(pp__value_block *block, apr_uint32_t n) {
  if (n && !pp__value_block_owner_gives(block, n) &&
      pp__atomic_add(&block->refs, (apr_uint32_t)0 - n) == n)
    pp__value_block_free(block);
}
