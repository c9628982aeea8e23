/* Suite "lanes": big arguments, results and record chunks travel through
   shared memory, with the same outcomes as through the channel; a lane that
   is full or absent falls back to the channel; a worker that lies about
   its lane is stopped; no shared-memory name outlives the worker's
   answer to its offer. */
#ifndef _WIN32
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "internal.h" /* the lane ring, pp__call_send_raw */
#include "procpool.h"
#include "suites.h"
#include "util.h"

#ifndef _WIN32
#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

/* ---- tasks ---- */

/* A byte pattern that differs per buffer and per position. */
static unsigned char pattern(size_t buffer, size_t i) {
  return (unsigned char)(buffer * 131u + i * 7u + (i >> 12));
}

/* blob_make(n, k): n bytes of pattern k (a big result from a small call). */
static pp_status blob_make(pp_call *call) {
  int64_t n = 0, k = 0;
  if (pp_call_arg_i64(call, 0, &n) != PP_OK ||
      pp_call_arg_i64(call, 1, &k) != PP_OK || n < 0)
    return pp_call_fail(call, "blob_make: needs n >= 0 and k");
  unsigned char *p = malloc(n ? (size_t)n : 1);
  if (!p)
    return pp_call_fail(call, "blob_make: out of memory");
  for (size_t i = 0; i < (size_t)n; i++)
    p[i] = pattern((size_t)k, i);
  pp_status st = pp_call_return(call, p, (size_t)n);
  free(p);
  return st;
}

/* blob_check(bytes, k): 1 when the bytes are pattern k (a big argument for
 * a small result). */
static pp_status blob_check(pp_call *call) {
  pp_bytes b;
  int64_t k = 0;
  if (pp_call_arg(call, 0, &b) != PP_OK ||
      pp_call_arg_i64(call, 1, &k) != PP_OK)
    return pp_call_fail(call, "blob_check: needs bytes and k");
  const unsigned char *p = b.data;
  for (size_t i = 0; i < b.len; i++)
    if (p[i] != pattern((size_t)k, i))
      return pp_call_return_i64(call, 0);
  return pp_call_return_i64(call, 1);
}

/* spare_held(): the bytes the worker's process keeps spare (see spare.c). */
static pp_status spare_held(pp_call *call) {
  return pp_call_return_i64(call, (int64_t)pp__spare_held());
}

/* The echo of a buffer, except that a buffer starting with 0xDD kills the
 * worker. */
static pp_status echo_or_die(pp_call *call) {
  pp_bytes b;
  if (pp_call_arg(call, 0, &b) != PP_OK)
    return pp_call_fail(call, "echo_or_die: needs bytes");
  if (b.len && ((const unsigned char *)b.data)[0] == 0xDD)
    exit(7);
  return pp_call_return(call, b.data, b.len);
}

/* Sets the echo of its buffer as its value, then fails when the buffer's
 * first byte is odd: a failure must drop a value already written. */
static pp_status echo_then_fail_odd(pp_call *call) {
  pp_bytes b;
  if (pp_call_arg(call, 0, &b) != PP_OK || b.len == 0)
    return pp_call_fail(call, "echo_then_fail_odd: needs bytes");
  pp_status st = pp_call_return(call, b.data, b.len);
  if (st != PP_OK)
    return st;
  if (((const unsigned char *)b.data)[0] & 1)
    return pp_call_fail(call, "odd first byte %u",
                        (unsigned)((const unsigned char *)b.data)[0]);
  return PP_OK;
}

/* x * x for int64 records, failing every multiple of 7 with its value. */
static pp_status square_but_7s(pp_call *call) {
  int64_t x = 0;
  if (pp_call_arg_i64(call, 0, &x) != PP_OK)
    return pp_call_fail(call, "square_but_7s: needs an int64");
  if (x % 7 == 0)
    return pp_call_fail(call, "refused %lld", (long long)x);
  return pp_call_return_i64(call, x * x);
}

/* Sends a lane frame that points where it should not: "outside" points
 * past the lane's end. */
static pp_status lying_lane(pp_call *call) {
  unsigned char h[PP__WIRE_HEADER_SIZE + PP__LANE_REF_SIZE];
  memset(h, 0, sizeof h);
  memcpy(h, "PPF1", 4);
  h[4] = PP__WIRE_VERSION;
  h[5] = PP__F_RESULTS;
  h[6] = PP__FRAME_LANE;
  h[8] = PP__LANE_REF_SIZE;
  /* position 16, length 0xFFFFFF00: beyond any lane */
  h[PP__WIRE_HEADER_SIZE] = 16;
  h[PP__WIRE_HEADER_SIZE + 4] = 0x00;
  h[PP__WIRE_HEADER_SIZE + 5] = 0xFF;
  h[PP__WIRE_HEADER_SIZE + 6] = 0xFF;
  h[PP__WIRE_HEADER_SIZE + 7] = 0xFF;
  pp__call_send_raw(call, h, sizeof h);
  return pp_call_return_i64(call, 1);
}

pp_status lanes_tasks_register(void) {
  static const struct {
    const char *name;
    pp_task_fn fn;
  } table[] = {{"blob_make", blob_make},
               {"blob_check", blob_check},
               {"spare_held", spare_held},
               {"echo_or_die", echo_or_die},
               {"echo_then_fail_odd", echo_then_fail_odd},
               {"square_but_7s", square_but_7s},
               {"lying_lane", lying_lane}};
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    pp_status st = pp_register(table[i].name, table[i].fn);
    if (st != PP_OK)
      return st;
  }
  return PP_OK;
}

/* ---- helpers ---- */

static pp_pool *pool_with_lanes(size_t lane_size) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.shared_memory_size = lane_size;
  return tu_pool_opts(&o);
}

/* Maps echo over n buffers of `len` bytes (each its own pattern) and
 * checks every result; returns the number of right results. */
static size_t echo_round_trip(pp_pool *pool, size_t n, size_t len,
                              size_t chunksize) {
  unsigned char **bufs = calloc(n, sizeof *bufs);
  pp_bytes *items = calloc(n, sizeof *items);
  size_t right = 0;
  for (size_t k = 0; bufs && items && k < n; k++) {
    bufs[k] = malloc(len ? len : 1);
    if (!bufs[k])
      goto out;
    for (size_t i = 0; i < len; i++)
      bufs[k][i] = pattern(k, i);
    items[k] = (pp_bytes){bufs[k], len};
  }
  pp_result *r = NULL;
  pp_status st = pp_map(pool, "echo", items, n, chunksize, &r);
  CU_ASSERT_EQUAL(st, PP_OK);
  for (size_t k = 0; st == PP_OK && k < n; k++) {
    pp_bytes out;
    if (pp_result_item(r, k, &out) == PP_OK && out.len == len &&
        (len == 0 || memcmp(out.data, bufs[k], len) == 0))
      right++;
  }
  pp_result_free(r);
out:
  for (size_t k = 0; bufs && k < n; k++)
    free(bufs[k]);
  free(bufs);
  free(items);
  return right;
}

/* ---- tests ---- */

/* The ring itself: extents in order, none wraps, a full lane says no, an
 * empty one starts again at its first byte. */
static void test_ring(void) {
  static unsigned char mem[PP__LANE_CONTROL + 2 * 1024];
  pp__lane down, up;
  memset(mem, 0, sizeof mem);
  pp__lanes_init(mem, NULL, 1024, &down, &up);
  CU_ASSERT_PTR_EQUAL(down.base, mem + PP__LANE_CONTROL);
  CU_ASSERT_PTR_EQUAL(up.base, mem + PP__LANE_CONTROL + 1024);
  uint32_t a, b, c;
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 400, &a), down.base);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 400, &b), down.base + 400);
  /* 224 bytes left at the end: 300 would wrap, and the start is taken. */
  CU_ASSERT_PTR_NULL(pp__lane_reserve(&down, 300, &c));
  CU_ASSERT_PTR_NULL(pp__lane_reserve(&down, 1025, &c));
  pp__lane_release(&down, a + 400);
  /* Now it fits at the start; the skipped tail is released with it. */
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 300, &c), down.base);
  CU_ASSERT_EQUAL(c & 1023u, 0u);
  pp__lane_release(&down, b + 400);
  pp__lane_release(&down, c + 300);
  /* Empty: the next extent starts at the first byte again. */
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 1024, &a), down.base);
  pp__lane_release(&down, a + 1024);

  /* A stream of extents, one or two in flight, keeps to the lane's start
   * once it is free: the third goes back to the first's place... */
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 200, &a), down.base);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 200, &b), down.base + 200);
  pp__lane_release(&down, a + 200);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 200, &c), down.base);
  /* ...and the next one after the third, once the second is done. */
  pp__lane_release(&down, b + 200);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 200, &a), down.base + 200);
  pp__lane_release(&down, c + 200);
  pp__lane_release(&down, a + 200);
  /* Small extents, several in flight but together an eighth of the lane
   * at most, go back to its start once it is free: a stream of an imap's
   * chunks keeps to the lane's first pages. */
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 20, &a), down.base);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 20, &b), down.base + 20);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 20, &c), down.base + 40);
  pp__lane_release(&down, a + 20);
  uint32_t d;
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 20, &d), down.base);
  pp__lane_release(&down, b + 20);
  pp__lane_release(&down, c + 20);
  pp__lane_release(&down, d + 20);
  /* With more in flight than that and than the new extent, it goes on from
   * the head, keeping the room in front of it. */
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 100, &a), down.base);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 100, &b), down.base + 100);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 100, &c), down.base + 200);
  pp__lane_release(&down, a + 100);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&down, 100, &a), down.base + 300);

  /* The up lane's writer releases what the reader published before every
   * extent. Once the lane was empty and started again at its first byte,
   * that position lies behind the tail, and must not take it back: the
   * lane would count as full. */
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&up, 600, &a), up.base);
  uint32_t published = a + 600;
  pp__lane_release(&up, published);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&up, 300, &b), up.base);
  pp__lane_release(&up, published); /* read again, not moved on */
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&up, 300, &c), up.base + 300);
  CU_ASSERT_EQUAL(up.head - up.tail, 600u);
  pp__lane_release(&up, b + 300); /* and forward it goes */
  CU_ASSERT_EQUAL(up.head - up.tail, 300u);
  /* Across the wrap of the 32-bit positions too. */
  up.head = up.tail = 0xFFFFFF00u; /* empty: the next lap starts at 0 */
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve(&up, 200, &a), up.base);
  CU_ASSERT_EQUAL(a, 0u);
  pp__lane_release(&up, 0xFFFFFF00u); /* behind, across the wrap */
  CU_ASSERT_EQUAL(up.tail, 0u);
  pp__lane_release(&up, a + 200);
  CU_ASSERT_EQUAL(up.tail, a + 200);
  CU_ASSERT_EQUAL(up.head, up.tail);

  /* Where the aligned reserve puts an extent: its byte 4 on a multiple of
   * 16, the bytes skipped for it released with it. */
  pp__lane al;
  static unsigned char mem2[PP__LANE_CONTROL + 2 * 1024];
  pp__lanes_init(mem2, NULL, 1024, &al, &up);
  unsigned char *p = pp__lane_reserve_aligned(&al, 100, 4, 16, &a);
  CU_ASSERT_PTR_EQUAL(p, al.base + 12);
  CU_ASSERT_EQUAL((uintptr_t)(p + 4) % 16, 0u);
  p = pp__lane_reserve_aligned(&al, 100, 4, 16, &b);
  CU_ASSERT_PTR_EQUAL(p, al.base + 124);
  CU_ASSERT_EQUAL((uintptr_t)(p + 4) % 16, 0u);
  /* 800 bytes do not fit before the end: they go to the start once free */
  CU_ASSERT_PTR_NULL(pp__lane_reserve_aligned(&al, 800, 4, 16, &c));
  pp__lane_release(&al, a + 100);
  pp__lane_release(&al, b + 100);
  p = pp__lane_reserve_aligned(&al, 1012, 4, 16, &c);
  CU_ASSERT_PTR_EQUAL(p, al.base + 12);
  CU_ASSERT_PTR_NULL(pp__lane_reserve_aligned(&al, 1013, 4, 16, &c));
  pp__lane_release(&al, c + 1012);

  /* A stream of aligned extents keeps to the lane's start as well: the
   * bytes skipped to align the one in flight do not make it count as
   * bigger than the next. */
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve_aligned(&al, 100, 4, 16, &a),
                      al.base + 12);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve_aligned(&al, 100, 4, 16, &b),
                      al.base + 124); /* 12 bytes skipped for it */
  pp__lane_release(&al, a + 100);
  CU_ASSERT_PTR_EQUAL(pp__lane_reserve_aligned(&al, 100, 4, 16, &c),
                      al.base + 12);

  /* A lane frame is resolved only inside the lane. */
  pp__buf out = {0};
  pp__frame f;
  int complete = 0;
  CU_ASSERT_EQUAL(pp__lane_put_frame(&out, PP__F_RESULTS, 5, 1024 + 8, 100),
                  PP_OK);
  CU_ASSERT_EQUAL(pp__frame_peek(&out, 1 << 20, &f, &complete), PP_OK);
  CU_ASSERT_EQUAL(complete, 1);
  CU_ASSERT_EQUAL(f.flags, PP__FRAME_LANE);
  uint32_t end = 0;
  CU_ASSERT_PTR_NULL(pp__lane_resolve(&up, &f, &end));
  CU_ASSERT_PTR_EQUAL(f.payload, up.base + 8);
  CU_ASSERT_EQUAL(f.len, 100u);
  CU_ASSERT_EQUAL(end, 1024u + 8 + 100);
  pp__buf_clear(&out);
  pp__lane_put_frame(&out, PP__F_RESULTS, 5, 1000, 100); /* runs past */
  pp__frame_peek(&out, 1 << 20, &f, &complete);
  CU_ASSERT_PTR_NOT_NULL(pp__lane_resolve(&up, &f, &end));
  pp__lane none = {0};
  pp__buf_clear(&out);
  pp__lane_put_frame(&out, PP__F_RESULTS, 5, 0, 8);
  pp__frame_peek(&out, 1 << 20, &f, &complete);
  CU_ASSERT_PTR_NOT_NULL(pp__lane_resolve(&none, &f, &end));
  /* Only answers and work travel in lanes, and a lane frame is 8 bytes. */
  pp__buf_clear(&out);
  pp__lane_put_frame(&out, PP__F_READY, 0, 0, 8);
  CU_ASSERT_EQUAL(pp__frame_peek(&out, 1 << 20, &f, &complete), PP_EPROTOCOL);
  pp__buf_free(&out);
  CU_ASSERT_EQUAL(pp__lane_size_for(0), PP__LANE_SIZE_MIN);
  CU_ASSERT_EQUAL(pp__lane_size_for((5u << 20) + 1), (size_t)8 << 20);
}

/* Big buffers both ways, one per chunk and three per chunk, through the
 * default lanes: every byte comes back. */
static void test_big_echo(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(echo_round_trip(pool, 12, (size_t)1 << 20, 1), 12);
  CU_ASSERT_EQUAL(echo_round_trip(pool, 12, (size_t)1 << 20, 3), 12);
  /* Bigger than a lane: through the channel. */
  CU_ASSERT_EQUAL(echo_round_trip(pool, 2, PP__LANE_SIZE_DEFAULT + 1024, 1), 2);
  /* Just below and above the size that takes the lane. */
  CU_ASSERT_EQUAL(echo_round_trip(pool, 40, PP__LANE_MIN - 64, 1), 40);
  CU_ASSERT_EQUAL(echo_round_trip(pool, 40, PP__LANE_MIN + 64, 1), 40);
  pp_pool_destroy(pool);
}

/* pp_map_async of `n` echoes of `len` bytes: its arguments are copied at
 * submission and into the lane later, unlike a blocking map's. Returns how
 * many came back whole. */
static size_t echo_async(pp_pool *pool, size_t n, size_t len) {
  unsigned char *buf = malloc(len);
  pp_bytes *items = calloc(n, sizeof *items);
  size_t right = 0;
  pp_result *r = NULL;
  if (buf && items) {
    for (size_t i = 0; i < len; i++)
      buf[i] = pattern(n, i);
    for (size_t k = 0; k < n; k++)
      items[k] = (pp_bytes){buf, len};
    CU_ASSERT_EQUAL(pp_map_async(pool, "echo", items, n, 1, NULL, &r), PP_OK);
    CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
    for (size_t k = 0; k < n; k++) {
      pp_bytes out;
      if (pp_result_item(r, k, &out) == PP_OK && out.len == len &&
          memcmp(out.data, buf, len) == 0)
        right++;
    }
    pp_result_free(r);
  }
  free(buf);
  free(items);
  return right;
}

/* Copies of a megabyte and more are split into pieces that the scheduler
 * and a helper thread take in turn: every byte must land where it belongs,
 * at every size around the split (one piece, a piece and a bit, pieces
 * and a tail, values big enough to be given huge pages), both ways, for
 * lent and copied arguments and for records. The pattern changes with
 * the position inside each 4 KiB page, so a piece copied to the wrong
 * place shows. */
static void test_big_copies_split(void) {
  const size_t sizes[] = {PP__COPIER_MIN - 1,    PP__COPIER_MIN,
                          PP__COPIER_MIN + 1,    (size_t)5 * (256 << 10) + 7,
                          ((size_t)4 << 20) + 1, ((size_t)6 << 20) - 3};
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    CU_ASSERT_EQUAL(echo_round_trip(pool, 3, sizes[i], 1), 3);
    CU_ASSERT_EQUAL(echo_async(pool, 3, sizes[i]), 3);
  }
  /* Records in one chunk of 2.4 MB each way. */
  enum { N = 300000 };
  int64_t *in = malloc(N * sizeof *in), *out = calloc(N, sizeof *out);
  CU_ASSERT_FATAL(in && out);
  for (size_t i = 0; i < N; i++)
    in[i] = (int64_t)i - 1000;
  pp_records rec = {in, N, sizeof *in, out, sizeof *out, NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "square", &rec, N, &r), PP_OK);
  size_t right = 0;
  for (size_t i = 0; i < N; i++)
    right += out[i] == in[i] * in[i];
  CU_ASSERT_EQUAL(right, N);
  pp_result_free(r);
  free(in);
  free(out);
  pp_pool_destroy(pool);
}

/* 1 when `v` holds `len` bytes of pattern k. */
static int is_pattern(const void *data, size_t len, size_t want_len, size_t k) {
  const unsigned char *p = data;
  if (!p || len != want_len)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (p[i] != pattern(k, i))
      return 0;
  return 1;
}

static pp_status big_blob_async(pp_pool *pool, int64_t len, int64_t k,
                                pp_result **out) {
  int64_t a[2] = {len, k};
  pp_bytes args[2] = {tu_i64(&a[0]), tu_i64(&a[1])};
  return pp_apply_async(pool, "blob_make", args, 2, NULL, out);
}

/* Two big items per imap chunk: the chunk's values share one block. */
typedef struct twin_input {
  size_t next, count, len;
  unsigned char *buf;
} twin_input;

static pp_status twin_next(void *state, pp_bytes *item) {
  twin_input *in = state;
  if (in->next == in->count)
    return PP_EOF;
  for (size_t i = 0; i < in->len; i++)
    in->buf[i] = pattern(in->next, i);
  in->next++;
  *item = (pp_bytes){in->buf, in->len};
  return PP_OK;
}

/* Big values get blocks that are kept a moment once freed and handed to
 * the next big values: a reused block must hold its new value whole, and
 * must never be one a value still held lies in, whether the value came
 * from a result, from pp_apply() or from an imap chunk. */
static void test_big_values_reuse_blocks(void) {
  enum { N = 6 };
  const int64_t len = (int64_t)2 << 20;
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_result *r[N], *again[N / 2];
  for (int64_t k = 0; k < N; k++)
    CU_ASSERT_EQUAL_FATAL(big_blob_async(pool, len + k, k, &r[k]), PP_OK);
  for (int k = 0; k < N; k++)
    CU_ASSERT_EQUAL(pp_result_get(r[k], TU_WAIT), PP_OK);
  /* Every other one freed: their blocks become spare... */
  for (int k = 0; k < N; k += 2)
    pp_result_free(r[k]);
  CU_ASSERT(pp__spare_held() >= (size_t)(N / 2) * (size_t)len);
  /* ...and are what the next values of about their size get. */
  for (int64_t j = 0; j < N / 2; j++)
    CU_ASSERT_EQUAL_FATAL(big_blob_async(pool, len + 10 + j, 10 + j, &again[j]),
                          PP_OK);
  for (int j = 0; j < N / 2; j++) {
    pp_bytes v = {NULL, 0};
    CU_ASSERT_EQUAL(pp_result_get(again[j], TU_WAIT), PP_OK);
    CU_ASSERT_EQUAL(pp_result_value(again[j], &v), PP_OK);
    CU_ASSERT(is_pattern(v.data, v.len, (size_t)(len + 10 + j), 10 + j));
  }
  for (int k = 1; k < N; k += 2) {
    pp_bytes v = {NULL, 0};
    CU_ASSERT_EQUAL(pp_result_value(r[k], &v), PP_OK);
    CU_ASSERT(is_pattern(v.data, v.len, (size_t)(len + k), k));
    pp_result_free(r[k]);
  }
  for (int j = 0; j < N / 2; j++)
    pp_result_free(again[j]);

  /* pp_apply() hands the block over with the value. */
  for (int64_t k = 20; k < 23; k++) {
    int64_t a[2] = {len - k, k};
    pp_bytes args[2] = {tu_i64(&a[0]), tu_i64(&a[1])};
    pp_value v = {0};
    CU_ASSERT_EQUAL(pp_apply(pool, "blob_make", args, 2, &v), PP_OK);
    CU_ASSERT(is_pattern(v.data, v.len, (size_t)(len - k), (size_t)k));
    CU_ASSERT_EQUAL(((const unsigned char *)v.data)[v.len], '\0');
    pp_value_clear(&v);
  }

  /* imap: a chunk of two big values in one block, cleared one by one. */
  twin_input in = {0, 6, (size_t)1 << 20, malloc((size_t)1 << 20)};
  CU_ASSERT_PTR_NOT_NULL_FATAL(in.buf);
  pp_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_imap(pool, "echo", twin_next, &in, 2, &it), PP_OK);
  pp_value held = {0};
  size_t right = 0;
  for (size_t k = 0; k < in.count; k++) {
    pp_value v = {0};
    if (pp_iter_next(it, TU_WAIT, &v) != PP_OK)
      break;
    right += is_pattern(v.data, v.len, in.len, k);
    if (k % 2 == 0) {
      held = v; /* its twin is cleared first */
      continue;
    }
    pp_value_clear(&v);
    right += is_pattern(held.data, held.len, in.len, k - 1);
    pp_value_clear(&held);
  }
  CU_ASSERT_EQUAL(right, in.count + in.count / 2);
  pp_iter_free(it);
  free(in.buf);
  pp_pool_destroy(pool);
}

/* Makes a big value of `len` bytes and frees it: its block is then kept
 * spare. */
static void leave_spare(pp_pool *pool, int64_t len, int64_t k) {
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(big_blob_async(pool, len, k, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  pp_result_free(r);
  CU_ASSERT(pp__spare_held() >= (size_t)len);
}

/* Spare blocks are memory the program had a moment ago, held a moment
 * longer: an idle pool gives them back after about a second, and the last
 * pool destroyed gives them back at once. A value that outlives every
 * pool is freed, not kept. */
static void test_spares_go_back(void) {
  const int64_t len = (int64_t)3 << 20;
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  leave_spare(pool, len, 1);
  /* Nothing else happens: the scheduler gives them back on its own. */
  for (int waited = 0; pp__spare_held() && waited < 100; waited++)
    tu_sleep_ms(50);
  CU_ASSERT_EQUAL(pp__spare_held(), 0);

  int64_t a[2] = {len, 3};
  pp_bytes args[2] = {tu_i64(&a[0]), tu_i64(&a[1])};
  pp_value kept = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "blob_make", args, 2, &kept), PP_OK);
  leave_spare(pool, len, 2);
  pp_pool_destroy(pool);
  CU_ASSERT_EQUAL(pp__spare_held(), 0);
  /* Its pool gone, the value is still whole, and is freed when cleared. */
  CU_ASSERT(is_pattern(kept.data, kept.len, (size_t)len, 3));
  pp_value_clear(&kept);
  CU_ASSERT_EQUAL(pp__spare_held(), 0);
}

/* One thread of test_spares_many_threads: big values of its own pattern,
 * each checked whole, then cleared, so that blocks go back and forth
 * between the threads' values through the spares. */
typedef struct spare_user {
  pp_pool *pool;
  int64_t k; /* its pattern */
  int right; /* values that came back whole */
} spare_user;

enum { SPARE_ROUNDS = 12 };

static void spare_user_main(void *arg) {
  spare_user *u = arg;
  for (int64_t i = 0; i < SPARE_ROUNDS; i++) {
    /* Sizes that differ a little, so that blocks are reused across them. */
    int64_t a[2] = {((int64_t)1 << 20) + 4096 * ((u->k + i) % 5), u->k};
    pp_bytes args[2] = {tu_i64(&a[0]), tu_i64(&a[1])};
    pp_value v = {0};
    if (pp_apply(u->pool, "blob_make", args, 2, &v) == PP_OK &&
        is_pattern(v.data, v.len, (size_t)a[0], (size_t)u->k))
      u->right++;
    pp_value_clear(&v);
  }
}

/* Threads taking and giving back spare blocks at once, while the scheduler
 * trims them: each value whole, every time. */
static void test_spares_many_threads(void) {
  enum { THREADS = 4 };
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  spare_user users[THREADS];
  tu_thread *threads[THREADS];
  for (int t = 0; t < THREADS; t++) {
    users[t] = (spare_user){pool, 30 + t, 0};
    threads[t] = tu_thread_start(spare_user_main, &users[t]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(threads[t]);
  }
  for (int t = 0; t < THREADS; t++) {
    tu_thread_join(threads[t]);
    CU_ASSERT_EQUAL(users[t].right, SPARE_ROUNDS);
  }
  pp_pool_destroy(pool);
  CU_ASSERT_EQUAL(pp__spare_held(), 0);
}

#ifndef _WIN32
/* A worker forked while its parent keeps spares starts without them: they
 * are the parent's, and no scheduler of its own would ever trim them. */
static void test_fork_drops_spares(void) {
  const int64_t len = (int64_t)2 << 20;
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  leave_spare(pool, len, 4);
  pp_options o;
  pp_options_init(&o);
  o.processes = 1;
  o.context = PP_CONTEXT_FORK;
  pp_pool *forked = tu_pool_opts(&o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(forked);
  int64_t held = -1;
  CU_ASSERT_EQUAL(tu_apply_i64(forked, "spare_held", 0, &held), PP_OK);
  CU_ASSERT_EQUAL(held, 0);
  pp_pool_destroy(forked);
  pp_pool_destroy(pool);
}
#endif

/* Big results from small calls and big calls with small results, under
 * apply_async, many in flight. */
static void test_big_one_way(void) {
  enum { N = 24 };
  const int64_t len = 300 << 10;
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_result *made[N];
  for (int64_t k = 0; k < N; k++) {
    int64_t a[2] = {len + k, k};
    pp_bytes args[2] = {tu_i64(&a[0]), tu_i64(&a[1])};
    CU_ASSERT_EQUAL(pp_apply_async(pool, "blob_make", args, 2, NULL, &made[k]),
                    PP_OK);
  }
  size_t right = 0;
  for (int64_t k = 0; k < N; k++) {
    pp_bytes v;
    CU_ASSERT_EQUAL(pp_result_get(made[k], TU_WAIT), PP_OK);
    if (pp_result_value(made[k], &v) != PP_OK || v.len != (size_t)(len + k))
      continue;
    /* Sent back for checking: a big argument, a small result. */
    pp_bytes args[2] = {v, tu_i64(&k)};
    pp_value ok = {0};
    int64_t yes = 0;
    if (pp_apply(pool, "blob_check", args, 2, &ok) == PP_OK &&
        pp_value_i64(&ok, &yes) == PP_OK && yes == 1)
      right++;
    pp_value_clear(&ok);
  }
  CU_ASSERT_EQUAL(right, N);
  for (int k = 0; k < N; k++)
    pp_result_free(made[k]);
  pp_pool_destroy(pool);
}

/* A blocking starmap lends its big arguments: encoded into the lanes when
 * sent, re-sent from the caller's memory if a worker dies first. */
static void test_lent_starmap(void) {
  enum { N = 16 };
  size_t len = (size_t)600 << 10;
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  unsigned char *bufs[N];
  int64_t keys[N];
  pp_bytes argv[N][2];
  pp_args items[N];
  for (size_t k = 0; k < N; k++) {
    bufs[k] = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bufs[k]);
    for (size_t i = 0; i < len; i++)
      bufs[k][i] = pattern(k, i);
    keys[k] = (int64_t)k;
    argv[k][0] = (pp_bytes){bufs[k], len};
    argv[k][1] = tu_i64(&keys[k]);
    items[k] = (pp_args){argv[k], 2};
  }
  for (size_t chunksize = 1; chunksize <= 4; chunksize *= 2) {
    pp_result *r = NULL;
    CU_ASSERT_EQUAL(pp_starmap(pool, "blob_check", items, N, chunksize, &r),
                    PP_OK);
    size_t right = 0;
    for (size_t k = 0; k < N; k++) {
      int64_t yes = 0;
      right += pp_result_item_i64(r, k, &yes) == PP_OK && yes == 1;
    }
    CU_ASSERT_EQUAL(right, N);
    pp_result_free(r);
  }
  for (size_t k = 0; k < N; k++)
    free(bufs[k]);
  pp_pool_destroy(pool);
}

/* Values are written where the answer is built: in a chunk mixing values
 * and failures, a failure that follows a value it had set reports only its
 * message, and the values around it arrive whole. Big items (the lane) and
 * small ones (the channel). */
static void test_value_then_failure(void) {
  enum { N = 12 };
  static const size_t lens[] = {100, PP__LANE_MIN + 64};
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
    unsigned char *bufs[N] = {0};
    pp_bytes items[N];
    for (size_t k = 0; k < N; k++) {
      bufs[k] = malloc(lens[l]);
      CU_ASSERT_PTR_NOT_NULL_FATAL(bufs[k]);
      for (size_t i = 0; i < lens[l]; i++)
        bufs[k][i] = pattern(k, i);
      bufs[k][0] = (unsigned char)k;
      items[k] = (pp_bytes){bufs[k], lens[l]};
    }
    pp_result *r = NULL;
    CU_ASSERT_EQUAL(pp_map(pool, "echo_then_fail_odd", items, N, 4, &r),
                    PP_ETASK);
    size_t right = 0;
    for (size_t k = 0; k < N; k++) {
      pp_bytes out;
      pp_status st = pp_result_item(r, k, &out);
      if (k & 1)
        right += st == PP_ETASK &&
                 tu_contains((const char *)out.data, "odd first byte");
      else
        right += st == PP_OK && out.len == lens[l] &&
                 memcmp(out.data, bufs[k], lens[l]) == 0;
    }
    CU_ASSERT_EQUAL(right, N);
    pp_result_free(r);
    for (size_t k = 0; k < N; k++)
      free(bufs[k]);
  }
  pp_pool_destroy(pool);
}

/* Records in big chunks, some failing: the same outcome as anywhere. */
static void test_records(void) {
  enum { N = 300000 };
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t *in = malloc(N * sizeof *in), *out = calloc(N, sizeof *out);
  CU_ASSERT_FATAL(in && out);
  for (size_t i = 0; i < N; i++)
    in[i] = (int64_t)i + 1;
  pp_records rec = {in, N, sizeof *in, out, sizeof *out, NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "square", &rec, 0, &r), PP_OK);
  size_t right = 0;
  for (size_t i = 0; i < N; i++)
    right += out[i] == in[i] * in[i];
  CU_ASSERT_EQUAL(right, N);
  pp_result_free(r);

  memset(out, 0, N * sizeof *out);
  CU_ASSERT_EQUAL(pp_map_records(pool, "square_but_7s", &rec, 0, &r), PP_ETASK);
  CU_ASSERT(tu_contains(pp_result_error(r), "refused 7"));
  right = 0;
  for (size_t i = 0; i < N; i++)
    right += in[i] % 7 == 0 || out[i] == in[i] * in[i];
  CU_ASSERT_EQUAL(right, N);
  pp_result_free(r);
  free(in);
  free(out);
  pp_pool_destroy(pool);
}

/* Small lanes: items that fit share it, items that do not take the
 * channel, and when the lane is busy the channel takes them too. */
static void test_small_lane_falls_back(void) {
  pp_pool *pool = pool_with_lanes(PP__LANE_SIZE_MIN);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(echo_round_trip(pool, 60, 40 << 10, 1), 60);
  CU_ASSERT_EQUAL(echo_round_trip(pool, 60, 40 << 10, 2), 60);
  CU_ASSERT_EQUAL(echo_round_trip(pool, 6, 200 << 10, 1), 6);
  pp_pool_destroy(pool);
}

/* Shared memory that cannot get memory behind its pages (a full
 * /dev/shm): every frame takes the channel instead, nothing is lost and
 * nothing crashes. The hook is seen by fork workers only; spawned ones
 * have the memory and use their up lane. */
static void test_unbacked_lanes(void) {
  pp__test.lanes_unbacked = 1;
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL(pool);
  if (pool) {
    CU_ASSERT_EQUAL(echo_round_trip(pool, 6, (size_t)1 << 20, 1), 6);
    CU_ASSERT_EQUAL(echo_round_trip(pool, 6, (size_t)1 << 20, 2), 6);
    pp_pool_destroy(pool);
  }
  pp__test.lanes_unbacked = 0;
}

/* No shared memory at all: the same results through the channel. */
static void test_without_shared_memory(void) {
  pp_pool *pool = pool_with_lanes(PP_NO_SHARED_MEMORY);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(echo_round_trip(pool, 8, (size_t)1 << 20, 1), 8);
  pp_pool_destroy(pool);
  pp_options o;
  pp_options_init(&o);
  o.shared_memory_size = PP__LANE_SIZE_MAX + 1;
  pp_pool *bad = NULL;
  CU_ASSERT_EQUAL(pp_pool_create(&bad, &o), PP_EINVAL);
  CU_ASSERT_PTR_NULL(bad);
}

/* A worker that dies while a big argument is in its lane: that call fails,
 * the next big ones run on its replacement, with a lane of its own. */
static void test_death_with_big_argument(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  size_t len = (size_t)1 << 20;
  unsigned char *buf = malloc(len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  for (int round = 0; round < 3; round++) {
    memset(buf, 0xDD, len);
    pp_bytes arg = {buf, len};
    pp_value v = {0};
    CU_ASSERT_EQUAL(pp_apply(pool, "echo_or_die", &arg, 1, &v), PP_EWORKERDIED);
    CU_ASSERT(tu_contains(v.error, "code 7"));
    pp_value_clear(&v);
    memset(buf, 0x11, len);
    CU_ASSERT_EQUAL(tu_apply_echo(pool, "echo_or_die", buf, len), PP_OK);
  }
  free(buf);
  pp_pool_destroy(pool);
}

/* A worker whose lane frame points outside its lane is stopped, its call
 * fails, the pool goes on; with no lanes at all, likewise. (Lanes come
 * with a worker's first big frame: its one worker is given one first.) */
static void test_lying_worker(void) {
  static const size_t sizes[2] = {0, PP_NO_SHARED_MEMORY};
  static const char *const says[2] = {"outside", "not given"};
  for (int i = 0; i < 2; i++) {
    pp_options o;
    pp_options_init(&o);
    o.processes = 1;
    o.shared_memory_size = sizes[i];
    pp_pool *pool = tu_pool_opts(&o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    CU_ASSERT_EQUAL(echo_round_trip(pool, 1, (size_t)1 << 20, 1), 1);
    pp_value v = {0};
    CU_ASSERT_EQUAL(pp_apply(pool, "lying_lane", NULL, 0, &v), PP_EPROTOCOL);
    CU_ASSERT(tu_contains(v.error, says[i]));
    pp_value_clear(&v);
    CU_ASSERT_EQUAL(echo_round_trip(pool, 4, (size_t)1 << 20, 1), 4);
    pp_pool_destroy(pool);
  }
}

#ifndef _WIN32
/* Names under /dev/shm that were there before the test began: with pids
 * that wrap (Linux's pid_max is 32768 by default) a process killed long
 * ago may have had this one's pid and left a segment's name behind (a
 * parent killed between offering a worker its lanes and the worker taking
 * them leaves one). They are not this pool's. */
#define MAX_STALE_NAMES 64
static char stale_names[MAX_STALE_NAMES][64];
static int nstale;

static int is_stale(const char *name) {
  for (int i = 0; i < nstale; i++)
    if (strcmp(stale_names[i], name) == 0)
      return 1;
  return 0;
}

/* Shared-memory objects named for this process, but the stale ones;
 * `note_stale` records the ones there now as stale instead. */
static int shm_names(int note_stale) {
  char prefix[32];
  snprintf(prefix, sizeof prefix, "pp.%ld.", (long)getpid());
  DIR *d = opendir("/dev/shm");
  if (!d)
    return 0; /* no such directory to leave names in */
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || is_stale(e->d_name))
      continue;
    if (note_stale && nstale < MAX_STALE_NAMES &&
        strlen(e->d_name) < sizeof stale_names[0]) {
      strcpy(stale_names[nstale++], e->d_name);
      fprintf(stderr, "\n  /dev/shm/%s was there before the test: left out\n",
              e->d_name);
    }
    n++;
  }
  closedir(d);
  return n;
}

static int our_shm_names(void) { return shm_names(0); }

/* How many of the worker's mappings hold `what` in /proc/self/maps; -1
 * where it cannot tell. */
static int64_t worker_maps(pp_pool *pool, const char *what) {
  pp_bytes arg = {what, strlen(what)};
  pp_value v = {0};
  int64_t maps = -1;
  CU_ASSERT_EQUAL(pp_apply(pool, "shm_maps", &arg, 1, &v), PP_OK);
  CU_ASSERT_EQUAL(pp_value_i64(&v, &maps), PP_OK);
  pp_value_clear(&v);
  return maps;
}

/* A segment has no name while the pool uses it, and none is left when
 * the pool or its workers end. */
static void test_no_names_left(void) {
  shm_names(1);
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(echo_round_trip(pool, 4, (size_t)1 << 20, 1), 4);
  CU_ASSERT_EQUAL(our_shm_names(), 0);
  pp_value v = {0};
  unsigned char dd[64];
  memset(dd, 0xDD, sizeof dd);
  pp_bytes arg = {dd, sizeof dd};
  CU_ASSERT_EQUAL(pp_apply(pool, "echo_or_die", &arg, 1, &v), PP_EWORKERDIED);
  pp_value_clear(&v);
  CU_ASSERT_EQUAL(echo_round_trip(pool, 4, (size_t)1 << 20, 1), 4);
  CU_ASSERT_EQUAL(pp_pool_terminate(pool), PP_OK);
  pp_pool_destroy(pool);
  CU_ASSERT_EQUAL(our_shm_names(), 0);
}

/* How many names process `pid` made under /dev/shm (not this process:
 * the stale list does not apply); `remove`: and removes them, so that a
 * failed check leaves nothing behind. */
static int names_of(long pid, int remove) {
  char prefix[32];
  snprintf(prefix, sizeof prefix, "pp.%ld.", pid);
  DIR *d = opendir("/dev/shm");
  if (!d)
    return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
      continue;
    n++;
    char name[300];
    snprintf(name, sizeof name, "/%s", e->d_name);
    if (remove)
      shm_unlink(name);
  }
  closedir(d);
  return n;
}

/* A pool's owner is SIGKILLed after it offered its worker lanes that the
 * worker, stopped (SIGSTOP), has not taken: nothing of the segment is left
 * behind. (A segment opened by name left that name in /dev/shm until the
 * machine restarted: the worker, killed with its owner, never opened it
 * to remove it.) */
static void test_owner_killed_before_lanes_taken(void) {
  int report;
  long owner = tu_fork_owner(&report);
  CU_ASSERT_FATAL(owner >= 0);
  if (owner == 0) {
    pp_options o;
    pp_options_init(&o);
    o.processes = 1;
    pp_pool *pool = tu_pool_opts(&o);
    int64_t pid = 0;
    size_t len = (size_t)1 << 20;
    unsigned char *big = calloc(1, len);
    pp_bytes big_arg = {big, len};
    pp_result *echo = NULL;
    /* The lanes are offered with the worker's second call, which it
     * cannot read while stopped. */
    if (pool && big && tu_apply_i64(pool, "getpid", 0, &pid) == PP_OK &&
        kill((pid_t)pid, SIGSTOP) == 0 &&
        pp_apply_async(pool, "echo", &big_arg, 1, NULL, &echo) == PP_OK)
      tu_sleep_ms(300); /* the scheduler thread sends the offer */
    long worker = (long)pid;
    tu_owner_report(report, &worker, 1);
  }
  long worker;
  CU_ASSERT_EQUAL(tu_kill_owner(owner, report, &worker, 1), 1);
  CU_ASSERT_EQUAL(names_of(owner, 1), 0);
}

/* Where the system has no anonymous segment (memfd_create), a named one
 * is made and its name removed at once: the worker maps it all the same,
 * and no name is there to see. */
static void test_named_segment(void) {
  shm_names(1);
  pp_options o;
  pp_options_init(&o);
  o.processes = 1;
  pp__test.named_segments = 1;
  pp_pool *pool = tu_pool_opts(&o);
  pp__test.named_segments = 0;
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(echo_round_trip(pool, 4, (size_t)1 << 20, 1), 4);
  CU_ASSERT_EQUAL(our_shm_names(), 0);
  int64_t maps = worker_maps(pool, "/dev/shm/pp.");
  CU_ASSERT(maps == 1 || maps == -1);
  CU_ASSERT_EQUAL(echo_round_trip(pool, 4, (size_t)1 << 20, 1), 4);
  pp_pool_destroy(pool);
  CU_ASSERT_EQUAL(our_shm_names(), 0);
}
#endif

#ifndef _WIN32
/* A worker is given its lanes when it first needs them, not at its start:
 * after a small call it has no segment mapped, after a big one it has
 * one. (Linux: read from the worker's /proc/self/maps.) */
static void test_lanes_on_demand(void) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 1;
  pp_pool *pool = tu_pool_opts(&o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_value v = {0};
  int64_t maps = -1;
  CU_ASSERT_EQUAL(pp_apply(pool, "shm_maps", NULL, 0, &v), PP_OK);
  CU_ASSERT_EQUAL(pp_value_i64(&v, &maps), PP_OK);
  pp_value_clear(&v);
  if (maps >= 0) {
    CU_ASSERT_EQUAL(maps, 0);
    CU_ASSERT_EQUAL(echo_round_trip(pool, 2, (size_t)1 << 20, 1), 2);
    CU_ASSERT_EQUAL(pp_apply(pool, "shm_maps", NULL, 0, &v), PP_OK);
    CU_ASSERT_EQUAL(pp_value_i64(&v, &maps), PP_OK);
    pp_value_clear(&v);
    CU_ASSERT_EQUAL(maps, 1);
#ifdef __linux__
    /* Linux: an anonymous segment, not a named one. */
    CU_ASSERT_EQUAL(worker_maps(pool, "/memfd:procpool-lanes"), 1);
#endif
  }
  pp_pool_destroy(pool);
}
#endif

int pp_test_suite_lanes(void) {
  CU_pSuite s = CU_add_suite("lanes", NULL, NULL);
  if (!s)
    return -1;
  static const struct {
    const char *name;
    CU_TestFunc fn;
  } tests[] = {
      {"the ring: order, no wrapping extent, full, empty restarts", test_ring},
      {"big buffers both ways through the lanes", test_big_echo},
      {"big results, then big arguments, many in flight", test_big_one_way},
      {"big copies split between two threads land whole",
       test_big_copies_split},
      {"big values reuse freed blocks, never a held one",
       test_big_values_reuse_blocks},
      {"spare blocks go back when idle and with the last pool",
       test_spares_go_back},
      {"spare blocks shared by threads: every value whole",
       test_spares_many_threads},
#ifndef _WIN32
      {"a forked worker starts without its parent's spares",
       test_fork_drops_spares},
#endif
      {"a blocking starmap lends its big arguments", test_lent_starmap},
      {"a failure after a value: the message only, its neighbours whole",
       test_value_then_failure},
      {"records in big chunks, some failing", test_records},
      {"a small lane: what does not fit takes the channel",
       test_small_lane_falls_back},
      {"no shared memory: the same through the channel",
       test_without_shared_memory},
      {"lanes without memory behind them: the channel instead",
       test_unbacked_lanes},
      {"a worker dies with a big argument in its lane",
       test_death_with_big_argument},
      {"a worker pointing outside its lane is stopped", test_lying_worker},
#ifndef _WIN32
      {"a segment has no name, in use or after", test_no_names_left},
      {"an owner killed before its worker took its lanes leaves no name",
       test_owner_killed_before_lanes_taken},
      {"without anonymous segments: a name removed at once",
       test_named_segment},
      {"a worker's lanes come with its first big frame", test_lanes_on_demand},
#endif
  };
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
    if (!CU_add_test(s, tests[i].name, tests[i].fn))
      return -1;
  return 0;
}
