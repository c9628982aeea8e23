/* A suite run that outlives PP_TEST_WATCHDOG_S seconds shows what each of
 * its processes and threads is doing, then exits: CTest's own timeout kills
 * it with nothing said, and a rare hang seen once in CI is then all but
 * impossible to understand. CTest sets the variable a little under its
 * timeout (CMakeLists.txt); without it there is no watchdog. POSIX only:
 * the dump is a shell script over /proc, with gdb's backtraces when gdb is
 * installed. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "util.h"

#ifndef _WIN32
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
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

static void *watch(void *arg) {
  unsigned seconds = *(unsigned *)arg;
  while (seconds > 0)
    seconds = sleep(seconds);
  char self[32];
  snprintf(self, sizeof self, "%ld", (long)getpid());
  fprintf(stderr,
          "\npp_tests: still running after %s s; what its processes "
          "are doing:\n",
          getenv("PP_TEST_WATCHDOG_S"));
  fflush(stderr);
#ifdef __linux__
  /* Yama's ptrace scope 1 lets a process trace only its descendants. */
  prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
#endif
  pid_t pid = fork();
  if (pid == 0) {
    dup2(2, 1); /* CTest shows both; stderr is unbuffered */
    execl("/bin/sh", "sh", "-c", dump_script, "sh", self, (char *)NULL);
    _exit(127);
  }
  if (pid > 0)
    waitpid(pid, NULL, 0);
  fprintf(stderr, "pp_tests: stopped by its watchdog\n");
  _exit(1);
}

void tu_watchdog_start(void) {
  static unsigned seconds;
  const char *s = getenv("PP_TEST_WATCHDOG_S");
  seconds = s ? (unsigned)strtoul(s, NULL, 10) : 0;
  if (seconds == 0)
    return;
  pthread_t t;
  if (pthread_create(&t, NULL, watch, &seconds) == 0)
    pthread_detach(t);
}
#else
void tu_watchdog_start(void) {}
#endif
