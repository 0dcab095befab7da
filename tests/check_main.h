/* check_main.h: how every Check test program runs. A program lists its tests
 * in a table and hands it to check_main(), which builds the one suite and
 * its case (and a case of its own for each test with its own timeout), runs
 * them and returns main's exit status (1 when any test failed). */
#ifndef WEFT_TESTS_CHECK_MAIN_H
#define WEFT_TESTS_CHECK_MAIN_H

#include <check.h>

typedef struct {
    const TTest *test;
    int loops;   /* > 0: a loop test over _i in [0, loops) */
    int timeout; /* > 0: seconds for this test alone, in a case of its own */
} check_test_t;

#define CHECK_TEST(t)        ((check_test_t){.test = (t)})
#define CHECK_LOOP(t, n)     ((check_test_t){.test = (t), .loops = (n)})
#define CHECK_TIMED(t, secs) ((check_test_t){.test = (t), .timeout = (secs)})

typedef struct {
    const char *suite, *tcase; /* tcase NULL: named as the suite */
    int timeout;               /* seconds; 0: Check's default (CK_DEFAULT_TIMEOUT) */
    int nofork;                /* run in this process (state shared between tests) */
    SFun setup, teardown;      /* a checked fixture (around each test), or NULL */
} check_opts_t;

static inline int check_main(check_opts_t o, const check_test_t *tests, int ntests)
{
    Suite *s = suite_create(o.suite);
    TCase *tc = tcase_create(o.tcase ? o.tcase : o.suite);
    if (o.timeout > 0) tcase_set_timeout(tc, o.timeout);
    if (o.setup || o.teardown) tcase_add_checked_fixture(tc, o.setup, o.teardown);
    suite_add_tcase(s, tc); /* runs first; the timed tests' own cases after it */
    for (int i = 0; i < ntests; i++) {
        TCase *into = tc;
        if (tests[i].timeout > 0) {
            into = tcase_create(tests[i].test->name);
            tcase_set_timeout(into, tests[i].timeout);
            if (o.setup || o.teardown) tcase_add_checked_fixture(into, o.setup, o.teardown);
            suite_add_tcase(s, into);
        }
        if (tests[i].loops > 0)
            tcase_add_loop_test(into, tests[i].test, 0, tests[i].loops);
        else
            tcase_add_test(into, tests[i].test);
    }
    SRunner *sr = srunner_create(s);
    if (o.nofork) srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

#define CHECK_NTESTS(a) ((int)(sizeof(a) / sizeof((a)[0])))

#endif
