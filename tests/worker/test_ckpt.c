/* test_ckpt.c: the checkpoint folder protocol: commit, verify, newest-valid
 * selection past broken checkpoints, pruning, no overwrite, abandoned tmp. */
#include "worker/ckpt.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "tests/check_main.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char run[256];

static void setup(void)
{
    snprintf(run, sizeof run, "/tmp/weft-test-ckpt-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(run));
}

static void teardown(void)
{
    weft_rm_rf(run);
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Writes checkpoint `step` with two files whose content names the step. */
static int save(int64_t step, int keep)
{
    ckpt_writer_t *w = ckpt_writer_new(run, step);
    ck_assert_ptr_nonnull(w);
    char p[PATH_MAX], text[64];
    snprintf(text, sizeof text, "state of step %lld\n", (long long)step);
    ck_assert_int_eq(ckpt_writer_path(w, "state.h5", p, sizeof p), 0);
    put(p, text);
    ck_assert_int_eq(ckpt_writer_path(w, "rng.bin", p, sizeof p), 0);
    put(p, "rng");
    return ckpt_writer_commit(&w, keep);
}

static int exists(const char *fmt, long long step)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, fmt, run, step);
    return stat(p, &st) == 0;
}

START_TEST(commit_then_find)
{
    char dir[PATH_MAX];
    int64_t step = -1;
    ck_assert_int_eq(ckpt_find_latest(run, dir, sizeof dir, &step), 0);
    ck_assert_int_eq(save(10, 3), 0);
    ck_assert_int_eq(save(20, 3), 0);
    ck_assert_int_eq(ckpt_find_latest(run, dir, sizeof dir, &step), 1);
    ck_assert_int_eq(step, 20);
    ck_assert(exists("%s/ckpt-%lld/MANIFEST", 20));
    ck_assert(!exists("%s/ckpt-%lld.tmp", 20));
    ck_assert_int_eq(ckpt_verify(dir), 0);
}
END_TEST

START_TEST(broken_newest_is_skipped)
{
    char dir[PATH_MAX], p[PATH_MAX];
    int64_t step;
    ck_assert_int_eq(save(10, 5), 0);
    ck_assert_int_eq(save(20, 5), 0);
    ck_assert_int_eq(save(30, 5), 0);
    /* 30: a file truncated; 20: a byte changed without changing the size. */
    snprintf(p, sizeof p, "%s/ckpt-30/state.h5", run);
    ck_assert_int_eq(truncate(p, 3), 0);
    snprintf(p, sizeof p, "%s/ckpt-20/state.h5", run);
    put(p, "state of step 99\n");
    ck_assert_int_eq(ckpt_find_latest(run, dir, sizeof dir, &step), 1);
    ck_assert_int_eq(step, 10);
    snprintf(p, sizeof p, "%s/ckpt-20", run);
    ck_assert_int_eq(ckpt_verify(p), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "SHA-256"));
    snprintf(p, sizeof p, "%s/ckpt-30", run);
    ck_assert_int_eq(ckpt_verify(p), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "bytes"));
    /* A damaged manifest and a missing file are broken too. */
    snprintf(p, sizeof p, "%s/ckpt-10/MANIFEST", run);
    ck_assert_int_eq(truncate(p, 10), 0);
    ck_assert_int_eq(ckpt_find_latest(run, dir, sizeof dir, &step), 0);
}
END_TEST

START_TEST(missing_file_is_broken)
{
    char p[PATH_MAX];
    ck_assert_int_eq(save(7, 2), 0);
    snprintf(p, sizeof p, "%s/ckpt-7/rng.bin", run);
    ck_assert_int_eq(unlink(p), 0);
    snprintf(p, sizeof p, "%s/ckpt-7", run);
    ck_assert_int_eq(ckpt_verify(p), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "missing file rng.bin"));
}
END_TEST

START_TEST(prune_keeps_newest_k)
{
    for (int s = 1; s <= 5; s++) ck_assert_int_eq(save(s * 100, 2), 0);
    ck_assert(!exists("%s/ckpt-%lld", 100));
    ck_assert(!exists("%s/ckpt-%lld", 300));
    ck_assert(exists("%s/ckpt-%lld", 400));
    ck_assert(exists("%s/ckpt-%lld", 500));
    /* Numeric order, not text order: 1000 is newer than 500. */
    ck_assert_int_eq(save(1000, 2), 0);
    ck_assert(!exists("%s/ckpt-%lld", 400));
    ck_assert(exists("%s/ckpt-%lld", 1000));
}
END_TEST

START_TEST(never_overwrite_and_abort)
{
    ck_assert_int_eq(save(5, 2), 0);
    ck_assert_int_eq(save(5, 2), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "never overwritten"));
    ck_assert(!exists("%s/ckpt-%lld.tmp", 5));
    /* An abandoned writer leaves nothing; a stale tmp is cleared on restart. */
    ckpt_writer_t *w = ckpt_writer_new(run, 6);
    char p[PATH_MAX];
    ck_assert_int_eq(ckpt_writer_path(w, "x", p, sizeof p), 0);
    put(p, "partial");
    ck_assert_int_eq(ckpt_writer_path(w, "../escape", p, sizeof p), -1);
    ck_assert_int_eq(ckpt_writer_path(w, "MANIFEST", p, sizeof p), -1);
    ckpt_writer_destroy(&w);
    ck_assert_ptr_null(w);
    ck_assert(!exists("%s/ckpt-%lld.tmp", 6));
    snprintf(p, sizeof p, "%s/ckpt-6.tmp", run);
    ck_assert_int_eq(weft_mkdir_p(p, 0755), 0);
    char stale[PATH_MAX];
    ck_assert_int_eq(weft_path_join(stale, sizeof stale, p, "junk"), 0);
    put(stale, "junk");
    ck_assert_int_eq(save(6, 2), 0);
    snprintf(stale, sizeof stale, "%s/ckpt-6/junk", run);
    struct stat st;
    ck_assert_int_eq(stat(stale, &st), -1);
    ck_assert_int_eq(save(6, 0), -1);
}
END_TEST

START_TEST(unwritable_run_dir_reports)
{
    if (geteuid() == 0) {
        /* root ignores folder modes: use a path under a regular file. */
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/file", run);
        put(p, "x");
        snprintf(p, sizeof p, "%s/file/run", run);
        ck_assert_ptr_null(ckpt_writer_new(p, 1));
    } else {
        ck_assert_int_eq(chmod(run, 0500), 0);
        ck_assert_ptr_null(ckpt_writer_new(run, 1));
        chmod(run, 0700);
    }
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "cannot"));
}
END_TEST

int main(void)
{
    check_test_t tests[] = {
        CHECK_TEST(commit_then_find),          CHECK_TEST(broken_newest_is_skipped),
        CHECK_TEST(missing_file_is_broken),    CHECK_TEST(prune_keeps_newest_k),
        CHECK_TEST(never_overwrite_and_abort), CHECK_TEST(unwritable_run_dir_reports)};
    int failed = check_main((check_opts_t){.suite = "ckpt", .setup = setup, .teardown = teardown},
                            tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
