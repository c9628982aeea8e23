/* Big copies split between the scheduler thread and a helper thread
 * (copier.c). */
#ifndef PP_COPIER_H
#define PP_COPIER_H

#include <stddef.h>

/* Copies below this run alone: the helper's wake-up would cost more than
 * the half it takes. A default records chunk of a 1 M-item map (1 MB each
 * way) is above it: the caller's fresh output pages are then faulted in by
 * two threads, and such a map ran 16% faster in a new pool. */
#define PP__COPIER_MIN ((size_t)512 << 10)

typedef struct pp__copier pp__copier;

/* A copier; its helper thread starts with the first big copy, or never
 * when the machine has one CPU or the thread cannot be had (then copies
 * run alone). NULL when out of memory, a copier that copies alone. */
pp__copier *pp__copier_create(void);
/* Stops and joins the helper. NULL is ignored. */
void pp__copier_destroy(pp__copier *c);
/* memcpy(dst, src, len), shared with the helper when `len` is big and `c`
 * is not NULL. With `prefault`, the pages of `dst` are made present first
 * (fresh memory: see pp__prefault()). From one thread at a time. */
void pp__copier_copy(pp__copier *c, void *dst, const void *src, size_t len,
                     int prefault);

#endif
