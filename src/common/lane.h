/* Lanes: the two directions of a worker's shared-memory segment.
 *
 * A frame whose payload is big costs two copies through the kernel and, on
 * these machines, tops out near the pipe's 1 GiB/s. Such a payload is
 * written into a lane instead, and the channel carries a lane frame
 * (wire.h: PP__FRAME_LANE) that says where it lies. The channel (or the
 * rings that carry its frames once a worker is ready, ring.h) still
 * orders everything, so a lane needs no lock: only its free space is
 * shared knowledge.
 *
 * Segment layout: a control page, then the down lane (parent -> worker),
 * then the up lane (worker -> parent), each `lane_size` bytes, a power of
 * two; then the rings that carry the frames (ring.h). A lane is a ring of
 * contiguous extents at 32-bit positions that wrap: the writer reserves extents
 * in order, the reader releases them in the same order.
 *
 * - Down: the parent writes; a worker answers frames in order and is done
 *   with a frame once it answered it, so the parent releases an extent when
 *   the answer to its chunk arrives. Nothing is shared.
 * - Up: the worker writes; the parent publishes how far it has consumed in
 *   the control page, and the worker reads that before it reserves.
 *
 * A frame that does not fit goes through the channel as before: a lane is
 * a faster path, never a second one that can block.
 */
#ifndef PP_LANE_H
#define PP_LANE_H

#include "backend.h"
#include "wire.h"

#include <stddef.h>
#include <stdint.h>

/* Payloads smaller than this go through the channel, where a frame of a
 * few hundred bytes costs no more than the lane frame that would stand in
 * for it. From a page on, the lane's one copy beats the channel's two: at
 * 32 KiB, an imap chunk of 1,000 int64 (12 KB in, 8 KB out) took the
 * channel, and pp_bench's imap_many ran at 65-84 M/s against 72-95 with
 * this limit. */
#define PP__LANE_MIN ((size_t)4 << 10)

/* Bytes before the first lane: the control page. */
#define PP__LANE_CONTROL 4096

/* Lane sizes: a power of two between these. */
#define PP__LANE_SIZE_MIN ((size_t)64 << 10)
#define PP__LANE_SIZE_MAX ((size_t)1 << 30)
/* Big enough for a second payload of a few MiB to be written while the
 * worker runs the first: with 8 MiB, a second 4 MiB payload took the
 * channel, and payloads moved 13% slower. */
#define PP__LANE_SIZE_DEFAULT ((size_t)16 << 20)

typedef struct pp__lane {
  unsigned char *base; /* NULL: no lane */
  uint32_t size;       /* a power of two */
  uint32_t head;       /* writer: next free position */
  uint32_t tail;       /* writer: oldest position not yet released */
  /* The writer gives the lane's pages memory before it first writes them
   * (pp__shm_back): bytes [0, backed) of the lane have it. */
  pp__shm *shm; /* NULL: memory that needs no backing */
  size_t at;    /* the lane's offset in the segment */
  uint32_t backed;
} pp__lane;

/* Pages are backed this many bytes at a time. */
#define PP__LANE_BACK_STEP ((uint32_t)256 << 10)

/* The size of a segment holding two lanes of `lane_size` bytes. */
size_t pp__segment_size(size_t lane_size);

/* Lays the two lanes over a mapped segment (zeroed when new); `shm` is the
 * segment, or NULL for memory that needs no backing. */
void pp__lanes_init(unsigned char *segment, pp__shm *shm, size_t lane_size,
                    pp__lane *down, pp__lane *up);

/* Reserves `len` contiguous bytes at the writer's head: their address, and
 * in `*pos` the position to put in the lane frame; NULL when the lane has no
 * room for them now, or no memory could be had behind them. */
unsigned char *pp__lane_reserve(pp__lane *lane, size_t len, uint32_t *pos);
/* pp__lane_reserve(), with byte `data_at` of the extent at an address that
 * is a multiple of `align` (a power of two, at most PP__LANE_CONTROL): the
 * bytes skipped for it are released with the extent. */
unsigned char *pp__lane_reserve_aligned(pp__lane *lane, size_t len,
                                        uint32_t data_at, uint32_t align,
                                        uint32_t *pos);

/* The writer learns that everything before position `end` is released. */
void pp__lane_release(pp__lane *lane, uint32_t end);

/* The up lane's releases, which cross processes: the parent publishes the
 * position it consumed up to, the worker reads it before it reserves. */
void pp__lane_publish(unsigned char *segment, uint32_t end);
uint32_t pp__lane_published(const unsigned char *segment);

/* A received frame: a lane frame is made to point at its payload in
 * `lane`, and `*end` (when not NULL) gets the position that releases it.
 * NULL when done (or not a lane frame), else what is wrong with it: it must
 * lie wholly inside the lane, which must exist. */
const char *pp__lane_resolve(const pp__lane *lane, pp__frame *frame,
                             uint32_t *end);

/* Appends a lane frame for a payload of `len` bytes at `pos`. */
pp_status pp__lane_put_frame(pp__buf *out, pp__frame_type type, uint64_t id,
                             uint32_t pos, size_t len);
/* The same with more header flags (PP__FRAME_MORE: a piece of an answer). */
pp_status pp__lane_put_frame_flagged(pp__buf *out, pp__frame_type type,
                                     unsigned flags, uint64_t id, uint32_t pos,
                                     size_t len);

/* The lane size for a requested one: rounded up to a power of two within
 * the limits. */
size_t pp__lane_size_for(size_t requested);

#endif
