/* llama.h: the Llama family (Llama 3.x, Qwen2/2.5, SmolLM2, Mistral-style)
 * inside the engine's tagged model (gpt2.h, cfg.arch == ARCH_LLAMA): its
 * parameter table in Hugging Face's LlamaForCausalLM names and layouts, its
 * initialisation, and the forward and hand-written backward. gpt2.c calls
 * these when the tag says Llama; nothing else calls them directly. */
#ifndef WEFT_LLAMA_H
#define WEFT_LLAMA_H

#include "engine/gpt2.h"

/* Pointers into one flat buffer, per block. Linear weights are nn.Linear,
 * (out,in); a bias pointer is NULL when the config has none. */
typedef struct {
    float *ln1w;            /* input_layernorm (C) */
    float *qw, *qb;         /* self_attn.q_proj (H*hd,C), (H*hd) */
    float *kw, *kb;         /* self_attn.k_proj (KV*hd,C), (KV*hd) */
    float *vw, *vb;         /* self_attn.v_proj (KV*hd,C), (KV*hd) */
    float *ow, *ob;         /* self_attn.o_proj (C,H*hd), (C) */
    float *ln2w;            /* post_attention_layernorm (C) */
    float *gatew, *gateb;   /* mlp.gate_proj (I,C), (I) */
    float *upw, *upb;       /* mlp.up_proj (I,C), (I) */
    float *downw, *downb;   /* mlp.down_proj (C,I), (C) */
} llama_block_t;

struct llama_weights {
    float *wte;          /* model.embed_tokens (V,C) */
    llama_block_t *h;    /* n_layer blocks */
    float *normw;        /* model.norm (C) */
    float *head;         /* lm_head (V,C): wte when tied */
};

/* Checks the Llama settings of c (n_head divisible by n_kv_head, head_dim
 * even, known rope type, positive eps and theta). One-line error. */
int llama_config_check(const gpt2_config_t *c);
/* Widths of the j-th projection of a block (q, k, v, o, gate, up, down). */
int llama_module_dims(const gpt2_config_t *c, int j, int *in, int *out);
/* Number of table entries for c. */
size_t llama_ntensors(const gpt2_config_t *c);
/* Fills self->tensors in table order and sets self->nparams. */
void llama_build_table(gpt2_t *self);
/* Points w at buf following the table; 0 or -1 when out of memory. */
int llama_point_weights(const gpt2_t *self, llama_weights_t *w, float *buf);
void llama_free_weights(llama_weights_t *w);
/* normal(0, 0.02) matrices and embeddings (HF's initializer_range), zero
 * biases, unit norms. */
void llama_init_weights(gpt2_t *self, uint64_t seed);
int llama_alloc(gpt2_t *self, int B, int T);
void llama_free_acts(gpt2_t *self);
/* As gpt2_forward / gpt2_backward, after the inputs are checked and
 * self->B, T are set; a->inputs etc. are the model's own copies. */
int llama_forward(gpt2_t *self, const int *inputs, const int *targets, int B, int T, float *loss);
int llama_backward(gpt2_t *self, const float *scale);
const float *llama_logits(const gpt2_t *self);
const float *llama_losses(const gpt2_t *self);
size_t llama_valid_targets(const gpt2_t *self);

/* The RoPE inverse frequencies (hd/2 floats) of c, with its scaling. */
void llama_rope_inv_freq(const gpt2_config_t *c, float *inv_freq);

#endif
