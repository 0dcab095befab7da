/* llama.c: the Llama family inside the engine's tagged model (see llama.h):
 * parameter table in Hugging Face's names, RoPE tables, activation memory
 * sized once, forward to the loss and the hand-written backward. Every
 * product goes through llama_kernels.c on cblas_sgemm. */
#include "engine/llama.h"
#include "engine/docattn.h"
#include "engine/segmm.h"
#include "engine/kernels.h"
#include "engine/llama_kernels.h"
#include "common/log.h"
#include "engine/par.h"
#include "engine/rng.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int llama_config_check(const gpt2_config_t *c)
{
    const llama_config_t *x = &c->llama;
    if (x->n_kv_head < 1 || c->n_head % x->n_kv_head)
        return weft_error("n_head = %d is not divisible by n_kv_head = %d: each kv head serves "
                          "a whole group of query heads",
                          c->n_head, x->n_kv_head);
    if (x->head_dim < 2 || x->head_dim % 2 || x->head_dim > 65536)
        return weft_error("head_dim = %d: it must be even and in 2..65536 (RoPE rotates halves)",
                          x->head_dim);
    if ((size_t)c->n_head * x->head_dim > 1u << 20)
        return weft_error("n_head * head_dim = %d * %d is too large", c->n_head, x->head_dim);
    if (x->n_inner < 1 || x->n_inner > 1 << 20)
        return weft_error("n_inner = %d is out of range (1..%d)", x->n_inner, 1 << 20);
    if (!(x->rms_norm_eps > 0.0f) || !isfinite(x->rms_norm_eps))
        return weft_error("rms_norm_eps = %g: it must be a positive number",
                          (double)x->rms_norm_eps);
    if (!(x->rope_theta > 1.0f) || !isfinite(x->rope_theta))
        return weft_error("rope_theta = %g: it must be a number above 1", (double)x->rope_theta);
    if (x->tie_word_embeddings != 0 && x->tie_word_embeddings != 1)
        return weft_error("tie_word_embeddings = %d: it must be 0 or 1", x->tie_word_embeddings);
    if (x->bias >> 7) return weft_error("bias mask 0x%x names more than 7 projections", x->bias);
    switch (x->rope_type) {
    case ROPE_DEFAULT:
        break;
    case ROPE_LLAMA3:
        if (!(x->rope_low_freq_factor > 0.0f) ||
            !(x->rope_high_freq_factor > x->rope_low_freq_factor) || x->rope_original_ctx < 1)
            return weft_error("llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor "
                              "and original_max_position_embeddings >= 1 (got %g, %g, %d)",
                              (double)x->rope_low_freq_factor, (double)x->rope_high_freq_factor,
                              x->rope_original_ctx);
        __attribute__((fallthrough)); /* a factor too */
    case ROPE_LINEAR:
        if (!(x->rope_factor >= 1.0f) || !isfinite(x->rope_factor))
            return weft_error("rope scaling factor = %g: it must be a number >= 1",
                              (double)x->rope_factor);
        break;
    default:
        return weft_error("rope scaling type %d is unknown: use linear or llama3", x->rope_type);
    }
    return 0;
}

/* The projections of a block in table order, with their shapes in terms of
 * (C, QD = H*hd, KD = KV*hd, FF). */
enum { D_C, D_QD, D_KD, D_I };
static const struct {
    const char *path;
    int out, in;
} proj[7] = {
    {"self_attn/q_proj", D_QD, D_C},   {"self_attn/k_proj", D_KD, D_C},
    {"self_attn/v_proj", D_KD, D_C},   {"self_attn/o_proj", D_C, D_QD},
    {"mlp/gate_proj", D_I, D_C},       {"mlp/up_proj", D_I, D_C},
    {"mlp/down_proj", D_C, D_I},
};

static size_t dim_of(const gpt2_config_t *c, int d)
{
    switch (d) {
    case D_QD:
        return (size_t)c->n_head * c->llama.head_dim;
    case D_KD:
        return (size_t)c->llama.n_kv_head * c->llama.head_dim;
    case D_I:
        return (size_t)c->llama.n_inner;
    default:
        return (size_t)c->n_embd;
    }
}

int llama_module_dims(const gpt2_config_t *c, int j, int *in, int *out)
{
    if (j < 0 || j >= 7) return -1;
    *in = (int)dim_of(c, proj[j].in);
    *out = (int)dim_of(c, proj[j].out);
    return 0;
}

size_t llama_ntensors(const gpt2_config_t *c)
{
    size_t per = 2 + 7;
    for (int j = 0; j < 7; j++) per += (c->llama.bias >> j) & 1;
    return 2 + (size_t)c->n_layer * per + (c->llama.tie_word_embeddings ? 0 : 1);
}

static void add(gpt2_t *self, const char *name, size_t d0, size_t d1, gpt2_kind_t kind)
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

void llama_build_table(gpt2_t *self)
{
    const gpt2_config_t *c = &self->cfg;
    size_t C = c->n_embd, V = c->vocab_size;
    char name[64];
    add(self, "model/embed_tokens/weight", V, C, GPT2_EMBEDDING);
    for (int l = 0; l < c->n_layer; l++) {
        snprintf(name, sizeof name, "model/layers/%d/input_layernorm/weight", l);
        add(self, name, C, 0, GPT2_NORM);
        for (int j = 0; j < 7; j++) {
            if (j == 4) {
                snprintf(name, sizeof name, "model/layers/%d/post_attention_layernorm/weight", l);
                add(self, name, C, 0, GPT2_NORM);
            }
            size_t out = dim_of(c, proj[j].out), in = dim_of(c, proj[j].in);
            snprintf(name, sizeof name, "model/layers/%d/%s/weight", l, proj[j].path);
            add(self, name, out, in, GPT2_MATRIX);
            if ((c->llama.bias >> j) & 1) {
                snprintf(name, sizeof name, "model/layers/%d/%s/bias", l, proj[j].path);
                add(self, name, out, 0, GPT2_BIAS);
            }
        }
    }
    add(self, "model/norm/weight", C, 0, GPT2_NORM);
    if (!c->llama.tie_word_embeddings) add(self, "lm_head/weight", V, C, GPT2_EMBEDDING);
}

int llama_point_weights(const gpt2_t *self, llama_weights_t *w, float *buf)
{
    const gpt2_config_t *c = &self->cfg;
    if (!w->h && !(w->h = calloc((size_t)c->n_layer, sizeof *w->h))) return -1;
    const gpt2_tensor_t *t = self->tensors;
    size_t i = 0;
    w->wte = buf + t[i++].offset;
    for (int l = 0; l < c->n_layer; l++) {
        llama_block_t *b = &w->h[l];
        float **wp[7] = {&b->qw, &b->kw, &b->vw, &b->ow, &b->gatew, &b->upw, &b->downw};
        float **bp[7] = {&b->qb, &b->kb, &b->vb, &b->ob, &b->gateb, &b->upb, &b->downb};
        b->ln1w = buf + t[i++].offset;
        for (int j = 0; j < 7; j++) {
            if (j == 4) b->ln2w = buf + t[i++].offset;
            *wp[j] = buf + t[i++].offset;
            *bp[j] = (c->llama.bias >> j) & 1 ? buf + t[i++].offset : NULL;
        }
    }
    w->normw = buf + t[i++].offset;
    w->head = c->llama.tie_word_embeddings ? w->wte : buf + t[i++].offset;
    return 0;
}

void llama_free_weights(llama_weights_t *w)
{
    if (w) free(w->h);
    free(w);
}

void llama_init_weights(gpt2_t *self, uint64_t seed)
{
    weft_rng_t rng;
    rng_seed(&rng, seed);
    for (size_t i = 0; i < self->ntensors; i++) {
        const gpt2_tensor_t *t = &self->tensors[i];
        float *p = self->params + t->offset;
        for (size_t j = 0; j < t->numel; j++)
            p[j] = t->kind == GPT2_NORM   ? 1.0f
                   : t->kind == GPT2_BIAS ? 0.0f
                                          : rng_normal(&rng, 0.0f, 0.02f);
    }
}

void llama_rope_inv_freq(const gpt2_config_t *c, float *inv_freq)
{
    const llama_config_t *x = &c->llama;
    int hd = x->head_dim;
    for (int j = 0; j < hd / 2; j++) {
        double f = 1.0 / pow((double)x->rope_theta, (double)(2 * j) / hd);
        if (x->rope_type == ROPE_LINEAR) {
            f /= x->rope_factor;
        } else if (x->rope_type == ROPE_LLAMA3) {
            /* Hugging Face's _compute_llama3_parameters */
            double old = x->rope_original_ctx, lo = x->rope_low_freq_factor,
                   hi = x->rope_high_freq_factor, factor = x->rope_factor;
            double wavelen = 2.0 * M_PI / f;
            if (wavelen > old / lo) {
                f /= factor;
            } else if (wavelen >= old / hi) {
                double smooth = (old / wavelen - lo) / (hi - lo);
                f = (1.0 - smooth) * f / factor + smooth * f;
            }
        }
        inv_freq[j] = (float)f;
    }
}

/* ---------------------------------------------------------------------------
 * Activations: one allocation for (B,T) capacity. */

struct llama_acts {
    int B, T; /* capacity */
    /* per layer, (L, ...) */
    float *ln1, *ln1_rstd; /* (L,B,T,C), (L,B,T) */
    float *q;              /* (L,B,T,QD) after RoPE */
    float *k, *v;          /* (L,B,T,KD), k after RoPE */
    float *att;            /* (L,B,H,T,T) */
    float *atty;           /* (L,B,T,QD) */
    float *res2;           /* (L,B,T,C) after attention's residual */
    float *ln2, *ln2_rstd; /* (L,B,T,C), (L,B,T) */
    float *gate, *up;      /* (L,B,T,FF) */
    float *res3;           /* (L,B,T,C) after the MLP's residual */
    /* whole model */
    float *encoded;        /* (B,T,C) */
    float *lnf, *lnf_rstd; /* (B,T,C), (B,T) */
    float *logits;         /* (B,T,V) */
    float *lse, *losses;   /* (B,T) */
    float *modout;         /* (B,T,C) a module's output before the residual */
    float *act;            /* (B,T,FF) silu(gate)·up, recomputed in the backward */
    float *cos_t, *sin_t;  /* (T,hd/2) */
    /* backward scratch */
    float *dres, *dln;           /* (B,T,C) */
    float *datty, *dq;           /* (B,T,QD) */
    float *dk, *dv;              /* (B,T,KD) */
    float *dgate, *dup;          /* (B,T,FF) */
    float *datt;                 /* (T,T) */
    float *scale;                /* (B) */
    int *inputs, *targets;       /* (B,T) */
    size_t valid;
    float data[];
};

static size_t acts_layout(const gpt2_config_t *c, int B, int T, llama_acts_t *a)
{
    size_t L = c->n_layer, C = c->n_embd, H = c->n_head, V = c->vocab_size;
    size_t QD = dim_of(c, D_QD), KD = dim_of(c, D_KD), FF = dim_of(c, D_I);
    size_t N = (size_t)B * T, off = 0, half = (size_t)c->llama.head_dim / 2;
    float *base = a ? a->data : NULL;
#define TAKE(field, count)                                                                         \
    do {                                                                                           \
        if (a) a->field = base + off;                                                              \
        off += (count);                                                                            \
    } while (0)
    TAKE(ln1, L * N * C);
    TAKE(ln1_rstd, L * N);
    TAKE(q, L * N * QD);
    TAKE(k, L * N * KD);
    TAKE(v, L * N * KD);
    TAKE(att, L * (size_t)B * H * T * T);
    TAKE(atty, L * N * QD);
    TAKE(res2, L * N * C);
    TAKE(ln2, L * N * C);
    TAKE(ln2_rstd, L * N);
    TAKE(gate, L * N * FF);
    TAKE(up, L * N * FF);
    TAKE(res3, L * N * C);
    TAKE(encoded, N * C);
    TAKE(lnf, N * C);
    TAKE(lnf_rstd, N);
    TAKE(logits, N * V);
    TAKE(lse, N);
    TAKE(losses, N);
    TAKE(modout, N * C);
    TAKE(act, N * FF);
    TAKE(cos_t, (size_t)T * half);
    TAKE(sin_t, (size_t)T * half);
    TAKE(dres, N * C);
    TAKE(dln, N * C);
    TAKE(datty, N * QD);
    TAKE(dq, N * QD);
    TAKE(dk, N * KD);
    TAKE(dv, N * KD);
    TAKE(dgate, N * FF);
    TAKE(dup, N * FF);
    TAKE(datt, (size_t)T * T);
    TAKE(scale, (size_t)B);
#undef TAKE
    if (a) {
        a->inputs = (int *)(base + off);
        a->targets = a->inputs + N;
    }
    return off + 2 * N;
}

int llama_alloc(gpt2_t *self, int B, int T)
{
    llama_acts_t *a = self->lacts;
    if (a && B <= a->B && T <= a->T) return 0;
    free(a);
    size_t n = acts_layout(&self->cfg, B, T, NULL);
    self->lacts = a = malloc(sizeof *a + n * sizeof(float));
    if (!a)
        return weft_error("out of memory for activations of batch %dx%d (%zu MB)", B, T,
                          n * sizeof(float) >> 20);
    a->B = B;
    a->T = T;
    acts_layout(&self->cfg, B, T, a);
    int half = self->cfg.llama.head_dim / 2;
    float *inv = malloc((size_t)half * sizeof *inv);
    if (!inv) return weft_error("out of memory for the RoPE table");
    llama_rope_inv_freq(&self->cfg, inv);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < half; j++) {
            /* the angle in float32 as Hugging Face forms it, then cos and sin */
            float ang = (float)t * inv[j];
            a->cos_t[(size_t)t * half + j] = (float)cos((double)ang);
            a->sin_t[(size_t)t * half + j] = (float)sin((double)ang);
        }
    free(inv);
    return 0;
}

void llama_free_acts(gpt2_t *self)
{
    free(self->lacts);
    self->lacts = NULL;
}

const float *llama_logits(const gpt2_t *self)
{
    return self->lacts ? self->lacts->logits : NULL;
}

const float *llama_losses(const gpt2_t *self)
{
    return self->lacts ? self->lacts->losses : NULL;
}

size_t llama_valid_targets(const gpt2_t *self)
{
    return self->lacts ? self->lacts->valid : 0;
}

/* ---------------------------------------------------------------------------
 * Forward and backward. Tenant isolation: whenever row segments are set,
 * every product over rows runs once per segment with exactly the shapes of
 * the segment's solo run (segmm.h), so no row's bits depend on its
 * neighbours. Linear weights are [out,in]: W is wᵀ (wt 1) forward and w
 * (wt 0) for the input gradient. */
static void module_forward(gpt2_t *self, int l, int m, float *out, const float *inp,
                           const float *w, const float *b, size_t N, int IC, int OC)
{
    segs_t s = gpt2_row_segs(self);
    segmm(&s, out, inp, w, 1, b, 0, N, IC, OC);
    if (self->delta.forward)
        self->delta.forward(self->delta.ctx, l, (gpt2_module_t)m, out, inp, N, IC, OC);
}

/* dinp = (or += when accumulate) the module's input gradient. */
static void module_backward(gpt2_t *self, int l, int m, float *dinp, int accumulate, float *dw,
                            float *db, const float *dout, const float *inp, const float *w,
                            size_t N, int IC, int OC)
{
    segs_t s = gpt2_row_segs(self);
    if (dinp) segmm(&s, dinp, dout, w, 0, NULL, accumulate, N, OC, IC);
    if (dw || db) linear_nt_backward(NULL, 0, dw, db, dout, inp, w, N, IC, OC);
    if (self->delta.backward)
        self->delta.backward(self->delta.ctx, l, (gpt2_module_t)m, dinp, dout, inp, N, IC, OC);
}

int llama_forward(gpt2_t *self, const int *inputs, const int *targets, int B, int T, float *loss)
{
    const gpt2_config_t *c = &self->cfg;
    llama_acts_t *a = self->lacts;
    int C = c->n_embd, H = c->n_head, KV = c->llama.n_kv_head, hd = c->llama.head_dim;
    int V = c->vocab_size, FF = c->llama.n_inner, QD = H * hd, KD = KV * hd;
    float eps = c->llama.rms_norm_eps;
    size_t N = (size_t)B * T, cap = (size_t)a->B * a->T;
    memcpy(a->inputs, inputs, N * sizeof *inputs);
    for (size_t i = 0; i < N; i++) a->targets[i] = targets ? targets[i] : -1;
    /* the RoPE tables are laid out for the capacity T: row t at t·hd/2 */
    const llama_weights_t *w = self->lw;

    int nt = PAR_THREADS(N, C);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t n = 0; n < N; n++)
        memcpy(a->encoded + n * C, w->wte + (size_t)inputs[n] * C, (size_t)C * sizeof(float));
    for (int l = 0; l < c->n_layer; l++) {
        const llama_block_t *bw = &w->h[l];
        size_t lc = l * cap * C, ln = l * cap;
        const float *x = l == 0 ? a->encoded : a->res3 + lc - cap * C;
        float *ln1 = a->ln1 + lc, *q = a->q + l * cap * QD, *k = a->k + l * cap * KD;
        float *v = a->v + l * cap * KD, *atty = a->atty + l * cap * QD;
        float *att = a->att + (size_t)l * a->B * H * (size_t)a->T * a->T;
        float *res2 = a->res2 + lc, *ln2 = a->ln2 + lc, *res3 = a->res3 + lc;
        float *gate = a->gate + l * cap * FF, *up = a->up + l * cap * FF;

        rmsnorm_forward(ln1, a->ln1_rstd + ln, x, bw->ln1w, N, C, eps);
        module_forward(self, l, LLAMA_Q_PROJ, q, ln1, bw->qw, bw->qb, N, C, QD);
        module_forward(self, l, LLAMA_K_PROJ, k, ln1, bw->kw, bw->kb, N, C, KD);
        module_forward(self, l, LLAMA_V_PROJ, v, ln1, bw->vw, bw->vb, N, C, KD);
        if (self->pos) { /* packed documents (docattn.h) */
            rope_forward_pos(q, a->cos_t, a->sin_t, self->pos, B, T, H, hd);
            rope_forward_pos(k, a->cos_t, a->sin_t, self->pos, B, T, KV, hd);
            gqa_attention_forward_docs(atty, att, q, k, v, self->pos, B, T, H, KV, hd);
        } else {
            rope_forward(q, a->cos_t, a->sin_t, B, T, H, hd);
            rope_forward(k, a->cos_t, a->sin_t, B, T, KV, hd);
            gqa_attention_forward(atty, att, q, k, v, B, T, H, KV, hd);
        }
        module_forward(self, l, LLAMA_O_PROJ, a->modout, atty, bw->ow, bw->ob, N, QD, C);
        residual_forward(res2, x, a->modout, N * C);
        rmsnorm_forward(ln2, a->ln2_rstd + ln, res2, bw->ln2w, N, C, eps);
        module_forward(self, l, LLAMA_GATE_PROJ, gate, ln2, bw->gatew, bw->gateb, N, C, FF);
        module_forward(self, l, LLAMA_UP_PROJ, up, ln2, bw->upw, bw->upb, N, C, FF);
        swiglu_forward(a->act, gate, up, N * FF);
        module_forward(self, l, LLAMA_DOWN_PROJ, a->modout, a->act, bw->downw, bw->downb, N, FF,
                       C);
        residual_forward(res3, res2, a->modout, N * C);
    }
    const float *last = a->res3 + (c->n_layer - 1) * cap * C;
    rmsnorm_forward(a->lnf, a->lnf_rstd, last, w->normw, N, C, eps);
    /* logits (N,V) = lnf (N,C) · headᵀ (C,V) */
    segs_t s = gpt2_row_segs(self);
    segmm(&s, a->logits, a->lnf, w->head, 1, NULL, 0, N, C, V);
    a->valid = crossentropy_forward(a->losses, a->lse, a->logits, a->targets, N, V);
    double sum = 0.0;
    for (size_t i = 0; i < N; i++) sum += a->losses[i];
    if (loss) *loss = a->valid ? (float)(sum / (double)a->valid) : 0.0f;
    return 0;
}

int llama_backward(gpt2_t *self, const float *scale)
{
    llama_acts_t *a = self->lacts;
    const gpt2_config_t *c = &self->cfg;
    int B = self->B, T = self->T, C = c->n_embd, H = c->n_head, KV = c->llama.n_kv_head;
    int hd = c->llama.head_dim, V = c->vocab_size, FF = c->llama.n_inner, QD = H * hd,
        KD = KV * hd;
    size_t N = (size_t)B * T, cap = (size_t)a->B * a->T;
    const llama_weights_t *w = self->lw;
    const llama_weights_t *g = self->frozen ? NULL : self->lg;

    if (!scale) {
        float s = a->valid ? 1.0f / (float)a->valid : 0.0f;
        for (int b = 0; b < B; b++) a->scale[b] = s;
        scale = a->scale;
    }
    crossentropy_backward(a->logits, a->lse, a->targets, scale, B, T, V);
    float *dlogits = a->logits;
    /* dlnf (N,C) = dlogits (N,V) · head (V,C); dhead (V,C) += dlogitsᵀ · lnf */
    segs_t s = gpt2_row_segs(self);
    segmm(&s, a->dln, dlogits, w->head, 0, NULL, 0, N, V, C);
    if (g)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, (int)N, 1.0f, dlogits, V, a->lnf,
                    C, 1.0f, g->head, C);
    memset(a->dres, 0, N * C * sizeof *a->dres);
    const float *last = a->res3 + (c->n_layer - 1) * cap * C;
    rmsnorm_backward(a->dres, g ? g->normw : NULL, a->dln, last, w->normw, a->lnf_rstd, N, C);

    for (int l = c->n_layer - 1; l >= 0; l--) {
        const llama_block_t *bw = &w->h[l];
        llama_block_t nog = {0};
        const llama_block_t *bg = g ? &g->h[l] : &nog;
        size_t lc = l * cap * C, ln = l * cap;
        const float *x = l == 0 ? a->encoded : a->res3 + lc - cap * C;
        const float *ln1 = a->ln1 + lc, *q = a->q + l * cap * QD, *k = a->k + l * cap * KD;
        const float *v = a->v + l * cap * KD, *atty = a->atty + l * cap * QD;
        const float *att = a->att + (size_t)l * a->B * H * (size_t)a->T * a->T;
        const float *res2 = a->res2 + lc, *ln2 = a->ln2 + lc;
        const float *gate = a->gate + l * cap * FF, *up = a->up + l * cap * FF;

        /* dres is d(loss)/d(res3); res3 = res2 + down(silu(gate(ln2)) · up(ln2)) */
        swiglu_forward(a->act, gate, up, N * FF);
        module_backward(self, l, LLAMA_DOWN_PROJ, a->dgate, 0, bg->downw, bg->downb,
                        a->dres, a->act, bw->downw, N, FF, C);
        swiglu_backward(a->dgate, a->dup, a->dgate, gate, up, N * FF);
        module_backward(self, l, LLAMA_GATE_PROJ, a->dln, 0, bg->gatew,
                        bg->gateb, a->dgate, ln2, bw->gatew, N, C, FF);
        module_backward(self, l, LLAMA_UP_PROJ, a->dln, 1, bg->upw, bg->upb,
                        a->dup, ln2, bw->upw, N, C, FF);
        rmsnorm_backward(a->dres, bg->ln2w, a->dln, res2, bw->ln2w, a->ln2_rstd + ln, N, C);
        /* dres is now d(loss)/d(res2); res2 = x + o(attn(rope(q(ln1)), rope(k(ln1)), v(ln1))) */
        module_backward(self, l, LLAMA_O_PROJ, a->datty, 0, bg->ow, bg->ob, a->dres,
                        atty, bw->ow, N, QD, C);
        if (self->pos) { /* packed documents (docattn.h) */
            gqa_attention_backward_docs(a->dq, a->dk, a->dv, a->datt, a->datty, q, k, v, att,
                                        self->pos, B, T, H, KV, hd);
            rope_backward_pos(a->dq, a->cos_t, a->sin_t, self->pos, B, T, H, hd);
            rope_backward_pos(a->dk, a->cos_t, a->sin_t, self->pos, B, T, KV, hd);
        } else {
            gqa_attention_backward(a->dq, a->dk, a->dv, a->datt, a->datty, q, k, v, att, B, T, H,
                                   KV, hd);
            rope_backward(a->dq, a->cos_t, a->sin_t, B, T, H, hd);
            rope_backward(a->dk, a->cos_t, a->sin_t, B, T, KV, hd);
        }
        /* frozen: nothing below block 0's projections wants a gradient */
        int need_dx = !self->frozen || l > 0;
        float *dln = need_dx ? a->dln : NULL;
        module_backward(self, l, LLAMA_Q_PROJ, dln, 0, bg->qw, bg->qb, a->dq, ln1,
                        bw->qw, N, C, QD);
        module_backward(self, l, LLAMA_K_PROJ, dln, 1, bg->kw, bg->kb, a->dk, ln1,
                        bw->kw, N, C, KD);
        module_backward(self, l, LLAMA_V_PROJ, dln, 1, bg->vw, bg->vb, a->dv, ln1,
                        bw->vw, N, C, KD);
        if (need_dx)
            rmsnorm_backward(a->dres, bg->ln1w, a->dln, x, bw->ln1w, a->ln1_rstd + ln, N, C);
    }
    /* rows sharing a token add into one row of dwte: encoder_backward takes
     * column blocks, every column adding the rows in order */
    if (g) encoder_backward(g->wte, NULL, a->dres, a->inputs, B, T, C);
    return 0;
}
