/* kernels.h: the layer kernels of the GPT-2 engine, forward and backward, on
 * plain float32 row-major buffers: embedding, layernorm, linear and causal
 * attention (both on cblas_sgemm), GELU, residual, softmax cross-entropy.
 *
 * Glossary: B batch, T time, C channels, NH heads, hs = C/NH head size,
 * V vocabulary, N = B*T rows, IC/OC a linear layer's in/out channels.
 * Conventions: a backward kernel OVERWRITES the activation gradient it
 * produces (dinp), unless it says it accumulates, and ACCUMULATES (+=) into
 * parameter gradients; a NULL parameter gradient means "frozen: skip it". */
#ifndef WEFT_KERNELS_H
#define WEFT_KERNELS_H

#include <stddef.h>

/* out (B,T,C) = wte[inp] + wpe[t]; inp is (B,T) token ids. */
void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T,
                     int C);
/* dwte, dwpe += scatter of dout (B,T,C); either may be NULL. */
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T,
                      int C);

/* inp, out are (N,C); mean, rstd (N) kept for the backward; eps 1e-5. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, size_t N, int C);
/* dinp (N,C) += d(loss)/d(inp) (ACCUMULATES: it is the residual stream);
 * dweight, dbias (C) += (NULL: frozen). */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        size_t N, int C);

/* inp is (N,IC), w is (IC,OC) (Conv1D layout), bias (OC) or NULL, out (N,OC). */
void linear_forward(float *out, const float *inp, const float *w, const float *bias, size_t N,
                    int IC, int OC);
/* dinp (N,IC) = dout·wᵀ (skipped when NULL); dw (IC,OC) += inpᵀ·dout and
 * dbias (OC) += column sums of dout, each skipped when NULL (frozen). */
void linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, size_t N, int IC, int OC);

/* dbias (OC) += column sums of dout (N,OC), each over the rows in order. */
void bias_backward(float *dbias, const float *dout, size_t N, int OC);

/* Causal attention of one head over n tokens, the kernel every attention
 * here runs (GPT-2's, Llama's grouped heads, packed documents): q (n,hd) rows
 * ldq apart, k and v (n,hd) rows ldk apart, o (n,hd) rows ldo apart, a (n,n)
 * rows lda apart keeps the softmax probabilities on and below the diagonal.
 * Products run on cblas_sgemm in blocks of 64 query rows; blocks above the
 * diagonal are never computed. */
void attention_head_forward(float *o, int ldo, float *a, int lda, const float *q, int ldq,
                            const float *k, const float *v, int ldk, int n, int hd, float scale);
/* Its backward: dq (n,hd) is written; dk, dv are written (beta 0) or added
 * to (beta 1); da is (n,n) scratch rows lda apart. */
void attention_head_backward(float *dq, int ldq, float *dk, float *dv, int ldk, float beta,
                             float *da, int lda, const float *dy, int ldo, const float *q,
                             const float *k, const float *v, const float *a, int n, int hd,
                             float scale);

/* qkv is (B,T,3C) holding q|k|v, out (B,T,C), att (B,NH,T,T) keeps the
 * softmax probabilities on and below the diagonal for the backward. The
 * causal mask is never materialised: only the lower block triangle is
 * computed. */
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
/* dqkv (B,T,3C) = gradient through attention of dout (B,T,C); scratch is
 * (T,T) (the first thread's; others' are allocated while it runs). */
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH);

/* GELU, tanh form, elementwise over n values. */
void gelu_forward(float *out, const float *inp, size_t n);
/* dinp = gelu'(inp) * dout; dinp may alias dout. */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* out = a + b over n values (out may alias a). */
void residual_forward(float *out, const float *a, const float *b, size_t n);

/* logits (N,V); per row: lse = logsumexp, losses = lse - logit[target], or 0
 * where target < 0 (ignored). Returns the number of valid targets. */
size_t crossentropy_forward(float *losses, float *lse, const float *logits, const int *targets,
                            size_t N, int V);
/* Turns logits (B,T,V) IN PLACE into d(loss)/d(logits) = (softmax - onehot)
 * * scale[b]; rows with target < 0 become zero. */
void crossentropy_backward(float *logits, const float *lse, const int *targets, const float *scale,
                           int B, int T, int V);

/* Elementwise exp in float32, vectorisable, relative error about 2e-7. */
float fast_expf(float x);

#endif
