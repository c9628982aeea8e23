/* Frame encoding and bounds-checked decoding (see wire.h for the format). */
#include "wire.h"
#include "copier.h" /* PP__COPIER_MIN: below it, a plain copy */

#include <string.h>

static uint64_t load_u64(const unsigned char *p) {
  return (uint64_t)pp__load_u32(p) | (uint64_t)pp__load_u32(p + 4) << 32;
}

static int known_type(unsigned t) {
  switch (t) {
  case PP__F_CONFIG:
  case PP__F_CALLS:
  case PP__F_RECORDS:
  case PP__F_CHALLENGE:
  case PP__F_LANES:
  case PP__F_ITEMS:
  case PP__F_READY:
  case PP__F_INIT_FAILED:
  case PP__F_RESULTS:
  case PP__F_RECORDS_DONE:
  case PP__F_PROOF:
  case PP__F_VALUES:
  case PP__F_RECORDS_AT:
  case PP__F_RING:
  case PP__F_RINGED:
  case PP__F_LANES_TAKEN:
  case PP__F_RECORDS_PUT:
  case PP__F_LEAVING:
    return 1;
  default:
    return 0;
  }
}

static int travels_in_lane(unsigned t) {
  return t == PP__F_CALLS || t == PP__F_ITEMS || t == PP__F_RECORDS ||
         t == PP__F_RESULTS || t == PP__F_VALUES || t == PP__F_RECORDS_DONE;
}

pp_status pp__frame_peek(const pp__buf *in, size_t max_len, pp__frame *frame,
                         int *complete) {
  size_t avail = pp__buf_len(in);
  const unsigned char *p = pp__buf_head(in);
  *complete = 0;
  if (avail < PP__WIRE_HEADER_SIZE) {
    /* Reject a bad magic as soon as its bytes are in, not only once a whole
     * header arrived: garbage fails fast. */
    unsigned char magic[4];
    pp__store_u32(magic, PP__WIRE_MAGIC);
    if (avail && memcmp(p, magic, avail < 4 ? avail : 4) != 0)
      return PP_EPROTOCOL;
    if (avail > 4 && p[4] != PP__WIRE_VERSION)
      return PP_ENOTSUP;
    return PP_OK;
  }
  if (pp__load_u32(p) != PP__WIRE_MAGIC)
    return PP_EPROTOCOL;
  if (p[4] != PP__WIRE_VERSION)
    return PP_ENOTSUP;
  if (!known_type(p[5]))
    return PP_EPROTOCOL;
  unsigned flags = (unsigned)p[6] | (unsigned)p[7] << 8;
  size_t len = pp__load_u32(p + 8);
  if (flags & ~(PP__FRAME_LANE | PP__FRAME_MORE))
    return PP_EPROTOCOL;
  if ((flags & PP__FRAME_LANE) &&
      (!travels_in_lane(p[5]) || len != PP__LANE_REF_SIZE))
    return PP_EPROTOCOL;
  if ((flags & PP__FRAME_MORE) && !pp__frame_answers(p[5]))
    return PP_EPROTOCOL;
  if (len > max_len) {
    frame->len = len; /* for the caller's message */
    return PP_ETOOBIG;
  }
  if (avail - PP__WIRE_HEADER_SIZE < len)
    return PP_OK;
  frame->type = (pp__frame_type)p[5];
  frame->flags = flags;
  frame->id = load_u64(p + 12);
  frame->payload = p + PP__WIRE_HEADER_SIZE;
  frame->len = len;
  *complete = 1;
  return PP_OK;
}

unsigned pp__frame_version(const pp__buf *in) {
  return pp__buf_len(in) > 4 ? pp__buf_head(in)[4] : 0;
}

pp_status pp__frame_begin(pp__buf *out, pp__frame_type type, uint64_t id,
                          size_t *header_at) {
  return pp__frame_begin_flagged(out, type, 0, id, header_at);
}

void pp__frame_header(unsigned char *h, pp__frame_type type, unsigned flags,
                      uint32_t len, uint64_t id) {
  pp__store_u32(h, PP__WIRE_MAGIC);
  h[4] = PP__WIRE_VERSION;
  h[5] = (unsigned char)type;
  h[6] = (unsigned char)flags;
  h[7] = (unsigned char)(flags >> 8);
  pp__store_u32(h + 8, len);
  pp__store_u32(h + 12, (uint32_t)id);
  pp__store_u32(h + 16, (uint32_t)(id >> 32));
}

uint64_t pp__frame_id_of(const unsigned char *h) { return load_u64(h + 12); }

pp_status pp__frame_begin_flagged(pp__buf *out, pp__frame_type type,
                                  unsigned flags, uint64_t id,
                                  size_t *header_at) {
  pp_status st = pp__buf_reserve(out, PP__WIRE_HEADER_SIZE);
  if (st != PP_OK)
    return st;
  pp__frame_header(pp__buf_tail(out), type, flags, 0, id);
  *header_at = out->end - out->start;
  pp__buf_commit(out, PP__WIRE_HEADER_SIZE);
  return PP_OK;
}

pp_status pp__frame_end(pp__buf *out, size_t header_at) {
  size_t len = pp__buf_len(out) - header_at - PP__WIRE_HEADER_SIZE;
  if (len > UINT32_MAX)
    return PP_ETOOBIG;
  pp__store_u32(pp__buf_head(out) + header_at + 8, (uint32_t)len);
  return PP_OK;
}

pp_status pp__put_u8(pp__buf *out, unsigned v) {
  unsigned char b = (unsigned char)v;
  return pp__buf_append(out, &b, 1);
}

pp_status pp__put_u32(pp__buf *out, uint32_t v) {
  unsigned char b[4];
  pp__store_u32(b, v);
  return pp__buf_append(out, b, 4);
}

pp_status pp__put_str16(pp__buf *out, const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n > PP__WIRE_MAX_NAME)
    return PP_EINVAL;
  unsigned char b[2] = {(unsigned char)n, (unsigned char)(n >> 8)};
  pp_status st = pp__buf_append(out, b, 2);
  return st != PP_OK ? st : pp__buf_append(out, s, n);
}

/* How big bytes are copied into a frame: `fn` (NULL: memcpy). */
typedef struct copy_by {
  pp__copy_fn fn;
  void *ctx;
} copy_by;

/* A length and its bytes; big ones copied by `copy`. */
static pp_status put_bytes_by(pp__buf *out, const void *data, size_t len,
                              copy_by copy) {
  if (len > UINT32_MAX)
    return PP_ETOOBIG;
  pp_status st = pp__put_u32(out, (uint32_t)len);
  if (st != PP_OK || !copy.fn || len < PP__COPIER_MIN)
    return st != PP_OK ? st : pp__buf_append(out, data, len);
  st = pp__buf_reserve(out, len);
  if (st == PP_OK) {
    copy.fn(copy.ctx, pp__buf_tail(out), data, len);
    pp__buf_commit(out, len);
  }
  return st;
}

pp_status pp__put_str32(pp__buf *out, const void *data, size_t len) {
  return put_bytes_by(out, data, len, (copy_by){NULL, NULL});
}

/* pp__put_args(), its big arguments copied by `copy`. */
static pp_status put_args_by(pp__buf *out, const pp_bytes *argv, size_t argc,
                             copy_by copy) {
  if (argc > UINT32_MAX)
    return PP_ETOOBIG;
  pp_status st = pp__put_u32(out, (uint32_t)argc);
  for (size_t i = 0; st == PP_OK && i < argc; i++) {
    if (!argv[i].data && argv[i].len)
      return PP_EINVAL;
    st = put_bytes_by(out, argv[i].data, argv[i].len, copy);
  }
  return st;
}

pp_status pp__put_args(pp__buf *out, const pp_bytes *argv, size_t argc) {
  return put_args_by(out, argv, argc, (copy_by){NULL, NULL});
}

void pp__patch_u32(pp__buf *out, size_t at, uint32_t v) {
  pp__store_u32(pp__buf_head(out) + at, v);
}

void pp__reader_init(pp__reader *r, const void *data, size_t len) {
  r->p = data;
  r->len = len;
  r->off = 0;
  r->bad = 0;
}

const unsigned char *pp__get_bytes(pp__reader *r, size_t n) {
  if (r->bad || r->len - r->off < n) {
    r->bad = 1;
    return NULL;
  }
  const unsigned char *p = r->p + r->off;
  r->off += n;
  return p;
}

unsigned pp__get_u8(pp__reader *r) {
  const unsigned char *p = pp__get_bytes(r, 1);
  return p ? p[0] : 0;
}

uint32_t pp__get_u32(pp__reader *r) {
  const unsigned char *p = pp__get_bytes(r, 4);
  return p ? pp__load_u32(p) : 0;
}

void pp__get_name(pp__reader *r, char *name, size_t cap) {
  const unsigned char *p = pp__get_bytes(r, 2);
  size_t n = p ? (size_t)p[0] | (size_t)p[1] << 8 : 0;
  const unsigned char *s = pp__get_bytes(r, n);
  if (!s || n >= cap) {
    r->bad = 1;
    name[0] = '\0';
    return;
  }
  memcpy(name, s, n);
  name[n] = '\0';
}

const unsigned char *pp__get_str32(pp__reader *r, size_t *len) {
  *len = pp__get_u32(r);
  const unsigned char *p = pp__get_bytes(r, *len);
  if (!p)
    *len = 0;
  return p;
}

/* A failure status a worker may report (PP_OK is not a failure). */
static int failure_status(unsigned s) {
  return s != PP_OK && s < PP_STATUS_COUNT_;
}

const char *pp__decode_results(const pp__frame *f, size_t count,
                               pp__outcome *outs) {
  pp__reader r;
  pp__reader_init(&r, f->payload, f->len);
  size_t n = pp__get_u32(&r);
  if (r.bad || n != count)
    return "a wrong number of results";
  for (size_t i = 0; i < n; i++) {
    unsigned s = pp__get_u8(&r);
    outs[i].data = pp__get_str32(&r, &outs[i].len);
    if (r.bad || (s != PP_OK && !failure_status(s)))
      return "a truncated or invalid result";
    outs[i].status = (pp_status)s;
  }
  return r.off == r.len ? NULL : "bytes after the last result";
}

const char *pp__check_results(const pp__frame *f, size_t count,
                              const unsigned char **body, size_t *body_len) {
  if (f->len < 4 || pp__load_u32(f->payload) != count)
    return "a wrong number of results";
  const unsigned char *p = f->payload + 4;
  size_t left = f->len - 4;
  *body = p;
  *body_len = left;
  for (size_t i = 0; i < count; i++) {
    if (left < 5 || (p[0] != PP_OK && !failure_status(p[0])))
      return "a truncated or invalid result";
    size_t len = pp__load_u32(p + 1);
    if (len > left - 5)
      return "a truncated or invalid result";
    p += 5 + len;
    left -= 5 + len;
  }
  return left == 0 ? NULL : "bytes after the last result";
}

const char *pp__check_values(const pp__frame *f, size_t count,
                             const unsigned char **body, size_t *body_len,
                             size_t *size) {
  if (f->len < 8 || pp__load_u32(f->payload) != count)
    return "a wrong number of values";
  size_t said = pp__load_u32(f->payload + 4);
  *body = f->payload + 8;
  *body_len = f->len - 8;
  /* n x (size + 1) bytes, exactly: divided, so that nothing overflows */
  size_t stride = count ? *body_len / count : 0;
  if (count ? *body_len % count != 0 || stride == 0 || stride - 1 != said
            : *body_len != 0)
    return "values of the wrong length";
  *size = said;
  return NULL;
}

/* Reads and checks a list of `nerr` failed records out of `n`, leaving
 * *errors at its start for the caller to apply. */
static const char *check_record_errors(pp__reader *r, size_t n, size_t nerr,
                                       pp__reader *errors) {
  if (r->bad || nerr > n)
    return "a truncated records answer";
  /* The whole error list is checked before anything is applied. */
  *errors = *r;
  for (size_t i = 0; i < nerr; i++) {
    size_t index = pp__get_u32(r), len;
    unsigned s = pp__get_u8(r);
    pp__get_str32(r, &len);
    if (r->bad || index >= n || !failure_status(s))
      return "an invalid records error";
  }
  return r->off == r->len ? NULL : "bytes after the records answer";
}

const char *pp__decode_records_done(const pp__frame *f, size_t count,
                                    size_t out_size, const unsigned char **out,
                                    size_t *nerr, pp__reader *errors) {
  pp__reader r;
  pp__reader_init(&r, f->payload, f->len);
  size_t n = pp__get_u32(&r);
  if (r.bad || n != count || (out_size && n > (size_t)-1 / out_size))
    return "a wrong number of records";
  *out = pp__get_bytes(&r, n * out_size);
  *nerr = pp__get_u32(&r);
  if (!*out)
    return "a truncated records answer";
  return check_record_errors(&r, n, *nerr, errors);
}

const char *pp__decode_records_put(const pp__frame *f, size_t count,
                                   pp__outcome *whole, size_t *nerr,
                                   pp__reader *errors) {
  pp__reader r;
  pp__reader_init(&r, f->payload, f->len);
  size_t n = pp__get_u32(&r);
  if (r.bad || n != count)
    return "a wrong number of records";
  unsigned s = pp__get_u8(&r);
  whole->status = (pp_status)s;
  whole->data = pp__get_str32(&r, &whole->len);
  *nerr = pp__get_u32(&r);
  if (r.bad)
    return "a truncated records answer";
  if (s != PP_OK && (!failure_status(s) || *nerr))
    return "an invalid records failure";
  return check_record_errors(&r, n, *nerr, errors);
}

/* ---- CALLS frames ---- */

pp_status pp__calls_frame_size(const char *task, const pp_args *calls,
                               const pp_bytes *single, size_t count,
                               size_t *out) {
  if (count > UINT32_MAX)
    return PP_ETOOBIG;
  /* The payload's length is a u32; counted in 64 bits, as every term is
   * below 2^32 once checked, no sum can wrap before the check. */
  uint64_t payload = 2 + strlen(task) + 4;
  for (size_t i = 0; i < count; i++) {
    const pp_bytes *argv = calls ? calls[i].argv : &single[i];
    size_t argc = calls ? calls[i].argc : 1;
    if (!argv && argc)
      return PP_EINVAL;
    if (argc > UINT32_MAX)
      return PP_ETOOBIG;
    payload += 4;
    for (size_t k = 0; k < argc && payload <= UINT32_MAX; k++) {
      if (!argv[k].data && argv[k].len)
        return PP_EINVAL;
      if (argv[k].len > UINT32_MAX)
        return PP_ETOOBIG;
      payload += 4 + (uint64_t)argv[k].len;
    }
    if (payload > UINT32_MAX)
      return PP_ETOOBIG;
  }
  if (payload > (size_t)-1 - PP__WIRE_HEADER_SIZE - 4096)
    return PP_ETOOBIG; /* 32-bit: the frame and its block must fit */
  *out = (size_t)payload + PP__WIRE_HEADER_SIZE;
  return PP_OK;
}

pp_status pp__calls_frame_encode(unsigned char *frame, size_t size,
                                 const char *task, uint64_t id,
                                 const pp_args *calls, const pp_bytes *single,
                                 size_t count, pp__copy_fn copy_fn,
                                 void *copy_ctx) {
  copy_by copy = {copy_fn, copy_ctx};
  /* A buffer over memory of the right size: the appends never grow it. */
  pp__buf b = {frame, 0, 0, size};
  size_t at;
  pp_status st = pp__frame_begin(&b, PP__F_CALLS, id, &at);
  if (st == PP_OK)
    st = pp__put_str16(&b, task);
  if (st == PP_OK)
    st = pp__put_u32(&b, (uint32_t)count);
  for (size_t i = 0; st == PP_OK && i < count; i++)
    st = calls ? put_args_by(&b, calls[i].argv, calls[i].argc, copy)
               : put_args_by(&b, &single[i], 1, copy);
  if (st == PP_OK)
    st = pp__frame_end(&b, at);
  if (st == PP_OK && (b.data != frame || b.end != size))
    st = PP_EINVAL; /* the size and the encoding disagree: a bug */
  return st;
}
