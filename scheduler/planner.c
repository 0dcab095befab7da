/* planner.c: packing queued jobs into runs (see planner.h). */
#include "planner.h"

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

size_t planner_pack(const store_job_row_t *queued, size_t nq, int pack_size, int free_slots,
                    plan_run_t *out, size_t max)
{
    if (pack_size < 1) pack_size = 1;
    if (pack_size > (int)(sizeof out->jobs / sizeof out->jobs[0]))
        pack_size = (int)(sizeof out->jobs / sizeof out->jobs[0]);
    unsigned char *taken = calloc(nq ? nq : 1, 1);
    if (!taken) return 0;
    size_t nout = 0;
    for (size_t i = 0; i < nq && nout < max; i++) {
        if (taken[i]) continue;
        const store_job_row_t *head = &queued[i];
        if (head->ranks > free_slots) break;
        plan_run_t *r = &out[nout++];
        memset(r, 0, sizeof *r);
        r->ranks = head->ranks;
        r->max_attempts = head->max_attempts;
        r->names[r->n] = head->name;
        r->jobs[r->n++] = head->id;
        taken[i] = 1;
        if (!strcmp(head->mode, "lora"))
            for (size_t k = i + 1; k < nq && (int)r->n < pack_size; k++) {
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
