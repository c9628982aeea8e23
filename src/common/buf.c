/* Growable byte buffer. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

pp_status pp__buf_grow(pp__buf *b, size_t extra) {
  if (b->cap - b->end >= extra)
    return PP_OK;
  size_t len = pp__buf_len(b);
  /* Slide the unconsumed bytes to the front when that alone makes room. */
  if (b->start > 0 && b->cap - len >= extra) {
    memmove(b->data, b->data + b->start, len);
    b->start = 0;
    b->end = len;
    return PP_OK;
  }
  if (extra > (size_t)-1 / 2 - len)
    return PP_ETOOBIG;
  size_t want = len + extra;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < want)
    cap *= 2;
  unsigned char *data = malloc(cap);
  if (!data)
    return PP_ENOMEM;
  if (len)
    memcpy(data, b->data + b->start, len);
  free(b->data);
  b->data = data;
  b->start = 0;
  b->end = len;
  b->cap = cap;
  return PP_OK;
}

void pp__buf_free(pp__buf *b) {
  free(b->data);
  b->data = NULL;
  b->start = b->end = b->cap = 0;
}
