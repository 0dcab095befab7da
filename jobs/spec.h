/* spec.h: weft job specs (libconfig): parse and validate into spec_t, write
 * back in canonical form, expand sweeps into job units, compose packed runs.
 * The language is documented setting by setting in docs/JOBSPEC.md. */
#ifndef WEFT_SPEC_H
#define WEFT_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPEC_NAME_MAX  96   /* buffer for names; user names are at most 64 chars */
#define SPEC_PATH_MAX  1024 /* buffer for resolved, absolute paths */
#define SPEC_MAX_SWEEP 16   /* swept settings per spec */

/* Limits on what a (possibly hostile) client controls. One place for the
 * defaults: spec_limits_default(). Pass NULL wherever limits are taken to
 * use them. */
typedef struct {
    size_t max_spec_bytes; /* spec text size; default 1 MiB */
    int max_tenants;       /* tenants per spec; default 4096 */
    int max_trials;        /* trials per sweep (after de-duplication); default 10000 */
    int max_units;         /* job units a spec expands into (tenants x trials); default 10000 */
} spec_limits_t;
spec_limits_t spec_limits_default(void);

typedef enum { SPEC_FULL = 0, SPEC_LORA = 1 } spec_mode_t;
typedef enum { SPEC_COSINE = 0, SPEC_LINEAR = 1, SPEC_CONSTANT = 2 } spec_schedule_t;
/* What a `data` path names, from its extension: .h5/.hdf5 a weft-shards file;
 * .jsonl JSON lines (one {"text": ...} per line); anything else raw text. */
/* What a data path holds: shards, or raw data weftd (or the user) shards
 * first: text, JSONL, and chat or completion JSONL (a tenant's `format`). */
typedef enum {
    SPEC_DATA_SHARDS = 0,
    SPEC_DATA_TEXT = 1,
    SPEC_DATA_JSONL = 2,
    SPEC_DATA_CHAT = 3,
    SPEC_DATA_COMPLETION = 4
} spec_data_kind_t;
/* Which adapter (or model) a run publishes: the one with the lowest
 * validation loss seen at an evaluation, or the last one. */
typedef enum { SPEC_KEEP_BEST = 0, SPEC_KEEP_LAST = 1 } spec_keep_t;
/* When a new version becomes a tenant's current one: when its validation
 * loss on this run's /val is no worse than the current version's, or always. */
typedef enum { SPEC_PROMOTE_BETTER = 0, SPEC_PROMOTE_ALWAYS = 1 } spec_promote_t;

/* Training settings. In lora mode each tenant carries its own resolved copy;
 * the settings marked "shared" are equal in every tenant of a spec (and of a
 * packed run), the others may differ per tenant. */
typedef struct {
    int64_t steps;  /* optimizer steps; 0 when `epochs` is used */
    double epochs;  /* passes over the training split; 0 when `steps` is used */
    int batch_size; /* sequences per optimizer step, all ranks together */
    int grad_accum; /* shared: micro-steps per optimizer step */
    int seq_len;    /* shared: tokens per sequence (<= model n_ctx) */
    double lr;      /* peak learning rate (> 0) */
    double min_lr;  /* floor of the decay (0 <= min_lr <= lr) */
    spec_schedule_t schedule;
    int64_t warmup;       /* linear warm-up steps (< steps) */
    double weight_decay;  /* AdamW decoupled weight decay (>= 0) */
    double betas[2];      /* AdamW betas, each in [0,1) */
    double eps;           /* AdamW epsilon (> 0) */
    double grad_clip;     /* global-norm clip; 0 turns clipping off */
    int64_t seed;         /* init, dropout and data order (>= 0) */
    int eval_every;       /* shared: steps between evaluations; 0 = only at the end */
    int eval_windows;     /* shared: validation windows per evaluation */
    int checkpoint_every; /* shared: steps between checkpoints; 0 = only on signals */
    int keep_checkpoints; /* shared: checkpoints kept on disk */
    int max_attempts;     /* shared: launches before a run is failed */
    int64_t rung_steps;   /* first early-stopping rung (0: none); set from sweep.early_stop */
    int rung_eta;         /* rungs at rung_steps * rung_eta^k: evaluation forced there */
    spec_keep_t keep;     /* what is published: the best by validation loss, or the last */
    bool cont;            /* `continue`: start from the tenant's current version (lora) */
    spec_promote_t promote; /* when a new version becomes current (lora) */
    int keep_versions;      /* versions kept per tenant, the current one always (lora) */
    bool doc_boundaries;  /* chat/completion data: whole documents per row, attending only
                           * to themselves; false: windows that cross them (raw text always) */
} spec_train_t;

typedef struct {
    int r;            /* rank (1..1024) */
    double alpha;     /* scaling = alpha/r, or alpha/sqrt(r) with rslora */
    bool rslora;      /* rank-stabilised scaling */
    double dropout;   /* on the LoRA branch input, in [0,1) */
    unsigned targets; /* a targets mask (model/modules.h): modules, or all-linear */
} spec_lora_t;

/* Where the engine runs, and the precision of its products (docs/CUDA.md). */
typedef enum { SPEC_DEV_CPU, SPEC_DEV_CUDA } spec_device_t;
typedef enum { SPEC_PREC_FP32, SPEC_PREC_TF32, SPEC_PREC_BF16 } spec_precision_t;

typedef struct {
    int ranks;          /* MPI ranks (on cuda: one GPU each) */
    int threads;        /* OpenBLAS threads per rank */
    int64_t time_limit; /* seconds; 0 = none */
    int pack_size;      /* lora: tenants training at once, the rest wait; 0 = all */
    spec_device_t device;
    spec_precision_t precision; /* fp32 on cpu; bf16 by default on cuda */
    int gpus;                   /* GPUs the run holds: cuda, one per rank; cpu, 0 */
} spec_resources_t;

/* "cpu"/"cuda" and "fp32"/"tf32"/"bf16". */
const char *spec_device_name(spec_device_t d);
const char *spec_precision_name(spec_precision_t p);

/* What one run trains on and how: a lora spec's tenant, or the one tenant
 * of a full spec (named after the spec, with the spec's data, train and
 * lora groups, and no adapters: the mode decides whether lora applies). */
typedef struct {
    char name[SPEC_NAME_MAX]; /* [A-Za-z0-9._-]+, its output folder's name */
    char data[SPEC_PATH_MAX]; /* absolute */
    spec_data_kind_t data_kind;
    char chat_template[16];           /* format = "chat": chatml, llama3 or plain */
    char init_adapter[SPEC_PATH_MAX]; /* absolute, or "" for a fresh adapter */
    char baseline[SPEC_PATH_MAX];     /* the adapter a new version is compared with, or "" */
    spec_train_t train;               /* effective: spec train + this tenant's overrides */
    spec_lora_t lora;                 /* effective: spec lora + this tenant's overrides */
} spec_tenant_t;

/* One swept setting. Grid and `choice` sweeps hold values; uniform and
 * log_uniform hold a range. Values are kept as canonical libconfig text
 * ("0.0003", "\"cosine\"", "[0.9, 0.95]") and applied through the same checks
 * as the setting itself. */
typedef enum {
    SPEC_SWEEP_VALUES = 0,
    SPEC_SWEEP_UNIFORM,
    SPEC_SWEEP_LOG_UNIFORM
} spec_sweep_kind_t;
typedef struct {
    char key[32]; /* "train.lr", "lora.r" */
    spec_sweep_kind_t kind;
    int nvalues;
    char **values; /* kind VALUES: canonical text of each value */
    double lo, hi; /* kind UNIFORM / LOG_UNIFORM */
} spec_sweep_dim_t;

typedef struct {
    bool random;  /* method = "random" (else "grid") */
    int samples;  /* random: how many draws */
    int64_t seed; /* random: the draws' seed */
    int ndims;    /* 0 = no sweep */
    spec_sweep_dim_t dims[SPEC_MAX_SWEEP];
    /* early_stop = { policy = "asha"; eta; min_steps; metric = "val_loss"; }:
     * es_eta 0 without one. Each trial gets train.rung_steps/rung_eta. */
    int es_eta;
    int64_t es_min_steps;
} spec_sweep_t;

typedef struct {
    char name[SPEC_NAME_MAX]; /* default: the spec file's name without .cfg */
    spec_mode_t mode;
    char model[SPEC_PATH_MAX];  /* absolute */
    char output[SPEC_PATH_MAX]; /* absolute; default <spec folder>/runs/<name> */
    spec_train_t train; /* the spec's own train group (tenants start from it) */
    spec_lora_t lora;   /* the spec's own lora group (defaults in full mode) */
    spec_resources_t resources;
    /* >= 1: a lora spec's tenants; a full spec's one (name, data, train and
     * lora equal to the spec's: whoever changes those changes both). */
    int ntenants;
    spec_tenant_t *tenants;
    spec_sweep_t sweep;
} spec_t;

/* All problems found while parsing or expanding, one line each:
 * "FILE:LINE: SETTING: what is wrong; what to do". */
typedef struct spec_diag_t spec_diag_t;
spec_diag_t *spec_diag_new(void);
void spec_diag_destroy(spec_diag_t **self_p);
int spec_diag_count(const spec_diag_t *self);
const char *spec_diag_get(const spec_diag_t *self, int i);

/* Parses a spec from text. base_dir (made absolute against the working
 * folder) resolves relative paths; display_name names the text in errors and
 * gives the default `name`. The model and data files need not exist. On any
 * problem returns NULL, sets weft_error() to the first one and appends every
 * one to diag (when not NULL). */
spec_t *spec_parse(const char *text, size_t len, const char *base_dir, const char *display_name,
                   const spec_limits_t *limits, spec_diag_t *diag);
/* Whether text is UTF-8; if not, writes "FILE:LINE: spec: byte 0xNN at
 * column C is not UTF-8; ..." (the line spec_parse gives) to msg. */
bool spec_text_utf8(const char *text, size_t len, const char *display_name, char *msg,
                    size_t msgsize);
/* Reads and parses a spec file; its folder is the base for relative paths. */
spec_t *spec_load(const char *path, const spec_limits_t *limits, spec_diag_t *diag);
spec_t *spec_dup(const spec_t *self);
void spec_destroy(spec_t **self_p);

/* Canonical text: every setting written, tenants' overrides as differences
 * from the spec's train/lora groups, floats in their shortest exact form.
 * spec_parse(spec_write(x)) is spec_equal to x. Returns malloc'ed text. */
char *spec_write(const spec_t *self);
/* Writes the canonical text durably (temporary file, fsync, rename). */
int spec_write_file(const spec_t *self, const char *path);
bool spec_equal(const spec_t *a, const spec_t *b);

/* Settings that decide a run's trajectory, one "key=value" line each, in a
 * fixed order: mode, model, seq_len, grad_accum, ranks, then per tenant
 * (prefix "tenant.<name>.") data, init_adapter, steps/epochs, batch_size, lr,
 * min_lr, schedule, warmup, weight_decay, betas, eps, grad_clip, seed, r,
 * alpha, rslora, dropout, targets (a full spec's one tenant: no prefix, and
 * neither init_adapter nor the LoRA settings). Excluded: name, output,
 * threads, time_limit, evaluation, checkpoint and attempt settings. Malloc'ed. */
char *spec_resume_text(const spec_t *self);
/* SHA-256 hex of spec_resume_text(); tenant_hash: of one tenant's lines plus
 * the run lines (a pack that lost a cancelled tenant still resumes the rest). */
void spec_resume_hash(const spec_t *self, char hex[65]);
void spec_tenant_resume_hash(const spec_t *self, int tenant, char hex[65]);
/* Explains the first difference between two resume texts ("model: was X,
 * now Y") into out; returns 0 when they are equal, 1 otherwise. */
int spec_resume_explain(const char *saved, const char *now, char *out, size_t outsize);

/* A job unit: one tenant (lora), one trial, or the whole job (full mode).
 * Its spec is complete and single: one tenant named after the unit and no
 * sweep; a full unit's spec is named after the unit too, with output = outdir.
 * The fields are the caller's to adjust: weftd, once it has sharded raw
 * data, points tenants[0].data at the shard file and sets its data_kind to
 * SPEC_DATA_SHARDS before it composes the run. */
typedef struct {
    char name[SPEC_NAME_MAX];   /* tenant name, or trial id "<tenant|spec name>-<8 hex>" */
    char tenant[SPEC_NAME_MAX]; /* the tenant it came from (lora), else "" */
    char trial[SPEC_NAME_MAX];  /* trial id, or "" without a sweep */
    char outdir[SPEC_PATH_MAX]; /* where this unit's results go */
    int nparams;                /* swept values, for the results table */
    char param_key[SPEC_MAX_SWEEP][32];
    char param_value[SPEC_MAX_SWEEP][64];
    spec_t *spec;
} spec_unit_t;

/* Expands tenants x sweep trials into units, in a deterministic order
 * (tenants in spec order; grid: the last swept setting varies fastest;
 * random: draw order, repeated draws dropped). Trial ids hash the spec name,
 * the tenant and the parameter values, so they do not depend on order. */
int spec_expand(const spec_t *self, const spec_limits_t *limits, spec_unit_t **units_p, int *n_p,
                spec_diag_t *diag);
void spec_units_destroy(spec_unit_t **units_p, int n);

/* Hex SHA-256 of what units must share to be packed in one run: mode (lora),
 * model, seq_len, grad_accum, evaluation/checkpoint/attempt settings and
 * resources. Two lora units pack together iff their keys are equal (the
 * backbone's content hash is the caller's to compare). */
void spec_pack_key(const spec_t *self, char hex[65]);
/* A lora run spec holding the tenants of n single-tenant specs (unit specs),
 * named name with output folder output. Fails if they do not share a pack
 * key or two tenants share a name. spec_parse(spec_write(run)) equals run. */
spec_t *spec_compose(const spec_t *const *units, int n, const char *name, const char *output);

/* Small helpers. */
const char *spec_mode_name(spec_mode_t mode);
const char *spec_schedule_name(spec_schedule_t schedule);
const char *spec_data_kind_name(spec_data_kind_t kind);
/* The kind of data a path names, from its extension (see spec_data_kind_t). */
spec_data_kind_t spec_data_kind_of(const char *path);
/* Is s a valid tenant/job name: [A-Za-z0-9._-]{1,64}, no "..", not starting
 * with '.' or '-' (it becomes a folder name and a command-line word). */
bool spec_name_ok(const char *s);

#endif
