/* segmm.c: per-segment products spread over the rank's threads (segmm.h). */
#include "engine/segmm.h"

#include <cblas.h>
#include <string.h>

/* A segment's output columns [j0, j1) of block b of nb: cut at multiples of
 * 16 columns by (OC, nb) alone, so a segment alone and in a pack is cut the
 * same way. */
static void block_cols(int OC, int nb, int b, int *j0, int *j1)
{
    int units = (OC + 15) / 16;
    *j0 = (int)((long)units * b / nb) * 16;
    *j1 = b + 1 == nb ? OC : (int)((long)units * (b + 1) / nb) * 16;
    if (*j1 > OC) *j1 = OC;
    if (*j0 > OC) *j0 = OC;
}

static void product(float *out, const float *inp, const float *w, int wt, const float *bias,
                    int accumulate, size_t n, int IC, int OC, int j0, int j1)
{
    int cols = j1 - j0;
    if (cols <= 0 || n == 0) return;
    float beta = accumulate ? 1.0f : 0.0f;
    if (bias) {
        for (size_t i = 0; i < n; i++)
            memcpy(out + i * (size_t)OC + j0, bias + j0, (size_t)cols * sizeof *out);
        beta = 1.0f;
    }
    /* out[:, j0:j1] (n,cols) = inp (n,IC) · W[:, j0:j1] */
    if (wt)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, cols, IC, 1.0f, inp, IC,
                    w + (size_t)j0 * IC, IC, beta, out + j0, OC);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, cols, IC, 1.0f, inp, IC,
                    w + j0, OC, beta, out + j0, OC);
}

void segmm(const segs_t *s, float *out, const float *inp, const float *w, int wt,
           const float *bias, int accumulate, size_t N, int IC, int OC)
{
    int nseg = s && s->nseg ? s->nseg : 1;
    int nb = s && s->threads > 1 ? s->threads : 1;
    if (nseg == 1 && nb == 1) {
        product(out, inp, w, wt, bias, accumulate, N, IC, OC, 0, OC);
        return;
    }
    /* Row offsets of the segments, then every (segment, block) product. */
    size_t r0[nseg + 1];
    r0[0] = 0;
    for (int i = 0; i < nseg; i++)
        r0[i + 1] = r0[i] + (s->nseg ? (size_t)s->seg[i] * (size_t)s->T : N);
    int items = nseg * nb;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nb) if (nb > 1)
    for (int it = 0; it < items; it++) {
        int i = it / nb, b = it % nb, j0, j1;
        block_cols(OC, nb, b, &j0, &j1);
        size_t n = r0[i + 1] - r0[i];
        product(out + r0[i] * (size_t)OC, inp + r0[i] * (size_t)IC, w, wt, bias, accumulate, n, IC,
                OC, j0, j1);
    }
}
