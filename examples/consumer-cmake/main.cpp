// The same check as main.c, from C++: procpool.h is a C header that C++
// programs include as it is (its declarations are extern "C"). The pool is
// held by a std::unique_ptr whose deleter is pp_pool_destroy(), the end of
// Python's `with Pool() as pool:` block, so that every way out of main()
// gives the workers back. Exits 0 when the squares came back right, 1
// otherwise. Built by CMakeLists.txt.
#include <procpool.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

// The header's macros, under the strict C++ warnings CMakeLists.txt sets.
static_assert(PP_NO_SHARED_MEMORY == static_cast<std::size_t>(-1),
              "PP_NO_SHARED_MEMORY asks for no shared memory");

namespace {

pp_status square(pp_call *call) {
  std::int64_t x = 0;
  if (pp_call_arg_i64(call, 0, &x) != PP_OK)
    return pp_call_fail(call, "square: expected one int64_t argument");
  return pp_call_return_i64(call, x * x);
}

struct pool_deleter {
  void operator()(pp_pool *pool) const { pp_pool_destroy(pool); }
};
using pool_ptr = std::unique_ptr<pp_pool, pool_deleter>;

// The imap's input: 0, 1, 2, ... up to `end`, one item per call.
struct counter {
  std::int64_t next, end, current;
};

pp_status counter_next(void *state, pp_bytes *item) {
  counter *c = static_cast<counter *>(state);
  if (c->next == c->end)
    return PP_EOF;
  c->current = c->next++;
  item->data = &c->current;
  item->len = sizeof c->current;
  return PP_OK;
}

} // namespace

int main(int argc, char **argv) {
  pp_register("square", square);
  pp_worker_main(argc, argv); // in a worker: runs tasks, never returns

  pp_options opts;
  pp_options_init(&opts);
  opts.processes = 2;
  pp_pool *raw = nullptr;
  pp_status st = pp_pool_create(&raw, &opts);
  if (st != PP_OK) {
    std::fprintf(stderr, "%s\n", pp_last_error()); // names the call
    return 1;
  }
  pool_ptr pool(raw);

  // apply: one call, its value.
  std::int64_t x = 12, y = 0;
  pp_bytes arg = {&x, sizeof x};
  pp_value v = pp_value();
  st = pp_apply(pool.get(), "square", &arg, 1, &v);
  if (st == PP_OK)
    st = pp_value_i64(&v, &y);
  pp_value_clear(&v);
  if (st != PP_OK || y != 144) {
    std::fprintf(stderr, "pp_apply: %s, %lld\n", pp_strerror(st),
                 static_cast<long long>(y));
    return 1;
  }

  // imap: 1,000 squares in input order, in chunks of 100.
  counter input = {0, 1000, 0};
  pp_iter *it = nullptr;
  st = pp_imap(pool.get(), "square", counter_next, &input, 100, &it);
  if (st != PP_OK) {
    std::fprintf(stderr, "%s\n", pp_last_error());
    return 1;
  }
  std::vector<std::int64_t> squares;
  while ((st = pp_iter_next(it, -1, &v)) == PP_OK) {
    std::int64_t s = -1;
    if (v.status == PP_OK && pp_value_i64(&v, &s) == PP_OK)
      squares.push_back(s);
    pp_value_clear(&v);
  }
  pp_iter_free(it);
  bool right = st == PP_EOF && squares.size() == 1000;
  for (std::size_t i = 0; right && i < squares.size(); i++)
    right = squares[i] == static_cast<std::int64_t>(i * i);

  pp_pool_close(pool.get());
  pp_pool_join(pool.get());
  std::printf("C++: 12 * 12 = %lld; imap of 1000 squares %s\n",
              static_cast<long long>(y), right ? "in order" : "WRONG");
  return right ? 0 : 1;
}
