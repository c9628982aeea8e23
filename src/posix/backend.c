/* The parent's side of the POSIX backend: the slot table, the poll loop,
 * the send queues, the wake-up descriptor and the event queue. Everything
 * here runs on the scheduler thread, except pp__backend_wake() and what
 * pool creation calls before that thread exists.
 *
 * Workers are children of the launcher (launcher.c), with exceptions: in
 * the fork context, on Linux, the pool's first two workers are forked
 * here, on the thread creating the pool (early_start; "direct" workers).
 * Through the launcher, the first would wait for the launcher's fork, its
 * waking up and its own fork: the first result of every pool would. The
 * second *hosts* the launcher: it clones it before it does anything else,
 * as this process's child, so this process makes two forks, not three,
 * and the second worker's birth and end involve no launcher (a timeline
 * of the start-up showed the second worker's trip through the launcher,
 * and the launcher's exit after it, ending every pool's start-up). The
 * launcher's pid comes with its HELLO. Where the host cannot clone it
 * (NO_LAUNCHER: a sandbox may forbid the call) the pool goes on with the
 * workers it has, a replacement fails to start, and later pools fork the
 * launcher here after their first worker, as they do with one worker.
 * More than two first workers come from the launcher: each fork here is
 * time the creating thread spends (about 85 us on a small VM).
 *
 * A direct worker is known by its pidfd, which says when it ended (poll,
 * no SIGCHLD handler) and carries its signals; this process reaps it with
 * waitpid() on its pid alone. No worker is forked here once the launcher
 * exists, and so none once the pool has its thread. */
#define _GNU_SOURCE 1      /* glibc: eventfd */
#define _DARWIN_C_SOURCE 1 /* macOS: BSD socket names next to POSIX */

#include "event_queue.h"
#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

/* A launcher that died is replaced (launcher_died()), but not a fourth
 * time when each died within a second of the one before: then the pool is
 * broken. */
#define MAX_RELAUNCHES 3
#define RELAUNCH_CALM_MS 1000

/* Room reserved per recv on a channel. */
#define READ_CHUNK (64 * 1024)
/* A read shorter than this that did not fill the buffer ends a channel's
 * reading for this round (see slot_read). */
#define SMALL_READ (16 * 1024)
/* Bytes taken from one channel per wait: one busy worker cannot starve the
 * others. */
#define READ_LIMIT (1024 * 1024)
/* Bytes taken from a worker's channel once it has been reaped: everything
 * it wrote is there, so take it before reporting EXITED. The bound only
 * guards against a grandchild that inherited the channel and floods it. */
#define DRAIN_LIMIT (16 * 1024 * 1024)
/* How long the launcher has to report a worker it was asked to kill. */
#define LAUNCHER_KILL_GRACE_MS 5000
/* Events one slot can produce in a single round (STARTED, INPUT twice,
 * CLOSED, EXITED), used to size the queue once. */
#define EVENTS_PER_SLOT 5

enum slot_state {
  SLOT_FREE,
  SLOT_STARTING, /* START sent, no STARTED yet */
  SLOT_LIVE,     /* started, not reaped */
  SLOT_EXITED    /* reaped: waiting for release */
};

typedef struct wslot {
  enum slot_state state;
  int fd; /* parent's end, made with the START request; -1 once closed */
  long pid;
  int pidfd; /* a direct worker not reaped yet; else -1 */
  pp__buf in, out;
  int write_dead;     /* a send failed: the read side will report CLOSED */
  int pass_fd;        /* goes with the next bytes sent (pp__backend_pass_fd) */
  int64_t kill_asked; /* now_ms() when its KILL went to the launcher; 0 */
} wslot;

struct pp__backend {
  pp__backend_config cfg;
  pid_t launcher;
  int ctl;          /* -1 once the launcher is gone */
  int ctl_failed;   /* a send to the launcher failed */
  int broken;       /* PP__EV_BROKEN was queued */
  int quit_sent;    /* pp__backend_shutdown(): the launcher leaves when done */
  int early;        /* no launcher yet: the first starts fork here */
  unsigned directs; /* direct starts made (or tried) */
  int hosted;       /* the launcher is a direct worker's clone, and
                       `launcher` -1 until its HELLO */
  /* There is no launcher (its host could not make one, or a new one after
   * a death could not be made): the next start makes one. */
  int need_launcher;
  char start_error[160]; /* the last failed start: its call and reason */
  /* The signal mask of the thread that created the pool, for a launcher
   * forked later on the pool's own thread, which blocks every signal. */
  sigset_t creator_mask;
  unsigned relaunches;   /* launchers made after deaths, in a row */
  int64_t relaunched_at; /* now_ms() when the last was */
  pp__buf ctl_in, ctl_out;
  /* Workers' ends of the channels (int) for the START records in ctl_out,
   * in order; each leaves with its record's first byte. */
  pp__buf start_fds;
  size_t ctl_out_off; /* bytes of ctl_out's first record already sent */
  int wake_r, wake_w;
  int wake_is_eventfd;
  atomic_int wake_pending;
  /* The scheduler thread is in (or about to enter) a poll() that waits:
   * only then does a wake() write to the descriptor (see wake_came()). */
  atomic_int sleeping;
  wslot *slots;
  pp__buf events; /* pp__event records not handed out yet */
  size_t events_room;
  struct pollfd *pfd;
  unsigned *pfd_slot;
};

/* ---- small helpers ---- */

/* 64 bits: a 32-bit long's milliseconds of uptime run out after 24.8
 * days. */
static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void emit(pp__backend *b, pp__event_type type, unsigned slot,
                 const pp__event *base) {
  pp__event_push(&b->events, type, slot, base);
}

static size_t queued(const pp__backend *b) {
  return pp__event_count(&b->events);
}

static wslot *slot_at(pp__backend *b, unsigned i) {
  return (b && i < b->cfg.max_slots) ? &b->slots[i] : NULL;
}

static void close_channel(wslot *s) {
  pp__close_socket(s->fd);
  s->fd = -1;
  pp__buf_free(&s->out);
  pp__close(s->pass_fd);
  s->pass_fd = -1;
}

/* One send() of what is to go to the slot's worker, with the descriptor
 * to pass, if there is one, attached to its first byte. */
static ssize_t slot_send(wslot *s, const void *data, size_t len) {
  if (s->pass_fd < 0)
    return send(s->fd, data, len, PP__SEND_FLAGS);
  ssize_t n = pp__send_fds(s->fd, data, len, &s->pass_fd, 1);
  if (n > 0) {
    pp__close(s->pass_fd); /* the worker has its own now */
    s->pass_fd = -1;
  }
  return n;
}

/* Decodes a waitpid() status. */
static pp__exit exit_of(int status) {
  pp__exit how = {.signaled = 0, .code = -1};
  if (WIFSIGNALED(status)) {
    how.signaled = 1;
    how.code = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    how.code = WEXITSTATUS(status);
  }
  return how;
}

/* Reaps a direct worker whose pidfd said it ended (or, with `block`, one
 * just killed). 0 when it has not ended after all. Its pid alone: other
 * children of this process are none of ours. */
static int reap_direct(wslot *s, int block, pp__exit *how) {
  int status = 0;
  pid_t r;
  do
    r = waitpid((pid_t)s->pid, &status, block ? 0 : WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0)
    return 0;
  if (r > 0) {
    *how = exit_of(status);
  } else {
    /* ECHILD: someone else's waitpid(-1) took it. Its end is certain, how
     * it ended is lost. */
    pp__exit lost = {.signaled = 0, .code = -1, .unknown = 1};
    *how = lost;
  }
  pp__close(s->pidfd);
  s->pidfd = -1;
  return 1;
}

/* Kills and reaps a direct worker at once (the pool is being torn down or
 * broken). */
static pp__exit end_direct(wslot *s) {
  pp__exit how = {.signaled = 1, .code = SIGKILL};
  pp__pidfd_kill(s->pidfd, SIGKILL);
  reap_direct(s, 1, &how);
  return how;
}

static void reset_slot(wslot *s) {
  if (s->pidfd >= 0)
    end_direct(s);
  close_channel(s);
  pp__buf_free(&s->in);
  s->state = SLOT_FREE;
  s->pid = 0;
  s->write_dead = 0;
  s->kill_asked = 0;
}

/* ---- start failures, in words ---- */

/* Records why a start failed, the call and the system's reason, for
 * pp__backend_start_error(); returns the status that stands for it. */
static pp_status start_failure(pp__backend *b, const char *call, int err) {
  snprintf(b->start_error, sizeof b->start_error, "%s: %s", call,
           strerror(err));
  return pp__errno_status(err);
}

const char *pp__backend_start_error(const pp__backend *b) {
  return b ? b->start_error : "";
}

/* ---- channels ---- */

/* Reads what the slot's channel holds, up to `limit` bytes: INPUT if any
 * came, then CLOSED on EOF or an error. */
static pp_status slot_read(pp__backend *b, unsigned i, size_t limit) {
  wslot *s = &b->slots[i];
  size_t got = 0;
  int eof = 0;
  pp_status st = PP_OK;
  while (s->fd >= 0 && got < limit) {
    st = pp__buf_reserve(&s->in, READ_CHUNK);
    if (st != PP_OK)
      break; /* the bytes wait in the socket */
    size_t room = s->in.cap - s->in.end;
    ssize_t n = recv(s->fd, pp__buf_tail(&s->in), room, 0);
    if (n > 0) {
      pp__buf_commit(&s->in, (size_t)n);
      got += (size_t)n;
      /* A stream socket fills a read while it holds bytes: a short one
       * emptied it, and another recv() would mostly say EAGAIN (one system
       * call per poll() round when workers answer one task at a time).
       * poll() reports what comes next. Only after a small read, though: a
       * worker streaming a big answer refills the socket while we read,
       * and going back to poll() for each piece slowed big payloads by a
       * few percent. A drain after the worker's exit reads on to the EOF,
       * which it reports before EXITED. */
      if ((size_t)n < room && (size_t)n < SMALL_READ && limit != DRAIN_LIMIT)
        break;
    } else if (n == 0) {
      eof = 1;
      break;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else {
      eof = 1; /* ECONNRESET and the like: nothing more will come */
      break;
    }
  }
  if (got)
    emit(b, PP__EV_INPUT, i, NULL);
  if (eof) {
    close_channel(s);
    emit(b, PP__EV_CLOSED, i, NULL);
  }
  return st;
}

/* Writes queued output without blocking. */
static void slot_flush(wslot *s) {
  while (s->fd >= 0 && !s->write_dead && pp__buf_len(&s->out)) {
    ssize_t n = slot_send(s, pp__buf_head(&s->out), pp__buf_len(&s->out));
    if (n > 0) {
      pp__buf_consume(&s->out, (size_t)n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    } else {
      /* The worker stopped reading (it died or closed its end): what it
       * wrote before is still readable, and EOF comes after it. */
      s->write_dead = 1;
      pp__buf_free(&s->out);
    }
  }
}

/* ---- the launcher's control socket ---- */

static void close_fds(pp__buf *fds) {
  while (pp__buf_len(fds) >= sizeof(int)) {
    int fd;
    memcpy(&fd, pp__buf_head(fds), sizeof fd);
    pp__buf_consume(fds, sizeof fd);
    pp__close_socket(fd);
  }
}

/* Writes queued records without blocking, one record per call, so that
 * each channel end travels with the first byte of its own START. */
static void ctl_flush(pp__backend *b) {
  while (b->ctl >= 0 && pp__buf_len(&b->ctl_out)) {
    const unsigned char *p = pp__buf_head(&b->ctl_out);
    size_t len = sizeof(pp__ctl_msg) - b->ctl_out_off;
    int fd = -1;
    if (b->ctl_out_off == 0) {
      pp__ctl_msg m;
      memcpy(&m, p, sizeof m);
      if (m.type == PP__CTL_START && pp__buf_len(&b->start_fds) >= sizeof fd)
        memcpy(&fd, pp__buf_head(&b->start_fds), sizeof fd);
    }
    /* The START record's channel end goes with its first byte. */
    ssize_t n = pp__send_fds(b->ctl, p, len, &fd, (size_t)(fd >= 0));
    if (n > 0) {
      if (fd >= 0) {
        /* In flight now: the launcher holds it once it reads. */
        pp__buf_consume(&b->start_fds, sizeof fd);
        pp__close(fd);
      }
      pp__buf_consume(&b->ctl_out, (size_t)n);
      b->ctl_out_off = (b->ctl_out_off + (size_t)n) % sizeof(pp__ctl_msg);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    } else {
      b->ctl_failed = 1;
      pp__buf_clear(&b->ctl_out);
      b->ctl_out_off = 0;
    }
  }
}

static pp_status ctl_request(pp__backend *b, int32_t type, unsigned slot,
                             long pid) {
  if (b->ctl < 0 || b->ctl_failed)
    return PP_OK; /* BROKEN is on its way */
  pp__ctl_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  m.slot = slot;
  m.pid = pid;
  pp_status st = pp__buf_append(&b->ctl_out, &m, sizeof m);
  if (st == PP_OK)
    ctl_flush(b);
  return st;
}

/* Reads what the launcher sent. 1 when its socket ended (EOF, error), -1
 * when out of memory (the bytes wait in the socket). */
static int ctl_read(pp__backend *b) {
  for (;;) {
    if (pp__buf_reserve(&b->ctl_in, 64 * sizeof(pp__ctl_msg)) != PP_OK)
      return -1;
    /* The launcher sends no descriptors: room 0 closes any that came. */
    size_t nfds;
    ssize_t n = pp__recv_fds(b->ctl, pp__buf_tail(&b->ctl_in),
                             b->ctl_in.cap - b->ctl_in.end, NULL, 0, &nfds, 0);
    if (n < 0)
      return !(errno == EAGAIN || errno == EWOULDBLOCK);
    if (n == 0)
      return 1;
    pp__buf_commit(&b->ctl_in, (size_t)n);
  }
}

static void on_started(pp__backend *b, const pp__ctl_msg *m) {
  wslot *s = slot_at(b, m->slot);
  if (!s || s->state != SLOT_STARTING)
    return;
  s->state = SLOT_LIVE;
  s->pid = (long)m->pid;
  pp__event ev;
  memset(&ev, 0, sizeof ev);
  ev.pid = s->pid;
  emit(b, PP__EV_STARTED, m->slot, &ev);
  slot_flush(s); /* what did not fit in the socket while it started */
  /* The worker may have answered already (its challenge was waiting for
   * it): take that now rather than in another round of poll(). */
  if (s->fd >= 0)
    slot_read(b, m->slot, READ_LIMIT);
}

static void on_exited(pp__backend *b, unsigned i, long pid, pp__exit how) {
  wslot *s = &b->slots[i];
  /* What the worker wrote before it ended comes first: all of it is in
   * the socket by now (CLOSED too, if EOF came). A channel still open
   * after that is held by a process the worker's task forked, which
   * inherited the worker's end and may live on for long: nothing of the
   * worker's can come any more, and its end must not wait for that
   * process. */
  if (s->fd >= 0)
    slot_read(b, i, DRAIN_LIMIT);
  if (s->fd >= 0) {
    close_channel(s);
    emit(b, PP__EV_CLOSED, i, NULL);
  }
  s->state = SLOT_EXITED;
  pp__event ev;
  memset(&ev, 0, sizeof ev);
  ev.pid = pid;
  ev.exit = how;
  emit(b, PP__EV_EXITED, i, &ev);
}

/* Process-wide: a launcher's host failed to clone it once, so later pools
 * fork theirs here (where that failed once, it always will). */
atomic_int pp__hosting_failed;

static void drop_ctl(pp__backend *b) {
  pp__close_socket(b->ctl);
  b->ctl = -1;
  b->ctl_failed = 0;
  pp__buf_free(&b->ctl_out);
  b->ctl_out_off = 0;
  close_fds(&b->start_fds);
}

/* The launcher's host is done hosting and made no launcher: the workers
 * this process forked go on; the starts asked of it fail with `status`
 * (the core tries them again), and the next start forks a launcher here,
 * as a copy of this process as it is then (launcher_died() says why that
 * is as good as it gets once the pool has its thread). */
static void unhosted(pp__backend *b, pp_status status) {
  drop_ctl(b);
  b->hosted = 0;
  b->need_launcher = 1;
  pp__event ev;
  memset(&ev, 0, sizeof ev);
  ev.status = status;
  for (unsigned i = 0; i < b->cfg.max_slots; i++) {
    wslot *s = &b->slots[i];
    if (s->state == SLOT_STARTING) {
      reset_slot(s);
      emit(b, PP__EV_START_FAILED, i, &ev);
    }
  }
}

/* NO_LAUNCHER: the host could not clone one, and later pools will not ask
 * theirs to. */
static void lost_host(pp__backend *b, int err) {
  atomic_store(&pp__hosting_failed, 1);
  if (err)
    start_failure(b, "the launcher's clone", err);
  unhosted(b, pp__errno_status(err ? err : ENOSYS));
}

/* Turns complete records into events. 1 on a protocol breach. */
static int ctl_parse(pp__backend *b) {
  while (pp__buf_len(&b->ctl_in) >= sizeof(pp__ctl_msg)) {
    pp__ctl_msg m;
    memcpy(&m, pp__buf_head(&b->ctl_in), sizeof m);
    pp__buf_consume(&b->ctl_in, sizeof m);
    wslot *s = slot_at(b, m.slot);
    if (m.type == PP__CTL_STARTED) {
      on_started(b, &m);
    } else if (m.type == PP__CTL_START_FAILED) {
      if (!s || s->state != SLOT_STARTING)
        continue;
      if (m.call != PP__CTL_CALL_NONE && m.code > 0)
        start_failure(b,
                      m.call == PP__CTL_CALL_EXEC
                          ? "the launcher's exec of this program"
                      : m.call == PP__CTL_CALL_PIPE ? "the launcher's pipe"
                                                    : "the launcher's fork",
                      (int)m.code);
      reset_slot(s);
      pp__event ev;
      memset(&ev, 0, sizeof ev);
      ev.status = (pp_status)m.status;
      emit(b, PP__EV_START_FAILED, m.slot, &ev);
    } else if (m.type == PP__CTL_HELLO && b->hosted && b->launcher < 0 &&
               m.pid > 0) {
      b->launcher = (pid_t)m.pid;
    } else if (m.type == PP__CTL_NO_LAUNCHER && b->hosted && b->launcher < 0) {
      lost_host(b, (int)m.code);
      return 0;
    } else if (m.type == PP__CTL_EXITED) {
      if (!s || s->state != SLOT_LIVE || s->pid != (long)m.pid || s->pidfd >= 0)
        continue;
      pp__exit how = {.signaled = m.signaled != 0, .code = (long)m.code};
      on_exited(b, m.slot, s->pid, how);
    } else {
      return 1;
    }
  }
  return 0;
}

/* A worker of a launcher that died: what it wrote is taken, its channel
 * closed (a worker still alive, an orphan where there is no parent-death
 * signal, sees EOF and exits), and it is reported ended with the launcher
 * (Linux: its parent-death signal is SIGKILL). */
static void orphaned(pp__backend *b, unsigned i) {
  pp__exit how = {.signaled = 1, .code = SIGKILL, .with_launcher = 1};
  on_exited(b, i, b->slots[i].pid, how);
}

/* The launcher is gone: the starts asked of it fail, and its workers are
 * reported ended (orphaned()). The workers forked here stay, unless
 * `end_directs`: then they are killed and reaped here, so that they end
 * with the others and their slots are done with like theirs. */
static void launcher_gone(pp__backend *b, int end_directs) {
  drop_ctl(b);
  pp__event ev;
  memset(&ev, 0, sizeof ev);
  ev.status = PP_ESYSTEM;
  for (unsigned i = 0; i < b->cfg.max_slots; i++) {
    wslot *s = &b->slots[i];
    if (s->state == SLOT_STARTING) {
      reset_slot(s);
      emit(b, PP__EV_START_FAILED, i, &ev);
    } else if (s->state == SLOT_LIVE && s->pidfd < 0) {
      orphaned(b, i);
    } else if (s->state == SLOT_LIVE && end_directs) {
      on_exited(b, i, s->pid, end_direct(s));
    }
  }
}

/* No worker can start and none will be reported any more: every one is
 * reported ended now, and the pool is broken, for `why`: PP_ESYSTEM when
 * the launcher kept dying, PP_EPROTOCOL when it sent a malformed report.
 * `last_end`, when known, is how the last launcher ended: the event
 * carries it (with its pid) so that the pool's message can say why. */
static void go_broken(pp__backend *b, pp_status why, long last_pid,
                      const pp__exit *last_end) {
  if (b->broken)
    return;
  b->broken = 1;
  pp__event ev;
  memset(&ev, 0, sizeof ev);
  ev.status = why;
  if (last_end) {
    ev.pid = last_pid;
    ev.exit = *last_end;
  }
  emit(b, PP__EV_BROKEN, 0, &ev);
  launcher_gone(b, 1);
}

/* Whether a slot still has a worker the launcher must start or reap. */
static int any_worker(const pp__backend *b) {
  for (unsigned i = 0; i < b->cfg.max_slots; i++) {
    const wslot *s = &b->slots[i];
    if (s->state == SLOT_STARTING || (s->state == SLOT_LIVE && s->pidfd < 0))
      return 1;
  }
  return 0;
}

/* How long a launcher whose socket ended gets to exit by itself before it
 * is killed (ms): one that met a failure kills and reaps its workers first,
 * and its own exit status says what failed. One killed from outside is
 * gone already. */
#define LAUNCHER_EXIT_GRACE_MS 50

/* A dead launcher, this process's child, is reaped (killed after a grace,
 * in case it only closed its socket: it is still our unreaped child, so
 * the pid cannot be another process's). Unknown before a hosted one's
 * HELLO. Returns its pid and sets `*how` to how it ended, or returns 0
 * when that is not known: it had to be killed here, and its end is ours. */
static long reap_launcher(pp__backend *b, pp__exit *how) {
  long reaped = 0;
  if (b->launcher > 0) {
    int status = 0;
    pid_t r;
    for (int waited = 0;; waited++) {
      do
        r = waitpid(b->launcher, &status, WNOHANG);
      while (r < 0 && errno == EINTR);
      if (r != 0 || waited >= LAUNCHER_EXIT_GRACE_MS)
        break;
      struct timespec ms = {0, 1000000};
      nanosleep(&ms, NULL);
    }
    if (r == b->launcher) {
      *how = exit_of(status);
      reaped = (long)r;
    } else if (r == 0) {
      kill(b->launcher, SIGKILL);
      while (waitpid(b->launcher, NULL, 0) < 0 && errno == EINTR) {
      }
    }
  }
  b->launcher = -1;
  b->hosted = 0;
  return reaped;
}

static pp_status start_launcher(pp__backend *b, const pp__backend_config *cfg);

/* The launcher died while the pool still needs it (killed by hand or by
 * the kernel's OOM killer, say): its workers are reported lost, the
 * workers forked here go on, and a new launcher is made at once, as the
 * first one was, or by the next start if that fails. Python's forkserver
 * is restarted the same way; a fork pool's new launcher is a copy of this
 * process as it is now (see docs/architecture.md). A launcher that keeps
 * dying soon after it is made breaks the pool instead. */
static void launcher_died(pp__backend *b) {
  pp__exit how;
  long pid = reap_launcher(b, &how);
  int64_t now = now_ms();
  if (now - b->relaunched_at > RELAUNCH_CALM_MS)
    b->relaunches = 0;
  if (b->relaunches >= MAX_RELAUNCHES) {
    go_broken(b, PP_ESYSTEM, pid, pid ? &how : NULL);
    return;
  }
  b->relaunches++;
  b->relaunched_at = now;
  launcher_gone(b, 0);
  pp__buf_clear(&b->ctl_in);
  b->need_launcher = start_launcher(b, &b->cfg) != PP_OK;
}

/* The launcher's socket ended. After QUIT, with every worker reported, that
 * is the launcher leaving as asked; otherwise it died. After QUIT no
 * worker will start: its workers are reported lost, and there is no need
 * for another. */
static void ctl_ended(pp__backend *b) {
  if (b->ctl < 0) /* settled already (lost_host()) */
    return;
  if (b->hosted && b->launcher < 0) {
    /* The host ended, or let go of the socket after QUIT, before the pool
     * needed a launcher (or killed before it made the one asked for):
     * there was never one to lose. */
    unhosted(b, PP_ESYSTEM);
    return;
  }
  if (b->quit_sent && !any_worker(b)) {
    drop_ctl(b);
    return;
  }
  if (b->quit_sent)
    launcher_gone(b, 0);
  else
    launcher_died(b);
}

/* ---- wake-ups ---- */

/* The descriptor that wakes the scheduler thread; a failure is described
 * as a start's is (the pool's creation reports it). */
static pp_status make_wake(pp__backend *b) {
#ifdef __linux__
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd >= 0) {
    b->wake_r = b->wake_w = pp__fd_above_std(fd);
    b->wake_is_eventfd = 1;
    return b->wake_r < 0 ? start_failure(b, "fcntl(F_DUPFD_CLOEXEC)", errno)
                         : PP_OK;
  }
#endif
  int p[2];
  if (pipe(p) != 0)
    return start_failure(b, "pipe", errno);
  b->wake_r = pp__fd_above_std(p[0]);
  b->wake_w = pp__fd_above_std(p[1]);
  if (b->wake_r < 0 || b->wake_w < 0)
    return start_failure(b, "fcntl(F_DUPFD_CLOEXEC)", errno);
  if (pp__set_cloexec(b->wake_r) || pp__set_cloexec(b->wake_w) ||
      pp__set_nonblock(b->wake_r) || pp__set_nonblock(b->wake_w))
    return start_failure(b, "fcntl", errno);
  return PP_OK;
}

static void wake_drain(pp__backend *b) {
  unsigned char buf[64];
  for (;;) {
    ssize_t n = read(b->wake_r, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0 || b->wake_is_eventfd)
      break;
  }
  /* Cleared only after the read. Cleared before it, a wake() could set the
   * flag and have its byte swallowed by this read: the flag would stay set
   * and every later wake() would skip its write and be lost. Cleared after,
   * a wake() that saw the flag still set made its change before this drain
   * returns, and the scheduler looks at every change after a WAKE. */
  atomic_store(&b->wake_pending, 0);
}

/* Before a poll() that may wait: tells wake() to write from now on, then
 * takes a wake() that came while this thread was awake and wrote nothing.
 * 1 when one did: report it instead of waiting. Each side stores, then
 * loads what the other stores (sequentially consistent), so at least one
 * sees the other: a wake() is never lost. */
static int wake_came(pp__backend *b) {
  atomic_store(&b->sleeping, 1);
  if (!atomic_exchange(&b->wake_pending, 0))
    return 0;
  atomic_store(&b->sleeping, 0);
  return 1;
}

void pp__backend_wake(pp__backend *b) {
  if (!b || atomic_exchange(&b->wake_pending, 1))
    return;
  /* An awake scheduler thread looks at the flag before it sleeps, and at
   * every change on each of its passes anyway: the write, and its read,
   * were two system calls for nothing (an imap's consumer wakes it for
   * every chunk it takes). */
  if (!atomic_load(&b->sleeping))
    return;
  uint64_t one = 1;
  size_t len = b->wake_is_eventfd ? sizeof one : 1;
  while (write(b->wake_w, &one, len) < 0 && errno == EINTR) {
  }
}

/* ---- life cycle ---- */

/* The longest a backend's end waits for a hosted launcher's HELLO: the
 * launcher says it before anything else, so only a stopped process makes
 * this wait at all. */
#define HELLO_WAIT_MS 5000

/* At the end, a hosted launcher that has not said HELLO yet: its pid is
 * needed to reap it. It comes, or EOF does when there is no launcher (its
 * host ended or failed first). */
static void await_hello(pp__backend *b) {
  int64_t until = now_ms() + HELLO_WAIT_MS;
  int ended = 0;
  while (b->launcher < 0) {
    while (pp__buf_len(&b->ctl_in) >= sizeof(pp__ctl_msg)) {
      pp__ctl_msg m;
      memcpy(&m, pp__buf_head(&b->ctl_in), sizeof m);
      pp__buf_consume(&b->ctl_in, sizeof m);
      if (m.type == PP__CTL_HELLO && m.pid > 0)
        b->launcher = (pid_t)m.pid;
      if (m.type == PP__CTL_HELLO || m.type == PP__CTL_NO_LAUNCHER)
        return;
    }
    /* The read that met the socket's end may have brought the HELLO with
     * it (a launcher that said it and left at once): it was looked for
     * above, and nothing more can come. */
    if (ended || b->ctl < 0)
      return;
    int64_t left = until - now_ms();
    struct pollfd p = {b->ctl, POLLIN, 0};
    if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR))
      return;
    ended = ctl_read(b) != 0;
  }
}

static void backend_free(pp__backend *b) {
  if (b->slots) {
    for (unsigned i = 0; i < b->cfg.max_slots; i++)
      reset_slot(&b->slots[i]);
  }
  if (b->hosted)
    await_hello(b);
  pp__close_socket(b->ctl);
  b->ctl = -1;
  if (b->launcher > 0) {
    /* The launcher saw EOF: it kills and reaps its workers, then exits. */
    while (waitpid(b->launcher, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  close_fds(&b->start_fds);
  pp__close(b->wake_r);
  if (b->wake_w != b->wake_r)
    pp__close(b->wake_w);
  pp__buf_free(&b->ctl_in);
  pp__buf_free(&b->ctl_out);
  pp__buf_free(&b->start_fds);
  pp__buf_free(&b->events);
  free(b->slots);
  free(b->pfd);
  free(b->pfd_slot);
  free(b);
}

static pp_status launch(pp__backend *b, const pp__backend_config *cfg) {
  if (cfg->context == PP_CONTEXT_FORKSERVER)
    return pp__launcher_spawn(cfg, &b->ctl, &b->launcher);
  if (cfg->context == PP_CONTEXT_FORK) {
    /* The direct workers' pidfds, for the launcher to guard. */
    int *guards = malloc(cfg->max_slots * sizeof *guards);
    if (!guards)
      return PP_ENOMEM;
    unsigned n = 0;
    for (unsigned i = 0; i < cfg->max_slots; i++)
      if (b->slots[i].pidfd >= 0)
        guards[n++] = b->slots[i].pidfd;
    pp_status st = pp__launcher_fork(cfg, NULL, guards, n, &b->creator_mask,
                                     &b->ctl, &b->launcher);
    free(guards);
    return st;
  }
  /* spawn: the launcher gets the plan ready-made, as it may not allocate
   * (see launcher.c). */
  char opt[64];
  snprintf(opt, sizeof opt, "%s%d", PP__WORKER_OPTION, PP__SPAWN_CHANNEL_FD);
  pp__exec_plan plan;
  pp_status st = pp__exec_plan_make(&plan, opt, NULL, cfg->key);
  if (st == PP_OK)
    st = pp__launcher_fork(cfg, &plan, NULL, 0, &b->creator_mask, &b->ctl,
                           &b->launcher);
  pp__exec_plan_free(&plan);
  return st;
}

/* Starts the pool's launcher; a system call's failure is recorded for
 * pp__backend_start_error(), with the system's reason. */
static pp_status start_launcher(pp__backend *b, const pp__backend_config *cfg) {
  errno = 0;
  pp_status st = launch(b, cfg);
  int err = errno;
  if (st == PP_ESYSTEM && err)
    start_failure(b, "starting the launcher", err);
  return st;
}

/* Pidfds (Linux >= 5.3), and SIGCHLD left at its default. A process that
 * ignores SIGCHLD (or sets SA_NOCLDWAIT) has its children reaped by the
 * kernel, and one with a handler usually reaps every child in it: either
 * way their exit statuses would be lost to us. Those processes get every
 * worker from the launcher, as before. */
int pp__direct_workers_possible(void) {
  struct sigaction sa;
  if (sigaction(SIGCHLD, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL ||
      (sa.sa_flags & SA_NOCLDWAIT))
    return 0;
  int fd = pp__pidfd_open(getpid());
  if (fd < 0)
    return 0;
  pp__close(fd);
  return 1;
}

/* Whether the first workers are forked here: the fork context, early
 * starts, and what pp__direct_workers_possible() asks of the process. */
static int direct_ok(const pp__backend_config *cfg) {
  return cfg->context == PP_CONTEXT_FORK && cfg->early_start &&
         pp__direct_workers_possible();
}

pp_status pp__backend_create(pp__backend **out, const pp__backend_config *cfg) {
  if (!out || !cfg)
    return PP_EINVAL;
  *out = NULL;
  switch (cfg->context) {
  case PP_CONTEXT_FORK:
  case PP_CONTEXT_SPAWN:
  case PP_CONTEXT_FORKSERVER:
    break;
  default:
    return PP_EINVAL;
  }
  if (!cfg->worker_main || cfg->max_slots == 0 ||
      cfg->max_slots > PP__MAX_SLOTS)
    return PP_EINVAL;

  pp__backend *b = calloc(1, sizeof *b);
  if (!b)
    return PP_ENOMEM;
  b->cfg = *cfg;
  b->ctl = b->wake_r = b->wake_w = -1;
  b->launcher = -1;
  pthread_sigmask(SIG_SETMASK, NULL, &b->creator_mask);
  atomic_init(&b->wake_pending, 0);
  atomic_init(&b->sleeping, 0);
  size_t n = cfg->max_slots;
  b->slots = calloc(n, sizeof *b->slots);
  /* Per slot: its channel, and a direct worker's pidfd. */
  b->pfd = calloc(2 * n + 2, sizeof *b->pfd);
  b->pfd_slot = calloc(2 * n + 2, sizeof *b->pfd_slot);
  b->events_room = (EVENTS_PER_SLOT * n + 4) * sizeof(pp__event);
  pp_status st = PP_ENOMEM;
  if (b->slots && b->pfd && b->pfd_slot &&
      pp__buf_reserve(&b->events, b->events_room) == PP_OK &&
      pp__buf_reserve(&b->start_fds, (n + 8) * sizeof(int)) == PP_OK) {
    st = make_wake(b);
  }
  for (size_t i = 0; b->slots && i < n; i++)
    b->slots[i].fd = b->slots[i].pidfd = b->slots[i].pass_fd = -1;
  /* Last: the launcher is a copy of this process as it is now, and every
   * failure path above needs no launcher to stop. With early starts in
   * the fork context it comes later, after the first workers
   * (pp__backend_ready()), when they can be forked here. */
  if (st == PP_OK && direct_ok(cfg))
    b->early = 1;
  else if (st == PP_OK)
    st = start_launcher(b, cfg);
  if (st != PP_OK) {
    if (b->start_error[0])
      snprintf(pp__thread_message(), PP__THREAD_MESSAGE, "%s", b->start_error);
    backend_free(b);
    return st;
  }
  *out = b;
  return PP_OK;
}

void pp__backend_destroy(pp__backend *b) {
  if (b)
    backend_free(b);
}

pp_status pp__backend_ready(pp__backend *b) {
  if (!b)
    return PP_EINVAL;
  if (!b->early)
    return PP_OK;
  /* Still early when it fails: the next start, or this call from the
   * pool's creation, tries again; a pool whose call fails is not made. */
  pp_status st = start_launcher(b, &b->cfg);
  if (st == PP_OK)
    b->early = 0;
  return st;
}

/* A host undone before it was reported started may have made its
 * launcher, this process's child: it is reaped, once EOF on its socket
 * has made it leave. */
static void abandon_launcher(pp__backend *b, int ctl) {
  b->ctl = ctl;
  b->hosted = 1;
  await_hello(b);
  drop_ctl(b);
  pp__buf_clear(&b->ctl_in);
  if (b->launcher > 0)
    while (waitpid(b->launcher, NULL, 0) < 0 && errno == EINTR) {
    }
  b->launcher = -1;
  b->hosted = 0;
}

/* Forks the launcher's host: a worker whose guards (see launcher.c) are
 * the direct workers forked before it. */
static pid_t fork_host(pp__backend *b, int worker_end, int *ctl) {
  int guards[2];
  unsigned n = 0;
  for (unsigned i = 0; i < b->cfg.max_slots && n < 2; i++)
    if (b->slots[i].pidfd >= 0)
      guards[n++] = b->slots[i].pidfd;
  return pp__worker_fork_hosting(&b->cfg, worker_end, guards, n, ctl);
}

/* A direct worker (see the top of this file): forked here, reported
 * started at once. With `host`, it brings the launcher to life: the pool
 * is then past its early starts. A host that could not be forked leaves
 * them to pp__backend_ready(), which forks the launcher here. */
static pp_status start_direct(pp__backend *b, unsigned slot, int host) {
  wslot *s = &b->slots[slot];
  int sv[2];
  if (pp__socketpair(sv) != 0)
    return start_failure(b, "socketpair", errno);
  if (pp__set_nonblock(sv[0]) != 0) {
    pp_status st = start_failure(b, "fcntl", errno);
    pp__close(sv[0]);
    pp__close(sv[1]);
    return st;
  }
  int ctl = -1;
  pid_t pid =
      host ? fork_host(b, sv[1], &ctl) : pp__worker_fork(&b->cfg, sv[1]);
  int err = errno;
  const char *call = "fork";
  pp__close(sv[1]);
  int pidfd = pid > 0 ? pp__pidfd_open(pid) : -1;
  if (pid > 0 && pidfd < 0) {
    /* Unwatchable (out of descriptors): undone. Not reaped by anyone
     * else yet, so the pid is still that child's. */
    err = errno;
    call = "pidfd_open";
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  if (pidfd < 0) {
    pp__close(sv[0]);
    if (host)
      abandon_launcher(b, ctl);
    return start_failure(b, call, err);
  }
  if (host) {
    b->ctl = ctl;
    b->hosted = 1;
    b->early = 0;
  }
  reset_slot(s);
  s->state = SLOT_LIVE;
  s->fd = sv[0];
  s->pid = (long)pid;
  s->pidfd = pidfd;
  pp__event ev;
  memset(&ev, 0, sizeof ev);
  ev.pid = s->pid;
  emit(b, PP__EV_STARTED, slot, &ev);
  return PP_OK;
}

pp_status pp__backend_start(pp__backend *b, unsigned slot) {
  wslot *s = slot_at(b, slot);
  if (!s)
    return PP_EINVAL;
  if (s->state != SLOT_FREE)
    return PP_ESTATE;
  if (b->broken)
    return PP_ESYSTEM;
  if (b->quit_sent)
    return PP_ESTATE;
  if (b->need_launcher) {
    pp_status ls = start_launcher(b, &b->cfg);
    if (ls != PP_OK)
      return ls;
    b->need_launcher = 0;
  }
  if (b->early) {
    /* The second hosts the launcher, unless that failed once before. */
    int host = b->directs == 1 && !atomic_load(&pp__hosting_failed);
    if (b->directs == 0 || host) {
      b->directs++;
      return start_direct(b, slot, host);
    }
    pp_status ls = pp__backend_ready(b);
    if (ls != PP_OK)
      return ls;
  }
  /* The channel is made here and the worker's end goes to the launcher
   * with the request: what the core sends now (the challenge) waits in the
   * socket, and the worker finds it there as it starts, without a round
   * trip through this thread after STARTED. */
  int sv[2];
  if (pp__socketpair(sv) != 0)
    return start_failure(b, "socketpair", errno);
  pp_status st =
      pp__set_nonblock(sv[0]) == 0 ? PP_OK : start_failure(b, "fcntl", errno);
  if (st == PP_OK)
    st = pp__buf_append(&b->start_fds, &sv[1], sizeof sv[1]);
  if (st == PP_OK) {
    st = ctl_request(b, PP__CTL_START, slot, 0);
    if (st != PP_OK) /* not queued, so not sent: still the last one */
      b->start_fds.end -= sizeof sv[1];
  }
  if (st != PP_OK) {
    pp__close(sv[0]);
    pp__close(sv[1]);
    return st;
  }
  reset_slot(s);
  s->state = SLOT_STARTING;
  s->fd = sv[0];
  return PP_OK;
}

void pp__backend_shutdown(pp__backend *b) {
  if (!b || b->quit_sent)
    return;
  b->quit_sent = 1;
  /* Lost only with the launcher itself, and then nothing is left for it to
   * do: ctl_ended() or go_broken() settles the rest. */
  ctl_request(b, PP__CTL_QUIT, 0, 0);
}

pp_status pp__backend_send(pp__backend *b, unsigned slot, const void *data,
                           size_t len) {
  wslot *s = slot_at(b, slot);
  if (!s || (!data && len))
    return PP_EINVAL;
  if (s->state == SLOT_FREE)
    return PP_ESTATE;
  if (s->fd < 0 || s->write_dead)
    return PP_EOF;
  if (len == 0)
    return PP_OK;
  if (pp__buf_len(&s->out)) {
    pp_status st = pp__buf_append(&s->out, data, len);
    if (st != PP_OK)
      return st;
    slot_flush(s);
    return s->write_dead ? PP_EOF : PP_OK;
  }
  /* Nothing queued: write straight from the caller's bytes, copy only the
   * rest. */
  const unsigned char *p = data;
  size_t sent = 0;
  while (sent < len) {
    ssize_t n = slot_send(s, p + sent, len - sent);
    if (n > 0) {
      sent += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else {
      s->write_dead = 1;
      return PP_EOF;
    }
  }
  if (sent == len)
    return PP_OK;
  pp_status st = pp__buf_append(&s->out, p + sent, len - sent);
  if (st != PP_OK && sent > 0) {
    /* Half a message went out and the rest cannot follow: end the stream
     * so the worker sees EOF rather than a truncated frame. */
    s->write_dead = 1;
    shutdown(s->fd, SHUT_WR);
  }
  return st;
}

int pp__backend_named_segments(const pp__backend *b) {
  return b->cfg.named_segments;
}

pp_status pp__backend_pass_fd(pp__backend *b, unsigned slot, int fd) {
  wslot *s = slot_at(b, slot);
  if (!s || fd < 0)
    return PP_EINVAL;
  if (s->state == SLOT_FREE || s->pass_fd >= 0)
    return PP_ESTATE;
  if (s->fd < 0 || s->write_dead)
    return PP_EOF;
  /* A duplicate: the caller may close its own before this one goes. */
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* not a standard stream's */
  if (dup < 0)
    return pp__errno_status(errno);
  s->pass_fd = dup;
  return PP_OK;
}

size_t pp__backend_pending(const pp__backend *b, unsigned slot) {
  if (!b || slot >= b->cfg.max_slots)
    return 0;
  return pp__buf_len(&b->slots[slot].out);
}

pp__buf *pp__backend_input(pp__backend *b, unsigned slot) {
  wslot *s = slot_at(b, slot);
  return (s && s->state != SLOT_FREE) ? &s->in : NULL;
}

pp_status pp__backend_hangup(pp__backend *b, unsigned slot) {
  wslot *s = slot_at(b, slot);
  if (!s)
    return PP_EINVAL;
  switch (s->state) {
  case SLOT_FREE:
    return PP_ESTATE;
  case SLOT_STARTING:
    /* The worker sees EOF as soon as it starts, and exits. */
    close_channel(s);
    return PP_OK;
  default:
    /* Queued output is dropped with the channel: EOF is the message. */
    close_channel(s);
    return PP_OK;
  }
}

static pp_status signal_slot(pp__backend *b, unsigned slot, int32_t type) {
  wslot *s = slot_at(b, slot);
  if (!s)
    return PP_EINVAL;
  switch (s->state) {
  case SLOT_FREE:
    return PP_ESTATE;
  case SLOT_STARTING:
    /* The launcher reads requests in order: pid 0 means whoever it has
     * started in that slot by then. */
    if (type == PP__CTL_KILL && !s->kill_asked)
      s->kill_asked = now_ms();
    return ctl_request(b, type, slot, 0);
  case SLOT_LIVE:
    if (s->pidfd >= 0) {
      /* ESRCH: it ended and its pidfd will say so. */
      pp__pidfd_kill(s->pidfd, type == PP__CTL_KILL ? SIGKILL : SIGTERM);
      return PP_OK;
    }
    if (type == PP__CTL_KILL && !s->kill_asked)
      s->kill_asked = now_ms();
    return ctl_request(b, type, slot, s->pid);
  default:
    return PP_OK; /* reaped already */
  }
}

pp_status pp__backend_kill(pp__backend *b, unsigned slot) {
  return signal_slot(b, slot, PP__CTL_KILL);
}

pp_status pp__backend_stop(pp__backend *b, unsigned slot) {
  return signal_slot(b, slot, PP__CTL_TERM);
}

void pp__backend_release(pp__backend *b, unsigned slot) {
  wslot *s = slot_at(b, slot);
  /* Before EXITED the launcher still owns the process: the slot cannot be
   * reused yet, so that is a no-op. */
  if (!s || s->state != SLOT_EXITED)
    return;
  reset_slot(s);
  /* Events of the old worker must not reach a new one in the same slot. */
  pp__event_drop_slot(&b->events, slot);
}

/* ---- waiting ---- */

static nfds_t build_pollfds(pp__backend *b, nfds_t *ctl_at) {
  nfds_t n = 0;
  b->pfd[n].fd = b->wake_r;
  b->pfd[n].events = POLLIN;
  b->pfd[n++].revents = 0;
  *ctl_at = 0;
  if (b->ctl >= 0) {
    *ctl_at = n;
    b->pfd[n].fd = b->ctl;
    b->pfd[n].events = POLLIN | (pp__buf_len(&b->ctl_out) ? POLLOUT : 0);
    b->pfd[n++].revents = 0;
  }
  for (unsigned i = 0; i < b->cfg.max_slots; i++) {
    wslot *s = &b->slots[i];
    /* Not before STARTED: no event of a slot may come before that one (a
     * start that fails closes the worker's end, and only START_FAILED must
     * tell). What is written meanwhile waits in the socket. */
    if (s->fd >= 0 && s->state != SLOT_STARTING) {
      b->pfd_slot[n] = i;
      b->pfd[n].fd = s->fd;
      b->pfd[n].events =
          POLLIN | ((pp__buf_len(&s->out) && !s->write_dead) ? POLLOUT : 0);
      b->pfd[n++].revents = 0;
    }
    /* Readable once the direct worker has ended; after its channel, so
     * that the channel's last bytes are taken first. */
    if (s->pidfd >= 0) {
      b->pfd_slot[n] = i;
      b->pfd[n].fd = s->pidfd;
      b->pfd[n].events = POLLIN;
      b->pfd[n++].revents = 0;
    }
  }
  return n;
}

/* One pass over what poll() reported. Channels before the launcher's
 * records, so a worker's last bytes tend to precede its EXITED. */
static pp_status handle_ready(pp__backend *b, nfds_t n, nfds_t ctl_at) {
  pp_status st = PP_OK;
  if (b->pfd[0].revents) {
    wake_drain(b);
    emit(b, PP__EV_WAKE, 0, NULL);
  }
  for (nfds_t k = 1; k < n; k++) {
    if (k == ctl_at || !b->pfd[k].revents)
      continue;
    unsigned i = b->pfd_slot[k];
    wslot *s = &b->slots[i];
    if (s->pidfd >= 0 && s->pidfd == b->pfd[k].fd) {
      pp__exit how;
      if (s->state == SLOT_LIVE && reap_direct(s, 0, &how))
        on_exited(b, i, s->pid, how);
      continue;
    }
    if (s->fd != b->pfd[k].fd)
      continue;
    if (b->pfd[k].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
      pp_status rs = slot_read(b, i, READ_LIMIT);
      if (rs != PP_OK)
        st = rs;
    }
    if (b->pfd[k].revents & POLLOUT)
      slot_flush(s);
  }
  if (ctl_at && b->pfd[ctl_at].revents) {
    if (b->pfd[ctl_at].revents & POLLOUT)
      ctl_flush(b);
    int ended = 0;
    if (b->pfd[ctl_at].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
      ended = ctl_read(b);
    if (ended < 0)
      st = PP_ENOMEM;
    if (ctl_parse(b) != 0)
      go_broken(b, PP_EPROTOCOL, 0, NULL);
    else if (ended > 0)
      ctl_ended(b);
  }
  return st;
}

/* A send to the launcher failed: it is gone (ctl_ended()); unless it never
 * was, which its host said (NO_LAUNCHER) in what is left to read. */
static void ctl_send_failed(pp__backend *b) {
  if (b->hosted && b->launcher < 0 && b->ctl >= 0) {
    (void)ctl_read(b); /* EOF or not, what it read decides */
    if (ctl_parse(b) == 0 && b->ctl < 0)
      return;
  }
  ctl_ended(b);
}

/* How long until a KILL asked of the launcher is overdue (ms; -1: none
 * asked); at 0 the launcher is killed. A kill is one system call and its
 * report a few more: a launcher that has not reported the worker ended
 * by then is stopped (SIGSTOP, a debugger) or stuck, and every wait for
 * its workers (a join, a time limit) would last as long. It is this
 * process's unreaped child, so its pid is its own; its death is handled
 * as any other (its workers are lost with it, a new one is made while the
 * pool needs one). */
static int64_t launcher_overdue(pp__backend *b) {
  int64_t due = -1;
  for (unsigned i = 0; b->launcher > 0 && i < b->cfg.max_slots; i++) {
    const wslot *s = &b->slots[i];
    if (s->kill_asked && s->pidfd < 0 &&
        (s->state == SLOT_STARTING || s->state == SLOT_LIVE)) {
      int64_t left = s->kill_asked + LAUNCHER_KILL_GRACE_MS - now_ms();
      if (left <= 0) {
        kill(b->launcher, SIGKILL);
        return -1; /* its socket's end is handled next */
      }
      if (due < 0 || left < due)
        due = left;
    }
  }
  return due;
}

pp_status pp__backend_poll(pp__backend *b, long timeout_ms) {
  if (pp__buf_reserve(&b->events, b->events_room) != PP_OK)
    return PP_ENOMEM;
  int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
  int64_t wait_ms = timeout_ms;
  for (;;) {
    if (b->ctl_failed)
      ctl_send_failed(b);
    if (queued(b))
      return PP_OK;
    nfds_t ctl_at;
    nfds_t n = build_pollfds(b, &ctl_at);
    int64_t overdue = launcher_overdue(b);
    int64_t until = overdue >= 0 && (wait_ms < 0 || overdue < wait_ms)
                        ? overdue + 1
                        : wait_ms;
    int tmo = until < 0 ? -1 : until > INT_MAX ? INT_MAX : (int)until;
    if (tmo != 0 && wake_came(b)) {
      emit(b, PP__EV_WAKE, 0, NULL);
      return PP_OK;
    }
    int r = poll(b->pfd, n, tmo);
    if (tmo != 0)
      atomic_store(&b->sleeping, 0);
    if (r < 0 && errno != EINTR)
      return PP_ESYSTEM;
    pp_status st = r > 0 ? handle_ready(b, n, ctl_at) : PP_OK;
    if (b->ctl_failed)
      ctl_send_failed(b);
    if (queued(b))
      return PP_OK;
    if (st != PP_OK)
      return st;
    if (timeout_ms == 0)
      return PP_OK;
    if (timeout_ms > 0) {
      wait_ms = deadline - now_ms();
      if (wait_ms <= 0)
        return PP_OK;
    }
  }
}

pp__buf *pp__backend_events(pp__backend *b) { return &b->events; }
