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
 * needs no lock. A table open-addressed by the name's hash, at most half
 * full: a worker looks a task up for every chunk, and a spawned worker
 * registers every name again as it starts, so neither may cost as much as
 * the number of names. */
static entry *table;
static size_t nentries, capacity; /* capacity: 0 or a power of two */

static size_t name_hash(const char *name) {
  uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    h = (h ^ *p) * UINT64_C(1099511628211);
  return (size_t)(h ^ (h >> 32));
}

/* The slot of `name` in the table, or the empty one where it would go. */
static entry *slot_of(entry *in, size_t cap, const char *name) {
  size_t i = name_hash(name) & (cap - 1);
  while (in[i].name && strcmp(in[i].name, name) != 0)
    i = (i + 1) & (cap - 1);
  return &in[i];
}

static const entry *find(const char *name) {
  if (!capacity)
    return NULL;
  const entry *e = slot_of(table, capacity, name);
  return e->name ? e : NULL;
}

static pp_status grow(void) {
  size_t cap = capacity ? capacity * 2 : 32;
  entry *grown = calloc(cap, sizeof *grown);
  if (!grown)
    return pp__fail(PP_ENOMEM, "no memory to grow the task registry");
  for (size_t i = 0; i < capacity; i++)
    if (table[i].name)
      *slot_of(grown, cap, table[i].name) = table[i];
  free(table);
  table = grown;
  capacity = cap;
  return PP_OK;
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
    return pp__fail(PP_EINVAL,
                    !name ? "name is NULL"
                          : "a task name is 1 to %d bytes, not %zu",
                    PP__WIRE_MAX_NAME, name ? strlen(name) : 0);
  const entry *known = find(name);
  if (known)
    return known->fn == fn && known->records_fn == records_fn
               ? PP_OK
               : pp__fail(PP_ESTATE,
                          "\"%s\" is registered already, to another "
                          "function",
                          name);
  if (2 * (nentries + 1) > capacity) {
    pp_status st = grow();
    if (st != PP_OK)
      return st;
  }
  char *copy = pp__strdup(name);
  if (!copy)
    return PP_ENOMEM;
  entry *e = slot_of(table, capacity, name);
  e->name = copy;
  e->fn = fn;
  e->records_fn = records_fn;
  nentries++;
  return PP_OK;
}

pp_status pp_register(const char *name, pp_task_fn fn) {
  return pp__api(__func__,
                 fn ? add(name, fn, NULL) : pp__fail(PP_EINVAL, "fn is NULL"));
}

pp_status pp_register_records(const char *name, pp_records_task_fn fn) {
  return pp__api(__func__,
                 fn ? add(name, NULL, fn) : pp__fail(PP_EINVAL, "fn is NULL"));
}
