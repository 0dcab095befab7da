/* lora.h: LoRA adapters on buffers. K tenants' low-rank deltas over one frozen
 * backbone's linear modules live in one flat buffer with an offset table and
 * are applied segment-wise to a packed batch (rows grouped by tenant). */
#ifndef WEFT_LORA_H
#define WEFT_LORA_H

#include <stddef.h>
#include <stdint.h>

/* The linear modules that can carry an adapter, numbered across the
 * architectures (as gpt2.h numbers them): GPT-2's four, then Llama's seven.
 * A module a backbone has is one gpt2_module_dims gives widths for. */
enum {
    LORA_ATTN_C_ATTN = 0, /* gpt2: C -> 3C */
    LORA_ATTN_C_PROJ = 1, /* gpt2: C -> C */
    LORA_MLP_C_FC = 2,    /* gpt2: C -> 4C */
    LORA_MLP_C_PROJ = 3,  /* gpt2: 4C -> C */
    LORA_Q_PROJ = 4,      /* llama: C -> H*hd */
    LORA_K_PROJ = 5,      /* llama: C -> KV*hd */
    LORA_V_PROJ = 6,      /* llama: C -> KV*hd */
    LORA_O_PROJ = 7,      /* llama: H*hd -> C */
    LORA_GATE_PROJ = 8,   /* llama: C -> I */
    LORA_UP_PROJ = 9,     /* llama: C -> I */
    LORA_DOWN_PROJ = 10,  /* llama: I -> C */
    LORA_NMODULES = 11
};
/* In a targets mask (bit m for module m): every linear module of the
 * architecture ("all-linear"), resolved when the pack meets its model. The
 * modules' names, groups and architectures are model/modules.h's. */
#define LORA_ALL_LINEAR (1u << 31)

/* Input and output widths of GPT-2 module m (0..3) with n_embd = C. */
void lora_module_dims(int m, int C, int *in, int *out);

/* One tenant's adapter shape and randomness. */
typedef struct {
    int r;            /* rank, >= 1 */
    float alpha;      /* scaling = alpha/r, or alpha/sqrt(r) with rsLoRA */
    int use_rslora;   /* 0 or 1 */
    unsigned targets; /* module mask, the same for every block */
    float dropout;    /* on the LoRA branch input, 0 <= p < 1 */
    uint64_t seed;    /* initialisation and dropout stream */
} lora_spec_t;

float lora_spec_scaling(const lora_spec_t *spec);
/* Rejects r < 1, targets outside the modules or none, dropout outside
 * [0,1), non-finite alpha; -1 with weft_error. */
int lora_spec_check(const lora_spec_t *spec);

/* The shape of a backbone as LoRA sees it: its architecture's modules and
 * their widths (gpt2_lora_dims in lora_train.h fills one from a model). */
typedef struct {
    const char *arch;       /* "gpt2" or "llama", for messages */
    int n_embd;             /* the backbone's width C */
    unsigned modules;       /* the modules the architecture has */
    int in[LORA_NMODULES];  /* widths, for the modules it has */
    int out[LORA_NMODULES];
} lora_dims_t;

/* GPT-2's four modules at width C. */
void lora_dims_gpt2(int C, lora_dims_t *dims);
/* Resolves a targets mask against dims: all-linear becomes every module of
 * the architecture; a module it lacks is an error giving its number (callers
 * check targets by name first: modules_resolve in model/modules.h). */
int lora_targets_resolve(unsigned targets, const lora_dims_t *dims, unsigned *out);

typedef struct lora_pack lora_pack_t;

/* A pack of n_tenants adapters over a backbone of n_layer blocks of width
 * n_embd, for batches of at most max_rows rows (rows = B*T positions).
 * Every tenant starts at PEFT's initialisation (lora_pack_init_tenant). */
lora_pack_t *lora_pack_new(int n_layer, int n_embd, int n_tenants, const lora_spec_t *specs,
                           size_t max_rows);
/* The same over any architecture's modules (dims); each tenant's targets
 * are resolved against dims (lora_targets_resolve) and kept resolved. */
lora_pack_t *lora_pack_new_dims(int n_layer, const lora_dims_t *dims, int n_tenants,
                                const lora_spec_t *specs, size_t max_rows);
void lora_pack_destroy(lora_pack_t **self_p);

int lora_pack_tenants(const lora_pack_t *self);
int lora_pack_layers(const lora_pack_t *self);
int lora_pack_embd(const lora_pack_t *self);
/* Widths of module m in this pack's backbone; -1 when it has no such module. */
int lora_pack_module_dims(const lora_pack_t *self, int m, int *in, int *out);
const lora_dims_t *lora_pack_dims(const lora_pack_t *self);
size_t lora_pack_max_rows(const lora_pack_t *self);
const lora_spec_t *lora_pack_spec(const lora_pack_t *self, int k);
/* Modules any tenant targets (the engine keeps their inputs either way). */
unsigned lora_pack_targets(const lora_pack_t *self);

/* Four flat buffers of lora_pack_size() floats in one layout: the adapters,
 * their gradients, and AdamW's two moments. Tenant k owns the contiguous
 * slice [tenant_offset(k), tenant_offset(k) + tenant_size(k)); inside it,
 * for each block l and each targeted module m in order, A [r,in] then
 * B [out,r], row-major. One Allreduce over grads covers every tenant. */
float *lora_pack_params(lora_pack_t *self);
float *lora_pack_grads(lora_pack_t *self);
float *lora_pack_m(lora_pack_t *self);
float *lora_pack_v(lora_pack_t *self);
size_t lora_pack_size(const lora_pack_t *self);
size_t lora_pack_tenant_offset(const lora_pack_t *self, int k);
size_t lora_pack_tenant_size(const lora_pack_t *self, int k);
/* Bytes of training state one tenant holds: adapter, gradient, two moments. */
size_t lora_pack_tenant_state_bytes(const lora_pack_t *self, int k);
/* Offsets of A and B of (tenant k, block l, module m) into any of the four
 * buffers; -1 when that tenant does not target m or k, l, m are out of range. */
int lora_pack_offsets(const lora_pack_t *self, int k, int l, int m, size_t *a_off, size_t *b_off);

/* PEFT's initialisation of tenant k from its seed: A ~ U(-1/sqrt(in),
 * 1/sqrt(in)), B = 0; zeroes its gradient and moments and restarts its
 * dropout stream. The same spec gives the same bits in any pack. */
void lora_pack_init_tenant(lora_pack_t *self, int k);
/* Tenant k's dropout stream state (one word), for checkpoints. */
uint64_t lora_pack_rng(const lora_pack_t *self, int k);
void lora_pack_set_rng(lora_pack_t *self, int k, uint64_t state);

/* The batch layout: tenant k owns rows [row0[k], row0[k] + nrows[k]);
 * nrows[k] = 0 leaves tenant k out of this batch. Segments must lie within
 * max_rows and not overlap; rows owned by no tenant get no delta. */
int lora_pack_set_rows(lora_pack_t *self, const size_t *row0, const size_t *nrows);
/* Training mode draws dropout masks; evaluation mode applies none. */
void lora_pack_set_training(lora_pack_t *self, int training);

/* For block l, module m (in = IC, out = OC):
 * inp is (N,IC), out is (N,OC) already holding the frozen base output.
 * Each tenant segment adds scaling * (drop(inp_seg) A^T) B^T, keeping the
 * dropout mask and h = drop(inp_seg) A^T (n,r) for the backward pass. */
void lora_forward(lora_pack_t *self, int l, int m, float *out, const float *inp);
/* dout is (N,OC), inp is (N,IC) as given to lora_forward, dinp is (N,IC).
 * Accumulates dA (r,IC) and dB (OC,r) into the tenant's gradient slice and
 * adds the LoRA branch's share of dinp (the base share is the engine's);
 * dinp NULL: no input gradient wanted (block 0 over a frozen backbone). */
void lora_backward(lora_pack_t *self, int l, int m, float *dinp, const float *dout,
                   const float *inp);

#endif
