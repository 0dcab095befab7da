/* monitor.c: the worker groups weftd follows, from launch to their end: the
 * live-run table, the reaping of their processes, liveness, Slurm's view of
 * its jobs, the end of an attempt (retried from its newest checkpoint, or
 * failed), a run whose every job is cancelled, and the table rebuilt after a
 * restart. What groups say is monitor_msg.c's; new runs are launch.c's. */
#include "common/log.h"
#include "scheduler/weftd.h"
#include "scheduler/zap.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#define EXIT_REQUEUE EX_TEMPFAIL
#define EXIT_GRACE   3.0 /* seconds a group that exited 0 has to deliver DONE */

live_run_t *monitor_find_run(int64_t id)
{
    for (live_run_t *r = server.runs; r; r = r->next)
        if (r->id == id) return r;
    return NULL;
}

static live_run_t *find_pid(pid_t pid)
{
    for (live_run_t *r = server.runs; r; r = r->next)
        if (r->pid == pid) return r;
    return NULL;
}

static void free_run(live_run_t *r)
{
    for (int i = 0; i < r->njobs; i++) free(r->names[i]);
    free(r->names);
    free(r->jobs);
    free(r);
}

/* The group has ended: its worker key is admitted no more (a relaunch mints
 * a new one). */
static void drop_run(int64_t id)
{
    if (server.exec) exec_local_release_gpus(server.exec, id);
    if (server.zap) {
        char run[32];
        snprintf(run, sizeof run, "%" PRId64, id);
        zap_remove_run(server.zap, run);
    }
    for (live_run_t **pp = &server.runs; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            live_run_t *r = *pp;
            *pp = r->next;
            free_run(r);
            return;
        }
}

void monitor_free_all(void)
{
    while (server.runs) {
        live_run_t *r = server.runs;
        server.runs = r->next;
        free_run(r);
    }
}

/* Loads a run's jobs (names -> ids) into a live entry. */
static int load_jobs(live_run_t *r)
{
    store_job_row_t *rows;
    size_t n;
    if (store_run_jobs(server.store, r->id, &rows, &n) < 0) return -1;
    r->jobs = calloc(n ? n : 1, sizeof *r->jobs);
    r->names = calloc(n ? n : 1, sizeof *r->names);
    int ok = r->jobs && r->names;
    for (size_t i = 0; ok && i < n; i++) {
        r->jobs[i] = rows[i].id;
        r->names[i] = strdup(rows[i].name);
        r->njobs = (int)i + 1; /* what free_run frees */
        ok = r->names[i] != NULL;
    }
    store_job_rows_free(rows, n);
    return ok ? 0 : weft_error("out of memory loading run %lld's jobs", (long long)r->id);
}

/* Adds r (filled in by its launch, or from the store after a restart) to
 * the live runs with its jobs; on an error, frees it. */
int monitor_follow(live_run_t *r)
{
    if (load_jobs(r) < 0) {
        free_run(r);
        return -1;
    }
    r->next = server.runs;
    server.runs = r;
    return 0;
}

/* Every job of the run is in a final state. */
static int run_jobs_final(int64_t run)
{
    store_job_row_t *rows;
    size_t n;
    if (store_run_jobs(server.store, run, &rows, &n) < 0) return 0;
    int all = 1;
    for (size_t i = 0; i < n; i++)
        if (!job_state_final(rows[i].state)) all = 0;
    store_job_rows_free(rows, n);
    return all;
}

/* Ends a run's group: SIGKILL to its process group, or scancel of its job. */
static void stop_group(live_run_t *r)
{
    if (r->pid > 1)
        exec_local_signal(r->pid, SIGKILL);
    else if (r->job_id[0] && server.slurm && exec_slurm_cancel(server.slurm, r->job_id) < 0)
        weft_warn("run %" PRId64 ": %s", r->id, weft_last_error());
}

int monitor_job_cancelled(int64_t job, int64_t run)
{
    live_run_t *r = monitor_find_run(run);
    store_run_row_t row;
    if (store_run_get(server.store, run, &row) < 0) return -1;
    if (!run_jobs_final(run)) {
        if (r && r->hello) {
            for (int i = 0; i < r->njobs; i++)
                if (r->jobs[i] == job) monitor_send_cancel(r, json_pack("[s]", r->names[i]));
        }
        return 0;
    }
    /* Nothing left to train: the run ends; its group is stopped. */
    if (store_run_finish(server.store, run, RUN_CANCELLED, "every job cancelled") < 0) return -1;
    if (r) {
        stop_group(r);
        r->ending = 1;
        r->ending_since = weftd_now();
    }
    return 0;
}

/* One transaction around a run-level change. */
static int in_tx(int (*fn)(int64_t, int, const char *), int64_t run, int arg, const char *why)
{
    if (store_begin(server.store) < 0) return -1;
    if (fn(run, arg, why) < 0) {
        store_rollback(server.store);
        return -1;
    }
    return store_commit(server.store);
}

static int lost(int64_t run, int counts, const char *why)
{
    int st = store_run_lost(server.store, run, counts, why);
    if (st < 0) return -1;
    weft_info("run %" PRId64 " lost (%s): %s", run, why,
              st == RUN_PENDING ? "relaunching from its newest checkpoint" : "no attempts left");
    return 0;
}

static int finish_failed(int64_t run, int unused, const char *why)
{
    (void)unused;
    return store_run_finish(server.store, run, RUN_FAILED, why);
}

/* A group's process ended (reaped, or found gone after a restart). */
static void group_ended(live_run_t *r, int code)
{
    /* A killed mpirun can leave ranks running: end every process of the
     * group's session before the next attempt starts, so no rank of an old
     * attempt writes into the output folder the new one resumes from. */
    if (r->session > 1) exec_local_signal(r->session, SIGKILL);
    store_run_row_t row;
    if (store_run_get(server.store, r->id, &row) < 0) return;
    if (row.state != RUN_LAUNCHED && row.state != RUN_RUNNING) {
        drop_run(r->id); /* DONE or cancelled already recorded */
        return;
    }
    char why[64];
    if (code == EXIT_REQUEUE) {
        snprintf(why, sizeof why, "exit 75 (checkpointed)");
        in_tx(lost, r->id, 0, why);
    } else if (code == EX_DATAERR || code == EX_CONFIG) {
        snprintf(why, sizeof why, "exit %d (%s)", code, code == EX_DATAERR ? "bad data" : "bad spec");
        in_tx(finish_failed, r->id, 0, why); /* retrying cannot help */
    } else {
        snprintf(why, sizeof why, code < 0 ? "process gone" : "exit %d", code);
        in_tx(lost, r->id, 1, why);
    }
    drop_run(r->id);
}

/* A group's process has exited with code: a clean exit waits a moment for
 * its DONE; anything else ends the attempt now. */
static void exited(live_run_t *r, int code)
{
    if (code == 0 && !r->ending) {
        r->ending = 1;
        r->ending_since = weftd_now();
        r->pid = 0;
        return;
    }
    group_ended(r, code);
}

static void reap(void)
{
    pid_t pid;
    int code;
    while (exec_local_reap(&pid, &code)) {
        if (prepare_reaped(pid, code)) continue;
        live_run_t *r = find_pid(pid);
        if (r) exited(r, code);
    }
}

/* Slurm runs, from one scontrol snapshot a second: a job still waiting in
 * the queue is not silent; an ended job gives its exit code; a job Slurm no
 * longer knows ended without one (lost, unless its DONE came). */
static void follow_slurm(void)
{
    double now = weftd_now();
    live_run_t *next;
    for (live_run_t *r = server.slurm ? server.runs : NULL; r; r = next) {
        next = r->next;
        if (!r->job_id[0]) continue;
        int code = -1;
        exec_slurm_state_t st = exec_slurm_state(server.slurm, r->job_id, &code);
        if (st == EXEC_SLURM_WAITING && !r->ending) {
            r->last_seen = now;
        } else if (st == EXEC_SLURM_ENDED || st == EXEC_SLURM_GONE) {
            if (st == EXEC_SLURM_GONE)
                weft_warn("run %" PRId64 ": Slurm job %s is gone", r->id, r->job_id);
            r->job_id[0] = 0;
            exited(r, st == EXEC_SLURM_GONE ? -1 : code);
        }
    }
}

/* Silent groups, groups gone after a restart, and clean exits whose DONE
 * never came. */
static void check_liveness(void)
{
    double now = weftd_now();
    live_run_t *next;
    int code;
    for (live_run_t *r = server.runs; r; r = next) {
        next = r->next;
        /* A group that exited since reap() is reaped here with its code:
         * "process gone" (-1) is only for one that was not our child. */
        int ended = r->pid > 1 && exec_local_ended(r->pid, &code);
        if (r->ending) {
            if (r->pid == 0 && now - r->ending_since > EXIT_GRACE)
                group_ended(r, -1);
            else if (ended)
                group_ended(r, code);
            continue;
        }
        if (ended) {
            exited(r, code);
        } else if (now - r->last_seen > server.liveness) {
            weft_warn("run %" PRId64 " attempt %d silent for %.0f s; killing its group", r->id,
                      r->attempt, now - r->last_seen);
            stop_group(r);
            r->last_seen = now; /* the reaper or the next check ends it */
        }
    }
}

int monitor_cron(void)
{
    reap();
    follow_slurm();
    check_liveness();
    if (prepare_cron() < 0) weft_warn("%s", weft_last_error());
    int rc = plan_and_launch();
    /* What new runs did not take may join runs that train. */
    if (rc == 0 && admit_run_cron() < 0) rc = -1;
    return rc;
}

int monitor_recover(void)
{
    for (run_state_t st = RUN_LAUNCHED; st <= RUN_RUNNING; st++) {
        int64_t *ids;
        size_t n;
        if (store_runs_in_state(server.store, st, &ids, &n) < 0) return -1;
        for (size_t i = 0; i < n; i++) {
            store_run_row_t row;
            if (store_run_get(server.store, ids[i], &row) < 0) continue;
            live_run_t *r = calloc(1, sizeof *r);
            if (!r) break;
            r->id = row.id;
            r->attempt = row.attempt;
            size_t idlen = strlen(row.executor_id);
            if (!strncmp(row.executor_id, "slurm:", 6) && idlen - 6 < sizeof r->job_id)
                memcpy(r->job_id, row.executor_id + 6, idlen - 5);
            else
                r->pid = r->session = (pid_t)atoi(row.executor_id);
            const char *g = strstr(row.executor_id, " gpus=");
            if (g && !r->job_id[0]) exec_local_claim_gpus(server.exec, row.id, g + 6);
            r->ranks = row.ranks;
            r->acked = row.acked_seq;
            r->hello = st == RUN_RUNNING;
            r->launched = r->last_seen = weftd_now();
            if (monitor_follow(r) < 0) continue;
            if (admit_run_recover(r, row.spec_path) < 0) weft_warn("%s", weft_last_error());
            weft_info("run %" PRId64 " attempt %d (%s) carried over from before the restart", r->id,
                      r->attempt, row.executor_id);
        }
        free(ids);
    }
    return 0;
}
