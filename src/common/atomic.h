/* The few atomic operations the core needs, portable to the compilers it
 * is built with. GCC and Clang get their __atomic builtins, which the
 * thread sanitizer understands (APR's atomics live in an uninstrumented
 * library, so the sanitizer would not see them order anything); MSVC,
 * which has no C11 <stdatomic.h> in its C mode, gets APR's, and so does a
 * build with PP_NO_COMPILER_EXTENSIONS (scripts/test.sh portable), which
 * runs the suite on them with GCC or Clang. */
#ifndef PP_ATOMIC_H
#define PP_ATOMIC_H

#include <apr_atomic.h>

#include <stdint.h>

#if (defined(__GNUC__) || defined(__clang__)) &&                               \
    !defined(PP_NO_COMPILER_EXTENSIONS)
typedef apr_uint32_t pp__atomic_u32;
/* Stores `v`, publishing every write made before it to pp__atomic_get(). */
static inline void pp__atomic_set(pp__atomic_u32 *a, apr_uint32_t v) {
  __atomic_store_n(a, v, __ATOMIC_RELEASE);
}
static inline apr_uint32_t pp__atomic_get(const pp__atomic_u32 *a) {
  return __atomic_load_n(a, __ATOMIC_ACQUIRE);
}
/* Decrements; 1 when that made it zero. Acquire and release both: whoever
 * drops the last reference sees every write made before the others'. */
static inline int pp__atomic_dec_is_zero(pp__atomic_u32 *a) {
  return __atomic_sub_fetch(a, 1, __ATOMIC_ACQ_REL) == 0;
}
/* Adds `v`; returns the value before. */
static inline apr_uint32_t pp__atomic_add(pp__atomic_u32 *a, apr_uint32_t v) {
  return __atomic_fetch_add(a, v, __ATOMIC_ACQ_REL);
}
/* Stores `v`; returns the value it replaced. A full barrier. */
static inline apr_uint32_t pp__atomic_swap(pp__atomic_u32 *a, apr_uint32_t v) {
  return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);
}
/* A store and a load in one total order with every other such store and
 * load: a load after pp__atomic_set_sc() cannot pass it, which release and
 * acquire allow (ring.c's sleepers and wakers each store, then load what
 * the other stored). No fence: the thread sanitizer does not model one. */
static inline void pp__atomic_set_sc(pp__atomic_u32 *a, apr_uint32_t v) {
  __atomic_store_n(a, v, __ATOMIC_SEQ_CST);
}
static inline apr_uint32_t pp__atomic_get_sc(pp__atomic_u32 *a) {
  return __atomic_load_n(a, __ATOMIC_SEQ_CST);
}
/* A lock word: 1 when taken by a winning exchange, 0 again by a release
 * store, which on x86 is a plain store where a mutex's unlock is a second
 * locked instruction. */
static inline int pp__atomic_try_take(pp__atomic_u32 *a) {
  return __atomic_exchange_n(a, 1, __ATOMIC_ACQUIRE) == 0;
}
static inline void pp__atomic_give(pp__atomic_u32 *a) {
  __atomic_store_n(a, 0, __ATOMIC_RELEASE);
}
/* A store that orders nothing: other threads may see it late, and the CPU
 * may let this thread's later loads pass it (iter.c's owner path, where
 * the other side's pp__remote_barrier() makes up for that). */
static inline void pp__atomic_set_relaxed(pp__atomic_u32 *a, apr_uint32_t v) {
  __atomic_store_n(a, v, __ATOMIC_RELAXED);
}
/* Keeps the compiler from moving memory accesses across it; the CPU still
 * may. */
static inline void pp__compiler_fence(void) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
/* A pointer read and written whole by several threads. */
typedef void *pp__atomic_ptr;
static inline void *pp__atomic_ptr_get(void *const *a) {
  return __atomic_load_n(a, __ATOMIC_ACQUIRE);
}
static inline void pp__atomic_ptr_set(void **a, void *v) {
  __atomic_store_n(a, v, __ATOMIC_RELEASE);
}
/* Stores `v`; returns the pointer it replaced. */
static inline void *pp__atomic_ptr_swap(void **a, void *v) {
  return __atomic_exchange_n(a, v, __ATOMIC_ACQ_REL);
}
#else
typedef volatile apr_uint32_t pp__atomic_u32;
static inline void pp__atomic_set(pp__atomic_u32 *a, apr_uint32_t v) {
  apr_atomic_set32(a, v);
}
static inline apr_uint32_t pp__atomic_get(pp__atomic_u32 *a) {
  /* An interlocked no-op: a full barrier, where a volatile read might be
   * none (ARM64). */
  return apr_atomic_cas32(a, 0, 0);
}
static inline int pp__atomic_dec_is_zero(pp__atomic_u32 *a) {
  return apr_atomic_dec32(a) == 0; /* a full barrier on Windows */
}
static inline apr_uint32_t pp__atomic_add(pp__atomic_u32 *a, apr_uint32_t v) {
  return apr_atomic_add32(a, v);
}
static inline apr_uint32_t pp__atomic_swap(pp__atomic_u32 *a, apr_uint32_t v) {
  return apr_atomic_xchg32(a, v);
}
/* Interlocked, so full barriers both. */
static inline void pp__atomic_set_sc(pp__atomic_u32 *a, apr_uint32_t v) {
  apr_atomic_xchg32(a, v);
}
static inline apr_uint32_t pp__atomic_get_sc(pp__atomic_u32 *a) {
  return apr_atomic_cas32(a, 0, 0);
}
static inline int pp__atomic_try_take(pp__atomic_u32 *a) {
  return apr_atomic_xchg32(a, 1) == 0;
}
static inline void pp__atomic_give(pp__atomic_u32 *a) {
  apr_atomic_xchg32(a, 0);
}
/* Here stronger than they need be: full barriers each. */
static inline void pp__atomic_set_relaxed(pp__atomic_u32 *a, apr_uint32_t v) {
  apr_atomic_xchg32(a, v);
}
static inline void pp__compiler_fence(void) {
  static volatile apr_uint32_t fence;
  apr_atomic_inc32(&fence);
}
typedef void *volatile pp__atomic_ptr;
static inline void *pp__atomic_ptr_get(pp__atomic_ptr const *a) {
  return apr_atomic_casptr((volatile void **)(uintptr_t)a, NULL, NULL);
}
static inline void pp__atomic_ptr_set(pp__atomic_ptr *a, void *v) {
  apr_atomic_xchgptr((volatile void **)(uintptr_t)a, v);
}
static inline void *pp__atomic_ptr_swap(pp__atomic_ptr *a, void *v) {
  return apr_atomic_xchgptr((volatile void **)(uintptr_t)a, v);
}
#endif

#endif
