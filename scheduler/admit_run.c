/* admit_run.c: continuous packing across submissions. A LoRA run whose
 * group already trains takes queued jobs it could have been planned with
 * (the same pack key: backbone, shared settings, resources) while it has a
 * free slot (fewer members running than a pack holds): each job joins the
 * run in the store, is appended to the run's spec file, and the group is
 * told ADMIT; its rank 0 reads the file again at the next step boundary
 * and the newcomer waits there for a slot as the others did. A relaunched
 * group reads the file with every member, so its resume needs nothing else.
 *
 * Invariants (docs/PROTOCOL.md, ADMIT):
 *  A1. The spec file of a live run lists every job the store gives the run,
 *      in the order they joined; after a restart, no other (a file written
 *      just before a crash, its commit lost, is cut back: admit_run_recover).
 *  A2. The file is only ever appended to, and written whole (temporary file,
 *      fsync, rename) before the commit that admits the job; ADMIT leaves
 *      only after that commit.
 *  A3. A job admitted into a group that ends without having taken it goes
 *      back to the queue (admit_run_done), never to "succeeded". */
#include "common/fsutil.h"
#include "common/log.h"
#include "jobs/spec.h"
#include "scheduler/published.h"
#include "scheduler/weftd.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Tenants a run's spec lists, those ended included: the planner's largest
 * pack, and a bound on what one worker group keeps in memory. */
#define RUN_MEMBERS_MAX 256

spec_t *admit_run_unit(int64_t job, const char *dir)
{
    store_job_row_t row;
    if (store_job_get(server.store, job, &row) < 0) return NULL;
    spec_t *unit = spec_parse(row.unit, strlen(row.unit), dir, row.name, NULL, NULL);
    if (!unit) weft_error_prefix("job %" PRId64 "'s stored spec", row.id);
    int v = unit ? published_resolve(unit, server.tenants_dir) : 0;
    if (v < 0) {
        weft_warn("job %" PRId64 ": its current version is unreadable, a fresh start and no "
                  "comparison: %s",
                  row.id, weft_last_error());
        store_job_event(server.store, row.id, "version", "{\"current\":null}");
    } else if (v == 0 && unit && unit->mode == SPEC_LORA && unit->tenants[0].train.cont) {
        weft_warn("job %" PRId64 ": continue = true but %s has no earlier version; a fresh start",
                  row.id, unit->tenants[0].name);
        store_job_event(server.store, row.id, "version",
                        "{\"warning\":\"continue = true but there is no earlier version; "
                        "a fresh start\"}");
    }
    store_job_row_free(&row);
    return unit;
}

/* Sends ADMIT {"tenants": names} to the group now (the commit that admitted
 * them is done); a group that cannot be reached is owed one (takes names). */
static void send_admit(live_run_t *r, json_t *names)
{
    char run[32], rid[WIRE_RID_MAX];
    snprintf(run, sizeof run, "%" PRId64, r->id);
    int n = wire_rid_format(rid, sizeof rid, run, r->attempt);
    json_t *body = json_pack("{s:o}", "tenants", names);
    if (n <= 0 || !body ||
        wire_send(server.router, (uint8_t *)rid, (size_t)n, WIRE_ADMIT, body, ZMQ_DONTWAIT) != 0)
        r->admit_owed = 1;
    json_decref(body);
}

/* Jobs of r in the store: those running, and its pack key when every one
 * is a LoRA job (else ""). */
static int members(const live_run_t *r, int *running, char key[160])
{
    store_job_row_t *rows;
    size_t n;
    if (store_run_jobs(server.store, r->id, &rows, &n) < 0) return -1;
    *running = 0;
    snprintf(key, 160, "%s", n ? rows[0].pack_key : "");
    for (size_t i = 0; i < n; i++) {
        *running += rows[i].state == JOB_RUNNING;
        if (strcmp(rows[i].mode, "lora")) key[0] = 0;
    }
    store_job_rows_free(rows, n);
    return 0;
}

static int lists(const spec_t *s, const char *name)
{
    for (int k = 0; k < s->ntenants; k++)
        if (!strcmp(s->tenants[k].name, name)) return 1;
    return 0;
}

/* One queued job into r: its unit resolved as at a launch, appended to the
 * run's spec (*run, replaced by the grown one), admitted in the store, the
 * file renamed into place before the commit. 1 admitted, 0 not (why is
 * logged), -1 on a store failure. */
static int admit_one(live_run_t *r, const char *path, spec_t **run, int cap,
                     const store_job_row_t *job)
{
    char dir[PATH_MAX];
    weft_dirname(path, dir, sizeof dir);
    spec_t *unit = admit_run_unit(job->id, dir);
    spec_t *grown = NULL;
    if (unit) {
        /* the same backbone by its content (the pack key); the run's path */
        snprintf(unit->model, sizeof unit->model, "%s", (*run)->model);
        const spec_t *parts[2] = {*run, unit};
        grown = spec_compose(parts, 2, (*run)->name, (*run)->output);
    }
    spec_destroy(&unit);
    if (!grown) {
        weft_warn("job %" PRId64 " cannot join run %" PRId64 ": %s", job->id, r->id,
                  weft_last_error());
        return 0;
    }
    /* More members than a pack holds: the worker trains cap at once. */
    if (grown->ntenants > cap &&
        (grown->resources.pack_size <= 0 || grown->resources.pack_size > cap))
        grown->resources.pack_size = cap;
    int written = 0;
    if (store_begin(server.store) < 0) {
        spec_destroy(&grown);
        return -1;
    }
    if (store_run_admit(server.store, r->id, job->id) < 0 ||
        !(written = spec_write_file(grown, path) == 0) || store_commit(server.store) < 0) {
        weft_warn("job %" PRId64 " cannot join run %" PRId64 ": %s", job->id, r->id,
                  weft_last_error());
        store_rollback(server.store);
        if (written && spec_write_file(*run, path) < 0) /* A1: the file as the store has it */
            weft_warn("run %" PRId64 ": %s lists job %" PRId64 " the store does not give it: %s",
                      r->id, path, job->id, weft_last_error());
        spec_destroy(&grown);
        return 0;
    }
    spec_destroy(run);
    *run = grown;
    int64_t *jobs = realloc(r->jobs, (size_t)(r->njobs + 1) * sizeof *jobs);
    if (jobs) r->jobs = jobs;
    char **names = realloc(r->names, (size_t)(r->njobs + 1) * sizeof *names);
    if (names) r->names = names;
    if (jobs && names && (names[r->njobs] = strdup(job->name))) jobs[r->njobs++] = job->id;
    weft_info("job %" PRId64 " (%s) admitted into run %" PRId64 " while it trains (tenant %d of "
              "its spec, at most %d at once)",
              job->id, job->name, r->id, grown->ntenants, cap);
    send_admit(r, json_pack("[s]", job->name));
    return 1;
}

int admit_run_cron(void)
{
    if (server.no_refill) return 0;
    for (live_run_t *r = server.runs; r; r = r->next) {
        int running;
        char key[160];
        /* A run without a member running is ending: nothing joins it. */
        if (!r->hello || r->ending || members(r, &running, key) < 0) continue;
        if (!key[0] || running < 1 || running >= server.pack_size) continue;
        store_job_row_t *queued;
        size_t nq;
        if (store_jobs_queued_key(server.store, key, RUN_MEMBERS_MAX, &queued, &nq) < 0) return -1;
        store_run_row_t row = {0};
        spec_t *run = nq && store_run_get(server.store, r->id, &row) == 0
                          ? spec_load(row.spec_path, NULL, NULL)
                          : NULL;
        if (nq && !run)
            weft_warn("run %" PRId64 ": its spec cannot be read to admit a job: %s", r->id,
                      weft_last_error());
        int cap = server.pack_size;
        if (run && run->resources.pack_size > 0 && run->resources.pack_size < cap)
            cap = run->resources.pack_size;
        int rc = 0;
        for (size_t i = 0; run && rc >= 0 && i < nq && running < cap; i++) {
            if (run->ntenants >= RUN_MEMBERS_MAX) break;
            if (strcmp(queued[i].mode, "lora") || lists(run, queued[i].name)) continue;
            rc = admit_one(r, row.spec_path, &run, cap, &queued[i]);
            running += rc > 0;
        }
        spec_destroy(&run);
        store_job_rows_free(queued, nq);
        if (rc < 0) return -1;
    }
    return 0;
}

void admit_run_sync(live_run_t *r)
{
    json_t *running = json_array(), *cancelled = json_array();
    for (int i = 0; i < r->njobs; i++) {
        store_job_row_t row;
        if (store_job_get(server.store, r->jobs[i], &row) < 0) continue;
        if (row.state == JOB_RUNNING || row.state == JOB_CANCELLED)
            json_array_append_new(row.state == JOB_RUNNING ? running : cancelled,
                                  json_string(r->names[i]));
        store_job_row_free(&row);
    }
    r->admit_owed = 0;
    weft_info("run %" PRId64 " attempt %d: ADMIT again for its %zu running member(s)", r->id,
              r->attempt, json_array_size(running));
    send_admit(r, running);
    /* after the ADMIT, so that a member the group takes now hears it */
    if (json_array_size(cancelled) && !r->admit_owed) {
        char run[32], rid[WIRE_RID_MAX];
        snprintf(run, sizeof run, "%" PRId64, r->id);
        int n = wire_rid_format(rid, sizeof rid, run, r->attempt);
        json_t *body = json_pack("{s:O}", "tenants", cancelled);
        if (n > 0 && body)
            wire_send(server.router, (uint8_t *)rid, (size_t)n, WIRE_CANCEL, body, ZMQ_DONTWAIT);
        json_decref(body);
    }
    json_decref(cancelled);
}

int admit_run_done(const live_run_t *r, const json_t *tenants)
{
    for (int i = 0; i < r->njobs; i++) {
        int listed = 0;
        size_t k;
        json_t *t;
        json_array_foreach(tenants, k, t)
        {
            const char *name = json_string_value(json_object_get(t, "name"));
            listed |= name && !strcmp(name, r->names[i]);
        }
        store_job_row_t row;
        if (listed || store_job_get(server.store, r->jobs[i], &row) < 0) continue;
        job_state_t st = row.state;
        store_job_row_free(&row);
        /* the members it was launched with end as the run does */
        if (st != JOB_RUNNING || store_job_admitted(server.store, r->jobs[i]) != r->id) continue;
        weft_info("run %" PRId64 " ended before its group took job %" PRId64
                  " (%s): it is queued again",
                  r->id, r->jobs[i], r->names[i]);
        if (store_job_requeue(server.store, r->jobs[i],
                              "its run ended before the group took it; queued again") < 0)
            return -1;
    }
    return 0;
}

int admit_run_recover(live_run_t *r, const char *spec_path)
{
    spec_t *s = spec_load(spec_path, NULL, NULL);
    if (!s || s->mode != SPEC_LORA) {
        spec_destroy(&s);
        return 0;
    }
    /* an ADMIT sent before the restart may never have arrived */
    for (int i = 0; i < r->njobs; i++)
        if (store_job_admitted(server.store, r->jobs[i]) == r->id) r->admit_owed = 1;
    int keep = 0;
    for (int k = 0; k < s->ntenants; k++) {
        int known = 0;
        for (int i = 0; i < r->njobs; i++) known |= !strcmp(r->names[i], s->tenants[k].name);
        if (known)
            s->tenants[keep++] = s->tenants[k];
        else
            weft_warn("run %" PRId64 ": %s listed %s, which never joined it (its admission was "
                      "not committed); it is left out",
                      r->id, spec_path, s->tenants[k].name);
    }
    int rc = 0;
    if (keep < s->ntenants && keep > 0) {
        s->ntenants = keep;
        rc = spec_write_file(s, spec_path);
    }
    spec_destroy(&s);
    return rc;
}
