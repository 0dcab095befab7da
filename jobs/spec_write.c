/* spec_write.c: a spec back to canonical libconfig text (what the scheduler
 * hands workers), field-by-field equality, and the resume and pack keys:
 * the settings a checkpoint or a shared run depends on, hashed. */
#include "jobs/spec.h"
#include "jobs/spec_fields.h"

#include "common/fsutil.h"
#include "common/log.h"
#include "common/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a growing text buffer ------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_add(sbuf_t *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int w = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)w < room) {
            b->len += (size_t)w;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap - b->len <= (size_t)w) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

/* A libconfig string literal: quotes, backslashes and control bytes escaped. */
static void sb_str(sbuf_t *b, const char *s)
{
    sb_add(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_add(b, "\\%c", *p);
        else if (*p == '\n')
            sb_add(b, "\\n");
        else if (*p == '\t')
            sb_add(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            sb_add(b, "\\x%02x", *p);
        else
            sb_add(b, "%c", *p);
    }
    sb_add(b, "\"");
}

static char *sb_take(sbuf_t *b)
{
    if (b->oom || !b->s) {
        free(b->s);
        weft_error("out of memory writing a spec");
        return NULL;
    }
    return b->s;
}

/* ---- canonical text --------------------------------------------------- */

static bool is_steps_or_epochs(const field_t *f)
{
    return !strcmp(f->key, "steps") || !strcmp(f->key, "epochs");
}

/* The steps-or-epochs line of a train group. */
static void write_length(sbuf_t *b, const spec_train_t *t, const char *sep)
{
    char v[48];
    if (t->steps > 0) {
        spec_fmt_int64(t->steps, v, sizeof v);
        sb_add(b, "%ssteps = %s;", sep, v);
    } else {
        spec_fmt_double(t->epochs, v, sizeof v);
        sb_add(b, "%sepochs = %s;", sep, v);
    }
}

static void write_section(sbuf_t *b, const char *section, const void *base)
{
    sb_add(b, "%s = {\n", section);
    if (section[0] == 't') write_length(b, base, "    "), sb_add(b, "\n");
    for (int i = 0; i < spec_nfields; i++) {
        const field_t *f = &spec_fields[i];
        if (strcmp(f->section, section) || is_steps_or_epochs(f)) continue;
        char v[256];
        field_format(f, base, v, sizeof v);
        sb_add(b, "    %s = %s;\n", f->key, v);
    }
    sb_add(b, "};\n");
}

/* A tenant's settings that differ from the spec's groups, on one line. */
static void write_tenant(sbuf_t *b, const spec_t *s, const spec_tenant_t *t)
{
    sb_add(b, "    { name = ");
    sb_str(b, t->name);
    sb_add(b, "; data = ");
    sb_str(b, t->data);
    sb_add(b, ";");
    if (t->data_kind != SPEC_DATA_SHARDS && t->data_kind != spec_data_kind_of(t->data))
        sb_add(b, " format = \"%s\";", spec_data_kind_name(t->data_kind));
    if (t->data_kind == SPEC_DATA_CHAT && strcmp(t->chat_template, "plain"))
        sb_add(b, " template = \"%s\";", t->chat_template);
    if (t->init_adapter[0]) {
        sb_add(b, " init_adapter = ");
        sb_str(b, t->init_adapter);
        sb_add(b, ";");
    }
    if (t->baseline[0]) {
        sb_add(b, " baseline = ");
        sb_str(b, t->baseline);
        sb_add(b, ";");
    }
    if (t->train.steps != s->train.steps || t->train.epochs != s->train.epochs)
        write_length(b, &t->train, " ");
    for (int i = 0; i < spec_nfields; i++) {
        const field_t *f = &spec_fields[i];
        if (is_steps_or_epochs(f) || (f->flags & F_SHARED)) continue;
        char mine[256], theirs[256];
        field_format(f, field_cbase(f, &t->train, &t->lora), mine, sizeof mine);
        field_format(f, field_cbase(f, &s->train, &s->lora), theirs, sizeof theirs);
        if (strcmp(mine, theirs)) sb_add(b, " %s = %s;", f->key, mine);
    }
    sb_add(b, " }");
}

static void write_sweep(sbuf_t *b, const spec_sweep_t *sw)
{
    sb_add(b, "sweep = {\n    method = \"%s\";\n", sw->random ? "random" : "grid");
    if (sw->random) {
        char seed[48];
        spec_fmt_int64(sw->seed, seed, sizeof seed);
        sb_add(b, "    samples = %d;\n    seed = %s;\n", sw->samples, seed);
    }
    static const char *sections[] = {"train", "lora"};
    for (int si = 0; si < 2; si++) {
        size_t n = strlen(sections[si]);
        bool open = false;
        for (int i = 0; i < sw->ndims; i++) {
            const spec_sweep_dim_t *d = &sw->dims[i];
            if (strncmp(d->key, sections[si], n) || d->key[n] != '.') continue;
            if (!open) sb_add(b, "    %s = {\n", sections[si]), open = true;
            const char *key = d->key + n + 1;
            if (d->kind == SPEC_SWEEP_VALUES) {
                /* a list ( ) holds arrays as well as scalars */
                sb_add(b, "        %s = %s", key, sw->random ? "{ choice = (" : "(");
                for (int k = 0; k < d->nvalues; k++) sb_add(b, "%s%s", k ? ", " : "", d->values[k]);
                sb_add(b, ")%s;\n", sw->random ? "; }" : "");
            } else {
                char lo[48], hi[48];
                const field_t *f = field_find(sections[si], key);
                if (f && (f->type == F_INT || f->type == F_INT64)) {
                    spec_fmt_int64((int64_t)d->lo, lo, sizeof lo);
                    spec_fmt_int64((int64_t)d->hi, hi, sizeof hi);
                } else {
                    spec_fmt_double(d->lo, lo, sizeof lo);
                    spec_fmt_double(d->hi, hi, sizeof hi);
                }
                sb_add(b, "        %s = { %s = [%s, %s]; };\n", key,
                       d->kind == SPEC_SWEEP_UNIFORM ? "uniform" : "log_uniform", lo, hi);
            }
        }
        if (open) sb_add(b, "    };\n");
    }
    if (sw->es_eta) {
        char ms[48];
        spec_fmt_int64(sw->es_min_steps, ms, sizeof ms);
        sb_add(b,
               "    early_stop = { policy = \"asha\"; eta = %d; min_steps = %s; "
               "metric = \"val_loss\"; };\n",
               sw->es_eta, ms);
    }
    sb_add(b, "};\n");
}

char *spec_write(const spec_t *s)
{
    sbuf_t b = {0};
    sb_add(&b, "# weft job spec, canonical form: every setting spelled out, paths absolute.\n");
    sb_add(&b, "name = ");
    sb_str(&b, s->name);
    sb_add(&b, ";\nmode = \"%s\";\nmodel = ", spec_mode_name(s->mode));
    sb_str(&b, s->model);
    sb_add(&b, ";\noutput = ");
    sb_str(&b, s->output);
    sb_add(&b, ";\n");
    if (s->mode == SPEC_FULL) { /* its one tenant is the spec itself */
        sb_add(&b, "data = ");
        sb_str(&b, s->tenants[0].data);
        sb_add(&b, ";\n");
    }
    write_section(&b, "train", &s->train);
    if (s->mode == SPEC_LORA) write_section(&b, "lora", &s->lora);
    char tl[48];
    spec_fmt_int64(s->resources.time_limit, tl, sizeof tl);
    sb_add(&b, "resources = { ranks = %d; threads = %d; time_limit = %s; pack_size = %d; ",
           s->resources.ranks, s->resources.threads, tl, s->resources.pack_size);
    if (s->resources.device != SPEC_DEV_CPU)
        sb_add(&b, "device = \"%s\"; precision = \"%s\"; gpus = %d; ",
               spec_device_name(s->resources.device), spec_precision_name(s->resources.precision),
               s->resources.gpus);
    sb_add(&b, "};\n");
    if (s->mode == SPEC_LORA) {
        sb_add(&b, "tenants = (\n");
        for (int i = 0; i < s->ntenants; i++) {
            write_tenant(&b, s, &s->tenants[i]);
            sb_add(&b, "%s\n", i + 1 < s->ntenants ? "," : "");
        }
        sb_add(&b, ");\n");
    }
    if (s->sweep.ndims) write_sweep(&b, &s->sweep);
    return sb_take(&b);
}

int spec_write_file(const spec_t *self, const char *path)
{
    char *text = spec_write(self);
    if (!text) return -1;
    char tmp[SPEC_PATH_MAX + 16];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(text);
        return weft_error("%s: path too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(text);
        return weft_error("%s: cannot create: %s", tmp, strerror(errno));
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            free(text);
            return weft_error("%s: cannot write: %s", tmp, strerror(e));
        }
        done += (size_t)w;
    }
    free(text);
    if (fsync(fd) < 0 || close(fd) < 0) {
        unlink(tmp);
        return weft_error("%s: cannot sync: %s", tmp, strerror(errno));
    }
    if (weft_rename_durable(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---- equality ---------------------------------------------------------- */

/* Field by field; floats compare exactly. */
static bool fields_equal(const char *section, const void *a, const void *b)
{
    for (int i = 0; i < spec_nfields; i++) {
        const field_t *f = &spec_fields[i];
        if (strcmp(f->section, section)) continue;
        const char *pa = (const char *)a + f->off, *pb = (const char *)b + f->off;
        bool eq;
        switch (f->type) {
        case F_INT:
            eq = *(const int *)pa == *(const int *)pb;
            break;
        case F_INT64:
            eq = *(const int64_t *)pa == *(const int64_t *)pb;
            break;
        case F_FLOAT:
            eq = *(const double *)pa == *(const double *)pb;
            break;
        case F_BOOL:
            eq = *(const bool *)pa == *(const bool *)pb;
            break;
        case F_SCHEDULE:
            eq = *(const spec_schedule_t *)pa == *(const spec_schedule_t *)pb;
            break;
        case F_ENUM:
            eq = *(const int *)pa == *(const int *)pb;
            break;
        case F_BETAS:
            eq = ((const double *)pa)[0] == ((const double *)pb)[0] &&
                 ((const double *)pa)[1] == ((const double *)pb)[1];
            break;
        case F_TARGETS:
            eq = *(const unsigned *)pa == *(const unsigned *)pb;
            break;
        default:
            eq = false;
        }
        if (!eq) return false;
    }
    return true;
}

bool spec_equal(const spec_t *a, const spec_t *b)
{
    if (strcmp(a->name, b->name) || a->mode != b->mode || strcmp(a->model, b->model) ||
        strcmp(a->output, b->output))
        return false;
    if (!fields_equal("train", &a->train, &b->train)) return false;
    if (a->mode == SPEC_LORA && !fields_equal("lora", &a->lora, &b->lora)) return false;
    if (a->resources.ranks != b->resources.ranks || a->resources.threads != b->resources.threads ||
        a->resources.time_limit != b->resources.time_limit ||
        a->resources.pack_size != b->resources.pack_size ||
        a->resources.device != b->resources.device ||
        a->resources.precision != b->resources.precision || a->resources.gpus != b->resources.gpus)
        return false;
    if (a->ntenants != b->ntenants) return false;
    for (int i = 0; i < a->ntenants; i++) {
        const spec_tenant_t *x = &a->tenants[i], *y = &b->tenants[i];
        if (strcmp(x->name, y->name) || strcmp(x->data, y->data) || x->data_kind != y->data_kind ||
            strcmp(x->chat_template, y->chat_template) ||
            strcmp(x->init_adapter, y->init_adapter) || strcmp(x->baseline, y->baseline) ||
            !fields_equal("train", &x->train, &y->train) ||
            !fields_equal("lora", &x->lora, &y->lora))
            return false;
    }
    const spec_sweep_t *sa = &a->sweep, *sb = &b->sweep;
    if (sa->ndims != sb->ndims || sa->random != sb->random || sa->samples != sb->samples ||
        sa->seed != sb->seed || sa->es_eta != sb->es_eta || sa->es_min_steps != sb->es_min_steps)
        return false;
    for (int i = 0; i < sa->ndims; i++) {
        const spec_sweep_dim_t *x = &sa->dims[i], *y = &sb->dims[i];
        if (strcmp(x->key, y->key) || x->kind != y->kind || x->nvalues != y->nvalues ||
            x->lo != y->lo || x->hi != y->hi)
            return false;
        for (int k = 0; k < x->nvalues; k++)
            if (strcmp(x->values[k], y->values[k])) return false;
    }
    return true;
}

/* ---- resume and pack keys --------------------------------------------- */

static const char *resume_train_keys[] = {"batch_size",   "lr",    "min_lr", "schedule",  "warmup",
                                          "weight_decay", "betas", "eps",    "grad_clip", "seed"};
static const char *resume_lora_keys[] = {"r", "alpha", "rslora", "dropout", "targets"};

static void resume_run_lines(sbuf_t *b, const spec_t *s)
{
    sb_add(b, "mode=%s\nmodel=%s\nseq_len=%d\ngrad_accum=%d\nranks=%d\n", spec_mode_name(s->mode),
           s->model, s->train.seq_len, s->train.grad_accum, s->resources.ranks);
}

static void resume_train_lines(sbuf_t *b, const char *prefix, const char *data,
                               const char *init_adapter, const spec_train_t *t,
                               const spec_lora_t *l)
{
    char v[256];
    sb_add(b, "%sdata=%s\n", prefix, data);
    if (l) sb_add(b, "%sinit_adapter=%s\n", prefix, init_adapter);
    if (t->steps > 0) {
        spec_fmt_int64(t->steps, v, sizeof v);
        sb_add(b, "%ssteps=%s\n", prefix, v);
    } else {
        spec_fmt_double(t->epochs, v, sizeof v);
        sb_add(b, "%sepochs=%s\n", prefix, v);
    }
    for (size_t i = 0; i < sizeof resume_train_keys / sizeof *resume_train_keys; i++) {
        const field_t *f = field_find("train", resume_train_keys[i]);
        field_format(f, t, v, sizeof v);
        sb_add(b, "%s%s=%s\n", prefix, f->key, v);
    }
    for (size_t i = 0; l && i < sizeof resume_lora_keys / sizeof *resume_lora_keys; i++) {
        const field_t *f = field_find("lora", resume_lora_keys[i]);
        field_format(f, l, v, sizeof v);
        sb_add(b, "%s%s=%s\n", prefix, f->key, v);
    }
}

/* Tenant k's lines: "tenant.<name>." and its LoRA settings in lora mode; a
 * full run's one tenant is the whole model, its lines unprefixed. */
static void resume_tenant_lines(sbuf_t *b, const spec_t *s, int k)
{
    const spec_tenant_t *t = &s->tenants[k];
    if (s->mode == SPEC_FULL) {
        resume_train_lines(b, "", t->data, "", &t->train, NULL);
        return;
    }
    char prefix[SPEC_NAME_MAX + 16];
    snprintf(prefix, sizeof prefix, "tenant.%s.", t->name);
    resume_train_lines(b, prefix, t->data, t->init_adapter, &t->train, &t->lora);
}

char *spec_resume_text(const spec_t *s)
{
    sbuf_t b = {0};
    resume_run_lines(&b, s);
    for (int i = 0; i < s->ntenants; i++) resume_tenant_lines(&b, s, i);
    return sb_take(&b);
}

static void hash_sbuf(sbuf_t *b, char hex[65])
{
    uint8_t d[32];
    weft_sha256_t h;
    weft_sha256_init(&h);
    if (b->s && !b->oom) weft_sha256_update(&h, b->s, b->len);
    weft_sha256_final(&h, d);
    weft_sha256_hex(d, hex);
    free(b->s);
}

void spec_resume_hash(const spec_t *s, char hex[65])
{
    sbuf_t b = {0};
    resume_run_lines(&b, s);
    for (int i = 0; i < s->ntenants; i++) resume_tenant_lines(&b, s, i);
    hash_sbuf(&b, hex);
}

void spec_tenant_resume_hash(const spec_t *s, int tenant, char hex[65])
{
    sbuf_t b = {0};
    resume_run_lines(&b, s);
    if (tenant >= 0 && tenant < s->ntenants) resume_tenant_lines(&b, s, tenant);
    hash_sbuf(&b, hex);
}

/* The value of key in a resume text, or NULL; len set to its length. */
static const char *resume_lookup(const char *text, const char *key, size_t keylen, size_t *len)
{
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n > keylen && !strncmp(p, key, keylen) && p[keylen] == '=') {
            *len = n - keylen - 1;
            return p + keylen + 1;
        }
        p = eol ? eol + 1 : NULL;
    }
    return NULL;
}

static int explain_one(const char *a, const char *b, const char *was, const char *now, char *out,
                       size_t outsize)
{
    for (const char *p = a; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq) {
            size_t klen = (size_t)(eq - p), vlen;
            const char *v = eq + 1;
            size_t mylen = n - klen - 1;
            const char *other = resume_lookup(b, p, klen, &vlen);
            if (!other) {
                snprintf(out, outsize, "%.*s: %s %.*s, %s absent", (int)klen, p, was, (int)mylen, v,
                         now);
                return 1;
            }
            if (vlen != mylen || strncmp(v, other, vlen)) {
                snprintf(out, outsize, "%.*s: %s %.*s, %s %.*s", (int)klen, p, was, (int)mylen, v,
                         now, (int)vlen, other);
                return 1;
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    return 0;
}

int spec_resume_explain(const char *saved, const char *now, char *out, size_t outsize)
{
    if (outsize) out[0] = 0;
    if (explain_one(saved, now, "was", "now", out, outsize)) return 1;
    /* keys only in the new text (a tenant added) */
    return explain_one(now, saved, "now", "before", out, outsize);
}

void spec_pack_key(const spec_t *s, char hex[65])
{
    sbuf_t b = {0};
    sb_add(&b, "mode=%s\nmodel=%s\n", spec_mode_name(s->mode), s->model);
    for (int i = 0; i < spec_nfields; i++) {
        const field_t *f = &spec_fields[i];
        if (!(f->flags & F_SHARED)) continue;
        char v[256];
        field_format(f, field_cbase(f, &s->train, &s->lora), v, sizeof v);
        sb_add(&b, "%s.%s=%s\n", f->section, f->key, v);
    }
    sb_add(&b, "ranks=%d\nthreads=%d\ntime_limit=%lld\n", s->resources.ranks, s->resources.threads,
           (long long)s->resources.time_limit);
    if (s->resources.device != SPEC_DEV_CPU) /* cpu keys hash as before */
        sb_add(&b, "device=%s\nprecision=%s\n", spec_device_name(s->resources.device),
               spec_precision_name(s->resources.precision));
    hash_sbuf(&b, hex);
}
