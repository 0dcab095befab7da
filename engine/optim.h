/* optim.h: AdamW, global-norm gradient clipping and learning-rate schedules
 * on any contiguous slice of parameters, so that each tenant of a pack (or
 * the whole model) runs its own optimizer with its own step count. */
#ifndef WEFT_OPTIM_H
#define WEFT_OPTIM_H

#include <stddef.h>

typedef struct {
    float beta1, beta2, eps;
    float weight_decay; /* applied where the per-tensor mask says so */
} adamw_hparams_t;

/* One AdamW step (decoupled weight decay, bias correction) on a slice of n
 * floats. t is the 1-based step count of this slice's optimizer; wd the
 * weight decay for this slice (0 for biases, norms, embeddings). */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd,
                  const adamw_hparams_t *hp, long t);

/* Sum of squares of a slice, accumulated in double in a fixed order. */
double grad_sumsq(const float *g, size_t n);
/* Scales the slice by max_norm/(norm + 1e-6) when its norm (given, e.g. the
 * square root of several grad_sumsq) exceeds max_norm; max_norm <= 0 means
 * no clipping. Returns the factor applied (1 when none). */
float grad_clip(float *g, size_t n, double norm, float max_norm);

typedef enum { SCHED_CONSTANT, SCHED_LINEAR, SCHED_COSINE } sched_kind_t;

typedef struct {
    sched_kind_t kind;
    float lr;     /* peak learning rate */
    float lr_min; /* floor reached at the last step (linear, cosine) */
    long warmup;  /* steps of linear warmup from lr/warmup up to lr */
    long total;   /* total steps of the run */
} schedule_t;

/* "constant", "linear" or "cosine"; -1 and an error otherwise. */
int schedule_kind_parse(const char *name, sched_kind_t *kind);
/* Learning rate at 0-based step: (step+1)/warmup·lr during the warmup, then
 * constant, or decaying linearly or by a half cosine from lr to lr_min over
 * the remaining total - warmup steps. */
float schedule_lr(const schedule_t *s, long step);

#endif
