/* Internal declarations shared by the POSIX backend's files. Each .c file
 * defines its feature-test macros before including this header. */
#ifndef PP_POSIX_H
#define PP_POSIX_H

#include "backend.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* A fork worker that hosts the launcher and has not made it yet
 * (launcher.c). */
typedef struct pp__host pp__host;

/* The worker's end of its channel: a connected AF_UNIX stream socket; and
 * in the launcher's host, until it makes the launcher or the pool no
 * longer needs one, what it needs to make it (NULL otherwise). */
struct pp__wchan {
  int fd;
  pp__host *host;
  /* A descriptor the parent sent with its frames (a lanes segment), until
   * pp__wchan_take_fd() takes it; -1 when none came. */
  int passed_fd;
};

/* The descriptor the channel brought, now the caller's; -1 when none came
 * (shm.c, for the LANES frame it came with). */
int pp__wchan_take_fd(pp__wchan *chan);

/* Parent: the next bytes sent to the slot's worker carry a duplicate of
 * `fd` (SCM_RIGHTS), at or before the frame that speaks of it, so the
 * worker holds it by the time it reads that frame. One at a time; it is
 * dropped with the channel if it never goes. */
pp_status pp__backend_pass_fd(pp__backend *b, unsigned slot, int fd);

/* The pool's test hook pp__backend_config.named_segments, for shm.c. */
int pp__backend_named_segments(const pp__backend *b);

/* For wchan.c, in the launcher's host: the control socket it watches next
 * to its channel while it waits (-1 when it hosts nothing any more); what
 * to do when that socket is readable (a request: make the launcher, which
 * serves it; QUIT or EOF: make none); and making it now, before the
 * user's code first runs. Each may set chan->host to NULL. */
int pp__host_fd(const pp__wchan *chan);
void pp__host_ctl_ready(pp__wchan *chan);
void pp__host_launch(pp__wchan *chan);

/* The descriptor numbers a re-launched process finds its socket on: the
 * launcher's control socket, and a spawned worker's channel. */
#define PP__LAUNCHER_CTL_FD 3
#define PP__SPAWN_CHANNEL_FD 3

/* Slot numbers beyond this are surely a caller's mistake. */
#define PP__MAX_SLOTS (1u << 20)

/* The command-line options that make a re-launched copy of the program a
 * worker or the forkserver (see worker_mode.c). They are always argv[1]
 * (and argv[2]), so a program's own options are never mistaken for them.
 * One started with them but without a usable descriptor exits with
 * PP__EXIT_BAD_LAUNCH (backend.h). */
#define PP__WORKER_OPTION "--procpool-worker="
#define PP__FORKSERVER_OPTION "--procpool-forkserver="
#define PP__SLOTS_OPTION "--procpool-slots="

/* ---- re-launching this program (exe.c) ---- */

/* What execve() needs to start a fresh copy of this program: built in the
 * parent, where memory may be allocated, and used as is in the launcher. */
typedef struct pp__exec_plan {
  const char *path; /* the executable */
  char **argv;      /* NULL-terminated: argv[0], the options */
  char **envp;      /* NULL-terminated: this environment and the key */
  char *block;      /* owns everything above but `path` */
} pp__exec_plan;

/* Remembers argv[0] at the top of main(), before the program can chdir,
 * resolved to an absolute path (through PATH when it has no '/'): the way
 * to find the executable where the system offers none. */
void pp__exe_note_argv0(const char *argv0);

/* Builds a plan that runs this program with the options `opt1` and `opt2`
 * (NULL: none) and the environment plus PP__KEY_ENV=`key` (NULL: no key).
 * PP_ENOTSUP when the executable cannot be located; PP_ENOMEM. */
pp_status pp__exec_plan_make(pp__exec_plan *plan, const char *opt1,
                             const char *opt2, const char *key);
void pp__exec_plan_free(pp__exec_plan *plan);

/* ---- control protocol between the parent and the launcher ----
 *
 * Fixed-size records on a stream socket. The launcher is a fork of the
 * parent, or in the forkserver context the same executable started
 * afresh, so both sides share one binary layout. START carries the
 * worker's end of the channel the parent made for it, as SCM_RIGHTS
 * ancillary data attached to the record's first byte. */
enum {
  PP__CTL_START = 1,    /* parent -> launcher: slot, + channel fd */
  PP__CTL_KILL,         /* parent -> launcher: slot, pid (0: whoever runs) */
  PP__CTL_TERM,         /* parent -> launcher: as KILL, with SIGTERM */
  PP__CTL_STARTED,      /* launcher -> parent: slot, pid */
  PP__CTL_START_FAILED, /* launcher -> parent: slot, status */
  PP__CTL_EXITED,       /* launcher -> parent: slot, pid, signaled, code */
  PP__CTL_QUIT,         /* parent -> launcher: no more START; leave once
                           every worker is reaped and reported */
  PP__CTL_HELLO,        /* hosted launcher -> parent, first: its pid */
  PP__CTL_NO_LAUNCHER   /* launcher's host -> parent: no launcher could be
                           made; `code` the errno */
};

typedef struct pp__ctl_msg {
  int32_t type;
  uint32_t slot;
  int64_t pid;
  int32_t status;
  int32_t signaled;
  int64_t code; /* START_FAILED: the errno of the call that failed */
  int32_t call; /* START_FAILED: which (pp__ctl_call) */
  int32_t unused;
} pp__ctl_msg;

/* The launcher's call that failed to start a worker, for the message. */
typedef enum pp__ctl_call {
  PP__CTL_CALL_NONE = 0,
  PP__CTL_CALL_FORK,
  PP__CTL_CALL_EXEC,
  PP__CTL_CALL_PIPE /* spawn: the pipe that carries the exec's outcome */
} pp__ctl_call;

/* Forks the launcher (launcher.c). On success *ctl is the parent's end of
 * the control socket (close-on-exec, non-blocking) and *pid the launcher's
 * process id. The launcher never returns into the caller's code. With a
 * `plan` (the spawn context) it starts each worker by running the plan in
 * a child; without one (fork) the child runs cfg->worker_main. `guards`:
 * pidfds of `nguards` workers the parent forked itself; the launcher keeps
 * them and SIGKILLs those workers when the parent goes away. `mask`: the
 * signal mask the launcher starts with and gives its workers, that of the
 * thread that created the pool (the caller may be the pool's own thread,
 * which blocks them all); NULL: the caller's. */
pp_status pp__launcher_fork(const pp__backend_config *cfg,
                            const pp__exec_plan *plan, const int *guards,
                            unsigned nguards, const sigset_t *mask, int *ctl,
                            pid_t *pid);

/* Forks a worker from this very process (the fork context's first workers,
 * see backend.c, forked while the pool is created, on the creating thread,
 * whose signal mask the worker keeps): the child keeps 0, 1, 2 and `worker_end`
 * (moved to descriptor 3) and runs cfg->worker_main. Returns the pid, or -1
 * with errno. The caller closes its copy of `worker_end`. */
pid_t pp__worker_fork(const pp__backend_config *cfg, int worker_end);

/* Forks a worker that hosts the launcher (launcher.c): when the pool
 * first needs it (a request on the control socket, or the host about to
 * run the user's code) the host clones it with CLONE_PARENT, so that it is
 * this process's child and a copy of it as it is now, without a fork of
 * its own here. The launcher says PP__CTL_HELLO with its pid on the
 * control socket, whose parent's end (close-on-exec, non-blocking) goes to
 * *ctl; where it cannot be made the host says PP__CTL_NO_LAUNCHER instead
 * and still runs as a worker. A pool that never needs it gets neither:
 * the socket reaches EOF when the host ends, or lets it go after QUIT.
 * `guards` as for pp__launcher_fork(); the host adds its own. Returns the
 * worker's pid, or -1 with errno. Linux; elsewhere the host always says
 * NO_LAUNCHER. */
pid_t pp__worker_fork_hosting(const pp__backend_config *cfg, int worker_end,
                              const int *guards, unsigned nguards, int *ctl);

/* Set, for the process, once a launcher's host could not clone it: later
 * pools fork their launcher themselves (backend.c). Tests clear it. */
extern atomic_int pp__hosting_failed;

/* Tests: a launcher's host fails its next this many clones with
 * pp__test_host_clone_errno (0: EPERM, as where a sandbox forbids
 * CLONE_PARENT). The host has its copy: the parent's stays as set. */
extern int pp__test_host_clone_fails;
extern int pp__test_host_clone_errno;

/* Tests: nonzero, a worker forked by pp__worker_fork() fails to put its
 * channel in place as if its dup2() had failed with this errno (nothing
 * else makes that fail but a descriptor limit of 3, under which no pool is
 * made). The worker has its copy: the parent's stays as set. */
extern int pp__test_worker_channel_errno;

/* Starts the launcher as a fresh copy of this program, the forkserver:
 * *ctl and *pid as pp__launcher_fork(). */
pp_status pp__launcher_spawn(const pp__backend_config *cfg, int *ctl,
                             pid_t *pid);

/* In the forkserver process: runs the launcher on the control socket `ctl`
 * with `max_slots` slots, forking workers that run `main` with `key`.
 * Returns the process's exit code once the pool's owner is gone. */
int pp__launcher_serve(int ctl, unsigned max_slots, pp__worker_main_fn main,
                       const char *key);

/* ---- system helpers (sys.c) ---- */

/* send() flags that keep a write to a closed peer from raising SIGPIPE;
 * where MSG_NOSIGNAL is missing, sockets get SO_NOSIGPIPE instead. */
#ifdef MSG_NOSIGNAL
#define PP__SEND_FLAGS MSG_NOSIGNAL
#else
#define PP__SEND_FLAGS 0
#endif

/* Maps an errno value to a status (ENOMEM-like: PP_ENOMEM, else
 * PP_ESYSTEM). */
pp_status pp__errno_status(int err);

int pp__set_cloexec(int fd);  /* 0 or -1 with errno */
int pp__set_nonblock(int fd); /* 0 or -1 with errno */

/* The most descriptors pp__recv_fds() takes in one call. */
#define PP__RECV_FDS_MAX 16

/* recvmsg() on the stream socket `sock`, with `flags` (MSG_DONTWAIT, say):
 * up to `len` bytes into `buf`, and
 * the descriptors that came with them (SCM_RIGHTS), close-on-exec. The
 * first `room` of those go to `fds` in the order sent, their number to
 * *nfds; the others are closed. EINTR is retried. Returns what recvmsg()
 * does: the byte count, 0 at EOF, -1 with errno (and no descriptor).
 * Descriptors beyond PP__RECV_FDS_MAX in one message are not seen here:
 * the system drops them, and the caller goes without. */
ssize_t pp__recv_fds(int sock, void *buf, size_t len, int *fds, size_t room,
                     size_t *nfds, int flags);

/* One sendmsg() of `len` bytes on `sock` with PP__SEND_FLAGS, the `nfds`
 * descriptors (at most PP__RECV_FDS_MAX) attached to the first byte as
 * SCM_RIGHTS; they go only if some bytes do. EINTR is not retried.
 * Returns what sendmsg() does. */
ssize_t pp__send_fds(int sock, const void *buf, size_t len, const int *fds,
                     size_t nfds);

/* A descriptor the pool made, moved above 2 when it took the number of a
 * standard stream the program had closed; close-on-exec either way. A
 * task's printf would write into it otherwise (a worker keeps the
 * program's 0, 1 and 2, and fills only closed ones with /dev/null). Every
 * descriptor the backend keeps goes through here. Returns the descriptor,
 * or -1 with errno (the original closed); -1 in gives -1. */
int pp__fd_above_std(int fd);

/* A connected AF_UNIX stream pair, both ends close-on-exec, above 2
 * (pp__fd_above_std()) and (where the platform needs it) SO_NOSIGPIPE. 0 or
 * -1 with errno. */
int pp__socketpair(int sv[2]);

/* close() that keeps errno; EINTR is not retried (the descriptor is gone
 * on Linux, and unspecified elsewhere: retrying could close a reused
 * number). */
void pp__close(int fd);

/* Shuts a socket down in both directions and closes it: the peer sees EOF
 * even when a copy of this descriptor leaked into another process (a fork
 * made by the user's own code, for example). */
void pp__close_socket(int fd);

/* pidfd_open() and pidfd_send_signal() (Linux >= 5.3): a descriptor that
 * names one process for good, so a signal sent through it can never hit a
 * recycled pid; above 2 (pp__fd_above_std()). -1 with errno (ENOSYS
 * elsewhere). */
int pp__pidfd_open(pid_t pid);
int pp__pidfd_kill(int pidfd, int sig);

/* Whether this process can fork a fork pool's first workers itself
 * (backend.c): pidfds work here, and SIGCHLD is left at its default. */
int pp__direct_workers_possible(void);

/* Closes every descriptor >= lowfd (the launcher's clean start). Uses
 * close_range / closefrom where available, else the process's fd
 * directory, else a loop up to the descriptor limit. */
void pp__close_from(int lowfd);
/* Closes every descriptor from `lowfd` on but the `n` in `keep`. */
void pp__close_except(int lowfd, const int *keep, unsigned n);

#endif
