/* Internal declarations shared by the Windows backend's files.
 *
 * Workers are fresh copies of the executable (the spawn context: Windows
 * has no fork), started with CreateProcessW and a command line naming the
 * worker's channel: one named pipe per worker. The parent drives every pipe
 * with overlapped I/O on one I/O completion port (backend.c). */
#ifndef PP_WIN32_H
#define PP_WIN32_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include "backend.h"

#include <stddef.h>
#include <wchar.h>

/* The worker's end of its channel: the client end of its named pipe,
 * opened for blocking I/O. */
struct pp__wchan {
  HANDLE pipe;
};

/* The worker-mode argument: "--procpool-worker=<pipe name>". */
#define PP__WORKER_ARG "--procpool-worker="

/* Every channel's name starts with this; the rest is random. */
#define PP__PIPE_PREFIX L"\\\\.\\pipe\\procpool-"

/* Room for a pipe name: the prefix, the parent's pid, a dash, 32 hex
 * digits and the NUL. */
#define PP__PIPE_NAME_MAX 80

/* The exit code pp__backend_kill() gives a worker, the one Python's
 * multiprocessing uses for terminate() on Windows. */
#define PP__KILL_CODE 0x10000u

/* ---- system helpers (sys.c) ---- */

/* Maps a GetLastError() value to a status (out of memory or resources:
 * PP_ENOMEM, else PP_ESYSTEM). */
pp_status pp__win32_status(DWORD err);

/* A system call that failed, for a message that says which and why. */
typedef struct pp__win32_failure {
  const char *call; /* its name; NULL: nothing failed (or memory ran out) */
  DWORD err;        /* its GetLastError() */
} pp__win32_failure;

/* Records `call` and `err` in *why (NULL: not asked for); returns
 * pp__win32_status(err). */
pp_status pp__win32_fail(pp__win32_failure *why, const char *call, DWORD err);

/* The system's words for the GetLastError() value `err`, in UTF-8, on one
 * line and without the closing period; an insert of the text ("%1", which
 * would name a file the failed call was given) reads "the file". "system
 * error N" where the system has no words. */
void pp__win32_error_text(DWORD err, char *buf, size_t cap);

/* 1 when this process is attached to a console, with a window or not. */
int pp__win32_has_console(void);

/* 1 when running under Wine (ntdll exports wine_get_version). */
int pp__win32_is_wine(void);

/* ---- named pipes (pipe.c) ---- */

/* What a channel's pipe is created with: a DACL that admits the current
 * user alone. */
typedef struct pp__pipe_security {
  SECURITY_ATTRIBUTES sa;
  SECURITY_DESCRIPTOR sd;
  void *user; /* TOKEN_USER: the SID the ACL names */
  ACL *acl;
} pp__pipe_security;

/* A failed call is described in *why (may be NULL). */
pp_status pp__pipe_security_init(pp__pipe_security *ps, pp__win32_failure *why);
void pp__pipe_security_free(pp__pipe_security *ps);

/* A fresh name: PP__PIPE_PREFIX, this process's id and 128 bits from the
 * OS's CSPRNG, so other users cannot guess it to connect first. */
pp_status pp__pipe_name(wchar_t name[PP__PIPE_NAME_MAX]);

/* Creates the server end of a channel: duplex, byte mode, overlapped, one
 * instance that must be the first (FILE_FLAG_FIRST_PIPE_INSTANCE: a name
 * somebody else already created is refused), local clients only. A
 * failure is described in *why (may be NULL). */
pp_status pp__pipe_create(const wchar_t *name, const pp__pipe_security *ps,
                          HANDLE *out, pp__win32_failure *why);

/* Opens the client end (worker side), for blocking I/O. A failure is
 * described in *why (may be NULL). */
pp_status pp__pipe_open(const wchar_t *name, HANDLE *out,
                        pp__win32_failure *why);

/* ---- worker processes (process.c) ---- */

/* A job object that kills its processes when its last handle closes: the
 * parent's handle, so workers end with the parent however it ends. A
 * failed call is described in *why (may be NULL). */
pp_status pp__job_create(HANDLE *out, pp__win32_failure *why);

/* Appends `arg` to the command line `cmd` (cap wide characters, NUL
 * included) quoted as CommandLineToArgvW and the C runtime parse it back,
 * after a space unless `cmd` is empty. PP_ETOOBIG when it does not fit. */
pp_status pp__cmdline_append(wchar_t *cmd, size_t cap, const wchar_t *arg);

/* Splits the command line `cmd` into *argc arguments, each in UTF-8, as
 * the C runtime does for main() (so the inverse of pp__cmdline_append());
 * *argv (NULL-terminated) is freed with pp__cmdline_free(). */
pp_status pp__cmdline_split(const wchar_t *cmd, int *argc, char ***argv);
void pp__cmdline_free(int argc, char **argv);

/* What every worker of a pool starts from, fixed when the pool is made:
 * this executable, the environment with `key` as PP__KEY_ENV (never on the
 * command line), and the current directory then. A replacement is then
 * the program as its pool's first workers saw it, whatever it changed
 * since (a file dialog moves the current directory), as on POSIX, where
 * workers come from a copy of the program made then. */
typedef struct pp__spawn_plan {
  wchar_t *exe;
  wchar_t *env; /* a CREATE_UNICODE_ENVIRONMENT block */
  wchar_t *cwd;
} pp__spawn_plan;

/* PP_ENOTSUP when this executable's path cannot be had; a failed call is
 * described in *why (may be NULL). */
pp_status pp__spawn_plan_make(pp__spawn_plan *plan, const char *key,
                              pp__win32_failure *why);
void pp__spawn_plan_free(pp__spawn_plan *plan);

/* Starts a worker from `plan` for the pipe `pipe_name`, inside `job`. The
 * process runs when this returns; *process is its handle. A failed call
 * is described in *why (may be NULL). */
pp_status pp__process_spawn(const pp__spawn_plan *plan,
                            const wchar_t *pipe_name, HANDLE job,
                            HANDLE *process, DWORD *pid,
                            pp__win32_failure *why);

/* The process handle of the slot's started worker (backend.c), or NULL. */
HANDLE pp__backend_slot_process(pp__backend *b, unsigned slot);

/* ---- worker side (wchan.c) ---- */

/* Makes an unhandled exception end this process at once with its exception
 * code: no debugger, no error dialog, no Windows Error Reporting. */
void pp__worker_quiet_crashes(void);

#endif
