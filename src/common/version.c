/* The library's version, from the PP_VERSION_* macros of procpool.h (which
 * the build also reads, so there is one place to change it). */
#include "procpool.h"

#define PP__STR2(x) #x
#define PP__STR(x) PP__STR2(x)

const char *pp_version(void) {
  return PP__STR(PP_VERSION_MAJOR) "." PP__STR(PP_VERSION_MINOR) "." PP__STR(
      PP_VERSION_PATCH);
}
