/* segmm.h: products over rows grouped in segments (a LoRA pack's tenants),
 * one BLAS call per segment with the shapes the segment has alone, spread
 * over the rank's threads. Pure computation.
 *
 * The construction behind tenant isolation: a segment's product is one
 * cblas_sgemm whose M is the segment's row count, and whose N, K, operands'
 * strides, transposes and scalars do not depend on the other segments.
 * With threads > 1, each segment's output columns are cut into `threads`
 * blocks by a rule of (columns, threads) alone, and every (segment, block)
 * product runs single-threaded in BLAS on one of the threads. A segment
 * alone and the same segment in a pack therefore make the same calls with
 * the same arguments, whichever thread runs them, on any BLAS whose result
 * is a function of its arguments (OpenBLAS: of its arguments and kernel
 * family; it copies operands into packed buffers, so their addresses do
 * not enter). Glossary: N rows, IC/OC a product's inner and output widths. */
#ifndef WEFT_SEGMM_H
#define WEFT_SEGMM_H

#include <stddef.h>

typedef struct {
    const int *seg; /* nseg counts of sequences of T rows; nseg 0: one segment */
    int nseg, T;
    int threads; /* > 1: OpenBLAS must run single-threaded meanwhile */
} segs_t;

/* out (N,OC) = inp (N,IC) · W [+ bias (OC)], one product per segment,
 * where W is w (IC,OC) when wt = 0 and wᵀ of w (OC,IC) when wt = 1;
 * bias NULL: none; accumulate 1: out += instead (no bias then). GPT-2's
 * Conv1D layer runs forward with wt 0 and its input gradient with wt 1,
 * Llama's [out,in] layer the other way round, and a tied or untied LM
 * head (V,C) like Llama's layer. */
void segmm(const segs_t *s, float *out, const float *inp, const float *w, int wt,
           const float *bias, int accumulate, size_t N, int IC, int OC);

#endif
