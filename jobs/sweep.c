/* sweep.c: expands a spec into job units (tenants x sweep trials) with
 * stable trial ids, and composes a packed lora run spec from units.
 * Grid: cartesian product, last key fastest. Random: seeded draws, deduplicated. */
#include "jobs/spec.h"
#include "jobs/spec_fields.h"

#include "common/log.h"
#include "common/sha256.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One trial: a value text per swept setting (owned). */
typedef struct {
    char *values[SPEC_MAX_SWEEP];
} trial_t;

static void trials_free(trial_t *t, int n, int ndims)
{
    for (int i = 0; i < n; i++)
        for (int d = 0; d < ndims; d++) free(t[i].values[d]);
    free(t);
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0,1) from 53 bits. */
static double unit_double(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * 0x1.0p-53;
}

static const field_t *dim_field(const spec_sweep_dim_t *d)
{
    char section[8];
    const char *dot = strchr(d->key, '.');
    snprintf(section, sizeof section, "%.*s", dot ? (int)(dot - d->key) : 0, d->key);
    return dot ? field_find(section, dot + 1) : NULL;
}

/* A drawn number as the canonical text of the setting: integers rounded to
 * the nearest, floats to 3 significant digits, both kept inside [lo, hi]. */
static char *draw_text(const field_t *f, const spec_sweep_dim_t *d, double x)
{
    char num[64], why[256], out[256];
    if (f->type == F_INT || f->type == F_INT64) {
        double r = floor(x + 0.5);
        if (r < d->lo) r = ceil(d->lo);
        if (r > d->hi) r = floor(d->hi);
        snprintf(num, sizeof num, "%lld%s", (long long)r, fabs(r) > 2147483647.0 ? "L" : "");
    } else {
        snprintf(num, sizeof num, "%.3g", x);
        double r = strtod(num, NULL);
        if (r < d->lo || r > d->hi) spec_fmt_double(r < d->lo ? d->lo : d->hi, num, sizeof num);
        if (!strpbrk(num, ".e")) strncat(num, ".0", sizeof num - strlen(num) - 1);
    }
    spec_train_t t;
    spec_lora_t l;
    spec_train_defaults(&t);
    spec_lora_defaults(&l);
    void *base = field_base(f, &t, &l);
    if (field_set_text(f, base, num, why, sizeof why)) return NULL;
    field_format(f, base, out, sizeof out);
    return strdup(out);
}

/* FNV-1a over a trial's value texts. */
static uint64_t trial_hash(const trial_t *x, int ndims)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int d = 0; d < ndims; d++) {
        for (const char *p = x->values[d]; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
        h = (h ^ 0xff) * 0x100000001b3ull;
    }
    return h;
}

static bool trial_same(const trial_t *a, const trial_t *b, int ndims)
{
    for (int d = 0; d < ndims; d++)
        if (strcmp(a->values[d], b->values[d])) return false;
    return true;
}

/* Inserts trial index i into an open-addressing table of size cap (a power
 * of two, holding index+1 or 0); false when an equal trial is there. */
static bool trial_insert(int *table, size_t cap, const trial_t *t, int i, int ndims)
{
    size_t k = (size_t)trial_hash(&t[i], ndims) & (cap - 1);
    for (; table[k]; k = (k + 1) & (cap - 1))
        if (trial_same(&t[table[k] - 1], &t[i], ndims)) return false;
    table[k] = i + 1;
    return true;
}

/* Builds the trials of a sweep (one empty trial without a sweep). */
static int make_trials(const spec_sweep_t *sw, const spec_limits_t *lim, trial_t **out, int *n_out)
{
    int nd = sw->ndims;
    if (nd == 0) {
        *out = calloc(1, sizeof(trial_t));
        *n_out = 1;
        return *out ? 0 : weft_error("out of memory expanding a sweep");
    }
    if (!sw->random) {
        int64_t total = 1;
        for (int d = 0; d < nd; d++) {
            total *= sw->dims[d].nvalues;
            if (total > lim->max_trials)
                return weft_error("sweep: the grid has more than %d trials (the limit per sweep); "
                                  "sweep fewer values",
                                  lim->max_trials);
        }
        trial_t *t = calloc((size_t)total, sizeof *t);
        if (!t) return weft_error("out of memory expanding a sweep");
        for (int64_t i = 0; i < total; i++) {
            int64_t rest = i;
            for (int d = nd - 1; d >= 0; d--) {
                int k = (int)(rest % sw->dims[d].nvalues);
                rest /= sw->dims[d].nvalues;
                t[i].values[d] = strdup(sw->dims[d].values[k]);
                if (!t[i].values[d]) {
                    trials_free(t, (int)total, nd);
                    return weft_error("out of memory expanding a sweep");
                }
            }
        }
        *out = t;
        *n_out = (int)total;
        return 0;
    }
    if (sw->samples > lim->max_trials)
        return weft_error("sweep: %d samples exceed the limit of %d trials per sweep", sw->samples,
                          lim->max_trials);
    trial_t *t = calloc((size_t)sw->samples, sizeof *t);
    if (!t) return weft_error("out of memory expanding a sweep");
    size_t cap = 1;
    while (cap < (size_t)sw->samples * 2) cap *= 2;
    int *table = calloc(cap, sizeof *table);
    if (!table) {
        free(t);
        return weft_error("out of memory expanding a sweep");
    }
    uint64_t state = (uint64_t)sw->seed;
    int n = 0;
    for (int k = 0; k < sw->samples; k++) {
        trial_t x = {0};
        bool ok = true;
        for (int d = 0; d < nd; d++) {
            const spec_sweep_dim_t *dim = &sw->dims[d];
            const field_t *f = dim_field(dim);
            if (dim->kind == SPEC_SWEEP_VALUES) {
                uint64_t pick = splitmix64(&state) % (uint64_t)dim->nvalues;
                x.values[d] = strdup(dim->values[pick]);
            } else {
                double u = unit_double(&state), v;
                if (dim->kind == SPEC_SWEEP_UNIFORM)
                    v = dim->lo + u * (dim->hi - dim->lo);
                else
                    v = exp(log(dim->lo) + u * (log(dim->hi) - log(dim->lo)));
                x.values[d] = f ? draw_text(f, dim, v) : NULL;
            }
            if (!x.values[d]) ok = false;
        }
        if (ok) {
            t[n] = x;
            if (trial_insert(table, cap, t, n, nd)) {
                n++;
                continue;
            }
        }
        for (int d = 0; d < nd; d++) free(x.values[d]);
        memset(&t[n], 0, sizeof t[n]);
        if (!ok) {
            free(table);
            trials_free(t, n, nd);
            return weft_error("sweep: cannot draw a value for sample %d", k);
        }
    }
    free(table);
    *out = t;
    *n_out = n;
    return 0;
}

/* "<base>-<8 hex>", base cut to 55 characters so the id stays a valid name. */
static void trial_id(const spec_t *s, const char *base, const trial_t *t, char *out, size_t outsize)
{
    weft_sha256_t h;
    uint8_t dg[32];
    char hex[65];
    weft_sha256_init(&h);
    weft_sha256_update(&h, "weft-trial\n", 11);
    weft_sha256_update(&h, s->name, strlen(s->name));
    weft_sha256_update(&h, "\n", 1);
    weft_sha256_update(&h, base, strlen(base));
    weft_sha256_update(&h, "\n", 1);
    for (int d = 0; d < s->sweep.ndims; d++) {
        weft_sha256_update(&h, s->sweep.dims[d].key, strlen(s->sweep.dims[d].key));
        weft_sha256_update(&h, "=", 1);
        weft_sha256_update(&h, t->values[d], strlen(t->values[d]));
        weft_sha256_update(&h, "\n", 1);
    }
    weft_sha256_final(&h, dg);
    weft_sha256_hex(dg, hex);
    snprintf(out, outsize, "%.55s-%.8s", base, hex);
}

static void unit_error(spec_diag_t *diag, int *nerr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void unit_error(spec_diag_t *diag, int *nerr, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if ((*nerr)++ == 0) weft_error("%s", msg);
    spec_diag_add(diag, msg);
}

/* The between-settings checks of the parser, for a unit's effective train. */
static int unit_check(const spec_train_t *t, int ranks, char *why, size_t n)
{
    if (t->steps > 0 && t->warmup >= t->steps) {
        snprintf(why, n, "train.warmup: must be less than steps (%lld), got %lld",
                 (long long)t->steps, (long long)t->warmup);
        return -1;
    }
    if (t->min_lr > t->lr) {
        snprintf(why, n, "train.min_lr: must not exceed lr (%g), got %g", t->lr, t->min_lr);
        return -1;
    }
    if (t->batch_size % (ranks * t->grad_accum)) {
        snprintf(why, n, "train.batch_size: %d is not a multiple of ranks x grad_accum (%d)",
                 t->batch_size, ranks * t->grad_accum);
        return -1;
    }
    return 0;
}

static void sweep_clear(spec_t *s)
{
    for (int i = 0; i < s->sweep.ndims; i++) {
        for (int k = 0; k < s->sweep.dims[i].nvalues; k++) free(s->sweep.dims[i].values[k]);
        free(s->sweep.dims[i].values);
    }
    memset(&s->sweep, 0, sizeof s->sweep);
}

/* Builds unit u for tenant ti (a full spec's one) and trial t. */
static int make_unit(const spec_t *s, int ti, const trial_t *t, spec_unit_t *u, char *why,
                     size_t whysize)
{
    const spec_sweep_t *sw = &s->sweep;
    int lora = s->mode == SPEC_LORA;
    const char *base = s->tenants[ti].name;
    memset(u, 0, sizeof *u);
    if (sw->ndims) {
        trial_id(s, base, t, u->trial, sizeof u->trial);
        snprintf(u->name, sizeof u->name, "%s", u->trial);
    } else {
        snprintf(u->name, sizeof u->name, "%s", base);
    }
    if (lora) snprintf(u->tenant, sizeof u->tenant, "%s", base);
    /* a copy without the sweep and with this tenant alone */
    spec_t *us = u->spec = malloc(sizeof *us);
    if (!us) return snprintf(why, whysize, "out of memory"), -1;
    *us = *s;
    memset(&us->sweep, 0, sizeof us->sweep);
    us->ntenants = 0;
    if (!(us->tenants = malloc(sizeof *us->tenants)))
        return snprintf(why, whysize, "out of memory"), -1;
    us->tenants[0] = s->tenants[ti];
    us->ntenants = 1;
    spec_train_t *train = &us->tenants[0].train;
    for (int d = 0; d < sw->ndims; d++) {
        const field_t *f = dim_field(&sw->dims[d]);
        if (!f) return snprintf(why, whysize, "%s: unknown setting", sw->dims[d].key), -1;
        char fwhy[256];
        if (field_set_text(f, field_base(f, train, &us->tenants[0].lora), t->values[d], fwhy,
                           sizeof fwhy))
            return snprintf(why, whysize, "%s: %s", sw->dims[d].key, fwhy), -1;
        snprintf(u->param_key[d], sizeof u->param_key[d], "%s", sw->dims[d].key);
        snprintf(u->param_value[d], sizeof u->param_value[d], "%s", t->values[d]);
    }
    u->nparams = sw->ndims;
    if (sw->es_eta) {
        /* ASHA: the trial's rungs; one must come before its last step */
        if (train->steps > 0 && sw->es_min_steps >= train->steps)
            return snprintf(why, whysize,
                            "sweep.early_stop.min_steps: %lld is not below train.steps (%lld), so "
                            "no rung fits before the end; lower min_steps or raise steps",
                            (long long)sw->es_min_steps, (long long)train->steps),
                   -1;
        train->rung_steps = sw->es_min_steps;
        train->rung_eta = sw->es_eta;
    }
    if (unit_check(train, us->resources.ranks, why, whysize)) return -1;
    /* a single-tenant spec: its groups are the tenant's own settings, and
     * the tenant is named after the unit */
    snprintf(us->tenants[0].name, sizeof us->tenants[0].name, "%s", u->name);
    us->train = *train;
    us->lora = us->tenants[0].lora;
    if (lora) {
        if (snprintf(u->outdir, sizeof u->outdir, "%s/%s", s->output, u->name) >=
            (int)sizeof u->outdir)
            return snprintf(why, whysize, "output path too long"), -1;
    } else if (sw->ndims) {
        if (snprintf(u->outdir, sizeof u->outdir, "%s/%s", s->output, u->name) >=
            (int)sizeof u->outdir)
            return snprintf(why, whysize, "output path too long"), -1;
        snprintf(us->output, sizeof us->output, "%s", u->outdir);
        snprintf(us->name, sizeof us->name, "%s", u->name);
    } else {
        snprintf(u->outdir, sizeof u->outdir, "%s", s->output);
    }
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Trial ids are 32 bits of a hash: make sure no two units share one. */
static bool names_repeat(const spec_unit_t *units, int n, spec_diag_t *diag)
{
    const char **names = malloc((size_t)n * sizeof *names);
    if (!names) return true;
    for (int i = 0; i < n; i++) names[i] = units[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    bool rep = false;
    for (int i = 1; i < n && !rep; i++)
        if (!strcmp(names[i - 1], names[i])) {
            rep = true;
            weft_error("sweep: trial id %s repeats; rename the spec", names[i]);
            spec_diag_add(diag, weft_last_error());
        }
    free(names);
    return rep;
}

void spec_units_destroy(spec_unit_t **units_p, int n)
{
    spec_unit_t *units = *units_p;
    if (!units) return;
    for (int i = 0; i < n; i++) spec_destroy(&units[i].spec);
    free(units);
    *units_p = NULL;
}

int spec_expand(const spec_t *s, const spec_limits_t *limits, spec_unit_t **units_p, int *n_p,
                spec_diag_t *diag)
{
    spec_limits_t lim = limits ? *limits : spec_limits_default();
    *units_p = NULL;
    *n_p = 0;
    trial_t *trials;
    int ntrials, nerr = 0;
    if (make_trials(&s->sweep, &lim, &trials, &ntrials)) {
        spec_diag_add(diag, weft_last_error());
        return -1;
    }
    int nbase = s->ntenants;
    int64_t total = (int64_t)nbase * ntrials;
    if (total > lim.max_units) {
        trials_free(trials, ntrials, s->sweep.ndims);
        unit_error(diag, &nerr,
                   "sweep: %d tenants x %d trials = %lld jobs exceed the limit of %d per spec",
                   nbase, ntrials, (long long)total, lim.max_units);
        return -1;
    }
    spec_unit_t *units = calloc((size_t)total, sizeof *units);
    if (!units) {
        trials_free(trials, ntrials, s->sweep.ndims);
        return weft_error("out of memory expanding %s", s->name);
    }
    int n = 0;
    for (int b = 0; b < nbase; b++) {
        for (int k = 0; k < ntrials; k++) {
            char why[512];
            spec_unit_t *u = &units[n++];
            if (make_unit(s, b, &trials[k], u, why, sizeof why)) {
                char params[512] = "";
                size_t used = 0;
                for (int d = 0; d < s->sweep.ndims && used < sizeof params; d++) {
                    int w = snprintf(params + used, sizeof params - used, "%s%s=%s", d ? ", " : "",
                                     s->sweep.dims[d].key, trials[k].values[d]);
                    if (w > 0) used += (size_t)w;
                }
                unit_error(diag, &nerr, "sweep: trial %s (%s): %s", u->name, params, why);
            }
        }
    }
    trials_free(trials, ntrials, s->sweep.ndims);
    if (!nerr && s->sweep.ndims && names_repeat(units, n, diag)) nerr++;
    if (nerr) {
        spec_units_destroy(&units, n);
        return -1;
    }
    *units_p = units;
    *n_p = n;
    return 0;
}

spec_t *spec_compose(const spec_t *const *units, int n, const char *name, const char *output)
{
    if (n < 1 || !units[0]) {
        weft_error("compose: no job units given");
        return NULL;
    }
    if (!spec_name_ok(name)) {
        weft_error("compose: \"%s\" is not a valid run name", name);
        return NULL;
    }
    if (output[0] != '/' || strlen(output) >= SPEC_PATH_MAX) {
        weft_error("compose: output \"%s\" must be an absolute path", output);
        return NULL;
    }
    char key0[65], key[65];
    spec_pack_key(units[0], key0);
    int total = 0;
    for (int i = 0; i < n; i++) {
        if (units[i]->mode != SPEC_LORA || units[i]->sweep.ndims) {
            weft_error("compose: unit %d (%s) is not a lora spec without a sweep", i,
                       units[i]->name);
            return NULL;
        }
        spec_pack_key(units[i], key);
        if (strcmp(key, key0)) {
            weft_error("compose: unit %d (%s) cannot share a run with %s: model, seq_len, "
                       "grad_accum, evaluation, checkpoint or resource settings differ",
                       i, units[i]->name, units[0]->name);
            return NULL;
        }
        total += units[i]->ntenants;
    }
    spec_t *run = spec_dup(units[0]);
    if (!run) return NULL;
    sweep_clear(run);
    spec_tenant_t *tenants = calloc((size_t)total, sizeof *tenants);
    if (!tenants) {
        spec_destroy(&run);
        weft_error("compose: out of memory");
        return NULL;
    }
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < units[i]->ntenants; t++) {
            const spec_tenant_t *x = &units[i]->tenants[t];
            for (int j = 0; j < k; j++)
                if (!strcmp(tenants[j].name, x->name)) {
                    weft_error("compose: tenant %s appears twice; pack it in another run", x->name);
                    free(tenants);
                    spec_destroy(&run);
                    return NULL;
                }
            tenants[k++] = *x;
        }
    free(run->tenants);
    run->tenants = tenants;
    run->ntenants = total;
    snprintf(run->name, sizeof run->name, "%s", name);
    snprintf(run->output, sizeof run->output, "%s", output);
    return run;
}
