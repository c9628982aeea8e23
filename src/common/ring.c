/* Rings of frames in shared memory, with a doorbell (see ring.h). */
#include "ring.h"
#include "lane.h"

#include <string.h>

/* The rings' words in the control page, a cache line each, so that neither
 * side's stores slow the other's loads of its own words. Line 0 holds the
 * up lane's consumed position (lane.c). */
enum {
  LINE = 64,
  DOWN_HEAD = 1,
  DOWN_TAIL,
  UP_HEAD,
  UP_TAIL,
  PARENT_WAIT,
  WORKER_WAIT,
  WORDS_END
};
#if WORDS_END * LINE > PP__LANE_CONTROL
#error "the rings' words do not fit the control page"
#endif

static pp__atomic_u32 *word(unsigned char *segment, int line) {
  return (pp__atomic_u32 *)(void *)(segment + (size_t)line * LINE);
}

size_t pp__rings_offset(size_t lane_size) {
  return PP__LANE_CONTROL + 2 * lane_size;
}

void pp__rings_init(unsigned char *segment, size_t lane_size, int parent,
                    pp__rings *r) {
  pp__ring down, up;
  size_t at = pp__rings_offset(lane_size);
  memset(&down, 0, sizeof down);
  memset(&up, 0, sizeof up);
  down.data = segment + at;
  down.head = word(segment, DOWN_HEAD);
  down.tail = word(segment, DOWN_TAIL);
  up.data = down.data + PP__RING_SIZE;
  up.head = word(segment, UP_HEAD);
  up.tail = word(segment, UP_TAIL);
  r->out = parent ? down : up;
  r->in = parent ? up : down;
  r->mine = word(segment, parent ? PARENT_WAIT : WORKER_WAIT);
  r->theirs = word(segment, parent ? WORKER_WAIT : PARENT_WAIT);
}

/* After this side published its progress (pp__atomic_set_sc): 1 when the
 * other side waits for `what`, which it then no longer does, and this side
 * rings its bell, once. */
static int wants(pp__atomic_u32 *theirs, unsigned what) {
  return (pp__atomic_get_sc(theirs) & what) && pp__atomic_swap(theirs, 0) != 0;
}

pp_status pp__ring_put(pp__rings *r, const void *data, size_t len, size_t *n,
                       int *bell) {
  pp__ring *o = &r->out;
  *n = 0;
  *bell = 0;
  uint32_t used = o->pos - pp__atomic_get(o->tail);
  if (used > PP__RING_SIZE)
    return PP_EPROTOCOL;
  size_t room = PP__RING_SIZE - used;
  size_t k = len < room ? len : room;
  if (!k)
    return PP_OK;
  uint32_t at = o->pos & (PP__RING_SIZE - 1);
  size_t first = PP__RING_SIZE - at < k ? PP__RING_SIZE - at : k;
  memcpy(o->data + at, data, first);
  if (k > first)
    memcpy(o->data, (const unsigned char *)data + first, k - first);
  o->pos += (uint32_t)k;
  pp__atomic_set_sc(o->head, o->pos);
  *n = k;
  *bell = wants(r->theirs, PP__RING_DATA);
  return PP_OK;
}

pp_status pp__ring_take(pp__rings *r, pp__buf *into, size_t *n, int *bell) {
  pp__ring *i = &r->in;
  *n = 0;
  *bell = 0;
  uint32_t avail = pp__atomic_get(i->head) - i->pos;
  if (avail > PP__RING_SIZE)
    return PP_EPROTOCOL;
  if (!avail)
    return PP_OK;
  pp_status st = pp__buf_reserve(into, avail);
  if (st != PP_OK)
    return st;
  uint32_t at = i->pos & (PP__RING_SIZE - 1);
  size_t first = PP__RING_SIZE - at < avail ? PP__RING_SIZE - at : avail;
  unsigned char *dst = pp__buf_tail(into);
  memcpy(dst, i->data + at, first);
  if (avail > first)
    memcpy(dst + first, i->data, avail - first);
  pp__buf_commit(into, avail);
  i->pos += avail;
  pp__atomic_set_sc(i->tail, i->pos);
  *n = avail;
  *bell = wants(r->theirs, PP__RING_SPACE);
  return PP_OK;
}

void pp__rings_say_waiting(pp__rings *r, unsigned what) {
  pp__atomic_set_sc(r->mine, what);
}

int pp__rings_ready(const pp__rings *r, unsigned what) {
  if ((what & PP__RING_DATA) && pp__atomic_get_sc(r->in.head) != r->in.pos)
    return 1;
  return (what & PP__RING_SPACE) &&
         r->out.pos - pp__atomic_get_sc(r->out.tail) != PP__RING_SIZE;
}

void pp__rings_awake(pp__rings *r) { pp__atomic_set(r->mine, 0); }

/* ---- the worker's end ---- */

static pp_status ring_bell(pp__wlink *l) {
  static const unsigned char bell = 0;
  return pp__wchan_write(l->chan, &bell, 1);
}

/* Sleeps until the parent rings, unless what the worker waits for came
 * meanwhile. */
static pp_status sleep_for(pp__wlink *l, unsigned what) {
  pp_status st = PP_OK;
  pp__rings_say_waiting(&l->rings, what);
  if (!pp__rings_ready(&l->rings, what)) {
    st = pp__wchan_read_idle(l->chan, &l->bells);
    pp__buf_clear(&l->bells);
  }
  pp__rings_awake(&l->rings);
  return st;
}

pp_status pp__wlink_read(pp__wlink *l, pp__buf *into) {
  if (!l->down)
    return pp__wchan_read(l->chan, into);
  for (;;) {
    size_t n;
    int bell;
    pp_status st = pp__ring_take(&l->rings, into, &n, &bell);
    if (st == PP_OK && bell)
      st = ring_bell(l);
    if (st != PP_OK || n)
      return st;
    st = sleep_for(l, PP__RING_DATA);
    if (st != PP_OK)
      return st;
  }
}

pp_status pp__wlink_write(pp__wlink *l, const void *data, size_t len) {
  if (!l->up)
    return pp__wchan_write(l->chan, data, len);
  const unsigned char *p = data;
  while (len) {
    size_t n;
    int bell;
    pp_status st = pp__ring_put(&l->rings, p, len, &n, &bell);
    if (st == PP_OK && bell)
      st = ring_bell(l);
    if (st != PP_OK)
      return st;
    p += n;
    len -= n;
    if (len && (st = sleep_for(l, PP__RING_SPACE)) != PP_OK)
      return st;
  }
  return PP_OK;
}

void pp__wlink_free(pp__wlink *l) { pp__buf_free(&l->bells); }
