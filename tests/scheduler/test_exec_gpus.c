/* test_exec_gpus.c: the local executor's GPUs (weftd --gpus) under a real
 * mpirun, no GPU needed: the list is parsed or refused in one line, a run
 * holds the lowest free ids and every rank sees them in CUDA_VISIBLE_DEVICES,
 * a run waits (1) while too few are free and fails when the pool is too
 * small, GPUs come back when the run ends, and a restart claims them again. */
#include "scheduler/exec_local.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "tests/check_main.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256], worker[512];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/weft-test-gpus-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(worker, sizeof worker, "%s/gpu-worker.sh", dir);
    FILE *f = fopen(worker, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "#!/bin/sh\necho \"rank $OMPI_COMM_WORLD_RANK gpus=${CUDA_VISIBLE_DEVICES-unset}\"\n");
    fclose(f);
    chmod(worker, 0755);
    unsetenv("CUDA_VISIBLE_DEVICES");
}

static void teardown(void)
{
    weft_rm_rf(dir);
}

static int wait_for(pid_t pid)
{
    for (int i = 0; i < 1200; i++) {
        pid_t p;
        int code;
        if (exec_local_reap(&p, &code) && p == pid) return code;
        usleep(50000);
    }
    return -1;
}

/* Launches run with ngpus on 2 ranks; returns launch's code, the log's text
 * in *text (once the group ended) and the GPU list in gpus. */
static int run(exec_local_t *ex, int64_t id, int ngpus, char *gpus, size_t gsize, char **text)
{
    char log[400];
    snprintf(log, sizeof log, "%s/run-%lld.log", dir, (long long)id);
    pid_t pid = 0;
    int rc = exec_local_launch_gpus(ex, id, 1, 2, 1, ngpus, "/tmp/run.cfg", log, &pid, gpus, gsize);
    *text = NULL;
    if (rc == 0) {
        ck_assert_int_eq(wait_for(pid), 0);
        *text = weft_read_file(log, 1 << 16, NULL);
        ck_assert_ptr_nonnull(*text);
    }
    return rc;
}

START_TEST(gpu_list_parsing)
{
    exec_local_t *ex = exec_local_new(getenv("MPIRUN"), worker, NULL);
    ck_assert_ptr_nonnull(ex);
    ck_assert_int_eq(exec_local_set_gpus(ex, "0,1,7"), 0);
    ck_assert_int_eq(exec_local_gpus_total(ex), 3);
    ck_assert_int_eq(exec_local_gpus_free(ex), 3);
    const char *bad[] = {"0,,1", "a", "1,1", "0,", "-1", "2048", "0;1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(exec_local_set_gpus(ex, bad[i]), -1);
        ck_assert_msg(strstr(weft_last_error(), "--gpus") && !strchr(weft_last_error(), '\n'),
                      "%s: %s", bad[i], weft_last_error());
    }
    ck_assert_int_eq(exec_local_set_gpus(ex, ""), 0);
    ck_assert_int_eq(exec_local_gpus_total(ex), 0);
    exec_local_destroy(&ex);
}
END_TEST

START_TEST(runs_hold_and_return_gpus)
{
    exec_local_t *ex = exec_local_new(getenv("MPIRUN"), worker, NULL);
    ck_assert_ptr_nonnull(ex);
    ck_assert_int_eq(exec_local_set_gpus(ex, "2,3,5"), 0);
    char gpus[64], *text;
    /* run 5 takes the two lowest; both ranks see them */
    ck_assert_int_eq(run(ex, 5, 2, gpus, sizeof gpus, &text), 0);
    ck_assert_str_eq(gpus, "2,3");
    ck_assert_msg(strstr(text, "rank 0 gpus=2,3") && strstr(text, "rank 1 gpus=2,3"), "%s", text);
    free(text);
    ck_assert_int_eq(exec_local_gpus_free(ex), 1);
    /* run 6 waits: one free, two needed; nothing is launched */
    ck_assert_int_eq(run(ex, 6, 2, gpus, sizeof gpus, &text), 1);
    char log6[400];
    snprintf(log6, sizeof log6, "%s/run-6.log", dir);
    ck_assert_int_eq(access(log6, F_OK), -1);
    /* more than the pool: an error naming both counts */
    ck_assert_int_eq(run(ex, 7, 4, gpus, sizeof gpus, &text), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "needs 4 GPUs but weftd has 3"));
    /* run 5 ends: run 6 gets them */
    exec_local_release_gpus(ex, 5);
    ck_assert_int_eq(exec_local_gpus_free(ex), 3);
    ck_assert_int_eq(run(ex, 6, 2, gpus, sizeof gpus, &text), 0);
    ck_assert_str_eq(gpus, "2,3");
    free(text);
    /* a new attempt of run 6 gives back its own GPUs first */
    ck_assert_int_eq(run(ex, 6, 2, gpus, sizeof gpus, &text), 0);
    ck_assert_str_eq(gpus, "2,3");
    free(text);
    /* a cpu run (no GPUs) is not given CUDA_VISIBLE_DEVICES */
    ck_assert_int_eq(run(ex, 8, 0, gpus, sizeof gpus, &text), 0);
    ck_assert_str_eq(gpus, "");
    ck_assert_msg(strstr(text, "rank 0 gpus=unset"), "%s", text);
    free(text);
    /* after a restart: run 9 claims what its executor id recorded */
    exec_local_release_gpus(ex, 6);
    exec_local_claim_gpus(ex, 9, "5,3");
    ck_assert_int_eq(exec_local_gpus_free(ex), 1);
    ck_assert_int_eq(run(ex, 10, 1, gpus, sizeof gpus, &text), 0);
    ck_assert_str_eq(gpus, "2");
    free(text);
    exec_local_destroy(&ex);
}
END_TEST

int main(void)
{
    weft_log_init("test_exec_gpus");
    check_test_t tests[] = {CHECK_TEST(gpu_list_parsing), CHECK_TEST(runs_hold_and_return_gpus)};
    int failed = check_main(
        (check_opts_t){.suite = "exec_gpus", .timeout = 120, .setup = setup, .teardown = teardown},
        tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
