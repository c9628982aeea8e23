/* Suite "in_place": records chunks that a worker reads from the caller's
 * array and writes into the caller's output itself, where the system lets
 * a worker into its parent's memory (backend.h, "the parent's memory"):
 * the results, record failures at their indexes across the worker's
 * slices, an input the worker cannot read, an output it cannot write, a
 * terminate while a worker writes, and the lanes where the system says no. */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L /* fork, mmap */
#endif

#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* pp__test, pp__parent_mem, the pool's count */
#include "procpool.h"
#include "suites.h"
#include "tasks.h"
#include "util.h"

#ifndef _WIN32
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

/* Records per map of the big cases: default chunks of 125,000 records,
 * 1 MB each way, well past the size that goes in place. */
#define BIG 1000000
/* The records task of the records_task suite that fails records holding
 * this value, and its message. */
#define BAD_VALUE 5
#define RFAIL_MSG "rfail_on: bad record"

/* Whether this system lets a child read its parent's memory: asked from a
 * child of this test's own, with the backend's call but none of the pool's
 * handshake, which is what the suite checks. */
static int parent_mem_allowed(void) {
#ifdef _WIN32
  return 1; /* a process of the same user, at the same integrity level */
#else
  static volatile uint64_t probe = 0x5eedf00d5eedf00dull;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    pp__parent_mem *m = NULL;
    uint64_t seen = 0;
    int ok = pp__parent_mem_open((long)parent, &m) == PP_OK &&
             pp__parent_mem_read(m, &seen, (uint64_t)(uintptr_t)&probe,
                                 sizeof seen) == PP_OK &&
             seen == probe;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
#endif
}

static unsigned long chunks_in_place(pp_pool *pool) {
  pp__mutex_lock(pool->shared->lock);
  unsigned long n = pool->chunks_in_place;
  pp__mutex_unlock(pool->shared->lock);
  return n;
}

static void fill(int64_t *in, int64_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    in[i] = (int64_t)i;
    out[i] = -1;
  }
}

static size_t wrong_squares(const int64_t *out, size_t n) {
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++)
    wrong += out[i] != (int64_t)i * (int64_t)i;
  return wrong;
}

/* A map of squares over BIG records by `task`: every result right. */
static void squares(pp_pool *pool, const char *task, int64_t *in,
                    int64_t *out) {
  fill(in, out, BIG);
  pp_records rec = {in, BIG, sizeof *in, out, sizeof *out, NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, task, &rec, 0, &r), PP_OK);
  CU_ASSERT_EQUAL(wrong_squares(out, BIG), 0);
  pp_result_free(r);
}

/* Big maps, a call per record and a records task, land whole; where each
 * record sat in the map reaches the records task; the chunks went in
 * place exactly where the system allows it, and through the lanes under
 * the hook that offers no probe. */
static void test_results(void) {
  int allowed = parent_mem_allowed();
  int64_t *in = malloc(BIG * sizeof *in), *out = malloc(BIG * sizeof *out);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  for (int hook = 0; hook < 2; hook++) {
    pp__test.no_parent_mem = hook;
    pp_pool *pool = tu_pool(2);
    pp__test.no_parent_mem = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    for (int round = 0; round < 2; round++) {
      squares(pool, "square", in, out);
      squares(pool, "rsquare", in, out);
    }
    /* rwhere: count * 1e9 + the record's index in the map. */
    fill(in, out, BIG);
    pp_records rec = {in, BIG, sizeof *in, out, sizeof *out, NULL, 0};
    pp_result *r = NULL;
    CU_ASSERT_EQUAL(pp_map_records(pool, "rwhere", &rec, 100000, &r), PP_OK);
    size_t wrong = 0;
    for (size_t i = 0; i < BIG; i++)
      wrong += out[i] != (int64_t)100000 * 1000000000 + (int64_t)i;
    CU_ASSERT_EQUAL(wrong, 0);
    pp_result_free(r);
    /* The output in the input's place, through either path. */
    for (size_t i = 0; i < BIG; i++)
      in[i] = (int64_t)i;
    pp_records same = {in, BIG, sizeof *in, in, sizeof *in, NULL, 0};
    CU_ASSERT_EQUAL(pp_map_records(pool, "square", &same, 0, &r), PP_OK);
    CU_ASSERT_EQUAL(wrong_squares(in, BIG), 0);
    pp_result_free(r);
    unsigned long placed = chunks_in_place(pool);
    if (hook || !allowed) {
      CU_ASSERT_EQUAL(placed, 0);
    } else {
      CU_ASSERT(placed > 0);
    }
    pp_pool_destroy(pool);
  }
  if (!allowed)
    fprintf(stderr, "\n  in_place: this system keeps workers out of their "
                    "parent's memory; only the lanes were checked\n");
  free(in);
  free(out);
}

/* Record failures keep their index in the map, on both sides of the
 * worker's slices and of the chunks, with a call per record and with a
 * records task; the failed records' results read as zero; the output may
 * be the input; fields cut records for a call per record in place too. */
static void test_failures_keep_their_index(void) {
  enum { N = 200000 }; /* default chunks of 25,000 records: 200 KB */
  /* 5 holds BAD_VALUE anyway; the others are made to. */
  static const size_t bad[] = {0, 5, 8191, 8192, 24999, 25000, 131071, N - 1};
  const size_t nbad = sizeof bad / sizeof bad[0];
  int64_t *in = malloc(2 * N * sizeof *in), *out = malloc(N * sizeof *out);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  const struct {
    const char *task, *message;
  } cases[] = {{"fail_on", TASK_FAIL_ON_MSG}, {"rfail_on", RFAIL_MSG " 5"}};
  for (size_t c = 0; c < 2; c++) {
    fill(in, out, N);
    for (size_t k = 0; k < nbad; k++)
      in[bad[k]] = BAD_VALUE;
    pp_records rec = {in, N, sizeof *in, out, sizeof *out, NULL, 0};
    pp_result *r = NULL;
    CU_ASSERT_EQUAL(pp_map_records(pool, cases[c].task, &rec, 0, &r), PP_ETASK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    size_t failed = 0, wrong = 0;
    for (size_t i = 0; i < N; i++) {
      pp_bytes b = {NULL, 0};
      pp_status st = pp_result_item(r, i, &b);
      int is_bad = 0;
      for (size_t k = 0; k < nbad; k++)
        is_bad |= bad[k] == i;
      if (st != PP_OK) {
        failed++;
        wrong += !is_bad || st != PP_ETASK ||
                 !tu_bytes_contain(b, cases[c].message) || out[i] != 0;
      } else {
        wrong += is_bad || out[i] != (int64_t)i * (int64_t)i;
      }
    }
    CU_ASSERT_EQUAL(failed, nbad);
    CU_ASSERT_EQUAL(wrong, 0);
    pp_result_free(r);
  }
  /* The output array may be the input array, sizes equal: each slice is
   * read before its results are written. */
  for (size_t i = 0; i < N; i++)
    in[i] = (int64_t)i;
  pp_records same = {in, N, sizeof *in, in, sizeof *in, NULL, 0};
  pp_result *rs = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "square", &same, 0, &rs), PP_OK);
  CU_ASSERT_EQUAL(wrong_squares(in, N), 0);
  pp_result_free(rs);
  /* Two int64 fields per record, added: the fields path in place. */
  for (size_t i = 0; i < N; i++) {
    in[2 * i] = (int64_t)i;
    in[2 * i + 1] = 3 * (int64_t)i;
    out[i] = -1;
  }
  const size_t fields[] = {sizeof(int64_t), sizeof(int64_t)};
  pp_records pairs = {in, N, 2 * sizeof *in, out, sizeof *out, fields, 2};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "add", &pairs, 0, &r), PP_OK);
  size_t wrong = 0;
  for (size_t i = 0; i < N; i++)
    wrong += out[i] != 4 * (int64_t)i;
  CU_ASSERT_EQUAL(wrong, 0);
  pp_result_free(r);
  pp_pool_destroy(pool);
  free(in);
  free(out);
}

#ifndef _WIN32
/* Not on Windows: Wine reads for ReadProcessMemory() what Windows would
 * refuse (PAGE_NOACCESS pages, ranges given back), so the test could not
 * tell there; the Windows backend's failure path is the same check of the
 * call's result. */

/* A records map whose input the worker cannot read, or whose output it
 * cannot write (the caller broke the contract: the array is not readable,
 * or not writable, memory), fails its chunks with PP_ESYSTEM and a message
 * that says which, and leaves the caller and the pool working: through the
 * lanes the parent's own copy would have crashed it, and so would the
 * parent's zeroing of the chunks before the worker did it. Each output
 * then reads as `left`: zero where the worker could write it, what it held
 * where it could not. */
static void broken_array(int broken_output, const char *says, const char *hint,
                         int64_t left) {
  if (!parent_mem_allowed()) {
    fprintf(stderr, "\n  in_place: not run (workers may not read their "
                    "parent's memory here)\n");
    return;
  }
  enum { N = 100000 }; /* default chunks of 25,000 records: 200 KB */
  size_t len = N * sizeof(int64_t);
  int64_t *in = malloc(len);
  int64_t *out = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int64_t *bad_in = broken_output ? in
                                  : mmap(NULL, len, PROT_NONE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  CU_ASSERT_FATAL(out != MAP_FAILED && bad_in != MAP_FAILED);
  /* One worker, proven able first: every chunk of the bad map goes in
   * place, none through the lanes, where this process would copy it. */
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  fill(in, out, N);
  pp_records good = {in, N, sizeof *in, out, sizeof *out, NULL, 0};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL(pp_map_records(pool, "square", &good, 0, &r), PP_OK);
  pp_result_free(r);
  unsigned long before = chunks_in_place(pool);
  CU_ASSERT_FATAL(before > 0);

  for (size_t i = 0; i < N; i++)
    out[i] = -1;
  if (broken_output)
    CU_ASSERT_EQUAL_FATAL(mprotect(out, len, PROT_READ), 0);
  pp_records bad = {bad_in, N, sizeof *in, out, sizeof *out, NULL, 0};
  CU_ASSERT_EQUAL(pp_map_records(pool, "square", &bad, 0, &r), PP_ESYSTEM);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT(tu_contains(pp_result_error(r), says));
  CU_ASSERT(tu_contains(pp_result_error(r), hint));
  pp_bytes b = {NULL, 0};
  CU_ASSERT_EQUAL(pp_result_item(r, 0, &b), PP_ESYSTEM);
  CU_ASSERT_EQUAL(pp_result_item(r, N - 1, &b), PP_ESYSTEM);
  size_t other = 0;
  for (size_t i = 0; i < N; i++)
    other += out[i] != left;
  CU_ASSERT_EQUAL(other, 0);
  pp_result_free(r);
  CU_ASSERT(chunks_in_place(pool) > before);

  if (broken_output)
    CU_ASSERT_EQUAL_FATAL(mprotect(out, len, PROT_READ | PROT_WRITE), 0);
  fill(in, out, N);
  CU_ASSERT_EQUAL(pp_map_records(pool, "square", &good, 0, &r), PP_OK);
  CU_ASSERT_EQUAL(wrong_squares(out, N), 0);
  pp_result_free(r);
  pp_pool_destroy(pool);
  if (!broken_output)
    munmap(bad_in, len);
  munmap(out, len);
  free(in);
}

static void test_unreadable_input(void) {
  broken_array(0, "could not read its records",
               "is the input array given to pp_map_records() still "
               "allocated, and readable?",
               0);
}

static void test_unwritable_output(void) {
  broken_array(1, "could not write its results",
               "is the output array given to pp_map_records() still "
               "allocated, and writable?",
               -1);
}
#endif

/* A terminate while a worker runs a chunk in place: the call ends with
 * PP_ETERMINATED only once that worker is gone, as until then it could
 * still write into the caller's array, which the caller may free as soon
 * as the call returns. */
static void test_terminate_waits_for_writers(void) {
  if (!parent_mem_allowed()) {
    fprintf(stderr, "\n  in_place: not run (workers may not read their "
                    "parent's memory here)\n");
    return;
  }
  enum { N = 16384, SLOW = 400 }; /* one 128 KiB chunk; 400 ms of sleeps */
  int64_t *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  /* Proven able first, so that the slow chunk goes in place: a worker's
   * first chunk goes out with its configuration, before it said it can. */
  for (size_t i = 0; i < N; i++)
    in[i] = 0;
  pp_records rec = {in, N, sizeof *in, out, sizeof *out, NULL, 0};
  pp_result *r = NULL;
  for (int k = 0; k < 2; k++) {
    CU_ASSERT_EQUAL(pp_map_records(pool, "sleep_ms", &rec, N, &r), PP_OK);
    pp_result_free(r);
  }
  unsigned long before = chunks_in_place(pool);
  CU_ASSERT_FATAL(before > 0);
  long pid = 0;
  size_t count = 0;
  CU_ASSERT_EQUAL(pp_pool_worker_pids(pool, &pid, 1, &count), PP_OK);
  CU_ASSERT_EQUAL_FATAL(count, 1);

  for (size_t i = 0; i < SLOW; i++)
    in[i] = 1;
  CU_ASSERT_EQUAL(pp_map_records_async(pool, "sleep_ms", &rec, N, NULL, &r),
                  PP_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  /* The slow chunk is sent in place, and runs: then terminate. */
  double until = tu_now() + TU_WAIT;
  while (chunks_in_place(pool) == before && tu_now() < until)
    tu_sleep_ms(1);
  CU_ASSERT_EQUAL(chunks_in_place(pool), before + 1);
  tu_sleep_ms(20);
  CU_ASSERT_EQUAL(pp_pool_terminate(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_ETERMINATED);
  CU_ASSERT(tu_pid_gone(pid));
  pp_result_free(r);
  pp_pool_destroy(pool);
  free(in);
  free(out);
}

/* Records chunks sent in place to a worker that then leaves (its memory
 * passed max_memory_per_child) go back to the queue, and its replacement
 * takes them before its READY, so not in place: their answers must still
 * be written into the caller's array. They were taken as written by the
 * worker, and the output kept what it held, every record saying PP_OK. */
static void test_resent_after_worker_left(void) {
  if (!parent_mem_allowed()) {
    fprintf(stderr, "\n  in_place: not run (workers may not read their "
                    "parent's memory here)\n");
    return;
  }
  enum { N = 1 << 20, CHUNK = 16384 }; /* 64 chunks of 128 KiB */
  int64_t *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  pp_pool *pool = tu_pool_memory_limited(64);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  unsigned long before = chunks_in_place(pool);
  int wrong_rounds = 0;
  for (int round = 0; round < 3; round++) {
    /* Quick calls first, so that the pool pipelines behind the hog. */
    int64_t y = 0;
    for (int64_t i = 0; i < 20; i++)
      CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", i, &y), PP_OK);
    int64_t mib = 128;
    pp_bytes a = tu_i64(&mib);
    pp_result *hog = NULL, *r = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "hog", &a, 1, NULL, &hog),
                          PP_OK);
    fill(in, out, N);
    pp_records rec = {in, N, sizeof *in, out, sizeof *out, NULL, 0};
    CU_ASSERT_EQUAL(pp_map_records(pool, "square", &rec, CHUNK, &r), PP_OK);
    size_t wrong = wrong_squares(out, N);
    if (wrong)
      fprintf(stderr, "\n  round %d: %zu records of %zu wrong\n", round, wrong,
              (size_t)N);
    wrong_rounds += wrong != 0;
    CU_ASSERT_EQUAL(pp_result_get(hog, TU_WAIT), PP_OK);
    pp_result_free(hog);
    pp_result_free(r);
  }
  CU_ASSERT_EQUAL(wrong_rounds, 0);
  /* The case this test is for happened: chunks went in place. */
  CU_ASSERT(chunks_in_place(pool) > before);
  pp_pool_destroy(pool);
  free(in);
  free(out);
}

/* A worker that answers a chunk sent in place with RECORDS_DONE (records
 * in the frame, as for a chunk sent with its records) breaks the protocol:
 * its records would be dropped, the output left as it was, and the call
 * said PP_OK while the worker could still write into the caller's array.
 * It is stopped, and the call fails. */
static void test_records_done_for_in_place(void) {
  if (!parent_mem_allowed()) {
    fprintf(stderr, "\n  in_place: not run (workers may not read their "
                    "parent's memory here)\n");
    return;
  }
  enum { N = 16384 }; /* one 128 KiB chunk: in place */
  int64_t *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  fill(in, out, N);
  pp_records rec = {in, N, sizeof *in, out, sizeof *out, NULL, 0};
  pp_result *r = NULL;
  for (int k = 0; k < 2; k++) { /* proven able first */
    CU_ASSERT_EQUAL(pp_map_records(pool, "rsquare", &rec, N, &r), PP_OK);
    pp_result_free(r);
  }
  unsigned long before = chunks_in_place(pool);
  /* Its one chunk's id: the map's job number (the next) above chunk 0. */
  in[0] = (int64_t)((uint64_t)(apr_atomic_read32(&pool->next_job) + 1) << 32);
  CU_ASSERT_EQUAL(pp_map_records(pool, "rstray_done", &rec, N, &r),
                  PP_EPROTOCOL);
  CU_ASSERT(tu_contains(pp_result_error(r), "no task it was sent"));
  CU_ASSERT_EQUAL(chunks_in_place(pool), before + 1);
  pp_result_free(r);
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 7, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 49);
  pp_pool_destroy(pool);
  free(in);
  free(out);
}

int pp_test_suite_in_place(void) {
  static const tu_test tests[] = {
      {"in place: big maps land whole, in place where the system allows",
       test_results},
      {"in place: failed records keep their index across slices and chunks",
       test_failures_keep_their_index},
#ifndef _WIN32
      {"in place: an input the worker cannot read fails its chunks, the "
       "caller lives",
       test_unreadable_input},
      {"in place: an output the worker cannot write fails its chunks, the "
       "caller lives",
       test_unwritable_output},
#endif
      {"in place: terminate ends the call once the writing worker is gone",
       test_terminate_waits_for_writers},
      {"in place: chunks sent again after their worker left land whole",
       test_resent_after_worker_left},
      {"in place: a RECORDS_DONE answer to a chunk in place stops its worker",
       test_records_done_for_in_place},
  };
  return tu_add_suite("in_place", tests, TU_NTESTS(tests));
}
