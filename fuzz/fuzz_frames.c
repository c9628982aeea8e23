/* libFuzzer target: the bytes a worker sends to the parent. Whatever they
 * are, the parent's frame reader and answer decoders must neither crash nor
 * read out of bounds; they may only say "malformed". */
#include "buf.h"
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 64

/* A count the decoders are asked to expect: the frame's own first u32 when
 * small, so that the fuzzer can reach past the count check. */
static size_t expected_count(const pp__frame *f) {
  if (f->len < 4)
    return 0;
  size_t n = (size_t)f->payload[0] | (size_t)f->payload[1] << 8 |
             (size_t)f->payload[2] << 16 | (size_t)f->payload[3] << 24;
  return n > MAX_ITEMS ? MAX_ITEMS : n;
}

static void walk_records_errors(pp__reader *errors, size_t nerr) {
  for (size_t i = 0; i < nerr; i++) {
    size_t len;
    (void)pp__get_u32(errors);
    (void)pp__get_u8(errors);
    (void)pp__get_str32(errors, &len);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pp__buf in = {0};
  if (pp__buf_append(&in, data, size) != PP_OK)
    return 0;
  pp__outcome outs[MAX_ITEMS];
  for (;;) {
    pp__frame f;
    int complete = 0;
    if (pp__frame_peek(&in, (size_t)1 << 20, &f, &complete) != PP_OK ||
        !complete)
      break;
    size_t count = expected_count(&f);
    if (f.type == PP__F_RESULTS) {
      const char *bad = pp__decode_results(&f, count, outs);
      if (!bad)
        for (size_t i = 0; i < count; i++)
          if (outs[i].len)
            (void)memchr(outs[i].data, 0, outs[i].len);
      /* The check an imap makes must accept exactly what decoding does. */
      const unsigned char *body;
      size_t body_len;
      if (!pp__check_results(&f, count, &body, &body_len) != !bad)
        abort();
      if (!bad && body_len)
        (void)memchr(body, 0, body_len);
    } else if (f.type == PP__F_VALUES) {
      const unsigned char *body;
      size_t body_len, size;
      if (!pp__check_values(&f, count, &body, &body_len, &size)) {
        if (body_len != count * (size + 1))
          abort();
        if (body_len)
          (void)memchr(body, 0, body_len);
      }
    } else if (f.type == PP__F_RECORDS_DONE) {
      const unsigned char *out;
      size_t nerr;
      pp__reader errors;
      size_t out_size = 1 + (size_t)(f.id % 16);
      if (!pp__decode_records_done(&f, count, out_size, &out, &nerr, &errors)) {
        (void)memchr(out, 0, count * out_size);
        walk_records_errors(&errors, nerr);
      }
    } else if (f.type == PP__F_RECORDS_PUT) {
      pp__outcome whole;
      size_t nerr;
      pp__reader errors;
      if (!pp__decode_records_put(&f, count, &whole, &nerr, &errors)) {
        if (whole.len)
          (void)memchr(whole.data, 0, whole.len);
        walk_records_errors(&errors, nerr);
      }
    }
    pp__buf_consume(&in, PP__WIRE_HEADER_SIZE + f.len);
  }
  pp__buf_free(&in);
  return 0;
}
