/* spec.c: reads a libconfig job spec into a validated spec_t. Every problem
 * is reported as "FILE:LINE: SETTING: what; what to do" and parsing goes on
 * so that one pass lists them all; paths resolve against the spec's folder. */
#include "jobs/spec.h"
#include "jobs/spec_fields.h"
#include "jobs/spec_lex.h"

#include "common/fsutil.h"
#include "common/log.h"
#include "common/suggest.h"

#include <ctype.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* libconfig 1.5 leaks the scanner's string buffer when a parse fails inside
 * or after a string (fixed in later libconfig releases). Hostile specs do
 * that on purpose; keep LeakSanitizer's reports about weft's own memory. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libconfig.so\n";
}

spec_limits_t spec_limits_default(void)
{
    return (spec_limits_t){
        .max_spec_bytes = 1u << 20,
        .max_tenants = 4096,
        .max_trials = 10000,
        .max_units = 10000,
    };
}

/* ---- diagnostics ---------------------------------------------------- */

struct spec_diag_t {
    int count, cap;
    char **lines;
};

spec_diag_t *spec_diag_new(void)
{
    return calloc(1, sizeof(spec_diag_t));
}

void spec_diag_destroy(spec_diag_t **self_p)
{
    spec_diag_t *self = *self_p;
    if (!self) return;
    for (int i = 0; i < self->count; i++) free(self->lines[i]);
    free(self->lines);
    free(self);
    *self_p = NULL;
}

int spec_diag_count(const spec_diag_t *self)
{
    return self ? self->count : 0;
}

const char *spec_diag_get(const spec_diag_t *self, int i)
{
    return self && i >= 0 && i < self->count ? self->lines[i] : NULL;
}

void spec_diag_add(spec_diag_t *self, const char *line)
{
    if (!self) return;
    if (self->count == self->cap) {
        int cap = self->cap ? self->cap * 2 : 8;
        char **lines = realloc(self->lines, (size_t)cap * sizeof *lines);
        if (!lines) return;
        self->lines = lines;
        self->cap = cap;
    }
    char *copy = strdup(line);
    if (copy) self->lines[self->count++] = copy;
}

/* ---- parse context --------------------------------------------------- */

typedef struct {
    const char *file; /* display name */
    spec_diag_t *diag;
    int nerr;
    spec_limits_t lim;
    char base[SPEC_PATH_MAX];
} ctx_t;

static void perr(ctx_t *c, int line, const char *setting, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void perr(ctx_t *c, int line, const char *setting, const char *fmt, ...)
{
    char what[768], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(msg, sizeof msg, "%s:%d: %s: %s", c->file, line, setting, what);
    else
        snprintf(msg, sizeof msg, "%s: %s: %s", c->file, setting, what);
    if (c->nerr++ == 0) weft_error("%s", msg);
    spec_diag_add(c->diag, msg);
}

static int line_of(const config_setting_t *s)
{
    return s ? config_setting_source_line(s) : 0;
}

/* ---- names and paths ------------------------------------------------- */

bool spec_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-' || strstr(s, "..")) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

const char *spec_mode_name(spec_mode_t m)
{
    return m == SPEC_FULL ? "full" : "lora";
}

const char *spec_data_kind_name(spec_data_kind_t k)
{
    static const char *names[] = {"weft-shards", "text", "jsonl", "chat", "completion"};
    return (unsigned)k <= SPEC_DATA_COMPLETION ? names[k] : "?";
}

spec_data_kind_t spec_data_kind_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return SPEC_DATA_TEXT;
    if (!strcasecmp(dot, ".h5") || !strcasecmp(dot, ".hdf5")) return SPEC_DATA_SHARDS;
    if (!strcasecmp(dot, ".jsonl")) return SPEC_DATA_JSONL;
    return SPEC_DATA_TEXT;
}

/* Lexically tidies an absolute path in place: drops empty and "." parts. */
static void tidy_path(char *p)
{
    char out[SPEC_PATH_MAX];
    size_t n = 0;
    const char *s = p;
    while (*s) {
        while (*s == '/') s++;
        const char *e = s;
        while (*e && *e != '/') e++;
        size_t len = (size_t)(e - s);
        if (len && !(len == 1 && s[0] == '.')) {
            if (n + 1 + len + 1 > sizeof out) return;
            out[n++] = '/';
            memcpy(out + n, s, len);
            n += len;
        }
        s = e;
    }
    if (n == 0) out[n++] = '/';
    out[n] = 0;
    memcpy(p, out, n + 1);
}

/* Joins base and a spec path into an absolute, tidied path; -1 if too long. */
static int resolve_path(const char *base, const char *path, char *out, size_t outsize)
{
    int w = path[0] == '/' ? snprintf(out, outsize, "%s", path)
                           : snprintf(out, outsize, "%s/%s", base, path);
    if (w < 0 || (size_t)w >= outsize) return -1;
    tidy_path(out);
    return 0;
}

static int absolute_base(const char *base_dir, char *out, size_t outsize)
{
    if (base_dir && base_dir[0] == '/') {
        if (snprintf(out, outsize, "%s", base_dir) >= (int)outsize) return -1;
    } else {
        char cwd[SPEC_PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return -1;
        if (resolve_path(cwd, base_dir && base_dir[0] ? base_dir : ".", out, outsize)) return -1;
    }
    tidy_path(out);
    return 0;
}

/* ---- typed getters ---------------------------------------------------- */

static const char *get_string(ctx_t *c, const config_setting_t *s, const char *path)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        perr(c, line_of(s), path, "must be a string in double quotes");
        return NULL;
    }
    return config_setting_get_string(s);
}

static void get_path(ctx_t *c, const config_setting_t *s, const char *path, char *out)
{
    const char *v = get_string(c, s, path);
    if (!v) return;
    if (!v[0]) {
        perr(c, line_of(s), path, "must not be empty");
        return;
    }
    if (strlen(v) >= SPEC_PATH_MAX - 1 || resolve_path(c->base, v, out, SPEC_PATH_MAX))
        perr(c, line_of(s), path, "path too long (at most %d bytes once resolved)",
             SPEC_PATH_MAX - 1);
}

static void get_name(ctx_t *c, const config_setting_t *s, const char *path, char *out)
{
    const char *v = get_string(c, s, path);
    if (!v) return;
    if (!spec_name_ok(v)) {
        perr(c, line_of(s), path,
             "\"%.80s\" is not a valid name; use 1-64 of [A-Za-z0-9._-], not starting with '.' "
             "or '-', without \"..\"",
             v);
        return;
    }
    snprintf(out, SPEC_NAME_MAX, "%s", v);
}

static int get_int(ctx_t *c, const config_setting_t *s, const char *path, int64_t lo, int64_t hi,
                   int64_t *out)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
        perr(c, line_of(s), path, "must be an integer");
        return -1;
    }
    int64_t v = config_setting_get_int64(s);
    if (v < lo || v > hi) {
        perr(c, line_of(s), path, "must be in [%lld, %lld], got %lld", (long long)lo, (long long)hi,
             (long long)v);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- unknown settings ------------------------------------------------- */

/* Reports a setting not in `known`, suggesting the closest known name, or the
 * section it belongs to when it is a train/lora setting in the wrong place. */
static void unknown_setting(ctx_t *c, const config_setting_t *s, const char *path,
                            const char *const *known, int nknown)
{
    const char *name = config_setting_name(s);
    int best = -1, bestd = 99;
    for (int i = 0; i < nknown; i++) {
        int d = weft_edit_distance(name, known[i]);
        if (d < bestd) bestd = d, best = i;
    }
    size_t len = strlen(name);
    int limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    if (best >= 0 && bestd <= limit) {
        perr(c, line_of(s), path, "unknown setting; did you mean `%s`?", known[best]);
        return;
    }
    for (int i = 0; i < spec_nfields; i++)
        if (!strcmp(spec_fields[i].key, name)) {
            perr(c, line_of(s), path, "unknown setting here; it belongs in the %s group (%s.%s)",
                 spec_fields[i].section, spec_fields[i].section, name);
            return;
        }
    perr(c, line_of(s), path,
         "unknown setting; see docs/JOBSPEC.md for the settings of this group");
}

static void check_members(ctx_t *c, const config_setting_t *group, const char *prefix,
                          const char *const *known, int nknown)
{
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(m);
        bool ok = false;
        for (int k = 0; k < nknown && !ok; k++) ok = !strcmp(name, known[k]);
        if (ok) continue;
        char path[128];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", name);
        unknown_setting(c, m, path, known, nknown);
    }
}

static int section_keys(const char *section, const char **out)
{
    int n = 0;
    for (int i = 0; i < spec_nfields; i++)
        if (!strcmp(spec_fields[i].section, section)) out[n++] = spec_fields[i].key;
    return n;
}

/* ---- groups ----------------------------------------------------------- */

static const config_setting_t *get_group(ctx_t *c, const config_setting_t *parent, const char *name,
                                         const char *path)
{
    const config_setting_t *g = config_setting_get_member(parent, name);
    if (g && config_setting_type(g) != CONFIG_TYPE_GROUP) {
        perr(c, line_of(g), path, "must be a group: %s = { ... };", name);
        return NULL;
    }
    return g;
}

/* Reads the train or lora settings present in group into the struct at base
 * (which holds the values to start from). prefix names them in errors. */
static void read_fields(ctx_t *c, const config_setting_t *group, const char *section,
                        const char *prefix, void *base)
{
    bool train = !strcmp(section, "train");
    const config_setting_t *st = train ? config_setting_get_member(group, "steps") : NULL;
    const config_setting_t *ep = train ? config_setting_get_member(group, "epochs") : NULL;
    char path[128], why[512];
    if (st && ep) {
        snprintf(path, sizeof path, "%s.epochs", prefix);
        perr(c, line_of(ep), path, "give either steps or epochs, not both");
    }
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const field_t *f = field_find(section, config_setting_name(m));
        if (!f) continue;
        snprintf(path, sizeof path, "%s.%s", prefix, f->key);
        if (field_set(f, base, m, why, sizeof why)) {
            perr(c, line_of(m), path, "%s", why);
            continue;
        }
        /* steps and epochs replace each other (a tenant may switch) */
        if (!strcmp(f->key, "steps") && !ep) ((spec_train_t *)base)->epochs = 0;
        if (!strcmp(f->key, "epochs") && !st) ((spec_train_t *)base)->steps = 0;
    }
}

/* Line of a member of group if present, else of the group. */
static int member_line(const config_setting_t *group, const char *name)
{
    const config_setting_t *m = group ? config_setting_get_member(group, name) : NULL;
    return m ? line_of(m) : line_of(group);
}

/* Does group (NULL for none) hold any of the named members? */
static bool has_any(const config_setting_t *group, const char *a, const char *b, const char *c)
{
    if (!group) return false;
    return config_setting_get_member(group, a) || (b && config_setting_get_member(group, b)) ||
           (c && config_setting_get_member(group, c));
}

/* Checks between the settings of one effective train group. A tenant
 * (tenant = true) is checked only where it sets one of the settings
 * involved, so an error of the spec's train group is reported once. */
static void check_train(ctx_t *c, const spec_train_t *t, int ranks, const config_setting_t *tgroup,
                        const char *tprefix, bool tenant)
{
    char path[128];
    if (t->steps > 0 && t->warmup >= t->steps &&
        (!tenant || has_any(tgroup, "steps", "epochs", "warmup"))) {
        snprintf(path, sizeof path, "%s.warmup", tprefix);
        perr(c, member_line(tgroup, "warmup"), path, "must be less than steps (%lld), got %lld",
             (long long)t->steps, (long long)t->warmup);
    }
    if (t->min_lr > t->lr && (!tenant || has_any(tgroup, "lr", "min_lr", NULL))) {
        snprintf(path, sizeof path, "%s.min_lr", tprefix);
        perr(c, member_line(tgroup, "min_lr"), path, "must not exceed lr (%g), got %g", t->lr,
             t->min_lr);
    }
    int64_t per = (int64_t)ranks * t->grad_accum;
    if (t->batch_size % per && (!tenant || has_any(tgroup, "batch_size", NULL, NULL))) {
        snprintf(path, sizeof path, "%s.batch_size", tprefix);
        perr(c, member_line(tgroup, "batch_size"), path,
             "%d is not a multiple of resources.ranks x train.grad_accum (%lld); every rank "
             "takes an equal share of each micro-step",
             t->batch_size, (long long)per);
    }
    if (t->rung_steps > 0 && t->rung_eta < 2 &&
        (!tenant || has_any(tgroup, "rung_steps", "rung_eta", NULL))) {
        snprintf(path, sizeof path, "%s.rung_eta", tprefix);
        perr(c, member_line(tgroup, "rung_eta"), path,
             "must be at least 2 when rung_steps is set (rungs at rung_steps x rung_eta^k), got %d",
             t->rung_eta);
    }
}

/* ---- the parts of a spec --------------------------------------------- */

static const char *root_keys[] = {"name",  "mode", "model",     "output",  "data",
                                  "train", "lora", "resources", "tenants", "sweep"};
static const char *resource_keys[] = {"ranks",  "threads",   "time_limit", "pack_size",
                                      "device", "precision", "gpus"};
static const char *tenant_base_keys[] = {"name",     "data",    "init_adapter",
                                         "baseline", "format", "template"};
static const char *sweep_keys[] = {"method", "samples", "seed", "train", "lora", "early_stop"};

/* "[D-]HH:MM:SS", "MM:SS" or "MM" into seconds; -1 if malformed. */
static int64_t parse_time(const char *s)
{
    int64_t days = 0, parts[3];
    int np = 0;
    const char *p = s;
    const char *dash = strchr(s, '-');
    if (dash) {
        char *end;
        days = strtoll(s, &end, 10);
        if (end != dash || end == s || days < 0 || days > 3650) return -1;
        p = dash + 1;
    }
    while (np < 3) {
        if (!isdigit((unsigned char)*p)) return -1;
        char *end;
        parts[np++] = strtoll(p, &end, 10);
        if (parts[np - 1] > 100000) return -1;
        p = end;
        if (*p == 0) break;
        if (*p != ':') return -1;
        p++;
    }
    if (*p) return -1;
    int64_t secs;
    if (np == 1)
        secs = parts[0] * 60;
    else if (np == 2)
        secs = parts[0] * 60 + parts[1];
    else
        secs = parts[0] * 3600 + parts[1] * 60 + parts[2];
    if (dash && np != 3) return -1;
    return days * 86400 + secs;
}

static void read_resources(ctx_t *c, const config_setting_t *root, spec_resources_t *r)
{
    *r = (spec_resources_t){.ranks = 1, .threads = 1, .time_limit = 0};
    const config_setting_t *g = get_group(c, root, "resources", "resources");
    if (!g) return;
    check_members(c, g, "resources", resource_keys, 7);
    const config_setting_t *m;
    int64_t v;
    if ((m = config_setting_get_member(g, "ranks")) &&
        !get_int(c, m, "resources.ranks", 1, 1024, &v))
        r->ranks = (int)v;
    if ((m = config_setting_get_member(g, "threads")) &&
        !get_int(c, m, "resources.threads", 1, 256, &v))
        r->threads = (int)v;
    if ((m = config_setting_get_member(g, "pack_size")) &&
        !get_int(c, m, "resources.pack_size", 0, 4096, &v))
        r->pack_size = (int)v;
    if ((m = config_setting_get_member(g, "time_limit"))) {
        if (config_setting_type(m) == CONFIG_TYPE_STRING) {
            int64_t t = parse_time(config_setting_get_string(m));
            if (t < 0)
                perr(c, line_of(m), "resources.time_limit",
                     "\"%.40s\" is not a time; write seconds (3600) or \"[D-]HH:MM:SS\"",
                     config_setting_get_string(m));
            else
                r->time_limit = t;
        } else if (!get_int(c, m, "resources.time_limit", 0, 3650LL * 86400, &v)) {
            r->time_limit = v;
        }
    }
    const char *s;
    if ((m = config_setting_get_member(g, "device")) &&
        (s = get_string(c, m, "resources.device"))) {
        if (!strcmp(s, "cuda")) {
            r->device = SPEC_DEV_CUDA;
            r->precision = SPEC_PREC_BF16;
#ifndef WEFT_HAVE_CUDA
            perr(c, line_of(m), "resources.device",
                 "\"cuda\" needs a weft built with CUDA (./configure --with-cuda where nvcc is); "
                 "this build has none: use \"cpu\"");
#endif
        } else if (strcmp(s, "cpu")) {
            perr(c, line_of(m), "resources.device", "\"%.40s\" is not a device; use \"cpu\" or \"cuda\"",
                 s);
        }
    }
    if ((m = config_setting_get_member(g, "precision")) &&
        (s = get_string(c, m, "resources.precision"))) {
        if (!strcmp(s, "fp32"))
            r->precision = SPEC_PREC_FP32;
        else if (!strcmp(s, "tf32") || !strcmp(s, "bf16")) {
            r->precision = s[0] == 't' ? SPEC_PREC_TF32 : SPEC_PREC_BF16;
            if (r->device != SPEC_DEV_CUDA)
                perr(c, line_of(m), "resources.precision",
                     "\"%s\" needs device = \"cuda\"; the CPU engine runs \"fp32\" only", s);
        } else
            perr(c, line_of(m), "resources.precision",
                 "\"%.40s\" is not a precision; use \"fp32\", \"tf32\" or \"bf16\"", s);
    }
    /* One rank drives one GPU: a cuda run holds as many GPUs as ranks. */
    r->gpus = r->device == SPEC_DEV_CUDA ? r->ranks : 0;
    if ((m = config_setting_get_member(g, "gpus")) &&
        !get_int(c, m, "resources.gpus", 0, 1024, &v)) {
        if (r->device != SPEC_DEV_CUDA && v > 0)
            perr(c, line_of(m), "resources.gpus",
                 "%lld GPUs need device = \"cuda\"; a cpu run holds none", (long long)v);
        else if (r->device == SPEC_DEV_CUDA && v != r->ranks)
            perr(c, line_of(m), "resources.gpus",
                 "%lld GPUs for %d ranks: one rank drives one GPU, so gpus = ranks (%d)",
                 (long long)v, r->ranks, r->ranks);
    }
}

const char *spec_device_name(spec_device_t d)
{
    return d == SPEC_DEV_CUDA ? "cuda" : "cpu";
}

const char *spec_precision_name(spec_precision_t p)
{
    return p == SPEC_PREC_BF16 ? "bf16" : p == SPEC_PREC_TF32 ? "tf32" : "fp32";
}

static const spec_t *sort_spec; /* qsort has no context argument */

static int cmp_tenant(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    int c = strcmp(sort_spec->tenants[i].name, sort_spec->tenants[j].name);
    return c ? c : i - j;
}

/* Tenant names must be unique: sorted, so 4096 tenants cost n log n. */
static void report_repeated_names(ctx_t *c, const config_setting_t *list, const spec_t *s)
{
    if (s->ntenants < 2) return;
    size_t n = (size_t)(unsigned)s->ntenants;
    int *idx = malloc(n * sizeof *idx);
    if (!idx) return;
    for (int i = 0; i < s->ntenants; i++) idx[i] = i;
    sort_spec = s;
    qsort(idx, n, sizeof *idx, cmp_tenant);
    for (int k = 1, first = idx[0]; k < s->ntenants; k++) {
        const char *name = s->tenants[idx[k]].name;
        if (strcmp(name, s->tenants[idx[k - 1]].name)) {
            first = idx[k];
            continue;
        }
        if (!name[0]) continue;
        char path[48];
        snprintf(path, sizeof path, "tenants[%d].name", idx[k]);
        perr(c, member_line(config_setting_get_elem(list, (unsigned)idx[k]), "name"), path,
             "tenant \"%s\" appears twice (also tenants[%d]); names must be unique", name, first);
    }
    free(idx);
}

/* A tenant's `format` (what its raw data holds: text, jsonl, chat,
 * completion; shards need none) and, for chat, its `template`. Read after
 * `data`, whose extension gives the default. */
static void read_format(ctx_t *c, const config_setting_t *g, const char *prefix,
                        spec_tenant_t *t)
{
    static const char *formats[] = {"text", "jsonl", "chat", "completion"};
    static const spec_data_kind_t kinds[] = {SPEC_DATA_TEXT, SPEC_DATA_JSONL, SPEC_DATA_CHAT,
                                             SPEC_DATA_COMPLETION};
    char path[SPEC_NAME_MAX + 48];
    const config_setting_t *m;
    snprintf(t->chat_template, sizeof t->chat_template, "plain");
    snprintf(path, sizeof path, "%s.format", prefix);
    if ((m = config_setting_get_member(g, "format"))) {
        const char *v = get_string(c, m, path);
        int found = -1;
        for (int i = 0; v && i < 4; i++)
            if (!strcmp(v, formats[i])) found = i;
        if (v && found < 0)
            perr(c, line_of(m), path,
                 "\"%.40s\" is not a data format; use text, jsonl, chat or completion", v);
        else if (v && t->data_kind == SPEC_DATA_SHARDS)
            perr(c, line_of(m), path,
                 "applies to raw data, and %s is a shard file (give the .txt or .jsonl)",
                 t->data);
        else if (v)
            t->data_kind = kinds[found];
    }
    snprintf(path, sizeof path, "%s.template", prefix);
    if ((m = config_setting_get_member(g, "template"))) {
        const char *v = get_string(c, m, path);
        if (v && t->data_kind != SPEC_DATA_CHAT)
            perr(c, line_of(m), path, "only for format = \"chat\"");
        else if (v && strcmp(v, "chatml") && strcmp(v, "llama3") && strcmp(v, "plain"))
            perr(c, line_of(m), path, "\"%.40s\" is not a chat template; use chatml, llama3 or "
                 "plain", v);
        else if (v)
            snprintf(t->chat_template, sizeof t->chat_template, "%s", v);
    }
}

static void read_tenants(ctx_t *c, const config_setting_t *root, spec_t *s)
{
    const config_setting_t *list = config_setting_get_member(root, "tenants");
    if (s->mode == SPEC_FULL) {
        if (list)
            perr(c, line_of(list), "tenants",
                 "not allowed with mode = \"full\" (a full fine-tune trains one model); name its "
                 "data with data = \"...\"; or use mode = \"lora\"");
        spec_tenant_t *t = s->tenants;
        if (t) {
            snprintf(t->name, sizeof t->name, "%s", s->name);
            snprintf(t->chat_template, sizeof t->chat_template, "plain");
            t->train = s->train;
            t->lora = s->lora;
        }
        return;
    }
    if (!list) {
        perr(c, 0, "tenants",
             "required with mode = \"lora\"; add tenants = ( { name = \"...\"; "
             "data = \"...\"; } );");
        return;
    }
    if (config_setting_type(list) != CONFIG_TYPE_LIST) {
        perr(c, line_of(list), "tenants",
             "must be a list of groups: tenants = ( { name = ...; data = ...; }, ... );");
        return;
    }
    int n = config_setting_length(list);
    if (n == 0) {
        perr(c, line_of(list), "tenants", "must hold at least one tenant");
        return;
    }
    if (n > c->lim.max_tenants) {
        perr(c, line_of(list), "tenants", "%d tenants exceed the limit of %d per spec", n,
             c->lim.max_tenants);
        return;
    }
    s->tenants = calloc((size_t)n, sizeof *s->tenants);
    if (!s->tenants) {
        perr(c, line_of(list), "tenants", "out of memory");
        return;
    }
    s->ntenants = n;
    const char *known[40];
    int nk = 0;
    for (int i = 0; i < 6; i++) known[nk++] = tenant_base_keys[i];
    nk += section_keys("train", known + nk);
    nk += section_keys("lora", known + nk);
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        spec_tenant_t *t = &s->tenants[i];
        char prefix[48], path[96];
        snprintf(prefix, sizeof prefix, "tenants[%d]", i);
        t->train = s->train;
        t->lora = s->lora;
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            perr(c, line_of(g), prefix, "must be a group: { name = \"...\"; data = \"...\"; }");
            continue;
        }
        for (int k = 0; k < config_setting_length(g); k++) {
            const config_setting_t *m = config_setting_get_elem(g, (unsigned)k);
            const field_t *f = field_find("train", config_setting_name(m));
            if (!f) f = field_find("lora", config_setting_name(m));
            if (f && (f->flags & F_SHARED)) {
                snprintf(path, sizeof path, "%s.%s", prefix, f->key);
                perr(c, line_of(m), path, "is shared by every tenant of a spec; set %s.%s instead",
                     f->section, f->key);
            }
        }
        check_members(c, g, prefix, known, nk);
        const config_setting_t *m;
        snprintf(path, sizeof path, "%s.name", prefix);
        if ((m = config_setting_get_member(g, "name")))
            get_name(c, m, path, t->name);
        else
            perr(c, line_of(g), path, "required: each tenant needs name = \"...\";");
        snprintf(path, sizeof path, "%s.data", prefix);
        if ((m = config_setting_get_member(g, "data"))) {
            get_path(c, m, path, t->data);
            t->data_kind = spec_data_kind_of(t->data);
        } else {
            perr(c, line_of(g), path, "required: each tenant needs data = \"...\";");
        }
        read_format(c, g, prefix, t);
        snprintf(path, sizeof path, "%s.init_adapter", prefix);
        if ((m = config_setting_get_member(g, "init_adapter")))
            get_path(c, m, path, t->init_adapter);
        snprintf(path, sizeof path, "%s.baseline", prefix);
        if ((m = config_setting_get_member(g, "baseline"))) get_path(c, m, path, t->baseline);
        read_fields(c, g, "train", prefix, &t->train);
        read_fields(c, g, "lora", prefix, &t->lora);
        check_train(c, &t->train, s->resources.ranks, g, prefix, true);
    }
    report_repeated_names(c, list, s);
}

/* One sweep value: checks it as the setting itself and stores its canonical
 * text. Returns the malloc'ed text or NULL (error reported). */
static char *sweep_value(ctx_t *c, const field_t *f, const config_setting_t *v, const char *path)
{
    spec_train_t t;
    spec_lora_t l;
    spec_train_defaults(&t);
    spec_lora_defaults(&l);
    void *base = field_base(f, &t, &l);
    char why[512], text[256];
    if (field_set(f, base, v, why, sizeof why)) {
        perr(c, line_of(v), path, "%s", why);
        return NULL;
    }
    field_format(f, base, text, sizeof text);
    return strdup(text);
}

static void read_sweep_dim(ctx_t *c, spec_t *s, const field_t *f, const config_setting_t *m)
{
    char path[128];
    snprintf(path, sizeof path, "sweep.%s.%s", f->section, f->key);
    spec_sweep_t *sw = &s->sweep;
    if (sw->ndims == SPEC_MAX_SWEEP) {
        perr(c, line_of(m), path, "too many swept settings (at most %d)", SPEC_MAX_SWEEP);
        return;
    }
    spec_sweep_dim_t *d = &sw->dims[sw->ndims];
    memset(d, 0, sizeof *d);
    snprintf(d->key, sizeof d->key, "%s.%s", f->section, f->key);
    const config_setting_t *vals = m;
    int type = config_setting_type(m);
    if (type == CONFIG_TYPE_GROUP) {
        if (!sw->random) {
            perr(c, line_of(m), path,
                 "a distribution needs method = \"random\"; a grid sweep takes a list of values");
            return;
        }
        if (config_setting_length(m) != 1) {
            perr(
                c, line_of(m), path,
                "give exactly one of uniform = [lo, hi], log_uniform = [lo, hi] or choice = [...]");
            return;
        }
        const config_setting_t *dist = config_setting_get_elem(m, 0);
        const char *dn = config_setting_name(dist);
        char dpath[160];
        snprintf(dpath, sizeof dpath, "%s.%s", path, dn);
        if (!strcmp(dn, "choice")) {
            vals = dist;
        } else if (!strcmp(dn, "uniform") || !strcmp(dn, "log_uniform")) {
            bool log = dn[0] == 'l';
            if (f->type != F_INT && f->type != F_INT64 && f->type != F_FLOAT) {
                perr(c, line_of(dist), dpath, "%s is not a number; use choice = [...]", d->key);
                return;
            }
            int dt = config_setting_type(dist);
            if ((dt != CONFIG_TYPE_ARRAY && dt != CONFIG_TYPE_LIST) ||
                config_setting_length(dist) != 2) {
                perr(c, line_of(dist), dpath, "must be [lo, hi]");
                return;
            }
            double lohi[2];
            for (int k = 0; k < 2; k++) {
                const config_setting_t *e = config_setting_get_elem(dist, (unsigned)k);
                char *text = sweep_value(c, f, e, dpath);
                if (!text) return;
                lohi[k] = strtod(text, NULL);
                free(text);
            }
            if (!(lohi[0] < lohi[1])) {
                perr(c, line_of(dist), dpath, "lo must be less than hi");
                return;
            }
            if (log && !(lohi[0] > 0)) {
                perr(c, line_of(dist), dpath, "log_uniform needs lo > 0");
                return;
            }
            d->kind = log ? SPEC_SWEEP_LOG_UNIFORM : SPEC_SWEEP_UNIFORM;
            d->lo = lohi[0];
            d->hi = lohi[1];
            sw->ndims++;
            return;
        } else {
            const char *dists[] = {"uniform", "log_uniform", "choice"};
            int best = -1, bestd = 99;
            for (int k = 0; k < 3; k++) {
                int e = weft_edit_distance(dn, dists[k]);
                if (e < bestd) bestd = e, best = k;
            }
            if (bestd <= 3)
                perr(c, line_of(dist), dpath, "unknown distribution; did you mean `%s`?",
                     dists[best]);
            else
                perr(c, line_of(dist), dpath,
                     "unknown distribution; use uniform, log_uniform or choice");
            return;
        }
        type = config_setting_type(vals);
    }
    if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
        perr(c, line_of(vals), path, "must be a list of values, e.g. [1e-4, 3e-4]");
        return;
    }
    int n = config_setting_length(vals);
    if (n == 0) {
        perr(c, line_of(vals), path, "empty list; give at least one value");
        return;
    }
    if (n > c->lim.max_trials) {
        perr(c, line_of(vals), path, "%d values exceed the limit of %d trials", n,
             c->lim.max_trials);
        return;
    }
    d->values = calloc((size_t)n, sizeof *d->values);
    if (!d->values) return;
    sw->ndims++; /* owns values from here on, even if some are bad */
    for (int k = 0; k < n; k++) {
        char vpath[160];
        snprintf(vpath, sizeof vpath, "%s[%d]", path, k);
        char *text = sweep_value(c, f, config_setting_get_elem(vals, (unsigned)k), vpath);
        if (!text) continue;
        for (int j = 0; j < d->nvalues; j++)
            if (!strcmp(d->values[j], text)) {
                perr(c, line_of(vals), vpath, "value %s is listed twice", text);
                free(text);
                text = NULL;
                break;
            }
        if (text) d->values[d->nvalues++] = text;
    }
}

/* sweep.early_stop: asynchronous successive halving (docs/JOBSPEC.md). */
static void read_early_stop(ctx_t *c, const config_setting_t *g, spec_sweep_t *sw)
{
    static const char *keys[] = {"policy", "eta", "min_steps", "metric"};
    const config_setting_t *e = get_group(c, g, "early_stop", "sweep.early_stop");
    if (!e) return;
    check_members(c, e, "sweep.early_stop", keys, 4);
    const config_setting_t *m;
    const char *word;
    int64_t v;
    int ok = 1;
    if (!(m = config_setting_get_member(e, "policy")))
        ok = 0, perr(c, line_of(e), "sweep.early_stop.policy", "missing; write policy = \"asha\";");
    else if ((word = get_string(c, m, "sweep.early_stop.policy")) && strcmp(word, "asha"))
        ok = 0, perr(c, line_of(m), "sweep.early_stop.policy",
                     "must be \"asha\" (the only policy), got \"%.40s\"", word);
    if ((m = config_setting_get_member(e, "metric")) &&
        (word = get_string(c, m, "sweep.early_stop.metric")) && strcmp(word, "val_loss"))
        ok = 0, perr(c, line_of(m), "sweep.early_stop.metric",
                     "must be \"val_loss\" (the only metric), got \"%.40s\"", word);
    sw->es_eta = 3;
    if ((m = config_setting_get_member(e, "eta"))) {
        if (config_setting_type(m) == CONFIG_TYPE_INT && config_setting_get_int(m) < 2)
            ok = 0, perr(c, line_of(m), "sweep.early_stop.eta",
                         "must be at least 2 (a rung keeps the best 1/eta of its trials), got %d",
                         config_setting_get_int(m));
        else if (get_int(c, m, "sweep.early_stop.eta", 2, 1000, &v))
            ok = 0;
        else
            sw->es_eta = (int)v;
    }
    if (!(m = config_setting_get_member(e, "min_steps")))
        ok = 0, perr(c, line_of(e), "sweep.early_stop.min_steps",
                     "missing: the steps of the first rung, e.g. min_steps = 50;");
    else if (get_int(c, m, "sweep.early_stop.min_steps", 1, 1000000000000LL, &v))
        ok = 0;
    else
        sw->es_min_steps = v;
    if (!ok) sw->es_eta = 0, sw->es_min_steps = 0;
}

static void read_sweep(ctx_t *c, const config_setting_t *root, spec_t *s)
{
    const config_setting_t *g = get_group(c, root, "sweep", "sweep");
    spec_sweep_t *sw = &s->sweep;
    sw->samples = 0;
    sw->seed = 0;
    if (!g) return;
    check_members(c, g, "sweep", sweep_keys, 6);
    read_early_stop(c, g, sw);
    const config_setting_t *m;
    int64_t v;
    if ((m = config_setting_get_member(g, "method"))) {
        const char *meth = get_string(c, m, "sweep.method");
        if (meth && !strcmp(meth, "random"))
            sw->random = true;
        else if (meth && strcmp(meth, "grid"))
            perr(c, line_of(m), "sweep.method", "must be \"grid\" or \"random\", got \"%.40s\"",
                 meth);
    }
    m = config_setting_get_member(g, "samples");
    if (sw->random) {
        if (!m)
            perr(c, line_of(g), "sweep.samples",
                 "required with method = \"random\": how many trials to draw");
        else if (!get_int(c, m, "sweep.samples", 1, c->lim.max_trials, &v))
            sw->samples = (int)v;
        sw->seed = 1;
        if ((m = config_setting_get_member(g, "seed")) &&
            !get_int(c, m, "sweep.seed", 0, INT64_MAX, &v))
            sw->seed = v;
    } else {
        if (m) perr(c, line_of(m), "sweep.samples", "only for method = \"random\"");
        if ((m = config_setting_get_member(g, "seed")))
            perr(c, line_of(m), "sweep.seed", "only for method = \"random\"");
    }
    static const char *sections[] = {"train", "lora"};
    for (int si = 0; si < 2; si++) {
        char path[32];
        snprintf(path, sizeof path, "sweep.%s", sections[si]);
        const config_setting_t *sg = get_group(c, g, sections[si], path);
        if (!sg) continue;
        if (si == 1 && s->mode == SPEC_FULL) {
            perr(c, line_of(sg), path, "not allowed with mode = \"full\" (no adapters to tune)");
            continue;
        }
        const char *known[32];
        int nk = section_keys(sections[si], known);
        check_members(c, sg, path, known, nk);
        /* canonical order: the table's */
        for (int fi = 0; fi < spec_nfields; fi++) {
            const field_t *f = &spec_fields[fi];
            if (strcmp(f->section, sections[si])) continue;
            const config_setting_t *fm = config_setting_get_member(sg, f->key);
            if (fm) read_sweep_dim(c, s, f, fm);
        }
        if (config_setting_length(sg) == 0)
            perr(c, line_of(sg), path, "empty group; name at least one setting to sweep");
    }
    if (sw->ndims == 0 && !c->nerr)
        perr(c, line_of(g), "sweep",
             sw->es_eta
                 ? "early_stop ranks the trials of a sweep, and this one names no setting to "
                   "sweep; add e.g. train = { lr = [1e-4, 3e-4]; };"
                 : "names no setting; add e.g. train = { lr = [1e-4, 3e-4]; };");
}

/* ---- @include and syntax errors -------------------------------------- */

/* Finds an @include directive outside comments and strings; returns its line or 0. */
static int find_include(const char *text)
{
    int line = 1;
    bool at_line_start = true;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            line++;
            at_line_start = true;
            continue;
        }
        if (*p == ' ' || *p == '\t' || *p == '\r') continue;
        if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
            while (p[1] && p[1] != '\n') p++;
            continue;
        }
        if (p[0] == '/' && p[1] == '*') {
            p += 2;
            while (*p && !(p[0] == '*' && p[1] == '/')) line += *p++ == '\n';
            if (!*p) return 0;
            p++;
            at_line_start = false;
            continue;
        }
        if (*p == '"') {
            for (p++; *p && *p != '"' && *p != '\n'; p++)
                if (*p == '\\' && p[1]) p++;
            if (!*p) return 0;
            if (*p == '\n') line++, at_line_start = true;
            continue;
        }
        if (at_line_start && !strncmp(p, "@include", 8)) return line;
        at_line_start = false;
    }
    return 0;
}

/* The text of line n (1-based), trimmed, into out. */
static void line_text(const char *text, int n, char *out, size_t outsize)
{
    const char *p = text;
    for (int i = 1; i < n && p; i++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    out[0] = 0;
    if (!p) return;
    while (*p == ' ' || *p == '\t') p++;
    size_t len = strcspn(p, "\r\n");
    if (len > 60) len = 60;
    snprintf(out, outsize, "%.*s", (int)len, p);
}

/* ---- the whole spec --------------------------------------------------- */

static void read_root(ctx_t *c, const config_setting_t *root, spec_t *s, const char *display)
{
    check_members(c, root, "", root_keys, 10);
    const config_setting_t *m;

    /* mode first: it decides which other settings are allowed */
    s->mode = SPEC_LORA;
    if ((m = config_setting_get_member(root, "mode"))) {
        const char *v = get_string(c, m, "mode");
        if (v && !strcmp(v, "full"))
            s->mode = SPEC_FULL;
        else if (v && strcmp(v, "lora"))
            perr(c, line_of(m), "mode", "must be \"full\" or \"lora\", got \"%.40s\"", v);
    } else {
        perr(c, 0, "mode",
             "required: mode = \"lora\"; (adapters on a frozen backbone) or "
             "mode = \"full\"; (all weights)");
        if (!config_setting_get_member(root, "tenants")) s->mode = SPEC_FULL;
    }

    if ((m = config_setting_get_member(root, "name"))) {
        get_name(c, m, "name", s->name);
    } else {
        const char *slash = strrchr(display, '/');
        char stem[SPEC_NAME_MAX];
        snprintf(stem, sizeof stem, "%s", slash ? slash + 1 : display);
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = 0;
        if (spec_name_ok(stem))
            memcpy(s->name, stem, sizeof stem);
        else
            perr(c, 0, "name",
                 "not set, and the file name \"%s\" is no valid name; set name = \"...\";", stem);
    }

    if ((m = config_setting_get_member(root, "model")))
        get_path(c, m, "model", s->model);
    else
        perr(c, 0, "model", "required: model = \"path/to/model.h5\"; (a weft-model file)");

    if ((m = config_setting_get_member(root, "output"))) {
        get_path(c, m, "output", s->output);
    } else if (s->name[0]) {
        char rel[SPEC_NAME_MAX + 8];
        snprintf(rel, sizeof rel, "runs/%s", s->name);
        if (resolve_path(c->base, rel, s->output, sizeof s->output))
            perr(c, 0, "output", "default path too long; set output = \"...\";");
    }

    m = config_setting_get_member(root, "data");
    if (s->mode == SPEC_FULL) {
        /* a full fine-tune is one tenant: the spec's name, data and groups */
        if (!(s->tenants = calloc(1, sizeof *s->tenants))) {
            perr(c, 0, "spec", "out of memory");
            return;
        }
        s->ntenants = 1;
        if (m) {
            get_path(c, m, "data", s->tenants[0].data);
            s->tenants[0].data_kind = spec_data_kind_of(s->tenants[0].data);
        } else {
            perr(c, 0, "data", "required with mode = \"full\": data = \"path/to/data.h5\";");
        }
    } else if (m) {
        perr(c, line_of(m), "data",
             "not used with mode = \"lora\"; give each tenant its own data in tenants");
    }

    read_resources(c, root, &s->resources);

    spec_train_defaults(&s->train);
    spec_lora_defaults(&s->lora);
    const config_setting_t *tg = get_group(c, root, "train", "train");
    if (tg) {
        const char *known[32];
        int nk = section_keys("train", known);
        check_members(c, tg, "train", known, nk);
        read_fields(c, tg, "train", "train", &s->train);
    }
    const config_setting_t *lg = get_group(c, root, "lora", "lora");
    if (lg && s->mode == SPEC_FULL) {
        perr(c, line_of(lg), "lora",
             "not allowed with mode = \"full\"; remove it or use "
             "mode = \"lora\"");
    } else if (lg) {
        const char *known[32];
        int nk = section_keys("lora", known);
        check_members(c, lg, "lora", known, nk);
        read_fields(c, lg, "lora", "lora", &s->lora);
    }
    check_train(c, &s->train, s->resources.ranks, tg, "train", false);
    read_tenants(c, root, s);
    read_sweep(c, root, s);
}

bool spec_text_utf8(const char *text, size_t len, const char *display_name, char *msg,
                    size_t msgsize)
{
    int col;
    unsigned char byte;
    int line = spec_lex_utf8(text, len, &col, &byte);
    if (!line) return true;
    snprintf(msg, msgsize,
             "%s:%d: spec: byte 0x%02X at column %d is not UTF-8; a spec must be UTF-8 text "
             "(convert it, e.g. iconv -f latin1 -t utf-8)",
             display_name ? display_name : "<spec>", line, byte, col);
    return false;
}

/* An integer literal that libconfig would read as another value. */
static void wide_report(void *arg, const spec_wide_t *w, const char *path)
{
    ctx_t *c = arg;
    if (w->past64)
        perr(c, w->line, path[0] ? path : "spec",
             "%s does not fit in 64 bits; the largest integer is 9223372036854775807L", w->text);
    else
        perr(c, w->line, path[0] ? path : "spec",
             "%s does not fit in 32 bits and libconfig would read it as %d; write %sL "
             "(integers past 2147483647 need an L suffix)",
             w->text, (int32_t)(uint32_t)(uint64_t)w->value, w->text);
}

/* Reports the listed literals no setting was matched to, by line. */
static void report_wides(ctx_t *c, spec_wides_t *w)
{
    for (int i = 0; i < w->n; i++)
        if (!w->v[i].found) wide_report(c, &w->v[i], "");
}

spec_t *spec_parse(const char *text, size_t len, const char *base_dir, const char *display_name,
                   const spec_limits_t *limits, spec_diag_t *diag)
{
    ctx_t c = {.file = display_name ? display_name : "<spec>", .diag = diag};
    c.lim = limits ? *limits : spec_limits_default();
    if (len > c.lim.max_spec_bytes) {
        perr(&c, 0, "spec", "%zu bytes exceed the limit of %zu bytes", len, c.lim.max_spec_bytes);
        return NULL;
    }
    if (memchr(text, 0, len)) {
        perr(&c, 0, "spec", "contains a NUL byte; a spec is text");
        return NULL;
    }
    char msg[1024];
    if (!spec_text_utf8(text, len, c.file, msg, sizeof msg)) {
        c.nerr++;
        weft_error("%s", msg);
        spec_diag_add(c.diag, msg);
        return NULL;
    }
    if (absolute_base(base_dir, c.base, sizeof c.base)) {
        perr(&c, 0, "spec", "base folder \"%.200s\" cannot be made absolute",
             base_dir ? base_dir : "");
        return NULL;
    }
    char *src = malloc(len + 1);
    if (!src) {
        perr(&c, 0, "spec", "out of memory");
        return NULL;
    }
    memcpy(src, text, len);
    src[len] = 0;
    int inc = find_include(src);
    if (inc) {
        perr(&c, inc, "@include",
             "not allowed in a job spec; copy the settings in (a spec must "
             "be complete on its own)");
        free(src);
        return NULL;
    }
    spec_wides_t wides = {0};
    char *wide_src = spec_lex_widen(src, &wides);
    if (!wide_src) {
        perr(&c, 0, "spec", "out of memory");
        spec_wides_free(&wides);
        free(src);
        return NULL;
    }
    config_t cfg;
    config_init(&cfg);
    if (!config_read_string(&cfg, wide_src)) {
        char near[64];
        int line = config_error_line(&cfg);
        line_text(src, line, near, sizeof near);
        const char *what = config_error_text(&cfg);
        const char *hint = "";
        if (strstr(what, "mismatched element type"))
            hint = "; write every element of an array alike (1.0 not 1 beside floats), or use a "
                   "list ( ... )";
        else if (strstr(what, "duplicate"))
            hint = "; each setting may appear once per group";
        else if (memchr(near, '"', strcspn(near, "=:")) || strstr(near, "{ \""))
            hint = "; setting names are not quoted, and cannot hold '.': sweep keys are nested "
                   "groups, sweep = { train = { lr = [...]; }; }";
        else
            hint = "; settings are written name = value; with strings in double quotes";
        if (wides.n)
            report_wides(&c, &wides);
        else
            perr(&c, line, "syntax", "%s (libconfig) near `%s`%s", what, near, hint);
        config_destroy(&cfg);
        spec_wides_free(&wides);
        free(wide_src);
        free(src);
        return NULL;
    }
    free(wide_src);
    if (wides.n) {
        spec_lex_match(config_root_setting(&cfg), &wides, wide_report, &c);
        report_wides(&c, &wides);
        spec_wides_free(&wides);
        config_destroy(&cfg);
        free(src);
        return NULL;
    }
    spec_t *s = calloc(1, sizeof *s);
    if (!s) {
        config_destroy(&cfg);
        free(src);
        return NULL;
    }
    read_root(&c, config_root_setting(&cfg), s, c.file);
    config_destroy(&cfg);
    free(src);
    if (c.nerr) spec_destroy(&s);
    return s;
}

spec_t *spec_load(const char *path, const spec_limits_t *limits, spec_diag_t *diag)
{
    spec_limits_t lim = limits ? *limits : spec_limits_default();
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: is a folder; give the spec file itself", path);
        weft_error("%s", msg);
        spec_diag_add(diag, msg);
        return NULL;
    }
    size_t len;
    char *text = weft_read_file(path, lim.max_spec_bytes, &len);
    if (!text) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", weft_last_error());
        weft_error("%s", msg);
        spec_diag_add(diag, msg);
        return NULL;
    }
    char dir[SPEC_PATH_MAX];
    weft_dirname(path, dir, sizeof dir);
    spec_t *s = spec_parse(text, len, dir, path, &lim, diag);
    free(text);
    return s;
}

void spec_destroy(spec_t **self_p)
{
    spec_t *self = *self_p;
    if (!self) return;
    for (int i = 0; i < self->sweep.ndims; i++) {
        for (int k = 0; k < self->sweep.dims[i].nvalues; k++) free(self->sweep.dims[i].values[k]);
        free(self->sweep.dims[i].values);
    }
    free(self->tenants);
    free(self);
    *self_p = NULL;
}

spec_t *spec_dup(const spec_t *self)
{
    spec_t *d = malloc(sizeof *d);
    if (!d) return NULL;
    *d = *self;
    d->tenants = NULL;
    for (int i = 0; i < d->sweep.ndims; i++) {
        d->sweep.dims[i].values = NULL;
        d->sweep.dims[i].nvalues = 0;
    }
    bool ok = true;
    if (self->ntenants) {
        d->tenants = malloc((size_t)self->ntenants * sizeof *d->tenants);
        if (d->tenants)
            memcpy(d->tenants, self->tenants, (size_t)self->ntenants * sizeof *d->tenants);
        else
            ok = false, d->ntenants = 0;
    }
    for (int i = 0; ok && i < self->sweep.ndims; i++) {
        const spec_sweep_dim_t *sd = &self->sweep.dims[i];
        if (!sd->nvalues) continue;
        d->sweep.dims[i].values = calloc((size_t)sd->nvalues, sizeof(char *));
        if (!d->sweep.dims[i].values) {
            ok = false;
            break;
        }
        for (int k = 0; k < sd->nvalues; k++) {
            d->sweep.dims[i].values[k] = strdup(sd->values[k]);
            if (!d->sweep.dims[i].values[k]) ok = false;
            d->sweep.dims[i].nvalues = k + 1;
        }
    }
    if (!ok) {
        spec_destroy(&d);
        weft_error("out of memory copying a spec");
    }
    return d;
}
