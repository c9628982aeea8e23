/* Owned call outcomes (pp_value) and chunk-size arithmetic. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void pp_value_clear(pp_value *value) {
  if (!value)
    return;
  if (value->owner)
    pp__value_block_release(value->owner);
  else
    free(value->data);
  if (value->error) /* rare: spare the call to free() for every item */
    free(value->error);
  memset(value, 0, sizeof *value);
}

void pp_value_clear_many(pp_value *values, size_t n) {
  if (!values)
    return;
  /* Values of one chunk side by side drop their block's references with
   * one atomic operation instead of one each. */
  pp__value_block *run = NULL;
  apr_uint32_t refs = 0;
  for (size_t i = 0; i < n; i++) {
    pp_value *v = &values[i];
    if (v->owner && v->owner == run) {
      refs++;
    } else if (v->owner) {
      if (run)
        pp__value_block_release_n(run, refs);
      run = v->owner;
      refs = 1;
    } else {
      free(v->data);
    }
    if (v->error)
      free(v->error);
    memset(v, 0, sizeof *v);
  }
  if (run)
    pp__value_block_release_n(run, refs);
}

pp_status pp_value_i64(const pp_value *value, int64_t *out) {
  if (!value || !out)
    return PP_EINVAL;
  if (value->status != PP_OK)
    return value->status;
  if (value->len != sizeof *out || !value->data)
    return PP_EINVAL;
  memcpy(out, value->data, sizeof *out);
  return PP_OK;
}

size_t pp_default_chunksize(size_t n, int processes) {
  size_t div = 4 * (size_t)(processes > 0 ? processes : 1);
  size_t c = n / div + (n % div != 0);
  return c ? c : 1;
}
