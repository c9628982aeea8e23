/* Suite "imap": imap and imap_unordered. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "internal.h"
#include "procpool.h"
#include "suites.h"
#include "tasks.h"
#include "util.h"

/* An imap (ordered) or imap_unordered of "square" over first .. end - 1,
 * read from `range`; NULL if it could not start. */
static pp_iter *square_imap(pp_pool *pool, int ordered, tu_range *range,
                            int64_t first, int64_t end, size_t chunksize) {
  pp_iter *it = NULL;
  tu_range_init(range, first, end);
  pp_status st =
      ordered ? pp_imap(pool, "square", tu_range_next, range, chunksize, &it)
              : pp_imap_unordered(pool, "square", tu_range_next, range,
                                  chunksize, &it);
  return st == PP_OK ? it : NULL;
}

/* Takes up to @p max items from @p it into @p got (values) and @p st
   (statuses), until PP_EOF; returns the number taken. Every wait is
   bounded by TU_WAIT; a timeout ends the loop. */
static size_t drain(pp_iter *it, int64_t *got, pp_status *st, size_t max,
                    pp_status *end) {
  size_t n = 0;
  *end = PP_OK;
  while (n <= max) {
    pp_value v = {0};
    pp_status s = pp_iter_next(it, TU_WAIT, &v);
    if (s == PP_EOF || s == PP_ETIMEOUT || s == PP_EINVAL) {
      pp_value_clear(&v);
      *end = s;
      break;
    }
    if (n == max) { /* more items than expected */
      pp_value_clear(&v);
      *end = PP_ESTATE;
      break;
    }
    st[n] = s;
    got[n] = -1;
    if (s == PP_OK) {
      (void)pp_value_i64(&v, &got[n]);
    }
    pp_value_clear(&v);
    n++;
  }
  return n;
}

/* imap yields in input order, with tasks of varying duration. */
static void test_imap_ordered(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 200 };
  const size_t asked[] = {1, 7};
  for (size_t k = 0; k < 2; k++) {
    tu_range range;
    tu_range_init(&range, 0, N);
    pp_iter *it = NULL;
    CU_ASSERT_EQUAL_FATAL(
        pp_imap(pool, "jitter", tu_range_next, &range, asked[k], &it), PP_OK);
    int64_t got[N];
    pp_status st[N];
    pp_status end;
    size_t n = drain(it, got, st, N, &end);
    CU_ASSERT_EQUAL(n, N);
    CU_ASSERT_EQUAL(end, PP_EOF);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
      if (st[i] != PP_OK || got[i] != (int64_t)i) {
        bad++;
      }
    }
    CU_ASSERT_EQUAL(bad, 0);
    pp_iter_free(it);
  }
  pp_pool_destroy(pool);
}

/* imap_unordered yields every result exactly once. */
static void test_imap_unordered_each_once(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 200 };
  const size_t asked[] = {1, 7, 0};
  for (size_t k = 0; k < 3; k++) {
    tu_range range;
    tu_range_init(&range, 0, N);
    pp_iter *it = NULL;
    CU_ASSERT_EQUAL_FATAL(
        pp_imap_unordered(pool, "jitter", tu_range_next, &range, asked[k], &it),
        PP_OK);
    int64_t got[N];
    pp_status st[N];
    pp_status end;
    size_t n = drain(it, got, st, N, &end);
    CU_ASSERT_EQUAL(n, N);
    CU_ASSERT_EQUAL(end, PP_EOF);
    int seen[N] = {0};
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
      if (st[i] != PP_OK || got[i] < 0 || got[i] >= N || seen[got[i]]++) {
        bad++;
      }
    }
    CU_ASSERT_EQUAL(bad, 0);
    for (size_t i = 0; i < N; i++) {
      CU_ASSERT_EQUAL(seen[i], 1);
      if (seen[i] != 1) {
        break;
      }
    }
    pp_iter_free(it);
  }
  pp_pool_destroy(pool);
}

/* One of several threads taking items from one iterator: what it got, in
   the order it got them. */
typedef struct consumer {
  pp_iter *it;
  int64_t *got;
  size_t max, n;
  size_t failed; /* items that were not PP_OK */
  pp_status end;
  size_t batch; /* 0: pp_iter_next(); else pp_iter_next_many() with it */
} consumer;

/* Takes one batch of up to c->batch items at a time; 0 when done. */
static int consume_batch(consumer *c) {
  pp_value v[16];
  size_t n = 99;
  pp_status s = pp_iter_next_many(c->it, TU_WAIT, v, c->batch, &n);
  if (s != PP_OK) {
    if (n != 0)
      c->failed++;
    pp_value_clear(&v[0]);
    c->end = s;
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    int64_t y = -1;
    if (pp_value_i64(&v[i], &y) != PP_OK || c->n == c->max)
      c->failed++;
    else
      c->got[c->n++] = y;
  }
  pp_value_clear_many(v, n);
  return 1;
}

static void consume(void *arg) {
  consumer *c = arg;
  c->end = PP_OK;
  if (c->batch) {
    while (consume_batch(c))
      ;
    return;
  }
  for (;;) {
    pp_value v = {0};
    pp_status s = pp_iter_next(c->it, TU_WAIT, &v);
    int64_t y = -1;
    if (s == PP_OK) {
      s = pp_value_i64(&v, &y);
    }
    pp_value_clear(&v);
    if (s == PP_EOF || s == PP_ETIMEOUT || s == PP_EINVAL) {
      c->end = s;
      return;
    }
    if (s != PP_OK) {
      c->failed++;
    } else if (c->n < c->max) {
      c->got[c->n++] = y;
    } else {
      c->failed++;
    }
  }
}

/* What consumers of one iterator of the squares of 0..n-1 got together:
   every item exactly once, each consumer's in input order with imap. */
static void check_consumers(const consumer *c, int count, size_t n,
                            int ordered) {
  unsigned char *seen = calloc(n, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(seen);
  size_t total = 0, bad = 0, disordered = 0;
  for (int k = 0; k < count; k++) {
    CU_ASSERT_EQUAL(c[k].end, PP_EOF);
    CU_ASSERT_EQUAL(c[k].failed, 0);
    total += c[k].n;
    for (size_t i = 0; i < c[k].n; i++) {
      int64_t y = c[k].got[i];
      int64_t lo = 0, hi = (int64_t)n; /* the x < n with x * x == y, if any */
      while (lo + 1 < hi) {
        int64_t mid = (lo + hi) / 2;
        if (mid * mid <= y) {
          lo = mid;
        } else {
          hi = mid;
        }
      }
      int64_t x = lo * lo == y ? lo : -1;
      if (x < 0 || seen[x]++) {
        bad++;
      }
      if (ordered && i > 0 && c[k].got[i - 1] >= y) {
        disordered++;
      }
    }
  }
  CU_ASSERT_EQUAL(total, n);
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_EQUAL(disordered, 0);
  free(seen);
}

/* Several threads share one iterator (pp_iter_next hands out items under a
   lock of the iterator's own), one with pp_iter_next_many(): together they
   get every item exactly once, each sees PP_EOF, and with imap each sees
   its items in input order. */
static void test_imap_shared_by_threads(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 20000, T = 3 };
  static int64_t got[T][N];
  for (int ordered = 0; ordered < 2; ordered++) {
    tu_range range;
    pp_iter *it = square_imap(pool, ordered, &range, 0, N, 50);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    consumer c[T];
    tu_thread *th[T];
    for (int k = 0; k < T; k++) {
      memset(&c[k], 0, sizeof c[k]);
      c[k].it = it;
      c[k].got = got[k];
      c[k].max = N;
      c[k].batch = k == 1 ? 16 : 0;
      th[k] = tu_thread_start(consume, &c[k]);
      CU_ASSERT_PTR_NOT_NULL(th[k]);
    }
    for (int k = 0; k < T; k++) {
      tu_thread_join(th[k]);
    }
    check_consumers(c, T, N, ordered);
    pp_iter_free(it);
  }
  pp_pool_destroy(pool);
}

/* Several threads wait on one iterator: each chunk's arrival and the end
 * wake the iterator's waiters, so together they get every item once and
 * each sees PP_EOF. Items that come slowly (jitter: 0-3 ms), each consumer
 * asleep most of the time; then quick ones (echo), three windows of them,
 * so that the input stops while the window is full until a consumer,
 * woken, takes an item. A wake-up lost leaves a waiter asleep until its
 * time is up, when it finds the item there all the same: a pp_iter_next()
 * that took nearly its whole time (SLOW_LATE_S) counts as a hang. */
#define SLOW_WAIT_S 5.0
#define SLOW_LATE_S 4.5

typedef struct slow_consumer {
  pp_iter *it;
  int64_t *got;
  size_t n, max;
  int failed, late;
  pp_status end;
} slow_consumer;

static void consume_slow(void *arg) {
  slow_consumer *c = arg;
  for (;;) {
    pp_value v = {0};
    double t0 = tu_now();
    pp_status s = pp_iter_next(c->it, SLOW_WAIT_S, &v);
    if (tu_now() - t0 >= SLOW_LATE_S)
      c->late++;
    int64_t y = -1;
    if (s == PP_OK)
      s = pp_value_i64(&v, &y);
    pp_value_clear(&v);
    if (s == PP_EOF || s == PP_ETIMEOUT) {
      c->end = s;
      return;
    }
    if (s != PP_OK || c->n == c->max)
      c->failed++;
    else
      c->got[c->n++] = y;
  }
}

static void test_imap_slow_items_several_waiters(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { T = 4, SLOW_N = 60, QUICK_N = 3 * PP__ITER_SMALL_WINDOW };
  static int64_t got[T][QUICK_N];
  static unsigned char seen[QUICK_N];
  for (int round = 0; round < 4; round++) {
    int ordered = round % 2, quick = round >= 2;
    size_t n = quick ? QUICK_N : SLOW_N;
    const char *task = quick ? "echo" : "jitter";
    tu_range range;
    pp_iter *it = NULL;
    tu_range_init(&range, 0, (int64_t)n);
    CU_ASSERT_EQUAL_FATAL(
        ordered ? pp_imap(pool, task, tu_range_next, &range, 1, &it)
                : pp_imap_unordered(pool, task, tu_range_next, &range, 1, &it),
        PP_OK);
    slow_consumer c[T];
    tu_thread *th[T];
    for (int k = 0; k < T; k++) {
      memset(&c[k], 0, sizeof c[k]);
      c[k].it = it;
      c[k].got = got[k];
      c[k].max = n;
      th[k] = tu_thread_start(consume_slow, &c[k]);
      CU_ASSERT_PTR_NOT_NULL_FATAL(th[k]);
    }
    for (int k = 0; k < T; k++)
      tu_thread_join(th[k]);
    /* Both tasks answer their argument: every x once, in order with imap. */
    memset(seen, 0, n);
    size_t total = 0, bad = 0, disordered = 0;
    for (int k = 0; k < T; k++) {
      CU_ASSERT_EQUAL(c[k].end, PP_EOF);
      CU_ASSERT_EQUAL(c[k].failed, 0);
      CU_ASSERT_EQUAL(c[k].late, 0);
      total += c[k].n;
      for (size_t i = 0; i < c[k].n; i++) {
        int64_t x = c[k].got[i];
        if (x < 0 || x >= (int64_t)n || seen[x]++)
          bad++;
        if (ordered && i > 0 && c[k].got[i - 1] >= x)
          disordered++;
      }
    }
    CU_ASSERT_EQUAL(total, n);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(disordered, 0);
    pp_iter_free(it);
  }
  pp_pool_destroy(pool);
}

/* The first thread to take an item becomes the iterator's owner and takes
   the next ones without its lock (iter.c, "the owner path"). A second
   thread that comes while the owner goes on ends that: both still get
   every item once, each in input order, and the iterator has no owner
   after. In rounds, so that the second thread comes at different points
   of the owner's taking of an item. */
static void test_imap_owner_then_second_thread(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 4000, FIRST = 100, ROUNDS = 20 };
  static int64_t got[2][N];
#ifdef __linux__
  /* membarrier(), readied by pp_worker_main() in tests/main.c. */
  CU_ASSERT_TRUE(pp__remote_barrier_ready());
#endif
  for (int round = 0; round < ROUNDS; round++) {
    int ordered = round % 2;
    tu_range range;
    pp_iter *it = square_imap(pool, ordered, &range, 0, N, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    consumer c[2];
    memset(c, 0, sizeof c);
    for (int k = 0; k < 2; k++) {
      c[k].it = it;
      c[k].got = got[k];
      c[k].max = N;
    }
    while (c[0].n < FIRST) {
      pp_value v = {0};
      int64_t y = -1;
      pp_status s = pp_iter_next(it, TU_WAIT, &v);
      if (s == PP_OK) {
        s = pp_value_i64(&v, &y);
      }
      pp_value_clear(&v);
      CU_ASSERT_EQUAL_FATAL(s, PP_OK);
      c[0].got[c[0].n++] = y;
    }
    CU_ASSERT_EQUAL(pp__iter_owned(it), pp__remote_barrier_ready());
    tu_thread *th = tu_thread_start(consume, &c[1]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(th);
    consume(&c[0]);
    tu_thread_join(th);
    CU_ASSERT_FALSE(pp__iter_owned(it));
    check_consumers(c, 2, N, ordered);
    pp_iter_free(it);
  }
  pp_pool_destroy(pool);
}

/* One turn of test_imap_owner_threads_in_turn: takes `n` items into
   `held`, after clearing the values the turn before took. */
typedef struct turn {
  pp_iter *it;
  pp_value *held, *before;
  size_t n;
  int64_t *got;
  size_t failed;
} turn;

static void take_turn(void *arg) {
  turn *t = arg;
  for (size_t i = 0; t->before && i < t->n; i++) {
    pp_value_clear(&t->before[i]);
  }
  for (size_t i = 0; i < t->n; i++) {
    int64_t y = -1;
    pp_status s = pp_iter_next(t->it, TU_WAIT, &t->held[i]);
    if (s == PP_OK) {
      s = pp_value_i64(&t->held[i], &y);
    }
    t->failed += s != PP_OK;
    t->got[i] = y;
  }
}

/* Threads that take turns at one iterator, each started once the one
   before it ended: the first becomes the owner, and a later one may be
   given the same thread token (its thread-local storage at the same
   address) or another one, which ends the owner path; either way every
   item arrives once, in input order, and the values each turn took,
   cleared by the next turn's thread, are given back once (a leak or a
   double free fails the sanitizer builds). */
static void test_imap_owner_threads_in_turn(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { TURNS = 10, SLICE = 300, N = TURNS * SLICE };
  static int64_t got[N];
  static pp_value held[N];
  for (int round = 0; round < 4; round++) {
    tu_range range;
    pp_iter *it = square_imap(pool, 1, &range, 0, N, round % 2 ? 16 : 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    memset(held, 0, sizeof held);
    size_t failed = 0;
    for (int k = 0; k < TURNS; k++) {
      turn t = {it,    &held[k * SLICE], k ? &held[(k - 1) * SLICE] : NULL,
                SLICE, &got[k * SLICE],  0};
      tu_thread *th = tu_thread_start(take_turn, &t);
      CU_ASSERT_PTR_NOT_NULL_FATAL(th);
      tu_thread_join(th);
      failed += t.failed;
    }
    CU_ASSERT_EQUAL(failed, 0);
    size_t wrong = 0;
    for (size_t i = 0; i < N; i++) {
      wrong += got[i] != (int64_t)(i * i);
    }
    CU_ASSERT_EQUAL(wrong, 0);
    pp_value v = {0};
    CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_EOF);
    pp_iter_free(it);
    for (size_t i = (TURNS - 1) * SLICE; i < N; i++) {
      pp_value_clear(&held[i]);
    }
  }
  pp_pool_destroy(pool);
}

/* Values handed to another thread, which clears them (held[first],
   held[first + 2], ...). */
typedef struct clearer {
  pp_value *held;
  size_t n, first;
} clearer;

static void clear_every_other(void *arg) {
  clearer *c = arg;
  for (size_t i = c->first; i < c->n; i += 2) {
    pp_value_clear(&c->held[i]);
  }
}

/* The iterator's owner owns the value blocks of the chunks it takes, and
   gives their references back without atomic operations (value.c). Values
   outlive the iterator; cleared half on the owner's thread and half on
   another at once, each block's owner path ends when the other thread
   clears one of its values, and every block goes exactly once when its
   last value goes (a leak or a double free fails the sanitizer builds and
   valgrind). */
static void test_imap_owned_blocks(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 2000, CHUNK = 100, KEEP = 3, ROUNDS = 10 };
  static pp_value held[N];
  for (int round = 0; round < ROUNDS; round++) {
    tu_range range;
    pp_iter *it = square_imap(pool, round % 2, &range, 0, N, CHUNK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    size_t nheld = 0, got = 0, bad = 0;
    int64_t sum = 0, held_expected = 0;
    for (;;) {
      pp_value v = {0};
      int64_t y = -1;
      pp_status s = pp_iter_next(it, TU_WAIT, &v);
      if (s == PP_EOF) {
        break;
      }
      if (s != PP_OK || pp_value_i64(&v, &y) != PP_OK) {
        bad++;
        pp_value_clear(&v);
        break;
      }
      sum += y;
      if (got == CHUNK + CHUNK / 2) { /* the second chunk: taken as owner */
        CU_ASSERT_PTR_NOT_NULL(v.owner);
        CU_ASSERT_EQUAL(v.owner && pp__value_block_owned(v.owner),
                        pp__remote_barrier_ready());
      }
      if (got++ % KEEP == 0) {
        held_expected += y;
        held[nheld++] = v;
      } else {
        pp_value_clear(&v);
      }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(got, N);
    CU_ASSERT_EQUAL(sum, (int64_t)(N - 1) * N * (2 * N - 1) / 6);
    pp_iter_free(it);
    /* What the held values say, after their iterator is gone. */
    int64_t held_sum = 0;
    for (size_t i = 0; i < nheld; i++) {
      int64_t y = -1;
      CU_ASSERT_EQUAL(pp_value_i64(&held[i], &y), PP_OK);
      held_sum += y;
    }
    CU_ASSERT_EQUAL(held_sum, held_expected);
    clearer other = {held, nheld, 1};
    tu_thread *th = tu_thread_start(clear_every_other, &other);
    CU_ASSERT_PTR_NOT_NULL_FATAL(th);
    clearer mine = {held, nheld, 0};
    clear_every_other(&mine);
    tu_thread_join(th);
  }
  pp_pool_destroy(pool);
}

/* Generator over an array of int64. */
typedef struct array_gen {
  const int64_t *v;
  size_t n, i;
  int64_t current;
} array_gen;

static pp_status array_next(void *state, pp_bytes *item) {
  array_gen *g = state;
  if (g->i >= g->n) {
    return PP_EOF;
  }
  g->current = g->v[g->i++];
  *item = tu_i64(&g->current);
  return PP_OK;
}

/* imap_unordered really is unordered: a slow first item does not hold back
   the later ones ("sleep_ms" returns its argument). */
static void test_imap_unordered_not_held_back(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static const int64_t ms[] = {1500, 1, 2, 3};
  array_gen gen = {ms, 4, 0, 0};
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap_unordered(pool, "sleep_ms", array_next, &gen, 1, &it), PP_OK);
  int64_t got[4];
  pp_status st[4];
  pp_status end;
  size_t n = drain(it, got, st, 4, &end);
  CU_ASSERT_EQUAL_FATAL(n, 4);
  CU_ASSERT_EQUAL(end, PP_EOF);
  CU_ASSERT_NOT_EQUAL(got[0], 1500); /* a fast item came first */
  int64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    CU_ASSERT_EQUAL(st[i], PP_OK);
    sum += got[i];
  }
  CU_ASSERT_EQUAL(sum, 1506);
  pp_iter_free(it);
  pp_pool_destroy(pool);
}

/* After the last item, pp_iter_next keeps returning PP_EOF. */
static void test_imap_eof(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  for (int unordered = 0; unordered < 2; unordered++) {
    tu_range range;
    pp_iter *it = square_imap(pool, !unordered, &range, 0, 3, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    int64_t sum = 0;
    for (int i = 0; i < 3; i++) {
      pp_value v = {0};
      int64_t x = 0;
      CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_OK);
      CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_OK);
      sum += x;
      pp_value_clear(&v);
    }
    CU_ASSERT_EQUAL(sum, 0 + 1 + 4);
    for (int i = 0; i < 3; i++) {
      pp_value v = {0};
      CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_EOF);
      pp_value_clear(&v);
    }
    pp_iter_free(it);
  }
  pp_pool_destroy(pool);
}

/* An empty input gives PP_EOF at once. */
static void test_imap_empty(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  for (int unordered = 0; unordered < 2; unordered++) {
    tu_range range;
    pp_iter *it = square_imap(pool, !unordered, &range, 0, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    pp_value v = {0};
    CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_EOF);
    pp_value_clear(&v);
    pp_iter_free(it);
  }
  pp_pool_destroy(pool);
}

/* A failing item surfaces as that item's PP_ETASK with its message, and
   the iteration continues. */
static void test_imap_failing_item(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  /* The failure last in its chunk, first in it (5), alone (1). */
  const size_t asked[] = {1, 3, 5};
  for (size_t k = 0; k < 3; k++) {
    tu_range range;
    tu_range_init(&range, 0, 10);
    pp_iter *it = NULL;
    CU_ASSERT_EQUAL_FATAL(
        pp_imap(pool, "fail_on", tu_range_next, &range, asked[k], &it), PP_OK);
    for (int64_t i = 0; i < 10; i++) {
      pp_value v = {0};
      int64_t x = -1;
      pp_status s = pp_iter_next(it, TU_WAIT, &v);
      if (i == TASK_FAIL_ON_ITEM) {
        CU_ASSERT_EQUAL(s, PP_ETASK);
        CU_ASSERT_EQUAL(v.status, PP_ETASK);
        CU_ASSERT(tu_contains(v.error, TASK_FAIL_ON_MSG));
      } else {
        CU_ASSERT_EQUAL(s, PP_OK);
        CU_ASSERT_EQUAL(v.status, PP_OK);
        CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_OK);
        CU_ASSERT_EQUAL(x, i * i);
        /* The NUL after each value, the one before the failure too, where
         * the answer had the failure's status. */
        CU_ASSERT(v.data && ((const unsigned char *)v.data)[v.len] == 0);
      }
      pp_value_clear(&v);
    }
    pp_value v = {0};
    CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_EOF);
    pp_value_clear(&v);
    pp_iter_free(it);
  }

  /* unordered: exactly one failure among the ten */
  tu_range range;
  tu_range_init(&range, 0, 10);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap_unordered(pool, "fail_on", tu_range_next, &range, 2, &it), PP_OK);
  int failures = 0, oks = 0;
  for (int i = 0; i < 10; i++) {
    pp_value v = {0};
    pp_status s = pp_iter_next(it, TU_WAIT, &v);
    if (s == PP_ETASK && tu_contains(v.error, TASK_FAIL_ON_MSG)) {
      failures++;
    } else if (s == PP_OK) {
      oks++;
    }
    pp_value_clear(&v);
  }
  CU_ASSERT_EQUAL(failures, 1);
  CU_ASSERT_EQUAL(oks, 9);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_EOF);
  pp_value_clear(&v);
  pp_iter_free(it);
  pp_pool_destroy(pool);
}

/* next(timeout) times out while the item is running, then delivers it. */
static void test_imap_next_timeout(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  tu_range range;
  tu_range_init(&range, 400, 401); /* one item: sleep 400 ms */
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap(pool, "sleep_ms", tu_range_next, &range, 1, &it), PP_OK);
  pp_value v = {0};
  double t0 = tu_now();
  CU_ASSERT_EQUAL(pp_iter_next(it, 0.05, &v), PP_ETIMEOUT);
  double dt = tu_now() - t0;
  CU_ASSERT(dt >= 0.04);
  CU_ASSERT(dt < 1.0);
  pp_value_clear(&v);
  CU_ASSERT_EQUAL(pp_iter_next(it, 0.0, &v), PP_ETIMEOUT);
  pp_value_clear(&v);
  int64_t x = -1;
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_OK);
  CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 400);
  pp_value_clear(&v);
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_EOF);
  pp_value_clear(&v);
  pp_iter_free(it);
  pp_pool_destroy(pool);
}

/* Freeing an iterator with items outstanding is safe, and so is destroying
   the pool afterwards; the pool keeps working in between. */
static void test_imap_free_early(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  tu_range range;
  tu_range_init(&range, 0, 20);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "jitter", tu_range_next, &range, 2, &it),
                        PP_OK);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_OK);
  pp_value_clear(&v);
  pp_iter_free(it);
  int64_t x = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 11, &x), PP_OK);
  CU_ASSERT_EQUAL(x, 121);
  pp_pool_destroy(pool);
}

/* An endless input of the same item, counting the calls. */
typedef struct endless_input {
  int64_t item;
  long pulled;
} endless_input;

static pp_status endless_next(void *state, pp_bytes *item) {
  endless_input *in = state;
  in->pulled++;
  *item = tu_i64(&in->item);
  return PP_OK;
}

/* A freed iterator's pulled items that no worker holds never run: an
 * endless input of 20 ms tasks has its window pulled (thousands of items)
 * by the time its first result comes, and a call made after the free is
 * answered at once, not after them (about 40 s before). */
static void test_imap_free_drops_queued(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  endless_input in = {20, 0};
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "sleep_ms", endless_next, &in, 1, &it),
                        PP_OK);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_OK);
  pp_value_clear(&v);
  pp_iter_free(it);
  /* Read once the free returned: the input is not called any more. */
  CU_ASSERT(in.pulled > 100);
  int64_t x = 12;
  pp_bytes arg = tu_i64(&x);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "square", &arg, 1, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* Two iterators and a map share the pool; each gets its own results. */
static void test_imap_interleaved(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  tu_range ra, rb;
  tu_range_init(&ra, 0, 30);
  tu_range_init(&rb, 100, 130);
  pp_iter *a = NULL, *b = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "jitter", tu_range_next, &ra, 1, &a),
                        PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "jitter", tu_range_next, &rb, 4, &b),
                        PP_OK);
  int64_t vals[30];
  pp_bytes items[30];
  tu_i64_items(vals, items, 30, 0);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "square", items, 30, 0, NULL, &r),
                        PP_OK);
  size_t bad = 0;
  for (int64_t i = 0; i < 30; i++) {
    pp_value v = {0};
    int64_t x = -1;
    if (pp_iter_next(a, TU_WAIT, &v) != PP_OK ||
        pp_value_i64(&v, &x) != PP_OK || x != i) {
      bad++;
    }
    pp_value_clear(&v);
    if (pp_iter_next(b, TU_WAIT, &v) != PP_OK ||
        pp_value_i64(&v, &x) != PP_OK || x != 100 + i) {
      bad++;
    }
    pp_value_clear(&v);
  }
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  pp_result_free(r);
  pp_iter_free(a);
  pp_iter_free(b);
  pp_pool_destroy(pool);
}

/* Input whose item sizes follow `sizes`: item i is sizes[i % nsizes] bytes,
 * each byte derived from i, so an echo of it shows which item it was. */
typedef struct sized_input {
  const size_t *sizes;
  size_t nsizes, next, end;
  unsigned char item[64];
} sized_input;

static unsigned char sized_byte(size_t i, size_t k) {
  return (unsigned char)(i * 7 + k * 13 + 1);
}

static pp_status sized_next(void *state, pp_bytes *item) {
  sized_input *in = state;
  if (in->next == in->end)
    return PP_EOF;
  size_t i = in->next++, len = in->sizes[i % in->nsizes];
  for (size_t k = 0; k < len; k++)
    in->item[k] = sized_byte(i, k);
  item->data = in->item;
  item->len = len;
  return PP_OK;
}

/* Counts the items of an echo imap over `in` that do not come back as
 * they went, in order; every item must come back. */
static size_t echo_mismatches(pp_pool *pool, sized_input *in,
                              size_t chunksize) {
  pp_iter *it = NULL;
  if (pp_imap(pool, "echo", sized_next, in, chunksize, &it) != PP_OK)
    return (size_t)-1;
  size_t bad = 0, i = 0;
  for (;; i++) {
    pp_value v = {0};
    pp_status st = pp_iter_next(it, TU_WAIT, &v);
    if (st == PP_EOF)
      break;
    size_t len = in->sizes[i % in->nsizes];
    int same = st == PP_OK && v.len == len;
    for (size_t k = 0; same && k < len; k++)
      same = ((const unsigned char *)v.data)[k] == sized_byte(i, k);
    if (!same || ((const char *)v.data)[v.len] != '\0')
      bad++;
    pp_value_clear(&v);
    if (st != PP_OK)
      break;
  }
  pp_iter_free(it);
  return bad + (i != in->end);
}

/* Items of one size travel packed (no length each); the first item of
 * another size in a chunk turns it back into the general form. Either
 * way each item arrives whole and in its place, empty ones included. */
static void test_imap_item_sizes(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static const size_t one[] = {8}, empty[] = {0}, late[] = {8, 8, 8, 3},
                      first[] = {5, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8},
                      varied[] = {0, 1, 8, 8, 17, 64, 0, 2};
  const struct {
    const size_t *sizes;
    size_t n;
  } cases[] = {{one, 1}, {empty, 1}, {late, 4}, {first, 11}, {varied, 8}};
  const size_t chunks[] = {1, 4, 11, 100};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
      sized_input in = {cases[c].sizes, cases[c].n, 0, 250, {0}};
      size_t bad = echo_mismatches(pool, &in, chunks[k]);
      if (bad)
        printf("\n  sizes case %zu, chunksize %zu: %zu wrong\n", c, chunks[k],
               bad);
      CU_ASSERT_EQUAL(bad, 0);
    }
  }
  /* Chunks of 40 KB: through the workers' lanes, when they have them. */
  sized_input big = {one, 1, 0, 12000, {0}};
  CU_ASSERT_EQUAL(echo_mismatches(pool, &big, 5000), 0);
  pp_pool_destroy(pool);
}

/* Runs `task` in order over 0 .. n-1 with each of `nsizes` chunk sizes:
 * every item arrives, and `right` says of each whether it came as it
 * should (PP_OK items only; any other status is wrong). */
static void imap_each_chunksize(const char *task, size_t n, const size_t *sizes,
                                size_t nsizes,
                                int (*right)(size_t i, const pp_value *v)) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  for (size_t k = 0; k < nsizes; k++) {
    tu_range range;
    tu_range_init(&range, 0, (int64_t)n);
    pp_iter *it = NULL;
    CU_ASSERT_EQUAL_FATAL(
        pp_imap(pool, task, tu_range_next, &range, sizes[k], &it), PP_OK);
    size_t bad = 0, i = 0;
    for (;; i++) {
      pp_value v = {0};
      pp_status st = pp_iter_next(it, TU_WAIT, &v);
      if (st == PP_EOF)
        break;
      bad += st != PP_OK || !right(i, &v);
      pp_value_clear(&v);
      if (st != PP_OK)
        break;
    }
    CU_ASSERT_EQUAL(i, n);
    if (bad)
      printf("\n  %s, chunksize %zu: %zu wrong\n", task, sizes[k], bad);
    CU_ASSERT_EQUAL(bad, 0);
    pp_iter_free(it);
  }
  pp_pool_destroy(pool);
}

/* The decimal text of i, NUL-terminated. */
static int is_digits(size_t i, const pp_value *v) {
  char want[32];
  snprintf(want, sizeof want, "%zu", i);
  return v->len == strlen(want) && strcmp((const char *)v->data, want) == 0;
}

/* Results whose size changes within a chunk of same-size items (the
 * number of digits of 9 and of 10): each arrives whole, in order. */
static void test_imap_result_sizes(void) {
  const size_t sizes[] = {1, 7, 10, 100};
  imap_each_chunksize("digits", 2000, sizes, 4, is_digits);
}

/* square_or_not's value for i: empty for i % 5 == 3 and i % 20 == 4, else
 * i * i. */
static int is_square_or_not(size_t i, const pp_value *v) {
  int64_t x = (int64_t)i, got = 0;
  if (x % 5 == 3 || x % 20 == 4)
    return v->len == 0;
  return pp_value_i64(v, &got) == PP_OK && got == x * x;
}

/* Calls with no value (an empty one), with an empty one set from NULL
 * (after a chunk's first value was empty too, with chunks of 3), and calls
 * that set theirs twice (the last counts), among plain values in one
 * chunk: each arrives as the task left it, and the calls after it too. */
static void test_imap_values_not_plain(void) {
  const size_t sizes[] = {1, 3, 4, 100};
  imap_each_chunksize("square_or_not", 1000, sizes, 4, is_square_or_not);
}

/* A chunk size beyond what a frame can count is taken as the most it can:
 * the whole short input goes in one chunk, and every item comes back. */
static void test_imap_huge_chunksize(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  for (int ordered = 0; ordered < 2; ordered++) {
    tu_range range;
    pp_iter *it = square_imap(pool, ordered, &range, 0, 100, SIZE_MAX);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    int64_t got[100];
    pp_status st[100], end;
    size_t n = drain(it, got, st, 100, &end);
    CU_ASSERT_EQUAL(n, 100);
    CU_ASSERT_EQUAL(end, PP_EOF);
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++)
      sum += st[i] == PP_OK ? got[i] : -1;
    CU_ASSERT_EQUAL(sum, 328350); /* the squares of 0 to 99 */
    pp_iter_free(it);
  }
  pp_pool_destroy(pool);
}

/* Items of `len` bytes (at most 1 MiB), as many as asked, counted as they
 * are pulled. */
typedef struct big_input {
  size_t next, end, len;
} big_input;

static pp_status big_next(void *state, pp_bytes *item) {
  static unsigned char mib[1 << 20];
  big_input *in = state;
  if (in->next == in->end)
    return PP_EOF;
  in->next++;
  item->data = mib;
  item->len = in->len;
  return PP_OK;
}

/* With nobody reading, the input is pulled only as far as the iterator's
 * limit: PP__ITER_SMALL_WINDOW items in whole chunks for small items (more
 * than PP__ITER_CHUNKS_PER_WORKER chunks per worker and 2 more, when chunks
 * are short); as many as PP__ITER_SMALL_BYTES holds, and at least those
 * chunks per worker and 2 more, for items of 64 KiB;
 * PP__ITER_BIG_CHUNKS_PER_WORKER per worker and 2 more once a chunk's frame
 * is 1 MiB or more. (Counted once pp_iter_free() returned: the input is not
 * running then.) */
static void test_imap_pull_limit(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  tu_range range;
  tu_range_init(&range, 0, 1000000);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "square", tu_range_next, &range, 10, &it),
                        PP_OK);
  tu_sleep_ms(300);
  pp_iter_free(it);
  /* Past the chunk-counted window (34 chunks of 10), up to the small one. */
  CU_ASSERT(range.pulled > (2 * PP__ITER_CHUNKS_PER_WORKER + 2) * 10);
  CU_ASSERT(range.pulled <= (PP__ITER_SMALL_WINDOW + 9) / 10 * 10);

  /* Each item and its answer hold 64 KiB: the byte limit stops the input
   * one chunk past it at most, and what was taken no longer counts (after
   * 300 items, more than the limit in all). */
  enum { MEDIUM = 64 << 10, TAKEN = 300 };
  big_input medium = {0, 100000, MEDIUM};
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "echo", big_next, &medium, 1, &it),
                        PP_OK);
  size_t whole = 0;
  for (size_t i = 0; i < TAKEN; i++) {
    pp_value v = {0};
    if (pp_iter_next(it, TU_WAIT, &v) == PP_OK && v.len == MEDIUM)
      whole++;
    pp_value_clear(&v);
  }
  CU_ASSERT_EQUAL(whole, TAKEN);
  tu_sleep_ms(300);
  pp_iter_free(it);
  CU_ASSERT(medium.next - TAKEN > 2 * PP__ITER_CHUNKS_PER_WORKER + 2);
  CU_ASSERT(medium.next - TAKEN <= PP__ITER_SMALL_BYTES / MEDIUM + 1);

  big_input big = {0, 1000, 1 << 20};
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "echo", big_next, &big, 1, &it), PP_OK);
  tu_sleep_ms(300);
  pp_iter_free(it);
  CU_ASSERT(big.next >= 1);
  CU_ASSERT(big.next <= 2 * PP__ITER_BIG_CHUNKS_PER_WORKER + 2);
  pp_pool_destroy(pool);
}

/* An input that stops with PP_ESYSTEM before its fourth item. */
static pp_status stop_at_3_next(void *state, pp_bytes *item) {
  tu_range *range = state;
  return range->next == 3 ? PP_ESYSTEM : tu_range_next(state, item);
}

/* pp_iter_next_many() in batches of every size, from one item to more than
 * a chunk, mixed with pp_iter_next(): every item once, in order, each
 * value whole; then PP_EOF with none. */
static void test_imap_next_many(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 3000 };
  static const size_t caps[] = {1, 3, 7, 100, 1000};
  for (int ordered = 0; ordered < 2; ordered++) {
    tu_range range;
    pp_iter *it = square_imap(pool, ordered, &range, 0, N, 7);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    static pp_value v[1000];
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    size_t got = 0, bad = 0, calls = 0;
    pp_status st = PP_OK;
    while (got < N + 1 && st == PP_OK) {
      size_t cap = caps[calls % 5], n = 0;
      if (calls++ % 4 == 3) { /* one by one now and then */
        st = pp_iter_next(it, TU_WAIT, &v[0]);
        n = st == PP_OK;
      } else {
        st = pp_iter_next_many(it, TU_WAIT, v, cap, &n);
        if ((st == PP_OK) != (n > 0) || n > cap)
          bad++;
      }
      for (size_t i = 0; i < n; i++) {
        int64_t y = -1, x = (int64_t)got + (int64_t)i;
        if (pp_value_i64(&v[i], &y) != PP_OK ||
            ((const char *)v[i].data)[8] != '\0')
          bad++;
        else if (ordered && y != x * x)
          bad++;
        if (!ordered) /* the x with x * x == y */
          for (x = 0; x < N && x * x < y; x++)
            ;
        if (x >= N || seen[x]++)
          bad++;
      }
      got += n;
      pp_value_clear_many(v, n);
      for (size_t i = 0; i < n; i++)
        if (v[i].data || v[i].owner)
          bad++; /* cleared values are zeroed */
    }
    CU_ASSERT_EQUAL(st, PP_EOF);
    CU_ASSERT_EQUAL(got, N);
    CU_ASSERT_EQUAL(bad, 0);
    size_t n = 99;
    CU_ASSERT_EQUAL(pp_iter_next_many(it, TU_WAIT, v, 10, &n), PP_EOF);
    CU_ASSERT_EQUAL(n, 0);
    pp_iter_free(it);
  }
  pp_pool_destroy(pool);
}

/* Failures among a batch: each item says its own outcome; the input's
 * error comes once, after the items before it, in out[0]; bad arguments
 * are refused. */
static void test_imap_next_many_failures(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  tu_range range;
  tu_range_init(&range, 0, 10);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "fail_on", tu_range_next, &range, 4, &it),
                        PP_OK);
  pp_value v[10];
  size_t got = 0, n = 0;
  while (got < 10 &&
         pp_iter_next_many(it, TU_WAIT, v + got, 10 - got, &n) == PP_OK)
    got += n;
  CU_ASSERT_EQUAL(got, 10);
  for (size_t i = 0; i < got; i++) {
    int64_t x = -1;
    if ((int64_t)i == TASK_FAIL_ON_ITEM) {
      CU_ASSERT_EQUAL(v[i].status, PP_ETASK);
      CU_ASSERT(tu_contains(v[i].error, TASK_FAIL_ON_MSG));
      CU_ASSERT_PTR_NULL(v[i].owner);
    } else {
      CU_ASSERT_EQUAL(pp_value_i64(&v[i], &x), PP_OK);
      CU_ASSERT_EQUAL(x, (int64_t)(i * i));
    }
  }
  pp_value_clear_many(v, got);
  CU_ASSERT_EQUAL(pp_iter_next_many(it, TU_WAIT, v, 10, &n), PP_EOF);
  pp_iter_free(it);

  /* the input stops with an error after 3 items */
  tu_range_init(&range, 0, 10);
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "square", stop_at_3_next, &range, 2, &it),
                        PP_OK);
  got = 0;
  pp_status st = PP_OK;
  while (got <= 3 &&
         (st = pp_iter_next_many(it, TU_WAIT, v + got, 10 - got, &n)) == PP_OK)
    got += n;
  CU_ASSERT_EQUAL(got, 3);
  CU_ASSERT_EQUAL(st, PP_ESYSTEM);
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT(tu_contains(v[got].error, "input"));
  pp_value_clear_many(v, got + 1);
  CU_ASSERT_EQUAL(pp_iter_next_many(it, TU_WAIT, v, 10, &n), PP_EOF);

  /* bad arguments; a timeout takes nothing */
  CU_ASSERT_EQUAL(pp_iter_next_many(NULL, 0, v, 1, &n), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_iter_next_many(it, 0, NULL, 1, &n), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_iter_next_many(it, 0, v, 0, &n), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_iter_next_many(it, 0, v, 1, NULL), PP_EINVAL);
  pp_iter_free(it);
  int64_t ms = 300;
  tu_range_init(&range, ms, ms + 1);
  CU_ASSERT_EQUAL_FATAL(
      pp_imap(pool, "sleep_ms", tu_range_next, &range, 1, &it), PP_OK);
  n = 99;
  CU_ASSERT_EQUAL(pp_iter_next_many(it, 0.01, v, 4, &n), PP_ETIMEOUT);
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT_EQUAL(pp_iter_next_many(it, TU_WAIT, v, 4, &n), PP_OK);
  CU_ASSERT_EQUAL(n, 1);
  pp_value_clear_many(v, n);
  pp_value_clear_many(NULL, 3);
  pp_iter_free(it);
  pp_pool_destroy(pool);
}

/* An input function that, at its first call, waits on its own iterator
 * once the test has published it, then yields [0, 3). */
typedef struct waiting_input {
  pp_iter *it;
  tu_counter published; /* 1 once `it` is set */
  tu_counter asked;     /* 1 once the waits below were made */
  pp_status wait, many, poll;
  tu_range range;
} waiting_input;

static pp_status next_after_waiting(void *state, pp_bytes *item) {
  waiting_input *in = state;
  if (tu_counter_get(&in->asked) == 0) {
    /* The caller publishes the iterator once pp_imap() returns it. */
    if (tu_counter_wait(&in->published, 1, TU_WAIT) == 1) {
      pp_value v, many[4];
      size_t n = 0;
      in->wait = pp_iter_next(in->it, 2.0, &v);
      pp_value_clear(&v);
      in->many = pp_iter_next_many(in->it, 2.0, many, 4, &n);
      pp_value_clear_many(many, n);
      in->poll = pp_iter_next(in->it, 0, &v);
      pp_value_clear(&v);
    }
    tu_counter_inc(&in->asked);
  }
  return tu_range_next(&in->range, item);
}

/* The input function runs on the pool's scheduler thread, which brings the
 * answers in: a wait there on its own iterator, with nothing answered yet,
 * would never end, and is refused at once with PP_ESTATE; a poll says
 * PP_ETIMEOUT as anywhere. The imap then goes on as ever. */
static void test_imap_input_waits_refused(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  waiting_input in;
  memset(&in, 0, sizeof in);
  tu_counter_init(&in.published);
  tu_counter_init(&in.asked);
  tu_range_init(&in.range, 0, 3);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_imap(pool, "square", next_after_waiting, &in, 1, &it), PP_OK);
  in.it = it;
  tu_counter_inc(&in.published);
  for (int64_t i = 0; i < 3; i++) {
    pp_value v;
    int64_t y = -1;
    CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_OK);
    CU_ASSERT_EQUAL(pp_value_i64(&v, &y), PP_OK);
    CU_ASSERT_EQUAL(y, i * i);
    pp_value_clear(&v);
  }
  pp_value end;
  CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &end), PP_EOF);
  pp_value_clear(&end);
  CU_ASSERT_EQUAL(tu_counter_get(&in.asked), 1);
  CU_ASSERT_EQUAL(in.wait, PP_ESTATE);
  CU_ASSERT_EQUAL(in.many, PP_ESTATE);
  CU_ASSERT_EQUAL(in.poll, PP_ETIMEOUT);
  pp_iter_free(it);
  pp_pool_destroy(pool);
}

/* An input function that frees its own iterator at its third call. */
typedef struct freeing_input {
  pp_iter *it;
  tu_counter published; /* 1 once `it` is set */
  tu_counter calls;
  tu_range range;
} freeing_input;

static pp_status next_then_free(void *state, pp_bytes *item) {
  freeing_input *in = state;
  if (tu_counter_inc(&in->calls) == 3) {
    if (tu_counter_wait(&in->published, 1, TU_WAIT) == 1)
      pp_iter_free(in->it);
    return PP_EOF;
  }
  return tu_range_next(&in->range, item);
}

/* An input function may end its imap by freeing its own iterator: that
 * call is its last, nothing hangs, and the pool goes on. */
static void test_imap_input_frees_its_iterator(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  freeing_input in;
  memset(&in, 0, sizeof in);
  tu_counter_init(&in.published);
  tu_counter_init(&in.calls);
  tu_range_init(&in.range, 0, 1000);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "square", next_then_free, &in, 1, &it),
                        PP_OK);
  in.it = it;
  tu_counter_inc(&in.published);
  /* The iterator is the input function's to free now: the test only waits
   * for that, then uses the pool. */
  CU_ASSERT_EQUAL(tu_counter_wait(&in.calls, 3, TU_WAIT), 3);
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 12, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 144);
  tu_sleep_ms(50);
  CU_ASSERT_EQUAL(tu_counter_get(&in.calls), 3);
  pp_pool_close(pool);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  pp_pool_destroy(pool);
}

/* An input function that, at its first call, notes whether the handle
 * pp_imap() gives back is already where `out` points. */
typedef struct handle_input {
  pp_iter *it; /* pp_imap()'s out */
  int seen;    /* -1 before the first call, then 1 when it was set */
  tu_range range;
} handle_input;

static pp_status next_seeing_handle(void *state, pp_bytes *item) {
  handle_input *in = state;
  if (in->seen < 0)
    in->seen = in->it != NULL;
  return tu_range_next(&in->range, item);
}

/* The handle is set before the input function first runs, so that it may
 * free its iterator or say it is ready from its first call (it came after
 * the first call in most runs: the function saw NULL). */
static void test_imap_handle_before_input(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  size_t unset = 0;
  for (int round = 0; round < 50; round++) {
    handle_input in = {NULL, -1, {0}};
    tu_range_init(&in.range, 0, 2);
    CU_ASSERT_EQUAL_FATAL(
        pp_imap(pool, "square", next_seeing_handle, &in, 1, &in.it), PP_OK);
    pp_value v;
    while (pp_iter_next(in.it, TU_WAIT, &v) == PP_OK)
      pp_value_clear(&v);
    pp_value_clear(&v);
    unset += in.seen != 1;
    pp_iter_free(in.it);
  }
  CU_ASSERT_EQUAL(unset, 0);
  pp_pool_destroy(pool);
}

/* An input that takes 5 ms an item, counting them. */
typedef struct slow_input {
  tu_counter calls;
  tu_range range;
} slow_input;

static pp_status next_slowly(void *state, pp_bytes *item) {
  slow_input *in = state;
  tu_counter_inc(&in->calls);
  tu_sleep_ms(5);
  return tu_range_next(&in->range, item);
}

/* A slow input with big chunks (2,000 items: 10 s of input a chunk) does
 * not hold pp_iter_free() or a terminate for the rest of the chunk: the
 * pull stops at its next item (both waited for the whole chunk). */
static void test_imap_free_stops_pull(void) {
  for (int terminate = 0; terminate < 2; terminate++) {
    pp_pool *pool = tu_pool(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    slow_input in;
    memset(&in, 0, sizeof in);
    tu_counter_init(&in.calls);
    tu_range_init(&in.range, 0, 1000000);
    pp_iter *it = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "square", next_slowly, &in, 2000, &it),
                          PP_OK);
    CU_ASSERT_EQUAL(tu_counter_wait(&in.calls, 10, TU_WAIT), 10);
    double t0 = tu_now();
    if (terminate) {
      CU_ASSERT_EQUAL(pp_pool_terminate(pool), PP_OK);
      CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
    }
    pp_iter_free(it);
    double took = tu_now() - t0;
    CU_ASSERT(took < 5.0);
    if (took >= 5.0)
      fprintf(stderr, "\n  %s took %.1f s\n",
              terminate ? "terminate, join and free" : "pp_iter_free", took);
    pp_pool_destroy(pool);
  }
}

/* An input fed by a thread of the program: `published` of its values are
 * there to take, `finished` says no more will come. Its function never
 * waits: with nothing to take it says PP_ENOTREADY, and the feeding thread
 * calls pp_iter_input_ready() after each value it adds. */
enum { FED_ITEMS = 20, FED_FIRST = 5 };
typedef struct fed_input {
  int64_t vals[FED_ITEMS];
  tu_counter published, finished, taken, not_ready, kicks, apply_done;
  pp_iter *it;
} fed_input;

/* An empty input whose values will be first, first + 1, ... */
static void fed_init(fed_input *in, int64_t first) {
  memset(in, 0, sizeof *in);
  for (int i = 0; i < FED_ITEMS; i++)
    in->vals[i] = first + i;
  tu_counter_init(&in->published);
  tu_counter_init(&in->finished);
  tu_counter_init(&in->taken);
  tu_counter_init(&in->not_ready);
  tu_counter_init(&in->kicks);
  tu_counter_init(&in->apply_done);
}

static pp_status fed_next(void *state, pp_bytes *item) {
  fed_input *in = state;
  long taken = tu_counter_get(&in->taken);
  if (taken < tu_counter_get(&in->published)) {
    tu_counter_inc(&in->taken);
    *item = tu_i64(&in->vals[taken]);
    return PP_OK;
  }
  if (tu_counter_get(&in->finished))
    return PP_EOF;
  tu_counter_inc(&in->not_ready);
  return PP_ENOTREADY;
}

static void fed_publish(fed_input *in, long upto) {
  while (tu_counter_get(&in->published) < upto) {
    tu_counter_inc(&in->published);
    tu_counter_inc(&in->kicks);
    CU_ASSERT_EQUAL(pp_iter_input_ready(in->it), PP_OK);
  }
}

/* The feeding thread: the first values, then (once the test has used the
 * pool while the input had nothing) the rest one by one, then the end. */
static void fed_feeder(void *arg) {
  fed_input *in = arg;
  fed_publish(in, FED_FIRST);
  tu_counter_wait(&in->apply_done, 1, TU_WAIT);
  for (long k = FED_FIRST + 1; k <= FED_ITEMS; k++) {
    fed_publish(in, k);
    if (k % 4 == 0)
      tu_sleep_ms(2);
  }
  tu_counter_inc(&in->finished);
  tu_counter_inc(&in->kicks);
  CU_ASSERT_EQUAL(pp_iter_input_ready(in->it), PP_OK);
}

/* An input with no item yet does not hold the pool: another call runs
 * while it has none, its items come once it has them (a chunk begun waits
 * to be whole, as Python's imap builds its chunks), in order, and the pool
 * asks it again only when told (no polling). */
static void test_imap_input_not_ready(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  const size_t chunksizes[] = {1, 3};
  for (size_t k = 0; k < 2; k++) {
    size_t cs = chunksizes[k];
    fed_input in;
    fed_init(&in, 100);
    CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "square", fed_next, &in, cs, &in.it),
                          PP_OK);
    tu_thread *feeder = tu_thread_start(fed_feeder, &in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(feeder);
    /* The whole chunks of the first values; the rest of them wait in a
     * chunk begun. */
    size_t first = FED_FIRST / cs * cs, got = 0;
    int64_t y = 0;
    for (; got < first; got++) {
      pp_value v = {0};
      CU_ASSERT_EQUAL(pp_iter_next(in.it, TU_WAIT, &v), PP_OK);
      CU_ASSERT_EQUAL(pp_value_i64(&v, &y), PP_OK);
      CU_ASSERT_EQUAL(y, in.vals[got] * in.vals[got]);
      pp_value_clear(&v);
    }
    /* The input has nothing now; the pool answers all the same. */
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 9, &y), PP_OK);
    CU_ASSERT_EQUAL(y, 81);
    tu_counter_inc(&in.apply_done);
    for (;; got++) {
      pp_value v = {0};
      pp_status st = pp_iter_next(in.it, TU_WAIT, &v);
      if (st != PP_OK) {
        CU_ASSERT_EQUAL(st, PP_EOF);
        pp_value_clear(&v);
        break;
      }
      CU_ASSERT_EQUAL(pp_value_i64(&v, &y), PP_OK);
      CU_ASSERT(got < FED_ITEMS && y == in.vals[got] * in.vals[got]);
      pp_value_clear(&v);
    }
    CU_ASSERT_EQUAL(got, FED_ITEMS);
    tu_thread_join(feeder);
    /* Each "not ready" waited for a call of pp_iter_input_ready() (one
     * more where a call came while the function ran). */
    CU_ASSERT(tu_counter_get(&in.not_ready) <= tu_counter_get(&in.kicks) + 1);
    pp_iter_free(in.it);
  }
  pp_pool_destroy(pool);
}

/* An iterator freed, or a pool ended, while its input has no item and a
 * chunk begun: nothing hangs, nothing leaks; a closed pool's join waits
 * for the input's end, as Python's does for its generator; a terminate
 * fails the begun chunk's items, each reported (they were lost before),
 * and then the input's end, which says it was cut short. */
static void test_imap_input_not_ready_ends(void) {
  CU_ASSERT_EQUAL(pp_iter_input_ready(NULL), PP_EINVAL);
  for (int how = 0; how < 4; how++) {
    pp_pool *pool = tu_pool(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    fed_input in;
    fed_init(&in, 0);
    CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "square", fed_next, &in, 4, &in.it),
                          PP_OK);
    fed_publish(&in, 6); /* a whole chunk and half of one */
    pp_value v = {0};
    int64_t y = 0;
    for (int i = 0; i < 4; i++) {
      CU_ASSERT_EQUAL(pp_iter_next(in.it, TU_WAIT, &v), PP_OK);
      CU_ASSERT_EQUAL(pp_value_i64(&v, &y), PP_OK);
      CU_ASSERT_EQUAL(y, (int64_t)i * i);
      pp_value_clear(&v);
    }
    CU_ASSERT_EQUAL(pp_iter_next(in.it, 0.05, &v), PP_ETIMEOUT);
    if (how == 0) { /* the iterator freed, then the pool */
      pp_iter_free(in.it);
      pp_pool_destroy(pool);
    } else if (how == 1) { /* the pool destroyed under it */
      pp_pool_destroy(pool);
      pp_iter_free(in.it);
    } else if (how == 3) { /* terminated */
      CU_ASSERT_EQUAL(pp_pool_terminate(pool), PP_OK);
      for (int i = 4; i < 6; i++) {
        CU_ASSERT_EQUAL(pp_iter_next(in.it, TU_WAIT, &v), PP_ETERMINATED);
        CU_ASSERT(tu_contains(v.error, "the pool was terminated"));
        CU_ASSERT(!tu_contains(v.error, "cut short"));
        pp_value_clear(&v);
      }
      CU_ASSERT_EQUAL(pp_iter_next(in.it, TU_WAIT, &v), PP_ETERMINATED);
      CU_ASSERT(tu_contains(v.error, "the imap's input was cut short: the "
                                     "pool was terminated"));
      pp_value_clear(&v);
      CU_ASSERT_EQUAL(pp_iter_next(in.it, TU_WAIT, &v), PP_EOF);
      pp_iter_free(in.it);
      pp_pool_destroy(pool);
    } else { /* closed: the join ends with the input */
      CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
      tu_joiner *j = tu_joiner_start(pool);
      CU_ASSERT_PTR_NOT_NULL_FATAL(j);
      CU_ASSERT_EQUAL(tu_joiner_wait(j, 0.1), 0); /* the input goes on */
      tu_counter_inc(&in.finished);
      CU_ASSERT_EQUAL(pp_iter_input_ready(in.it), PP_OK);
      for (int i = 4; i < 6; i++) {
        CU_ASSERT_EQUAL(pp_iter_next(in.it, TU_WAIT, &v), PP_OK);
        CU_ASSERT_EQUAL(pp_value_i64(&v, &y), PP_OK);
        CU_ASSERT_EQUAL(y, (int64_t)i * i);
        pp_value_clear(&v);
      }
      CU_ASSERT_EQUAL(pp_iter_next(in.it, TU_WAIT, &v), PP_EOF);
      pp_value_clear(&v);
      CU_ASSERT_EQUAL(tu_joiner_wait(j, TU_WAIT), 1);
      CU_ASSERT_EQUAL(tu_joiner_status(j), PP_OK);
      tu_joiner_free(j);
      pp_iter_free(in.it);
      pp_pool_destroy(pool);
    }
  }
}

/* An input that yields [0, 3), then returns `error`; with `error` PP_OK,
 * an item of 8 bytes with NULL data. */
typedef struct failing_input {
  tu_range range;
  pp_status error;
} failing_input;

static pp_status failing_next(void *state, pp_bytes *item) {
  failing_input *in = state;
  if (in->range.next == 3 && in->error == PP_OK) {
    item->data = NULL;
    item->len = 8;
    return PP_OK;
  }
  return in->range.next == 3 ? in->error : tu_range_next(&in->range, item);
}

/* An input's error reaches pp_iter_next() once, after the items before it;
 * a status that pp_iter_next() keeps for itself (PP_ETIMEOUT, "try
 * again"), or a value that is no status, would be misread there and the
 * error lost: it comes as PP_EINVAL, the message naming what came back.
 * An item with NULL data and a length stops it with PP_EINVAL too, the
 * message naming the item (it read as if the input had said PP_EINVAL). */
static void test_imap_input_reserved_status(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static const struct {
    pp_status returned, reported;
    const char *named;
  } cases[] = {
      {PP_ESYSTEM, PP_ESYSTEM, "input stopped with an error"},
      {PP_ETIMEOUT, PP_EINVAL, "returned PP_ETIMEOUT"},
      {(pp_status)PP_STATUS_COUNT_, PP_EINVAL, "which is not a pp_status"},
      {(pp_status)-5, PP_EINVAL, "returned -5"},
      /* not an error returned: an item it cannot be, named so */
      {PP_OK, PP_EINVAL, "an item of 8 bytes with NULL data"},
  };
  for (size_t c = 0; c < TU_NTESTS(cases); c++) {
    failing_input in = {.error = cases[c].returned};
    tu_range_init(&in.range, 0, 10);
    pp_iter *it = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "square", failing_next, &in, 1, &it),
                          PP_OK);
    pp_value v = {0};
    for (int64_t i = 0; i < 3; i++) {
      int64_t x = -1;
      CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_OK);
      CU_ASSERT_EQUAL(pp_value_i64(&v, &x), PP_OK);
      CU_ASSERT_EQUAL(x, i * i);
      pp_value_clear(&v);
    }
    CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), cases[c].reported);
    CU_ASSERT(tu_contains(v.error, cases[c].named));
    pp_value_clear(&v);
    CU_ASSERT_EQUAL(pp_iter_next(it, TU_WAIT, &v), PP_EOF);
    pp_iter_free(it);
  }
  pp_pool_destroy(pool);
}

int pp_test_suite_imap(void) {
  static const tu_test tests[] = {
      {"imap yields in input order (n=200, chunksize 1 and 7)",
       test_imap_ordered},
      {"imap_unordered yields every result exactly once",
       test_imap_unordered_each_once},
      {"imap_unordered is not held back by a slow item",
       test_imap_unordered_not_held_back},
      {"PP_EOF after the last item, and again", test_imap_eof},
      {"empty input: PP_EOF at once", test_imap_empty},
      {"a failing item is that item's PP_ETASK; iteration continues",
       test_imap_failing_item},
      {"next(timeout) times out, then delivers", test_imap_next_timeout},
      {"freeing an iterator early is safe", test_imap_free_early},
      {"a freed iterator's queued items never run: later calls go at once",
       test_imap_free_drops_queued},
      {"two iterators and a map share the pool", test_imap_interleaved},
      {"threads sharing an iterator get every item once",
       test_imap_shared_by_threads},
      {"threads waiting on one iterator's slow items all get them and EOF",
       test_imap_slow_items_several_waiters},
      {"a second thread ends the owner path, nothing lost",
       test_imap_owner_then_second_thread},
      {"threads taking turns at one iterator, values cleared by the next",
       test_imap_owner_threads_in_turn},
      {"owned value blocks cleared on two threads go once",
       test_imap_owned_blocks},
      {"items of one size and of changing sizes arrive whole, in order",
       test_imap_item_sizes},
      {"a chunk size beyond a frame's count: one chunk, every item",
       test_imap_huge_chunksize},
      {"results of changing sizes in a chunk arrive whole, in order",
       test_imap_result_sizes},
      {"calls with no value or two, among plain values, arrive as set",
       test_imap_values_not_plain},
      {"the input is pulled no further than the limit, lower for big items",
       test_imap_pull_limit},
      {"next_many: batches of any size, mixed with next, every item once",
       test_imap_next_many},
      {"next_many: failures in place, the input's error once, bad arguments",
       test_imap_next_many_failures},
      {"the input function's waits on its own iterator are refused",
       test_imap_input_waits_refused},
      {"the iterator's handle is set before the input function runs",
       test_imap_handle_before_input},
      {"a slow input's big chunk does not hold a free or a terminate",
       test_imap_free_stops_pull},
      {"the input function may free its own iterator: its last call",
       test_imap_input_frees_its_iterator},
      {"an input with no item yet (PP_ENOTREADY) does not hold the pool",
       test_imap_input_not_ready},
      {"an input with no item yet: freed, destroyed, joined once it ends, "
       "terminated (each begun item reported)",
       test_imap_input_not_ready_ends},
      {"an input's PP_ETIMEOUT or a non-status comes as PP_EINVAL, named",
       test_imap_input_reserved_status},
  };
  return tu_add_suite("imap", tests, TU_NTESTS(tests));
}
