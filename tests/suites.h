/* The CUnit suites of pp_tests. Each adds one suite to the registry and
   returns 0 on success. */
#ifndef PP_TEST_SUITES_H
#define PP_TEST_SUITES_H

int pp_test_suite_backend(void);
int pp_test_suite_core(void);
int pp_test_suite_results(void);
int pp_test_suite_map(void);
int pp_test_suite_imap(void);
int pp_test_suite_lifecycle(void);
int pp_test_suite_options(void);
int pp_test_suite_errors(void);
int pp_test_suite_reliability(void);
int pp_test_suite_contexts(void);
int pp_test_suite_lanes(void);
int pp_test_suite_records_task(void);
int pp_test_suite_in_place(void);
int pp_test_suite_rings(void);
#ifndef _WIN32
/* Run under faketime (CMakeLists.txt): the library's deadlines keep to
   the steady clock. */
int pp_test_suite_clock(void);
#endif

/* Tasks of the reliability suite (registered by main before the worker
   hook, like every task). */
#include "procpool.h"
pp_status reliability_tasks_register(void);
/* Tasks of the records_task suite. */
pp_status records_task_tasks_register(void);
/* Tasks of the lanes suite. */
pp_status lanes_tasks_register(void);
/* Tasks of the rings suite. */
pp_status rings_tasks_register(void);
#ifndef _WIN32
/* Tasks of the clock suite. */
pp_status clock_tasks_register(void);
#endif
/* Tasks of the contexts suite; argc and argv are main's, with which that
   suite starts this program by hand. */
pp_status contexts_tasks_register(int argc, char **argv);
/* Run by main() instead of the suites, before pp_worker_main(), when argv[1]
   is CONTEXTS_WITHOUT_HOOK_ARG: checks that pools which re-launch the program
   are refused there; 0 when they are. */
#define CONTEXTS_WITHOUT_HOOK_ARG "--contexts-without-hook"
int contexts_without_hook_main(void);
/* With HOOK_WITHOUT_ARGV_ENV in its environment, main() calls
   pp_worker_main(0, NULL) instead of passing its arguments, in this process
   and in the workers it starts; with HOOK_WITHOUT_ARGV_ARG as argv[1] it
   then runs contexts_respawn_main() instead of the suites: spawn (and
   forkserver) pools work; 0 when they do. THROUGH_LOADER_ARG runs it too,
   in a program started through its dynamic loader by hand. */
#define HOOK_WITHOUT_ARGV_ENV "PP_TEST_HOOK_WITHOUT_ARGV"
#define HOOK_WITHOUT_ARGV_ARG "--hook-without-argv"
#define THROUGH_LOADER_ARG "--through-loader"
int contexts_respawn_main(void);

#ifdef _WIN32
/* The Windows backend's suite (test_win32.c), its tasks, and the pool owner
   it starts as a separate process and kills: `pp_tests WIN32_OWNER_ARG`. */
int pp_test_suite_win32(void);
pp_status win32_tasks_register(void);
#define WIN32_OWNER_ARG "--win32-pool-owner"
int win32_owner_main(void);
#endif

#endif /* PP_TEST_SUITES_H */
