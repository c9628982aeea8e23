/* A suite run that outlives PP_TEST_WATCHDOG_S seconds is shown (what each
 * of its processes and threads is doing) and killed, by a watchdog process
 * started with it: CTest's own timeout kills it with nothing said, and a
 * rare hang seen once in CI is then all but impossible to understand. CTest
 * sets the variable a little under its timeout (CMakeLists.txt); without it
 * there is no watchdog. POSIX only: the dump is a shell script over /proc,
 * with gdb's backtraces when gdb is installed. */
#if defined(__linux__)
#define _GNU_SOURCE 1 /* syscall() */
#elif !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "util.h"

#ifndef _WIN32
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

/* $1: the test process. Every process under it (its workers, launchers and
 * their workers) but this script, then each one's threads: gdb's
 * backtraces, or the kernel's wait channel and stack. */
static const char dump_script[] =
    "root=$1\n"
    "all=$(ps -e -o pid= -o ppid= | awk -v r=\"$root\" -v me=$$ '\n"
    "  { parent[$1] = $2; pids[NR] = $1 }\n"
    "  END { keep[r] = 1; printf \"%s\", r\n"
    "        do { more = 0; for (i in pids) { p = pids[i]\n"
    "          if (p != me && !(p in keep) && (parent[p] in keep)) {\n"
    "            keep[p] = 1; printf \" %s\", p; more = 1 } } } while (more) "
    "}')\n"
    "for p in $all; do\n"
    "  [ -d /proc/$p ] || continue\n"
    "  echo \"== process $p ($(tr '\\0' ' ' </proc/$p/cmdline 2>/dev/null)),"
    " parent $(awk '{print $4}' /proc/$p/stat 2>/dev/null),"
    " state $(awk '{print $3}' /proc/$p/stat 2>/dev/null)\"\n"
    "  if command -v gdb >/dev/null 2>&1; then\n"
    "    gdb -p \"$p\" -batch -ex 'thread apply all bt 30' 2>/dev/null |\n"
    "      grep -E '^(Thread|#)'\n"
    "  else\n"
    "    for t in /proc/$p/task/*; do\n"
    "      echo \"-- thread ${t##*/}: $(cat $t/wchan 2>/dev/null)\"\n"
    "      cat \"$t/stack\" 2>/dev/null\n"
    "    done\n"
    "  fi\n"
    "done\n";

/* In the watchdog process: waits for the test process `root` to end, and
 * when it has not after `seconds`, prints what it and the processes under
 * it are doing and kills it. Never returns. */
static void watch(pid_t root, unsigned seconds) {
  /* Nothing of the test process's may stay open here (a pipe's end would
   * hide its EOF from a reader); stderr is where the dump goes. */
  for (int fd = 0; fd < 1024; fd++)
    if (fd != 2)
      close(fd);
  dup2(2, 1);
  int pidfd = -1;
#if defined(__linux__) && defined(SYS_pidfd_open)
  pidfd = (int)syscall(SYS_pidfd_open, root, 0);
#endif
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    long left_ms =
        (long)seconds * 1000 - ((now.tv_sec - start.tv_sec) * 1000 +
                                (now.tv_nsec - start.tv_nsec) / 1000000);
    if (left_ms <= 0)
      break;
    if (pidfd >= 0) {
      /* Readable once the test process has ended. */
      struct pollfd p = {pidfd, POLLIN, 0};
      if (poll(&p, 1, (int)left_ms) > 0)
        _exit(0);
    } else {
      struct timespec tick = {0, 100 * 1000000L};
      nanosleep(&tick, NULL);
      if (kill(root, 0) != 0)
        _exit(0);
    }
  }
  char self[32];
  snprintf(self, sizeof self, "%ld", (long)root);
  fprintf(stderr,
          "\npp_tests: still running after %u s; what its processes are "
          "doing:\n",
          seconds);
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", dump_script, "sh", self, (char *)NULL);
    _exit(127);
  }
  if (pid > 0)
    waitpid(pid, NULL, 0);
  fprintf(stderr, "pp_tests: killed by its watchdog\n");
  kill(root, SIGKILL);
  _exit(0);
}

void tu_watchdog_start(void) {
  const char *s = getenv("PP_TEST_WATCHDOG_S");
  unsigned seconds = s ? (unsigned)strtoul(s, NULL, 10) : 0;
  if (seconds == 0)
    return;
  pid_t root = getpid();
#ifdef __linux__
  /* Yama's ptrace scope 1 lets a process trace only its descendants, and
   * the watchdog is not one. */
  prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
#endif
  /* A process, not a thread: a test process with a thread of its own
   * would change what the suites test (ThreadSanitizer refuses a thread
   * in a child forked from a process with several). And not a child: some
   * tests check that this process is left with none. The middle process
   * leaves at once; the watchdog is its child. */
  pid_t middle = fork();
  if (middle == 0) {
    if (fork() == 0)
      watch(root, seconds);
    _exit(0);
  }
  if (middle > 0)
    while (waitpid(middle, NULL, 0) < 0 && errno == EINTR) {
    }
}
#else
void tu_watchdog_start(void) {}
#endif
