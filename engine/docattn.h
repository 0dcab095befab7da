/* docattn.h: the kernels of packed documents. Several documents share one
 * row of T tokens; pos (B,T) gives each token's position inside its own
 * document, and a document starts wherever pos is 0. Attention is causal
 * inside each document and never crosses into another (block-diagonal),
 * computed one document at a time so that the blocks between documents cost
 * nothing; learned position embeddings and RoPE read pos instead of t.
 *
 * Same glossary and conventions as kernels.h and llama_kernels.h. With one
 * document per row (pos[b,t] = t) every kernel computes what its plain twin
 * there computes. These functions are kept apart from the plain kernels on
 * purpose: the plain ones stay untouched by packing. */
#ifndef WEFT_DOCATTN_H
#define WEFT_DOCATTN_H

#include <stddef.h>

/* Checks pos (B,T): every row starts a document (pos 0) and each position
 * is 0 or one more than the one before it. One-line error naming the row
 * and position otherwise. */
int docs_check(const int *pos, int B, int T);

/* Σ over documents of n², n its length: the (query, key) pairs that causal
 * attention over the documents touches is (Σ n² + Σ n) / 2. */
double docs_square_sum(const int *pos, int B, int T);

/* out (B,T,C) = wte[inp] + wpe[pos]. */
void encoder_forward_pos(float *out, const int *inp, const int *pos, const float *wte,
                         const float *wpe, int B, int T, int C);
/* dwte, dwpe += scatter of dout (B,T,C); either may be NULL. */
void encoder_backward_pos(float *dwte, float *dwpe, const float *dout, const int *inp,
                          const int *pos, int B, int T, int C);

/* GPT-2: qkv (B,T,3C), out (B,T,C), att (B,NH,T,T) keeps each document's
 * probabilities in its own diagonal block. */
void attention_forward_docs(float *out, float *att, const float *qkv, const int *pos, int B, int T,
                            int C, int NH);
/* dqkv (B,T,3C) from dout (B,T,C); scratch is (T,T). */
void attention_backward_docs(float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, const int *pos, int B, int T, int C, int NH);

/* Llama: as gqa_attention_forward/backward (llama_kernels.h), per document. */
void gqa_attention_forward_docs(float *out, float *att, const float *q, const float *k,
                                const float *v, const int *pos, int B, int T, int H, int KV,
                                int hd);
void gqa_attention_backward_docs(float *dq, float *dk, float *dv, float *scratch,
                                 const float *dout, const float *q, const float *k, const float *v,
                                 const float *att, const int *pos, int B, int T, int H, int KV,
                                 int hd);

/* RoPE at positions pos (B,T) instead of t: x is (B,T,nh*hd), in place;
 * the cos and sin tables (T,hd/2) are indexed by position. */
void rope_forward_pos(float *x, const float *cos_t, const float *sin_t, const int *pos, int B,
                      int T, int nh, int hd);
void rope_backward_pos(float *dx, const float *cos_t, const float *sin_t, const int *pos, int B,
                       int T, int nh, int hd);

#endif
