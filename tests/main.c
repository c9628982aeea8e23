/* pp_tests: the procpool CUnit suites.
 *
 * Usage: pp_tests [--suite NAME] (without: every suite but the clock
 * suite, which runs under faketime)
 * The start context comes from PROCPOOL_START_METHOD (read by the library).
 * Under the spawn context this executable is re-executed as a worker, so
 * tasks are registered and pp_worker_main() is called before anything else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include "procpool.h"
#include "suites.h"
#include "tasks.h"
#include "util.h"

static const struct {
  const char *name;
  int (*add)(void);
  int named_only; /* run only by --suite NAME: it needs a setting of its own */
} suites[] = {
#ifndef _WIN32
    {"backend", pp_test_suite_backend, 0},
#else
    {"win32", pp_test_suite_win32, 0},
#endif
    {"core", pp_test_suite_core, 0},
    {"results", pp_test_suite_results, 0},
    {"map", pp_test_suite_map, 0},
    {"imap", pp_test_suite_imap, 0},
    {"lifecycle", pp_test_suite_lifecycle, 0},
    {"options", pp_test_suite_options, 0},
    {"errors", pp_test_suite_errors, 0},
    {"reliability", pp_test_suite_reliability, 0},
    {"contexts", pp_test_suite_contexts, 0},
    {"lanes", pp_test_suite_lanes, 0},
    {"records_task", pp_test_suite_records_task, 0},
    {"in_place", pp_test_suite_in_place, 0},
    {"rings", pp_test_suite_rings, 0},
#ifndef _WIN32
    {"clock", pp_test_suite_clock, 1}, /* under faketime: CMakeLists.txt */
#endif
};

#define NSUITES (sizeof suites / sizeof suites[0])

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s [--suite NAME]\nsuites:", argv0);
  for (size_t i = 0; i < NSUITES; i++) {
    fprintf(stderr, " %s", suites[i].name);
  }
  fprintf(stderr, "\n");
}

int main(int argc, char **argv) {
  pp_status st = tasks_register();
  if (st == PP_OK)
    st = reliability_tasks_register();
  if (st == PP_OK)
    st = lanes_tasks_register();
  if (st == PP_OK)
    st = rings_tasks_register();
  if (st == PP_OK)
    st = records_task_tasks_register();
#ifdef _WIN32
  if (st == PP_OK)
    st = win32_tasks_register();
#endif
  if (st == PP_OK)
    st = contexts_tasks_register(argc, argv);
#ifndef _WIN32
  if (st == PP_OK)
    st = clock_tasks_register();
#endif
  if (st != PP_OK) {
    fprintf(stderr, "pp_tests: registering tasks: %s\n", pp_strerror(st));
    return 1;
  }
  if (argc == 2 && strcmp(argv[1], CONTEXTS_WITHOUT_HOOK_ARG) == 0) {
    return contexts_without_hook_main();
  }
  /* In a worker process this runs the worker loop and never returns. */
  int wm = getenv(HOOK_WITHOUT_ARGV_ENV) ? pp_worker_main(0, NULL)
                                         : pp_worker_main(argc, argv);
  if (wm != 0) {
    return wm;
  }
  if (argc == 2 && (strcmp(argv[1], HOOK_WITHOUT_ARGV_ARG) == 0 ||
                    strcmp(argv[1], THROUGH_LOADER_ARG) == 0)) {
    return contexts_respawn_main();
  }
#ifdef _WIN32
  /* The pool owner the "win32" suite kills (Windows has no fork). */
  if (argc == 2 && strcmp(argv[1], WIN32_OWNER_ARG) == 0) {
    return win32_owner_main();
  }
#endif

  tu_watchdog_start();
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--suite") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else if (strncmp(argv[i], "--suite=", 8) == 0) {
      only = argv[i] + 8;
    } else {
      usage(argv[0]);
      return 2;
    }
  }

  if (CU_initialize_registry() != CUE_SUCCESS) {
    fprintf(stderr, "pp_tests: %s\n", CU_get_error_msg());
    return 1;
  }
  int found = 0;
  int add_failed = 0;
  for (size_t i = 0; i < NSUITES; i++) {
    if (only != NULL ? strcmp(only, suites[i].name) != 0
                     : suites[i].named_only) {
      continue;
    }
    found = 1;
    if (suites[i].add() != 0) {
      fprintf(stderr, "pp_tests: adding suite %s failed: %s\n", suites[i].name,
              CU_get_error_msg());
      add_failed = 1;
    }
  }
  if (!found) {
    fprintf(stderr, "pp_tests: no suite named \"%s\"\n", only);
    usage(argv[0]);
    CU_cleanup_registry();
    return 2;
  }
  if (add_failed) {
    CU_cleanup_registry();
    return 1;
  }

  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_ErrorCode run = CU_basic_run_tests();
  unsigned failures = CU_get_number_of_failures();
  unsigned tests_failed = CU_get_number_of_tests_failed();
  unsigned suites_failed = CU_get_number_of_suites_failed();
  CU_ErrorCode err = CU_get_error();
  CU_cleanup_registry();

  if (run != CUE_SUCCESS || err != CUE_SUCCESS) {
    fprintf(stderr, "pp_tests: CUnit error: %d\n",
            (int)(run != CUE_SUCCESS ? run : err));
    return 1;
  }
  return (failures != 0 || tests_failed != 0 || suites_failed != 0) ? 1 : 0;
}
