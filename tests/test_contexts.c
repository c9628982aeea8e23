/* Suite "contexts": what tells the start contexts apart (a spawned worker
 * is a new process image, a forked one a copy), what they share (only the
 * channel and the standard streams reach a worker, replacement works), and
 * the key handshake every worker passes before it gets any work: the
 * SHA-256 and HMAC it rests on, refusal of a wrong key, version mismatch,
 * and workers started by hand. */
#ifndef _WIN32
#define _POSIX_C_SOURCE 200809L
#endif

#include "internal.h"

#include <CUnit/CUnit.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>

#include "win32.h" /* pp__cmdline_append */
#else
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
extern char **environ;

#include <apr_allocator.h>
#include <pthread.h>
#endif
#ifdef __linux__
#include <elf.h>
#include <stdint.h>
#endif

#include "suites.h"
#include "util.h"

/* ---- tasks (registered by main() before the worker hook) ---- */

/* Changed by the parent before it creates pools: a fork worker sees the
 * change, a spawned or forkserver worker the initial value. */
#define MARKER_INITIAL 1
#define MARKER_CHANGED 2
static int64_t g_marker = MARKER_INITIAL;

static pp_status task_get_marker(pp_call *call) {
  return pp_call_return_i64(call, g_marker);
}

#if defined(__linux__)
/* 1 when `fd` is the worker's own shared-memory segment (its lanes), which
 * it opens itself after it starts: not something it inherited. */
static int is_lanes_segment(int fd) {
  char link[64], target[256];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0)
    return 0;
  target[n] = '\0';
  return strncmp(target, "/dev/shm/pp.", 12) == 0;
}
#endif

/* The open descriptors among 0..1023, as int32 values (on Linux, but for
 * the worker's own lanes segment). */
static pp_status task_open_fds(pp_call *call) {
#ifdef _WIN32
  return pp_call_fail(call, "open_fds: POSIX only");
#else
  int32_t fds[1024];
  size_t n = 0;
  for (int fd = 0; fd < 1024; fd++) {
    if (fcntl(fd, F_GETFD) < 0)
      continue;
#if defined(__linux__)
    if (is_lanes_segment(fd))
      continue;
#endif
    fds[n++] = fd;
  }
  return pp_call_return(call, fds, n * sizeof fds[0]);
#endif
}

/* Creates the file its argument names: proof that the task ran. */
static pp_status task_touch(pp_call *call) {
  pp_bytes b;
  char path[512];
  if (pp_call_arg(call, 0, &b) != PP_OK || b.len >= sizeof path)
    return pp_call_fail(call, "touch: expected a path");
  memcpy(path, b.data, b.len);
  path[b.len] = '\0';
  FILE *f = fopen(path, "w");
  if (!f)
    return pp_call_fail(call, "touch: cannot create %s", path);
  fclose(f);
  return pp_call_return_i64(call, 1);
}

#define ENV_MARK "PP_TESTS_ENV_MARK"

/* The value of ENV_MARK in the worker's environment ("" when unset). */
static pp_status task_env_mark(pp_call *call) {
  char value[64] = "";
#ifdef _WIN32
  DWORD n = GetEnvironmentVariableA(ENV_MARK, value, sizeof value);
  if (n >= sizeof value)
    value[0] = '\0';
#else
  const char *v = getenv(ENV_MARK);
  if (v && strlen(v) < sizeof value)
    strcpy(value, v);
#endif
  return pp_call_return(call, value, strlen(value));
}

/* Sets ENV_MARK in this process's environment. */
static void set_env_mark(const char *value) {
#ifdef _WIN32
  SetEnvironmentVariableA(ENV_MARK, value);
#else
  if (value)
    setenv(ENV_MARK, value, 1);
  else
    unsetenv(ENV_MARK);
#endif
}

/* The worker's current directory. */
static pp_status task_cwd(pp_call *call) {
  char dir[4096];
#ifdef _WIN32
  DWORD n = GetCurrentDirectoryA(sizeof dir, dir);
  if (n == 0 || n >= sizeof dir)
    return pp_call_fail(call, "cwd: GetCurrentDirectoryA failed");
#else
  if (!getcwd(dir, sizeof dir))
    return pp_call_fail(call, "cwd: getcwd failed");
#endif
  return pp_call_return(call, dir, strlen(dir));
}

/* What the worker's standard input gives. POSIX: the bytes a read got
 * (0: EOF), or -1 when nothing came within 2 s. Windows: its file type
 * (GetFileType()). */
static pp_status task_read_stdin(pp_call *call) {
#ifdef _WIN32
  return pp_call_return_i64(
      call, (int64_t)GetFileType(GetStdHandle(STD_INPUT_HANDLE)));
#else
  struct pollfd pfd = {0, POLLIN, 0};
  if (poll(&pfd, 1, 2000) != 1)
    return pp_call_return_i64(call, -1);
  char buf[16];
  return pp_call_return_i64(call, (int64_t)read(0, buf, sizeof buf));
#endif
}

#ifndef _WIN32
/* 1 when `fd` is /dev/null. */
static int is_dev_null(int fd) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat("/dev/null", &b) == 0 &&
         S_ISCHR(a.st_mode) && a.st_rdev == b.st_rdev;
}
#endif

/* Writes 8 KiB to its standard output and a line to its standard error,
 * as a chatty task does, then returns which of its descriptors 0, 1 and 2
 * are /dev/null (bit k for descriptor k). */
static pp_status task_chatter(pp_call *call) {
#ifdef _WIN32
  return pp_call_fail(call, "chatter: POSIX only");
#else
  char line[64];
  memset(line, 'x', sizeof line - 1);
  line[sizeof line - 1] = '\n';
  for (int i = 0; i < 128; i++)
    fwrite(line, 1, sizeof line, stdout);
  fflush(stdout);
  fprintf(stderr, "chatter: a line on standard error\n");
  int64_t null = 0;
  for (int fd = 0; fd < 3; fd++)
    null |= (int64_t)is_dev_null(fd) << fd;
  return pp_call_return_i64(call, null);
#endif
}

/* 1 when the key variable is anywhere a task or the processes it starts
 * could find it: getenv() (and so _environ, which the C runtime's
 * _spawn*e() calls pass on), and on Windows the C runtime's wide copy and
 * the system's block, which CreateProcess passes on. */
static pp_status task_has_key_env(pp_call *call) {
  int has = getenv(PP__KEY_ENV) != NULL;
#ifdef _WIN32
  char value[8];
  has |= GetEnvironmentVariableA(PP__KEY_ENV, value, sizeof value) != 0;
  has |= _wgetenv(L"" PP__KEY_ENV) != NULL;
#endif
  return pp_call_return_i64(call, has);
}

/* A pool of the task's own, in the context its argument names: a map of
 * "square" over 0..9 there; returns the sum of the squares (285). */
static pp_status task_nested_map(pp_call *call) {
  int64_t ctx = 0;
  if (pp_call_arg_i64(call, 0, &ctx) != PP_OK)
    return pp_call_fail(call, "nested_map: needs a context");
  pp_options o;
  pp_options_init(&o);
  o.processes = 2;
  o.context = (pp_context)ctx;
  pp_pool *pool = NULL;
  pp_status st = pp_pool_create(&pool, &o);
  if (st != PP_OK)
    return pp_call_fail(call, "nested_map: a %s pool: %s",
                        pp_context_name((pp_context)ctx), pp_strerror(st));
  int64_t xs[10];
  pp_bytes items[10];
  for (int i = 0; i < 10; i++) {
    xs[i] = i;
    items[i].data = &xs[i];
    items[i].len = sizeof xs[i];
  }
  pp_result *r = NULL;
  int64_t sum = 0;
  st = pp_map(pool, "square", items, 10, 1, &r);
  for (size_t i = 0; st == PP_OK && i < 10; i++) {
    int64_t y = 0;
    st = pp_result_item_i64(r, i, &y);
    sum += y;
  }
  pp_result_free(r);
  pp_pool_close(pool);
  pp_status joined = pp_pool_join(pool);
  pp_pool_destroy(pool);
  if (st == PP_OK)
    st = joined;
  if (st != PP_OK)
    return pp_call_fail(call, "nested_map: %s", pp_strerror(st));
  return pp_call_return_i64(call, sum);
}

static const char *g_argv0;
static int g_argc; /* main()'s */
static char **g_argv;

int contexts_without_hook_main(void) {
  /* This process skipped pp_worker_main(): a copy of it started by spawn
   * or forkserver would run main() from the top, so those pools are
   * refused; fork needs no hook. */
  pp_options o;
  pp_options_init(&o);
  o.processes = 1;
  int bad = 0;
  const pp_context refused[] = {PP_CONTEXT_SPAWN, PP_CONTEXT_FORKSERVER};
  for (size_t i = 0; i < 2; i++) {
    pp_pool *pool = NULL;
    o.context = refused[i];
    pp_status st = pp_pool_create(&pool, &o);
    if (st != PP_ESTATE || pool) {
      fprintf(stderr, "%s without the hook: %s\n", pp_context_name(refused[i]),
              pp_strerror(st));
      bad = 1;
    }
    pp_pool_destroy(pool);
  }
  pp_pool *pool = NULL;
  o.context = PP_CONTEXT_FORK;
  if (pp_pool_create(&pool, &o) != PP_OK)
    bad = 1;
  pp_pool_destroy(pool);
  return bad;
}

int contexts_respawn_main(void) {
  /* This process and its workers called pp_worker_main(0, NULL), or this
   * one was started through its dynamic loader. */
#ifdef _WIN32
  static const pp_context contexts[] = {PP_CONTEXT_SPAWN};
#else
  static const pp_context contexts[] = {PP_CONTEXT_SPAWN,
                                        PP_CONTEXT_FORKSERVER};
#endif
  int bad = 0;
  for (size_t i = 0; i < sizeof contexts / sizeof contexts[0]; i++) {
    pp_options o;
    pp_options_init(&o);
    o.processes = 1;
    o.context = contexts[i];
    pp_pool *pool = NULL;
    pp_status st = pp_pool_create(&pool, &o);
    int64_t y = 0;
    if (st == PP_OK)
      st = tu_apply_i64(pool, "square", 7, &y);
    if (st != PP_OK || y != 49) {
      fprintf(stderr, "%s, a program started again: %s\n",
              pp_context_name(contexts[i]), pp_strerror(st));
      bad = 1;
    }
    pp_pool_destroy(pool);
  }
  return bad;
}

pp_status contexts_tasks_register(int argc, char **argv) {
  g_argv0 = argv[0];
  g_argc = argc;
  g_argv = argv;
  pp_status st = pp_register("get_marker", task_get_marker);
  if (st == PP_OK)
    st = pp_register("open_fds", task_open_fds);
  if (st == PP_OK)
    st = pp_register("touch", task_touch);
  if (st == PP_OK)
    st = pp_register("has_key_env", task_has_key_env);
  if (st == PP_OK)
    st = pp_register("nested_map", task_nested_map);
  if (st == PP_OK)
    st = pp_register("read_stdin", task_read_stdin);
  if (st == PP_OK)
    st = pp_register("cwd", task_cwd);
  if (st == PP_OK)
    st = pp_register("env_mark", task_env_mark);
  if (st == PP_OK)
    st = pp_register("chatter", task_chatter);
  return st;
}

/* ---- helpers ---- */

#ifdef _WIN32
static const pp_context all_contexts[] = {PP_CONTEXT_SPAWN};
#else
static const pp_context all_contexts[] = {PP_CONTEXT_FORK, PP_CONTEXT_SPAWN,
                                          PP_CONTEXT_FORKSERVER};
#endif
#define NCONTEXTS (sizeof all_contexts / sizeof all_contexts[0])

static pp_pool *pool_in(pp_context ctx, int processes, unsigned long maxtasks) {
  pp_options o;
  pp_options_init(&o);
  o.processes = processes;
  o.context = ctx;
  o.maxtasksperchild = maxtasks;
  pp_pool *pool = NULL;
  pp_status st = pp_pool_create(&pool, &o);
  if (st != PP_OK)
    fprintf(stderr, "\n  pool in context %s: %s\n", pp_context_name(ctx),
            pp_strerror(st));
  CU_ASSERT_EQUAL(st, PP_OK);
  return pool;
}

static int from_hex(const char *hex, unsigned char *out, size_t cap) {
  size_t n = strlen(hex) / 2;
  if (n > cap)
    return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1)
      return -1;
    out[i] = (unsigned char)v;
  }
  return (int)n;
}

static void check_digest(const unsigned char *got, const char *want_hex,
                         size_t len) {
  unsigned char want[PP__SHA256_SIZE];
  CU_ASSERT_EQUAL_FATAL(from_hex(want_hex, want, sizeof want), (int)len);
  CU_ASSERT(memcmp(got, want, len) == 0);
}

/* ---- SHA-256 and HMAC-SHA256 ---- */

/* FIPS 180-2 appendix B, plus the empty message and the 896-bit one. */
static void test_sha256_vectors(void) {
  static const struct {
    const char *msg;
    const char *digest;
  } v[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc",
       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmn"
       "opjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
  };
  unsigned char out[PP__SHA256_SIZE];
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    pp__sha256(v[i].msg, strlen(v[i].msg), out);
    check_digest(out, v[i].digest, sizeof out);
  }
  /* One million 'a', fed in uneven pieces: block boundaries everywhere. */
  static char a[1000];
  memset(a, 'a', sizeof a);
  pp__sha256_ctx s;
  pp__sha256_init(&s);
  size_t left = 1000000, piece = 1;
  while (left) {
    size_t n = piece < left ? piece : left;
    pp__sha256_update(&s, a, n);
    left -= n;
    piece = piece % 937 + 63; /* at most 999 */
  }
  pp__sha256_final(&s, out);
  check_digest(
      out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
      sizeof out);
}

/* RFC 4231 test cases 1 to 7 (case 5 compares the first 128 bits, as the
 * RFC does). */
static void test_hmac_vectors(void) {
  unsigned char k0b[20], kaa20[20], k25[25], k0c[20], kaa131[131];
  unsigned char ddd[50], cdc[50];
  memset(k0b, 0x0b, sizeof k0b);
  memset(kaa20, 0xaa, sizeof kaa20);
  for (int i = 0; i < 25; i++)
    k25[i] = (unsigned char)(i + 1);
  memset(k0c, 0x0c, sizeof k0c);
  memset(kaa131, 0xaa, sizeof kaa131);
  memset(ddd, 0xdd, sizeof ddd);
  memset(cdc, 0xcd, sizeof cdc);
  static const char big_data[] =
      "This is a test using a larger than block-size key and a larger than "
      "block-size data. The key needs to be hashed before being used by the "
      "HMAC algorithm.";
  static const char big_key[] =
      "Test Using Larger Than Block-Size Key - Hash Key First";
  const struct {
    const void *key;
    size_t klen;
    const void *data;
    size_t dlen;
    const char *mac;
    size_t check;
  } v[] = {
      {k0b, 20, "Hi There", 8,
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 32},
      {"Jefe", 4, "what do ya want for nothing?", 28,
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32},
      {kaa20, 20, ddd, 50,
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 32},
      {k25, 25, cdc, 50,
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 32},
      {k0c, 20, "Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b",
       16},
      {kaa131, 131, big_key, sizeof big_key - 1,
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32},
      {kaa131, 131, big_data, sizeof big_data - 1,
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 32},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    unsigned char out[PP__SHA256_SIZE];
    pp__hmac_sha256(v[i].key, v[i].klen, v[i].data, v[i].dlen, out);
    check_digest(out, v[i].mac, v[i].check);
  }
}

static void test_handshake_check(void) {
  unsigned char nonce[PP__NONCE_SIZE], proof[PP__SHA256_SIZE];
  for (size_t i = 0; i < sizeof nonce; i++)
    nonce[i] = (unsigned char)(i * 7);
  pp__handshake_proof("secret", nonce, proof);
  CU_ASSERT(pp__handshake_check("secret", nonce, proof, sizeof proof));
  CU_ASSERT(!pp__handshake_check("secreT", nonce, proof, sizeof proof));
  CU_ASSERT(!pp__handshake_check("secret", nonce, proof, sizeof proof - 1));
  CU_ASSERT(!pp__handshake_check("secret", nonce, NULL, sizeof proof));
  for (size_t i = 0; i < sizeof proof; i++) {
    proof[i] ^= 1; /* a difference anywhere is seen */
    CU_ASSERT(!pp__handshake_check("secret", nonce, proof, sizeof proof));
    proof[i] ^= 1;
  }
  nonce[0] ^= 1;
  CU_ASSERT(!pp__handshake_check("secret", nonce, proof, sizeof proof));
  CU_ASSERT(pp__equal_ct("abc", "abc", 3));
  CU_ASSERT(!pp__equal_ct("abc", "abd", 3));
  CU_ASSERT(pp__equal_ct("a", "b", 0));
}

/* A frame of another version is told apart from garbage, on either side. */
static void test_foreign_version(void) {
  pp__buf b = {0};
  size_t at;
  CU_ASSERT_EQUAL_FATAL(pp__frame_begin(&b, PP__F_PROOF, 0, &at), PP_OK);
  CU_ASSERT_EQUAL(pp__frame_end(&b, at), PP_OK);
  pp__frame f;
  int complete;
  CU_ASSERT_EQUAL(pp__frame_peek(&b, 64, &f, &complete), PP_OK);
  CU_ASSERT(complete);
  CU_ASSERT_EQUAL(pp__frame_version(&b), PP__WIRE_VERSION);
  pp__buf_head(&b)[4] = PP__WIRE_VERSION + 1;
  CU_ASSERT_EQUAL(pp__frame_peek(&b, 64, &f, &complete), PP_ENOTSUP);
  CU_ASSERT_EQUAL(pp__frame_version(&b), PP__WIRE_VERSION + 1);
  /* Known from its first five bytes, before the header is complete. */
  pp__buf head = {0};
  CU_ASSERT_EQUAL(pp__buf_append(&head, pp__buf_head(&b), 5), PP_OK);
  CU_ASSERT_EQUAL(pp__frame_peek(&head, 64, &f, &complete), PP_ENOTSUP);
  /* A bad magic is garbage, whatever follows. */
  pp__buf_head(&b)[0] ^= 0xff;
  CU_ASSERT_EQUAL(pp__frame_peek(&b, 64, &f, &complete), PP_EPROTOCOL);
  pp__buf_free(&b);
  pp__buf_free(&head);
}

/* ---- what each context starts ---- */

/* A fork worker is a copy of the parent (as it was when the pool was
 * created); a spawned or forkserver worker is a new process image. */
static void test_global_variable(void) {
  g_marker = MARKER_CHANGED;
  for (size_t i = 0; i < NCONTEXTS; i++) {
    pp_pool *pool = pool_in(all_contexts[i], 1, 0);
    if (!pool)
      continue;
    int64_t seen = -1;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "get_marker", 0, &seen), PP_OK);
    int64_t want =
        all_contexts[i] == PP_CONTEXT_FORK ? MARKER_CHANGED : MARKER_INITIAL;
    if (seen != want)
      fprintf(stderr, "\n  context %s: marker %lld, expected %lld\n",
              pp_context_name(all_contexts[i]), (long long)seen,
              (long long)want);
    CU_ASSERT_EQUAL(seen, want);
    pp_pool_destroy(pool);
  }
  g_marker = MARKER_INITIAL;
}

/* The spawned worker took its key out of its environment: processes its
 * tasks start do not inherit it. */
static void test_key_not_in_environment(void) {
  for (size_t i = 0; i < NCONTEXTS; i++) {
    pp_pool *pool = pool_in(all_contexts[i], 1, 0);
    if (!pool)
      continue;
    int64_t has = -1;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "has_key_env", 0, &has), PP_OK);
    CU_ASSERT_EQUAL(has, 0);
    pp_pool_destroy(pool);
  }
}

#ifndef _WIN32
/* A task lists its open descriptors: the standard streams and its channel,
 * nothing the parent had open (a file opened without O_CLOEXEC here). */
static void test_descriptors(void) {
  int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC, on purpose */
  CU_ASSERT_FATAL(leak >= 0);
  int high = dup2(leak, 100); /* apart from any number a worker uses */
  CU_ASSERT_FATAL(high == 100);
  close(leak);
  for (size_t i = 0; i < NCONTEXTS; i++) {
    pp_context ctx = all_contexts[i];
    pp_pool *pool = pool_in(ctx, 1, 0);
    if (!pool)
      continue;
    pp_value v = {0};
    CU_ASSERT_EQUAL(pp_apply(pool, "open_fds", NULL, 0, &v), PP_OK);
    int32_t fds[1024];
    size_t n = v.len / sizeof fds[0];
    if (v.status == PP_OK && n <= 1024)
      memcpy(fds, v.data, n * sizeof fds[0]);
    else
      n = 0;
    pp_value_clear(&v);
    char list[512] = "";
    for (size_t k = 0; k < n; k++)
      snprintf(list + strlen(list), sizeof list - strlen(list), " %d",
               (int)fds[k]);
    if (n != 4)
      fprintf(stderr, "\n  context %s: worker descriptors:%s\n",
              pp_context_name(ctx), list);
    CU_ASSERT_EQUAL(n, 4);
    if (n == 4) {
      CU_ASSERT(fds[0] == 0 && fds[1] == 1 && fds[2] == 2);
      CU_ASSERT(fds[3] >= 3 && fds[3] != 100);
      if (ctx == PP_CONTEXT_SPAWN)
        CU_ASSERT_EQUAL(fds[3], 3);
    }
    pp_pool_destroy(pool);
  }
  close(high);
}

/* A worker's standard input is /dev/null in every context, as in Python:
 * a task that reads it gets EOF at once instead of the program's input,
 * and no process of a pool holds the program's input open, so a pipe's
 * writer sees the end once the program closes it (`yes | program` ends).
 * maxtasksperchild 1: the workers forked here, the launcher's, and their
 * replacements all answer. */
static void test_stdin_is_null(void) {
  int p[2];
  CU_ASSERT_FATAL(pipe(p) == 0);
  int saved = dup(0);
  CU_ASSERT_FATAL(saved >= 0 && dup2(p[0], 0) == 0);
  close(p[0]);
  pp_pool *pools[NCONTEXTS];
  for (size_t i = 0; i < NCONTEXTS; i++) {
    pools[i] = pool_in(all_contexts[i], 2, 1);
    for (int k = 0; pools[i] && k < 4; k++) {
      int64_t got = -2;
      CU_ASSERT_EQUAL(tu_apply_i64(pools[i], "read_stdin", 0, &got), PP_OK);
      CU_ASSERT_EQUAL(got, 0);
    }
  }
  dup2(saved, 0);
  close(saved);
  /* Only the pools' processes could still hold the pipe's read end. */
  struct sigaction ign, old;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old);
  fcntl(p[1], F_SETFL, O_NONBLOCK);
  double t0 = tu_now();
  ssize_t w;
  while ((w = write(p[1], "x", 1)) == 1 && tu_now() - t0 < 5.0)
    tu_sleep_ms(10);
  CU_ASSERT(w < 0 && errno == EPIPE);
  sigaction(SIGPIPE, &old, NULL);
  close(p[1]);
  for (size_t i = 0; i < NCONTEXTS; i++)
    pp_pool_destroy(pools[i]);
}
#endif

#ifndef _WIN32
/* A program that runs with its standard streams closed (a daemon, a
 * program started with `>&-`): the pools' descriptors must take none of
 * their numbers, or a worker, which keeps 0, 1 and 2 as the program has
 * them, would write a task's output into the pool's channel, its wake-up
 * or its shared memory. Each worker finds /dev/null there instead, and a
 * task that prints changes no answer; the replacements too
 * (maxtasksperchild 1), and big arguments through the lanes. */
static void test_standard_streams_closed(void) {
  fflush(stdout);
  fflush(stderr);
  int saved[3];
  for (int fd = 0; fd < 3; fd++) {
    saved[fd] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    CU_ASSERT_FATAL(saved[fd] >= 3);
  }
  for (int fd = 0; fd < 3; fd++)
    close(fd);
  pp_pool *pools[NCONTEXTS];
  int nulls_bad = 0, answers_bad = 0;
  for (size_t i = 0; i < NCONTEXTS; i++) {
    pools[i] = pool_in(all_contexts[i], 2, 1);
    for (int k = 0; pools[i] && k < 6; k++) {
      int64_t nulls = -1;
      if (tu_apply_i64(pools[i], "chatter", 0, &nulls) != PP_OK || nulls != 7)
        nulls_bad++;
    }
    /* 64 KiB arguments: the lanes, once each worker has its segment. */
    enum { BIG = 64 << 10 };
    static unsigned char big[BIG];
    memset(big, 0x5a, sizeof big);
    for (int k = 0; pools[i] && k < 6; k++) {
      pp_bytes arg = {big, sizeof big};
      pp_value v = {0};
      if (pp_apply(pools[i], "echo", &arg, 1, &v) != PP_OK ||
          v.len != sizeof big || memcmp(v.data, big, sizeof big) != 0)
        answers_bad++;
      pp_value_clear(&v);
    }
  }
  /* The pools hold every descriptor they will (channels, wake-ups,
   * segments, pidfds): none took a standard stream's number. */
  int taken = 0;
  for (int fd = 0; fd < 3; fd++)
    taken += fcntl(fd, F_GETFD) >= 0;
  for (size_t i = 0; i < NCONTEXTS; i++)
    pp_pool_destroy(pools[i]);
  for (int fd = 0; fd < 3; fd++) {
    dup2(saved[fd], fd);
    close(saved[fd]);
  }
  CU_ASSERT_EQUAL(taken, 0);
  CU_ASSERT_EQUAL(nulls_bad, 0);
  CU_ASSERT_EQUAL(answers_bad, 0);
}

/* This program, to start it again. */
static const char *self_exe(void) {
#ifdef __linux__
  return "/proc/self/exe";
#else
  return g_argv0;
#endif
}
#endif

/* Runs this program with `option` as its one argument and `var` (if not
 * NULL)=1 in its environment, through `loader` when that is not NULL (a
 * dynamic loader run as the executable, POSIX): its exit code, or -1 when
 * it could not be started or did not end within a minute (then it is
 * killed). */
static int run_self_with(const char *option, const char *var,
                         const char *loader) {
  int code = -1;
#ifdef _WIN32
  (void)loader;
  wchar_t exe[32768], cmd[32768 + 64], wopt[64];
  DWORD n = GetModuleFileNameW(NULL, exe, 32768);
  if (n == 0 || n >= 32768 || strlen(option) >= 64)
    return -1;
  for (size_t i = 0; i <= strlen(option); i++)
    wopt[i] = (wchar_t)(unsigned char)option[i];
  cmd[0] = L'\0';
  if (pp__cmdline_append(cmd, 32768 + 64, exe) != PP_OK ||
      pp__cmdline_append(cmd, 32768 + 64, wopt) != PP_OK)
    return -1;
  if (var)
    SetEnvironmentVariableA(var, "1");
  STARTUPINFOW si;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  PROCESS_INFORMATION pi;
  BOOL made =
      CreateProcessW(exe, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi);
  if (var)
    SetEnvironmentVariableA(var, NULL);
  if (!made)
    return -1;
  CloseHandle(pi.hThread);
  DWORD exit_code = 0;
  if (WaitForSingleObject(pi.hProcess, 60000) != WAIT_OBJECT_0) {
    TerminateProcess(pi.hProcess, 1);
    WaitForSingleObject(pi.hProcess, INFINITE);
  } else if (GetExitCodeProcess(pi.hProcess, &exit_code)) {
    code = (int)exit_code;
  }
  CloseHandle(pi.hProcess);
#else
  char real[4096];
  if (loader && !realpath(self_exe(), real))
    return -1;
  char *direct[] = {(char *)g_argv0, (char *)option, NULL};
  char *through[] = {(char *)loader, real, (char *)option, NULL};
  if (var)
    setenv(var, "1", 1);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, loader ? loader : self_exe(), NULL, NULL,
                       loader ? through : direct, environ);
  if (var)
    unsetenv(var);
  if (rc != 0)
    return -1;
  int status = 0;
  pid_t r;
  double until = tu_now() + 60.0;
  while ((r = waitpid(pid, &status, WNOHANG)) == 0 && tu_now() < until)
    tu_sleep_ms(10);
  if (r == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  } else if (r == pid && WIFEXITED(status)) {
    code = WEXITSTATUS(status);
  }
#endif
  return code;
}

#ifdef __linux__
#if UINTPTR_MAX > 0xffffffffu
typedef Elf64_Ehdr elf_ehdr;
typedef Elf64_Phdr elf_phdr;
#else
typedef Elf32_Ehdr elf_ehdr;
typedef Elf32_Phdr elf_phdr;
#endif

/* The dynamic loader this program asks for (its PT_INTERP), read from its
 * file into `buf`; NULL for a program without one. */
static const char *program_loader(char *buf, size_t cap) {
  FILE *f = fopen("/proc/self/exe", "rb");
  if (!f)
    return NULL;
  const char *found = NULL;
  elf_ehdr eh;
  if (fread(&eh, sizeof eh, 1, f) == 1) {
    for (unsigned i = 0; !found && i < eh.e_phnum; i++) {
      elf_phdr ph;
      if (fseek(f, (long)(eh.e_phoff + (uint64_t)i * eh.e_phentsize),
                SEEK_SET) != 0 ||
          fread(&ph, sizeof ph, 1, f) != 1)
        break;
      if (ph.p_type != PT_INTERP || ph.p_filesz == 0 || ph.p_filesz > cap ||
          fseek(f, (long)ph.p_offset, SEEK_SET) != 0 ||
          fread(buf, 1, ph.p_filesz, f) != ph.p_filesz)
        continue;
      buf[ph.p_filesz - 1] = '\0';
      found = buf;
    }
  }
  fclose(f);
  return found;
}

/* A program started through its dynamic loader, by hand
 * (`/lib64/ld-linux-x86-64.so.2 ./program`): /proc/self/exe is then the
 * loader, which would not run this program again with a worker's options;
 * spawn and forkserver pools start the program that argv[0] names. Before,
 * their every worker died at once ("unrecognized option"). */
static void test_through_loader(void) {
  char loader[256];
  if (!program_loader(loader, sizeof loader)) {
    fprintf(stderr, "\n  contexts: not run (this program has no dynamic "
                    "loader)\n");
    return;
  }
  CU_ASSERT_EQUAL(run_self_with(THROUGH_LOADER_ARG, NULL, loader), 0);
}
#endif

#if defined(__linux__) || defined(__APPLE__) || defined(_WIN32)
/* pp_worker_main(0, NULL), for a program without main()'s arguments at
 * hand (a Windows program entered at wWinMain, say), reads them from the
 * system: the same as main() got here. Then a program that calls it so,
 * and whose workers do, runs spawn (and forkserver) pools. */
static void test_hook_without_argv(void) {
  int argc = 0;
  char **argv = NULL;
  CU_ASSERT_EQUAL_FATAL(pp__backend_command_line(&argc, &argv), 1);
  CU_ASSERT_EQUAL(argc, g_argc);
  for (int i = 0; i < argc && i < g_argc; i++) {
    CU_ASSERT_PTR_NOT_NULL_FATAL(argv[i]);
    if (strcmp(argv[i], g_argv[i]) != 0)
      fprintf(stderr, "\n  argument %d: \"%s\", main() had \"%s\"\n", i,
              argv[i], g_argv[i]);
    CU_ASSERT_STRING_EQUAL(argv[i], g_argv[i]);
  }
  CU_ASSERT_EQUAL(
      run_self_with(HOOK_WITHOUT_ARGV_ARG, HOOK_WITHOUT_ARGV_ENV, NULL), 0);
}
#endif

#ifdef _WIN32
/* A worker's standard input is NUL (a character device), not the pipe the
 * program's input is, as in Python; maxtasksperchild 1: replacements too. */
static void test_stdin_is_nul(void) {
  HANDLE rd = NULL, wr = NULL;
  CU_ASSERT_FATAL(CreatePipe(&rd, &wr, NULL, 0));
  HANDLE saved = GetStdHandle(STD_INPUT_HANDLE);
  SetStdHandle(STD_INPUT_HANDLE, rd);
  pp_pool *pool = pool_in(PP_CONTEXT_SPAWN, 2, 1);
  for (int k = 0; pool && k < 4; k++) {
    int64_t type = -1;
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "read_stdin", 0, &type), PP_OK);
    CU_ASSERT_EQUAL(type, (int64_t)FILE_TYPE_CHAR);
  }
  pp_pool_destroy(pool);
  SetStdHandle(STD_INPUT_HANDLE, saved);
  CloseHandle(rd);
  CloseHandle(wr);
}
#endif

/* Makes the directory `name` (one an earlier run left will do) and goes
 * there. */
static int make_and_enter(const char *name) {
#ifdef _WIN32
  return (CreateDirectoryA(name, NULL) ||
          GetLastError() == ERROR_ALREADY_EXISTS) &&
         SetCurrentDirectoryA(name);
#else
  return (mkdir(name, 0700) == 0 || errno == EEXIST) && chdir(name) == 0;
#endif
}

/* Goes up one directory (1), or removes the directory `name` (0). */
static int leave_dir(const char *name, int up) {
#ifdef _WIN32
  return up ? SetCurrentDirectoryA("..") : RemoveDirectoryA(name);
#else
  return up ? chdir("..") == 0 : rmdir(name) == 0;
#endif
}

/* 1 when the value `v` holds is the string `want`; says what it was if
 * not. */
static int value_is(const pp_value *v, const char *want, pp_context ctx) {
  int same = v->status == PP_OK && v->len == strlen(want) &&
             memcmp(v->data, want, v->len) == 0;
  if (!same)
    fprintf(stderr, "\n  %s: \"%.*s\", expected \"%s\"\n", pp_context_name(ctx),
            (int)v->len, v->data ? (const char *)v->data : "", want);
  return same;
}

/* A worker has the environment the program had when it created the pool,
 * replacements too (maxtasksperchild 1), whatever the program set since. */
static void test_worker_environment(void) {
  set_env_mark("at creation");
  pp_pool *pools[NCONTEXTS];
  for (size_t i = 0; i < NCONTEXTS; i++)
    pools[i] = pool_in(all_contexts[i], 2, 1);
  set_env_mark("changed since");
  for (size_t i = 0; i < NCONTEXTS; i++) {
    for (int k = 0; pools[i] && k < 4; k++) {
      pp_value v = {0};
      CU_ASSERT_EQUAL(pp_apply(pools[i], "env_mark", NULL, 0, &v), PP_OK);
      CU_ASSERT(value_is(&v, "at creation", all_contexts[i]));
      pp_value_clear(&v);
    }
    pp_pool_destroy(pools[i]);
  }
  set_env_mark(NULL);
}

/* A worker runs in the directory the program was in when it created the
 * pool, replacements too (maxtasksperchild 1), wherever the program went
 * since: on Windows a file dialog moves the program's current directory
 * (GetOpenFileName without OFN_NOCHANGEDIR). */
static void test_worker_directory(void) {
  char name[64], made_in[4096];
  snprintf(name, sizeof name, "pp_tests_cwd_%ld", tu_self_pid());
  CU_ASSERT_FATAL(make_and_enter(name));
#ifdef _WIN32
  CU_ASSERT_FATAL(GetCurrentDirectoryA(sizeof made_in, made_in) > 0);
#else
  CU_ASSERT_FATAL(getcwd(made_in, sizeof made_in) != NULL);
#endif
  pp_pool *pools[NCONTEXTS];
  for (size_t i = 0; i < NCONTEXTS; i++)
    pools[i] = pool_in(all_contexts[i], 2, 1);
  CU_ASSERT(leave_dir(name, 1));
  for (size_t i = 0; i < NCONTEXTS; i++) {
    for (int k = 0; pools[i] && k < 4; k++) {
      pp_value v = {0};
      CU_ASSERT_EQUAL(pp_apply(pools[i], "cwd", NULL, 0, &v), PP_OK);
      CU_ASSERT(value_is(&v, made_in, all_contexts[i]));
      pp_value_clear(&v);
    }
    pp_pool_destroy(pools[i]);
  }
  CU_ASSERT(leave_dir(name, 0));
}

/* maxtasksperchild = 1: every task runs in a new worker, in every
 * context. */
static void test_maxtasksperchild(void) {
  for (size_t i = 0; i < NCONTEXTS; i++) {
    pp_pool *pool = pool_in(all_contexts[i], 1, 1);
    if (!pool)
      continue;
    int64_t pids[4];
    for (int k = 0; k < 4; k++) {
      pids[k] = -1;
      CU_ASSERT_EQUAL(tu_apply_i64(pool, "getpid", 0, &pids[k]), PP_OK);
      CU_ASSERT(pids[k] > 0);
      for (int j = 0; j < k; j++)
        CU_ASSERT(pids[j] != pids[k]);
    }
    pp_pool_close(pool);
    CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
    pp_pool_destroy(pool);
  }
}

/* An unknown task name fails that task with a message naming it; the
 * worker stays alive and runs the next task. */
#ifndef _WIN32
/* A thread of this process that takes APR's process-wide allocator lock
 * just before each fork() while `armed`, and gives it back 50 ms later,
 * as a thread creating or destroying an APR pool of its own may hold it
 * when another thread forks. Unguarded, the child gets the lock held by a
 * thread it does not have. */
static struct {
  pthread_mutex_t m;
  pthread_cond_t c;
  int armed, asked, held, quit;
  apr_thread_mutex_t *lock; /* the global allocator's */
} fork_holder = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, NULL};

static void *holder_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&fork_holder.m);
  for (;;) {
    while (!fork_holder.asked && !fork_holder.quit)
      pthread_cond_wait(&fork_holder.c, &fork_holder.m);
    if (fork_holder.quit)
      break;
    fork_holder.asked = 0;
    apr_thread_mutex_lock(fork_holder.lock);
    fork_holder.held = 1;
    pthread_cond_broadcast(&fork_holder.c);
    pthread_mutex_unlock(&fork_holder.m);
    tu_sleep_ms(50);
    apr_thread_mutex_unlock(fork_holder.lock);
    pthread_mutex_lock(&fork_holder.m);
    fork_holder.held = 0;
    pthread_cond_broadcast(&fork_holder.c);
  }
  pthread_mutex_unlock(&fork_holder.m);
  return NULL;
}

/* Runs before the library's own handlers (registered later, so first). */
static void holder_prepare(void) {
  if (!fork_holder.armed)
    return;
  pthread_mutex_lock(&fork_holder.m);
  fork_holder.asked = 1;
  pthread_cond_broadcast(&fork_holder.c);
  while (fork_holder.asked || !fork_holder.held)
    pthread_cond_wait(&fork_holder.c, &fork_holder.m);
  pthread_mutex_unlock(&fork_holder.m);
}

static void holder_child(void) { fork_holder.armed = 0; }

/* A fork worker made while another thread of the parent held APR's
 * process-wide allocator lock still makes a pool of its own: the library
 * keeps that lock from being held across its forks (a parent whose
 * threads made and destroyed pools while one forked hung its workers'
 * nested pools). */
static void test_nested_pool_after_fork_with_lock_held(void) {
  if (TU_TSAN) {
    fprintf(stderr, "\n  not run: ThreadSanitizer stops a child that "
                    "starts threads after a fork of a threaded process\n");
    return;
  }
  apr_pool_t *probe = NULL;
  CU_ASSERT_EQUAL_FATAL(apr_pool_create(&probe, NULL), APR_SUCCESS);
  fork_holder.lock = apr_allocator_mutex_get(apr_pool_allocator_get(probe));
  apr_pool_destroy(probe);
  if (!fork_holder.lock) {
    fprintf(stderr, "\n  not run: APR's allocator has no lock here\n");
    return;
  }
  static int registered;
  if (!registered++)
    CU_ASSERT_EQUAL(pthread_atfork(holder_prepare, NULL, holder_child), 0);
  pthread_t holder;
  fork_holder.quit = fork_holder.asked = fork_holder.held = 0;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&holder, NULL, holder_main, NULL), 0);
  fork_holder.armed = 1;
  pp_pool *pool = pool_in(PP_CONTEXT_FORK, 2, 0);
  fork_holder.armed = 0;
  CU_ASSERT_PTR_NOT_NULL(pool);
  for (size_t k = 0; pool && k < NCONTEXTS; k++) {
    int64_t ctx = (int64_t)all_contexts[k];
    pp_bytes arg = tu_i64(&ctx);
    pp_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "nested_map", &arg, 1, NULL, &r),
                          PP_OK);
    int64_t sum = 0;
    pp_status st = pp_result_get(r, 20.0);
    if (st == PP_OK)
      st = pp_result_i64(r, &sum);
    if (st != PP_OK)
      fprintf(stderr, "\n  a %s pool in a fork worker: %s\n",
              pp_context_name(all_contexts[k]),
              st == PP_ETIMEOUT ? "hung" : pp_result_error(r));
    CU_ASSERT_EQUAL(st, PP_OK);
    CU_ASSERT_EQUAL(sum, 285);
    pp_result_free(r);
  }
  pp_pool_destroy(pool);
  pthread_mutex_lock(&fork_holder.m);
  fork_holder.quit = 1;
  pthread_cond_broadcast(&fork_holder.c);
  pthread_mutex_unlock(&fork_holder.m);
  pthread_join(holder, NULL);
}
#endif

/* A task creates a pool of its own and maps over it, in every context
 * within every context: a spawned worker or the forkserver ran
 * pp_worker_main() too, so its copies become workers. */
static void test_nested_pools(void) {
  for (size_t i = 0; i < NCONTEXTS; i++) {
    pp_pool *pool = pool_in(all_contexts[i], 1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    for (size_t k = 0; k < NCONTEXTS; k++) {
      int64_t ctx = (int64_t)all_contexts[k];
      pp_bytes arg = tu_i64(&ctx);
      pp_value v = {0};
      pp_status st = pp_apply(pool, "nested_map", &arg, 1, &v);
      int64_t sum = 0;
      if (st == PP_OK)
        st = pp_value_i64(&v, &sum);
      if (st != PP_OK)
        fprintf(stderr, "\n  a %s pool in a %s worker: %s\n",
                pp_context_name(all_contexts[k]),
                pp_context_name(all_contexts[i]),
                v.error ? v.error : pp_strerror(st));
      CU_ASSERT_EQUAL(st, PP_OK);
      CU_ASSERT_EQUAL(sum, 285);
      pp_value_clear(&v);
    }
    CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
    CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
    pp_pool_destroy(pool);
  }
}

static void test_unknown_task_spawn(void) {
  pp_pool *pool = pool_in(PP_CONTEXT_SPAWN, 1, 0);
  if (!pool)
    return;
  int64_t before = -1, after = -2;
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "getpid", 0, &before), PP_OK);
  int64_t x = 3;
  pp_bytes arg = tu_i64(&x);
  pp_value v = {0};
  CU_ASSERT_EQUAL(pp_apply(pool, "no_such_task_here", &arg, 1, &v),
                  PP_EUNKNOWNTASK);
  CU_ASSERT(tu_contains(v.error, "no_such_task_here"));
  pp_value_clear(&v);
  CU_ASSERT_EQUAL(pp_apply(pool, "square", &arg, 1, &v), PP_OK);
  int64_t sq = 0;
  CU_ASSERT_EQUAL(pp_value_i64(&v, &sq), PP_OK);
  CU_ASSERT_EQUAL(sq, 9);
  pp_value_clear(&v);
  CU_ASSERT_EQUAL(tu_apply_i64(pool, "getpid", 0, &after), PP_OK);
  CU_ASSERT_EQUAL(before, after);
  pp_pool_destroy(pool);
}

/* ---- context selection ---- */

/* The marker a worker of a new pool from `o` sees, the parent's being
 * MARKER_CHANGED: that value when the worker is a fork of this process,
 * MARKER_INITIAL when it is a fresh program; -1 when it could not say. */
static int64_t marker_seen(const pp_options *o) {
  g_marker = MARKER_CHANGED;
  pp_pool *pool = NULL;
  int64_t seen = -1;
  CU_ASSERT_EQUAL(pp_pool_create(&pool, o), PP_OK);
  if (pool)
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "get_marker", 0, &seen), PP_OK);
  pp_pool_destroy(pool);
  g_marker = MARKER_INITIAL;
  return seen;
}

static void test_context_selection(void) {
  pp_context c;
  CU_ASSERT_EQUAL(pp_context_from_name("spwan", &c), PP_EINVAL);
  CU_ASSERT_EQUAL(pp_context_from_name("Spawn", &c), PP_EINVAL);

  const char *saved = getenv("PROCPOOL_START_METHOD");
  char keep[64] = "";
  if (saved)
    snprintf(keep, sizeof keep, "%s", saved);
  pp_options o;
  pp_options_init(&o);
  o.processes = 1;
  pp_pool *pool = NULL;
#ifdef _WIN32
  _putenv_s("PROCPOOL_START_METHOD", "bogus");
#else
  setenv("PROCPOOL_START_METHOD", "bogus", 1);
#endif
  /* The variable changes the default: a name it does not know is an
   * error, not a silent fallback... */
  CU_ASSERT_EQUAL(pp_pool_create(&pool, &o), PP_EINVAL);
  CU_ASSERT_PTR_NULL(pool);
  CU_ASSERT(tu_contains(pp_pool_create_error(),
                        "PROCPOOL_START_METHOD is \"bogus\", which names no "
                        "start context (fork, spawn or forkserver, in lower "
                        "case)"));
  /* ...and never overrides an explicit choice. */
  o.context = PP_CONTEXT_SPAWN;
  CU_ASSERT_EQUAL(pp_pool_create(&pool, &o), PP_OK);
  pp_pool_destroy(pool);
  pool = NULL;

#ifndef _WIN32
  /* The variable picks the default's context: a spawn worker does not see
   * the parent's change. */
  o.context = PP_CONTEXT_DEFAULT;
  const char *names[] = {"fork", "spawn", "forkserver"};
  for (size_t i = 0; i < 3; i++) {
    setenv("PROCPOOL_START_METHOD", names[i], 1);
    CU_ASSERT_EQUAL(marker_seen(&o), i == 0 ? MARKER_CHANGED : MARKER_INITIAL);
  }
  /* Without it, the platform's default: fork. */
  unsetenv("PROCPOOL_START_METHOD");
  CU_ASSERT_EQUAL(marker_seen(&o), MARKER_CHANGED);
  if (saved)
    setenv("PROCPOOL_START_METHOD", keep, 1);
#else
  /* Without it (or empty), the platform's default: spawn. */
  _putenv_s("PROCPOOL_START_METHOD", "");
  o.context = PP_CONTEXT_DEFAULT;
  CU_ASSERT_EQUAL(marker_seen(&o), MARKER_INITIAL);
  _putenv_s("PROCPOOL_START_METHOD", saved ? keep : "");
  o.context = PP_CONTEXT_FORK;
  CU_ASSERT_EQUAL(pp_pool_create(&pool, &o), PP_ENOTSUP);
  o.context = PP_CONTEXT_FORKSERVER;
  CU_ASSERT_EQUAL(pp_pool_create(&pool, &o), PP_ENOTSUP);
#endif
}

/* ---- the handshake, through a pool ---- */

/* Workers given a key other than the pool's are refused before any task:
 * the task never runs (its file is never made), and after a few refused
 * workers in a row the pool is broken with a message that says why. */
static void test_wrong_key_refused(void) {
  for (size_t i = 0; i < NCONTEXTS; i++) {
    char path[256];
    snprintf(path, sizeof path, "pp_tests_touch_%ld_%d", tu_self_pid(), (int)i);
    remove(path);
    pp__test.wrong_key = 1;
    pp_pool *pool = pool_in(all_contexts[i], 2, 0);
    pp__test.wrong_key = 0;
    if (!pool)
      continue;
    pp_bytes arg = {path, strlen(path)};
    pp_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_apply_async(pool, "touch", &arg, 1, NULL, &r),
                          PP_OK);
    CU_ASSERT_EQUAL(pp_result_get(r, 30.0), PP_EPROTOCOL);
    const char *msg = pp_result_error(r);
    if (!tu_contains(msg, "handshake"))
      fprintf(stderr, "\n  context %s: %s\n", pp_context_name(all_contexts[i]),
              msg ? msg : "(no message)");
    CU_ASSERT(tu_contains(msg, "failed the handshake"));
    CU_ASSERT(tu_contains(msg, "proof of the pool's key was wrong"));
    pp_result_free(r);
    pp_pool_destroy(pool);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NULL(f);
    if (f) {
      fclose(f);
      remove(path);
    }
  }
  /* The hook is off again: a new pool works. */
  pp_pool *pool = pool_in(PP_CONTEXT_DEFAULT, 1, 0);
  int64_t sq = 0;
  if (pool)
    CU_ASSERT_EQUAL(tu_apply_i64(pool, "square", 5, &sq), PP_OK);
  CU_ASSERT_EQUAL(sq, 25);
  pp_pool_destroy(pool);
}

/* Parent and worker of different protocol versions: a clear error, in
 * both directions. */
static void check_mismatch(pp_context ctx) {
  pp_pool *pool = pool_in(ctx, 1, 0);
  if (!pool)
    return;
  pp_value v = {0};
  int64_t x = 2;
  pp_bytes arg = tu_i64(&x);
  CU_ASSERT_EQUAL(pp_apply(pool, "square", &arg, 1, &v), PP_EPROTOCOL);
  if (!tu_contains(v.error, "protocol version mismatch"))
    fprintf(stderr, "\n  context %s: %s\n", pp_context_name(ctx),
            v.error ? v.error : "(no message)");
  CU_ASSERT(tu_contains(v.error, "protocol version mismatch"));
  pp_value_clear(&v);
  pp_pool_destroy(pool);
}

static void test_version_mismatch(void) {
  /* The parent speaks another version: the worker exits with its distinct
   * code, and the parent names the cause. */
  pp__test.challenge_version = PP__WIRE_VERSION + 1;
  for (size_t i = 0; i < NCONTEXTS; i++)
    check_mismatch(all_contexts[i]);
  pp__test.challenge_version = 0;
#ifndef _WIN32
  /* The worker speaks another version (a fork worker inherits the hook). */
  pp__test.proof_version = PP__WIRE_VERSION + 1;
  check_mismatch(PP_CONTEXT_FORK);
  pp__test.proof_version = 0;
#endif
}

#ifndef _WIN32
/* ---- workers started by hand ---- */

typedef struct by_hand {
  pid_t pid;
  int sock;   /* the parent's end of the worker's channel */
  int err_fd; /* the read end of the worker's stderr */
} by_hand;

/* Starts this test program with `option` and `key` (NULL: none) in its
 * environment, its channel on descriptor 3, its stderr on a pipe. */
static int launch(by_hand *h, const char *option, const char *key) {
  int sv[2], ep[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || pipe(ep) != 0)
    return 0;
  size_t n = 0;
  while (environ[n])
    n++;
  char **envp = calloc(n + 2, sizeof *envp);
  char keyvar[256];
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], PP__KEY_ENV "=", strlen(PP__KEY_ENV) + 1) != 0)
      envp[k++] = environ[i];
  if (key) {
    snprintf(keyvar, sizeof keyvar, "%s=%s", PP__KEY_ENV, key);
    envp[k++] = keyvar;
  }
  envp[k] = NULL;
  char *argv[] = {(char *)g_argv0, (char *)option, NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  /* Everything close-on-exec but what dup2 copies to 3 and 2 (the copy
   * loses the flag). */
  for (int i = 0; i < 2; i++) {
    fcntl(sv[i], F_SETFD, FD_CLOEXEC);
    fcntl(ep[i], F_SETFD, FD_CLOEXEC);
  }
  posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
  posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
  int rc = posix_spawn(&h->pid, self_exe(), &fa, NULL, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  free(envp);
  close(sv[1]);
  close(ep[1]);
  h->sock = sv[0];
  h->err_fd = ep[0];
  CU_ASSERT_EQUAL(rc, 0);
  return rc == 0;
}

/* Reads the worker's stderr until EOF (after it exited). */
static void read_stderr(by_hand *h, char *buf, size_t cap) {
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(h->err_fd, buf + n, cap - 1 - n)) > 0)
    n += (size_t)r;
  buf[n] = '\0';
}

/* Waits (bounded) for the process to end and returns its exit code, or -1;
 * with `err`, what it wrote to stderr. */
static int finish(by_hand *h, char *err, size_t cap) {
  int status = 0, code = -1;
  double until = tu_now() + TU_WAIT;
  pid_t r;
  while ((r = waitpid(h->pid, &status, WNOHANG)) == 0 && tu_now() < until)
    tu_sleep_ms(5);
  if (r == 0) {
    kill(h->pid, SIGKILL);
    waitpid(h->pid, &status, 0);
  } else if (r == h->pid && WIFEXITED(status)) {
    code = WEXITSTATUS(status);
  }
  if (err)
    read_stderr(h, err, cap);
  close(h->sock);
  close(h->err_fd);
  return code;
}

static void send_challenge(by_hand *h, const unsigned char *nonce,
                           unsigned version) {
  pp__buf b = {0};
  size_t at;
  CU_ASSERT_EQUAL(pp__frame_begin(&b, PP__F_CHALLENGE, 0, &at), PP_OK);
  CU_ASSERT_EQUAL(pp__buf_append(&b, nonce, PP__NONCE_SIZE), PP_OK);
  CU_ASSERT_EQUAL(pp__frame_end(&b, at), PP_OK);
  pp__buf_head(&b)[at + 4] = (unsigned char)version;
  CU_ASSERT_EQUAL(write(h->sock, pp__buf_head(&b), pp__buf_len(&b)),
                  (ssize_t)pp__buf_len(&b));
  pp__buf_free(&b);
}

/* Reads one whole frame from the worker (bounded); 1 when it came. */
static int read_frame(by_hand *h, pp__buf *in, pp__frame *f) {
  double until = tu_now() + TU_WAIT;
  for (;;) {
    int complete = 0;
    if (pp__frame_peek(in, 1024, f, &complete) != PP_OK)
      return 0;
    if (complete)
      return 1;
    struct pollfd p = {h->sock, POLLIN, 0};
    int left = (int)((until - tu_now()) * 1000);
    if (left <= 0 || poll(&p, 1, left) <= 0)
      return 0;
    if (pp__buf_reserve(in, 256) != PP_OK)
      return 0;
    /* Not pp__buf_tail(): after a reserve the buffer has memory, but GCC's
     * -O3 sees its NULL branch and refuses read() into it (-Wnonnull). */
    ssize_t n = read(h->sock, in->data + in->end, 256);
    if (n <= 0)
      return 0;
    pp__buf_commit(in, (size_t)n);
  }
}

#define THE_KEY                                                                \
  "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define WRONG_KEY                                                              \
  "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

/* The executable started in worker mode with a wrong key: the test plays
 * the parent with the core's handshake functions. The worker answers the
 * challenge for the key it has, which the parent's check refuses; the
 * worker then waits for a configuration that never comes, and exits
 * quietly at EOF, having run nothing. */
static void test_by_hand_wrong_key(void) {
  by_hand h;
  if (!launch(&h, "--procpool-worker=3", WRONG_KEY))
    return;
  unsigned char nonce[PP__NONCE_SIZE];
  CU_ASSERT_EQUAL(pp__random_bytes(nonce, sizeof nonce), PP_OK);
  send_challenge(&h, nonce, PP__WIRE_VERSION);
  pp__buf in = {0};
  pp__frame f;
  CU_ASSERT_FATAL(read_frame(&h, &in, &f));
  CU_ASSERT_EQUAL(f.type, PP__F_PROOF);
  CU_ASSERT_EQUAL(f.len, PP__SHA256_SIZE);
  CU_ASSERT(!pp__handshake_check(THE_KEY, nonce, f.payload, f.len));
  /* It did answer, for the key it was given: */
  CU_ASSERT(pp__handshake_check(WRONG_KEY, nonce, f.payload, f.len));
  pp__buf_free(&in);
  shutdown(h.sock, SHUT_RDWR);
  CU_ASSERT_EQUAL(finish(&h, NULL, 0), 0);

  /* No key at all: the same, a proof nobody accepts. */
  if (!launch(&h, "--procpool-worker=3", NULL))
    return;
  send_challenge(&h, nonce, PP__WIRE_VERSION);
  CU_ASSERT_FATAL(read_frame(&h, &in, &f));
  CU_ASSERT(!pp__handshake_check(THE_KEY, nonce, f.payload, f.len));
  pp__buf_free(&in);
  shutdown(h.sock, SHUT_RDWR);
  CU_ASSERT_EQUAL(finish(&h, NULL, 0), 0);
}

/* The right key is accepted; a challenge of another protocol version
 * makes the worker exit with its distinct code. */
static void test_by_hand_handshake(void) {
  by_hand h;
  if (!launch(&h, "--procpool-worker=3", THE_KEY))
    return;
  unsigned char nonce[PP__NONCE_SIZE];
  CU_ASSERT_EQUAL(pp__random_bytes(nonce, sizeof nonce), PP_OK);
  send_challenge(&h, nonce, PP__WIRE_VERSION);
  pp__buf in = {0};
  pp__frame f;
  CU_ASSERT_FATAL(read_frame(&h, &in, &f));
  CU_ASSERT(pp__handshake_check(THE_KEY, nonce, f.payload, f.len));
  pp__buf_free(&in);
  shutdown(h.sock, SHUT_RDWR);
  CU_ASSERT_EQUAL(finish(&h, NULL, 0), 0);

  if (!launch(&h, "--procpool-worker=3", THE_KEY))
    return;
  send_challenge(&h, nonce, PP__WIRE_VERSION + 1);
  CU_ASSERT_EQUAL(finish(&h, NULL, 0), PP__EXIT_VERSION);
}

#if SIZE_MAX <= UINT32_MAX
/* Sends the frame of `type` with the payload in `payload`. */
static void send_frame(by_hand *h, pp__frame_type type,
                       const pp__buf *payload) {
  pp__buf b = {0};
  size_t at;
  CU_ASSERT_EQUAL(pp__frame_begin(&b, type, 0, &at), PP_OK);
  CU_ASSERT_EQUAL(
      pp__buf_append(&b, pp__buf_head(payload), pp__buf_len(payload)), PP_OK);
  CU_ASSERT_EQUAL(pp__frame_end(&b, at), PP_OK);
  CU_ASSERT_EQUAL(write(h->sock, pp__buf_head(&b), pp__buf_len(&b)),
                  (ssize_t)pp__buf_len(&b));
  pp__buf_free(&b);
}
#endif

/* A RECORDS frame whose results this process could not address (16
 * results of 512 MiB: 8 GiB, where its 16 records of a byte are the
 * frame's own bytes) is malformed: the worker exits with its protocol
 * code, having run nothing. Where size_t is 32 bits, 16 * 512 MiB wrapped
 * to 0 and the results overran the answer's buffer (the worker crashed);
 * where it is 64 bits no product of the frame's 32-bit sizes wraps, and
 * the worker would really look for 8 GiB: this is for 32-bit builds
 * (scripts/ci-i386.sh), and only there is it in the suite. */
#if SIZE_MAX <= UINT32_MAX
#define PP_TEST_32_BIT 1
static void test_by_hand_records_out_of_reach(void) {
  by_hand h;
  if (!launch(&h, "--procpool-worker=3", THE_KEY))
    return;
  unsigned char nonce[PP__NONCE_SIZE];
  CU_ASSERT_EQUAL(pp__random_bytes(nonce, sizeof nonce), PP_OK);
  send_challenge(&h, nonce, PP__WIRE_VERSION);
  pp__buf in = {0}, p = {0};
  pp__frame f;
  CU_ASSERT_FATAL(read_frame(&h, &in, &f));
  CU_ASSERT(pp__handshake_check(THE_KEY, nonce, f.payload, f.len));
  pp__buf_consume(&in, PP__WIRE_HEADER_SIZE + f.len);
  /* CONFIG: no initializer, no memory limit, no probe, 1 GiB frames. */
  CU_ASSERT_EQUAL(pp__put_str16(&p, ""), PP_OK);
  CU_ASSERT_EQUAL(pp__put_args(&p, NULL, 0), PP_OK);
  for (int i = 0; i < 8; i++)
    CU_ASSERT_EQUAL(pp__put_u32(&p, 0), PP_OK);
  CU_ASSERT_EQUAL(pp__put_u32(&p, 1u << 30), PP_OK);
  CU_ASSERT_EQUAL(pp__put_u32(&p, 0), PP_OK);
  send_frame(&h, PP__F_CONFIG, &p);
  CU_ASSERT_FATAL(read_frame(&h, &in, &f));
  CU_ASSERT_EQUAL(f.type, PP__F_READY);
  /* RECORDS: "square", 16 records of 1 byte into results of 512 MiB, no
   * fields, from index 0, then the records. */
  pp__buf_clear(&p);
  CU_ASSERT_EQUAL(pp__put_str16(&p, "square"), PP_OK);
  const uint32_t head[] = {16, 1, 1u << 29, 0, 0, 0};
  for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
    CU_ASSERT_EQUAL(pp__put_u32(&p, head[i]), PP_OK);
  CU_ASSERT_EQUAL(pp__buf_append(&p, "0123456789abcdef", 16), PP_OK);
  send_frame(&h, PP__F_RECORDS, &p);
  pp__buf_free(&in);
  pp__buf_free(&p);
  char err[1024];
  int code = finish(&h, err, sizeof err);
  if (code != PP__EXIT_PROTOCOL)
    fprintf(stderr, "\n  exit %d: %s\n", code, err);
  CU_ASSERT_EQUAL(code, PP__EXIT_PROTOCOL);
}
#endif

/* A program that creates a spawn or forkserver pool without having called
 * pp_worker_main() is refused with PP_ESTATE (tests/main.c runs
 * contexts_without_hook_main() for this option, before the hook). */
static void test_without_hook(void) {
  by_hand h;
  if (!launch(&h, CONTEXTS_WITHOUT_HOOK_ARG, NULL))
    return;
  char err[1024];
  int code = finish(&h, err, sizeof err);
  if (code != 0)
    fprintf(stderr, "\n  exit %d: %s\n", code, err);
  CU_ASSERT_EQUAL(code, 0);
}

/* The worker options with no usable descriptor: a message on stderr that
 * names the option, and a non-zero exit code. */
static void test_by_hand_bad_descriptor(void) {
  static const char *const options[] = {
      "--procpool-worker=57", "--procpool-worker=abc", "--procpool-worker=1",
      "--procpool-worker=", "--procpool-forkserver=3"};
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
    by_hand h;
    if (!launch(&h, options[i], THE_KEY))
      continue;
    char err[1024];
    int code = finish(&h, err, sizeof err);
    CU_ASSERT(code > 0);
    if (!tu_contains(err, options[i]))
      fprintf(stderr, "\n  %s: exit %d, stderr: %s\n", options[i], code, err);
    CU_ASSERT(tu_contains(err, options[i]));
    CU_ASSERT(tu_contains(err, "procpool"));
  }
}
#endif

#ifndef _WIN32
/* An apply on a pool whose workers cannot serve it fails with `want`
 * within `limit` seconds, and its message says both phrases. */
static void apply_fails_within(pp_pool *pool, double limit, pp_status want,
                               const char *says, const char *also) {
  pp_value v = {0};
  int64_t x = 2;
  pp_bytes arg = tu_i64(&x);
  double t0 = tu_now();
  CU_ASSERT_EQUAL(pp_apply(pool, "square", &arg, 1, &v), want);
  CU_ASSERT(tu_now() - t0 < limit);
  if (!tu_contains(v.error, says) || !tu_contains(v.error, also))
    fprintf(stderr, "\n  the apply said: %s\n", v.error ? v.error : "");
  CU_ASSERT(tu_contains(v.error, says));
  CU_ASSERT(tu_contains(v.error, also));
  pp_value_clear(&v);
}

/* A worker that never answers the challenge holds no slot for ever: it is
 * stopped when the handshake's time is up, and after a few in a row the
 * pool says that workers failed the handshake. (Fork only: the worker must
 * see the hook.) */
static void test_silent_worker(void) {
  pp__test.mute_proof = 1;
  pp__test.handshake_limit_ms = 50;
  pp_pool *pool = pool_in(PP_CONTEXT_FORK, 1, 0);
  pp__test.mute_proof = 0;
  if (pool) {
    apply_fails_within(pool, TU_WAIT, PP_EPROTOCOL, "failed the handshake",
                       "did not answer the challenge in time");
    pp_pool_destroy(pool);
  }
  pp__test.handshake_limit_ms = 0;
}

/* Workers that keep dying before they are ready (no initializer to blame):
 * the pool replaces a few, then stops, and the call waiting for a worker
 * fails with the last one's end instead of waiting for ever while the pool
 * starts worker after worker. (Fork only: the workers must see the hook.) */
static void test_workers_keep_dying_unready(void) {
  pp__test.unready_exit = 7;
  pp_pool *pool = pool_in(PP_CONTEXT_FORK, 2, 0);
  if (pool) {
    apply_fails_within(pool, TU_WAIT, PP_EWORKERDIED,
                       "keep dying before they are ready", "code 7");
    /* The pool is broken for good: the next call fails at once. */
    apply_fails_within(pool, 1.0, PP_EWORKERDIED,
                       "keep dying before they are ready", "code 7");
    CU_ASSERT_EQUAL(pp_pool_close(pool), PP_OK);
    CU_ASSERT_EQUAL(pp_pool_join(pool), PP_OK);
    pp_pool_destroy(pool);
  }
  pp__test.unready_exit = 0;
}
#endif

int pp_test_suite_contexts(void) {
  static const tu_test tests[] = {
    {"SHA-256: FIPS 180-2 vectors", test_sha256_vectors},
    {"HMAC-SHA256: RFC 4231 vectors", test_hmac_vectors},
    {"handshake proof and constant-time check", test_handshake_check},
    {"a frame of another version is told from garbage", test_foreign_version},
    {"global changed before creation: fork sees it, spawn does not",
     test_global_variable},
    {"the key is not left in a worker's environment",
     test_key_not_in_environment},
#ifndef _WIN32
    {"a worker holds only 0, 1, 2 and its channel", test_descriptors},
    {"standard streams closed: the pools take none of their numbers, a "
     "task's output goes to /dev/null",
     test_standard_streams_closed},
    {"a worker's standard input is /dev/null: EOF, the program's input "
     "not held",
     test_stdin_is_null},
#else
    {"a worker's standard input is NUL, not the program's input",
     test_stdin_is_nul},
#endif
#if defined(__linux__) || defined(__APPLE__) || defined(_WIN32)
    {"pp_worker_main(0, NULL) finds main()'s arguments: spawn pools work",
     test_hook_without_argv},
#endif
#ifdef __linux__
    {"a program started through its dynamic loader: spawn pools work",
     test_through_loader},
#endif
    {"a worker runs where the pool was made, replacements too",
     test_worker_directory},
    {"a worker has the environment of the pool's creation, replacements "
     "too",
     test_worker_environment},
    {"maxtasksperchild = 1 replaces workers in every context",
     test_maxtasksperchild},
    {"a task's own pool, in every context within every context",
     test_nested_pools},
#ifndef _WIN32
    {"a fork worker made while another thread held APR's lock makes pools",
     test_nested_pool_after_fork_with_lock_held},
#endif
    {"unknown task under spawn: named error, worker lives on",
     test_unknown_task_spawn},
    {"context selection: names, PROCPOOL_START_METHOD, explicit wins",
     test_context_selection},
    {"workers with a wrong key are refused before any task",
     test_wrong_key_refused},
    {"protocol version mismatch, both directions", test_version_mismatch},
#ifndef _WIN32
    {"by hand: a wrong key's proof is refused", test_by_hand_wrong_key},
    {"by hand: right key accepted, other version exits",
     test_by_hand_handshake},
    {"by hand: worker option without a channel", test_by_hand_bad_descriptor},
#ifdef PP_TEST_32_BIT
    {"by hand: records whose results are out of reach: protocol error",
     test_by_hand_records_out_of_reach},
#endif
    {"spawn and forkserver refused before pp_worker_main()", test_without_hook},
    {"a worker silent in the handshake is stopped", test_silent_worker},
    {"workers that keep dying before they are ready break the pool",
     test_workers_keep_dying_unready},
#endif
  };
  return tu_add_suite("contexts", tests, TU_NTESTS(tests));
}
