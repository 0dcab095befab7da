/* launch.c: new runs. Pending runs (retries) are launched again, and the
 * planner's packs of queued jobs become runs while slots last: each run's
 * spec file written out (the composed pack, or the unit), a worker key
 * minted, its group started by the local or the Slurm executor and added to
 * the live runs (monitor.c). */
#include "common/fsutil.h"
#include "common/log.h"
#include "jobs/spec.h"
#include "scheduler/planner.h"
#include "scheduler/published.h"
#include "scheduler/weftd.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int used_slots(void)
{
    int used = 0;
    for (live_run_t *r = server.runs; r; r = r->next) used += r->ranks;
    return used;
}

/* Writes a run's spec file: the composed pack (lora) or the unit (full). */
static int write_run_spec(int64_t run, const plan_run_t *p, char *path, size_t pathsize)
{
    char dir[PATH_MAX], out[PATH_MAX], name[32];
    snprintf(name, sizeof name, "%" PRId64, run);
    if (weft_path_join(dir, sizeof dir, server.runs_dir, name) < 0 || weft_mkdir_p(dir, 0700) < 0 ||
        weft_path_join(out, sizeof out, dir, "out") < 0 ||
        weft_path_join(path, pathsize, dir, "run.cfg") < 0)
        return -1;
    spec_t **units = calloc(p->n, sizeof *units);
    if (!units) return weft_error("out of memory");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->n; i++)
        if (!(units[i] = admit_run_unit(p->jobs[i], dir))) rc = -1;
    spec_t *runspec = NULL;
    if (rc == 0) {
        char rname[48];
        snprintf(rname, sizeof rname, "run-%" PRId64, run);
        if (units[0]->mode == SPEC_LORA) {
            runspec = spec_compose((const spec_t *const *)units, (int)p->n, rname, out);
            /* More members than a pack holds (continuous packing): the
             * worker trains pack_size at once and admits the rest as slots
             * free; a unit's own smaller pack_size stands. */
            if (runspec && (int)p->n > server.pack_size &&
                (runspec->resources.pack_size <= 0 ||
                 runspec->resources.pack_size > server.pack_size))
                runspec->resources.pack_size = server.pack_size;
        } else {
            runspec = spec_dup(units[0]);
            if (runspec && (snprintf(runspec->name, sizeof runspec->name, "%s", rname) >=
                                (int)sizeof runspec->name ||
                            snprintf(runspec->output, sizeof runspec->output, "%s", out) >=
                                (int)sizeof runspec->output))
                rc = weft_error("run folder path too long: %s", out);
            /* a full run's one tenant is named after it */
            if (runspec)
                snprintf(runspec->tenants[0].name, sizeof runspec->tenants[0].name, "%s",
                         runspec->name);
        }
        if (rc == 0 && (!runspec || spec_write_file(runspec, path) < 0)) rc = -1;
    }
    spec_destroy(&runspec);
    for (size_t i = 0; i < p->n; i++) spec_destroy(&units[i]);
    free(units);
    return rc;
}

static int launch(int64_t run)
{
    store_run_row_t row;
    if (store_run_get(server.store, run, &row) < 0) return -1;
    char log[PATH_MAX], name[64];
    snprintf(name, sizeof name, "%" PRId64 "/attempt-%d.log", run, row.attempt);
    if (weft_path_join(log, sizeof log, server.runs_dir, name) < 0) return -1;
    store_job_row_t *jobs;
    size_t n;
    if (store_run_jobs(server.store, run, &jobs, &n) < 0) return -1;
    int threads = 1;
    store_job_rows_free(jobs, n);
    /* A device = "cuda" run holds one GPU per rank (resources.gpus). */
    int ngpus = 0;
    spec_t *rs = spec_load(row.spec_path, NULL, NULL);
    if (rs) ngpus = rs->resources.gpus;
    spec_destroy(&rs);
    /* Waiting for GPUs: no key minted yet, the run stays pending. */
    if (!server.slurm && ngpus > 0 && exec_local_gpus_total(server.exec) >= ngpus &&
        exec_local_gpus_free(server.exec) < ngpus)
        return 1;
    if (weftd_worker_key(run) < 0) return -1;
    pid_t pid = 0;
    char job_id[32] = "", exec_id[64], gpus[160] = "";
    if (server.slurm) {
        if (exec_slurm_launch(server.slurm, run, row.attempt, row.ranks, threads, ngpus,
                              row.spec_path, log, job_id, sizeof job_id) < 0)
            return -1;
        snprintf(exec_id, sizeof exec_id, "slurm:%s", job_id);
    } else {
        int rc = exec_local_launch_gpus(server.exec, run, row.attempt, row.ranks, threads, ngpus,
                                        row.spec_path, log, &pid, gpus, sizeof gpus);
        if (rc != 0) return rc;
        /* The GPUs ride in the executor id, so that a restarted weftd knows
         * them ("PID gpus=0,1"; atoi reads the pid). */
        if (gpus[0])
            snprintf(exec_id, sizeof exec_id, "%d gpus=%.40s", (int)pid, gpus);
        else
            snprintf(exec_id, sizeof exec_id, "%d", (int)pid);
    }
    if (store_begin(server.store) < 0 || store_run_launched(server.store, run, exec_id) < 0 ||
        store_commit(server.store) < 0) {
        store_rollback(server.store);
        if (server.slurm)
            exec_slurm_cancel(server.slurm, job_id);
        else
            exec_local_signal(pid, SIGKILL);
        return -1;
    }
    live_run_t *r = calloc(1, sizeof *r);
    if (!r) return weft_error("out of memory");
    r->id = run;
    r->attempt = row.attempt;
    r->pid = r->session = pid;
    snprintf(r->job_id, sizeof r->job_id, "%s", job_id);
    r->ranks = row.ranks;
    r->launched = r->last_seen = weftd_now();
    r->acked = 0;
    if (monitor_follow(r) < 0) return -1;
    weft_info("run %" PRId64 " attempt %d: %zu job(s), %d rank(s), %s %s, log %s", run, row.attempt,
              n, row.ranks, server.slurm ? "Slurm job" : "pid", server.slurm ? job_id : exec_id,
              log);
    return 0;
}

/* Relaunches pending runs (retries) and plans new ones while slots last. */
int plan_and_launch(void)
{
    int64_t *pending;
    size_t np;
    if (store_runs_in_state(server.store, RUN_PENDING, &pending, &np) < 0) return -1;
    for (size_t i = 0; i < np; i++) {
        store_run_row_t row;
        if (store_run_get(server.store, pending[i], &row) < 0) continue;
        if (row.ranks > server.slots - used_slots()) break;
        if (launch(pending[i]) < 0) weft_warn("run %" PRId64 ": %s", pending[i], weft_last_error());
    }
    free(pending);
    int free_slots = server.slots - used_slots();
    if (free_slots <= 0) return 0;
    store_job_row_t *queued;
    size_t nq;
    if (store_jobs_queued(server.store, 4096, &queued, &nq) < 0) return -1;
    plan_run_t plans[16];
    size_t n = server.no_refill
                   ? planner_pack(queued, nq, server.pack_size, free_slots, plans, 16)
                   : planner_pack_refill(queued, nq, server.pack_size, free_slots, plans, 16);
    for (size_t i = 0; i < n; i++) {
        char spec_path[PATH_MAX];
        if (store_begin(server.store) < 0) break;
        int64_t run = store_run_create(server.store, plans[i].jobs, plans[i].n, plans[i].ranks,
                                       plans[i].max_attempts);
        int ok = run > 0 && write_run_spec(run, &plans[i], spec_path, sizeof spec_path) == 0 &&
                 store_run_set_spec(server.store, run, spec_path) == 0;
        if (!ok) {
            weft_warn("cannot plan a run of %zu job(s): %s", plans[i].n, weft_last_error());
            store_rollback(server.store);
            /* A unit that cannot be written will not get better: fail it. */
            if (store_begin(server.store) == 0) {
                for (size_t k = 0; k < plans[i].n; k++)
                    store_job_transition(server.store, plans[i].jobs[k], JOB_FAILED,
                                         weft_last_error());
                store_commit(server.store);
            }
            continue;
        }
        if (store_commit(server.store) < 0) {
            store_rollback(server.store);
            break;
        }
        if (launch(run) < 0) weft_warn("run %" PRId64 ": %s", run, weft_last_error());
    }
    store_job_rows_free(queued, nq);
    return 0;
}
