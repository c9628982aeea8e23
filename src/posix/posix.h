/* Internal declarations shared by the POSIX backend's files. Each .c file
 * defines its feature-test macros before including this header. */
#ifndef PP_POSIX_H
#define PP_POSIX_H

#include "backend.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* The worker's end of its channel: a connected AF_UNIX stream socket. */
struct pp__wchan {
  int fd;
};

/* ---- control protocol between the parent and the launcher ----
 *
 * Fixed-size records on a stream socket. The launcher is a fork of the
 * parent, so both sides share one binary layout. STARTED carries the
 * parent's end of the new worker's channel as SCM_RIGHTS ancillary data,
 * attached to the record's first byte. */
enum {
  PP__CTL_START = 1,    /* parent -> launcher: slot */
  PP__CTL_KILL,         /* parent -> launcher: slot, pid (0: whoever runs) */
  PP__CTL_STARTED,      /* launcher -> parent: slot, pid, + channel fd */
  PP__CTL_START_FAILED, /* launcher -> parent: slot, status */
  PP__CTL_EXITED        /* launcher -> parent: slot, pid, signaled, code */
};

typedef struct pp__ctl_msg {
  int32_t type;
  uint32_t slot;
  int64_t pid;
  int32_t status;
  int32_t signaled;
  int64_t code;
} pp__ctl_msg;

/* Forks the launcher (launcher.c). On success *ctl is the parent's end of
 * the control socket (close-on-exec, non-blocking) and *pid the launcher's
 * process id. The launcher never returns into the caller's code. */
pp_status pp__launcher_fork(const pp__backend_config *cfg, int *ctl,
                            pid_t *pid);

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

/* A connected AF_UNIX stream pair, both ends close-on-exec and (where the
 * platform needs it) SO_NOSIGPIPE. 0 or -1 with errno. */
int pp__socketpair(int sv[2]);

/* close() that keeps errno; EINTR is not retried (the descriptor is gone
 * on Linux, and unspecified elsewhere: retrying could close a reused
 * number). */
void pp__close(int fd);

/* Shuts a socket down in both directions and closes it: the peer sees EOF
 * even when a copy of this descriptor leaked into another process (a fork
 * made by the user's own code, for example). */
void pp__close_socket(int fd);

/* Closes every descriptor >= lowfd (the launcher's clean start). Uses
 * close_range / closefrom where available, else the process's fd
 * directory, else a loop up to the descriptor limit. */
void pp__close_from(int lowfd);

#endif
