/**
 * @file procpool.h
 * @brief procpool: a pool of worker processes for C, with the API of Python's
 * multiprocessing.Pool.
 *
 * Tasks are C functions registered under a name (pp_register()). Arguments and
 * results cross between processes as byte buffers. Every call that can fail
 * returns a ::pp_status; pp_strerror() names it, and pp_last_error() says
 * what was wrong.
 *
 * A program registers its tasks and calls pp_worker_main() at the top of
 * main(), then creates a pool with pp_pool_create() and submits work to it:
 * pp_apply() and pp_apply_async() for one call, pp_map(), pp_starmap() and
 * pp_map_records() (and their _async forms) for a whole input known up front,
 * pp_imap() and pp_imap_unordered() for an input pulled lazily. It ends the
 * pool with pp_pool_close() or pp_pool_terminate(), pp_pool_join() and
 * pp_pool_destroy().
 *
 * @anchor pp_threads
 * @par Threads
 * Every function may be called from any thread of the parent process unless
 * its comment says otherwise. The exceptions: pp_register() and
 * pp_worker_main() belong at the top of main(); the pp_call_ functions are
 * for a task, in the worker running it; and each pool has one scheduler
 * thread, which runs the callbacks (::pp_result_fn) and the imap input
 * functions (::pp_next_fn), on which the calls that wait for the pool are
 * refused or must not be made (each says so). No function of procpool may
 * be called from a signal handler (they take locks and allocate: one that
 * interrupted the same thread in procpool can hang it): on Ctrl-C, set a
 * flag the program checks, or take the signal with sigwait() or a
 * signalfd, and terminate the pool from there.
 *
 * @anchor pp_outcomes
 * @par How a call ends
 * Every call submitted to a pool completes exactly once, with one of these
 * statuses (and, for a failure, a message):
 * - PP_OK: the task set its result, or returned PP_OK without one (an empty
 *   result).
 * - PP_ETASK: the task failed with pp_call_fail(), or returned a status
 *   other than PP_OK.
 * - PP_EUNKNOWNTASK: no task of that name is registered in the worker.
 * - PP_EWORKERDIED: the worker died while running it; the message names the
 *   process id and the exit code or signal. The worker is replaced and the
 *   pool goes on (Python's Pool would wait forever). Also the status of every
 *   pending and later call once workers keep dying before they can take
 *   work: the pool then starts no more workers (it is broken for good).
 * - PP_EINITIALIZER: the pool's initializer failed (the message is its
 *   message); the pool starts no more workers, and every pending and later
 *   call that has work to run fails so (an empty map has none, and
 *   succeeds).
 * - PP_ETIMELIMIT: the task ran past its time limit
 *   (pp_options::task_time_limit or pp_callbacks::time_limit); its worker was
 *   stopped and replaced.
 * - PP_ECANCELLED: the call was cancelled with pp_result_cancel().
 * - PP_ETERMINATED: the pool was terminated (or destroyed) first.
 * - PP_EPROTOCOL: the worker sent a malformed message; it was stopped and
 *   is replaced. Also the status of every pending and later call once the
 *   pool broke for a fault of the protocol: new workers that keep failing
 *   the key handshake, a worker built for another wire version, or a
 *   malformed report from the process that starts workers.
 * - PP_ETOOBIG: the worker sent a frame longer than
 *   pp_options::max_message_size (a worker of this library cuts a longer
 *   answer into pieces that fit: one that does not follow the protocol);
 *   it was stopped and is replaced.
 * - PP_ESYSTEM: the pool could not start a worker, attempt after attempt
 *   for 5 seconds (each pause twice the last, from 50 ms to half a
 *   second: a shortage that passes sooner costs only the wait), or the
 *   process that starts workers kept dying soon after it was made
 *   (it is made anew after one death, and the workers lost with it fail
 *   their calls with PP_EWORKERDIED); as with PP_EINITIALIZER every pending
 *   and later call fails so.
 * - PP_ENOMEM: the parent ran out of memory while sending the call or
 *   reading or storing its outcome (a worker that runs out leaves with its
 *   own exit code: PP_EWORKERDIED). An imap whose next chunk cannot begin
 *   for want of memory tries again for up to a second first. Also, as
 *   PP_ESYSTEM, the status of every pending and later call when worker
 *   starts keep failing for want of memory.
 */
#ifndef PROCPOOL_H
#define PROCPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h> /* memcpy, in the inline task accessors */

#ifdef __cplusplus
extern "C" {
#endif

/** @cond INTERNAL */
/* PP_API marks the public functions. A shared build exports only them (the
 * library is compiled with hidden visibility); on Windows it is
 * __declspec(dllexport) in the DLL and __declspec(dllimport) in its users,
 * which define PP_SHARED_LIBRARY (the installed CMake package and
 * procpool.pc do that for a shared build). */
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

/* printf-style argument checking. mingw-w64's "printf" archetype is the old
   msvcrt dialect (no %zu); procpool formats with a C99 printf there (built
   with __USE_MINGW_ANSI_STDIO), which is __MINGW_PRINTF_FORMAT's gnu_printf
   whatever the including program chose. */
#if defined(__MINGW32__)
#define PP_PRINTF_FORMAT(fmt, args)                                            \
  __attribute__((format(gnu_printf, fmt, args)))
#elif defined(__GNUC__)
#define PP_PRINTF_FORMAT(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PP_PRINTF_FORMAT(fmt, args)
#endif

/* A conversion in the header's own code: C++ programs built with
   -Wold-style-cast (and -Werror) include this header too. */
#ifdef __cplusplus
#define PP_PRIV_CAST(type, value) static_cast<type>(value)
#else
#define PP_PRIV_CAST(type, value) ((type)(value))
#endif
/** @endcond */

/**
 * @name Version
 * The version of this header; pp_version() gives the library's. The build
 * reads the version from these three lines.
 */
/**@{*/
#define PP_VERSION_MAJOR 0 /**< Incremented for incompatible API changes. */
#define PP_VERSION_MINOR 1 /**< Incremented for compatible additions. */
#define PP_VERSION_PATCH 0 /**< Incremented for fixes. */
/**@}*/

/**
 * Status codes returned by every procpool function that can fail. Outcomes of
 * calls run by a pool are listed under @ref pp_outcomes "How a call ends".
 */
typedef enum pp_status {
  PP_OK = 0,       /**< success */
  PP_EINVAL,       /**< an argument is NULL, out of range or malformed */
  PP_ENOMEM,       /**< out of memory */
  PP_ESYSTEM,      /**< an operating-system call failed */
  PP_ETIMEOUT,     /**< the wait timed out; the operation may still complete */
  PP_ETASK,        /**< the task failed; its message is available */
  PP_ECLOSED,      /**< the pool is closed or terminated: no new work */
  PP_ESTATE,       /**< the call is not valid in the object's present state */
  PP_ENOTREADY,    /**< the result is not ready yet; from an imap's input
                        function (::pp_next_fn): no item yet */
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
 * @param status any value; values that are not status codes are accepted.
 * @return a static string; an unknown code gives "unknown status".
 */
PP_API const char *pp_strerror(pp_status status);

/**
 * @brief Why the calling thread's last failed call failed, in words a user
 * can act on: the function, then the reason ("pp_pool_join: the pool is
 * still running: call pp_pool_close() or pp_pool_terminate() first").
 *
 * Every function of the library that returns a ::pp_status sets it when it
 * returns anything but PP_OK: the argument or the state it refused, the
 * system's reason, a task's own message when the call's outcome is a
 * failed task (truncated to about 500 bytes; the result, the value or the
 * item has it whole), or, where there is nothing more to say, the status's
 * own words (pp_strerror()). A call that succeeds leaves it as it was, as
 * errno is, so read it right after the failure, on the same thread. Python
 * puts the same words in the exception it raises.
 * @return the message, valid until this thread's next failed call; NULL
 *         before any call of this thread failed.
 * @par Threads
 * Any thread; each has its own.
 */
PP_API const char *pp_last_error(void);

/**
 * @brief The version of the library as "MAJOR.MINOR.PATCH".
 *
 * It can differ from the PP_VERSION_ macros of the header a program was
 * compiled with when the program runs with another shared libprocpool.
 * @return a static string.
 */
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
 * Release with pp_value_clear(), never with free(): the values that
 * pp_iter_next() hands out share one allocation per chunk, which goes when
 * the last of them is cleared (so one value kept holds its chunk's bytes).
 */
typedef struct pp_value {
  void *data;       /**< result bytes (NUL-terminated past len), valid until
                         pp_value_clear() */
  size_t len;       /**< length of the result in bytes */
  pp_status status; /**< PP_OK, or why the call failed */
  char *error;      /**< the error message when status != PP_OK (never
                         NULL then: where no memory was left for the
                         message, pp_strerror()'s words), else NULL */
  void *owner;      /**< internal: the shared allocation @c data lies in, or
                         NULL when @c data is an allocation of its own; leave
                         it alone (NULL in a value built by hand) */
} pp_value;

/**
 * @brief Frees what @p value holds and zeroes it. Values may be cleared in
 * any order and from any thread, each once; a zeroed value (one cleared
 * already, or `pp_value v = {0}`) holds nothing, and clearing it again
 * does nothing. While a pool runs, the memory
 * of a value of 1 MiB or more is kept about a second for the next big
 * value to reuse (fresh memory costs a page fault and a zeroed page per
 * page), then given back; the same holds for pp_result_free().
 * @param value a value filled by pp_apply() or pp_iter_next(); NULL is
 *        ignored.
 */
PP_API void pp_value_clear(pp_value *value);

/**
 * @brief pp_value_clear() on each of @p n values, for the values
 * pp_iter_next_many() hands out: values of one chunk side by side give back
 * their shared allocation in one step instead of one each.
 * @param values the values; NULL is ignored.
 * @param n how many.
 */
PP_API void pp_value_clear_many(pp_value *values, size_t n);

/**
 * @brief Reads a result of exactly 8 bytes as an int64_t.
 * @param value the outcome of a call.
 * @param out receives the integer.
 * @return PP_OK; PP_EINVAL if @p value or @p out is NULL or the value does
 *         not hold 8 bytes; the value's own status if the call failed.
 */
PP_API pp_status pp_value_i64(const pp_value *value, int64_t *out);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Tasks (worker side)
 * These functions are for a task: they take the ::pp_call it was given and
 * are called from the task, in the worker process running it.
 *
 * pp_call_argc(), pp_call_arg(), pp_call_arg_i64(), pp_call_return() and
 * pp_call_return_i64() are also macros that do the common case inline, in
 * the task (a records map calls its task once per record), and call the
 * function for the rest; they behave as the functions do. A function
 * pointer to one, or its name in parentheses (`(pp_call_arg)(call, 0,
 * &b)`), calls the library's function; defining PP_NO_INLINE_ACCESSORS
 * before including procpool.h leaves only the functions.
 */
/**@{*/

/** The context of one task call inside a worker. */
typedef struct pp_call pp_call;

/**
 * A task. It reads its arguments with pp_call_arg(), sets its result with
 * pp_call_return() and fails with pp_call_fail(). Returning a status other
 * than PP_OK without pp_call_fail() fails the call with that status's name.
 * A task that returns PP_OK without setting a result gives an empty result
 * (except in a records map, where that fails the record).
 * @param call the call: its arguments in, its result out.
 * @return PP_OK, or why the task failed.
 */
typedef pp_status (*pp_task_fn)(pp_call *call);

/**
 * @brief Number of arguments of this call.
 * @param call the task's call.
 * @return the number of arguments; 0 for NULL.
 */
PP_API size_t pp_call_argc(const pp_call *call);

/**
 * @brief Argument @p index of this call (borrowed until the task returns).
 * Its bytes are the ones the caller gave, with no NUL added: a string
 * arrives as a C string when the caller counted its terminating NUL in the
 * length (strlen(s) + 1).
 * @param call the task's call.
 * @param index from 0 to pp_call_argc() - 1.
 * @param out receives the argument's bytes.
 * @return PP_OK; PP_EINVAL if @p call or @p out is NULL or @p index is out
 *         of range.
 */
PP_API pp_status pp_call_arg(const pp_call *call, size_t index, pp_bytes *out);

/**
 * @brief Argument @p index read as an int64_t (it must be 8 bytes).
 * @param call the task's call.
 * @param index from 0 to pp_call_argc() - 1.
 * @param out receives the integer.
 * @return PP_OK; PP_EINVAL for a NULL argument, an index out of range or an
 *         argument of a size other than 8.
 */
PP_API pp_status pp_call_arg_i64(const pp_call *call, size_t index,
                                 int64_t *out);

/**
 * @brief Sets the result of this call (copied). A later call replaces it.
 * @param call the task's call.
 * @param data the result's bytes; may be NULL when @p len is 0.
 * @param len the result's length in bytes.
 * @return PP_OK; PP_EINVAL on NULL @p call, or NULL @p data with a non-zero
 *         @p len; PP_ENOMEM; PP_ETOOBIG when @p len is not the record size of
 *         a records map (pp_records::out_size).
 */
PP_API pp_status pp_call_return(pp_call *call, const void *data, size_t len);

/**
 * @brief Sets an 8-byte int64_t result.
 * @param call the task's call.
 * @param value the result.
 * @return as pp_call_return().
 */
PP_API pp_status pp_call_return_i64(pp_call *call, int64_t value);

/**
 * @brief Fails this call with a printf-style message, which the parent gets
 * back (as Python re-raises a task's exception).
 * @param call the task's call.
 * @param format a printf format, or NULL for a message naming the task.
 * @param ... the format's arguments.
 * @return PP_ETASK, so a task can write `return pp_call_fail(call, ...)`;
 *         PP_EINVAL for NULL @p call.
 */
PP_API pp_status pp_call_fail(pp_call *call, const char *format, ...)
    PP_PRINTF_FORMAT(2, 3);

/** @cond INTERNAL */
/* The task accessors above are also macros over inline functions that do
 * the common case in the task's own code: a records map calls its task
 * once per record, and for a short task the two calls into the library
 * cost more than the task (docs/performance.md). Anything else (a NULL
 * pointer, an index out of range, a result that is not a record's) goes
 * to the library's function, which checks and reports as documented.
 *
 * pp_priv_call_head is the start of every ::pp_call (the library's struct
 * begins with one): its layout is part of the ABI, since a task compiled
 * with this header reads it in any library of the same major version. A
 * task never touches it directly. */
typedef struct pp_priv_call_head {
  const pp_bytes *argv; /* argc arguments, borrowed from the worker */
  size_t argc;
  unsigned char *record; /* the result's record in a records map, or NULL */
  size_t record_size;
  int returned; /* a result was set */
} pp_priv_call_head;

#if defined(_MSC_VER) && !defined(__cplusplus)
#define PP_PRIV_INLINE static __inline /* every MSVC C dialect has __inline */
#else
#define PP_PRIV_INLINE static inline
#endif

PP_PRIV_INLINE size_t pp_priv_call_argc_inline(const pp_call *call) {
  return call ? PP_PRIV_CAST(const pp_priv_call_head *,
                             PP_PRIV_CAST(const void *, call))
                    ->argc
              : 0;
}

PP_PRIV_INLINE pp_status pp_priv_call_arg_inline(const pp_call *call,
                                                 size_t index, pp_bytes *out) {
  const pp_priv_call_head *h =
      PP_PRIV_CAST(const pp_priv_call_head *, PP_PRIV_CAST(const void *, call));
  if (!call || !out || index >= h->argc)
    return pp_call_arg(call, index, out);
  *out = h->argv[index];
  return PP_OK;
}

PP_PRIV_INLINE pp_status pp_priv_call_arg_i64_inline(const pp_call *call,
                                                     size_t index,
                                                     int64_t *out) {
  const pp_priv_call_head *h =
      PP_PRIV_CAST(const pp_priv_call_head *, PP_PRIV_CAST(const void *, call));
  if (!call || !out || index >= h->argc || h->argv[index].len != 8)
    return pp_call_arg_i64(call, index, out);
  memcpy(out, h->argv[index].data, 8); /* arguments need not be aligned */
  return PP_OK;
}

PP_PRIV_INLINE pp_status pp_priv_call_return_i64_inline(pp_call *call,
                                                        int64_t value) {
  pp_priv_call_head *h =
      PP_PRIV_CAST(pp_priv_call_head *, PP_PRIV_CAST(void *, call));
  if (!call || !h->record || h->record_size != 8)
    return pp_call_return_i64(call, value);
  memcpy(h->record, &value, 8);
  h->returned = 1;
  return PP_OK;
}

PP_PRIV_INLINE pp_status pp_priv_call_return_inline(pp_call *call,
                                                    const void *data,
                                                    size_t len) {
  pp_priv_call_head *h =
      PP_PRIV_CAST(pp_priv_call_head *, PP_PRIV_CAST(void *, call));
  if (!call || !h->record || len != h->record_size || !data)
    return pp_call_return(call, data, len);
  memcpy(h->record, data, len);
  h->returned = 1;
  return PP_OK;
}

#ifndef PP_NO_INLINE_ACCESSORS
#define pp_call_argc(call) pp_priv_call_argc_inline(call)
#define pp_call_arg(call, index, out) pp_priv_call_arg_inline(call, index, out)
#define pp_call_arg_i64(call, index, out)                                      \
  pp_priv_call_arg_i64_inline(call, index, out)
#define pp_call_return(call, data, len)                                        \
  pp_priv_call_return_inline(call, data, len)
#define pp_call_return_i64(call, value)                                        \
  pp_priv_call_return_i64_inline(call, value)
#endif
/** @endcond */

/**
 * @brief Registers @p fn under @p name.
 *
 * Tasks are found by name in a worker, so that a program runs unchanged when
 * workers are fresh copies of the executable (the spawn context). Register
 * every task at the top of main(), before pp_worker_main(), so that a worker
 * knows the same names as its parent.
 * @param name 1 to 255 bytes, NUL-terminated (copied).
 * @param fn the task.
 * @return PP_OK, also when @p name is already registered to @p fn;
 *         PP_EINVAL for NULL arguments or an empty or over-long name;
 *         PP_ESTATE if the name is already registered to another function;
 *         PP_ENOMEM.
 * @par Threads
 * Not thread-safe: call it from one thread, before creating any pool.
 */
PP_API pp_status pp_register(const char *name, pp_task_fn fn);

/** The alignment of a records task's arrays (pp_records_chunk). */
#define PP_RECORDS_ALIGN 16

/**
 * A chunk of a records map, handed whole to a records task
 * (pp_register_records()): @p count records of @p in_size bytes at @p in,
 * and room for as many results of @p out_size bytes at @p out. Both are
 * the worker's memory, valid until the task returns, and both start at a
 * multiple of PP_RECORDS_ALIGN bytes, so that an array of a struct type
 * (or of any scalar) can be read and written through a pointer to it.
 */
typedef struct pp_records_chunk {
  const void *in;  /**< count * in_size bytes: the chunk's records */
  size_t in_size;  /**< bytes per record (pp_records::in_size) */
  void *out;       /**< count * out_size bytes: the task writes them all */
  size_t out_size; /**< bytes per result (pp_records::out_size) */
  size_t count;    /**< records in this chunk, at least 1 */
  size_t first;    /**< the index of its first record in the whole map (in
                        pp_records::in): record i of the chunk is record
                        first + i of the map */
} pp_records_chunk;

/**
 * A records task: runs a whole chunk of a records map in one call, so that
 * the cost per record is the task's own loop (where a task registered with
 * pp_register() costs a call per record). It must write all @p count
 * results; a result it leaves unwritten holds unspecified bytes. It marks
 * single records failed with pp_records_fail(); returning a status other
 * than PP_OK, or calling pp_call_fail(), fails every record of the chunk.
 * @param chunk the records and where their results go.
 * @param call the chunk's call, for pp_records_fail() and pp_call_fail();
 *        it has no arguments, and a value set on it is ignored.
 * @return PP_OK, or why the whole chunk failed.
 */
typedef pp_status (*pp_records_task_fn)(const pp_records_chunk *chunk,
                                        pp_call *call);

/**
 * @brief Registers a records task under @p name: one that pp_map_records()
 * calls once per chunk instead of once per record.
 *
 * Registered as pp_register() registers (same names, same rule: at the
 * top of main(), before pp_worker_main()). Such a task runs only in a
 * records map (pp_map_records() and pp_map_records_async()); any other
 * call of it fails with PP_EUNKNOWNTASK and a message that says so. It
 * reads whole records: pp_records::field_sizes does not cut them for it.
 * @param name 1 to 255 bytes, NUL-terminated (copied).
 * @param fn the task.
 * @return as pp_register(); PP_ESTATE also when @p name is registered to a
 *         task of the other kind.
 * @par Threads
 * Not thread-safe: call it from one thread, before creating any pool.
 */
PP_API pp_status pp_register_records(const char *name, pp_records_task_fn fn);

/**
 * @brief Fails record @p index of a records task's chunk with a
 * printf-style message; the other records keep their results. The
 * failed record's result reads as zero bytes in pp_records::out. A record
 * failed twice keeps its first message.
 * @param call the call given to the records task.
 * @param index from 0 to pp_records_chunk::count - 1.
 * @param format a printf format, or NULL for a message naming the task.
 * @param ... the format's arguments.
 * @return PP_OK (the task goes on); PP_EINVAL for NULL @p call, a call that
 *         is not a records task's, or @p index out of range; PP_ENOMEM.
 */
PP_API pp_status pp_records_fail(pp_call *call, size_t index,
                                 const char *format, ...)
    PP_PRINTF_FORMAT(3, 4);

/**
 * @brief The worker-mode hook: call it at the top of main(), after
 * registering tasks.
 *
 * In a process launched by procpool as a worker (spawn context) or as the
 * forkserver, it runs that and exits the process without returning, so the
 * rest of main() never runs there; in any other process it returns 0 at
 * once. It must run before a spawn or forkserver pool is created (until
 * then pp_pool_create() refuses them with PP_ESTATE): a copy of the program
 * started without it would run the whole program again. A worker has run
 * it too, so a task may create a pool of its own, in any context. It also
 * records argv[0], which is how the executable is found on systems that
 * have no better way (Linux uses /proc/self/exe, macOS
 * _NSGetExecutablePath), and on Linux for a program started through its
 * dynamic loader by hand (`/lib64/ld-linux-x86-64.so.2 ./program`), whose
 * /proc/self/exe is the loader. Such a program's spawn and forkserver
 * workers start as `./program` itself, without the loader's options
 * (`--library-path`): give its libraries by LD_LIBRARY_PATH or an rpath.
 *
 * Such processes are started with `--procpool-worker=FD` or
 * `--procpool-forkserver=FD` as argv[1] and the pool's key in the
 * environment variable PROCPOOL_WORKER_KEY, which this hook removes from
 * the environment (on Windows, the C runtime's copies as well as the
 * system's), so a task's getenv() does not see it. Given those options
 * without a channel on FD, it prints a message on stderr and exits with
 * code 120; so does a Windows worker that cannot open its pipe, silently
 * when the pipe is gone (its pool gave it up).
 *
 * In a parent on Linux it also registers the process for membarrier(),
 * which lets one thread taking an iterator's items with pp_iter_next(), and
 * clearing them, go without a lock or an atomic operation per item; that
 * costs a microsecond while the process has one thread, and 12-15 ms once
 * it has several.
 *
 * A program without main()'s arguments at hand (a Windows program entered
 * at WinMain or wWinMain, a library that sets itself up) passes 0 and
 * NULL: the hook then reads the process's command line itself (Windows:
 * GetCommandLineW(), split as the C runtime splits it; Linux:
 * /proc/self/cmdline; macOS: _NSGetArgv()). Where the system cannot tell
 * it, the hook returns 0 without running, and spawn and forkserver pools
 * are refused with PP_ESTATE as without it.
 * @param argc main()'s argc, or 0 with @p argv NULL.
 * @param argv main()'s argv, or NULL: the hook finds them itself.
 * @return 0 in a parent; in a worker it does not return.
 * @par Threads
 * The main thread, before the program starts other threads or creates a pool.
 */
PP_API int pp_worker_main(int argc, char **argv);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Pools */
/**@{*/

/**
 * How workers are started (Python's start methods). The same program runs
 * unchanged in each, as long as tasks are registered by name and main()
 * calls pp_worker_main() first.
 *
 * The default is fork on POSIX and spawn on Windows. The environment
 * variable PROCPOOL_START_METHOD ("fork", "spawn" or "forkserver") changes
 * the default, never an explicit choice; set but empty, it counts as unset;
 * a name it does not know makes pp_pool_create() fail with PP_EINVAL.
 *
 * Whatever the context, every worker proves that it knows the pool's
 * random key before it gets any work, and holds no descriptor but the
 * standard streams and its own channel.
 */
typedef enum pp_context {
  PP_CONTEXT_DEFAULT = 0, /**< the platform's default (see above) */
  /** A copy of the parent as it was when the pool was created: fastest,
      and workers see the parent's memory (POSIX only). */
  PP_CONTEXT_FORK,
  /** A fresh run of the program's executable in worker mode: globals have
      their initial values; safe whatever threads the parent has. */
  PP_CONTEXT_SPAWN,
  /** Forked by a server process, itself a fresh run of the executable
      started with the pool: clean like spawn, cheaper per worker
      (POSIX only). */
  PP_CONTEXT_FORKSERVER
} pp_context;

/**
 * @brief Looks up a context by name: "fork", "spawn" or "forkserver".
 * @param name the name.
 * @param out receives the context.
 * @return PP_OK; PP_EINVAL for NULL arguments or an unknown name.
 */
PP_API pp_status pp_context_from_name(const char *name, pp_context *out);

/**
 * @brief The name of a context.
 * @param context PP_CONTEXT_FORK, PP_CONTEXT_SPAWN or PP_CONTEXT_FORKSERVER.
 * @return "fork", "spawn" or "forkserver" (static strings); NULL for
 *         PP_CONTEXT_DEFAULT or an invalid value.
 */
PP_API const char *pp_context_name(pp_context context);

/** The largest accepted value of pp_options::processes. */
#define PP_MAX_PROCESSES 1024

/** Pool options. Initialise with pp_options_init(), then set fields. */
typedef struct pp_options {
  /** Number of workers; <= 0 means the number of CPUs this process may
   * run on (its affinity mask, where the system has one). */
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
  /** Largest frame accepted from a worker, in bytes; 0: 1 GiB; at least
      4096 (a smaller value is refused with PP_EINVAL). It bounds what the
      parent takes on the word of one message header, not what a call may
      return: a chunk's answer (or a single result) longer than this comes
      in several frames of at most this size, and the default chunksize,
      which caps a chunk's items to fit, need not count the results. A
      frame past it (only a worker that breaks the protocol sends one)
      fails its call with PP_ETOOBIG, and its worker is replaced. */
  size_t max_message_size;
  /** Longest a task (a chunk, for maps) may run, in seconds; 0: no limit.
      An overdue task's worker is asked to stop (SIGTERM on POSIX), killed
      200 ms later if still there, and replaced; the task fails with
      PP_ETIMELIMIT. pp_callbacks::time_limit overrides it per call. The
      initializer is held to it too: one that runs past it is killed and
      breaks the pool with PP_EINITIALIZER, as a failing one does (every
      replacement would hang the same way). */
  double task_time_limit;
  /** Resident memory, in bytes, above which a worker is replaced after the
      task that left it there (its answer is delivered first); 0: no
      limit. */
  size_t max_memory_per_child;
  /** Bytes of shared memory per worker and direction through which large
      messages (4 KiB and more: big arguments, results and record chunks)
      travel instead of the channel; rounded up to a power of two, at
      least 64 KiB, at most 1 GiB (a larger value is refused with
      PP_EINVAL); 0: 16 MiB; #PP_NO_SHARED_MEMORY: none, everything goes
      through the channel. Memory is used as pages are first touched
      (Windows charges the whole segment against the system's commit
      limit when it is made, as for any page-file-backed mapping), but
      the parent maps each worker's segment, twice this size, whole: in
      a 32-bit process, mind the address space it takes. A
      message that does not fit at the moment goes through the channel. A
      worker is given its shared memory when it first needs it (its second
      chunk, or its first large message, which itself still takes the
      channel): a pool that runs a task or two makes none. */
  size_t shared_memory_size;
} pp_options;

/** pp_options::shared_memory_size: use no shared memory. */
#define PP_NO_SHARED_MEMORY PP_PRIV_CAST(size_t, -1)

/**
 * @brief Fills @p options with defaults: as many workers as CPUs it may use, no
 * initializer, workers never recycled, the default context, a 1 GiB frame
 * limit, no time limit, no memory limit, 16 MiB of shared memory per worker
 * and direction.
 * @param options the options to fill; NULL is ignored.
 */
PP_API void pp_options_init(pp_options *options);

/**
 * A pool of worker processes.
 *
 * A pool, its results and its iterators belong to the process that created
 * the pool. In a copy of that process made by fork() (the program's own
 * fork, or a fork worker holding a pointer to it) they are copies without
 * the pool's threads: every call on them there fails at once with
 * PP_ESTATE (a wait would never end), but for what had completed before
 * the fork, which reads as it was (an iterator hands out the rest of the
 * chunk it was reading from, then says PP_ESTATE: checking on every item
 * would slow the common case); pp_pool_destroy(), pp_result_free() and
 * pp_iter_free() there do nothing, leaving the owner's workers alone. Such
 * a process creates a pool of its own instead.
 */
typedef struct pp_pool pp_pool;

/**
 * @brief Creates a pool and starts its workers (Python's Pool()).
 *
 * In the fork context a worker is a copy of the parent as it was when the
 * pool was created: create pools early, before starting threads that hold
 * locks. A fork or spawn worker starts with the signal mask of the thread
 * that called this (a forkserver worker with none). The pool's own threads
 * (POSIX) block every signal but those a fault raises, so signals sent to
 * the process are handled on the program's threads.
 * @param out receives the pool, to end with pp_pool_destroy().
 * @param options NULL for defaults (copied).
 * @return PP_OK; PP_EINVAL for NULL @p out or bad options (processes above
 *         PP_MAX_PROCESSES, initargs without initializer or with NULL
 *         data and a non-zero length, an unregistered or over-long
 *         initializer name or one of a records task, an invalid context,
 *         an unknown name in PROCPOOL_START_METHOD, a negative or NaN
 *         task_time_limit, a max_message_size below 4096, or a
 *         shared_memory_size above 1 GiB); PP_ETOOBIG for initargs beyond
 *         the frame format's 4 GiB limits; PP_ENOTSUP for a context this
 *         platform or build lacks (fork and forkserver on Windows), or for
 *         spawn and forkserver when the program's executable cannot be
 *         located; PP_ESTATE for spawn and forkserver when pp_worker_main()
 *         has not run in this process; PP_ESYSTEM; PP_ENOMEM. For any of them,
 *         pp_pool_create_error() says why.
 */
PP_API pp_status pp_pool_create(pp_pool **out, const pp_options *options);

/**
 * @brief Why the calling thread's last pp_pool_create() failed, in words a
 * user can act on: the option that was refused, or the call that failed
 * and the system's reason ("could not start a worker: socketpair: Too many
 * open files").
 * @return the message (valid until this thread's next pp_pool_create());
 *         NULL when that call succeeded, or before any.
 * @par Threads
 * Any thread; each has its own.
 */
PP_API const char *pp_pool_create_error(void);

/**
 * @brief Number of worker processes the pool keeps.
 * @param pool the pool.
 * @return the number of workers; 0 for NULL.
 */
PP_API int pp_pool_processes(const pp_pool *pool);

/**
 * @brief Fills @p pids with the process ids of the live workers.
 * @param pool the pool.
 * @param pids receives up to @p capacity process ids; may be NULL when
 *        @p capacity is 0.
 * @param capacity size of @p pids.
 * @param count receives the number written.
 * @return PP_OK; PP_EINVAL for NULL @p pool or @p count, or NULL @p pids
 *         with a non-zero @p capacity; PP_ESTATE in a fork of the pool's
 *         owner.
 */
PP_API pp_status pp_pool_worker_pids(pp_pool *pool, long *pids, size_t capacity,
                                     size_t *count);

/**
 * @brief Stops accepting work; workers exit once all submitted work is done
 * (Python's close()).
 * @param pool the pool.
 * @return PP_OK, also if already closed or terminated; PP_EINVAL for NULL;
 *         PP_ESTATE in a fork of the pool's owner.
 * @par Threads
 * Any thread, callbacks included.
 */
PP_API pp_status pp_pool_close(pp_pool *pool);

/**
 * @brief Stops the workers at once (Python's terminate()). Every pending
 * result completes with PP_ETERMINATED (its error callback runs). Returns
 * without waiting; use pp_pool_join() to wait until every worker is reaped.
 * @param pool the pool.
 * @return PP_OK; PP_EINVAL for NULL; PP_ESTATE in a fork of the pool's
 *         owner.
 * @par Threads
 * Any thread, callbacks included.
 */
PP_API pp_status pp_pool_terminate(pp_pool *pool);

/**
 * @brief Waits until every worker has exited and been reaped. After close()
 * it waits for all outstanding work first. A worker told to leave that is
 * still there 10 s later (stuck in its last flush of stdout, say, on a lock
 * a thread of a task kept) is killed, so the wait ends: it had nothing
 * pending, only unflushed output of its own to lose.
 * @param pool the pool.
 * @return PP_OK; PP_EINVAL for NULL; PP_ESTATE before close() or
 *         terminate(), or on the pool's scheduler thread (it would wait for
 *         itself).
 * @par Threads
 * Any thread but the pool's scheduler thread (not from a callback or an imap
 * input function). Several threads may join at once.
 */
PP_API pp_status pp_pool_join(pp_pool *pool);

/**
 * @brief Terminates, joins and frees the pool (Python's `with` exit).
 * Results and iterators still held stay valid until pp_result_free() or
 * pp_iter_free().
 * @param pool the pool; NULL is ignored.
 * @par Threads
 * Any thread but the pool's scheduler thread, where it does nothing (as in
 * a fork of the pool's owner, see pp_pool).
 * No other thread may use the pool once this is called.
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
 * when it succeeded, @p error_callback when it failed. It runs before the
 * result is ready: pp_result_ready() and a wait on it see it complete only
 * after it returns (as in Python). Keep it short; it may read the result
 * (pp_result_successful(), pp_result_value(), pp_result_item(),
 * pp_result_error()), submit work and close or terminate the pool, but must
 * not block on the pool: a join, a blocking call, a wait on a result or an
 * iterator of the pool that is not ready (this one included) would never
 * end, and each is refused with PP_ESTATE.
 * @param result the completed result (borrowed).
 * @param user_data pp_callbacks::user_data.
 */
typedef void (*pp_result_fn)(pp_result *result, void *user_data);

/** Callbacks of an asynchronous call; any field may be NULL. */
typedef struct pp_callbacks {
  pp_result_fn callback;       /**< on success */
  pp_result_fn error_callback; /**< on failure */
  void *user_data;             /**< passed to both */
  /** Time limit of this call in seconds: 0 takes the pool's
      pp_options::task_time_limit, a negative value means none; NaN is
      refused with PP_EINVAL. */
  double time_limit;
} pp_callbacks;

/**
 * @brief Waits up to @p timeout seconds (negative: forever) for the result
 * (Python's get()).
 * @param result the result.
 * @param timeout seconds; 0 does not wait, a negative value waits forever;
 *        NaN is refused with PP_EINVAL.
 * @return PP_OK when it succeeded; PP_ETIMEOUT if not ready in time; the
 *         failure status (see @ref pp_outcomes "How a call ends") when it
 *         failed, pp_result_error() giving the message; PP_EINVAL for NULL;
 *         PP_ESTATE, at once, on the scheduler thread of the result's pool
 *         (in a callback or an imap input function) when the result is
 *         not ready and @p timeout is not 0, and in a fork of the pool's
 *         owner when the result is not ready.
 * @par Threads
 * Any thread but the scheduler thread of the result's pool, where it would
 * wait for itself: there it is refused, as above.
 */
PP_API pp_status pp_result_get(pp_result *result, double timeout);

/**
 * @brief Waits up to @p timeout seconds (negative: forever) for the result
 * to be ready (Python's wait()).
 * @param result the result.
 * @param timeout seconds; 0 does not wait, a negative value waits forever;
 *        NaN is refused with PP_EINVAL.
 * @return PP_OK when ready (whatever the outcome); PP_ETIMEOUT; PP_EINVAL for
 *         NULL; PP_ESTATE as pp_result_get() says.
 * @par Threads
 * As pp_result_get().
 */
PP_API pp_status pp_result_wait(pp_result *result, double timeout);

/**
 * @brief Whether the result is complete (Python's ready()).
 * @param result the result.
 * @return 1 when complete; 0 when not (or while its callback runs) or for
 *         NULL.
 */
PP_API int pp_result_ready(const pp_result *result);

/**
 * @brief Whether the call succeeded (Python's successful()).
 * @param result the result.
 * @param ok receives 1 or 0.
 * @return PP_OK; PP_ENOTREADY if not complete yet (Python raises);
 *         PP_EINVAL for NULL.
 */
PP_API pp_status pp_result_successful(const pp_result *result, int *ok);

/**
 * @brief The value of a completed apply.
 * @param result the result of pp_apply_async().
 * @param out receives the value (borrowed from @p result, valid until
 *        pp_result_free()), or the message when the call failed.
 * @return PP_OK; PP_ENOTREADY if not complete; the failure status if it
 *         failed; PP_ESTATE on a map result; PP_EINVAL for NULL.
 */
PP_API pp_status pp_result_value(const pp_result *result, pp_bytes *out);

/**
 * @brief pp_result_value() read as an int64_t.
 * @param result the result of pp_apply_async().
 * @param out receives the integer.
 * @return as pp_result_value(), and PP_EINVAL for a value other than 8
 *         bytes.
 */
PP_API pp_status pp_result_i64(const pp_result *result, int64_t *out);

/**
 * @brief The failure message of a completed, failed result (for a map: the
 * first failed item's).
 * @param result the result.
 * @return the message (borrowed, valid until pp_result_free()); where no
 *         memory was left for it, pp_strerror()'s words for the status;
 *         NULL when the call succeeded, is not complete, or @p result is
 *         NULL.
 */
PP_API const char *pp_result_error(const pp_result *result);

/**
 * @brief Number of items of a map result (1 for an apply).
 * @param result the result.
 * @return the number of items; 0 for NULL.
 */
PP_API size_t pp_result_count(const pp_result *result);

/**
 * @brief Item @p index of a completed result.
 * @param result the result.
 * @param index from 0 to pp_result_count() - 1.
 * @param out receives the item (borrowed from @p result, or for a records
 *        map from pp_records::out), or its failure message. A failure
 *        message, and an item of a map of calls, are NUL-terminated past
 *        their length; a records map's item is its record, as it lies.
 * @return that item's status (PP_OK, PP_ETASK, PP_EWORKERDIED, ...);
 *         PP_ENOTREADY if the result is not complete; PP_EINVAL for NULL or
 *         an index out of range.
 */
PP_API pp_status pp_result_item(const pp_result *result, size_t index,
                                pp_bytes *out);

/**
 * @brief Item @p index read as an int64_t.
 * @param result the result.
 * @param index from 0 to pp_result_count() - 1.
 * @param out receives the integer.
 * @return as pp_result_item(), and PP_EINVAL for an item other than 8 bytes.
 */
PP_API pp_status pp_result_item_i64(const pp_result *result, size_t index,
                                    int64_t *out);

/**
 * @brief Number of chunks the work was cut into.
 * @param result the result.
 * @return the number of chunks; 0 for an empty map or NULL.
 */
PP_API size_t pp_result_chunks(const pp_result *result);

/**
 * @brief The chunk size asked for, or computed when 0 was asked. A map of
 * calls with the default chunk size may have cut smaller chunks where big
 * items would not fit pp_options::max_message_size (pp_result_chunks()
 * counts them); a records map's chunk size is capped so already.
 * @param result the result.
 * @return the chunk size; 0 for NULL.
 */
PP_API size_t pp_result_chunksize(const pp_result *result);

/**
 * @brief Releases the caller's reference. A pending result stays in the pool
 * until it completes (its callbacks still run).
 * @param result the result; NULL is ignored.
 * @par Threads
 * Any thread, once no other thread uses the result (waits on it or reads
 * its items): as with free(), a thread still in pp_result_get() on it
 * would be reading freed memory.
 */
PP_API void pp_result_free(pp_result *result);

/**
 * @brief Cancels a pending call. Work not started never runs; a task already
 * running has its worker killed (and replaced). The result completes with
 * PP_ECANCELLED, and its error callback runs, even when something ended a
 * chunk before the cancel reached it (an item failed, its worker died or
 * passed a time limit): pp_result_item() still says what happened to each
 * item; pp_result_error() is the first cancelled item's message, or, when
 * the cancel found nothing left to stop, what ended the call first.
 * @param result the result of an apply or a map (all of its chunks).
 * @return PP_OK when the cancellation was taken; PP_ESTATE when the result
 *         was already complete, or in a fork of the pool's owner (nothing
 *         is cancelled there); PP_EINVAL for NULL.
 * @par Threads
 * Any thread, callbacks included.
 */
PP_API pp_status pp_result_cancel(pp_result *result);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Calls
 * A task name is 1 to 255 bytes; a name no worker knows is not an error at
 * submission: the call completes with PP_EUNKNOWNTASK. The _async forms copy
 * arguments and items before they return (except the arrays of a records
 * map), so the caller may reuse them at once. The blocking forms
 * (pp_apply(), pp_map(), pp_starmap(), pp_map_records()) read them while
 * they run instead, straight into shared memory when big: they must stay
 * unchanged until the call returns.
 */
/**@{*/

/**
 * @brief Runs @p task with @p args in a worker and waits (Python's apply()).
 * @param pool the pool.
 * @param task the task's registered name.
 * @param args @p nargs arguments; may be NULL when @p nargs is 0.
 * @param nargs number of arguments.
 * @param out receives the result or the error (a submission error sets
 *        its status and its reason in @c error); clear it with
 *        pp_value_clear(). Its status equals the return value.
 * @return PP_OK; a failure status (see @ref pp_outcomes "How a call ends");
 *         PP_EINVAL for NULL pool/task/out, a bad task name, NULL @p args
 *         with @p nargs > 0 or an argument with NULL data and a non-zero
 *         length; PP_ECLOSED after close or terminate; PP_ENOMEM;
 *         PP_ETOOBIG for arguments beyond the frame format's 4 GiB limits;
 *         PP_ESTATE on the scheduler thread or in a fork of the pool's
 *         owner (see pp_pool), with a message in @p out that says which.
 * @par Threads
 * Any thread but the pool's scheduler thread (not from a callback or an imap
 * input function).
 */
PP_API pp_status pp_apply(pp_pool *pool, const char *task, const pp_bytes *args,
                          size_t nargs, pp_value *out);

/**
 * @brief Submits @p task with @p args (copied) and returns at once
 * (Python's apply_async()).
 * @param pool the pool.
 * @param task the task's registered name.
 * @param args @p nargs arguments; may be NULL when @p nargs is 0.
 * @param nargs number of arguments.
 * @param callbacks NULL for none (copied).
 * @param out receives a result to free with pp_result_free(); NULL on error.
 * @return PP_OK; PP_EINVAL (as pp_apply()); PP_ECLOSED after close or
 *         terminate; PP_ENOMEM; PP_ETOOBIG (as pp_apply()); PP_ESTATE in a
 *         fork of the pool's owner.
 */
PP_API pp_status pp_apply_async(pp_pool *pool, const char *task,
                                const pp_bytes *args, size_t nargs,
                                const pp_callbacks *callbacks, pp_result **out);

/**
 * @brief The chunk size Python uses: ceil(n / (4 * processes)), at least 1.
 * @param n number of items.
 * @param processes number of workers; a value <= 0 counts as 1.
 * @return the chunk size.
 */
PP_API size_t pp_default_chunksize(size_t n, int processes);

/**
 * @brief Calls @p task once per item, each item its one argument (copied),
 * in chunks of @p chunksize (Python's map_async()). Results keep the order
 * of the items; the first failed item decides the result's status.
 * @param pool the pool.
 * @param task the task's registered name.
 * @param items @p count items; may be NULL when @p count is 0.
 * @param count number of items; 0 gives a result with no items.
 * @param chunksize items per chunk; 0: pp_default_chunksize(), but a chunk
 *        then takes no more items than fit pp_options::max_message_size
 *        (at least one), so that big items make no chunk too big for
 *        one message (results past it come back in pieces).
 * @param callbacks NULL for none (copied).
 * @param out receives a result to free with pp_result_free(); NULL on error.
 * @return PP_OK; PP_EINVAL for NULL pool/task/out, a bad task name, NULL
 *         @p items with @p count > 0 or an item with NULL data and a
 *         non-zero length; PP_ECLOSED; PP_ENOMEM; PP_ETOOBIG for a chunk
 *         beyond the frame format's 4 GiB limits, or a @p count whose
 *         results could not be counted in memory; PP_ESTATE in a fork of
 *         the pool's owner.
 */
PP_API pp_status pp_map_async(pp_pool *pool, const char *task,
                              const pp_bytes *items, size_t count,
                              size_t chunksize, const pp_callbacks *callbacks,
                              pp_result **out);

/**
 * @brief pp_map_async() then pp_result_get() with no timeout (Python's
 * map()).
 * @param pool the pool.
 * @param task the task's registered name.
 * @param items @p count items; may be NULL when @p count is 0.
 * @param count number of items.
 * @param chunksize items per chunk; 0: pp_default_chunksize(), but a chunk
 *        then takes no more items than fit pp_options::max_message_size
 *        (at least one), so that big items make no chunk too big for
 *        one message (results past it come back in pieces).
 * @param out receives the result whenever the work was submitted, also when
 *        it failed (free it with pp_result_free()); NULL when submission
 *        failed.
 * @return PP_OK; the first failed item's status (see @ref pp_outcomes
 *         "How a call ends"); the errors of pp_map_async(); PP_ESTATE on the
 *         scheduler thread (@p out is then left as it was).
 * @par Threads
 * Any thread but the pool's scheduler thread.
 */
PP_API pp_status pp_map(pp_pool *pool, const char *task, const pp_bytes *items,
                        size_t count, size_t chunksize, pp_result **out);

/**
 * @brief Like pp_map_async(), each item an argument list (Python's
 * starmap_async()).
 * @param pool the pool.
 * @param task the task's registered name.
 * @param items @p count argument lists; may be NULL when @p count is 0.
 * @param count number of items.
 * @param chunksize items per chunk; 0: pp_default_chunksize(), but a chunk
 *        then takes no more items than fit pp_options::max_message_size
 *        (at least one), so that big items make no chunk too big for
 *        one message (results past it come back in pieces).
 * @param callbacks NULL for none (copied).
 * @param out receives a result to free with pp_result_free(); NULL on error.
 * @return as pp_map_async(); PP_EINVAL also for an argument list with NULL
 *         argv and a non-zero argc.
 */
PP_API pp_status pp_starmap_async(pp_pool *pool, const char *task,
                                  const pp_args *items, size_t count,
                                  size_t chunksize,
                                  const pp_callbacks *callbacks,
                                  pp_result **out);

/**
 * @brief Like pp_map(), each item an argument list (Python's starmap()).
 * @param pool the pool.
 * @param task the task's registered name.
 * @param items @p count argument lists; may be NULL when @p count is 0.
 * @param count number of items.
 * @param chunksize items per chunk; 0: pp_default_chunksize(), but a chunk
 *        then takes no more items than fit pp_options::max_message_size
 *        (at least one), so that big items make no chunk too big for
 *        one message (results past it come back in pieces).
 * @param out as pp_map().
 * @return as pp_map() and pp_starmap_async().
 * @par Threads
 * Any thread but the pool's scheduler thread.
 */
PP_API pp_status pp_starmap(pp_pool *pool, const char *task,
                            const pp_args *items, size_t count,
                            size_t chunksize, pp_result **out);

/**
 * Layout of a records map: @p count records of @p in_size bytes at @p in,
 * results of @p out_size bytes written to @p out. Both arrays are borrowed
 * until the result completes, even if the caller frees the result before.
 * @p out may be @p in itself when @p out_size equals @p in_size (each
 * record's result then replaces it); otherwise the arrays must not
 * overlap (pp_map_records_async() refuses arrays that do).
 * With @p nfields > 0 each record is cut into nfields arguments of
 * field_sizes[i] bytes (summing to in_size): a starmap. The output of a
 * failed record is unspecified.
 */
typedef struct pp_records {
  const void *in;            /**< count * in_size bytes */
  size_t count;              /**< number of records */
  size_t in_size;            /**< bytes per input record, > 0 */
  void *out;                 /**< count * out_size bytes */
  size_t out_size;           /**< bytes per result, > 0 */
  const size_t *field_sizes; /**< NULL: one argument per record (copied) */
  size_t nfields;            /**< number of field_sizes */
} pp_records;

/**
 * @brief The fast path for arrays of fixed-size records: each chunk crosses
 * in one copy each way, results land in records->out. Where the system
 * lets a worker into its parent's memory (Linux without a ptrace policy
 * against it, Windows), a chunk of 64 KiB or more is not copied by the
 * pool at all: its worker reads the records from records->in and writes
 * the results into records->out itself, and such a chunk whose arrays the
 * worker cannot read or write fails with PP_ESYSTEM. A task must return
 * exactly out_size bytes per record; a records task (pp_register_records())
 * is called once per chunk instead. The chunk size is capped so that a
 * chunk fits pp_options::max_message_size.
 * @param pool the pool.
 * @param task the task's registered name.
 * @param records the records (the struct is copied, the arrays borrowed).
 * @param chunksize records per chunk; 0: pp_default_chunksize().
 * @param callbacks NULL for none (copied).
 * @param out receives a result to free with pp_result_free(); NULL on error.
 * @return PP_OK; PP_EINVAL for NULL pool/task/records/out, a bad task name,
 *         zero sizes, NULL arrays with a non-zero count, arrays that
 *         overlap (other than out == in with out_size == in_size), NULL
 *         field_sizes with nfields > 0, or field sizes that are zero or do
 *         not sum to in_size; PP_ETOOBIG when count * size overflows, a
 *         size exceeds 4 GiB, or one record does not fit
 *         pp_options::max_message_size with room to spare for its frame
 *         (4 KiB, or half the limit where that is less);
 *         PP_ECLOSED; PP_ENOMEM; PP_ESTATE in a fork of the pool's owner.
 */
PP_API pp_status pp_map_records_async(pp_pool *pool, const char *task,
                                      const pp_records *records,
                                      size_t chunksize,
                                      const pp_callbacks *callbacks,
                                      pp_result **out);

/**
 * @brief pp_map_records_async() and wait.
 * @param pool the pool.
 * @param task the task's registered name.
 * @param records the records.
 * @param chunksize records per chunk; 0: pp_default_chunksize().
 * @param out as pp_map().
 * @return PP_OK; the first failed record's status; the errors of
 *         pp_map_records_async(); PP_ESTATE on the scheduler thread.
 * @par Threads
 * Any thread but the pool's scheduler thread.
 */
PP_API pp_status pp_map_records(pp_pool *pool, const char *task,
                                const pp_records *records, size_t chunksize,
                                pp_result **out);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Lazy iteration (imap) */
/**@{*/

/**
 * Produces the next input item of an imap. Called on the scheduler thread,
 * only when the pool has room for more work, never again after it returned
 * something other than PP_OK or PP_ENOTREADY (see below), or after
 * pp_iter_free(). It must not block on
 * the pool (such waits are refused with PP_ESTATE). It may end its own imap
 * early with pp_iter_free() on its iterator, and then returns PP_EOF (an
 * item it returned would still be copied). Keep it quick: while it runs, the
 * pool's scheduler does nothing else (no results handed back, no worker's
 * death or time limit seen), and it is called for each item of a chunk in
 * a row (a pp_iter_free() or a terminate stops that at the next item). A
 * callback or an input function that keeps the scheduler long does not
 * fail a call that answered within its time limit meanwhile, nor one
 * given its worker just before (its time runs from when it leaves). An
 * input that waits (on I/O, on another thread) never blocks here: a thread
 * of the program fills a queue that this function takes from, and when the
 * queue is empty the
 * function returns PP_ENOTREADY; the pool then calls it again only after
 * pp_iter_input_ready(), which the filling thread calls after each item it
 * adds (and once more when the input has ended, so that the function can
 * say PP_EOF). Python's imap waits for its generator on a thread of its
 * own; this is how procpool's does without one.
 * @param state the state given to pp_imap().
 * @param item receives the next item (its bytes are copied before the next
 *        call).
 * @return PP_OK with @p item set; PP_EOF when done; PP_ENOTREADY when no
 *         item is there yet (see above: a chunk begun waits to be whole, as
 *         Python's imap builds its chunks, so with a @p chunksize above 1
 *         its items start once it is); any other status to stop the input
 *         with an error (pp_iter_next() reports it once, after the items
 *         before it). PP_ETIMEOUT, which pp_iter_next() keeps for its own
 *         waits, and a value that is no ::pp_status are reported as
 *         PP_EINVAL, the message naming what was returned. An item with
 *         NULL data and a non-zero length stops the input with PP_EINVAL.
 */
typedef pp_status (*pp_next_fn)(void *state, pp_bytes *item);

/** An imap iterator. */
typedef struct pp_iter pp_iter;

/**
 * @brief Python's imap(): results in input order, input pulled lazily with
 * bounded work in flight, so memory stays bounded however long the input:
 * at most 16 chunks per worker and two more are held, sent or answered and
 * not yet taken, or 4,096 items in whole chunks when that is more and what
 * is held takes less than 8 MiB (2 chunks per worker and two more once a
 * chunk's input takes 1 MiB or more). After pp_pool_close() the input is still
 * pulled to its end; once a thread waits in pp_pool_join() for a closed
 * pool, the held work may grow past that bound, as Python's imap buffers
 * without one, since nobody may be left to take the results before the
 * join returns. The pool's pp_options::task_time_limit applies to each
 * chunk.
 * @param pool the pool.
 * @param task the task's registered name.
 * @param next the input function.
 * @param state passed to @p next.
 * @param chunksize items per chunk; 0 means 1, Python's default (which
 *        refuses 0 itself).
 * @param out receives the iterator, to free with pp_iter_free(); NULL on
 *        error. It is set before @p next is first called, so the input
 *        function may read the handle from where @p out points.
 * @return PP_OK; PP_EINVAL for NULL pool/task/next/out or a bad task name;
 *         PP_ECLOSED; PP_ENOMEM; PP_ESTATE in a fork of the pool's owner.
 */
PP_API pp_status pp_imap(pp_pool *pool, const char *task, pp_next_fn next,
                         void *state, size_t chunksize, pp_iter **out);

/**
 * @brief Python's imap_unordered(): as pp_imap(), results handed out as
 * they complete.
 * @param pool the pool.
 * @param task the task's registered name.
 * @param next the input function.
 * @param state passed to @p next.
 * @param chunksize items per chunk; 0 means 1.
 * @param out receives the iterator, to free with pp_iter_free(); NULL on
 *        error. It is set before @p next is first called, so the input
 *        function may read the handle from where @p out points.
 * @return as pp_imap().
 */
PP_API pp_status pp_imap_unordered(pp_pool *pool, const char *task,
                                   pp_next_fn next, void *state,
                                   size_t chunksize, pp_iter **out);

/**
 * @brief The next result, waiting up to @p timeout seconds (Python's
 * next(timeout)).
 * @param iter the iterator.
 * @param timeout seconds; 0 does not wait, a negative value waits forever;
 *        NaN is refused with PP_EINVAL where the call would look at it (an
 *        item already in is handed out without).
 * @param out receives the item (status PP_OK) or its error; clear it with
 *        pp_value_clear(). It is zeroed when no item comes (PP_EOF,
 *        PP_ETIMEOUT, PP_EINVAL, PP_ESTATE).
 * @return PP_OK; the item's failure status (see @ref pp_outcomes
 *         "How a call ends"); once, the status that stopped the input (the
 *         input function's error, PP_ETERMINATED, PP_EINITIALIZER, ...) with
 *         its message in @p out, after every item pulled before it and
 *         right before PP_EOF (so a failure followed by PP_EOF may be
 *         either: the message says which); PP_ETIMEOUT (try again); PP_EOF
 *         when every item was handed out; PP_EINVAL for NULL; PP_ESTATE, at
 * once, on the pool's scheduler thread (in a callback or an imap input
 *         function) when it would have to wait (no item in and @p timeout
 *         not 0).
 * @par Threads
 * Any thread but the pool's scheduler thread, where it would wait for
 * itself: there it is refused, as above. The first thread to call it takes
 * items without the iterator's lock, and gives their values back without an
 * atomic operation, until another thread calls it or clears one of those values
 * (where the system has a barrier on every thread: see pp_worker_main()).
 */
PP_API pp_status pp_iter_next(pp_iter *iter, double timeout, pp_value *out);

/**
 * @brief The next results, as many as are in (up to @p cap), waiting up to
 * @p timeout seconds for the first: pp_iter_next() for a caller that takes
 * results by the batch. It takes the iterator's lock once per call, not
 * once per item, which is most of what pp_iter_next() costs an imap of
 * small items where several threads share the iterator, or where the
 * system has no barrier on every thread (see pp_worker_main()); one thread
 * alone on Linux takes items with pp_iter_next() without the lock, at
 * about the same cost. Clear the values with pp_value_clear_many().
 * @param iter the iterator.
 * @param timeout seconds; 0 does not wait, a negative value waits forever;
 *        NaN is refused with PP_EINVAL where the call would look at it (an
 *        item already in is handed out without).
 * @param out receives the items in the order pp_iter_next() would hand them
 *        out, each with its own status (PP_OK, or that item's failure and
 *        message, see @ref pp_outcomes "How a call ends"); room for @p cap.
 * @param cap room in @p out, at least 1.
 * @param n receives how many items were taken: at least 1 with PP_OK, else
 *        0.
 * @return PP_OK with @p n items; otherwise what pp_iter_next() returns when
 *         no item is left to take (PP_EOF, PP_ETIMEOUT, or once the status
 *         that stopped the input, with its message in @p out[0]); PP_EINVAL
 *         for NULL or a zero @p cap.
 * @par Threads
 * As pp_iter_next(); the two may be mixed.
 */
PP_API pp_status pp_iter_next_many(pp_iter *iter, double timeout, pp_value *out,
                                   size_t cap, size_t *n);

/**
 * @brief Tells the pool that the iterator's input function, which returned
 * PP_ENOTREADY, has something to say now: an item, PP_EOF or an error. The
 * pool calls it again soon. Calls while it is not waiting are not lost: a
 * call made while the function runs has the pool ask again at once.
 * @param iter the iterator.
 * @return PP_OK; PP_EINVAL for NULL; PP_ESTATE in a fork of the pool's
 *         owner.
 * @par Threads
 * Any thread, the input function included, up to pp_iter_free() (a thread
 * that fills the input's queue stops calling it before the iterator is
 * freed).
 */
PP_API pp_status pp_iter_input_ready(pp_iter *iter);

/**
 * @brief Frees the iterator. No more input is pulled (once this returns the
 * input function is not running and is not called again, so its state may
 * be freed); items already pulled that no worker holds yet never run, and
 * the results of those a worker holds are dropped.
 * @param iter the iterator; NULL is ignored.
 * @par Threads
 * Any thread, and the iterator's own input function (see ::pp_next_fn),
 * whose call is then its last: it is running, so its state must outlive
 * that call. No other thread may be using the iterator (waiting in
 * pp_iter_next(), say): as with free(), it would be left reading freed
 * memory; end such a wait first (a time limit on it, or
 * pp_pool_terminate(), which wakes every waiter).
 */
PP_API void pp_iter_free(pp_iter *iter);
/**@}*/

#ifdef __cplusplus
}
#endif

#endif /* PROCPOOL_H */
