/* The queue of events a backend hands to pp__backend_wait(): the same FIFO
 * for every backend, kept in a pp__buf of pp__event records. */
#ifndef PP_EVENT_QUEUE_H
#define PP_EVENT_QUEUE_H

#include "backend.h"
#include "buf.h"

/* Appends an event of `type` for `slot`, its other fields from `base` (or
 * zero). The caller has reserved room (pp__buf_reserve), so that an event
 * is never lost to a failed allocation. */
void pp__event_push(pp__buf *q, pp__event_type type, unsigned slot,
                    const pp__event *base);

size_t pp__event_count(const pp__buf *q);

/* Moves up to `capacity` events, oldest first, into `out`; returns how
 * many. */
size_t pp__event_take(pp__buf *q, pp__event *out, size_t capacity);

/* Drops the queued events of `slot` (not wake-ups or a broken backend), so
 * that a released slot's old worker never speaks for its next one. */
void pp__event_drop_slot(pp__buf *q, unsigned slot);

#endif
