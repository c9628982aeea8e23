/* The frame of an owner path (iter.c's items, value.c's references): one
 * thread, the owner, does its work with plain stores while its token stays
 * in place; another thread that replaces the token then waits it out.
 * Dekker's mutual exclusion, with the fence taken off the owner's side and
 * paid for by the other's pp__remote_barrier(). */
#ifndef PP_OWNER_H
#define PP_OWNER_H

#include "atomic.h"
#include "backend.h"

#include <apr_thread_proc.h>

/* The owner, before its work: 1 when `token` still holds `owner`, and
 * `busy` then says the owner is at work until pp__owner_leave(); 0 when
 * another thread took the path away. */
static inline int pp__owner_enter(pp__atomic_ptr *token, pp__atomic_u32 *busy,
                                  void *owner) {
  pp__atomic_set_relaxed(busy, 1);
  pp__compiler_fence();
  if (pp__atomic_ptr_get(token) == owner)
    return 1;
  pp__atomic_set(busy, 0);
  return 0;
}

/* The owner, after its work. A release: whoever waits it out sees what it
 * did. */
static inline void pp__owner_leave(pp__atomic_u32 *busy) {
  pp__atomic_set(busy, 0);
}

/* Another thread, once it replaced the owner's token: from here the owner
 * either sees the new token before it works, or its busy flag is visible
 * below and this waits until the owner is out. */
static inline void pp__owner_wait_out(pp__atomic_u32 *busy) {
  pp__remote_barrier();
  while (pp__atomic_get(busy))
    apr_thread_yield();
}

#endif
