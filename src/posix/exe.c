/* Re-launching this program: where its executable is, and the command line
 * and environment that make the new copy a worker or the forkserver. */
#define _GNU_SOURCE 1      /* glibc: environ, realpath */
#define _DARWIN_C_SOURCE 1 /* macOS: realpath next to the POSIX names */

#include "posix.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __APPLE__
#include <crt_externs.h>
#include <mach-o/dyld.h>
#endif
#ifdef __linux__
#include <elf.h>
#include <link.h>
#include <sys/auxv.h>
#endif

#ifndef __APPLE__
extern char **environ;
#endif

/* Set once by pp__exe_note_argv0(), at the top of main(). */
static char *noted_argv0; /* as the program was called */
static char *noted_path;  /* absolute, or NULL when it could not be found */

/* A shared library on macOS cannot link to `environ`; it asks for it. */
static char **current_environ(void) {
#ifdef __APPLE__
  return *_NSGetEnviron();
#else
  return environ;
#endif
}

static int is_executable_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* What a shell would run for a bare command name: the first executable
 * file of that name in PATH. */
static char *search_path(const char *name) {
  const char *dirs = getenv("PATH");
  if (!dirs || !*dirs)
    dirs = "/usr/bin:/bin";
  size_t nlen = strlen(name);
  for (const char *p = dirs;;) {
    const char *end = strchr(p, ':');
    size_t dlen = end ? (size_t)(end - p) : strlen(p);
    char *candidate = malloc(dlen + nlen + 3);
    if (!candidate)
      return NULL;
    if (dlen == 0) {
      strcpy(candidate, "./"); /* an empty entry means the directory "." */
    } else {
      memcpy(candidate, p, dlen);
      candidate[dlen] = '/';
      candidate[dlen + 1] = '\0';
    }
    strcat(candidate, name);
    char *found =
        is_executable_file(candidate) ? realpath(candidate, NULL) : NULL;
    free(candidate);
    if (found || !end)
      return found;
    p = end + 1;
  }
}

void pp__exe_note_argv0(const char *argv0) {
  if (!argv0 || !*argv0 || noted_argv0)
    return;
  noted_argv0 = strdup(argv0);
  /* Resolved now: the program may chdir before it creates a pool. */
  noted_path = strchr(argv0, '/') ? realpath(argv0, NULL) : search_path(argv0);
  if (noted_path && !is_executable_file(noted_path)) {
    free(noted_path);
    noted_path = NULL;
  }
}

#ifdef __linux__
/* dl_iterate_phdr() lists the program first: whether it asks for a
 * dynamic loader (PT_INTERP). */
static int asks_for_loader(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  int *asks = data;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_INTERP)
      *asks = 1;
  return 1; /* the first object is enough */
}

/* 1 when this program was started through the dynamic loader
 * (`/lib64/ld-linux-x86-64.so.2 ./program`, as some test setups do): then
 * /proc/self/exe is the loader, which given a worker's options would not
 * run this program at all. The program asks for a loader, but the kernel
 * loaded none for it (AT_BASE 0): the loader was the executable. */
static int started_by_loader(void) {
  if (getauxval(AT_BASE) != 0)
    return 0;
  int asks = 0;
  dl_iterate_phdr(asks_for_loader, &asks);
  return asks;
}
#endif

/* The executable of this process, into `buf` (cap bytes), or NULL. The
 * system's answer comes first: argv[0] may name a script or a link that
 * changed since. */
static const char *executable(char *buf, size_t cap) {
#if defined(__linux__)
  /* Not resolved to a name: this link runs the very file this process
   * runs, even after the file was replaced on disk by an upgrade, so a
   * worker is always the same build as its parent. Under a loader started
   * by hand, argv[0] names the program (the loader takes itself out). */
  (void)buf;
  (void)cap;
  if (!started_by_loader() && access("/proc/self/exe", X_OK) == 0)
    return "/proc/self/exe";
#elif defined(__APPLE__)
  uint32_t size = (uint32_t)cap;
  if (_NSGetExecutablePath(buf, &size) == 0) {
    char *real = realpath(buf, NULL);
    if (real && strlen(real) < cap) {
      strcpy(buf, real);
      free(real);
      return buf;
    }
    free(real);
  }
#else
  (void)buf;
  (void)cap;
#endif
  return noted_path;
}

static int is_key_entry(const char *entry) {
  size_t n = strlen(PP__KEY_ENV);
  return strncmp(entry, PP__KEY_ENV, n) == 0 && entry[n] == '=';
}

/* Copies `s` to *text and advances it. */
static char *put(char **text, const char *s) {
  size_t n = strlen(s) + 1;
  char *at = *text;
  memcpy(at, s, n);
  *text += n;
  return at;
}

pp_status pp__exec_plan_make(pp__exec_plan *plan, const char *opt1,
                             const char *opt2, const char *key) {
  char found[4096];
  memset(plan, 0, sizeof *plan);
  const char *path = executable(found, sizeof found);
  if (!path)
    return PP_ENOTSUP;
  const char *arg0 = noted_argv0 ? noted_argv0 : path;

  /* One block: pointer arrays first (malloc aligns them), then the text.
   * The environment is copied, not pointed to, so that no later setenv()
   * can pull a string from under it. */
  char **env = current_environ();
  size_t nenv = 0, bytes = strlen(path) + strlen(arg0) + 2;
  for (char **e = env; e && *e; e++) {
    if (!is_key_entry(*e)) {
      nenv++;
      bytes += strlen(*e) + 1;
    }
  }
  if (opt1)
    bytes += strlen(opt1) + 1;
  if (opt2)
    bytes += strlen(opt2) + 1;
  if (key)
    bytes += strlen(PP__KEY_ENV) + strlen(key) + 2;
  size_t nargv = 4, nenvp = nenv + 2;
  char *block = malloc((nargv + nenvp) * sizeof(char *) + bytes);
  if (!block)
    return PP_ENOMEM;
  char **argv = (char **)(void *)block;
  char **envp = argv + nargv;
  char *text = (char *)(envp + nenvp);

  plan->path = put(&text, path);
  size_t k = 0;
  argv[k++] = put(&text, arg0);
  if (opt1)
    argv[k++] = put(&text, opt1);
  if (opt2)
    argv[k++] = put(&text, opt2);
  argv[k] = NULL;
  k = 0;
  for (char **e = env; e && *e; e++)
    if (!is_key_entry(*e))
      envp[k++] = put(&text, *e);
  if (key) {
    envp[k] = text;
    text += strlen(PP__KEY_ENV);
    memcpy(envp[k], PP__KEY_ENV, strlen(PP__KEY_ENV));
    *text++ = '=';
    put(&text, key);
    k++;
  }
  envp[k] = NULL;
  plan->argv = argv;
  plan->envp = envp;
  plan->block = block;
  return PP_OK;
}

void pp__exec_plan_free(pp__exec_plan *plan) {
  if (!plan)
    return;
  free(plan->block);
  memset(plan, 0, sizeof *plan);
}
