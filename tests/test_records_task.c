/* Suite "records_task": tasks that take a records map's chunk in one call
 * (pp_register_records()): their results, their failures one record at a
 * time or a chunk at a time, a worker dying in one, and their misuse. */
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* how a result lists its failed records */
#include "suites.h"
#include "tasks.h"
#include "util.h"

/* The value on which the failing tasks below fail. */
#define BAD_VALUE 5
#define RFAIL_MSG "rfail_on: bad record"

/* x * x over int64 records; fails a chunk whose arrays are not aligned as
 * promised. */
static pp_status rsquare(const pp_records_chunk *chunk, pp_call *call) {
  if (chunk->in_size != sizeof(int64_t) || chunk->out_size != sizeof(int64_t))
    return pp_call_fail(call, "rsquare: wants 8-byte records");
  if ((uintptr_t)chunk->in % PP_RECORDS_ALIGN ||
      (uintptr_t)chunk->out % PP_RECORDS_ALIGN)
    return pp_call_fail(call, "rsquare: arrays not aligned");
  const int64_t *in = chunk->in;
  int64_t *out = chunk->out;
  for (size_t i = 0; i < chunk->count; i++)
    out[i] = in[i] * in[i];
  return PP_OK;
}

/* Each result says where its record sat: count * 1000000000 + its index
 * in the map (the chunk's first and its place in the chunk). The chunks'
 * sizes can be read back from the results. */
static pp_status rwhere(const pp_records_chunk *chunk, pp_call *call) {
  (void)call;
  int64_t *out = chunk->out;
  for (size_t i = 0; i < chunk->count; i++)
    out[i] = (int64_t)chunk->count * 1000000000 + (int64_t)(chunk->first + i);
  return PP_OK;
}

/* a + b over records of two int64: whole records, whatever the fields. */
static pp_status rpair_sum(const pp_records_chunk *chunk, pp_call *call) {
  if (chunk->in_size != 2 * sizeof(int64_t))
    return pp_call_fail(call, "rpair_sum: wants 16-byte records");
  const int64_t *in = chunk->in;
  int64_t *out = chunk->out;
  for (size_t i = 0; i < chunk->count; i++)
    out[i] = in[2 * i] + in[2 * i + 1];
  return PP_OK;
}

/* Squares, and fails the records holding BAD_VALUE: twice (the first
 * message stands), after writing garbage into their results (which the
 * pool zeroes). */
static pp_status rfail_on(const pp_records_chunk *chunk, pp_call *call) {
  const int64_t *in = chunk->in;
  int64_t *out = chunk->out;
  for (size_t i = 0; i < chunk->count; i++) {
    out[i] = in[i] * in[i];
    if (in[i] == BAD_VALUE) {
      out[i] = -7;
      if (pp_records_fail(call, i, RFAIL_MSG " %lld", (long long)in[i]) !=
              PP_OK ||
          pp_records_fail(call, i, "a second message") != PP_OK)
        return pp_call_fail(call, "rfail_on: pp_records_fail failed");
    }
  }
  return PP_OK;
}

/* Fails its whole chunk when it holds BAD_VALUE: with pp_call_fail() for
 * odd-sized chunks, else by returning a status; it fails that record alone
 * first, which the whole chunk's failure overrides. */
static pp_status rfail_chunk(const pp_records_chunk *chunk, pp_call *call) {
  const int64_t *in = chunk->in;
  int64_t *out = chunk->out;
  for (size_t i = 0; i < chunk->count; i++) {
    out[i] = -7;
    if (in[i] == BAD_VALUE) {
      if (pp_records_fail(call, i, "rfail_chunk: one record first") != PP_OK)
        return pp_call_fail(call, "rfail_chunk: pp_records_fail failed");
      return chunk->count % 2
                 ? pp_call_fail(call, "rfail_chunk: chunk of %zu", chunk->count)
                 : TASK_RET_STATUS;
    }
  }
  for (size_t i = 0; i < chunk->count; i++)
    out[i] = in[i] * in[i];
  return PP_OK;
}

/* What the call of a records task offers, and refuses: 1 per record when
 * every check holds, else 0. */
static pp_status rcheck(const pp_records_chunk *chunk, pp_call *call) {
  pp_bytes b;
  int ok = pp_call_argc(call) == 0 && pp_call_arg(call, 0, &b) == PP_EINVAL &&
           pp_records_fail(NULL, 0, "x") == PP_EINVAL &&
           pp_records_fail(call, chunk->count, "x") == PP_EINVAL &&
           pp_records_fail(call, (size_t)-1, NULL) == PP_EINVAL;
  int64_t *out = chunk->out;
  for (size_t i = 0; i < chunk->count; i++)
    out[i] = ok;
  return PP_OK;
}

/* Squares, but kills its worker on BAD_VALUE. */
static pp_status rdie_on(const pp_records_chunk *chunk, pp_call *call) {
  (void)call;
  const int64_t *in = chunk->in;
  int64_t *out = chunk->out;
  for (size_t i = 0; i < chunk->count; i++) {
    if (in[i] == BAD_VALUE)
      abort();
    out[i] = in[i] * in[i];
  }
  return PP_OK;
}

/* Squares, after sending its parent, as a broken worker would, a
 * RECORDS_DONE answer (all zeros) for the chunk whose id is its first
 * record, then giving the parent time to read it. */
static pp_status rstray_done(const pp_records_chunk *chunk, pp_call *call) {
  const int64_t *in = chunk->in;
  uint64_t id = (uint64_t)in[0];
  size_t payload = 8 + chunk->count * chunk->out_size;
  unsigned char *frame = calloc(1, PP__WIRE_HEADER_SIZE + payload);
  if (!frame)
    return pp_call_fail(call, "rstray_done: no memory");
  pp__store_u32(frame, PP__WIRE_MAGIC);
  frame[4] = PP__WIRE_VERSION;
  frame[5] = PP__F_RECORDS_DONE;
  pp__store_u32(frame + 8, (uint32_t)payload);
  pp__store_u32(frame + 12, (uint32_t)id);
  pp__store_u32(frame + 16, (uint32_t)(id >> 32));
  pp__store_u32(frame + PP__WIRE_HEADER_SIZE, (uint32_t)chunk->count);
  pp_status st = pp__call_send_raw(call, frame, PP__WIRE_HEADER_SIZE + payload);
  free(frame);
  if (st != PP_OK)
    return pp_call_fail(call, "rstray_done: %s", pp_strerror(st));
  tu_sleep_ms(200);
  return rsquare(chunk, call);
}

/* A call task: pp_records_fail() refuses its call. */
static pp_status records_fail_outside(pp_call *call) {
  return pp_call_return_i64(call, pp_records_fail(call, 0, "x") == PP_EINVAL);
}

pp_status records_task_tasks_register(void) {
  static const struct {
    const char *name;
    pp_records_task_fn fn;
  } table[] = {
      {"rsquare", rsquare},         {"rwhere", rwhere},
      {"rpair_sum", rpair_sum},     {"rfail_on", rfail_on},
      {"rfail_chunk", rfail_chunk}, {"rcheck", rcheck},
      {"rdie_on", rdie_on},         {"rstray_done", rstray_done},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    pp_status st = pp_register_records(table[i].name, table[i].fn);
    if (st != PP_OK)
      return st;
  }
  return pp_register("records_fail_outside", records_fail_outside);
}

/* in[i] = i, out[i] = -1. */
static void fill(int64_t *in, int64_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    in[i] = (int64_t)i;
    out[i] = -1;
  }
}

/* Every record squared, its arrays aligned, for small chunks (through the
 * channel) and for the default ones of a big map (through the lanes). */
static void test_squares(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  const size_t sizes[] = {1, 10, 1000, 1000000};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k];
    int64_t *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    const size_t chunksizes[] = {0, 1, 7};
    for (size_t c = 0; c < 3; c++) {
      if (n > 1000 && chunksizes[c])
        continue; /* a million one-record chunks: too slow for a test */
      fill(in, out, n);
      pp_records rec = {in, n, sizeof *in, out, sizeof *out, NULL, 0};
      pp_result *r = NULL;
      CU_ASSERT_EQUAL(pp_map_records(pool, "rsquare", &rec, chunksizes[c], &r),
                      PP_OK);
      size_t wrong = 0;
      for (size_t i = 0; i < n; i++)
        wrong += out[i] != (int64_t)i * (int64_t)i;
      CU_ASSERT_EQUAL(wrong, 0);
      int ok = 0;
      CU_ASSERT_EQUAL(pp_result_successful(r, &ok), PP_OK);
      CU_ASSERT_EQUAL(ok, 1);
      pp_result_free(r);
    }
    free(in);
    free(out);
  }
  pp_pool_destroy(pool);
}

/* The task is called once per chunk, with the chunks the chunk size makes
 * (full ones, then the rest), each knowing where it starts in the map:
 * small chunks through the channel, and the default chunks of a bigger map
 * through the lanes. */
static void test_one_call_per_chunk(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 100, CHUNK = 7, BIG = 100000 };
  int64_t in[N], out[N];
  fill(in, out, N);
  pp_records rec = {in, N, sizeof in[0], out, sizeof out[0], NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(pp_map_records(pool, "rwhere", &rec, CHUNK, &r), PP_OK);
  for (size_t i = 0; i < N; i++) {
    int64_t count = N - i / CHUNK * CHUNK < CHUNK ? N % CHUNK : CHUNK;
    CU_ASSERT_EQUAL(out[i], count * 1000000000 + (int64_t)i);
  }
  pp_result_free(r);

  int64_t *bin = malloc(BIG * sizeof *bin), *bout = malloc(BIG * sizeof *bout);
  CU_ASSERT_PTR_NOT_NULL_FATAL(bin);
  CU_ASSERT_PTR_NOT_NULL_FATAL(bout);
  fill(bin, bout, BIG);
  pp_records big = {bin, BIG, sizeof *bin, bout, sizeof *bout, NULL, 0};
  CU_ASSERT_EQUAL(pp_map_records(pool, "rwhere", &big, 0, &r), PP_OK);
  size_t wrong = 0;
  for (size_t i = 0; i < BIG; i++)
    wrong += bout[i] % 1000000000 != (int64_t)i || bout[i] < 1000000000;
  CU_ASSERT_EQUAL(wrong, 0);
  pp_result_free(r);
  free(bin);
  free(bout);
  pp_pool_destroy(pool);
}

/* With field sizes the task still reads whole records. */
static void test_fields_give_whole_records(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 50 };
  int64_t in[2 * N], out[N];
  for (size_t i = 0; i < N; i++) {
    in[2 * i] = (int64_t)i;
    in[2 * i + 1] = 1000;
    out[i] = -1;
  }
  const size_t fields[] = {sizeof(int64_t), sizeof(int64_t)};
  pp_records rec = {in, N, 2 * sizeof(int64_t), out, sizeof out[0], fields, 2};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "rpair_sum", &rec, 8, &r), PP_OK);
  for (size_t i = 0; i < N; i++)
    CU_ASSERT_EQUAL(out[i], (int64_t)i + 1000);
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* One record failed: PP_ETASK with the task's first message for it, its
 * result zeroed, every other record's result in place. */
static void test_one_record_fails(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 20 };
  int64_t in[N], out[N];
  const size_t chunksizes[] = {1, 6, 0};
  for (size_t c = 0; c < 3; c++) {
    fill(in, out, N);
    pp_records rec = {in, N, sizeof in[0], out, sizeof out[0], NULL, 0};
    pp_result *r = NULL;
    CU_ASSERT_EQUAL(pp_map_records(pool, "rfail_on", &rec, chunksizes[c], &r),
                    PP_ETASK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(tu_contains(pp_result_error(r), RFAIL_MSG " 5"));
    pp_bytes b = {NULL, 0};
    CU_ASSERT_EQUAL(pp_result_item(r, BAD_VALUE, &b), PP_ETASK);
    CU_ASSERT(tu_bytes_contain(b, RFAIL_MSG " 5"));
    CU_ASSERT(!tu_bytes_contain(b, "second"));
    CU_ASSERT_EQUAL(pp_result_item(r, BAD_VALUE + 1, &b), PP_OK);
    for (size_t i = 0; i < N; i++)
      CU_ASSERT_EQUAL(out[i], i == BAD_VALUE ? 0 : (int64_t)(i * i));
    pp_result_free(r);
  }
  pp_pool_destroy(pool);
}

/* A chunk failed as a whole, by pp_call_fail() or by a returned status,
 * after one of its records failed alone: each of its records fails with
 * the whole chunk's message and reads as zero; the other chunks land (the
 * worker listed the record twice before, and was stopped for a malformed
 * answer: every record came back PP_EPROTOCOL). */
static void test_whole_chunk_fails(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 40 };
  int64_t in[N], out[N];
  const struct {
    size_t chunksize;
    const char *message;
  } cases[] = {{5, "rfail_chunk: chunk of 5"},
               {4, "returned an error"}}; /* TASK_RET_STATUS, no message */
  for (size_t c = 0; c < 2; c++) {
    size_t cs = cases[c].chunksize;
    fill(in, out, N);
    pp_records rec = {in, N, sizeof in[0], out, sizeof out[0], NULL, 0};
    pp_result *r = NULL;
    CU_ASSERT_EQUAL(pp_map_records(pool, "rfail_chunk", &rec, cs, &r),
                    PP_ETASK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(tu_contains(pp_result_error(r), cases[c].message));
    size_t bad_first = BAD_VALUE / cs * cs;
    for (size_t i = 0; i < N; i++) {
      int in_bad = i >= bad_first && i < bad_first + cs;
      pp_bytes b = {NULL, 0};
      CU_ASSERT_EQUAL(pp_result_item(r, i, &b), in_bad ? PP_ETASK : PP_OK);
      if (in_bad) {
        CU_ASSERT(tu_bytes_contain(b, cases[c].message));
        CU_ASSERT(!tu_bytes_contain(b, "one record first"));
      }
      CU_ASSERT_EQUAL(out[i], in_bad ? 0 : (int64_t)(i * i));
    }
    pp_result_free(r);
  }
  pp_pool_destroy(pool);
}

/* A map whose every chunk fails whole keeps a failure per chunk at most,
 * not a copy of the message per record (100,000 copies of 80-odd bytes
 * each before), and still answers for every record. */
static void test_failed_chunks_kept_whole(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 100000, CHUNK = 1000 };
  int64_t *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
  CU_ASSERT_FATAL(in && out);
  for (size_t i = 0; i < N; i++)
    in[i] = BAD_VALUE; /* every chunk fails */
  pp_records rec = {in, N, sizeof in[0], out, sizeof out[0], NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "rfail_chunk", &rec, CHUNK, &r),
                  PP_ETASK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  /* At most one a chunk: those that came back in order share one. */
  CU_ASSERT(r->nrec_errors >= 1 && r->nrec_errors <= pp_result_chunks(r));
  size_t wrong = 0;
  for (size_t i = 0; i < N; i++) {
    pp_bytes b = {NULL, 0};
    wrong += pp_result_item(r, i, &b) != PP_ETASK ||
             !tu_bytes_contain(b, "rfail_chunk");
  }
  CU_ASSERT_EQUAL(wrong, 0);
  pp_result_free(r);
  free(in);
  free(out);
  pp_pool_destroy(pool);
}

/* A worker dying in a records task fails that chunk's records with
 * PP_EWORKERDIED; the pool goes on. */
static void test_worker_dies_in_task(void) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 30, CHUNK = 10 };
  int64_t in[N], out[N];
  fill(in, out, N);
  pp_records rec = {in, N, sizeof in[0], out, sizeof out[0], NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "rdie_on", &rec, CHUNK, &r),
                  PP_EWORKERDIED);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT(tu_contains(pp_result_error(r), "died"));
  for (size_t i = CHUNK; i < N; i++)
    CU_ASSERT_EQUAL(out[i], (int64_t)(i * i));
  pp_bytes b;
  CU_ASSERT_EQUAL(pp_result_item(r, BAD_VALUE, &b), PP_EWORKERDIED);
  pp_result_free(r);

  fill(in, out, N);
  in[BAD_VALUE] = 1;
  CU_ASSERT_EQUAL(pp_map_records(pool, "rdie_on", &rec, CHUNK, &r), PP_OK);
  CU_ASSERT_EQUAL(out[N - 1], (int64_t)((N - 1) * (N - 1)));
  pp_result_free(r);
  pp_pool_destroy(pool);
}

/* The records task's call: no arguments, pp_records_fail()'s checks; and a
 * call task's call, which pp_records_fail() refuses. */
static void test_call_checks(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  enum { N = 9 };
  int64_t in[N], out[N];
  fill(in, out, N);
  pp_records rec = {in, N, sizeof in[0], out, sizeof out[0], NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "rcheck", &rec, 4, &r), PP_OK);
  for (size_t i = 0; i < N; i++)
    CU_ASSERT_EQUAL(out[i], 1);
  pp_result_free(r);
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "records_fail_outside", 0, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 1);
  pp_pool_destroy(pool);
}

/* A records task outside a records map fails with a message that says
 * where it runs; registering a name twice across the two kinds is refused. */
static void test_misuse(void) {
  CU_ASSERT_EQUAL(pp_register_records(NULL, rsquare), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_register_records("records_null", NULL), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_register_records("", rsquare), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_register_records("rsquare", rsquare), PP_OK);
  CU_ASSERT_EQUAL(pp_register_records("rsquare", rwhere), PP_ESTATE);
  CU_ASSERT_EQUAL(pp_register_records("square", rsquare), PP_ESTATE);
  CU_ASSERT_EQUAL(pp_register("rsquare", records_fail_outside), PP_ESTATE);

  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_value v = {0};
  int64_t x = 3;
  pp_bytes arg = tu_i64(&x);
  CU_ASSERT_EQUAL(pp_apply(pool, "rsquare", &arg, 1, &v), PP_EUNKNOWNTASK);
  CU_ASSERT(v.error && tu_contains(v.error, "records task"));
  pp_value_clear(&v);

  pp_options o;
  pp_options_init(&o);
  o.processes = 1;
  o.initializer = "rsquare";
  pp_pool *refused = NULL;
  CU_ASSERT_EQUAL(pp_pool_create(&refused, &o), PP_EINVAL);
  CU_ASSERT_PTR_NULL(refused);
  pp_pool_destroy(pool);
}

int pp_test_suite_records_task(void) {
  static const tu_test tests[] = {
      {"records task: aligned squares, small chunks and a million records",
       test_squares},
      {"records task: one call per chunk, sized by the chunk size, with its "
       "first index",
       test_one_call_per_chunk},
      {"records task: field sizes leave records whole",
       test_fields_give_whole_records},
      {"records task: one record fails, first message, zeroed",
       test_one_record_fails},
      {"records task: a whole chunk fails, two ways", test_whole_chunk_fails},
      {"records task: chunks that fail whole are kept as one failure each",
       test_failed_chunks_kept_whole},
      {"records task: a worker dies in one, the pool goes on",
       test_worker_dies_in_task},
      {"records task: its call's checks", test_call_checks},
      {"records task: misuse refused with a message", test_misuse},
  };
  return tu_add_suite("records_task", tests, sizeof tests / sizeof tests[0]);
}
