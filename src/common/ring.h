/* Rings: a worker's frames through shared memory, with a doorbell.
 *
 * Once a worker that mapped its segment (lane.h) is busy, the frames of
 * both directions go through two byte rings in it, and the channel carries
 * only doorbells: a byte, sent only when the reader said it is about to
 * sleep. A frame written while its reader runs then costs no system call
 * and wakes nobody. Through the socket every frame cost a send, an allocation
 * in the kernel and a receive: in an imap of 1 M small items, 40% of the
 * process's CPU time was the kernel's (perf stat, fork).
 *
 * Each side has a wait word in the control page: what it is about to sleep
 * for (bytes to read, room to write). A sleeper stores its word, then looks
 * at the rings again, and only then blocks on the channel; the other side
 * publishes its progress, then looks at that word and rings the bell when
 * it asks for that progress. Each side's store and load are sequentially
 * consistent, so at least one of them sees the other's: no wake-up is
 * lost.
 * A bell may come for nothing; the sleeper looks, and sleeps again.
 *
 * The switch, on a channel that carried frames until then: the parent
 * writes through the down ring from the frame after RING, which it sends
 * through the channel (scheduler.c decides when); the worker answers
 * RINGED through the channel and writes through the up ring from the
 * frame after it. Whatever the channel carries after those is doorbells.
 *
 * The other side may be broken or hostile: a position read from the segment
 * is checked before it is used, and an impossible one is a protocol error.
 */
#ifndef PP_RING_H
#define PP_RING_H

#include "atomic.h"
#include "backend.h"

#include <stddef.h>
#include <stdint.h>

/* Bytes per ring and direction, a power of two: a thousand lane frames
 * (28 bytes each) or a few hundred small ones; past that the writer waits
 * for room, as it waited on a full socket. Every page of a ring is
 * touched once its writer has gone round, on both sides: at 128 KiB an
 * imap of 100 M items left the parent 0.5 MiB bigger than one of 1 M
 * (pp_bench imap_peak_rss: 3.1-3.3 against 2.6-2.8 MiB), at 32 KiB
 * 2.5-2.7 against 2.4-2.5. 16, 32 and 128 KiB measured alike in
 * apply_async, map_chunk1 and imap. */
#define PP__RING_SIZE ((uint32_t)32 << 10)

/* What a side waits for (its wait word). */
#define PP__RING_DATA 1u  /* bytes to read */
#define PP__RING_SPACE 2u /* room to write */

typedef struct pp__ring {
  unsigned char *data;
  pp__atomic_u32 *head; /* written by the writer: bytes written */
  pp__atomic_u32 *tail; /* written by the reader: bytes consumed */
  uint32_t pos;         /* this side's own position: head or tail */
} pp__ring;

/* One side's view of a segment's rings. */
typedef struct pp__rings {
  pp__ring out, in;
  pp__atomic_u32 *mine, *theirs; /* the wait words */
} pp__rings;

/* The bytes the rings add to a segment, after its lanes. */
#define PP__RINGS_BYTES (2 * (size_t)PP__RING_SIZE)
/* Where they start in a segment with lanes of `lane_size` bytes. */
size_t pp__rings_offset(size_t lane_size);

/* The parent's view (`parent` 1) or the worker's of the rings of a mapped
 * segment, zeroed when new. Their pages must have memory behind them
 * before either side writes (the parent gives it them when it switches a
 * worker: scheduler.c), so that a full /dev/shm keeps a worker on its
 * channel instead of failing it halfway. */
void pp__rings_init(unsigned char *segment, size_t lane_size, int parent,
                    pp__rings *r);

/* Writes what fits of `len` bytes: `*n` of them. `*bell` when the other side
 * sleeps waiting for them: ring its bell. PP_EPROTOCOL when the other side's
 * position is impossible. */
pp_status pp__ring_put(pp__rings *r, const void *data, size_t len, size_t *n,
                       int *bell);

/* Appends what the in ring holds to `into`: `*n` bytes, maybe none. `*bell`
 * when the other side sleeps waiting for room. PP_EPROTOCOL as above,
 * PP_ENOMEM. */
pp_status pp__ring_take(pp__rings *r, pp__buf *into, size_t *n, int *bell);

/* Sleeping, in two steps: say what for (PP__RING_DATA, PP__RING_SPACE or
 * both; for many rings, all of them first), then pp__rings_ready(): 1 when
 * some of it came meanwhile, and the sleep is off. After the sleep (or
 * instead of it), pp__rings_awake(). */
void pp__rings_say_waiting(pp__rings *r, unsigned what);
int pp__rings_ready(const pp__rings *r, unsigned what);
void pp__rings_awake(pp__rings *r);

/* A worker's end of its link to the parent: the channel, and the rings
 * once each direction has switched to them. */
typedef struct pp__wlink {
  pp__wchan *chan;
  pp__rings rings;
  int up;        /* frames to the parent go through the rings */
  int down;      /* frames from the parent come through the rings */
  pp__buf bells; /* what the channel carries after the switch */
} pp__wlink;

/* Appends frame bytes to `into` once some came: PP_OK, PP_EOF when the
 * parent is gone, PP_EPROTOCOL, or what the channel says. */
pp_status pp__wlink_read(pp__wlink *l, pp__buf *into);
/* Writes `len` bytes of frames, waiting for room if need be. */
pp_status pp__wlink_write(pp__wlink *l, const void *data, size_t len);
void pp__wlink_free(pp__wlink *l);

#endif
