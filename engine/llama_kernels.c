/* llama_kernels.c: Llama-family layer kernels (see llama_kernels.h).
 * Products run on cblas_sgemm; the rest are single loops that gcc
 * vectorises, with `omp simd` reductions in a fixed lane order, spread over
 * the rank's threads by rows, heads or column blocks (par.h). */
#include "engine/llama_kernels.h"
#include "engine/kernels.h"
#include "engine/par.h"
#include "engine/vexp.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Columns per block of the loops that sum over rows (as kernels.c). */
#define COL_BLOCK 64

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, size_t N,
                     int C, float eps)
{
    int nt = PAR_THREADS(N, C);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *o = out + n * C;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < C; i++) ss += x[i] * x[i];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
        for (int i = 0; i < C; i++) o[i] = x[i] * s * weight[i];
        rstd[n] = s;
    }
}

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, size_t N, int C)
{
    int nt = PAR_THREADS(N, C);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t n = 0; n < N; n++) {
        const float *dy = dout + n * C, *x = inp + n * C;
        float *dx = dinp + n * C;
        float s = rstd[n];
        /* y = x·s·w, s = (mean(x²)+eps)^-1/2, g = dy·w:
         * dx = s·g - x·s³·mean(g·x) */
        float gx = 0.0f;
#pragma omp simd reduction(+ : gx)
        for (int i = 0; i < C; i++) gx += dy[i] * weight[i] * x[i];
        float k = s * s * s * gx / (float)C;
        for (int i = 0; i < C; i++) dx[i] += s * dy[i] * weight[i] - x[i] * k;
    }
    if (!dweight) return;
    /* dweight sums over rows: by column blocks, rows in order */
    int nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int cb = 0; cb < nblk; cb++) {
        int i0 = cb * COL_BLOCK, i1 = i0 + COL_BLOCK < C ? i0 + COL_BLOCK : C;
        for (size_t n = 0; n < N; n++) {
            const float *dy = dout + n * C, *x = inp + n * C;
            float s = rstd[n];
            for (int i = i0; i < i1; i++) dweight[i] += dy[i] * x[i] * s;
        }
    }
}

void linear_nt_forward(float *out, const float *inp, const float *w, const float *bias, size_t N,
                       int IC, int OC)
{
    float beta = 0.0f;
    if (bias) {
        for (size_t n = 0; n < N; n++) memcpy(out + n * OC, bias, (size_t)OC * sizeof *out);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, OC, IC, 1.0f, inp, IC, w, IC,
                beta, out, OC);
}

void linear_nt_backward(float *dinp, int accumulate, float *dw, float *dbias, const float *dout,
                        const float *inp, const float *w, size_t N, int IC, int OC)
{
    if (dinp) /* dinp (N,IC) = dout (N,OC) · w (OC,IC) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, IC, OC, 1.0f, dout, OC, w,
                    IC, accumulate ? 1.0f : 0.0f, dinp, IC);
    if (dw) /* dw (OC,IC) += doutᵀ (OC,N) · inp (N,IC) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, (int)N, 1.0f, dout, OC, inp,
                    IC, 1.0f, dw, IC);
    if (dbias) bias_backward(dbias, dout, N, OC);
}

static void rope(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd,
                 float sign)
{
    int half = hd / 2, nt = PAR_THREADS((size_t)B * T, nh * hd);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        {
            const float *c = cos_t + (size_t)t * half, *s = sin_t + (size_t)t * half;
            for (int h = 0; h < nh; h++) {
                float *x1 = x + (((size_t)b * T + t) * nh + h) * hd, *x2 = x1 + half;
                for (int i = 0; i < half; i++) {
                    float a = x1[i], z = x2[i], si = sign * s[i];
                    x1[i] = a * c[i] - z * si;
                    x2[i] = z * c[i] + a * si;
                }
            }
        }
    }
}

void rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd)
{
    rope(x, cos_t, sin_t, B, T, nh, hd, 1.0f);
}

void rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd)
{
    /* the rotation is orthogonal: its transpose is the rotation by -angle */
    rope(dx, cos_t, sin_t, B, T, nh, hd, -1.0f);
}

void gqa_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                           int B, int T, int H, int KV, int hd)
{
    int QD = H * hd, KD = KV * hd, group = H / KV;
    float scale = 1.0f / sqrtf((float)hd);
    /* one (b,h) per task, each task's products single-threaded in BLAS */
    int nt = PAR_THREADS((size_t)B * H, (double)T * T * hd), blas = par_blas_serial();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        size_t qoff = (size_t)b * T * QD + (size_t)h * hd;
        size_t koff = (size_t)b * T * KD + (size_t)(h / group) * hd;
        attention_head_forward(out + qoff, QD, att + ((size_t)b * H + h) * T * T, T, q + qoff, QD,
                               k + koff, v + koff, KD, T, hd, scale);
    }
    par_blas_restore(blas);
}

void gqa_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                            const float *q, const float *k, const float *v, const float *att,
                            int B, int T, int H, int KV, int hd)
{
    int QD = H * hd, KD = KV * hd, group = H / KV;
    float scale = 1.0f / sqrtf((float)hd);
    /* one (b, kv head) per task, its group's query heads in order (they add
     * into the kv head's dk, dv); a thread's (T,T) scratch is `scratch` for
     * the first, allocated here for the others (none: one thread) */
    int nt = PAR_THREADS((size_t)B * KV, (double)group * T * T * hd);
    float *more = nt > 1 ? malloc((size_t)(nt - 1) * T * T * sizeof *more) : NULL;
    if (!more) nt = 1;
    int blas = par_blas_serial();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int bk = 0; bk < B * KV; bk++) {
        int b = bk / KV, tid = omp_get_thread_num();
        float *da = tid ? more + (size_t)(tid - 1) * T * T : scratch;
        for (int h = (bk % KV) * group; h < (bk % KV + 1) * group; h++) {
            size_t qoff = (size_t)b * T * QD + (size_t)h * hd;
            size_t koff = (size_t)b * T * KD + (size_t)(h / group) * hd;
            /* the first query head of a group writes dk, dv; the others add */
            attention_head_backward(dq + qoff, QD, dk + koff, dv + koff, KD,
                                    h % group ? 1.0f : 0.0f, da, T, dout + qoff, QD, q + qoff,
                                    k + koff, v + koff, att + ((size_t)b * H + h) * T * T, T, hd,
                                    scale);
        }
    }
    par_blas_restore(blas);
    free(more);
}

/* silu(x) = x·σ(x), σ(x) = 1/(1 + e^-x) */
static inline float sigmoidf_(float x)
{
    return 1.0f / (1.0f + vexpf(-x));
}

void swiglu_forward(float *out, const float *gate, const float *up, size_t n)
{
    int nt = PAR_THREADS(n, 8);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t i = 0; i < n; i++) out[i] = gate[i] * sigmoidf_(gate[i]) * up[i];
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n)
{
    int nt = PAR_THREADS(n, 12);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], s = sigmoidf_(g), d = dout[i];
        /* silu'(g) = σ(g)·(1 + g·(1 - σ(g))) */
        dup[i] = d * g * s;
        dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
    }
}
