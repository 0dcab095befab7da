/* optim.c: AdamW, clipping and schedules on slices (see optim.h). The AdamW
 * arithmetic follows torch.optim.AdamW's single-tensor path step for step,
 * so that the reference test can hold it to float32 rounding. */
#include "engine/optim.h"
#include "common/log.h"
#include "engine/par.h"

#include <math.h>
#include <string.h>

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd,
                  const adamw_hparams_t *hp, long t)
{
    float b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
    float decay = (float)(1.0 - (double)lr * wd);
    double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    int nt = PAR_THREADS(n, 16);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * decay;
        float mi = m[i] * b1 + (1.0f - b1) * gi;
        float vi = v[i] * b2 + (1.0f - b2) * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * (mi / denom);
    }
}

/* Elements per partial sum of grad_sumsq: the partials are formed in
 * parallel and added in order, so the sum is the same for any thread count. */
#define SUMSQ_CHUNK 65536

double grad_sumsq(const float *g, size_t n)
{
    double s = 0.0;
    size_t nchunk = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    int nt = PAR_THREADS(n, 2);
#pragma omp parallel for ordered schedule(static, 1) num_threads(nt) if (nt > 1)
    for (size_t c = 0; c < nchunk; c++) {
        size_t i1 = (c + 1) * SUMSQ_CHUNK < n ? (c + 1) * SUMSQ_CHUNK : n;
        double part = 0.0;
        for (size_t i = c * SUMSQ_CHUNK; i < i1; i++) part += (double)g[i] * g[i];
#pragma omp ordered
        s += part;
    }
    return s;
}

float grad_clip(float *g, size_t n, double norm, float max_norm)
{
    if (max_norm <= 0.0f || !(norm > max_norm)) return 1.0f;
    float f = (float)(max_norm / (norm + 1e-6));
    int nt = PAR_THREADS(n, 1);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t i = 0; i < n; i++) g[i] *= f;
    return f;
}

int schedule_kind_parse(const char *name, sched_kind_t *kind)
{
    if (!strcmp(name, "constant"))
        *kind = SCHED_CONSTANT;
    else if (!strcmp(name, "linear"))
        *kind = SCHED_LINEAR;
    else if (!strcmp(name, "cosine"))
        *kind = SCHED_COSINE;
    else
        return weft_error("unknown schedule '%s': use constant, linear or cosine", name);
    return 0;
}

float schedule_lr(const schedule_t *s, long step)
{
    if (step < s->warmup) return s->lr * (float)(step + 1) / (float)s->warmup;
    if (s->kind == SCHED_CONSTANT) return s->lr;
    long span = s->total - s->warmup;
    double frac = span > 1 ? (double)(step - s->warmup) / (double)(span - 1) : 1.0;
    if (frac > 1.0) frac = 1.0;
    double w = s->kind == SCHED_LINEAR ? 1.0 - frac : 0.5 * (1.0 + cos(M_PI * frac));
    return (float)(s->lr_min + (s->lr - s->lr_min) * w);
}
