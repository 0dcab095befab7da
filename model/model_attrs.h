/* model_attrs.h: the root attributes of a weft-model file
 * (docs/FORMATS-model.md), one home for their names, types and checks: the
 * engine (model/model_file.c) and `weft import`/`weft export`
 * (model/hf_config.c, model/hf_model.c) read and write them through here. */
#ifndef WEFT_MODEL_ATTRS_H
#define WEFT_MODEL_ATTRS_H

#include <hdf5.h>
#include <stdint.h>

typedef struct {
    int64_t version; /* 1: GPT-2; 2: adds arch "llama" */
    char arch[16];   /* "gpt2" or "llama" */
    int64_t n_layer, n_head, n_embd, vocab_size, n_ctx;
    /* arch "llama" only */
    int64_t n_kv_head, head_dim, n_inner, tie_word_embeddings;
    double rms_norm_eps, rope_theta;
    char rope_scaling_type[16]; /* "" (none), "linear" or "llama3" */
    double rope_scaling_factor;
    double rope_scaling_low_freq_factor, rope_scaling_high_freq_factor; /* llama3 */
    int64_t rope_scaling_original_max_position_embeddings;              /* llama3 */
    int64_t sliding_window;   /* Mistral's; 0: none (attribute absent) */
    char hf_architecture[32]; /* "LlamaForCausalLM", ...; "": absent */
} model_attrs_t;

/* Reads and range-checks the attributes above (not `tokenizer`): format
 * "weft-model", version 1 or 2, a known arch, sizes in [1, 2^30], a known
 * rope scaling type with its factors. One-line error naming the attribute. */
int model_attrs_read(hid_t f, model_attrs_t *a);
/* Writes them in one fixed order; optional ones only when set. */
int model_attrs_write(hid_t f, const model_attrs_t *a);

#endif
