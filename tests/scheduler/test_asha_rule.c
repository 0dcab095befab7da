/* test_asha_rule.c: the ASHA rule (scheduler/asha.h): rungs, and who goes on
 * at a rung as trials arrive one by one. */
#include "scheduler/asha.h"
#include "tests/check_main.h"

#include <check.h>
#include <math.h>

START_TEST(test_rungs)
{
    /* min_steps 50, eta 3, 450 steps: rungs at 50, 150, 450 */
    ck_assert_int_eq(asha_rung(50, 50, 3, 450), 0);
    ck_assert_int_eq(asha_rung(150, 50, 3, 450), 1);
    ck_assert_int_eq(asha_rung(450, 50, 3, 450), 2);
    ck_assert_int_eq(asha_rung(100, 50, 3, 450), -1);
    ck_assert_int_eq(asha_rung(1350, 50, 3, 450), -1); /* past the steps */
    ck_assert_int_eq(asha_rung(49, 50, 3, 450), -1);
    ck_assert_int_eq(asha_rung(50, 50, 1, 450), -1); /* eta < 2: no rungs */
}
END_TEST

START_TEST(test_asynchronous_top_third)
{
    /* arrivals at one rung, eta 3: the first always goes on; a later one
     * only while it ranks within ceil(n/3) of the n seen so far */
    double seen[9];
    const double arrive[9] = {2.0, 2.5, 1.5, 1.8, 1.6, 1.4, 3.0, 1.45, 1.3};
    const int want[9] = {1, 0, 1, 1, 1, 1, 0, 1, 1};
    for (int i = 0; i < 9; i++) {
        seen[i] = arrive[i];
        ck_assert_msg(asha_continues(seen, (size_t)i + 1, arrive[i], 3) == want[i], "arrival %d",
                      i);
    }
    /* ties go on together; NaN stops */
    double tie[3] = {1.0, 1.0, 1.0};
    ck_assert_int_eq(asha_continues(tie, 3, 1.0, 3), 1);
    double nan_[2] = {1.0, NAN};
    ck_assert_int_eq(asha_continues(nan_, 2, NAN, 3), 0);
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(test_rungs), CHECK_TEST(test_asynchronous_top_third)};
    int failed =
        check_main((check_opts_t){.suite = "asha", .tcase = "rule"}, tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
