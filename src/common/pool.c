/* The pool's life: options, creation, close, terminate, join, destroy. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pp_options_init(pp_options *options) {
  if (!options)
    return;
  memset(options, 0, sizeof *options);
  options->context = PP_CONTEXT_DEFAULT;
}

/* Why the calling thread's pp_pool_create() fails, for
 * pp_pool_create_error(): the first reason given stands. Returns `st`. */
static pp_status creation_failed(pp_status st, const char *format, ...)
    PP_PRINTF_FORMAT(2, 3);

static pp_status creation_failed(pp_status st, const char *format, ...) {
  char *m = pp__thread_message();
  if (!m[0]) {
    va_list ap;
    va_start(ap, format);
    vsnprintf(m, PP__THREAD_MESSAGE, format, ap);
    va_end(ap);
  }
  return st;
}

const char *pp_pool_create_error(void) {
  const char *m = pp__thread_message();
  return m[0] ? m : NULL;
}

static pp_status check_options(const pp_options *o) {
  if (o->processes > PP_MAX_PROCESSES)
    return creation_failed(PP_EINVAL,
                           "options.processes is %d, above PP_MAX_PROCESSES "
                           "(%d)",
                           o->processes, PP_MAX_PROCESSES);
  if (o->ninitargs && (!o->initargs || !o->initializer))
    return creation_failed(PP_EINVAL,
                           o->initializer ? "options.ninitargs is %zu but "
                                            "options.initargs is NULL"
                                          : "options.ninitargs is %zu but "
                                            "there is no initializer",
                           o->ninitargs);
  if (o->initializer && strlen(o->initializer) > PP__WIRE_MAX_NAME)
    return creation_failed(PP_EINVAL,
                           "the initializer's name is longer than %d bytes",
                           PP__WIRE_MAX_NAME);
  for (size_t i = 0; o->initargs && i < o->ninitargs; i++)
    if (!o->initargs[i].data && o->initargs[i].len)
      return creation_failed(PP_EINVAL,
                             "options.initargs[%zu] has no data but a "
                             "length of %zu",
                             i, o->initargs[i].len);
  if (o->initializer && !pp__registry_find(o->initializer) &&
      pp__registry_find_records(o->initializer))
    return creation_failed(PP_EINVAL,
                           "the initializer '%s' is a records task "
                           "(pp_register_records()); an initializer is "
                           "registered with pp_register()",
                           o->initializer);
  if (o->initializer && !pp__registry_find(o->initializer))
    return creation_failed(PP_EINVAL,
                           "no task is registered under the initializer's "
                           "name '%s'",
                           o->initializer);
  if (o->context != PP_CONTEXT_DEFAULT && !pp_context_name(o->context))
    return creation_failed(PP_EINVAL, "options.context (%d) is no context",
                           (int)o->context);
  if (!(o->task_time_limit >= 0)) /* also refuses NaN */
    return creation_failed(PP_EINVAL,
                           "options.task_time_limit is negative or NaN");
  if (o->max_message_size && o->max_message_size < PP__MIN_MAX_MESSAGE)
    return creation_failed(PP_EINVAL,
                           "options.max_message_size is %zu, below the "
                           "smallest limit, %d bytes",
                           o->max_message_size, PP__MIN_MAX_MESSAGE);
  if (o->shared_memory_size != PP_NO_SHARED_MEMORY &&
      o->shared_memory_size > PP__LANE_SIZE_MAX)
    return creation_failed(PP_EINVAL,
                           "options.shared_memory_size is above %zu bytes",
                           (size_t)PP__LANE_SIZE_MAX);
  return PP_OK;
}

/* The first frame every worker gets: the initializer and its arguments. */
static pp_status encode_config(pp_pool *pool, const pp_options *o) {
  pp__buf b = {0};
  size_t at;
  pp_status st = pp__frame_begin(&b, PP__F_CONFIG, 0, &at);
  if (st == PP_OK)
    st = pp__put_str16(&b, o->initializer);
  if (st == PP_OK)
    st = pp__put_args(&b, o->initargs, o->ninitargs);
  uint64_t max_rss = o->max_memory_per_child;
  if (st == PP_OK)
    st = pp__put_u32(&b, (uint32_t)max_rss);
  if (st == PP_OK)
    st = pp__put_u32(&b, (uint32_t)(max_rss >> 32));
  /* The probe of this process's memory; none (all 0) when no value could
   * be drawn, or under the test hook. */
  uint64_t probe[3] = {0, 0, 0};
  if (!pp__test.no_parent_mem &&
      pp__random_bytes(&pool->parent_mem_probe,
                       sizeof pool->parent_mem_probe) == PP_OK) {
    pool->parent_mem_probe |= 1; /* never 0, which a fresh page holds */
    probe[0] = (uint64_t)pp__process_id();
    probe[1] = (uint64_t)(uintptr_t)&pool->parent_mem_probe;
    probe[2] = pool->parent_mem_probe;
  }
  for (int i = 0; st == PP_OK && i < 3; i++) {
    st = pp__put_u32(&b, (uint32_t)probe[i]);
    if (st == PP_OK)
      st = pp__put_u32(&b, (uint32_t)(probe[i] >> 32));
  }
  /* The longest payload a frame to this process may have: a worker cuts
   * a longer answer into pieces of it. */
  uint64_t most = pool->max_message;
  if (st == PP_OK)
    st = pp__put_u32(&b, (uint32_t)most);
  if (st == PP_OK)
    st = pp__put_u32(&b, (uint32_t)(most >> 32));
  if (st == PP_OK)
    st = pp__frame_end(&b, at);
  if (st != PP_OK) {
    pp__buf_free(&b);
    return st;
  }
  pool->config_frame = b.data;
  pool->config_len = b.end;
  return PP_OK;
}

/* A fresh secret per pool, which workers prove they know (Python's
 * authkey). */
static pp_status make_key(pp_pool *pool) {
  unsigned char raw[PP__KEY_BYTES];
  static const char hex[] = "0123456789abcdef";
  pp_status st = pp__random_bytes(raw, sizeof raw);
  if (st != PP_OK)
    return st;
  for (size_t i = 0; i < sizeof raw; i++) {
    pool->key[2 * i] = hex[raw[i] >> 4];
    pool->key[2 * i + 1] = hex[raw[i] & 15];
  }
  pool->key[2 * sizeof raw] = '\0';
  return PP_OK;
}

/* The key the workers are given: the pool's own, except under the test
 * hook that checks that a wrong one is refused. */
static const char *worker_key(const pp_pool *pool) {
  static char wrong[sizeof pool->key];
  if (!pp__test.wrong_key)
    return pool->key;
  memcpy(wrong, pool->key, sizeof wrong);
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  return wrong;
}

static void pool_free(pp_pool *pool) {
  if (pool->backend)
    pp__backend_destroy(pool->backend);
  for (unsigned i = 0; pool->workers && i < pool->nslots; i++) {
    pp__buf_free(&pool->workers[i].batch);
    pp__buf_free(&pool->workers[i].pieces);
  }
  free(pool->workers);
  free(pool->config_frame);
  free(pool->outcomes);
  free(pool->broken_message);
  pp__buf_free(&pool->scratch);
  pp__wakes_free(&pool->wakes);
  pp__copier_destroy(pool->copier); /* when the scheduler never ran */
  pp__shared *s = pool->shared;
  free(pool);
  pp__mutex_lock(s->lock);
  pp__shared_unref_unlock(s);
}

static pp_status create_pool(pp_pool **out, const pp_options *options) {
  pp_options defaults;
  if (!out)
    return creation_failed(PP_EINVAL, "no place for the pool (out is NULL)");
  *out = NULL;
  if (!options) {
    pp_options_init(&defaults);
    options = &defaults;
  }
  pp_status st = check_options(options);
  pp_context context = PP_CONTEXT_DEFAULT;
  if (st == PP_OK) {
    st = pp__context_resolve(options->context, &context);
    if (st != PP_OK)
      creation_failed(st,
                      "PROCPOOL_START_METHOD is \"%.40s\", which names no "
                      "start context (fork, spawn or forkserver, in lower "
                      "case)",
                      getenv("PROCPOOL_START_METHOD"));
  }
  if (st == PP_OK && pp__runtime_init() != PP_OK)
    st = creation_failed(PP_ESYSTEM, "APR could not be initialized");
  if (st != PP_OK)
    return st;
  /* A spawned process runs main() from the top: without the hook there it
   * would not become a worker but run the whole program again, pools and
   * all. */
  if ((context == PP_CONTEXT_SPAWN || context == PP_CONTEXT_FORKSERVER) &&
      !pp__worker_hook_ran())
    return creation_failed(PP_ESTATE,
                           "the %s context needs pp_worker_main() called at "
                           "the top of main()",
                           pp_context_name(context));

  pp_pool *pool = calloc(1, sizeof *pool);
  if (!pool)
    return creation_failed(PP_ENOMEM, "out of memory");
  if ((st = pp__shared_create(&pool->shared)) != PP_OK) {
    free(pool);
    return creation_failed(st, "%s", pp_strerror(st));
  }
  pool->processes =
      options->processes > 0 ? options->processes : pp__cpu_count();
  pool->context = context;
  pool->max_message = options->max_message_size ? options->max_message_size
                                                : PP__DEFAULT_MAX_MESSAGE;
  pool->maxtasksperchild = options->maxtasksperchild;
  if (options->shared_memory_size != PP_NO_SHARED_MEMORY)
    pool->lane_size = pp__lane_size_for(options->shared_memory_size
                                            ? options->shared_memory_size
                                            : PP__LANE_SIZE_DEFAULT);
  pool->time_limit = options->task_time_limit;
  pool->init_limit = options->initializer ? pp__time_limit(pool, NULL) : 0;
  pool->copier = pp__copier_create(); /* NULL: big copies run alone */
  if (options->initializer)
    strcpy(pool->initializer, options->initializer);
  /* Twice the workers: a replacement can start while the one it replaces
   * is still on its way out. */
  pool->nslots = 2 * (unsigned)pool->processes;
  pool->workers = calloc(pool->nslots, sizeof *pool->workers);
  st = pool->workers ? encode_config(pool, options) : PP_ENOMEM;
  if (st == PP_ETOOBIG)
    creation_failed(st, "options.initargs are too big: with the "
                        "initializer's name they must fit one message of "
                        "4 GiB, and each argument too");
  if (st == PP_OK && (st = make_key(pool)) != PP_OK)
    creation_failed(st, "could not read random bytes for the pool's key "
                        "from the operating system");
  if (st == PP_OK) {
    pp__backend_config cfg = {
        context, pool->nslots,           pp__worker_run, worker_key(pool),
        1,       pp__test.named_segments};
    st = pp__backend_create(&pool->backend, &cfg);
  }
  if (st == PP_OK) {
    pp__scheduler_prime(pool);
    st = pp__backend_ready(pool->backend);
  }
  apr_status_t rv = APR_SUCCESS;
  if (st == PP_OK &&
      (rv = pp__thread_create(&pool->thread, pp__scheduler_main, pool,
                              pool->shared->mem)) != APR_SUCCESS) {
    char why[120];
    st = creation_failed(PP_ESYSTEM,
                         "could not start the pool's scheduler thread: %s",
                         apr_strerror(rv, why, sizeof why));
  }
  if (st != PP_OK) {
    if (st == PP_ENOTSUP)
      creation_failed(st,
                      "the %s context%s is not available here (this "
                      "platform or build lacks it, or the program's "
                      "executable cannot be located)",
                      pp_context_name(context),
                      options->context == PP_CONTEXT_DEFAULT &&
                              getenv("PROCPOOL_START_METHOD")
                          ? ", chosen by PROCPOOL_START_METHOD,"
                          : "");
    else if (pool->backend && pp__backend_start_error(pool->backend)[0])
      creation_failed(st, "could not start a worker: %s",
                      pp__backend_start_error(pool->backend));
    else
      creation_failed(st, "%s", pp_strerror(st));
    pool->thread = NULL;
    pool_free(pool);
    return st;
  }
  *out = pool;
  return PP_OK;
}

pp_status pp_pool_create(pp_pool **out, const pp_options *options) {
  char *why = pp__thread_message();
  why[0] = '\0';
  pp_status st = create_pool(out, options);
  if (st != PP_OK && why[0])
    pp__fail_text(st, why, strlen(why));
  return pp__api(__func__, st);
}

int pp_pool_processes(const pp_pool *pool) {
  return pool ? pool->processes : 0;
}

/* The reason given for a pool's call in a forked copy of its owner. */
pp_status pp__fail_not_owner(void) {
  return pp__fail(PP_ESTATE,
                  "this process is a copy of the pool's owner, made by "
                  "fork(): only the process that created the pool can use "
                  "it");
}

pp_status pp__fail_closed(void) {
  return pp__fail(PP_ECLOSED, "the pool is closed (pp_pool_close() or "
                              "pp_pool_terminate() was called): it takes no "
                              "more work");
}

static pp_status worker_pids(pp_pool *pool, long *pids, size_t capacity,
                             size_t *count) {
  if (!pool || !count || (!pids && capacity))
    return pp__fail(PP_EINVAL,
                    !pool    ? "pool is NULL"
                    : !count ? "count is NULL"
                             : "pids is NULL but capacity is %zu",
                    capacity);
  *count = 0;
  if (!pp__shared_owned(pool->shared))
    return pp__fail_not_owner();
  pp__mutex_lock(pool->shared->lock);
  for (unsigned i = 0; i < pool->nslots; i++) {
    const pp__worker *w = &pool->workers[i];
    if (w->pid > 0 && w->state != PP__W_FREE && *count < capacity)
      pids[(*count)++] = w->pid;
  }
  pp__mutex_unlock(pool->shared->lock);
  return PP_OK;
}

pp_status pp_pool_worker_pids(pp_pool *pool, long *pids, size_t capacity,
                              size_t *count) {
  return pp__api(__func__, worker_pids(pool, pids, capacity, count));
}

static pp_status set_state(pp_pool *pool, pp__pool_state state) {
  if (!pool)
    return pp__fail(PP_EINVAL, "pool is NULL");
  if (!pp__shared_owned(pool->shared))
    return pp__fail_not_owner();
  pp__mutex_lock(pool->shared->lock);
  if (pool->state < state)
    pool->state = state;
  if (state == PP__TERMINATE) /* an imap's pull ends at its next item */
    for (pp_iter *it = pool->active_iters; it; it = it->next_active)
      pp__atomic_set(&it->stop_pulling, 1);
  pp__mutex_unlock(pool->shared->lock);
  pp__backend_wake(pool->backend);
  return PP_OK;
}

pp_status pp_pool_close(pp_pool *pool) {
  return pp__api(__func__, set_state(pool, PP__CLOSE));
}

pp_status pp_pool_terminate(pp_pool *pool) {
  return pp__api(__func__, set_state(pool, PP__TERMINATE));
}

static pp_status join(pp_pool *pool) {
  if (!pool)
    return pp__fail(PP_EINVAL, "pool is NULL");
  if (pp__wait_would_hang(pool))
    return pp__fail_wait_would_hang(pool->shared);
  pp__mutex_lock(pool->shared->lock);
  if (pool->state == PP__RUN) {
    pp__mutex_unlock(pool->shared->lock);
    return pp__fail(PP_ESTATE, "the pool is still running: call "
                               "pp_pool_close() or pp_pool_terminate() "
                               "first");
  }
  if (!pool->joining) {
    pool->joining = 1;
    pp__backend_wake(pool->backend);
  }
  while (!pool->scheduler_done)
    pp__shared_wait(pool->shared, &pool->joiners, 0);
  /* Only the first joiner joins the thread; a second one just waited. */
  int first = !pool->joined;
  pool->joined = 1;
  pp__mutex_unlock(pool->shared->lock);
  if (first) {
    apr_status_t rv;
    apr_thread_join(&rv, pool->thread);
  }
  return PP_OK;
}

pp_status pp_pool_join(pp_pool *pool) { return pp__api(__func__, join(pool)); }

void pp_pool_destroy(pp_pool *pool) {
  if (!pool || pp__wait_would_hang(pool))
    return;
  set_state(pool, PP__TERMINATE);
  join(pool);
  /* Iterators still held by the caller outlive the pool: detach them. */
  pp__mutex_lock(pool->shared->lock);
  while (pool->active_iters) {
    pp_iter *it = pool->active_iters;
    pool->active_iters = it->next_active;
    it->pool = NULL;
    pp__iter_release_locked(it);
  }
  pp__mutex_unlock(pool->shared->lock);
  pool_free(pool);
}
