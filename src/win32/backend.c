/* The parent's side of the Windows backend: the slot table, the I/O
 * completion port that is the event loop, overlapped reads and writes on
 * each worker's pipe, process exits, wake-ups and the event queue.
 * Everything here runs on the scheduler thread, except pp__backend_wake()
 * and the exit callbacks, which only post packets to the port.
 *
 * Why a completion port: WaitForMultipleObjects stops at 64 handles, so a
 * pool of 70 workers could not wait on its pipes and processes in one call.
 * A port has no such bound, and each packet says which operation finished
 * and how many bytes it moved.
 *
 * Why RegisterWaitForSingleObject for process exits, rather than a thread
 * per worker: the system's wait threads watch up to 63 handles each, so 70
 * workers cost two threads instead of 70 (each with its own stack); the
 * callback only posts a packet to the port, so every event still comes out
 * of the one place the scheduler waits. */
#include "event_queue.h"
#include "win32.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for one read on a channel. */
#define READ_CHUNK (64 * 1024)
/* Largest single WriteFile (its length is a DWORD). */
#define WRITE_MAX (1u << 30)
/* Slot numbers beyond this are surely a caller's mistake. */
#define MAX_SLOTS (1u << 20)
/* Completion packets taken per call. */
#define PACKETS 64
/* Events one packet can produce (INPUT, CLOSED, EXITED). */
#define EVENTS_PER_PACKET 3
/* A worker that ended has written all it will: its channel reaches EOF once
 * the bytes are read. This bounds the wait for a channel some other process
 * was given a copy of. */
#define DRAIN_MS 5000
/* While a channel drains, the wait wakes this often to check the bound. */
#define DRAIN_POLL_MS 100
/* How long destroy waits for cancelled I/O to come back from the port. */
#define DESTROY_DRAIN_MS 2000

enum { KEY_IO = 1, KEY_EXIT, KEY_WAKE };

enum op_kind { OP_CONNECT, OP_READ, OP_WRITE };

typedef struct chan chan;

typedef struct io_op {
  OVERLAPPED ov; /* first: packets carry its address */
  enum op_kind kind;
  chan *ch;
} io_op;

/* A worker's pipe and the operations on it. When its slot gives it up
 * (EOF, hangup, exit) it is detached and lives on until the last of its
 * operations comes back from the port: the system writes into the
 * OVERLAPPED structures until then. */
struct chan {
  HANDLE pipe;
  unsigned slot;
  int detached;
  int pending; /* operations whose packets are still due */
  int connected;
  int reading, writing; /* a read, a write is pending */
  io_op conn, rd, wr;
  pp__buf inflight; /* the bytes of the pending write: they must not move */
  DWORD held;       /* bytes read that the input buffer had no room for */
  unsigned char rbuf[READ_CHUNK];
};

enum slot_state {
  SLOT_FREE,
  SLOT_LIVE,  /* started, EXITED not reported */
  SLOT_EXITED /* EXITED reported: waiting for release */
};

typedef struct wslot {
  enum slot_state state;
  pp__backend *b; /* for the exit callback */
  chan *ch;       /* NULL before start and once closed or hung up */
  HANDLE process;
  HANDLE wait; /* the registered wait for the process's end */
  long pid;
  pp__buf in, out;
  int hup;        /* the core hung up */
  int write_dead; /* a write failed: the read side will report CLOSED */
  int exited;     /* the process ended (its exit code is in `exit`) */
  ULONGLONG drain_deadline; /* exited, channel open: EXITED waits for EOF */
  pp__exit exit;
} wslot;

struct pp__backend {
  pp__backend_config cfg;
  HANDLE iocp;
  HANDLE job;
  pp__pipe_security sec;
  volatile LONG wake_pending;
  wslot *slots;
  pp__buf events; /* pp__event records not handed out yet */
  size_t nchans;  /* channels allocated, detached ones included */
  unsigned draining, stalled;
  char start_error[160]; /* the last failed start: its call and reason */
  pp__spawn_plan plan;   /* what every worker starts from (win32.h) */
};

/* ---- small helpers ---- */

static pp_status room(pp__backend *b, size_t nevents) {
  return pp__buf_reserve(&b->events, nevents * sizeof(pp__event));
}

/* Cannot fail: every path that emits reserved room first (room()). */
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

HANDLE pp__backend_slot_process(pp__backend *b, unsigned slot) {
  wslot *s = slot_at(b, slot);
  return s && s->state == SLOT_LIVE ? s->process : NULL;
}

/* The status the system stored in the OVERLAPPED (an NTSTATUS). */
static int op_ok(const io_op *op) { return (LONG)(DWORD)op->ov.Internal >= 0; }

static void chan_free(pp__backend *b, chan *ch) {
  pp__buf_free(&ch->inflight);
  free(ch);
  b->nchans--;
}

/* Gives the slot's channel up: pending I/O is cancelled and its packets
 * free the channel once all are back. Queued output goes with it. */
static void close_chan(pp__backend *b, wslot *s) {
  chan *ch = s->ch;
  pp__buf_free(&s->out);
  if (!ch)
    return;
  s->ch = NULL;
  if (ch->held) {
    ch->held = 0;
    b->stalled--;
  }
  ch->detached = 1;
  CancelIoEx(ch->pipe, NULL);
  /* The worker reads what was written before, then ERROR_BROKEN_PIPE. */
  CloseHandle(ch->pipe);
  ch->pipe = NULL;
  if (ch->pending == 0)
    chan_free(b, ch);
}

static void finish_exit(pp__backend *b, unsigned i) {
  wslot *s = &b->slots[i];
  if (s->state != SLOT_LIVE)
    return;
  if (s->drain_deadline) {
    s->drain_deadline = 0;
    b->draining--;
  }
  s->state = SLOT_EXITED;
  pp__event ev;
  memset(&ev, 0, sizeof ev);
  ev.pid = s->pid;
  ev.exit = s->exit;
  emit(b, PP__EV_EXITED, i, &ev);
}

/* The channel reached EOF or failed: CLOSED, and EXITED if the process
 * had ended already. */
static void chan_ended(pp__backend *b, unsigned i) {
  wslot *s = &b->slots[i];
  close_chan(b, s);
  if (!s->hup)
    emit(b, PP__EV_CLOSED, i, NULL);
  if (s->exited)
    finish_exit(b, i);
}

static void reset_slot(pp__backend *b, wslot *s) {
  close_chan(b, s);
  if (s->wait) {
    UnregisterWaitEx(s->wait, INVALID_HANDLE_VALUE);
    s->wait = NULL;
  }
  if (s->process) {
    CloseHandle(s->process);
    s->process = NULL;
  }
  if (s->drain_deadline) {
    s->drain_deadline = 0;
    b->draining--;
  }
  pp__buf_free(&s->in);
  pp__buf_free(&s->out);
  s->state = SLOT_FREE;
  s->pid = 0;
  s->hup = s->write_dead = s->exited = 0;
  memset(&s->exit, 0, sizeof s->exit);
}

/* ---- channel I/O ---- */

static void start_read(pp__backend *b, unsigned i) {
  chan *ch = b->slots[i].ch;
  if (!ch || !ch->connected || ch->reading || ch->held)
    return;
  memset(&ch->rd.ov, 0, sizeof ch->rd.ov);
  /* A read that completes at once still posts its packet: one path. */
  if (ReadFile(ch->pipe, ch->rbuf, READ_CHUNK, NULL, &ch->rd.ov) ||
      GetLastError() == ERROR_IO_PENDING) {
    ch->reading = 1;
    ch->pending++;
    return;
  }
  chan_ended(b, i); /* ERROR_BROKEN_PIPE: the worker closed its end */
}

static void write_failed(wslot *s) {
  /* The worker stopped reading (it died or closed its end): what it wrote
   * before is still readable, and EOF comes after it. */
  s->write_dead = 1;
  if (s->ch)
    pp__buf_clear(&s->ch->inflight);
  pp__buf_free(&s->out);
}

static void start_write(wslot *s) {
  chan *ch = s->ch;
  if (!ch || !ch->connected || ch->writing || s->write_dead)
    return;
  if (!pp__buf_len(&ch->inflight)) {
    if (!pp__buf_len(&s->out))
      return;
    /* The queue becomes the write in flight; new sends queue behind it. */
    pp__buf t = ch->inflight;
    ch->inflight = s->out;
    s->out = t;
    pp__buf_clear(&s->out);
  }
  size_t len = pp__buf_len(&ch->inflight);
  DWORD n = len > WRITE_MAX ? WRITE_MAX : (DWORD)len;
  memset(&ch->wr.ov, 0, sizeof ch->wr.ov);
  if (WriteFile(ch->pipe, pp__buf_head(&ch->inflight), n, NULL, &ch->wr.ov) ||
      GetLastError() == ERROR_IO_PENDING) {
    ch->writing = 1;
    ch->pending++;
    return;
  }
  write_failed(s);
}

/* Moves read bytes into the slot's input buffer: INPUT. When there is no
 * memory for them they are held, and no read is started until they fit. */
static void deliver(pp__backend *b, unsigned i, DWORD n) {
  wslot *s = &b->slots[i];
  chan *ch = s->ch;
  if (pp__buf_append(&s->in, ch->rbuf, n) != PP_OK) {
    if (!ch->held)
      b->stalled++;
    ch->held = n;
    return;
  }
  if (ch->held) {
    ch->held = 0;
    b->stalled--;
  }
  emit(b, PP__EV_INPUT, i, NULL);
  start_read(b, i);
}

static pp_status retry_held(pp__backend *b) {
  for (unsigned i = 0; b->stalled && i < b->cfg.max_slots; i++) {
    chan *ch = b->slots[i].ch;
    if (ch && ch->held)
      deliver(b, i, ch->held);
  }
  return b->stalled ? PP_ENOMEM : PP_OK;
}

static void on_connected(pp__backend *b, unsigned i) {
  wslot *s = &b->slots[i];
  s->ch->connected = 1;
  if (s->hup) {
    /* Hung up while starting: the worker sees EOF at once and exits 0. */
    close_chan(b, s);
    if (s->exited)
      finish_exit(b, i);
    return;
  }
  start_read(b, i);
  start_write(s); /* what the core queued while the worker started */
}

static void on_io(pp__backend *b, io_op *op, DWORD n) {
  chan *ch = op->ch;
  ch->pending--;
  if (op->kind == OP_READ)
    ch->reading = 0;
  else if (op->kind == OP_WRITE)
    ch->writing = 0;
  if (ch->detached) {
    if (ch->pending == 0)
      chan_free(b, ch);
    return;
  }
  unsigned i = ch->slot;
  wslot *s = &b->slots[i];
  int ok = op_ok(op);
  switch (op->kind) {
  case OP_CONNECT:
    if (ok)
      on_connected(b, i);
    else
      chan_ended(b, i);
    break;
  case OP_READ:
    if (!ok)
      chan_ended(b, i);
    else if (n > 0)
      deliver(b, i, n);
    else
      start_read(b, i); /* a zero-length write: no data, no EOF */
    break;
  case OP_WRITE:
    if (!ok) {
      write_failed(s);
    } else {
      pp__buf_consume(&ch->inflight, n);
      start_write(s);
    }
    break;
  }
}

/* ---- process exits ---- */

/* On a system wait thread: hand the exit to the scheduler's port. If the
 * post failed (the system out of resources), the exit would go unseen
 * until destroy; there is nothing better to do on this thread. */
static VOID CALLBACK on_exit_cb(PVOID ctx, BOOLEAN timed_out) {
  wslot *s = ctx;
  (void)timed_out;
  PostQueuedCompletionStatus(s->b->iocp, 0, KEY_EXIT, (LPOVERLAPPED)ctx);
}

static void on_exit(pp__backend *b, wslot *s) {
  unsigned i = (unsigned)(s - b->slots);
  if (s->state != SLOT_LIVE || s->exited)
    return;
  /* The callback has run (it posted this): unregistering cannot block. */
  UnregisterWaitEx(s->wait, INVALID_HANDLE_VALUE);
  s->wait = NULL;
  DWORD code = 0;
  if (!GetExitCodeProcess(s->process, &code))
    code = (DWORD)-1;
  s->exit.signaled = 0;
  s->exit.code = (long)code;
  s->exited = 1;
  if (s->ch && s->ch->connected) {
    /* What the worker wrote before it ended comes first: EXITED follows
     * the channel's EOF. */
    s->drain_deadline = GetTickCount64() + DRAIN_MS;
    b->draining++;
    return;
  }
  if (s->ch) {
    /* It never connected, so it was sent nothing and wrote nothing. */
    close_chan(b, s);
    if (!s->hup)
      emit(b, PP__EV_CLOSED, i, NULL);
  }
  finish_exit(b, i);
}

static void check_drains(pp__backend *b) {
  if (!b->draining)
    return;
  ULONGLONG now = GetTickCount64();
  for (unsigned i = 0; b->draining && i < b->cfg.max_slots; i++) {
    wslot *s = &b->slots[i];
    if (s->drain_deadline && now >= s->drain_deadline)
      chan_ended(b, i);
  }
}

/* ---- wake-ups ---- */

void pp__backend_wake(pp__backend *b) {
  if (!b || InterlockedExchange(&b->wake_pending, 1))
    return;
  PostQueuedCompletionStatus(b->iocp, 0, KEY_WAKE, NULL);
}

/* ---- life cycle ---- */

static void backend_free(pp__backend *b) {
  if (b->slots) {
    for (unsigned i = 0; i < b->cfg.max_slots; i++) {
      wslot *s = &b->slots[i];
      if (s->process && !s->exited)
        TerminateProcess(s->process, PP__KILL_CODE);
    }
    for (unsigned i = 0; i < b->cfg.max_slots; i++) {
      wslot *s = &b->slots[i];
      if (s->process && !s->exited)
        WaitForSingleObject(s->process, DESTROY_DRAIN_MS);
      reset_slot(b, s);
    }
  }
  /* Cancelled operations come back through the port; their channels can
   * be freed only then. */
  ULONGLONG until = GetTickCount64() + DESTROY_DRAIN_MS;
  while (b->iocp && b->nchans > 0 && GetTickCount64() < until) {
    OVERLAPPED_ENTRY e[PACKETS];
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(b->iocp, e, PACKETS, &n, 100, FALSE))
      continue;
    for (ULONG k = 0; k < n; k++)
      if (e[k].lpCompletionKey == KEY_IO && e[k].lpOverlapped)
        on_io(b, (io_op *)(void *)e[k].lpOverlapped,
              e[k].dwNumberOfBytesTransferred);
  }
  /* A channel whose I/O never came back is left allocated: the system may
   * still write into it. */
  if (b->iocp)
    CloseHandle(b->iocp);
  /* Every worker is gone; closing the job would end any left. */
  if (b->job)
    CloseHandle(b->job);
  pp__pipe_security_free(&b->sec);
  pp__buf_free(&b->events);
  free(b->slots);
  pp__spawn_plan_free(&b->plan);
  free(b);
}

/* Records the failed call of the last start (or of the backend's
 * creation) in b->start_error, for pp__backend_start_error(); without a
 * call (memory, the CSPRNG) the status says it alone. */
static void note_start_failure(pp__backend *b, const pp__win32_failure *why) {
  b->start_error[0] = '\0';
  if (!why->call)
    return;
  char text[128];
  pp__win32_error_text(why->err, text, sizeof text);
  snprintf(b->start_error, sizeof b->start_error, "%s: %s", why->call, text);
}

const char *pp__backend_start_error(const pp__backend *b) {
  return b ? b->start_error : "";
}

pp_status pp__backend_create(pp__backend **out, const pp__backend_config *cfg) {
  if (!out || !cfg)
    return PP_EINVAL;
  *out = NULL;
  switch (cfg->context) {
  case PP_CONTEXT_SPAWN:
    break;
  case PP_CONTEXT_FORK:
  case PP_CONTEXT_FORKSERVER:
    return PP_ENOTSUP; /* Windows cannot fork */
  default:
    return PP_EINVAL;
  }
  if (!cfg->worker_main || cfg->max_slots == 0 || cfg->max_slots > MAX_SLOTS)
    return PP_EINVAL;

  pp__backend *b = calloc(1, sizeof *b);
  if (!b)
    return PP_ENOMEM;
  b->cfg = *cfg;
  b->slots = calloc(cfg->max_slots, sizeof *b->slots);
  pp_status st = b->slots ? room(b, PACKETS * EVENTS_PER_PACKET +
                                        2 * (size_t)cfg->max_slots + 2)
                          : PP_ENOMEM;
  pp__win32_failure why = {NULL, 0};
  if (st == PP_OK)
    st = pp__spawn_plan_make(&b->plan, cfg->key, &why);
  if (st == PP_OK)
    st = pp__pipe_security_init(&b->sec, &why);
  if (st == PP_OK)
    st = pp__job_create(&b->job, &why);
  if (st == PP_OK) {
    b->iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (!b->iocp)
      st = pp__win32_fail(&why, "CreateIoCompletionPort", GetLastError());
  }
  if (st != PP_OK) {
    /* The call and the system's reason, for pp_pool_create_error(). */
    note_start_failure(b, &why);
    if (b->start_error[0])
      snprintf(pp__thread_message(), PP__THREAD_MESSAGE,
               st == PP_ENOTSUP ? "the spawn context is not available: the "
                                  "program's executable cannot be located "
                                  "(%s)"
                                : "%s",
               b->start_error);
    backend_free(b);
    return st;
  }
  for (unsigned i = 0; i < cfg->max_slots; i++)
    b->slots[i].b = b;
  *out = b;
  return PP_OK;
}

/* Every worker is started the same way, from any thread: nothing waits for
 * the end of pool creation. */
pp_status pp__backend_ready(pp__backend *b) { return b ? PP_OK : PP_EINVAL; }

void pp__backend_destroy(pp__backend *b) {
  if (b)
    backend_free(b);
}

/* The channel's pipe, waiting for its worker to connect. A failed call is
 * described in *why. */
static pp_status open_chan(pp__backend *b, wslot *s, unsigned i,
                           wchar_t name[PP__PIPE_NAME_MAX],
                           pp__win32_failure *why) {
  chan *ch = calloc(1, sizeof *ch);
  if (!ch)
    return PP_ENOMEM;
  b->nchans++;
  ch->slot = i;
  ch->conn.kind = OP_CONNECT;
  ch->rd.kind = OP_READ;
  ch->wr.kind = OP_WRITE;
  ch->conn.ch = ch->rd.ch = ch->wr.ch = ch;
  pp_status st = pp__pipe_name(name);
  if (st == PP_OK)
    st = pp__pipe_create(name, &b->sec, &ch->pipe, why);
  if (st != PP_OK) {
    chan_free(b, ch);
    return st;
  }
  s->ch = ch;
  if (!CreateIoCompletionPort(ch->pipe, b->iocp, KEY_IO, 0)) {
    st = pp__win32_fail(why, "CreateIoCompletionPort", GetLastError());
    close_chan(b, s);
    return st;
  }
  /* Before the worker exists, so its connection cannot come first. */
  if (ConnectNamedPipe(ch->pipe, &ch->conn.ov) ||
      GetLastError() == ERROR_IO_PENDING) {
    ch->pending++;
  } else if (GetLastError() == ERROR_PIPE_CONNECTED) {
    ch->connected = 1; /* no packet comes for this one */
  } else {
    st = pp__win32_fail(why, "ConnectNamedPipe", GetLastError());
    close_chan(b, s);
    return st;
  }
  return PP_OK;
}

pp_status pp__backend_start(pp__backend *b, unsigned slot) {
  wslot *s = slot_at(b, slot);
  if (!s)
    return PP_EINVAL;
  if (s->state != SLOT_FREE)
    return PP_ESTATE;
  pp_status st = room(b, 1);
  if (st != PP_OK)
    return st;
  reset_slot(b, s);
  wchar_t name[PP__PIPE_NAME_MAX];
  DWORD pid = 0;
  pp__win32_failure why = {NULL, 0};
  st = open_chan(b, s, slot, name, &why);
  if (st == PP_OK)
    st = pp__process_spawn(&b->plan, name, b->job, &s->process, &pid, &why);
  if (st == PP_OK && !RegisterWaitForSingleObject(
                         &s->wait, s->process, on_exit_cb, s, INFINITE,
                         WT_EXECUTEONLYONCE | WT_EXECUTEINWAITTHREAD)) {
    st = pp__win32_fail(&why, "RegisterWaitForSingleObject", GetLastError());
    s->wait = NULL;
    TerminateProcess(s->process, PP__KILL_CODE);
    WaitForSingleObject(s->process, INFINITE);
  }
  pp__event ev;
  memset(&ev, 0, sizeof ev);
  if (st != PP_OK) {
    note_start_failure(b, &why);
    reset_slot(b, s);
    ev.status = st;
    emit(b, PP__EV_START_FAILED, slot, &ev);
    return PP_OK;
  }
  s->state = SLOT_LIVE;
  s->pid = (long)pid;
  ev.pid = s->pid;
  emit(b, PP__EV_STARTED, slot, &ev);
  if (s->ch->connected)
    on_connected(b, slot);
  return PP_OK;
}

void pp__backend_shutdown(pp__backend *b) {
  /* Workers are started by this process itself: nothing to let go early. */
  (void)b;
}

pp_status pp__backend_send(pp__backend *b, unsigned slot, const void *data,
                           size_t len) {
  wslot *s = slot_at(b, slot);
  if (!s || (!data && len))
    return PP_EINVAL;
  if (s->state == SLOT_FREE)
    return PP_ESTATE;
  if (!s->ch || s->hup || s->write_dead)
    return PP_EOF;
  if (len == 0)
    return PP_OK;
  /* Overlapped writes need bytes that stay put until they complete: the
   * bytes are always copied. */
  pp_status st = pp__buf_append(&s->out, data, len);
  if (st != PP_OK)
    return st;
  start_write(s);
  return s->write_dead ? PP_EOF : PP_OK;
}

size_t pp__backend_pending(const pp__backend *b, unsigned slot) {
  if (!b || slot >= b->cfg.max_slots)
    return 0;
  const wslot *s = &b->slots[slot];
  return pp__buf_len(&s->out) + (s->ch ? pp__buf_len(&s->ch->inflight) : 0);
}

pp__buf *pp__backend_input(pp__backend *b, unsigned slot) {
  wslot *s = slot_at(b, slot);
  return (s && s->state != SLOT_FREE) ? &s->in : NULL;
}

pp_status pp__backend_hangup(pp__backend *b, unsigned slot) {
  wslot *s = slot_at(b, slot);
  if (!s)
    return PP_EINVAL;
  if (s->state == SLOT_FREE)
    return PP_ESTATE;
  s->hup = 1;
  /* Queued output is dropped with the channel: EOF is the message. */
  pp__buf_free(&s->out);
  if (s->ch && !s->ch->connected && !s->exited)
    return PP_OK; /* closed once the worker connects (on_connected) */
  close_chan(b, s);
  if (s->exited)
    finish_exit(b, slot); /* it was waiting for the channel's EOF */
  return PP_OK;
}

pp_status pp__backend_kill(pp__backend *b, unsigned slot) {
  wslot *s = slot_at(b, slot);
  if (!s)
    return PP_EINVAL;
  if (s->state == SLOT_FREE)
    return PP_ESTATE;
  /* The handle stays open until release, so the process id cannot have
   * been reused: the right process is hit, or none. */
  if (s->state == SLOT_LIVE && !s->exited)
    TerminateProcess(s->process, PP__KILL_CODE);
  return PP_OK;
}

/* Windows has no request a process may answer by cleaning up: stopping is
 * killing. */
pp_status pp__backend_stop(pp__backend *b, unsigned slot) {
  return pp__backend_kill(b, slot);
}

void pp__backend_release(pp__backend *b, unsigned slot) {
  wslot *s = slot_at(b, slot);
  if (!s || s->state != SLOT_EXITED)
    return;
  reset_slot(b, s);
  /* Events of the old worker must not reach a new one in the same slot. */
  pp__event_drop_slot(&b->events, slot);
}

/* ---- waiting ---- */

static void on_packet(pp__backend *b, const OVERLAPPED_ENTRY *e) {
  switch (e->lpCompletionKey) {
  case KEY_WAKE:
    /* Cleared after the packet is taken: a wake() that still saw the flag
     * set made its change before this, and the scheduler looks at every
     * change after a WAKE. */
    InterlockedExchange(&b->wake_pending, 0);
    emit(b, PP__EV_WAKE, 0, NULL);
    break;
  case KEY_EXIT:
    on_exit(b, (wslot *)(void *)e->lpOverlapped);
    break;
  case KEY_IO:
    on_io(b, (io_op *)(void *)e->lpOverlapped, e->dwNumberOfBytesTransferred);
    break;
  default:
    break;
  }
}

pp_status pp__backend_poll(pp__backend *b, long timeout_ms) {
  ULONGLONG began = GetTickCount64();
  for (;;) {
    if (room(b, PACKETS * EVENTS_PER_PACKET + 2 * (size_t)b->cfg.max_slots +
                    2) != PP_OK)
      return PP_ENOMEM;
    pp_status st = retry_held(b);
    check_drains(b);
    if (queued(b))
      return PP_OK;
    if (st != PP_OK)
      return st;
    DWORD wait_ms = INFINITE;
    if (timeout_ms >= 0) {
      ULONGLONG spent = GetTickCount64() - began;
      wait_ms = spent >= (ULONGLONG)timeout_ms
                    ? 0
                    : (DWORD)((ULONGLONG)timeout_ms - spent);
    }
    if (b->draining && wait_ms > DRAIN_POLL_MS)
      wait_ms = DRAIN_POLL_MS;
    OVERLAPPED_ENTRY e[PACKETS];
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(b->iocp, e, PACKETS, &n, wait_ms, FALSE)) {
      if (GetLastError() != WAIT_TIMEOUT)
        return PP_ESYSTEM;
      n = 0;
    }
    for (ULONG k = 0; k < n; k++)
      on_packet(b, &e[k]);
    check_drains(b);
    if (queued(b) || timeout_ms == 0)
      return PP_OK;
    if (timeout_ms > 0 && GetTickCount64() - began >= (ULONGLONG)timeout_ms)
      return PP_OK;
  }
}

pp__buf *pp__backend_events(pp__backend *b) { return &b->events; }
