/* The calling thread's token (backend.h). Out of line, in barrier.c, so
 * that the core's files need not include <windows.h>; Windows has no owner
 * path yet (barrier.c), which would want it inline. */
#ifndef PP_THREAD_TOKEN_H
#define PP_THREAD_TOKEN_H

void *pp__thread_token(void);

#endif
