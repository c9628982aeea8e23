/**
 * @file procpool.h
 * @brief procpool: a pool of worker processes for C, with the API of Python's
 * multiprocessing.Pool.
 *
 * Tasks are C functions registered under a name (pp_register()). Arguments and
 * results cross between processes as byte buffers. Every call returns a
 * ::pp_status; pp_strerror() names it.
 *
 * Threads: every function may be called from any thread unless its comment
 * says otherwise. Callbacks run on the pool's scheduler thread.
 */
#ifndef PROCPOOL_H
#define PROCPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @cond INTERNAL */
#if defined(_WIN32) && defined(PP_SHARED_LIBRARY)
#ifdef PP_BUILDING_LIBRARY
#define PP_API __declspec(dllexport)
#else
#define PP_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) && defined(PP_BUILDING_LIBRARY)
#define PP_API __attribute__((visibility("default")))
#else
#define PP_API
#endif
/** @endcond */

/** Library version. */
#define PP_VERSION_MAJOR 0
#define PP_VERSION_MINOR 1
#define PP_VERSION_PATCH 0

/** Status codes returned by every procpool function. */
typedef enum pp_status {
  PP_OK = 0,       /**< success */
  PP_EINVAL,       /**< an argument is NULL, out of range or malformed */
  PP_ENOMEM,       /**< out of memory */
  PP_ESYSTEM,      /**< an operating-system call failed */
  PP_ETIMEOUT,     /**< the wait timed out; the operation may still complete */
  PP_ETASK,        /**< the task failed; its message is available */
  PP_ECLOSED,      /**< the pool is closed or terminated: no new work */
  PP_ESTATE,       /**< the call is not valid in the object's present state */
  PP_ENOTREADY,    /**< the result is not ready yet */
  PP_ETERMINATED,  /**< the pool was terminated before the work finished */
  PP_EWORKERDIED,  /**< the worker running the task died */
  PP_EINITIALIZER, /**< the pool's initializer failed in a worker */
  PP_ENOTSUP,      /**< not supported on this platform */
  PP_EUNKNOWNTASK, /**< no task is registered under that name */
  PP_EPROTOCOL,    /**< a malformed frame came from a worker */
  PP_ETOOBIG,      /**< a buffer or count exceeds the configured limit */
  PP_EOF,        /**< an iterator has no more items (Python's StopIteration) */
  PP_ETIMELIMIT, /**< the task ran past its time limit; its worker was
                      stopped */
  PP_ECANCELLED, /**< the call was cancelled with pp_result_cancel() */
  PP_STATUS_COUNT_ /**< number of status codes (not a status) */
} pp_status;

/**
 * @brief The name of a status code, as a short English sentence.
 * @return a static string; an unknown code gives "unknown status".
 */
PP_API const char *pp_strerror(pp_status status);

/** @brief The library's version as "MAJOR.MINOR.PATCH" (a static string). */
PP_API const char *pp_version(void);

/* ------------------------------------------------------------------------ */
/** @name Bytes */
/**@{*/

/** A borrowed byte buffer: one argument, one map item, one record. */
typedef struct pp_bytes {
  const void *data; /**< may be NULL when len is 0 */
  size_t len;       /**< length in bytes */
} pp_bytes;

/** An argument list: the arguments of one call (one starmap item). */
typedef struct pp_args {
  const pp_bytes *argv; /**< argc buffers */
  size_t argc;          /**< number of arguments */
} pp_args;

/**
 * An owned outcome of one call: the result bytes, or the task's error.
 * Release with pp_value_clear().
 */
typedef struct pp_value {
  void *data;       /**< result bytes (malloc'd, NUL-terminated past len) */
  size_t len;       /**< length of the result in bytes */
  pp_status status; /**< PP_OK, or why the call failed */
  char *error;      /**< the error message when status != PP_OK, else NULL */
} pp_value;

/** @brief Frees what @p value holds and zeroes it. NULL is ignored. */
PP_API void pp_value_clear(pp_value *value);

/**
 * @brief Reads a result of exactly 8 bytes as an int64_t.
 * @return PP_EINVAL if @p value is NULL or does not hold 8 bytes;
 *         the value's own status if the call failed.
 */
PP_API pp_status pp_value_i64(const pp_value *value, int64_t *out);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Tasks (worker side) */
/**@{*/

/** The context of one task call inside a worker. */
typedef struct pp_call pp_call;

/**
 * A task. It reads its arguments with pp_call_arg(), sets its result with
 * pp_call_return() and fails with pp_call_fail(). Returning a status other
 * than PP_OK without pp_call_fail() fails the call with that status's name.
 */
typedef pp_status (*pp_task_fn)(pp_call *call);

/** @brief Number of arguments of this call. */
PP_API size_t pp_call_argc(const pp_call *call);

/**
 * @brief Argument @p index of this call (borrowed until the task returns).
 * @return PP_EINVAL if @p call or @p out is NULL or @p index is out of range.
 */
PP_API pp_status pp_call_arg(const pp_call *call, size_t index, pp_bytes *out);

/**
 * @brief Argument @p index read as an int64_t (it must be 8 bytes).
 * @return PP_EINVAL on a missing argument or a size other than 8.
 */
PP_API pp_status pp_call_arg_i64(const pp_call *call, size_t index,
                                 int64_t *out);

/**
 * @brief Sets the result of this call (copied). A later call replaces it.
 * @return PP_EINVAL on NULL @p call, or NULL @p data with a non-zero @p len;
 *         PP_ENOMEM; PP_ETOOBIG when @p len exceeds the record size of a
 *         records map.
 */
PP_API pp_status pp_call_return(pp_call *call, const void *data, size_t len);

/** @brief Sets an 8-byte int64_t result. Errors as pp_call_return(). */
PP_API pp_status pp_call_return_i64(pp_call *call, int64_t value);

/**
 * @brief Fails this call with a printf-style message, which the parent gets
 * back (as Python re-raises a task's exception).
 * @return PP_ETASK, so a task can write `return pp_call_fail(call, ...)`.
 */
PP_API pp_status pp_call_fail(pp_call *call, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/**
 * @brief Registers @p fn under @p name (at most 255 bytes).
 *
 * Tasks are found by name in a worker, so that a program runs unchanged when
 * workers are fresh copies of the executable (the spawn context). Register
 * every task at the top of main(), before pp_worker_main().
 * Not thread-safe: call it before creating any pool.
 * @return PP_EINVAL for NULL or an over-long name; PP_ESTATE if the name is
 *         already registered to another function; PP_ENOMEM.
 */
PP_API pp_status pp_register(const char *name, pp_task_fn fn);

/**
 * @brief The worker-mode hook: call it at the top of main(), after
 * registering tasks.
 *
 * In a process launched by procpool as a worker it runs the worker loop and
 * exits the process; in any other process it returns 0 at once.
 * @return 0 in a parent.
 */
PP_API int pp_worker_main(int argc, char **argv);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Pools */
/**@{*/

/** How workers are started. */
typedef enum pp_context {
  PP_CONTEXT_DEFAULT = 0, /**< the platform's default (fork on POSIX) */
  PP_CONTEXT_FORK,        /**< copy of the parent (POSIX only) */
  PP_CONTEXT_SPAWN,       /**< fresh copy of the executable */
  PP_CONTEXT_FORKSERVER   /**< forked by a clean server process (POSIX only) */
} pp_context;

/**
 * @brief Looks up a context by name: "fork", "spawn" or "forkserver".
 * @return PP_EINVAL for NULL arguments or an unknown name.
 */
PP_API pp_status pp_context_from_name(const char *name, pp_context *out);

/** @brief The name of a context ("fork", ...), or NULL for an invalid value. */
PP_API const char *pp_context_name(pp_context context);

/** The largest accepted value of pp_options::processes. */
#define PP_MAX_PROCESSES 1024

/** Pool options. Initialise with pp_options_init(), then set fields. */
typedef struct pp_options {
  /** Number of workers; <= 0 means the number of CPUs. */
  int processes;
  /** Name of a registered task run once in every new worker before its
      first task, or NULL. If it fails, the pool stops starting workers and
      pending and later calls fail with PP_EINITIALIZER and its message. */
  const char *initializer;
  const pp_bytes *initargs; /**< arguments of the initializer (copied) */
  size_t ninitargs;         /**< number of initargs */
  /** Chunks a worker runs before it is replaced; 0: unlimited. */
  unsigned long maxtasksperchild;
  /** Start context. */
  pp_context context;
  /** Largest frame accepted from a worker, in bytes; 0: 1 GiB. */
  size_t max_message_size;
  /** Longest a task (a chunk, for maps) may run, in seconds; 0: no limit.
      An overdue task's worker is killed and replaced, the task fails with
      PP_ETIMELIMIT. pp_callbacks::time_limit overrides it per call. */
  double task_time_limit;
  /** Resident memory, in bytes, above which a worker is replaced after the
      task that left it there (its answer is delivered first); 0: no
      limit. */
  size_t max_memory_per_child;
} pp_options;

/** @brief Fills @p options with defaults. NULL is ignored. */
PP_API void pp_options_init(pp_options *options);

/** A pool of worker processes. */
typedef struct pp_pool pp_pool;

/**
 * @brief Creates a pool and starts its workers.
 * @param options NULL for defaults.
 * @return PP_EINVAL for NULL @p out or bad options (processes above
 *         PP_MAX_PROCESSES, initargs without initializer, an unregistered
 *         initializer); PP_ENOTSUP for a context this platform lacks;
 *         PP_ESYSTEM, PP_ENOMEM.
 */
PP_API pp_status pp_pool_create(pp_pool **out, const pp_options *options);

/** @brief Number of worker processes the pool keeps. 0 for NULL. */
PP_API int pp_pool_processes(const pp_pool *pool);

/**
 * @brief Fills @p pids with the process ids of the live workers.
 * @param capacity size of @p pids; @param count receives the number written.
 * @return PP_EINVAL for NULL arguments.
 */
PP_API pp_status pp_pool_worker_pids(pp_pool *pool, long *pids, size_t capacity,
                                     size_t *count);

/**
 * @brief Stops accepting work; workers exit once all submitted work is done
 * (Python's close()).
 * @return PP_EINVAL for NULL; PP_OK if already closed or terminated.
 */
PP_API pp_status pp_pool_close(pp_pool *pool);

/**
 * @brief Stops the workers at once (Python's terminate()). Every pending
 * result completes with PP_ETERMINATED. Returns without waiting; use
 * pp_pool_join() to wait until every worker is reaped.
 * @return PP_EINVAL for NULL.
 */
PP_API pp_status pp_pool_terminate(pp_pool *pool);

/**
 * @brief Waits until every worker has exited and been reaped. After close()
 * it waits for all outstanding work first.
 * @return PP_EINVAL for NULL; PP_ESTATE before close() or terminate(), or
 *         when called from a callback (it would wait for itself).
 */
PP_API pp_status pp_pool_join(pp_pool *pool);

/**
 * @brief Terminates, joins and frees the pool (Python's `with` exit).
 * Results still held stay valid until pp_result_free(). NULL is ignored.
 * Must not be called from a callback.
 */
PP_API void pp_pool_destroy(pp_pool *pool);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Results */
/**@{*/

/** The result of an asynchronous call (Python's AsyncResult). */
typedef struct pp_result pp_result;

/**
 * Called once, on the scheduler thread, when a result completes: @p callback
 * when it succeeded, @p error_callback when it failed. Keep it short; it may
 * read the result but must not block on the pool (no join, no get of
 * another result).
 */
typedef void (*pp_result_fn)(pp_result *result, void *user_data);

/** Callbacks of an asynchronous call; any field may be NULL. */
typedef struct pp_callbacks {
  pp_result_fn callback;       /**< on success */
  pp_result_fn error_callback; /**< on failure */
  void *user_data;             /**< passed to both */
  /** Time limit of this call in seconds: 0 takes the pool's
      pp_options::task_time_limit, a negative value means none. */
  double time_limit;
} pp_callbacks;

/**
 * @brief Waits up to @p timeout seconds (negative: forever) for the result.
 * @return PP_OK when it succeeded; PP_ETIMEOUT if not ready in time; the
 *         failure status (PP_ETASK, PP_EWORKERDIED, PP_ETERMINATED,
 *         PP_EINITIALIZER, ...) when it failed; PP_EINVAL for NULL.
 */
PP_API pp_status pp_result_get(pp_result *result, double timeout);

/**
 * @brief Waits up to @p timeout seconds (negative: forever).
 * @return PP_OK when ready (whatever the outcome), PP_ETIMEOUT, PP_EINVAL.
 */
PP_API pp_status pp_result_wait(pp_result *result, double timeout);

/** @brief 1 when the result is complete, 0 when not or for NULL. */
PP_API int pp_result_ready(const pp_result *result);

/**
 * @brief Whether the call succeeded (Python's successful()).
 * @param ok receives 1 or 0.
 * @return PP_ENOTREADY if not ready yet (Python raises); PP_EINVAL for NULL.
 */
PP_API pp_status pp_result_successful(const pp_result *result, int *ok);

/**
 * @brief The value of a completed apply (borrowed from @p result).
 * @return PP_ENOTREADY if not ready; the failure status if it failed;
 *         PP_ESTATE on a map result; PP_EINVAL for NULL.
 */
PP_API pp_status pp_result_value(const pp_result *result, pp_bytes *out);

/** @brief pp_result_value() read as an int64_t (8 bytes, else PP_EINVAL). */
PP_API pp_status pp_result_i64(const pp_result *result, int64_t *out);

/**
 * @brief The failure message of a completed, failed result (for a map: the
 * first failed item's), or NULL when it succeeded, is not ready, or is NULL.
 */
PP_API const char *pp_result_error(const pp_result *result);

/** @brief Number of items of a map result (1 for an apply), 0 for NULL. */
PP_API size_t pp_result_count(const pp_result *result);

/**
 * @brief Item @p index of a completed map result (borrowed).
 * @return that item's status (PP_OK, PP_ETASK, PP_EWORKERDIED, ...);
 *         PP_ENOTREADY if the result is not complete; PP_EINVAL for NULL or
 *         an index out of range. On failure @p out holds the message.
 */
PP_API pp_status pp_result_item(const pp_result *result, size_t index,
                                pp_bytes *out);

/** @brief Item @p index read as an int64_t. */
PP_API pp_status pp_result_item_i64(const pp_result *result, size_t index,
                                    int64_t *out);

/** @brief Number of chunks the work was cut into (0 for NULL). */
PP_API size_t pp_result_chunks(const pp_result *result);

/** @brief The chunk size that was used (the default when 0 was asked). */
PP_API size_t pp_result_chunksize(const pp_result *result);

/**
 * @brief Releases the caller's reference. A pending result stays in the pool
 * until it completes (its callbacks still run). NULL is ignored.
 */
PP_API void pp_result_free(pp_result *result);

/**
 * @brief Cancels a pending call. Work not started never runs; a task already
 * running has its worker killed (and replaced). The result completes with
 * PP_ECANCELLED, and its error callback runs.
 * @return PP_OK when the cancellation was taken; PP_ESTATE when the result
 *         was already complete; PP_EINVAL for NULL.
 */
PP_API pp_status pp_result_cancel(pp_result *result);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Calls */
/**@{*/

/**
 * @brief Runs @p task with @p args in a worker and waits (Python's apply()).
 * @param out receives the result or the error; clear it with
 *        pp_value_clear(). Its status equals the return value.
 * @return PP_OK; the task's failure (PP_ETASK, ...); PP_EINVAL for NULL
 *         pool/task/out or NULL @p args with @p nargs > 0; PP_ECLOSED after
 *         close or terminate; PP_ESTATE from a callback.
 */
PP_API pp_status pp_apply(pp_pool *pool, const char *task, const pp_bytes *args,
                          size_t nargs, pp_value *out);

/**
 * @brief Submits @p task with @p args (copied) and returns at once
 * (Python's apply_async()).
 * @param callbacks NULL for none.
 * @param out receives a result to free with pp_result_free().
 * @return PP_EINVAL, PP_ECLOSED, PP_ENOMEM.
 */
PP_API pp_status pp_apply_async(pp_pool *pool, const char *task,
                                const pp_bytes *args, size_t nargs,
                                const pp_callbacks *callbacks, pp_result **out);

/** @brief The chunk size Python uses: ceil(n / (4 * processes)), at least 1. */
PP_API size_t pp_default_chunksize(size_t n, int processes);

/**
 * @brief Calls @p task once per item, each item its one argument (copied),
 * in chunks of @p chunksize (0: default). Python's map_async().
 * @return PP_EINVAL, PP_ECLOSED, PP_ENOMEM, PP_ETOOBIG.
 */
PP_API pp_status pp_map_async(pp_pool *pool, const char *task,
                              const pp_bytes *items, size_t count,
                              size_t chunksize, const pp_callbacks *callbacks,
                              pp_result **out);

/**
 * @brief pp_map_async() then pp_result_get() with no timeout. On PP_OK and
 * on a task failure @p out is set; free it with pp_result_free().
 */
PP_API pp_status pp_map(pp_pool *pool, const char *task, const pp_bytes *items,
                        size_t count, size_t chunksize, pp_result **out);

/** @brief Like pp_map_async(), each item an argument list (starmap). */
PP_API pp_status pp_starmap_async(pp_pool *pool, const char *task,
                                  const pp_args *items, size_t count,
                                  size_t chunksize,
                                  const pp_callbacks *callbacks,
                                  pp_result **out);

/** @brief Like pp_map(), each item an argument list (starmap). */
PP_API pp_status pp_starmap(pp_pool *pool, const char *task,
                            const pp_args *items, size_t count,
                            size_t chunksize, pp_result **out);

/**
 * Layout of a records map: @p count records of @p in_size bytes at @p in,
 * results of @p out_size bytes written to @p out (both borrowed until the
 * result completes). With @p nfields > 0 each record is cut into nfields
 * arguments of field_sizes[i] bytes (summing to in_size): a starmap.
 */
typedef struct pp_records {
  const void *in;            /**< count * in_size bytes */
  size_t count;              /**< number of records */
  size_t in_size;            /**< bytes per input record, > 0 */
  void *out;                 /**< count * out_size bytes */
  size_t out_size;           /**< bytes per result, > 0 */
  const size_t *field_sizes; /**< NULL: one argument per record */
  size_t nfields;            /**< number of field_sizes */
} pp_records;

/**
 * @brief The fast path for arrays of fixed-size records: each chunk crosses
 * in one copy each way, results land in records->out. A task must return
 * exactly out_size bytes per record.
 * @return PP_EINVAL (zero sizes, bad field sizes, NULL arrays),
 *         PP_ETOOBIG (count * size overflows), PP_ECLOSED, PP_ENOMEM.
 */
PP_API pp_status pp_map_records_async(pp_pool *pool, const char *task,
                                      const pp_records *records,
                                      size_t chunksize,
                                      const pp_callbacks *callbacks,
                                      pp_result **out);

/** @brief pp_map_records_async() and wait; @p out as pp_map(). */
PP_API pp_status pp_map_records(pp_pool *pool, const char *task,
                                const pp_records *records, size_t chunksize,
                                pp_result **out);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Lazy iteration (imap) */
/**@{*/

/**
 * Produces the next input item of an imap. Called on the scheduler thread,
 * only when the pool has room for more work. Return PP_OK with @p item set
 * (the bytes are copied before the next call), PP_EOF when done, or any other
 * status to stop the input with an error.
 */
typedef pp_status (*pp_next_fn)(void *state, pp_bytes *item);

/** An imap iterator. */
typedef struct pp_iter pp_iter;

/**
 * @brief Python's imap(): results in input order, input pulled lazily with
 * bounded work in flight. @p chunksize 0 means 1, as in Python.
 * @return PP_EINVAL, PP_ECLOSED, PP_ENOMEM.
 */
PP_API pp_status pp_imap(pp_pool *pool, const char *task, pp_next_fn next,
                         void *state, size_t chunksize, pp_iter **out);

/** @brief Python's imap_unordered(): results as they complete. */
PP_API pp_status pp_imap_unordered(pp_pool *pool, const char *task,
                                   pp_next_fn next, void *state,
                                   size_t chunksize, pp_iter **out);

/**
 * @brief The next result, waiting up to @p timeout seconds (negative:
 * forever).
 * @param out receives the item (status PP_OK) or its error; clear it with
 *        pp_value_clear().
 * @return PP_OK; the item's failure status; PP_ETIMEOUT (try again);
 *         PP_EOF when every item was handed out; PP_EINVAL for NULL.
 */
PP_API pp_status pp_iter_next(pp_iter *iter, double timeout, pp_value *out);

/** @brief Frees the iterator; remaining work is still run. NULL ignored. */
PP_API void pp_iter_free(pp_iter *iter);
/**@}*/

#ifdef __cplusplus
}
#endif

#endif /* PROCPOOL_H */
