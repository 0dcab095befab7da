/* spec_fields.c: the train and lora settings table with defaults, ranges and
 * scope; typed reading from libconfig settings with range checks; canonical
 * text for each value (shortest exact floats, L-suffixed large integers). */
#include "jobs/spec_fields.h"
#include "common/log.h"
#include "common/suggest.h"
#include "model/modules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T(key, type, lo, hi, flags)                                                                \
    {                                                                                              \
        "train", #key, type, offsetof(spec_train_t, key), lo, hi, flags, NULL                      \
    }
#define L(key, type, lo, hi, flags)                                                                \
    {                                                                                              \
        "lora", #key, type, offsetof(spec_lora_t, key), lo, hi, flags, NULL                        \
    }

/* An enum setting whose C member name differs from its key. */
#define TE(key, member, names)                                                                     \
    {                                                                                              \
        "train", key, F_ENUM, offsetof(spec_train_t, member), 0, 0, 0, names                       \
    }
static const char *const keep_names[] = {"best", "last", NULL};
static const char *const promote_names[] = {"better", "always", NULL};

/* Order here is the canonical order of the writer and of sweep keys. */
const field_t spec_fields[] = {
    T(steps, F_INT64, 1, 1e12, 0),
    T(epochs, F_FLOAT, 0, 1e6, F_LO_OPEN),
    T(batch_size, F_INT, 1, 1 << 20, 0),
    T(grad_accum, F_INT, 1, 1 << 16, F_SHARED),
    T(seq_len, F_INT, 1, 1 << 20, F_SHARED),
    T(lr, F_FLOAT, 0, 1, F_LO_OPEN),
    T(min_lr, F_FLOAT, 0, 1, 0),
    T(schedule, F_SCHEDULE, 0, 0, 0),
    T(warmup, F_INT64, 0, 1e12, 0),
    T(weight_decay, F_FLOAT, 0, 10, 0),
    T(betas, F_BETAS, 0, 1, F_HI_OPEN),
    T(eps, F_FLOAT, 0, 1, F_LO_OPEN),
    T(grad_clip, F_FLOAT, 0, 1e6, 0),
    T(seed, F_INT64, 0, 9.2e18, 0),
    T(eval_every, F_INT, 0, 1e9, F_SHARED),
    T(eval_windows, F_INT, 1, 1 << 20, F_SHARED),
    T(checkpoint_every, F_INT, 0, 1e9, F_SHARED),
    T(keep_checkpoints, F_INT, 1, 1000, F_SHARED),
    T(max_attempts, F_INT, 1, 100, F_SHARED),
    T(rung_steps, F_INT64, 0, 1e12, 0),
    T(rung_eta, F_INT, 0, 1000, 0),
    TE("keep", keep, keep_names),
    {"train", "continue", F_BOOL, offsetof(spec_train_t, cont), 0, 0, 0, NULL},
    TE("promote", promote, promote_names),
    T(keep_versions, F_INT, 1, 1000, 0),
    T(doc_boundaries, F_BOOL, 0, 0, 0),
    L(r, F_INT, 1, 1024, 0),
    L(alpha, F_FLOAT, 0, 1e6, F_LO_OPEN),
    L(rslora, F_BOOL, 0, 0, 0),
    L(dropout, F_FLOAT, 0, 1, F_HI_OPEN),
    L(targets, F_TARGETS, 0, 0, 0),
};
const int spec_nfields = sizeof spec_fields / sizeof spec_fields[0];

static const char *schedule_names[] = {"cosine", "linear", "constant"};

void spec_train_defaults(spec_train_t *t)
{
    *t = (spec_train_t){
        .steps = 1000,
        .epochs = 0,
        .batch_size = 8,
        .grad_accum = 1,
        .seq_len = 128,
        .lr = 3e-4,
        .min_lr = 0,
        .schedule = SPEC_COSINE,
        .warmup = 0,
        .weight_decay = 0,
        .betas = {0.9, 0.999},
        .eps = 1e-8,
        .grad_clip = 1.0,
        .seed = 1,
        .eval_every = 100,
        .eval_windows = 8,
        .checkpoint_every = 100,
        .keep_checkpoints = 2,
        .max_attempts = 3,
        .keep = SPEC_KEEP_BEST,
        .cont = false,
        .promote = SPEC_PROMOTE_BETTER,
        .keep_versions = 7,
        .doc_boundaries = true,
    };
}

void spec_lora_defaults(spec_lora_t *l)
{
    *l = (spec_lora_t){.r = 8,
                       .alpha = 16,
                       .rslora = false,
                       .dropout = 0,
                       .targets = MODULE_BIT(LORA_ATTN_C_ATTN)};
}

const field_t *field_find(const char *section, const char *key)
{
    for (int i = 0; i < spec_nfields; i++)
        if (!strcmp(spec_fields[i].section, section) && !strcmp(spec_fields[i].key, key))
            return &spec_fields[i];
    return NULL;
}

void *field_base(const field_t *f, spec_train_t *train, spec_lora_t *lora)
{
    return f->section[0] == 't' ? (void *)train : (void *)lora;
}

const void *field_cbase(const field_t *f, const spec_train_t *train, const spec_lora_t *lora)
{
    return f->section[0] == 't' ? (const void *)train : (const void *)lora;
}

const char *spec_schedule_name(spec_schedule_t s)
{
    return (unsigned)s < 3 ? schedule_names[s] : "?";
}

void spec_fmt_double(double v, char *buf, size_t bufsize)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, bufsize, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) {
        size_t n = strlen(buf);
        if (n + 3 <= bufsize) memcpy(buf + n, ".0", 3);
    }
}

void spec_fmt_int64(int64_t v, char *buf, size_t bufsize)
{
    bool big = v > INT32_MAX || v < INT32_MIN;
    snprintf(buf, bufsize, "%lld%s", (long long)v, big ? "L" : "");
}

/* "must be > 0" style text of a field's range. */
static void range_text(const field_t *f, char *buf, size_t n)
{
    char lo[32], hi[32];
    if (f->type == F_INT || f->type == F_INT64) {
        snprintf(lo, sizeof lo, "%lld", (long long)f->lo);
        snprintf(hi, sizeof hi, "%lld", (long long)f->hi);
    } else {
        snprintf(lo, sizeof lo, "%g", f->lo);
        snprintf(hi, sizeof hi, "%g", f->hi);
    }
    if (f->hi >= 1e12)
        snprintf(buf, n, "%s %s", f->flags & F_LO_OPEN ? ">" : ">=", lo);
    else
        snprintf(buf, n, "in %s%s, %s%s", f->flags & F_LO_OPEN ? "(" : "[", lo, hi,
                 f->flags & F_HI_OPEN ? ")" : "]");
}

static bool in_range(const field_t *f, double v)
{
    if (f->flags & F_LO_OPEN ? !(v > f->lo) : !(v >= f->lo)) return false;
    if (f->flags & F_HI_OPEN ? !(v < f->hi) : !(v <= f->hi)) return false;
    return true;
}

static int out_of_range(const field_t *f, const char *got, double v, char *why, size_t n)
{
    char r[96];
    range_text(f, r, sizeof r);
    if (v > f->hi && f->hi >= 1e12) {
        /* the range text of a large bound names only the low end */
        char hi[32];
        if (f->type == F_INT || f->type == F_INT64)
            spec_fmt_int64((int64_t)f->hi, hi, sizeof hi);
        else
            snprintf(hi, sizeof hi, "%g", f->hi);
        snprintf(why, n, "must be at most %s, got %s", hi, got);
    } else {
        snprintf(why, n, "must be %s, got %s", r, got);
    }
    return -1;
}

static int get_number(const config_setting_t *s, bool want_int, double *d, int64_t *i, char *why,
                      size_t n)
{
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
        *i = config_setting_get_int64(s);
        *d = (double)*i;
        return 0;
    }
    if (t == CONFIG_TYPE_FLOAT && !want_int) {
        *d = config_setting_get_float(s);
        return 0;
    }
    if (t == CONFIG_TYPE_FLOAT) {
        snprintf(why, n, "must be an integer, got %g (write it without a decimal point)",
                 config_setting_get_float(s));
        return -1;
    }
    snprintf(why, n, "must be %s", want_int ? "an integer" : "a number");
    return -1;
}

static int set_scalar_number(const field_t *f, void *p, const config_setting_t *s, char *why,
                             size_t n)
{
    double d;
    int64_t i = 0;
    bool want_int = f->type != F_FLOAT;
    if (get_number(s, want_int, &d, &i, why, n)) return -1;
    char got[40];
    if (want_int)
        snprintf(got, sizeof got, "%lld", (long long)i);
    else
        snprintf(got, sizeof got, "%g", d);
    if (!in_range(f, d)) return out_of_range(f, got, d, why, n);
    if (f->type == F_INT)
        *(int *)p = (int)i;
    else if (f->type == F_INT64)
        *(int64_t *)p = i;
    else
        *(double *)p = d;
    return 0;
}

int field_set(const field_t *f, void *base, const config_setting_t *s, char *why, size_t n)
{
    void *p = (char *)base + f->off;
    switch (f->type) {
    case F_INT:
    case F_INT64:
    case F_FLOAT:
        return set_scalar_number(f, p, s, why, n);
    case F_BOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
            snprintf(why, n, "must be true or false");
            return -1;
        }
        *(bool *)p = config_setting_get_bool(s);
        return 0;
    case F_SCHEDULE: {
        if (config_setting_type(s) != CONFIG_TYPE_STRING) {
            snprintf(why, n, "must be a string: \"cosine\", \"linear\" or \"constant\"");
            return -1;
        }
        const char *v = config_setting_get_string(s);
        for (int i = 0; i < 3; i++)
            if (!strcmp(v, schedule_names[i])) {
                *(spec_schedule_t *)p = (spec_schedule_t)i;
                return 0;
            }
        int c = weft_closest(v, schedule_names, 3);
        snprintf(why, n,
                 "unknown schedule \"%.40s\"%s%s%s; use \"cosine\", \"linear\" or \"constant\"", v,
                 c >= 0 ? " (did you mean \"" : "", c >= 0 ? schedule_names[c] : "",
                 c >= 0 ? "\"?)" : "");
        return -1;
    }
    case F_ENUM: {
        int nn = 0;
        while (f->names[nn]) nn++;
        const char *v =
            config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
        for (int i = 0; v && i < nn; i++)
            if (!strcmp(v, f->names[i])) {
                *(int *)p = i;
                return 0;
            }
        int c = v ? weft_closest(v, f->names, nn) : -1;
        snprintf(why, n, "%s%.40s%s is not one of \"%s\"%s%s%s%s%s", v ? "\"" : "(not a string)",
                 v ? v : "", v ? "\"" : "", f->names[0], nn > 1 ? " and \"" : "",
                 nn > 1 ? f->names[1] : "", nn > 1 ? "\"" : "", c >= 0 ? "; did you mean " : "",
                 c >= 0 ? f->names[c] : "");
        return -1;
    }
    case F_BETAS: {
        int t = config_setting_type(s);
        if ((t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) || config_setting_length(s) != 2) {
            snprintf(why, n, "must be an array of two numbers, e.g. [0.9, 0.999]");
            return -1;
        }
        double b[2];
        for (int k = 0; k < 2; k++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)k);
            int64_t iv;
            if (get_number(e, false, &b[k], &iv, why, n)) {
                snprintf(why, n, "must be an array of two numbers, e.g. [0.9, 0.999]");
                return -1;
            }
            if (!in_range(f, b[k])) {
                char got[40];
                snprintf(got, sizeof got, "%g", b[k]);
                return out_of_range(f, got, b[k], why, n);
            }
        }
        memcpy(p, b, sizeof b);
        return 0;
    }
    case F_TARGETS: {
        int t = config_setting_type(s);
        if (t == CONFIG_TYPE_STRING) {
            snprintf(why, n, "must be an array of module names, e.g. [\"attn.c_attn\"]");
            return -1;
        }
        if ((t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) || config_setting_length(s) < 1) {
            snprintf(why, n, "must be a non-empty array of module names, e.g. [\"attn.c_attn\"]");
            return -1;
        }
        unsigned mask = 0;
        for (int k = 0; k < config_setting_length(s); k++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)k);
            const char *v =
                config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e) : NULL;
            if (modules_add(&mask, v) < 0) {
                snprintf(why, n, "%s", weft_last_error());
                return -1;
            }
        }
        *(unsigned *)p = mask;
        return 0;
    }
    }
    snprintf(why, n, "internal: unknown field type");
    return -1;
}

void field_format(const field_t *f, const void *base, char *buf, size_t n)
{
    const void *p = (const char *)base + f->off;
    char a[40], b[40];
    switch (f->type) {
    case F_INT:
        snprintf(buf, n, "%d", *(const int *)p);
        return;
    case F_INT64:
        spec_fmt_int64(*(const int64_t *)p, buf, n);
        return;
    case F_FLOAT:
        spec_fmt_double(*(const double *)p, buf, n);
        return;
    case F_BOOL:
        snprintf(buf, n, "%s", *(const bool *)p ? "true" : "false");
        return;
    case F_SCHEDULE:
        snprintf(buf, n, "\"%s\"", spec_schedule_name(*(const spec_schedule_t *)p));
        return;
    case F_ENUM:
        snprintf(buf, n, "\"%s\"", f->names[*(const int *)p]);
        return;
    case F_BETAS:
        spec_fmt_double(((const double *)p)[0], a, sizeof a);
        spec_fmt_double(((const double *)p)[1], b, sizeof b);
        snprintf(buf, n, "[%s, %s]", a, b);
        return;
    case F_TARGETS: {
        const char *names[LORA_NMODULES + 1];
        int count = modules_names(*(const unsigned *)p, names);
        size_t used = 0;
        buf[0] = 0;
        for (int i = 0; i < count; i++) {
            int w = snprintf(buf + used, n - used, "%s\"%s\"", used ? ", " : "[", names[i]);
            if (w < 0 || (size_t)w >= n - used) return;
            used += (size_t)w;
        }
        if (used + 2 <= n) memcpy(buf + used, "]", 2);
        return;
    }
    }
}

int field_set_text(const field_t *f, void *base, const char *text, char *why, size_t n)
{
    size_t len = strlen(text);
    char *src = malloc(len + 8);
    if (!src) {
        snprintf(why, n, "out of memory");
        return -1;
    }
    memcpy(src, "v = ", 4);
    memcpy(src + 4, text, len);
    memcpy(src + 4 + len, ";", 2);
    config_t cfg;
    config_init(&cfg);
    int rc = -1;
    if (!config_read_string(&cfg, src))
        snprintf(why, n, "bad value text %.60s: %s", text, config_error_text(&cfg));
    else
        rc = field_set(f, base, config_lookup(&cfg, "v"), why, n);
    config_destroy(&cfg);
    free(src);
    return rc;
}
