/* test_gpus.c: resources.gpus and resources.device in job specs: a cuda run
 * holds one GPU per rank (the default, or said so), anything else is one
 * clear line; a cpu run holds none; the canonical write-back keeps gpus. In
 * a build without CUDA, device = "cuda" itself is the one line. */
#include "common/log.h"
#include "jobs/spec.h"
#include "tests/check_main.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD "mode = \"full\";\nmodel = \"m.h5\";\ndata = \"d.h5\";\ntrain = { steps = 10; };\n"

static spec_t *parse(const char *text, char *first, size_t n)
{
    spec_diag_t *d = spec_diag_new();
    spec_t *s = spec_parse(text, strlen(text), "/base", "t.cfg", NULL, d);
    if (first) snprintf(first, n, "%s", spec_diag_count(d) ? spec_diag_get(d, 0) : "");
    spec_diag_destroy(&d);
    return s;
}

static void bad(const char *text, const char *setting, const char *words)
{
    char first[512];
    spec_t *s = parse(text, first, sizeof first);
    ck_assert_msg(!s, "accepted: %s", text);
    ck_assert_msg(strstr(first, setting) && strstr(first, words) && !strchr(first, '\n'),
                  "for %s expected '%s' and '%s' in one line: %s", text, setting, words, first);
}

START_TEST(cpu_runs_hold_no_gpus)
{
    spec_t *s = parse(HEAD "resources = { ranks = 2; };\n", NULL, 0);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->resources.gpus, 0);
    spec_destroy(&s);
    s = parse(HEAD "resources = { ranks = 2; device = \"cpu\"; gpus = 0; };\n", NULL, 0);
    ck_assert_ptr_nonnull(s);
    spec_destroy(&s);
    bad(HEAD "resources = { ranks = 2; gpus = 2; };\n", "t.cfg:5: resources.gpus",
        "need device = \"cuda\"");
    bad(HEAD "resources = { gpus = -1; };\n", "resources.gpus", "");
    bad(HEAD "resources = { device = \"tpu\"; };\n", "resources.device", "\"cpu\" or \"cuda\"");
}
END_TEST

START_TEST(cuda_runs_hold_one_gpu_per_rank)
{
#ifdef WEFT_HAVE_CUDA
    spec_t *s = parse(HEAD "resources = { ranks = 4; device = \"cuda\"; };\n", NULL, 0);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->resources.gpus, 4);
    ck_assert_int_eq(s->resources.precision, SPEC_PREC_BF16);
    /* the canonical text keeps device, precision and gpus, and reads back equal */
    char *text = spec_write(s);
    ck_assert_ptr_nonnull(strstr(text, "gpus = 4;"));
    spec_t *back = parse(text, NULL, 0);
    ck_assert_ptr_nonnull(back);
    ck_assert(spec_equal(s, back));
    free(text);
    spec_destroy(&back);
    spec_destroy(&s);
    s = parse(HEAD
              "resources = { ranks = 2; device = \"cuda\"; gpus = 2; precision = \"fp32\"; };\n",
              NULL, 0);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->resources.gpus, 2);
    spec_destroy(&s);
    bad(HEAD "resources = { ranks = 2; device = \"cuda\"; gpus = 1; };\n", "resources.gpus",
        "one rank drives one GPU");
#else
    bad(HEAD "resources = { ranks = 2; device = \"cuda\"; };\n", "t.cfg:5: resources.device",
        "needs a weft built with CUDA");
#endif
}
END_TEST

int main(void)
{
    weft_log_init("test_gpus");
    check_test_t tests[] = {CHECK_TEST(cpu_runs_hold_no_gpus),
                            CHECK_TEST(cuda_runs_hold_one_gpu_per_rank)};
    int failed =
        check_main((check_opts_t){.suite = "gpus", .tcase = "spec"}, tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
