/* The worker-mode hook's POSIX half: recognising, at the top of main(), a
 * copy of the program that procpool started as a spawned worker or as the
 * forkserver, from its command line (posix.h's options). In any other
 * process it notes argv[0], the fallback way to find the executable. */
#define _GNU_SOURCE 1      /* glibc: unsetenv with -std=c11 */
#define _DARWIN_C_SOURCE 1 /* macOS: BSD socket names next to POSIX */

#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __APPLE__
#include <crt_externs.h> /* _NSGetArgc, _NSGetArgv */
#endif

/* The key's text is 64 hex digits; room for more, so that a longer value
 * is seen as wrong rather than cut to fit. */
#define KEY_ROOM 128

static int has_prefix(const char *s, const char *prefix) {
  return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A decimal number in [min, max], nothing else. */
static int parse_number(const char *s, long min, long max, long *out) {
  if (!s || *s < '0' || *s > '9')
    return 0;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < min || v > max)
    return 0;
  *out = v;
  return 1;
}

/* A descriptor that is an open stream socket: what a channel is. Anything
 * else (a closed number, a file) means the option was not given by
 * procpool. */
static int is_stream_socket(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  return fcntl(fd, F_GETFD) >= 0 &&
         getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
         type == SOCK_STREAM;
}

static _Noreturn void bad_launch(const char *argv0, const char *option,
                                 const char *why) {
  fprintf(stderr,
          "%s: %s: %s; this option is for procpool's own use, when it "
          "starts a copy of this program\n",
          argv0 ? argv0 : "procpool", option, why);
  exit(PP__EXIT_BAD_LAUNCH);
}

/* The channel descriptor named by `option` (after `prefix`). */
static int channel_fd(const char *argv0, const char *option,
                      const char *prefix) {
  long fd;
  if (!parse_number(option + strlen(prefix), 3, INT_MAX, &fd))
    bad_launch(argv0, option, "expected a descriptor number of 3 or more");
  if (!is_stream_socket((int)fd))
    bad_launch(argv0, option, "that descriptor is not an open socket");
  /* Processes the worker's tasks start must not inherit it. */
  pp__set_cloexec((int)fd);
  return (int)fd;
}

#if defined(__linux__)
/* The whole of `path` (malloc'd), NUL-terminated, its length in *len;
 * NULL when it cannot be read. */
static char *slurp(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf)
      break;
    if (n + 1 == cap) {
      char *more = realloc(buf, cap * 2);
      if (!more) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = more;
      cap *= 2;
    }
    ssize_t got = read(fd, buf + n, cap - 1 - n);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      free(buf);
      buf = NULL;
      break;
    }
    if (got == 0)
      break;
    n += (size_t)got;
  }
  close(fd);
  if (buf) {
    buf[n] = '\0';
    *len = n;
  }
  return buf;
}
#endif

int pp__backend_command_line(int *argc, char ***argv) {
#if defined(__linux__)
  /* The arguments, each ending with a NUL, as the kernel keeps them. */
  static char **args;
  static int count;
  if (!args) {
    size_t len = 0;
    char *text = slurp("/proc/self/cmdline", &len);
    if (!text)
      return 0;
    int n = 0;
    for (size_t i = 0; i < len; i++)
      n += text[i] == '\0';
    char **list = calloc((size_t)n + 1, sizeof *list);
    if (!list) {
      free(text);
      return 0;
    }
    for (size_t i = 0, k = 0; i < len && (int)k < n; k++) {
      list[k] = text + i;
      i += strlen(text + i) + 1;
    }
    args = list;
    count = n;
  }
  *argc = count;
  *argv = args;
  return count > 0;
#elif defined(__APPLE__)
  *argc = *_NSGetArgc();
  *argv = *_NSGetArgv();
  return *argc > 0 && *argv != NULL;
#else
  (void)argc;
  (void)argv;
  return 0;
#endif
}

int pp__backend_worker_attach(int argc, char **argv, pp__wchan **out) {
  static struct pp__wchan chan;
  if (argc < 2 || !argv || !has_prefix(argv[1], PP__WORKER_OPTION)) {
    if (argc >= 1 && argv)
      pp__exe_note_argv0(argv[0]);
    return 0;
  }
  chan.fd = channel_fd(argv[0], argv[1], PP__WORKER_OPTION);
  chan.passed_fd = -1;
  *out = &chan;
  return 1;
}

int pp__backend_run_service(int argc, char **argv, pp__worker_main_fn main,
                            int *exit_code) {
  if (argc < 2 || !argv || !has_prefix(argv[1], PP__FORKSERVER_OPTION))
    return 0;
  int ctl = channel_fd(argv[0], argv[1], PP__FORKSERVER_OPTION);
  long slots;
  if (argc < 3 || !has_prefix(argv[2], PP__SLOTS_OPTION) ||
      !parse_number(argv[2] + strlen(PP__SLOTS_OPTION), 1, PP__MAX_SLOTS,
                    &slots))
    bad_launch(argv[0], argv[1], "expected " PP__SLOTS_OPTION "N after it");
  /* The key moves from the environment into memory, where the forked
   * workers find it, and leaves the environment that their tasks' own
   * children would inherit. */
  static char key[KEY_ROOM];
  const char *env = getenv(PP__KEY_ENV);
  if (env && strlen(env) < sizeof key)
    strcpy(key, env);
  unsetenv(PP__KEY_ENV);
  *exit_code = pp__launcher_serve(ctl, (unsigned)slots, main, key);
  return 1;
}
