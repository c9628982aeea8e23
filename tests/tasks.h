/* Tasks used by the procpool CUnit suites, registered by name. */
#ifndef PP_TEST_TASKS_H
#define PP_TEST_TASKS_H

#include "procpool.h"

#include <stddef.h>
#include <stdint.h>

/** Message prefix of the "fail" task: "fail task: argument <n>". */
#define TASK_FAIL_PREFIX "fail task: argument "
/** Message of the "fail_on" task for its failing item 5. */
#define TASK_FAIL_ON_MSG "fail_on: bad item 5"
/** The item on which "fail_on" fails. */
#define TASK_FAIL_ON_ITEM 5
/** Message of the "fail_zero_slow" task for item 0. */
#define TASK_FAIL_ZERO_MSG "fail_zero_slow: item 0"
/** How long "fail_zero_slow" sleeps on its other items (ms). */
#define TASK_SLOW_MS 200
/** The status the "ret_status" task returns without pp_call_fail(). */
#define TASK_RET_STATUS PP_ENOTSUP
/** How many bytes the "blob" task gives when not told. */
#define TASK_BLOB_LEN 40960

/** Byte @p j of the "blob" task's value for @p seed: each slice of a
    value, and each value, of its own. */
static inline unsigned char task_blob_byte(int64_t seed, size_t j) {
  return (unsigned char)((uint64_t)seed * 31u + j * 7u + (j >> 8));
}

/** Whether @p data, @p len bytes, is the "blob" task's value for @p seed
    of that length. */
static inline int task_blob_right(const void *data, size_t len, int64_t seed) {
  const unsigned char *p = data;
  for (size_t j = 0; j < len; j++)
    if (p[j] != task_blob_byte(seed, j))
      return 0;
  return 1;
}

/**
 * Registers every test task:
 *  square(i64) -> i64            x * x
 *  add(i64, i64) -> i64          a + b
 *  sum(i64...) -> i64            sum of all arguments
 *  sleep_ms(i64) -> i64          sleeps that many ms, returns it
 *  jitter(i64) -> i64            sleeps 0-3 ms (depends on x), returns x
 *  fail(i64)                     fails: TASK_FAIL_PREFIX "<x>"
 *  fail_on(i64) -> i64           fails on 5 (TASK_FAIL_ON_MSG), else x * x
 *  fail_zero_slow(i64) -> i64    fails at once on 0, else sleeps
 *                                TASK_SLOW_MS and returns x * x
 *  getpid() -> i64               the worker's pid
 *  echo(bytes) -> bytes          its first argument (empty if none)
 *  blob(i64[, i64]) -> bytes     TASK_BLOB_LEN bytes (or the second
 *                                argument's count) of task_blob_byte()
 *  init_store(i64)               initializer: stores x in a global
 *  get_stored() -> i64           that global (-1 before init_store)
 *  init_count()                  initializer: increments a per-process count
 *  get_init_count() -> i64       that count
 *  init_probe() -> {i64, i64}    {that count, the worker's pid}
 *  call_checks(i64, bytes[3])    checks the worker-side API's errors; 1 if ok
 *  ret_status()                  returns TASK_RET_STATUS, no pp_call_fail()
 * @return PP_OK, or the first registration error.
 */
pp_status tasks_register(void);

#endif /* PP_TEST_TASKS_H */
