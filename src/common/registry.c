/* The task registry: names to functions. Tasks cross process boundaries by
 * name because a spawned worker is a fresh image where the parent's function
 * pointers mean nothing. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
  char *name;
  pp_task_fn fn;
} entry;

/* Written only by pp_register(), which is documented as "before any pool":
 * workers and the scheduler then only read it, so it needs no lock. */
static entry *entries;
static size_t nentries, capentries;

pp_task_fn pp__registry_find(const char *name) {
  for (size_t i = 0; i < nentries; i++)
    if (strcmp(entries[i].name, name) == 0)
      return entries[i].fn;
  return NULL;
}

pp_status pp_register(const char *name, pp_task_fn fn) {
  if (!name || !fn || !name[0] || strlen(name) > PP__WIRE_MAX_NAME)
    return PP_EINVAL;
  pp_task_fn known = pp__registry_find(name);
  if (known)
    return known == fn ? PP_OK : PP_ESTATE;
  if (nentries == capentries) {
    size_t cap = capentries ? capentries * 2 : 16;
    entry *grown = realloc(entries, cap * sizeof *grown);
    if (!grown)
      return PP_ENOMEM;
    entries = grown;
    capentries = cap;
  }
  size_t len = strlen(name);
  char *copy = malloc(len + 1);
  if (!copy)
    return PP_ENOMEM;
  memcpy(copy, name, len + 1);
  entries[nentries].name = copy;
  entries[nentries].fn = fn;
  nentries++;
  return PP_OK;
}
