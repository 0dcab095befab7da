/* planner.c: packing queued jobs into runs (see planner.h). */
#include "scheduler/planner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void planner_pack_key(const spec_t *unit, const char *arch, const char *backbone_sha256,
                      char out[160])
{
    char settings[65];
    spec_t *anon = malloc(sizeof *anon);
    if (anon) {
        *anon = *unit; /* shallow: spec_pack_key only reads */
        anon->model[0] = 0;
        spec_pack_key(anon, settings);
        free(anon);
    } else {
        snprintf(settings, sizeof settings, "%s", "out-of-memory");
    }
    snprintf(out, 160, "%.64s:%.15s:%.64s", settings, arch, backbone_sha256);
}

/* Tenant names are folder names inside a run: two jobs of one name (say
 * last night's and tonight's "acme") never share a run. */
static int has_name(const plan_run_t *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->names[i], name)) return 1;
    return 0;
}

/* Untaken queued LoRA jobs from i on that share queued[i]'s pack key. */
static size_t count_compatible(const store_job_row_t *queued, size_t nq, size_t i,
                               const unsigned char *taken)
{
    size_t c = 0;
    for (size_t k = i; k < nq; k++)
        c += !taken[k] && !strcmp(queued[k].mode, "lora") &&
             !strcmp(queued[k].pack_key, queued[i].pack_key);
    return c;
}

/* The core of both planners. With `refill`, a LoRA run whose key has more
 * queued jobs than the free slots can run in packs of pack_size takes the
 * surplus too (the worker admits it as slots free). */
static size_t pack(const store_job_row_t *queued, size_t nq, int pack_size, int free_slots,
                   plan_run_t *out, size_t max, int refill)
{
    const int most = (int)(sizeof out->jobs / sizeof out->jobs[0]);
    if (pack_size < 1) pack_size = 1;
    if (pack_size > most) pack_size = most;
    unsigned char *taken = calloc(nq ? nq : 1, 1);
    if (!taken) return 0;
    size_t nout = 0;
    for (size_t i = 0; i < nq && nout < max; i++) {
        if (taken[i]) continue;
        const store_job_row_t *head = &queued[i];
        if (head->ranks > free_slots) break;
        int cap = pack_size;
        if (refill && !strcmp(head->mode, "lora")) {
            /* Runs this key would need in packs of pack_size, against the
             * runs the free slots (and out[]) still hold. */
            size_t c = count_compatible(queued, nq, i, taken);
            size_t want = (c + (size_t)pack_size - 1) / (size_t)pack_size;
            size_t can = (size_t)(free_slots / (head->ranks > 0 ? head->ranks : 1));
            if (can > max - nout) can = max - nout;
            if (can < 1) can = 1;
            if (want > can) {
                size_t per = (c + can - 1) / can;
                cap = per > (size_t)most ? most : (int)per;
            }
        }
        plan_run_t *r = &out[nout++];
        memset(r, 0, sizeof *r);
        r->ranks = head->ranks;
        r->max_attempts = head->max_attempts;
        r->names[r->n] = head->name;
        r->jobs[r->n++] = head->id;
        taken[i] = 1;
        if (!strcmp(head->mode, "lora"))
            for (size_t k = i + 1; k < nq && (int)r->n < cap; k++) {
                if (taken[k] || strcmp(queued[k].mode, "lora") ||
                    strcmp(queued[k].pack_key, head->pack_key) || has_name(r, queued[k].name))
                    continue;
                r->names[r->n] = queued[k].name;
                r->jobs[r->n++] = queued[k].id;
                if (queued[k].max_attempts > r->max_attempts)
                    r->max_attempts = queued[k].max_attempts;
                taken[k] = 1;
            }
        free_slots -= r->ranks;
    }
    free(taken);
    return nout;
}

size_t planner_pack(const store_job_row_t *queued, size_t nq, int pack_size, int free_slots,
                    plan_run_t *out, size_t max)
{
    return pack(queued, nq, pack_size, free_slots, out, max, 0);
}

size_t planner_pack_refill(const store_job_row_t *queued, size_t nq, int pack_size, int free_slots,
                           plan_run_t *out, size_t max)
{
    return pack(queued, nq, pack_size, free_slots, out, max, 1);
}
