/* The POSIX default start context. */
#include "backend.h"

/* fork is the fastest start and what POSIX users of Python's Pool know. */
pp_context pp__backend_default_context(void) { return PP_CONTEXT_FORK; }
