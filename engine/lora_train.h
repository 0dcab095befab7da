/* lora_train.h: packed multi-tenant LoRA training over one frozen model
 * (GPT-2 or Llama): the pack attached as the model's per-module delta, each
 * tenant's rows one contiguous segment, and per tenant its own loss,
 * clipping, schedule, AdamW step count and failure (NaN/inf) that drops it
 * from the pack alone. */
#ifndef WEFT_LORA_TRAIN_H
#define WEFT_LORA_TRAIN_H

#include "engine/gpt2.h"
#include "engine/lora.h"
#include "engine/optim.h"

/* The LoRA view of a model of config c: its architecture's modules and
 * their widths. */
void gpt2_lora_dims(const gpt2_config_t *c, lora_dims_t *dims);
/* A pack over model's modules (lora_pack_new_dims with gpt2_lora_dims): a
 * tenant's target the architecture lacks is an error naming it. */
lora_pack_t *lora_pack_for(const gpt2_t *model, int n_tenants, const lora_spec_t *specs,
                           size_t max_rows);

/* One tenant's optimizer settings. */
typedef struct {
    schedule_t sched;   /* lr, floor, warmup, total steps, kind */
    float weight_decay; /* on every adapter matrix */
    float grad_clip;    /* global norm over the tenant's adapter; <= 0: none */
    adamw_hparams_t adam;
} lora_hparams_t;

/* One tenant's part of a step: B sequences of the trainer's T tokens,
 * inputs and targets (B,T) (target -1 ignored). B = 0: no rows this step. */
typedef struct {
    const int *inputs, *targets;
    int B;
} lora_batch_t;

/* Makes pack the model's per-module delta and freezes the backbone
 * (model->frozen = 1): gpt2_forward/gpt2_backward then run base + LoRA and
 * compute the adapters' gradients only. Detach restores the plain model. */
void lora_attach(gpt2_t *model, lora_pack_t *pack);
void lora_detach(gpt2_t *model);

typedef struct lora_trainer lora_trainer_t;

/* Attaches pack to model (model->delta, model->frozen = 1) for batches of
 * up to B_max sequences of T tokens in all; hp holds one entry per tenant.
 * The backbone is only read. NULL with an error when shapes disagree. */
lora_trainer_t *lora_trainer_new(gpt2_t *model, lora_pack_t *pack, const lora_hparams_t *hp,
                                 int B_max, int T);
/* The trainer's passes run each tenant's products on `threads` threads of
 * their own (OpenBLAS single-threaded meanwhile, its setting put back
 * after): a tenant's bits depend on this count, never on its pack-mates.
 * 1 (the default): one thread, OpenBLAS as the caller set it. */
void lora_trainer_set_threads(lora_trainer_t *self, int threads);
/* Detaches the pack from the model and frees the trainer (not model, pack). */
void lora_trainer_destroy(lora_trainer_t **self_p);

/* Forward and backward of one packed batch: the sequences of every tenant
 * that has not failed, in tenant order, one contiguous segment each. The
 * gradients of the tenants in the batch (the span from the first one's
 * slice to the last one's) are zeroed first, the others' left alone; tenant k's loss is the mean over its
 * own valid targets (loss[k] = NaN for a failed tenant, 0 with no targets)
 * and its gradient is that loss's. */
int lora_trainer_forward_backward(lora_trainer_t *self, const lora_batch_t *batches, float *loss);
/* Tenant k's valid targets in the whole step (all micro-batches and ranks):
 * its rows are then weighted 1/valid_total, so that gradients summed over
 * them are those of its global mean loss. 0 (the default) weights them by
 * 1/(its valid targets in each forward_backward). */
void lora_trainer_set_valid_total(lora_trainer_t *self, int k, size_t valid_total);
/* Tenant k's rows hold packed documents: pos (B,T) of its batches from now
 * on gives each token's position inside its document (docattn.h); NULL (the
 * default): one document per row. The pointer is read by each pass. */
void lora_trainer_set_docs(lora_trainer_t *self, int k, const int *pos);
/* Replaces tenant k's loss that update checks for NaN/inf, e.g. with the
 * mean over all ranks, so that every rank decides a failure alike. */
void lora_trainer_set_tenant_loss(lora_trainer_t *self, int k, float loss);
/* Forward only, no dropout (evaluation); loss as above. */
int lora_trainer_eval(lora_trainer_t *self, const lora_batch_t *batches, float *loss);
/* Per tenant that took part in the last forward_backward: a NaN or infinite
 * loss or gradient marks it failed at its current step (its adapter keeps the
 * last good values); otherwise clip, learning rate from its schedule, AdamW,
 * step + 1. Returns the number of tenants that failed at this step. */
int lora_trainer_update(lora_trainer_t *self);
/* forward_backward then update. */
int lora_trainer_step(lora_trainer_t *self, const lora_batch_t *batches, float *loss);

/* Steps tenant k has taken (AdamW's t - 1); settable for a resume. */
long lora_trainer_tenant_step(const lora_trainer_t *self, int k);
void lora_trainer_set_tenant_step(lora_trainer_t *self, int k, long step);
/* Step at which tenant k failed, or -1 while it trains. */
long lora_trainer_failed_at(const lora_trainer_t *self, int k);
/* Tenant k's gradient norm (before clipping) and learning rate at its last
 * update. */
double lora_trainer_grad_norm(const lora_trainer_t *self, int k);
float lora_trainer_lr(const lora_trainer_t *self, int k);

#endif
