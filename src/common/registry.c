/* The task registry: names to functions. Tasks cross process boundaries by
 * name because a spawned worker is a fresh image where the parent's function
 * pointers mean nothing. A name holds one task of either kind: a call task
 * (pp_register()) or a records task (pp_register_records()). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
  char *name;
  pp_task_fn fn;                 /* NULL for a records task */
  pp_records_task_fn records_fn; /* NULL for a call task */
} entry;

/* Written only by the registering functions, which are documented as
 * "before any pool": workers and the scheduler then only read it, so it
 * needs no lock. */
static entry *entries;
static size_t nentries, capentries;

static const entry *find(const char *name) {
  for (size_t i = 0; i < nentries; i++)
    if (strcmp(entries[i].name, name) == 0)
      return &entries[i];
  return NULL;
}

pp_task_fn pp__registry_find(const char *name) {
  const entry *e = find(name);
  return e ? e->fn : NULL;
}

pp_records_task_fn pp__registry_find_records(const char *name) {
  const entry *e = find(name);
  return e ? e->records_fn : NULL;
}

/* Adds `name` for one of the two functions (the other NULL). */
static pp_status add(const char *name, pp_task_fn fn,
                     pp_records_task_fn records_fn) {
  if (!name || !name[0] || strlen(name) > PP__WIRE_MAX_NAME)
    return PP_EINVAL;
  const entry *known = find(name);
  if (known)
    return known->fn == fn && known->records_fn == records_fn ? PP_OK
                                                              : PP_ESTATE;
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
  entries[nentries].records_fn = records_fn;
  nentries++;
  return PP_OK;
}

pp_status pp_register(const char *name, pp_task_fn fn) {
  return fn ? add(name, fn, NULL) : PP_EINVAL;
}

pp_status pp_register_records(const char *name, pp_records_task_fn fn) {
  return fn ? add(name, NULL, fn) : PP_EINVAL;
}
