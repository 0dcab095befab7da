/* monitor.c: the life of runs in weftd: worker messages (HELLO, HEARTBEAT,
 * METRIC, CHECKPOINT, DONE, FAIL) with their sequence numbers and ACKs,
 * reaping of worker groups, liveness, retries from checkpoints, and the
 * planner's new runs written out and launched. */
#include "common/auth.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "model/peft.h"
#include "scheduler/published.h"
#include "scheduler/planner.h"
#include "jobs/spec.h"
#include "scheduler/tenant_path.h"
#include "scheduler/weftd.h"
#include "scheduler/zap.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sysexits.h>

#define EXIT_REQUEUE EX_TEMPFAIL
#define EXIT_GRACE   3.0 /* seconds a group that exited 0 has to deliver DONE */

static live_run_t *find_run(int64_t id)
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
    for (size_t i = 0; r->jobs && r->names && i < n; i++) {
        r->jobs[i] = rows[i].id;
        r->names[i] = strdup(rows[i].name);
    }
    r->njobs = (int)n;
    store_job_rows_free(rows, n);
    return 0;
}

/* The job a worker's task name stands for. A run of one job (every full
 * run) names its task after the run spec, so its only job is meant. */
static int64_t job_of(const live_run_t *r, const char *name)
{
    for (int i = 0; name && i < r->njobs; i++)
        if (!strcmp(r->names[i], name)) return r->jobs[i];
    return r->njobs == 1 && name ? r->jobs[0] : 0;
}

static int used_slots(void)
{
    int used = 0;
    for (live_run_t *r = server.runs; r; r = r->next) used += r->ranks;
    return used;
}

static void rid_of(const live_run_t *r, uint8_t *rid, size_t *len)
{
    char run[32];
    snprintf(run, sizeof run, "%" PRId64, r->id);
    int n = wire_rid_format((char *)rid, WIRE_RID_MAX, run, r->attempt);
    *len = n > 0 ? (size_t)n : 0;
}

/* Tells a group to drop these tenants (after the round's commit). */
static void send_cancel(const live_run_t *r, json_t *tenants)
{
    uint8_t rid[WIRE_RID_MAX];
    size_t len;
    rid_of(r, rid, &len);
    weftd_reply(rid, len, WIRE_CANCEL, json_pack("{s:o}", "tenants", tenants));
}

/* Cancelled jobs of a run, as a JSON array of names (NULL when none). */
static json_t *cancelled_names(const live_run_t *r)
{
    json_t *names = NULL;
    for (int i = 0; i < r->njobs; i++) {
        store_job_row_t row;
        if (store_job_get(server.store, r->jobs[i], &row) < 0) continue;
        if (row.state == JOB_CANCELLED) {
            if (!names) names = json_array();
            json_array_append_new(names, json_string(row.name));
        }
        store_job_row_free(&row);
    }
    return names;
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
    live_run_t *r = find_run(run);
    store_run_row_t row;
    if (store_run_get(server.store, run, &row) < 0) return -1;
    if (!run_jobs_final(run)) {
        if (r && r->hello) {
            for (int i = 0; i < r->njobs; i++)
                if (r->jobs[i] == job) send_cancel(r, json_pack("[s]", r->names[i]));
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

static json_t *ack(const live_run_t *r, int rewind)
{
    json_t *a = json_pack("{s:I}", "seq", (json_int_t)r->acked);
    if (rewind) json_object_set_new(a, "rewind", json_true());
    return a;
}

/* The body without its transport fields, as stored text. */
static char *metric_text(const json_t *body)
{
    json_t *copy = json_deep_copy(body);
    json_object_del(copy, "seq");
    json_object_del(copy, "acked");
    json_object_del(copy, "from_attempt");
    char *t = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(copy);
    return t;
}

static int on_metric(live_run_t *r, const json_t *b)
{
    const char *tenant = wire_get_str(b, "tenant");
    int64_t step;
    int64_t job = job_of(r, tenant);
    if (!job || wire_get_int(b, "step", &step) < 0) {
        weft_warn("run %" PRId64 ": METRIC for unknown tenant '%s' or without step; dropped", r->id,
                  tenant ? tenant : "");
        return 0;
    }
    const char *kind = wire_get_str(b, "kind");
    if (!kind)
        kind = json_object_get(b, "val_loss") && !json_object_get(b, "loss") ? "eval" : "train";
    if (strcmp(kind, "train") && strcmp(kind, "eval")) kind = "train";
    char *text = metric_text(b);
    int rc = text ? store_metric_add(server.store, job, step, kind, text) : -1;
    free(text);
    if (rc == 1 && !strcmp(kind, "eval")) rc = early_stop_on_eval(r, job, tenant, step, b);
    return rc < 0 ? -1 : 0;
}

static int on_checkpoint(live_run_t *r, const json_t *b)
{
    char *text = metric_text(b);
    int rc = 0;
    for (int i = 0; text && rc == 0 && i < r->njobs; i++)
        rc = store_job_event(server.store, r->jobs[i], "checkpoint", text);
    free(text);
    return rc;
}

/* A tenant's own end inside a live run: succeeded, or failed alone (NaN). */
static int end_tenant(live_run_t *r, const char *name, job_state_t to, const char *reason)
{
    int64_t job = job_of(r, name);
    if (!job) return 0;
    store_job_row_t row;
    if (store_job_get(server.store, job, &row) < 0) return -1;
    job_state_t st = row.state;
    store_job_row_free(&row);
    return st == JOB_RUNNING ? store_job_transition(server.store, job, to, reason) : 0;
}

/* Copies src to dst through dst.tmp, fsync and rename (a hard link when
 * both sit on one file system). */
static int publish_file(const char *src, const char *dst)
{
    char tmp[PATH_MAX + 8], dir[PATH_MAX];
    weft_dirname(dst, dir, sizeof dir);
    if (snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= (int)sizeof tmp || weft_mkdir_p(dir, 0700) < 0)
        return -1;
    unlink(tmp);
    if (link(src, tmp) < 0) {
        FILE *in = fopen(src, "rb"), *out = in ? fopen(tmp, "wb") : NULL;
        char buf[1 << 16];
        size_t n;
        int bad = !in || !out;
        while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0) bad = fwrite(buf, 1, n, out) != n;
        if (in) fclose(in);
        if (out && fclose(out) != 0) bad = 1;
        if (bad) {
            unlink(tmp);
            return weft_error("cannot copy %s to %s", src, tmp);
        }
    }
    if (weft_fsync_path(tmp) < 0 || weft_rename_durable(tmp, dst) < 0) return -1;
    return 0;
}

/* A destination inside HOME/tenants/NAME is written through folder
 * descriptors that follow no link below it (tenant_publish); other
 * destinations are the admin's. */
static int publish_to(const char *src, const char *dst)
{
    size_t n = strlen(server.tenants_dir);
    if (!strncmp(dst, server.tenants_dir, n) && dst[n] == '/')
        return tenant_publish(server.tenants_dir, src, dst);
    return publish_file(src, dst);
}

/* The adapter published at dst, as a PEFT folder beside it (dst's folder
 * /peft), written as peft.tmp and renamed over any earlier one. */
static int publish_peft(const char *dst, const char *model, char *peft, size_t size)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 16], old[PATH_MAX + 16];
    weft_dirname(dst, dir, sizeof dir);
    if (snprintf(peft, size, "%s/peft", dir) >= (int)size ||
        snprintf(tmp, sizeof tmp, "%s/peft.tmp", dir) >= (int)sizeof tmp ||
        snprintf(old, sizeof old, "%s/peft.old", dir) >= (int)sizeof old)
        return weft_error("%s: path too long", dir);
    weft_rm_rf(tmp);
    weft_rm_rf(old);
    if (peft_export(dst, tmp, 0, model) < 0) {
        weft_rm_rf(tmp);
        return -1;
    }
    if (access(peft, F_OK) == 0 && rename(peft, old) < 0)
        return weft_error("cannot move the earlier %s aside: %s", peft, strerror(errno));
    if (weft_rename_durable(tmp, peft) < 0) return -1;
    weft_rm_rf(old);
    return 0;
}

/* A succeeded LoRA job's version: the folder its worker staged in
 * <run>/out/<tenant>/new/ becomes <output>/<tenant>/v<N>/, current when the
 * worker judged it no worse than the current one (published.h). */
static int publish_version(live_run_t *r, int64_t job, const char *name, const spec_t *s)
{
    char staged[PATH_MAX], dst[PATH_MAX];
    if (snprintf(staged, sizeof staged, "%s/%" PRId64 "/out/%s/new", server.runs_dir, r->id,
                 name) >= (int)sizeof staged ||
        snprintf(dst, sizeof dst, "%s/%s", s->output, name) >= (int)sizeof dst)
        return weft_error("output path too long: %s", s->output);
    json_t *d = NULL;
    if (published_install(server.tenants_dir, staged, dst, s->tenants[0].train.keep_versions, r->id,
                          &d) < 0)
        return -1;
    weft_info("run %" PRId64 ": %s: v%d %s", r->id, name,
              (int)json_integer_value(json_object_get(d, "version")),
              json_is_true(json_object_get(d, "promoted")) ? "promoted" : "not promoted");
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    int rc = text ? store_job_event(server.store, job, "output", text) : -1;
    free(text);
    return rc < 0 ? -2 : 0;
}

/* A succeeded job's output goes where its spec said: <output>/<tenant>/
 * v<N>/ (lora, publish_version), or <output>/model.h5 (full). 0 when it is
 * there; -1 with weft_error set when it cannot be (the job has then no
 * result). */
static int publish(live_run_t *r, int64_t job, const char *name, const json_t *done)
{
    store_job_row_t row;
    if (store_job_get(server.store, job, &row) < 0) return -1;
    spec_t *s = spec_parse(row.unit, strlen(row.unit), "/", row.name, NULL, NULL);
    store_job_row_free(&row);
    if (!s) return -1;
    if (s->mode == SPEC_LORA && s->ntenants == 1) {
        int rc = publish_version(r, job, name, s);
        spec_destroy(&s);
        return rc;
    }
    char src[PATH_MAX], dst[PATH_MAX];
    int lora = s->mode == SPEC_LORA;
    int ok = snprintf(src, sizeof src, "%s/%" PRId64 "/out/%s%s", server.runs_dir, r->id,
                      lora ? name : "", lora ? "/adapter.h5" : "model.h5") < (int)sizeof src &&
             snprintf(dst, sizeof dst, "%s/%s%s", s->output, lora ? name : "",
                      lora ? "/adapter.h5" : "model.h5") < (int)sizeof dst;
    if (!ok) weft_error("output path too long: %s", s->output);
    char model[PATH_MAX];
    snprintf(model, sizeof model, "%s", s->model);
    spec_destroy(&s);
    if (ok && publish_to(src, dst) < 0) ok = 0;
    if (!ok) return -1;
    char detail[2 * PATH_MAX + 64], peft[PATH_MAX + 8] = "";
    if (lora && publish_peft(dst, model, peft, sizeof peft) < 0) {
        weft_warn("run %" PRId64 ": %s: no PEFT copy: %s", r->id, name, weft_last_error());
        peft[0] = 0;
    }
    json_t *d = json_pack("{s:s}", "output", dst);
    if (json_is_integer(json_object_get(done, "best_step")))
        json_object_set(d, "best_step", json_object_get(done, "best_step"));
    if (peft[0]) json_object_set_new(d, "peft", json_string(peft));
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    snprintf(detail, sizeof detail, "%s", text ? text : "{}");
    free(text);
    return store_job_event(server.store, job, "output", detail) < 0 ? -2 : 0;
}

/* One tenant's end as the group reports it: a succeeded or stopped tenant's
 * adapter is published and its job ends; a job already final is left as it
 * is (a resumed group repeats what it had announced). -1 on a store error. */
static int tenant_ended(live_run_t *r, const char *name, const char *status, const char *why,
                        const json_t *done)
{
    int64_t job = job_of(r, name);
    if (!job) return 0;
    if (!strcmp(status, "failed")) return end_tenant(r, name, JOB_FAILED, why ? why : "failed");
    if (!strcmp(status, "cancelled")) return end_tenant(r, name, JOB_CANCELLED, "cancelled");
    int stopped = !strcmp(status, "stopped");
    if (!stopped && strcmp(status, "succeeded")) return 0;
    store_job_row_t row;
    if (store_job_get(server.store, job, &row) < 0) return -1;
    job_state_t st = row.state;
    store_job_row_free(&row);
    if (st != JOB_RUNNING) return 0;
    /* A result that cannot be published is no success: the job fails with
     * why (it is not retried; the cause is the output). */
    int rc = publish(r, job, name, done);
    if (rc == -2) return -1;
    if (rc < 0) {
        char reason[512];
        snprintf(reason, sizeof reason, "cannot publish the result: %s", weft_last_error());
        weft_warn("run %" PRId64 ": %s: %s", r->id, name, reason);
        return end_tenant(r, name, JOB_FAILED, reason);
    }
    return end_tenant(r, name, stopped ? JOB_STOPPED : JOB_SUCCEEDED,
                      stopped ? "stopped early" : "done");
}

static int on_done(live_run_t *r, const json_t *b)
{
    /* A DONE naming a tenant: that tenant has ended; the pack goes on. */
    const char *one = wire_get_str(b, "tenant");
    if (one) {
        const char *status = wire_get_str(b, "status");
        return status ? tenant_ended(r, one, status, wire_get_str(b, "error"), b) : 0;
    }
    json_t *tenants = json_object_get(b, "tenants");
    size_t i;
    json_t *t;
    json_array_foreach(tenants, i, t)
    {
        const char *name = wire_get_str(t, "name");
        const char *status = wire_get_str(t, "status");
        if (!name || !status) continue;
        if (tenant_ended(r, name, status, wire_get_str(t, "error"), t) < 0) return -1;
    }
    store_run_row_t row;
    if (store_run_get(server.store, r->id, &row) < 0) return -1;
    if (row.state == RUN_LAUNCHED || row.state == RUN_RUNNING)
        if (store_run_finish(server.store, r->id, RUN_DONE, "done") < 0) return -1;
    r->ending = 1;
    r->ending_since = weftd_now();
    return 0;
}

static int on_fail(live_run_t *r, const json_t *b)
{
    const char *tenant = wire_get_str(b, "tenant");
    const char *why = wire_get_str(b, "error");
    if (tenant) return end_tenant(r, tenant, JOB_FAILED, why ? why : "failed");
    /* A group failure: the exit code that follows decides the retry. */
    char *text = metric_text(b);
    int rc = 0;
    for (int i = 0; text && rc == 0 && i < r->njobs; i++)
        rc = store_job_event(server.store, r->jobs[i], "fail", text);
    free(text);
    return rc;
}

int monitor_handle(const wire_msg_t *m)
{
    char run_s[WIRE_RUN_MAX + 1];
    int64_t attempt;
    if (wire_rid_parse(m->rid, m->rid_len, run_s, sizeof run_s, &attempt) < 0) return 0;
    /* Over CURVE a worker posts with its run's key (worker:RUN) and only for
     * that run; admin (ipc) may too; tenant keys may not. */
    const char *key_run = auth_role_run(m->user_id);
    if (m->user_id[0] && strcmp(m->user_id, "admin") && (!key_run || strcmp(key_run, run_s))) {
        server.rejected[WIRE_REJ_ROLE]++;
        weftd_reply_error(m->rid, m->rid_len, "permission",
                          "%s for run %s: this key (%s) may not post for that run",
                          wire_cmd_name(m->cmd), run_s, m->user_id);
        return 0;
    }
    char *end;
    int64_t id = strtoll(run_s, &end, 10);
    live_run_t *r = *end ? NULL : find_run(id);
    if (!r || r->attempt != attempt || r->ending) {
        server.stale++; /* from an old attempt or an unknown run: dropped */
        return 0;
    }
    r->last_seen = weftd_now();
    if (m->cmd == WIRE_HEARTBEAT) {
        weftd_reply(m->rid, m->rid_len, WIRE_ACK, ack(r, 0));
        return 0;
    }
    int64_t seq, peer = -1;
    if (wire_get_int(m->body, "seq", &seq) < 0) return 0;
    if (json_object_get(m->body, "acked")) wire_get_int(m->body, "acked", &peer);
    int verdict = wire_seq_accept(&r->acked, seq, peer);
    if (verdict != WIRE_SEQ_NEW) {
        weftd_reply(m->rid, m->rid_len, WIRE_ACK, ack(r, verdict == WIRE_SEQ_GAP));
        return 0;
    }
    int rc = 0;
    switch (m->cmd) {
    case WIRE_HELLO: {
        int ok = store_run_hello(server.store, id, (int)attempt);
        if (ok < 0) return -1;
        r->hello = ok;
        json_t *names = cancelled_names(r);
        if (names) send_cancel(r, names);
        early_stop_hello(r);
        break;
    }
    case WIRE_METRIC:
        rc = on_metric(r, m->body);
        break;
    case WIRE_CHECKPOINT:
        rc = on_checkpoint(r, m->body);
        break;
    case WIRE_DONE:
        rc = on_done(r, m->body);
        break;
    case WIRE_FAIL:
        rc = on_fail(r, m->body);
        break;
    default:
        break;
    }
    if (rc < 0 || store_run_ack(server.store, id, r->acked) < 0) return -1;
    weftd_reply(m->rid, m->rid_len, WIRE_ACK, ack(r, 0));
    return 0;
}

/* Reloads what memory holds ahead of the store after a rolled-back round. */
void monitor_reload(void)
{
    for (live_run_t *r = server.runs; r; r = r->next) {
        store_run_row_t row;
        if (store_run_get(server.store, r->id, &row) == 0) r->acked = row.acked_seq;
    }
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
    for (size_t i = 0; rc == 0 && i < p->n; i++) {
        store_job_row_t row;
        if (store_job_get(server.store, p->jobs[i], &row) < 0) {
            rc = -1;
            break;
        }
        units[i] = spec_parse(row.unit, strlen(row.unit), dir, row.name, NULL, NULL);
        if (!units[i]) rc = weft_error_prefix("job %" PRId64 "'s stored spec", row.id);
        int v = units[i] ? published_resolve(units[i], server.tenants_dir) : 0;
        if (v < 0) {
            weft_warn("job %" PRId64 ": its current version is unreadable, a fresh start and no "
                      "comparison: %s",
                      row.id, weft_last_error());
            store_job_event(server.store, row.id, "version", "{\"current\":null}");
        } else if (v == 0 && units[i] && units[i]->mode == SPEC_LORA &&
                   units[i]->tenants[0].train.cont) {
            weft_warn("job %" PRId64 ": continue = true but %s has no earlier version; a fresh "
                      "start",
                      row.id, units[i]->tenants[0].name);
            store_job_event(server.store, row.id, "version",
                            "{\"warning\":\"continue = true but there is no earlier version; "
                            "a fresh start\"}");
        }
        store_job_row_free(&row);
    }
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
    if (load_jobs(r) < 0) {
        free_run(r);
        return -1;
    }
    r->next = server.runs;
    server.runs = r;
    weft_info("run %" PRId64 " attempt %d: %zu job(s), %d rank(s), %s %s, log %s", run, row.attempt,
              n, row.ranks, server.slurm ? "Slurm job" : "pid", server.slurm ? job_id : exec_id,
              log);
    return 0;
}

/* Relaunches pending runs (retries) and plans new ones while slots last. */
static int plan_and_launch(void)
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

int monitor_cron(void)
{
    reap();
    follow_slurm();
    check_liveness();
    if (prepare_cron() < 0) weft_warn("%s", weft_last_error());
    return plan_and_launch();
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
            if (load_jobs(r) < 0) {
                free_run(r);
                continue;
            }
            r->next = server.runs;
            server.runs = r;
            weft_info("run %" PRId64 " attempt %d (%s) carried over from before the restart", r->id,
                      r->attempt, row.executor_id);
        }
        free(ids);
    }
    return 0;
}
