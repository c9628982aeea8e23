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
