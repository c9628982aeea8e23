/* The rings: a worker's frames through shared memory, doorbells through
 * the channel only when the reader sleeps (src/common/ring.h). */
#include <CUnit/CUnit.h>

#include <stdlib.h>
#include <string.h>

#include "internal.h" /* the rings, a task's link */
#include "suites.h"
#include "tasks.h"
#include "util.h"

/* ---- tasks ---- */

/* The worker's link: 2 when both directions switched to the rings, 0 when
 * neither did, 1 for a half switch; plus 10 after this worker's first
 * call. */
static pp_status ring_state(pp_call *call) {
  static int calls;
  return pp_call_return_i64(call, call->link->up + call->link->down +
                                      (calls++ ? 10 : 0));
}

/* Publishes an up-ring position past anything written and rings: the
 * parent must refuse it, not read beyond the ring, and stop this worker
 * (which waits for that). */
static pp_status ring_liar(pp_call *call) {
  pp__rings *r = &call->link->rings;
  if (!call->link->up)
    return pp_call_fail(call, "ring_liar: no rings");
  pp__atomic_set(r->out.head, r->out.pos + PP__RING_SIZE + 1);
  static const unsigned char bell = 0;
  pp__wchan_write(call->link->chan, &bell, 1);
  tu_sleep_ms(10000);
  return pp_call_fail(call, "ring_liar: still running");
}

/* Says RINGED though nobody sent it RING. */
static pp_status stray_ringed(pp_call *call) {
  unsigned char h[PP__WIRE_HEADER_SIZE];
  memset(h, 0, sizeof h);
  memcpy(h, "PPF1", 4);
  h[4] = PP__WIRE_VERSION;
  h[5] = PP__F_RINGED;
  pp__call_send_raw(call, h, sizeof h);
  return pp_call_return_i64(call, 1);
}

/* Sleeps a while, then answers its argument: the parent is asleep by then,
 * so the answer must ring. */
static pp_status late_echo(pp_call *call) {
  tu_sleep_ms(30);
  pp_bytes a;
  pp_status st = pp_call_arg(call, 0, &a);
  return st == PP_OK ? pp_call_return(call, a.data, a.len)
                     : pp_call_fail(call, "late_echo: no argument");
}

pp_status rings_tasks_register(void) {
  pp_status st = pp_register("ring_state", ring_state);
  if (st == PP_OK)
    st = pp_register("ring_liar", ring_liar);
  if (st == PP_OK)
    st = pp_register("late_echo", late_echo);
  if (st == PP_OK)
    st = pp_register("stray_ringed", stray_ringed);
  return st;
}

/* ---- the rings alone ---- */

/* A segment with no lanes: the control page and the two rings. */
typedef struct two_sides {
  unsigned char *segment;
  pp__rings parent, worker;
} two_sides;

static int sides_open(two_sides *s) {
  size_t size = pp__rings_offset(0) + PP__RINGS_BYTES;
  s->segment = calloc(1, size);
  if (!s->segment)
    return 0;
  pp__rings_init(s->segment, 0, 1, &s->parent);
  pp__rings_init(s->segment, 0, 0, &s->worker);
  return 1;
}

/* Bytes in order across the ring's end; a full ring takes what fits. */
static void test_order_and_full(void) {
  two_sides s;
  CU_ASSERT_FATAL(sides_open(&s));
  size_t chunk = PP__RING_SIZE / 3 + 5; /* not a divisor: writes wrap */
  unsigned char *src = malloc(chunk), *all = malloc(4 * PP__RING_SIZE);
  CU_ASSERT_FATAL(src && all);
  pp__buf got = {0};
  size_t written = 0;
  for (int round = 0; round < 12; round++) {
    for (size_t i = 0; i < chunk; i++)
      src[i] = (unsigned char)(written + i);
    size_t n;
    int bell;
    CU_ASSERT_EQUAL(pp__ring_put(&s.parent, src, chunk, &n, &bell), PP_OK);
    CU_ASSERT_EQUAL(n, chunk);
    CU_ASSERT_EQUAL(bell, 0); /* nobody waits */
    written += n;
    CU_ASSERT_EQUAL(pp__ring_take(&s.worker, &got, &n, &bell), PP_OK);
    CU_ASSERT_EQUAL(n, chunk);
    CU_ASSERT_EQUAL(bell, 0);
  }
  int right = pp__buf_len(&got) == written;
  for (size_t i = 0; right && i < written; i++)
    right = pp__buf_head(&got)[i] == (unsigned char)i;
  CU_ASSERT(right);
  /* Full: a write of more than the ring takes the ring's size. */
  size_t n;
  int bell;
  memset(all, 0xAB, 4 * PP__RING_SIZE);
  CU_ASSERT_EQUAL(pp__ring_put(&s.worker, all, 2 * PP__RING_SIZE, &n, &bell),
                  PP_OK);
  CU_ASSERT_EQUAL(n, PP__RING_SIZE);
  CU_ASSERT_EQUAL(pp__ring_put(&s.worker, all, 1, &n, &bell), PP_OK);
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT(pp__rings_ready(&s.parent, PP__RING_DATA));
  CU_ASSERT(!pp__rings_ready(&s.worker, PP__RING_SPACE));
  pp__buf_clear(&got);
  CU_ASSERT_EQUAL(pp__ring_take(&s.parent, &got, &n, &bell), PP_OK);
  CU_ASSERT_EQUAL(n, PP__RING_SIZE);
  CU_ASSERT(pp__rings_ready(&s.worker, PP__RING_SPACE));
  CU_ASSERT(!pp__rings_ready(&s.parent, PP__RING_DATA));
  pp__buf_free(&got);
  free(src);
  free(all);
  free(s.segment);
}

/* The doorbell: a write rings only a reader that said it waits for data,
 * once; a read rings only a writer that waits for room. */
static void test_bells(void) {
  two_sides s;
  CU_ASSERT_FATAL(sides_open(&s));
  pp__buf got = {0};
  size_t n;
  int bell;
  pp__rings_say_waiting(&s.worker, PP__RING_DATA);
  CU_ASSERT_EQUAL(pp__ring_put(&s.parent, "ab", 2, &n, &bell), PP_OK);
  CU_ASSERT_EQUAL(bell, 1);
  CU_ASSERT_EQUAL(pp__ring_put(&s.parent, "cd", 2, &n, &bell), PP_OK);
  CU_ASSERT_EQUAL(bell, 0); /* rung already */
  pp__rings_awake(&s.worker);
  /* A reader waiting for room is not rung by a write... */
  pp__rings_say_waiting(&s.parent, PP__RING_SPACE);
  CU_ASSERT_EQUAL(pp__ring_put(&s.worker, "xy", 2, &n, &bell), PP_OK);
  CU_ASSERT_EQUAL(bell, 0);
  /* ...but by a read that makes room. */
  CU_ASSERT_EQUAL(pp__ring_take(&s.worker, &got, &n, &bell), PP_OK);
  CU_ASSERT_EQUAL(n, 4);
  CU_ASSERT_EQUAL(bell, 1);
  CU_ASSERT(memcmp(pp__buf_head(&got), "abcd", 4) == 0);
  /* Awake, nobody is rung. */
  pp__rings_awake(&s.parent);
  CU_ASSERT_EQUAL(pp__ring_take(&s.parent, &got, &n, &bell), PP_OK);
  CU_ASSERT_EQUAL(n, 2);
  CU_ASSERT_EQUAL(bell, 0);
  pp__buf_free(&got);
  free(s.segment);
}

/* Positions the other side could not have written are refused, and
 * nothing is copied. */
static void test_impossible_positions(void) {
  two_sides s;
  CU_ASSERT_FATAL(sides_open(&s));
  pp__buf got = {0};
  size_t n = 7;
  int bell;
  pp__atomic_set(s.worker.out.head, PP__RING_SIZE + 1);
  CU_ASSERT_EQUAL(pp__ring_take(&s.parent, &got, &n, &bell), PP_EPROTOCOL);
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT_EQUAL(pp__buf_len(&got), 0);
  /* A reader's tail ahead of what was written: the writer would overwrite
   * unread bytes by its count, or wrap it. */
  pp__atomic_set(s.worker.in.tail, 5);
  CU_ASSERT_EQUAL(pp__ring_put(&s.parent, "z", 1, &n, &bell), PP_EPROTOCOL);
  CU_ASSERT_EQUAL(n, 0);
  pp__buf_free(&got);
  free(s.segment);
}

/* ---- through a pool ---- */

static pp_pool *pool_limited(size_t shared_memory_size, int processes,
                             size_t max_message_size) {
  pp_options o;
  pp_options_init(&o);
  o.processes = processes;
  o.shared_memory_size = shared_memory_size;
  o.max_message_size = max_message_size;
  return tu_pool_opts(&o);
}

static pp_pool *pool_with(size_t shared_memory_size, int processes) {
  return pool_limited(shared_memory_size, processes, 0);
}

/* Maps ring_state over `n` items, one a chunk: how many of their workers'
 * links were in each state (counts[0]: neither direction switched, [1]:
 * one, [2]: both), first calls and later ones alike. */
static int map_ring_states(pp_pool *pool, size_t n, size_t counts[3]) {
  pp_bytes *none = calloc(n, sizeof *none);
  pp_result *r = NULL;
  int ok = none && pp_map(pool, "ring_state", none, n, 1, &r) == PP_OK &&
           pp_result_count(r) == n;
  for (size_t i = 0; ok && i < n; i++) {
    int64_t x = -1;
    ok = pp_result_item_i64(r, i, &x) == PP_OK && x % 10 >= 0 && x % 10 < 3;
    if (ok)
      counts[x % 10]++;
  }
  pp_result_free(r);
  free(none);
  return ok;
}

/* A pool that has run a task or two never switches (a short-lived pool
 * does not pay for the rings); once its workers have had a few chunks
 * each, both directions switch together, never one alone; without shared
 * memory, neither ever does. (How the chunks spread over the workers is
 * the scheduler's: a worker slow to start, as under Wine, gets fewer, so
 * the rounds go on until a whole round ran switched.) */
static void test_switch(void) {
  pp_pool *pool = pool_with(0, 2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  size_t first[3] = {0, 0, 0}, round_counts[3] = {0, 0, 0};
  CU_ASSERT(map_ring_states(pool, 2, first));
  CU_ASSERT_EQUAL(first[0], 2);
  int rounds = 0, half = 0;
  for (; rounds < 50 && round_counts[2] < 8; rounds++) {
    memset(round_counts, 0, sizeof round_counts);
    CU_ASSERT(map_ring_states(pool, 8, round_counts));
    half += round_counts[1] != 0;
  }
  CU_ASSERT_EQUAL(half, 0);
  CU_ASSERT_EQUAL(round_counts[2], 8);
  pp_pool_destroy(pool);

  pool = pool_with(PP_NO_SHARED_MEMORY, 2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  size_t none[3] = {0, 0, 0};
  for (int round = 0; round < 10; round++)
    CU_ASSERT(map_ring_states(pool, 8, none));
  CU_ASSERT_EQUAL(none[0], 80);
  pp_pool_destroy(pool);
}

/* Where no memory can be had behind the rings (a full /dev/shm), the
 * workers keep to their channels: every call is answered, and no worker
 * is stopped and replaced (each one's first call is the only one under
 * 10). test_switch() shows that these rounds switch a pool otherwise. */
static void test_unbacked_rings(void) {
  pp_pool *pool = pool_with(0, 2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp__test.rings_unbacked = 1;
  size_t n = 8, firsts = 0, unswitched = 0, answered = 0;
  pp_bytes none[8];
  memset(none, 0, sizeof none);
  for (int round = 0; round < 10; round++) {
    pp_result *r = NULL;
    if (pp_map(pool, "ring_state", none, n, 1, &r) != PP_OK ||
        pp_result_count(r) != n) {
      pp_result_free(r);
      break;
    }
    for (size_t i = 0; i < n; i++) {
      int64_t x = -1;
      if (pp_result_item_i64(r, i, &x) != PP_OK)
        continue;
      answered++;
      firsts += x < 10;
      unswitched += x % 10 == 0;
    }
    pp_result_free(r);
  }
  pp__test.rings_unbacked = 0;
  CU_ASSERT_EQUAL(answered, 80);
  CU_ASSERT_EQUAL(unswitched, 80);
  CU_ASSERT(firsts >= 1 && firsts <= 2);
  pp_pool_destroy(pool);
}

/* `pool`, once its workers have all switched to the rings. */
static pp_pool *switch_to_rings(pp_pool *pool) {
  size_t counts[3] = {0, 0, 0};
  for (int round = 0; pool && round < 20 && counts[2] < 8; round++) {
    memset(counts, 0, sizeof counts);
    if (!map_ring_states(pool, 8, counts))
      break;
  }
  CU_ASSERT_EQUAL(counts[2], 8);
  return pool;
}

/* A pool whose workers have all switched to the rings. */
static pp_pool *ringed_pool(size_t shared_memory_size, int processes) {
  return switch_to_rings(pool_with(shared_memory_size, processes));
}

/* Answers that come while the parent sleeps wake it. */
static void test_sleeping_parent(void) {
  pp_pool *pool = ringed_pool(0, 2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  for (int i = 0; i < 20; i++) {
    int64_t x = i;
    CU_ASSERT_EQUAL(tu_apply_echo(pool, "late_echo", &x, sizeof x), PP_OK);
  }
  pp_pool_destroy(pool);
}

/* Frames bigger than a ring, both ways, where no lane can take them: each
 * side waits for the other to make room. */
static void test_bigger_than_the_ring(void) {
  pp_pool *pool = ringed_pool(PP__LANE_SIZE_MIN, 2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  size_t len = 3 * (size_t)PP__RING_SIZE + 17;
  unsigned char *buf = malloc(len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  for (int round = 0; round < 4; round++) {
    for (size_t i = 0; i < len; i++)
      buf[i] = (unsigned char)(i * 7 + (size_t)round);
    CU_ASSERT_EQUAL(tu_apply_echo(pool, "late_echo", buf, len), PP_OK);
  }
  free(buf);
  pp_pool_destroy(pool);
}

/* Whether the `n` workers in `pids` are still the pool's: a worker slow
 * to start (spawn, under a sanitizer) may be listed only later. */
static int same_workers(pp_pool *pool, const long *pids, size_t n) {
  long now[8];
  size_t m = 0;
  if (pp_pool_worker_pids(pool, now, 8, &m) != PP_OK || m > 8)
    return 0;
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < m && now[j] != pids[i])
      j++;
    if (j == m)
      return 0;
  }
  return 1;
}

/* Answers past max_message_size come in pieces through the rings too,
 * each piece's payload in the up lane or in the ring itself: a map's
 * chunks of 8 values of 40 KiB (RESULTS) past a limit of 64 KiB, an
 * imap's (VALUES), and a value of 3 rings alone; no worker is replaced
 * meanwhile. Each failed with PP_ETOOBIG before. */
static void test_pieces_through_rings(void) {
  pp_pool *pool = switch_to_rings(pool_limited(0, 2, 64 << 10));
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  long pids[8];
  size_t npids = 0;
  CU_ASSERT_EQUAL(pp_pool_worker_pids(pool, pids, 8, &npids), PP_OK);
  enum { N = 40 };
  int64_t seeds[N];
  pp_bytes items[N];
  for (size_t i = 0; i < N; i++) {
    seeds[i] = 77 + (int64_t)i;
    items[i] = tu_i64(&seeds[i]);
  }
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map(pool, "blob", items, N, 8, &r), PP_OK);
  CU_ASSERT_EQUAL(tu_wrong_blobs(r, N, 77, TASK_BLOB_LEN), 0);
  pp_result_free(r);

  tu_range range;
  tu_range_init(&range, 77, 77 + N);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "blob", tu_range_next, &range, 8, &it),
                        PP_OK);
  CU_ASSERT_EQUAL(tu_wrong_imap_blobs(it, N, 77), 0);
  pp_iter_free(it);

  pp_value v = {0};
  int64_t big[2] = {9, 3 * (int64_t)PP__RING_SIZE + 5};
  pp_bytes args[2] = {tu_i64(&big[0]), tu_i64(&big[1])};
  CU_ASSERT_EQUAL(pp_apply(pool, "blob", args, 2, &v), PP_OK);
  CU_ASSERT_EQUAL(v.len, (size_t)big[1]);
  CU_ASSERT(task_blob_right(v.data, v.len, 9));
  pp_value_clear(&v);

  CU_ASSERT(same_workers(pool, pids, npids));
  pp_pool_destroy(pool);
}

/* A worker that publishes an impossible position is stopped with a
 * protocol error; its call fails, the pool goes on. */
static void test_lying_ring(void) {
  pp_pool *pool = ringed_pool(0, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "ring_liar", NULL, 0, &v), PP_EPROTOCOL);
  CU_ASSERT(tu_contains(v.error, "ring"));
  pp_value_clear(&v);
  int64_t x = 5;
  CU_ASSERT_EQUAL(tu_apply_echo(pool, "late_echo", &x, sizeof x), PP_OK);
  pp_pool_destroy(pool);
}

/* A switch the parent did not ask for is a protocol error too, on a fresh
 * worker and on one already on the rings. */
static void test_stray_switch(void) {
  for (int ringed = 0; ringed < 2; ringed++) {
    pp_pool *pool = ringed ? ringed_pool(0, 1) : pool_with(0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    pp_value v = {0};
    CU_ASSERT_EQUAL(pp_apply(pool, "stray_ringed", NULL, 0, &v), PP_EPROTOCOL);
    CU_ASSERT(tu_contains(v.error, "out of place"));
    pp_value_clear(&v);
    CU_ASSERT_EQUAL(pp_apply(pool, "ring_state", NULL, 0, &v), PP_OK);
    pp_value_clear(&v);
    pp_pool_destroy(pool);
  }
}

int pp_test_suite_rings(void) {
  CU_pSuite s = CU_add_suite("rings", NULL, NULL);
  if (!s)
    return -1;
  static const struct {
    const char *name;
    CU_TestFunc fn;
  } tests[] = {
      {"bytes in order across the end; a full ring takes what fits",
       test_order_and_full},
      {"a bell for a sleeper only, once", test_bells},
      {"impossible positions refused", test_impossible_positions},
      {"no memory behind the rings: the channel goes on", test_unbacked_rings},
      {"both directions switch once busy, together; never without shared "
       "memory",
       test_switch},
      {"answers wake a sleeping parent", test_sleeping_parent},
      {"answers past max_message_size come in pieces through the rings",
       test_pieces_through_rings},
      {"frames bigger than a ring, both ways", test_bigger_than_the_ring},
      {"a worker with an impossible ring position is stopped", test_lying_ring},
      {"a switch the parent did not ask for is refused", test_stray_switch},
  };
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
    if (!CU_add_test(s, tests[i].name, tests[i].fn))
      return -1;
  return 0;
}
