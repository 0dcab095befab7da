/* lora_train.c: packed multi-tenant LoRA training (see lora_train.h). The
 * frozen base's products run once per tenant segment, with the shapes the
 * tenant has alone (segmm.h; gpt2.c and llama.c alike); the pack adds each
 * tenant's delta at the module seams of the model's architecture (GPT-2's
 * four, Llama's seven). */
#include "engine/lora_train.h"
#include "common/log.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)GPT2_ATTN_C_ATTN == LORA_ATTN_C_ATTN &&
                   (int)GPT2_ATTN_C_PROJ == LORA_ATTN_C_PROJ &&
                   (int)GPT2_MLP_C_FC == LORA_MLP_C_FC && (int)GPT2_MLP_C_PROJ == LORA_MLP_C_PROJ,
               "gpt2 and lora number the four modules alike");
_Static_assert((int)LLAMA_Q_PROJ == LORA_Q_PROJ && (int)LLAMA_K_PROJ == LORA_K_PROJ &&
                   (int)LLAMA_V_PROJ == LORA_V_PROJ && (int)LLAMA_O_PROJ == LORA_O_PROJ &&
                   (int)LLAMA_GATE_PROJ == LORA_GATE_PROJ && (int)LLAMA_UP_PROJ == LORA_UP_PROJ &&
                   (int)LLAMA_DOWN_PROJ == LORA_DOWN_PROJ && (int)MODEL_NMODULES == LORA_NMODULES,
               "the engine and lora number the seven Llama modules alike");

void gpt2_lora_dims(const gpt2_config_t *c, lora_dims_t *dims)
{
    memset(dims, 0, sizeof *dims);
    dims->arch = c->arch == ARCH_LLAMA ? "llama" : "gpt2";
    dims->n_embd = c->n_embd;
    for (int m = 0; m < LORA_NMODULES; m++)
        if (gpt2_module_dims(c, m, &dims->in[m], &dims->out[m]) == 0) dims->modules |= 1u << m;
}

lora_pack_t *lora_pack_for(const gpt2_t *model, int n_tenants, const lora_spec_t *specs,
                           size_t max_rows)
{
    lora_dims_t dims;
    gpt2_lora_dims(&model->cfg, &dims);
    return lora_pack_new_dims(model->cfg.n_layer, &dims, n_tenants, specs, max_rows);
}

struct lora_trainer {
    gpt2_t *model;
    lora_pack_t *pack;
    int K, B_max, T;
    int threads;           /* the per-tenant products' threads (segmm.h) */
    int blas_threads;      /* OpenBLAS's own, put back after each pass */
    lora_hparams_t *hp;    /* K */
    long *step;            /* K: updates taken */
    long *failed_at;       /* K: -1 while training */
    int *in_batch;         /* K: rows in the last forward_backward */
    double *norm;          /* K */
    float *tloss;          /* K: loss in the last forward */
    size_t *valid_total;   /* K: the step's valid targets, 0: per batch */
    float *lr;             /* K */
    int *inputs, *targets; /* (B_max,T) the packed batch */
    int *pos;              /* (B_max,T) positions inside documents (docattn.h) */
    const int **docs;      /* K: each tenant's positions, or NULL */
    float *scale;          /* (B_max) d(loss)/d(row b's summed loss) */
    size_t *row0, *nrows;  /* K, in rows of the (B,T) grid */
    int *seq0;             /* K: first sequence of each tenant */
};

static void delta_forward(void *ctx, int l, gpt2_module_t m, float *out, const float *inp, size_t N,
                          int IC, int OC)
{
    (void)N, (void)IC, (void)OC;
    lora_forward(ctx, l, (int)m, out, inp);
}

static void delta_backward(void *ctx, int l, gpt2_module_t m, float *dinp, const float *dout,
                           const float *inp, size_t N, int IC, int OC)
{
    (void)N, (void)IC, (void)OC;
    lora_backward(ctx, l, (int)m, dinp, dout, inp);
}

void lora_attach(gpt2_t *model, lora_pack_t *pack)
{
    model->frozen = 1;
    model->delta = (gpt2_delta_t){delta_forward, delta_backward, pack};
}

void lora_detach(gpt2_t *model)
{
    model->delta = (gpt2_delta_t){NULL, NULL, NULL};
}

lora_trainer_t *lora_trainer_new(gpt2_t *model, lora_pack_t *pack, const lora_hparams_t *hp,
                                 int B_max, int T)
{
    const gpt2_config_t *c = &model->cfg;
    lora_dims_t want;
    gpt2_lora_dims(c, &want);
    const lora_dims_t *have = lora_pack_dims(pack);
    if (lora_pack_layers(pack) != c->n_layer || have->modules != want.modules ||
        memcmp(have->in, want.in, sizeof want.in) || memcmp(have->out, want.out, sizeof want.out)) {
        weft_error("LoRA pack is for %d blocks of width %d (%s), the model has %d blocks of "
                   "width %d (%s, or other module widths)",
                   lora_pack_layers(pack), have->n_embd, have->arch, c->n_layer, c->n_embd,
                   want.arch);
        return NULL;
    }
    if (B_max < 1 || T < 1 || (size_t)B_max * (size_t)T > lora_pack_max_rows(pack)) {
        weft_error("packed batch of %d x %d rows does not fit the LoRA pack's %zu rows", B_max, T,
                   lora_pack_max_rows(pack));
        return NULL;
    }
    if (gpt2_alloc(model, B_max, T) < 0) return NULL;
    int K = lora_pack_tenants(pack);
    lora_trainer_t *self = calloc(1, sizeof *self);
    if (!self) goto oom;
    self->model = model, self->pack = pack, self->K = K, self->B_max = B_max, self->T = T;
    self->hp = malloc((size_t)K * sizeof *self->hp);
    self->step = calloc((size_t)K, sizeof *self->step);
    self->failed_at = malloc((size_t)K * sizeof *self->failed_at);
    self->in_batch = calloc((size_t)K, sizeof *self->in_batch);
    self->norm = calloc((size_t)K, sizeof *self->norm);
    self->lr = calloc((size_t)K, sizeof *self->lr);
    self->tloss = calloc((size_t)K, sizeof *self->tloss);
    self->valid_total = calloc((size_t)K, sizeof *self->valid_total);
    self->row0 = calloc((size_t)K, sizeof *self->row0);
    self->nrows = calloc((size_t)K, sizeof *self->nrows);
    self->seq0 = calloc((size_t)K, sizeof *self->seq0);
    self->inputs = malloc((size_t)B_max * T * sizeof *self->inputs);
    self->targets = malloc((size_t)B_max * T * sizeof *self->targets);
    self->pos = malloc((size_t)B_max * T * sizeof *self->pos);
    self->docs = calloc((size_t)K, sizeof *self->docs);
    self->scale = malloc((size_t)B_max * sizeof *self->scale);
    if (!self->hp || !self->step || !self->failed_at || !self->in_batch || !self->norm ||
        !self->lr || !self->tloss || !self->valid_total || !self->row0 || !self->nrows ||
        !self->seq0 || !self->inputs || !self->targets || !self->pos || !self->docs || !self->scale)
        goto oom;
    memcpy(self->hp, hp, (size_t)K * sizeof *hp);
    for (int k = 0; k < K; k++) self->failed_at[k] = -1;
    lora_attach(model, pack);
    return self;
oom:
    lora_trainer_destroy(&self);
    weft_error("out of memory for a LoRA trainer of %d tenants", K);
    return NULL;
}

void lora_trainer_destroy(lora_trainer_t **self_p)
{
    lora_trainer_t *self = *self_p;
    if (!self) return;
    if (self->model && self->model->delta.ctx == self->pack) lora_detach(self->model);
    free(self->hp);
    free(self->step);
    free(self->failed_at);
    free(self->in_batch);
    free(self->norm);
    free(self->lr);
    free(self->tloss);
    free(self->valid_total);
    free(self->row0);
    free(self->nrows);
    free(self->seq0);
    free(self->inputs);
    free(self->targets);
    free(self->pos);
    free(self->docs);
    free(self->scale);
    free(self);
    *self_p = NULL;
}

/* One row segment per tenant, set for the trainer's own passes only: each
 * tenant's rows then see the products they would see alone (gpt2.h). */
static void segments(lora_trainer_t *self, int on)
{
    self->model->seg = on ? self->in_batch : NULL;
    self->model->nseg = on ? self->K : 0;
    self->model->seg_threads = self->threads;
    if (self->threads > 1) { /* the products' threads are segmm's, not BLAS's */
        if (on) self->blas_threads = openblas_get_num_threads();
        openblas_set_num_threads(on ? 1 : self->blas_threads);
    }
}

void lora_trainer_set_threads(lora_trainer_t *self, int threads)
{
    self->threads = threads > 1 ? threads : 1;
}

/* Packs the batches of tenants still training into (B,T), one segment each,
 * and runs the forward; per-tenant losses into loss. */
static int packed_forward(lora_trainer_t *self, const lora_batch_t *batches, float *loss,
                          int *B_out)
{
    int T = self->T, B = 0, docs = 0;
    for (int k = 0; k < self->K; k++) {
        int bk = self->failed_at[k] >= 0 ? 0 : batches[k].B;
        if (bk < 0) return weft_error("tenant %d: negative batch size %d", k, bk);
        if (bk > self->B_max - B)
            return weft_error("tenants' batches add up to more than the %d sequences the trainer "
                              "was sized for",
                              self->B_max);
        size_t n = (size_t)bk * T;
        if (bk) {
            memcpy(self->inputs + (size_t)B * T, batches[k].inputs, n * sizeof(int));
            memcpy(self->targets + (size_t)B * T, batches[k].targets, n * sizeof(int));
            /* packed documents, or one per row: positions 0..T-1 */
            for (size_t i = 0; i < n; i++)
                self->pos[(size_t)B * T + i] = self->docs[k] ? self->docs[k][i] : (int)(i % T);
            docs |= self->docs[k] != NULL;
        }
        self->seq0[k] = B;
        self->row0[k] = (size_t)B * T;
        self->nrows[k] = n;
        self->in_batch[k] = bk;
        B += bk;
    }
    *B_out = B;
    for (int k = 0; k < self->K; k++) loss[k] = self->failed_at[k] >= 0 ? NAN : 0.0f;
    if (B == 0) return 0;
    if (lora_pack_set_rows(self->pack, self->row0, self->nrows) < 0) return -1;
    float mean;
    segments(self, 1);
    self->model->pos = docs ? self->pos : NULL;
    int rc = gpt2_forward(self->model, self->inputs, self->targets, B, T, &mean);
    segments(self, 0);
    if (rc < 0) return -1;
    const float *losses = gpt2_losses(self->model);
    for (int k = 0; k < self->K; k++) {
        if (!self->in_batch[k]) continue;
        double sum = 0.0;
        size_t valid = 0;
        for (size_t i = self->row0[k]; i < self->row0[k] + self->nrows[k]; i++) {
            sum += losses[i];
            valid += self->targets[i] >= 0;
        }
        loss[k] = self->tloss[k] = valid ? (float)(sum / (double)valid) : 0.0f;
        size_t norm_by = self->valid_total[k] ? self->valid_total[k] : valid;
        float s = norm_by ? 1.0f / (float)norm_by : 0.0f;
        for (int b = self->seq0[k]; b < self->seq0[k] + self->in_batch[k]; b++) self->scale[b] = s;
    }
    return 0;
}

int lora_trainer_forward_backward(lora_trainer_t *self, const lora_batch_t *batches, float *loss)
{
    int B;
    lora_pack_set_training(self->pack, 1);
    /* Zeroes the span of the tenants in this batch only: a pack that holds
     * waiting tenants pays for those training. */
    size_t lo = lora_pack_size(self->pack), hi = 0;
    for (int k = 0; k < self->K; k++) {
        if (self->failed_at[k] >= 0 || batches[k].B <= 0) continue;
        size_t off = lora_pack_tenant_offset(self->pack, k);
        size_t end = off + lora_pack_tenant_size(self->pack, k);
        if (off < lo) lo = off;
        if (end > hi) hi = end;
    }
    if (hi > lo) memset(lora_pack_grads(self->pack) + lo, 0, (hi - lo) * sizeof(float));
    if (packed_forward(self, batches, loss, &B) < 0) return -1;
    if (B == 0) return 0;
    segments(self, 1);
    int rc = gpt2_backward(self->model, self->scale);
    segments(self, 0);
    return rc;
}

int lora_trainer_eval(lora_trainer_t *self, const lora_batch_t *batches, float *loss)
{
    int B;
    lora_pack_set_training(self->pack, 0);
    int rc = packed_forward(self, batches, loss, &B);
    lora_pack_set_training(self->pack, 1);
    for (int k = 0; k < self->K; k++) self->in_batch[k] = 0;
    return rc;
}

int lora_trainer_update(lora_trainer_t *self)
{
    lora_pack_t *p = self->pack;
    float *w = lora_pack_params(p), *g = lora_pack_grads(p), *m = lora_pack_m(p),
          *v = lora_pack_v(p);
    int failed = 0;
    for (int k = 0; k < self->K; k++) {
        if (!self->in_batch[k]) continue;
        self->in_batch[k] = 0;
        size_t off = lora_pack_tenant_offset(p, k), n = lora_pack_tenant_size(p, k);
        double norm = sqrt(grad_sumsq(g + off, n));
        self->norm[k] = norm;
        if (!isfinite(self->tloss[k]) || !isfinite(norm)) {
            self->failed_at[k] = self->step[k];
            failed++;
            continue;
        }
        const lora_hparams_t *hp = &self->hp[k];
        grad_clip(g + off, n, norm, hp->grad_clip);
        float lr = schedule_lr(&hp->sched, self->step[k]);
        self->lr[k] = lr;
        adamw_update(w + off, g + off, m + off, v + off, n, lr, hp->weight_decay, &hp->adam,
                     self->step[k] + 1);
        self->step[k]++;
    }
    return failed;
}

int lora_trainer_step(lora_trainer_t *self, const lora_batch_t *batches, float *loss)
{
    if (lora_trainer_forward_backward(self, batches, loss) < 0) return -1;
    return lora_trainer_update(self);
}

void lora_trainer_set_docs(lora_trainer_t *self, int k, const int *pos)
{
    self->docs[k] = pos;
}

void lora_trainer_set_valid_total(lora_trainer_t *self, int k, size_t valid_total)
{
    self->valid_total[k] = valid_total;
}

void lora_trainer_set_tenant_loss(lora_trainer_t *self, int k, float loss)
{
    self->tloss[k] = loss;
}

long lora_trainer_tenant_step(const lora_trainer_t *self, int k)
{
    return self->step[k];
}
void lora_trainer_set_tenant_step(lora_trainer_t *self, int k, long step)
{
    self->step[k] = step;
}
long lora_trainer_failed_at(const lora_trainer_t *self, int k)
{
    return self->failed_at[k];
}
double lora_trainer_grad_norm(const lora_trainer_t *self, int k)
{
    return self->norm[k];
}
float lora_trainer_lr(const lora_trainer_t *self, int k)
{
    return self->lr[k];
}
