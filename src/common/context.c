/* Start contexts: names, and the platform default. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const context_names[] = {
    [PP_CONTEXT_FORK] = "fork",
    [PP_CONTEXT_SPAWN] = "spawn",
    [PP_CONTEXT_FORKSERVER] = "forkserver",
};

static pp_status from_name(const char *name, pp_context *out) {
  if (!name || !out)
    return pp__fail(PP_EINVAL, "%s is NULL", !name ? "name" : "out");
  for (int c = PP_CONTEXT_FORK; c <= PP_CONTEXT_FORKSERVER; c++) {
    if (strcmp(name, context_names[c]) == 0) {
      *out = (pp_context)c;
      return PP_OK;
    }
  }
  return pp__fail(PP_EINVAL,
                  "\"%.40s\" names no start context: fork, spawn or "
                  "forkserver, in lower case",
                  name);
}

pp_status pp_context_from_name(const char *name, pp_context *out) {
  return pp__api(__func__, from_name(name, out));
}

const char *pp_context_name(pp_context context) {
  if (context < PP_CONTEXT_FORK || context > PP_CONTEXT_FORKSERVER)
    return NULL;
  return context_names[context];
}

/* PROCPOOL_START_METHOD changes only the default, never an explicit choice,
 * so CI can run a whole program under each context. A name it does not know
 * is an error rather than a silent fallback. */
pp_status pp__context_resolve(pp_context requested, pp_context *out) {
  if (requested != PP_CONTEXT_DEFAULT) {
    if (!pp_context_name(requested))
      return PP_EINVAL;
    *out = requested;
    return PP_OK;
  }
  const char *env = getenv("PROCPOOL_START_METHOD");
  if (env && *env)
    return pp_context_from_name(env, out);
  *out = pp__backend_default_context();
  return PP_OK;
}
