/* Small POSIX helpers: descriptors, exit descriptions, the CPU count. */
/* glibc: sched_getaffinity, CPU_COUNT, sigdescr_np, MSG_CMSG_CLOEXEC */
#define _GNU_SOURCE 1
#define _DARWIN_C_SOURCE 1 /* macOS: SO_NOSIGPIPE next to the POSIX names */

#include "posix.h"

#include <apr_allocator.h>
#include <apr_pools.h>
#include <apr_thread_mutex.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sched.h>
#include <sys/syscall.h>
#endif

static _Thread_local char thread_message[PP__THREAD_MESSAGE];

char *pp__thread_message(void) { return thread_message; }

static _Thread_local pp__thread_errors thread_errors;

pp__thread_errors *pp__errors_of_thread(void) { return &thread_errors; }

pp_status pp__errno_status(int err) {
  return (err == ENOMEM || err == ENOBUFS) ? PP_ENOMEM : PP_ESYSTEM;
}

int pp__set_cloexec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0)
    return -1;
  if (flags & FD_CLOEXEC)
    return 0;
  return fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

int pp__set_nonblock(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0)
    return -1;
  if (flags & O_NONBLOCK)
    return 0;
  return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* One message of one buffer, with control room for PP__RECV_FDS_MAX
 * descriptors. The room is aligned by max_align_t, not struct cmsghdr:
 * that has a flexible array member on glibc, which ISO C keeps out of a
 * structure. */
typedef struct fd_msg {
  struct msghdr mh;
  struct iovec iov;
  union {
    max_align_t align;
    char buf[CMSG_SPACE(PP__RECV_FDS_MAX * sizeof(int))];
  } control;
} fd_msg;

/* `controllen`: how much of the control room the message offers (0:
 * none). */
static void fd_msg_init(fd_msg *m, void *buf, size_t len, size_t controllen) {
  memset(m, 0, sizeof *m);
  m->iov.iov_base = buf;
  m->iov.iov_len = len;
  m->mh.msg_iov = &m->iov;
  m->mh.msg_iovlen = 1;
  if (controllen > 0) {
    m->mh.msg_control = m->control.buf;
    m->mh.msg_controllen = controllen;
  }
}

ssize_t pp__send_fds(int sock, const void *buf, size_t len, const int *fds,
                     size_t nfds) {
  if (nfds > PP__RECV_FDS_MAX) {
    errno = EINVAL;
    return -1;
  }
  fd_msg m;
  fd_msg_init(&m, (void *)buf, len,
              nfds > 0 ? CMSG_SPACE(nfds * sizeof(int)) : 0);
  if (nfds > 0) {
    struct cmsghdr *h = CMSG_FIRSTHDR(&m.mh);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(h), fds, nfds * sizeof(int));
  }
  return sendmsg(sock, &m.mh, PP__SEND_FLAGS);
}

ssize_t pp__recv_fds(int sock, void *buf, size_t len, int *fds, size_t room,
                     size_t *nfds, int flags) {
#ifdef MSG_CMSG_CLOEXEC
  /* Close-on-exec as they arrive: another thread's fork and exec in the
   * meantime must not inherit them. */
  flags |= MSG_CMSG_CLOEXEC;
#endif
  fd_msg m;
  ssize_t n;
  *nfds = 0;
  do {
    fd_msg_init(&m, buf, len, sizeof m.control.buf);
    n = recvmsg(sock, &m.mh, flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0)
    return -1;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&m.mh); h; h = CMSG_NXTHDR(&m.mh, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
      continue;
    size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t k = 0; k < count; k++) {
      int fd;
      memcpy(&fd, CMSG_DATA(h) + k * sizeof(int), sizeof fd);
      if (*nfds < room) {
#ifndef MSG_CMSG_CLOEXEC
        pp__set_cloexec(fd);
#endif
        /* -1 when it could not be moved: the caller sees a missing
         * descriptor, as for one that never came. */
        fds[(*nfds)++] = pp__fd_above_std(fd);
      } else {
        pp__close(fd);
      }
    }
  }
  return n;
}

void pp__close(int fd) {
  if (fd < 0)
    return;
  int saved = errno;
  close(fd);
  errno = saved;
}

void pp__close_socket(int fd) {
  if (fd < 0)
    return;
  int saved = errno;
  shutdown(fd, SHUT_RDWR);
  close(fd);
  errno = saved;
}

int pp__fd_above_std(int fd) {
  if (fd < 0 || fd > 2)
    return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  pp__close(fd);
  return moved;
}

int pp__socketpair(int sv[2]) {
  int made = 0;
#ifdef SOCK_CLOEXEC
  /* Atomic close-on-exec: no window in which another thread's fork+exec
   * inherits the pair. */
  made = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0;
#endif
  if (!made) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
      return -1;
    if (pp__set_cloexec(sv[0]) != 0 || pp__set_cloexec(sv[1]) != 0) {
      int saved = errno;
      close(sv[0]);
      close(sv[1]);
      errno = saved;
      return -1;
    }
  }
  sv[0] = pp__fd_above_std(sv[0]);
  sv[1] = pp__fd_above_std(sv[1]);
  if (sv[0] < 0 || sv[1] < 0) {
    int saved = errno;
    pp__close(sv[0]);
    pp__close(sv[1]);
    errno = saved;
    return -1;
  }
#ifdef SO_NOSIGPIPE
  /* Older macOS lacks MSG_NOSIGNAL: the socket itself must not raise
   * SIGPIPE. */
  int one = 1;
  setsockopt(sv[0], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
  setsockopt(sv[1], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  return 0;
}

void pp__close_from(int lowfd) {
#if defined(__linux__) && defined(SYS_close_range)
  /* Linux >= 5.9; older kernels answer ENOSYS and we fall through. */
  if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
    return;
#elif defined(__FreeBSD__) || defined(__DragonFly__) ||                        \
    defined(__OpenBSD__) || defined(__NetBSD__)
  closefrom(lowfd);
  return;
#endif
  /* Listing the open descriptors beats a loop to a limit that may be a
   * million. /dev/fd serves macOS and the BSDs. */
  DIR *dir = opendir("/proc/self/fd");
  if (!dir)
    dir = opendir("/dev/fd");
  if (dir) {
    int dfd = dirfd(dir);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
      char *end;
      long fd = strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0')
        continue;
      if (fd >= lowfd && fd != dfd && fd <= INT_MAX)
        close((int)fd);
    }
    closedir(dir);
    return;
  }
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > INT_MAX)
    max = 65536;
  for (long fd = lowfd; fd < max; fd++)
    close((int)fd);
}

/* Closes lo .. hi - 1. */
static void close_between(int lo, int hi) {
#if defined(__linux__) && defined(SYS_close_range)
  if (lo < hi &&
      syscall(SYS_close_range, (unsigned)lo, (unsigned)hi - 1, 0) == 0)
    return;
#endif
  for (int fd = lo; fd < hi; fd++)
    close(fd);
}

void pp__close_except(int lowfd, const int *keep, unsigned n) {
  /* The gaps between the kept ones, from the lowest up. */
  int from = lowfd;
  for (;;) {
    int next = -1;
    for (unsigned k = 0; k < n; k++)
      if (keep[k] >= from && (next < 0 || keep[k] < next))
        next = keep[k];
    if (next < 0)
      break;
    close_between(from, next);
    from = next + 1;
  }
  pp__close_from(from);
}

int pp__pidfd_open(pid_t pid) {
#if defined(__linux__) && defined(SYS_pidfd_open)
  /* Close-on-exec always (Linux >= 5.3). */
  return pp__fd_above_std((int)syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

int pp__pidfd_kill(int pidfd, int sig) {
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
  return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
  (void)pidfd;
  (void)sig;
  errno = ENOSYS;
  return -1;
#endif
}

/* A signal's description, or NULL. glibc's sigdescr_np is thread-safe
 * where strsignal may use a shared buffer. */
static const char *signal_text(long sig) {
  if (sig <= 0 || sig > INT_MAX)
    return NULL;
#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  return sigdescr_np((int)sig);
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) ||    \
    defined(__NetBSD__) || defined(__DragonFly__) ||                           \
    (defined(_POSIX_VERSION) && _POSIX_VERSION >= 200809L)
  return strsignal((int)sig);
#else
  return NULL;
#endif
}

int pp__exit_from_outside(const pp__exit *how) {
  return how->with_launcher || how->unknown ||
         (how->signaled && how->code == SIGKILL);
}

void pp__exit_describe(const pp__exit *how, char *buf, size_t cap) {
  if (!buf || cap == 0)
    return;
  if (!how) {
    snprintf(buf, cap, "ended for an unknown reason");
    return;
  }
  if (how->with_launcher) {
    snprintf(buf, cap,
             "was lost with the process that starts the pool's "
             "workers, which died");
    return;
  }
  if (how->unknown) {
    snprintf(buf, cap,
             "ended, but how is not known: another wait in this program "
             "(a waitpid(-1), a SIGCHLD handler) collected its exit status");
    return;
  }
  if (!how->signaled) {
    snprintf(buf, cap, "exited with code %ld", how->code);
    return;
  }
  const char *text = signal_text(how->code);
  if (text && *text)
    snprintf(buf, cap, "was killed by signal %ld (%s)", how->code, text);
  else
    snprintf(buf, cap, "was killed by signal %ld", how->code);
}

long pp__process_id(void) { return (long)getpid(); }

void pp__env_remove(const char *name) { unsetenv(name); }

int pp__cpu_count(void) {
#if defined(__linux__) && defined(CPU_ALLOC)
  /* The affinity mask is what taskset and cpuset cgroups restrict; a
   * machine with more CPUs than a mask holds answers EINVAL, so grow. */
  for (int ncpu = 1024; ncpu <= (1 << 20); ncpu *= 2) {
    cpu_set_t *set = CPU_ALLOC(ncpu);
    if (!set)
      break;
    size_t size = CPU_ALLOC_SIZE(ncpu);
    CPU_ZERO_S(size, set);
    int ok = sched_getaffinity(0, size, set) == 0;
    int err = errno;
    int n = ok ? CPU_COUNT_S(size, set) : 0;
    CPU_FREE(set);
    if (ok && n > 0)
      return n;
    if (ok || err != EINVAL)
      break;
  }
#endif
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1)
    return 1;
  return n > INT_MAX ? INT_MAX : (int)n;
}

apr_time_t pp__clock_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (apr_time_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Written only in a new child, which has one thread then. */
static unsigned long generation;
static pthread_once_t generation_once = PTHREAD_ONCE_INIT;

static void forked(void) {
  generation++;
  pp__spare_forget();
}

static void watch_forks(void) { pthread_atfork(NULL, NULL, forked); }

unsigned long pp__process_generation(void) {
  pthread_once(&generation_once, watch_forks);
  return generation;
}

static apr_thread_mutex_t *apr_allocator_lock;
static pthread_once_t apr_guard_once = PTHREAD_ONCE_INIT;

static void take_apr_lock(void) { apr_thread_mutex_lock(apr_allocator_lock); }

/* In the child too: the one thread it has is the one that took it. */
static void give_apr_lock(void) { apr_thread_mutex_unlock(apr_allocator_lock); }

static void guard_apr(void) {
  /* Every pool made without a parent shares the global pool's allocator
   * and its lock; a threaded APR has one. */
  apr_pool_t *probe;
  if (apr_pool_create(&probe, NULL) != APR_SUCCESS)
    return;
  apr_allocator_lock = apr_allocator_mutex_get(apr_pool_allocator_get(probe));
  apr_pool_destroy(probe);
  if (apr_allocator_lock)
    pthread_atfork(take_apr_lock, give_apr_lock, give_apr_lock);
}

void pp__apr_fork_guard(void) { pthread_once(&apr_guard_once, guard_apr); }

apr_status_t pp__thread_create(apr_thread_t **thread, apr_thread_start_t main,
                               void *data, apr_pool_t *mem) {
  sigset_t quiet, old;
  sigfillset(&quiet);
  /* A fault is the faulting thread's: blocked, it would be undefined. */
  static const int faults[] = {
      SIGSEGV, SIGBUS, SIGFPE, SIGILL,
#ifdef SIGTRAP
      SIGTRAP,
#endif
#ifdef SIGSYS
      SIGSYS,
#endif
  };
  for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
    sigdelset(&quiet, faults[i]);
  /* The new thread inherits the mask it is created with. */
  int masked = pthread_sigmask(SIG_SETMASK, &quiet, &old) == 0;
  apr_status_t st = apr_thread_create(thread, NULL, main, data, mem);
  if (masked)
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  return st;
}

/* Linux: the kernel's CSPRNG in one system call (getrandom, Linux >= 3.17)
 * instead of open, read and close, for the key and every worker's nonce.
 * 1 when done, 0 to fall back to /dev/urandom (an older kernel). */
static int random_syscall(unsigned char *p, size_t len) {
#if defined(__linux__) && defined(SYS_getrandom)
  while (len > 0) {
    long n = syscall(SYS_getrandom, p, len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return 0; /* ENOSYS: what is filled already is simply overwritten */
    p += n;
    len -= (size_t)n;
  }
  return 1;
#else
  (void)p;
  (void)len;
  return 0;
#endif
}

/* The key must be unguessable by other local users: the kernel's CSPRNG,
 * read from /dev/urandom, which every POSIX system we target has. */
pp_status pp__random_bytes(void *buf, size_t len) {
  if (random_syscall(buf, len))
    return PP_OK;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return PP_ESYSTEM;
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      close(fd);
      return PP_ESYSTEM;
    }
    p += n;
    len -= (size_t)n;
  }
  close(fd);
  return PP_OK;
}

/* Linux reports the current resident set in /proc/self/statm (in pages);
 * elsewhere getrusage's peak is the closest portable figure. */
size_t pp__current_rss(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (n == 2 && page > 0)
      return (size_t)resident * (size_t)page;
  }
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
#ifdef __APPLE__
  return (size_t)ru.ru_maxrss; /* bytes on macOS */
#else
  return (size_t)ru.ru_maxrss * 1024; /* KiB elsewhere */
#endif
}

/* Below this a copy's faults are too few to pay for the call. */
#define PREFAULT_MIN ((size_t)64 << 10)

/* Huge pages are worth asking for from here: two of them at least. */
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MIN (2 * HUGE_PAGE)

void *pp__alloc_fresh(size_t len) {
#ifdef MADV_HUGEPAGE
  if (len >= HUGE_MIN) {
    void *p;
    if (posix_memalign(&p, HUGE_PAGE, len) != 0)
      return NULL;
    /* The whole huge pages it covers; its tail, if any, keeps small pages
     * rather than fault a huge one in for a few bytes. A hint, which the
     * system may refuse. */
    (void)madvise(p, len & ~(HUGE_PAGE - 1), MADV_HUGEPAGE);
    return p;
  }
#endif
  return malloc(len);
}

void pp__prefault(void *p, size_t len) {
#ifdef MADV_POPULATE_WRITE /* Linux 5.14 */
  if (len < PREFAULT_MIN)  /* every result passes here: no call for those */
    return;
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0)
    return;
  /* Whole pages: each one holds bytes the copy is about to write, so
   * making it writable early changes nothing the caller can see. */
  uintptr_t mask = (uintptr_t)page - 1;
  uintptr_t start = (uintptr_t)p & ~mask;
  uintptr_t end = ((uintptr_t)p + len + mask) & ~mask;
  (void)madvise((void *)start, end - start, MADV_POPULATE_WRITE);
#else
  (void)p;
  (void)len;
#endif
}
