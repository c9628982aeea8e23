/* Small Windows helpers: error mapping, Wine detection, exit descriptions,
 * the CPU count and the CSPRNG. */
#include "win32.h"

#include <bcrypt.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

/* MSVC's C has its own word for a thread's variable. */
#ifdef _MSC_VER
#define PP__THREAD_LOCAL __declspec(thread)
#else
#define PP__THREAD_LOCAL _Thread_local
#endif

static PP__THREAD_LOCAL char thread_message[PP__THREAD_MESSAGE];

char *pp__thread_message(void) { return thread_message; }

void pp__apr_fork_guard(void) {} /* no fork here */

static PP__THREAD_LOCAL pp__thread_errors thread_errors;

pp__thread_errors *pp__errors_of_thread(void) { return &thread_errors; }

pp_status pp__win32_status(DWORD err) {
  switch (err) {
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
  case ERROR_NO_SYSTEM_RESOURCES:
  case ERROR_COMMITMENT_LIMIT:
    return PP_ENOMEM;
  default:
    return PP_ESYSTEM;
  }
}

pp_status pp__win32_fail(pp__win32_failure *why, const char *call, DWORD err) {
  if (why) {
    why->call = call;
    why->err = err;
  }
  return pp__win32_status(err);
}

/* What stands for an insert ("%1") of the system's text, which names
 * something the caller passed (a file, as a rule): the message is read
 * without its arguments. */
static const wchar_t insert_word[] = L"the file";

/* Copies the system's text `w` to `out` as one line of a message: each
 * insert ("%1", "%2!s!") becomes insert_word (capitalized where it starts
 * the text), "%%" a percent sign, line breaks ("%n" too) a space, "%0"
 * ends it; the trailing period and spaces go. Returns the new length, at most
 * `cap` - 1 wide characters. */
static size_t plain_words(const wchar_t *w, wchar_t *out, size_t cap) {
  size_t n = 0;
  size_t word = wcslen(insert_word);
  for (const wchar_t *p = w; *p && n + 1 < cap;) {
    if (p[0] == L'%' && p[1] == L'0')
      break; /* the end of the text, without a line break */
    if (p[0] == L'%' && p[1] >= L'1' && p[1] <= L'9') {
      p += 2;
      while (*p >= L'0' && *p <= L'9')
        p++;
      if (*p == L'!') { /* a printf-style format: "%1!d!" */
        const wchar_t *close = wcschr(p + 1, L'!');
        p = close ? close + 1 : p + wcslen(p);
      }
      int first = n == 0;
      for (size_t i = 0; i < word && n + 1 < cap; i++)
        out[n++] = insert_word[i];
      if (first && n > 0)
        out[0] = (wchar_t)towupper(out[0]);
      continue;
    }
    wchar_t c = *p++;
    if (c == L'%' && (*p == L'%' || *p == L'n' || *p == L'.' || *p == L'!'))
      c = *p++ == L'n' ? L' ' : p[-1];
    if (c == L'\r' || c == L'\n' || c == L'\t')
      c = L' ';
    if (c == L' ' && (n == 0 || out[n - 1] == L' '))
      continue; /* one space between words, none first */
    out[n++] = c;
  }
  /* The system's sentence ends with a period and a line break. */
  while (n && (out[n - 1] == L' ' || out[n - 1] == L'.'))
    n--;
  out[n] = L'\0';
  return n;
}

/* In UTF-8, like every text of the library: FormatMessageA would give the
 * ANSI code page's bytes. */
void pp__win32_error_text(DWORD err, char *buf, size_t cap) {
  if (!buf || !cap)
    return;
  wchar_t raw[512], text[512];
  DWORD got =
      FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                     NULL, err, 0, raw, sizeof raw / sizeof raw[0], NULL);
  size_t n = 0;
  if (got > 0 && got < sizeof raw / sizeof raw[0]) {
    raw[got] = L'\0';
    n = plain_words(raw, text, sizeof text / sizeof text[0]);
  }
  char utf8[3 * sizeof text / sizeof text[0] + 1];
  int len = n ? WideCharToMultiByte(CP_UTF8, 0, text, (int)n, utf8,
                                    (int)sizeof utf8 - 1, NULL, NULL)
              : 0;
  if (len <= 0) {
    snprintf(buf, cap, "system error %lu", (unsigned long)err);
    return;
  }
  /* Cut where it fits, never inside a character. */
  size_t keep = (size_t)len < cap ? (size_t)len : cap - 1;
  if (keep < (size_t)len)
    while (keep > 0 && ((unsigned char)utf8[keep] & 0xC0) == 0x80)
      keep--;
  memcpy(buf, utf8, keep);
  buf[keep] = '\0';
}

int pp__win32_has_console(void) {
  /* A console without a window (CREATE_NO_WINDOW) has no window to find,
   * but it lists this process. */
  DWORD pid;
  return GetConsoleWindow() != NULL || GetConsoleProcessList(&pid, 1) != 0;
}

int pp__win32_is_wine(void) {
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  return ntdll && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

/* NTSTATUS codes a crashed process commonly ends with (its exit code is
 * the code of the exception that ended it). */
static const struct {
  unsigned long code;
  const char *text;
} exceptions[] = {
    {0x80000002ul, "datatype misalignment"},
    {0x80000003ul, "breakpoint"},
    {0x80000004ul, "single step"},
    {0xC0000005ul, "access violation"},
    {0xC0000006ul, "in-page error"},
    {0xC0000008ul, "invalid handle"},
    {0xC0000017ul, "out of memory"},
    {0xC000001Dul, "illegal instruction"},
    {0xC0000025ul, "noncontinuable exception"},
    {0xC0000026ul, "invalid disposition"},
    {0xC000008Cul, "array bounds exceeded"},
    {0xC000008Dul, "floating-point denormal operand"},
    {0xC000008Eul, "floating-point division by zero"},
    {0xC000008Ful, "floating-point inexact result"},
    {0xC0000090ul, "floating-point invalid operation"},
    {0xC0000091ul, "floating-point overflow"},
    {0xC0000092ul, "floating-point stack check"},
    {0xC0000093ul, "floating-point underflow"},
    {0xC0000094ul, "integer division by zero"},
    {0xC0000095ul, "integer overflow"},
    {0xC0000096ul, "privileged instruction"},
    {0xC00000FDul, "stack overflow"},
    {0xC0000135ul, "a DLL was not found"},
    {0xC0000139ul, "an entry point was not found"},
    {0xC000013Aul, "Ctrl+C"},
    {0xC0000142ul, "a DLL failed to initialize"},
    {0xC0000374ul, "heap corruption"},
    {0xC0000409ul, "stack buffer overrun or fail-fast"},
    {0xC0000417ul, "invalid C runtime parameter"},
    {0xE06D7363ul, "unhandled C++ exception"},
};

/* An exit code is read as an exception when it is a valid NTSTATUS of
 * warning or error severity (the reserved bit clear): exit(-1), 0xFFFFFFFF,
 * is not one. */
static int is_exception(unsigned long u) {
  unsigned long top = u >> 28;
  return top == 0x8 || top == 0xC || top == 0xE;
}

int pp__exit_from_outside(const pp__exit *how) {
  (void)how; /* TerminateProcess() leaves whatever code its caller chose */
  return 0;
}

void pp__exit_describe(const pp__exit *how, char *buf, size_t cap) {
  if (!buf || cap == 0)
    return;
  if (!how) {
    snprintf(buf, cap, "ended for an unknown reason");
    return;
  }
  if (how->signaled) { /* not on Windows; described all the same */
    snprintf(buf, cap, "was killed by signal %ld", how->code);
    return;
  }
  unsigned long u = (unsigned long)how->code & 0xFFFFFFFFul;
  if (u == PP__KILL_CODE) {
    snprintf(buf, cap, "was terminated (exit code 0x%lX)", u);
    return;
  }
  if (is_exception(u)) {
    for (size_t i = 0; i < sizeof exceptions / sizeof exceptions[0]; i++) {
      if (exceptions[i].code == u) {
        snprintf(buf, cap, "crashed with exception 0x%08lX (%s)", u,
                 exceptions[i].text);
        return;
      }
    }
    snprintf(buf, cap, "crashed with exception 0x%08lX", u);
    return;
  }
  /* Exit codes are 32 bits: exit(-1) reads back as -1. */
  long code = u > 0x7FFFFFFFul ? -(long)(0xFFFFFFFFul - u) - 1 : (long)u;
  snprintf(buf, cap, "exited with code %ld", code);
}

long pp__process_id(void) { return (long)GetCurrentProcessId(); }

/* The C runtime keeps its own copies of the environment, read once at
 * start-up: the narrow one that getenv() and _environ read, and a wide one
 * once anything asked for it; changing the system's block alone leaves
 * both. _putenv_s() with an empty value removes the variable from the
 * narrow copy and the system's block, and is documented to update the wide
 * copy if there is one; that copy is checked all the same, C runtimes
 * (msvcrt, the UCRT, Wine's) being many. */
void pp__env_remove(const char *name) {
  if (!name || !*name)
    return;
  _putenv_s(name, "");
  wchar_t wide[128];
  size_t n = strlen(name);
  if (n < sizeof wide / sizeof wide[0]) {
    for (size_t i = 0; i <= n; i++) /* variable names here are ASCII */
      wide[i] = (wchar_t)(unsigned char)name[i];
    if (_wgetenv(wide))
      _wputenv_s(wide, L"");
  }
  SetEnvironmentVariableA(name, NULL);
}

int pp__cpu_count(void) {
  /* Every processor group; GetSystemInfo sees only the current group. */
  DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  if (n == 0) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    n = si.dwNumberOfProcessors;
  }
  if (n < 1)
    return 1;
  return n > INT_MAX ? INT_MAX : (int)n;
}

apr_time_t pp__clock_us(void) {
  static LARGE_INTEGER hz; /* fixed at boot: a race writes the same */
  LARGE_INTEGER now;
  if (!hz.QuadPart)
    QueryPerformanceFrequency(&hz);
  QueryPerformanceCounter(&now);
  /* In two parts: ticks times a million would overflow within months. */
  return (apr_time_t)(now.QuadPart / hz.QuadPart) * 1000000 +
         (apr_time_t)(now.QuadPart % hz.QuadPart * 1000000 / hz.QuadPart);
}

unsigned long pp__process_generation(void) { return 0; }

/* Windows has no signal masks: a console event runs its handler on a
 * thread of its own anyway. */
apr_status_t pp__thread_create(apr_thread_t **thread, apr_thread_start_t main,
                               void *data, apr_pool_t *mem) {
  return apr_thread_create(thread, NULL, main, data, mem);
}

/* The key and the pipe names must be unguessable by other local users: the
 * system's preferred CSPRNG. */
pp_status pp__random_bytes(void *buf, size_t len) {
  if (!buf && len)
    return PP_EINVAL;
  unsigned char *p = buf;
  while (len > 0) {
    ULONG n = len > 0x10000000u ? 0x10000000u : (ULONG)len;
    if (!BCRYPT_SUCCESS(
            BCryptGenRandom(NULL, p, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
      return PP_ESYSTEM;
    p += n;
    len -= n;
  }
  return PP_OK;
}

/* Windows has no call that commits and maps a private range in one go
 * (PrefetchVirtualMemory reads file-backed pages): the copy faults pages in
 * as it goes. */
void pp__prefault(void *p, size_t len) {
  (void)p;
  (void)len;
}

/* Large pages on Windows need a privilege a program rarely holds
 * (SeLockMemoryPrivilege): a plain allocation. */
void *pp__alloc_fresh(size_t len) { return malloc(len); }
