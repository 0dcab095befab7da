/* monitor_msg.c: what a worker group says to weftd and what weftd answers.
 * Its messages (HELLO, HEARTBEAT, METRIC, CHECKPOINT, DONE, FAIL) carry
 * sequence numbers: each new one is stored in the round's transaction and
 * ACKed after its commit, a repeat is ACKed again, a gap asks for a rewind.
 * A tenant's end publishes its result (publish.c); CANCEL tells a group
 * which of its tenants to drop. */
#include "common/auth.h"
#include "common/log.h"
#include "scheduler/weftd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The job a worker's task name stands for. A run of one job (every full
 * run) names its task after the run spec, so its only job is meant. */
static int64_t job_of(const live_run_t *r, const char *name)
{
    for (int i = 0; name && i < r->njobs; i++)
        if (!strcmp(r->names[i], name)) return r->jobs[i];
    return r->njobs == 1 && name ? r->jobs[0] : 0;
}

static void rid_of(const live_run_t *r, uint8_t *rid, size_t *len)
{
    char run[32];
    snprintf(run, sizeof run, "%" PRId64, r->id);
    int n = wire_rid_format((char *)rid, WIRE_RID_MAX, run, r->attempt);
    *len = n > 0 ? (size_t)n : 0;
}

/* Tells a group to drop these tenants (after the round's commit). */
void monitor_send_cancel(const live_run_t *r, json_t *tenants)
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
    int rc = publish_result(r, job, name, done);
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
    if (admit_run_done(r, tenants) < 0) return -1;
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
    live_run_t *r = *end ? NULL : monitor_find_run(id);
    if (!r || r->attempt != attempt || r->ending) {
        server.stale++; /* from an old attempt or an unknown run: dropped */
        return 0;
    }
    r->last_seen = weftd_now();
    if (r->admit_owed && r->hello && m->cmd != WIRE_HELLO) admit_run_sync(r);
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
        r->admit_owed = 0; /* a new attempt read the run's spec whole */
        json_t *names = cancelled_names(r);
        if (names) monitor_send_cancel(r, names);
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
