/* The worker's side of its channel: reads and writes on its end of the
 * socket pair that return once done (or once something was read). */
#define _GNU_SOURCE 1      /* glibc: MSG_NOSIGNAL with -std=c11 */
#define _DARWIN_C_SOURCE 1 /* macOS: BSD socket names next to POSIX */

#include "coverage.h"
#include "posix.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

/* What a worker reads at most per call: a whole batch of frames usually
 * fits, and one call is one wake-up. */
#define WCHAN_READ_CHUNK (64 * 1024)

/* Waits until the channel is ready; a coverage build's worker writes its
 * counts first when it would have to wait (coverage.h). The launcher's
 * host watches its control socket meanwhile (launcher.c). */
static void wait_ready(pp__wchan *chan, short events) {
  int timeout = pp__coverage_idle_ms();
  for (;;) {
    struct pollfd p[2];
    nfds_t n = 1;
    p[0].fd = chan->fd;
    p[0].events = events;
    p[0].revents = 0;
    int ctl = pp__host_fd(chan);
    if (ctl >= 0) {
      p[1].fd = ctl;
      p[1].events = POLLIN;
      p[1].revents = 0;
      n = 2;
    }
    int ready = poll(p, n, timeout);
    if (ready == 0) {
      pp__coverage_flush();
      timeout = -1;
      continue;
    }
    if (ready < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    if (n == 2 && p[1].revents)
      pp__host_ctl_ready(chan);
    if (p[0].revents)
      return;
  }
}

/* One descriptor is expected in a worker's life; another before the
 * first was taken is not the parent's doing, and is closed. */
static void keep_fd(pp__wchan *chan, int fd) {
  if (chan->passed_fd < 0)
    chan->passed_fd = fd;
  else
    pp__close(fd);
}

int pp__wchan_take_fd(pp__wchan *chan) {
  int fd = chan->passed_fd;
  chan->passed_fd = -1;
  return fd;
}

/* Reads what is there, waiting for it in poll() first when `idle` says
 * nothing is expected yet. */
static pp_status read_some(pp__wchan *chan, pp__buf *into, int idle) {
  if (!chan || !into)
    return PP_EINVAL;
  pp_status st = pp__buf_reserve(into, WCHAN_READ_CHUNK);
  if (st != PP_OK)
    return st;
  /* A worker waits for its next frame in poll(), not in recv(): a reader
   * asleep in a Unix socket's recv() is woken each time the parent reads
   * what the worker sent (the write-space wake-up goes to every sleeper on
   * the socket), only to sleep again, while poll() filters it out. The
   * parent, who reads an answer as the worker waits for the next chunk,
   * paid that wake-up: perf put it at 2.4% of all samples of imap_many,
   * and the workers slept 14% less once they waited in poll(). */
  if (idle)
    wait_ready(chan, POLLIN);
  for (;;) {
    /* recvmsg(), not recv(): a descriptor the parent sends (a lanes
     * segment) comes with the bytes, and recv() would drop it. */
    int fd;
    size_t got;
    ssize_t n = pp__recv_fds(chan->fd, pp__buf_tail(into),
                             into->cap - into->end, &fd, 1, &got, MSG_DONTWAIT);
    if (got)
      keep_fd(chan, fd);
    if (n > 0) {
      pp__buf_commit(into, (size_t)n);
      return PP_OK;
    }
    if (n == 0)
      return PP_EOF;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait_ready(chan, POLLIN);
      continue;
    }
    return errno == ECONNRESET ? PP_EOF : PP_ESYSTEM;
  }
}

pp_status pp__wchan_read(pp__wchan *chan, pp__buf *into) {
  return read_some(chan, into, 0);
}

/* A worker asleep on its rings made one recv() that said EAGAIN for each
 * doorbell (perf trace: half of its recvfrom calls). */
pp_status pp__wchan_read_idle(pp__wchan *chan, pp__buf *into) {
  return read_some(chan, into, 1);
}

void pp__wchan_before_user_code(pp__wchan *chan) {
  if (chan && chan->host)
    pp__host_launch(chan);
}

pp_status pp__wchan_write(pp__wchan *chan, const void *data, size_t len) {
  if (!chan || (!data && len))
    return PP_EINVAL;
  const unsigned char *p = data;
  while (len > 0) {
    ssize_t n = send(chan->fd, p, len, PP__SEND_FLAGS);
    if (n > 0) {
      p += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      wait_ready(chan, POLLOUT);
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
      return PP_EOF;
    return PP_ESYSTEM;
  }
  return PP_OK;
}
