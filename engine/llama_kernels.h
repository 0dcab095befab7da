/* llama_kernels.h: the layer kernels the Llama family adds to kernels.h,
 * forward and backward: RMSNorm, nn.Linear-layout linear, RoPE (rotate_half),
 * grouped-query causal attention and SwiGLU. Same glossary and conventions
 * as kernels.h; also H query heads, KV key/value heads, hd head size,
 * FF the MLP's inner width. */
#ifndef WEFT_LLAMA_KERNELS_H
#define WEFT_LLAMA_KERNELS_H

#include <stddef.h>

/* inp, out are (N,C); out = inp · rsqrt(mean(inp²) + eps) · weight; rstd (N)
 * kept for the backward. */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, size_t N,
                     int C, float eps);
/* dinp (N,C) += d(loss)/d(inp) (ACCUMULATES: it is the residual stream);
 * dweight (C) += (NULL: frozen). */
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, size_t N, int C);

/* inp is (N,IC), w is (OC,IC) (nn.Linear layout), bias (OC) or NULL,
 * out (N,OC) = inp · wᵀ + bias. */
void linear_nt_forward(float *out, const float *inp, const float *w, const float *bias, size_t N,
                       int IC, int OC);
/* dinp (N,IC) = dout · w, or += when accumulate (skipped when NULL);
 * dw (OC,IC) += doutᵀ · inp and dbias (OC) += column sums of dout, each
 * skipped when NULL (frozen). */
void linear_nt_backward(float *dinp, int accumulate, float *dw, float *dbias, const float *dout,
                        const float *inp, const float *w, size_t N, int IC, int OC);

/* x is (B,T,nh*hd), rotated IN PLACE at positions 0..T-1: with c, s the
 * cos and sin tables (T,hd/2), for i < hd/2
 *   x'[i] = x[i]·c - x[i+hd/2]·s,  x'[i+hd/2] = x[i+hd/2]·c + x[i]·s. */
void rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd);
/* The transpose rotation, in place on a gradient of the same shape. */
void rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd);

/* q (B,T,H*hd), k and v (B,T,KV*hd), out (B,T,H*hd); query head h reads kv
 * head h/(H/KV) in place (no copies). att (B,H,T,T) keeps the softmax
 * probabilities on and below the diagonal; scale hd^-0.5; causal. */
void gqa_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                           int B, int T, int H, int KV, int hd);
/* dq (B,T,H*hd) and dk, dv (B,T,KV*hd) = gradients of dout (B,T,H*hd);
 * the query heads sharing a kv head add into its dk, dv. scratch is (T,T)
 * (the first thread's; others' are allocated while it runs). */
void gqa_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                            const float *q, const float *k, const float *v, const float *att,
                            int B, int T, int H, int KV, int hd);

/* out = silu(gate) · up over n values. */
void swiglu_forward(float *out, const float *gate, const float *up, size_t n);
/* dgate, dup from dout (all n values); dgate may alias dout. */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n);

#endif
