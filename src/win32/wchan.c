/* The worker's side: recognising worker mode, connecting the channel,
 * blocking reads and writes on it, and quiet crashes. */
#include "win32.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(_MSC_VER) && defined(_DEBUG)
#include <crtdbg.h>
#endif

/* What a worker reads at most per call: a whole batch of frames usually
 * fits, and one call is one wake-up. */
#define WCHAN_READ_CHUNK (64 * 1024)
/* Largest single WriteFile (its length is a DWORD). */
#define WCHAN_WRITE_MAX (1u << 30)

static LONG WINAPI on_unhandled(EXCEPTION_POINTERS *info) {
  DWORD code = info && info->ExceptionRecord
                   ? info->ExceptionRecord->ExceptionCode
                   : (DWORD)EXCEPTION_NONCONTINUABLE_EXCEPTION;
  /* The exception code becomes the exit code the parent reports. */
  TerminateProcess(GetCurrentProcess(), code);
  return EXCEPTION_EXECUTE_HANDLER; /* not reached */
}

void pp__worker_quiet_crashes(void) {
  /* No "program stopped working" box, no critical-error or missing-file
   * dialogs: a worker has nobody to click them. */
  SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX |
               SEM_NOOPENFILEERRORBOX);
  /* Nor the C runtime's own: in a GUI program a failed assert() or
   * abort() shows a message box, which in a hidden worker would wait for
   * a click for ever. Its words go to standard error instead, as in a
   * console program. */
  _set_error_mode(_OUT_TO_STDERR);
#if defined(_MSC_VER) || defined(_UCRT)
  _set_abort_behavior(0, _CALL_REPORTFAULT);
#endif
#if defined(_MSC_VER) && defined(_DEBUG)
  _CrtSetReportMode(_CRT_ASSERT, _CRTDBG_MODE_FILE);
  _CrtSetReportFile(_CRT_ASSERT, _CRTDBG_FILE_STDERR);
  _CrtSetReportMode(_CRT_ERROR, _CRTDBG_MODE_FILE);
  _CrtSetReportFile(_CRT_ERROR, _CRTDBG_FILE_STDERR);
#endif
  /* The default handler would start the registered debugger (winedbg
   * under Wine) or Windows Error Reporting; a crashed worker should just
   * end with its exception code. */
  SetUnhandledExceptionFilter(on_unhandled);
}

pp_status pp__wchan_read(pp__wchan *chan, pp__buf *into) {
  if (!chan || !into)
    return PP_EINVAL;
  pp_status st = pp__buf_reserve(into, WCHAN_READ_CHUNK);
  if (st != PP_OK)
    return st;
  size_t room = into->cap - into->end;
  DWORD want = room > WCHAN_WRITE_MAX ? WCHAN_WRITE_MAX : (DWORD)room;
  for (;;) {
    DWORD got = 0;
    if (ReadFile(chan->pipe, pp__buf_tail(into), want, &got, NULL)) {
      if (got == 0)
        continue; /* a zero-length write: no data, no EOF */
      pp__buf_commit(into, got);
      return PP_OK;
    }
    DWORD err = GetLastError();
    if (err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED ||
        err == ERROR_NO_DATA)
      return PP_EOF;
    return pp__win32_status(err);
  }
}

/* ReadFile() waits anyway: nothing to spare. */
pp_status pp__wchan_read_idle(pp__wchan *chan, pp__buf *into) {
  return pp__wchan_read(chan, into);
}

/* Every worker here is started afresh by CreateProcess: none hosts
 * anything. */
void pp__wchan_before_user_code(pp__wchan *chan) { (void)chan; }

pp_status pp__wchan_write(pp__wchan *chan, const void *data, size_t len) {
  if (!chan || (!data && len))
    return PP_EINVAL;
  const unsigned char *p = data;
  while (len > 0) {
    DWORD n = len > WCHAN_WRITE_MAX ? WCHAN_WRITE_MAX : (DWORD)len;
    DWORD done = 0;
    if (!WriteFile(chan->pipe, p, n, &done, NULL)) {
      DWORD err = GetLastError();
      if (err == ERROR_NO_DATA || err == ERROR_BROKEN_PIPE ||
          err == ERROR_PIPE_NOT_CONNECTED)
        return PP_EOF;
      return pp__win32_status(err);
    }
    p += done;
    len -= done;
  }
  return PP_OK;
}

/* The pipe name from the worker argument, checked to be one of ours:
 * the prefix, then digits, a dash and hex digits. */
static int parse_name(const char *arg, wchar_t name[PP__PIPE_NAME_MAX]) {
  static const wchar_t prefix[] = PP__PIPE_PREFIX;
  size_t plen = sizeof prefix / sizeof prefix[0] - 1;
  size_t len = strlen(arg);
  if (len <= plen || len >= PP__PIPE_NAME_MAX)
    return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)arg[i];
    if (i < plen
            ? c != prefix[i]
            : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-'))
      return 0;
    name[i] = (wchar_t)c;
  }
  name[len] = L'\0';
  return 1;
}

int pp__backend_command_line(int *argc, char ***argv) {
  static char **args;
  static int count;
  if (!args && pp__cmdline_split(GetCommandLineW(), &count, &args) != PP_OK)
    return 0;
  *argc = count;
  *argv = args;
  return 1;
}

int pp__backend_worker_attach(int argc, char **argv, pp__wchan **out) {
  static const char opt[] = PP__WORKER_ARG;
  wchar_t name[PP__PIPE_NAME_MAX];
  /* The backend puts the argument right after the program's name, and
   * nothing else: any other command line is the user's. */
  if (argc != 2 || !argv || !argv[1] || !out ||
      strncmp(argv[1], opt, sizeof opt - 1) != 0 ||
      !parse_name(argv[1] + sizeof opt - 1, name))
    return 0;
  pp__worker_quiet_crashes();
  static pp__wchan chan;
  pp__win32_failure why = {NULL, 0};
  if (pp__pipe_open(name, &chan.pipe, &why) != PP_OK) {
    /* No pipe: the parent is gone or gave this worker up before it
     * connected, which needs no words. Anything else (access refused,
     * the pipe held by another process) is worth a line: the parent only
     * sees the exit code. */
    if (why.call && why.err != ERROR_FILE_NOT_FOUND) {
      char text[160];
      pp__win32_error_text(why.err, text, sizeof text);
      fprintf(stderr,
              "%s: procpool worker: could not open its pipe to the pool that "
              "started it (%s): %s: %s\n",
              argv[0] ? argv[0] : "procpool", argv[1] + sizeof opt - 1,
              why.call, text);
      fflush(stderr);
    }
    ExitProcess(PP__EXIT_BAD_LAUNCH);
  }
  *out = &chan;
  return 1;
}

/* Windows has no forkserver: no service process ever runs. */
int pp__backend_run_service(int argc, char **argv, pp__worker_main_fn main,
                            int *exit_code) {
  (void)argc;
  (void)argv;
  (void)main;
  (void)exit_code;
  return 0;
}
