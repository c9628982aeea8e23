/* raw_ipc.c: the limits of this machine, against which the pool is judged
 * (scripts/bench.sh). No procpool here: plain pipes between two processes.
 *
 *   pingpong_same_core_us   16-byte round trip over two pipes, both
 *                           processes pinned to CPU 0 (median)
 *   pingpong_cross_core_us  the same, parent on CPU 0, child on CPU 1: a
 *                           cross-core wake-up each way, what a pool's
 *                           blocking apply pays at best
 *   pipe_stream_MiB_per_s   one process writes 64 KiB blocks, the other reads
 *   memcpy_MiB_per_s        one 64 MiB copy after another, in one process
 *   fork_exit_ms            fork a child that exits at once, and reap it
 *   spawn_self_ms           posix_spawn this program (exiting at once), reap
 *
 * Output: JSON lines {"peer": "raw", "ctx": "-", "case": ..., "value": ...,
 * "unit": ...}; notes on stderr.
 *
 * Usage: pp_bench_raw [--quick]
 */
#define _GNU_SOURCE 1 /* sched_setaffinity, CPU_SET */

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)
#define MSG 16
#define BLOCK (64 * 1024)

extern char **environ;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void emit(const char *name, double value, const char *unit) {
  if (value >= 100.0)
    printf("{\"peer\": \"raw\", \"ctx\": \"-\", \"case\": \"%s\", "
           "\"value\": %.1f, \"unit\": \"%s\"}\n",
           name, value, unit);
  else
    printf("{\"peer\": \"raw\", \"ctx\": \"-\", \"case\": \"%s\", "
           "\"value\": %.4g, \"unit\": \"%s\"}\n",
           name, value, unit);
  fflush(stdout);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int full_read(int fd, void *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, (char *)buf + got, len - got);
    if (n > 0)
      got += (size_t)n;
    else if (n < 0 && errno == EINTR)
      continue;
    else
      return -1;
  }
  return 0;
}

static int full_write(int fd, const void *buf, size_t len) {
  size_t put = 0;
  while (put < len) {
    ssize_t n = write(fd, (const char *)buf + put, len - put);
    if (n > 0)
      put += (size_t)n;
    else if (n < 0 && errno == EINTR)
      continue;
    else
      return -1;
  }
  return 0;
}

/* Pins the calling process to one CPU. 0, or -1 where that is not possible
 * (no such CPU, or no affinity call on this system). */
static int pin(int cpu) {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set);
#else
  (void)cpu;
  return -1;
#endif
}

static int reap(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Round trips of MSG bytes: parent on `parent_cpu`, child on `child_cpu`.
 * Returns the median in seconds, or a negative value on failure. */
static double pingpong(int parent_cpu, int child_cpu, size_t rounds) {
  int to_child[2], to_parent[2];
  if (pipe(to_child) != 0 || pipe(to_parent) != 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  char buf[MSG];
  if (pid == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    if (pin(child_cpu) != 0)
      _exit(3);
    while (full_read(to_child[0], buf, MSG) == 0)
      if (full_write(to_parent[1], buf, MSG) != 0)
        _exit(1);
    _exit(0); /* EOF: the parent is done */
  }
  close(to_child[0]);
  close(to_parent[1]);
#ifdef __linux__
  cpu_set_t saved;
  int have_saved = sched_getaffinity(0, sizeof saved, &saved) == 0;
#endif
  double result = -1;
  double *t = calloc(rounds, sizeof *t);
  if (t && pin(parent_cpu) == 0) {
    memset(buf, 0x5a, sizeof buf);
    size_t warm = rounds / 10 + 10, i;
    for (i = 0; i < warm + rounds; i++) {
      double t0 = now_s();
      if (full_write(to_child[1], buf, MSG) != 0 ||
          full_read(to_parent[0], buf, MSG) != 0)
        break;
      if (i >= warm)
        t[i - warm] = now_s() - t0;
    }
    if (i == warm + rounds)
      result = median(t, rounds);
  }
  free(t);
  close(to_child[1]);
  close(to_parent[0]);
  if (reap(pid) != 0)
    result = -1;
#ifdef __linux__
  if (have_saved)
    sched_setaffinity(0, sizeof saved, &saved);
#endif
  return result;
}

/* MiB/s of `total` bytes written by a child in BLOCK writes, read here. */
static double pipe_stream(size_t total) {
  int p[2];
  if (pipe(p) != 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    close(p[0]);
    char *block = malloc(BLOCK);
    if (!block)
      _exit(1);
    memset(block, 1, BLOCK);
    for (size_t sent = 0; sent < total; sent += BLOCK)
      if (full_write(p[1], block, BLOCK) != 0)
        _exit(1);
    _exit(0);
  }
  close(p[1]);
  char *block = malloc(BLOCK);
  double result = -1;
  if (block) {
    size_t got = 0;
    double t0 = now_s();
    for (;;) {
      ssize_t n = read(p[0], block, BLOCK);
      if (n > 0)
        got += (size_t)n;
      else if (n < 0 && errno == EINTR)
        continue;
      else
        break;
    }
    double dt = now_s() - t0;
    if (got == total)
      result = (double)total / MIB / dt;
  }
  free(block);
  close(p[0]);
  if (reap(pid) != 0)
    result = -1;
  return result;
}

static double memcpy_rate(size_t len, int reps) {
  unsigned char *a = malloc(len), *b = malloc(len);
  double result = -1;
  if (a && b) {
    /* Touch both first: page faults are not what is measured. */
    memset(a, 1, len);
    memset(b, 2, len);
    double t0 = now_s();
    for (int i = 0; i < reps; i++) {
      a[i] = (unsigned char)i; /* a different copy each time */
      memcpy(b, a, len);
    }
    double dt = now_s() - t0;
    volatile unsigned char sink = b[len / 2];
    (void)sink;
    result = (double)len * reps / MIB / dt;
  }
  free(a);
  free(b);
  return result;
}

static double fork_exit(size_t reps) {
  double *t = calloc(reps, sizeof *t);
  if (!t)
    return -1;
  for (size_t i = 0; i < reps; i++) {
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0)
      _exit(0);
    if (pid < 0 || reap(pid) != 0) {
      free(t);
      return -1;
    }
    t[i] = now_s() - t0;
  }
  double m = median(t, reps);
  free(t);
  return m;
}

static double spawn_self(const char *argv0, size_t reps) {
  double *t = calloc(reps, sizeof *t);
  if (!t)
    return -1;
  const char *path =
      access("/proc/self/exe", X_OK) == 0 ? "/proc/self/exe" : argv0;
  char *args[] = {(char *)argv0, "--exit", NULL};
  for (size_t i = 0; i < reps; i++) {
    double t0 = now_s();
    pid_t pid;
    if (posix_spawn(&pid, path, NULL, NULL, args, environ) != 0 ||
        reap(pid) != 0) {
      free(t);
      return -1;
    }
    t[i] = now_s() - t0;
  }
  double m = median(t, reps);
  free(t);
  return m;
}

int main(int argc, char **argv) {
  int quick = 0;
  if (argc == 2 && strcmp(argv[1], "--exit") == 0)
    return 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      quick = 1;
    } else {
      fprintf(stderr, "usage: pp_bench_raw [--quick]\n");
      return 2;
    }
  }
  /* A dead reader must fail the write, not kill the benchmark. */
  signal(SIGPIPE, SIG_IGN);
  size_t rounds = quick ? 2000 : 20000;
  int failures = 0;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

  double v = pingpong(0, 0, rounds);
  if (v > 0)
    emit("pingpong_same_core_us", v * 1e6, "us");
  else
    fprintf(stderr, "pp_bench_raw: cannot pin both processes to CPU 0; "
                    "pingpong_same_core_us skipped\n");
  if (ncpu >= 2 && (v = pingpong(0, 1, rounds)) > 0) {
    emit("pingpong_cross_core_us", v * 1e6, "us");
  } else {
    fprintf(stderr, "pp_bench_raw: fewer than 2 CPUs or no affinity; "
                    "pingpong_cross_core_us skipped\n");
  }
  if ((v = pipe_stream(quick ? (size_t)64 << 20 : (size_t)1 << 30)) > 0)
    emit("pipe_stream_MiB_per_s", v, "MiB/s");
  else
    failures++;
  if ((v = memcpy_rate((size_t)64 << 20, quick ? 4 : 32)) > 0)
    emit("memcpy_MiB_per_s", v, "MiB/s");
  else
    failures++;
  if ((v = fork_exit(quick ? 10 : 100)) > 0)
    emit("fork_exit_ms", v * 1e3, "ms");
  else
    failures++;
  if ((v = spawn_self(argv[0], quick ? 5 : 50)) > 0)
    emit("spawn_self_ms", v * 1e3, "ms");
  else
    failures++;
  if (failures)
    fprintf(stderr, "pp_bench_raw: %d case(s) failed\n", failures);
  return failures ? 1 : 0;
}
