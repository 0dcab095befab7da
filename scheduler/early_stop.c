/* early_stop.c: ASHA in weftd. Each evaluation a trial of an early-stopped
 * sweep reports at one of its rungs is judged against the trials of its
 * sweep (same submission and tenant) that have reached that rung so far
 * (asha.h); the decision is stored once, as a "rung" metric of the job at
 * that step, and a stop is ordered with STOP to the trial's group. A new
 * attempt of the group is told again in answer to its HELLO. */
#include "scheduler/asha.h"
#include "common/log.h"
#include "jobs/spec.h"
#include "scheduler/weftd.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void send_stop(const live_run_t *r, json_t *tenants)
{
    uint8_t rid[WIRE_RID_MAX];
    char run[32];
    snprintf(run, sizeof run, "%" PRId64, r->id);
    int n = wire_rid_format((char *)rid, WIRE_RID_MAX, run, r->attempt);
    if (n <= 0) {
        json_decref(tenants);
        return;
    }
    weftd_reply(rid, (size_t)n, WIRE_STOP, json_pack("{s:o}", "tenants", tenants));
}

int early_stop_on_eval(const live_run_t *r, int64_t job, const char *name, int64_t step,
                       const json_t *body)
{
    json_t *v = json_object_get(body, "val_loss");
    if (!json_is_number(v)) return 0;
    double loss = json_number_value(v);
    store_job_row_t row;
    if (store_job_get(server.store, job, &row) < 0) return -1;
    int rc = 0;
    spec_t *s = row.state == JOB_RUNNING && !strcmp(row.mode, "lora")
                    ? spec_parse(row.unit, strlen(row.unit), "/", row.name, NULL, NULL)
                    : NULL;
    const spec_train_t *t = s && s->ntenants == 1 ? &s->tenants[0].train : NULL;
    int rung = t && t->rung_steps > 0 ? asha_rung(step, t->rung_steps, t->rung_eta,
                                                  t->steps > 0 ? t->steps : INT64_MAX)
                                      : -1;
    /* A trial already ordered to stop is past deciding: its STOP may reach
     * the group a few steps late (a busy machine), and an evaluation there
     * must not be judged again at a later rung. */
    if (rung >= 0 && store_job_stop_ordered(server.store, job) == 1) rung = -1;
    if (rung >= 0 && (t->steps <= 0 || step < t->steps)) {
        double *losses;
        size_t n;
        rc = store_rung_losses(server.store, row.submission, row.tenant, step, &losses, &n);
        if (rc == 0) {
            int go = asha_continues(losses, n, loss, t->rung_eta);
            size_t keep = (n + (size_t)t->rung_eta - 1) / (size_t)t->rung_eta;
            json_t *d = json_pack("{s:i, s:I, s:f, s:I, s:I, s:s}", "rung", rung, "step",
                                  (json_int_t)step, "val_loss", isfinite(loss) ? loss : 1e308,
                                  "reached", (json_int_t)n, "keep", (json_int_t)(keep ? keep : 1),
                                  "decision", go ? "continue" : "stop");
            char *text = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
            json_decref(d);
            int added = text ? store_metric_add(server.store, job, step, "rung", text) : -1;
            free(text);
            if (added < 0) rc = -1;
            if (added == 1 && !go) {
                weft_info("job %" PRId64 " (%s): stopped at rung %d (step %" PRId64
                          ", val_loss %.4f, not in the best %zu of %zu)",
                          job, name, rung, step, loss, keep ? keep : 1, n);
                if (r->hello) send_stop(r, json_pack("[s]", name));
            }
        }
        free(losses);
    }
    spec_destroy(&s);
    store_job_row_free(&row);
    return rc;
}

void early_stop_hello(const live_run_t *r)
{
    json_t *names = NULL;
    for (int i = 0; i < r->njobs; i++) {
        store_job_row_t row;
        if (store_job_get(server.store, r->jobs[i], &row) < 0) continue;
        int stop = row.state == JOB_STOPPED ||
                   (row.state == JOB_RUNNING && store_job_stop_ordered(server.store, row.id) == 1);
        store_job_row_free(&row);
        if (!stop) continue;
        if (!names) names = json_array();
        json_array_append_new(names, json_string(r->names[i]));
    }
    if (names) send_stop(r, names);
}
