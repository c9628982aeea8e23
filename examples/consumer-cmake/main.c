/* A program that uses an installed procpool: it squares 10 in a worker
 * process and checks the answer. Exits 0 when it got 100, 1 otherwise.
 * Built by CMakeLists.txt, with find_package(procpool), and by
 * ../consumer-pkgconfig/Makefile, with pkg-config. */
#include <procpool.h>

#include <stdio.h>
#include <string.h>

/* procpool's package must leave this program's own compile flags alone:
 * APR's -D_GNU_SOURCE or -DLINUX reaching here would change what the
 * system headers declare to it. */
#if defined(_GNU_SOURCE) || defined(LINUX)
#error "procpool's package passed APR's compile flags on to its consumer"
#endif

static pp_status square(pp_call *call) {
  int64_t x;
  if (pp_call_arg_i64(call, 0, &x) != PP_OK)
    return pp_call_fail(call, "square: expected one int64_t argument");
  return pp_call_return_i64(call, x * x);
}

int main(int argc, char **argv) {
  pp_register("square", square);
  pp_worker_main(argc, argv); /* in a worker: runs tasks, never returns */

  char header_version[32];
  snprintf(header_version, sizeof header_version, "%d.%d.%d", PP_VERSION_MAJOR,
           PP_VERSION_MINOR, PP_VERSION_PATCH);
  printf("procpool %s (header %s)\n", pp_version(), header_version);
  if (strcmp(pp_version(), header_version) != 0) {
    fprintf(stderr, "the library's version is not the header's\n");
    return 1;
  }

  pp_options opts;
  pp_options_init(&opts);
  opts.processes = 2;
  pp_pool *pool;
  pp_status st = pp_pool_create(&pool, &opts);
  if (st != PP_OK) {
    fprintf(stderr, "%s\n", pp_last_error()); /* names the call */
    return 1;
  }

  int64_t x = 10, y = 0;
  pp_bytes arg = {&x, sizeof x};
  pp_value v;
  st = pp_apply(pool, "square", &arg, 1, &v);
  if (st == PP_OK)
    st = pp_value_i64(&v, &y);
  else
    fprintf(stderr, "pp_apply: %s\n", v.error ? v.error : pp_strerror(st));
  pp_value_clear(&v);

  pp_pool_close(pool);
  pp_pool_join(pool);
  pp_pool_destroy(pool);

  printf("10 * 10 = %lld\n", (long long)y);
  return st == PP_OK && y == 100 ? 0 : 1;
}
