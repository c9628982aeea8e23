/* The wire protocol between the parent and a worker: length-prefixed frames
 * with a versioned header, every field little-endian, every length checked.
 *
 *   header (20 bytes): magic u32 "PPF1" | version u8 | type u8 | flags u16
 *                      | payload length u32 | chunk id u64
 *
 * Two flags. PP__FRAME_LANE marks a lane frame: its payload, u32
 * position and u32 length, says where the real payload lies in the
 * sender's lane of shared memory (lane.h). CALLS, ITEMS and RECORDS travel
 * so down, RESULTS, VALUES and RECORDS_DONE up. PP__FRAME_MORE marks a
 * piece of an answer (RESULTS, VALUES, RECORDS_DONE or RECORDS_PUT) too
 * long for one frame: CONFIG tells the worker the longest payload the
 * parent takes (pp_options.max_message_size), and a longer answer goes as
 * frames of its type and id, each payload a consecutive slice of its
 * bytes cut anywhere, all but the last flagged MORE; the parent reads the
 * slices joined as one payload, each slice no longer than that. A piece
 * may be a lane frame (both flags: the slice lies in the lane). Any other
 * flag, or a flag on a type not named for it, is an error.
 *
 * Every connection starts with the key handshake: the parent sends
 * CHALLENGE, the worker answers PROOF, and only a worker whose proof is
 * right gets CONFIG and work. A frame of another version is refused by
 * either side with a "protocol version mismatch" (pp__frame_peek() says
 * PP_ENOTSUP).
 *
 * Frames, parent -> worker:
 *   CHALLENGE  PP__NONCE_SIZE random bytes
 *   LANES    (optional, once, after CONFIG, when the worker first needs
 *            them) str16 shared-memory token, u32 lane size: the segment
 *            the worker maps for its lanes (POSIX: the token is "fd", and
 *            the segment's descriptor came with the channel's bytes at or
 *            before this frame; Windows: a handle in the worker's process)
 *   CONFIG   initializer name (str16), its arguments (args), u32 low and u32
 *            high half of the worker's resident-memory limit (0: none),
 *            then the parent's memory probe: u64 the parent's process id,
 *            u64 an address in the parent, u64 the value found there
 *            (all 0: no probe), then u64 the longest payload the parent
 *            takes in a frame (at least 4096: longer answers go in
 *            pieces); every u64 as its low, then high u32
 *   CALLS    task name (str16), u32 n, n x args          (apply, map, starmap)
 *   RECORDS  task name (str16), u32 n, u32 in_size, u32 out_size, u32 nfields,
 *            nfields x u32 field size, u32 low and u32 high half of the
 *            index of the chunk's first record in the map, n * in_size bytes
 *   ITEMS    task name (str16), u32 n, u32 size, n * size bytes: n calls of
 *            one argument each, all of one size (an imap's chunk, as a
 *            CALLS frame would say it with no length per item)
 *   RECORDS_AT  a RECORDS frame without its records, then u64 the address
 *            of its n * in_size input bytes and u64 the address of its
 *            n * out_size output bytes in the parent: the worker reads
 *            and writes them there itself (backend.h, "the parent's
 *            memory"); only to a worker whose READY said it can
 *   RING     (empty; once LANES_TAKEN said the segment is mapped) every later
 *            frame comes through the segment's down ring, and the channel
 *            carries only doorbells (ring.h)
 * worker -> parent:
 *   PROOF    HMAC-SHA256(key, nonce): PP__SHA256_SIZE bytes, where key is
 *            the pool's key as the hex text workers are given
 *   READY    u8: 0 (no segment is offered before it); u8: 1 when it
 *            read CONFIG's probe from the parent's memory; the
 *            initializer succeeded and tasks may follow
 *   LANES_TAKEN  u8: 1 when the worker mapped the LANES segment (answers
 *            LANES, in its place among the answers to work)
 *   INIT_FAILED  u8 status, str32 message; the worker then exits
 *   RESULTS  u32 n, n x (u8 status, str32 value-or-message)
 *            (answers CALLS and ITEMS)
 *   VALUES   u32 n, u32 size, n x (size bytes, 1 byte of no meaning): n
 *            values of one size, every call a success (answers ITEMS; the
 *            parent writes each value's NUL over the byte after it)
 *   RECORDS_DONE u32 n, n * out_size bytes, u32 nerr,
 *            nerr x (u32 index, u8 status, str32 message)   (answers RECORDS)
 *   RINGED   (empty) answers RING: every later frame of the worker goes
 *            through the up ring, and the channel carries only doorbells
 *   LEAVING  (empty) its answers are all out and it starts nothing more:
 *            it leaves, past its memory limit (max_memory_per_child), with
 *            exit code 124; every chunk it still holds never started. Only
 *            the frame says so: a task may exit with any code, 124 too
 *   RECORDS_PUT  u32 n, u8 status, str32 message, u32 nerr, nerr x (u32
 *            index, u8 status, str32 message): answers RECORDS_AT, whose
 *            results the worker wrote into the parent; a status other
 *            than PP_OK says the chunk failed whole (its records could not
 *            be read or its results written), and the message why
 * where args = u32 argc, argc x str32; strN = uN length + bytes.
 * A worker answers frames in the order it received them, with the same id.
 */
#ifndef PP_WIRE_H
#define PP_WIRE_H

#include "buf.h"
#include "procpool.h"

#include <stdint.h>

#define PP__WIRE_MAGIC 0x31465050u /* "PPF1" read little-endian */
#define PP__WIRE_VERSION 10
#define PP__WIRE_HEADER_SIZE 20
#define PP__WIRE_MAX_NAME 255
#define PP__NONCE_SIZE 32
#define PP__FRAME_LANE 1u   /* header flag: the payload is in a lane */
#define PP__FRAME_MORE 2u   /* header flag: an answer's piece, not its last */
#define PP__LANE_REF_SIZE 8 /* a lane frame's payload: u32 pos, u32 len */

typedef enum pp__frame_type {
  PP__F_CONFIG = 1,
  PP__F_CALLS = 2,
  PP__F_RECORDS = 3,
  PP__F_CHALLENGE = 4,
  PP__F_LANES = 5,
  PP__F_ITEMS = 6,
  PP__F_RECORDS_AT = 7,
  PP__F_RING = 8,
  PP__F_READY = 16,
  PP__F_INIT_FAILED = 17,
  PP__F_RESULTS = 18,
  PP__F_RECORDS_DONE = 19,
  PP__F_PROOF = 20,
  PP__F_VALUES = 21,
  PP__F_RECORDS_PUT = 22,
  PP__F_RINGED = 23,
  PP__F_LANES_TAKEN = 24,
  PP__F_LEAVING = 25
} pp__frame_type;

typedef struct pp__frame {
  pp__frame_type type;
  unsigned flags; /* PP__FRAME_LANE, PP__FRAME_MORE or 0 */
  uint64_t id;
  const unsigned char *payload; /* borrowed from the input buffer */
  size_t len;
} pp__frame;

/* Looks at the head of `in`. PP_OK with *complete = 1 and `frame` filled when
 * a whole frame is there (consume PP__WIRE_HEADER_SIZE + frame->len bytes
 * after use); PP_OK with *complete = 0 when more bytes are needed;
 * PP_EPROTOCOL for a bad magic, type or flag, a lane frame of a type
 * that never travels so or of the wrong length, or a piece (MORE) of a
 * frame that is no answer; PP_ENOTSUP for another protocol
 * version (pp__frame_version() tells which), and PP_ETOOBIG for a length
 * above `max_len` (then frame->len is that length, the rest unset). */
pp_status pp__frame_peek(const pp__buf *in, size_t max_len, pp__frame *frame,
                         int *complete);

/* Whether frames of type `t` answer a chunk, and so may come in pieces. */
static inline int pp__frame_answers(unsigned t) {
  return t == PP__F_RESULTS || t == PP__F_VALUES || t == PP__F_RECORDS_DONE ||
         t == PP__F_RECORDS_PUT;
}

/* The type of the whole encoded frame at `frame`. */
static inline pp__frame_type pp__frame_type_of(const unsigned char *frame) {
  return (pp__frame_type)frame[5];
}

/* The version byte of the frame at the head of `in` (0 if not there yet). */
unsigned pp__frame_version(const pp__buf *in);

/* ---- writing ---- */

/* Appends a header with a zero length and returns its offset, to be patched
 * by pp__frame_end() once the payload is appended. */
pp_status pp__frame_begin(pp__buf *out, pp__frame_type type, uint64_t id,
                          size_t *header_at);
/* The same with header flags. */
pp_status pp__frame_begin_flagged(pp__buf *out, pp__frame_type type,
                                  unsigned flags, uint64_t id,
                                  size_t *header_at);
/* PP_ETOOBIG when the payload exceeds what a u32 length can say. */
pp_status pp__frame_end(pp__buf *out, size_t header_at);
/* Writes a whole header at `h`: for a frame whose payload is already in
 * place behind it (a piece of an answer). */
void pp__frame_header(unsigned char *h, pp__frame_type type, unsigned flags,
                      uint32_t len, uint64_t id);
/* The id in the header at `h`. */
uint64_t pp__frame_id_of(const unsigned char *h);

/* The wire's little-endian u32, in and out of raw memory. Inline: a
 * worker reads and writes a few for every item of an imap, and compilers
 * turn these byte moves into one load or store where the machine allows. */
static inline void pp__store_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t pp__load_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

pp_status pp__put_u8(pp__buf *out, unsigned v);
pp_status pp__put_u32(pp__buf *out, uint32_t v);
pp_status pp__put_str16(pp__buf *out, const char *s);
pp_status pp__put_str32(pp__buf *out, const void *data, size_t len);
pp_status pp__put_args(pp__buf *out, const pp_bytes *argv, size_t argc);
/* Overwrites the u32 at `at` bytes past the head (a count known late). */
void pp__patch_u32(pp__buf *out, size_t at, uint32_t v);

/* ---- CALLS frames, sized exactly before they are encoded ---- */

/* The size of the CALLS frame (header included) of `count` calls, each
 * calls[i] or, when calls is NULL, the one argument single[i]: encoded into
 * memory of that size, it never grows a buffer. PP_EINVAL for NULL data
 * with a length, PP_ETOOBIG past what a frame can say. */
pp_status pp__calls_frame_size(const char *task, const pp_args *calls,
                               const pp_bytes *single, size_t count,
                               size_t *out);
/* How the encoder copies an argument of PP__COPIER_MIN bytes or more, when
 * its caller has a better way than memcpy() (the scheduler's copier). */
typedef void (*pp__copy_fn)(void *ctx, void *dst, const void *src, size_t len);

/* Encodes that frame into `frame`, `size` bytes from
 * pp__calls_frame_size(); big arguments copied by `copy` (NULL: memcpy). */
pp_status pp__calls_frame_encode(unsigned char *frame, size_t size,
                                 const char *task, uint64_t id,
                                 const pp_args *calls, const pp_bytes *single,
                                 size_t count, pp__copy_fn copy,
                                 void *copy_ctx);

/* ---- reading: a cursor that refuses to run past the end ---- */

typedef struct pp__reader {
  const unsigned char *p;
  size_t len;
  size_t off;
  int bad; /* set by the first read past the end; later reads return 0s */
} pp__reader;

void pp__reader_init(pp__reader *r, const void *data, size_t len);
unsigned pp__get_u8(pp__reader *r);
uint32_t pp__get_u32(pp__reader *r);
/* Borrows `n` bytes; NULL (and r->bad) when fewer remain. */
const unsigned char *pp__get_bytes(pp__reader *r, size_t n);
/* A str16 name copied into `name` (cap >= PP__WIRE_MAX_NAME + 1). */
void pp__get_name(pp__reader *r, char *name, size_t cap);
/* A str32, borrowed. */
const unsigned char *pp__get_str32(pp__reader *r, size_t *len);

/* ---- decoding a worker's answers (bad input never crashes the parent) ---- */

/* Outcome of one item as decoded from a worker, or made by the parent. */
typedef struct pp__outcome {
  pp_status status;
  const unsigned char *data; /* value, or message when status != PP_OK */
  size_t len;
} pp__outcome;

/* Decodes a RESULTS payload that must hold exactly `count` outcomes into
 * `outs` (borrowing from the frame). NULL when well formed, else a phrase
 * saying what is wrong. */
const char *pp__decode_results(const pp__frame *f, size_t count,
                               pp__outcome *outs);

/* Checks, as pp__decode_results() does, a RESULTS payload that must hold
 * exactly `count` outcomes, without decoding them: `*body` and `*body_len`
 * get the outcomes' bytes past the count, each u8 status, u32 length and
 * bytes (an imap reads them one by one as it hands them out). NULL when
 * well formed, else a phrase saying what is wrong. */
const char *pp__check_results(const pp__frame *f, size_t count,
                              const unsigned char **body, size_t *body_len);

/* Checks a VALUES payload that must hold exactly `count` values: `*body`
 * and `*body_len` get the values with the byte after each, `*size` their
 * size. NULL when well formed, else what is wrong. */
const char *pp__check_values(const pp__frame *f, size_t count,
                             const unsigned char **body, size_t *body_len,
                             size_t *size);

/* Checks a whole RECORDS_DONE payload for `count` records of `out_size`
 * bytes: `*out` gets the records, `*nerr` and `*errors` (a reader placed at
 * the error list) the failures. NULL when well formed, else what is wrong. */
const char *pp__decode_records_done(const pp__frame *f, size_t count,
                                    size_t out_size, const unsigned char **out,
                                    size_t *nerr, pp__reader *errors);

/* Checks a whole RECORDS_PUT payload for `count` records: *whole gets the
 * chunk's own outcome (PP_OK, or why it failed whole, its message
 * borrowed), `*nerr` and `*errors` the failed records. NULL when well
 * formed, else what is wrong. */
const char *pp__decode_records_put(const pp__frame *f, size_t count,
                                   pp__outcome *whole, size_t *nerr,
                                   pp__reader *errors);

#endif
