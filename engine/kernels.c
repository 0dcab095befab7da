/* kernels.c: GPT-2 layer kernels (see kernels.h). Products run on
 * cblas_sgemm; the rest are single loops written so that gcc vectorises them
 * (-O3 -march=native, `omp simd` reductions in a fixed lane order), spread
 * over the rank's threads by rows, heads or column blocks (par.h). */
#include "engine/kernels.h"
#include "engine/par.h"
#include "engine/vexp.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Rows per block of the causal attention products: blocks above the
 * diagonal are skipped, blocks on it are computed whole and masked. */
#define ATT_BLOCK 64

/* Columns per block of the loops that sum over rows (parameter gradients
 * of norms, biases, embeddings): each column's sum runs over the rows in
 * order, whichever thread runs its block. */
#define COL_BLOCK 64

float fast_expf(float x)
{
    return vexpf(x);
}

void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T,
                     int C)
{
    int nt = PAR_THREADS((size_t)B * T, C);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int bt = 0; bt < B * T; bt++) {
        float *out_bt = out + (size_t)bt * C;
        const float *wte_ix = wte + (size_t)inp[bt] * C;
        const float *wpe_t = wpe + (size_t)(bt % T) * C;
        for (int i = 0; i < C; i++) out_bt[i] = wte_ix[i] + wpe_t[i];
    }
}

void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T,
                      int C)
{
    /* rows sharing a token add into one row of dwte: threads take column
     * blocks, and every column adds the rows in order */
    int nblk = (C + COL_BLOCK - 1) / COL_BLOCK, nt = PAR_THREADS((size_t)B * T, C);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int cb = 0; cb < nblk; cb++) {
        int i0 = cb * COL_BLOCK, i1 = i0 + COL_BLOCK < C ? i0 + COL_BLOCK : C;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const float *dout_bt = dout + ((size_t)b * T + t) * C;
                if (dwte) {
                    float *dwte_ix = dwte + (size_t)inp[b * T + t] * C;
                    for (int i = i0; i < i1; i++) dwte_ix[i] += dout_bt[i];
                }
                if (dwpe) {
                    float *dwpe_t = dwpe + (size_t)t * C;
                    for (int i = i0; i < i1; i++) dwpe_t[i] += dout_bt[i];
                }
            }
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, size_t N, int C)
{
    int nt = PAR_THREADS(N, C);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *o = out + n * C;
        float m = 0.0f, v = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
#pragma omp simd reduction(+ : v)
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        v /= C;
        float s = 1.0f / sqrtf(v + 1e-5f);
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * weight[i] + bias[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        size_t N, int C)
{
    int nt = PAR_THREADS(N, C);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t n = 0; n < N; n++) {
        const float *dy = dout + n * C, *x = inp + n * C;
        float *dx = dinp + n * C;
        float m = mean[n], s = rstd[n];
        /* with xhat = (x-m)·s and g = dy·w:
         * dx = s·(g - mean(g) - xhat·mean(g·xhat)) */
        float gsum = 0.0f, gxsum = 0.0f;
#pragma omp simd reduction(+ : gsum, gxsum)
        for (int i = 0; i < C; i++) {
            float g = dy[i] * weight[i];
            gsum += g;
            gxsum += g * (x[i] - m) * s;
        }
        gsum /= C;
        gxsum /= C;
        for (int i = 0; i < C; i++) {
            float xhat = (x[i] - m) * s;
            dx[i] += s * (dy[i] * weight[i] - gsum - xhat * gxsum);
        }
    }
    if (!dweight && !dbias) return;
    /* the parameter gradients sum over rows: by column blocks, rows in order */
    int nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int cb = 0; cb < nblk; cb++) {
        int i0 = cb * COL_BLOCK, i1 = i0 + COL_BLOCK < C ? i0 + COL_BLOCK : C;
        for (size_t n = 0; n < N; n++) {
            const float *dy = dout + n * C, *x = inp + n * C;
            float m = mean[n], s = rstd[n];
            if (dweight)
                for (int i = i0; i < i1; i++) dweight[i] += dy[i] * (x[i] - m) * s;
            if (dbias)
                for (int i = i0; i < i1; i++) dbias[i] += dy[i];
        }
    }
}

void linear_forward(float *out, const float *inp, const float *w, const float *bias, size_t N,
                    int IC, int OC)
{
    float beta = 0.0f;
    if (bias) {
        for (size_t n = 0; n < N; n++) memcpy(out + n * OC, bias, (size_t)OC * sizeof *out);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, OC, IC, 1.0f, inp, IC, w, OC,
                beta, out, OC);
}

void linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, size_t N, int IC, int OC)
{
    if (dinp) /* dinp (N,IC) = dout (N,OC) · wᵀ (OC,IC) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, IC, OC, 1.0f, dout, OC, w, OC,
                    0.0f, dinp, IC);
    if (dw) /* dw (IC,OC) += inpᵀ (IC,N) · dout (N,OC) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IC, OC, (int)N, 1.0f, inp, IC, dout,
                    OC, 1.0f, dw, OC);
    if (dbias) bias_backward(dbias, dout, N, OC);
}

void bias_backward(float *dbias, const float *dout, size_t N, int OC)
{
    int nblk = (OC + COL_BLOCK - 1) / COL_BLOCK, nt = PAR_THREADS(N, OC);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int cb = 0; cb < nblk; cb++) {
        int o0 = cb * COL_BLOCK, o1 = o0 + COL_BLOCK < OC ? o0 + COL_BLOCK : OC;
        for (size_t n = 0; n < N; n++) {
            const float *d = dout + n * OC;
            for (int o = o0; o < o1; o++) dbias[o] += d[o];
        }
    }
}

void attention_head_forward(float *o, int ldo, float *a, int lda, const float *q, int ldq,
                        const float *k, const float *v, int ldk, int n, int hd, float scale)
{
    for (int i0 = 0; i0 < n; i0 += ATT_BLOCK) {
        int i1 = i0 + ATT_BLOCK < n ? i0 + ATT_BLOCK : n;
        /* a[i0:i1, 0:i1] (bt,i1) = scale · q[i0:i1] (bt,hd) · kᵀ (hd,i1) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, i1 - i0, i1, hd, scale,
                    q + (size_t)i0 * ldq, ldq, k, ldk, 0.0f, a + (size_t)i0 * lda, lda);
        for (int i = i0; i < i1; i++) {
            float *row = a + (size_t)i * lda;
            float mx = row[0];
#pragma omp simd reduction(max : mx)
            for (int j = 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
            float sum = 0.0f;
            for (int j = 0; j <= i; j++) {
                row[j] = vexpf(row[j] - mx);
                sum += row[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j <= i; j++) row[j] *= inv;
            for (int j = i + 1; j < i1; j++) row[j] = 0.0f;
        }
        /* o[i0:i1] (bt,hd) = a[i0:i1, 0:i1] (bt,i1) · v[0:i1] (i1,hd) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, i1 - i0, hd, i1, 1.0f,
                    a + (size_t)i0 * lda, lda, v, ldk, 0.0f, o + (size_t)i0 * ldo, ldo);
    }
}

void attention_head_backward(float *dq, int ldq, float *dk, float *dv, int ldk, float beta, float *da,
                         int lda, const float *dy, int ldo, const float *q, const float *k,
                         const float *v, const float *a, int n, int hd, float scale)
{
    for (int i0 = 0; i0 < n; i0 += ATT_BLOCK) {
        int i1 = i0 + ATT_BLOCK < n ? i0 + ATT_BLOCK : n;
        /* da[i0:i1, 0:i1] (bt,i1) = dy[i0:i1] (bt,hd) · vᵀ (hd,i1) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, i1 - i0, i1, hd, 1.0f,
                    dy + (size_t)i0 * ldo, ldo, v, ldk, 0.0f, da + (size_t)i0 * lda, lda);
        /* dv[i0:i1] (bt,hd) (+)= a[i0:n, i0:i1]ᵀ (bt,n-i0) · dy[i0:n] (n-i0,hd) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1 - i0, hd, n - i0, 1.0f,
                    a + (size_t)i0 * lda + i0, lda, dy + (size_t)i0 * ldo, ldo, beta,
                    dv + (size_t)i0 * ldk, ldk);
        /* softmax backward: dpre_j = p_j (da_j - Σ_k p_k da_k) · scale */
        for (int i = i0; i < i1; i++) {
            const float *p = a + (size_t)i * lda;
            float *d = da + (size_t)i * lda;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int j = 0; j <= i; j++) dot += p[j] * d[j];
            for (int j = 0; j <= i; j++) d[j] = scale * p[j] * (d[j] - dot);
            for (int j = i + 1; j < i1; j++) d[j] = 0.0f;
        }
    }
    for (int i0 = 0; i0 < n; i0 += ATT_BLOCK) {
        int i1 = i0 + ATT_BLOCK < n ? i0 + ATT_BLOCK : n;
        /* dq[i0:i1] (bt,hd) = da[i0:i1, 0:i1] (bt,i1) · k[0:i1] (i1,hd) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, i1 - i0, hd, i1, 1.0f,
                    da + (size_t)i0 * lda, lda, k, ldk, 0.0f, dq + (size_t)i0 * ldq, ldq);
        /* dk[i0:i1] (bt,hd) (+)= da[i0:n, i0:i1]ᵀ (bt,n-i0) · q[i0:n] (n-i0,hd) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1 - i0, hd, n - i0, 1.0f,
                    da + (size_t)i0 * lda + i0, lda, q + (size_t)i0 * ldq, ldq, beta,
                    dk + (size_t)i0 * ldk, ldk);
    }
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH)
{
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    /* one (b,h) per task, each task's products single-threaded in BLAS */
    int nt = PAR_THREADS((size_t)B * NH, (double)T * T * hs), blas = par_blas_serial();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
        attention_head_forward(out + (size_t)b * T * C + (size_t)h * hs, C,
                               att + ((size_t)b * NH + h) * T * T, T, q, C3, q + C, q + 2 * C, C3,
                               T, hs, scale);
    }
    par_blas_restore(blas);
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH)
{
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    /* one (b,h) per task; a thread's (T,T) scratch is `scratch` for the
     * first, allocated here for the others (none: one thread) */
    int nt = PAR_THREADS((size_t)B * NH, (double)T * T * hs);
    float *more = nt > 1 ? malloc((size_t)(nt - 1) * T * T * sizeof *more) : NULL;
    if (!more) nt = 1;
    int blas = par_blas_serial();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH, tid = omp_get_thread_num();
        float *da = tid ? more + (size_t)(tid - 1) * T * T : scratch;
        size_t qoff = (size_t)b * T * C3 + (size_t)h * hs;
        const float *q = qkv + qoff;
        float *dq = dqkv + qoff;
        attention_head_backward(dq, C3, dq + C, dq + 2 * C, C3, 0.0f, da, T,
                                dout + (size_t)b * T * C + (size_t)h * hs, C, q, q + C, q + 2 * C,
                                att + ((size_t)b * NH + h) * T * T, T, hs, scale);
    }
    par_blas_restore(blas);
    free(more);
}

#define GELU_S 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_K 0.044715f

/* tanh(u) = 1 - 2/(e^{2u} + 1): absolute error about 1e-7, vectorisable. */
static inline float vtanhf(float u)
{
    return 1.0f - 2.0f / (vexpf(2.0f * u) + 1.0f);
}

void gelu_forward(float *out, const float *inp, size_t n)
{
    int nt = PAR_THREADS(n, 16);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float t = vtanhf(GELU_S * (x + GELU_K * x * x * x));
        out[i] = 0.5f * x * (1.0f + t);
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    int nt = PAR_THREADS(n, 16);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float t = vtanhf(GELU_S * (x + GELU_K * x * x * x));
        /* d/dx 0.5x(1+t) = 0.5(1+t) + 0.5x(1-t²)·S(1+3Kx²) */
        float g =
            0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_S * (1.0f + 3.0f * GELU_K * x * x);
        dinp[i] = g * dout[i];
    }
}

void residual_forward(float *out, const float *a, const float *b, size_t n)
{
    int nt = PAR_THREADS(n, 1);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

size_t crossentropy_forward(float *losses, float *lse, const float *logits, const int *targets,
                            size_t N, int V)
{
    size_t valid = 0;
    int nt = PAR_THREADS(N, V);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(+ : valid)
    for (size_t n = 0; n < N; n++) {
        const float *x = logits + n * V;
        float mx = x[0];
#pragma omp simd reduction(max : mx)
        for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < V; i++) sum += vexpf(x[i] - mx);
        lse[n] = mx + logf(sum);
        if (targets[n] >= 0) {
            losses[n] = lse[n] - x[targets[n]];
            valid++;
        } else {
            losses[n] = 0.0f;
        }
    }
    return valid;
}

void crossentropy_backward(float *logits, const float *lse, const int *targets, const float *scale,
                           int B, int T, int V)
{
    int nt = PAR_THREADS((size_t)B * T, V);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int bt = 0; bt < B * T; bt++) {
        size_t n = (size_t)bt;
        float *d = logits + n * V;
        if (targets[n] < 0) {
            memset(d, 0, (size_t)V * sizeof *d);
            continue;
        }
        float s = scale[bt / T], m = lse[n];
        for (int i = 0; i < V; i++) d[i] = s * vexpf(d[i] - m);
        d[targets[n]] -= s;
    }
}
