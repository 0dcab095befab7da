/* test_store.c: weftd's store: the job and run life cycles and each
 * numbered invariant of store.c (I1..I6), on a real SQLite file. */
#include "common/fsutil.h"
#include "common/log.h"
#include "scheduler/store.h"
#include "tests/check_main.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256], db[300];
static store_t *st;

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/weft-test-store-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/weft.db", dir);
    st = store_open(db);
    ck_assert_ptr_nonnull(st);
}

static void teardown(void)
{
    store_destroy(&st);
    weft_rm_rf(dir);
}

/* Submits n lora jobs named t0..t(n-1); returns the first job id. */
static int64_t submit(int n, int priority, int max_attempts)
{
    store_job_spec_t js[64];
    char names[64][16];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        js[i] = (store_job_spec_t){.name = names[i],
                                   .tenant = names[i],
                                   .mode = "lora",
                                   .pack_key = "k",
                                   .unit = "unit",
                                   .params = "{}",
                                   .priority = priority,
                                   .max_attempts = max_attempts};
    }
    int64_t first = 0;
    ck_assert_int_gt(store_submit(st, "batch", "spec", "/tmp", "admin", js, (size_t)n, &first), 0);
    return first;
}

static job_state_t state_of(int64_t job)
{
    store_job_row_t r;
    ck_assert_int_eq(store_job_get(st, job, &r), 0);
    store_job_row_free(&r);
    return r.state;
}

START_TEST(submit_queue_order)
{
    int64_t low = submit(2, 0, 3);
    int64_t high = submit(1, 5, 3);
    store_job_row_t *rows;
    size_t n;
    ck_assert_int_eq(store_jobs_queued(st, 10, &rows, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(rows[0].id, high);
    ck_assert_int_eq(rows[1].id, low);
    ck_assert_int_eq(rows[2].id, low + 1);
    ck_assert_str_eq(rows[1].unit, "unit");
    store_job_rows_free(rows, n);
}
END_TEST

START_TEST(i1_attempt_only_grows_and_preemption_is_free)
{
    int64_t j = submit(1, 0, 2);
    int64_t run = store_run_create(st, &j, 1, 2, 2);
    ck_assert_int_gt(run, 0);
    store_run_row_t r;
    int last = 0;
    /* Preempted three times: attempts grow, the run stays alive. */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(store_run_launched(st, run, "pid"), 0);
        ck_assert_int_eq(store_run_lost(st, run, 0, "exit 75"), RUN_PENDING);
        ck_assert_int_eq(store_run_get(st, run, &r), 0);
        ck_assert_int_gt(r.attempt, last);
        last = r.attempt;
    }
    /* Two real failures use up max_attempts = 2. */
    ck_assert_int_eq(store_run_launched(st, run, "pid"), 0);
    ck_assert_int_eq(store_run_lost(st, run, 1, "exit 1"), RUN_PENDING);
    ck_assert_int_eq(store_run_launched(st, run, "pid"), 0);
    ck_assert_int_eq(store_run_lost(st, run, 1, "exit 1"), RUN_FAILED);
    ck_assert_int_eq(store_run_get(st, run, &r), 0);
    ck_assert_int_eq(r.state, RUN_FAILED);
    ck_assert_int_eq(r.attempt, 5);
    ck_assert_int_eq(state_of(j), JOB_FAILED);
}
END_TEST

START_TEST(i1_stale_attempt_is_dropped)
{
    int64_t j = submit(1, 0, 3);
    int64_t run = store_run_create(st, &j, 1, 1, 3);
    ck_assert_int_eq(store_run_launched(st, run, "1"), 0);
    ck_assert_int_eq(store_run_hello(st, run, 1), 1);
    ck_assert_int_eq(store_run_lost(st, run, 1, "heartbeat"), RUN_PENDING);
    ck_assert_int_eq(store_run_launched(st, run, "2"), 0);
    ck_assert_int_eq(store_run_hello(st, run, 1), 0);
    ck_assert_int_eq(store_run_hello(st, run, 2), 1);
}
END_TEST

START_TEST(i2_final_states_are_final)
{
    int64_t j = submit(3, 0, 1);
    ck_assert_int_eq(store_job_transition(st, j, JOB_CANCELLED, "user"), 0);
    ck_assert_int_eq(store_job_transition(st, j, JOB_QUEUED, NULL), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "cannot go from cancelled to queued"));
    ck_assert_int_eq(store_job_transition(st, j, JOB_SUCCEEDED, NULL), -1);
    int64_t rest[2] = {j + 1, j + 2};
    int64_t run = store_run_create(st, rest, 2, 1, 1);
    ck_assert_int_eq(store_run_launched(st, run, "x"), 0);
    /* One tenant fails on its own; the run then completes: it stays failed. */
    ck_assert_int_eq(store_job_transition(st, j + 1, JOB_FAILED, "nan at step 3"), 0);
    ck_assert_int_eq(store_run_finish(st, run, RUN_DONE, "done"), 0);
    ck_assert_int_eq(state_of(j + 1), JOB_FAILED);
    ck_assert_int_eq(state_of(j + 2), JOB_SUCCEEDED);
    ck_assert_int_eq(store_run_finish(st, run, RUN_FAILED, "again"), -1);
    store_job_row_t r;
    ck_assert_int_eq(store_job_get(st, j + 1, &r), 0);
    ck_assert_str_eq(r.error, "nan at step 3");
    store_job_row_free(&r);
}
END_TEST

START_TEST(i3_metric_stored_once)
{
    int64_t j = submit(1, 0, 1);
    ck_assert_int_eq(store_metric_add(st, j, 1, "train", "{\"loss\":2.0}"), 1);
    ck_assert_int_eq(store_metric_add(st, j, 2, "train", "{\"loss\":1.9}"), 1);
    ck_assert_int_eq(store_metric_add(st, j, 2, "train", "{\"loss\":1.9}"), 0);
    ck_assert_int_eq(store_metric_add(st, j, 2, "eval", "{\"val_loss\":2.1}"), 1);
    ck_assert_int_eq(store_metric_count(st, j), 3);
}
END_TEST

START_TEST(i4_running_iff_in_live_run)
{
    int64_t j = submit(2, 0, 1);
    int64_t both[2] = {j, j + 1};
    int64_t run = store_run_create(st, both, 2, 1, 1);
    ck_assert_int_eq(state_of(j), JOB_RUNNING);
    /* A job already in a run cannot join another. */
    ck_assert_int_eq(store_run_create(st, both, 1, 1, 1), -1);
    ck_assert_int_eq(store_run_launched(st, run, "x"), 0);
    ck_assert_int_eq(store_run_finish(st, run, RUN_CANCELLED, "user"), 0);
    ck_assert_int_eq(state_of(j), JOB_CANCELLED);
    ck_assert_int_eq(state_of(j + 1), JOB_CANCELLED);
}
END_TEST

/* I4 with continuous packing: a queued job joins a launched run (and only
 * a live one), is RUNNING in it, and goes back to the queue, in no run,
 * when the run's group ended without taking it. */
START_TEST(i4_admitted_job_joins_a_live_run_and_can_be_requeued)
{
    int64_t j = submit(3, 0, 1);
    int64_t run = store_run_create(st, &j, 1, 1, 1);
    /* a pending run has no group to take it */
    ck_assert_int_eq(store_run_admit(st, run, j + 1), -1);
    ck_assert_int_eq(state_of(j + 1), JOB_QUEUED);
    ck_assert_int_eq(store_run_launched(st, run, "x"), 0);
    ck_assert_int_eq(store_job_admitted(st, j + 1), 0);
    ck_assert_int_eq(store_run_admit(st, run, j + 1), 0);
    ck_assert_int_eq(state_of(j + 1), JOB_RUNNING);
    ck_assert_int_eq(store_job_admitted(st, j + 1), run);
    ck_assert_int_eq(store_job_admitted(st, j), 0); /* planned with the run, not admitted */
    /* a job in a run cannot be admitted again */
    ck_assert_int_eq(store_run_admit(st, run, j + 1), -1);
    store_job_row_t *rows;
    size_t n;
    ck_assert_int_eq(store_run_jobs(st, run, &rows, &n), 0);
    ck_assert_uint_eq(n, 2);
    store_job_rows_free(rows, n);
    /* its group ended without it: queued again, in no run */
    ck_assert_int_eq(store_job_requeue(st, j + 1, "not taken"), 0);
    ck_assert_int_eq(state_of(j + 1), JOB_QUEUED);
    ck_assert_int_eq(store_run_jobs(st, run, &rows, &n), 0);
    ck_assert_uint_eq(n, 1);
    store_job_rows_free(rows, n);
    ck_assert_int_eq(store_job_requeue(st, j + 2, "queued"), -1); /* only a running job */
    ck_assert_int_eq(store_run_finish(st, run, RUN_DONE, "ok"), 0);
    ck_assert_int_eq(state_of(j), JOB_SUCCEEDED);
    ck_assert_int_eq(state_of(j + 1), JOB_QUEUED);
    /* an ended run admits nothing */
    ck_assert_int_eq(store_run_admit(st, run, j + 1), -1);
    ck_assert_int_eq(store_job_requeue(st, j, "done"), -1); /* I2 */
}
END_TEST

struct seen {
    int64_t ids[64];
    int n;
};

static int collect(void *ctx, int64_t id, const char *kind, const char *detail)
{
    (void)kind, (void)detail;
    struct seen *s = ctx;
    s->ids[s->n++] = id;
    return s->n == 64;
}

START_TEST(i5_events_in_order_from_any_point)
{
    int64_t j = submit(1, 0, 1);
    int64_t run = store_run_create(st, &j, 1, 1, 1);
    ck_assert_int_eq(store_metric_add(st, j, 1, "train", "{}"), 1);
    struct seen all = {0};
    ck_assert_int_eq(store_events(st, j, 0, collect, &all), 0);
    ck_assert_int_eq(all.n, 3); /* queued, running, metric */
    for (int i = 1; i < all.n; i++) ck_assert_int_gt(all.ids[i], all.ids[i - 1]);
    ck_assert_int_eq(store_run_launched(st, run, "x"), 0);
    ck_assert_int_eq(store_run_finish(st, run, RUN_DONE, "ok"), 0);
    struct seen late = {0};
    ck_assert_int_eq(store_events(st, j, all.ids[all.n - 1], collect, &late), 0);
    ck_assert_int_eq(late.n, 1);
    ck_assert_int_gt(late.ids[0], all.ids[all.n - 1]);
}
END_TEST

START_TEST(i6_ack_never_decreases)
{
    int64_t j = submit(1, 0, 1);
    int64_t run = store_run_create(st, &j, 1, 1, 1);
    store_run_row_t r;
    ck_assert_int_eq(store_run_ack(st, run, 10), 0);
    ck_assert_int_eq(store_run_ack(st, run, 4), 0);
    ck_assert_int_eq(store_run_get(st, run, &r), 0);
    ck_assert_int_eq(r.acked_seq, 10);
}
END_TEST

START_TEST(durable_across_reopen_and_rollback)
{
    int64_t j = submit(2, 0, 1);
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_job_transition(st, j, JOB_CANCELLED, "x"), 0);
    store_rollback(st);
    ck_assert_int_eq(state_of(j), JOB_QUEUED);
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_job_transition(st, j, JOB_CANCELLED, "x"), 0);
    ck_assert_int_eq(store_commit(st), 0);
    store_destroy(&st);
    st = store_open(db);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(state_of(j), JOB_CANCELLED);
    ck_assert_int_eq(state_of(j + 1), JOB_QUEUED);
}
END_TEST

START_TEST(list_pages_and_filters)
{
    int64_t j = submit(30, 0, 1);
    ck_assert_int_eq(store_job_transition(st, j + 3, JOB_CANCELLED, "x"), 0);
    store_job_row_t *rows;
    size_t n;
    ck_assert_int_eq(store_list(st, -1, NULL, 0, 0, 10, &rows, &n), 0);
    ck_assert_uint_eq(n, 10);
    ck_assert_int_eq(rows[0].id, j + 29);
    int64_t next = rows[9].id;
    store_job_rows_free(rows, n);
    ck_assert_int_eq(store_list(st, -1, NULL, 0, next, 100, &rows, &n), 0);
    ck_assert_uint_eq(n, 20);
    ck_assert_int_eq(rows[0].id, next - 1);
    store_job_rows_free(rows, n);
    ck_assert_int_eq(store_list(st, JOB_CANCELLED, NULL, 0, 0, 100, &rows, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(rows[0].id, j + 3);
    store_job_rows_free(rows, n);
    ck_assert_int_eq(store_list(st, -1, "t7", 0, 0, 100, &rows, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(rows[0].name, "t7");
    store_job_rows_free(rows, n);
}
END_TEST

START_TEST(open_refuses_garbage)
{
    char bad[320];
    snprintf(bad, sizeof bad, "%s/bad.db", dir);
    FILE *f = fopen(bad, "w");
    fputs("this is not a database, and it is long enough to have a header.......", f);
    fclose(f);
    store_t *b = store_open(bad);
    ck_assert_ptr_null(b);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), bad));
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(submit_queue_order),
                            CHECK_TEST(i1_attempt_only_grows_and_preemption_is_free),
                            CHECK_TEST(i1_stale_attempt_is_dropped),
                            CHECK_TEST(i2_final_states_are_final),
                            CHECK_TEST(i3_metric_stored_once),
                            CHECK_TEST(i4_running_iff_in_live_run),
                            CHECK_TEST(i4_admitted_job_joins_a_live_run_and_can_be_requeued),
                            CHECK_TEST(i5_events_in_order_from_any_point),
                            CHECK_TEST(i6_ack_never_decreases),
                            CHECK_TEST(durable_across_reopen_and_rollback),
                            CHECK_TEST(list_pages_and_filters),
                            CHECK_TEST(open_refuses_garbage)};
    int failed = check_main((check_opts_t){.suite = "store", .setup = setup, .teardown = teardown},
                            tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
