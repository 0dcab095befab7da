/* docattn.c: attention, embeddings and RoPE over packed documents (see
 * docattn.h). One causal kernel over a single document of n tokens, with
 * any row strides, serves GPT-2 (q|k|v interleaved in qkv) and Llama
 * (separate q, k, v; grouped heads); the wrappers walk rows, heads and the
 * documents that pos marks. The head kernel is kernels.c's
 * (attention_head_forward/backward, blocks of query rows on cblas_sgemm): the
 * blocks above the diagonal of a document, and every block between two
 * documents, are never computed. */
#include "engine/docattn.h"
#include "engine/kernels.h"
#include "common/log.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>


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
                attention_head_forward(o, C, a, T, q, C3, q + C, q + 2 * C, C3, n, hs, scale);
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
                attention_head_backward(dq, C3, dq + C, dq + 2 * C, C3, 0.0f, scratch + (size_t)s * T + s, T,
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
                attention_head_forward(out + qoff, QD, a, T, q + qoff, QD, k + koff, v + koff, KD, n, hd,
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
                attention_head_backward(dq + qoff, QD, dk + koff, dv + koff, KD, h % group ? 1.0f : 0.0f,
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
