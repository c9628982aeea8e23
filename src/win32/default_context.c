/* The Windows default start context. */
#include "backend.h"

/* spawn is the only context Windows has: there is no fork. */
pp_context pp__backend_default_context(void) { return PP_CONTEXT_SPAWN; }
