/* A growable byte buffer with a consumed prefix, used for channel input and
 * output and for building frames. Portable; no OS headers. */
#ifndef PP_BUF_H
#define PP_BUF_H

#include "procpool.h"

#include <stddef.h>
#include <string.h>

typedef struct pp__buf {
  unsigned char *data; /* allocation */
  size_t start;        /* first unconsumed byte */
  size_t end;          /* one past the last byte */
  size_t cap;          /* size of the allocation */
} pp__buf;

/* Readable bytes: data + start .. data + end. */
static inline size_t pp__buf_len(const pp__buf *b) { return b->end - b->start; }
/* An empty buffer may have no allocation: NULL + 0 is undefined in C. */
static inline unsigned char *pp__buf_head(const pp__buf *b) {
  return b->data ? b->data + b->start : b->data;
}
/* Writable room after the end: call pp__buf_reserve() first. */
static inline unsigned char *pp__buf_tail(const pp__buf *b) {
  return b->data ? b->data + b->end : b->data;
}

/* The slow path of pp__buf_reserve(): slides or reallocates. */
pp_status pp__buf_grow(pp__buf *b, size_t extra);

/* Makes room for at least `extra` more bytes at the tail (may move data).
 * Inline, as is pp__buf_append(): frames are built a few bytes at a time
 * (a u32 here, a u8 there), and a call plus a capacity check per field was
 * a good part of encoding a small item. */
static inline pp_status pp__buf_reserve(pp__buf *b, size_t extra) {
  return b->cap - b->end >= extra ? PP_OK : pp__buf_grow(b, extra);
}

/* Marks `n` bytes at the tail as written (after filling pp__buf_tail()). */
static inline void pp__buf_commit(pp__buf *b, size_t n) { b->end += n; }

static inline pp_status pp__buf_append(pp__buf *b, const void *data,
                                       size_t len) {
  if (len == 0) /* data may be NULL then, and memcpy() must not see it */
    return PP_OK;
  if (b->cap - b->end < len) {
    pp_status st = pp__buf_grow(b, len);
    if (st != PP_OK)
      return st;
  }
  memcpy(b->data + b->end, data, len);
  b->end += len;
  return PP_OK;
}
void pp__buf_free(pp__buf *b); /* frees and zeroes */

/* The most an emptied buffer keeps. A channel's buffers grow to the
 * biggest message that passed, and kept, one message of 256 MiB would hold
 * 256 MiB in the parent and in the worker for the worker's whole life;
 * messages this big are rare enough that getting their memory afresh costs
 * little next to moving them. A lane (16 MiB by default) carries the
 * smaller big ones without these buffers. */
#define PP__BUF_KEEP_MAX ((size_t)16 << 20)

/* Drops `n` bytes from the head. */
static inline void pp__buf_consume(pp__buf *b, size_t n) {
  b->start += n;
  if (b->start >= b->end) {
    b->start = b->end = 0;
    if (b->cap > PP__BUF_KEEP_MAX)
      pp__buf_free(b);
  }
}

/* Keeps the first `len` readable bytes (len <= pp__buf_len()). */
static inline void pp__buf_truncate(pp__buf *b, size_t len) {
  b->end = b->start + len;
}

/* Empties, keeps the allocation up to PP__BUF_KEEP_MAX. Inline: a worker
 * clears a buffer for every call it runs. */
static inline void pp__buf_clear(pp__buf *b) {
  b->start = b->end = 0;
  if (b->cap > PP__BUF_KEEP_MAX)
    pp__buf_free(b);
}

#endif
