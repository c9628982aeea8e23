/* Owned call outcomes (pp_value) and chunk-size arithmetic. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the owner path of a block ----
 * The reference count's atomic decrement was 6 ns of every imap item taken
 * one at a time, and the values of a chunk are as a rule given back by
 * the thread that took them. So that thread (the iterator's owner, see
 * iter.c) becomes the block's owner and counts the references it gives
 * back in a field of its own (owner_gave), with plain stores, framed by
 * owner_busy as iter.c frames its items; while it is the owner nobody else
 * changes `refs`, so it is the last when its count reaches `refs`. The
 * first other thread to give a reference back takes the owner away
 * (exchanging it for NULL), runs pp__remote_barrier(), waits while the
 * owner is busy, then folds the owner's count into `refs`; from there on
 * every reference goes back with an atomic operation. Threads that give
 * one back meanwhile drop it from `refs` at once, which cannot reach zero
 * before the fold: the folding thread still holds its own. */

void pp__value_block_own(pp__value_block *block) {
  pp__atomic_ptr_set(&block->owner, pp__thread_token());
}

void pp__value_block_drop_owner(pp__value_block *block) {
  if (!pp__atomic_ptr_swap(&block->owner, NULL))
    return; /* another thread took it */
  pp__owner_wait_out(&block->owner_busy);
  if (block->owner_gave)
    (void)pp__atomic_add(&block->refs, (apr_uint32_t)0 - block->owner_gave);
}

int pp__value_block_owned(pp__value_block *block) {
  return pp__atomic_ptr_get(&block->owner) != NULL;
}

/* A value's message, unless it is the status's own words (pp__value_fail
 * gives those where no copy could be made). */
static void free_error(char *error) {
  if (!pp__is_status_text(error))
    free(error);
}

void pp__value_fail(pp_value *v, pp_status st, const char *message,
                    size_t len) {
  v->status = st;
  v->error = NULL;
  if (message) {
    v->error = malloc(len + 1);
    if (v->error) {
      memcpy(v->error, message, len);
      v->error[len] = '\0';
    }
  }
  /* Never written through: pp_value_clear() leaves it alone. */
  if (!v->error)
    v->error = (char *)(uintptr_t)pp_strerror(st);
}

void pp_value_clear(pp_value *value) {
  if (!value)
    return;
  if (value->owner)
    pp__value_block_release(value->owner);
  else
    free(value->data);
  if (value->error) /* rare: spare the call for every item */
    free_error(value->error);
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
      free_error(v->error);
    memset(v, 0, sizeof *v);
  }
  if (run)
    pp__value_block_release_n(run, refs);
}

static pp_status value_i64(const pp_value *value, int64_t *out) {
  if (!value || !out)
    return pp__fail(PP_EINVAL, "%s is NULL", !value ? "value" : "out");
  if (value->status != PP_OK)
    return value->error ? pp__fail_text(value->status, value->error,
                                        strlen(value->error))
                        : value->status;
  if (value->len != sizeof *out || !value->data)
    return pp__fail(PP_EINVAL,
                    "the value is %zu bytes, not the 8 of an "
                    "int64_t",
                    value->len);
  memcpy(out, value->data, sizeof *out);
  return PP_OK;
}

pp_status pp_value_i64(const pp_value *value, int64_t *out) {
  return pp__api(__func__, value_i64(value, out));
}

size_t pp_default_chunksize(size_t n, int processes) {
  size_t div = 4 * (size_t)(processes > 0 ? processes : 1);
  size_t c = n / div + (n % div != 0);
  return c ? c : 1;
}
