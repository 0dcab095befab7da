/* docattn.c: attention, embeddings and RoPE over packed documents (see
 * docattn.h). One causal kernel over a single document of n tokens, with
 * any row strides, serves GPT-2 (q|k|v interleaved in qkv) and Llama
 * (separate q, k, v; grouped heads); the wrappers walk rows, heads and the
 * documents that pos marks. Products run on cblas_sgemm in blocks of
 * ATT_BLOCK query rows, as in kernels.c: the blocks above the diagonal of a
 * document, and every block between two documents, are never computed. */
#include "engine/docattn.h"
#include "engine/vexp.h"
#include "common/log.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>

#define ATT_BLOCK 64

int docs_check(const int *pos, int B, int T)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int p = pos[(size_t)b * T + t];
            int ok = t == 0 ? p == 0 : (p == 0 || p == pos[(size_t)b * T + t - 1] + 1);
            if (!ok)
                return weft_error("document position %d at row %d, token %d: a row starts a "
                                  "document (0) and positions count up by one or restart at 0",
                                  p, b, t);
        }
    return 0;
}

/* Length of the document starting at row position s. */
static inline int doc_len(const int *row, int s, int T)
{
    int e = s + 1;
    while (e < T && row[e] != 0) e++;
    return e - s;
}

double docs_square_sum(const int *pos, int B, int T)
{
    double sum = 0.0;
    for (int b = 0; b < B; b++)
        for (int s = 0, n; s < T; s += n) {
            n = doc_len(pos + (size_t)b * T, s, T);
            sum += (double)n * n;
        }
    return sum;
}

void encoder_forward_pos(float *out, const int *inp, const int *pos, const float *wte,
                         const float *wpe, int B, int T, int C)
{
    for (size_t i = 0; i < (size_t)B * T; i++) {
        float *out_bt = out + i * C;
        const float *wte_ix = wte + (size_t)inp[i] * C, *wpe_p = wpe + (size_t)pos[i] * C;
        for (int c = 0; c < C; c++) out_bt[c] = wte_ix[c] + wpe_p[c];
    }
}

void encoder_backward_pos(float *dwte, float *dwpe, const float *dout, const int *inp,
                          const int *pos, int B, int T, int C)
{
    for (size_t i = 0; i < (size_t)B * T; i++) {
        const float *dout_bt = dout + i * C;
        if (dwte) {
            float *d = dwte + (size_t)inp[i] * C;
            for (int c = 0; c < C; c++) d[c] += dout_bt[c];
        }
        if (dwpe) {
            float *d = dwpe + (size_t)pos[i] * C;
            for (int c = 0; c < C; c++) d[c] += dout_bt[c];
        }
    }
}

/* One head over one document of n tokens: q (n,hd) rows ldq apart, k and v
 * (n,hd) rows ldk apart, o (n,hd) rows ldo apart, a (n,n) rows lda apart
 * (the softmax probabilities on and below the diagonal). */
static void doc_forward(float *o, int ldo, float *a, int lda, const float *q, int ldq,
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

/* The backward of doc_forward: dq (n,hd) is written; dk, dv are written
 * (beta 0) or added to (beta 1); da is (n,n) scratch rows lda apart. */
static void doc_backward(float *dq, int ldq, float *dk, float *dv, int ldk, float beta, float *da,
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

void attention_forward_docs(float *out, float *att, const float *qkv, const int *pos, int B, int T,
                            int C, int NH)
{
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        const int *row = pos + (size_t)b * T;
        for (int s = 0, n; s < T; s += n) {
            n = doc_len(row, s, T);
            for (int h = 0; h < NH; h++) {
                const float *q = qkv + ((size_t)b * T + s) * C3 + (size_t)h * hs;
                float *a = att + ((size_t)b * NH + h) * T * T + (size_t)s * T + s;
                float *o = out + ((size_t)b * T + s) * C + (size_t)h * hs;
                doc_forward(o, C, a, T, q, C3, q + C, q + 2 * C, C3, n, hs, scale);
            }
        }
    }
}

void attention_backward_docs(float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, const int *pos, int B, int T, int C, int NH)
{
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        const int *row = pos + (size_t)b * T;
        for (int s = 0, n; s < T; s += n) {
            n = doc_len(row, s, T);
            for (int h = 0; h < NH; h++) {
                size_t qoff = ((size_t)b * T + s) * C3 + (size_t)h * hs;
                const float *q = qkv + qoff;
                float *dq = dqkv + qoff;
                const float *a = att + ((size_t)b * NH + h) * T * T + (size_t)s * T + s;
                const float *dy = dout + ((size_t)b * T + s) * C + (size_t)h * hs;
                doc_backward(dq, C3, dq + C, dq + 2 * C, C3, 0.0f, scratch + (size_t)s * T + s, T,
                             dy, C, q, q + C, q + 2 * C, a, n, hs, scale);
            }
        }
    }
}

void gqa_attention_forward_docs(float *out, float *att, const float *q, const float *k,
                                const float *v, const int *pos, int B, int T, int H, int KV,
                                int hd)
{
    int QD = H * hd, KD = KV * hd, group = H / KV;
    float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++) {
        const int *row = pos + (size_t)b * T;
        for (int s = 0, n; s < T; s += n) {
            n = doc_len(row, s, T);
            for (int h = 0; h < H; h++) {
                size_t qoff = ((size_t)b * T + s) * QD + (size_t)h * hd;
                size_t koff = ((size_t)b * T + s) * KD + (size_t)(h / group) * hd;
                float *a = att + ((size_t)b * H + h) * T * T + (size_t)s * T + s;
                doc_forward(out + qoff, QD, a, T, q + qoff, QD, k + koff, v + koff, KD, n, hd,
                            scale);
            }
        }
    }
}

void gqa_attention_backward_docs(float *dq, float *dk, float *dv, float *scratch,
                                 const float *dout, const float *q, const float *k, const float *v,
                                 const float *att, const int *pos, int B, int T, int H, int KV,
                                 int hd)
{
    int QD = H * hd, KD = KV * hd, group = H / KV;
    float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++) {
        const int *row = pos + (size_t)b * T;
        for (int s = 0, n; s < T; s += n) {
            n = doc_len(row, s, T);
            for (int h = 0; h < H; h++) {
                size_t qoff = ((size_t)b * T + s) * QD + (size_t)h * hd;
                size_t koff = ((size_t)b * T + s) * KD + (size_t)(h / group) * hd;
                const float *a = att + ((size_t)b * H + h) * T * T + (size_t)s * T + s;
                /* the first query head of a group writes dk, dv; the others add */
                doc_backward(dq + qoff, QD, dk + koff, dv + koff, KD, h % group ? 1.0f : 0.0f,
                             scratch + (size_t)s * T + s, T, dout + qoff, QD, q + qoff, k + koff,
                             v + koff, a, n, hd, scale);
            }
        }
    }
}

static void rope_pos(float *x, const float *cos_t, const float *sin_t, const int *pos, int B,
                     int T, int nh, int hd, float sign)
{
    int half = hd / 2;
    for (size_t i = 0; i < (size_t)B * T; i++) {
        const float *c = cos_t + (size_t)pos[i] * half, *s = sin_t + (size_t)pos[i] * half;
        for (int h = 0; h < nh; h++) {
            float *x1 = x + (i * nh + h) * hd, *x2 = x1 + half;
            for (int j = 0; j < half; j++) {
                float a = x1[j], z = x2[j], sj = sign * s[j];
                x1[j] = a * c[j] - z * sj;
                x2[j] = z * c[j] + a * sj;
            }
        }
    }
}

void rope_forward_pos(float *x, const float *cos_t, const float *sin_t, const int *pos, int B,
                      int T, int nh, int hd)
{
    rope_pos(x, cos_t, sin_t, pos, B, T, nh, hd, 1.0f);
}

void rope_backward_pos(float *dx, const float *cos_t, const float *sin_t, const int *pos, int B,
                       int T, int nh, int hd)
{
    rope_pos(dx, cos_t, sin_t, pos, B, T, nh, hd, -1.0f);
}
