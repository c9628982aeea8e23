/* The backends' event queue (see event_queue.h), and pp__backend_wait()
 * on top of it. */
#include "event_queue.h"

#include <string.h>

void pp__event_push(pp__buf *q, pp__event_type type, unsigned slot,
                    const pp__event *base) {
  pp__event ev;
  if (base)
    ev = *base;
  else
    memset(&ev, 0, sizeof ev);
  ev.type = type;
  ev.slot = slot;
  (void)pp__buf_append(q, &ev, sizeof ev); /* room was reserved */
}

size_t pp__event_count(const pp__buf *q) {
  return pp__buf_len(q) / sizeof(pp__event);
}

size_t pp__event_take(pp__buf *q, pp__event *out, size_t capacity) {
  size_t n = pp__event_count(q);
  if (n > capacity)
    n = capacity;
  if (n) {
    memcpy(out, pp__buf_head(q), n * sizeof(pp__event));
    pp__buf_consume(q, n * sizeof(pp__event));
  }
  return n;
}

void pp__event_drop_slot(pp__buf *q, unsigned slot) {
  size_t n = pp__event_count(q), kept = 0;
  unsigned char *head = pp__buf_head(q);
  for (size_t k = 0; k < n; k++) {
    pp__event e;
    memcpy(&e, head + k * sizeof e, sizeof e);
    if (e.slot == slot && e.type != PP__EV_WAKE && e.type != PP__EV_BROKEN)
      continue;
    memcpy(head + kept++ * sizeof e, &e, sizeof e);
  }
  q->end = q->start + kept * sizeof(pp__event);
}

pp_status pp__backend_wait(pp__backend *b, long timeout_ms, pp__event *events,
                           size_t capacity, size_t *count) {
  if (!b || !events || capacity == 0 || !count)
    return PP_EINVAL;
  *count = 0;
  pp__buf *q = pp__backend_events(b);
  if (pp__event_count(q) == 0) {
    pp_status st = pp__backend_poll(b, timeout_ms);
    if (st != PP_OK)
      return st;
  }
  *count = pp__event_take(q, events, capacity);
  return PP_OK;
}
