/* gpt2.c: the GPT-2 model: parameter table, initialisation, activation
 * memory sized once, forward to the loss and the hand-written backward
 * (see gpt2.h). Every product goes through kernels.c. */
#include "engine/gpt2.h"
#include "engine/docattn.h"
#include "engine/segmm.h"
#include "engine/kernels.h"
#include "engine/llama.h"
#include "common/log.h"
#include "engine/par.h"
#include "engine/rng.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    gpt2_config_t cfg;
} presets[] = {
    {"tiny", {2, 2, 32, 257, 32, ARCH_GPT2, {0}}},
    {"small", {4, 4, 256, 257, 256, ARCH_GPT2, {0}}},
    {"gpt2", {12, 12, 768, 50257, 1024, ARCH_GPT2, {0}}},
    {"llama-tiny",
     {2, 4, 32, 257, 64, ARCH_LLAMA,
      {.n_kv_head = 2, .head_dim = 8, .n_inner = 64, .rms_norm_eps = 1e-5f, .rope_theta = 10000.0f}}},
    {"smollm2-135m",
     {30, 9, 576, 49152, 2048, ARCH_LLAMA,
      {.n_kv_head = 3, .head_dim = 64, .n_inner = 1536, .tie_word_embeddings = 1,
       .rms_norm_eps = 1e-5f, .rope_theta = 100000.0f}}},
    {"qwen2.5-0.5b",
     {24, 14, 896, 151936, 32768, ARCH_LLAMA,
      {.n_kv_head = 2, .head_dim = 64, .n_inner = 4864, .tie_word_embeddings = 1, .bias = 7,
       .rms_norm_eps = 1e-6f, .rope_theta = 1000000.0f}}},
};

int gpt2_config_preset(const char *name, gpt2_config_t *cfg)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(name, presets[i].name)) {
            *cfg = presets[i].cfg;
            return 0;
        }
    return weft_error("unknown preset '%s': use tiny, small, gpt2, llama-tiny, smollm2-135m or "
                      "qwen2.5-0.5b",
                      name);
}

/* Limits that keep every product of sizes far inside size_t and every
 * row count inside the int that cblas takes. */
#define MAX_LAYERS 1024
#define MAX_EMBD   65536
#define MAX_VOCAB  (1 << 22)
#define MAX_CTX    (1 << 16)

int gpt2_config_check(const gpt2_config_t *c)
{
    if (c->n_layer < 1 || c->n_layer > MAX_LAYERS)
        return weft_error("n_layer = %d is out of range (1..%d)", c->n_layer, MAX_LAYERS);
    if (c->n_embd < 1 || c->n_embd > MAX_EMBD)
        return weft_error("n_embd = %d is out of range (1..%d)", c->n_embd, MAX_EMBD);
    if (c->arch != ARCH_GPT2 && c->arch != ARCH_LLAMA)
        return weft_error("architecture %d is unknown: use gpt2 or llama", (int)c->arch);
    if (c->n_head < 1 || c->n_head > MAX_EMBD)
        return weft_error("n_head = %d is out of range (1..%d)", c->n_head, MAX_EMBD);
    if (c->arch == ARCH_GPT2 && c->n_embd % c->n_head)
        return weft_error("n_embd = %d is not divisible by n_head = %d: pick a head count that "
                          "divides the width",
                          c->n_embd, c->n_head);
    if (c->vocab_size < 2 || c->vocab_size > MAX_VOCAB)
        return weft_error("vocab_size = %d is out of range (2..%d)", c->vocab_size, MAX_VOCAB);
    if (c->n_ctx < 1 || c->n_ctx > MAX_CTX)
        return weft_error("n_ctx = %d is out of range (1..%d)", c->n_ctx, MAX_CTX);
    return c->arch == ARCH_LLAMA ? llama_config_check(c) : 0;
}

int gpt2_module_dims(const gpt2_config_t *c, int m, int *in, int *out)
{
    if (c->arch == ARCH_LLAMA) return llama_module_dims(c, m - LLAMA_Q_PROJ, in, out);
    static const int in_mult[GPT2_NMODULES] = {1, 1, 1, 4};
    static const int out_mult[GPT2_NMODULES] = {3, 1, 4, 1};
    if (m < 0 || m >= GPT2_NMODULES) return -1;
    *in = in_mult[m] * c->n_embd;
    *out = out_mult[m] * c->n_embd;
    return 0;
}

/* ---------------------------------------------------------------------------
 * The parameter table: one entry per tensor, offsets in table order. */

static void add_tensor(gpt2_t *self, const char *name, size_t d0, size_t d1, gpt2_kind_t kind)
{
    gpt2_tensor_t *t = &self->tensors[self->ntensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 ? d1 : 1;
    t->numel = d0 * t->shape[1];
    t->offset = self->nparams;
    t->kind = kind;
    self->nparams += t->numel;
}

static void build_table(gpt2_t *self)
{
    size_t C = self->cfg.n_embd;
    char name[48];
    add_tensor(self, "wte", self->cfg.vocab_size, C, GPT2_EMBEDDING);
    add_tensor(self, "wpe", self->cfg.n_ctx, C, GPT2_EMBEDDING);
    static const struct {
        const char *suffix;
        size_t in, out; /* in multiples of C; out 0 for a vector */
        gpt2_kind_t kind;
    } block[] = {
        {"ln_1/weight", 1, 0, GPT2_NORM},          {"ln_1/bias", 1, 0, GPT2_BIAS},
        {"attn/c_attn/weight", 1, 3, GPT2_MATRIX}, {"attn/c_attn/bias", 3, 0, GPT2_BIAS},
        {"attn/c_proj/weight", 1, 1, GPT2_MATRIX}, {"attn/c_proj/bias", 1, 0, GPT2_BIAS},
        {"ln_2/weight", 1, 0, GPT2_NORM},          {"ln_2/bias", 1, 0, GPT2_BIAS},
        {"mlp/c_fc/weight", 1, 4, GPT2_MATRIX},    {"mlp/c_fc/bias", 4, 0, GPT2_BIAS},
        {"mlp/c_proj/weight", 4, 1, GPT2_MATRIX},  {"mlp/c_proj/bias", 1, 0, GPT2_BIAS},
    };
    for (int l = 0; l < self->cfg.n_layer; l++)
        for (size_t i = 0; i < sizeof block / sizeof block[0]; i++) {
            snprintf(name, sizeof name, "h/%d/%s", l, block[i].suffix);
            add_tensor(self, name, block[i].in * C, block[i].out * C, block[i].kind);
        }
    add_tensor(self, "ln_f/weight", C, 0, GPT2_NORM);
    add_tensor(self, "ln_f/bias", C, 0, GPT2_BIAS);
}

/* Entries of the table of config c. */
static size_t table_size(const gpt2_config_t *c)
{
    return c->arch == ARCH_LLAMA ? llama_ntensors(c) : 4 + 12 * (size_t)c->n_layer;
}

size_t gpt2_nparams(const gpt2_config_t *cfg)
{
    gpt2_t table = {.cfg = *cfg};
    if (!(table.tensors = calloc(table_size(cfg), sizeof *table.tensors))) return 0;
    if (cfg->arch == ARCH_LLAMA)
        llama_build_table(&table);
    else
        build_table(&table);
    free(table.tensors);
    return table.nparams;
}

/* Points a weights view at buf, following the table order of build_table. */
static void point_weights(gpt2_t *self, gpt2_weights_t *w, float *buf)
{
    const gpt2_tensor_t *t = self->tensors;
    w->wte = buf + t[0].offset;
    w->wpe = buf + t[1].offset;
    for (int l = 0; l < self->cfg.n_layer; l++) {
        const gpt2_tensor_t *bt = t + 2 + 12 * (size_t)l;
        gpt2_block_t *hb = &w->h[l];
        hb->ln1w = buf + bt[0].offset;
        hb->ln1b = buf + bt[1].offset;
        hb->qkvw = buf + bt[2].offset;
        hb->qkvb = buf + bt[3].offset;
        hb->attprojw = buf + bt[4].offset;
        hb->attprojb = buf + bt[5].offset;
        hb->ln2w = buf + bt[6].offset;
        hb->ln2b = buf + bt[7].offset;
        hb->fcw = buf + bt[8].offset;
        hb->fcb = buf + bt[9].offset;
        hb->fcprojw = buf + bt[10].offset;
        hb->fcprojb = buf + bt[11].offset;
    }
    w->lnfw = buf + t[self->ntensors - 2].offset;
    w->lnfb = buf + t[self->ntensors - 1].offset;
}

gpt2_t *gpt2_new(const gpt2_config_t *cfg)
{
    if (gpt2_config_check(cfg) < 0) return NULL;
    gpt2_t *self = calloc(1, sizeof *self);
    if (!self) return weft_error("out of memory"), NULL;
    self->cfg = *cfg;
    if (cfg->arch == ARCH_LLAMA) {
        self->tensors = calloc(table_size(cfg), sizeof *self->tensors);
        self->lw = calloc(1, sizeof *self->lw);
        self->lg = calloc(1, sizeof *self->lg);
        if (self->tensors && self->lw && self->lg) {
            llama_build_table(self);
            self->params = calloc(self->nparams, sizeof *self->params);
        }
        if (!self->params || llama_point_weights(self, self->lw, self->params) < 0) {
            weft_error("out of memory for %zu parameters", self->nparams);
            gpt2_destroy(&self);
        }
        return self;
    }
    self->tensors = calloc(table_size(cfg), sizeof *self->tensors);
    self->w.h = calloc(cfg->n_layer, sizeof *self->w.h);
    self->g.h = calloc(cfg->n_layer, sizeof *self->g.h);
    if (self->tensors && self->w.h && self->g.h) {
        build_table(self);
        self->params = calloc(self->nparams, sizeof *self->params);
    }
    if (!self->params) {
        weft_error("out of memory for %zu parameters", self->nparams);
        gpt2_destroy(&self);
        return NULL;
    }
    point_weights(self, &self->w, self->params);
    return self;
}

void gpt2_destroy(gpt2_t **self_p)
{
    gpt2_t *self = *self_p;
    if (!self) return;
    free(self->acts);
    llama_free_acts(self);
    llama_free_weights(self->lw);
    llama_free_weights(self->lg);
    free(self->params);
    free(self->grads);
    free(self->w.h);
    free(self->g.h);
    free(self->tensors);
    free(self);
    *self_p = NULL;
}

const gpt2_tensor_t *gpt2_tensor(const gpt2_t *self, const char *name)
{
    for (size_t i = 0; i < self->ntensors; i++)
        if (!strcmp(self->tensors[i].name, name)) return &self->tensors[i];
    return NULL;
}

void gpt2_init_weights(gpt2_t *self, uint64_t seed)
{
    if (self->cfg.arch == ARCH_LLAMA) {
        llama_init_weights(self, seed);
        return;
    }
    weft_rng_t rng;
    rng_seed(&rng, seed);
    float proj_std = 0.02f / sqrtf(2.0f * (float)self->cfg.n_layer);
    for (size_t i = 0; i < self->ntensors; i++) {
        const gpt2_tensor_t *t = &self->tensors[i];
        float *p = self->params + t->offset;
        size_t len = strlen(t->name);
        int is_proj = len > 13 && !strcmp(t->name + len - 13, "c_proj/weight");
        for (size_t j = 0; j < t->numel; j++) switch (t->kind) {
            case GPT2_MATRIX:
                p[j] = rng_normal(&rng, 0.0f, is_proj ? proj_std : 0.02f);
                break;
            case GPT2_EMBEDDING:
                p[j] = rng_normal(&rng, 0.0f, 0.02f);
                break;
            case GPT2_NORM:
                p[j] = 1.0f;
                break;
            case GPT2_BIAS:
                p[j] = 0.0f;
                break;
            }
    }
}

float *gpt2_grads(gpt2_t *self)
{
    if (!self->grads) {
        self->grads = calloc(self->nparams, sizeof *self->grads);
        if (!self->grads) return weft_error("out of memory for gradients"), NULL;
        if (self->cfg.arch == ARCH_LLAMA) {
            if (llama_point_weights(self, self->lg, self->grads) < 0)
                return weft_error("out of memory for gradients"), NULL;
        } else {
            point_weights(self, &self->g, self->grads);
        }
    }
    return self->grads;
}

void gpt2_zero_grad(gpt2_t *self)
{
    if (!self->grads) return;
    size_t n = self->nparams, chunk = 1 << 16, nchunk = (n + chunk - 1) / chunk;
    int nt = PAR_THREADS(n, 1);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t c = 0; c < nchunk; c++)
        memset(self->grads + c * chunk, 0,
               ((c + 1) * chunk < n ? chunk : n - c * chunk) * sizeof *self->grads);
}

double gpt2_grad_norm(const gpt2_t *self)
{
    return self->grads ? sqrt(grad_sumsq(self->grads, self->nparams)) : 0.0;
}

void gpt2_adamw(gpt2_t *self, float *m, float *v, float lr, const adamw_hparams_t *hp,
                unsigned decay_kinds, long t)
{
    for (size_t i = 0; i < self->ntensors; i++) {
        const gpt2_tensor_t *x = &self->tensors[i];
        float wd = decay_kinds & (1u << x->kind) ? hp->weight_decay : 0.0f;
        adamw_update(self->params + x->offset, self->grads + x->offset, m + x->offset,
                     v + x->offset, x->numel, lr, wd, hp, t);
    }
}

double gpt2_flops_per_token(const gpt2_t *self, int T)
{
    const gpt2_config_t *c = &self->cfg;
    double width = c->arch == ARCH_LLAMA ? (double)c->n_head * c->llama.head_dim : c->n_embd;
    return 6.0 * (double)self->nparams + 6.0 * c->n_layer * width * T;
}

double gpt2_flops_docs(const gpt2_t *self, const int *pos, int B, int T)
{
    const gpt2_config_t *c = &self->cfg;
    double width = c->arch == ARCH_LLAMA ? (double)c->n_head * c->llama.head_dim : c->n_embd;
    double sq = pos ? docs_square_sum(pos, B, T) : (double)B * T * T;
    return 6.0 * (double)self->nparams * B * T + 6.0 * c->n_layer * width * sq;
}

/* ---------------------------------------------------------------------------
 * Activations: one allocation, sized by acts_layout() for (B,T). */

struct gpt2_acts {
    int B, T; /* capacity */
    /* per layer, (L, ...) */
    float *ln1, *ln1_mean, *ln1_rstd; /* (L,B,T,C), (L,B,T) x2 */
    float *qkv;                       /* (L,B,T,3C) */
    float *att;                       /* (L,B,NH,T,T) */
    float *atty;                      /* (L,B,T,C) */
    float *res2;                      /* (L,B,T,C) */
    float *ln2, *ln2_mean, *ln2_rstd; /* (L,B,T,C), (L,B,T) x2 */
    float *fch, *fch_gelu;            /* (L,B,T,4C) x2 */
    float *res3;                      /* (L,B,T,C) */
    /* whole model */
    float *encoded;                   /* (B,T,C) */
    float *lnf, *lnf_mean, *lnf_rstd; /* (B,T,C), (B,T) x2 */
    float *logits;                    /* (B,T,V) */
    float *lse, *losses;              /* (B,T) */
    float *modout;                    /* (B,T,C) a module's output before the residual */
    /* backward scratch */
    float *dres;           /* (B,T,C) the residual stream's gradient */
    float *dln;            /* (B,T,C) */
    float *datty;          /* (B,T,C) */
    float *dqkv;           /* (B,T,3C) */
    float *dfch;           /* (B,T,4C) */
    float *datt;           /* (T,T) */
    float *scale;          /* (B) */
    int *inputs, *targets; /* (B,T) copies of the last forward's */
    size_t valid;
    float data[]; /* everything above points in here */
};

/* Lays out the activations for (B,T) after base (NULL: only counts) and
 * returns the number of floats needed. */
static size_t acts_layout(const gpt2_config_t *c, int B, int T, gpt2_acts_t *a)
{
    size_t L = c->n_layer, C = c->n_embd, NH = c->n_head, V = c->vocab_size;
    size_t N = (size_t)B * T, off = 0;
    float *base = a ? a->data : NULL;
#define TAKE(field, count)                                                                         \
    do {                                                                                           \
        if (a) a->field = base + off;                                                              \
        off += (count);                                                                            \
    } while (0)
    TAKE(ln1, L * N * C);
    TAKE(ln1_mean, L * N);
    TAKE(ln1_rstd, L * N);
    TAKE(qkv, L * N * 3 * C);
    TAKE(att, L * (size_t)B * NH * T * T);
    TAKE(atty, L * N * C);
    TAKE(res2, L * N * C);
    TAKE(ln2, L * N * C);
    TAKE(ln2_mean, L * N);
    TAKE(ln2_rstd, L * N);
    TAKE(fch, L * N * 4 * C);
    TAKE(fch_gelu, L * N * 4 * C);
    TAKE(res3, L * N * C);
    TAKE(encoded, N * C);
    TAKE(lnf, N * C);
    TAKE(lnf_mean, N);
    TAKE(lnf_rstd, N);
    TAKE(logits, N * V);
    TAKE(lse, N);
    TAKE(losses, N);
    TAKE(modout, N * C);
    TAKE(dres, N * C);
    TAKE(dln, N * C);
    TAKE(datty, N * C);
    TAKE(dqkv, N * 3 * C);
    TAKE(dfch, N * 4 * C);
    TAKE(datt, (size_t)T * T);
    TAKE(scale, (size_t)B);
#undef TAKE
    if (a) {
        a->inputs = (int *)(base + off);
        a->targets = a->inputs + N;
    }
    return off + 2 * N; /* the two int arrays, as floats (same size) */
}

int gpt2_max_seq_len(const gpt2_config_t *c)
{
    int w = c->arch == ARCH_LLAMA ? c->llama.sliding_window : 0;
    return w > 0 && w < c->n_ctx ? w : c->n_ctx;
}

int gpt2_check_window(const gpt2_config_t *c, int T, const char *what)
{
    int w = c->arch == ARCH_LLAMA ? c->llama.sliding_window : 0;
    if (w > 0 && T > w)
        return weft_error("%s %d is longer than the model's sliding_window = %d: weft runs a "
                          "sliding-window model (Mistral) only while a sequence fits in the "
                          "window; use at most %d",
                          what, T, w, w);
    return 0;
}

int gpt2_alloc(gpt2_t *self, int B, int T)
{
    if (B < 1 || T < 1) return weft_error("batch shape (%d,%d) must be positive", B, T);
    if (T > self->cfg.n_ctx)
        return weft_error("seq_len %d is longer than the model's context n_ctx = %d: use a "
                          "shorter sequence",
                          T, self->cfg.n_ctx);
    if (gpt2_check_window(&self->cfg, T, "seq_len") < 0) return -1;
    if ((size_t)B * T * (size_t)self->cfg.vocab_size > (size_t)1 << 34)
        return weft_error("batch %dx%d is too large for this model's logits", B, T);
    if (self->cfg.arch == ARCH_LLAMA) return llama_alloc(self, B, T);
    if (self->acts && B <= self->acts->B && T <= self->acts->T) return 0;
    free(self->acts);
    size_t n = acts_layout(&self->cfg, B, T, NULL);
    self->acts = malloc(sizeof *self->acts + n * sizeof(float));
    if (!self->acts)
        return weft_error("out of memory for activations of batch %dx%d (%zu MB)", B, T,
                          n * sizeof(float) >> 20);
    self->acts->B = B;
    self->acts->T = T;
    acts_layout(&self->cfg, B, T, self->acts);
    return 0;
}

const float *gpt2_logits(const gpt2_t *self)
{
    if (self->cfg.arch == ARCH_LLAMA) return llama_logits(self);
    return self->acts ? self->acts->logits : NULL;
}

const float *gpt2_losses(const gpt2_t *self)
{
    if (self->cfg.arch == ARCH_LLAMA) return llama_losses(self);
    return self->acts ? self->acts->losses : NULL;
}

size_t gpt2_valid_targets(const gpt2_t *self)
{
    if (self->cfg.arch == ARCH_LLAMA) return llama_valid_targets(self);
    return self->acts ? self->acts->valid : 0;
}

/* ---------------------------------------------------------------------------
 * Forward and backward. Per-layer activations of layer l start at
 * l·(B·T·width) for the capacity (B,T), so a smaller batch fits inside. */

/* Tenant isolation by construction: when row segments are set (a LoRA
 * pack, one segment per tenant), every product over rows runs once per
 * segment with the shapes the segment's tenant has alone (segmm.h), spread
 * over seg_threads. One product over all rows would not do: OpenBLAS picks
 * kernels and blockings by the row count, and they round a row differently
 * (AVX2 and AVX-512 families alike). Without segments (full fine-tuning) a
 * product runs once over all rows, threaded inside BLAS. */
segs_t gpt2_row_segs(const gpt2_t *self)
{
    return (segs_t){.seg = self->seg,
                    .nseg = self->nseg,
                    .T = self->T,
                    .threads = self->nseg ? self->seg_threads : 1};
}

static void module_forward(gpt2_t *self, int l, gpt2_module_t m, float *out, const float *inp,
                           const float *w, const float *b, size_t N, int IC, int OC)
{
    segs_t s = gpt2_row_segs(self);
    segmm(&s, out, inp, w, 0, b, 0, N, IC, OC);
    if (self->delta.forward) self->delta.forward(self->delta.ctx, l, m, out, inp, N, IC, OC);
}

static void module_backward(gpt2_t *self, int l, gpt2_module_t m, float *dinp, float *dw, float *db,
                            const float *dout, const float *inp, const float *w, size_t N, int IC,
                            int OC)
{
    segs_t s = gpt2_row_segs(self);
    /* dinp (N,IC) = dout (N,OC) · wᵀ, w (IC,OC) */
    if (dinp) segmm(&s, dinp, dout, w, 1, NULL, 0, N, OC, IC);
    if (dw || db) linear_backward(NULL, dw, db, dout, inp, w, N, IC, OC);
    if (self->delta.backward)
        self->delta.backward(self->delta.ctx, l, m, dinp, dout, inp, N, IC, OC);
}

int gpt2_forward(gpt2_t *self, const int *inputs, const int *targets, int B, int T, float *loss)
{
    if (gpt2_alloc(self, B, T) < 0) return -1;
    const gpt2_config_t *c = &self->cfg;
    int C = c->n_embd, NH = c->n_head, V = c->vocab_size;
    size_t N = (size_t)B * T;
    for (size_t i = 0; i < N; i++) {
        if (inputs[i] < 0 || inputs[i] >= V)
            return weft_error("input token %d at row %zu, position %zu is outside the vocabulary "
                              "[0,%d)",
                              inputs[i], i / T, i % T, V);
        if (targets && (targets[i] < -1 || targets[i] >= V))
            return weft_error("target %d at row %zu, position %zu is outside [-1,%d)", targets[i],
                              i / T, i % T, V);
    }
    long segs = 0;
    for (int i = 0; i < self->nseg; i++) {
        if (self->seg[i] < 0) return weft_error("row segment %d is negative", i);
        segs += self->seg[i];
    }
    if (self->nseg && segs != B)
        return weft_error("row segments add up to %ld sequences, not the batch's %d", segs, B);
    if (self->pos && docs_check(self->pos, B, T) < 0) return -1;
    self->B = B;
    self->T = T;
    if (c->arch == ARCH_LLAMA) return llama_forward(self, inputs, targets, B, T, loss);
    gpt2_acts_t *a = self->acts;
    size_t cap = (size_t)a->B * a->T;
    memcpy(a->inputs, inputs, N * sizeof *inputs);
    for (size_t i = 0; i < N; i++) a->targets[i] = targets ? targets[i] : -1;

    const gpt2_weights_t *w = &self->w;
    if (self->pos)
        encoder_forward_pos(a->encoded, inputs, self->pos, w->wte, w->wpe, B, T, C);
    else
        encoder_forward(a->encoded, inputs, w->wte, w->wpe, B, T, C);
    for (int l = 0; l < c->n_layer; l++) {
        const gpt2_block_t *bw = &w->h[l];
        size_t lc = l * cap * C, ln = l * cap;
        const float *x = l == 0 ? a->encoded : a->res3 + lc - cap * C;
        float *ln1 = a->ln1 + lc, *qkv = a->qkv + 3 * lc, *atty = a->atty + lc;
        float *att = a->att + (size_t)l * a->B * NH * (size_t)a->T * a->T;
        float *res2 = a->res2 + lc, *ln2 = a->ln2 + lc, *res3 = a->res3 + lc;
        float *fch = a->fch + 4 * lc, *fch_gelu = a->fch_gelu + 4 * lc;

        layernorm_forward(ln1, a->ln1_mean + ln, a->ln1_rstd + ln, x, bw->ln1w, bw->ln1b, N, C);
        module_forward(self, l, GPT2_ATTN_C_ATTN, qkv, ln1, bw->qkvw, bw->qkvb, N, C, 3 * C);
        if (self->pos)
            attention_forward_docs(atty, att, qkv, self->pos, B, T, C, NH);
        else
            attention_forward(atty, att, qkv, B, T, C, NH);
        module_forward(self, l, GPT2_ATTN_C_PROJ, a->modout, atty, bw->attprojw, bw->attprojb, N, C,
                       C);
        residual_forward(res2, x, a->modout, N * C);
        layernorm_forward(ln2, a->ln2_mean + ln, a->ln2_rstd + ln, res2, bw->ln2w, bw->ln2b, N, C);
        module_forward(self, l, GPT2_MLP_C_FC, fch, ln2, bw->fcw, bw->fcb, N, C, 4 * C);
        gelu_forward(fch_gelu, fch, N * 4 * C);
        module_forward(self, l, GPT2_MLP_C_PROJ, a->modout, fch_gelu, bw->fcprojw, bw->fcprojb, N,
                       4 * C, C);
        residual_forward(res3, res2, a->modout, N * C);
    }
    const float *last = a->res3 + (c->n_layer - 1) * cap * C;
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, last, w->lnfw, w->lnfb, N, C);
    /* logits (N,V) = lnf (N,C) · wteᵀ (C,V): the tied LM head */
    segs_t s = gpt2_row_segs(self);
    segmm(&s, a->logits, a->lnf, w->wte, 1, NULL, 0, N, C, V);
    a->valid = crossentropy_forward(a->losses, a->lse, a->logits, a->targets, N, V);
    double sum = 0.0;
    for (size_t i = 0; i < N; i++) sum += a->losses[i];
    if (loss) *loss = a->valid ? (float)(sum / (double)a->valid) : 0.0f;
    return 0;
}

int gpt2_backward(gpt2_t *self, const float *scale)
{
    gpt2_acts_t *a = self->acts;
    if ((!a && !self->lacts) || !self->B)
        return weft_error("gpt2_backward called before a forward pass");
    if (!self->frozen && !gpt2_grads(self)) return -1;
    if (self->cfg.arch == ARCH_LLAMA) return llama_backward(self, scale);
    const gpt2_config_t *c = &self->cfg;
    int B = self->B, T = self->T, C = c->n_embd, NH = c->n_head, V = c->vocab_size;
    size_t N = (size_t)B * T, cap = (size_t)a->B * a->T;
    const gpt2_weights_t *w = &self->w;
    const gpt2_weights_t *g = self->frozen ? NULL : &self->g;

    if (!scale) {
        float s = a->valid ? 1.0f / (float)a->valid : 0.0f;
        for (int b = 0; b < B; b++) a->scale[b] = s;
        scale = a->scale;
    }
    crossentropy_backward(a->logits, a->lse, a->targets, scale, B, T, V);
    float *dlogits = a->logits;
    /* dlnf (N,C) = dlogits (N,V) · wte (V,C); dwte (V,C) += dlogitsᵀ (V,N) · lnf (N,C) */
    segs_t s = gpt2_row_segs(self);
    segmm(&s, a->dln, dlogits, w->wte, 0, NULL, 0, N, V, C);
    if (g)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, (int)N, 1.0f, dlogits, V, a->lnf,
                    C, 1.0f, g->wte, C);
    memset(a->dres, 0, N * C * sizeof *a->dres);
    const float *last = a->res3 + (c->n_layer - 1) * cap * C;
    layernorm_backward(a->dres, g ? g->lnfw : NULL, g ? g->lnfb : NULL, a->dln, last, w->lnfw,
                       a->lnf_mean, a->lnf_rstd, N, C);

    for (int l = c->n_layer - 1; l >= 0; l--) {
        const gpt2_block_t *bw = &w->h[l];
        gpt2_block_t nog = {0};
        const gpt2_block_t *bg = g ? &g->h[l] : &nog;
        size_t lc = l * cap * C, ln = l * cap;
        const float *x = l == 0 ? a->encoded : a->res3 + lc - cap * C;
        const float *ln1 = a->ln1 + lc, *qkv = a->qkv + 3 * lc, *atty = a->atty + lc;
        const float *att = a->att + (size_t)l * a->B * NH * (size_t)a->T * a->T;
        const float *res2 = a->res2 + lc, *ln2 = a->ln2 + lc;
        const float *fch = a->fch + 4 * lc, *fch_gelu = a->fch_gelu + 4 * lc;

        /* dres is d(loss)/d(res3); res3 = res2 + c_proj(gelu(c_fc(ln_2(res2)))) */
        module_backward(self, l, GPT2_MLP_C_PROJ, a->dfch, bg->fcprojw, bg->fcprojb, a->dres,
                        fch_gelu, bw->fcprojw, N, 4 * C, C);
        gelu_backward(a->dfch, fch, a->dfch, N * 4 * C);
        module_backward(self, l, GPT2_MLP_C_FC, a->dln, bg->fcw, bg->fcb, a->dfch, ln2, bw->fcw, N,
                        C, 4 * C);
        layernorm_backward(a->dres, bg->ln2w, bg->ln2b, a->dln, res2, bw->ln2w, a->ln2_mean + ln,
                           a->ln2_rstd + ln, N, C);
        /* dres is now d(loss)/d(res2); res2 = x + c_proj(attn(c_attn(ln_1(x)))) */
        module_backward(self, l, GPT2_ATTN_C_PROJ, a->datty, bg->attprojw, bg->attprojb, a->dres,
                        atty, bw->attprojw, N, C, C);
        if (self->pos)
            attention_backward_docs(a->dqkv, a->datt, a->datty, qkv, att, self->pos, B, T, C, NH);
        else
            attention_backward(a->dqkv, a->datt, a->datty, qkv, att, B, T, C, NH);
        /* frozen: nothing below block 0's c_attn wants a gradient, skip dx */
        int need_dx = !self->frozen || l > 0;
        module_backward(self, l, GPT2_ATTN_C_ATTN, need_dx ? a->dln : NULL, bg->qkvw, bg->qkvb,
                        a->dqkv, ln1, bw->qkvw, N, C, 3 * C);
        if (need_dx)
            layernorm_backward(a->dres, bg->ln1w, bg->ln1b, a->dln, x, bw->ln1w, a->ln1_mean + ln,
                               a->ln1_rstd + ln, N, C);
    }
    if (g && self->pos)
        encoder_backward_pos(g->wte, g->wpe, a->dres, a->inputs, self->pos, B, T, C);
    else if (g)
        encoder_backward(g->wte, g->wpe, a->dres, a->inputs, B, T, C);
    return 0;
}
