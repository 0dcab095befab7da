/* test_exec_local.c: the local executor under a real mpirun: arguments
 * reach every rank, exit codes come back (75 for a requeue), output lands in
 * the log, and killing the group ends every rank. */
#include "scheduler/exec_local.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "tests/check_main.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[256], worker[512];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/weft-test-exec-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(worker, sizeof worker, "%s/tests/scheduler/fake-worker.sh", getenv("top_srcdir"));
}

static void teardown(void)
{
    weft_rm_rf(dir);
}

/* Waits up to `secs` for pid to end; returns its exit code or -1. */
static int wait_for(pid_t pid, double secs)
{
    for (int i = 0; i < secs * 20; i++) {
        pid_t p;
        int code;
        if (exec_local_reap(&p, &code) && p == pid) return code;
        usleep(50000);
    }
    return -1;
}

static int run_mode(const char *mode, char *log, size_t logsize, pid_t *pid)
{
    setenv("WEFT_TEST_MODE", mode, 1);
    setenv("WEFT_TEST_DIR", dir, 1);
    exec_local_t *ex = exec_local_new(getenv("MPIRUN"), worker, "ipc:///tmp/x.sock");
    ck_assert_ptr_nonnull(ex);
    snprintf(log, logsize, "%s/run-%s.log", dir, mode);
    ck_assert_int_eq(exec_local_launch(ex, 7, 3, 2, 1, "/tmp/run.cfg", log, pid), 0);
    exec_local_destroy(&ex);
    return 0;
}

START_TEST(exit_codes_and_log)
{
    char log[512];
    pid_t pid;
    run_mode("0", log, sizeof log, &pid);
    ck_assert_int_eq(wait_for(pid, 60), 0);
    char *text = weft_read_file(log, 1 << 20, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "rank 0 args: /tmp/run.cfg --endpoint ipc:///tmp/x.sock "
                                       "--run 7 --attempt 3 threads=1"));
    ck_assert_ptr_nonnull(strstr(text, "rank 1 args:"));
    free(text);
    run_mode("75", log, sizeof log, &pid);
    ck_assert_int_eq(wait_for(pid, 60), 75);
}
END_TEST

START_TEST(kill_group)
{
    char log[512];
    pid_t pid;
    run_mode("sleep", log, sizeof log, &pid);
    usleep(1500000);
    ck_assert(exec_local_alive(pid));
    double t0 = (double)time(NULL);
    ck_assert_int_eq(exec_local_signal(pid, SIGKILL), 0);
    int code = wait_for(pid, 30);
    ck_assert_int_eq(code, 128 + SIGKILL);
    ck_assert(!exec_local_alive(pid));
    ck_assert((double)time(NULL) - t0 < 20);
    /* No rank outlives its group. */
    for (int r = 0; r < 2; r++) {
        char path[300];
        snprintf(path, sizeof path, "%s/rank-%d.pid", dir, r);
        char *text = weft_read_file(path, 64, NULL);
        ck_assert_ptr_nonnull(text);
        pid_t rank = (pid_t)atoi(text);
        free(text);
        int gone = 0;
        for (int i = 0; i < 100 && !gone; i++) {
            gone = !exec_local_alive(rank);
            if (!gone) usleep(50000);
        }
        ck_assert_msg(gone, "rank %d (pid %d) outlived its killed group", r, (int)rank);
    }
    ck_assert_int_eq(exec_local_signal(1, SIGKILL), -1);
}
END_TEST

/* A group that exits between weftd's reap and its liveness check is a
 * zombie there: its exit code must come back, not "process gone" (-1), so
 * a 65 is not retried and a 75 counts as a requeue. */
START_TEST(exit_code_of_a_zombie)
{
    static const char *modes[] = {"65", "75"};
    for (int m = 0; m < 2; m++) {
        char log[512];
        pid_t pid;
        int code = 0;
        run_mode(modes[m], log, sizeof log, &pid);
        for (int i = 0; i < 1200 && exec_local_alive(pid); i++) usleep(50000);
        ck_assert_msg(!exec_local_alive(pid), "the group did not exit");
        ck_assert_int_eq(exec_local_ended(pid, &code), 1);
        ck_assert_int_eq(code, atoi(modes[m]));
    }
    /* A process that is not our child and is gone has no code. */
    int code = 0;
    ck_assert_int_eq(exec_local_ended(999999, &code), 1);
    ck_assert_int_eq(code, -1);
    ck_assert_int_eq(exec_local_ended(getpid(), &code), 0);
}
END_TEST

/* A group starts with every signal at its default action and none blocked,
 * whatever weftd ignores or blocks (its handlers, SIGPIPE ignored). */
START_TEST(child_signals_reset)
{
    char prog[300], log[300];
    snprintf(prog, sizeof prog, "%s/status.sh", dir);
    snprintf(log, sizeof log, "%s/status.log", dir);
    FILE *f = fopen(prog, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "#!/bin/sh\nexec grep -E '^Sig(Ign|Blk)' /proc/self/status\n");
    fclose(f);
    chmod(prog, 0755);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, NULL);
    exec_local_t *ex = exec_local_new(prog, worker, NULL);
    ck_assert_ptr_nonnull(ex);
    pid_t pid;
    ck_assert_int_eq(exec_local_launch(ex, 1, 1, 1, 1, "/tmp/run.cfg", log, &pid), 0);
    exec_local_destroy(&ex);
    ck_assert_int_eq(wait_for(pid, 30), 0);
    char *text = weft_read_file(log, 1 << 16, NULL);
    ck_assert_ptr_nonnull(text);
    /* the classic signals 1-31 (glibc keeps 32 and 33 for itself) */
    const char *ign = strstr(text, "SigIgn:"), *blk = strstr(text, "SigBlk:");
    ck_assert_msg(ign && blk, "no signal masks: %s", text);
    unsigned long long vi = strtoull(ign + 7, NULL, 16), vb = strtoull(blk + 7, NULL, 16);
    ck_assert_msg((vi & 0x7fffffffULL) == 0, "signals ignored: %s", text);
    ck_assert_msg((vb & 0x7fffffffULL) == 0, "signals blocked: %s", text);
    free(text);
}
END_TEST

START_TEST(missing_programs)
{
    ck_assert_ptr_null(exec_local_new("/nonexistent/mpirun", worker, NULL));
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "/nonexistent/mpirun"));
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(exit_codes_and_log), CHECK_TEST(kill_group),
                            CHECK_TEST(exit_code_of_a_zombie), CHECK_TEST(child_signals_reset),
                            CHECK_TEST(missing_programs)};
    int failed = check_main(
        (check_opts_t){.suite = "exec_local", .timeout = 120, .setup = setup, .teardown = teardown},
        tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
