/* Coverage builds (PP_COVERAGE, scripts/coverage.sh). A process of the
 * pool's that ends with _exit() (a worker, a launcher) would never write
 * its gcov counts, which exit() writes: it writes them first. A process
 * forked from another starts its counts at zero, so that what its parent
 * ran before the fork is not written twice. And a worker writes them
 * each time it is about to wait for work (pp__coverage_idle_ms(): after 0
 * ms of waiting), as most end killed, by pp_pool_terminate(), and a killed
 * process writes nothing; that costs the suite about 5% more time. Nothing
 * in other builds. */
#ifndef PP_POSIX_COVERAGE_H
#define PP_POSIX_COVERAGE_H

#ifdef PP_COVERAGE
/* libgcov's (GCC 11 and later; Clang's profile runtime has them too). */
void __gcov_dump(void);
void __gcov_reset(void);
#define pp__coverage_forked() __gcov_reset()
#define pp__coverage_exit() __gcov_dump()
/* Written counts are added to the files: zeroed once written, as a second
 * dump without a reset writes nothing. */
#define pp__coverage_flush() (__gcov_dump(), __gcov_reset())
#define pp__coverage_idle_ms() 0
#else
#define pp__coverage_forked() ((void)0)
#define pp__coverage_exit() ((void)0)
#define pp__coverage_flush() ((void)0)
#define pp__coverage_idle_ms() (-1)
#endif

#endif
