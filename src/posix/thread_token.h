/* The calling thread's token (backend.h), inline, as the imap owner paths
 * ask for it for every item: the address of a thread-local byte, which
 * threads alive at once do not share. Initial-exec where the compiler
 * takes the hint: the shared library's thread-local variables are then
 * found without a call to the dynamic linker. */
#ifndef PP_THREAD_TOKEN_H
#define PP_THREAD_TOKEN_H

#if (defined(__GNUC__) || defined(__clang__)) &&                               \
    !defined(PP_NO_COMPILER_EXTENSIONS)
#define PP__TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define PP__TLS_MODEL
#endif

extern _Thread_local char pp__thread_mark PP__TLS_MODEL; /* barrier.c */

static inline void *pp__thread_token(void) { return &pp__thread_mark; }

#endif
