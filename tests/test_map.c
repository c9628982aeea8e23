/* Suite "map": map, map_async, starmap, chunking and the records path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "internal.h" /* a worker's pipeline */
#include "procpool.h"
#include "suites.h"
#include "tasks.h"
#include "util.h"

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

/* Checks a completed map result holds the squares of first..first+n-1. */
static void check_squares(pp_result *r, size_t n, int64_t first) {
  CU_ASSERT_EQUAL_FATAL(pp_result_count(r), n);
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t v = -1, x = first + (int64_t)i;
    if (pp_result_item_i64(r, i, &v) != PP_OK || v != x * x) {
      bad++;
    }
  }
  CU_ASSERT_EQUAL(bad, 0);
}

static void test_empty_input(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t dummy = 0;
  pp_bytes items[1] = {tu_i64(&dummy)};
  pp_result *r = NULL;

  double t0 = tu_now();
  CU_ASSERT_EQUAL_FATAL(pp_map(pool, "square", items, 0, 0, &r), PP_OK);
  CU_ASSERT(tu_now() - t0 < 1.0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(pp_result_ready(r), 1);
  CU_ASSERT_EQUAL(pp_result_count(r), 0);
  CU_ASSERT_EQUAL(pp_result_get(r, 0.0), PP_OK);
  pp_bytes b;
  CU_ASSERT_EQUAL(pp_result_item(r, 0, &b), PP_EINVAL);
  pp_result_free(r);

  r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "square", items, 0, 0, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, 1.0), PP_OK);
  CU_ASSERT_EQUAL(pp_result_count(r), 0);
  pp_result_free(r);

  pp_args args[1] = {{items, 1}};
  r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_starmap(pool, "add", args, 0, 0, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_count(r), 0);
  pp_result_free(r);

  int64_t out[1] = {-1};
  pp_records rec = {items, 0, sizeof(int64_t), out, sizeof(int64_t), NULL, 0};
  r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map_records(pool, "square", &rec, 0, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_count(r), 0);
  CU_ASSERT_EQUAL(out[0], -1);
  pp_result_free(r);

  /* No records, so no arrays: NULL is fine (the sanitizer builds check
   * that nothing is done with them), for a records task too. */
  pp_records none = {NULL, 0, sizeof(int64_t), NULL, sizeof(int64_t), NULL, 0};
  const char *tasks[] = {"square", "rsquare"};
  for (size_t k = 0; k < 2; k++) {
    r = NULL;
    CU_ASSERT_EQUAL(pp_map_records(pool, tasks[k], &none, 0, &r), PP_OK);
    CU_ASSERT_EQUAL(pp_result_count(r), 0);
    pp_result_free(r);
  }
  pp_pool_destroy(pool);
}

/* chunksizes 1, 7 and the default give the same ordered results, and the
   result reports the chunking used. */
static void test_chunksizes_same_results(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 100 };
  int64_t vals[N];
  pp_bytes items[N];
  tu_i64_items(vals, items, N, 0);
  const size_t asked[] = {1, 7, 0, 13, 100, 1000};
  for (size_t k = 0; k < sizeof asked / sizeof asked[0]; k++) {
    pp_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(
        pp_map_async(pool, "square", items, N, asked[k], NULL, &r), PP_OK);
    CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
    check_squares(r, N, 0);
    size_t cs = asked[k] ? asked[k] : pp_default_chunksize(N, 2);
    CU_ASSERT_EQUAL(pp_result_chunksize(r), cs);
    CU_ASSERT_EQUAL(pp_result_chunks(r), ceil_div(N, cs));
    pp_result_free(r);
  }
  pp_pool_destroy(pool);
}

/* The default is ceil(n / (4 * processes)), as Python computes it. */
static void test_default_chunksize(void) {
  CU_ASSERT_EQUAL(pp_default_chunksize(100, 4), 7);
  CU_ASSERT_EQUAL(pp_default_chunksize(100, 2), 13);
  CU_ASSERT_EQUAL(pp_default_chunksize(96, 4), 6);
  CU_ASSERT_EQUAL(pp_default_chunksize(97, 4), 7);
  CU_ASSERT_EQUAL(pp_default_chunksize(10, 4), 1);
  CU_ASSERT_EQUAL(pp_default_chunksize(1, 1), 1);
  CU_ASSERT_EQUAL(pp_default_chunksize(17, 1), 5);
  CU_ASSERT_EQUAL(pp_default_chunksize(1000000, 8), 31250);
  /* "at least 1" */
  CU_ASSERT_EQUAL(pp_default_chunksize(0, 4), 1);
  CU_ASSERT(pp_default_chunksize(0, 1) >= 1);
}

/* The default chunk size of a map follows the pool's process count. */
static void test_default_chunksize_of_pool(void) {
  pp_pool *pool = tu_pool(3);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  CU_ASSERT_EQUAL(pp_pool_processes(pool), 3);
  enum { N = 100 };
  int64_t vals[N];
  pp_bytes items[N];
  tu_i64_items(vals, items, N, 0);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map_async(pool, "square", items, N, 0, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  check_squares(r, N, 0);
  CU_ASSERT_EQUAL(pp_result_chunksize(r), 9); /* ceil(100 / 12) */
  CU_ASSERT_EQUAL(pp_result_chunks(r), 12);   /* ceil(100 / 9) */
  pp_result_free(r);
  pp_pool_destroy(pool);
}

static void test_map_many_items(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 10000 };
  int64_t *vals = malloc(N * sizeof *vals);
  pp_bytes *items = malloc(N * sizeof *items);
  CU_ASSERT_FATAL(vals != NULL && items != NULL);
  tu_i64_items(vals, items, N, -5000);
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map(pool, "square", items, N, 0, &r), PP_OK);
  if (r != NULL) {
    check_squares(r, N, -5000);
    pp_result_free(r);
  }
  free(vals);
  free(items);
  pp_pool_destroy(pool);
}

/* Items of different lengths come back unchanged and in order. */
static void test_map_bytes_items(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 40 };
  static char buf[N][N + 1];
  pp_bytes items[N];
  for (size_t i = 0; i < N; i++) {
    memset(buf[i], 'a' + (int)(i % 26), i);
    buf[i][i] = '\0';
    items[i].data = buf[i];
    items[i].len = i;
  }
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map(pool, "echo", items, N, 3, &r), PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp_result_count(r), N);
  for (size_t i = 0; i < N; i++) {
    pp_bytes b = {NULL, 0};
    CU_ASSERT_EQUAL(pp_result_item(r, i, &b), PP_OK);
    CU_ASSERT_EQUAL(b.len, i);
    if (b.len == i && i > 0) {
      CU_ASSERT(memcmp(b.data, buf[i], i) == 0);
    }
  }
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* With the default chunk size, a chunk takes no more items than fit the
 * pool's largest message: Python's chunk of 5 items of 20,000 bytes would be
 * answered with a frame past the 64 KiB this pool accepts, and the worker
 * stopped (PP_ETOOBIG), where chunks of 3 go through. A chunk size given
 * by the caller is kept as it is. Blocking (lent) and asynchronous (copied)
 * maps, plain and star. */
static void test_default_chunks_fit_messages(void) {
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.max_message_size = 64 << 10;
  pp_pool *pool = tu_pool_opts(&o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 40, SIZE = 20000 };
  unsigned char *buf = malloc((size_t)N * SIZE);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  pp_bytes items[N];
  pp_args calls[N];
  for (size_t i = 0; i < N; i++) {
    memset(buf + i * SIZE, (int)i, SIZE);
    items[i].data = buf + i * SIZE;
    items[i].len = SIZE;
    calls[i].argv = &items[i];
    calls[i].argc = 1;
  }
  for (int form = 0; form < 4; form++) {
    pp_result *r = NULL;
    pp_status st =
        form == 0   ? pp_map(pool, "echo", items, N, 0, &r)
        : form == 1 ? pp_map_async(pool, "echo", items, N, 0, NULL, &r)
        : form == 2 ? pp_starmap(pool, "echo", calls, N, 0, &r)
                    : pp_starmap_async(pool, "echo", calls, N, 0, NULL, &r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    if (form % 2)
      st = pp_result_get(r, TU_WAIT);
    CU_ASSERT_EQUAL(st, PP_OK);
    if (st != PP_OK)
      fprintf(stderr, "\n  form %d: %s\n", form, pp_result_error(r));
    CU_ASSERT_EQUAL(pp_result_chunksize(r), 5); /* ceil(40 / 8) */
    CU_ASSERT_EQUAL(pp_result_chunks(r), 14);   /* ceil(40 / 3) */
    CU_ASSERT_EQUAL(tu_wrong_echoes(r, items, N), 0);
    pp_result_free(r);
  }
  /* The caller's own chunk size stands: its answers, past the limit, come
   * in pieces (test_answers_in_pieces()). */
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map(pool, "echo", items, N, 5, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_chunks(r), 8);
  CU_ASSERT_EQUAL(tu_wrong_echoes(r, items, N), 0);
  pp_result_free(r);
  pp_pool_destroy(pool);

  /* At the smallest limit a pool takes, 4 KiB, chunks are capped too: 1000
   * bytes an item, one a chunk (the answer's own room is taken first). */
  o.max_message_size = 4096;
  pool = tu_pool_opts(&o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  for (size_t i = 0; i < N; i++)
    items[i].len = 1000;
  r = NULL;
  CU_ASSERT_EQUAL(pp_map(pool, "echo", items, N, 0, &r), PP_OK);
  if (r && pp_result_error(r))
    fprintf(stderr, "\n  at 4096: %s\n", pp_result_error(r));
  CU_ASSERT(pp_result_chunks(r) > N / 5);
  pp_result_free(r);
  pp_pool_destroy(pool);
  free(buf);
}

/* A chunk's answer longer than pp_options.max_message_size comes in pieces
 * (wire.h, PP__FRAME_MORE): 8 results of 40 KiB a chunk, past a limit of
 * 64 KiB, through map (RESULTS), async map, imap (VALUES), and one value
 * alone three times the limit, through the lanes and without shared
 * memory. Each failed with PP_ETOOBIG, its worker stopped, before. */
static void test_answers_in_pieces(void) {
  static const size_t shm[] = {0, PP_NO_SHARED_MEMORY};
  enum { N = 40 };
  int64_t seeds[N];
  pp_bytes items[N];
  for (size_t i = 0; i < N; i++) {
    seeds[i] = 1000 + (int64_t)i;
    items[i] = tu_i64(&seeds[i]);
  }
  for (size_t k = 0; k < sizeof shm / sizeof shm[0]; k++) {
    pp_options o;
    pp_options_init(&o);
    o.processes = 2;
    o.max_message_size = 64 << 10;
    o.shared_memory_size = shm[k];
    pp_pool *pool = tu_pool_opts(&o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    pp_result *r = NULL;
    pp_status st = pp_map(pool, "blob", items, N, 8, &r);
    CU_ASSERT_EQUAL(st, PP_OK);
    if (st != PP_OK)
      fprintf(stderr, "\n  map (shm %zu): %s\n", shm[k], pp_result_error(r));
    CU_ASSERT_EQUAL(tu_wrong_blobs(r, N, 1000, TASK_BLOB_LEN), 0);
    pp_result_free(r);

    r = NULL;
    CU_ASSERT_EQUAL(pp_map_async(pool, "blob", items, N, 8, NULL, &r), PP_OK);
    CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
    CU_ASSERT_EQUAL(tu_wrong_blobs(r, N, 1000, TASK_BLOB_LEN), 0);
    pp_result_free(r);

    for (int ordered = 1; ordered >= 0; ordered--) {
      tu_range range;
      tu_range_init(&range, 7, 7 + N);
      pp_iter *it = NULL;
      st = ordered ? pp_imap(pool, "blob", tu_range_next, &range, 8, &it)
                   : pp_imap_unordered(pool, "blob", tu_range_next, &range, N,
                                       &it); /* one chunk: in order */
      CU_ASSERT_EQUAL_FATAL(st, PP_OK);
      CU_ASSERT_EQUAL(tu_wrong_imap_blobs(it, N, 7), 0);
      pp_iter_free(it);
    }

    /* A single value past the limit goes in pieces as well. */
    int64_t big[2] = {5, 3 * (64 << 10) + 123};
    pp_bytes args[2] = {tu_i64(&big[0]), tu_i64(&big[1])};
    pp_value v = {0};
    CU_ASSERT_EQUAL(pp_apply(pool, "blob", args, 2, &v), PP_OK);
    CU_ASSERT_EQUAL(v.len, (size_t)big[1]);
    CU_ASSERT(task_blob_right(v.data, v.len, 5));
    pp_value_clear(&v);
    pp_pool_destroy(pool);
  }
}

/* A records map's answer lists its failed records with their messages,
 * which its chunk size, cut to fit the limit by the records' sizes, does
 * not count: at the smallest limit, 4 KiB, a chunk of 256 records of 8
 * bytes that all fail says 10 KiB (RECORDS_DONE); at 128 KiB, a chunk of
 * 15,000 (120 KB, done in place where workers may reach this process's
 * memory: RECORDS_PUT) says 480 KB. Such answers come in pieces, and every
 * record says why it failed; before, the worker was stopped (PP_ETOOBIG). */
static void test_records_failures_in_pieces(void) {
  static const size_t limit[] = {4096, 128 << 10}, chunk[] = {256, 15000};
  enum { N = 30000 };
  static int64_t in[N], out[N];
  for (size_t i = 0; i < N; i++)
    in[i] = (int64_t)i;
  for (size_t k = 0; k < sizeof limit / sizeof limit[0]; k++) {
    pp_options o;
    pp_options_init(&o);
    o.processes = 2;
    o.max_message_size = limit[k];
    pp_pool *pool = tu_pool_opts(&o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    /* Each worker's READY, which says whether it may reach this process's
     * memory, is in once it answered a call. */
    int64_t y = 0;
    for (int i = 0; i < 4; i++)
      CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 3, &y), PP_OK);
    size_t n = k ? N : 1000;
    pp_records rec = {in, n, sizeof in[0], out, sizeof out[0], NULL, 0};
    pp_result *r = NULL;
    CU_ASSERT_EQUAL(pp_map_records(pool, "fail", &rec, chunk[k], &r), PP_ETASK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    if (!tu_contains(pp_result_error(r), TASK_FAIL_PREFIX "0"))
      fprintf(stderr, "\n  records at %zu: %s\n", limit[k], pp_result_error(r));
    CU_ASSERT(tu_contains(pp_result_error(r), TASK_FAIL_PREFIX "0"));
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
      pp_bytes b = {NULL, 0};
      failed += pp_result_item(r, i, &b) == PP_ETASK;
    }
    CU_ASSERT_EQUAL(failed, n);
    pp_result_free(r);
    pp_pool_destroy(pool);
  }
}

static void fill_pairs(int64_t (*vals)[2], pp_bytes (*argv)[2], pp_args *items,
                       size_t n) {
  for (size_t i = 0; i < n; i++) {
    vals[i][0] = (int64_t)(i * i) - (int64_t)i;
    vals[i][1] = (int64_t)i;
    argv[i][0] = tu_i64(&vals[i][0]);
    argv[i][1] = tu_i64(&vals[i][1]);
    items[i].argv = argv[i];
    items[i].argc = 2;
  }
}

/* starmap with two-argument items: add(i*i - i, i) == i*i */
static void test_starmap(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 30 };
  int64_t vals[N][2];
  pp_bytes argv[N][2];
  pp_args items[N];
  fill_pairs(vals, argv, items, N);
  const size_t asked[] = {1, 4, 0};
  for (size_t k = 0; k < 3; k++) {
    pp_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_starmap(pool, "add", items, N, asked[k], &r),
                          PP_OK);
    check_squares(r, N, 0);
    pp_result_free(r);
  }
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_starmap_async(pool, "add", items, N, 0, NULL, &r),
                        PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
  check_squares(r, N, 0);
  CU_ASSERT_EQUAL(pp_result_chunksize(r), pp_default_chunksize(N, 2));
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* Starmap items with different argument counts. */
static void test_starmap_varying_argc(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 8 };
  int64_t ones[N];
  pp_bytes argv[N];
  pp_args items[N];
  for (size_t i = 0; i < N; i++) {
    ones[i] = 1;
    argv[i] = tu_i64(&ones[i]);
  }
  for (size_t i = 0; i < N; i++) {
    items[i].argv = i ? argv : NULL;
    items[i].argc = i; /* sum of i ones */
  }
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_starmap(pool, "sum", items, N, 3, &r), PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp_result_count(r), N);
  for (size_t i = 0; i < N; i++) {
    int64_t v = -1;
    CU_ASSERT_EQUAL(pp_result_item_i64(r, i, &v), PP_OK);
    CU_ASSERT_EQUAL(v, (int64_t)i);
  }
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* The records path: int64_t[1000] through "square" into int64_t[1000]. */
static void test_records(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 1000 };
  static int64_t in[N], out[N];
  for (size_t i = 0; i < N; i++) {
    in[i] = (int64_t)i - 500;
  }
  const size_t asked[] = {1, 7, 0};
  for (size_t k = 0; k < 3; k++) {
    for (size_t i = 0; i < N; i++) {
      out[i] = -1;
    }
    pp_records rec = {in, N, sizeof in[0], out, sizeof out[0], NULL, 0};
    pp_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_map_records(pool, "square", &rec, asked[k], &r),
                          PP_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(pp_result_ready(r), 1);
    CU_ASSERT_EQUAL(pp_result_count(r), N);
    size_t cs = asked[k] ? asked[k] : pp_default_chunksize(N, 2);
    CU_ASSERT_EQUAL(pp_result_chunksize(r), cs);
    CU_ASSERT_EQUAL(pp_result_chunks(r), ceil_div(N, cs));
    size_t bad = 0;
    for (size_t i = 0; i < N; i++) {
      if (out[i] != in[i] * in[i]) {
        bad++;
      }
    }
    CU_ASSERT_EQUAL(bad, 0);
    pp_result_free(r);
  }
  pp_pool_destroy(pool);
}

static void test_records_async(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 5000 };
  int64_t *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
  CU_ASSERT_FATAL(in != NULL && out != NULL);
  for (size_t i = 0; i < N; i++) {
    in[i] = (int64_t)i;
    out[i] = -1;
  }
  pp_records rec = {in, N, sizeof *in, out, sizeof *out, NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records_async(pool, "square", &rec, 0, NULL, &r),
                  PP_OK);
  if (r != NULL) {
    CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_OK);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++) {
      if (out[i] != in[i] * in[i]) {
        bad++;
      }
    }
    CU_ASSERT_EQUAL(bad, 0);
    pp_result_free(r);
  }
  free(in);
  free(out);
  pp_pool_destroy(pool);
}

/* Records starmap: each struct of two int64 is cut into two arguments. */
static void test_records_starmap(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  typedef struct pair {
    int64_t a, b;
  } pair;
  enum { N = 500 };
  static pair in[N];
  static int64_t out[N];
  for (size_t i = 0; i < N; i++) {
    in[i].a = (int64_t)i * 1000;
    in[i].b = (int64_t)i;
  }
  const size_t fields[2] = {sizeof(int64_t), sizeof(int64_t)};
  const size_t asked[] = {1, 7, 0};
  for (size_t k = 0; k < 3; k++) {
    for (size_t i = 0; i < N; i++) {
      out[i] = -1;
    }
    pp_records rec = {in, N, sizeof(pair), out, sizeof out[0], fields, 2};
    pp_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_map_records(pool, "add", &rec, asked[k], &r),
                          PP_OK);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++) {
      if (out[i] != (int64_t)i * 1001) {
        bad++;
      }
    }
    CU_ASSERT_EQUAL(bad, 0);
    pp_result_free(r);
  }
  pp_pool_destroy(pool);
}

/* A map with one failing item: PP_ETASK, its message, the other items. */
static void test_map_failing_item(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t vals[10];
  pp_bytes items[10];
  tu_i64_items(vals, items, 10, 0);
  const size_t asked[] = {1, 3, 0};
  for (size_t k = 0; k < 3; k++) {
    pp_result *r = NULL;
    CU_ASSERT_EQUAL(pp_map(pool, "fail_on", items, 10, asked[k], &r), PP_ETASK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(pp_result_ready(r), 1);
    CU_ASSERT_EQUAL(pp_result_get(r, 0.0), PP_ETASK);
    CU_ASSERT(tu_contains(pp_result_error(r), TASK_FAIL_ON_MSG));
    CU_ASSERT_EQUAL_FATAL(pp_result_count(r), 10);
    for (size_t i = 0; i < 10; i++) {
      pp_bytes b = {NULL, 0};
      int64_t v = -1;
      if (i == TASK_FAIL_ON_ITEM) {
        CU_ASSERT_EQUAL(pp_result_item(r, i, &b), PP_ETASK);
        CU_ASSERT(tu_bytes_contain(b, TASK_FAIL_ON_MSG));
        CU_ASSERT_EQUAL(pp_result_item_i64(r, i, &v), PP_ETASK);
      } else {
        CU_ASSERT_EQUAL(pp_result_item_i64(r, i, &v), PP_OK);
        CU_ASSERT_EQUAL(v, (int64_t)(i * i));
      }
    }
    pp_result_free(r);
  }
  pp_pool_destroy(pool);
}

/* The error is reported after all the chunks are back (as Python does):
   item 0 fails at once, the others take TASK_SLOW_MS each. */
static void test_map_error_after_all_chunks(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 6 };
  int64_t vals[N];
  pp_bytes items[N];
  tu_i64_items(vals, items, N, 0);
  pp_result *r = NULL;
  double t0 = tu_now();
  CU_ASSERT_EQUAL_FATAL(
      pp_map_async(pool, "fail_zero_slow", items, N, 1, NULL, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ETASK);
  /* 5 slow items on 2 workers: at least 3 rounds */
  CU_ASSERT(tu_now() - t0 >= 2.5 * TASK_SLOW_MS / 1000.0);
  CU_ASSERT(tu_contains(pp_result_error(r), TASK_FAIL_ZERO_MSG));
  for (size_t i = 1; i < N; i++) {
    int64_t v = -1;
    CU_ASSERT_EQUAL(pp_result_item_i64(r, i, &v), PP_OK);
    CU_ASSERT_EQUAL(v, (int64_t)(i * i));
  }
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* A task whose value is not a record's size (echo's 8 bytes for 16-byte
 * results): each record fails with words that give both sizes, where the
 * message said only "returned an error: too big", for too short as well. */
static void test_records_wrong_value_size(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 100 };
  int64_t in[N], out[2 * N];
  for (size_t i = 0; i < N; i++)
    in[i] = (int64_t)i;
  pp_records rec = {in, N, sizeof in[0], out, 2 * sizeof out[0], NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "echo", &rec, 0, &r), PP_ETASK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  const char *says = "task 'echo' returned a value of 8 bytes for a 16-byte "
                     "record (pp_records::out_size)";
  if (!tu_contains(pp_result_error(r), says))
    fprintf(stderr, "\n  said: %s\n", pp_result_error(r));
  CU_ASSERT(tu_contains(pp_result_error(r), says));
  pp_bytes b = {NULL, 0};
  CU_ASSERT_EQUAL(pp_result_item(r, N - 1, &b), PP_ETASK);
  CU_ASSERT(tu_bytes_contain(b, says));
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* A failing record: PP_ETASK with the message; the other records land. */
static void test_records_failing_item(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 10 };
  int64_t in[N], out[N];
  for (size_t i = 0; i < N; i++) {
    in[i] = (int64_t)i;
    out[i] = -1;
  }
  pp_records rec = {in, N, sizeof in[0], out, sizeof out[0], NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "fail_on", &rec, 1, &r), PP_ETASK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT(tu_contains(pp_result_error(r), TASK_FAIL_ON_MSG));
  pp_bytes b = {NULL, 0};
  CU_ASSERT_EQUAL(pp_result_item(r, TASK_FAIL_ON_ITEM, &b), PP_ETASK);
  for (size_t i = 0; i < N; i++) {
    if (i != TASK_FAIL_ON_ITEM) {
      CU_ASSERT_EQUAL(out[i], (int64_t)(i * i));
    }
  }
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* How many chunks the scheduler lets a worker hold, from its answers'
 * times (µs, as the scheduler's clock gives them). Tasks shorter than a µs
 * answer mostly in the µs the one before did: a measure kept in whole µs
 * averaged them to 0, which read as "not timed" and held the worker to one
 * chunk in the middle of a map. */
static void test_pipeline_cap(void) {
  pp__worker w;
  memset(&w, 0, sizeof w);
  CU_ASSERT_EQUAL(pp__pipeline_cap(&w), 1); /* nothing timed yet */

  /* A stream of sub-µs chunks, answered a few per clock tick. */
  apr_time_t now = 1000000;
  w.head_started = now;
  size_t lowest = (size_t)-1;
  for (int i = 0; i < 64; i++) {
    if (i % 4 == 0)
      now++;
    pp__note_service_time(&w, now);
    w.head_started = now;
    size_t cap = pp__pipeline_cap(&w);
    if (cap < lowest)
      lowest = cap;
  }
  /* Far under PP__PIPELINE_US / PP__PIPELINE_MAX a chunk: never fewer. */
  CU_ASSERT_EQUAL(lowest, PP__PIPELINE_MAX);

  /* 100 µs chunks: about PP__PIPELINE_US of work. */
  memset(&w, 0, sizeof w);
  for (int i = 0; i < 32; i++) {
    w.head_started = now;
    now += 100;
    pp__note_service_time(&w, now);
  }
  CU_ASSERT_EQUAL(pp__pipeline_cap(&w), PP__PIPELINE_US / 100);

  /* Long chunks: one at a time. */
  memset(&w, 0, sizeof w);
  w.head_started = now;
  now += 2 * PP__PIPELINE_US;
  pp__note_service_time(&w, now);
  CU_ASSERT_EQUAL(pp__pipeline_cap(&w), 1);
}

int pp_test_suite_map(void) {
  static const tu_test tests[] = {
      {"empty input: PP_OK at once, 0 items", test_empty_input},
      {"a worker of sub-µs chunks may hold many, of long ones one",
       test_pipeline_cap},
      {"chunksizes 1, 7, default...: same ordered results",
       test_chunksizes_same_results},
      {"pp_default_chunksize is ceil(n / (4 * processes))",
       test_default_chunksize},
      {"default chunksize follows the pool's processes",
       test_default_chunksize_of_pool},
      {"map of 10000 items", test_map_many_items},
      {"map of byte items of different lengths", test_map_bytes_items},
      {"default chunks take no more big items than fit a message",
       test_default_chunks_fit_messages},
      {"a chunk's answer past max_message_size comes in pieces: map, imap, "
       "one big value; with and without shared memory",
       test_answers_in_pieces},
      {"a records answer whose failures pass the limit comes in pieces",
       test_records_failures_in_pieces},
      {"starmap with two-argument items", test_starmap},
      {"starmap items with different argument counts",
       test_starmap_varying_argc},
      {"records: int64[1000] square, chunksizes 1, 7, default", test_records},
      {"records async, 5000 records", test_records_async},
      {"records starmap: struct of two int64, add", test_records_starmap},
      {"map with one failing item: PP_ETASK, message, other items",
       test_map_failing_item},
      {"map error reported after all chunks are back",
       test_map_error_after_all_chunks},
      {"records with one failing item", test_records_failing_item},
      {"records: a value of the wrong size is named, with both sizes",
       test_records_wrong_value_size},
  };
  return tu_add_suite("map", tests, TU_NTESTS(tests));
}
