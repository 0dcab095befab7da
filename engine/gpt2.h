/* gpt2.h: the engine's model: config and presets, the parameter table over
 * one flat buffer, initialisation, and the forward pass to a cross-entropy
 * loss with its hand-written backward. Pure computation. gpt2_t is tagged by
 * cfg.arch: GPT-2 (this file's own layers) or Llama (llama.c, llama.h); every
 * caller (worker, weft grad/generate/eval, LoRA packs) drives both through
 * the functions below, which dispatch on the tag.
 *
 * Layout: every parameter lives in one contiguous float buffer, in the order
 * of the tensor table (wte, wpe, then per block ln_1, attn.c_attn,
 * attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, then ln_f); the gradients (and
 * the optimizer's moments) use the same offsets. Linear weights are Conv1D,
 * (in,out). The LM head is tied to wte. */
#ifndef WEFT_GPT2_H
#define WEFT_GPT2_H

#include "engine/optim.h"
#include "engine/segmm.h"

#include <stddef.h>
#include <stdint.h>

/* The architectures of the engine (model file attribute `arch`). */
typedef enum { ARCH_GPT2 = 0, ARCH_LLAMA = 1 } model_arch_t;

/* RoPE frequency scaling (Hugging Face's rope_scaling.rope_type). */
typedef enum { ROPE_DEFAULT = 0, ROPE_LINEAR = 1, ROPE_LLAMA3 = 2 } rope_type_t;

/* Llama-family settings (zero for GPT-2). bias has bit j set when the j-th
 * projection of a block (q, k, v, o, gate, up, down) carries a bias. */
typedef struct {
    int n_kv_head, head_dim, n_inner, tie_word_embeddings;
    unsigned bias;
    float rms_norm_eps, rope_theta;
    rope_type_t rope_type;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_ctx;
    int sliding_window;       /* Mistral: attention spans at most this many
                                 positions; 0: none. The engine runs only
                                 T <= sliding_window (full causal attention). */
    char hf_architecture[32]; /* "LlamaForCausalLM", "Qwen2ForCausalLM", ...
                                 as the model file records it; "": unknown */
} llama_config_t;

typedef struct {
    int n_layer, n_head, n_embd, vocab_size, n_ctx;
    model_arch_t arch; /* ARCH_GPT2 when zero-initialised */
    llama_config_t llama;
} gpt2_config_t;

/* Fills cfg from a preset name: tiny, small, gpt2 (GPT-2), or llama-tiny,
 * smollm2-135m, qwen2.5-0.5b (Llama family). */
int gpt2_config_preset(const char *name, gpt2_config_t *cfg);
/* Checks sizes are positive, n_embd divisible by n_head, and that every
 * offset fits. One-line error on failure. */
int gpt2_config_check(const gpt2_config_t *cfg);

/* The longest sequence the engine runs on c: n_ctx, or a Mistral model's
 * sliding_window when shorter (within the window attention is full causal
 * attention; beyond it weft does not implement the window). */
int gpt2_max_seq_len(const gpt2_config_t *c);
/* 0 when a sequence of T positions fits the sliding window (or there is
 * none), else -1 with one line naming `what` (e.g. "train.seq_len") and the
 * model's sliding_window. */
int gpt2_check_window(const gpt2_config_t *c, int T, const char *what);

/* Tensor kinds: weight decay applies to GPT2_MATRIX by default. */
typedef enum { GPT2_MATRIX, GPT2_BIAS, GPT2_NORM, GPT2_EMBEDDING } gpt2_kind_t;

typedef struct {
    char name[64];   /* model-file dataset name without the leading '/' */
    int ndim;        /* 1 or 2 */
    size_t shape[2]; /* shape[1] is 1 when ndim == 1 */
    size_t offset;   /* into the flat buffer, in floats */
    size_t numel;
    gpt2_kind_t kind;
} gpt2_tensor_t;

/* Pointers into one flat buffer (parameters or gradients), per block. */
typedef struct {
    float *ln1w, *ln1b;         /* (C) */
    float *qkvw, *qkvb;         /* attn.c_attn (C,3C), (3C) */
    float *attprojw, *attprojb; /* attn.c_proj (C,C), (C) */
    float *ln2w, *ln2b;         /* (C) */
    float *fcw, *fcb;           /* mlp.c_fc (C,4C), (4C) */
    float *fcprojw, *fcprojb;   /* mlp.c_proj (4C,C), (C) */
} gpt2_block_t;

typedef struct {
    float *wte;         /* (V,C) */
    float *wpe;         /* (n_ctx,C) */
    gpt2_block_t *h;    /* n_layer blocks */
    float *lnfw, *lnfb; /* (C) */
} gpt2_weights_t;

/* The linear modules of a block, numbered across both architectures as
 * LoRA numbers them (lora.h): GPT-2's four in the order the forward runs
 * them, then Llama's seven. */
typedef enum {
    GPT2_ATTN_C_ATTN,
    GPT2_ATTN_C_PROJ,
    GPT2_MLP_C_FC,
    GPT2_MLP_C_PROJ,
    GPT2_NMODULES,
    LLAMA_Q_PROJ = GPT2_NMODULES,
    LLAMA_K_PROJ,
    LLAMA_V_PROJ,
    LLAMA_O_PROJ,
    LLAMA_GATE_PROJ,
    LLAMA_UP_PROJ,
    LLAMA_DOWN_PROJ,
    MODEL_NMODULES
} gpt2_module_t;

/* Input and output widths of module m in a model of config c; -1 when the
 * architecture has no such module. */
int gpt2_module_dims(const gpt2_config_t *c, int m, int *in, int *out);

/* A per-module delta added to a linear module's output (LoRA's seam).
 * forward: out (N,OC) += delta(inp (N,IC)), called right after the base
 * product. backward: given dout (N,OC) and the module's input inp (N,IC),
 * dinp (N,IC) += d(delta)/d(inp) (dinp NULL: not wanted, block 0 when frozen),
 * plus whatever gradients of its own the delta keeps; called right after the
 * base backward. */
typedef struct {
    void (*forward)(void *ctx, int layer, gpt2_module_t m, float *out, const float *inp, size_t N,
                    int IC, int OC);
    void (*backward)(void *ctx, int layer, gpt2_module_t m, float *dinp, const float *dout,
                     const float *inp, size_t N, int IC, int OC);
    void *ctx;
} gpt2_delta_t;

typedef struct gpt2_acts gpt2_acts_t;
typedef struct llama_acts llama_acts_t;
typedef struct llama_weights llama_weights_t;

typedef struct {
    gpt2_config_t cfg;
    gpt2_tensor_t *tensors; /* the parameter table */
    size_t ntensors;
    size_t nparams;
    float *params;       /* nparams floats */
    float *grads;        /* nparams floats, allocated by gpt2_grads() */
    gpt2_weights_t w, g; /* views of params and grads */
    int frozen;          /* 1: backward computes activation gradients only */
    gpt2_delta_t delta;  /* optional per-module deltas (forward NULL: none) */
    /* Optional row segments: nseg counts of sequences, adding up to the B of
     * the next forward. When set, every product over rows runs once per
     * segment with the shapes the segment would have alone, so a segment's
     * rows get the bits they would get alone on any BLAS (gpt2.c). */
    const int *seg;
    int nseg;
    /* Threads the per-segment products spread over (segmm.h); above 1,
     * OpenBLAS must be single-threaded while segments are set. */
    int seg_threads;
    /* Optional packed documents (docattn.h): pos (B,T) is each token's
     * position inside its document, a document starting where pos is 0;
     * attention stays inside documents and positions restart with them.
     * NULL: one document per row, positions 0..T-1. Read by the next forward
     * and its backward: keep it alive until then. */
    const int *pos;
    gpt2_acts_t *acts; /* activations for the (B,T) of gpt2_alloc() */
    llama_acts_t *lacts;            /* ARCH_LLAMA: its activations */
    llama_weights_t *lw, *lg;       /* ARCH_LLAMA: views of params and grads */
    int B, T;          /* shape of the last forward */
} gpt2_t;

/* A model of this config with zeroed parameters; NULL (and an error) when the
 * config is invalid or memory runs out. */
gpt2_t *gpt2_new(const gpt2_config_t *cfg);
void gpt2_destroy(gpt2_t **self_p);

/* GPT-2 initialisation from seed: normal(0, 0.02) matrices and embeddings,
 * residual projections (attn.c_proj, mlp.c_proj) scaled by 1/sqrt(2L), zero
 * biases, unit LayerNorm. */
void gpt2_init_weights(gpt2_t *self, uint64_t seed);

/* The number of parameters of a model of config cfg (a valid one): the
 * size of its parameter table, without allocating the parameters; 0 when
 * memory runs out. */
size_t gpt2_nparams(const gpt2_config_t *cfg);

/* The table entry named name (e.g. "h/3/attn/c_attn/weight"), or NULL. */
const gpt2_tensor_t *gpt2_tensor(const gpt2_t *self, const char *name);

/* The gradient buffer (zeroed on first use); NULL if memory runs out. */
float *gpt2_grads(gpt2_t *self);
void gpt2_zero_grad(gpt2_t *self);

/* Allocates, once, activations for batches up to (B,T); T <= n_ctx. */
int gpt2_alloc(gpt2_t *self, int B, int T);

/* Forward pass on inputs (B,T) with targets (B,T) (-1: ignored; NULL: no
 * loss). Writes the mean loss over valid targets to *loss (0 if none).
 * Token ids are checked (one-line error on a bad one). */
int gpt2_forward(gpt2_t *self, const int *inputs, const int *targets, int B, int T, float *loss);
/* After gpt2_forward: logits (B,T,V), per-position losses (B,T) (0 where
 * ignored), and the number of valid targets. */
const float *gpt2_logits(const gpt2_t *self);
const float *gpt2_losses(const gpt2_t *self);
size_t gpt2_valid_targets(const gpt2_t *self);

/* Backward pass of the last forward. scale (B) is d(loss)/d(row b's summed
 * loss); NULL means 1/(valid targets), i.e. the mean loss. Accumulates (+=)
 * parameter gradients unless frozen. Overwrites the logits. */
int gpt2_backward(gpt2_t *self, const float *scale);

/* Weight decay applies to the tensor kinds set here, by default matrices. */
#define GPT2_DECAY_DEFAULT (1u << GPT2_MATRIX)

/* Global norm of the gradients (double accumulation, table order). */
double gpt2_grad_norm(const gpt2_t *self);
/* One AdamW step over every tensor with the same learning rate: m and v are
 * nparams floats in the parameter layout; weight decay hp->weight_decay on
 * tensors whose kind bit is in decay_kinds, none on the others. */
void gpt2_adamw(gpt2_t *self, float *m, float *v, float lr, const adamw_hparams_t *hp,
                unsigned decay_kinds, long t);

/* The row segments of the next products (segmm.h): the model's segments
 * and seg_threads, or one segment threaded inside BLAS when none are set.
 * gpt2.c and llama.c both run their products through it. */
segs_t gpt2_row_segs(const gpt2_t *self);

/* FLOPs of one training step per token, as the benchmark counts them:
 * 6·N + 6·L·C·T. */
double gpt2_flops_per_token(const gpt2_t *self, int T);
/* FLOPs of one training step over a batch (B,T) of packed documents pos
 * (docattn.h; NULL: one per row), attention counted as computed:
 * 6·N·B·T + 6·L·C·Σ n² over the documents. */
double gpt2_flops_docs(const gpt2_t *self, const int *pos, int B, int T);

#endif
