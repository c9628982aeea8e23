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

#endif /* PP_TEST_SUITES_H */
