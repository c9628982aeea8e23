/* Suite "win32": the Windows backend. Its pieces (exit descriptions,
 * command-line quoting, pipe names and their security, contexts), the
 * backend interface with real spawned workers, and the acceptance cases: a
 * pool of more workers than one wait can watch (64), workers that crash,
 * exit or are terminated, and workers that must not outlive a killed owner.
 *
 * Under Wine, the one check Wine cannot honour (FILE_FLAG_FIRST_PIPE_INSTANCE)
 * says so and skips; nothing else does. */
#ifndef _WIN32
typedef int pp_test_win32_is_windows_only;
#else

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <aclapi.h>
#include <shellapi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "backend.h"
#include "procpool.h"
#include "suites.h"
#include "util.h"
#include "win32.h"

/* ---- tasks (run in spawned workers) ---- */

/* How "win32_die" ends its worker. */
enum {
  WD_ACCESS_VIOLATION = 1,
  WD_EXIT_PROCESS,   /* ExitProcess(43) */
  WD_TERMINATE_SELF, /* TerminateProcess(self, 77) */
  WD_RAISE,          /* RaiseException(0xE0000042) */
  WD_DIVIDE_BY_ZERO
};

/* volatile: the division must happen (GCC turns 1 / x into a compare). */
static volatile int zero = 0, seven = 7;

static pp_status win32_die(pp_call *call) {
  int64_t how = 0;
  if (pp_call_arg_i64(call, 0, &how) != PP_OK)
    return pp_call_fail(call, "win32_die: needs an int64");
  switch (how) {
  case WD_ACCESS_VIOLATION: {
    volatile int *volatile p = (int *)(uintptr_t)8;
    *p = 1;
    break;
  }
  case WD_EXIT_PROCESS:
    ExitProcess(43);
  case WD_TERMINATE_SELF:
    TerminateProcess(GetCurrentProcess(), 77);
    break;
  case WD_RAISE:
    RaiseException(0xE0000042u, EXCEPTION_NONCONTINUABLE, 0, NULL);
    break;
  case WD_DIVIDE_BY_ZERO:
    return pp_call_return_i64(call, seven / zero);
  default:
    break;
  }
  return pp_call_fail(call, "win32_die: unknown way %d", (int)how);
}

/* Sleeps the given ms, then returns the worker's pid. */
static pp_status win32_pid_after(pp_call *call) {
  int64_t ms = 0;
  if (pp_call_arg_i64(call, 0, &ms) != PP_OK)
    return pp_call_fail(call, "win32_pid_after: needs an int64");
  Sleep((DWORD)ms);
  return pp_call_return_i64(call, (int64_t)GetCurrentProcessId());
}

/* Sets the named event given as argument 0 (the task has started), then
 * sleeps argument 1 ms and returns the worker's pid. */
static pp_status win32_signal_sleep(pp_call *call) {
  pp_bytes name;
  int64_t ms = 0;
  char buf[128];
  if (pp_call_arg(call, 0, &name) != PP_OK || name.len >= sizeof buf ||
      pp_call_arg_i64(call, 1, &ms) != PP_OK)
    return pp_call_fail(call, "win32_signal_sleep: needs (name, int64)");
  memcpy(buf, name.data, name.len);
  buf[name.len] = '\0';
  HANDLE ev = OpenEventA(EVENT_MODIFY_STATE, FALSE, buf);
  if (!ev)
    return pp_call_fail(call, "win32_signal_sleep: no event %s", buf);
  SetEvent(ev);
  CloseHandle(ev);
  Sleep((DWORD)ms);
  return pp_call_return_i64(call, (int64_t)GetCurrentProcessId());
}

/* What a worker sees of its key: "<C runtime's copy>\n<the process's
 * environment block's copy>\n<command line>". */
static pp_status win32_env(pp_call *call) {
  const char *key = getenv(PP__KEY_ENV);
  char sys[256];
  DWORD slen = GetEnvironmentVariableA(PP__KEY_ENV, sys, sizeof sys);
  if (slen >= sizeof sys)
    slen = 0;
  const char *cmd = GetCommandLineA();
  size_t klen = key ? strlen(key) : 0, clen = strlen(cmd);
  char *out = malloc(klen + slen + clen + 3);
  if (!out)
    return pp_call_fail(call, "win32_env: out of memory");
  memcpy(out, key ? key : "", klen);
  out[klen] = '\n';
  memcpy(out + klen + 1, sys, slen);
  out[klen + 1 + slen] = '\n';
  memcpy(out + klen + slen + 2, cmd, clen + 1);
  pp_status st = pp_call_return(call, out, klen + slen + clen + 2);
  free(out);
  return st;
}

/* How the worker's C runtime reports a failed assert() (what
 * _set_error_mode() says), and whether the worker has a console. */
static pp_status win32_reports(pp_call *call) {
  int64_t mode = _set_error_mode(_REPORT_ERRMODE);
  return pp_call_return_i64(call, mode * 2 + pp__win32_has_console());
}

pp_status win32_tasks_register(void) {
  pp_status st = pp_register("win32_die", win32_die);
  if (st == PP_OK)
    st = pp_register("win32_reports", win32_reports);
  if (st == PP_OK)
    st = pp_register("win32_pid_after", win32_pid_after);
  if (st == PP_OK)
    st = pp_register("win32_signal_sleep", win32_signal_sleep);
  if (st == PP_OK)
    st = pp_register("win32_env", win32_env);
  return st;
}

/* ---- helpers ---- */

static size_t wait_workers(pp_pool *pool, long *pids, size_t cap, size_t want,
                           double timeout) {
  size_t n = 0;
  double t0 = tu_now();
  for (;;) {
    pp_pool_worker_pids(pool, pids, cap, &n);
    if (n >= want || tu_now() - t0 > timeout)
      return n;
    tu_sleep_ms(10);
  }
}

static int listed(const long *pids, size_t n, long pid) {
  for (size_t i = 0; i < n; i++)
    if (pids[i] == pid)
      return 1;
  return 0;
}

static void skip(const char *why) {
  printf("\n    skipped: %s\n", why);
  fflush(stdout);
}

/* ---- pieces ---- */

static void test_exit_describe(void) {
  static const struct {
    unsigned long code;
    const char *text;
  } cases[] = {
      {0, "exited with code 0"},
      {3, "exited with code 3"},
      {0xFFFFFFFFul, "exited with code -1"},
      {0xC0000005ul, "crashed with exception 0xC0000005 (access violation)"},
      {0xC0000094ul,
       "crashed with exception 0xC0000094 (integer division by zero)"},
      {0xC00000FDul, "crashed with exception 0xC00000FD (stack overflow)"},
      {0xE0000042ul, "crashed with exception 0xE0000042"},
      {0x10000ul, "was terminated (exit code 0x10000)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pp__exit e = {.signaled = 0, .code = (long)cases[i].code};
    char text[128];
    pp__exit_describe(&e, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, cases[i].text);
  }
  char tiny[8];
  pp__exit e = {.signaled = 0, .code = (long)0xC0000005ul};
  pp__exit_describe(&e, tiny, sizeof tiny);
  CU_ASSERT_EQUAL(strlen(tiny), sizeof tiny - 1);
}

static int dummy_main(pp__wchan *chan, const char *key) {
  (void)chan;
  (void)key;
  return 0;
}

static void test_contexts(void) {
  CU_ASSERT_EQUAL(pp__backend_default_context(), PP_CONTEXT_SPAWN);
  pp__backend *b = NULL;
  pp__backend_config cfg = {PP_CONTEXT_FORK, 2, dummy_main, "00", 0, 0};
  CU_ASSERT_EQUAL(pp__backend_create(&b, &cfg), PP_ENOTSUP);
  CU_ASSERT_PTR_NULL(b);
  cfg.context = PP_CONTEXT_FORKSERVER;
  CU_ASSERT_EQUAL(pp__backend_create(&b, &cfg), PP_ENOTSUP);
  cfg.context = PP_CONTEXT_SPAWN;
  cfg.max_slots = 0;
  CU_ASSERT_EQUAL(pp__backend_create(&b, &cfg), PP_EINVAL);

  pp_options o;
  pp_options_init(&o);
  o.processes = 1;
  pp_pool *pool = NULL;
  o.context = PP_CONTEXT_FORK;
  CU_ASSERT_EQUAL(pp_pool_create(&pool, &o), PP_ENOTSUP);
  o.context = PP_CONTEXT_FORKSERVER;
  CU_ASSERT_EQUAL(pp_pool_create(&pool, &o), PP_ENOTSUP);
  CU_ASSERT_PTR_NULL(pool);
  CU_ASSERT(tu_contains(pp_pool_create_error(), "forkserver context is"));
  CU_ASSERT(!tu_contains(pp_pool_create_error(), "PROCPOOL_START_METHOD"));

  /* Chosen by the environment: the message says where it came from. */
  _putenv("PROCPOOL_START_METHOD=fork");
  o.context = PP_CONTEXT_DEFAULT;
  CU_ASSERT_EQUAL(pp_pool_create(&pool, &o), PP_ENOTSUP);
  CU_ASSERT_PTR_NULL(pool);
  CU_ASSERT(tu_contains(pp_pool_create_error(),
                        "fork context, chosen by PROCPOOL_START_METHOD,"));
  _putenv("PROCPOOL_START_METHOD=");
}

static void test_random_and_cpus(void) {
  unsigned char a[32], b[32];
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  CU_ASSERT_EQUAL(pp__random_bytes(a, sizeof a), PP_OK);
  CU_ASSERT_EQUAL(pp__random_bytes(b, sizeof b), PP_OK);
  CU_ASSERT(memcmp(a, b, sizeof a) != 0);
  CU_ASSERT_EQUAL(pp__random_bytes(a, 0), PP_OK);
  CU_ASSERT(pp__cpu_count() >= 1);
  CU_ASSERT(pp__current_rss() > 0);
}

/* What pp__cmdline_append writes, CommandLineToArgvW (and so the C
 * runtime) reads back unchanged. */
static void test_cmdline_quoting(void) {
  static const wchar_t *const args[] = {
      L"plain",      L"with space",      L"",        L"quote\"inside",
      L"trailing\\", L"trail space\\",   L"a\\\\b",  L"\\\\srv\\x y\\",
      L"\\\"",       L"tab\there",       L"\"\"",    L"--procpool-worker=x",
      L"a\\\\\"b c", L"ends in quote\"", L"\\\\\\\\"}; /* last: 4 slashes */
  enum { N = sizeof args / sizeof args[0] };
  wchar_t cmd[1024];
  wcscpy(cmd, L"prog.exe");
  for (int i = 0; i < N; i++)
    CU_ASSERT_EQUAL_FATAL(pp__cmdline_append(cmd, 1024, args[i]), PP_OK);
  int argc = 0;
  wchar_t **argv = CommandLineToArgvW(cmd, &argc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(argv);
  CU_ASSERT_EQUAL(argc, N + 1);
  for (int i = 0; i < N && i + 1 < argc; i++)
    CU_ASSERT(wcscmp(argv[i + 1], args[i]) == 0);
  LocalFree(argv);

  /* Split back by pp__cmdline_split() (pp_worker_main(0, NULL)'s reading
   * of the command line) alike, in UTF-8. */
  int n = 0;
  char **split = NULL;
  CU_ASSERT_EQUAL_FATAL(pp__cmdline_split(cmd, &n, &split), PP_OK);
  CU_ASSERT_EQUAL(n, N + 1);
  CU_ASSERT_STRING_EQUAL(split[0], "prog.exe");
  for (int i = 0; i < N && i + 1 < n; i++) {
    char narrow[64];
    size_t k = 0;
    for (; args[i][k] && k + 1 < sizeof narrow; k++)
      narrow[k] = (char)args[i][k];
    narrow[k] = '\0';
    CU_ASSERT_STRING_EQUAL(split[i + 1], narrow);
  }
  CU_ASSERT_PTR_NULL(split[n]);
  pp__cmdline_free(n, split);
  CU_ASSERT_EQUAL_FATAL(
      pp__cmdline_split(L"\"C:\\Program Files\\a b.exe\" caf\u00e9  \"x\"\"y\"",
                        &n, &split),
      PP_OK);
  CU_ASSERT_EQUAL(n, 3);
  if (n == 3) {
    CU_ASSERT_STRING_EQUAL(split[0], "C:\\Program Files\\a b.exe");
    CU_ASSERT_STRING_EQUAL(split[1], "caf\xc3\xa9");
    CU_ASSERT_STRING_EQUAL(split[2], "x\"y");
  }
  pp__cmdline_free(n, split);

  /* A path with spaces as argv[0]. */
  cmd[0] = L'\0';
  CU_ASSERT_EQUAL(pp__cmdline_append(cmd, 1024, L"C:\\Program Files\\a.exe"),
                  PP_OK);
  CU_ASSERT_EQUAL(pp__cmdline_append(cmd, 1024, L"x"), PP_OK);
  argv = CommandLineToArgvW(cmd, &argc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(argv);
  CU_ASSERT_EQUAL(argc, 2);
  CU_ASSERT(wcscmp(argv[0], L"C:\\Program Files\\a.exe") == 0);
  LocalFree(argv);

  /* Too long: refused, never truncated. */
  wchar_t small[8] = L"ab";
  CU_ASSERT_EQUAL(pp__cmdline_append(small, 8, L"with space"), PP_ETOOBIG);
  CU_ASSERT_EQUAL(pp__cmdline_append(NULL, 8, L"x"), PP_EINVAL);
}

static void test_pipe_names(void) {
  wchar_t a[PP__PIPE_NAME_MAX], b[PP__PIPE_NAME_MAX];
  CU_ASSERT_EQUAL(pp__pipe_name(a), PP_OK);
  CU_ASSERT_EQUAL(pp__pipe_name(b), PP_OK);
  CU_ASSERT(wcscmp(a, b) != 0);
  size_t plen = wcslen(PP__PIPE_PREFIX);
  CU_ASSERT(wcsncmp(a, PP__PIPE_PREFIX, plen) == 0);
  /* pid, dash, 128 random bits in hex */
  const wchar_t *dash = wcschr(a + plen, L'-');
  CU_ASSERT_PTR_NOT_NULL_FATAL(dash);
  CU_ASSERT_EQUAL(wcslen(dash + 1), 32);
  CU_ASSERT_EQUAL(wcstoul(a + plen, NULL, 10), GetCurrentProcessId());
}

/* The pipe's DACL has one entry: this process's user, allowed. */
static void test_pipe_dacl(void) {
  pp__pipe_security sec;
  CU_ASSERT_EQUAL_FATAL(pp__pipe_security_init(&sec, NULL), PP_OK);
  wchar_t name[PP__PIPE_NAME_MAX];
  HANDLE h = NULL;
  CU_ASSERT_EQUAL_FATAL(pp__pipe_name(name), PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp__pipe_create(name, &sec, &h, NULL), PP_OK);

  PACL dacl = NULL;
  PSECURITY_DESCRIPTOR sd = NULL;
  DWORD err = GetSecurityInfo(h, SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION,
                              NULL, NULL, &dacl, NULL, &sd);
  CU_ASSERT_EQUAL(err, ERROR_SUCCESS);
  CU_ASSERT_PTR_NOT_NULL(dacl);
  if (err == ERROR_SUCCESS && dacl) {
    CU_ASSERT_EQUAL(dacl->AceCount, 1);
    void *ace = NULL;
    CU_ASSERT_FATAL(GetAce(dacl, 0, &ace));
    ACCESS_ALLOWED_ACE *allowed = ace;
    CU_ASSERT_EQUAL(allowed->Header.AceType, ACCESS_ALLOWED_ACE_TYPE);
    PSID sid = ((TOKEN_USER *)sec.user)->User.Sid;
    CU_ASSERT(EqualSid((PSID)&allowed->SidStart, sid));
  }
  if (sd)
    LocalFree(sd);

  /* This user can connect. */
  HANDLE client = NULL;
  CU_ASSERT_EQUAL(pp__pipe_open(name, &client, NULL), PP_OK);
  if (client)
    CloseHandle(client);
  CloseHandle(h);
  pp__pipe_security_free(&sec);
}

/* A name that exists already is refused: nobody can create the pipe first
 * and wait for the worker to connect to it. */
static void test_first_pipe_instance(void) {
  if (pp__win32_is_wine()) {
    skip("Wine ignores FILE_FLAG_FIRST_PIPE_INSTANCE (its CreateNamedPipeW "
         "always opens or creates), so a second instance cannot be refused");
    return;
  }
  pp__pipe_security sec;
  CU_ASSERT_EQUAL_FATAL(pp__pipe_security_init(&sec, NULL), PP_OK);
  wchar_t name[PP__PIPE_NAME_MAX];
  HANDLE first = NULL, second = NULL;
  CU_ASSERT_EQUAL_FATAL(pp__pipe_name(name), PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp__pipe_create(name, &sec, &first, NULL), PP_OK);
  CU_ASSERT_NOT_EQUAL(pp__pipe_create(name, &sec, &second, NULL), PP_OK);
  if (second)
    CloseHandle(second);
  CloseHandle(first);
  pp__pipe_security_free(&sec);
}

/* The system's words: some text, without the period and line break
 * FormatMessage ends them with. */
static int plain_text(const char *text) {
  size_t n = strlen(text);
  return n > 0 && text[n - 1] != '.' && text[n - 1] != '\n' &&
         text[n - 1] != '\r';
}

/* 1 when `s` is well-formed UTF-8. */
static int valid_utf8(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    int more = *p < 0x80             ? 0
               : (*p & 0xE0) == 0xC0 ? 1
               : (*p & 0xF0) == 0xE0 ? 2
               : (*p & 0xF8) == 0xF0 ? 3
                                     : -1;
    if (more < 0)
      return 0;
    for (p++; more > 0; more--, p++)
      if ((*p & 0xC0) != 0x80)
        return 0;
  }
  return 1;
}

/* The system's texts read as one line of the library's messages: UTF-8,
 * no insert left as "%1" (ERROR_BAD_EXE_FORMAT's is "%1 is not a valid
 * Win32 application", Wine's "Bad EXE format for %1"), no line break, and
 * cut, where the room is short, between characters. */
static void test_error_texts(void) {
  static const DWORD codes[] = {ERROR_BAD_EXE_FORMAT,
                                ERROR_EXE_MACHINE_TYPE_MISMATCH,
                                ERROR_FILE_NOT_FOUND,
                                ERROR_ACCESS_DENIED,
                                ERROR_PIPE_BUSY,
                                ERROR_NOT_ENOUGH_MEMORY,
                                ERROR_INVALID_ORDINAL,
                                ERROR_INVALID_EXE_SIGNATURE,
                                0xDEAD0001u};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    char text[256];
    pp__win32_error_text(codes[i], text, sizeof text);
    if (strchr(text, '%') || strpbrk(text, "\r\n") || !valid_utf8(text))
      printf("\n    error %lu: \"%s\"\n", (unsigned long)codes[i], text);
    CU_ASSERT(plain_text(text));
    CU_ASSERT_PTR_NULL(strchr(text, '%'));
    CU_ASSERT_PTR_NULL(strpbrk(text, "\r\n"));
    CU_ASSERT(valid_utf8(text));
    CU_ASSERT(text[0] != ' ');
    for (size_t cap = 1; cap < 12; cap++) {
      char small[12];
      memset(small, 'x', sizeof small);
      pp__win32_error_text(codes[i], small, cap);
      CU_ASSERT(strlen(small) < cap);
      CU_ASSERT(valid_utf8(small));
      CU_ASSERT(strncmp(small, text, strlen(small)) == 0);
    }
  }
  char text[256];
  pp__win32_error_text(ERROR_BAD_EXE_FORMAT, text, sizeof text);
  CU_ASSERT(tu_contains(text, "the file") || tu_contains(text, "The file"));
}

/* A start that fails names the call and gives GetLastError() for the
 * message (pp__backend_start_error()): a pipe whose name is not one, and
 * a worker put into a "job" that is an event. */
static void test_failed_calls_described(void) {
  char text[128];
  pp__win32_error_text(ERROR_ACCESS_DENIED, text, sizeof text);
  CU_ASSERT(plain_text(text));
  pp__win32_error_text(0xDEAD0001u, text, sizeof text);
  CU_ASSERT(plain_text(text));

  pp__pipe_security sec;
  CU_ASSERT_EQUAL_FATAL(pp__pipe_security_init(&sec, NULL), PP_OK);
  HANDLE h = NULL;
  pp__win32_failure why = {NULL, 0};
  CU_ASSERT_NOT_EQUAL(pp__pipe_create(L"not a pipe", &sec, &h, &why), PP_OK);
  CU_ASSERT(why.call && strcmp(why.call, "CreateNamedPipeW") == 0);
  CU_ASSERT_NOT_EQUAL(why.err, 0);
  pp__pipe_security_free(&sec);

  wchar_t name[PP__PIPE_NAME_MAX];
  CU_ASSERT_EQUAL_FATAL(pp__pipe_name(name), PP_OK);
  HANDLE not_a_job = CreateEventW(NULL, TRUE, FALSE, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(not_a_job);
  HANDLE process = NULL;
  DWORD pid = 0;
  why.call = NULL;
  pp__spawn_plan plan;
  CU_ASSERT_EQUAL_FATAL(pp__spawn_plan_make(&plan, "00", NULL), PP_OK);
  CU_ASSERT_NOT_EQUAL(
      pp__process_spawn(&plan, name, not_a_job, &process, &pid, &why), PP_OK);
  pp__spawn_plan_free(&plan);
  CU_ASSERT(why.call && strcmp(why.call, "AssignProcessToJobObject") == 0);
  CU_ASSERT_NOT_EQUAL(why.err, 0);
  CU_ASSERT_PTR_NULL(process);
  CloseHandle(not_a_job);
}

/* A worker that cannot map the segment its parent offers closes the
 * mapping's handle (kept, it would hold the section's commit for the
 * worker's life), but leaves alone a handle that is no mapping: it may be
 * another of the process's own. */
static void test_shm_open_failure_closes_mapping(void) {
  char token[PP__SHM_TOKEN_MAX];
  pp__shm *shm = NULL;
  HANDLE m = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0,
                                65536, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  snprintf(token, sizeof token, "h%llx", (unsigned long long)(uintptr_t)m);
  CU_ASSERT_NOT_EQUAL(pp__shm_open(NULL, token, 1 << 20, &shm), PP_OK);
  CU_ASSERT_PTR_NULL(shm);
  DWORD flags = 0;
  CU_ASSERT(!GetHandleInformation(m, &flags)); /* closed */

  HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  snprintf(token, sizeof token, "h%llx", (unsigned long long)(uintptr_t)ev);
  CU_ASSERT_NOT_EQUAL(pp__shm_open(NULL, token, 65536, &shm), PP_OK);
  CU_ASSERT(GetHandleInformation(ev, &flags)); /* still open */
  CloseHandle(ev);

  m = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 65536,
                         NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  snprintf(token, sizeof token, "h%llx", (unsigned long long)(uintptr_t)m);
  CU_ASSERT_EQUAL(pp__shm_open(NULL, token, 65536, &shm), PP_OK);
  CU_ASSERT_PTR_NOT_NULL(shm);
  pp__shm_free(shm); /* closes m */
}

/* Runs this program with the worker argument for the pipe `name`, its
 * standard error into `err`; returns its exit code (or -1). */
static long run_as_worker(const wchar_t *name, char *err, size_t cap) {
  err[0] = '\0';
  wchar_t exe[MAX_PATH * 4];
  DWORD n = GetModuleFileNameW(NULL, exe, sizeof exe / sizeof exe[0]);
  if (n == 0 || n >= sizeof exe / sizeof exe[0])
    return -1;
  wchar_t cmd[MAX_PATH * 4 + 128], arg[128];
  cmd[0] = L'\0';
  wcscpy(arg, L"" PP__WORKER_ARG);
  wcscat(arg, name);
  if (pp__cmdline_append(cmd, sizeof cmd / sizeof cmd[0], exe) != PP_OK ||
      pp__cmdline_append(cmd, sizeof cmd / sizeof cmd[0], arg) != PP_OK)
    return -1;
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  HANDLE rd = NULL, wr = NULL;
  if (!CreatePipe(&rd, &wr, &sa, 1 << 16))
    return -1;
  SetHandleInformation(rd, HANDLE_FLAG_INHERIT, 0);
  STARTUPINFOW si;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.hStdOutput = GetStdHandle(STD_OUTPUT_HANDLE);
  si.hStdError = wr;
  PROCESS_INFORMATION pi;
  memset(&pi, 0, sizeof pi);
  BOOL made =
      CreateProcessW(exe, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi);
  CloseHandle(wr);
  if (!made) {
    CloseHandle(rd);
    return -1;
  }
  CloseHandle(pi.hThread);
  long code = -1;
  DWORD ec = 0;
  if (WaitForSingleObject(pi.hProcess, 60000) == WAIT_OBJECT_0 &&
      GetExitCodeProcess(pi.hProcess, &ec))
    code = (long)ec;
  else
    TerminateProcess(pi.hProcess, 1);
  CloseHandle(pi.hProcess);
  size_t len = 0;
  DWORD got = 0;
  while (len + 1 < cap &&
         ReadFile(rd, err + len, (DWORD)(cap - 1 - len), &got, NULL) && got)
    len += got;
  err[len] = '\0';
  CloseHandle(rd);
  return code;
}

/* A worker that cannot open its pipe exits with PP__EXIT_BAD_LAUNCH: in
 * silence when the pipe is gone (its parent gave it up: nothing went
 * wrong), with a line on standard error naming the call and the system's
 * reason otherwise (here: the pipe's one instance is taken). */
static void test_worker_cannot_open_pipe(void) {
  wchar_t name[PP__PIPE_NAME_MAX];
  char err[1024];
  CU_ASSERT_EQUAL_FATAL(pp__pipe_name(name), PP_OK);
  CU_ASSERT_EQUAL(run_as_worker(name, err, sizeof err), PP__EXIT_BAD_LAUNCH);
  CU_ASSERT_STRING_EQUAL(err, "");

  pp__pipe_security sec;
  CU_ASSERT_EQUAL_FATAL(pp__pipe_security_init(&sec, NULL), PP_OK);
  HANDLE server = NULL, client = NULL;
  CU_ASSERT_EQUAL_FATAL(pp__pipe_create(name, &sec, &server, NULL), PP_OK);
  CU_ASSERT_EQUAL_FATAL(pp__pipe_open(name, &client, NULL), PP_OK);
  CU_ASSERT_EQUAL(run_as_worker(name, err, sizeof err), PP__EXIT_BAD_LAUNCH);
  if (!tu_contains(err, "CreateFileW"))
    printf("\n    the worker said: \"%s\"\n", err);
  CU_ASSERT(tu_contains(err, "procpool worker: could not open its pipe"));
  CU_ASSERT(tu_contains(err, "CreateFileW: "));
  CU_ASSERT_PTR_NOT_NULL(strchr(err, '\n'));
  CloseHandle(client);
  CloseHandle(server);
  pp__pipe_security_free(&sec);
}

/* ---- the backend interface with spawned workers ---- */

#define NSLOTS 4
#define DEADLINE_MS 20000

typedef struct seen {
  long pid;
  int started, start_failed, closed, exited, after_exit;
  pp__exit exit;
} seen;

typedef struct harness {
  pp__backend *b;
  seen s[NSLOTS];
  int wakes;
} harness;

static void pump(harness *h, long ms) {
  pp__event ev[3];
  size_t n = 0;
  CU_ASSERT_EQUAL(pp__backend_wait(h->b, ms, ev, 3, &n), PP_OK);
  for (size_t k = 0; k < n; k++) {
    if (ev[k].type == PP__EV_WAKE) {
      h->wakes++;
      continue;
    }
    CU_ASSERT_FATAL(ev[k].slot < NSLOTS);
    seen *s = &h->s[ev[k].slot];
    if (s->exited)
      s->after_exit++;
    switch (ev[k].type) {
    case PP__EV_STARTED:
      CU_ASSERT(!s->started);
      CU_ASSERT(ev[k].pid > 0);
      s->started = 1;
      s->pid = ev[k].pid;
      break;
    case PP__EV_START_FAILED:
      s->start_failed = 1;
      break;
    case PP__EV_INPUT:
      CU_ASSERT(s->started);
      break;
    case PP__EV_CLOSED:
      CU_ASSERT(s->started && !s->closed);
      s->closed = 1;
      break;
    case PP__EV_EXITED:
      CU_ASSERT(s->started && !s->exited);
      CU_ASSERT_EQUAL(ev[k].pid, s->pid);
      s->exited = 1;
      s->exit = ev[k].exit;
      break;
    default:
      CU_FAIL("unexpected event");
    }
  }
}

#define PUMP_UNTIL(h, cond)                                                    \
  do {                                                                         \
    double until_ = tu_now() + DEADLINE_MS / 1000.0;                           \
    while (!(cond) && tu_now() < until_)                                       \
      pump((h), 100);                                                          \
  } while (0)

static DWORD WINAPI wake_thread(void *arg) {
  Sleep(50);
  pp__backend_wake(arg);
  return 0;
}

static void test_backend_interface(void) {
  harness h;
  memset(&h, 0, sizeof h);
  pp__backend_config cfg = {PP_CONTEXT_SPAWN,
                            NSLOTS,
                            dummy_main,
                            "00112233445566778899aabbccddeeff",
                            0,
                            0};
  CU_ASSERT_EQUAL_FATAL(pp__backend_create(&h.b, &cfg), PP_OK);
  CU_ASSERT_EQUAL(pp__backend_start(h.b, NSLOTS), PP_EINVAL);
  CU_ASSERT_EQUAL(pp__backend_kill(h.b, 0), PP_ESTATE);
  CU_ASSERT_EQUAL(pp__backend_hangup(h.b, 0), PP_ESTATE);
  CU_ASSERT_PTR_NULL(pp__backend_input(h.b, 0));

  for (unsigned i = 0; i < NSLOTS; i++)
    CU_ASSERT_EQUAL(pp__backend_start(h.b, i), PP_OK);
  CU_ASSERT_EQUAL(pp__backend_start(h.b, 0), PP_ESTATE);
  /* Slot 3 is hung up before its worker can have connected: it sees EOF
   * once it does, and exits 0. */
  CU_ASSERT_EQUAL(pp__backend_hangup(h.b, 3), PP_OK);
  PUMP_UNTIL(&h, h.s[0].started && h.s[1].started && h.s[2].started &&
                     h.s[3].started);
  for (unsigned i = 0; i < NSLOTS; i++) {
    CU_ASSERT(h.s[i].started);
    CU_ASSERT(h.s[i].pid != (long)GetCurrentProcessId());
    CU_ASSERT_PTR_NOT_NULL(pp__backend_input(h.b, i));
  }
  CU_ASSERT(h.s[0].pid != h.s[1].pid && h.s[1].pid != h.s[2].pid);

  /* Hangup: EOF ends the worker with code 0; no CLOSED for a hung-up
   * channel; sends are refused. */
  CU_ASSERT_EQUAL(pp__backend_hangup(h.b, 0), PP_OK);
  CU_ASSERT_EQUAL(pp__backend_send(h.b, 0, "x", 1), PP_EOF);
  /* Kill: TerminateProcess; CLOSED (the channel broke) and EXITED. */
  CU_ASSERT_EQUAL(pp__backend_kill(h.b, 1), PP_OK);
  PUMP_UNTIL(&h, h.s[0].exited && h.s[1].exited && h.s[3].exited);
  CU_ASSERT(h.s[0].exited && !h.s[0].closed);
  CU_ASSERT_EQUAL(h.s[0].exit.signaled, 0);
  CU_ASSERT_EQUAL(h.s[0].exit.code, 0);
  CU_ASSERT(h.s[1].exited && h.s[1].closed);
  CU_ASSERT_EQUAL((unsigned long)h.s[1].exit.code, PP__KILL_CODE);
  CU_ASSERT(h.s[3].exited && !h.s[3].closed);
  CU_ASSERT_EQUAL(h.s[3].exit.code, 0);
  CU_ASSERT_EQUAL(pp__backend_kill(h.b, 1), PP_OK); /* reaped: left alone */

  /* A wake-up from another thread. */
  HANDLE t = CreateThread(NULL, 0, wake_thread, h.b, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  PUMP_UNTIL(&h, h.wakes > 0);
  CU_ASSERT(h.wakes > 0);
  WaitForSingleObject(t, INFINITE);
  CloseHandle(t);

  /* Release and reuse: a new worker in slot 0. */
  long old = h.s[0].pid;
  pp__backend_release(h.b, 0);
  pp__backend_release(h.b, 1);
  CU_ASSERT_PTR_NULL(pp__backend_input(h.b, 0));
  CU_ASSERT(tu_pid_gone(h.s[1].pid));
  memset(&h.s[0], 0, sizeof h.s[0]);
  CU_ASSERT_EQUAL(pp__backend_start(h.b, 0), PP_OK);
  PUMP_UNTIL(&h, h.s[0].started);
  CU_ASSERT(h.s[0].started && h.s[0].pid != old);
  CU_ASSERT_EQUAL(pp__backend_hangup(h.b, 0), PP_OK);
  PUMP_UNTIL(&h, h.s[0].exited);
  CU_ASSERT_EQUAL(h.s[0].exit.code, 0);
  for (unsigned i = 0; i < NSLOTS; i++)
    CU_ASSERT_EQUAL(h.s[i].after_exit, 0);

  /* Destroy with slot 2 still running: it is killed and reaped. */
  long live = h.s[2].pid;
  CU_ASSERT(!tu_pid_gone(live));
  pp__backend_destroy(h.b);
  CU_ASSERT(tu_pid_gone(live));
}

/* ---- acceptance ---- */

/* More workers than WaitForMultipleObjects can watch (64): 70 workers, all
 * of them taking part in 1,000 tasks. */
static void test_70_workers(void) {
  enum { WORKERS = 70, TASKS = 1000 };
  pp_pool *pool = tu_pool(WORKERS);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  static long pids[2 * WORKERS];
  size_t n = wait_workers(pool, pids, 2 * WORKERS, WORKERS, 60.0);
  CU_ASSERT_EQUAL_FATAL(n, WORKERS);

  static int64_t ms[TASKS];
  static pp_bytes items[TASKS];
  for (int i = 0; i < TASKS; i++) {
    ms[i] = 5;
    items[i] = tu_i64(&ms[i]);
  }
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_map_async(pool, "win32_pid_after", items, TASKS, 1, NULL, &r), PP_OK);
  CU_ASSERT_EQUAL(pp_result_get(r, 120.0), PP_OK);
  CU_ASSERT_EQUAL(pp_result_count(r), TASKS);
  static long used[WORKERS];
  size_t nused = 0, right = 0;
  for (size_t i = 0; i < pp_result_count(r); i++) {
    int64_t pid = 0;
    if (pp_result_item_i64(r, i, &pid) != PP_OK || !listed(pids, n, (long)pid))
      continue;
    right++;
    if (!listed(used, nused, (long)pid) && nused < WORKERS)
      used[nused++] = (long)pid;
  }
  pp_result_free(r);
  CU_ASSERT_EQUAL(right, TASKS);
  /* Each task sleeps: the work spreads over (nearly) every worker, more
   * than 64 of them. */
  printf("\n    %lu of %d workers ran tasks\n", (unsigned long)nused, WORKERS);
  CU_ASSERT(nused > 64);
  CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
  CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
  pp_pool_destroy(pool);
  for (size_t i = 0; i < n; i++)
    CU_ASSERT(tu_pid_gone(pids[i]));
}

/* A worker ends itself in the middle of a task: exactly that task fails,
 * naming the worker and its exit or exception code; the pool goes on. */
static void check_death(int64_t how, const char *text1, const char *text2) {
  pp_pool *pool = tu_pool(2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  long pids[4];
  CU_ASSERT_EQUAL(wait_workers(pool, pids, 4, 2, TU_WAIT), 2);
  pp_value v = {0};
  pp_bytes arg = tu_i64(&how);
  CU_ASSERT_EQUAL(pp_apply(pool, "win32_die", &arg, 1, &v), PP_EWORKERDIED);
  CU_ASSERT(tu_contains(v.error, "'win32_die'"));
  CU_ASSERT(tu_contains(v.error, text1));
  if (text2)
    CU_ASSERT(tu_contains(v.error, text2));
  if (!tu_contains(v.error, text1))
    printf("\n    message: %s\n", v.error ? v.error : "(none)");
  pp_value_clear(&v);
  int64_t y = 0;
  pp_status st = tu_apply_i64(pool, "square", 12, &y);
  if (st != PP_OK)
    printf("\n    the next task: %s\n", pp_strerror(st));
  CU_ASSERT_EQUAL(st, PP_OK);
  CU_ASSERT_EQUAL(y, 144);
  pp_pool_destroy(pool);
}

static void test_death_access_violation(void) {
  check_death(WD_ACCESS_VIOLATION, "crashed with exception 0xC0000005",
              "access violation");
}

static void test_death_divide_by_zero(void) {
  check_death(WD_DIVIDE_BY_ZERO, "crashed with exception 0xC0000094",
              "integer division by zero");
}

static void test_death_raise(void) {
  check_death(WD_RAISE, "crashed with exception 0xE0000042", NULL);
}

static void test_death_exit_process(void) {
  check_death(WD_EXIT_PROCESS, "exited with code 43", NULL);
}

static void test_death_terminate_self(void) {
  check_death(WD_TERMINATE_SELF, "exited with code 77", NULL);
}

/* Another process terminates the worker while it runs a task. */
static void test_death_terminated(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t y = 0;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 3, &y), PP_OK); /* ready */
  long pid = 0;
  size_t n = 0;
  CU_ASSERT_EQUAL(pp_pool_worker_pids(pool, &pid, 1, &n), PP_OK);
  CU_ASSERT_EQUAL_FATAL(n, 1);
  /* The task says when it runs, so the worker dies in the middle of it. */
  char name[64];
  snprintf(name, sizeof name, "procpool-test-started-%lu",
           (unsigned long)GetCurrentProcessId());
  HANDLE started = CreateEventA(NULL, TRUE, FALSE, name);
  CU_ASSERT_PTR_NOT_NULL_FATAL(started);
  int64_t ms = 30000;
  pp_bytes args[2] = {{name, strlen(name)}, tu_i64(&ms)};
  pp_result *r = NULL;
  CU_ASSERT_EQUAL_FATAL(
      pp_apply_async(pool, "win32_signal_sleep", args, 2, NULL, &r), PP_OK);
  CU_ASSERT_EQUAL(WaitForSingleObject(started, 10000), WAIT_OBJECT_0);
  CloseHandle(started);
  HANDLE h = OpenProcess(PROCESS_TERMINATE, FALSE, (DWORD)pid);
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  CU_ASSERT(TerminateProcess(h, 42));
  CloseHandle(h);
  double t0 = tu_now();
  CU_ASSERT_EQUAL(pp_result_get(r, TU_WAIT), PP_EWORKERDIED);
  CU_ASSERT(tu_now() - t0 < 5.0);
  CU_ASSERT(tu_contains(pp_result_error(r), "exited with code 42"));
  pp_result_free(r);
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 5, &y), PP_OK);
  CU_ASSERT_EQUAL(y, 25);
  pp_pool_destroy(pool);
}

/* The key reaches the worker through its environment, never through its
 * command line (which other local users can read); the worker then takes
 * it out of its environment, the system's block and the C runtime's copy,
 * so that neither a task nor its own children find it. The
 * parent's environment never holds it. The pool working at all shows the
 * key arrived: without it the handshake refuses the worker. */
static void test_key_in_environment(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "win32_env", NULL, 0, &v), PP_OK);
  const char *text = v.data;
  const char *nl1 = text ? strchr(text, '\n') : NULL;
  const char *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
  CU_ASSERT_PTR_NOT_NULL_FATAL(nl2);
  size_t klen = (size_t)(nl1 - text);
  const char *cmd = nl2 + 1;
  CU_ASSERT(strstr(cmd, PP__WORKER_ARG) != NULL);
  CU_ASSERT(strstr(cmd, PP__KEY_ENV) == NULL);
  CU_ASSERT_EQUAL(nl2 - nl1 - 1, 0); /* gone from the block */
  CU_ASSERT_EQUAL(klen, 0);          /* and from the C runtime's copy */
  pp_value_clear(&v);
  CU_ASSERT_PTR_NULL(getenv(PP__KEY_ENV));
  CU_ASSERT_EQUAL(GetEnvironmentVariableA(PP__KEY_ENV, NULL, 0), 0);
  pp_pool_destroy(pool);
}

/* A worker's C runtime writes a failed assert() or abort()'s message to
 * standard error, never to a message box (the default of a GUI program,
 * which in a hidden worker would wait for a click for ever); and a worker
 * has a console exactly when its parent has one, so that console tools a
 * task runs open no window of their own. */
static void test_worker_reports_and_console(void) {
  pp_pool *pool = tu_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  int64_t got = -1;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "win32_reports", 0, &got), PP_OK);
  CU_ASSERT_EQUAL(got / 2, _OUT_TO_STDERR);
  CU_ASSERT_EQUAL(got % 2, pp__win32_has_console());
  pp_pool_destroy(pool);
}

/* ---- the owner of a pool is killed ---- */

int win32_owner_main(void) {
  pp_pool *pool = tu_pool(2);
  if (!pool)
    return 1;
  long pids[4] = {0, 0, 0, 0};
  size_t n = wait_workers(pool, pids, 4, 2, 30.0);
  printf("pids %lu %ld %ld\n", (unsigned long)n, pids[0], pids[1]);
  fflush(stdout);
  /* Waits to be killed; bounded, so that nothing lingers if the test
   * that started it went away. */
  Sleep(60000);
  pp_pool_destroy(pool);
  return 1;
}

/* Reads one line from `pipe` within `timeout` seconds. */
static int read_line(HANDLE pipe, char *buf, size_t cap, double timeout) {
  size_t len = 0;
  double t0 = tu_now();
  while (len + 1 < cap && tu_now() - t0 < timeout) {
    DWORD avail = 0;
    if (!PeekNamedPipe(pipe, NULL, 0, NULL, &avail, NULL))
      break;
    if (avail == 0) {
      tu_sleep_ms(10);
      continue;
    }
    DWORD got = 0;
    if (!ReadFile(pipe, buf + len, 1, &got, NULL) || got == 0)
      break;
    if (buf[len] == '\n') {
      buf[len] = '\0';
      return 1;
    }
    len++;
  }
  buf[len] = '\0';
  return 0;
}

static void test_owner_killed(void) {
  wchar_t exe[MAX_PATH * 4];
  DWORD n = GetModuleFileNameW(NULL, exe, sizeof exe / sizeof exe[0]);
  CU_ASSERT_FATAL(n > 0 && n < sizeof exe / sizeof exe[0]);
  wchar_t cmd[MAX_PATH * 4 + 64];
  cmd[0] = L'\0';
  CU_ASSERT_EQUAL_FATAL(
      pp__cmdline_append(cmd, sizeof cmd / sizeof cmd[0], exe), PP_OK);
  CU_ASSERT_EQUAL_FATAL(
      pp__cmdline_append(cmd, sizeof cmd / sizeof cmd[0], L"" WIN32_OWNER_ARG),
      PP_OK);

  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  HANDLE rd = NULL, wr = NULL;
  CU_ASSERT_FATAL(CreatePipe(&rd, &wr, &sa, 0));
  SetHandleInformation(rd, HANDLE_FLAG_INHERIT, 0);
  STARTUPINFOW si;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.hStdOutput = wr;
  si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  PROCESS_INFORMATION pi;
  memset(&pi, 0, sizeof pi);
  BOOL made =
      CreateProcessW(exe, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi);
  CloseHandle(wr);
  CU_ASSERT_FATAL(made);
  CloseHandle(pi.hThread);

  char line[128];
  int got = read_line(rd, line, sizeof line, 60.0);
  CU_ASSERT(got);
  unsigned long count = 0;
  long pids[2] = {0, 0};
  CU_ASSERT_EQUAL(sscanf(line, "pids %lu %ld %ld", &count, &pids[0], &pids[1]),
                  3);
  CU_ASSERT_EQUAL(count, 2);
  HANDLE workers[2] = {NULL, NULL};
  for (int i = 0; i < 2; i++) {
    if (pids[i] > 0)
      workers[i] = OpenProcess(SYNCHRONIZE, FALSE, (DWORD)pids[i]);
    CU_ASSERT_PTR_NOT_NULL(workers[i]);
  }
  /* Killed the hard way: no destructor, no pool_destroy runs. */
  CU_ASSERT(TerminateProcess(pi.hProcess, 9));
  CU_ASSERT_EQUAL(WaitForSingleObject(pi.hProcess, 10000), WAIT_OBJECT_0);
  CloseHandle(pi.hProcess);
  for (int i = 0; i < 2; i++) {
    if (!workers[i])
      continue;
    CU_ASSERT_EQUAL(WaitForSingleObject(workers[i], 10000), WAIT_OBJECT_0);
    CloseHandle(workers[i]);
  }
  CloseHandle(rd);
}

int pp_test_suite_win32(void) {
  static const tu_test tests[] = {
      {"exit codes and exceptions described", test_exit_describe},
      {"fork and forkserver: not supported; spawn is the default",
       test_contexts},
      {"CSPRNG, CPU count, resident memory", test_random_and_cpus},
      {"command-line quoting round-trips through CommandLineToArgvW and "
       "pp__cmdline_split",
       test_cmdline_quoting},
      {"pipe names: prefix, pid, 128 random bits", test_pipe_names},
      {"pipe DACL admits the current user only", test_pipe_dacl},
      {"FILE_FLAG_FIRST_PIPE_INSTANCE refuses a taken name",
       test_first_pipe_instance},
      {"the system's error texts: UTF-8, one line, no \"%1\" inserts",
       test_error_texts},
      {"a failed start names its call and the system's reason",
       test_failed_calls_described},
      {"a segment that cannot be mapped: its mapping is closed, another "
       "handle is not",
       test_shm_open_failure_closes_mapping},
      {"a worker that cannot open its pipe exits 120, saying why unless the "
       "pipe is gone",
       test_worker_cannot_open_pipe},
      {"backend: start, hangup, kill, wake, release, reuse, destroy",
       test_backend_interface},
      {"70 workers run 1,000 tasks (beyond the 64-handle wait limit)",
       test_70_workers},
      {"worker access violation: task fails with 0xC0000005, pool goes on",
       test_death_access_violation},
      {"worker divides by zero: task fails with 0xC0000094",
       test_death_divide_by_zero},
      {"worker raises a custom exception: its code is reported",
       test_death_raise},
      {"worker calls ExitProcess(43): task fails with code 43",
       test_death_exit_process},
      {"worker terminates itself with 77: task fails with code 77",
       test_death_terminate_self},
      {"worker terminated by another process: task fails with its code",
       test_death_terminated},
      {"the key travels in the environment, not the command line, and is "
       "dropped",
       test_key_in_environment},
      {"a worker reports to standard error, and has a console when its "
       "parent has",
       test_worker_reports_and_console},
      {"killing the pool's owner leaves no worker behind (job object)",
       test_owner_killed},
  };
  return tu_add_suite("win32", tests, TU_NTESTS(tests));
}

#endif /* _WIN32 */
