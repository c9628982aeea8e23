/* Lanes of shared memory for big frames (see lane.h). */
#include "lane.h"
#include "internal.h"
#include "ring.h"

#include <apr_atomic.h>

#include <string.h>

size_t pp__segment_size(size_t lane_size) {
  return pp__rings_offset(lane_size) + PP__RINGS_BYTES;
}

void pp__lanes_init(unsigned char *segment, pp__shm *shm, size_t lane_size,
                    pp__lane *down, pp__lane *up) {
  memset(down, 0, sizeof *down);
  memset(up, 0, sizeof *up);
  down->base = segment + PP__LANE_CONTROL;
  up->base = down->base + lane_size;
  down->size = up->size = (uint32_t)lane_size;
  down->shm = up->shm = shm;
  down->at = PP__LANE_CONTROL;
  up->at = PP__LANE_CONTROL + lane_size;
}

/* Gives memory to the lane's bytes up to `end` (from its start) before
 * they are first written, PP__LANE_BACK_STEP bytes at a time. 0 when there
 * is none to be had. */
static int back(pp__lane *lane, uint32_t end) {
  if (!lane->shm || end <= lane->backed)
    return 1;
  if (pp__test.lanes_unbacked)
    return 0;
  uint32_t want =
      (end + PP__LANE_BACK_STEP - 1) / PP__LANE_BACK_STEP * PP__LANE_BACK_STEP;
  if (want > lane->size)
    want = lane->size;
  if (pp__shm_back(lane->shm, lane->at + lane->backed, want - lane->backed) !=
      PP_OK)
    return 0;
  lane->backed = want;
  return 1;
}

/* Bytes to skip from lane offset `off` for byte `data_at` of an extent
 * placed there to fall on a multiple of `align`. */
static uint32_t pad_for(uint32_t off, uint32_t data_at, uint32_t align) {
  return (align - ((off + data_at) & (align - 1))) & (align - 1);
}

unsigned char *pp__lane_reserve_aligned(pp__lane *lane, size_t len,
                                        uint32_t data_at, uint32_t align,
                                        uint32_t *pos) {
  if (!lane->base || len == 0 || len > lane->size)
    return NULL;
  uint32_t mask = lane->size - 1;
  /* An empty lane starts again at its first byte: the pages used last are
   * the ones already mapped and in cache, where fresh ones would cost a
   * page fault each. */
  if (lane->head == lane->tail)
    lane->head = lane->tail = (lane->head + mask) & ~mask;
  uint32_t off = lane->head & mask;
  uint32_t pad = pad_for(off, data_at, align);
  uint32_t start_pad = pad_for(0, data_at, align);
  /* An extent never wraps: one that would is placed at the lane's start,
   * and the bytes skipped are released with it. */
  uint32_t skip = off + pad + len > lane->size ? lane->size - off : 0;
  uint32_t used = lane->head - lane->tail;
  /* With the lane's start free for this one, it goes back there too, for
   * the same reason, when no more than one extent, no bigger, is in
   * flight: a steady stream of chunks then keeps to the first few, rather
   * than walking the whole lane through the cache. That extent counts with
   * the bytes skipped to align it, up to `align - 1`: counted whole, they
   * made records chunks (aligned since c3bd656) walk all 16 MiB of a lane,
   * a page fault per 4 KiB, over a pool's first four maps. */
  uint32_t tail_off = lane->tail & mask;
  int one_in_flight = used <= len + (align - 1);
  /* And when this one and all in flight take an eighth of the lane at
   * most: an imap's chunks, a dozen small extents in flight, walked ever
   * further into the lane whenever their answers were slow, and the
   * parent's resident memory grew with the length of the input (pp_bench
   * imap_peak_rss: 2.9-3.5 MiB for 100 M items against 2.6-2.8 for 1 M).
   * The bytes skipped come back once the few extents before them are
   * done, which bigger extents could not count on. */
  int few_in_flight = (size_t)used + len <= lane->size / 8;
  if (!skip && used && (one_in_flight || few_in_flight) && off >= tail_off &&
      tail_off >= start_pad + len)
    skip = lane->size - off;
  if (skip)
    pad = start_pad;
  if ((size_t)used + skip + pad + len > lane->size)
    return NULL;
  uint32_t at = lane->head + skip + pad;
  if (!back(lane, (at & mask) + (uint32_t)len))
    return NULL;
  *pos = at;
  lane->head = at + (uint32_t)len;
  return lane->base + (at & mask);
}

unsigned char *pp__lane_reserve(pp__lane *lane, size_t len, uint32_t *pos) {
  return pp__lane_reserve_aligned(lane, len, 0, 1, pos);
}

void pp__lane_release(pp__lane *lane, uint32_t end) {
  /* Only forward: the up lane's writer reads the reader's position again
   * before every extent, and an empty lane that started again at its first
   * byte has moved its tail past the last position the reader published.
   * Taken back there, the tail would count the whole lane as used, and
   * every answer after it would take the channel. Positions wrap at 2^32,
   * and a lane is at most 2^30 bytes: a position ahead is less than 2^31
   * ahead. */
  if ((uint32_t)(end - lane->tail) - 1u < 0x80000000u)
    lane->tail = end;
}

/* The control page's first word: the up lane's consumed position. APR's
 * 32-bit atomics are lock-free on every platform it runs on, so they work
 * across processes on shared memory. */
static volatile apr_uint32_t *published(const unsigned char *segment) {
  return (volatile apr_uint32_t *)(void *)(uintptr_t)segment;
}

void pp__lane_publish(unsigned char *segment, uint32_t end) {
  apr_atomic_set32(published(segment), end);
}

uint32_t pp__lane_published(const unsigned char *segment) {
  return apr_atomic_read32(published(segment));
}

const char *pp__lane_resolve(const pp__lane *lane, pp__frame *frame,
                             uint32_t *end) {
  if (!(frame->flags & PP__FRAME_LANE))
    return NULL;
  if (!lane->base)
    return "a frame in shared memory it was not given";
  /* Read once: the other process can write the lane while we look. */
  uint32_t pos = pp__load_u32(frame->payload);
  uint32_t len = pp__load_u32(frame->payload + 4);
  uint32_t off = pos & (lane->size - 1);
  if (len > lane->size || off + (size_t)len > lane->size)
    return "a frame outside its shared memory";
  frame->payload = lane->base + off;
  frame->len = len;
  if (end)
    *end = pos + len;
  return NULL;
}

pp_status pp__lane_put_frame(pp__buf *out, pp__frame_type type, uint64_t id,
                             uint32_t pos, size_t len) {
  return pp__lane_put_frame_flagged(out, type, 0, id, pos, len);
}

pp_status pp__lane_put_frame_flagged(pp__buf *out, pp__frame_type type,
                                     unsigned flags, uint64_t id, uint32_t pos,
                                     size_t len) {
  size_t at;
  pp_status st =
      pp__frame_begin_flagged(out, type, PP__FRAME_LANE | flags, id, &at);
  if (st == PP_OK)
    st = pp__put_u32(out, pos);
  if (st == PP_OK)
    st = pp__put_u32(out, (uint32_t)len);
  return st == PP_OK ? pp__frame_end(out, at) : st;
}

size_t pp__lane_size_for(size_t requested) {
  size_t size = PP__LANE_SIZE_MIN;
  while (size < requested && size < PP__LANE_SIZE_MAX)
    size <<= 1;
  return size;
}
