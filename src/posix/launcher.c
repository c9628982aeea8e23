/* The launcher ("zygote"): one single-threaded process, made while the
 * pool is created, before the pool has any thread. It starts every worker
 * but the fork context's first ones, so no worker is ever forked from the
 * parent once the pool's thread may hold a lock, and it is those workers'
 * parent: it alone reaps them, which is what makes KILL race-free (an
 * unreaped pid cannot be reused).
 *
 * The fork context's first workers (Linux, see backend.c) are forked by
 * the parent itself while it creates the pool (pp__worker_fork). With two
 * or more, the second one *hosts* the launcher (pp__worker_fork_hosting):
 * before anything else it clones it with CLONE_PARENT, so the launcher is
 * the parent's child, the same copy of the parent at pool creation, and
 * the parent forks no launcher of its own; the launcher then says HELLO
 * with its pid. With one, the parent forks the launcher after it. Either
 * way the launcher keeps the first workers' pidfds (its "guards") and
 * kills them when the parent goes away, as it kills its own workers.
 *
 * The start contexts differ only in how the launcher comes to be and how
 * it starts a worker:
 *   fork        a copy of the parent (forked by it, or hosted); forks
 *               workers that run the worker loop at once (copies of the
 *               parent as it was at pool creation)
 *   spawn       forked from the parent; each worker is a child that
 *               executes the program afresh in worker mode
 *   forkserver  a fresh copy of the program (pp__launcher_spawn), so a
 *               clean process with none of the parent's memory; forks
 *               workers like the fork context
 * The launcher may be a fork of a multi-threaded process, where only
 * async-signal-safe calls are safe: everything it needs, memory included,
 * is prepared before it is forked.
 *
 * It talks to the parent over one stream socket (records in posix.h) and
 * leaves when that socket reaches EOF, killing and reaping the workers it
 * still has. */
#define _GNU_SOURCE 1      /* glibc: pipe2 */
#define _DARWIN_C_SOURCE 1 /* macOS: BSD socket names next to POSIX */

#include "coverage.h"
#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sched.h> /* CLONE_PARENT */
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

/* The control socket's number in the launcher: everything above it is
 * closed at once. */
#define LAUNCHER_CTL_FD PP__LAUNCHER_CTL_FD

/* Channel ends received with START records and not yet used: records are
 * handled as they arrive, so a few at most. */
#define LAUNCHER_MAX_FDS 16
_Static_assert(LAUNCHER_MAX_FDS <= PP__RECV_FDS_MAX,
               "a START's channel end must fit in one receive");

/* How often the launcher checks that its parent still lives (ms): a copy
 * of the parent's control socket leaked into another process would
 * otherwise hide the parent's death. */
#define LAUNCHER_PARENT_CHECK_MS 1000

typedef struct launcher {
  pp__backend_config cfg;
  int ctl;
  int sig_r, sig_w; /* SIGCHLD self-pipe */
  pid_t self;
  pid_t parent;
  pid_t *pids;               /* by slot: the unreaped worker, or 0 */
  const pp__exec_plan *plan; /* spawn: how a worker is executed */
  /* Spawn only: by slot, 1 + the read end of the exec-error pipe of a
   * child whose exec is not settled yet (0: none); and room to poll them
   * next to the control socket and the self-pipe. */
  int *execs;
  struct pollfd *pfd;
  int quitting; /* QUIT came: leave once no worker is left */
  /* What a worker gets back: the parent's signal state at fork time. */
  struct sigaction old_chld, old_int;
  sigset_t old_mask;
  unsigned char in[64 * sizeof(pp__ctl_msg)];
  size_t inlen;
  int fds[LAUNCHER_MAX_FDS]; /* workers' channel ends, for the STARTs */
  unsigned nfds;
  int *guards; /* pidfds of the parent's own workers */
  unsigned nguards;
} launcher;

/* The handler's end of the self-pipe (one launcher per process). */
static int sigchld_fd = -1;

static void on_sigchld(int sig) {
  int saved = errno;
  char c = 0;
  (void)sig;
  if (write(sigchld_fd, &c, 1) < 0) {
    /* A full pipe already holds a pending wake-up. */
  }
  errno = saved;
}

/* Sends one record. Blocking: the parent never blocks on us, so this
 * cannot deadlock; a parent that went away makes it fail with EPIPE. */
static int send_record(int fd, const pp__ctl_msg *m) {
  const unsigned char *p = (const unsigned char *)m;
  size_t left = sizeof *m;
  while (left > 0) {
    ssize_t n = send(fd, p, left, PP__SEND_FLAGS);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    left -= (size_t)n;
  }
  return 0;
}

static int send_msg(launcher *L, const pp__ctl_msg *m) {
  return send_record(L->ctl, m);
}

/* START_FAILED for a worker whose `call` failed with `err`. */
static int send_start_failed(launcher *L, uint32_t slot, pp__ctl_call call,
                             int err) {
  pp__ctl_msg m;
  memset(&m, 0, sizeof m);
  m.type = PP__CTL_START_FAILED;
  m.slot = slot;
  m.status = (int32_t)pp__errno_status(err);
  m.code = err;
  m.call = (int32_t)call;
  return send_msg(L, &m);
}

static int send_simple(launcher *L, int32_t type, uint32_t slot, pid_t pid,
                       pp_status status) {
  pp__ctl_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  m.slot = slot;
  m.pid = pid;
  m.status = (int32_t)status;
  return send_msg(L, &m);
}

/* The system's words for `err`, safe where only async-signal-safe calls
 * are: glibc's strerror() may translate, which may allocate; its
 * strerrordesc_np() never does. The other systems' strerror() reads a
 * table. */
static const char *errno_text(int err) {
#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *text = strerrordesc_np(err);
#else
  const char *text = strerror(err);
#endif
  return text && *text ? text : "unknown error";
}

/* Appends `s` to the `len` bytes of `buf` (room for `cap`): the new
 * length. */
static size_t append(char *buf, size_t len, size_t cap, const char *s) {
  while (*s && len < cap)
    buf[len++] = *s++;
  return len;
}

/* The same for `v`, in decimal. */
static size_t append_number(char *buf, size_t len, size_t cap,
                            unsigned long v) {
  char digits[24];
  size_t n = sizeof digits;
  digits[--n] = '\0';
  do
    digits[--n] = (char)('0' + v % 10);
  while ((v /= 10) != 0 && n > 0);
  return append(buf, len, cap, digits + n);
}

/* One line on standard error, "procpool: WHO (process PID) could not
 * WHAT: CALL: the system's words", the way a process of the pool's that is
 * about to exit with a code of procpool's says why: the pool only sees the
 * code. Only async-signal-safe calls (write(2), no stdio, no malloc): it runs
 * in forks of a process that may have threads. `err` 0: no system call
 * failed, `call` says what did. */
static void say_why(const char *who, const char *what, const char *call,
                    int err) {
  char line[320];
  size_t cap = sizeof line - 1; /* room for the newline */
  size_t len = append(line, 0, cap, "procpool: ");
  len = append(line, len, cap, who);
  len = append(line, len, cap, " (process ");
  len = append_number(line, len, cap, (unsigned long)getpid());
  len = append(line, len, cap, ") could not ");
  len = append(line, len, cap, what);
  len = append(line, len, cap, ": ");
  len = append(line, len, cap, call);
  if (err) {
    len = append(line, len, cap, ": ");
    len = append(line, len, cap, errno_text(err));
  }
  line[len++] = '\n';
  const char *p = line;
  while (len > 0) {
    ssize_t w = write(STDERR_FILENO, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return; /* nowhere to say it: the exit code is all there is */
    p += (size_t)w;
    len -= (size_t)w;
  }
}

/* The launcher could not set itself up: it says why, and its exit code
 * tells the pool it did (the pool's message names the code). */
static int setup_failed(const char *call, int err) {
  say_why("the process that starts the pool's workers", "set itself up", call,
          err);
  return PP__EXIT_LAUNCHER_SETUP;
}

/* In a new worker process: back to the parent's signal state, so a fork
 * worker behaves like a fork of the user's process. */
static void restore_signals(launcher *L) {
  sigaction(SIGCHLD, &L->old_chld, NULL);
  sigaction(SIGINT, &L->old_int, NULL);
  sigprocmask(SIG_SETMASK, &L->old_mask, NULL);
}

/* A pipe whose ends close on exec; the read end blocks. */
static int cloexec_pipe(int p[2]) {
#if defined(__linux__)
  if (pipe2(p, O_CLOEXEC) == 0)
    return 0;
#endif
  if (pipe(p) != 0)
    return -1;
  /* Not atomic, and need not be: the launcher has one thread. */
  if (pp__set_cloexec(p[0]) || pp__set_cloexec(p[1])) {
    pp__close(p[0]);
    pp__close(p[1]);
    return -1;
  }
  return 0;
}

/* The spawn context: a child that executes the program afresh, with the
 * worker's end of the channel as its descriptor PP__SPAWN_CHANNEL_FD and
 * nothing else but the standard streams (every other descriptor here is
 * close-on-exec). An exec failure comes back through a close-on-exec pipe,
 * as libuv does it: EOF on the pipe means the exec happened. That is not
 * waited for here: the pipe is kept in L->execs and watched by
 * launcher_run(), so that the next worker's exec runs at the same time as
 * this one (an exec and the program's start take most of a millisecond);
 * exec_settle() then reports the start. */
static pid_t exec_worker(launcher *L, uint32_t slot, int worker_end,
                         pp__ctl_call *failed) {
  int ep[2];
  if (cloexec_pipe(ep) != 0) {
    *failed = PP__CTL_CALL_PIPE;
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    restore_signals(L);
#ifdef __linux__
    /* Survives the exec: the worker dies with its launcher. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != L->self)
      _exit(PP__EXIT_BAD_LAUNCH); /* its launcher died: see launch_worker() */
#endif
    /* dup2 onto another number clears close-on-exec on the copy; the
     * control socket it replaces was close-on-exec anyway. */
    if (dup2(worker_end, PP__SPAWN_CHANNEL_FD) >= 0)
      execve(L->plan->path, L->plan->argv, L->plan->envp);
    int err = errno;
    if (write(ep[1], &err, sizeof err) < 0) {
      /* The launcher sees EOF and then this child's exit code. */
    }
    _exit(127);
  }
  int saved = errno;
  pp__close(ep[1]);
  if (pid < 0) {
    pp__close(ep[0]);
    errno = saved;
    return -1;
  }
  L->execs[slot] = ep[0] + 1;
  return pid;
}

/* How a worker comes to life; the one place that differs per context. In
 * the fork and forkserver contexts: fork, keep 0, 1, 2 and the worker's
 * end, run the worker loop. In the spawn context: exec_worker(). Returns
 * the pid, or -1 with errno. */
static pid_t launch_worker(launcher *L, uint32_t slot, int worker_end,
                           pp__ctl_call *failed) {
  *failed = PP__CTL_CALL_FORK;
  if (L->plan)
    return exec_worker(L, slot, worker_end, failed);
  pid_t pid = fork();
  if (pid != 0)
    return pid;

  pp__coverage_forked();
  pp__close(L->ctl);
  pp__close(L->sig_r);
  pp__close(L->sig_w);
  /* Other workers' ends that came already are not this worker's to hold. */
  for (unsigned k = 0; k < L->nfds; k++)
    pp__close(L->fds[k]);
  for (unsigned k = 0; k < L->nguards; k++)
    pp__close(L->guards[k]);
  restore_signals(L);
#ifdef __linux__
  /* A worker never outlives its launcher (killed by hand, say): nobody
   * would reap it or tell the pool. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  /* The launcher died before that took: this worker has lost the way to
   * its pool. No words: the pool reports the launcher's death, and it
   * never sees this code (the launcher it went to is gone). */
  if (getppid() != L->self)
    _exit(PP__EXIT_BAD_LAUNCH);
#endif
  struct pp__wchan chan = {worker_end, NULL, -1};
  int code = L->cfg.worker_main(&chan, L->cfg.key);
  /* _exit skips stdio: keep what the tasks printed. */
  fflush(stdout);
  fflush(stderr);
  pp__coverage_exit();
  _exit(code);
}

/* The channel end that came with the oldest START not yet handled, or -1. */
static int take_fd(launcher *L) {
  if (L->nfds == 0)
    return -1;
  int fd = L->fds[0];
  L->nfds--;
  memmove(L->fds, L->fds + 1, L->nfds * sizeof *L->fds);
  return fd;
}

/* `fd`: the worker's end of the channel the parent made for it. */
static int start_worker(launcher *L, uint32_t slot, int fd) {
  if (fd < 0)
    return send_simple(L, PP__CTL_START_FAILED, slot, 0, PP_ESYSTEM);
  if (slot >= L->cfg.max_slots || L->pids[slot] != 0) {
    pp__close(fd);
    return send_simple(L, PP__CTL_START_FAILED, slot, 0, PP_ESTATE);
  }
  pp__ctl_call failed;
  pid_t pid = launch_worker(L, slot, fd, &failed);
  int err = errno;
  /* Our copy must go, or the parent would not see EOF when that worker
   * ends (or, when none started, at once). */
  pp__close(fd);
  if (pid < 0)
    return send_start_failed(L, slot, failed, err);
  L->pids[slot] = pid;
  if (L->plan)
    return 0; /* STARTED once its exec is settled (exec_settle) */
  return send_simple(L, PP__CTL_STARTED, slot, pid, PP_OK);
}

/* Spawn: the slot's child has exec'd (EOF on its pipe: STARTED) or failed
 * to (an errno: START_FAILED, and the child, which exits at once, is
 * reaped unless `reaped` says it was). Blocks only until one of the two,
 * which poll() or the child's end has shown. -1 when the parent is gone. */
static int exec_settle(launcher *L, uint32_t slot, int reaped) {
  int fd = L->execs[slot] - 1;
  L->execs[slot] = 0;
  int err = 0;
  ssize_t n;
  do
    n = read(fd, &err, sizeof err);
  while (n < 0 && errno == EINTR);
  pp__close(fd);
  pid_t pid = L->pids[slot];
  if (n == (ssize_t)sizeof err) {
    if (!reaped)
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
      }
    L->pids[slot] = 0;
    return send_start_failed(L, slot, PP__CTL_CALL_EXEC, err);
  }
  return send_simple(L, PP__CTL_STARTED, slot, pid, PP_OK);
}

static void kill_worker(launcher *L, uint32_t slot, int64_t pid, int sig) {
  if (slot >= L->cfg.max_slots || L->pids[slot] == 0)
    return;
  if (pid != 0 && L->pids[slot] != pid)
    return;
  kill(L->pids[slot], sig);
}

/* Reads and runs the parent's requests. -1 when the parent is gone. */
static int read_requests(launcher *L) {
  /* The channel ends that came with the bytes are kept in order; past
   * LAUNCHER_MAX_FDS they are closed, and their STARTs fail for want of
   * them. */
  size_t got;
  ssize_t n =
      pp__recv_fds(L->ctl, L->in + L->inlen, sizeof L->in - L->inlen,
                   L->fds + L->nfds, LAUNCHER_MAX_FDS - L->nfds, &got, 0);
  if (n <= 0)
    return -1;
  L->nfds += (unsigned)got;
  L->inlen += (size_t)n;
  size_t at = 0;
  while (L->inlen - at >= sizeof(pp__ctl_msg)) {
    pp__ctl_msg m;
    memcpy(&m, L->in + at, sizeof m);
    at += sizeof m;
    if (m.type == PP__CTL_START) {
      if (start_worker(L, m.slot, take_fd(L)) != 0)
        return -1;
    } else if (m.type == PP__CTL_KILL || m.type == PP__CTL_TERM) {
      kill_worker(L, m.slot, m.pid, m.type == PP__CTL_KILL ? SIGKILL : SIGTERM);
    } else if (m.type == PP__CTL_QUIT) {
      L->quitting = 1;
    }
  }
  memmove(L->in, L->in + at, L->inlen - at);
  L->inlen -= at;
  return 0;
}

/* Reaps every ended worker and reports it. -1 when the parent is gone. */
static int reap(launcher *L) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR)
      continue;
    if (pid <= 0)
      return 0;
    for (uint32_t slot = 0; slot < L->cfg.max_slots; slot++) {
      if (L->pids[slot] != pid)
        continue;
      /* Ended before its exec was seen to settle: the start is reported
       * first, and a failed one is all there is to report. */
      if (L->execs && L->execs[slot]) {
        if (exec_settle(L, slot, 1) != 0)
          return -1;
        if (L->pids[slot] == 0)
          break;
      }
      L->pids[slot] = 0;
      pp__ctl_msg m;
      memset(&m, 0, sizeof m);
      m.type = PP__CTL_EXITED;
      m.slot = slot;
      m.pid = pid;
      if (WIFSIGNALED(status)) {
        m.signaled = 1;
        m.code = WTERMSIG(status);
      } else {
        m.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      if (send_msg(L, &m) != 0)
        return -1;
      break;
    }
  }
}

static void drain(int fd) {
  char buf[64];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
  }
}

/* -1 with errno and `*call` naming the call that failed. */
static int make_self_pipe(int p[2], const char **call) {
  *call = "pipe";
#if defined(__linux__)
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0)
    return 0;
#endif
  if (pipe(p) != 0)
    return -1;
  *call = "fcntl";
  if (pp__set_cloexec(p[0]) || pp__set_cloexec(p[1]) ||
      pp__set_nonblock(p[0]) || pp__set_nonblock(p[1]))
    return -1;
  return 0;
}

/* The standard descriptors of a worker and of the launcher (whose workers
 * inherit them). Input is /dev/null: a task that reads gets EOF instead
 * of the program's input, as a Python worker's sys.stdin gives, and the
 * program's input pipe is not held open by the pool, so its writer sees
 * the end when the program closes it (`yes | program` ends; a Python pool
 * keeps descriptor 0, and the pipe, open in every worker). Output stays the
 * program's; a closed 1 or 2 gets /dev/null, so a channel never lands there,
 * where a task's stdio would use it. */
static void standard_fds(void) {
  int null = open("/dev/null", O_RDONLY);
  if (null > 0) {
    dup2(null, 0);
    close(null);
  }
  for (int fd = 1; fd < 3; fd++) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
      continue;
    int null = open("/dev/null", O_RDWR);
    if (null >= 0 && null != fd)
      close(null);
  }
}

/* Moves *fd to `to`, close-on-exec; `*call` names a call that failed. */
static int move_fd(int *fd, int to, const char **call) {
  if (*fd != to) {
    *call = "dup2";
    if (dup2(*fd, to) < 0)
      return -1;
    close(*fd);
    *fd = to;
  }
  *call = "fcntl(F_SETFD)";
  return pp__set_cloexec(to);
}

/* The most descriptors keep_fds() moves: a channel, a control socket and
 * the guards (two first workers and the launcher's host). */
#define KEEP_FDS_MAX 5

/* Moves *fds[0], *fds[1], ... to `first`, `first` + 1, ... (close-on-exec)
 * and closes every other descriptor from `first` on. The others go first,
 * so that the moves need no room the parent did not leave (a parent near
 * its descriptor limit had its launcher fail here). With more than one,
 * each then goes above the places first, and down into place after: one
 * may sit where another goes. -1 with errno when a move fails, and `*call`
 * naming the call. */
static int keep_fds(int *const *fds, unsigned n, int first, const char **call) {
  int kept[KEEP_FDS_MAX];
  for (unsigned k = 0; k < n && k < KEEP_FDS_MAX; k++)
    kept[k] = *fds[k];
  pp__close_except(first, kept, n);
  if (n > 1) {
    for (unsigned k = 0; k < n; k++) {
      if (*fds[k] >= first + (int)n)
        continue;
      int moved = fcntl(*fds[k], F_DUPFD_CLOEXEC, first + (int)n);
      if (moved < 0) {
        *call = "fcntl(F_DUPFD_CLOEXEC)";
        return -1;
      }
      close(*fds[k]);
      *fds[k] = moved;
    }
  }
  for (unsigned k = 0; k < n; k++)
    if (move_fd(fds[k], first + (int)k, call) != 0)
      return -1;
  pp__close_from(first + (int)n);
  return 0;
}

/* Keeps 0, 1, 2, the control socket (moved to LAUNCHER_CTL_FD) and the
 * guards (right after it): the parent's other descriptors, other pools'
 * channels among them, must not reach the workers. -1 with errno (0: not
 * a system call's failure) and `*call` naming what failed. */
static int clean_descriptors(launcher *L, const char **call) {
  int *fds[KEEP_FDS_MAX];
  unsigned n = 0;
  fds[n++] = &L->ctl;
  for (unsigned k = 0; k < L->nguards && n < KEEP_FDS_MAX; k++)
    fds[n++] = &L->guards[k];
  if (n != 1 + L->nguards) {
    *call = "keeping its descriptors: more guards than it has room for";
    errno = 0;
    return -1;
  }
  if (keep_fds(fds, n, LAUNCHER_CTL_FD, call) != 0)
    return -1;
  standard_fds();
  return 0;
}

/* -1 with errno and `*call` naming the call that failed. */
static int setup_signals(launcher *L, const char **call) {
  *call = "sigaction";
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  if (sigaction(SIGCHLD, &sa, &L->old_chld) != 0)
    return -1;
  /* Ctrl-C reaches the whole process group; the launcher ends when the
   * parent does, not before (as Python's forkserver). */
  sa.sa_handler = SIG_IGN;
  sa.sa_flags = 0;
  if (sigaction(SIGINT, &sa, &L->old_int) != 0)
    return -1;
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, SIGCHLD);
  *call = "sigprocmask";
  return sigprocmask(SIG_UNBLOCK, &unblock, &L->old_mask);
}

static int has_workers(const launcher *L) {
  for (uint32_t slot = 0; slot < L->cfg.max_slots; slot++)
    if (L->pids[slot] != 0)
      return 1;
  return 0;
}

static void stop_workers(launcher *L) {
  for (uint32_t slot = 0; slot < L->cfg.max_slots; slot++)
    if (L->pids[slot] != 0)
      kill(L->pids[slot], SIGKILL);
  for (uint32_t slot = 0; slot < L->cfg.max_slots; slot++) {
    if (L->pids[slot] == 0)
      continue;
    while (waitpid(L->pids[slot], NULL, 0) < 0 && errno == EINTR) {
    }
    L->pids[slot] = 0;
  }
}

/* Serves the parent until it goes away; returns the exit code. */
static int launcher_run(launcher *L) {
  int sp[2];
  const char *call = NULL;
  if (clean_descriptors(L, &call) != 0 || make_self_pipe(sp, &call) != 0)
    return setup_failed(call, errno);
  L->sig_r = sp[0];
  L->sig_w = sp[1];
  sigchld_fd = sp[1];
  if (setup_signals(L, &call) != 0)
    return setup_failed(call, errno);

  int asked = 0; /* leaving on QUIT, not for the parent's end */
  for (;;) {
    struct pollfd two[2];
    struct pollfd *p = L->pfd ? L->pfd : two;
    nfds_t np = 2;
    p[0].fd = L->ctl;
    p[0].events = POLLIN;
    p[0].revents = 0;
    p[1].fd = L->sig_r;
    p[1].events = POLLIN;
    p[1].revents = 0;
    for (uint32_t slot = 0; L->execs && slot < L->cfg.max_slots; slot++) {
      if (!L->execs[slot])
        continue;
      p[np].fd = L->execs[slot] - 1;
      p[np].events = POLLIN;
      p[np++].revents = 0;
    }
    int n = poll(p, np, LAUNCHER_PARENT_CHECK_MS);
    if (n < 0 && errno != EINTR)
      break;
    if (getppid() != L->parent)
      break;
    if (n > 0 && p[1].revents)
      drain(L->sig_r);
    /* The same slots in the same order as above: nothing changed them. */
    int failed = 0;
    nfds_t k = 2;
    for (uint32_t slot = 0; n > 0 && k < np; slot++) {
      if (!L->execs[slot])
        continue;
      if (p[k++].revents && exec_settle(L, slot, 0) != 0)
        failed = 1;
    }
    if (failed || reap(L) != 0)
      break;
    if (n > 0 && p[0].revents && read_requests(L) != 0)
      break;
    /* Leaving as soon as the pool needs us no more lets our exit overlap
     * the pool's own shutdown, instead of following it. */
    if (L->quitting && !has_workers(L)) {
      asked = 1;
      break;
    }
  }
  stop_workers(L);
  /* The parent's own workers are its business while it lives (it is
   * hanging them up). When it is gone, nobody else stops one busy in a
   * long task: its channel's EOF waits for the task's end. A pidfd never
   * names another process, even once that worker was reaped. */
  for (unsigned k = 0; !asked && k < L->nguards; k++)
    pp__pidfd_kill(L->guards[k], SIGKILL);
  return 0;
}

/* What a launcher needs, allocated before it exists: it may be a fork of
 * a process with threads, where it must not call malloc. The parent frees
 * its copy once the launcher is forked. */
typedef struct launcher_seed {
  pid_t parent;
  pid_t *pids;
  int *execs;
  struct pollfd *pfd;
  int *guards;
  unsigned nguards;
} launcher_seed;

static void seed_free(launcher_seed *seed) {
  free(seed->pids);
  free(seed->execs);
  free(seed->pfd);
  free(seed->guards);
}

/* `room` guards beyond the `nguards` given, for the launcher's host to
 * add its own. 0 or -1 (out of memory). */
static int seed_make(launcher_seed *seed, const pp__backend_config *cfg,
                     const pp__exec_plan *plan, const int *guards,
                     unsigned nguards, unsigned room) {
  memset(seed, 0, sizeof *seed);
  seed->parent = getpid();
  seed->pids = calloc(cfg->max_slots, sizeof *seed->pids);
  seed->execs = plan ? calloc(cfg->max_slots, sizeof *seed->execs) : NULL;
  seed->pfd =
      plan ? calloc((size_t)cfg->max_slots + 2, sizeof *seed->pfd) : NULL;
  seed->guards = nguards + room ? malloc((nguards + room) * sizeof(int)) : NULL;
  if (!seed->pids || (plan && (!seed->execs || !seed->pfd)) ||
      (nguards + room && !seed->guards)) {
    seed_free(seed);
    return -1;
  }
  if (nguards)
    memcpy(seed->guards, guards, nguards * sizeof *guards);
  seed->nguards = nguards;
  return 0;
}

/* In the new launcher process: serves on `ctl` and exits. */
static void become_launcher(const pp__backend_config *cfg,
                            const pp__exec_plan *plan,
                            const launcher_seed *seed, int ctl) {
  launcher L;
  memset(&L, 0, sizeof L);
  L.cfg = *cfg;
  L.ctl = ctl;
  L.sig_r = L.sig_w = -1;
  L.self = getpid();
  L.parent = seed->parent;
  L.pids = seed->pids;
  L.plan = plan;
  L.execs = seed->execs;
  L.pfd = seed->pfd;
  L.guards = seed->guards;
  L.nguards = seed->nguards;
  int code = launcher_run(&L);
  pp__coverage_exit();
  _exit(code);
}

/* Buffered output would be copied into the child and written again by
 * every worker that flushes its stdio. */
static void flush_stdio(void) {
  fflush(stdout);
  fflush(stderr);
}

/* In a new worker: 0, 1, 2 and the channel (moved to 3) stay, then the
 * worker loop runs; never returns. The launcher's work for its workers,
 * done here: other workers' channels, pidfds and the user's files must
 * not stay open. The signal state needs nothing: the launcher gives its
 * workers the parent's, which this child has. There is no
 * PR_SET_PDEATHSIG: its parent is the thread that created the pool, and
 * it would fire when that thread ends, not the process; the launcher
 * kills this worker when the process goes (its guards), and a worker sees
 * EOF anyway. */
static void host_end(pp__host *h);

/* Runs the worker loop on `fd` (in place already) and exits. */
static void run_worker(const pp__backend_config *cfg, int fd, pp__host *host) {
  standard_fds();
  struct pp__wchan chan = {fd, host, -1};
  int code = cfg->worker_main(&chan, cfg->key);
  if (chan.host)
    host_end(chan.host);
  /* _exit skips stdio: keep what the tasks printed. */
  flush_stdio();
  pp__coverage_exit();
  _exit(code);
}

int pp__test_worker_channel_errno;

static void become_worker(const pp__backend_config *cfg, int worker_end) {
  int fd = worker_end; /* on 3, as a spawned worker's */
  int *fds[1] = {&fd};
  const char *call = "dup2";
  int failed = pp__test_worker_channel_errno != 0;
  if (failed)
    errno = pp__test_worker_channel_errno;
  else
    failed = keep_fds(fds, 1, PP__SPAWN_CHANNEL_FD, &call) != 0;
  if (failed) {
    say_why("worker", "set up its channel to the pool that started it", call,
            errno);
    _exit(PP__EXIT_BAD_LAUNCH);
  }
  run_worker(cfg, fd, NULL);
}

pid_t pp__worker_fork(const pp__backend_config *cfg, int worker_end) {
  flush_stdio();
  pid_t pid = fork();
  if (pid == 0) {
    pp__coverage_forked();
    become_worker(cfg, worker_end);
  }
  return pid;
}

int pp__test_host_clone_fails;
int pp__test_host_clone_errno;

/* A fork of this process that, as a raw clone() gives it, has glibc's
 * record of its thread id still saying its parent's: harmless in the
 * launcher, which runs no user code and calls nothing that reads it, and
 * why the *worker* is the fork() and the launcher the clone, not the
 * other way round. The new process is the caller's parent's child. -1
 * with errno where there is no such call. */
static pid_t clone_sibling(void) {
#if defined(__linux__) && defined(SYS_clone) && defined(CLONE_PARENT)
  if (pp__test_host_clone_fails > 0) {
    pp__test_host_clone_fails--; /* this process's copy */
    errno = pp__test_host_clone_errno ? pp__test_host_clone_errno : EPERM;
    return -1;
  }
  /* No new stack: like fork(), the child goes on from here on a copy of
   * this one. The arguments after the flags are all 0 on every
   * architecture's order. */
  return (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), 0L,
                        0L, 0L, 0L);
#else
  errno = ENOSYS;
  return -1;
#endif
}

/* A clone refused for want of a process slot or memory (EAGAIN) is tried
 * again this many times, this far apart: the pool would have no launcher
 * for good, and the wait is the host's alone, before its first call. */
#define HOST_CLONE_TRIES 5
#define HOST_CLONE_PAUSE_NS (2 * 1000000L)

/* ---- the launcher's host ----
 *
 * The host makes the launcher only once the pool needs it: when the
 * parent asks it for a start (a record on the control socket), or before
 * the host first runs the user's code (an initializer or a task), after
 * which it would no longer be a copy of the parent as it was at pool
 * creation. Until then it holds what the launcher will need: the control
 * socket and the guards, on the descriptors right after its channel,
 * which it closes before any user code runs. A pool that never needs a
 * launcher (a short one, whose host ran nothing; QUIT came first) makes
 * none: one process, its clone and its exit fewer on the path of every
 * such pool's start and end (docs/performance.md, startup_ms). */
struct pp__host {
  const pp__backend_config *cfg;
  launcher_seed seed; /* its guards: the first workers forked before it */
  int ctl;
  pid_t owner; /* the pool's owner: this process's parent */
};

/* A worker hosts at most one launcher. */
static pp__host the_host;

/* Done hosting: the socket and the guards are let go (the launcher has
 * its copies, if it was made), and with them what the owner must not see
 * in a task. */
static void host_release(pp__wchan *chan) {
  pp__host *h = chan->host;
  chan->host = NULL;
  pp__close(h->ctl);
  h->ctl = -1;
  for (unsigned k = 0; k < h->seed.nguards; k++)
    pp__close(h->seed.guards[k]);
  seed_free(&h->seed);
}

/* How long a host whose channel ended waits for what its control socket
 * says: QUIT, or EOF. */
#define HOST_END_WAIT_MS 1000

/* 1 when the control socket says the owner is gone: EOF. The owner lets
 * go of it only once it reaped this worker, so while it lives EOF means
 * its end (or a backend broken for good, which ends every worker anyway). */
static int owner_gone(const pp__host *h, int wait_ms) {
  struct pollfd p = {h->ctl, POLLIN, 0};
  if (poll(&p, 1, wait_ms) <= 0)
    return getppid() != h->owner;
  pp__ctl_msg m;
  ssize_t n = recv(h->ctl, &m, sizeof m, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 ||
         (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* The host leaves with no launcher made. When the owner is gone, it does
 * what the launcher would have done: it stops the first workers (one may
 * be busy in a long task, which its channel's EOF does not stop). Its
 * channel's end does not say which: the owner ends a pool by QUIT, then
 * the hang-ups (scheduler.c), while its death closes the channel and the
 * control socket one after the other, so the host waits a moment for one
 * or the other. */
static void host_end(pp__host *h) {
  if (!owner_gone(h, HOST_END_WAIT_MS))
    return;
  for (unsigned k = 0; k < h->seed.nguards; k++)
    pp__pidfd_kill(h->seed.guards[k], SIGKILL);
}

int pp__host_fd(const pp__wchan *chan) {
  return chan && chan->host ? chan->host->ctl : -1;
}

void pp__host_launch(pp__wchan *chan) {
  pp__host *h = chan->host;
  if (!h)
    return;
  launcher_seed *seed = &h->seed;
  int self = pp__pidfd_open(getpid());
  if (self >= 0)
    seed->guards[seed->nguards++] = self;
  pid_t pid = clone_sibling();
  for (int tries = 1; pid < 0 && errno == EAGAIN && tries < HOST_CLONE_TRIES;
       tries++) {
    struct timespec pause = {0, HOST_CLONE_PAUSE_NS};
    nanosleep(&pause, NULL);
    pid = clone_sibling();
  }
  int err = errno;
  if (pid == 0) {
    pp__coverage_forked();
    pp__ctl_msg m;
    memset(&m, 0, sizeof m);
    m.type = PP__CTL_HELLO;
    m.pid = getpid();
    /* When that fails the parent is gone already: the launcher's loop
     * sees that at once and ends the workers it guards. */
    (void)send_record(h->ctl, &m);
    become_launcher(h->cfg, NULL, seed, h->ctl);
  }
  if (pid < 0) {
    pp__ctl_msg m;
    memset(&m, 0, sizeof m);
    m.type = PP__CTL_NO_LAUNCHER;
    m.code = err;
    /* When that fails the parent sees EOF instead: the launcher's loss,
     * as if it had died. */
    (void)send_record(h->ctl, &m);
  }
  host_release(chan);
}

void pp__host_ctl_ready(pp__wchan *chan) {
  pp__host *h = chan->host;
  if (!h)
    return;
  pp__ctl_msg m;
  ssize_t n = recv(h->ctl, &m, sizeof m, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
    return;
  if (n <= 0) {
    /* The owner let go of the socket: it is gone (owner_gone()). */
    host_end(h);
    host_release(chan);
  } else if ((size_t)n == sizeof m && m.type == PP__CTL_QUIT) {
    /* The pool is ending and asked for nothing: the owner sees EOF. */
    host_release(chan);
  } else {
    /* A start: the launcher reads it. */
    pp__host_launch(chan);
  }
}

/* In the launcher's host, first thing: keeps the control socket and the
 * guards next to the channel, and runs as a worker that makes the launcher
 * when the pool first needs it. Where they cannot be kept, it makes the
 * launcher at once. */
static void become_host(const pp__backend_config *cfg, launcher_seed *seed,
                        int ctl, int worker_end) {
  pp__host *h = &the_host;
  struct pp__wchan chan = {worker_end, h, -1};
  h->cfg = cfg;
  h->seed = *seed;
  h->ctl = ctl;
  h->owner = getppid();
  int *fds[KEEP_FDS_MAX];
  unsigned n = 0;
  fds[n++] = &chan.fd;
  fds[n++] = &h->ctl;
  for (unsigned k = 0; k < h->seed.nguards && n < KEEP_FDS_MAX; k++)
    fds[n++] = &h->seed.guards[k];
  const char *call = NULL;
  if (n != 2 + h->seed.nguards ||
      keep_fds(fds, n, PP__SPAWN_CHANNEL_FD, &call) != 0) {
    pp__host_launch(&chan);
    become_worker(cfg, chan.fd);
  }
  run_worker(cfg, chan.fd, h);
}

/* Forks, with a new control socket whose far end it gets, either the
 * launcher (`worker_end` -1) or a worker that first hosts it. The
 * parent's end goes to *ctl. The child starts with the signal `mask`
 * (NULL: the caller's). Returns the child's pid, or -1 with errno. */
static pid_t fork_with_launcher(const pp__backend_config *cfg,
                                const pp__exec_plan *plan, const int *guards,
                                unsigned nguards, const sigset_t *mask,
                                int worker_end, int *ctl) {
  int sv[2];
  if (pp__socketpair(sv) != 0)
    return -1;
  launcher_seed seed;
  int err = 0;
  if (pp__set_nonblock(sv[0]) != 0)
    err = errno;
  else if (seed_make(&seed, cfg, plan, guards, nguards, worker_end >= 0) != 0)
    err = ENOMEM;
  if (err) {
    pp__close(sv[0]);
    pp__close(sv[1]);
    errno = err;
    return -1;
  }
  flush_stdio();
  pid_t pid = fork();
  if (pid == 0) {
    pp__coverage_forked();
    if (mask)
      sigprocmask(SIG_SETMASK, mask, NULL);
    pp__close(sv[0]);
    if (worker_end < 0)
      become_launcher(cfg, plan, &seed, sv[1]);
    become_host(cfg, &seed, sv[1], worker_end);
  }
  err = errno;
  seed_free(&seed);
  pp__close(sv[1]);
  if (pid < 0) {
    pp__close(sv[0]);
    errno = err;
    return -1;
  }
  *ctl = sv[0];
  return pid;
}

pp_status pp__launcher_fork(const pp__backend_config *cfg,
                            const pp__exec_plan *plan, const int *guards,
                            unsigned nguards, const sigset_t *mask, int *ctl,
                            pid_t *pid_out) {
  pid_t pid = fork_with_launcher(cfg, plan, guards, nguards, mask, -1, ctl);
  if (pid < 0)
    return pp__errno_status(errno);
  *pid_out = pid;
  return PP_OK;
}

pid_t pp__worker_fork_hosting(const pp__backend_config *cfg, int worker_end,
                              const int *guards, unsigned nguards, int *ctl) {
  return fork_with_launcher(cfg, NULL, guards, nguards, NULL, worker_end, ctl);
}

pp_status pp__launcher_spawn(const pp__backend_config *cfg, int *ctl,
                             pid_t *pid_out) {
  char fd_opt[64], slots_opt[64];
  snprintf(fd_opt, sizeof fd_opt, "%s%d", PP__FORKSERVER_OPTION,
           LAUNCHER_CTL_FD);
  snprintf(slots_opt, sizeof slots_opt, "%s%u", PP__SLOTS_OPTION,
           cfg->max_slots);
  pp__exec_plan plan;
  pp_status st = pp__exec_plan_make(&plan, fd_opt, slots_opt, cfg->key);
  if (st != PP_OK)
    return st;
  int sv[2];
  if (pp__socketpair(sv) != 0) {
    st = pp__errno_status(errno);
    pp__exec_plan_free(&plan);
    return st;
  }
  /* dup2 onto the same number would leave close-on-exec set: the server
   * would start without its socket. */
  if (sv[1] == LAUNCHER_CTL_FD) {
    int moved = fcntl(sv[1], F_DUPFD_CLOEXEC, LAUNCHER_CTL_FD + 1);
    pp__close(sv[1]);
    sv[1] = moved;
  }
  /* posix_spawn, not fork: this process may have threads, and posix_spawn
   * is the one safe way to start a program from a threaded process. Only
   * descriptors without close-on-exec are inherited; the server closes
   * any the user's code left open before it starts a worker. */
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int fa_ok = 0, attr_ok = 0, rc = -1;
  pid_t pid = -1;
  if (sv[1] >= 0 && (rc = posix_spawn_file_actions_init(&fa)) == 0) {
    fa_ok = 1;
    rc = posix_spawn_file_actions_adddup2(&fa, sv[1], LAUNCHER_CTL_FD);
  }
  if (rc == 0 && (rc = posix_spawnattr_init(&attr)) == 0) {
    attr_ok = 1;
    /* The calling thread's blocked signals are its own business, not the
     * server's. */
    sigset_t none;
    sigemptyset(&none);
    rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0)
      rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  }
  if (rc == 0)
    rc = posix_spawn(&pid, plan.path, &fa, &attr, plan.argv, plan.envp);
  if (sv[1] < 0)
    rc = errno;
  if (fa_ok)
    posix_spawn_file_actions_destroy(&fa);
  if (attr_ok)
    posix_spawnattr_destroy(&attr);
  pp__exec_plan_free(&plan);
  pp__close(sv[1]);
  if (rc == 0 && pp__set_nonblock(sv[0]) != 0) {
    /* The server sees EOF and exits; it is reaped here. */
    rc = errno;
    pp__close_socket(sv[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return pp__errno_status(rc);
  }
  if (rc != 0) {
    pp__close(sv[0]);
    return pp__errno_status(rc);
  }
  *ctl = sv[0];
  *pid_out = pid;
  return PP_OK;
}

int pp__launcher_serve(int ctl, unsigned max_slots, pp__worker_main_fn main,
                       const char *key) {
  launcher L;
  memset(&L, 0, sizeof L);
  L.cfg.context = PP_CONTEXT_FORKSERVER;
  L.cfg.max_slots = max_slots;
  L.cfg.worker_main = main;
  L.cfg.key = key;
  L.ctl = ctl;
  L.sig_r = L.sig_w = -1;
  L.self = getpid();
  L.parent = getppid();
  L.pids = calloc(max_slots, sizeof *L.pids);
  if (!L.pids)
    return setup_failed("calloc", ENOMEM);
  int code = launcher_run(&L);
  free(L.pids);
  pp__close(L.sig_r);
  pp__close(L.sig_w);
  pp__close(L.ctl);
  return code;
}
