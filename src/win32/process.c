/* Worker processes: the job object, the command line, the environment
 * block with the key, and CreateProcessW. */
#include "win32.h"

#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <wctype.h>

pp_status pp__job_create(HANDLE *out, pp__win32_failure *why) {
  if (!out)
    return PP_EINVAL;
  HANDLE job = CreateJobObjectW(NULL, NULL);
  if (!job)
    return pp__win32_fail(why, "CreateJobObjectW", GetLastError());
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION info;
  memset(&info, 0, sizeof info);
  info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &info,
                               sizeof info)) {
    DWORD err = GetLastError();
    CloseHandle(job);
    return pp__win32_fail(why, "SetInformationJobObject", err);
  }
  *out = job;
  return PP_OK;
}

/* ---- the command line ---- */

/* Appends `n` copies of `c`; 0, or -1 when `cmd` is full. */
static int put(wchar_t *cmd, size_t cap, size_t *len, wchar_t c, size_t n) {
  if (n >= cap - *len)
    return -1;
  for (size_t i = 0; i < n; i++)
    cmd[(*len)++] = c;
  cmd[*len] = L'\0';
  return 0;
}

/* The rules of CommandLineToArgvW and the C runtime: inside quotes,
 * backslashes are literal unless they precede a quote, where 2n of them
 * stand for n, and 2n+1 for n and a literal quote. */
pp_status pp__cmdline_append(wchar_t *cmd, size_t cap, const wchar_t *arg) {
  if (!cmd || cap == 0 || !arg)
    return PP_EINVAL;
  size_t len = wcslen(cmd);
  if (len >= cap)
    return PP_EINVAL;
  if (len > 0 && put(cmd, cap, &len, L' ', 1))
    return PP_ETOOBIG;
  int quote = *arg == L'\0' || wcspbrk(arg, L" \t\n\v\"") != NULL;
  if (!quote) {
    size_t n = wcslen(arg);
    if (n >= cap - len)
      return PP_ETOOBIG;
    wmemcpy(cmd + len, arg, n + 1);
    return PP_OK;
  }
  if (put(cmd, cap, &len, L'"', 1))
    return PP_ETOOBIG;
  for (const wchar_t *p = arg;; p++) {
    size_t slashes = 0;
    while (*p == L'\\') {
      p++;
      slashes++;
    }
    if (*p == L'\0') {
      /* Before the closing quote: every backslash doubled. */
      if (put(cmd, cap, &len, L'\\', 2 * slashes) ||
          put(cmd, cap, &len, L'"', 1))
        return PP_ETOOBIG;
      return PP_OK;
    }
    if (*p == L'"') {
      if (put(cmd, cap, &len, L'\\', 2 * slashes + 1) ||
          put(cmd, cap, &len, L'"', 1))
        return PP_ETOOBIG;
    } else if (put(cmd, cap, &len, L'\\', slashes) ||
               put(cmd, cap, &len, *p, 1)) {
      return PP_ETOOBIG;
    }
  }
}

/* The next argument of `*p` into `out` (room for wcslen(*p) + 1), by the C
 * runtime's rules: outside quotes a space or tab ends it; 2n backslashes
 * before a quote stand for n and the quote opens or closes, 2n+1 for n and
 * a literal quote; inside quotes `""` is a literal quote. argv[0] has its
 * own rule: up to the next quote, or the next space, backslashes literal.
 * *p moves past it. */
static void next_arg(const wchar_t **p, wchar_t *out, int first) {
  const wchar_t *s = *p;
  size_t n = 0;
  if (first) {
    if (*s == L'"') {
      for (s++; *s && *s != L'"'; s++)
        out[n++] = *s;
      if (*s)
        s++;
    } else {
      for (; *s && *s != L' ' && *s != L'\t'; s++)
        out[n++] = *s;
    }
  } else {
    int quoted = 0;
    while (*s && (quoted || (*s != L' ' && *s != L'\t'))) {
      size_t slashes = 0;
      while (*s == L'\\') {
        s++;
        slashes++;
      }
      if (*s == L'"') {
        for (size_t i = 0; i < slashes / 2; i++)
          out[n++] = L'\\';
        if (slashes % 2) {
          out[n++] = L'"';
        } else if (quoted && s[1] == L'"') {
          out[n++] = L'"';
          s++;
        } else {
          quoted = !quoted;
        }
        s++;
      } else {
        for (size_t i = 0; i < slashes; i++)
          out[n++] = L'\\';
        if (*s && (quoted || (*s != L' ' && *s != L'\t')))
          out[n++] = *s++;
      }
    }
  }
  out[n] = L'\0';
  while (*s == L' ' || *s == L'\t')
    s++;
  *p = s;
}

/* `w` as UTF-8 (malloc'd), or NULL. */
static char *to_utf8(const wchar_t *w) {
  int size = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
  char *s = size > 0 ? malloc((size_t)size) : NULL;
  if (s &&
      WideCharToMultiByte(CP_UTF8, 0, w, -1, s, size, NULL, NULL) != size) {
    free(s);
    s = NULL;
  }
  return s;
}

pp_status pp__cmdline_split(const wchar_t *cmd, int *argc, char ***argv) {
  if (!cmd || !argc || !argv)
    return PP_EINVAL;
  size_t len = wcslen(cmd);
  /* At most one argument per two characters, and argv[0]. */
  size_t room = len / 2 + 2;
  char **list = calloc(room + 1, sizeof *list);
  wchar_t *arg = malloc((len + 1) * sizeof *arg);
  int n = 0;
  pp_status st = list && arg ? PP_OK : PP_ENOMEM;
  const wchar_t *p = cmd;
  while (st == PP_OK && (n == 0 || *p) && (size_t)n < room) {
    next_arg(&p, arg, n == 0);
    list[n] = to_utf8(arg);
    if (!list[n++])
      st = PP_ENOMEM;
  }
  free(arg);
  if (st != PP_OK) {
    pp__cmdline_free(n, list);
    return st;
  }
  *argc = n;
  *argv = list;
  return PP_OK;
}

void pp__cmdline_free(int argc, char **argv) {
  for (int i = 0; argv && i < argc; i++)
    free(argv[i]);
  free(argv);
}

/* This executable's full path (malloc'd), however long; NULL with
 * *err set (0: out of memory). */
static wchar_t *self_path(DWORD *err) {
  *err = ERROR_INSUFFICIENT_BUFFER; /* longer than any path can be */
  for (DWORD cap = MAX_PATH; cap <= 32768; cap *= 2) {
    wchar_t *path = malloc(cap * sizeof *path);
    if (!path) {
      *err = 0;
      return NULL;
    }
    DWORD n = GetModuleFileNameW(NULL, path, cap);
    if (n > 0 && n < cap)
      return path;
    if (n == 0) {
      *err = GetLastError();
      free(path);
      return NULL;
    }
    free(path);
  }
  return NULL;
}

/* ---- the environment ---- */

/* 1 when the block entry `entry` ("NAME=value") is named `name`
 * (variable names are case-insensitive on Windows). */
static int entry_named(const wchar_t *entry, const wchar_t *name) {
  size_t n = wcslen(name);
  return _wcsnicmp(entry, name, n) == 0 && entry[n] == L'=';
}

/* Compares entry names as the system sorts them (case-insensitively). */
static int entry_cmp(const wchar_t *a, const wchar_t *b) {
  for (;; a++, b++) {
    wchar_t x = *a == L'=' ? L'\0' : towupper(*a);
    wchar_t y = *b == L'=' ? L'\0' : towupper(*b);
    if (x != y || x == L'\0')
      return x < y ? -1 : x > y;
  }
}

/* The parent's environment block with PP__KEY_ENV set to `key` (dropped
 * when `key` is NULL), kept in the sorted order the system expects. The
 * worker alone reads it: it is never on the command line, which any local
 * user can read. */
static wchar_t *env_block(const char *key, DWORD *err) {
  static const wchar_t name[] = L"" PP__KEY_ENV;
  *err = 0;
  wchar_t *parent = GetEnvironmentStringsW();
  if (!parent) {
    *err = GetLastError();
    return NULL;
  }
  size_t total = 0;
  for (const wchar_t *e = parent; *e; e += wcslen(e) + 1)
    total += wcslen(e) + 1;
  size_t keylen = key ? strlen(key) : 0;
  size_t namelen = wcslen(name);
  wchar_t *block = malloc((total + namelen + keylen + 3) * sizeof *block);
  if (!block) {
    FreeEnvironmentStringsW(parent);
    return NULL;
  }
  wchar_t *out = block;
  int placed = key == NULL;
  for (const wchar_t *e = parent; *e; e += wcslen(e) + 1) {
    if (entry_named(e, name))
      continue;
    /* Entries such as "=C:=C:\dir" come first and stay first. */
    if (!placed && *e != L'=' && entry_cmp(name, e) < 0) {
      wmemcpy(out, name, namelen);
      out += namelen;
      *out++ = L'=';
      for (size_t i = 0; i < keylen; i++)
        *out++ = (wchar_t)(unsigned char)key[i];
      *out++ = L'\0';
      placed = 1;
    }
    size_t n = wcslen(e) + 1;
    wmemcpy(out, e, n);
    out += n;
  }
  if (!placed) {
    wmemcpy(out, name, namelen);
    out += namelen;
    *out++ = L'=';
    for (size_t i = 0; i < keylen; i++)
      *out++ = (wchar_t)(unsigned char)key[i];
    *out++ = L'\0';
  }
  *out = L'\0';
  FreeEnvironmentStringsW(parent);
  return block;
}

/* ---- standard streams ---- */

/* The worker shares the parent's standard output and error, as a forked
 * worker does on POSIX, and reads its input from NUL, as Python's workers
 * do (os.devnull): a task that reads gets EOF, not the program's input.
 * It inherits nothing else: inheritable handles are listed in
 * PROC_THREAD_ATTRIBUTE_HANDLE_LIST, so handles other threads make
 * inheritable meanwhile stay out. */
typedef struct stdio_set {
  HANDLE h[3];
  HANDLE list[3];
  DWORD nlist;
} stdio_set;

static void stdio_get(stdio_set *s) {
  static const DWORD which[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
                                 STD_ERROR_HANDLE};
  memset(s, 0, sizeof *s);
  SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
  HANDLE null =
      CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE,
                  &inherit, OPEN_EXISTING, 0, NULL);
  if (null != INVALID_HANDLE_VALUE) {
    s->h[0] = null;
    s->list[s->nlist++] = null;
  }
  HANDLE self = GetCurrentProcess();
  for (int i = 1; i < 3; i++) {
    HANDLE h = GetStdHandle(which[i]);
    if (h == NULL || h == INVALID_HANDLE_VALUE)
      continue;
    /* The same handle twice (stdout and stderr to one pipe) is listed
     * once, as the list requires. */
    for (int j = 1; j < i; j++) {
      if (GetStdHandle(which[j]) == h && s->h[j]) {
        s->h[i] = s->h[j];
        break;
      }
    }
    if (s->h[i])
      continue;
    HANDLE dup;
    if (DuplicateHandle(self, h, self, &dup, 0, TRUE, DUPLICATE_SAME_ACCESS)) {
      s->h[i] = dup;
      s->list[s->nlist++] = dup;
    }
  }
}

static void stdio_free(stdio_set *s) {
  for (DWORD i = 0; i < s->nlist; i++)
    CloseHandle(s->list[i]);
  s->nlist = 0;
}

/* ---- the plan ---- */

/* The current directory (malloc'd), or NULL with *err set (0: out of
 * memory). */
static wchar_t *current_directory(DWORD *err) {
  *err = 0;
  DWORD need = GetCurrentDirectoryW(0, NULL);
  if (!need) {
    *err = GetLastError();
    return NULL;
  }
  wchar_t *dir = malloc(need * sizeof *dir);
  if (dir) {
    DWORD n = GetCurrentDirectoryW(need, dir);
    if (n == 0 || n >= need) {
      /* Changed by another thread meanwhile, to a longer one. */
      *err = n ? ERROR_INSUFFICIENT_BUFFER : GetLastError();
      free(dir);
      dir = NULL;
    }
  }
  return dir;
}

pp_status pp__spawn_plan_make(pp__spawn_plan *plan, const char *key,
                              pp__win32_failure *why) {
  if (!plan)
    return PP_EINVAL;
  memset(plan, 0, sizeof *plan);
  DWORD err = 0;
  pp_status st = PP_OK;
  /* Without its own path this program cannot start copies of itself: the
   * spawn context is not available, as where an executable cannot be
   * located on POSIX. */
  if (!(plan->exe = self_path(&err))) {
    st = err ? PP_ENOTSUP : PP_ENOMEM;
    if (err)
      pp__win32_fail(why, "GetModuleFileNameW", err);
  } else if (!(plan->env = env_block(key, &err)))
    st = err ? pp__win32_fail(why, "GetEnvironmentStringsW", err) : PP_ENOMEM;
  else if (!(plan->cwd = current_directory(&err)))
    st = err ? pp__win32_fail(why, "GetCurrentDirectoryW", err) : PP_ENOMEM;
  if (st != PP_OK)
    pp__spawn_plan_free(plan);
  return st;
}

void pp__spawn_plan_free(pp__spawn_plan *plan) {
  if (!plan)
    return;
  free(plan->exe);
  free(plan->env);
  free(plan->cwd);
  plan->exe = plan->env = plan->cwd = NULL;
}

/* ---- CreateProcessW ---- */

pp_status pp__process_spawn(const pp__spawn_plan *plan,
                            const wchar_t *pipe_name, HANDLE job,
                            HANDLE *process, DWORD *pid,
                            pp__win32_failure *why) {
  if (!plan || !plan->exe || !pipe_name || !job || !process || !pid)
    return PP_EINVAL;
  pp_status st = PP_ENOMEM;
  const wchar_t *exe = plan->exe;
  size_t cap = wcslen(exe) + wcslen(pipe_name) + 64;
  wchar_t *cmd = malloc(cap * sizeof *cmd);
  wchar_t *arg = malloc(cap * sizeof *arg);
  LPPROC_THREAD_ATTRIBUTE_LIST attrs = NULL;
  stdio_set io;
  memset(&io, 0, sizeof io);
  if (!cmd || !arg)
    goto done;
  cmd[0] = L'\0';
  /* argv[0] is parsed by its own rule (up to the next quote): a path cannot
   * hold a quote, so quoting it whole is enough. */
  st = pp__cmdline_append(cmd, cap, exe);
  if (st == PP_OK) {
    wcscpy(arg, L"" PP__WORKER_ARG);
    wcscat(arg, pipe_name);
    st = pp__cmdline_append(cmd, cap, arg);
  }
  if (st != PP_OK)
    goto done;

  stdio_get(&io);
  STARTUPINFOEXW si;
  memset(&si, 0, sizeof si);
  si.StartupInfo.cb = sizeof si;
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = io.h[0];
  si.StartupInfo.hStdOutput = io.h[1];
  si.StartupInfo.hStdError = io.h[2];
  DWORD flags = CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT;
  /* A worker of a program without a console (a GUI program, a service)
   * gets no console at all: not a window popping up, and not a hidden
   * console either, whose host process (conhost.exe) would be one more
   * process holding the standard handles it inherited, such as a CI
   * runner's output pipe, for as long as it lingers. A program with a
   * console shares it with its workers, also one without a window
   * (started with CREATE_NO_WINDOW), so that a console tool a task runs
   * shares it too instead of opening a window of its own. The worker's
   * standard handles are the ones passed above. */
  if (!pp__win32_has_console())
    flags |= DETACHED_PROCESS;
  if (io.nlist > 0) {
    SIZE_T size = 0;
    InitializeProcThreadAttributeList(NULL, 1, 0, &size);
    attrs = malloc(size);
    if (!attrs) {
      st = PP_ENOMEM;
      goto done;
    }
    if (!InitializeProcThreadAttributeList(attrs, 1, 0, &size)) {
      st = pp__win32_fail(why, "InitializeProcThreadAttributeList",
                          GetLastError());
      free(attrs);
      attrs = NULL;
      goto done;
    }
    if (!UpdateProcThreadAttribute(attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
                                   io.list, io.nlist * sizeof(HANDLE), NULL,
                                   NULL)) {
      st = pp__win32_fail(why, "UpdateProcThreadAttribute", GetLastError());
      goto done;
    }
    si.lpAttributeList = attrs;
    flags |= EXTENDED_STARTUPINFO_PRESENT;
  }

  /* Suspended until it is in the job: a worker never runs outside it, so
   * neither it nor anything it starts can outlive the parent. */
  PROCESS_INFORMATION pi;
  memset(&pi, 0, sizeof pi);
  if (!CreateProcessW(exe, cmd, NULL, NULL, io.nlist > 0, flags, plan->env,
                      plan->cwd, &si.StartupInfo, &pi)) {
    DWORD err = GetLastError();
    /* Which of its inputs the system refused, where it says so: the
     * directory is the pool's creation's, gone since (a drive or share
     * removed), or the executable is not where it was. */
    const char *call =
        err == ERROR_DIRECTORY
            ? "CreateProcessW in the directory the pool was created in"
        : err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND
            ? "CreateProcessW of the program's executable"
            : "CreateProcessW";
    st = pp__win32_fail(why, call, err);
    goto done;
  }
  if (!AssignProcessToJobObject(job, pi.hProcess)) {
    st = pp__win32_fail(why, "AssignProcessToJobObject", GetLastError());
    TerminateProcess(pi.hProcess, PP__KILL_CODE);
    WaitForSingleObject(pi.hProcess, INFINITE);
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    goto done;
  }
  ResumeThread(pi.hThread);
  CloseHandle(pi.hThread);
  *process = pi.hProcess;
  *pid = pi.dwProcessId;
  st = PP_OK;

done:
  if (attrs) {
    DeleteProcThreadAttributeList(attrs);
    free(attrs);
  }
  stdio_free(&io);
  free(arg);
  free(cmd);
  return st;
}
