/* test_early_stop.c: sweep.early_stop (ASHA) and resources.pack_size in job
 * specs: parsing, canonical write-back, each trial's rungs, and one clear
 * line (file:line: setting) for each bad input. */
#include "common/log.h"
#include "jobs/spec.h"
#include "tests/check_main.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD                                                                                       \
    "mode = \"lora\";\nmodel = \"m.h5\";\ntenants = ( { name = \"a\"; data = \"a.h5\"; } );\n"     \
    "train = { steps = 450; };\n"

static spec_t *parse(const char *text, char *first, size_t n)
{
    spec_diag_t *d = spec_diag_new();
    spec_t *s = spec_parse(text, strlen(text), "/base", "t.cfg", NULL, d);
    if (first) snprintf(first, n, "%s", spec_diag_count(d) ? spec_diag_get(d, 0) : "");
    spec_diag_destroy(&d);
    return s;
}

START_TEST(test_asha_units_get_rungs)
{
    const char *text = HEAD "resources = { pack_size = 9; };\n"
                            "sweep = { train = { lr = [1e-4, 3e-4, 1e-3]; };\n"
                            "  early_stop = { policy = \"asha\"; eta = 3; min_steps = 50; "
                            "metric = \"val_loss\"; }; };\n";
    spec_t *s = parse(text, NULL, 0);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->sweep.es_eta, 3);
    ck_assert_int_eq(s->sweep.es_min_steps, 50);
    ck_assert_int_eq(s->resources.pack_size, 9);
    char *w = spec_write(s);
    spec_t *back = spec_parse(w, strlen(w), "/base", "w.cfg", NULL, NULL);
    ck_assert_ptr_nonnull(back);
    ck_assert(spec_equal(s, back));
    free(w);
    spec_destroy(&back);
    spec_unit_t *u;
    int n;
    ck_assert_int_eq(spec_expand(s, NULL, &u, &n, NULL), 0);
    ck_assert_int_eq(n, 3);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(u[i].spec->tenants[0].train.rung_steps, 50);
        ck_assert_int_eq(u[i].spec->tenants[0].train.rung_eta, 3);
        /* the unit's text carries them to the worker */
        char *ut = spec_write(u[i].spec);
        spec_t *us = spec_parse(ut, strlen(ut), "/base", "u.cfg", NULL, NULL);
        ck_assert_ptr_nonnull(us);
        ck_assert_int_eq(us->tenants[0].train.rung_steps, 50);
        ck_assert_int_eq(us->tenants[0].train.rung_eta, 3);
        spec_destroy(&us);
        free(ut);
    }
    spec_units_destroy(&u, n);
    spec_destroy(&s);
}
END_TEST

static void bad(const char *text, const char *want_setting, const char *want_text)
{
    char first[512];
    spec_t *s = parse(text, first, sizeof first);
    ck_assert_msg(s == NULL, "accepted: %s", text);
    ck_assert_msg(strstr(first, want_setting) && strstr(first, want_text), "got: %s", first);
    ck_assert_ptr_nonnull(strstr(first, "t.cfg:"));
}

START_TEST(test_bad_early_stop)
{
    bad(HEAD "sweep = { early_stop = { policy = \"asha\"; eta = 3; min_steps = 50; }; };\n",
        "sweep", "early_stop ranks the trials of a sweep");
    bad(HEAD "sweep = { train = { lr = [1e-4, 1e-3]; };\n"
             "  early_stop = { policy = \"asha\"; eta = 1; min_steps = 50; }; };\n",
        "sweep.early_stop.eta", "at least 2");
    bad(HEAD "sweep = { train = { lr = [1e-4, 1e-3]; };\n"
             "  early_stop = { policy = \"median\"; min_steps = 50; }; };\n",
        "sweep.early_stop.policy", "\"asha\"");
    bad(HEAD "sweep = { train = { lr = [1e-4, 1e-3]; };\n"
             "  early_stop = { policy = \"asha\"; min_steps = 50; metric = \"loss\"; }; };\n",
        "sweep.early_stop.metric", "val_loss");
    bad(HEAD "sweep = { train = { lr = [1e-4, 1e-3]; };\n"
             "  early_stop = { policy = \"asha\"; }; };\n",
        "sweep.early_stop.min_steps", "missing");
    bad("mode = \"lora\";\nmodel = \"m.h5\";\ntenants = ( { name = \"a\"; data = \"a.h5\"; } );\n"
        "train = { steps = 450; rung_steps = 10; rung_eta = 1; };\n",
        "train.rung_eta", "at least 2");
    bad(HEAD "resources = { pack_size = -1; };\n", "resources.pack_size", "");
}
END_TEST

START_TEST(test_rungs_that_never_fit)
{
    /* min_steps at or past a trial's steps: no rung before its end */
    const char *text = HEAD "sweep = { train = { steps = [40, 450]; };\n"
                            "  early_stop = { policy = \"asha\"; eta = 3; min_steps = 50; }; };\n";
    spec_t *s = parse(text, NULL, 0);
    ck_assert_ptr_nonnull(s);
    spec_diag_t *d = spec_diag_new();
    spec_unit_t *u;
    int n;
    ck_assert_int_eq(spec_expand(s, NULL, &u, &n, d), -1);
    ck_assert_int_eq(spec_diag_count(d), 1);
    ck_assert_ptr_nonnull(strstr(spec_diag_get(d, 0), "train.steps=40"));
    ck_assert_ptr_nonnull(strstr(spec_diag_get(d, 0), "sweep.early_stop.min_steps: 50"));
    spec_diag_destroy(&d);
    spec_destroy(&s);
}
END_TEST

int main(void)
{
    weft_log_init("test_early_stop");
    check_test_t tests[] = {CHECK_TEST(test_asha_units_get_rungs), CHECK_TEST(test_bad_early_stop),
                            CHECK_TEST(test_rungs_that_never_fit)};
    int failed = check_main((check_opts_t){.suite = "early_stop", .tcase = "spec"}, tests,
                            CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
