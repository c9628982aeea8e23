/* Tasks used by the procpool CUnit suites. They run in worker processes. */
#include "tasks.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int64_t g_stored = -1;
static int64_t g_init_count = 0;

static pp_status task_square(pp_call *call) {
  int64_t x;
  if (pp_call_arg_i64(call, 0, &x) != PP_OK) {
    return pp_call_fail(call, "square: expected one int64 argument");
  }
  return pp_call_return_i64(call, x * x);
}

static pp_status task_add(pp_call *call) {
  int64_t a, b;
  if (pp_call_argc(call) != 2 || pp_call_arg_i64(call, 0, &a) != PP_OK ||
      pp_call_arg_i64(call, 1, &b) != PP_OK) {
    return pp_call_fail(call, "add: expected two int64 arguments, got %lu",
                        (unsigned long)pp_call_argc(call));
  }
  return pp_call_return_i64(call, a + b);
}

static pp_status task_sum(pp_call *call) {
  int64_t total = 0;
  size_t n = pp_call_argc(call);
  for (size_t i = 0; i < n; i++) {
    int64_t x;
    if (pp_call_arg_i64(call, i, &x) != PP_OK) {
      return pp_call_fail(call, "sum: argument %lu is not an int64",
                          (unsigned long)i);
    }
    total += x;
  }
  return pp_call_return_i64(call, total);
}

static pp_status task_sleep_ms(pp_call *call) {
  int64_t ms;
  if (pp_call_arg_i64(call, 0, &ms) != PP_OK) {
    return pp_call_fail(call, "sleep_ms: expected one int64 argument");
  }
  tu_sleep_ms((long)ms);
  return pp_call_return_i64(call, ms);
}

static pp_status task_jitter(pp_call *call) {
  int64_t x;
  if (pp_call_arg_i64(call, 0, &x) != PP_OK) {
    return pp_call_fail(call, "jitter: expected one int64 argument");
  }
  /* 0-3 ms, scrambled so that neighbours take different times */
  tu_sleep_ms((long)(((uint64_t)x * 2654435761u >> 7) % 4));
  return pp_call_return_i64(call, x);
}

static pp_status task_fail(pp_call *call) {
  int64_t x = 0;
  (void)pp_call_arg_i64(call, 0, &x);
  return pp_call_fail(call, TASK_FAIL_PREFIX "%lld", (long long)x);
}

static pp_status task_fail_on(pp_call *call) {
  int64_t x;
  if (pp_call_arg_i64(call, 0, &x) != PP_OK) {
    return pp_call_fail(call, "fail_on: expected one int64 argument");
  }
  if (x == TASK_FAIL_ON_ITEM) {
    return pp_call_fail(call, "%s", TASK_FAIL_ON_MSG);
  }
  return pp_call_return_i64(call, x * x);
}

static pp_status task_fail_zero_slow(pp_call *call) {
  int64_t x;
  if (pp_call_arg_i64(call, 0, &x) != PP_OK) {
    return pp_call_fail(call, "fail_zero_slow: expected one int64 argument");
  }
  if (x == 0) {
    return pp_call_fail(call, "%s", TASK_FAIL_ZERO_MSG);
  }
  tu_sleep_ms(TASK_SLOW_MS);
  return pp_call_return_i64(call, x * x);
}

static pp_status task_getpid(pp_call *call) {
  return pp_call_return_i64(call, (int64_t)tu_self_pid());
}

static pp_status task_echo(pp_call *call) {
  pp_bytes b;
  if (pp_call_argc(call) == 0) {
    return pp_call_return(call, NULL, 0);
  }
  if (pp_call_arg(call, 0, &b) != PP_OK) {
    return pp_call_fail(call, "echo: cannot read argument 0");
  }
  return pp_call_return(call, b.data, b.len);
}

/* blob(seed[, len]): TASK_BLOB_LEN bytes, or len, of task_blob_byte(). */
static pp_status task_blob(pp_call *call) {
  int64_t seed = 0, len = TASK_BLOB_LEN;
  if (pp_call_arg_i64(call, 0, &seed) != PP_OK ||
      (pp_call_argc(call) > 1 && pp_call_arg_i64(call, 1, &len) != PP_OK) ||
      len < 0)
    return pp_call_fail(call, "blob: needs an int64 seed and a length");
  unsigned char *b = malloc(len ? (size_t)len : 1);
  if (!b)
    return pp_call_fail(call, "blob: out of memory");
  for (size_t j = 0; j < (size_t)len; j++)
    b[j] = task_blob_byte(seed, j);
  pp_status st = pp_call_return(call, b, (size_t)len);
  free(b);
  return st;
}

static pp_status task_init_store(pp_call *call) {
  int64_t x;
  if (pp_call_arg_i64(call, 0, &x) != PP_OK) {
    return pp_call_fail(call, "init_store: expected one int64 argument");
  }
  g_stored = x;
  return PP_OK;
}

static pp_status task_get_stored(pp_call *call) {
  return pp_call_return_i64(call, g_stored);
}

static pp_status task_init_count(pp_call *call) {
  (void)call;
  g_init_count++;
  return PP_OK;
}

static pp_status task_get_init_count(pp_call *call) {
  return pp_call_return_i64(call, g_init_count);
}

static pp_status task_init_probe(pp_call *call) {
  int64_t out[2];
  out[0] = g_init_count;
  out[1] = (int64_t)tu_self_pid();
  return pp_call_return(call, out, sizeof out);
}

/* Worker-side API errors. Called with (int64, the 3 bytes "abc"). */
static pp_status task_call_checks(pp_call *call) {
  pp_bytes b;
  int64_t x;
  if (pp_call_argc(call) != 2) {
    return pp_call_fail(call, "call_checks: argc %lu, expected 2",
                        (unsigned long)pp_call_argc(call));
  }
  if (pp_call_arg(call, 2, &b) != PP_EINVAL) {
    return pp_call_fail(call, "call_checks: pp_call_arg index 2 not EINVAL");
  }
  if (pp_call_arg(call, 0, NULL) != PP_EINVAL) {
    return pp_call_fail(call, "call_checks: pp_call_arg NULL out not EINVAL");
  }
  if (pp_call_arg(NULL, 0, &b) != PP_EINVAL) {
    return pp_call_fail(call, "call_checks: pp_call_arg NULL call not EINVAL");
  }
  if (pp_call_arg_i64(call, 1, &x) != PP_EINVAL) {
    return pp_call_fail(call, "call_checks: 3-byte arg read as i64");
  }
  /* In the worker too, the last failure is named. */
  const char *why = pp_last_error();
  if (!why || strcmp(why, "pp_call_arg_i64: argument 1 is 3 bytes, not the "
                          "8 of an int64_t") != 0) {
    return pp_call_fail(call, "call_checks: pp_last_error() is \"%s\"",
                        why ? why : "(null)");
  }
  if (pp_call_arg_i64(call, 5, &x) != PP_EINVAL) {
    return pp_call_fail(call, "call_checks: missing arg read as i64");
  }
  if (pp_call_arg(call, 1, &b) != PP_OK || b.len != 3 ||
      memcmp(b.data, "abc", 3) != 0) {
    return pp_call_fail(call, "call_checks: arg 1 is not \"abc\"");
  }
  if (pp_call_return(call, NULL, 5) != PP_EINVAL) {
    return pp_call_fail(call, "call_checks: return NULL/5 not EINVAL");
  }
  if (pp_call_return(NULL, "x", 1) != PP_EINVAL ||
      pp_call_return_i64(NULL, 1) != PP_EINVAL) {
    return pp_call_fail(call, "call_checks: return on NULL call not EINVAL");
  }
  if (pp_call_argc(NULL) != 0) {
    return pp_call_fail(call, "call_checks: argc(NULL) != 0");
  }
  /* a later return replaces an earlier one */
  if (pp_call_return_i64(call, 7) != PP_OK) {
    return pp_call_fail(call, "call_checks: first return failed");
  }
  return pp_call_return_i64(call, 1);
}

/* The decimal text of an int64, without its NUL: values of one size for
 * inputs of one size, until the number of digits changes. */
static pp_status task_digits(pp_call *call) {
  int64_t x;
  if (pp_call_arg_i64(call, 0, &x) != PP_OK) {
    return pp_call_fail(call, "digits: expected one int64 argument");
  }
  char text[32];
  int n = snprintf(text, sizeof text, "%lld", (long long)x);
  return pp_call_return(call, text, n > 0 ? (size_t)n : 0);
}

/* Squares, but gives no value for x % 5 == 3 (an empty one), sets an
 * empty one from NULL for x % 20 == 4, and sets a value twice for
 * x % 5 == 1 (the last one counts): calls that are not a plain value,
 * among ones that are, in one chunk. */
static pp_status task_square_or_not(pp_call *call) {
  int64_t x;
  if (pp_call_arg_i64(call, 0, &x) != PP_OK) {
    return pp_call_fail(call, "square_or_not: expected one int64 argument");
  }
  if (x % 20 == 4) {
    return pp_call_return(call, NULL, 0);
  }
  if (x % 5 == 3) {
    return PP_OK;
  }
  if (x % 5 == 1) {
    (void)pp_call_return(call, "a value replaced", 16);
  }
  return pp_call_return_i64(call, x * x);
}

/* How many of this worker's mappings are a pool's shared-memory segment
 * (Linux: /proc/self/maps names "/memfd:procpool-lanes" or, where the
 * segment was made with a name, "/dev/shm/pp.…"); -1 where it cannot
 * tell. With a string argument, only the mappings whose line holds it. */
static pp_status task_shm_maps(pp_call *call) {
  char only[64] = "";
  pp_bytes b;
  if (pp_call_argc(call) > 0 && pp_call_arg(call, 0, &b) == PP_OK &&
      b.len < sizeof only) {
    memcpy(only, b.data, b.len);
    only[b.len] = '\0';
  }
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f)
    return pp_call_return_i64(call, -1);
  char line[512];
  int64_t n = 0;
  while (fgets(line, sizeof line, f))
    if (only[0] ? strstr(line, only) != NULL
                : strstr(line, "/memfd:procpool-lanes") != NULL ||
                      strstr(line, "/dev/shm/pp.") != NULL)
      n++;
  fclose(f);
  return pp_call_return_i64(call, n);
}

static pp_status task_ret_status(pp_call *call) {
  (void)call;
  return TASK_RET_STATUS;
}

pp_status tasks_register(void) {
  static const struct {
    const char *name;
    pp_task_fn fn;
  } table[] = {
      {"square", task_square},
      {"add", task_add},
      {"sum", task_sum},
      {"sleep_ms", task_sleep_ms},
      {"jitter", task_jitter},
      {"fail", task_fail},
      {"fail_on", task_fail_on},
      {"fail_zero_slow", task_fail_zero_slow},
      {"getpid", task_getpid},
      {"echo", task_echo},
      {"blob", task_blob},
      {"init_store", task_init_store},
      {"get_stored", task_get_stored},
      {"init_count", task_init_count},
      {"get_init_count", task_get_init_count},
      {"init_probe", task_init_probe},
      {"call_checks", task_call_checks},
      {"ret_status", task_ret_status},
      {"digits", task_digits},
      {"square_or_not", task_square_or_not},
      {"shm_maps", task_shm_maps},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    pp_status st = pp_register(table[i].name, table[i].fn);
    if (st != PP_OK) {
      return st;
    }
  }
  return PP_OK;
}
